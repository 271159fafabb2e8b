"""Probes of TRL's GRPO loss (``trl.trainer.grpo_trainer.GRPOTrainer._compute_loss``), as a user runs it.

TRL keeps the loss inside a trainer method; every probe drives that method on a bare ``GRPOTrainer`` whose
attributes are copied from a real ``trl.GRPOConfig`` (the construction of
:mod:`rlspec.conformance.adapters.trl_adapter`, whose ``_BARE_TRAINER_SRC`` is reused verbatim), with the
batch's ``logp`` standing in for the model forward. What is enumerated (nothing here names a known bug):

* ``defaults``: ``GRPOConfig()`` as it is, and ``GRPOConfig(loss_type=X)`` / ``importance_sampling_level=Y``
  for every loss type and level the method accepts (parsed from its source), all other fields at their
  defaults — compared with the reference entry the loss type names (its docstring's paper), and run through
  the metamorphic checks (padding width and values, row order, gradient-accumulation split, float32, gradient
  vs finite differences of its own loss);
* ``combination``: loss_type × importance_sampling_level × beta (0 / 0.04) × use_bias_correction_kl ×
  the vLLM importance-sampling correction (off / a per-token ratio / a per-sequence ratio, the two shapes
  ``_generate_and_score_completions`` hands to the loss), plus one-at-a-time variations of the remaining loss
  knobs (delta, epsilon_high, top_entropy_quantile, off_policy_mask_threshold, entropy_coef) for every loss
  type; combinations ``GRPOTrainer.__init__`` refuses are ``unsupported``;
* ``input``: empty rows, a batch with no valid token, interior mask holes, float32 log-ratios of ±89 / ±100;
* ``self``: gradient accumulation (several micro-batches of one generation batch, uneven token counts, driven
  with ``current_gradient_accumulation_steps`` / ``steps_per_generation`` as the trainer sets them) against
  the full batch — the ``split`` check of every defaults / combination probe.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlspec.conformance.probes import core, sourced
from rlspec.conformance.probes.core import Probe
from rlspec.conformance.probes.sourced import METAMORPHIC, SourceCall

FRAMEWORK = "trl"
DIST = "trl"
PATH = "trl.trainer.grpo_trainer.GRPOTrainer._compute_loss"
B, T = 6, 7

# searched huggingface/trl issues with the `search` tool (corpus "issues"): (path, case, key fragment, URL), matched
# against the probe key (sourced.upstream_for)
UPSTREAM: tuple[tuple[str, str, str, str], ...] = (
    ("", "", "bnpo&split", "https://github.com/huggingface/trl/issues/3021"),
    ("", "", "cispo&ref", "none found"),
    ("", "", "sapo&ref", "none found"),
    ("", "", "sequence&ref", "none found"),
    ("", "", "entropy_coef&split", "none found"),
    ("", "", "float32 log-ratio", "none found"),
)


probes_for = functools.partial(sourced.probes_for, FRAMEWORK, PATH, table=UPSTREAM)
"""``probes_for(call, run, case, batch_fn, kinds, ...)``: :func:`sourced.probes_for` for TRL's loss."""


# --------------------------------------------------------------------------- introspection
@functools.lru_cache(maxsize=1)
def accepted_strings() -> dict[str, tuple[str, ...]]:
    """String values ``_compute_loss`` branches on, parsed from its source (``== "x"`` / ``in [...]``)."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    src = inspect.getsource(GRPOTrainer._compute_loss)
    out: dict[str, list[str]] = {}
    for attr in ("loss_type", "importance_sampling_level"):
        vals: list[str] = []
        for m in re.finditer(rf"self\.{attr}\s*==\s*\"(\w+)\"", src):
            vals.append(m.group(1))
        for m in re.finditer(rf"self\.{attr}\s+in\s+\[([^\]]*)\]", src):
            vals.extend(re.findall(r"\"(\w+)\"", m.group(1)))
        out[attr] = list(dict.fromkeys(vals))
    return {k: tuple(v) for k, v in out.items()}


@functools.lru_cache(maxsize=1)
def config_defaults() -> dict[str, Any]:
    """``GRPOConfig``'s own field defaults (the fields this module varies)."""
    from trl import GRPOConfig

    d = core.dataclass_defaults(GRPOConfig)
    keys = ("loss_type", "importance_sampling_level", "beta", "epsilon", "epsilon_high", "delta",
            "use_bias_correction_kl", "top_entropy_quantile", "off_policy_mask_threshold", "entropy_coef",
            "sapo_temperature_pos", "sapo_temperature_neg", "max_completion_length", "use_vllm",
            "vllm_importance_sampling_correction", "vllm_importance_sampling_mode")
    return {k: d[k] for k in keys if k in d}


def init_refuses(cfg: Mapping[str, Any]) -> str | None:
    """The refusals of ``GRPOTrainer.__init__`` (skipped by the bare instance) for the fields varied here: the
    one ``raise`` among its loss checks (vespo with a sequence-level vLLM correction). The other checks there
    only log warnings."""
    if cfg.get("loss_type") == "vespo" and cfg.get("use_vllm") and cfg.get("vllm_importance_sampling_correction",
                                                                            True):
        if cfg.get("vllm_importance_sampling_mode") not in ("token_truncate", "token_mask"):
            return "VESPO loss requires vllm_importance_sampling_mode 'token_truncate' or 'token_mask'"
    return None


# --------------------------------------------------------------------------- the subject source
def subject_source(cfg: Mapping[str, Any], *, is_ratio: str | None = None, entropy: bool = False) -> str:
    """Source defining ``run(b, full=None)`` for TRL with GRPOConfig(**cfg): the whole batch as one step, or
    (``full`` given) one micro-batch of the step over ``full``.

    ``is_ratio``: None, "token" or "sequence" — the vLLM correction weight the generation step stores, here
    ``b["is_w"]`` (B, T) or its row mean (B, 1); ``entropy``: entropies ``b["ent"]`` (a differentiable function
    of logp, as a model's are) reach the loss."""
    from rlspec.conformance.adapters.trl_adapter import _BARE_TRAINER_SRC

    # TRL's generation step builds the weight as exp((old - sampling) * mask): exactly 1 at padded positions
    isr = {None: "None", "token": "torch.where(b['mask'], b['is_w'], torch.ones_like(b['is_w']))",
           "sequence": "b['is_w_seq']"}[is_ratio]
    ent = "(-b['logp'] * torch.exp(b['logp']) + 0.1 * b['ent'])" if entropy else "None"
    return _BARE_TRAINER_SRC.strip() + f'''


CFG = {dict(cfg)!r}
TRAINER = make_bare_trainer(**CFG)


def _call(b, n_micro, n_items):
    """One micro-batch of a step of n_micro micro-batches (the trainer sets these two attributes)."""
    TRAINER.current_gradient_accumulation_steps = n_micro
    TRAINER.args.steps_per_generation = n_micro
    mask = b["mask"].long()
    ref = b["ref_logp"] if TRAINER.beta != 0.0 else None
    return compute_loss(TRAINER, b["logp"], b["old_logp"], ref, b["adv_seq"], mask, n_items, {ent}, {isr})


def run(b, full=None):
    """Alone: the batch as one step, num_items_in_batch = its token count (what the generation step stores).
    A micro-batch of `full` (split into equal row counts): num_items_in_batch spans the generation batch."""
    if full is None:
        return _call(b, 1, b["mask"].sum())
    return _call(b, full["mask"].shape[0] // b["mask"].shape[0], full["mask"].sum())
'''


def batch(seed: int = 0, **kw: Any) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(seed)
    b = core.torch_batch(rng, kw.pop("B", B), kw.pop("T", T), **kw)
    shape = b["mask"].shape
    w = rng.uniform(0.5, 2.5, size=shape)
    w[~b["mask"].numpy()] = 1.0  # TRL: exp((old − sampling)·mask) is exactly 1 at padded positions
    b["is_w"] = torch.tensor(w, dtype=b["logp"].dtype)
    b["is_w_seq"] = torch.tensor(rng.uniform(0.5, 2.5, size=(shape[0], 1)), dtype=b["logp"].dtype)
    b["ent"] = torch.tensor(rng.uniform(0.0, 3.0, size=shape), dtype=b["logp"].dtype)
    return b


# --------------------------------------------------------------------------- reference claims
def reference_for(cfg: Mapping[str, Any], paper_defaults: bool = False):
    """(label, fn(batch) -> (loss, dlogp)) of the reference entry (or sum of entries) the configuration claims,
    or None when it claims none rlspec has (e.g. the vLLM correction with a weight supplied from outside)."""
    lt = cfg.get("loss_type", "dapo")
    level = cfg.get("importance_sampling_level", "token")
    eps = cfg.get("epsilon", 0.2)
    eps_hi = cfg.get("epsilon_high") if cfg.get("epsilon_high") is not None else eps
    beta = cfg.get("beta", 0.0)
    agg = {"grpo": "seq-mean-token-mean", "sapo": "seq-mean-token-mean", "bnpo": "token-mean",
           "dapo": "token-mean", "cispo": "token-mean", "vespo": "token-mean", "dr_grpo": "seq-mean-token-sum-norm",
           "luspo": "seq-mean-token-sum"}.get(lt)
    if agg is None or any(cfg.get(k) not in (None, d) for k, d in
                          (("top_entropy_quantile", 1.0), ("off_policy_mask_threshold", None), ("entropy_coef", 0.0))):
        return None
    if cfg.get("use_vllm"):
        return None
    common: dict[str, Any] = {"agg": agg, "seq_denominator": "all"}
    if agg == "seq-mean-token-sum-norm":
        common["const"] = float(cfg.get("max_completion_length") or 512)
    if lt == "cispo":
        # the paper's entry at its own defaults: TRL documents epsilon_high as CISPO's (absolute) ε_max
        entry, conf = "cispo", dict(common)
        if not paper_defaults or cfg.get("epsilon_high") is not None:
            if eps_hi < 1.0:
                return None  # a cap below 1 is no CISPO configuration the reference describes
            conf["eps_high"] = eps_hi - 1.0
    elif lt == "sapo":
        entry, conf = "sapo", {**common, "tau_pos": cfg.get("sapo_temperature_pos", 1.0),
                               "tau_neg": cfg.get("sapo_temperature_neg", 1.05)}
    elif lt == "vespo":
        entry, conf = "vespo", dict(common)
    elif level == "sequence":
        # GSPO (TRL's paper index): the paper's clip range unless the user set one
        entry, conf = "gspo", dict(common)
        if not paper_defaults or "epsilon" in cfg:
            conf["eps_low"] = eps
        if not paper_defaults or cfg.get("epsilon_high") is not None or "epsilon" in cfg:
            conf["eps_high"] = eps_hi
    elif cfg.get("delta") is not None:
        entry, conf = "two_sided_clip", {**common, "eps_low": eps, "eps_high": eps_hi, "delta": cfg["delta"]}
    else:
        entry, conf = "ppo", {**common, "eps_low": eps, "eps_high": eps_hi}
    if level == "sequence" and lt in ("cispo", "sapo", "vespo"):
        return None  # no reference composition for a sequence-level weight inside these losses
    kl = None
    if beta:
        kl = ("kl_k3", {**common, "is_weight": "ratio" if cfg.get("use_bias_correction_kl", True) else None})
    label = f"{entry}({core.describe(conf)})" + (f" + {beta} x kl_k3({core.describe(kl[1])})" if kl else "")

    def ref(b):
        from rlspec.reference import registry

        arrays = core.to_numpy(b)
        spec = registry.get(entry)
        x = {"logp": arrays["logp"], "old_logp": arrays["old_logp"], "adv": arrays["adv"], "mask": arrays["mask"]}
        loss, grad = spec(**x, config=spec.config(**conf))
        if kl is not None:
            ks = registry.get("kl_k3")
            kloss, kgrad = ks(arrays["logp"], arrays["ref_logp"], arrays["mask"], config=ks.config(**kl[1]),
                              old_logp=arrays["old_logp"])
            loss, grad = loss + beta * kloss, grad + beta * kgrad
        return float(loss), np.asarray(grad)

    return label, ref


# --------------------------------------------------------------------------- enumeration
def _cfg_key(cfg: Mapping[str, Any]) -> str:
    return core.describe(cfg)


def _accepts(cfg: Mapping[str, Any]):
    def run() -> None:
        why = init_refuses(cfg)
        if why:
            raise ValueError(why)
        from rlspec.conformance.adapters.trl_adapter import make_bare_trainer

        make_bare_trainer(**cfg)  # GRPOConfig's own validation (__post_init__)

    return run


def surrogate(loss_type: str) -> bool:
    """Loss types whose value is a stop-gradient surrogate (its gradient is not the gradient of its value, by
    design): cispo multiplies log-probs by a detached clipped weight, vespo by a weight computed under no_grad.
    Their gradient is checked against the reference instead of finite differences."""
    return loss_type in ("cispo", "vespo")


def _config_probes(run: str, cfg: dict[str, Any], *, is_ratio: str | None = None, entropy: bool = False,
                   kinds=METAMORPHIC, with_reference: bool = True, key: str = "") -> list[Probe]:
    if surrogate(cfg.get("loss_type", "dapo")):
        kinds = tuple(k for k in kinds if k != "gradient")
    full_cfg = {"max_completion_length": T, **cfg}
    if is_ratio:
        full_cfg.update(use_vllm=True, vllm_importance_sampling_correction=True,
                        vllm_importance_sampling_mode=f"{is_ratio}_truncate")
    subject = SourceCall(subject_source(full_cfg, is_ratio=is_ratio, entropy=entropy))
    case = f"GRPOConfig({_cfg_key(cfg)})" + (f" + vLLM IS weight per {is_ratio}" if is_ratio else "")
    lt = cfg.get("loss_type", "dapo")
    key = key or f"{lt}/{cfg.get('importance_sampling_level', 'token')}"
    out = probes_for(subject, run, case, batch, [k for k in kinds if k != "split"], accepts=_accepts(full_cfg),
                     key=key)
    if "split" in kinds:  # a framework against itself: gradient accumulation vs the full batch
        out += probes_for(subject, "self", case + " | gradient accumulation vs full batch", batch, ("split",),
                          accepts=_accepts(full_cfg), key=key if "/" not in key else lt)
    claim = reference_for(full_cfg, paper_defaults=(run == "defaults")) if with_reference else None
    if claim is not None:
        label, ref = claim
        out += probes_for(subject, run, case, batch, ("reference",), accepts=_accepts(full_cfg), reference=ref,
                          ref_label=label, key=f"{key}|ref")
    return out


def default_probes() -> list[Probe]:
    """GRPOConfig() and one field set at a time to each accepted string (as TRL's docs call it)."""
    strings = accepted_strings()
    out = _config_probes("defaults", {})
    for lt in strings["loss_type"]:
        out += _config_probes("defaults", {"loss_type": lt})
    for level in strings["importance_sampling_level"]:
        if level != config_defaults().get("importance_sampling_level"):
            out += _config_probes("defaults", {"importance_sampling_level": level})
            out += _config_probes("defaults", {"importance_sampling_level": level, "loss_type": "grpo"})
    return out


def combination_probes() -> list[Probe]:
    strings = accepted_strings()
    out: list[Probe] = []
    for lt in strings["loss_type"]:
        for level in strings["importance_sampling_level"]:
            for beta, corr in ((0.0, None), (0.04, True), (0.04, False)):
                for isr in (None, "token", "sequence"):
                    cfg: dict[str, Any] = {"loss_type": lt, "importance_sampling_level": level, "beta": beta}
                    if corr is not None:
                        cfg["use_bias_correction_kl"] = corr
                    out += _config_probes("combination", cfg, is_ratio=isr)
        # one knob at a time on top of the loss type's defaults
        for extra in ({"delta": 1.5}, {"epsilon_high": 0.28}, {"epsilon": 0.1, "epsilon_high": 0.3},
                      {"top_entropy_quantile": 0.5}, {"off_policy_mask_threshold": 0.05}):
            out += _config_probes("combination", {"loss_type": lt, **extra})
        out += _config_probes("combination", {"loss_type": lt, "entropy_coef": 0.01}, entropy=True,
                              key="entropy_coef")
    return out


def _extreme_batch(log_ratio: float, dtype_name: str, adv_sign: float):
    def make():
        import torch

        b = batch(seed=3)
        lp = b["old_logp"].detach().clone()
        lp[1, 0] = lp[1, 0] + log_ratio
        adv = b["adv_seq"].detach().clone()
        adv[1] = adv_sign * 1.0
        out = core.clone(b, dtype=getattr(torch, dtype_name), logp=lp.to(getattr(torch, dtype_name)),
                         adv_seq=adv.to(getattr(torch, dtype_name)))
        out["ref_logp"] = out["old_logp"].detach().clone()
        return out

    return make


def input_cases(make: Callable[..., dict[str, Any]]) -> dict[str, Callable[[], dict[str, Any]]]:
    """Input classes a GRPO-style loss takes without complaint, each a batch built by ``make(seed, **kw)``: a row
    with no valid token, a batch with none, interior holes in the mask."""
    return {
        "a row with no valid token": lambda: make(seed=4, lengths=[T, 0, 3, 5, 0, 2]),
        "no valid token in the whole batch": lambda: make(seed=5, lengths=[0] * B),
        "interior holes in the mask": lambda: make(seed=6, holes=True),
    }


def input_probes() -> list[Probe]:
    """Input classes TRL accepts silently, on GRPOConfig's defaults and on every loss type."""
    out: list[Probe] = []
    cases = input_cases(batch)
    for lt in accepted_strings()["loss_type"]:
        cfg = {"loss_type": lt, "max_completion_length": T, "beta": 0.04}
        subject = SourceCall(subject_source(cfg))
        for name, make in cases.items():
            kinds = ("finite", "permutation") if surrogate(lt) else ("finite", "gradient", "permutation")
            out += probes_for(subject, "input", f"GRPOConfig({_cfg_key(cfg)}) | {name}", make, kinds,
                              accepts=_accepts(cfg), key=f"{lt}|{name}")
        for lr in (89.0, -89.0, 100.0, -100.0):
            for sign in (1.0, -1.0):
                out += probes_for(subject, "input", f"GRPOConfig({_cfg_key(cfg)}) | float32 log-ratio {lr:+g}, "
                                  f"advantage {sign:+g}", _extreme_batch(lr, "float32", sign), ("finite",),
                                  accepts=_accepts(cfg), key=f"float32 log-ratio {lr:+g}")
    return out


def probes() -> list[Probe]:
    return default_probes() + combination_probes() + input_probes()

"""Probes of verl (checked against 0.9.1): its entry points called the way its docs and trainer call them.

What is enumerated (nothing here lists a known bug; the checks of :mod:`rlspec.conformance.probes.core` decide):

* policy losses: every key of ``core_algos.POLICY_LOSS_REGISTRY`` × every ``loss_agg_mode`` that
  ``ActorConfig`` accepts (parsed from its validation list) × clip settings (the dataclass defaults, and an
  asymmetric range with a dual-clip constant) × the two ways the loss is called: *direct* (``global_batch_info``
  empty, as the docs call ``core_algos``) and *trainer* (the keys ``verl.workers.utils.losses.ppo_loss`` sets:
  ``dp_size``, ``batch_num_tokens``, ``global_batch_size``, ``loss_scale_factor``);
* KL: every estimator string ``kl_penalty`` accepts (parsed from ``kl_penalty_forward``'s if-chain, and each
  with the ``"+"`` straight-through suffix) as a loss (``agg_loss`` of ``kl_penalty``, what ``ppo_loss`` adds with
  ``use_kl_loss``) and in the reward (``compute_rewards``, ``algorithm.use_kl_in_reward``);
* ``agg_loss``'s entropy and value-loss users (``compute_entropy_loss``, ``compute_value_loss``);
* advantage estimators: every key of ``ADV_ESTIMATOR_REGISTRY``, called with the keyword arguments
  ``ray_trainer.compute_advantage`` passes, on every input class a trainer can hand them;
* rollout correction: ``bypass_mode`` × ``RolloutCorrectionConfig`` string options (IS level, TIS/IcePop
  threshold forms, every rejection option of ``SUPPORTED_ROLLOUT_RS_OPTIONS``, loss type, batch-normalise);
* defaults: each of the above with the dataclass defaults (``ActorConfig``/``PolicyLossConfig``/``AlgoConfig``/
  ``RolloutCorrectionConfig``) against the paper's values in the reference;
* self: micro-batches with the trainer's global normalisers vs the full batch, two data-parallel ranks (DDP
  mean of gradients, computed in process: ``agg_loss`` has no collective of its own), loop vs vectorised
  estimators, the trainer's estimator dispatch for every estimator of the GRPO family, IcePop IS vs ratio-bounded
  rejection with the same bounds.

Every probe's call is written once as source (:class:`rlspec.conformance.probes.sourced.SourceCall`): the check
executes that source, and a finding's reproduction is the same source plus the batch as literals plus an
``assert`` of the correct behaviour, so it needs only verl, NumPy and torch.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rlspec.conformance.probes import core, sourced
from rlspec.conformance.probes.core import Probe, Verdict, ok, unsupported
from rlspec.conformance.probes.sourced import (
    SourceCall,
    as_float64,
    check_agree,
    check_array_agree,
    check_array_finite,
    check_array_padding,
    check_array_permutation,
    check_array_reference,
    check_differs,
    check_dtype,
    check_finite,
    check_gradient,
    check_padding_values,
    check_padding_width,
    check_permutation,
    check_reference,
    check_split,
    dtype_name,
    kwargs_source,
    safe,
    strings_in,
    torch_dtype,
)

FRAMEWORK = "verl"
DIST = "verl"
B, T = 6, 7

PREAMBLE = ("import os\nos.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')\nimport warnings\n"
            "warnings.filterwarnings('ignore')\nimport math\nimport numpy as np\nimport torch\n")


def _call(setup: str, body: str) -> SourceCall:
    """A verl call as source (:class:`SourceCall` with verl's preamble: CPU device, warnings off)."""
    return SourceCall(setup, body, preamble=PREAMBLE)


# =========================================================================== verl introspection
@functools.lru_cache(maxsize=1)
def _verl() -> Any:
    import os
    import types
    import warnings

    os.environ.setdefault("VERL_FORCE_DEVICE", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from verl.trainer.config import AlgoConfig, RolloutCorrectionConfig
        from verl.trainer.ppo import core_algos, rollout_corr_helper
        from verl.workers.config import ActorConfig, PolicyLossConfig
    return types.SimpleNamespace(ca=core_algos, rc=rollout_corr_helper, ActorConfig=ActorConfig,
                                 PolicyLossConfig=PolicyLossConfig, AlgoConfig=AlgoConfig,
                                 RolloutCorrectionConfig=RolloutCorrectionConfig)


def agg_modes() -> list[str]:
    """The ``loss_agg_mode`` values ``ActorConfig`` validates (its ``valid_loss_agg_modes`` list)."""
    import inspect

    src = inspect.getsource(_verl().ActorConfig.__post_init__)
    m = re.search(r"valid_loss_agg_modes\s*=\s*\[(.*?)\]", src, re.S)
    return re.findall(r"[\"']([^\"']+)[\"']", m.group(1)) if m else ["token-mean"]


def kl_types() -> list[str]:
    """The estimator strings ``kl_penalty_forward`` accepts (its if-chain), "full" included."""
    import inspect

    src = inspect.getsource(_verl().ca.kl_penalty_forward)
    return strings_in(src, r"kl_penalty (?:in \([^)]*\)|== [\"'][^\"']+[\"'])")


def rs_options() -> list[str]:
    return sorted(_verl().rc.SUPPORTED_ROLLOUT_RS_OPTIONS)


# reference entry each registered loss claims (its docstring's paper), and the conventions verl states
# (adapter notes: conformance/adapters/verl_adapter.py); None: no deterministic reference (random selection)
LOSS_ENTRY: dict[str, str | None] = {
    "vanilla": "ppo", "gspo": "gspo_token", "sapo": "sapo", "cispo": "cispo", "gpg": "gpg_loss",
    "geo_mean": "gmpo", "kl_cov": "kl_cov", "dro": "dro", "dppo_tv": "dppo", "dppo_kl": "dppo",
    "clip_cov": None, "bypass_mode": None,
}
# losses that draw at random (torch.randperm): invariance under row order / split is not defined for them
RANDOM_LOSSES = {"clip_cov"}
# value of the loss is a stop-gradient surrogate (not the objective): compare the gradient only
SURROGATE = {"cispo", "dppo_tv", "dppo_kl"}


def structural_conventions(name: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """What verl hard-codes for a loss (not a knob): log-ratio clamps and the surrogate form."""
    c: dict[str, Any] = {}
    if name in ("vanilla", "sapo", "cispo", "dppo_tv", "dppo_kl"):
        c["log_ratio_clamp"] = 20.0
    if name in ("dppo_tv", "dppo_kl"):
        c.update(surrogate="tis", trust_region="tv" if name == "dppo_tv" else "kl")
        if name == "dppo_kl":
            c["kl_eps"] = 1e-8
    return c


def knob_conventions(name: str, knobs: Mapping[str, Any], actor: Any) -> dict[str, Any]:
    """The reference configuration that the given ActorConfig claims for loss ``name``."""
    c = structural_conventions(name, knobs)
    lo, hi = actor.clip_ratio_low, actor.clip_ratio_high
    if name in ("vanilla", "gspo", "geo_mean", "cispo"):
        c.update(eps_low=lo, eps_high=hi)
    if name == "vanilla":
        c["dual_clip_c"] = actor.clip_ratio_c
    if name == "sapo":
        c.update(tau_pos=actor.tau_pos, tau_neg=actor.tau_neg)
    if name == "kl_cov":
        c.update(k=actor.policy_loss.kl_cov_ratio, beta=actor.policy_loss.ppo_kl_coef)
    if name == "dro":
        c["beta"] = actor.policy_loss.dro_beta
    if name in ("dppo_tv", "dppo_kl"):
        c.update(delta_low=lo, delta_high=hi, is_cap=actor.clip_ratio_c)
    return c


def agg_conventions(mode: str, style: str, batch: Mapping[str, Any], actor: Any) -> dict[str, Any]:
    """rlspec aggregation options for verl's ``loss_agg_mode`` and call style (direct: this call's own counts;
    trainer: ``ppo_loss``'s global counts)."""
    n_tok, n_rows = int(batch["mask"].sum()), int(batch["mask"].shape[0])
    if mode == "token-sum":
        return {"agg": "token-mean", "normalizer": 1.0}
    c: dict[str, Any] = {"agg": mode}
    if style == "trainer":
        c["normalizer"] = float(n_tok if mode == "token-mean" else n_rows)
    if mode == "seq-mean-token-sum-norm":
        c["const"] = float(actor.loss_scale_factor or batch["mask"].shape[1])
    return c


ACTOR_REQUIRED = "strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1"
TRAINER_INFO = """\
# what verl.workers.utils.losses.ppo_loss writes before calling the loss (the engine counts the mini-batch)
cfg.global_batch_info.update(dp_size=1, batch_num_tokens=int(full["mask"].sum()),
                             global_batch_size=int(full["mask"].shape[0]), loss_scale_factor=cfg.loss_scale_factor)
"""


def policy_call(name: str, actor_kw: Mapping[str, Any], policy_kw: Mapping[str, Any], style: str) -> SourceCall:
    setup = f"""
        from verl.trainer.ppo import core_algos as ca
        from verl.workers.config import ActorConfig, PolicyLossConfig
        cfg = ActorConfig({ACTOR_REQUIRED}{kwargs_source(actor_kw)},
                          policy_loss=PolicyLossConfig(loss_mode={name!r}{kwargs_source(policy_kw)}))
        """
    info = TRAINER_INFO if style == "trainer" else "cfg.global_batch_info.clear()   # a direct call (docs)\n"
    if name in RANDOM_LOSSES:
        info += "torch.manual_seed(0)   # the loss draws tokens with torch.randperm: fix the draw\n"
    body = info + f"""loss, _ = ca.get_policy_loss_fn({name!r})(
    old_log_prob=b["old_logp"], log_prob=b["logp"], advantages=b["adv"], response_mask=b["mask"],
    loss_agg_mode=cfg.loss_agg_mode, config=cfg)
"""
    return _call(setup, body)


def _actor(actor_kw: Mapping[str, Any], policy_kw: Mapping[str, Any], name: str) -> Any:
    v = _verl()
    return v.ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, **actor_kw,
                         policy_loss=v.PolicyLossConfig(loss_mode=name, **policy_kw))


# =========================================================================== batches
@functools.lru_cache(maxsize=1)
def batches() -> dict[str, dict[str, Any]]:
    """The inputs every probe sees: small (B=6, T=7), finite garbage at padding, unequal lengths, groups of 3."""
    rng = np.random.default_rng
    return {
        "random": core.torch_batch(rng(11), B, T),
        "wide-ratios": core.torch_batch(rng(12), B, T, log_ratio_scale=1.5),
    }


def token_advantages(batch: dict[str, Any], seed: int = 5) -> dict[str, Any]:
    """Token-varying advantages (GAE-style) at valid positions."""
    import torch

    out = core.clone(batch)
    noise = torch.tensor(np.random.default_rng(seed).normal(0, 1, size=tuple(batch["adv"].shape)),
                         dtype=batch["adv"].dtype)
    out["adv"] = batch["adv"].detach() + torch.where(batch["mask"], noise, torch.zeros_like(noise))
    return out


@functools.lru_cache(maxsize=1)
def input_classes() -> dict[str, dict[str, Any]]:
    """Every input class a trainer can hand a loss or estimator without the framework refusing it."""
    import torch

    rng = np.random.default_rng
    out: dict[str, dict[str, Any]] = {}
    out["unequal-groups"] = core.torch_batch(rng(21), B, T, groups=[0, 0, 0, 0, 1, 1])
    out["not-multiple-of-group"] = core.torch_batch(rng(22), 7, T, groups=[0, 0, 0, 1, 1, 1, 2])
    lengths = [7, 0, 4, 5, 0, 3]
    out["empty-rows-in-group"] = core.torch_batch(rng(23), B, T, lengths=lengths)
    out["no-valid-token"] = core.torch_batch(rng(24), B, T, lengths=[0] * B)
    out["negative-sparse-groups"] = core.torch_batch(rng(25), B, T, groups=[-7, 40, -7, 40, 1000, -7])
    out["interior-holes"] = core.torch_batch(rng(26), B, T, holes=True)
    eq = core.torch_batch(rng(27), B, T, dtype=torch.float32)
    r = torch.full((B,), 1.3, dtype=torch.float32)   # one group of six equal non-dyadic rewards
    eq["group"] = torch.zeros(B, dtype=torch.int64)
    eq["rewards"] = r
    tr = torch.zeros(B, T, dtype=torch.float32)
    last = eq["lengths"] - 1
    tr[torch.arange(B), last] = r
    eq["token_rewards"] = torch.where(eq["mask"], tr, eq["token_rewards"])
    out["all-equal-groups-f32"] = eq
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        for lr in (89.0, -89.0, 100.0, -100.0):
            b = core.torch_batch(rng(28), B, T, dtype=dtype)
            lp = b["old_logp"].detach().clone()
            lp[0, 0] = lp[0, 0] + lr  # one valid token at the overflow point of exp (float32 and bfloat16: 88.7)
            b["logp"] = lp.requires_grad_(True)
            ref = b["ref_logp"].detach().clone()
            ref[1, 0] = b["logp"][1, 0].detach() - lr
            b["ref_logp"] = ref
            out[f"log-ratio{lr:+g}-{tag}"] = b
    out["nan-padding"] = core.torch_batch(rng(29), B, T, padding="nan")
    return out


# =========================================================================== probes
# Upstream threads found by searching verl's tracker (search tool, corpus "issues") for the behaviour a probe
# family checks: (path fragment, case fragment, key fragment, URL or "none found"); first match wins, "" = not
# searched (sourced.upstream_for).
UPSTREAM: tuple[tuple[str, str, str, str], ...] = (
    ("'geo_mean'", "micro-batches", "", "https://github.com/verl-project/verl/issues/7913"),
    ("'geo_mean'", "ranks", "", "https://github.com/verl-project/verl/issues/7913"),
    ("'grpo_vectorized'", "norm_adv_by_std_in_grpo=False", "", "https://github.com/verl-project/verl/pull/7893"),
    ("'grpo_vectorized'", "negative-sparse-groups", "", "https://github.com/verl-project/verl/pull/7150"),
    ("'rloo_vectorized'", "rloo vs rloo_vectorized", "", "https://github.com/verl-project/verl/issues/7793"),
    ("", "nan-padding", "", "https://github.com/verl-project/verl/pull/6349"),
    ("'grpo'", "all-equal-groups-f32", "", "https://github.com/verl-project/verl/pull/4598"),
    ("'grpo_vectorized'", "all-equal-groups-f32", "", "https://github.com/verl-project/verl/pull/4598"),
    ("", "seq-mean-token-sum-norm", "", "https://github.com/verl-project/verl/pull/5417"),
    ("", "no-valid-token", "", "none found"),
    ("compute_rollout_rejection_mask", "", "", "none found"),
    ("'gspo'", "defaults", "", "none found"),
    ("'cispo'", "defaults", "", "none found"),
    ("'kl_cov'", "", "", "none found"),
    ("'dppo_tv'", "defaults", "", "none found"),
    ("'dppo_kl'", "defaults", "", "none found"),
    ("'sapo'", "", "", "none found"),
    ("'geo_mean'", "", "", "none found"),
    ("'clip_cov'", "log-ratio", "", "none found"),  # inf loss at exp's overflow point
    ("kl_penalty", "log-ratio", "", "none found"),  # k3 clamped at 10 (verl#2928 asks why; not this behaviour)
    ("'cispo'", "clip_ratio", "", "none found"),  # actor.clip_ratio ignored
)


def _probe(run: str, path: str, case: str, check: Callable[[], Verdict]) -> Probe:
    return Probe(FRAMEWORK, run, path, case, check, sourced.upstream_for(UPSTREAM, path, case))


def _actor_accepts(actor_kw: Mapping[str, Any], policy_kw: Mapping[str, Any], name: str) -> str:
    try:
        _actor(actor_kw, policy_kw, name)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return ""


def clip_variants() -> list[dict[str, Any]]:
    """The ActorConfig clip knobs: the dataclass defaults, and an asymmetric range with another dual clip."""
    return [{}, {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "clip_ratio_c": 10.0}]


def policy_variants(name: str) -> list[dict[str, Any]]:
    """PolicyLossConfig knobs that only some losses read (the registered loss needs them)."""
    if name == "dro":
        return [{"dro_beta": 0.1}]
    if name == "kl_cov":
        return [{}, {"kl_cov_ratio": 0.1, "ppo_kl_coef": 1.0}]
    return [{}]


def verl_names(registry) -> list[str]:
    """verl's own registry keys: not ``bypass_mode`` (a mode of the rollout correction, not a loss) and not the
    ``rlspec_*`` entries :mod:`rlspec.optimized.integrations.verl` registers into the same process."""
    return sorted(k for k in registry if k != "bypass_mode" and not k.startswith("rlspec_"))


def policy_probes() -> list[Probe]:
    v = _verl()
    bs = batches()
    probes: list[Probe] = []
    names = verl_names(v.ca.POLICY_LOSS_REGISTRY)
    for name in names:
        path = f"verl.trainer.ppo.core_algos.get_policy_loss_fn({name!r})"
        entry = LOSS_ENTRY.get(name)
        # ---- defaults: nothing but what ActorConfig demands
        probes += default_policy_probes(name, path, entry, bs)
        for mode in agg_modes():
            for clip in clip_variants():
                for pol in policy_variants(name):
                    actor_kw = {"loss_agg_mode": mode, **clip}
                    refused = _actor_accepts(actor_kw, pol, name)
                    label = core.describe({**actor_kw, **pol})
                    if refused:
                        probes.append(_probe("combination", path, label, lambda r=refused: unsupported(r)))
                        continue
                    probes += combination_policy_probes(name, path, entry, actor_kw, pol, bs, label)
        probes += input_policy_probes(name, path, entry)
        if name not in RANDOM_LOSSES:  # which tokens clip_cov clips is drawn at random among data-dependent candidates
            probes += knob_probes(name, path)
    return probes


def read_knobs(name: str) -> list[tuple[str, str]]:
    """The numeric config fields a registered loss reads (``config.<f>``, ``config.get("<f>")``,
    ``config.policy_loss.<f>``), parsed from its source: (section, field) with section "actor" or "policy_loss"."""
    import dataclasses
    import inspect

    v = _verl()
    src = inspect.getsource(v.ca.POLICY_LOSS_REGISTRY[name])
    actor_defaults = {f.name: f.default for f in dataclasses.fields(v.ActorConfig)}
    pol_defaults = {f.name: f.default for f in dataclasses.fields(v.PolicyLossConfig)}
    out: list[tuple[str, str]] = []
    for f in re.findall(r"config\.policy_loss\.(\w+)", src):
        if isinstance(pol_defaults.get(f), float) and ("policy_loss", f) not in out:
            out.append(("policy_loss", f))
    for f in re.findall(r"config\.get\((?:\s|#[^\n]*)*[\"'](\w+)[\"']|config\.(\w+)", src):
        f = f[0] or f[1]
        if isinstance(actor_defaults.get(f), float) and ("actor", f) not in out:
            out.append(("actor", f))
    return out


def knob_probes(name: str, path: str) -> list[Probe]:
    """Every numeric knob the loss reads must change its value for some accepted setting (a knob that is read
    but never matters is a silently ignored setting)."""
    import dataclasses

    v = _verl()
    probes: list[Probe] = []
    batch = token_advantages(batches()["wide-ratios"])
    batch["adv"] = (3.0 * batch["adv"]).detach()   # large advantages: covariance-selected tokens exist
    pol0 = policy_variants(name)[0]
    for section, field in read_knobs(name):
        cls = v.ActorConfig if section == "actor" else v.PolicyLossConfig
        d = {f.name: f.default for f in dataclasses.fields(cls)}[field]
        if section == "policy_loss" and field in pol0:
            d = pol0[field]
        values = [x for x in (d * 0.5, d * 2.0, 1e-6, 1e-3, 0.5, 5.0, 50.0) if x != d]
        base = policy_call(name, {}, pol0, "direct")

        def chk(section=section, field=field, values=values, base=base, d=d) -> Verdict:
            tried = []
            for x in values:
                a_kw = {field: x} if section == "actor" else {}
                p_kw = {**pol0, field: x} if section == "policy_loss" else pol0
                if _actor_accepts(a_kw, p_kw, name):
                    continue
                other = policy_call(name, a_kw, p_kw, "direct")
                try:
                    verdict = check_differs(base, other, batch, f"verl {name} loss: ActorConfig/PolicyLossConfig "
                                            f"{field}={d!r} vs {field}={x!r}",
                                            f"setting {section}.{field} changes nothing in the {name!r} loss "
                                            f"(default {d!r}; every other accepted value tried gives the same loss)",
                                            key=f"knob-ignored:{field}")
                except (ValueError, AssertionError, TypeError, NotImplementedError) as e:
                    tried.append(f"{x!r}: refused ({type(e).__name__})")
                    continue
                if verdict.status == "ok":
                    return ok(field=field, changed_with=x)
                last = verdict
                tried.append(repr(x))
            if not tried or all("refused" in t for t in tried):
                return unsupported(f"no other value of {field} is accepted ({', '.join(tried) or 'none'})")
            return last
        probes.append(_probe("combination", path, f"{section}.{field} changes the loss", chk))
    return probes


def default_policy_probes(name: str, path: str, entry: str | None, bs: Mapping[str, dict]) -> list[Probe]:
    probes: list[Probe] = []
    pol = {}
    refused = _actor_accepts({}, pol, name)
    call = policy_call(name, {}, pol, "direct")
    header = f"verl {name} with ActorConfig/PolicyLossConfig defaults"
    if refused:
        return [_probe("defaults", path, "defaults", lambda r=refused: unsupported(r))]
    for bname, batch in bs.items():
        if entry is not None:
            def chk(batch=batch, bname=bname) -> Verdict:
                actor = _actor({}, pol, name)
                cfg = {**structural_conventions(name, {}),
                       **agg_conventions(actor.loss_agg_mode, "direct", batch, actor)}
                if entry in ("sapo", "gmpo", "gspo_token"):
                    cfg.pop("agg", None)  # the paper's own aggregation
                return check_reference(call, batch, entry, cfg, header + f" vs the paper's {entry} ({bname})",
                                       grad_only=name in SURROGATE,
                                       what=f"with ActorConfig defaults the {name!r} loss")
            probes.append(_probe("defaults", path, f"defaults vs paper {entry} [{bname}]", safe(chk)))
        probes.append(_probe("defaults", path, f"defaults: padding width [{bname}]",
                             safe(lambda batch=batch: check_padding_width(call, batch, header))))
    tcall = policy_call(name, {}, pol, "trainer")
    probes.append(_probe("self", path, "defaults: micro-batches with ppo_loss's global counts",
                         safe(lambda: check_split(tcall, bs["random"], header + " (trainer counts)"))))
    return probes


def combination_policy_probes(name: str, path: str, entry: str | None, actor_kw: dict, pol: dict,
                              bs: Mapping[str, dict], label: str) -> list[Probe]:
    probes: list[Probe] = []
    direct = policy_call(name, actor_kw, pol, "direct")
    trainer = policy_call(name, actor_kw, pol, "trainer")
    header = f"verl {name} loss with {label}"
    batch = bs["random"]
    tok = token_advantages(batch)
    mode = actor_kw["loss_agg_mode"]
    if entry is not None:
        for style, call in (("direct", direct), ("trainer", trainer)):
            for bname, bb in (("random", batch), ("wide-ratios", bs["wide-ratios"]), ("token-adv", tok)):
                def chk(call=call, bb=bb, style=style, bname=bname) -> Verdict:
                    actor = _actor(actor_kw, pol, name)
                    cfg = {**knob_conventions(name, actor_kw, actor), **agg_conventions(mode, style, bb, actor)}
                    return check_reference(call, bb, entry, cfg, header + f" ({style} call, {bname})",
                                           grad_only=name in SURROGATE)
                probes.append(_probe("combination", path, f"{label} [{style}] vs {entry} [{bname}]", safe(chk)))
    if name not in SURROGATE:
        probes.append(_probe("combination", path, f"{label}: autograd vs finite differences",
                             safe(lambda: check_gradient(direct, batch, header))))
    if name in RANDOM_LOSSES:
        why = unsupported(f"{name} clips a random subset of tokens (torch.randperm): the result is not defined to "
                          "be invariant under row order or a micro-batch split")
        for what in ("row order", "uneven micro-batches", "2 data-parallel ranks"):
            probes.append(_probe("self" if what != "row order" else "combination", path, f"{label}: {what}",
                                 lambda why=why: why))
        probes.append(_probe("combination", path, f"{label}: float32",
                             safe(lambda: check_dtype(direct, batch, torch_dtype("float32"), header))))
        probes.append(_probe("padding", path, f"{label}: padding width [trainer]",
                             safe(lambda: check_padding_width(trainer, batch, header + " (trainer counts)"))))
        return probes
    probes.append(_probe("combination", path, f"{label}: row order",
                         safe(lambda: check_permutation(direct, batch, header))))
    probes.append(_probe("combination", path, f"{label}: float32",
                         safe(lambda: check_dtype(direct, batch, torch_dtype("float32"), header))))
    probes.append(_probe("padding", path, f"{label}: padding width [trainer]",
                         safe(lambda: check_padding_width(trainer, batch, header + " (trainer counts)"))))
    probes.append(_probe("padding", path, f"{label}: padding values",
                         safe(lambda: check_padding_values(direct, batch, header))))
    probes.append(_probe("self", path, f"{label}: uneven micro-batches with ppo_loss's global counts",
                         safe(lambda: check_split(trainer, batch, header + " (trainer counts)"))))
    probes.append(_probe("self", path, f"{label}: 2 data-parallel ranks (DDP gradient mean)",
                         safe(lambda: check_ranks(name, actor_kw, pol, batch, header))))
    return probes


def check_ranks(name: str, actor_kw: Mapping[str, Any], pol: Mapping[str, Any], batch: Mapping[str, Any],
                header: str) -> Verdict:
    """Two data-parallel ranks, each with ``dp_size=2`` and the global counts (as the engine all-reduces them),
    their losses averaged as DDP averages the gradients, equal the one-rank full-batch loss."""
    setup = f"""
        from verl.trainer.ppo import core_algos as ca
        from verl.workers.config import ActorConfig, PolicyLossConfig
        cfg = ActorConfig({ACTOR_REQUIRED}{kwargs_source(actor_kw)},
                          policy_loss=PolicyLossConfig(loss_mode={name!r}{kwargs_source(pol)}))
        DP = 2
        """
    body = """\
# one rank's loss; DDP averages gradients over the DP ranks, so each rank contributes loss / DP
dp = DP if b is not full else 1
cfg.global_batch_info.update(dp_size=dp, batch_num_tokens=int(full["mask"].sum()),
                             global_batch_size=int(full["mask"].shape[0]), loss_scale_factor=cfg.loss_scale_factor)
loss, _ = ca.get_policy_loss_fn(NAME)(
    old_log_prob=b["old_logp"], log_prob=b["logp"], advantages=b["adv"], response_mask=b["mask"],
    loss_agg_mode=cfg.loss_agg_mode, config=cfg)
loss = loss / dp
""".replace("NAME", repr(name))
    call = _call(setup, body)
    half = batch["mask"].shape[0] // 2
    return check_split(call, batch, header + " on 2 ranks", what="2 data-parallel ranks",
                       splits=[list(range(0, half)), list(range(half, batch["mask"].shape[0]))])


def input_policy_probes(name: str, path: str, entry: str | None) -> list[Probe]:
    probes: list[Probe] = []
    for mode in agg_modes():
        actor_kw = {"loss_agg_mode": mode}
        pol = policy_variants(name)[0]
        if _actor_accepts(actor_kw, pol, name):
            continue
        for style in ("direct", "trainer"):
            call = policy_call(name, actor_kw, pol, style)
            header = f"verl {name} loss, loss_agg_mode={mode!r}, {style} call"
            for iname, batch in input_classes().items():
                if iname in ("all-equal-groups-f32",):
                    continue
                def chk(call=call, batch=batch, header=header, iname=iname, style=style, mode=mode,
                        pol=pol) -> Verdict:
                    h = header + f", input {iname}"
                    fin = check_finite(call, batch, h, what=f"the loss (input {iname})")
                    if fin.status != "ok" or entry is None or iname == "nan-padding":
                        return fin
                    actor = _actor({"loss_agg_mode": mode}, pol, name)
                    cfg = {**knob_conventions(name, {}, actor), **agg_conventions(mode, style, batch, actor)}
                    # semantics in float64 on the same (rounded) inputs; the low precision itself was checked
                    # for non-finite values above (rounding of a low-precision run is not a finding here)
                    return check_reference(call, as_float64(batch), entry, cfg, h, grad_only=name in SURROGATE,
                                           what=f"on input {iname} the loss")
                probes.append(_probe("input", path, f"loss_agg_mode={mode!r} [{style}]: {iname}", safe(chk)))
    return probes


# --------------------------------------------------------------------------- the trainer's ppo_loss
PPO_LOSS_SETUP = """
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig, PolicyLossConfig
from verl.workers.utils.losses import ppo_loss
cfg = ActorConfig({kw})
P = 2   # prompt tokens per row
"""
PPO_LOSS_BODY = """\
# the padded TensorDict the engine hands ppo_loss (prompts, responses, attention_mask, response_mask, ...) and
# the model output as the engine produces it: log-probs packed over prompt + response tokens, shifted left by one
Bn, Tn = b["mask"].shape
resp_len = b["mask"].long().cumsum(-1).argmax(-1) + 1   # up to the last valid token (holes stay inside)
resp_len = torch.where(b["mask"].any(-1), resp_len, torch.zeros_like(resp_len))
attn = torch.cat([torch.ones(Bn, P, dtype=torch.long), (torch.arange(Tn)[None, :] < resp_len[:, None]).long()], 1)
packed = []
for i in range(Bn):
    n = int(resp_len[i])
    packed += [torch.zeros(P - 1, dtype=b["logp"].dtype), b["logp"][i, :n], torch.zeros(1, dtype=b["logp"].dtype)]
data = TensorDict({"prompts": torch.zeros(Bn, P, dtype=torch.long), "responses": torch.zeros(Bn, Tn, dtype=torch.long),
                   "attention_mask": attn, "response_mask": b["mask"], "old_log_probs": b["old_logp"],
                   "advantages": b["adv"], "ref_log_prob": b["ref_logp"]}, batch_size=[Bn])
# what the engine assigns: the mini-batch's valid-token count, its rows, the data-parallel size
tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(full["mask"].sum()),
                     global_batch_size=int(full["mask"].shape[0]))
cfg.global_batch_info.clear()
loss, _ = ppo_loss(cfg, {"log_probs": torch.cat(packed)}, data)
"""


def ppo_loss_call(actor_kw: Mapping[str, Any], loss_mode: str, pol: Mapping[str, Any]) -> SourceCall:
    kw = f"{ACTOR_REQUIRED}{kwargs_source(actor_kw)}, policy_loss=PolicyLossConfig(loss_mode={loss_mode!r}{kwargs_source(pol)})"
    setup = "from verl.trainer.ppo import core_algos as ca\n" + PPO_LOSS_SETUP.replace("{kw}", kw)
    return _call(setup, ("torch.manual_seed(0)\n" if loss_mode in RANDOM_LOSSES else "") + PPO_LOSS_BODY)


def ppo_loss_probes() -> list[Probe]:
    """verl.workers.utils.losses.ppo_loss, the trainer's loss: every registered policy loss × aggregation mode ×
    KL loss on/off (with ActorConfig's kl_loss_type), fed as the engine feeds it."""
    v = _verl()
    probes: list[Probe] = []
    path = "verl.workers.utils.losses.ppo_loss"
    bs = batches()
    batch = bs["random"]
    fields = {f.name: f.default for f in __import__("dataclasses").fields(v.ActorConfig)}
    kl_type, kl_coef = fields["kl_loss_type"], fields["kl_loss_coef"]
    for name in verl_names(v.ca.POLICY_LOSS_REGISTRY):
        entry = LOSS_ENTRY.get(name)
        pol = policy_variants(name)[0]
        for mode in agg_modes():
            # loss_scale_factor: the constant ActorConfig documents for seq-mean-token-sum-norm (None = width)
            scale_opts = [None, 16] if mode == "seq-mean-token-sum-norm" else [None]
            for use_kl, scale in itertools.product((False, True), scale_opts):
                actor_kw = {"loss_agg_mode": mode, "use_kl_loss": use_kl}
                if scale is not None:
                    actor_kw["loss_scale_factor"] = scale
                if _actor_accepts(actor_kw, pol, name):
                    continue
                call = ppo_loss_call(actor_kw, name, pol)
                label = f"policy_loss.loss_mode={name!r}, {core.describe(actor_kw)}"
                header = f"verl ppo_loss (the trainer's loss) with {label}"
                run = "defaults" if (mode == fields["loss_agg_mode"] and not use_kl) else "combination"
                if entry is not None:
                    def chk(call=call, actor_kw=actor_kw, mode=mode, use_kl=use_kl, header=header, name=name,
                            entry=entry, pol=pol) -> Verdict:
                        actor = _actor(actor_kw, pol, name)
                        cfg = {**knob_conventions(name, actor_kw, actor),
                               **agg_conventions(mode, "trainer", batch, actor)}
                        extra = []
                        if use_kl:
                            kcfg = {**agg_conventions(mode, "trainer", batch, actor)}
                            if KL_ENTRY.get(kl_type) == "kl_k3":
                                kcfg.update(log_ratio_clamp=20.0, value_clamp=10.0)
                            extra.append((KL_ENTRY[kl_type], kcfg, kl_coef))
                        return check_reference(call, batch, entry, cfg, header, grad_only=name in SURROGATE,
                                               extra_terms=extra, what="the trainer's loss")
                    probes.append(_probe(run, path, f"{label} vs {entry}", safe(chk)))
                if name in RANDOM_LOSSES:
                    continue
                probes.append(_probe("self", path, f"{label}: uneven micro-batches through ppo_loss",
                                     safe(lambda call=call, header=header: check_split(call, batch, header))))
                probes.append(_probe("padding", path, f"{label}: padding width",
                                     safe(lambda call=call, header=header: check_padding_width(call, batch, header))))
                probes.append(_probe("input", path, f"{label}: no-valid-token",
                                     safe(lambda call=call, header=header: check_finite(
                                         call, input_classes()["no-valid-token"], header + ", no valid token",
                                         what="the trainer's loss on a mini-batch without valid tokens"))))
    return probes


# --------------------------------------------------------------------------- KL
def kl_call(kind: str, mode: str, style: str) -> SourceCall:
    setup = "from verl.trainer.ppo import core_algos as ca\n"
    info = ("info = dict(dp_size=1, batch_num_tokens=int(full['mask'].sum()), "
            "global_batch_size=int(full['mask'].shape[0]))\n") if style == "trainer" else "info = {}\n"
    body = info + f"""# ppo_loss with use_kl_loss: agg_loss(kl_penalty(log_prob, ref_log_prob, kl_loss_type), ...)
kld = ca.kl_penalty(logprob=b["logp"], ref_logprob=b["ref_logp"], kl_penalty={kind!r})
loss = ca.agg_loss(loss_mat=kld, loss_mask=b["mask"], loss_agg_mode={mode!r}, **info)
"""
    return _call(setup, body)


KL_ENTRY = {"kl": "kl_k1", "k1": "kl_k1", "abs": "kl_abs", "mse": "kl_k2", "k2": "kl_k2", "low_var_kl": "kl_k3",
            "k3": "kl_k3"}


def kl_probes() -> list[Probe]:
    bs = batches()
    probes: list[Probe] = []
    path = "verl.trainer.ppo.core_algos.kl_penalty"
    v = _verl()
    default_kind = v.ActorConfig.__dataclass_fields__["kl_loss_type"].default
    kinds = kl_types()
    kinds += [k + "+" for k in kinds if k != "full"]
    for kind in kinds:
        base = kind.rstrip("+")
        entry = KL_ENTRY.get(base)
        straight = kind.endswith("+") and base not in ("k2", "mse")
        for mode in agg_modes():
            for style in ("direct", "trainer"):
                call = kl_call(kind, mode, style)
                header = f"verl KL loss kl_loss_type={kind!r}, loss_agg_mode={mode!r}, {style} call"
                case = f"kl_loss_type={kind!r}, loss_agg_mode={mode!r} [{style}]"
                run = "defaults" if (kind == default_kind and mode == "token-mean" and style == "direct") \
                    else "combination"
                batch = bs["random"]
                if entry is None:
                    probes.append(_probe(run, path, case, safe(lambda call=call, batch=batch, header=header:
                                                                  check_finite(call, batch, header))))
                    continue
                actor = _verl().ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1)

                def chk(call=call, batch=batch, header=header, mode=mode, style=style, entry=entry,
                        straight=straight, actor=actor) -> Verdict:
                    cfg = {**agg_conventions(mode, style, batch, actor)}
                    if straight:
                        cfg["straight_through_k2"] = True
                    return check_reference(call, batch, entry, cfg, header, what="the KL loss")
                probes.append(_probe(run, path, case + f" vs {entry}", safe(chk)))
                if style == "direct" and not straight:
                    probes.append(_probe("combination", path, case + ": autograd vs finite differences",
                                         safe(lambda call=call, batch=batch, header=header:
                                               check_gradient(call, batch, header))))
                if style == "trainer":
                    probes.append(_probe("self", path, case + ": uneven micro-batches",
                                         safe(lambda call=call, batch=batch, header=header:
                                               check_split(call, batch, header))))
                    probes.append(_probe("padding", path, case + ": padding width",
                                         safe(lambda call=call, batch=batch, header=header:
                                               check_padding_width(call, batch, header))))
        # extreme log-ratios against the reference estimator (what the penalty should be)
        if entry is not None:
            for iname, batch in input_classes().items():
                if not iname.startswith("log-ratio"):
                    continue
                call = kl_call(kind, "token-mean", "direct")
                header = f"verl KL loss kl_loss_type={kind!r} on input {iname}"

                def chk(call=call, batch=batch, header=header, entry=entry, straight=straight,
                        iname=iname) -> Verdict:
                    fin = check_finite(call, batch, header, what=f"the KL loss (input {iname})")
                    if fin.status != "ok":
                        return fin
                    cfg = {"straight_through_k2": True} if straight else {}
                    return check_reference(call, as_float64(batch), entry, cfg, header,
                                           what=f"on input {iname} the KL loss")
                probes.append(_probe("input", path, f"kl_loss_type={kind!r}: {iname}", safe(chk)))
    # KL in the reward: compute_rewards(scores, old_log_prob, ref_log_prob, kl_ratio) (apply_kl_penalty)
    rpath = "verl.trainer.ppo.core_algos.compute_rewards"
    default_in_reward = v.AlgoConfig.__dataclass_fields__["kl_penalty"].default
    for kind in kl_types():
        call = _call("from verl.trainer.ppo import core_algos as ca\n", f"""
# ray_trainer.apply_kl_penalty: kld = kl_penalty(old_log_probs, ref_log_prob, algorithm.kl_penalty) * mask
kld = ca.kl_penalty(b["old_logp"], b["ref_logp"], kl_penalty={kind!r}) * b["mask"]
loss = ca.compute_rewards(b["token_rewards"] * b["mask"], kld, torch.zeros_like(kld), 0.1)
""")
        batch = bs["random"]
        entry = KL_ENTRY.get(kind)

        def chk(call=call, batch=batch, kind=kind, entry=entry) -> Verdict:
            import torch

            try:
                call(batch)
            except (NotImplementedError, ValueError) as e:
                return unsupported(f"kl_penalty={kind!r} refused: {type(e).__name__} {e}")
            from rlspec.reference import registry

            lp, rp = batch["old_logp"].detach().double().numpy(), batch["ref_logp"].detach().double().numpy()
            d = lp - rp
            est = {"kl_k1": d, "kl_k2": 0.5 * d * d, "kl_k3": np.exp(-d) + d - 1, "kl_abs": np.abs(d)}[entry]
            registry.get(entry)  # the entry the estimator claims exists
            m = batch["mask"].numpy()
            want = (batch["token_rewards"].detach().double().numpy() * m) - 0.1 * est * m
            del torch
            return check_array_reference(call, batch, want, f"verl in-reward KL algorithm.kl_penalty={kind!r}",
                                         f"the in-reward KL penalty {kind!r} differs from the {entry} estimator",
                                         key=f"kl-in-reward:{kind}")
        run = "defaults" if kind == default_in_reward else "combination"
        probes.append(_probe(run, rpath, f"algorithm.kl_penalty={kind!r} in the reward", chk))
    return probes


# --------------------------------------------------------------------------- entropy / value loss
def aux_loss_probes() -> list[Probe]:
    probes: list[Probe] = []
    batch = batches()["random"]
    for mode in agg_modes():
        for style in ("direct", "trainer"):
            info = ("info = dict(dp_size=1, batch_num_tokens=int(full['mask'].sum()), "
                    "global_batch_size=int(full['mask'].shape[0]))\n") if style == "trainer" else "info = {}\n"
            call = _call("from verl.trainer.ppo import core_algos as ca\n", info + f"""
# compute_value_loss with the critic's cliprange_value (CriticConfig default 0.5); logp plays the value head
loss, _ = ca.compute_value_loss(vpreds=b["logp"], returns=b["returns"], values=b["old_values"],
                                response_mask=b["mask"], cliprange_value=0.5, loss_agg_mode={mode!r}, **info)
""")
            path = "verl.trainer.ppo.core_algos.compute_value_loss"
            case = f"loss_agg_mode={mode!r} [{style}]"
            header = f"verl compute_value_loss {case}"
            actor = _verl().ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1)

            def chk(call=call, mode=mode, style=style, header=header, actor=actor) -> Verdict:
                cfg = {**agg_conventions(mode, style, batch, actor), "eps": 0.5}
                return check_reference(call, batch, "value_clip", cfg, header, what="the value loss",
                                       names={"values": "logp"})
            probes.append(_probe("combination", path, case + " vs value_clip", safe(chk)))
            probes.append(_probe("combination", path, case + ": autograd vs finite differences",
                                 safe(lambda call=call, header=header: check_gradient(call, batch, header))))
            if style == "trainer":
                probes.append(_probe("self", path, case + ": uneven micro-batches",
                                     safe(lambda call=call, header=header: check_split(call, batch, header))))
            for iname in ("no-valid-token", "empty-rows-in-group"):
                ib = input_classes()[iname]
                probes.append(_probe("input", path, f"{case}: {iname}",
                                     safe(lambda call=call, ib=ib, header=header, iname=iname:
                                           check_finite(call, ib, header + f", input {iname}",
                                                        what=f"the value loss (input {iname})"))))
    return probes


# --------------------------------------------------------------------------- advantage estimators
def estimator_call(name: str, *, trainer: bool = True, algo_kw: Mapping[str, Any] | None = None,
                   dtype: str = "") -> SourceCall:
    """The estimator called with what ``ray_trainer.compute_advantage`` passes (GRPO: its own branch with
    ``norm_adv_by_std_in_grpo``; others: token_level_rewards, response_mask, config, index, reward_baselines;
    GAE: values, gamma, lam)."""
    import inspect

    fn = _verl().ca.get_adv_estimator_fn(name)
    params = inspect.signature(fn).parameters
    algo = kwargs_source(algo_kw or {}).lstrip(", ")
    setup = f"""
        from verl.trainer.ppo import core_algos as ca
        from verl.trainer.config import AlgoConfig
        algo = AlgoConfig({algo})
        """
    lines = ['tlr = torch.where(b["mask"], b["token_rewards"], torch.zeros_like(b["token_rewards"]))'
             '   # reward managers write the score on the last valid token, 0 elsewhere',
             'mask = b["mask"].to(tlr.dtype)', 'uid = b["group"].numpy()']
    if name == "gae":
        lines.append('loss, _ = ca.compute_gae_advantage_return(token_level_rewards=tlr, values=b["values"], '
                     'response_mask=mask, gamma=algo.gamma, lam=algo.lam)')
    elif name == "grpo":
        lines.append("loss, _ = ca.compute_grpo_outcome_advantage(token_level_rewards=tlr, response_mask=mask, "
                     "index=uid, norm_adv_by_std_in_grpo=algo.norm_adv_by_std_in_grpo)")
    else:
        kw = ["token_level_rewards=tlr", "response_mask=mask", "config=algo"]
        if "index" in params:
            kw.append("index=uid")
        if "reward_baselines" in params:
            kw.append('reward_baselines=0.5 * b["rewards"]')
        if "old_log_probs" in params:
            kw.append('old_log_probs=b["old_logp"]')
        if "sum_pi_squared" in params:
            kw.append('sum_pi_squared=torch.exp(2 * b["old_logp"])')
        lines.append(f"loss, _ = ca.get_adv_estimator_fn({name!r})({', '.join(kw)})")
    return _call(setup, "\n".join(lines))


ADV_ENTRY = {"grpo": "grpo", "grpo_vectorized": "grpo", "rloo": "rloo", "rloo_vectorized": "rloo", "opo": "opo",
             "gpg": "gpg", "remax": "remax", "reinforce_plus_plus": "reinforce_pp",
             "reinforce_plus_plus_baseline": "reinforce_pp_baseline", "gae": "gae", "grpo_passk": "grpo_passk"}
# conventions verl states for each estimator (adapter CONVENTIONS: group of one, eps placement, whitening)
ADV_CONV: dict[str, dict[str, Any]] = {
    "grpo": {"ddof": 1, "eps": 1e-6, "eps_placement": "outside", "singleton": "mean0std1"},
    "grpo_vectorized": {"ddof": 1, "eps": 1e-6, "eps_placement": "outside", "singleton": "mean0std1"},
    "rloo": {"singleton": "raw"}, "rloo_vectorized": {"singleton": "zero"}, "opo": {"singleton": "raw"},
    "gpg": {"alpha": "verl", "singleton": "raw", "f_norm": "one"}, "remax": {"reward_to_go": True},
    "reinforce_plus_plus": {"ddof": 1, "eps": 1e-8, "eps_placement": "inside", "discount_masked": False},
    "reinforce_plus_plus_baseline": {"ddof": 1, "eps": 1e-8, "eps_placement": "inside", "discount_masked": False,
                                     "singleton": "raw"},
    "gae": {"masked_steps": "skip", "whiten": True, "whiten_ddof": 1, "whiten_eps": 1e-8},
    "grpo_passk": {"std_normalize": True, "eps": 1e-6, "singleton": "raise"},
}


def estimator_reference(name: str, batch: Mapping[str, Any], algo_kw: Mapping[str, Any]) -> np.ndarray | None:
    """(B, T) advantages of the reference entry the estimator claims, at verl's stated conventions."""
    from rlspec.reference import registry

    entry = ADV_ENTRY.get(name)
    if entry is None:
        return None
    conv = dict(ADV_CONV.get(name, {}))
    if name in ("grpo", "grpo_vectorized", "grpo_passk") and algo_kw.get("norm_adv_by_std_in_grpo") is False:
        conv["std_normalize"] = False
    if name in ("reinforce_plus_plus", "gae"):
        conv["gamma"] = float(algo_kw.get("gamma", 1.0))
    if name == "gae":
        conv["lam"] = float(algo_kw.get("lam", 1.0))
    spec = registry.get(entry)
    a = core.to_numpy(batch)
    m = a["mask"].astype(bool)
    tlr = np.where(m, a["token_rewards"], 0.0)
    kw: dict[str, Any] = {"mask": m}
    params = __import__("inspect").signature(spec.fn).parameters
    if "token_rewards" in params:
        kw["token_rewards"] = tlr
    if "values" in params:
        kw["values"] = a["values"]
    if "rewards" in params:
        kw["rewards"] = tlr.sum(axis=1)
    if "group" in params:
        kw["group"] = a["group"]
    if "baseline_rewards" in params:
        kw["baseline_rewards"] = 0.5 * a["rewards"]
    if name == "remax":
        kw["rewards"] = tlr
    out = spec.fn(**kw, config=spec.config(**conv))
    adv = out[0] if isinstance(out, tuple) else out
    adv = np.asarray(adv, dtype=np.float64)
    if adv.ndim == 1:
        adv = np.repeat(adv[:, None], m.shape[1], axis=1)
    return np.where(m, adv, 0.0)


def estimator_probes() -> list[Probe]:
    v = _verl()
    probes: list[Probe] = []
    bs = batches()
    algo_fields = v.AlgoConfig.__dataclass_fields__
    for name in verl_names(v.ca.ADV_ESTIMATOR_REGISTRY):
        path = f"verl.trainer.ppo.core_algos.get_adv_estimator_fn({name!r})"
        knob_sets = [{}]
        if name in ("grpo", "grpo_vectorized", "grpo_passk", "gdpo"):
            knob_sets.append({"norm_adv_by_std_in_grpo": not algo_fields["norm_adv_by_std_in_grpo"].default})
        if name in ("gae", "reinforce_plus_plus"):
            knob_sets.append({"gamma": 0.9, "lam": 0.95})
        for algo_kw in knob_sets:
            call = estimator_call(name, algo_kw=algo_kw)
            label = core.describe(algo_kw)
            run = "defaults" if not algo_kw else "combination"
            header = f"verl advantage estimator {name!r}, AlgoConfig({label}), as ray_trainer.compute_advantage calls it"
            batch = bs["random"]

            def ref_chk(call=call, algo_kw=algo_kw, header=header, batch=batch, name=name, label=label) -> Verdict:
                try:
                    want = estimator_reference(name, batch, algo_kw)
                except Exception as e:  # noqa: BLE001
                    return unsupported(f"reference refuses: {type(e).__name__}: {e}")
                if want is None:
                    return check_array_finite(call, batch, header)
                return check_array_reference(call, batch, want, header,
                                             f"with AlgoConfig({label}) the {name!r} advantages differ from "
                                             f"{ADV_ENTRY[name]}'s ({core.describe(ADV_CONV.get(name, {}))})",
                                             key=f"adv-ref:{name}")
            probes.append(_probe(run, path, f"{label} vs reference", ref_chk))
            probes.append(_probe("padding", path, f"{label}: padding width", safe(
                lambda call=call, header=header, batch=batch: check_array_padding(
                    call, batch, header, summary="the advantages at valid tokens change when 3 padded columns are "
                    "appended", key="adv-padding-width"))))
            probes.append(_probe("combination", path, f"{label}: row order", safe(
                lambda call=call, header=header, batch=batch: check_array_permutation(
                    call, batch, header, summary="the advantages depend on the order of the rows",
                    key="adv-row-order"))))
            if algo_kw:
                continue
            for iname, ib in input_classes().items():
                if iname.startswith("log-ratio") or iname == "nan-padding":
                    continue

                def in_chk(call=call, ib=ib, header=header, iname=iname, name=name) -> Verdict:
                    fin = check_array_finite(call, ib, header + f", input {iname}")
                    if fin.status != "ok":
                        return fin
                    try:
                        want = estimator_reference(name, ib, {})
                    except Exception as e:  # noqa: BLE001
                        return unsupported(f"reference refuses {iname}: {type(e).__name__}: {e}")
                    if want is None:
                        return fin
                    dt = dtype_name(ib)
                    return check_array_reference(call, ib, want, header + f", input {iname}",
                                                 f"on input {iname} the {name!r} advantages differ from "
                                                 f"{ADV_ENTRY[name]}'s", key=f"adv-input:{name}:{iname}", dtype=dt)
                probes.append(_probe("input", path, f"input {iname}", in_chk))
    probes += estimator_pair_probes()
    return probes


def estimator_pair_probes() -> list[Probe]:
    """Loop vs vectorised estimators, and every estimator of a family under the trainer's dispatch."""
    v = _verl()
    probes: list[Probe] = []
    names = set(verl_names(v.ca.ADV_ESTIMATOR_REGISTRY))
    pairs = [(n, n + "_vectorized") for n in sorted(names) if n + "_vectorized" in names]
    inputs = {"random": batches()["random"], **{k: x for k, x in input_classes().items()
                                               if k in ("unequal-groups", "not-multiple-of-group",
                                                        "empty-rows-in-group", "negative-sparse-groups")}}
    single = core.torch_batch(np.random.default_rng(31), B, T, groups=[0, 1, 2, 3, 3, 3])
    inputs["singleton-groups"] = single
    algo_default = v.AlgoConfig.__dataclass_fields__["norm_adv_by_std_in_grpo"].default
    for loop, vec in pairs:
        knob_sets = [{}, {"norm_adv_by_std_in_grpo": not algo_default}] if loop.startswith("grpo") else [{}]
        for algo_kw in knob_sets:
            a = estimator_call(loop, algo_kw=algo_kw)
            b = estimator_call(vec, algo_kw=algo_kw)
            label = core.describe(algo_kw)
            for iname, batch in inputs.items():
                header = (f"verl {loop!r} vs {vec!r} with AlgoConfig({label}), each called as "
                          "ray_trainer.compute_advantage calls it")
                probes.append(_probe("self", f"verl.trainer.ppo.core_algos.get_adv_estimator_fn({vec!r})",
                                     f"{loop} vs {vec}, {label}, input {iname}",
                                     lambda a=a, b=b, batch=batch, header=header, loop=loop, vec=vec, iname=iname,
                                     label=label:
                                     check_array_agree(a, b, batch, header,
                                                       f"adv_estimator={vec!r} and {loop!r} give different "
                                                       f"advantages ({label}, input {iname})",
                                                       key=f"loop-vs-vec:{loop}:{label}")))
    return probes


# --------------------------------------------------------------------------- fused / chunked vs eager
FUSED_SETUP = """
from verl.utils import torch_functional as verl_F
V, D = 11, 5   # vocabulary and hidden size of a toy LM head
g = torch.Generator().manual_seed(0)
W = torch.randn(V, D, generator=g, dtype=torch.float64)
H0 = torch.randn(6, 7, D, generator=g, dtype=torch.float64)
DIR = torch.randn(D, generator=g, dtype=torch.float64)
LABELS = torch.randint(0, V, (6, 7), generator=g)
"""
FUSED_HEAD = """\
# hidden states that depend on the leaf b["logp"] (one direction per token), so d loss / d logp is the
# hidden-state gradient projected on that direction; the loss weighs log-probs and entropies by the advantages
h = H0[: b["logp"].shape[0], : b["logp"].shape[1]] + b["logp"][..., None] * DIR
labels = LABELS[: h.shape[0], : h.shape[1]]
m = b["mask"].to(h.dtype)
"""


def fused_probes() -> list[Probe]:
    """Pairs of paths for the actor's log-probs and entropy: ``FusedLinearForPPO`` (torch backend: chunked, custom
    backward, float32 logits) and the chunked/row-wise helpers, each against the eager path
    (``logits = h Wᵀ / temperature``, ``logprobs_from_logits_naive``, ``entropy_from_logits``) for several chunk
    sizes and temperatures: the advantage-weighted log-prob and entropy terms and their gradients. Tolerance
    float32 where a path documents a float32 upcast."""
    probes: list[Probe] = []
    batch = batches()["random"]
    try:
        import importlib

        importlib.import_module("verl.utils.experimental.torch_functional")
        fused_ok = ""
    except Exception as e:  # noqa: BLE001 - the module's imports fail in this environment
        fused_ok = f"verl.utils.experimental.torch_functional does not import here ({type(e).__name__}: {e})"
    for temperature in (1.0, 0.7):
        eager = _call(FUSED_SETUP, FUSED_HEAD + f"""\
logits = (h @ W.t()) / {temperature!r}
logp = verl_F.logprobs_from_logits_naive(logits, labels)
ent = verl_F.entropy_from_logits(logits)
loss = ((b["adv"] * logp - 0.01 * ent) * m).sum() / m.sum().clamp(min=1)
""")
        variants = {
            "verl.utils.torch_functional.logprobs_from_logits": ("logprobs_from_logits (row-wise logsumexp)", """\
logits = (h @ W.t()) / TEMP
logp = verl_F.logprobs_from_logits(logits, labels)
ent = verl_F.entropy_from_logits(logits)
""", "float64"),
        }
        for chunk in (1, 4, 2048):
            variants[f"verl.utils.torch_functional.entropy_from_logits_with_chunking#{chunk}"] = (
                f"entropy_from_logits_with_chunking(chunk_size={chunk})", f"""\
logits = (h @ W.t()) / TEMP
logp = verl_F.logprobs_from_logits_naive(logits, labels)
ent = verl_F.entropy_from_logits_with_chunking(logits.reshape(-1, logits.shape[-1]), chunk_size={chunk}).reshape(
    logits.shape[:-1])
""", "float32")   # documented: each chunk is computed in float32
            variants[f"verl.utils.experimental.torch_functional.FusedLinearForPPO#{chunk}"] = (
                f"FusedLinearForPPO(chunk_size={chunk})", f"""\
from verl.utils.experimental.torch_functional import FusedLinearForPPO
logp, ent = FusedLinearForPPO(chunk_size={chunk})(h, W, labels, temperature=TEMP)
""", "float32")
        for key, (what, src, dt) in variants.items():
            path = key.split("#")[0]
            label = f"{what}, temperature={temperature}"
            if "FusedLinearForPPO" in key and fused_ok:
                probes.append(_probe("self", path, f"{label} vs eager", lambda r=fused_ok: unsupported(r)))
                continue
            other = _call(FUSED_SETUP, FUSED_HEAD + src.replace("TEMP", repr(temperature)) +
                               'loss = ((b["adv"] * logp - 0.01 * ent) * m).sum() / m.sum().clamp(min=1)\n')
            probes.append(_probe("self", path, f"{label} vs eager", safe(
                lambda other=other, eager=eager, label=label, dt=dt: check_agree(
                    eager, other, batch, f"verl {label} vs the eager LM head",
                    f"{label} differs from the eager log-softmax/entropy path", key=f"pair-vs-eager:{label}",
                    dtype=dt))))
    return probes


# --------------------------------------------------------------------------- rollout correction
def bypass_call(rc_kw: Mapping[str, Any], mode: str, style: str) -> SourceCall:
    setup = f"""
        from verl.trainer.ppo import core_algos as ca
        from verl.trainer.config import RolloutCorrectionConfig
        from verl.workers.config import ActorConfig, PolicyLossConfig
        rc = RolloutCorrectionConfig({kwargs_source(rc_kw).lstrip(', ')})
        cfg = ActorConfig({ACTOR_REQUIRED}, loss_agg_mode={mode!r},
                          policy_loss=PolicyLossConfig(loss_mode="bypass_mode", rollout_correction=rc))
        """
    info = TRAINER_INFO if style == "trainer" else "cfg.global_batch_info.clear()\n"
    body = info + """# bypass mode: old_log_prob is the rollout policy's log-prob
loss, _ = ca.get_policy_loss_fn("bypass_mode")(
    old_log_prob=b["old_logp"], log_prob=b["logp"], advantages=b["adv"], response_mask=b["mask"],
    loss_agg_mode=cfg.loss_agg_mode, config=cfg)
"""
    return _call(setup, body)


def rollout_correction_space() -> list[dict[str, Any]]:
    """RolloutCorrectionConfig combinations: IS level × threshold form × batch-normalise, each rejection
    option alone (with its threshold form), × loss type. Values from the dataclass and the helper's sets."""
    import inspect

    v = _verl()
    src = inspect.getsource(v.rc.compute_rollout_correction_weights)
    levels = [None, *strings_in(src, r"valid_is_levels\s*=\s*\{[^}]*\}")]
    loss_types = strings_in(inspect.getsource(v.ca.compute_policy_loss_bypass_mode), r"loss_type == [\"'][^\"']+[\"']")
    out: list[dict[str, Any]] = []
    for lt in loss_types:
        for lvl in levels:
            for thr in ((2.0, "0.5_5.0") if lvl else (2.0,)):
                for bn in ((False, True) if lvl else (False,)):
                    out.append({"loss_type": lt, "rollout_is": lvl, "rollout_is_threshold": thr,
                                "rollout_is_batch_normalize": bn, "bypass_mode": True})
        for opt in rs_options():
            thr = "0.5_5.0" if opt.endswith("k1") else 2.0
            out.append({"loss_type": lt, "rollout_is": None, "rollout_rs": opt, "rollout_rs_threshold": thr,
                        "bypass_mode": True})
    return out


def rollout_correction_probes() -> list[Probe]:
    probes: list[Probe] = []
    path = "verl.trainer.ppo.core_algos.compute_policy_loss_bypass_mode"
    bs = batches()
    batch = bs["wide-ratios"]
    for rc_kw in rollout_correction_space():
        for mode in ("token-mean", "seq-mean-token-mean"):
            direct = bypass_call(rc_kw, mode, "direct")
            trainer = bypass_call(rc_kw, mode, "trainer")
            label = core.describe({**rc_kw, "loss_agg_mode": mode})
            header = f"verl bypass_mode loss with RolloutCorrectionConfig({core.describe(rc_kw)}), {mode}"
            probes.append(_probe("combination", path, f"{label}: finite",
                                 safe(lambda c=direct, h=header: check_finite(c, batch, h))))
            probes.append(_probe("combination", path, f"{label}: row order",
                                 safe(lambda c=direct, h=header: check_permutation(c, batch, h))))
            probes.append(_probe("self", path, f"{label}: uneven micro-batches with ppo_loss's global counts",
                                 safe(lambda c=trainer, h=header: check_split(c, batch, h + " (trainer counts)"))))
            probes.append(_probe("padding", path, f"{label}: padding values",
                                 safe(lambda c=direct, h=header: check_padding_values(c, batch, h))))
    # defaults: RolloutCorrectionConfig() in bypass mode
    call = bypass_call({"bypass_mode": True}, "token-mean", "direct")
    probes.append(_probe("defaults", path, "RolloutCorrectionConfig(bypass_mode=True) defaults: finite",
                         safe(lambda: check_finite(call, batch, "verl bypass_mode with RolloutCorrectionConfig "
                                                    "defaults"))))
    probes += rejection_vs_icepop_probes()
    return probes


def rejection_vs_icepop_probes() -> list[Probe]:
    """Two documented ways of keeping the tokens whose ratio π_train/π_rollout lies in [lower, upper]: IcePop IS
    weights (``rollout_is_threshold="lower_upper"``) and ratio-bounded rejection (``rollout_rs="token_k1"`` with
    ``"lower_upper"``); they must keep the same tokens."""
    probes: list[Probe] = []
    path = "verl.trainer.ppo.rollout_corr_helper.compute_rollout_rejection_mask"
    batch = batches()["wide-ratios"]
    for thr in ("0.5_5.0", "0.8_1.25", "0.5_2.0"):
        for opt in [o for o in rs_options() if o.endswith("k1")]:
            setup = "from verl.trainer.ppo import rollout_corr_helper as rch\n"
            level = "token" if opt.startswith("token") else "sequence"
            icepop = _call(setup, f"""
# IcePop: zero IS weight outside [lower, upper] of the ratio pi_train / pi_rollout
lr = (b["logp"] - b["old_logp"]).detach()
w, _ = rch.compute_rollout_correction_weights(lr, b["mask"].float(), rollout_is={level!r},
                                              rollout_is_threshold={thr!r})
loss = (w > 0).double() * b["mask"]
""")
            rej = _call(setup, f"""
# rejection with ratio bounds lower_upper: the mask it keeps
lr = (b["logp"] - b["old_logp"]).detach()
kept, _ = rch.compute_rollout_rejection_mask(lr, b["mask"].float(), rollout_rs={opt!r}, rollout_rs_threshold={thr!r})
loss = kept.double() * b["mask"]
""")
            if not opt.startswith("token"):
                # sequence options: the sequence ratio is exp(sum or mean of the token log-ratios)
                continue
            header = (f"verl: rollout_rs={opt!r} and IcePop rollout_is_threshold both take ratio bounds {thr!r}; "
                      "they keep different tokens")
            probes.append(_probe("self", path, f"rollout_rs={opt!r} vs IcePop, bounds {thr}",
                                 lambda icepop=icepop, rej=rej, header=header, opt=opt, thr=thr:
                                 check_array_agree(icepop, rej, batch, header,
                                                   f"rollout_rs={opt!r} with ratio bounds {thr!r} keeps other tokens "
                                                   "than IcePop with the same bounds (it bounds π_rollout/π_train, "
                                                   "the inverse ratio)", key=f"rs-bounds:{opt}")))
    return probes


# =========================================================================== entry point
def probes() -> list[Probe]:
    """Every probe of verl (see the module docstring for what is enumerated)."""
    out: list[Probe] = []
    out += policy_probes()
    out += ppo_loss_probes()
    out += kl_probes()
    out += aux_loss_probes()
    out += estimator_probes()
    out += rollout_correction_probes()
    out += fused_probes()
    return out


__all__ = ["FRAMEWORK", "DIST", "PREAMBLE", "probes", "batches", "input_classes", "token_advantages"]

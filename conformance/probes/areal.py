"""Probes of AReaL (checked against 1.0.4): its entry points called the way its trainer calls them.

What is enumerated (the checks of :mod:`rlspec.conformance.probes.core` decide; nothing lists a known bug):

* the actor loss as the trainer runs it: ``areal.trainer.ppo.actor.grpo_loss_fn`` with the arguments
  ``PPOActor._ppo_update`` binds from ``PPOActorConfig`` (``eps_clip``, ``eps_clip_higher``, ``c_clip``,
  ``importance_sampling_level`` (values parsed from ``ppo_actor_loss_fn``'s if-chain), ``use_sapo_loss``,
  ``use_decoupled_loss``, ``rejection_sampling`` (every ``RejectionSamplingConfig`` level × action × metric ×
  agg that its ``__post_init__`` accepts, from the fields' ``choices`` metadata), ``m2_threshold``), scaled per
  micro-batch as the engine scales it (``loss · local_weight / total_weight · dp_size``, weights =
  ``loss_mask.count_nonzero()``, ``FSDPEngine._compute_logprobs_and_loss``);
* ``areal.utils.data.Normalization`` over every ``NormConfig`` combination (mean/std level from the ``choices``
  metadata × leave-one-out × unbiased), on per-sequence rewards (``reward_norm``) and on token advantages with
  the loss mask (``adv_norm``);
* ``areal.utils.data.KLEstimator`` (every estimator × ``apply_clamp``) as the trainer uses it, a reward term;
* the trainer's advantage path ``PPOActor._compute_advantages`` (KL reward, GAE, advantage normalisation) with
  ``PPOActorConfig`` defaults, GRPO-style group normalisation, and the KL switched off;
* ``areal.utils.functional.ppo_critic_loss_fn``.

``areal.trainer``'s package ``__init__`` imports the SFT/DPO/RW trainers, which need ``swanlab`` (not installed
here); the actor module itself does not, so the probes (and their reproductions) load it under a bare package
object for ``areal.trainer``. Calls, checks and reproductions: :mod:`rlspec.conformance.probes.sourced`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlspec.conformance.probes import core, sourced
from rlspec.conformance.probes.core import Probe, Verdict, unsupported
from rlspec.conformance.probes.sourced import (
    SourceCall,
    as_float64,
    check_agree,
    check_array_agree,
    check_array_finite,
    check_array_padding,
    check_array_reference,
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

FRAMEWORK = "areal"
DIST = "areal"
B, T = 6, 7
GROUP = 3

PREAMBLE = ("import warnings\nwarnings.filterwarnings('ignore')\nimport logging\nlogging.disable(logging.INFO)\n"
            "import math\nimport numpy as np\nimport torch\n")
# areal.trainer/__init__ imports trainers that need swanlab; the PPO actor module does not: load it alone
ACTOR_IMPORT = """\
import os, sys, types
import areal
_pkg = types.ModuleType("areal.trainer")   # skip areal/trainer/__init__ (it imports swanlab for the SFT/DPO loggers)
_pkg.__path__ = [os.path.join(os.path.dirname(areal.__file__), "trainer")]
sys.modules.setdefault("areal.trainer", _pkg)
from areal.trainer.ppo.actor import PPOActor, grpo_loss_fn
from areal.api.cli_args import NormConfig, PPOActorConfig, RejectionSamplingConfig
"""


@functools.lru_cache(maxsize=1)
def _areal() -> Any:
    import types

    ns: dict[str, Any] = {}
    exec(compile(PREAMBLE + ACTOR_IMPORT, "<areal import>", "exec"), ns)  # noqa: S102 - our own source
    from areal.utils import functional
    from areal.utils.data import KLEstimator, Normalization

    return types.SimpleNamespace(functional=functional, KLEstimator=KLEstimator, Normalization=Normalization,
                                 **{k: ns[k] for k in ("PPOActor", "grpo_loss_fn", "NormConfig", "PPOActorConfig",
                                                       "RejectionSamplingConfig")})


def _choices(cls: type, name: str) -> list[Any]:
    """The ``choices`` a config field declares in its metadata (AReaL's CLI lists accepted strings there)."""
    f = {x.name: x for x in dataclasses.fields(cls)}[name]
    return list(f.metadata.get("choices", [f.default]))


def _default(cls: type, name: str) -> Any:
    f = {x.name: x for x in dataclasses.fields(cls)}[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def is_levels() -> list[str]:
    import inspect

    src = inspect.getsource(_areal().functional.ppo_actor_loss_fn)
    return strings_in(src, r"importance_sampling_level == [\"'][^\"']+[\"']")


# =========================================================================== batches
@functools.lru_cache(maxsize=1)
def batches() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng
    return {"random": _with_prox(core.torch_batch(rng(41), B, T, group_size=GROUP)),
            "wide-ratios": _with_prox(core.torch_batch(rng(42), B, T, group_size=GROUP, log_ratio_scale=1.5))}


def _with_prox(b: dict[str, Any], seed: int = 3) -> dict[str, Any]:
    """Add ``prox_logp`` (the recomputed proximal policy of decoupled PPO), between behaviour and current."""
    import torch

    out = core.clone(b)
    noise = np.random.default_rng(seed).normal(0, 0.3, size=tuple(b["logp"].shape))
    prox = b["old_logp"].detach().double().numpy() + noise
    m = b["mask"].numpy()
    prox[~m] = -np.random.default_rng(seed + 1).uniform(0, 12, size=int((~m).sum()))
    out["prox_logp"] = torch.tensor(prox, dtype=b["logp"].dtype)
    return out


@functools.lru_cache(maxsize=1)
def input_classes() -> dict[str, dict[str, Any]]:
    from rlspec.conformance.probes import verl as v

    return {k: _with_prox(b) for k, b in v.input_classes().items()}


# =========================================================================== actor loss (grpo_loss_fn)
def actor_space() -> list[dict[str, Any]]:
    """PPOActorConfig knob combinations of the loss: a product of the clip/IS/SAPO knobs, then decoupled loss
    with every accepted RejectionSamplingConfig, then M2PO."""
    a = _areal()
    C = a.PPOActorConfig
    base = {
        "eps_clip_higher": [_default(C, "eps_clip_higher"), 0.28],
        "c_clip": [_default(C, "c_clip"), 3.0],
        "importance_sampling_level": is_levels(),
        "use_sapo_loss": [False, True],
    }
    out = [dict(zip(base, vals)) for vals in itertools.product(*base.values())]
    R = a.RejectionSamplingConfig
    for level, action, metric, agg in itertools.product(_choices(R, "level"), _choices(R, "action"),
                                                        _choices(R, "metric"), _choices(R, "agg")):
        if level == "token" and agg != _default(R, "agg"):
            continue  # ignored at token level (the config warns)
        upper = 2.0 if metric == "ratio" else 0.5
        rs = {"level": level, "action": action, "metric": metric, "agg": agg, "upper": upper}
        out.append({"use_decoupled_loss": True, "rejection_sampling": rs})
    out.append({"use_decoupled_loss": True})
    out.append({"m2_threshold": 0.04})
    out.append({"use_decoupled_loss": True, "m2_threshold": 0.04})
    return out


def _rs_source(rs: Mapping[str, Any] | None) -> str:
    return "None" if rs is None else f"RejectionSamplingConfig({kwargs_source(rs).lstrip(', ')})"


def actor_call(knobs: Mapping[str, Any], *, dp: int = 1, trainer: bool = False) -> SourceCall:
    """The actor loss with the arguments ``PPOActor._ppo_update`` binds from the config, scaled as the engine
    scales a micro-batch.

    ``trainer=True`` calls ``grpo_loss_fn`` itself, in float32 (its statistics logging accepts float32 tensors
    only, as a model's log-probs are). The float64 probes call the two functions it dispatches to
    (``sapo_loss_fn`` / ``ppo_actor_loss_fn``, after ``_apply_m2po_masking``) with the same arguments; a "self"
    probe checks that both give the same loss.
    """
    kn = kwargs_source({k: v for k, v in knobs.items() if k != "rejection_sampling"}).lstrip(", ")
    rs = _rs_source(knobs.get("rejection_sampling"))
    setup = ACTOR_IMPORT + f"""
from areal.trainer.ppo.actor import _apply_m2po_masking
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
cfg = PPOActorConfig({kn}{', ' if kn else ''}rejection_sampling={rs})
DP = {dp}
"""
    head = """\
# input_data as PPOActor._compute_advantages leaves it: logprobs = behaviour policy, prox_logp = proximal
# policy (the behaviour policy itself unless use_decoupled_loss)
data = {"logprobs": b["old_logp"], "advantages": b["adv"], "loss_mask": b["mask"],
        "prox_logp": b["prox_logp"] if cfg.use_decoupled_loss else b["old_logp"]}
"""
    if trainer:
        call = """\
data = {k: v.float() if v.is_floating_point() else v for k, v in data.items()}   # float32, as the model's outputs
loss = grpo_loss_fn(b["logp"].float(), torch.zeros_like(b["logp"]).float(), data, eps_clip=cfg.eps_clip,
                    eps_clip_higher=cfg.eps_clip_higher, c_clip=cfg.c_clip, rejection_sampling=cfg.rejection_sampling,
                    m2_threshold=cfg.m2_threshold, importance_sampling_level=cfg.importance_sampling_level,
                    prox_logp_method=cfg.prox_logp_method, use_sapo_loss=cfg.use_sapo_loss,
                    sapo_tau_pos=cfg.sapo_tau_pos, sapo_tau_neg=cfg.sapo_tau_neg,
                    use_decoupled_loss=cfg.use_decoupled_loss)
"""
    else:
        call = """\
# grpo_loss_fn's dispatch (areal/trainer/ppo/actor.py), without its float32-only statistics logging
mask = data["loss_mask"]
if cfg.m2_threshold is not None:
    mask = _apply_m2po_masking(data["logprobs"], data["prox_logp"], mask, cfg.m2_threshold)
if cfg.use_sapo_loss:
    loss, _ = sapo_loss_fn(logprobs=b["logp"], old_logprobs=data["logprobs"], advantages=data["advantages"],
                           tau_pos=cfg.sapo_tau_pos, tau_neg=cfg.sapo_tau_neg, loss_mask=mask,
                           importance_sampling_level=cfg.importance_sampling_level)
else:
    loss, _ = ppo_actor_loss_fn(logprobs=b["logp"], old_logprobs=data["logprobs"], advantages=data["advantages"],
                                eps_clip=cfg.eps_clip, eps_clip_higher=cfg.eps_clip_higher, loss_mask=mask,
                                c_clip=cfg.c_clip, proximal_logprobs=data["prox_logp"],
                                rejection_sampling=cfg.rejection_sampling,
                                importance_sampling_level=cfg.importance_sampling_level)
"""
    tail = """\
# FSDPEngine._compute_logprobs_and_loss: loss * local_weight / total_weight * dp_size, with
# loss_weight_fn = loss_mask.count_nonzero() and the total all-reduced over the DP ranks (0 if no local token)
local, total = b["mask"].count_nonzero(), full["mask"].count_nonzero()
dp = DP if b is not full else 1
loss = loss * (local / total) * dp if local > 0 else b["logp"].sum() * 0.0   # loss_multiplier = dp_size
loss = loss / dp   # DDP averages the ranks' gradients
"""
    return SourceCall(setup, head + call + tail, preamble=PREAMBLE)


def actor_entry(knobs: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The reference entry (and its configuration) the knobs claim, or (None, {}) when none applies."""
    a = _areal()
    C = a.PPOActorConfig
    eps = _default(C, "eps_clip")
    hi = knobs.get("eps_clip_higher") or eps
    lvl = knobs.get("importance_sampling_level", "token")
    rs = knobs.get("rejection_sampling")
    if knobs.get("m2_threshold") is not None:
        return None, {}
    if knobs.get("use_sapo_loss"):
        if lvl != "token":
            return None, {}
        return "sapo", {"tau_pos": _default(C, "sapo_tau_pos"), "tau_neg": _default(C, "sapo_tau_neg"),
                        "agg": "token-mean"}
    if knobs.get("use_decoupled_loss"):
        cfg: dict[str, Any] = {"eps_low": eps, "eps_high": hi, "dual_clip_c": knobs.get("c_clip"),
                               "behave_weight": rs is not None}
        if rs is not None:
            if rs["level"] != "token" or rs["metric"] != "ratio":
                return None, {}
            cfg.update(behave_cap=rs["upper"], behave_cap_mode={"mask": "mask", "clamp": "truncate"}[rs["action"]])
        return "decoupled_ppo", cfg
    if lvl == "sequence":
        if knobs.get("c_clip") is not None:
            return None, {}
        return "gspo", {"eps_low": eps, "eps_high": hi, "agg": "token-mean"}
    return "ppo", {"eps_low": eps, "eps_high": hi, "dual_clip_c": knobs.get("c_clip")}


def _accepts(knobs: Mapping[str, Any]) -> str:
    a = _areal()
    try:
        rs = knobs.get("rejection_sampling")
        kn = {k: v for k, v in knobs.items() if k != "rejection_sampling"}
        a.PPOActorConfig(**kn, rejection_sampling=None if rs is None else a.RejectionSamplingConfig(**rs))
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return ""


def actor_probes() -> list[Probe]:
    probes: list[Probe] = []
    path = "areal.trainer.ppo.actor.grpo_loss_fn (dispatch)"
    bs = batches()
    # defaults: PPOActorConfig() for the loss, and the two switches that select another objective
    for knobs in ({}, {"use_decoupled_loss": True}, {"use_sapo_loss": True}):
        label = core.describe(knobs)
        refused = _accepts(knobs)
        if refused:
            probes.append(_probe("defaults", path, label, lambda r=refused: unsupported(r)))
            continue
        call = actor_call(knobs)
        entry, cfg = actor_entry(knobs)
        header = f"AReaL grpo_loss_fn with PPOActorConfig({label}) as PPOActor binds it"
        for bname, batch in bs.items():
            if entry is not None:
                # the paper's own configuration (the reference's defaults), AReaL's clip values kept
                pcfg = {k: v for k, v in cfg.items() if k in ("eps_low", "eps_high", "dual_clip_c", "tau_pos",
                                                              "tau_neg")}
                probes.append(_probe("defaults", path, f"{label} vs paper {entry} [{bname}]", safe(
                    lambda call=call, batch=batch, entry=entry, pcfg=pcfg, header=header, bname=bname, label=label:
                    check_reference(call, batch, entry, pcfg, header + f" vs the paper's {entry} ({bname})",
                                    what=f"with PPOActorConfig({label}) the actor loss"))))
        probes.append(_probe("defaults", path, f"{label}: padding width",
                             safe(lambda call=call, header=header: check_padding_width(call, bs["random"], header))))
    for knobs in actor_space():
        label = core.describe(knobs)
        refused = _accepts(knobs)
        if refused:
            probes.append(_probe("combination", path, label, lambda r=refused: unsupported(r)))
            continue
        probes += actor_combination_probes(path, knobs, label, bs)
    return probes


# Upstream threads found by searching AReaL's tracker (search tool, corpus "issues"): (path fragment, case
# fragment, key fragment, URL or "none found"), first match wins (sourced.upstream_for)
UPSTREAM: tuple[tuple[str, str, str, str], ...] = (
    ("Normalization", "not-multiple-of-group", "", "https://github.com/areal-project/AReaL/pull/1673"),
    ("_compute_advantages", "not-multiple-of-group", "", "https://github.com/areal-project/AReaL/pull/1673"),
    ("grpo_loss_fn", "m2_threshold", "", "https://github.com/areal-project/AReaL/issues/1730"),
    ("_compute_advantages", "defaults", "", "https://github.com/areal-project/AReaL/issues/315"),
    ("Normalization", "adv_norm", "", "none found"),
    ("_compute_advantages", "GRPO", "", "none found"),
    ("grpo_loss_fn", "use_decoupled_loss=True vs paper", "", "none found"),
    ("grpo_loss_fn", "use_sapo_loss=True vs paper", "", "none found"),
    ("grpo_loss_fn", "log-ratio", "", "none found"),
    ("KLEstimator", "log-ratio", "", "none found"),
    ("grpo_loss_fn", "nan-padding", "", "none found"),  # torch.where backward: NaN gradient at padding
    ("ppo_critic_loss_fn", "no-valid-token", "", "none found"),
)


def _probe(run: str, path: str, case: str, check: Any) -> Probe:
    return Probe(FRAMEWORK, run, path, case, check, sourced.upstream_for(UPSTREAM, path, case))


def actor_combination_probes(path: str, knobs: Mapping[str, Any], label: str, bs: Mapping[str, dict]) -> list[Probe]:
    probes: list[Probe] = []
    call = actor_call(knobs)
    entry, cfg = actor_entry(knobs)
    header = f"AReaL grpo_loss_fn with PPOActorConfig({label}) as PPOActor binds it"
    batch = bs["random"]
    from rlspec.conformance.probes.verl import token_advantages

    if entry is not None:
        for bname, bb in (("random", batch), ("wide-ratios", bs["wide-ratios"]), ("token-adv", token_advantages(batch))):
            probes.append(_probe("combination", path, f"{label} vs {entry} [{bname}]", safe(
                lambda bb=bb, bname=bname: check_reference(call, bb, entry, cfg, header + f" ({bname})"))))
    probes.append(_probe("combination", path, f"{label}: autograd vs finite differences",
                         safe(lambda: check_gradient(call, batch, header))))
    probes.append(_probe("combination", path, f"{label}: row order",
                         safe(lambda: check_permutation(call, batch, header))))
    probes.append(_probe("combination", path, f"{label}: float32",
                         safe(lambda: check_dtype(call, batch, torch_dtype("float32"), header))))
    probes.append(_probe("padding", path, f"{label}: padding width",
                         safe(lambda: check_padding_width(call, batch, header))))
    probes.append(_probe("padding", path, f"{label}: padding values",
                         safe(lambda: check_padding_values(call, batch, header))))
    probes.append(_probe("self", path, f"{label}: uneven micro-batches with the engine's token weights",
                         safe(lambda: check_split(call, batch, header + " (engine micro-batch weights)"))))
    tr = actor_call(knobs, trainer=True)
    probes.append(_probe("self", "areal.trainer.ppo.actor.grpo_loss_fn", f"{label}: grpo_loss_fn (float32) vs the "
                         "functions it dispatches to", safe(lambda: check_agree(
                             call, tr, batch, header + ": grpo_loss_fn in float32 vs its dispatch in float64",
                             "grpo_loss_fn differs from the loss functions it dispatches to", key="trainer-vs-functional",
                             dtype="float32"))))
    two = actor_call(knobs, dp=2)
    half = batch["mask"].shape[0] // 2
    probes.append(_probe("self", path, f"{label}: 2 data-parallel ranks (DDP gradient mean)", safe(
        lambda: check_split(two, batch, header + " on 2 ranks", what="2 data-parallel ranks",
                            splits=[list(range(half)), list(range(half, batch["mask"].shape[0]))]))))
    for iname, ib in input_classes().items():
        if iname == "all-equal-groups-f32":
            continue

        def chk(ib=ib, iname=iname) -> Verdict:
            fin = check_finite(call, ib, header + f", input {iname}", what=f"the actor loss (input {iname})")
            if fin.status != "ok" or entry is None or iname == "nan-padding":
                return fin
            # semantics in float64 on the same (rounded) inputs; the low precision was checked for inf/NaN above
            return check_reference(call, as_float64(ib), entry, cfg, header + f", input {iname}",
                                   what=f"on input {iname} the actor loss")
        probes.append(_probe("input", path, f"{label}: {iname}", safe(chk)))
    return probes


# =========================================================================== Normalization
def norm_space() -> list[dict[str, Any]]:
    a = _areal()
    N = a.NormConfig
    space = {"mean_level": _choices(N, "mean_level"), "std_level": _choices(N, "std_level"),
             "mean_leave1out": [False, True], "std_unbiased": [True, False]}
    return [dict(zip(space, vals)) for vals in itertools.product(*space.values())]


def norm_call(knobs: Mapping[str, Any], *, tokens: bool, group_size: int = GROUP) -> SourceCall:
    """Normalization as the trainer applies it: ``reward_norm`` on the (B,) scores, or ``adv_norm`` on the (B, T)
    advantages with the loss mask (here the row's score on each of its tokens: GAE with γ = λ = 1, no values)."""
    setup = ACTOR_IMPORT + f"""
from areal.utils.data import Normalization
norm = Normalization(NormConfig(group_size={group_size}{kwargs_source(knobs)}))
"""
    if tokens:
        body = """\
score = torch.where(b["mask"], b["token_rewards"], torch.zeros_like(b["token_rewards"])).sum(-1)
x = score[:, None].expand_as(b["logp"]).clone()   # the outcome return on every token (gamma = lambda = 1)
loss = norm(x, b["mask"].float())                  # PPOActor._compute_advantages: self.adv_norm(advantages, loss_mask)
"""
    else:
        body = """\
score = torch.where(b["mask"], b["token_rewards"], torch.zeros_like(b["token_rewards"])).sum(-1)
loss = norm(score)[:, None].expand_as(b["logp"])   # reward_norm on the (B,) scores, shown on every token
"""
    return SourceCall(setup, body, preamble=PREAMBLE)


def norm_entry(knobs: Mapping[str, Any]) -> tuple[str | None, dict[str, Any], bool]:
    """(entry, config, one_group): the reference the NormConfig claims (group statistics, or the batch as one
    group), None when the combination names no estimator."""
    mean, std, loo, unb = knobs["mean_level"], knobs["std_level"], knobs["mean_leave1out"], knobs["std_unbiased"]
    eps = _default(_areal().NormConfig, "eps")
    if mean is None or (std is not None and std != mean):
        return None, {}, False
    one = mean == "batch"
    if loo:
        return ("rloo", {"singleton": "raw"}, one) if std is None else (None, {}, False)
    if std is None:
        return "dr_grpo", {"singleton": "zero"}, one
    return "grpo", {"ddof": 1 if unb else 0, "eps": eps, "eps_placement": "outside",
                    "singleton": "zero"}, one


def norm_reference(knobs: Mapping[str, Any], batch: Mapping[str, Any]) -> np.ndarray | None:
    from rlspec.reference import registry

    entry, cfg, one = norm_entry(knobs)
    if entry is None:
        return None
    a = core.to_numpy(batch)
    m = a["mask"].astype(bool)
    score = np.where(m, a["token_rewards"], 0.0).sum(axis=1)
    group = np.zeros(len(score), dtype=np.int64) if one else np.arange(len(score)) // GROUP
    spec = registry.get(entry)
    adv = np.asarray(spec.fn(rewards=score, group=group, mask=m, config=spec.config(**cfg)), dtype=np.float64)
    if adv.ndim == 1:
        adv = np.repeat(adv[:, None], m.shape[1], axis=1)
    return adv


def norm_probes() -> list[Probe]:
    probes: list[Probe] = []
    path = "areal.utils.data.Normalization"
    batch = batches()["random"]
    a = _areal()
    defaults = {k: _default(a.NormConfig, k) for k in ("mean_level", "std_level", "mean_leave1out", "std_unbiased")}
    inputs = {k: x for k, x in input_classes().items() if k in ("not-multiple-of-group", "empty-rows-in-group",
                                                                "no-valid-token", "all-equal-groups-f32",
                                                                "interior-holes")}
    for knobs in norm_space():
        label = core.describe(knobs)
        run = "defaults" if knobs == defaults else "combination"
        for tokens in (False, True):
            where = "adv_norm on token advantages" if tokens else "reward_norm on scores"
            call = norm_call(knobs, tokens=tokens)
            header = f"AReaL Normalization(NormConfig({label}, group_size={GROUP})), {where}"

            def chk(call=call, knobs=knobs, header=header, bb=batch, iname="", label=label, where=where) -> Verdict:
                try:
                    want = norm_reference(knobs, bb)
                except Exception as e:  # noqa: BLE001
                    return unsupported(f"reference refuses: {type(e).__name__}: {e}")
                if want is None:
                    return check_array_finite(call, bb, header)
                entry, cfg, one = norm_entry(knobs)
                dt = dtype_name(bb)
                scope = "the whole batch" if one else f"groups of {GROUP}"
                return check_array_reference(call, bb, want, header + (f", input {iname}" if iname else ""),
                                             f"NormConfig({label}) gives other advantages than {entry} over "
                                             f"{scope} ({core.describe(cfg)})" + (f" on input {iname}" if iname
                                                                                   else ""),
                                             key=f"norm:{where}:{entry}", dtype=dt)
            probes.append(_probe(run, path, f"{label}, {where}", chk))
            if knobs["mean_level"] == "group" and knobs["std_level"] in ("group", None):
                for iname, ib in inputs.items():
                    probes.append(_probe("input", path, f"{label}, {where}: {iname}",
                                         lambda call=call, knobs=knobs, header=header, ib=ib, iname=iname, chk=chk,
                                         label=label, where=where: chk(call, knobs, header, ib, iname, label, where)))
            probes.append(_probe("padding", path, f"{label}, {where}: padding width", safe(
                lambda call=call, header=header: check_array_padding(
                    call, batch, header, summary="the normalised values at valid tokens change when 3 padded columns "
                    "are appended", key="norm-padding-width"))))
    # self: group normalisation with one group of size B equals batch normalisation
    for std_unbiased in (True, False):
        g = norm_call({"mean_level": "group", "std_level": "group", "std_unbiased": std_unbiased}, tokens=False,
                      group_size=B)
        bt = norm_call({"mean_level": "batch", "std_level": "batch", "std_unbiased": std_unbiased}, tokens=False)
        probes.append(_probe("self", path, f"group (size B) vs batch level, std_unbiased={std_unbiased}",
                             lambda g=g, bt=bt, s=std_unbiased: check_array_agree(
                                 g, bt, batch, f"AReaL Normalization group (group_size=B) vs batch, std_unbiased={s}",
                                 "group normalisation over one group of the whole batch differs from batch "
                                 "normalisation", key="norm-group-vs-batch")))
    # self: the same per-sequence quantity normalised as scores (reward_norm) and as token advantages (adv_norm)
    for knobs in ({"mean_level": "group", "std_level": "group"}, {"mean_level": "batch", "std_level": "batch"}):
        label = core.describe(knobs)
        probes.append(_probe("self", path, f"{label}: reward_norm vs adv_norm of the same scores",
                             lambda knobs=knobs, label=label: check_array_agree(
                                 norm_call(knobs, tokens=False), norm_call(knobs, tokens=True), batch,
                                 f"AReaL Normalization({label}) of one score per sequence, as reward_norm on the "
                                 "scores and as adv_norm on the tokens",
                                 f"NormConfig({label}) normalises a per-sequence score differently as adv_norm "
                                 "(token-weighted: longer responses weigh more) than as reward_norm",
                                 key=f"norm-token-weighting:{label}")))
    return probes


# =========================================================================== KL estimator
def kl_probes() -> list[Probe]:
    import inspect

    probes: list[Probe] = []
    path = "areal.utils.data.KLEstimator"
    a = _areal()
    kinds = strings_in(inspect.getsource(a.KLEstimator.__init__), r"not in \[[^\]]*\]")
    default_kind = _default(a.PPOActorConfig, "kl_estimator")
    clamp_default = inspect.signature(a.KLEstimator.__init__).parameters["apply_clamp"].default
    cases = {"random": batches()["random"], **{k: x for k, x in input_classes().items()
                                              if k.startswith("log-ratio")}}
    for kind in kinds:
        for clamp in (clamp_default, not clamp_default):
            call = SourceCall(f"""
from areal.utils.data import KLEstimator
kl = KLEstimator({kind!r}, apply_clamp={clamp!r})
""", """\
# PPOActor._compute_advantages: rewards = -kl_ctl * kl_estimator(old_logp, ref_logp) (old_logp masked)
loss = kl(b["logp"], b["ref_logp"]) * b["mask"]
""", preamble=PREAMBLE)
            label = f"KLEstimator({kind!r}, apply_clamp={clamp})"
            run = "defaults" if (kind == default_kind and clamp == clamp_default) else "combination"
            for cname, batch in cases.items():
                def chk(call=call, batch=batch, kind=kind, clamp=clamp, cname=cname, label=label) -> Verdict:
                    x = core.to_numpy(batch)
                    d = x["logp"] - x["ref_logp"]
                    est = {"k1": d, "k2": 0.5 * d * d, "k3": np.exp(-d) + d - 1}[kind]
                    if clamp:
                        est = np.clip(est, -10, 10)
                    want = est * x["mask"]
                    dt = dtype_name(batch)
                    return check_array_reference(call, batch, want, f"AReaL {label} on {cname}",
                                                 f"{label} differs from the {kind} estimator "
                                                 f"{'clamped to ±10 ' if clamp else ''}on input {cname}",
                                                 key=f"kl:{kind}:{clamp}:{cname}", dtype=dt)
                probes.append(_probe(run if cname == "random" else "input", path, f"{label} [{cname}]", chk))
    return probes


# =========================================================================== trainer advantages
ADV_BODY = """\
# the layout PPOActor._compute_advantages receives: prompt of P tokens then the response, right padding
Bn, Tn = b["mask"].shape
P = 2
L = P + Tn
lengths = b["mask"].sum(-1)
pos = torch.arange(L)[None, :]
resp = (pos >= P) & torch.cat([torch.zeros(Bn, P, dtype=torch.bool), b["mask"]], 1)
attn = pos < (P + lengths[:, None])
score = torch.where(b["mask"], b["token_rewards"], torch.zeros_like(b["token_rewards"])).sum(-1)
logprobs = torch.cat([torch.zeros(Bn, P), b["old_logp"].detach().float()], 1)   # logp of each token
data = {"input_ids": torch.zeros(Bn, L, dtype=torch.long), "attention_mask": attn.long(), "loss_mask": resp.long(),
        "logprobs": torch.roll(logprobs, 1, -1), "rewards": score.float()}
out = actor._compute_advantages(data)
adv = out["advantages"]
m = out["loss_mask"].bool()   # rolled by the trainer: the positions whose log-prob is trained
loss = torch.zeros(Bn, Tn, dtype=adv.dtype)
for i in range(Bn):
    loss[i, b["mask"][i]] = adv[i][m[i]]
"""


def advantage_probes() -> list[Probe]:
    probes: list[Probe] = []
    path = "areal.trainer.ppo.actor.PPOActor._compute_advantages"
    batch = batches()["random"]
    grpo_norm = f"adv_norm=NormConfig(mean_level='group', std_level='group', group_size={GROUP})"
    variants = [("defaults", "PPOActorConfig()", "defaults"),
                ("defaults", f"PPOActorConfig({grpo_norm})", "GRPO group normalisation"),
                ("combination", f"PPOActorConfig({grpo_norm}, kl_ctl=0.0)", "GRPO, no KL"),
                ("combination", "PPOActorConfig(kl_ctl=0.0)", "no normalisation, no KL")]
    for run, cfg_src, label in variants:
        call = SourceCall(ACTOR_IMPORT + f"actor = PPOActor({cfg_src}, engine=None)\n", ADV_BODY, preamble=PREAMBLE)
        norm = "group" in cfg_src
        header = f"AReaL PPOActor._compute_advantages with {cfg_src}, no reference model"

        def chk(call=call, norm=norm, header=header, label=label, bb=batch, iname="") -> Verdict:
            from rlspec.reference import registry

            x = core.to_numpy(bb)
            m = x["mask"].astype(bool)
            score = np.where(m, x["token_rewards"], 0.0).sum(axis=1).astype(np.float32).astype(np.float64)
            if norm:
                spec = registry.get("grpo")
                adv = spec.fn(rewards=score, group=np.arange(len(score)) // GROUP, mask=m,
                              config=spec.config(ddof=1, eps=1e-5, eps_placement="outside", singleton="zero"))
                entry = "grpo (group of 3, ddof=1, eps=1e-5)"
            else:
                adv, entry = score, "the outcome reward (REINFORCE, γ = λ = 1)"
            adv = np.asarray(adv, dtype=np.float64)
            if adv.ndim == 1:
                adv = np.repeat(adv[:, None], m.shape[1], axis=1)
            want = np.where(m, adv, 0.0)
            return check_array_reference(call, bb, want, header + (f", input {iname}" if iname else ""),
                                         f"with {label} and no reference model the trainer's advantages differ "
                                         f"from {entry}" + (f" on input {iname}" if iname else ""),
                                         key=f"trainer-adv:{label}", dtype="float32")
        probes.append(_probe(run, path, label, safe(chk)))
        if norm:
            for iname in ("not-multiple-of-group", "empty-rows-in-group", "no-valid-token"):
                ib = input_classes()[iname]
                probes.append(_probe("input", path, f"{label}: {iname}",
                                     safe(lambda chk=chk, ib=ib, iname=iname: chk(bb=ib, iname=iname))))
    return probes


# =========================================================================== overlong penalty (DAPO)
def overlong_probes() -> list[Probe]:
    """``reward_overlong_penalty`` (DAPO's soft overlong punishment, enabled by ``overlong_reward_penalty``) against
    the reference ``dapo_overlong``, for responses up to ``max_new_tokens`` long (the generation cap)."""
    probes: list[Probe] = []
    path = "areal.utils.functional.reward_overlong_penalty"
    a = _areal()
    C = a.PPOActorConfig
    if _default(C, "overlong_tokens") is None or _default(C, "overlong_penalty_factor") is None:
        probes.append(_probe("defaults", path, "PPOActorConfig(overlong_reward_penalty=True) defaults",
                             lambda: unsupported("overlong_tokens and overlong_penalty_factor default to None: "
                                                 "_compute_advantages asserts they are set")))
    for cache, factor in ((3, 1.0), (2, 0.5)):
        call = SourceCall("from areal.utils.functional import reward_overlong_penalty\n", f"""\
# PPOActor._compute_advantages: data = reward_overlong_penalty(data, overlong_tokens, overlong_penalty_factor,
# max_response_length=max_new_tokens); here max_new_tokens is the padded width (no response is longer)
Bn, Tn = b["mask"].shape
data = {{"rewards": torch.zeros(Bn, dtype=torch.float32), "input_ids": torch.zeros(Bn, Tn, dtype=torch.long),
        "loss_mask": b["mask"].long()}}
out = reward_overlong_penalty(data, overlong_tokens={cache}, overlong_penalty_factor={factor},
                              max_response_length=Tn)
loss = out["rewards"][:, None].expand(Bn, Tn)
""", preamble=PREAMBLE)
        label = f"overlong_tokens={cache}, overlong_penalty_factor={factor}"
        for iname, batch in (("random", batches()["random"]), ("interior-holes", input_classes()["interior-holes"])):
            def chk(call=call, batch=batch, cache=cache, factor=factor, label=label, iname=iname) -> Verdict:
                from rlspec.reference import registry

                spec = registry.get("dapo_overlong")
                m = batch["mask"].numpy().astype(bool)
                pen = spec.fn(lengths=m.sum(axis=1), config=spec.config(L_max=m.shape[1], L_cache=cache,
                                                                        penalty_factor=factor))
                want = np.where(m, np.repeat(np.asarray(pen, dtype=np.float64)[:, None], m.shape[1], axis=1), 0.0)
                return check_array_reference(call, batch, want, f"AReaL reward_overlong_penalty({label}) on {iname}",
                                             f"the overlong penalty with {label} differs from DAPO's soft overlong "
                                             f"punishment on input {iname}", key=f"overlong:{label}",
                                             dtype="float32")
            probes.append(_probe("combination" if iname == "random" else "input", path, f"{label} [{iname}]", chk))
    return probes


# =========================================================================== critic loss
def critic_probes() -> list[Probe]:
    probes: list[Probe] = []
    path = "areal.utils.functional.ppo_critic_loss_fn"
    import inspect

    a = _areal()
    src = inspect.getsource(a.functional.ppo_critic_loss_fn)
    kinds = strings_in(src, r"loss_fn_type == [\"'][^\"']+[\"']")
    from areal.api.cli_args import PPOCriticConfig

    eps = _default(PPOCriticConfig, "eps_clip")
    for kind in kinds:
        call = SourceCall("from areal.utils.functional import ppo_critic_loss_fn\n", f"""\
# the critic's value head output plays logp here (the leaf the gradient is taken for); inputs are float32
loss, _ = ppo_critic_loss_fn(b["logp"].float(), b["old_values"].float(), b["returns"].float(), {eps!r},
                             loss_mask=b["mask"], loss_fn_type={kind!r})
""", preamble=PREAMBLE)
        header = f"AReaL ppo_critic_loss_fn(loss_fn_type={kind!r}, value_eps_clip={eps})"
        batch = batches()["random"]
        if kind == "mse":
            probes.append(_probe("defaults", path, f"{kind} vs value_clip", safe(
                lambda call=call, header=header, batch=batch: check_reference(call, batch, "value_clip", {"eps": eps},
                                                                              header,
                                                                 names={"values": "logp"}, dtype="float32",
                                                                 what="the value loss"))))
        for iname in ("no-valid-token", "empty-rows-in-group"):
            ib = input_classes()[iname]
            probes.append(_probe("input", path, f"{kind}: {iname}", safe(
                lambda call=call, ib=ib, header=header, iname=iname: check_finite(call, ib, header + f", {iname}",
                                                                                    what=f"the critic loss (input {iname})"))))
        probes.append(_probe("self", path, f"{kind}: uneven micro-batches with the engine's token weights", safe(
            lambda call=call, header=header, batch=batch: check_split(_critic_weighted(call), batch, header))))
    return probes


def _critic_weighted(call: SourceCall) -> SourceCall:
    body = call.body + """
local, total = b["mask"].count_nonzero(), full["mask"].count_nonzero()
loss = loss * (local / total) if local > 0 else b["logp"].sum() * 0.0   # the engine's micro-batch weight
"""
    return SourceCall(call.setup, body, preamble=call.preamble)


# =========================================================================== entry point
def probes() -> list[Probe]:
    """Every probe of AReaL (see the module docstring for what is enumerated)."""
    out: list[Probe] = []
    out += actor_probes()
    out += norm_probes()
    out += kl_probes()
    out += advantage_probes()
    out += critic_probes()
    out += overlong_probes()
    return out


__all__ = ["FRAMEWORK", "DIST", "probes"]

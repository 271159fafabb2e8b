"""Probes of OpenRLHF's policy loss, KL loss and advantages, as ``PPOActor.training_step`` and
``RemoteExperienceMaker.compute_advantages_and_returns`` call them.

``import openrlhf.models`` needs flash-attn (not buildable on CPU); every subject therefore imports the real leaf
modules behind a bare package object (the construction of :mod:`rlspec.conformance.adapters.openrlhf_adapter`,
printed in every reproduction). Enumerated, nothing named:

* ``defaults``: ``PolicyLoss()`` with its ``__init__`` defaults and the CLI defaults of ``train_ppo_ray.py``
  (eps_clip 0.2, token-mean, policy_loss_type "ppo", KL loss off), plus each CLI ``choices`` value one at a time;
* ``combination``: policy_loss_type × loss_agg_mode (token_level_loss) × dual_clip (off / 3) ×
  is_correction_level × is_correction_mode × is_correction_gating (the value sets ``PolicyLoss.__init__``
  validates; the combinations it raises on are ``unsupported``) × the KL loss (off / k1 / k2 / k3, plain or
  ``unbiased_gradient``) added as ``training_step`` adds it (``kl_loss * kl_ctl`` with the CLI's init_coef);
* ``input``: empty rows, no valid token, interior holes, float32 log-ratios of ±89 / ±100; all-equal groups of
  non-dyadic float32 rewards for every advantage estimator;
* ``self``: gradient accumulation with ``loss_utils._optimizer_step_loss_norm`` normalisers and DeepSpeed's 1/gas
  (what ``iter_grad_accum_global_norm`` feeds ``training_step``) against the full batch.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

from rlspec.conformance.probes import core, sourced
from rlspec.conformance.probes import trl as trl_probes
from rlspec.conformance.probes.core import Probe
from rlspec.conformance.probes.sourced import METAMORPHIC, SourceCall

FRAMEWORK = "openrlhf"
DIST = "openrlhf"
PATH = "openrlhf.models.loss.PolicyLoss"
ADV_PATH = "openrlhf.trainer.ppo_utils.experience_maker.RemoteExperienceMaker.compute_advantages_and_returns"
B, T = trl_probes.B, trl_probes.T
KL_INIT_COEF = 0.01  # train_ppo_ray.py --algo.kl.init_coef default
#: OpenRLHF computes its KL in float32 (compute_approx_kl: log_probs.float()) and its loss normalisers in float32
#: (loss_utils: dtype=torch.float32): float64 runs are compared at float32 tolerance (a known deviation, not probed)
INTERNAL = "float32"


IMPORTS = '''import os, sys, types
import openrlhf
# `import openrlhf.models` needs flash_attn: import the real leaf modules behind a bare package object
_d = os.path.join(os.path.dirname(openrlhf.__file__), "models")
if "openrlhf.models" not in sys.modules:
    _pkg = types.ModuleType("openrlhf.models"); _pkg.__path__ = [_d]; sys.modules["openrlhf.models"] = _pkg
if "openrlhf.trainer.ray.launcher" not in sys.modules:  # experience_maker names it in annotations only
    _rp = types.ModuleType("openrlhf.trainer.ray"); _rp.__path__ = []; sys.modules["openrlhf.trainer.ray"] = _rp
    _l = types.ModuleType("openrlhf.trainer.ray.launcher"); _l.RayActorGroup = object
    sys.modules["openrlhf.trainer.ray.launcher"] = _l
from openrlhf.models.loss import PolicyLoss, aggregate_loss
from openrlhf.models.utils import compute_approx_kl
from openrlhf.utils.loss_utils import get_loss_batch_info, _optimizer_step_loss_norm
'''


def _load():
    """OpenRLHF's leaf modules (the adapter's importer: no stand-in module stays registered)."""
    from rlspec.conformance.adapters.openrlhf_adapter import load

    return load()


# searched OpenRLHF/OpenRLHF issues with the `search` tool (corpus "issues"): (path, case, key fragment, URL),
# matched against the probe key (sourced.upstream_for)
UPSTREAM: tuple[tuple[str, str, str, str], ...] = (
    ("", "", "float32 log-ratio +", "https://github.com/OpenRLHF/OpenRLHF/pull/1293"),
    ("", "", "no valid token", "none found"),
    ("", "", "all-equal float32 group", "none found"),
    ("", "", "gspo&ref", "none found"),
)

probes_for = functools.partial(sourced.probes_for, FRAMEWORK, PATH, table=UPSTREAM, internal=INTERNAL)
"""``probes_for(call, run, case, batch_fn, kinds, ...)``: :func:`sourced.probes_for` for OpenRLHF's policy loss (its
float32 internals)."""


@functools.lru_cache(maxsize=1)
def policy_space() -> dict[str, tuple[Any, ...]]:
    """String options PolicyLoss accepts (the sets its __init__ validates, and forward's branches)."""
    src = inspect.getsource(_load().loss.PolicyLoss)
    space: dict[str, tuple[Any, ...]] = {}
    for name in ("is_correction_level", "is_correction_mode", "is_correction_gating"):
        m = re.search(rf"if {name} not in \{{([^}}]*)\}}", src)
        space[name] = tuple(re.findall(r"\"(\w+)\"", m.group(1))) if m else ()
    space["policy_loss_type"] = tuple(dict.fromkeys(re.findall(r"policy_loss_type\s*==\s*\"(\w+)\"", src)))
    return space


@functools.lru_cache(maxsize=1)
def kl_estimators() -> tuple[str, ...]:
    src = inspect.getsource(_load().utils.compute_approx_kl)
    return tuple(dict.fromkeys(re.findall(r"kl_estimator\s*==\s*\"(\w+)\"", src)))


def subject_source(pl: dict[str, Any], kl: tuple[str, bool] | None) -> str:
    """``run(b, full=None)`` = training_step's loss: PolicyLoss(**pl) (+ KL loss), normalisers from loss_utils;
    ``full`` given: ``b`` is one micro-batch of the optimizer step over ``full``."""
    kl_src = "0.0"
    if kl is not None:
        kl_src = (f"{KL_INIT_COEF!r} * aggregate_loss(compute_approx_kl(b['logp'], b['ref_logp'], "
                  f"log_probs_old=b['old_logp'], kl_estimator={kl[0]!r}, unbiased_gradient={kl[1]!r}), "
                  "b['mask'], **info)")
    return IMPORTS + f'''
POLICY = PolicyLoss(**{pl!r})


def _step_loss(b, info):
    """PPOActor.training_step: actor loss + kl_ctl * KL loss, both with the step's normalisers."""
    loss = POLICY(b["logp"], b["old_logp"], b["adv"], action_mask=b["mask"], rollout_log_probs=b["rollout_logp"],
                  **info)[0]
    return loss + {kl_src}


def run(b, full=None):
    """Alone: one step. A micro-batch of `full`: the step's normalisers (iter_grad_accum_global_norm) and
    DeepSpeed's 1/gas scaling of each backward."""
    if full is None:
        return _step_loss(b, get_loss_batch_info(None, b["mask"]))
    gas = full["mask"].shape[0] // b["mask"].shape[0]
    info = _optimizer_step_loss_norm([full["mask"]], None, 1, gas)
    return _step_loss(b, info) / gas
'''


def batch(seed: int = 0, **kw: Any) -> dict[str, Any]:
    b = trl_probes.batch(seed, **kw)
    b["rollout_logp"] = b["old_logp"].detach() + 0.2 * (b["is_w"].log())  # a vLLM-vs-trainer mismatch
    return b


def _accepts(pl: dict[str, Any], kl):
    def run() -> None:
        SourceCall(subject_source(pl, kl)).namespace()  # PolicyLoss.__init__ validates

    return run


def reference_for(pl: dict[str, Any], kl, paper_defaults: bool):
    if pl.get("is_correction_level", "off") != "off":
        return None
    token = pl.get("token_level_loss", True)
    agg = "token-mean" if token else "seq-mean-token-mean"
    if pl.get("policy_loss_type", "ppo") == "gspo":
        entry, conf = "gspo", {"agg": "seq-mean-token-mean"}
        if not paper_defaults:
            conf.update(eps_low=pl.get("clip_eps_low", 0.2), eps_high=pl.get("clip_eps_high", 0.2))
    else:
        entry, conf = "ppo", {"agg": agg, "log_ratio_clamp": 20.0, "eps_low": pl.get("clip_eps_low", 0.2),
                              "eps_high": pl.get("clip_eps_high", 0.2), "dual_clip_c": pl.get("dual_clip")}
    label = f"{entry}({core.describe(conf)})"
    if kl is not None:
        if kl[1]:
            return None  # straight-through estimator: gradient k2-shaped by design, no single reference entry
        kconf = {"agg": "token-mean", "value_clamp": 10.0}
        label += f" + {KL_INIT_COEF} x kl_{kl[0]}({core.describe(kconf)})"

    def ref(b):
        import numpy as np

        from rlspec.reference import registry

        a = core.to_numpy(b)
        spec = registry.get(entry)
        loss, grad = spec(a["logp"], a["old_logp"], a["adv"], a["mask"], config=spec.config(**conf))
        if kl is not None:
            ks = registry.get(f"kl_{kl[0]}")
            kl_loss, kl_grad = ks(a["logp"], a["ref_logp"], a["mask"], config=ks.config(**kconf))
            loss, grad = loss + KL_INIT_COEF * kl_loss, grad + KL_INIT_COEF * kl_grad
        return float(loss), np.asarray(grad)

    return label, ref


def _probes_for(run: str, pl: dict[str, Any], kl, key: str = "") -> list[Probe]:
    subject = SourceCall(subject_source(pl, kl))
    case = f"PolicyLoss({core.describe(pl)})" + (f" + KL loss {kl[0]}{' unbiased_gradient' if kl[1] else ''}"
                                                  if kl else "")
    key = key or f"{pl.get('policy_loss_type', 'ppo')}/{'token' if pl.get('token_level_loss', True) else 'seq'}"
    acc = _accepts(pl, kl)
    out = probes_for(subject, run, case, batch, [k for k in METAMORPHIC if k != "split"], accepts=acc, key=key)
    out += probes_for(subject, "self", case + " | gradient accumulation vs full batch", batch, ("split",),
                      accepts=acc, key=key)
    claim = reference_for(pl, kl, run == "defaults")
    if claim is not None:
        label, ref = claim
        out += probes_for(subject, run, case, batch, ("reference",), accepts=acc, reference=ref, ref_label=label,
                          key=f"{key}|ref")
    return out


def default_probes() -> list[Probe]:
    out = _probes_for("defaults", {}, None)
    out += _probes_for("defaults", {"token_level_loss": False}, None)  # --actor.loss_agg_mode choice
    out += _probes_for("defaults", {"policy_loss_type": "gspo"}, None)  # --actor.policy_loss_type choice
    for est in kl_estimators():  # --algo.kl.use_loss with each --algo.kl.estimator choice
        out += _probes_for("defaults", {}, (est, False))
    return out


def combination_probes() -> list[Probe]:
    s = policy_space()
    out: list[Probe] = []
    for plt in s["policy_loss_type"]:
        for token in (True, False):
            for dual in (None, 3.0):
                for level in s["is_correction_level"]:
                    modes = s["is_correction_mode"] if level != "off" else ("mask",)
                    gatings = s["is_correction_gating"] if level != "off" else ("ratio",)
                    for mode in modes:
                        for gating in gatings:
                            pl = {"policy_loss_type": plt, "token_level_loss": token, "dual_clip": dual,
                                  "is_correction_level": level, "is_correction_mode": mode,
                                  "is_correction_gating": gating}
                            if gating != "ratio":
                                pl["is_correction_threshold"] = (0.0, 0.5)  # CLI: a single HIGH value
                            out += _probes_for("combination", pl, None)
        for est in kl_estimators():
            for unbiased in (False, True):
                out += _probes_for("combination", {"policy_loss_type": plt}, (est, unbiased))
    return out


def input_probes() -> list[Probe]:
    out: list[Probe] = []
    cases = trl_probes.input_cases(batch)
    for plt in policy_space()["policy_loss_type"]:
        for token in (True, False):
            pl = {"policy_loss_type": plt, "token_level_loss": token}
            kl = ("k3", False)
            subject = SourceCall(subject_source(pl, kl))
            for name, make in cases.items():
                out += probes_for(subject, "input", f"PolicyLoss({core.describe(pl)}) + KL k3 | {name}", make,
                                  ("finite", "gradient", "permutation"), accepts=_accepts(pl, kl),
                                  key=f"{name}")
            for lr in (89.0, -89.0, 100.0, -100.0):
                for sign in (1.0, -1.0):
                    def make(lr=lr, sign=sign):
                        b = trl_probes._extreme_batch(lr, "float32", sign)()
                        b["adv"] = b["adv_seq"][:, None].expand_as(b["logp"]).clone()
                        b["rollout_logp"] = b["old_logp"].clone()
                        return b
                    out += probes_for(subject, "input", f"PolicyLoss({core.describe(pl)}) + KL k3 | float32 "
                                      f"log-ratio {lr:+g}, advantage {sign:+g}", make, ("finite",),
                                      accepts=_accepts(pl, kl), key=f"float32 log-ratio {lr:+g}")
    out += advantage_probes()
    return out


# --------------------------------------------------------------------------- advantages
ADV_SRC = IMPORTS + '''from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.experience import Experience


def advantages(estimator, rewards, mask, n_samples):
    """The real RemoteExperienceMaker.compute_advantages_and_returns on one Experience (bare instance, CLI
    defaults: gamma = lambd = 1, reward clip (-10, 10), KL in reward with coefficient 0 here)."""
    N = types.SimpleNamespace
    args = N(algo=N(advantage=N(estimator=estimator, gamma=1.0, lambd=1.0, no_std_norm=False)),
             rollout=N(n_samples_per_prompt=n_samples, max_new_tokens=None),
             reward=N(clip_range=(-10.0, 10.0), overlong_buffer_len=None, stop_properly_penalty_coef=None),
             data=N(max_len=None))
    em = RemoteExperienceMaker.__new__(RemoteExperienceMaker)
    em.strategy, em.args, em.advantage_estimator, em.kl_ctl = N(args=args), args, estimator, N(value=0.0)
    B = rewards.shape[0]
    exp = Experience(action_mask=mask, rewards=rewards.clone(), index=list(range(B)),
                     kl=torch.zeros(mask.shape, dtype=rewards.dtype), values=torch.zeros(mask.shape), info={})
    return em.compute_advantages_and_returns([exp])[0].advantages
'''


@functools.lru_cache(maxsize=1)
def estimators() -> tuple[str, ...]:
    src = inspect.getsource(_load().RemoteExperienceMaker.compute_advantages_and_returns)
    names = re.findall(r"\"(\w+)\"", " ".join(re.findall(r"estimator\s*(?:==|in)\s*(\[[^\]]*\]|\"\w+\")", src)))
    return tuple(n for n in dict.fromkeys(names) if n != "gae")


def _equal_group_probe(est: str, value: float) -> Probe:
    tail = (f"rewards = torch.full((6,), {value!r}, dtype=torch.float32)  # every group all-equal\n"
            "mask = torch.ones(6, 4, dtype=torch.bool)\n"
            f"adv = advantages({est!r}, rewards, mask, 3)\n"
            "print('advantages:', adv[:, 0])\n"
            "assert torch.isfinite(adv).all() and adv.abs().max() <= 1e-6, "
            "'a group whose rewards are all equal must get zero advantage'\n")
    return sourced.script_probe(
        FRAMEWORK, "input", ADV_PATH, f"estimator={est!r} | groups of 3 all-equal rewards {value} (float32)",
        SourceCall(ADV_SRC), tail, key=f"{est}|all-equal float32 group", table=UPSTREAM,
        severity=lambda msg: "wrong value",
        summary=lambda msg: f"estimator {est!r}: rewards all equal to {value} in float32 give non-zero advantages "
        "(rounding residue of the group mean divided by a std of ~1e-8)")


def advantage_probes() -> list[Probe]:
    return [_equal_group_probe(e, v) for e in estimators() for v in (0.7, 0.35, 1.3)]


def probes() -> list[Probe]:
    return default_probes() + combination_probes() + input_probes()

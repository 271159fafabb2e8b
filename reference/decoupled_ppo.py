"""Decoupled PPO (AReaL): PPO clipped against a proximal policy, importance-weighted from the behaviour policy.

Fu et al., "AReaL: A Large-Scale Asynchronous Reinforcement Learning System for Language Reasoning",
arXiv 2505.24298, §5 (the decoupled PPO objective for stale rollouts).

Three policies per token: π_behav sampled the rollout (possibly several versions old; ``old_logp``),
π_prox is a recent snapshot that anchors the trust region (``prox_logp``), π_θ is being optimized
(``logp``). With u = π_θ/π_prox and the behaviour weight w = π_prox/π_behav::

    ℓ_t = −sg(w_t) · min(u_t Â_t, clip(u_t, 1−ε_low, 1+ε_high) Â_t)           loss = Σ c ⊙ ℓ (token-mean)

w does not depend on θ: the gradient is PPO's, rescaled per token by w,
∂ℓ/∂logp = −w Â u on the unclipped branch and 0 where the clip binds. With π_prox = π_behav (``prox_logp``
omitted) w ≡ 1 and the loss is exactly :func:`rlspec.reference.ppo.ppo_clip_loss`.

Options beyond the paper's objective, named after AReaL's (``ppo_actor_loss_fn`` with
``rejection_sampling``, areal/utils/functional/functional.py, AReaL 1.0.4):
  * ``behave_cap``: None (paper: w unbounded) or a bound U on w;
  * ``behave_cap_mode``: "mask" — tokens with w > U get no loss at all, the aggregation denominators stay
    those of the full mask (AReaL ``action='mask'``); "clamp" — w ← min(w, U) (``action='clamp'``);
  * ``behave_weight``: True (paper); False drops w altogether, which is what AReaL's ``ppo_actor_loss_fn``
    does when ``rejection_sampling`` is None (its default) even if π_prox ≠ π_behav;
  * ``dual_clip_c``: the dual clip of :mod:`rlspec.reference.ppo`, applied before the weight (AReaL ``c_clip``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, masked_array, policy_batch, positive
from rlspec.reference.ppo import clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

AREAL_PAPER = Paper(arxiv="2505.24298", title="AReaL: A Large-Scale Asynchronous Reinforcement Learning System for "
                    "Language Reasoning", year=2025)


@dataclass(frozen=True)
class DecoupledPPOConfig(common.AggregationOptions):
    """eps_low/eps_high: clip of u = π_θ/π_prox (0.2). dual_clip_c: None or c > 1. behave_weight: multiply by
    w = π_prox/π_behav (paper) or not. behave_cap: None or U ≥ 1 on w; behave_cap_mode: 'mask' | 'clamp'."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip_c: float | None = None
    behave_weight: bool = True
    behave_cap: float | None = None
    behave_cap_mode: str = "mask"

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        if self.dual_clip_c is not None and positive(self.dual_clip_c, "dual_clip_c") <= 1.0:
            raise fail("dual_clip_c", repr(self.dual_clip_c), "a number > 1 (or None for no dual clip)")
        if not isinstance(self.behave_weight, bool):
            raise fail("behave_weight", repr(self.behave_weight), "True or False")
        if self.behave_cap is not None and positive(self.behave_cap, "behave_cap") < 1.0:
            raise fail("behave_cap", repr(self.behave_cap), "a bound ≥ 1 on π_prox/π_behav (or None)")
        choice(self.behave_cap_mode, "behave_cap_mode", ("mask", "clamp"))


def behaviour_weight(prox_logp: np.ndarray, old_logp: np.ndarray, cap: float | None,
                     mode: str) -> np.ndarray:
    """w = π_prox/π_behav (B, T), capped by ``cap`` ('clamp') or zeroed above it ('mask'); held fixed (sg)."""
    w, _ = common.ratio(prox_logp, old_logp)
    if cap is None:
        return w
    return np.minimum(w, cap) if mode == "clamp" else np.where(w > cap, 0.0, w)


def decoupled_ppo_loss(logp, old_logp, adv, mask, prox_logp=None, ref_logp=None,
                       config: DecoupledPPOConfig | None = None, group=None):
    """Decoupled PPO loss and its gradient w.r.t. logp.

    Args: logp (π_θ), old_logp (π_behav, the policy that sampled), adv (B, T) float; mask (B, T) bool;
    prox_logp (B, T) the proximal policy (None = old_logp, plain PPO); ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or DecoupledPPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    prox = old_logp if prox_logp is None else masked_array(prox_logp, "prox_logp", mask)
    u, du = common.ratio(logp, prox, cfg.log_ratio_clamp)  # (B, T) π_θ/π_prox
    ell, dell_du = clipped_surrogate(u, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell, dell_du = dual_clip(ell, dell_du, adv, cfg.dual_clip_c)
    if cfg.behave_weight:
        w = behaviour_weight(prox, old_logp, cfg.behave_cap, cfg.behave_cap_mode)
        ell, dell_du = w * ell, w * dell_du
    return common.aggregate_token_loss(ell, dell_du * du, mask, cfg, group)


GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _inputs(rng: np.random.Generator) -> dict:
    """A policy batch with a proximal policy between behaviour and current (stale behaviour: weights up to ~e²)."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 8))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    old = -rng.gamma(2.0, 1.0, size=(B, T))  # behaviour
    prox = old + rng.normal(scale=float(rng.choice([0.1, 0.5, 1.0])), size=(B, T))
    logp = prox + rng.normal(scale=0.3, size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)
    out = {"logp": logp, "old_logp": old, "prox_logp": prox, "adv": adv}
    for k in out:
        out[k][~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    return {**out, "mask": mask, "group": np.arange(B) // 2}


register(Spec(
    name="decoupled_ppo", kind="policy_loss", family="framework", paper=AREAL_PAPER, status="implemented",
    summary="PPO clipped against a proximal policy, importance-weighted from the stale behaviour policy",
    fn=decoupled_ppo_loss, config_cls=DecoupledPPOConfig, outputs=("loss", "dlogp"), make_inputs=_inputs,
    extras={"conformance_configs": lambda: [
        (f"{name}", dict(ov, behave_weight=True), f"make-inputs-{i}") for i in range(3) for name, ov in (
            ("weighted", {}), ("cap=2,mask", {"behave_cap": 2.0, "behave_cap_mode": "mask"}),
            ("cap=2,clamp", {"behave_cap": 2.0, "behave_cap_mode": "clamp"}))]},
    equations=(
        Equation("decoupled-ppo", "ℓ = −sg(π_prox/π_behav) · min(u Â, clip(u, 1−ε, 1+ε) Â),  u = π_θ/π_prox",
                 "arXiv 2505.24298 §5", "official-code", "decoupled_ppo_loss",
                 note="read in AReaL 1.0.4 ppo_actor_loss_fn (the authors' framework); the paper's equation was not "
                      "retrievable here. AReaL applies w only with rejection_sampling set (behave_weight=False "
                      "otherwise); its 'mask'/'clamp' caps are behave_cap_mode"),
    ),
    gradient="∂ℓ/∂logp = −w·Â·u on the unclipped branch, 0 where the clip binds; w = π_prox/π_behav is constant in θ",
    properties=(
        "properties/test_decoupled_ppo.py::test_reduces_to_ppo_when_proximal_is_behaviour",
        "properties/test_decoupled_ppo.py::test_gradient_is_ppo_gradient_scaled_by_behaviour_weight",
        "properties/test_decoupled_ppo.py::test_hand_gradient_matches_finite_differences_with_prox",
        "properties/test_decoupled_ppo.py::test_unbiased_for_the_behaviour_policy_on_policy_gradient",
        "properties/test_decoupled_ppo.py::test_cap_modes",
    ),
))

"""Two-sided clipping: PPO whose importance ratio is also capped at δ (INTELLECT-2).

Prime Intellect, "INTELLECT-2: A Reasoning Model Trained Through Globally Decentralized
Reinforcement Learning", arXiv 2505.07291, §4.1 (two-sided GRPO clipping, δ = 4, ε = 0.2).

In PPO (:mod:`rlspec.reference.ppo`) a token with Â < 0 and a very large ratio r keeps the unclipped term
r·Â: the loss −r·Â grows without bound and its gradient −Â·r with it. INTELLECT-2 caps the ratio of
the unclipped term at δ (> 1 + ε)::

    ℓ = −min(min(r, δ) Â, clip(r, 1−ε_low, 1+ε_high) Â)                      (B, T)

For Â > 0 and δ ≥ 1 + ε_high the cap never binds (the clipped term is already the smaller one),
so the change only concerns negative advantages: for Â < 0 and r > δ the loss is the constant −δ Â
and its gradient is 0. With δ > 1 + ε_high this is the same value as the dual clip of Ye et al.
(arXiv 1912.09729, eq. 5) with c = δ; the two differ when δ ≤ 1 + ε_high.

Gradient w.r.t. logp (∂r/∂logp = r): let a = min(r, δ) Â and b = clip(r) Â; the active branch is the
smaller one (a where a ≤ b). ∂ℓ/∂logp = −Â r [r < δ] on branch a, −Â r [1−ε_low < r < 1+ε_high] on
branch b (0 where the cap or the clip binds).

Provenance: the equation as implemented by TRL (``GRPOConfig.delta``, ``GRPOTrainer._compute_loss``:
``coef_1 = clamp(coef_1, max=delta)`` before the min) and Liger-Kernel (``ppo_loss_fn(delta=)``), and
TRL's documentation citing §4.1 of the report for δ = 4, ε = 0.2; the report's own text was not
read here (``secondary``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import fail, policy_batch, positive
from rlspec.reference.ppo import PPOConfig, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

INTELLECT2_PAPER = Paper(arxiv="2505.07291", title="INTELLECT-2: A Reasoning Model Trained Through Globally "
                         "Decentralized Reinforcement Learning", year=2025)


@dataclass(frozen=True)
class TwoSidedClipConfig(PPOConfig):
    """delta: cap δ > 1 on the ratio of the unclipped term (paper §4.1: 4). eps_low/eps_high: PPO range (0.2).
    dual_clip_c: inherited from PPO, None (off) by default; applied after the two-sided clip if set."""

    delta: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if positive(self.delta, "delta") <= 1.0:
            raise fail("delta", repr(self.delta), "a number > 1 (the cap must leave the on-policy ratio 1 free)")


def two_sided_surrogate(r: np.ndarray, adv: np.ndarray, eps_low: float, eps_high: float, delta: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = −min(min(r, δ) Â, clip(r, 1−ε_low, 1+ε_high) Â) and ∂ℓ/∂r (B, T)."""
    a = np.minimum(r, delta) * adv  # capped unclipped term
    b = np.clip(r, 1.0 - eps_low, 1.0 + eps_high) * adv  # PPO's clipped term
    use_a = a <= b
    da = np.where(r < delta, adv, 0.0)
    db = np.where((r > 1.0 - eps_low) & (r < 1.0 + eps_high), adv, 0.0)
    return -np.where(use_a, a, b), -np.where(use_a, da, db)


def two_sided_clip_loss(logp, old_logp, adv, mask, ref_logp=None, config: TwoSidedClipConfig | None = None,
                        group=None):
    """Two-sided clipped PPO loss and its gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or TwoSidedClipConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    ell, dell_dr = two_sided_surrogate(r, adv, cfg.eps_low, cfg.eps_high, cfg.delta)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


register(Spec(
    name="two_sided_clip", kind="policy_loss", family="framework", paper=INTELLECT2_PAPER, status="implemented",
    summary="PPO whose unclipped ratio is also capped at δ, bounding the loss of negative-advantage tokens",
    fn=two_sided_clip_loss, config_cls=TwoSidedClipConfig, outputs=("loss", "dlogp"),
    equations=(
        Equation("two-sided-clip", "ℓ = −min(min(r, δ) Â, clip(r, 1−ε, 1+ε) Â)", "arXiv 2505.07291 §4.1",
                 "secondary", "two_sided_surrogate",
                 note="as implemented by TRL GRPOTrainer._compute_loss (GRPOConfig.delta) and Liger ppo_loss_fn(delta); "
                      "the report's text was not read here"),
        Equation("two-sided-defaults", "δ = 4, ε = 0.2", "arXiv 2505.07291 §4.1", "secondary", "TwoSidedClipConfig",
                 note="values quoted by TRL's paper index for INTELLECT-2"),
    ),
    gradient="∂ℓ/∂logp = −Â·r where the active branch is unclipped and r < δ; 0 where the cap δ or the PPO clip binds",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences: dlogp = central FD",
        "properties/test_two_sided_clip.py::test_negative_advantage_loss_is_bounded_by_delta",
        "properties/test_two_sided_clip.py::test_equals_ppo_when_cap_does_not_bind",
        "properties/test_two_sided_clip.py::test_equals_dual_clip_when_delta_exceeds_clip_range",
        "properties/test_two_sided_clip.py::test_gradient_zero_beyond_delta_for_negative_advantage",
    ),
))

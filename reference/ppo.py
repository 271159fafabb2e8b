"""PPO clipped surrogate, with the dual-clip option.

PPO: Schulman et al., "Proximal Policy Optimization Algorithms", arXiv 1707.06347, §3 eq. (7).
Dual-clip: Ye et al., "Mastering Complex Control in MOBA Games with Deep RL", arXiv 1912.09729, §3.3 eq. (5).

Notation: r = π_θ/π_old per token (B, T); Â the advantage (B, T); ε_low, ε_high the clip range
(ε_low = ε_high = ε in the paper; asymmetric "clip-higher" is DAPO's, arXiv 2503.14476 §3.1).

Per-token loss (loss = −objective)::

    ℓ = −min(r Â, clip(r, 1−ε_low, 1+ε_high) Â)                         (PPO eq. 7)
    ℓ_dual = min(ℓ, −c Â)   for Â < 0, c > 1 (ℓ unchanged for Â ≥ 0)    (dual-clip eq. 5)

Gradient w.r.t. logp (∂r/∂logp = r): ∂ℓ/∂logp = −Â r where the unclipped branch is active, and
0 where the clip binds in the direction the objective prefers (r > 1+ε_high with Â > 0, or
r < 1−ε_low with Â < 0) or where the dual-clip constant −c Â is the active branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import fail, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

PPO_PAPER = Paper(arxiv="1707.06347", title="Proximal Policy Optimization Algorithms", year=2017)


@dataclass(frozen=True)
class PPOConfig(common.AggregationOptions):
    """eps_low/eps_high: clip range (paper: ε = 0.2 both sides). dual_clip_c: None = off, else c > 1 (paper: 3)."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip_c: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        if self.dual_clip_c is not None and positive(self.dual_clip_c, "dual_clip_c") <= 1.0:
            raise fail("dual_clip_c", repr(self.dual_clip_c), "a number > 1 (or None for no dual clip)")


def clipped_surrogate(r: np.ndarray, adv: np.ndarray, eps_low: float, eps_high: float) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = −min(r Â, clip(r, 1−ε_low, 1+ε_high) Â) and ∂ℓ/∂r (B, T).  PPO eq. (7)."""
    unclipped = r * adv
    clipped = np.clip(r, 1.0 - eps_low, 1.0 + eps_high) * adv
    ell = -np.minimum(unclipped, clipped)
    # the unclipped branch is the minimum unless the clip binds in the preferred direction
    binds = ((adv > 0) & (r > 1.0 + eps_high)) | ((adv < 0) & (r < 1.0 - eps_low))
    dell_dr = np.where(binds, 0.0, -adv)
    return ell, dell_dr


def dual_clip(ell: np.ndarray, dell_dr: np.ndarray, adv: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """For Â < 0: ℓ ← min(ℓ, −c Â), the lower bound that stops r → ∞ from dominating. Dual-clip eq. (5)."""
    cap = -c * adv
    active = (adv < 0) & (ell > cap)
    return np.where(active, cap, ell), np.where(active, 0.0, dell_dr)


def ppo_clip_loss(logp, old_logp, adv, mask, ref_logp=None, config: PPOConfig | None = None, group=None):
    """PPO clipped surrogate loss and its gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` is accepted and unused;
    ``group`` (B,) is needed only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or PPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


EQUATIONS = (
    Equation("ppo-clip", "ℓ = −min(r Â, clip(r, 1−ε, 1+ε) Â)", "arXiv 1707.06347 §3 eq. (7)", "paper",
             "clipped_surrogate"),
    Equation("dual-clip", "ℓ = min(ℓ, −c Â) for Â < 0", "arXiv 1912.09729 §3.3 eq. (5)", "paper", "dual_clip",
             note="c = 3 in the paper; verl exposes clip_ratio_c = 3.0"),
)

register(Spec(
    name="ppo", kind="policy_loss", family="baseline", paper=PPO_PAPER, status="implemented",
    summary="PPO clipped surrogate (optional dual clip, asymmetric range)",
    fn=ppo_clip_loss, config_cls=PPOConfig, equations=EQUATIONS, outputs=("loss", "dlogp"),
    aliases=("ppo_clip", "vanilla"),
    gradient="∂ℓ/∂logp = −Â·r on the unclipped branch; 0 where the clip (or the dual-clip cap) binds",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences: dlogp = central FD",
        "properties/test_ppo.py::test_clip_zeroes_gradient_where_it_binds: dlogp = 0 exactly where clipped",
        "properties/test_ppo.py::test_on_policy_equals_vanilla_pg: r ≡ 1 gives the weight −Â·c",
        "properties/test_ppo.py::test_dual_clip_bounds_negative_advantage_loss: ℓ ≤ −c Â for Â < 0",
    ),
))

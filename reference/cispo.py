"""CISPO: Clipped IS-weight Policy Optimization (MiniMax-M1).

MiniMax, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention",
arXiv 2506.13585, §3.1 (the CISPO objective and its clipped IS weight).

Instead of clipping the token update (PPO, where the gradient of a clipped token is zero), CISPO
clips the importance-sampling weight and stops its gradient, so every token keeps a REINFORCE
gradient::

    r̂_it = clip(r_it, 1−ε_low, 1+ε_high),   r = π_θ/π_old
    J = (1/Σ_i |o_i|) Σ_i Σ_t sg(r̂_it) Â_it log π_θ(o_it)          (token-mean)
    ℓ_it = −sg(r̂_it) Â_it logp_it,   ∂ℓ_it/∂logp_it = −sg(r̂_it) Â_it

The paper reports that in practice no lower bound was imposed (ε_low set large), only ε_high tuned;
``eps_low=None`` (default) is that one-sided clip. verl clips on both sides with its PPO range
(ε_low = 0.2, ε_high = 0.28): ``eps_low=0.2, eps_high=0.28``. TRL and Liger clip one-sided with an
absolute cap ``clamp(r, max=epsilon_high)``: their ``epsilon_high = E`` is ``eps_high = E − 1`` here.
The numeric ε_high of the paper is not in our notes: the default 4.0 (cap 5.0) follows TRL's
documented CISPO setting (``epsilon_high=5.0``) and is labelled ``reconstructed``.

The loss value depends on logp itself (not only on the ratio), as in the paper and in verl/TRL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

MINIMAX_M1_PAPER = Paper(arxiv="2506.13585", title="MiniMax-M1: Scaling Test-Time Compute Efficiently with "
                         "Lightning Attention", year=2025)


@dataclass(frozen=True)
class CISPOConfig(common.AggregationOptions):
    """eps_high: upper clip of the IS weight (cap 1+ε_high). eps_low: None = no lower clip (paper's
    practice) or a number (verl's two-sided clip). agg: token-mean (paper)."""

    eps_low: float | None = None
    eps_high: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps_low is not None:
            positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)


def clipped_is_weight(r: np.ndarray, eps_low: float | None, eps_high: float) -> np.ndarray:
    """r̂ = clip(r, 1−ε_low, 1+ε_high) (lower bound omitted when ε_low is None); used under sg."""
    lo = -np.inf if eps_low is None else 1.0 - eps_low
    return np.clip(r, lo, 1.0 + eps_high)


def cispo_loss(logp, old_logp, adv, mask, ref_logp=None, config: CISPOConfig | None = None, group=None):
    """CISPO loss −Σ c ⊙ sg(r̂) Â logp and its gradient −c ⊙ sg(r̂) Â.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or CISPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    r, _ = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T); its gradient is stopped
    w = clipped_is_weight(r, cfg.eps_low, cfg.eps_high)
    ell = -w * adv * logp
    return common.aggregate_token_loss(ell, -w * adv, mask, cfg, group)


register(Spec(
    name="cispo", kind="policy_loss", family="baseline", paper=MINIMAX_M1_PAPER, status="implemented",
    extras={"stop_gradient": "the clipped weight sg(clip(r)) is held fixed; finite differences of the loss value "
                             "do not give dlogp: properties/test_cispo.py checks FD with the weight frozen"},
    summary="REINFORCE with a clipped, stop-gradient IS weight: no token's gradient is dropped",
    fn=cispo_loss, config_cls=CISPOConfig, outputs=("loss", "dlogp"),
    equations=(
        Equation("cispo", "J = (1/Σ|o_i|) Σ_it sg(clip(r_it, 1−ε_low, 1+ε_high)) Â_it log π_θ(o_it)",
                 "arXiv 2506.13585 §3.1", "secondary", "cispo_loss",
                 note="equation as rendered by third-party summaries of the paper and as implemented by verl/TRL "
                      "(peers.md §10); verl clips two-sided, TRL/Liger one-sided with an absolute cap"),
        Equation("cispo-eps", "ε_low: none (not imposed in practice); ε_high = 4.0 (cap 5.0)",
                 "arXiv 2506.13585 §3.1", "reconstructed", "CISPOConfig",
                 note="the paper's ε_high value is not in our notes; default taken from TRL's CISPO docs"),
    ),
    gradient="∂loss/∂logp = −c·sg(clip(r))·Â: never zero for Â ≠ 0 (clipping only rescales the weight)",
    properties=(
        "properties/test_cispo.py::test_hand_gradient_matches_finite_differences",
        "properties/test_cispo.py::test_gradient_never_zero_where_advantage_nonzero",
        "properties/test_cispo.py::test_on_policy_equals_vanilla_pg",
    ),
))

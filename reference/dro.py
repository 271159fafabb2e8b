"""DRO-style policy loss: REINFORCE on log π plus a squared log-ratio penalty (verl ``dro``).

verl 0.9.1 ships it as the policy loss ``dro`` (``core_algos.compute_policy_loss_dro``, "Direct Reward
Optimization with a quadratic log-ratio penalty"; ``PolicyLossConfig.dro_beta`` must be set). verl cites no
paper; the name points at Direct Reward Optimization (Richemond et al., "Offline Regularised Reinforcement
Learning for Large Language Models Alignment", arXiv 2405.19107), whose squared-residual objective
½(R − V − τ log π/π_ref)² has the per-token policy gradient −τ(Â − τ log r)∇log π — the same weight as below
up to the overall factor τ (our reading, not checked against that paper's text). Here the anchor is the
behaviour policy π_old, as in verl.

Per token (loss = −objective)::

    ℓ_t = −(Â_t logp_t − ½ β (logp_t − old_logp_t)²)
    ∂ℓ_t/∂logp_t = −Â_t + β (logp_t − old_logp_t)

Instead of clipping, the quadratic penalty bounds the step: for one token, ℓ is a convex parabola in logp
whose minimum is at log r* = Â/β (a finite target; β → 0 is plain REINFORCE). β has no default in verl;
ours (0.1) is a choice, labelled ``reconstructed``. The loss value depends on logp itself, like CISPO's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

VERL_DRO = Paper(arxiv="", title="verl: compute_policy_loss_dro", year=2026,
                 url="https://github.com/volcengine/verl/blob/main/verl/trainer/ppo/core_algos.py")


@dataclass(frozen=True)
class DROConfig(common.AggregationOptions):
    """beta > 0: coefficient of the squared log-ratio penalty (verl: policy_loss.dro_beta, required)."""

    beta: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.beta, "beta")


def dro_token_loss(logp: np.ndarray, log_r: np.ndarray, dlog_r: np.ndarray, adv: np.ndarray,
                   beta: float) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = −(Â logp − ½β (log r)²) and ∂ℓ/∂logp = −Â + β log r · ∂log r/∂logp  (B, T)."""
    ell = -(adv * logp - 0.5 * beta * log_r * log_r)
    return ell, -adv + beta * log_r * dlog_r


def dro_loss(logp, old_logp, adv, mask, ref_logp=None, config: DROConfig | None = None, group=None):
    """DRO-style policy loss and its gradient.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or DROConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_r, dlog_r = common.log_ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell, dell = dro_token_loss(logp, log_r, dlog_r, adv, cfg.beta)
    return common.aggregate_token_loss(ell, dell, mask, cfg, group)


register(Spec(
    name="dro", kind="policy_loss", family="framework", paper=VERL_DRO, status="implemented",
    summary="−(logp·Â − ½β(logp − old_logp)²): a squared log-ratio penalty instead of a clip",
    fn=dro_loss, config_cls=DROConfig, outputs=("loss", "dlogp"),
    equations=(
        Equation("dro-loss", "ℓ = −(Â log π − ½β (log π − log π_old)²)", "verl core_algos.compute_policy_loss_dro",
                 "secondary", "dro_token_loss",
                 note="read in verl 0.9.1 (the framework that ships it; no paper cited there); relation to DRO "
                      "(arXiv 2405.19107) is our reading"),
        Equation("dro-beta", "β = 0.1 (default here)", "none", "reconstructed", "DROConfig",
                 note="verl requires policy_loss.dro_beta > 0 and has no default"),
    ),
    gradient="∂ℓ/∂logp = −Â + β(logp − old_logp), times the aggregation coefficient c",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences",
        "properties/test_dro.py::test_gradient_is_advantage_minus_beta_log_ratio",
        "properties/test_dro.py::test_token_optimum_is_log_ratio_adv_over_beta",
        "properties/test_dro.py::test_on_policy_equals_vanilla_pg",
    ),
))

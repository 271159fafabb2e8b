"""The absolute log-ratio |logp − ref_logp| as a KL surrogate (verl ``kl_penalty("abs")``).

verl 0.9.1: ``core_algos.kl_penalty(logprob, ref_logprob, "abs")`` (also selectable as
``actor.kl_loss_type=abs`` / ``algorithm.kl_penalty=abs``); the same option exists in the official code of
arXiv 2505.22617 and earlier verl/TRL versions. No paper defines it; it sits next to Schulman's k1/k2/k3
(see :mod:`rlspec.reference.kl`).

With δ = logp − ref_logp per sampled token (y ~ π_θ)::

    k_abs = |δ|,      ∂k_abs/∂logp = sign(δ)       (sign(0) = 0, as torch.abs' derivative)

It is not an unbiased KL estimator: by Jensen, E_{π_θ}|δ| ≥ |E_{π_θ} δ| = KL(π_θ‖π_ref), so in expectation
it over-estimates the KL (tested by enumeration). Its gradient has magnitude at most the aggregation
coefficient, whatever the distance (k2's grows with |δ|).

Options (config), mirroring :class:`rlspec.reference.kl.KLConfig`: aggregation; ``log_ratio_clamp`` clamps δ;
``value_clamp`` clamps k; ``straight_through_k2``: value of |δ|, gradient of ½δ² (verl's ``"abs+"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import fail, positive
from rlspec.reference.kl import validate_kl_batch, value_clamp
from rlspec.reference.registry import Equation, Paper, Spec, register

VERL_KL_ABS = Paper(arxiv="", title="verl: kl_penalty('abs')", year=2024,
                    url="https://github.com/volcengine/verl/blob/main/verl/trainer/ppo/core_algos.py")


@dataclass(frozen=True)
class KLAbsConfig(common.AggregationOptions):
    """Aggregation (default token-mean); log_ratio_clamp clamps δ; value_clamp clamps |δ|;
    straight_through_k2: value of |δ|, gradient of ½δ² (verl "abs+")."""

    value_clamp: float | None = None
    straight_through_k2: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_clamp is not None:
            positive(self.value_clamp, "value_clamp")
        if not isinstance(self.straight_through_k2, bool):
            raise fail("straight_through_k2", repr(self.straight_through_k2), "True or False")


def k_abs(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k = |δ| and ∂k/∂δ = sign(δ) (0 at δ = 0)."""
    return np.abs(d), np.sign(d)


def kl_abs_loss(logp, ref_logp, mask, config: KLAbsConfig | None = None, group=None):
    """|logp − ref_logp| aggregated as a loss: (value, dlogp = c·sign(logp − ref_logp))."""
    cfg = config or KLAbsConfig()
    lp, rlp, m, _ = validate_kl_batch(logp, ref_logp, mask)
    d, dd = common.log_ratio(lp, rlp, cfg.log_ratio_clamp)  # δ = logp − ref_logp, ∂δ/∂logp ∈ {0, 1}
    k, dk = k_abs(d)
    k, dk = value_clamp(k, dk, cfg.value_clamp)
    dk = dk * dd
    if cfg.straight_through_k2:
        dk = lp - rlp  # ∂(½(logp − ref)²)/∂logp, as verl's "+" modes
    return common.aggregate_token_loss(k, dk, m, cfg, group)


register(Spec(
    name="kl_abs", kind="kl", family="framework", paper=VERL_KL_ABS, status="implemented",
    summary="|logp − ref_logp| used as a KL loss (a biased-upward surrogate with bounded gradient)",
    fn=kl_abs_loss, config_cls=KLAbsConfig, outputs=("loss", "dlogp"),
    equations=(Equation("kl-abs", "k = |log π_θ − log π_ref|, ∂k/∂log π_θ = sign(·)",
                        "verl core_algos.kl_penalty_forward ('abs')", "secondary", "k_abs",
                        note="read in verl 0.9.1; no paper defines it"),),
    gradient="∂k/∂logp = sign(logp − ref_logp) (0 where equal), times the aggregation coefficient c",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences",
        "properties/test_kl_abs.py::test_nonnegative_and_zero_only_at_equality",
        "properties/test_kl_abs.py::test_expectation_upper_bounds_the_kl_by_enumeration",
        "properties/test_kl_abs.py::test_gradient_bounded_by_the_coefficient",
        "properties/test_kl_abs.py::test_straight_through_gives_the_k2_gradient",
    ),
))

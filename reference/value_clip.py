"""PPO's clipped value-function (critic) loss.

Schulman et al., "Proximal Policy Optimization Algorithms", arXiv 1707.06347, §5 eq. (9): the critic
term L^VF = (V_θ(s_t) − V_t^targ)². The clipping of the value prediction is not in the paper: it is in
OpenAI's reference PPO code (openai/baselines ``ppo2/model.py``, the same ``CLIPRANGE`` as the policy
clip) and in the peer frameworks (OpenRLHF ``ValueLoss``, AReaL ``ppo_critic_loss_fn``).

Notation: V the current value predictions (B, T), V_old the predictions when the batch was collected,
R the returns (value targets), ε the value clip range::

    V_clip = V_old + clip(V − V_old, −ε, ε)
    ℓ_t    = ½ · max((V − R)², (V_clip − R)²)            aggregated like a policy loss (token-mean)

``eps=None`` gives the paper's unclipped ½(V − R)² (the ½ is baselines'; it only rescales).

Gradient w.r.t. the values (the critic's analogue of dlogp; this entry's second output is ``dvalues``)::

    ∂ℓ/∂V = V − R                       where (V − R)² ≥ (V_clip − R)² (the unclipped branch)
          = (V_clip − R) · 1[|V − V_old| < ε]   otherwise (the clipped branch is flat outside the range)

The clipped branch can only win when V has left [V_old − ε, V_old + ε] and the clipped prediction is farther
from R than V is (V moved toward or past the target by more than ε); the gradient there is exactly 0, so one
update cannot move the critic more than ε toward its target (a pessimistic, trust-region-like bound).

Call signature (kind ``value_loss``, the critic losses' own kind): ``value_clip_loss(values=, old_values=,
returns=, mask=, config=None) -> (loss, dvalues)``. Masked positions are never read; an all-false mask
gives loss 0 and zero gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import aggregation, common
from rlspec.reference._validate import as_2d, as_mask, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

PPO_PAPER = Paper(arxiv="1707.06347", title="Proximal Policy Optimization Algorithms", year=2017)


@dataclass(frozen=True)
class ValueClipConfig(common.CriticAggregationOptions):
    """eps: value clip range (None = no clip, the paper's L^VF). agg/normalizer/const/seq_denominator: the
    aggregation (:class:`rlspec.reference.common.CriticAggregationOptions`); default token-mean."""

    eps: float | None = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps is not None:
            positive(self.eps, "eps", allow_zero=True)


def clipped_value(V: np.ndarray, V_old: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """V_clip = V_old + clip(V − V_old, −ε, ε) and ∂V_clip/∂V = 1[|V − V_old| < ε] (B, T)."""
    d = V - V_old
    inside = (d > -eps) & (d < eps)
    return V_old + np.clip(d, -eps, eps), inside.astype(np.float64)


def value_loss_per_token(V: np.ndarray, V_old: np.ndarray, R: np.ndarray,
                         eps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = ½ max((V − R)², (V_clip − R)²) and ∂ℓ/∂V (B, T)."""
    e_un = V - R
    if eps is None:
        return 0.5 * e_un**2, e_un
    Vc, dVc = clipped_value(V, V_old, eps)
    e_cl = Vc - R
    unclipped_wins = e_un**2 >= e_cl**2
    ell = 0.5 * np.maximum(e_un**2, e_cl**2)
    return ell, np.where(unclipped_wins, e_un, e_cl * dVc)


def value_clip_loss(values, old_values, returns, mask, config: ValueClipConfig | None = None):
    """PPO clipped value loss and its gradient w.r.t. ``values``.

    Args: values, old_values, returns (B, T) float; mask (B, T) bool.
    Returns: (loss: float, dvalues: (B, T)), dvalues zero at masked positions.
    """
    cfg = config or ValueClipConfig()
    V = as_2d(values, "values")
    m = as_mask(mask, "mask", V.shape)
    V = masked_array(values, "values", m)
    V_old = masked_array(old_values, "old_values", m)
    R = masked_array(returns, "returns", m)
    ell, dell = value_loss_per_token(V, V_old, R, cfg.eps)
    c = aggregation.coefficients(m, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                                 seq_denominator=cfg.seq_denominator)
    return float((c * np.where(m, ell, 0.0)).sum()), c * np.where(m, dell, 0.0)


register(Spec(
    name="value_clip", kind="value_loss", family="framework", paper=PPO_PAPER, status="implemented",
    summary="clipped value-function loss of the critic: ½ max((V − R)², (clip(V, V_old ± ε) − R)²)",
    fn=value_clip_loss, config_cls=ValueClipConfig, outputs=("loss", "dvalues"),
    extras={"conformance_configs": lambda: [("eps=0.5", {"eps": 0.5}), ("eps=None", {"eps": None})],
            },
    equations=(
        Equation("value-loss", "L^VF = (V_θ(s_t) − V_t^targ)²", "arXiv 1707.06347 §5 eq. (9)", "secondary",
                 "value_loss_per_token", note="the paper's critic term as restated in baselines and the frameworks; "
                 "the paper text was not retrieved in this session"),
        Equation("value-clip", "ℓ = ½ max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)",
                 "openai/baselines ppo2/model.py (vf_loss)", "official-code", "value_loss_per_token",
                 note="not in the paper; OpenRLHF ValueLoss (models/loss.py) and AReaL ppo_critic_loss_fn "
                      "(utils/functional/functional.py) compute the same, both with ε = 0.5 by default"),
    ),
    gradient="∂ℓ/∂V = V − R on the unclipped branch; (V_clip − R)·1[|V − V_old| < ε] on the clipped one, "
             "which is 0 wherever the clipped branch strictly wins",
    properties=(
        "properties/test_value_clip.py::test_hand_gradient_matches_finite_differences",
        "properties/test_value_clip.py::test_clip_stops_gradient_exactly_where_clipped_branch_wins",
        "properties/test_value_clip.py::test_loss_bounds_the_unclipped_loss_from_above",
        "properties/test_value_clip.py::test_no_clip_inside_the_range",
        "properties/test_value_clip.py::test_padding_is_never_read",
        "properties/test_value_clip.py::test_shards_with_global_normalizer_sum_to_full_batch",
        "properties/test_value_clip.py::test_optimized_matches_reference",
    ),
))

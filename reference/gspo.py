"""GSPO: Group Sequence Policy Optimization (sequence-level ratio), and its GSPO-token variant.

Zheng et al., "Group Sequence Policy Optimization", arXiv 2507.18071, §4.1 (eqs. (5)-(7)) and
§4.3 (GSPO-token, eqs. (13)-(14)).

Notation: log r_it = logp_it − old_logp_it; n_i = |y_i| the number of valid tokens of sequence i;
Â_i the sequence advantage.

    s_i = exp((1/n_i) Σ_t log r_it)                    (geometric mean of the token ratios, eq. (7))
    ℓ_i = −min(s_i Â_i, clip(s_i, 1−ε_low, 1+ε_high) Â_i)                                 (eq. (5))

Paper defaults ε_low = 3e-4, ε_high = 4e-4 (§5.1). The objective averages ℓ_i over the G sequences
of a group: here the per-sequence loss is broadcast to the sequence's tokens and aggregated with
``seq-mean-token-mean`` (default), which gives (1/B′) Σ_i ℓ_i; any mode is allowed, giving
Σ_i C_i ℓ_i with C_i = Σ_t c_it.

Sequence advantage from a (B, T) ``adv``: Â_i = masked token-mean of adv over sequence i (equal to
the broadcast value for outcome advantages). A sequence with no valid token has s_i = 1, Â_i = 0 and
contributes nothing.

Gradient (coupled across the sequence): ∂s_i/∂logp_it = s_i/n_i, so
    ∂loss/∂logp_it = C_i · (∂ℓ_i/∂s_i) · s_i / n_i,   ∂ℓ_i/∂s_i = −Â_i (unclipped) or 0 (clip binds).

GSPO-token (eq. (13)): s_it = sg[s_i] · π_θ(y_it)/sg[π_θ(y_it)], whose value is s_i and whose
gradient is token-local: ∂s_it/∂logp_it = s_i. Per-token loss −min(s_it Â_it, clip(s_it) Â_it) with
token advantages. With Â_it = Â_i for all t it has the same value and gradient as GSPO under every
aggregation mode (the coefficients c_it are constant along a sequence); with token-varying Â its
loss is ≥ GSPO's under seq-mean-token-mean (Jensen: the clipped objective is concave in Â).

``log_ratio_clamp`` (inherited) clamps the sequence log-ratio (1/n_i) Σ_t log r_it to ±value before
the exponential (verl clamps it at +10); where it binds the gradient through s_i is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import policy_batch, positive
from rlspec.reference.ppo import clipped_surrogate
from rlspec.reference.registry import Equation, Paper, Spec, register

GSPO_PAPER = Paper(arxiv="2507.18071", title="Group Sequence Policy Optimization", year=2025)


@dataclass(frozen=True)
class GSPOConfig(common.AggregationOptions):
    """eps_low/eps_high: clip range of the sequence ratio (paper: 3e-4 / 4e-4); agg: seq-mean-token-mean."""

    agg: str = "seq-mean-token-mean"
    eps_low: float = 3e-4
    eps_high: float = 4e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)


def sequence_log_ratio(logp: np.ndarray, old_logp: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1/n_i) Σ_t M_it (logp_it − old_logp_it), shape (B,), and n_i (B,) (0 for empty rows → value 0)."""
    n = mask.sum(axis=1).astype(np.float64)  # (B,)
    total = np.where(mask, logp - old_logp, 0.0).sum(axis=1)  # (B,)
    return np.divide(total, n, out=np.zeros_like(total), where=n > 0), n


def sequence_ratio(logp: np.ndarray, old_logp: np.ndarray, mask: np.ndarray,
                   clamp: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s_i = exp(mean_t log r_it) (B,)  — eq. (7). Returns (s, ∂log s/∂(mean log r) ∈ {0,1}, n)."""
    m, n = sequence_log_ratio(logp, old_logp, mask)
    lr, inside = common.log_ratio(m, np.zeros_like(m), clamp)
    s, _ = common.ratio(lr, np.zeros_like(lr))
    return s, inside, n


def sequence_advantage(adv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Â_i = masked token-mean of adv over sequence i (B,); 0 for a sequence with no valid token."""
    n = mask.sum(axis=1).astype(np.float64)
    total = np.where(mask, adv, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.zeros_like(total), where=n > 0)


def gspo_loss(logp, old_logp, adv, mask, ref_logp=None, config: GSPOConfig | None = None, group=None):
    """GSPO loss (sequence-level clipped ratio) and its hand gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or GSPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    s, inside, n = sequence_ratio(logp, old_logp, mask, cfg.log_ratio_clamp)  # (B,)
    A = sequence_advantage(adv, mask)  # (B,)
    ell, dell_ds = clipped_surrogate(s, A, cfg.eps_low, cfg.eps_high)  # (B,)
    c = common.agg_coefficients(mask, cfg, group)
    C = c.sum(axis=1)  # (B,) weight of each sequence in the aggregated loss
    ds_dlogp = np.divide(s * inside, n, out=np.zeros_like(s), where=n > 0)  # (B,) = s_i/n_i
    dlogp = np.where(mask, (C * dell_ds * ds_dlogp)[:, None], 0.0)  # (B, T)
    return float((C * ell).sum()), dlogp


def gspo_token_loss(logp, old_logp, adv, mask, ref_logp=None, config: GSPOConfig | None = None, group=None):
    """GSPO-token loss (eq. (13)): s_it = sg[s_i]·π_θ/sg[π_θ], token advantages; token-local gradient.

    Value ℓ_it = −min(s_i Â_it, clip(s_i, 1−ε_low, 1+ε_high) Â_it); ∂ℓ_it/∂logp_it = s_i·∂ℓ/∂s.
    Returns: (loss: float, dlogp: (B, T)).
    """
    cfg = config or GSPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    s, _, _ = sequence_ratio(logp, old_logp, mask, cfg.log_ratio_clamp)  # sg[s_i]: no gradient through it
    s_t = np.broadcast_to(s[:, None], mask.shape)  # (B, T) value of s_it
    ell, dell_ds = clipped_surrogate(s_t, adv, cfg.eps_low, cfg.eps_high)
    return common.aggregate_token_loss(ell, dell_ds * s_t, mask, cfg, group)


EQUATIONS = (
    Equation("gspo-ratio", "s_i = (π_θ(y_i|x)/π_old(y_i|x))^{1/|y_i|} = exp((1/|y_i|) Σ_t log r_it)",
             "arXiv 2507.18071 §4.1 eq. (7)", "secondary", "sequence_ratio",
             note="from our notes (papers_A.md §B); verl/OpenRLHF/TRL implement the same masked mean"),
    Equation("gspo-objective", "ℓ_i = −min(s_i Â_i, clip(s_i, 1−ε_low, 1+ε_high) Â_i), averaged over the group",
             "arXiv 2507.18071 §4.1 eqs. (5)-(6)", "secondary", "gspo_loss",
             note="ε_low = 3e-4, ε_high = 4e-4 (paper §5.1, per our notes)"),
)

register(Spec(
    name="gspo", kind="policy_loss", family="baseline", paper=GSPO_PAPER, status="implemented",
    summary="sequence-level ratio (geometric mean of token ratios) with a tight clip",
    fn=gspo_loss, config_cls=GSPOConfig, outputs=("loss", "dlogp"), equations=EQUATIONS,
    gradient="∂loss/∂logp_it = C_i·(−Â_i)·s_i/|y_i| where the clip does not bind, else 0 (coupled over the sequence)",
    properties=(
        "properties/test_gspo.py::test_hand_gradient_matches_finite_differences",
        "properties/test_gspo.py::test_sequence_ratio_is_geometric_mean",
        "properties/test_gspo.py::test_single_token_equals_ppo_clip",
        "properties/test_gspo.py::test_empty_sequence_contributes_nothing",
    ),
))

register(Spec(
    name="gspo_token", kind="policy_loss", family="baseline", paper=GSPO_PAPER, status="implemented",
    extras={"stop_gradient": "sg[s_i] and sg[π_θ] are held fixed; properties/test_gspo.py::"
                             "test_token_variant_gradient_matches_frozen_finite_differences checks FD with them frozen"},
    summary="GSPO-token: s_it = sg[s_i]·π_θ/sg[π_θ] with token advantages",
    fn=gspo_token_loss, config_cls=GSPOConfig, outputs=("loss", "dlogp"),
    equations=(Equation("gspo-token", "s_it = sg[s_i]·π_θ(y_it)/sg[π_θ(y_it)]", "arXiv 2507.18071 §4.3 eq. (13)",
                        "secondary", "gspo_token_loss",
                        note="verl compute_policy_loss_gspo uses exactly this form (peers.md §2.3)"),),
    gradient="∂loss/∂logp_it = c_it·(−Â_it)·s_i where the clip does not bind, else 0 (token-local)",
    properties=(
        "properties/test_gspo.py::test_hand_gradient_matches_finite_differences",
        "properties/test_gspo.py::test_token_variant_equals_gspo_for_shared_advantage",
        "properties/test_gspo.py::test_token_variant_upper_bounds_gspo_loss",
    ),
))

"""GMPO: Geometric-Mean Policy Optimization (geometric mean of sign-aware clipped token ratios).

Zhao et al., "Geometric-Mean Policy Optimization", arXiv 2507.20673 (method section: the GMPO objective);
official code callsys/GMPO ``train_zero_math_gmpo.py`` (``critic_type_modify == "gmpo"``, cliprange 0.4).

Notation: d_it = logp_it − old_logp_it (log-ratio), ρ_it = exp(d_it); n_i = |o_i| valid tokens;
Â_i the sequence advantage; ε_low, ε_high clip the *log*-ratio: ratios are clipped to
[e^{−ε_low}, e^{ε_high}] (paper and official script: ε = 0.4 both sides).

The objective replaces GRPO's arithmetic token mean by a geometric mean::

    J_i = sgn(Â_i) · (Π_t |min(ρ_it Â_i, clip(ρ_it, e^{−ε_low}, e^{ε_high}) Â_i)|)^{1/n_i}
        = Â_i · exp((1/n_i) Σ_t d̃_it) = Â_i · s_i

where the sign-aware clip (PPO's min, taken token by token, in log space) is

    d̃_it = min(d_it, ε_high)    if Â_i ≥ 0     (only the upward move is capped)
    d̃_it = max(d_it, −ε_low)    if Â_i < 0     (only the downward move is capped)

Loss ℓ_i = −Â_i s_i; as in :mod:`rlspec.reference.gspo` the per-sequence loss is broadcast to the sequence's
tokens and aggregated (default ``seq-mean-token-mean`` = (1/B′) Σ_i ℓ_i, the paper's 1/G average);
any mode gives Σ_i C_i ℓ_i with C_i = Σ_t c_it. Sequence advantage from a (B, T) ``adv``: masked
token-mean (the broadcast value for outcome advantages). A sequence with no valid token has
Â_i = 0, s_i = 1 and contributes nothing.

Gradient (coupled across the sequence): ∂s_i/∂logp_it = s_i · 1[token t not clipped] / n_i, so

    ∂loss/∂logp_it = −C_i Â_i s_i / n_i   where the clip does not bind at token t, else 0.

Every unclipped token of a sequence gets the same weight Â_i s_i/n_i (GRPO's weight is Â_i ρ_it/n_i).

Peer conventions: verl's ``compute_policy_loss_geo_mean`` takes ``torch.mean`` of ℓ_i over all rows,
fully masked ones included, whatever ``loss_agg_mode`` says (notes/peers.md §2.3) — that is
``agg="seq-mean-token-mean"`` with ``normalizer = B`` (the number of rows) here; it also clips with the
sign of each token's advantage (torch.sign, so Â = 0 tokens get d̃ = 0), which only differs from ours for
token-level advantages of changing sign. ``log_ratio_clamp`` (inherited) clamps each token's d before
the sign-aware clip; where it binds the gradient through that token is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import policy_batch, positive
from rlspec.reference.gspo import sequence_advantage
from rlspec.reference.registry import Equation, Paper, Spec, register

GMPO_PAPER = Paper(arxiv="2507.20673", title="Geometric-Mean Policy Optimization", year=2025)


@dataclass(frozen=True)
class GMPOConfig(common.AggregationOptions):
    """eps_low/eps_high: clip range of the token LOG-ratio, [−ε_low, ε_high] (paper: 0.4 / 0.4);
    agg: seq-mean-token-mean (verl's row mean = this with normalizer B)."""

    agg: str = "seq-mean-token-mean"
    eps_low: float = 0.4
    eps_high: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)


def sign_aware_clip(d: np.ndarray, A: np.ndarray, eps_low: float, eps_high: float) -> tuple[np.ndarray, np.ndarray]:
    """d̃ = min(d, ε_high) where Â ≥ 0, max(d, −ε_low) where Â < 0 (A broadcast against d); and ∂d̃/∂d ∈ {0, 1}."""
    pos = np.broadcast_to(A >= 0, d.shape)
    dt = np.where(pos, np.minimum(d, eps_high), np.maximum(d, -eps_low))
    free = np.where(pos, d < eps_high, d > -eps_low)
    return dt, free.astype(np.float64)


def geometric_mean_ratio(dt: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s_i = exp((1/n_i) Σ_t M_it d̃_it) (B,) — the geometric mean of the clipped ratios; and n_i (1 for empty rows)."""
    n = mask.sum(axis=1).astype(np.float64)  # (B,)
    mean = np.divide(np.where(mask, dt, 0.0).sum(axis=1), n, out=np.zeros_like(n), where=n > 0)
    s, _ = common.ratio(mean, np.zeros_like(mean))
    return s, n


def gmpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: GMPOConfig | None = None, group=None):
    """GMPO loss Σ_i C_i (−Â_i s_i) and its hand gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or GMPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    d, dd = common.log_ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    A = sequence_advantage(adv, mask)  # (B,)
    dt, free = sign_aware_clip(d, A[:, None], cfg.eps_low, cfg.eps_high)  # (B, T)
    s, n = geometric_mean_ratio(dt, mask)  # (B,)
    ell = -A * s  # (B,)
    c = common.agg_coefficients(mask, cfg, group)
    C = c.sum(axis=1)  # (B,) weight of each sequence in the aggregated loss
    w = np.divide(-C * A * s, n, out=np.zeros_like(s), where=n > 0)  # (B,) ∂loss/∂d̃_it for each valid token
    dlogp = np.where(mask, w[:, None] * free * dd, 0.0)  # (B, T)
    return float((C * ell).sum()), dlogp


EQUATIONS = (
    Equation("gmpo-objective", "J_i = sgn(Â_i)·(Π_t abs(min(ρ_it Â_i, clip(ρ_it, e^{−ε_low}, e^{ε_high}) Â_i)))^{1/n_i}, "
             "n_i = number of valid tokens of o_i",
             "arXiv 2507.20673, method (GMPO objective)", "official-code", "gmpo_loss",
             note="callsys/GMPO train_zero_math_gmpo.py: sign-aware clamp of token log-ratios, exp of their masked "
                  "mean, loss −Â·ratio; equation number in the paper not confirmed here (abstract only read)"),
    Equation("gmpo-clip", "d̃ = min(d, ε_high) for Â ≥ 0, max(d, −ε_low) for Â < 0 (token log-ratios)",
             "arXiv 2507.20673, method (token-level clipping)", "official-code", "sign_aware_clip",
             note="ε = 0.4 in log space (official script CLIPRANGE=0.4; TRL docs cite the paper's (e^{−0.4}, e^{0.4})); "
                  "verl geo_mean uses the same clip with clip_ratio_low/high"),
    Equation("gmpo-ratio", "s_i = exp((1/n_i) Σ_t d̃_it)", "arXiv 2507.20673, method", "official-code",
             "geometric_mean_ratio"),
)

register(Spec(
    name="gmpo", kind="policy_loss", family="ratio/clipping", paper=GMPO_PAPER, status="implemented",
    summary="geometric mean of sign-aware clipped token ratios (log-space clip ±0.4): ℓ_i = −Â_i·s_i",
    fn=gmpo_loss, config_cls=GMPOConfig, outputs=("loss", "dlogp"), equations=EQUATIONS,
    extras={"conformance_configs": lambda: [("eps=0.2/0.28", {"eps_low": 0.2, "eps_high": 0.28}, "beyond-dual-clip")]},
    gradient="∂loss/∂logp_it = −C_i·Â_i·s_i/n_i where token t's clip does not bind, else 0 (coupled over the sequence)",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences",
        "properties/test_gmpo.py::test_hand_gradient_matches_finite_differences: with kinks at ±ε excluded",
        "properties/test_gmpo.py::test_geometric_mean_below_arithmetic_mean: AM-GM, equality iff equal ratios",
        "properties/test_gmpo.py::test_single_token_equals_ppo_clip: T = 1 gives PPO with [e^{−ε_low}, e^{ε_high}]",
        "properties/test_gmpo.py::test_bounded_by_token_mean_clipped_objective",
        "properties/test_gmpo.py::test_uniform_weight_over_unclipped_tokens",
        "properties/test_gmpo.py::test_verl_row_mean_is_normalizer_B",
    ),
))

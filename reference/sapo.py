"""SAPO: Soft Adaptive Policy Optimization — a sigmoid gate on the token ratio instead of a hard clip.

Gao, Zheng et al. (Qwen team), "Soft Adaptive Policy Optimization", arXiv 2511.20347 (Nov 2025).
The method section of the paper could not be read here; the equations below were confirmed in peer
implementations (verl ``compute_policy_loss_sapo``, whose docstring cites the paper's eqs. (5)-(6) and
(10)-(12); TRL ``GRPOTrainer`` with ``loss_type="sapo"``; the ms-swift SAPO notes), which agree.

Notation: r = π_θ/π_old per token (B, T); Â the advantage (B, T); σ the logistic sigmoid; τ > 0 a
temperature chosen per token by the sign of the advantage.

    τ_t      = τ_pos if Â_t > 0 else τ_neg                  (paper defaults τ_pos = 1.0, τ_neg = 1.05)
    f_τ(r)   = (4/τ) · σ(τ (r − 1))                         soft gate; f_τ(1) = 2/τ
    ℓ_t      = −f_τ(r_t) · Â_t                              per-token loss (loss = −objective)
    J        = E[(1/G) Σ_i (1/|y_i|) Σ_t f(r_it) Â_it]       → agg = "seq-mean-token-mean" (default)

Gradient (derived here, checked by finite differences in ``properties/test_sapo.py``): with
p = σ(τ(r−1)), df/dr = 4 p (1−p) =: w(r) and ∂r/∂logp = r, so

    ∂ℓ_t/∂logp_t = −Â_t · w(r_t) · r_t,      w(r) = 4 p (1−p) = sech²(τ (r−1) / 2) ∈ (0, 1].

−Â·r is the vanilla (unclipped) token importance-sampling policy-gradient weight; SAPO multiplies it
by w, which is 1 on-policy (r = 1), halves at |r − 1| = 2 ln(1+√2)/τ, decays smoothly and is never
exactly 0 (no "dead" tokens, unlike a hard clip). τ → 0 gives w → 1 (unclipped PG).

Conventions (documented, not from the paper): τ is selected per *token* by the sign of Â_t, as in
verl/TRL (the paper states it per sequence via Â_i; identical for outcome advantages); Â_t = 0 takes
τ_neg, which cannot matter since such a token contributes nothing. verl always aggregates with
``seq-mean-token-mean`` whatever its config says and clamps log r to ±20 before the exponential
(``log_ratio_clamp=20.0`` reproduces that); TRL normalises according to its own loss settings.

Numerics: σ and w are computed from e^{−|x|} only, so r = e^{50} (x ≈ 5·10²¹) gives σ = 1, w = 0 without
overflow or NaN. In float64 w underflows to exactly 0 once τ|r − 1| exceeds about 745.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import fail, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

SAPO_PAPER = Paper(arxiv="2511.20347", title="Soft Adaptive Policy Optimization", year=2025)


@dataclass(frozen=True)
class SAPOConfig(common.AggregationOptions):
    """tau_pos / tau_neg: gate temperatures for Â > 0 / Â ≤ 0 (paper: 1.0 / 1.05; both must be > 0).
    agg: seq-mean-token-mean, the paper's objective (verl forces it); any mode is accepted."""

    agg: str = "seq-mean-token-mean"
    tau_pos: float = 1.0
    tau_neg: float = 1.05

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.tau_pos, "tau_pos")
        positive(self.tau_neg, "tau_neg")


def _check_r_tau(r, tau) -> tuple[np.ndarray, np.ndarray]:
    """Float64 arrays r and τ (broadcastable); r finite, τ finite and > 0."""
    r = np.asarray(r, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    if not np.isfinite(r).all():
        raise fail("r", "non-finite values", "finite importance ratios")
    if not (np.isfinite(tau).all() and (tau > 0).all()):
        raise fail("tau", f"values with min {tau.min() if tau.size else 'n/a'}", "finite temperatures > 0")
    try:
        np.broadcast_shapes(r.shape, tau.shape)
    except ValueError:
        raise fail("tau", f"shape {tau.shape}", f"a shape broadcastable to r's {r.shape}") from None
    return r, tau


def _sigmoid_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(σ(x), σ(−x)) computed from e^{−|x|} ∈ (0, 1]: no overflow for any finite x."""
    e = np.exp(-np.abs(x))
    big, small = 1.0 / (1.0 + e), e / (1.0 + e)  # σ(|x|), σ(−|x|)
    return np.where(x >= 0, big, small), np.where(x >= 0, small, big)


def temperature(adv: np.ndarray, tau_pos: float, tau_neg: float) -> np.ndarray:
    """τ_t = τ_pos where Â_t > 0, τ_neg elsewhere (B, T).  arXiv 2511.20347 (asymmetric temperatures)."""
    positive(tau_pos, "tau_pos")
    positive(tau_neg, "tau_neg")
    return np.where(np.asarray(adv, dtype=np.float64) > 0, float(tau_pos), float(tau_neg))


def sapo_gate(r, tau) -> np.ndarray:
    """f_τ(r) = (4/τ)·σ(τ(r − 1)), elementwise; r (any shape), τ > 0 broadcastable.  The soft gate."""
    r, tau = _check_r_tau(r, tau)
    p, _ = _sigmoid_parts(tau * (r - 1.0))
    return (4.0 / tau) * p


def sapo_weight(r, tau) -> np.ndarray:
    """w(r) = df_τ/dr = 4 p (1 − p), p = σ(τ(r − 1)); equals sech²(τ(r − 1)/2) ∈ (0, 1].

    The factor that multiplies the vanilla token-IS policy-gradient term −Â·r in SAPO's gradient.
    """
    r, tau = _check_r_tau(r, tau)
    p, q = _sigmoid_parts(tau * (r - 1.0))  # q = 1 − p, computed without cancellation
    return 4.0 * p * q


def sapo_token_loss(r: np.ndarray, adv: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = −f_τ(r)·Â and ∂ℓ/∂r = −Â·w(r), both (B, T)."""
    return -sapo_gate(r, tau) * adv, -adv * sapo_weight(r, tau)


def sapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: SAPOConfig | None = None, group=None):
    """SAPO loss and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` is accepted and unused
    (SAPO has no KL term); ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)) with dlogp = −c ⊙ Â ⊙ w(r) ⊙ r (c the aggregation
    coefficients), zero at masked positions. An all-false mask gives (0.0, zeros).
    """
    cfg = config or SAPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T) each; dr = r, or 0 where clamped
    tau = temperature(adv, cfg.tau_pos, cfg.tau_neg)  # (B, T)
    ell, dell_dr = sapo_token_loss(r, adv, tau)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


_PEERS = ("read in verl core_algos.compute_policy_loss_sapo and TRL GRPOTrainer (loss_type='sapo'); "
          "ms-swift's SAPO notes agree; the paper's method section was not reachable")

EQUATIONS = (
    Equation("sapo-gate", "f_τ(r) = (4/τ)·σ(τ(r − 1))", "arXiv 2511.20347, soft gate (verl cites eqs. (5)-(6))",
             "secondary", "sapo_gate", note=_PEERS),
    Equation("sapo-temperature", "τ = τ_pos if Â > 0 else τ_neg; τ_pos = 1.0, τ_neg = 1.05",
             "arXiv 2511.20347, asymmetric temperatures", "secondary", "temperature",
             note="defaults and the rule τ_neg > τ_pos as stated by verl, TRL and ms-swift; τ chosen per token "
                  "(verl/TRL), the paper states it per sequence"),
    Equation("sapo-objective", "J = E[(1/G) Σ_i (1/|y_i|) Σ_t f_τ(r_it) Â_it]",
             "arXiv 2511.20347 (verl cites eqs. (10)-(12))", "secondary", "sapo_loss",
             note="seq-mean-token-mean; verl forces this mode and clamps log r to ±20 (log_ratio_clamp=20)"),
    Equation("sapo-gradient", "∂ℓ/∂logp = −Â·w(r)·r,  w = 4σ(1−σ) = sech²(τ(r−1)/2)", "derived from the gate",
             "reconstructed", "sapo_weight", note="derived by differentiation; checked by central finite differences"),
    Equation("sapo-sequence-coherence",
             "mean_t w(r_t) → w(s) = sech²(τ(s−1)/2) as the spread of log r_t → 0 (gap O(spread²)); "
             "w(s) = sech²(τ log s/2) + O(|log s|³)",
             "arXiv 2511.20347 abstract ('sequence-coherent'); precise form ours", "reconstructed",
             "sapo_weight", note="our precise statement of the paper's qualitative claim, s = GSPO's geometric-mean "
                                 "sequence ratio; tested numerically"),
)

register(Spec(
    name="sapo", kind="policy_loss", family="ratio/clipping", paper=SAPO_PAPER, status="implemented",
    summary="soft sigmoid gate on the token ratio instead of a hard clip (asymmetric temperatures)",
    fn=sapo_loss, config_cls=SAPOConfig, equations=EQUATIONS, outputs=("loss", "dlogp"),
    extras={"sapo_gate": sapo_gate, "sapo_weight": sapo_weight, "temperature": temperature},
    gradient="∂ℓ/∂logp = −Â·w(r)·r with w(r) = 4σ(τ(r−1))(1−σ(τ(r−1))) = sech²(τ(r−1)/2) ∈ (0, 1]; never exactly 0 "
             "in real arithmetic (no dead tokens)",
    properties=(
        "properties/test_sapo.py::test_hand_gradient_matches_finite_differences: dlogp = central FD (float64)",
        "properties/test_sapo.py::test_weight_is_one_on_policy: w(1) = 1 for every τ",
        "properties/test_sapo.py::test_weight_in_unit_interval: 0 < w ≤ 1",
        "properties/test_sapo.py::test_weight_symmetric_in_r_minus_one: w(1+x) = w(1−x)",
        "properties/test_sapo.py::test_weight_strictly_decreasing_in_tau: τ₁ < τ₂ ⇒ w_τ₁(r) > w_τ₂(r), r ≠ 1",
        "properties/test_sapo.py::test_half_weight_point: w = 1/2 at |r−1| = 2 ln(1+√2)/τ",
        "properties/test_sapo.py::test_small_tau_recovers_unclipped_pg: τ → 0 gives −Â·r·c",
        "properties/test_sapo.py::test_on_policy_equals_vanilla_pg_and_ppo: r ≡ 1 gives −Â·c, PPO's weight",
        "properties/test_sapo.py::test_no_dead_tokens_unlike_ppo: no zero gradient for Â ≠ 0; PPO has some",
        "properties/test_sapo.py::test_sequence_coherence_approximation: mean_t w(r_t) → sech²(τ(s−1)/2)",
        "properties/test_sapo.py::test_extreme_log_ratios_are_finite: log r = ±50 gives the limits, no NaN",
    ),
))

"""DGPO (distribution-guided): Hellinger token deviation, entropy gate, sequence advantage redistributed over tokens.

Jin, Zhu, Du, Jiang, Tian, Zhang, Ding, "DGPO: Distribution-Guided Policy Optimization for Fine-Grained Credit
Assignment", arXiv 2605.03327 (May 2026). No code is public and only the abstract was readable here; the
mechanism below is the abstract's, with the functional forms taken from third-party summaries (our notes,
papers_A §9; arxivlens' summary of the paper) or chosen by us. The entry is therefore ``partial``: every
unconfirmed choice is a named config option.

The abstract's three parts, per token t of response y_i (π = the current/rollout policy, π_ref the reference
model; logits z, z_ref over a vocabulary of V tokens)::

    H_t   = √(½ Σ_v (√π(v|s_t) − √π_ref(v|s_t))²) = √(1 − BC_t) ∈ [0, 1]      Hellinger deviation (replaces KL)
    Ent_t = −Σ_v π(v|s_t) log π(v|s_t)                                         the policy's uncertainty
    S_t   = H_t·g(Ent_t)                                                       entropy-gated score
    Â_it  = A_i·w_it,   Σ_t w_it = |y_i|,   w ≥ 0                              redistribution of A_i over tokens

with A_i GRPO's group-normalised sequence advantage (:mod:`rlspec.reference.grpo`, same options) and the
options (defaults first):

* ``gate``: ``"product"`` g(Ent) = Ent (third-party paraphrase: score = H·Ent); ``"percentile"``
  g = 1[Ent_t ≥ τ_ρ], τ_ρ the (1 − ρ)-quantile of the batch's valid entropies (the paraphrase mentions an
  80th-percentile gate: ρ = 0.2; quantile and ties as :mod:`rlspec.reference.high_entropy_mask`);
  ``"none"`` g = 1 (Hellinger only: an ablation);
* ``redistribution``: ``"mean"`` w_t = S_t / mean_{u∈y_i} S_u (the paraphrase Â = A·S/mean S), or
  ``"softmax"`` w_t = |y_i|·softmax_t(S/τ) (arxivlens: "a softmax-based weighting to preserve total credit
  mass"; τ our choice, default 1).

Both redistributions keep each sequence's total credit, Σ_t Â_it = |y_i|·A_i, and the sign of A_i. A row whose
scores are all 0 (π = π_ref on every token, e.g. at the first step, or no token passes the percentile gate)
gets w ≡ 1 under ``mean`` — plain GRPO credit (our convention; ``softmax`` gives w ≡ 1 there by itself).
Whether the paper compares π with π_ref or with π_old, keeps PPO clipping in the loss and its defaults are not
known: pass the logits to compare with as ``ref_logits``; pair the advantage with a KL-free policy loss.

Numerics: H is computed without cancellation when π ≈ π_ref. With d = z − z_ref and q = π_ref,
log π − log π_ref = Δ = d − c, c = log Σ_u q_u e^{d_u} (as log1p(Σ q·expm1(d)) when max|d| ≤ 1, which is
exactly 0 for z = z_ref, so that H = 0 exactly there; else a log-sum-exp), and each term (√π − √q)² is
q·expm1(Δ/2)² when |Δ| ≤ 1, else the direct difference of the square roots of the two softmaxes; H² is
clipped to [0, 1] against rounding. The naive ½Σ(√π − √q)² loses its relative accuracy as H falls towards
√ε_mach (about 3e-4 in float32), which would make the ``mean`` weights (ratios of small H) noise.
A policy equal to π_ref only up to a constant logit shift gives H of rounding size (≈ 1e-17) instead of 0; the
``mean`` weights of such a row are then ratios of rounding noise (still within [0, |y_i|], totals kept).
Masked positions are never read (their logits may be NaN); an all-false mask gives zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, in_range, masked_array, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage, validate_outcome
from rlspec.reference.high_entropy_mask import entropy_threshold
from rlspec.reference.registry import Equation, Paper, Spec, register

DGPO_PAPER = Paper(arxiv="2605.03327", title="DGPO: Distribution-Guided Policy Optimization for Fine-Grained Credit "
                   "Assignment", year=2026)
GATES = ("product", "percentile", "none")
REDISTRIBUTIONS = ("mean", "softmax")


@dataclass(frozen=True)
class DGPOConfig(GRPOConfig):
    """GRPO's sequence-advantage options (std_normalize, ddof, eps, eps_placement, singleton), plus
    gate: "product" (S = H·Ent), "percentile" (S = H·1[Ent ≥ τ_ρ]) or "none" (S = H);
    rho: share of the batch's valid tokens that pass the percentile gate (0.2: an 80th-percentile gate);
    redistribution: "mean" (w = S/mean S) or "softmax" (w = |y|·softmax(S/τ)); tau: softmax temperature > 0.
    None of these defaults is confirmed by the paper (see the module notes)."""

    gate: str = "product"
    rho: float = 0.2
    redistribution: str = "mean"
    tau: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.gate, "gate", GATES)
        in_range(self.rho, "rho", 0.0, 1.0)
        choice(self.redistribution, "redistribution", REDISTRIBUTIONS)
        positive(self.tau, "tau")


# ---------------------------------------------------------------------------- the deviation and the gate


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log π (…, V) from logits z (…, V), stable for any finite logits."""
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def hellinger(p, q) -> np.ndarray:
    """H(p, q) = √(½ Σ_v (√p_v − √q_v)²) = √(1 − Σ_v √(p_v q_v)) ∈ [0, 1] over the last axis (…, V) → (…).

    p, q: probability vectors (non-negative, summing to 1 within 1e-9). The textbook formula; the advantage
    uses :func:`hellinger_from_logits`, which stays accurate when p ≈ q."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    for a, name in ((p, "p"), (q, "q")):
        if not (np.isfinite(a).all() and (a >= 0).all() and np.allclose(a.sum(axis=-1), 1.0, rtol=0, atol=1e-9)):
            raise fail(name, "a vector that is not a probability distribution", "non-negative entries summing to 1")
    return np.sqrt(np.clip(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=-1), 0.0, 1.0))


def hellinger_from_logits(z: np.ndarray, z_ref: np.ndarray) -> np.ndarray:
    """H_t between softmax(z) and softmax(z_ref), (…, V) → (…), computed without cancellation (module notes)."""
    log_p, log_q = log_softmax(z), log_softmax(z_ref)                        # (…, V) each
    d = z - z_ref
    small = np.abs(d).max(axis=-1, keepdims=True) <= 1.0                      # (…, 1)
    c_small = np.log1p((np.exp(log_q) * np.expm1(np.where(small, d, 0.0))).sum(axis=-1, keepdims=True))
    c = np.where(small, c_small, log_sum_exp(log_q + d))               # log Σ q e^d
    delta = d - c                                                            # log π − log π_ref
    near = np.abs(delta) <= 1.0
    term_near = np.exp(log_q) * np.expm1(0.5 * np.where(near, delta, 0.0)) ** 2
    term_far = (np.exp(0.5 * log_p) - np.exp(0.5 * log_q)) ** 2
    h2 = 0.5 * np.where(near, term_near, term_far).sum(axis=-1)
    return np.sqrt(np.clip(h2, 0.0, 1.0))


def log_sum_exp(a: np.ndarray) -> np.ndarray:
    """log Σ_v e^{a_v} over the last axis, keepdims (a log-sum-exp)."""
    m = a.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True))


def token_entropy(z: np.ndarray) -> np.ndarray:
    """Ent_t = −Σ_v π_v log π_v (…), π = softmax(z) over the last axis; in [0, log V]."""
    log_p = log_softmax(z)
    return -(np.exp(log_p) * log_p).sum(axis=-1)


def entropy_gate(H: np.ndarray, ent: np.ndarray, mask: np.ndarray, gate: str, rho: float) -> np.ndarray:
    """S = H·g(Ent) (B, T), zero at masked positions: g = Ent (product), 1[Ent ≥ τ_ρ] (percentile) or 1 (none)."""
    choice(gate, "gate", GATES)
    if gate == "product":
        g = ent
    elif gate == "none":
        g = np.ones_like(ent)
    else:
        g = np.zeros_like(ent)
        if mask.any():
            g = (ent >= entropy_threshold(ent[mask], rho)).astype(np.float64)
    return np.where(mask, H * g, 0.0)


def redistribution_weights(S: np.ndarray, mask: np.ndarray, mode: str, tau: float = 1.0) -> np.ndarray:
    """w (B, T) ≥ 0 with Σ_t w_t = |y_i| on every row, 0 at masked positions.

    mean: w = S/mean_t S (w ≡ 1 on a row whose scores are all 0); softmax: w = |y_i|·softmax_t(S/τ)."""
    choice(mode, "redistribution", REDISTRIBUTIONS)
    n = mask.sum(axis=1, keepdims=True).astype(np.float64)                   # |y_i|, (B, 1)
    if mode == "mean":
        total = np.where(mask, S, 0.0).sum(axis=1, keepdims=True)             # Σ_t S, (B, 1)
        w = np.divide(S * n, total, out=np.ones_like(S), where=total > 0)
    else:
        x = np.where(mask, S / tau, -np.inf)
        m = np.where(mask.any(axis=1, keepdims=True), x.max(axis=1, keepdims=True), 0.0)
        e = np.where(mask, np.exp(x - m), 0.0)
        w = n * e / np.maximum(e.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return np.where(mask, w, 0.0)


def dgpo_token_advantage(seq_adv, H, ent, mask, config: DGPOConfig | None = None) -> np.ndarray:
    """Â_it = A_i·w_it (B, T) from sequence advantages A (B,), Hellinger H (B, T) and entropies Ent (B, T).

    For callers that already have H and Ent (padding never read; H in [0, 1] and Ent ≥ 0 where mask is True)."""
    cfg = config or DGPOConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    A = finite_vector(seq_adv, "seq_adv", M.shape[0])
    H, ent = masked_array(H, "H", M), masked_array(ent, "ent", M)
    if not (((H >= 0) & (H <= 1)) | ~M).all() or not ((ent >= 0) | ~M).all():
        raise fail("H/ent", "values outside H ∈ [0, 1], Ent ≥ 0 at valid tokens", "Hellinger distances and entropies")
    S = entropy_gate(H, ent, M, cfg.gate, cfg.rho)
    return np.where(M, A[:, None] * redistribution_weights(S, M, cfg.redistribution, cfg.tau), 0.0)


def _logits(z, name: str, mask: np.ndarray, V: int | None = None) -> np.ndarray:
    """Float64 (B, T, V) logits, finite where mask is True, zero at masked positions."""
    a = np.asarray(z)
    if a.ndim != 3 or a.shape[:2] != mask.shape or (V is not None and a.shape[2] != V) or a.shape[2] < 1:
        want = f"shape ({mask.shape[0]}, {mask.shape[1]}, V)" + (f" with V = {V}" if V is not None else "")
        raise fail(name, f"shape {a.shape}", want)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise fail(name, f"dtype {a.dtype}", "real-valued logits")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a).all(axis=-1) & mask
    if bad.any():
        b, t = np.argwhere(bad)[0]
        raise fail(name, f"a non-finite logit at unmasked position ({b}, {t})", "finite logits wherever mask is True")
    return np.where(mask[..., None], a, 0.0)


def dgpo_advantage(rewards, group, mask, logits, ref_logits, config: DGPOConfig | None = None) -> np.ndarray:
    """DGPO token advantages (B, T).

    Args: rewards (B,), group (B,) prompt ids, mask (B, T) bool (the response tokens); logits (B, T, V) of the
    policy that sampled the batch and ref_logits (B, T, V) of the model it is compared with (π_ref), at
    each response position (padding never read). Returns Â (B, T): GRPO's A_i redistributed over the tokens
    by the entropy-gated Hellinger score, zero at masked positions; Σ_t Â_it = |y_i|·A_i.
    """
    cfg = config or DGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    z = _logits(logits, "logits", M)
    z_ref = _logits(ref_logits, "ref_logits", M, z.shape[2])
    A = grpo_outcome_advantage(R, g, cfg)                                    # (B,)
    if not M.any():
        return broadcast_to_tokens(A, M)
    S = entropy_gate(hellinger_from_logits(z, z_ref), token_entropy(z), M, cfg.gate, cfg.rho)  # (B, T)
    return np.where(M, A[:, None] * redistribution_weights(S, M, cfg.redistribution, cfg.tau), 0.0)


def make_inputs(rng: np.random.Generator) -> dict:
    """Rewards (binary or Gaussian) in contiguous groups; logits (B, T, V), V = 2-6; per row the reference
    logits are equal to the policy's (H = 0), slightly perturbed (σ = 0.05), or clearly different (σ = 0.7);
    ragged masks with empty rows and NaN/inf logits at padding."""
    B, T, V = int(rng.integers(1, 9)), int(rng.integers(1, 6)), int(rng.integers(2, 7))
    G = int(rng.integers(1, 5))
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.5 else rng.normal(size=B)
    z = rng.normal(scale=1.5, size=(B, T, V))
    scale = rng.choice(np.array([0.0, 0.05, 0.7]), size=(B, 1, 1))
    z_ref = z + scale * rng.normal(size=(B, T, V))
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.random(B) < 0.15] = 0
    mask = np.arange(T)[None, :] < lengths[:, None]
    pad = ~mask[..., None] & np.ones(V, bool)
    garbage = np.array([np.nan, np.inf, -np.inf, 1e30])
    z = np.where(pad, rng.choice(garbage, size=z.shape), z)
    z_ref = np.where(pad, rng.choice(garbage, size=z.shape), z_ref)
    return {"rewards": rewards, "group": np.arange(B) // G, "mask": mask, "logits": z, "ref_logits": z_ref}


# ---------------------------------------------------------------------------- registry

_ABSTRACT = "arXiv 2605.03327 abstract"
EQUATIONS = (
    Equation("hellinger", "H_t = √(½ Σ_v (√π(v|s_t) − √π_ref(v|s_t))²) = √(1 − BC_t) ∈ [0, 1]",
             _ABSTRACT + " ('bounded Hellinger distance' replaces the token-level KL)", "secondary",
             "hellinger_from_logits",
             note="the standard definition (½ normalisation, so H ≤ 1); comparison with π_ref per our notes' "
                  "third-party reading — π_old is not excluded; computed without cancellation near π = π_ref"),
    Equation("entropy-gate", "S_t = H_t·Ent_t  (gate='product');  S_t = H_t·1[Ent_t ≥ Quantile_{0.8}(Ent)]  "
             "(gate='percentile')", _ABSTRACT + " ('scales this deviation by the policy's epistemic "
             "uncertainty'); forms from third-party paraphrases", "reconstructed", "entropy_gate",
             note="the gate's functional form is not confirmed: product is the paraphrase's score = H·Ent, the "
                  "80th-percentile gate is mentioned by the same paraphrase; uncertainty taken as the policy's "
                  "token entropy"),
    Equation("redistribution", "Â_it = A_i·S_it / mean_t S_it  (mean);  Â_it = A_i·|y_i|·softmax_t(S_i/τ)_t  "
             "(softmax)", _ABSTRACT + " ('redistributing the coarse sequence-level advantage to individual "
             "tokens based on these gated scores')", "reconstructed", "redistribution_weights",
             note="mean: our notes' third-party paraphrase; softmax: arxivlens' summary ('softmax-based weighting "
                  "to preserve total credit mass'), τ ours; an all-zero row falls back to w ≡ 1 (ours)"),
    Equation("sequence-advantage", "A_i = (R_i − mean_g R)/(std_g R + ε)", "arXiv 2402.03300 §4.1.2 (GRPO, the "
             "baseline the abstract names)", "reconstructed", "rlspec.reference.grpo.grpo_outcome_advantage",
             note="that DGPO starts from GRPO's group advantage is our reading of the abstract"),
    Equation("hellinger-bounds", "0 ≤ H ≤ 1;  H² ≤ TV ≤ √2·H;  ‖∇_z H²‖₁ ≤ 1 while ‖∇_z KL(π‖π_ref)‖ → ∞ as "
             "π_ref(v) → 0", "classic (Le Cam); " + _ABSTRACT + " ('without the risk of gradient explosion'), "
             "precise form ours", "reconstructed", "hellinger",
             note="∂H²/∂z_k = −½(√(π_k q_k) − π_k·BC); note ∇H itself (not H²) grows like 1/H near π = π_ref"),
)

register(Spec(
    name="dgpo_distribution", kind="advantage", family="advantage", paper=DGPO_PAPER, status="partial",
    summary="GRPO advantage redistributed over tokens by the entropy-gated Hellinger deviation from π_ref",
    fn=dgpo_advantage, config_cls=DGPOConfig, equations=EQUATIONS, outputs=("adv",), make_inputs=make_inputs,
    missing="the paper's method section (no code, body not readable): the exact entropy-gate form, the "
            "redistribution normalisation (mean vs softmax, its temperature), π_ref vs π_old, whether PPO "
            "clipping is kept in the loss, and every default; each unconfirmed choice is a config option",
    extras={"token_advantage": dgpo_token_advantage, "hellinger": hellinger,
            "hellinger_from_logits": hellinger_from_logits, "token_entropy": token_entropy,
            "batch_coupled": "gate='percentile' takes the entropy quantile over the whole batch",
            "conformance_configs": lambda: [("gate=percentile", {"gate": "percentile"}),
                                            ("gate=none", {"gate": "none"}),
                                            ("softmax", {"redistribution": "softmax"}),
                                            ("softmax,tau=0.1", {"redistribution": "softmax", "tau": 0.1}),
                                            ("percentile,rho=0.5,softmax", {"gate": "percentile", "rho": 0.5,
                                                                            "redistribution": "softmax"})]},
    properties=(
        "properties/test_dgpo_distribution.py::test_hellinger_in_unit_interval_zero_iff_equal_one_iff_disjoint",
        "properties/test_dgpo_distribution.py::test_hellinger_matches_bhattacharyya_and_is_a_metric",
        "properties/test_dgpo_distribution.py::test_hellinger_total_variation_inequalities: H² ≤ TV ≤ √2·H",
        "properties/test_dgpo_distribution.py::test_hellinger_from_logits_is_accurate_near_equal_policies: "
        "H² → δᵀFδ/8 (Fisher limit) to 1e-5 at δ = 1e-12",
        "properties/test_dgpo_distribution.py::test_squared_hellinger_gradient_is_bounded_kl_is_not: "
        "‖∇_z H²‖₁ ≤ 1 for any π_ref while ‖∇_z KL‖ grows without bound as π_ref(v) → 0",
        "properties/test_dgpo_distribution.py::test_redistribution_preserves_each_sequence_total: "
        "Σ_t Â_it = |y_i|·A_i for every gate and redistribution",
        "properties/test_dgpo_distribution.py::test_sign_of_sequence_advantage_is_kept",
        "properties/test_dgpo_distribution.py::test_higher_gated_score_gets_more_credit",
        "properties/test_dgpo_distribution.py::test_low_entropy_deviations_are_suppressed: at equal H, lower "
        "entropy ⇒ less credit; zero entropy (product) or below the gate (percentile) ⇒ no credit",
        "properties/test_dgpo_distribution.py::test_no_deviation_recovers_grpo: π = π_ref ⇒ Â = GRPO's advantage",
        "properties/test_dgpo_distribution.py::test_pivot_token_learns_faster_than_with_uniform_credit: one pivot "
        "token decides the reward; DGPO credit learns it faster than GRPO's uniform credit (10/10 seeds)",
        "properties/test_dgpo_distribution.py::test_padding_is_never_read",
        "properties/test_dgpo_distribution.py::test_bad_input_raises",
        "properties/test_dgpo_distribution.py::test_optimized_float32_stays_accurate_near_equal_policies",
        "untested: DGPO reaches 60.0 / 46.0 Avg@32 on AIME24 / AIME25 with Qwen2.5-32B and beats DAPO — needs "
        "large-scale training",
        "untested: removing the token-level KL penalty does not destabilise training — a training-dynamics claim "
        "about the loss this advantage is paired with, not about the advantage",
    ),
))

"""OBLR-PO: optimal (gradient-weighted) baseline and SNR-governed learning rate for policy gradients.

Huang, Sheng, Zheng, "OBLR-PO: A Theoretical Framework for Stable Reinforcement Learning" (registered as
"Optimal Baseline and Learning-Rate Policy Optimization"), arXiv 2511.23310 (Nov 2025). No official code
is known.

Provenance, honestly: only the paper's abstract and the opening of its introduction were readable to
us. The abstract states (i) unbiasedness and exact variance expressions for common policy-gradient
estimators, (ii) an optimisation-loss upper bound and convergence guarantees, (iii) an adaptive learning
rate governed by the gradients' signal-to-noise ratio (SNR), (iv) that the variance-optimal baseline is
a *gradient-weighted* estimator. Every formula below is the classical result that matches these words
(our notes, papers_A.md §12, marked [R] there), derived and checked here by exact enumeration; none was
read in the paper. The paper's practical choices for LLMs (the proxy it uses for the per-sequence
‖∇θ log π(y|x)‖², how it estimates the SNR, its base learning rate) are unknown: the entries are
``partial``.

Notation (one prompt x, G rollouts y_1..y_G ~ π_θ(·|x), rewards R_i, score s_i = ∇θ log π_θ(y_i|x)):

    ĝ        = (1/G) Σ_i (R_i − b_i) s_i                         policy-gradient estimator (REINFORCE + baseline)
    E ĝ      = ∇J   whenever b_i does not depend on y_i          (E[s_i] = 0; "unbiasedness")
    Cov ĝ    = (1/G) (E[(R − b)² s sᵀ] − ∇J ∇Jᵀ)                 constant b ("exact variance")
    tr Cov ĝ = (1/G) (E[(R − b)² ‖s‖²] − ‖∇J‖²)
    b*       = E[‖s‖² R] / E[‖s‖²]                               argmin_b tr Cov ĝ  ("gradient-weighted")

The leave-one-out baseline b_i = mean_{j≠i} R_j (RLOO) has, with μ = E R, σ² = Var R (our derivation)::

    tr Cov ĝ_LOO = (1/G) (E[(R − μ)² ‖s‖²] + σ²/(G−1) · E‖s‖²) − (G−2)/(G(G−1)) · ‖∇J‖²

and the self-inclusive group mean b_i = mean_j R_j gives exactly ĝ_mean = ((G−1)/G) ĝ_LOO, so
E ĝ_mean = (1 − 1/G) ∇J (biased towards 0 by the factor (G−1)/G).

Step size (J maximised, L-smooth; the descent lemma with E‖ĝ‖² = ‖∇J‖² + tr Cov ĝ)::

    E J(θ + η ĝ) ≥ J(θ) + η ‖∇J‖² − (L η²/2)(‖∇J‖² + tr Cov ĝ)   "optimisation-loss bound"
    SNR = ‖∇J‖² / tr Cov ĝ;    η* = (1/L) · SNR / (1 + SNR)        its maximiser
    bound at η*:  ‖∇J‖² SNR / (2 L (1 + SNR)) ≥ 0                  expected improvement every step

Summing the per-step bound over T steps gives Σ_t E[‖∇J_t‖² SNR_t / (2L(1+SNR_t))] ≤ J* − J(θ_0)
(the convergence guarantee as we reconstruct it).

The practical estimator (what this module registers, as ``oblr_po``): per prompt group, weights
w_j ≈ ‖∇θ log π(y_j|x)‖² (given as ``grad_sq``, or a proxy), baseline the w-weighted mean reward of the
group's *other* rollouts (``baseline="leave_one_out"``, default: the only plug-in for which the
unbiasedness statement holds) or of all rollouts (``"group"``, the self-inclusive plug-in OPO uses), and
Â_i = R_i − b_i broadcast over the response. Without ``grad_sq`` the weight proxy is the response
length (``weight_proxy="length"``: score vectors of different tokens orthogonal with equal norms, the
OPO assumption, arXiv 2505.23585) or uniform (``"uniform"``: then ``leave_one_out`` is RLOO and
``group`` is Dr. GRPO). With ``baseline="group"`` and the length proxy this is exactly ``opo``.

The learning-rate rule is registered as ``oblr_po_lr``: from N ≥ 2 per-sample gradient estimates
g_n (e.g. one per prompt; the step uses their mean ḡ), noise = tr Cov ḡ estimated by
Σ‖g_n − ḡ‖² / (N(N−1)) (unbiased), signal = ‖ḡ‖² − noise (unbiased for ‖E ḡ‖², clipped at 0;
``signal="plugin"`` uses ‖ḡ‖²), SNR = signal/noise, lr = lr_max · SNR/(1 + SNR) with lr_max in the
role of 1/L.

Defined cases: a rollout whose baseline is undefined (a group of one rollout, or zero total weight on
the rollouts the baseline averages) gets advantage 0 (``singleton="zero"``) or its raw reward
(``"raw"``, baseline 0). Rewards are always read (a fully masked row still counts in its group, with
the length proxy it has weight 0); masked output positions are 0. SNR with zero noise is +inf
(lr = lr_max) when the signal is positive, and 0 when both are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_2d, choice, fail, finite_vector, positive
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

OBLR_PAPER = Paper(arxiv="2511.23310", title="OBLR-PO: A Theoretical Framework for Stable Reinforcement Learning "
                   "(Optimal Baseline and Learning-Rate Policy Optimization)", year=2025)


@dataclass(frozen=True)
class OBLRPOConfig:
    """baseline: "leave_one_out" (w-weighted mean of the other rollouts, default) or "group" (all rollouts);
    weight_proxy: weights used when ``grad_sq`` is not given — "length" (response length, default) or
    "uniform"; singleton: advantage where the baseline is undefined — "zero" (default) or "raw" (Â = R).

    The paper's own choices are unknown (see the module docstring); these defaults are ours."""

    baseline: str = "leave_one_out"
    weight_proxy: str = "length"
    singleton: str = "zero"

    def __post_init__(self) -> None:
        choice(self.baseline, "baseline", ("leave_one_out", "group"))
        choice(self.weight_proxy, "weight_proxy", ("length", "uniform"))
        choice(self.singleton, "singleton", ("zero", "raw"))


@dataclass(frozen=True)
class OBLRPOLRConfig:
    """lr_max: the step size at infinite SNR (the role of 1/L), > 0; signal: "debiased" (‖ḡ‖² − noise,
    clipped at 0, default) or "plugin" (‖ḡ‖²). Defaults are ours: the paper's are unknown."""

    lr_max: float = 1.0
    signal: str = "debiased"

    def __post_init__(self) -> None:
        positive(self.lr_max, "lr_max")
        choice(self.signal, "signal", ("debiased", "plugin"))


# ---------------------------------------------------------------------------- theory (one function per equation)


def policy_gradient_estimate(R: np.ndarray, S: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """ĝ = (1/G) Σ_i (R_i − b_i) s_i  (P,), for rewards R (G,), scores S (G, P), baselines b (G,) or scalar."""
    return ((np.asarray(R) - b)[:, None] * np.asarray(S)).mean(axis=0)


def optimal_baseline(R: np.ndarray, w: np.ndarray, p: np.ndarray | None = None) -> float:
    """b* = E[w R] / E[w] with w = ‖∇θ log π‖² (population when the outcome probabilities p are given,
    the plug-in Σ w R / Σ w otherwise). R, w, p: (N,)."""
    p = np.ones_like(np.asarray(R, dtype=np.float64)) if p is None else np.asarray(p, dtype=np.float64)
    return float((p * w * R).sum() / (p * w).sum())


def true_gradient(p: np.ndarray, R: np.ndarray, S: np.ndarray) -> np.ndarray:
    """∇J = E[R s] = Σ_y p(y) R(y) s(y)  (P,), over the N outcomes of one draw: p (N,), R (N,), S (N, P)."""
    return (p * R) @ S


def estimator_covariance(p: np.ndarray, R: np.ndarray, S: np.ndarray, b: float, G: int) -> np.ndarray:
    """Cov ĝ = (1/G)(E[(R − b)² s sᵀ] − ∇J ∇Jᵀ) (P, P) for a constant baseline b and G i.i.d. rollouts."""
    g = true_gradient(p, R, S)
    second = (S * (p * (R - b) ** 2)[:, None]).T @ S  # E[(R − b)² s sᵀ]
    return (second - np.outer(g, g)) / G


def estimator_variance(p: np.ndarray, R: np.ndarray, S: np.ndarray, b: float, G: int) -> float:
    """tr Cov ĝ = (1/G)(E[(R − b)² ‖s‖²] − ‖∇J‖²) for a constant baseline b."""
    g = true_gradient(p, R, S)
    return float(((p * (R - b) ** 2) @ (S ** 2).sum(axis=1) - g @ g) / G)


def loo_estimator_variance(p: np.ndarray, R: np.ndarray, S: np.ndarray, G: int) -> float:
    """tr Cov ĝ_LOO = (1/G)(E[(R − μ)²‖s‖²] + σ²/(G−1)·E‖s‖²) − (G−2)/(G(G−1))·‖∇J‖²  (G ≥ 2; our derivation)."""
    g = true_gradient(p, R, S)
    sq = (S ** 2).sum(axis=1)
    mu = p @ R
    var = p @ (R - mu) ** 2
    return float(((p * (R - mu) ** 2) @ sq + var / (G - 1) * (p @ sq)) / G - (G - 2) / (G * (G - 1)) * (g @ g))


def improvement_lower_bound(eta: float, grad_norm_sq: float, trace_cov: float, L: float) -> float:
    """η ‖∇J‖² − (L η²/2)(‖∇J‖² + tr Cov ĝ): lower bound on E J(θ + η ĝ) − J(θ) for L-smooth J."""
    return eta * grad_norm_sq - 0.5 * L * eta ** 2 * (grad_norm_sq + trace_cov)


def signal_to_noise(grad_norm_sq: float, trace_cov: float) -> float:
    """SNR = ‖∇J‖² / tr Cov ĝ  (+inf for zero noise and positive signal, 0 when both are 0)."""
    if trace_cov > 0:
        return grad_norm_sq / trace_cov
    return np.inf if grad_norm_sq > 0 else 0.0


def snr_learning_rate(snr: float, lr_max: float) -> float:
    """η = lr_max · SNR / (1 + SNR)  (η* = (1/L)·SNR/(1+SNR) with lr_max = 1/L); lr_max at SNR = ∞."""
    return lr_max if np.isinf(snr) else lr_max * snr / (1.0 + snr)


def estimate_snr(g_samples: np.ndarray, signal: str = "debiased") -> tuple[float, float, float]:
    """(signal, noise, SNR) from N ≥ 2 per-sample gradient estimates g_n (N, P) whose mean ḡ is the step:

    noise = tr Cov ḡ ≈ Σ_n ‖g_n − ḡ‖² / (N(N−1));  signal = max(‖ḡ‖² − noise, 0) ("debiased") or ‖ḡ‖².
    """
    N = g_samples.shape[0]
    gbar = g_samples.mean(axis=0)
    noise = float(((g_samples - gbar) ** 2).sum() / (N * (N - 1)))
    sig = float(gbar @ gbar)
    if signal == "debiased":
        sig = max(sig - noise, 0.0)
    return sig, noise, signal_to_noise(sig, noise)


# ---------------------------------------------------------------------------- the practical estimator


def rollout_weights(M: np.ndarray, grad_sq, cfg: OBLRPOConfig) -> np.ndarray:
    """w (B,): the given ‖∇θ log π(y_i)‖² (finite, ≥ 0), else the proxy (response length or 1)."""
    B = M.shape[0]
    if grad_sq is not None:
        w = finite_vector(grad_sq, "grad_sq", B)
        if (w < 0).any():
            raise fail("grad_sq", f"a negative value {w.min()}", "squared gradient norms ≥ 0")
        return w
    return M.sum(axis=1).astype(np.float64) if cfg.weight_proxy == "length" else np.ones(B)


def gradient_weighted_advantage(R: np.ndarray, w: np.ndarray, g: np.ndarray, cfg: OBLRPOConfig) -> np.ndarray:
    """Â_i = R_i − b_i with b_i = Σ_{j∈S_i} w_j R_j / Σ_{j∈S_i} w_j  (B,), S_i = group(i) \\ {i} (leave-one-out)
    or group(i); computed as Σ_j w_j (R_i − R_j) / Σ_j w_j (exactly 0 in an all-equal group)."""
    A = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        for i in rows:
            S = rows[rows != i] if cfg.baseline == "leave_one_out" else rows
            W = w[S].sum()
            if len(rows) > 1 and W > 0:
                A[i] = (w[S] * (R[i] - R[S])).sum() / W
            elif cfg.singleton == "raw":
                A[i] = R[i]  # undefined baseline: scored against 0
    return A


def oblr_po_advantage(rewards, group, mask, config: OBLRPOConfig | None = None, grad_sq=None) -> np.ndarray:
    """OBLR-PO advantage (B, T): reward minus the gradient-weighted baseline, broadcast over each response.

    Args: rewards (B,) float; group (B,) int prompt ids; mask (B, T) bool; grad_sq (B,) optional
    ‖∇θ log π(y_i|x_i)‖² per rollout (finite, ≥ 0; default: ``config.weight_proxy``).
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or OBLRPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(gradient_weighted_advantage(R, rollout_weights(M, grad_sq, cfg), g, cfg), M)


def oblr_po_learning_rate(g_samples, config: OBLRPOLRConfig | None = None) -> tuple[float, float]:
    """SNR-governed step size from per-sample gradient estimates.

    Args: g_samples (N, P) finite, N ≥ 2 (e.g. one policy-gradient estimate per prompt; the update is
    their mean). Returns: (snr, lr) with lr = lr_max · SNR/(1 + SNR).
    """
    cfg = config or OBLRPOLRConfig()
    G = as_2d(g_samples, "g_samples")
    if G.shape[0] < 2 or G.shape[1] < 1:
        raise fail("g_samples", f"shape {G.shape}", "(N, P) with N ≥ 2 samples and P ≥ 1 parameters")
    if not np.isfinite(G).all():
        raise fail("g_samples", "non-finite values", "finite gradient estimates")
    _, _, snr = estimate_snr(G, cfg.signal)
    return float(snr), float(snr_learning_rate(snr, cfg.lr_max))


# ---------------------------------------------------------------------------- conformance inputs


def make_inputs(rng: np.random.Generator) -> dict:
    """An outcome batch with per-rollout squared gradient norms (some 0), singletons and all-equal groups."""
    B, T = int(rng.integers(1, 13)), int(rng.integers(1, 6))
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.5 else rng.normal(size=B)
    group = rng.choice(rng.choice(np.arange(-20, 20), size=int(rng.integers(1, B + 1)), replace=False), size=B)
    lengths = rng.integers(0, T + 1, size=B)
    grad_sq = rng.gamma(2.0, 1.0, size=B) * (rng.random(B) > 0.15)
    return {"rewards": rewards, "group": group, "mask": np.arange(T)[None, :] < lengths[:, None], "grad_sq": grad_sq}


def make_lr_inputs(rng: np.random.Generator) -> dict:
    """Per-sample gradient estimates: a common mean plus noise of a random scale (N in 2..16, P in 1..8)."""
    N, P = int(rng.integers(2, 17)), int(rng.integers(1, 9))
    return {"g_samples": rng.normal(size=P) + rng.choice([0.1, 1.0, 5.0]) * rng.normal(size=(N, P))}


_RECON = ("not read in the paper (abstract only); the classical result matching the abstract's words, "
          "our notes papers_A.md §12 [R]")

register(Spec(
    name="oblr_po", kind="advantage", family="baseline", paper=OBLR_PAPER, status="partial",
    summary="reward minus the gradient-weighted (variance-optimal) baseline Σ w_j R_j / Σ w_j, w = ‖∇log π‖²",
    fn=oblr_po_advantage, config_cls=OBLRPOConfig, outputs=("adv",), make_inputs=make_inputs,
    missing="the paper body was not readable: its practical proxy for ‖∇θ log π(y|x)‖² in LLMs, its exact "
            "baseline plug-in (leave-one-out or self-inclusive) and its theorems' exact statements are "
            "reconstructed, not read; the SNR learning rate is the separate entry oblr_po_lr",
    extras={"optimal_baseline": optimal_baseline, "policy_gradient_estimate": policy_gradient_estimate,
            "estimator_covariance": estimator_covariance, "estimator_variance": estimator_variance,
            "loo_estimator_variance": loo_estimator_variance, "improvement_lower_bound": improvement_lower_bound,
            "conformance_configs": lambda: [
                ("baseline=group", {"baseline": "group"}, None),
                ("weight_proxy=uniform", {"weight_proxy": "uniform"}, None),
                ("singleton=raw", {"singleton": "raw"}, "singletons")]},
    equations=(
        Equation("pg-estimator", "ĝ = (1/G) Σ_i (R_i − b_i) ∇θ log π(y_i ∣ x)", "arXiv 2511.23310 (abstract: "
                 "'commonly used policy-gradient estimators')", "reconstructed", "policy_gradient_estimate",
                 note=_RECON),
        Equation("unbiasedness", "E ĝ = ∇J if b_i ⟂ y_i given x;  b_i = mean_j R_j (self-inclusive): E ĝ = (1 − 1/G) ∇J",
                 "arXiv 2511.23310 (abstract: 'establishes unbiasedness')", "reconstructed", "policy_gradient_estimate",
                 note=_RECON + "; checked by exact enumeration"),
        Equation("exact-variance", "tr Cov ĝ = (1/G)(E[(R − b)² ‖s‖²] − ‖∇J‖²);  LOO: (1/G)(E[(R−μ)²‖s‖²] + "
                 "σ²E‖s‖²/(G−1)) − (G−2)‖∇J‖²/(G(G−1))", "arXiv 2511.23310 (abstract: 'exact variance "
                 "expressions')", "reconstructed", "estimator_variance",
                 note=_RECON + "; the LOO expression is our derivation; both equal exact enumeration"),
        Equation("optimal-baseline", "b* = E[‖∇θ log π‖² R] / E[‖∇θ log π‖²]", "arXiv 2511.23310 (abstract: "
                 "'the variance-optimal baseline is a gradient-weighted estimator')", "secondary",
                 "optimal_baseline",
                 note="classical (Weaver & Tao 2001; Greensmith, Bartlett & Baxter 2004), matching the abstract; "
                      "the paper's own equation not read"),
        Equation("oblr-adv", "Â_i = R_i − Σ_{j∈S_i} w_j R_j / Σ_{j∈S_i} w_j, w_j = ‖∇θ log π(y_j)‖² (or a proxy), "
                 "S_i = group \\ {i} (default) or group", "arXiv 2511.23310 (OBLR-PO algorithm)", "reconstructed",
                 "gradient_weighted_advantage",
                 note="the paper's plug-in and its LLM proxy for w are unknown; baseline='group' with the length "
                      "proxy equals opo (arXiv 2505.23585)"),
        Equation("loss-bound", "E J(θ + ηĝ) ≥ J(θ) + η‖∇J‖² − (Lη²/2)(‖∇J‖² + tr Cov ĝ)",
                 "arXiv 2511.23310 (abstract: 'optimization-loss upper bound')", "reconstructed",
                 "improvement_lower_bound", note=_RECON + " (descent lemma for L-smooth J)"),
        Equation("snr-lr", "SNR = ‖∇J‖²/tr Cov ĝ;  η* = (1/L)·SNR/(1 + SNR) = argmax_η of the bound",
                 "arXiv 2511.23310 (abstract: 'adaptive learning-rate schedule governed by the SNR')",
                 "reconstructed", "snr_learning_rate", note=_RECON),
    ),
    properties=(
        "properties/test_oblr_po.py::test_unbiased_for_action_independent_baselines: E ĝ = ∇J exactly (enumeration "
        "of G-tuples, softmax bandit) for constant, context-dependent, b*, leave-one-out and gradient-weighted "
        "leave-one-out baselines",
        "properties/test_oblr_po.py::test_self_inclusive_mean_shrinks_gradient: E ĝ_mean = (1 − 1/G) ∇J and "
        "ĝ_mean = ((G−1)/G) ĝ_LOO outcome by outcome",
        "properties/test_oblr_po.py::test_variance_expressions_equal_enumeration: Cov ĝ (constant b) and tr Cov ĝ_LOO "
        "formulas = exact enumeration",
        "properties/test_oblr_po.py::test_optimal_baseline_minimises_variance: tr Cov ĝ(b*) ≤ tr Cov ĝ(b) on a grid, "
        "and b* differs from the mean reward",
        "properties/test_oblr_po.py::test_loss_bound_holds: exact E J(θ + ηĝ) ≥ the bound, ‖∇²J‖ ≤ L",
        "properties/test_oblr_po.py::test_snr_learning_rate_maximises_bound: η* = argmax of the bound, value "
        "‖∇J‖²SNR/(2L(1+SNR))",
        "properties/test_oblr_po.py::test_convergence_sum_of_progress_bounded: exact multi-step enumeration, "
        "E J_T − J_0 ≥ Σ_t E progress_t ≥ 0 and ≤ J* − J_0",
        "properties/test_oblr_po.py::test_practical_estimator_special_cases: uniform weights = rloo / dr_grpo, "
        "length proxy + group = opo, weighted sums zero",
        "properties/test_oblr_po.py::test_weighted_leave_one_out_is_unbiased_for_any_weights: plug-in weights from "
        "the other rollouts keep E ĝ = ∇J",
        "properties/test_oblr_po.py::test_singletons_zero_weights_and_masks_defined",
        "properties/test_oblr_po.py::test_bad_input_raises",
        "untested: the paper's convergence rate constants — the theorem's statement was not readable",
    ),
))

register(Spec(
    name="oblr_po_lr", kind="tabular", family="baseline", paper=OBLR_PAPER, status="partial",
    summary="SNR-governed step size lr_max·SNR/(1+SNR) from per-sample gradient estimates",
    fn=oblr_po_learning_rate, config_cls=OBLRPOLRConfig, outputs=("snr", "lr"), make_inputs=make_lr_inputs,
    missing="the paper's SNR estimator and base learning rate were not readable; the unbiased plug-in SNR "
            "estimate and lr_max = 1 are ours",
    extras={"estimate_snr": estimate_snr, "snr_learning_rate": snr_learning_rate,
            "signal_to_noise": signal_to_noise, "improvement_lower_bound": improvement_lower_bound},
    equations=(
        Equation("snr-estimate", "noise = Σ‖g_n − ḡ‖²/(N(N−1)),  signal = max(‖ḡ‖² − noise, 0),  SNR = signal/noise",
                 "arXiv 2511.23310 (SNR of gradients)", "reconstructed", "estimate_snr",
                 note="our unbiased plug-in (noise unbiased for tr Cov ḡ; signal before clipping unbiased for "
                      "‖E ḡ‖²); checked by exact enumeration"),
        Equation("snr-lr", "lr = lr_max · SNR/(1 + SNR)  (lr_max = 1/L gives η*)", "arXiv 2511.23310 (abstract)",
                 "reconstructed", "snr_learning_rate", note=_RECON),
    ),
    properties=(
        "properties/test_oblr_po.py::test_snr_estimator_is_unbiased: exact enumeration of N i.i.d. draws: "
        "E noise = tr Cov ḡ, E (‖ḡ‖² − noise) = ‖E ḡ‖²",
        "properties/test_oblr_po.py::test_snr_learning_rate_maximises_bound",
        "properties/test_oblr_po.py::test_learning_rate_monotone_and_bounded: 0 ≤ lr < lr_max, increasing in SNR",
        "properties/test_oblr_po.py::test_bad_input_raises",
    ),
))

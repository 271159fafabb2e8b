"""FG-ExPO: accuracy-conditioned KL scaling (AKL) and Gaussian curriculum sampling (GCS).

Lin, Gong, Tang, Li, Wang, Ma, Huang, Tang, Lu, "FG-ExPO: Frontier-Guided Exploration-Prioritized Policy
Optimization via Adaptive KL and Gaussian Curriculum", arXiv 2605.11403 (2026). No public code was found.

Place in the pipeline: the GRPO step itself is unchanged (advantage = GRPO with the population std, loss =
clipped surrogate + β·k3 KL, the paper's Eqs. 1–3). FG-ExPO turns two knobs around it::

    probs    = gcs_probs(state.p_tilde)                          # WHICH PROMPTS ARE SAMPLED (GCS)
    idx      = gcs_sample(probs, u)                              # the next batch of questions
    ... G rollouts per question, rewards, pass rates p_q ...
    adv      = registry.get("grpo")(rewards, group, mask, config=GRPOConfig(ddof=0))
    β_eff    = akl_beta(batch_accuracy(p), config)                # THE KL COEFFICIENT OF THIS STEP (AKL)
    loss     = ppo(logp, old_logp, adv, mask) + β_eff · kl_k3(logp, ref_logp, mask)
    state    = update(state, idx, p)                             # EMA pass rates of the sampled questions

Equations (notation: q a question, p_q^{(t)} its pass rate over its G rollouts at step t, acc_i the accuracy of
the i-th question of the batch, N the number of questions in the batch)::

    AKL   acc̄ = (1/N) Σ_i acc_i                                              (batch accuracy)
          β_eff = β · ρ(acc̄),  ρ(x) = (tanh x + 1)/2                         ρ ∈ [0.5, 0.881] on [0, 1]
    GCS   p̃_q ← α p̃_q + (1 − α) p_q^{(t)}   for the questions sampled at t;  p̃_q = 0.5 at the start
          w_q = exp(−(p̃_q − μ)² / (2σ²)),  μ = 0.5;   Pr[q] = w_q / Σ_j w_j

Defaults (paper, as our notes report them): β = 0.02, σ = 0.35, α = 0.9, μ = 0.5, G = 8, 256 questions per
step. ρ is monotone increasing and bounded away from 0, so β_eff ∈ [β/2, 0.881 β]: the KL constraint is
loosened when the batch is failing and tightened as it succeeds. The Gaussian is centred where the Bernoulli
variance p(1 − p) of a group's rewards, hence the GRPO signal, is largest.

Provenance. Only the abstract could be read here (it confirms AKL as a smooth nonlinear function of the batch's
mean accuracy and GCS as a Gaussian weighting centred at p ≈ 0.5). The exact forms above, the EMA and the
defaults are those our notes (shared papers_B.md §6) record from the paper's method section; they are tagged
``secondary``.

Conventions (ours; the text we could reach does not fix them):

* **Probabilities** are computed as a softmax of log w = −(p̃ − μ)²/(2σ²), which equals w/Σw and never
  underflows to 0/0: as σ → 0 the distribution tends to uniform over the questions closest to μ.
* **Sampling** draws with replacement by inverse CDF from supplied uniforms u ∈ [0, 1): question q is drawn for
  u in [F_{q−1}, F_q), F the cumulative probabilities. Passing u (rather than a generator) keeps the function
  pure and lets the torch version reproduce it exactly.
* **A question drawn several times in one batch** gets one EMA update per occurrence, in batch order.
* **acc̄** is the plain mean of the batch's per-question pass rates (every question has G rollouts, so it is
  also the mean over responses). An empty batch has no accuracy and is rejected.
* ``rho="one"`` (ρ ≡ 1) is plain GRPO's fixed coefficient, kept for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import choice, fail, finite_vector, in_range, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

FG_EXPO_PAPER = Paper(arxiv="2605.11403", title="FG-ExPO: Frontier-Guided Exploration-Prioritized Policy "
                      "Optimization via Adaptive KL and Gaussian Curriculum", year=2026)
RHO_FUNCTIONS = ("tanh", "one")


@dataclass(frozen=True)
class FGExPOState:
    """GCS state: ``p_tilde`` (Q,), the EMA pass rate of every question. Never written in place."""

    p_tilde: Any


@dataclass(frozen=True)
class FGExPOConfig:
    """beta: base KL coefficient β (paper 0.02). rho: "tanh" (ρ(x) = (tanh x + 1)/2, the paper's) or "one"
    (ρ ≡ 1, GRPO's fixed β). sigma: width σ of the Gaussian (0.35). center: μ (0.5). alpha: EMA factor α (0.9)."""

    beta: float = 0.02
    rho: str = "tanh"
    sigma: float = 0.35
    center: float = 0.5
    alpha: float = 0.9

    def __post_init__(self) -> None:
        positive(self.beta, "beta", allow_zero=True)
        choice(self.rho, "rho", RHO_FUNCTIONS)
        positive(self.sigma, "sigma")
        in_range(self.center, "center", 0.0, 1.0)
        in_range(self.alpha, "alpha", 0.0, 1.0)


# ------------------------------------------------------------------------------------------ validation

def check_state(state: Any) -> np.ndarray:
    """Float64 copy of p̃ (Q,), Q ≥ 1, values in [0, 1]."""
    if not isinstance(state, FGExPOState):
        raise fail("state", type(state).__name__, "an FGExPOState (build one with init_state)")
    p = finite_vector(state.p_tilde, "state.p_tilde")
    if p.shape[0] == 0:
        raise fail("state.p_tilde", "length 0", "at least one question")
    if ((p < 0) | (p > 1)).any():
        raise fail("state.p_tilde", f"values in [{p.min()}, {p.max()}]", "pass rates in [0, 1]")
    return p


def check_pass_rates(pass_rate: Any, name: str = "pass_rate", length: int | None = None) -> np.ndarray:
    """Finite pass rates (N,) in [0, 1]."""
    p = finite_vector(pass_rate, name, length)
    if ((p < 0) | (p > 1)).any():
        i = int(np.argwhere((p < 0) | (p > 1))[0][0])
        raise fail(name, f"{p[i]} at index {i}", "pass rates in [0, 1]")
    return p


def check_indices(idx: Any, Q: int, name: str = "idx") -> np.ndarray:
    """Integer question indices (N,) in 0..Q−1."""
    a = np.asarray(idx)
    if a.ndim != 1:
        raise fail(name, f"shape {a.shape}", "a 1-D array of question indices")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise fail(name, f"dtype {a.dtype}", "integer question indices")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= Q)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise fail(name, f"{a[i]} at index {i}", f"indices in 0..{Q - 1} (the state has Q={Q} questions)")
    return a


def check_uniforms(u: Any) -> np.ndarray:
    """Uniform draws (n,) in [0, 1)."""
    a = finite_vector(u, "u")
    if ((a < 0) | (a >= 1)).any():
        raise fail("u", f"values in [{a.min()}, {a.max()}]", "uniform draws in [0, 1)")
    return a


# ------------------------------------------------------------------------------------------------ AKL

def batch_accuracy(pass_rate: Any) -> float:
    """acc̄ = (1/N) Σ_i acc_i over the batch's N questions (N ≥ 1)."""
    p = check_pass_rates(pass_rate)
    if p.size == 0:
        raise fail("pass_rate", "an empty batch", "at least one question (acc̄ is a mean over the batch)")
    return float(p.mean())


def akl_rho(acc_bar: Any, rho: str = "tanh") -> np.ndarray:
    """ρ(x) = (tanh x + 1)/2 ("tanh", ∈ [0.5, 0.881] on [0, 1], increasing) or ρ ≡ 1 ("one")."""
    x = np.asarray(acc_bar, dtype=np.float64)
    return (np.tanh(x) + 1.0) / 2.0 if rho == "tanh" else np.ones_like(x)


def akl_beta(acc_bar: float, config: FGExPOConfig | None = None) -> float:
    """β_eff = β · ρ(acc̄): the KL coefficient of this step's loss."""
    cfg = config or FGExPOConfig()
    a = in_range(acc_bar, "acc_bar", 0.0, 1.0)
    return float(cfg.beta * akl_rho(a, cfg.rho))


# ------------------------------------------------------------------------------------------------ GCS

def init_state(num_questions: int, p0: float = 0.5) -> FGExPOState:
    """Every question starts at p̃ = p0 (paper: 0.5, so all weights start equal)."""
    if not isinstance(num_questions, (int, np.integer)) or num_questions < 1:
        raise fail("num_questions", repr(num_questions), "an integer ≥ 1")
    return FGExPOState(p_tilde=np.full(int(num_questions), in_range(p0, "p0", 0.0, 1.0)))


def ema_update(p_tilde: np.ndarray, idx: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """p̃_q ← α p̃_q + (1 − α) p_q for each (q, p_q) in batch order (a copy; repeats update once each)."""
    out = p_tilde.copy()
    for q, pq in zip(idx, p):
        out[q] = alpha * out[q] + (1.0 - alpha) * pq
    return out


def update(state: FGExPOState, idx: Any, pass_rate: Any, config: FGExPOConfig | None = None) -> FGExPOState:
    """The new state after observing the pass rates (N,) of the questions ``idx`` (N,). Pure."""
    cfg = config or FGExPOConfig()
    p_tilde = check_state(state)
    ids = check_indices(idx, p_tilde.shape[0])
    p = check_pass_rates(pass_rate, length=ids.shape[0])
    return FGExPOState(p_tilde=ema_update(p_tilde, ids, p, cfg.alpha))


def gcs_log_weights(p_tilde: np.ndarray, sigma: float, center: float) -> np.ndarray:
    """log w_q = −(p̃_q − μ)² / (2σ²)  (Q,)."""
    return -((p_tilde - center) ** 2) / (2.0 * sigma**2)


def gcs_weights(p_tilde: Any, config: FGExPOConfig | None = None) -> np.ndarray:
    """w_q = exp(−(p̃_q − μ)² / (2σ²)) ∈ (0, 1], maximal (= 1) at p̃ = μ  (Q,)."""
    cfg = config or FGExPOConfig()
    return np.exp(gcs_log_weights(check_state(FGExPOState(p_tilde)), cfg.sigma, cfg.center))


def gcs_probs(p_tilde: Any, config: FGExPOConfig | None = None) -> np.ndarray:
    """Pr[q] = w_q / Σ_j w_j (Q,), computed as a softmax of log w (stable for any σ > 0)."""
    cfg = config or FGExPOConfig()
    lw = gcs_log_weights(check_state(FGExPOState(p_tilde)), cfg.sigma, cfg.center)
    e = np.exp(lw - lw.max())
    return e / e.sum()


def gcs_sample(probs: Any, u: Any) -> np.ndarray:
    """Inverse-CDF draws with replacement: idx_k = min{q : F_q > u_k}, F = cumsum(probs)  (n,) int."""
    P = finite_vector(probs, "probs")
    if P.size == 0 or (P < 0).any() or not np.isclose(P.sum(), 1.0, rtol=0, atol=1e-9):
        raise fail("probs", f"{P.size} values summing to {P.sum()}", "a non-empty probability vector")
    U = check_uniforms(u)
    F = np.cumsum(P)
    return np.minimum(np.searchsorted(F, U, side="right"), P.size - 1).astype(np.int64)


# -------------------------------------------------------------------------------------- the one step

def fg_expo_step(state: FGExPOState, idx: Any, pass_rate: Any, u: Any,
                 config: FGExPOConfig | None = None) -> tuple[float, np.ndarray, np.ndarray, FGExPOState]:
    """One FG-ExPO step after the rollouts of the batch ``idx``.

    Args: state (Q questions); idx (N,) the questions of this batch; pass_rate (N,) their pass rates in
    [0, 1]; u (n,) uniforms in [0, 1) for drawing the next batch of n questions.
    Returns: (beta_eff: this step's KL coefficient β·ρ(acc̄); probs (Q,): GCS probabilities after the
    update; next_idx (n,): the next batch's questions; new_state).
    """
    cfg = config or FGExPOConfig()
    beta_eff = akl_beta(batch_accuracy(pass_rate), cfg)
    new_state = update(state, idx, pass_rate, cfg)
    probs = gcs_probs(new_state.p_tilde, cfg)
    return beta_eff, probs, gcs_sample(probs, u), new_state


def make_inputs(rng: np.random.Generator) -> dict:
    """A random step: Q questions with EMA pass rates (some at 0, 1 and 0.5), a batch that may repeat a
    question, pass rates on the G = 8 grid, and uniforms for the next batch."""
    Q = int(rng.integers(1, 12))
    p_tilde = rng.choice([0.0, 0.5, 1.0, rng.random()], size=Q) if rng.random() < 0.4 else rng.random(Q)
    N = int(rng.integers(1, 10))
    idx = rng.integers(0, Q, size=N)
    pass_rate = rng.integers(0, 9, size=N) / 8.0
    return {"state": FGExPOState(p_tilde=p_tilde), "idx": idx, "pass_rate": pass_rate,
            "u": rng.random(int(rng.integers(1, 10)))}


EQUATIONS = (
    Equation("fg-expo-grpo", "Â_i = (r_i − mean_g r)/std_g(r) (population std); ℓ = −min(ρÂ, clip(ρ)Â) + β k3",
             "arXiv 2605.11403 §3 (Eqs. 1–3)", "secondary", "",
             note="GRPO baseline with k3 inside the loss; served by the registry's grpo (ddof=0), ppo and kl_k3 "
                  "entries, composed in properties/test_fg_expo.py"),
    Equation("fg-expo-acc", "acc̄ = (1/N) Σ_i acc_i", "arXiv 2605.11403 §4 (AKL)", "secondary", "batch_accuracy",
             note="'batch mean accuracy' is in the abstract (read); the mean over questions is from our notes"),
    Equation("fg-expo-akl", "β_eff = β·ρ(acc̄),  ρ(x) = (tanh x + 1)/2", "arXiv 2605.11403 §4 (AKL)", "secondary",
             "akl_beta",
             note="abstract (read): a smooth nonlinear, increasing function of acc̄; the tanh form and β = 0.02 are "
                  "from our notes' reading of the method section; ρ ∈ [0.5, 0.881] on [0, 1] checked by a test"),
    Equation("fg-expo-ema", "p̃_q ← α p̃_q + (1 − α) p_q^{(t)} (sampled q only),  p̃_q(0) = 0.5,  α = 0.9",
             "arXiv 2605.11403 §4 (GCS)", "secondary", "update",
             note="from our notes; one update per occurrence of a repeated question is our convention"),
    Equation("fg-expo-gcs", "w_q = exp(−(p̃_q − 0.5)²/(2σ²)),  Pr[q] = w_q/Σ_j w_j,  σ = 0.35",
             "arXiv 2605.11403 §4 (GCS)", "secondary", "gcs_probs",
             note="abstract (read): Gaussian weights centred at p ≈ 0.5; σ and the normalisation from our notes; "
                  "computed as a softmax of log w"),
    Equation("fg-expo-draw", "idx_k = min{q : F_q > u_k},  F = cumsum(Pr)", "ours", "reconstructed", "gcs_sample",
             note="with-replacement inverse-CDF draws from supplied uniforms; the paper's draw is not in the text "
                  "we could read"),
)

register(Spec(
    name="fg_expo", kind="curriculum", family="sampling", paper=FG_EXPO_PAPER, status="implemented",
    summary="two knobs around an unchanged GRPO step: which prompts are sampled (Gaussian weights on the EMA "
            "pass rate, centred at 0.5) and the KL coefficient of the loss (β·(tanh acc̄ + 1)/2 from the batch "
            "accuracy)",
    fn=fg_expo_step, config_cls=FGExPOConfig, equations=EQUATIONS,
    outputs=("beta_eff", "probs", "next_idx", "state"), make_inputs=make_inputs,
    extras={"init_state": init_state, "update": update, "akl_beta": akl_beta, "akl_rho": akl_rho,
            "batch_accuracy": batch_accuracy, "gcs_weights": gcs_weights, "gcs_probs": gcs_probs,
            "gcs_sample": gcs_sample,
            "conformance_configs": lambda: [("rho=one", {"rho": "one"}), ("narrow", {"sigma": 0.05}),
                                            ("wide", {"sigma": 50.0, "alpha": 0.5}),
                                            ("off-centre", {"center": 0.3, "beta": 0.1})]},
    gradient="not a loss: β_eff multiplies the k3 KL term of the GRPO loss (its gradient is kl_k3's, scaled); the "
             "sampler's output is a set of question indices",
    properties=(
        "properties/test_fg_expo.py::test_rho_range_and_monotone: ρ ∈ [0.5, 0.881] on [0, 1], increasing; "
        "β_eff ∈ [β/2, 0.881β]",
        "properties/test_fg_expo.py::test_rho_one_recovers_grpo_and_constant_rho_scales_beta: ρ ≡ 1 gives GRPO's β; "
        "a constant ρ = c gives GRPO with cβ (through ppo + kl_k3)",
        "properties/test_fg_expo.py::test_kl_term_nonnegative_and_scaled: the k3 term is ≥ 0, so AKL only rescales a "
        "penalty; loosened when acc̄ is low",
        "properties/test_fg_expo.py::test_weight_peaks_at_centre_and_is_symmetric: w = 1 at p̃ = 0.5, symmetric, "
        "decreasing in |p̃ − 0.5|",
        "properties/test_fg_expo.py::test_wide_sigma_is_uniform_and_narrow_sigma_is_point_mass: σ → ∞ ⇒ uniform; "
        "σ → 0 ⇒ all mass on the questions closest to 0.5",
        "properties/test_fg_expo.py::test_initial_state_is_uniform: p̃ = 0.5 everywhere ⇒ every weight equal",
        "properties/test_fg_expo.py::test_frontier_maximises_grpo_signal: p(1 − p) and P(group not all-equal) = "
        "1 − p^G − (1 − p)^G are maximal at p = 0.5 (the justification of μ = 0.5), by exact enumeration",
        "properties/test_fg_expo.py::test_ema_update_only_sampled_and_sequential: only sampled questions move, once "
        "per occurrence",
        "properties/test_fg_expo.py::test_ema_converges_geometrically: constant p ⇒ p̃_k − p = α^k (p̃_0 − p)",
        "properties/test_fg_expo.py::test_inverse_cdf_draws_follow_probs: stratified uniforms give counts within 1 "
        "of n·Pr[q] (exact expected counts)",
        "properties/test_fg_expo.py::test_replay_run_step_by_step: a seeded run replayed step by step with the pure "
        "update; inputs never mutated",
        "properties/test_fg_expo.py::test_drives_one_grpo_step: GCS selection → grpo advantages → ppo + β_eff·kl_k3 "
        "loss; gradient checked by finite differences",
        "properties/test_fg_expo.py::test_gcs_raises_signal_fraction_on_toy_pool: on a fixed pool, GCS sampling "
        "raises the expected fraction of non-zero-variance groups over uniform sampling (exact expectation)",
        "properties/test_fg_expo.py::test_bad_input_raises",
        "properties/test_fg_expo.py::test_registry_entry_calls_step: the entry is the one-step function with the "
        "paper's defaults (β_eff = 0.02·(tanh acc̄ + 1)/2)",
        "untested: the k3 estimator is unbiased only under on-policy samples (Eq. 3) — a property of the kl_k3 "
        "entry, tested in properties/test_kl.py, not of FG-ExPO",
        "untested: benchmark gains (AIME 2025 pass@32 63.33 → 76.67, +2.66 average pass@32 on Qwen3-8B-Base) and "
        "the larger gains at pass@32 than pass@1 — need LLM training runs",
    ),
))

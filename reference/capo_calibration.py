"""CAPO (calibration): Calibration-Aware Policy Optimization — a pairwise, AUC-consistent advantage.

Wang, Lou, Wu, Wen, Zhang, "Calibration-Aware Policy Optimization for Reasoning LLMs", arXiv 2604.12632
(Apr 2026, ACL 2026). No official code is known. Provenance: the abstract (logistic AUC surrogate,
uncertainty-aware advantage, noise masking) was read; the formulas below come from a detailed
third-party note of the paper, as restated in our notes (papers_A.md §7, tagged [N]); the identities
marked "derived" were derived and checked here.

Notation, per group (the G rollouts of one prompt), rollout i with binary outcome R_i ∈ {0, 1}:

    lpm_i = (1/|o_i|) Σ_t log π_old(o_it | q, o_i,<t) = −log PPL(o_i)     length-normalised log-prob (confidence)
    φ_τ(t) = log(1 + e^{−t/τ})                                             logistic AUC surrogate, t = lpm⁺ − lpm⁻
    φ'_τ(t) = −(1/τ) σ(−t/τ)

    Ã_i = + Σ_{j: R_j = 0} (1/τ) σ((lpm_j − lpm_i)/τ)     for a correct rollout i          (> 0)
    Ã_j = − Σ_{i: R_i = 1} (1/τ) σ((lpm_j − lpm_i)/τ)     for an incorrect rollout j       (< 0)

i.e. Ã = −∂/∂lpm Σ_{(i,j): R_i=1, R_j=0} φ_τ(lpm_i − lpm_j): the advantage is the negative gradient of
the pairwise logistic ranking loss between correct and incorrect rollouts, so a policy-gradient step
with it raises the confidence of correct answers above that of wrong ones (AUC). Less confident
correct answers and more confident wrong answers get the largest weights.

Noise mask (reference model π_ref, PPL_ref(o) = exp(−(1/|o|) Σ_t log π_ref(o_t))):

    m_i = [R_i = 1 ∧ PPL_ref(o_i) ≤ 2.5]  ∨  [R_i = 0 ∧ PPL_ref(o_i) ≥ 1.05]
    Â_i = m_i · sg[Ã_i]        broadcast over the rollout's tokens, then PPO-clip (ε = 0.2), no KL

(a correct answer the reference finds very unlikely is treated as a lucky guess, a wrong answer the
reference finds near-certain as label noise). τ = 0.6 (1.5B) / 0.5 (7B), G = 8 in the paper's runs.

GRPO, by contrast (derived, exact): Σ_i (R_i − R̄) ∇lpm_i = (1/G) Σ_{i<j} (R_i − R_j)(∇lpm_i − ∇lpm_j),
the gradient of the pairwise surrogate φ(t) = −t, which is not AUC-consistent (Theorem 3: AUC(αf) =
AUC(f) while L_{−t}(αf) = α L_{−t}(f)). As τ → ∞, (2τ/G) Ã_i → R_i − R̄ (Dr. GRPO's advantage).

Conventions (the note leaves them open; named options):
  * ``pair_normalization``: "none" (the note's formulas, default), "group" (÷ G), "pairs" (÷ n₊n₋);
  * ``mask_scope``: "after" (Â = m·Ã, the note's form: noisy rollouts still enter the other rollouts'
    pair sums) or "before" (noisy rollouts are removed from the pairs as well);
  * lpm is taken under the old (behaviour) policy, as a stop-gradient quantity;
  * a rollout with no valid token has no confidence: it is left out of every pair and gets Â = 0;
  * rewards must be 0/1 (verifiable outcomes); singleton, all-correct and all-wrong groups give Â = 0.
Padding of ``old_logp`` / ``ref_logp`` is never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, masked_array, positive
from rlspec.reference.grpo import broadcast_to_tokens
from rlspec.reference.registry import Equation, Paper, Spec, register

CAPO_CAL_PAPER = Paper(arxiv="2604.12632", title="Calibration-Aware Policy Optimization for Reasoning LLMs", year=2026)
PAIR_NORMALIZATIONS = ("none", "group", "pairs")
MASK_SCOPES = ("after", "before")


@dataclass(frozen=True)
class CAPOCalibrationConfig:
    """tau: logistic temperature τ > 0 (paper: 0.6 for 1.5B, 0.5 for 7B). noise_mask: apply the reference-PPL
    mask (needs ref_logp). ppl_correct_max / ppl_incorrect_min: keep a correct rollout if PPL_ref ≤ 2.5, a wrong
    one if PPL_ref ≥ 1.05. pair_normalization: "none" | "group" (÷G) | "pairs" (÷n₊n₋). mask_scope: "after"
    (Â = m·Ã) | "before" (masked rollouts also leave the pairs)."""

    tau: float = 0.6
    noise_mask: bool = True
    ppl_correct_max: float = 2.5
    ppl_incorrect_min: float = 1.05
    pair_normalization: str = "none"
    mask_scope: str = "after"

    def __post_init__(self) -> None:
        positive(self.tau, "tau")
        if not isinstance(self.noise_mask, bool):
            raise fail("noise_mask", repr(self.noise_mask), "True or False")
        if positive(self.ppl_correct_max, "ppl_correct_max") < 1.0:
            raise fail("ppl_correct_max", repr(self.ppl_correct_max), "a perplexity bound ≥ 1")
        if positive(self.ppl_incorrect_min, "ppl_incorrect_min") < 1.0:
            raise fail("ppl_incorrect_min", repr(self.ppl_incorrect_min), "a perplexity bound ≥ 1")
        choice(self.pair_normalization, "pair_normalization", PAIR_NORMALIZATIONS)
        choice(self.mask_scope, "mask_scope", MASK_SCOPES)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) from e^{−|x|}: no overflow for any finite x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def length_normalized_logprob(logp: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lpm_i = Σ_t M_it logp_it / Σ_t M_it (B,) and nonempty_i = (Σ_t M_it > 0); lpm = 0 for an empty row.

    ``logp`` must already have its padding zeroed (:func:`rlspec.reference._validate.masked_array`)."""
    n = mask.sum(axis=1)  # (B,)
    lpm = np.divide(np.where(mask, logp, 0.0).sum(axis=1), n, out=np.zeros(mask.shape[0]), where=n > 0)
    return lpm, n > 0


def perplexity(logp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PPL(o_i) = exp(−lpm_i) (B,); 1 for an empty row."""
    return np.exp(-length_normalized_logprob(logp, mask)[0])


def logistic_surrogate(t, tau: float) -> np.ndarray:
    """φ_τ(t) = log(1 + e^{−t/τ}) (softplus of −t/τ, computed without overflow)."""
    x = -np.asarray(t, dtype=np.float64) / positive(tau, "tau")
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def logistic_surrogate_slope(t, tau: float) -> np.ndarray:
    """φ'_τ(t) = −(1/τ) σ(−t/τ) < 0."""
    tau = positive(tau, "tau")
    return -_sigmoid(-np.asarray(t, dtype=np.float64) / tau) / tau


def pair_weight(lpm_pos: np.ndarray, lpm_neg: np.ndarray, tau: float) -> np.ndarray:
    """w = −φ'_τ(lpm⁺ − lpm⁻) = (1/τ) σ((lpm⁻ − lpm⁺)/τ) ∈ (0, 1/τ), broadcasting the two arguments."""
    return -logistic_surrogate_slope(np.asarray(lpm_pos) - np.asarray(lpm_neg), tau)


def calibration_advantage(R: np.ndarray, lpm: np.ndarray, g: np.ndarray, active: np.ndarray, tau: float,
                          normalization: str = "none") -> np.ndarray:
    """Ã (B,): Σ_{j incorrect} w(lpm_i, lpm_j) for correct i, −Σ_{i correct} w(lpm_i, lpm_j) for incorrect j.

    Only ``active`` rollouts form pairs (and only within their group); inactive ones get 0.
    normalization: "none", "group" (÷ G = number of active rollouts in the group), "pairs" (÷ n₊n₋)."""
    A = np.zeros_like(lpm)
    for k in np.unique(g):
        rows = np.flatnonzero((g == k) & active)
        pos, neg = rows[R[rows] == 1.0], rows[R[rows] == 0.0]
        if pos.size == 0 or neg.size == 0:
            continue  # all-correct, all-wrong or singleton group: no pair, Ã = 0
        w = pair_weight(lpm[pos][:, None], lpm[neg][None, :], tau)  # (n₊, n₋)
        scale = {"none": 1.0, "group": 1.0 / rows.size, "pairs": 1.0 / (pos.size * neg.size)}[normalization]
        A[pos] = scale * w.sum(axis=1)
        A[neg] = -scale * w.sum(axis=0)
    return A


def noise_mask(R: np.ndarray, ppl_ref: np.ndarray, ppl_correct_max: float, ppl_incorrect_min: float) -> np.ndarray:
    """m (B,) bool: keep a correct rollout if PPL_ref ≤ ppl_correct_max, a wrong one if PPL_ref ≥ ppl_incorrect_min."""
    return np.where(R == 1.0, ppl_ref <= ppl_correct_max, ppl_ref >= ppl_incorrect_min)


def auc(scores, labels) -> float:
    """AUC = P(score⁺ > score⁻) + ½ P(score⁺ = score⁻) over all (positive, negative) pairs; nan without both."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def validate(rewards, old_logp, mask, group, ref_logp):
    """rewards (B,) in {0, 1}; old_logp / ref_logp (B, T) finite where mask; mask (B, T) bool; group (B,) ints."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    R = finite_vector(rewards, "rewards", M.shape[0])
    if not np.isin(R, (0.0, 1.0)).all():
        raise fail("rewards", f"a value {R[~np.isin(R, (0.0, 1.0))][0]!r}", "binary outcomes 0 (wrong) or 1 (correct)")
    lp = masked_array(old_logp, "old_logp", M)
    rlp = None if ref_logp is None else masked_array(ref_logp, "ref_logp", M)
    return R, lp, M, group_ids(group, M.shape[0]), rlp


def capo_calibration_advantage(rewards, old_logp, mask, group, ref_logp=None,
                               config: CAPOCalibrationConfig | None = None) -> np.ndarray:
    """CAPO advantage (B, T): the noise-masked logistic-AUC pairwise advantage broadcast over each response.

    Args: rewards (B,) 0/1; old_logp (B, T) log-probs of the sampled tokens under the behaviour policy (gives
    lpm); mask (B, T) bool; group (B,) prompt ids; ref_logp (B, T) reference-model log-probs (gives PPL_ref;
    None = no noise mask, as with ``noise_mask=False``).
    Returns: (B, T) float64, zero at masked positions, for masked-out (noisy) rollouts and in groups without
    both a correct and a wrong rollout.
    """
    cfg = config or CAPOCalibrationConfig()
    R, lp, M, g, rlp = validate(rewards, old_logp, mask, group, ref_logp)
    lpm, nonempty = length_normalized_logprob(lp, M)
    keep = np.ones_like(nonempty)
    if cfg.noise_mask and rlp is not None:
        keep = noise_mask(R, perplexity(rlp, M), cfg.ppl_correct_max, cfg.ppl_incorrect_min)
    active = nonempty & keep if cfg.mask_scope == "before" else nonempty
    A = calibration_advantage(R, lpm, g, active, cfg.tau, cfg.pair_normalization)
    return broadcast_to_tokens(np.where(keep & nonempty, A, 0.0), M)


def make_inputs(rng: np.random.Generator) -> dict:
    """A CAPO batch: contiguous groups of 1-8 rollouts (singletons, all-correct / all-wrong groups occur), binary
    rewards, ragged masks (some rows empty) with NaN/±inf padding, old and reference log-probs whose perplexities
    straddle the mask thresholds 1.05 and 2.5."""
    B, T = int(rng.integers(1, 13)), int(rng.integers(1, 7))
    group = np.arange(B) // int(rng.integers(1, 9))
    rewards = (rng.random(B) < rng.uniform(0.2, 0.8)).astype(np.float64)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    old_logp = -rng.gamma(1.0, rng.choice([0.05, 0.5, 1.5]), size=(B, T))
    ref_logp = old_logp - rng.gamma(1.0, 0.2, size=(B, T))
    pad = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30]), size=(2, B, T))
    return {"rewards": rewards, "old_logp": np.where(mask, old_logp, pad[0]), "mask": mask, "group": group,
            "ref_logp": np.where(mask, ref_logp, pad[1])}


_NOTE = "from a detailed third-party note of the paper (our notes papers_A.md §7 [N]); the abstract confirms the idea"

EQUATIONS = (
    Equation("capo-lpm", "lpm(o) = (1/|o|) Σ_t log π_old(o_t | q, o_<t) = −log PPL(o)",
             "arXiv 2604.12632, method (confidence score)", "secondary", "length_normalized_logprob",
             note=_NOTE + "; lpm under the old (no-grad) policy is our reading"),
    Equation("grpo-pairwise-identity", "Σ_i (R_i − R̄) ∇lpm_i = (1/G) Σ_{i<j} (R_i − R_j)(∇lpm_i − ∇lpm_j)",
             "arXiv 2604.12632, analysis of GRPO (implicit surrogate φ(t) = −t)", "secondary", "",
             note=_NOTE + "; the identity is exact algebra, checked here on random gradients"),
    Equation("logistic-surrogate", "φ_τ(t) = log(1 + e^{−t/τ}),  φ'_τ(t) = −(1/τ) σ(−t/τ)",
             "arXiv 2604.12632, method (logistic AUC surrogate; Theorems 1-3)", "secondary", "logistic_surrogate", note=_NOTE),
    Equation("capo-advantage", "Ã_i = Σ_{j: R_j=0} (1/τ)σ((lpm_j − lpm_i)/τ) (R_i = 1);  "
             "Ã_j = −Σ_{i: R_i=1} (1/τ)σ((lpm_j − lpm_i)/τ) (R_j = 0)",
             "arXiv 2604.12632, method (uncertainty-aware advantage)", "secondary", "calibration_advantage",
             note=_NOTE + "; any per-pair normalisation is unverified (option pair_normalization, default none)"),
    Equation("capo-noise-mask", "m = [R=1 ∧ PPL_ref ≤ 2.5] ∨ [R=0 ∧ PPL_ref ≥ 1.05];  Â = m · sg[Ã]",
             "arXiv 2604.12632, method (noise masking)", "secondary", "noise_mask",
             note=_NOTE + "; whether masked rollouts still enter others' pairs is unverified (option mask_scope)"),
    Equation("capo-large-tau-limit", "(2τ/G) Ã_i → R_i − R̄ as τ → ∞ (Dr. GRPO; GRPO up to a per-group scale)",
             "derived from the advantage", "reconstructed", "calibration_advantage",
             note="σ(x) = ½ + x/4 + O(x³); checked against rlspec.reference.grpo"),
)

register(Spec(
    name="capo_calibration", kind="advantage", family="advantage", paper=CAPO_CAL_PAPER,
    status="implemented",
    summary="AUC-consistent pairwise advantage: logistic surrogate on the confidence gap of correct vs wrong "
            "rollouts, with a reference-perplexity noise mask",
    fn=capo_calibration_advantage, config_cls=CAPOCalibrationConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"logistic_surrogate": logistic_surrogate, "pair_weight": pair_weight, "noise_mask": noise_mask,
            "auc": auc, "length_normalized_logprob": length_normalized_logprob,
            "conformance_configs": lambda: [
                (name, ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("tau=0.5", {"tau": 0.5}), ("norm=group", {"pair_normalization": "group"}),
                    ("norm=pairs", {"pair_normalization": "pairs"}), ("scope=before", {"mask_scope": "before"}),
                    ("no-noise-mask", {"noise_mask": False}))]},
    equations=EQUATIONS,
    properties=(
        "properties/test_capo_calibration.py::test_grpo_pairwise_identity: Σ(R_i−R̄)∇lpm_i = (1/G)Σ_{i<j}(R_i−R_j)(∇lpm_i−∇lpm_j)",
        "properties/test_capo_calibration.py::test_advantage_is_minus_gradient_of_pairwise_logistic_loss: "
        "Ã = −∂/∂lpm Σ_pairs φ_τ(lpm⁺ − lpm⁻) (central FD)",
        "properties/test_capo_calibration.py::test_advantages_sum_to_zero_per_group: Σ_group Ã = 0",
        "properties/test_capo_calibration.py::test_groups_without_both_outcomes_have_zero_advantage: "
        "all-correct / all-wrong / singleton groups give 0",
        "properties/test_capo_calibration.py::test_signs_and_bounds: 0 < Ã < n₋/τ (correct), −n₊/τ < Ã < 0 (wrong)",
        "properties/test_capo_calibration.py::test_less_confident_correct_and_more_confident_wrong_get_larger_weights",
        "properties/test_capo_calibration.py::test_large_tau_recovers_grpo: (2τ/G)Ã → R − R̄ (Dr. GRPO), ∝ GRPO",
        "properties/test_capo_calibration.py::test_theorem1_logistic_surrogate_meets_consistency_conditions: "
        "Theorem 1's conditions (convex, non-increasing, φ'(0) < 0)",
        "properties/test_capo_calibration.py::test_theorem1_logistic_minimiser_ranks_by_correctness_probability: "
        "Theorem 1 (AUC consistency) on an exact finite problem",
        "properties/test_capo_calibration.py::test_theorem2_logistic_bound_on_misranking: 1 − AUC ≤ L_φτ/ln 2 "
        "(Theorem 2 for separable labels)",
        "properties/test_capo_calibration.py::test_theorem3_linear_surrogate_is_scale_sensitive: AUC(αf) = AUC(f), "
        "L_{−t}(αf) = α L_{−t}(f) (Theorem 3)",
        "properties/test_capo_calibration.py::test_linear_surrogate_misranks_under_a_norm_constraint: "
        "our illustration of Theorem 3",
        "properties/test_capo_calibration.py::test_noise_mask_rejects_exactly_the_flagged_rollouts: the PPL_ref rule",
        "properties/test_capo_calibration.py::test_pair_normalizations: ÷G and ÷n₊n₋ options",
        "properties/test_capo_calibration.py::test_grpo_is_uncertainty_agnostic_capo_is_not: the analysis of GRPO",
        "properties/test_capo_calibration.py::test_padding_is_never_read",
        "untested: Theorem 2 in general (noisy labels, L* > 0) — its exact statement and assumptions were not read; "
        "the pointwise bound behind the 1/ln 2 constant is tested instead",
        "untested: the empirical claims (AUC up to +15 % on 1.5B with accuracy ≥ GRPO, +5 % in inference-time "
        "scaling, Pareto-optimal abstention) — need LLM training runs",
    ),
))

"""DGPO (MathForge): Difficulty-aware Group Policy Optimization — balanced group advantages, harder questions first.

Dai, Ji, Zhang, Wang, Chu, Lu, "Harder Is Better: Boosting Mathematical Reasoning via Difficulty-Aware GRPO and
Multi-Aspect Question Reformulation", arXiv 2601.20614 (Jan 2026, ICLR 2026). Official code: AMAP-ML/MathForge, a
patched TRL 0.20 (``trl-0.20.0/trl/trainer/grpo_trainer.py``, ``_generate_and_score_completions``, flags
``enable_dgpo``, ``enable_dgpo_dqw``, ``dgpo_dqw_temp`` in ``grpo_config.py``), read for this module.

Where it sits in the pipeline: between the verifier's rewards and the policy loss. It replaces GRPO's advantage
(the loss stays GRPO's clipped surrogate with a token-mean). MQR, the paper's second half, rewrites questions with
an LLM (data augmentation before training); it has no equation to specify and is not part of this entry.

For the G rollouts of question s with rewards r_1..r_G (notation of the paper; ours: ``rewards`` (B,), ``group``)::

    GRPO magnitude    Σ_i |Â_GR,i| = 2G·√(p(1−p))      binary rewards, accuracy p, population std   (§3, Thm 1)
    DGAE              Â_DG,i = (r_i − mean r) / MAD(r),  MAD(r) = (1/G) Σ_j |r_j − mean r|             (§4.1)
                      ⇒ Σ_i |Â_DG,i| = G for every non-constant group                                (§4.1, Thm 2)
    DQW               D_s = −mean_i acc_{s,i};  λ_s = |V|·exp(D_s/T) / Σ_{s'∈V} exp(D_{s'}/T),  T = 2     (§4.2)
                      over the valid questions V of the batch (non-constant rewards); λ = 1 elsewhere
    advantage         A_i = λ_s · Â_DG,i, broadcast over the tokens of rollout i
    valid-token mean  the loss averages over the tokens of valid questions only (§4.3); under a token-mean loss
                      over all tokens this is the factor  κ = (# tokens) / (# tokens of valid questions)  on A.

Conventions and the official code (exposed as options; defaults are the paper's):
  * ``eps``: the paper's MAD has none (0, an all-equal group gets A = 0 exactly); the code divides by
    Σ|r − mean| + 1e-4 (``eps=1e-4`` reproduces it: A = G·(r − mean)/(Σ|r − mean| + ε)).
  * ``accuracy``: the difficulty uses the accuracy reward (the code's first reward function); by default the
    rewards themselves (a 0/1 verifier). Validity (non-constant group) is decided on the rewards.
  * ``all_wrong``: a valid question whose accuracy is 0 on every rollout (possible when other reward terms vary)
    is the hardest (D = 0, ``"paper"``); the code overwrites its mean accuracy with 1, making it the easiest
    (``"code"``).
  * ``valid_token_mean``: apply κ (True, the paper's objective under a token-mean loss; the code multiplies the
    advantages by the same ratio) or not (False: the plain λ·Â_DG).
  * The code also multiplies by world_size·(local tokens)/(global tokens) so that TRL's per-rank token mean becomes
    a global one; rlspec's losses take the global normalizer instead (``normalizer=``), so that factor is not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, finite_vector, positive
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

DGPO_PAPER = Paper(arxiv="2601.20614", title="Harder Is Better: Boosting Mathematical Reasoning via Difficulty-Aware "
                   "GRPO and Multi-Aspect Question Reformulation", year=2026)


@dataclass(frozen=True)
class DGPOConfig:
    """temperature: DQW softmax temperature T > 0 (paper 2.0); dqw: question weights on/off (code default on);
    eps ≥ 0: added to Σ|r − mean| (paper 0, code 1e-4); all_wrong: "paper" or "code" (see module docstring);
    valid_token_mean: rescale by (# tokens)/(# tokens of valid questions)."""

    temperature: float = 2.0
    dqw: bool = True
    eps: float = 0.0
    all_wrong: str = "paper"
    valid_token_mean: bool = True

    def __post_init__(self) -> None:
        positive(self.temperature, "temperature")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.all_wrong, "all_wrong", ("paper", "code"))


def _groups(g: np.ndarray) -> list[np.ndarray]:
    """Boolean row masks, one per prompt id, in id order."""
    return [g == k for k in np.unique(g)]


def valid_questions(R: np.ndarray, g: np.ndarray) -> np.ndarray:
    """valid (B,): the row's group has non-constant rewards (so a non-zero advantage); singletons are not valid."""
    valid = np.zeros(R.shape, dtype=bool)
    for rows in _groups(g):
        valid[rows] = R[rows].min() != R[rows].max()
    return valid


def dgae(R: np.ndarray, g: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Â_DG,i = (r_i − mean r)/MAD(r) = G·(r_i − mean r)/(Σ_j |r_j − mean r| + ε) per sequence (B,).  §4.1.

    An all-equal group (and a singleton) gets 0 exactly, for any ε."""
    A = np.zeros_like(R)
    for rows in _groups(g):
        r = R[rows]
        if r.min() == r.max():
            continue
        d = r - r.mean()
        A[rows] = len(r) * d / (np.abs(d).sum() + eps)
    return A


def difficulty(acc: np.ndarray, g: np.ndarray, all_wrong: str = "paper") -> np.ndarray:
    """D_s = −mean_i acc_{s,i} per sequence (B,).  §4.2.  ``all_wrong="code"``: an all-zero accuracy counts as 1."""
    D = np.zeros_like(acc)
    for rows in _groups(g):
        p = acc[rows].mean()
        if all_wrong == "code" and (acc[rows] == 0).all():
            p = 1.0
        D[rows] = -p
    return D


def dqw(D: np.ndarray, valid: np.ndarray, g: np.ndarray, temperature: float) -> np.ndarray:
    """λ_s = |V|·softmax_{s∈V}(D_s/T) per sequence (B,), λ = 1 outside V.  §4.2.  Weights average to 1 over V."""
    lam = np.ones_like(D)
    keys = [k for k in np.unique(g) if valid[g == k].all()]
    if not keys:
        return lam
    d = np.array([D[g == k][0] for k in keys]) / temperature  # (|V|,)
    w = np.exp(d - d.max())
    w = len(keys) * w / w.sum()
    for k, wk in zip(keys, w):
        lam[g == k] = wk
    return lam


def valid_token_factor(M: np.ndarray, valid: np.ndarray) -> float:
    """κ = (# response tokens) / (# response tokens of valid questions); 1 when no valid question has a token.  §4.3."""
    n_valid = M[valid].sum()
    return float(M.sum() / n_valid) if n_valid > 0 else 1.0


def dgpo_difficulty_advantage(rewards, group, mask, config: DGPOConfig | None = None, accuracy=None) -> np.ndarray:
    """DGPO advantage (B, T): κ·λ_s·Â_DG,i broadcast over each response, 0 at masked positions.

    Args: rewards (B,) finite; group (B,) integer prompt ids; mask (B, T) bool; ``accuracy`` (B,) optional
    accuracy reward for the difficulty (default: ``rewards``).
    """
    cfg = config or DGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    acc = R if accuracy is None else finite_vector(accuracy, "accuracy", R.shape[0])
    valid = valid_questions(R, g)
    A = dgae(R, g, cfg.eps)
    if cfg.dqw:
        A = A * dqw(difficulty(acc, g, cfg.all_wrong), valid, g, cfg.temperature)
    if cfg.valid_token_mean:
        A = A * valid_token_factor(M, valid)
    return broadcast_to_tokens(A, M)


_CODE = "AMAP-ML/MathForge trl-0.20.0/trl/trainer/grpo_trainer.py (_generate_and_score_completions)"
_NOTE = "the paper's method section was read through a third-party summary (papernotes, ICLR 2026 notes)"

EQUATIONS = (
    Equation("grpo-magnitude", "Σ_i |Â_GR,i| = 2G·√(p(1−p)) (binary rewards, population std)",
             "arXiv 2601.20614 §3 (Thm 1)", "secondary", "", note=_NOTE + "; checked here by exact enumeration"),
    Equation("dgae", "Â_DG,i = (r_i − mean r) / MAD(r),  MAD = (1/G) Σ|r_j − mean r|", "arXiv 2601.20614 §4.1",
             "official-code", "dgae",
             note=f"{_CODE}: G·(r − mean)/(Σ|r − mean| + 1e-4); the paper's form has no ε (eps option)"),
    Equation("dgae-balance", "Σ_i |Â_DG,i| = G for any non-constant group", "arXiv 2601.20614 §4.1 (Thm 2)",
             "secondary", "dgae", note=_NOTE),
    Equation("dqw", "λ_s = |V|·exp(D_s/T) / Σ_{s'∈V} exp(D_{s'}/T),  D_s = −mean acc_s,  T = 2", "arXiv 2601.20614 §4.2",
             "official-code", "dqw",
             note=f"{_CODE}: softmax over the non-constant groups times their number, weight 1 elsewhere, difficulty "
                  "from the first (accuracy) reward function; dgpo_dqw_temp = 2.0 in grpo_config.py; the code "
                  "counts an all-wrong group as solved (all_wrong='code')"),
    Equation("valid-token-mean", "κ = (# tokens) / (# tokens of valid questions), A ← κ·A", "arXiv 2601.20614 §4.3",
             "official-code", "valid_token_factor",
             note=f"{_CODE}: zero_mask_ratio; the world-size balancing factor is replaced by rlspec's global normalizer"),
)

register(Spec(
    name="dgpo_difficulty", kind="advantage", family="advantage", paper=DGPO_PAPER, status="implemented",
    summary="difficulty-balanced group advantage (mean-absolute-deviation normalization, Σ|Â| = G per question) "
            "with softmax question weights that favour harder questions; feeds GRPO's loss",
    fn=dgpo_difficulty_advantage, config_cls=DGPOConfig, equations=EQUATIONS, outputs=("adv",),
    extras={"dgae": dgae, "dqw": dqw, "difficulty": difficulty, "valid_questions": valid_questions,
            "valid_token_factor": valid_token_factor},
    properties=(
        "properties/test_dgpo_difficulty.py::test_grpo_update_magnitude_follows_accuracy: Thm 1, Σ|Â_GR| = "
        "2G√(p(1−p)) (population std) and 2√(G(G−1))√(p(1−p)) (sample std), exact enumeration",
        "properties/test_dgpo_difficulty.py::test_dgae_update_magnitude_is_group_size: Thm 2, Σ|Â_DG| = G for any "
        "non-constant group",
        "properties/test_dgpo_difficulty.py::test_dgae_is_zero_sum_and_affine_invariant: Σ Â_DG = 0; r → a·r + b leaves it",
        "properties/test_dgpo_difficulty.py::test_question_weights_average_to_one: mean over valid questions of λ = 1",
        "properties/test_dgpo_difficulty.py::test_question_weights_favour_harder_questions: λ strictly decreasing in "
        "accuracy; T → ∞ gives λ ≡ 1",
        "properties/test_dgpo_difficulty.py::test_weighted_advantages_keep_zero_sum_and_signs",
        "properties/test_dgpo_difficulty.py::test_valid_token_mean_composes_with_ppo: token-mean PPO on κ·A equals "
        "the token mean over valid questions only (the paper's loss)",
        "properties/test_dgpo_difficulty.py::test_code_variants: eps=1e-4 and all_wrong='code' as in the official code",
        "properties/test_dgpo_difficulty.py::test_degenerate_groups_and_bad_input",
        "properties/test_dgpo_difficulty.py::test_every_accuracy_pattern_enumerated: all 0/1 patterns of two "
        "questions, mass λ_s·G per valid question",
        "properties/test_dgpo_difficulty.py::test_optimized_matches_reference_with_accuracy",
        "untested: the paper's empirical claims (accuracy gains of DGPO and MQR on math benchmarks) — they need "
        "model training at scale; MQR (LLM question rewriting) has no equation to check",
    ),
))

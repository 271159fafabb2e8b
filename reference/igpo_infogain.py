"""IGPO: Information Gain-based Policy Optimization for multi-turn LLM agents.

Wang, Dai, Ye, Gan, Yao, Deng, Wu, Ying, "Information Gain-based Policy Optimization: A Simple and Effective
Approach for Multi-Turn LLM Agents", arXiv 2510.14967 (ICLR 2026). Official code: github.com/GuoqingWang1/IGPO
(read: ``scrl/llm_agent/generation.py`` ``run_llm_loop``, ``verl/utils/reward_score/info_gain.py``,
``verl/trainer/ppo/core_algos.py``). The official repository's February-2026 update (changelog "Flexible Info
Gain Reward Calculation", "Reward Normalization Modes", turn-level accumulation; commit 745078b by the same
committer as the official repo) was read in the public fork github.com/debajoycs98/IGPO, whose later commits do
not touch these files (``verl/trainer/ppo/core_algos.py`` ``compute_grpo_outcome_advantage`` +
``_compute_turn_level_advantage``, ``scrl/llm_agent/generation.py``, ``train.sh``). The paper text itself was
not reachable beyond its abstract; the IG formula of its method section was read in a third-party review quoting it.

Where it sits in the pipeline: REWARD (dense turn-level rewards from the policy's own belief in the ground truth,
plus the outcome reward on the answer turn) → ADVANTAGE (per-type group normalization, discounted turn returns,
broadcast over the turn's tokens) → any clipped token loss (the paper uses GRPO/PPO clipping + KL).

Setting and notation: trajectory i (row of the batch) has n_i agent turns k = 0 … n_i − 1 (0-based; the last one,
k = n_i − 1, gives the final answer); ``turn`` (B, T) holds each token's turn index, −1 outside trainable turns
(prompt, tool output); n_i = 1 + the largest turn index among row i's valid tokens. C_{i,k} is the context
before turn k (the prompt and turns 0 … k − 1 with their tool responses). a = (a_1 … a_L) is the ground-truth
answer, teacher-forced after C_{i,k} (gradient stopped):

    s_{i,k}   = (1/L) Σ_j log π_θ(a_j | C_{i,k}, a_<j)                 confidence before turn k     (method: IG reward)
    f(s)      = exp(s) (ig_type="prob": the geometric-mean probability of a, the paper and the code's default)
                or s    (ig_type="log_prob": the updated code's ``log_prob_diff`` option)
    r_{i,k}   = f(s_{i,k+1}) − f(s_{i,k})           k = 0 … n_i − 2    information gain of turn k    (method: IG reward)
    r_{i,n−1} = r^O_i                              outcome reward of the answer turn (F1 in the paper; input)
    r̃         = (r − μ_type)/(σ_type + ε)          per-type group z-score: IG cells and outcome cells of the
                                                   prompt group are normalized separately               (method: advantage)
    R̃_{i,k}   = Σ_{m=k}^{n_i−1} γ^{m−k} r̃_{i,m}     discounted turn return                              (method: advantage)
    A_{i,t}   = R̃_{i, turn_t}                      every valid token of turn k gets R̃_{i,k}; turn −1 ⇒ 0

Statistics (from the updated code, ``normalization="separate"``): μ and σ of a type are taken over all cells of
that type in the prompt group (IG pooled over every intermediate turn of every rollout; outcome over the rollouts
with at least one turn), σ is the population std (``ddof=0``), ε = 1e-6 is added outside. A type with one cell,
or with all cells equal, is normalized to 0. ``normalization="joint"`` pools both types (the code's other mode);
``"none"`` keeps the raw rewards. ``std_normalize=False`` subtracts the mean only.

Paper/code differences (recorded, see the registry entries): (1) the first public code snapshot scores IG with
probabilities (``prob``) and builds the advantage as a token-level return-to-go minus a *position-wise* group
mean without std division — not the paper's per-type normalization; the updated code implements the per-type
normalization (``separate``) and adds ``log_prob`` IG; its ``train.sh`` runs ``log_prob``/``separate``/γ = 1.
We implement the paper (prob IG, separate, γ = 1) with both IG types and both normalizations as options; the
first snapshot's position-wise baseline is not exposed (it aligns token positions across different rollouts,
which has no turn-level meaning). (2) The code's σ is √(var + 1e-8) (ours: √var, a difference below 1e-8
relative unless σ is tiny) and its turn boundaries are read from nonzero token rewards, so an IG of exactly 0
is silently dropped from the statistics and merged into the next turn; ours uses ``turn`` and keeps it.

Numerics and defined cases: masked positions and turn/confidence entries beyond a row's n_i are never read
(garbage allowed); a row without valid tokens has n = 0, no cells and advantage 0; a row with n = 1 has only
the outcome cell; rows with n ≥ 1 need at least one answer token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, in_range, positive
from rlspec.reference.a2tgpo import turn_broadcast, turn_counts, validate_turn
from rlspec.reference.grpo import validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

IGPO_PAPER = Paper(arxiv="2510.14967", title="Information Gain-based Policy Optimization: A Simple and Effective "
                   "Approach for Multi-Turn LLM Agents", year=2025)
IG_TYPES = ("prob", "log_prob")
NORMALIZATIONS = ("separate", "joint", "none")


@dataclass(frozen=True)
class IGPOConfig:
    """IGPO. ig_type: "prob" (f = exp s, paper and code default) or "log_prob" (f = s, updated code option).
    normalization: "separate" (per reward type, paper), "joint" (both types pooled, code option) or "none".
    std_normalize: divide by σ (True) or only centre. gamma: γ ∈ [0, 1] of the turn return (1.0, paper and
    train.sh). eps: ε added to σ (1e-6, code). ddof: 0 (population std, code) or 1."""

    ig_type: str = "prob"
    normalization: str = "separate"
    std_normalize: bool = True
    gamma: float = 1.0
    eps: float = 1e-6
    ddof: int = 0

    def __post_init__(self) -> None:
        choice(self.ig_type, "ig_type", IG_TYPES)
        choice(self.normalization, "normalization", NORMALIZATIONS)
        in_range(self.gamma, "gamma", 0.0, 1.0)
        positive(self.eps, "eps", allow_zero=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")


# --------------------------------------------------------------------------- belief and information gain
def validate_gt_logp(gt_logp, answer_mask, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gt_logp (B, K, L) float64 with unread entries 0, answer_mask (B, L) bool).

    gt_logp[i, k, j] = log π(a_j | C_{i,k}, a_<j), read only where k < n_i and answer_mask[i, j]."""
    a = np.asarray(gt_logp)
    B = n.shape[0]
    if a.ndim != 3 or a.shape[0] != B:
        raise fail("gt_logp", f"shape {a.shape}", f"shape (B, K, L) with B = {B}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise fail("gt_logp", f"dtype {a.dtype}", "real-valued log-probabilities")
    if n.size and n.max() > a.shape[1]:
        raise fail("gt_logp", f"K = {a.shape[1]} contexts", f"at least {int(n.max())} (one before each turn)")
    am = as_mask(answer_mask, "answer_mask", (B, a.shape[2]))
    empty = (n > 0) & ~am.any(axis=1)
    if empty.any():
        raise fail("answer_mask", f"no answer token in row {int(np.argmax(empty))}",
                   "at least one ground-truth answer token for every row with a turn")
    live = (np.arange(a.shape[1])[None, :, None] < n[:, None, None]) & am[:, None, :]  # (B, K, L)
    a = a.astype(np.float64)
    bad = live & ~np.isfinite(a)
    if bad.any():
        i, k, j = np.argwhere(bad)[0]
        raise fail("gt_logp", f"a non-finite value {a[i, k, j]} at row {i}, context {k}, answer token {j}",
                   "finite log-probabilities before every turn k < n_i, at answer tokens")
    return np.where(live, a, 0.0), am


def confidence(gt_logp: np.ndarray, answer_mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    """s (B, K): s_{i,k} = (1/L_i) Σ_j log π(a_j | C_{i,k}, a_<j) for k < n_i, 0 elsewhere (method: IG reward)."""
    L = np.maximum(answer_mask.sum(axis=1), 1)[:, None]  # (B, 1) answer length
    s = np.where(answer_mask[:, None, :], gt_logp, 0.0).sum(axis=2) / L  # (B, K)
    return np.where(np.arange(s.shape[1])[None, :] < n[:, None], s, 0.0)


def belief(s: np.ndarray, ig_type: str = "prob") -> np.ndarray:
    """f(s): exp(s), the geometric-mean probability of the answer ("prob"), or s itself ("log_prob")."""
    return np.exp(s) if ig_type == "prob" else np.asarray(s, dtype=np.float64)


def ig_rewards(s: np.ndarray, n: np.ndarray, ig_type: str = "prob") -> np.ndarray:
    """r^IG (B, K): r_{i,k} = f(s_{i,k+1}) − f(s_{i,k}) for k ≤ n_i − 2 (turns before the answer), 0 elsewhere."""
    B, K = s.shape
    f = belief(s, ig_type)
    r = np.zeros((B, K))
    if K > 1:
        r[:, :-1] = f[:, 1:] - f[:, :-1]
    return np.where(np.arange(K)[None, :] < (n - 1)[:, None], r, 0.0)


def turn_rewards(r_ig: np.ndarray, outcome: np.ndarray, n: np.ndarray) -> np.ndarray:
    """r (B, K): the IG rewards of the intermediate turns and r^O_i on the answer turn k = n_i − 1."""
    r = r_ig.copy()
    rows = np.flatnonzero(n > 0)
    r[rows, n[rows] - 1] = outcome[rows]
    return r


def cell_types(n: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """(ig_cells, outcome_cells) (B, K) bool: k < n_i − 1 and k = n_i − 1."""
    k = np.arange(K)[None, :]
    return k < (n - 1)[:, None], (k == (n - 1)[:, None]) & (n[:, None] > 0)


def _zscore_cells(r: np.ndarray, cells: np.ndarray, g: np.ndarray, cfg: IGPOConfig) -> np.ndarray:
    """(r − μ)/(σ + ε) over the cells of each prompt group, 0 elsewhere; one cell or all equal ⇒ 0."""
    out = np.zeros_like(r)
    for key in np.unique(g):
        sel = cells & (g == key)[:, None]
        x = r[sel]
        if x.size <= 1 or (x == x[0]).all():
            continue
        z = x - x.mean()
        if cfg.std_normalize:
            z = z / (x.std(ddof=cfg.ddof) + cfg.eps)
        out[sel] = z
    return out


def normalize_rewards(r: np.ndarray, n: np.ndarray, g: np.ndarray, cfg: IGPOConfig) -> np.ndarray:
    """r̃ (B, K): per-type ("separate"), pooled ("joint") or no ("none") group normalization of the turn rewards."""
    ig_cells, out_cells = cell_types(n, r.shape[1])
    if cfg.normalization == "none":
        return np.where(ig_cells | out_cells, r, 0.0)
    if cfg.normalization == "joint":
        return _zscore_cells(r, ig_cells | out_cells, g, cfg)
    return _zscore_cells(r, ig_cells, g, cfg) + _zscore_cells(r, out_cells, g, cfg)


def turn_returns(r: np.ndarray, n: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """R̃ (B, K): R̃_{i,k} = Σ_{m=k}^{n_i−1} γ^{m−k} r_{i,m} (backward recursion R̃_k = r_k + γ R̃_{k+1}); 0 for k ≥ n_i."""
    B, K = r.shape
    R = np.zeros((B, K + 1))
    for k in range(K - 1, -1, -1):
        R[:, k] = np.where(k < n, r[:, k] + gamma * R[:, k + 1], 0.0)
    return R[:, :K]


def confidence_from_model(logprob_fn, contexts, answer) -> np.ndarray:
    """s (n,) for ONE trajectory from a user-supplied teacher-forced scorer (the part that needs the LLM).

    ``contexts[k]`` is C_k (the prompt plus turns < k with their tool responses, in whatever form the scorer
    takes); ``logprob_fn(context, answer)`` returns the answer's per-token log-probs (1-D, L ≥ 1), computed
    without gradient. The official code scores all contexts of a batch in one forward pass; this is the plain
    loop that defines what that pass computes."""
    s = []
    for k, ctx in enumerate(contexts):
        lp = finite_vector(logprob_fn(ctx, answer), f"logprob_fn(contexts[{k}])")
        if lp.size == 0:
            raise fail(f"logprob_fn(contexts[{k}])", "an empty array", "the log-probs of at least one answer token")
        s.append(lp.mean())
    return np.asarray(s, dtype=np.float64)


# --------------------------------------------------------------------------- public functions
def igpo_turn_rewards(gt_logp, answer_mask, n_turns, outcome, config: IGPOConfig | None = None):
    """IGPO dense turn rewards: (confidence s (B, K), turn rewards r (B, K)).

    Args: gt_logp (B, K, L): teacher-forced log-probs of the ground-truth answer tokens after each context C_{i,k}
    (k = 0: the prompt only); answer_mask (B, L) bool; n_turns (B,) int ≥ 0 number of agent turns; outcome (B,)
    the answer-turn reward r^O (F1 in the paper). Cells k ≥ n_i are 0 in both outputs.
    """
    cfg = config or IGPOConfig()
    n = np.asarray(n_turns)
    if n.ndim != 1 or not np.issubdtype(n.dtype, np.integer) or (n < 0).any():
        raise fail("n_turns", f"{n.dtype} array of shape {n.shape}", "a 1-D array of non-negative integers")
    n = n.astype(np.int64)
    R = finite_vector(outcome, "outcome", n.shape[0])
    lp, am = validate_gt_logp(gt_logp, answer_mask, n)
    s = confidence(lp, am, n)
    return s, turn_rewards(ig_rewards(s, n, cfg.ig_type), R, n)


def igpo_signals(rewards, group, mask, config: IGPOConfig | None = None, *, turn, gt_logp, answer_mask):
    """(adv (B, T), turn returns R̃ (B, K), normalized rewards r̃ (B, K), raw turn rewards r (B, K))."""
    cfg = config or IGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    tr = validate_turn(turn, M)
    n = turn_counts(tr, M)
    lp, am = validate_gt_logp(gt_logp, answer_mask, n)
    r = turn_rewards(ig_rewards(confidence(lp, am, n), n, cfg.ig_type), R, n)
    rt = normalize_rewards(r, n, g, cfg)
    ret = turn_returns(rt, n, cfg.gamma)
    return turn_broadcast(ret, tr, M & (tr >= 0)), ret, rt, r


def igpo_advantage(rewards, group, mask, config: IGPOConfig | None = None, *, turn, gt_logp, answer_mask):
    """IGPO token advantages (B, T): A = R̃_{i, turn_t} at valid tokens of trainable turns, 0 elsewhere.

    Args: rewards (B,) outcome rewards r^O; group (B,) prompt ids; mask (B, T) bool; turn (B, T) int (−1 outside
    trainable turns); gt_logp (B, K, L) ground-truth answer log-probs before each turn (K ≥ n_i); answer_mask (B, L).
    """
    return igpo_signals(rewards, group, mask, config, turn=turn, gt_logp=gt_logp, answer_mask=answer_mask)[0]


# --------------------------------------------------------------------------- inputs and registry
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _turn_layout(rng: np.random.Generator, B: int, K: int, T: int):
    """(mask, turn): agent turns of 1–3 tokens, tool-output tokens (turn −1; some left in the mask) between them,
    right padding with garbage turn ids; some rows empty."""
    mask = np.zeros((B, T), bool)
    turn = rng.integers(-5, 50, size=(B, T))
    for b in range(B):
        n_b = int(rng.integers(0, K + 1)) if rng.random() < 0.15 else int(rng.integers(1, K + 1))
        t = 0
        for k in range(n_b):
            for _ in range(int(rng.integers(1, 4))):
                if t < T:
                    mask[b, t], turn[b, t], t = True, k, t + 1
            for _ in range(int(rng.integers(0, 3)) if k < n_b - 1 else 0):
                if t < T:
                    mask[b, t], turn[b, t], t = bool(rng.random() < 0.3), -1, t + 1
    return mask, turn


def _gt_logp(rng: np.random.Generator, B: int, K: int, L: int, n: np.ndarray):
    """Ground-truth log-probs (B, K, L) drifting upward over turns, garbage beyond n_i and off the answer mask."""
    am = np.zeros((B, L), bool)
    for b in range(B):
        am[b, : int(rng.integers(1, L + 1))] = True
    base = -rng.gamma(2.0, 1.0, size=(B, 1, L))
    drift = np.cumsum(rng.normal(0.3, 0.6, size=(B, K, 1)), axis=1)
    lp = np.minimum(base + drift, -1e-3)
    live = (np.arange(K)[None, :, None] < n[:, None, None]) & am[:, None, :]
    return np.where(live, lp, rng.choice(GARBAGE, size=lp.shape)), am


def _group(rng: np.random.Generator, B: int) -> np.ndarray:
    return np.sort(rng.integers(0, max(1, B // 3), size=B)) + 7  # prompts with 1–5 rollouts


def _advantage_inputs(rng: np.random.Generator) -> dict:
    B, K, T, L = int(rng.integers(1, 10)), int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(1, 4))
    mask, turn = _turn_layout(rng, B, K, T)
    n = turn_counts(np.where(mask, turn, -1), mask)
    lp, am = _gt_logp(rng, B, K, L, n)
    binary = rng.random() < 0.5
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if binary else rng.uniform(0.0, 1.0, size=B)
    return {"rewards": rewards, "group": _group(rng, B), "mask": mask, "turn": turn, "gt_logp": lp,
            "answer_mask": am}


def _reward_inputs(rng: np.random.Generator) -> dict:
    B, K, L = int(rng.integers(1, 8)), int(rng.integers(1, 6)), int(rng.integers(1, 5))
    n = rng.integers(0, K + 1, size=B)
    lp, am = _gt_logp(rng, B, K, L, n)
    return {"gt_logp": lp, "answer_mask": am, "n_turns": n, "outcome": rng.uniform(0.0, 1.0, size=B)}


_CODE = "official code GuoqingWang1/IGPO scrl/llm_agent/generation.py (run_llm_loop)"
_CODE2 = ("the official repository's Feb-2026 update (commit 745078b by the official repo's committer, read in the fork "
          "debajoycs98/IGPO whose later commits leave these files unchanged): verl/trainer/ppo/core_algos.py "
          "compute_grpo_outcome_advantage + _compute_turn_level_advantage, train.sh")
_W_IG = "method: turn-level IG reward (section number not verified)"
_W_ADV = "method: advantage estimation (section number not verified)"
EQUATIONS = (
    Equation("igpo-confidence", "s_{i,k} = (1/L) Σ_j log π_θ(a_j | C_{i,k}, a_<j), teacher-forced, no gradient",
             _W_IG, "official-code", "confidence",
             note=_CODE + ": the mean of the gt answer's token log-probs after each context; the paper's formula "
                          "(exp of this mean) was read in a third-party review quoting the method"),
    Equation("igpo-info-gain", "r_{i,k} = f(s_{i,k+1}) − f(s_{i,k}), f = exp (paper) or identity (log_prob option), "
             "k < n_i − 1", _W_IG, "official-code", "ig_rewards",
             note=_CODE + " (prob difference, step-0 baseline = the prompt only); the updated code adds "
                          "info_gain_type=log_prob_diff, which its train.sh uses (option ig_type='log_prob'); our "
                          "notes had the paper as a log-prob difference, the review quoting the method and both code "
                          "versions say probability"),
    Equation("igpo-outcome", "r_{i,n_i−1} = r^O_i (F1 of the answer; the code gives −2 for a format error)", _W_IG,
             "official-code", "turn_rewards",
             note="verl/utils/reward_score/info_gain.py compute_score/compute_f1: IG at the last token of each "
                  "intermediate turn, F1 at the last response token; r^O is an input here"),
    Equation("igpo-normalization", "r̃ = (r − μ_type)/(σ_type + ε), μ, σ over the prompt group's IG cells and over "
             "its outcome cells separately", _W_ADV, "official-code", "normalize_rewards",
             note=_CODE2 + ": info_gain_norm_mode=separate (population std, +1e-6 outside; count ≤ 1 ⇒ 0), "
                           "'joint' pools both types (option); the first snapshot instead subtracts a "
                           "position-wise group mean of token returns without std (not exposed)"),
    Equation("igpo-turn-return", "R̃_{i,k} = Σ_{m=k}^{n_i−1} γ^{m−k} r̃_{i,m}; A_{i,t} = R̃_{i,turn_t}", _W_ADV,
             "official-code", "turn_returns",
             note=_CODE2 + ": turn-level backward accumulation then broadcast to the turn's tokens; γ = 1 "
                           "(algorithm.gamma=1.0 in train.sh)"),
)

_SUMMARY = ("multi-turn credit: turn reward = gain in the policy's own probability of the ground-truth answer, "
            "outcome on the answer turn; per-type group z-scores, discounted turn returns (reward → advantage)")
_PROPS_REWARD = (
    "properties/test_igpo_infogain.py::test_ig_telescopes: Σ_k r^IG_{i,k} = f(s_{n−1}) − f(s_0) (both IG types)",
    "properties/test_igpo_infogain.py::test_confidence_is_mean_answer_logprob: s = mean of the answer's token "
    "log-probs; prob IG = difference of geometric-mean probabilities, |r^IG| < 1",
    "properties/test_igpo_infogain.py::test_callable_matches_arrays: the model-scoring helper equals the array path",
    "untested: maximizing the IG process reward minimises an upper bound on snowball error accumulation (the "
    "paper's theoretical analysis; its exact statement and assumptions could not be read here)",
    "untested: IGPO beats GRPO and process-reward baselines on in- and out-of-domain search QA with better sample "
    "efficiency — an empirical claim about search-agent training",
)

register(Spec(
    name="igpo_infogain", kind="reward", family="multi-turn", paper=IGPO_PAPER, status="implemented",
    summary="turn-level information-gain rewards from the policy's belief in the ground truth (+ outcome reward)",
    fn=igpo_turn_rewards, config_cls=IGPOConfig, equations=EQUATIONS[:3], outputs=("confidence", "rewards"),
    make_inputs=_reward_inputs, properties=_PROPS_REWARD,
    gradient="not a loss: rewards are constants (the ground-truth log-probs are computed without gradient); "
             "pair with igpo_advantage and a clipped token loss",
    extras={"confidence": confidence, "ig_rewards": ig_rewards, "turn_rewards": turn_rewards,
            "confidence_from_model": confidence_from_model,
            "conformance_configs": lambda: [("log_prob", {"ig_type": "log_prob"}, f"make-inputs-{i}")
                                            for i in range(3)]},
))

register(Spec(
    name="igpo_advantage", kind="advantage", family="multi-turn", paper=IGPO_PAPER, status="implemented",
    summary=_SUMMARY, fn=igpo_advantage, config_cls=IGPOConfig, equations=EQUATIONS, outputs=("adv",),
    make_inputs=_advantage_inputs,
    properties=(
        "properties/test_igpo_infogain.py::test_turn_zero_return_telescopes: γ = 1, no normalization ⇒ R̃_{i,0} = "
        "f(s_{n−1}) − f(s_0) + r^O (IG credit depends on the path only through its end points)",
        "properties/test_igpo_infogain.py::test_separate_normalization_zero_mean_unit_std: per prompt group, the IG "
        "cells and the outcome cells each have mean 0 and population std 1 (up to ε)",
        "properties/test_igpo_infogain.py::test_joint_normalization_pools_types: 'joint' = one z-score over both",
        "properties/test_igpo_infogain.py::test_outcome_affine_invariance: 'separate' is invariant to a positive "
        "affine map of r^O (and of f for the IG cells)",
        "properties/test_igpo_infogain.py::test_returns_match_explicit_sum: backward recursion = Σ γ^{m−k} r̃_m",
        "properties/test_igpo_infogain.py::test_advantage_constant_within_turn: tokens of a turn share R̃; turn −1 ⇒ 0",
        "properties/test_igpo_infogain.py::test_no_advantage_collapse: abstract (i): a group whose outcomes are all equal "
        "(GRPO advantage 0) still gets a nonzero advantage when its turns' IG differ",
        "properties/test_igpo_infogain.py::test_degenerate_cases_defined: empty rows, n = 1, singleton groups",
        "properties/test_igpo_infogain.py::test_padding_never_read: garbage beyond n_i / off the masks is ignored",
        "properties/test_igpo_infogain.py::test_composition_with_ppo: IGPO advantages into registry ppo: dlogp "
        "= −A/N at ratio 1, 0 on tool tokens",
        "properties/test_igpo_infogain.py::test_bad_input_raises",
        "properties/test_igpo_infogain.py::test_inputs_not_mutated: pure functions leave the caller's arrays unchanged",
    ),
    extras={"igpo_signals": igpo_signals, "normalize_rewards": normalize_rewards, "turn_returns": turn_returns,
            "conformance_configs": lambda: [
                (name, ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("log_prob,gamma=0.9", {"ig_type": "log_prob", "gamma": 0.9}),
                    ("joint,ddof=1", {"normalization": "joint", "ddof": 1}),
                    ("none", {"normalization": "none"}))]},
))

"""XRPO: uncertainty-reduction rollout allocation, in-context seeding and novelty-aware advantage sharpening.

Bamba, Fang, Yu, Zheng, Lai, "XRPO: Pushing the limits of GRPO with Targeted Exploration and Exploitation",
arXiv 2510.06672 (2025; v3 2026). Official code: github.com/UIUC-MLSys/XRPO (not reachable from here).

Place in the pipeline: BUDGET PER PROMPT (the allocator), the PROMPT ITSELF for zero-reward prompts (in-context
seeding) and the ADVANTAGE (sharpening); the loss stays GRPO/PPO::

    ... n_q ≥ 2 first rollouts per prompt, rewards ...
    extra, priority = xrpo_allocate(rewards, group, budget, total_rollouts=state.T)   # budget per prompt (a phase)
    ... extra[q] more rollouts of prompt q; repeat phases while budget remains ...
    seeds = icl_seed(rewards, group, state, retrieve)        # zero-reward prompts get solved exemplars (callable)
    adv  = xrpo_sharpen(rewards, old_logp, group, mask)      # GRPO advantage + novelty bonus for correct rollouts
    loss = registry.get("ppo")(logp, old_logp, adv, mask)
    state = update(state, rewards, group, responses)          # rollout counter T and the success corpus

Equations (q a prompt with n_q rollouts whose rewards have sample std s_q; T the number of rollouts so far)::

    CI half-width   h_q(n) = t_{1−α/2, n−1} · s_q / √n                       (Student t, n ≥ 2)
    reduction       Δ̂_q = h_q(n_q) − h_q(n_q + 1)                            (> 0 for s_q > 0, decreasing in n)
    bonus           φ_q = λ · √(log(1 + T) / n_q)
    priority        Π_q = Δ̂_q + φ_q;  each of the phase's rollouts goes to argmax_q Π_q, then n_q ← n_q + 1
    novelty         s(y) = (1/|y|) Σ_t log π(y_t | x, y_<t),   η_i = exp(s_i − s̄_g)
    sharpening      A⁺_i = A_i + min(max(λ_nov (1 − η_i), 0), κ A_i)   for correct rollouts (A_i > 0)

Greedy allocation is exact here: Π_q(n) decreases in n (both terms do), so handing out units one at a time to
the largest marginal priority maximises Σ_q Σ_{k < e_q} Π_q(n_q + k) over all allocations with Σ e_q = budget;
with λ = 0 this is the largest total reduction of CI half-widths Σ_q [h_q(n_q) − h_q(n_q + e_q)].

Provenance. Only the abstract could be read in the paper itself. The half-width, Δ̂, the bonus and the
sharpening formula are from third-party material: a literature review quoting h_q(n) and a public module whose
docstring states s(y), η and A⁺ (with defaults λ_nov = κ = 1), as recorded in our notes (shared papers_B.md §12)
— ``secondary``. The meaning of T in the bonus (here: rollouts so far), the one-unit greedy phase, α = 0.05 and
λ = 0.1 are ours (``reconstructed``). ICL seeding is described only in words (inject solved exemplars into
zero-reward prompts); its retrieval and prompt format are a user-supplied callable here.

Which rollouts are sharpened: the notes give the bonus "for correct responses" with the cap κA_i; applied to a
negative A_i the formula would make it more negative by κ|A_i| whatever the novelty, so the default
``cap="positive"`` applies it only where A_i > 0 (for 0/1 rewards: exactly the correct rollouts of a mixed
group). ``cap="abs"`` is the third-party module's variant: min(max(λ_nov(1 − η), 0), κ|A_i|) added to EVERY
rollout (negative advantages then move toward 0, and flip sign when κ > 1).

Conventions (ours): prompts are ordered as ``np.unique(group)``; every prompt needs n_q ≥ 2 rollouts for s_q
(sample std, ddof = 1); ties in priority go to the lower prompt index. For sharpening, the base advantage is
the registry's GRPO (ddof = 1, ε = 1e-6, singleton groups 0); s_i is the masked mean of ``old_logp`` over row i
(the likelihood under the policy that sampled it); s̄_g is the mean over the group's rows that have a valid
token; a row without valid tokens gets η = 1 (no bonus). η is evaluated as exp(min(s_i − s̄_g, 0)) — the
bonus is clipped at 0 for η ≥ 1 anyway — so no overflow is possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, in_range, masked_array, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage
from rlspec.reference.registry import Equation, Paper, Spec, register

XRPO_PAPER = Paper(arxiv="2510.06672", title="XRPO: Pushing the limits of GRPO with Targeted Exploration and "
                   "Exploitation", year=2025)
CAPS = ("positive", "abs")


@dataclass(frozen=True)
class XRPOAllocConfig:
    """ci_alpha: α of the (1 − α) Student-t interval (ours: 0.05). lam: λ, weight of the exploration bonus
    (ours: 0.1; not recovered)."""

    ci_alpha: float = 0.05
    lam: float = 0.1

    def __post_init__(self) -> None:
        in_range(self.ci_alpha, "ci_alpha", 0.0, 1.0, lo_open=True, hi_open=True)
        positive(self.lam, "lam", allow_zero=True)


@dataclass(frozen=True)
class XRPOSharpenConfig:
    """lam_nov: λ_novelty and kappa: κ (third-party defaults 1.0 and 1.0; the paper's not recovered).
    cap: "positive" (bonus only where A_i > 0, capped at κA_i) or "abs" (every row, capped at κ|A_i|).
    ddof, eps: the GRPO base advantage's std convention."""

    lam_nov: float = 1.0
    kappa: float = 1.0
    cap: str = "positive"
    ddof: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        positive(self.lam_nov, "lam_nov", allow_zero=True)
        positive(self.kappa, "kappa", allow_zero=True)
        choice(self.cap, "cap", CAPS)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 or 1")
        positive(self.eps, "eps", allow_zero=True)


@dataclass(frozen=True)
class XRPOState:
    """T: rollouts generated so far (the bonus's counter). corpus: solved exemplars ((prompt id, response), ...)
    for in-context seeding. Never written in place."""

    T: int = 0
    corpus: tuple = ()


# ------------------------------------------------------------------------------------ allocator

def t_quantile(n: np.ndarray, ci_alpha: float) -> np.ndarray:
    """t_{1−α/2, n−1}, the two-sided Student-t critical value with n − 1 degrees of freedom (n ≥ 2)."""
    return stats.t.ppf(1.0 - ci_alpha / 2.0, np.asarray(n, dtype=np.float64) - 1.0)


def ci_halfwidth(s: np.ndarray, n: np.ndarray, ci_alpha: float) -> np.ndarray:
    """h(n) = t_{1−α/2, n−1} · s / √n."""
    n = np.asarray(n, dtype=np.float64)
    return t_quantile(n, ci_alpha) * np.asarray(s, dtype=np.float64) / np.sqrt(n)


def expected_reduction(s: np.ndarray, n: np.ndarray, ci_alpha: float) -> np.ndarray:
    """Δ̂ = h(n) − h(n + 1): the half-width one more rollout removes (s held fixed)."""
    return ci_halfwidth(s, n, ci_alpha) - ci_halfwidth(s, np.asarray(n) + 1, ci_alpha)


def exploration_bonus(n: np.ndarray, T: int, lam: float) -> np.ndarray:
    """φ = λ √(log(1 + T) / n)."""
    return lam * np.sqrt(math.log1p(T) / np.asarray(n, dtype=np.float64))


def priority(s: np.ndarray, n: np.ndarray, T: int, config: XRPOAllocConfig) -> np.ndarray:
    """Π = Δ̂ + φ (Q,)."""
    return expected_reduction(s, n, config.ci_alpha) + exploration_bonus(n, T, config.lam)


def greedy_allocate(s: np.ndarray, n: np.ndarray, budget: int, T: int, config: XRPOAllocConfig) -> np.ndarray:
    """extra (Q,) int, Σ extra = budget: each unit to argmax_q Π_q(n_q + extra_q) (ties: lowest q)."""
    extra = np.zeros(n.size, dtype=np.int64)
    for _ in range(budget):
        extra[int(np.argmax(priority(s, n + extra, T, config)))] += 1
    return extra


def prompt_stats(R: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt ids (Q,), n_q (Q,), s_q (Q,) sample std, ddof = 1)."""
    ids, inv = np.unique(g, return_inverse=True)
    n = np.bincount(inv, minlength=ids.size)
    return ids, n, np.array([sample_std(R[inv == k]) for k in range(ids.size)])


def sample_std(r: np.ndarray) -> float:
    """√(Σ (r − r̄)² / (n − 1)) of the sorted rewards (order-free, so equal groups tie exactly); 0 if all equal."""
    x = np.sort(r)
    if x[0] == x[-1]:
        return 0.0
    return float(np.sqrt(((x - x.sum() / x.size) ** 2).sum() / (x.size - 1)))


def xrpo_allocate(rewards, group, budget: int, total_rollouts: int = 0,
                  config: XRPOAllocConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One allocation phase.

    Args: rewards (B,) of the rollouts so far; group (B,) their prompt ids (every prompt ≥ 2 rollouts);
    budget: rollouts to hand out in this phase (≥ 0); total_rollouts: T, rollouts generated so far (≥ 0).
    Returns: (extra (Q,) int summing to budget, priority (Q,) = Π_q before the phase), in np.unique(group) order.
    """
    cfg = config or XRPOAllocConfig()
    R = finite_vector(rewards, "rewards")
    if R.size == 0:
        raise fail("rewards", "no rollouts", "the first rollouts of at least one prompt")
    g = group_ids(group, R.size)
    K = check_count(budget, "budget")
    T = check_count(total_rollouts, "total_rollouts")
    ids, n, s = prompt_stats(R, g)
    if (n < 2).any():
        q = ids[int(np.argmax(n < 2))]
        raise fail("group", f"prompt {q} with {n[n < 2][0]} rollout", "at least 2 rollouts per prompt (s_q needs them)")
    return greedy_allocate(s, n, K, T, cfg), priority(s, n, T, cfg)


def check_count(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise fail(name, repr(x), "an integer ≥ 0")
    return int(x)


# ----------------------------------------------------------------------------------- ICL seeding

def zero_reward_prompts(rewards, group) -> np.ndarray:
    """Prompt ids (sorted) whose rollouts all have reward ≤ 0: the groups ICL seeding targets."""
    R = finite_vector(rewards, "rewards")
    g = group_ids(group, R.size)
    ids = np.unique(g)
    return np.array([q for q in ids if R[g == q].max() <= 0], dtype=np.int64)


def icl_seed(rewards, group, state: XRPOState,
             retrieve: Callable[[int, tuple], Any]) -> dict[int, Any]:
    """{prompt id: retrieve(prompt id, corpus)} for every zero-reward prompt; the callable picks the solved
    exemplars (and may format the seeded prompt). Prompts are left out when the corpus is empty."""
    if not isinstance(state, XRPOState):
        raise fail("state", type(state).__name__, "an XRPOState")
    if not callable(retrieve):
        raise fail("retrieve", type(retrieve).__name__, "a callable (prompt id, corpus) -> seeded prompt")
    if not state.corpus:
        return {}
    return {int(q): retrieve(int(q), state.corpus) for q in zero_reward_prompts(rewards, group)}


def update(state: XRPOState, rewards, group, responses=None) -> XRPOState:
    """New state: T += B; the correct rollouts (reward > 0) join the corpus as (prompt id, response). Pure."""
    if not isinstance(state, XRPOState):
        raise fail("state", type(state).__name__, "an XRPOState")
    R = finite_vector(rewards, "rewards")
    g = group_ids(group, R.size)
    if responses is not None and len(responses) != R.size:
        raise fail("responses", f"length {len(responses)}", f"one response per rollout ({R.size})")
    solved = () if responses is None else tuple((int(g[i]), responses[i]) for i in np.flatnonzero(R > 0))
    return XRPOState(T=state.T + int(R.size), corpus=state.corpus + solved)


# ---------------------------------------------------------------------------------- sharpening

def sequence_logp_mean(old_logp: np.ndarray, M: np.ndarray) -> np.ndarray:
    """s_i = (1/|y_i|) Σ_t log π(y_it) over the valid tokens (B,); 0 for a row without valid tokens."""
    L = M.sum(axis=1)
    return np.divide(old_logp.sum(axis=1), L, out=np.zeros(M.shape[0]), where=L > 0)


def novelty(s: np.ndarray, g: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """η_i = exp(min(s_i − s̄_g, 0)) with s̄_g the mean of s over the group's valid rows; 1 for invalid rows.
    (Capping the exponent at 0 changes nothing downstream: the bonus is clipped at 0 for η ≥ 1.)"""
    eta = np.ones_like(s)
    for k in np.unique(g):
        rows = (g == k) & valid
        if rows.any():
            eta[rows] = np.exp(np.minimum(s[rows] - s[rows].mean(), 0.0))
    return eta


def sharpening_bonus(A: np.ndarray, eta: np.ndarray, lam_nov: float, kappa: float, cap: str) -> np.ndarray:
    """min(max(λ_nov (1 − η), 0), κ·A) where A > 0 ("positive"), or with κ|A| on every row ("abs")  (B,)."""
    raw = np.maximum(lam_nov * (1.0 - eta), 0.0)
    if cap == "abs":
        return np.minimum(raw, kappa * np.abs(A))
    return np.where(A > 0, np.minimum(raw, kappa * A), 0.0)


def xrpo_sharpen(rewards, old_logp, group, mask, config: XRPOSharpenConfig | None = None) -> np.ndarray:
    """Novelty-sharpened GRPO advantage (B, T): A⁺_i = A_i + bonus_i broadcast over row i's valid tokens.

    Args: rewards (B,); old_logp (B, T) log-probs of the sampled tokens under the sampling policy; group (B,)
    prompt ids; mask (B, T) bool.
    """
    cfg = config or XRPOSharpenConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    R = finite_vector(rewards, "rewards", M.shape[0])
    lp = masked_array(old_logp, "old_logp", M)
    g = group_ids(group, M.shape[0])
    A = grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))
    eta = novelty(sequence_logp_mean(lp, M), g, M.any(axis=1))
    return broadcast_to_tokens(A + sharpening_bonus(A, eta, cfg.lam_nov, cfg.kappa, cfg.cap), M)


# --------------------------------------------------------------------------------------- inputs

def make_alloc_inputs(rng: np.random.Generator) -> dict:
    """Q prompts × 2..5 first rollouts (binary or fractional rewards, all-equal groups included), a phase budget
    and a rollout counter."""
    Q = int(rng.integers(1, 7))
    n = rng.integers(2, 6, size=Q)
    group = np.repeat(rng.permutation(40)[:Q], n)
    p = rng.choice([0.0, 1.0, rng.random(), rng.random()], size=Q)
    rewards = (rng.random(group.size) < np.repeat(p, n)).astype(np.float64)
    if rng.random() < 0.3:
        rewards = np.round(rng.random(group.size), 2)
    perm = rng.permutation(group.size)
    return {"rewards": rewards[perm], "group": group[perm], "budget": int(rng.integers(0, 25)),
            "total_rollouts": int(rng.choice([0, 1, int(rng.integers(2, 10**5))]))}


def make_sharpen_inputs(rng: np.random.Generator) -> dict:
    """Groups of 0/1 (sometimes fractional) rewards, log-probs of varied scale, ragged masks with garbage padding."""
    B, T = int(rng.integers(1, 13)), int(rng.integers(1, 7))
    group = rng.integers(0, max(1, B // 3), size=B)
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.7 else rng.random(B)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    lp = -rng.exponential(float(rng.choice([0.1, 1.0, 3.0])), size=(B, T))
    pad = rng.choice(np.array([np.nan, np.inf, 5.0]), size=(B, T))
    return {"rewards": rewards, "old_logp": np.where(mask, lp, pad), "group": group, "mask": mask}


_NOTE = "shared papers_B.md §12"

register(Spec(
    name="xrpo", kind="sampler", family="sampling", paper=XRPO_PAPER, status="partial",
    summary="budget per prompt: each phase's rollouts go one at a time to the prompt whose Student-t confidence "
            "interval on the mean reward one more rollout would shrink most, plus a √(log(1+T)/n) bonus",
    fn=xrpo_allocate, config_cls=XRPOAllocConfig, outputs=("extra", "priority"), make_inputs=make_alloc_inputs,
    extras={"ci_halfwidth": ci_halfwidth, "expected_reduction": expected_reduction,
            "exploration_bonus": exploration_bonus, "priority": priority, "greedy_allocate": greedy_allocate,
            "zero_reward_prompts": zero_reward_prompts, "icl_seed": icl_seed, "update": update,
            "state_cls": XRPOState,
            "conformance_configs": lambda: [("no-bonus", {"lam": 0.0}), ("alpha=0.2,lam=1", {"ci_alpha": 0.2,
                                                                                              "lam": 1.0})]},
    missing="the paper's α, λ and phase schedule (how the budget is split into phases, caps per prompt) were not "
            "recovered — ours: α = 0.05, λ = 0.1, one greedy phase per call; T in the bonus is our reading (rollouts "
            "so far); ICL seeding's retrieval and prompt format are only described in words (user-supplied callable)",
    equations=(
        Equation("xrpo-ci", "h_q(n) = t_{1−α/2, n−1} · s_q / √n", "arXiv 2510.06672 §3 (rollout allocation)",
                 "secondary", "ci_halfwidth",
                 note=f"quoted by a third-party review of the paper; {_NOTE}; t quantile by scipy.stats.t.ppf"),
        Equation("xrpo-delta", "Δ̂_q = h_q(n_q) − h_q(n_q + 1)", "arXiv 2510.06672 §3", "secondary",
                 "expected_reduction", note=f"{_NOTE}; s_q held fixed; positive and decreasing in n (tested)"),
        Equation("xrpo-bonus", "φ_q = λ √(log(1 + T)/n_q),  Π_q = Δ̂_q + φ_q", "arXiv 2510.06672 §3", "secondary",
                 "priority", note=f"{_NOTE}; the meaning of T (here: rollouts so far) and λ are reconstructed"),
        Equation("xrpo-greedy", "repeat budget times: q* = argmax_q Π_q(n_q + e_q), e_q* += 1",
                 "arXiv 2510.06672 §3 (hierarchical allocation)", "reconstructed", "greedy_allocate",
                 note="'allocates the budget in phases to the highest priority' per secondary summaries; one-unit "
                      "greedy within a phase is ours (optimal for this decreasing priority, tested)"),
        Equation("xrpo-icl", "zero-reward prompt q (max_i r_i ≤ 0) → prompt seeded with retrieve(q, corpus)",
                 "arXiv 2510.06672 §3 (ICL seeding)", "reconstructed", "icl_seed",
                 note="described in words only; the retrieval/formatting is a user callable"),
    ),
    gradient="not a loss: integer rollout counts per prompt; the extra rollouts join their groups for the GRPO "
             "advantage and the PPO loss",
    properties=(
        "properties/test_xrpo.py::test_allocation_spends_exactly_the_budget",
        "properties/test_xrpo.py::test_marginal_gain_positive_and_decreasing: Δ̂ > 0 for s > 0, n ≥ 2, and "
        "decreasing in n (against scipy's t quantiles)",
        "properties/test_xrpo.py::test_zero_std_prompt_priority_is_bonus_only: s_q = 0 ⇒ Π_q = φ_q",
        "properties/test_xrpo.py::test_greedy_is_optimal_by_enumeration: greedy maximises the summed marginal "
        "priorities over all allocations",
        "properties/test_xrpo.py::test_no_bonus_minimises_total_ci_halfwidth: λ = 0 ⇒ Σ_q h_q(n_q + e_q) minimal, "
        "never above the uniform split",
        "properties/test_xrpo.py::test_bonus_grows_with_T_and_shrinks_with_n",
        "properties/test_xrpo.py::test_icl_seeding_targets_zero_reward_prompts_with_callable",
        "properties/test_xrpo.py::test_replay_state_step_by_step: T counter and success corpus replayed with the "
        "pure update; inputs never mutated",
        "properties/test_xrpo.py::test_allocation_drives_one_grpo_step: allocation → extra rollouts → grpo → "
        "xrpo_sharpen → ppo loss",
        "properties/test_xrpo.py::test_allocation_reduces_estimation_error_on_toy_prompts: expected squared error "
        "of the pass-rate estimates (exact) is lower than with a uniform split",
        "properties/test_xrpo.py::test_bad_input_raises",
        "untested: the paper's training results (up to +4% pass@1, +6% cons@32, 2.7× faster convergence) — need "
        "LLM training runs",
    ),
))

register(Spec(
    name="xrpo_sharpen", kind="advantage", family="advantage", paper=XRPO_PAPER, status="partial",
    summary="advantage: GRPO plus a novelty bonus min(max(λ(1 − η), 0), κA) for correct rollouts whose mean "
            "log-likelihood is below their group's (η = exp(s − s̄) < 1)",
    fn=xrpo_sharpen, config_cls=XRPOSharpenConfig, outputs=("adv",), make_inputs=make_sharpen_inputs,
    extras={"sequence_logp_mean": sequence_logp_mean, "novelty": novelty, "sharpening_bonus": sharpening_bonus,
            "conformance_configs": lambda: [("abs-cap", {"cap": "abs"}), ("kappa=0.3", {"kappa": 0.3}),
                                            ("lam_nov=5", {"lam_nov": 5.0, "ddof": 0})]},
    missing="λ_nov and κ of the paper were not recovered (third-party defaults 1.0, 1.0); which rollouts the bonus "
            "applies to (correct only, our default, vs all with |A| as in a third-party module) is not confirmed",
    equations=(
        Equation("xrpo-novelty", "s(y) = (1/|y|) Σ_t log π(y_t|·),  η_i = exp(s_i − s̄_g)",
                 "arXiv 2510.06672 §4 (advantage sharpening)", "secondary", "novelty",
                 note=f"stated in a third-party module docstring ({_NOTE}); s̄_g over the group's rows with a token"),
        Equation("xrpo-sharpen", "A⁺_i = A_i + min(max(λ_nov(1 − η_i), 0), κ·A_i)", "arXiv 2510.06672 §4",
                 "secondary", "sharpening_bonus",
                 note="as in the third-party docstring; that module's code caps by κ|A_i| for every row (cap='abs'); "
                      "we apply it to A_i > 0 only (cap='positive'), the 'correct responses' of the abstract"),
    ),
    gradient="not a loss: A⁺ is a constant weight per sequence for the policy loss; no gradient flows through η "
             "(computed from the sampling policy's old_logp)",
    properties=(
        "properties/test_xrpo.py::test_bonus_bounded_and_sign_preserving: 0 ≤ A⁺ − A ≤ κA for A > 0; A⁺ = A "
        "elsewhere; η ≥ 1 ⇒ no bonus; sign never flips",
        "properties/test_xrpo.py::test_sharpen_matches_hand_formula",
        "properties/test_xrpo.py::test_zero_lambda_or_kappa_is_grpo: λ_nov = 0 or κ = 0 gives registry grpo",
        "properties/test_xrpo.py::test_group_zero_sum_is_broken: Σ_g A⁺ ≥ 0 = Σ_g A, strictly when a bonus fires",
        "properties/test_xrpo.py::test_abs_cap_variant_moves_negative_advantages_toward_zero",
        "properties/test_xrpo.py::test_sharpening_raises_rare_correct_action_in_bandit: exact expectation over "
        "G-sample groups of a 3-action softmax bandit (two correct answers, one rare)",
        "properties/test_xrpo.py::test_padding_never_read",
        "properties/test_xrpo.py::test_bad_input_raises",
    ),
))

"""ReMax: REINFORCE with the greedy response's reward as the baseline.

Li et al., "ReMax: A Simple, Effective, and Efficient Reinforcement Learning Method for Aligning Large
Language Models", arXiv 2310.10505, §4 (Algorithm 1: the gradient estimator).

For a prompt x, ReMax samples a response a ~ π_θ(·|x) and also decodes the greedy response ā
(argmax at every step). The reward of the greedy response is the baseline::

    b(x) = r(x, ā)                                       (greedy baseline)
    Â_i  = R_i − b_i,   R_i = r(x_i, a_i),  b_i = r(x_i, ā_i)   (broadcast over the tokens of a_i)

Because ā is a deterministic function of θ and x (it does not depend on the sampled a), the baseline
leaves the policy gradient unbiased: E[(r(a) − b) ∇log π(a)] = E[r(a) ∇log π(a)].

Inputs (the ``advantage`` kind with one extra argument):
  * ``rewards``: (B,) outcome rewards, or (B, T) token-level rewards (padding never read);
  * ``baseline_rewards``: (B,) the greedy response's reward for each sequence's prompt;
  * ``mask``: (B, T) bool;
  * ``group`` (optional, (B,) prompt ids): when given, rollouts of one prompt must share one baseline
    (they share one greedy response), otherwise ``baseline_rewards`` is rejected.

Option ``reward_to_go`` (verl's ``compute_remax_outcome_advantage``, notes/peers.md §2.2): the
advantage of token t is the reverse cumulative sum of the masked token rewards from t on, minus the
baseline, Â_it = Σ_{t'≥t} M_it' r_it' − b_i. The paper (default) uses the sequence reward
R_i = Σ_t M_it r_it at every token. With outcome rewards ((B,) input, or a (B, T) input that is zero
except on the last valid token) the two agree; they differ for token-level rewards, e.g. a per-token
KL penalty folded into the reward.

Defined cases: a sequence with no valid token has advantage 0 everywhere; masked positions are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, fail, finite_vector, group_ids, masked_array
from rlspec.reference.registry import Equation, Paper, Spec, register

REMAX_PAPER = Paper(arxiv="2310.10505", title="ReMax: A Simple, Effective, and Efficient Reinforcement Learning "
                    "Method for Aligning Large Language Models", year=2023)


@dataclass(frozen=True)
class ReMaxConfig:
    """reward_to_go: False = the paper's sequence reward at every token; True = verl's reverse cumulative
    sum of token rewards (differs only for token-level rewards)."""

    reward_to_go: bool = False


def sequence_reward(r: np.ndarray, M: np.ndarray) -> np.ndarray:
    """R_i = Σ_t M_it r_it (B,) for token-level rewards (padding already zeroed)."""
    return np.where(M, r, 0.0).sum(axis=1)


def reward_to_go(r: np.ndarray, M: np.ndarray) -> np.ndarray:
    """G_it = Σ_{t'≥t} M_it' r_it' (B, T): reverse cumulative sum of the masked token rewards."""
    rm = np.where(M, r, 0.0)
    return np.flip(np.cumsum(np.flip(rm, axis=1), axis=1), axis=1)


def greedy_baseline_advantage(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Â = R − b: the return (sequence (B,) or per token (B, T)) minus the greedy response's reward b (B,)."""
    return R - (b if R.ndim == 1 else b[:, None])


def validate_remax(rewards, baseline_rewards, mask, group=None):
    """rewards (B,) or (B, T) (padding not read), baseline_rewards (B,), mask (B, T) bool, optional group (B,)."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    B = M.shape[0]
    r = np.asarray(rewards)
    if r.ndim == 2:
        r = masked_array(r, "rewards", M)
    elif r.ndim == 1:
        r = finite_vector(r, "rewards", B)
    else:
        raise fail("rewards", f"shape {r.shape}", f"({B},) outcome rewards or ({B}, {M.shape[1]}) token rewards")
    b = finite_vector(baseline_rewards, "baseline_rewards", B)
    if group is not None:
        g = group_ids(group, B)
        for k in np.unique(g):
            vals = b[g == k]
            if vals.min() != vals.max():
                raise fail("baseline_rewards", f"different values {sorted(set(vals.tolist()))[:3]} for prompt id {k}",
                           "one greedy-response reward per prompt (equal within a group)")
    return r, b, M


def remax_advantage(rewards, baseline_rewards, mask, group=None, config: ReMaxConfig | None = None) -> np.ndarray:
    """ReMax advantage (B, T): reward minus the greedy response's reward, broadcast over each response.

    Args: rewards (B,) or (B, T) float; baseline_rewards (B,) float; mask (B, T) bool; group (B,) int,
    optional (only checked: equal baselines within a prompt).
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or ReMaxConfig()
    r, b, M = validate_remax(rewards, baseline_rewards, mask, group)
    if r.ndim == 1:  # outcome reward: every valid token's reward-to-go is R_i, so both conventions agree
        A = greedy_baseline_advantage(r, b)[:, None]
    elif cfg.reward_to_go:
        A = greedy_baseline_advantage(reward_to_go(r, M), b)
    else:
        A = greedy_baseline_advantage(sequence_reward(r, M), b)[:, None]
    return np.where(M, A, 0.0)


def make_inputs(rng: np.random.Generator) -> dict:
    """A random ReMax batch: prompts with 1-4 rollouts sharing one greedy baseline, ragged masks (some rows
    empty); rewards (B,) binary/continuous or, one time in three, (B, T) token rewards with garbage padding."""
    B, T = int(rng.integers(1, 9)), int(rng.integers(1, 6))
    group = np.arange(B) // int(rng.integers(1, 5))
    binary = rng.random() < 0.5
    draw = (lambda n: rng.integers(0, 2, size=n).astype(np.float64)) if binary else (lambda n: rng.normal(size=n))
    baseline = draw(int(group.max()) + 1)[group]
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    if rng.random() < 1 / 3:
        rewards = np.where(rng.random((B, T)) < 0.4, rng.normal(size=(B, T)), 0.0)
        rewards[~mask] = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30]), size=int((~mask).sum()))
    else:
        rewards = draw(B)
    return {"rewards": rewards, "baseline_rewards": baseline, "mask": mask, "group": group}


register(Spec(
    name="remax", kind="advantage", family="baseline", paper=REMAX_PAPER, status="implemented",
    summary="REINFORCE with the greedy response's reward as baseline: Â = R − r(greedy)",
    fn=remax_advantage, config_cls=ReMaxConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"reward_to_go": reward_to_go, "sequence_reward": sequence_reward},
    equations=(
        Equation("remax-adv", "Â_i = r(x_i, a_i) − r(x_i, ā_i), ā_i = greedy decoding of π_θ given x_i",
                 "arXiv 2310.10505 §4 (Algorithm 1)", "secondary", "greedy_baseline_advantage",
                 note="paper text beyond the abstract not re-read here; equation as restated by third-party notes "
                      "and as computed by verl compute_remax_outcome_advantage (notes/peers.md §2.2)"),
        Equation("remax-reward-to-go", "Â_it = Σ_{t'≥t} M_it' r_it' − b_i (verl's variant, option reward_to_go)",
                 "verl core_algos.compute_remax_outcome_advantage", "secondary", "reward_to_go",
                 note="equal to the paper's Â_i for outcome rewards on the last token; differs for token rewards"),
    ),
    properties=(
        "properties/test_remax.py::test_policy_gradient_unbiased_exact: greedy baseline keeps E[ĝ] = ∇J "
        "(exact enumeration, softmax bandit)",
        "properties/test_remax.py::test_sample_dependent_baseline_is_biased_exact: contrast that can fail",
        "properties/test_remax.py::test_advantage_is_reward_minus_greedy_reward",
        "properties/test_remax.py::test_reward_to_go_agrees_for_outcome_rewards",
        "properties/test_remax.py::test_shift_invariance",
    ),
))

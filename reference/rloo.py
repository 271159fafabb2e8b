"""RLOO: REINFORCE with the leave-one-out baseline.

Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
Feedback in LLMs", arXiv 2402.14740 (the RLOO estimator); the estimator itself is from Kool, van Hoof
and Welling, "Buy 4 REINFORCE Samples, Get a Baseline for Free!" (ICLR 2019 DeepRLStructPred workshop).

For the G rollouts y_1..y_G of one prompt with scalar rewards R_1..R_G, each rollout is scored
against the mean reward of the *other* G − 1 rollouts::

    b_i = (1/(G−1)) Σ_{j≠i} R_j                      (leave-one-out baseline)
    Â_i = R_i − b_i = G/(G−1) · (R_i − mean_j R_j)   (broadcast over the tokens of rollout i)

Because b_i does not depend on y_i, E[Â_i ∇log π(y_i)] = E[R_i ∇log π(y_i)]: the policy gradient
stays unbiased (the mean-including-itself baseline of Dr. GRPO shrinks it by (G−1)/G).

Notation: G is the size of the prompt's group (rows of ``group`` with the same id); groups may have
different sizes. The paper folds a sequence-level KL penalty into R (R = r − β·KL); that shaping is
the caller's: pass the shaped reward as ``rewards``.

Defined cases:
  * a group of one rollout has no leave-one-out baseline. ``singleton="zero"`` (default) gives it
    advantage 0 (TRL's and verl ``rloo_vectorized``'s behaviour); ``singleton="raw"`` passes the raw
    reward through (verl ``rloo``: baseline 0). OpenRLHF returns NaN there; we never do.
  * an all-equal group has advantage exactly 0; masked positions are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

RLOO_PAPER = Paper(arxiv="2402.14740", title="Back to Basics: Revisiting REINFORCE Style Optimization for Learning "
                   "from Human Feedback in LLMs", year=2024)


@dataclass(frozen=True)
class RLOOConfig:
    """singleton: what a group of one rollout gets — "zero" (advantage 0) or "raw" (Â = R, baseline 0)."""

    singleton: str = "zero"

    def __post_init__(self) -> None:
        choice(self.singleton, "singleton", ("zero", "raw"))


def leave_one_out_baseline(R: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b_i = (Σ_{j∈group(i)} R_j − R_i) / (G_i − 1), and the group size G_i; both (B,).

    For a singleton group (G_i = 1) the baseline is undefined; it is returned as 0 and the
    singleton policy of :func:`rloo_outcome_advantage` decides the advantage.
    """
    b = np.zeros_like(R)
    G = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        G[rows] = len(rows)
        if len(rows) > 1:
            for i in rows:
                others = rows[rows != i]
                b[i] = R[others].mean()  # the mean of the other G − 1 rewards
    return b, G


def rloo_outcome_advantage(R: np.ndarray, g: np.ndarray, cfg: RLOOConfig) -> np.ndarray:
    """Â_i = R_i − b_i per sequence (B,)  — arXiv 2402.14740 (RLOO estimator).

    Computed as the mean pairwise difference (1/(G−1)) Σ_{j≠i} (R_i − R_j), which equals R_i − b_i
    and is exactly 0 for an all-equal group (no rounding from forming the mean first).
    """
    A = np.zeros_like(R)
    G = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        G[rows] = len(rows)
        for i in rows:
            others = rows[rows != i]
            A[i] = (R[i] - R[others]).mean() if len(others) else 0.0
    if cfg.singleton == "raw":
        A = np.where(G == 1, R, A)  # no one to compare with: baseline 0, the raw reward passes through
    return A


def rloo_advantage(rewards, group, mask, config: RLOOConfig | None = None) -> np.ndarray:
    """RLOO advantage (B, T): leave-one-out-baselined outcome reward broadcast over each response.

    Args: rewards (B,) float; group (B,) int prompt ids; mask (B, T) bool.
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or RLOOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(rloo_outcome_advantage(R, g, cfg), M)


register(Spec(
    name="rloo", kind="advantage", family="baseline", paper=RLOO_PAPER, status="implemented",
    summary="REINFORCE leave-one-out: each rollout's reward minus the mean reward of the other rollouts of its prompt",
    fn=rloo_advantage, config_cls=RLOOConfig, outputs=("adv",),
    equations=(
        Equation("rloo-adv", "Â_i = R_i − (1/(G−1)) Σ_{j≠i} R_j = G/(G−1)·(R_i − mean R)",
                 "arXiv 2402.14740 (RLOO estimator); Kool et al. 2019", "secondary", "rloo_outcome_advantage",
                 note="paper text not re-read here; equation as restated by ms-swift's RLOO docs and as computed by "
                      "verl/OpenRLHF/TRL (notes/peers.md). Singleton-group handling is ours (paper assumes G ≥ 2)."),
    ),
    properties=(
        "properties/test_rloo.py::test_sum_over_group_is_zero",
        "properties/test_rloo.py::test_equals_scaled_dr_grpo: Â = G/(G−1)·(R − mean R)",
        "properties/test_rloo.py::test_baseline_independent_of_own_reward",
        "properties/test_rloo.py::test_policy_gradient_unbiased_exact: exact enumeration on a categorical bandit",
        "properties/test_rloo.py::test_mean_baseline_shrinks_gradient_exact: Dr. GRPO's baseline gives (G−1)/G·∇J",
        "properties/test_rloo.py::test_singleton_and_constant_groups_defined",
    ),
))

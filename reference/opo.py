"""OPO: on-policy RL with the optimal (length-weighted) reward baseline.

Hao et al., "On-Policy RL with Optimal Reward Baseline", arXiv 2505.23585, §2 (optimal baseline).

The baseline b that minimises the variance of the policy-gradient estimator (R − b) ∇log π(y) is

    b* = E[‖∇log π(y)‖² R(y)] / E[‖∇log π(y)‖²]

(Var = E[(R − b)² ‖∇log π‖²] − ‖E[R ∇log π]‖², since E[∇log π] = 0; set ∂/∂b = 0). Assuming the
tokens' score vectors are orthogonal with equal norms, ‖∇log π(y)‖² ∝ |y| (the response length), and
the practical baseline over the K rollouts of a prompt is the length-weighted mean reward::

    b = Σ_j |o_j| R_j / Σ_j |o_j|,       Â_i = R_i − b         (broadcast over the tokens of o_i)

Here |o_j| is the number of valid tokens of rollout j (its mask row). Â_i is computed as
Σ_j |o_j| (R_i − R_j) / Σ_j |o_j|, which equals R_i − b and is exactly 0 for an all-equal group.
With equal lengths, b is the plain group mean and OPO equals Dr. GRPO (arXiv 2503.20783 §3.1).

Defined cases:
  * ``singleton="zero"`` (default): a group of one rollout gets the formula's own value, b = R, Â = 0;
    ``singleton="raw"``: verl's ``compute_opo_outcome_advantage`` convention, baseline 0, Â = R.
  * a group whose rollouts all have no valid token has Σ|o_j| = 0; its rows have no token to carry an
    advantage, so the output is 0 there. Rows with no valid token get weight 0 in their group's baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

OPO_PAPER = Paper(arxiv="2505.23585", title="On-Policy RL with Optimal Reward Baseline", year=2025)


@dataclass(frozen=True)
class OPOConfig:
    """singleton: "zero" (the formula: b = R, Â = 0) or "raw" (verl: baseline 0, Â = R)."""

    singleton: str = "zero"

    def __post_init__(self) -> None:
        choice(self.singleton, "singleton", ("zero", "raw"))


def response_lengths(M: np.ndarray) -> np.ndarray:
    """|o_i| = Σ_t M_it (B,), the number of valid tokens of each rollout."""
    return M.sum(axis=1).astype(np.float64)


def length_weighted_baseline(R: np.ndarray, length: np.ndarray, g: np.ndarray) -> np.ndarray:
    """b_i = Σ_{j∈group(i)} |o_j| R_j / Σ_{j∈group(i)} |o_j| (B,); 0 where the group has no valid token."""
    b = np.zeros_like(R)
    for k in np.unique(g):
        rows = g == k
        L = length[rows].sum()
        if L > 0:
            b[rows] = (length[rows] * R[rows]).sum() / L
    return b


def opo_outcome_advantage(R: np.ndarray, length: np.ndarray, g: np.ndarray, cfg: OPOConfig) -> np.ndarray:
    """Â_i = R_i − b_i = Σ_j |o_j| (R_i − R_j) / Σ_j |o_j| per sequence (B,)  — arXiv 2505.23585 §2."""
    A = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        L = length[rows].sum()
        if cfg.singleton == "raw" and len(rows) == 1:
            A[rows] = R[rows]  # verl: a lone rollout is scored against baseline 0
        elif L > 0:
            for i in rows:
                A[i] = (length[rows] * (R[i] - R[rows])).sum() / L
    return A


def opo_advantage(rewards, group, mask, config: OPOConfig | None = None) -> np.ndarray:
    """OPO advantage (B, T): reward minus the length-weighted group mean, broadcast over each response.

    Args: rewards (B,) float; group (B,) int prompt ids; mask (B, T) bool (lengths are its row sums).
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or OPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(opo_outcome_advantage(R, response_lengths(M), g, cfg), M)


register(Spec(
    name="opo", kind="advantage", family="baseline", paper=OPO_PAPER, status="implemented",
    summary="optimal reward baseline: reward minus the length-weighted mean reward of the prompt's rollouts",
    fn=opo_advantage, config_cls=OPOConfig, outputs=("adv",),
    extras={"length_weighted_baseline": length_weighted_baseline,
            "conformance_configs": lambda: [("singleton=raw", {"singleton": "raw"}, "singletons")]},
    equations=(
        Equation("opo-optimal-baseline", "b* = E[‖∇log π(y)‖² R(y)] / E[‖∇log π(y)‖²]", "arXiv 2505.23585 §2",
                 "secondary", "length_weighted_baseline",
                 note="derivation as restated by third-party reviews of the paper (paper body not re-read here); "
                      "checked by exact enumeration in properties/test_opo.py"),
        Equation("opo-adv", "b = Σ_j l_j R_j / Σ_j l_j (l_j = length of o_j; ‖∇log π(o)‖² ∝ l), Â_i = R_i − b",
                 "arXiv 2505.23585 §2", "secondary", "opo_outcome_advantage",
                 note="also verl compute_opo_outcome_advantage (lengths = response-mask sums); verl gives a "
                      "singleton baseline 0 (our singleton='raw'); the formula itself gives Â = 0 (default)"),
    ),
    properties=(
        "properties/test_opo.py::test_equal_lengths_equal_dr_grpo",
        "properties/test_opo.py::test_length_weighted_sum_is_zero_per_group: Σ_i l_i Â_i = 0, so b minimises "
        "Σ_i l_i (R_i − b)²",
        "properties/test_opo.py::test_optimal_baseline_minimises_exact_variance: exact enumeration of a "
        "factorised policy with ‖∇log π(o)‖² ∝ length",
        "properties/test_opo.py::test_singleton_and_constant_groups_defined",
    ),
))

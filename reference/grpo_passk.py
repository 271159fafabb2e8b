"""Pass@k (max-of-group) advantage: only the best rollout of a group is credited, with r_max − r_second.

Tang, Zheng, Synnaeve, Munos, "Optimizing Language Models for Inference Time Objectives using
Reinforcement Learning", arXiv 2503.19595 (ICML 2025): k-sample objectives such as pass@k, optimised
with a leave-one-out control variate. verl ships the k = n case as ``compute_grpo_passk_outcome_advantage``
(``algorithm.adv_estimator=grpo_passk``) and cites this paper.

For a group of n rollouts of one prompt with scalar rewards R_1..R_n, the k = n objective is the group's
best reward f(R) = max_j R_j. Its leave-one-out advantage is::

    Â_i = f(R) − f(R_{−i}) = max_j R_j − max_{j≠i} R_j
        = R_max − R_second   for the (unique) best rollout i* = argmax_j R_j
        = 0                  for every other rollout (removing it leaves the maximum unchanged)

f(R_{−i}) does not depend on y_i, so Σ_i Â_i ∇log π(y_i) is an unbiased estimate of ∇E[max_j R_j]
(checked by exact enumeration in ``properties/test_grpo_passk.py``). A tied maximum gives R_max − R_second
= 0, so every rollout of that group gets 0 and the tie-break never matters.

Options (config):

* ``std_normalize``: divide Â by (std_g(R) + ε) with the group's sample std (ddof=1), as verl does with
  ``norm_adv_by_std_in_grpo=True`` (its default); the paper's estimator is the unscaled one
  (``std_normalize=False``), kept as the default here;
* ``singleton``: a group of one rollout has no second-best reward. ``"zero"`` (default) defines Â = 0
  there (no comparison, no signal); ``"raise"`` rejects such a batch, as verl does
  (``ValueError: Pass@k requires at least 2 samples per group``).

Shapes: rewards (B,), group (B,) int (any ids), mask (B, T) bool; returns Â (B, T), zero at masked positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

TANG_PAPER = Paper(arxiv="2503.19595", title="Optimizing Language Models for Inference Time Objectives using "
                   "Reinforcement Learning", year=2025)


@dataclass(frozen=True)
class GRPOPassKConfig:
    """std_normalize: divide by (sample std of the group + eps) (verl's default) or not (paper).
    eps: added to the std. singleton: "zero" (Â = 0 for a group of one) or "raise" (verl)."""

    std_normalize: bool = False
    eps: float = 1e-6
    singleton: str = "zero"

    def __post_init__(self) -> None:
        if not isinstance(self.std_normalize, bool):
            raise fail("std_normalize", repr(self.std_normalize), "True or False")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.singleton, "singleton", ("zero", "raise"))


def leave_one_out_max(R_g: np.ndarray) -> np.ndarray:
    """Â_i = max_j R_j − max_{j≠i} R_j for one group (n,), n ≥ 2: non-zero only at the unique argmax."""
    order = np.argsort(-R_g, kind="stable")
    r_max, r_second = R_g[order[0]], R_g[order[1]]
    A = np.zeros_like(R_g)
    A[order[0]] = r_max - r_second  # 0 when the maximum is tied
    return A


def passk_outcome_advantage(R: np.ndarray, g: np.ndarray, cfg: GRPOPassKConfig) -> np.ndarray:
    """Per-sequence pass@k advantage (B,): the leave-one-out max per group, optionally / (std_g + ε)."""
    A = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        if rows.size < 2:
            if cfg.singleton == "raise":
                raise fail("group", f"a group of one rollout (id {int(k)})",
                           "at least 2 rollouts per group for the pass@k advantage (singleton='raise')")
            continue  # singleton="zero": no second-best reward, no signal
        A_g = leave_one_out_max(R[rows])
        if cfg.std_normalize:
            A_g = A_g / (R[rows].std(ddof=1) + cfg.eps) if A_g.any() else A_g
        A[rows] = A_g
    return A


def grpo_passk_advantage(rewards, group, mask, config: GRPOPassKConfig | None = None) -> np.ndarray:
    """Pass@k advantage (B, T): R_max − R_second on the best rollout of each group, 0 elsewhere."""
    cfg = config or GRPOPassKConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(passk_outcome_advantage(R, g, cfg), M)


register(Spec(
    name="grpo_passk", kind="advantage", family="framework", paper=TANG_PAPER, status="implemented",
    summary="pass@n leave-one-out advantage: only the best rollout of a group gets R_max − R_second",
    fn=grpo_passk_advantage, config_cls=GRPOPassKConfig, outputs=("adv",),
    equations=(
        Equation("passk-loo", "Â_i = max_j R_j − max_{j≠i} R_j  (= R_max − R_second at i = argmax, else 0)",
                 "arXiv 2503.19595 (k-sample objective with leave-one-out control variate, k = n)", "secondary",
                 "leave_one_out_max",
                 note="the paper's own equation text was not read; the k = n form is verl's "
                      "compute_grpo_passk_outcome_advantage (which cites the paper) and its leave-one-out "
                      "reading is derived here; unbiasedness is checked by exact enumeration"),
        Equation("passk-std", "Â_i ← Â_i / (std_g(R) + ε), std with ddof = 1", "verl core_algos "
                 "compute_grpo_passk_outcome_advantage (norm_adv_by_std_in_grpo)", "secondary",
                 "passk_outcome_advantage", note="a GRPO-style rescaling verl applies by default; not in the paper"),
    ),
    properties=(
        "properties/test_grpo_passk.py::test_only_the_unique_best_rollout_is_credited",
        "properties/test_grpo_passk.py::test_equals_brute_force_leave_one_out_max",
        "properties/test_grpo_passk.py::test_unbiased_gradient_of_expected_max_by_enumeration",
        "properties/test_grpo_passk.py::test_std_normalization_and_shift_invariance",
        "properties/test_grpo_passk.py::test_singleton_policies",
    ),
))

"""GRPO group-relative advantage, and Dr. GRPO's unnormalised variant.

GRPO: Shao et al., "DeepSeekMath", arXiv 2402.03300, §4.1.2 (outcome supervision), eq. (3) context.
Dr. GRPO: Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective", arXiv 2503.20783, §3.1.

For the G rollouts of one prompt with scalar rewards R_1..R_G::

    Â_i = (R_i − mean_j R_j) / (std_j R_j + ε)        (GRPO, broadcast over the tokens of rollout i)
    Â_i =  R_i − mean_j R_j                            (Dr. GRPO: no std division)

Conventions exposed as config (the paper leaves them open; frameworks differ):
  * ``ddof``: 0 = population std, 1 = sample (Bessel) std (torch's ``.std()`` default, used by verl);
  * ``eps`` and ``eps_placement``: ``"outside"`` (std + ε, verl/TRL) or ``"inside"`` (sqrt(var + ε));
  * ``singleton``: a group with one rollout gets advantage 0 (``"zero"``, the default), or is scored
    against mean 0 and std 1, i.e. Â = R/(1+ε) (``"mean0std1"``, verl's convention). With ``ddof=1``
    the std of one sample is undefined, so the singleton policy decides.

Defined cases: an all-equal group has zero advantage (no NaN; ε > 0 or the zero-numerator rule);
masked positions are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

GRPO_PAPER = Paper(arxiv="2402.03300", title="DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open "
                   "Language Models", year=2024)
DR_GRPO_PAPER = Paper(arxiv="2503.20783", title="Understanding R1-Zero-Like Training: A Critical Perspective", year=2025)


@dataclass(frozen=True)
class GRPOConfig:
    """std_normalize: divide by the group std (GRPO) or not (Dr. GRPO). ddof: 0 or 1.
    eps: added to the std (``outside``) or the variance (``inside``). singleton: "zero" or "mean0std1"."""

    std_normalize: bool = True
    ddof: int = 1
    eps: float = 1e-6
    eps_placement: str = "outside"
    singleton: str = "zero"

    def __post_init__(self) -> None:
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.eps_placement, "eps_placement", ("outside", "inside"))
        choice(self.singleton, "singleton", ("zero", "mean0std1"))


def group_stats(R: np.ndarray, g: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sequence group mean, std (with ``ddof``) and group size, each (B,).

    An all-equal group gets its reward as mean and std exactly 0 (floating-point rounding of the
    mean of e.g. three 0.1's would otherwise leave a residue that a tiny std blows up).
    """
    mean = np.zeros_like(R)
    std = np.zeros_like(R)
    size = np.zeros_like(R)
    for k in np.unique(g):
        rows = g == k
        n = rows.sum()
        size[rows] = n
        if R[rows].min() == R[rows].max():
            mean[rows] = R[rows][0]
            continue
        mean[rows] = R[rows].mean()
        std[rows] = R[rows].std(ddof=ddof) if n > ddof else 0.0
    return mean, std, size


def grpo_outcome_advantage(R: np.ndarray, g: np.ndarray, cfg: GRPOConfig) -> np.ndarray:
    """Â_i = (R_i − mean_g R) / (std_g R + ε) per sequence (B,)  — arXiv 2402.03300 §4.1.2."""
    mean, std, size = group_stats(R, g, cfg.ddof)
    if cfg.singleton == "mean0std1":  # verl's convention: a lone rollout is scored against mean 0, std 1
        mean, std = np.where(size == 1, 0.0, mean), np.where(size == 1, 1.0, std)
    centred = R - mean
    if cfg.std_normalize:
        denom = std + cfg.eps if cfg.eps_placement == "outside" else np.sqrt(std**2 + cfg.eps)
        # all-equal group: numerator is exactly 0, so the advantage is 0 even when ε = 0
        A = np.divide(centred, denom, out=np.zeros_like(R), where=denom > 0)
    else:
        A = centred
    return np.where(size == 1, 0.0, A) if cfg.singleton == "zero" else A


def broadcast_to_tokens(A: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sequence advantages (B,) → token advantages (B, T), zero at masked positions."""
    return np.where(mask, A[:, None], 0.0)


def validate_outcome(rewards, group, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common checks of the ``advantage`` kind: rewards (B,), group (B,), mask (B, T) bool."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    R = finite_vector(rewards, "rewards", M.shape[0])
    g = group_ids(group, M.shape[0])
    return R, g, M


def grpo_advantage(rewards, group, mask, config: GRPOConfig | None = None) -> np.ndarray:
    """GRPO advantage (B, T): group z-score of the outcome reward broadcast over each response."""
    cfg = config or GRPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(grpo_outcome_advantage(R, g, cfg), M)


def dr_grpo_advantage(rewards, group, mask, config: GRPOConfig | None = None) -> np.ndarray:
    """Dr. GRPO advantage (B, T): Â_i = R_i − mean_g R (no std division) — arXiv 2503.20783 §3.1."""
    cfg = config or GRPOConfig(std_normalize=False)
    return grpo_advantage(rewards, group, mask, cfg)


@dataclass(frozen=True)
class DrGRPOConfig(GRPOConfig):
    std_normalize: bool = False


register(Spec(
    name="grpo", kind="advantage", family="baseline", paper=GRPO_PAPER, status="implemented",
    summary="group-relative advantage: z-score of the outcome reward within the prompt's group",
    fn=grpo_advantage, config_cls=GRPOConfig, outputs=("adv",),
    equations=(Equation("grpo-adv", "Â_i = (R_i − mean(R)) / (std(R) + ε)", "arXiv 2402.03300 §4.1.2", "paper",
                        "grpo_outcome_advantage",
                        note="the paper does not fix ddof or ε; verl/TRL use ddof=1 (torch .std) and ε=1e-6/1e-4"),),
    properties=(
        "properties/test_grpo.py::test_advantages_sum_to_zero_per_group",
        "properties/test_grpo.py::test_affine_invariance: r → a·r + b (a > 0) leaves Â unchanged (up to ε)",
        "properties/test_grpo.py::test_all_equal_group_is_zero",
        "properties/test_grpo.py::test_singleton_group_defined",
    ),
))

register(Spec(
    name="dr_grpo", kind="advantage", family="baseline", paper=DR_GRPO_PAPER, status="implemented",
    summary="GRPO without the std division (pair with agg='seq-mean-token-sum-norm')",
    fn=dr_grpo_advantage, config_cls=DrGRPOConfig, outputs=("adv",),
    equations=(Equation("dr-grpo-adv", "Â_i = R_i − mean(R)", "arXiv 2503.20783 §3.1", "paper", "dr_grpo_advantage"),),
    properties=("properties/test_grpo.py::test_dr_grpo_shift_invariant_and_scale_equivariant",),
))

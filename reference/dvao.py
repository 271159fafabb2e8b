"""DVAO: Dynamic Variance-adaptive Advantage Optimization, for K reward components per rollout.

Jiang, Song, Quan, Hao, Liu, Zhang, "DVAO: Dynamic Variance-adaptive Advantage Optimization for
Multi-reward Reinforcement Learning", arXiv 2605.25604 (May 2026). No official code is known.

Provenance: only the abstract was readable here. It states the idea (combination weights set from
each objective's empirical reward variance within the rollout group; high-variance objectives are
up-weighted, low-variance "noisy" ones suppressed; bounded advantage magnitudes are proved). The
formulas below come from a third-party reviewer note as summarised in our notes
(papers_A.md §17, tagged [N]); they are consistent with the abstract, not checked against the paper.

For one group (the G rollouts of a prompt), rewards r_{i,k} (i rollout, k = 1..K objective) and
base weights w_k ≥ 0 (equal by default)::

    μ_k, σ_k      group mean and std of objective k                         (ddof: see below)
    A_{i,k}       = (r_{i,k} − μ_k) / (σ_k + ε)                              per-objective advantage
    w̃_k           = w_k σ_k / Σ_l w_l σ_l                                   variance-adaptive weights
    A_i^DVAO      = Σ_k w̃_k A_{i,k}   (= Σ_k w_k (r_{i,k} − μ_k) / Σ_l w_l σ_l  when ε = 0)

and the advantage is broadcast over the rollout's tokens (B, T). The two standard baselines,
kept here as plain functions for comparison (the abstract names them)::

    RC (reward combination):    R_i = Σ_k w_k r_{i,k};  A_i^RC = (R_i − mean R) / (std R + ε)
    AC (advantage combination): A_i^AC = Σ_k w_k A_{i,k}

Identity (our derivation, ε = 0): A^DVAO = (σ_RC / Σ_k w_k σ_k) · A^RC with σ_RC = std(Σ_k w_k r_k).
Since std is a seminorm, σ_RC ≤ Σ_k w_k σ_k, hence |A_i^DVAO| ≤ |A_i^RC| for every rollout, with
equality when the objectives are perfectly positively correlated within the group. We read this as
the paper's Prop. 2 ("bounded advantage magnitudes"; the note writes the comparison as "A_sum").

Conventions (the source does not fix them; chosen so that K = 1 reproduces rlspec's ``grpo`` with its
defaults, to rounding):
  * ``ddof = 1`` (sample std, torch's ``.std()``, as in verl where the paper trained);
  * ``eps = 1e-6`` added to each σ_k (``σ_k + ε``), as GRPO's default here;
  * a zero-std objective (every rollout of the group agrees on it) contributes nothing: its centred
    rewards are exactly 0 and w̃_k = 0; if every objective has zero std (or the group is a singleton,
    whose sample std is undefined) the weights w̃ are all 0 and the advantage is 0.

Rewards are per sequence and always read (a fully masked row still counts in its group's statistics,
as in ``grpo``); the mask only shapes the broadcast. Masked positions of the output are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, fail, group_ids, positive
from rlspec.reference.grpo import broadcast_to_tokens
from rlspec.reference.registry import Equation, Paper, Spec, register

DVAO_PAPER = Paper(arxiv="2605.25604", title="DVAO: Dynamic Variance-adaptive Advantage Optimization for Multi-reward "
                   "Reinforcement Learning", year=2026)


@dataclass(frozen=True)
class DVAOConfig:
    """weights: base weights w_k ≥ 0, not all 0 (None = equal weights 1/K); eps ≥ 0 added to each std;
    ddof: 0 (population) or 1 (sample std, default). Zero-std objectives drop out (see module docstring)."""

    weights: tuple[float, ...] | None = None
    eps: float = 1e-6
    ddof: int = 1

    def __post_init__(self) -> None:
        positive(self.eps, "eps", allow_zero=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
                raise fail("weights", repr(self.weights), "a non-empty sequence of finite weights ≥ 0, not all 0")
            object.__setattr__(self, "weights", tuple(float(x) for x in w))


def base_weights(cfg: DVAOConfig, K: int) -> np.ndarray:
    """w (K,): the configured weights (checked against K) or equal weights 1/K."""
    if cfg.weights is None:
        return np.full(K, 1.0 / K)
    if len(cfg.weights) != K:
        raise fail("weights", f"{len(cfg.weights)} weights", f"one weight per reward component, K = {K}")
    return np.asarray(cfg.weights, dtype=np.float64)


def validate_rewards(rewards, group, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rewards (B, K) finite, group (B,) integer ids, mask (B, T) bool."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    R = np.asarray(rewards)
    if R.ndim != 2 or R.shape[0] != M.shape[0] or R.shape[1] < 1:
        raise fail("rewards", f"shape {R.shape}", f"shape ({M.shape[0]}, K), K ≥ 1 reward components per rollout")
    if not (np.issubdtype(R.dtype, np.floating) or np.issubdtype(R.dtype, np.integer) or R.dtype == np.bool_):
        raise fail("rewards", f"dtype {R.dtype}", "a real-valued array")
    R = R.astype(np.float64)
    if not np.isfinite(R).all():
        i, k = np.argwhere(~np.isfinite(R))[0]
        raise fail("rewards", f"a non-finite value {R[i, k]} at ({i}, {k})", "finite rewards")
    return R, group_ids(group, M.shape[0]), M


def group_moments(R: np.ndarray, g: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row group mean μ and std σ of each column of R (B, K) → two (B, K) arrays.

    A column that is constant within a group (always so in a singleton group, whose ddof = 1 std is
    undefined) gets μ = that value and σ = 0 exactly: no rounding residue such as std([0.1]*3) ≈ 1.7e-17.
    """
    mu, sd = np.zeros_like(R), np.zeros_like(R)
    for k in np.unique(g):
        rows = g == k
        Rg = R[rows]  # (n, K)
        const = (Rg == Rg[0]).all(axis=0)  # (K,)
        mu[rows] = np.where(const, Rg[0], Rg.mean(axis=0))
        if len(Rg) > 1:  # a singleton is constant: μ = r, σ = 0
            sd[rows] = np.where(const, 0.0, Rg.std(axis=0, ddof=ddof))
    return mu, sd


def objective_advantages(R: np.ndarray, mu: np.ndarray, sd: np.ndarray, eps: float) -> np.ndarray:
    """A_{i,k} = (r_{i,k} − μ_k)/(σ_k + ε) (B, K); exactly 0 where σ_k = 0 (the numerator is 0 there)."""
    return np.divide(R - mu, sd + eps, out=np.zeros_like(R), where=sd > 0)


def variance_adaptive_weights(w: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """w̃_k = w_k σ_k / Σ_l w_l σ_l per row (B, K); all 0 in a group where every w_k σ_k = 0."""
    ws = w[None, :] * sd  # (B, K)
    total = ws.sum(axis=1, keepdims=True)  # (B, 1)
    return np.divide(ws, total, out=np.zeros_like(ws), where=total > 0)


def dvao_sequence_advantage(R: np.ndarray, g: np.ndarray, w: np.ndarray, cfg: DVAOConfig) -> np.ndarray:
    """A_i^DVAO = Σ_k w̃_k A_{i,k} (B,)."""
    mu, sd = group_moments(R, g, cfg.ddof)
    return (variance_adaptive_weights(w, sd) * objective_advantages(R, mu, sd, cfg.eps)).sum(axis=1)


def dvao_advantage(rewards, group, mask, config: DVAOConfig | None = None) -> np.ndarray:
    """DVAO advantage (B, T): the variance-adaptive combination broadcast over each response.

    Args: rewards (B, K) finite; group (B,) integer prompt ids; mask (B, T) bool.
    Returns: (B, T) float64, zero at masked positions, in singleton groups and in all-equal groups.
    """
    cfg = config or DVAOConfig()
    R, g, M = validate_rewards(rewards, group, mask)
    return broadcast_to_tokens(dvao_sequence_advantage(R, g, base_weights(cfg, R.shape[1]), cfg), M)


def rc_advantage(rewards, group, mask, config: DVAOConfig | None = None) -> np.ndarray:
    """Reward combination (B, T): group z-score of R_i = Σ_k w_k r_{i,k}, same ddof/ε/singleton rules."""
    cfg = config or DVAOConfig()
    R, g, M = validate_rewards(rewards, group, mask)
    Rc = R @ base_weights(cfg, R.shape[1])  # (B,)
    mu, sd = group_moments(Rc[:, None], g, cfg.ddof)
    return broadcast_to_tokens(objective_advantages(Rc[:, None], mu, sd, cfg.eps)[:, 0], M)


def ac_advantage(rewards, group, mask, config: DVAOConfig | None = None) -> np.ndarray:
    """Advantage combination (B, T): A_i^AC = Σ_k w_k A_{i,k} with the fixed base weights."""
    cfg = config or DVAOConfig()
    R, g, M = validate_rewards(rewards, group, mask)
    mu, sd = group_moments(R, g, cfg.ddof)
    return broadcast_to_tokens(objective_advantages(R, mu, sd, cfg.eps) @ base_weights(cfg, R.shape[1]), M)


def make_inputs(rng: np.random.Generator) -> dict:
    """Example batch: rewards (B, K) mixing binary and continuous components, groups with singletons
    and all-equal groups, ragged mask (some rows empty)."""
    B, T, K = int(rng.integers(2, 13)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
    cols = [rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.5 else rng.normal(size=B)
            for _ in range(K)]
    rewards = np.stack(cols, axis=1)  # (B, K)
    group = rng.choice(rng.choice(np.arange(-20, 20), size=int(rng.integers(1, B + 1)), replace=False), size=B)
    lengths = rng.integers(0, T + 1, size=B)
    return {"rewards": rewards, "group": group, "mask": np.arange(T)[None, :] < lengths[:, None]}


_NOTE = ("from the reviewer note summarised in papers_A.md §17 [N]; the abstract confirms variance-based "
         "weights that up-weight high-variance objectives")

register(Spec(
    name="dvao", kind="advantage", family="advantage", paper=DVAO_PAPER, status="implemented",
    summary="multi-reward advantage: per-objective z-scores combined with weights ∝ w_k·σ_k (group std)",
    fn=dvao_advantage, config_cls=DVAOConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"rc_advantage": rc_advantage, "ac_advantage": ac_advantage,
            "objective_advantages": objective_advantages, "variance_adaptive_weights": variance_adaptive_weights},
    equations=(
        Equation("dvao-objective-adv", "A_{i,k} = (r_{i,k} − μ_k)/σ_k", "arXiv 2605.25604, method", "secondary",
                 "objective_advantages", note=_NOTE + "; ε and ddof are our conventions (K = 1 equals grpo)"),
        Equation("dvao-weights", "w̃_k = w_k σ_k / Σ_l w_l σ_l", "arXiv 2605.25604, method", "secondary",
                 "variance_adaptive_weights", note=_NOTE),
        Equation("dvao-adv", "A_i = Σ_k w̃_k A_{i,k} = Σ_k w_k (r_{i,k} − μ_k) / Σ_l w_l σ_l", "arXiv 2605.25604, method",
                 "secondary", "dvao_sequence_advantage", note=_NOTE),
        Equation("dvao-rc-identity", "A^DVAO = (σ_RC / Σ_k w_k σ_k)·A^RC ⇒ |A^DVAO| ≤ |A^RC|",
                 "arXiv 2605.25604 Prop. 2 (as we read it)", "reconstructed", "rc_advantage",
                 note="identity derived here; the note states Prop. 2 as |A_DVAO| ≤ |A_sum|, which we read as RC"),
    ),
    properties=(
        "properties/test_dvao.py::test_identity_with_reward_combination: A^DVAO = (σ_RC/Σ w_k σ_k)·A^RC (ε = 0)",
        "properties/test_dvao.py::test_bounded_by_reward_combination: |A^DVAO| ≤ |A^RC| (Prop. 2 as we read it)",
        "properties/test_dvao.py::test_equality_for_perfectly_correlated_objectives",
        "properties/test_dvao.py::test_advantages_sum_to_zero_per_group",
        "properties/test_dvao.py::test_invariant_to_common_scale_and_objective_shifts",
        "properties/test_dvao.py::test_objective_rescaling_equals_weight_rescaling",
        "properties/test_dvao.py::test_single_objective_is_grpo",
        "properties/test_dvao.py::test_singleton_and_all_equal_groups_are_zero",
        "properties/test_dvao.py::test_bad_input_raises",
    ),
))

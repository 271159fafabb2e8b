"""GPG: Group Policy Gradient — group-mean advantage with a batch correction α, and a plain REINFORCE loss.

Chu et al., "GPG: A Simple and Strong Reinforcement Learning Baseline for Model Reasoning",
arXiv 2504.02546, §2 (method: advantage, "accurate gradient estimation").

Advantage, for rollout i of a prompt whose G rollouts have rewards R_1..R_G, in a batch of B rollouts::

    Â_i = α · (R_i − mean_j R_j) / F_norm                     (broadcast over the tokens of rollout i)
    α   = B / (B − M)

F_norm = 1 (the paper's best setting) or the group std of R. M counts the rollouts that cannot carry a
gradient: those in groups whose rewards are all equal (every Â of the group is 0). Then the batch mean
(1/B) Σ_i Â_i ∇log π(o_i) equals the mean over the B − M rollouts that do carry one: α undoes the
dilution by zero-gradient rollouts. (Our reading of M: the official README lists α = B/(B − M) and
F_norm ∈ {1, std}; the count is of rollouts in all-equal groups — see the Equation notes.)

Conventions (config):
  * ``alpha``: "paper" (B/(B − M); α = 1 when B = M, all advantages are 0 then), "verl"
    (B / max(#{i: R_i ≠ 0}, 1): verl's ``compute_gpg_outcome_advantage`` counts non-zero *rewards* and
    overwrites its ``alpha`` argument with this), or "one" (α = 1, i.e. Dr. GRPO's advantage);
  * ``f_norm``: "one" or "std" (group std with ``ddof``, ``eps`` added, as in :mod:`rlspec.reference.grpo`);
  * ``singleton``: "zero" (the group mean of one reward is itself: Â = 0) or "raw" (verl: mean 0, so
    Â = α R). Under "raw" a singleton with R ≠ 0 carries a gradient and is not counted in M.
  verl's estimator = ``alpha="verl", singleton="raw", f_norm="one"``.

α depends on the whole batch (B and M): compute advantages on the full batch, never per shard.

Loss ("gpg_loss", kind policy_loss): the original policy-gradient objective on the current log-probs,
no ratio and no clipping::

    ℓ_it = −Â_it · log π_θ(o_it)        aggregated with any mode (default token-mean)
    ∂loss/∂logp_it = −c_it Â_it         (c = aggregation coefficients; ``old_logp`` is accepted, unused)

At r ≡ 1 this is the vanilla policy-gradient weight of PPO (rlspec.reference.ppo): same gradient, different
loss value (PPO's value is −Σ c Â, GPG's is −Σ c Â logp).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, policy_batch, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

GPG_PAPER = Paper(arxiv="2504.02546", title="GPG: A Simple and Strong Reinforcement Learning Baseline for Model "
                  "Reasoning", year=2025)


@dataclass(frozen=True)
class GPGConfig:
    """alpha: "paper" | "verl" | "one"; f_norm: "one" | "std" (ddof, eps as in GRPO); singleton: "zero" | "raw"."""

    alpha: str = "paper"
    f_norm: str = "one"
    ddof: int = 1
    eps: float = 1e-6
    singleton: str = "zero"

    def __post_init__(self) -> None:
        choice(self.alpha, "alpha", ("paper", "verl", "one"))
        choice(self.f_norm, "f_norm", ("one", "std"))
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.singleton, "singleton", ("zero", "raw"))


def group_advantage(R: np.ndarray, g: np.ndarray, cfg: GPGConfig) -> np.ndarray:
    """(R_i − mean_g R) / F_norm per sequence (B,), before α; all-equal groups give exactly 0."""
    grpo_cfg = GRPOConfig(std_normalize=cfg.f_norm == "std", ddof=cfg.ddof, eps=cfg.eps, eps_placement="outside",
                          singleton="zero" if cfg.singleton == "zero" else "mean0std1")
    return grpo_outcome_advantage(R, g, grpo_cfg)


def invalid_count(A0: np.ndarray, g: np.ndarray) -> int:
    """M: the number of rollouts in groups whose advantages (before α) are all zero."""
    return int(sum((g == k).sum() for k in np.unique(g) if not A0[g == k].any()))


def alpha(R: np.ndarray, A0: np.ndarray, g: np.ndarray, mode: str) -> float:
    """α = B/(B − M) ("paper"), B/max(#{R_i ≠ 0}, 1) ("verl"), or 1 ("one")."""
    B = R.shape[0]
    if mode == "one" or B == 0:
        return 1.0
    if mode == "verl":
        return B / max(int(np.count_nonzero(R)), 1)
    M = invalid_count(A0, g)
    return B / (B - M) if M < B else 1.0


def gpg_outcome_advantage(R: np.ndarray, g: np.ndarray, cfg: GPGConfig) -> np.ndarray:
    """Â_i = α (R_i − mean_g R) / F_norm per sequence (B,)  — arXiv 2504.02546 §2."""
    A0 = group_advantage(R, g, cfg)
    return alpha(R, A0, g, cfg.alpha) * A0


def gpg_advantage(rewards, group, mask, config: GPGConfig | None = None) -> np.ndarray:
    """GPG advantage (B, T): α-corrected group-mean advantage broadcast over each response.

    Args: rewards (B,) float; group (B,) int prompt ids; mask (B, T) bool.
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or GPGConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(gpg_outcome_advantage(R, g, cfg), M)


@dataclass(frozen=True)
class GPGLossConfig(common.AggregationOptions):
    """Aggregation only (default token-mean); ``log_ratio_clamp`` has no effect (there is no ratio)."""


def policy_gradient_loss(logp: np.ndarray, adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = −Â · log π_θ (B, T) and ∂ℓ/∂logp = −Â."""
    return -adv * logp, -adv


def gpg_loss(logp, old_logp, adv, mask, ref_logp=None, config: GPGLossConfig | None = None, group=None):
    """GPG policy loss −Σ c Â logp and its gradient −c Â w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float (old_logp validated, unused); mask (B, T) bool; ``ref_logp``
    accepted and unused; ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or GPGLossConfig()
    logp, _, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    ell, dell = policy_gradient_loss(logp, adv)
    return common.aggregate_token_loss(ell, dell, mask, cfg, group)


_ALPHA_NOTE = ("official README (AMAP-ML/GPG) lists α = B/(B−M) and F_norm ∈ {1, std{R}}; M read as the rollouts "
               "of all-equal groups (zero-gradient samples) from third-party summaries — the paper body was not "
               "re-read here. verl instead uses α = B/max(count_nonzero(R), 1) (option alpha='verl')")

register(Spec(
    name="gpg", kind="advantage", family="baseline", paper=GPG_PAPER, status="implemented",
    summary="group-mean advantage scaled by α = B/(B − M), M = rollouts of all-equal (zero-gradient) groups",
    fn=gpg_advantage, config_cls=GPGConfig, outputs=("adv",),
    extras={"alpha": alpha, "invalid_count": invalid_count,
            "conformance_configs": lambda: [
                ("verl", {"alpha": "verl", "singleton": "raw"}, "singletons"),
                ("verl-basic", {"alpha": "verl", "singleton": "raw"}, "all-equal-groups"),
                ("f_norm=std", {"f_norm": "std"}, "basic"),
                ("alpha=one", {"alpha": "one"}, "all-equal-groups")]},
    equations=(
        Equation("gpg-adv", "Â_i = α (R_i − mean(R)) / F_norm", "arXiv 2504.02546 §2", "official-code",
                 "gpg_outcome_advantage", note=_ALPHA_NOTE),
        Equation("gpg-alpha", "α = B / (B − M)", "arXiv 2504.02546 §2 (accurate gradient estimation)",
                 "secondary", "alpha", note=_ALPHA_NOTE),
    ),
    properties=(
        "properties/test_gpg.py::test_zero_sum_per_group_before_alpha",
        "properties/test_gpg.py::test_alpha_rescales_dr_grpo: Â = α·Â_DrGRPO, α = B/(B − M)",
        "properties/test_gpg.py::test_alpha_gives_mean_over_valid_rollouts",
        "properties/test_gpg.py::test_verl_variant",
        "properties/test_gpg.py::test_f_norm_std_is_alpha_times_grpo",
        "properties/test_gpg.py::test_degenerate_batches_defined",
    ),
))

register(Spec(
    name="gpg_loss", kind="policy_loss", family="baseline", paper=GPG_PAPER, status="implemented",
    summary="plain REINFORCE on the current log-probs: ℓ = −Â·log π (no ratio, no clip)",
    fn=gpg_loss, config_cls=GPGLossConfig, outputs=("loss", "dlogp"),
    equations=(Equation("gpg-loss", "ℓ_it = −Â_it log π_θ(o_it), aggregated", "arXiv 2504.02546 §2", "secondary",
                        "policy_gradient_loss",
                        note="the paper's surrogate-free objective; token-mean default follows verl's gpg loss "
                             "(notes/peers.md §2.3: −logp·A with loss_agg_mode)"),),
    gradient="∂loss/∂logp_it = −c_it Â_it (c = aggregation coefficients); independent of old_logp",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences",
        "properties/test_gpg.py::test_loss_equals_vanilla_pg_weight_of_ppo_on_policy",
        "properties/test_gpg.py::test_loss_value_and_gradient_written_out",
    ),
))

"""VESPO: Variational sEquence-level Soft Policy Optimization.

Shen, Zhao, Cheng, Huang, Yu, "VESPO: Variational Sequence-level Soft Policy Optimization for
Off-Policy LLM Training", arXiv 2602.10693 (official code: github.com/FloyedShen/VESPO,
``recipe/vespo/code/core_algos.py::compute_policy_loss_vespo``).

Instead of clipping token ratios, VESPO reshapes the whole sequence's importance weight with a
gamma-shaped kernel and uses it as a stop-gradient REINFORCE coefficient::

    W_i  = Π_t π_θ(y_it)/π_old(y_it) = exp(S_i),   S_i = Σ_t m_it log r_it       (a product: no length
                                                                               normalisation, unlike GSPO)
    φ(W) = e^λ · W^k · e^{−λW}       (φ(1) = 1; maximum at W = k/λ)
    (k, λ) = (k₊, λ₊) if Â_i ≥ 0 else (k₋, λ₋)
    ℓ_it = −sg(φ(W_i)) · Â_it · logp_it                                            aggregated (token-mean)

so ∂ℓ_it/∂logp_it = −φ(W_i) Â_it (the weight is held fixed: ``extras['stop_gradient']``).

Numerical guards of the official code (and TRL's ``get_gamma_weights``), exposed as options: each
token's log-ratio is clamped to ±``log_ratio_clamp`` (20) before the sum, and S_i to
[``log_w_min``, ``log_w_max``] = [log 1e-8, 20] (the official code clamps S to [−20, 20] and then
floors W at 1e-8 inside the log, i.e. log W ≥ log 1e-8 while λW uses e^{−20}; TRL clamps S to
[log 1e-8, 20] directly — the difference in log φ is below λ·1e-8). None switches a guard off.
The sign that selects (k, λ) is that of the sequence advantage Â_i, taken here as the masked
token-mean of ``adv`` (equal to the common value when the advantage is broadcast over the
sequence; the official code reads the first token, TRL the (B, 1) advantage).

Defaults k₊ = 2, λ₊ = 3, k₋ = 3, λ₋ = 2 are those of the official code's config reader and of TRL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import fail, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

VESPO_PAPER = Paper(arxiv="2602.10693", title="VESPO: Variational Sequence-level Soft Policy Optimization for "
                    "Off-Policy LLM Training", year=2026)


@dataclass(frozen=True)
class VESPOConfig(common.AggregationOptions):
    """k_pos, lambda_pos, k_neg, lambda_neg: kernel shapes (official code: 2, 3, 3, 2; λ > 0).
    log_ratio_clamp: per-token clamp before the sum (20, official code). log_w_min/log_w_max: clamp of
    S = log W (log 1e-8, 20). agg: token-mean (verl's default loss_agg_mode in the official code)."""

    k_pos: float = 2.0
    lambda_pos: float = 3.0
    k_neg: float = 3.0
    lambda_neg: float = 2.0
    log_ratio_clamp: float | None = 20.0
    log_w_min: float | None = math.log(1e-8)
    log_w_max: float | None = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("k_pos", "k_neg"):
            positive(getattr(self, name), name, allow_zero=True)
        for name in ("lambda_pos", "lambda_neg"):
            positive(getattr(self, name), name)
        for name in ("log_w_min", "log_w_max"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(float(v)):
                raise fail(name, repr(v), "a finite number or None")
        if self.log_w_min is not None and self.log_w_max is not None and self.log_w_min >= self.log_w_max:
            raise fail("log_w_min", repr(self.log_w_min), f"a bound below log_w_max = {self.log_w_max}")


def sequence_log_weight(log_r: np.ndarray, mask: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """S_i = Σ_t m_it log r_it (B,), clamped to [lo, hi] where given."""
    S = np.where(mask, log_r, 0.0).sum(axis=1)
    return np.clip(S, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def gamma_kernel(S: np.ndarray, k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """φ(W) = exp(λ + k log W − λ W) with log W = S (B,); φ(1) = 1. Underflows to 0 for huge W."""
    with np.errstate(over="ignore"):
        W = np.exp(S)
        log_phi = lam + k * S - lam * W  # −inf when W overflows: φ = 0
    return np.exp(log_phi)


def sequence_advantage(adv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Â_i = masked token-mean of adv (B,); 0 for a sequence without valid tokens."""
    n = mask.sum(axis=1)
    return np.where(mask, adv, 0.0).sum(axis=1) / np.maximum(n, 1)


def vespo_loss(logp, old_logp, adv, mask, ref_logp=None, config: VESPOConfig | None = None, group=None):
    """VESPO loss −Σ c ⊙ sg(φ(W_i)) Â logp and its gradient −c ⊙ φ(W_i) Â.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or VESPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_r, _ = common.log_ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T); its gradient is stopped
    S = sequence_log_weight(log_r, mask, cfg.log_w_min, cfg.log_w_max)  # (B,)
    pos = sequence_advantage(adv, mask) >= 0
    phi = gamma_kernel(S, np.where(pos, cfg.k_pos, cfg.k_neg), np.where(pos, cfg.lambda_pos, cfg.lambda_neg))
    w = phi[:, None] * adv  # (B, T)
    return common.aggregate_token_loss(-w * logp, -w, mask, cfg, group)


register(Spec(
    name="vespo", kind="policy_loss", family="framework", paper=VESPO_PAPER, status="implemented",
    extras={"stop_gradient": "φ(W) is held fixed; properties/test_vespo.py::test_hand_gradient_with_kernel_frozen "
                             "checks FD with the kernel frozen"},
    summary="REINFORCE weighted by a stop-gradient gamma kernel φ(W) of the whole sequence's importance weight",
    fn=vespo_loss, config_cls=VESPOConfig, outputs=("loss", "dlogp"),
    equations=(
        Equation("vespo-weight", "W_i = exp(Σ_t log r_it) (product of token ratios, no length normalisation)",
                 "arXiv 2602.10693 (abstract: sequence-level weights without length normalisation)", "official-code",
                 "sequence_log_weight", note="FloyedShen/VESPO core_algos.py; clamps ±20 per token and on the sum"),
        Equation("vespo-kernel", "φ(W) = e^λ W^k e^{−λW}, (k, λ) by the sign of Â_i", "official code", "official-code",
                 "gamma_kernel", note="FloyedShen/VESPO core_algos.py; TRL get_gamma_weights identical up to the "
                                      "lower clamp (log 1e-8 vs −20 then floor)"),
        Equation("vespo-loss", "ℓ_it = −sg(φ(W_i)) Â_it log π_θ(y_it)", "official code", "official-code", "vespo_loss"),
    ),
    gradient="∂loss/∂logp = −c·φ(W_i)·Â: a per-sequence soft weight, never zero for finite W and Â ≠ 0",
    properties=(
        "properties/test_vespo.py::test_hand_gradient_with_kernel_frozen",
        "properties/test_vespo.py::test_on_policy_is_vanilla_pg",
        "properties/test_vespo.py::test_kernel_peaks_at_k_over_lambda",
        "properties/test_vespo.py::test_weight_is_product_not_mean",
    ),
))

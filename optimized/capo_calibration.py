"""CAPO calibration-aware advantage (torch, vectorised over a B × B pair matrix).
Mirrors :mod:`rlspec.reference.capo_calibration`.

Ã_i = Σ_{j wrong, same group} (1/τ)σ((lpm_j − lpm_i)/τ) for a correct i, −Σ_{i correct} (…) for a wrong j;
Â = m · Ã with the reference-perplexity noise mask m. The pair matrix costs O(B²) memory, which is small
for RL batches (B ≤ a few thousand rollouts). Half-precision inputs are computed in float32 (a confidence
gap rounded to bf16 moves the sigmoid by up to 1 %, and the mask's perplexity thresholds 1.05 / 2.5 sit
closer together than bf16 resolves near 1).
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.capo_calibration import CAPOCalibrationConfig

__all__ = ["CAPOCalibrationConfig", "length_normalized_logprob", "perplexity", "logistic_surrogate", "pair_weight",
           "calibration_advantage", "noise_mask", "capo_calibration_advantage"]


def length_normalized_logprob(logp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lpm (B,) = masked mean of ``logp`` (padding already zeroed) and nonempty (B,) bool; lpm = 0 for empty rows."""
    n = mask.sum(dim=1)
    lpm = torch.where(mask, logp, torch.zeros((), dtype=logp.dtype)).sum(dim=1) / n.clamp(min=1).to(logp.dtype)
    return lpm, n > 0


def perplexity(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PPL = exp(−lpm) (B,); 1 for an empty row."""
    return torch.exp(-length_normalized_logprob(logp, mask)[0])


def logistic_surrogate(t: torch.Tensor, tau: float) -> torch.Tensor:
    """φ_τ(t) = log(1 + e^{−t/τ})."""
    return torch.nn.functional.softplus(-t / tau)


def pair_weight(lpm_pos: torch.Tensor, lpm_neg: torch.Tensor, tau: float) -> torch.Tensor:
    """w = (1/τ) σ((lpm⁻ − lpm⁺)/τ) = −φ'_τ(lpm⁺ − lpm⁻), broadcasting."""
    return torch.sigmoid((lpm_neg - lpm_pos) / tau) / tau


def calibration_advantage(R: torch.Tensor, lpm: torch.Tensor, group: torch.Tensor, active: torch.Tensor, tau: float,
                          normalization: str = "none") -> torch.Tensor:
    """Ã (B,) from the (B, B) matrix of correct-vs-wrong pairs within a group among ``active`` rollouts."""
    pos, neg = active & (R == 1), active & (R == 0)
    same = group.unsqueeze(1) == group.unsqueeze(0)  # (B, B)
    pair = same & pos.unsqueeze(1) & neg.unsqueeze(0)  # (B, B): row i correct, column j wrong
    w = torch.where(pair, pair_weight(lpm.unsqueeze(1), lpm.unsqueeze(0), tau), torch.zeros((), dtype=lpm.dtype))
    if normalization != "none":
        n_pos = (same & pos.unsqueeze(0)).sum(dim=1)  # (B,): correct active rollouts in row i's group
        n_neg = (same & neg.unsqueeze(0)).sum(dim=1)
        size = (n_pos + n_neg) if normalization == "group" else n_pos * n_neg
        w = w / size.clamp(min=1).to(lpm.dtype).unsqueeze(1)  # a row with a pair has the size of its group
    return w.sum(dim=1) - w.sum(dim=0)


def noise_mask(R: torch.Tensor, ppl_ref: torch.Tensor, ppl_correct_max: float, ppl_incorrect_min: float):
    """m (B,) bool: correct and PPL_ref ≤ ppl_correct_max, or wrong and PPL_ref ≥ ppl_incorrect_min."""
    return torch.where(R == 1, ppl_ref <= ppl_correct_max, ppl_ref >= ppl_incorrect_min)


def _validate(rewards, old_logp, mask, group, ref_logp):
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    B = M.shape[0]
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (B,):
        raise fail("rewards", f"shape {tuple(getattr(rewards, 'shape', ()))}", f"a tensor of shape ({B},)")
    R = rewards.double() if rewards.dtype == torch.float64 else rewards.float()
    if not bool(((R == 0) | (R == 1)).all()):
        raise fail("rewards", "a value other than 0 or 1", "binary outcomes 0 (wrong) or 1 (correct)")
    group = common.group_ids(group, B, device=M.device)
    lp = common.upcast(common.clean(old_logp, M, "old_logp")).detach()
    rlp = None if ref_logp is None else common.upcast(common.clean(ref_logp, M, "ref_logp")).detach()
    return R.to(lp.dtype), lp, M, group, rlp


@implements("capo_calibration")
def capo_calibration_advantage(rewards, old_logp, mask, group, ref_logp=None,
                               config: CAPOCalibrationConfig | None = None) -> torch.Tensor:
    """CAPO advantage (B, T): m · Ã broadcast over each response; zero at masked positions."""
    cfg = config or CAPOCalibrationConfig()
    R, lp, M, g, rlp = _validate(rewards, old_logp, mask, group, ref_logp)
    lpm, nonempty = length_normalized_logprob(lp, M)
    keep = torch.ones_like(nonempty)
    if cfg.noise_mask and rlp is not None:
        keep = noise_mask(R, perplexity(rlp, M), cfg.ppl_correct_max, cfg.ppl_incorrect_min)
    active = nonempty & keep if cfg.mask_scope == "before" else nonempty
    A = calibration_advantage(R, lpm, g, active, cfg.tau, cfg.pair_normalization)
    A = torch.where(keep & nonempty, A, torch.zeros((), dtype=A.dtype))
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype))

"""ADORA group reweighting of GRPO advantages (torch, scatter ops). Mirrors :mod:`rlspec.reference.adora`.

A_i = ω_g Â_i with ω_g = tas_weight if max_{C} ℓ > mean_{W} ℓ (C: r > τ, W: r ≤ τ and ℓ < ℓ_max), else λ;
edge cases per ``variant`` ("llm" / "vl" official code). Â is :func:`rlspec.optimized.grpo.grpo_outcome_advantage`.
"""

from __future__ import annotations

import torch

from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.adora import ADORAConfig

__all__ = ["ADORAConfig", "response_lengths", "group_weight", "adora_advantage"]


def response_lengths(mask: torch.Tensor, lengths=None) -> torch.Tensor:
    """ℓ (B,) float64: valid tokens per row, or the given lengths."""
    if lengths is None:
        return mask.sum(dim=1).to(torch.float64)
    ell = torch.as_tensor(lengths, device=mask.device)
    if ell.shape != (mask.shape[0],) or ell.dtype == torch.bool or not bool(torch.isfinite(ell.double()).all()) \
            or bool((ell < 0).any()):
        raise fail("lengths", f"{ell.dtype} {tuple(ell.shape)}", f"finite response lengths ≥ 0 of shape ({mask.shape[0]},)")
    return ell.to(torch.float64)


def group_weight(R: torch.Tensor, ell: torch.Tensor, group: torch.Tensor, cfg: ADORAConfig) -> torch.Tensor:
    """ω (B,) float64: tas_weight (TAS), λ (TDS) or 1 (VL code, no correct rollout)."""
    _, inv = torch.unique(group, return_inverse=True)
    G = int(inv.max()) + 1 if R.numel() else 0
    z = torch.zeros(G, dtype=torch.float64, device=R.device)
    correct = R > cfg.correct_threshold
    wrong = ~correct if cfg.max_length is None else ~correct & (ell < cfg.max_length)
    n_correct = z.clone().index_add_(0, inv, correct.double())
    n_wrong = z.clone().index_add_(0, inv, wrong.double())
    max_c = torch.full_like(z, -torch.inf).scatter_reduce(0, inv, torch.where(correct, ell, -torch.inf), "amax")
    mean_w = z.clone().index_add_(0, inv, torch.where(wrong, ell, 0.0)) / n_wrong.clamp(min=1)
    tas = (n_correct > 0) & torch.where(n_wrong > 0, max_c > mean_w, torch.full_like(z, cfg.variant == "llm").bool())
    neutral = (n_correct == 0) & (cfg.variant == "vl")
    one, tas_w, lam = (torch.tensor(v, dtype=torch.float64, device=R.device) for v in (1.0, cfg.tas_weight, cfg.lam))
    w = torch.where(neutral, one, torch.where(tas, tas_w, lam))
    return w[inv]


@implements("adora")
def adora_advantage(rewards, group, mask, config: ADORAConfig | None = None, lengths=None) -> torch.Tensor:
    """ADORA advantage (B, T): ω_g · GRPO advantage, broadcast over valid tokens (0 elsewhere)."""
    cfg = config or ADORAConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    w = group_weight(R.to(torch.float64), response_lengths(M, lengths), g, cfg)
    A = (w.to(R.dtype) * grpo_outcome_advantage(R, g, cfg.base()))  # (B,)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))

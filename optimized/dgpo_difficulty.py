"""DGPO / MathForge advantage (torch, vectorised with scatter ops). Mirrors :mod:`rlspec.reference.dgpo_difficulty`.

Â_DG = G·(r − mean)/(Σ|r − mean| + ε) per group, times λ_s = |V|·softmax_V(−acc_s/T), times
κ = (# tokens)/(# tokens of valid questions). Half-precision rewards are computed in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.dgpo_difficulty import DGPOConfig

__all__ = ["DGPOConfig", "dgae", "difficulty", "dqw", "dgpo_difficulty_advantage"]


def _segments(group: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group index (B,) and the number of groups."""
    _, inv = torch.unique(group, return_inverse=True)
    return inv, (int(inv.max()) + 1 if inv.numel() else 0)


def _per_group(x: torch.Tensor, inv: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    init = {"sum": 0.0, "amax": -torch.inf, "amin": torch.inf}[reduce]
    out = torch.full((n,), init, dtype=x.dtype, device=x.device)
    return out.index_add_(0, inv, x) if reduce == "sum" else out.scatter_reduce(0, inv, x, reduce)


def dgae(R: torch.Tensor, inv: torch.Tensor, n: int, eps: float = 0.0):
    """Â_DG (B,) and the per-group validity (n,) (non-constant rewards)."""
    size = _per_group(torch.ones_like(R), inv, n, "sum")
    valid = _per_group(R, inv, n, "amax") != _per_group(R, inv, n, "amin")
    mean = _per_group(R, inv, n, "sum") / size
    d = torch.where(valid[inv], R - mean[inv], torch.zeros_like(R))  # exactly 0 in all-equal groups
    mass = _per_group(d.abs(), inv, n, "sum") + eps
    A = torch.where(valid[inv], size[inv] * d / torch.where(valid, mass, torch.ones_like(mass))[inv], torch.zeros_like(R))
    return A, valid


def difficulty(acc: torch.Tensor, inv: torch.Tensor, n: int, all_wrong: str = "paper") -> torch.Tensor:
    """D_s = −mean acc_s per group (n,); ``all_wrong="code"`` counts an all-zero accuracy as 1."""
    p = _per_group(acc, inv, n, "sum") / _per_group(torch.ones_like(acc), inv, n, "sum")
    if all_wrong == "code":
        p = torch.where(_per_group(acc, inv, n, "amax") == 0, torch.ones_like(p), p)
    return -p


def dqw(D: torch.Tensor, valid: torch.Tensor, temperature: float) -> torch.Tensor:
    """λ (n,): |V|·softmax over valid groups of D/T, 1 elsewhere."""
    logits = torch.where(valid, D / temperature, torch.full_like(D, -torch.inf))
    n_valid = valid.sum()
    w = torch.softmax(logits, dim=0) * n_valid if bool(n_valid > 0) else torch.ones_like(D)
    return torch.where(valid, w, torch.ones_like(D))


@implements("dgpo_difficulty")
def dgpo_difficulty_advantage(rewards, group, mask, config: DGPOConfig | None = None, accuracy=None) -> torch.Tensor:
    """DGPO advantage (B, T), zero at masked positions."""
    cfg = config or DGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    inv, n = _segments(g)
    acc = R
    if accuracy is not None:
        if accuracy.shape != R.shape or not bool(torch.isfinite(accuracy).all()):
            raise fail("accuracy", f"shape {tuple(accuracy.shape)}, finite: {bool(torch.isfinite(accuracy).all())}",
                       f"finite values of shape {tuple(R.shape)}")
        acc = common.upcast(accuracy).to(R.dtype)
    A, valid = dgae(R, inv, n, cfg.eps)
    if cfg.dqw:
        A = A * dqw(difficulty(acc, inv, n, cfg.all_wrong), valid, cfg.temperature)[inv]
    if cfg.valid_token_mean:
        tokens = M.sum(dim=1).to(R.dtype)  # (B,)
        n_valid = (tokens * valid[inv]).sum()
        A = A * torch.where(n_valid > 0, tokens.sum() / torch.where(n_valid > 0, n_valid, torch.ones_like(n_valid)),
                            torch.ones_like(n_valid))
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))

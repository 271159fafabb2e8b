"""ASPO advantage shaping (torch, vectorised with scatter ops). Mirrors :mod:`rlspec.reference.aspo` (arXiv 2508.19201).

A = A_c + clip(δ(p − mean_E p)/mean_E L, ±k|A_c|) on correct, tool-using responses (E), A_c elsewhere; A_c is
rlspec's GRPO advantage (:mod:`rlspec.optimized.grpo`). Half-precision rewards are computed in float32, as
there; the tool inputs (integer positions and lengths) are cast to the advantage's dtype.
"""

from __future__ import annotations

import torch

from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.aspo import ASPOConfig
from rlspec.reference.grpo import GRPOConfig

__all__ = ["ASPOConfig", "base_advantage", "eligible_means", "shaping_term", "aspo_shape", "aspo_advantage"]


def base_advantage(R: torch.Tensor, group: torch.Tensor, cfg: ASPOConfig) -> torch.Tensor:
    """A_c (B,): GRPO's group z-score of the correctness reward."""
    return grpo_outcome_advantage(R, group, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))


def eligible_means(p: torch.Tensor, L: torch.Tensor, eligible: torch.Tensor, group: torch.Tensor):
    """(mean_E p, mean_E L) per row (B,), over the eligible rows of its group; 0 where a group has none."""
    _, inv = torch.unique(group, return_inverse=True)
    P = int(inv.max()) + 1 if p.numel() else 0
    w = eligible.to(p.dtype)
    n = torch.zeros(P, dtype=p.dtype, device=p.device).index_add_(0, inv, w)
    sp = torch.zeros_like(n).index_add_(0, inv, p * w)
    sL = torch.zeros_like(n).index_add_(0, inv, L * w)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    return torch.where(n > 0, sp / safe, torch.zeros_like(n))[inv], torch.where(n > 0, sL / safe, torch.zeros_like(n))[inv]


def shaping_term(p: torch.Tensor, p_bar: torch.Tensor, L_bar: torch.Tensor, delta: float) -> torch.Tensor:
    """b = δ(p − p̄)/L̄; 0 where L̄ = 0."""
    pos = L_bar > 0
    return torch.where(pos, delta * (p - p_bar) / torch.where(pos, L_bar, torch.ones_like(L_bar)), torch.zeros_like(p))


def aspo_shape(A_c: torch.Tensor, b: torch.Tensor, eligible: torch.Tensor, k: float) -> torch.Tensor:
    """A = A_c + clip(b, −k|A_c|, k|A_c|) on eligible rows."""
    bound = k * A_c.abs()
    return A_c + torch.where(eligible, torch.maximum(torch.minimum(b, bound), -bound), torch.zeros_like(b))


def _vector(x, name: str, B: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x, device=like.device)
    if t.shape != (B,) or t.dtype == torch.bool or t.dtype.is_complex:
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", f"a real tensor of shape ({B},)")
    t = t.to(like.dtype)
    if not bool(torch.isfinite(t).all()):
        raise fail(name, "non-finite values", "finite values")
    return t


@implements("aspo")
def aspo_advantage(rewards, group, mask, first_call=None, length=None, correct=None,
                   config: ASPOConfig | None = None) -> torch.Tensor:
    """ASPO advantage (B, T), zero at masked positions."""
    cfg = config or ASPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    B = M.shape[0]
    p = torch.full_like(R, -1.0) if first_call is None else _vector(first_call, "first_call", B, R)
    if bool((p != torch.round(p)).any()):
        raise fail("first_call", "fractional positions", "integer token positions, −1 = no call")
    L = M.sum(dim=1).to(R.dtype) if length is None else _vector(length, "length", B, R)
    if bool((L < 0).any()):
        raise fail("length", "negative lengths", "finite lengths ≥ 0")
    if correct is None:
        c = R > 0
    else:
        c = torch.as_tensor(correct, device=R.device)
        if c.shape != (B,) or c.dtype.is_floating_point or (c.dtype != torch.bool and bool(((c != 0) & (c != 1)).any())):
            raise fail("correct", f"{c.dtype} {tuple(c.shape)}", f"a boolean tensor of shape ({B},)")
        c = c.bool()
    eligible = c & (p >= 0)
    if bool((eligible & (L <= 0)).any()):
        raise fail("length", "a length ≤ 0 for a correct, tool-using response", "positive lengths for eligible rows")
    A_c = base_advantage(R, g, cfg)
    p_bar, L_bar = eligible_means(p, L, eligible, g)
    A = aspo_shape(A_c, shaping_term(p, p_bar, L_bar, cfg.delta), eligible, cfg.k)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))

"""Scaf-GRPO (arXiv 2510.19807) replacement + GRPO advantage in torch. Mirrors :mod:`rlspec.reference.scaf_grpo`.

Vectorised: per group, "all zero" and "hint found" are scatter reductions; the first row of each group in
batch order is found with a scatter ``amin`` over row indices; that row gets the success reward, then the
GRPO advantage is :func:`rlspec.optimized.grpo.grpo_outcome_advantage`. The hint search, the plateau
tracker and random replacement are control flow over LLM calls and stay in the reference (reuse its
``ScafState`` / ``update`` / ``minimal_hint``); ``replace="random"`` is rejected here.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.grpo import grpo_outcome_advantage
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.scaf_grpo import ScafConfig, hint_ladder

__all__ = ["ScafConfig", "replace_one_failure", "scaf_grpo"]


def replace_one_failure(R: torch.Tensor, inv: torch.Tensor, h: torch.Tensor,
                        success_reward: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(r' (B,), hinted (B,) bool): the first row of every all-zero group with h ≥ 0 gets the success reward."""
    B = R.shape[0]
    P = int(inv.max()) + 1 if B else 0
    rows = torch.arange(B, device=R.device)
    any_success = torch.zeros(P, dtype=R.dtype, device=R.device).index_add(0, inv, (R > 0).to(R.dtype)) > 0
    first = torch.full((P,), B, dtype=torch.long, device=R.device).scatter_reduce(0, inv, rows, "amin")
    hinted = (rows == first[inv]) & ~any_success[inv] & (h >= 0)
    return torch.where(hinted, torch.full_like(R, success_reward), R), hinted


@implements("scaf_grpo")
def scaf_grpo(rewards, group, mask, hint_level, config: ScafConfig | None = None):
    """(rewards' (B,), hinted (B,) bool, adv (B, T)) — replacement then GRPO (config ddof, ε)."""
    cfg = config or ScafConfig()
    if cfg.replace != "first":
        raise fail("config.replace", repr(cfg.replace), '"first" in optimized (random replacement: use the reference)')
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    B = M.shape[0]
    R = torch.as_tensor(rewards, device=M.device)
    if R.shape != (B,) or not bool(torch.isfinite(R).all()) or not bool(((R == 0) | (R == 1)).all()):
        raise fail("rewards", f"{R.dtype} {tuple(R.shape)}", f"binary verifier rewards 0 or 1 of shape ({B},)")
    g = common.group_ids(group, B, device=M.device)
    h = torch.as_tensor(hint_level, device=M.device)
    n_levels = len(hint_ladder(cfg.tiers, cfg.chunks))
    if h.shape != (B,) or h.dtype.is_floating_point or h.dtype == torch.bool or bool(((h < -1) | (h >= n_levels)).any()):
        raise fail("hint_level", f"{h.dtype} {tuple(h.shape)}", f"integer levels in [−1, {n_levels}) of shape ({B},)")
    inv = torch.unique(g, return_inverse=True)[1]
    P = int(inv.max()) + 1 if B else 0
    hi = torch.full((P,), -2, dtype=h.dtype, device=h.device).scatter_reduce(0, inv, h, "amax")
    lo = torch.full((P,), n_levels, dtype=h.dtype, device=h.device).scatter_reduce(0, inv, h, "amin")
    if bool((hi != lo).any()):
        raise fail("hint_level", "different levels within a group", "one level per group")
    R64 = R.to(torch.float64)
    R2, hinted = replace_one_failure(R64, inv, h, cfg.success_reward)
    A = grpo_outcome_advantage(R2, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))
    return R2, hinted, torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype))

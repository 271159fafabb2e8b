"""HGPO hierarchy-of-groups step advantage (torch). Mirrors :mod:`rlspec.reference.hgpo`.

The level-k group ids are integer bookkeeping over state histories; they are built on the CPU with the
reference's own key construction (as the official code hashes observations in Python). The statistics
are torch scatter ops, taken in float64 whatever the rewards' dtype: whether a level's advantage is
zero decides which levels enter the weighted mean, and that decision must not depend on rounding.
The result is returned in the rewards' dtype (float32 for bf16/fp16 rewards, as :mod:`optimized.grpo`).
"""

from __future__ import annotations

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference.hgpo import ZERO_RTOL, HGPOConfig, context_keys, level_groups, validate_steps

__all__ = ["HGPOConfig", "level_ids", "level_advantage", "level_weights", "hgpo_advantage"]


def _np(x):
    return None if x is None else (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))


def level_ids(group: torch.Tensor, state=None, traj=None, step=None, K: int = 2) -> torch.Tensor:
    """Level-k group ids (B, K+1) for k = 0..K, −1 where a step has no level-k context (t < k)."""
    g = _np(group).astype(np.int64)
    s, tr, st = validate_steps(g, _np(state), _np(traj), _np(step))
    ids = np.stack([level_groups(context_keys(g, s, tr, st, k)) for k in range(K + 1)], axis=1)
    return torch.as_tensor(ids, device=group.device)


def level_advantage(R: torch.Tensor, ids: torch.Tensor, cfg: HGPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A_k (B,) and ``used`` (B,) bool for one level: groups of ≥ 2 steps, minus zero advantages if skipped."""
    has = ids >= 0
    idx = torch.where(has, ids, torch.zeros_like(ids))
    n_groups = max(int(ids.max()) + 1, 1) if ids.numel() else 1  # one spare slot when no step has this level
    ones = has.to(R.dtype)
    size = torch.zeros(n_groups, dtype=R.dtype, device=R.device).index_add_(0, idx, ones)
    mean = torch.zeros_like(size).index_add_(0, idx, R * ones) / size.clamp(min=1)
    hi = torch.full_like(size, -torch.inf).scatter_reduce(0, idx[has], R[has], "amax")
    lo = torch.full_like(size, torch.inf).scatter_reduce(0, idx[has], R[has], "amin")
    amax = torch.zeros_like(size).scatter_reduce(0, idx[has], R[has].abs(), "amax")
    equal = hi == lo
    mean = torch.where(equal, hi, mean)
    centred = torch.where(has, R - mean[idx], torch.zeros_like(R))
    sq = torch.zeros_like(size).index_add_(0, idx, centred**2)
    sd = torch.sqrt(torch.where(size > cfg.ddof, sq / (size - cfg.ddof).clamp(min=1), torch.zeros_like(sq)))
    valid = has & (size[idx] >= 2)
    zero = equal[idx] | (centred.abs() <= ZERO_RTOL * amax[idx])
    A = centred / (sd[idx] + cfg.eps) if cfg.std_normalize else centred
    A = torch.where(valid & ~zero, A, torch.zeros_like(A))
    used = valid & ~zero if cfg.zero_levels == "skip" else valid
    return A, used


def level_weights(used: torch.Tensor, alpha: float) -> torch.Tensor:
    """w (B, K+1): (k+1)^α renormalised over the levels each step uses; 0 for a step that uses none."""
    depth = torch.arange(1, used.shape[1] + 1, dtype=torch.float64, device=used.device) ** alpha
    raw = torch.where(used, depth.unsqueeze(0), torch.zeros((), dtype=torch.float64, device=used.device))
    total = raw.sum(dim=1, keepdim=True)
    return torch.where(total > 0, raw / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(raw))


@implements("hgpo")
def hgpo_advantage(rewards, group, mask, config: HGPOConfig | None = None, state=None, traj=None,
                   step=None) -> torch.Tensor:
    """HGPO advantage (B, T): Σ_k w_k A_k per step, broadcast over its valid tokens (zero elsewhere)."""
    cfg = config or HGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    out_dtype = common.upcast(R).dtype
    ids = level_ids(g, state, traj, step, cfg.K)
    R64 = R.to(torch.float64)
    parts = [level_advantage(R64, ids[:, k], cfg) for k in range(cfg.K + 1)]
    A = torch.stack([p[0] for p in parts], dim=1)  # (B, K+1)
    w = level_weights(torch.stack([p[1] for p in parts], dim=1), cfg.alpha)
    AH = (w * A).sum(dim=1).to(out_dtype)  # (B,)
    return torch.where(M, AH.unsqueeze(1), torch.zeros((), dtype=out_dtype, device=AH.device))

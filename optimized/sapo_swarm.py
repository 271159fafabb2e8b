"""Swarm sAmpling Policy Optimization (Gensyn SAPO, arXiv 2509.08721) in torch. Mirrors
:mod:`rlspec.reference.sapo_swarm`.

The external choice is a stable sort of per-item keys (uniform: the random priority of eligible items; top:
minus the total reward; code: the total, with genrl's cut at the first non-zero total in pool order), then
the GRPO advantage of each item's L completions with :func:`rlspec.optimized.grpo.grpo_outcome_advantage`.
Rewards are taken in float64 (they are verifier scores; no caller dtype to follow for the statistics).
"""

from __future__ import annotations

import torch

from rlspec.optimized.grpo import grpo_outcome_advantage
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.sapo_swarm import SwarmConfig

__all__ = ["SwarmConfig", "item_advantage", "select_external", "sapo_swarm"]


def _items(x, name: str, L: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2 or (L is not None and t.shape[1] != L) or t.dtype.is_complex:
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", "real rewards of shape (n_items, L)")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise fail(name, "a non-finite reward", "finite rewards")
    return t


def item_advantage(R: torch.Tensor, ddof: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Â (n, L): GRPO within each item."""
    n, L = R.shape
    g = torch.arange(n, device=R.device).repeat_interleave(L)
    return grpo_outcome_advantage(R.reshape(-1), g, GRPOConfig(ddof=ddof, eps=eps)).reshape(n, L)


def select_external(R: torch.Tensor, src: torch.Tensor, node: int, J: int, priority, mode: str) -> torch.Tensor:
    """Indices (≤ J,) of the chosen pool items, in the reference's order."""
    K = R.shape[0]
    other = src != int(node)
    total = R.sum(dim=1)
    if mode in ("uniform", "top"):
        if mode == "uniform":
            u = torch.as_tensor(priority, device=R.device)
            if u.shape != (K,) or u.dtype == torch.bool or not bool(torch.isfinite(u.to(torch.float64)).all()):
                raise fail("priority", f"{tuple(u.shape)}", f"finite keys of shape ({K},)")
            ok = other & (R.amax(dim=1) > R.amin(dim=1)) if R.shape[1] else torch.zeros_like(other)
            key = torch.where(ok, u.to(torch.float64), torch.full_like(total, torch.inf))
        else:
            ok = other & (total != 0)
            key = torch.where(ok, -total, torch.full_like(total, torch.inf))
        order = torch.sort(key, stable=True).indices
        return order[: min(J, int(ok.sum()))]
    cand = torch.nonzero(other).flatten()
    nz = total[cand] != 0
    if not bool(nz.any()):
        return cand[:0]
    order = cand[torch.sort(total[cand], stable=True).indices]      # ascending (total, pool index)
    cut = int(torch.argmax(nz.to(torch.int8)))                       # first non-zero in UNSORTED order
    kept = order[cut:]
    return kept[kept.shape[0] - min(J, kept.shape[0]):]


@implements("sapo_swarm")
def sapo_swarm(local_rewards, pool_rewards, pool_source, priority, node: int = 0, config: SwarmConfig | None = None):
    """(rewards (n, L), external (n,) bool, pool_index (n,), adv (n, L)) — I local items then J' external ones."""
    cfg = config or SwarmConfig()
    loc = _items(local_rewards, "local_rewards")
    pool = _items(pool_rewards, "pool_rewards", loc.shape[1]).to(loc.device)
    src = torch.as_tensor(pool_source, device=loc.device)
    if src.shape != (pool.shape[0],) or src.dtype.is_floating_point or src.dtype == torch.bool:
        raise fail("pool_source", f"{src.dtype} {tuple(src.shape)}", f"integer node ids of shape ({pool.shape[0]},)")
    if cfg.n_local > loc.shape[0]:
        raise fail("local_rewards", f"{loc.shape[0]} items", f"at least n_local = {cfg.n_local} local items")
    ext = select_external(pool, src, node, cfg.n_external, priority, cfg.mode) if cfg.n_external else \
        torch.zeros(0, dtype=torch.long, device=loc.device)
    R = torch.cat([loc[: cfg.n_local], pool[ext]], dim=0)
    external = torch.arange(R.shape[0], device=R.device) >= cfg.n_local
    index = torch.cat([torch.full((cfg.n_local,), -1, dtype=torch.long, device=R.device), ext.to(torch.long)])
    return R, external, index, item_advantage(R, cfg.ddof, cfg.eps)

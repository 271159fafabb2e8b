"""DVAO multi-reward advantage (torch, vectorised with scatter ops). Mirrors :mod:`rlspec.reference.dvao`.

A_i = Σ_k w̃_k (r_ik − μ_k)/(σ_k + ε), w̃_k = w_k σ_k / Σ_l w_l σ_l, per group; the RC and AC comparison
estimators are here too. Same conventions as the reference: ddof 0/1, constant columns (and singleton
groups) get σ = 0 exactly and contribute nothing.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.dvao import DVAOConfig

__all__ = ["DVAOConfig", "group_moments", "objective_advantages", "variance_adaptive_weights", "dvao_advantage",
           "rc_advantage", "ac_advantage"]


def validate_rewards(rewards, group, mask):
    """rewards (B, K) finite floats, group (B,) integer ids, mask (B, T) bool."""
    mask = common.check_mask(mask)
    if mask.ndim != 2:
        raise fail("mask", f"shape {tuple(mask.shape)}", "shape (B, T)")
    B = mask.shape[0]
    if not isinstance(rewards, torch.Tensor) or rewards.ndim != 2 or rewards.shape[0] != B or rewards.shape[1] < 1:
        raise fail("rewards", f"shape {tuple(getattr(rewards, 'shape', ()))}", f"a tensor of shape ({B}, K), K ≥ 1")
    if not rewards.dtype.is_floating_point:
        rewards = rewards.to(torch.get_default_dtype())
    if not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    group = common.group_ids(group, B, device=rewards.device)
    return rewards, group, mask


def base_weights(cfg: DVAOConfig, K: int, like: torch.Tensor) -> torch.Tensor:
    """w (K,): the configured weights or 1/K each."""
    if cfg.weights is None:
        return torch.full((K,), 1.0 / K, dtype=like.dtype, device=like.device)
    if len(cfg.weights) != K:
        raise fail("weights", f"{len(cfg.weights)} weights", f"one weight per reward component, K = {K}")
    return torch.tensor(cfg.weights, dtype=like.dtype, device=like.device)


def group_moments(R: torch.Tensor, group: torch.Tensor, ddof: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row group mean μ and std σ of each column of R (B, K); σ = 0 for constant columns and singletons."""
    _, inv = torch.unique(group, return_inverse=True)
    G, K = (int(inv.max()) + 1 if R.shape[0] else 0), R.shape[1]
    idx = inv.unsqueeze(1).expand(-1, K)  # (B, K)
    n = torch.zeros(G, dtype=R.dtype, device=R.device).index_add_(0, inv, torch.ones_like(R[:, 0])).unsqueeze(1)
    mean = torch.zeros(G, K, dtype=R.dtype, device=R.device).index_add_(0, inv, R) / n  # (G, K)
    hi = torch.zeros(G, K, dtype=R.dtype, device=R.device).scatter_reduce(0, idx, R, "amax", include_self=False)
    lo = torch.zeros(G, K, dtype=R.dtype, device=R.device).scatter_reduce(0, idx, R, "amin", include_self=False)
    const = hi == lo  # (G, K): every rollout of the group agrees (includes singletons)
    sq = torch.zeros(G, K, dtype=R.dtype, device=R.device).index_add_(0, inv, (R - mean[inv]) ** 2)
    var = sq / (n - ddof).clamp(min=1)
    sd = torch.where(const, torch.zeros_like(var), var.sqrt())
    mu = torch.where(const, hi, mean)
    return mu[inv], sd[inv]


def objective_advantages(R: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor, eps: float) -> torch.Tensor:
    """A_{i,k} = (r_{i,k} − μ_k)/(σ_k + ε), exactly 0 where σ_k = 0."""
    pos = sd > 0
    return torch.where(pos, (R - mu) / torch.where(pos, sd + eps, torch.ones_like(sd)), torch.zeros_like(R))


def variance_adaptive_weights(w: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """w̃_k = w_k σ_k / Σ_l w_l σ_l per row (B, K); 0 where every w_l σ_l = 0."""
    ws = w.unsqueeze(0) * sd
    total = ws.sum(dim=1, keepdim=True)
    return torch.where(total > 0, ws / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(ws))


def _broadcast(A: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))


@implements("dvao")
def dvao_advantage(rewards, group, mask, config: DVAOConfig | None = None) -> torch.Tensor:
    """DVAO advantage (B, T), zero at masked positions, in singleton and all-equal groups."""
    cfg = config or DVAOConfig()
    R, g, M = validate_rewards(rewards, group, mask)
    mu, sd = group_moments(R, g, cfg.ddof)
    w = base_weights(cfg, R.shape[1], R)
    A = (variance_adaptive_weights(w, sd) * objective_advantages(R, mu, sd, cfg.eps)).sum(dim=1)
    return _broadcast(A, M)


def rc_advantage(rewards, group, mask, config: DVAOConfig | None = None) -> torch.Tensor:
    """Reward combination: group z-score of Σ_k w_k r_k (B, T)."""
    cfg = config or DVAOConfig()
    R, g, M = validate_rewards(rewards, group, mask)
    Rc = (R @ base_weights(cfg, R.shape[1], R)).unsqueeze(1)  # (B, 1)
    mu, sd = group_moments(Rc, g, cfg.ddof)
    return _broadcast(objective_advantages(Rc, mu, sd, cfg.eps)[:, 0], M)


def ac_advantage(rewards, group, mask, config: DVAOConfig | None = None) -> torch.Tensor:
    """Advantage combination: Σ_k w_k A_{i,k} with fixed weights (B, T)."""
    cfg = config or DVAOConfig()
    R, g, M = validate_rewards(rewards, group, mask)
    mu, sd = group_moments(R, g, cfg.ddof)
    return _broadcast(objective_advantages(R, mu, sd, cfg.eps) @ base_weights(cfg, R.shape[1], R), M)

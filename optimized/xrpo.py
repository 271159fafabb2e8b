"""XRPO rollout allocation and novelty sharpening (torch). Mirrors :mod:`rlspec.reference.xrpo` (arXiv 2510.06672).

Allocation: integer decisions, so per-prompt statistics are taken in float64 whatever the input dtype; the
Student-t quantiles come from scipy (torch has no t inverse CDF) once per distinct rollout count, then the
greedy phase is ``budget`` argmax steps over a (Q,) tensor. Sharpening: vectorised over the batch with scatter
ops; half precision is computed in float32 (as the GRPO advantage it builds on).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import stats

from rlspec.optimized import common
from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.xrpo import XRPOAllocConfig, XRPOSharpenConfig, XRPOState, icl_seed, update, zero_reward_prompts

__all__ = ["XRPOAllocConfig", "XRPOSharpenConfig", "XRPOState", "icl_seed", "update", "zero_reward_prompts",
           "ci_halfwidth", "expected_reduction", "exploration_bonus", "priority", "greedy_allocate", "prompt_stats",
           "xrpo_allocate", "sequence_logp_mean", "novelty", "sharpening_bonus", "xrpo_sharpen"]


def ci_halfwidth(s: torch.Tensor, n: torch.Tensor, ci_alpha: float) -> torch.Tensor:
    """h(n) = t_{1−α/2, n−1} · s / √n (float64)."""
    t = torch.as_tensor(stats.t.ppf(1.0 - ci_alpha / 2.0, n.detach().cpu().double().numpy() - 1.0),
                        dtype=torch.float64, device=s.device)
    return t * s / torch.sqrt(n.double())


def expected_reduction(s: torch.Tensor, n: torch.Tensor, ci_alpha: float) -> torch.Tensor:
    """Δ̂ = h(n) − h(n + 1)."""
    return ci_halfwidth(s, n, ci_alpha) - ci_halfwidth(s, n + 1, ci_alpha)


def exploration_bonus(n: torch.Tensor, T: int, lam: float) -> torch.Tensor:
    """φ = λ √(log(1 + T) / n)."""
    return lam * torch.sqrt(math.log1p(T) / n.double())


def priority(s: torch.Tensor, n: torch.Tensor, T: int, config: XRPOAllocConfig) -> torch.Tensor:
    """Π = Δ̂ + φ (Q,)."""
    return expected_reduction(s, n, config.ci_alpha) + exploration_bonus(n, T, config.lam)


def greedy_allocate(s: torch.Tensor, n: torch.Tensor, budget: int, T: int, config: XRPOAllocConfig) -> torch.Tensor:
    """extra (Q,) int64 with Σ = budget; ties to the lowest index (torch.argmax returns the first maximum).

    Π_q(n_q + k) is tabulated for k = 0..budget once (a prompt receives at most ``budget`` units), then each
    greedy step reads the next entry of every prompt."""
    Q = n.numel()
    k = torch.arange(budget + 1, device=n.device)
    table = priority(s.repeat_interleave(budget + 1), (n[:, None] + k[None, :]).flatten(), T, config).view(Q, -1)
    extra = torch.zeros(Q, dtype=torch.long, device=n.device)
    rows = torch.arange(Q, device=n.device)
    for _ in range(budget):
        extra[int(torch.argmax(table[rows, extra]))] += 1
    return extra


def prompt_stats(R: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prompt ids, n_q, s_q) with s_q the sample std of the sorted rewards (0 for an all-equal group)."""
    ids, inv = torch.unique(g, return_inverse=True)
    n = torch.bincount(inv, minlength=ids.numel())
    s = torch.zeros(ids.numel(), dtype=torch.float64, device=R.device)
    for q in range(ids.numel()):
        x = torch.sort(R[inv == q]).values
        if x[0] != x[-1]:
            s[q] = torch.sqrt(((x - x.sum() / x.numel()) ** 2).sum() / (x.numel() - 1))
    return ids, n, s


def _count(x: Any, name: str) -> int:
    if isinstance(x, torch.Tensor) and x.numel() == 1 and not x.dtype.is_floating_point:
        x = int(x)
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise fail(name, repr(x), "an integer ≥ 0")
    return int(x)


@implements("xrpo")
def xrpo_allocate(rewards, group, budget: int, total_rollouts: int = 0,
                  config: XRPOAllocConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(extra (Q,) int64 summing to budget, priority (Q,) before the phase), prompts in sorted-id order."""
    cfg = config or XRPOAllocConfig()
    R = torch.as_tensor(rewards)
    if R.ndim != 1 or R.numel() == 0 or not bool(torch.isfinite(R.double()).all()):
        raise fail("rewards", f"shape {tuple(R.shape)}", "finite rewards of the first rollouts (B ≥ 1)")
    R = R.double()
    g = common.group_ids(group, R.numel(), device=R.device)
    K, T = _count(budget, "budget"), _count(total_rollouts, "total_rollouts")
    ids, n, s = prompt_stats(R, g)
    if bool((n < 2).any()):
        raise fail("group", f"prompt {int(ids[n < 2][0])} with 1 rollout", "at least 2 rollouts per prompt")
    return greedy_allocate(s, n, K, T, cfg), priority(s, n, T, cfg)


def sequence_logp_mean(old_logp: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """s_i: masked mean of the log-probs of row i (0 for an empty row)."""
    L = M.sum(dim=1)
    return old_logp.sum(dim=1) / L.clamp(min=1).to(old_logp.dtype)


def novelty(s: torch.Tensor, g: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """η = exp(min(s − s̄_g, 0)), s̄_g over the group's valid rows; 1 for rows without tokens."""
    _, inv = torch.unique(g, return_inverse=True)
    Q = int(inv.max()) + 1 if inv.numel() else 0
    v = valid.to(s.dtype)
    cnt = torch.zeros(Q, dtype=s.dtype, device=s.device).index_add_(0, inv, v)
    tot = torch.zeros(Q, dtype=s.dtype, device=s.device).index_add_(0, inv, s * v)
    mean = tot / cnt.clamp(min=1)
    eta = torch.exp(torch.clamp(s - mean[inv], max=0.0))
    return torch.where(valid, eta, torch.ones_like(eta))


def sharpening_bonus(A: torch.Tensor, eta: torch.Tensor, lam_nov: float, kappa: float, cap: str) -> torch.Tensor:
    """min(max(λ(1 − η), 0), κA) where A > 0 ("positive"), or κ|A| on every row ("abs")."""
    raw = torch.clamp(lam_nov * (1.0 - eta), min=0.0)
    if cap == "abs":
        return torch.minimum(raw, kappa * A.abs())
    return torch.where(A > 0, torch.minimum(raw, kappa * A), torch.zeros_like(A))


@implements("xrpo_sharpen")
def xrpo_sharpen(rewards, old_logp, group, mask, config: XRPOSharpenConfig | None = None) -> torch.Tensor:
    """Novelty-sharpened GRPO advantage (B, T)."""
    cfg = config or XRPOSharpenConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    lp = common.upcast(common.clean(old_logp, M, "old_logp"))
    A = grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))
    eta = novelty(sequence_logp_mean(lp, M).to(A.dtype), g, M.any(dim=1))
    Ap = A + sharpening_bonus(A, eta, cfg.lam_nov, cfg.kappa, cfg.cap)
    return torch.where(M, Ap.unsqueeze(1), torch.zeros((), dtype=Ap.dtype, device=Ap.device))

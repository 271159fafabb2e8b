"""OTC tool-integrated reward (torch, vectorised). Mirrors :mod:`rlspec.reference.otc` (arXiv 2504.14870).

r = α·r_tool(m, n)·r_φ with r_tool = sin(f(m, n)π/2n) (n > 0) or cos(mπ/(2m + c)) (n = 0); OTC-GRPO's n is
the fewest calls among each group's correct rollouts (a scatter ``amin``). Computed in float64: the
inputs are integer counts and booleans, so there is no caller dtype to follow.
"""

from __future__ import annotations

import math

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.otc import OTCConfig

__all__ = ["OTCConfig", "otc_mapping", "otc_tool_reward", "otc_optimal_calls", "otc_reward"]


def _calls(calls) -> torch.Tensor:
    m = torch.as_tensor(calls)
    if m.ndim != 1 or m.dtype == torch.bool or m.dtype.is_complex:
        raise fail("calls", f"{m.dtype} {tuple(m.shape)}", "a 1-D tensor of non-negative integer counts")
    m = m.to(torch.float64)
    if bool((~torch.isfinite(m) | (m < 0) | (m != torch.round(m))).any()):
        raise fail("calls", "negative, fractional or non-finite counts", "non-negative integer counts")
    return m


def _correct(correct, B: int) -> torch.Tensor:
    c = torch.as_tensor(correct)
    if c.shape != (B,):
        raise fail("correct", f"shape {tuple(c.shape)}", f"shape ({B},)")
    if c.dtype != torch.bool:
        if c.dtype.is_floating_point or bool(((c != 0) & (c != 1)).any()):
            raise fail("correct", f"dtype {c.dtype}", "a boolean tensor (True = correct answer)")
        c = c.bool()
    return c


def otc_mapping(m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """f(m, n): 0 if m = n = 0; m if n = 0; 2nm/(m + n) otherwise."""
    s = m + n
    hm = torch.where(s > 0, 2.0 * n * m / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
    return torch.where(n == 0, m, hm)


def otc_tool_reward(m: torch.Tensor, n: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """r_tool(m, n) ∈ [0, 1]."""
    f = otc_mapping(m, n)
    cos_branch = torch.where(m == 0, torch.ones_like(m), torch.cos(m * math.pi / (2.0 * m + c)))
    sin_branch = torch.sin(f * math.pi / (2.0 * torch.where(n > 0, n, torch.ones_like(n))))
    return torch.where(n == 0, cos_branch, sin_branch)


def otc_optimal_calls(m: torch.Tensor, correct: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """n (B,): fewest calls among the correct rollouts of each row's group; 0 if none is correct."""
    _, inv = torch.unique(group, return_inverse=True)
    P = int(inv.max()) + 1 if m.numel() else 0
    big = torch.full_like(m, math.inf)
    best = torch.full((P,), math.inf, dtype=m.dtype, device=m.device).scatter_reduce(
        0, inv, torch.where(correct, m, big), "amin", include_self=True)  # (P,)
    n = best[inv]
    return torch.where(torch.isfinite(n), n, torch.zeros_like(n))


@implements("otc")
def otc_reward(calls, correct, group=None, config: OTCConfig | None = None) -> torch.Tensor:
    """r = α·r_tool(m, n)·r_φ (B,) float64; 0 for wrong answers."""
    cfg = config or OTCConfig()
    m = _calls(calls)
    ok = _correct(correct, m.shape[0]).to(m.device)
    if cfg.variant == "grpo":
        if group is None:
            raise fail("group", "None", "prompt ids (B,): OTC-GRPO estimates n within each group")
        g = common.group_ids(group, m.shape[0], device=m.device)
        n = otc_optimal_calls(m, ok, g)
    else:
        n = torch.zeros_like(m)
    return cfg.alpha * otc_tool_reward(m, n, cfg.c) * ok.to(m.dtype)

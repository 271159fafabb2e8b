"""A²FM / APO cost-regularised reward (torch). Mirrors :mod:`rlspec.reference.a2fm` (arXiv 2510.12838).

Vectorised over the batch: per-(query, mode) sums and counts of the forced rollouts by ``index_add_``, then the
easy rule and the cut r₀·(1 − λ p̂_inst^α). Rewards are not differentiated (they weight the advantage); the
computation is float64 whatever the input dtype, since the easy test p̂_inst ≥ τ is a discrete decision that must
agree with the reference on the same inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.a2fm import INSTANT, A2FMConfig

__all__ = ["A2FMConfig", "a2fm_reward", "mode_accuracy", "forced_prefix_mask"]


def _tensor(x: Any, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 1:
        raise fail(name, f"shape {tuple(t.shape)}", "a 1-D array (B,)")
    return t


def _unit(x: Any, name: str, B: int | None = None) -> torch.Tensor:
    t = _tensor(x, name)
    if t.dtype.is_complex or (B is not None and t.shape[0] != B):
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", f"real values of shape ({B},)")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()) or bool(((t < 0) | (t > 1)).any()):
        raise fail(name, "values outside [0, 1] or non-finite", "values in [0, 1]")
    return t


def mode_accuracy(r0: torch.Tensor, mode: torch.Tensor, forced: torch.Tensor, group: torch.Tensor,
                  n_modes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """p̂ (B, M) and counts n (B, M) of the forced rollouts of each mode in each row's group."""
    _, inv = torch.unique(group, return_inverse=True)
    Q = int(inv.max()) + 1 if inv.numel() else 0
    slot = inv * n_modes + mode  # (B,) flat (query, mode) index
    w = forced.to(torch.float64)
    s = torch.zeros(Q * n_modes, dtype=torch.float64).index_add_(0, slot, r0 * w).view(Q, n_modes)
    n = torch.zeros(Q * n_modes, dtype=torch.float64).index_add_(0, slot, w).view(Q, n_modes)
    p_hat = torch.where(n > 0, s / n.clamp(min=1), torch.zeros_like(s))
    return p_hat[inv], n[inv]


@implements("a2fm")
def a2fm_reward(acc, fmt, mode, forced, group, config: A2FMConfig | None = None) -> torch.Tensor:
    """r (B,) float64 = acc·fmt·(1 − λ p̂_inst^α) on the rollouts the cut applies to, acc·fmt elsewhere."""
    cfg = config or A2FMConfig()
    a = _unit(acc, "acc")
    B = a.shape[0]
    f = _unit(fmt, "fmt", B)
    md = _tensor(mode, "mode")
    if md.shape[0] != B or md.dtype.is_floating_point or md.dtype == torch.bool:
        raise fail("mode", f"{md.dtype} {tuple(md.shape)}", f"integer modes of shape ({B},)")
    md = md.long()
    if B and bool(((md < 0) | (md >= cfg.n_modes)).any()):
        raise fail("mode", "values outside the modes", f"modes in 0..{cfg.n_modes - 1}")
    fo = _tensor(forced, "forced")
    if fo.shape[0] != B or (fo.dtype != torch.bool and bool(((fo != 0) & (fo != 1)).any())):
        raise fail("forced", f"{fo.dtype} {tuple(fo.shape)}", f"a boolean array of shape ({B},)")
    fo = fo.bool()
    g = common.group_ids(group, B)
    if B == 0:
        return torch.zeros(0, dtype=torch.float64)
    r0 = a * f
    p_hat, n = mode_accuracy(r0, md, fo, g, cfg.n_modes)
    p_inst = p_hat[:, INSTANT]
    easy = (n[:, INSTANT] > 0) & (p_inst > 0)
    if cfg.easy_rule == "threshold":
        easy &= p_inst >= cfg.tau
    else:
        easy &= p_inst >= torch.where(n > 0, p_hat, torch.full_like(p_hat, -torch.inf)).max(dim=1).values
    applies = easy & (md != INSTANT)
    if cfg.penalize == "adaptive":
        applies &= ~fo
    return r0 * torch.where(applies, 1.0 - cfg.lam * torch.pow(p_inst, cfg.alpha), torch.ones_like(r0))


def forced_prefix_mask(mask: torch.Tensor, forced: torch.Tensor, prefix_len) -> torch.Tensor:
    """Loss mask (B, T) without the first ``prefix_len`` valid tokens of every forced rollout."""
    M = mask.bool()
    rank = torch.cumsum(M.long(), dim=1)
    L = torch.as_tensor(prefix_len, device=M.device).expand(M.shape[0])
    return M & ~(forced.bool()[:, None] & (rank <= L[:, None]))

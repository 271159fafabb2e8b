"""GCPO (GeometryZero, arXiv 2506.07160) reward shaping in torch. Mirrors :mod:`rlspec.reference.gcpo`.

Group Contrastive Masking as scatter sums: per group the counts and correct counts of the constructing
and non-constructing rollouts give acc⁺ and acc⁻, hence M ∈ {−1, 0, +1}; the length reward is a clamp.
Computed in float64 (inputs are booleans, ids and lengths: there is no caller dtype to follow).
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail, positive
from rlspec.reference.gcpo import GCPOConfig

__all__ = ["GCPOConfig", "aux_reward", "group_contrastive_mask", "length_reward", "gcpo_reward"]


def _flags(x, name: str, B: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 1 or (B is not None and t.shape[0] != B):
        raise fail(name, f"shape {tuple(t.shape)}", "a 1-D boolean tensor" + (f" of length {B}" if B else ""))
    if t.dtype != torch.bool:
        if t.dtype.is_floating_point or t.dtype.is_complex or bool(((t != 0) & (t != 1)).any()):
            raise fail(name, f"dtype {t.dtype}", "a boolean tensor")
        t = t.bool()
    return t


def _group(group, B: int, device) -> torch.Tensor:
    g = common.group_ids(group, B, device=device)
    return torch.unique(g, return_inverse=True)[1]


def _vector(x, name: str, B: int, device) -> torch.Tensor:
    t = torch.as_tensor(x, device=device)
    if t.shape != (B,) or t.dtype == torch.bool or t.dtype.is_complex:
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", f"a real tensor of shape ({B},)")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise fail(name, "non-finite values", "finite values")
    return t


def aux_reward(uses_aux: torch.Tensor) -> torch.Tensor:
    """R_aux = 1[constructs auxiliary lines] (B,) — Eq. 3."""
    return uses_aux.to(torch.float64)


def group_contrastive_mask(correct: torch.Tensor, uses_aux: torch.Tensor, inv: torch.Tensor,
                           eps: float = 0.0) -> torch.Tensor:
    """M (B,): sign(acc⁺ − acc⁻) per group when both sides exist and |acc⁺ − acc⁻| > ε, else 0."""
    P = int(inv.max()) + 1 if inv.numel() else 0
    c, a = correct.to(torch.float64), uses_aux.to(torch.float64)
    zeros = torch.zeros(P, dtype=torch.float64, device=c.device)
    n_plus, n_minus = zeros.index_add(0, inv, a), zeros.index_add(0, inv, 1 - a)   # (P,) side sizes
    k_plus, k_minus = zeros.index_add(0, inv, c * a), zeros.index_add(0, inv, c * (1 - a))
    both = (n_plus > 0) & (n_minus > 0)
    diff = k_plus / n_plus.clamp(min=1) - k_minus / n_minus.clamp(min=1)           # acc⁺ − acc⁻
    M = torch.where(both & (diff.abs() > eps), torch.sign(diff), zeros)
    return M[inv]


def length_reward(length: torch.Tensor, len_target: float = 1024.0) -> torch.Tensor:
    """R_len = min(ℓ/ℓ*, 1)."""
    if bool((length < 0).any()):
        raise fail("length", "a negative length", "non-negative lengths")
    return torch.clamp(length / positive(len_target, "len_target"), max=1.0)


@implements("gcpo")
def gcpo_reward(correct, uses_aux, group, length, fmt=None, config: GCPOConfig | None = None) -> torch.Tensor:
    """R (B,) = c + fmt + w_aux·M·R_aux + w_len·R_len (with the configured scopes), float64."""
    cfg = config or GCPOConfig()
    c = _flags(correct, "correct")
    B, dev = c.shape[0], c.device
    a = _flags(uses_aux, "uses_aux", B).to(dev)
    inv = _group(group, B, dev)
    L = _vector(length, "length", B, dev)
    F = torch.zeros(B, dtype=torch.float64, device=dev) if fmt is None else _vector(fmt, "fmt", B, dev)
    M = group_contrastive_mask(c, a, inv, cfg.eps) if cfg.masking else torch.ones(B, dtype=torch.float64, device=dev)
    cf = c.to(torch.float64)
    aux_scope = cf if cfg.aux_on == "correct" else torch.ones_like(cf)
    len_scope = cf if cfg.len_on == "correct" else torch.ones_like(cf)
    return cf + F + cfg.w_aux * M * aux_reward(a) * aux_scope + cfg.w_len * length_reward(L, cfg.len_target) * len_scope

"""SPO value tracker and advantage (torch, vectorised). Mirrors :mod:`rlspec.reference.spo` (arXiv 2509.13232).

The state is the reference's :class:`rlspec.reference.spo.SPOState`; its fields may be NumPy arrays or
tensors on input and are tensors (dtype and device of ``rewards``) on output. Nothing is written in
place: every update builds new tensors. Repeated prompts within a batch follow the config's
``duplicates`` rule ("sequential": one occurrence per round, in batch order; "last": the code's
last-write-wins), with deterministic indexing (no reliance on the order of duplicate scatter writes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.spo import D_HALF, EXPLORE_EPS, RHO_MAX, RHO_MIN, SPOConfig, SPOState


def _as_tensor(x: Any, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, device=device)
    if t.dtype.is_complex or t.dtype == torch.bool:
        raise fail(name, f"dtype {t.dtype}", "a real-valued array")
    return t.to(dtype)


def check_state(state: Any, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(α, β) as tensors (P,) each; finite, ≥ 0, α + β > 0."""
    if not isinstance(state, SPOState):
        raise fail("state", type(state).__name__, "an SPOState (rlspec.reference.spo.init_state)")
    alpha = _as_tensor(state.alpha, "state.alpha", dtype, device)
    beta = _as_tensor(state.beta, "state.beta", dtype, device)
    if alpha.ndim != 1 or alpha.shape != beta.shape or alpha.numel() == 0:
        raise fail("state", f"alpha {tuple(alpha.shape)}, beta {tuple(beta.shape)}",
                   "two vectors of the same length P >= 1")
    ok = torch.isfinite(alpha) & torch.isfinite(beta) & (alpha >= 0) & (beta >= 0) & (alpha + beta > 0)
    if not bool(ok.all()):
        p = int((~ok).nonzero()[0])
        raise fail("state", f"alpha={alpha[p].item()}, beta={beta[p].item()} for prompt {p}",
                   "finite alpha, beta >= 0 with alpha + beta > 0")
    return alpha, beta


def check_batch(prompt_ids: Any, rewards: Any, rho: Any, P: int):
    """Validated (ids int64 (B,), r (B,) in [0, 1], ρ (B,) in (0, 1])."""
    if not isinstance(rewards, torch.Tensor) or rewards.ndim != 1 or not rewards.dtype.is_floating_point:
        raise fail("rewards", f"{type(rewards).__name__} {getattr(rewards, 'shape', '')}", "a 1-D float tensor")
    B = rewards.shape[0]
    ids = torch.as_tensor(prompt_ids, device=rewards.device)
    if ids.shape != (B,) or (B and (ids.dtype.is_floating_point or ids.dtype == torch.bool)):
        raise fail("prompt_ids", f"{ids.dtype} {tuple(ids.shape)}", f"integer prompt indices of shape ({B},)")
    ids = ids.long()
    if bool(((ids < 0) | (ids >= P)).any()):
        raise fail("prompt_ids", f"values in [{int(ids.min())}, {int(ids.max())}]", f"indices in 0..{P - 1}")
    if not bool(torch.isfinite(rewards).all()) or bool(((rewards < 0) | (rewards > 1)).any()):
        raise fail("rewards", "values outside [0, 1] or non-finite", "finite rewards in [0, 1]")
    rho_t = _as_tensor(rho, "rho", rewards.dtype, rewards.device)
    rho_t = rho_t.expand(B) if rho_t.ndim == 0 else rho_t
    if rho_t.shape != (B,) or not bool(torch.isfinite(rho_t).all()) or bool(((rho_t <= 0) | (rho_t > 1)).any()):
        raise fail("rho", f"shape {tuple(rho_t.shape)}, values {rho_t.tolist()}", f"({B},) discounts in (0, 1]")
    return ids, rewards, rho_t


def value(state: SPOState, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """v̂ = α / (α + β) (P,)."""
    alpha, beta = check_state(state, dtype, torch.device(device))
    return alpha / (alpha + beta)


def n_eff(state: SPOState, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """N_eff = α + β (P,)."""
    alpha, beta = check_state(state, dtype, torch.device(device))
    return alpha + beta


def occurrence_rank(ids: torch.Tensor) -> torch.Tensor:
    """0-based index of each sequence among the sequences of its prompt, in batch order (B,)."""
    if ids.numel() == 0:
        return torch.zeros_like(ids)
    sorted_ids, perm = torch.sort(ids, stable=True)
    pos = torch.arange(ids.numel(), device=ids.device)
    new_run = torch.ones_like(sorted_ids, dtype=torch.bool)
    new_run[1:] = sorted_ids[1:] != sorted_ids[:-1]
    run_start = torch.cummax(torch.where(new_run, pos, torch.zeros_like(pos)), dim=0).values
    rank = torch.empty_like(ids)
    rank[perm] = pos - run_start
    return rank


def beta_update(alpha: torch.Tensor, beta: torch.Tensor, ids: torch.Tensor, r: torch.Tensor, rho: torch.Tensor,
                duplicates: str = "sequential") -> tuple[torch.Tensor, torch.Tensor]:
    """α ← ρ α + r, β ← ρ β + (1 − r) at rows ``ids``; returns new tensors."""
    a, b = alpha.clone(), beta.clone()
    rank = occurrence_rank(ids)
    if duplicates == "last":
        count = torch.zeros_like(alpha, dtype=torch.long).index_add_(0, ids, torch.ones_like(ids))
        keep = rank == count[ids] - 1  # the last occurrence of each prompt, read from the pre-batch state
        p = ids[keep]
        a[p] = rho[keep] * alpha[p] + r[keep]
        b[p] = rho[keep] * beta[p] + (1.0 - r[keep])
        return a, b
    for k in range(int(rank.max()) + 1 if ids.numel() else 0):
        rows = rank == k
        p = ids[rows]
        a[p] = rho[rows] * a[p] + r[rows]
        b[p] = rho[rows] * b[p] + (1.0 - r[rows])
    return a, b


def update(state: SPOState, prompt_ids: Any, rewards: torch.Tensor, rho: Any,
           duplicates: str = "sequential") -> SPOState:
    """New tracker (tensor fields) after the batch; ``state`` is untouched."""
    choice(duplicates, "duplicates", ("sequential", "last"))
    alpha, beta = check_state(state, rewards.dtype, rewards.device)
    ids, r, rho_t = check_batch(prompt_ids, rewards, rho, alpha.shape[0])
    a, b = beta_update(alpha, beta, ids, r, rho_t, duplicates)
    return SPOState(alpha=a, beta=b)


def spo_divergence(logp_prev: torch.Tensor, logp_cur: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """D (B,) = masked token-mean |log π_prev − log π_cur|; 0 for a row without valid tokens."""
    M = common.check_mask(mask)
    d = (common.clean(logp_prev, M, "logp_prev") - common.clean(logp_cur, M, "logp_cur")).abs()
    n = M.sum(dim=1)
    return torch.where(n > 0, d.sum(dim=1) / n.clamp(min=1), torch.zeros((), dtype=d.dtype, device=d.device))


def spo_rho(D: torch.Tensor, D_half: float = D_HALF, rho_min: float = RHO_MIN,
            rho_max: float = RHO_MAX) -> torch.Tensor:
    """ρ = clip(2^(−D / D_half), ρ_min, ρ_max)."""
    if not bool(torch.isfinite(D).all()) or bool((D < 0).any()):
        raise fail("D", "negative or non-finite values", "finite divergences >= 0")
    positive(D_half, "D_half")
    if not 0 < rho_min <= rho_max <= 1:
        raise fail("rho_min, rho_max", f"{rho_min}, {rho_max}", "0 < rho_min <= rho_max <= 1")
    return torch.clamp(torch.pow(2.0, -D / D_half), rho_min, rho_max)


def centred_advantage(r: torch.Tensor, v_prev: torch.Tensor) -> torch.Tensor:
    """A = r − v̂₋₁ (B,)."""
    return r - v_prev


def batch_normalize(A: torch.Tensor, ddof: int, eps: float) -> torch.Tensor:
    """Ã = (A − μ_B) / (σ_B + ε); 0 when all A are equal."""
    if A.numel() == 0 or bool((A == A[0]).all()):
        return torch.zeros_like(A)
    return (A - A.mean()) / (A.std(correction=ddof) + eps)


@implements("spo")
def spo_step(state: SPOState, prompt_ids: Any, rewards: torch.Tensor, rho: Any, mask: torch.Tensor,
             config: SPOConfig | None = None) -> tuple[torch.Tensor, SPOState]:
    """``(adv (B, T), new_state)``: Ã from the pre-batch value, then the tracker update."""
    cfg = config or SPOConfig()
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (M.shape[0],):
        raise fail("rewards", f"shape {tuple(getattr(rewards, 'shape', ()))}", f"a tensor of shape ({M.shape[0]},)")
    alpha, beta = check_state(state, rewards.dtype, rewards.device)
    ids, r, rho_t = check_batch(prompt_ids, rewards, rho, alpha.shape[0])
    v_prev = (alpha / (alpha + beta))[ids]  # (B,)
    A = centred_advantage(r, v_prev)
    if cfg.normalize:
        A = batch_normalize(A, cfg.ddof, cfg.eps)
    adv = torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))  # (B, T)
    a, b = beta_update(alpha, beta, ids, r, rho_t, cfg.duplicates)
    return adv, SPOState(alpha=a, beta=b)


def sampling_weights(state: SPOState, candidates: Any = None, gamma: float = 0.0, explore_eps: float = EXPLORE_EPS,
                     dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Probabilities ∝ sqrt(v̂(1 − v̂)) / N_eff^γ + ε_w over ``candidates`` (default all prompts)."""
    alpha, beta = check_state(state, dtype, torch.device(device))
    positive(gamma, "gamma", allow_zero=True)
    positive(explore_eps, "explore_eps", allow_zero=True)
    ids = torch.arange(alpha.numel(), device=alpha.device) if candidates is None else \
        torch.as_tensor(candidates, device=alpha.device).long()
    if bool(((ids < 0) | (ids >= alpha.numel())).any()):
        raise fail("candidates", f"values {ids.tolist()}", f"indices in 0..{alpha.numel() - 1}")
    N = (alpha + beta)[ids]
    v = alpha[ids] / N
    w = torch.sqrt(v * (1 - v)) / N**gamma + explore_eps
    total = w.sum()
    return w / total if bool(total > 0) else torch.full_like(w, 1.0 / max(w.numel(), 1))

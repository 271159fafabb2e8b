"""PIPO retrospective verification (torch). Mirrors :mod:`rlspec.reference.pipo` (arXiv 2604.00860).

The window of past batch means is the reference's frozen :class:`rlspec.reference.pipo.PIPOState`; its
``history`` may be a NumPy array or a tensor on input and is a float64 tensor on output (new tensors, never
written in place). The verdict ξ_t is a scalar computed in float64; the PI reward r̂ = a·φ_λ(ξ_t) is
vectorised over the previous batch with scatter sums for the group attribution, in the advantage's dtype
(half precision upcast to float32, as :func:`rlspec.optimized.common.upcast`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.pipo import PIPOConfig, PIPOState, rectify  # noqa: F401  (φ_λ is a scalar function)

__all__ = ["PIPOConfig", "PIPOState", "init_state", "update", "feedback", "rectify", "sequence_advantage",
           "group_attribution", "pi_reward", "pipo_step"]


def init_state() -> PIPOState:
    """An empty window (float64 tensor)."""
    return PIPOState(history=torch.zeros(0, dtype=torch.float64))


def _history(state: Any) -> torch.Tensor:
    if not isinstance(state, PIPOState):
        raise fail("state", type(state).__name__, "a PIPOState (rlspec.reference.pipo.init_state)")
    h = state.history
    h = h.detach().to("cpu", torch.float64) if isinstance(h, torch.Tensor) else torch.as_tensor(np.asarray(h, dtype=np.float64))
    if h.ndim != 1 or not bool(torch.isfinite(h).all()):
        raise fail("state.history", f"shape {tuple(h.shape)} (finite: {bool(torch.isfinite(h).all())})",
                   "a 1-D finite vector of past batch means")
    return h


def _push(h: torch.Tensor, mu: float, window: int) -> torch.Tensor:
    return torch.cat([h, torch.tensor([mu], dtype=h.dtype)])[-window:]


def feedback(state: PIPOState, mu_t: float, config: PIPOConfig | None = None) -> tuple[float, bool]:
    """(ξ_t, active) — see the reference."""
    cfg = config or PIPOConfig()
    h = _history(state)
    w = h[-cfg.window:] if cfg.anchor == "previous" else _push(h, float(mu_t), cfg.window)
    if w.numel() == 0 or w.numel() < cfg.min_history:
        return 0.0, False
    mu_his = float(w.mean())
    sigma = 1.0
    if w.numel() >= 2 and cfg.window != 1:
        s = float(w.std(correction=cfg.ddof))
        sigma = 1.0 if s < cfg.sigma_floor else s
    progress = float(mu_t) - mu_his
    if cfg.progress_clip is not None:
        progress = min(max(progress, -cfg.progress_clip), cfg.progress_clip)
    xi = progress / sigma if cfg.normalize else progress
    return xi, not (cfg.threshold > 0 and abs(xi) <= cfg.threshold)


def update(state: PIPOState, mu_t: float, config: PIPOConfig | None = None) -> PIPOState:
    """The window after iteration t (μ_t appended once; twice with anchor="code"); ``state`` is untouched."""
    cfg = config or PIPOConfig()
    mu = float(mu_t)
    if not np.isfinite(mu):
        raise fail("mu_t", repr(mu_t), "a finite batch mean reward")
    h = _push(_history(state), mu, cfg.window)
    return PIPOState(history=_push(h, mu, cfg.window) if cfg.anchor == "code" else h)


def sequence_advantage(A: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Ā (B,): masked token-mean; 0 for empty rows."""
    n = M.sum(dim=1)
    return torch.where(n > 0, A.sum(dim=1) / n.clamp(min=1), torch.zeros((), dtype=A.dtype, device=A.device))


def group_attribution(A_seq: torch.Tensor, group: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """a_i = G·Ā_i/(Σ_{j∈g}|Ā_j| + ε); 0 in a group whose Ā are all 0."""
    _, inv = torch.unique(group, return_inverse=True)
    P = int(inv.max()) + 1 if A_seq.numel() else 0
    size = torch.zeros(P, dtype=A_seq.dtype, device=A_seq.device).index_add_(0, inv, torch.ones_like(A_seq))
    total = torch.zeros_like(size).index_add_(0, inv, A_seq.abs()) + eps
    pos = total > 0
    scale = torch.where(pos, size / torch.where(pos, total, torch.ones_like(total)), torch.zeros_like(total))
    return scale[inv] * A_seq


def pi_reward(a: torch.Tensor, xi: float, cfg: PIPOConfig) -> torch.Tensor:
    """r̂ = a·φ_λ(ξ), with the optional clamp of a·ξ before the λ scaling (code)."""
    c = a * xi
    if cfg.coef_clip is not None:
        c = c.clamp(-cfg.coef_clip, cfg.coef_clip)
    return c if xi >= 0 else cfg.lam * c


@implements("pipo")
def pipo_step(state: PIPOState, rewards, prev_adv, prev_group, prev_mask,
              config: PIPOConfig | None = None) -> tuple[torch.Tensor, PIPOState]:
    """``(r_hat (B′, T′), new_state)`` — see :func:`rlspec.reference.pipo.pipo_step`."""
    cfg = config or PIPOConfig()
    R = torch.as_tensor(rewards)
    if R.ndim != 1 or R.numel() == 0 or R.dtype == torch.bool or not bool(torch.isfinite(R.double()).all()):
        raise fail("rewards", f"{R.dtype} {tuple(R.shape)}", "a non-empty 1-D tensor of finite rewards")
    M = common.check_mask(prev_mask, name="prev_mask")
    if M.ndim != 2:
        raise fail("prev_mask", f"shape {tuple(M.shape)}", "shape (B′, T′)")
    A = common.upcast(common.clean(prev_adv, M, "prev_adv"))
    g = torch.as_tensor(prev_group, device=A.device)
    if g.shape != (M.shape[0],) or g.dtype.is_floating_point or g.dtype == torch.bool:
        raise fail("prev_group", f"{g.dtype} {tuple(g.shape)}", f"integer prompt ids of shape ({M.shape[0]},)")
    mu_t = float(R.double().mean())
    xi, active = feedback(state, mu_t, cfg)
    a = group_attribution(sequence_advantage(A, M), g, cfg.attribution_eps)[:, None].expand_as(A) \
        if cfg.attribution == "group" else A
    zero = torch.zeros((), dtype=A.dtype, device=A.device)
    r_hat = torch.where(M, pi_reward(a, xi, cfg), zero) if active else torch.zeros_like(A)
    return r_hat, update(state, mu_t, cfg)


"""GAE(γ, λ) advantages and value targets (torch). Mirrors :mod:`rlspec.reference.gae`.

A reverse loop over T, vectorised over the batch: the running advantage and the next step's value are
carried through masked positions ("skip", verl) or masked positions are steps with r = V = 0 ("zero",
OpenRLHF). Padding is replaced by 0 before any arithmetic, so NaN there never leaks.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.optimized.reinforce_pp import batch_normalize
from rlspec.reference._validate import fail
from rlspec.reference.gae import GAEConfig


def gae_recursion(r: torch.Tensor, V: torch.Tensor, M: torch.Tensor, gamma: float, lam: float,
                  masked_steps: str = "skip") -> torch.Tensor:
    """Â_t = δ_t + γλ·Â_{next}, δ_t = r_t + γ·V_{next} − V_t, V after the last step = 0; (B, T), 0 at masked."""
    B, T = r.shape
    A = torch.zeros_like(r)
    running = torch.zeros(B, dtype=r.dtype, device=r.device)
    next_V = torch.zeros(B, dtype=r.dtype, device=r.device)
    skip = masked_steps == "skip"
    for t in reversed(range(T)):
        m = M[:, t]
        delta = r[:, t] + gamma * next_V - V[:, t]
        step = delta + gamma * lam * running
        running = torch.where(m, step, running) if skip else step
        next_V = torch.where(m, V[:, t], next_V) if skip else V[:, t]
        A[:, t] = torch.where(m, running, torch.zeros_like(running))
    return A


@implements("gae")
def gae_advantage(token_rewards, values, mask, config: GAEConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = config or GAEConfig()
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    r = common.upcast(common.clean(token_rewards, M, "token_rewards"))  # the recursion runs in ≥ float32
    V = common.upcast(common.clean(values, M, "values"))
    A = gae_recursion(r, V, M, cfg.gamma, cfg.lam, cfg.masked_steps)
    returns = torch.where(M, A + V, torch.zeros((), dtype=A.dtype, device=A.device))
    if cfg.whiten:
        A = batch_normalize(A, M, cfg.whiten_ddof, cfg.whiten_eps, "inside")
    return A, returns

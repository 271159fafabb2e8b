"""T-PPO (torch): extended GAE on truncated windows, value targets, token filters, critic loss.

Mirrors :mod:`rlspec.reference.t_ppo`. EGAE is one reverse scan over T, vectorised over the batch: the
running advantage and the next step's value skip masked positions; at a row's last valid token the value
after it is 0 for a finished row and the token's own value for a truncated one (V(s_l) := V(s_{l−1})).
Padding is replaced by 0 before any arithmetic. Gradients of the critic loss come from autograd.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.t_ppo import TPPOConfig, TPPOValueConfig

__all__ = ["TPPOConfig", "TPPOValueConfig", "egae_scan", "policy_token_mask", "value_token_mask",
           "tppo_advantage", "tppo_value_loss"]


def _row_flags(x, B: int, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.shape != (B,):
        raise fail(name, f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}", f"a ({B},) tensor: one flag per row")
    return common.check_mask(x, name=name)


def _window_start(x, B: int, device) -> torch.Tensor:
    if x is None:
        return torch.zeros(B, dtype=torch.long, device=device)
    if not isinstance(x, torch.Tensor) or x.shape != (B,) or x.dtype.is_floating_point or x.dtype == torch.bool:
        raise fail("window_start", f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}", f"({B},) integer positions")
    if bool((x < 0).any()):
        raise fail("window_start", f"a negative position {int(x.min())}", "positions ≥ 0")
    return x.long()


def egae_scan(r: torch.Tensor, V: torch.Tensor, M: torch.Tensor, finished: torch.Tensor, gamma: float,
              lam: float) -> torch.Tensor:
    """Â (B, T): Â_t = δ_t + γλ·Â_next over valid steps; after the last valid step V = 0 (finished) or V_last."""
    B, T = r.shape
    A = torch.zeros_like(r)
    zero = torch.zeros(B, dtype=r.dtype, device=r.device)
    running, next_V = zero, zero
    seen = torch.zeros(B, dtype=torch.bool, device=r.device)
    for t in reversed(range(T)):
        m = M[:, t]
        bootstrap = torch.where(finished, zero, V[:, t])  # value after the last known token
        nv = torch.where(seen, next_V, bootstrap)
        step = r[:, t] + gamma * nv - V[:, t] + gamma * lam * running
        running = torch.where(m, step, running)
        next_V = torch.where(m, V[:, t], next_V)
        seen = seen | m
        A[:, t] = torch.where(m, running, zero)
    return A


def policy_token_mask(M: torch.Tensor, window_start: torch.Tensor) -> torch.Tensor:
    """mask ∧ t ≥ window_start (B, T)."""
    t = torch.arange(M.shape[1], device=M.device)
    return M & (t[None, :] >= window_start[:, None])


def value_token_mask(M: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """mask ∧ finished (B, T)."""
    return M & finished[:, None]


@implements("t_ppo")
def tppo_advantage(token_rewards, values, mask, finished, window_start=None, config: TPPOConfig | None = None):
    """(adv, returns, policy_mask, value_mask), each (B, T) — see the reference."""
    cfg = config or TPPOConfig()
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    B = M.shape[0]
    r = common.upcast(common.clean(token_rewards, M, "token_rewards"))
    V = common.upcast(common.clean(values, M, "values"))
    done = _row_flags(finished, B, "finished").to(M.device)
    start = _window_start(window_start, B, M.device)
    A = egae_scan(r, V, M, done, cfg.gamma, cfg.lam)
    vm = value_token_mask(M, done)
    A_c = egae_scan(r, V, vm, torch.ones_like(done), cfg.gamma, cfg.critic_lam)
    returns = torch.where(vm, A_c + V, torch.zeros((), dtype=V.dtype, device=V.device))
    return A, returns, policy_token_mask(M, start), vm


@implements("t_ppo_value")
def tppo_value_loss(values, old_values, returns, mask, config: TPPOValueConfig | None = None, finished=None):
    """Scalar critic loss over mask ∧ finished; ``loss.backward()`` gives dvalues."""
    cfg = config or TPPOValueConfig()
    if not isinstance(values, torch.Tensor) or values.ndim != 2:
        raise fail("values", f"{type(values).__name__} {getattr(values, 'shape', '')}", "a (B, T) torch.Tensor")
    M = common.check_mask(mask, values.shape)
    done = torch.ones(M.shape[0], dtype=torch.bool, device=M.device) if finished is None else \
        _row_flags(finished, M.shape[0], "finished").to(M.device)
    vm = value_token_mask(M, done)
    V = common.upcast(common.clean(values, vm, "values"))
    V_old = common.upcast(common.clean(old_values, vm, "old_values")).detach()
    R = common.upcast(common.clean(returns, vm, "returns")).detach()
    ell = (V - R) ** 2
    if cfg.eps is not None:
        ell = torch.maximum(ell, (V_old + torch.clamp(V - V_old, -cfg.eps, cfg.eps) - R) ** 2)
    return 0.5 * common.aggregate(ell, vm, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                                  seq_denominator=cfg.seq_denominator)

"""HDPO (torch). Mirrors :mod:`rlspec.reference.hdpo`; the gradient is autograd through the simulator.

That is HDPO's method itself (arXiv 2306.11246; official code ``trainer.py``): simulate the known
inventory dynamics under the policy with differentiable tensor operations and backpropagate the
average cost to the policy parameters. Here the policy is the base-stock level S.

Kinks use the same convention as the reference: x⁺ is written ``torch.where(x > 0, x, 0)``, whose
derivative is 1[x > 0] (``torch.clamp`` would give 1[x ≥ 0]).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.hdpo import HDPOConfig


def _pos(x: torch.Tensor) -> torch.Tensor:
    """x⁺ with derivative 1[x > 0]."""
    return torch.where(x > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


def base_stock_order(S: torch.Tensor, IP: torch.Tensor) -> torch.Tensor:
    """a = (S − IP)⁺, (B,)."""
    return _pos(S - IP)


def period_cost(I: torch.Tensor, d: torch.Tensor, h: float, p: float) -> torch.Tensor:
    """c = h·(I − d)⁺ + p·(d − I)⁺, (B,)."""
    return h * _pos(I - d) + p * _pos(d - I)


def next_on_hand(I: torch.Tensor, d: torch.Tensor, lost_sales: bool) -> torch.Tensor:
    """I − d (backlog) or (I − d)⁺ (lost sales)."""
    return _pos(I - d) if lost_sales else I - d


def _inputs(S, demands, cfg: HDPOConfig, x0):
    if not isinstance(demands, torch.Tensor) or demands.ndim != 2 or not demands.dtype.is_floating_point:
        raise fail("demands", f"{type(demands).__name__} {getattr(demands, 'shape', '')}",
                   "a (B, T) floating torch.Tensor")
    B, T = demands.shape
    if B == 0 or T == 0:
        raise fail("demands", f"shape {tuple(demands.shape)}", "at least one path and one period")
    if not bool(torch.isfinite(demands).all()):
        raise fail("demands", "a non-finite value", "finite demands")
    if cfg.lost_sales and bool((demands < 0).any()):
        raise fail("demands", "a negative demand", "demands ≥ 0 with lost sales")
    if cfg.ignore_periods >= T:
        raise fail("ignore_periods", repr(cfg.ignore_periods), f"fewer than the T = {T} periods")
    if not isinstance(S, torch.Tensor):
        S = torch.as_tensor(S, dtype=demands.dtype, device=demands.device)
    if S.numel() != 1 or not bool(torch.isfinite(S).all()):
        raise fail("S", repr(S), "a finite scalar base-stock level")
    width = max(cfg.L, 1)
    y0 = torch.zeros(B, cfg.L + 1, dtype=demands.dtype, device=demands.device)
    if x0 is not None:
        x = torch.as_tensor(x0, dtype=demands.dtype, device=demands.device)
        if tuple(x.shape) not in ((width,), (B, width)):
            raise fail("x0", f"shape {tuple(x.shape)}", f"({width},) or ({B}, {width}): on-hand, then pipeline")
        if not bool(torch.isfinite(x).all()) or (cfg.lost_sales and bool((x < 0).any())):
            raise fail("x0", "non-finite or negative values", "finite values (≥ 0 with lost sales)")
        y0[:, :width] = x
    return S.reshape(()), y0


def rollout(S: torch.Tensor, demands: torch.Tensor, config: HDPOConfig | None = None, x0=None) -> torch.Tensor:
    """Per-period costs (B, T), differentiable in S. State columns: on hand, then arrivals in 1..L periods."""
    cfg = config or HDPOConfig()
    S, y = _inputs(S, demands, cfg, x0)
    L = cfg.L
    costs = []
    for t in range(demands.shape[1]):
        a = base_stock_order(S, y.sum(dim=1))
        y = torch.cat([y[:, :L], y[:, L:] + a[:, None]], dim=1)          # order goes to column L
        d = demands[:, t]
        costs.append(period_cost(y[:, 0], d, cfg.h, cfg.p))
        post = next_on_hand(y[:, 0], d, cfg.lost_sales)
        shifted = torch.cat([y[:, 1:], torch.zeros_like(y[:, :1])], dim=1)  # pipeline one period closer
        y = torch.cat([shifted[:, :1] + post[:, None], shifted[:, 1:]], dim=1)
    return torch.stack(costs, dim=1)


def simulate_costs(S, demands, L: int = 0, h: float = 1.0, p: float = 9.0, lost_sales: bool = False,
                   x0=None, ignore_periods: int = 0) -> torch.Tensor:
    """Per-path average cost (B,), differentiable in S."""
    cfg = HDPOConfig(L=L, h=h, p=p, lost_sales=lost_sales, ignore_periods=ignore_periods)
    return rollout(S, demands, cfg, x0)[:, ignore_periods:].mean(dim=1)


def hdpo_cost(S, demands, config: HDPOConfig | None = None, x0=None) -> torch.Tensor:
    """J(S) = mean over paths and counted periods of c_bt (scalar tensor, differentiable in S)."""
    cfg = config or HDPOConfig()
    return rollout(S, demands, cfg, x0)[:, cfg.ignore_periods:].mean()


@implements("hdpo")
def hdpo_objective(S, demands, config: HDPOConfig | None = None, x0=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(J(S), dJ/dS): the cost and its autograd gradient w.r.t. a detached copy of S."""
    if not isinstance(demands, torch.Tensor):
        raise fail("demands", type(demands).__name__, "a (B, T) floating torch.Tensor")
    S_leaf = torch.as_tensor(S, dtype=demands.dtype, device=demands.device).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        J = hdpo_cost(S_leaf, demands, config, x0)
        (g,) = torch.autograd.grad(J, S_leaf)
    return J.detach(), g


def hdpo_train(S0: float, sample_demands: Callable[[np.random.Generator], np.ndarray], steps: int, lr: float,
               config: HDPOConfig | None = None, *, optimizer: str = "sgd", seed: int = 0, x0=None,
               lr_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               parametrization: str = "direct", dtype: torch.dtype = torch.float64) -> np.ndarray:
    """HDPO with ``torch.optim`` (SGD or Adam) on θ = S or S = softplus(θ); same sampling as the reference.

    ``sample_demands(rng)`` returns NumPy (B, T) paths, so the demand stream given ``seed`` is the
    reference's. Returns the trajectory of S, shape (steps + 1,).
    """
    cfg = config or HDPOConfig()
    choice(optimizer, "optimizer", ("sgd", "adam"))
    choice(parametrization, "parametrization", ("direct", "softplus"))
    positive(lr, "lr")
    S0 = float(S0)
    init = S0 if parametrization == "direct" else S0 + float(np.log(-np.expm1(-S0)))
    theta = torch.tensor(init, dtype=dtype, requires_grad=True)
    opt = (torch.optim.SGD([theta], lr=lr) if optimizer == "sgd"
           else torch.optim.Adam([theta], lr=lr, betas=betas, eps=eps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (1.0 + k) ** (-lr_decay))
    level = (lambda th: th) if parametrization == "direct" else torch.nn.functional.softplus
    rng = np.random.default_rng(seed)
    traj = [S0]
    for _ in range(int(steps)):
        D = torch.as_tensor(np.asarray(sample_demands(rng), dtype=np.float64), dtype=dtype)
        opt.zero_grad()
        hdpo_cost(level(theta), D, cfg, x0).backward()
        opt.step()
        sched.step()
        traj.append(float(level(theta.detach())))
    return np.asarray(traj)

"""FG-ExPO adaptive KL and Gaussian curriculum sampling (torch). Mirrors :mod:`rlspec.reference.fg_expo`
(arXiv 2605.11403).

The state is the reference's :class:`rlspec.reference.fg_expo.FGExPOState`; its field may be a NumPy array or
a tensor on input and is a tensor (dtype and device of ``pass_rate``) on output. Half precision is computed
in float32. The draw of the next batch is a discrete decision: its cumulative probabilities are taken in
float64 whatever the input dtype, so the indices agree with the reference on the same (rounded) inputs.
Nothing here is differentiable: β_eff multiplies the k3 KL term of the loss as a constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail, in_range
from rlspec.reference.fg_expo import FGExPOConfig, FGExPOState

__all__ = ["FGExPOConfig", "FGExPOState", "batch_accuracy", "akl_rho", "akl_beta", "init_state", "update",
           "gcs_weights", "gcs_probs", "gcs_sample", "fg_expo_step"]


def _vector(x: Any, name: str, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), device=device)
    if t.ndim != 1 or t.dtype == torch.bool or t.dtype.is_complex:
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", "a real 1-D array")
    t = t.to(device=device) if device is not None else t
    t = t.to(dtype) if dtype is not None else (t if t.dtype.is_floating_point else t.double())
    if not bool(torch.isfinite(t).all()):
        raise fail(name, "non-finite values", "finite values")
    return t


def check_state(state: Any, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """p̃ (Q,) as a tensor, Q ≥ 1, values in [0, 1]."""
    if not isinstance(state, FGExPOState):
        raise fail("state", type(state).__name__, "an FGExPOState (rlspec.reference.fg_expo.init_state)")
    p = _vector(state.p_tilde, "state.p_tilde", dtype, device)
    if p.numel() == 0 or bool(((p < 0) | (p > 1)).any()):
        raise fail("state.p_tilde", f"{p.numel()} values", "at least one pass rate, all in [0, 1]")
    return p


def check_pass_rates(pass_rate: Any, length: int | None = None) -> torch.Tensor:
    p = _vector(pass_rate, "pass_rate")
    p = common.upcast(p)
    if (length is not None and p.shape[0] != length) or bool(((p < 0) | (p > 1)).any()):
        raise fail("pass_rate", f"shape {tuple(p.shape)}", f"({length if length is not None else 'N'},) pass rates "
                   "in [0, 1]")
    return p


def check_indices(idx: Any, Q: int, device: Any) -> torch.Tensor:
    t = idx if isinstance(idx, torch.Tensor) else torch.as_tensor(np.asarray(idx), device=device)
    if t.ndim != 1 or (t.numel() and (t.dtype.is_floating_point or t.dtype == torch.bool)):
        raise fail("idx", f"{t.dtype} {tuple(t.shape)}", "a 1-D array of integer question indices")
    t = t.long().to(device)
    if t.numel() and bool(((t < 0) | (t >= Q)).any()):
        raise fail("idx", f"values in [{int(t.min())}, {int(t.max())}]", f"indices in 0..{Q - 1}")
    return t


def batch_accuracy(pass_rate: Any) -> torch.Tensor:
    """acc̄ = mean of the batch's pass rates (a 0-d tensor)."""
    p = check_pass_rates(pass_rate)
    if p.numel() == 0:
        raise fail("pass_rate", "an empty batch", "at least one question (acc̄ is a mean over the batch)")
    return p.mean()


def akl_rho(acc_bar: torch.Tensor, rho: str = "tanh") -> torch.Tensor:
    """ρ(x) = (tanh x + 1)/2, or 1 for ``rho="one"``."""
    return (torch.tanh(acc_bar) + 1.0) / 2.0 if rho == "tanh" else torch.ones_like(acc_bar)


def akl_beta(acc_bar: Any, config: FGExPOConfig | None = None) -> torch.Tensor:
    """β_eff = β · ρ(acc̄)."""
    cfg = config or FGExPOConfig()
    a = acc_bar if isinstance(acc_bar, torch.Tensor) else torch.tensor(float(acc_bar), dtype=torch.float64)
    in_range(float(a), "acc_bar", 0.0, 1.0)
    return cfg.beta * akl_rho(a, cfg.rho)


def init_state(num_questions: int, p0: float = 0.5, dtype: torch.dtype = torch.float64,
               device: Any = "cpu") -> FGExPOState:
    """p̃ = p0 for every question (paper: 0.5)."""
    if not isinstance(num_questions, int) or num_questions < 1:
        raise fail("num_questions", repr(num_questions), "an integer ≥ 1")
    return FGExPOState(p_tilde=torch.full((num_questions,), in_range(p0, "p0", 0.0, 1.0), dtype=dtype, device=device))


def update(state: FGExPOState, idx: Any, pass_rate: Any, config: FGExPOConfig | None = None) -> FGExPOState:
    """EMA of the sampled questions' pass rates, one update per occurrence in batch order. Pure.

    Vectorised: the k-th occurrence (0-based, in batch order) of question q among its m occurrences ends with
    weight (1 − α) α^(m − 1 − k); the old value keeps weight α^m."""
    cfg = config or FGExPOConfig()
    p = check_pass_rates(pass_rate)
    p_tilde = check_state(state, p.dtype, p.device)
    ids = check_indices(idx, p_tilde.shape[0], p.device)
    if ids.shape[0] != p.shape[0]:
        raise fail("pass_rate", f"shape {tuple(p.shape)}", f"({ids.shape[0]},): one pass rate per index")
    if ids.numel() == 0:
        return FGExPOState(p_tilde=p_tilde.clone())
    Q = p_tilde.shape[0]
    same = ids[:, None] == ids[None, :]  # (N, N)
    later = torch.triu(same, diagonal=1).sum(dim=1)  # occurrences after this one
    m = torch.zeros(Q, dtype=torch.long, device=p.device).index_add_(0, ids, torch.ones_like(ids))
    alpha = torch.tensor(cfg.alpha, dtype=p.dtype, device=p.device)
    contrib = torch.zeros(Q, dtype=p.dtype, device=p.device).index_add_(0, ids, (1 - alpha) * alpha**later * p)
    return FGExPOState(p_tilde=alpha**m * p_tilde + contrib)


def gcs_log_weights(p_tilde: torch.Tensor, sigma: float, center: float) -> torch.Tensor:
    return -((p_tilde - center) ** 2) / (2.0 * sigma**2)


def gcs_weights(p_tilde: Any, config: FGExPOConfig | None = None) -> torch.Tensor:
    """w_q = exp(−(p̃_q − μ)²/(2σ²)) (Q,)."""
    cfg = config or FGExPOConfig()
    p = check_state(FGExPOState(p_tilde), None, None)
    return torch.exp(gcs_log_weights(common.upcast(p), cfg.sigma, cfg.center))


def gcs_probs(p_tilde: Any, config: FGExPOConfig | None = None) -> torch.Tensor:
    """Pr[q] = softmax(log w) (Q,)."""
    cfg = config or FGExPOConfig()
    p = check_state(FGExPOState(p_tilde), None, None)
    return torch.softmax(gcs_log_weights(common.upcast(p), cfg.sigma, cfg.center), dim=0)


def gcs_sample(probs: torch.Tensor, u: Any) -> torch.Tensor:
    """Inverse-CDF draws with replacement (n,) int64, cumulative probabilities in float64."""
    P = _vector(probs, "probs").double()
    if P.numel() == 0 or bool((P < 0).any()) or abs(float(P.sum()) - 1.0) > 1e-6:
        raise fail("probs", f"{P.numel()} values summing to {float(P.sum())}", "a non-empty probability vector")
    U = _vector(u, "u", device=P.device).double()
    if bool(((U < 0) | (U >= 1)).any()):
        raise fail("u", "values outside [0, 1)", "uniform draws in [0, 1)")
    F = torch.cumsum(P, dim=0)
    return torch.searchsorted(F, U, right=True).clamp(max=P.numel() - 1)


@implements("fg_expo")
def fg_expo_step(state: FGExPOState, idx: Any, pass_rate: Any, u: Any, config: FGExPOConfig | None = None):
    """(beta_eff, probs (Q,), next_idx (n,), new_state) — see :func:`rlspec.reference.fg_expo.fg_expo_step`."""
    cfg = config or FGExPOConfig()
    beta_eff = akl_beta(batch_accuracy(pass_rate), cfg)
    new_state = update(state, idx, pass_rate, cfg)
    probs = gcs_probs(new_state.p_tilde, cfg)
    # the draw uses float64 probabilities from the same p̃, as the reference does
    P64 = torch.softmax(gcs_log_weights(new_state.p_tilde.double(), cfg.sigma, cfg.center), dim=0)
    return beta_eff, probs, gcs_sample(P64, u), new_state

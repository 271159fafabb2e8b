"""REINFORCE++ / REINFORCE++-baseline advantages (torch). Mirrors :mod:`rlspec.reference.reinforce_pp`.

The return-to-go is a reverse loop over T (vectorised over the batch); everything else is masked
reductions. Masked positions are replaced by 0 with ``torch.where`` before any arithmetic.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference.reinforce_pp import ReinforcePPBaselineConfig, ReinforcePPConfig


def last_valid_index(M: torch.Tensor) -> torch.Tensor:
    """Index of the last True of each row (B,); −1 for rows with no valid token."""
    T = M.shape[1]
    if T == 0:  # no tokens at all (argmax has nothing to reduce)
        return torch.full((M.shape[0],), -1, dtype=torch.int64, device=M.device)
    last = T - 1 - torch.argmax(torch.flip(M, dims=(1,)).to(torch.int8), dim=1)
    return torch.where(M.any(dim=1), last, torch.full_like(last, -1))


def outcome_token_rewards(R: torch.Tensor, M: torch.Tensor, kl: torch.Tensor | None, beta: float) -> torch.Tensor:
    """r_t = 1[t = last valid]·R − β·KL_t at valid tokens, 0 elsewhere (B, T)."""
    last = last_valid_index(M)
    at_last = torch.arange(M.shape[1], device=M.device).unsqueeze(0) == last.unsqueeze(1)
    r = torch.where(at_last, R.unsqueeze(1), torch.zeros((), dtype=R.dtype, device=R.device))
    if kl is not None:
        r = r - beta * kl
    return torch.where(M, r, torch.zeros((), dtype=r.dtype, device=r.device))


def discounted_returns(r: torch.Tensor, M: torch.Tensor, gamma: float, discount_masked: bool = False) -> torch.Tensor:
    """A_t = r_t + γ·A_{next step}; steps are valid tokens (or every position with ``discount_masked``)."""
    B, T = r.shape
    A = torch.zeros_like(r)
    G = torch.zeros(B, dtype=r.dtype, device=r.device)
    for t in reversed(range(T)):
        m = M[:, t]
        G = torch.where(m, r[:, t] + gamma * G, gamma * G if discount_masked else G)
        A[:, t] = torch.where(m, G, torch.zeros_like(G))
    return A


def batch_normalize(A: torch.Tensor, M: torch.Tensor, ddof: int, eps: float, eps_placement: str,
                    std_normalize: bool = True) -> torch.Tensor:
    """(A − mean)/std over the valid tokens of the batch; 0 if none are valid or all are equal."""
    zero = torch.zeros((), dtype=A.dtype, device=A.device)
    N = int(M.sum())
    if N == 0:
        return torch.zeros_like(A)
    hi = torch.where(M, A, torch.full_like(A, -torch.inf)).max()
    lo = torch.where(M, A, torch.full_like(A, torch.inf)).min()
    if bool(hi == lo) or N <= ddof:
        return torch.zeros_like(A)
    Am = torch.where(M, A, zero)
    mean = Am.sum() / N
    centred = torch.where(M, A - mean, zero)
    if not std_normalize:
        return centred
    var = (centred**2).sum() / (N - ddof)
    if eps_placement == "clamp":
        scale = torch.rsqrt(var.clamp(min=eps))
    elif eps_placement == "inside":
        scale = torch.rsqrt(var + eps)
    else:
        scale = 1.0 / (var.sqrt() + eps)
    return centred * scale


def group_centred_reward(R: torch.Tensor, group: torch.Tensor, singleton: str = "zero") -> torch.Tensor:
    """R − group mean (B,); singleton groups get 0 or (``"raw"``) keep R."""
    _, inv = torch.unique(group, return_inverse=True)
    n = int(inv.max()) + 1 if R.numel() else 0
    size = torch.zeros(n, dtype=R.dtype, device=R.device).index_add_(0, inv, torch.ones_like(R))[inv]
    mean = (torch.zeros(n, dtype=R.dtype, device=R.device).index_add_(0, inv, R))[inv] / size
    hi = torch.full((n,), -torch.inf, dtype=R.dtype, device=R.device).scatter_reduce(0, inv, R, "amax")[inv]
    lo = torch.full((n,), torch.inf, dtype=R.dtype, device=R.device).scatter_reduce(0, inv, R, "amin")[inv]
    Rt = torch.where(hi == lo, torch.zeros_like(R), R - mean)  # all-equal group: exactly 0, as the reference
    return torch.where(size == 1, R if singleton == "raw" else torch.zeros_like(R), Rt)


def _advantage(R, M, kl, cfg: ReinforcePPConfig) -> torch.Tensor:
    r = outcome_token_rewards(R, M, kl, cfg.kl_coef)
    A = discounted_returns(r, M, cfg.gamma, cfg.discount_masked)
    return batch_normalize(A, M, cfg.ddof, cfg.eps, cfg.eps_placement, cfg.std_normalize)


@implements("reinforce_pp")
def reinforce_pp_advantage(rewards, group, mask, config: ReinforcePPConfig | None = None, kl=None) -> torch.Tensor:
    cfg = config or ReinforcePPConfig()
    R, _, M = validate_outcome(rewards, group, mask)
    return _advantage(R, M, None if kl is None else common.clean(kl, M, "kl"), cfg)


@implements("reinforce_pp_baseline")
def reinforce_pp_baseline_advantage(rewards, group, mask, config: ReinforcePPBaselineConfig | None = None,
                                    kl=None) -> torch.Tensor:
    cfg = config or ReinforcePPBaselineConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    Rt = group_centred_reward(R, g, cfg.singleton)
    return _advantage(Rt, M, None if kl is None else common.clean(kl, M, "kl"), cfg)

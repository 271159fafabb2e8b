"""ProMed (arXiv 2508.13514) in torch: exact Shapley values as one matrix product, SIG weights, SIG per
turn, token rewards and the token-level group baseline. Mirrors :mod:`rlspec.reference.promed`.

Exact Shapley values are linear in the characteristic-function table v (2^n,): φ = C v with
C[i, m] = c(|m| − 1) if bit i of m is set and −c(|m|) otherwise, c(s) = s!(n−s−1)!/n!. C (n, 2^n)
is built once per (n, dtype, device) and cached. The Monte-Carlo estimator and the user-supplied
callables (LLM log-probs, fact checker) stay in the reference: they are sequential by nature.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.promed import CREDIT_MODES, MAX_EXACT_FACTS, WEIGHT_METHODS, PromedConfig


@lru_cache(maxsize=64)
def shapley_matrix(n: int, dtype: torch.dtype = torch.float64, device: str = "cpu") -> torch.Tensor:
    """C (n, 2^n) with φ = C v: +c(|m|−1) where i ∈ m, −c(|m|) where i ∉ m (c(n) := 0, unused)."""
    m = torch.arange(1 << n, device=device)
    bits = (m[None, :] >> torch.arange(n, device=device)[:, None]) & 1        # (n, 2^n) i ∈ m
    size = bits.sum(dim=0)                                                  # (2^n,) |m|
    c = torch.tensor([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)] + [0.0],
                     dtype=torch.float64, device=device)                    # (n+1,) c(s), c(n) = 0
    C = torch.where(bits.bool(), c[(size - 1).clamp(min=0)], -c[size])
    return C.to(dtype)


def check_table(values: torch.Tensor) -> tuple[torch.Tensor, int]:
    if not isinstance(values, torch.Tensor) or values.ndim != 1:
        raise fail("values", f"{type(values).__name__} {tuple(getattr(values, 'shape', ()))}", "a 1-D torch.Tensor")
    L = values.shape[0]
    if L < 1 or L & (L - 1) or L.bit_length() - 1 > MAX_EXACT_FACTS:
        raise fail("values", f"length {L}", f"length 2^n, n ≤ {MAX_EXACT_FACTS}: one value per subset")
    if not bool(torch.isfinite(values).all()):
        raise fail("values", "non-finite values", "finite values of the characteristic function")
    return values, L.bit_length() - 1


def shapley_exact(values: torch.Tensor) -> torch.Tensor:
    """φ (n,) = C v: exact Shapley values from the bitmask-indexed table v (2^n,). Differentiable in v."""
    v, n = check_table(values)
    if n == 0:
        return v.new_zeros(0)
    C = shapley_matrix(n, torch.float64 if v.dtype == torch.float64 else torch.float32, str(v.device))
    return (C @ v.to(C.dtype)).to(v.dtype)


def sig_weights(phi: torch.Tensor, tau: float = 2.0, method: str = "softmax") -> torch.Tensor:
    """w = softmax(φ/τ) (or softmax(|z(φ)|)); uniform for n = 1 or std φ < 1e-8."""
    positive(tau, "tau")
    choice(method, "method", WEIGHT_METHODS)
    n = phi.shape[0]
    if n == 0:
        return phi
    std = phi.std(unbiased=False) if n > 1 else phi.new_zeros(())
    if n == 1 or float(std) < 1e-8:
        return torch.full_like(phi, 1.0 / n)
    x = phi / tau if method == "softmax" else ((phi - phi.mean()) / std).abs()
    return torch.softmax(x, dim=0)


def sig_per_turn(acquired: torch.Tensor, w: torch.Tensor, credit: str = "new") -> torch.Tensor:
    """SIG_t = Σ_i N_ti w_i; N = first acquisition ("new") or every acquisition ("every-mention")."""
    choice(credit, "credit", CREDIT_MODES)
    A = common.check_mask(acquired, name="acquired")
    if A.ndim != 2 or A.shape[1] != w.shape[0]:
        raise fail("acquired", f"shape {tuple(A.shape)}", f"shape (n_turns, {w.shape[0]})")
    if credit == "new":
        seen_before = (A.cumsum(dim=0) - A.long()) > 0                        # acquired in an earlier turn
        A = A & ~seen_before
    return A.to(w.dtype) @ w


@implements("promed")
def promed_sig_reward(values: torch.Tensor, acquired: torch.Tensor, config: PromedConfig | None = None):
    """(φ, w, SIG) from the table v (2^n,) and the acquisition matrix (n_turns, n)."""
    cfg = config or PromedConfig()
    phi = shapley_exact(values)
    w = sig_weights(phi, cfg.tau, cfg.weight_method)
    return phi, w, sig_per_turn(acquired, w, cfg.credit)


def promed_token_rewards(question: torch.Tensor, sig: torch.Tensor, answer: torch.Tensor, correct: torch.Tensor,
                         mask: torch.Tensor, fmt: torch.Tensor | None = None,
                         config: PromedConfig | None = None) -> torch.Tensor:
    """R (B, T): α·SIG_q + β·SIG_q·c on question tokens, γ·c on answer tokens, + fmt_weight·fmt; 0 if masked."""
    cfg = config or PromedConfig()
    M = common.check_mask(mask)
    in_q = (question >= 0) & M
    idx = torch.where(in_q, question, torch.zeros_like(question))
    s_tok = torch.where(in_q, torch.gather(sig, 1, idx), torch.zeros((), dtype=sig.dtype))
    c = common.check_mask(correct, name="correct").to(sig.dtype)[:, None]
    ans = common.check_mask(answer, M.shape, "answer") & M
    F = torch.zeros_like(s_tok) if fmt is None else common.clean(fmt.to(sig.dtype), M, "fmt")
    R = torch.where(in_q, cfg.alpha * s_tok + cfg.beta * s_tok * c, torch.zeros_like(s_tok))
    R = R + torch.where(ans, cfg.gamma * c.expand_as(R), torch.zeros_like(R)) + cfg.fmt_weight * F
    return torch.where(M, R, torch.zeros_like(R))


@implements("promed_token_baseline")
def token_group_baseline_advantage(rewards: torch.Tensor, group: torch.Tensor, mask: torch.Tensor,
                                   config=None) -> torch.Tensor:
    """A = R − (token-mean of R over the valid tokens of the group), zero where masked."""
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    if rewards.ndim == 1:  # sequence rewards: every one must be finite, as in the reference (finite_vector)
        if rewards.shape[0] != M.shape[0]:
            raise fail("rewards", f"length {rewards.shape[0]}", f"length {M.shape[0]} (one reward per row of mask)")
        if not bool(torch.isfinite(rewards).all()):
            raise fail("rewards", "non-finite values", "finite values")
        rewards = rewards[:, None].expand(M.shape)
    R = common.upcast(common.clean(rewards, M, "rewards"))  # group token-means in ≥ float32
    group = common.group_ids(group, M.shape[0], device=M.device)
    if M.shape[0] == 0:
        return R
    _, inv = torch.unique(group, return_inverse=True)
    G = int(inv.max()) + 1
    tok_sum = R.new_zeros(G).index_add_(0, inv, R.sum(dim=1))                 # (G,) Σ valid rewards
    tok_cnt = R.new_zeros(G).index_add_(0, inv, M.to(R.dtype).sum(dim=1))     # (G,) # valid tokens
    baseline = torch.where(tok_cnt > 0, tok_sum / tok_cnt.clamp(min=1), torch.zeros_like(tok_sum))
    return torch.where(M, R - baseline[inv][:, None], torch.zeros_like(R))

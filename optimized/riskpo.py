"""RiskPO (torch): the clipped loss and the bundled mixed value-at-risk advantage. Mirrors
:mod:`rlspec.reference.riskpo`; the loss runs a fused core (:mod:`rlspec.optimized.fused`), the advantage is
vectorised bookkeeping.

Half-precision rewards are summed and ranked in float32 (:func:`rlspec.optimized.common.upcast`).
"""

from __future__ import annotations

import math

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.gspo import sequence_advantage, sequence_ratio
from rlspec.optimized.ppo import clipped_surrogate
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.riskpo import RiskPOAdvConfig, RiskPOConfig

__all__ = ["RiskPOConfig", "RiskPOAdvConfig", "riskpo_loss", "g_rvar", "g_cvar", "mvar_weight",
           "mvar_weight_normalized", "make_bundles", "paper_scores", "empirical_quantile", "riskpo_advantage"]


def riskpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: RiskPOConfig | None = None, group=None):
    """Scalar RiskPO loss: GSPO-style sequence-ratio clip (paper) or token-level PPO clip (code)."""
    cfg = config or RiskPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    if cfg.ratio == "token":
        r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
        return common.aggregate_token_loss(clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high), mask, cfg, group)
    s = sequence_ratio(logp, old_logp, mask, cfg.log_ratio_clamp)  # (B,)
    ell = clipped_surrogate(s, sequence_advantage(adv, mask), cfg.eps_low, cfg.eps_high)  # (B,)
    return common.aggregate_token_loss(ell.unsqueeze(1).expand_as(logp), mask, cfg, group)


_DEFAULT_CONFIG = RiskPOConfig()  # frozen: one instance serves every call without a config


@implements("riskpo")
def riskpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: RiskPOConfig | None = None, group=None):
    """Scalar riskpo loss through its fused core (:mod:`rlspec.optimized.fused`; the GSPO core for the sequence
    ratio, the PPO core for the token ratio): value and gradient in one pass; :func:`riskpo_loss_autograd` is the
    autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("riskpo", riskpo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)


def g_rvar(z: torch.Tensor, a, b, offset: bool = True) -> torch.Tensor:
    """g(z, a, b) = (z − a)⁺ − (z − b)⁺ + (a − b) (Theorem 1's weight)."""
    g = torch.clamp(z - a, min=0) - torch.clamp(z - b, min=0)
    return g + (a - b) if offset else g


def g_cvar(z: torch.Tensor, a) -> torch.Tensor:
    """−(a − z)⁺."""
    return -torch.clamp(a - z, min=0)


def mvar_weight(R, q_a, q_b, omega: float, offset: bool = True) -> torch.Tensor:
    """(1 + ω)·g_cvar(R, q_α) + g_rvar(R, q_α, q_β)."""
    return (1.0 + omega) * g_cvar(R, q_a) + g_rvar(R, q_a, q_b, offset)


def mvar_weight_normalized(R, q_a, q_b, alpha: float, beta: float, w_mix: float, offset: bool = True):
    """(w_mix·g_cvar/α + g_rvar/(β − α))/(w_mix + 1), the official code's advantage."""
    cv = w_mix * g_cvar(R, q_a) / alpha if w_mix > 0 else 0.0
    return (cv + g_rvar(R, q_a, q_b, offset) / (beta - alpha)) / (w_mix + 1.0)


def make_bundles(group: torch.Tensor, bundle_size: int):
    """(bundle id, paper id (−1: left over), question index) per row, as in the reference."""
    g = group.reshape(-1)
    n = g.numel()
    uniq, inv = torch.unique(g, return_inverse=True)
    pos = torch.arange(n, device=g.device)
    first = torch.full((uniq.numel(),), n, dtype=torch.long, device=g.device).scatter_reduce(0, inv, pos, "amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(uniq.numel(), device=g.device)
    q = rank[inv]  # (B,) question index by first appearance
    counts = torch.bincount(q, minlength=uniq.numel())  # rows per question
    order = torch.argsort(q, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    j = torch.empty_like(q)
    j[order] = pos - starts[q[order]]  # row's index within its question
    bundle = q // bundle_size
    bundle_of_q = torch.arange(uniq.numel(), device=g.device) // bundle_size
    n_b = int(bundle_of_q.max()) + 1 if uniq.numel() else 0
    n_papers = torch.full((n_b,), n, dtype=torch.long, device=g.device).scatter_reduce(0, bundle_of_q, counts, "amin")
    offset = torch.cumsum(n_papers, 0) - n_papers
    paper = torch.where(j < n_papers[bundle], offset[bundle] + j, torch.full_like(j, -1))
    return bundle, paper, q


def paper_scores(R: torch.Tensor, paper: torch.Tensor) -> torch.Tensor:
    """R_B of each paper (P,)."""
    P = int(paper.max()) + 1 if paper.numel() and int(paper.max()) >= 0 else 0
    used = paper >= 0
    return torch.zeros(P, dtype=R.dtype, device=R.device).index_add_(0, paper[used], R[used])


def empirical_quantile(x: torch.Tensor, u: float, method: str = "inverted_cdf") -> torch.Tensor:
    """x_(⌈uN⌉) ('inverted_cdf') or torch.quantile's linear interpolation ('linear')."""
    if method == "linear":
        return torch.quantile(x, u)
    k = min(max(math.ceil(u * x.numel() - 1e-9), 1), x.numel())
    return torch.sort(x).values[k - 1]


def _std(x: torch.Tensor) -> torch.Tensor:
    """Sample std; exactly 0 when all values agree; 1 for a single value."""
    if x.numel() == 1:
        return torch.ones((), dtype=x.dtype, device=x.device)
    if bool(x.min() == x.max()):
        return torch.zeros((), dtype=x.dtype, device=x.device)
    return x.std()


@implements("riskpo_mvar")
def riskpo_advantage(rewards, group, mask, config: RiskPOAdvConfig | None = None, quantiles=None) -> torch.Tensor:
    """RiskPO's bundled MVaR advantage (B, T), zero at masked positions."""
    cfg = config or RiskPOAdvConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    bundle, paper, q_of_row = make_bundles(g, cfg.bundle_size)
    S = paper_scores(R, paper)  # (P,)
    zero = torch.zeros((), dtype=R.dtype, device=R.device)
    if S.numel() == 0:
        return torch.zeros(M.shape, dtype=R.dtype, device=R.device)
    used = paper >= 0
    paper_bundle = torch.zeros(S.numel(), dtype=torch.long, device=R.device)
    paper_bundle[paper[used]] = bundle[used]
    if quantiles is not None:
        qq = torch.as_tensor(quantiles, dtype=R.dtype, device=R.device).reshape(-1)
        if qq.numel() != 2 or not bool(torch.isfinite(qq).all()):
            raise fail("quantiles", f"{tuple(qq.shape)} values", "two finite numbers (q_alpha, q_beta)")
        q_a, q_b = qq[0].expand_as(S), qq[1].expand_as(S)
    else:
        q_a, q_b = torch.empty_like(S), torch.empty_like(S)
        scopes = [torch.ones_like(S, dtype=torch.bool)] if cfg.quantile_scope == "batch" else \
            [paper_bundle == b for b in torch.unique(paper_bundle)]
        for sel in scopes:
            q_a[sel] = empirical_quantile(S[sel], cfg.alpha, cfg.quantile_method)
            q_b[sel] = empirical_quantile(S[sel], cfg.beta, cfg.quantile_method)
    if cfg.mix == "normalized":
        A = mvar_weight_normalized(S, q_a, q_b, cfg.alpha, cfg.beta, cfg.w_mix, cfg.rvar_offset)  # (P,)
    else:
        A = mvar_weight(S, q_a, q_b, cfg.omega, cfg.rvar_offset)
    if cfg.std_normalize:
        std = torch.stack([_std(S[paper_bundle == b]) for b in paper_bundle.tolist()])
        A = A / (std + cfg.eps)
    adv = torch.where(used, A[paper.clamp(min=0)], zero)  # (B,)
    if cfg.credit == "std":
        sq = torch.stack([_std(R[q_of_row == q]) for q in q_of_row.tolist()])
        adv = adv / (torch.where(sq > 1e-3, sq, torch.ones_like(sq)) + cfg.eps)
    return torch.where(M, adv.unsqueeze(1), zero)

"""D³S sample- and token-level selection (torch). Mirrors :mod:`rlspec.reference.d3s` (arXiv 2509.22115).

The selection is a discrete decision, so it is computed in float64 whatever the input dtype (a score
rounded to bf16 could otherwise reorder tokens or subsets). The max-variance search loops over groups
(the k + 1 candidate subsets of one group are gathered and their variances taken at once); the token
selection is one stable sort over the batch. Nothing here is differentiable: the outputs are masks.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail, in_range
from rlspec.reference.d3s import TIE_RTOL, D3SConfig, linear_schedule, n_keep

__all__ = ["D3SConfig", "linear_schedule", "n_keep", "maxvar_subset", "sample_selection", "token_scores",
           "token_selection", "sequence_advantage", "entropy_from_logits", "d3s_select"]


def maxvar_subset(a: torch.Tensor, k: int, split: str = "search") -> torch.Tensor:
    """Indices (ascending) of the k-subset of ``a`` (n,) with the largest population variance."""
    n = a.shape[0]
    order = torch.sort(a, stable=True).indices
    js = torch.arange(k + 1, device=a.device) if split == "search" else torch.tensor([k // 2], device=a.device)
    pos = torch.arange(k, device=a.device)
    # candidate j takes sorted positions 0..j−1 and n−k+j..n−1: position pos < j maps to pos, else to n−k+pos
    idx = torch.where(pos[None, :] < js[:, None], pos[None, :], n - k + pos[None, :])  # (J, k)
    vals = a[order[idx]]
    var = ((vals - vals.mean(dim=1, keepdim=True)) ** 2).mean(dim=1)  # (J,)
    best = int(torch.nonzero(var >= var.max() * (1.0 - TIE_RTOL))[0, 0])
    return torch.sort(order[idx[best]]).values


def sample_selection(A: torch.Tensor, group: torch.Tensor, valid: torch.Tensor, frac: float, scope: str,
                     split: str) -> torch.Tensor:
    """keep (B,) bool: the max-variance subset of each group's (or the pooled batch's) valid rows."""
    keep = torch.zeros_like(valid)
    pools = [valid] if scope == "cross" else [valid & (group == k) for k in torch.unique(group)]
    for pool in pools:
        rows = torch.nonzero(pool).flatten()
        if rows.numel():
            keep[rows[maxvar_subset(A[rows], n_keep(frac, rows.numel()), split)]] = True
    return keep


def token_scores(A_tok: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """s = |A|·H (B, T)."""
    return A_tok.abs() * H


def token_selection(s: torch.Tensor, candidates: torch.Tensor, frac: float) -> torch.Tensor:
    """keep (B, T): the n_keep(frac, n) highest scores among the candidate tokens (ties: row-major order)."""
    flat = torch.nonzero(candidates.flatten()).flatten()
    k = n_keep(frac, flat.numel())
    order = flat[torch.sort(-s.flatten()[flat], stable=True).indices]
    keep = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
    keep[order[:k]] = True
    return keep.view(s.shape)


def sequence_advantage(A: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Masked token-mean of the advantages per row (B,); 0 for an empty row."""
    n = M.sum(dim=1)
    return torch.where(n > 0, A.sum(dim=1) / n.clamp(min=1), torch.zeros((), dtype=A.dtype, device=A.device))


def entropy_from_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """H = −Σ_v π log π (B, T), 0 at masked positions (masked rows are never read)."""
    from rlspec.optimized.entropy import token_entropy

    M = common.check_mask(mask, logits.shape[:2])
    z = torch.where(M[..., None], logits, torch.zeros((), dtype=logits.dtype, device=logits.device))
    return torch.where(M, token_entropy(z), torch.zeros((), dtype=z.dtype, device=z.device))


@implements("d3s")
def d3s_select(adv, entropy, group, mask, progress: float = 0.0,
               config: D3SConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep_seq (B,) bool, keep (B, T) bool) at training progress p."""
    cfg = config or D3SConfig()
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    A = common.clean(adv, M, "adv").double()
    H = common.clean(entropy, M, "entropy").double()
    if bool((H < 0).any()):
        raise fail("entropy", f"a negative value {H.min().item()!r}", "entropies ≥ 0 at valid positions")
    g = common.group_ids(group, M.shape[0], device=M.device)
    p = in_range(float(progress), "progress", 0.0, 1.0)
    f_s = linear_schedule(p, cfg.sample_frac_init, cfg.sample_frac_final)
    K = linear_schedule(p, cfg.token_frac_init, cfg.token_frac_final)
    keep_seq = sample_selection(sequence_advantage(A, M), g, M.any(dim=1), f_s, cfg.scope, cfg.split)
    candidates = M & keep_seq[:, None]
    keep = token_selection(token_scores(A, H), candidates, K) if cfg.token_level else candidates
    return keep_seq, keep


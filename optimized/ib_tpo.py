"""IB-TPO (torch). Mirrors :mod:`rlspec.reference.ib_tpo`: the tree's success estimates, the IB-Score and the step
advantages, vectorised over nodes and rows; nothing carries a gradient.

The tree structure (parent (N,), leaf (B,)) is small integer bookkeeping and is validated with the reference's
validators; paths are marked by pointer walks of length ≤ depth, so p̂ is one masked matrix reduction. The tree
sampler itself (``ibtree_grow``) stays in the reference: it is a loop of calls into the user's model. Half-precision
inputs are computed in float32.
"""

from __future__ import annotations

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.ib_tpo import IBTPOConfig, IBTreeConfig, validate_leaves, validate_parent

__all__ = ["IBTPOConfig", "IBTreeConfig", "has_children", "root_of", "through", "tree_values", "info_ratio", "eta1",
           "ib_score", "global_advantage", "local_advantage", "ib_tpo_signals", "ib_tpo_advantage", "ib_tpo_score"]


def _structure(parent, leaf, n_rows: int | None):
    """Validated (parent, leaf) as long tensors on the input's device."""
    for name, x in (("parent", parent), ("leaf", leaf)):
        if not isinstance(x, torch.Tensor):
            raise fail(name, type(x).__name__, "a torch.Tensor of node ids")
    if leaf.ndim != 1:
        raise fail("leaf", f"shape {tuple(leaf.shape)}", "a 1-D tensor of leaf node ids")
    par = validate_parent(parent.detach().cpu().numpy())
    lf = validate_leaves(leaf.detach().cpu().numpy(), par, leaf.shape[0] if n_rows is None else n_rows)
    dev = parent.device
    return torch.as_tensor(par, device=dev), torch.as_tensor(lf, device=dev)


def has_children(parent: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(parent.shape[0], dtype=torch.bool, device=parent.device)
    out[parent[parent >= 0]] = True
    return out


def root_of(parent: torch.Tensor) -> torch.Tensor:
    """(N,) root of each node, by pointer doubling."""
    up = torch.where(parent >= 0, parent, torch.arange(parent.shape[0], device=parent.device))
    for _ in range(max(int(parent.shape[0]).bit_length(), 1)):
        up = up[up]
    return up


def through(parent: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: node on row b's path."""
    B, N = leaf.shape[0], parent.shape[0]
    on = torch.zeros(B, N, dtype=torch.bool, device=parent.device)
    cur = leaf.clone()
    rows = torch.arange(B, device=parent.device)
    for _ in range(N):
        alive = cur >= 0
        if not bool(alive.any()):
            break
        on[rows[alive], cur[alive]] = True
        cur = torch.where(alive, parent[cur.clamp(min=0)], cur)
    return on


def tree_values(parent: torch.Tensor, leaf: torch.Tensor, rewards: torch.Tensor):
    """(p̂ (N,), count (N,))."""
    on = through(parent, leaf).to(rewards.dtype)
    count = on.sum(dim=0)
    if bool((count == 0).any()):
        j = int((count == 0).nonzero()[0])
        raise fail("leaf", f"no trajectory through node {j}", "every node of the tree on some row's path")
    return (on * rewards[:, None]).sum(dim=0) / count, count


def info_ratio(p_hat: torch.Tensor, parent: torch.Tensor, zero_parent_ratio: float = 1.0) -> torch.Tensor:
    pp = torch.where(parent >= 0, p_hat[parent.clamp(min=0)], torch.ones_like(p_hat))
    rho = torch.where(pp > 0, p_hat / torch.where(pp > 0, pp, torch.ones_like(pp)),
                      torch.full_like(p_hat, float(zero_parent_ratio)))
    return torch.where(parent < 0, torch.ones_like(p_hat), rho)


def eta1(rho: torch.Tensor, beta: float) -> torch.Tensor:
    return rho - (1.0 + 1.0 / beta)


def ib_score(p_hat, parent, pi, beta: float = 5.0, zero_parent_ratio: float = 1.0) -> torch.Tensor:
    """(1 + β)/B_s Σ_children η1·π over each node's children; 0 for leaves."""
    e = eta1(info_ratio(p_hat, parent, zero_parent_ratio), beta) * pi
    kids = parent >= 0
    tot = torch.zeros_like(p_hat).index_add_(0, parent[kids], e[kids])
    cnt = torch.zeros_like(p_hat).index_add_(0, parent[kids], torch.ones_like(e[kids]))
    return (1.0 + beta) * torch.where(cnt > 0, tot / cnt.clamp(min=1), torch.zeros_like(tot))


def global_advantage(p_hat, parent, leaf, rewards, ddof: int = 0, eps: float = 1e-6) -> torch.Tensor:
    """A_GL (N,) = (p̂(s) − p̂(root))/(std of the tree's rewards + ε); all-equal trees and roots 0."""
    roots = root_of(parent)
    N = parent.shape[0]
    key = roots[leaf]  # (B,) tree of each row
    size = torch.zeros(N, dtype=rewards.dtype, device=rewards.device).index_add_(0, key, torch.ones_like(rewards))
    mean = torch.zeros_like(size).index_add_(0, key, rewards) / size.clamp(min=1)
    hi = torch.full_like(size, -torch.inf).scatter_reduce(0, key, rewards, "amax")
    lo = torch.full_like(size, torch.inf).scatter_reduce(0, key, rewards, "amin")
    flat = (hi == lo) | (size == 0)
    sq = torch.zeros_like(size).index_add_(0, key, (rewards - torch.where(flat, hi, mean)[key]) ** 2)
    sd = torch.where((size > ddof) & ~flat, sq / (size - ddof).clamp(min=1), torch.zeros_like(sq)).sqrt()
    denom = sd[roots] + eps
    a = torch.where(flat[roots] | (denom <= 0), torch.zeros_like(p_hat),
                    (p_hat - p_hat[roots]) / torch.where(denom > 0, denom, torch.ones_like(denom)))
    return torch.where(parent < 0, torch.zeros_like(a), a)


def local_advantage(rho, pi_ref, parent, beta: float = 5.0) -> torch.Tensor:
    return torch.where(parent < 0, torch.zeros_like(rho), eta1(rho, beta) * pi_ref)


def _probs(x, name: str, N: int, dtype) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.shape != (N,):
        raise fail(name, f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}", f"a tensor of shape ({N},)")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise fail(name, "a non-finite or negative value", "step probabilities ≥ 0")
    return x.to(dtype)


def _rewards(rewards, B: int) -> torch.Tensor:
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (B,) or not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", f"{tuple(getattr(rewards, 'shape', ()))}", f"finite rewards of shape ({B},)")
    if bool(((rewards < 0) | (rewards > 1)).any()):
        raise fail("rewards", "a value outside [0, 1]", "rewards in [0, 1] (p̂(a*|s) is a success probability)")
    return common.upcast(rewards)


def ib_tpo_signals(rewards, group, mask, config: IBTPOConfig | None = None, *, parent, leaf, node, pi_ref):
    """dict: adv (B, T), step_adv (N,), p_hat (N,), a_gl (N,), a_ib (N,)."""
    cfg = config or IBTPOConfig()
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    B = M.shape[0]
    R = _rewards(rewards, B)
    group = common.group_ids(group, B, device=M.device)
    par, lf = _structure(parent, leaf, B)
    pr = _probs(pi_ref, "pi_ref", par.shape[0], R.dtype)
    roots = root_of(par)
    rr = roots[lf].cpu().numpy()
    g = group.cpu().numpy()
    for key in np.unique(g):
        if np.unique(rr[g == key]).size > 1:
            raise fail("group", f"prompt id {key} spanning several trees", "one tree (root) per prompt id")
    for q in np.unique(rr):
        if np.unique(g[rr == q]).size > 1:
            raise fail("group", f"tree {q} split over several prompt ids", "one prompt id per tree")
    if not isinstance(node, torch.Tensor) or node.shape != M.shape or node.dtype.is_floating_point:
        raise fail("node", f"{getattr(node, 'dtype', type(node))}", f"integer step ids of shape {tuple(M.shape)}")
    nd = torch.where(M, node.long(), torch.full_like(node, -1, dtype=torch.long))
    live = M & (nd >= 0)
    on = through(par, lf)
    s = nd.clamp(min=0, max=par.shape[0] - 1)
    ok = ~live | ((nd < par.shape[0]) & torch.gather(on, 1, s) & (par[s] >= 0))
    if not bool(ok.all()):
        b, t = (int(i) for i in (~ok).nonzero()[0])
        raise fail("node", f"node[{b}, {t}] = {int(nd[b, t])}", f"−1 or a (non-root) step on row {b}'s path")
    p_hat, _ = tree_values(par, lf, R)
    rho = info_ratio(p_hat, par, cfg.zero_parent_ratio)
    a_gl = global_advantage(p_hat, par, lf, R, cfg.ddof, cfg.eps)
    a_ib = local_advantage(rho, pr, par, cfg.beta)
    A = a_gl + cfg.lam * a_ib
    adv = torch.where(live, A[s], torch.zeros((), dtype=A.dtype, device=A.device))
    return {"adv": adv, "step_adv": A, "p_hat": p_hat, "a_gl": a_gl, "a_ib": a_ib}


@implements("ib_tpo")
def ib_tpo_advantage(rewards, group, mask, config: IBTPOConfig | None = None, *, parent, leaf, node, pi_ref):
    """IB-TPO token advantages (B, T)."""
    return ib_tpo_signals(rewards, group, mask, config, parent=parent, leaf=leaf, node=node, pi_ref=pi_ref)["adv"]


@implements("ib_tpo_score")
def ib_tpo_score(parent, leaf, rewards, pi, config: IBTreeConfig | None = None):
    """(p̂ (N,), IB-Score (N,), eligible (N,) bool)."""
    cfg = config or IBTreeConfig()
    par, lf = _structure(parent, leaf, None)
    R = _rewards(rewards, lf.shape[0])
    p = _probs(pi, "pi", par.shape[0], R.dtype)
    p_hat, _ = tree_values(par, lf, R)
    return p_hat, ib_score(p_hat, par, p, cfg.beta, cfg.zero_parent_ratio), has_children(par)

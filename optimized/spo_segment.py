"""SPO segment advantages (torch): SPO-chain and SPO-tree. Mirrors :mod:`rlspec.reference.spo_segment`.

Chain, vectorised over the batch: cutpoints are compared in float64 (old_logp < log ρ, the same decision
as the reference on the same rounded inputs); the kept cutpoints are those whose running count is
≡ 1 mod ``interval``; each token finds its segment's start with a running maximum of start indices and
the next start with a reversed running minimum, then gathers the two MC values (R after the last segment).
Values are read only at segment starts. Tree, vectorised by depth: node values are computed level by
level from the deepest (children's sums by ``index_add``), with the reference's exactness rule (children
that all agree give their parent exactly their value).
"""

from __future__ import annotations

import math

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.optimized.reinforce_pp import batch_normalize
from rlspec.reference._validate import fail
from rlspec.reference.spo_segment import WHITEN_EPS, SPOChainConfig, SPOTreeConfig, tree_parents

__all__ = ["SPOChainConfig", "SPOTreeConfig", "cutpoints", "segment_starts", "spo_segment_advantage",
           "tree_node_values", "tree_node_advantages", "spo_tree_advantage"]


def _mask2d(mask) -> torch.Tensor:
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    return M


def cutpoints(old_logp: torch.Tensor, M: torch.Tensor, rho: float) -> torch.Tensor:
    """(B, T) bool: valid tokens with π = exp(old_logp) < ρ, decided in float64."""
    log_rho = math.log(rho) if rho > 0 else -math.inf
    return M & (old_logp.double() < log_rho)


def segment_starts(cut: torch.Tensor, M: torch.Tensor, interval: int, code_first_segment: bool) -> torch.Tensor:
    """(B, T) bool: every ``interval``-th cutpoint, plus the first valid token (paper) unless code_first_segment."""
    count = torch.cumsum(cut.long(), dim=1)  # cutpoints up to and including t
    start = cut & ((count - 1) % interval == 0)
    if not code_first_segment:
        start = start | (M & (torch.cumsum(M.long(), dim=1) == 1))
    return start


@implements("spo_segment")
def spo_segment_advantage(rewards, old_logp, values, mask, config: SPOChainConfig | None = None):
    """(adv, loss_mask), both (B, T) — see the reference."""
    cfg = config or SPOChainConfig()
    M = _mask2d(mask)
    B, T = M.shape
    lp = common.clean(old_logp, M, "old_logp")
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (B,):
        raise fail("rewards", f"{type(rewards).__name__} {tuple(getattr(rewards, 'shape', ()))}", f"a ({B},) tensor")
    if not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    if not isinstance(values, torch.Tensor) or values.shape != M.shape:
        raise fail("values", f"{type(values).__name__} {tuple(getattr(values, 'shape', ()))}",
                   f"the shape of mask, {tuple(M.shape)}")
    R = common.upcast(rewards)
    cut = cutpoints(lp, M, cfg.rho)
    start = segment_starts(cut, M, cfg.interval, cfg.code_first_segment)
    bad = start & ~torch.isfinite(values)
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        raise fail("values", f"a non-finite value {values[b, t].item()} at segment start ({b}, {t})",
                   "finite MC values at every segment start (see segment_starts)")
    Vs = common.upcast(torch.where(start, values, torch.zeros((), dtype=values.dtype, device=values.device)))
    idx = torch.arange(T, device=M.device).expand(B, T)
    last = torch.cummax(torch.where(start, idx, torch.full_like(idx, -1)), dim=1).values  # own segment's start
    s = torch.where(start, idx, torch.full_like(idx, T))
    nxt_incl = torch.flip(torch.cummin(torch.flip(s, [1]), dim=1).values, [1])  # first start ≥ t
    nxt = torch.cat([nxt_incl[:, 1:], torch.full_like(nxt_incl[:, :1], T)], dim=1)  # first start > t
    cur_val = torch.gather(Vs, 1, last.clamp(min=0))
    next_val = torch.where(nxt < T, torch.gather(Vs, 1, nxt.clamp(max=T - 1)), R[:, None].to(Vs.dtype))
    zero = torch.zeros((), dtype=Vs.dtype, device=Vs.device)
    A = torch.where(M & (last >= 0), next_val - cur_val, zero)
    loss_mask = cut if cfg.prob_mask else M
    A = torch.where(loss_mask, A, zero)
    if cfg.whiten:
        A = batch_normalize(A, loss_mask, 1, WHITEN_EPS, "inside")
    return A, loss_mask


def _depths(p: torch.Tensor) -> torch.Tensor:
    """Depth of every node (roots 0), by repeated parent look-ups (parents come first, so ≤ N rounds)."""
    d = torch.zeros_like(p)
    kids = p >= 0
    for _ in range(p.numel()):
        nd = torch.where(kids, d[p.clamp(min=0)] + 1, torch.zeros_like(d))
        if torch.equal(nd, d):
            break
        d = nd
    return d


def tree_node_values(p: torch.Tensor, leaf_reward: torch.Tensor) -> torch.Tensor:
    """v (N,): R at leaves, the mean of the children's values elsewhere (exactly their value if they agree)."""
    N = p.numel()
    kids = p >= 0
    n = torch.zeros(N, dtype=torch.long, device=p.device).index_add_(0, p[kids], torch.ones_like(p[kids]))
    leaf = n == 0
    r = common.upcast(leaf_reward)
    bad = leaf & ~torch.isfinite(r)
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        raise fail("leaf_reward", f"a non-finite value {r[j].item()} at leaf {j}", "finite rewards at every leaf")
    v = torch.where(leaf, r, torch.zeros((), dtype=r.dtype, device=r.device))
    depth = _depths(p)
    for d in range(int(depth.max()), 0, -1):
        c = (depth == d).nonzero().flatten()  # children at depth d (their parents are at d − 1)
        par = p[c]
        s = torch.zeros_like(v).index_add_(0, par, v[c])
        hi = torch.full_like(v, -math.inf).scatter_reduce_(0, par, v[c], reduce="amax")
        lo = torch.full_like(v, math.inf).scatter_reduce_(0, par, v[c], reduce="amin")
        at = torch.zeros(N, dtype=torch.bool, device=p.device)
        at[par] = True
        mean = torch.where(hi == lo, lo, s / n.clamp(min=1).to(v.dtype))
        v = torch.where(at & ~leaf, mean, v)
    return v


def tree_node_advantages(p: torch.Tensor, v: torch.Tensor, method: str = "rloo", eps: float = 1e-8) -> torch.Tensor:
    """Â (N,): v_c − v_p (rloo) or ÷ (σ_p + ε) (grpo, σ_p the population std of p's children); 0 at roots."""
    kids = p >= 0
    pc = p.clamp(min=0)
    A = torch.where(kids, v - v[pc], torch.zeros((), dtype=v.dtype, device=v.device))
    if method == "grpo":
        n = torch.zeros_like(v).index_add_(0, p[kids], torch.ones_like(v[kids]))
        sq = torch.zeros_like(v).index_add_(0, p[kids], A[kids] ** 2)
        sd = torch.sqrt(sq / n.clamp(min=1))
        A = A / (sd[pc] + eps)
    return A


@implements("spo_segment_tree")
def spo_tree_advantage(parent, leaf_reward, node, old_logp, mask, config: SPOTreeConfig | None = None):
    """(adv (B, T), loss_mask (B, T), node_values (N,), node_adv (N,)) — see the reference."""
    cfg = config or SPOTreeConfig()
    if not isinstance(parent, torch.Tensor) or not isinstance(leaf_reward, torch.Tensor):
        raise fail("parent", type(parent).__name__, "torch tensors parent (N,) and leaf_reward (N,)")
    p = torch.as_tensor(tree_parents(parent.detach().cpu().numpy()), device=parent.device)
    N = p.numel()
    if leaf_reward.shape != (N,):
        raise fail("leaf_reward", f"shape {tuple(leaf_reward.shape)}", f"shape ({N},): one entry per node")
    M = _mask2d(mask)
    lp = common.clean(old_logp, M, "old_logp")
    if not isinstance(node, torch.Tensor) or node.shape != (M.shape[0],) or node.dtype.is_floating_point:
        raise fail("node", f"{type(node).__name__} {tuple(getattr(node, 'shape', ()))}",
                   f"({M.shape[0]},) integer node indices")
    nd = node.long()
    if bool(((nd < 0) | (nd >= N)).any()) or bool((p[nd.clamp(0, N - 1)] < 0).any()):
        raise fail("node", f"indices {nd.tolist()}", f"non-root nodes in [0, {N}): a row is the segment of an edge")
    v = tree_node_values(p, leaf_reward)
    A_node = tree_node_advantages(p, v, cfg.method, cfg.eps)
    keep = p >= 0
    if cfg.drop_zero_adv:
        keep = keep & (A_node != 0)
    loss_mask = M & keep[nd][:, None]
    if cfg.prob_mask:
        loss_mask = loss_mask & cutpoints(lp, M, cfg.rho)
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    A = torch.where(loss_mask, A_node[nd][:, None], zero)
    if cfg.whiten:
        A = batch_normalize(A, loss_mask, 1, WHITEN_EPS, "inside")
    return A, loss_mask, v, A_node

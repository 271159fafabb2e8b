"""IGPO (torch). Mirrors :mod:`rlspec.reference.igpo_infogain`; nothing here carries a gradient (rewards and
advantages are constants for the loss).

Vectorised: the confidences are one masked mean over the answer axis, the per-type group statistics are scatter
reductions over the live (row, turn) cells keyed by prompt, and the turn return is a reverse scan over the turn
axis (K ≤ the number of agent turns, small). Half-precision inputs are computed in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.a2tgpo import turn_broadcast, turn_counts, validate_turn
from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.igpo_infogain import IGPOConfig

__all__ = ["IGPOConfig", "validate_gt_logp", "confidence", "belief", "ig_rewards", "turn_rewards", "cell_types",
           "zscore_cells", "normalize_rewards", "turn_returns", "igpo_turn_rewards", "igpo_signals", "igpo_advantage"]


def validate_gt_logp(gt_logp, answer_mask, n: torch.Tensor):
    """(gt_logp (B, K, L) with unread entries 0, in ≥ float32; answer_mask (B, L) bool)."""
    if not isinstance(gt_logp, torch.Tensor) or gt_logp.ndim != 3 or gt_logp.shape[0] != n.shape[0]:
        raise fail("gt_logp", f"{type(gt_logp).__name__} {tuple(getattr(gt_logp, 'shape', ()))}",
                   f"a (B, K, L) tensor with B = {n.shape[0]}")
    B, K, L = gt_logp.shape
    if n.numel() and int(n.max()) > K:
        raise fail("gt_logp", f"K = {K} contexts", f"at least {int(n.max())} (one before each turn)")
    am = common.check_mask(answer_mask, torch.Size((B, L)), "answer_mask")
    empty = (n > 0) & ~am.any(dim=1)
    if bool(empty.any()):
        raise fail("answer_mask", f"no answer token in row {int(empty.nonzero()[0])}",
                   "at least one ground-truth answer token for every row with a turn")
    x = gt_logp.double() if not gt_logp.dtype.is_floating_point else common.upcast(gt_logp)
    live = (torch.arange(K, device=x.device)[None, :, None] < n[:, None, None]) & am[:, None, :]
    bad = live & ~torch.isfinite(x)
    if bool(bad.any()):
        i, k, j = (int(v) for v in bad.nonzero()[0])
        raise fail("gt_logp", f"a non-finite value {x[i, k, j].item()} at row {i}, context {k}, answer token {j}",
                    "finite log-probabilities before every turn k < n_i, at answer tokens")
    return torch.where(live, x, torch.zeros((), dtype=x.dtype, device=x.device)), am


def confidence(gt_logp: torch.Tensor, answer_mask: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """s (B, K): mean of the answer tokens' log-probs after each context; 0 beyond n_i."""
    L = answer_mask.sum(dim=1).clamp(min=1).to(gt_logp.dtype)[:, None]
    s = (gt_logp * answer_mask[:, None, :].to(gt_logp.dtype)).sum(dim=2) / L
    live = torch.arange(s.shape[1], device=s.device)[None, :] < n[:, None]
    return torch.where(live, s, torch.zeros_like(s))


def belief(s: torch.Tensor, ig_type: str = "prob") -> torch.Tensor:
    return torch.exp(s) if ig_type == "prob" else s


def ig_rewards(s: torch.Tensor, n: torch.Tensor, ig_type: str = "prob") -> torch.Tensor:
    """r^IG (B, K) = f(s_{k+1}) − f(s_k) for k ≤ n_i − 2, 0 elsewhere."""
    f = belief(s, ig_type)
    r = torch.zeros_like(s)
    if s.shape[1] > 1:
        r[:, :-1] = f[:, 1:] - f[:, :-1]
    keep = torch.arange(s.shape[1], device=s.device)[None, :] < (n - 1)[:, None]
    return torch.where(keep, r, torch.zeros_like(r))


def cell_types(n: torch.Tensor, K: int):
    k = torch.arange(K, device=n.device)[None, :]
    return k < (n - 1)[:, None], (k == (n - 1)[:, None]) & (n[:, None] > 0)


def turn_rewards(r_ig: torch.Tensor, outcome: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The IG rewards with r^O_i written on the answer turn n_i − 1."""
    _, out_cells = cell_types(n, r_ig.shape[1])
    return torch.where(out_cells, outcome.to(r_ig.dtype)[:, None].expand_as(r_ig), r_ig)


def zscore_cells(r: torch.Tensor, cells: torch.Tensor, inv: torch.Tensor, cfg: IGPOConfig) -> torch.Tensor:
    """(r − μ)/(σ + ε) over the selected cells of each prompt (inv: (B,) prompt index); one cell / all equal ⇒ 0."""
    x = r[cells]
    if x.numel() == 0:
        return torch.zeros_like(r)
    key = inv[:, None].expand_as(r)[cells]
    S = int(inv.max()) + 1
    size = torch.zeros(S, dtype=x.dtype, device=x.device).index_add_(0, key, torch.ones_like(x))
    mean = torch.zeros_like(size).index_add_(0, key, x) / size.clamp(min=1)
    hi = torch.full_like(size, -torch.inf).scatter_reduce(0, key, x, "amax")
    lo = torch.full_like(size, torch.inf).scatter_reduce(0, key, x, "amin")
    flat = (hi == lo) | (size <= 1)
    mean = torch.where(flat, hi, mean)
    z = x - mean[key]
    if cfg.std_normalize:
        sq = torch.zeros_like(size).index_add_(0, key, z**2)
        sd = torch.where(size > cfg.ddof, sq / (size - cfg.ddof).clamp(min=1), torch.zeros_like(sq)).sqrt()
        z = z / (sd[key] + cfg.eps)
    z = torch.where(flat[key], torch.zeros_like(z), z)
    out = torch.zeros_like(r)
    out[cells] = z
    return out


def normalize_rewards(r: torch.Tensor, n: torch.Tensor, group: torch.Tensor, cfg: IGPOConfig) -> torch.Tensor:
    ig_cells, out_cells = cell_types(n, r.shape[1])
    if cfg.normalization == "none":
        return torch.where(ig_cells | out_cells, r, torch.zeros_like(r))
    _, inv = torch.unique(group, return_inverse=True)
    if cfg.normalization == "joint":
        return zscore_cells(r, ig_cells | out_cells, inv, cfg)
    return zscore_cells(r, ig_cells, inv, cfg) + zscore_cells(r, out_cells, inv, cfg)


def turn_returns(r: torch.Tensor, n: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """R̃_k = r_k + γ R̃_{k+1} for k < n_i (reverse scan over turns), 0 elsewhere."""
    B, K = r.shape
    live = torch.arange(K, device=r.device)[None, :] < n[:, None]
    nxt = torch.zeros(B, dtype=r.dtype, device=r.device)
    cols = []
    for k in range(K - 1, -1, -1):
        nxt = torch.where(live[:, k], r[:, k] + gamma * nxt, torch.zeros_like(nxt))
        cols.append(nxt)
    return torch.stack(cols[::-1], dim=1) if K else torch.zeros_like(r)


@implements("igpo_infogain")
def igpo_turn_rewards(gt_logp, answer_mask, n_turns, outcome, config: IGPOConfig | None = None):
    """(confidence s (B, K), turn rewards r (B, K))."""
    cfg = config or IGPOConfig()
    if not isinstance(n_turns, torch.Tensor) or n_turns.ndim != 1 or n_turns.dtype.is_floating_point \
            or n_turns.dtype == torch.bool or bool((n_turns < 0).any()):
        raise fail("n_turns", f"{getattr(n_turns, 'dtype', type(n_turns))}", "a 1-D tensor of non-negative integers")
    n = n_turns.long()
    if not isinstance(outcome, torch.Tensor) or outcome.shape != n.shape or not bool(torch.isfinite(outcome).all()):
        raise fail("outcome", f"{tuple(getattr(outcome, 'shape', ()))}", f"finite rewards of shape {tuple(n.shape)}")
    lp, am = validate_gt_logp(gt_logp, answer_mask, n)
    s = confidence(lp, am, n)
    return s, turn_rewards(ig_rewards(s, n, cfg.ig_type), common.upcast(outcome).to(s.dtype), n)


def igpo_signals(rewards, group, mask, config: IGPOConfig | None = None, *, turn, gt_logp, answer_mask):
    """(adv (B, T), R̃ (B, K), r̃ (B, K), r (B, K))."""
    cfg = config or IGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    tr = validate_turn(turn, M)
    n = turn_counts(tr, M)
    lp, am = validate_gt_logp(gt_logp, answer_mask, n)
    dt = torch.promote_types(lp.dtype, R.dtype)
    s = confidence(lp.to(dt), am, n)
    r = turn_rewards(ig_rewards(s, n, cfg.ig_type), R.to(dt), n)
    rt = normalize_rewards(r, n, g, cfg)
    ret = turn_returns(rt, n, cfg.gamma)
    return turn_broadcast(ret, tr, M & (tr >= 0)), ret, rt, r


@implements("igpo_advantage")
def igpo_advantage(rewards, group, mask, config: IGPOConfig | None = None, *, turn, gt_logp, answer_mask):
    """IGPO token advantages (B, T)."""
    return igpo_signals(rewards, group, mask, config, turn=turn, gt_logp=gt_logp, answer_mask=answer_mask)[0]

"""MMR1 Variance-Aware Sampling (torch). Mirrors :mod:`rlspec.reference.mmr1_vas` (arXiv 2509.21268).

Scores and draws are discrete-decision inputs, so they are computed in float64 whatever the input dtype (the
returned scores are float64 too). The pairwise edit distances of all pairs of all prompts are one batched
dynamic programme: row i of the DP table is built from row i − 1 with vector ops, and the insertion
recurrence cur[j] = min(tmp[j], cur[j − 1] + 1) is solved in one pass as cur[j] = j + cummin(tmp[k] − k)_{k ≤ j}.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail, in_range
from rlspec.reference.mmr1_vas import VASConfig, VASState, n_weighted, refresh_due

__all__ = ["VASConfig", "VASState", "refresh_due", "outcome_variance", "pass_rates", "pairwise_edit_distance",
           "trajectory_diversity", "vps", "normalize_scores", "vas_sample", "init_state", "update", "score_prompts",
           "mmr1_vas"]


def outcome_variance(p: torch.Tensor) -> torch.Tensor:
    """OVS = p (1 − p)."""
    return p * (1.0 - p)


def pass_rates(R: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prompt ids (Q,), inverse index (B,), mean reward per prompt (Q,))."""
    ids, inv = torch.unique(g, return_inverse=True)
    n = torch.zeros(ids.numel(), dtype=R.dtype, device=R.device).index_add_(0, inv, torch.ones_like(R))
    return ids, inv, torch.zeros_like(n).index_add_(0, inv, R) / n


def compact(tokens: torch.Tensor, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's valid tokens moved to the front, in order (B, T), and the row lengths (B,)."""
    order = torch.sort((~M).to(torch.int8), dim=1, stable=True).indices
    return torch.gather(tokens, 1, order), M.sum(dim=1)


def pairwise_edit_distance(a: torch.Tensor, la: torch.Tensor, b: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """Levenshtein distances (P,) between the prefixes a[p, :la[p]] and b[p, :lb[p]] (tokens (P, T))."""
    P, T = a.shape
    j = torch.arange(T + 1, device=a.device)
    prev = j.expand(P, T + 1).clone()  # row 0: distance from the empty prefix
    out = torch.where(la == 0, lb, torch.zeros_like(lb))
    for i in range(1, T + 1):
        sub = prev[:, :-1] + (b != a[:, i - 1:i]).long()  # (P, T): substitute / match into column j ≥ 1
        tmp = torch.cat([torch.full((P, 1), i, device=a.device, dtype=prev.dtype),
                         torch.minimum(prev[:, 1:] + 1, sub)], dim=1)
        cur = j + torch.cummin(tmp - j, dim=1).values  # insertions
        out = torch.where(la == i, cur.gather(1, lb[:, None]).squeeze(1), out)
        prev = cur
    return out


def trajectory_diversity(tok: torch.Tensor, length: torch.Tensor, inv: torch.Tensor, Q: int, kind: str) -> torch.Tensor:
    """TDS (Q,) from compacted tokens (B, T), lengths (B,) and the prompt index of each row (B,)."""
    tds = torch.zeros(Q, dtype=torch.float64, device=tok.device)
    for q in range(Q):
        rows = torch.nonzero(inv == q).flatten()
        if kind == "distinct-3":
            grams = [tok[r, k:k + 3] for r in rows.tolist() for k in range(int(length[r]) - 2)]
            if grams:
                g = torch.stack(grams)
                tds[q] = torch.unique(g, dim=0).shape[0] / g.shape[0]
            continue
        if rows.numel() < 2:
            continue
        ia, ib = torch.triu_indices(rows.numel(), rows.numel(), offset=1, device=tok.device)
        ra, rb = rows[ia], rows[ib]
        d = pairwise_edit_distance(tok[ra], length[ra], tok[rb], length[rb]).double()
        if kind == "edit-norm":
            m = torch.maximum(length[ra], length[rb]).double()
            d = torch.where(m > 0, d / m.clamp(min=1), torch.zeros_like(d))
        tds[q] = d.mean()
    return tds


def vps(ovs: torch.Tensor, tds: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """VPS = α·OVS + β·TDS."""
    return alpha * ovs + beta * tds


def normalize_scores(v: torch.Tensor, how: str, eps: float) -> torch.Tensor:
    """Unchanged ("none") or (v − min)/(max − min + ε) ("minmax")."""
    return v.clone() if how == "none" else (v - v.min()) / (v.max() - v.min() + eps)


def _uniforms(u: Any, device: Any) -> torch.Tensor:
    U = u if isinstance(u, torch.Tensor) else torch.as_tensor(np.asarray(u))
    U = U.to(device=device, dtype=torch.float64)
    if U.ndim != 1 or not bool(torch.isfinite(U).all()) or bool(((U < 0) | (U >= 1)).any()):
        raise fail("u", f"shape {tuple(U.shape)}", "uniform draws in [0, 1)")
    return U


def vas_sample(weights: torch.Tensor, u: Any, mix: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (B,), from_weighted (B,)): ⌊λB⌋ inverse-CDF draws ∝ weights, the rest uniform."""
    w = torch.as_tensor(weights).double()
    if w.ndim != 1 or w.numel() == 0 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise fail("weights", f"shape {tuple(w.shape)}", "non-negative finite weights, Q ≥ 1")
    U = _uniforms(u, w.device)
    Q, Bw = w.numel(), n_weighted(U.numel(), in_range(mix, "mix", 0.0, 1.0))
    uni = lambda x: torch.floor(x * Q).long().clamp(max=Q - 1)  # noqa: E731
    if float(w.sum()) > 0:
        F = torch.cumsum(w / w.sum(), dim=0)
        first = torch.searchsorted(F, U[:Bw], right=True).clamp(max=Q - 1)
    else:
        first = uni(U[:Bw])
    pos = torch.cat([first, uni(U[Bw:])])
    return pos, torch.arange(U.numel(), device=w.device) < Bw


def init_state(vps_scores: torch.Tensor, config: VASConfig | None = None) -> VASState:
    cfg = config or VASConfig()
    return VASState(weights=normalize_scores(torch.as_tensor(vps_scores).double(), cfg.normalize, cfg.minmax_eps))


def update(state: VASState, vps_scores: torch.Tensor, config: VASConfig | None = None) -> VASState:
    """w ← m·w_old + (1 − m)·normalise(VPS_new). Pure."""
    cfg = config or VASConfig()
    if not isinstance(state, VASState):
        raise fail("state", type(state).__name__, "a VASState")
    w_old = torch.as_tensor(state.weights).double()
    v = torch.as_tensor(vps_scores).double().to(w_old.device)
    if v.shape != w_old.shape or bool((v < 0).any()) or not bool(torch.isfinite(v).all()):
        raise fail("vps_scores", f"shape {tuple(v.shape)}", f"non-negative scores of shape {tuple(w_old.shape)}")
    return VASState(weights=cfg.momentum * w_old + (1 - cfg.momentum) * normalize_scores(v, cfg.normalize,
                                                                                           cfg.minmax_eps))


def score_prompts(rewards, tokens, group, mask, config: VASConfig | None = None):
    """(prompt ids (Q,), OVS, TDS, VPS) each (Q,) float64."""
    cfg = config or VASConfig()
    M = common.check_mask(mask)
    if M.ndim != 2 or M.shape[0] == 0:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T) with B ≥ 1")
    R = torch.as_tensor(rewards, device=M.device)
    if R.shape != (M.shape[0],) or not R.dtype.is_floating_point:
        raise fail("rewards", f"{R.dtype} {tuple(R.shape)}", f"float rewards of shape ({M.shape[0]},)")
    R = R.double()
    if not bool(torch.isfinite(R).all()) or bool(((R < 0) | (R > 1)).any()):
        raise fail("rewards", "values outside [0, 1] or non-finite", "correctness rewards in [0, 1]")
    tok = torch.as_tensor(tokens, device=M.device)
    if tok.shape != M.shape or tok.dtype.is_floating_point or tok.dtype == torch.bool:
        raise fail("tokens", f"{tok.dtype} {tuple(tok.shape)}", f"integer token ids of shape {tuple(M.shape)}")
    g = common.group_ids(group, M.shape[0], device=M.device)
    ids, inv, P = pass_rates(R, g)
    ctok, length = compact(torch.where(M, tok, torch.zeros_like(tok)), M)
    o = outcome_variance(P)
    t = trajectory_diversity(ctok, length, inv, ids.numel(), cfg.tds)
    return ids, o, t, vps(o, t, cfg.alpha, cfg.beta)


@implements("mmr1_vas")
def mmr1_vas(rewards, tokens, group, mask, u, config: VASConfig | None = None):
    """(ovs, tds, vps, weights) each (Q,) and idx (n,) drawn prompt ids — see the reference."""
    cfg = config or VASConfig()
    ids, o, t, v = score_prompts(rewards, tokens, group, mask, cfg)
    w = normalize_scores(v, cfg.normalize, cfg.minmax_eps)
    pos, _ = vas_sample(w, u, cfg.mix)
    return o, t, v, w, ids[pos]

"""InfoPO (torch). Mirrors :mod:`rlspec.reference.infopo`; nothing here carries a gradient (the information reward
and the fused advantage are constants for the loss).

Vectorised with scatter reductions: token counts and log-prob differences are summed into a (B, K) grid keyed by
(row, turn − 1), the group statistics of the information reward over valid (row, turn) cells keyed by prompt.
The model-dependent counterfactual scoring (``counterfactual_logps``) stays in the reference: it is a call into
the user's model, not array arithmetic. Half-precision inputs are computed in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.a2tgpo import turn_broadcast, turn_counts, validate_turn
from rlspec.optimized.grpo import group_stats, grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.infopo import InfoPOConfig

__all__ = ["InfoPOConfig", "turn_token_counts", "valid_turns", "info_gain", "gate", "info_advantage",
           "infopo_info_reward", "infopo_signals", "infopo_advantage"]


def turn_token_counts(turn: torch.Tensor, live: torch.Tensor, K: int) -> torch.Tensor:
    """(B, K) number of live tokens per turn."""
    B = turn.shape[0]
    c = torch.zeros(B * K + 1, dtype=torch.long, device=turn.device)
    idx = torch.where(live, torch.arange(B, device=turn.device)[:, None] * K + turn, torch.full_like(turn, B * K))
    c.index_add_(0, idx.reshape(-1), torch.ones(idx.numel(), dtype=torch.long, device=turn.device))
    return c[:-1].reshape(B, K)


def valid_turns(counts: torch.Tensor) -> torch.Tensor:
    """(B, K) bool: turn k and turn k + 1 both have live tokens."""
    v = torch.zeros(counts.shape, dtype=torch.bool, device=counts.device)
    if counts.shape[1] > 1:
        v[:, :-1] = (counts[:, :-1] > 0) & (counts[:, 1:] > 0)
    return v


def _streams(logp_obs, logp_masked, mask, turn):
    live = mask & (turn >= 0)
    n = turn_counts(turn, mask)
    K = int(n.max()) if n.numel() else 0
    valid = valid_turns(turn_token_counts(turn, live, K))
    if K:
        prev = torch.where(live & (turn >= 1), turn - 1, torch.zeros_like(turn))
        read = live & (turn >= 1) & torch.gather(valid, 1, prev)
    else:
        read = torch.zeros_like(live)
    out = []
    for name, x in (("logp_obs", logp_obs), ("logp_masked", logp_masked)):
        if not isinstance(x, torch.Tensor) or x.shape != mask.shape:
            raise fail(name, f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}", f"a tensor of shape {tuple(mask.shape)}")
        bad = read & ~torch.isfinite(x)
        if bool(bad.any()):
            b, t = (int(i) for i in bad.nonzero()[0])
            raise fail(name, f"a non-finite value {x[b, t].item()} at ({b}, {t})",
                       "finite log-probs at the valid tokens of every next action (turn ≥ 1)")
        out.append(torch.where(read, common.upcast(x), torch.zeros((), dtype=common.upcast(x).dtype, device=x.device)))
    dt = torch.promote_types(out[0].dtype, out[1].dtype)
    return out[0].to(dt) - out[1].to(dt), read, valid, live


def info_gain(d: torch.Tensor, turn: torch.Tensor, read: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """r^info (B, K): mean of d over turn k + 1's read tokens, for valid k; 0 elsewhere."""
    B, K = valid.shape
    idx = torch.where(read, torch.arange(B, device=d.device)[:, None] * K + turn - 1, torch.full_like(turn, B * K))
    tot = torch.zeros(B * K + 1, dtype=d.dtype, device=d.device).index_add_(0, idx.reshape(-1), d.reshape(-1))
    cnt = torch.zeros(B * K + 1, dtype=d.dtype, device=d.device).index_add_(0, idx.reshape(-1),
                                                                             read.reshape(-1).to(d.dtype))
    r = (tot[:-1] / cnt[:-1].clamp(min=1)).reshape(B, K)
    return torch.where(valid, r, torch.zeros_like(r))


def gate(sigma: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """g(σ) = sigmoid(−σ/T)."""
    return torch.sigmoid(-sigma / temperature)


def info_advantage(r: torch.Tensor, valid: torch.Tensor, group: torch.Tensor, cfg: InfoPOConfig) -> torch.Tensor:
    """z-score of r^info over the valid cells of each prompt group (or of the batch); ≤ 1 cell / all equal ⇒ 0."""
    x = r[valid]
    if x.numel() == 0:
        return torch.zeros_like(r)
    if cfg.info_scope == "group":
        _, inv = torch.unique(group, return_inverse=True)
        key = inv[:, None].expand_as(r)[valid]
    else:
        key = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    S = int(key.max()) + 1
    size = torch.zeros(S, dtype=x.dtype, device=x.device).index_add_(0, key, torch.ones_like(x))
    mean = torch.zeros_like(size).index_add_(0, key, x) / size.clamp(min=1)
    hi = torch.full_like(size, -torch.inf).scatter_reduce(0, key, x, "amax")
    lo = torch.full_like(size, torch.inf).scatter_reduce(0, key, x, "amin")
    flat = (hi == lo) | (size <= 1)
    mean = torch.where(flat, hi, mean)
    sq = torch.zeros_like(size).index_add_(0, key, (x - mean[key]) ** 2)
    sd = torch.where(size > cfg.ddof, sq / (size - cfg.ddof).clamp(min=1), torch.zeros_like(sq)).sqrt()
    z = torch.where(flat[key], torch.zeros_like(x), (x - mean[key]) / (sd[key] + cfg.eps))
    out = torch.zeros_like(r)
    out[valid] = z
    return out


@implements("infopo")
def infopo_info_reward(logp_obs, logp_masked, mask, turn, config: InfoPOConfig | None = None):
    """(r_info (B, K), valid (B, K))."""
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    tr = validate_turn(turn, M)
    d, read, valid, _ = _streams(logp_obs, logp_masked, M, tr)
    return info_gain(d, tr, read, valid), valid


def infopo_signals(rewards, group, mask, config: InfoPOConfig | None = None, *, turn, logp_obs, logp_masked):
    """dict of adv (B, T), a_ext (B,), sigma_ext (B,), gate (B,), r_info (B, K), valid (B, K), a_info (B, K)."""
    cfg = config or InfoPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    tr = validate_turn(turn, M)
    d, read, valid, live = _streams(logp_obs, logp_masked, M, tr)
    dt = torch.promote_types(d.dtype, R.dtype)
    R = R.to(dt)
    r = info_gain(d.to(dt), tr, read, valid)
    a_ext = grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps, singleton=cfg.singleton))
    sigma = group_stats(R, g, cfg.ddof)[1]
    w = gate(sigma, cfg.temperature)
    a_info = info_advantage(r, valid, g, cfg)
    zero = torch.zeros((), dtype=dt, device=R.device)
    adv = torch.where(live, a_ext[:, None].expand(live.shape), zero) + \
        cfg.beta * w[:, None] * turn_broadcast(a_info, tr, live)
    return {"adv": adv, "a_ext": a_ext, "sigma_ext": sigma, "gate": w, "r_info": r, "valid": valid, "a_info": a_info}


@implements("infopo_advantage")
def infopo_advantage(rewards, group, mask, config: InfoPOConfig | None = None, *, turn, logp_obs, logp_masked):
    """InfoPO fused token advantages (B, T)."""
    return infopo_signals(rewards, group, mask, config, turn=turn, logp_obs=logp_obs, logp_masked=logp_masked)["adv"]

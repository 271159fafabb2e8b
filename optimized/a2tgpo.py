"""A²TGPO (torch). Mirrors :mod:`rlspec.reference.a2tgpo`. The registered loss forms the per-turn clip factor once,
then runs its fused core (:mod:`rlspec.optimized.fused`); :func:`a2tgpo_loss_autograd` is the autograd formulation
it falls back to.

The (prompt, turn-index) statistics are vectorised with one composite key per live (row, turn) cell
(``prompt_index · K + k``, the construction the official code is reported to use) and scatter reductions.
Per-turn quantities (IG, ÎG, the clip factor) carry no gradient. Half-precision inputs are computed in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.ppo import clipped_surrogate, dual_clip
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.a2tgpo import A2TGPOAdvantageConfig, A2TGPOConfig
from rlspec.reference.grpo import GRPOConfig

__all__ = ["A2TGPOConfig", "A2TGPOAdvantageConfig", "validate_turn", "turn_counts", "validate_ig",
           "turn_group_normalize", "accumulate_ig", "turn_clip_scale", "turn_broadcast", "a2tgpo_signals",
           "a2tgpo_advantage", "a2tgpo_loss", "a2tgpo_loss_autograd"]


def validate_turn(turn, mask: torch.Tensor) -> torch.Tensor:
    """Integer turn indices (B, T); ≥ −1 at valid positions; padding returned as −1."""
    if not isinstance(turn, torch.Tensor):
        raise fail("turn", type(turn).__name__, "a torch.Tensor of turn indices")
    if turn.shape != mask.shape:
        raise fail("turn", f"shape {tuple(turn.shape)}", f"the shape of mask, {tuple(mask.shape)}")
    if turn.dtype.is_floating_point or turn.dtype == torch.bool or turn.dtype.is_complex:
        raise fail("turn", f"dtype {turn.dtype}", "integer turn indices (−1 outside trainable turns)")
    t = torch.where(mask, turn.long(), torch.full_like(turn, -1, dtype=torch.long))
    if bool((t < -1).any()):
        raise fail("turn", f"a value {int(t.min())} at a valid position", "turn indices ≥ −1")
    return t


def turn_counts(turn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """n_i = 1 + the largest turn index of row i's valid tokens; 0 if none (B,) long."""
    t = torch.where(mask & (turn >= 0), turn, torch.full_like(turn, -1))
    return t.max(dim=1).values + 1 if t.shape[1] else torch.zeros(t.shape[0], dtype=torch.long, device=t.device)


def validate_ig(ig, n: torch.Tensor, name: str = "ig") -> torch.Tensor:
    """Per-turn array (B, K), finite where k < n_i, 0 elsewhere (never read); float64 for bf16/fp16/ints."""
    if not isinstance(ig, torch.Tensor) or ig.ndim != 2 or ig.shape[0] != n.shape[0]:
        raise fail(name, f"{type(ig).__name__} {tuple(getattr(ig, 'shape', ()))}", f"a (B, K) tensor, B = {n.shape[0]}")
    if n.numel() and int(n.max()) > ig.shape[1]:
        raise fail(name, f"K = {ig.shape[1]} turn columns", f"at least {int(n.max())} (the largest turn index + 1)")
    x = ig.detach()
    x = x.double() if not x.dtype.is_floating_point else common.upcast(x)
    live = torch.arange(x.shape[1], device=x.device)[None, :] < n[:, None]
    bad = live & ~torch.isfinite(x)
    if bool(bad.any()):
        b, k = (int(i) for i in bad.nonzero()[0])
        raise fail(name, f"a non-finite value {x[b, k].item()} at row {b}, turn {k}",
                   "finite values for every turn k < n_i")
    return torch.where(live, x, torch.zeros((), dtype=x.dtype, device=x.device))


def turn_group_normalize(ig: torch.Tensor, n: torch.Tensor, group: torch.Tensor, ddof: int = 1, eps: float = 1e-6,
                         singleton: str = "zero") -> torch.Tensor:
    """ÎG (B, K): z-score within each (prompt, turn-index) cell group; 0 for k ≥ n_i, singletons, zero spread."""
    B, K = ig.shape
    _, inv = torch.unique(group, return_inverse=True)
    live = torch.arange(K, device=ig.device)[None, :] < n[:, None]  # (B, K)
    key = (inv[:, None] * K + torch.arange(K, device=ig.device)[None, :])[live]  # composite id per live cell
    x = ig[live]
    if x.numel() == 0:
        return torch.zeros_like(ig)
    S = int(key.max()) + 1
    size = torch.zeros(S, dtype=x.dtype, device=x.device).index_add_(0, key, torch.ones_like(x))
    mean = torch.zeros_like(size).index_add_(0, key, x) / size.clamp(min=1)
    hi = torch.full_like(size, -torch.inf).scatter_reduce(0, key, x, "amax")
    lo = torch.full_like(size, torch.inf).scatter_reduce(0, key, x, "amin")
    flat = hi == lo
    mean = torch.where(flat, hi, mean)
    sq = torch.zeros_like(size).index_add_(0, key, (x - mean[key]) ** 2)
    sd = torch.where((size > ddof) & ~flat, sq / (size - ddof).clamp(min=1), torch.zeros_like(sq)).sqrt()
    z = torch.where(sd[key] > 0, (x - mean[key]) / (sd[key] + eps), torch.zeros_like(x))
    if singleton == "mean0std1":
        z = torch.where(size[key] == 1, x / (1.0 + eps), z)
    else:
        z = torch.where(size[key] == 1, torch.zeros_like(x), z)
    out = torch.zeros_like(ig)
    out[live] = z
    return out


def accumulate_ig(ig_hat: torch.Tensor, n: torch.Tensor, gamma: float = 1.0, rescale: str = "sqrt-terms"):
    """Ã (B, K): discounted sum of ÎG from turn k to the row's last turn (÷ √(n_i − k) for "sqrt-terms")."""
    B, K = ig_hat.shape
    ks = torch.arange(K, device=ig_hat.device)
    live = ks[None, :] < n[:, None]
    cols, nxt = [], torch.zeros(B, dtype=ig_hat.dtype, device=ig_hat.device)
    for k in range(K - 1, -1, -1):
        nxt = torch.where(live[:, k], ig_hat[:, k] + gamma * nxt, torch.zeros_like(nxt))
        cols.append(nxt)
    S = torch.stack(cols[::-1], dim=1) if K else torch.zeros_like(ig_hat)
    if rescale == "none":
        return S
    terms = (n[:, None] - ks[None, :]).clamp(min=1).to(S.dtype)
    return torch.where(live, S / terms.sqrt(), torch.zeros_like(S))


def turn_clip_scale(ig_hat: torch.Tensor) -> torch.Tensor:
    """2σ(ÎG) − 1 = tanh(ÎG/2)."""
    return torch.tanh(ig_hat / 2.0)


def turn_broadcast(per_turn: torch.Tensor, turn: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """per_turn[i, turn[i, t]] at live tokens, 0 elsewhere (B, T)."""
    if per_turn.shape[1] == 0:
        return torch.zeros(turn.shape, dtype=per_turn.dtype, device=per_turn.device)
    vals = torch.gather(per_turn, 1, torch.where(live, turn, torch.zeros_like(turn)))
    return torch.where(live, vals, torch.zeros((), dtype=per_turn.dtype, device=per_turn.device))


def a2tgpo_signals(rewards, group, mask, turn, ig, config: A2TGPOAdvantageConfig | None = None):
    """(adv (B, T), ig_hat (B, K))."""
    cfg = config or A2TGPOAdvantageConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    tr = validate_turn(turn, M)
    n = turn_counts(tr, M)
    IG = validate_ig(ig, n).to(R.dtype)
    ig_hat = turn_group_normalize(IG, n, g, cfg.ddof, cfg.eps, cfg.singleton)
    A = cfg.ig_coef * accumulate_ig(ig_hat, n, cfg.gamma, cfg.rescale)
    if cfg.outcome:
        out = grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps, singleton=cfg.singleton))
        A = A + out[:, None]
    return turn_broadcast(A, tr, M & (tr >= 0)), ig_hat


@implements("a2tgpo_advantage")
def a2tgpo_advantage(rewards, group, mask, turn, ig, config: A2TGPOAdvantageConfig | None = None) -> torch.Tensor:
    """A²TGPO token advantages (B, T)."""
    return a2tgpo_signals(rewards, group, mask, turn, ig, config)[0]


def a2tgpo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: A2TGPOConfig | None = None, group=None,
                         *, turn, ig_hat):
    """Scalar A²TGPO loss; ``loss.backward()`` gives −c·A·r on the unclipped branch of the per-turn range."""
    cfg = config or A2TGPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    c = torch.ones_like(logp)
    live = mask
    if turn is None:
        if ig_hat is not None:
            raise fail("turn", "None", "turn indices (B, T) to read ig_hat per turn")
    else:
        tr = validate_turn(turn, mask)
        live = mask & (tr >= 0)
        if ig_hat is not None:
            n = turn_counts(tr, mask)
            scale = turn_clip_scale(validate_ig(ig_hat, n, "ig_hat"))
            c = 1.0 + cfg.beta * turn_broadcast(scale, tr, live).to(logp.dtype)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell = clipped_surrogate(r, adv, cfg.eps_low * c, cfg.eps_high * c)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, live, cfg, group)


_DEFAULT_CONFIG = A2TGPOConfig()  # frozen: one instance serves every call without a config


@implements("a2tgpo")
def a2tgpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: A2TGPOConfig | None = None, group=None, *,
                turn, ig_hat):
    """Scalar A²TGPO loss through its fused core (:mod:`rlspec.optimized.fused`): the live tokens and the per-turn
    clip factor once, then value and gradient −c·A·r (unclipped branch) in one pass; :func:`a2tgpo_loss_autograd`
    is the autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_CONFIG
    kw = dict(ref_logp=ref_logp, turn=turn, ig_hat=ig_hat)
    if (fused.mode() == "off" or not isinstance(logp, torch.Tensor) or logp.ndim != 2
            or not logp.dtype.is_floating_point or not isinstance(mask, torch.Tensor) or mask.shape != logp.shape
            or (turn is None and ig_hat is not None)):
        return a2tgpo_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
    M = common.check_mask(mask, logp.shape)
    live, k = M, None
    if turn is not None:
        tr = validate_turn(turn, M)
        live = M & (tr >= 0)
        if ig_hat is not None:
            dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
            scale = turn_clip_scale(validate_ig(ig_hat, turn_counts(tr, M), "ig_hat"))
            k = turn_broadcast(scale, tr, live).to(dt)
    return fused.fused_policy_loss("a2tgpo", a2tgpo_loss_autograd, logp, old_logp, adv, live, cfg, group, extra=k,
                                   extra_f32=True, call_flags={"scale": k is not None}, slow_mask=mask, **kw)

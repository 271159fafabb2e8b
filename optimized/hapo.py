"""HAPO (torch). Mirrors :mod:`rlspec.reference.hapo`. The registered loss computes the entropy signal h̃ once, then
runs its fused core (:mod:`rlspec.optimized.fused`); :func:`hapo_loss_autograd` is the autograd formulation it falls
back to.

The entropy signal h̃, the clip ranges and the redistribution factor carry no gradient (the official code
computes them under ``no_grad``): they are computed from detached values. Entropy statistics are taken in
float64 (a quantile of bf16-rounded entropies is an order statistic; float64 keeps h̃ from rounding twice).
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.ppo import clipped_surrogate, dual_clip
from rlspec.optimized.registry import implements
from rlspec.reference._validate import choice, fail, in_range
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.hapo import (
    ENTROPY_FLOOR,
    SIGMA_FLOOR,
    SIGMAS,
    SIGNS,
    EntropyStats,
    HAPOAdvantageConfig,
    HAPOConfig,
    HAPOTemperatureConfig,
)

__all__ = ["HAPOConfig", "HAPOAdvantageConfig", "HAPOTemperatureConfig", "EntropyStats", "log_entropy",
           "entropy_statistics", "entropy_signal", "token_entropy_signal", "adaptive_temperature",
           "token_group_average", "hapo_advantage", "adaptive_clip", "neutral_zone", "redistribution_factor",
           "hapo_loss", "hapo_loss_autograd"]


def _entropy(entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    H = common.clean(entropy, mask, "entropy").detach().double()
    if bool((H[mask] < 0).any()):
        raise fail("entropy", f"a negative value {H[mask].min().item()!r}", "entropies ≥ 0 at valid positions")
    return H


def log_entropy(H: torch.Tensor) -> torch.Tensor:
    """x = log max(H, 10⁻⁸)."""
    return torch.log(torch.clamp(H, min=ENTROPY_FLOOR))


def entropy_statistics(entropy, mask, pivot: float = 0.8, sigma: str = "std") -> EntropyStats:
    """q (nearest ρ-quantile), σ, d_pos, d_neg of x = log H over the valid tokens (float64)."""
    M = common.check_mask(mask, getattr(entropy, "shape", None))
    in_range(pivot, "pivot", 0.0, 1.0)
    choice(sigma, "sigma", SIGMAS)
    x = log_entropy(_entropy(entropy, M))[M]
    if x.numel() == 0:
        return EntropyStats(0.0, 0.0, 0.0, 0.0, 0)
    k = int(round(float(pivot) * (x.numel() - 1)))
    q = torch.sort(x).values[k]
    s = x.std(unbiased=False) if sigma == "std" else torch.sqrt(torch.mean((x - q) ** 2))
    return EntropyStats(float(q), float(s), float((x - q).max().clamp(min=0)), float((q - x).max().clamp(min=0)),
                        int(x.numel()))


def entropy_signal(x: torch.Tensor, stats: EntropyStats, sign: str = "paper") -> torch.Tensor:
    """h̃: (x − q)/d_pos above the pivot, (x − q)/d_neg (paper) or (q − x)/d_neg (code) at or below it."""
    choice(sign, "low_entropy_sign", SIGNS)
    d = x - stats.q
    up = d / stats.d_pos if stats.d_pos > 0 else torch.sign(d)
    down = d / stats.d_neg if stats.d_neg > 0 else torch.sign(d)
    return torch.where(d > 0, up, down if sign == "paper" else -down)


def token_entropy_signal(entropy, mask, config: HAPOConfig | None = None,
                         stats: EntropyStats | None = None) -> torch.Tensor:
    """h̃ (B, T) float64, 0 at padding."""
    cfg = config or HAPOConfig()
    M = common.check_mask(mask, getattr(entropy, "shape", None))
    x = log_entropy(_entropy(entropy, M))
    st = stats if stats is not None else entropy_statistics(entropy, M, cfg.pivot)
    if st.n == 0:
        return torch.zeros(M.shape, dtype=torch.float64, device=M.device)
    return torch.where(M, entropy_signal(x, st, cfg.low_entropy_sign), torch.zeros((), dtype=torch.float64, device=M.device))


@implements("hapo_temperature")
def adaptive_temperature(entropy, mask, prev_entropy, prev_mask, config: HAPOTemperatureConfig | None = None):
    """T (B, T) from the previous step's statistics (0 at padding; T_base if there are none)."""
    cfg = config or HAPOTemperatureConfig()
    M = common.check_mask(mask, getattr(entropy, "shape", None))
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    x = log_entropy(_entropy(entropy, M))
    st = entropy_statistics(prev_entropy, prev_mask, cfg.pivot, cfg.sigma)
    zero = torch.zeros((), dtype=torch.float64, device=M.device)
    if st.n == 0:
        T = torch.where(M, torch.full(M.shape, cfg.t_base, dtype=torch.float64, device=M.device), zero)
    else:
        if cfg.form == "paper":
            signal = (x - st.q) / max(st.sigma, SIGMA_FLOOR)
        else:
            signal = torch.clamp(entropy_signal(x, st, cfg.low_entropy_sign), -1.0, 1.0)
        T = cfg.t_base * (1.0 + cfg.tau * signal)
        if bool((T[M] <= 0).any()):
            raise fail("entropy", f"a token with τ·z = {float((cfg.tau * signal)[M].min()):.3g} ≤ −1",
                       "τ·(x − q̂)/σ̂ > −1 so that the temperature stays positive")
        T = torch.where(M, T, zero)
    return T.to(entropy.dtype if entropy.dtype.is_floating_point else torch.float64)


def token_group_average(R: torch.Tensor, L: torch.Tensor, group: torch.Tensor, eps: float) -> torch.Tensor:
    """A_i = (R_i − μ_g)/(σ_g + ε), token-weighted mean and population std per group (B,); 0 if σ_g = 0 or no tokens."""
    _, inv = torch.unique(group, return_inverse=True)
    G = int(inv.max()) + 1 if R.numel() else 0
    N = torch.zeros(G, dtype=R.dtype, device=R.device).index_add_(0, inv, L)
    mu = torch.zeros_like(N).index_add_(0, inv, L * R) / N.clamp(min=1)
    hi = torch.full_like(N, -torch.inf).scatter_reduce(0, inv, torch.where(L > 0, R, -torch.inf), "amax")
    lo = torch.full_like(N, torch.inf).scatter_reduce(0, inv, torch.where(L > 0, R, torch.inf), "amin")
    flat = hi == lo  # one distinct reward among the rollouts with tokens: spread exactly 0
    mu = torch.where(flat, hi, mu)
    var = torch.zeros_like(N).index_add_(0, inv, L * (R - mu[inv]) ** 2) / N.clamp(min=1)
    sd = var.sqrt()
    ok = (N > 0) & ~flat & (sd > 0)
    A = (R - mu[inv]) / torch.where(ok, sd + eps, torch.ones_like(sd))[inv]
    return torch.where(ok[inv], A, torch.zeros_like(A))


@implements("hapo_advantage")
def hapo_advantage(rewards, group, mask, config: HAPOAdvantageConfig | None = None) -> torch.Tensor:
    """Token-level group-average advantage (B, T), 0 at padding."""
    cfg = config or HAPOAdvantageConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    L = M.sum(dim=1).to(R.dtype)
    A = token_group_average(R, L, g, cfg.eps)
    if cfg.fallback_threshold is not None:
        grpo = grpo_outcome_advantage(R, g, GRPOConfig(ddof=1, eps=1e-6, singleton="mean0std1"))
        _, inv = torch.unique(g, return_inverse=True)
        hit = ((A.abs() >= cfg.fallback_threshold) & (L > 0)).to(R.dtype)
        G = int(inv.max()) + 1 if R.numel() else 0
        trigger = torch.zeros(G, dtype=R.dtype, device=R.device).index_add_(0, inv, hit) > 0
        A = torch.where(trigger[inv], grpo, A)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))


def adaptive_clip(h: torch.Tensor, eps_low: float, eps_high: float, alpha: float):
    """(ε_L, ε_R): ε_L = ε_L^b(1 − α h̃) where h̃ ≤ 0, ε_R = ε_R^b(1 + α h̃) where h̃ > 0."""
    eps_L = torch.where(h <= 0, eps_low * (1.0 - alpha * h), torch.full_like(h, eps_low))
    eps_R = torch.where(h > 0, eps_high * (1.0 + alpha * h), torch.full_like(h, eps_high))
    return eps_L, eps_R


def neutral_zone(r: torch.Tensor, eps_L: torch.Tensor, eps_R: torch.Tensor) -> torch.Tensor:
    """r ∈ (1 − ε_L/2, 1 + ε_R/2)."""
    return (r > 1.0 - eps_L / 2.0) & (r < 1.0 + eps_R / 2.0)


def redistribution_factor(h: torch.Tensor, in_zone: torch.Tensor, beta: float) -> torch.Tensor:
    """1 + β h̃ where (h̃ > 0, r ∉ Z) or (h̃ ≤ 0, r ∈ Z), else 1."""
    active = ((h > 0) & ~in_zone) | ((h <= 0) & in_zone)
    return torch.where(active, 1.0 + beta * h, torch.ones_like(h))


def hapo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: HAPOConfig | None = None, group=None,
                       entropy=None, entropy_stats: EntropyStats | None = None):
    """Scalar HAPO loss; ``loss.backward()`` gives ∂loss/∂logp = −c·Â·r on the unclipped branch."""
    cfg = config or HAPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    dt = r.dtype
    h = torch.zeros_like(r) if entropy is None else token_entropy_signal(entropy, mask, cfg, entropy_stats).to(dt)
    base_L, base_R = torch.full_like(r, cfg.eps_low), torch.full_like(r, cfg.eps_high)
    eps_L, eps_R = adaptive_clip(h, cfg.eps_low, cfg.eps_high, cfg.clip_alpha) if cfg.adaptive_clip else (base_L, base_R)
    A = adv
    if cfg.adaptive_advantage:
        with torch.no_grad():
            rd = r.detach()
            zone = neutral_zone(rd, eps_L, eps_R) if cfg.zone_uses_adaptive_clip else neutral_zone(rd, base_L, base_R)
            A = adv * redistribution_factor(h, zone, cfg.adv_beta)
    ell = clipped_surrogate(r, A, eps_L, eps_R)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, A, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, mask, cfg, group)


_DEFAULT_CONFIG = HAPOConfig()  # frozen: one instance serves every call without a config


def _signal(logp, adv, mask, cfg, entropy, entropy_stats) -> torch.Tensor | None:
    """h̃ (B, T) in the compute dtype (float32 for half precision), or None where the inputs are not the fused
    path's (non-tensors, shapes that differ: the autograd formulation names them)."""
    if not (isinstance(logp, torch.Tensor) and isinstance(mask, torch.Tensor) and isinstance(entropy, torch.Tensor)
            and logp.ndim == 2 and mask.shape == logp.shape and entropy.shape == logp.shape
            and logp.dtype.is_floating_point and fused.mode() != "off"):
        return None
    dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
    return token_entropy_signal(entropy, common.check_mask(mask), cfg, entropy_stats).to(dt)


@implements("hapo")
def hapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: HAPOConfig | None = None, group=None,
              entropy=None, entropy_stats: EntropyStats | None = None):
    """Scalar HAPO loss through its fused core (:mod:`rlspec.optimized.fused`): the entropy signal h̃ once, then
    value and gradient ∂loss/∂logp = −c·Â′·r on the unclipped branch in one pass; :func:`hapo_loss_autograd` is the
    autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_CONFIG
    kw = dict(ref_logp=ref_logp, entropy=entropy, entropy_stats=entropy_stats)
    h = None
    if entropy is not None:
        h = _signal(logp, adv, mask, cfg, entropy, entropy_stats)
        if h is None:
            return hapo_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
    return fused.fused_policy_loss("hapo", hapo_loss_autograd, logp, old_logp, adv, mask, cfg, group, extra=h,
                                   extra_f32=True, call_flags={"ent": h is not None}, **kw)

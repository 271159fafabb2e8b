"""KL penalty in the reward (torch). Mirrors :mod:`rlspec.reference.kl_in_reward`: r̃ = −β k + [t = last] R."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.kl_in_reward import KLInRewardConfig


def per_token_kl(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str, value_clamp: float | None):
    """k_t (B, T): k1 = log π − log ρ, k2 = ½(·)², k3 = ρ/π − 1 − log(ρ/π) (expm1), optionally clamped."""
    d = ref_logp - logp  # log ρ − log π
    if estimator == "k1":
        k = -d
    elif estimator == "k2":
        k = 0.5 * d * d
    else:
        k = torch.expm1(d) - d
    return k if value_clamp is None else torch.clamp(k, -value_clamp, value_clamp)


def last_token(mask: torch.Tensor) -> torch.Tensor:
    """One-hot (B, T) of each row's last valid token (none for an empty row)."""
    T = mask.shape[1]
    if T == 0:  # no tokens at all (argmax has nothing to reduce)
        return mask.clone()
    idx = T - 1 - torch.flip(mask, dims=[1]).to(torch.int64).argmax(dim=1)  # (B,)
    onehot = torch.zeros_like(mask).scatter_(1, idx.unsqueeze(1), True)
    return onehot & mask.any(dim=1, keepdim=True)


@implements("kl_in_reward")
def kl_in_reward(rewards, logp, ref_logp, mask, config: KLInRewardConfig | None = None) -> torch.Tensor:
    """Token rewards (B, T), zero at masked positions."""
    cfg = config or KLInRewardConfig()
    mask = common.check_mask(mask)
    if mask.ndim != 2:
        raise fail("mask", f"shape {tuple(mask.shape)}", "shape (B, T)")
    B = mask.shape[0]
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (B,):
        raise fail("rewards", f"shape {tuple(getattr(rewards, 'shape', ()))}", f"a tensor of shape ({B},)")
    if not bool(torch.isfinite(rewards).all()):
        raise fail("rewards", "non-finite values", "finite rewards")
    lp = common.upcast(common.clean(logp, mask, "logp"))
    rlp = common.upcast(common.clean(ref_logp, mask, "ref_logp"))
    R = common.upcast(rewards).to(lp.dtype)
    if cfg.reward_clip is not None:
        R = torch.clamp(R, float(cfg.reward_clip[0]), float(cfg.reward_clip[1]))
    k = per_token_kl(lp, rlp, cfg.estimator, cfg.value_clamp)
    r = -float(cfg.beta) * k + torch.where(last_token(mask), R.unsqueeze(1), torch.zeros((), dtype=lp.dtype))
    return torch.where(mask, r, torch.zeros((), dtype=r.dtype))

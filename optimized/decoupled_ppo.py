"""Decoupled PPO (torch). Mirrors :mod:`rlspec.reference.decoupled_ppo`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import clipped_surrogate, dual_clip
from rlspec.optimized.registry import implements
from rlspec.reference.decoupled_ppo import DecoupledPPOConfig

_DEFAULT_CONFIG = DecoupledPPOConfig()  # frozen: one instance serves every call without a config


def decoupled_ppo_loss_autograd(logp, old_logp, adv, mask, prox_logp=None, ref_logp=None,
                                config: DecoupledPPOConfig | None = None, group=None):
    """Scalar loss −Σ c ⊙ sg(w) min(u Â, clip(u) Â), u = π_θ/π_prox, w = π_prox/π_behav."""
    cfg = config or DecoupledPPOConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    prox = old_logp if prox_logp is None else common.upcast(common.clean(prox_logp, mask, "prox_logp")).detach()
    u = common.ratio(logp, prox, cfg.log_ratio_clamp)
    ell = clipped_surrogate(u, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    if cfg.behave_weight:
        w = torch.exp(prox - old_logp)
        if cfg.behave_cap is not None:
            w = torch.clamp(w, max=cfg.behave_cap) if cfg.behave_cap_mode == "clamp" else \
                torch.where(w > cfg.behave_cap, torch.zeros((), dtype=w.dtype), w)
        ell = w * ell
    return common.aggregate_token_loss(ell, mask, cfg, group)


@implements("decoupled_ppo")
def decoupled_ppo_loss(logp, old_logp, adv, mask, prox_logp=None, ref_logp=None,
                       config: DecoupledPPOConfig | None = None, group=None):
    """Scalar decoupled_ppo loss through the PPO core (:mod:`rlspec.optimized.fused`, ratio to π_prox, fixed weight
    π_prox/π_behav): value and gradient in one pass; :func:`decoupled_ppo_loss_autograd` is the autograd formulation
    it falls back to (and validates with). Without ``prox_logp`` the proximal policy is the behaviour policy."""
    return fused.fused_policy_loss("decoupled_ppo", decoupled_ppo_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, extra=old_logp if prox_logp is None else prox_logp,
                                   prox_logp=prox_logp, ref_logp=ref_logp)

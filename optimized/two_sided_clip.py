"""Two-sided clipped PPO (torch). Mirrors :mod:`rlspec.reference.two_sided_clip`;
the registered loss runs its fused core (:mod:`rlspec.optimized.fused`)."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import dual_clip
from rlspec.optimized.registry import implements
from rlspec.reference.two_sided_clip import TwoSidedClipConfig

_DEFAULT_CONFIG = TwoSidedClipConfig()  # frozen: one instance serves every call without a config


def two_sided_surrogate(r: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float, delta: float
                        ) -> torch.Tensor:
    """ℓ = −min(min(r, δ) Â, clip(r, 1−ε_low, 1+ε_high) Â)  (B, T)."""
    return -torch.minimum(torch.clamp(r, max=delta) * adv, torch.clamp(r, 1.0 - eps_low, 1.0 + eps_high) * adv)


def two_sided_clip_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: TwoSidedClipConfig | None = None,
                        group=None):
    """Scalar two-sided clipped PPO loss; ``loss.backward()`` gives ∂loss/∂logp."""
    cfg = config or TwoSidedClipConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    ell = two_sided_surrogate(common.ratio(logp, old_logp, cfg.log_ratio_clamp), adv, cfg.eps_low, cfg.eps_high,
                              cfg.delta)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, mask, cfg, group)


@implements("two_sided_clip")
def two_sided_clip_loss(logp, old_logp, adv, mask, ref_logp=None, config: TwoSidedClipConfig | None = None, group=None):
    """Scalar two_sided_clip loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`two_sided_clip_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("two_sided_clip", two_sided_clip_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_CONFIG, group, ref_logp=ref_logp)

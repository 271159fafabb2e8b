"""KL estimators k1/k2/k3 as losses (torch). Mirrors :mod:`rlspec.reference.kl`; gradients come from autograd."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import choice, fail
from rlspec.reference.kl import ESTIMATORS, KLConfig


def estimator(kind: str, d: torch.Tensor) -> torch.Tensor:
    """k1 = −δ, k2 = ½δ², k3 = expm1(δ) − δ, with δ = log(π_ref/π_θ)."""
    if kind == "k1":
        return -d
    if kind == "k2":
        return 0.5 * d * d
    return torch.expm1(d) - d


def estimator_per_token(kind: str, logp, ref_logp, cfg: KLConfig, old_logp=None) -> torch.Tensor:
    """Per-token k (B, T) with cfg's clamps, straight-through k2 gradient and IS weight."""
    d = ref_logp - logp
    if cfg.log_ratio_clamp is not None:
        d = torch.clamp(d, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    k = estimator(kind, d)
    if cfg.value_clamp is not None:
        k = torch.clamp(k, -cfg.value_clamp, cfg.value_clamp)
    if cfg.straight_through_k2:
        k2 = 0.5 * (logp - ref_logp) ** 2
        k = k.detach() + k2 - k2.detach()
    if cfg.is_weight is not None:
        w = torch.exp(logp - old_logp)
        k = k * (w if cfg.is_weight == "ratio" else w.detach())
    return k


def kl_penalty(logp, ref_logp, mask, kind: str = "k3", *, log_ratio_clamp=None, value_clamp=None) -> torch.Tensor:
    """Per-token KL estimate (B, T) for reward shaping, detached; 0 at masked positions."""
    choice(kind, "kind", ESTIMATORS)
    cfg = KLConfig(log_ratio_clamp=log_ratio_clamp, value_clamp=value_clamp)
    logp, _, _, mask, ref_logp = common.policy_batch(logp, logp.detach(), logp.detach(), mask, ref_logp)
    k = estimator_per_token(kind, logp.detach(), ref_logp, cfg)
    return torch.where(mask, k, torch.zeros((), dtype=k.dtype))


def _kl_loss(kind, logp, ref_logp, mask, config, old_logp, group):
    cfg = config or KLConfig()
    if cfg.is_weight is not None and old_logp is None:
        raise fail("old_logp", "None", f"the behaviour log-probs (B, T) when is_weight={cfg.is_weight!r}")
    logp, _, _, mask, ref_logp = common.policy_batch(logp, logp.detach(), logp.detach(), mask, ref_logp)
    if ref_logp is None:
        raise fail("ref_logp", "None", "the reference log-probs (B, T)")
    olp = None if old_logp is None else common.clean(old_logp, mask, "old_logp").detach()
    return common.aggregate_token_loss(estimator_per_token(kind, logp, ref_logp, cfg, olp), mask, cfg, group)


@implements("kl_k1")
def kl_k1_loss(logp, ref_logp, mask, config: KLConfig | None = None, old_logp=None, group=None):
    return _kl_loss("k1", logp, ref_logp, mask, config, old_logp, group)


@implements("kl_k2")
def kl_k2_loss(logp, ref_logp, mask, config: KLConfig | None = None, old_logp=None, group=None):
    return _kl_loss("k2", logp, ref_logp, mask, config, old_logp, group)


@implements("kl_k3")
def kl_k3_loss(logp, ref_logp, mask, config: KLConfig | None = None, old_logp=None, group=None):
    return _kl_loss("k3", logp, ref_logp, mask, config, old_logp, group)

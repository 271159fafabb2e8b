"""Aggregated token entropy (torch). Mirrors :mod:`rlspec.reference.entropy`; the gradient w.r.t. the logits
comes from autograd (the function returns the scalar value only)."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.entropy import EntropyConfig


def token_entropy(z: torch.Tensor) -> torch.Tensor:
    """H = −Σ_v p log p (B, T) from logits z (B, T, V)."""
    logp = torch.log_softmax(z, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


@implements("entropy")
def entropy(logits, mask, config: EntropyConfig | None = None, group=None) -> torch.Tensor:
    """Scalar Σ c ⊙ H over valid tokens; masked rows of ``logits`` are never read."""
    cfg = config or EntropyConfig()
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[2] < 1:
        raise fail("logits", f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}", "a (B, T, V) tensor")
    mask = common.check_mask(mask, logits.shape[:2])
    bad = ~torch.isfinite(logits) & mask.unsqueeze(-1)
    if bool(bad.any()):
        b, t, v = (int(i) for i in bad.nonzero()[0])
        raise fail("logits", f"a non-finite value at unmasked position ({b}, {t}, {v})",
                   "finite logits where mask is True")
    z = torch.where(mask.unsqueeze(-1), logits, torch.zeros((), dtype=logits.dtype))
    H = token_entropy(z)
    return common.aggregate_token_loss(H, mask, cfg, group, name="logits")

"""VAS (torch). Mirrors :mod:`rlspec.reference.vas`: the decoding shift as a logits processor, and the critic loss.

``vas_shift`` / ``vas_logits`` take a (B, V) logits tensor and the value model's estimates for every
candidate token (``candidate_values``) (only the top-k of each row are read; others may be NaN — compute V only for the top-k
and scatter them, as the official ``VASLogitsProcessor`` does). Use :class:`VASLogitsProcessor` inside a
Hugging Face ``generate`` loop: it calls ``value_fn(input_ids, topk_ids) -> (B, k)`` for the candidates.
Half-precision inputs are computed in float32 and returned in the input dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.vas import VASConfig, VASValueConfig


def topk_indices(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest logits per row, (B, min(k, V)); ties to the lower index (stable sort, as the reference)."""
    return torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :min(k, logits.shape[1])]


def vas_shift(logits: torch.Tensor, values: torch.Tensor, beta: float, k: int) -> torch.Tensor:
    """ℓ' = ℓ + β (V − mean_top-k V) on the top-k tokens, ℓ elsewhere, (B, V)."""
    idx = topk_indices(logits, k)
    v = torch.gather(values, 1, idx)                                   # (B, k): only the top-k are read
    shift = beta * (v - v.mean(dim=1, keepdim=True))
    return logits.scatter_add(1, idx, shift)


def sampling_probs(shifted: torch.Tensor, logits: torch.Tensor, k: int, outside_topk: str) -> torch.Tensor:
    """softmax(ℓ') over all tokens ("keep") or over the base top-k only ("drop")."""
    if outside_topk == "drop":
        keep = torch.zeros_like(shifted, dtype=torch.bool).scatter(1, topk_indices(logits, k), True)
        shifted = shifted.masked_fill(~keep, float("-inf"))
    return torch.softmax(shifted, dim=1)


def _check(logits, values, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] == 0:
        raise fail("logits", f"{type(logits).__name__} {getattr(logits, 'shape', '')}", "a (B, V) torch.Tensor, V ≥ 1")
    if not bool(torch.isfinite(logits).all()):
        raise fail("logits", "a non-finite value", "finite logits")
    if not isinstance(values, torch.Tensor) or values.shape != logits.shape:
        raise fail("candidate_values", f"{type(values).__name__} {getattr(values, 'shape', '')}",
                   f"a tensor of the shape of logits, {tuple(logits.shape)}")
    L, V = common.upcast(logits), common.upcast(values)
    if not bool(torch.isfinite(torch.gather(V, 1, topk_indices(L, k))).all()):
        raise fail("candidate_values", "a non-finite value at a top-k token", "finite values for the top-k tokens")
    return L, V


@implements("vas")
def vas_logits(logits, candidate_values, config: VASConfig | None = None) -> dict:
    """{"logits": ℓ', "probs": sampling distribution}, both (B, V) in the dtype of ``logits``."""
    cfg = config or VASConfig()
    L, V = _check(logits, candidate_values, cfg.topk)
    shifted = vas_shift(L, V, cfg.beta, cfg.topk)
    probs = sampling_probs(shifted, L, cfg.topk, cfg.outside_topk)
    return {"logits": shifted.to(logits.dtype), "probs": probs.to(logits.dtype)}


class VASLogitsProcessor:
    """A ``transformers`` logits processor: ``scores + β (V − mean V)`` on the top-k candidates.

    ``value_fn(input_ids (B, n), topk_ids (B, k)) -> (B, k)`` returns V(s⊕a) for each candidate a (run the
    value model on the prefix extended by each candidate); non-top-k scores are kept (``outside_topk="keep"``)
    or set to −inf (``"drop"``).
    """

    def __init__(self, value_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 config: VASConfig | None = None) -> None:
        self.value_fn = value_fn
        self.config = config or VASConfig()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        idx = topk_indices(scores, cfg.topk)
        v = self.value_fn(input_ids, idx).to(scores.dtype)
        out = scores.scatter_add(1, idx, cfg.beta * (v - v.mean(dim=1, keepdim=True)))
        if cfg.outside_topk == "drop":
            keep = torch.zeros_like(out, dtype=torch.bool).scatter(1, idx, True)
            out = out.masked_fill(~keep, float("-inf"))
        return out


@implements("vas_value_loss")
def vas_value_loss(values, old_values, returns, mask, config: VASValueConfig | None = None) -> torch.Tensor:
    """Scalar ½ Σ c (V − R)² (token-mean by default); ``loss.backward()`` gives dvalues."""
    cfg = config or VASValueConfig()
    if not isinstance(values, torch.Tensor) or values.ndim != 2:
        raise fail("values", f"{type(values).__name__} {getattr(values, 'shape', '')}", "a (B, T) torch.Tensor")
    mask = common.check_mask(mask, values.shape)
    V = common.upcast(common.clean(values, mask, "values"))
    common.clean(old_values, mask, "old_values")
    R = common.upcast(common.clean(returns, mask, "returns")).detach()
    return 0.5 * common.aggregate((V - R) ** 2, mask, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                                  seq_denominator=cfg.seq_denominator)

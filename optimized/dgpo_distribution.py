"""DGPO (distribution-guided) token advantages (torch). Mirrors :mod:`rlspec.reference.dgpo_distribution`.

The Hellinger deviation is computed with the same cancellation-free formula as the reference, so float32
stays accurate when the policy is close to π_ref (where the ``mean`` weights are ratios of small H).
Half-precision logits are computed in float32 (:func:`rlspec.optimized.common.upcast`); advantages come
back in that dtype, as for :mod:`rlspec.optimized.grpo`.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.dgpo_distribution import DGPOConfig

__all__ = ["DGPOConfig", "hellinger_from_logits", "token_entropy", "entropy_gate", "redistribution_weights",
           "dgpo_token_advantage", "dgpo_advantage"]


def hellinger_from_logits(z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """H between softmax(z) and softmax(z_ref) over the last axis, (…, V) → (…), without cancellation."""
    log_p, log_q = torch.log_softmax(z, dim=-1), torch.log_softmax(z_ref, dim=-1)
    d = z - z_ref
    small = d.abs().amax(dim=-1, keepdim=True) <= 1.0
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    c_small = torch.log1p((log_q.exp() * torch.expm1(torch.where(small, d, zero))).sum(dim=-1, keepdim=True))
    c = torch.where(small, c_small, torch.logsumexp(log_q + d, dim=-1, keepdim=True))
    delta = d - c
    near = delta.abs() <= 1.0
    term_near = log_q.exp() * torch.expm1(0.5 * torch.where(near, delta, zero)) ** 2
    term_far = (torch.exp(0.5 * log_p) - torch.exp(0.5 * log_q)) ** 2
    h2 = 0.5 * torch.where(near, term_near, term_far).sum(dim=-1)
    return torch.sqrt(torch.clamp(h2, 0.0, 1.0))


def token_entropy(z: torch.Tensor) -> torch.Tensor:
    """−Σ_v π_v log π_v over the last axis."""
    log_p = torch.log_softmax(z, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def entropy_gate(H: torch.Tensor, ent: torch.Tensor, mask: torch.Tensor, gate: str, rho: float) -> torch.Tensor:
    """S = H·g(Ent) (B, T): g = Ent, 1[Ent ≥ (1 − ρ)-quantile of the valid entropies], or 1."""
    if gate == "product":
        g = ent
    elif gate == "none":
        g = torch.ones_like(ent)
    elif bool(mask.any()):
        g = (ent >= torch.quantile(ent[mask], 1.0 - rho)).to(ent.dtype)
    else:
        g = torch.zeros_like(ent)
    return torch.where(mask, H * g, torch.zeros((), dtype=H.dtype, device=H.device))


def redistribution_weights(S: torch.Tensor, mask: torch.Tensor, mode: str, tau: float = 1.0) -> torch.Tensor:
    """w (B, T), Σ_t w = |y_i| per row: S/mean S (w ≡ 1 on an all-zero row) or |y_i|·softmax(S/τ)."""
    zero = torch.zeros((), dtype=S.dtype, device=S.device)
    n = mask.sum(dim=1, keepdim=True).to(S.dtype)
    if mode == "mean":
        total = torch.where(mask, S, zero).sum(dim=1, keepdim=True)
        w = torch.where(total > 0, S * n / torch.where(total > 0, total, torch.ones_like(total)), torch.ones_like(S))
    else:
        x = torch.where(mask, S / tau, torch.full((), -torch.inf, dtype=S.dtype, device=S.device))
        m = torch.where(mask.any(dim=1, keepdim=True), x.amax(dim=1, keepdim=True), zero)
        e = torch.where(mask, torch.exp(x - m), zero)
        w = n * e / e.sum(dim=1, keepdim=True).clamp(min=torch.finfo(S.dtype).tiny)
    return torch.where(mask, w, zero)


def dgpo_token_advantage(seq_adv: torch.Tensor, H: torch.Tensor, ent: torch.Tensor, mask: torch.Tensor,
                         config: DGPOConfig | None = None) -> torch.Tensor:
    """Â = A_i·w_it (B, T)."""
    cfg = config or DGPOConfig()
    S = entropy_gate(H, ent, mask, cfg.gate, cfg.rho)
    w = redistribution_weights(S, mask, cfg.redistribution, cfg.tau)
    return torch.where(mask, seq_adv.unsqueeze(1) * w, torch.zeros((), dtype=w.dtype, device=w.device))


def _logits(z, name: str, mask: torch.Tensor, V: int | None = None) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 3 or z.shape[:2] != mask.shape or z.shape[2] < 1 \
            or (V is not None and z.shape[2] != V):
        raise fail(name, f"{type(z).__name__} {tuple(getattr(z, 'shape', ()))}",
                   f"a ({mask.shape[0]}, {mask.shape[1]}, V) torch.Tensor" + (f" with V = {V}" if V else ""))
    bad = ~torch.isfinite(z).all(dim=-1) & mask
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        raise fail(name, f"a non-finite logit at unmasked position ({b}, {t})", "finite logits wherever mask is True")
    z = common.upcast(z)
    return torch.where(mask.unsqueeze(-1), z, torch.zeros((), dtype=z.dtype, device=z.device)).detach()


@implements("dgpo_distribution")
def dgpo_advantage(rewards, group, mask, logits, ref_logits, config: DGPOConfig | None = None) -> torch.Tensor:
    """DGPO token advantages (B, T); Σ_t Â_it = |y_i|·A_i."""
    cfg = config or DGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    z = _logits(logits, "logits", M)
    z_ref = _logits(ref_logits, "ref_logits", M, z.shape[2])
    A = grpo_outcome_advantage(R, g, cfg).to(z.dtype)
    return dgpo_token_advantage(A, hellinger_from_logits(z, z_ref), token_entropy(z), M, cfg)

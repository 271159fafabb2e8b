"""OBLR-PO (torch). Mirrors :mod:`rlspec.reference.oblr_po`: the gradient-weighted baseline advantage
(pairwise same-group matrix, no Python loop over groups) and the SNR-governed learning rate."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.oblr_po import OBLRPOConfig, OBLRPOLRConfig

__all__ = ["OBLRPOConfig", "OBLRPOLRConfig", "rollout_weights", "gradient_weighted_advantage", "oblr_po_advantage",
           "estimate_snr", "snr_learning_rate", "oblr_po_learning_rate"]


def rollout_weights(M: torch.Tensor, grad_sq, cfg: OBLRPOConfig, like: torch.Tensor) -> torch.Tensor:
    """w (B,): the given ‖∇θ log π(y_i)‖² (finite, ≥ 0), else the response length or 1."""
    B = M.shape[0]
    if grad_sq is not None:
        if not isinstance(grad_sq, torch.Tensor) or grad_sq.shape != (B,):
            raise fail("grad_sq", f"shape {tuple(getattr(grad_sq, 'shape', ()))}", f"a tensor of shape ({B},)")
        w = grad_sq.to(like.dtype)
        if not bool(torch.isfinite(w).all()):
            raise fail("grad_sq", "non-finite values", "finite squared gradient norms")
        if bool((w < 0).any()):
            raise fail("grad_sq", f"a negative value {float(w.min())}", "squared gradient norms ≥ 0")
        return w
    if cfg.weight_proxy == "length":
        return M.sum(dim=1).to(like.dtype)
    return torch.ones(B, dtype=like.dtype, device=like.device)


def gradient_weighted_advantage(R: torch.Tensor, w: torch.Tensor, group: torch.Tensor,
                                cfg: OBLRPOConfig) -> torch.Tensor:
    """Â_i = Σ_{j∈S_i} w_j (R_i − R_j) / Σ_{j∈S_i} w_j  (B,), S_i = group(i) \\ {i} or group(i)."""
    same = group.unsqueeze(1) == group.unsqueeze(0)  # (B, B)
    size = same.sum(dim=1)
    S = same & ~torch.eye(len(R), dtype=torch.bool, device=R.device) if cfg.baseline == "leave_one_out" else same
    W = torch.where(S, w.unsqueeze(0), torch.zeros((), dtype=R.dtype, device=R.device))  # (B, B)
    den = W.sum(dim=1)
    num = (W * (R.unsqueeze(1) - R.unsqueeze(0))).sum(dim=1)
    ok = (size > 1) & (den > 0)
    A = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(R))
    return torch.where(~ok, R, A) if cfg.singleton == "raw" else A


@implements("oblr_po")
def oblr_po_advantage(rewards, group, mask, config: OBLRPOConfig | None = None, grad_sq=None) -> torch.Tensor:
    """OBLR-PO advantage (B, T): reward minus the gradient-weighted baseline, zero at masked positions."""
    cfg = config or OBLRPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    A = gradient_weighted_advantage(R, rollout_weights(M, grad_sq, cfg, R), g, cfg)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))


def estimate_snr(g_samples: torch.Tensor, signal: str = "debiased") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(signal, noise, SNR): noise = Σ‖g_n − ḡ‖²/(N(N−1)), signal = max(‖ḡ‖² − noise, 0) or ‖ḡ‖²."""
    N = g_samples.shape[0]
    gbar = g_samples.mean(dim=0)
    noise = ((g_samples - gbar) ** 2).sum() / (N * (N - 1))
    sig = gbar @ gbar
    if signal == "debiased":
        sig = (sig - noise).clamp(min=0)
    inf = torch.full((), torch.inf, dtype=sig.dtype, device=sig.device)
    snr = torch.where(noise > 0, sig / torch.where(noise > 0, noise, torch.ones_like(noise)),
                      torch.where(sig > 0, inf, torch.zeros_like(sig)))
    return sig, noise, snr


def snr_learning_rate(snr: torch.Tensor, lr_max: float) -> torch.Tensor:
    """lr = lr_max · SNR/(1 + SNR); lr_max at SNR = ∞."""
    return torch.where(torch.isinf(snr), torch.full_like(snr, lr_max),
                       lr_max * snr / (1 + torch.where(torch.isinf(snr), torch.zeros_like(snr), snr)))


@implements("oblr_po_lr")
def oblr_po_learning_rate(g_samples, config: OBLRPOLRConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(snr, lr) from per-sample gradient estimates g_samples (N, P), N ≥ 2."""
    cfg = config or OBLRPOLRConfig()
    if not isinstance(g_samples, torch.Tensor) or g_samples.ndim != 2 or g_samples.shape[0] < 2 \
            or g_samples.shape[1] < 1:
        raise fail("g_samples", f"shape {tuple(getattr(g_samples, 'shape', ()))}",
                   "(N, P) with N ≥ 2 samples and P ≥ 1 parameters")
    G = common.upcast(g_samples)
    if not bool(torch.isfinite(G).all()):
        raise fail("g_samples", "non-finite values", "finite gradient estimates")
    _, _, snr = estimate_snr(G, cfg.signal)
    return snr, snr_learning_rate(snr, cfg.lr_max)

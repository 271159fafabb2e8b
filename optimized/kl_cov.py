"""KL-Cov (torch). Mirrors :mod:`rlspec.reference.kl_cov`; the covariance selection is computed without gradient."""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference.kl_cov import KLCovConfig, n_selected


def top_covariance_mask(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor, k: float) -> torch.Tensor:
    """S (B, T) bool: the max(1, ⌊kN⌋) valid tokens of largest (Â − mean Â)(logp − mean logp); ties → lower index."""
    with torch.no_grad():
        a, lp = adv[mask], logp[mask]  # (N,) row-major
        S = torch.zeros_like(mask)
        n = n_selected(int(a.numel()), k)
        if n == 0:
            return S
        cov = (a - a.mean()) * (lp - lp.mean())
        chosen = torch.sort(-cov, stable=True).indices[:n]
        flat = torch.zeros(a.numel(), dtype=torch.bool)
        flat[chosen] = True
        S[mask] = flat
    return S


@implements("kl_cov")
def kl_cov_loss(logp, old_logp, adv, mask, ref_logp=None, config: KLCovConfig | None = None, group=None):
    """Scalar loss Σ c ⊙ (−r Â + β |log r|·[S])."""
    cfg = config or KLCovConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_r = logp - old_logp
    if cfg.log_ratio_clamp is not None:
        log_r = torch.clamp(log_r, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    S = top_covariance_mask(adv, logp.detach(), mask, cfg.k)
    ell = -torch.exp(log_r) * adv + cfg.beta * log_r.abs() * S.to(log_r.dtype)
    return common.aggregate_token_loss(ell, mask, cfg, group)

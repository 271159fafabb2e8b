"""KL-Cov (torch). Mirrors :mod:`rlspec.reference.kl_cov`; the covariance selection is computed without gradient.

The registered loss forms the selection S once (a batch-wide ranking: one k-th value search, no sort), then runs
its fused core (:mod:`rlspec.optimized.fused`), value and gradient in one pass; :func:`kl_cov_loss_autograd` is the
autograd formulation it falls back to (and validates with). Both take the same selection.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.kl_cov import KLCovConfig, n_selected

__all__ = ["KLCovConfig", "top_covariance_mask", "kl_cov_loss", "kl_cov_loss_autograd", "kl_cov_core"]


def top_covariance_mask(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor, k: float) -> torch.Tensor:
    """S (B, T) bool: the n = max(1, ⌊kN⌋) valid tokens of largest (Â − mean Â)(logp − mean logp), ties → lower
    row-major index. Values at masked positions are never read (garbage and NaN there are fine).

    Exact top-n without sorting: v = the n-th largest covariance (``kthvalue``), S = {Cov > v} plus the first
    n − |{Cov > v}| tokens with Cov = v in row-major order, which is what a stable descending sort selects."""
    with torch.no_grad():
        M = mask
        N = int(torch.count_nonzero(M))
        n = n_selected(N, k)
        if n == 0 or n >= N:
            return M.clone()  # none (N = 0) or every valid token
        zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
        ma = torch.where(M, adv, zero).sum() / N
        ml = torch.where(M, logp, zero).sum() / N
        cov = torch.where(M, (adv - ma) * (logp - ml), -torch.inf).flatten()
        v = -torch.kthvalue(-cov, n).values
        above = (cov > v) & M.flatten()
        tied = (cov == v) & M.flatten()
        need = n - torch.count_nonzero(above)
        S = above | (tied & (torch.cumsum(tied, 0) <= need))
    return S.view(M.shape)


def _selection(adv, logp, mask, cfg: KLCovConfig, selection) -> torch.Tensor:
    """S (B, T) bool: ``selection`` ∧ mask when given (RLSpecValueError naming it otherwise), else this batch's."""
    if selection is not None:
        return common.check_mask(selection, mask.shape, "selection") & mask
    return top_covariance_mask(adv, logp, mask, cfg.k)


def kl_cov_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: KLCovConfig | None = None, group=None,
                         selection=None):
    """Scalar loss Σ c ⊙ (−r Â + β |log r|·[S]); ``loss.backward()`` gives −c·(r Â − β sign(log r)·[S])."""
    cfg = config or KLCovConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    log_r = logp - old_logp
    if cfg.log_ratio_clamp is not None:
        log_r = torch.clamp(log_r, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    S = _selection(adv, logp.detach(), mask, cfg, selection)
    ell = -torch.exp(log_r) * adv + cfg.beta * log_r.abs() * S.to(log_r.dtype)
    return common.aggregate_token_loss(ell, mask, cfg, group)


def kl_cov_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, pen=False, need_grad=True):
    """KL-Cov: ℓ = −r Â + β |log r|·S, ∂ℓ/∂logp = −r Â + β sign(log r)·S (0 where the log-ratio clamp binds);
    ``extra`` = S as 0/1 in the compute dtype (``pen``; without it β = 0 or S = ∅: −r Â alone); p = (β, clamp, q)."""
    x, o, a, s, fin = fused._inputs(lp, old, adv, p, extra if pen else None, ref)
    mask = fused._valid(mask, p.dtype)
    d = x - o
    inside = None
    if clamp:
        inside = (d >= -p[1]) & (d <= p[1])
        d = torch.clamp(d, -p[1], p[1])
    ra = -torch.exp(d) * a
    if pen:
        bs = p[0] * s
        ell, dl = ra + bs * d.abs(), ra + bs * torch.sign(d)
    else:
        ell, dl = ra, ra
    if inside is not None:
        dl = torch.where(inside, dl, 0.0)
    return fused._epilogue(ell, dl, fin, mask, fused._coef(mask, c, p[-1], agg), lp.dtype, need_grad)


_DEFAULT_CONFIG = KLCovConfig()  # frozen: one instance serves every call without a config


def _compute_dtype(logp: torch.Tensor) -> torch.dtype:
    return torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype


def _fast_selection(logp, adv, mask, cfg, selection) -> torch.Tensor | None:
    """S as 0/1 in the compute dtype for the core, or None where the autograd formulation must take the call
    (non-tensors, shapes or devices that differ, a bad mask or selection: it names the argument)."""
    if not (isinstance(logp, torch.Tensor) and isinstance(adv, torch.Tensor) and isinstance(mask, torch.Tensor)
            and logp.ndim == 2 and logp.is_floating_point() and adv.is_floating_point()
            and adv.shape == logp.shape and mask.shape == logp.shape and adv.device == logp.device == mask.device):
        return None
    try:
        M = common.check_mask(mask, logp.shape)
        dt = _compute_dtype(logp)
        S = _selection(adv.detach().to(dt), logp.detach().to(dt), M, cfg, selection)
    except RLSpecValueError:
        return None
    return S.to(dt)


@implements("kl_cov")
def kl_cov_loss(logp, old_logp, adv, mask, ref_logp=None, config: KLCovConfig | None = None, group=None,
                selection=None):
    """Scalar loss Σ c ⊙ (−r Â + β |log r|·[S]) through its fused core (:mod:`rlspec.optimized.fused`): the
    selection S once (``selection`` ∧ mask when given, as the reference), then value and gradient in one pass;
    :func:`kl_cov_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_CONFIG
    kw = dict(ref_logp=ref_logp, selection=selection)
    S = None
    if (cfg.beta > 0 or selection is not None) and fused.mode() != "off":  # a given selection is always checked
        S = _fast_selection(logp, adv, mask, cfg, selection)
        if S is None:
            return kl_cov_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
        if cfg.beta == 0:
            S = None  # β = 0: no penalty term to weigh
    return fused.fused_policy_loss("kl_cov", kl_cov_loss_autograd, logp, old_logp, adv, mask, cfg, group, extra=S,
                                   extra_f32=True, call_flags={"pen": S is not None}, **kw)


fused.CORES["kl_cov"] = fused.Core(kl_cov_core, lambda c: (c.beta, c.log_ratio_clamp or 0.0),
                                   lambda c: {"clamp": c.log_ratio_clamp is not None})

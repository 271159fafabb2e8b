"""CAPO curvature-aware token masking (torch). Mirrors :mod:`rlspec.reference.capo_curvature`.

The curvature statistics are stop-gradient diagnostics computed under ``torch.no_grad`` in float64 for
float64 inputs and in float32 otherwise (bf16 hidden states are upcast: a threshold test on a bf16-rounded
m_F would flip tokens that sit within 1 % of τ_F). The per-token update direction P(g) has shape
(N, K, d); for an LLM vocabulary call :func:`capo_curvature_mask` on chunks of tokens (the official code
restricts the support to the top-k logits for the same reason). The loss is PPO-clip on mask ∧ keep: the
registered loss forms keep once, then runs its fused core (:mod:`rlspec.optimized.fused`), value and gradient in one
pass; :func:`capo_curvature_loss_autograd` is the autograd formulation it falls back to (and validates with).
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.ppo import clipped_surrogate, dual_clip
from rlspec.optimized.registry import implements
from rlspec.reference._validate import RLSpecValueError, fail
from rlspec.reference.capo_curvature import CAPOCurvatureConfig

__all__ = ["CAPOCurvatureConfig", "softmax_policy", "score_direction", "token_gradient", "adam_direction",
           "logit_shift", "fisher_quadratic", "fisher_shift", "hessian_shift", "accept", "token_curvature",
           "capo_curvature_mask", "capo_curvature_loss", "capo_curvature_loss_autograd", "capo_core"]


def softmax_policy(W: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """π = softmax(W h) (N, K)."""
    return torch.softmax(h @ W.T, dim=-1)


def score_direction(pi: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """v = e_a − π (N, K)."""
    return torch.nn.functional.one_hot(actions, pi.shape[-1]).to(pi.dtype) - pi


def token_gradient(adv: torch.Tensor, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """g = A · v hᵀ (N, K, d)."""
    return adv[:, None, None] * v[:, :, None] * h[:, None, :]


def adam_direction(g, m, v2, step: int, beta1: float, beta2: float, eps: float) -> torch.Tensor:
    """P(g) = m̂/(√v̂ + ε) with prospective moments at t = step + 1 (state unchanged)."""
    t = step + 1
    m1 = (beta1 * m.unsqueeze(0) + (1.0 - beta1) * g) / (1.0 - beta1**t)
    v1 = (beta2 * v2.unsqueeze(0) + (1.0 - beta2) * g * g) / (1.0 - beta2**t)
    return m1 / (v1.sqrt() + eps)


def logit_shift(P: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """u = P h (N, K)."""
    return torch.einsum("nkd,nd->nk", P, h)


def fisher_quadratic(pi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """uᵀFu = Σ_k π_k (u_k − ū)² (N,)."""
    ubar = (pi * u).sum(dim=-1, keepdim=True)
    return (pi * (u - ubar) ** 2).sum(dim=-1)


def fisher_shift(v: torch.Tensor, u: torch.Tensor, lr: float) -> torch.Tensor:
    """m_F = ½ η² (vᵀu)² (N,)."""
    return 0.5 * lr**2 * (v * u).sum(dim=-1) ** 2


def hessian_shift(adv, v, u, pi, g, P, lr: float) -> torch.Tensor:
    """m_H = η⟨g, P⟩ + ½ η² A [(vᵀu)² − uᵀFu] (N,)."""
    return lr * (g * P).sum(dim=(1, 2)) + 0.5 * lr**2 * adv * ((v * u).sum(dim=-1) ** 2 - fisher_quadratic(pi, u))


def accept(m_H: torch.Tensor, m_F: torch.Tensor, cfg: CAPOCurvatureConfig) -> torch.Tensor:
    """keep (N,) bool: m_F < τ_F and the configured Hessian rule."""
    keep = torch.ones_like(m_H, dtype=torch.bool)
    if cfg.tau_F is not None:
        keep &= m_F < cfg.tau_F
    if cfg.tau_H is not None:
        if cfg.hessian_rule == "symmetric":
            keep &= (m_H > -cfg.tau_H) & (m_H < cfg.tau_H)
        elif cfg.hessian_rule == "nonnegative":
            keep &= (m_H >= 0.0) & (m_H < cfg.tau_H)
        else:
            keep &= m_H >= cfg.tau_H
    return keep


def token_curvature(h, W, actions, adv, cfg: CAPOCurvatureConfig, adam_m=None, adam_v=None, adam_step: int = 0):
    """(m_H, m_F) (N,) for N tokens."""
    pi = softmax_policy(W, h)
    v = score_direction(pi, actions)
    g = token_gradient(adv, v, h)
    if cfg.optimizer == "adam" and adam_m is not None:
        P = adam_direction(g, adam_m, adam_v, adam_step, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps)
    else:
        P = g
    u = logit_shift(P, h)
    return hessian_shift(adv, v, u, pi, g, P, cfg.lr), fisher_shift(v, u, cfg.lr)


def _head_inputs(h, W, actions, mask, adam_m, adam_v, adam_step, dtype):
    if not isinstance(W, torch.Tensor) or W.ndim != 2 or not bool(torch.isfinite(W).all()):
        raise fail("W", f"{type(W).__name__} {tuple(getattr(W, 'shape', ()))}", "a finite (K, d) tensor")
    K, d = W.shape
    if not isinstance(h, torch.Tensor) or h.shape != (*mask.shape, d):
        raise fail("h", f"shape {tuple(getattr(h, 'shape', ()))}", f"shape {(*mask.shape, d)}")
    Hv = h[mask].to(dtype)  # (N, d): only valid tokens are read
    if not bool(torch.isfinite(Hv).all()):
        raise fail("h", "a non-finite value at an unmasked position", "finite hidden states wherever mask is True")
    if not isinstance(actions, torch.Tensor) or actions.shape != mask.shape or actions.dtype.is_floating_point:
        raise fail("actions", f"{getattr(actions, 'dtype', type(actions).__name__)} "
                   f"{tuple(getattr(actions, 'shape', ()))}", f"integer token ids of shape {tuple(mask.shape)}")
    av = actions[mask].long()
    if av.numel() and (int(av.min()) < 0 or int(av.max()) >= K):
        raise fail("actions", f"ids in [{int(av.min())}, {int(av.max())}]", f"token ids in [0, {K})")
    if (adam_m is None) != (adam_v is None):
        raise fail("adam_m, adam_v", "only one of them", "both optimiser moments or neither")
    if adam_m is not None:
        for name, x in (("adam_m", adam_m), ("adam_v", adam_v)):
            if not isinstance(x, torch.Tensor) or x.shape != W.shape or not bool(torch.isfinite(x).all()):
                raise fail(name, f"{tuple(getattr(x, 'shape', ()))}", f"finite moments of W's shape {tuple(W.shape)}")
        if bool((adam_v < 0).any()):
            raise fail("adam_v", "a negative value", "second moments ≥ 0")
        adam_m, adam_v = adam_m.to(dtype), adam_v.to(dtype)
    step = int(adam_step.item()) if isinstance(adam_step, torch.Tensor) else adam_step
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise fail("adam_step", repr(adam_step), "an integer ≥ 0 (optimiser updates done so far)")
    return Hv, W.to(dtype), av, adam_m, adam_v, step


@implements("capo_curvature_mask")
def capo_curvature_mask(h, W, actions, adv, mask, adam_m=None, adam_v=None, adam_step=0,
                        config: CAPOCurvatureConfig | None = None) -> dict[str, torch.Tensor]:
    """{"keep": (B, T) bool, "m_H": (B, T), "m_F": (B, T)}; zeros / False at masked positions."""
    cfg = config or CAPOCurvatureConfig()
    mask = common.check_mask(mask)
    if mask.ndim != 2:
        raise fail("mask", f"shape {tuple(mask.shape)}", "shape (B, T)")
    A = common.clean(adv, mask, "adv")
    dtype = torch.float64 if A.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        Hv, Wd, av, m, v2, t = _head_inputs(h, W, actions, mask, adam_m, adam_v, adam_step, dtype)
        mH, mF = token_curvature(Hv, Wd, av, A[mask].to(dtype), cfg, m, v2, t)
        keep = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
        m_H = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        m_F = torch.zeros_like(m_H)
        keep[mask], m_H[mask], m_F[mask] = accept(mH, mF, cfg), mH, mF
    return {"keep": keep, "m_H": m_H, "m_F": m_F}


def capo_curvature_loss_autograd(logp, old_logp, adv, mask, h=None, W=None, actions=None, adam_m=None, adam_v=None,
                                 adam_step=0, ref_logp=None, config: CAPOCurvatureConfig | None = None, group=None):
    """Scalar CAPO loss (PPO-clip on mask ∧ keep); ``loss.backward()`` gives ∂loss/∂logp."""
    cfg = config or CAPOCurvatureConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    given = [x is not None for x in (h, W, actions)]
    if any(given) and not all(given):
        raise fail("h, W, actions", "only some of them", "all three (the policy's last layer) or none")
    keep = mask
    if all(given):
        keep = capo_curvature_mask(h, W, actions, adv, mask, adam_m, adam_v, adam_step, cfg)["keep"]
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    ell = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell = dual_clip(ell, adv, cfg.dual_clip_c)
    c = common.coefficients(keep if cfg.mask_denominators == "kept" else mask, cfg.agg, group=group,
                            normalizer=cfg.normalizer, const=cfg.const, seq_denominator=cfg.seq_denominator,
                            dtype=ell.dtype) * keep.to(ell.dtype)
    return common.finite_loss((c * torch.where(keep, ell, torch.zeros((), dtype=ell.dtype))).sum())


def capo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, dual=False, curv=False,
              need_grad=True):
    """CAPO: PPO's clip (dual clip) on the kept tokens ``mask``; ``extra`` = the valid tokens before the curvature
    filter as 0/1 (``curv``; else every valid token is kept), over which the finiteness probe runs. p = (lo, hi,
    log_ratio_clamp, dual_c, q)."""
    dt = p.dtype
    x, o, a, _, fin = fused._inputs(lp, old, adv, p, None, ref)
    keep = fused._valid(mask, dt)
    r, cut = fused._ratio(x - o, p[2] if clamp else None)
    ell, dl = fused._clip_grad(r, a, p[0], p[1], p[3] if dual else None, cut)
    cf = fused._coef(keep, c, p[-1], agg)
    if not curv:
        return fused._epilogue(ell, dl, fin, keep, cf, lp.dtype, need_grad)
    full = fused._cast(extra, dt) > 0
    loss = torch.where(keep, cf * ell, 0.0).sum() + torch.where(full, fin, 0.0).sum()
    return loss, (torch.where(keep, cf * dl, 0.0).to(lp.dtype) if need_grad else None)


_DEFAULT_CONFIG = CAPOCurvatureConfig()  # frozen: one instance serves every call without a config


def _fast_keep(logp, adv, mask, cfg, h, W, actions, adam_m, adam_v, adam_step) -> tuple | None:
    """(keep, the valid tokens as 0/1 in the compute dtype) for the fused core, or None where the autograd
    formulation must take the call (non-tensors, shapes that differ, any input the curvature statistics refuse:
    it names the argument)."""
    if not (isinstance(logp, torch.Tensor) and isinstance(mask, torch.Tensor) and isinstance(adv, torch.Tensor)
            and logp.ndim == 2 and logp.is_floating_point() and mask.shape == logp.shape == adv.shape
            and mask.device == logp.device):
        return None
    try:
        M = common.check_mask(mask, logp.shape)
        keep = capo_curvature_mask(h, W, actions, adv.detach(), M, adam_m, adam_v, adam_step, cfg)["keep"]
    except RLSpecValueError:
        return None
    dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
    return keep, M.to(dt)


@implements("capo_curvature")
def capo_curvature_loss(logp, old_logp, adv, mask, h=None, W=None, actions=None, adam_m=None, adam_v=None,
                        adam_step=0, ref_logp=None, config: CAPOCurvatureConfig | None = None, group=None):
    """Scalar CAPO loss (PPO-clip on mask ∧ keep) through its fused core (:mod:`rlspec.optimized.fused`): the
    curvature filter once (from ``h``, ``W``, ``actions``), then value and gradient in one pass;
    :func:`capo_curvature_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_CONFIG
    kw = dict(h=h, W=W, actions=actions, adam_m=adam_m, adam_v=adam_v, adam_step=adam_step, ref_logp=ref_logp)
    given = [x is not None for x in (h, W, actions)]
    if any(given) and not all(given):
        return capo_curvature_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)  # raises
    keep, extra, coef_mask = None, None, None
    if all(given) and fused.mode() != "off":
        out = _fast_keep(logp, adv, mask, cfg, h, W, actions, adam_m, adam_v, adam_step)
        if out is None:
            return capo_curvature_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
        keep, extra = out
        if cfg.mask_denominators != "kept":
            coef_mask = common.check_mask(mask)
    return fused.fused_policy_loss("capo_curvature", capo_curvature_loss_autograd, logp, old_logp, adv,
                                   mask if keep is None else keep, cfg, group, extra=extra, extra_f32=True,
                                   call_flags={"curv": keep is not None}, coef_mask=coef_mask, slow_mask=mask, **kw)


fused.CORES["capo_curvature"] = fused.Core(
    capo_core, lambda c: (1.0 - c.eps_low, 1.0 + c.eps_high, c.log_ratio_clamp or 0.0, c.dual_clip_c or 0.0),
    lambda c: {"clamp": c.log_ratio_clamp is not None, "dual": c.dual_clip_c is not None})

"""Fused policy losses: the per-token loss and its gradient ``dlogp`` in one pass, without autograd's graph.

Every policy loss here is ``loss = Σ c ⊙ ℓ`` with ``c`` the aggregation coefficients, and the reference
(:mod:`rlspec.reference`) writes the hand gradient ``∂ℓ/∂logp`` next to each loss. A *core* below computes, from
the raw inputs, the scalar ``Σ c ⊙ ℓ``, the gradient ``c ⊙ ∂ℓ/∂logp`` (zero at masked positions) and a finiteness
probe, in the forward; the backward hands that gradient back (multiplied by the incoming gradient when it is
not 1). Two ways to run a core:

* **compiled**: ``torch.compile(core, dynamic=True)``, one generated kernel that reads each input once and writes
  the gradient once (the memory-traffic minimum). Used for batches of at least :data:`COMPILE_MIN_TOKENS` tokens
  when compilation works on this machine; if it fails (no C++ compiler, unsupported backend) a warning is issued
  once and the eager core is used from then on.
* **eager**: the same core run op by op (small batches, or ``RLSPEC_FUSED=eager``).

``RLSPEC_FUSED=off`` (or :func:`set_mode`) skips the fused path: each loss then runs its autograd formulation
(the ``*_autograd`` function next to it), which is also the fallback that validates: the fused path checks only
shapes and dtypes up front, and the one device sync it pays, on the loss and the probe, sends any batch whose
loss or valid inputs are not finite to the autograd formulation, which raises the reference's RLSpecValueError
naming the argument (or returns the finite loss when only the probe overflowed).

Numerics follow the reference: half-precision inputs are computed in float32 (the gradient is returned in the
input's dtype), masked positions are never read (``torch.where`` before any arithmetic), a gradient factor that
is 0 stays 0 where the ratio overflows (no 0·inf = NaN), a clip's boundary belongs to the reference's branch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlspec.optimized import common
from rlspec.reference import aggregation as ref_aggregation
from rlspec.reference._validate import positive

__all__ = ["COMPILE_MIN_TOKENS", "CORES", "fused_policy_loss", "mode", "set_mode"]

MODES = ("auto", "compile", "eager", "off")
COMPILE_MIN_TOKENS = int(os.environ.get("RLSPEC_FUSED_COMPILE_MIN", 1 << 16))
_MODE = os.environ.get("RLSPEC_FUSED", "auto")
_COMPILED: dict[tuple, Callable] = {}
_COMPILE_BROKEN: list[str] = []  # the first compilation error, once one happened


def set_mode(m: str) -> None:
    """``auto`` (compile large batches, eager otherwise), ``compile`` (always), ``eager`` (never compile),
    ``off`` (autograd formulation, no fused path)."""
    global _MODE
    if m not in MODES:
        raise ValueError(f"fused mode must be one of {MODES}, got {m!r}")
    _MODE = m


def mode() -> str:
    """The current fused mode (see :func:`set_mode`)."""
    return _MODE


# --------------------------------------------------------------------------------------------- shared pieces
def _f(x: torch.Tensor, dt: torch.dtype, mask: torch.Tensor) -> torch.Tensor:
    """``x`` in the compute dtype with masked positions replaced by 0 (never read)."""
    return torch.where(mask, x.to(dt), torch.zeros((), dtype=dt, device=x.device))


def _safe_mul(factor: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """factor · r, taken as 0 where factor is 0 (r may be inf where the ratio overflowed and a clip cut it off)."""
    return torch.where(factor == 0, torch.zeros((), dtype=r.dtype, device=r.device), factor * r)


def _ratio(d: torch.Tensor, clamp: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """r = exp(d) with d clamped to ±clamp when given, and ∂r/∂d (0 where the clamp binds)."""
    if clamp is None:
        r = torch.exp(d)
        return r, r
    r = torch.exp(torch.clamp(d, -clamp, clamp))
    inside = (d >= -clamp) & (d <= clamp)
    return r, torch.where(inside, r, torch.zeros((), dtype=r.dtype, device=r.device))


def _clipped_surrogate(r, a, lo, hi):
    """ℓ = −min(r Â, clip(r, lo, hi) Â) and ∂ℓ/∂r (the reference's branch rule: 0 where the clip binds)."""
    ell = -torch.minimum(r * a, torch.clamp(r, lo, hi) * a)
    binds = ((a > 0) & (r > hi)) | ((a < 0) & (r < lo))
    return ell, torch.where(binds, torch.zeros((), dtype=a.dtype, device=a.device), -a)


def _dual_clip(ell, dell, a, c):
    """For Â < 0: ℓ ← min(ℓ, −c Â), the cap's branch having a zero gradient (ties keep the surrogate's)."""
    cap = -c * a
    active = (a < 0) & (ell > cap)
    return torch.where(active, cap, ell), torch.where(active, torch.zeros((), dtype=a.dtype, device=a.device), dell)


def _token_epilogue(ell, dl, mask, c, need_grad):
    """(Σ c ⊙ ℓ over valid tokens, c ⊙ ∂ℓ/∂logp zero at masked positions, or None)."""
    zero = torch.zeros((), dtype=ell.dtype, device=ell.device)
    loss = torch.where(mask, c * ell, zero).sum()
    return loss, (torch.where(mask, c * dl, zero) if need_grad else None)


def _row_sums(x, mask):
    """(Σ_t x over valid tokens, n valid tokens) per row, both (B, 1)."""
    n = mask.sum(dim=1, keepdim=True).to(x.dtype)
    return x.sum(dim=1, keepdim=True), n


# --------------------------------------------------------------------------------------------- the cores
# Signature: core(lp, old, adv, mask, c, p, extra, ref, *, flags..., need_grad) -> (loss, probe, g | None)
# lp/old/adv/extra/ref: raw inputs of any float dtype (ref only enters the finiteness probe);
# c: coefficients in the compute dtype, 0-d, (B, 1) or (B, T);
# p: 1-D compute-dtype tensor of numeric parameters (tensors, so new values do not recompile).

def _prologue(lp, old, adv, mask, c, extra=None, ref=None):
    """The inputs in the compute dtype, masked positions 0; the probe Σ of every valid input value (non-finite
    iff one of them is, or the sum overflows)."""
    dt = c.dtype
    x, o, a = _f(lp, dt, mask), _f(old, dt, mask), _f(adv, dt, mask)
    probe = x + o + a
    e = None if extra is None else _f(extra, dt, mask)
    if e is not None:
        probe = probe + e
    if ref is not None:
        probe = probe + _f(ref, dt, mask)
    return x, o, a, e, probe.sum()


def ppo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, dual=False, tis=None, need_grad=True):
    """PPO clip (asymmetric range; dual clip; TIS weight when ``tis`` is 'truncate'/'mask'); p = (lo, hi,
    log_ratio_clamp, dual_c, C_min, C)."""
    x, o, a, e, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    r, dr = _ratio(x - o, p[2] if clamp else None)
    ell, dell = _clipped_surrogate(r, a, p[0], p[1])
    if dual:
        ell, dell = _dual_clip(ell, dell, a, p[3])
    dl = _safe_mul(dell, dr)
    if tis is not None:
        rho = torch.exp(o - (o if e is None else e))
        w = torch.clamp(rho, p[4], p[5]) if tis == "truncate" else torch.where((rho >= p[4]) & (rho <= p[5]), rho, 0.0)
        ell, dl = w * ell, w * dl
    loss, g = _token_epilogue(ell, dl, mask, c, need_grad)
    return loss, probe, g


def two_sided_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, dual=False, need_grad=True):
    """Two-sided clip: ℓ = −min(min(r, δ) Â, clip(r, lo, hi) Â); p = (lo, hi, log_ratio_clamp, dual_c, δ)."""
    x, o, a, _, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    r, dr = _ratio(x - o, p[2] if clamp else None)
    lo, hi, delta = p[0], p[1], p[4]
    ua, ub = torch.clamp(r, max=delta) * a, torch.clamp(r, lo, hi) * a
    use_a = ua <= ub
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    da = torch.where(r < delta, a, zero)
    db = torch.where((r > lo) & (r < hi), a, zero)
    ell, dell = -torch.where(use_a, ua, ub), -torch.where(use_a, da, db)
    if dual:
        ell, dell = _dual_clip(ell, dell, a, p[3])
    loss, g = _token_epilogue(ell, _safe_mul(dell, dr), mask, c, need_grad)
    return loss, probe, g


def cispo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, lower=False, need_grad=True):
    """CISPO: ℓ = −sg(clip(r, lo, hi)) Â logp (no lower bound unless ``lower``); p = (lo, hi, log_ratio_clamp)."""
    x, o, a, _, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    r, _ = _ratio(x - o, p[2] if clamp else None)
    w = torch.clamp(r, min=p[0] if lower else None, max=p[1])
    loss, g = _token_epilogue(-w * a * x, -w * a, mask, c, need_grad)
    return loss, probe, g


def sapo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, need_grad=True):
    """SAPO soft gate: ℓ = −(4/τ) σ(τ(r − 1)) Â, ∂ℓ/∂r = −Â 4σ(x)σ(−x); p = (τ_pos, τ_neg, log_ratio_clamp)."""
    x, o, a, _, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    r, dr = _ratio(x - o, p[2] if clamp else None)
    tau = torch.where(a > 0, p[0], p[1])
    z = tau * (r - 1.0)
    em = torch.exp(-torch.abs(z))  # σ(±z) from e^{−|z|}: no overflow for any z
    big, small = 1.0 / (1.0 + em), em / (1.0 + em)
    pos = z >= 0
    s_pos, s_neg = torch.where(pos, big, small), torch.where(pos, small, big)
    ell = -(4.0 / tau) * s_pos * a
    dell = -a * (4.0 * s_pos * s_neg)
    loss, g = _token_epilogue(ell, _safe_mul(dell, dr), mask, c, need_grad)
    return loss, probe, g


def _seq_ratio(x, o, a, mask, clamp):
    """GSPO's s_i = exp(mean_t log r) with its clamp indicator, Â_i, n_i, all (B, 1)."""
    dsum, n = _row_sums(x - o, mask)
    n1 = n.clamp(min=1)
    m = dsum / n1
    if clamp is None:
        inside = torch.ones_like(m)
    else:
        inside = ((m >= -clamp) & (m <= clamp)).to(m.dtype)
        m = torch.clamp(m, -clamp, clamp)
    A = a.sum(dim=1, keepdim=True) / n1
    return torch.exp(m), inside, A, n


def _row_weight(c, mask):
    """C_i = Σ_t c_it over valid tokens (B, 1): the weight of sequence i in the aggregated loss."""
    return torch.where(mask, c.expand(mask.shape), torch.zeros((), dtype=c.dtype, device=c.device)).sum(
        dim=1, keepdim=True)


def gspo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, need_grad=True):
    """GSPO: per-sequence clipped surrogate of s_i and Â_i; ∂/∂logp_it = C_i ∂ℓ/∂s s_i / n_i; p = (lo, hi, clamp)."""
    x, o, a, _, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    s, inside, A, n = _seq_ratio(x, o, a, mask, p[2] if clamp else None)
    ell, dell = _clipped_surrogate(s, A, p[0], p[1])
    C = _row_weight(c, mask)
    loss = (C * ell).sum()
    if not need_grad:
        return loss, probe, None
    w = torch.where(n > 0, _safe_mul(C * dell, s) * inside / n.clamp(min=1), 0.0)
    return loss, probe, torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))


def gspo_token_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, need_grad=True):
    """GSPO-token: value s_i, token advantages, token-local gradient s_i ∂ℓ/∂s; p = (lo, hi, clamp)."""
    x, o, a, _, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    s, _, _, _ = _seq_ratio(x, o, a, mask, p[2] if clamp else None)
    s_t = s.expand(x.shape)
    ell, dell = _clipped_surrogate(s_t, a, p[0], p[1])
    loss, g = _token_epilogue(ell, _safe_mul(dell, s_t), mask, c, need_grad)
    return loss, probe, g


def gmpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, clamp=False, need_grad=True):
    """GMPO: s_i = exp(mean of the sign-aware clipped log-ratio), ℓ_i = −Â_i s_i; p = (ε_low, ε_high, clamp)."""
    x, o, a, _, probe = _prologue(lp, old, adv, mask, c, extra, ref)
    d = x - o
    if clamp:
        dd = (d >= -p[2]) & (d <= p[2])
        d = torch.clamp(d, -p[2], p[2])
    A = a.sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1).to(a.dtype)
    pos = A >= 0
    dt = torch.where(pos, torch.clamp(d, max=p[1]), torch.clamp(d, min=-p[0]))
    free = torch.where(pos, d < p[1], d > -p[0])
    if clamp:
        free = free & dd
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    tsum, n = _row_sums(torch.where(mask, dt, zero), mask)
    s = torch.exp(tsum / n.clamp(min=1))
    C = _row_weight(c, mask)
    loss = (C * (-A * s)).sum()
    if not need_grad:
        return loss, probe, None
    w = torch.where(n > 0, -C * A * s / n.clamp(min=1), zero)
    return loss, probe, torch.where(mask & free, w.expand(d.shape), zero)


@dataclass(frozen=True)
class Core:
    """A fused core and how a config becomes its parameters ``p`` and static flags."""

    fn: Callable
    params: Callable  # cfg -> tuple of floats
    flags: Callable  # cfg -> dict of static keyword flags


def _ppo_params(cfg):
    return (1.0 - cfg.eps_low, 1.0 + cfg.eps_high, cfg.log_ratio_clamp or 0.0, getattr(cfg, "dual_clip_c", None) or 0.0)


def _ppo_flags(cfg):
    return {"clamp": cfg.log_ratio_clamp is not None, "dual": getattr(cfg, "dual_clip_c", None) is not None}


CORES: dict[str, Core] = {
    "ppo": Core(ppo_core, _ppo_params, _ppo_flags),
    "dapo": Core(ppo_core, _ppo_params, _ppo_flags),
    "tis": Core(ppo_core, lambda c: _ppo_params(c) + (0.0 if c.C_min is None else c.C_min, c.C),
                lambda c: dict(_ppo_flags(c), tis=c.mode)),
    "two_sided_clip": Core(two_sided_core, lambda c: _ppo_params(c) + (c.delta,), _ppo_flags),
    "cispo": Core(cispo_core, lambda c: (1.0 - (c.eps_low or 0.0), 1.0 + c.eps_high, c.log_ratio_clamp or 0.0),
                  lambda c: {"clamp": c.log_ratio_clamp is not None, "lower": c.eps_low is not None}),
    "sapo": Core(sapo_core, lambda c: (c.tau_pos, c.tau_neg, c.log_ratio_clamp or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None}),
    "gspo": Core(gspo_core, lambda c: (1.0 - c.eps_low, 1.0 + c.eps_high, c.log_ratio_clamp or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None}),
    "gspo_token": Core(gspo_token_core, lambda c: (1.0 - c.eps_low, 1.0 + c.eps_high, c.log_ratio_clamp or 0.0),
                       lambda c: {"clamp": c.log_ratio_clamp is not None}),
    "gmpo": Core(gmpo_core, lambda c: (c.eps_low, c.eps_high, c.log_ratio_clamp or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None}),
}


# --------------------------------------------------------------------------------------------- aggregation
def coefficients(mask: torch.Tensor, cfg, group, dt: torch.dtype) -> torch.Tensor:
    """The aggregation coefficients as a 0-d, (B, 1) or (B, T) tensor (no device sync for the per-row modes).

    Same values as :func:`rlspec.optimized.common.coefficients` wherever ``mask`` is True (the cores zero the
    rest); group-token-mean takes that function's (B, T) matrix."""
    mode, norm = cfg.agg, cfg.normalizer
    dev = mask.device
    if mode == "group-token-mean":
        return common.coefficients(mask, mode, group=group, normalizer=norm, const=cfg.const,
                                   seq_denominator=getattr(cfg, "seq_denominator", None), dtype=dt)
    if mode == "token-mean":
        if norm is not None:
            return torch.tensor(1.0 / positive(norm, "normalizer"), dtype=dt, device=dev)
        total = mask.sum().to(dt)
        return torch.where(total > 0, 1.0 / total.clamp(min=1), 0.0)
    B, T = mask.shape
    n_tok = mask.sum(dim=1, keepdim=True).to(dt)
    if norm is not None:
        d = torch.tensor(positive(norm, "normalizer"), dtype=dt, device=dev)
    elif ref_aggregation._count_all(mode, getattr(cfg, "seq_denominator", None)):
        d = torch.tensor(float(max(B, 1)), dtype=dt, device=dev)
    else:
        d = (n_tok > 0).sum().to(dt).clamp(min=1)
    if mode == "seq-mean-token-mean":
        return 1.0 / n_tok.clamp(min=1) / d
    if mode == "seq-mean-token-sum":
        return (1.0 / d).reshape(())
    C = float(T) if cfg.const is None else positive(cfg.const, "const")
    return (1.0 / (d * C)).reshape(())


# --------------------------------------------------------------------------------------------- running a core
def _compiled(core: Core, flags: tuple) -> Callable | None:
    key = (core.fn, flags)
    if key not in _COMPILED:
        import torch._dynamo.config as dynamo_config

        # one code object per core serves every flag set, dtype and coefficient shape: allow their variants
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        _COMPILED[key] = torch.compile(core.fn, dynamic=True)
    return _COMPILED[key]


def _run(core: Core, flags: dict, args: tuple, need_grad: bool):
    """Run ``core`` compiled (large batches, mode auto/compile) or eager; a failed compilation falls back."""
    lp = args[0]
    want = _MODE == "compile" or (_MODE == "auto" and lp.numel() >= COMPILE_MIN_TOKENS)
    if want and not _COMPILE_BROKEN:
        fn = _compiled(core, tuple(sorted(flags.items())))
        try:
            return fn(*args, **flags, need_grad=need_grad)
        except Exception as e:  # noqa: BLE001 - any compiler failure: keep working, eagerly
            _COMPILE_BROKEN.append(f"{type(e).__name__}: {e}")
            warnings.warn(f"rlspec fused losses: torch.compile failed ({_COMPILE_BROKEN[0][:300]}); "
                          "using the eager fused path from now on", RuntimeWarning, stacklevel=3)
    return core.fn(*args, **flags, need_grad=need_grad)


class _FusedLoss(torch.autograd.Function):
    """loss = Σ c ⊙ ℓ with the gradient computed in the forward; the backward returns it (scaled)."""

    @staticmethod
    def forward(ctx, logp, job):
        loss, probe, g = _run(job.core, job.flags, (logp, *job.args), need_grad=True)
        ctx.job, ctx.g = job, g.to(logp.dtype)
        ctx.save_for_backward(logp)
        job.probe = probe
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        g, ctx.g = ctx.g, None  # released: autograd may then take the tensor as .grad without a copy
        if g is None:  # a second backward (retain_graph): recompute
            (logp,) = ctx.saved_tensors
            job = ctx.job
            g = _run(job.core, job.flags, (logp, *job.args), need_grad=True)[2].to(logp.dtype)
        if grad_out.device.type == "cpu" and grad_out.numel() == 1 and float(grad_out) == 1.0:
            return g, None
        return g * grad_out.to(g.dtype), None


@dataclass
class _Job:
    core: Core
    flags: dict
    args: tuple
    probe: torch.Tensor | None = None


_FLOATS = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def _fast_eligible(logp, others) -> bool:
    """Tensors of one float dtype and device, (B, T), no gradient wanted through the non-logp inputs."""
    if not isinstance(logp, torch.Tensor) or logp.ndim != 2 or logp.dtype not in _FLOATS:
        return False
    for x in others:
        if x is None:
            continue
        if (not isinstance(x, torch.Tensor) or x.shape != logp.shape or x.dtype != logp.dtype
                or x.device != logp.device):
            return False
    return True


def fused_policy_loss(name: str, autograd_fn: Callable, logp, old_logp, adv, mask, cfg, group=None,
                      extra=None, **autograd_kw):
    """The policy loss ``name`` through its fused core; ``autograd_fn(logp, old_logp, adv, mask, config=cfg,
    group=group, **autograd_kw)`` is the autograd formulation used when the fused path does not apply (mode off,
    inputs of mixed dtypes or devices, non-tensors) and to validate a batch whose loss or inputs are not finite."""
    def slow():
        return autograd_fn(logp, old_logp, adv, mask, config=cfg, group=group, **autograd_kw)

    core = CORES[name]
    ref = autograd_kw.get("ref_logp")
    if _MODE == "off" or not _fast_eligible(logp, (old_logp, adv, extra, ref)):
        return slow()
    if not isinstance(mask, torch.Tensor) or mask.device != logp.device:
        return slow()
    m = common.check_mask(mask, logp.shape)
    dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
    c = coefficients(m, cfg, group, dt)
    p = torch.tensor(core.params(cfg), dtype=dt, device=logp.device)
    job = _Job(core, core.flags(cfg), (old_logp.detach(), adv.detach(), m, c, p,
                                       None if extra is None else extra.detach(), None if ref is None else ref.detach()))
    if logp.requires_grad and torch.is_grad_enabled():
        loss = _FusedLoss.apply(logp, job)
    else:
        loss, job.probe, _ = _run(core, job.flags, (logp.detach(), *job.args), need_grad=False)
    if not bool(torch.isfinite(loss.detach() + 0.0 * job.probe)):  # the one sync
        return slow()
    return loss

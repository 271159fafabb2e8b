"""Fused policy losses: the per-token loss and its gradient ``dlogp`` in one pass, without autograd's graph.

Every policy loss here is ``loss = Σ c ⊙ ℓ`` with ``c`` the aggregation coefficients, and the reference
(:mod:`rlspec.reference`) writes the hand gradient ``∂ℓ/∂logp`` next to each loss. A *core* below computes, from
the raw inputs, the scalar ``Σ c ⊙ ℓ`` and the gradient ``c ⊙ ∂ℓ/∂logp`` (zero at masked positions) in the forward;
the backward hands that gradient back (multiplied by the incoming gradient when it is not 1). The loss also carries
a finiteness probe of the valid inputs (an exact 0 added per token, NaN where an input is not finite), so one
reduction serves both. Two ways to run a core:

* **compiled**: ``torch.compile(core, dynamic=True)``, one generated kernel that reads each input once and writes
  the gradient once (the memory-traffic minimum; the per-sequence losses add one read of the mask for the row
  counts). Used for batches of at least :data:`COMPILE_MIN_TOKENS` tokens (4096; ``RLSPEC_FUSED_COMPILE_MIN``)
  when compilation works on this machine; if it fails (no C++ compiler, unsupported backend) a warning is issued
  once and the eager core is used from then on. A compiled call costs about 0.1 ms of fixed overhead on a CPU
  core (less than the naive loss's eager ops from a few hundred tokens on); the first call of each core, flag
  set and dtype compiles it once per process (1-3 s each, about 13 s for the first one in a process with a cold
  inductor cache).
* **eager**: the same core run op by op (batches below the threshold, where compiling would cost more than it
  saves in a test or a one-off call, or ``RLSPEC_FUSED=eager``). There a call costs what its ops cost to launch, so
  the hot cores (ppo/dapo/tapo/riskpo, cispo, sapo, dro, gpg, gspo, gmpo) run a lean eager form instead (:data:`LEAN`,
  section "small batches"): the core's values and gradients in fewer ops, parameters as 0-d tensors built once per
  config.

``RLSPEC_FUSED=off`` (or :func:`set_mode`) skips the fused path: each loss then runs its autograd formulation
(the ``*_autograd`` function next to it), which is also the fallback that validates: the fused path checks only
shapes and dtypes up front, and the one device sync it pays, on the loss, sends any batch whose loss or valid
inputs are not finite to the autograd formulation, which raises the reference's RLSpecValueError naming the
argument (or returns the finite loss when only the probe overflowed).

Numerics follow the reference: half-precision inputs are computed in float32 (the gradient is returned in the
input's dtype), values at masked positions never reach a result (whatever they are, one ``torch.where`` per
output drops them), a gradient factor that is 0 stays 0 where the ratio overflows (no 0·inf = NaN), a clip's
boundary belongs to the reference's branch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlspec.optimized import common
from rlspec.reference import aggregation as ref_aggregation
from rlspec.reference._validate import choice, positive

__all__ = ["COMPILE_MIN_TOKENS", "CORES", "fused_policy_loss", "mode", "set_mode"]

MODES = ("auto", "compile", "eager", "off")
COMPILE_MIN_TOKENS = int(os.environ.get("RLSPEC_FUSED_COMPILE_MIN", 1 << 12))
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
# The cores never clean their inputs: every value at a masked position is computed on (garbage, NaN or inf, IEEE
# arithmetic without traps) and then dropped by the one ``torch.where(mask, ...)`` in front of each reduction and
# of the gradient. That is the same result as reading nothing there, with two selects per token instead of one per
# input, and it keeps the compiled kernel to one pass: read the inputs once, write the gradient once, one sum.

def _cast(x: torch.Tensor | None, dt: torch.dtype) -> torch.Tensor | None:
    """``x`` in the compute dtype (None stays None)."""
    return x if x is None or x.dtype == dt else x.to(dt)


def _nonfinite(*xs: torch.Tensor | None) -> torch.Tensor:
    """0 where every ``x`` is finite, NaN where one is not (or where their sum overflows): v − v of their sum.

    Added to the loss at valid positions, it makes the loss NaN exactly when a valid input is not finite (the
    finiteness probe, folded into the loss's own reduction); at finite inputs it adds an exact 0."""
    v = None
    for x in xs:
        if x is not None:
            v = x if v is None else v + x
    return v - v


def _safe_mul(factor: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """factor · r, taken as 0 where factor is 0 (r may be inf where the ratio overflowed and a clip cut it off)."""
    return torch.where(factor == 0, 0.0, factor * r)


def _ratio(d: torch.Tensor, clamp: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """r = exp(d) with d clamped to ±clamp when given, and where the clamp binds (∂r/∂d = 0 there), or None."""
    if clamp is None:
        return torch.exp(d), None
    return torch.exp(torch.clamp(d, -clamp, clamp)), (d < -clamp) | (d > clamp)


def _clip_branch(r, a, lo, hi):
    """PPO's clip on a ratio r with advantage a: (ℓ = −min(r a, clip(r, lo, hi) a), where the clip binds).

    The clip binds where a > 0 and r > hi, or a ≤ 0 and r < lo (the reference's branch rule: a boundary belongs to
    the unclipped branch; at a = 0 both branches give ℓ = 0 and ∂ℓ/∂r = 0); there ℓ = −a·bound and ∂ℓ/∂r = 0,
    elsewhere ℓ = −a·r and ∂ℓ/∂r = −a. Same products as the min, so the same rounding."""
    pos = a > 0
    binds = torch.where(pos, r > hi, r < lo)
    return -a * torch.where(binds, torch.where(pos, hi, lo), r), binds


def _clip_grad(r, a, lo, hi, dual_c=None, cut=None):
    """PPO's clip (:func:`_clip_branch`), then the dual clip's cap −c·Â where Â < 0 when ``dual_c`` is given: (ℓ,
    ∂ℓ/∂logp = −Â·r), the gradient 0 where the clip or the cap binds (ties keep the surrogate's branch) or where the
    log-ratio clamp cut the ratio (``cut``). Where nothing stops the gradient, r is finite or the loss is not (then
    the batch takes the slow path)."""
    ell, stop = _clip_branch(r, a, lo, hi)
    if dual_c is not None:
        cap = -dual_c * a
        active = (a < 0) & (ell > cap)
        ell, stop = torch.where(active, cap, ell), stop | active
    if cut is not None:
        stop = stop | cut
    return ell, torch.where(stop, 0.0, -a * r)


def _clipped_surrogate(r, a, lo, hi):
    """ℓ = −min(r Â, clip(r, lo, hi) Â) and ∂ℓ/∂r (the reference's branch rule: 0 where the clip binds)."""
    ell, binds = _clip_branch(r, a, lo, hi)
    return ell, torch.where(binds, 0.0, -a)


def _epilogue(ell, dl, fin, mask, c, out_dtype, need_grad):
    """(Σ c ⊙ ℓ over valid tokens, NaN if ``fin`` is; c ⊙ ∂ℓ/∂logp, 0 at masked positions, in ``out_dtype``)."""
    term = c * ell if fin is None else c * ell + fin
    loss = torch.where(mask, term, 0.0).sum()  # one flat sum: the same loop writes the gradient
    return loss, (torch.where(mask, c * dl, 0.0).to(out_dtype) if need_grad else None)


def _valid(mask: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """The bool mask from the uint8 view the cores receive. Compiled, through the compute dtype: inductor's CPU
    code loads a float vector and compares it several times faster than it loads a bool or uint8 vector as a
    mask (measured: a masked select of 1M float32 values 0.17 ns/token this way, 0.74 from a bool tensor)."""
    if torch.compiler.is_compiling():
        return mask.to(dt) > 0
    return mask.view(torch.bool)


def _count(valid: torch.Tensor, dt: torch.dtype, dim: int | None = None) -> torch.Tensor:
    """Number of valid tokens in the compute dtype (in all, or per row keeping the dim). Compiled: a float sum
    per row (then over rows), fused into the kernel; eager: count_nonzero, several times faster than a bool sum
    (that one widens the mask to int64 first)."""
    if torch.compiler.is_compiling():
        n = valid.to(dt).sum(dim=1, keepdim=True)
        return n if dim is not None else n.sum()
    n = torch.count_nonzero(valid) if dim is None else torch.count_nonzero(valid, dim=dim).unsqueeze(dim)
    return n.to(dt)


def _coef(mask: torch.Tensor, c: torch.Tensor | None, q: torch.Tensor, agg: str) -> torch.Tensor:
    """The aggregation coefficients (0-d, (B, 1) or (B, T)) from the kind :func:`aggregation_kind` chose and its
    value ``q`` (compute dtype): counts of valid tokens are taken here, inside the kernel, not in a pass before."""
    if agg == "tensor":
        return c
    if agg == "scalar":
        return q
    dt = q.dtype
    if agg == "token":
        return 1.0 / _count(mask, dt).clamp(min=1)
    n = _count(mask, dt, 1)
    if agg == "row":
        return 1.0 / n.clamp(min=1) / q
    rows = (n > 0).sum().to(dt).clamp(min=1)
    if agg == "row_ne":
        return 1.0 / n.clamp(min=1) / rows
    return 1.0 / (rows * q)  # "ne": q is the per-sequence constant (1 for seq-mean-token-sum)


def _row_weight(c: torch.Tensor, mask: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """C_i = Σ_t c_it over valid tokens (B, 1): the weight of sequence i in the aggregated loss."""
    if c.ndim == 2 and c.shape[1] != 1:
        return torch.where(mask, c, 0.0).sum(dim=1, keepdim=True)
    return c * n


# --------------------------------------------------------------------------------------------- the cores
# Signature: core(lp, old, adv, mask, c, p, extra, ref, *, agg, flags..., need_grad) -> (loss, g | None)
# lp/old/adv/extra/ref: raw inputs of any float dtype (ref only enters the finiteness probe);
# c: the (B, T) coefficients for agg == "tensor", else None (see _coef);
# p: 1-D compute-dtype tensor of numeric parameters, the last one the aggregation's value q (tensors, so new
# values do not recompile). loss is NaN when a valid input is not finite; g is in lp's dtype.

def _inputs(lp, old, adv, p, extra=None, ref=None):
    dt = p.dtype
    x, o, a, e = _cast(lp, dt), _cast(old, dt), _cast(adv, dt), _cast(extra, dt)
    return x, o, a, e, _nonfinite(x, o, a, e, _cast(ref, dt))


def ppo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, dual=False, tis=None, prox=False,
             need_grad=True):
    """PPO clip (asymmetric range; dual clip) times a fixed weight ρ when ``tis`` is 'truncate' (clamp(ρ, C_min, C))
    or 'mask' (ρ where C_min ≤ ρ ≤ C, else 0): TIS's ρ = π_old/π_rollout (``extra`` the rollout log-probs), or, with
    ``prox``, decoupled PPO's ratio u = π_θ/π_prox and ρ = π_prox/π_behav (``extra`` the proximal log-probs, ``old``
    the behaviour policy's); p = (lo, hi, log_ratio_clamp, dual_c, C_min, C, q)."""
    x, o, a, e, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - (e if prox else o), p[2] if clamp else None)
    ell, dl = _clip_grad(r, a, p[0], p[1], p[3] if dual else None, cut)
    if tis is not None:
        rho = torch.exp(e - o) if prox else torch.exp(o - (o if e is None else e))
        w = torch.clamp(rho, p[4], p[5]) if tis == "truncate" else torch.where((rho >= p[4]) & (rho <= p[5]), rho, 0.0)
        ell, dl = w * ell, w * dl
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def two_sided_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, dual=False,
                   need_grad=True):
    """Two-sided clip: ℓ = −min(min(r, δ) Â, clip(r, lo, hi) Â); p = (lo, hi, log_ratio_clamp, dual_c, δ, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[2] if clamp else None)
    lo, hi, delta = p[0], p[1], p[4]
    ua, ub = torch.clamp(r, max=delta) * a, torch.clamp(r, lo, hi) * a
    use_a = ua <= ub
    da = torch.where(r < delta, a, 0.0)
    db = torch.where((r > lo) & (r < hi), a, 0.0)
    ell, dell = -torch.where(use_a, ua, ub), -torch.where(use_a, da, db)
    if dual:
        cap = -p[3] * a
        active = (a < 0) & (ell > cap)
        ell, dell = torch.where(active, cap, ell), torch.where(active, 0.0, dell)
    dl = _safe_mul(dell, r)
    if cut is not None:
        dl = torch.where(cut, 0.0, dl)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def cispo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, lower=False, need_grad=True):
    """CISPO: ℓ = −sg(clip(r, lo, hi)) Â logp (no lower bound unless ``lower``); p = (lo, hi, log_ratio_clamp, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    r, _ = _ratio(x - o, p[2] if clamp else None)
    wa = -torch.clamp(r, min=p[0] if lower else None, max=p[1]) * a
    return _epilogue(wa * x, wa, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def sapo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """SAPO soft gate: ℓ = −(4/τ) σ(τ(r − 1)) Â, ∂ℓ/∂r = −Â 4σ(x)σ(−x); p = (τ_pos, τ_neg, log_ratio_clamp, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[2] if clamp else None)
    pos = a > 0
    tau = torch.where(pos, p[0], p[1])
    z = tau * (r - 1.0)
    em = torch.exp(-torch.abs(z))  # σ(±z) from e^{−|z|}: no overflow for any z
    big = 1.0 / (1.0 + em)
    small = em * big
    ell = -torch.where(pos, 4.0 / p[0], 4.0 / p[1]) * torch.where(z >= 0, big, small) * a
    dl = _safe_mul(-4.0 * a * big * small, r)
    if cut is not None:
        dl = torch.where(cut, 0.0, dl)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def _seq_stats(x, o, a, fin, mask, clamp):
    """GSPO's per-row pass: s_i = exp(mean_t log r) (NaN when a valid input is not finite), where its clamp binds
    (or None), Â_i and n_i, all (B, 1)."""
    n = _count(mask, x.dtype, 1)
    n1 = n.clamp(min=1)
    m = torch.where(mask, x - o + fin, 0.0).sum(dim=1, keepdim=True) / n1
    cut = None
    if clamp is not None:
        cut = (m < -clamp) | (m > clamp)
        m = torch.clamp(m, -clamp, clamp)
    A = torch.where(mask, a, 0.0).sum(dim=1, keepdim=True) / n1
    return torch.exp(m), cut, A, n


def gspo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """GSPO: per-sequence clipped surrogate of s_i and Â_i; ∂/∂logp_it = C_i ∂ℓ/∂s s_i / n_i; p = (lo, hi, clamp,
    q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    s, cut, A, n = _seq_stats(x, o, a, fin, mask, p[2] if clamp else None)
    ell, dell = _clipped_surrogate(s, A, p[0], p[1])
    C = _row_weight(_coef(mask, c, p[-1], agg), mask, n)
    loss = (C * ell).sum()
    if not need_grad:
        return loss, None
    w = _safe_mul(C * dell, s) / n.clamp(min=1)
    if cut is not None:
        w = torch.where(cut, 0.0, w)
    return loss, torch.where(mask, w, 0.0).to(lp.dtype)


def gspo_token_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """GSPO-token: value s_i, token advantages, token-local gradient s_i ∂ℓ/∂s; p = (lo, hi, clamp, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    s, _, _, _ = _seq_stats(x, o, a, fin, mask, p[2] if clamp else None)
    ell, dl = _clip_grad(s, a, p[0], p[1])  # s = inf where nothing binds makes the loss inf: the slow path
    return _epilogue(ell, dl, None, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def gmpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """GMPO: s_i = exp(mean of the sign-aware clipped log-ratio), ℓ_i = −Â_i s_i; p = (ε_low, ε_high, clamp, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    d = x - o
    free = None
    if clamp:
        free = (d >= -p[2]) & (d <= p[2])
        d = torch.clamp(d, -p[2], p[2])
    n = _count(mask, d.dtype, 1)
    n1 = n.clamp(min=1)
    A = torch.where(mask, a + fin, 0.0).sum(dim=1, keepdim=True) / n1  # NaN when a valid input is not finite
    pos = A >= 0
    dt = torch.where(pos, torch.clamp(d, max=p[1]), torch.clamp(d, min=-p[0]))
    inner = torch.where(pos, d < p[1], d > -p[0])
    free = inner if free is None else free & inner
    s = torch.exp(torch.where(mask, dt, 0.0).sum(dim=1, keepdim=True) / n1)
    C = _row_weight(_coef(mask, c, p[-1], agg), mask, n)
    loss = (C * (-A * s)).sum()
    if not need_grad:
        return loss, None
    w = -C * A * s / n1
    return loss, torch.where(mask & free, w, 0.0).to(lp.dtype)


def linear_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, need_grad=True):
    """Vanilla policy gradient (GPG): ℓ = −Â logp, ∂ℓ/∂logp = −Â; p = (q,). old_logp enters only the probe."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    na = -a
    return _epilogue(na * x, na, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def dro_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """DRO: ℓ = −(Â logp − ½β (log r)²), ∂ℓ/∂logp = −Â + β log r (0 for the penalty where the log-ratio clamp
    binds); p = (β, log_ratio_clamp, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    d = x - o
    slope = None
    if clamp:
        slope = (d >= -p[1]) & (d <= p[1])
        d = torch.clamp(d, -p[1], p[1])
    ell = -(a * x - 0.5 * p[0] * d * d)
    pen = p[0] * d
    dl = -a + (pen if slope is None else torch.where(slope, pen, 0.0))
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def r2vpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, need_grad=True):
    """R²VPO: ℓ = −(r Â − λ (r − 1)²) with r − 1 = expm1(log r), ∂ℓ/∂logp = −r (Â − 2λ (r − 1)) (0 where the
    log-ratio clamp binds); p = (λ, log_ratio_clamp, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    d = x - o
    cut = None
    if clamp:
        cut = (d < -p[1]) | (d > p[1])
        d = torch.clamp(d, -p[1], p[1])
    rm1 = torch.expm1(d)
    r = rm1 + 1.0
    ell = -(r * a - p[0] * rm1 * rm1)
    dl = -r * (a - 2.0 * p[0] * rm1)
    if cut is not None:
        dl = torch.where(cut, 0.0, dl)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def dppo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, kl=False, tis=False, cap=False, clamp=False,
              need_grad=True):
    """DPPO: a fixed trust-region mask M (0 where the step leaves the binary TV or KL region in Â's direction) on
    ℓ = −M r Â (``tis`` False) or ℓ = −sg(M min(r, cap)) Â logp (``tis``); p = (δ_low, δ_high, log_ratio_clamp,
    kl_eps, is_cap, q). Binary-KL takes log-probs ≤ 0: a positive one makes the loss NaN (the slow path names it)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[2] if clamp else None)
    mu = torch.exp(o)
    if kl:
        om_mu, om_pi = -torch.expm1(o), -torch.expm1(x)
        tail = om_mu * (torch.log(om_mu + p[3]) - torch.log(om_pi + p[3]))
        D = mu * (o - x) + torch.where(om_mu + p[3] == 0, 0.0, tail)
        fin = torch.where((x > 0) | (o > 0), torch.nan, fin)
    else:
        D = (mu - torch.exp(x)).abs()
    blocked = ((a > 0) & (x > o) & (D > p[1])) | ((a < 0) & (x < o) & (D > p[0]))
    if tis:
        w = torch.where(blocked, 0.0, torch.clamp(r, max=p[4]) if cap else r)
        ell, dl = -w * a * x, -w * a
    else:
        ell = torch.where(blocked, 0.0, -r * a)
        stop = blocked if cut is None else blocked | cut
        dl = torch.where(stop, 0.0, -r * a)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def vespo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, wmin=False, wmax=False,
               need_grad=True):
    """VESPO: ℓ = −sg(φ(W_i)) Â logp with φ = exp(λ + k S − λ e^S), S = Σ_t clamp(log r) clamped to
    [log_w_min, log_w_max], (k, λ) by the sign of the sequence's mean advantage; p = (k_pos, λ_pos, k_neg, λ_neg,
    log_ratio_clamp, log_w_min, log_w_max, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, extra, ref)
    mask = _valid(mask, p.dtype)
    d = x - o
    if clamp:
        d = torch.clamp(d, -p[4], p[4])
    S = torch.where(mask, d + fin, 0.0).sum(dim=1, keepdim=True)  # NaN when a valid input is not finite
    if wmin or wmax:
        S = torch.clamp(S, min=p[5] if wmin else None, max=p[6] if wmax else None)
    n = _count(mask, p.dtype, 1)
    pos = torch.where(mask, a, 0.0).sum(dim=1, keepdim=True) / n.clamp(min=1) >= 0
    k, lam = torch.where(pos, p[0], p[2]), torch.where(pos, p[1], p[3])
    wa = -torch.exp(lam + k * S - lam * torch.exp(S)) * a
    return _epilogue(wa * x, wa, None, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def bpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, target=False, need_grad=True):
    """BPO/GBPO: ℓ = (|Â| + c_tv)·|r − r*| with r* = 1 − ε_low + (ε_low + ε_high)·σ(z), z = ``extra`` (BPO's
    ``target_adv``, GBPO's row target t_i) when ``target`` else Â/λ; ∂ℓ/∂logp = (|Â| + c_tv)·sign(r − r*)·r (sign 0
    at r = r*, 0 where the log-ratio clamp binds); p = (1 − ε_low, ε_low + ε_high, 1/λ, c_tv, log_ratio_clamp, q)."""
    x, o, a, e, fin = _inputs(lp, old, adv, p, extra if target else None, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[4] if clamp else None)
    r_star = p[0] + p[1] * torch.sigmoid(e if target else a / p[2])
    w = a.abs() + p[3]
    diff = r - r_star
    ell = w * diff.abs()
    dl = _safe_mul(w * torch.sign(diff), r)
    if cut is not None:
        dl = torch.where(cut, 0.0, dl)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def grpo_guard_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, norm=True, inv_dt=True,
                    aclip=False, need_grad=True):
    """GRPO-Guard over denoising steps, ``extra`` = (q, σ, dt): ℓ = δ·ψ(r̂) with PPO's clip ψ on r̂ = exp(u),
    u = s·log r + q/(2s), s = σ√dt (``norm``; else u = log r), δ = 1/dt (``inv_dt``) or 1, Â clamped to ±adv_clip
    (``aclip``); ∂ℓ/∂logp = δ·ψ'(r̂)·r̂·s (0 where the clip or the clamp of u binds). p = (lo, hi, log_ratio_clamp,
    adv_clip, q_agg). q < 0, σ ≤ 0 or dt ≤ 0 at a valid step makes the loss NaN (the slow path names it)."""
    dt_ = p.dtype
    q, sg, h = (_cast(t, dt_) for t in extra)
    x, o, a, _, fin = _inputs(lp, old, adv, p, None, ref)
    fin = fin + _nonfinite(q, sg, h)
    fin = torch.where((q < 0) | (sg <= 0) | (h <= 0), torch.nan, fin)
    mask = _valid(mask, dt_)
    if aclip:
        a = torch.clamp(a, -p[3], p[3])
    u = x - o
    if norm:
        s = sg * torch.sqrt(h)
        u = s * u + q / (2.0 * s)
    r, cut = _ratio(u, p[2] if clamp else None)
    ell, dl = _clip_grad(r, a, p[0], p[1], None, cut)
    if norm:
        dl = dl * s
    if inv_dt:
        ell, dl = ell / h, dl / h
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def hapo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, dual=False, ent=False,
              aclip=False, aadv=False, zone_adapt=False, need_grad=True):
    """HAPO: PPO's clip with per-token ranges ε_L = ε_L^b(1 − α h̃) where h̃ ≤ 0, ε_R = ε_R^b(1 + α h̃) where h̃ > 0
    (``aclip``) and the advantage Â(1 + β h̃) where (h̃ > 0, r ∉ Z) or (h̃ ≤ 0, r ∈ Z), Z = (1 − ε_L/2, 1 + ε_R/2) of
    the adaptive (``zone_adapt``) or base ranges (``aadv``); ``extra`` = h̃ (``ent``; without it, plain PPO with
    the base ranges), dual clip on the redistributed Â. p = (ε_L^b, ε_R^b, α, β, log_ratio_clamp, dual_c, q)."""
    x, o, a, h, fin = _inputs(lp, old, adv, p, extra if ent else None, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[4] if clamp else None)
    lo, hi = 1.0 - p[0], 1.0 + p[1]
    if ent:
        eps_l, eps_r = p[0], p[1]
        if aclip:
            eps_l = torch.where(h <= 0, p[0] * (1.0 - p[2] * h), p[0])
            eps_r = torch.where(h > 0, p[1] * (1.0 + p[2] * h), p[1])
            lo, hi = 1.0 - eps_l, 1.0 + eps_r
        if aadv:
            zl, zr = (eps_l, eps_r) if zone_adapt else (p[0], p[1])
            zone = (r > 1.0 - zl / 2.0) & (r < 1.0 + zr / 2.0)
            a = torch.where(((h > 0) & ~zone) | ((h <= 0) & zone), a * (1.0 + p[3] * h), a)
    ell, dl = _clip_grad(r, a, lo, hi, p[5] if dual else None, cut)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def copo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, dual=False, blend=False,
              need_grad=True):
    """COPO's blended clip: ℓ = (1 − w)·ψ(r, A_glob) + w·ψ(r, A_loc), ψ PPO's clip (dual clip on each), A_loc = Â,
    ``extra`` = (A_glob, w broadcast over T) with ``blend`` (else w ≡ 1: the local loss alone);
    p = (lo, hi, log_ratio_clamp, dual_c, q)."""
    x, o, a, _, fin = _inputs(lp, old, adv, p, None, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[2] if clamp else None)

    dual_c = p[3] if dual else None
    ell, dl = _clip_grad(r, a, p[0], p[1], dual_c, cut)
    if blend:
        g, w = (_cast(t, p.dtype) for t in extra)
        fin = fin + _nonfinite(g)
        ell_g, dl_g = _clip_grad(r, g, p[0], p[1], dual_c, cut)
        ell, dl = (1.0 - w) * ell_g + w * ell, (1.0 - w) * dl_g + w * dl
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


def a2tgpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, dual=False, scale=False,
                need_grad=True):
    """A²TGPO: PPO's clip with the per-turn range ε·c, c = 1 + β·tanh(ÎG/2) of the token's turn (``extra`` = that
    tanh broadcast to the tokens, with ``scale``; else c = 1), dual clip; ``mask`` the live tokens (valid and in a
    trainable turn). p = (ε_low, ε_high, β, log_ratio_clamp, dual_c, q)."""
    x, o, a, k, fin = _inputs(lp, old, adv, p, extra if scale else None, ref)
    mask = _valid(mask, p.dtype)
    r, cut = _ratio(x - o, p[3] if clamp else None)
    if scale:
        f = 1.0 + p[2] * k
        lo, hi = 1.0 - p[0] * f, 1.0 + p[1] * f
    else:
        lo, hi = 1.0 - p[0], 1.0 + p[1]
    ell, dl = _clip_grad(r, a, lo, hi, p[4] if dual else None, cut)
    return _epilogue(ell, dl, fin, mask, _coef(mask, c, p[-1], agg), lp.dtype, need_grad)


@dataclass(frozen=True)
class Core:
    """A fused core and how a config becomes its parameters ``p`` and static flags."""

    fn: Callable
    params: Callable  # cfg -> tuple of floats
    flags: Callable  # cfg -> dict of static keyword flags
    variants: dict | None = None  # a config field's value -> the core for it (RiskPO: token or sequence ratio)
    variant_field: str | None = None

    def for_config(self, cfg) -> Core:
        """The core that computes ``cfg`` (itself unless the config picks one of its variants)."""
        return self if self.variants is None else self.variants[getattr(cfg, self.variant_field)]


def _ppo_params(cfg):
    return (1.0 - cfg.eps_low, 1.0 + cfg.eps_high, cfg.log_ratio_clamp or 0.0, getattr(cfg, "dual_clip_c", None) or 0.0)


def _ppo_flags(cfg):
    return {"clamp": cfg.log_ratio_clamp is not None, "dual": getattr(cfg, "dual_clip_c", None) is not None}


CORES: dict[str, Core] = {
    "ppo": Core(ppo_core, _ppo_params, _ppo_flags),
    "dapo": Core(ppo_core, _ppo_params, _ppo_flags),
    "tis": Core(ppo_core, lambda c: _ppo_params(c) + (0.0 if c.C_min is None else c.C_min, c.C),
                lambda c: dict(_ppo_flags(c), tis=c.mode)),
    "grpo_guard": Core(grpo_guard_core, lambda c: (1.0 - c.eps_low, 1.0 + c.eps_high, c.log_ratio_clamp or 0.0,
                                                   c.adv_clip or 0.0),
                       lambda c: {"clamp": c.log_ratio_clamp is not None, "norm": bool(c.ratio_norm),
                                  "inv_dt": c.step_weight == "inverse_dt", "aclip": c.adv_clip is not None}),
    "hapo": Core(hapo_core, lambda c: (c.eps_low, c.eps_high, c.clip_alpha, c.adv_beta, c.log_ratio_clamp or 0.0,
                                       c.dual_clip_c or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None, "dual": c.dual_clip_c is not None,
                            "aclip": bool(c.adaptive_clip), "aadv": bool(c.adaptive_advantage),
                            "zone_adapt": bool(c.zone_uses_adaptive_clip)}),  # "ent" per call: h̃ given
    "copo_loss": Core(copo_core, _ppo_params, _ppo_flags),  # "blend" per call: adv_global and blend_weight given
    "a2tgpo": Core(a2tgpo_core, lambda c: (c.eps_low, c.eps_high, c.beta, c.log_ratio_clamp or 0.0,
                                           c.dual_clip_c or 0.0),
                   lambda c: {"clamp": c.log_ratio_clamp is not None, "dual": c.dual_clip_c is not None}),
    "tapo": Core(ppo_core, _ppo_params, _ppo_flags),  # on the model's tokens M′ = M ∧ ¬U (optimized.tapo)
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
    "decoupled_ppo": Core(ppo_core, lambda c: _ppo_params(c) + (0.0, math.inf if c.behave_cap is None else c.behave_cap),
                          lambda c: dict(_ppo_flags(c), prox=True, tis=None if not c.behave_weight else
                                         "mask" if c.behave_cap is not None and c.behave_cap_mode == "mask" else "truncate")),
    "gpg_loss": Core(linear_core, lambda c: (), lambda c: {}),
    "r2vpo": Core(r2vpo_core, lambda c: (c.lam_init, c.log_ratio_clamp or 0.0),
                  lambda c: {"clamp": c.log_ratio_clamp is not None}),
    "dppo": Core(dppo_core, lambda c: (c.delta_low, c.delta_high, c.log_ratio_clamp or 0.0, c.kl_eps,
                                       math.inf if c.is_cap is None else c.is_cap),
                 lambda c: {"kl": c.trust_region == "kl", "tis": c.surrogate == "tis", "cap": c.is_cap is not None,
                            "clamp": c.log_ratio_clamp is not None}),
    "vespo": Core(vespo_core, lambda c: (c.k_pos, c.lambda_pos, c.k_neg, c.lambda_neg, c.log_ratio_clamp or 0.0,
                                         0.0 if c.log_w_min is None else c.log_w_min,
                                         0.0 if c.log_w_max is None else c.log_w_max),
                  lambda c: {"clamp": c.log_ratio_clamp is not None, "wmin": c.log_w_min is not None,
                             "wmax": c.log_w_max is not None}),
    "gbpo": Core(bpo_core, lambda c: (1.0 - c.eps_low, c.eps_low + c.eps_high, 1.0, 0.0, c.log_ratio_clamp or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None, "target": True}),  # extra: the row targets t_i
    "brrl": Core(bpo_core, lambda c: (1.0 - c.eps_low, c.eps_low + c.eps_high, c.lam, c.tv_coef, c.log_ratio_clamp or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None}),
    "dro": Core(dro_core, lambda c: (c.beta, c.log_ratio_clamp or 0.0), lambda c: {"clamp": c.log_ratio_clamp is not None}),
}
_SEQ_CLIP = Core(gspo_core, lambda c: (1.0 - c.eps_low, 1.0 + c.eps_high, c.log_ratio_clamp or 0.0),
                 lambda c: {"clamp": c.log_ratio_clamp is not None})
CORES["riskpo"] = Core(gspo_core, _SEQ_CLIP.params, _SEQ_CLIP.flags, variant_field="ratio",
                       variants={"token": Core(ppo_core, _ppo_params, _ppo_flags), "sequence": _SEQ_CLIP})


# --------------------------------------------------------------------------------------------- small batches
# Below COMPILE_MIN_TOKENS the eager core runs, and a call of a few thousand tokens costs what its ops cost to
# launch (1-3 µs each on a CPU core), not what they compute. The hot cores have a lean eager form here: the same
# values and gradients (the same branch rules, overflow and NaN-padding behaviour, up to rounding) in fewer ops, with
# the parameters as 0-d tensors (an op with a Python float wraps the float in a new tensor on every call: about twice
# the cost of the op with a 0-d tensor) and in-place ops on temporaries. Half-precision inputs are cast only where
# no float32 operand would promote them anyway (logp − old_logp needs one of the two in float32, not both).
#
# The elementwise forms scale the advantage once, s = −c ⊙ Â, and get c ⊙ ℓ and c ⊙ ∂ℓ/∂logp from it directly (each
# is Â times a factor: the loss needs no multiply by c after its sum, the gradient none before its select). The
# finiteness probe is smaller too: every loss here is Â (or s) times a factor that is finite and, but for an exact 0
# (exp or the clip's bound), which then multiplies an inf into NaN, nonzero, so an inf or NaN Â at a valid token
# already makes the loss inf or NaN; what a clip or a gate can hide is a non-finite log-ratio. The probe is
# therefore d = logp − old_logp (+ ref_logp), added as d·0 at valid tokens (not finite where one of them is not, or
# where the difference overflows, which only sends the batch to the autograd formulation).

class _Kit:
    """A core's parameters ``p`` as 0-d tensors (``q`` = ``p[-1]``, the aggregation's value, also as the float
    ``qf``), the constants ``x`` its lean form derives from them, and 0, 1, −1, all in the compute dtype on the
    batch's device; built once per config and batch shape (:func:`_setup`)."""

    __slots__ = ("dt", "p", "x", "zero", "one", "minus_one", "q", "qf")

    def __init__(self, p: torch.Tensor, derive: Callable | None):
        self.dt = p.dtype
        self.p = tuple(t.clone() for t in p.unbind())
        self.q, self.qf = self.p[-1], float(p[-1])
        self.zero = torch.zeros((), dtype=p.dtype, device=p.device)
        self.one = torch.ones((), dtype=p.dtype, device=p.device)
        self.minus_one = -self.one
        self.x = () if derive is None else tuple(derive(self.p))


def _lean_in(t: torch.Tensor | None, k: _Kit) -> torch.Tensor | None:
    return t if t is None or t.dtype == k.dt else t.to(k.dt)


def _lean_probe(d: torch.Tensor, ref: torch.Tensor | None, k: _Kit) -> torch.Tensor:
    """The finiteness probe (see above): ``d``, or d + ref_logp when given (a new tensor then)."""
    return d if ref is None else d + ref  # a half-precision ref_logp promotes to d's dtype


def _lean_neg_coef(mask, c, k, agg):
    """−c, minus the aggregation coefficients of :func:`_coef` for the elementwise forms: a float where it is one
    number known without a device sync (the token count of a CPU mask is read, at the cost of the tensor ops that
    would divide by it), else a tensor: 0-d, (B, 1) or (B, T). Per-row values are taken as they are at an empty row
    (−inf, never read there: every token of such a row is masked)."""
    if agg == "scalar":
        return -k.qf
    if agg == "tensor":
        return -c
    if agg == "token":
        if mask.device.type == "cpu":
            return -1.0 / max(torch.count_nonzero(mask).item(), 1)
        return k.minus_one / torch.count_nonzero(mask).clamp_(min=1)
    n = mask.sum(dim=1, keepdim=True)
    if agg == "row":
        return k.minus_one / n / k.q
    if agg == "row_ne":
        return k.minus_one / (n * torch.count_nonzero(n))
    return k.minus_one / (torch.count_nonzero(n).clamp_(min=1) * k.q)  # "ne"


def _times(x, cf, k):
    """x · cf, cf a float (passed as add's alpha: no tensor wrapped around it) or a tensor."""
    return torch.add(k.zero, x, alpha=cf) if isinstance(cf, float) else x * cf


def _minus_times(y, x, cf):
    """y − cf · x, cf a float or a tensor."""
    return torch.add(y, x, alpha=-cf) if isinstance(cf, float) else torch.addcmul(y, x, cf, value=-1)


def _lean_out(ell, dl, keep, v, mask, k, need_grad, out_dtype):
    """(Σ ``ell`` over valid tokens, NaN where the probe ``v`` (None: ``ell`` carries it) is not finite at one; ``dl``
    where ``keep`` (None: everywhere) and valid, 0 elsewhere, in ``out_dtype``), with ``ell`` = c ⊙ ℓ and ``dl`` =
    c ⊙ ∂ℓ/∂logp."""
    loss = torch.where(mask, ell if v is None else torch.addcmul(ell, v, k.zero), k.zero).sum()
    if not need_grad:
        return loss, None
    g = torch.where(mask if keep is None else keep.logical_and_(mask), dl, k.zero)
    return loss, (g if g.dtype == out_dtype else g.to(out_dtype))


def _lean_ratio(d, clamp, k, ci):
    """(r = exp(d), d clamped to ±p[ci] when ``clamp``; where that clamp does not bind, or None)."""
    if not clamp:
        return torch.exp(d), None
    dc = torch.clamp(d, -k.p[ci], k.p[ci])
    return torch.exp(dc), dc == d


def _ppo_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad, clamp=False, dual=False):
    """:func:`ppo_core` without TIS or the decoupled ratio: c ℓ = s·r or s·(the clip's bound) where it binds (s·c_dual
    where the dual cap binds), c ∂ℓ/∂logp = s r where neither binds, s = −c Â."""
    a = _lean_in(adv, k)
    d = _lean_in(lp, k) - old
    v = _lean_probe(d, ref, k)
    r, free = _lean_ratio(d, clamp, k, 2)
    pos = a > k.zero
    inside = torch.where(pos, r <= k.p[1], r >= k.p[0])  # the reference's branch rule: a boundary is unclipped
    bound = torch.where(pos, k.p[1], k.p[0])
    if dual:  # the cap −c_dual Â where Â < 0 and ℓ exceeds it, compared on the core's own products (ties: surrogate)
        active = (a < k.zero).logical_and_(torch.where(inside, a * r, bound * a) < k.p[3] * a)
        bound = torch.where(active, k.p[3], bound)
        inside = inside.logical_and_(active.logical_not_())
    s = _times(a, _lean_neg_coef(mask, c, k, agg), k)
    sr = s * r
    ell = torch.where(inside, sr, bound.mul_(s))
    keep = inside if free is None else inside.logical_and_(free)
    return _lean_out(ell, sr, keep, v, mask, k, need_grad, lp.dtype)


def _cispo_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad, clamp=False, lower=False):
    """:func:`cispo_core`: c ∂ℓ/∂logp = s·clip(r, lo, hi) (no lower bound unless ``lower``), c ℓ = that · logp."""
    x, a = lp, _lean_in(adv, k)
    d = x - _lean_in(old, k)
    v = _lean_probe(d, ref, k)
    r, _ = _lean_ratio(d, clamp, k, 2)
    ws = torch.clamp(r, min=k.p[0] if lower else None, max=k.p[1]).mul_(_times(a, _lean_neg_coef(mask, c, k, agg), k))
    return _lean_out(ws * x, ws, None, v, mask, k, need_grad, lp.dtype)


def _sapo_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad, clamp=False):
    """:func:`sapo_core`: c ℓ = (4/τ) σ(z) s, c ∂ℓ/∂logp = 4 s σ(z) σ(−z) r with z = τ(r − 1). r is capped at the
    dtype's largest finite value, so that the gradient is 0, not 0·inf, where the ratio overflows (σ(−z) = 0
    there, as at the cap). k.x = (4/τ_pos, 4/τ_neg, 4, the largest finite value)."""
    a = _lean_in(adv, k)
    d = _lean_in(lp, k) - old
    v = _lean_probe(d, ref, k)
    r, free = _lean_ratio(d, clamp, k, 2)
    r = r.clamp_(max=k.x[3])
    pos = a > k.zero
    z = (r - k.one).mul_(torch.where(pos, k.p[0], k.p[1]))
    ss = torch.sigmoid(z).mul_(_times(a, _lean_neg_coef(mask, c, k, agg), k))
    ell = torch.where(pos, k.x[0], k.x[1]).mul_(ss)
    dl = (ss * k.x[2]).mul_(torch.sigmoid(z.neg_())).mul_(r)
    return _lean_out(ell, dl, free, v, mask, k, need_grad, lp.dtype)


def _dro_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad, clamp=False):
    """:func:`dro_core`: with s = −c Â and cn = −c, c ℓ = s logp − cn ½β d², c ∂ℓ/∂logp = s − cn β d (no β d where
    the clamp binds). Without the clamp or ref_logp the loss carries its own probe: a non-finite d makes β d · d,
    and so c ℓ, inf or NaN (cn is finite and nonzero at a valid token)."""
    x, a = lp, _lean_in(adv, k)
    d = x - _lean_in(old, k)
    v = None if not clamp and ref is None else _lean_probe(d, ref, k)
    slope = None
    if clamp:
        dc = torch.clamp(d, -k.p[1], k.p[1])
        slope, d = dc == d, dc
    cn = _lean_neg_coef(mask, c, k, agg)
    s = _times(a, cn, k)
    pen = k.p[0] * d
    if isinstance(cn, float):  # ½β d² = ½ (β d) d: the ½ is exact
        ell = torch.addcmul(s * x, pen, d, value=-0.5 * cn)
    else:
        ell = torch.addcmul(s * x, pen * d, cn, value=-0.5)
    dl = _minus_times(s, pen if slope is None else torch.where(slope, pen, k.zero), cn)
    return _lean_out(ell, dl, None, v, mask, k, need_grad, lp.dtype)


def _linear_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad):
    """:func:`linear_core`: c ∂ℓ/∂logp = s = −c Â, c ℓ = s logp. logp enters the loss as a factor of s (and s is
    never 0 times an inf logp without a NaN), so the probe is old_logp (+ ref_logp) alone."""
    s = _times(_lean_in(adv, k), _lean_neg_coef(mask, c, k, agg), k)
    v = old if ref is None else old + ref
    return _lean_out(s * lp, s, None, v, mask, k, need_grad, lp.dtype)


def _lean_row_neg_weight(mask, c, k, agg, n):
    """−C_i, minus the weight of row i in the aggregated loss (C_i = Σ_t c_it over its valid tokens), for the
    per-sequence forms, from the kind (see :func:`_coef`) and the valid tokens per row ``n`` (B, 1): a float where it
    is one number known without a device sync, else a tensor, 0-d or (B, 1). An empty row's weight is whatever is
    cheapest (its loss is 0: no token, so Â_i = 0)."""
    if agg == "tensor":
        return -torch.where(mask, c, k.zero).sum(dim=1, keepdim=True)
    if agg == "scalar":  # C_i = q n_i
        return _times(n, -k.qf, k)
    if agg == "row":  # 1/q per row with a valid token
        return -1.0 / k.qf
    cpu = mask.device.type == "cpu"
    if agg == "token":  # n_i / N
        if cpu:
            return _times(n, -1.0 / max(torch.count_nonzero(mask).item(), 1), k)
        return n * (k.minus_one / torch.count_nonzero(mask).clamp_(min=1))
    if cpu:
        rows = max(torch.count_nonzero(n).item(), 1)
        return -1.0 / rows if agg == "row_ne" else _times(n, -1.0 / (rows * k.qf), k)
    rows = torch.count_nonzero(n).clamp_(min=1)
    return k.minus_one / rows if agg == "row_ne" else n * (k.minus_one / (rows * k.q))  # "row_ne": 1/B′; "ne"


def _gspo_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad, clamp=False):
    """:func:`gspo_core`: per row s = exp(mean log r), Â_i the mean advantage and S_i = −C_i Â_i, C_i ℓ_i = S_i·s or
    S_i·(the clip's bound) where it binds, C_i ∂ℓ_i/∂logp_it = S_i s / n_i where it does not (the probe rides on the
    mean log-ratio)."""
    a = _lean_in(adv, k)
    d = _lean_in(lp, k) - old
    if ref is not None:
        d = torch.addcmul(d, ref, k.zero)  # ref_logp: in the probe only
    n = mask.sum(dim=1, keepdim=True)
    n1 = n.clamp(min=1)
    m = torch.where(mask, d, k.zero).sum(dim=1, keepdim=True).div_(n1)
    A = torch.where(mask, a, k.zero).sum(dim=1, keepdim=True).div_(n1)
    s, free = _lean_ratio(m, clamp, k, 2)
    pos = A > k.zero
    inside = torch.where(pos, s <= k.p[1], s >= k.p[0])
    S = _times(A, _lean_row_neg_weight(mask, c, k, agg, n), k)
    sS = s * S
    loss = torch.addcmul(torch.where(inside, sS, torch.where(pos, k.p[1], k.p[0]).mul_(S)), m, k.zero).sum()
    if not need_grad:
        return loss, None
    if free is not None:
        inside = inside.logical_and_(free)
    g = torch.where(mask, torch.where(inside, sS, k.zero).div_(n1), k.zero)
    return loss, (g if g.dtype == lp.dtype else g.to(lp.dtype))


def _gmpo_lean(lp, old, adv, mask, c, k, ref, *, agg, need_grad, clamp=False):
    """:func:`gmpo_core`: per row s = exp(mean of the sign-aware clipped log-ratio), C_i ℓ_i = −C_i Â_i s_i,
    C_i ∂ℓ_i/∂logp_it = that / n_i where neither clip binds (the probe rides on the mean advantage). k.x = (−ε_low,)."""
    d = _lean_in(lp, k) - old
    at = torch.addcmul(adv, _lean_probe(d, ref, k), k.zero)  # Â in the compute dtype, NaN where an input is not finite
    free = None
    if clamp:
        dc = torch.clamp(d, -k.p[2], k.p[2])
        free, d = dc == d, dc
    n = mask.sum(dim=1, keepdim=True)
    n1 = n.clamp(min=1)
    A = torch.where(mask, at, k.zero).sum(dim=1, keepdim=True).div_(n1)
    pos = A >= k.zero
    dt = torch.where(pos, torch.clamp(d, max=k.p[1]), torch.clamp(d, min=k.x[0]))
    inner = torch.where(pos, d < k.p[1], d > k.x[0])
    free = inner if free is None else inner.logical_and_(free)
    s = torch.where(mask, dt, k.zero).sum(dim=1, keepdim=True).div_(n1).exp_()
    CAs = _times(A, _lean_row_neg_weight(mask, c, k, agg, n), k).mul_(s)
    loss = CAs.sum()
    if not need_grad:
        return loss, None
    g = torch.where(free.logical_and_(mask), CAs.div_(n1), k.zero)
    return loss, (g if g.dtype == lp.dtype else g.to(lp.dtype))


@dataclass(frozen=True)
class _Lean:
    """A core's lean eager form, the flag sets it covers and the constants it derives from ``p`` (:class:`_Kit`)."""

    fn: Callable
    covers: Callable = lambda flags: True
    derive: Callable | None = None


LEAN: dict[Callable, _Lean] = {
    ppo_core: _Lean(_ppo_lean, lambda f: f.get("tis") is None and not f.get("prox")),
    cispo_core: _Lean(_cispo_lean),
    sapo_core: _Lean(_sapo_lean, derive=lambda p: (4.0 / p[0], 4.0 / p[1], torch.full_like(p[0], 4.0),
                                                   torch.full_like(p[0], torch.finfo(p[0].dtype).max))),
    dro_core: _Lean(_dro_lean),
    linear_core: _Lean(_linear_lean),
    gspo_core: _Lean(_gspo_lean),
    gmpo_core: _Lean(_gmpo_lean, derive=lambda p: (-p[0],)),
}


# --------------------------------------------------------------------------------------------- aggregation
AGG_KINDS = ("token", "scalar", "row", "row_ne", "ne", "tensor")


def aggregation_kind(cfg, shape: tuple[int, int]) -> tuple[str, float]:
    """How the cores get the aggregation coefficients c of ``cfg.agg`` (see :func:`_coef`): a kind and its value q,
    from the config and the batch shape alone (no tensor op, no device sync). Values equal those of
    :func:`rlspec.optimized.common.coefficients` wherever the mask is True.

    token: c = 1/(number of valid tokens); scalar: c = q; row: c_i = 1/n_i/q (q = normalizer or B); row_ne:
    c_i = 1/n_i/B′ (B′ rows with a valid token); ne: c = 1/(B′ q); tensor: the (B, T) matrix of group-token-mean."""
    mode, norm = cfg.agg, cfg.normalizer
    choice(mode, "agg (aggregation mode)", ref_aggregation.MODES)
    if norm is not None:
        norm = positive(norm, "normalizer")
    if mode == "group-token-mean":
        return "tensor", 0.0
    if mode == "token-mean":
        return ("token", 0.0) if norm is None else ("scalar", 1.0 / norm)
    B, T = shape
    if norm is not None:
        d = norm
    elif ref_aggregation._count_all(mode, getattr(cfg, "seq_denominator", None)):
        d = float(max(B, 1))
    else:
        d = None
    if mode == "seq-mean-token-mean":
        return ("row_ne", 0.0) if d is None else ("row", d)
    if mode == "seq-mean-token-sum":
        C = 1.0
    else:
        C = float(T) if cfg.const is None else positive(cfg.const, "const")
    if d is None:
        return "ne", C
    return "scalar", (1.0 / (d * C) if C > 0 else 0.0)  # T = 0: no token to weigh


# --------------------------------------------------------------------------------------------- running a core
def _compiled(core: Core, flags: tuple) -> Callable | None:
    key = (core.fn, flags)
    if key not in _COMPILED:
        import torch._dynamo.config as dynamo_config

        # one code object per core serves every flag set, dtype and coefficient shape: allow their variants
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        _COMPILED[key] = torch.compile(core.fn, dynamic=True)
    return _COMPILED[key]


def _compiles(n: int) -> bool:
    """Whether a batch of ``n`` tokens runs compiled (mode auto from COMPILE_MIN_TOKENS on, or compile) here."""
    return n > 0 and not _COMPILE_BROKEN and (_MODE == "compile" or (_MODE == "auto" and n >= COMPILE_MIN_TOKENS))


def _run(core: Core, flags: dict, args: tuple, need_grad: bool):
    """Run ``core`` compiled (large batches, mode auto/compile) or eager; a failed compilation falls back."""
    if _compiles(args[0].numel()):
        fn = _compiled(core, tuple(sorted(flags.items())))
        try:
            return fn(*args, **flags, need_grad=need_grad)
        except Exception as e:  # noqa: BLE001 - any compiler failure: keep working, eagerly
            _COMPILE_BROKEN.append(f"{type(e).__name__}: {e}")
            warnings.warn(f"rlspec fused losses: torch.compile failed ({_COMPILE_BROKEN[0][:300]}); "
                          "using the eager fused path from now on", RuntimeWarning, stacklevel=4)
    return core.fn(*args, **flags, need_grad=need_grad)


def _run_core(lp, core: Core, flags: dict, args: tuple, *, need_grad: bool):
    """A job's function for a core (see :class:`_FusedLoss`): :func:`_run` with logp first."""
    return _run(core, flags, (lp, *args), need_grad)


class _FusedLoss(torch.autograd.Function):
    """loss = Σ c ⊙ ℓ with the gradient computed in the forward; the backward returns it (scaled).

    ``job`` = (fn, args, kw): ``fn(logp, *args, need_grad=..., **kw)`` returns (loss, gradient)."""

    @staticmethod
    def forward(ctx, logp, job):
        fn, args, kw = job
        loss, g = fn(logp, *args, need_grad=True, **kw)
        ctx.job, ctx.g = job, g
        ctx.save_for_backward(logp)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        g, ctx.g = ctx.g, None  # released: autograd may then take the tensor as .grad without a copy
        if g is None:  # a second backward (retain_graph): recompute
            (logp,) = ctx.saved_tensors
            fn, args, kw = ctx.job
            with torch.no_grad():  # logp as the forward had it (a compiled core's guards see the same input)
                g = fn(logp, *args, need_grad=True, **kw)[1]
        if grad_out.device.type == "cpu" and grad_out.numel() == 1 and float(grad_out) == 1.0:
            return g, None
        return g * grad_out.to(g.dtype), None


_FLOATS = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def _fast_eligible(logp, others, loose=()) -> bool:
    """Tensors of one float dtype and device, (B, T), no gradient wanted through the non-logp inputs; those in
    ``loose`` may also be float32 where logp is half precision (an input the caller formed in the compute dtype)."""
    if not isinstance(logp, torch.Tensor) or logp.ndim != 2 or logp.dtype not in _FLOATS:
        return False
    shape, device, dtype = logp.shape, logp.device, logp.dtype
    for x in others:
        if x is not None and (not isinstance(x, torch.Tensor) or x.dtype != dtype or x.shape != shape
                              or x.device != device):
            return False
    half = dtype in (torch.bfloat16, torch.float16)
    for x in loose:
        if x is not None and (not isinstance(x, torch.Tensor) or x.shape != shape or x.device != device
                              or (x.dtype != dtype and not (half and x.dtype == torch.float32))):
            return False
    return True


def _detached(extra):
    """``extra`` (None, a tensor or a tuple of tensors) detached from autograd."""
    if isinstance(extra, tuple):
        return tuple(x.detach() for x in extra)
    return None if extra is None else extra.detach()


def fused_policy_loss(name: str, autograd_fn: Callable, logp, old_logp, adv, mask, cfg, group=None,
                      extra=None, *, call_flags: dict | None = None, coef_mask=None, slow_mask=None, extra_f32: bool = False,
                      **autograd_kw):
    """The policy loss ``name`` through its fused core; ``autograd_fn(logp, old_logp, adv, mask, config=cfg,
    group=group, **autograd_kw)`` is the autograd formulation used when the fused path does not apply (mode off,
    inputs of mixed dtypes or devices, non-tensors) and to validate a batch whose loss or inputs are not finite.

    ``extra``: the core's further input, a tensor or a tuple of tensors (each of logp's shape, dtype and device).
    ``extra_f32``: ``extra`` may be float32 where logp is half precision (formed by the caller in the compute dtype).
    ``call_flags``: static core flags that depend on the call, not the config (BPO: a ``target_adv`` was given).
    ``coef_mask``: the aggregation coefficients are those of this mask, not of ``mask`` (which then only selects
    the tokens that carry a loss; TAPO's tool tokens in the denominator). ``slow_mask``: the mask handed to the
    autograd formulation (default ``mask``)."""
    def slow():
        return autograd_fn(logp, old_logp, adv, mask if slow_mask is None else slow_mask, config=cfg, group=group,
                           **autograd_kw)

    core = CORES[name].for_config(cfg)
    ref = autograd_kw.get("ref_logp")
    extras = extra if isinstance(extra, tuple) else (extra,)
    if extra_f32:
        eligible = _fast_eligible(logp, (old_logp, adv, ref), extras)
    else:
        eligible = _fast_eligible(logp, (old_logp, adv, *extras, ref))
    if _MODE == "off" or not eligible:
        return slow()
    if not isinstance(mask, torch.Tensor) or mask.device != logp.device:
        return slow()
    m = common.check_mask(mask, logp.shape)
    dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
    flags, p, kit = _setup(name, cfg, tuple(m.shape), dt, logp.device)
    if call_flags:
        flags, kit = dict(flags, **call_flags), None
    if coef_mask is not None:
        flags = dict(flags, agg="tensor")
    c = None
    if flags["agg"] == "tensor":
        c = common.coefficients(m if coef_mask is None else coef_mask, cfg.agg, group=group,
                                normalizer=cfg.normalizer, const=cfg.const,
                                seq_denominator=getattr(cfg, "seq_denominator", None), dtype=dt)
    grad = logp.requires_grad and torch.is_grad_enabled()
    if kit is not None and extra is None and _LEAN_ON and not _compiles(logp.numel()):
        # a small batch of a hot core: its lean eager form (inside the Function or no_grad: nothing is recorded)
        job = (LEAN[core.fn].fn, (old_logp, adv, m, c, kit, ref), flags)
    else:
        job = (_run_core, (core, flags, (old_logp.detach(), adv.detach(), m.view(torch.uint8), c, p,
                                         _detached(extra), None if ref is None else ref.detach())), {})
    if grad:
        loss = _FusedLoss.apply(logp, job)
    else:  # nothing recorded (old_logp or adv may want a gradient: the loss gives none)
        fn, args, kw = job
        if torch.is_grad_enabled():
            with torch.no_grad():
                loss, _ = fn(logp.detach(), *args, need_grad=False, **kw)
        else:
            loss, _ = fn(logp.detach(), *args, need_grad=False, **kw)
    if not math.isfinite(loss.item()):  # the one sync; the loss carries the inputs' finiteness probe
        return slow()
    return loss


_SETUP: dict[tuple, tuple[dict, torch.Tensor, _Kit | None]] = {}
_LEAN_ON = True  # small batches of the hot cores take their lean eager form (False: the core itself; for tests)


def _setup(name: str, cfg, shape: tuple[int, int], dt: torch.dtype, device) -> tuple[dict, torch.Tensor, _Kit | None]:
    """The core's static flags (with the aggregation kind), its parameter tensor p and, when the core has a lean
    eager form for these flags, p as its :class:`_Kit` (else None), for this config, batch shape, compute dtype and
    device; remembered (configs are frozen dataclasses), so a training loop builds them once."""
    key = (name, cfg, shape, dt, device)
    try:
        hit = _SETUP.get(key)
    except TypeError:  # a config with an unhashable field: build every time
        key, hit = None, None
    if hit is not None:
        return hit
    core = CORES[name].for_config(cfg)
    agg, q = aggregation_kind(cfg, shape)
    flags = dict(core.flags(cfg), agg=agg)
    p = torch.tensor((*core.params(cfg), q), dtype=dt, device=device)
    lean = LEAN.get(core.fn)
    out = flags, p, (_Kit(p, lean.derive) if lean is not None and lean.covers(flags) else None)
    if key is not None:
        if len(_SETUP) >= 1024:
            _SETUP.clear()
        _SETUP[key] = out
    return out

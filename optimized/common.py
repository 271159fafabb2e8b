"""Torch counterparts of :mod:`rlspec.reference.common` and :mod:`rlspec.reference.aggregation`.

Same names, same conventions: masked positions are never read (they are replaced with zeros by
``torch.where`` before any arithmetic, so NaN padding cannot leak into values or gradients), and
aggregation is a linear map ``loss = Σ c ⊙ ℓ`` whose coefficients depend only on the mask.
"""

from __future__ import annotations

import math

import torch

from rlspec.reference import _validate
from rlspec.reference import aggregation as ref_aggregation
from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.common import AggregationOptions

__all__ = ["AggregationOptions", "aggregate", "aggregate_token_loss", "check_mask", "coefficients", "ratio",
           "clean", "policy_batch", "upcast", "group_ids", "exp", "finite_loss"]


def check_mask(mask: torch.Tensor, shape: torch.Size | None = None, name: str = "mask") -> torch.Tensor:
    """The mask as a bool tensor (0/1 integer tensors are accepted)."""
    if not isinstance(mask, torch.Tensor):
        raise fail(name, type(mask).__name__, "a torch.Tensor")
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or mask.dtype.is_complex or ((mask != 0) & (mask != 1)).any():
            raise fail(name, f"dtype {mask.dtype}", "a boolean tensor (True = token counts)")
        mask = mask.bool()
    if shape is not None and mask.shape != shape:
        raise fail(name, f"shape {tuple(mask.shape)}", f"shape {tuple(shape)}")
    return mask


def check_like_mask(x: torch.Tensor, mask: torch.Tensor, name: str) -> None:
    """``x`` is a tensor of the mask's shape (RLSpecValueError naming ``name`` otherwise)."""
    if not isinstance(x, torch.Tensor):
        raise fail(name, type(x).__name__, "a torch.Tensor")
    if x.shape != mask.shape:
        raise fail(name, f"shape {tuple(x.shape)}", f"the shape of mask, {tuple(mask.shape)}")


def clean(x: torch.Tensor, mask: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` with masked positions replaced by 0; raises on non-finite values at unmasked positions."""
    check_like_mask(x, mask, name)
    bad = ~torch.isfinite(x) & mask
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        raise fail(name, f"a non-finite value {x[b, t].item()} at unmasked position ({b}, {t})",
                   "finite values wherever mask is True")
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def group_ids(group, length: int, name: str = "group", device: torch.device | str | None = None) -> torch.Tensor:
    """Prompt ids (B,) as an int64 tensor, by the reference's rule (:func:`rlspec.reference._validate.group_ids`).

    Any integers (negative, sparse) are ids; floats are accepted when finite and integral (a float tensor
    of ids from a data loader); anything else (strings, fractions, NaN, bools) raises, naming ``name``.
    Tensors stay on their device; NumPy arrays and lists go through the reference's validator.
    """
    if not isinstance(group, torch.Tensor):
        return torch.as_tensor(_validate.group_ids(group, length, name), device=device)
    if group.ndim != 1 or group.shape[0] != length:
        raise fail(name, f"shape {tuple(group.shape)}", f"shape ({length},): one prompt id per sequence")
    if group.dtype.is_floating_point:
        if not bool((torch.isfinite(group) & (group == torch.round(group))).all()):
            raise fail(name, f"dtype {group.dtype} with non-integral values", "integer prompt ids")
    elif group.dtype == torch.bool or group.dtype.is_complex:
        raise fail(name, f"dtype {group.dtype}", "integer prompt ids")
    return group.to(torch.int64)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half precision (bf16/fp16) is computed in float32: a ratio rounded to bf16 can land on the wrong
    side of a clip boundary (and GSPO's ±3e-4 range is finer than bf16 resolves). Autograd casts the
    gradient back to the caller's dtype."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def policy_batch(logp, old_logp, adv, mask, ref_logp=None):
    """Validate the canonical batch (tensors); return cleaned ``(logp, old_logp, adv, mask, ref_logp)``.

    Half-precision inputs come back as float32 (see :func:`upcast`)."""
    if not isinstance(logp, torch.Tensor) or logp.ndim != 2:
        raise fail("logp", f"{type(logp).__name__} {getattr(logp, 'shape', '')}", "a (B, T) torch.Tensor")
    mask = check_mask(mask, logp.shape)
    named = [(logp, "logp"), (old_logp, "old_logp"), (adv, "adv")] + ([] if ref_logp is None else [(ref_logp, "ref_logp")])
    for x, name in named:
        check_like_mask(x, mask, name)
    # One probe for all inputs (the hot path): a NaN/inf at a valid position of any of them makes this sum
    # non-finite; only then is each input checked on its own, to name it (a sum that merely overflows passes).
    probe = logp.detach() + old_logp + adv
    if ref_logp is not None:
        probe = probe + ref_logp
    if not bool(torch.isfinite(torch.where(mask, probe, torch.zeros((), dtype=probe.dtype, device=probe.device)).sum())):
        for x, name in named:
            clean(x, mask, name)  # raises naming the first input with a non-finite valid value
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    out = [upcast(torch.where(mask, logp, zero)), upcast(torch.where(mask, old_logp, zero.to(old_logp.dtype))).detach(),
           upcast(torch.where(mask, adv, zero.to(adv.dtype))).detach()]
    ref = None if ref_logp is None else upcast(torch.where(mask, ref_logp, zero.to(ref_logp.dtype))).detach()
    return (*out, mask, ref)


class _SafeExp(torch.autograd.Function):
    """exp with the backward grad·exp(x) taken as 0 where the incoming gradient is 0 (so 0·inf is 0, not NaN)."""

    @staticmethod
    def forward(ctx, x):
        r = torch.exp(x)
        ctx.save_for_backward(r)
        return r

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensors
        return torch.where(g == 0, torch.zeros((), dtype=g.dtype, device=g.device), g * r)


def exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x) whose gradient is 0, not NaN, where the value overflows the dtype (x > 88.7 in float32).

    A ratio beyond the dtype's range is inf; a clip or a gate that cuts it off passes it a zero gradient,
    and autograd's exp backward would make that 0 · inf = NaN (the reference's dlogp there is 0). The value
    stays inf, so a loss that does use it is inf, and :func:`finite_loss` refuses it. One exp forward and one
    multiply backward, as plain ``torch.exp``.
    """
    return _SafeExp.apply(x) if x.requires_grad else torch.exp(x)


def ratio(logp: torch.Tensor, old_logp: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    """r = exp(logp − old_logp) (B, T), the log-ratio clamped to ±clamp when given (overflow: see :func:`exp`)."""
    d = logp - old_logp
    if clamp is not None:
        d = torch.clamp(d, -clamp, clamp)
    return exp(d)


class DtypeOverflow(_validate.RLSpecValueError):
    """A loss computed from finite inputs overflowed its dtype (an intermediate such as exp(log-ratio) beyond
    float32's range). :func:`rlspec.optimized.registry.implements` catches it for half/single-precision inputs and
    recomputes in float64 (see :func:`float64_on_overflow`); it reaches the caller only when the loss itself is
    beyond the dtype's range."""


def finite_loss(loss: torch.Tensor, name: str = "logp") -> torch.Tensor:
    """``loss``, or :class:`DtypeOverflow` (an RLSpecValueError) if it is NaN/inf (one device sync).

    The inputs were validated finite, so a non-finite loss means an intermediate overflowed the dtype:
    in float32 a log-ratio beyond ±88.7 (exp overflows) where the float64 reference is still finite. The
    registered function then recomputes in float64 and returns the loss in the input's dtype when it fits
    (:func:`float64_on_overflow`); otherwise the error stands (the design notes, "Bad input": never a silent
    NaN/inf).
    """
    if not bool(torch.isfinite(loss).all()):
        dt = str(loss.dtype).replace("torch.", "")
        hi = math.log(torch.finfo(loss.dtype).max)
        raise DtypeOverflow(f"{name}: got inputs whose loss is {loss.detach().flatten()[0].item()} in {dt} (an "
                            f"intermediate such as exp(logp - old_logp) overflows {dt} for log-ratios beyond "
                            f"{hi:.1f}); expected inputs whose loss {dt} can represent: compute in float64 or clamp "
                            "the log-ratio (config log_ratio_clamp)")
    return loss


_LOW = (torch.float32, torch.bfloat16, torch.float16)


def _upcast(x):
    if isinstance(x, torch.Tensor) and x.dtype in _LOW:
        return x.double()
    return x


def float64_on_overflow(fn):
    """``fn`` that, when it raises :class:`DtypeOverflow` on float32/bfloat16/float16 tensors, recomputes with those
    tensors upcast to float64 (autograd flows back to the original tensors) and returns the result in the inputs'
    dtype, if it is finite there. The reference computes in float64, so this is the reference's value whenever the
    dtype can hold it; a loss beyond the dtype's range still raises. Costs nothing on the normal path."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DtypeOverflow:
            low = [x.dtype for x in (*args, *kwargs.values()) if isinstance(x, torch.Tensor) and x.dtype in _LOW]
            if not low:
                raise
            out = fn(*(_upcast(a) for a in args), **{k: _upcast(v) for k, v in kwargs.items()})
            dt = low[0]

            def back(y):
                if isinstance(y, torch.Tensor) and y.is_floating_point():
                    y = y.to(dt)
                    if not bool(torch.isfinite(y).all()):
                        raise DtypeOverflow(f"logp: got inputs whose loss is {y.detach().flatten()[0].item()} in "
                                            f"{str(dt).replace('torch.', '')} even when computed in float64 (the "
                                            "loss itself is beyond the dtype's range); expected inputs whose loss the "
                                            "dtype can represent: compute in float64 or clamp the log-ratio") from None
                return y

            if isinstance(out, tuple):
                return type(out)(back(y) for y in out) if not hasattr(out, "_fields") else type(out)(*map(back, out))
            return back(out)

    return wrapper


def coefficients(mask: torch.Tensor, mode: str, *, group: torch.Tensor | None = None,
                 normalizer: float | None = None, const: float | None = None, seq_denominator: str | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """c (B, T) with ``loss = Σ c ⊙ ℓ`` — see :mod:`rlspec.reference.aggregation` for the modes."""
    choice(mode, "agg (aggregation mode)", ref_aggregation.MODES)
    count_all = ref_aggregation._count_all(mode, seq_denominator)
    M = check_mask(mask).to(dtype)
    B, T = M.shape
    n_tok = M.sum(dim=1)

    def denom(count: torch.Tensor | float) -> torch.Tensor | float:
        return count if normalizer is None else positive(normalizer, "normalizer")

    if mode == "token-mean":
        total = M.sum()
        d = denom(total)
        return M / d if normalizer is not None or total > 0 else torch.zeros_like(M)
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum"):
        n_seq = torch.tensor(float(B), dtype=dtype) if count_all else (n_tok > 0).sum().to(dtype)
        per_seq = M / n_tok.clamp(min=1).unsqueeze(1) if mode == "seq-mean-token-mean" else M
        return per_seq / denom(n_seq) if normalizer is not None or n_seq > 0 else torch.zeros_like(M)
    if mode == "seq-mean-token-sum-norm":
        C = float(T) if const is None else positive(const, "const")
        n_seq = float(B) if count_all else float((n_tok > 0).sum())
        return M / (denom(n_seq) * C) if normalizer is not None or n_seq > 0 else torch.zeros_like(M)
    if group is None:
        raise fail("group", "None", "prompt ids (B,) for agg='group-token-mean'")
    group = group_ids(group, B, device=M.device)  # the reference's rule: strings raise naming group, not TypeError
    _, inv = torch.unique(group, return_inverse=True)
    tok_per_group = torch.zeros(int(inv.max()) + 1 if B else 0, dtype=dtype, device=M.device).index_add_(0, inv, n_tok)
    n_groups = (tok_per_group > 0).sum().to(dtype)
    if normalizer is None and n_groups == 0:
        return torch.zeros_like(M)
    per_row = tok_per_group[inv].clamp(min=1)
    return M / (per_row.unsqueeze(1) * denom(n_groups))


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, **kw) -> torch.Tensor:
    """Σ c ⊙ ℓ with masked entries of ``loss_mat`` never read."""
    mask = check_mask(mask)
    masked = torch.where(mask, loss_mat, torch.zeros((), dtype=loss_mat.dtype, device=loss_mat.device))
    if mode == "token-mean":  # the common case without the (B, T) coefficient matrix: Σ ℓ / N
        normalizer = kw.get("normalizer")
        n = positive(normalizer, "normalizer") if normalizer is not None else int(mask.sum())
        return masked.sum() / n if n > 0 else masked.sum() * 0.0
    c = coefficients(mask, mode, dtype=loss_mat.dtype, **kw)
    return (c * masked).sum()


def aggregate_token_loss(ell: torch.Tensor, mask: torch.Tensor, opts: AggregationOptions,
                         group: torch.Tensor | None = None, name: str = "logp") -> torch.Tensor:
    """Aggregate a per-token loss with the options every policy-loss config carries.

    A non-finite result (an overflow in the dtype, see :func:`finite_loss`) raises, naming ``name``."""
    return finite_loss(aggregate(ell, mask, opts.agg, group=group, normalizer=opts.normalizer, const=opts.const,
                                 seq_denominator=getattr(opts, "seq_denominator", None)), name)

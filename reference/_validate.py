"""Input validation shared by every public function of the reference.

The policy (see the project's design notes, "Bad input"):

* every problem raises :class:`RLSpecValueError` (a ``ValueError``) whose message names the
  argument, what it was, and what was expected;
* values at masked-out positions are never read: they may hold NaN, ``-inf`` or garbage;
* NaN or inf at a position that counts is an error, never a silent NaN result.

Functions here return cleaned float64 copies in which masked positions are replaced by a
neutral value (0 unless stated), so that the arithmetic downstream never touches padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RLSpecValueError(ValueError):
    """A public rlspec function was called with an argument it cannot accept."""


def fail(argument: str, got: str, expected: str) -> RLSpecValueError:
    """Build the error for ``argument``: ``"<argument>: got <got>; expected <expected>"``."""
    return RLSpecValueError(f"{argument}: got {got}; expected {expected}")


def as_mask(mask: Any, name: str = "mask", shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``mask`` as a boolean array; it must already be boolean (not 0/1 floats).

    Integer arrays holding only 0 and 1 are accepted too, since several frameworks keep
    their response masks as int64; anything else is rejected.
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if np.issubdtype(m.dtype, np.integer) and m.size and np.isin(m, (0, 1)).all():
            m = m.astype(bool)
        elif np.issubdtype(m.dtype, np.integer) and m.size == 0:
            m = m.astype(bool)
        else:
            raise fail(name, f"dtype {m.dtype}", "a boolean array (True = token counts)")
    if shape is not None and m.shape != shape:
        raise fail(name, f"shape {m.shape}", f"shape {shape}")
    return m


def as_2d(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a float64 array of shape (B, T)."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise fail(name, f"an array with {a.ndim} dimension(s), shape {a.shape}", "shape (B, T)")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise fail(name, f"dtype {a.dtype}", "a real-valued array")
    return a.astype(np.float64, copy=True)


def masked_array(x: Any, name: str, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Float64 copy of the (B, T) array ``x`` with masked positions set to ``fill``.

    Raises if ``x`` has the wrong shape or holds NaN/inf at a position where ``mask`` is True.
    """
    a = as_2d(x, name)
    if a.shape != mask.shape:
        raise fail(name, f"shape {a.shape}", f"the shape of mask, {mask.shape}")
    bad = ~np.isfinite(a) & mask
    if bad.any():
        b, t = np.argwhere(bad)[0]
        raise fail(name, f"a non-finite value {a[b, t]} at unmasked position ({b}, {t})",
                   "finite values wherever mask is True")
    a[~mask] = fill
    return a


def finite_vector(x: Any, name: str, length: int | None = None) -> np.ndarray:
    """Float64 copy of a 1-D finite array (optionally of a given length)."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise fail(name, f"shape {a.shape}", "a 1-D array" + (f" of length {length}" if length is not None else ""))
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise fail(name, f"dtype {a.dtype}", "a real-valued array")
    a = a.astype(np.float64)
    if length is not None and a.shape[0] != length:
        raise fail(name, f"length {a.shape[0]}", f"length {length}")
    if not np.isfinite(a).all():
        i = int(np.argwhere(~np.isfinite(a))[0][0])
        raise fail(name, f"a non-finite value {a[i]} at index {i}", "finite values")
    return a


def group_ids(group: Any, length: int, name: str = "group") -> np.ndarray:
    """Integer group ids of shape (B,). Any integers (negative, sparse) are allowed."""
    g = np.asarray(group)
    if g.ndim != 1 or g.shape[0] != length:
        raise fail(name, f"shape {g.shape}", f"shape ({length},): one prompt id per sequence")
    if not np.issubdtype(g.dtype, np.integer):
        if np.issubdtype(g.dtype, np.floating) and np.isfinite(g).all() and (g == np.round(g)).all():
            g = g.astype(np.int64)
        else:
            raise fail(name, f"dtype {g.dtype}", "integer prompt ids")
    return g.astype(np.int64)


def positive(value: float, name: str, allow_zero: bool = False) -> float:
    """A finite float > 0 (or >= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise fail(name, repr(value), "a real number") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise fail(name, repr(value), "a finite number " + (">= 0" if allow_zero else "> 0"))
    return v


def in_range(value: float, name: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite float in the interval between lo and hi (open ends as flagged)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise fail(name, repr(value), "a real number") from None
    ok = np.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = ("(" if lo_open else "[") + f"{lo}, {hi}" + (")" if hi_open else "]")
        raise fail(name, repr(value), f"a number in {interval}")
    return v


def choice(value: str, name: str, options: tuple[str, ...] | list[str]) -> str:
    """One of a fixed set of strings."""
    if value not in options:
        raise fail(name, repr(value), "one of " + ", ".join(repr(o) for o in options))
    return value


def policy_batch(logp: Any, old_logp: Any, adv: Any, mask: Any, ref_logp: Any = None):
    """Validate the canonical policy-loss batch; return float64 copies with padding zeroed.

    Returns ``(logp, old_logp, adv, mask, ref_logp)``; ``ref_logp`` stays ``None`` when absent.
    """
    lp = as_2d(logp, "logp")
    m = as_mask(mask, "mask", lp.shape)
    lp = masked_array(logp, "logp", m)
    olp = masked_array(old_logp, "old_logp", m)
    a = masked_array(adv, "adv", m)
    rlp = None if ref_logp is None else masked_array(ref_logp, "ref_logp", m)
    return lp, olp, a, m, rlp

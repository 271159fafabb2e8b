"""Tolerances: the one place that says how close an implementation must be to the reference.

Rule (stated once, used by the harness, the pytest suite and the golden vectors):

* every compared value ``got`` is checked element-wise against the reference value ``ref`` with

      |got − ref| ≤ s · (atol + rtol · |ref|),     s = √max(n_terms, 1)

  where ``(rtol, atol)`` depend on the dtype the implementation computed in:

  ==========  ========  ========  ==================================================
  dtype       rtol      atol      why
  ==========  ========  ========  ==================================================
  float64     1e-10     1e-12     a few hundred ulps of float64 (ε ≈ 2.2e-16)
  float32     1e-5      1e-6      ~80 ulps of float32 (ε ≈ 1.2e-7)
  bfloat16    2e-2      2e-3      ~5 roundings of bfloat16 (unit roundoff 2⁻⁸ ≈ 3.9e-3)
  ==========  ========  ========  ==================================================

* ``n_terms`` is the number of input terms a value is a reduction over (the harness uses the number
  of valid tokens for losses and KL terms, the number of sequences × tokens for advantages, the
  largest input size for other kinds). Rounding errors of a sum of n terms grow like √n for
  random-signed errors (the random-walk estimate; pairwise summation is even better), hence the
  factor s. Element-wise values that are not sums simply get a looser-than-needed bound.
* the reference is evaluated in float64 on the inputs *after* rounding them to the dtype under test,
  so the tolerance only has to cover the arithmetic, not the input rounding.
* discontinuities: where a loss has a branch (a clip boundary, a max, an indicator), rounding in
  the dtype may put a value on the other side of the boundary than exact arithmetic does. An
  element that misses the tolerance still passes if the reference reproduces it, within the same
  tolerance, on the inputs perturbed by at most a few unit roundoffs of the dtype
  (:data:`PERTURBATION_ULPS` × :data:`UNIT_ROUNDOFF`, :data:`N_PERTURBATIONS` seeded draws): the
  result is then exact for inputs the dtype cannot tell apart from the given ones (backward
  stability). Wrong formulas and wrong signs are never reproduced that way; cancellation inside
  a low-precision computation is not excused either.
* NaN or ±inf in ``got`` never passes, whatever the reference says; a non-finite reference value
  is a harness error (the case is not applicable) and never passes either.
"""

from __future__ import annotations

import math

import numpy as np

DTYPES = ("float64", "float32", "bfloat16")

#: half the spacing of floating-point numbers just above 1, per dtype (relative input perturbation)
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "bfloat16": 2.0**-8}
#: inputs are perturbed by up to this many unit roundoffs (a chain of a few rounded operations)
PERTURBATION_ULPS = 4
#: how many perturbed inputs the harness tries before calling an element wrong
N_PERTURBATIONS = 16

#: dtype -> (rtol, atol) for a single rounding-limited value (n_terms = 1)
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-10, 1e-12),
    "float32": (1e-5, 1e-6),
    "bfloat16": (2e-2, 2e-3),
}


def tolerance(dtype: str, n_terms: int = 1) -> tuple[float, float]:
    """(rtol, atol) for a value computed in ``dtype`` that sums ``n_terms`` terms (√n scaling)."""
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype: got {dtype!r}; expected one of {DTYPES}")
    rtol, atol = TOLERANCES[dtype]
    s = math.sqrt(max(int(n_terms), 1))
    return rtol * s, atol * s


def within(ref, got, dtype: str, n_terms: int = 1) -> np.ndarray:
    """Element-wise verdict of the rule above (False wherever either value is NaN/inf); shapes must match."""
    r = np.asarray(ref, dtype=np.float64)
    g = np.asarray(got, dtype=np.float64)
    rtol, atol = tolerance(dtype, n_terms)
    with np.errstate(invalid="ignore"):
        return np.isfinite(r) & np.isfinite(g) & (np.abs(g - r) <= atol + rtol * np.abs(r))


def close(ref, got, dtype: str, n_terms: int = 1) -> tuple[bool, float, float]:
    """Whether ``got`` matches ``ref`` within the ``dtype`` tolerance; returns (ok, max_abs_err, max_rel_err).

    ``ref`` and ``got`` are scalars or arrays of the same shape (compare only the positions that count:
    the harness selects valid-token positions first). Any NaN/inf in ``got`` (or ``ref``) fails,
    with errors reported as ``inf``. The relative error is |got − ref| / max(|ref|, atol/rtol): below
    the crossover atol/rtol the absolute tolerance governs, so a tiny reference does not blow it up.
    """
    r = np.asarray(ref, dtype=np.float64)
    g = np.asarray(got, dtype=np.float64)
    if r.shape != g.shape:
        if r.size == 1 and g.size == 1:
            r, g = r.reshape(()), g.reshape(())
        else:
            raise ValueError(f"close: shapes differ, reference {r.shape} vs got {g.shape}")
    if r.size == 0:
        return True, 0.0, 0.0
    if not (np.isfinite(r).all() and np.isfinite(g).all()):
        return False, math.inf, math.inf
    rtol, atol = tolerance(dtype, n_terms)
    diff = np.abs(g - r)
    ok = bool((diff <= atol + rtol * np.abs(r)).all())
    rel = diff / np.maximum(np.abs(r), atol / rtol)
    return ok, float(diff.max()), float(rel.max())


def describe(dtype: str | None = None) -> str:
    """One line per dtype, for reports and ``--help``."""
    rows = [dtype] if dtype else list(DTYPES)
    return "; ".join(f"{d}: rtol={TOLERANCES[d][0]:g}, atol={TOLERANCES[d][1]:g}" for d in rows) + \
        " (both × √n_terms for reductions; NaN/inf never passes)"

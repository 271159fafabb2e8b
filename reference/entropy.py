"""Token entropy of the policy, the quantity of the entropy bonus, with its gradient w.r.t. the logits.

Standard definition (used as a bonus by PPO, arXiv 1707.06347 §5 eq. (9), and by verl/TRL/OpenRLHF as
``entropy_coeff · agg(H)``). With logits z (B, T, V) and p = softmax(z) over the vocabulary::

    H_bt = −Σ_v p_btv log p_btv                       (B, T)
    value = Σ_bt c_bt H_bt                            (c: the aggregation coefficients of the mask)
    ∂H_bt/∂z_btv = −p_btv (log p_btv + H_bt)          (derived: ∂log p_u/∂z_v = 1[u=v] − p_v)

The bonus enters a loss as ``loss −= coef · value``; this module returns the entropy itself.
Masked rows (b, t) are never read (their logits may be NaN/inf); an all-false mask gives value 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import aggregation, common
from rlspec.reference._validate import as_mask, choice, fail, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

ENTROPY_REF = Paper(arxiv="1707.06347", title="Proximal Policy Optimization Algorithms", year=2017)


@dataclass(frozen=True)
class EntropyConfig:
    """agg: aggregation mode (default token-mean, as TRL's entropy bonus); normalizer/const as for losses."""

    agg: str = "token-mean"
    normalizer: float | None = None
    const: float | None = None
    seq_denominator: str | None = None

    def __post_init__(self) -> None:
        choice(self.agg, "agg", aggregation.MODES)
        if self.normalizer is not None:
            positive(self.normalizer, "normalizer")
        if self.const is not None:
            positive(self.const, "const")
        if self.seq_denominator is not None:
            choice(self.seq_denominator, "seq_denominator", aggregation.SEQ_DENOMINATORS)


def validate_logits(logits, mask) -> tuple[np.ndarray, np.ndarray]:
    """logits (B, T, V) real, V ≥ 1, finite on unmasked rows; mask (B, T) bool. Masked rows set to 0."""
    z = np.asarray(logits)
    if z.ndim != 3 or z.shape[2] < 1:
        raise fail("logits", f"shape {z.shape}", "shape (B, T, V) with V ≥ 1")
    if not (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)):
        raise fail("logits", f"dtype {z.dtype}", "a real-valued array")
    M = as_mask(mask, "mask", z.shape[:2])
    z = z.astype(np.float64, copy=True)
    bad = ~np.isfinite(z) & M[:, :, None]
    if bad.any():
        b, t, v = np.argwhere(bad)[0]
        raise fail("logits", f"a non-finite value {z[b, t, v]} at unmasked position ({b}, {t}, {v})",
                   "finite logits wherever mask is True")
    z[~M] = 0.0
    return z, M


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log p = z − logsumexp(z) over the last axis, stable."""
    zmax = z.max(axis=-1, keepdims=True)
    return z - zmax - np.log(np.exp(z - zmax).sum(axis=-1, keepdims=True))


def token_entropy(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H = −Σ_v p log p (B, T) and ∂H/∂z = −p ⊙ (log p + H) (B, T, V)."""
    logp = log_softmax(z)
    p = np.exp(logp)
    H = -(p * logp).sum(axis=-1)
    return H, -p * (logp + H[..., None])


def entropy(logits, mask, config: EntropyConfig | None = None, group=None) -> tuple[float, np.ndarray]:
    """Aggregated token entropy and its gradient w.r.t. the logits.

    Args: logits (B, T, V) float; mask (B, T) bool; ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (value: float, dlogits: (B, T, V)), dlogits zero on masked rows.
    """
    cfg = config or EntropyConfig()
    z, M = validate_logits(logits, mask)
    c = common.agg_coefficients(M, cfg, group)  # (B, T)
    H, dH = token_entropy(z)
    H = np.where(M, H, 0.0)
    return float((c * H).sum()), c[..., None] * dH


def _entropy_inputs(rng: np.random.Generator) -> dict:
    """Random logits (B, T, V) with a ragged mask and garbage on masked rows."""
    B, T, V = (int(x) for x in rng.integers(1, 6, size=3))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    logits = rng.normal(scale=2.0, size=(B, T, V))
    logits[~mask] = np.nan
    return {"logits": logits, "mask": mask}


register(Spec(
    name="entropy", kind="entropy", family="baseline", paper=ENTROPY_REF, status="implemented",
    summary="masked, aggregated token entropy of softmax(logits) with its hand gradient",
    fn=entropy, config_cls=EntropyConfig, outputs=("value", "dlogits"), make_inputs=_entropy_inputs,
    equations=(Equation("entropy", "H = −Σ_v p_v log p_v, p = softmax(z)", "arXiv 1707.06347 §5 eq. (9) (bonus S)",
                        "reconstructed", "token_entropy",
                        note="textbook definition; frameworks compute logsumexp(z) − Σ p z (peers.md §10)"),),
    gradient="∂H/∂z_v = −p_v (log p_v + H), times the aggregation coefficient c",
    properties=(
        "properties/test_entropy.py::test_hand_gradient_matches_finite_differences",
        "properties/test_entropy.py::test_entropy_bounds: 0 ≤ H ≤ log V, max at uniform logits",
        "properties/test_entropy.py::test_shift_invariance",
    ),
))

"""Pieces every policy loss shares: the importance ratio and the aggregation options.

Every policy loss in rlspec is a per-token loss ℓ (B, T) followed by a linear aggregation
(:mod:`rlspec.reference.aggregation`), so ``dlogp = c ⊙ ∂ℓ/∂logp`` for token-local losses. Losses that
couple tokens (sequence-level ratios) say so in their own gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import aggregation
from rlspec.reference._validate import choice, fail, positive


@dataclass(frozen=True)
class AggregationOptions:
    """How a policy loss is aggregated; shared by every policy-loss config.

    agg: one of :data:`rlspec.reference.aggregation.MODES`.
    normalizer: global denominator for shards (see :mod:`rlspec.reference.aggregation`); None = this batch's.
    const: the constant C of ``seq-mean-token-sum-norm`` (None = T, the padded length).
    log_ratio_clamp: clamp log(π/π_old) to ±value before exponentiating (verl uses 20); None = no clamp.
        Where the clamp binds the gradient through the ratio is zero, exactly as with ``torch.clamp``.
    seq_denominator: which rows a per-sequence mean divides by: "nonempty" (B′, rows with a valid
        token) or "all" (B, every row, as TRL and Liger do); None = the mode's default (see
        :func:`rlspec.reference.aggregation.coefficients`).
    """

    agg: str = "token-mean"
    normalizer: float | None = None
    const: float | None = None
    log_ratio_clamp: float | None = None
    seq_denominator: str | None = None

    def __post_init__(self) -> None:
        choice(self.agg, "agg", aggregation.MODES)
        if self.normalizer is not None:
            positive(self.normalizer, "normalizer")
        if self.const is not None:
            positive(self.const, "const")
        if self.log_ratio_clamp is not None:
            positive(self.log_ratio_clamp, "log_ratio_clamp")
        if self.seq_denominator is not None:
            choice(self.seq_denominator, "seq_denominator", aggregation.SEQ_DENOMINATORS)


@dataclass(frozen=True)
class CriticAggregationOptions:
    """How a critic (``value_loss``) is aggregated over its valid tokens; shared by every critic-loss config.

    agg: a mode of :data:`rlspec.reference.aggregation.MODES` other than ``group-token-mean`` (a critic loss takes
    no prompt ids); default token-mean. normalizer / const / seq_denominator: as in :class:`AggregationOptions`.
    """

    agg: str = "token-mean"
    normalizer: float | None = None
    const: float | None = None
    seq_denominator: str | None = None

    def __post_init__(self) -> None:
        choice(self.agg, "agg", aggregation.MODES)
        if self.agg == "group-token-mean":
            raise fail("agg", "'group-token-mean'", "a mode without prompt groups (the critic loss takes no group)")
        if self.normalizer is not None:
            positive(self.normalizer, "normalizer")
        if self.const is not None:
            positive(self.const, "const")
        if self.seq_denominator is not None:
            choice(self.seq_denominator, "seq_denominator", aggregation.SEQ_DENOMINATORS)


def log_ratio(logp: np.ndarray, old_logp: np.ndarray, clamp: float | None) -> tuple[np.ndarray, np.ndarray]:
    """log r = logp − old_logp, optionally clamped; returns (log_r, ∂log_r/∂logp ∈ {0, 1})."""
    d = logp - old_logp
    if clamp is None:
        return d, np.ones_like(d)
    inside = (d >= -clamp) & (d <= clamp)
    return np.clip(d, -clamp, clamp), inside.astype(np.float64)


def ratio(logp: np.ndarray, old_logp: np.ndarray, clamp: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token importance ratio r = exp(logp − old_logp) (B, T); returns (r, ∂r/∂logp).

    With log-ratios up to ±700 this stays finite in float64; beyond that pass a clamp.
    """
    lr, dlr = log_ratio(logp, old_logp, clamp)
    with np.errstate(over="raise"):
        try:
            r = np.exp(lr)
        except FloatingPointError:
            raise fail("logp - old_logp", f"a log-ratio up to {np.abs(lr).max():.3g}",
                       "log-ratios below 700 in magnitude, or log_ratio_clamp set") from None
    return r, r * dlr


def agg_coefficients(mask: np.ndarray, opts, group=None) -> np.ndarray:
    """The aggregation coefficients c (B, T) that a config's aggregation fields describe."""
    return aggregation.coefficients(mask, opts.agg, group=group, normalizer=opts.normalizer, const=opts.const,
                                    seq_denominator=getattr(opts, "seq_denominator", None))


def aggregate_token_loss(ell: np.ndarray, dell: np.ndarray, mask: np.ndarray, opts: AggregationOptions,
                         group=None) -> tuple[float, np.ndarray]:
    """Aggregate a token-local loss ℓ with its derivative ∂ℓ/∂logp: returns (loss, dlogp)."""
    c = agg_coefficients(mask, opts, group)
    ell = np.where(mask, ell, 0.0)
    dell = np.where(mask, dell, 0.0)
    return float((c * ell).sum()), c * dell

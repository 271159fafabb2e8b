"""Loss aggregation: how per-token losses ℓ (B, T) become one number.

Every mode rlspec knows is *linear* in ℓ: ``loss = Σ_bt c_bt ℓ_bt`` for a coefficient array
``c`` (B, T) that depends only on the mask (and groups). So the gradient of the aggregated loss
w.r.t. logp is simply ``c ⊙ ∂ℓ/∂logp`` for token-local losses, and a loss computed on a shard
(micro-batch or data-parallel rank) with the *global* normalizer, summed over shards, equals the
full-batch loss exactly. :func:`coefficients` returns ``c``; :func:`aggregate` applies it.

Modes (M = mask, B′ = number of sequences with at least one valid token):

=========================  ===============================================================
``token-mean``             Σ_bt M ℓ / Σ_bt M                     (DAPO arXiv 2503.14476 §3.3)
``seq-mean-token-mean``    (1/B′) Σ_b [Σ_t M ℓ / Σ_t M]          (GRPO arXiv 2402.03300 eq. 3)
``seq-mean-token-sum``     (1/B′) Σ_b Σ_t M ℓ
``seq-mean-token-sum-norm`` (1/(B·C)) Σ_bt M ℓ, C a constant      (Dr. GRPO arXiv 2503.20783 §3.1)
``group-token-mean``       (1/P) Σ_g [Σ_{b∈g} Σ_t M ℓ / Σ_{b∈g} Σ_t M]  (DAPO paper eq. 8, per prompt)
=========================  ===============================================================

``normalizer`` replaces the batch-level denominator with a global one:

* ``token-mean``: the global number of valid tokens;
* ``seq-mean-token-mean`` / ``seq-mean-token-sum``: the global B′;
* ``seq-mean-token-sum-norm``: the global number of sequences B (C is ``const``, default T);
* ``group-token-mean``: the global number of groups P (groups must not be split across shards).

Defined edge cases: an all-false mask gives loss 0 and zero gradient; a sequence with no valid
token contributes nothing and is not counted in B′.
"""

from __future__ import annotations

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, group_ids, positive

MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "group-token-mean")


def _denominator(count: float, normalizer: float | None, name: str = "normalizer") -> float:
    if normalizer is None:
        return count
    return positive(normalizer, name)


SEQ_DENOMINATORS = ("nonempty", "all")


def _count_all(mode: str, seq_denominator: str | None) -> bool:
    """Whether the seq-mean denominator counts every row (B) or only rows with a valid token (B′)."""
    if seq_denominator is None:
        return mode == "seq-mean-token-sum-norm"  # Dr. GRPO divides by all B; the seq-mean modes by B′
    return choice(seq_denominator, "seq_denominator", SEQ_DENOMINATORS) == "all"


def coefficients(mask, mode: str, *, group=None, normalizer: float | None = None,
                 const: float | None = None, seq_denominator: str | None = None) -> np.ndarray:
    """c (B, T) with ``loss = Σ c ⊙ ℓ`` for aggregation ``mode``; zero at masked positions.

    ``seq_denominator`` ("nonempty" = B′, "all" = B) overrides which rows the seq-mean modes and
    seq-mean-token-sum-norm count; None keeps each mode's default (B′, B′, B respectively).
    """
    choice(mode, "agg (aggregation mode)", MODES)
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    B, T = M.shape
    Mf = M.astype(np.float64)
    n_tok = Mf.sum(axis=1)  # (B,)
    if mode == "token-mean":
        total = Mf.sum()
        if total == 0 and normalizer is None:
            return np.zeros_like(Mf)
        return Mf / _denominator(total, normalizer)
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum"):
        n_seq = float(B if _count_all(mode, seq_denominator) else (n_tok > 0).sum())  # B or B′
        if n_seq == 0 and normalizer is None:
            return np.zeros_like(Mf)
        per_seq = Mf / np.maximum(n_tok, 1.0)[:, None] if mode == "seq-mean-token-mean" else Mf
        return per_seq / _denominator(n_seq, normalizer)
    if mode == "seq-mean-token-sum-norm":
        C = float(T) if const is None else positive(const, "const")
        n_seq = float(B if _count_all(mode, seq_denominator) else (n_tok > 0).sum())
        if n_seq == 0 and normalizer is None:
            return np.zeros_like(Mf)
        return Mf / (_denominator(n_seq, normalizer) * C)
    # group-token-mean
    if group is None:
        raise fail("group", "None", "prompt ids (B,) for agg='group-token-mean'")
    g = group_ids(group, B)
    c = np.zeros_like(Mf)
    groups = [k for k in np.unique(g) if Mf[g == k].sum() > 0]
    if not groups and normalizer is None:
        return c
    P = _denominator(float(len(groups)), normalizer)
    for k in groups:
        rows = g == k
        c[rows] = Mf[rows] / (Mf[rows].sum() * P)
    return c


def aggregate(loss_mat, mask, mode: str, *, group=None, normalizer: float | None = None,
              const: float | None = None, seq_denominator: str | None = None) -> float:
    """Aggregate per-token losses ``loss_mat`` (B, T) with ``mode``; masked values are not read."""
    c = coefficients(mask, mode, group=group, normalizer=normalizer, const=const, seq_denominator=seq_denominator)
    L = np.where(c != 0, np.asarray(loss_mat, dtype=np.float64), 0.0)
    return float((c * L).sum())


def global_normalizer(mask, mode: str, *, group=None, seq_denominator: str | None = None) -> float:
    """The denominator ``mode`` uses on the full batch: pass it as ``normalizer`` to every shard.

    token-mean: number of valid tokens; seq-mean-*: sequences with ≥ 1 valid token (B′);
    seq-mean-token-sum-norm: number of sequences B; group-token-mean: groups with ≥ 1 valid token.
    Under data parallelism this is the all-reduced count over ranks (and micro-batches).
    """
    choice(mode, "agg (aggregation mode)", MODES)
    M = as_mask(mask, "mask")
    n_tok = M.sum(axis=1)
    if mode == "token-mean":
        return float(M.sum())
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        return float(M.shape[0] if _count_all(mode, seq_denominator) else (n_tok > 0).sum())
    if group is None:
        raise fail("group", "None", "prompt ids (B,) for agg='group-token-mean'")
    g = group_ids(group, M.shape[0])
    return float(sum(1 for k in np.unique(g) if n_tok[g == k].sum() > 0))

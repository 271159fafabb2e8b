"""Aggregation is a linear map with an explicit normalizer, so sharded losses add up (issue #2, design).

Claim: computing the loss on any split of the batch into shards (micro-batches, data-parallel ranks),
each shard using the global normalizer, and summing, equals the full-batch loss and gradient —
for every registered policy loss and every aggregation mode.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import policy_batches, seeds
from rlspec.conformance import harness
from rlspec.reference import aggregation, registry

# Entries whose token selection depends on the whole batch (e.g. KL-Cov's top-k covariance tokens) cannot be
# sharded without passing the full batch's selection; each says so in extras["batch_coupled"] and tests it itself.
# (value_clip has its own inputs and gradient, dvalues, and checks sharding in its own properties file)
POLICY_LOSSES = [s.name for s in registry.specs(kind="policy_loss") if s.status in ("implemented", "partial")
                 and "batch_coupled" not in s.extras and harness.uses_default_generator(s)
                 and s.config_cls is not None and {"agg", "normalizer"} <= set(s.config_cls.__dataclass_fields__)]


def shards_of(batch, rng, mode):
    """Random split of the rows into 1-4 shards; group-token-mean keeps each group in one shard."""
    B = batch["mask"].shape[0]
    n = int(rng.integers(1, 5))
    if mode == "group-token-mean":
        ids = np.unique(batch["group"])
        owner = dict(zip(ids, rng.integers(0, n, size=len(ids))))
        label = np.array([owner[g] for g in batch["group"]])
    else:
        label = rng.integers(0, n, size=B)
    return [np.nonzero(label == k)[0] for k in range(n) if (label == k).any()]


def run(spec, batch, rows, cfg):
    sub = {k: v[rows] for k, v in batch.items()}
    kw = dict(logp=sub["logp"], old_logp=sub["old_logp"], adv=sub["adv"], mask=sub["mask"], config=cfg)
    if cfg.agg == "group-token-mean":
        kw["group"] = sub["group"]
    return spec(**kw)


@pytest.mark.parametrize("name", POLICY_LOSSES)
@given(batch=policy_batches(max_B=8, max_T=5), rng=seeds(), mode=st.sampled_from(aggregation.MODES))
def test_shards_with_global_normalizer_sum_to_full_batch(name, batch, rng, mode):
    """Shard losses and gradients, each with the global normalizer, sum to the full-batch ones."""
    spec = registry.get(name)
    cfg = dataclasses.replace(spec.config(), agg=mode)
    full_loss, full_grad = run(spec, batch, np.arange(batch["mask"].shape[0]), cfg)
    N = aggregation.global_normalizer(batch["mask"], mode, group=batch["group"],
                                      seq_denominator=getattr(cfg, "seq_denominator", None))
    if N == 0:
        return  # nothing to normalise: the full batch is defined as 0 (tested below)
    sharded = dataclasses.replace(cfg, normalizer=N)
    total, grad = 0.0, np.zeros_like(full_grad)
    for rows in shards_of(batch, rng, mode):
        loss, g = run(spec, batch, rows, sharded)
        total += loss
        grad[rows] += g
    assert total == pytest.approx(full_loss, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, full_grad, rtol=1e-10, atol=1e-14)


@given(batch=policy_batches(), mode=st.sampled_from(aggregation.MODES))
def test_coefficients_define_each_mode(batch, mode):
    """The coefficients reproduce each mode's formula, written out independently here."""
    m, g = batch["mask"], batch["group"]
    L = np.where(m, np.random.default_rng(0).normal(size=m.shape), np.nan)
    got = aggregation.aggregate(L, m, mode, group=g)
    Lz = np.where(m, L, 0.0)
    n_tok = m.sum(1)
    if mode == "token-mean":
        want = Lz.sum() / m.sum() if m.sum() else 0.0
    elif mode == "seq-mean-token-mean":
        rows = n_tok > 0
        want = np.mean(Lz[rows].sum(1) / n_tok[rows]) if rows.any() else 0.0
    elif mode == "seq-mean-token-sum":
        rows = n_tok > 0
        want = np.mean(Lz[rows].sum(1)) if rows.any() else 0.0
    elif mode == "seq-mean-token-sum-norm":
        want = Lz.sum() / (m.shape[0] * m.shape[1])
    else:
        per_group = [Lz[g == k].sum() / m[g == k].sum() for k in np.unique(g) if m[g == k].sum() > 0]
        want = np.mean(per_group) if per_group else 0.0
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("mode", aggregation.MODES)
def test_all_false_mask_is_zero(mode):
    """Defined edge case: an all-false mask gives loss 0 and zero coefficients (no NaN)."""
    m = np.zeros((3, 4), bool)
    c = aggregation.coefficients(m, mode, group=np.array([0, 0, 1]))
    assert (c == 0).all()
    assert aggregation.aggregate(np.full((3, 4), np.nan), m, mode, group=np.array([0, 0, 1])) == 0.0


def test_token_mean_is_length_weighted_seq_mean():
    """DAPO §3.3: token-mean weights each sequence by its length, seq-mean-token-mean weights sequences equally."""
    m = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], bool)
    L = np.array([[1.0, 1, 1, 1], [5.0, 0, 0, 0]])
    assert aggregation.aggregate(L, m, "token-mean") == pytest.approx((4 + 5) / 5)
    assert aggregation.aggregate(L, m, "seq-mean-token-mean") == pytest.approx((1 + 5) / 2)

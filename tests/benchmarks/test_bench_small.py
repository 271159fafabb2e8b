"""Benchmarks (tox -e bench): policy loss + backward on small batches (256 to 2048 tokens, below the compile threshold,
where the eager lean forms of :mod:`rlspec.optimized.fused` run), rlspec against the naive eager loss of
:func:`rlspec.optimized.bench.naive_loss` measured in the same test.

pytest-benchmark times the rlspec call; before that, the test times both in interleaved rounds (each round the mean of
``CALLS`` calls, one fresh leaf logp per call, as ``rlspec bench`` does) and records the medians and their ratio
rlspec / naive in the benchmark's ``extra_info`` (the JSON and ``--benchmark-columns``). Below 1 means rlspec is the
faster. Measurements, not timed assertions: the ratio moves with the machine's load.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from rlspec.optimized import bench

pytestmark = pytest.mark.bench

TOKENS = (256, 1024, 2048)
LOSSES = ("ppo", "sapo", "gspo", "cispo", "gmpo", "dro", "gpg_loss")
ROUNDS, CALLS = 7, 100


def _mean_call_s(fn, batch) -> float:
    """Seconds per loss + backward, the mean of CALLS calls (fresh leaves made before the clock starts)."""
    logp, old, adv, mask = batch
    leaves = [logp.detach().clone().requires_grad_(True) for _ in range(CALLS)]
    t0 = time.perf_counter()
    for lp in leaves:
        fn(lp, old, adv, mask).backward()
    return (time.perf_counter() - t0) / CALLS


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("name", LOSSES)
def test_small_batch_against_naive(benchmark, name, tokens, dtype):
    batch = bench.policy_batch(tokens, getattr(torch, dtype))
    fns = bench.elementwise_variants(name, with_verl=False)
    rlspec, naive = fns["rlspec"], fns["naive"]
    # the two timed calls compute the same loss (bf16: rlspec sums in float32, the naive loss in bf16)
    torch.testing.assert_close(rlspec(*batch).float(), naive(*batch).float(),
                               rtol=1e-5 if dtype == "float32" else 1e-2, atol=1e-6)
    for fn in (rlspec, naive):  # warm-up
        _mean_call_s(fn, batch)
    times = {"rlspec": [], "naive": []}
    for _ in range(ROUNDS):
        times["rlspec"].append(_mean_call_s(rlspec, batch))
        times["naive"].append(_mean_call_s(naive, batch))
    med = {k: statistics.median(v) for k, v in times.items()}
    benchmark.group = f"small batches: {name} {dtype} {tokens} tokens"
    benchmark.extra_info.update(rlspec_us=med["rlspec"] * 1e6, naive_us=med["naive"] * 1e6,
                                ratio_to_naive=med["rlspec"] / med["naive"])
    benchmark.pedantic(bench._step, args=(rlspec, batch), rounds=ROUNDS, iterations=CALLS)

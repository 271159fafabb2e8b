"""Benchmarks (tox -e bench): policy loss + backward, rlspec's fused path against naive torch, its torch.compile,
verl's own loss (when verl is installed) and the copy-bandwidth limit on the same bytes, in the same run.

Each group is one (loss, dtype, size); pytest-benchmark's table gives the ratios (``rlspec bench`` writes them as a
markdown table with the machine named). Measurements, not timed assertions.
"""

from __future__ import annotations

import pytest
import torch

from rlspec.optimized import bench

pytestmark = pytest.mark.bench

TOKENS = 1 << 20
LOSSES = ("ppo", "sapo", "gspo", "cispo", "gmpo", "dro", "gpg_loss")
VARIANTS = ("limit", "rlspec", "rlspec-eager", "naive", "naive-compiled", "verl")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", LOSSES)
def test_policy_loss_forward_backward(benchmark, name, dtype, variant):
    batch = bench.policy_batch(TOKENS, getattr(torch, dtype))
    benchmark.group = f"{name} {dtype} {TOKENS} tokens"
    if variant == "limit":
        run = bench._limit_step(batch)
        benchmark.pedantic(run, rounds=7, warmup_rounds=1)
        return
    fns = bench.elementwise_variants(name, with_verl=variant == "verl")
    if variant not in fns:
        pytest.skip(f"{variant} is not available for {name} here")
    fn = fns[variant]
    assert torch.isfinite(fn(*batch)).all()  # the timed call runs to a finite loss
    bench._step(fn, batch)  # warm-up (compilation)
    benchmark.pedantic(bench._step, args=(fn, batch), rounds=7)

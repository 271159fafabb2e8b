"""Benchmarks (tox -e bench): LM-head log-probs + GRPO/PPO loss + backward, fused (rlspec) vs materialized logits
vs Liger's chunked GRPO loss (when liger-kernel is installed), with the machine's matmul limit measured in the same
run (the three N×V×H matmuls any exact method needs: logits, ∂hidden, ∂weight).

Each group is one size; pytest-benchmark's table gives the ratios. Peak memory of each variant is measured in a
fresh subprocess (peak RSS above the inputs' own) and stored in ``extra_info`` — measurements, not assertions.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlspec.optimized import bench

pytestmark = pytest.mark.bench

SIZES = [(1024, 512, 32768), (2048, 512, 65536)]  # (B·T tokens, H, V)


# the steps (each returns loss + Σ ∂W, so the work cannot be skipped) and their inputs are rlspec bench's
make = bench.lmhead_inputs
VARIANTS = bench.LMHEAD


@pytest.mark.parametrize("size", SIZES, ids=[f"N{n}-H{h}-V{v}" for n, h, v in SIZES])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lmhead_loss_and_backward(benchmark, size, variant):
    if variant == "liger":
        pytest.importorskip("liger_kernel")
    torch.set_num_threads(2)
    x = make(*size)
    benchmark.group = f"lmhead N={size[0]} H={size[1]} V={size[2]}"
    benchmark.extra_info["peak_rss_mb_above_inputs"] = bench.peak_rss_mb(variant, size, threads=2)
    benchmark.extra_info["gflop_of_three_matmuls"] = 6 * size[0] * size[1] * size[2] / 1e9
    result = benchmark.pedantic(VARIANTS[variant], args=x, rounds=3, warmup_rounds=1)
    assert math.isfinite(result)  # the step ran to a finite loss and weight gradient

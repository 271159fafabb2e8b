"""Benchmarks (tox -e bench): optimized (torch) against the reference (NumPy) on the same batch.

Each group holds the reference as the baseline and the optimized path measured in the same run;
pytest-benchmark's table shows their ratio. These are measurements, not timed assertions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlspec import optimized
from rlspec.reference import registry

pytestmark = pytest.mark.bench

B, T = 64, 512
NAMES = [n for n in registry.names(kind="policy_loss", status="implemented") if n in optimized.names()]


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    mask = np.arange(T)[None, :] < rng.integers(T // 4, T + 1, size=B)[:, None]
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    return dict(logp=logp, old_logp=logp + rng.normal(scale=0.2, size=(B, T)),
                adv=np.repeat(rng.normal(size=(B, 1)), T, axis=1), mask=mask)


@pytest.mark.parametrize("name", NAMES)
def test_reference(benchmark, batch, name):
    benchmark.group = name
    spec = registry.get(name)
    loss, _ = benchmark(lambda: spec(**batch))
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_optimized_forward_backward(benchmark, batch, name, dtype):
    benchmark.group = name
    spec, fn = registry.get(name), optimized.get(name)
    t = {k: torch.as_tensor(v) if k == "mask" else torch.as_tensor(v, dtype=dtype) for k, v in batch.items()}

    def step():
        logp = t["logp"].clone().requires_grad_(True)
        loss = fn(**dict(t, logp=logp), config=spec.config())
        loss.backward()
        return loss

    assert torch.isfinite(benchmark(step))

"""Benchmarks (tox -e bench): LM-head log-probs + GRPO/PPO loss + backward, fused (rlspec) vs materialized logits
vs Liger's chunked GRPO loss (when liger-kernel is installed), with the machine's matmul limit measured in the same
run (the three N×V×H matmuls any exact method needs: logits, ∂hidden, ∂weight).

Each group is one size; pytest-benchmark's table gives the ratios. Peak memory of each variant is measured in a
fresh subprocess (peak RSS above the inputs' own) and stored in ``extra_info`` — measurements, not assertions.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.bench

SIZES = [(1024, 512, 32768), (2048, 512, 65536)]  # (B·T tokens, H, V)


def make(N: int, H: int, V: int):
    g = torch.Generator().manual_seed(0)
    B = 8
    hidden = torch.randn(B, N // B, H, generator=g)
    W = torch.randn(V, H, generator=g) * 0.02
    ids = torch.randint(0, V, (B, N // B), generator=g)
    mask = torch.ones(B, N // B, dtype=torch.bool)
    old = -torch.rand(B, N // B, generator=g) * 3
    adv = torch.randn(B, 1, generator=g).expand(B, N // B).contiguous()
    return hidden, W, ids, mask, old, adv


def step_fused(hidden, W, ids, mask, old, adv):
    from rlspec.optimized.lmhead import fused_policy_loss

    h, w = hidden.clone().requires_grad_(True), W.clone().requires_grad_(True)
    loss = fused_policy_loss("ppo", h, w, ids, mask, old_logp=old, adv=adv)
    loss.backward()
    return float(loss.detach()) + float(w.grad.abs().sum())


def step_materialized(hidden, W, ids, mask, old, adv):
    from rlspec import optimized

    h, w = hidden.clone().requires_grad_(True), W.clone().requires_grad_(True)
    lp = torch.log_softmax(h @ w.T, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    loss = optimized.get("ppo")(logp=lp, old_logp=old, adv=adv, mask=mask)
    loss.backward()
    return float(loss.detach()) + float(w.grad.abs().sum())


def step_liger(hidden, W, ids, mask, old, adv):
    from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

    h, w = hidden.clone().requires_grad_(True), W.clone().requires_grad_(True)
    loss_fn = LigerFusedLinearGRPOLoss(beta=0.0, compiled=False, use_ref_model=False, loss_type="bnpo")
    out = loss_fn(h, w, ids, mask.long(), adv[:, 0], old_per_token_logps=old)
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    return float(loss.detach()) + float(w.grad.abs().sum())


def step_limit(hidden, W, ids, mask, old, adv):
    h = hidden.reshape(-1, hidden.shape[-1])
    z = h @ W.T
    return float((z @ W).sum() + (z.T @ h).sum())


VARIANTS = {"limit": step_limit, "materialized": step_materialized, "fused": step_fused, "liger": step_liger}


def peak_rss_mb(variant: str, size: tuple[int, int, int]) -> float | None:
    """Peak RSS (MB) of one step of ``variant`` above the process's peak after building the inputs (the inputs and
    the weight's gradient, V×H, are the same for every variant; the limit variant holds its N×V logits)."""
    code = f"""
import resource, torch, json
from tests.benchmarks.test_bench_lmhead import make, VARIANTS
torch.set_num_threads(2)
x = make(*{size!r})
torch.ones(64, 64) @ torch.ones(64, 64)  # load BLAS before the baseline (no large allocation)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
VARIANTS[{variant!r}](*x)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None


@pytest.mark.parametrize("size", SIZES, ids=[f"N{n}-H{h}-V{v}" for n, h, v in SIZES])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lmhead_loss_and_backward(benchmark, size, variant):
    if variant == "liger":
        pytest.importorskip("liger_kernel")
    torch.set_num_threads(2)
    x = make(*size)
    benchmark.group = f"lmhead N={size[0]} H={size[1]} V={size[2]}"
    benchmark.extra_info["peak_rss_mb_above_inputs"] = peak_rss_mb(variant, size)
    benchmark.extra_info["gflop_of_three_matmuls"] = 6 * size[0] * size[1] * size[2] / 1e9
    result = benchmark.pedantic(VARIANTS[variant], args=x, rounds=3, warmup_rounds=1)
    assert math.isfinite(result)  # the step ran to a finite loss and weight gradient

"""Global normalizers across gradient accumulation and data parallelism (rlspec.optimized.distributed).

One full batch, cut into uneven shards (different numbers of rows, tokens and padded lengths; groups
kept whole): the shard losses computed with the step's global normalizer must sum to the
single-process full-batch loss, and their gradients w.r.t. logp and w.r.t. an LM head's weight must
equal the full-batch gradients to float64 rounding, for every aggregation mode. The data-parallel
case runs 2 gloo processes (torch.multiprocessing spawn), one of them with 2 micro-batches.
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import pytest
import torch

from rlspec import optimized
from rlspec.optimized import distributed as rdist
from rlspec.reference import aggregation as ref_aggregation
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gspo import GSPOConfig
from rlspec.reference.ppo import PPOConfig

TOL = dict(rtol=1e-12, atol=1e-15)
D, V = 6, 11  # hidden size and vocabulary of the toy LM head

# (agg, seq_denominator, const): every mode, both seq denominators, Dr. GRPO's C defaulted and fixed
MODES = [("token-mean", None, None), ("seq-mean-token-mean", None, None), ("seq-mean-token-mean", "all", None),
         ("seq-mean-token-sum", None, None), ("seq-mean-token-sum-norm", None, None),
         ("seq-mean-token-sum-norm", "nonempty", 5.0), ("group-token-mean", None, None)]
LOSSES = [("ppo", PPOConfig, dict(eps_low=0.1, eps_high=0.15)), ("gspo", GSPOConfig, dict(eps_low=0.05, eps_high=0.05))]

# Rows of the full batch: response length and prompt id (sparse and negative ids; group 4 has no valid token).
LENGTHS = [5, 0, 3, 7, 2, 4, 6, 1, 0, 0]
GROUPS = [10, 10, -3, -3, -3, 7, 7, 7, 4, 4]
LOSS_KEYS = ("old_logp", "adv", "mask", "group")
SHARDS = {0: [slice(0, 2), slice(2, 5)], 1: [slice(5, 10)]}  # rank -> its micro-batches (row ranges)


def full_batch(seed: int = 0) -> dict:
    """The full batch: hidden states and sampled tokens for the LM head, old_logp, adv (NaN padding)."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(LENGTHS), max(LENGTHS)
    mask = torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]
    hidden = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, V, (B, T), generator=g)
    head = torch.nn.Linear(D, V, dtype=torch.float64)
    torch.nn.init.normal_(head.weight, std=0.5, generator=g)  # every rank builds the same batch and head
    torch.nn.init.normal_(head.bias, std=0.5, generator=g)
    with torch.no_grad():
        logp0 = lm_logp(head, hidden, tokens)
    old = logp0 + 0.15 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.where(mask, torch.randn(B, T, generator=g, dtype=torch.float64), torch.tensor(float("nan")))
    return dict(mask=mask, hidden=hidden, tokens=tokens, old_logp=torch.where(mask, old, torch.tensor(float("nan"))),
                adv=adv, group=torch.tensor(GROUPS), head_state={k: v.clone() for k, v in head.state_dict().items()},
                logp=logp0)


def lm_logp(head, hidden, tokens) -> torch.Tensor:
    return torch.log_softmax(head(hidden), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def shard(batch: dict, rows: slice) -> dict:
    """Rows ``rows`` of the batch, trimmed to their own longest row (so shards differ in padded length)."""
    T = max(1, max(LENGTHS[rows]))
    return {k: (v[rows, :T] if v.ndim >= 2 else v[rows]) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def make_head(batch: dict) -> torch.nn.Linear:
    head = torch.nn.Linear(D, V, dtype=torch.float64)
    head.load_state_dict(batch["head_state"])
    return head


def config(cls, kw, agg, seq_den, const):
    return cls(agg=agg, seq_denominator=seq_den, const=const, **kw)


def reference_step(batch: dict, name: str, cfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Single process, full batch, normalizer None: (loss, dloss/dlogp, dloss/dW of the head)."""
    head = make_head(batch)
    logp = lm_logp(head, batch["hidden"], batch["tokens"])
    logp.retain_grad()
    loss = optimized.get(name)(logp=logp, old_logp=batch["old_logp"], adv=batch["adv"], mask=batch["mask"],
                               group=batch["group"], config=cfg)
    loss.backward()
    return loss.detach(), logp.grad, head.weight.grad


def check_shard_grad(full_grad: torch.Tensor, rows: slice, got: torch.Tensor) -> None:
    T = got.shape[1]
    torch.testing.assert_close(got, full_grad[rows, :T], **TOL)
    assert not full_grad[rows, T:].any()  # beyond the shard's padding the full gradient is 0 too


def micro_batches(batch: dict, slices: list[slice]) -> list[dict]:
    return [dict(old_logp=s["old_logp"], adv=s["adv"], mask=s["mask"], group=s["group"], hidden=s["hidden"],
                 tokens=s["tokens"]) for s in (shard(batch, r) for r in slices)]


def _worker(rank: int, world: int, init_file: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        batch = full_batch()
        slices = SHARDS[rank]
        mbs = micro_batches(batch, slices)
        masks = [mb["mask"] for mb in mbs]
        ddp = DDP(make_head(batch))
        for agg, seq_den, const in MODES:
            # the helper's count equals the reference's on the concatenated batch
            n = rdist.global_normalizer(masks, agg, group=[mb["group"] for mb in mbs], seq_denominator=seq_den)
            want = ref_aggregation.global_normalizer(batch["mask"].numpy(), agg, group=np.array(GROUPS),
                                                     seq_denominator=seq_den)
            assert n == want, (agg, seq_den, n, want)
            for name, cls, kw in LOSSES:
                cfg = config(cls, kw, agg, seq_den, const)
                full_loss, full_dlogp, full_dW = reference_step(batch, name, cfg)
                step = rdist.step_config(cfg, masks, group=[mb["group"] for mb in mbs] if agg == "group-token-mean" else None)
                assert step.const == (const if const is not None else
                                      (float(max(LENGTHS)) if agg == "seq-mean-token-sum-norm" else None))
                # 1) gradient w.r.t. logp: each shard's gradient is its rows of the full-batch gradient
                local = torch.zeros((), dtype=torch.float64)
                for rows, mb in zip(slices, mbs):
                    logp = shard(batch, rows)["logp"].clone().requires_grad_(True)
                    loss = optimized.get(name)(logp=logp, old_logp=mb["old_logp"], adv=mb["adv"], mask=mb["mask"],
                                               group=mb["group"], config=step)
                    loss.backward()
                    check_shard_grad(full_dlogp, rows, logp.grad)
                    local = local + loss.detach()
                dist.all_reduce(local)
                torch.testing.assert_close(local, full_loss, **TOL)
                # 2) DDP around the LM head, accumulating over this rank's micro-batches
                ddp.zero_grad(set_to_none=True)
                total = rdist.accumulate(optimized.get(name), mbs, cfg, model=ddp, forward=lambda mb: dict(
                    logp=lm_logp(ddp, mb["hidden"], mb["tokens"]), **{k: mb[k] for k in LOSS_KEYS}))
                dist.all_reduce(total)
                torch.testing.assert_close(total, full_loss, **TOL)
                torch.testing.assert_close(ddp.module.weight.grad, full_dW, **TOL)
        # a group with valid tokens on both ranks is refused, on every rank
        bad = [mb["group"].clone() for mb in mbs]
        bad[0][0] = 999  # row 0 of rank 0 and row 0 of rank 1 both have valid tokens
        with pytest.raises(RLSpecValueError, match="more than one shard"):
            rdist.global_normalizer(masks, "group-token-mean", group=bad)
        dist.barrier()  # neither rank tears gloo down while the other still talks to it (SIGABRT otherwise)
    finally:
        dist.destroy_process_group()


def test_data_parallel_gloo_two_ranks_uneven(tmp_path):
    """Two gloo ranks with uneven shares: each rank's worker asserts sharded loss and gradients equal the
    full-batch ones (any failed assertion in a worker makes mp.spawn raise, failing this test)."""
    import torch.multiprocessing as mp

    init_file = os.path.join(tmp_path, "dist_init")
    mp.spawn(_worker, args=(2, init_file), nprocs=2, join=True)


@pytest.mark.parametrize("agg,seq_den,const", MODES)
@pytest.mark.parametrize("name,cls,kw", LOSSES, ids=[x[0] for x in LOSSES])
def test_gradient_accumulation_uneven_micro_batches(name, cls, kw, agg, seq_den, const):
    batch = full_batch(seed=1)
    cfg = config(cls, kw, agg, seq_den, const)
    full_loss, full_dlogp, full_dW = reference_step(batch, name, cfg)
    slices = [slice(0, 2), slice(2, 5), slice(5, 10)]
    mbs = micro_batches(batch, slices)
    head = make_head(batch)
    logps = []

    def forward(mb):
        logp = lm_logp(head, mb["hidden"], mb["tokens"])
        logp.retain_grad()
        logps.append(logp)
        return dict(logp=logp, **{k: mb[k] for k in LOSS_KEYS})

    total = rdist.accumulate(optimized.get(name), mbs, cfg, forward=forward)
    torch.testing.assert_close(total, full_loss, **TOL)
    torch.testing.assert_close(head.weight.grad, full_dW, **TOL)
    for rows, logp in zip(slices, logps):
        check_shard_grad(full_dlogp, rows, logp.grad)


def test_normalizer_without_process_group_matches_reference():
    batch = full_batch()
    masks = [shard(batch, r)["mask"] for r in (slice(0, 5), slice(5, 10))]
    groups = [shard(batch, r)["group"] for r in (slice(0, 5), slice(5, 10))]
    assert rdist.world_size() == 1 and rdist.ddp_loss_scale() == 1.0
    for agg, seq_den, _ in MODES:
        want = ref_aggregation.global_normalizer(batch["mask"].numpy(), agg, group=np.array(GROUPS),
                                                 seq_denominator=seq_den)
        assert rdist.global_normalizer(masks, agg, group=groups, seq_denominator=seq_den) == want
        assert rdist.global_normalizer(batch["mask"], agg, group=batch["group"], seq_denominator=seq_den) == want


def test_group_split_across_micro_batches_is_refused():
    batch = full_batch()
    masks = [shard(batch, r)["mask"] for r in (slice(0, 3), slice(3, 10))]  # group -3 has tokens in both
    groups = [shard(batch, r)["group"] for r in (slice(0, 3), slice(3, 10))]
    with pytest.raises(RLSpecValueError, match=r"group id\(s\) \[-3\]"):
        rdist.global_normalizer(masks, "group-token-mean", group=groups)
    with pytest.raises(RLSpecValueError, match="group"):
        rdist.global_normalizer(masks, "group-token-mean")
    # a split group whose rows on one side are all empty is fine: they weigh nothing
    ok = [shard(batch, r) for r in (slice(0, 9), slice(9, 10))]  # group 4 (no valid token) split
    assert rdist.global_normalizer([s["mask"] for s in ok], "group-token-mean", group=[s["group"] for s in ok]) == 3.0


def test_empty_step_keeps_normalizer_none():
    mask = torch.zeros(3, 4, dtype=torch.bool)
    assert rdist.global_normalizer([mask, mask[:1]], "token-mean") == 0.0
    cfg = rdist.step_config(PPOConfig(agg="token-mean"), [mask])
    assert cfg.normalizer is None
    logp = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    loss = optimized.get("ppo")(logp=logp, old_logp=torch.zeros(3, 4, dtype=torch.float64),
                                adv=torch.ones(3, 4, dtype=torch.float64), mask=mask, config=cfg)
    loss.backward()
    assert loss.item() == 0.0 and not logp.grad.any()

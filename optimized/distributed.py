"""Exact aggregation across gradient accumulation and data parallelism (torch.distributed).

Every aggregation mode is linear in the per-token loss, ``loss = Σ c ⊙ ℓ`` with coefficients that
depend only on the mask (:mod:`rlspec.reference.aggregation`). The only thing a shard (one
micro-batch on one rank) cannot see is the full-batch denominator. Compute it once per optimizer
step with :func:`global_normalizer` (or :func:`step_config`, which also fixes Dr. GRPO's constant),
pass it to every shard as ``config.normalizer``, and the shard losses sum to the full-batch loss,
their gradients to the full-batch gradient, to float rounding.

Intended use (each rank holds its micro-batches of the step: dicts with ``mask``, ``old_logp``, ``adv``,
``group`` and the model's inputs)::

    from rlspec import optimized
    from rlspec.optimized import distributed as rdist

    loss_fn = optimized.get("ppo")
    cfg = rdist.step_config(PPOConfig(agg="token-mean"), [mb["mask"] for mb in micro_batches])
    scale = rdist.ddp_loss_scale()                 # world size: DDP/FSDP *average* gradients
    for i, mb in enumerate(micro_batches):
        sync = i == len(micro_batches) - 1
        with (contextlib.nullcontext() if sync else ddp_model.no_sync()):
            logp = compute_logp(ddp_model, mb)     # forward inside no_sync as DDP requires
            loss = loss_fn(logp=logp, old_logp=mb["old_logp"], adv=mb["adv"], mask=mb["mask"], config=cfg)
            (loss * scale).backward()
    optimizer.step()

or, the same loop in one call, :func:`accumulate`. Why ``scale``: with the global normalizer, rank
k's (accumulated) gradient g_k is its share of the full-batch gradient, Σ_k g_k = g. DDP's
all-reduce (and FSDP's reduce-scatter) *averages*: it leaves (1/W) Σ_k g_k = g / W on every rank. So
each rank multiplies its loss by W = world size before ``backward`` (equivalently: divide the
normalizer by W). With a hand-written all-reduce SUM, or without data parallelism, the scale is 1.
Gradient accumulation needs no scale: successive ``backward`` calls add.

Collectives run on CPU tensors with gloo and on the current CUDA device with NCCL (the masks' device
when they are on CUDA). Exactness and its conditions (float64 agrees to rounding; tests/test_distributed.py
checks all five modes on 2 gloo ranks and under accumulation):

* rows are never split across shards (a row's tokens stay in one micro-batch on one rank), which
  also keeps sequence-level losses (GSPO's sequence ratio, GMPO's geometric mean) exact;
* ``group-token-mean``: a group's valid tokens must all sit in one shard, because the mode divides by
  the group's own token count, which a shard only knows for its own rows (the loss API takes one
  scalar normalizer, not per-group counts). :func:`global_normalizer` all-gathers the ids of the groups
  present in each shard (groups with ≥ 1 valid token), counts the distinct ones (P), and raises if
  any group has valid tokens in two shards (two ranks, or two micro-batches of one rank). Rows of a
  group with no valid token may sit anywhere: they weigh nothing;
* only the aggregation denominator is made global: a loss whose per-token values depend on other
  batch-wide statistics (a top-k over the whole batch such as KL-Cov's, batch-level advantage
  normalization) needs those computed over the full batch too;
* ``seq-mean-token-sum-norm`` divides by B·C with C = ``const``, by default the padded length T of
  the batch a loss sees. Shards padded to different lengths would each use their own T, so
  :func:`step_config` fills ``const`` with the all-reduced maximum padded length (the full batch's T
  when it is padded to its longest row) unless the config already fixes it.

A step whose global batch has no valid token (normalizer 0) keeps ``normalizer=None`` in
:func:`step_config`: every shard's loss is then 0 with a zero gradient, which is also the full batch's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist

from rlspec.optimized import common
from rlspec.reference import aggregation as ref_aggregation
from rlspec.reference._validate import choice, fail

__all__ = ["global_normalizer", "global_max_length", "step_config", "ddp_loss_scale", "world_size", "accumulate"]


_LOCAL = object()  # a "process group" of this process alone: no collective


def _active(process_group) -> bool:
    return process_group is not _LOCAL and dist.is_available() and dist.is_initialized()


def world_size(process_group=None) -> int:
    """Number of ranks in ``process_group`` (the default group when None); 1 without torch.distributed."""
    return dist.get_world_size(process_group) if _active(process_group) else 1


def ddp_loss_scale(process_group=None) -> float:
    """The factor to multiply each rank's loss by when DDP/FSDP average gradients over ranks: W.

    Σ_k g_k is the full-batch gradient; averaging leaves Σ_k g_k / W, so each loss is scaled by W.
    Use 1 instead if the gradients are summed (a hand-written all-reduce SUM)."""
    return float(world_size(process_group))


def _comm_device(process_group, like: torch.device) -> torch.device:
    """Where to put a tensor for a collective: NCCL needs CUDA, gloo takes CPU (and CUDA)."""
    if like.type == "cuda":
        return like
    backend = str(dist.get_backend(process_group)).lower()
    if "nccl" in backend and "gloo" not in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _as_list(x, name: str) -> list:
    if isinstance(x, torch.Tensor) or x is None:
        return [x]
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return list(x)
    raise fail(name, type(x).__name__, "a torch.Tensor or a list of them (one per micro-batch)")


def _masks(mask) -> list[torch.Tensor]:
    masks = [common.check_mask(m) for m in _as_list(mask, "mask")]
    for i, m in enumerate(masks):
        if m.ndim != 2:
            raise fail(f"mask[{i}]" if len(masks) > 1 else "mask", f"shape {tuple(m.shape)}", "shape (B, T)")
    return masks


def _all_reduce(value: torch.Tensor, op, process_group) -> torch.Tensor:
    if _active(process_group):
        t = value.to(_comm_device(process_group, value.device)).clone()
        dist.all_reduce(t, op=op, group=process_group)
        return t.to(value.device)
    return value


def _present_groups(masks: list[torch.Tensor], group) -> torch.Tensor:
    """Concatenation over micro-batches of each one's distinct group ids with ≥ 1 valid token (int64)."""
    groups = _as_list(group, "group")
    if group is None or len(groups) != len(masks) or any(g is None for g in groups):
        raise fail("group", "None" if group is None else f"{len(groups)} id tensor(s) for {len(masks)} mask(s)",
                   "prompt ids (B,) for agg='group-token-mean', one tensor per mask")
    out = []
    for m, g in zip(masks, groups):
        ids = common.group_ids(g, m.shape[0], device=m.device)
        out.append(torch.unique(ids[m.to(ids.device).any(dim=1)]))
    return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.int64)


def _all_gather_ids(ids: torch.Tensor, process_group) -> torch.Tensor:
    """The int64 vectors of every rank, concatenated (variable lengths: padded gather, then trimmed)."""
    if not _active(process_group):
        return ids
    dev = _comm_device(process_group, ids.device)
    W = dist.get_world_size(process_group)
    n = torch.tensor([ids.numel()], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(W)]
    dist.all_gather(sizes, n, group=process_group)
    sizes = [int(s.item()) for s in sizes]
    pad = torch.zeros(max(sizes), dtype=torch.int64, device=dev)
    pad[:ids.numel()] = ids.to(dev)
    bufs = [torch.zeros_like(pad) for _ in range(W)]
    dist.all_gather(bufs, pad, group=process_group)
    return torch.cat([b[:s] for b, s in zip(bufs, sizes)]).cpu()


def global_normalizer(mask, agg: str, *, group=None, seq_denominator: str | None = None,
                      process_group=None, local: bool = False) -> float:
    """The denominator of ``agg`` on the full step batch: every micro-batch of every rank.

    ``mask``: this rank's (B, T) mask, or a list of them (its micro-batches of one accumulation step);
    ``group``: the matching prompt ids (a tensor, or a list), required for ``group-token-mean``.
    Same definition as :func:`rlspec.reference.aggregation.global_normalizer` on the concatenated batch:
    token-mean: valid tokens; seq-mean-token-mean / seq-mean-token-sum: rows with ≥ 1 valid token (B′, or
    B with ``seq_denominator="all"``); seq-mean-token-sum-norm: rows B (B′ with "nonempty");
    group-token-mean: distinct groups with ≥ 1 valid token, where a group may not have valid tokens in
    two shards (raises RLSpecValueError on every rank if it does; see the module notes).

    Counts are summed (all-reduce SUM, int64) over ``process_group`` when torch.distributed is initialized
    (the default group when None); every rank must call this, in the same order. ``local=True``: this process's
    masks only, no collective (the chunks of one call, e.g. :mod:`rlspec.optimized.lmhead`'s single pass). Returns a float (may be
    0.0 when no shard has a valid token: then leave ``normalizer`` None, see :func:`step_config`).
    """
    choice(agg, "agg (aggregation mode)", ref_aggregation.MODES)
    masks = _masks(mask)
    dev = masks[0].device if masks else torch.device("cpu")
    if local:
        process_group = _LOCAL
    if agg == "group-token-mean":
        present = _present_groups(masks, group)
        ids = _all_gather_ids(present, process_group)
        uniq, counts = torch.unique(ids, return_counts=True)
        if bool((counts > 1).any()):
            split = [int(k) for k in uniq[counts > 1][:5]]
            raise fail("group", f"group id(s) {split} with valid tokens in more than one shard "
                       "(rank or micro-batch)",
                       "each group's valid tokens in a single shard for agg='group-token-mean' (its per-group "
                       "token denominator is local to the shard); keep a prompt's rollouts together")
        return float(uniq.numel())
    count_all = ref_aggregation._count_all(agg, seq_denominator)
    if agg == "token-mean":
        n = sum(int(m.sum()) for m in masks)
    elif count_all:
        n = sum(m.shape[0] for m in masks)
    else:
        n = sum(int(m.any(dim=1).sum()) for m in masks)
    total = _all_reduce(torch.tensor(n, dtype=torch.int64, device=dev), dist.ReduceOp.SUM, process_group)
    return float(int(total.item()))


def global_max_length(mask, *, process_group=None) -> int:
    """The largest padded length T over this rank's mask(s) and all ranks (all-reduce MAX)."""
    masks = _masks(mask)
    dev = masks[0].device if masks else torch.device("cpu")
    t = torch.tensor(max((m.shape[1] for m in masks), default=0), dtype=torch.int64, device=dev)
    return int(_all_reduce(t, dist.ReduceOp.MAX, process_group).item())


def step_config(config, mask, *, group=None, process_group=None):
    """``config`` (any policy-loss config, an :class:`AggregationOptions`) with the step's global normalizer.

    Computes :func:`global_normalizer` for ``config.agg`` / ``config.seq_denominator`` over ``mask`` (this
    rank's micro-batch masks) and all ranks, once per step, and for ``seq-mean-token-sum-norm`` without a
    ``const`` also fixes C to :func:`global_max_length` (so shards padded differently use the full batch's
    T). A normalizer already set on ``config`` is replaced; a zero count (no valid token anywhere) leaves
    it None, so every shard's loss and gradient are 0, as on the full batch. Collective: call on every rank.
    """
    agg = config.agg
    seq_den = getattr(config, "seq_denominator", None)
    n = global_normalizer(mask, agg, group=group, seq_denominator=seq_den, process_group=process_group)
    changes: dict[str, Any] = {"normalizer": n if n > 0 else None}
    if agg == "seq-mean-token-sum-norm" and config.const is None:
        changes["const"] = float(global_max_length(mask, process_group=process_group))
    return dataclasses.replace(config, **changes)


def accumulate(loss_fn: Callable[..., torch.Tensor], micro_batches: Iterable[Mapping[str, Any]], config, *,
               forward: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None, model=None,
               process_group=None, averaged: bool = True) -> torch.Tensor:
    """Run one accumulation step: ``backward`` on every micro-batch with the step's global normalizer.

    ``micro_batches``: this rank's micro-batches, dicts that hold ``mask`` (and ``group`` for group-token-mean).
    ``forward(mb)`` runs inside the micro-batch's DDP context and returns the keyword arguments of ``loss_fn``
    (a registered policy loss, ``rlspec.optimized.get(name)``), typically ``logp`` from the model plus
    ``mb``'s ``old_logp``, ``adv``, ``mask``; without ``forward`` the micro-batch itself is the arguments.
    ``model``: a DDP-wrapped module whose ``no_sync()`` skips the gradient all-reduce on all but the last
    micro-batch. ``averaged``: the gradient reduction averages over ranks (DDP, FSDP), so each loss is
    scaled by the world size (:func:`ddp_loss_scale`); False for a summing reduction.

    Afterwards the parameters' ``.grad`` hold the single-process full-batch gradient: on every rank once
    DDP (``model``) has averaged them, or directly in a single process. Returns this rank's summed,
    unscaled loss (detached); all-reduce SUM it for the full-batch loss. Collective: every rank calls it
    once per step.
    """
    mbs = list(micro_batches)
    cfg = step_config(config, [mb["mask"] for mb in mbs],
                      group=[mb.get("group") for mb in mbs] if config.agg == "group-token-mean" else None,
                      process_group=process_group)
    scale = ddp_loss_scale(process_group) if averaged else 1.0
    total = None
    for i, mb in enumerate(mbs):
        last = i == len(mbs) - 1
        ctx = model.no_sync() if (model is not None and not last and hasattr(model, "no_sync")) else contextlib.nullcontext()
        with ctx:
            kwargs = forward(mb) if forward is not None else mb
            loss = loss_fn(**kwargs, config=cfg)
            (loss * scale if scale != 1.0 else loss).backward()
        total = loss.detach() if total is None else total + loss.detach()
    return total if total is not None else torch.zeros(())

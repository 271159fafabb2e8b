"""Framework-agnostic machinery of the probes: batches, metamorphic checks, reference comparison, the runner.

A probe (:class:`Probe`) is one call pattern of one framework: a code path, a configuration (the framework's
defaults, or one combination of the knobs it accepts), an input class, or a pair of paths that should agree.
Its ``check`` returns a :class:`Verdict`:

* ``ok`` — what the user gets is what the framework documents (and, where it names a paper, what the
  reference computes);
* ``finding`` — it is not; ``severity`` says how bad (:data:`SEVERITIES`), ``summary`` says in one sentence
  what a user sees, ``reproduction`` is a standalone script (the framework, NumPy and torch only) that ends in
  an ``assert`` of the correct behaviour, so it fails on the version that has the finding;
* ``unsupported`` — the framework refuses the combination or input with an error a user can read;
* ``error`` — the probe itself broke (a bug here, never counted as a finding).

The checks below take ``loss_fn(batch) -> scalar tensor``: a closure that calls the framework the way its
trainer does, differentiable through ``batch["logp"]``. They compare the framework with itself under
transformations that must not change the result (padding width, row order, an uneven micro-batch split, the
dtype, finite differences of its own loss) and with the reference (:func:`compare_reference`). Nothing here
knows any framework's bugs: the per-framework modules enumerate what the framework accepts, and these checks
decide.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import dataclasses
import inspect
import itertools
import json
import math
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlspec.conformance import tolerances

RUNS = ("defaults", "combination", "input", "padding", "self")
SEVERITIES = ("no gradient", "wrong gradient", "wrong value", "crash", "NaN", "numerics within dtype")
STATUSES = ("ok", "finding", "unsupported", "error")
DEFAULT_TIMEOUT = 60.0


# --------------------------------------------------------------------------- records
@dataclass
class Verdict:
    """What a probe's check returns (see the module docstring for the statuses)."""

    status: str
    severity: str = ""
    summary: str = ""
    measured: dict[str, Any] = field(default_factory=dict)
    reproduction: str = ""
    key: str = ""  # groups probes that show the same finding (defaults to the summary)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: got {self.status!r}; expected one of {STATUSES}")
        if self.status == "finding" and self.severity not in SEVERITIES:
            raise ValueError(f"severity: got {self.severity!r}; expected one of {SEVERITIES} for a finding")


def ok(summary: str = "", **measured: Any) -> Verdict:
    return Verdict("ok", summary=summary, measured=measured)


def finding(severity: str, summary: str, reproduction: str = "", key: str = "", **measured: Any) -> Verdict:
    return Verdict("finding", severity=severity, summary=summary, reproduction=reproduction, key=key,
                   measured=measured)


def unsupported(reason: str) -> Verdict:
    return Verdict("unsupported", summary=reason)


@dataclass
class Probe:
    """One call pattern of one framework (see the module docstring)."""

    framework: str
    run: str
    path: str
    case: str
    check: Callable[[], Verdict]
    upstream: str = ""

    def __post_init__(self) -> None:
        if self.run not in RUNS:
            raise ValueError(f"run: got {self.run!r}; expected one of {RUNS}")


@dataclass
class Outcome:
    """A probe's verdict with where it came from (one row of ``probes.json``)."""

    framework: str
    version: str
    run: str
    path: str
    case: str
    status: str
    severity: str
    summary: str
    measured: dict[str, Any]
    reproduction: str
    upstream: str
    key: str
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- knob spaces
def literal_values(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal[...]`` annotation (also inside ``Optional``/``Union``), else None."""
    if isinstance(annotation, str):
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return tuple(typing.get_args(annotation))
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        vals: list[Any] = []
        for a in typing.get_args(annotation):
            if a is type(None):
                vals.append(None)
                continue
            sub = literal_values(a)
            if sub is None:
                return None
            vals.extend(sub)
        return tuple(vals)
    return None


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a dataclass (fields with a default or default_factory; others omitted)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def knob_space(cls: type, *, extra: Mapping[str, Sequence[Any]] | None = None,
               include: Iterable[str] | None = None) -> dict[str, tuple[Any, ...]]:
    """Values to try for each knob of a config dataclass: every ``Literal`` value, both booleans, and the
    default; ``extra`` adds values for fields whose accepted set is only in the source (string options parsed
    from if-chains, numeric values worth trying); ``include`` restricts to these fields."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    defaults = dataclass_defaults(cls) if dataclasses.is_dataclass(cls) else {}
    wanted = set(include) if include is not None else None
    space: dict[str, tuple[Any, ...]] = {}
    for name, ann in hints.items():
        if wanted is not None and name not in wanted:
            continue
        vals: list[Any] = []
        lit = literal_values(ann)
        if lit is not None:
            vals.extend(lit)
        elif ann is bool or isinstance(defaults.get(name), bool):
            vals.extend([False, True])
        if name in defaults and defaults[name] not in vals:
            vals.insert(0, defaults[name])
        if extra and name in extra:
            vals.extend(v for v in extra[name] if v not in vals)
        if len(vals) > 1:
            space[name] = tuple(vals)
    for name, vals in (extra or {}).items():
        if name not in space and (wanted is None or name in wanted):
            space[name] = tuple(vals)
    return space


def combos(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a knob space (the Cartesian product), in a stable order."""
    names = sorted(space)
    return [dict(zip(names, vals)) for vals in itertools.product(*(space[n] for n in names))]


def describe(config: Mapping[str, Any]) -> str:
    """``k=v, ...`` for a case label (sorted, strings quoted)."""
    return ", ".join(f"{k}={v!r}" for k, v in sorted(config.items())) or "defaults"


# --------------------------------------------------------------------------- batches
FLOAT_FIELDS = ("logp", "old_logp", "ref_logp", "adv", "values", "old_values", "returns", "token_rewards")


def _torch():
    import torch

    return torch


def torch_batch(rng: np.random.Generator, B: int = 6, T: int = 7, *, dtype: Any = None, padding: str = "garbage",
                lengths: Sequence[int] | None = None, group_size: int | None = 3, groups: Sequence[int] | None = None,
                log_ratio_scale: float = 0.3, holes: bool = False) -> dict[str, Any]:
    """A batch as a trainer has it, as torch tensors (float64 unless ``dtype``).

    Keys: ``logp`` (B, T) leaf with ``requires_grad``, ``old_logp``, ``ref_logp``, ``adv`` (B, T: the row's
    outcome advantage broadcast over its tokens), ``adv_seq`` (B,), ``rewards`` (B,), ``token_rewards``
    (B, T: the reward on the last valid token), ``values``/``old_values``/``returns`` (B, T), ``mask`` (B, T)
    bool, ``group`` (B,) int64, ``lengths`` (B,). Right padding (``lengths``: valid tokens per row, drawn in
    [1, T] by default, different rows different), ``holes`` punches interior holes into the mask.
    ``padding``: "garbage" (finite non-zero values of model-output magnitude at masked positions: what a
    trainer's tensors hold), "zeros", or "nan" (NaN in float fields at masked positions).
    """
    torch = _torch()
    dtype = dtype or torch.float64
    if lengths is None:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T  # at least one full row, so padding-width changes are visible
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"lengths: expected {B} ints in [0, {T}], got {lengths}")
    mask = np.arange(T)[None, :] < lengths[:, None]
    if holes:
        for b in range(B):
            if lengths[b] >= 3:
                mask[b, rng.integers(1, lengths[b] - 1)] = False
    if groups is None:
        gs = group_size or B
        groups = np.arange(B) // gs
    group = np.asarray(groups, dtype=np.int64)
    old = -rng.uniform(0.05, 3.0, size=(B, T))
    logp = old + rng.normal(0.0, log_ratio_scale, size=(B, T))
    ref = old + rng.normal(0.0, log_ratio_scale, size=(B, T))
    rewards = rng.integers(0, 2, size=B).astype(np.float64) + rng.normal(0, 0.1, size=B)
    adv_seq = np.zeros(B)
    for g in np.unique(group):
        sel = group == g
        r = rewards[sel]
        adv_seq[sel] = (r - r.mean()) / (r.std(ddof=1) + 1e-6) if sel.sum() > 1 else 0.0
    adv = np.repeat(adv_seq[:, None], T, axis=1)
    values = rng.normal(0, 1, size=(B, T))
    old_values = values + rng.normal(0, 0.2, size=(B, T))
    returns = rng.normal(0, 1, size=(B, T))
    token_rewards = np.zeros((B, T))
    for b in range(B):
        valid = np.flatnonzero(mask[b])
        if valid.size:
            token_rewards[b, valid[-1]] = rewards[b]
    fields = {"logp": logp, "old_logp": old, "ref_logp": ref, "adv": adv, "values": values,
              "old_values": old_values, "returns": returns, "token_rewards": token_rewards}
    for k, v in fields.items():
        if padding == "garbage":
            g = rng.uniform(-8.0, 8.0, size=(B, T)) if k not in ("logp", "old_logp", "ref_logp") \
                else -rng.uniform(0.0, 12.0, size=(B, T))
            v[~mask] = g[~mask]
        elif padding == "zeros":
            v[~mask] = 0.0
        elif padding == "nan":
            v[~mask] = np.nan
        else:
            raise ValueError(f"padding: got {padding!r}; expected 'garbage', 'zeros' or 'nan'")
    out: dict[str, Any] = {k: torch.tensor(v, dtype=dtype) for k, v in fields.items()}
    out["logp"].requires_grad_(True)
    out.update(adv_seq=torch.tensor(adv_seq, dtype=dtype), rewards=torch.tensor(rewards, dtype=dtype),
               mask=torch.tensor(mask), group=torch.tensor(group), lengths=torch.tensor(lengths))
    return out


def clone(batch: Mapping[str, Any], dtype: Any = None, **override: Any) -> dict[str, Any]:
    """A deep copy of a batch (float tensors cast to ``dtype`` if given), ``logp`` a fresh leaf; overrides set."""
    torch = _torch()
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().clone()
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
        out[k] = v
    out.update(override)
    if isinstance(out.get("logp"), torch.Tensor):
        out["logp"] = out["logp"].detach().clone().requires_grad_(True)
    return out


def rows(batch: Mapping[str, Any], index: Sequence[int]) -> dict[str, Any]:
    """The sub-batch of the given rows (every tensor whose first dimension is B)."""
    torch = _torch()
    B = batch["mask"].shape[0]
    idx = torch.as_tensor(list(index), dtype=torch.long)
    out = {k: (v.detach()[idx].clone() if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == B else v)
           for k, v in batch.items()}
    return clone(out)


def pad_columns(batch: Mapping[str, Any], extra: int, rng: np.random.Generator) -> dict[str, Any]:
    """The batch with ``extra`` more masked columns on the right, filled with finite garbage."""
    torch = _torch()
    B, T = batch["mask"].shape
    out = clone(batch)
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() == 2 and tuple(v.shape) == (B, T):
            if v.dtype == torch.bool:
                fill = torch.zeros(B, extra, dtype=torch.bool)
            elif v.is_floating_point():
                fill = torch.tensor(-rng.uniform(0.0, 12.0, size=(B, extra)), dtype=v.dtype)
            else:
                fill = torch.zeros(B, extra, dtype=v.dtype)
            out[k] = torch.cat([v.detach(), fill], dim=1)
    out["logp"] = out["logp"].detach().clone().requires_grad_(True)
    return out


def to_numpy(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """NumPy float64 copies of the batch's tensors (bool / int kept)."""
    torch = _torch()
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.detach()
            out[k] = v.double().numpy() if v.is_floating_point() else v.numpy()
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- evaluation
def evaluate(loss_fn: Callable[[dict[str, Any]], Any], batch: Mapping[str, Any], wrt: str = "logp"
             ) -> tuple[float, np.ndarray | None]:
    """(loss, d loss / d batch[wrt]) of the framework's loss on a fresh copy of the batch.

    The gradient is None when the loss does not depend on ``batch[wrt]`` in autograd (no ``grad_fn``, or the
    graph does not reach it); it is the zero array when autograd reaches it with zeros.
    """
    torch = _torch()
    b = clone(batch)
    x = b[wrt]
    if not x.requires_grad:
        x.requires_grad_(True)
    loss = loss_fn(b)
    if not isinstance(loss, torch.Tensor):
        return float(loss), None
    value = float(loss.detach().double())
    if not loss.requires_grad:
        return value, None
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    return value, (None if g is None else g.detach().double().numpy())


def _valid(batch: Mapping[str, Any]) -> np.ndarray:
    return batch["mask"].detach().numpy().astype(bool)


_INTERNAL = contextvars.ContextVar("rlspec_probe_internal_precision", default="float64")


@contextlib.contextmanager
def internal_precision(dtype: str):
    """Within the block, comparisons of float64 runs are held to ``dtype``'s tolerance: for a framework that
    documents lower-precision internals (e.g. statistics kept in float32 whatever the input dtype)."""
    token = _INTERNAL.set(dtype)
    try:
        yield
    finally:
        _INTERNAL.reset(token)


def compared_as(dtype: str) -> str:
    """The tolerance class a comparison in ``dtype`` is held to (float64: the internal precision in force)."""
    return _INTERNAL.get() if dtype == "float64" else dtype


def _cmp(ref: Any, got: Any, dtype: str, n: int) -> tuple[bool, float]:
    okv, err, _ = tolerances.close(np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64),
                                   compared_as(dtype), n)
    return okv, err


def check_finite(loss_fn: Callable, batch: Mapping[str, Any], *, what: str = "") -> Verdict:
    """The loss and its gradient are finite on an input the framework accepts (and the gradient is finite at
    masked positions too: a NaN there poisons the backward pass of a whole model)."""
    try:
        value, grad = evaluate(loss_fn, batch)
    except (ValueError, AssertionError, TypeError, NotImplementedError) as e:
        return unsupported(f"refused with {type(e).__name__}: {str(e)[:160]}")
    except Exception as e:  # noqa: BLE001 - any other exception on an accepted input is a crash
        return finding("crash", f"{what or 'the call'} raises {type(e).__name__}: {str(e)[:160]}",
                       key=f"crash:{type(e).__name__}")
    if not math.isfinite(value):
        return finding("NaN", f"{what or 'the loss'} is {value} on this input", key="nonfinite-loss", loss=value)
    if grad is not None and not np.isfinite(grad).all():
        where = "at masked positions" if np.isfinite(grad[_valid(batch)]).all() else "at valid positions"
        return finding("NaN", f"{what or 'the gradient'} has NaN/inf {where}", key=f"nonfinite-grad-{where}")
    return ok(loss=value)


def check_gradient(loss_fn: Callable, batch: Mapping[str, Any], *, eps: float = 1e-6, rtol: float = 1e-4,
                   surrogate: bool = False) -> Verdict:
    """Autograd's d loss / d logp equals central finite differences of the same loss value (float64).

    Catches a loss with no gradient (detached, or computed under no_grad), a term whose gradient is dropped, and
    an ``inf·0`` NaN. ``surrogate=True`` (a stop-gradient surrogate whose value is not the objective, e.g. the
    k3 KL estimator written as ``ratio − sg(ratio)``) skips the comparison: use :func:`compare_reference`.
    """
    if surrogate:
        return ok("surrogate loss: gradient checked against the reference instead")
    value, grad = evaluate(loss_fn, batch)
    base = clone(batch)
    valid = _valid(batch)
    x0 = base["logp"].detach().double().numpy()
    fd = np.zeros_like(x0)
    torch = _torch()
    for b, t in zip(*np.nonzero(valid)):
        vals = []
        for s in (1.0, -1.0):
            x = x0.copy()
            x[b, t] += s * eps
            bb = clone(base, logp=torch.tensor(x, dtype=base["logp"].dtype))
            with torch.no_grad():
                vals.append(float(loss_fn(bb)))
        fd[b, t] = (vals[0] - vals[1]) / (2 * eps)
    scale = max(float(np.abs(fd[valid]).max(initial=0.0)), 1e-8)
    if grad is None or (not np.any(grad[valid]) and np.any(np.abs(fd[valid]) > 1e-7)):
        if np.abs(fd[valid]).max(initial=0.0) > 1e-7:
            return finding("no gradient", "the loss changes with the log-probs but autograd gives "
                           + ("no gradient" if grad is None else "a zero gradient"), key="no-gradient",
                           fd_max=float(np.abs(fd[valid]).max()))
        return ok("loss and gradient are both zero here")
    if not np.isfinite(grad).all():
        return finding("NaN", "the gradient has NaN/inf entries", key="nonfinite-grad")
    err = float(np.abs(grad[valid] - fd[valid]).max(initial=0.0))
    if err > rtol * scale + 1e-7:
        return finding("wrong gradient", f"autograd's gradient differs from finite differences of the loss by "
                       f"{err:.3g} (largest |gradient| {scale:.3g})", key="grad-vs-fd", max_abs_err=err)
    return ok(max_abs_err=err)


def check_padding_width(loss_fn: Callable, batch: Mapping[str, Any], *, extra: int = 3, seed: int = 0) -> Verdict:
    """Appending ``extra`` masked columns (finite garbage) changes neither the loss nor the valid gradient."""
    v0, g0 = evaluate(loss_fn, batch)
    v1, g1 = evaluate(loss_fn, pad_columns(batch, extra, np.random.default_rng(seed)))
    n = int(_valid(batch).sum())
    okv, err = _cmp(v0, v1, "float64", n)
    if not okv:
        return finding("wrong value", f"the loss changes from {v0:.6g} to {v1:.6g} when {extra} padded columns "
                       "are appended", key="padding-width-value", max_abs_err=err)
    if g0 is not None and g1 is not None:
        T = g0.shape[1]
        okg, errg = _cmp(g0[_valid(batch)], g1[:, :T][_valid(batch)], "float64", n)
        if not okg:
            return finding("wrong gradient", "the gradient changes when padded columns are appended",
                           key="padding-width-grad", max_abs_err=errg)
    return ok(max_abs_err=err)


def redraw_padding(batch: Mapping[str, Any], seed: int = 1, keys: Iterable[str] = FLOAT_FIELDS) -> dict[str, Any]:
    """The batch with other finite garbage at the masked positions of its (B, T) float fields ``keys``."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    m = _valid(batch)
    other = clone(batch)
    for k in keys:
        if k in other and isinstance(other[k], torch.Tensor) and other[k].dim() == 2:
            x = other[k].detach().double().numpy().copy()
            x[~m] = -rng.uniform(0.0, 12.0, size=int((~m).sum()))
            other[k] = torch.tensor(x, dtype=batch[k].dtype)
    return clone(other)


def check_padding_values(loss_fn: Callable, batch: Mapping[str, Any], *, seed: int = 1,
                         other: Mapping[str, Any] | None = None) -> Verdict:
    """Redrawing the garbage at masked positions changes neither the loss nor the valid gradient (the
    framework never reads padding). ``other``: the batch with other padding (default: :func:`redraw_padding`)."""
    m = _valid(batch)
    other = redraw_padding(batch, seed) if other is None else other
    v0, g0 = evaluate(loss_fn, batch)
    v1, g1 = evaluate(loss_fn, other)
    n = int(m.sum())
    okv, err = _cmp(v0, v1, "float64", n)
    if not okv:
        return finding("wrong value", "the loss depends on the values at padded (masked) positions "
                       f"({v0:.6g} vs {v1:.6g})", key="reads-padding-value", max_abs_err=err)
    if g0 is not None and g1 is not None and not _cmp(g0[m], g1[m], "float64", n)[0]:
        return finding("wrong gradient", "the gradient depends on the values at padded positions",
                       key="reads-padding-grad")
    return ok(max_abs_err=err)


def check_permutation(loss_fn: Callable, batch: Mapping[str, Any], *, seed: int = 2) -> Verdict:
    """Permuting the rows (groups move with their rows) changes neither the loss nor the per-row gradient."""
    B = batch["mask"].shape[0]
    perm = np.random.default_rng(seed).permutation(B)
    v0, g0 = evaluate(loss_fn, batch)
    v1, g1 = evaluate(loss_fn, rows(batch, perm))
    n = int(_valid(batch).sum())
    okv, err = _cmp(v0, v1, "float64", n)
    if not okv:
        return finding("wrong value", f"the loss depends on the order of the rows ({v0:.6g} vs {v1:.6g})",
                       key="row-order", max_abs_err=err)
    if g0 is not None and g1 is not None:
        m = _valid(batch)
        if not _cmp(g0[perm][m[perm]], g1[m[perm]], "float64", n)[0]:
            return finding("wrong gradient", "the gradient depends on the order of the rows", key="row-order-grad")
    return ok(max_abs_err=err)


def uneven_splits(batch: Mapping[str, Any], parts: int = 2) -> list[list[int]]:
    """Contiguous row splits with different token counts (the harder case for a normaliser)."""
    B = batch["mask"].shape[0]
    cuts = sorted({max(1, B // 3), max(1, (2 * B) // 3)})[: parts - 1]
    edges = [0, *cuts, B]
    return [list(range(a, b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def check_split(loss_fn_micro: Callable[[dict[str, Any], dict[str, Any]], Any], batch: Mapping[str, Any], *,
                splits: Sequence[Sequence[int]] | None = None, full_fn: Callable | None = None,
                what: str = "micro-batches") -> Verdict:
    """Sum over micro-batches (each computed by ``loss_fn_micro(sub_batch, full_batch)``, with whatever global
    normaliser the framework's trainer passes) equals the full-batch loss, and the stitched gradient equals the
    full-batch gradient. ``full_fn`` defaults to ``loss_fn_micro(batch, batch)``."""
    splits = [list(s) for s in (splits or uneven_splits(batch))]
    full = full_fn or (lambda b: loss_fn_micro(b, b))
    v0, g0 = evaluate(full, batch)
    total, grad = 0.0, None if g0 is None else np.zeros_like(g0)
    for idx in splits:
        v, g = evaluate(lambda b: loss_fn_micro(b, batch), rows(batch, idx))
        total += v
        if grad is not None and g is not None:
            grad[idx] = g
    n = int(_valid(batch).sum())
    okv, err = _cmp(v0, total, "float64", n)
    sizes = [int(_valid(batch)[idx].sum()) for idx in splits]
    if not okv:
        return finding("wrong value", f"summed over {what} with {sizes} tokens the loss is {total:.6g}, the "
                       f"full batch gives {v0:.6g}", key="split-value", max_abs_err=err, tokens=sizes)
    if grad is not None and g0 is not None:
        m = _valid(batch)
        okg, errg = _cmp(g0[m], grad[m], "float64", n)
        if not okg:
            return finding("wrong gradient", f"the gradient accumulated over {what} differs from the full batch's",
                           key="split-grad", max_abs_err=errg, tokens=sizes)
    return ok(max_abs_err=err, tokens=sizes)


def round_to(batch: Mapping[str, Any], dtype: Any) -> dict[str, Any]:
    """The batch rounded to ``dtype`` and back to float64 (the exact inputs a low-precision run sees)."""
    torch = _torch()
    out = {k: (v.detach().to(dtype).double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
           for k, v in batch.items()}
    return clone(out)


def check_dtype(loss_fn: Callable, batch: Mapping[str, Any], dtype: Any) -> Verdict:
    """The loss and gradient computed in ``dtype`` match float64 on the same (rounded) inputs within the
    tolerance of DESIGN.md for that dtype."""
    torch = _torch()
    name = str(dtype).replace("torch.", "")
    exact = round_to(batch, dtype)
    v0, g0 = evaluate(loss_fn, exact)
    low = clone(exact, dtype=dtype)
    try:
        v1, g1 = evaluate(loss_fn, low)
    except Exception as e:  # noqa: BLE001
        return finding("crash", f"in {name} the call raises {type(e).__name__}: {str(e)[:120]}", key=f"crash-{name}")
    n = int(_valid(batch).sum())
    if not math.isfinite(v1):
        return finding("NaN", f"the loss is {v1} in {name} (float64 gives {v0:.6g})", key=f"nonfinite-{name}")
    okv, err = _cmp(v0, v1, name, n)
    if not okv:
        return finding("numerics within dtype" if err < 0.1 * max(abs(v0), 1.0) else "wrong value",
                       f"in {name} the loss is {v1:.6g}, float64 on the same inputs gives {v0:.6g}",
                       key=f"dtype-{name}", max_abs_err=err)
    if g0 is not None and g1 is not None:
        m = _valid(batch)
        okg, errg = _cmp(g0[m], g1[m], name, n)
        if not okg:
            return finding("numerics within dtype", f"in {name} the gradient differs from float64 by {errg:.3g}",
                           key=f"dtype-grad-{name}", max_abs_err=errg)
    del torch
    return ok(max_abs_err=err)


def reference_inputs(batch: Mapping[str, Any], spec: Any, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The reference call's keyword arguments from a torch batch: only the parameters the reference accepts;
    ``names`` maps a reference parameter to a batch key when they differ (e.g. ``{"adv": "adv_seq"}``)."""
    arrays = to_numpy(batch)
    params = inspect.signature(spec.fn).parameters
    names = dict(names or {})
    out = {}
    for p in params:
        if p == "config":
            continue
        key = names.get(p, p)
        if key in arrays:
            out[p] = arrays[key]
    return out


def reference_value(batch: Mapping[str, Any], entry: str, config: Mapping[str, Any] | None = None,
                    names: Mapping[str, str] | None = None) -> tuple[float, np.ndarray | None]:
    """(loss, d loss / d logp or None) of the reference entry on the batch (``config`` overrides its paper
    defaults; ``names`` as in :func:`reference_inputs`)."""
    from rlspec.reference import registry

    spec = registry.get(entry)
    out = spec(**reference_inputs(batch, spec, names), config=spec.config(**dict(config or {})))
    if isinstance(out, tuple):
        return float(out[0]), (None if out[1] is None else np.asarray(out[1], dtype=np.float64))
    return float(out), None


def compare_reference(loss_fn: Callable, batch: Mapping[str, Any], entry: str,
                      config: Mapping[str, Any] | None = None, *, names: Mapping[str, str] | None = None,
                      scale: float = 1.0, dtype: str = "float64") -> Verdict:
    """The framework's loss and dlogp equal the reference entry's (``config`` overrides its paper defaults;
    ``scale`` multiplies the reference when the framework documents a constant factor)."""
    ref_loss, ref_grad = reference_value(batch, entry, config, names)
    v, g = evaluate(loss_fn, batch)
    m = _valid(batch)
    n = int(m.sum())
    okv, err = _cmp(scale * float(ref_loss), v, dtype, n)
    label = f"{entry}" + (f" ({describe(config)})" if config else "")
    if not okv:
        return finding("wrong value", f"the loss is {v:.6g} where {label} gives {scale * float(ref_loss):.6g}",
                       key=f"ref-value:{entry}", max_abs_err=err)
    if ref_grad is not None:
        rg = scale * np.asarray(ref_grad, dtype=np.float64)
        if g is None or (not np.any(g[m]) and np.any(rg[m])):
            return finding("no gradient", f"the loss carries no gradient where {label}'s is non-zero",
                           key=f"ref-nograd:{entry}")
        okg, errg = _cmp(rg[m], g[m], dtype, n)
        if not okg:
            return finding("wrong gradient", f"the gradient differs from {label}'s by {errg:.3g}",
                           key=f"ref-grad:{entry}", max_abs_err=errg)
    return ok(max_abs_err=err)


def first_finding(*verdicts: Callable[[], Verdict]) -> Verdict:
    """Run checks in order and return the first non-ok verdict (or the last ok one)."""
    last = ok()
    for check in verdicts:
        v = check()
        if v.status != "ok":
            return v
        last = v
    return last


# --------------------------------------------------------------------------- reproductions
def tensor_literal(name: str, x: Any, *, grad: bool = False, digits: int = 6) -> str:
    """``name = torch.tensor([...], dtype=...)`` for a small tensor (values rounded to ``digits``; the probes'
    reproductions are re-run by the tests, so a rounding that hid the finding would be caught there)."""
    torch = _torch()
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.is_floating_point():
        vals = np.round(t.double().numpy(), digits).tolist()
        dt = str(t.dtype)
    else:
        vals = t.numpy().tolist()
        dt = str(t.dtype)
    g = ", requires_grad=True" if grad else ""
    return f"{name} = torch.tensor({vals!r}, dtype={dt}{g})"


def batch_literal(batch: Mapping[str, Any], keys: Sequence[str], *, grad: Sequence[str] = ("logp",)) -> str:
    """Source lines defining the given batch tensors (for a reproduction script)."""
    return "\n".join(tensor_literal(k, batch[k], grad=k in grad) for k in keys)


# --------------------------------------------------------------------------- runner
def discover(frameworks: Iterable[str]) -> dict[str, Any]:
    """``{framework: module}`` of the probe modules (``rlspec.conformance.probes.<framework>``)."""
    import importlib

    return {fw: importlib.import_module(f"rlspec.conformance.probes.{fw}") for fw in frameworks}


def _call_with_timeout(fn: Callable[[], Verdict], timeout: float) -> tuple[Verdict, float]:
    t0 = time.perf_counter()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    fut = pool.submit(fn)
    try:
        v = fut.result(timeout=timeout)
        if not isinstance(v, Verdict):
            v = Verdict("error", summary=f"probe returned {type(v).__name__}, not a Verdict")
    except concurrent.futures.TimeoutError:
        v = Verdict("error", summary=f"timed out after {timeout:g} s (the call may still be running)")
    except Exception as e:  # noqa: BLE001 - a broken probe is reported, the run goes on
        v = Verdict("error", summary=f"probe raised {type(e).__name__}: {str(e)[:200]}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return v, time.perf_counter() - t0


def run_probes(frameworks: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT, runs: Iterable[str] | None = None,
               progress: bool = False) -> list[Outcome]:
    """Every probe of every framework (those not installed are skipped with one ``unsupported`` outcome)."""
    from rlspec.conformance.adapters.base import framework_version

    wanted = set(runs or RUNS)
    outcomes: list[Outcome] = []
    for fw, mod in discover(frameworks).items():
        version = framework_version(getattr(mod, "DIST", fw))
        if version == "not-installed":
            outcomes.append(Outcome(fw, version, "defaults", "-", "-", "unsupported", "",
                                    f"{getattr(mod, 'DIST', fw)} is not installed", {}, "", "", "", 0.0))
            continue
        try:
            probes = [p for p in mod.probes() if p.run in wanted]
        except Exception as e:  # noqa: BLE001
            outcomes.append(Outcome(fw, version, "defaults", "probes()", "-", "error", "",
                                    f"enumerating probes raised {type(e).__name__}: {e}", {}, "", "", "", 0.0))
            continue
        it: Iterable[Probe] = probes
        if progress:
            try:
                from tqdm import tqdm

                it = tqdm(probes, desc=f"probes {fw}", unit="probe")
            except ImportError:
                pass
        for p in it:
            v, dt = _call_with_timeout(p.check, timeout)
            outcomes.append(Outcome(p.framework, version, p.run, p.path, p.case, v.status, v.severity, v.summary,
                                    _jsonable(v.measured), v.reproduction, p.upstream, v.key or v.summary, dt))
    return outcomes


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def counts(outcomes: Iterable[Outcome]) -> dict[str, dict[str, dict[str, int]]]:
    """``{framework: {run: {status: n}}}``."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for o in outcomes:
        d = out.setdefault(o.framework, {}).setdefault(o.run, {})
        d[o.status] = d.get(o.status, 0) + 1
    return out


def save(outcomes: Sequence[Outcome], path: str, *, command: str = "") -> None:
    """Write ``probes.json``: versions, counts per framework/run/status, every outcome."""
    import datetime
    import platform

    doc = {"rlspec_probes": 1, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": command, "platform": {"python": platform.python_version(), "machine": platform.machine()},
           "versions": {o.framework: o.version for o in outcomes}, "counts": counts(outcomes),
           "outcomes": [o.to_dict() for o in outcomes]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def load(path: str) -> list[Outcome]:
    with open(path) as f:
        doc = json.load(f)
    return [Outcome(**o) for o in doc["outcomes"]]

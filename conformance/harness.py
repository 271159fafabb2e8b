"""The conformance harness: draw cases from the registry, run an adapter, compare with the reference.

How one case is judged (:func:`run_case`):

1. the case's float inputs are rounded to its dtype (float64, float32 or bfloat16);
2. the reference (``reference/``, NumPy float64) is evaluated on the *rounded* inputs with the
   adapter's declared ``conventions`` for the entry, then the case's own config overrides;
3. ``adapter.run`` computes the same entry in the case's dtype (in a worker thread, with a
   per-case timeout);
4. outputs are flattened to names (``loss``, ``dlogp``, ``adv``, ``state.alpha``, ...) and compared
   one by one with :func:`rlspec.conformance.tolerances.close`; arrays shaped like the mask are compared
   only at valid positions; a gradient output (name starting with ``d``) must also be finite at
   masked positions (a NaN gradient on padding poisons back-propagation);
5. an exception, a NaN/inf output, a missing output or a timeout is a ``fail``/``error`` result that
   carries its message and a copy-pasteable reproduction; the run goes on. A gradient that is zero (or
   ``None``) where the reference's is not, a gradient that misses while the value matches (not the gradient
   of the computed objective), and a non-finite gradient at a masked position (inf·0) each say so.

Timeouts: each adapter call runs in its own daemon thread. After ``timeout`` seconds the harness raises an
exception inside that thread (``PyThreadState_SetAsyncExc``), which stops a call that is looping in Python
code; a call blocked in native code (a C kernel, a lock) cannot be stopped from Python: its thread is left
running as a daemon (it does not keep the process alive at exit) and the result says so. Either way the
case is an ``error`` whose message starts with "timed out" and the run goes on.

Statuses (:data:`STATUSES`): ``pass``, ``fail`` (wrong value), ``error`` (raised, timed out,
malformed output), ``unsupported`` (the adapter does not implement the entry / dtype / config, or
the harness cannot draw inputs for it), ``not-installed`` (the library is missing), ``planned``
(a registry entry with no reference yet, only when asked for by name), and after applying an
expectation file (:mod:`rlspec.conformance.expectations`) ``xfail``, ``deviation`` and ``xpass``.
``fail`` and ``error`` are the unexpected failures (:data:`UNEXPECTED`).

Cases (:func:`cases_for`): the named fixed batches of :mod:`rlspec.conformance.inputs` for the entry's
kind, config variants derived from the entry's config fields (every aggregation mode, the ±20
log-ratio clamp, a dual clip of c = 3, each boolean flag flipped, and any override dicts an entry
lists in ``Spec.extras["conformance_configs"]()``), draws of ``Spec.make_inputs(rng)`` where the
entry has one, and seeded random batches. Only the arguments the reference function accepts are
passed; a generated case that the reference itself rejects is dropped (counted in
``Results.dropped``). Cases tagged ``extreme`` (log-ratios ±20/±50) are not run in bfloat16; the
``overflow`` cases (±89, ±100, exact in bfloat16) are. A case whose reference output lies beyond the
range of the dtype under test (|value| > 3.4e38 in float32/bfloat16) is ``unsupported`` in that dtype:
no implementation can return it.

Padding: every default input carries finite garbage at masked positions (:mod:`rlspec.conformance.inputs`);
``make_inputs`` draws whose padding holds NaN/±inf/huge values get finite garbage there too
(:func:`rlspec.conformance.inputs.finite_padding`), and the first such draw is also kept as it was, as the
case ``make-inputs-0-padding-nonfinite`` (tag ``padding-nonfinite``).
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import inspect
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlspec.conformance import inputs as gen
from rlspec.conformance import tolerances
from rlspec.conformance.adapters.base import array_literal

STATUSES = ("pass", "fail", "error", "unsupported", "xfail", "xpass", "deviation", "not-installed", "planned")
UNEXPECTED = ("fail", "error")
DEFAULT_TIMEOUT = 30.0
DEFAULT_OUTPUTS = {"policy_loss": ("loss", "dlogp"), "value_loss": ("loss", "dvalues"), "kl": ("loss", "dlogp"),
                   "advantage": ("adv",), "entropy": ("value", "dlogits"), "tracker": ("adv", "state")}


# --------------------------------------------------------------------------- data
@dataclass
class Case:
    """One input batch + config for one entry in one dtype. ``inputs`` hold the float64 originals."""

    id: str
    algorithm: str
    name: str
    inputs: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"
    tags: tuple[str, ...] = ()

    @property
    def fixed(self) -> bool:
        return "random" not in self.tags


@dataclass
class Result:
    """The verdict on one case (or on a whole entry/dtype, for ``unsupported``/``planned``)."""

    case_id: str
    algorithm: str
    dtype: str
    status: str
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    output: str = ""  # the output with the largest error, or the one that failed
    message: str = ""
    reproduction: str = ""
    tags: tuple[str, ...] = ()
    reason: str = ""  # the expectation file's reason / upstream link, when one matched
    duration: float = 0.0
    #: signed relative error (got − ref)/max(|ref|, atol/rtol) of the scalar output (loss/value), NaN if none
    signed_err: float = math.nan
    ref_sign: int = 0  # sign of that reference value (0 when zero or none)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tags"] = list(self.tags)
        for k in ("max_abs_err", "max_rel_err", "signed_err"):
            if not math.isfinite(d[k]):
                d[k] = str(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        d = dict(d)
        d["tags"] = tuple(d.get("tags", ()))
        for k in ("max_abs_err", "max_rel_err", "signed_err"):
            if isinstance(d.get(k), str):
                d[k] = float(d[k])
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})


class Results(list):
    """A list of :class:`Result` plus what was not checked: ``planned`` names, ``dropped`` case count."""

    def __init__(self, items: Iterable[Result] = (), *, impl: str = "", version: str = "",
                 planned: list[str] | None = None, dropped: int = 0, stale: list[str] | None = None,
                 dtypes: tuple[str, ...] = ()) -> None:
        super().__init__(items)
        self.impl, self.version = impl, version
        self.planned = planned or []
        self.dropped = dropped
        self.stale = stale or []  # expectation entries that matched no case (set by expectations.apply)
        self.dtypes = dtypes
        #: entry -> {"conventions": {...}, "layouts": [...], "variants": [...]}: the configurations the cases ran
        self.configs: dict[str, dict[str, Any]] = {}

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for r in self:
            out[r.status] = out.get(r.status, 0) + 1
        return {k: v for k, v in out.items() if v}

    def unexpected(self) -> list[Result]:
        return [r for r in self if r.status in UNEXPECTED]


# --------------------------------------------------------------------------- reference-side helpers
def _registry():
    from rlspec.reference import registry

    return registry


def signature_of(spec) -> tuple[set[str], set[str], bool]:
    """(parameter names, required parameter names, accepts **kwargs) of the entry's reference function."""
    sig = inspect.signature(spec.fn)
    names, required, var_kw = set(), set(), False
    for p in sig.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    names.discard("config")
    required.discard("config")
    return names, required, var_kw


def select_inputs(spec, batch: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a canonical batch the entry's reference accepts; None if a required input is missing."""
    names, required, var_kw = signature_of(spec)
    if not required <= set(batch):
        return None
    return dict(batch) if var_kw else {k: v for k, v in batch.items() if k in names}


def output_names(spec) -> tuple[str, ...]:
    return tuple(spec.outputs) or DEFAULT_OUTPUTS.get(spec.kind, ("out",))


def name_outputs(spec, out: Any) -> dict[str, Any]:
    """Name a function's return value with ``spec.outputs`` (tuple → names, dict kept, single → first name)."""
    names = output_names(spec)
    if isinstance(out, dict):
        return dict(out)
    if isinstance(out, tuple) and not _is_namedtuple(out):
        if len(out) != len(names):
            raise ValueError(f"{spec.name}: returned {len(out)} values; the registry lists outputs {names}")
        return dict(zip(names, out))
    return {names[0]: out}


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def to_numpy(x: Any) -> Any:
    """Tensors (anything with ``.detach``) to float64/int NumPy; other values unchanged."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        t = x.detach().cpu()
        if getattr(t.dtype, "is_floating_point", False):
            t = t.double()
        return t.numpy()
    return x


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested outputs to ``{"a.b": leaf}``: dicts by key, dataclasses by field, tuples/lists of
    non-scalars by index; leaves are arrays, numbers, bools, strings or None."""
    value = to_numpy(value)
    join = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: str(k))
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, join(k)))
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            out.update(flatten(getattr(value, f.name), join(f.name)))
        return out
    if _is_namedtuple(value):
        out = {}
        for k in value._fields:
            out.update(flatten(getattr(value, k), join(k)))
        return out
    if isinstance(value, (tuple, list)) and any(isinstance(v, (dict, tuple, list, np.ndarray)) or
                                                dataclasses.is_dataclass(v) or hasattr(v, "detach") for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, join(i)))
        return out
    return {prefix or "out": value}


# --------------------------------------------------------------------------- dtypes
def round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round a float array to the nearest bfloat16 (ties to even); returned as float32 values."""
    f = np.asarray(x, dtype=np.float64).astype(np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(f), np.float32(np.nan), rounded).astype(np.float32)


def cast_value(x: Any, dtype: str) -> Any:
    """Float arrays (also inside dicts/lists/dataclasses) rounded to ``dtype``; others unchanged.

    float64 → float64 copy; float32 → float32; bfloat16 → float32 arrays holding bfloat16 values
    (NumPy has no bfloat16; adapters convert)."""
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        with np.errstate(over="ignore"):
            if dtype == "float64":
                return x.astype(np.float64, copy=True)
            if dtype == "float32":
                return x.astype(np.float32)
            return round_bfloat16(x)
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, dict):
        return {k: cast_value(v, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and not _is_namedtuple(x):
        return type(x)(cast_value(v, dtype) for v in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        try:
            return dataclasses.replace(x, **{f.name: cast_value(getattr(x, f.name), dtype)
                                             for f in dataclasses.fields(x) if f.init})
        except Exception:  # a state class that validates its field types: leave it as it is
            return copy.deepcopy(x)
    return copy.deepcopy(x)


def as_float64(x: Any) -> Any:
    """Float arrays (nested too) as float64 copies, for the reference."""
    return cast_value(x, "float64")


# --------------------------------------------------------------------------- case generation
def _stable_seed(*parts: Any) -> int:
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def config_variants(spec, names_in_batch: set[str], conventions: dict[str, Any] | None = None
                    ) -> list[tuple[str, dict[str, Any], str | None]]:
    """(suffix, config overrides, base batch name or None = first) derived from the entry's config fields.

    Variants are built around the configuration a case actually runs with: the paper defaults with the
    adapter's ``conventions`` applied. Every aggregation mode other than that one gets a variant, every
    boolean is flipped from its effective value, and every field a convention changes also gets a variant
    back at the paper's default (``paper:FIELD=VALUE``), so a convention never hides a mode from testing.
    """
    if spec.config_cls is None:
        return []
    paper = spec.config()
    paper_fields = {f.name: getattr(paper, f.name) for f in dataclasses.fields(paper)}
    conv = {k: v for k, v in (conventions or {}).items() if k in paper_fields}
    try:
        default = spec.config(**conv)
    except Exception:  # noqa: BLE001 - an invalid convention is reported by run_case; build around the paper
        default, conv = paper, {}
    fields = {f.name: getattr(default, f.name) for f in dataclasses.fields(default)}
    params, _, var_kw = signature_of(spec)
    out: list[tuple[str, dict[str, Any], str | None]] = []
    for k, v in conv.items():
        if not _equal_obj(v, paper_fields[k]) and k != "agg":  # agg: every mode gets its own variant below
            out.append((f"paper:{k}={paper_fields[k]}", {k: paper_fields[k]}, None))
    if "agg" in fields:
        from rlspec.reference.aggregation import MODES

        for mode in MODES:
            if mode == fields["agg"]:
                continue
            if mode == "group-token-mean" and not ("group" in params or var_kw):
                continue
            out.append((f"agg={mode}", {"agg": mode}, "ragged-garbage"))
    if "log_ratio_clamp" in fields:
        out.append(("clamp=20", {"log_ratio_clamp": 20.0}, "log-ratio-50"))
    if "dual_clip_c" in fields:
        out.append(("dual-clip=3", {"dual_clip_c": 3.0}, "beyond-dual-clip"))
    for k, v in fields.items():
        if isinstance(v, bool):
            out.append((f"{k}={not v}", {k: not v}, None))
    extra = (spec.extras or {}).get("conformance_configs")
    if extra is not None:
        for i, item in enumerate(extra()):
            if isinstance(item, tuple):
                name, overrides = item[0], dict(item[1])
                base = item[2] if len(item) > 2 else None
            else:
                overrides = dict(item)
                name = ",".join(f"{k}={v}" for k, v in overrides.items()) or f"config-{i}"
                base = None
            out.append((name, overrides, base))
    return out


def accepts(spec, inputs: dict[str, Any], overrides: dict[str, Any]) -> tuple[bool, str]:
    """Whether the reference accepts the case (and returns finite outputs)."""
    try:
        cfg = spec.config(**overrides)
        out = spec(**as_float64(inputs), config=cfg)
        for k, v in flatten(name_outputs(spec, out)).items():
            a = np.asarray(v)
            if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
                return False, f"reference output {k} is not finite"
        return True, ""
    except Exception as e:  # noqa: BLE001 - any rejection drops the case
        return False, f"{type(e).__name__}: {e}"


def uses_default_generator(spec) -> bool:
    """Whether the kind's canonical batches (:mod:`rlspec.conformance.inputs`) suit the entry.

    They do when the kind has a default generator, the reference needs no argument the batch lacks,
    and the reference accepts the first fixed batch (not so for e.g. (B, K) multi-reward entries)."""
    key = (spec.name, id(spec.fn))
    if key not in _DEFAULT_OK:
        ok = spec.kind in gen.DEFAULT_KINDS and spec.fn is not None and \
            select_inputs(spec, gen.random_batch(spec.kind, np.random.default_rng(0))) is not None
        _DEFAULT_OK[key] = ok and accepts(spec, select_inputs(spec, gen.fixed_batches(spec.kind)[0].inputs), {})[0]
    return _DEFAULT_OK[key]


_DEFAULT_OK: dict[tuple[str, int], bool] = {}


def random_inputs(spec, rng: np.random.Generator) -> dict[str, Any] | None:
    """One random input dict for the entry: its kind's canonical batch, else ``make_inputs``; None if neither."""
    if uses_default_generator(spec):
        return select_inputs(spec, gen.random_batch(spec.kind, rng))
    if spec.make_inputs is not None:
        inputs = dict(spec.make_inputs(rng))
        inputs.pop("config", None)  # a config variant drawn by make_inputs is for fixed cases (cases_for), not here
        return inputs
    return None


def _raw_batches(spec, n_random: int) -> list[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """(name, inputs, tags) before dtype and config: fixed, make_inputs draws, random."""
    out: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
    default_ok = uses_default_generator(spec)
    if default_ok:
        for nb in gen.fixed_batches(spec.kind):
            sel = select_inputs(spec, nb.inputs)
            if sel is not None:
                out.append((nb.name, sel, nb.tags))
    mk = spec.make_inputs
    if mk is not None:
        nonfinite = []
        for i in range(3):
            raw = mk(np.random.default_rng(_stable_seed(spec.name, "make", i)))
            fin, changed = gen.finite_padding(raw, np.random.default_rng(_stable_seed(spec.name, "make-pad", i)))
            out.append((f"make-inputs-{i}", fin, ("garbage",) if changed else ()))
            if changed:
                nonfinite.append((f"make-inputs-{i}-padding-nonfinite", raw, ("garbage", "padding-nonfinite")))
        out += nonfinite[:1]  # after the draws: config variants keep their base (the second fixed case)
    for i in range(n_random):
        rng = np.random.default_rng(_stable_seed(spec.name, "random", i))
        use_default = default_ok and (mk is None or i % 2 == 0)
        if not use_default and mk is None:
            break
        raw = gen.random_batch(spec.kind, rng) if use_default else mk(rng)
        sel = select_inputs(spec, raw) if use_default else \
            gen.finite_padding(raw, np.random.default_rng(_stable_seed(spec.name, "random-pad", i)))[0]
        out.append((f"random-{i}", sel, ("random",)))
    return out


GROUP_LAYOUTS = ("any", "contiguous", "equal", "contiguous-equal")


def _same_array(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and \
            bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f"))
    return _equal_obj(a, b)


def in_layout(inputs: dict[str, Any], layout: str) -> dict[str, Any] | None:
    """The batch rearranged into a group layout an adapter declares (None if it cannot be, e.g. no group ids):

    * ``contiguous``: the rows of each group side by side (a stable sort by group id);
    * ``equal``: every group the same size (each group cut to the size of the smallest group of two or more;
      smaller groups dropped), rows left in their order;
    * ``contiguous-equal``: both (what ``view(-1, K)`` code needs).
    """
    g = inputs.get("group") if isinstance(inputs, dict) else None
    if not isinstance(g, np.ndarray) or g.ndim != 1 or g.size == 0:
        return None
    B = g.shape[0]
    keep = np.arange(B)
    if "equal" in layout:
        _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
        k = int(counts[counts >= 2].min()) if (counts >= 2).any() else 1
        rank = np.zeros(B, dtype=np.int64)
        for u in range(len(counts)):
            rows = np.flatnonzero(inv == u)
            rank[rows] = np.arange(rows.size)
        keep = np.flatnonzero((counts[inv] >= k) & (rank < k))
    if "contiguous" in layout:
        keep = keep[np.argsort(g[keep], kind="stable")]
    if layout == "any" or keep.size == 0:
        return None
    return {k: (v[keep] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == B else v)
            for k, v in inputs.items()}


def cases_for(spec, dtypes: Iterable[str] = ("float64",), n_random: int = 8, *,
              conventions: dict[str, Any] | None = None, layouts: Iterable[str] = ("any",)
              ) -> tuple[list[Case], int, str]:
    """All cases of one entry in the given dtypes: (cases, number dropped, first drop reason).

    ``conventions`` (the adapter's for this entry) centre the config variants on the configuration the cases
    run with (:func:`config_variants`); ``layouts`` other than "any" add, for entries that take group ids, each
    batch rearranged into that layout (:func:`in_layout`, case names ``BATCH+layout=L``), next to the ragged
    cases that stay as they are.
    """
    for lay in layouts:
        if lay not in GROUP_LAYOUTS:
            raise ValueError(f"layouts: got {lay!r}; expected some of {GROUP_LAYOUTS}")
    raw = _raw_batches(spec, n_random)
    for lay in [x for x in dict.fromkeys(layouts) if x != "any"]:
        for name, inp, tags in list(raw):
            moved = in_layout(inp, lay)
            if moved is not None and not all(_same_array(moved.get(k), inp.get(k)) for k in inp):
                raw.append((f"{name}+layout={lay}", moved, tags + ("layout",)))
    variants = config_variants(spec, set(), conventions)
    items: list[tuple[str, dict[str, Any], dict[str, Any], tuple[str, ...]]] = []
    fixed_names = [r[0] for r in raw if "random" not in r[2]]
    for name, inp, tags in raw:
        overrides: dict[str, Any] = {}
        if isinstance(inp, dict) and isinstance(inp.get("config"), dict):  # make_inputs may carry overrides
            inp = dict(inp)
            overrides = inp.pop("config")
        items.append((name, inp, overrides, tags))
    by_name = {name: (inp, ov, tags) for name, inp, ov, tags in items}
    for suffix, ov, base in variants:
        base = base if base in by_name else (fixed_names[1] if len(fixed_names) > 1 else
                                             (fixed_names[0] if fixed_names else None))
        if base is None:
            continue
        inp, ov0, tags = by_name[base]
        items.append((f"{base}+{suffix}", inp, {**ov0, **ov}, tags + ("config",)))
    cases: list[Case] = []
    dropped, reason = 0, ""
    dtypes = tuple(dtypes)
    for name, inp, ov, tags in items:
        ok, why = accepts(spec, inp, ov)
        if not ok:
            dropped += 1
            reason = reason or f"{name}: {why}"
            continue
        for dt in dtypes:
            if dt == "bfloat16" and "extreme" in tags:
                continue
            cases.append(Case(id=f"{spec.name}/{dt}/{name}", algorithm=spec.name, name=name, inputs=inp,
                              config=dict(ov), dtype=dt, tags=tags))
    return cases, dropped, reason


def checkable_specs(algorithms: Iterable[str] | None = None) -> tuple[list[Any], list[str]]:
    """(entries with a reference, names of planned entries) — all of them, or the named ones."""
    reg = _registry()
    if algorithms is None:
        specs = [s for s in reg.specs() if s.status != "planned"]
        planned = [s.name for s in reg.specs() if s.status == "planned"]
        return specs, planned
    specs, planned = [], []
    for a in algorithms:
        s = reg.get(a)  # KeyError with suggestions for unknown names
        (planned if s.status == "planned" else specs).append(s.name if s.status == "planned" else s)
    return specs, planned


# --------------------------------------------------------------------------- comparison
#: the largest finite magnitude per dtype (bfloat16 shares float32's exponent range)
DTYPE_MAX = {"float64": float(np.finfo(np.float64).max), "float32": float(np.finfo(np.float32).max),
             "bfloat16": 3.3895313892515355e38}


def out_of_range(ref: dict[str, Any], dtype: str) -> str:
    """Why the reference's outputs cannot be represented in ``dtype`` ("" if they can)."""
    top = DTYPE_MAX[dtype]
    for k, v in ref.items():
        a = np.asarray(v)
        if np.issubdtype(a.dtype, np.floating) and a.size and float(np.max(np.abs(a))) > top:
            return f"reference output {k} reaches {float(np.max(np.abs(a))):.3g}, beyond the {dtype} range ({top:.3g})"
    return ""


def n_terms_of(inputs: dict[str, Any]) -> int:
    """Number of terms a case's outputs reduce over: valid tokens if there is a mask, else the largest input."""
    m = inputs.get("mask")
    if isinstance(m, np.ndarray) and m.dtype == np.bool_:
        return max(int(m.sum()), 1)
    sizes = [v.size for v in inputs.values() if isinstance(v, np.ndarray)]
    return max(sizes + [1])


def compare(ref: dict[str, Any], got: dict[str, Any], dtype: str, mask: np.ndarray | None, n_terms: int,
            alternatives: Iterable[dict[str, Any]] = ()) -> tuple[str, float, float, str, str]:
    """Compare flattened outputs; returns (status, max_abs_err, max_rel_err, worst output, message).

    ``alternatives`` are reference outputs on inputs perturbed by a few unit roundoffs: an element that
    misses the tolerance passes if one of them reproduces it (see :mod:`rlspec.conformance.tolerances`).
    """
    alternatives = list(alternatives)
    worst = (0.0, 0.0, "")
    values_passed: list[str] = []  # non-gradient outputs that matched (to tell "value right, gradient wrong")
    for name, r in ref.items():
        if name not in got:
            return "error", math.inf, math.inf, name, f"missing output {name!r} (got {sorted(got)})"
        g = to_numpy(got[name])
        ra = np.asarray(r)
        grad = is_gradient(name)
        if grad and g is None and ra.dtype != object:  # autograd left .grad unset: no path from the loss
            g = np.zeros(ra.shape)
        if ra.dtype == object or isinstance(r, (str, type(None))):
            if not _equal_obj(r, g):
                return "fail", math.inf, math.inf, name, f"{name}: expected {r!r}, got {g!r}"
            continue
        try:
            ga = np.asarray(g)
            if ga.dtype == object:
                ga = ga.astype(np.float64)
        except Exception as e:  # noqa: BLE001
            return "error", math.inf, math.inf, name, f"{name}: not an array or number ({type(g).__name__}: {e})"
        if ra.shape != ga.shape and not (ra.size == 1 and ga.size == 1):
            return "fail", math.inf, math.inf, name, f"{name}: shape {ga.shape}, expected {ra.shape}"
        if ra.dtype == np.bool_ or np.issubdtype(ra.dtype, np.integer):
            if not np.array_equal(ra.reshape(ga.shape), ga):
                bad = np.argwhere(ra.reshape(ga.shape) != ga)
                return "fail", math.inf, math.inf, name, f"{name}: integer/boolean values differ at {bad[:3].tolist()}"
            continue
        if not np.issubdtype(ga.dtype, np.number) and ga.dtype != np.bool_:
            return "error", math.inf, math.inf, name, f"{name}: not numeric (dtype {ga.dtype})"
        ga = ga.astype(np.float64)
        shape = ga.shape
        refs = [ra.astype(np.float64).reshape(shape)]
        refs += [np.asarray(a[name], dtype=np.float64).reshape(shape) for a in alternatives
                 if name in a and np.asarray(a[name]).size == ga.size]
        at_mask = mask is not None and shape == mask.shape and ga.ndim >= 1
        if at_mask and grad and not np.isfinite(ga).all():
            return "fail", math.inf, math.inf, name, nonfinite_gradient_message(name, ga, mask)

        def sel(x: np.ndarray, at_mask: bool = at_mask) -> np.ndarray:
            return x[mask] if at_mask else x

        gs = sel(ga)
        if not np.isfinite(gs).all():
            what = "gradient" if grad else "value(s)"
            return "fail", math.inf, math.inf, name, (f"{name}: non-finite {what} {gs[~np.isfinite(gs)][:3].tolist()} "
                                                      "where the reference's are finite")
        rs = [sel(x) for x in refs]
        if gs.size == 0:
            continue
        ok_el = tolerances.within(rs[0], gs, dtype, n_terms)
        for alt in rs[1:]:
            if ok_el.all():
                break
            ok_el |= tolerances.within(alt, gs, dtype, n_terms)
        rtol, atol = tolerances.tolerance(dtype, n_terms)
        diffs = np.stack([np.abs(gs - x) for x in rs])
        # the error that was judged: an element that passes is measured against a reference that accepts
        # it (the perturbed one, where the clamp-perturbation rule excused it), the closest such in relative
        # terms; an element that fails, against the unperturbed reference
        rels = diffs / np.maximum(np.abs(np.stack(rs)), atol / rtol)
        if len(rs) > 1:
            accept = np.stack([tolerances.within(x, gs, dtype, n_terms) for x in rs])
            pick = np.argmin(np.where(accept, rels, np.inf), axis=0)
            pick = np.where(ok_el & accept.any(axis=0), pick, 0)
        else:
            pick = np.zeros(gs.shape, dtype=np.intp)
        best = np.take_along_axis(diffs, pick[None], axis=0)[0]
        abs_err = float(best.max())
        rel_err = float(np.take_along_axis(rels, pick[None], axis=0)[0].max())
        if abs_err >= worst[0]:
            worst = (abs_err, rel_err, name)
        if not ok_el.all():
            i = int(np.argmax(np.where(ok_el, -1.0, diffs[0])))
            where = f" at flat index {i}" if np.ndim(rs[0]) else ""
            msg = (f"{name}: max |got − ref| = {abs_err:.3g} (rel {rel_err:.3g}){where}: got {float(gs.flat[i])!r}, "
                   f"ref {float(rs[0].flat[i])!r}; tolerance atol={atol:.2g} + rtol={rtol:.2g}·|ref| "
                   f"({dtype}, n_terms={n_terms}){' [masked positions not compared]' if mask is not None else ''}")
            if grad:
                msg = gradient_diagnosis(name, gs, rs[0], values_passed, got_none=got[name] is None) + msg
            return "fail", abs_err, rel_err, name, msg
        if not grad:
            values_passed.append(name)
    return "pass", worst[0], worst[1], worst[2], ""


#: output-name prefixes of gradients (∂/∂logp, ∂/∂logits, ∂/∂values, ∂/∂μ, ...): the registry's gradient outputs
GRADIENT_PREFIXES = ("dlog", "dvalues", "dmu", "dpi", "dcost")


def is_gradient(name: str) -> bool:
    """Whether output ``name`` is a gradient (``dlogp``, ``dvalues``, ``dlogits``, ``state.dmu``, ...)."""
    return name.split(".")[-1].startswith(GRADIENT_PREFIXES)


def nonfinite_gradient_message(name: str, ga: np.ndarray, mask: np.ndarray) -> str:
    """The message for a gradient with NaN/±inf, pointing out masked positions (inf·0 in a backward pass)."""
    bad = ~np.isfinite(ga)
    where = np.argwhere(bad)[0].tolist()
    at_pad = bad & ~mask
    msg = f"{name}: non-finite gradient {ga[tuple(where)]} at {where}"
    if at_pad.any():
        w = np.argwhere(at_pad)[0].tolist()
        msg = (f"{name}: non-finite gradient {ga[tuple(w)]} at masked position {w} ({int(at_pad.sum())} masked, "
               f"{int((bad & mask).sum())} valid positions non-finite): the gradient at padding must be 0; a NaN "
               "there is typically inf·0 (a value that overflowed at a padded or clipped position, multiplied by "
               "a zero mask or a zero derivative) and poisons every parameter in back-propagation")
    return msg


def gradient_diagnosis(name: str, gs: np.ndarray, rs: np.ndarray, values_passed: list[str], got_none: bool) -> str:
    """A leading sentence for a gradient that differs: no gradient at all, or not the gradient of the value."""
    ref_scale = float(np.max(np.abs(rs))) if rs.size else 0.0
    if ref_scale > 0 and not np.any(gs):
        what = "None (no autograd path from the loss)" if got_none else "zero everywhere"
        return (f"{name} is {what} but the reference's is not (max |ref| = {ref_scale:.3g}): the implementation's "
                "loss carries no gradient w.r.t. this input (a detached term?). ")
    if values_passed:
        return (f"the value ({', '.join(values_passed)}) matches the reference but {name} does not: the gradient is "
                "not the gradient of the objective the value computes (a detached or straight-through term, a "
                "biased estimator). ")
    return ""


def perturbed_references(spec, rounded: dict[str, Any], cfg: Any, dtype: str, seed: int,
                         n: int = tolerances.N_PERTURBATIONS) -> list[dict[str, Any]]:
    """Reference outputs on ``n`` copies of the inputs, every float perturbed by ≤ a few unit roundoffs."""
    rng = np.random.default_rng(seed)
    u = tolerances.PERTURBATION_ULPS * tolerances.UNIT_ROUNDOFF[dtype]
    out = []

    def jitter(x: Any) -> Any:
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
            with np.errstate(invalid="ignore", over="ignore"):
                return x.astype(np.float64) * (1.0 + u * rng.uniform(-1.0, 1.0, size=x.shape))
        if isinstance(x, dict):
            return {k: jitter(v) for k, v in x.items()}
        return x

    for _ in range(n):
        try:
            out.append(flatten(name_outputs(spec, spec(**jitter(as_float64(rounded)), config=cfg))))
        except Exception:  # noqa: BLE001 - a perturbation the reference rejects is simply not used
            continue
    return out


def _equal_obj(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------- running
class CaseTimeout(Exception):
    """An adapter call ran past its timeout. ``stopped``: whether its thread could be stopped."""

    def __init__(self, timeout: float, stopped: bool) -> None:
        how = ("the call was interrupted" if stopped else
               "the call could not be interrupted (blocked in native code) and keeps running in a daemon thread")
        super().__init__(f"timed out after {timeout:g} s ({how})")
        self.stopped = stopped


class _Abandoned(BaseException):
    """Raised asynchronously inside a timed-out call's thread (a BaseException: ``except Exception`` in the
    adapter does not swallow it)."""


def _interrupt(thread: threading.Thread, done: threading.Event, grace: float = 1.0) -> bool:
    """Raise :class:`_Abandoned` inside ``thread``; True if the call then ended within ``grace`` seconds."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Abandoned))
    return done.wait(grace)


class _Runner:
    """Runs each adapter call in its own daemon thread, so that a hung call can be abandoned after a timeout
    (see the module docstring: a Python-level hang is stopped, a native one is left behind as a daemon)."""

    def call(self, fn: Callable[[], Any], timeout: float | None) -> Any:
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = fn()
            except _Abandoned:
                box["abandoned"] = True
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["error"] = e
            finally:
                done.set()

        thread = threading.Thread(target=target, name="rlspec-case", daemon=True)
        thread.start()
        if not done.wait(timeout):
            raise CaseTimeout(timeout, _interrupt(thread, done))
        if "error" in box:
            raise box["error"]
        return box.get("value")


_RUNNER: _Runner | None = None


def _runner() -> _Runner:
    global _RUNNER
    if _RUNNER is None:
        _RUNNER = _Runner()
    return _RUNNER


def _plain(v: Any) -> Any:
    return v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)


def case_options(adapter, spec) -> dict[str, Any]:
    """The keyword arguments of :func:`cases_for` an adapter implies: its conventions for the entry and the
    group layouts it declares (``Adapter.group_layouts``). ``rlspec check`` and ``pytest conformance/`` both
    build their cases with these, so they judge the same cases."""
    return {"conventions": dict((getattr(adapter, "conventions", None) or {}).get(spec.name, {})),
            "layouts": tuple(getattr(adapter, "group_layouts", None) or ("any",))}


def impl_target(adapter) -> str:
    """How to load ``adapter`` again (``adapters.load`` records it; else the adapter's name)."""
    return getattr(adapter, "target", None) or getattr(adapter, "name", "unnamed")


def run_case(adapter, case: Case, spec=None, timeout: float | None = DEFAULT_TIMEOUT) -> Result:
    """Judge one case (see the module docstring); never raises for a misbehaving implementation."""
    spec = spec or _registry().get(case.algorithm)
    t0 = time.perf_counter()

    def result(status: str, abs_err: float = 0.0, rel_err: float = 0.0, output: str = "", message: str = "",
               repro: bool = False) -> Result:
        return Result(case.id, case.algorithm, case.dtype, status, abs_err, rel_err, output, message,
                      reproduction(adapter, case) if repro else "", tuple(case.tags),
                      duration=time.perf_counter() - t0)

    conv = dict((getattr(adapter, "conventions", None) or {}).get(spec.name, {}))
    try:
        cfg = spec.config(**{**conv, **case.config})
    except Exception as e:  # noqa: BLE001
        return result("unsupported", message=f"config not valid under the adapter's conventions {conv}: {e}")
    rounded = cast_value(case.inputs, case.dtype)
    try:
        ref = flatten(name_outputs(spec, spec(**as_float64(rounded), config=cfg)))
    except Exception as e:  # noqa: BLE001
        return result("unsupported", message=f"case not applicable in {case.dtype}: the reference rejects the "
                                             f"rounded inputs ({type(e).__name__}: {e})")
    for k, v in ref.items():
        a = np.asarray(v)
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            return result("unsupported", message=f"case not applicable in {case.dtype}: reference output {k} "
                                                 "is not finite on the rounded inputs")
    beyond = out_of_range(ref, case.dtype)
    if beyond:
        return result("unsupported", message=f"case not applicable in {case.dtype}: {beyond}")
    to_adapter = cast_value(rounded, case.dtype)  # a private copy the adapter may mutate
    try:
        got = _runner().call(lambda: adapter.run(spec, to_adapter, cfg, case.dtype), timeout)
    except CaseTimeout as e:
        return result("error", math.inf, math.inf, message=str(e), repro=True)
    except NotImplementedError as e:
        return result("unsupported", message=f"adapter: not implemented ({e})" if str(e) else "adapter: not implemented")
    except Exception as e:  # noqa: BLE001
        return result("error", math.inf, math.inf, message=f"raised {type(e).__name__}: {e}", repro=True)
    try:
        got_flat = flatten(name_outputs(spec, to_numpy(got)))
    except Exception as e:  # noqa: BLE001
        return result("error", math.inf, math.inf, message=f"malformed output: {e}", repro=True)
    mask = rounded.get("mask") if isinstance(rounded, dict) else None
    mask = mask if isinstance(mask, np.ndarray) and mask.dtype == np.bool_ else None
    n = n_terms_of(rounded)
    status, a, r, out, msg = compare(ref, got_flat, case.dtype, mask, n)
    if status == "fail" and math.isfinite(a):  # maybe a branch taken differently within rounding
        alts = perturbed_references(spec, rounded, cfg, case.dtype, _stable_seed(case.id))
        status, a, r, out, msg = compare(ref, got_flat, case.dtype, mask, n, alts)
    res = result(status, a, r, out, msg, repro=status != "pass")
    res.signed_err, res.ref_sign = scalar_signed_error(ref, got_flat, case.dtype)
    return res


def scalar_signed_error(ref: dict[str, Any], got: dict[str, Any], dtype: str) -> tuple[float, int]:
    """((got − ref)/max(|ref|, atol/rtol), sign of ref) for the first scalar output (``loss`` or ``value``);
    (NaN, 0) if there is none."""
    for k in ("loss", "value"):
        if k in ref and k in got and np.ndim(ref[k]) == 0 and np.ndim(got[k]) == 0:
            r, g = float(ref[k]), float(got[k])
            if math.isfinite(r) and math.isfinite(g):
                rtol, atol = tolerances.TOLERANCES[dtype]
                return (g - r) / max(abs(r), atol / rtol), int(np.sign(r))
    return math.nan, 0


#: a systematic bias is flagged when at least this many cases of an entry and dtype have a scalar error ...
BIAS_MIN_CASES = 8
#: ... the same sign in all but at most this fraction of them (a two-sided sign test at p < 1e-3) ...
BIAS_P_VALUE = 1e-3
#: ... and a median |relative error| above this fraction of the dtype's single-value rtol (bfloat16: 2e-3, float32:
#: 1e-6): a bias the √n tolerance could hide, not the one-sided rounding of a transcendental function (float32
#: sigmoid/exp round with a consistent sign at ~1e-7, harmless)
BIAS_MIN_FRACTION = 0.1


def bias_flags(results: Iterable[Result]) -> list[dict[str, Any]]:
    """Entries whose scalar output errs in the same direction across cases, even if each case passes.

    Per (entry, dtype): the signed relative errors of the loss/value (:attr:`Result.signed_err`) of the cases that
    passed (a failing or classified case is reported already), taken as they are (an additive bias) and times the
    sign of the reference value (a bias by a constant factor: ``got = (1 + b)·ref`` errs with the sign of ``ref``).
    Flagged when there are at least :data:`BIAS_MIN_CASES` non-zero errors, a two-sided sign test rejects "either
    sign equally likely" at :data:`BIAS_P_VALUE`, and the median |error| exceeds :data:`BIAS_MIN_FRACTION` of the
    dtype's rtol: what a tolerance of 0.02·√n can hide in bfloat16.
    """
    groups: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for r in results:
        if r.status in ("pass", "xpass") and math.isfinite(r.signed_err) \
                and r.signed_err != 0.0:
            groups.setdefault((r.algorithm, r.dtype), []).append((r.signed_err, r.ref_sign))
    out = []
    for (name, dtype), pairs in sorted(groups.items()):
        # additive: got − ref keeps its sign; multiplicative: (got − ref)/ref keeps its sign (a constant factor)
        for kind, errs in (("additive", [e for e, _ in pairs]), ("relative", [e * s for e, s in pairs if s])):
            n = len(errs)
            if n < BIAS_MIN_CASES:
                continue
            pos = sum(e > 0 for e in errs)
            k = max(pos, n - pos)
            p = min(1.0, 2 * sum(math.comb(n, j) for j in range(k, n + 1)) / 2.0**n)
            med = float(np.median(np.abs(errs)))
            if p < BIAS_P_VALUE and med > BIAS_MIN_FRACTION * tolerances.TOLERANCES[dtype][0]:
                out.append({"algorithm": name, "dtype": dtype, "kind": kind, "cases": n, "same_sign": k,
                            "sign": "+" if pos >= n - pos else "-", "median_rel_err": med, "p_value": p})
                break
    return out


def run(adapter, algorithms: Iterable[str] | None = None, dtypes: Iterable[str] | None = None, n_random: int = 8,
        timeout: float | None = DEFAULT_TIMEOUT, progress: Callable[[Result], None] | None = None,
        on_total: Callable[[int], None] | None = None) -> Results:
    """Check ``adapter`` on every checkable entry (or ``algorithms``) in ``dtypes``; never raises for a bad impl.

    ``dtypes`` default to the adapter's; a requested dtype the adapter lacks gives one ``unsupported``
    result per entry. ``progress(result)`` is called after each case, ``on_total(n)`` once the number of
    cases is known (for a progress bar).
    """
    specs, planned = checkable_specs(None if algorithms is None else list(algorithms))
    adapter_dtypes = tuple(getattr(adapter, "dtypes", ("float64",)))
    dtypes = tuple(dtypes) if dtypes is not None else adapter_dtypes
    for d in dtypes:
        if d not in tolerances.DTYPES:
            raise ValueError(f"dtype: got {d!r}; expected some of {tolerances.DTYPES}")
    results = Results(impl=impl_target(adapter), version=str(getattr(adapter, "version", "")),
                      planned=[] if algorithms is not None else planned, dtypes=dtypes)
    for name in planned if algorithms is not None else []:
        results.append(Result(f"{name}/*", name, "*", "planned", message="planned: no reference implementation yet"))
    available, why = adapter.available()
    plan: list[tuple[Any, list[Case]]] = []
    for spec in specs:
        if available and not adapter.supports(spec):
            results.append(Result(f"{spec.name}/*", spec.name, "*", "unsupported",
                                  message=f"{impl_target(adapter)} does not implement {spec.name}"))
            continue
        run_dtypes = tuple(d for d in dtypes if d in adapter_dtypes)
        for d in dtypes:
            if d not in adapter_dtypes:
                results.append(Result(f"{spec.name}/{d}/*", spec.name, d, "unsupported",
                                      message=f"{impl_target(adapter)} does not compute in {d}"))
        opts = case_options(adapter, spec)
        cases, dropped, reason = cases_for(spec, run_dtypes, n_random, **opts)
        results.configs[spec.name] = {"conventions": {k: _plain(v) for k, v in opts["conventions"].items()},
                                      "layouts": [x for x in opts["layouts"] if x != "any"],
                                      "variants": sorted({c.name.split("+", 1)[1] for c in cases if "+" in c.name})}
        results.dropped += dropped
        if not cases and run_dtypes:
            why_none = reason or ("no input generator: the registry entry's kind has no default generator and "
                                  "no make_inputs")
            status = "error" if reason else "unsupported"
            results.append(Result(f"{spec.name}/*", spec.name, "*", status, message=f"harness: {why_none}"))
            continue
        plan.append((spec, cases))
    if on_total is not None:
        on_total(sum(len(c) for _, c in plan))
    for spec, cases in plan:
        for case in cases:
            if not available:
                res = Result(case.id, case.algorithm, case.dtype, "not-installed", message=why, tags=case.tags)
            else:
                res = run_case(adapter, case, spec, timeout)
            results.append(res)
            if progress is not None:
                progress(res)
    return results


# --------------------------------------------------------------------------- reproduction
def _literal(x: Any) -> str:
    """Python source that rebuilds ``x`` (arrays keep their dtype; nan/inf as names)."""
    if isinstance(x, np.ndarray):
        return array_literal(x)  # with its dtype; an empty array keeps its shape
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return repr(x.item())
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {_literal(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (list, tuple)) and not _is_namedtuple(x):
        inner = ", ".join(_literal(v) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        cls = type(x)
        args = ", ".join(f"{f.name}={_literal(getattr(x, f.name))}" for f in dataclasses.fields(x) if f.init)
        return f"__import__({cls.__module__!r}, fromlist=['_']).{cls.__qualname__}({args})"
    return repr(x)


def reproduction(adapter, case: Case) -> str:
    """A copy-pasteable script: rebuild the case, run the reference and the implementation, print both."""
    rounded = cast_value(case.inputs, case.dtype)
    conv = dict((getattr(adapter, "conventions", None) or {}).get(case.algorithm, {}))
    lines = [
        f"# rlspec conformance case {case.id}",
        "import numpy as np",
        "from numpy import nan, inf",
        "from rlspec.reference import registry",
        "from rlspec.conformance import adapters, harness",
        f"spec = registry.get({case.algorithm!r})",
        f"config = spec.config(**{ {**conv, **case.config}!r})",
        f"inputs = {_literal(rounded)}  # already rounded to {case.dtype}",
        "ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))",
        f"got = harness.flatten(harness.name_outputs(spec, adapters.load({impl_target(adapter)!r}).run("
        f"spec, inputs, config, {case.dtype!r})))",
        "for k in ref:",
        "    print(k, '\\n  ref:', ref[k], '\\n  got:', got.get(k))",
    ]
    extra = ""
    try:
        spec = _registry().get(case.algorithm)
        extra = adapter.reproduction(spec, rounded, spec.config(**{**conv, **case.config}), case.dtype) or ""
    except Exception:  # noqa: BLE001
        extra = ""
    if not extra:
        return "\n".join(lines) + "\n"
    return ("# --- 1. the implementation alone (runs with only the library installed) ---\n" + extra.rstrip()
            + "\n\n# --- 2. the same case against the reference (needs rlspec) ---\n" + "\n".join(lines) + "\n")

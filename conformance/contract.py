"""The input contract of a registry entry: what an implementation is called with and must return.

Derived from the registry, never written by hand (:func:`input_contract`):

* **input names** and which are **optional** (with their defaults): the reference function's
  signature (``config`` excluded: the entry's config dataclass is passed separately);
* **shapes and dtypes**: the batches the harness itself draws for the entry — the kind's canonical
  batch (:mod:`rlspec.conformance.inputs`) where it suits the entry, else ``Spec.make_inputs`` —
  several seeded draws, each axis named by what its size follows across draws: ``B`` (rows of the
  mask), ``T`` (columns of the mask), another varying size (``N1``, ``N2``, ...) or a fixed number;
* **outputs**: ``spec.outputs`` (the kind's default names otherwise), with the shapes the reference
  returns on the same draws; nested outputs (a state dataclass, a dict) are listed by their leaves
  (``state.alpha``), as the harness compares them.

Float arrays are listed as ``float``: the harness hands them to an adapter already rounded to the
case's dtype (float64, float32 or bfloat16 values in a float32 array).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from rlspec.conformance import harness
from rlspec.conformance import inputs as gen

N_DRAWS = 6
#: gradient outputs, per kind: output name -> (value it differentiates, input it differentiates by)
GRADIENTS = {"dlogp": ("loss", "logp"), "dvalues": ("loss", "values"), "dlogits": ("value", "logits")}

_CACHE: dict[tuple[str, int], dict[str, Any]] = {}


def _draws(spec) -> tuple[str, list[dict[str, Any]]]:
    """(source, seeded input draws) as the harness draws them for the entry."""
    if harness.uses_default_generator(spec):
        draws = [harness.select_inputs(spec, gen.fixed_batches(spec.kind)[0].inputs)]
        draws += [harness.select_inputs(spec, gen.random_batch(spec.kind, np.random.default_rng(1000 + i)))
                  for i in range(N_DRAWS - 1)]
        return f"the canonical {spec.kind} batch (conformance/inputs.py)", draws
    if spec.make_inputs is not None:
        draws = []
        for i in range(N_DRAWS):
            d = dict(spec.make_inputs(np.random.default_rng(1000 + i)))
            d.pop("config", None)  # config overrides for a fixed case, not an input
            draws.append(d)
        return "the entry's make_inputs (Spec.make_inputs)", draws
    return "", []


def _leaf_kind(v: Any) -> str:
    """dtype word for one value: float, bool, int64, or a Python type name."""
    if isinstance(v, np.ndarray):
        if v.dtype == np.bool_:
            return "bool"
        if np.issubdtype(v.dtype, np.integer):
            return "int64"
        if np.issubdtype(v.dtype, np.floating):
            return "float"
        return str(v.dtype)
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if v is None:
        return "None"
    return type(v).__name__


class _Axes:
    """Names axis sizes by what they follow across draws (B, T, N1, ... or a fixed number)."""

    def __init__(self, draws: list[dict[str, Any]]) -> None:
        self.vectors: dict[str, tuple[int, ...]] = {}
        masks = [d.get("mask") for d in draws]
        if all(isinstance(m, np.ndarray) and m.dtype == np.bool_ and m.ndim == 2 for m in masks) and masks:
            self.vectors["B"] = tuple(m.shape[0] for m in masks)
            self.vectors["T"] = tuple(m.shape[1] for m in masks)
        self.n = 0

    def name(self, sizes: tuple[int, ...], axis: int) -> str:
        preferred = ("B", "T") if axis == 0 else ("T", "B")
        for sym in preferred:
            if self.vectors.get(sym) == sizes:
                return sym
        if len(set(sizes)) == 1:
            return str(sizes[0])
        for sym, vec in self.vectors.items():
            if vec == sizes:
                return sym
        self.n += 1
        sym = f"N{self.n}"
        self.vectors[sym] = sizes
        return sym


def _describe(values: list[Any], axes: _Axes) -> dict[str, Any]:
    """{"shape": "(B, T)" | "scalar" | "", "dtype": ...} of one name over its draws."""
    present = [v for v in values if v is not None] or values
    v0 = present[0]
    dtype = _leaf_kind(v0)
    if isinstance(v0, np.ndarray) and all(isinstance(v, np.ndarray) and v.ndim == v0.ndim for v in present):
        if v0.ndim == 0:
            return {"shape": "scalar", "dtype": dtype}
        dims = [axes.name(tuple(v.shape[i] for v in present), i) for i in range(v0.ndim)]
        return {"shape": "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")", "dtype": dtype}
    if isinstance(v0, np.ndarray):
        ranks = sorted({v.ndim for v in present if isinstance(v, np.ndarray)})
        return {"shape": f"rank {' or '.join(map(str, ranks))}", "dtype": dtype}
    if isinstance(v0, (bool, int, float, np.number, np.bool_)):
        return {"shape": "scalar", "dtype": dtype}
    return {"shape": "", "dtype": dtype}


def _flat_outputs(spec, draw: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(draw), config=spec.config())))
    except Exception:  # noqa: BLE001 - a draw the reference rejects says nothing about shapes
        return None


def input_contract(spec) -> dict[str, Any]:
    """``{"source", "inputs": [...], "outputs": [...], "notes": [...]}`` for one registry entry.

    Each input: ``name``, ``shape`` (e.g. ``"(B, T)"``, ``"scalar"``; ``""`` when not an array),
    ``dtype`` (``float``, ``bool``, ``int64``, or a type name), ``optional`` and, if optional,
    ``default`` (its repr) and ``drawn`` (whether the harness passes it). Each output: ``name``,
    ``shape``, ``dtype`` and, for a gradient, ``gradient_of`` (``"loss w.r.t. logp"``).
    Planned entries (no reference) give empty lists.
    """
    key = (spec.name, id(spec.fn))
    if key in _CACHE:
        return _CACHE[key]
    out: dict[str, Any] = {"source": "", "inputs": [], "outputs": [], "notes": []}
    if spec.fn is None:
        _CACHE[key] = out
        return out
    source, draws = _draws(spec)
    out["source"] = source
    sig = inspect.signature(spec.fn)
    params = [p for p in sig.parameters.values()
              if p.name != "config" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        out["notes"].append("the reference also accepts **kwargs: every drawn input below is passed")
    axes = _Axes(draws)
    drawn_names = list(dict.fromkeys(k for d in draws for k in d))
    names = [p.name for p in params] + [k for k in drawn_names if k not in {p.name for p in params}]
    by_param = {p.name: p for p in params}
    for name in names:
        p = by_param.get(name)
        optional = p is not None and p.default is not p.empty
        item: dict[str, Any] = {"name": name}
        if any(name in d for d in draws):
            item.update(_describe([d.get(name) for d in draws if name in d], axes))
            item["drawn"] = True
        else:
            item.update({"shape": "", "dtype": "", "drawn": False})
        item["optional"] = optional
        if optional:
            item["default"] = repr(p.default)
        out["inputs"].append(item)
    flats = [f for f in (_flat_outputs(spec, d) for d in draws) if f is not None]
    names_out = harness.output_names(spec)
    if flats:
        leaves = list(dict.fromkeys(k for f in flats for k in f))
        kept = [f for f in flats if set(f) == set(flats[0])]  # draws that returned the same structure
        for leaf in leaves:
            values = [f[leaf] for f in kept if leaf in f] or [f[leaf] for f in flats if leaf in f]
            item = {"name": leaf, **_describe([np.asarray(v) if isinstance(v, (list, tuple)) else v
                                                for v in values], axes)}
            if leaf in GRADIENTS:
                of, by = GRADIENTS[leaf]
                item["gradient_of"] = f"{of} w.r.t. {by}"
            out["outputs"].append(item)
    else:
        out["outputs"] = [{"name": n, "shape": "", "dtype": ""} for n in names_out]
        out["notes"].append("the reference returned nothing usable on the drawn inputs: output shapes unknown")
    _CACHE[key] = out
    return out


def _fmt_input(i: dict[str, Any]) -> str:
    what = " ".join(x for x in (i["shape"], i["dtype"]) if x) or "not drawn by the harness"
    if i["optional"]:
        what += f"; optional, default {i['default']}" + ("" if i["drawn"] else ", never passed by the harness")
    return f"{i['name']}: {what}"


def _fmt_output(o: dict[str, Any]) -> str:
    what = " ".join(x for x in (o["shape"], o["dtype"]) if x) or "shape unknown"
    if "gradient_of" in o:
        what += f" (gradient of {o['gradient_of']})"
    return f"{o['name']}: {what}"


def text_lines(spec) -> list[str]:
    """The contract as plain lines (``rlspec show`` and the skeleton adapter's comments)."""
    c = input_contract(spec)
    if spec.fn is None:
        return ["(planned: no reference yet, no contract)"]
    lines = [f"inputs (drawn from {c['source'] or 'nowhere: the harness cannot draw inputs for this entry'}):"]
    lines += [f"  {_fmt_input(i)}" for i in c["inputs"]]
    if spec.config_cls is not None:
        lines.append(f"  config: {spec.config_cls.__name__} (keyword; the paper's defaults or the adapter's conventions)")
    lines.append("outputs (the dict `run` returns):")
    lines += [f"  {_fmt_output(o)}" for o in c["outputs"]]
    if any("." in o["name"] for o in c["outputs"]):
        lines.append("  (a dotted name is a field of a nested output: return a dict or dataclass under its first part)")
    lines += [f"note: {n}" for n in c["notes"]]
    return lines


def markdown(spec) -> list[str]:
    """The contract as a markdown section body (docs/algorithms/NAME.md)."""
    c = input_contract(spec)
    lines = [f"Called with keyword arguments drawn from {c['source']}; B = rows, T = columns of `mask`; "
             "`float` arrays arrive rounded to the case's dtype. Details: [adapter guide](../adapters.md).", "",
             "| input | shape | dtype | optional (default) |", "|---|---|---|---|"]
    for i in c["inputs"]:
        opt = "no" if not i["optional"] else f"`{i['default']}`" + ("" if i["drawn"] else ", not passed")
        lines.append(f"| `{i['name']}` | {i['shape'] or '-'} | {i['dtype'] or '-'} | {opt} |")
    if spec.config_cls is not None:
        lines.append(f"| `config` | | `{spec.config_cls.__name__}` | default: the paper's |")
    lines += ["", "| output | shape | dtype | |", "|---|---|---|---|"]
    for o in c["outputs"]:
        note = f"gradient of {o['gradient_of']}" if "gradient_of" in o else ""
        lines.append(f"| `{o['name']}` | {o['shape'] or '-'} | {o['dtype'] or '-'} | {note} |")
    if any("." in o["name"] for o in c["outputs"]):
        lines += ["", "A dotted output name is a field of a nested output (a dict or dataclass under its first part)."]
    lines += [""] + [f"Note: {n}." for n in c["notes"]] + ([""] if c["notes"] else [])
    return lines


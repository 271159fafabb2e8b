"""Golden vectors: language-neutral JSON cases generated from the reference.

``conformance/vectors/<algorithm>/<case>.json`` — one file per case, float64, validated by
``conformance/vectors/schema.json`` (JSON Schema draft 2020-12). Regenerate with ``rlspec vectors``,
verify with ``rlspec vectors --check`` (the test suite does the same).

A vector holds:

* ``schema_version``, ``algorithm``, ``kind``, ``case``;
* ``paper``: ``arxiv``, ``title``, ``section``, ``equation`` (parsed from the first equation's
  ``where``), and ``equations`` (every equation the entry implements, with where it was confirmed);
* ``config``: every field of the entry's config (the paper's defaults unless the case overrides them);
* ``inputs`` and ``outputs`` (outputs flattened by name, ``dlogp`` included for losses); values are
  encoded as below;
* ``tolerance``: ``rtol`` and ``atol`` to use as ``|got − ref| ≤ atol + rtol·|ref|`` element-wise
  (already scaled for the case's number of terms), and ``compare_at`` = ``"mask"`` when arrays
  shaped like the mask are compared only where it is true (their masked entries hold 0).

Value encoding: an array is ``{"dtype": "float64"|"int64"|"bool", "shape": [...], "data": nested
lists}`` with non-finite floats (the garbage padding at masked positions) written as the strings
``"nan"``, ``"inf"``, ``"-inf"``; a frozen-dataclass input (e.g. a tracker state) is
``{"dataclass": "module:QualName", "fields": {...}}``; a dict is ``{"dict": {...}}``; lists,
numbers, strings, booleans and null are plain JSON.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rlspec.conformance import harness, tolerances

SCHEMA_VERSION = 1
DIRECTORY = Path(__file__).parent / "vectors"
SCHEMA_PATH = DIRECTORY / "schema.json"
#: fixed cases preferred for vectors, per kind (the first few that the entry accepts are used)
PREFERRED = {
    "policy_loss": ("basic", "ragged-garbage", "beyond-dual-clip", "fully-masked-rows"),
    "kl": ("basic", "ragged-garbage", "fully-masked-rows"),
    "value_loss": ("basic", "ragged-garbage", "large-steps", "fully-masked-rows"),
    "advantage": ("basic", "size-not-multiple", "all-equal-groups", "fully-masked-rows"),
}
PER_ALGORITHM = 3
MAX_VALUES = 4000  # a vector with more numbers than this is skipped (keeps the set well under 1 MB)


# --------------------------------------------------------------------------- encoding
def _num(x: float) -> float | str:
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def encode(x: Any) -> Any:
    """A JSON-ready encoding of an input/output value (see the module docstring)."""
    if isinstance(x, np.ndarray) or isinstance(x, (np.floating, np.integer, np.bool_)):
        a = np.asarray(x)
        if a.dtype == np.bool_:
            dt, data = "bool", a.tolist()
        elif np.issubdtype(a.dtype, np.integer):
            dt, data = "int64", a.astype(np.int64).tolist()
        elif np.issubdtype(a.dtype, np.floating):
            dt = "float64"
            data = np.vectorize(_num, otypes=[object])(a.astype(np.float64)).tolist() if a.size else a.tolist()
        else:
            raise TypeError(f"cannot encode an array of dtype {a.dtype}")
        return {"dtype": dt, "shape": list(a.shape), "data": data}
    if isinstance(x, float):
        return _num(x)
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    if isinstance(x, dict):
        return {"dict": {str(k): encode(v) for k, v in x.items()}}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        cls = type(x)
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: encode(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init}}
    if hasattr(x, "detach"):
        return encode(harness.to_numpy(x))
    raise TypeError(f"cannot encode a value of type {type(x).__name__}")


def _unnum(v: Any) -> Any:
    if isinstance(v, list):
        return [_unnum(u) for u in v]
    if v == "nan":
        return math.nan
    if v == "inf":
        return math.inf
    if v == "-inf":
        return -math.inf
    return v


def decode(v: Any) -> Any:
    """Inverse of :func:`encode` (arrays come back as NumPy arrays of their dtype)."""
    if isinstance(v, dict):
        if "dtype" in v and "data" in v:
            dt = {"float64": np.float64, "int64": np.int64, "bool": np.bool_}[v["dtype"]]
            data = _unnum(v["data"]) if v["dtype"] == "float64" else v["data"]
            return np.array(data, dtype=dt).reshape(v["shape"])
        if "dataclass" in v:
            module, qual = v["dataclass"].split(":", 1)
            obj: Any = importlib.import_module(module)
            for part in qual.split("."):
                obj = getattr(obj, part)
            return obj(**{k: decode(u) for k, u in v["fields"].items()})
        if "dict" in v:
            return {k: decode(u) for k, u in v["dict"].items()}
        raise ValueError(f"unknown encoded object with keys {sorted(v)}")
    if isinstance(v, list):
        return [decode(u) for u in v]
    if v in ("nan", "inf", "-inf"):
        return _unnum(v)
    return v


def _count(v: Any) -> int:
    if isinstance(v, np.ndarray):
        return int(v.size)
    if isinstance(v, dict):
        return sum(_count(u) for u in v.values())
    if isinstance(v, (list, tuple)):
        return sum(_count(u) for u in v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return sum(_count(getattr(v, f.name)) for f in dataclasses.fields(v))
    return 1


# --------------------------------------------------------------------------- building
_SECTION = re.compile(r"(§\s*[\w.]+|(?:Section|Sec\.|Appendix|App\.)\s*[\w.]+)")
_EQUATION = re.compile(r"((?:eqs?\.|equations?|Eq\.)\s*\(?[\w.]+\)?(?:\s*[-–,]\s*\(?[\w.]+\)?)*)", re.IGNORECASE)


def paper_of(spec) -> dict[str, Any]:
    """Paper citation for a vector: arXiv id, title, section and equation parsed from the equations' ``where``."""
    section, equation = "", ""
    for e in spec.equations:
        if spec.paper.arxiv and spec.paper.arxiv not in e.where and any(spec.paper.arxiv in x.where
                                                                        for x in spec.equations):
            continue
        s, q = _SECTION.search(e.where), _EQUATION.search(e.where)
        section = section or (s.group(1) if s else "")
        equation = equation or (q.group(1) if q else "")
        if section and equation:
            break
    if not section and not equation and spec.equations:
        section = spec.equations[0].where
    return {"arxiv": spec.paper.arxiv, "title": spec.paper.title, "year": spec.paper.year, "link": spec.paper.link,
            "section": section, "equation": equation,
            "equations": [{"label": e.label, "text": e.text, "where": e.where, "source": e.source}
                          for e in spec.equations]}


def _config_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    return {f.name: encode(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_from(spec, encoded: dict[str, Any]) -> Any:
    """The entry's config from a vector's ``config`` (fields equal to the default are left to it)."""
    if spec.config_cls is None:
        return spec.config()
    default = _config_dict(spec.config())
    over = {k: decode(v) for k, v in encoded.items() if k in default and default[k] != v}
    for k, v in list(over.items()):
        if isinstance(v, list) and isinstance(getattr(spec.config(), k), tuple):
            over[k] = tuple(v)
    return spec.config(**over)


def vector_for(spec, case: harness.Case) -> dict[str, Any]:
    """The vector document of one float64 case."""
    cfg = spec.config(**case.config)
    inputs = harness.as_float64(case.inputs)
    out = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=cfg)))
    n = harness.n_terms_of(inputs)
    rtol, atol = tolerances.tolerance("float64", n)
    mask = inputs.get("mask")
    has_mask = isinstance(mask, np.ndarray) and mask.dtype == np.bool_
    return {
        "schema_version": SCHEMA_VERSION,
        "algorithm": spec.name,
        "case": case.name,
        "kind": spec.kind,
        "status": spec.status,
        "paper": paper_of(spec),
        "config": _config_dict(cfg),
        "inputs": {k: encode(v) for k, v in inputs.items()},
        "outputs": {k: encode(np.asarray(v) if isinstance(v, (float, int, np.number)) and not isinstance(v, bool)
                              else v) for k, v in out.items()},
        "tolerance": {"rtol": rtol, "atol": atol, "n_terms": n, "compare_at": "mask" if has_mask else "all",
                      "rule": "|got - ref| <= atol + rtol*|ref| element-wise; NaN/inf never passes"},
    }


def vector_cases(spec) -> list[harness.Case]:
    """The few float64 cases of an entry that become vectors."""
    cases, _, _ = harness.cases_for(spec, ("float64",), n_random=0)
    cases = [c for c in cases if _count(c.inputs) <= MAX_VALUES]
    by_name = {c.name: c for c in cases}
    preferred = [by_name[n] for n in PREFERRED.get(spec.kind, ()) if n in by_name]
    made = [c for c in cases if c.name.startswith("make-inputs-")]
    if preferred and made:  # canonical batches AND the entry's own inputs (optional extras): one vector of each kind
        chosen = preferred[:PER_ALGORITHM - 1] + made[:1]
    else:
        chosen = preferred + made
    chosen += [c for c in cases if c not in chosen]
    return chosen[:PER_ALGORITHM]


def vectorizable_specs() -> list[Any]:
    from rlspec.reference import registry

    return [s for s in registry.specs() if s.status in ("implemented", "partial")]


def _dumps(doc: dict[str, Any]) -> str:
    """Indented JSON with every array's ``data`` kept on one line (small diffs, small files)."""
    placeholders: dict[str, str] = {}

    def compact(v: Any) -> Any:
        if isinstance(v, dict):
            if "dtype" in v and "data" in v:
                k1, k2 = f"@@{len(placeholders)}@@", f"@@{len(placeholders) + 1}@@"
                placeholders[k1] = json.dumps(v["data"], separators=(",", ":"))
                placeholders[k2] = json.dumps(v["shape"])
                return {**v, "data": k1, "shape": k2}
            return {k: compact(u) for k, u in v.items()}
        if isinstance(v, list):
            return [compact(u) for u in v]
        return v

    text = json.dumps(compact(doc), indent=1, ensure_ascii=False)
    for key, val in placeholders.items():
        text = text.replace(f'"{key}"', val)
    return text + "\n"


def generate(out_dir: str | os.PathLike | None = None, algorithms: list[str] | None = None) -> list[Path]:
    """(Re)write the vectors of every implemented entry (or ``algorithms``); returns the files written."""
    root = Path(out_dir) if out_dir is not None else DIRECTORY
    root.mkdir(parents=True, exist_ok=True)
    specs = vectorizable_specs()
    if algorithms:
        specs = [s for s in specs if s.name in set(algorithms)]
    written = []
    for spec in specs:
        d = root / spec.name
        if d.is_dir():
            shutil.rmtree(d)
        cases = vector_cases(spec)
        if not cases:
            continue
        d.mkdir(parents=True)
        for case in cases:
            p = d / f"{re.sub(r'[^A-Za-z0-9_.+=-]+', '_', case.name)}.json"
            p.write_text(_dumps(vector_for(spec, case)), encoding="utf-8")
            written.append(p)
    if root != DIRECTORY and SCHEMA_PATH.is_file():
        shutil.copy(SCHEMA_PATH, root / "schema.json")
    return written


# --------------------------------------------------------------------------- checking
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def files(directory: str | os.PathLike | None = None) -> list[Path]:
    root = Path(directory) if directory is not None else DIRECTORY
    return sorted(p for p in root.glob("*/*.json"))


def check_file(path: str | os.PathLike) -> list[str]:
    """Problems with one vector: schema violations, or the reference no longer reproducing it."""
    import jsonschema

    from rlspec.reference import registry

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        return [f"{path}: not JSON ({e})"]
    validator = jsonschema.Draft202012Validator(schema())
    errs = [f"{path}: schema: {e.message} at {'/'.join(map(str, e.absolute_path))}"
            for e in validator.iter_errors(doc)]
    if errs:
        return errs
    try:
        spec = registry.get(doc["algorithm"])
        cfg = config_from(spec, doc["config"])
        inputs = {k: decode(v) for k, v in doc["inputs"].items()}
        ref = harness.flatten(harness.name_outputs(spec, spec(**inputs, config=cfg)))
    except Exception as e:  # noqa: BLE001
        return [f"{path}: the reference cannot evaluate it: {type(e).__name__}: {e}"]
    rtol, atol = doc["tolerance"]["rtol"], doc["tolerance"]["atol"]
    problems = []
    for name, enc in doc["outputs"].items():
        if name not in ref:
            problems.append(f"{path}: output {name!r} is no longer produced (reference gives {sorted(ref)})")
            continue
        want = np.asarray(decode(enc))
        got = np.asarray(harness.to_numpy(ref[name]))
        if want.shape != got.shape and not (want.size == 1 and got.size == 1):
            problems.append(f"{path}: output {name!r} has shape {got.shape}, vector says {want.shape}")
            continue
        if want.dtype.kind in "biu" and got.dtype.kind in "biu":
            if not np.array_equal(want.reshape(got.shape), got):
                problems.append(f"{path}: output {name!r} differs")
            continue
        w, g = want.astype(np.float64).reshape(got.shape), got.astype(np.float64)
        if not (np.isfinite(w).all() and np.isfinite(g).all()) or \
                not (np.abs(g - w) <= atol + rtol * np.abs(w)).all():
            err = float(np.nanmax(np.abs(g - w))) if g.size else 0.0
            problems.append(f"{path}: output {name!r} is not reproduced (max |diff| {err:.3g}, atol {atol:.2g}, "
                            f"rtol {rtol:.2g})")
    return problems


def check(directory: str | os.PathLike | None = None) -> list[str]:
    """Problems with the committed vectors, and implemented entries that have none."""
    problems = []
    present = set()
    for p in files(directory):
        present.add(p.parent.name)
        problems += check_file(p)
    for spec in vectorizable_specs():
        if spec.status == "implemented" and spec.name not in present:
            problems.append(f"{spec.name}: implemented but has no golden vectors (run `rlspec vectors`)")
    return problems

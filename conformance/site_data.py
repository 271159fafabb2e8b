"""The committed data the documentation site reads: conformance status per entry and e2e learning curves.

* ``docs/compatibility/summary.json``: per registry entry and implementation, the cases per verdict in each
  dtype (with the largest relative error of each judged verdict, as printed on the compatibility page), the
  reasons of its known differences (xfail / deviation) and of the cases not checked (unsupported), and each
  implementation's version. ``rlspec check all --page docs/compatibility.md`` writes it from the runs
  (:func:`compatibility_summary`); :func:`summary_from_reports` rebuilds the same object from the committed
  markdown reports (how the first summary was made, and how a test checks the two agree).
* ``docs/e2e/curves.json``: the reward per step of every e2e run (:mod:`rlspec.optimized.e2e.matrix` and the
  sampler/curriculum hooks of :mod:`rlspec.optimized.e2e.pipeline`), written by
  ``python -m rlspec.conformance.site_data e2e --matrix DIR --out docs/e2e/curves.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SUMMARY_SCHEMA = 1
CURVES_SCHEMA = 1
#: the verdicts a report lists with their reasons (the others are counted only)
KNOWN = ("xfail", "deviation", "xpass", "fail", "error")
#: an unsupported reason that only says the implementation lacks the entry
NOT_IMPLEMENTED = re.compile(r"^\S+ does not implement \S+$")


# --------------------------------------------------------------------------- compatibility: from runs
def _fmt_err(x: float) -> str:
    from rlspec.conformance.reports import _fmt_err as fmt

    return fmt(x)


def _blank() -> dict[str, Any]:
    return {"cells": {}, "known": [], "not_checked": []}


def _entry(out: dict, algorithm: str, impl: str) -> dict[str, Any]:
    return out.setdefault(algorithm, {}).setdefault(impl, _blank())


def _slot(out: dict, case_id: str) -> dict[str, Any]:
    """The entry of one implementation's summary that a case id (``algorithm/dtype/case``) belongs to."""
    return out.setdefault(case_id.split("/")[0], _blank())


def _add_reason(items: list[dict[str, Any]], key: dict[str, str], n: int = 1) -> None:
    for it in items:
        if all(it[k] == v for k, v in key.items()):
            it["cases"] += n
            return
    items.append({**key, "cases": n})


def _finish(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Entries sorted by name; each implementation's reasons by verdict severity, then most cases first."""
    from rlspec.conformance.reports import SEVERITY

    for per in entries.values():
        for e in per.values():
            for key in ("known", "not_checked"):
                e[key].sort(key=lambda it: (SEVERITY.index(it["status"]), -it["cases"], it["reason"]))
    return {a: entries[a] for a in sorted(entries)}


def compatibility_summary(runs: Mapping[str, Iterable[Any]], date: str, source: str) -> dict[str, Any]:
    """The summary object of ``{implementation: Results}`` (see the module docstring)."""
    from rlspec.conformance import reports

    entries: dict[str, dict[str, Any]] = {}
    impls = {}
    for impl, results in runs.items():
        results = list(results)
        impls[impl] = {"version": getattr(runs[impl], "version", "") or "",
                       "counts": dict(runs[impl].counts()) if hasattr(runs[impl], "counts") else {}}
        algos, cols, cells = reports.matrix_rows({impl: results})
        for a in algos:
            e = _entry(entries, a, impl)
            for c in cols:
                cell = cells.get((a, c))
                if cell is not None:
                    e["cells"][c] = _cell(cell)
        for r in results:
            e = _entry(entries, r.algorithm, impl)
            if r.status in ("xfail", "deviation"):
                _add_reason(e["known"], {"status": r.status, "reason": r.reason})
            elif r.status in ("xpass", "fail", "error"):
                _add_reason(e["known"], {"status": r.status, "reason": _xpass_or_failure_reason(r)})
            elif r.status in ("unsupported", "not-installed"):
                _add_reason(e["not_checked"], {"status": r.status, "reason": " ".join(r.message.split())})
    return {"schema": SUMMARY_SCHEMA, "date": date, "source": source, "implementations": impls,
            "entries": _finish(entries)}


_UNEXPECTED = "unexpected; the implementation's report has the case and a reproduction"


def _xpass_or_failure_reason(r: Any) -> str:
    return " ".join(r.message.split()) if r.status == "xpass" else _UNEXPECTED


def _cell(cell: Mapping[str, Any]) -> dict[str, Any]:
    from rlspec.conformance.reports import CELL_ORDER, JUDGED

    counts = {st: cell["counts"][st] for st in CELL_ORDER if cell["counts"].get(st)}
    errs = {st: _fmt_err(cell["errors"][st]) for st in counts if st in JUDGED and st in cell.get("errors", {})}
    return {"counts": counts, "max_rel_err": {k: v for k, v in errs.items() if v}}


# --------------------------------------------------------------------------- compatibility: from markdown
_CELL_PART = re.compile(r"^([a-z-]+) (\d+)(?: \(([^)]*)\))?$")
_CASES = re.compile(r"`([^`]+)`")


def parse_cell(text: str) -> dict[str, Any]:
    """``pass 37 (1.6e-15) · xfail 2 (inf) · unsupported 1`` -> {"counts": ..., "max_rel_err": ...}."""
    counts, errs = {}, {}
    for part in text.split(" · "):
        m = _CELL_PART.match(part.strip())
        if m is None:
            raise ValueError(f"not a compatibility cell part: {part!r} (in {text!r})")
        counts[m.group(1)] = int(m.group(2))
        if m.group(3):
            errs[m.group(1)] = m.group(3)
    return {"counts": counts, "max_rel_err": errs}


def _table(lines: list[str], start: int) -> tuple[list[str], list[list[str]], int]:
    """The markdown table whose header is ``lines[start]``: (header cells, rows, index after it)."""
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split(" | ")]

    head, rows, i = cells(lines[start]), [], start + 2
    while i < len(lines) and lines[i].startswith("|"):
        rows.append(cells(lines[i]))
        i += 1
    return head, rows, i


def summary_from_report(text: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """(version, {algorithm: {cells, known, not_checked}}) of one implementation's report.md."""
    lines = text.splitlines()
    m = re.match(r"# rlspec conformance report: `([^`]+)`\s*(.*)$", lines[0])
    if m is None:
        raise ValueError("not an rlspec conformance report (first line)")
    version = m.group(2).strip()
    out: dict[str, dict[str, Any]] = {}
    k = lines.index("## Matrix")
    while not lines[k].startswith("| algorithm |"):
        k += 1
    head, rows, _ = _table(lines, k)
    for row in rows:
        e = out.setdefault(row[0], _blank())
        for col, text_cell in zip(head[1:], row[1:]):
            if text_cell:
                e["cells"][col] = parse_cell(text_cell)
    section, status, reason = "", "", ""
    for line in lines:
        if line.startswith("## "):
            section = line[3:]
            continue
        if section.startswith("Known failures and deviations"):
            h = re.match(r"^### (xfail|deviation): (.*)$", line)
            if h:
                status, reason = h.group(1), h.group(2)
            elif line.startswith("Cases ("):
                for case in _CASES.findall(line):
                    _add_reason(_slot(out, case)["known"], {"status": status, "reason": reason})
        elif section.startswith("Unexpected failures"):
            h = re.match(r"^### `([^`]+)` — (fail|error)$", line)
            if h:
                _add_reason(_slot(out, h.group(1))["known"], {"status": h.group(2), "reason": _UNEXPECTED})
        elif section.startswith("Unexpectedly passing"):
            h = re.match(r"^- (.*) \((\d+)\): (.*)$", line)
            if h:
                for case in _CASES.findall(h.group(3)):
                    _add_reason(_slot(out, case)["known"], {"status": "xpass", "reason": " ".join(h.group(1).split())})
        elif section == "Not checked":
            h = re.match(r"^- `([^`]+)`: (unsupported|not-installed) — (.*)$", line)
            if h:
                _add_reason(_slot(out, h.group(1))["not_checked"], {"status": h.group(2), "reason": h.group(3)})
    return version, out


def summary_from_reports(page: Path) -> dict[str, Any]:
    """The summary object rebuilt from the committed compatibility page and the reports beside it."""
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    m = re.search(r"^Generated by `([^`]+)` on (\d{4}-\d{2}-\d{2})", text, re.M)
    if m is None:
        raise ValueError(f"{page}: no 'Generated by `...` on DATE' line")
    k = next(i for i, line in enumerate(lines) if line.startswith("| implementation | version | counts |"))
    _, rows, _ = _table(lines, k)
    impls, entries = {}, {}
    for impl, version, counts, _report in rows:
        impls[impl] = {"version": version if version != "?" else "",
                       "counts": {c.rsplit(" ", 1)[0]: int(c.rsplit(" ", 1)[1]) for c in counts.split(", ")}}
        _v, per = summary_from_report((page.parent / page.stem / f"{impl}.md").read_text(encoding="utf-8"))
        for a, e in per.items():
            entries.setdefault(a, {})[impl] = e
    return {"schema": SUMMARY_SCHEMA, "date": m.group(2), "source": m.group(1), "implementations": impls,
            "entries": _finish(entries)}


def dumps_summary(summary: Mapping[str, Any]) -> str:
    """JSON with one line per entry (small, and a regenerated file diffs entry by entry)."""
    def one(x: Any) -> str:
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))

    head = {k: v for k, v in summary.items() if k != "entries"}
    lines = ["{"] + [f" {one(k)}:{one(v)}," for k, v in head.items()] + [' "entries":{']
    items = list(summary["entries"].items())
    lines += [f"  {one(a)}:{one(e)}" + ("," if i < len(items) - 1 else "") for i, (a, e) in enumerate(items)]
    return "\n".join(lines + [" }", "}"]) + "\n"


def write_summary(summary: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_summary(summary), encoding="utf-8")
    return path


def load_summary(path: Path) -> dict[str, Any] | None:
    """The committed summary, or None when the file is missing."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != SUMMARY_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected {SUMMARY_SCHEMA}")
    return data


# --------------------------------------------------------------------------- e2e curves
def _round(xs: Sequence[float], nd: int = 4) -> list[float | None]:
    return [None if x is None or not math.isfinite(x) else round(float(x), nd) for x in xs]


def curves_from_matrix(table: Mapping[str, Any]) -> dict[str, Any]:
    """The matrix's table.json, reduced to what the pages show: per row its loss/advantage, verdict, note and,
    per seed, the reward per step, first/last window means and steps to the hit threshold."""
    rows = {}
    for r in table["rows"]:
        row = {k: r[k] for k in ("verdict", "note", "policy_loss", "advantage", "error") if r.get(k) not in (None, "")}
        if r.get("loss_config"):
            row["loss_config"] = r["loss_config"]
        row["runs"] = [{"seed": x["seed"], "first": round(x["first"], 4), "last": round(x["last"], 4),
                        "steps_to_hit": x["steps_to_hit"], "passes": x["passes"], "reward": _round(x["reward"])}
                       for x in r.get("runs", [])]
        rows[r["algorithm"]] = row
    meta = table["meta"]
    return {"settings": {k: v for k, v in meta["settings"].items() if k != "total_wall_s"},
            "gate": meta["gate"], "hit": meta["hit"], "rows": rows}


def pipeline_curves(steps: int = 8, seed: int = 0) -> dict[str, Any]:
    """Run every sampler/curriculum adapter of the e2e pipeline (what tests/test_e2e_pipeline.py runs)."""
    from rlspec.optimized.e2e import pipeline

    rows = {}
    for name, (hook, _cls, kw, what) in pipeline.ADAPTERS.items():
        h, _adapter = pipeline.run(name, steps=steps, seed=seed)
        rows[name] = {"hook": hook, "what": what, "task": kw.get("task", "repeat"),
                      "runs": [{"seed": seed, "reward": _round(h.reward)}]}
    return {"settings": {"steps": steps, "seed": seed}, "rows": rows,
            "not_adaptable": dict(pipeline.NOT_ADAPTABLE)}


def load_curves(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != CURVES_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected {CURVES_SCHEMA}")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlspec.conformance.site_data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compatibility", help="rebuild docs/compatibility/summary.json from the committed reports")
    c.add_argument("--page", default="docs/compatibility.md")
    c.add_argument("--out", default="docs/compatibility/summary.json")
    e = sub.add_parser("e2e", help="docs/e2e/curves.json from an e2e matrix run (+ the pipeline hooks, run here)")
    e.add_argument("--matrix", required=True, help="the folder `python -m rlspec.optimized.e2e.matrix` wrote")
    e.add_argument("--date", required=True, help="the date of the matrix run (YYYY-MM-DD)")
    e.add_argument("--machine", default="", help="where it ran, in words")
    e.add_argument("--out", default="docs/e2e/curves.json")
    e.add_argument("--no-pipeline", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "compatibility":
        print(write_summary(summary_from_reports(Path(a.page)), Path(a.out)))
        return 0
    table = json.loads((Path(a.matrix) / "table.json").read_text(encoding="utf-8"))
    data = {"schema": CURVES_SCHEMA, "date": a.date, "machine": a.machine,
            "source": "python -m rlspec.optimized.e2e.matrix (rows); rlspec.optimized.e2e.pipeline.run (hooks)",
            "matrix": curves_from_matrix(table)}
    if not a.no_pipeline:
        data["pipeline"] = pipeline_curves()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

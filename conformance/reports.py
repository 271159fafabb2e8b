"""Reports of a conformance run: report.json, junit.xml, report.md and matrix.png.

:func:`write_all` writes the four files of one implementation's run. :func:`matrix_rows` /
:func:`markdown_matrix` / :func:`render_matrix` also take several runs at once
(``{implementation: results}``) for the compatibility page: rows are algorithms, columns are
``implementation/dtype``; a cell shows how many cases got each verdict (``pass 30 · xfail 7 ·
unsupported 3``), each judged verdict with the largest relative error among its cases, and is
coloured by its worst verdict.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rlspec.conformance import tolerances
from rlspec.conformance.harness import Result, Results

#: worst first: the status that colours a cell is the first of these present among its cases
SEVERITY = ("error", "fail", "xpass", "xfail", "deviation", "pass", "unsupported", "not-installed", "planned")
COLOURS = {
    "pass": "#4caf50", "fail": "#e53935", "error": "#8e0000", "xfail": "#ff9800", "deviation": "#ffd54f",
    "xpass": "#29b6f6", "unsupported": "#bdbdbd", "not-installed": "#e0e0e0", "planned": "#f5f5f5",
}
SYMBOLS = {"pass": "✓", "fail": "✗", "error": "E", "xfail": "xfail", "deviation": "dev", "xpass": "XPASS",
           "unsupported": "—", "not-installed": "n/i", "planned": "planned"}
#: the order in which a cell lists its verdicts
CELL_ORDER = ("pass", "fail", "error", "xfail", "deviation", "xpass", "unsupported", "not-installed", "planned")
#: verdicts whose cases were compared with the reference (a relative error is shown for them)
JUDGED = ("pass", "fail", "xfail", "deviation", "xpass")
#: short labels for the PNG, where cells are narrow
SHORT = {"unsupported": "unsup", "deviation": "dev", "not-installed": "n/i", "error": "err"}
CELL_LEGEND = ("cell: cases per verdict; in parentheses the largest relative error |got − ref| / max(|ref|, atol/rtol) "
               "of that verdict's cases, against the reference that judged them")


def _fmt_err(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if math.isinf(x):
        return "inf"
    return f"{x:.1e}" if x else "0"


# --------------------------------------------------------------------------- matrix
def matrix_rows(runs: Mapping[str, Iterable[Result]]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(algorithms, columns "impl/dtype" (or "dtype" for one run), cells).

    A cell holds ``counts`` (verdict → number of cases), ``errors`` (judged verdict → largest relative
    error |got − ref| / max(|ref|, atol/rtol) of its cases, as :func:`rlspec.conformance.harness.compare`
    measured it against the reference that judged each value), ``status`` (the worst verdict, which
    colours it), ``passed`` (pass count), ``judged`` and ``max_rel_err`` (over every judged case)."""
    single = len(runs) == 1
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    algos: list[str] = []
    cols: list[str] = []
    for impl, results in runs.items():
        results = list(results)
        dts = [d for d in tolerances.DTYPES if any(r.dtype == d for r in results)] + \
              sorted({r.dtype for r in results} - set(tolerances.DTYPES) - {"*"})
        impl_cols = [d if single else f"{impl}/{d}" for d in dts] or [impl if not single else "*"]
        for c in impl_cols:
            if c not in cols:
                cols.append(c)
        for r in results:
            if r.algorithm not in algos:
                algos.append(r.algorithm)
            targets = [d if single else f"{impl}/{d}" for d in dts] if r.dtype == "*" else \
                [r.dtype if single else f"{impl}/{r.dtype}"]
            for col in targets:
                cell = cells.setdefault((r.algorithm, col), {"counts": {}, "errors": {}, "max_rel_err": 0.0, "n": 0})
                cell["counts"][r.status] = cell["counts"].get(r.status, 0) + 1
                cell["n"] += 1
                if r.status in JUDGED:
                    err = r.max_rel_err if not (isinstance(r.max_rel_err, float) and math.isnan(r.max_rel_err)) else 0.0
                    cell["errors"][r.status] = max(cell["errors"].get(r.status, 0.0), err)
                    cell["max_rel_err"] = max(cell["max_rel_err"], err)
    for cell in cells.values():
        cell["status"] = next(s for s in SEVERITY if s in cell["counts"]) if cell["counts"] else "planned"
        judged = sum(cell["counts"].get(s, 0) for s in ("pass", "fail", "error", "xfail", "deviation", "xpass"))
        cell["passed"], cell["judged"] = cell["counts"].get("pass", 0) + cell["counts"].get("xpass", 0), judged
    return sorted(algos), cols, cells


def cell_text(cell: dict | None, markdown: bool = True, errors: bool = True) -> str:
    """``pass 30 (2.1e-07) · xfail 7 (5.9e+02) · unsupported 3``: every verdict present, in
    :data:`CELL_ORDER`, with its number of cases and (for judged verdicts) its largest relative error."""
    if cell is None:
        return ""
    parts = []
    for st in CELL_ORDER:
        n = cell["counts"].get(st, 0)
        if not n:
            continue
        err = _fmt_err(cell.get("errors", {}).get(st)) if errors and st in JUDGED else ""
        parts.append(f"{st} {n}" + (f" ({err})" if err else ""))
    return " · ".join(parts) if parts else cell["status"]


def png_cell_text(cell: dict) -> str:
    """Two lines for the PNG: the counts (short labels), then the passing cases' largest relative error."""
    counts = " · ".join(f"{SHORT.get(st, st)} {cell['counts'][st]}" for st in CELL_ORDER if cell["counts"].get(st))
    err = _fmt_err(cell.get("errors", {}).get("pass"))
    return counts + (f"\npass err {err}" if err else "")


def markdown_matrix(runs: Mapping[str, Iterable[Result]]) -> str:
    """A markdown table algorithm × (implementation/)dtype."""
    algos, cols, cells = matrix_rows(runs)
    lines = ["| algorithm | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for a in algos:
        lines.append(f"| {a} | " + " | ".join(cell_text(cells.get((a, c))) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def text_matrix(results: Iterable[Result], impl: str = "impl") -> str:
    """The same matrix as plain aligned text (printed by ``rlspec check``)."""
    algos, cols, cells = matrix_rows({impl: list(results)})
    rows = [["algorithm", *cols]] + [[a, *(cell_text(cells.get((a, c))) for c in cols)] for a in algos]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def render_matrix(runs: Mapping[str, Iterable[Result]], path: str | os.PathLike, title: str = "") -> Path:
    """A PNG heat-map: rows algorithms, columns (implementation/)dtype, coloured by status, annotated."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    algos, cols, cells = matrix_rows(runs)
    n_r, n_c = max(len(algos), 1), max(len(cols), 1)
    fig_w = 2.4 + 2.1 * n_c
    fig_h = 1.4 + 0.42 * n_r
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=110)
    for i, a in enumerate(algos):
        for j, c in enumerate(cols):
            cell = cells.get((a, c))
            st = cell["status"] if cell else "planned"
            ax.add_patch(Rectangle((j, n_r - 1 - i), 1, 1, facecolor=COLOURS.get(st, "#ffffff"), edgecolor="white"))
            if cell:
                dark = st in ("error", "fail")
                ax.text(j + 0.5, n_r - 1 - i + 0.5, png_cell_text(cell),
                        ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    ax.set_xlim(0, n_c)
    ax.set_ylim(0, n_r)
    ax.set_xticks([j + 0.5 for j in range(len(cols))], cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks([n_r - 1 - i + 0.5 for i in range(len(algos))], algos, fontsize=8)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    present = sorted({cells[k]["status"] for k in cells}, key=SEVERITY.index)
    ax.legend(handles=[Patch(color=COLOURS[s], label=s) for s in present], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title((title or "rlspec conformance") + "\ncases per verdict (colour: the worst); pass err: largest "
                 "relative error of the passing cases", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- files
def summary(results: Results) -> dict[str, Any]:
    from rlspec.conformance.harness import bias_flags

    return {"counts": results.counts(), "unexpected": len(results.unexpected()), "bias": bias_flags(results),
            "planned_not_checked": len(getattr(results, "planned", [])),
            "dropped_cases": getattr(results, "dropped", 0), "stale_expectations": list(getattr(results, "stale", []))}


def to_json(results: Results, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "rlspec_report": 1,
        "implementation": getattr(results, "impl", ""),
        "version": getattr(results, "version", ""),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
        "tolerances": {d: {"rtol": r, "atol": a} for d, (r, a) in tolerances.TOLERANCES.items()},
        "tolerance_rule": tolerances.describe(),
        **(dict(meta) if meta else {}),
        "summary": summary(results),
        "planned": list(getattr(results, "planned", [])),
        "configs": dict(getattr(results, "configs", {})),
        "results": [r.to_dict() for r in results],
    }


def write_json(results: Results, path: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_json(results, meta), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_junit(results: Results, path: str | os.PathLike) -> Path:
    """JUnit XML: one testsuite per algorithm, one testcase per case (``classname`` = algorithm)."""
    impl = getattr(results, "impl", "impl")
    root = ET.Element("testsuites", name=f"rlspec conformance: {impl}")
    by_algo: dict[str, list[Result]] = {}
    for r in results:
        by_algo.setdefault(r.algorithm, []).append(r)
    tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for algo, rs in sorted(by_algo.items()):
        suite = ET.SubElement(root, "testsuite", name=f"{impl}.{algo}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        time_total = 0.0
        for r in rs:
            tc = ET.SubElement(suite, "testcase", classname=f"{impl}.{algo}", name=r.case_id,
                               time=f"{r.duration:.4f}")
            time_total += r.duration
            counts["tests"] += 1
            text = r.message + (("\n\nreproduction:\n" + r.reproduction) if r.reproduction else "")
            if r.status == "fail":
                counts["failures"] += 1
                ET.SubElement(tc, "failure", message=r.message[:500], type="mismatch").text = text
            elif r.status == "error":
                counts["errors"] += 1
                ET.SubElement(tc, "error", message=r.message[:500], type="error").text = text
            elif r.status not in ("pass", "xpass"):
                counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=f"{r.status}: {r.message}"[:500])
            elif r.status == "xpass":
                ET.SubElement(tc, "system-out").text = r.message
        for k, v in counts.items():
            suite.set(k, str(v))
            tot[k] += v
        suite.set("time", f"{time_total:.3f}")
    for k, v in tot.items():
        root.set(k, str(v))
    path = Path(path)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def to_markdown(results: Results, max_failures: int = 50) -> str:
    impl = getattr(results, "impl", "impl")
    c = results.counts()
    lines = [f"# rlspec conformance report: `{impl}` {getattr(results, 'version', '')}".rstrip(), "",
             "Counts: " + ", ".join(f"{k} {v}" for k, v in c.items()) + ".", "",
             f"Tolerances: {tolerances.describe()}.", ""]
    if getattr(results, "planned", None):
        lines += [f"{len(results.planned)} planned registry entries (no reference yet) were not checked.", ""]
    if getattr(results, "dropped", 0):
        lines += [f"{results.dropped} generated case(s) were dropped because the reference rejects them.", ""]
    lines += ["## Matrix", "", "Cell: the number of cases per verdict; after each judged verdict, in parentheses, "
              "the largest relative error |got − ref| / max(|ref|, atol/rtol) of its cases, measured against the "
              "reference that judged each value (the perturbed reference where the branch rule of the tolerances "
              "excused an element).", "",
              markdown_matrix({impl: list(results)}), ""]
    bad = [r for r in results if r.status in ("fail", "error")]
    if bad:
        lines += [f"## Unexpected failures ({len(bad)})", ""]
        for r in bad[:max_failures]:
            lines += [f"### `{r.case_id}` — {r.status}", "", r.message, ""]
            if r.reproduction:
                lines += ["Reproduction:", "", "```python", r.reproduction.rstrip(), "```", ""]
        if len(bad) > max_failures:
            lines += [f"### {len(bad) - max_failures} more (reproductions in report.json)", ""]
            lines += [f"- `{r.case_id}` — {r.status}: {' '.join(r.message.split())}" for r in bad[max_failures:]] + [""]
    known = [r for r in results if r.status in ("xfail", "deviation")]
    if known:
        lines += [f"## Known failures and deviations ({len(known)})", "",
                  "One reproduction per classification; the other cases it covers are listed under it.", ""]
        by_reason: dict[tuple[str, str], list[Result]] = {}
        for r in known:
            by_reason.setdefault((r.status, r.reason), []).append(r)
        for (status, reason), rs in by_reason.items():
            first = rs[0]
            lines += [f"### {status}: {reason}", "", f"Largest error in `{first.case_id}`: {first.message}", ""]
            if first.reproduction:
                lines += ["Reproduction:", "", "```python", first.reproduction.rstrip(), "```", ""]
            lines += [f"Cases ({len(rs)}): " + ", ".join(f"`{r.case_id}`" for r in rs), ""]
    xp = [r for r in results if r.status == "xpass"]
    if xp:
        lines += [f"## Unexpectedly passing ({len(xp)})", "",
                  "Cases an exact expectation line classifies but that pass: the line is out of date (remove it). "
                  "Grouped by expectation line, every case listed.", ""]
        by_line: dict[str, list[Result]] = {}
        for r in xp:
            by_line.setdefault(r.message, []).append(r)
        for msg, rs in by_line.items():
            lines.append(f"- {msg} ({len(rs)}): " + ", ".join(f"`{r.case_id}`" for r in rs))
        lines.append("")
    if getattr(results, "stale", None):
        lines += ["## Stale expectation entries", ""] + [f"- {s}" for s in results.stale] + [""]
    from rlspec.conformance.harness import bias_flags

    flags = bias_flags(results)
    if flags:
        lines += [f"## Systematic bias ({len(flags)})", "",
                  "The loss (or value) errs in the same direction across most cases of the entry, beyond rounding, "
                  "even where each case is within tolerance (sign test p < 1e-3, median |relative error| above a tenth "
                  "of the dtype's rtol): a constant factor or a biased cast that the √n tolerance hides.", "",
                  "| entry | dtype | bias | cases | same sign | median relative error | p |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {f['algorithm']} | {f['dtype']} | {f['kind']} | {f['cases']} | {f['same_sign']} ({f['sign']}) | "
                  f"{f['median_rel_err']:.2e} | {f['p_value']:.1e} |" for f in flags] + [""]
    configs = getattr(results, "configs", {})
    if configs:
        lines += ["## Configurations run", "",
                  "Per entry: the adapter's conventions (the reference runs with them too), the group layouts it "
                  "declared (cases rearranged into them, besides the ragged ones), and the config variants built "
                  "around that configuration (a `paper:` variant restores a field a convention changed).", "",
                  "| entry | conventions | layouts | variants |", "|---|---|---|---|"]
        for name, c in sorted(configs.items()):
            conv = ", ".join(f"`{k}={v!r}`" for k, v in c.get("conventions", {}).items()) or "paper defaults"
            lay = ", ".join(c.get("layouts", [])) or "-"
            var = ", ".join(f"`{v}`" for v in c.get("variants", [])) or "-"
            lines.append(f"| {name} | {conv} | {lay} | {var} |")
        lines += [""]
    uns = [r for r in results if r.status in ("unsupported", "not-installed")]
    if uns:
        lines += ["## Not checked", ""] + sorted({f"- `{r.case_id}`: {r.status} — {r.message}" for r in uns}) + [""]
    return "\n".join(lines)


def write_all(results: Results, out_dir: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write report.json, junit.xml, report.md and matrix.png into ``out_dir``."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    impl = getattr(results, "impl", "impl")
    paths = {
        "json": write_json(results, d / "report.json", meta),
        "junit": write_junit(results, d / "junit.xml"),
        "markdown": d / "report.md",
        "png": render_matrix({impl: list(results)}, d / "matrix.png", title=f"rlspec conformance: {impl}"),
    }
    paths["markdown"].write_text(to_markdown(results), encoding="utf-8")
    return paths


#: how each ``rlspec check`` verdict reads in a pytest conformance/ run (test_fixed_case)
CLI_TO_PYTEST = {"pass": "pass", "xpass": "pass", "fail": "fail", "error": "fail", "unsupported": "skip",
                 "xfail": "xfail", "deviation": "xfail"}


def junit_verdicts(path: str | os.PathLike) -> dict[str, str]:
    """``{case id: pass|fail|skip|xfail}`` of the ``test_fixed_case[CASE-ID]`` tests in a pytest junit.xml of
    ``pytest conformance/`` (to compare with ``rlspec check``'s verdicts through :data:`CLI_TO_PYTEST`)."""
    import re
    import xml.etree.ElementTree as ET

    out = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        m = re.fullmatch(r"test_fixed_case\[(.*)\]", tc.get("name", ""))
        if not m:
            continue
        children = {c.tag: c for c in tc}
        if "failure" in children or "error" in children:
            out[m.group(1)] = "fail"
        elif "skipped" in children:
            out[m.group(1)] = "xfail" if children["skipped"].get("type") == "pytest.xfail" else "skip"
        else:
            out[m.group(1)] = "pass"
    return out


def load_json(path: str | os.PathLike) -> Results:
    """A report.json back as :class:`Results` (to combine runs into one compatibility matrix)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    res = Results((Result.from_dict(r) for r in doc["results"]), impl=doc.get("implementation", ""),
                  version=doc.get("version", ""), planned=doc.get("planned", []))
    res.stale = doc.get("summary", {}).get("stale_expectations", [])
    res.configs = doc.get("configs", {})
    return res

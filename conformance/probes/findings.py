"""``docs/findings.md``: one row per finding across all frameworks, generated from the runs.

Two sources:

* the probes (``reports/probes/probes.json``, :func:`rlspec.conformance.probes.core.save`): each outcome with
  status ``finding``; outcomes with the same framework, code path and ``key`` are one finding (the row counts
  the probes that show it and keeps the shortest reproduction);
* the harness (``reports/all/<impl>/report.json`` from ``rlspec check all``): cases classified ``xfail`` in the
  expectation files (a bug, by the expectation file's own classification) and unexpected ``fail``/``error``
  cases; cases with the same implementation, algorithm and reason are one finding. ``deviation`` (a documented
  design choice) is counted in the summary but is not a finding; a systematic bias the harness flags over passing
  cases (``summary.bias``, :func:`rlspec.conformance.harness.bias_flags`) is one finding per entry and dtype.

Severity (:data:`rlspec.conformance.probes.core.SEVERITIES`) is the probe's own; for harness cases it is derived
from the result: an error → ``crash``; an infinite error → ``NaN``; a differing gradient output (``d*``) →
``wrong gradient``; differing only in float32/bfloat16 → ``numerics within dtype``; else ``wrong value``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlspec.conformance.probes.core import SEVERITIES, Outcome

SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    framework: str
    version: str
    path: str
    summary: str
    severity: str
    source: str  # "probe:<run>" or "harness"
    reproduction: str
    upstream: str
    cases: list[str] = field(default_factory=list)
    raises: bool = False  # a harness finding whose reproduced case raises in the framework (status error)

    @property
    def count(self) -> int:
        return len(self.cases)


def from_probes(outcomes: Iterable[Outcome]) -> list[Finding]:
    groups: dict[tuple[str, str, str], Finding] = {}
    for o in outcomes:
        if o.status != "finding":
            continue
        k = (o.framework, o.path, o.key or o.summary)
        f = groups.get(k)
        if f is None:
            groups[k] = Finding(o.framework, o.version, o.path, o.summary, o.severity, f"probe:{o.run}",
                                o.reproduction, o.upstream, [o.case])
            continue
        f.cases.append(o.case)
        if o.reproduction and (not f.reproduction or len(o.reproduction) < len(f.reproduction)):
            f.reproduction = o.reproduction
        if SEVERITY_ORDER.get(o.severity, 99) < SEVERITY_ORDER.get(f.severity, 99):
            f.severity = o.severity
        f.upstream = f.upstream or o.upstream
    return list(groups.values())


_URL = re.compile(r"https?://\S+")


def _raised(r: dict[str, Any]) -> bool:
    """Whether a harness result is an exception of the implementation (status error, or an xfail that was one)."""
    msg = str(r.get("message", ""))
    if msg.startswith("[") and "] " in msg:  # "[xfail: reason] original message" after an expectation applied
        msg = msg.split("] ", 1)[1]
    return r["status"] == "error" or msg.startswith(("raised ", "timed out"))


def _harness_severity(results: Sequence[dict[str, Any]]) -> str:
    if any(_raised(r) for r in results):
        return "crash"
    if any(str(r.get("max_abs_err")) in ("inf", "Infinity") or r.get("max_abs_err") == float("inf") for r in results):
        return "NaN"
    if any(str(r.get("output", "")).startswith("d") for r in results):
        return "wrong gradient"
    if all(r.get("dtype") in ("float32", "bfloat16") for r in results):
        return "numerics within dtype"
    return "wrong value"


def from_report(report: dict[str, Any]) -> tuple[list[Finding], dict[str, int]]:
    """Findings from one harness report (xfail + unexpected), and its counts of deviations."""
    impl, version = report.get("implementation", "?"), report.get("version", "?")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    deviations = 0
    for r in report.get("results", []):
        if r["status"] == "deviation":
            deviations += 1
        if r["status"] not in ("xfail", "fail", "error"):
            continue
        reason = r.get("reason") or r.get("message") or r["status"]
        groups.setdefault((r["algorithm"], reason), []).append(r)
    out = []
    for f in report.get("summary", {}).get("bias", []):  # hidden by the tolerance case by case (harness.bias_flags)
        out.append(Finding(impl, version, f"rlspec entry `{f['algorithm']}`",
                           f"in {f['dtype']} the loss is biased ({f['kind']}, sign {f['sign']}) in {f['same_sign']} of "
                           f"{f['cases']} passing cases, median relative error {f['median_rel_err']:.1e}: each case is "
                           "within tolerance, together they are not rounding (sign test p = "
                           f"{f['p_value']:.0e})", "numerics within dtype", "harness (bias)", "", "",
                           [f"{f['algorithm']}/{f['dtype']}/*"]))
    for (algorithm, reason), rs in groups.items():
        url = _URL.search(reason)
        upstream = url.group(0).rstrip(").,;") if url else ("none found" if "no upstream" in reason.lower() else "")
        rs = sorted(rs, key=lambda r: len(r.get("reproduction") or ""))
        repro = (rs[0].get("reproduction") or "").strip()  # part 1: the framework alone; part 2: vs the reference
        status = "unclassified " + rs[0]["status"] if rs[0]["status"] != "xfail" else "xfail"
        out.append(Finding(impl, version, f"rlspec entry `{algorithm}`", reason.strip(), _harness_severity(rs),
                           f"harness ({status})", repro, upstream, [r["case_id"] for r in rs],
                           raises=_raised(rs[0])))
    return out, {"deviation": deviations}


def collect(probes_json: Path | None, reports_dir: Path | None) -> tuple[list[Finding], dict[str, Any]]:
    """Every finding from a probes.json and a ``rlspec check all`` output folder (either may be missing)."""
    findings: list[Finding] = []
    meta: dict[str, Any] = {"probe_counts": {}, "harness": {}}
    if probes_json is not None and probes_json.exists():
        doc = json.loads(probes_json.read_text())
        findings += from_probes(Outcome(**o) for o in doc["outcomes"])
        meta["probe_counts"] = doc.get("counts", {})
        meta["probes_created"] = doc.get("created", "")
    if reports_dir is not None and reports_dir.exists():
        for rp in sorted(reports_dir.glob("*/report.json")):
            report = json.loads(rp.read_text())
            if report.get("implementation") == "optimized":
                continue
            fs, c = from_report(report)
            findings += fs
            meta["harness"][report.get("implementation", rp.parent.name)] = {
                "version": report.get("version", "?"), "findings": len(fs), **c,
                "counts": report.get("summary", {}).get("counts", {})}
    findings.sort(key=lambda f: (f.framework, SEVERITY_ORDER.get(f.severity, 99), f.path, f.summary))
    return findings, meta


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _harness_script(f: Finding) -> str:
    """A harness finding's reproduction: part 1 (the framework alone, printing its result) and part 2 (the same
    case against the reference, needs rlspec) ending in an ``assert`` of the harness's verdict, which fails on the
    pinned version (the case is classified ``xfail`` because it fails)."""
    if not f.reproduction:
        return ""
    if f.raises:  # the framework raises on this case: part 1 alone, the assert says it should not
        part1 = f.reproduction.split("# --- 2.")[0].rstrip()
        return ("try:\n" + "\n".join("    " + line if line.strip() else "" for line in part1.splitlines())
                + "\n    _raised = None\nexcept Exception as _e:  # noqa: BLE001\n    _raised = _e\n\n"
                "# --- the verdict (fails on the pinned version: the call raises on input it accepts) ---\n"
                "assert _raised is None, f'raises {type(_raised).__name__}: {_raised}'\n")
    dtype = f.cases[0].split("/")[1] if f.cases and f.cases[0].count("/") >= 2 else "float64"
    return (f.reproduction.rstrip() + "\n\n# --- 3. the verdict (fails on the pinned version) ---\n"
            "_m = inputs.get('mask')\n"
            f"_status, _abs, _rel, _out, _msg = harness.compare(ref, got, {dtype!r}, "
            "_m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))\n"
            "assert _status == 'pass', _msg\n")


def script(f: Finding, fid: str) -> str:
    """The standalone reproduction file of one finding: a header saying what it shows, then the script."""
    cases = ", ".join(f.cases[:20]) + (f" and {f.count - 20} more" if f.count > 20 else "")
    body = f.reproduction if f.source.startswith("probe") else _harness_script(f)
    needs = "the framework, NumPy and torch" if f.source.startswith("probe") else \
        "part 1: the framework alone; parts 2-3: rlspec too"
    head = [f"# {fid}: {f.framework} {f.version} · {f.path}", f"# severity: {f.severity}",
            *(f"# {line}" for line in _wrap(f"what a user sees: {f.summary}")),
            f"# source: {f.source}; upstream: {f.upstream or 'not searched'}",
            *(f"# {line}" for line in _wrap(f"cases: {cases}")),
            f"# needs: {needs}. Run it with the pinned version installed: it ends in an assert of the correct",
            "# behaviour and raises AssertionError while the finding stands.", ""]
    return "\n".join(head) + "\n" + body.rstrip() + "\n"


def _wrap(text: str, width: int = 110) -> list[str]:
    import textwrap

    return textwrap.wrap(" ".join(text.split()), width) or [""]


def ids(findings: Sequence[Finding]) -> list[str]:
    """F1, F2, ... in the page's order (framework, severity, path)."""
    return [f"F{i}" for i in range(1, len(findings) + 1)]


def markdown(findings: Sequence[Finding], meta: dict[str, Any], *, command: str = "", folder: str = "findings"
             ) -> str:
    """The findings page: a summary per framework, then one row per finding; each row links its reproduction file
    (``folder/<framework>/F<n>.py``)."""
    lines = ["# Findings", "",
             f"Generated by `{command or 'rlspec findings'}`; do not edit by hand.", "",
             "One row per finding: a behaviour of a framework's pinned version that differs from what it documents or "
             "from the paper it names. Sources: the probes (`rlspec probe`: defaults, every accepted knob combination, "
             "inputs taken silently, padding, a framework against itself), the harness's cases classified `xfail` "
             "in `conformance/expectations/` (or unclassified failures), and the systematic biases `rlspec check` "
             "flags over passing cases. Severity, worst first: "
             + ", ".join(f"*{s}*" for s in SEVERITIES) + ". `cases` counts the probes or harness cases that show it. "
             "Each finding links a script that reproduces it and ends in an `assert` of the correct behaviour, so it "
             "raises `AssertionError` on the pinned version (the peers tests run every one of them). `upstream` is "
             "the issue or pull request found in the framework's tracker, \"none found\" after a search, or \"not "
             "searched\".", ""]
    by_fw: dict[str, list[tuple[str, Finding]]] = {}
    for fid, f in zip(ids(findings), findings):
        by_fw.setdefault(f.framework, []).append((fid, f))
    lines += ["| framework | version | findings | by severity | probes run (ok / finding / unsupported / error) |",
              "|---|---|---|---|---|"]
    fws = sorted(set(by_fw) | set(meta.get("probe_counts", {})) | set(meta.get("harness", {})))
    for fw in fws:
        fs = [f for _, f in by_fw.get(fw, [])]
        sev = ", ".join(f"{s} {sum(f.severity == s for f in fs)}" for s in SEVERITIES if any(f.severity == s for f in fs))
        pc = meta.get("probe_counts", {}).get(fw, {})
        tot = {k: sum(d.get(k, 0) for d in pc.values()) for k in ("ok", "finding", "unsupported", "error")}
        probes = " / ".join(str(tot[k]) for k in ("ok", "finding", "unsupported", "error")) if pc else "not run"
        version = fs[0].version if fs else meta.get("harness", {}).get(fw, {}).get("version", "?")
        lines.append(f"| {fw} | {version} | {len(fs)} | {sev or '-'} | {probes} |")
    lines += [""]
    for fw in fws:
        rows = by_fw.get(fw, [])
        if not rows:
            continue
        lines += [f"## {fw} {rows[0][1].version}", "",
                  "| # | severity | code path | what a user sees | source | cases | upstream |",
                  "|---|---|---|---|---|---|---|"]
        for fid, f in rows:
            link = f"[{fid}]({folder}/{fw}/{fid}.py)" if (f.reproduction or f.source.startswith("probe")) else fid
            lines.append(f"| {link} | {f.severity} | `{_cell(f.path)}` | {_cell(f.summary)} | {f.source} | "
                         f"{f.count} | {_cell(f.upstream) or 'not searched'} |")
        lines += [""]
    return "\n".join(lines) + "\n"


def write(out: Path, probes_json: Path | None, reports_dir: Path | None, *, command: str = "") -> list[Finding]:
    """``out`` (the page), ``out``'s folder ``findings/<framework>/F<n>.py`` (one reproduction per finding, old ones
    removed) and ``findings.json`` beside the page (every finding without its script)."""
    findings, meta = collect(probes_json, reports_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = out.parent / out.stem
    if folder.exists():
        for old in folder.glob("*/F*.py"):
            old.unlink()
    for fid, f in zip(ids(findings), findings):
        text = script(f, fid)
        if f.reproduction or f.source.startswith("probe"):
            (folder / f.framework).mkdir(parents=True, exist_ok=True)
            (folder / f.framework / f"{fid}.py").write_text(text, encoding="utf-8")
    out.write_text(markdown(findings, meta, command=command, folder=out.stem), encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps(
        {"meta": meta, "findings": [{"id": fid, **{k: v for k, v in f.__dict__.items()
                                                   if not k.startswith("_") and k not in ("reproduction", "cases")},
                                     "cases": f.cases[:20], "count": f.count}
                                    for fid, f in zip(ids(findings), findings)]}, indent=1),
        encoding="utf-8")
    return findings

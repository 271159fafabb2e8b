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


def _harness_severity(results: Sequence[dict[str, Any]]) -> str:
    if any(r["status"] == "error" for r in results):
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
        repro = (rs[0].get("reproduction") or "").split("# --- 2.")[0].strip()
        status = "unclassified " + rs[0]["status"] if rs[0]["status"] != "xfail" else "xfail"
        out.append(Finding(impl, version, f"rlspec entry `{algorithm}`", reason.strip(), _harness_severity(rs),
                           f"harness ({status})", repro, upstream, [r["case_id"] for r in rs]))
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


def markdown(findings: Sequence[Finding], meta: dict[str, Any], *, command: str = "") -> str:
    """The findings page: a summary per framework, then one row per finding with its reproduction."""
    lines = ["# Findings", "",
             f"Generated by `{command or 'rlspec findings'}`; do not edit by hand.", "",
             "One row per finding: a behaviour of a framework's pinned version that differs from what it documents or "
             "from the paper it names. Sources: the probes (`rlspec probe`: defaults, every accepted knob combination, "
             "inputs taken silently, padding, a framework against itself) and the harness's cases classified `xfail` "
             "in `conformance/expectations/` (or unclassified failures). Severity, worst first: "
             + ", ".join(f"*{s}*" for s in SEVERITIES) + ". `cases` counts the probes or harness cases that show it.",
             ""]
    by_fw: dict[str, list[Finding]] = {}
    for f in findings:
        by_fw.setdefault(f.framework, []).append(f)
    lines += ["| framework | version | findings | by severity | probes run (ok / finding / unsupported / error) |",
              "|---|---|---|---|---|"]
    fws = sorted(set(by_fw) | set(meta.get("probe_counts", {})) | set(meta.get("harness", {})))
    for fw in fws:
        fs = by_fw.get(fw, [])
        sev = ", ".join(f"{s} {sum(f.severity == s for f in fs)}" for s in SEVERITIES if any(f.severity == s for f in fs))
        pc = meta.get("probe_counts", {}).get(fw, {})
        tot = {k: sum(d.get(k, 0) for d in pc.values()) for k in ("ok", "finding", "unsupported", "error")}
        probes = " / ".join(str(tot[k]) for k in ("ok", "finding", "unsupported", "error")) if pc else "not run"
        version = fs[0].version if fs else meta.get("harness", {}).get(fw, {}).get("version", "?")
        lines.append(f"| {fw} | {version} | {len(fs)} | {sev or '-'} | {probes} |")
    lines += [""]
    n = 0
    for fw in fws:
        fs = by_fw.get(fw, [])
        if not fs:
            continue
        lines += [f"## {fw} {fs[0].version}", "",
                  "| # | severity | code path | what a user sees | source | cases | upstream |",
                  "|---|---|---|---|---|---|---|"]
        for f in fs:
            n += 1
            f.__dict__["_id"] = f"F{n}"
            lines.append(f"| [F{n}](#f{n}) | {f.severity} | `{_cell(f.path)}` | {_cell(f.summary)} | {f.source} | "
                         f"{f.count} | {_cell(f.upstream) or 'not searched'} |")
        lines += [""]
    lines += ["## Reproductions", ""]
    for f in findings:
        fid = f.__dict__.get("_id", "")
        lines += [f"### {fid}", "", f"**{f.framework} {f.version}** · `{f.path}` · {f.severity}: {f.summary}", "",
                  "Cases: " + ", ".join(f"`{c}`" for c in f.cases[:8]) + (f" and {f.count - 8} more" if f.count > 8 else ""),
                  ""]
        if f.reproduction:
            lines += ["```python", f.reproduction.rstrip(), "```", ""]
        else:
            lines += ["(no standalone reproduction: the harness case ids above reproduce it with "
                      f"`rlspec check {f.framework} --algorithms ...`)", ""]
    return "\n".join(lines) + "\n"


def write(out: Path, probes_json: Path | None, reports_dir: Path | None, *, command: str = "") -> list[Finding]:
    findings, meta = collect(probes_json, reports_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(findings, meta, command=command), encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps(
        {"meta": meta, "findings": [{**{k: v for k, v in f.__dict__.items() if not k.startswith("_")},
                                     "count": f.count} for f in findings]}, indent=1), encoding="utf-8")
    return findings

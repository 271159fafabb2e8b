"""The documentation cannot drift from the code: its Python examples run and print what the pages say, and the
committed data the site's algorithm pages read agrees with the reports it summarises.

* Every ```` ```python ```` / ```` ```pycon ```` block of ``docs/*.md`` and ``docs/algorithms/*.md`` is executed, in
  page order, one namespace per page; ``pycon`` blocks (``>>>`` prompts) are doctests whose printed output must
  match the page. A block is left out only with a marker on the line above it: ``<!-- docs-test: skip: REASON -->``
  or ``<!-- example-file: NAME -->`` (the adapter guide's files, which ``tests/test_adapter_guide.py`` builds and
  runs through ``rlspec check``).
* ``docs/compatibility/summary.json`` equals what :func:`rlspec.conformance.site_data.summary_from_reports`
  rebuilds from the committed compatibility page and reports; ``docs/e2e/curves.json`` agrees with its own stated
  settings.
"""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(python|pycon|py)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
SKIP = re.compile(r"<!-- docs-test: skip: (.+?) -->\s*$")
GUIDE_FILE = re.compile(r"<!-- example-file: \S+ -->\s*$")


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md")) + sorted((DOCS / "algorithms").glob("*.md"))


def blocks(page: Path) -> list[tuple[int, str, str, str | None]]:
    """(line number, language, code, why it is skipped or None) for each Python block of a page."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        above = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(above)
        why = skip.group(1) if skip else ("built and run by tests/test_adapter_guide.py" if GUIDE_FILE.search(above)
                                          else None)
        out.append((line, m.group(1), m.group(2), why))
    return out


PAGES = [p for p in pages() if blocks(p)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run_and_print_what_the_page_says(page, monkeypatch, tmp_path):
    """Claim: every Python example of the page runs as written and a pycon example prints the page's output."""
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    ns: dict = {"__name__": "__docs_example__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    for line, lang, code, why in blocks(page):
        if why is not None:
            continue
        name = f"{page.relative_to(ROOT)}:{line}"
        if lang == "pycon":
            test = parser.get_doctest(code, ns, name, str(page), line)
            report: list[str] = []
            result = runner.run(test, out=report.append, clear_globs=False)
            ns.update(test.globs)  # DocTest works on a copy: later blocks see this block's names
            assert result.failed == 0, f"{name}: the output differs from the page\n" + "".join(report)
        else:
            exec(compile(code, name, "exec"), ns)  # noqa: S102 - the page's own example
        ran += 1
    assert ran or all(b[3] for b in blocks(page))


def test_skipped_blocks_say_why_and_the_examples_page_is_checked():
    """Claim: a block is left out only with a stated reason, and the worked-examples page has checked outputs."""
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"<!-- docs-test: skip:?(.*?)-->", text):
            assert m.group(1).strip(), f"{page.name}: a docs-test skip marker without a reason"
    ex = [b for b in blocks(DOCS / "examples.md") if b[1] == "pycon" and b[3] is None]
    assert len(ex) >= 5 and all(">>>" in b[2] for b in ex)


# --------------------------------------------------------------------------- the committed data the pages read
def test_compatibility_summary_is_the_committed_reports():
    """Claim: docs/compatibility/summary.json (what each algorithm page shows) says exactly what the committed
    compatibility page and per-framework reports say (both come from one `rlspec check all` run)."""
    from rlspec.conformance import site_data

    committed = site_data.load_summary(DOCS / "compatibility" / "summary.json")
    assert committed is not None
    assert committed == site_data.summary_from_reports(DOCS / "compatibility.md")


def test_compatibility_summary_counts_add_up():
    """Claim: per framework, the cells' cases per verdict add up to the framework's totals on the compatibility page,
    and every xfail/deviation case of an entry is explained by one of its listed reasons."""
    from rlspec.conformance import site_data

    data = site_data.load_summary(DOCS / "compatibility" / "summary.json")
    page = (DOCS / "compatibility.md").read_text(encoding="utf-8")
    for impl, info in data["implementations"].items():
        row = re.search(rf"^\| {impl} \| [^|]+ \| ([^|]+) \|", page, re.M).group(1).strip()
        totals = {c.rsplit(" ", 1)[0]: int(c.rsplit(" ", 1)[1]) for c in row.split(", ")}
        assert info["counts"] == totals, impl
        judged: dict[str, int] = {}
        for per in data["entries"].values():
            e = per.get(impl)
            if e is None:
                continue
            for st in ("xfail", "deviation"):
                in_cells = sum(c["counts"].get(st, 0) for c in e["cells"].values())
                assert in_cells == sum(it["cases"] for it in e["known"] if it["status"] == st), (impl, st)
            for c in e["cells"].values():
                for st, n in c["counts"].items():
                    judged[st] = judged.get(st, 0) + n
        for st in ("pass", "xfail", "deviation", "fail", "error"):
            assert judged.get(st, 0) == totals.get(st, 0), (impl, st)


def test_compatibility_summary_from_runs_equals_the_one_from_their_reports(tmp_path):
    """Claim: the summary `rlspec check all --page` writes from the runs (compatibility_summary) is the one
    summary_from_reports rebuilds from the markdown those same runs produce (a synthetic run with every verdict)."""
    from rlspec.conformance import reports, site_data
    from rlspec.conformance.harness import Result, Results

    rs = Results([
        Result("ppo/float64/a", "ppo", "float64", "pass", max_rel_err=2e-16),
        Result("ppo/float64/b", "ppo", "float64", "xfail", max_rel_err=float("inf"), reason="a known bug", message="m"),
        Result("ppo/float32/b", "ppo", "float32", "deviation", max_rel_err=0.5, reason="a design choice", message="m"),
        Result("ppo/float32/c", "ppo", "float32", "unsupported", message="adapter: not implemented (no such mode)"),
        Result("gspo/*", "gspo", "*", "unsupported", message="impl does not implement gspo"),
        Result("grpo/float64/a", "grpo", "float64", "fail", max_rel_err=3.0, message="loss differs"),
    ], impl="impl", version="1.2")
    report = tmp_path / "page" / "impl.md"
    report.parent.mkdir()
    report.write_text(reports.to_markdown(rs), encoding="utf-8")
    (tmp_path / "page.md").write_text(
        "# Compatibility\n\nGenerated by `rlspec check all --page page.md` on 2026-01-02; do not edit by hand.\n\n"
        "| implementation | version | counts | report |\n|---|---|---|---|\n"
        f"| impl | 1.2 | {', '.join(f'{k} {v}' for k, v in rs.counts().items())} | [report](page/impl.md) |\n",
        encoding="utf-8")
    from_runs = site_data.compatibility_summary({"impl": rs}, "2026-01-02", "rlspec check all --page page.md")
    assert from_runs == site_data.summary_from_reports(tmp_path / "page.md")
    assert from_runs["entries"]["ppo"]["impl"]["cells"]["float64"] == {
        "counts": {"pass": 1, "xfail": 1}, "max_rel_err": {"pass": "2.0e-16", "xfail": "inf"}}
    assert from_runs["entries"]["gspo"]["impl"]["not_checked"] == [
        {"status": "unsupported", "reason": "impl does not implement gspo", "cases": 1}]


def test_e2e_curves_are_consistent():
    """Claim: every committed e2e curve has one reward per step of its stated settings, its first/last window
    means are those of its reward list, and its verdict follows the stated gate."""
    path = DOCS / "e2e" / "curves.json"
    if not path.is_file():
        pytest.skip("no committed e2e curves")
    data = json.loads(path.read_text(encoding="utf-8"))
    m = data["matrix"]
    steps, w, gate = m["settings"]["steps"], m["gate"]["window"], m["gate"]
    for name, row in m["rows"].items():
        for r in row.get("runs", []):
            y = r["reward"]
            assert len(y) == steps, name
            assert r["first"] == pytest.approx(sum(y[:w]) / w, abs=1e-3), name
            assert r["last"] == pytest.approx(sum(y[-w:]) / w, abs=1e-3), name
            margin = min(abs(r["last"] - gate["threshold"]), abs(r["last"] - r["first"] - gate["min_gain"]))
            if margin > 1e-3:  # the stored means are rounded to 4 digits: judge only away from the boundary
                ok = r["last"] >= gate["threshold"] and r["last"] - r["first"] >= gate["min_gain"]
                assert r["passes"] == ok, name
        if row.get("runs"):
            passes = [r["passes"] for r in row["runs"]]
            want = "learns" if all(passes) else ("does not learn" if not any(passes) else "learns on some seeds")
            assert row["verdict"] == want, name
    for name, row in data.get("pipeline", {}).get("rows", {}).items():
        assert len(row["runs"][0]["reward"]) == data["pipeline"]["settings"]["steps"], name

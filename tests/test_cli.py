"""The ``rlspec`` command line, run in-process: outputs, files written and exit codes."""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET

import pytest

from rlspec.conformance.cli import main

WRONG_ADAPTER = textwrap.dedent('''
    import numpy as np
    from rlspec.conformance.adapters.optimized_adapter import OptimizedAdapter


    class NegatedGradient(OptimizedAdapter):
        """The optimized implementation with the sign of dlogp flipped: the loss is right, the update is not."""
        name = "negated"
        dtypes = ("float64",)

        def run(self, spec, inputs, config, dtype):
            out = super().run(spec, inputs, config, dtype)
            out["dlogp"] = -out["dlogp"]
            return out


    class Misbehaving(OptimizedAdapter):
        """Raises on ragged batches and returns NaN on the others."""
        name = "misbehaving"
        dtypes = ("float64",)

        def run(self, spec, inputs, config, dtype):
            if not inputs["mask"].all():
                raise RuntimeError("cannot handle padding")
            out = super().run(spec, inputs, config, dtype)
            out["loss"] = float("nan")
            return out
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rlspec_adapters.py").write_text(WRONG_ADAPTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rlspec_adapters"


def test_help_everywhere(capsys):
    assert main(["--help"]) == 0
    for cmd in ("list", "show", "check", "vectors"):
        assert main([cmd, "--help"]) == 0
    assert "exit codes" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["show", "no-such-algorithm-xyz"]) == 2
    assert main(["check", "optimized", "--dtypes", "float16"]) == 2
    assert main(["check", "optimized", "--algorithms", "nope_nope"]) == 2
    assert main(["check", "no-such-impl"]) == 2
    assert main(["list", "--kind", "banana"]) == 2
    assert "error" in capsys.readouterr().err


def test_list_table_and_json(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ppo" in out and "1707.06347" in out and "Proximal Policy Optimization" in out and "planned" in out
    assert main(["list", "--json", "--kind", "advantage", "--status", "implemented"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["kind"] for r in rows} == {"advantage"} and "grpo" in {r["name"] for r in rows}


def test_show(capsys):
    assert main(["show", "ppo"]) == 0
    out = capsys.readouterr().out
    for text in ("Proximal Policy Optimization", "arXiv 1707.06347 §3 eq. (7)", "provenance: paper", "eps_low",
                 "optimized: yes"):
        assert text in out
    assert main(["show", "ppo_clip", "--json"]) == 0  # an alias
    d = json.loads(capsys.readouterr().out)
    assert d["name"] == "ppo" and d["implementations"]["optimized"] == "yes"


def test_check_optimized_writes_reports(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["check", "optimized", "--out", str(out), "--algorithms", "ppo,grpo", "--dtypes", "float64,float32",
                 "--n-random", "2", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "ppo" in text and "float32" in text and "pass " in text
    assert not re.search(r"\b\d+/\d+\b", text.split("cell:")[0])  # counts per verdict, no passed/judged fraction
    for f in ("report.json", "junit.xml", "report.md", "matrix.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["summary"]["unexpected"] == 0 and {r["algorithm"] for r in rep["results"]} == {"ppo", "grpo"}
    suites = ET.parse(out / "junit.xml").getroot()
    assert int(suites.get("tests")) == len(rep["results"]) and suites.get("failures") == "0"
    assert "| ppo |" in (out / "report.md").read_text()


def test_check_user_adapter_with_negated_gradient_fails(tmp_path, user_module, capsys):
    out = tmp_path / "rep"
    code = main(["check", f"{user_module}:NegatedGradient", "--out", str(out), "--algorithms", "ppo",
                 "--n-random", "1", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in text and "dlogp" in text
    rep = json.loads((out / "report.json").read_text())
    fails = [r for r in rep["results"] if r["status"] == "fail"]
    assert fails and all(r["output"] == "dlogp" for r in fails)
    assert all("NegatedGradient" in r["reproduction"] for r in fails)
    # a zero gradient (all-false mask, zero advantages) is not changed by negation: those cases still pass
    assert any(r["status"] == "pass" and r["case_id"].endswith("all-false-mask") for r in rep["results"])
    junit = ET.parse(out / "junit.xml").getroot()
    assert int(junit.get("failures")) == len(fails)
    assert "Reproduction:" in (out / "report.md").read_text()


def test_check_raising_or_nan_adapter_is_failed_cases_and_run_continues(tmp_path, user_module, capsys):
    out = tmp_path / "rep"
    code = main(["check", f"{user_module}:Misbehaving", "--out", str(out), "--algorithms", "ppo,kl_k1",
                 "--n-random", "0", "--no-progress", "--json"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    rep = json.loads((out / "report.json").read_text())
    statuses = {r["case_id"]: r for r in rep["results"]}
    assert statuses["ppo/float64/ragged-garbage"]["status"] == "error"
    assert "cannot handle padding" in statuses["ppo/float64/ragged-garbage"]["message"]
    assert statuses["ppo/float64/basic"]["status"] == "fail"  # NaN loss
    assert "non-finite" in statuses["ppo/float64/basic"]["message"]
    assert any(k.startswith("kl_k1/") for k in statuses)  # the run went on to the next algorithm
    assert summary["unexpected"] == len(rep["results"])


def test_check_expectations_strict_and_stale(tmp_path, user_module, capsys):
    exp = tmp_path / "exp.txt"
    # an exact id of a passing case is an xpass; the glob covers the failing cases only (passing ones stay pass)
    exp.write_text("ppo/float64/all-false-mask  xfail  passes (zero gradient)\nppo/*  xfail  negated on purpose\n"
                   "ppo/float64/no-such-case  xfail  stale entry\n")
    args = ["check", f"{user_module}:NegatedGradient", "--out", str(tmp_path / "r"), "--algorithms", "ppo",
            "--n-random", "0", "--no-progress", "--expectations", str(exp)]
    assert main(args) == 0  # every failure is expected; xpass + stale are reported only
    text = capsys.readouterr().out
    assert "STALE" in text and "XPASS ppo/float64/all-false-mask" in text and text.count("XPASS") == 1
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    st = {r["case_id"]: r["status"] for r in rep["results"]}
    assert st["ppo/float64/zero-adv"] == "pass" and "xfail" in st.values()
    assert main(args + ["--strict"]) == 1


def test_check_bad_expectation_file_is_usage_error(tmp_path):
    exp = tmp_path / "exp.txt"
    exp.write_text("ppo/* maybe why\n")
    assert main(["check", "optimized", "--algorithms", "ppo", "--expectations", str(exp), "--no-progress",
                 "--out", str(tmp_path / "r")]) == 2


def test_vectors_generate_and_check(tmp_path, capsys):
    assert main(["vectors", "--out", str(tmp_path), "--algorithms", "ppo,grpo"]) == 0
    assert "wrote" in capsys.readouterr().out
    files = sorted(tmp_path.glob("*/*.json"))
    assert {p.parent.name for p in files} == {"ppo", "grpo"}
    doc = json.loads(files[0].read_text())
    assert {"schema_version", "paper", "inputs", "outputs", "tolerance", "config"} <= set(doc)
    assert main(["vectors", "--check"]) == 0  # the committed vectors
    capsys.readouterr()
    # a directory that lacks most implemented entries fails the check
    assert main(["vectors", "--check", "--out", str(tmp_path)]) == 1
    assert "no golden vectors" in capsys.readouterr().out


def test_check_all_writes_the_compatibility_matrix(tmp_path, capsys):
    """`rlspec check all` checks optimized and every peer; an absent framework is 'not installed', never a pass,
    and makes the run exit 1; the combined page lists every implementation."""
    from rlspec.conformance import adapters

    page = tmp_path / "docs" / "compatibility.md"
    code = main(["check", "all", "--algorithms", "ppo", "--n-random", "0", "--dtypes", "float64", "--no-progress",
                 "--out", str(tmp_path / "all"), "--page", str(page)])
    text = page.read_text()
    assert (tmp_path / "all" / "compatibility.png").exists() and (tmp_path / "all" / "compatibility.json").exists()
    summary = json.loads((tmp_path / "all" / "compatibility.json").read_text())
    assert "optimized" in summary and "| optimized |" in text
    missing = []
    for name in adapters.PEERS:
        try:
            ok, _ = adapters.load(name).available()
        except ImportError:
            ok = False
        if not ok:
            missing.append(name)
    for name in missing:  # reported, not passed
        if name in summary:
            assert summary[name]["counts"].get("pass", 0) == 0
            assert summary[name]["counts"].get("not-installed", 0) > 0
    if missing:
        assert code == 1


def test_page_only_with_all(tmp_path):
    assert main(["check", "optimized", "--page", str(tmp_path / "x.md"), "--no-progress"]) == 2

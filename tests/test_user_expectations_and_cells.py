"""Issue 12: expectation files found beside a user's adapter, `rlspec expectations --from`, matrix cells that
count every verdict, the judged error, and fixed cases off clip boundaries."""

from __future__ import annotations

import json
import math
import re
import textwrap

import numpy as np
import pytest

from rlspec.conformance import adapters, expectations, harness, reports, tolerances
from rlspec.conformance.cli import main
from rlspec.conformance.harness import Result, Results

ADAPTER = textwrap.dedent('''
    from rlspec.conformance.adapters.optimized_adapter import OptimizedAdapter


    class Negated(OptimizedAdapter):
        """dlogp with the wrong sign."""
        name = "neg"
        version = "2.0"
        dtypes = ("float64",)

        def run(self, spec, inputs, config, dtype):
            out = super().run(spec, inputs, config, dtype)
            out["dlogp"] = -out["dlogp"]
            return out
''')


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "neg_adapter.py").write_text(ADAPTER)
    monkeypatch.syspath_prepend(str(d))
    yield d
    import sys

    sys.modules.pop("neg_adapter", None)


# --------------------------------------------------------------------------- lookup beside the module
def test_lookup_beside_the_users_module(user_dir):
    a = adapters.load("neg_adapter:Negated")
    assert expectations.candidates(a) == [user_dir / "neg-2.0.txt", user_dir / "neg_adapter.txt", user_dir / "neg.txt"]
    assert expectations.locate(a) is None
    (user_dir / "neg.txt").write_text("ppo/*  xfail  x\n")
    assert expectations.locate(a) == user_dir / "neg.txt"
    (user_dir / "neg_adapter.txt").write_text("ppo/*  xfail  x\n")
    assert expectations.locate(a) == user_dir / "neg_adapter.txt"
    (user_dir / "neg-2.0.txt").write_text("ppo/*  xfail  x\n")
    assert expectations.locate(a) == user_dir / "neg-2.0.txt"  # the version's own file first


def test_builtin_adapters_keep_the_package_folder():
    a = adapters.load("optimized")
    assert expectations.locate(a) == expectations.DIRECTORY / "optimized.txt"
    assert all(p.parent == expectations.DIRECTORY for p in expectations.candidates(a))


def test_check_reads_the_file_beside_the_module_and_flags_override_it(user_dir, tmp_path, capsys):
    args = ["check", "neg_adapter:Negated", "--algorithms", "ppo", "--n-random", "0", "--no-progress",
            "--out", str(tmp_path / "r")]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "expectations: none found (looked for" in out and "neg_adapter.txt" in out
    (user_dir / "neg_adapter.txt").write_text("ppo/*  xfail  negated on purpose\n")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"expectations: {user_dir / 'neg_adapter.txt'} (1 entries)" in out
    assert json.loads((tmp_path / "r" / "report.json").read_text())["expectations"] == str(user_dir / "neg_adapter.txt")
    assert main(args + ["--no-expectations"]) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(args + ["--expectations", str(empty)]) == 1
    capsys.readouterr()
    assert main(["check", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "beside the module's file" in help_text and "MODULE.txt" in help_text and "NAME-VERSION.txt" in help_text


# --------------------------------------------------------------------------- rlspec expectations --from
def test_expectations_from_report_drafts_one_line_per_unexpected_case(user_dir, tmp_path, capsys):
    rep = tmp_path / "r"
    assert main(["check", "neg_adapter:Negated", "--algorithms", "ppo", "--n-random", "0", "--no-progress",
                 "--out", str(rep)]) == 1
    capsys.readouterr()
    draft = tmp_path / "draft.txt"
    assert main(["expectations", "--from", str(rep / "report.json"), "--out", str(draft)]) == 0
    doc = json.loads((rep / "report.json").read_text())
    bad = sorted(r["case_id"] for r in doc["results"] if r["status"] in ("fail", "error"))
    lines = [ln for ln in draft.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert sorted(ln.split()[0] for ln in lines) == bad
    assert all(ln.split()[1] == expectations.PLACEHOLDER and "dlogp" in ln for ln in lines)
    # unclassified, the file does not load, and says why
    with pytest.raises(expectations.ExpectationFileError, match="classify"):
        expectations.load(draft)
    assert main(["check", "neg_adapter:Negated", "--algorithms", "ppo", "--n-random", "0", "--no-progress",
                 "--out", str(rep), "--expectations", str(draft)]) == 2
    # classified, it loads and makes the run exit 0
    draft.write_text(draft.read_text().replace(expectations.PLACEHOLDER, "xfail"))
    assert main(["check", "neg_adapter:Negated", "--algorithms", "ppo", "--n-random", "0", "--no-progress",
                 "--out", str(tmp_path / "r2"), "--expectations", str(draft)]) == 0
    capsys.readouterr()
    assert main(["expectations", "--from", str(rep / "report.json"), "--out", str(draft)]) == 2  # exists
    assert main(["expectations", "--from", str(rep / "report.json")]) == 0  # printed
    assert capsys.readouterr().out.count(expectations.PLACEHOLDER) >= len(bad)
    assert main(["expectations", "--from", str(tmp_path / "nope.json")]) == 2


# --------------------------------------------------------------------------- matrix cells
def _r(case, status, err=0.0):
    algo, dtype = case.split("/")[:2]
    return Result(case, algo, dtype, status, max_rel_err=err)


def test_cells_count_every_verdict():
    res = [_r(f"ppo/float64/p{i}", "pass", 1e-12) for i in range(30)]
    res += [_r(f"ppo/float64/x{i}", "xfail", 590.0) for i in range(7)]
    res += [_r(f"ppo/float64/u{i}", "unsupported") for i in range(3)]
    _, cols, cells = reports.matrix_rows({"impl": res})
    text = reports.cell_text(cells[("ppo", "float64")])
    assert text == "pass 30 (1.0e-12) · xfail 7 (5.9e+02) · unsupported 3"
    six = [_r(f"grpo/float32/p{i}", "pass") for i in range(6)] + [_r("grpo/float32/u", "unsupported")]
    assert reports.cell_text(reports.matrix_rows({"i": six})[2][("grpo", "float32")]) == "pass 6 (0) · unsupported 1"
    md = reports.markdown_matrix({"impl": res})
    assert "pass 30" in md and "37/37" not in md and "30/37" not in md
    txt = reports.text_matrix(res)
    assert not re.search(r"\b\d+/\d+\b", txt)
    assert reports.png_cell_text(cells[("ppo", "float64")]).startswith("pass 30 · xfail 7 · unsup 3")


def test_png_renders(tmp_path):
    res = Results([_r("ppo/float64/a", "pass"), _r("ppo/float64/b", "unsupported"), _r("grpo/float32/c", "fail", 2.0)])
    p = reports.render_matrix({"x": res}, tmp_path / "m.png")
    assert p.stat().st_size > 1000


def test_markdown_lists_every_known_and_xpass_case():
    res = Results([_r(f"ppo/float64/k{i}", "xfail", 1.0) for i in range(80)] +
                  [_r(f"ppo/float64/xp{i}", "xpass") for i in range(30)], impl="x")
    for r in res:
        r.reason = "a bug"
        if r.status == "xpass":
            r.message = f"passes, but f.txt:{r.case_id[-1]} expects xfail: a bug"
    md = reports.to_markdown(res)
    assert all(f"`{r.case_id}`" in md for r in res)
    assert "more" not in md.split("## Known failures")[1].split("## Unexpectedly passing")[0].replace("Cases (80)", "")


def test_console_summarizes_a_long_xpass_list(user_dir, tmp_path, capsys):
    from rlspec.conformance import inputs

    ids = [f"ppo/float64/{nb.name}" for nb in inputs.fixed_policy_batches()]
    (user_dir / "neg_adapter.txt").write_text("".join(f"{i}  xfail  listed\n" for i in ids) + "ppo/*  xfail  rest\n")
    # every fixed id listed exactly: the passing ones (zero gradient) xpass; keep them above 10 by making them pass
    from rlspec.conformance.adapters.optimized_adapter import OptimizedAdapter

    class Right(OptimizedAdapter):
        name, version, dtypes = "neg", "2.0", ("float64",)

    import neg_adapter

    neg_adapter.Right = Right
    assert main(["check", "neg_adapter:Right", "--algorithms", "ppo", "--n-random", "0", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.count("  XPASS ") == 10 and "more XPASS in" in out
    md = (tmp_path / "r" / "report.md").read_text()
    assert all(f"`{i}`" in md for i in ids)


# --------------------------------------------------------------------------- the judged error
def test_error_shown_is_against_the_reference_that_judged():
    """An element excused by the perturbation rule reports its error against the perturbed reference."""
    ref = {"dlogp": np.array([0.0, 0.5])}
    got = {"dlogp": np.array([-0.7, 0.5])}  # element 0 took the other branch
    alt = {"dlogp": np.array([-0.7, 0.5])}
    status, a, r, _, _ = harness.compare(ref, got, "float32", None, 1, [alt])
    assert status == "pass" and a == 0.0 and r == 0.0
    status, a, r, _, _ = harness.compare(ref, got, "float32", None, 1)
    rtol, atol = tolerances.tolerance("float32", 1)
    assert status == "fail" and math.isclose(r, 0.7 / (atol / rtol))


# --------------------------------------------------------------------------- ties
BOUNDARIES = {"eps=0.2": (0.8, 1.2), "eps_high=0.28": (1.28,), "dual_clip_c": (3.0, 10.0),
              "two_sided_clip delta": (4.0,), "cispo 1+eps_high": (5.0,)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fixed_cases_keep_ratios_off_clip_boundaries(dtype):
    """No fixed policy batch puts a token ratio π/π_old (after rounding to the dtype) within a few roundoffs of
    1 ± 0.2, 1 + 0.28, a dual-clip bound c ∈ {3, 10} or TRL's δ = 4; nor a log-ratio on the ±20 clamp.
    (bfloat16 rounds log-probs by ~0.4 %: near a boundary either branch is accepted by the perturbation rule
    of conformance/tolerances.py, which is the tie rule.)"""
    from rlspec.conformance import inputs

    u = tolerances.UNIT_ROUNDOFF[dtype]
    for nb in inputs.fixed_policy_batches():
        x = harness.cast_value(nb.inputs, dtype)
        m = x["mask"]
        if not m.any():
            continue
        lp, olp = x["logp"].astype(np.float64)[m], x["old_logp"].astype(np.float64)[m]
        lr = lp - olp
        slack = 8 * u * (np.abs(lp) + np.abs(olp) + 1.0)  # a few roundings of the log-ratio in the dtype
        for name, bounds in BOUNDARIES.items():
            for b in bounds:
                near = np.abs(lr - np.log(b)) <= slack
                assert not near.any(), (nb.name, dtype, name, b, np.exp(lr[near]))
        assert not (np.abs(np.abs(lr) - 20.0) <= slack).any(), (nb.name, dtype, "log_ratio_clamp=20")

"""docs/adapters.md works as written, `rlspec adapter new` writes a usable skeleton, `rlspec show` states contracts.

The guide's example (the imaginary framework ``tinyrl``, its adapter and its expectation file) is
extracted from the code blocks marked ``<!-- example-file: NAME -->``, written to a temporary folder,
and run through ``rlspec check module:attr`` and ``pytest conformance/ --impl=module:attr``: both must
give the same verdict on every case both report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlspec.conformance import adapters
from rlspec.conformance.cli import main
from rlspec.conformance.reports import CLI_TO_PYTEST, junit_verdicts

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adapters.md"
BLOCK = re.compile(r"<!-- example-file: (\S+) -->\n```\w*\n(.*?)```", re.S)
TARGET = "tinyrl_adapter:TinyRLAdapter"


def guide_files() -> dict[str, str]:
    """{file name: text} from the guide's marked blocks (blocks of one file are joined in order)."""
    files: dict[str, list[str]] = {}
    for name, body in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        files.setdefault(name, []).append(body)
    return {name: "\n\n".join(parts) for name, parts in files.items()}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    d = tmp_path_factory.mktemp("guide")
    for name, text in guide_files().items():
        (d / name).write_text(text, encoding="utf-8")
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))
    for mod in ("tinyrl", "tinyrl_adapter"):
        sys.modules.pop(mod, None)


def test_guide_has_the_example_files():
    files = guide_files()
    assert set(files) == {"tinyrl.py", "tinyrl_adapter.py", "tinyrl.txt"}
    assert "class TinyRLAdapter(Adapter)" in files["tinyrl_adapter.py"]
    text = GUIDE.read_text(encoding="utf-8")
    for topic in ("supports", "Unsupported", "conventions", "dtypes", "reproduction", "object.__new__",
                  "expectation", "Reading the report"):
        assert topic in text, topic
    assert "docs/adapters.md" in (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def _cli_verdicts(example: Path, out: Path, expectations: Path | None) -> tuple[int, dict[str, str]]:
    args = ["check", TARGET, "--algorithms", "ppo,grpo", "--no-progress", "--json", "--out", str(out)]
    code = main(args + (["--expectations", str(expectations)] if expectations else ["--no-expectations"]))
    report = json.loads((out / "report.json").read_text())
    return code, {r["case_id"]: r["status"] for r in report["results"]}


def test_guide_adapter_report_is_the_one_the_guide_reads(example, tmp_path, capsys):
    """Without expectations the six findings the guide explains fail (exit 1); with its file, exit 0."""
    code, verdicts = _cli_verdicts(example, tmp_path / "raw", None)
    capsys.readouterr()
    assert code == 1
    assert sorted(k for k, v in verdicts.items() if v in ("fail", "error")) == [
        "grpo/bfloat16/extra-padding-columns", "grpo/float32/all-equal-non-dyadic", "grpo/float32/random-9",
        "ppo/float32/log-ratio-50", "ppo/float64/log-ratio-100", "ppo/float64/log-ratio-50"]
    assert verdicts["ppo/float32/log-ratio-100"] == "unsupported"  # the paper's loss is beyond float32's range
    assert verdicts["ppo/float64/log-ratio-50+clamp=20"] == "pass"
    assert verdicts["ppo/float64/ragged-garbage+agg=group-token-mean"] == "unsupported"
    code, verdicts = _cli_verdicts(example, tmp_path / "classified", example / "tinyrl.txt")
    capsys.readouterr()
    assert code == 0
    assert verdicts["ppo/float64/log-ratio-50"] == "deviation"
    assert verdicts["grpo/float32/random-9"] == "xfail"
    assert "xpass" not in verdicts.values()
    # the file beside the adapter module is read by default: tinyrl.txt (the adapter's name)
    code, default = _cli_verdicts_default(example, tmp_path / "default")
    capsys.readouterr()
    assert code == 0 and default == verdicts


def _cli_verdicts_default(example: Path, out: Path) -> tuple[int, dict[str, str]]:
    code = main(["check", TARGET, "--algorithms", "ppo,grpo", "--no-progress", "--json", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["expectations"] == str((example / "tinyrl.txt").resolve())
    return code, {r["case_id"]: r["status"] for r in report["results"]}


def test_guide_reproduction_runs_with_the_framework_alone(example):
    """Part 1 of a reproduction needs only numpy, torch and tinyrl, and shows the clamped loss."""
    from rlspec.conformance import harness
    from rlspec.reference import registry

    spec = registry.get("ppo")
    case = next(c for c in harness.cases_for(spec, ("float64",), 0)[0] if c.name == "log-ratio-50")
    snippet = adapters.load(TARGET).reproduction(spec, harness.cast_value(case.inputs, "float64"), spec.config(),
                                                 "float64")
    proc = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(example)})
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.split()[0]) == pytest.approx(111483575.5, rel=1e-6)




def test_cli_and_pytest_give_the_same_verdicts(example, tmp_path, capsys):
    """`rlspec check` and `pytest conformance/` on the guide's adapter: same verdict on every case both report."""
    expectations = example / "tinyrl.txt"
    _, cli = _cli_verdicts(example, tmp_path / "cli", expectations)
    capsys.readouterr()
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "conformance/", f"--impl={TARGET}",
                           f"--expectations={expectations}", "-k", "ppo or grpo", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={junit}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    py = junit_verdicts(junit)
    both = sorted(set(py) & set(cli))
    assert len(both) >= 90, (len(both), proc.stdout[-2000:])
    differ = {c: (cli[c], py[c]) for c in both if CLI_TO_PYTEST[cli[c]] != py[c]}
    assert not differ, differ
    assert {py[c] for c in both} >= {"pass", "xfail", "skip"}


# --------------------------------------------------------------------------- rlspec adapter new
def test_adapter_new_writes_a_loadable_skeleton(tmp_path, monkeypatch, capsys):
    from rlspec.reference import registry

    assert main(["adapter", "new", "mylib", "--out", str(tmp_path)]) == 0
    module, expect = tmp_path / "mylib.py", tmp_path / "mylib.txt"
    text = module.read_text()
    for spec in registry.specs():
        if spec.status in ("implemented", "partial"):
            assert f"# def run_{spec.name}(self, inputs, config, dtype):" in text, spec.name
    assert "#     dlogp: (B, T) float (gradient of loss w.r.t. logp)" in text
    assert [ln for ln in expect.read_text().splitlines() if ln.strip() and not ln.startswith("#")] == []
    monkeypatch.syspath_prepend(str(tmp_path))
    a = adapters.load("mylib:MylibAdapter")
    assert a.name == "mylib" and not a.supports(registry.get("ppo"))
    capsys.readouterr()
    assert main(["check", "mylib:MylibAdapter", "--algorithms", "ppo", "--no-progress", "--expectations",
                 str(expect), "--out", str(tmp_path / "rep")]) == 0
    assert "unsupported 1" in capsys.readouterr().out
    # uncommenting a method declares the entry supported
    module.write_text(text.replace("    # def run_grpo(self, inputs, config, dtype):\n    #     return",
                                   "    def run_grpo(self, inputs, config, dtype):\n        return"))
    sys.modules.pop("mylib", None)
    try:
        assert adapters.load("mylib:MylibAdapter").supports(registry.get("grpo"))
    finally:
        sys.modules.pop("mylib", None)


def test_adapter_new_usage(tmp_path, capsys):
    assert main(["adapter", "new", "--help"]) == 0
    assert "exit codes" in capsys.readouterr().out
    assert main(["adapter", "new", "mylib", "--out", str(tmp_path)]) == 0
    assert main(["adapter", "new", "mylib", "--out", str(tmp_path)]) == 2  # exists
    assert "--force" in capsys.readouterr().err
    assert main(["adapter", "new", "mylib", "--out", str(tmp_path), "--force"]) == 0
    assert main(["adapter", "new", "my-lib", "--out", str(tmp_path)]) == 2
    assert main(["adapter", "new", "class", "--out", str(tmp_path)]) == 2
    assert main(["adapter"]) == 2


# --------------------------------------------------------------------------- rlspec show: the input contract
def test_show_states_the_input_contract(capsys):
    assert main(["show", "ppo", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    inputs = {i["name"]: i for i in d["inputs"]}
    assert inputs["logp"]["shape"] == "(B, T)" and inputs["logp"]["dtype"] == "float" and not inputs["logp"]["optional"]
    assert inputs["mask"]["dtype"] == "bool"
    assert inputs["group"]["shape"] == "(B,)" and inputs["group"]["optional"] and inputs["group"]["default"] == "None"
    assert [(o["name"], o["shape"]) for o in d["outputs"]] == [("loss", "scalar"), ("dlogp", "(B, T)")]
    assert d["outputs"][1]["gradient_of"] == "loss w.r.t. logp"
    assert main(["show", "grpo"]) == 0
    text = capsys.readouterr().out
    assert "rewards: (B,) float" in text and "adv: (B, T) float" in text
    assert main(["show", "gae", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in d["outputs"]] == ["adv", "returns"]
    assert "make_inputs" in d["inputs_source"]


def test_every_entry_has_a_contract():
    """Each entry with a reference gets named inputs with shapes and named outputs."""
    from rlspec.conformance import contract
    from rlspec.reference import registry

    for spec in registry.specs():
        if spec.fn is None:
            continue
        c = contract.input_contract(spec)
        assert c["source"], spec.name
        assert c["outputs"] and all(o["shape"] for o in c["outputs"]), spec.name
        assert all(i["dtype"] for i in c["inputs"] if i["drawn"]), spec.name

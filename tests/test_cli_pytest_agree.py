"""`rlspec check IMPL` and `pytest conformance/ --impl=IMPL` give the same verdict on every case both judge, for
each of the five built-in peer adapters (issue 12): same cases (conventions and group layouts included), same
expectation files, Unsupported a skip in pytest and "unsupported" in the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlspec.conformance import adapters
from rlspec.conformance.cli import main
from rlspec.conformance.reports import CLI_TO_PYTEST, junit_verdicts

ROOT = Path(__file__).resolve().parents[1]
#: entries tried, in order; the first three an adapter supports are checked
CANDIDATES = ("ppo", "grpo", "dapo", "rloo", "gspo", "cispo", "kl_k3", "gae", "reinforce_pp", "dr_grpo", "entropy")


@pytest.mark.peers
@pytest.mark.parametrize("impl", ["verl", "trl", "openrlhf", "liger", "areal"])
def test_cli_and_pytest_agree(impl, tmp_path, capsys):
    from rlspec.reference import registry

    a = adapters.load(impl)
    ok, why = a.available()
    if not ok:
        pytest.skip(why)
    names = [n for n in CANDIDATES if n in registry.names() and a.supports(registry.get(n))][:3]
    assert names, f"{impl} supports none of {CANDIDATES}"
    code = main(["check", impl, "--algorithms", ",".join(names), "--n-random", "0", "--no-progress", "--json",
                 "--out", str(tmp_path / "cli")])
    capsys.readouterr()
    assert code in (0, 1)
    cli = {r["case_id"]: r["status"] for r in json.loads((tmp_path / "cli" / "report.json").read_text())["results"]}
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "conformance/test_conformance.py", f"--impl={impl}",
                           f"--algorithms={','.join(names)}", "-k", "test_fixed_case", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={junit}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    py = {k: v for k, v in junit_verdicts(junit).items() if any(k.startswith(f"{n}/") for n in names)}
    both = sorted(set(py) & set(cli))
    assert len(both) >= 0.9 * len(py) and both, (len(both), len(py), len(cli))
    differ = {c: (cli[c], py[c]) for c in both if CLI_TO_PYTEST[cli[c]] != py[c]}
    assert not differ, differ

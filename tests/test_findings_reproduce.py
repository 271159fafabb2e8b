"""Every committed finding's reproduction (docs/findings/<framework>/F<n>.py) fails on the pinned version: it ends
in an assert of the correct behaviour and raises AssertionError while the finding stands (issue 11). One
subprocess per framework runs all of its scripts, each in a fresh namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "docs" / "findings"

RUNNER = r'''
import json, sys, traceback, warnings
warnings.filterwarnings("ignore")
out = {}
for path in sys.argv[1:]:
    src = open(path, encoding="utf-8").read()
    try:
        exec(compile(src, path, "exec"), {"__name__": "__main__"})
        out[path] = "passed"
    except AssertionError:
        out[path] = "AssertionError"
    except BaseException as e:
        out[path] = f"{type(e).__name__}: {str(e)[:200]}"
print("@@" + json.dumps(out))
'''


@pytest.mark.peers
@pytest.mark.parametrize("framework", ["verl", "trl", "openrlhf", "liger", "areal"])
def test_every_reproduction_fails_on_the_pinned_version(framework):
    scripts = sorted((FOLDER / framework).glob("F*.py"), key=lambda p: int(p.stem[1:]))
    if not scripts:
        pytest.skip(f"no findings for {framework}")
    env = {**os.environ, "VERL_FORCE_DEVICE": "cpu", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, *map(str, scripts)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@")), None)
    assert line is not None, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = json.loads(line[2:])
    wrong = {Path(k).name: v for k, v in got.items() if v != "AssertionError"}
    assert not wrong, wrong
    assert len(got) == len(scripts)

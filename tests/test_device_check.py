""".ci/device-check, the one prepared command for a GPU machine: it parses, and on a machine without a CUDA device
it says so and exits 3 without running anything (the checks themselves need the GPU: docs/benchmarks.md)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "device-check"


def test_script_parses():
    """bash -n: the script is valid bash (it runs unattended on a machine no CI reaches)."""
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device: the script would run the checks")
def test_refuses_without_a_cuda_device(tmp_path):
    """Without a CUDA device: exit 3, a message naming the reason, and no report written."""
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"))
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "no CUDA device" in r.stderr
    assert not any((tmp_path / "out").iterdir())

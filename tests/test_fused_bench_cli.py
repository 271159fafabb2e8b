"""``rlspec bench`` at a tiny size (seconds): the files it promises exist and its table says what it measured.

Claims checked: exit code 0 with bench.md / bench.json / bench.png written; every requested (loss, dtype) has an
rlspec row and a limit row at the requested size; the markdown names the machine and its load; bad arguments
exit 2.
"""

from __future__ import annotations

import json

from rlspec.conformance.cli import main


def test_bench_cli_tiny(tmp_path, capsys):
    """A tiny run writes its three files, with rows for each loss/dtype and the limit, and names the machine."""
    rc = main(["bench", "--tokens", "2048", "--losses", "ppo,gspo", "--dtypes", "float32,bfloat16", "--vocab", "512",
               "--lmhead-tokens", "32", "--hidden", "16", "--rounds", "1", "--threads", "1", "--no-memory",
               "--no-verl", "--variants", "rlspec,rlspec-eager,naive", "--out", str(tmp_path), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "bench.json").read_text())["machine"] == res["machine"]
    assert (tmp_path / "bench.png").stat().st_size > 1000
    got = {(r["loss"], r["dtype"], r["variant"]) for r in res["elementwise"] if r["tokens"] == 2048}
    for loss in ("ppo", "gspo"):
        for dt in ("float32", "bfloat16"):
            assert {(loss, dt, "rlspec"), (loss, dt, "limit"), (loss, dt, "naive")} <= got
    assert {r["variant"] for r in res["lmhead"]} >= {"limit", "fused", "materialized"}
    md = (tmp_path / "bench.md").read_text()
    assert res["machine"]["cpu"] in md and f"torch {res['machine']['torch']}" in md and "with 1 threads" in md
    assert res["machine"]["load"] is not None and f"load average {res['machine']['load']:.2f}" in md


def test_bench_cli_bad_arguments_exit_2(tmp_path):
    """An unknown loss or a malformed size list is a usage error (exit 2), not a traceback."""
    assert main(["bench", "--losses", "no_such_loss", "--out", str(tmp_path)]) == 2
    assert main(["bench", "--tokens", "12,x", "--out", str(tmp_path)]) == 2

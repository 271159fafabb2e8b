"""Plumbing of the conformance harness: tolerance rule, expectation files, flattening, statuses, vectors."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from rlspec.conformance import expectations, harness, tolerances, vectors
from rlspec.conformance.adapters.base import Adapter
from rlspec.conformance.harness import Result, Results


# --------------------------------------------------------------------------- tolerances
def test_tolerance_scales_with_sqrt_of_terms():
    """The stated rule: both tolerances grow like √n_terms; dtypes ordered float64 < float32 < bfloat16."""
    r1, a1 = tolerances.tolerance("float32", 1)
    r100, a100 = tolerances.tolerance("float32", 100)
    assert r100 == pytest.approx(10 * r1) and a100 == pytest.approx(10 * a1)
    assert tolerances.tolerance("float64")[0] < r1 < tolerances.tolerance("bfloat16")[0]


@pytest.mark.parametrize("dtype", tolerances.DTYPES)
def test_close_accepts_within_and_rejects_beyond(dtype):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=50)
    rtol, atol = tolerances.tolerance(dtype)
    ok, abs_err, _ = tolerances.close(ref, ref * (1 + 0.5 * rtol), dtype)
    assert ok and abs_err > 0
    bad = ref.copy()
    bad[7] += 10 * (atol + rtol * abs(ref[7]))
    ok, abs_err, rel = tolerances.close(ref, bad, dtype)
    assert not ok and abs_err == pytest.approx(10 * (atol + rtol * abs(ref[7])))


def test_close_never_passes_nan_or_inf():
    assert tolerances.close([1.0, 2.0], [1.0, math.nan], "bfloat16") == (False, math.inf, math.inf)
    assert not tolerances.close(1.0, math.inf, "bfloat16")[0]
    assert not tolerances.close(math.nan, math.nan, "float64")[0]


def test_close_sum_over_many_terms_gets_looser():
    ref, got = 1.0, 1.0 + 5e-5
    assert not tolerances.close(ref, got, "float32", n_terms=1)[0]
    assert tolerances.close(ref, got, "float32", n_terms=100)[0]


# --------------------------------------------------------------------------- expectations
TEXT = """
# comment
ppo/float32/*            xfail      known bug https://example.org/issues/1#issuecomment-2
grpo/*/basic             deviation  by design   # trailing comment
gone/float64/x           xfail      was fixed long ago
"""


def _res(case_id, status):
    algo, dtype = case_id.split("/")[:2]
    return Result(case_id, algo, dtype, status)


def test_parse_expectations():
    entries = expectations.parse(TEXT, "f.txt")
    assert [(e.pattern, e.status, e.line) for e in entries] == [
        ("ppo/float32/*", "xfail", 3), ("grpo/*/basic", "deviation", 4), ("gone/float64/x", "xfail", 5)]
    assert entries[0].reason.endswith("issues/1#issuecomment-2")
    assert entries[1].reason == "by design"


@pytest.mark.parametrize("bad", ["ppo/float32/x", "ppo/x maybe reason", "ppo/x xfail"])
def test_parse_rejects_malformed_lines(bad):
    with pytest.raises(expectations.ExpectationFileError, match="f.txt:1"):
        expectations.parse(bad, "f.txt")


def test_apply_expectations_statuses_and_staleness():
    res = Results([_res("ppo/float32/a", "fail"), _res("ppo/float32/b", "pass"), _res("grpo/float64/basic", "error"),
                   _res("ppo/float64/a", "fail"), _res("gone/float64/y", "pass")])
    stale = expectations.apply(res, expectations.parse(TEXT, "f.txt"))
    # ppo/float32/b passes and only a glob covers it: globs apply only to cases that differ
    assert [r.status for r in res] == ["xfail", "pass", "deviation", "fail", "pass"]
    assert res[0].reason.startswith("known bug") and res[1].reason == ""
    assert len(stale) == 1 and "gone/float64/x" in stale[0] and res.stale == stale


def test_only_an_exact_id_turns_a_pass_into_xpass():
    text = "ppo/float64/a  xfail  exact line\nppo/*/b  xfail  glob line\ngrpo/*  deviation  covers passing cases only\n"
    res = Results([_res("ppo/float64/a", "pass"), _res("ppo/float64/b", "pass"), _res("ppo/float32/b", "fail"),
                   _res("grpo/float64/c", "pass")])
    stale = expectations.apply(res, expectations.parse(text, "f.txt"))
    assert [r.status for r in res] == ["xpass", "pass", "xfail", "pass"]
    assert "f.txt:1" in res[0].message
    assert len(stale) == 1 and "grpo/*" in stale[0]  # a glob that classifies no differing case is stale
    assert expectations.match(expectations.parse(text, "f.txt"), "ppo/float64/b", differs=False) is None


def test_entries_of_algorithms_not_run_are_not_stale():
    res = Results([_res("ppo/float32/a", "fail")])
    stale = expectations.apply(res, expectations.parse(TEXT, "f.txt"))
    assert stale == []  # grpo and gone were not part of this run


def test_find_prefers_versioned_file(tmp_path):
    (tmp_path / "lib.txt").write_text("")
    assert expectations.find("lib", "1.2", tmp_path).name == "lib.txt"
    (tmp_path / "lib-1.2.txt").write_text("")
    assert expectations.find("lib", "1.2", tmp_path).name == "lib-1.2.txt"
    assert expectations.find("other", "", tmp_path) is None


def test_committed_expectation_files_parse():
    for p in expectations.DIRECTORY.glob("*.txt"):
        expectations.load(p)


# --------------------------------------------------------------------------- flattening / comparison
@dataclasses.dataclass(frozen=True)
class _State:
    alpha: np.ndarray
    beta: float


def test_flatten_nested_outputs():
    flat = harness.flatten({"adv": np.ones(2), "state": _State(np.zeros(3), 2.0), "pair": (np.ones(1), 3.0)})
    assert sorted(flat) == ["adv", "pair.0", "pair.1", "state.alpha", "state.beta"]
    assert flat["state.beta"] == 2.0


def test_name_outputs_by_registry():
    spec = SimpleNamespace(name="x", kind="policy_loss", outputs=())
    assert sorted(harness.name_outputs(spec, (1.0, np.zeros(2)))) == ["dlogp", "loss"]
    with pytest.raises(ValueError, match="returned 3 values"):
        harness.name_outputs(spec, (1.0, 2.0, 3.0))


def test_compare_only_at_mask_and_gradient_must_be_finite():
    mask = np.array([[True, False]])
    ref = {"loss": 1.0, "dlogp": np.array([[0.5, 0.0]]), "adv": np.array([[2.0, 0.0]])}
    ok = {"loss": 1.0, "dlogp": np.array([[0.5, 0.0]]), "adv": np.array([[2.0, 123.0]])}
    assert harness.compare(ref, ok, "float64", mask, 1)[0] == "pass"  # garbage at a masked adv is not compared
    nan_grad = {**ok, "dlogp": np.array([[0.5, np.nan]])}
    status, *_, msg = harness.compare(ref, nan_grad, "float64", mask, 1)
    assert status == "fail" and "masked position" in msg
    assert harness.compare(ref, {"loss": 1.0}, "float64", mask, 1)[0] == "error"  # missing output
    assert harness.compare(ref, {**ok, "loss": 1.1}, "float64", mask, 1)[0] == "fail"


def test_round_bfloat16_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=1000) * 10
    want = torch.tensor(x).to(torch.bfloat16).to(torch.float64).numpy()
    np.testing.assert_array_equal(harness.round_bfloat16(x).astype(np.float64), want)


# --------------------------------------------------------------------------- statuses
class _NoPPO(Adapter):
    name = "noppo"
    dtypes = ("float64",)

    def supports(self, spec):
        return spec.name != "ppo"

    def run(self, spec, inputs, config, dtype):
        raise RuntimeError("boom")


class _Missing(_NoPPO):
    def available(self):
        return False, "pip install missinglib"


def test_unsupported_and_planned_are_reported():
    from rlspec.reference import registry

    planned = registry.names(status="planned")[0]
    res = harness.run(_NoPPO(), algorithms=["ppo", planned], n_random=0)
    by = {r.algorithm: r.status for r in res}
    assert by == {"ppo": "unsupported", planned: "planned"}


def test_requested_dtype_the_adapter_lacks_is_unsupported():
    res = harness.run(_NoPPO(), algorithms=["grpo"], dtypes=["float64", "bfloat16"], n_random=0)
    assert any(r.status == "unsupported" and r.dtype == "bfloat16" for r in res)
    assert {r.status for r in res if r.dtype == "float64"} == {"error"}  # the adapter raises: error, run goes on
    assert all("boom" in r.message and "registry.get('grpo')" in r.reproduction for r in res if r.status == "error")


def test_not_installed_marks_every_case():
    res = harness.run(_Missing(), algorithms=["grpo"], n_random=1)
    assert res and {r.status for r in res} == {"not-installed"}
    assert "pip install" in res[0].message


def test_timeout_is_an_error():
    import time

    class Slow(_NoPPO):
        def run(self, spec, inputs, config, dtype):
            time.sleep(2)

    case = harness.cases_for(__import__("rlspec.reference.registry", fromlist=["_"]).get("grpo"), ("float64",), 0)[0][0]
    res = harness.run_case(Slow(), case, timeout=0.2)
    assert res.status == "error" and "timed out" in res.message


def test_cases_cover_the_named_hazards():
    from rlspec.reference import registry

    cases, dropped, _ = harness.cases_for(registry.get("ppo"), ("float64", "bfloat16"), n_random=2)
    names = {c.name for c in cases if c.dtype == "float64"}
    for n in ("ragged-garbage", "all-false-mask", "log-ratio-50", "beyond-dual-clip+dual-clip=3", "random-1",
              "ragged-garbage+agg=seq-mean-token-sum-norm", "singleton-groups"):
        assert n in names
    assert not any("extreme" in c.tags for c in cases if c.dtype == "bfloat16")
    assert len({c.id for c in cases}) == len(cases)


# --------------------------------------------------------------------------- golden vectors
def test_vector_encoding_round_trip():
    x = {"a": np.array([[1.5, np.nan], [np.inf, -np.inf]]), "m": np.array([True, False]), "g": np.array([3, -1]),
         "s": _State(np.ones(2), 0.5), "d": {"k": 1.0}, "n": None}
    enc = json.loads(json.dumps(vectors.encode(x["a"])))
    assert enc["data"] == [[1.5, "nan"], ["inf", "-inf"]]
    back = {k: vectors.decode(json.loads(json.dumps(vectors.encode(v)))) for k, v in x.items()}
    np.testing.assert_array_equal(back["a"], x["a"])
    assert back["m"].dtype == np.bool_ and back["g"].dtype == np.int64
    assert isinstance(back["s"], _State) and back["d"] == {"k": 1.0} and back["n"] is None


def test_committed_vectors_validate_and_reproduce():
    """Every committed vector validates against the schema and the reference still reproduces it;
    every implemented registry entry has vectors."""
    problems = vectors.check()
    assert not problems, "\n".join(problems[:20])


def test_a_tampered_vector_is_detected(tmp_path):
    src = sorted(vectors.files())[0]
    doc = json.loads(src.read_text())
    name = next(iter(doc["outputs"]))
    out = doc["outputs"][name]
    flat = out["data"]
    while isinstance(flat, list):
        flat, parent = flat[0], flat
    if isinstance(out["data"], list):
        parent[0] = (parent[0] if isinstance(parent[0], float) else 0.0) + 1.0
    else:
        out["data"] = float(out["data"]) + 1.0
    p = tmp_path / src.parent.name / src.name
    p.parent.mkdir()
    p.write_text(json.dumps(doc))
    assert any("not reproduced" in msg for msg in vectors.check_file(p))
    doc["schema_version"] = 99
    p.write_text(json.dumps(doc))
    assert any("schema" in msg for msg in vectors.check_file(p))


def test_vectors_are_small():
    """Golden vectors stay small enough to read and to ship: no file over 32 KB, and 12 KB per vector on average
    (the set grows with the registry: about 1.2 MB for 110 entries)."""
    sizes = [p.stat().st_size for p in vectors.files()]
    assert max(sizes) < 32_000
    assert sum(sizes) < 12_000 * len(sizes)

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


# --------------------------------------------------------------------------- misbehaving implementations
class _Toy(Adapter):
    """A toy implementation of the policy losses: the reference's own loss and gradient, then ``spoil``."""

    name = "toy"
    dtypes = ("float64", "float32")

    def __init__(self, spoil):
        self.spoil = spoil

    def supports(self, spec):
        return spec.kind == "policy_loss"

    def run(self, spec, inputs, config, dtype):
        loss, dlogp = spec(**harness.as_float64(inputs), config=config)
        return self.spoil(float(loss), np.array(dlogp, dtype=np.float64), inputs["mask"])


def _ppo_case(name="ragged-garbage", dtype="float64"):
    from rlspec.reference import registry

    cases, _, _ = harness.cases_for(registry.get("ppo"), (dtype,), n_random=0)
    return next(c for c in cases if c.name == name)


def test_toy_that_returns_the_reference_passes():
    """Control for the toy adapters below: unspoiled, the toy passes (so each failure below is the spoil's)."""
    assert harness.run_case(_Toy(lambda loss, g, m: {"loss": loss, "dlogp": g}), _ppo_case()).status == "pass"


def test_nan_output_is_a_fail_that_says_so():
    """An implementation returning NaN is a failed case whose message names the non-finite output."""
    res = harness.run_case(_Toy(lambda loss, g, m: {"loss": math.nan, "dlogp": g}), _ppo_case())
    assert res.status == "fail" and res.output == "loss" and "non-finite" in res.message and res.reproduction


@pytest.mark.parametrize("none", [False, True])
def test_zero_or_missing_gradient_is_reported_as_no_gradient(none):
    """A loss whose value is right but carries no gradient (zeros, or None from an unset .grad) is a fail whose
    message says the gradient is zero/None where the reference's is not."""
    res = harness.run_case(_Toy(lambda loss, g, m: {"loss": loss, "dlogp": None if none else np.zeros_like(g)}),
                           _ppo_case())
    assert res.status == "fail" and res.output == "dlogp"
    assert ("is None" if none else "zero everywhere") in res.message and "but the reference's is not" in res.message


def test_gradient_not_of_the_value_is_reported():
    """Right value, wrong (here: doubled) gradient: the message says the gradient is not that of the objective."""
    res = harness.run_case(_Toy(lambda loss, g, m: {"loss": loss, "dlogp": 2 * g}), _ppo_case())
    assert res.status == "fail" and "value (loss) matches the reference but dlogp does not" in res.message


def test_nan_gradient_at_masked_positions_is_reported_as_inf_times_zero():
    """A NaN written into the gradient at padded positions only (values at valid positions right) fails and
    is named as a masked-position non-finite gradient (the inf·0 pattern)."""
    def spoil(loss, g, m):
        return {"loss": loss, "dlogp": np.where(m, g, np.nan)}

    res = harness.run_case(_Toy(spoil), _ppo_case())
    assert res.status == "fail" and "masked position" in res.message and "inf·0" in res.message


def test_raising_nan_and_hanging_adapters_do_not_stop_the_run():
    """One run over misbehaving adapters completes and reports each: raise → error with the exception, NaN → fail,
    hang → error 'timed out'."""
    import time

    def hang(loss, g, m):
        while True:  # a Python-level hang: the harness interrupts it
            pass

    def boom(loss, g, m):
        raise RuntimeError("boom")

    statuses = {}
    for label, spoil in {"raise": boom, "nan": lambda loss, g, m: {"loss": math.nan, "dlogp": g},
                         "hang": hang}.items():
        t0 = time.perf_counter()
        res = harness.run(_Toy(spoil), algorithms=["ppo"], dtypes=["float64"], n_random=0, timeout=0.3)
        statuses[label] = {r.status for r in res}
        assert time.perf_counter() - t0 < 120, label
        if label == "raise":
            assert all("RuntimeError: boom" in r.message for r in res)
        if label == "hang":
            assert all(r.message.startswith("timed out") and "interrupted" in r.message for r in res)
    assert statuses == {"raise": {"error"}, "nan": {"fail"}, "hang": {"error"}}


def test_interrupted_hang_leaves_no_busy_thread():
    """A call looping in Python is stopped at its timeout: no case thread is left running (no core kept busy)."""
    import threading
    import time

    def spin(loss, g, m):
        while True:
            pass

    res = harness.run_case(_Toy(spin), _ppo_case(), timeout=0.2)
    assert res.status == "error" and "the call was interrupted" in res.message
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "rlspec-case" and t.is_alive()]


def test_native_hang_is_abandoned_as_a_daemon_thread():
    """A call blocked outside Python bytecode (here time.sleep) cannot be interrupted: the case still ends at its
    timeout with a message that says so, and the thread left behind is a daemon (it cannot keep the process alive)."""
    import threading
    import time

    def sleep(loss, g, m):
        time.sleep(3)
        return {"loss": loss, "dlogp": g}

    t0 = time.perf_counter()
    res = harness.run_case(_Toy(sleep), _ppo_case(), timeout=0.2)
    assert time.perf_counter() - t0 < 2.5
    assert res.status == "error" and "could not be interrupted" in res.message
    left = [t for t in threading.enumerate() if t.name == "rlspec-case" and t.is_alive()]
    assert left and all(t.daemon for t in left)


def test_reference_beyond_the_dtype_range_is_not_applicable():
    """log-ratio-100 puts e^100·|Â| into the PPO loss: beyond float32's range, so the float32 case is unsupported
    (no implementation can return it), while float64 is compared."""
    toy = _Toy(lambda loss, g, m: {"loss": loss, "dlogp": g})
    f32 = harness.run_case(toy, _ppo_case("log-ratio-100", "float32"))
    assert f32.status == "unsupported" and "beyond the float32 range" in f32.message
    assert harness.run_case(toy, _ppo_case("log-ratio-100", "float64")).status == "pass"
    assert harness.out_of_range({"loss": 1e39}, "bfloat16") and not harness.out_of_range({"loss": 1e39}, "float64")


# --------------------------------------------------------------------------- padding and fixed extreme cases
def test_default_cases_carry_finite_nonzero_padding_and_a_nonfinite_variant():
    """Padding as real trainers have it: every default policy/value case holds finite, non-zero values at masked
    positions; NaN/inf padding is only in the cases tagged padding-nonfinite, whose valid values are those of the
    finite case they copy."""
    from rlspec.conformance import inputs as gen

    for batches, keys in ((gen.fixed_policy_batches(), ("logp", "old_logp", "ref_logp", "adv")),
                          (gen.fixed_value_batches(), ("values", "old_values", "returns"))):
        by = {nb.name: nb for nb in batches}
        for nb in batches:
            m = nb.inputs["mask"]
            pads = np.concatenate([nb.inputs[k][~m] for k in keys])
            if "padding-nonfinite" in nb.tags:
                assert not np.isfinite(pads).all(), nb.name
            elif pads.size:
                assert np.isfinite(pads).all() and (pads != 0).all(), nb.name
        a, b = by["ragged-garbage"].inputs, by["padding-nonfinite"].inputs
        for k in keys:
            np.testing.assert_array_equal(a[k][a["mask"]], b[k][b["mask"]])


def test_make_inputs_padding_is_made_finite_and_kept_once_as_is():
    """make_inputs draws with NaN/inf padding are compared with finite garbage there; one draw keeps its original
    padding as a padding-nonfinite case."""
    from rlspec.reference import registry

    spec = next(s for s in registry.specs() if s.name == "capo_curvature")
    cases, _, _ = harness.cases_for(spec, ("float64",), n_random=0)
    cases = [c for c in cases if c.name.startswith("make-inputs") and "+" not in c.name]
    nonfinite = [c for c in cases if "padding-nonfinite" in c.tags]
    assert len(nonfinite) == 1 and nonfinite[0].name.endswith("-padding-nonfinite")
    for c in cases:
        m = c.inputs["mask"]
        finite = all(np.isfinite(v[~m]).all() for v in c.inputs.values()
                     if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.shape[:2] == m.shape)
        assert finite == (c not in nonfinite), c.name


def test_overflow_and_edge_cases_are_drawn():
    """The fixed cases include log-ratios at exp's float32 overflow point (also in bfloat16), all-equal groups of
    non-dyadic rewards, interior mask holes and empty batches (B = 0) for each default kind."""
    from rlspec.reference import registry

    ppo, _, _ = harness.cases_for(registry.get("ppo"), ("float32", "bfloat16"), n_random=0)
    names = {(c.name, c.dtype) for c in ppo}
    for n in ("log-ratio-89", "log-ratio-100", "interior-holes", "empty-batch", "padding-nonfinite"):
        assert (n, "float32") in names
    assert ("log-ratio-89", "bfloat16") in names and ("log-ratio-50", "bfloat16") not in names
    lp = next(c for c in ppo if c.name == "log-ratio-89").inputs
    lr = (lp["logp"] - lp["old_logp"])[lp["mask"]]
    assert np.isclose(np.abs(lr).max(), 89.0) and np.exp(np.float32(88.8)) == np.inf
    grpo, _, _ = harness.cases_for(registry.get("grpo"), ("float32",), n_random=0)
    ne = next(c for c in grpo if c.name == "all-equal-non-dyadic").inputs
    assert set(np.round(ne["rewards"], 6)) == {0.7, 0.35, 1.3}
    assert {c.name for c in grpo} >= {"empty-batch", "interior-holes"}
    vc, _, _ = harness.cases_for(registry.get("value_clip"), ("float64",), n_random=0)
    assert {c.name for c in vc} >= {"empty-batch", "interior-holes", "padding-nonfinite"}

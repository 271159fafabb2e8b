"""The built-in verl adapter (conformance/adapters/verl_adapter.py) against verl 0.9.1.

Run with ``tox -e peers`` or ``python -m pytest -m peers tests/test_adapter_verl.py`` in an environment built
by conformance/peers/install.sh. Each test names the claim it checks; none asserts a value computed by
the code under test as "expected": verl's outputs are compared with the NumPy reference.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.peers

os.environ.setdefault("VERL_FORCE_DEVICE", "cpu")
pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl is not installed (conformance/peers/install.sh)")

from verl.trainer.ppo import core_algos as ca  # noqa: E402
from verl.utils import torch_functional as verl_F  # noqa: E402

from rlspec.conformance import expectations, harness  # noqa: E402
from rlspec.conformance import inputs as gen  # noqa: E402
from rlspec.conformance.adapters import load  # noqa: E402
from rlspec.conformance.adapters.verl_adapter import CONVENTIONS, VerlAdapter, VerlRawPaddingAdapter  # noqa: E402
from rlspec.reference import registry  # noqa: E402

ALL = ("grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "gae", "remax", "opo", "gpg", "ppo", "dapo",
       "gspo", "gspo_token", "sapo", "cispo", "gpg_loss", "gmpo", "kl_k1", "kl_k2", "kl_k3", "entropy",
       "grpo_passk", "kl_cov", "dro", "dppo", "kl_abs")


class Sentinel(Exception):
    """Raised by a monkeypatched verl function: proves the adapter called it."""


def _raiser(*args, **kwargs):
    raise Sentinel()


def _case(entry: str, inputs: dict, dtype: str = "float64", config: dict | None = None, name: str = "fixed") -> harness.Case:
    inputs = harness.select_inputs(registry.get(entry), inputs)
    return harness.Case(id=f"{entry}/{dtype}/{name}", algorithm=entry, name=name, inputs=inputs,
                        config=dict(config or {}), dtype=dtype)


def _ref(entry: str, inputs: dict, **overrides):
    spec = registry.get(entry)
    cfg = spec.config(**{**CONVENTIONS.get(entry, {}), **overrides})
    return spec(**harness.as_float64(harness.select_inputs(spec, inputs)), config=cfg)


def _clean_policy_batch(seed: int, B: int = 5, T: int = 6, log_ratio=None, adv=None, lengths=None) -> dict:
    """A policy batch with finite padding (so NaN propagation does not mask the property under test)."""
    rng = np.random.default_rng(seed)
    mask = gen.lengths_mask(lengths if lengths is not None else rng.integers(1, T + 1, size=B), T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    lr = rng.normal(scale=0.3, size=(B, T)) if log_ratio is None else log_ratio
    a = np.repeat(rng.normal(size=(B, 1)), T, axis=1) if adv is None else adv
    return {"logp": logp, "old_logp": logp - lr, "ref_logp": logp - lr[::-1, ::-1], "adv": a, "mask": mask,
            "group": np.arange(B) // 2}


# --------------------------------------------------------------------------- identity and reachability
def test_version_is_the_installed_verl():
    """The adapter records the installed framework version (reports carry it)."""
    import importlib.metadata as md

    a = load("verl")
    assert a.name == "verl"
    assert a.version == md.version("verl") == "0.9.1"
    assert a.available() == (True, "")


def test_module_imports_without_verl(monkeypatch):
    """Without verl the adapter module still imports, ``available()`` says why, and every case is not-installed."""
    for k in [k for k in sys.modules if k == "verl" or k.startswith("verl.")]:
        monkeypatch.setitem(sys.modules, k, None)
    monkeypatch.setitem(sys.modules, "verl", None)
    ok, why = VerlAdapter().available()
    assert not ok and "verl" in why
    res = harness.run(VerlAdapter(), algorithms=["ppo", "grpo"], dtypes=["float64"], n_random=0)
    assert res and {r.status for r in res} == {"not-installed"}


@pytest.mark.parametrize("entry,target", [
    ("grpo", ("ADV_ESTIMATOR_REGISTRY", "grpo")), ("dr_grpo", ("ADV_ESTIMATOR_REGISTRY", "grpo")),
    ("rloo", ("ADV_ESTIMATOR_REGISTRY", "rloo")), ("opo", ("ADV_ESTIMATOR_REGISTRY", "opo")),
    ("gpg", ("ADV_ESTIMATOR_REGISTRY", "gpg")), ("remax", ("ADV_ESTIMATOR_REGISTRY", "remax")),
    ("reinforce_pp", ("ADV_ESTIMATOR_REGISTRY", "reinforce_plus_plus")),
    ("reinforce_pp_baseline", ("ADV_ESTIMATOR_REGISTRY", "reinforce_plus_plus_baseline")),
    ("gae", ("ADV_ESTIMATOR_REGISTRY", "gae")),
    ("ppo", ("POLICY_LOSS_REGISTRY", "vanilla")), ("dapo", ("POLICY_LOSS_REGISTRY", "vanilla")),
    ("gspo", ("POLICY_LOSS_REGISTRY", "gspo")), ("gspo_token", ("POLICY_LOSS_REGISTRY", "gspo")),
    ("sapo", ("POLICY_LOSS_REGISTRY", "sapo")), ("cispo", ("POLICY_LOSS_REGISTRY", "cispo")),
    ("gpg_loss", ("POLICY_LOSS_REGISTRY", "gpg")), ("gmpo", ("POLICY_LOSS_REGISTRY", "geo_mean")),
    ("kl_k1", ("kl_penalty",)), ("kl_k2", ("kl_penalty",)), ("kl_k3", ("kl_penalty",)),
    ("entropy", ("compute_entropy_loss",)),
    ("grpo_passk", ("ADV_ESTIMATOR_REGISTRY", "grpo_passk")), ("kl_cov", ("POLICY_LOSS_REGISTRY", "kl_cov")),
    ("dro", ("POLICY_LOSS_REGISTRY", "dro")), ("dppo", ("POLICY_LOSS_REGISTRY", "dppo_tv")),
    ("kl_abs", ("kl_penalty",)),
])
def test_adapter_reaches_verls_own_function(monkeypatch, entry, target):
    """Every supported entry is computed by verl's function: replacing it by a raiser makes the adapter raise."""
    if len(target) == 2:
        monkeypatch.setitem(getattr(ca, target[0]), target[1], _raiser)
    else:
        monkeypatch.setattr(ca, target[0], _raiser)
    spec = registry.get(entry)
    cases, _, _ = harness.cases_for(spec, ("float32",), n_random=0)
    case = cases[0]
    cfg = spec.config(**{**CONVENTIONS.get(entry, {}), **case.config})
    with pytest.raises(Sentinel):
        VerlAdapter().run(spec, harness.cast_value(case.inputs, "float32"), cfg, "float32")


# --------------------------------------------------------------------------- the whole check
@pytest.fixture(scope="module")
def full_run():
    a = load("verl")
    res = harness.run(a, algorithms=list(ALL), n_random=20)  # the CLI default: the expectation file lists its cases
    stale = expectations.apply(res, expectations.for_adapter(a))
    return res, stale


def test_check_has_no_unexpected_failures(full_run):
    """`rlspec check verl`: every difference is classified (no fail/error), no expectation is stale or xpasses."""
    res, stale = full_run
    assert res.version == "0.9.1"
    bad = [(r.case_id, r.message[:200]) for r in res.unexpected()]
    assert not bad, bad[:10]
    assert not stale, stale[:10]
    assert not [r.case_id for r in res if r.status == "xpass"]
    assert sum(r.status == "pass" for r in res) > 400  # the check exercises verl, it does not only skip


def test_every_failure_carries_a_reproduction(full_run):
    """Each classified finding has a copy-pasteable snippet that calls verl directly."""
    res, _ = full_run
    found = [r for r in res if r.status in ("xfail", "deviation")]
    assert found
    for r in found[:: max(1, len(found) // 25)]:
        assert "from verl.trainer.ppo import core_algos as ca" in r.reproduction, r.case_id


def test_reproduction_snippet_runs_and_prints_verls_number():
    """The adapter's own snippet is self-contained Python (numpy/torch/verl only) and prints verl's loss."""
    import contextlib
    import io

    spec = registry.get("ppo")
    inputs = _clean_policy_batch(3)
    cfg = spec.config(**CONVENTIONS["ppo"])
    code = VerlAdapter().reproduction(spec, inputs, cfg, "float64")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<verl-repro>", "exec"), {})  # noqa: S102 - our own generated snippet
    printed = float(buf.getvalue().split("loss", 1)[1].split()[0])
    ref_loss, _ = _ref("ppo", inputs)
    assert math.isclose(printed, ref_loss, rel_tol=1e-9, abs_tol=1e-12)


def test_a_broken_verl_function_makes_cases_fail(monkeypatch):
    """The comparison can fail: scaling verl's agg_loss by 1.001 turns passing cases into failures."""
    orig = ca.agg_loss
    monkeypatch.setattr(ca, "agg_loss", lambda *a, **k: orig(*a, **k) * 1.001)
    res = harness.run(load("verl"), algorithms=["ppo", "kl_k3"], dtypes=["float32"], n_random=0)
    failed = {r.case_id for r in res if r.status == "fail"}
    assert {"ppo/float32/basic", "kl_k3/float32/basic"} <= failed


def test_a_broken_estimator_makes_cases_fail(monkeypatch):
    """Same for advantages: an estimator off by a sign flip in one row is caught."""
    orig = ca.ADV_ESTIMATOR_REGISTRY["grpo"]

    def broken(*a, **k):
        adv, ret = orig(*a, **k)
        adv = adv.clone()
        adv[0] = -adv[0]
        return adv, ret

    monkeypatch.setitem(ca.ADV_ESTIMATOR_REGISTRY, "grpo", broken)
    res = harness.run(load("verl"), algorithms=["grpo"], dtypes=["float32"], n_random=0)
    assert any(r.status == "fail" and r.case_id == "grpo/float32/basic" for r in res)


# --------------------------------------------------------------------------- the hazards, fixed cases
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("value", [30.0, 100.0])
@pytest.mark.parametrize("entry", ["ppo", "cispo", "sapo", "kl_k3"])
def test_extreme_log_ratios_follow_verls_clamps(entry, value, dtype):
    """Log-ratios of ±30 and ±100 (beyond verl's ±20 clamp) give exactly the clamped reference, finite, both signs."""
    B, T = 4, 6
    lr = value * np.where((np.arange(B)[:, None] + np.arange(T)[None, :]) % 2 == 0, 1.0, -1.0)
    adv = np.repeat(np.array([[1.3], [-0.7], [-2.0], [0.4]]), T, axis=1)
    inputs = _clean_policy_batch(5, B, T, log_ratio=lr, adv=adv, lengths=[6, 4, 5, 2])
    r = harness.run_case(load("verl"), _case(entry, inputs, dtype, name=f"log-ratio-{value:g}"))
    assert r.status == "pass", r.message


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ratios_beyond_the_dual_clip_both_advantage_signs(dtype):
    """Ratios 0.05…10 against Â > 0 and Â < 0: verl's vanilla loss is PPO with dual clip c = 3 (ppo passes), and its
    DAPO (the same function) differs from the paper's DAPO exactly by that dual clip (the classified deviation)."""
    rr = np.array([0.05, 0.5, 0.9, 1.1, 1.5, 4.0, 10.0])
    B, T = 4, rr.size
    adv = np.repeat(np.array([[1.3], [-0.7], [-2.0], [0.4]]), T, axis=1)
    inputs = _clean_policy_batch(10, B, T, log_ratio=np.tile(np.log(rr), (B, 1)), adv=adv, lengths=[7, 7, 6, 5])
    a = load("verl")
    assert harness.run_case(a, _case("ppo", inputs, dtype)).status == "pass"
    got = a.run(registry.get("dapo"), harness.cast_value(inputs, dtype), registry.get("dapo").config(
        **CONVENTIONS["dapo"]), dtype)
    paper, _ = _ref("dapo", harness.cast_value(inputs, dtype))
    with_dual, dual_grad = _ref("ppo", harness.cast_value(inputs, dtype), eps_low=0.2, eps_high=0.28)
    tol = 1e-9 if dtype == "float64" else 1e-5
    assert abs(got["loss"] - paper) > 1e-2  # the difference is real ...
    assert math.isclose(got["loss"], with_dual, rel_tol=tol)  # ... and is the dual clip
    np.testing.assert_allclose(got["dlogp"][inputs["mask"]], dual_grad[inputs["mask"]], rtol=tol, atol=tol)


def test_seq_mean_token_sum_norm_counts_only_nonempty_rows():
    """Fully masked sequences: verl's seq-mean-token-sum-norm divides by the non-empty rows B′ (deviation from Dr.
    GRPO's B); with the global batch size given (normalizer = B) it matches the reference."""
    inputs = _clean_policy_batch(7, 5, 4, lengths=[4, 0, 2, 0, 3])
    a = load("verl")
    B, T = inputs["mask"].shape
    got = a.run(registry.get("ppo"), inputs, registry.get("ppo").config(**CONVENTIONS["ppo"],
                                                                        agg="seq-mean-token-sum-norm"), "float64")
    ref_b, _ = _ref("ppo", inputs, agg="seq-mean-token-sum-norm")
    ref_bprime, _ = _ref("ppo", inputs, agg="seq-mean-token-sum-norm", normalizer=3.0)
    assert not math.isclose(got["loss"], ref_b, rel_tol=1e-6)
    assert math.isclose(got["loss"], ref_bprime, rel_tol=1e-12)
    r = harness.run_case(a, _case("ppo", inputs, config={"agg": "seq-mean-token-sum-norm", "normalizer": float(B),
                                                         "const": float(T)}))
    assert r.status == "pass", r.message


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("entry", ["ppo", "kl_k3", "gspo_token"])
def test_micro_batches_with_global_batch_info_sum_to_the_full_batch(entry, mode):
    """Splitting the batch into shards of different sizes, with verl's global_batch_info set from the full batch,
    the shard losses and gradients add up to the full-batch reference (micro-batch / data-parallel invariance)."""
    from rlspec.reference.aggregation import global_normalizer

    inputs = _clean_policy_batch(11, 7, 5, lengths=[5, 2, 0, 4, 1, 5, 3])
    a = load("verl")
    spec = registry.get(entry)
    norm = global_normalizer(inputs["mask"], mode)
    total, grads = 0.0, []
    for rows in (slice(0, 3), slice(3, 7)):
        shard = harness.select_inputs(spec, {k: (v[rows] if isinstance(v, np.ndarray) else v) for k, v in inputs.items()})
        cfg = spec.config(**{**CONVENTIONS.get(entry, {}), "agg": mode, "normalizer": norm, "const": 5.0})
        out = a.run(spec, shard, cfg, "float64")
        total += out["loss"]
        grads.append(out["dlogp"])
    ref_loss, ref_grad = _ref(entry, inputs, agg=mode, const=5.0)
    assert math.isclose(total, ref_loss, rel_tol=1e-10, abs_tol=1e-12)
    m = inputs["mask"]
    np.testing.assert_allclose(np.concatenate(grads)[m], ref_grad[m], rtol=1e-10, atol=1e-12)


def test_nan_padding_is_the_only_difference_on_garbage_cases():
    """Isolates the NaN-at-padding finding: padding is passed as given by default; with finite garbage there (what a
    model's forward leaves) every garbage case of these token-mean losses passes, while NaN/inf padding (the
    padding-nonfinite cases) gives NaN gradients at masked positions, which zeroing padding
    (VerlAdapter(raw_padding=False)) removes."""
    assert VerlAdapter().raw_padding and VerlRawPaddingAdapter().raw_padding and not VerlAdapter(False, False).raw_padding
    res = harness.run(VerlAdapter(), algorithms=["cispo", "kl_k2", "gpg_loss"], dtypes=["float64", "float32"],
                      n_random=4)
    bad = [r.case_id for r in res if r.status in harness.UNEXPECTED and "all-false" not in r.case_id
           and not r.case_id.endswith(("random-6", "empty-batch")) and "padding-nonfinite" not in r.case_id]
    assert not bad, bad
    garbage = _case("cispo", gen.fixed_policy_batches()[1].inputs, name="ragged-garbage")
    assert harness.run_case(load("verl"), garbage).status == "pass"
    nonfinite = next(b for b in gen.fixed_policy_batches() if b.name == "padding-nonfinite")
    raw = harness.run_case(VerlAdapter(), _case("cispo", nonfinite.inputs, name="padding-nonfinite"))
    assert raw.status == "fail" and "non-finite gradient" in raw.message and "masked position" in raw.message
    zeroed = harness.run_case(VerlAdapter(raw_padding=False), _case("cispo", nonfinite.inputs, name="padding-nonfinite"))
    assert zeroed.status == "pass"


@pytest.mark.parametrize("mode", ["seq-mean-token-mean", "seq-mean-token-sum"])
def test_raw_nan_padding_poisons_agg_loss_seq_mean_value(mode):
    """Finding (open upstream fix https://github.com/verl-project/verl/pull/6349): agg_loss's seq-mean branches mask by
    multiplication, so a NaN at a masked position makes the loss VALUE NaN (raw padding), while the reference, which
    never reads masked positions, is finite; with padding zeroed (VerlAdapter(raw_padding=False)) verl matches it."""
    inputs = _clean_policy_batch(13, 4, 5, lengths=[5, 3, 2, 4])
    raw_in = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}
    raw_in["logp"][~raw_in["mask"]] = np.nan
    spec = registry.get("kl_k1")
    cfg = spec.config(**CONVENTIONS.get("kl_k1", {}), agg=mode)
    got = VerlRawPaddingAdapter().run(spec, raw_in, cfg, "float64")
    ref, _ = _ref("kl_k1", raw_in, agg=mode)
    assert math.isfinite(ref) and math.isnan(got["loss"])
    fixed = VerlAdapter(raw_padding=False).run(spec, raw_in, cfg, "float64")
    assert math.isclose(fixed["loss"], ref, rel_tol=1e-12, abs_tol=1e-14)


def test_masked_mean_eps_is_the_cause_of_the_float64_whitening_deviation(monkeypatch):
    """The float64 REINFORCE++/GAE deviations come from masked_mean's +1e-8 in the denominator: with an eps-free
    masked_mean (the only change) the same float64 cases pass."""
    a = load("verl")
    before = harness.run(a, algorithms=["reinforce_pp", "gae"], dtypes=["float64"], n_random=3)
    assert any(r.status == "fail" and "non-finite" not in r.message for r in before)

    def exact_masked_mean(values, mask, axis=None):
        return verl_F.masked_sum(values, mask, axis) / mask.sum(axis=axis)

    monkeypatch.setattr(verl_F, "masked_mean", exact_masked_mean)
    after = harness.run(VerlAdapter(), algorithms=["reinforce_pp", "gae"], dtypes=["float64"], n_random=3)
    # NaN padding is another finding (expectation file)
    left = [r.case_id for r in after if r.status == "fail" and "padding-nonfinite" not in r.case_id]
    assert not left, left


def test_batch_not_a_multiple_of_group_and_sparse_negative_ids_loop_estimators():
    """Group sizes that do not divide B and negative/sparse ids: verl's loop estimators group by uid correctly."""
    rng = np.random.default_rng(3)
    inputs = {"rewards": rng.normal(size=7), "group": np.array([-7, 1000, -7, 3, 1000, -7, 42]),
              "mask": gen.lengths_mask([2, 3, 3, 1, 2, 3, 2], 3)}
    a = load("verl")
    for entry in ("grpo", "dr_grpo", "rloo", "opo", "reinforce_pp_baseline"):
        r = harness.run_case(a, _case(entry, inputs, "float32"))
        assert r.status == "pass", (entry, r.message)


def test_vectorized_grpo_rejects_negative_group_ids():
    """Finding (xfail-worthy, reported): grpo_vectorized passes integer uids to index_add without factorising them
    (verl.utils.groupwise.as_torch_index), so negative ids raise; contiguous ids agree with the reference in float32."""
    inputs = {"rewards": np.array([1.0, 0.0, 1.0, 0.5, 0.2]), "group": np.array([-1, -1, 4, 4, 4]),
              "mask": np.ones((5, 3), bool)}
    v = VerlAdapter(vectorized=True)
    with pytest.raises((IndexError, RuntimeError)):
        v.run(registry.get("grpo"), inputs, registry.get("grpo").config(**CONVENTIONS["grpo"]), "float32")
    ok = dict(inputs, group=np.array([0, 0, 1, 1, 1]))
    assert harness.run_case(v, _case("grpo", ok, "float32")).status == "pass"


def test_vectorized_rloo_zeroes_singletons():
    """rloo_vectorized's singleton convention (advantage 0) differs from the loop rloo's (raw reward); each adapter
    states its own, and both match the reference under it."""
    inputs = {"rewards": np.array([0.7, 1.0, 0.0, 0.3]), "group": np.array([0, 1, 1, 2]), "mask": np.ones((4, 2), bool)}
    loop, vec = VerlAdapter(), VerlAdapter(vectorized=True)
    assert harness.run_case(loop, _case("rloo", inputs, "float32")).status == "pass"
    assert harness.run_case(vec, _case("rloo", inputs, "float32")).status == "pass"
    assert vec.conventions["rloo"]["singleton"] == "zero" and loop.conventions["rloo"]["singleton"] == "raw"


# --------------------------------------------------------------------------- framework quantities (issue #3 follow-up)
def test_dppo_kl_reaches_verls_dppo_kl(monkeypatch):
    """trust_region='kl' is computed by verl's dppo_kl (and 'tv' by dppo_tv): replacing it by a raiser makes the
    adapter raise."""
    monkeypatch.setitem(ca.POLICY_LOSS_REGISTRY, "dppo_kl", _raiser)
    spec = registry.get("dppo")
    inputs = _clean_policy_batch(2)
    inputs["old_logp"] = np.minimum(inputs["old_logp"], 0.0)
    with pytest.raises(Sentinel):
        VerlAdapter().run(spec, inputs, spec.config(**CONVENTIONS["dppo"], trust_region="kl"), "float64")


@pytest.mark.parametrize("entry,cfg", [("kl_cov", {"k": 0.3}), ("dro", {"beta": 0.7}), ("dppo", {}),
                                       ("dppo", {"trust_region": "kl", "delta_low": 0.01, "delta_high": 0.005}),
                                       ("kl_abs", {"straight_through_k2": True})])
def test_new_losses_match_on_clean_batches_and_break_when_verl_does(monkeypatch, entry, cfg):
    """The new entries pass on finite-padding batches in float64/float32, and a 1.001 scaling of verl's agg_loss
    (used by each of them) turns the same case into a failure (the comparison can fail)."""
    inputs = _clean_policy_batch(21, 6, 5)
    inputs["old_logp"] = np.minimum(inputs["old_logp"], 0.0)
    a = load("verl")
    for dt in ("float64", "float32"):
        r = harness.run_case(a, _case(entry, inputs, dt, config=cfg))
        assert r.status == "pass", (dt, r.message)
    orig = ca.agg_loss
    monkeypatch.setattr(ca, "agg_loss", lambda *x, **k: orig(*x, **k) * 1.001)
    assert harness.run_case(a, _case(entry, inputs, "float64", config=cfg)).status == "fail"


def test_grpo_passk_rejects_singletons_like_the_reference_convention():
    """verl raises ValueError for a group of one (Pass@k needs two samples); the adapter's convention
    singleton='raise' makes the reference reject it too, so such a case is 'unsupported', and without singletons
    (sizes not a multiple of the group, negative sparse ids) verl passes."""
    spec = registry.get("grpo_passk")
    lone = {"rewards": np.array([0.2, 0.9, 0.1]), "group": np.array([4, -1, -1]), "mask": np.ones((3, 2), bool)}
    with pytest.raises(ValueError, match="at least 2"):
        VerlAdapter().run(spec, lone, spec.config(**CONVENTIONS["grpo_passk"]), "float64")
    assert harness.run_case(load("verl"), _case("grpo_passk", lone)).status == "unsupported"
    ok = {"rewards": np.array([0.2, 0.9, 0.1, 0.4, 0.4, 0.8, 0.3]), "group": np.array([-7, 1000, -7, 1000, 3, 3, 3]),
          "mask": gen.lengths_mask([2, 3, 1, 0, 3, 2, 1], 3)}
    for dt in ("float64", "float32"):
        for std in (True, False):
            r = harness.run_case(load("verl"), _case("grpo_passk", ok, dt, config={"std_normalize": std}))
            assert r.status == "pass", (dt, std, r.message)


def test_kl_cov_tie_breaking_is_the_only_cause_of_the_zero_adv_deviation():
    """With distinct covariances verl's top-k selection equals the reference's; with all covariances tied (Â ≡ 0)
    torch.topk picks a token other than the lowest index, so the penalised token differs (the classified deviation)."""
    import torch

    assert torch.topk(torch.zeros(9, dtype=torch.float64), 1).indices.item() != 0
    a = load("verl")
    inputs = _clean_policy_batch(31, 4, 5)
    assert harness.run_case(a, _case("kl_cov", inputs, config={"k": 0.25})).status == "pass"
    tied = dict(inputs, adv=np.zeros_like(inputs["adv"]))
    r = harness.run_case(a, _case("kl_cov", tied, config={"k": 0.05}))
    assert r.status == "fail" and "loss" in r.message


def test_dppo_truncates_at_actorconfig_clip_ratio_c_3():
    """Finding: verl's DPPO reads clip_ratio_c through ActorConfig, whose default 3.0 wins over the function's
    fallback 20.0 (its comment recommends a large threshold); ratios of 5 are truncated to 3: the reference with
    is_cap=3 matches, with is_cap=20 it does not."""
    rr = np.array([0.5, 1.05, 5.0])
    inputs = _clean_policy_batch(41, 2, 3, log_ratio=np.tile(np.log(rr), (2, 1)), adv=np.ones((2, 3)), lengths=[3, 3])
    inputs["logp"] = np.log(np.tile([[0.01, 0.02, 0.05]], (2, 1)))
    inputs["old_logp"] = inputs["logp"] - np.log(rr)
    spec = registry.get("dppo")
    got = VerlAdapter().run(spec, inputs, spec.config(**CONVENTIONS["dppo"]), "float64")
    cap3, _ = _ref("dppo", inputs)
    cap20, _ = _ref("dppo", inputs, is_cap=20.0)
    assert math.isclose(got["loss"], cap3, rel_tol=1e-12) and not math.isclose(got["loss"], cap20, rel_tol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("value", [30.0, 100.0])
@pytest.mark.parametrize("entry", ["dppo", "dro", "kl_abs"])
def test_extreme_log_ratios_new_entries(entry, value, dtype):
    """Log-ratios of ±30 and ±100: DPPO (clamped to ±20 for r), DRO (quadratic, no exponential) and |δ| stay finite
    and agree with the reference in float32 and bf16."""
    B, T = 4, 6
    lr = value * np.where((np.arange(B)[:, None] + np.arange(T)[None, :]) % 2 == 0, 1.0, -1.0)
    adv = np.repeat(np.array([[1.3], [-0.7], [-2.0], [0.4]]), T, axis=1)
    inputs = _clean_policy_batch(5, B, T, log_ratio=lr, adv=adv, lengths=[6, 4, 5, 2])
    r = harness.run_case(load("verl"), _case(entry, inputs, dtype, name=f"log-ratio-{value:g}"))
    assert r.status == "pass", r.message


def test_kl_cov_overflows_in_float32_beyond_log_ratio_88():
    """Finding: compute_policy_loss_kl_cov does not clamp the log-ratio (unlike vanilla/cispo/dppo), so a log-ratio of
    89 overflows exp() in float32 and the loss is non-finite, while the true loss (−0.5·e^89 ≈ −2.2e38) is
    representable in float32."""
    B, T = 2, 3
    inputs = _clean_policy_batch(6, B, T, log_ratio=np.full((B, T), 89.0), adv=np.full((B, T), 0.5), lengths=[3, 3])
    r = harness.run_case(load("verl"), _case("kl_cov", inputs, "float32", name="log-ratio-89"))
    assert r.status == "fail" and "non-finite" in r.message

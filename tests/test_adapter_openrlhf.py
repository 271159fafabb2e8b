"""The built-in OpenRLHF adapter: it reaches OpenRLHF's own code, records the version, leaves no import
stand-ins behind, and its comparisons can fail. Run with ``tox -e peers`` (needs openrlhf 0.11.2)."""

from __future__ import annotations

import collections
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.peers
pytest.importorskip("openrlhf")
torch = pytest.importorskip("torch")

from rlspec.conformance import adapters, expectations, harness  # noqa: E402
from rlspec.conformance.adapters import openrlhf_adapter as oa  # noqa: E402
from rlspec.reference import registry  # noqa: E402


class Sentinel(Exception):
    pass


def _raise(*a, **k):
    raise Sentinel()


@pytest.fixture(scope="module")
def adapter():
    a = adapters.load("openrlhf")
    ok, why = a.available()
    if not ok:
        pytest.skip(why)
    return a


def _policy_batch(seed=0, B=4, T=5):
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    return {"logp": logp, "old_logp": logp + rng.normal(scale=0.3, size=(B, T)),
            "ref_logp": logp + rng.normal(scale=0.3, size=(B, T)),
            "adv": np.repeat(rng.normal(size=(B, 1)), T, axis=1), "mask": mask, "group": np.arange(B) // 2}


def _run(adapter, name, x, dtype="float64", **cfg):
    spec = registry.get(name)
    conf = spec.config(**{**adapter.conventions.get(name, {}), **cfg})
    return adapter.run(spec, x, conf, dtype)


def test_version_is_recorded(adapter):
    """The adapter reports the installed framework version (importlib.metadata), not a constant."""
    import importlib.metadata

    assert adapter.version == importlib.metadata.version("openrlhf")
    assert adapter.name == "openrlhf"
    res = harness.run(adapter, algorithms=["ppo"], dtypes=["float64"], n_random=0)
    assert res.version == adapter.version


def test_no_stand_in_modules_stay_behind(adapter):
    """load() removes the bare openrlhf.models package and the launcher stub again; the real leaf modules stay."""
    oa.load()
    for k in oa._STANDINS:
        assert k not in sys.modules or getattr(sys.modules[k], "__file__", None), k
    assert sys.modules["openrlhf.models.loss"].__file__.endswith("openrlhf/models/loss.py")
    assert oa.load().PolicyLoss.__module__ == "openrlhf.models.loss"


@pytest.mark.parametrize("name, target", [
    ("ppo", "PolicyLoss.forward"), ("gspo", "PolicyLoss.forward"), ("dapo", "PolicyLoss.forward"),
    ("kl_k3", "compute_approx_kl"), ("grpo", "compute_advantages_and_returns"),
    ("reinforce_pp", "compute_advantages_and_returns"), ("gae", "compute_advantages_and_returns"),
])
def test_adapter_reaches_openrlhf_code(adapter, monkeypatch, name, target):
    """Each mapping calls OpenRLHF's own function: replacing it with a sentinel makes the adapter raise it."""
    m = oa.load()
    if target == "PolicyLoss.forward":
        monkeypatch.setattr(m.loss.PolicyLoss, "forward", _raise)
    elif target == "compute_approx_kl":
        monkeypatch.setattr(m, "compute_approx_kl", _raise)
        monkeypatch.setattr(m.utils, "compute_approx_kl", _raise)
    else:
        monkeypatch.setattr(m.em.RemoteExperienceMaker, target, _raise)
    spec = registry.get(name)
    if spec.kind == "advantage" and name != "gae":
        x = {"rewards": np.array([1.0, 0.0, 0.5, 0.2]), "group": np.array([0, 0, 1, 1]),
             "mask": np.ones((4, 3), bool)}
    elif name == "gae":
        x = {"token_rewards": np.ones((2, 3)), "values": np.zeros((2, 3)), "mask": np.ones((2, 3), bool)}
    else:
        x = _policy_batch()
    with pytest.raises(Sentinel):
        _run(adapter, name, x)


def test_broken_framework_function_makes_cases_fail(adapter, monkeypatch):
    """A deliberately wrong PolicyLoss (advantage sign flipped) must produce failed cases: the check can fail."""
    m = oa.load()
    real = m.loss.PolicyLoss.forward

    def flipped(self, log_probs, old_log_probs, advantages, *a, **k):
        return real(self, log_probs, old_log_probs, -advantages, *a, **k)

    monkeypatch.setattr(m.loss.PolicyLoss, "forward", flipped)
    res = harness.run(adapter, algorithms=["ppo"], dtypes=["float64"], n_random=2)
    assert sum(r.status == "fail" for r in res) >= 5


def test_check_has_no_unexpected_failures(adapter):
    """`rlspec check openrlhf` (harness.run + the expectation file): every difference is classified."""
    res = harness.run(adapter, n_random=20)
    path = expectations.find("openrlhf", adapter.version)
    assert path is not None and path.name == "openrlhf-0.11.2.txt"
    stale = expectations.apply(res, expectations.load(path))
    bad = [(r.case_id, r.message[:120]) for r in res if r.status in harness.UNEXPECTED + ("xpass",)]
    assert not bad, bad
    assert not stale, stale
    counts = collections.Counter(r.status for r in res)
    assert counts.get("pass", 0) > counts.get("deviation", 0) + counts.get("xfail", 0), counts


def test_reproduction_is_standalone(adapter):
    """The reproduction snippet runs with only OpenRLHF + numpy/torch and prints OpenRLHF's result."""
    import contextlib
    import io

    x = _policy_batch(3)
    spec = registry.get("ppo")
    code = adapter.reproduction(spec, x, spec.config(**adapter.conventions["ppo"]), "float64")
    assert "conformance" not in code and "reference" not in code
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<repro>", "exec"), {})
    got = _run(adapter, "ppo", x)["loss"]
    assert f"loss {got!r}"[:12] in buf.getvalue()


# ---------------------------------------------------------------- bug-finding inputs the harness lacks
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("lr", [30.0, -30.0, 100.0, -100.0])
def test_extreme_log_ratios_ppo_clamped_and_finite(adapter, dtype, lr):
    """Log-ratios ±30/±100 (issue #3): PolicyLoss clamps log r to ±20, so the loss matches the reference with
    log_ratio_clamp=20 and both loss and gradient are finite, for both advantage signs."""
    T = 4
    logp = np.full((2, T), -1.0)
    x = {"logp": logp, "old_logp": logp - lr, "adv": np.array([[1.0] * T, [-1.0] * T]), "mask": np.ones((2, T), bool)}
    spec = registry.get("ppo")
    cfg = spec.config(log_ratio_clamp=20.0)
    ref_loss, ref_g = spec(**harness.as_float64(harness.cast_value(x, dtype)), config=cfg)
    got = adapter.run(spec, harness.cast_value(x, dtype), cfg, dtype)
    assert np.isfinite(got["loss"]) and np.isfinite(got["dlogp"]).all()
    assert got["loss"] == pytest.approx(ref_loss, rel=2e-2)
    np.testing.assert_allclose(got["dlogp"], ref_g, rtol=2e-2, atol=1e-6)


@pytest.mark.parametrize("lr", [30.0, 100.0])
def test_extreme_log_ratios_k3_gradient_finite(adapter, lr):
    """k3 at logp − ref = ±30/±100 in float32: value capped at 10 with zero gradient, no inf·0 NaN
    (OpenRLHF pre-clamps logp − ref ≥ −10 before exp)."""
    x = {"logp": np.array([[0.0, 0.0]]), "ref_logp": np.array([[lr, -lr]]), "mask": np.ones((1, 2), bool)}
    got = _run(adapter, "kl_k3", x, "float32")
    assert got["loss"] == pytest.approx(10.0)
    assert np.isfinite(got["dlogp"]).all() and (got["dlogp"] == 0).all()


def test_dual_clip_beyond_bound_both_signs(adapter):
    """Ratios beyond c = 3 for Â < 0 are capped at −c·Â with zero gradient; for Â > 0 the dual clip is inert."""
    r = np.array([0.5, 1.0, 4.0, 10.0])
    logp = np.zeros((2, 4))
    x = {"logp": logp, "old_logp": -np.log(r)[None].repeat(2, 0), "adv": np.array([[-2.0] * 4, [1.5] * 4]),
         "mask": np.ones((2, 4), bool)}
    got = _run(adapter, "ppo", x, dual_clip_c=3.0)
    per_tok = np.array([[-2 * -0.8, -2 * -1.0, 6.0, 6.0], [-1.5 * 0.5, -1.5, -1.5 * 1.2, -1.5 * 1.2]])
    assert got["loss"] == pytest.approx(per_tok.mean())
    assert got["dlogp"][0, 2] == 0 and got["dlogp"][0, 3] == 0


def test_batch_not_multiple_of_group_size_reaches_openrlhf(adapter):
    """Inputs are passed as a user passes them, not refused: a batch of 5 with n_samples_per_prompt = 3 (the largest
    group) reaches OpenRLHF's reshape, which raises (the report shows that error)."""
    x = {"rewards": np.array([1.0, 0.0, 0.5, 0.2, 0.3]), "group": np.array([0, 0, 0, 1, 1]),
         "mask": np.ones((5, 2), bool)}
    with pytest.raises(RuntimeError, match="invalid for input of size 5"):
        _run(adapter, "grpo", x)


def test_groups_are_consecutive_rows_not_ids(adapter):
    """OpenRLHF takes no group ids: contiguous negative/sparse ids match the reference, interleaved ones are grouped by
    position (rows 0-2 and 3-5), which is what its user gets."""
    spec = registry.get("grpo")
    cfg = spec.config(**adapter.conventions["grpo"])
    x = {"rewards": np.array([1.0, 0.3, 0.0, -0.4, 0.5, 2.0]), "group": np.array([-7, -7, -7, 9, 9, 9]),
         "mask": np.ones((6, 2), bool)}
    np.testing.assert_allclose(_run(adapter, "grpo", x)["adv"], spec(**x, config=cfg), rtol=1e-12, atol=1e-12)
    inter = dict(x, group=np.array([-7, 9, -7, 9, -7, 9]))
    by_position = spec(**dict(inter, group=np.array([0, 0, 0, 1, 1, 1])), config=cfg)
    np.testing.assert_allclose(_run(adapter, "grpo", inter)["adv"], by_position, rtol=1e-12, atol=1e-12)
    assert not np.allclose(by_position, spec(**inter, config=cfg))


def test_padding_garbage_propagates_nan():
    """Finding: OpenRLHF masks by multiplication, so NaN at a padded position makes the PPO loss NaN
    (padding is passed as given; an adapter with scrub_padding=True zeroes it first and gets a finite loss)."""
    raw = oa.OpenRLHFRawAdapter()
    x = _policy_batch(1)
    x["logp"][~x["mask"]] = np.nan
    if x["mask"].all():
        pytest.skip("no padding drawn")
    assert np.isnan(_run(raw, "ppo", x)["loss"])
    assert np.isnan(_run(adapters.load("openrlhf"), "ppo", x)["loss"])  # the default passes padding as given
    assert np.isfinite(_run(type("Scrub", (oa.OpenRLHFAdapter,), {"scrub_padding": True})(), "ppo", x)["loss"])


def test_fully_masked_sequence_excluded_from_seq_mean(adapter):
    """A sequence with no valid token is not counted in the seq-mean-token-mean denominator (agrees with ref)."""
    x = _policy_batch(2)
    x["mask"][1] = False
    spec = registry.get("ppo")
    cfg = spec.config(log_ratio_clamp=20.0, agg="seq-mean-token-mean")
    ref_loss, ref_g = spec(**x, config=cfg)
    got = adapter.run(spec, x, cfg, "float64")
    assert got["loss"] == pytest.approx(ref_loss, rel=1e-7)


# ---------------------------------------------------------------------- framework quantities (issue #3 follow-up)
def _value_batch(seed=0, B=4, T=5, scale=1.0):
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    Vo = rng.normal(size=(B, T))
    return {"values": Vo + rng.normal(scale=scale, size=(B, T)), "old_values": Vo,
            "returns": Vo + rng.normal(size=(B, T)), "mask": mask}


def _new_inputs(name):
    if name == "flash_reinforce":
        return {"rewards": np.array([1.0, 0.0, 0.5, 0.2]), "group": np.array([0, 0, 1, 1]), "mask": np.ones((4, 3), bool)}
    if name == "value_clip":
        return _value_batch()
    if name == "kl_in_reward":
        b = _policy_batch()
        return {"rewards": np.array([1.0, -2.0, 30.0, 0.5]), "logp": b["logp"], "ref_logp": b["ref_logp"],
                "mask": b["mask"]}
    return {"rewards": np.array([1.0, -1.0, 0.5, 2.0]), "truncated": np.array([True, False, True, True])}


@pytest.mark.parametrize("name, owner, attr", [
    ("flash_reinforce", "em.RemoteExperienceMaker", "compute_advantages_and_returns"),
    ("value_clip", "loss.ValueLoss", "forward"),
    ("kl_in_reward", "", "compute_reward"),
    ("stop_properly_penalty", "length_penalty", "apply_stop_properly_penalty"),
])
def test_new_entries_reach_openrlhf_code(adapter, monkeypatch, name, owner, attr):
    """flash_reinforce / value_clip / kl_in_reward / stop_properly_penalty call OpenRLHF's own functions."""
    m = oa.load()
    target = m
    for part in filter(None, owner.split(".")):
        target = getattr(target, part)
    monkeypatch.setattr(target, attr, _raise)
    with pytest.raises(Sentinel):
        _run(adapter, name, _new_inputs(name), **({"coef": 0.5} if name == "stop_properly_penalty" else {}))


@pytest.mark.parametrize("name", ["flash_reinforce", "value_clip", "kl_in_reward", "stop_properly_penalty"])
def test_new_entries_match_reference_and_a_broken_function_fails(adapter, monkeypatch, name):
    """Each new entry passes its cases; a perturbed framework function (returns scaled by 1.5) makes them fail."""
    res = harness.run(adapter, algorithms=[name], dtypes=["float32"], n_random=2)
    # known findings (the critic's all-false-mask 0/0, an empty batch's reshape error, NaN padding) are classified
    # by the expectation file
    expectations.apply(res, expectations.for_adapter(adapter))
    unexpected = res.unexpected()
    assert sum(r.status == "pass" for r in res) >= 5 and not unexpected, unexpected[:2]
    m = oa.load()
    if name == "flash_reinforce":
        real = m.em.RemoteExperienceMaker.get_cumulative_returns
        monkeypatch.setattr(m.em.RemoteExperienceMaker, "get_cumulative_returns",
                            lambda self, *a, **k: 1.5 * real(self, *a, **k))
    elif name == "value_clip":
        real = m.loss.ValueLoss.forward
        monkeypatch.setattr(m.loss.ValueLoss, "forward", lambda self, *a, **k: 1.5 * real(self, *a, **k))
    elif name == "kl_in_reward":
        real = m.compute_reward
        monkeypatch.setattr(m, "compute_reward", lambda *a, **k: 1.5 * real(*a, **k))
    else:
        real = m.length_penalty.apply_stop_properly_penalty
        monkeypatch.setattr(m.length_penalty, "apply_stop_properly_penalty", lambda e, c: real(e, -c if c else 0.7))
    res = harness.run(adapter, algorithms=[name], dtypes=["float32"], n_random=2)
    assert sum(r.status == "fail" for r in res) >= 3


def test_value_clip_fixed_cases(adapter):
    """Values moved past ε toward their returns on both sides: the clipped branch wins and the gradient is 0
    there, exactly as the reference says; an all-false mask gives OpenRLHF's 0/0 NaN (expectation xfail)."""
    x = {"values": np.array([[3.0, -3.0, 0.1]]), "old_values": np.zeros((1, 3)), "returns": np.array([[2.9, -2.5, 0.0]]),
         "mask": np.ones((1, 3), bool)}
    got = _run(adapter, "value_clip", x)
    ref_loss, ref_d = registry.get("value_clip")(**x, config=registry.get("value_clip").config(eps=0.5))
    assert got["loss"] == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(got["dvalues"], ref_d, atol=1e-15)
    assert got["dvalues"][0, 0] == 0 and got["dvalues"][0, 1] == 0
    empty = dict(x, mask=np.zeros((1, 3), bool))
    assert np.isnan(_run(adapter, "value_clip", empty)["loss"])


def test_kl_in_reward_extreme_log_ratios(adapter):
    """Log-ratios of ±30 and ±100 in float32: compute_approx_kl clamps the KL to ±10 and the result stays finite and
    equal to the reference with value_clamp=10; an empty row gets no reward at its valid (none) positions."""
    lr = np.array([[30.0, -30.0, 100.0], [-100.0, 5.0, 0.0]])
    logp = np.full((2, 3), -1.0)
    mask = np.array([[True, True, True], [False, False, False]])
    for est in ("k1", "k2", "k3"):
        x = {"rewards": np.array([1.0, 2.0]), "logp": logp, "ref_logp": logp - lr, "mask": mask}
        got = _run(adapter, "kl_in_reward", x, dtype="float32", estimator=est)["token_rewards"]
        spec = registry.get("kl_in_reward")
        ref = spec(**x, config=spec.config(**adapter.conventions["kl_in_reward"], estimator=est))
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got[mask], ref[mask], rtol=1e-6, atol=1e-6)


def test_flash_reinforce_ignores_groups(adapter):
    """Batch size not a multiple of any group size and negative/sparse ids: flash_reinforce takes the batch mean."""
    x = {"rewards": np.array([1.0, 0.0, 0.5, 0.2, 3.0]), "group": np.array([-7, 1000, -7, 3, 3]),
         "mask": np.ones((5, 2), bool)}
    got = _run(adapter, "flash_reinforce", x)["adv"]
    np.testing.assert_allclose(got[:, 0], x["rewards"] - x["rewards"].mean(), atol=1e-12)


@pytest.mark.parametrize("name", ["value_clip", "kl_in_reward", "stop_properly_penalty", "flash_reinforce"])
def test_new_reproductions_run_standalone(adapter, name):
    """The reproduction snippets of the new entries run with only OpenRLHF + numpy/torch."""
    import contextlib
    import io

    spec = registry.get(name)
    x = _new_inputs(name)
    cfg = spec.config(**{**adapter.conventions.get(name, {}), **({"coef": 0.5} if name == "stop_properly_penalty" else {})})
    code = adapter.reproduction(spec, x, cfg, "float32")
    assert "conformance" not in code and "from rlspec" not in code and "import rlspec" not in code
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<repro>", "exec"), {})
    assert buf.getvalue().strip()

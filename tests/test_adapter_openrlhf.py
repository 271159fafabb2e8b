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

from conformance import adapters, expectations, harness  # noqa: E402
from conformance.adapters import openrlhf_adapter as oa  # noqa: E402
from reference import registry  # noqa: E402


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


def test_batch_not_multiple_of_group_size_is_unsupported(adapter):
    """OpenRLHF needs n_samples_per_prompt rollouts for every prompt: unequal groups are 'unsupported'."""
    x = {"rewards": np.array([1.0, 0.0, 0.5, 0.2, 0.3]), "group": np.array([0, 0, 0, 1, 1]),
         "mask": np.ones((5, 2), bool)}
    with pytest.raises(NotImplementedError):
        _run(adapter, "grpo", x)


def test_interleaved_negative_groups_use_experience_index(adapter):
    """Arbitrary (negative, interleaved) group ids are mapped through Experience.index and match the reference."""
    x = {"rewards": np.array([1.0, 0.3, 0.0, -0.4, 0.5, 2.0]), "group": np.array([-7, 9, -7, 9, -7, 9]),
         "mask": np.ones((6, 2), bool)}
    spec = registry.get("grpo")
    cfg = spec.config(**adapter.conventions["grpo"])
    np.testing.assert_allclose(_run(adapter, "grpo", x)["adv"], spec(**x, config=cfg), rtol=1e-12, atol=1e-12)


def test_padding_garbage_propagates_nan():
    """Finding: OpenRLHF masks by multiplication, so NaN at a padded position makes the PPO loss NaN
    (the default adapter zeroes padding first; OpenRLHFRawAdapter passes it through)."""
    raw = oa.OpenRLHFRawAdapter()
    x = _policy_batch(1)
    x["logp"][~x["mask"]] = np.nan
    if x["mask"].all():
        pytest.skip("no padding drawn")
    assert np.isnan(_run(raw, "ppo", x)["loss"])
    assert np.isfinite(_run(adapters.load("openrlhf"), "ppo", x)["loss"])


def test_fully_masked_sequence_excluded_from_seq_mean(adapter):
    """A sequence with no valid token is not counted in the seq-mean-token-mean denominator (agrees with ref)."""
    x = _policy_batch(2)
    x["mask"][1] = False
    spec = registry.get("ppo")
    cfg = spec.config(log_ratio_clamp=20.0, agg="seq-mean-token-mean")
    ref_loss, ref_g = spec(**x, config=cfg)
    got = adapter.run(spec, x, cfg, "float64")
    assert got["loss"] == pytest.approx(ref_loss, rel=1e-7)

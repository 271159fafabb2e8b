"""The built-in AReaL adapter: it reaches AReaL's own functions, records the version, and its comparisons
can fail. Run with ``tox -e peers`` (needs areal 1.0.4)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

pytestmark = pytest.mark.peers
pytest.importorskip("areal")
torch = pytest.importorskip("torch")

from rlspec.conformance import adapters, expectations, harness  # noqa: E402
from rlspec.conformance.adapters import areal_adapter as aa  # noqa: E402
from rlspec.reference import registry  # noqa: E402


class Sentinel(Exception):
    pass


def _raise(*a, **k):
    raise Sentinel()


@pytest.fixture(scope="module")
def adapter():
    a = adapters.load("areal")
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
    """The adapter reports the installed AReaL version (importlib.metadata)."""
    import importlib.metadata

    assert adapter.version == importlib.metadata.version("areal") and adapter.name == "areal"
    assert harness.run(adapter, algorithms=["sapo"], dtypes=["float64"], n_random=0).version == adapter.version


@pytest.mark.parametrize("name, target", [("ppo", "ppo_actor_loss_fn"), ("gspo", "ppo_actor_loss_fn"),
                                          ("sapo", "sapo_loss_fn"), ("kl_k3", "KLEstimator"),
                                          ("grpo", "Normalization"), ("rloo", "Normalization")])
def test_adapter_reaches_areal_code(adapter, monkeypatch, name, target):
    """Each mapping calls AReaL's own function: replacing it with a sentinel makes the adapter raise it."""
    m = aa.load()
    if target in ("ppo_actor_loss_fn", "sapo_loss_fn"):
        monkeypatch.setattr(m.functional, target, _raise)
    elif target == "KLEstimator":
        monkeypatch.setattr(m.KLEstimator, "__call__", _raise)
    else:
        monkeypatch.setattr(m.Normalization, "__call__", _raise)
    if registry.get(name).kind == "advantage":
        x = {"rewards": np.array([1.0, 0.0, 0.5, 0.2]), "group": np.array([0, 0, 1, 1]), "mask": np.ones((4, 3), bool)}
    else:
        x = _policy_batch()
    with pytest.raises(Sentinel):
        _run(adapter, name, x)


def test_broken_framework_function_makes_cases_fail(adapter, monkeypatch):
    """A deliberately wrong sapo_loss_fn (temperatures swapped) must produce failed cases."""
    m = aa.load()
    real = m.functional.sapo_loss_fn
    monkeypatch.setattr(m.functional, "sapo_loss_fn",
                        lambda lp, old, adv, tp, tn, mask, **k: real(lp, old, adv, tn * 3, tp, mask, **k))
    res = harness.run(adapter, algorithms=["sapo"], dtypes=["float64"], n_random=2)
    assert sum(r.status == "fail" for r in res) >= 5


def test_check_has_no_unexpected_failures(adapter):
    """`rlspec check areal` (harness.run + the expectation file): every difference is classified, none stale."""
    res = harness.run(adapter, n_random=20)
    path = expectations.find("areal", adapter.version)
    assert path is not None and path.name == "areal-1.0.4.txt"
    stale = expectations.apply(res, expectations.load(path))
    bad = [(r.case_id, r.message[:120]) for r in res if r.status in harness.UNEXPECTED + ("xpass",)]
    assert not bad, bad
    assert not stale, stale
    counts = collections.Counter(r.status for r in res)
    assert counts["pass"] > counts["deviation"] + counts["xfail"], counts


def test_reproduction_is_standalone(adapter):
    """The reproduction snippet runs with only AReaL + numpy/torch."""
    import contextlib
    import io

    x = _policy_batch(4)
    spec = registry.get("sapo")
    code = adapter.reproduction(spec, x, None, "float64")
    assert "conformance" not in code
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<repro>", "exec"), {})
    got = _run(adapter, "sapo", x)["loss"]
    assert float(buf.getvalue().split()[1]) == pytest.approx(got, rel=1e-12)


# ---------------------------------------------------------------- bug-finding inputs the harness lacks
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("lr", [30.0, -30.0])
def test_extreme_log_ratio_ppo_no_clamp(adapter, dtype, lr):
    """Log-ratios ±30 in float32/bf16 (issue #3): AReaL does not clamp log r; e^30 still fits float32/bf16, the
    clipped surrogate zeroes the gradient where the clip binds, and loss/gradient stay finite and match the ref."""
    T = 3
    logp = np.full((2, T), -1.0)
    x = {"logp": logp, "old_logp": logp - lr, "adv": np.array([[1.0] * T, [-1.0] * T]), "mask": np.ones((2, T), bool)}
    spec = registry.get("ppo")
    cfg = spec.config()
    rx = harness.cast_value(x, dtype)
    ref_loss, ref_g = spec(**harness.as_float64(rx), config=cfg)
    got = adapter.run(spec, rx, cfg, dtype)
    assert np.isfinite(got["loss"]) and np.isfinite(got["dlogp"]).all()
    assert got["loss"] == pytest.approx(ref_loss, rel=2e-2)


def test_log_ratio_100_float32_overflows(adapter):
    """Finding: without a log-ratio clamp, log r = 100 overflows float32 (e^100 = inf) in ppo_actor_loss_fn:
    the loss is inf/NaN for Â < 0 (unclipped branch −Â·r). The reference raises only beyond 700."""
    T = 2
    x = {"logp": np.zeros((1, T)), "old_logp": np.full((1, T), -100.0), "adv": np.full((1, T), -1.0),
         "mask": np.ones((1, T), bool)}
    got = _run(adapter, "ppo", x, "float32")
    assert not np.isfinite(got["loss"])


def test_k3_extreme_gives_nan_gradient(adapter):
    """Finding (peers.md §6): KLEstimator k3 clamps only after exp, so ref − logp = 100 in float32 gives
    exp(100) = inf and a NaN gradient through the clamp (inf·0)."""
    x = {"logp": np.array([[0.0]]), "ref_logp": np.array([[100.0]]), "mask": np.ones((1, 1), bool)}
    got = _run(adapter, "kl_k3", x, "float32")
    assert got["loss"] == pytest.approx(10.0)
    assert not np.isfinite(got["dlogp"]).all()


def test_dual_clip_beyond_bound_both_signs(adapter):
    """c_clip = 3: ratios beyond c for Â < 0 are capped at −c·Â (zero gradient); inert for Â > 0."""
    r = np.array([0.5, 1.0, 4.0, 10.0])
    x = {"logp": np.zeros((2, 4)), "old_logp": -np.log(r)[None].repeat(2, 0),
         "adv": np.array([[-2.0] * 4, [1.5] * 4]), "mask": np.ones((2, 4), bool)}
    got = _run(adapter, "ppo", x, dual_clip_c=3.0)
    per_tok = np.array([[1.6, 2.0, 6.0, 6.0], [-0.75, -1.5, -1.8, -1.8]])
    assert got["loss"] == pytest.approx(per_tok.mean())
    assert got["dlogp"][0, 2] == 0 and got["dlogp"][0, 3] == 0


def test_unequal_groups_reach_areal_and_groups_are_consecutive_rows(adapter):
    """Inputs are passed as a user passes them: with a batch of 3 and group_size 2 (the largest group), AReaL's
    Normalization leaves the trailing row with mean 0 and std 0, so its advantage is R/eps (finding, xfail in the
    expectation file); contiguous negative ids match the reference."""
    got = _run(adapter, "grpo", {"rewards": np.array([1.0, 0.0, 0.5]), "group": np.array([0, 0, 1]),
                                 "mask": np.ones((3, 2), bool)}, "float32")["adv"]
    assert got[2, 0] == pytest.approx(0.5 / 1e-5, rel=1e-4)
    x = {"rewards": np.array([1.0, 0.3, 0.0, -0.4]), "group": np.array([-7, -7, 9, 9]), "mask": np.ones((4, 2), bool)}
    spec = registry.get("grpo")
    np.testing.assert_allclose(_run(adapter, "grpo", x, "float32")["adv"],
                               spec(**x, config=spec.config(**adapter.conventions["grpo"])), rtol=1e-6, atol=1e-6)


def test_padding_garbage_gives_nan_gradient():
    """Finding: NaN padding leaves AReaL's PPO loss value finite (torch.where) but writes NaN into dlogp at the
    padded positions (backward of exp through torch.where); zeroing padding first (scrub_padding=True) avoids it."""
    x = _policy_batch(1)
    if x["mask"].all():
        pytest.skip("no padding drawn")
    x["logp"][~x["mask"]] = np.nan
    got = _run(aa.ArealRawAdapter(), "ppo", x)
    assert np.isfinite(got["loss"]) and np.isnan(got["dlogp"][~x["mask"]]).any()
    assert np.isfinite(_run(type("Scrub", (aa.ArealAdapter,), {"scrub_padding": True})(), "ppo", x)["dlogp"]).all()


# ---------------------------------------------------------------------- framework quantities (issue #3 follow-up)
def _decoupled_batch(seed=0, B=4, T=5):
    x = _policy_batch(seed, B, T)
    rng = np.random.default_rng(seed + 100)
    x["prox_logp"] = x["old_logp"] + rng.normal(scale=0.7, size=(B, T))
    return x


def _value_batch(seed=0, B=4, T=5):
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]
    Vo = rng.normal(size=(B, T))
    return {"values": Vo + rng.normal(size=(B, T)), "old_values": Vo, "returns": Vo + rng.normal(size=(B, T)),
            "mask": mask}


@pytest.mark.parametrize("name, target, dtype", [("decoupled_ppo", "ppo_actor_loss_fn", "float64"),
                                                 ("value_clip", "ppo_critic_loss_fn", "float32")])
def test_new_entries_reach_areal_code(adapter, monkeypatch, name, target, dtype):
    """decoupled_ppo and value_clip call AReaL's own loss functions."""
    m = aa.load()
    monkeypatch.setattr(m.functional, target, _raise)
    x = _decoupled_batch() if name == "decoupled_ppo" else _value_batch()
    with pytest.raises(Sentinel):
        _run(adapter, name, x, dtype=dtype)


def test_decoupled_weight_reaches_rejection_sampling(adapter, monkeypatch):
    """With behave_weight=True the weight comes from AReaL's apply_rejection_sampling (not from the adapter)."""
    m = aa.load()
    import areal.utils.functional.functional as F

    monkeypatch.setattr(F, "apply_rejection_sampling", _raise)
    with pytest.raises(Sentinel):
        _run(adapter, "decoupled_ppo", _decoupled_batch(), behave_weight=True)
    assert m is not None


@pytest.mark.parametrize("overrides", [{"behave_weight": False}, {"behave_weight": True},
                                       {"behave_weight": True, "behave_cap": 2.0, "behave_cap_mode": "mask"},
                                       {"behave_weight": True, "behave_cap": 2.0, "behave_cap_mode": "clamp"}])
def test_decoupled_matches_reference_in_float32(adapter, overrides):
    """Stale behaviour (π_prox ≠ π_behave): AReaL's decoupled loss and gradient equal the reference's in float32
    for each behaviour-weight option; the unweighted default differs from the paper's weighted form."""
    x = _decoupled_batch(1)
    spec = registry.get("decoupled_ppo")
    xr = {k: (v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" else v) for k, v in x.items()}
    got = _run(adapter, "decoupled_ppo", xr, dtype="float32", **overrides)
    ref = spec(**xr, config=spec.config(**overrides))
    assert got["loss"] == pytest.approx(ref[0], rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(got["dlogp"], ref[1], rtol=1e-5, atol=1e-6)
    paper = spec(**xr, config=spec.config())
    if not overrides["behave_weight"]:
        assert abs(got["loss"] - paper[0]) > 1e-3  # AReaL's default drops the importance weight


def test_decoupled_broken_weight_makes_cases_fail(adapter, monkeypatch):
    """A perturbed rejection sampler (weights squared) makes the weighted decoupled cases fail."""
    import areal.utils.functional.functional as F

    real = F.apply_rejection_sampling

    def squared(*a, **k):
        r = real(*a, **k)
        return type(r)(**{**r.__dict__, "behave_imp_weight": r.behave_imp_weight ** 2})

    monkeypatch.setattr(F, "apply_rejection_sampling", squared)
    res = harness.run(adapter, algorithms=["decoupled_ppo"], dtypes=["float32"], n_random=0)
    assert sum(r.status == "fail" for r in res) >= 3


def test_value_clip_fixed_cases(adapter):
    """Values moved past ε toward their returns: zero gradient where the clipped branch wins (as the reference);
    float64 is unsupported (ppo_critic_loss_fn asserts float32); an all-false mask gives 0/0 = NaN (xfail)."""
    x = {"values": np.array([[3.0, -3.0, 0.1]]), "old_values": np.zeros((1, 3)), "returns": np.array([[2.9, -2.5, 0.0]]),
         "mask": np.ones((1, 3), bool)}
    got = _run(adapter, "value_clip", x, dtype="float32")
    spec = registry.get("value_clip")
    ref = spec(**x, config=spec.config(eps=0.5))
    assert got["loss"] == pytest.approx(ref[0], rel=1e-6)
    np.testing.assert_allclose(got["dvalues"], ref[1], atol=1e-7)
    assert got["dvalues"][0, 0] == 0 and got["dvalues"][0, 1] == 0
    with pytest.raises(NotImplementedError):
        _run(adapter, "value_clip", x, dtype="float64")
    assert np.isnan(_run(adapter, "value_clip", dict(x, mask=np.zeros((1, 3), bool)), dtype="float32")["loss"])


@pytest.mark.parametrize("name, overrides", [("decoupled_ppo", {"behave_weight": True, "behave_cap": 2.0}),
                                             ("value_clip", {})])
def test_new_reproductions_run_standalone(adapter, name, overrides):
    """The reproduction snippets of the new entries run with only AReaL + numpy/torch and print its result."""
    import contextlib
    import io

    spec = registry.get(name)
    x = _decoupled_batch(2) if name == "decoupled_ppo" else _value_batch(2)
    dtype = "float32" if name == "value_clip" else "float64"
    code = adapter.reproduction(spec, x, spec.config(**{**adapter.conventions[name], **overrides}), dtype)
    assert "conformance" not in code
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<repro>", "exec"), {})
    got = _run(adapter, name, x, dtype=dtype, **overrides)["loss"]
    assert float(buf.getvalue().split()[1]) == pytest.approx(got, rel=1e-6)

"""The built-in ``trl`` adapter: it reaches TRL's own GRPOTrainer._compute_loss, records the version, passes the
conformance run up to its classified findings, and its comparison can fail (peers suite: ``tox -e peers``)."""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.peers
trl = pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402

from rlspec.conformance import adapters, expectations, harness  # noqa: E402
from rlspec.conformance import inputs as gen  # noqa: E402
from rlspec.conformance.adapters import trl_adapter  # noqa: E402
from rlspec.reference import registry  # noqa: E402

N_RANDOM = 2


@pytest.fixture(scope="module")
def adapter():
    return adapters.load("trl")


class Sentinel(Exception):
    pass


def _case(spec_name: str, inputs: dict, dtype: str, config: dict | None = None, name: str = "t") -> harness.Case:
    return harness.Case(id=f"{spec_name}/{dtype}/{name}", algorithm=spec_name, name=name, inputs=inputs,
                        config=config or {}, dtype=dtype)


def test_module_imports_trl_lazily() -> None:
    """The adapter module has no top-level import of trl/torch, so it loads without the framework."""
    tree = ast.parse(Path(trl_adapter.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | \
            {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert not names & {"trl", "torch", "accelerate", "transformers"}, names


def test_not_installed_is_reported(monkeypatch) -> None:
    """available() is (False, why) when trl cannot be imported, and every case is then 'not-installed'."""
    import sys

    monkeypatch.setitem(sys.modules, "trl.trainer.grpo_trainer", None)
    a = trl_adapter.TRLAdapter()
    ok, why = a.available()
    assert not ok and "trl" in why
    res = harness.run(a, algorithms=["ppo"], n_random=0)
    assert res and {r.status for r in res} <= {"not-installed", "unsupported"}
    assert "not-installed" in {r.status for r in res}


def test_version_recorded(adapter) -> None:
    assert adapter.version == importlib.metadata.version("trl")
    res = harness.run(adapter, algorithms=["ppo"], n_random=0)
    assert res.version == adapter.version
    assert expectations.find("trl", adapter.version) is not None


def test_adapter_reaches_compute_loss(adapter, monkeypatch) -> None:
    """A sentinel raised from GRPOTrainer._compute_loss propagates: the adapter runs TRL's method."""
    def boom(self, model, inputs):
        raise Sentinel("reached")

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", boom)
    batch = gen.fixed_policy_batches()[0].inputs
    for name in ("ppo", "kl_k3", "sapo"):
        spec = registry.get(name)
        with pytest.raises(Sentinel):
            adapter.run(spec, harness.select_inputs(spec, batch), spec.config(**adapter.conventions[name]), "float64")


def test_compute_loss_reads_only_the_attributes_the_bare_trainer_sets() -> None:
    """The self.* attributes of _compute_loss (TRL 1.16.0) are the ones make_bare_trainer provides."""
    src = inspect.getsource(GRPOTrainer._compute_loss)
    used = set(re.findall(r"self\.([A-Za-z_]\w*)", src))
    expected = {"_entropy_bonus_enabled", "_entropy_window_stats", "_get_per_token_logps_and_entropies",
                "_last_world_entropy", "_metrics", "accelerator", "args", "aux_loss_enabled", "beta",
                "current_gradient_accumulation_steps", "entropy_coef", "epsilon_high", "epsilon_low",
                "get_gamma_weights", "get_high_entropy_mask", "get_off_policy_mask", "importance_sampling_level",
                "loss_type", "max_completion_length", "model", "off_policy_mask_threshold", "router_aux_loss_coef",
                "top_entropy_quantile", "use_adaptive_entropy", "use_vllm", "vllm_importance_sampling_correction"}
    assert used == expected, f"TRL changed _compute_loss: new {used - expected}, gone {expected - used}"


def test_conformance_run_has_no_unexpected_failure(adapter) -> None:
    """`rlspec check trl` (harness.run + expectation file) on every supported entry: no fail/error left."""
    res = harness.run(adapter, algorithms=list(trl_adapter.SUPPORTED), n_random=N_RANDOM)
    expectations.apply(res, expectations.for_adapter(adapter))
    bad = [(r.case_id, r.message[:200]) for r in res.unexpected()]
    assert not bad, bad
    assert sum(r.status == "pass" for r in res) > 100
    input_classes = ("padding-nonfinite", "log-ratio-89", "log-ratio-100", "empty-batch")  # NaN padding, overflow, B = 0
    assert not [r for r in res if r.algorithm in ("ppo", "dapo", "cispo", "kl_k3", "entropy") and
                r.status in ("xfail", "deviation") and not any(c in r.case_id for c in input_classes)], \
        "on finite, representable, non-empty inputs only gspo/sapo have known TRL differences"


def test_broken_framework_function_makes_cases_fail(adapter, monkeypatch) -> None:
    """Scaling TRL's loss by 1.001 (a monkeypatched _compute_loss) turns passing cases into failures."""
    real = GRPOTrainer._compute_loss
    monkeypatch.setattr(GRPOTrainer, "_compute_loss", lambda self, m, i: 1.001 * real(self, m, i))
    res = harness.run(adapter, algorithms=["ppo", "kl_k3"], dtypes=["float64"], n_random=0)
    judged = [r for r in res if r.status in ("pass", "fail")]
    zero_loss = ("all-false-mask", "zero-adv", "kl_k3/float64/on-policy", "empty-batch")  # loss 0: a scale cannot show
    assert judged and all(r.status == "fail" for r in judged if not any(z in r.case_id for z in zero_loss)), \
        [r.case_id for r in judged if r.status == "pass"]


def test_unsupported_configs_say_why(adapter) -> None:
    """Dual clip, group-token-mean, kl_k1 and advantages are reported unsupported with a reason."""
    res = harness.run(adapter, algorithms=["ppo", "kl_k1", "grpo"], dtypes=["float64"], n_random=0)
    by = {r.case_id: r for r in res}
    assert by["kl_k1/*"].status == by["grpo/*"].status == "unsupported"
    dual = [r for r in res if "dual-clip=3" in r.case_id]
    assert dual and all(r.status == "unsupported" and "dual clip" in r.message for r in dual)


# ---------------------------------------------------------------------- findings, pinned down exactly
def test_grpo_normaliser_counts_empty_rows(adapter) -> None:
    """Convention: TRL's seq-mean (grpo/sapo) divides by all B rows — the reference's seq_denominator='all'
    (equivalently normalizer=B), declared in the adapter's conventions; the default B′ differs."""
    batch = next(b for b in gen.fixed_policy_batches() if b.name == "fully-masked-rows").inputs
    for name in ("gspo", "sapo"):
        spec = registry.get(name)
        inp = harness.select_inputs(spec, batch)
        cfg = spec.config(**adapter.conventions[name])
        got = adapter.run(spec, inp, cfg, "float64")
        ref_b = spec(**inp, config=dataclasses.replace(cfg, normalizer=float(inp["mask"].shape[0])))
        ref = spec(**inp, config=cfg)
        ref_nonempty = spec(**inp, config=dataclasses.replace(cfg, seq_denominator="nonempty"))
        assert cfg.seq_denominator == "all"
        assert abs(got["loss"] - ref_b[0]) < 1e-6 * max(1.0, abs(ref_b[0]))
        assert abs(got["loss"] - ref[0]) < 1e-6 * max(1.0, abs(ref[0]))
        assert abs(got["loss"] - ref_nonempty[0]) > 1e-3  # and it is not the B' (non-empty rows) normaliser


def test_sapo_temperature_is_float32_in_float64_runs(adapter) -> None:
    """xfail finding: in float64, TRL's SAPO equals the reference with τ rounded to float32, not with τ."""
    spec = registry.get("sapo")
    inp = harness.select_inputs(spec, gen.fixed_policy_batches()[0].inputs)
    cfg = spec.config(**adapter.conventions["sapo"], tau_neg=1.05)
    got = adapter.run(spec, inp, cfg, "float64")
    ref = spec(**inp, config=cfg)
    ref32 = spec(**inp, config=dataclasses.replace(cfg, tau_pos=float(np.float32(cfg.tau_pos)),
                                                    tau_neg=float(np.float32(cfg.tau_neg))))
    assert abs(got["loss"] - ref32[0]) < 1e-12 and np.allclose(got["dlogp"], ref32[1], rtol=1e-10, atol=1e-13)
    assert abs(got["loss"] - ref[0]) > 1e-9


def _extreme_batch(value: float) -> dict:
    rng = np.random.default_rng(7)
    B, T = 4, 6
    mask = gen.lengths_mask([6, 4, 5, 3], T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    lr = value * np.where((np.arange(B)[:, None] + np.arange(T)[None, :]) % 2 == 0, 1.0, -1.0)
    adv = np.repeat(np.array([[1.0], [-0.7], [0.4], [-1.5]]), T, axis=1)
    return {"logp": logp, "old_logp": logp - lr, "ref_logp": logp - lr[::-1, ::-1], "adv": adv, "mask": mask,
            "group": np.arange(B)}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_log_ratio_30_matches(adapter, dtype) -> None:
    """Log-ratios of ±30 (beyond the harness's ±20/±50 set in bf16): PPO-clip and k3 match the reference."""
    for name in ("ppo", "kl_k3"):
        spec = registry.get(name)
        r = harness.run_case(adapter, _case(name, harness.select_inputs(spec, _extreme_batch(30.0)), dtype), spec)
        assert r.status in ("pass", "unsupported"), (name, r.message)


def test_log_ratio_89_overflows_float32(adapter) -> None:
    """Finding (no log-ratio clamp in TRL): at a log-ratio of 89 on the clipped side (true loss finite, true gradient 0
    there), exp overflows float32 and TRL's gradient is NaN (inf·0 in the clip's backward). Reported, not hidden.
    At ±100 against both advantage signs the reference's loss itself exceeds float32: not applicable."""
    spec = registry.get("ppo")
    cases, _, _ = harness.cases_for(spec, ("float32",), n_random=0)
    by = {c.name: c for c in cases}
    r = harness.run_case(adapter, by["log-ratio-89"], spec)
    assert r.status == "fail" and "non-finite gradient" in r.message, r.message
    assert harness.run_case(adapter, by["log-ratio-100"], spec).status == "unsupported"


def test_raw_padding_poisons_trl_loss() -> None:
    """Finding: with NaN/inf at padded positions (passed through unchanged), TRL's loss is NaN, because it
    multiplies by the mask instead of selecting. The default adapter passes padding as given; zeroed, it is finite."""
    raw = trl_adapter.TRLRawPaddingAdapter()
    spec = registry.get("ppo")
    batch = next(b for b in gen.fixed_policy_batches() if b.name == "padding-nonfinite").inputs
    out = raw.run(spec, harness.select_inputs(spec, batch), spec.config(**raw.conventions["ppo"]), "float64")
    assert not np.isfinite(out["loss"])
    zeroing = type("Zeroing", (trl_adapter.TRLAdapter,), {"raw_padding": False})()
    clean = zeroing.run(spec, harness.select_inputs(spec, batch), spec.config(**raw.conventions["ppo"]), "float64")
    assert np.isfinite(clean["loss"])


def test_reproduction_snippet_runs_trl_directly(adapter) -> None:
    """The adapter's snippet needs only trl + torch, and prints the same loss as the adapter."""
    import contextlib
    import io

    spec = registry.get("dapo")
    inp = harness.select_inputs(spec, gen.fixed_policy_batches()[1].inputs)
    cfg = spec.config(**adapter.conventions["dapo"])
    src = adapter.reproduction(spec, harness.cast_value(inp, "float32"), cfg, "float32")
    assert not re.search(r"^\s*(from|import) (rlspec|conformance|reference|optimized)", src, re.M)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(src, "<snippet>", "exec"), {})
    printed = float(re.search(r"loss: (\S+)", buf.getvalue()).group(1))
    got = adapter.run(spec, harness.cast_value(inp, "float32"), cfg, "float32")["loss"]
    assert printed == pytest.approx(got, rel=1e-6)


# ---------------------------------------------------------------------- framework quantities (two_sided_clip, tis,
# vespo, high_entropy_mask, off_policy_sequence_mask)
NEW_ENTRIES = ("two_sided_clip", "tis", "vespo", "high_entropy_mask", "off_policy_sequence_mask")


def _inputs_for(name: str) -> dict:
    spec = registry.get(name)
    if spec.make_inputs is not None:
        inp = spec.make_inputs(np.random.default_rng(3))
        inp.pop("config", None)
        return inp
    return harness.select_inputs(spec, gen.fixed_policy_batches()[0].inputs)


def test_new_losses_reach_compute_loss(adapter, monkeypatch) -> None:
    """two_sided_clip, tis and vespo are computed by GRPOTrainer._compute_loss (a sentinel propagates)."""
    def boom(self, model, inputs):
        raise Sentinel("reached")

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", boom)
    for name in ("two_sided_clip", "tis", "vespo"):
        spec = registry.get(name)
        with pytest.raises(Sentinel):
            adapter.run(spec, _inputs_for(name), spec.config(**adapter.conventions[name]), "float64")


@pytest.mark.parametrize("name, method", [("high_entropy_mask", "get_high_entropy_mask"),
                                          ("off_policy_sequence_mask", "get_off_policy_mask"),
                                          ("vespo", "get_gamma_weights")])
def test_masks_and_gamma_weights_are_trls_own(adapter, monkeypatch, name, method) -> None:
    """The samplers call GRPOTrainer.get_high_entropy_mask / get_off_policy_mask, and vespo reaches
    get_gamma_weights inside _compute_loss: a sentinel raised from each propagates."""
    def boom(*a, **k):
        raise Sentinel(method)

    monkeypatch.setattr(GRPOTrainer, method, boom)
    spec = registry.get(name)
    with pytest.raises(Sentinel):
        adapter.run(spec, _inputs_for(name), spec.config(**adapter.conventions[name]), "float64")


def test_delta_reaches_trl(adapter) -> None:
    """The entry's δ is TRL's GRPOConfig.delta: a ratio beyond δ with Â < 0 gives loss −δ·Â in TRL (PPO would give
    −r·Â), and zero gradient, in float32 and float64."""
    spec = registry.get("two_sided_clip")
    inputs = {"logp": np.array([[-0.1]]), "old_logp": np.array([[-2.1]]), "adv": np.array([[-1.0]]),
              "mask": np.array([[True]])}  # r = e^2 ≈ 7.39 > δ = 4
    for dt in ("float64", "float32"):
        out = adapter.run(spec, inputs, spec.config(**adapter.conventions["two_sided_clip"]), dt)
        assert out["loss"] == pytest.approx(4.0, rel=1e-6)
        assert out["dlogp"][0, 0] == 0.0


def test_tis_weight_is_applied_by_trl(adapter) -> None:
    """TRL multiplies the per-token loss by importance_sampling_ratio: on-policy (r = 1), one token with Â = 1 and
    π_old/π_rollout = e^{0.5} < C gives loss −e^{0.5}; with π_old/π_rollout = e^2 > C = 3 the weight is C."""
    spec = registry.get("tis")
    base = {"logp": np.array([[-1.0]]), "old_logp": np.array([[-1.0]]), "adv": np.array([[1.0]]),
            "mask": np.array([[True]])}
    cfg = spec.config(**adapter.conventions["tis"])
    out = adapter.run(spec, dict(base, rollout_logp=np.array([[-1.5]])), cfg, "float64")
    assert out["loss"] == pytest.approx(-np.exp(0.5), rel=1e-12)
    out = adapter.run(spec, dict(base, rollout_logp=np.array([[-3.0]])), cfg, "float64")
    assert out["loss"] == pytest.approx(-3.0, rel=1e-12)


def test_new_entries_run_has_no_unexpected_failure(adapter) -> None:
    """rlspec check trl on the five framework quantities: every difference is classified."""
    res = harness.run(adapter, algorithms=list(NEW_ENTRIES), n_random=N_RANDOM)
    expectations.apply(res, expectations.load(expectations.find("trl", adapter.version)))
    assert not res.unexpected(), [(r.case_id, r.message) for r in res.unexpected()][:5]
    assert {r.algorithm for r in res if r.status == "pass"} == set(NEW_ENTRIES)


def test_broken_off_policy_mask_makes_cases_fail(adapter, monkeypatch) -> None:
    """A deliberately broken TRL mask (keeps everything) makes off-policy-mask cases fail: the comparison can fail."""
    def keep_all(advantages, per_token_logps, sampling_per_token_logps, mask, off_policy_threshold):
        return torch.ones(mask.shape[0], 1, dtype=mask.dtype)

    monkeypatch.setattr(GRPOTrainer, "get_off_policy_mask", staticmethod(keep_all))
    res = harness.run(adapter, algorithms=["off_policy_sequence_mask"], dtypes=["float64"], n_random=4)
    assert "fail" in {r.status for r in res}


def test_high_entropy_threshold_is_float32(adapter) -> None:
    """Finding (expectation file, item 3): with float64 entropies TRL's float32 quantile can drop the token whose
    entropy is exactly the threshold. 6 valid tokens, ρ = 0.2: the 0.8-quantile is the 5th order statistic; an
    entropy that rounds UP in float32 is dropped by TRL and kept by the reference."""
    x = 1.9367079612112337  # float32(x) > x
    assert float(np.float32(x)) > x
    H = np.array([[0.1, 0.5, 0.9, 1.2, x, 3.0]])
    m = np.ones((1, 6), bool)
    spec = registry.get("high_entropy_mask")
    ref = spec(entropy=H, mask=m)
    got = adapter.run(spec, {"entropy": H, "mask": m}, spec.config(rho=0.2), "float64")["keep"]
    assert ref[0, 4] and not got[0, 4]
    got32 = adapter.run(spec, {"entropy": H.astype(np.float32), "mask": m}, spec.config(rho=0.2), "float32")["keep"]
    assert got32[0, 4]


def test_fully_masked_sequences_and_garbage_for_new_entries(adapter) -> None:
    """Issue #3 hazards on the new entries: a fully masked row and finite garbage padding give the reference's result
    (NaN padding is the padding-nonfinite finding of the expectation file)."""
    for name in NEW_ENTRIES:
        inp = gen.finite_padding(_inputs_for(name), np.random.default_rng(0))[0]
        inp["mask"] = inp["mask"].copy()
        inp["mask"][0] = False
        res = harness.run_case(adapter, _case(name, inp, "float64", name="masked-row"))
        assert res.status in ("pass", "unsupported"), (name, res.message)


def test_new_reproduction_snippets_run_trl_directly(adapter) -> None:
    """The reproduction of a sampler and of a tis case runs with only trl + torch and prints TRL's result."""
    import subprocess
    import sys

    for name in ("off_policy_sequence_mask", "tis"):
        spec = registry.get(name)
        src = adapter.reproduction(spec, _inputs_for(name), spec.config(**adapter.conventions[name]), "float64")
        assert "from rlspec" not in src and "import rlspec" not in src and "conformance" not in src
        out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert ("keep:" if name != "tis" else "loss:") in out.stdout

"""The built-in ``liger`` adapter: Liger's own GRPO loss (ppo_loss_fn and the fused chunked op), version recorded,
conformance run clean up to classified findings, and a broken Liger function makes cases fail (``tox -e peers``)."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.peers
pytest.importorskip("liger_kernel")
torch = pytest.importorskip("torch")

from liger_kernel.chunked_loss import grpo_loss as liger_grpo  # noqa: E402

from rlspec.conformance import adapters, expectations, harness, tolerances  # noqa: E402
from rlspec.conformance import inputs as gen  # noqa: E402
from rlspec.conformance.adapters import liger_adapter  # noqa: E402
from rlspec.reference import registry  # noqa: E402

N_RANDOM = 2


@pytest.fixture(scope="module")
def adapter():
    return adapters.load("liger")


class Sentinel(Exception):
    pass


def test_module_imports_liger_lazily() -> None:
    tree = ast.parse(Path(liger_adapter.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | \
            {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert not names & {"liger_kernel", "torch", "triton"}, names


def test_version_recorded(adapter) -> None:
    assert adapter.version == importlib.metadata.version("liger-kernel")
    assert harness.run(adapter, algorithms=["dapo"], n_random=0).version == adapter.version
    assert expectations.find("liger", adapter.version) is not None


def test_adapter_reaches_liger_loss(adapter, monkeypatch) -> None:
    """A sentinel raised from LigerFusedLinearGRPOFunction.ppo_loss_fn propagates through the adapter."""
    def boom(*a, **k):
        raise Sentinel("reached")

    monkeypatch.setattr(liger_grpo.LigerFusedLinearGRPOFunction, "ppo_loss_fn", staticmethod(boom))
    batch = gen.fixed_policy_batches()[0].inputs
    for name in ("ppo", "kl_k3", "cispo"):
        spec = registry.get(name)
        with pytest.raises(Sentinel):
            adapter.run(spec, harness.select_inputs(spec, batch), spec.config(**adapter.conventions[name]), "float64")


def test_conformance_run_has_no_unexpected_failure(adapter) -> None:
    res = harness.run(adapter, n_random=N_RANDOM)
    expectations.apply(res, expectations.for_adapter(adapter))
    bad = [(r.case_id, r.message[:200]) for r in res.unexpected()]
    assert not bad, bad
    assert sum(r.status == "pass" for r in res) > 100


def test_broken_liger_function_makes_cases_fail(adapter, monkeypatch) -> None:
    """Replacing Liger's k3 estimator by 1.01·k3 makes the kl_k3 cases with a non-zero KL fail."""
    real = liger_grpo.k3_loss_fn
    monkeypatch.setattr(liger_grpo, "k3_loss_fn", lambda a, b: 1.01 * real(a, b))
    res = harness.run(adapter, algorithms=["kl_k3"], dtypes=["float64"], n_random=0)
    judged = [r for r in res if r.status in ("pass", "fail")]
    zero = ("all-false-mask", "on-policy", "empty-batch")
    assert judged and all(r.status == "fail" for r in judged if not any(z in r.case_id for z in zero))


def test_triton_path_reports_why_it_is_unavailable() -> None:
    a = liger_adapter.LigerTritonAdapter()
    ok, why = a.available()
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the Triton path is available here")
    assert not ok and "CUDA" in why
    res = harness.run(a, algorithms=["dapo"], n_random=0)
    assert {r.status for r in res} == {"not-installed"}


# ---------------------------------------------------------------------- the fused chunked path
def _fused_batch(rng: np.random.Generator) -> dict:
    """logp in [−6, −0.7] (away from 0, where float32 log-softmax loses relative precision), ragged mask."""
    B, T = 5, 6
    mask = gen.lengths_mask(rng.integers(1, T + 1, size=B), T)
    logp = rng.uniform(-6.0, -0.7, size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)
    return {"logp": logp, "old_logp": logp + rng.normal(scale=0.3, size=(B, T)),
            "ref_logp": logp + rng.normal(scale=0.3, size=(B, T)), "adv": adv, "mask": mask, "group": np.arange(B)}


@pytest.mark.parametrize("chunk_size", [1, 5])
@pytest.mark.parametrize("name,overrides", [("ppo", {}), ("ppo", {"agg": "seq-mean-token-mean"}),
                                            ("dapo", {"agg": "seq-mean-token-sum-norm"}), ("gspo", {}),
                                            ("sapo", {}), ("cispo", {}), ("kl_k3", {}), ("kl_k3", {"is_weight": "ratio"})])
def test_fused_path_matches_reference_and_loss_fn(name, overrides, chunk_size) -> None:
    """LigerFusedLinearGRPOLoss(compiled=False) on hidden states built so that log softmax(h Wᵀ)[y] = logp:
    its loss and ∂loss/∂h·(1 + e^h) (= ∂loss/∂logp) equal the reference and Liger's ppo_loss_fn (float32)."""
    fused = liger_adapter.LigerFusedAdapter()
    fused.chunk_size = chunk_size
    plain = liger_adapter.LigerAdapter()
    spec = registry.get(name)
    inp = harness.cast_value(harness.select_inputs(spec, _fused_batch(np.random.default_rng(11))), "float32")
    cfg = spec.config(**{**plain.conventions[name], **overrides})
    got = fused.run(spec, inp, cfg, "float32")
    via_fn = plain.run(spec, inp, cfg, "float32")
    ref_loss, ref_d = spec(**harness.as_float64(inp), config=cfg)
    M = inp["mask"]
    rtol, atol = tolerances.tolerance("float32", int(M.sum()))
    assert abs(got["loss"] - ref_loss) <= 10 * (atol + rtol * abs(ref_loss))
    assert np.allclose(got["dlogp"][M], ref_d[M], rtol=10 * rtol, atol=10 * atol)
    assert abs(got["loss"] - via_fn["loss"]) <= 10 * (atol + rtol * abs(via_fn["loss"]))
    assert np.allclose(got["dlogp"][M], via_fn["dlogp"][M], rtol=10 * rtol, atol=10 * atol)


def test_fused_construction_reproduces_logp() -> None:
    """The two-token construction: Liger's own log-prob of the selected token equals the target logp."""
    from liger_kernel.chunked_loss.fused_linear_ppo import LigerFusedLinearPPOBase

    rng = np.random.default_rng(3)
    M = np.ones((3, 4), bool)
    target = rng.uniform(-8, -0.7, size=M.shape)
    z = liger_adapter.logits_for_logp(target, M)
    lp = LigerFusedLinearPPOBase.chunk_forward(torch.tensor(z, dtype=torch.float32).unsqueeze(-1),
                                               torch.tensor([[1.0], [0.0]]), torch.zeros(M.shape, dtype=torch.long))
    assert np.allclose(lp.double().numpy(), target, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- findings, pinned down exactly
def test_token_level_luspo_is_unmasked_and_length_scaled(adapter) -> None:
    """xfail finding: Liger's luspo at token level = (1/(B T)) Σ_i n_i Σ_{all t} ℓ_it — padded tokens included
    (with padding zeroed — an adapter with raw_padding=False — ratio 1 and the row's advantage: ℓ_pad = −A_i) — not
    the masked per-sequence sum (1/B) Σ_i Σ_{valid t} ℓ_it. Valid-token sums S_i come from the reference, row by row."""
    adapter = type("Zeroing", (type(adapter),), {"raw_padding": False})()
    spec = registry.get("ppo")
    batch = next(b for b in gen.fixed_policy_batches() if b.name == "ragged-garbage").inputs
    inp = harness.select_inputs(spec, batch)
    cfg = spec.config(**{**adapter.conventions["ppo"], "agg": "seq-mean-token-sum"})
    got = adapter.run(spec, inp, cfg, "float64")["loss"]
    M = inp["mask"]
    B, T = M.shape
    S = [spec(**{k: v[i:i + 1] for k, v in inp.items()}, config=cfg)[0] for i in range(B)]
    n = M.sum(axis=1)
    A = inp["adv"][np.arange(B), 0]  # the row's (constant) advantage; ragged-garbage rows are non-empty
    assert got == pytest.approx(float((n * (np.array(S) + (T - n) * (-A))).sum() / (B * T)), rel=1e-10)
    assert abs(got - np.mean(S)) > 1e-3


def test_grpo_normaliser_counts_empty_rows(adapter) -> None:
    import dataclasses

    spec = registry.get("gspo")
    inp = harness.select_inputs(spec, next(b for b in gen.fixed_policy_batches() if b.name == "fully-masked-rows").inputs)
    cfg = spec.config(**adapter.conventions["gspo"])
    got = adapter.run(spec, inp, cfg, "float64")["loss"]
    ref_b = spec(**inp, config=dataclasses.replace(cfg, normalizer=float(inp["mask"].shape[0])))[0]
    assert got == pytest.approx(ref_b, rel=1e-10)


def test_sapo_float64_is_exact_unlike_trl(adapter) -> None:
    """Liger's SAPO passes Python-float temperatures, so float64 runs match the reference to 1e-12."""
    spec = registry.get("sapo")
    inp = harness.select_inputs(spec, gen.fixed_policy_batches()[0].inputs)
    cfg = spec.config(**adapter.conventions["sapo"])
    assert adapter.run(spec, inp, cfg, "float64")["loss"] == pytest.approx(spec(**inp, config=cfg)[0], rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_log_ratio_30(adapter, dtype) -> None:
    rng = np.random.default_rng(5)
    B, T = 4, 5
    mask = gen.lengths_mask([5, 3, 4, 2], T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    lr = 30.0 * np.where((np.arange(B)[:, None] + np.arange(T)[None, :]) % 2 == 0, 1.0, -1.0)
    batch = {"logp": logp, "old_logp": logp - lr, "ref_logp": logp - lr[::-1, ::-1],
             "adv": np.repeat(np.array([[1.0], [-0.5], [0.3], [-2.0]]), T, axis=1), "mask": mask, "group": np.arange(B)}
    for name in ("dapo", "kl_k3"):
        spec = registry.get(name)
        case = harness.Case(f"{name}/{dtype}/lr30", name, "lr30", harness.select_inputs(spec, batch), dtype=dtype)
        r = harness.run_case(adapter, case, spec)
        assert r.status in ("pass", "unsupported"), r.message


def test_reproduction_snippets_run_liger_directly(adapter) -> None:
    import contextlib
    import io
    import re

    spec = registry.get("dapo")
    inp = harness.cast_value(harness.select_inputs(spec, _fused_batch(np.random.default_rng(2))), "float32")
    cfg = spec.config(**adapter.conventions["dapo"])
    want = adapter.run(spec, inp, cfg, "float32")["loss"]
    for a in (adapter, liger_adapter.LigerFusedAdapter()):
        src = a.reproduction(spec, inp, cfg, "float32")
        assert not re.search(r"^\s*(from|import) (conformance|reference|optimized)", src, re.M)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(src, "<snippet>", "exec"), {})
        assert float(re.search(r"loss: (\S+)", buf.getvalue()).group(1)) == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------------- framework quantities (two_sided_clip, tis, vespo)
NEW_LOSSES = ("two_sided_clip", "tis", "vespo")


def _inputs_for(name: str) -> dict:
    spec = registry.get(name)
    if spec.make_inputs is not None:
        return spec.make_inputs(np.random.default_rng(3))
    return harness.select_inputs(spec, gen.fixed_policy_batches()[0].inputs)


def test_new_losses_reach_ppo_loss_fn(adapter, monkeypatch) -> None:
    """two_sided_clip (delta=), tis (vllm_is_ratio=) and vespo (loss_type='vespo') are Liger's ppo_loss_fn."""
    seen = {}

    def boom(*a, **k):
        seen.update(k)
        raise Sentinel("reached")

    monkeypatch.setattr(liger_grpo.LigerFusedLinearGRPOFunction, "ppo_loss_fn", staticmethod(boom))
    for name, key in (("two_sided_clip", "delta"), ("tis", "vllm_is_ratio"), ("vespo", "vespo_k_pos")):
        spec = registry.get(name)
        seen.clear()
        with pytest.raises(Sentinel):
            adapter.run(spec, _inputs_for(name), spec.config(**adapter.conventions[name]), "float64")
        assert seen.get(key) is not None, (name, key)


def test_vespo_reaches_liger_gamma_weights(adapter, monkeypatch) -> None:
    """vespo's kernel is Liger's own get_gamma_weights (a sentinel propagates)."""
    def boom(*a, **k):
        raise Sentinel("gamma")

    monkeypatch.setattr(liger_grpo, "get_gamma_weights", boom)
    spec = registry.get("vespo")
    with pytest.raises(Sentinel):
        adapter.run(spec, _inputs_for("vespo"), spec.config(**adapter.conventions["vespo"]), "float64")


def test_new_losses_run_has_no_unexpected_failure(adapter) -> None:
    """rlspec check liger on two_sided_clip, tis, vespo: every difference is classified (luspo item 1)."""
    res = harness.run(adapter, algorithms=list(NEW_LOSSES), n_random=N_RANDOM)
    expectations.apply(res, expectations.for_adapter(adapter))
    assert not res.unexpected(), [(r.case_id, r.message[:200]) for r in res.unexpected()][:5]
    assert {r.algorithm for r in res if r.status == "pass"} == set(NEW_LOSSES)


def test_broken_gamma_weights_make_vespo_fail(adapter, monkeypatch) -> None:
    """Replacing Liger's VESPO kernel by 1.01·φ makes vespo cases with a non-zero advantage fail."""
    real = liger_grpo.get_gamma_weights
    monkeypatch.setattr(liger_grpo, "get_gamma_weights", lambda *a, **k: 1.01 * real(*a, **k))
    res = harness.run(adapter, algorithms=["vespo"], dtypes=["float64"], n_random=2)
    assert "fail" in {r.status for r in res}


def test_delta_beyond_ratio_both_signs(adapter) -> None:
    """Ratios beyond δ with both advantage signs (issue #3 hazard): Â < 0 → loss −δ·Â, gradient 0; Â > 0 → the PPO
    clip (1+ε)·Â binds first, gradient 0; the reference agrees in float32 and bfloat16."""
    spec = registry.get("two_sided_clip")
    inputs = {"logp": np.array([[-0.1], [-0.1]]), "old_logp": np.array([[-2.1], [-2.1]]),
              "adv": np.array([[-1.0], [1.0]]), "mask": np.ones((2, 1), bool)}
    for dt in ("float32", "bfloat16"):
        res = harness.run_case(adapter, harness.Case(id=f"two_sided_clip/{dt}/beyond-delta", algorithm="two_sided_clip",
                                                     name="beyond-delta", inputs=inputs, dtype=dt))
        assert res.status == "pass", res.message
    out = adapter.run(spec, inputs, spec.config(**adapter.conventions["two_sided_clip"]), "float64")
    assert out["loss"] == pytest.approx((4.0 - 1.2) / 2, rel=1e-12)
    assert np.all(out["dlogp"] == 0)

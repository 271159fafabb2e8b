"""The fused paths of kl_cov, fiberpo, igpo_inpainting_loss, capo_curvature and inpo_pairwise against their autograd
formulations and the reference.

Claims checked: for every aggregation mode and the config switches of each loss (KL-Cov's fraction k, β = 0 and a
given selection; FiberPO's gate regimes; IGPO's hint masks with entropies, token/sequence ratio and the k3 term;
CAPO's curvature filter from a softmax-linear head, both denominators, the Hessian rules, Adam or SGD; INPO's η, τ,
missing reference and pair normaliser), in float64/float32/bfloat16, with NaN/±inf/1e30 garbage at masked positions,
an empty row and an all-false mask, the fused path returns the autograd formulation's loss and ∂loss/∂logp (and the
reference's, in float64), zero at masked positions; bad input raises RLSpecValueError naming the argument; the two
selections formed before the cores (KL-Cov's top-n by k-th value, INPO's vectorised pairs) equal the reference's
sort and loop on inputs with many ties (hypothesis). The compiled cores are checked in the ``slow`` run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlspec import optimized
from rlspec.optimized import fused
from rlspec.optimized.capo_curvature import capo_curvature_loss_autograd
from rlspec.optimized.fiberpo import fiberpo_loss_autograd
from rlspec.optimized.igpo_inpainting import igpo_inpainting_loss_autograd
from rlspec.optimized.inpo import best_worst_pairs, first_best_worst, inpo_pairwise_loss_autograd
from rlspec.optimized.kl_cov import kl_cov_loss_autograd, top_covariance_mask
from rlspec.reference import capo_curvature as ref_capo
from rlspec.reference import kl_cov as ref_kl_cov
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.inpo import make_pair_inputs
from tests.test_fused import TOL, batch

AUTOGRAD = {"kl_cov": kl_cov_loss_autograd, "fiberpo": fiberpo_loss_autograd,
            "igpo_inpainting_loss": igpo_inpainting_loss_autograd, "capo_curvature": capo_curvature_loss_autograd,
            "inpo_pairwise": inpo_pairwise_loss_autograd}
DTYPES = [torch.float64, torch.float32, torch.bfloat16]
AGG = [dict(agg=m) for m in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
                             "group-token-mean")]
AGG += [dict(agg="seq-mean-token-mean", seq_denominator="all"), dict(normalizer=7.0),
        dict(agg="seq-mean-token-sum-norm", const=3.0), dict(log_ratio_clamp=0.3)]
OPTIONS = {
    "kl_cov": [dict(k=0.3), dict(k=1.0), dict(k=0.3, beta=0.0), dict(k=0.5, beta=2.0, log_ratio_clamp=0.2),
               dict(k=0.4, agg="seq-mean-token-mean")],
    "fiberpo": [dict(c_pos=0.02, c_neg=0.01, eps=0.005), dict(c_pos=0.3, c_neg=0.25, eps=0.1),
                dict(c_pos=5.0, c_neg=5.0, eps=5.0), dict(c_pos=0.3, c_neg=0.25, eps=0.1, log_ratio_clamp=0.4)],
    "igpo_inpainting_loss": [dict(beta=0.05), dict(ratio="sequence"), dict(ratio="sequence", beta=0.1,
                                                                            log_ratio_clamp=0.05),
                             dict(keep_ratio=0.5, agg="seq-mean-token-mean"),
                             dict(keep_ratio=0.0, ratio="sequence", agg="group-token-mean"),
                             dict(keep_ratio=1.0, agg="seq-mean-token-sum-norm", beta=0.2)],
    "capo_curvature": [dict(mask_denominators="original"), dict(dual_clip_c=1.5, agg="token-mean"),
                       dict(hessian_rule="nonnegative", mask_denominators="original", agg="group-token-mean"),
                       dict(hessian_rule="lower", tau_H=1e-4), dict(optimizer="sgd", tau_F=None),
                       dict(tau_F=1e-7, tau_H=None, log_ratio_clamp=0.2)],
}


def configs(name: str) -> list:
    """The default config, every aggregation mode, and the switches of ``name``."""
    spec = registry.get(name)
    return [spec.config()] + [spec.config(**kw) for kw in AGG + OPTIONS[name]]


def further_inputs(name: str, x: dict, seed: int) -> dict:
    """The further keyword inputs of ``name`` (numpy, garbage where they are not read): IGPO's hint mask, entropies
    (NaN off the hints) and reference log-probs; CAPO's head (h, W, actions, Adam moments) from the reference's
    softmax-linear head, with logp consistent with it; none for the others."""
    rng = np.random.default_rng(seed)
    mask = x["mask"]
    if name == "igpo_inpainting_loss":
        hint = rng.random(mask.shape) < 0.5
        return dict(hint_mask=hint, entropy=np.where(mask & hint, rng.gamma(1.0, 1.0, size=mask.shape), np.nan),
                    ref_logp=np.where(mask, x["old_logp"] + rng.normal(scale=0.2, size=mask.shape), np.inf))
    if name == "capo_curvature":
        B, T = mask.shape
        K, d = 5, 3
        W = rng.normal(size=(K, d)) * 2.0 / (300.0 * np.sqrt(d))
        h = rng.normal(scale=300.0, size=(B, T, d))
        pi = ref_capo.softmax_policy(W, h.reshape(-1, d))
        actions = np.array([rng.choice(K, p=p / p.sum()) for p in pi]).reshape(B, T)
        m = rng.normal(scale=1e-3, size=(K, d))
        return dict(h=np.where(mask[:, :, None], h, np.nan), W=W, actions=np.where(mask, actions, -1), adam_m=m,
                    adam_v=m**2 + rng.gamma(1.0, 1e-6, size=(K, d)), adam_step=int(rng.integers(0, 51)))
    return {}


def as_torch(v, dtype):
    """numpy → torch: floating arrays in ``dtype`` (CAPO's head in float64 always), the rest as they are."""
    if isinstance(v, np.ndarray):
        return torch.as_tensor(v, dtype=dtype if v.dtype.kind == "f" else None)
    return v


def loss_and_grad(fn, x: dict, cfg, dtype, kw: dict, scale: float = 1.0) -> tuple[float, np.ndarray]:
    """loss (float64) and ∂loss/∂logp (float64 numpy) of ``fn`` on ``x`` and the keyword inputs ``kw``."""
    logp = torch.as_tensor(x["logp"], dtype=dtype).requires_grad_(True)
    t = {k: as_torch(v, torch.float64 if k in ("h", "W", "adam_m", "adam_v") else dtype) for k, v in kw.items()}
    loss = fn(logp, torch.as_tensor(x["old_logp"], dtype=dtype), torch.as_tensor(x["adv"], dtype=dtype),
              torch.as_tensor(x["mask"]), config=cfg, group=x["group"], **t)
    (loss * scale).backward()
    return float(loss.detach().double()), logp.grad.double().numpy()


def check_equal(name, x, cfg, dtype, kw) -> tuple[float, np.ndarray]:
    """The fused loss and gradient equal the autograd formulation's (tolerances of tests/test_fused.py), finite and
    0 at masked positions; in float64 also the reference's (1e-12 / 1e-10 relative)."""
    loss, g = loss_and_grad(optimized.get(name), x, cfg, dtype, kw)
    want, want_g = loss_and_grad(AUTOGRAD[name], x, cfg, dtype, kw)
    rl, rg = TOL[dtype]
    assert abs(loss - want) <= rl * max(1.0, abs(want)), (cfg, loss, want)
    np.testing.assert_allclose(g, want_g, rtol=rg, atol=rg * max(1e-3, np.abs(want_g).max(initial=0)), err_msg=str(cfg))
    assert np.isfinite(g).all() and (g[~np.asarray(x["mask"])] == 0).all()
    if dtype == torch.float64:
        args = {k: x[k] for k in ("logp", "old_logp", "adv", "mask")}
        ref_loss, ref_g = registry.get(name).fn(**args, config=cfg, group=x["group"], **kw)
        assert abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss)), (cfg, loss, ref_loss)
        np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-12, err_msg=str(cfg))
    return loss, g


@pytest.fixture
def eager():
    """The fused path run op by op (small batches would anyway), restored afterwards."""
    fused.set_mode("eager")
    yield
    fused.set_mode("auto")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["kl_cov", "fiberpo", "igpo_inpainting_loss", "capo_curvature"])
def test_fused_equals_autograd_formulation(name, dtype, eager):
    """Loss and gradient of the fused path equal the autograd formulation's (and the reference's in float64) for
    every config, with and without the further inputs, with garbage padding and an all-false mask."""
    for k, cfg in enumerate(configs(name)):
        for x in (batch(2000 + k), batch(2100 + k, B=9, T=13), batch(2200 + k, empty=True)):
            kw = further_inputs(name, x, k)
            plain = {"ref_logp": kw["ref_logp"]} if getattr(cfg, "beta", 0) > 0 and name != "kl_cov" else {}
            check_equal(name, x, cfg, dtype, plain)  # IGPO without hints (k3 needs ref_logp), CAPO without a head
            if kw:
                check_equal(name, x, cfg, dtype, kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kl_cov_given_selection(dtype, eager):
    """KL-Cov with a precomputed ``selection`` (the reference's argument; garbage True at masked positions is
    dropped): the fused path equals the autograd formulation and the reference."""
    for k, cfg in enumerate(configs("kl_cov")):
        x = batch(2300 + k, B=6, T=9)
        sel = np.random.default_rng(k).random(x["mask"].shape) < 0.3
        check_equal("kl_cov", x, cfg, dtype, dict(selection=sel))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_inpo_pairwise_equals_autograd_formulation(dtype, eager):
    """INPO's fused pairwise loss equals the autograd formulation's (and the reference's in float64): K responses
    per prompt with tied scores, ragged masks with empty rows, garbage padding, with and without ref_logp and group,
    other η/τ and a pair normaliser; a batch without pairs gives loss 0 and gradient 0."""
    spec = registry.get("inpo_pairwise")
    for seed in range(24):
        x = make_pair_inputs(np.random.default_rng(seed))
        kw = {} if seed % 3 == 0 else dict(ref_logp=x["ref_logp"])
        if seed % 5 == 0:
            x = dict(x, group=None)
        for cfg in (spec.config(), spec.config(eta=0.5, tau=0.3), spec.config(pair_normalizer=7.0)):
            check_equal("inpo_pairwise", x, cfg, dtype, kw)
    x = make_pair_inputs(np.random.default_rng(0))
    x = dict(x, adv=np.zeros_like(x["adv"]))  # every score tied: no pair
    loss, g = check_equal("inpo_pairwise", x, spec.config(), dtype, {})
    assert loss == 0.0 and (g == 0).all()


def test_scaled_backward():
    """(3·loss).backward() gives 3× the fused gradient (FiberPO's core and INPO's pass)."""
    x = batch(2400)
    for name in ("fiberpo", "inpo_pairwise"):
        cfg = registry.get(name).config()
        _, g1 = loss_and_grad(optimized.get(name), x, cfg, torch.float64, {})
        _, g3 = loss_and_grad(optimized.get(name), x, cfg, torch.float64, {}, scale=3.0)
        np.testing.assert_allclose(g3, 3 * g1, rtol=1e-14)


@pytest.mark.parametrize("name", ["kl_cov", "fiberpo", "igpo_inpainting_loss", "capo_curvature", "inpo_pairwise"])
@pytest.mark.parametrize("field", ["logp", "old_logp", "adv"])
def test_non_finite_valid_input_raises_naming_it(name, field):
    """A NaN at a valid position raises RLSpecValueError naming the input, with the further inputs given too."""
    x = batch(2500)
    kw = further_inputs(name, x, 1)
    t = {k: torch.as_tensor(x[k]).clone() for k in ("logp", "old_logp", "adv")}
    t[field][1, 0] = np.nan
    with pytest.raises(RLSpecValueError, match=field):
        optimized.get(name)(t["logp"].requires_grad_(True), t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                            group=x["group"], **{k: as_torch(v, torch.float64) for k, v in kw.items()})


def _bad_cases():
    x = batch(2600)
    mask, n = x["mask"], x["mask"].shape
    hint = np.ones(n, dtype=bool)
    ent = np.abs(x["logp"])
    kw = further_inputs("capo_curvature", x, 2)
    h_nan = kw["h"].copy()
    h_nan[1, 0, 0] = np.nan
    return [
        ("kl_cov", {}, dict(selection=np.ones((2, 2), dtype=bool)), "selection"),
        ("kl_cov", {}, dict(selection=np.full(n, 0.5)), "selection"),
        ("igpo_inpainting_loss", {}, dict(hint_mask=hint), "entropy"),
        ("igpo_inpainting_loss", {}, dict(hint_mask=hint, entropy=np.where(mask, -ent, 0.0)), "entropy"),
        ("igpo_inpainting_loss", {}, dict(hint_mask=np.ones((2, 2), dtype=bool), entropy=ent), "hint_mask"),
        ("igpo_inpainting_loss", dict(beta=0.1), {}, "ref_logp"),
        ("capo_curvature", {}, dict(kw, h=h_nan), "h"),
        ("capo_curvature", {}, dict(h=kw["h"], W=kw["W"]), "actions"),
        ("capo_curvature", {}, dict(kw, actions=np.where(mask, 99, 0)), "actions"),
        ("inpo_pairwise", {}, dict(group=np.array(["a"] * n[0])), "group"),
        ("inpo_pairwise", {}, dict(ref_logp=np.where(mask, np.nan, 0.0)), "ref_logp"),
        ("fiberpo", {}, dict(group=np.arange(n[0] + 1)), "group"),
    ]


@pytest.mark.parametrize("name,cfg,kw,field", _bad_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_further_input_raises_naming_it(name, cfg, kw, field):
    """A bad further input (selection, hint mask, entropies, head, group, ref_logp) raises RLSpecValueError naming
    it, as the autograd formulation (and the reference) does; RLSPEC_FUSED=off raises the same."""
    x = batch(2600)
    c = registry.get(name).config(**cfg)
    if name == "fiberpo":
        c = dataclasses.replace(c, agg="group-token-mean")
    group = kw.pop("group", x["group"])
    for m in ("auto", "off"):
        fused.set_mode(m)
        try:
            with pytest.raises(RLSpecValueError, match=field):
                optimized.get(name)(torch.as_tensor(x["logp"]).requires_grad_(True), torch.as_tensor(x["old_logp"]),
                                    torch.as_tensor(x["adv"]), torch.as_tensor(x["mask"]), config=c, group=group,
                                    **{k: as_torch(v, torch.float64) for k, v in kw.items()})
        finally:
            fused.set_mode("auto")


@pytest.mark.parametrize("name", ["kl_cov", "fiberpo", "igpo_inpainting_loss", "capo_curvature", "inpo_pairwise"])
def test_empty_batches(name):
    """B = 0 and T = 0 batches give loss 0 (the reference's) and an empty gradient."""
    for shape in ((0, 4), (3, 0)):
        logp = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        z = torch.zeros(shape, dtype=torch.float64)
        loss = optimized.get(name)(logp, z, z, torch.zeros(shape, dtype=torch.bool), group=np.zeros(shape[0]))
        loss.backward()
        assert float(loss.detach()) == 0.0 and logp.grad.shape == shape


ties = st.integers(-2, 2).map(float)


@given(st.integers(1, 6), st.integers(1, 8), st.floats(0.01, 1.0), st.data())
def test_kl_cov_selection_equals_the_reference_sort(B, T, k, data):
    """The top-n by k-th value (ties → lower row-major index) is the reference's stable argsort selection, on
    integer inputs full of exact ties, with garbage at masked positions."""
    adv = np.array(data.draw(st.lists(ties, min_size=B * T, max_size=B * T))).reshape(B, T)
    logp = np.array(data.draw(st.lists(ties, min_size=B * T, max_size=B * T))).reshape(B, T)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=B * T, max_size=B * T))).reshape(B, T)
    want = ref_kl_cov.top_covariance_mask(adv, logp, mask, k)
    got = top_covariance_mask(torch.as_tensor(np.where(mask, adv, np.nan)), torch.as_tensor(np.where(mask, logp, 1e30)),
                              torch.as_tensor(mask), k)
    np.testing.assert_array_equal(got.numpy(), want)


@given(st.integers(0, 12), st.data())
def test_inpo_vectorised_pairs_equal_the_loop(B, data):
    """The vectorised pairs (first best / first worst non-empty row per prompt, prompts in id order) are the loop's,
    with tied scores, empty rows and sparse negative prompt ids."""
    scores = torch.tensor(data.draw(st.lists(ties, min_size=B, max_size=B)), dtype=torch.float64)
    nonempty = torch.tensor(data.draw(st.lists(st.booleans(), min_size=B, max_size=B)), dtype=torch.bool)
    group = torch.tensor(data.draw(st.lists(st.sampled_from([-7, 0, 3, 11]), min_size=B, max_size=B)),
                         dtype=torch.long)
    want = best_worst_pairs(scores, nonempty[:, None].expand(B, 2).contiguous(), group)
    np.testing.assert_array_equal(first_best_worst(scores, nonempty, group).numpy(), want.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kl_cov", "fiberpo", "igpo_inpainting_loss", "capo_curvature", "inpo_pairwise"])
def test_compiled_equals_eager(name):
    """torch.compile(dynamic=True) of each new core (and INPO's row-sum pass) gives the eager loss and gradient
    (float32, float64), with the further inputs."""
    if not hasattr(torch, "compile"):
        pytest.skip("no torch.compile")
    cfgs = [registry.get(name).config()] if name == "inpo_pairwise" else configs(name)[:1] + OPTIONS[name][:3]
    cfgs = [c if not isinstance(c, dict) else registry.get(name).config(**c) for c in cfgs]
    for dtype in (torch.float32, torch.float64):
        for k, cfg in enumerate(cfgs):
            x = batch(2700 + k, B=6, T=33)
            kw = further_inputs(name, x, k)
            fused.set_mode("eager")
            want = loss_and_grad(optimized.get(name), x, cfg, dtype, kw)
            fused.set_mode("compile")
            try:
                got = loss_and_grad(optimized.get(name), x, cfg, dtype, kw)
            finally:
                fused.set_mode("auto")
            assert not fused._COMPILE_BROKEN, fused._COMPILE_BROKEN
            assert abs(got[0] - want[0]) <= 1e-5 * max(1.0, abs(want[0]))
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)

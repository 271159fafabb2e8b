"""The fused policy losses (rlspec.optimized.fused) against the autograd formulation and the reference.

Claims checked: for every fused loss, every aggregation mode and the config switches that change the core's branches
(log-ratio clamp, dual clip, TIS modes, CISPO's lower bound, RiskPO's token/sequence ratio, decoupled PPO's behaviour
weight and cap; the further inputs of BPO/GBPO, TAPO, GRPO-Guard, HAPO, COPO and A²TGPO with and without them), in
float64/float32/bfloat16, with NaN/±inf garbage at masked positions, an empty row and an all-false
mask, the fused path returns the autograd formulation's loss and ∂loss/∂logp (and the reference's, in float64); it
keeps the input contract (RLSpecValueError naming the argument); a scaled or repeated backward is right. The compiled
variant is checked in the ``slow`` run.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from rlspec import optimized
from rlspec.optimized import fused
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError

NAMES = sorted(fused.CORES)
EXTRA = {"tis": "rollout_logp", "decoupled_ppo": "prox_logp"}  # the third log-prob input, where a loss takes one
# further inputs of a loss (batch() draws them): per token, per row (blend_weight) or per turn (ig_hat)
STEP_INPUTS = {"grpo_guard": ("mu_diff_sq", "sigma", "dt"), "hapo": ("entropy",),
               "copo_loss": ("adv_global", "blend_weight"), "a2tgpo": ("turn", "ig_hat")}
AUTOGRAD = {n: getattr(__import__(optimized.get(n).__module__, fromlist=["x"]), optimized.get(n).__name__ + "_autograd")
            for n in NAMES}


def configs(name: str) -> list:
    """The default config, each aggregation mode, and the switches of ``name``'s core."""
    base = registry.get(name).config()
    out = [base, dataclasses.replace(base, log_ratio_clamp=0.3)]
    out += [dataclasses.replace(base, agg=m) for m in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                                                       "seq-mean-token-sum-norm", "group-token-mean")]
    out += [dataclasses.replace(base, agg="seq-mean-token-mean", seq_denominator="all"),
            dataclasses.replace(base, normalizer=7.0), dataclasses.replace(base, agg="seq-mean-token-sum-norm", const=3.0)]
    if hasattr(base, "dual_clip_c"):
        out.append(dataclasses.replace(base, dual_clip_c=1.5))
    if name == "tis":
        out += [dataclasses.replace(base, mode="mask", C_min=0.5), dataclasses.replace(base, C_min=0.9, C=1.1)]
    if name == "cispo":
        out += [dataclasses.replace(base, eps_low=0.1, eps_high=0.1)]
    if name == "riskpo":  # the token-ratio variant runs the PPO core, the sequence one (default) the GSPO core
        out += [dataclasses.replace(base, ratio="token"), dataclasses.replace(base, ratio="token", log_ratio_clamp=0.3,
                                                                              agg="token-mean")]
    if name == "decoupled_ppo":
        out += [dataclasses.replace(base, behave_weight=False), dataclasses.replace(base, behave_cap=1.2),
                dataclasses.replace(base, behave_cap=1.1, behave_cap_mode="clamp", dual_clip_c=2.0)]
    if name == "dppo":
        out += [dataclasses.replace(base, trust_region="kl", kl_eps=1e-8), dataclasses.replace(base, surrogate="tis"),
                dataclasses.replace(base, surrogate="tis", is_cap=1.1, trust_region="kl"),
                dataclasses.replace(base, delta_low=0.05, delta_high=0.01)]
    if name == "vespo":
        out += [dataclasses.replace(base, log_ratio_clamp=None, log_w_min=None),
                dataclasses.replace(base, log_w_max=None, agg="seq-mean-token-mean"),
                dataclasses.replace(base, log_w_min=-0.5, log_w_max=0.5)]
    if name == "r2vpo":
        out += [dataclasses.replace(base, lam_init=0.0), dataclasses.replace(base, lam_init=5.0, log_ratio_clamp=None)]
    if name == "dro":
        out += [dataclasses.replace(base, beta=2.0, log_ratio_clamp=0.2)]
    if name == "brrl":  # λ = 1: the target ratio inside (1 − ε_low, 1 + ε_high), not saturated; rsl_rl's TV term
        out += [dataclasses.replace(base, lam=1.0), dataclasses.replace(base, lam=0.5, tv_coef=0.5, eps_low=0.1),
                dataclasses.replace(base, lam=1.0, tv_coef=0.2, log_ratio_clamp=0.2, agg="seq-mean-token-mean")]
    if name == "grpo_guard":  # a clip range wide enough that both branches occur
        out += [dataclasses.replace(base, eps_low=0.2, eps_high=0.3),
                dataclasses.replace(base, eps_low=0.2, eps_high=0.3, ratio_norm=False, step_weight="none"),
                dataclasses.replace(base, eps_low=0.1, eps_high=0.1, adv_clip=0.5, log_ratio_clamp=0.1),
                dataclasses.replace(base, eps_low=0.2, eps_high=0.2, agg="token-mean", adv_clip=1.0, ratio_norm=False)]
    if name == "gbpo":  # T = 1: targets inside the clip range; verl's singleton rule; the clamp
        out += [dataclasses.replace(base, temperature=1.0), dataclasses.replace(base, temperature=0.5,
                                                                                 singleton="median-zero"),
                dataclasses.replace(base, temperature=1.0, eps_low=0.1, log_ratio_clamp=0.2, agg="seq-mean-token-sum")]
    if name == "hapo":  # each component off in turn, the code's sign convention, other α/β
        out += [dataclasses.replace(base, adaptive_clip=False), dataclasses.replace(base, adaptive_advantage=False),
                dataclasses.replace(base, zone_uses_adaptive_clip=False, dual_clip_c=None),
                dataclasses.replace(base, low_entropy_sign="code", clip_alpha=2.0, adv_beta=0.5, pivot=0.5),
                dataclasses.replace(base, adaptive_clip=False, adaptive_advantage=False, agg="seq-mean-token-mean")]
    if name == "a2tgpo":
        out += [dataclasses.replace(base, beta=0.0), dataclasses.replace(base, beta=0.9, eps_high=0.3, dual_clip_c=2.0)]
    if name == "tapo":
        out += [dataclasses.replace(base, dual_clip_c=None), dataclasses.replace(base, tool_in_denominator=True),
                dataclasses.replace(base, tool_in_denominator=True, agg="seq-mean-token-mean", dual_clip_c=None),
                dataclasses.replace(base, tool_in_denominator=True, agg="group-token-mean", log_ratio_clamp=0.3)]
    return out


def batch(seed: int, B: int = 5, T: int = 7, empty: bool = False) -> dict:
    """Log-ratios up to ±1 (both sides of every clip), one advantage per row with both signs, a ragged mask with
    an empty row, NaN/±inf/1e30 garbage at masked positions."""
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    mask[0] = False
    mask[1, :3] = True
    if empty:
        mask[:] = False
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old = logp + rng.normal(scale=0.5, size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1) + rng.normal(scale=0.1, size=(B, T))
    roll = old + rng.normal(scale=0.3, size=(B, T))
    pad = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30]), size=(B, T))
    step = np.random.default_rng(seed + 10_000)  # GRPO-Guard's step inputs: q ≥ 0 (some 0), σ > 0, dt > 0
    q = np.where(step.random((B, T)) < 0.2, 0.0, step.gamma(1.0, 0.05, size=(B, T)))
    sigma, dt = step.uniform(0.3, 1.5, size=(B, T)), step.uniform(0.02, 0.3, size=(B, T))
    entropy = step.gamma(1.0, 1.0, size=(B, T))  # HAPO's token entropies ≥ 0
    adv_global = np.repeat(step.normal(size=(B, 1)), T, axis=1)  # COPO's global advantage, blend weight in [0, 1]
    blend = np.clip(step.uniform(-0.2, 1.2, size=B), 0.0, 1.0)
    x = {k: np.where(mask, v, pad) for k, v in dict(logp=logp, old_logp=old, adv=adv, rollout_logp=roll,
                                                     mu_diff_sq=q, sigma=sigma, dt=dt, entropy=entropy,
                                                     adv_global=adv_global).items()}
    # A²TGPO: turn indices rising along T (−1: a token outside the trainable turns; garbage ints at padding), ÎG
    # per (row, turn), NaN in the turn columns a row does not reach (never read)
    turn = np.where(step.random((B, T)) < 0.2, -1, (np.arange(T)[None, :] * 3) // max(T, 1))
    turn = np.where(mask, turn, -7)
    n = np.where(mask & (turn >= 0), turn, -1).max(axis=1, initial=-1) + 1
    ig_hat = np.where(np.arange(3)[None, :] < n[:, None], step.normal(scale=1.5, size=(B, 3)), np.nan)
    return dict(x, mask=mask, group=np.arange(B) // 2, blend_weight=blend, turn=turn, ig_hat=ig_hat)


def extra_inputs(name: str, x: dict) -> dict:
    """The further keyword inputs of ``name`` (numpy), from the batch ``x``."""
    kw = {EXTRA[name]: x["rollout_logp"]} if name in EXTRA else {}
    return dict(kw, **{k: x[k] for k in STEP_INPUTS.get(name, ())})


def run(fn, x: dict, cfg, dtype: torch.dtype, name: str, scale: float = 1.0):
    """loss (float64) and ∂loss/∂logp (float64 numpy) of ``fn`` on ``x`` cast to ``dtype``."""
    x = kl_ready(x, cfg)
    t = {k: torch.as_tensor(x[k], dtype=dtype) for k in ("logp", "old_logp", "adv")}
    logp = t.pop("logp").requires_grad_(True)
    kw = {k: torch.as_tensor(v, dtype=dtype if v.dtype.kind == "f" else None) for k, v in extra_inputs(name, x).items()}
    loss = fn(logp, t["old_logp"], t["adv"], torch.as_tensor(x["mask"]), config=cfg, group=x["group"], **kw)
    (loss * scale).backward()
    return float(loss.detach().double()), logp.grad.double().numpy()


def kl_ready(x: dict, cfg) -> dict:
    """DPPO's binary-KL trust region takes log-probs ≤ 0 only: old_logp pushed below 0 at valid positions."""
    if getattr(cfg, "trust_region", None) != "kl":
        return x
    return dict(x, old_logp=np.where(x["mask"], np.minimum(x["old_logp"], -1e-3), x["old_logp"]))


TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (2e-6, 2e-6), torch.bfloat16: (2e-6, 1e-2)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_fused_equals_autograd_formulation(name, dtype):
    """Loss and gradient of the fused (eager) path equal the autograd formulation's for every config switch,
    including zeros at masked positions with garbage there and an all-false mask (loss 0, gradient 0)."""
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs(name)):
            for x in (batch(k), batch(100 + k, empty=True)):
                loss, g = run(optimized.get(name), x, cfg, dtype, name)
                ref_loss, ref_g = run(AUTOGRAD[name], x, cfg, dtype, name)
                rl, rg = TOL[dtype]
                assert abs(loss - ref_loss) <= rl * max(1.0, abs(ref_loss)), (cfg, loss, ref_loss)
                np.testing.assert_allclose(g, ref_g, rtol=rg, atol=rg * max(1e-3, np.abs(ref_g).max(initial=0)),
                                           err_msg=str(cfg))
                assert np.isfinite(g).all() and (g[~x["mask"]] == 0).all()
    finally:
        fused.set_mode("auto")


@pytest.mark.parametrize("name", NAMES)
def test_fused_equals_reference_float64(name):
    """In float64 the fused loss and gradient equal the NumPy reference's hand gradient (1e-12 relative)."""
    spec = registry.get(name)
    for k, cfg in enumerate(configs(name)):
        x = kl_ready(batch(200 + k), cfg)
        loss, g = run(optimized.get(name), x, cfg, torch.float64, name)
        kw = extra_inputs(name, x)
        ref_loss, ref_g = spec.fn(x["logp"], x["old_logp"], x["adv"], x["mask"], config=cfg, group=x["group"], **kw)
        assert abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
        np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-12)


def test_scaled_and_repeated_backward():
    """(3·loss).backward() gives 3× the gradient; a second backward through a retained graph gives it again."""
    x, cfg = batch(5), registry.get("ppo").config()
    _, g1 = run(optimized.get("ppo"), x, cfg, torch.float64, "ppo")
    _, g3 = run(optimized.get("ppo"), x, cfg, torch.float64, "ppo", scale=3.0)
    np.testing.assert_allclose(g3, 3 * g1, rtol=1e-14)
    t = {k: torch.as_tensor(v) for k, v in x.items() if k in ("old_logp", "adv", "mask")}
    logp = torch.as_tensor(x["logp"]).requires_grad_(True)
    loss = optimized.get("ppo")(logp, **t)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(logp.grad.numpy(), 2 * g1, rtol=1e-14)


@pytest.mark.parametrize("field", ["logp", "old_logp", "adv", "ref_logp"])
def test_non_finite_valid_input_raises_naming_it(field):
    """A NaN/inf at a valid position raises RLSpecValueError naming the input, also where the clip would hide it
    (logp = +inf with Â > 0: the clipped loss is finite, the reference still refuses)."""
    x = batch(7)
    t = {k: torch.as_tensor(x[k]) for k in ("logp", "old_logp", "adv")}
    t["ref_logp"] = t["old_logp"].clone()
    b, s = 1, 0
    t["adv"][b, s] = abs(float(t["adv"][b, s])) + 0.5
    t[field][b, s] = np.inf
    with pytest.raises(RLSpecValueError, match=field):
        optimized.get("ppo")(t["logp"].requires_grad_(True), t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                             ref_logp=t["ref_logp"])


def test_float32_overflow_raises_and_mixed_dtypes_fall_back():
    """A float32 log-ratio of 100 with Â < 0 overflows: RLSpecValueError naming logp (one sync finds it). Inputs of
    mixed dtypes take the autograd formulation and give its value."""
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    old, adv, mask = torch.tensor([[-101.0, -2.1]]), torch.full((1, 2), -1.5), torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(RLSpecValueError, match="logp"):
        optimized.get("ppo")(logp, old, adv, mask)
    got = optimized.get("ppo")(logp.double(), old.double(), adv.float(), mask)
    want = registry.get("ppo").fn(logp.detach().double().numpy(), old.double().numpy(), adv.double().numpy(),
                                  mask.numpy())[0]
    assert abs(float(got.detach()) - want) < 1e-6 * abs(want)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_compiled_equals_eager(name):
    """torch.compile(dynamic=True) of each core gives the eager core's loss and gradient (float32, float64)."""
    if not hasattr(torch, "compile"):
        pytest.skip("no torch.compile")
    for dtype in (torch.float32, torch.float64):
        for k, cfg in enumerate(configs(name)[:4]):
            x = batch(300 + k, B=6, T=33)
            fused.set_mode("eager")
            want = run(optimized.get(name), x, cfg, dtype, name)
            fused.set_mode("compile")
            try:
                got = run(optimized.get(name), x, cfg, dtype, name)
            finally:
                fused.set_mode("auto")
            assert not fused._COMPILE_BROKEN, fused._COMPILE_BROKEN
            assert abs(got[0] - want[0]) <= 1e-5 * max(1.0, abs(want[0]))
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)


def test_decoupled_ppo_non_finite_prox_raises_naming_it():
    """A NaN in prox_logp at a valid position (an input only the fused weight and ratio read) raises
    RLSpecValueError naming prox_logp, as the reference does."""
    x = batch(8)
    t = {k: torch.as_tensor(x[k]) for k in ("logp", "old_logp", "adv")}
    prox = torch.as_tensor(x["rollout_logp"]).clone()
    prox[1, 0] = np.nan
    with pytest.raises(RLSpecValueError, match="prox_logp"):
        optimized.get("decoupled_ppo")(t["logp"].requires_grad_(True), t["old_logp"], t["adv"],
                                       torch.as_tensor(x["mask"]), prox_logp=prox)


def test_dppo_binary_kl_positive_logp_raises_naming_it():
    """Binary-KL DPPO refuses a positive log-prob at a valid position (RLSpecValueError naming logp), as the reference
    does, although the fused loss itself would be finite there."""
    x = kl_ready(batch(9), registry.get("dppo").config(trust_region="kl"))
    t = {k: torch.as_tensor(x[k]) for k in ("logp", "old_logp", "adv")}
    t["logp"][1, 0] = 0.25
    with pytest.raises(RLSpecValueError, match="logp"):
        optimized.get("dppo")(t["logp"].requires_grad_(True), t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                              config=registry.get("dppo").config(trust_region="kl"))


def test_r2vpo_step_multiplier():
    """R²VPO's per-call multiplier ``lam`` (the dual variable of this step) reaches the fused core: loss and gradient
    equal the reference's at λ = 2.5 (float64), and a negative λ raises naming lam."""
    x = batch(10)
    t = {k: torch.as_tensor(x[k]) for k in ("old_logp", "adv", "mask")}
    logp = torch.as_tensor(x["logp"]).requires_grad_(True)
    loss = optimized.get("r2vpo")(logp, t["old_logp"], t["adv"], t["mask"], lam=2.5)
    loss.backward()
    ref_loss, ref_g = registry.get("r2vpo").fn(x["logp"], x["old_logp"], x["adv"], x["mask"], lam=2.5)
    assert abs(float(loss.detach()) - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
    np.testing.assert_allclose(logp.grad.numpy(), ref_g, rtol=1e-10, atol=1e-12)
    with pytest.raises(RLSpecValueError, match="lam"):
        optimized.get("r2vpo")(logp, t["old_logp"], t["adv"], t["mask"], lam=-1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_brrl_target_adv(dtype):
    """BPO with an explicit ``target_adv`` (z of the target ratio, NaN/inf garbage at masked positions): the fused
    loss and gradient equal the autograd formulation's in every config and dtype, and the reference's in float64;
    a non-finite target at a valid position raises RLSpecValueError naming target_adv."""
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs("brrl")):
            for x in (batch(400 + k), batch(500 + k, empty=True)):
                with np.errstate(invalid="ignore"):
                    z = np.where(x["mask"], 2.0 * (x["rollout_logp"] - x["old_logp"]), x["rollout_logp"])
                t = {key: torch.as_tensor(x[key], dtype=dtype) for key in ("old_logp", "adv")}
                out = []
                for fn in (optimized.get("brrl"), AUTOGRAD["brrl"]):
                    logp = torch.as_tensor(x["logp"], dtype=dtype).requires_grad_(True)
                    loss = fn(logp, t["old_logp"], t["adv"], torch.as_tensor(x["mask"]), config=cfg,
                              group=x["group"], target_adv=torch.as_tensor(z, dtype=dtype))
                    loss.backward()
                    out.append((float(loss.detach().double()), logp.grad.double().numpy()))
                (loss, g), (ref_loss, ref_g) = out
                rl, rg = TOL[dtype]
                assert abs(loss - ref_loss) <= rl * max(1.0, abs(ref_loss)), (cfg, loss, ref_loss)
                np.testing.assert_allclose(g, ref_g, rtol=rg, atol=rg * max(1e-3, np.abs(ref_g).max(initial=0)),
                                           err_msg=str(cfg))
                assert np.isfinite(g).all() and (g[~x["mask"]] == 0).all()
                if dtype == torch.float64:
                    want = registry.get("brrl").fn(x["logp"], x["old_logp"], x["adv"], x["mask"], config=cfg,
                                                   group=x["group"], target_adv=z)
                    assert abs(loss - want[0]) <= 1e-12 * max(1.0, abs(want[0]))
                    np.testing.assert_allclose(g, want[1], rtol=1e-10, atol=1e-12)
        x = batch(9)
        z = torch.as_tensor(x["adv"], dtype=dtype).clone()
        z[1, 0] = np.nan
        with pytest.raises(RLSpecValueError, match="target_adv"):
            optimized.get("brrl")(torch.as_tensor(x["logp"], dtype=dtype).requires_grad_(True),
                                  torch.as_tensor(x["old_logp"], dtype=dtype), torch.as_tensor(x["adv"], dtype=dtype),
                                  torch.as_tensor(x["mask"]), target_adv=z)
    finally:
        fused.set_mode("auto")


def fused_vs_autograd(name: str, x: dict, cfg, dtype: torch.dtype, **extra) -> tuple[float, np.ndarray]:
    """Fused loss and gradient of ``name`` on ``x`` (with the extra keyword inputs, cast to ``dtype`` where
    floating), asserted equal to the autograd formulation's (tolerances of TOL), zero at masked positions."""
    t = {key: torch.as_tensor(x[key], dtype=dtype) for key in ("old_logp", "adv")}
    kw = {k: None if v is None else torch.as_tensor(v, dtype=dtype if v.dtype.kind == "f" else None)
          for k, v in extra.items()}
    out = []
    for fn in (optimized.get(name), AUTOGRAD[name]):
        logp = torch.as_tensor(x["logp"], dtype=dtype).requires_grad_(True)
        loss = fn(logp, t["old_logp"], t["adv"], torch.as_tensor(x["mask"]), config=cfg, group=x["group"], **kw)
        loss.backward()
        out.append((float(loss.detach().double()), logp.grad.double().numpy()))
    (loss, g), (ref_loss, ref_g) = out
    rl, rg = TOL[dtype]
    assert abs(loss - ref_loss) <= rl * max(1.0, abs(ref_loss)), (cfg, loss, ref_loss)
    np.testing.assert_allclose(g, ref_g, rtol=rg, atol=rg * max(1e-3, np.abs(ref_g).max(initial=0)), err_msg=str(cfg))
    assert np.isfinite(g).all() and (g[~x["mask"]] == 0).all()
    return loss, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_tapo_tool_mask(dtype):
    """TAPO with tool tokens (NaN/inf garbage in logp, old_logp and adv there, as at padding): the fused loss and
    gradient equal the autograd formulation's for every config (tool tokens in or out of the denominator, every
    aggregation), and the reference's in float64; the gradient is 0 on tool tokens."""
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs("tapo")):
            for x in (batch(600 + k), batch(700 + k, empty=True)):
                rng = np.random.default_rng(800 + k)
                tool = x["mask"] & (rng.random(x["mask"].shape) < 0.3)
                pad = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30]), size=tool.shape)
                y = dict(x, **{key: np.where(tool, pad, x[key]) for key in ("logp", "old_logp", "adv")})
                loss, g = fused_vs_autograd("tapo", y, cfg, dtype, tool_mask=tool)
                assert (g[tool] == 0).all()
                if dtype == torch.float64:
                    want = registry.get("tapo").fn(y["logp"], y["old_logp"], y["adv"], y["mask"], config=cfg,
                                                   group=y["group"], tool_mask=tool)
                    assert abs(loss - want[0]) <= 1e-12 * max(1.0, abs(want[0]))
                    np.testing.assert_allclose(g, want[1], rtol=1e-10, atol=1e-12)
    finally:
        fused.set_mode("auto")


@pytest.mark.parametrize("field", ["mu_diff_sq", "sigma", "dt"])
def test_grpo_guard_invalid_step_input_raises_naming_it(field):
    """GRPO-Guard refuses q < 0, σ ≤ 0, dt ≤ 0 or a NaN at a valid step (RLSpecValueError naming the input), as
    the reference does, although the fused loss could be finite there."""
    x = batch(11)
    t = {k: torch.as_tensor(x[k]).clone() for k in ("logp", "old_logp", "adv", "mu_diff_sq", "sigma", "dt")}
    for bad in (-0.5 if field == "mu_diff_sq" else 0.0, np.nan):
        y = dict(t, **{field: t[field].clone()})
        y[field][1, 0] = bad
        with pytest.raises(RLSpecValueError, match=field):
            optimized.get("grpo_guard")(y["logp"].requires_grad_(True), y["old_logp"], y["adv"],
                                        torch.as_tensor(x["mask"]), y["mu_diff_sq"], y["sigma"], y["dt"])


def test_grpo_guard_drift_gradient_takes_autograd():
    """With ``mu_diff_sq`` requiring a gradient, GRPO-Guard gives ∂loss/∂q (the reference's, float64) as well as
    ∂loss/∂logp (the autograd formulation: the fused core has no q gradient)."""
    x, cfg = batch(12), registry.get("grpo_guard").config(eps_low=0.2, eps_high=0.3)
    t = {k: torch.as_tensor(x[k]) for k in ("old_logp", "adv", "sigma", "dt")}
    logp = torch.as_tensor(x["logp"]).requires_grad_(True)
    q = torch.as_tensor(x["mu_diff_sq"]).clone().requires_grad_(True)
    loss = optimized.get("grpo_guard")(logp, t["old_logp"], t["adv"], torch.as_tensor(x["mask"]), q, t["sigma"],
                                       t["dt"], config=cfg)
    loss.backward()
    from rlspec.reference.grpo_guard import grpo_guard_loss_and_grads
    want = grpo_guard_loss_and_grads(x["logp"], x["old_logp"], x["adv"], x["mask"], x["mu_diff_sq"], x["sigma"],
                                     x["dt"], config=cfg)
    assert abs(float(loss.detach()) - want[0]) <= 1e-12 * max(1.0, abs(want[0]))
    np.testing.assert_allclose(logp.grad.numpy(), want[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(q.grad.numpy(), want[2], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_hapo_without_entropy(dtype):
    """HAPO without token entropies (h̃ = 0: PPO with the base ranges and dual clip): the fused loss and gradient
    equal the autograd formulation's for every config, and the reference's in float64."""
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs("hapo")):
            for x in (batch(900 + k), batch(950 + k, empty=True)):
                loss, g = fused_vs_autograd("hapo", x, cfg, dtype)
                if dtype == torch.float64:
                    want = registry.get("hapo").fn(x["logp"], x["old_logp"], x["adv"], x["mask"], config=cfg,
                                                   group=x["group"])
                    assert abs(loss - want[0]) <= 1e-12 * max(1.0, abs(want[0]))
                    np.testing.assert_allclose(g, want[1], rtol=1e-10, atol=1e-12)
    finally:
        fused.set_mode("auto")


def test_hapo_negative_entropy_raises_naming_it():
    """A negative entropy at a valid position raises RLSpecValueError naming entropy (the signal's prepass)."""
    x = batch(13)
    t = {k: torch.as_tensor(x[k]).clone() for k in ("logp", "old_logp", "adv", "entropy")}
    t["entropy"][1, 0] = -0.5
    with pytest.raises(RLSpecValueError, match="entropy"):
        optimized.get("hapo")(t["logp"].requires_grad_(True), t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                              entropy=t["entropy"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_copo_local_loss_alone(dtype):
    """COPO without adv_global and blend_weight (the local clipped loss alone): the fused loss and gradient equal
    the autograd formulation's for every config, and the reference's in float64."""
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs("copo_loss")):
            for x in (batch(1000 + k), batch(1050 + k, empty=True)):
                loss, g = fused_vs_autograd("copo_loss", x, cfg, dtype)
                if dtype == torch.float64:
                    want = registry.get("copo_loss").fn(x["logp"], x["old_logp"], x["adv"], x["mask"], config=cfg,
                                                        group=x["group"])
                    assert abs(loss - want[0]) <= 1e-12 * max(1.0, abs(want[0]))
                    np.testing.assert_allclose(g, want[1], rtol=1e-10, atol=1e-12)
    finally:
        fused.set_mode("auto")


@pytest.mark.parametrize("bad", ["outside", "nan", "alone", "global_nan"])
def test_copo_invalid_blend_inputs_raise_naming_them(bad):
    """A blend weight outside [0, 1] or NaN, one of adv_global/blend_weight without the other, or a NaN in adv_global
    at a valid position raises RLSpecValueError naming the argument, as the reference does."""
    x = batch(14)
    t = {k: torch.as_tensor(x[k]).clone() for k in ("logp", "old_logp", "adv", "adv_global", "blend_weight")}
    kw = dict(adv_global=t["adv_global"], blend_weight=t["blend_weight"])
    name = "adv_global" if bad == "global_nan" else "blend_weight"
    if bad == "outside":
        kw["blend_weight"][2] = 1.5
    elif bad == "nan":
        kw["blend_weight"][2] = np.nan
    elif bad == "alone":
        kw.pop("blend_weight")
    else:
        kw["adv_global"][1, 0] = np.nan
    with pytest.raises(RLSpecValueError, match=name):
        optimized.get("copo_loss")(t["logp"].requires_grad_(True), t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                                   **kw)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("inputs", ["no_turns", "turns_only"])
def test_a2tgpo_without_turn_scale(dtype, inputs):
    """A²TGPO without ig_hat (c = 1), with or without turn indices (the turn's −1 tokens leave the loss): the fused
    loss and gradient equal the autograd formulation's for every config, and the reference's in float64."""
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs("a2tgpo")):
            for x in (batch(1100 + k), batch(1150 + k, empty=True)):
                kw = dict(turn=x["turn"] if inputs == "turns_only" else None, ig_hat=None)
                loss, g = fused_vs_autograd("a2tgpo", x, cfg, dtype, **kw)
                if dtype == torch.float64:
                    want = registry.get("a2tgpo").fn(x["logp"], x["old_logp"], x["adv"], x["mask"], config=cfg,
                                                     group=x["group"], **kw)
                    assert abs(loss - want[0]) <= 1e-12 * max(1.0, abs(want[0]))
                    np.testing.assert_allclose(g, want[1], rtol=1e-10, atol=1e-12)
    finally:
        fused.set_mode("auto")


@pytest.mark.parametrize("field", ["ig_hat", "turn"])
def test_a2tgpo_invalid_turn_inputs_raise_naming_them(field):
    """A NaN in ig_hat at a turn a row reaches, or a turn index below −1 at a valid token, raises RLSpecValueError
    naming the input, as the reference does."""
    x = batch(15)
    t = {k: torch.as_tensor(x[k]).clone() for k in ("logp", "old_logp", "adv", "turn", "ig_hat")}
    if field == "ig_hat":
        t["ig_hat"][1, 0] = np.nan
    else:
        t["turn"][1, 0] = -3
    with pytest.raises(RLSpecValueError, match=field):
        optimized.get("a2tgpo")(t["logp"].requires_grad_(True), t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                                turn=t["turn"], ig_hat=t["ig_hat"])


def _lean_names() -> list[str]:
    """The losses whose default config runs a core with a lean eager form (small batches take it)."""
    out = []
    for name in NAMES:
        cfg = registry.get(name).config()
        if fused._setup(name, cfg, (5, 7), torch.float64, torch.device("cpu"))[2] is not None:
            out.append(name)
    return out


LEAN_NAMES = _lean_names()


def test_the_hot_losses_have_a_lean_form():
    """The losses the small-batch benchmark times (and the ones that share their cores) run a lean eager form."""
    assert {"ppo", "dapo", "sapo", "gspo", "cispo", "gmpo", "dro", "gpg_loss", "riskpo", "tapo"} <= set(LEAN_NAMES)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", LEAN_NAMES)
def test_lean_form_equals_the_core(name, dtype, monkeypatch):
    """For every config switch, with garbage at masked positions, an empty row and an all-false mask, the lean eager
    form (taken by small batches) gives the eager core's loss and gradient, with and without autograd, and is the path
    that ran."""
    calls = []
    for core, lean in list(fused.LEAN.items()):
        def counted(*a, _fn=lean.fn, **kw):
            calls.append(1)
            return _fn(*a, **kw)
        monkeypatch.setitem(fused.LEAN, core, dataclasses.replace(lean, fn=counted))
    fused.set_mode("eager")
    try:
        for k, cfg in enumerate(configs(name)):
            for x in (batch(1200 + k), batch(1300 + k, empty=True)):
                monkeypatch.setattr(fused, "_LEAN_ON", False)
                n0 = len(calls)
                want_loss, want_g = run(optimized.get(name), x, cfg, dtype, name)
                assert len(calls) == n0
                monkeypatch.setattr(fused, "_LEAN_ON", True)
                loss, g = run(optimized.get(name), x, cfg, dtype, name)
                assert len(calls) > n0, (cfg, "the lean form did not run")
                rl, rg = TOL[dtype]
                assert abs(loss - want_loss) <= rl * max(1.0, abs(want_loss)), (cfg, loss, want_loss)
                np.testing.assert_allclose(g, want_g, rtol=rg, atol=rg * max(1e-3, np.abs(want_g).max(initial=0)),
                                           err_msg=str(cfg))
                assert np.isfinite(g).all() and (g[~x["mask"]] == 0).all()
                with torch.no_grad():
                    t = {f: torch.as_tensor(x[f], dtype=dtype) for f in ("logp", "old_logp", "adv")}
                    plain = optimized.get(name)(t["logp"], t["old_logp"], t["adv"], torch.as_tensor(x["mask"]),
                                                config=cfg, group=x["group"])
                assert not plain.requires_grad and float(plain.double()) == loss
    finally:
        fused.set_mode("auto")


@pytest.mark.parametrize("name", LEAN_NAMES)
def test_lean_form_refuses_non_finite_valid_inputs(name):
    """The lean forms keep the input contract with their smaller probe: +inf, −inf or NaN in logp, old_logp, adv or
    ref_logp at a valid position raises RLSpecValueError naming the input, for either sign of the advantage, with and
    without ref_logp and with the log-ratio clamp (which would hide a non-finite log-ratio), in float64 and float32."""
    base = registry.get(name).config()
    for cfg in (base, dataclasses.replace(base, log_ratio_clamp=0.3), dataclasses.replace(base, log_ratio_clamp=None)):
        for dtype in (torch.float64, torch.float32):
            for sign, with_ref in itertools.product((1.0, -1.0), (True, False)):
                for field in ("logp", "old_logp", "adv") + (("ref_logp",) if with_ref else ()):
                    for bad in (np.inf, -np.inf, np.nan):
                        x = batch(17)
                        t = {k: torch.as_tensor(x[k], dtype=dtype) for k in ("logp", "old_logp", "adv")}
                        t["ref_logp"] = t["old_logp"].clone() if with_ref else None
                        t["adv"][1] = sign * t["adv"][1].abs()
                        t[field][1, 0] = bad  # mask[1, :3] is True
                        with pytest.raises(RLSpecValueError, match=field):
                            optimized.get(name)(t["logp"].requires_grad_(True), t["old_logp"], t["adv"],
                                                torch.as_tensor(x["mask"]), ref_logp=t["ref_logp"], config=cfg)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_lean_form_on_empty_batches(shape, monkeypatch):
    """With no row or no token, the lean forms give the core's loss (0) and an empty or zero gradient, in every
    aggregation mode."""
    for name in LEAN_NAMES:
        base = registry.get(name).config()
        for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
            cfg = dataclasses.replace(base, agg=agg)
            out = []
            for lean in (True, False):
                monkeypatch.setattr(fused, "_LEAN_ON", lean)
                logp = torch.full(shape, -1.0, dtype=torch.float64, requires_grad=True)
                loss = optimized.get(name)(logp, torch.full(shape, -1.1, dtype=torch.float64),
                                           torch.ones(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.bool),
                                           config=cfg)
                loss.backward()
                out.append((float(loss.detach()), logp.grad))
            assert out[0][0] == out[1][0] == 0.0, (name, agg)
            assert out[0][1].shape == shape and not out[0][1].any(), (name, agg)


@pytest.mark.parametrize("name", ["sapo", "gspo", "gmpo", "dro", "gpg_loss"])
def test_lean_form_scaled_repeated_and_accumulated_backward(name):
    """Through a lean form, (3·loss).backward() gives 3× the gradient, a second backward through a retained graph
    recomputes it (the gradient doubles), and two calls accumulate into logp.grad (float64, 1e-14)."""
    x = batch(19)
    t = {k: torch.as_tensor(x[k]) for k in ("old_logp", "adv", "mask")}
    grads = []
    for scale, repeat in ((1.0, 1), (3.0, 1), (1.0, 2)):
        logp = torch.as_tensor(x["logp"]).clone().requires_grad_(True)
        loss = optimized.get(name)(logp, t["old_logp"], t["adv"], t["mask"])
        for _ in range(repeat):
            (loss * scale).backward(retain_graph=True)
        grads.append(logp.grad.clone())
        if repeat == 1 and scale == 1.0:
            optimized.get(name)(logp, t["old_logp"], t["adv"], t["mask"]).backward()
            np.testing.assert_allclose(logp.grad.numpy(), 2 * grads[0].numpy(), rtol=1e-14)
    assert grads[0].abs().sum() > 0
    np.testing.assert_allclose(grads[1].numpy(), 3 * grads[0].numpy(), rtol=1e-14)
    np.testing.assert_allclose(grads[2].numpy(), 2 * grads[0].numpy(), rtol=1e-14)

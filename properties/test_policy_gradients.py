"""Claims that hold for every registered policy loss and KL loss.

* The hand-derived dlogp equals the central finite difference of the loss in float64
  (the design's "every objective is a weight per sampled token").
* Values at masked positions are never read: garbage padding gives the same loss and gradient
  as zero padding, and dlogp is exactly zero there.
* No NaN on valid input, including log-ratios of ±50.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import policy_batches
from rlspec.conformance import harness
from rlspec.reference import registry

# policy losses that run on the canonical batch (logp, old_logp, adv, mask, ...); an entry that needs inputs of
# its own (a Gaussian step's drift, turn ids) checks the same claims in its own properties file, and the contract
# fuzz (tests/test_contract_fuzz.py) draws its make_inputs
POLICY_LOSSES = [s.name for s in registry.specs(kind="policy_loss") if s.status in ("implemented", "partial")
                 and harness.uses_default_generator(s)]
KL_LOSSES = registry.names(kind="kl", status="implemented")
# Losses with stop-gradient factors: the gradient is not the derivative of the loss *value*; each such
# entry says in extras["stop_gradient"] which test checks its gradient with those factors frozen.
FD_LOSSES = [n for n in POLICY_LOSSES + KL_LOSSES if "stop_gradient" not in registry.get(n).extras]


def call(spec, batch, config=None):
    kw = {k: batch[k] for k in ("logp", "mask")}
    if spec.kind == "kl":
        kw["ref_logp"] = batch["ref_logp"]
    else:
        kw.update(old_logp=batch["old_logp"], adv=batch["adv"])
    return spec(**kw, config=config)


def finite_difference(spec, batch, h=1e-6):
    """Central differences of the loss w.r.t. each unmasked logp entry."""
    grad = np.zeros_like(batch["logp"])
    for b, t in zip(*np.nonzero(batch["mask"])):
        plus, minus = dict(batch), dict(batch)
        plus["logp"] = batch["logp"].copy()
        minus["logp"] = batch["logp"].copy()
        plus["logp"][b, t] += h
        minus["logp"][b, t] -= h
        grad[b, t] = (call(spec, plus)[0] - call(spec, minus)[0]) / (2 * h)
    return grad


def away_from_kinks(spec, batch, h=1e-6):
    """True when no clip boundary lies near a token's or a sequence's mean log-ratio (FD exact to O(h²))."""
    m = batch["mask"]
    lr_tok = np.where(m, batch["logp"], 0.0) - np.where(m, batch["old_logp"], 0.0)
    lr_seq = lr_tok.sum(1) / np.maximum(m.sum(1), 1)
    lr = np.concatenate([lr_tok[m], lr_seq])
    if lr.size == 0:
        return True
    cfg = spec.config()
    bounds = []
    for lo_name, hi_name in (("eps_low", "eps_high"),):
        lo, hi = getattr(cfg, lo_name, None), getattr(cfg, hi_name, None)
        if lo is not None and lo < 1:
            bounds.append(np.log1p(-lo))
        if hi is not None:
            bounds.append(np.log1p(hi))
    return all(np.abs(lr - b).min() > 1e3 * h for b in bounds) if bounds else True


@pytest.mark.parametrize("name", FD_LOSSES)
@given(batch=policy_batches(max_B=5, max_T=5))
def test_hand_gradient_matches_finite_differences(name, batch):
    """Claim (design, "every objective is a weight per sampled token"): dlogp = ∂loss/∂logp, checked by central FD."""
    spec = registry.get(name)
    if spec.kind == "policy_loss" and not away_from_kinks(spec, batch):
        return  # a clip boundary within FD step: the derivative is one-sided there
    loss, dlogp = call(spec, batch)
    fd = finite_difference(spec, batch)
    scale = max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * scale, rtol=1e-5)


@pytest.mark.parametrize("name", POLICY_LOSSES + KL_LOSSES)
@given(batch=policy_batches(max_B=6, max_T=6))
def test_padding_is_never_read(name, batch):
    """Design, "Bad input": values at masked positions never change a result; dlogp is 0 there."""
    spec = registry.get(name)
    loss, dlogp = call(spec, batch)
    clean = {k: (np.where(batch["mask"], v, 0.0) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
             for k, v in batch.items()}
    loss0, dlogp0 = call(spec, clean)
    assert loss == pytest.approx(loss0, rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(dlogp, dlogp0)
    assert (dlogp[~batch["mask"]] == 0).all()
    assert np.isfinite(loss) and np.isfinite(dlogp).all()


@pytest.mark.parametrize("name", POLICY_LOSSES + KL_LOSSES)
@given(batch=policy_batches(max_B=4, max_T=4, log_ratio_scale=0.0), sign=st.sampled_from([-50.0, 50.0]))
def test_no_nan_at_extreme_log_ratios(name, batch, sign):
    """Issue #2, bad input: no NaN output on valid input with log-ratios of ±50."""
    spec = registry.get(name)
    shifted = dict(batch)
    shifted["old_logp"] = np.where(batch["mask"], batch["logp"] - sign, batch["old_logp"])
    shifted["ref_logp"] = np.where(batch["mask"], batch["logp"] - sign, batch["ref_logp"])
    loss, dlogp = call(spec, shifted)
    assert np.isfinite(loss)
    assert np.isfinite(dlogp).all()


def test_every_policy_loss_is_covered():
    """The generic checks above run on the baselines of issue #2; stop-gradient losses name their own FD test."""
    assert {"ppo", "dapo", "gspo", "sapo"} <= set(FD_LOSSES)
    for name in set(POLICY_LOSSES + KL_LOSSES) - set(FD_LOSSES):
        assert "properties/test_" in registry.get(name).extras["stop_gradient"]

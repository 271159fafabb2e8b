"""Issue #2, "Bad input": every registered policy loss and outcome-advantage estimator, reference and optimized.

Mismatched shapes, non-boolean masks, NaN/inf at unmasked positions and unknown aggregation modes
raise a ``ValueError`` subclass whose message names the argument; padding is never read; an all-false
mask, a fully-masked sequence and a singleton group give defined, finite results.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rlspec import optimized
from rlspec.conformance import harness
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError

# policy losses that run on the canonical batch; entries with required inputs of their own test bad input in
# their properties file and in the contract fuzz (tests/test_contract_fuzz.py)
POLICY = [s.name for s in registry.specs(kind="policy_loss") if s.status in ("implemented", "partial")
          and harness.uses_default_generator(s)]
OUTCOME_ADV = [n for n in registry.names(kind="advantage", status="implemented") if registry.get(n).make_inputs is None]


def policy_inputs(B=3, T=4, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None, :] < np.array([T, 2, 1])[:, None]
    logp = -rng.random((B, T))
    return dict(logp=logp, old_logp=logp + 0.1 * rng.normal(size=(B, T)), adv=rng.normal(size=(B, T)), mask=mask)


def outcome_inputs():
    return dict(rewards=np.array([1.0, 0.0, 1.0, 0.5]), group=np.array([0, 0, 1, 2]),
                mask=np.array([[1, 1], [1, 0], [1, 1], [0, 0]], bool))


@pytest.mark.parametrize("name", POLICY)
@pytest.mark.parametrize("arg", ["old_logp", "adv", "mask"])
def test_policy_shape_mismatch_names_the_argument(name, arg):
    kw = policy_inputs()
    kw[arg] = kw[arg][:, :-1]
    with pytest.raises(RLSpecValueError, match=arg):
        registry.get(name)(**kw)


@pytest.mark.parametrize("name", POLICY)
def test_policy_float_mask_rejected(name):
    kw = policy_inputs()
    kw["mask"] = kw["mask"].astype(float) * 0.5
    with pytest.raises(RLSpecValueError, match="mask"):
        registry.get(name)(**kw)


@pytest.mark.parametrize("name", POLICY)
@pytest.mark.parametrize("arg", ["logp", "old_logp", "adv"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_policy_nonfinite_at_unmasked_position(name, arg, bad):
    kw = policy_inputs()
    kw[arg] = kw[arg].copy()
    kw[arg][0, 0] = bad
    with pytest.raises(RLSpecValueError, match=arg):
        registry.get(name)(**kw)


@pytest.mark.parametrize("name", POLICY)
def test_policy_unknown_aggregation_mode(name):
    spec = registry.get(name)
    with pytest.raises(RLSpecValueError, match="agg"):
        spec.config(agg="sum-of-everything")


@pytest.mark.parametrize("name", POLICY)
def test_policy_all_false_mask_and_empty_rows_are_defined(name):
    """Defined cases: all-false mask → loss 0, dlogp 0; a fully masked row gets dlogp 0."""
    kw = policy_inputs()
    kw["mask"] = np.zeros_like(kw["mask"])
    kw["logp"] = np.full_like(kw["logp"], np.nan)
    loss, dlogp = registry.get(name)(**kw)
    assert loss == 0.0 and (dlogp == 0).all()
    kw = policy_inputs()
    kw["mask"][1] = False
    loss, dlogp = registry.get(name)(**kw)
    assert np.isfinite(loss) and (dlogp[1] == 0).all()


@pytest.mark.parametrize("name", [n for n in POLICY if n in optimized.names()])
def test_optimized_policy_rejects_nan_and_ignores_padding(name):
    """The torch path follows the same policy: NaN at an unmasked position raises; NaN padding is harmless."""
    fn = optimized.get(name)
    kw = {k: torch.as_tensor(v) for k, v in policy_inputs().items()}
    bad = dict(kw, adv=kw["adv"].clone())
    bad["adv"][0, 0] = float("nan")
    with pytest.raises(RLSpecValueError, match="adv"):
        fn(**bad)
    padded = dict(kw, logp=torch.where(kw["mask"], kw["logp"], torch.tensor(float("nan"), dtype=torch.float64)))
    padded["logp"].requires_grad_(True)
    loss = fn(**padded)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(padded["logp"].grad).all()
    assert (padded["logp"].grad[~kw["mask"]] == 0).all()


@pytest.mark.parametrize("name", OUTCOME_ADV)
def test_advantage_bad_inputs(name):
    spec = registry.get(name)
    kw = outcome_inputs()
    with pytest.raises(RLSpecValueError, match="rewards"):
        spec(**dict(kw, rewards=kw["rewards"][:-1]))
    with pytest.raises(RLSpecValueError, match="rewards"):
        spec(**dict(kw, rewards=np.array([1.0, np.nan, 0.0, 1.0])))
    with pytest.raises(RLSpecValueError, match="group"):
        spec(**dict(kw, group=np.array([0, 0, 1])))
    with pytest.raises(RLSpecValueError, match="mask"):
        spec(**dict(kw, mask=kw["mask"].astype(float) + 0.5))


@pytest.mark.parametrize("name", OUTCOME_ADV)
def test_advantage_singleton_and_empty_are_defined(name):
    """A singleton group, an all-equal group and a fully masked row give finite advantages, zero at padding."""
    spec = registry.get(name)
    adv = spec(**outcome_inputs())
    assert np.isfinite(adv).all()
    assert (adv[~outcome_inputs()["mask"]] == 0).all()


@pytest.mark.parametrize("name", ["grpo", "dr_grpo"])
def test_negative_epsilon_rejected(name):
    with pytest.raises(RLSpecValueError, match="eps"):
        registry.get(name).config(eps=-1e-6)


def test_unknown_algorithm_lists_close_matches():
    with pytest.raises(KeyError, match="grpo"):
        registry.get("gpro")


def test_unknown_config_field():
    with pytest.raises(ValueError, match="unknown field"):
        registry.get("ppo").config(epsilon=0.2)


def test_configs_are_frozen():
    cfg = registry.get("ppo").config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.eps_low = 0.3

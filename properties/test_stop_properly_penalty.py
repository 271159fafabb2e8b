"""Properties of the stop-properly penalty (OpenRLHF length_penalty.apply_stop_properly_penalty)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.stop_properly_penalty import StopProperlyConfig, stop_properly_penalty

COEF = st.one_of(st.floats(0.0, 1.0), st.floats(-5.0, -1e-3))


def draw(rng):
    B = int(rng.integers(1, 10))
    return rng.normal(scale=2.0, size=B), rng.random(B) < 0.5


@given(S.seeds(), COEF)
def test_untruncated_rewards_unchanged(rng, c):
    """Definition: a response that stopped at a stop token keeps its reward exactly, whatever c is."""
    R, tau = draw(rng)
    out = stop_properly_penalty(R, tau, StopProperlyConfig(coef=c))
    np.testing.assert_array_equal(out[~tau], R[~tau])


@given(S.seeds(), COEF)
def test_scaling_and_override_cases(rng, c):
    """Definition: a truncated response gets c·R for 0 ≤ c ≤ 1 and the constant c for c < 0 (a fixed reward)."""
    R, tau = draw(rng)
    out = stop_properly_penalty(R, tau, StopProperlyConfig(coef=c))
    want = R * c if c >= 0 else np.full_like(R, c)
    np.testing.assert_allclose(out[tau], want[tau], rtol=0, atol=0)
    if c < 0:
        assert np.all(out[tau] < 0)


@given(S.seeds(), COEF)
def test_never_increases_a_nonnegative_reward(rng, c):
    """Claim (a penalty): for rewards ≥ 0 the penalized reward is never larger than the original."""
    R, tau = draw(rng)
    R = np.abs(R)
    assert np.all(stop_properly_penalty(R, tau, StopProperlyConfig(coef=c)) <= R)


def test_bad_input():
    """Bad input names the argument: coef > 1, float flags, wrong length, NaN rewards."""
    with pytest.raises(RLSpecValueError, match="coef"):
        StopProperlyConfig(coef=1.5)
    with pytest.raises(RLSpecValueError, match="truncated"):
        stop_properly_penalty(np.ones(3), np.array([0.5, 0.0, 1.0]))
    with pytest.raises(RLSpecValueError, match="truncated"):
        stop_properly_penalty(np.ones(3), np.array([True, False]))
    with pytest.raises(RLSpecValueError, match="rewards"):
        stop_properly_penalty(np.array([np.nan, 1.0]), np.array([True, False]))

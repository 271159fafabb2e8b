"""The mode-routing bandit (reference/envs/mode_bandit.py, A²FM's toy) checked before APO uses it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import mode_bandit as mb


@given(st.integers(0, 4), st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_forced_outcomes_are_a_distribution_with_binomial_means(n, p):
    """The enumeration of forced success counts is a probability distribution whose per-mode means are n·p_m and
    whose probabilities match a brute-force enumeration of the 2^{3n} individual outcomes."""
    out = mb.forced_outcomes(p, n)
    probs = np.array([q for _, q in out])
    counts = np.array([k for k, _ in out], dtype=float).reshape(-1, 3)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12) and (probs >= 0).all()
    np.testing.assert_allclose((probs[:, None] * counts).sum(axis=0), n * np.array(p), atol=1e-12)
    if n <= 2:
        brute: dict[tuple[int, ...], float] = {}
        for o in itertools.product([0, 1], repeat=3 * n):
            o = np.array(o).reshape(3, n)
            q = float(np.prod(np.where(o == 1, np.array(p)[:, None], 1 - np.array(p)[:, None])))
            key = tuple(int(v) for v in o.sum(axis=1))
            brute[key] = brute.get(key, 0.0) + q
        for k, q in out:
            assert q == pytest.approx(brute[k], abs=1e-12)


@given(seeds())
def test_accuracy_cost_and_cost_of_pass(rng):
    """accuracy and cost are the w-weighted policy averages (checked by loops); cost of pass = cost/accuracy."""
    theta = rng.normal(size=(3, 3)) * 2
    pi = mb.router(theta)
    acc = sum(pi[x, m] * mb.P_CORRECT[x, m] for x in range(3) for m in range(3)) / 3
    cost = sum(pi[x, m] * mb.COSTS[m] for x in range(3) for m in range(3)) / 3
    assert mb.accuracy(pi) == pytest.approx(acc, rel=1e-13) and mb.cost(pi) == pytest.approx(cost, rel=1e-13)
    assert mb.cost_of_pass(pi) == pytest.approx(cost / acc, rel=1e-13)
    assert mb.cost_of_pass(pi, P=np.zeros((3, 3))) == float("inf")


def test_bad_input_raises():
    with pytest.raises(RLSpecValueError, match="P"):
        mb.check_table(np.ones((2, 2)))
    with pytest.raises(RLSpecValueError, match="n"):
        mb.binomial_outcomes(-1, 0.5)

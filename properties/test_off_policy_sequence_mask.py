"""Properties of off-policy sequence masking (DeepSeek-V3.2, arXiv 2512.02556 eq. (9))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.off_policy_sequence_mask import OffPolicySequenceMaskConfig, _inputs, off_policy_sequence_mask

DELTAS = st.sampled_from([0.0, 0.05, 0.5, 2.0])


def _call(b, delta):
    return off_policy_sequence_mask(b["logp"], b["old_logp"], b["adv"], b["mask"],
                                    config=OffPolicySequenceMaskConfig(delta=delta))


@given(S.seeds(), DELTAS)
def test_nonnegative_advantages_always_kept(rng, delta):
    """Claim (eq. 9): only negative-advantage sequences can be masked; Â ≥ 0 (zero included) is always kept."""
    b = _inputs(rng)
    keep = _call(b, delta)
    assert keep[b["adv"] >= 0].all()


@given(S.seeds(), DELTAS)
def test_on_policy_keeps_everything(rng, delta):
    """Claim: with π_θ = π_old the drift estimate is 0 ≤ δ, so no sequence is masked."""
    b = _inputs(rng)
    b["old_logp"] = b["logp"]
    assert _call(b, delta).all()


@given(S.seeds())
def test_monotone_in_delta(rng):
    """Claim (δ is a tolerance): a sequence kept at δ is kept at every δ' ≥ δ; and a negative-advantage sequence is
    dropped exactly when its mean log(π_old/π_θ), computed independently here, exceeds δ."""
    b = _inputs(rng)
    k = [_call(b, d) for d in (0.0, 0.1, 0.5, 2.0)]
    for lo, hi in zip(k, k[1:]):
        assert np.all(hi | ~lo)
    m = b["mask"]
    for i in range(m.shape[0]):
        drift = float(np.mean(b["old_logp"][i][m[i]] - b["logp"][i][m[i]])) if m[i].any() else 0.0
        assert k[2][i] == (b["adv"][i] >= 0 or drift <= 0.5 + 1e-12)


@given(S.seeds(), DELTAS)
def test_padding_is_never_read(rng, delta):
    """Design, 'Bad input': garbage at masked positions never changes the decision; a sequence with no valid
    token (drift defined as 0) is kept."""
    b = _inputs(rng)
    m = b["mask"]
    clean = dict(b, logp=np.where(m, b["logp"], 0.0), old_logp=np.where(m, b["old_logp"], 0.0))
    keep = _call(b, delta)
    assert np.array_equal(keep, _call(clean, delta))
    assert keep[~m.any(axis=1)].all()


def test_bad_input_names_the_argument():
    """Bad input: a (B, T) advantage, NaN at a valid position and a negative δ are rejected, naming the argument."""
    lp, m = np.zeros((2, 3)), np.ones((2, 3), bool)
    with pytest.raises(RLSpecValueError, match="adv"):
        off_policy_sequence_mask(lp, lp, np.zeros((2, 3)), m)
    with pytest.raises(RLSpecValueError, match="old_logp"):
        off_policy_sequence_mask(lp, np.full((2, 3), np.nan), np.zeros(2), m)
    with pytest.raises(RLSpecValueError, match="delta"):
        OffPolicySequenceMaskConfig(delta=-1.0)

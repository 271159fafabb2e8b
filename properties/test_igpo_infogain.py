"""Properties of IGPO (Information Gain-based Policy Optimization, arXiv 2510.14967).

The IG rewards telescope (the sum of a trajectory's turn rewards depends only on the belief before the first turn
and before the answer turn), the per-type group normalization is zero-mean / unit-std within each type, the turn
returns are the discounted sums they are defined as, every token of a turn shares its turn's advantage, and a
group whose outcomes all agree still gets a signal (the paper's "advantage collapse" remedy). Expected values are
written from the definitions here (loops, numpy means), never read back from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.igpo_infogain import (
    IGPOConfig,
    _advantage_inputs,
    _reward_inputs,
    confidence_from_model,
    igpo_advantage,
    igpo_signals,
    igpo_turn_rewards,
    turn_returns,
)

GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def trajectory_batch(rng: np.random.Generator, n: np.ndarray, T_extra: int = 2, L: int = 3):
    """A clean batch with known turn counts n (B,): turns of 1–2 tokens separated by one tool token (turn −1,
    masked out); gt log-probs (B, K, L); everything beyond n_i / off the masks is garbage."""
    B, K = n.size, max(int(n.max(initial=0)), 1)
    T = 3 * K + T_extra
    mask = np.zeros((B, T), bool)
    turn = np.full((B, T), 99)
    for b in range(B):
        t = 0
        for k in range(n[b]):
            for _ in range(int(rng.integers(1, 3))):
                mask[b, t], turn[b, t], t = True, k, t + 1
            turn[b, t], t = -1, t + 1  # tool output, masked out
    am = np.zeros((B, L), bool)
    for b in range(B):
        am[b, : int(rng.integers(1, L + 1))] = True
    lp = -rng.gamma(2.0, 0.5, size=(B, K, L))
    live = (np.arange(K)[None, :, None] < n[:, None, None]) & am[:, None, :]
    lp = np.where(live, lp, rng.choice(GARBAGE, size=lp.shape))
    return mask, turn, lp, am


def conf_by_hand(lp, am, n):
    """s_{i,k} = mean of the answer tokens' log-probs, written out."""
    B, K, _ = lp.shape
    s = np.zeros((B, K))
    for i in range(B):
        for k in range(n[i]):
            s[i, k] = np.mean(lp[i, k][am[i]])
    return s


@given(seeds(), st.sampled_from(["prob", "log_prob"]))
def test_ig_telescopes(rng, ig_type):
    """Method, IG reward (belief increments): Σ_{k<n−1} r^IG_{i,k} = f(s_{i,n−1}) − f(s_{i,0}) for f = exp or identity."""
    n = rng.integers(0, 6, size=int(rng.integers(1, 6)))
    _, _, lp, am = trajectory_batch(rng, n)
    s_ref = conf_by_hand(lp, am, n)
    s, r = igpo_turn_rewards(lp, am, n, np.zeros(n.size), config=IGPOConfig(ig_type=ig_type))
    f = np.exp if ig_type == "prob" else (lambda x: x)
    for i in range(n.size):
        if n[i] >= 1:
            assert r[i, : n[i] - 1].sum() == pytest.approx(f(s_ref[i, n[i] - 1]) - f(s_ref[i, 0]), abs=1e-12)
            assert r[i, n[i] - 1] == 0.0  # the answer turn carries the outcome (0 here), not an IG
        assert np.all(r[i, max(n[i], 0):] == 0.0)


@given(seeds())
def test_confidence_is_mean_answer_logprob(rng):
    """Method, IG reward: s = (1/L) Σ_j log π(a_j | C_k, a_<j); with prob IG, r = difference of geometric-mean probabilities of
    the answer, so |r| < 1; the answer turn gets r^O."""
    n = rng.integers(1, 6, size=int(rng.integers(1, 6)))
    _, _, lp, am = trajectory_batch(rng, n)
    outcome = rng.uniform(size=n.size)
    s, r = igpo_turn_rewards(lp, am, n, outcome)
    s_ref = conf_by_hand(lp, am, n)
    for i in range(n.size):
        np.testing.assert_allclose(s[i, : n[i]], s_ref[i, : n[i]], rtol=1e-13, atol=1e-14)
        for k in range(n[i] - 1):
            geo = [np.prod(np.exp(lp[i, c][am[i]])) ** (1.0 / am[i].sum()) for c in (k, k + 1)]
            assert r[i, k] == pytest.approx(geo[1] - geo[0], abs=1e-12)
            assert abs(r[i, k]) < 1.0
        assert r[i, n[i] - 1] == outcome[i]


def test_callable_matches_arrays():
    """The model-dependent part (teacher-forced scoring of the answer after each context) through a user callable
    gives the same confidences and rewards as the array path. Stand-in scorer: a deterministic toy LM whose
    answer log-probs rise with the number of 'hits' in the context."""
    answer = ("paris", "france")

    def logprob_fn(context, ans):
        hits = sum(("paris" in c) or ("france" in c) for c in context)
        return np.array([np.log(0.1 + 0.2 * hits) - 0.05 * j for j in range(len(ans))])

    contexts = [["q"], ["q", "search capital", "doc: lyon"], ["q", "search capital", "doc: lyon", "search", "doc: paris"],
                ["q", "search capital", "doc: lyon", "search", "doc: paris", "search", "doc: france"]]
    s_cb = confidence_from_model(logprob_fn, contexts, answer)
    lp = np.stack([logprob_fn(c, answer) for c in contexts])[None]  # (1, 4, 2)
    s, r = igpo_turn_rewards(lp, np.ones((1, 2), bool), np.array([4]), np.array([1.0]))
    np.testing.assert_allclose(s[0], s_cb, rtol=1e-14)
    assert r[0, 0] == pytest.approx(0.0, abs=1e-15)  # a useless search earns nothing
    assert r[0, 1] > 0 and r[0, 2] > 0 and r[0, 3] == 1.0


@given(seeds(), st.sampled_from(["prob", "log_prob"]))
def test_turn_zero_return_telescopes(rng, ig_type):
    """Method, advantage, with γ = 1 and no normalization: R̃_{i,0} = Σ_k r_{i,k} = f(s_{n−1}) − f(s_0) + r^O — the IG part of the
    first turn's credit depends on the trajectory only through its first and last beliefs; and R̃_{i,k} − R̃_{i,k+1}
    = r_{i,k}."""
    n = rng.integers(1, 6, size=int(rng.integers(1, 7)))
    mask, turn, lp, am = trajectory_batch(rng, n)
    R = rng.uniform(size=n.size)
    cfg = IGPOConfig(ig_type=ig_type, normalization="none", gamma=1.0)
    _, ret, _, r = igpo_signals(R, np.arange(n.size), mask, cfg, turn=turn, gt_logp=lp, answer_mask=am)
    s = conf_by_hand(lp, am, n)
    f = np.exp if ig_type == "prob" else (lambda x: x)
    for i in range(n.size):
        assert ret[i, 0] == pytest.approx(f(s[i, n[i] - 1]) - f(s[i, 0]) + R[i], abs=1e-12)
        for k in range(n[i] - 1):
            assert ret[i, k] - ret[i, k + 1] == pytest.approx(r[i, k], abs=1e-12)


def cells(n, K):
    k = np.arange(K)[None, :]
    return k < (n - 1)[:, None], k == (n - 1)[:, None]


@given(seeds())
def test_separate_normalization_zero_mean_unit_std(rng):
    """Method, per-type normalization: within each prompt group the normalized IG cells have mean 0 and population std
    ≈ 1 (σ/(σ+ε)), and so do the outcome cells (when a type has ≥ 2 distinct values; else 0)."""
    G = int(rng.integers(1, 4))
    g = np.repeat(np.arange(G), rng.integers(1, 5, size=G))
    n = rng.integers(1, 5, size=g.size)
    mask, turn, lp, am = trajectory_batch(rng, n)
    R = rng.uniform(size=g.size)
    _, _, rt, r = igpo_signals(R, g, mask, IGPOConfig(), turn=turn, gt_logp=lp, answer_mask=am)
    ig_c, out_c = cells(n, rt.shape[1])
    for key in np.unique(g):
        for c in (ig_c, out_c):
            sel = c & (g == key)[:, None]
            x, raw = rt[sel], r[sel]
            if raw.size < 2 or np.ptp(raw) == 0:
                assert np.all(x == 0.0)
                continue
            assert abs(x.mean()) < 1e-9
            sd = raw.std()
            assert x.std() == pytest.approx(sd / (sd + 1e-6), rel=1e-9)


@given(seeds())
def test_joint_normalization_pools_types(rng):
    """The updated code's 'joint' mode: one z-score over all turn rewards (IG and outcome) of a group."""
    g = np.repeat([0, 1], [3, 2])
    n = rng.integers(1, 5, size=5)
    mask, turn, lp, am = trajectory_batch(rng, n)
    R = rng.uniform(size=5)
    _, _, rt, r = igpo_signals(R, g, mask, IGPOConfig(normalization="joint"), turn=turn, gt_logp=lp, answer_mask=am)
    live = np.arange(r.shape[1])[None, :] < n[:, None]
    for key in (0, 1):
        sel = live & (g == key)[:, None]
        x = r[sel]
        if x.size < 2:
            continue
        np.testing.assert_allclose(rt[sel], (x - x.mean()) / (x.std() + 1e-6), rtol=1e-10, atol=1e-12)


@given(seeds(), st.floats(0.1, 10.0), st.floats(-3.0, 3.0))
def test_outcome_affine_invariance(rng, a, b):
    """Consequence of per-type z-scores ('separate', ε = 0): replacing r^O by a·r^O + b (a > 0) — e.g. F1 vs a
    rescaled score — leaves every advantage unchanged; so does rescaling the log-belief (log_prob IG, s → a·s + b)."""
    g = np.repeat([0, 1], [4, 3])
    n = rng.integers(1, 5, size=7)
    mask, turn, lp, am = trajectory_batch(rng, n)
    R = rng.uniform(size=7)
    cfg = IGPOConfig(eps=0.0, ig_type="log_prob")
    base = igpo_advantage(R, g, mask, cfg, turn=turn, gt_logp=lp, answer_mask=am)
    np.testing.assert_allclose(igpo_advantage(a * R + b, g, mask, cfg, turn=turn, gt_logp=lp, answer_mask=am), base,
                               rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(igpo_advantage(R, g, mask, cfg, turn=turn, gt_logp=a * lp + b, answer_mask=am), base,
                               rtol=1e-8, atol=1e-8)


@given(seeds(), st.floats(0.0, 1.0))
def test_returns_match_explicit_sum(rng, gamma):
    """Method, turn return: R̃_{i,k} = Σ_{m=k}^{n_i−1} γ^{m−k} r̃_{i,m} (explicit double loop), 0 for k ≥ n_i."""
    n = rng.integers(0, 6, size=int(rng.integers(1, 6)))
    K = max(int(n.max()), 1)
    rt = rng.normal(size=(n.size, K))
    ret = turn_returns(rt, n, gamma)
    for i in range(n.size):
        for k in range(K):
            want = sum(gamma ** (m - k) * rt[i, m] for m in range(k, n[i])) if k < n[i] else 0.0
            assert ret[i, k] == pytest.approx(want, abs=1e-12)


@given(seeds())
def test_advantage_constant_within_turn(rng):
    """Method, broadcast: every valid token of turn k gets R̃_{i,k}; tool tokens (turn −1) and padding get 0."""
    inp = _advantage_inputs(rng)
    adv, ret, _, _ = igpo_signals(**inp)
    m, tr = inp["mask"], inp["turn"]
    for b, t in np.argwhere(m):
        assert adv[b, t] == (ret[b, tr[b, t]] if tr[b, t] >= 0 else 0.0)
    assert np.all(adv[~m] == 0.0)


def test_no_advantage_collapse():
    """Abstract (i), advantage collapse: all rollouts of a prompt fail (r^O = 0): GRPO's advantage is 0 for every token,
    IGPO's is not — the rollout whose search raised the belief in the answer is credited above the one that did not."""
    n = np.array([3, 3, 3])
    mask = np.zeros((3, 6), bool)
    turn = np.full((3, 6), -1)
    for b in range(3):
        mask[b, [0, 2, 4]] = True
        turn[b, [0, 2, 4]] = [0, 1, 2]
    s = np.array([[-3.0, -1.0, -0.5], [-3.0, -3.0, -3.0], [-3.0, -2.5, -2.9]])  # beliefs before turns 0, 1, 2
    lp = np.repeat(s[:, :, None], 2, axis=2)
    am = np.ones((3, 2), bool)
    R = np.zeros(3)
    grpo = registry.get("grpo")(rewards=R, group=np.zeros(3, int), mask=mask)
    assert np.all(grpo == 0.0)
    adv = igpo_advantage(R, np.zeros(3, int), mask, turn=turn, gt_logp=lp, answer_mask=am)
    assert np.abs(adv[mask]).max() > 0.5
    assert adv[0, 0] > adv[2, 0] > adv[1, 0]  # first-turn credit ordered by total belief gain
    assert n.sum() == 9


def test_degenerate_cases_defined():
    """Design 'defined cases': a row without valid tokens gets 0; n = 1 has only an outcome cell; a one-rollout
    group and an all-equal group normalize to 0 (no NaN)."""
    mask = np.array([[False, False], [True, False], [True, True]])
    turn = np.array([[0, 0], [0, -1], [0, 0]])
    lp = np.full((3, 1, 1), -1.0)
    am = np.ones((3, 1), bool)
    adv = igpo_advantage(np.array([1.0, 0.5, 0.5]), np.array([0, 1, 1]), mask, turn=turn, gt_logp=lp, answer_mask=am)
    np.testing.assert_array_equal(adv, 0.0)  # row 0 empty; group 1 all-equal outcomes, no IG cells
    adv1 = igpo_advantage(np.array([0.3]), np.array([5]), np.array([[True]]), turn=np.array([[0]]),
                          gt_logp=lp[:1], answer_mask=am[:1])
    np.testing.assert_array_equal(adv1, 0.0)


@given(seeds())
def test_padding_never_read(rng):
    """Design 'Bad input': replacing masked tokens' turn ids, gt log-probs beyond n_i and off the answer mask with
    other garbage changes nothing."""
    inp = _advantage_inputs(rng)
    base = igpo_advantage(**inp)
    m = inp["mask"]
    other = dict(inp)
    other["turn"] = np.where(m, inp["turn"], rng.integers(-9, 99, size=m.shape))
    from rlspec.reference.a2tgpo import turn_counts
    n = turn_counts(np.where(m, inp["turn"], -1), m)
    K, L = inp["gt_logp"].shape[1:]
    live = (np.arange(K)[None, :, None] < n[:, None, None]) & inp["answer_mask"][:, None, :]
    other["gt_logp"] = np.where(live, inp["gt_logp"], rng.choice(GARBAGE, size=inp["gt_logp"].shape))
    np.testing.assert_array_equal(igpo_advantage(**other), base)
    rin = _reward_inputs(rng)
    assert all(np.isfinite(x).all() for x in igpo_turn_rewards(**rin))


def test_composition_with_ppo():
    """Composition (reward → advantage → loss): IGPO advantages fed to the registry's PPO loss (token-mean). At ratio
    1 the gradient is −A/N on every valid token, so the turn whose search paid off is pushed up hardest; tool tokens
    get no gradient even when left in the mask."""
    mask = np.array([[True, True, True, True], [True, True, True, False]])
    turn = np.array([[0, -1, 1, 1], [0, -1, 1, 7]])
    lp = np.array([[[-2.0], [-0.2]], [[-2.0], [-2.0]]])  # row 0's first turn found the answer
    am = np.ones((2, 1), bool)
    R = np.array([1.0, 0.0])
    adv = igpo_advantage(R, np.zeros(2, int), mask, turn=turn, gt_logp=lp, answer_mask=am)
    logp = np.where(mask, np.log(0.3), np.nan)
    loss, dlogp = registry.get("ppo")(logp=logp, old_logp=logp.copy(), adv=adv, mask=mask)
    np.testing.assert_allclose(dlogp, np.where(mask, -adv / mask.sum(), 0.0), rtol=1e-12, atol=1e-15)
    assert dlogp[0, 0] < dlogp[0, 2] < 0 < dlogp[1, 2] < dlogp[1, 0]
    assert dlogp[0, 1] == 0.0 and np.isfinite(loss)


def test_bad_input_raises():
    """Design 'Bad input': each argument named in the error."""
    mask, turn = np.ones((1, 2), bool), np.array([[0, 1]])
    lp, am = np.full((1, 2, 1), -1.0), np.ones((1, 1), bool)
    ok = dict(rewards=[1.0], group=[0], mask=mask, turn=turn, gt_logp=lp, answer_mask=am)
    for key, bad, name in (("gt_logp", np.full((1, 1, 1), -1.0), "gt_logp"),  # fewer contexts than turns
                           ("gt_logp", np.array([[[-1.0], [np.nan]]]), "gt_logp"),
                           ("answer_mask", np.zeros((1, 1), bool), "answer_mask"),
                           ("turn", np.array([[0.0, 1.0]]), "turn"), ("turn", np.array([[0, -3]]), "turn"),
                           ("rewards", [np.inf], "rewards"), ("mask", np.ones((1, 2)), "mask")):
        with pytest.raises(RLSpecValueError, match=name):
            igpo_advantage(**{**ok, key: bad})
    for kw, name in (({"ig_type": "prob_diff"}, "ig_type"), ({"normalization": "batch"}, "normalization"),
                     ({"gamma": 1.5}, "gamma"), ({"ddof": 2}, "ddof"), ({"eps": -1.0}, "eps")):
        with pytest.raises(RLSpecValueError, match=name):
            IGPOConfig(**kw)
    with pytest.raises(RLSpecValueError, match="n_turns"):
        igpo_turn_rewards(lp, am, np.array([-1]), [0.0])


@settings(max_examples=30)
@given(seeds())
def test_inputs_not_mutated(rng):
    """Pure functions: the caller's arrays are left as they were."""
    inp = _advantage_inputs(rng)
    before = {k: np.copy(v) for k, v in inp.items()}
    igpo_advantage(**inp)
    for k, v in inp.items():
        np.testing.assert_array_equal(v, before[k])

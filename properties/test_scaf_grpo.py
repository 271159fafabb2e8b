"""Properties of Scaf-GRPO (arXiv 2510.19807) — reference/scaf_grpo.py.

Expected values come from closed forms (derived in the docstrings), explicit loops and set tallies written
here, or seeded runs of a small softmax bandit; never from the code under test. LLM parts (hinted sampling,
the verifier, hint text) are deterministic stand-ins.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.scaf_grpo import (
    CODE_TIERS,
    ScafConfig,
    ScafState,
    eligible_groups,
    guidance_active,
    hint_ladder,
    hints_from_parts,
    init_state,
    minimal_hint,
    scaf_grpo,
    scaf_step,
    update,
)


@given(st.integers(2, 16), seeds())
def test_one_success_group_closed_form(G, rng):
    """§3.2 (one success restores the signal) — closed form: after the hinted success replaces one failure of an
    all-zero binary group of size G, μ = 1/G and, with the population std (ddof = 0, ε = 0), σ = √(G−1)/G, so
    Â_success = √(G−1) and Â_fail = −1/√(G−1); with the sample std (ddof = 1, the official code's verl) σ = 1/√G,
    Â_success = (G−1)/√G, Â_fail = −1/√G. The group sums to 0 either way."""
    T = int(rng.integers(1, 5))
    mask = np.ones((G, T), bool)
    level = np.full(G, int(rng.integers(0, 12)))
    for ddof, succ, fail_ in ((0, math.sqrt(G - 1), -1 / math.sqrt(G - 1)), (1, (G - 1) / math.sqrt(G), -1 / math.sqrt(G))):
        r2, hinted, adv = scaf_grpo(np.zeros(G), np.full(G, 7), mask, level, ScafConfig(ddof=ddof, eps=0.0))
        assert hinted.sum() == 1 and r2.sum() == 1.0
        np.testing.assert_allclose(adv[hinted, 0], succ, rtol=1e-12)
        np.testing.assert_allclose(adv[~hinted, 0], fail_, rtol=1e-12)
        assert abs(adv[:, 0].sum()) < 1e-12


@given(seeds())
def test_without_hints_it_is_grpo(rng):
    """Eq. 5 (J_Scaf ≡ J_GRPO when no guidance is given): with hint_level ≡ −1 the rewards are unchanged and the
    advantages equal registry.get('grpo') with the same std convention, on ragged batches with garbage padding."""
    B, T = int(rng.integers(1, 14)), int(rng.integers(1, 6))
    group = rng.integers(-3, 3, size=B)
    rewards = (rng.random(B) < 0.3).astype(float)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    for ddof in (0, 1):
        cfg = ScafConfig(ddof=ddof, eps=1e-6)
        r2, hinted, adv = scaf_grpo(rewards, group, mask, np.full(B, -1), cfg)
        ref = registry.get("grpo")(rewards=rewards, group=group, mask=mask, config=registry.get("grpo").config(ddof=ddof))
        np.testing.assert_array_equal(r2, rewards)
        assert not hinted.any()
        np.testing.assert_allclose(adv, ref, rtol=1e-12, atol=1e-12)


@given(seeds())
def test_replaces_exactly_one_failure_only_in_all_zero_groups(rng):
    """§3.2 (intervention only on the learning cliff; G_final = (G ∖ {o_j}) ∪ {o*_h}): a group with a success is
    never touched whatever hint level it is given; an all-zero group with a hint gets exactly one row set to the
    success reward and flagged — the first of the group in batch order (code) — and one with level −1 stays."""
    P = int(rng.integers(1, 6))
    sizes = rng.integers(1, 7, size=P)
    group = np.repeat(np.arange(P) * 3 - 4, sizes)
    perm = rng.permutation(group.shape[0])
    group = group[perm]
    B = group.shape[0]
    rewards = np.where(np.repeat(rng.random(P) < 0.5, sizes)[perm], 0.0, (rng.random(B) < 0.5).astype(float))
    level = np.repeat(rng.integers(-1, 12, size=P), sizes)[perm]
    r2, hinted, _ = scaf_grpo(rewards, group, np.ones((B, 2), bool), level)
    for k in np.unique(group):
        rows = np.flatnonzero(group == k)
        if rewards[rows].any() or level[rows[0]] < 0:
            assert not hinted[rows].any() and np.array_equal(r2[rows], rewards[rows])
        else:
            assert hinted[rows].sum() == 1 and hinted[rows[0]] and r2[rows[0]] == 1.0
            assert np.array_equal(r2[rows[1:]], rewards[rows[1:]])


def test_random_replacement_is_uniform_and_immaterial():
    """Paper's 'random failed rollout' (replace='random'): the replaced row is uniform over the group (4000 seeded
    draws, G = 4, each position within 4.5 binomial s.d. of 1000: false-alarm rate < 1e-4 per position for a
    fair choice) and the advantages, as a function of the hinted flag, do not depend on which row was chosen."""
    G, n = 4, 4000
    rng = np.random.default_rng(0)
    counts = np.zeros(G)
    mask = np.ones((G, 1), bool)
    adv_first = scaf_grpo(np.zeros(G), np.zeros(G, int), mask, np.zeros(G, int))[2][:, 0]
    for _ in range(n):
        _, hinted, adv = scaf_grpo(np.zeros(G), np.zeros(G, int), mask, np.zeros(G, int), ScafConfig(replace="random"), rng)
        counts += hinted
        assert adv[hinted, 0][0] == adv_first[0] and np.all(adv[~hinted, 0] == adv_first[1])
    assert np.all(np.abs(counts - n / G) < 4.5 * math.sqrt(n * (1 / G) * (1 - 1 / G)))


def stand_in(threshold: int, config: ScafConfig):
    """Deterministic stand-ins: make_hint from parts, a 'policy' that echoes the hint and a verifier that accepts
    exactly the levels ≥ threshold. Returns (sample, verify, make_hint, calls)."""
    parts = {t: [f"{t[0]}{i}" for i in range(1, config.chunks + 1)] for t in config.tiers}
    make_hint = hints_from_parts(parts)
    ladder = hint_ladder(config.tiers, config.chunks)
    good = {make_hint(t, k) for i, (t, k) in enumerate(ladder) if i >= threshold}
    calls = []

    def sample(hint):
        calls.append(hint)
        return hint

    return sample, (lambda response: response in good), make_hint, calls


@given(st.integers(0, 12), st.sampled_from(["paper", "code"]))
def test_minimal_hint_is_first_success_on_the_ladder(threshold, tiers):
    """§3.2 / App. D.1 (minimal effective hint h*): the search returns the first level of the ladder at which the
    hinted sample is correct; the paper's sequential search stops there (threshold + 1 samples), the code's
    all-levels search samples every level once and keeps the same least successful level; with no successful
    level both return −1."""
    base = ScafConfig() if tiers == "paper" else ScafConfig(tiers=CODE_TIERS)
    L = len(hint_ladder(base.tiers, base.chunks))
    threshold = min(threshold, L)
    results = {}
    for search in ("sequential", "all-levels"):
        cfg = ScafConfig(tiers=base.tiers, search=search)
        sample, verify, make_hint, calls = stand_in(threshold, cfg)
        res = minimal_hint(sample, verify, make_hint, cfg)
        results[search] = (res.level, len(calls))
        if threshold < L:
            assert res.level == threshold and res.response == make_hint(*hint_ladder(cfg.tiers)[threshold])
        else:
            assert res.level == -1 and res.response is None
    assert results["sequential"][0] == results["all-levels"][0]
    assert results["sequential"][1] == min(threshold + 1, L) and results["all-levels"][1] == L


def test_hint_ladder_and_hint_text():
    """§3.2 (tiered hints, abstract → concrete, each split into incremental chunks): the paper's ladder is K1..K4,
    P1..P4, S1..S4 (the code's hint_level 1..12); the official code's active ladder skips Planning (8 levels);
    level (tier, k) shows the first k chunks of that tier only (code build_new_message), through the caller's
    formatter."""
    assert hint_ladder() == tuple((t, k) for t in ("knowledge", "planning", "solution") for k in (1, 2, 3, 4))
    assert hint_ladder(CODE_TIERS) == tuple((t, k) for t in ("knowledge", "solution") for k in (1, 2, 3, 4))
    parts = {"knowledge": ["a", "b", "c", "d"], "planning": ["p", "q"], "solution": ["x", "y", "z", "w"]}
    mk = hints_from_parts(parts)
    assert mk("planning", 2) == "Planning Hints: p q" and mk("solution", 1) == "Solution Hints: x"
    assert mk("planning", 4) == "Planning Hints: p q"  # fewer chunks than levels: the last text repeats
    custom = hints_from_parts(parts, lambda tier, chunks: f"<{tier}>" + "|".join(chunks))
    assert custom("knowledge", 3) == "<knowledge>a|b|c"


def brute_eligible(history, rewards, group, step, n_ex, true_hard):
    """Eligible ids by hand: past the exemption, group all zero, (history) never solved at an earlier step."""
    if step < n_ex:
        return set()
    solved_before = {k for r, g in history for k in set(g[r > 0].tolist())}
    zero = {k for k in set(group.tolist()) if not rewards[group == k].any()}
    return zero if true_hard == "any" else zero - solved_before


@given(seeds(), st.sampled_from([(40, None), (30, None), (20, 3), (7, 0)]), st.sampled_from(["history", "any"]))
def test_exemption_period_respected(rng, total_exempt, true_hard):
    """Phase 1 (guidance-exemption period): over a replayed run no hint is searched during the first
    ⌈0.15·T⌉ steps (paper) or the first exempt_steps steps (code: 50), and afterwards exactly the all-zero
    groups allowed by the true-hard rule are searched."""
    total, exempt_steps = total_exempt
    cfg = ScafConfig(exempt_steps=exempt_steps, true_hard=true_hard)
    n_ex = sum(100 * t < 15 * total for t in range(total)) if exempt_steps is None else exempt_steps  # t < 0.15·T
    state, history = init_state(), []
    for t in range(total):
        group = np.repeat(np.arange(5), 3)
        rewards = (rng.random(15) < np.repeat(rng.choice([0.0, 0.3], size=5), 3)).astype(float)
        called = []
        adv, state, info = scaf_step(state, rewards, group, np.ones((15, 2), bool), total,
                                     lambda pid, called=called: called.append(pid) or 0, cfg)
        assert set(called) == brute_eligible(history, rewards, group, t, n_ex, true_hard)
        if t < n_ex:
            assert not called and not info["hinted"].any()
        history.append((rewards, group))


def test_plateau_detector_gates_guidance():
    """Phase 1 (reconstructed detector): with window W = 2 and tol = 0, a run whose resolution rate goes
    0, 0.1, 0.2, 0.2, 0.2, ... (ten problems all failing, then problems 0 and 1 solved at steps 1 and 2) fires
    at step 4 (ρ_4 − ρ_2 = 0), and guidance starts at step 5 and stays on; with W = 0 it starts right after the
    exemption period."""
    cfg = ScafConfig(exempt_steps=1, plateau_window=2, plateau_tol=0.0)
    group = np.arange(10)
    state = init_state()
    active = []
    for t in range(8):
        rewards = np.zeros(10)
        if t in (1, 2):
            rewards[t - 1] = 1.0
        active.append(guidance_active(state, 100, cfg))
        state = update(state, rewards, group, cfg)
    np.testing.assert_allclose(state.rates, [0, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    assert state.plateau_step == 4
    assert active == [False] * 5 + [True] * 3
    assert [guidance_active(ScafState(step=t), 100, ScafConfig(exempt_steps=1)) for t in range(3)] == [False, True, True]


@given(seeds())
def test_update_is_pure_and_replays_a_run(rng):
    """Frozen state + pure update: replaying 25 random steps over 6 problems, the tracker's zero / solved /
    resolved sets and its resolution-rate history equal an independent tally kept here, and the state passed in
    is never changed (compared with a deep copy)."""
    state = init_state()
    zero, solved, resolved, rates = set(), set(), set(), []
    for _ in range(25):
        pids = rng.choice(6, size=int(rng.integers(1, 5)), replace=False)
        group = np.repeat(pids, 2)
        rewards = (rng.random(group.shape[0]) < 0.25).astype(float)
        before = copy.deepcopy(state)
        new = update(state, rewards, group)
        assert state == before
        for k in pids:
            if rewards[group == k].any():
                solved.add(int(k))
                if k in zero:
                    resolved.add(int(k))
        zero |= {int(k) for k in pids if not rewards[group == k].any()}
        rates.append(len(resolved) / len(zero) if zero else 0.0)
        assert (set(new.zero_ids), set(new.solved_ids), set(new.resolved_ids)) == (zero, solved, resolved)
        np.testing.assert_allclose(new.rates, rates)
        state = new
    assert state.step == 25


def test_true_hard_history_vs_any():
    """True-hard vs pseudo-hard (Phase 1): a problem solved once and failing again later is not searched under
    true_hard='history' (our reading of the paper) but is under 'any' (the official code: every all-zero group
    after the warm-up)."""
    group = np.array([0, 0, 1, 1])
    s = update(init_state(), np.array([1.0, 0.0, 0.0, 0.0]), group)
    later = np.zeros(4)
    assert set(eligible_groups(s, later, group, 10, ScafConfig(exempt_steps=1)).tolist()) == {1}
    assert set(eligible_groups(s, later, group, 10, ScafConfig(exempt_steps=1, true_hard="any")).tolist()) == {0, 1}


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_hinted_rollout_is_on_policy_ratio_one():
    """Eq. 4 (on-policy integrity): o*_h is drawn from the current π_θ(·|q ⊕ h*); scored on q ⊕ h* in both
    numerator and denominator its first-step ratio is exactly 1, so the registry PPO gradient on it is −Â/n;
    scored on q instead (the mismatch of App. F.5) its log-prob differs, so the ratio would not be 1."""
    theta = np.array([-3.0, 0.5, 0.0, 1.0])
    shift = np.array([4.0, 0.0, 0.0, 0.0])  # the hint raises the correct answer's logit
    o_star = 0
    logp_hint = np.log(softmax(theta + shift))[o_star]
    logp_plain = np.log(softmax(theta))[o_star]
    G = 4
    _, hinted, adv = scaf_grpo(np.zeros(G), np.zeros(G, int), np.ones((G, 1), bool), np.zeros(G, int))
    logp = np.full((G, 1), -1.0)
    logp[hinted, 0] = logp_hint
    old = logp.copy()  # π_old = π_θ at the first inner step, same (hinted) context
    loss, dlogp = registry.get("ppo")(logp=logp, old_logp=old, adv=adv, mask=np.ones((G, 1), bool))
    np.testing.assert_allclose(dlogp, -adv / G, atol=1e-15)
    assert abs(logp_hint - logp_plain) > 1.0


def test_composition_grpo_ppo():
    """Composition: on an all-zero group GRPO's advantages and hence registry PPO's gradient are exactly zero (the
    learning cliff); after scaf_grpo's replacement the same group gets a non-zero gradient that raises the hinted
    success and lowers the failures, while a group with a success is unaffected."""
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rewards = np.array([0, 0, 0, 0, 1, 0, 0, 1], float)
    mask = np.ones((8, 3), bool)
    level = np.array([2, 2, 2, 2, -1, -1, -1, -1])
    logp = np.full((8, 3), -0.7)
    ppo = registry.get("ppo")
    adv0 = registry.get("grpo")(rewards=rewards, group=group, mask=mask)
    _, d0 = ppo(logp=logp, old_logp=logp.copy(), adv=adv0, mask=mask)
    assert np.all(d0[:4] == 0.0)
    _, hinted, adv = scaf_grpo(rewards, group, mask, level)
    _, d1 = ppo(logp=logp, old_logp=logp.copy(), adv=adv, mask=mask)
    assert np.all(d1[hinted] < 0) and np.all(d1[:4][~hinted[:4]] > 0)
    np.testing.assert_allclose(d1[4:], d0[4:], atol=1e-15)


def run_bandit(scaffold: bool, steps: int = 40, seed: int = 0) -> float:
    """Softmax bandit, 5 answers, answer 0 correct, π_0 ≈ 8e-5 at start; hint level ℓ adds ℓ+1 to answer 0's
    logit. One prompt, G = 8 per step, exact tabular policy gradient of the GRPO/Scaf advantages (on-policy).
    Returns π(correct | q) after ``steps`` steps."""
    rng = np.random.default_rng(seed)
    theta = np.array([-8.0, 0.0, 0.0, 0.0, 0.0])
    G, lr = 8, 5.0
    cfg = ScafConfig(exempt_steps=0)
    state = init_state()
    ladder = hint_ladder()
    for _ in range(steps):
        pi = softmax(theta)
        actions = rng.choice(5, size=G, p=pi)
        rewards = (actions == 0).astype(float)
        found = {}

        def search(pid, theta=theta, found=found):
            for level in range(len(ladder)):
                a = rng.choice(5, p=softmax(theta + (level + 1) * np.eye(5)[0]))
                if a == 0:
                    found["level"] = level
                    return level
            return -1

        adv, state, info = scaf_step(state, rewards, np.zeros(G, int), np.ones((G, 1), bool), steps,
                                     search if scaffold else (lambda pid: -1), cfg)
        grad = np.zeros(5)
        for i in range(G):
            if info["hinted"][i]:
                ctx_pi, a = softmax(theta + (found["level"] + 1) * np.eye(5)[0]), 0
            else:
                ctx_pi, a = pi, actions[i]
            grad += adv[i, 0] * (np.eye(5)[a] - ctx_pi) / G
        theta = theta + lr * grad
    return float(softmax(theta)[0])


def test_learning_cliff_bandit():
    """Notes §16 CPU experiment (the 'learning cliff'): on a bandit whose correct answer the policy almost never
    samples, plain GRPO gets all-zero groups and its policy stays at the cliff (π(correct) < 0.01 after 40 steps),
    while Scaf-GRPO's hinted on-policy successes lift π(correct | q) — WITHOUT the hint — above 0.5. Seeded run
    (seed 0), deterministic."""
    assert run_bandit(scaffold=False) < 0.01
    assert run_bandit(scaffold=True) > 0.5


def test_bad_input_raises():
    """Bad input names the argument: non-binary rewards, per-group inconsistent or out-of-ladder hint levels, a
    random replacement without an rng, a wrong state, bad config values."""
    ok = dict(rewards=np.zeros(4), group=np.zeros(4, int), mask=np.ones((4, 2), bool), hint_level=np.zeros(4, int))
    for key, bad in (("rewards", np.array([0.0, 0.5, 0, 0])), ("hint_level", np.array([0, 1, 0, 0])),
                     ("hint_level", np.full(4, 12)), ("hint_level", np.full(4, -2)), ("mask", np.ones(4, bool)),
                     ("group", np.zeros(3, int))):
        with pytest.raises(RLSpecValueError, match=key):
            scaf_grpo(**{**ok, key: bad})
    with pytest.raises(RLSpecValueError, match="rng"):
        scaf_grpo(**ok, config=ScafConfig(replace="random"))
    with pytest.raises(RLSpecValueError, match="state"):
        update({"step": 0}, np.zeros(2), np.zeros(2, int))
    with pytest.raises(RLSpecValueError, match="total_steps"):
        guidance_active(init_state(), 0)
    for field, value in (("exempt_frac", 1.5), ("chunks", 0), ("search", "beam"), ("ddof", 2), ("tiers", ()),
                         ("plateau_window", -1), ("true_hard", "x")):
        with pytest.raises(RLSpecValueError, match=field):
            ScafConfig(**{field: value})

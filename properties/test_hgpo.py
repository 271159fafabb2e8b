"""Properties of HGPO (arXiv 2602.22817): hierarchy-of-groups step advantages for multi-turn agents.

Level-k groups collect the steps of one env group whose last k+1 states agree; A_k is the group z-score of
the step return; A^H = Σ_k w_k A_k with w_k ∝ (k+1)^α over the levels that carry a signal (equations from
our notes, papers_B.md §15). Expected values are built here from the raw inputs (pairwise comparisons of
state histories, np.mean / np.std), never taken from the module under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.strategies import groups, ragged_mask, seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.grpo import GRPOConfig, grpo_advantage
from rlspec.reference.hgpo import HGPOConfig, discounted_returns, hgpo_advantage, hierarchy_of


# --------------------------------------------------------------------------- batches
@st.composite
def agent_batches(draw, max_groups: int = 3, max_traj: int = 4, max_len: int = 5):
    """Env groups of trajectories over few states (anchor states and histories collide), rows shuffled."""
    rng = draw(seeds())
    n_states = int(rng.integers(1, 4))
    state, traj, step, group = [], [], [], []
    tid = 0
    for g in rng.choice(np.arange(-9, 10), size=int(rng.integers(1, max_groups + 1)), replace=False):
        for _ in range(int(rng.integers(1, max_traj + 1))):
            n = int(rng.integers(1, max_len + 1))
            state += [0] + list(rng.integers(0, n_states, size=n - 1))
            traj += [tid] * n
            step += list(range(n))
            group += [int(g)] * n
            tid += 1
    B = len(state)
    order = rng.permutation(B)
    R = rng.integers(-2, 3, size=B) / 2.0 if rng.random() < 0.5 else rng.normal(scale=2.0, size=B)
    return {"rewards": R, "group": np.asarray(group)[order], "mask": ragged_mask(rng, B, int(rng.integers(1, 4))),
            "state": np.asarray(state)[order], "traj": np.asarray(traj)[order], "step": np.asarray(step)[order]}


configs = st.builds(HGPOConfig, K=st.integers(0, 4), alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
                    eps=st.sampled_from([0.0, 1e-6]), std_normalize=st.booleans(), ddof=st.sampled_from([0, 1]),
                    zero_levels=st.sampled_from(["skip", "keep"]))


def history(b, k):
    """(s_t, s_{t-1}, …, s_{t-k}) of row b read directly from the arrays, or None if t < k."""
    rows = {(int(t), int(n)): i for i, (t, n) in enumerate(zip(b["traj"], b["step"]))}

    def h(i):
        t, n = int(b["traj"][i]), int(b["step"][i])
        return None if n < k else tuple(int(b["state"][rows[(t, n - j)]]) for j in range(k + 1))
    return h


def members(b, k):
    """Level-k group of each row as a set of rows, by pairwise comparison (empty set where t < k)."""
    h = history(b, k)
    H = [h(i) for i in range(len(b["rewards"]))]
    return [set() if H[i] is None else {j for j in range(len(H)) if H[j] == H[i] and b["group"][j] == b["group"][i]}
            for i in range(len(H))]


def brute_force(b, cfg: HGPOConfig) -> np.ndarray:
    """A^H per row from the definitions, with plain numpy."""
    R = b["rewards"]
    out = np.zeros(len(R))
    levels = [members(b, k) for k in range(cfg.K + 1)]
    for i in range(len(R)):
        num = den = 0.0
        for k in range(cfg.K + 1):
            G = sorted(levels[k][i])
            if len(G) < 2:
                continue
            Rg = R[G]
            c = R[i] - Rg.mean()
            if Rg.min() == Rg.max() or abs(c) <= 1e-12 * np.abs(Rg).max():
                c = 0.0
            a = c / (Rg.std(ddof=cfg.ddof) + cfg.eps) if (cfg.std_normalize and c != 0.0) else c
            if cfg.zero_levels == "skip" and a == 0.0:
                continue
            num += (k + 1) ** cfg.alpha * a
            den += (k + 1) ** cfg.alpha
        out[i] = num / den if den > 0 else 0.0
    return out


def full(b):
    return dict(b, mask=np.ones((len(b["rewards"]), 1), bool))


# --------------------------------------------------------------------------- structure
@given(b=agent_batches(), K=st.integers(1, 4))
def test_groups_are_nested(b, K):
    """Hierarchical grouping (§4): G_0 ⊇ G_1 ⊇ … ⊇ G_K for every step; a step with a level-(k+1) group has a
    level-k group; and every level-k group is exactly the set of steps sharing the last k+1 states."""
    ids = hierarchy_of(**full(b), config=HGPOConfig(K=K))["ids"]
    for k in range(K + 1):
        expected = members(b, k)
        for i in range(len(ids)):
            got = set(np.flatnonzero(ids[:, k] == ids[i, k])) if ids[i, k] >= 0 else set()
            assert got == expected[i]
            if k < K and ids[i, k + 1] >= 0:
                assert ids[i, k] >= 0
                assert set(np.flatnonzero(ids[:, k + 1] == ids[i, k + 1])) <= got


@given(b=agent_batches(), cfg=configs)
def test_weights_sum_to_one_and_grow_with_depth(b, cfg):
    """Adaptive weights (§4): over the levels used by a step, Σ_k w_k = 1 (0 for a step with no level);
    w_k ∝ (k+1)^α, so strictly increasing in k for α > 0 and uniform for α = 0; unused levels weigh 0."""
    h = hierarchy_of(**full(b), config=cfg)
    w, used = h["w"], h["used"]
    assert (w[~used] == 0).all() and (w >= 0).all()
    total = w.sum(axis=1)
    np.testing.assert_allclose(total[used.any(axis=1)], 1.0, rtol=0, atol=1e-12)
    assert (total[~used.any(axis=1)] == 0).all()
    for i in range(len(w)):
        ks = np.flatnonzero(used[i])
        if len(ks) > 1:
            d = np.diff(w[i, ks])
            assert (d > 0).all() if cfg.alpha > 0 else np.allclose(d, 0.0, atol=1e-15)
            np.testing.assert_allclose(w[i, ks] / w[i, ks[0]], ((ks + 1) / (ks[0] + 1)) ** cfg.alpha, rtol=1e-12)


@settings(max_examples=60)
@given(b=agent_batches(), cfg=configs)
def test_matches_brute_force(b, cfg):
    """Eq. 2-4 together: HGPO equals a pairwise construction of the nested groups, per-level advantages and
    renormalised (k+1)^α weights, broadcast over each step's valid tokens."""
    A = hgpo_advantage(**b, config=cfg)
    expected = brute_force(b, cfg)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(np.where(b["mask"], A, 0.0), np.where(b["mask"], expected[:, None], 0.0),
                               rtol=1e-10, atol=1e-10 * scale)
    assert (A[~b["mask"]] == 0).all()


# --------------------------------------------------------------------------- limits
@given(rng=seeds(), B=st.integers(1, 12), ddof=st.sampled_from([0, 1]), eps=st.sampled_from([0.0, 1e-6]),
       std=st.booleans(), explicit=st.booleans())
def test_one_step_episodes_are_grpo(rng, B, ddof, eps, std, explicit):
    """Parent method (GRPO) in its limit: when every trajectory is one step from its group's initial state
    (or state/traj/step are not given), level 0 is the prompt group, no deeper level exists, and HGPO equals
    GRPO (Dr. GRPO without the std) with the same ddof and ε, for any K and α."""
    R = rng.integers(0, 3, size=B) / 2.0 if rng.random() < 0.5 else rng.normal(size=B)
    g, M = groups(rng, B), ragged_mask(rng, B, 3)
    extra = {"state": np.full(B, 7), "traj": np.arange(B) * 3, "step": np.zeros(B, int)} if explicit else {}
    cfg = HGPOConfig(K=int(rng.integers(0, 4)), alpha=float(rng.choice([0.0, 1.0, 2.0])), eps=eps, ddof=ddof,
                     std_normalize=std)
    A = hgpo_advantage(R, g, M, config=cfg, **extra)
    ref = grpo_advantage(R, g, M, config=GRPOConfig(ddof=ddof, eps=eps, std_normalize=std))
    np.testing.assert_allclose(A, ref, rtol=1e-10, atol=1e-10)


@given(b=agent_batches(), ddof=st.sampled_from([0, 1]), std=st.booleans())
def test_K0_is_gigpo_anchor_state_advantage(b, ddof, std):
    """K = 0 ⇒ HGPO = GiGPO's step-level advantage: the z-score of the return among the env group's steps
    with the same anchor state (state only, history ignored); lone anchor states get 0."""
    cfg = HGPOConfig(K=0, ddof=ddof, std_normalize=std, eps=1e-6)
    A = hgpo_advantage(**full(b), config=cfg)[:, 0]
    R = b["rewards"]
    for i in range(len(R)):
        G = (b["group"] == b["group"][i]) & (b["state"] == b["state"][i])
        Rg = R[G]
        if G.sum() < 2 or Rg.min() == Rg.max():
            assert A[i] == 0.0
            continue
        c = R[i] - Rg.mean()
        exp = c / (Rg.std(ddof=ddof) + 1e-6) if std else c
        assert A[i] == pytest.approx(exp, rel=1e-9, abs=1e-9 * max(1.0, abs(R).max()))


@given(rng=seeds(), cfg=configs)
def test_identical_histories_give_level0(rng, cfg):
    """Identical histories at all levels ⇒ A^H = A_0: when within an env group every trajectory visits the same
    state sequence, each G_k equals G_0 restricted to steps with t ≥ k, which is G_0 itself at any fixed step,
    so every used level carries the same advantage and the weighted mean returns it."""
    n_g, n_traj, n = int(rng.integers(1, 3)), int(rng.integers(2, 5)), int(rng.integers(1, 5))
    b = {"state": [], "traj": [], "step": [], "group": []}
    for gi in range(n_g):
        seq = [0] + list(rng.permutation(10)[: n - 1] + 1)  # distinct states along the path
        for j in range(n_traj):
            b["state"] += seq
            b["traj"] += [gi * 10 + j] * n
            b["step"] += list(range(n))
            b["group"] += [gi] * n
    b = {k: np.asarray(v) for k, v in b.items()}
    B = len(b["state"])
    b["rewards"] = rng.normal(size=B)
    b["mask"] = ragged_mask(rng, B, 2)
    A = hgpo_advantage(**b, config=cfg)
    A0 = hgpo_advantage(**b, config=HGPOConfig(K=0, eps=cfg.eps, ddof=cfg.ddof, std_normalize=cfg.std_normalize))
    np.testing.assert_allclose(A, A0, rtol=1e-12, atol=1e-12)


@given(b=agent_batches(), cfg=configs)
def test_aggregate_is_convex_combination(b, cfg):
    """Prop. 4.1's mechanism, pointwise: A^H is a convex combination of the per-level advantages it uses, so
    min_k A_k ≤ A^H ≤ max_k A_k over those levels (hence, in expectation with fixed weights, its bias lies
    between the level-0 and level-K biases when those are ordered)."""
    h = hierarchy_of(**full(b), config=cfg)
    AH = hgpo_advantage(**full(b), config=cfg)[:, 0]
    for i in range(len(AH)):
        ks = np.flatnonzero(h["used"][i])
        if len(ks) == 0:
            assert AH[i] == 0.0
            continue
        lo, hi = h["A"][i, ks].min(), h["A"][i, ks].max()
        tol = 1e-12 * max(1.0, abs(lo), abs(hi))
        assert lo - tol <= AH[i] <= hi + tol


def aliased_chain_errors(alpha: float, zero_levels: str):
    """Exact enumeration of an aliased-state problem: N = 4 trajectories s_0 = 0 → s_1 ∈ {1, 2} (each ½) →
    s_2 = 3 (the same observation whatever the history), return R = μ(s_1) + z, μ = ±1, z = ±1 (each ½).
    The target is trajectory 0's step 2 given s_1 = 1; its true advantage is R − μ(1) = z. Returns the
    errors Â − z of A_0, A_1 and A^H (K = 1, mean-centred) over the 128 equally likely outcomes."""
    mu, N, rows = {1: 1.0, 2: -1.0}, 4, []
    cfg = HGPOConfig(K=1, alpha=alpha, std_normalize=False, zero_levels=zero_levels)
    for combo in itertools.product([1, 2], [-1.0, 1.0], repeat=N):
        s1, z = combo[0::2], combo[1::2]
        if s1[0] != 1:
            continue
        b = {"state": [], "traj": [], "step": [], "rewards": []}
        for i in range(N):
            for t, s in enumerate((0, s1[i], 3)):
                b["state"].append(s), b["traj"].append(i), b["step"].append(t)
                b["rewards"].append(mu[s1[i]] + z[i])
        b = {k: np.asarray(v) for k, v in b.items()}
        b.update(group=np.zeros(3 * N, int), mask=np.ones((3 * N, 1), bool))
        h = hierarchy_of(**b, config=cfg)
        target, true = 2, z[0]  # row 2 = trajectory 0, step 2
        rows.append((h["A"][target, 0] - true, h["A"][target, 1] - true,
                     hgpo_advantage(**b, config=cfg)[target, 0] - true))
    return np.asarray(rows)


@pytest.mark.parametrize("zero_levels", ["skip", "keep"])
def test_prop41_bias_between_levels_on_aliased_chain(zero_levels):
    """Prop. 4.1 (bias part), on an exactly enumerated problem whose preconditions hold (checked first): the
    level-0 group mixes histories (bias 3/4), the level-1 group does not (bias 0) but is smaller (larger
    error variance, E[1/n] = 15/32 vs 7/16). The aggregated estimator's bias lies strictly between the two,
    and moves toward the deeper level as α grows (α = 0, 1, 2)."""
    e0, e1, _ = aliased_chain_errors(1.0, zero_levels).T
    assert e0.mean() == pytest.approx(0.75, abs=1e-12) and e1.mean() == pytest.approx(0.0, abs=1e-12)
    assert e0.var() == pytest.approx(7 / 16, abs=1e-12) and e1.var() == pytest.approx(15 / 32, abs=1e-12)
    biases = [aliased_chain_errors(a, zero_levels)[:, 2].mean() for a in (0.0, 1.0, 2.0)]
    assert all(0.0 < bH < 0.75 for bH in biases)
    assert biases[0] > biases[1] > biases[2]


# --------------------------------------------------------------------------- pieces and plumbing
@given(rng=seeds(), gamma=st.sampled_from([0.0, 0.5, 0.95, 1.0]))
def test_discounted_returns(rng, gamma):
    """Eq. 1: R_t = Σ_{j ≥ t} γ^{j−t} r_j within each trajectory, whatever the row order."""
    lens = rng.integers(1, 6, size=int(rng.integers(1, 4)))
    traj = np.concatenate([np.full(n, i) for i, n in enumerate(lens)])
    step = np.concatenate([np.arange(n) for n in lens])
    r = rng.normal(size=len(traj))
    order = rng.permutation(len(traj))
    R = discounted_returns(r[order], traj[order], step[order], gamma)
    for b, (t, n) in enumerate(zip(traj[order], step[order])):
        later = (traj == t) & (step >= n)
        assert R[b] == pytest.approx(sum(r[later] * gamma ** (step[later] - n)), abs=1e-12)


@given(b=agent_batches())
def test_masked_positions_and_permutation(b):
    """The mask only shapes the broadcast (returns of fully masked steps still count); permuting the rows
    permutes the output; relabelling states, trajectories and groups changes nothing."""
    A = hgpo_advantage(**b)
    Afull = hgpo_advantage(**full(b))[:, 0]
    np.testing.assert_array_equal(A, np.where(b["mask"], Afull[:, None], 0.0))
    p = np.random.default_rng(0).permutation(len(b["rewards"]))
    perm = {k: v[p] for k, v in b.items()}
    np.testing.assert_allclose(hgpo_advantage(**perm), A[p], rtol=1e-12, atol=1e-12)
    relabel = dict(b, state=b["state"] * 7 + 3, traj=b["traj"] * 5 - 100, group=b["group"] * 3 + 1)
    np.testing.assert_allclose(hgpo_advantage(**relabel), A, rtol=1e-12, atol=1e-12)


@given(b=agent_batches())
def test_feeds_ppo(b):
    """Composition: HGPO's advantages fed to the registry's PPO loss; on-policy (logp = old_logp) the gradient
    weight of every valid token is −A^H times its token-mean coefficient 1/Σ mask."""
    adv = registry.get("hgpo")(**b)
    logp = np.where(b["mask"], -1.0, np.nan)
    loss, dlogp = registry.get("ppo")(logp=logp, old_logp=logp, adv=adv, mask=b["mask"])
    n = b["mask"].sum()
    expected = np.where(b["mask"], -adv / max(n, 1), 0.0)
    np.testing.assert_allclose(dlogp, expected, rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(-(adv * b["mask"]).sum() / max(n, 1), abs=1e-12)


def test_bad_input_raises():
    """Bad input names the argument: traj without step, duplicated / gapped steps, a trajectory in two env
    groups, float ids, wrong shapes, a bad config."""
    R, g, M = np.zeros(4), np.zeros(4, int), np.ones((4, 2), bool)
    with pytest.raises(RLSpecValueError, match="step"):
        hgpo_advantage(R, g, M, traj=np.arange(4))
    with pytest.raises(RLSpecValueError, match="step"):
        hgpo_advantage(R, g, M, traj=np.array([0, 0, 1, 1]), step=np.array([0, 2, 0, 1]))
    with pytest.raises(RLSpecValueError, match="step"):
        hgpo_advantage(R, g, M, traj=np.array([0, 0, 1, 1]), step=np.array([0, 0, 0, 1]))
    with pytest.raises(RLSpecValueError, match="traj"):
        hgpo_advantage(R, np.array([0, 1, 1, 1]), M, traj=np.array([0, 0, 1, 1]), step=np.array([0, 1, 0, 1]))
    with pytest.raises(RLSpecValueError, match="state"):
        hgpo_advantage(R, g, M, state=np.array([0.5, 1, 2, 3]))
    with pytest.raises(RLSpecValueError, match="state"):
        hgpo_advantage(R, g, M, state=np.zeros(3, int))
    with pytest.raises(RLSpecValueError, match="rewards"):
        hgpo_advantage(np.array([0, np.nan, 0, 0]), g, M)
    for bad in ({"K": -1}, {"alpha": -1.0}, {"ddof": 2}, {"zero_levels": "drop"}, {"eps": np.inf}):
        with pytest.raises(RLSpecValueError):
            HGPOConfig(**bad)
    with pytest.raises(RLSpecValueError, match="gamma"):
        discounted_returns(np.zeros(2), np.zeros(2, int), np.arange(2), gamma=1.5)

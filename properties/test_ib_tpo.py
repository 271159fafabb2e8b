"""Properties of IB-TPO (Information-Bottleneck driven Tree-based Policy Optimization, arXiv 2605.28109).

Tree bookkeeping (the budget identity G = B0 + (L − 1)KB, prefix sharing of tokens, the tree's success estimates),
the step advantages (A_GL(root) = 0 and its sign), the IB-Score's moment decomposition and the unbiasedness of its
Monte Carlo estimate over i.i.d. children (exact enumeration), and the per-step chain-rule decomposition of the IB
objective on exact trees. Expected values are written from the definitions here (path walks, numpy moments,
enumeration), never read back from the code under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.ib_tpo import (
    IBTPOConfig,
    IBTreeConfig,
    _advantage_inputs,
    _random_forest,
    _score_inputs,
    ib_objective,
    ib_score,
    ib_tpo_advantage,
    ib_tpo_score,
    ib_tpo_signals,
    ibtree_grow,
    select_top_k,
    token_budget,
    tree_values,
)

GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def path(parent, s):
    out = []
    while s >= 0:
        out.append(int(s))
        s = parent[s]
    return out


def p_hat_by_hand(parent, leaf, R):
    tot, cnt = np.zeros(parent.size), np.zeros(parent.size)
    for b, lf in enumerate(leaf):
        for s in path(parent, lf):
            tot[s] += R[b]
            cnt[s] += 1
    return tot / cnt, cnt


def root(parent, s):
    return path(parent, s)[-1]


@given(seeds())
def test_root_estimate_is_mean_reward(rng):
    """Method: p̂(a*|q) at a query is the mean reward of the tree's trajectories (the group's success rate)."""
    inp = _advantage_inputs(rng)
    p, cnt = tree_values(inp["parent"], inp["leaf"], inp["rewards"])
    for q in np.flatnonzero(inp["parent"] < 0):
        rows = [b for b, lf in enumerate(inp["leaf"]) if root(inp["parent"], lf) == q]
        assert p[q] == pytest.approx(np.mean(inp["rewards"][rows]), abs=1e-12) and cnt[q] == len(rows)


@given(seeds())
def test_estimates_are_consistent(rng):
    """Law of total probability on the tree: trajectories end only at leaves, so for an inner node
    n(s)·p̂(s) = Σ_children n(c)·p̂(c) and n(s) = Σ_children n(c); and p̂ matches a path walk."""
    inp = _advantage_inputs(rng)
    par = inp["parent"]
    p, cnt = tree_values(par, inp["leaf"], inp["rewards"])
    ph, ch = p_hat_by_hand(par, inp["leaf"], inp["rewards"])
    np.testing.assert_allclose(p, ph, rtol=1e-13)
    for s in np.unique(par[par >= 0]):
        kids = np.flatnonzero(par == s)
        assert cnt[s] == cnt[kids].sum()
        assert cnt[s] * p[s] == pytest.approx(float(cnt[kids] @ p[kids]), abs=1e-12)


def by_hand(inp, cfg: IBTPOConfig):
    """Step advantages from the definitions: p̂ by path walks, ρ = p̂/p̂(parent), A_GL with the tree's reward std."""
    par, leaf, R, pr = inp["parent"], inp["leaf"], inp["rewards"], inp["pi_ref"]
    p, _ = p_hat_by_hand(par, leaf, R)
    A = np.zeros(par.size)
    for s in range(par.size):
        if par[s] < 0:
            continue
        q = root(par, s)
        Rq = np.array([R[b] for b, lf in enumerate(leaf) if root(par, lf) == q])
        gl = 0.0 if np.ptp(Rq) == 0 else (p[s] - p[q]) / (Rq.std(ddof=cfg.ddof) + cfg.eps)
        rho = p[s] / p[par[s]] if p[par[s]] > 0 else cfg.zero_parent_ratio
        A[s] = gl + cfg.lam * (rho - 1 - 1 / cfg.beta) * pr[s]
    return A, p


@given(seeds(), st.sampled_from([IBTPOConfig(), IBTPOConfig(beta=2.0, lam=0.5, ddof=1, zero_parent_ratio=0.0)]))
def test_advantage_matches_definition(rng, cfg):
    """Method: each valid token of step s gets A(s) = A_GL(s) + λ (ρ(s) − (1 + 1/β)) π_ref(s); masked tokens and node −1
    get 0."""
    inp = _advantage_inputs(rng)
    adv = ib_tpo_advantage(**inp, config=cfg)
    A, _ = by_hand(inp, cfg)
    m, nd = inp["mask"], inp["node"]
    for b, t in np.argwhere(m):
        assert adv[b, t] == pytest.approx(A[nd[b, t]] if nd[b, t] >= 0 else 0.0, abs=1e-10)
    assert np.all(adv[~m] == 0.0)


@given(seeds())
def test_global_advantage_root_zero_and_sign(rng):
    """Method, global advantage: A_GL(q) = 0 at the root; A_GL(s) = 0 iff p̂(s) = p̂(q); sign A_GL(s) = sign(p̂(s) − p̂(q))
    (for a tree whose rewards are not all equal)."""
    inp = _advantage_inputs(rng)
    sig = ib_tpo_signals(**inp)
    par = inp["parent"]
    p, _ = p_hat_by_hand(par, inp["leaf"], inp["rewards"])
    assert np.all(sig["a_gl"][par < 0] == 0.0) and np.all(sig["step_adv"][par < 0] == 0.0)
    for s in np.flatnonzero(par >= 0):
        q = root(par, s)
        Rq = [inp["rewards"][b] for b, lf in enumerate(inp["leaf"]) if root(par, lf) == q]
        if np.ptp(Rq) == 0:
            assert sig["a_gl"][s] == 0.0
        else:
            assert np.sign(sig["a_gl"][s]) == np.sign(round(p[s] - p[q], 12))


def random_exact_tree(rng, n_inner: int):
    """An exact tree: parent (N,), π(c|parent) normalised over each node's children, p(a*|leaf) in (0, 1)."""
    parent = [-1]
    frontier = [0]
    while frontier and len(parent) < 30:
        s = frontier.pop(0)
        k = int(rng.integers(2, 4)) if n_inner > 0 else 0
        n_inner -= 1
        for _ in range(k):
            parent.append(s)
            frontier.append(len(parent) - 1)
    par = np.array(parent)
    pi = np.zeros(par.size)
    for s in np.unique(par[par >= 0]):
        kids = np.flatnonzero(par == s)
        w = rng.gamma(1.0, size=kids.size)
        pi[kids] = w / w.sum()
    return par, pi, rng.uniform(0.01, 0.99, size=par.size)


@settings(max_examples=50)
@given(seeds(), st.integers(1, 5), st.floats(0.2, 10.0))
def test_objective_decomposes_per_step(rng, n_inner, beta):
    """IB objective: J_IB(τ) = (β + 1) H(τ|q) − β H(τ|a*, q) is a sum of step-level terms (chain rule over the tree): the
    per-node terms returned by ib_objective add up to the trajectory-level value computed here by enumerating the
    leaves (P(τ) = Π π along the path, P(τ|a*) = P(τ) p(a*|τ)/P(a*))."""
    par, pi, pc = random_exact_tree(rng, n_inner)
    inner = np.zeros(par.size, bool)
    inner[par[par >= 0]] = True
    leaves = np.flatnonzero(~inner)
    P = np.array([np.prod([pi[s] for s in path(par, lf) if par[s] >= 0]) for lf in leaves])
    pa = pc[leaves]
    Pa = P * pa / (P @ pa)
    H = -np.sum(P * np.log(P))
    Ha = -np.sum(Pa * np.log(Pa))
    J, terms = ib_objective(par, pi, pc, beta)
    assert J == pytest.approx((beta + 1) * H - beta * Ha, abs=1e-10)
    assert terms.sum() == pytest.approx(J, abs=1e-12) and np.all(terms[~inner] == 0.0)


@given(seeds(), st.floats(0.5, 10.0))
def test_score_decomposition(rng, beta):
    """IB-Score: (1 + β)/B Σ_b η1(s^b) η2(s^b) = (1 + β)[Cov(η1, η2) + mean(η1)·mean(η2)] (population moments over the
    node's children), η1 = p̂(c)/p̂(s) − (1 + 1/β), η2 = π_θ(c)."""
    inp = _score_inputs(rng)
    par = inp["parent"]
    p, score, eligible = ib_tpo_score(**inp, config=IBTreeConfig(beta=beta))
    for s in np.flatnonzero(eligible):
        kids = np.flatnonzero(par == s)
        rho = p[kids] / p[s] if p[s] > 0 else np.ones(kids.size)
        e1, e2 = rho - (1 + 1 / beta), inp["pi"][kids]
        cov = np.mean((e1 - e1.mean()) * (e2 - e2.mean()))
        assert score[s] == pytest.approx((1 + beta) * (cov + e1.mean() * e2.mean()), abs=1e-12)
    assert np.all(score[~eligible] == 0.0)


@settings(max_examples=40)
@given(seeds(), st.integers(2, 3), st.integers(1, 3), st.floats(0.5, 8.0))
def test_score_estimator_unbiased(rng, m, B, beta):
    """IB-Score Monte Carlo estimate: with B children drawn i.i.d. from π over m candidate steps and exact p(a*|·), the
    expectation of the node's IB-Score over all m^B draws is (1 + β) Σ_c π(c)² η1(c) — the 'Σ_b π_b² η1' form of our
    Tsallis-2 reading (module docstring). Exact enumeration."""
    pi = rng.gamma(1.0, size=m)
    pi /= pi.sum()
    pc = rng.uniform(0.05, 0.95, size=m)
    p_parent = float(pi @ pc)
    want = (1 + beta) * float(np.sum(pi**2 * (pc / p_parent - 1 - 1 / beta)))
    got = 0.0
    for draw in itertools.product(range(m), repeat=B):
        par = np.array([-1] + [0] * B)
        p_hat = np.concatenate([[p_parent], pc[list(draw)]])
        got += np.prod(pi[list(draw)]) * ib_score(p_hat, par, np.concatenate([[1.0], pi[list(draw)]]), beta)[0]
    assert got == pytest.approx(want, abs=1e-12)


@given(seeds(), st.integers(0, 5))
def test_top_k_selects_highest(rng, K):
    """IBTree selective branching: the chosen nodes are the K eligible nodes of highest score (ties to the lower id),
    fewer if fewer are eligible; leaves are never chosen."""
    score = np.round(rng.normal(size=12), 1)
    eligible = rng.random(12) < 0.6
    pick = select_top_k(score, eligible, K)
    cand = sorted(np.flatnonzero(eligible), key=lambda j: (-score[j], j))
    assert list(pick) == cand[:K]


def stand_in_sampler(max_depth: int = 4, min_depth: int = 2):
    """A deterministic-given-rng toy 'model': continuations of min..max steps, 1–5 tokens each, π ∈ (0.1, 1), reward 1
    with probability 0.4 + 0.1·(number of 'good' steps on the path)."""
    def sample(prefix, rng):
        d = int(rng.integers(min_depth, max_depth + 1))
        steps = [(("good" if rng.random() < 0.5 else "bad"), int(rng.integers(1, 6)), float(rng.uniform(0.1, 1.0)))
                 for _ in range(d)]
        good = sum(s == "good" for s in prefix) + sum(s[0] == "good" for s in steps)
        return steps, float(rng.random() < min(0.4 + 0.1 * good, 1.0))
    return sample


@settings(max_examples=25)
@given(seeds(), st.integers(1, 5), st.integers(1, 9), st.integers(0, 3), st.integers(1, 3))
def test_budget_identity(rng, B0, L, K, B):
    """IBTree budget: B0 + (L − 1)·K·B trajectories when every round has ≥ K non-leaf nodes (rollouts of ≥ 2 steps
    give ≥ 1 + B0 of them); each round branches exactly the top-K nodes of the IB-Score of the tree grown so far
    (recomputed here from the tree's prefix by path walks and the definition of the score)."""
    K = min(K, B0 + 1)
    cfg = IBTreeConfig(B0=B0, L=L, K=K, B=B)
    tree = ibtree_grow("q", stand_in_sampler(), rng, cfg)
    assert tree.leaf.size == B0 + (L - 1) * K * B == tree.rewards.size
    G = B0
    for pick in tree.selected:
        N = int(tree.leaf[G - 1]) + 1  # nodes are created in order: the tree before this round
        par, leaf, R = tree.parent[:N], tree.leaf[:G], tree.rewards[:G]
        p, _ = p_hat_by_hand(par, leaf, R)
        score = np.zeros(N)
        for s in np.unique(par[par >= 0]):
            kids = np.flatnonzero(par == s)
            rho = p[kids] / p[s] if p[s] > 0 else np.ones(kids.size)
            score[s] = (1 + cfg.beta) * np.mean((rho - 1 - 1 / cfg.beta) * tree.pi[kids])
        cand = sorted(np.unique(par[par >= 0]), key=lambda j: (-score[j], j))
        assert list(pick) == cand[:K]
        G += len(pick) * B


@settings(max_examples=25)
@given(seeds(), st.integers(1, 4), st.integers(1, 6))
def test_token_budget_prefix_sharing(rng, B0, L):
    """Abstract '50% more trajectories under the same token budget' rests on prefix sharing: the tree generates Σ_nodes
    n_tokens, while sampling the same G trajectories independently costs Σ_τ path length — never less; equal when
    every branch starts at the root (depth-1 continuations)."""
    tree = ibtree_grow("q", stand_in_sampler(), rng, IBTreeConfig(B0=B0, L=L, K=2, B=2))
    gen, indep = token_budget(tree.parent, tree.n_tokens, tree.leaf)
    assert gen == int(tree.n_tokens.sum())
    assert indep == sum(int(tree.n_tokens[path(tree.parent, lf)].sum()) for lf in tree.leaf)
    assert gen <= indep
    flat = ibtree_grow("q", stand_in_sampler(1, 1), rng, IBTreeConfig(B0=B0, L=L, K=2, B=2))
    g2, i2 = token_budget(flat.parent, flat.n_tokens, flat.leaf)
    assert g2 == i2 and flat.leaf.size == B0 + (L - 1) * 1 * 2  # only the root is eligible: min(K, 1) = 1


@given(seeds())
def test_padding_never_read(rng):
    """Design 'Bad input': garbage node ids at masked tokens change nothing; outputs are finite."""
    inp = _advantage_inputs(rng)
    base = ib_tpo_advantage(**inp)
    other = dict(inp, node=np.where(inp["mask"], inp["node"], rng.integers(-50, 500, size=inp["mask"].shape)))
    np.testing.assert_array_equal(ib_tpo_advantage(**other), base)
    assert np.isfinite(base).all()


def test_composition_with_ppo():
    """Composition (rollout tree → step advantage → loss): one tree, two trajectories sharing the first step; the
    branch that reaches the answer gets a positive advantage on its own step and the failing branch a negative one,
    the shared step only its local term; fed to the registry's PPO loss at ratio 1, dlogp = −A/N."""
    parent = np.array([-1, 0, 1, 1])  # q → s1 → {s2 (correct), s3 (wrong)}
    leaf = np.array([2, 3])
    node = np.array([[1, 1, 2, 2], [1, 1, 3, -1]])
    mask = np.array([[True, True, True, True], [True, True, True, False]])
    R = np.array([1.0, 0.0])
    adv = ib_tpo_advantage(R, np.zeros(2, int), mask, parent=parent, leaf=leaf, node=node, pi_ref=np.full(4, 0.5))
    assert adv[0, 2] > 0 > adv[1, 2]
    assert adv[0, 0] == adv[1, 0] == pytest.approx(0.1 * (1 - 1.2) * 0.5)  # A_GL(s1) = 0: p̂(s1) = p̂(q)
    logp = np.where(mask, np.log(0.5), np.nan)
    _, dlogp = registry.get("ppo")(logp=logp, old_logp=logp.copy(), adv=adv, mask=mask)
    np.testing.assert_allclose(dlogp, np.where(mask, -adv / mask.sum(), 0.0), rtol=1e-12, atol=1e-15)


def test_bad_input_raises():
    """Design 'Bad input': each argument named in the error."""
    parent, leaf = np.array([-1, 0, 0]), np.array([1, 2])
    node = np.array([[1, -1], [2, 2]])
    ok = dict(rewards=[1.0, 0.0], group=[0, 0], mask=np.ones((2, 2), bool), parent=parent, leaf=leaf, node=node,
              pi_ref=np.full(3, 0.5))
    for key, bad, name in (("parent", np.array([-1, 2, 0]), "parent"), ("leaf", np.array([0, 2]), "leaf"),
                           ("node", np.array([[2, -1], [2, 2]]), "node"), ("rewards", [1.5, 0.0], "rewards"),
                           ("pi_ref", np.array([0.5, -0.1, 0.5]), "pi_ref"), ("group", [0, 1], "group"),
                           ("node", np.array([[0, -1], [2, 2]]), "node")):
        with pytest.raises(RLSpecValueError, match=name):
            ib_tpo_advantage(**{**ok, key: bad})
    with pytest.raises(RLSpecValueError, match="leaf"):  # node 2 lies on no trajectory
        ib_tpo_advantage(**{**ok, "leaf": np.array([1, 1]), "node": np.array([[1, -1], [1, 1]])})
    for kw, name in (({"beta": 0.0}, "beta"), ({"lam": -0.1}, "lam"), ({"ddof": 2}, "ddof")):
        with pytest.raises(RLSpecValueError, match=name):
            IBTPOConfig(**kw)
    with pytest.raises(RLSpecValueError, match="B0"):
        IBTreeConfig(B0=0)


def test_inputs_not_mutated():
    """Pure functions: the caller's arrays are left as they were (also for the forest generator's output)."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        inp = _advantage_inputs(rng)
        before = {k: np.copy(v) for k, v in inp.items()}
        ib_tpo_advantage(**inp)
        for k, v in inp.items():
            np.testing.assert_array_equal(v, before[k])
    assert _random_forest(rng, 2)[0][0] == -1

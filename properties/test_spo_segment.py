"""Properties of SPO (Segment Policy Optimization, arXiv 2505.23564): SPO-chain and SPO-tree advantages.

Expected values are written here from the definitions (explicit loops over segments and tree paths), from
rlspec's GAE reference (reference/gae.py), or from exact enumeration of a tiny token MDP (binary tokens,
horizon ≤ 3, a random policy and reward table) — never from the SPO code under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from properties.strategies import GARBAGE, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gae import GAEConfig, gae_advantage
from rlspec.reference.spo_segment import (
    SPOChainConfig,
    SPOTreeConfig,
    make_chain_inputs,
    make_tree_inputs,
    mc_value,
    random_tree,
    segment_index,
    segment_starts,
    spo_segment_advantage,
    spo_tree_advantage,
    tree_node_values,
)

rhos = st.sampled_from([0.5, 0.9, 0.95])
intervals = st.sampled_from([1, 2, 3, 5])


@st.composite
def chains(draw, max_B=5, max_T=14, holes=None):
    """rewards (B,), old_logp (B, T), values (B, T) finite everywhere valid, mask: ragged (optionally with
    interior holes), garbage padding; π ∈ [0.9, 1] for ~60% of tokens, else π ∈ [0.05, 0.9)."""
    rng = draw(seeds())
    B, T = draw(st.integers(1, max_B)), draw(st.integers(1, max_T))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    if holes if holes is not None else draw(st.booleans()):
        mask &= rng.random((B, T)) > 0.2
    p = np.where(rng.random((B, T)) < 0.6, rng.uniform(0.9, 1.0, (B, T)), rng.uniform(0.05, 0.9, (B, T)))
    logp, values = np.log(p), rng.uniform(0.0, 1.0, (B, T))
    for x in (logp, values):
        x[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    return {"rewards": rng.integers(0, 2, size=B).astype(float), "old_logp": logp, "values": values, "mask": mask}


def prob(x):
    """π(y_t) of the sampled tokens (0 at padding)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x["mask"], np.exp(np.where(x["mask"], x["old_logp"], 0.0)), 0.0)


def expected_chain(x, rho, interval):
    """The paper's SPO-chain advantages without the probability mask, written from the definitions:
    boundaries t_0 = 0 and every interval-th cutpoint (π < ρ); Â_k = V(s_{t_{k+1}}) − V(s_{t_k}), V(s_{t_K}) = R."""
    A = np.zeros(x["mask"].shape)
    pi = prob(x)
    for b in range(A.shape[0]):
        pos = np.flatnonzero(x["mask"][b])
        if pos.size == 0:
            continue
        cuts = [j for j in range(pos.size) if pi[b, pos[j]] < rho]
        bounds = sorted({0, *cuts[::interval]})
        vals = [x["values"][b, pos[j]] for j in bounds] + [x["rewards"][b]]
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:] + [pos.size])):
            A[b, pos[lo:hi]] = vals[k + 1] - vals[k]
    return A


# --------------------------------------------------------------------------- SPO-chain
@given(x=chains(), rho=rhos, interval=intervals)
def test_chain_advantages_telescope(x, rho, interval):
    """Checkable statement (notes §15): the chain's segment advantages telescope, Σ_k Â_k = R − V̂(s_0); and every
    token of segment k carries Â_k = V̂(s_{t_{k+1}}) − V̂(s_{t_k}) (probability mask off)."""
    cfg = SPOChainConfig(rho=rho, interval=interval, prob_mask=False)
    A, lm = spo_segment_advantage(**x, config=cfg)
    np.testing.assert_allclose(A, expected_chain(x, rho, interval), rtol=0, atol=1e-15)
    starts = segment_starts(x["old_logp"], x["mask"], cfg)
    for b in range(A.shape[0]):
        pos = np.flatnonzero(x["mask"][b])
        if pos.size:
            seg_sum = A[b, starts[b]].sum()  # one Â_k per segment, read at its first token
            assert seg_sum == pytest.approx(x["rewards"][b] - x["values"][b, pos[0]], abs=1e-12)
    assert (lm == x["mask"]).all()


@given(x=chains(), rho=rhos, interval=intervals)
def test_partition_has_equal_cutpoint_counts(x, rho, interval):
    """Cutpoint-based partition (min Σ_k |U ∩ seg_k|², solved by equal counts): every segment after the first
    starts at a cutpoint (the boundary sits just before a low-probability token) and holds exactly ``interval``
    cutpoints, except the last (1 … interval); the first holds none unless the response starts with a cutpoint."""
    seg = segment_index(x["old_logp"], x["mask"], SPOChainConfig(rho=rho, interval=interval))
    pi = prob(x)
    for b in range(seg.shape[0]):
        pos = np.flatnonzero(x["mask"][b])
        if pos.size == 0:
            assert (seg[b] == -1).all()
            continue
        k, cut = seg[b, pos], pi[b, pos] < rho
        assert k[0] == 0 and (np.diff(k) >= 0).all() and (np.diff(k) <= 1).all()  # contiguous, in order
        K = k.max() + 1
        counts = np.array([cut[k == j].sum() for j in range(K)])
        for j in range(1, K):
            assert cut[np.flatnonzero(k == j)[0]]  # starts at a cutpoint
        assert (counts[1:-1] == interval).all()
        if K > 1:
            assert 1 <= counts[-1] <= interval
            assert counts[0] == (interval if cut[0] else 0)
        else:
            assert counts[0] <= interval
        assert K == (0 if cut[0] else 1) + int(np.ceil(cut.sum() / interval))


@given(x=chains(), rho=rhos, interval=intervals)
def test_probability_mask_keeps_only_cutpoint_tokens(x, rho, interval):
    """Probability mask M_t = 1[π(y_t) < ρ]: loss_mask = mask ∧ π < ρ, the advantage is 0 at every other token,
    and at the cutpoint tokens it is the unmasked segment advantage."""
    A, lm = spo_segment_advantage(**x, config=SPOChainConfig(rho=rho, interval=interval))
    assert (lm == (x["mask"] & (prob(x) < rho))).all()
    assert (A[~lm] == 0).all()
    np.testing.assert_allclose(A[lm], expected_chain(x, rho, interval)[lm], rtol=0, atol=1e-15)


@given(x=chains())
def test_no_cutpoint_is_trajectory_level(x):
    """Granularity, one end (abstract: 'from token-level to trajectory-level'): with no cutpoint (ρ = 0) the
    response is one segment, every token gets R − V̂(s_0); the probability mask then removes every token."""
    A, _ = spo_segment_advantage(**x, config=SPOChainConfig(rho=0.0, prob_mask=False))
    for b in range(A.shape[0]):
        pos = np.flatnonzero(x["mask"][b])
        if pos.size:
            np.testing.assert_allclose(A[b, pos], x["rewards"][b] - x["values"][b, pos[0]], rtol=0, atol=1e-15)
    A_m, lm = spo_segment_advantage(**x, config=SPOChainConfig(rho=0.0))
    assert not lm.any() and (A_m == 0).all()


@given(x=chains())
def test_every_token_a_segment_is_token_level_td(x):
    """Granularity, the other end: every token a cutpoint (ρ > 1) and interval 1 make each token its own
    segment, Â_t = V̂(s_{t+1}) − V̂(s_t) with V̂ after the last token = R — exactly GAE(γ = 1, λ = 0) of
    reference/gae.py with the reward R on the last valid token (interior masked tokens skipped)."""
    A, lm = spo_segment_advantage(**x, config=SPOChainConfig(rho=1.5, interval=1))
    r = np.zeros(x["mask"].shape)
    for b in range(r.shape[0]):
        pos = np.flatnonzero(x["mask"][b])
        if pos.size:
            r[b, pos[-1]] = x["rewards"][b]
    A_gae, _ = gae_advantage(r, x["values"], x["mask"], config=GAEConfig(gamma=1.0, lam=0.0))
    np.testing.assert_allclose(A, A_gae, rtol=0, atol=1e-15)
    assert (lm == x["mask"]).all()


@given(x=chains(), rho=rhos, interval=intervals)
def test_code_first_segment_agrees_under_probability_mask(x, rho, interval):
    """Paper vs official code: the code estimates no V̂(s_0) unless the first token is a cutpoint and gives the
    tokens before the first kept cutpoint advantage 0. Those tokens all have π ≥ ρ, so with the probability
    mask both readings give identical outputs; without it they differ only on that first segment. The code
    reading never reads V̂(s_0) when the first token is not a cutpoint (NaN there is accepted)."""
    paper = SPOChainConfig(rho=rho, interval=interval)
    code = SPOChainConfig(rho=rho, interval=interval, code_first_segment=True)
    y = dict(x, values=x["values"].copy())
    pi = prob(x)
    for b in range(pi.shape[0]):
        pos = np.flatnonzero(x["mask"][b])
        if pos.size and not pi[b, pos[0]] < rho:
            y["values"][b, pos[0]] = np.nan  # V̂(s_0): not needed by the code reading
    A_p, lm_p = spo_segment_advantage(**x, config=paper)
    A_c, lm_c = spo_segment_advantage(**y, config=code)
    assert np.array_equal(A_p, A_c) and np.array_equal(lm_p, lm_c)
    A_c0, _ = spo_segment_advantage(**y, config=SPOChainConfig(rho=rho, interval=interval, prob_mask=False,
                                                               code_first_segment=True))
    seg = segment_index(x["old_logp"], x["mask"], paper)
    first_is_cut = np.array([pi[b, np.flatnonzero(x["mask"][b])[0]] < rho if x["mask"][b].any() else False
                             for b in range(pi.shape[0])])
    zero_part = (seg == 0) & ~first_is_cut[:, None]
    assert (A_c0[zero_part] == 0).all()
    expected = expected_chain(x, rho, interval)
    np.testing.assert_allclose(A_c0[~zero_part & x["mask"]], expected[~zero_part & x["mask"]], rtol=0, atol=1e-15)


@given(x=chains(), rho=rhos, interval=intervals, prob_mask=st.booleans())
def test_values_read_only_at_segment_starts(x, rho, interval, prob_mask):
    """MC values are needed only at segment boundaries (the point of segment-level estimation: few estimation
    points): NaN at every other valid position changes nothing; NaN at a boundary is an error naming values."""
    cfg = SPOChainConfig(rho=rho, interval=interval, prob_mask=prob_mask)
    starts = segment_starts(x["old_logp"], x["mask"], cfg)
    y = dict(x, values=np.where(starts, x["values"], np.nan))
    for a, b in zip(spo_segment_advantage(**x, config=cfg), spo_segment_advantage(**y, config=cfg)):
        assert np.array_equal(a, b)
    if starts.any():
        b, t = np.argwhere(starts)[-1]
        y["values"][b, t] = np.inf
        with pytest.raises(RLSpecValueError, match="values"):
            spo_segment_advantage(**y, config=cfg)


@given(rng=seeds())
def test_padding_is_never_read(rng):
    """Masked positions are never read: other garbage there changes nothing; outputs are 0 / False there."""
    x = make_chain_inputs(rng)
    cfg = SPOChainConfig(**x.pop("config", {}))
    m = x["mask"]
    y = dict(x, old_logp=x["old_logp"].copy(), values=x["values"].copy())
    for k in ("old_logp", "values"):
        y[k][~m] = rng.choice(GARBAGE, size=int((~m).sum()))
    for a, b in zip(spo_segment_advantage(**x, config=cfg), spo_segment_advantage(**y, config=cfg)):
        assert np.array_equal(a, b)
    A, lm = spo_segment_advantage(**x, config=cfg)
    assert (A[~m] == 0).all() and not lm[~m].any()


# --------------------------------------------------------------------------- a tiny exact token MDP
class TokenMDP:
    """Binary tokens, horizon H; π(y = 1 | prefix) from a table, reward R(y) for each full sequence."""

    def __init__(self, rng: np.random.Generator, H: int):
        self.H = H
        self.p1 = {pre: float(rng.uniform(0.1, 0.9)) for n in range(H) for pre in itertools.product((0, 1), repeat=n)}
        self.R = {y: float(rng.choice([0.0, 1.0, rng.normal()])) for y in itertools.product((0, 1), repeat=H)}

    def completions(self, prefix):
        """[(continuation, probability)] of every way to finish ``prefix``."""
        out = []
        for tail in itertools.product((0, 1), repeat=self.H - len(prefix)):
            pr, pre = 1.0, tuple(prefix)
            for y in tail:
                pr *= self.p1[pre] if y == 1 else 1.0 - self.p1[pre]
                pre = pre + (y,)
            out.append((pre, pr))
        return out

    def V(self, prefix) -> float:
        """Exact V^π(prefix) by backward recursion (not by summing completions)."""
        prefix = tuple(prefix)
        if len(prefix) == self.H:
            return self.R[prefix]
        return self.p1[prefix] * self.V(prefix + (1,)) + (1 - self.p1[prefix]) * self.V(prefix + (0,))


@given(rng=seeds(), H=st.integers(1, 3), N=st.integers(1, 3))
def test_mc_value_is_unbiased(rng, H, N):
    """'Accurate and unbiased MC estimation' (abstract): E[V̂(s)] = V^π(s) for N continuations, by exact
    enumeration of every N-tuple of continuations of every prefix of a tiny token MDP."""
    env = TokenMDP(rng, H)
    for n in range(H + 1):
        for prefix in itertools.product((0, 1), repeat=n):
            comp = env.completions(prefix)
            E = 0.0
            for tup in itertools.product(comp, repeat=N):
                w = np.prod([pr for _, pr in tup])
                E += w * float(mc_value(np.array([env.R[y] for y, _ in tup])))
            assert E == pytest.approx(env.V(prefix), rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- SPO-tree
@given(rng=seeds())
def test_tree_parent_value_is_mean_of_children(rng):
    """Tree consistency: a leaf's value is its reward and every internal node's value is the mean of its
    children's values."""
    parent, r = random_tree(rng)
    v = tree_node_values(parent, r)
    for i in range(parent.size):
        kids = np.flatnonzero(parent == i)
        if kids.size:
            assert v[i] == pytest.approx(np.mean(v[kids]), rel=1e-12, abs=1e-15)
        else:
            assert v[i] == r[i]


@given(rng=seeds())
def test_tree_root_value_is_path_weighted_leaf_mean(rng):
    """Unrolling the recursion: v(n) = Σ_{leaves ℓ under n} R_ℓ · Π_{a on the path n … parent(ℓ)} 1/|children(a)|,
    computed here by walking up from each leaf."""
    parent, r = random_tree(rng)
    v = tree_node_values(parent, r)
    n_kids = np.bincount(parent[parent >= 0], minlength=parent.size)
    expected = np.zeros(parent.size)
    for leaf in np.flatnonzero(n_kids == 0):
        w, a = 1.0, leaf
        expected[leaf] += r[leaf]
        while parent[a] >= 0:
            w /= n_kids[parent[a]]
            a = parent[a]
            expected[a] += w * r[leaf]
    np.testing.assert_allclose(v, expected, rtol=1e-12, atol=1e-12)


@given(rng=seeds())
def test_tree_sibling_advantages_sum_to_zero(rng):
    """Checkable statement (notes §15): under rloo advantages the children of a node sum to zero,
    Σ_c (v_c − v_p) = 0, because v_p is their mean; roots get 0."""
    x = make_tree_inputs(rng)
    _, _, v, A = spo_tree_advantage(**x)
    parent = x["parent"]
    for i in range(parent.size):
        kids = np.flatnonzero(parent == i)
        if kids.size:
            assert A[kids].sum() == pytest.approx(0.0, abs=1e-12)
            np.testing.assert_allclose(A[kids], v[kids] - v[i], rtol=0, atol=1e-15)
    assert (A[parent < 0] == 0).all()


@given(rng=seeds())
def test_tree_grpo_siblings_are_standardized(rng):
    """grpo variant (code option adv_method='grpo'): (v_c − v_p)/(σ_p + 1e-8) with σ_p the population std of the
    children — the siblings have mean 0 and population std σ_p/(σ_p + 1e-8) ≈ 1 (0 when they all agree)."""
    x = make_tree_inputs(rng)
    _, _, v, A = spo_tree_advantage(**x, config=SPOTreeConfig(method="grpo"))
    parent = x["parent"]
    for i in range(parent.size):
        kids = np.flatnonzero(parent == i)
        if kids.size:
            sd = np.std(v[kids])
            assert A[kids].mean() == pytest.approx(0.0, abs=1e-9)
            assert np.std(A[kids]) == pytest.approx(sd / (sd + 1e-8), rel=1e-9, abs=1e-12)


@given(rng=seeds(), b1=st.integers(1, 3), b2=st.integers(1, 2))
def test_tree_value_is_unbiased(rng, b1, b2):
    """Tree-based estimation keeps MC unbiasedness: with one-token segments, branching (b1, b2) and children
    drawn i.i.d. from π, E[v(root)] = V^π(s_0) and E[v(child) | its token] = V^π(token), by exact enumeration
    of every sampled tree of a horizon-2 token MDP."""
    env = TokenMDP(rng, 2)
    first = [((y,), env.p1[()] if y else 1 - env.p1[()]) for y in (0, 1)]
    E_root = 0.0
    E_child = {0: [0.0, 0.0], 1: [0.0, 0.0]}  # token → [Σ w·v, Σ w]
    for ys in itertools.product(first, repeat=b1):
        seconds = [[(pre + (y,), env.p1[pre] if y else 1 - env.p1[pre]) for y in (0, 1)] for pre, _ in ys]
        for zs in itertools.product(*[itertools.product(s, repeat=b2) for s in seconds]):
            parent, reward, w = [-1], [np.nan], np.prod([p for _, p in ys])
            for grand in zs:
                parent.append(0)
                reward.append(np.nan)
                me = len(parent) - 1
                for leaf, p in grand:
                    parent.append(me)
                    reward.append(env.R[leaf])
                    w *= p
            v = tree_node_values(np.array(parent), np.array(reward))
            E_root += w * v[0]
            children = [i for i, q in enumerate(parent) if q == 0]
            for (pre, _), i in zip(ys, children):
                E_child[pre[0]][0] += w * v[i]
                E_child[pre[0]][1] += w
    assert E_root == pytest.approx(env.V(()), rel=1e-12, abs=1e-12)
    for y, (s, w) in E_child.items():
        assert s / w == pytest.approx(env.V((y,)), rel=1e-10, abs=1e-12)


@given(rng=seeds(), drop=st.booleans())
def test_tree_every_edge_is_a_training_sample(rng, drop):
    """Every non-root node is a training sample: each row (an edge's segment) carries its node's advantage on
    every valid token (probability mask off); the code's only_adv_greater_than_zero (drop_zero_adv) removes
    exactly the rows whose node advantage is 0."""
    x = make_tree_inputs(rng)
    A, lm, _, A_node = spo_tree_advantage(**x, config=SPOTreeConfig(prob_mask=False, drop_zero_adv=drop))
    m, nd = x["mask"], x["node"]
    for b in range(m.shape[0]):
        kept = not drop or A_node[nd[b]] != 0
        assert (lm[b] == (m[b] & kept)).all()
        assert (A[b, m[b]] == (A_node[nd[b]] if kept else 0.0)).all()
    with pytest.raises(RLSpecValueError, match="node"):
        spo_tree_advantage(**dict(x, node=np.zeros(m.shape[0], dtype=np.int64)))  # node 0 is a root


# --------------------------------------------------------------------------- optimized
@given(rng=seeds())
def test_optimized_matches_reference(rng):
    """The torch SPO-chain (optimized/spo_segment.py) matches the reference in float64, every option."""
    torch = pytest.importorskip("torch")
    from rlspec.optimized import spo_segment as opt

    x = make_chain_inputs(rng)
    base = x.pop("config", {})
    for flips in ({}, {"prob_mask": False}, {"code_first_segment": True}, {"whiten": True}):
        cfg = SPOChainConfig(**base, **flips)
        try:
            ref = spo_segment_advantage(**x, config=cfg)
        except RLSpecValueError:
            continue
        got = opt.spo_segment_advantage(*(torch.tensor(x[k]) for k in ("rewards", "old_logp", "values", "mask")),
                                        config=cfg)
        np.testing.assert_allclose(got[0].numpy(), ref[0], rtol=1e-12, atol=1e-14)
        assert np.array_equal(got[1].numpy(), ref[1])


@given(rng=seeds(), method=st.sampled_from(["rloo", "grpo"]), drop=st.booleans(), pm=st.booleans())
def test_tree_optimized_matches_reference(rng, method, drop, pm):
    """The torch SPO-tree matches the reference in float64 (node values, node advantages, token outputs)."""
    torch = pytest.importorskip("torch")
    from rlspec.optimized import spo_segment as opt

    x = make_tree_inputs(rng)
    cfg = SPOTreeConfig(method=method, drop_zero_adv=drop, prob_mask=pm)
    ref = spo_tree_advantage(**x, config=cfg)
    got = opt.spo_tree_advantage(**{k: torch.tensor(v) for k, v in x.items()}, config=cfg)
    for a, g in zip(ref, got):
        if a.dtype == bool:
            assert np.array_equal(g.numpy(), a)
        else:
            np.testing.assert_allclose(g.numpy(), a, rtol=1e-12, atol=1e-14)

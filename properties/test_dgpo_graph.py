"""Properties of DGPO (arXiv 2602.19261) on the 64-graph DAG diffusion of
:mod:`rlspec.reference.envs.dag_diffusion` (3 nodes in topological order, 2 node types, 2 edge types).

Expected values come from outside the code under test: closed walks for acyclicity, the enumerated set of
all digraphs, central finite differences of the exact J(θ) and of the loss, seeded Monte-Carlo means with
standard errors, and a replica of the official code's EMA loop written out here.

Run ``python properties/test_dgpo_graph.py`` to redraw docs/algorithms/img/dgpo_graph.png.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec import optimized
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dgpo_graph import (
    DGPOAdvantageConfig,
    DGPOConfig,
    DGPOState,
    dgpo_advantage,
    eager_pg_loss,
    logits_grad_to_theta,
    make_inputs,
    tabular_logits,
    train,
    update,
)
from rlspec.reference.envs import dag_diffusion as dd

SPACE = dd.DagSpace()
S = SPACE.states
ADDITIVE_R = (S == S[45]).mean(axis=1)      # fraction of components agreeing with one target DAG: optimum 1


def _acyclic_by_walks(adj) -> bool:
    A = (np.asarray(adj) != 0).astype(np.int64)
    P = np.eye(A.shape[0], dtype=np.int64)
    for _ in range(A.shape[0]):
        P = P @ A
        if np.trace(P):
            return False
    return True


def _theta(rng, T, scale=1.0):
    return scale * rng.normal(size=(T, SPACE.N, SPACE.C, SPACE.Kmax))


# ---------------------------------------------------------------------------- DAGs by construction


def test_every_generated_graph_is_a_dag():
    """Abstract (topological node ordering): the read-out triu(E, 1) is acyclic for every state the diffusion
    can produce — exhaustively on the 64-graph space (all states have positive probability), on every symmetric
    edge pattern of 4 nodes, and on 2 000 sampled trajectories of a random denoiser."""
    for s in S:
        assert _acyclic_by_walks(SPACE.adjacency(s))
    for bits in itertools.product((0, 1), repeat=6):
        assert _acyclic_by_walks(dd.triu_dag(dd.symmetric_E(np.array(bits), 4)))
    rng = np.random.default_rng(0)
    a = dd.cosine_alpha_bar(2)
    theta = _theta(rng, 2, 2.0)
    assert (dd.marginals(SPACE, theta, a)[0] > 0).all()
    traj = dd.sample(SPACE, theta, a, 2000, rng)
    for g in np.unique(traj[:, 0]):
        assert _acyclic_by_walks(SPACE.adjacency(S[g]))


@pytest.mark.parametrize("n", [3, 4])
def test_topological_order_reaches_every_dag(n):
    """Topological ordering loses nothing: relabelling the strictly upper-triangular graphs by every node
    permutation gives exactly the acyclic digraphs on n labelled nodes (25 for n = 3, 543 for n = 4)."""
    acyclic = {a.tobytes() for a in dd.directed_graphs(n) if _acyclic_by_walks(a)}
    reached = set()
    for bits in itertools.product((0, 1), repeat=n * (n - 1) // 2):
        U = dd.triu_dag(dd.symmetric_E(np.array(bits, dtype=np.int64), n))
        for perm in itertools.permutations(range(n)):
            Pm = np.eye(n, dtype=np.int64)[:, list(perm)]
            reached.add((Pm @ U @ Pm.T).tobytes())
    assert reached == acyclic and len(acyclic) == {3: 25, 4: 543}[n]


def test_symmetric_state_read_as_directed_has_cycles():
    """Why the read-out is needed: DiGress keeps E symmetric, so read as a digraph every edge i–j is a
    2-cycle i → j → i; only the edgeless states are acyclic without triu."""
    for s in S:
        E = dd.symmetric_E(s[SPACE.n:], SPACE.n)
        assert _acyclic_by_walks(E) == (not E.any())


# ---------------------------------------------------------------------------- the estimator


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10)
def test_one_step_eager_estimator_equals_reinforce(seed):
    """With one denoising step and a clean time 0 (ᾱ_0 = 1), p_θ(G_0 | G_1) = p̂_θ(G_0 | G_1), so the eager
    estimator's exact expectation E[A ∇ log p̂(G_0|G_1)] is REINFORCE: it equals ∇J, checked against central
    differences of J; a constant baseline has zero expectation (E[∇ log p̂(G_0|G_1)] = 0)."""
    rng = np.random.default_rng(seed)
    a = dd.cosine_alpha_bar(1)
    theta = _theta(rng, 1)
    r = rng.normal(size=SPACE.N)
    eager = dd.eager_gradient(SPACE, theta, a, r)
    np.testing.assert_allclose(eager, dd.reinforce_gradient(SPACE, theta, a, r), atol=1e-14)
    h = 1e-6
    for _ in range(6):
        idx = tuple(int(rng.integers(s)) for s in theta.shape)
        tp, tm = theta.copy(), theta.copy()
        tp[idx] += h
        tm[idx] -= h
        fd = (dd.expected_reward(SPACE, tp, a, r) - dd.expected_reward(SPACE, tm, a, r)) / (2 * h)
        assert eager[idx] == pytest.approx(fd, abs=1e-8)
    np.testing.assert_allclose(dd.eager_gradient(SPACE, theta, a, np.ones(SPACE.N)), 0.0, atol=1e-14)


@pytest.mark.parametrize("T,conv", [(2, "clean0"), (3, "clean0"), (1, "code")])
def test_multi_step_eager_estimator_is_biased(T, conv):
    """Our analysis of the eager (GDPO) estimator used by DGPO: with more than one step (or with the code's
    schedule, whose last step is still noisy, ᾱ_0 < 1) it is not ∇J — relative error > 5 % on every drawn
    instance — yet on these instances it is an ascent direction (cosine with ∇J > 0.3), and a constant baseline
    is no longer free (its expected contribution is non-zero)."""
    a = dd.cosine_alpha_bar(T, convention=conv)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        theta = _theta(rng, T, 0.5)
        r = rng.uniform(size=SPACE.N)
        g = dd.reinforce_gradient(SPACE, theta, a, r)
        e = dd.eager_gradient(SPACE, theta, a, r - r @ dd.marginals(SPACE, theta, a)[0])
        assert np.linalg.norm(e - g) > 0.05 * np.linalg.norm(g)
        assert (e * g).sum() / (np.linalg.norm(e) * np.linalg.norm(g)) > 0.3
        assert np.abs(dd.eager_gradient(SPACE, theta, a, np.ones(SPACE.N))).max() > 1e-4


def test_sampled_loss_gradient_estimates_the_exact_eager_gradient():
    """The loss slice ties to the enumerated expectation: with edges="upper" and λ_E = P/n (= 1), −n·B·∂L_t/∂θ
    is Σ_b A_b ∇ log p̂(G_0^b | G_t^b); its mean over 3 000 sampled trajectories matches
    eager_gradient along 5 random directions within 5 standard errors (false-alarm rate ≈ 3e-6)."""
    rng = np.random.default_rng(11)
    T = 2
    a = dd.cosine_alpha_bar(T)
    theta = _theta(rng, T, 0.7)
    r = rng.uniform(size=SPACE.N)
    A_of = r - r @ dd.marginals(SPACE, theta, a)[0]
    exact = dd.eager_gradient(SPACE, theta, a, A_of)
    B = 3000
    traj = dd.sample(SPACE, theta, a, B, np.random.default_rng(12))
    cfg = DGPOConfig(edges="upper", lambda_E=SPACE.P / SPACE.n)
    X0 = S[traj[:, 0], :SPACE.n]
    E0 = dd.symmetric_E(S[traj[:, 0], SPACE.n:], SPACE.n)
    dirs = rng.normal(size=(5,) + theta.shape)
    proj = np.zeros((B, 5))
    mask = np.ones((B, SPACE.n), bool)
    for t in range(1, T + 1):                            # one batch call per timestep; rows are per-sample
        LX, LE = tabular_logits(SPACE, theta[t - 1], traj[:, t])
        out = eager_pg_loss(LX, LE, X0, E0, mask, A_of[traj[:, 0]], cfg)
        for b in range(B):
            g = logits_grad_to_theta(SPACE, out["dlogits_X"][b:b + 1], out["dlogits_E"][b:b + 1], traj[b:b + 1, t])
            proj[b] -= SPACE.n * B * (dirs[:, t - 1] * g[None]).reshape(5, -1).sum(axis=1)
    target = (dirs * exact[None]).reshape(5, -1).sum(axis=1)
    se = proj.std(axis=0) / np.sqrt(B)
    assert (np.abs(proj.mean(axis=0) - target) <= 5 * se).all()


@pytest.mark.parametrize("T", [1, 2, 3])
def test_exact_steering_both_directions(T):
    """Abstract (bidirectional control): exact expected eager steps with A = ±r − J raise J at every step for
    +r and lower it at every step for the inverse reward −r (5 steps, 3 random reward tables)."""
    a = dd.cosine_alpha_bar(T)
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        theta0 = _theta(rng, T, 0.5)
        r = rng.uniform(size=SPACE.N)
        for sign in (1.0, -1.0):
            theta = theta0.copy()
            J = [dd.expected_reward(SPACE, theta, a, r)]
            for _ in range(5):
                adv = sign * r - dd.expected_reward(SPACE, theta, a, sign * r)
                theta = theta + 200.0 * dd.eager_gradient(SPACE, theta, a, adv)
                J.append(dd.expected_reward(SPACE, theta, a, r))
            steps = np.diff(J)
            assert (sign * steps > 0).all(), (sign, steps)


def test_exact_eager_ascent_reaches_the_optimum():
    """With a reward whose optimum the factorised denoiser can reach (fraction of components agreeing with one
    target DAG, max 1, min 0), 40 exact eager steps from the uniform denoiser (T = 2) reach J ≥ 0.995, and the
    inverse reward drives J ≤ 0.005."""
    T = 2
    a = dd.cosine_alpha_bar(T)
    for sign, check in ((1.0, lambda J: J >= 0.995), (-1.0, lambda J: J <= 0.005)):
        theta = np.zeros((T, SPACE.N, SPACE.C, SPACE.Kmax))
        for _ in range(40):
            adv = sign * ADDITIVE_R - dd.expected_reward(SPACE, theta, a, sign * ADDITIVE_R)
            theta = theta + 3000.0 * dd.eager_gradient(SPACE, theta, a, adv)
        assert check(dd.expected_reward(SPACE, theta, a, ADDITIVE_R))


def test_sampled_dgpo_run_steers_both_ways():
    """The code's loop on the tiny space (K = 15 graphs per epoch, EMA-normalised clipped advantages, λ_E = 5,
    ⌈0.3 T⌉ slices, 4 inner passes, SGD lr 30, T = 2, seed 1): from J = 0.5 it reaches J ≥ 0.9 with +r and
    J ≤ 0.1 with the inverse reward within 150 epochs (observed ≈ 0.94 / 0.06)."""
    a = dd.cosine_alpha_bar(2)
    theta0 = np.zeros((2, SPACE.N, SPACE.C, SPACE.Kmax))
    _, Jp = train(SPACE, theta0, a, ADDITIVE_R, epochs=150, lr=30.0, innerloop=4, seed=1)
    _, Jm = train(SPACE, theta0, a, ADDITIVE_R, epochs=150, lr=30.0, innerloop=4, seed=1, inverse=True)
    assert Jp[0] == pytest.approx(0.5) and Jp[-1] >= 0.9 and Jm[-1] <= 0.1


# ---------------------------------------------------------------------------- advantage


@given(seed=st.integers(0, 2**32 - 1), B=st.integers(0, 20), epoch=st.integers(0, 3))
def test_advantage_bounded_and_zero_for_constant_batches(seed, B, epoch):
    """Code compute_advantages: |A| ≤ 5 always; A ≡ 0 for fewer than 2 graphs or equal rewards; otherwise
    A = clip((r − μ̄)/σ̄, ±5) with the statistics updated by this batch first."""
    rng = np.random.default_rng(seed)
    state = DGPOState(mean=float(rng.normal()), std=float(rng.uniform(1e-3, 1.0)), epoch=epoch)
    r = rng.normal(scale=rng.choice([0.01, 1.0, 100.0]), size=B)
    A, new = dgpo_advantage(state, r)
    assert A.shape == (B,) and (np.abs(A) <= 5.0).all()
    if B >= 2:
        np.testing.assert_allclose(A, np.clip((r - new.mean) / new.std, -5, 5), rtol=1e-12)
    else:
        assert not A.any()
    A2, _ = dgpo_advantage(state, np.full(max(B, 2), 0.3))
    assert not A2.any()


def test_update_is_pure_and_replays_the_code_loop():
    """The tracker replays the code's epoch loop: running_mean/std = batch stats at epoch 0, then
    0.9·old + 0.1·batch (std floored at 1e-8), an empty epoch leaves them unchanged; states are not mutated."""
    rng = np.random.default_rng(5)
    batches = [rng.uniform(size=15), rng.uniform(size=9), np.array([]), np.full(4, 0.7), rng.uniform(size=15)]
    running_mean, running_std = 0.0, 1.0                    # replica of train_rlft.py main()
    state = DGPOState()
    for epoch, rew in enumerate(batches):
        if rew.size:
            if epoch == 0:
                running_mean, running_std = float(np.mean(rew)), max(float(np.std(rew)), 1e-8)
            else:
                running_mean = 0.9 * running_mean + 0.1 * float(np.mean(rew))
                running_std = max(0.9 * running_std + 0.1 * float(np.std(rew)), 1e-8)
        before = DGPOState(state.mean, state.std, state.epoch)
        new = update(state, rew)
        assert state == before
        assert new.mean == pytest.approx(running_mean, rel=1e-14) and new.std == pytest.approx(running_std, rel=1e-14)
        assert new.epoch == epoch + 1
        state = new


# ---------------------------------------------------------------------------- the loss slice


def _fd(f, x, where, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.argwhere(where):
        idx = tuple(idx)
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@given(seed=st.integers(0, 2**32 - 1), edges=st.sampled_from(["all", "upper"]))
@settings(max_examples=15)
def test_loss_gradient_matches_finite_differences(seed, edges):
    """dlogits_X and dlogits_E (hand-derived: A_b (softmax − onehot)/N) equal central differences of the loss
    at every real entry; padding entries are 0."""
    inp = make_inputs(np.random.default_rng(seed))
    cfg = DGPOConfig(edges=edges)
    out = eager_pg_loss(**inp, config=cfg)
    M = inp["node_mask"]
    LX = np.where(M[..., None], inp["logits_X"], 0.0)
    LE = np.where((M[:, :, None] & M[:, None, :])[..., None], inp["logits_E"], 0.0)
    fX = _fd(lambda x: eager_pg_loss(**{**inp, "logits_X": x}, config=cfg)["loss"], LX,
             np.broadcast_to(M[..., None], LX.shape))
    fE = _fd(lambda x: eager_pg_loss(**{**inp, "logits_E": x}, config=cfg)["loss"], LE,
             np.broadcast_to((M[:, :, None] & M[:, None, :])[..., None], LE.shape))
    np.testing.assert_allclose(out["dlogits_X"], fX, atol=1e-7)
    np.testing.assert_allclose(out["dlogits_E"], fE, atol=1e-7)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_padding_is_never_read(seed):
    """Garbage (NaN, inf, out-of-range classes) at padded nodes changes nothing; a batch without real nodes
    has loss 0 and zero gradients."""
    rng = np.random.default_rng(seed)
    inp = make_inputs(rng)
    out = eager_pg_loss(**inp)
    M = inp["node_mask"]
    pair = M[:, :, None] & M[:, None, :]
    other = dict(inp, logits_X=np.where(M[..., None], inp["logits_X"], -3e7),
                 logits_E=np.where(pair[..., None], inp["logits_E"], np.nan),
                 X0=np.where(M, inp["X0"], 12345), E0=np.where(pair, inp["E0"], -1))
    out2 = eager_pg_loss(**other)
    assert out2["loss"] == out["loss"]
    for k in ("dlogits_X", "dlogits_E"):
        np.testing.assert_array_equal(out2[k], out[k])
    empty = eager_pg_loss(**dict(inp, node_mask=np.zeros_like(M)))
    assert empty["loss"] == 0.0 and not empty["dlogits_X"].any() and not empty["dlogits_E"].any()


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_all_edges_versus_upper_on_the_codes_symmetric_logits(seed):
    """On the code's edge logits (symmetric, zero diagonal) and symmetric targets with 'no edge' on the
    diagonal, the code's normalisation over all ordered pairs is N_E·L_E(all) = 2·N_U·L_E(upper) +
    Σ_b A_b n_b log Ke (each pair counted twice, each diagonal entry a constant log Ke)."""
    rng = np.random.default_rng(seed)
    inp = make_inputs(rng)
    M = inp["node_mask"]
    LE = np.nan_to_num(inp["logits_E"], posinf=0.0)
    LE = np.triu(np.moveaxis(LE, -1, 1), 1)
    LE = np.moveaxis(LE + np.swapaxes(LE, -1, -2), 1, -1)
    E0 = np.triu(np.where(inp["E0"] < 90, inp["E0"], 0), 1)
    E0 = E0 + np.swapaxes(E0, -1, -2)
    inp = dict(inp, logits_E=LE, E0=E0)
    only_E = dict(lambda_E=1.0)
    L_all = eager_pg_loss(**dict(inp, logits_X=np.zeros_like(inp["logits_X"])), config=DGPOConfig(**only_E))["loss"]
    L_up = eager_pg_loss(**dict(inp, logits_X=np.zeros_like(inp["logits_X"])),
                         config=DGPOConfig(edges="upper", **only_E))["loss"]
    n_b = M.sum(axis=1)
    NX, NE, NU = n_b.sum(), (n_b ** 2).sum(), (n_b * (n_b - 1) // 2).sum()
    LX0 = (inp["adv"] * n_b).sum() * np.log(inp["logits_X"].shape[-1]) / NX if NX else 0.0
    Ke = LE.shape[-1]
    lhs = (L_all - LX0) * NE
    rhs = 2 * (L_up - LX0) * NU + (inp["adv"] * n_b).sum() * np.log(Ke)
    assert lhs == pytest.approx(rhs, abs=1e-9)


def test_table_chain_rule_matches_finite_differences():
    """logits_grad_to_theta (a pair's logit feeds E[i, j] and E[j, i]) equals central differences of the slice
    loss in the table θ_t."""
    rng = np.random.default_rng(2)
    theta_t = rng.normal(size=(SPACE.N, SPACE.C, SPACE.Kmax))
    states = rng.integers(0, SPACE.N, size=6)
    final = rng.integers(0, SPACE.N, size=6)
    X0, E0 = S[final, :SPACE.n], dd.symmetric_E(S[final, SPACE.n:], SPACE.n)
    mask, A = np.ones((6, SPACE.n), bool), rng.normal(size=6)

    def loss(th):
        LX, LE = tabular_logits(SPACE, th, states)
        return eager_pg_loss(LX, LE, X0, E0, mask, A)["loss"]

    LX, LE = tabular_logits(SPACE, theta_t, states)
    out = eager_pg_loss(LX, LE, X0, E0, mask, A)
    g = logits_grad_to_theta(SPACE, out["dlogits_X"], out["dlogits_E"], states)
    np.testing.assert_allclose(g, _fd(loss, theta_t, np.ones_like(theta_t, bool)), atol=1e-7)


def test_equivariant_denoiser_cannot_orient_edges():
    """Why the node index (positional encoding) matters — our analysis: a denoiser that only sees the graph up
    to relabelling (θ[t, π·g, π·c] = θ[t, g, c]) makes the final law invariant under every node permutation, so
    the chain 0 → 1 → 2 with types (0, 1, 1) and its reversal (types (1, 1, 0)) are equally likely whatever the
    reward; a table that knows the index (a random θ) separates them."""
    rng = np.random.default_rng(8)
    T = 2
    a = dd.cosine_alpha_bar(T)
    theta = _theta(rng, T)
    perms = [np.array(p) for p in itertools.permutations(range(SPACE.n))]
    comp = []
    for perm in perms:                                       # where component c goes under the relabelling
        cmap = list(perm)
        for (i, j) in dd.pairs(SPACE.n):
            u, v = sorted((perm[i], perm[j]))
            cmap.append(SPACE.n + dd.pairs(SPACE.n).index((u, v)))
        comp.append((SPACE.index(SPACE.permute(S, perm)), np.array(cmap)))
    eq = np.zeros_like(theta)
    for gmap, cmap in comp:
        eq[:, gmap[:, None], cmap[None, :]] += theta
    eq /= len(comp)
    P0 = dd.marginals(SPACE, eq, a)[0]
    for gmap, _ in comp:
        np.testing.assert_allclose(P0[gmap], P0, rtol=1e-10)
    chain = SPACE.index(np.array([0, 1, 1, 1, 0, 1]))        # types (0,1,1), edges 0→1, 1→2
    rev = SPACE.index(SPACE.permute(S[chain], np.array([2, 1, 0])))
    assert S[rev].tolist() == [1, 1, 0, 1, 0, 1]
    assert P0[chain] == pytest.approx(P0[rev], rel=1e-10)
    aware = theta.copy()                                     # an index-aware table tuned towards the chain
    aware[0, :, np.arange(SPACE.C), S[chain]] += 4.0
    P0_aware = dd.marginals(SPACE, aware, a)[0]
    assert P0_aware[chain] > 10 * P0_aware[rev]


# ---------------------------------------------------------------------------- optimized and bad input


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10)
def test_optimized_matches_reference(seed):
    """optimized.get("dgpo_graph") (autograd) = the reference's hand gradient in float64; the torch advantage
    tracker = the reference's."""
    rng = np.random.default_rng(seed)
    inp = make_inputs(rng)
    ref = eager_pg_loss(**inp)
    t = {k: torch.as_tensor(v) for k, v in inp.items()}
    got = optimized.get("dgpo_graph")(**t)
    assert float(got["loss"]) == pytest.approx(ref["loss"], abs=1e-12)
    for k in ("dlogits_X", "dlogits_E"):
        np.testing.assert_allclose(got[k].numpy(), ref[k], atol=1e-12)
    state = DGPOState(0.2, 0.5, int(rng.integers(0, 2)))
    r = rng.uniform(size=int(rng.integers(0, 10)))
    A, new = dgpo_advantage(state, r)
    A_t, new_t = optimized.get("dgpo_graph_advantage")(state, torch.as_tensor(r))
    np.testing.assert_allclose(A_t.numpy(), A, atol=1e-12)
    assert new_t.mean == pytest.approx(new.mean, abs=1e-12) and new_t.epoch == new.epoch


def test_bad_input_raises():
    inp = make_inputs(np.random.default_rng(0))
    spec = registry.get("dgpo_graph")
    with pytest.raises(RLSpecValueError, match="edges"):
        DGPOConfig(edges="lower")
    with pytest.raises(RLSpecValueError, match="lambda_E"):
        DGPOConfig(lambda_E=-1.0)
    with pytest.raises(RLSpecValueError, match="adv"):
        spec(**dict(inp, adv=np.full(inp["adv"].shape[0] + 1, 0.5)))
    with pytest.raises(RLSpecValueError, match="node_mask"):
        spec(**dict(inp, node_mask=inp["node_mask"].astype(float) * 0.5))
    bad = dict(inp, node_mask=np.ones_like(inp["node_mask"]))
    with pytest.raises(RLSpecValueError):
        spec(**bad)                                         # NaN logits / out-of-range classes at real nodes
    with pytest.raises(RLSpecValueError, match="rewards"):
        dgpo_advantage(DGPOState(), np.array([np.nan, 1.0]))
    with pytest.raises(RLSpecValueError, match="alpha"):
        DGPOAdvantageConfig(alpha=1.5)
    with pytest.raises(RLSpecValueError, match="state"):
        dgpo_advantage("state", np.ones(3))


def make_figure(path: str = "docs/algorithms/img/dgpo_graph.png") -> None:  # pragma: no cover - docs only
    """The docs figure: exact J(θ) along the sampled DGPO loop (T = 2), +r and inverse."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = dd.cosine_alpha_bar(2)
    theta0 = np.zeros((2, SPACE.N, SPACE.C, SPACE.Kmax))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for seed in (1, 2, 3):
        _, Jp = train(SPACE, theta0, a, ADDITIVE_R, epochs=200, lr=30.0, innerloop=4, seed=seed)
        _, Jm = train(SPACE, theta0, a, ADDITIVE_R, epochs=200, lr=30.0, innerloop=4, seed=seed, inverse=True)
        ax.plot(Jp, color="tab:blue", alpha=0.8, label="reward +r" if seed == 1 else None)
        ax.plot(Jm, color="tab:red", alpha=0.8, label="inverse −r" if seed == 1 else None)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.axhline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("epoch (15 sampled graphs each)")
    ax.set_ylabel("exact E[r(G_0)]")
    ax.set_title("DGPO on the 64-graph DAG diffusion (T = 2, 3 seeds)")
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":  # pragma: no cover
    make_figure()

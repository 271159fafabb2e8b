"""Properties of POISE (arXiv 2605.07579; official code holi-lab/POISE): the cross-rollout baseline keeps the
policy gradient unbiased, the same-rollout baseline does not (by −∇θ E[g(ϕ)]), Prop. 1 / Corollary 1 on
allocating a rollout budget, and the closed-form ridge probe. Exact enumeration on a contextual softmax
bandit (:mod:`rlspec.reference.envs.softmax_bandit`) whose (prompt, response) pairs carry feature vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.strategies import outcome_batches, seeds
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs.softmax_bandit import SoftmaxBandit, exact_moments, iid_outcomes
from rlspec.reference.poise import (
    POISEConfig,
    ProbeConfig,
    allocation_covariance,
    buffer_update,
    cross_rollout_baseline,
    entropy_features,
    last_n_mean,
    poise_advantage,
    poise_features,
    poise_probe,
    probe_fit,
    probe_predict,
    probe_targets,
    same_rollout_advantage,
)
from rlspec.reference.rloo import rloo_advantage


def problem(rng, X=2, K=3, F=4):
    """A contextual bandit with Bernoulli-like rewards in [0, 1], logits θ, features ϕ(x, a) (X, K, F) that mix a
    prompt part and a response part, and a probe fitted on independent synthetic rows."""
    env = SoftmaxBandit(rng.random((X, K)), rho=rng.dirichlet(np.ones(X)))
    theta = rng.normal(size=env.P)
    phi = rng.normal(size=(X, 1, F)) + 0.7 * rng.normal(size=(X, K, F))
    Xtr = rng.normal(size=(30, F))
    probe = probe_fit(Xtr, np.clip(0.5 + 0.3 * Xtr[:, 0] + 0.1 * rng.normal(size=30), 0, 1), ProbeConfig(alpha=0.5))
    v = probe_predict(probe, phi.reshape(-1, F)).reshape(X, K)  # g(ϕ(x, a))
    return env, theta, phi, v


def rollouts(env, theta, G):
    """(x, actions, probability) for one prompt and G i.i.d. responses."""
    pi = env.policy(theta)
    for x in range(env.X):
        for a, q in iid_outcomes(pi[x], G):
            yield x, np.array(a), env.rho[x] * q


def step(env, theta, x, a, A):
    """(1/G) Σ_i Â_i ∇θ log π(a_i|x)."""
    return (A[:, None] * env.scores(theta)[x, a]).mean(axis=0)


def adv(R, v, cfg=None):
    G = len(R)
    return poise_advantage(R, np.zeros(G, dtype=int), np.ones((G, 1), bool), cfg, values=v)[:, 0]


@given(rng=seeds(), G=st.integers(2, 3), K=st.integers(2, 3))
def test_cross_rollout_baseline_is_unbiased(rng, G, K):
    """Abstract: the cross-rollout construction preserves gradient unbiasedness. Each rollout's baseline is the
    probe's prediction from the OTHER rollouts' features (G = 2: the partner's), which are independent of it given
    the prompt, so E[(1/G) Σ_i (R_i − b_i) ∇log π(y_i|x)] = ∇J exactly — whatever the fitted probe."""
    env, theta, _, v = problem(rng, K=K)
    E = np.zeros(env.P)
    for x, a, q in rollouts(env, theta, G):
        E += q * step(env, theta, x, a, adv(env.r[x, a], v[x, a]))
    np.testing.assert_allclose(E, env.gradient(theta), atol=1e-12)


@given(rng=seeds(), G=st.integers(1, 3))
def test_same_rollout_baseline_bias(rng, G):
    """The rollout's own prediction g(ϕ_i) as baseline depends on y_i through ϕ_i. Its bias (our derivation, the
    probe held fixed) is E ĝ − ∇J = −E[g(ϕ(x,y)) ∇log π(y|x)] = −∇θ E_{y∼π_θ}[g(ϕ(x,y))], checked against central
    finite differences of θ ↦ Σ_x ρ(x) Σ_a π_θ(a|x) g(ϕ(x,a)); it is non-zero for a probe that varies with y."""
    env, theta, _, v = problem(rng)
    E = np.zeros(env.P)
    for x, a, q in rollouts(env, theta, G):
        E += q * step(env, theta, x, a, same_rollout_advantage(env.r[x, a], v[x, a]))

    def expected_prediction(th):
        return float(env.rho @ (env.policy(th) * v).sum(axis=1))

    h = 1e-6
    fd = np.array([(expected_prediction(theta + h * e) - expected_prediction(theta - h * e)) / (2 * h)
                   for e in np.eye(env.P)])
    np.testing.assert_allclose(E - env.gradient(theta), -fd, atol=1e-8)
    if np.ptp(v, axis=1).max() > 1e-3:
        assert np.abs(E - env.gradient(theta)).max() > 1e-8


@given(rng=seeds())
def test_perfect_same_rollout_probe_zeroes_the_update(rng):
    """The extreme case of that bias: a probe that reads the rollout's own outcome (g(ϕ_i) = R_i) cancels every
    advantage, so the update is 0 for every outcome although ∇J ≠ 0; the cross-rollout version of the same
    probe keeps E ĝ = ∇J."""
    env, theta, _, _ = problem(rng)
    E_cross = np.zeros(env.P)
    for x, a, q in rollouts(env, theta, 2):
        R = env.r[x, a]
        assert np.all(same_rollout_advantage(R, R) == 0)
        E_cross += q * step(env, theta, x, a, adv(R, R))
    np.testing.assert_allclose(E_cross, env.gradient(theta), atol=1e-12)


def test_refit_before_advantages_biases():
    """Official code order: a step's advantages are fixed with the probe of the previous steps, and the probe is
    refitted afterwards. Refitting first, on the current batch's rows (ϕ_i, target = partner's reward), makes
    the prediction used as rollout 1's baseline depend on rollout 1's own reward: exact enumeration of a batch of
    two prompts × two rollouts shows E ĝ ≠ ∇J, while the previous-step probe gives E ĝ = ∇J."""
    rng = np.random.default_rng(3)
    env = SoftmaxBandit(np.array([[1.0, 0.0, 0.3], [0.2, 1.0, 0.0]]))
    theta = rng.normal(size=env.P)
    phi = rng.normal(size=(2, 3, 2))
    old = probe_fit(rng.normal(size=(12, 2)), rng.random(12), ProbeConfig(alpha=1.0))
    cfg = ProbeConfig(alpha=1.0, clip_min=-10.0, clip_max=10.0)
    per_prompt = list(rollouts(env, theta, 2))
    E_refit, E_old = np.zeros(env.P), np.zeros(env.P)
    for (x1, a1, q1), (x2, a2, q2) in itertools.product(per_prompt, repeat=2):
        xs, acts = np.array([x1, x1, x2, x2]), np.concatenate([a1, a2])
        R, group = env.r[xs, acts], np.array([0, 0, 1, 1])
        feats = phi[xs, acts]
        new = probe_fit(feats, probe_targets(R, group), cfg)
        S = env.scores(theta)[xs, acts]
        for probe, acc in ((new, E_refit), (old, E_old)):
            A = poise_advantage(R, group, np.ones((4, 1), bool), values=probe_predict(probe, feats))[:, 0]
            acc += q1 * q2 * (A[:, None] * S).mean(axis=0)
    grad = env.gradient(theta)
    np.testing.assert_allclose(E_old, grad, atol=1e-12)
    assert np.abs(E_refit - grad).max() > 1e-4


def allocation_outcomes(env, theta, b, n, m):
    """ĝ = (1/B) Σ_prompts Σ_rollouts (R − b(x)) s over every outcome of n prompts × m rollouts, with probabilities."""
    S = env.scores(theta)
    Z = (env.r - b[:, None])[:, :, None] * S  # (X, K, P) per-rollout gradient term
    per_prompt = [(Z[x, list(a)].sum(axis=0), q) for x, a, q in rollouts(env, theta, m)]
    vals, probs = [], []
    for combo in itertools.product(per_prompt, repeat=n):
        vals.append(sum(z for z, _ in combo) / (n * m))
        probs.append(float(np.prod([q for _, q in combo])))
    return vals, probs


def within_between(env, theta, b):
    """Σ_w = E_x Cov(Z|x), Σ_b = Cov_x E(Z|x) for Z = (R − b(x)) ∇log π(y|x), computed directly."""
    S, pi = env.scores(theta), env.policy(theta)
    Z = (env.r - b[:, None])[:, :, None] * S
    mz = np.einsum("xk,xkp->xp", pi, Z)
    Sw = sum(env.rho[x] * exact_moments(list(Z[x]), list(pi[x]))[1] for x in range(env.X))
    Sb = exact_moments(list(mz), list(env.rho))[1]
    return Sw, Sb


@settings(max_examples=15)
@given(rng=seeds(), nm=st.sampled_from([(1, 2), (2, 1), (2, 2), (1, 4), (4, 1), (1, 3), (3, 1)]))
def test_prop1_variance_decomposition(rng, nm):
    """Prop. 1: with B = n·m completions (n prompts × m rollouts, per-rollout terms Z conditionally i.i.d. given the
    prompt), Cov ĝ = (1/B)Σ_w + (m/B)Σ_b. The covariance of ĝ over every joint outcome equals the formula, for a
    fixed prompt-dependent baseline b(x) (b = 0 included)."""
    n, m = nm
    env = SoftmaxBandit(rng.random((2, 2)), rho=rng.dirichlet(np.ones(2)))
    theta = rng.normal(size=env.P)
    b = rng.random(2) * (rng.random() < 0.7)
    vals, probs = allocation_outcomes(env, theta, b, n, m)
    Sw, Sb = within_between(env, theta, b)
    np.testing.assert_allclose(exact_moments(vals, probs)[1], allocation_covariance(Sw, Sb, n, m), atol=1e-13)


@settings(max_examples=10)
@given(rng=seeds())
def test_corollary1_monotone_in_rollouts_per_prompt(rng):
    """Corollary 1: at a fixed budget B = 4, Cov ĝ(m = 4) ⪰ Cov ĝ(m = 2) ⪰ Cov ĝ(m = 1) (Loewner order; exact
    covariances by enumeration), so one rollout per prompt is best — the reason POISE estimates the value from
    a single rollout's states instead of a large group."""
    env = SoftmaxBandit(rng.random((2, 2)), rho=rng.dirichlet(np.ones(2)))
    theta, b = rng.normal(size=env.P), np.zeros(2)
    cov = {m: exact_moments(*allocation_outcomes(env, theta, b, 4 // m, m))[1] for m in (1, 2, 4)}
    for lo, hi in ((1, 2), (2, 4)):
        assert np.linalg.eigvalsh(cov[hi] - cov[lo]).min() >= -1e-14
    assert np.trace(cov[4]) >= np.trace(cov[1]) - 1e-15


@given(batch=outcome_batches(), rng=seeds())
def test_advantage_cases(batch, rng):
    """Â_i = R_i − mean_{j≠i} v_j: with two rollouts each scores against its partner's prediction; values=None
    (the code's bootstrap) is RLOO; a constant probe c gives R − c in groups of two or more."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    v = rng.random(len(R))
    A = poise_advantage(R, g, M, values=v)
    b, size = cross_rollout_baseline(v, g)
    expect = np.where(size > 1, R - b, 0.0)
    np.testing.assert_allclose(A, np.where(M, expect[:, None], 0.0), atol=1e-12)
    pair = poise_advantage(np.array([1.0, 0.0]), np.array([5, 5]), np.ones((2, 1), bool), values=np.array([0.2, 0.9]))
    assert pair[:, 0].tolist() == [1.0 - 0.9, 0.0 - 0.2]
    np.testing.assert_allclose(poise_advantage(R, g, M), rloo_advantage(R, g, M), atol=1e-12)
    c = float(rng.random())
    np.testing.assert_allclose(poise_advantage(R, g, M, values=np.full(len(R), c)),
                               np.where(M, np.where(size > 1, R - c, 0.0)[:, None], 0.0), atol=1e-12)


@given(batch=outcome_batches())
def test_targets_are_leave_one_out_means(batch):
    """The probe's target V_{−i} is the mean reward of the other rollouts (G = 2: the partner's reward); over a
    group the targets average to the group's mean reward (the code's 'pair_average' is the group mean itself)."""
    R, g = batch["rewards"], batch["group"]
    t = probe_targets(R, g)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        if len(rows) > 1:
            assert t[rows].mean() == pytest.approx(R[rows].mean(), abs=1e-12)
            for i in rows:
                assert t[i] == pytest.approx(np.delete(R[rows], list(rows).index(i)).mean(), abs=1e-12)
        np.testing.assert_allclose(probe_targets(R, g, "group_mean")[rows], R[rows].mean(), atol=1e-12)
    assert probe_targets(np.array([1.0, 0.0]), np.array([3, 3])).tolist() == [0.0, 1.0]


def ridge_by_augmented_lstsq(X, y, alpha):
    """Independent computation: standardise with the population std, then least squares on the augmented system
    [Zs, 1; √α I, 0] [w; c] = [y; 0] (the intercept is not penalised)."""
    sd = X.std(axis=0)
    Zs = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    N, F = Zs.shape
    A = np.block([[Zs, np.ones((N, 1))], [np.sqrt(alpha) * np.eye(F), np.zeros((F, 1))]])
    sol = np.linalg.lstsq(A, np.concatenate([y, np.zeros(F)]), rcond=None)[0]
    return Zs, sol[:F], sol[F]


@given(rng=seeds(), N=st.integers(3, 30), F=st.integers(1, 6), alpha=st.sampled_from([1e-3, 0.01, 1.0, 100.0]))
def test_probe_is_closed_form_ridge(rng, N, F, alpha):
    """The probe is the closed-form ridge solution on standardised features (scikit-learn StandardScaler + Ridge):
    it equals an augmented least-squares solve, the ridge objective's gradient vanishes there (central finite
    differences), the intercept is the mean target, and predictions are clipped to [clip_min, clip_max]."""
    X = rng.normal(size=(N, F)) * rng.uniform(0.1, 10, size=F) + rng.normal(size=F)
    if F > 1 and rng.random() < 0.3:
        X[:, -1] = 2.0  # a constant column: scale 1, coefficient 0
    y = rng.random(N)
    cfg = ProbeConfig(alpha=alpha, clip_min=-1e9, clip_max=1e9)
    p = probe_fit(X, y, cfg)
    Zs, w, c = ridge_by_augmented_lstsq(X, y, alpha)
    np.testing.assert_allclose(p.coef, w, atol=1e-8 * (1 + np.abs(w).max()))
    assert p.intercept == pytest.approx(c, abs=1e-9) and p.intercept == pytest.approx(y.mean(), abs=1e-12)

    def objective(wc):
        return float(((y - Zs @ wc[:F] - wc[F]) ** 2).sum() + alpha * (wc[:F] ** 2).sum())

    wc, h = np.append(p.coef, p.intercept), 1e-5
    grad = np.array([(objective(wc + h * e) - objective(wc - h * e)) / (2 * h) for e in np.eye(F + 1)])
    assert np.abs(grad).max() <= 1e-6 * max(1.0, objective(wc))
    np.testing.assert_allclose(probe_predict(p, X), Zs @ w + c, atol=1e-8)
    clipped = probe_predict(probe_fit(X, y, ProbeConfig(alpha=alpha)), X)
    np.testing.assert_allclose(clipped, np.clip(Zs @ w + c, 0.0, 1.0), atol=1e-8)


@given(rng=seeds(), N=st.integers(8, 30))
def test_probe_invariances(rng, N):
    """Standardisation makes the probe invariant to per-feature affine rescaling (including sign flips); a huge α
    predicts the mean target; with PCA keeping every component of a block and α → 0, predictions equal the
    no-PCA probe's (both are least squares on the same column span)."""
    dp, dr, F = 3, 2, 6
    X = rng.normal(size=(N, F))
    y = rng.random(N)
    cfg = ProbeConfig(alpha=0.3, clip_min=-1e9, clip_max=1e9)
    a, s = rng.normal(size=F), rng.choice([-1, 1], size=F) * rng.uniform(0.1, 10, size=F)
    Q = rng.normal(size=(4, F))
    np.testing.assert_allclose(probe_predict(probe_fit(X * s + a, y, cfg), Q * s + a), probe_predict(probe_fit(X, y, cfg), Q),
                               atol=1e-9)
    assert np.allclose(probe_predict(probe_fit(X, y, ProbeConfig(alpha=1e12)), Q), np.clip(y.mean(), 0, 1), atol=1e-9)
    tiny = dict(alpha=1e-10, clip_min=-1e9, clip_max=1e9)
    full = ProbeConfig(prompt_pca_dim=dp, response_pca_dim=dr, hidden_dims=(dp, dr), **tiny)
    np.testing.assert_allclose(probe_predict(probe_fit(X, y, full), Q), probe_predict(probe_fit(X, y, ProbeConfig(**tiny)), Q),
                               atol=1e-6)
    cut = ProbeConfig(prompt_pca_dim=1, response_pca_dim=1, hidden_dims=(dp, dr), alpha=0.3)
    assert probe_fit(X, y, cut).coef.shape == (1 + 1 + F - dp - dr,)


def test_features_pool_last_tokens_and_entropy_spans():
    """ϕ = [mean of the last n prompt states; mean of the last n response states; (mean entropy over the response,
    the reasoning span, the answer span)], dim 2d + 3; fewer than n states pool all of them, empty spans give 0."""
    rng = np.random.default_rng(0)
    P, H = rng.normal(size=(15, 4)), rng.normal(size=(3, 4))
    e = rng.random(6)
    reas, ans = np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 0, 0, 0, 1, 1], bool)
    phi = poise_features(P, H, e, reas, ans, n=10)
    assert phi.shape == (11,)
    np.testing.assert_allclose(phi[:4], sum(P[t] for t in range(5, 15)) / 10)
    np.testing.assert_allclose(phi[4:8], (H[0] + H[1] + H[2]) / 3)
    np.testing.assert_allclose(phi[8:], [e.mean(), e[:3].mean(), e[4:].mean()])
    assert poise_features(P, H, e)[9:].tolist() == [0.0, 0.0]
    assert last_n_mean(np.zeros((0, 4))).tolist() == [0.0] * 4
    assert entropy_features(np.zeros(0), np.zeros(0, bool), np.zeros(0, bool)).tolist() == [0.0, 0.0, 0.0]


def test_buffer_keeps_newest_complete_groups():
    """The online buffer appends each step's rows and drops the oldest complete prompt groups while more than
    max_rows remain; it never splits a group, and never returns more than max_rows rows."""
    buf = None
    for step_id in range(4):
        g = np.repeat(np.arange(3) + 10 * step_id, 2)
        buf = buffer_update(buf, np.full((6, 2), float(step_id)), np.arange(6.0), g, max_rows=8)
        assert len(buf.targets) <= 8 and len(buf.targets) % 2 == 0
    assert buf.group.tolist() == [22, 22, 30, 30, 31, 31, 32, 32]
    assert buf.features[:, 0].tolist() == [2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert len(buffer_update(None, np.ones((3, 1)), np.ones(3), np.array([1, 1, 1]), max_rows=2).targets) == 0


def test_singletons_and_masks_defined():
    """A rollout without siblings gets 0 (or its reward with singleton='raw'); masked positions and fully masked
    rows are 0; a fully masked row still serves as a sibling (its prediction is read)."""
    R, g = np.array([1.0, 0.0, 1.0]), np.array([4, 9, 9])
    M = np.array([[True, True], [True, False], [False, False]])
    v = np.array([0.3, 0.5, 0.25])
    A = poise_advantage(R, g, M, values=v)
    assert A.tolist() == [[0.0, 0.0], [-0.25, 0.0], [0.0, 0.0]]
    assert poise_advantage(R, g, M, POISEConfig(singleton="raw"), values=v)[0].tolist() == [1.0, 1.0]


def test_bad_input_raises():
    """Bad input raises RLSpecValueError naming the argument."""
    R, g, M = np.array([1.0, 0.0]), np.array([0, 0]), np.ones((2, 2), bool)
    with pytest.raises(RLSpecValueError, match="values"):
        poise_advantage(R, g, M, values=np.array([0.5, np.nan]))
    with pytest.raises(RLSpecValueError, match="values"):
        poise_advantage(R, g, M, values=np.array([0.5]))
    with pytest.raises(RLSpecValueError, match="alpha"):
        ProbeConfig(alpha=0.0)
    with pytest.raises(RLSpecValueError, match="hidden_dims"):
        ProbeConfig(prompt_pca_dim=4)
    with pytest.raises(RLSpecValueError, match="clip"):
        ProbeConfig(clip_min=1.0, clip_max=0.0)
    with pytest.raises(RLSpecValueError, match="targets"):
        probe_fit(np.ones((3, 2)), np.ones(2))
    with pytest.raises(RLSpecValueError, match="features"):
        probe_fit(np.array([[1.0, np.inf]]), np.ones(1))
    with pytest.raises(RLSpecValueError, match="query"):
        poise_probe(np.ones((3, 2)), np.ones(3), np.ones((2, 3)))
    with pytest.raises(RLSpecValueError, match="response_hidden"):
        poise_features(np.ones((3, 4)), np.ones((3, 5)), np.ones(3))
    with pytest.raises(RLSpecValueError, match="target"):
        probe_targets(np.ones(2), np.array([0, 0]), "mean")
    with pytest.raises(RLSpecValueError, match="max_rows"):
        buffer_update(None, np.ones((2, 1)), np.ones(2), np.array([0, 0]), max_rows=0)

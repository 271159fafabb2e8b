"""Properties of RiskPO (Risk-based Policy Optimization, arXiv 2510.00911): the mixed value-at-risk objective, its
likelihood-ratio gradient (Theorem 1), bundling of questions, the quantile tracker and the clipped loss.

Risk measures and their gradients are checked exactly on enumerable softmax distributions: the quantile integral
is written here independently (a loop over atoms) and differentiated by central finite differences; losses are
compared with the independent GSPO and PPO references.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from properties.strategies import clean, finite_difference, outcome_batches, policy_batches, seeds
from rlspec.reference import aggregation, riskpo
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.gspo import GSPOConfig, gspo_loss
from rlspec.reference.ppo import PPOConfig, ppo_clip_loss

aggs = st.sampled_from(aggregation.MODES)


def softmax(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max())
    return e / e.sum()


def integral(x: np.ndarray, p: np.ndarray, u: float) -> float:
    """∫_0^u F⁻¹(v) dv for a finite distribution, by walking its atoms in increasing order (independent)."""
    total, F = 0.0, 0.0
    for k in np.argsort(x):
        lo, hi = F, F + p[k]
        total += x[k] * max(0.0, min(hi, u) - lo)
        F = hi
    return total


def inv_cdf(x: np.ndarray, p: np.ndarray, u: float) -> float:
    """F⁻¹(u): the first atom (in increasing order) at which the CDF reaches u (to 1e-12: summed masses round)."""
    F = 0.0
    for k in np.argsort(x):
        F += p[k]
        if F >= u - 1e-12:
            return float(x[k])
    return float(x.max())


def cdf_gap(p: np.ndarray, x: np.ndarray, levels) -> float:
    """Distance of the levels from the CDF's jump heights (Theorem 1 needs no atom exactly at a level)."""
    F = np.cumsum(p[np.argsort(x)])
    return float(min(np.abs(F[None, :] - np.asarray(levels)[:, None]).min(), 1.0))


def score_grad(theta: np.ndarray, f) -> np.ndarray:
    """Central FD gradient of the scalar f(softmax(θ)) (K,)."""
    h, g = 1e-6, np.zeros_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        g[j] = (f(softmax(theta + e)) - f(softmax(theta - e))) / (2 * h)
    return g


def lr_gradient(theta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """E_π[w ∇_θ log π] = Σ_k π_k w_k (e_k − π) for a softmax (exact)."""
    p = softmax(theta)
    return p * w - p * (p @ w)


def distribution(rng):
    K = int(rng.integers(2, 8))
    return rng.normal(scale=2.0, size=K), rng.normal(size=K) * rng.choice([0.5, 1.5])


# --------------------------------------------------------------------------- the loss
@given(batch=policy_batches(max_B=5, max_T=5), ratio=st.sampled_from(riskpo.RATIOS), agg=aggs,
       eps=st.sampled_from([(0.2, 0.2), (0.1, 0.28)]), clamp=st.sampled_from([None, 20.0]))
def test_loss_hand_gradient_matches_finite_differences(batch, ratio, agg, eps, clamp):
    """Gradient claim (derived): the hand dlogp equals the central finite difference (float64) for the sequence
    ratio (coupled across a sequence) and the token ratio, every aggregation, garbage padding."""
    m = batch["mask"]
    cfg = riskpo.RiskPOConfig(ratio=ratio, agg=agg, eps_low=eps[0], eps_high=eps[1], log_ratio_clamp=clamp)
    lr = clean(batch["logp"], m) - clean(batch["old_logp"], m)
    n = np.maximum(m.sum(axis=1), 1)
    s = np.exp(lr.sum(axis=1) / n)
    edges = np.concatenate([s, np.exp(lr[m])]) if m.any() else np.ones(1)
    assume(np.abs(edges[:, None] - np.array([1 - eps[0], 1 + eps[1]])[None, :]).min() > 1e-4)  # off the clip kinks

    def run(lp):
        return riskpo.riskpo_loss(lp, batch["old_logp"], batch["adv"], m, config=cfg, group=batch["group"])

    _, dlogp = run(batch["logp"])
    fd = finite_difference(lambda lp: run(lp)[0], batch["logp"], m)
    np.testing.assert_allclose(dlogp, fd, atol=1e-6 * max(1.0, np.abs(fd).max()), rtol=1e-5)
    assert (dlogp[~m] == 0).all()


@given(batch=policy_batches(), agg=aggs, eps=st.sampled_from([(0.2, 0.2), (3e-4, 4e-4)]))
def test_sequence_ratio_is_gspo(batch, agg, eps):
    """Paper's objective (per our notes): min(s A, clip(s, 1 ± ε) A) with the geometric-mean sequence ratio — the GSPO
    loss (rlspec.reference.gspo, an independent module) with RiskPO's clip range: same loss and gradient."""
    m, g = batch["mask"], batch["group"]
    a = riskpo.riskpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, group=g,
                           config=riskpo.RiskPOConfig(agg=agg, eps_low=eps[0], eps_high=eps[1]))
    b = gspo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, group=g,
                  config=GSPOConfig(agg=agg, eps_low=eps[0], eps_high=eps[1]))
    assert a[0] == pytest.approx(b[0], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


@given(batch=policy_batches(), agg=aggs)
def test_token_ratio_is_ppo(batch, agg):
    """Official code's loss: verl's token-level PPO clip (ε = 0.2): ratio='token' equals rlspec.reference.ppo."""
    m, g = batch["mask"], batch["group"]
    a = riskpo.riskpo_loss(batch["logp"], batch["old_logp"], batch["adv"], m, group=g,
                           config=riskpo.RiskPOConfig(agg=agg, ratio="token"))
    b = ppo_clip_loss(batch["logp"], batch["old_logp"], batch["adv"], m, group=g, config=PPOConfig(agg=agg))
    assert a[0] == pytest.approx(b[0], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- Theorem 1 and the MVaR gradient
@given(z=st.floats(-50, 50), a=st.floats(-10, 10), width=st.floats(0, 10))
def test_g_bounds_and_shape(z, a, width):
    """Theorem 1's weight g(z, a, b) = (z − a)⁺ − (z − b)⁺ + a − b (a ≤ b): g ∈ [a − b, 0]; g = a − b for z ≤ a,
    z − b for a ≤ z ≤ b, 0 for z ≥ b; without the offset it is the clamp of z − a to [0, b − a]."""
    b = a + width
    g = float(riskpo.g_rvar(z, a, b))
    assert a - b - 1e-12 <= g <= 1e-12
    expected = a - b if z <= a else (z - b if z <= b else 0.0)
    assert g == pytest.approx(expected, abs=1e-12)
    assert float(riskpo.g_rvar(z, a, b, offset=False)) == pytest.approx(min(max(z - a, 0.0), b - a), abs=1e-12)


@given(rng=seeds(), alpha=st.floats(0.0, 0.9), width=st.floats(0.05, 1.0))
def test_theorem1_rvar_gradient_exact(rng, alpha, width):
    """Theorem 1: ∇_θ RVaR_{α:β}(R) = (1/(β − α))·E[g(R, q_α, q_β)·∇_θ log π] for a softmax policy over K outcomes
    with distinct rewards — the left side by central finite differences of the quantile integral (computed here
    atom by atom), the right side exactly; exact whenever no CDF jump sits at α or β."""
    beta = min(alpha + width, 1.0)
    x, theta = distribution(rng)
    p = softmax(theta)
    levels = [v for v in (alpha, beta) if 0 < v < 1]
    assume(not levels or cdf_gap(p, x, levels) > 1e-4)

    def J(q):
        return (integral(x, q, beta) - integral(x, q, alpha)) / (beta - alpha)

    assert riskpo.rvar(x, p, alpha, beta) == pytest.approx(J(p), rel=1e-12, abs=1e-12)
    w = riskpo.g_rvar(x, inv_cdf(x, p, alpha), inv_cdf(x, p, beta)) / (beta - alpha)
    np.testing.assert_allclose(lr_gradient(theta, w), score_grad(theta, J), atol=1e-7, rtol=1e-6)


@given(rng=seeds(), alpha=st.floats(0.05, 0.5), width=st.floats(0.05, 0.5), omega=st.floats(0.0, 3.0),
       w_mix=st.floats(0.1, 3.0))
def test_mvar_gradient_exact(rng, alpha, width, omega, w_mix):
    """MVaR gradient (Theorem 1 with the CVaR term): ∇MVaR^ω = E[w ∇log π], w = (1 + ω)(−(q_α − R)⁺) + g(R, q_α, q_β),
    exactly on enumerable softmax distributions; the code's normalised mix gives ∇(w_mix·CVaR_α + RVaR_{α:β})/(w_mix + 1)."""
    beta = min(alpha + width, 0.99)
    x, theta = distribution(rng)
    p = softmax(theta)
    assume(cdf_gap(p, x, [alpha, beta]) > 1e-4)
    qa, qb = inv_cdf(x, p, alpha), inv_cdf(x, p, beta)

    def M(q):
        La, Lb = integral(x, q, alpha), integral(x, q, beta)
        return (1 + omega) * La + (Lb - La)

    assert riskpo.mvar(x, p, alpha, beta, omega) == pytest.approx(M(p), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(lr_gradient(theta, riskpo.mvar_weight(x, qa, qb, omega)), score_grad(theta, M),
                               atol=1e-7, rtol=1e-6)

    def code_objective(q):
        La, Lb = integral(x, q, alpha), integral(x, q, beta)
        return (w_mix * La / alpha + (Lb - La) / (beta - alpha)) / (w_mix + 1)

    w = riskpo.mvar_weight_normalized(x, qa, qb, alpha, beta, w_mix)
    np.testing.assert_allclose(lr_gradient(theta, w), score_grad(theta, code_objective), atol=1e-7, rtol=1e-6)


@given(rng=seeds())
def test_mean_limit(rng):
    """Reduction to the mean objective: α = 0, β = 1, ω = 0 gives MVaR = RVaR_{0:1} = E[R], the weight is
    g(R, min R, max R) = R − max R (a constant baseline), and E[w ∇log π] = ∇E[R] exactly."""
    x, theta = distribution(rng)
    p = softmax(theta)
    assert riskpo.mvar(x, p, 0.0, 1.0, 0.0) == pytest.approx(float(p @ x), rel=1e-12, abs=1e-12)
    assert riskpo.rvar(x, p, 0.0, 1.0) == pytest.approx(float(p @ x), rel=1e-12, abs=1e-12)
    w = riskpo.mvar_weight(x, riskpo.quantile(x, p, 0.0), riskpo.quantile(x, p, 1.0), 0.0)
    np.testing.assert_allclose(w, x - x.max(), atol=1e-12)
    np.testing.assert_allclose(lr_gradient(theta, w), score_grad(theta, lambda q: q @ x), atol=1e-7, rtol=1e-6)


@given(rng=seeds(), alpha=st.floats(0.05, 0.9), width=st.floats(0.05, 1.0), omega=st.floats(0.0, 3.0))
def test_risk_measure_identities(rng, alpha, width, omega):
    """Definitions: RVaR_{0:β} = CVaR_β; MVaR^ω_{α:β} = ω·α·CVaR_α + β·CVaR_β; and, with α and β on CDF jumps
    (no partial atoms), RVaR_{α:β} = E[R | q_α < R ≤ q_β] — the conditional mean of the middle of the distribution."""
    beta = min(alpha + width, 1.0)
    x, theta = distribution(rng)
    p = softmax(theta)
    assert riskpo.rvar(x, p, 0.0, beta) == pytest.approx(riskpo.cvar(x, p, beta), rel=1e-12, abs=1e-12)
    expected = omega * alpha * riskpo.cvar(x, p, alpha) + beta * riskpo.cvar(x, p, beta)
    assert riskpo.mvar(x, p, alpha, beta, omega) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    order = np.argsort(x)
    F = np.cumsum(p[order])
    i, j = sorted(rng.choice(x.size, size=2, replace=False))
    mid = order[i + 1:j + 1]
    cond = float(p[mid] @ x[mid] / p[mid].sum())
    assert riskpo.rvar(x, p, F[i], F[j]) == pytest.approx(cond, rel=1e-9, abs=1e-12)


@given(z=st.lists(st.floats(-20, 20), min_size=1, max_size=10), qa=st.floats(-5, 5), gap=st.floats(0, 5),
       alpha=st.floats(0.05, 0.5), width=st.floats(0.05, 0.5), w_mix=st.floats(0.0, 5.0), offset=st.booleans())
def test_code_mix_is_scaled_paper_mvar(z, qa, gap, alpha, width, w_mix, offset):
    """Paper vs code (our identity): the code's (w·A_CVaR + A_RVaR)/(w + 1) equals the paper's MVaR^ω weight divided by
    (w + 1)(β − α), with ω = w(β − α)/α − 1: the code optimises an MVaR^ω objective (whenever ω ≥ 0)."""
    beta = alpha + width
    omega = w_mix * width / alpha - 1
    assume(omega >= 0)
    z, qb = np.array(z), qa + gap
    code = riskpo.mvar_weight_normalized(z, qa, qb, alpha, beta, w_mix, offset)
    paper = riskpo.mvar_weight(z, qa, qb, omega, offset) / ((w_mix + 1) * (beta - alpha))
    np.testing.assert_allclose(code, paper, rtol=1e-10, atol=1e-12)


@given(rng=seeds(), eta=st.sampled_from([1e-5, 1e-6]))
def test_entropy_change_is_minus_covariance(rng, eta):
    """Prop. 1 (tabular softmax, natural-gradient step θ ← θ + η·A): dH/dη at η = 0 is −Cov_π(log π, A), here with
    A the MVaR weight of the outcomes (any A works: the identity is ∂H/∂θ_a = −π_a(log π_a + H))."""
    x, theta = distribution(rng)
    p = softmax(theta)
    A = riskpo.mvar_weight(x, riskpo.quantile(x, p, 0.2), riskpo.quantile(x, p, 0.8), 0.5)

    def H(t):
        q = softmax(t)
        return float(-(q * np.log(q)).sum())

    dH = (H(theta + eta * A) - H(theta - eta * A)) / (2 * eta)
    cov = float(p @ (np.log(p) * A) - (p @ np.log(p)) * (p @ A))
    assert dH == pytest.approx(-cov, rel=1e-4, abs=1e-8)


# --------------------------------------------------------------------------- bundling and the advantage
@given(rng=seeds(), B=st.integers(1, 6))
def test_bundles_without_replacement(rng, B):
    """Bundling: bundles hold ≤ B questions (consecutive by first appearance); each paper takes exactly one response of
    each question of its bundle, no response is used twice, a bundle has min_k G_k papers; R_B is the sum."""
    n_q = int(rng.integers(1, 9))
    sizes = rng.integers(1, 6, size=n_q)
    ids = rng.choice(np.arange(-20, 20), size=n_q, replace=False)
    g = rng.permutation(np.repeat(ids, sizes))
    R = rng.normal(size=g.size)
    bundle, paper, q_of_row = riskpo.make_bundles(g, B)
    first = [int(np.flatnonzero(g == k)[0]) for k in ids]
    order = list(ids[np.argsort(first)])
    for i, k in enumerate(g):
        assert q_of_row[i] == order.index(k) and bundle[i] == order.index(k) // B
    S = riskpo.paper_scores(R, paper)
    for j in range(S.size):
        rows = np.flatnonzero(paper == j)
        qs = q_of_row[rows]
        assert len(set(qs)) == len(qs) == len(set(q_of_row[bundle == bundle[rows[0]]]))
        assert S[j] == pytest.approx(R[rows].sum(), rel=1e-12, abs=1e-12)
    for b in np.unique(bundle):
        qs = np.unique(q_of_row[bundle == b])
        assert qs.size <= B
        assert len(np.unique(paper[(bundle == b) & (paper >= 0)])) == min(int((q_of_row == q).sum()) for q in qs)


@given(batch=outcome_batches(max_B=16), B=st.integers(1, 4), scope=st.sampled_from(riskpo.QUANTILE_SCOPES),
       mix=st.sampled_from(riskpo.MIXES))
def test_uniform_credit_shares_paper_advantage(batch, B, scope, mix):
    """Bundling (paper): every response of paper j receives A^{(j)} — rows of one paper share one advantage, which
    equals the weight of the paper's score at the batch quantiles; left-over responses get 0; padding is 0."""
    cfg = riskpo.RiskPOAdvConfig(bundle_size=B, quantile_scope=scope, mix=mix)
    full = np.ones((batch["group"].size, 1), bool)
    A = riskpo.riskpo_advantage(batch["rewards"], batch["group"], full, cfg)[:, 0]
    _, paper, _ = riskpo.make_bundles(batch["group"], B)
    for j in np.unique(paper[paper >= 0]):
        assert np.ptp(A[paper == j]) == 0
    assert (A[paper < 0] == 0).all()
    masked = riskpo.riskpo_advantage(batch["rewards"], batch["group"], batch["mask"], cfg)
    np.testing.assert_array_equal(masked, np.where(batch["mask"], A[:, None], 0.0))


def _pmf_sum(ps):
    pmf = np.array([1.0])
    for p in ps:
        pmf = np.convolve(pmf, [1 - p, p])
    return pmf


@settings(max_examples=20)
@given(rng=seeds(), B=st.integers(2, 3), G=st.integers(2, 3))
def test_bundling_never_raises_tie_probability(rng, B, G):
    """Bundling enriches the signal (paper's claim, in our exact form): with binary rewards, a bundle's advantages are all 0
    exactly when its G papers tie, and P(all G bundle scores equal) = Σ_s P(R_B = s)^G ≤ Σ_x P(R_1 = x)^G, the
    single question's (Young's inequality ‖f∗g‖_G ≤ ‖f‖_G‖g‖_1). Checked by enumerating all 2^{BG} outcomes through
    riskpo_advantage."""
    ps = rng.uniform(0.05, 0.95, size=B)
    g = np.repeat(np.arange(B), G)
    no_signal = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=B * G):
        R = np.array(bits)
        prob = float(np.prod(np.where(R == 1, np.repeat(ps, G), 1 - np.repeat(ps, G))))
        A = riskpo.riskpo_advantage(R, g, np.ones((R.size, 1), bool), riskpo.RiskPOAdvConfig(bundle_size=B))
        no_signal += prob * float((A == 0).all())
    bundled = float((_pmf_sum(ps) ** G).sum())
    single = ps[0] ** G + (1 - ps[0]) ** G
    assert no_signal == pytest.approx(bundled, rel=1e-10)
    assert bundled < single


@settings(max_examples=20)
@given(rng=seeds(), omega=st.floats(0.0, 2.0))
def test_advantage_estimates_mvar_gradient(rng, omega):
    """Plug-in estimator (Theorem 1 in sample form): with mix='integral', B = 1 and one question, the advantage of
    response i is w(R_i) at the empirical quantiles, so Σ_i A_i ∇log π(y_i)/G over a sample equals E_{π̂}[w ∇log π]
    for the sample's empirical distribution π̂ — checked against w computed from the empirical quantile function."""
    G = int(rng.integers(2, 12))
    R = np.round(rng.normal(size=G), 1)
    cfg = riskpo.RiskPOAdvConfig(bundle_size=1, mix="integral", omega=omega)
    A = riskpo.riskpo_advantage(R, np.zeros(G, int), np.ones((G, 1), bool), cfg)[:, 0]
    p_hat = np.full(G, 1.0 / G)
    w = riskpo.mvar_weight(R, inv_cdf(R, p_hat, 0.2), inv_cdf(R, p_hat, 0.8), omega)
    np.testing.assert_allclose(A, w, rtol=1e-12, atol=1e-12)


@given(batch=outcome_batches(max_B=16))
def test_mean_limit_advantage(batch):
    """Mean limit of the advantage: α = 0, β = 1, ω = 0, B = 1 (no bundling) gives A_i = R_i − max_j R_j (the batch's),
    i.e. the mean objective's REINFORCE weight with a constant baseline."""
    cfg = riskpo.RiskPOAdvConfig(alpha=0.0, beta=1.0, mix="integral", omega=0.0, bundle_size=1)
    R = batch["rewards"]
    A = riskpo.riskpo_advantage(R, batch["group"], np.ones((R.size, 1), bool), cfg)[:, 0]
    _, paper, _ = riskpo.make_bundles(batch["group"], 1)
    np.testing.assert_allclose(A[paper >= 0], (R - R.max())[paper >= 0], atol=1e-12)


@settings(max_examples=10)
@given(rng=seeds(), u=st.sampled_from([0.2, 0.5, 0.8, 0.9]))
def test_quantile_tracker_converges(rng, u):
    """Quantile tracking (code's stochastic approximation, q ← q + γ_k(u − mean 1{R < q})): on N(0, 1) bundle scores
    (256 per step, γ_k = k^−0.6, 3000 steps, seeded — a deterministic check, no false alarms), q ends within 0.05 of
    Φ⁻¹(u); at the true quantile the expected increment is 0."""
    from scipy.stats import norm

    q = np.array([rng.normal()])
    for k in range(1, 3001):
        q = riskpo.quantile_track(q, rng.normal(size=256), [u], k ** -0.6)
    assert abs(q[0] - norm.ppf(u)) < 0.05


def test_defined_edge_cases():
    """Defined cases: an all-equal batch gives 0 (q_α = q_β = R_B); singleton questions and B = 1 are fine; ragged
    groups leave rows without a paper at 0; an all-false mask gives zeros; std_normalize of an all-equal bundle
    divides 0 by ε (0)."""
    g = np.array([0, 0, 1, 1, 1, 2])
    full = np.ones((6, 2), bool)
    for cfg in (riskpo.RiskPOAdvConfig(), riskpo.RiskPOAdvConfig(std_normalize=True, credit="std")):
        assert (riskpo.riskpo_advantage(np.ones(6), g, full, cfg) == 0).all()
    A = riskpo.riskpo_advantage(np.arange(6.0), g, full, riskpo.RiskPOAdvConfig(bundle_size=3))
    assert np.isfinite(A).all() and (A[4] == 0).all()  # question 1 has 3 rows, the bundle 1 paper only
    assert (riskpo.riskpo_advantage(np.arange(6.0), g, np.zeros((6, 2), bool)) == 0).all()
    A1 = riskpo.riskpo_advantage(np.array([3.0]), np.array([7]), np.ones((1, 1), bool))
    assert (A1 == 0).all()


@given(batch=outcome_batches(max_B=12), qa=st.floats(-1, 1), gap=st.floats(0, 2))
def test_quantiles_argument_overrides_estimates(batch, qa, gap):
    """Tracked quantiles (the code's 'track' mode): passing quantiles=(q_α, q_β) uses them for every paper."""
    cfg = riskpo.RiskPOAdvConfig(bundle_size=2)
    full = np.ones((batch["group"].size, 1), bool)
    A = riskpo.riskpo_advantage(batch["rewards"], batch["group"], full, cfg, quantiles=(qa, qa + gap))[:, 0]
    _, paper, _ = riskpo.make_bundles(batch["group"], 2)
    S = riskpo.paper_scores(batch["rewards"], paper)
    w = riskpo.mvar_weight_normalized(S, qa, qa + gap, 0.2, 0.8, 1.5)
    np.testing.assert_allclose(A[paper >= 0], w[paper[paper >= 0]], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("field,bad", [("alpha", -0.1), ("beta", 0.1), ("bundle_size", 0), ("mix", "sum"),
                                       ("quantile_method", "nearest"), ("credit", "score"), ("w_mix", -1.0)])
def test_advantage_config_rejects_bad_values(field, bad):
    """Bad input: the advantage config names the field that is out of range (beta must exceed alpha)."""
    with pytest.raises(RLSpecValueError, match=field):
        riskpo.RiskPOAdvConfig(**{field: bad})


def test_loss_config_rejects_bad_ratio():
    """Bad input: ratio must be 'sequence' or 'token'."""
    with pytest.raises(RLSpecValueError, match="ratio"):
        riskpo.RiskPOConfig(ratio="bundle")

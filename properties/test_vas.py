"""Properties of VAS (arXiv 2405.06639) on exact problems: a bandit and the depth-d token tree.

Exact expectations everywhere (enumeration over every response of :mod:`rlspec.reference.envs.token_tree`);
the one sampled test (TD(λ) value learning) fixes its seeds and states its tolerance.
Run ``python properties/test_vas.py`` to redraw docs/algorithms/img/vas.png.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.strategies import finite_difference
from rlspec.reference import vas
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import token_tree as tt
from rlspec.reference.value_clip import ValueClipConfig, value_clip_loss

seeds = st.integers(0, 2**32 - 1)
BETAS = (0.0, 0.3, 1.0, 3.0, 10.0, 100.0)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def counterexample_tree() -> tt.TokenTree:
    """K = 2, d = 2. Branch 0 is a coin flip between rewards 1 and 0 (Q^{π₀} = 0.5); branch 1 almost surely
    gives 0.6 (Q^{π₀} = 0.594). Greedy on Q^{π₀} picks branch 1, worth 0.6 even when decoded perfectly,
    while branch 0 is worth 1 once its second token is also steered."""
    pi0 = (np.array([[0.5, 0.5]]), np.array([[0.5, 0.5], [0.99, 0.01]]))
    return tt.TokenTree(pi0=pi0, r=np.array([1.0, 0.0, 0.6, 0.0]))


# ---------------------------------------------------------------------------- bandit (depth 1)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, K=st.integers(2, 6), beta=st.floats(0.05, 30.0))
def test_tilt_maximises_the_kl_objective_on_a_bandit(seed, K, beta):
    """KL-regularised optimum (§3, via notes): π_β = π₀e^{βr}/Z maximises E_π r − KL(π‖π₀)/β over the simplex,
    with value (1/β) log E_{π₀} e^{βr}; VAS's policy on a one-token tree is exactly this tilt."""
    rng = np.random.default_rng(seed)
    p0, r = rng.dirichlet(np.ones(K)), rng.normal(size=K)
    pb = vas.vas_policy(p0, r, beta)

    def F(p):
        return p @ r - (p * np.log(p / p0)).sum() / beta

    np.testing.assert_allclose(pb, p0 * np.exp(beta * r) / (p0 * np.exp(beta * r)).sum(), rtol=1e-12)
    assert abs(F(pb) - np.log(p0 @ np.exp(beta * r)) / beta) < 1e-10
    for _ in range(20):
        assert F(rng.dirichlet(np.ones(K) * 0.5)) <= F(pb) + 1e-12


@settings(max_examples=30, deadline=None)
@given(seed=seeds, K=st.integers(2, 6), beta=st.floats(0.001, 20.0))
def test_bandit_reward_derivative_is_the_variance(seed, K, beta):
    """Bandit: d/dβ E_{π_β} r = Var_{π_β}(r) ≥ 0 (central FD), and KL(π_β‖π₀) is non-decreasing in β."""
    rng = np.random.default_rng(seed)
    p0, r = rng.dirichlet(np.ones(K)), rng.normal(size=K)
    h = 1e-5
    J = lambda b: vas.vas_policy(p0, r, b) @ r  # noqa: E731
    pb = vas.vas_policy(p0, r, beta)
    var = pb @ (r - pb @ r) ** 2
    fd = (J(beta + h) - J(max(beta - h, 0.0))) / (beta + h - max(beta - h, 0.0))
    assert abs(fd - var) < 1e-6 * max(1.0, var)
    kls = [(q * np.log(q / p0)).sum() for q in (vas.vas_policy(p0, r, b) for b in np.linspace(0, beta + 1, 30))]
    assert all(b >= a - 1e-12 for a, b in zip(kls, kls[1:]))


# ---------------------------------------------------------------------------- token tree


@settings(max_examples=30, deadline=None)
@given(seed=seeds, K=st.integers(2, 3), d=st.integers(1, 3), binary=st.booleans())
def test_vas_improves_on_the_base_policy_performance_difference(seed, K, d, binary):
    """Performance-difference lemma: J(π_β) − J(π₀) = Σ_t Σ_s d^{π_β}_t(s) Σ_a π_β(a|s) A^{π₀}(s, a), both sides
    computed exactly; every state's term is ≥ 0 (π_β tilts toward larger Q^{π₀}), so VAS with the exact
    Q^{π₀} never does worse than the base policy, for every β ≥ 0."""
    rng = np.random.default_rng(seed)
    tree = tt.random_tree(rng, K, d, reward="binary" if binary else "normal")
    Q, V = tt.q_values(tree), tt.values(tree)
    p_base = tt.sequence_probs(tree)
    for beta in BETAS:
        pi = vas.vas_tree_policy(tree, beta)
        lhs = tt.sequence_probs(tree, pi) @ tree.r - p_base @ tree.r
        dpi = tt.state_probs(tree, pi)
        per_state = [(pi[t] * (Q[t] - V[t][:, None])).sum(axis=1) for t in range(d)]
        assert all((g >= -1e-12).all() for g in per_state)
        rhs = sum(dpi[t] @ per_state[t] for t in range(d))
        assert abs(lhs - rhs) < 1e-12
        assert lhs >= -1e-12


@settings(max_examples=30, deadline=None)
@given(seed=seeds, K=st.integers(2, 8), beta=st.floats(0.001, 20.0))
def test_per_state_surrogate_is_monotone_in_beta(seed, K, beta):
    """At each state, d/dβ E_{a∼π_β(·|s)} Q^{π₀}(s, a) = Var_{π_β(·|s)} Q^{π₀}(s, ·) ≥ 0 (central FD)."""
    rng = np.random.default_rng(seed)
    p0, q = rng.dirichlet(np.ones(K)), rng.normal(size=K) * 2
    h = 1e-5
    f = lambda b: vas.vas_policy(p0, q, b) @ q  # noqa: E731
    pb = vas.vas_policy(p0, q, beta)
    lo = max(beta - h, 0.0)
    assert abs((f(beta + h) - f(lo)) / (beta + h - lo) - pb @ (q - pb @ q) ** 2) < 1e-6


def test_expected_reward_is_not_monotone_in_beta_in_general():
    """'Reward grows with β' is not a theorem for VAS's Q^{π₀}: on :func:`counterexample_tree` the exact
    J(π_β) rises from 0.547 (β = 0) to ≈ 0.75 (β = 5) and falls to 0.6 as β → ∞ (greedy on Q^{π₀}
    commits to the branch with the larger base-policy value). It stays ≥ J(π₀) throughout (the lemma)."""
    tree = counterexample_tree()
    J = {b: tt.expected_reward(tree, vas.vas_tree_policy(tree, b)) for b in (0.0, 5.0, 200.0)}
    assert abs(J[0.0] - (0.5 * 0.5 + 0.5 * 0.594)) < 1e-12
    assert J[5.0] > 0.74 and abs(J[200.0] - 0.6) < 1e-6
    assert J[5.0] > J[200.0] > J[0.0]


@settings(max_examples=25, deadline=None)
@given(seed=seeds, K=st.integers(2, 3), d=st.integers(1, 3))
def test_soft_q_recovers_the_kl_optimum(seed, K, d):
    """With the soft Q*_β of the KL objective (soft value iteration) in place of Q^{π₀}, the VAS rule gives
    π₀(y) e^{βr(y)}/Z exactly, whose expected reward is non-decreasing in β (derivative Var ≥ 0)."""
    rng = np.random.default_rng(seed)
    tree = tt.random_tree(rng, K, d)
    p0 = tt.sequence_probs(tree)
    Js = []
    for beta in np.linspace(0.05, 15, 25):
        Vs = tt.soft_values(tree, beta)
        Qs = tuple(Vs[t + 1].reshape(K**t, K) for t in range(d))
        p = tt.sequence_probs(tree, vas.vas_tree_policy(tree, beta, Qs))
        w = p0 * np.exp(beta * (tree.r - tree.r.max()))
        np.testing.assert_allclose(p, w / w.sum(), rtol=1e-9, atol=1e-15)
        Js.append(p @ tree.r)
    assert all(b >= a - 1e-12 for a, b in zip(Js, Js[1:]))


@settings(max_examples=25, deadline=None)
@given(seed=seeds, K=st.integers(2, 3), d=st.integers(1, 3), beta=st.floats(0.1, 20.0))
def test_vas_is_below_the_kl_optimum(seed, K, d, beta):
    """F_β(π) = J(π) − KL(π‖π₀)/β: F_β(π_β^{VAS}) ≤ max F_β = (1/β) log E_{π₀} e^{βr} (the soft optimum);
    the gap is 0 on a one-token tree, where Q^{π₀} = r = Q*."""
    rng = np.random.default_rng(seed)
    tree = tt.random_tree(rng, K, d)
    pi = vas.vas_tree_policy(tree, beta)
    p, p0 = tt.sequence_probs(tree, pi), tt.sequence_probs(tree)
    F = p @ tree.r - (p * np.log(p / p0)).sum() / beta
    opt = tree.r.max() + np.log(p0 @ np.exp(beta * (tree.r - tree.r.max()))) / beta
    assert F <= opt + 1e-10
    if d == 1:
        assert abs(F - opt) < 1e-9


# ---------------------------------------------------------------------------- value learning


def lambda_return(r, V, gamma, lam):
    """Forward view: R_t = (1−λ) Σ_{n=1}^{N−t−1} λ^{n−1} G_t^{(n)} + λ^{N−t−1} G_t, G^{(n)} the n-step return."""
    N = len(r)
    out = np.zeros(N)
    for t in range(N):
        def G(n, t=t):
            g = sum(gamma**i * r[t + i] for i in range(n))
            return g + (gamma**n * V[t + n] if t + n < N else 0.0)
        out[t] = (1 - lam) * sum(lam ** (n - 1) * G(n) for n in range(1, N - t)) + lam ** (N - t - 1) * G(N - t)
    return out


@settings(max_examples=40, deadline=None)
@given(seed=seeds, gamma=st.floats(0.0, 1.0), lam=st.floats(0.0, 1.0))
def test_td_lambda_returns_match_the_lambda_return_definition(seed, gamma, lam):
    """The code's backward recursion (δ_t, Â_t = δ_t + γλÂ_{t+1}, R = Â + V) equals the forward-view
    λ-return on every right-padded row; γ = λ = 1 gives the Monte-Carlo return Σ_{i≥t} r_i and λ = 0 the
    one-step target r_t + γV_{t+1}."""
    rng = np.random.default_rng(seed)
    B, T = int(rng.integers(1, 5)), int(rng.integers(1, 7))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    r, V = rng.normal(size=(B, T)), rng.normal(size=(B, T))
    r[~mask], V[~mask] = np.nan, np.inf
    for g, l in ((gamma, lam), (1.0, 1.0), (gamma, 0.0)):
        _, R = vas.td_lambda_returns(r, V, mask, g, l)
        for b in range(B):
            n = lengths[b]
            np.testing.assert_allclose(R[b, :n], lambda_return(r[b, :n], V[b, :n], g, l), atol=1e-12)
            assert (R[b, n:] == 0).all()
            if (g, l) == (1.0, 1.0):
                np.testing.assert_allclose(R[b, :n], np.cumsum(r[b, :n][::-1])[::-1], atol=1e-12)


def test_td_lambda_value_learning_reaches_the_exact_value():
    """VAS's critic training (sampled from the frozen π₀, terminal reward, TD(λ) targets with γ = 1, λ = 0.95,
    ½-MSE, 2 epochs per batch) on a K = 3, d = 3 tree, tabular: max_s |V(s) − V^{π₀}(s)| falls from 1.17 to
    ≤ 0.1 within 800 batches of 32, for seeds 0-2 (measured 0.03-0.05; the step decays as (1+k)^−0.8)."""
    tree = tt.random_tree(np.random.default_rng(0), 3, 3, concentration=5.0)
    for seed in range(3):
        V, err = vas.train_value_td_lambda(tree, iters=800, batch=32, epochs=2, lr=6.0, lr_decay=0.8, seed=seed)
        exact = tt.values(tree)
        assert err[0] > 1.0
        assert max(np.abs(V[t] - exact[t]).max() for t in range(3)) <= 0.1
        # and decoding with the learned values improves on π₀ (J(π₀) = exact[0][0])
        assert tt.expected_reward(tree, vas.vas_tree_policy(tree, 3.0, vas.q_from_values(tree, V))) > exact[0][0]


@settings(max_examples=30, deadline=None)
@given(seed=seeds, agg=st.sampled_from(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]))
def test_value_loss_hand_gradient_matches_finite_differences(seed, agg):
    """dvalues = c ⊙ (V − R) equals the central finite difference of the loss (float64)."""
    rng = np.random.default_rng(seed)
    B, T = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    mask = rng.random((B, T)) < 0.7
    V, R = rng.normal(size=(B, T)), rng.normal(size=(B, T))
    cfg = vas.VASValueConfig(agg=agg)
    _, dV = vas.vas_value_loss(V, V, R, mask, cfg)
    fd = finite_difference(lambda x: vas.vas_value_loss(x, V, R, mask, cfg)[0], V, mask)
    np.testing.assert_allclose(dV, fd, atol=1e-7)
    assert (dV[~mask] == 0).all()


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_value_loss_is_unclipped_ppo_value_loss(seed):
    """VAS's critic loss is PPO's value loss without the value clip: equal to value_clip(eps=None)."""
    rng = np.random.default_rng(seed)
    B, T = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    mask = rng.random((B, T)) < 0.7
    V, V_old, R = rng.normal(size=(3, B, T))
    a = vas.vas_value_loss(V, V_old, R, mask)
    b = value_clip_loss(V, V_old, R, mask, ValueClipConfig(eps=None))
    assert abs(a[0] - b[0]) < 1e-14
    np.testing.assert_allclose(a[1], b[1], atol=1e-15)


def test_value_loss_padding_is_never_read():
    """NaN / inf in values, old_values and returns at masked positions change nothing; all-false mask gives 0."""
    rng = np.random.default_rng(3)
    mask = rng.random((4, 6)) < 0.6
    V, V_old, R = rng.normal(size=(3, 4, 6))
    base = vas.vas_value_loss(V, V_old, R, mask)
    bad = [x.copy() for x in (V, V_old, R)]
    for x in bad:
        x[~mask] = np.nan
    got = vas.vas_value_loss(*bad, mask)
    assert got[0] == base[0] and np.array_equal(got[1], base[1])
    assert vas.vas_value_loss(V, V_old, R, np.zeros((4, 6), bool))[0] == 0.0


# ---------------------------------------------------------------------------- the decoding shift


@settings(max_examples=40, deadline=None)
@given(seed=seeds, k=st.integers(1, 12), beta=st.floats(0.0, 5.0))
def test_topk_centring_leaves_the_topk_distribution_unchanged(seed, k, beta):
    """Subtracting mean_top-k V is a constant shift on the top-k: renormalised over the top-k ('drop') the
    distribution is softmax(ℓ + βV) restricted to the top-k; with 'keep' the top-k conditional distribution
    is the same and only the top-k's total mass moves (to Σ_top e^{ℓ+β(V−m)} / (that + Σ_rest e^ℓ))."""
    rng = np.random.default_rng(seed)
    Vn = int(rng.integers(2, 15))
    logits, values = rng.normal(size=(2, 1, Vn)) * 2
    top = np.argsort(-logits[0], kind="stable")[:k]
    z = logits[0, top] + beta * values[0, top]
    drop = vas.vas_logits(logits, values, vas.VASConfig(beta=beta, topk=k, outside_topk="drop"))["probs"][0]
    np.testing.assert_allclose(drop[top], softmax(z), rtol=1e-12)
    assert abs(drop[top].sum() - 1) < 1e-12
    keep = vas.vas_logits(logits, values, vas.VASConfig(beta=beta, topk=k))["probs"][0]
    np.testing.assert_allclose(keep[top] / keep[top].sum(), softmax(z), rtol=1e-10)
    rest = np.setdiff1d(np.arange(Vn), top)
    m = values[0, top].mean()
    mass = np.exp(z - beta * m).sum() / (np.exp(z - beta * m).sum() + np.exp(logits[0, rest]).sum())
    assert abs(keep[top].sum() - mass) < 1e-12
    shifted = vas.vas_logits(logits, values + 7.0, vas.VASConfig(beta=beta, topk=k))["probs"]
    np.testing.assert_allclose(shifted[0], keep, rtol=1e-12)   # a constant added to V changes nothing


@settings(max_examples=30, deadline=None)
@given(seed=seeds, beta=st.floats(0.0, 5.0))
def test_full_topk_decoding_is_the_vas_policy(seed, beta):
    """With k ≥ vocabulary, softmax(ℓ + β(V − mean V)) = π₀ e^{βV}/Z with π₀ = softmax(ℓ): the decoding
    shift is the VAS policy with Q(s, a) = V(s⊕a)."""
    rng = np.random.default_rng(seed)
    B, Vn = int(rng.integers(1, 4)), int(rng.integers(2, 12))
    logits, values = rng.normal(size=(2, B, Vn)) * 2
    got = vas.vas_logits(logits, values, vas.VASConfig(beta=beta, topk=Vn + 3))["probs"]
    p0 = softmax(logits)
    want = p0 * np.exp(beta * values)
    np.testing.assert_allclose(got, want / want.sum(axis=1, keepdims=True), rtol=1e-10)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, J=st.integers(1, 4), k=st.integers(1, 8))
def test_composition_is_linear(seed, J, k):
    """Reward composition: decoding Σ_j β_j V_j with β = 1 shifts the logits by Σ_j β_j (V_j − mean_top-k V_j)."""
    rng = np.random.default_rng(seed)
    Vn = int(rng.integers(2, 12))
    logits = rng.normal(size=(2, Vn))
    Vs, betas = rng.normal(size=(J, 2, Vn)), rng.uniform(0, 3, size=J)
    got = vas.vas_logits(logits, vas.composed_values(Vs, betas), vas.VASConfig(beta=1.0, topk=k))["logits"]
    want = logits.copy()
    for b in range(2):
        top = np.argsort(-logits[b], kind="stable")[:k]
        for j in range(J):
            want[b, top] += betas[j] * (Vs[j, b, top] - Vs[j, b, top].mean())
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_values_outside_topk_are_never_read():
    """NaN / inf in ``values`` outside each row's top-k give the same outputs as finite values there."""
    rng = np.random.default_rng(5)
    logits, values = rng.normal(size=(2, 3, 20))
    cfg = vas.VASConfig(beta=2.0, topk=4)
    base = vas.vas_logits(logits, values, cfg)
    bad = values.copy()
    for b in range(3):
        rest = np.argsort(-logits[b], kind="stable")[4:]
        bad[b, rest] = rng.choice([np.nan, np.inf, -np.inf], size=rest.size)
    got = vas.vas_logits(logits, bad, cfg)
    for key in ("logits", "probs"):
        np.testing.assert_array_equal(got[key], base[key])


def test_optimized_matches_reference():
    """The torch decoding (both modes) and critic loss equal the reference in float64; NaN outside the top-k."""
    from rlspec.optimized import vas as ovas

    rng = np.random.default_rng(7)
    logits, values = rng.normal(size=(2, 4, 30))
    values[0, np.argsort(-logits[0], kind="stable")[6:]] = np.nan
    for cfg in (vas.VASConfig(beta=1.5, topk=6), vas.VASConfig(beta=3.0, topk=6, outside_topk="drop")):
        ref = vas.vas_logits(logits, values, cfg)
        got = ovas.vas_logits(torch.tensor(logits), torch.tensor(values), cfg)
        for key in ("logits", "probs"):
            np.testing.assert_allclose(got[key].numpy(), ref[key], rtol=1e-12, atol=1e-15)
        # the generate-loop processor asks a value function for the top-k candidates only
        proc = ovas.VASLogitsProcessor(lambda ids, top: torch.gather(torch.tensor(values), 1, top), cfg)
        out = torch.softmax(proc(torch.zeros(4, 3, dtype=torch.long), torch.tensor(logits)), dim=1)
        np.testing.assert_allclose(out.numpy(), ref["probs"], rtol=1e-12, atol=1e-15)
    mask = rng.random((3, 5)) < 0.7
    V, R = rng.normal(size=(2, 3, 5))
    Vt = torch.tensor(V, requires_grad=True)
    loss = ovas.vas_value_loss(Vt, torch.tensor(V), torch.tensor(R), torch.tensor(mask))
    loss.backward()
    ref_loss, ref_grad = vas.vas_value_loss(V, V, R, mask)
    assert abs(loss.item() - ref_loss) < 1e-14
    np.testing.assert_allclose(Vt.grad.numpy(), ref_grad, atol=1e-15)


def test_bad_input_raises():
    """β < 0, topk < 1, an unknown mode, mismatched shapes, NaN logits, NaN top-k values raise, naming the argument."""
    logits, values = np.zeros((2, 5)), np.zeros((2, 5))
    for kw, name in (({"beta": -1.0}, "beta"), ({"topk": 0}, "topk"), ({"outside_topk": "x"}, "outside_topk")):
        with pytest.raises(RLSpecValueError, match=name):
            vas.VASConfig(**kw)
    with pytest.raises(RLSpecValueError, match="candidate_values"):
        vas.vas_logits(logits, np.zeros((2, 4)))
    bad = logits.copy()
    bad[0, 1] = np.nan
    with pytest.raises(RLSpecValueError, match="logits"):
        vas.vas_logits(bad, values)
    with pytest.raises(RLSpecValueError, match="candidate_values"):
        vas.vas_logits(logits, np.full((2, 5), np.nan))
    with pytest.raises(RLSpecValueError, match="mask"):
        vas.vas_value_loss(values, values, values, np.ones((2, 4), bool))


# ---------------------------------------------------------------------------- docs figure


def make_figure(path: str = "docs/algorithms/img/vas.png") -> None:  # pragma: no cover - docs only
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree = tt.random_tree(np.random.default_rng(0), 3, 3, concentration=5.0)
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 3.8))
    learned = []
    for seed in range(3):
        V, err = vas.train_value_td_lambda(tree, iters=800, batch=32, epochs=2, lr=6.0, lr_decay=0.8, seed=seed)
        a1.plot(err, lw=1, label=f"seed {seed}")
        learned.append(V)
    a1.set_yscale("log")
    a1.set_xlabel(r"batch (32 responses from $\pi_0$)")
    a1.set_ylabel(r"$\max_s |V(s) - V^{\pi_0}(s)|$")
    a1.set_title("TD(λ = 0.95) value learning")
    a1.legend()
    betas = np.linspace(0, 12, 61)
    exact = [tt.expected_reward(tree, vas.vas_tree_policy(tree, b)) for b in betas]
    learn = [tt.expected_reward(tree, vas.vas_tree_policy(tree, b, vas.q_from_values(tree, learned[0])))
             for b in betas]
    opt = [tt.tilted_sequence_probs(tree, b) @ tree.r for b in betas]
    a2.plot(betas, exact, label=r"VAS, exact $Q^{\pi_0}$")
    a2.plot(betas, learn, "--", label="VAS, learned V (seed 0)")
    a2.plot(betas, opt, ":", label=r"KL optimum $\pi_0 e^{\beta r}/Z$")
    a2.axhline(tree.r.max(), color="grey", lw=0.5)
    a2.set_xlabel("β")
    a2.set_ylabel("exact expected reward")
    a2.set_title("Decoding with value guidance")
    a2.legend()
    ce = counterexample_tree()
    bs = np.linspace(0, 40, 161)
    a3.plot(bs, [tt.expected_reward(ce, vas.vas_tree_policy(ce, b)) for b in bs], label=r"VAS, exact $Q^{\pi_0}$")
    a3.plot(bs, [tt.tilted_sequence_probs(ce, b) @ ce.r for b in bs], ":", label=r"KL optimum $\pi_0 e^{\beta r}/Z$")
    a3.set_xlabel("β")
    a3.set_title("Counter-example: reward not monotone in β")
    a3.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":  # pragma: no cover
    make_figure()

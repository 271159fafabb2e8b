"""Properties of INPO (arXiv 2407.00617) on exact preference games (:mod:`rlspec.reference.envs.preference_matrix`).

Every expectation is exact (sums over the n responses and n² ordered pairs); the Nash policies come from the
env's tested solvers. Run ``python properties/test_inpo.py`` to redraw docs/algorithms/img/inpo.png.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from properties.strategies import finite_difference
from rlspec.reference import inpo
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.envs import preference_matrix as pm

seeds = st.integers(0, 2**32 - 1)
RPS = pm.rock_paper_scissors()
REF = np.array([0.6, 0.3, 0.1])


def kl(p, q):
    return float((p * np.log(p / q)).sum())


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def closed_form(pi_t, ref, P, eta, tau):
    """π_{t+1} ∝ π_t^{1−τ/η} π_ref^{τ/η} e^{(Pπ_t)/η}, written out here (not the module's function)."""
    w = pi_t ** (1 - tau / eta) * ref ** (tau / eta) * np.exp((P @ pi_t - (P @ pi_t).max()) / eta)
    return w / w.sum()


def game(seed, n):
    rng = np.random.default_rng(seed)
    return rng, pm.random_preference(rng, n), rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))


steps = st.tuples(st.floats(0.3, 5.0), st.floats(0.0, 1.0)).map(lambda p: (p[0], p[0] * p[1]))  # (η, τ ≤ η)


# ---------------------------------------------------------------------------- the loss and its minimiser


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), et=steps)
def test_loss_minimiser_is_the_omd_target(seed, n, et):
    """INPO's key lemma: the exact L_t(π) (expectation over y, y' ∼ π_t, I ∼ Ber(P)) minimised over softmax
    logits (scipy BFGS with the hand gradient) is π_{t+1} ∝ π_t^{1−τ/η} π_ref^{τ/η} exp(P(·≻π_t)/η), to 1e-8;
    the module's one-step Newton minimiser agrees."""
    eta, tau = et
    rng, P, ref, pi_t = game(seed, n)
    cfg = inpo.INPOConfig(eta=eta, tau=tau)

    def f(theta):
        out = inpo.inpo_game_step(P, np.log(ref), np.log(pi_t), theta, cfg)
        return out["loss"], out["dlogits"]

    res = minimize(f, rng.normal(size=n), jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
    want = closed_form(pi_t, ref, P, eta, tau)
    np.testing.assert_allclose(softmax(res.x), want, atol=1e-8)
    np.testing.assert_allclose(inpo.minimise_loss(P, ref, pi_t, eta, tau), want, atol=1e-10)
    np.testing.assert_allclose(inpo.inpo_game_step(P, ref, pi_t, pi_t, cfg)["target"], closed_form(
        softmax(pi_t), softmax(ref), P, eta, tau), atol=1e-12)  # the entry takes logits: softmax of its inputs


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), et=steps)
def test_loss_is_pythagorean_around_the_target(seed, n, et):
    """L_t(π) = L_t(π_{t+1}) + E_{y,y'∼π_t} (h_t(π,y,y') − h_t(π_{t+1},y,y'))² for every π (the target is the
    least-squares projection), with L_t(π_{t+1}) = E[(h* − (I−½)/η)²] computed from its definition."""
    eta, tau = et
    rng, P, ref, pi_t = game(seed, n)
    target = closed_form(pi_t, ref, P, eta, tau)
    lp = np.log(rng.dirichlet(np.ones(n)))
    L = lambda logp: inpo.population_loss(logp, np.log(pi_t), np.log(ref), P, eta, tau)[0]  # noqa: E731
    u = lambda logp: logp - tau / eta * np.log(ref) - (1 - tau / eta) * np.log(pi_t)  # noqa: E731
    h_pi = u(lp)[:, None] - u(lp)[None, :]
    h_star = u(np.log(target))[:, None] - u(np.log(target))[None, :]
    W = np.outer(pi_t, pi_t)
    L_star = (W * (P * (h_star - 0.5 / eta) ** 2 + (1 - P) * (h_star + 0.5 / eta) ** 2)).sum()
    assert abs(L(np.log(target)) - L_star) < 1e-9 * max(1.0, L_star)
    assert abs(L(lp) - (L_star + (W * (h_pi - h_star) ** 2).sum())) < 1e-9 * max(1.0, L(lp))


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), et=steps)
def test_omd_target_is_the_mirror_descent_argmax(seed, n, et):
    """OMD step: π_{t+1} = argmax_π ⟨π, P(·≻π_t) − τ log(π_t/π_ref)⟩ − η KL(π‖π_t) (beats 30 random policies,
    and its first-order condition holds: the objective's gradient is constant on the simplex)."""
    eta, tau = et
    rng, P, ref, pi_t = game(seed, n)
    g = P @ pi_t - tau * np.log(pi_t / ref)
    obj = lambda p: p @ g - eta * kl(p, pi_t)  # noqa: E731
    target = np.exp(inpo.omd_target(np.log(pi_t), np.log(ref), P, eta, tau))
    for _ in range(30):
        assert obj(rng.dirichlet(np.ones(n) * 0.7)) <= obj(target) + 1e-12
    grad = g - eta * (np.log(target / pi_t) + 1)
    assert np.ptp(grad) < 1e-9


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 6), et=steps)
def test_hand_gradient_matches_finite_differences(seed, n, et):
    """dlogits (hand-derived through G = ∂L/∂h and the log-softmax) = central finite differences in float64."""
    eta, tau = et
    rng, P, ref, pi_t = game(seed, n)
    cfg = inpo.INPOConfig(eta=eta, tau=tau)
    theta = rng.normal(size=n) * 2
    got = inpo.inpo_game_step(P, np.log(ref), np.log(pi_t), theta, cfg)["dlogits"]
    fd = finite_difference(lambda x: inpo.inpo_game_step(P, np.log(ref), np.log(pi_t), x[0], cfg)["loss"],
                           theta[None, :], np.ones((1, n), bool))[0]
    np.testing.assert_allclose(got, fd, atol=1e-6 * max(1.0, np.abs(fd).max()))
    assert abs(got.sum()) < 1e-9 * max(1.0, np.abs(got).max())


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(2, 4), et=steps)
def test_sampled_pairs_are_unbiased_for_the_population_loss(seed, n, et):
    """The LLM loss is unbiased for L_t: a pair (y, y') ∼ π_t⊗π_t labelled by I ∼ Ber(P(y≻y')) is presented as
    (y_w, y_l) = (y, y') if I = 1 else (y', y); the ranked-pair loss averaged over all outcomes with their
    probabilities equals the exact L_t (one-token responses, so log π of a response is one logit)."""
    eta, tau = et
    rng, P, ref, pi_t = game(seed, n)
    cfg = inpo.INPOPairConfig(eta=eta, tau=tau)
    lp = np.log(rng.dirichlet(np.ones(n)))
    total = 0.0
    for y in range(n):
        for y2 in range(n):
            for I, prob in ((1, P[y, y2]), (0, 1 - P[y, y2])):
                w, l = (y, y2) if I else (y2, y)
                batch = dict(logp=lp[[w, l]][:, None], old_logp=np.log(pi_t)[[w, l]][:, None],
                             ref_logp=np.log(ref)[[w, l]][:, None], adv=np.array([[1.0], [0.0]]),
                             mask=np.ones((2, 1), bool), group=np.zeros(2, np.int64))
                if w == l:   # a pair of identical responses: h = 0 whatever the label; the ranked loss skips it
                    ell = (0.5 / eta) ** 2
                else:
                    ell = inpo.inpo_pairwise_loss(**batch, config=cfg)[0]
                total += pi_t[y] * pi_t[y2] * prob * ell
    want = inpo.population_loss(lp, np.log(pi_t), np.log(ref), P, eta, tau)[0]
    assert abs(total - want) < 1e-9 * max(1.0, want)


# ---------------------------------------------------------------------------- the iteration


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), et=steps)
def test_nash_policy_is_a_fixed_point(seed, n, et):
    """π*_τ (the env's solver, τ > 0) is mapped to itself by the OMD target: π*_τ ∝ π*^{1−τ/η}π_ref^{τ/η}e^{Pπ*/η}."""
    eta, tau = et
    tau = max(tau, 0.05)
    if tau > eta:
        return
    _, P, ref, _ = game(seed, n)
    ps = pm.regularized_nash(P, ref, tau)
    np.testing.assert_allclose(closed_form(ps, ref, P, eta, tau), ps, atol=1e-11)


@pytest.mark.parametrize("eta", [1.0, 2.0, 5.0])
@pytest.mark.parametrize("ref", [REF, np.array([0.2, 0.3, 0.5]), np.array([0.05, 0.15, 0.8])])
def test_last_iterate_kl_decays_at_the_stated_rate_on_rps(eta, ref):
    """Last-iterate convergence as restated in our notes: KL(π*_τ‖π_{t+1}) ≤ (1 − τ/η) KL(π*_τ‖π_t), exact
    iteration on rock-paper-scissors from π_1 = π_ref, τ = 0.1, every step until KL < 1e-12 (≤ 600 steps)."""
    tau = 0.1
    ps = pm.regularized_nash(RPS, ref, tau)
    traj = inpo.inpo_iterate(RPS, ref, eta, tau, 600)
    K = np.array([kl(ps, p) for p in traj])
    live = K[:-1] > 1e-12
    assert live.sum() > 10
    assert (K[1:][live] <= (1 - tau / eta) * K[:-1][live] + 1e-15).all()
    assert K[-1] < 1e-9


def test_stated_rate_fails_at_large_steps():
    """The per-step rate (1 − τ/η) is not unconditional: on RPS with π_ref = (.6, .3, .1), τ = 0.1, η = 0.5
    (step 2), some step has KL(π*_τ‖π_{t+1}) > (1 − τ/η) KL(π*_τ‖π_t) (the iteration still converges)."""
    tau, eta = 0.1, 0.5
    ps = pm.regularized_nash(RPS, REF, tau)
    K = np.array([kl(ps, p) for p in inpo.inpo_iterate(RPS, REF, eta, tau, 400)])
    assert (K[1:] > (1 - tau / eta) * K[:-1] + 1e-12).any()
    assert K[-1] < 1e-8


@settings(max_examples=40, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), eta=st.floats(0.2, 10.0), frac=st.floats(0.0, 0.95))
def test_derived_contraction_bound_holds(seed, n, eta, frac):
    """Our bound (Hölder + Hoeffding + Pinsker, with P + Pᵀ = 1): KL(π*_τ‖π_{t+1}) ≤ (1 − τ/η + 1/(4η(η−τ)))
    KL(π*_τ‖π_t) for any π_t of full support, random games, τ = frac·η ∈ [0.02, η)."""
    rng, P, ref, pi_t = game(seed, n)
    tau = max(frac * eta, 0.02)
    if tau >= eta:
        return
    ps = pm.regularized_nash(P, ref, tau)
    new = closed_form(pi_t, ref, P, eta, tau)
    rho = 1 - tau / eta + 1 / (4 * eta * (eta - tau))
    assert abs(inpo.contraction_bound(eta, tau) - rho) < 1e-15
    assert kl(ps, new) <= rho * kl(ps, pi_t) + 1e-12


@pytest.mark.parametrize("which", ["rps", "random-4", "random-6"])
def test_average_iterate_duality_gap_is_order_one_over_sqrt_t(which):
    """O(1/√T) duality gap of the average iterate (τ = 0): the iteration is Hedge with step 1/η on the gains
    P(·≻π_t) ∈ [0, 1], so from π_1 uniform, DualGap(π̄_T) = 2·Regret_T/T ≤ 2(η log n + T/(8η))/T, which is
    √(2 log n / T) at η = √(T/(8 log n)); checked for T = 10, 100, 1000, 3000."""
    P = RPS if which == "rps" else pm.random_preference(np.random.default_rng(int(which[-1])), int(which[-1]))
    n = P.shape[0]
    for T in (10, 100, 1000, 3000):
        eta = np.sqrt(T / (8 * np.log(n)))
        traj = inpo.inpo_iterate(P, np.full(n, 1 / n), eta, 0.0, T - 1)      # π_1 … π_T
        pbar = traj.mean(axis=0)
        gap = 2 * (P @ pbar).max() - 1
        assert abs(gap - pm.duality_gap(P, pbar)) < 1e-12
        assert -1e-12 <= gap <= np.sqrt(2 * np.log(n) / T) + 1e-12


def test_bradley_terry_small_tau_concentrates_on_the_best_response():
    """Transitive (Bradley-Terry) preferences, τ → 0: π*_τ and INPO's last iterate put ≥ 0.99 of the mass on
    argmax r (the Condorcet winner), more as τ shrinks."""
    r = np.array([0.3, 1.2, -0.5, 0.9])
    P = pm.bradley_terry(r)
    ref = np.full(4, 0.25)
    mass = []
    for tau in (0.3, 0.1, 0.03, 0.01):
        ps = pm.regularized_nash(P, ref, tau)
        last = inpo.inpo_iterate(P, ref, 1.0, tau, 3000)[-1]
        assert np.abs(last - ps).max() < 1e-6
        mass.append(ps[1])
    assert all(b > a for a, b in zip(mass, mass[1:])) and mass[-1] >= 0.99


def test_loss_minimisation_run_reaches_the_nash_policy():
    """INPO as run: each round minimises the loss instead of using the closed form. (a) exact minimisation
    (Newton) reproduces the closed-form trajectory to 1e-10 and reaches π*_τ on RPS (τ = 0.3, η = 1); (b) torch, L-BFGS on the
    logits with the optimized exact loss (30 rounds) ends within 1e-4 of π*_τ."""
    from rlspec.optimized import inpo as oinpo

    tau, eta = 0.3, 1.0
    ps = pm.regularized_nash(RPS, REF, tau)
    exact = inpo.inpo_iterate(RPS, REF, eta, tau, 150, via="loss")
    np.testing.assert_allclose(exact, inpo.inpo_iterate(RPS, REF, eta, tau, 150), atol=1e-10)
    assert kl(ps, exact[-1]) < 1e-12
    P, lr = torch.tensor(RPS), torch.log(torch.tensor(REF))
    lt = lr.clone()
    for _ in range(30):
        theta = lt.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([theta], max_iter=50, tolerance_grad=1e-12, tolerance_change=1e-14,
                                line_search_fn="strong_wolfe")

        def closure(opt=opt, theta=theta, lt=lt):
            opt.zero_grad()
            loss = oinpo.population_loss(torch.log_softmax(theta, 0), lt, lr, P, eta, tau)
            loss.backward()
            return loss

        opt.step(closure)
        lt = torch.log_softmax(theta.detach(), 0)
    assert np.abs(lt.exp().numpy() - ps).max() < 1e-4


# ---------------------------------------------------------------------------- the ranked-pair LLM loss


def pair_batch(seed):
    rng = np.random.default_rng(seed)
    b = inpo.make_pair_inputs(rng)
    b.pop("config", None)
    if b["ref_logp"] is None:
        b["ref_logp"] = b["old_logp"] + rng.normal(scale=0.3, size=b["logp"].shape)
    return b


@settings(max_examples=30, deadline=None)
@given(seed=seeds, tau=st.floats(0.0, 0.5))
def test_pairwise_hand_gradient_matches_finite_differences(seed, tau):
    """dlogp = ±2(h − 1/(2η))/N on the chosen / rejected valid tokens equals central finite differences."""
    b = pair_batch(seed)
    cfg = inpo.INPOPairConfig(eta=0.5, tau=tau)
    _, d = inpo.inpo_pairwise_loss(**b, config=cfg)
    m = b["mask"]
    f = lambda x: inpo.inpo_pairwise_loss(**{**b, "logp": x}, config=cfg)[0]  # noqa: E731
    fd = finite_difference(f, np.where(m, b["logp"], 0.0), m)
    np.testing.assert_allclose(d, fd, atol=1e-6 * max(1.0, np.abs(fd).max()))
    assert (d[~m] == 0).all()


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 5), et=steps)
def test_pairwise_loss_matches_the_game_loss_on_one_token(seed, n, et):
    """One-token responses y_w ≠ y_l: the sequence loss is (h_t(π, y_w, y_l) − 1/(2η))² with h_t from the game."""
    eta, tau = et
    rng, P, ref, pi_t = game(seed, n)
    lp = np.log(rng.dirichlet(np.ones(n)))
    w, l = rng.choice(n, size=2, replace=False)
    loss, _ = inpo.inpo_pairwise_loss(lp[[l, w]][:, None], np.log(pi_t)[[l, w]][:, None], np.array([[0.2], [0.7]]),
                                      np.ones((2, 1), bool), np.log(ref)[[l, w]][:, None],
                                      inpo.INPOPairConfig(eta=eta, tau=tau), group=np.array([4, 4]))
    h = inpo.h_matrix(lp, np.log(pi_t), np.log(ref), eta, tau)[w, l]
    assert abs(loss - (h - 0.5 / eta) ** 2) < 1e-10 * max(1.0, loss)


def test_pairwise_padding_and_pairs():
    """Garbage at masked positions is never read; the chosen/rejected are the best/worst non-empty rows; ties,
    singleton groups and empty rows make no pair; no pair at all gives loss 0 and zero gradient."""
    b = pair_batch(11)
    clean = {k: (np.where(b["mask"], v, 0.0) if k in ("logp", "old_logp", "ref_logp", "adv") else v)
             for k, v in b.items()}
    cfg = inpo.INPOPairConfig(eta=0.5, tau=0.2)
    a, c = inpo.inpo_pairwise_loss(**b, config=cfg), inpo.inpo_pairwise_loss(**clean, config=cfg)
    assert a[0] == c[0] and np.array_equal(a[1], c[1])
    mask = np.array([[1, 1], [1, 0], [1, 1], [0, 0], [1, 0]], bool)
    adv = np.array([[1.0, 1.0], [3.0, 0.0], [2.0, 2.0], [9.0, 9.0], [5.0, 5.0]])
    group = np.array([0, 0, 0, 0, 1])           # row 3 is empty (its score is ignored); group 1 is a singleton
    pairs = inpo.best_worst_pairs(inpo.sequence_scores(adv, mask), mask, group)
    np.testing.assert_array_equal(pairs, [[1, 0]])
    z = np.zeros((5, 2))
    loss, d = inpo.inpo_pairwise_loss(z, z, np.ones((5, 2)), mask, z, cfg, group=group)   # all tied
    assert loss == 0.0 and (d == 0).all()
    # no group: the batch is one prompt (pair = best and worst of all rows); no ref_logp: τ = 0
    rng = np.random.default_rng(2)
    lp, lt, lr = -rng.random((3, 5, 2))
    one = inpo.inpo_pairwise_loss(lp, lt, adv, mask, lr, cfg)
    np.testing.assert_array_equal(one[1], inpo.inpo_pairwise_loss(lp, lt, adv, mask, lr, cfg, group=np.zeros(5))[1])
    best, worst = 4, 0                                           # row 3 (score 9) is empty
    h = (lp[best, :1].sum() - lp[worst].sum()) - (lt[best, :1].sum() - lt[worst].sum())
    assert abs(inpo.inpo_pairwise_loss(lp, lt, adv, mask, None, cfg)[0] - (h - 1.0) ** 2) < 1e-12


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_sharding_with_global_normalizer(seed):
    """Splitting the prompts over two shards, each with the global pair count as normalizer, the losses and
    gradients add up to the full batch's (data-parallel correctness)."""
    b = pair_batch(seed)
    cfg = inpo.INPOPairConfig(eta=0.5, tau=0.2)
    full = inpo.inpo_pairwise_loss(**b, config=cfg)
    N = len(inpo.best_worst_pairs(inpo.sequence_scores(np.where(b["mask"], b["adv"], 0), b["mask"]), b["mask"],
                                  b["group"]))
    if N == 0:
        return
    keys = np.unique(b["group"])
    first = np.isin(b["group"], keys[: max(1, len(keys) // 2)])
    total, grad = 0.0, np.zeros_like(full[1])
    for rows in (np.flatnonzero(first), np.flatnonzero(~first)):
        if rows.size == 0:
            continue
        part = {k: v[rows] for k, v in b.items()}
        loss, d = inpo.inpo_pairwise_loss(**part, config=inpo.INPOPairConfig(eta=0.5, tau=0.2,
                                                                             pair_normalizer=float(N)))
        total += loss
        grad[rows] = d
    assert abs(total - full[0]) < 1e-10 * max(1.0, full[0])
    np.testing.assert_allclose(grad, full[1], atol=1e-12)


def test_optimized_matches_reference():
    """The torch game round (loss, autograd dlogits, target) and ranked-pair loss (autograd dlogp) equal the
    reference in float64."""
    from rlspec.optimized import inpo as oinpo

    rng = np.random.default_rng(0)
    for _ in range(5):
        g = inpo.make_game_inputs(rng)
        cfg = inpo.INPOConfig(**g.pop("config", {}))
        ref = inpo.inpo_game_step(**g, config=cfg)
        got = oinpo.inpo_game_step(**{k: torch.tensor(v) for k, v in g.items()}, config=cfg)
        for k in ("loss", "dlogits", "target"):
            np.testing.assert_allclose(np.asarray(got[k]), ref[k], rtol=1e-10, atol=1e-12)
    for seed in range(5):
        b = pair_batch(seed)
        cfg = inpo.INPOPairConfig(eta=0.5, tau=0.2)
        ref_loss, ref_d = inpo.inpo_pairwise_loss(**b, config=cfg)
        t = {k: torch.tensor(v) for k, v in b.items()}
        t["logp"].requires_grad_(True)
        loss = oinpo.inpo_pairwise_loss(**t, config=cfg)
        loss.backward()
        assert abs(loss.item() - ref_loss) < 1e-10 * max(1.0, ref_loss)
        np.testing.assert_allclose(t["logp"].grad.numpy(), ref_d, atol=1e-10)


def test_bad_input_raises():
    """τ > η, η ≤ 0, τ < 0, P outside [0, 1], a wrong-length logit vector and a token aggregation mode raise."""
    for kw, name in (({"eta": 1.0, "tau": 2.0}, "tau"), ({"eta": 0.0}, "eta"), ({"tau": -1.0}, "tau")):
        with pytest.raises(RLSpecValueError, match=name):
            inpo.INPOConfig(**kw)
    z = np.zeros(3)
    with pytest.raises(RLSpecValueError, match="P"):
        inpo.inpo_game_step(RPS * 2, z, z, z)
    with pytest.raises(RLSpecValueError, match="logits"):
        inpo.inpo_game_step(RPS, z, z, np.zeros(4))
    with pytest.raises(RLSpecValueError, match="agg"):
        inpo.INPOPairConfig(agg="token-mean")


# ---------------------------------------------------------------------------- docs figure


def make_figure(path: str = "docs/algorithms/img/inpo.png") -> None:  # pragma: no cover - docs only
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tau = 0.1
    ps = pm.regularized_nash(RPS, REF, tau)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for eta, color in ((0.5, "C3"), (1.0, "C0"), (2.0, "C1"), (5.0, "C2")):
        K = np.array([kl(ps, p) for p in inpo.inpo_iterate(RPS, REF, eta, tau, 250)])
        t = np.arange(len(K))
        a1.semilogy(t, np.maximum(K, 1e-17), color=color, label=f"η = {eta} (step 1/η = {1 / eta:g})")
        a1.semilogy(t, K[0] * (1 - tau / eta) ** t, "--", color=color, lw=0.8)
    a1.set_ylim(1e-16, 10)
    a1.set_xlabel("iteration t")
    a1.set_ylabel(r"KL$(\pi^*_\tau \| \pi_t)$")
    a1.set_title("Last iterate, RPS, τ = 0.1 (dashed: (1 − τ/η)^t)")
    a1.legend(fontsize=8)
    Ts = np.unique(np.logspace(1, 3.7, 20).astype(int))
    P5 = pm.random_preference(np.random.default_rng(5), 5)
    gaps = []
    for T in Ts:
        eta = np.sqrt(T / (8 * np.log(5)))
        gaps.append(pm.duality_gap(P5, inpo.inpo_iterate(P5, np.full(5, 0.2), eta, 0.0, T - 1).mean(0)))
    a2.loglog(Ts, gaps, "o-", label=r"DualGap of the average iterate ($\pi_1$ uniform)")
    a2.loglog(Ts, np.sqrt(2 * np.log(5) / Ts), "k--", label=r"bound $\sqrt{2\log 5/T}$")
    a2.set_xlabel("T")
    a2.set_title("Random 5-response game, τ = 0, η = √(T / (8 log 5))")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":  # pragma: no cover
    make_figure()

"""Properties of PARL / A-PARL (arXiv 2308.02585) on the entropy-regularised softmax bandit.

Expected values come from outside the hypergradient code: central finite differences of the exact bilevel
objective ν ↦ G(ν, θ*(ν)) (θ* in closed form, softmax(Φν/λ)), finite differences of the lower-level value, and
the closed-form Jacobian (I − 11ᵀ/K)Φ/λ. Every expectation is an exact sum over actions (and pairs, labels).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.parl import (
    PARLConfig,
    a_parl,
    hypergradient,
    implicit_jacobian,
    lower_ascent,
    lower_cross,
    lower_grad,
    lower_hessian,
    lower_solution,
    lower_value,
    make_inputs,
    parl,
    policy,
    upper_objective,
)

seeds = st.integers(0, 2**31 - 1)
configs = st.builds(PARLConfig, lam=st.floats(0.3, 3.0), upper=st.sampled_from(["preference", "utility"]),
                    kappa=st.sampled_from([0.0, 0.1, 1.0]))


def _problem(seed, K=None, d=None, scale=1.0):
    rng = np.random.default_rng(seed)
    K = K or int(rng.integers(2, 6))
    d = d or int(rng.integers(1, 4))
    return rng.normal(size=d) * scale, rng.normal(size=(K, d)), rng.normal(size=K)


def _fd(f, x, h=1e-6):
    return np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)], axis=-1)


@given(seed=seeds, cfg=configs)
def test_hypergradient_equals_finite_differences(seed, cfg):
    """Hypergradient (implicit function theorem): ∇_νG = E∇_νU + (∇_νθ*)ᵀE[U∇_θ log ρ] − κν equals the central
    finite difference of ν ↦ G(ν, θ*(ν)) computed through the exact lower-level solution, for the preference
    (Bradley-Terry on pairs from π*) and the utility upper objectives."""
    nu, Phi, u = _problem(seed)
    G, hg, direct, shift, _ = parl(nu, Phi, u, cfg)
    fd = _fd(lambda n: upper_objective(n, Phi, u, cfg), nu)
    np.testing.assert_allclose(hg, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hg, direct + shift, rtol=1e-13, atol=1e-14)


@given(seed=seeds, lam=st.floats(0.3, 3.0))
def test_implicit_jacobian_closed_form(seed, lam):
    """∇_νθ* = −[∇²_θθV_s]⁺∇²_θνV_s equals (I − 11ᵀ/K)Φ/λ and the finite difference of the centred θ*(ν); the
    induced policy derivative dπ*/dν = J_πΦ/λ equals the finite difference of softmax(Φν/λ)."""
    nu, Phi, _ = _problem(seed)
    K = Phi.shape[0]
    theta = lower_solution(nu, Phi, lam)
    Jac = implicit_jacobian(nu, theta, Phi, lam)
    np.testing.assert_allclose(Jac, (np.eye(K) - 1.0 / K) @ Phi / lam, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(Jac, _fd(lambda n: lower_solution(n, Phi, lam), nu), rtol=1e-6, atol=1e-7)
    pi = policy(theta)
    dpi = _fd(lambda n: policy(Phi @ n / lam), nu)
    np.testing.assert_allclose((np.diag(pi) - np.outer(pi, pi)) @ Jac, dpi, rtol=1e-6, atol=1e-8)


@settings(max_examples=15)
@given(seed=seeds, lam=st.floats(0.3, 3.0))
def test_lower_level_derivatives_and_solution(seed, lam):
    """∇_θV_s, ∇²_θθV_s and ∇²_θνV_s equal finite differences of V_s at random θ; ∇_θV_s(θ*) = 0 and V_s(θ*) ≥
    V_s(θ) for random θ; 3000 exact policy-gradient steps (α = 1) from θ = 0 reach π* = softmax(Φν/λ) within 1e-3
    (the linear rate of entropy-regularised softmax PG slows down with min_a π*(a)·λ, hence the loose tolerance)."""
    nu, Phi, _ = _problem(seed)
    rng = np.random.default_rng(seed + 1)
    theta = rng.normal(size=Phi.shape[0])
    np.testing.assert_allclose(lower_grad(nu, theta, Phi, lam), _fd(lambda t: lower_value(nu, t, Phi, lam), theta),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lower_hessian(nu, theta, Phi, lam), _fd(lambda t: lower_grad(nu, t, Phi, lam), theta),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lower_cross(theta, Phi), _fd(lambda n: lower_grad(n, theta, Phi, lam), nu),
                               rtol=1e-6, atol=1e-8)
    star = lower_solution(nu, Phi, lam)
    assert np.abs(lower_grad(nu, star, Phi, lam)).max() <= 1e-12 * (1 + np.abs(Phi @ nu).max())
    assert lower_value(nu, star, Phi, lam) >= lower_value(nu, theta, Phi, lam) - 1e-12
    th = lower_ascent(nu, np.zeros(Phi.shape[0]), Phi, lam, 3000, 1.0)
    np.testing.assert_allclose(policy(th), policy(Phi @ nu / lam), atol=1e-3)


def test_dropping_shift_term_gives_wrong_gradient():
    """The distribution-shift term matters, two concrete instances (K = 3 actions, Φ = I, u = (1, 0, −1), λ = 1):
    (i) utility objective G = E_{π*}u: the direct term is exactly 0, yet ∇G (finite differences) is ≈ (0.19, 0.05,
    −0.24) ≠ 0; (ii) preference objective at ν = u (the reward that maximum likelihood recovers from any data
    distribution): the standard-RLHF gradient is exactly 0, while ∇G has norm > 0.04."""
    Phi, u = np.eye(3), np.array([1.0, 0.0, -1.0])
    cfg = PARLConfig(lam=1.0, upper="utility")
    nu = np.zeros(3)
    _, hg, direct, _, _ = parl(nu, Phi, u, cfg)
    fd = _fd(lambda n: upper_objective(n, Phi, u, cfg), nu)
    assert (direct == 0).all() and np.linalg.norm(fd) > 0.3
    np.testing.assert_allclose(hg, fd, atol=1e-8)
    np.testing.assert_allclose(fd, (u - u.mean()) / 3, atol=1e-8)  # J_π u at π uniform: u/3 − mean(u)/3
    cfg = PARLConfig(lam=1.0, upper="preference")
    _, hg, direct, _, _ = parl(u, Phi, u, cfg)
    fd = _fd(lambda n: upper_objective(n, Phi, u, cfg), u)
    assert np.abs(direct).max() <= 1e-15 and np.linalg.norm(fd) > 0.04
    np.testing.assert_allclose(hg, fd, atol=1e-8)


def test_shift_term_changes_fixed_point():
    """Preference objective, Φ = I, u = (1, 0, −1), λ = 1, from ν_0 = u: gradient ascent without the shift term
    (standard RLHF reward learning) does not move (ν = u is its fixed point), while bilevel ascent with the full
    hypergradient (β = 0.5, 400 steps) reaches a stationary point of G (‖∇G‖ ≤ 1e-8, by finite differences) with
    G larger than G(u) by more than 0.01."""
    Phi, u = np.eye(3), np.array([1.0, 0.0, -1.0])
    cfg = PARLConfig(lam=1.0)
    rlhf, _ = a_parl(u, Phi, u, 50, None, 0.0, 0.5, cfg, shift_term=False)
    np.testing.assert_allclose(rlhf[-1], u, atol=1e-14)
    full, _ = a_parl(u, Phi, u, 400, None, 0.0, 0.5, cfg)
    fd = _fd(lambda n: upper_objective(n, Phi, u, cfg), full[-1])
    assert np.linalg.norm(fd) <= 1e-8
    assert upper_objective(full[-1], Phi, u, cfg) > upper_objective(u, Phi, u, cfg) + 0.01


@given(seed=seeds, cfg=configs)
def test_small_step_ascent_is_monotone_and_rate(seed, cfg):
    """With the exact lower level and a small step β (0.05 / (1 + ‖Φ‖²/λ)), G(ν_t) never decreases, and each
    step gains at least (β/2)‖∇G(ν_t)‖² (sufficient increase), so (1/T)Σ_t ‖∇G(ν_t)‖² ≤ 2(G(ν_T) − G(ν_0))/(βT):
    the deterministic form of A-PARL's O(1/T) stationarity rate."""
    nu0, Phi, u = _problem(seed)
    beta = 0.05 / (1.0 + np.linalg.norm(Phi, 2) ** 2 / cfg.lam)
    T = 60
    nus, _ = a_parl(nu0, Phi, u, T, None, 0.0, beta, cfg)
    G = np.array([upper_objective(n, Phi, u, cfg) for n in nus])
    grads = np.array([parl(n, Phi, u, cfg)[1] for n in nus[:-1]])
    sq = (grads**2).sum(axis=1)
    assert (np.diff(G) >= 0.5 * beta * sq - 1e-13).all()
    assert sq.mean() <= 2 * (G[-1] - G[0]) / (beta * T) + 1e-12


def make_figure(path="docs/algorithms/img/parl.png"):  # pragma: no cover - run by hand for the docs page
    """Write the docs figure: G(ν_t) on the preference instance (Φ = I, u = (1, 0, −1), λ = 1, ν_0 = 0, β = 0.5) for
    exact bilevel ascent, A-PARL with 2 warm-started inner steps, and the gradient without the shift term."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Phi, u, cfg, T = np.eye(3), np.array([1.0, 0.0, -1.0]), PARLConfig(lam=1.0), 300
    runs = {"PARL hypergradient (exact θ*)": a_parl(np.zeros(3), Phi, u, T, None, 0.0, 0.5, cfg)[0],
            "A-PARL, 2 inner PG steps (α = 1)": a_parl(np.zeros(3), Phi, u, T, 2, 1.0, 0.5, cfg)[0],
            "direct term only (standard RLHF)": a_parl(np.zeros(3), Phi, u, T, None, 0.0, 0.5, cfg,
                                                       shift_term=False)[0]}
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, nus), style in zip(runs.items(), ("-", "--", ":")):
        ax.plot([upper_objective(n, Phi, u, cfg) for n in nus], style, lw=1.5, label=name)
    G_star = upper_objective(runs["PARL hypergradient (exact θ*)"][-1], Phi, u, cfg)
    ax.axhline(G_star, color="k", lw=0.8, alpha=0.6, label=f"stationary value of G ({G_star:.4f})")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, T)
    ax.set_xlabel("outer iteration t")
    ax.set_ylabel("G(ν_t) = E_{π*(ν_t)} log-likelihood")
    ax.set_title("bilevel preference alignment, 3-armed bandit")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@pytest.mark.parametrize("upper", ["preference", "utility"])
def test_a_parl_inner_loop_converges(upper):
    """A-PARL (warm-started inner policy-gradient loop of K_in steps, hypergradient at the approximate θ) tracks
    exact bilevel ascent on a random 4-action, 2-feature bandit (κ = 0.1, λ = 1, β = 0.2, 300 outer steps): the
    distance to the exact-ascent end point shrinks as K_in grows (1, 5, 25) and is below 1e-3 at K_in = 25;
    there ‖∇G(ν_T)‖ ≤ 1e-3."""
    nu0, Phi, u = _problem(4, K=4, d=2)
    cfg = PARLConfig(lam=1.0, upper=upper, kappa=0.1)
    exact, _ = a_parl(nu0, Phi, u, 300, None, 0.0, 0.2, cfg)
    errs = []
    for k in (1, 5, 25):
        nus, _ = a_parl(nu0, Phi, u, 300, k, 0.5, 0.2, cfg)
        errs.append(np.linalg.norm(nus[-1] - exact[-1]))
    assert errs[0] > errs[1] > errs[2] and errs[2] <= 1e-3
    assert np.linalg.norm(parl(nus[-1], Phi, u, cfg)[1]) <= 1e-3


@given(seed=seeds, cfg=configs)
def test_entry_outputs_consistent(seed, cfg):
    """The registry entry returns G = upper_objective(ν), hypergrad = direct + shift (direct = E∇_νU − κν, shift =
    the implicit-Jacobian term), θ* centred with softmax(θ*) = softmax(Φν/λ)."""
    inp = make_inputs(np.random.default_rng(seed))
    G, hg, direct, shift, theta = registry.get("parl")(**inp, config=cfg)
    assert G == pytest.approx(upper_objective(**inp, config=cfg), abs=1e-14)
    d2, s2 = hypergradient(inp["nu"], theta, inp["Phi"], inp["u"], cfg)
    np.testing.assert_allclose(direct, d2, atol=0)
    np.testing.assert_allclose(shift, s2, atol=0)
    assert abs(theta.sum()) <= 1e-12 * (1 + np.abs(theta).max())
    np.testing.assert_allclose(policy(theta), policy(inp["Phi"] @ inp["nu"] / cfg.lam), rtol=1e-12)


def test_optimized_matches_reference():
    """optimized/parl.py: θ* by the closed form, the direct and shift terms by autograd (vector-Jacobian products
    of the upper objective, autograd Hessian and cross-derivative of V_s), equal the hand formulas in float64."""
    torch = pytest.importorskip("torch")
    from rlspec import optimized

    fn = optimized.get("parl")
    rng = np.random.default_rng(3)
    for upper in ("preference", "utility"):
        cfg = PARLConfig(lam=0.8, upper=upper, kappa=0.2)
        for _ in range(2):
            inp = make_inputs(rng)
            want = parl(**inp, config=cfg)
            got = fn(**{k: torch.as_tensor(v, dtype=torch.float64) for k, v in inp.items()}, config=cfg)
            for w, g in zip(want, got):
                np.testing.assert_allclose(np.asarray(g), w, rtol=1e-9, atol=1e-11)


def test_bad_input_raises():
    """λ ≤ 0, an unknown upper objective, κ < 0, Φ with one action, mismatched ν / u lengths and NaN features raise
    RLSpecValueError naming the argument."""
    nu, Phi, u = _problem(0, K=3, d=2)
    with pytest.raises(RLSpecValueError, match="lam"):
        PARLConfig(lam=0.0)
    with pytest.raises(RLSpecValueError, match="upper"):
        PARLConfig(upper="dpo")
    with pytest.raises(RLSpecValueError, match="kappa"):
        PARLConfig(kappa=-1.0)
    with pytest.raises(RLSpecValueError, match="Phi"):
        parl(nu, Phi[:1], u[:1])
    with pytest.raises(RLSpecValueError, match="nu"):
        parl(np.zeros(3), Phi, u)
    with pytest.raises(RLSpecValueError, match="u"):
        parl(nu, Phi, np.zeros(4))
    bad = Phi.copy()
    bad[0, 0] = np.nan
    with pytest.raises(RLSpecValueError, match="Phi"):
        parl(nu, bad, u)

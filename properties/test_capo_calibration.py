"""Properties of CAPO's calibration-aware advantage (arXiv 2604.12632).

Ã_i = Σ_{j wrong} (1/τ)σ((lpm_j − lpm_i)/τ) for a correct i, −Σ_{i correct} (1/τ)σ((lpm_j − lpm_i)/τ) for a
wrong j; Â = m·Ã with the reference-perplexity noise mask (equations from our notes, papers_A.md §7 [N]).
Expected values are computed here from independent forms: the pairwise logistic loss written with
np.logaddexp and differentiated by finite differences, Dr. GRPO / GRPO from rlspec.reference.grpo, AUC from
scipy's Mann-Whitney U, surrogate risks minimised with scipy.optimize.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import optimize, stats

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.capo_calibration import (
    CAPOCalibrationConfig,
    auc,
    capo_calibration_advantage,
    logistic_surrogate,
    logistic_surrogate_slope,
)
from rlspec.reference.grpo import GRPOConfig, dr_grpo_advantage, grpo_advantage

NO_MASK = CAPOCalibrationConfig(noise_mask=False)
taus = st.sampled_from([0.1, 0.5, 0.6, 2.0])
norms = st.sampled_from(["none", "group", "pairs"])


def batch(rng: np.random.Generator, B: int | None = None, T: int | None = None, empty_rows: bool = True) -> dict:
    """Binary rewards, contiguous groups of 1-6 rollouts, ragged mask with NaN/inf padding."""
    B = int(rng.integers(1, 13)) if B is None else B
    T = int(rng.integers(1, 6)) if T is None else T
    lengths = rng.integers(0 if empty_rows else 1, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    old = -rng.gamma(1.0, float(rng.choice([0.1, 0.7, 2.0])), size=(B, T))
    ref = old - rng.gamma(1.0, 0.3, size=(B, T))
    pad = rng.choice(np.array([np.nan, np.inf, -np.inf]), size=(2, B, T))
    return {"rewards": (rng.random(B) < 0.5).astype(np.float64), "old_logp": np.where(mask, old, pad[0]),
            "mask": mask, "group": np.arange(B) // int(rng.integers(1, 7)), "ref_logp": np.where(mask, ref, pad[1])}


def seq_adv(b: dict, config=NO_MASK) -> np.ndarray:
    """The per-rollout advantage (B,): Â read at each row's first token (0 for an empty row)."""
    A = capo_calibration_advantage(**b, config=config)
    return np.where(b["mask"].any(axis=1), A[:, 0], 0.0)


def lpm_of(b: dict, key: str = "old_logp") -> np.ndarray:
    m = b["mask"]
    return np.array([b[key][i][m[i]].mean() if m[i].any() else 0.0 for i in range(len(m))])


def pairwise_logistic_loss(lpm: np.ndarray, R: np.ndarray, g: np.ndarray, active: np.ndarray, tau: float) -> float:
    """Σ over (correct i, wrong j) pairs of one group of log(1 + exp(−(lpm_i − lpm_j)/τ)), written independently."""
    total = 0.0
    for i in range(len(R)):
        for j in range(len(R)):
            if active[i] and active[j] and g[i] == g[j] and R[i] == 1 and R[j] == 0:
                total += np.logaddexp(0.0, -(lpm[i] - lpm[j]) / tau)
    return total


@given(rng=seeds(), G=st.integers(1, 9), p=st.integers(1, 5), binary=st.booleans())
def test_grpo_pairwise_identity(rng, G, p, binary):
    """Analysis of GRPO (its implicit surrogate), exact: Σ_i (R_i − R̄) ∇lpm_i = (1/G) Σ_{i<j} (R_i − R_j)(∇lpm_i − ∇lpm_j),
    with R_i − R̄ the Dr. GRPO advantage of rlspec.reference.grpo and ∇lpm_i arbitrary vectors in R^p: GRPO's
    update is the gradient of the pairwise ranking surrogate φ(t) = −t on t = lpm_i − lpm_j."""
    R = rng.integers(0, 2, size=G).astype(float) if binary else rng.normal(size=G)
    grads = rng.normal(size=(G, p))
    A = dr_grpo_advantage(R, np.zeros(G, int), np.ones((G, 1), bool))[:, 0]
    lhs = (A[:, None] * grads).sum(axis=0)
    rhs = sum((R[i] - R[j]) * (grads[i] - grads[j]) for i in range(G) for j in range(i + 1, G)) / G
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


@given(rng=seeds(), tau=taus)
def test_advantage_is_minus_gradient_of_pairwise_logistic_loss(rng, tau):
    """Method (uncertainty-aware advantage): Ã = −∂/∂lpm Σ_{(i correct, j wrong)} φ_τ(lpm_i − lpm_j), so Σ_i Ã_i ∇lpm_i
    is a descent direction of the logistic AUC surrogate. Checked by central FD of the loss written with logaddexp."""
    b = batch(rng)
    lpm, R, g = lpm_of(b), b["rewards"], b["group"]
    active = b["mask"].any(axis=1)
    cfg = CAPOCalibrationConfig(tau=tau, noise_mask=False)
    A = seq_adv(b, cfg)
    h = 1e-6
    fd = np.zeros_like(lpm)
    for i in np.flatnonzero(active):
        up, dn = lpm.copy(), lpm.copy()
        up[i] += h
        dn[i] -= h
        fd[i] = (pairwise_logistic_loss(up, R, g, active, tau) - pairwise_logistic_loss(dn, R, g, active, tau)) / (2 * h)
    np.testing.assert_allclose(A, -fd, atol=1e-6 * max(1.0, np.abs(fd).max()), rtol=1e-6)


@given(rng=seeds(), tau=taus, norm=norms)
def test_advantages_sum_to_zero_per_group(rng, tau, norm):
    """Σ_{i ∈ group} Ã_i = 0 (each pair adds +w to its correct and −w to its wrong rollout); also with the noise
    mask applied before pairing (mask_scope='before'), where every kept pair is still balanced."""
    b = batch(rng)
    for cfg in (CAPOCalibrationConfig(tau=tau, noise_mask=False, pair_normalization=norm),
                CAPOCalibrationConfig(tau=tau, pair_normalization=norm, mask_scope="before")):
        A = seq_adv(b, cfg)
        for k in np.unique(b["group"]):
            assert abs(A[b["group"] == k].sum()) <= 1e-12 * max(1.0, np.abs(A).sum())


@given(rng=seeds(), tau=taus, outcome=st.sampled_from([0.0, 1.0]), G=st.integers(1, 8))
def test_groups_without_both_outcomes_have_zero_advantage(rng, tau, outcome, G):
    """All-correct, all-wrong and singleton groups have no (correct, wrong) pair: Â = 0 exactly, mask or not."""
    b = batch(rng, B=G)
    b["rewards"] = np.full(G, outcome)
    b["group"] = np.zeros(G, int)
    for cfg in (CAPOCalibrationConfig(tau=tau), NO_MASK):
        assert (capo_calibration_advantage(**b, config=cfg) == 0).all()


@given(rng=seeds(), tau=taus)
def test_signs_and_bounds(rng, tau):
    """In a group with both outcomes, 0 < Ã_i < n₋/τ for every correct and −n₊/τ < Ã_j < 0 for every wrong rollout
    (each pair weight (1/τ)σ(·) lies strictly in (0, 1/τ)). Confidence gaps are kept within ±10τ so σ ∉ {0, 1}."""
    b = batch(rng, empty_rows=False)
    b["old_logp"] = np.where(b["mask"], -rng.uniform(0, 5 * tau, size=b["mask"].shape), np.nan)
    A, R, g = seq_adv(b, CAPOCalibrationConfig(tau=tau, noise_mask=False)), b["rewards"], b["group"]
    for k in np.unique(g):
        rows = g == k
        n_pos, n_neg = int(R[rows].sum()), int((1 - R[rows]).sum())
        if n_pos and n_neg:
            assert ((A[rows & (R == 1)] > 0) & (A[rows & (R == 1)] < n_neg / tau)).all()
            assert ((A[rows & (R == 0)] < 0) & (A[rows & (R == 0)] > -n_pos / tau)).all()


@given(rng=seeds(), tau=taus)
def test_less_confident_correct_and_more_confident_wrong_get_larger_weights(rng, tau):
    """The uncertainty-aware ordering: within a group, a correct rollout with lower confidence (lpm) gets a strictly
    larger Ã; a wrong rollout with higher confidence gets a strictly more negative Ã (σ is strictly increasing)."""
    b = batch(rng, empty_rows=False)
    b["old_logp"] = np.where(b["mask"], -rng.uniform(0, 5 * tau, size=b["mask"].shape), np.nan)
    A, R, g, lpm = seq_adv(b, CAPOCalibrationConfig(tau=tau, noise_mask=False)), b["rewards"], b["group"], lpm_of(b)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        if R[rows].min() == R[rows].max():
            continue
        for i in rows:
            for j in rows:
                if R[i] == R[j] and lpm[i] < lpm[j] - 1e-9 * tau:
                    assert A[i] > A[j]


@given(rng=seeds(), G=st.integers(2, 8))
def test_large_tau_recovers_grpo(rng, G):
    """Stated limit τ → ∞: (2τ/G)·Ã_i → R_i − R̄, Dr. GRPO's advantage (rlspec.reference.grpo), and so to GRPO's
    z-score up to the positive per-group factor std(R). Since σ(x) = ½ + x/4 + O(x³), the gap is at most
    Σ_j |lpm_j − lpm_i|/(2τG) + O(τ⁻³): it shrinks ~10× per decade of τ."""
    b = batch(rng, B=G, empty_rows=False)
    b["group"] = np.zeros(G, int)
    b["rewards"][:2] = [1.0, 0.0]  # both outcomes present
    lpm = lpm_of(b)
    A_dr = dr_grpo_advantage(b["rewards"], b["group"], np.ones((G, 1), bool))[:, 0]
    A_grpo = grpo_advantage(b["rewards"], b["group"], np.ones((G, 1), bool), GRPOConfig(eps=0.0))[:, 0]
    spread = np.abs(lpm[:, None] - lpm[None, :]).sum(axis=1)  # Σ_j |lpm_j − lpm_i| (B,)
    gaps = []
    for tau in (1e2, 1e3, 1e4):
        scaled = 2 * tau / G * seq_adv(b, CAPOCalibrationConfig(tau=tau, noise_mask=False))
        gap = np.abs(scaled - A_dr)
        assert (gap <= spread / (2 * tau * G) + 1e-9).all()
        gaps.append(gap.max())
        sd = np.std(b["rewards"], ddof=1)
        np.testing.assert_allclose(scaled / sd, A_grpo, atol=spread.max() / (2 * tau * G * sd) + 1e-9, rtol=0)
    if gaps[0] > 1e-8:
        assert gaps[2] < gaps[0] / 50


@given(tau=st.floats(0.05, 5.0))
def test_theorem1_logistic_surrogate_meets_consistency_conditions(tau):
    """Theorem 1 (Gao & Zhou's sufficient condition) applied to φ_τ: convex, non-increasing, φ'_τ(0) = −1/(2τ) < 0.
    Checked on a grid: second differences ≥ 0, slope < 0 (also against the FD slope), and the value at 0."""
    t = np.linspace(-30 * tau, 30 * tau, 2001)
    phi = logistic_surrogate(t, tau)
    assert (np.diff(phi, 2) >= -1e-12).all() and (np.diff(phi) < 0).all()
    slope = logistic_surrogate_slope(t, tau)
    assert (slope < 0).all()
    fd = (logistic_surrogate(t + 1e-6, tau) - logistic_surrogate(t - 1e-6, tau)) / 2e-6
    np.testing.assert_allclose(slope, fd, rtol=1e-5, atol=1e-9)
    assert logistic_surrogate_slope(0.0, tau) == pytest.approx(-1 / (2 * tau), rel=1e-14)
    assert logistic_surrogate(0.0, tau) == pytest.approx(np.log(2.0), rel=1e-14)


def _population(rng):
    """A finite instance space: probabilities p(x) and conditional correctness η(x) ∈ (0.05, 0.95), distinct."""
    n = int(rng.integers(3, 7))
    p = rng.dirichlet(np.ones(n))
    eta = np.sort(rng.uniform(0.05, 0.95, size=n))
    return p, eta


def _pair_weights(p, eta):
    """w_xx' = p(x) η(x) p(x') (1 − η(x')): the mass of (correct x, wrong x') pairs."""
    return np.outer(p * eta, p * (1 - eta))


@given(rng=seeds(), tau=st.sampled_from([0.5, 1.0, 2.0]))
def test_theorem1_logistic_minimiser_ranks_by_correctness_probability(rng, tau):
    """Theorem 1 (AUC consistency), on an exact finite problem: the minimiser of the population pairwise logistic
    risk Σ w_xx' φ_τ(f(x) − f(x')) (found by scipy BFGS on this convex risk) orders the instances exactly as their
    probability of being correct η(x), i.e. it attains the Bayes-optimal AUC."""
    p, eta = _population(rng)
    assume(np.diff(eta).min() > 0.02)
    w = _pair_weights(p, eta)

    def risk(f):
        d = (f[:, None] - f[None, :]) / tau
        return (w * np.logaddexp(0.0, -d)).sum(), (-(w * (1 / tau) / (1 + np.exp(d)))).sum(1) + \
            (w * (1 / tau) / (1 + np.exp(d))).sum(0)

    res = optimize.minimize(risk, np.zeros(len(p)), jac=True, method="BFGS", options={"gtol": 1e-12})
    assert (np.diff(res.x) > 0).all()  # η is sorted ascending


@given(rng=seeds(), alpha=st.floats(0.01, 100.0))
def test_theorem3_linear_surrogate_is_scale_sensitive(rng, alpha):
    """Theorem 3 (GRPO's φ(t) = −t is not AUC-consistent), the paper's scale argument: for α > 0, AUC(αf) = AUC(f)
    while L_{−t}(αf) = α·L_{−t}(f), so the linear risk has no minimiser (it is pushed to −∞ along any f with
    L_{−t}(f) < 0) and does not single out a ranking."""
    n = int(rng.integers(4, 30))
    y = rng.integers(0, 2, size=n).astype(bool)
    y[:2] = [True, False]
    f = rng.normal(size=n)
    L = lambda s: -(s[y][:, None] - s[~y][None, :]).mean()  # noqa: E731 - the empirical linear pairwise risk
    assert auc(alpha * f, y) == auc(f, y)
    assert L(alpha * f) == pytest.approx(alpha * L(f), rel=1e-12, abs=1e-12)


def test_linear_surrogate_misranks_under_a_norm_constraint():
    """Our illustration of Theorem 3: with ‖f‖ ≤ 1 the linear risk is minimised by f ∝ p(x)(η(x) − P̄) (P̄ the mean
    correctness), which ranks a rare, reliable instance below a frequent, mediocre one; the logistic minimiser
    (test above) ranks by η. Here η = (0.1, 0.6, 0.9), p = (0.3, 0.6, 0.1): the linear solution puts x=1 above x=2."""
    p, eta = np.array([0.3, 0.6, 0.1]), np.array([0.1, 0.6, 0.9])
    w = _pair_weights(p, eta)
    grad = -(w.sum(axis=1) - w.sum(axis=0))  # ∂/∂f of L_{−t}(f) = −Σ w_xx' (f(x) − f(x'))
    f = -grad / np.linalg.norm(grad)  # the minimiser on the unit sphere
    np.testing.assert_allclose(f / np.linalg.norm(f), (p * (eta - (p * eta).sum())) /
                               np.linalg.norm(p * (eta - (p * eta).sum())), rtol=1e-12)
    assert f[1] > f[2] and eta[2] > eta[1]


@given(rng=seeds(), tau=st.floats(0.05, 5.0))
def test_theorem2_logistic_bound_on_misranking(rng, tau):
    """Theorem 2 (regret bound, constant 1/ln 2), in the form that holds for every sample: 1[t ≤ 0] ≤ φ_τ(t)/ln 2
    pointwise, hence 1 − AUC(f) ≤ L_φτ(f)/ln 2 on any set of scored (correct, wrong) pairs — the regret bound
    when L* = L_φ* = 0 (separable labels). AUC is checked against scipy's Mann-Whitney U."""
    t = rng.normal(scale=5 * tau, size=500)
    assert ((t <= 0) <= logistic_surrogate(t, tau) / np.log(2) + 1e-15).all()
    n = int(rng.integers(4, 40))
    y = rng.integers(0, 2, size=n).astype(bool)
    y[:2] = [True, False]
    f = np.round(rng.normal(size=n), 1)  # ties occur
    u = stats.mannwhitneyu(f[y], f[~y]).statistic
    a = auc(f, y)
    assert a == pytest.approx(u / (y.sum() * (~y).sum()), rel=1e-12)
    L_phi = logistic_surrogate(f[y][:, None] - f[~y][None, :], tau).mean()
    assert 1 - a <= L_phi / np.log(2) + 1e-12


@given(rng=seeds(), tau=taus)
def test_noise_mask_rejects_exactly_the_flagged_rollouts(rng, tau):
    """Noise masking: a correct rollout is kept iff PPL_ref ≤ 2.5, a wrong one iff PPL_ref ≥ 1.05 (PPL_ref =
    exp(−mean_t ref_logp), computed here); flagged rollouts get Â = 0, the others keep the unmasked Ã exactly
    (mask_scope='after': noisy rollouts still count in the others' pairs)."""
    b = batch(rng)
    ppl = np.exp(-lpm_of(b, "ref_logp"))
    keep = np.where(b["rewards"] == 1, ppl <= 2.5, ppl >= 1.05) & b["mask"].any(axis=1)
    A_m = capo_calibration_advantage(**b, config=CAPOCalibrationConfig(tau=tau))
    A_0 = capo_calibration_advantage(**b, config=CAPOCalibrationConfig(tau=tau, noise_mask=False))
    assert (A_m[~keep] == 0).all()
    np.testing.assert_array_equal(A_m[keep], A_0[keep])
    np.testing.assert_array_equal(capo_calibration_advantage(**dict(b, ref_logp=None), config=CAPOCalibrationConfig(tau=tau)),
                                  A_0)


@given(rng=seeds(), tau=taus, norm=norms)
def test_pair_normalizations(rng, tau, norm):
    """Options: 'group' divides each group's Ã by its number of rollouts G, 'pairs' by n₊n₋ (checked against 'none')."""
    b = batch(rng, empty_rows=False)
    A = seq_adv(b, CAPOCalibrationConfig(tau=tau, noise_mask=False))
    An = seq_adv(b, CAPOCalibrationConfig(tau=tau, noise_mask=False, pair_normalization=norm))
    R, g = b["rewards"], b["group"]
    for k in np.unique(g):
        rows = g == k
        div = {"none": 1, "group": rows.sum(), "pairs": R[rows].sum() * (1 - R[rows]).sum()}[norm]
        np.testing.assert_allclose(An[rows], A[rows] / max(div, 1), rtol=1e-13, atol=0)


@given(rng=seeds())
def test_grpo_is_uncertainty_agnostic_capo_is_not(rng):
    """The paper's diagnosis of GRPO: GRPO's advantage ignores the confidences (changing old_logp changes nothing), CAPO's depends
    on them (a correct rollout made more confident gets a smaller advantage)."""
    b = batch(rng, B=6, empty_rows=False)
    b["group"] = np.zeros(6, int)
    b["rewards"] = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    sharper = dict(b, old_logp=np.where(np.arange(6)[:, None] == 0, b["old_logp"] + 1.0, b["old_logp"]))
    A, A_s = seq_adv(b), seq_adv(sharper)
    g = grpo_advantage(b["rewards"], b["group"], b["mask"])
    np.testing.assert_array_equal(g, grpo_advantage(sharper["rewards"], sharper["group"], sharper["mask"]))
    assert A_s[0] < A[0]


@given(rng=seeds())
def test_padding_is_never_read(rng):
    """Bad input policy: NaN/inf padding in old_logp and ref_logp gives the same advantage as zero padding."""
    b = batch(rng)
    clean = dict(b, old_logp=np.where(b["mask"], b["old_logp"], 0.0), ref_logp=np.where(b["mask"], b["ref_logp"], 0.0))
    np.testing.assert_array_equal(capo_calibration_advantage(**b), capo_calibration_advantage(**clean))
    assert (capo_calibration_advantage(**b)[~b["mask"]] == 0).all()


def test_bad_input_names_the_argument():
    """Non-binary rewards, NaN at a valid position, a wrong shape and bad config values raise RLSpecValueError."""
    b = batch(np.random.default_rng(0), B=4, T=3, empty_rows=False)
    with pytest.raises(RLSpecValueError, match="rewards"):
        capo_calibration_advantage(**dict(b, rewards=np.array([0.5, 1.0, 0.0, 1.0])))
    bad = b["old_logp"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(RLSpecValueError, match="old_logp"):
        capo_calibration_advantage(**dict(b, old_logp=bad))
    with pytest.raises(RLSpecValueError, match="group"):
        capo_calibration_advantage(**dict(b, group=np.zeros(3, int)))
    for field, value in (("tau", 0.0), ("tau", float("nan")), ("pair_normalization", "mean"), ("mask_scope", "x"),
                         ("ppl_correct_max", 0.5)):
        with pytest.raises(RLSpecValueError, match=field):
            CAPOCalibrationConfig(**{field: value})


def test_registry_lists_only_existing_tests():
    """The registry entry's properties name tests of this file."""
    for prop in registry.get("capo_calibration").properties:
        assert prop.startswith("properties/test_capo_calibration.py::") or prop.startswith("untested:")

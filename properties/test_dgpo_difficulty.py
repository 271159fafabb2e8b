"""Properties of DGPO / MathForge (Harder Is Better, arXiv 2601.20614): DGAE, DQW and the valid-token mean.

Expected values come from closed forms written here (the theorems' right-hand sides, a softmax, the PPO
reference on a sub-batch), never from the DGPO code under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from properties.strategies import outcome_batches, seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dgpo_difficulty import DGPOConfig, dgae, dgpo_difficulty_advantage, dqw
from rlspec.reference.grpo import GRPOConfig, grpo_advantage

PLAIN = DGPOConfig(dqw=False, valid_token_mean=False)


def seq(A: np.ndarray) -> np.ndarray:
    """Sequence advantages (B,) from a (B, T) output with a full mask."""
    return A[:, 0]


def full_mask(B: int, T: int = 2) -> np.ndarray:
    return np.ones((B, T), dtype=bool)


@pytest.mark.parametrize("G", range(2, 9))
def test_grpo_update_magnitude_follows_accuracy(G):
    """Thm 1 (GRPO's imbalance): binary rewards with k of G correct, p = k/G: Σ_i |Â_GR,i| = 2G·√(p(1−p)) with
    the population std, 2·√(G(G−1))·√(p(1−p)) with the sample std — largest at p = ½. Every k, exactly."""
    for k in range(1, G):
        R = np.array([1.0] * k + [0.0] * (G - k))
        p = k / G
        for ddof, want in ((0, 2 * G * np.sqrt(p * (1 - p))), (1, 2 * np.sqrt(G * (G - 1)) * np.sqrt(p * (1 - p)))):
            A = seq(grpo_advantage(R, np.zeros(G, int), full_mask(G), GRPOConfig(ddof=ddof, eps=0.0)))
            assert np.abs(A).sum() == pytest.approx(want, rel=1e-12)


@given(rng=seeds(), G=st.integers(2, 12), binary=st.booleans())
def test_dgae_update_magnitude_is_group_size(rng, G, binary):
    """Thm 2 (DGAE balances questions): Σ_i |Â_DG,i| = G for every non-constant group, binary or not, whatever
    its accuracy — unlike GRPO's 2G√(p(1−p))."""
    R = rng.integers(0, 2, G).astype(float) if binary else rng.normal(size=G) * rng.choice([1e-3, 1.0, 1e3])
    assume(R.min() != R.max())
    A = seq(dgpo_difficulty_advantage(R, np.zeros(G, int), full_mask(G), PLAIN))
    assert np.abs(A).sum() == pytest.approx(G, rel=1e-12)


@given(batch=outcome_batches(), a=st.floats(0.01, 100), b=st.floats(-10, 10))
def test_dgae_is_zero_sum_and_affine_invariant(batch, a, b):
    """DGAE is a centred, scale-free statistic: Σ_{i∈group} Â_DG,i = 0 and r → a·r + b (a > 0) leaves Â_DG."""
    R, g = batch["rewards"], batch["group"]
    A = dgae(R, g)
    for k in np.unique(g):
        assert abs(A[g == k].sum()) <= 1e-12 * max(1.0, np.abs(A[g == k]).sum())
    np.testing.assert_allclose(dgae(a * R + b, g), A, rtol=1e-9, atol=1e-9)


def _batch_of_questions(rng, n_q, G, acc_levels=None):
    """Binary rewards for n_q questions of G rollouts with the given numbers of correct answers."""
    ks = acc_levels if acc_levels is not None else rng.integers(0, G + 1, n_q)
    R = np.concatenate([[1.0] * k + [0.0] * (G - k) for k in ks])
    g = np.repeat(np.arange(n_q), G)
    return R, g, np.asarray(ks)


@given(rng=seeds(), n_q=st.integers(1, 6), G=st.integers(2, 8), T=st.sampled_from([0.5, 2.0, 10.0]))
def test_question_weights_average_to_one(rng, n_q, G, T):
    """DQW: λ_s = |V|·softmax(D/T) over the valid questions V, so the weights average to one over V (the total
    weight is unchanged), and the λ of a question equals |V|·e^{D_s/T}/Σ e^{D/T} computed here directly."""
    R, g, ks = _batch_of_questions(rng, n_q, G)
    valid = (ks > 0) & (ks < G)
    D = -ks / G
    lam = dqw(np.repeat(D, G), np.repeat(valid, G), g, T)[::G]
    assert (lam[~valid] == 1).all()
    if valid.any():
        assert lam[valid].mean() == pytest.approx(1.0, rel=1e-12)
        e = np.exp(D[valid] / T)
        np.testing.assert_allclose(lam[valid], valid.sum() * e / e.sum(), rtol=1e-12)


def test_question_weights_favour_harder_questions():
    """DQW ("harder is better"): among valid questions λ strictly decreases with accuracy; as T → ∞ every λ → 1."""
    G = 8
    R, g, ks = _batch_of_questions(None, 7, G, acc_levels=list(range(1, 8)))
    for T in (0.5, 2.0):
        A = dgpo_difficulty_advantage(R, g, full_mask(len(R)), DGPOConfig(temperature=T, valid_token_mean=False))
        lam = np.abs(seq(A)).reshape(7, G).sum(axis=1) / G  # Σ|λ Â_DG| = λ·G per question (Thm 2)
        assert (np.diff(lam) < 0).all()
    A = dgpo_difficulty_advantage(R, g, full_mask(len(R)), DGPOConfig(temperature=1e9, valid_token_mean=False))
    np.testing.assert_allclose(np.abs(seq(A)).reshape(7, G).sum(axis=1), G, rtol=1e-8)


@given(batch=outcome_batches())
def test_weighted_advantages_keep_zero_sum_and_signs(batch):
    """A group-constant positive factor (λ_s·κ) keeps each group's zero sum and every advantage's sign (GRPO's
    ordering of rollouts within a question is unchanged)."""
    R, g, M = batch["rewards"], batch["group"], batch["mask"]
    A = seq(dgpo_difficulty_advantage(R, g, np.ones((len(R), 1), bool)))
    base = dgae(R, g)
    assert (np.sign(A) == np.sign(base)).all()
    for k in np.unique(g):
        assert abs(A[g == k].sum()) <= 1e-10 * max(1.0, np.abs(A[g == k]).sum())
    A_tok = dgpo_difficulty_advantage(R, g, M)
    assert (A_tok[~M] == 0).all()


@given(rng=seeds(), n_q=st.integers(2, 5), G=st.integers(2, 6))
def test_valid_token_mean_composes_with_ppo(rng, n_q, G):
    """§4.3 + composition: the DGPO advantages fed to the registry's PPO loss with token-mean over ALL tokens give
    the loss and gradient of a token mean over the tokens of valid questions only (the paper's objective)."""
    R, g, ks = _batch_of_questions(rng, n_q, G)
    valid_q = (ks > 0) & (ks < G)
    assume(valid_q.any() and not valid_q.all())
    B, T = len(R), 5
    M = np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]
    lp = -rng.random((B, T)) * 2
    old = lp + 0.1 * rng.normal(size=(B, T))
    ppo = registry.get("ppo")
    A = dgpo_difficulty_advantage(R, g, M)
    loss_all, d_all = ppo(logp=lp, old_logp=old, adv=A, mask=M)
    rows = np.repeat(valid_q, G)
    A_valid = dgpo_difficulty_advantage(R, g, M, DGPOConfig(valid_token_mean=False))
    loss_v, d_v = ppo(logp=lp[rows], old_logp=old[rows], adv=A_valid[rows], mask=M[rows])
    assert loss_all == pytest.approx(loss_v, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(d_all[rows], d_v, rtol=1e-12, atol=1e-15)
    assert (d_all[~rows] == 0).all()


def test_code_variants():
    """Official code: ε = 1e-4 gives G·d/(Σ|d| + ε) (a factor Σ|d|/(Σ|d|+ε) on the paper's form); all_wrong='code'
    gives a valid question whose accuracy is all 0 the smallest weight instead of the largest."""
    R = np.array([1.0, 0.0, 0.0, 0.0])
    g = np.zeros(4, int)
    d = R - R.mean()
    paper = seq(dgpo_difficulty_advantage(R, g, full_mask(4), PLAIN))
    code = seq(dgpo_difficulty_advantage(R, g, full_mask(4), DGPOConfig(eps=1e-4, dqw=False, valid_token_mean=False)))
    np.testing.assert_allclose(paper, 4 * d / np.abs(d).sum(), rtol=1e-14)
    np.testing.assert_allclose(code, 4 * d / (np.abs(d).sum() + 1e-4), rtol=1e-14)
    # two questions: q0 has varying format reward but zero accuracy, q1 is half right
    R2 = np.array([0.1, 0.0, 1.0, 0.0])
    acc = np.array([0.0, 0.0, 1.0, 0.0])
    g2 = np.array([0, 0, 1, 1])
    cfg = dict(valid_token_mean=False, temperature=2.0)
    lam_paper = np.abs(seq(dgpo_difficulty_advantage(R2, g2, full_mask(4), DGPOConfig(**cfg), accuracy=acc))) / 1.0
    lam_code = np.abs(seq(dgpo_difficulty_advantage(R2, g2, full_mask(4), DGPOConfig(all_wrong="code", **cfg),
                                                    accuracy=acc)))
    e_paper = np.exp(np.array([0.0, -0.5]) / 2.0)
    e_code = np.exp(np.array([-1.0, -0.5]) / 2.0)
    np.testing.assert_allclose(lam_paper[[0, 2]], 2 * e_paper / e_paper.sum(), rtol=1e-12)  # |Â_DG| = 1 here
    np.testing.assert_allclose(lam_code[[0, 2]], 2 * e_code / e_code.sum(), rtol=1e-12)


def test_degenerate_groups_and_bad_input():
    """All-equal groups and singletons get 0 (no NaN, even with ε = 0); an all-false mask gives zeros; bad input
    raises RLSpecValueError naming the argument."""
    R = np.array([1.0, 1.0, 1.0, 0.3, 0.7])
    g = np.array([0, 0, 0, 5, 9])
    A = dgpo_difficulty_advantage(R, g, full_mask(5))
    assert (A == 0).all()
    assert (dgpo_difficulty_advantage(np.array([1.0, 0.0]), np.zeros(2, int), np.zeros((2, 3), bool)) == 0).all()
    with pytest.raises(RLSpecValueError, match="rewards"):
        dgpo_difficulty_advantage(np.array([np.nan, 1.0]), np.zeros(2, int), full_mask(2))
    with pytest.raises(RLSpecValueError, match="accuracy"):
        dgpo_difficulty_advantage(np.array([0.0, 1.0]), np.zeros(2, int), full_mask(2), accuracy=np.ones(3))
    with pytest.raises(RLSpecValueError, match="temperature"):
        DGPOConfig(temperature=0.0)
    with pytest.raises(RLSpecValueError, match="all_wrong"):
        DGPOConfig(all_wrong="sometimes")


def test_every_accuracy_pattern_enumerated():
    """Exhaustive over all 0/1 reward vectors of two questions with G = 3: advantages are finite, each valid
    question carries update mass λ_s·G, and the total mass over valid questions is |V|·G (weights average to 1)."""
    G = 3
    for bits in itertools.product((0.0, 1.0), repeat=2 * G):
        R = np.array(bits)
        g = np.repeat([0, 1], G)
        A = seq(dgpo_difficulty_advantage(R, g, full_mask(2 * G), DGPOConfig(valid_token_mean=False)))
        assert np.isfinite(A).all()
        n_valid = sum(R[g == k].min() != R[g == k].max() for k in (0, 1))
        assert np.abs(A).sum() == pytest.approx(n_valid * G, rel=1e-12, abs=1e-12)


@given(rng=seeds(), n_q=st.integers(1, 5), G=st.integers(1, 6), all_wrong=st.sampled_from(["paper", "code"]))
def test_optimized_matches_reference_with_accuracy(rng, n_q, G, all_wrong):
    """The torch twin equals the reference when the difficulty comes from a separate accuracy reward (an input the
    canonical conformance batches do not carry), float64."""
    import torch

    from rlspec import optimized

    B, T = n_q * G, 3
    acc = rng.integers(0, 2, B).astype(float)
    R = acc + 0.1 * rng.integers(0, 2, B)
    g = np.repeat(rng.permutation(n_q) * 7 - 3, G)
    M = np.arange(T)[None, :] < rng.integers(0, T + 1, B)[:, None]
    cfg = DGPOConfig(all_wrong=all_wrong)
    want = dgpo_difficulty_advantage(R, g, M, cfg, accuracy=acc)
    got = optimized.get("dgpo_difficulty")(torch.tensor(R), torch.tensor(g), torch.tensor(M), cfg,
                                           accuracy=torch.tensor(acc))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)

"""MMR1 Variance-Aware Sampling (VAS): prompts drawn by a Variance Promotion Score mixed with uniform draws.

Leng, Wang, Li, Zhang, Hu, Zhang, Jiang, Zhang, Li, Bing, Zhao, Lu, Rong, Sun, Lu, "MMR1: Enhancing Multimodal
Reasoning with Variance-Aware Sampling and Open Resources", arXiv 2509.21268 (2025).
Official code: github.com/LengSicong/MMR1 (EasyR1-based): ``verl/curriculum/metrics.py`` (learnability = OVS,
edit distance, distinct-n, self-BLEU), ``verl/curriculum/samplers.py::MixedCurriculumSampler``,
``verl/trainer/ray_trainer.py::_compute_curriculum_weights / _update_curriculum_weights``.

Place in the pipeline: WHICH PROMPTS ARE SAMPLED. The loss is plain GRPO; VAS only changes the prompt
distribution of each batch. Every T_update steps all prompts are scored from N fresh rollouts each::

    ovs, tds, vps, weights, idx = mmr1_vas(rewards, tokens, group, mask, u)   # score the pool, draw a batch
    ... G rollouts for each prompt of idx ...
    adv  = registry.get("grpo")(rewards, group, mask)
    loss = registry.get("ppo")(logp, old_logp, adv, mask)

Equations (x a prompt, y_1..y_N its N scoring rollouts, r_j ∈ [0, 1] their correctness)::

    P(x)    = (1/N) Σ_j r_j                                        pass rate
    OVS(x)  = P(x) (1 − P(x))                                      outcome variance score (Bernoulli variance)
    TDS(x)  = mean_{i<j} d(y_i, y_j)                                trajectory diversity score
    VPS(x)  = α·OVS(x) + β·TDS(x)                                  variance promotion score (α = 0.8, β = 0.2)
    batch   B_w = ⌊λB⌋ prompts drawn with replacement ∝ VPS,  B_r = B − B_w drawn uniformly   (λ = 0.5)
    refresh VPS recomputed every T_update steps (paper 35; code 4); code: w ← m·w_old + (1 − m)·w_new

Distances: ``tds="edit-norm"`` (default) d = Levenshtein(y_i, y_j) / max(|y_i|, |y_j|) ∈ [0, 1] (0 for two empty
responses); ``tds="edit"`` the code's raw mean pairwise Levenshtein distance on token ids; ``tds="distinct-3"``
the code's distinct-3 (unique 3-grams / all 3-grams of the N rollouts pooled). A prompt with fewer than two
rollouts has TDS = 0 (as in the code).

Why variance (the paper's theory, tested in properties/test_mmr1_vas.py): with an optimal baseline the
policy-gradient variance factorises as Var_y[R]·Γ_θ(x), Γ = E‖∇log π‖²; Theorem 1 (Variance–Progress) bounds
the expected one-step improvement below by (η c_min / 4)·Var_y[R]; and by the law of total variance
Var[R] = E_Z[p_Z(1 − p_Z)] + Var_Z[p_Z] over latent reasoning modes Z, which motivates pairing OVS with a
diversity term.

Provenance. The code was read (``official-code``): OVS = learnability = p(1 − p) with p the mean accuracy
over ``curriculum_rollout_n`` rollouts; the mixed sampler (``int(batch_size · mixture_ratio)`` weighted draws
with replacement, the rest from a shuffled pool); min–max normalisation of the scores over the dataset
(``(w − min)/(max − min + 1e-8)``); momentum; the raw edit-distance and distinct-n metrics. The VPS combination
with α = 0.8, β = 0.2, λ = 0.5, N = 32, T_update = 35 and the theory are from the paper as our notes (shared
papers_B.md §13) record it; only the abstract was reachable here (it confirms VPS = outcome variance +
trajectory diversity, and the variance lower bound), so those are tagged ``secondary``. The normalisation of
the edit distance in ``edit-norm`` is ours.

Paper vs code: the paper combines OVS and TDS with α = 0.8, β = 0.2 and does not min–max normalise; the code's
shipped config uses OVS only (``curriculum_metrics=[learnability]``, weight 1.0), min–max normalises, refreshes
every 4 steps and draws the uniform part from a shuffled pool without replacement within an epoch. Options:
``alpha=1, beta=0`` (OVS only), ``normalize="minmax"``, ``update_every=4``; the within-epoch pool is not
reproduced (our uniform draws are with replacement). The code's self-BLEU metric (a similarity, added with a
positive weight) is not implemented.

Conventions (ours): rewards must lie in [0, 1]; a token is read only where ``mask`` is True (a response is the
row's valid tokens in order); outputs are per prompt, in the order of ``np.unique(group)``; ``idx`` holds prompt
ids. When every weight is 0 (e.g. min–max of constant scores, or all groups solved/unsolved with β = 0) the
weighted branch is drawn uniformly, where the code would raise. B_w = ⌊λB⌋ in exact arithmetic (the code's
``int(B·λ)`` can round 0.29·100 down to 28).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, in_range, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

MMR1_PAPER = Paper(arxiv="2509.21268", title="MMR1: Enhancing Multimodal Reasoning with Variance-Aware Sampling "
                   "and Open Resources", year=2025)
TDS_KINDS = ("edit-norm", "edit", "distinct-3")
NORMALIZERS = ("none", "minmax")
_CODE = "LengSicong/MMR1"


@dataclass(frozen=True)
class VASConfig:
    """alpha/beta: VPS weights of OVS and TDS (paper 0.8 / 0.2; code config: 1.0 / 0). mix: λ, the weighted
    share of each batch (0.5). tds: "edit-norm" | "edit" (code) | "distinct-3" (code). normalize: "none" (paper)
    or "minmax" (code, with minmax_eps = 1e-8). momentum: m in w ← m w_old + (1 − m) w_new (code; 0 = replace).
    update_every: T_update, steps between refreshes (paper 35; code 4)."""

    alpha: float = 0.8
    beta: float = 0.2
    mix: float = 0.5
    tds: str = "edit-norm"
    normalize: str = "none"
    minmax_eps: float = 1e-8
    momentum: float = 0.0
    update_every: int = 35

    def __post_init__(self) -> None:
        positive(self.alpha, "alpha", allow_zero=True)
        positive(self.beta, "beta", allow_zero=True)
        in_range(self.mix, "mix", 0.0, 1.0)
        choice(self.tds, "tds", TDS_KINDS)
        choice(self.normalize, "normalize", NORMALIZERS)
        positive(self.minmax_eps, "minmax_eps", allow_zero=True)
        in_range(self.momentum, "momentum", 0.0, 1.0)
        if not isinstance(self.update_every, int) or isinstance(self.update_every, bool) or self.update_every < 1:
            raise fail("update_every", repr(self.update_every), "an integer ≥ 1")


@dataclass(frozen=True)
class VASState:
    """Sampling weights ``weights`` (Q,) of the prompt pool (after normalisation and momentum)."""

    weights: Any


# ------------------------------------------------------------------------------------------- scores

def outcome_variance(p: Any) -> np.ndarray:
    """OVS = p (1 − p): the Bernoulli variance of a correctness reward with success rate p."""
    p = np.asarray(p, dtype=np.float64)
    return p * (1.0 - p)


def pass_rates(R: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prompt ids (Q,) in np.unique order, P(x) (Q,) the mean reward of each prompt's rollouts)."""
    ids, inv = np.unique(g, return_inverse=True)
    return ids, np.bincount(inv, weights=R, minlength=ids.size) / np.bincount(inv, minlength=ids.size)


def levenshtein(a: np.ndarray, b: np.ndarray) -> int:
    """Edit distance (unit insert / delete / substitute) between two token sequences."""
    prev = np.arange(b.size + 1)
    for i in range(1, a.size + 1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j in range(1, b.size + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return int(prev[-1])


def tds_edit(seqs: list[np.ndarray], normalized: bool = True) -> float:
    """Mean over pairs i < j of d(y_i, y_j) (÷ max length if ``normalized``; 0/0 := 0); 0 for < 2 rollouts."""
    if len(seqs) < 2:
        return 0.0
    d = []
    for i in range(len(seqs)):
        for j in range(i + 1, len(seqs)):
            e = levenshtein(seqs[i], seqs[j])
            m = max(seqs[i].size, seqs[j].size)
            d.append((e / m if m else 0.0) if normalized else float(e))
    return float(np.mean(d))


def distinct_n(seqs: list[np.ndarray], n: int = 3) -> float:
    """Unique n-grams / all n-grams over the pooled rollouts (code's distinct-n); 0 when there is none."""
    grams = [tuple(s[k:k + n]) for s in seqs for k in range(s.size - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def trajectory_diversity(seqs: list[np.ndarray], kind: str) -> float:
    """TDS of one prompt's rollouts, by ``kind`` (see the module docstring)."""
    if kind == "distinct-3":
        return distinct_n(seqs, 3)
    return tds_edit(seqs, normalized=kind == "edit-norm")


def vps(ovs: np.ndarray, tds: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """VPS = α·OVS + β·TDS (Q,)."""
    return alpha * ovs + beta * tds


def normalize_scores(v: np.ndarray, how: str, eps: float) -> np.ndarray:
    """Sampling weights from scores: unchanged ("none") or (v − min)/(max − min + ε) ("minmax", code)."""
    if how == "none":
        return v.copy()
    return (v - v.min()) / (v.max() - v.min() + eps)


# ------------------------------------------------------------------------------------------ sampler

def n_weighted(B: int, mix: float) -> int:
    """B_w = ⌊λB⌋ (exact-arithmetic floor; 1e-9 absorbs float error in λ·B)."""
    return min(B, int(math.floor(mix * B + 1e-9)))


def weighted_draw(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws ∝ w with replacement (positions); uniform over the pool when Σw = 0."""
    if w.sum() <= 0:
        return uniform_draw(w.size, u)
    F = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(F, u, side="right"), w.size - 1)


def uniform_draw(Q: int, u: np.ndarray) -> np.ndarray:
    """Uniform draws with replacement: position ⌊u·Q⌋."""
    return np.minimum(np.floor(u * Q).astype(np.int64), Q - 1)


def vas_sample(weights: Any, u: Any, mix: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mixed batch of B = len(u) prompt positions: the first ⌊λB⌋ draws ∝ weights, the rest uniform.

    Returns (positions (B,) int, from_weighted (B,) bool)."""
    w = finite_vector(weights, "weights")
    if w.size == 0 or (w < 0).any():
        raise fail("weights", f"{w.size} values, min {w.min() if w.size else None}", "non-negative weights, Q ≥ 1")
    U = check_uniforms(u)
    Bw = n_weighted(U.size, in_range(mix, "mix", 0.0, 1.0))
    pos = np.concatenate([weighted_draw(w, U[:Bw]), uniform_draw(w.size, U[Bw:])]).astype(np.int64)
    return pos, np.arange(U.size) < Bw


def check_uniforms(u: Any) -> np.ndarray:
    a = finite_vector(u, "u")
    if ((a < 0) | (a >= 1)).any():
        raise fail("u", f"values in [{a.min()}, {a.max()}]", "uniform draws in [0, 1)")
    return a


# ------------------------------------------------------------------------------------------ state

def init_state(vps_scores: Any, config: VASConfig | None = None) -> VASState:
    """The weights before training: the normalised VPS of the pool (code: computed once at start)."""
    cfg = config or VASConfig()
    v = check_scores(vps_scores)
    return VASState(weights=normalize_scores(v, cfg.normalize, cfg.minmax_eps))


def refresh_due(step: int, config: VASConfig | None = None) -> bool:
    """Whether the scores are recomputed after training step ``step`` (1-based): step % T_update == 0."""
    cfg = config or VASConfig()
    return step >= 1 and step % cfg.update_every == 0


def update(state: VASState, vps_scores: Any, config: VASConfig | None = None) -> VASState:
    """Refresh: w ← m·w_old + (1 − m)·normalise(VPS_new). Pure (returns a new state)."""
    cfg = config or VASConfig()
    if not isinstance(state, VASState):
        raise fail("state", type(state).__name__, "a VASState (build one with init_state)")
    w_old = finite_vector(state.weights, "state.weights")
    v = check_scores(vps_scores, w_old.size)
    return VASState(weights=cfg.momentum * w_old + (1 - cfg.momentum) * normalize_scores(v, cfg.normalize,
                                                                                           cfg.minmax_eps))


def check_scores(v: Any, length: int | None = None) -> np.ndarray:
    a = finite_vector(v, "vps_scores", length)
    if a.size == 0 or (a < 0).any():
        raise fail("vps_scores", f"{a.size} values", "non-negative scores for Q ≥ 1 prompts")
    return a


# ------------------------------------------------------------------------------------------ public

def validate(rewards, tokens, group, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    if M.shape[0] == 0:
        raise fail("mask", "no rollouts (B = 0)", "at least one scored rollout")
    R = finite_vector(rewards, "rewards", M.shape[0])
    if ((R < 0) | (R > 1)).any():
        i = int(np.argwhere((R < 0) | (R > 1))[0][0])
        raise fail("rewards", f"{R[i]} at index {i}", "correctness rewards in [0, 1]")
    tok = np.asarray(tokens)
    if tok.shape != M.shape:
        raise fail("tokens", f"shape {tok.shape}", f"the shape of mask, {M.shape}")
    if not np.issubdtype(tok.dtype, np.integer):
        raise fail("tokens", f"dtype {tok.dtype}", "integer token ids")
    return R, tok, group_ids(group, M.shape[0]), M


def score_prompts(rewards, tokens, group, mask, config: VASConfig | None = None):
    """(prompt ids (Q,), OVS (Q,), TDS (Q,), VPS (Q,)) of the scored pool."""
    cfg = config or VASConfig()
    R, tok, g, M = validate(rewards, tokens, group, mask)
    ids, P = pass_rates(R, g)
    o = outcome_variance(P)
    t = np.array([trajectory_diversity([tok[b][M[b]] for b in np.flatnonzero(g == q)], cfg.tds) for q in ids])
    return ids, o, t, vps(o, t, cfg.alpha, cfg.beta)


def mmr1_vas(rewards, tokens, group, mask, u, config: VASConfig | None = None):
    """Score the prompt pool and draw a mixed batch.

    Args: rewards (B,) correctness in [0, 1] of the N scoring rollouts of every prompt; tokens (B, T) int token
    ids; group (B,) prompt ids; mask (B, T) bool response tokens; u (n,) uniforms in [0, 1) for a batch of n.
    Returns: (ovs, tds, vps, weights) each (Q,) in np.unique(group) order, and idx (n,) the drawn prompt ids
    (the first ⌊λn⌋ drawn ∝ weights, the rest uniformly).
    """
    cfg = config or VASConfig()
    ids, o, t, v = score_prompts(rewards, tokens, group, mask, cfg)
    w = normalize_scores(v, cfg.normalize, cfg.minmax_eps)
    pos, _ = vas_sample(w, u, cfg.mix)
    return o, t, v, w, ids[pos]


def make_inputs(rng: np.random.Generator) -> dict:
    """A pool of Q prompts × N rollouts (binary or fractional correctness; solved and unsolved prompts), short
    token sequences over a small vocabulary (repeats likely), ragged masks with garbage ids in the padding."""
    Q, N, T = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
    group = np.repeat(rng.permutation(50)[:Q], N)
    p = rng.choice([0.0, 1.0, rng.random(), rng.random()], size=Q)
    rewards = (rng.random(Q * N) < np.repeat(p, N)).astype(np.float64)
    if rng.random() < 0.3:
        rewards = np.round(rng.random(Q * N), 2)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=Q * N)[:, None]
    tokens = np.where(mask, rng.integers(0, 3, size=(Q * N, T)), -(10**6))
    perm = rng.permutation(Q * N)
    return {"rewards": rewards[perm], "tokens": tokens[perm], "group": group[perm], "mask": mask[perm],
            "u": 0.99 * rng.random(int(rng.integers(1, 12)))}


EQUATIONS = (
    Equation("mmr1-ovs", "P(x) = (1/N) Σ_j r_j,  OVS(x) = P(x)(1 − P(x))", "arXiv 2509.21268 §3 (VAS)", "official-code",
             "outcome_variance",
             note=f"{_CODE} verl/curriculum/metrics.py calculate_learnability_metric: pass_rate·(1 − pass_rate), "
                  "mean accuracy over curriculum_rollout_n rollouts; the paper's name OVS from the abstract/notes"),
    Equation("mmr1-tds", "TDS(x) = mean_{i<j} d(y_i, y_j),  d = Levenshtein / max(|y_i|, |y_j|)",
             "arXiv 2509.21268 §3 (VAS)", "reconstructed", "tds_edit",
             note=f"the code ({_CODE} metrics.py calculate_pairwise_edit_distance) takes the raw mean pairwise "
                  "edit distance of token ids (tds='edit') and also offers distinct-3 (tds='distinct-3') and "
                  "self-BLEU-123 (not implemented); the paper's exact normalisation was not recovered"),
    Equation("mmr1-vps", "VPS(x) = α·OVS(x) + β·TDS(x),  α = 0.8, β = 0.2", "arXiv 2509.21268 §3 (VAS)", "secondary",
             "vps",
             note=f"abstract (read): VPS combines outcome variance and trajectory diversity; α, β from our notes' "
                  f"reading of the paper; {_CODE} combine_metric_results is the same weighted sum, shipped "
                  "config: learnability only, weight 1.0"),
    Equation("mmr1-minmax", "w = (VPS − min VPS)/(max VPS − min VPS + 1e-8)", "official code", "official-code",
             "normalize_scores",
             note=f"{_CODE} verl/trainer/ray_trainer.py _compute_curriculum_weights; code-only "
                  "(normalize='minmax'); the paper samples ∝ VPS (normalize='none', default)"),
    Equation("mmr1-mix", "B_w = ⌊λB⌋ drawn ∝ w with replacement,  B_r = B − B_w uniform,  λ = 0.5",
             "arXiv 2509.21268 §3 (VAS)", "official-code", "vas_sample",
             note=f"{_CODE} verl/curriculum/samplers.py MixedCurriculumSampler: n_weighted = int(batch_size·"
                  "mixture_ratio) from WeightedRandomSampler(replacement=True), the rest from a shuffled "
                  "pool (without replacement within an epoch; ours: uniform with replacement)"),
    Equation("mmr1-refresh", "every T_update steps: w ← m·w_old + (1 − m)·w_new", "arXiv 2509.21268 §3; official code",
             "official-code", "update",
             note=f"{_CODE} ray_trainer.py _update_curriculum_weights (momentum, shipped 0.0) and the step loop "
                  "(global_step % curriculum_update_freq == 0, shipped 4); T_update = 35 is the paper's per our notes"),
)

register(Spec(
    name="mmr1_vas", kind="sampler", family="sampling", paper=MMR1_PAPER, status="partial",
    summary="which prompts are sampled: a share λ of each batch is drawn ∝ VPS = α·p(1 − p) + β·trajectory "
            "diversity of fresh rollouts, the rest uniformly; the loss stays GRPO",
    fn=mmr1_vas, config_cls=VASConfig, equations=EQUATIONS, outputs=("ovs", "tds", "vps", "weights", "idx"),
    make_inputs=make_inputs,
    extras={"init_state": init_state, "update": update, "refresh_due": refresh_due, "score_prompts": score_prompts,
            "vas_sample": vas_sample, "outcome_variance": outcome_variance, "levenshtein": levenshtein,
            "tds_edit": tds_edit, "distinct_n": distinct_n, "normalize_scores": normalize_scores,
            "conformance_configs": lambda: [("code", {"alpha": 1.0, "beta": 0.0, "normalize": "minmax"}),
                                            ("edit-raw", {"tds": "edit"}), ("distinct-3", {"tds": "distinct-3"}),
                                            ("all-weighted", {"mix": 1.0}), ("all-uniform", {"mix": 0.0}),
                                            ("mix=0.3", {"mix": 0.3, "beta": 1.0})]},
    missing="the paper's exact TDS formula (normalisation of the edit distance; self-BLEU variant) was not "
            "recovered — edit-norm is ours; the code's self-BLEU-123 metric and its within-epoch uniform pool "
            "(without replacement) are not implemented",
    gradient="not a loss: a prompt distribution; the batch it draws is trained with GRPO advantages and the PPO loss",
    properties=(
        "properties/test_mmr1_vas.py::test_ovs_is_bernoulli_variance_and_zero_iff_grpo_signal_vanishes: OVS = "
        "p(1 − p), max at 0.5; OVS = 0 exactly where every GRPO advantage of the group is 0",
        "properties/test_mmr1_vas.py::test_law_of_total_variance: Var[R] = E_Z[p_Z(1 − p_Z)] + Var_Z[p_Z], exact "
        "on empirical groups and on a discrete mode distribution",
        "properties/test_mmr1_vas.py::test_variance_factorisation_with_constant_score_norm: Var[G] = Var_y[R]·Γ "
        "when ‖∇log π‖² is constant; in general it is an assumption (counterexample shown)",
        "properties/test_mmr1_vas.py::test_theorem1_variance_progress_bound: exact expected one-step gain ≥ "
        "(η c_min/4)·Var_y[R] for η ≤ c_min/(4LΓ) on softmax bandits (L = 5/2)",
        "properties/test_mmr1_vas.py::test_levenshtein_matches_bruteforce_and_is_a_metric",
        "properties/test_mmr1_vas.py::test_tds_zero_for_identical_rollouts_and_bounded",
        "properties/test_mmr1_vas.py::test_vps_is_monotone_in_ovs_and_tds",
        "properties/test_mmr1_vas.py::test_mixture_ratio_exact_counts: exactly ⌊λB⌋ weighted draws; stratified "
        "uniforms give each prompt its expected count B_w·w_q/Σw + B_r/Q within 2",
        "properties/test_mmr1_vas.py::test_mixture_ratio_seeded_chi_square: seeded draws pass a χ² test of the "
        "mixture distribution at false-alarm rate 1e-3",
        "properties/test_mmr1_vas.py::test_minmax_lowest_prompt_never_drawn_by_weighted_branch",
        "properties/test_mmr1_vas.py::test_replay_refresh_schedule_and_momentum: a seeded run replayed step by step "
        "(refresh every T_update, momentum), inputs never mutated",
        "properties/test_mmr1_vas.py::test_drives_one_grpo_step: VAS batch → grpo advantages → ppo loss",
        "properties/test_mmr1_vas.py::test_vas_raises_expected_informative_share: E[OVS] of a drawn prompt under "
        "VAS ≥ under uniform sampling (exact expectation)",
        "properties/test_mmr1_vas.py::test_bad_input_raises",
        "properties/test_mmr1_vas.py::test_padding_never_read_and_all_zero_weights_fall_back_to_uniform",
        "untested: benchmark gains of VAS (MathVerse, MathVista, ... ablations of OVS/TDS, λ, T_update) — need "
        "multimodal LLM training",
    ),
))

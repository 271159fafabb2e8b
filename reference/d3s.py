"""D³S: Dynamic Dual-Level Down-Sampling — keep the rollouts and tokens that carry the most signal.

Wang, Yang, Tian, Shi, Ma, Liu, Yao, Ding, "Learning More with Less: A Dynamic Dual-Level Down-Sampling
Framework for Efficient Policy Optimization", arXiv 2509.22115 (ICLR 2026). The code is in the paper's
supplementary material; no public repository was found.

Place in the pipeline: SAMPLE AND TOKEN SELECTION between the advantage and the loss. The advantages
are computed on the full groups and never renormalised after selection; the loss sees only the kept
tokens (its aggregation then normalises over them)::

    adv = registry.get("grpo")(rewards, group, mask)                    # full groups, unchanged
    keep_seq, keep = d3s_select(adv, entropy, group, mask, progress=p)   # this module
    loss = registry.get("ppo")(logp, old_logp, adv, keep)                # base loss on the kept tokens

Equations (A_i the sequence advantage, A_{i,t} the token advantage, H_{i,t} the policy's token entropy,
p ∈ [0, 1] the training progress)::

    sample level   Ŝ = argmax_{S ⊆ group, |S| = N_s} Var(A_S)                   (population variance)
    token level    s_{i,t} = |A_{i,t}| · H_{i,t};  keep the ⌈K·n⌉ highest-scoring of the n valid tokens
                   of the kept rollouts (over the whole batch)
    schedule       [N_s, K](p) = (1 − p)·[N_init, K_init] + p·[N_final, K_final]   (aggressive → relaxed)

The max-variance subset of size k of n sorted values is always "the j smallest and the k − j largest" for
some j (a classical fact; the property tests confirm it against brute force over all subsets), so the
argmax is found exactly by trying the k + 1 values of j (``split="search"``, the default). Our notes
report an implementation that takes a fixed number of the most negative and most positive advantages;
``split="balanced"`` (⌊k/2⌋ smallest, ⌈k/2⌉ largest) is that rule: optimal for binary rewards, not always
for continuous ones (it never beats the search).

Lemma (as our notes report it): a standardised set (mean 0, variance 1) always contains a subset with
Var ≥ 1 — by Popoviciu's inequality its {min, max} pair has variance ((max − min)/2)² ≥ 1. For a FIXED
size k the maximal variance can be below 1 (e.g. k = 3 of {−1, −1, 1, 1} gives 8/9).

Provenance. Only the paper's abstract could be read: it states the sample-level objective (a subset
maximising Var(A)), the token score |A_{i,t}|·H_{i,t}, and a schedule that starts with aggressive
down-sampling and relaxes it (``paper``). The linear form of the schedule, the pooled ("cross-group")
variant and the top-K% token rule are from a third-party note summarised in our notes (``secondary``).
The paper's schedule end points (N_init, N_final, K_init, K_final) were NOT recovered: the defaults here
(half of each group and 20 % of the tokens at p = 0, everything at p = 1) are ours.

Conventions (ours): the sequence advantage is the masked token-mean of ``adv`` (= A_i for outcome
advantages); rows without a valid token are never kept and do not count in a group's size n;
N_s = min(n, max(1, ⌈f·n⌉)) for a kept fraction f; ties between equally good subsets go to the smallest j,
ties between values to the lower row index (stable sort); ties between token scores to the earlier
position in row-major order, so exactly ⌈K·n⌉ tokens are kept. Entropies must be ≥ 0 at valid positions;
padding is never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, group_ids, in_range, masked_array
from rlspec.reference.registry import Equation, Paper, Spec, register

D3S_PAPER = Paper(arxiv="2509.22115", title="Learning More with Less: A Dynamic Dual-Level Down-Sampling Framework "
                  "for Efficient Policy Optimization", year=2025)
SCOPES = ("intra", "cross")
SPLITS = ("search", "balanced")
TIE_RTOL = 1e-10  # candidate subsets whose variances agree to this relative tolerance are ties (smallest j wins)


@dataclass(frozen=True)
class D3SConfig:
    """Schedule end points (fractions in (0, 1]; ours, the paper's values were not recovered):
    sample_frac_init/final: kept fraction N_s/n of each group's rollouts at p = 0 / p = 1;
    token_frac_init/final: kept fraction K of the kept rollouts' valid tokens at p = 0 / p = 1.
    scope: "intra" (per group) or "cross" (one selection over the pooled batch).
    split: "search" (exact argmax of Var) or "balanced" (⌊k/2⌋ most negative + ⌈k/2⌉ most positive).
    token_level: apply the token-level selection (False = sample level only, "D¹S")."""

    sample_frac_init: float = 0.5
    sample_frac_final: float = 1.0
    token_frac_init: float = 0.2
    token_frac_final: float = 1.0
    scope: str = "intra"
    split: str = "search"
    token_level: bool = True

    def __post_init__(self) -> None:
        for name in ("sample_frac_init", "sample_frac_final", "token_frac_init", "token_frac_final"):
            in_range(getattr(self, name), name, 0.0, 1.0, lo_open=True)
        choice(self.scope, "scope", SCOPES)
        choice(self.split, "split", SPLITS)
        if not isinstance(self.token_level, bool):
            raise fail("token_level", repr(self.token_level), "True or False")


# ------------------------------------------------------------------------------------------- schedule

def linear_schedule(p: float, init: float, final: float) -> float:
    """(1 − p)·init + p·final for progress p ∈ [0, 1]: init at p = 0, final at p = 1 (exactly)."""
    return (1.0 - p) * init + p * final


def n_keep(frac: float, n: int) -> int:
    """How many of n items a kept fraction f selects: min(n, max(1, ⌈f·n⌉)); 0 when n = 0.
    (⌈·⌉ of f·n − 1e-9, so that e.g. 0.2·10 = 2.0000000000000004 keeps 2.)"""
    return 0 if n == 0 else min(n, max(1, math.ceil(frac * n - 1e-9)))


# -------------------------------------------------------------------------------------- sample level

def subset_variance(a: np.ndarray) -> float:
    """Var(A_S) = mean((a − mean a)²), the population variance (0 for one element)."""
    return float(np.mean((a - a.mean()) ** 2)) if a.size else 0.0


def maxvar_subset(a: np.ndarray, k: int, split: str = "search") -> np.ndarray:
    """Row indices (ascending) of the k-subset of ``a`` (n,) with the largest variance.

    "search": the best of the k + 1 candidates {j smallest} ∪ {k − j largest}, j = 0..k (exact);
    "balanced": j = ⌊k/2⌋ only. Ties: smallest j; equal values ordered by index (stable sort).
    """
    n = a.shape[0]
    order = np.argsort(a, kind="stable")
    js = range(k + 1) if split == "search" else [k // 2]
    cands = [np.concatenate([order[:j], order[n - (k - j):]]) for j in js]
    var = np.array([subset_variance(a[c]) for c in cands])
    best = int(np.argmax(var >= var.max() * (1.0 - TIE_RTOL)))  # first j within the tie tolerance
    return np.sort(cands[best])


def sample_selection(A: np.ndarray, g: np.ndarray, valid: np.ndarray, frac: float, scope: str,
                     split: str) -> np.ndarray:
    """keep (B,) bool: per group ("intra") or over the pooled valid rows ("cross"), the max-variance subset
    of N_s = n_keep(frac, n) rows, n the number of valid rows considered."""
    keep = np.zeros(A.shape[0], dtype=bool)
    pools = [valid] if scope == "cross" else [valid & (g == k) for k in np.unique(g)]
    for pool in pools:
        rows = np.flatnonzero(pool)
        if rows.size:
            keep[rows[maxvar_subset(A[rows], n_keep(frac, rows.size), split)]] = True
    return keep


# --------------------------------------------------------------------------------------- token level

def token_scores(A_tok: np.ndarray, H: np.ndarray) -> np.ndarray:
    """s_{i,t} = |A_{i,t}| · H_{i,t} (B, T)."""
    return np.abs(A_tok) * H


def token_selection(s: np.ndarray, candidates: np.ndarray, frac: float) -> np.ndarray:
    """keep (B, T) bool: the n_keep(frac, n) highest scores among the n candidate tokens (ties: row-major order)."""
    flat = np.flatnonzero(candidates.ravel())
    k = n_keep(frac, flat.size)
    order = flat[np.argsort(-s.ravel()[flat], kind="stable")]
    keep = np.zeros(s.size, dtype=bool)
    keep[order[:k]] = True
    return keep.reshape(s.shape)


def entropy_from_logits(logits: Any, mask: Any) -> np.ndarray:
    """H_{i,t} = −Σ_v π log π (B, T) from logits (B, T, V); 0 at masked positions (see ``entropy``)."""
    from rlspec.reference.entropy import token_entropy, validate_logits

    z, M = validate_logits(logits, mask)
    return np.where(M, token_entropy(z)[0], 0.0)


# ------------------------------------------------------------------------------------------- public

def validate(adv, entropy, group, mask, progress) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    A = masked_array(adv, "adv", M)
    H = masked_array(entropy, "entropy", M)
    if (H[M] < 0).any():
        raise fail("entropy", f"a negative value {H[M].min()!r}", "entropies ≥ 0 at valid positions")
    g = group_ids(group, M.shape[0])
    p = in_range(progress, "progress", 0.0, 1.0)
    return A, H, g, M, p


def sequence_advantage(A: np.ndarray, M: np.ndarray) -> np.ndarray:
    """A_i (B,): masked token-mean of the token advantages; 0 for a row without valid tokens."""
    n = M.sum(axis=1)
    return np.divide(A.sum(axis=1), n, out=np.zeros(M.shape[0]), where=n > 0)


def d3s_select(adv, entropy, group, mask, progress: float = 0.0,
               config: D3SConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """D³S selection at training progress p.

    Args: adv (B, T) advantages (computed on the full groups); entropy (B, T) ≥ 0; group (B,) prompt ids;
    mask (B, T) bool; progress p ∈ [0, 1].
    Returns: (keep_seq (B,) bool: rollouts kept; keep (B, T) bool: tokens kept, ⊆ mask ∧ keep_seq).
    """
    cfg = config or D3SConfig()
    A, H, g, M, p = validate(adv, entropy, group, mask, progress)
    f_s = linear_schedule(p, cfg.sample_frac_init, cfg.sample_frac_final)
    K = linear_schedule(p, cfg.token_frac_init, cfg.token_frac_final)
    keep_seq = sample_selection(sequence_advantage(A, M), g, M.any(axis=1), f_s, cfg.scope, cfg.split)
    candidates = M & keep_seq[:, None]
    keep = token_selection(token_scores(A, H), candidates, K) if cfg.token_level else candidates
    return keep_seq, keep


def make_inputs(rng: np.random.Generator) -> dict:
    """GRPO-like advantages (binary or continuous rewards) over small groups, gamma entropies, ragged mask with
    NaN/inf padding, a random progress; ties in scores about half of the time (entropies rounded)."""
    B, T = int(rng.integers(1, 13)), int(rng.integers(1, 7))
    group = rng.integers(0, max(1, B // 4), size=B)
    seq = rng.integers(0, 2, size=B) * 2.0 - 1.0 if rng.random() < 0.5 else rng.normal(size=B)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    H = rng.gamma(0.8, 1.0, size=(B, T))
    if rng.random() < 0.5:
        H = np.round(H, 1)
    pad = rng.choice(np.array([np.nan, np.inf, -1.0]), size=(B, T))
    adv = np.where(mask, np.repeat(seq[:, None], T, axis=1), pad)
    return {"adv": adv, "entropy": np.where(mask, H, pad), "group": group, "mask": mask,
            "progress": float(rng.choice([0.0, 1.0, rng.random()]))}


register(Spec(
    name="d3s", kind="sampler", family="sampling", paper=D3S_PAPER, status="partial",
    summary="sample and token selection between the advantage and the loss: per group the rollout subset of "
            "maximal Var(A), then the top-K tokens by |A|·H, with a schedule from aggressive to relaxed",
    fn=d3s_select, config_cls=D3SConfig, outputs=("keep_seq", "keep"), make_inputs=make_inputs,
    extras={"maxvar_subset": maxvar_subset, "linear_schedule": linear_schedule, "token_scores": token_scores,
            "token_selection": token_selection, "sample_selection": sample_selection,
            "entropy_from_logits": entropy_from_logits,
            "conformance_configs": lambda: [("cross", {"scope": "cross"}), ("balanced", {"split": "balanced"}),
                                            ("sample-only", {"token_level": False}),
                                            ("fracs", {"sample_frac_init": 0.25, "token_frac_init": 0.5,
                                                       "token_frac_final": 0.6})]},
    missing="the paper's schedule end points (N_init, N_final, K_init, K_final) and its exact schedule shape were "
            "not recovered (linear, defaults ours); the cross-group variant's two-stage details are not confirmed; "
            "Prop. 1–2 (gradient-norm bounds) are not reproduced",
    equations=(
        Equation("d3s-sample", "Ŝ = argmax_{S ⊆ group, |S| = N_s} Var(A_S)", "arXiv 2509.22115 abstract; method §",
                 "paper", "maxvar_subset",
                 note="objective from the abstract; exact search over 'j smallest + k − j largest' is ours (checked "
                      "against brute force); the fixed N_pos/N_neg split of a third-party note is split='balanced'"),
        Equation("d3s-token", "s_{i,t} = |A_{i,t}|·H_{i,t}; keep the top ⌈K·n⌉ valid tokens of the kept rollouts",
                 "arXiv 2509.22115 abstract; method §", "secondary", "token_selection",
                 note="score |A|·H from the abstract (paper); the batch-level top-K% rule from the note in "
                      "papers_B.md §2"),
        Equation("d3s-schedule", "[N_s, K](p) = (1 − p)[N_init, K_init] + p[N_final, K_final]",
                 "arXiv 2509.22115 abstract ('aggressive → relaxed'); method §", "secondary", "linear_schedule",
                 note="direction from the abstract; the linear form from the note; end-point values are ours"),
        Equation("d3s-cross", "pool every group's rollouts and select N = ⌈f·B′⌉ of maximal Var(A)",
                 "arXiv 2509.22115 method § (cross-group variant)", "reconstructed", "sample_selection",
                 note="the note describes a second selection over the pooled survivors; we offer one pooled "
                      "selection (scope='cross')"),
    ),
    gradient="not a loss: a boolean selection of rollouts and tokens; pass ``keep`` as the mask of the base loss "
             "(the advantages are not renormalised)",
    properties=(
        "properties/test_d3s.py::test_selection_equals_bruteforce_argmax: search = max Var over all C(n, k) subsets",
        "properties/test_d3s.py::test_balanced_split_never_beats_search_and_is_optimal_for_binary",
        "properties/test_d3s.py::test_lemma_standardized_set_has_subset_with_var_at_least_one: Var{min, max} ≥ 1",
        "properties/test_d3s.py::test_fixed_size_maxvar_can_fall_below_one: the lemma needs a free subset size",
        "properties/test_d3s.py::test_prop1_standardized_advantages_have_unit_variance: Var(A) = 1 whatever Var(R)",
        "properties/test_d3s.py::test_schedule_endpoints_and_monotone: p = 0 → init, p = 1 → final, linear between",
        "properties/test_d3s.py::test_token_level_keeps_top_scores: exactly ⌈K·n⌉ tokens, min kept ≥ max dropped",
        "properties/test_d3s.py::test_padding_and_dropped_rows_never_kept",
        "properties/test_d3s.py::test_composition_with_ppo: keep as the ppo mask = ppo on the kept sub-batch",
        "properties/test_d3s.py::test_bad_input_raises",
        "untested: Prop. 1–2 (the policy-gradient-norm upper bound does not depend on Var(R) after standardisation, "
        "and after down-sampling grows with Var(A′), as Var(A′)^{1/3} per the note) — the bound's constants and "
        "exponent were not recovered from the paper; only Prop. 1's premise Var(A) = 1 is tested",
    ),
))

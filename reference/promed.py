"""ProMed: Shapley Information Gain (SIG) rewards for questions, and the token-level group baseline.

Ding, Huang, Fang et al., "ProMed: Shapley Information Gain Guided Reinforcement Learning for
Proactive Medical LLMs", arXiv 2508.13514 (2025). Official code: github.com/hxxding/ProMed (we read
the identical copy huangbaixiang100/ProMed): ``src/mcts_sampling/cal_shapley.py``,
``src/models/doctor_reward.py``, ``src/models/doctor_trainer.py``.

Provenance. Only the paper's abstract was reachable; it fixes the concepts (a question's SIG is the
*newly acquired* information weighted by its contextual importance, estimated via Shapley values;
a SIG-guided distribution of rewards onto question tokens). Every formula below was confirmed in
the official code; where the abstract's wording and the code differ we implement the wording and
expose the code's variant as an option (see ``credit``).

Setting. A patient's condition is a list of n atomic facts F = {f_1..f_n}; a doctor model asks
questions over several turns, then answers a multiple-choice question.

    v(S)  = (1/|a|) Σ_j log π(a_j | prompt(S), a_<j)                 characteristic function
    φ_i   = Σ_{S ⊆ F∖{i}} |S|!(n−|S|−1)!/n! · [v(S ∪ {i}) − v(S)]     Shapley value of fact i
    w     = softmax(φ/τ), τ = 2                                      importance weights, Σ w = 1
    SIG_t = Σ_{i newly acquired in turn t} w_i                        information gain of question t
    R_bt  = α·SIG_q + β·SIG_q·1[correct] + fmt   on tokens of question q
          = γ·1[correct] + fmt                   on answer tokens          (α=2, β=1, γ=3)
          = 0                                    elsewhere
    A_bt  = R_bt − mean{R_ju : j in the group of b, mask_ju}           token-level group baseline

The LLM and the fact checker are USER-SUPPLIED CALLABLES: nothing in this module loads a model.
``characteristic_from_logprob`` turns a function "fact subset -> per-token log-probs of the gold
answer" into v; ``acquired_facts`` turns a checker "(turn text, fact) -> bool" into the (n_turns, n)
acquisition matrix. Everything downstream works on arrays: a characteristic function is stored as
a table ``values`` of length 2^n indexed by subset bitmask (bit i set <=> fact i in S).

Defined cases: n = 0 facts gives empty φ and w and SIG_t = 0; n = 1 or a constant φ (std < 1e-8)
gives uniform weights; a group whose tokens are all masked has baseline 0 (its advantages are 0
anyway); a singleton group is centred on its own token mean (it is not zeroed, as in the code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import (
    as_mask,
    choice,
    fail,
    finite_vector,
    group_ids,
    masked_array,
    positive,
)
from rlspec.reference.registry import Equation, Paper, Spec, register

PROMED_PAPER = Paper(arxiv="2508.13514", title="ProMed: Shapley Information Gain Guided Reinforcement Learning "
                     "for Proactive Medical LLMs", year=2025)

MAX_EXACT_FACTS = 20  # 2^20 subsets: the exact enumeration's limit
WEIGHT_METHODS = ("softmax", "z_score")
CREDIT_MODES = ("new", "every-mention")


# ----------------------------------------------------------------------------------------------
# characteristic function: table <-> callable
# ----------------------------------------------------------------------------------------------

def characteristic_table(values: Any, name: str = "values") -> tuple[np.ndarray, int]:
    """Validate a characteristic-function table; return ``(v, n)``.

    ``values`` is 1-D, finite, of length 2^n (n ≥ 0); ``v[m]`` is v(S) for the subset S whose
    bitmask is m (fact i ∈ S <=> bit i of m is set), so v[0] = v(∅) and v[2^n − 1] = v(F).
    """
    v = finite_vector(values, name)
    L = v.shape[0]
    if L < 1 or L & (L - 1):
        raise fail(name, f"length {L}", "length 2^n: one value per subset of the n facts, indexed by bitmask")
    n = L.bit_length() - 1
    if n > MAX_EXACT_FACTS:
        raise fail(name, f"length 2^{n}", f"at most 2^{MAX_EXACT_FACTS} subsets")
    return v, n


def subset_of(mask: int, n: int) -> frozenset:
    """The subset {i : bit i of ``mask`` is set} of {0..n−1}."""
    return frozenset(i for i in range(n) if mask >> i & 1)


def _n_facts(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= int(n) <= MAX_EXACT_FACTS:
        raise fail("n", repr(n), f"an integer number of facts in [0, {MAX_EXACT_FACTS}]")
    return int(n)


def _call_game(v: Callable[[frozenset], float], S: frozenset) -> float:
    """v(S) from a user callable, checked to be a finite real number."""
    try:
        out = float(v(S))
    except (TypeError, ValueError):
        raise fail("v", f"v({set(S) or '{}'}) not convertible to float", "a callable frozenset -> float") from None
    if not np.isfinite(out):
        raise fail("v", f"v({set(S) or '{}'}) = {out}", "finite values of the characteristic function")
    return out


def characteristic_values(v: Any, n: int | None = None) -> tuple[np.ndarray, int]:
    """The table (2^n,) of a characteristic function given as a table or as a callable.

    A callable ``v(frozenset) -> float`` is evaluated once on each of the 2^n subsets of {0..n−1}
    (``n`` required); a table is validated (``n``, if given, must match its length).
    """
    if callable(v):
        if n is None:
            raise fail("n", "None", "the number of facts when v is a callable")
        n = _n_facts(n)
        return np.array([_call_game(v, subset_of(m, n)) for m in range(1 << n)], dtype=np.float64), n
    table, n_tab = characteristic_table(v, "v")
    if n is not None and _n_facts(n) != n_tab:
        raise fail("n", repr(n), f"{n_tab}, the number of facts implied by len(v) = {table.shape[0]}")
    return table, n_tab


def characteristic_from_logprob(logprob_fn: Callable[[frozenset], Any]) -> Callable[[frozenset], float]:
    """v(S) = (1/|a|) Σ_j log π(a_j | prompt(S), a_<j): the mean gold-answer log-prob given facts S.

    arXiv 2508.13514 (abstract: importance "estimated via Shapley values"); the definition of v is
    the official code's ``get_answer_logprob`` in ``cal_shapley.py`` / ``doctor_reward.py`` (mean of
    the per-token log-probs of the target answer after a prompt that lists the selected facts).

    ``logprob_fn(S)`` is supplied by the user: it builds the prompt listing the facts in ``S`` (a
    frozenset of fact indices), runs the LLM and returns the per-token log-probs of the gold answer
    (1-D, non-empty, finite, ≤ 0). Returns the callable ``v``; tabulate it with
    :func:`characteristic_values`.
    """
    if not callable(logprob_fn):
        raise fail("logprob_fn", type(logprob_fn).__name__, "a callable: fact subset -> per-token log-probs")

    def v(S: frozenset) -> float:
        lp = np.asarray(logprob_fn(frozenset(S)), dtype=np.float64)
        if lp.ndim != 1 or lp.size == 0:
            raise fail("logprob_fn", f"output of shape {lp.shape} for subset {set(S) or '{}'}",
                       "a non-empty 1-D array of per-token log-probs of the gold answer")
        if not np.isfinite(lp).all() or (lp > 0).any():
            raise fail("logprob_fn", f"output {lp} for subset {set(S) or '{}'}", "finite log-probs ≤ 0")
        return float(lp.mean())

    return v


# ----------------------------------------------------------------------------------------------
# Shapley values
# ----------------------------------------------------------------------------------------------

def shapley_coefficient(s: int, n: int) -> float:
    """c(s) = s!(n−s−1)!/n!: the weight of a coalition S of size s (i ∉ S) in φ_i."""
    return math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)


def popcount(n: int) -> np.ndarray:
    """|S| for every bitmask m = 0..2^n − 1, shape (2^n,)."""
    m = np.arange(1 << n)
    return np.array([bin(int(k)).count("1") for k in m], dtype=np.int64)


def shapley_exact(v: Any, n: int | None = None) -> np.ndarray:
    """φ_i = Σ_{S ⊆ F∖{i}} |S|!(n−|S|−1)!/n! · [v(S ∪ {i}) − v(S)], every i, by enumeration. Shape (n,).

    Shapley (1953); the quantity ProMed's ``compute_equal_shapley_values`` estimates
    (arXiv 2508.13514 code). ``v`` is a table of length 2^n indexed by bitmask, or a callable
    frozenset -> float with ``n`` given (evaluated on all 2^n subsets). n = 0 returns an empty array.
    """
    table, n = characteristic_values(v, n)
    size = popcount(n)                                        # (2^n,) |S| per bitmask
    c = np.array([shapley_coefficient(s, n) for s in range(n)])  # (n,) weight by |S|
    phi = np.zeros(n)
    masks = np.arange(1 << n)
    for i in range(n):
        without_i = masks[(masks >> i & 1) == 0]              # (2^(n−1),) subsets S not containing i
        marginal = table[without_i | (1 << i)] - table[without_i]
        phi[i] = np.sum(c[size[without_i]] * marginal)
    return phi


def shapley_mc(v: Any, n: int | None, rng: np.random.Generator, max_perm: int = 50, min_perm: int = 3,
               tol: float = 1e-2, early_stop: bool = True, trunc_tol: float = 1e-2) -> np.ndarray:
    """Monte-Carlo permutation estimate of φ, as in the official code. Shape (n,).

    arXiv 2508.13514, official code ``compute_equal_shapley_values`` (defaults 50 / 3 / 1e-2). For
    permutation t = 1, 2, ..., walking its order with the growing prefix P::

        φ_i ← (t−1)/t · φ_i + (1/t) · [v(P ∪ {i}) − v(P)]        (running mean over permutations)

    Two stopping rules, both the code's:

    * ``early_stop`` (inside a permutation): stop walking once |v(P ∪ {i}) − v(F)| < ``trunc_tol``;
      the facts not reached keep their old φ (they are NOT shrunk by (t−1)/t), so the estimator is
      biased whenever a skipped fact's marginal contribution would not be ≈ 0 (non-monotone v);
    * convergence (between permutations): after t ≥ ``min_perm``, stop when mean_i |φ_i − φ_i^prev|
      < ``tol``. ``tol = 0`` never fires: exactly ``max_perm`` permutations are used.

    With ``early_stop=False`` and ``tol=0`` the result is the mean of ``max_perm`` i.i.d. unbiased
    permutation estimates, hence E[φ̂] = φ; each permutation's marginals telescope, so Σ_i φ̂_i =
    v(F) − v(∅) holds for every draw. A data-dependent stop (``tol > 0``) voids the unbiasedness
    guarantee. v(∅) and v(F) are evaluated first (2 calls), then n calls per completed permutation.
    Deterministic given ``rng`` (a ``numpy.random.Generator``; the code uses Python's ``random``).
    """
    if not isinstance(rng, np.random.Generator):
        raise fail("rng", type(rng).__name__, "a numpy.random.Generator")
    for val, nm in ((max_perm, "max_perm"), (min_perm, "min_perm")):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise fail(nm, repr(val), "an integer ≥ 1")
    positive(tol, "tol", allow_zero=True)
    positive(trunc_tol, "trunc_tol", allow_zero=True)
    if callable(v):
        n = _n_facts(n)

        def game(m: int) -> float:
            return _call_game(v, subset_of(m, n))
    else:
        table, n = characteristic_values(v, n)

        def game(m: int) -> float:
            return float(table[m])
    phi = np.zeros(n)
    if n == 0:
        return phi
    v_empty, v_full = game(0), game((1 << n) - 1)
    for t in range(1, int(max_perm) + 1):
        prev = phi.copy()
        v_prev, prefix = v_empty, 0
        for i in rng.permutation(n):
            prefix |= 1 << int(i)
            v_j = game(prefix)
            phi[i] = (t - 1) / t * phi[i] + (v_j - v_prev) / t  # running mean of i's marginal contribution
            v_prev = v_j
            if early_stop and abs(v_j - v_full) < trunc_tol:
                break                                            # facts not reached keep their old φ
        if t >= min_perm and np.mean(np.abs(phi - prev)) < tol:
            break
    return phi


# ----------------------------------------------------------------------------------------------
# weights and SIG
# ----------------------------------------------------------------------------------------------

def sig_weights(phi: Any, tau: float = 2.0, method: str = "softmax") -> np.ndarray:
    """Importance weights w (n,) from Shapley values, Σ_i w_i = 1.

    arXiv 2508.13514, official code ``normalize_shapley_weights``:

    * ``"softmax"`` (used in training, τ = 2): w = softmax(φ/τ), order-preserving in φ;
    * ``"z_score"``: w = softmax(|z|), z = (φ − mean φ)/std φ (population std; τ unused, as in the
      code), order-preserving in |φ − mean φ|;
    * n = 1, or std(φ) < 1e-8: uniform weights 1/n (n = 0: empty).
    """
    phi = finite_vector(phi, "phi")
    positive(tau, "tau")
    choice(method, "method", WEIGHT_METHODS)
    n = phi.shape[0]
    if n == 0:
        return phi
    if n == 1 or np.std(phi) < 1e-8:
        return np.full(n, 1.0 / n)
    x = phi / tau if method == "softmax" else np.abs((phi - phi.mean()) / np.std(phi))
    e = np.exp(x - x.max())  # shift by the max for overflow safety
    return e / e.sum()


def newly_acquired(acquired: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """N (n_turns, n): fact i counts in turn t iff acquired in t, in no earlier turn, and not known up front."""
    before = np.zeros(acquired.shape[1], dtype=bool) if known is None else known.copy()
    new = np.zeros_like(acquired)
    for t in range(acquired.shape[0]):
        new[t] = acquired[t] & ~before
        before |= acquired[t]
    return new


def sig_per_turn(acquired: Any, w: Any, credit: str = "new", known: Any = None) -> np.ndarray:
    """SIG_t = Σ_i N_ti · w_i per question turn, shape (n_turns,).

    ``acquired`` (n_turns, n) bool: fact i was judged acquired in turn t (see :func:`acquired_facts`).

    * ``credit="new"`` (default; the abstract's "newly acquired information", arXiv 2508.13514):
      N_ti = 1 iff turn t is the first turn acquiring fact i and i is not in ``known`` (the facts
      given up front, (n,) bool, optional). Then Σ_t SIG_t = Σ_{i ever newly acquired} w_i ≤ 1.
    * ``credit="every-mention"`` (official code ``compute_question_shapley_gains``): each turn is
      checked against all facts independently, N = ``acquired``; a fact re-mentioned later is
      credited again, so Σ_t SIG_t may exceed 1.
    """
    A = as_mask(acquired, "acquired")
    if A.ndim != 2:
        raise fail("acquired", f"shape {A.shape}", "shape (n_turns, n) of booleans")
    w = finite_vector(w, "w", A.shape[1])
    choice(credit, "credit", CREDIT_MODES)
    if credit == "every-mention":
        N = A
    else:
        K = None if known is None else as_mask(known, "known", (A.shape[1],))
        N = newly_acquired(A, K)
    return N.astype(np.float64) @ w  # (n_turns,)


def keyword_checker(turn_text: str, fact: str) -> bool:
    """Fallback fact checker: ≥ 50 % of the fact's words longer than 2 characters occur in the turn.

    Case-insensitive substring test per word; a fact without such words is never acquired. This is
    the string-match fallback of the official code (used there when the LLM fact-checker fails).
    """
    words = [x for x in fact.lower().split() if len(x) > 2]
    if not words:
        return False
    text = turn_text.lower()
    return sum(x in text for x in words) / len(words) >= 0.5


def acquired_facts(turn_texts: Sequence[str], facts: Sequence[str],
                   checker: Callable[[str, str], bool] | None = None) -> np.ndarray:
    """acquired (n_turns, n) bool: ``checker(turn_texts[t], facts[i])`` for every turn and fact.

    ``checker`` is supplied by the user (the paper uses an LLM fact-checker, Qwen2.5-72B in the
    code); ``None`` uses :func:`keyword_checker`. Which text a turn holds (the doctor's question
    alone, or with the patient's reply) is the caller's choice; the code checks each assistant turn.
    """
    for nm, seq in (("turn_texts", turn_texts), ("facts", facts)):
        if isinstance(seq, str) or not all(isinstance(s, str) for s in seq):
            raise fail(nm, type(seq).__name__, "a sequence of strings")
    check = keyword_checker if checker is None else checker
    if not callable(check):
        raise fail("checker", type(check).__name__, "a callable (turn_text, fact) -> bool")
    out = np.zeros((len(turn_texts), len(facts)), dtype=bool)
    for t, text in enumerate(turn_texts):
        for i, f in enumerate(facts):
            r = check(text, f)
            if not isinstance(r, (bool, np.bool_)):
                raise fail("checker", f"{type(r).__name__} for turn {t}, fact {i}", "a bool")
            out[t, i] = bool(r)
    return out


def mcts_state_value(understood: Any, w: Any) -> float:
    """s(U) = Σ_i w_i · 1[f_i ∈ U]: the stage-1 MCTS state value of a doctor understanding U.

    Official code ``mcts.py``; U (n,) bool marks the facts found in the LLM-written understanding.
    The step reward of a question is s(U_t) − s(U_{t−1}). (The tree search itself is not built.)
    """
    U = as_mask(understood, "understood")
    if U.ndim != 1:
        raise fail("understood", f"shape {U.shape}", "shape (n,) of booleans")
    return float(finite_vector(w, "w", U.shape[0]) @ U)


# ----------------------------------------------------------------------------------------------
# token rewards and the token-level group baseline
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PromedConfig:
    """tau, weight_method: weights from φ (code: softmax, τ = 2). credit: "new" (paper's wording) or
    "every-mention" (code). alpha, beta, gamma, fmt_weight: token-reward weights (training script
    ``train_with_shapley.sh``: 2, 1, 3, 1; note the function default in ``doctor_reward.py`` is α = 1)."""

    tau: float = 2.0
    weight_method: str = "softmax"
    credit: str = "new"
    alpha: float = 2.0
    beta: float = 1.0
    gamma: float = 3.0
    fmt_weight: float = 1.0

    def __post_init__(self) -> None:
        positive(self.tau, "tau")
        choice(self.weight_method, "weight_method", WEIGHT_METHODS)
        choice(self.credit, "credit", CREDIT_MODES)
        for nm in ("alpha", "beta", "gamma", "fmt_weight"):
            positive(getattr(self, nm), nm, allow_zero=True)


def spans_to_index(spans: Sequence[Sequence[tuple[int, int]]], T: int, name: str = "spans") -> np.ndarray:
    """(B, T) int: token t of row b holds k if it lies in the k-th span [start, end) of row b, else −1.

    Spans of one row must lie in [0, T] and not overlap. Use it for question spans (k = question
    index, the ``turn`` convention) and, with ``>= 0``, for answer spans.
    """
    T = int(T)
    out = np.full((len(spans), T), -1, dtype=np.int64)
    for b, row in enumerate(spans):
        for k, (s, e) in enumerate(row):
            if not (0 <= s <= e <= T):
                raise fail(name, f"span ({s}, {e}) in row {b}", f"0 ≤ start ≤ end ≤ T = {T}")
            if (out[b, s:e] >= 0).any():
                raise fail(name, f"overlapping span ({s}, {e}) in row {b}", "disjoint spans")
            out[b, s:e] = k
    return out


def promed_token_rewards(question: Any, sig: Any, answer: Any, correct: Any, mask: Any, fmt: Any = None,
                         config: PromedConfig | None = None) -> np.ndarray:
    """Token rewards R (B, T) of the SIG-guided reward distribution.

    arXiv 2508.13514 (abstract: "SIG-guided Reward Distribution Mechanism"); formula from the official
    code ``compute_token_level_rewards`` (weights from ``train_with_shapley.sh``)::

        R_bt = α·SIG_bq + β·SIG_bq·c_b   if token t is in question q of row b (question[b,t] = q ≥ 0)
             + γ·c_b                     if token t is in an answer span (answer[b,t])
             + fmt_weight · fmt_bt       format score (code: 1 if the turn starts with "question:" /
                                         "answer:", 0.5 if it only contains the tag, else 0)
        R_bt = 0                         where mask is False

    question (B, T) int (−1 outside questions; see :func:`spans_to_index`); sig (B, Q) with SIG of
    question q of row b (only the entries that tokens point to are read); answer (B, T) bool;
    correct (B,) bool (or 0/1); mask (B, T) bool; fmt (B, T) or None (= 0). Terms add up where spans
    overlap, as in the code.
    """
    cfg = config or PromedConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    q = np.asarray(question)
    if q.shape != M.shape or not np.issubdtype(q.dtype, np.integer):
        raise fail("question", f"{q.dtype} array of shape {q.shape}", f"integer question indices of shape {M.shape}")
    S = np.asarray(sig, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != M.shape[0]:
        raise fail("sig", f"shape {S.shape}", f"shape ({M.shape[0]}, Q): SIG per row and question")
    in_q = (q >= 0) & M
    if (q[in_q] >= S.shape[1]).any():
        raise fail("question", f"index {int(q[in_q].max())}", f"question indices < Q = {S.shape[1]}")
    s_tok = np.zeros(M.shape)
    s_tok[in_q] = S[np.nonzero(in_q)[0], q[in_q]]  # (B, T) SIG of the question each token belongs to
    if not np.isfinite(s_tok[in_q]).all():
        raise fail("sig", "a non-finite SIG referenced by a question token", "finite SIG values")
    ans = as_mask(answer, "answer", M.shape) & M
    c = finite_vector(as_mask(correct, "correct", (M.shape[0],)), "correct")[:, None]  # (B, 1)
    F = np.zeros(M.shape) if fmt is None else masked_array(fmt, "fmt", M)
    R = np.where(in_q, cfg.alpha * s_tok + cfg.beta * s_tok * c, 0.0)
    R = R + np.where(ans, cfg.gamma * c, 0.0) + cfg.fmt_weight * F
    return np.where(M, R, 0.0)


def token_group_baseline_advantage(rewards: Any, group: Any, mask: Any, config: Any = None) -> np.ndarray:
    """A_bt = R_bt − mean{R_ju : group(j) = group(b), mask_ju}, zero where mask is False. Shape (B, T).

    arXiv 2508.13514, official code ``compute_token_level_group_advantages`` (default
    ``token_reward_mode="token_baseline"``): one scalar baseline per group, the mean over ALL valid
    tokens of all its rollouts; no std normalisation. Long rollouts weigh more in the baseline.

    rewards: token rewards (B, T) (masked positions never read), or sequence rewards (B,) broadcast
    over each row's valid tokens. A group with no valid token has baseline 0; a singleton group is
    centred on its own token mean. ``config`` is accepted for the registry signature and unused.
    """
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    r = np.asarray(rewards)
    R = masked_array(np.broadcast_to(finite_vector(r, "rewards", M.shape[0])[:, None], M.shape), "rewards", M) \
        if r.ndim == 1 else masked_array(r, "rewards", M)
    g = group_ids(group, M.shape[0])
    A = np.zeros(M.shape)
    for k in np.unique(g):
        rows = g == k
        n_tok = M[rows].sum()
        baseline = R[rows][M[rows]].sum() / n_tok if n_tok else 0.0  # token-mean over the whole group
        A[rows] = R[rows] - baseline
    return np.where(M, A, 0.0)


def promed_sig_reward(values: Any, acquired: Any, config: PromedConfig | None = None) -> tuple[np.ndarray, ...]:
    """The SIG reward path on arrays: table v (2^n,) and acquisition (n_turns, n) -> (φ, w, SIG).

    φ = :func:`shapley_exact` (the quantity the code's Monte-Carlo estimator targets), w =
    :func:`sig_weights` (config τ, method), SIG = :func:`sig_per_turn` (config credit).
    """
    cfg = config or PromedConfig()
    phi = shapley_exact(values)
    A = as_mask(acquired, "acquired")
    if A.ndim != 2 or A.shape[1] != phi.shape[0]:
        raise fail("acquired", f"shape {A.shape}", f"shape (n_turns, {phi.shape[0]}): one column per fact")
    w = sig_weights(phi, cfg.tau, cfg.weight_method)
    return phi, w, sig_per_turn(A, w, cfg.credit)


# ----------------------------------------------------------------------------------------------
# example inputs and registration
# ----------------------------------------------------------------------------------------------

def synthetic_game(rng: np.random.Generator, n: int, n_tokens: int = 3) -> np.ndarray:
    """A synthetic answer-log-prob table: v(S) = mean_k log σ(θ_k·x_S + b_k), x_S the indicator of S."""
    theta = rng.normal(scale=1.5, size=(n_tokens, n))
    b = rng.normal(size=n_tokens)
    X = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1  # (2^n, n) indicators
    z = X @ theta.T + b                                            # (2^n, n_tokens)
    return np.mean(-np.logaddexp(0.0, -z), axis=1)                 # log σ(z), averaged over tokens


def make_sig_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = int(rng.integers(1, 7))
    n_turns = int(rng.integers(1, 6))
    return {"values": synthetic_game(rng, n), "acquired": rng.random((n_turns, n)) < 0.35}


def make_token_baseline_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    B, T = int(rng.integers(1, 9)), int(rng.integers(1, 8))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    R = rng.choice([0.0, 1.0, 3.0, 4.0], size=(B, T)) + rng.uniform(0, 3, size=(B, T)) * (rng.random((B, T)) < 0.5)
    R[~mask] = rng.choice([np.nan, np.inf, -1e30], size=int((~mask).sum()))
    group = rng.choice(rng.choice(np.arange(-20, 20), size=int(rng.integers(1, B + 1)), replace=False), size=B)
    return {"rewards": R, "group": group, "mask": mask}


EQUATIONS = (
    Equation("v", "v(S) = (1/|a|) Σ_j log π(a_j | prompt(S), a_<j)", "code cal_shapley.py::get_answer_logprob_v2 "
             "(doctor_reward.py::get_answer_logprob in the RL stage)", "official-code", "characteristic_from_logprob",
             note="the LLM is a user callable; v is stored as a table over subset bitmasks. The RL-stage "
                  "helper feeds only the prompt and reads its last |a| positions' log-probs of the answer "
                  "ids (not conditioned on the answer prefix); the stage-1 v2 scores prompt+answer properly"),
    Equation("shapley", "φ_i = Σ_{S⊆F∖{i}} |S|!(n−|S|−1)!/n! [v(S∪{i}) − v(S)]", "Shapley (1953); the target of "
             "code cal_shapley.py::compute_equal_shapley_values", "official-code", "shapley_exact",
             note="abstract: contextual importance 'estimated via Shapley values'; exact enumeration is ours"),
    Equation("shapley-mc", "φ_i ← (t−1)/t φ_i + (1/t)[v(P∪{i}) − v(P)] over random permutations; stop inside a "
             "permutation when |v(P∪{i}) − v(F)| < 1e-2; stop after t ≥ 3 when mean|Δφ| < 1e-2; ≤ 50 permutations",
             "code cal_shapley.py / doctor_reward.py::compute_equal_shapley_values", "official-code", "shapley_mc",
             note="the in-permutation early stop leaves unreached facts un-shrunk: biased for non-monotone v "
                  "(property test exhibits it); early_stop=False, tol=0 is unbiased"),
    Equation("weights", "w = softmax(φ/τ), τ = 2 (z_score: softmax(|z(φ)|)); uniform if n = 1 or std φ < 1e-8",
             "code doctor_reward.py::normalize_shapley_weights", "official-code", "sig_weights"),
    Equation("sig", "SIG_t = Σ_{i newly acquired in turn t} w_i", "arXiv 2508.13514 abstract ('newly acquired "
             "information'); sum from code doctor_reward.py::compute_question_shapley_gains", "reconstructed",
             "sig_per_turn",
             note="the code credits every fact the checker finds in a turn, again if re-mentioned "
                  "(credit='every-mention'); the default 'new' follows the abstract's wording"),
    Equation("token-reward", "R = α·SIG_q + β·SIG_q·1[correct] + fmt on question tokens; γ·1[correct] + fmt on "
             "answer tokens; 0 elsewhere; α=2, β=1, γ=3, fmt weight 1",
             "code doctor_reward.py::compute_token_level_rewards; weights script/training/train_with_shapley.sh",
             "official-code", "promed_token_rewards",
             note="the paper's own equation for the reward distribution was not read; the function default "
                  "in doctor_reward.py is α = 1, the training script and the trainer use α = 2"),
    Equation("token-baseline", "A_bt = R_bt − mean{R_ju : j ∈ group(b), mask_ju}",
             "code doctor_trainer.py::compute_token_level_group_advantages", "official-code",
             "token_group_baseline_advantage", note="no std normalisation; a token-mean over the group"),
    Equation("mcts-value", "s(U) = Σ_i w_i 1[f_i ∈ U]; step reward s(U_t) − s(U_{t−1})", "code mcts.py (stage 1)",
             "secondary", "mcts_state_value", note="from our notes (papers_B.md §1), not re-read in the code"),
)

register(Spec(
    name="promed", kind="reward", family="reward", paper=PROMED_PAPER, status="implemented",
    summary="Shapley Information Gain: Shapley values of patient facts → softmax weights → per-question SIG",
    fn=promed_sig_reward, config_cls=PromedConfig, equations=EQUATIONS, outputs=("phi", "w", "sig"),
    make_inputs=make_sig_inputs,
    # the caller turns dialogue text into token spans and format scores (a tokenizer is needed);
    # the stage-1 tree search that builds SFT data is its own entry, promed_mcts_init, below
    gradient="not a loss: rewards are constants w.r.t. the policy; pair with a token-level advantage "
             "(promed_token_baseline) and a clipped token loss",
    properties=(
        "properties/test_promed.py::test_efficiency: Σφ = v(F) − v(∅)",
        "properties/test_promed.py::test_symmetry: interchangeable facts get equal φ",
        "properties/test_promed.py::test_null_player: a fact that never changes v gets φ = 0",
        "properties/test_promed.py::test_linearity: φ(a v + b u) = a φ(v) + b φ(u)",
        "properties/test_promed.py::test_exact_matches_permutation_bruteforce: φ = mean over all n! orders",
        "properties/test_promed.py::test_mc_without_early_stop_is_unbiased: E[φ̂] = φ",
        "properties/test_promed.py::test_mc_early_stop_is_biased: the code's truncation biases φ̂",
        "properties/test_promed.py::test_weights_sum_to_one_and_preserve_order",
        "properties/test_promed.py::test_newly_acquired_sig_total_at_most_one: Σ_t SIG_t ≤ 1",
    ),
    extras={"shapley_exact": shapley_exact, "shapley_mc": shapley_mc, "sig_weights": sig_weights,
            "sig_per_turn": sig_per_turn, "promed_token_rewards": promed_token_rewards,
            "characteristic_from_logprob": characteristic_from_logprob, "acquired_facts": acquired_facts},
))

register(Spec(
    name="promed_token_baseline", kind="advantage", family="advantage", paper=PROMED_PAPER, status="implemented",
    summary="token-level group baseline: token reward minus the mean reward of all valid tokens of the group",
    fn=token_group_baseline_advantage, outputs=("adv",), make_inputs=make_token_baseline_inputs,
    equations=(EQUATIONS[6],),
    properties=(
        "properties/test_promed.py::test_token_baseline_sums_to_zero_per_group",
        "properties/test_promed.py::test_token_baseline_matches_loop_and_ignores_padding",
    ),
))

register(Spec(
    name="promed_mcts_init", kind="curriculum", family="reward", paper=PROMED_PAPER, status="planned",
    summary="stage 1: SIG-guided Monte-Carlo tree search that builds supervised warm-start dialogues",
    missing="the tree search (UCT, leaf bonus, trajectory selection) is not built; only its state value "
            "s(U) = Σ w_i 1[f_i ∈ U] exists, as promed.mcts_state_value",
))

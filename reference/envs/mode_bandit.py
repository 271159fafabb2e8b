"""A mode-routing bandit with exact enumeration (the A²FM / APO toy).

Query types x ∈ {0, …, X−1}; modes m ∈ {0: instant, 1: reasoning, 2: agentic}. Answering x in mode m is correct
with probability P[x, m] and costs C[m] (instant < reasoning < agentic: no thinking, long thinking, tool calls).
A softmax router π_θ(m | x) = softmax(θ[x]) picks the mode::

    accuracy(router) = Σ_x w_x Σ_m π(m|x) P[x, m]
    cost(router)     = Σ_x w_x Σ_m π(m|x) C[m]
    cost of pass     = cost / accuracy          (expected cost per correct answer; A²FM's "cost of pass")

Default table (ours, for the tests): an easy type that every mode solves (instant 0.9, reasoning 0.92, agentic
0.93), a reasoning type (0.3, 0.8, 0.6) and a tool type (0.05, 0.2, 0.7); costs (1, 20, 30) (long chains of
thought cost nearly as much as tool calls). The comparison of routers depends on these numbers: with a reasoning
cost of 10, always-reasoning would have a lower cost per correct answer than the reward-optimal router here,
because it gives up the tool type that only the expensive agentic mode solves.

:func:`binomial_outcomes` enumerates the success counts of n independent tries with their probabilities, so that
estimators built from forced rollouts have exact expectations.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np

from rlspec.reference._validate import fail

MODES = ("instant", "reasoning", "agentic")
P_CORRECT = np.array([[0.90, 0.92, 0.93],   # easy: every mode works
                      [0.30, 0.80, 0.60],   # needs reasoning
                      [0.05, 0.20, 0.70]])  # needs tools
COSTS = np.array([1.0, 20.0, 30.0])


def check_table(P) -> np.ndarray:
    """P (X, M) success probabilities in [0, 1], M = 3 modes."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != len(MODES) or not np.isfinite(P).all() or (P < 0).any() or (P > 1).any():
        raise fail("P", f"shape {P.shape}", f"probabilities in [0, 1] of shape (X, {len(MODES)})")
    return P


def router(theta) -> np.ndarray:
    """π (X, M) = row-wise softmax of θ (X, M)."""
    th = np.asarray(theta, dtype=np.float64)
    z = np.exp(th - th.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def deterministic(choice, n_modes: int = len(MODES)) -> np.ndarray:
    """π (X, M) putting all mass on ``choice[x]``."""
    c = np.asarray(choice, dtype=np.int64)
    return np.eye(n_modes)[c]


def accuracy(pi, P=P_CORRECT, w=None) -> float:
    """Σ_x w_x Σ_m π(m|x) P[x, m] (w uniform by default)."""
    P = check_table(P)
    w = np.full(P.shape[0], 1.0 / P.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    return float((w[:, None] * np.asarray(pi) * P).sum())


def cost(pi, C=COSTS, w=None) -> float:
    """Σ_x w_x Σ_m π(m|x) C[m]."""
    pi = np.asarray(pi, dtype=np.float64)
    w = np.full(pi.shape[0], 1.0 / pi.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    return float((w[:, None] * pi * np.asarray(C, dtype=np.float64)[None, :]).sum())


def cost_of_pass(pi, P=P_CORRECT, C=COSTS, w=None) -> float:
    """Expected cost per correct answer = cost / accuracy (inf when the router never answers correctly)."""
    acc = accuracy(pi, P, w)
    return float("inf") if acc == 0 else cost(pi, C, w) / acc


def binomial_outcomes(n: int, p: float) -> list[tuple[int, float]]:
    """[(k, Pr[k successes in n tries])] for k = 0..n."""
    if n < 0:
        raise fail("n", repr(n), "a number of tries ≥ 0")
    return [(k, comb(n, k) * p**k * (1.0 - p) ** (n - k)) for k in range(n + 1)]


def forced_outcomes(p_modes, n: int) -> list[tuple[tuple[int, ...], float]]:
    """[((k_0, …, k_{M−1}), probability)]: success counts of n forced tries in every mode, independent."""
    per_mode = [binomial_outcomes(n, float(p)) for p in p_modes]
    out = []
    for combo in itertools.product(*per_mode):
        out.append((tuple(k for k, _ in combo), float(np.prod([q for _, q in combo]))))
    return out

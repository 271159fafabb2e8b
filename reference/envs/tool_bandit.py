"""A two-question tool-use bandit with tool-output tokens (the TAPO toy), solved exactly.

Questions q ∈ {0: lookup, 1: arithmetic}. The policy's first token chooses a ∈ {0: answer directly,
1: search, 2: run code}; a tool call is followed by ``n_tool`` tool-output tokens that the environment inserts
(masked out of the loss), then one answer token. The answer is correct with probability P[q, a]::

    π_θ(a | q) = softmax(θ[q])_a,     J_q(θ) = Σ_a π_θ(a|q) P[q, a],     J* = max_a P[q, a]

Default table (ours): lookup is answered by search (0.9; direct 0.3, code 0.1), arithmetic by code (0.95;
direct 0.2, search 0.1). Every reward is 0/1 and there is no tool-count term, so the optimum is the
deterministic policy a*(q) = argmax_a P[q, a].

:func:`episode_layout` gives the token layout of one episode: which positions are the decision, the tool
output and the answer, so that a test can build (B, T) batches with a tool mask.
"""

from __future__ import annotations

import numpy as np

from rlspec.reference._validate import fail

ACTIONS = ("direct", "search", "code")
P_CORRECT = np.array([[0.3, 0.9, 0.1],    # lookup
                      [0.2, 0.1, 0.95]])  # arithmetic


def check_table(P) -> np.ndarray:
    """P (Q, A) success probabilities in [0, 1]."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != len(ACTIONS) or not np.isfinite(P).all() or (P < 0).any() or (P > 1).any():
        raise fail("P", f"shape {P.shape}", f"probabilities in [0, 1] of shape (Q, {len(ACTIONS)})")
    return P


def policy(theta) -> np.ndarray:
    """π (Q, A) = row-wise softmax of θ (Q, A)."""
    th = np.asarray(theta, dtype=np.float64)
    z = np.exp(th - th.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_reward(theta, P=P_CORRECT) -> np.ndarray:
    """J_q(θ) (Q,) = Σ_a π(a|q) P[q, a], exactly."""
    return (policy(theta) * check_table(P)).sum(axis=1)


def optimal_actions(P=P_CORRECT) -> np.ndarray:
    """a*(q) (Q,) = argmax_a P[q, a]."""
    return check_table(P).argmax(axis=1)


def optimum(P=P_CORRECT) -> np.ndarray:
    """J*_q (Q,) = max_a P[q, a] (the best deterministic policy; no stochastic policy does better)."""
    return check_table(P).max(axis=1)


def episode_layout(action: int, n_tool: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, tool, decision) bool rows of length T = 2 + n_tool for one episode.

    Position 0 is the decision token, positions 1..n_tool the tool output (valid only after a tool call),
    the last position the answer token. ``tool`` marks the environment's tokens; ``decision`` position 0.
    """
    if action not in range(len(ACTIONS)):
        raise fail("action", repr(action), f"an action index in 0..{len(ACTIONS) - 1}")
    T = 2 + n_tool
    valid = np.zeros(T, dtype=bool)
    valid[[0, T - 1]] = True
    tool = np.zeros(T, dtype=bool)
    if action != 0:
        valid[1:T - 1] = True
        tool[1:T - 1] = True
    decision = np.zeros(T, dtype=bool)
    decision[0] = True
    return valid, tool, decision

"""A depth-d token tree: the smallest exact model of autoregressive decoding with a terminal reward.

Used by the decoding / value-guided papers (VAS) so that their properties compare with exact
expectations over every response rather than with sampled estimates.

The problem: a vocabulary of K tokens and responses of exactly d tokens y = (y_0 … y_{d−1}). A state
is a prefix s of t < d tokens; a policy gives π(a | s) for every prefix; a finished response y
receives the reward r(y) (nothing before the end, no discount)::

    π(y)        = Π_t π(y_t | y_<t)                              sequence probability
    V^π(s)      = Σ_a π(a|s) V^π(s⊕a),   V^π(y) = r(y) for |y| = d
    Q^π(s, a)   = V^π(s⊕a)                                      (deterministic transitions, no step reward)
    J(π)        = V^π(∅) = Σ_y π(y) r(y)                          expected reward
    KL(π‖π₀)    = Σ_y π(y) log π(y)/π₀(y) = Σ_t E_{s∼d^π_t} KL(π(·|s) ‖ π₀(·|s))

KL-regularised objective and its exact solution (soft value iteration, strength β > 0)::

    F_β(π)      = J(π) − (1/β)·KL(π ‖ π₀)
    V*_β(y)     = r(y),   V*_β(s) = (1/β) log Σ_a π₀(a|s) exp(β V*_β(s⊕a))
    π*_β(a|s)   = π₀(a|s) exp(β (V*_β(s⊕a) − V*_β(s)))           ⇔  π*_β(y) = π₀(y) e^{β r(y)} / E_{π₀} e^{β r}
    max_π F_β   = V*_β(∅) = (1/β) log E_{π₀} e^{β r}

Storage: a policy is a tuple of d arrays, ``pi[t]`` of shape (K**t, K), row i the distribution after
the prefix whose base-K digits (first token most significant) spell i; the child of prefix i by token
a is i·K + a. Rewards ``r`` have shape (K**d,), indexed the same way. Everything is exact enumeration,
so keep K**d small (the solvers accept up to 2**16 responses).

Stable API: :class:`TokenTree`, :func:`random_tree`, :func:`check_policy`, :func:`sequence_probs`,
:func:`state_probs`, :func:`values`, :func:`q_values`, :func:`expected_reward`, :func:`kl`,
:func:`soft_values`, :func:`soft_optimal_policy`, :func:`kl_objective`, :func:`tilted_sequence_probs`,
:func:`sample`, :func:`prefix_index`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, positive

MAX_RESPONSES = 2**16
_TOL = 1e-9  # how far a probability row may be from summing to one


def _rows_ok(p: np.ndarray) -> bool:
    return bool(np.isfinite(p).all() and (p >= 0).all() and np.allclose(p.sum(-1), 1.0, atol=_TOL))


@dataclass(frozen=True)
class TokenTree:
    """pi0: tuple of d arrays (K**t, K), the base policy; r: (K**d,) terminal rewards."""

    pi0: tuple
    r: np.ndarray

    def __post_init__(self) -> None:
        r = np.array(self.r, dtype=np.float64)
        if r.ndim != 1 or r.size < 2 or not np.isfinite(r).all():
            raise fail("r", f"shape {r.shape}", "finite terminal rewards of shape (K**d,)")
        pi0 = tuple(np.array(p, dtype=np.float64) for p in self.pi0)
        d = len(pi0)
        if d == 0:
            raise fail("pi0", "an empty tuple", "d ≥ 1 arrays, pi0[t] of shape (K**t, K)")
        K = pi0[0].shape[-1]
        if K < 2 or r.size != K**d or r.size > MAX_RESPONSES:
            raise fail("r", f"{r.size} rewards", f"K**d = {K}**{d} ≤ {MAX_RESPONSES} rewards with K ≥ 2")
        object.__setattr__(self, "pi0", check_policy(pi0, K, d, "pi0"))
        object.__setattr__(self, "r", r)

    @property
    def K(self) -> int:
        return self.pi0[0].shape[1]

    @property
    def d(self) -> int:
        return len(self.pi0)


def check_policy(pi, K: int, d: int, name: str = "policy") -> tuple:
    """Validated float64 copy of a policy: d arrays pi[t] (K**t, K) whose rows lie on the simplex."""
    if not isinstance(pi, (tuple, list)) or len(pi) != d:
        raise fail(name, f"{type(pi).__name__} of length {len(pi) if hasattr(pi, '__len__') else '?'}",
                   f"a tuple of d = {d} arrays")
    out = []
    for t, p in enumerate(pi):
        p = np.array(p, dtype=np.float64)
        if p.shape != (K**t, K):
            raise fail(f"{name}[{t}]", f"shape {p.shape}", f"({K**t}, {K}): one row per prefix of length {t}")
        if not _rows_ok(p):
            raise fail(f"{name}[{t}]", "a row off the simplex (negative, non-finite or not summing to 1)",
                       "probability rows")
        out.append(p)
    return tuple(out)


def random_tree(rng: np.random.Generator, K: int = 3, d: int = 3, concentration: float = 1.0,
                reward: str = "normal") -> TokenTree:
    """A random tree: rows of π₀ ~ Dirichlet(concentration), rewards N(0, 1) or Bernoulli(½) ('binary')."""
    pi0 = tuple(rng.dirichlet(np.full(K, concentration), size=K**t) for t in range(d))
    if reward == "normal":
        r = rng.normal(size=K**d)
    elif reward == "binary":
        r = rng.integers(0, 2, size=K**d).astype(np.float64)
    else:
        raise fail("reward", repr(reward), "'normal' or 'binary'")
    return TokenTree(pi0=pi0, r=r)


def prefix_index(tokens: np.ndarray, K: int) -> np.ndarray:
    """Row index of each prefix: tokens (..., t) int -> (...,) base-K number (0 for the empty prefix)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    idx = np.zeros(tokens.shape[:-1], dtype=np.int64)
    for j in range(tokens.shape[-1]):
        idx = idx * K + tokens[..., j]
    return idx


def sequence_probs(tree: TokenTree, policy=None) -> np.ndarray:
    """π(y) for every full response, (K**d,): the product of the per-step probabilities."""
    pi = tree.pi0 if policy is None else check_policy(policy, tree.K, tree.d)
    p = np.ones(1)
    for t in range(tree.d):
        p = (p[:, None] * pi[t]).reshape(-1)                 # (K**(t+1),)
    return p


def state_probs(tree: TokenTree, policy=None) -> tuple:
    """d^π_t(s): probability that the first t tokens are the prefix s; tuple of d arrays (K**t,)."""
    pi = tree.pi0 if policy is None else check_policy(policy, tree.K, tree.d)
    out, p = [], np.ones(1)
    for t in range(tree.d):
        out.append(p)
        p = (p[:, None] * pi[t]).reshape(-1)
    return tuple(out)


def values(tree: TokenTree, policy=None, r: np.ndarray | None = None) -> tuple:
    """V^π at every depth: tuple of d+1 arrays, V[t] (K**t,), V[d] = r (backward recursion)."""
    pi = tree.pi0 if policy is None else check_policy(policy, tree.K, tree.d)
    V = [None] * (tree.d + 1)
    V[tree.d] = tree.r if r is None else np.asarray(r, dtype=np.float64)
    for t in range(tree.d - 1, -1, -1):
        V[t] = (pi[t] * V[t + 1].reshape(tree.K**t, tree.K)).sum(axis=1)
    return tuple(V)


def q_values(tree: TokenTree, policy=None) -> tuple:
    """Q^π(s, a) = V^π(s⊕a): tuple of d arrays (K**t, K)."""
    V = values(tree, policy)
    return tuple(V[t + 1].reshape(tree.K**t, tree.K) for t in range(tree.d))


def expected_reward(tree: TokenTree, policy=None) -> float:
    """J(π) = Σ_y π(y) r(y)."""
    return float(sequence_probs(tree, policy) @ tree.r)


def kl(tree: TokenTree, policy, base=None) -> float:
    """Sequence-level KL(π ‖ π₀) = Σ_y π(y) log π(y)/π₀(y) (∞ if π puts mass where π₀ has none)."""
    p = sequence_probs(tree, policy)
    q = sequence_probs(tree, base)
    on = p > 0
    if (q[on] == 0).any():
        return float("inf")
    return float((p[on] * (np.log(p[on]) - np.log(q[on]))).sum())


def kl_objective(tree: TokenTree, policy, beta: float) -> float:
    """F_β(π) = J(π) − KL(π ‖ π₀)/β."""
    beta = positive(beta, "beta")
    return expected_reward(tree, policy) - kl(tree, policy) / beta


def soft_values(tree: TokenTree, beta: float) -> tuple:
    """V*_β at every depth (soft value iteration, exact): tuple of d+1 arrays, V*[d] = r."""
    beta = positive(beta, "beta")
    V = [None] * (tree.d + 1)
    V[tree.d] = tree.r
    for t in range(tree.d - 1, -1, -1):
        z = beta * V[t + 1].reshape(tree.K**t, tree.K)
        m = z.max(axis=1, keepdims=True)
        V[t] = (m[:, 0] + np.log((tree.pi0[t] * np.exp(z - m)).sum(axis=1))) / beta
    return tuple(V)


def soft_optimal_policy(tree: TokenTree, beta: float) -> tuple:
    """π*_β(a|s) ∝ π₀(a|s) exp(β V*_β(s⊕a)): the maximiser of F_β."""
    V = soft_values(tree, beta)
    out = []
    for t in range(tree.d):
        z = beta * V[t + 1].reshape(tree.K**t, tree.K)
        w = tree.pi0[t] * np.exp(z - z.max(axis=1, keepdims=True))
        out.append(w / w.sum(axis=1, keepdims=True))
    return tuple(out)


def tilted_sequence_probs(tree: TokenTree, beta: float) -> np.ndarray:
    """π₀(y) e^{β r(y)} / Σ_y' π₀(y') e^{β r(y')}, (K**d,): the sequence-level form of π*_β."""
    z = beta * tree.r
    w = sequence_probs(tree) * np.exp(z - z.max())
    return w / w.sum()


def sample(tree: TokenTree, policy, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n responses drawn from π: tokens (n, d) int64 and their rewards (n,)."""
    pi = check_policy(policy, tree.K, tree.d)
    n = int(n)
    tokens = np.zeros((n, tree.d), dtype=np.int64)
    idx = np.zeros(n, dtype=np.int64)
    for t in range(tree.d):
        cdf = np.cumsum(pi[t][idx], axis=1)                  # (n, K)
        u = rng.random(n)[:, None]
        a = np.minimum((u >= cdf).sum(axis=1), tree.K - 1)
        tokens[:, t] = a
        idx = idx * tree.K + a
    return tokens, tree.r[idx]

"""Small finite MDPs with exact solvers: the reference problem for tabular DP and policy-optimisation theory.

A problem is a :class:`TabularMDP`: transition probabilities P (S, A, S), expected rewards R (S, A),
a discount γ ∈ [0, 1] and an initial-state distribution d0 (S,). A stationary policy π is an (S, A)
array whose rows lie on the simplex; a finite-horizon policy is (H, S, A), row t used at step t.

Discounted, infinite horizon (γ < 1)::

    P_π(s, s') = Σ_a π(a|s) P(s, a, s'),   r_π(s) = Σ_a π(a|s) R(s, a)
    V_π = (I − γ P_π)⁻¹ r_π                                   policy evaluation: one linear solve
    Q = R + γ P V                                             (S, A)
    (T V)(s) = max_a Q(s, a)                                  Bellman optimality operator, a γ-contraction
    value iteration  V_{k+1} = T V_k,  stopped when ‖V_{k+1} − V_k‖∞ ≤ tol·(1 − γ)/(2γ)
                     (then ‖V_{k+1} − V*‖∞ ≤ tol/2: Puterman 1994, Thm 6.3.1)
    policy iteration π_{k+1} = greedy(Q_{π_k}), exact evaluation; stops when the greedy policy repeats
    brute force     V*(s) = max over the A^S deterministic stationary policies of V_π(s)

Finite horizon H (any γ ∈ [0, 1], γ = 1 allowed)::

    V_H = 0,   Q_t = R + γ P V_{t+1},   V_t(s) = Σ_a π_t(a|s) Q_t(s, a)   (evaluation)
    V_t(s) = max_a Q_t(s, a)                                             (backward induction)

Conventions: greedy ties go to the lowest action index; every solver returns a :class:`Solution`
(V, Q, pi, iterations). The solvers only read the fields ``P``, ``R``, ``gamma`` and ``d0``, so any
object carrying them can be passed.

Stable API (other entries import it): :class:`TabularMDP`, :class:`Solution`, :func:`random_mdp`,
:func:`policy_kernel`, :func:`q_values`, :func:`evaluate`, :func:`expected_return`, :func:`visitation`,
:func:`bellman_optimality`, :func:`greedy`, :func:`value_iteration`, :func:`policy_iteration`,
:func:`deterministic_policies`, :func:`brute_force_optimum`, :func:`evaluate_finite`,
:func:`backward_induction`; for random rewards :class:`RewardKernelMDP` and :func:`random_reward_kernel_mdp`.

Random rewards (distributional RL): a :class:`RewardKernelMDP` holds the joint law of the next state and a
reward taking finitely many values, PR[s, a, s', k] = Pr(S' = s', R = r_k | s, a) with atoms r (K,);
:meth:`RewardKernelMDP.expected` gives the :class:`TabularMDP` with P = Σ_k PR and R = Σ_{s',k} PR r_k.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, in_range

_TOL = 1e-9  # how far a probability row may be from summing to one


@dataclass(frozen=True)
class TabularMDP:
    """P (S, A, S) transition probabilities, R (S, A) expected rewards, gamma ∈ [0, 1], d0 (S,).

    Arrays are stored as float64 copies. γ = 1 is accepted for the finite-horizon solvers only.
    """

    P: np.ndarray
    R: np.ndarray
    gamma: float
    d0: np.ndarray

    def __post_init__(self) -> None:
        P, R, d0 = (np.array(x, dtype=np.float64) for x in (self.P, self.R, self.d0))
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            raise fail("P", f"shape {P.shape}", "(S, A, S) with S, A ≥ 1")
        if R.shape != P.shape[:2]:
            raise fail("R", f"shape {R.shape}", f"{P.shape[:2]} (S, A)")
        if d0.shape != (P.shape[0],):
            raise fail("d0", f"shape {d0.shape}", f"({P.shape[0]},)")
        if not np.isfinite(P).all() or (P < 0).any() or np.abs(P.sum(axis=2) - 1).max() > _TOL:
            raise fail("P", "rows that are not probability distributions", "P[s, a, :] ≥ 0 summing to 1")
        if not np.isfinite(d0).all() or (d0 < 0).any() or abs(d0.sum() - 1) > _TOL:
            raise fail("d0", "not a probability distribution", "d0 ≥ 0 summing to 1")
        if not np.isfinite(R).all():
            raise fail("R", "non-finite values", "finite rewards")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "d0", d0)
        object.__setattr__(self, "gamma", in_range(self.gamma, "gamma", 0.0, 1.0))

    @property
    def S(self) -> int:
        return int(self.P.shape[0])

    @property
    def A(self) -> int:
        return int(self.P.shape[1])


@dataclass(frozen=True)
class Solution:
    """What a solver returns. Infinite horizon: V (S,), Q (S, A), pi (S, A). Finite horizon:
    V (H+1, S) with V[H] = 0, Q (H, S, A), pi (H, S, A). ``iterations``: sweeps or improvement steps."""

    V: np.ndarray
    Q: np.ndarray
    pi: np.ndarray
    iterations: int = 0


def random_mdp(rng: np.random.Generator, S: int, A: int, gamma: float = 0.9, *, support: int | None = None,
               reward_scale: float = 1.0) -> TabularMDP:
    """A random MDP: Dirichlet(1) transition rows (on ``support`` random next states if given), rewards
    N(0, reward_scale²), d0 Dirichlet(1)."""
    if support is None:
        P = rng.dirichlet(np.ones(S), size=(S, A))
    else:
        P = np.zeros((S, A, S))
        for s, a in itertools.product(range(S), range(A)):
            idx = rng.choice(S, size=min(support, S), replace=False)
            P[s, a, idx] = rng.dirichlet(np.ones(len(idx)))
    return TabularMDP(P=P, R=reward_scale * rng.normal(size=(S, A)), gamma=gamma, d0=rng.dirichlet(np.ones(S)))


# ---------------------------------------------------------------------------- policies


def _policy(mdp, pi, H: int | None = None) -> np.ndarray:
    """π as float64 (S, A), or (H, S, A) when H is given (a stationary (S, A) policy is broadcast)."""
    p = np.asarray(pi, dtype=np.float64)
    S, A = np.shape(mdp.R)
    ok_shapes = [(S, A)] + ([(H, S, A)] if H is not None else [])
    if p.shape not in ok_shapes:
        raise fail("pi", f"shape {p.shape}", " or ".join(str(s) for s in ok_shapes))
    if not np.isfinite(p).all() or (p < -_TOL).any() or np.abs(p.sum(axis=-1) - 1).max() > _TOL:
        raise fail("pi", "rows off the probability simplex", "π(·|s) ≥ 0 summing to 1")
    if H is not None and p.ndim == 2:
        p = np.broadcast_to(p, (H, S, A))
    return p


def _discounted(mdp) -> None:
    if not float(mdp.gamma) < 1.0:
        raise fail("gamma", repr(mdp.gamma), "γ < 1 for the infinite-horizon solvers (use the finite-horizon ones)")


def policy_kernel(mdp, pi) -> tuple[np.ndarray, np.ndarray]:
    """(P_π (S, S), r_π (S,)) of a stationary policy π (S, A)."""
    p = _policy(mdp, pi)
    return np.einsum("sa,sat->st", p, mdp.P), (p * mdp.R).sum(axis=1)


def q_values(mdp, V) -> np.ndarray:
    """Q = R + γ P V, shape (S, A), for any V (S,)."""
    return mdp.R + mdp.gamma * (mdp.P @ np.asarray(V, dtype=np.float64))


def greedy(Q) -> np.ndarray:
    """The deterministic policy (one-hot rows) that is greedy in Q (..., S, A); ties to the lowest index."""
    Q = np.asarray(Q, dtype=np.float64)
    return np.eye(Q.shape[-1])[Q.argmax(axis=-1)]


# ---------------------------------------------------------------------------- infinite horizon (γ < 1)


def evaluate(mdp, pi) -> tuple[np.ndarray, np.ndarray]:
    """(V_π (S,), Q_π (S, A)) by one linear solve (I − γ P_π) V = r_π."""
    _discounted(mdp)
    P_pi, r_pi = policy_kernel(mdp, pi)
    V = np.linalg.solve(np.eye(P_pi.shape[0]) - mdp.gamma * P_pi, r_pi)
    return V, q_values(mdp, V)


def expected_return(mdp, pi) -> float:
    """J(π) = d0 · V_π."""
    return float(mdp.d0 @ evaluate(mdp, pi)[0])


def visitation(mdp, pi) -> np.ndarray:
    """d_π = (1 − γ) d0ᵀ (I − γ P_π)⁻¹ (S,), the normalised discounted state-visitation distribution.

    With it the performance-difference lemma (Kakade & Langford, ICML 2002, Lemma 6.1) is exact here:
    J(π') − J(π) = (1/(1 − γ)) Σ_s d_π'(s) Σ_a π'(a|s) A_π(s, a), and d_π'(s) ≥ (1 − γ) d0(s)."""
    _discounted(mdp)
    P_pi, _ = policy_kernel(mdp, pi)
    return (1.0 - mdp.gamma) * np.linalg.solve((np.eye(P_pi.shape[0]) - mdp.gamma * P_pi).T, mdp.d0)


def bellman_optimality(mdp, V) -> np.ndarray:
    """(T V)(s) = max_a [R(s, a) + γ Σ_s' P(s, a, s') V(s')], shape (S,)."""
    return q_values(mdp, V).max(axis=1)


def value_iteration(mdp, tol: float = 1e-10, max_iter: int = 100_000, V0=None) -> Solution:
    """Iterate V ← T V from V0 (default 0) until ‖V_{k+1} − V_k‖∞ ≤ tol(1−γ)/(2γ), so ‖V − V*‖∞ ≤ tol/2.

    Returns V, Q = R + γPV, the greedy policy and the number of sweeps; raises if ``max_iter`` is hit.
    """
    _discounted(mdp)
    gamma = float(mdp.gamma)
    V = np.zeros(np.shape(mdp.R)[0]) if V0 is None else np.array(V0, dtype=np.float64)
    stop = tol * (1 - gamma) / (2 * gamma) if gamma > 0 else np.inf
    for k in range(1, max_iter + 1):
        V_new = bellman_optimality(mdp, V)
        done = np.abs(V_new - V).max() <= stop
        V = V_new
        if done:
            Q = q_values(mdp, V)
            return Solution(V=V, Q=Q, pi=greedy(Q), iterations=k)
    raise fail("max_iter", repr(max_iter), "enough sweeps for value iteration to reach tol")


def policy_iteration(mdp, pi0=None, max_iter: int = 10_000) -> Solution:
    """Howard's policy iteration: exact evaluation, greedy improvement, stop when the policy repeats.

    Starts from ``pi0`` (default: action 0 everywhere). The improvement keeps the current action
    where it is within 1e-12 of the best (so ties cannot make it cycle). Returns the last policy's V, Q.
    """
    _discounted(mdp)
    S, A = np.shape(mdp.R)
    pi = greedy(np.zeros((S, A))) if pi0 is None else _policy(mdp, pi0)
    for k in range(1, max_iter + 1):
        V, Q = evaluate(mdp, pi)
        current = (pi * Q).sum(axis=1)                            # Q(s, π(s)) for deterministic π
        new = greedy(Q)
        keep = Q.max(axis=1) <= current + 1e-12 * (1 + np.abs(current))
        new[keep] = pi[keep]
        if np.array_equal(new, pi):
            return Solution(V=V, Q=Q, pi=pi, iterations=k)
        pi = new
    raise fail("max_iter", repr(max_iter), "enough improvement steps for policy iteration to stop")


def deterministic_policies(S: int, A: int) -> Iterator[np.ndarray]:
    """Every deterministic stationary policy as a one-hot (S, A) array, A^S of them."""
    eye = np.eye(A)
    for actions in itertools.product(range(A), repeat=S):
        yield eye[list(actions)]


def brute_force_optimum(mdp, max_policies: int = 100_000) -> Solution:
    """V*(s) = max_π V_π(s) over all A^S deterministic stationary policies (tiny problems only).

    A deterministic stationary optimal policy exists for γ < 1 and maximises every V(s) at once, so
    the returned policy is the one with the largest Σ_s V_π(s); V is the elementwise maximum.
    """
    _discounted(mdp)
    S, A = np.shape(mdp.R)
    if A ** S > max_policies:
        raise fail("mdp", f"A^S = {A}^{S} policies", f"at most max_policies = {max_policies}")
    best_pi, best_sum = None, -np.inf
    V_max = np.full(S, -np.inf)
    for pi in deterministic_policies(S, A):
        V, _ = evaluate(mdp, pi)
        V_max = np.maximum(V_max, V)
        if V.sum() > best_sum:
            best_pi, best_sum = pi, V.sum()
    return Solution(V=V_max, Q=q_values(mdp, V_max), pi=best_pi, iterations=A ** S)


# ---------------------------------------------------------------------------- finite horizon (γ ∈ [0, 1])


def evaluate_finite(mdp, pi, H: int) -> tuple[np.ndarray, np.ndarray]:
    """(V (H+1, S) with V[H] = 0, Q (H, S, A)) of π ((S, A) stationary or (H, S, A)) over H steps."""
    H = _horizon(H)
    p = _policy(mdp, pi, H)
    S, A = np.shape(mdp.R)
    V, Q = np.zeros((H + 1, S)), np.zeros((H, S, A))
    for t in range(H - 1, -1, -1):
        Q[t] = q_values(mdp, V[t + 1])
        V[t] = (p[t] * Q[t]).sum(axis=1)
    return V, Q


def backward_induction(mdp, H: int) -> Solution:
    """Optimal finite-horizon values V_t = max_a (R + γ P V_{t+1}), V_H = 0, and the greedy π_t."""
    H = _horizon(H)
    S, A = np.shape(mdp.R)
    V, Q = np.zeros((H + 1, S)), np.zeros((H, S, A))
    for t in range(H - 1, -1, -1):
        Q[t] = q_values(mdp, V[t + 1])
        V[t] = Q[t].max(axis=1)
    return Solution(V=V, Q=Q, pi=greedy(Q), iterations=H)


def _horizon(H) -> int:
    if isinstance(H, bool) or not isinstance(H, (int, np.integer)) or H < 1:
        raise fail("H", repr(H), "an integer horizon ≥ 1")
    return int(H)


# ---------------------------------------------------------------------------- random rewards


@dataclass(frozen=True)
class RewardKernelMDP:
    """PR (S, A, S, K): joint law of (next state, reward atom index); r_atoms (K,); gamma ∈ [0, 1]; d0 (S,)."""

    PR: np.ndarray
    r_atoms: np.ndarray
    gamma: float
    d0: np.ndarray

    def __post_init__(self) -> None:
        PR, r, d0 = (np.array(x, dtype=np.float64) for x in (self.PR, self.r_atoms, self.d0))
        if PR.ndim != 4 or PR.shape[0] != PR.shape[2] or 0 in PR.shape:
            raise fail("PR", f"shape {PR.shape}", "(S, A, S, K) with S, A, K ≥ 1")
        if r.shape != (PR.shape[3],) or not np.isfinite(r).all():
            raise fail("r_atoms", f"shape {r.shape} (or non-finite values)", f"({PR.shape[3]},) finite rewards")
        if not np.isfinite(PR).all() or (PR < 0).any() or np.abs(PR.sum(axis=(2, 3)) - 1).max() > _TOL:
            raise fail("PR", "rows that are not probability distributions", "PR[s, a] ≥ 0 summing to 1")
        if d0.shape != (PR.shape[0],) or not np.isfinite(d0).all() or (d0 < 0).any() or abs(d0.sum() - 1) > _TOL:
            raise fail("d0", f"shape {d0.shape} or not a distribution", f"({PR.shape[0]},) summing to 1")
        object.__setattr__(self, "PR", PR)
        object.__setattr__(self, "r_atoms", r)
        object.__setattr__(self, "d0", d0)
        object.__setattr__(self, "gamma", in_range(self.gamma, "gamma", 0.0, 1.0))

    @property
    def S(self) -> int:
        return int(self.PR.shape[0])

    @property
    def A(self) -> int:
        return int(self.PR.shape[1])

    def expected(self) -> TabularMDP:
        """The expected-reward MDP: P = Σ_k PR, R = Σ_{s', k} PR r_k."""
        return TabularMDP(P=self.PR.sum(axis=3), R=np.einsum("satk,k->sa", self.PR, self.r_atoms),
                          gamma=self.gamma, d0=self.d0)


def random_reward_kernel_mdp(rng: np.random.Generator, S: int, A: int, r_atoms, gamma: float = 1.0, *,
                             support: int = 2) -> RewardKernelMDP:
    """A random RewardKernelMDP: each (s, a) puts Dirichlet(1) mass on ``support`` random (s', k) pairs."""
    r = np.asarray(r_atoms, dtype=np.float64)
    K = len(r)
    PR = np.zeros((S, A, S, K))
    for s, a in itertools.product(range(S), range(A)):
        idx = rng.choice(S * K, size=min(support, S * K), replace=False)
        PR[s, a].flat[idx] = rng.dirichlet(np.ones(len(idx)))
    return RewardKernelMDP(PR=PR, r_atoms=r, gamma=gamma, d0=rng.dirichlet(np.ones(S)))

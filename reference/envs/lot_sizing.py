"""Stochastic discrete lot-sizing with one machine, split into a post-decision step and a demand step.

The problem is PDPPO's lot-sizing benchmark (arXiv 2504.05150; official code leokan92/pdppo,
``code/Lot-sizing/envs/simplePlant.py``: ``_post_decision``, ``_satisfy_demand``, ``_take_action``), cut
down to one machine and a few items so that every value function can be computed exactly.

State, action, and the two steps of one period::

    state      s = (I_1 … I_n, σ)      I_i ∈ 0..I_max on-hand stock of item i; σ ∈ 0..n the machine setup
                                        (0 = idle)
    action     a ∈ 0..n                 0 = stay idle, i = produce item i this period
    post-decision step (deterministic, known):  x = f(s, a), reward c(s, a)
               a = 0:  σ ← 0, nothing produced, c = 0
               a = i:  if σ ≠ i (a changeover, also after idling): c = −K_i and ℓ = loss_i, else ℓ = 0;
                       I_i ← I_i + (p_i − ℓ);  σ ← i
    demand step (stochastic):  s' = g(x, W), reward ρ(x, W), demands W = (W_1 … W_n) i.i.d. ~ pmf
               short_i = (W_i − I_i)⁺,   I_i ← min((I_i − W_i)⁺, I_max)
               ρ = −Σ_i (u_i · short_i + h_i · I_i)       (lost-sales and holding costs, holding on the
                                                         stock left after demand and after the cap)
    one period:  r = c(s, a) + ρ(x, W)  (the code's reward = −(setup + lost sales + holding))

The post-decision stock may exceed I_max (the cap is applied after demand, as in the code); post-decision
states are x = (I_1 … I_n, σ) with I_i ∈ 0..I_max + max_i p_i.

Values (discount γ per period, applied from one pre-decision state to the next)::

    V^π(s)    = Σ_a π(a|s) [c(s, a) + V^{x,π}(f(s, a))]             pre-decision value
    V^{x,π}(x) = E_W [ρ(x, W) + γ V^π(g(x, W))]                      post-decision value
    Q^π(s, a) = c(s, a) + V^{x,π}(f(s, a))
    V*(s) = max_a [c(s, a) + V^{x*}(f(s, a))],   V^{x*}(x) = E_W [ρ(x, W) + γ V*(g(x, W))]

(Powell, "Approximate Dynamic Programming", 2nd ed., ch. 4.6: the post-decision Bellman equations; with
ρ ≡ 0 the second line is V^x(x) = γ E V(g(x, W)).) Because Q^π(s, a) depends on (s, a) only through
c(s, a) and x = f(s, a), the post-decision value needs |X_reachable| numbers where Q needs |S|·|A|.

What is exact here: :func:`tabular` builds the full MDP (P, R) with :func:`step`, a one-period simulator
written directly (not through f and g); :func:`decomposition` builds the tables of f, c, g, ρ. The solvers
over post-decision states (:func:`post_value_iteration`, :func:`evaluate_post`) use only the decomposition,
so comparing them with :mod:`rlspec.reference.envs.tabular_mdp` on :func:`tabular` checks the identities
above (``properties/test_envs_lot_sizing.py``).

Simplifications against the code: one machine (the code has several, each with its own action); the
same demand pmf for every item; the code's initial state (uniform stock 0..I_max − 1, a random producing
setup) is :func:`initial_distribution`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, in_range
from rlspec.reference.envs import tabular_mdp


def _ints(values, name: str, lo: int = 0) -> tuple[int, ...]:
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo for v in out):
        raise fail(name, repr(values), f"a non-empty tuple of integers ≥ {lo}")
    return tuple(int(v) for v in out)


def _costs(values, name: str, n: int) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) != n or not all(np.isfinite(v) and v >= 0 for v in out):
        raise fail(name, repr(values), f"{n} finite costs ≥ 0 (one per item)")
    return out


@dataclass(frozen=True)
class LotSizing:
    """One machine, n = len(production) items.

    production[i] p_i: units made in a period spent on item i (code: ``machine_production``);
    setup_cost[i] K_i and setup_loss[i] ℓ_i: paid / lost on a changeover to item i (ℓ_i ≤ p_i);
    holding[i] h_i, lost_sales[i] u_i: per unit and period; max_inventory I_max (the cap after demand);
    demand_pmf: P(W_i = k) for k = 0, 1, …, the same for every item, independent across items and periods;
    gamma: discount per period.

    Defaults: two items, p = 3, K = 2, ℓ = 1, h = 0.1, u = 2, I_max = 4, W ∈ {0, 1, 2} w.p. (0.3, 0.4, 0.3),
    γ = 0.9 (a toy of ours: demand 2 per period on average against a capacity of 3, or 2 after a
    changeover, so the machine must alternate and setups matter).
    """

    production: tuple[int, ...] = (3, 3)
    setup_cost: tuple[float, ...] = (2.0, 2.0)
    setup_loss: tuple[int, ...] = (1, 1)
    holding: tuple[float, ...] = (0.1, 0.1)
    lost_sales: tuple[float, ...] = (2.0, 2.0)
    max_inventory: int = 4
    demand_pmf: tuple[float, ...] = (0.3, 0.4, 0.3)
    gamma: float = 0.9

    def __post_init__(self) -> None:
        p = _ints(self.production, "production", lo=1)
        n = len(p)
        loss = _ints(self.setup_loss, "setup_loss")
        if len(loss) != n or any(lv > pv for lv, pv in zip(loss, p)):
            raise fail("setup_loss", repr(self.setup_loss), f"{n} integers with setup_loss[i] ≤ production[i]")
        object.__setattr__(self, "production", p)
        object.__setattr__(self, "setup_loss", loss)
        object.__setattr__(self, "setup_cost", _costs(self.setup_cost, "setup_cost", n))
        object.__setattr__(self, "holding", _costs(self.holding, "holding", n))
        object.__setattr__(self, "lost_sales", _costs(self.lost_sales, "lost_sales", n))
        if isinstance(self.max_inventory, bool) or not isinstance(self.max_inventory, (int, np.integer)) \
                or self.max_inventory < 1:
            raise fail("max_inventory", repr(self.max_inventory), "an integer ≥ 1")
        pmf = np.asarray(self.demand_pmf, dtype=np.float64)
        if pmf.ndim != 1 or pmf.size == 0 or not np.isfinite(pmf).all() or (pmf < 0).any() \
                or abs(pmf.sum() - 1.0) > 1e-12:
            raise fail("demand_pmf", repr(self.demand_pmf), "probabilities of W = 0, 1, … summing to 1")
        object.__setattr__(self, "demand_pmf", tuple(float(v) for v in pmf))
        object.__setattr__(self, "gamma", in_range(self.gamma, "gamma", 0.0, 1.0, hi_open=True))

    @property
    def n_items(self) -> int:
        return len(self.production)

    @property
    def n_actions(self) -> int:
        return self.n_items + 1

    @property
    def state_dims(self) -> tuple[int, ...]:
        """Shape of the pre-decision state grid: (I_max + 1,)·n + (n + 1,)."""
        return (self.max_inventory + 1,) * self.n_items + (self.n_items + 1,)

    @property
    def post_dims(self) -> tuple[int, ...]:
        """Shape of the post-decision grid: (I_max + max p + 1,)·n + (n + 1,)."""
        return (self.max_inventory + max(self.production) + 1,) * self.n_items + (self.n_items + 1,)

    @property
    def S(self) -> int:
        return int(np.prod(self.state_dims))

    @property
    def X(self) -> int:
        return int(np.prod(self.post_dims))


# ---------------------------------------------------------------------------- indexing


def state_index(env: LotSizing, s) -> int:
    """Index of the pre-decision state s = (I_1 … I_n, σ)."""
    return int(np.ravel_multi_index(tuple(int(v) for v in s), env.state_dims))


def post_index(env: LotSizing, x) -> int:
    """Index of the post-decision state x = (I_1 … I_n, σ)."""
    return int(np.ravel_multi_index(tuple(int(v) for v in x), env.post_dims))


def states(env: LotSizing) -> np.ndarray:
    """Every pre-decision state as a row (I_1 … I_n, σ), in index order, shape (S, n + 1)."""
    return np.array(list(itertools.product(*[range(d) for d in env.state_dims])), dtype=np.int64)


def post_states(env: LotSizing) -> np.ndarray:
    """Every post-decision state as a row, in index order, shape (X, n + 1)."""
    return np.array(list(itertools.product(*[range(d) for d in env.post_dims])), dtype=np.int64)


def demand_outcomes(env: LotSizing) -> tuple[np.ndarray, np.ndarray]:
    """All demand vectors W with positive probability, shape (K, n), and their probabilities (K,)."""
    support = [k for k, q in enumerate(env.demand_pmf) if q > 0]
    W = np.array(list(itertools.product(support, repeat=env.n_items)), dtype=np.int64).reshape(-1, env.n_items)
    prob = np.prod(np.asarray(env.demand_pmf)[W], axis=1)
    return W, prob


# ---------------------------------------------------------------------------- the two steps


def post_decision(env: LotSizing, s, a: int) -> tuple[tuple[int, ...], float]:
    """x = f(s, a) and the deterministic reward c(s, a) = −(setup cost). Code: ``_post_decision``."""
    inv, setup = [int(v) for v in s[:-1]], int(s[-1])
    if not 0 <= a <= env.n_items:
        raise fail("a", repr(a), f"an action in 0..{env.n_items}")
    if a == 0:
        return tuple(inv) + (0,), 0.0
    i = a - 1
    changeover = setup != a
    inv[i] += env.production[i] - (env.setup_loss[i] if changeover else 0)
    return tuple(inv) + (a,), -(env.setup_cost[i] if changeover else 0.0)


def demand_step(env: LotSizing, x, w) -> tuple[tuple[int, ...], float]:
    """s' = g(x, W) and the stochastic reward ρ(x, W) = −(lost-sales + holding). Code: ``_satisfy_demand``."""
    inv, setup = [int(v) for v in x[:-1]], int(x[-1])
    cost = 0.0
    for i in range(env.n_items):
        left = inv[i] - int(w[i])
        if left < 0:
            cost += env.lost_sales[i] * (-left)
            left = 0
        inv[i] = min(left, env.max_inventory)
        cost += env.holding[i] * inv[i]
    return tuple(inv) + (setup,), -cost


def step(env: LotSizing, s, a: int, w) -> tuple[tuple[int, ...], float]:
    """One whole period written directly (no f, g): next state and reward r = −(setup + lost + holding)."""
    inv, setup = np.array(s[:-1], dtype=np.int64), int(s[-1])
    produced = np.zeros(env.n_items, dtype=np.int64)
    setup_paid = 0.0
    if a != 0:
        i = a - 1
        produced[i] = env.production[i]
        if setup != a:
            produced[i] -= env.setup_loss[i]
            setup_paid = env.setup_cost[i]
    avail = inv + produced - np.asarray(w, dtype=np.int64)                   # (n,)
    short = np.maximum(-avail, 0)
    stock = np.minimum(np.maximum(avail, 0), env.max_inventory)
    cost = setup_paid + float(np.dot(env.lost_sales, short)) + float(np.dot(env.holding, stock))
    return tuple(int(v) for v in stock) + (int(a),), -cost


# ---------------------------------------------------------------------------- exact tables


@dataclass(frozen=True)
class PostDecision:
    """Tables of the split dynamics. F (S, A) int: index of x = f(s, a); c (S, A): reward c(s, a);
    G (X, S): P(g(x, W) = s'); rho (X,): E_W ρ(x, W); next_state (X, K) int and rho_w (X, K): g and ρ per
    demand outcome k, with probabilities prob (K,)."""

    F: np.ndarray
    c: np.ndarray
    G: np.ndarray
    rho: np.ndarray
    next_state: np.ndarray
    rho_w: np.ndarray
    prob: np.ndarray


def decomposition(env: LotSizing) -> PostDecision:
    """The tables of f, c, g and ρ, built from :func:`post_decision` and :func:`demand_step`."""
    S_rows, X_rows = states(env), post_states(env)
    W, prob = demand_outcomes(env)
    F = np.zeros((env.S, env.n_actions), dtype=np.int64)
    c = np.zeros((env.S, env.n_actions))
    for si, s in enumerate(S_rows):
        for a in range(env.n_actions):
            x, c[si, a] = post_decision(env, s, a)
            F[si, a] = post_index(env, x)
    nxt = np.zeros((env.X, len(prob)), dtype=np.int64)
    rho_w = np.zeros((env.X, len(prob)))
    for xi, x in enumerate(X_rows):
        for k, w in enumerate(W):
            s2, rho_w[xi, k] = demand_step(env, x, w)
            nxt[xi, k] = state_index(env, s2)
    G = np.zeros((env.X, env.S))
    np.add.at(G, (np.repeat(np.arange(env.X), len(prob)), nxt.ravel()), np.tile(prob, env.X))
    return PostDecision(F=F, c=c, G=G, rho=rho_w @ prob, next_state=nxt, rho_w=rho_w, prob=prob)


def initial_distribution(env: LotSizing) -> np.ndarray:
    """d0 (S,): the code's ``_random_initial_state``: stock uniform on 0..I_max − 1 per item (numpy's
    ``randint`` excludes the top), setup uniform on the producing setups 1..n."""
    d0 = np.zeros(env.S)
    for s in itertools.product(*([range(env.max_inventory)] * env.n_items + [range(1, env.n_items + 1)])):
        d0[state_index(env, s)] = 1.0
    return d0 / d0.sum()


def tabular(env: LotSizing, d0=None) -> tabular_mdp.TabularMDP:
    """The full MDP over pre-decision states: P[s, a, s'] and R[s, a] = E r, from :func:`step` alone."""
    W, prob = demand_outcomes(env)
    P = np.zeros((env.S, env.n_actions, env.S))
    R = np.zeros((env.S, env.n_actions))
    for si, s in enumerate(states(env)):
        for a in range(env.n_actions):
            for w, q in zip(W, prob):
                s2, r = step(env, s, a, w)
                P[si, a, state_index(env, s2)] += q
                R[si, a] += q * r
    return tabular_mdp.TabularMDP(P=P, R=R, gamma=env.gamma, d0=initial_distribution(env) if d0 is None else d0)


# ---------------------------------------------------------------------------- solvers over post-decision states


def _policy(pi, S: int, A: int) -> np.ndarray:
    p = np.asarray(pi, dtype=np.float64)
    if p.shape != (S, A) or not np.isfinite(p).all() or (p < -1e-12).any() or np.abs(p.sum(1) - 1).max() > 1e-9:
        raise fail("pi", f"shape {p.shape} or rows off the simplex", f"a policy of shape ({S}, {A})")
    return p


def evaluate_post(env: LotSizing, pi, tables: PostDecision | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(V^π (S,), V^{x,π} (X,)) by one linear solve over post-decision states.

    Substituting V^π = Π_c + Π_F V^x into V^x = ρ + γ G V^π, with Π_F[s, x] = Σ_a π(a|s) 1[f(s,a) = x] and
    Π_c[s] = Σ_a π(a|s) c(s, a):  (I − γ G Π_F) V^x = ρ + γ G Π_c.
    """
    d = tables or decomposition(env)
    p = _policy(pi, env.S, env.n_actions)
    Pi_F = np.zeros((env.S, env.X))
    np.add.at(Pi_F, (np.repeat(np.arange(env.S), env.n_actions), d.F.ravel()), p.ravel())
    Pi_c = (p * d.c).sum(axis=1)
    Vx = np.linalg.solve(np.eye(env.X) - env.gamma * d.G @ Pi_F, d.rho + env.gamma * d.G @ Pi_c)
    return Pi_c + Pi_F @ Vx, Vx


def post_value_iteration(env: LotSizing, tol: float = 1e-11, max_iter: int = 100_000,
                         tables: PostDecision | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(V* (S,), V^{x*} (X,)) by value iteration on post-decision states:
    V^x ← ρ + γ G max_a [c + V^x(F)], stopped when the sup-norm step ≤ tol(1 − γ)/(2γ)."""
    d = tables or decomposition(env)
    Vx = np.zeros(env.X)
    stop = tol * (1 - env.gamma) / (2 * env.gamma) if env.gamma > 0 else np.inf
    for _ in range(max_iter):
        V = (d.c + Vx[d.F]).max(axis=1)
        Vx_new = d.rho + env.gamma * d.G @ V
        done = np.abs(Vx_new - Vx).max() <= stop
        Vx = Vx_new
        if done:
            return (d.c + Vx[d.F]).max(axis=1), Vx
    raise fail("max_iter", repr(max_iter), "enough sweeps for post-decision value iteration to reach tol")


# ---------------------------------------------------------------------------- simulation


def simulate(env: LotSizing, pi, n_episodes: int, horizon: int, rng: np.random.Generator,
             tables: PostDecision | None = None, d0=None) -> dict[str, np.ndarray]:
    """Episodes of ``horizon`` periods from d0 under the stochastic policy π (S, A).

    Returns int arrays ``states``, ``actions``, ``posts`` (post-decision state indices) and float
    ``rewards`` (r_t = c + ρ), each (n_episodes, horizon).
    """
    d = tables or decomposition(env)
    p = _policy(pi, env.S, env.n_actions)
    start = initial_distribution(env) if d0 is None else np.asarray(d0, dtype=np.float64)
    N, T = int(n_episodes), int(horizon)
    S_idx = np.zeros((N, T), dtype=np.int64)
    A_idx = np.zeros((N, T), dtype=np.int64)
    X_idx = np.zeros((N, T), dtype=np.int64)
    r = np.zeros((N, T))
    s = rng.choice(env.S, size=N, p=start)
    cum = np.cumsum(p, axis=1)
    for t in range(T):
        a = np.minimum((rng.random(N)[:, None] > cum[s]).sum(axis=1), env.n_actions - 1)
        x = d.F[s, a]
        k = rng.choice(len(d.prob), size=N, p=d.prob)
        S_idx[:, t], A_idx[:, t], X_idx[:, t] = s, a, x
        r[:, t] = d.c[s, a] + d.rho_w[x, k]
        s = d.next_state[x, k]
    return {"states": S_idx, "actions": A_idx, "posts": X_idx, "rewards": r}

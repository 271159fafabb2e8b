"""A tiny discrete graph diffusion over directed acyclic graphs, small enough to enumerate exactly.

The problem behind DGPO (arXiv 2602.19261; official code github.com/AlekseiLiu/DGPO, ``src/diffusion.py``,
``src/utils.py``, ``src/train_rlft.py``), which builds on DiGress (arXiv 2209.14734) and GDPO (arXiv 2402.16302).

Graphs. n nodes in a fixed topological order, node types x_i ∈ {0..Kx−1}, and one edge variable
e_ij ∈ {0..Ke−1} per unordered pair i < j (0 = no edge). The diffusion state keeps the edge matrix
symmetric, E_ij = E_ji = e_ij (DiGress is undirected); direction comes from the order alone: the
generated architecture is the upper triangle, A = triu(E, 1), i.e. edges i → j for i < j. A state is a
row of C = n + n(n−1)/2 integers (node types, then pairs (0,1), (0,2), …, (1,2), … row-major); for
n = 3, Kx = Ke = 2 there are 2³·2³ = 64 states, indexed 0..N−1 in lexicographic order.

Forward noise (DiGress "marginal" transitions, code ``MarginalUniformTransition``), independently for
every node and every pair, with m the limit distribution of that component's classes::

    Q_t  = (1 − β_t) I + β_t 1 mᵀ,        Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1 mᵀ,     ᾱ_t = Π_{τ≤t} (1 − β_τ)
    q(x_s | x_t, x_0) = Q_t[x_s, x_t] Q̄_s[x_0, x_s] / Q̄_t[x_0, x_t]         (s = t − 1; Bayes)

Reverse (generation) step t → s = t − 1, per component c, from the denoiser's clean-graph prediction
p̂_θ(x_0^c | G_t, t) (code ``sample_p_zs_given_zt``)::

    p_θ(z_s^c | G_t) = Σ_{x_0} p̂_θ(x_0^c = x_0 | G_t) q(z_s^c | z_t^c, x_0),    p_θ(G_s | G_t) = Π_c p_θ(z_s^c | G_t)

starting from G_T drawn from the limit distribution (Π_c m_c). The final state G_0 is the sample.

The denoiser here is a table (the toy for the code's GraphTransformer): θ[t−1, g, c, k] is the logit of
class k for component c given state g at step t, p̂ = softmax over the component's classes. A table
knows every node's index, which is what the code's sinusoidal positional encoding gives the network.

Exact quantities, by forward recursion over the N states (no sampling):

    P_T = Π_c m_c,   P_{t−1} = P_t K_t,   K_t[g, g'] = p_θ(G_{t−1} = g' | G_t = g)
    J(θ) = Σ_g P_0(g) r(g);   V_0 = r,  V_t = K_t V_{t−1}  (V_t(g) = E[r(G_0) | G_t = g])
    ∇J (REINFORCE over the denoising trajectory) = Σ_t Σ_{g,g'} P_t(g) K_t[g,g'] V_{t−1}(g') ∇ log K_t[g,g']
    ∂ log p_θ(z | G_t)/∂θ_k = p̂_k (q(z | z_t, k) / p_θ(z | G_t) − 1)             (per component; derived here)
    eager (GDPO/DGPO) expected gradient = Σ_t E[A(G_0) ∇ log p̂_θ(G_0 | G_t)],  ∂ log p̂(x_0)/∂θ_k = 1[x_0 = k] − p̂_k

Schedules: any ᾱ (T+1,), non-increasing, with β_t = 1 − ᾱ_t/ᾱ_{t−1} (so Q̄_t = Q̄_{t−1} Q_t exactly).
:func:`cosine_alpha_bar` gives the cosine schedule in two conventions: ``"clean0"`` (ᾱ_0 = 1: time 0 is the
clean graph, the textbook convention) and ``"code"`` (the official code's ``cosine_beta_schedule_discrete``
+ cumulative product, where ᾱ_0 = 1 − β_0 < 1, so even the last reverse step adds posterior noise; β_0 is
tiny for T = 800 but large for T ≤ 3).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail

# ---------------------------------------------------------------------------- graphs


def pairs(n: int) -> list[tuple[int, int]]:
    """The unordered pairs (i, j), i < j, in the state's order (row-major upper triangle)."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def symmetric_E(e: np.ndarray, n: int) -> np.ndarray:
    """Pair values e (..., n(n−1)/2) → the symmetric edge matrix E (..., n, n), zero diagonal (DiGress state)."""
    e = np.asarray(e)
    E = np.zeros(e.shape[:-1] + (n, n), dtype=e.dtype)
    for p, (i, j) in enumerate(pairs(n)):
        E[..., i, j] = e[..., p]
        E[..., j, i] = e[..., p]
    return E


def triu_dag(E: np.ndarray) -> np.ndarray:
    """A = triu(E, 1): the directed graph read off a (symmetric) edge matrix, edges i → j only for i < j.
    Code: ``sample_trajectories`` (``torch.triu(edge_mat, diagonal=1)``). Works on (..., n, n)."""
    E = np.asarray(E)
    n = E.shape[-1]
    return np.where(np.triu(np.ones((n, n), dtype=bool), 1), E, 0)


def is_acyclic(adj: np.ndarray) -> bool:
    """Kahn's algorithm on the directed graph with an edge i → j wherever adj[i, j] ≠ 0 (self-loops count)."""
    a = np.asarray(adj) != 0
    n = a.shape[0]
    indeg = a.sum(axis=0).astype(int)
    queue = [v for v in range(n) if indeg[v] == 0]
    seen = 0
    while queue:
        v = queue.pop()
        seen += 1
        for w in np.flatnonzero(a[v]):
            indeg[w] -= 1
            if indeg[w] == 0:
                queue.append(int(w))
    return seen == n


def directed_graphs(n: int):
    """Every directed graph on n labelled nodes without self-loops, as (n, n) 0/1 arrays (2^(n(n−1)) of them)."""
    off = [(i, j) for i in range(n) for j in range(n) if i != j]
    for bits in itertools.product((0, 1), repeat=len(off)):
        a = np.zeros((n, n), dtype=np.int64)
        for (i, j), b in zip(off, bits):
            a[i, j] = b
        yield a


# ---------------------------------------------------------------------------- the state space


@dataclass(frozen=True)
class DagSpace:
    """n nodes, Kx node types, Ke edge types, limit marginals m_x (Kx,) and m_e (Ke,) (default uniform)."""

    n: int = 3
    Kx: int = 2
    Ke: int = 2
    m_x: np.ndarray | None = None
    m_e: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name, v, lo in (("n", self.n, 2), ("Kx", self.Kx, 2), ("Ke", self.Ke, 2)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise fail(name, repr(v), f"an integer ≥ {lo}")
        if self.Kx ** self.n * self.Ke ** (self.n * (self.n - 1) // 2) > 4096:
            raise fail("n, Kx, Ke", f"{self.n}, {self.Kx}, {self.Ke}", "at most 4096 states (exact enumeration)")
        for name, m, K in (("m_x", self.m_x, self.Kx), ("m_e", self.m_e, self.Ke)):
            arr = np.full(K, 1.0 / K) if m is None else np.asarray(m, dtype=np.float64)
            if arr.shape != (K,) or not np.isfinite(arr).all() or (arr <= 0).any() or abs(arr.sum() - 1) > 1e-9:
                raise fail(name, repr(m), f"{K} positive probabilities summing to 1")
            object.__setattr__(self, name, arr)

    @property
    def P(self) -> int:
        """Number of pair (edge) components."""
        return self.n * (self.n - 1) // 2

    @property
    def C(self) -> int:
        """Number of components (nodes + pairs)."""
        return self.n + self.P

    @property
    def card(self) -> np.ndarray:
        """Classes per component (C,)."""
        return np.array([self.Kx] * self.n + [self.Ke] * self.P)

    @property
    def Kmax(self) -> int:
        return max(self.Kx, self.Ke)

    @property
    def states(self) -> np.ndarray:
        """All states (N, C), lexicographic; row index = state index."""
        return np.array(list(itertools.product(*[range(k) for k in self.card])), dtype=np.int64)

    @property
    def N(self) -> int:
        return int(np.prod(self.card))

    def marginal(self, c: int) -> np.ndarray:
        """m of component c, padded with zeros to Kmax."""
        m = self.m_x if c < self.n else self.m_e
        return np.pad(m, (0, self.Kmax - m.shape[0]))

    def valid(self) -> np.ndarray:
        """(C, Kmax) bool: which class slots exist for each component."""
        return np.arange(self.Kmax)[None, :] < self.card[:, None]

    def index(self, S: np.ndarray) -> np.ndarray:
        """State rows (..., C) → state indices (...)."""
        S = np.asarray(S, dtype=np.int64)
        mult = np.array([int(np.prod(self.card[c + 1:])) for c in range(self.C)], dtype=np.int64)
        return (S * mult).sum(axis=-1)

    def adjacency(self, S: np.ndarray) -> np.ndarray:
        """Directed adjacency triu(E, 1) (..., n, n) of states (..., C)."""
        return triu_dag(symmetric_E(np.asarray(S)[..., self.n:], self.n))

    def limit(self) -> np.ndarray:
        """P_T: the limit distribution Π_c m_c over the N states (N,)."""
        S = self.states
        p = np.ones(S.shape[0])
        for c in range(self.C):
            p = p * self.marginal(c)[S[:, c]]
        return p

    def permute(self, S: np.ndarray, perm) -> np.ndarray:
        """Relabel nodes: node i becomes node perm[i]; types and the symmetric edge matrix move with it."""
        S = np.asarray(S)
        perm = np.asarray(perm)
        out = np.empty_like(S)
        out[..., perm] = S[..., :self.n]
        E = symmetric_E(S[..., self.n:], self.n)
        E2 = np.empty_like(E)
        E2[..., perm[:, None], perm[None, :]] = E
        for p, (i, j) in enumerate(pairs(self.n)):
            out[..., self.n + p] = E2[..., i, j]
        return out


# ---------------------------------------------------------------------------- schedule and transitions


def cosine_alpha_bar(T: int, s: float = 0.008, convention: str = "clean0") -> np.ndarray:
    """ᾱ_t, t = 0..T (T+1,), of the cosine schedule.

    ``"clean0"``: ᾱ_t = f(t)/f(0), f(t) = cos²(π/2 · (t/T + s)/(1 + s)), so ᾱ_0 = 1.
    ``"code"``: the official ``cosine_beta_schedule_discrete(T)`` (a grid of T+2 points spaced (T+2)/(T+1),
    β = 1 − ratios) then ᾱ = cumprod(1 − clamp(β, 0, 0.9999)), so ᾱ_0 = 1 − β_0 < 1.
    """
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise fail("T", repr(T), "an integer ≥ 1")
    choice(convention, "convention", ("clean0", "code"))
    if convention == "clean0":
        f = np.cos(0.5 * np.pi * (np.arange(T + 1) / T + s) / (1 + s)) ** 2
        return np.clip(f / f[0], 0.0, 1.0)
    steps = T + 2
    x = np.linspace(0, steps, steps)
    ac = np.cos(0.5 * np.pi * ((x / steps) + s) / (1 + s)) ** 2
    ac = ac / ac[0]
    betas = 1 - ac[1:] / ac[:-1]
    return np.cumprod(1 - np.clip(betas, 0, 0.9999))


def check_alpha_bar(alpha_bar, T: int | None = None) -> np.ndarray:
    """Validated ᾱ (T+1,): finite, in [0, 1], non-increasing, ᾱ_{t−1} > 0 for every step used."""
    a = np.asarray(alpha_bar, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < 2 or (T is not None and a.shape[0] != T + 1):
        raise fail("alpha_bar", f"shape {a.shape}", "(T+1,) with T ≥ 1" if T is None else f"({T + 1},)")
    if not np.isfinite(a).all() or (a < 0).any() or (a > 1).any() or (np.diff(a) > 1e-15).any() or (a[:-1] <= 0).any():
        raise fail("alpha_bar", repr(a), "values in [0, 1], non-increasing, positive before the last")
    return a


def Qbar(abar: float, m: np.ndarray) -> np.ndarray:
    """Q̄ = ᾱ I + (1 − ᾱ) 1 mᵀ, rows = x_0, columns = x_t (K, K); also Q_t with ᾱ → 1 − β_t."""
    return abar * np.eye(m.shape[0]) + (1 - abar) * np.ones((m.shape[0], 1)) * m[None, :]


def posterior(x_t: int, abar_s: float, abar_t: float, m: np.ndarray) -> np.ndarray:
    """q(x_s | x_t, x_0) as a (K_0, K_s) matrix (row x_0 sums to 1 over x_s), s = t − 1.

    q = Q_t[x_s, x_t] Q̄_s[x_0, x_s] / Q̄_t[x_0, x_t] with 1 − β_t = ᾱ_t/ᾱ_s. Classes with m = 0 (padding) get 0 rows.
    """
    K = m.shape[0]
    Qt = Qbar(abar_t / abar_s, m)                    # one step s → t
    num = Qt[:, x_t][None, :] * Qbar(abar_s, m)      # (K_0, K_s)
    den = Qbar(abar_t, m)[:, x_t][:, None]           # (K_0, 1)
    out = np.divide(num, den, out=np.zeros((K, K)), where=den > 0)
    return out


def _posteriors(space: DagSpace, abar_s: float, abar_t: float) -> np.ndarray:
    """post[c, x_t, x_0, x_s] for every component (C, Kmax, Kmax, Kmax)."""
    Km = space.Kmax
    out = np.zeros((space.C, Km, Km, Km))
    for c in range(space.C):
        m = space.marginal(c)
        for xt in range(space.card[c]):
            out[c, xt] = posterior(xt, abar_s, abar_t, m)
    return out


def denoiser_probs(space: DagSpace, theta_t: np.ndarray) -> np.ndarray:
    """p̂(x_0^c = k | g) = softmax over the component's classes of θ_t[g, c, :] (N, C, Kmax), padding 0."""
    logits = np.where(space.valid()[None], theta_t, -np.inf)
    logits = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def check_theta(space: DagSpace, theta, T: int | None = None) -> np.ndarray:
    """θ (T, N, C, Kmax) finite at the valid class slots (padding slots are never read)."""
    th = np.asarray(theta, dtype=np.float64)
    if th.ndim != 4 or th.shape[1:] != (space.N, space.C, space.Kmax) or (T is not None and th.shape[0] != T):
        raise fail("theta", f"shape {th.shape}", f"(T, {space.N}, {space.C}, {space.Kmax})")
    if not np.isfinite(np.where(space.valid()[None, None], th, 0.0)).all():
        raise fail("theta", "a non-finite logit", "finite logits at the valid class slots")
    return np.where(space.valid()[None, None], th, 0.0)


def step_kernel(space: DagSpace, theta, alpha_bar, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reverse step t → t−1: (K_t (N, N), per-component kernels k (N, C, Kmax), p̂ (N, C, Kmax)).

    k[g, c, z] = Σ_{x_0} p̂[g, c, x_0] q(z | g_c, x_0);  K_t[g, g'] = Π_c k[g, c, g'_c].
    """
    S = space.states
    phat = denoiser_probs(space, np.asarray(theta)[t - 1])
    post = _posteriors(space, alpha_bar[t - 1], alpha_bar[t])      # (C, xt, x0, xs)
    k = np.einsum("gck,gckz->gcz", phat, post[np.arange(space.C)[None, :], S])
    K = np.ones((space.N, space.N))
    for c in range(space.C):
        K = K * k[:, c, S[:, c]]
    return K, k, phat


# ---------------------------------------------------------------------------- exact quantities


def marginals(space: DagSpace, theta, alpha_bar) -> list[np.ndarray]:
    """[P_0, P_1, …, P_T]: the state distribution after each reverse step (P_T = limit)."""
    a = check_alpha_bar(alpha_bar)
    T = a.shape[0] - 1
    theta = check_theta(space, theta, T)
    P = [None] * (T + 1)
    P[T] = space.limit()
    for t in range(T, 0, -1):
        P[t - 1] = P[t] @ step_kernel(space, theta, a, t)[0]
    return P


def expected_reward(space: DagSpace, theta, alpha_bar, r) -> float:
    """J(θ) = E[r(G_0)] exactly."""
    r = np.asarray(r, dtype=np.float64)
    return float(marginals(space, theta, alpha_bar)[0] @ r)


def _dlog_kernel(phat: np.ndarray, post_c: np.ndarray, kz: np.ndarray) -> np.ndarray:
    """∂ log k(z)/∂θ_k = p̂_k (q(z | ·, k)/k(z) − 1) as (Kmax_k, Kmax_z); 0 where k(z) = 0."""
    ratio = np.divide(post_c, kz[None, :], out=np.zeros_like(post_c), where=kz[None, :] > 0)
    return phat[:, None] * (ratio - 1.0) * (kz[None, :] > 0)


def reinforce_gradient(space: DagSpace, theta, alpha_bar, r) -> np.ndarray:
    """Exact ∇_θ J = Σ_t E[r(G_0) ∇ log p_θ(G_{t−1} | G_t)] (T, N, C, Kmax), by enumeration."""
    a = check_alpha_bar(alpha_bar)
    T = a.shape[0] - 1
    theta = check_theta(space, theta, T)
    S = space.states
    r = np.asarray(r, dtype=np.float64)
    P = marginals(space, theta, a)
    kernels = [None] + [step_kernel(space, theta, a, t) for t in range(1, T + 1)]
    V = [r]
    for t in range(1, T + 1):
        V.append(kernels[t][0] @ V[t - 1])
    grad = np.zeros_like(theta)
    for t in range(1, T + 1):
        K, k, phat = kernels[t]
        post = _posteriors(space, a[t - 1], a[t])
        W = P[t][:, None] * K * V[t - 1][None, :]                   # (N, N') weight of each transition
        for c in range(space.C):
            Wc = np.zeros((space.N, space.Kmax))                     # Σ over g' with g'_c = z
            for z in range(space.card[c]):
                Wc[:, z] = W[:, S[:, c] == z].sum(axis=1)
            for g in range(space.N):
                D = _dlog_kernel(phat[g, c], post[c, S[g, c]], k[g, c])   # (k, z)
                grad[t - 1, g, c] = D @ Wc[g]
    return grad * space.valid()[None, None]


def reach(space: DagSpace, theta, alpha_bar) -> list[np.ndarray]:
    """[M_0 = I, M_1, …, M_T]: M_t[g, g0] = P(G_0 = g0 | G_t = g) = (K_t K_{t−1} ⋯ K_1)[g, g0]."""
    a = check_alpha_bar(alpha_bar)
    T = a.shape[0] - 1
    theta = check_theta(space, theta, T)
    M = [np.eye(space.N)]
    for t in range(1, T + 1):
        M.append(step_kernel(space, theta, a, t)[0] @ M[t - 1])
    return M


def eager_gradient(space: DagSpace, theta, alpha_bar, A) -> np.ndarray:
    """Exact expectation of the eager estimator Σ_{t=1..T} A(G_0) ∇ log p̂_θ(G_0 | G_t) (T, N, C, Kmax).

    ``A`` (N,): the weight of each final graph (the reward, or reward minus a constant baseline).
    ∂ log p̂(G_0 | G_t)/∂θ[t−1, G_t, c, k] = 1[G_0^c = k] − p̂[G_t, c, k].
    """
    a = check_alpha_bar(alpha_bar)
    T = a.shape[0] - 1
    theta = check_theta(space, theta, T)
    S = space.states
    A = np.asarray(A, dtype=np.float64)
    P = marginals(space, theta, a)
    M = reach(space, theta, a)
    onehot = (S[:, :, None] == np.arange(space.Kmax)[None, None, :]).astype(np.float64)   # (N0, C, Kmax)
    grad = np.zeros_like(theta)
    for t in range(1, T + 1):
        phat = denoiser_probs(space, theta[t - 1])
        W = P[t][:, None] * M[t] * A[None, :]                                          # (Nt, N0)
        grad[t - 1] = np.einsum("gh,hck->gck", W, onehot) - W.sum(axis=1)[:, None, None] * phat
    return grad * space.valid()[None, None]


def sample(space: DagSpace, theta, alpha_bar, B: int, rng: np.random.Generator) -> np.ndarray:
    """B reverse trajectories, state indices (B, T+1): column t is G_t (column T the noise, column 0 the graph)."""
    a = check_alpha_bar(alpha_bar)
    T = a.shape[0] - 1
    theta = check_theta(space, theta, T)
    out = np.empty((B, T + 1), dtype=np.int64)
    out[:, T] = rng.choice(space.N, size=B, p=space.limit())
    for t in range(T, 0, -1):
        K = step_kernel(space, theta, a, t)[0]
        for b in range(B):
            out[b, t - 1] = rng.choice(space.N, p=K[out[b, t]] / K[out[b, t]].sum())
    return out

"""Single-store periodic-review inventory control, with exact solvers.

The problem (HDPO's one-store benchmark, arXiv 2306.11246; dynamics as in the official code
MatiasAlvo/Neural_inventory_control, ``environment.py``), one period t = 0, 1, …:

    state         y_t = (y_t[0], y_t[1], …, y_t[L−1])   on-hand stock, then the orders arriving
                                                          at the start of periods t+1 … t+L−1
    order         a_t ≥ 0, on hand at the start of period t + L (L = 0: before this period's demand)
    cost          c_t = h·(I_t − d_t)⁺ + p·(d_t − I_t)⁺   I_t = on-hand when demand d_t arrives
    next on-hand  I_t − d_t (backlog)  or  (I_t − d_t)⁺ (lost sales), plus the arrival of period t+1

h is the holding cost, p the shortage (underage / lost-sale / backlog) penalty, both per unit and
period. The code's one-store defaults: h = 1, p = 9 (tested 4, 9, 19, 39), L = 4, demand
Poisson(5) for lost sales (``one_store_lost.yml``) and Normal(5, 1.6) clipped at 0 for backlog
(``one_store_backlogged.yml``).

Exact results kept here (classic inventory theory; each is checked in ``properties/test_hdpo.py``
against simulation, never the other way round):

* newsvendor (L = 0, one period): E c(S) = h·E(S−D)⁺ + p·E(D−S)⁺ is convex with
  d/dS E c = h·F(S) − p·(1 − F(S)), minimised at the critical fractile S* = F⁻¹(p/(p+h));
* backlog with lead time L under the base-stock policy a_t = (S − inventory position)⁺: once the
  position has reached S, the stock on hand for demand d_{t+L} is S − (d_t + … + d_{t+L−1}), so every
  period is a newsvendor in the (L+1)-period demand and S* = F_{L+1}⁻¹(p/(p+h));
* lost sales with L ∈ {1, 2} and integer demand: relative value iteration on a truncated integer
  grid gives the optimal long-run average cost (with Odoni bounds) and the exact cost of any
  integer base-stock policy.

Demand distributions: ``Demand("poisson", mean=)``, ``Demand("normal", mean=, std=)`` (not clipped:
negative values are possible, unlike the code, which clips at 0 and rounds to 3 decimals) and
``Demand("uniform", low=, high=)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from rlspec.reference._validate import choice, fail, in_range, positive

DEMAND_KINDS = ("poisson", "normal", "uniform")


@dataclass(frozen=True)
class Demand:
    """I.i.d. per-period demand. ``poisson``: mean; ``normal``: mean, std; ``uniform``: low, high."""

    kind: str = "poisson"
    mean: float = 5.0
    std: float = 1.0
    low: float = 0.0
    high: float = 10.0

    def __post_init__(self) -> None:
        choice(self.kind, "Demand.kind", DEMAND_KINDS)
        if self.kind == "poisson":
            positive(self.mean, "Demand.mean")
        elif self.kind == "normal":
            in_range(self.mean, "Demand.mean", -np.inf, np.inf, lo_open=True, hi_open=True)
            positive(self.std, "Demand.std")
        elif not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise fail("Demand.low/high", f"({self.low}, {self.high})", "finite numbers with low < high")

    @property
    def integer_valued(self) -> bool:
        return self.kind == "poisson"

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Demand paths of the given shape, float64 (``rng`` a NumPy Generator)."""
        if self.kind == "poisson":
            return rng.poisson(self.mean, size=shape).astype(np.float64)
        if self.kind == "normal":
            return rng.normal(self.mean, self.std, size=shape)
        return rng.uniform(self.low, self.high, size=shape)

    def _sum_frozen(self, n: int):
        """The scipy distribution of D_1 + … + D_n (Poisson, normal; uniform only for n = 1)."""
        if self.kind == "poisson":
            return stats.poisson(n * self.mean)
        if self.kind == "normal":
            return stats.norm(n * self.mean, math.sqrt(n) * self.std)
        if n == 1:
            return stats.uniform(self.low, self.high - self.low)
        return None

    def sum_cdf(self, x: float, n: int = 1) -> float:
        """F_n(x) = P(D_1 + … + D_n ≤ x)."""
        n = _periods(n)
        d = self._sum_frozen(n)
        if d is not None:
            return float(d.cdf(x))
        return _irwin_hall_cdf((x - n * self.low) / (self.high - self.low), n)

    def sum_ppf(self, q: float, n: int = 1) -> float:
        """F_n⁻¹(q) = inf{x : F_n(x) ≥ q}: the q-quantile of the n-period demand."""
        n = _periods(n)
        q = in_range(q, "q", 0.0, 1.0, lo_open=True, hi_open=True)
        d = self._sum_frozen(n)
        if d is not None:
            return float(d.ppf(q))
        lo, hi = n * self.low, n * self.high
        return float(optimize.brentq(lambda x: self.sum_cdf(x, n) - q, lo, hi, xtol=1e-13))

    def lt_gt(self, S: float) -> tuple[float, float]:
        """(P(D < S), P(D > S)) for one period's demand."""
        d = self._sum_frozen(1)
        if self.kind == "poisson":
            return float(d.cdf(math.ceil(S) - 1)), float(d.sf(math.floor(S)))
        F = float(d.cdf(S))
        return F, 1.0 - F

    def expected_overage(self, S: float) -> float:
        """E(S − D)⁺ = ∫_{−∞}^{S} F(x) dx for one period's demand."""
        if self.kind == "normal":
            z = (S - self.mean) / self.std
            return float((S - self.mean) * stats.norm.cdf(z) + self.std * stats.norm.pdf(z))
        if self.kind == "uniform":
            a, b = self.low, self.high
            return 0.0 if S <= a else (S - self.mean_value if S >= b else (S - a) ** 2 / (2 * (b - a)))
        k = np.arange(0, max(int(math.floor(S)), -1) + 1)
        return float(np.sum((S - k) * stats.poisson.pmf(k, self.mean)))

    @property
    def mean_value(self) -> float:
        """E D."""
        return 0.5 * (self.low + self.high) if self.kind == "uniform" else float(self.mean)


def _periods(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise fail("n (periods)", repr(n), "an integer ≥ 1")
    return int(n)


def _irwin_hall_cdf(x: float, n: int) -> float:
    """CDF of the sum of n independent U(0, 1): (1/n!) Σ_{k ≤ ⌊x⌋} (−1)^k C(n,k) (x−k)^n on [0, n]."""
    if x <= 0:
        return 0.0
    if x >= n:
        return 1.0
    total = sum((-1) ** k * math.comb(n, k) * (x - k) ** n for k in range(int(math.floor(x)) + 1))
    return float(total / math.factorial(n))


def critical_fractile(h: float, p: float) -> float:
    """β = p / (p + h): the in-stock probability the optimal newsvendor level reaches."""
    h = positive(h, "h", allow_zero=True)
    p = positive(p, "p", allow_zero=True)
    if h + p <= 0:
        raise fail("h + p", repr(h + p), "a positive number (the fractile p/(p+h) is undefined)")
    return p / (p + h)


def newsvendor_optimum(demand: Demand, h: float, p: float) -> float:
    """S* = F⁻¹(p/(p+h)): the minimiser of E[h(S−D)⁺ + p(D−S)⁺] (smallest one if not unique)."""
    return demand.sum_ppf(critical_fractile(h, p), 1)


def newsvendor_expected_cost(S: float, demand: Demand, h: float, p: float) -> float:
    """E c(S) = h·E(S−D)⁺ + p·E(D−S)⁺, with E(D−S)⁺ = E(S−D)⁺ − (S − E D)."""
    over = demand.expected_overage(float(S))
    return h * over + p * (over - (float(S) - demand.mean_value))


def newsvendor_expected_derivative(S: float, demand: Demand, h: float, p: float) -> float:
    """h·P(D < S) − p·P(D > S): d/dS E c(S) = h F(S) − p (1 − F(S)) wherever F is continuous at S.

    At an atom of the demand (integer S for Poisson) E c has a kink and this is the mean of the
    pathwise derivative h·1[d<S] − p·1[d>S], not a derivative.
    """
    lt, gt = demand.lt_gt(float(S))
    return h * lt - p * gt


def backlog_optimal_base_stock(demand: Demand, L: int, h: float, p: float) -> float:
    """S* = F_{L+1}⁻¹(p/(p+h)): the optimal base-stock level with backlogging and lead time L."""
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 0:
        raise fail("L", repr(L), "an integer lead time ≥ 0")
    return demand.sum_ppf(critical_fractile(h, p), int(L) + 1)


# ----------------------------------------------------------------------------------------------
# Lost sales, L ∈ {1, 2}, integer demand: relative value iteration on a truncated grid.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AverageCostResult:
    """Long-run average cost g with Odoni bounds lower ≤ g* ≤ upper, and the greedy policy.

    ``policy[s]`` is the order in state s = (on-hand, pipeline…) of the grid (−1 off the grid).
    """

    gain: float
    lower: float
    upper: float
    iterations: int
    policy: np.ndarray


def post_demand_pmf(demand: Demand, ymax: int) -> np.ndarray:
    """P[y, k] = P((y − D)⁺ = k) for y, k ∈ 0..ymax (lost sales; integer demand)."""
    k = np.arange(ymax + 1)
    y = k[:, None]
    P = np.where(k[None, :] <= y, stats.poisson.pmf(y - k[None, :], demand.mean), 0.0)
    P[:, 0] = stats.poisson.sf(k - 1, demand.mean)  # (y − D)⁺ = 0 ⇔ D ≥ y
    return P


def expected_period_cost(demand: Demand, h: float, p: float, ymax: int) -> np.ndarray:
    """c̄(y) = h·E(y−D)⁺ + p·E(D−y)⁺ for on-hand y ∈ 0..ymax."""
    return np.array([newsvendor_expected_cost(float(y), demand, h, p) for y in range(ymax + 1)])


def _grid(L: int, ymax: int) -> tuple[np.ndarray, np.ndarray]:
    """Inventory position of every grid state, shape (ymax+1,)*L, and the mask of valid states."""
    axes = np.meshgrid(*[np.arange(ymax + 1)] * L, indexing="ij")
    ip = sum(axes)
    return ip, ip <= ymax


def _continuation(V: np.ndarray, P: np.ndarray, L: int, ymax: int) -> np.ndarray:
    """G[s, a] = Σ_k P[y, k] V(next(s, k, a)) with next = (k + q₁, …, a); shape (ymax+1,)*L + (A,)."""
    k = np.arange(ymax + 1)
    if L == 1:
        idx = np.minimum(k[:, None] + k[None, :], ymax)        # (k, a) -> next on-hand k + a
        return P @ V[idx]                                       # (y, a)
    idx = np.minimum(k[:, None] + k[None, :], ymax)            # (k, q) -> next on-hand k + q
    return np.einsum("yk,kqa->yqa", P, V[idx, :])               # next state (k + q, a)


def lost_sales_average_cost(demand: Demand, L: int, h: float, p: float, *, ymax: int = 30,
                            base_stock: int | None = None, tol: float = 1e-9, tau: float = 0.5,
                            max_iter: int = 20000) -> AverageCostResult:
    """Optimal (or base-stock ``base_stock``) long-run average cost, lost sales, lead time L ∈ {1, 2}.

    The grid keeps on-hand + pipeline + order ≤ ymax (orders that would exceed it are not allowed),
    so the result is exact for the truncated problem and equals the untruncated optimum when the
    optimal policy never wants a position above ymax. Relative value iteration with aperiodicity
    damping τ; stops when the Odoni bounds min(TV−V) ≤ g ≤ max(TV−V) are within ``tol`` (after
    ``max_iter`` sweeps it returns the bounds reached, which stay valid: check ``upper − lower``).
    """
    positive(h, "h", allow_zero=True)
    positive(p, "p", allow_zero=True)
    ymax = int(ymax)
    if ymax < 1:
        raise fail("ymax", repr(ymax), "an integer ≥ 1")
    if demand.kind != "poisson":
        raise fail("demand", repr(demand.kind), "a Poisson (integer-valued) demand for the integer grid")
    if L not in (1, 2):
        raise fail("L", repr(L), "1 or 2 (value iteration on an L-dimensional grid)")
    if base_stock is not None and not (0 <= int(base_stock) <= ymax):
        raise fail("base_stock", repr(base_stock), f"an integer in [0, ymax={ymax}]")
    P = post_demand_pmf(demand, ymax)
    c = expected_period_cost(demand, h, p, ymax)
    ip, valid = _grid(L, ymax)
    cost = c.reshape((ymax + 1,) + (1,) * (L - 1)) * np.ones(ip.shape)
    a = np.arange(ymax + 1)
    feasible = valid[..., None] & (ip[..., None] + a <= ymax)
    if base_stock is not None:
        feasible &= a == np.maximum(int(base_stock) - ip, 0)[..., None]
    V = np.zeros(ip.shape)
    lo, hi, iterations = -np.inf, np.inf, 0
    while iterations < max_iter:
        iterations += 1
        Q = np.where(feasible, _continuation(V, P, L, ymax), np.inf)
        TV = np.where(valid, cost + Q.min(axis=-1), 0.0)
        diff = (TV - V)[valid]
        lo, hi = float(diff.min()), float(diff.max())
        if hi - lo < tol:
            break
        V = V + tau * (TV - V)
        V = np.where(valid, V - V.flat[0], 0.0)
    policy = np.where(valid, Q.argmin(axis=-1), -1)
    return AverageCostResult(gain=0.5 * (lo + hi), lower=lo, upper=hi, iterations=iterations, policy=policy)

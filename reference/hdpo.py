"""HDPO: hindsight differentiable policy optimisation, on a base-stock inventory policy.

Alvo, Russo, Kanoria, Lee, "Deep Reinforcement Learning for Inventory Networks: Toward Reliable
Policy Optimization" (v1/v2: "Neural Inventory Control in Networks via Hindsight Differentiable
Policy Optimization"), arXiv 2306.11246. Official code: github.com/MatiasAlvo/Neural_inventory_control
(``environment.py``, ``trainer.py``, ``loss_functions.py``, ``neural_networks.py``). Only the paper's
abstract was readable to us; the equations below are confirmed in the official code.

HDPO in one line: draw demand paths ξ_b = (d_b1 … d_bT) (historical or simulated), run the known,
deterministic dynamics under a deterministic policy π_θ, and descend the pathwise gradient of

    J(θ) = 1/(B·T) Σ_b Σ_t c(y_bt, a_bt, d_bt),    a_bt = π_θ(y_bt)              (trainer.py)

obtained by differentiating through the simulator (the code: autograd + Adam). The policy here is the
code's ``BaseStock`` network, a single level S:

    a_t = (S − IP_t)⁺,   IP_t = y_t[0] + … + y_t[L−1]  (on-hand + pipeline)   (neural_networks.py)

The dynamics and cost are those of :mod:`rlspec.reference.envs.inventory` (code: ``environment.py``)::

    period t:  a_t = (S − IP_t)⁺, on hand at period t+L;   c_t = h·(I_t − d_t)⁺ + p·(d_t − I_t)⁺
               I_{t+1} = I_t − d_t  (backlog)  or  (I_t − d_t)⁺  (lost sales), plus arrivals

The pathwise derivative is written out by hand here, in forward mode (the analogue of the
hand-derived ``dlogp`` of the policy losses): carry ẏ = ∂y/∂S through the recursion,

    ȧ_t  = 1[S > IP_t]·(1 − İP_t)
    ċ_t  = (h·1[I_t > d_t] − p·1[I_t < d_t])·İ_t
    İ⁺   = İ_t  (backlog)   or   1[I_t > d_t]·İ_t  (lost sales)

Kinks (I_t = d_t, S = IP_t) have probability zero for continuous demand; at a kink the convention
is the one-sided choice "x⁺ has derivative 1[x > 0]", identical in ``optimized/hdpo.py``. For the
newsvendor (L = 0, T = 1, backlog) this is ∂c/∂S = h·1[d < S] − p·1[d > S].

Conventions beyond the code: L = 0 (order on hand before this period's demand) is allowed, so the
newsvendor is the case L = 0, T = 1; the code's lead times are ≥ 1. ``ignore_periods`` drops the
first periods from the average (the code trains on all periods and only reports without the first 30).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_2d, choice, fail, positive
from rlspec.reference.envs import inventory
from rlspec.reference.registry import Equation, Paper, Spec, register

HDPO_PAPER = Paper(arxiv="2306.11246", title="Deep Reinforcement Learning for Inventory Networks: Toward Reliable "
                   "Policy Optimization", year=2023)


def _int(value, name: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise fail(name, repr(value), f"an integer ≥ {lo}")
    return int(value)


@dataclass(frozen=True)
class HDPOConfig:
    """L: lead time (periods, ≥ 0); h: holding cost; p: shortage penalty; lost_sales: lost (True)
    or backlogged (False) demand; ignore_periods: periods left out of the average cost.

    Defaults are the code's ``one_store_lost.yml``: L = 4, h = 1, p = 9, lost sales (demand there is
    Poisson(5), drawn by ``make_inputs``); ``ignore_periods = 0`` as in the code's training loss.
    """

    L: int = 4
    h: float = 1.0
    p: float = 9.0
    lost_sales: bool = True
    ignore_periods: int = 0

    def __post_init__(self) -> None:
        _int(self.L, "L")
        positive(self.h, "h", allow_zero=True)
        positive(self.p, "p", allow_zero=True)
        if not isinstance(self.lost_sales, (bool, np.bool_)):
            raise fail("lost_sales", repr(self.lost_sales), "True (lost sales) or False (backlog)")
        _int(self.ignore_periods, "ignore_periods")


# ---------------------------------------------------------------------------- the three equations


def base_stock_order(S: float, IP: np.ndarray, dIP: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a = (S − IP)⁺ and ȧ = ∂a/∂S = 1[S > IP]·(1 − İP), each (B,).  Code: ``BaseStock.forward``."""
    gap = S - IP
    on = gap > 0
    return np.where(on, gap, 0.0), np.where(on, 1.0 - dIP, 0.0)


def period_cost(I: np.ndarray, d: np.ndarray, h: float, p: float) -> tuple[np.ndarray, np.ndarray]:
    """c = h·(I − d)⁺ + p·(d − I)⁺ and ∂c/∂I = h·1[I > d] − p·1[I < d], each (B,).
    Code: ``calculate_store_reward_and_update_store_inventories``."""
    over, under = I > d, I < d
    c = h * np.where(over, I - d, 0.0) + p * np.where(under, d - I, 0.0)
    return c, h * over - p * under


def next_on_hand(I: np.ndarray, d: np.ndarray, lost_sales: bool) -> tuple[np.ndarray, np.ndarray]:
    """I − d (backlog) or (I − d)⁺ (lost sales), and its derivative in I (1, or 1[I > d])."""
    if not lost_sales:
        return I - d, np.ones_like(I)
    left = I > d
    return np.where(left, I - d, 0.0), left.astype(np.float64)


# ---------------------------------------------------------------------------- the simulator


def _inputs(S, demands, cfg: HDPOConfig, x0) -> tuple[float, np.ndarray, np.ndarray]:
    """Validated S (float), demands (B, T) and the initial state (B, L+1), last column 0."""
    try:
        S = float(np.asarray(S, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise fail("S", repr(S), "a real scalar base-stock level") from None
    if not np.isfinite(S):
        raise fail("S", repr(S), "a finite base-stock level")
    D = as_2d(demands, "demands")
    B, T = D.shape
    if B == 0 or T == 0:
        raise fail("demands", f"shape {D.shape}", "at least one path and one period")
    if not np.isfinite(D).all():
        b, t = np.argwhere(~np.isfinite(D))[0]
        raise fail("demands", f"a non-finite value {D[b, t]} at ({b}, {t})", "finite demands")
    if cfg.lost_sales and (D < 0).any():
        raise fail("demands", f"a negative demand {D.min()}", "demands ≥ 0 with lost sales")
    if cfg.ignore_periods >= T:
        raise fail("ignore_periods", repr(cfg.ignore_periods), f"fewer than the T = {T} periods")
    width = max(cfg.L, 1)
    y = np.zeros((B, cfg.L + 1))
    if x0 is not None:
        x = np.asarray(x0, dtype=np.float64)
        if x.shape not in ((width,), (B, width)):
            raise fail("x0", f"shape {x.shape}", f"({width},) or ({B}, {width}): on-hand, then pipeline")
        if not np.isfinite(x).all() or (cfg.lost_sales and (x < 0).any()):
            raise fail("x0", "non-finite or negative values", "finite values (≥ 0 with lost sales)")
        y[:, :width] = x
    return S, D, y


def rollout(S, demands, config: HDPOConfig | None = None, x0=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-period costs c (B, T) and their pathwise derivatives ∂c/∂S (B, T) under a = (S − IP)⁺.

    State y (B, L+1): column 0 on hand, column j the order arriving in j periods; the new order is
    written to column L (L = 0: on hand at once). ``x0``: (max(L,1),) or (B, max(L,1)), default 0.
    """
    cfg = config or HDPOConfig()
    S, D, y = _inputs(S, demands, cfg, x0)
    L = cfg.L
    dy = np.zeros_like(y)                                        # ẏ = ∂y/∂S, (B, L+1)
    c, dc = np.empty_like(D), np.empty_like(D)
    for t in range(D.shape[1]):
        a, da = base_stock_order(S, y.sum(axis=1), dy.sum(axis=1))
        y[:, L] += a
        dy[:, L] += da
        c[:, t], dc_dI = period_cost(y[:, 0], D[:, t], cfg.h, cfg.p)
        dc[:, t] = dc_dI * dy[:, 0]
        post, dpost = next_on_hand(y[:, 0], D[:, t], cfg.lost_sales)
        y_next, dy_next = np.zeros_like(y), np.zeros_like(dy)
        y_next[:, :L], dy_next[:, :L] = y[:, 1:], dy[:, 1:]      # pipeline moves one period closer
        y_next[:, 0] += post
        dy_next[:, 0] += dpost * dy[:, 0]
        y, dy = y_next, dy_next
    return c, dc


def _config(L: int, h: float, p: float, lost_sales: bool, ignore_periods: int) -> HDPOConfig:
    return HDPOConfig(L=L, h=h, p=p, lost_sales=lost_sales, ignore_periods=ignore_periods)


def simulate_costs(S, demands, L: int = 0, h: float = 1.0, p: float = 9.0, lost_sales: bool = False,
                   x0=None, ignore_periods: int = 0) -> np.ndarray:
    """Per-path average cost (1/(T−k)) Σ_{t ≥ k} c_bt, shape (B,), k = ``ignore_periods``."""
    c, _ = rollout(S, demands, _config(L, h, p, lost_sales, ignore_periods), x0)
    return c[:, ignore_periods:].mean(axis=1)


def pathwise_grad(S, demands, L: int = 0, h: float = 1.0, p: float = 9.0, lost_sales: bool = False,
                  x0=None, ignore_periods: int = 0) -> np.ndarray:
    """Per-path pathwise derivative ∂/∂S of :func:`simulate_costs`, shape (B,) (forward mode, by hand)."""
    _, dc = rollout(S, demands, _config(L, h, p, lost_sales, ignore_periods), x0)
    return dc[:, ignore_periods:].mean(axis=1)


def newsvendor_pathwise_derivative(S: float, d: np.ndarray, h: float, p: float) -> np.ndarray:
    """∂c/∂S = h·1[d < S] − p·1[d > S] for c = h(S−d)⁺ + p(d−S)⁺ (L = 0, one period, backlog)."""
    d = np.asarray(d, dtype=np.float64)
    return h * (d < S) - p * (d > S)


def hdpo_objective(S, demands, config: HDPOConfig | None = None, x0=None) -> tuple[float, float]:
    """The registry entry: J(S) = 1/(B·(T−k)) Σ_b Σ_{t≥k} c_bt and its pathwise gradient dJ/dS.

    Args: S scalar base-stock level; demands (B, T) sample paths; x0 optional initial state.
    Returns: (cost: float, dcost_dS: float).
    """
    cfg = config or HDPOConfig()
    c, dc = rollout(S, demands, cfg, x0)
    k = cfg.ignore_periods
    return float(c[:, k:].mean()), float(dc[:, k:].mean())


# ---------------------------------------------------------------------------- training


def hdpo_train(S0: float, sample_demands: Callable[[np.random.Generator], np.ndarray], steps: int, lr: float,
               config: HDPOConfig | None = None, *, optimizer: str = "sgd", seed: int = 0, x0=None,
               lr_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               parametrization: str = "direct") -> np.ndarray:
    """HDPO on the base-stock level: ``steps`` updates with fresh demand paths each step.

    Each step draws D = sample_demands(rng) (B, T) and uses the same paths for the cost and its
    gradient (common random numbers), then updates θ with SGD or Adam at rate lr·(1+k)^(−lr_decay).
    ``parametrization``: ``"direct"`` (θ = S) or ``"softplus"`` (S = log(1 + e^θ), the code's
    ``BaseStock`` with initial bias 10 and Adam lr 0.5 in ``base_stock.yml``). Deterministic given
    ``seed``. Returns the trajectory of S, shape (steps + 1,).
    """
    cfg = config or HDPOConfig()
    steps = _int(steps, "steps")
    lr = positive(lr, "lr")
    positive(lr_decay, "lr_decay", allow_zero=True)
    choice(optimizer, "optimizer", ("sgd", "adam"))
    choice(parametrization, "parametrization", ("direct", "softplus"))
    S0 = float(S0)
    if not np.isfinite(S0) or (parametrization == "softplus" and S0 <= 0):
        raise fail("S0", repr(S0), "a finite level (> 0 with the softplus parametrization)")
    rng = np.random.default_rng(seed)
    theta = S0 if parametrization == "direct" else S0 + np.log(-np.expm1(-S0))   # softplus⁻¹
    m = v = 0.0
    traj = [S0]
    for k in range(steps):
        S = theta if parametrization == "direct" else float(np.logaddexp(0.0, theta))
        _, g = hdpo_objective(S, sample_demands(rng), cfg, x0)
        if parametrization == "softplus":
            g *= 1.0 / (1.0 + np.exp(-theta))                    # dS/dθ = σ(θ)
        rate = lr * (1.0 + k) ** (-lr_decay)
        if optimizer == "sgd":
            theta -= rate * g
        else:
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g * g
            theta -= rate * (m / (1 - betas[0] ** (k + 1))) / (np.sqrt(v / (1 - betas[1] ** (k + 1))) + eps)
        traj.append(theta if parametrization == "direct" else float(np.logaddexp(0.0, theta)))
    return np.asarray(traj)


def critical_fractile_level(demand: inventory.Demand, h: float = 1.0, p: float = 9.0, L: int = 0) -> float:
    """S* = F_{L+1}⁻¹(p/(p+h)) (newsvendor for L = 0; backlog with lead time L otherwise)."""
    return inventory.backlog_optimal_base_stock(demand, L, h, p)


def make_inputs(rng: np.random.Generator) -> dict:
    """A conformance case for the default config (lost sales, L = 4): S ~ U(10, 40), Poisson(5) paths."""
    B, T = int(rng.integers(4, 33)), int(rng.integers(6, 41))
    return {"S": np.asarray(rng.uniform(10.0, 40.0)), "demands": rng.poisson(5.0, size=(B, T)).astype(np.float64)}


EQUATIONS = (
    Equation("dynamics", "I_{t+1} = I_t − d_t (backlog) or (I_t − d_t)⁺ (lost) + arrival; a_t on hand at t + L",
             "official code environment.py: Simulator.step, calculate_store_reward_and_update_store_inventories, "
             "update_inventory_for_heterogeneous_lead_times", "official-code", "rollout",
             note="the code's lead times are ≥ 1 (order put at pipeline index L−1); L = 0 is our extension"),
    Equation("period-cost", "c_t = h·(I_t − d_t)⁺ + p·(d_t − I_t)⁺", "official code environment.py "
             "(maximize_profit = False branch)", "official-code", "period_cost",
             note="the code's profit variant −p·min(I, d) + h·(I − d)⁺ is not implemented"),
    Equation("base-stock", "a_t = (S − Σ_j y_t[j])⁺", "official code neural_networks.py: BaseStock",
             "official-code", "base_stock_order",
             note="the code sets S = softplus(bias), bias initialised to 10, Adam lr 0.5 (base_stock.yml); "
                  "hdpo_train(parametrization='softplus') reproduces that parametrisation"),
    Equation("hdpo-objective", "J(θ) = 1/(B·T) Σ_b Σ_t c(y_bt, π_θ(y_bt), d_bt), minimised by pathwise SGD/Adam",
             "arXiv 2306.11246 abstract (pathwise gradients through known dynamics); official code trainer.py "
             "do_one_epoch (mean_loss = total cost / (B·T·n_stores)), loss_functions.py PolicyLoss",
             "official-code", "hdpo_objective",
             note="the paper body was not readable to us; the code trains on all periods and reports without "
                  "the first ignore_periods (30 of 50)"),
    Equation("pathwise-derivative", "ȧ = 1[S>IP](1 − İP); ċ = (h·1[I>d] − p·1[I<d])·İ; İ⁺ = İ or 1[I>d]·İ",
             "derived here (forward mode through the dynamics)", "reconstructed", "rollout",
             note="kinks (I = d, S = IP) use the derivative 1[x > 0] of x⁺, as optimized/hdpo.py does"),
    Equation("newsvendor-derivative", "∂c/∂S = h·1[d<S] − p·1[d>S];  E ∂c/∂S = h F(S) − p (1 − F(S))",
             "classic newsvendor; our notes papers_C §7 property 1", "secondary",
             "newsvendor_pathwise_derivative"),
    Equation("critical-fractile", "S* = F⁻¹(p/(p+h)); backlog with lead time L: S* = F_{L+1}⁻¹(p/(p+h))",
             "classic inventory theory; our notes papers_C §7 properties 1-2", "secondary",
             "critical_fractile_level"),
    Equation("lost-sales-dp", "g* = min_π lim (1/T) E Σ c_t, relative value iteration on 0..ymax",
             "classic average-cost DP; our notes papers_C §7 property 4", "reconstructed",
             "rlspec.reference.envs.inventory.lost_sales_average_cost"),
)

register(Spec(
    name="hdpo", kind="tabular", family="classic-rl", paper=HDPO_PAPER, status="implemented",
    summary="hindsight differentiable policy optimisation: pathwise gradient of a base-stock policy's simulated cost",
    fn=hdpo_objective, config_cls=HDPOConfig, equations=EQUATIONS, outputs=("cost", "dcost_dS"),
    make_inputs=make_inputs,
    gradient="forward-mode pathwise derivative through the inventory recursion: ȧ = 1[S>IP](1−İP), "
             "ċ = (h·1[I>d] − p·1[I<d])·İ, İ⁺ = İ (backlog) or 1[I>d]·İ (lost sales)",
    properties=(
        "properties/test_hdpo.py::test_newsvendor_pathwise_derivative_is_unbiased: "
        "mean of h·1[d<S] − p·1[d>S] = hF(S) − p(1−F(S)) (Poisson, normal, uniform)",
        "properties/test_hdpo.py::test_pathwise_gradient_equals_crn_finite_difference: "
        "pathwise dJ/dS = central FD with common random numbers (continuous demand, backlog and lost sales)",
        "properties/test_hdpo.py::test_newsvendor_formula_matches_rollout: L=0, T=1 rollout derivative = closed form",
        "properties/test_hdpo.py::test_hdpo_converges_to_critical_fractile: S → F⁻¹(p/(p+h)), 3 seeds",
        "properties/test_hdpo.py::test_hdpo_backlog_lead_time_converges_to_lead_time_quantile: "
        "S → F_{L+1}⁻¹(p/(p+h))",
        "properties/test_hdpo.py::test_lost_sales_simulator_matches_exact_base_stock_cost: "
        "simulated base-stock cost = exact Markov-chain cost (lost sales, L = 1, 2); g*_DP ≤ every base-stock cost",
        "properties/test_hdpo.py::test_lost_sales_hdpo_between_dp_optimum_and_best_base_stock: "
        "g*_DP ≤ cost(HDPO S) ≈ best base-stock cost",
        "properties/test_hdpo.py::test_optimized_matches_reference_float64: torch autograd = hand gradient, "
        "torch training trajectory = reference trajectory",
        "properties/test_hdpo.py::test_bad_input_raises: h<0, p<0, NaN demands, negative L",
    ),
    extras={"train": hdpo_train, "critical_fractile": critical_fractile_level, "simulate_costs": simulate_costs,
            "pathwise_grad": pathwise_grad, "rollout": rollout,
            "lost_sales_average_cost": inventory.lost_sales_average_cost},
))

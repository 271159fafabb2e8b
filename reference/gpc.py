"""GPC: general policy composition — a convex combination of diffusion / flow policies' scores at test time.

Cao, Huang, Guo, Zhang, …, Luo, Luo, "Compose Your Policies! Improving Diffusion-based or Flow-based Robot
Policies via Test-time Distribution-level Composition", arXiv 2510.01068 (ICLR 2026). Official code:
github.com/SageCao1125/GPC (``envs/base_task.py::get_composed_action``; the weight sweep
``policy/3D-Diffusion-Policy/eval_composed_multi.sh``; the shared DDPM scheduler in
``diffusion_policy_3d/config/robot_dp3_ddpm.yaml``). Of the paper we could read the abstract and the project
page (which states Propositions 1-2 and Corollary 1 in words); the composition is confirmed in the code,
the algebra of Proposition 1 and the Grönwall form of Proposition 2 are ours (``reconstructed``).

Composition. K pretrained policies predict the noise ε_k (equivalently the score s_k = −ε_k/√(1 − ᾱ_t)) or the
velocity v_k on one shared trajectory x_t; the composed prediction is their convex combination, then one
sampler step::

    ε̂(x_t, t) = Σ_k w_k ε_k(x_t, t | o_k),   w_k ≥ 0, Σ_k w_k = 1          (DDPM / DDIM; the code: K = 2, DP + DP3)
    v̂(x_u, u) = Σ_k w_k v_k(x_u, u | o_k)                                   (flow matching)
    Σ_k w_k ∇ log p_k = ∇ log Π_k p_k^{w_k}:  the composed score is the score of the geometric mixture
    p_w ∝ Π_k p_k^{w_k}; for Gaussians p_w = N(μ_w, Σ_w), Σ_w⁻¹ = Σ_k w_k Σ_k⁻¹, μ_w = Σ_w Σ_k w_k Σ_k⁻¹ μ_k.

One step of the code's sampler (diffusers ``DDPMScheduler.step``, ε-prediction, ``fixed_small`` variance,
``clip_sample=True``), with α_t = ᾱ_t/ᾱ_{t−1}, β_t = 1 − α_t::

    x̂_0 = clip((x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, −1, 1)
    x_{t−1} = (√ᾱ_{t−1} β_t/(1−ᾱ_t)) x̂_0 + (√α_t (1−ᾱ_{t−1})/(1−ᾱ_t)) x_t + σ_t z,   σ_t² = β_t (1−ᾱ_{t−1})/(1−ᾱ_t)

(100 training and inference steps, ``squaredcos_cap_v2`` β schedule: :func:`rlspec.reference.envs.gpc_expo_gmm.schedule`).
Noising does not commute with geometric mixing unless the parents share their covariance: with unequal
covariances the composed sampler does not sample p_w exactly (a caveat the properties measure, not a claim).

Test-time search: the code sweeps w_1 ∈ {0.1, …, 0.9} (w_2 = 1 − w_1; the parents, w_1 ∈ {0, 1}, are run on their
own) and keeps the weight with the best task success; :func:`weight_grid` includes the endpoints.

Proposition 1 (single-step error; the statement "a proper convex combination of distributional scores can yield
a smaller single-step error than either individual score" is the project page's; the algebra is ours). With
errors e_k = s_k − s* of two score estimators and a = E‖e_1‖², b = E‖e_2‖², c = E⟨e_1, e_2⟩::

    MSE(w) = E‖w e_1 + (1 − w) e_2 − 0‖² = w² a + (1 − w)² b + 2 w (1 − w) c        (convex in w)
    w* = clip((b − c)/(a + b − 2c), 0, 1),  and  min_{w∈[0,1]} MSE(w) < min(a, b)  ⇔  c < min(a, b)

(MSE′(0) = 2(c − b), MSE′(1) = 2(a − c): the better endpoint is improved on exactly when the slope there points
inwards; a + b − 2c = E‖e_1 − e_2‖² = 0 means e_1 = e_2 and every w is optimal; we return w = ½ then).

Proposition 2 (Grönwall; constants ours). For dx/du = F(x, u), L-Lipschitz in x, and a perturbed field F + δ, the
end points of the two trajectories from the same start satisfy ‖x̂(1) − x(1)‖ ≤ e^{L} ∫₀¹ ‖δ(u)‖ du, and the same
holds for Euler with step h (‖e_{k+1}‖ ≤ (1 + hL)‖e_k‖ + h‖δ_k‖): :func:`gronwall_bound`.

Config defaults are the code's (convex weights, fixed_small variance, clip at 1, grid step 0.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.envs import gpc_expo_gmm as gmm
from rlspec.reference.registry import Equation, Paper, Spec, register

GPC_PAPER = Paper(arxiv="2510.01068", title="Compose Your Policies! Improving Diffusion-based or Flow-based Robot "
                  "Policies via Test-time Distribution-level Composition", year=2025)

_W_TOL = 1e-9


@dataclass(frozen=True)
class GPCConfig:
    """convex: weights must be ≥ 0 and sum to 1 (False allows any finite weights: extrapolation, not the paper's);
    variance: "small" (the code's fixed_small) or "large" (σ_t² = β_t); clip_sample: clip x̂_0 to [−c, c] (None: no
    clip; the code clips at 1); grid_step: spacing of the weight sweep."""

    convex: bool = True
    variance: str = "small"
    clip_sample: float | None = 1.0
    grid_step: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.convex, (bool, np.bool_)):
            raise fail("convex", repr(self.convex), "True or False")
        choice(self.variance, "variance", ("small", "large"))
        if self.clip_sample is not None:
            positive(self.clip_sample, "clip_sample")
        g = positive(self.grid_step, "grid_step")
        if g > 1.0:
            raise fail("grid_step", repr(self.grid_step), "a step in (0, 1]")


# ---------------------------------------------------------------------------- validation


def _weights(w, K: int, convex: bool) -> np.ndarray:
    w = np.asarray(w)
    if w.shape != (K,) or not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise fail("w", f"an array of shape {w.shape}", f"({K},): one weight per policy")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise fail("w", repr(w), "finite weights")
    if convex and ((w < -_W_TOL).any() or abs(w.sum() - 1.0) > _W_TOL):
        raise fail("w", repr(w), "convex weights (w_k ≥ 0, Σ w_k = 1); set convex=False to extrapolate")
    return w


def _field(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 3 or a.shape[0] == 0 or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise fail(name, f"an array of shape {a.shape}", "a real (K, n, d) stack, one prediction per policy")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise fail(name, "non-finite values", "finite predictions")
    return a


# ---------------------------------------------------------------------------- composition


def compose_eps(eps, w, convex: bool = True) -> np.ndarray:
    """ε̂ = Σ_k w_k ε_k for predictions eps (K, n, d) and weights w (K,); the same for scores and velocities."""
    e = _field(eps, "eps")
    return np.tensordot(_weights(w, e.shape[0], convex), e, axes=(0, 0))


def geo_mix_gaussian(mus, covs, w) -> tuple[np.ndarray, np.ndarray]:
    """(μ_w, Σ_w) of p_w ∝ Π_k N(μ_k, Σ_k)^{w_k}: Σ_w⁻¹ = Σ_k w_k Σ_k⁻¹, μ_w = Σ_w Σ_k w_k Σ_k⁻¹ μ_k."""
    mus, covs = np.asarray(mus, dtype=np.float64), np.asarray(covs, dtype=np.float64)
    w = _weights(w, mus.shape[0], convex=False)
    P = np.linalg.inv(covs)                                                    # (K, d, d) precisions
    Pw = np.tensordot(w, P, axes=(0, 0))
    try:
        np.linalg.cholesky(Pw)
    except np.linalg.LinAlgError:
        raise fail("w", repr(w), "weights with Σ_k w_k Σ_k⁻¹ positive definite (a normalisable product)") from None
    cov = np.linalg.inv(Pw)
    return cov @ np.einsum("k,kij,kj->i", w, P, mus), cov


def gpc_step(x, eps, w, alpha_bar_t, alpha_bar_prev, z, config: GPCConfig | None = None) -> dict:
    """One composed DDPM step: ε̂ = Σ_k w_k ε_k, then x_t → x_{t−1} (diffusers DDPMScheduler, ε-prediction).

    Args: x (n, d) the shared trajectory x_t; eps (K, n, d) each policy's ε_k(x_t, t); w (K,); alpha_bar_t = ᾱ_t and
    alpha_bar_prev = ᾱ_{t−1} (1 at the last step), 0 < ᾱ_t < ᾱ_{t−1} ≤ 1; z (n, d) standard normal noise (unused at
    the last step). Returns {"eps": ε̂ (n, d), "x_prev": x_{t−1} (n, d)}.
    """
    cfg = config or GPCConfig()
    e = _field(eps, "eps")
    xt = np.asarray(x, dtype=np.float64)
    if xt.shape != e.shape[1:] or not np.isfinite(xt).all():
        raise fail("x", f"shape {xt.shape}", f"finite values of shape {e.shape[1:]} (n, d)")
    zz = np.asarray(z, dtype=np.float64)
    if zz.shape != xt.shape or not np.isfinite(zz).all():
        raise fail("z", f"shape {zz.shape}", f"finite values of shape {xt.shape}")
    ab_prev = float(np.asarray(alpha_bar_prev))
    ab = float(np.asarray(alpha_bar_t))
    if not (0.0 < ab_prev <= 1.0):
        raise fail("alpha_bar_prev", repr(alpha_bar_prev), "a number in (0, 1]")
    if not (0.0 < ab < ab_prev):
        raise fail("alpha_bar_t", repr(alpha_bar_t), f"a number in (0, ᾱ_prev = {ab_prev})")
    eps_hat = compose_eps(e, w, cfg.convex)
    beta = 1.0 - ab / ab_prev
    x0 = (xt - np.sqrt(1.0 - ab) * eps_hat) / np.sqrt(ab)
    if cfg.clip_sample is not None:
        x0 = np.clip(x0, -cfg.clip_sample, cfg.clip_sample)
    mean = (np.sqrt(ab_prev) * beta / (1.0 - ab)) * x0 + (np.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab)) * xt
    if ab_prev < 1.0:
        var = beta * (1.0 - ab_prev) / (1.0 - ab) if cfg.variance == "small" else beta
        mean = mean + np.sqrt(var) * zz
    return {"eps": eps_hat, "x_prev": mean}


def gpc_flow_step(x, v, w, h: float, convex: bool = True) -> np.ndarray:
    """One composed Euler step of a flow policy: x_{u+h} = x_u + h Σ_k w_k v_k(x_u, u)."""
    return np.asarray(x, dtype=np.float64) + h * compose_eps(v, w, convex)


def composed_ddpm_sample(eps_fns: Sequence[Callable[[np.ndarray, int], np.ndarray]], w, x_T, noises,
                         sch: gmm.Schedule, config: GPCConfig | None = None) -> np.ndarray:
    """Sample with the composed predictor on one shared trajectory (the code's loop): x_T (n, d), noises (T, n, d)."""
    x = np.asarray(x_T, dtype=np.float64)
    for t in range(sch.T - 1, -1, -1):
        eps = np.stack([f(x, t) for f in eps_fns])
        x = gpc_step(x, eps, w, sch.alpha_bars[t], sch.alpha_bars[t - 1] if t > 0 else 1.0, noises[t], config)["x_prev"]
    return x


def composed_flow_sample(v_fns: Sequence[Callable[[np.ndarray, float], np.ndarray]], w, x0, n_steps: int,
                         convex: bool = True) -> np.ndarray:
    """Euler integration of the composed velocity from u = 0 to 1 in ``n_steps`` steps."""
    x = np.asarray(x0, dtype=np.float64)
    h = 1.0 / int(n_steps)
    for k in range(int(n_steps)):
        x = gpc_flow_step(x, np.stack([f(x, k * h) for f in v_fns]), w, h, convex)
    return x


# ---------------------------------------------------------------------------- Proposition 1 and the weight search


def score_error_moments(e1, e2) -> tuple[float, float, float]:
    """(a, b, c) = (E‖e_1‖², E‖e_2‖², E⟨e_1, e_2⟩) over the rows of e1, e2 (n, d)."""
    e1, e2 = np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64)
    if e1.shape != e2.shape or e1.ndim != 2 or not (np.isfinite(e1).all() and np.isfinite(e2).all()):
        raise fail("e1/e2", f"shapes {e1.shape}, {e2.shape}", "finite (n, d) arrays of the same shape")
    return float((e1**2).sum(1).mean()), float((e2**2).sum(1).mean()), float((e1 * e2).sum(1).mean())


def composition_mse(w, a: float, b: float, c: float) -> np.ndarray:
    """MSE(w) = w² a + (1 − w)² b + 2 w (1 − w) c (elementwise in w)."""
    w = np.asarray(w, dtype=np.float64)
    return w**2 * a + (1 - w) ** 2 * b + 2 * w * (1 - w) * c


def optimal_weight(a: float, b: float, c: float) -> float:
    """w* = clip((b − c)/(a + b − 2c), 0, 1) minimises MSE on [0, 1]; ½ when a + b − 2c = 0 (identical errors)."""
    den = a + b - 2.0 * c
    if den <= 0.0:
        return 0.5
    return float(np.clip((b - c) / den, 0.0, 1.0))


def composition_gain(a: float, b: float, c: float) -> tuple[float, bool]:
    """(min(a, b) − min_{w∈[0,1]} MSE(w), c < min(a, b)): the improvement over the better parent and the condition."""
    return float(min(a, b) - composition_mse(optimal_weight(a, b, c), a, b, c)), bool(c < min(a, b))


def weight_grid(step: float | None = None, config: GPCConfig | None = None) -> np.ndarray:
    """w_1 ∈ {0, step, …, 1}, step = ``config.grid_step`` (0.1) unless given (the code sweeps 0.1 … 0.9 and runs the
    parents, 0 and 1, separately)."""
    step = (config or GPCConfig()).grid_step if step is None else step
    n = int(round(1.0 / positive(step, "step")))
    return np.linspace(0.0, 1.0, n + 1)


def grid_search(evaluate: Callable[[float], float], grid) -> tuple[float, np.ndarray]:
    """Test-time search: evaluate(w_1) for each w_1 of the grid (w_2 = 1 − w_1); returns (best w_1 (first on ties), scores)."""
    g = np.asarray(grid, dtype=np.float64)
    scores = np.array([float(evaluate(float(w))) for w in g])
    return float(g[int(np.argmax(scores))]), scores


def gronwall_bound(L: float, deltas, h: float) -> float:
    """e^{L·T} Σ_k h‖δ_k‖ with T = h·len(deltas): the Proposition-2 bound on the end-point error of the perturbed flow
    (deltas (n_steps, ...) the field error along the perturbed trajectory, per step)."""
    d = np.asarray(deltas, dtype=np.float64).reshape(len(deltas), -1)
    return float(np.exp(L * h * len(d)) * h * np.linalg.norm(d, axis=1).sum())


def make_inputs(rng: np.random.Generator) -> dict:
    """A random composed step: K ∈ {2, 3} policies, n ∈ [1, 8] trajectories, d ∈ [1, 4], a random schedule point."""
    K, n, d = int(rng.integers(2, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
    sch = gmm.schedule(100, "cosine")
    t = int(rng.integers(0, 100))
    w = rng.multinomial(16, rng.dirichlet(np.ones(K))) / 16.0          # sixteenths: exact in bfloat16, Σ w = 1
    return {"x": rng.normal(size=(n, d)), "eps": rng.normal(size=(K, n, d)), "w": w,
            "alpha_bar_t": np.asarray(sch.alpha_bars[t]), "alpha_bar_prev": np.asarray(sch.alpha_bars[t - 1] if t else 1.0),
            "z": rng.normal(size=(n, d))}


EQUATIONS = (
    Equation("composed-eps", "ε̂(x_t, t) = Σ_k w_k ε_k(x_t, t | o_k),  w_k ≥ 0, Σ w_k = 1",
             "official code envs/base_task.py, get_composed_action (model_output = dp_w·ε_dp + dp3_w·ε_dp3); "
             "abstract (convex composition of distributional scores)", "official-code", "compose_eps",
             note="one shared trajectory, conditioning of the second policy applied; the code composes K = 2"),
    Equation("geometric-mixture", "Σ_k w_k ∇log p_k = ∇log Π_k p_k^{w_k};  Gaussians: Σ_w⁻¹ = Σ w_k Σ_k⁻¹, "
             "μ_w = Σ_w Σ w_k Σ_k⁻¹ μ_k", "project page (convex score combination ≙ product of densities); the "
             "Gaussian closed form derived here", "reconstructed", "geo_mix_gaussian"),
    Equation("ddpm-step", "x̂_0 = clip((x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t); x_{t−1} = √ᾱ_{t−1}β_t/(1−ᾱ_t)·x̂_0 + "
             "√α_t(1−ᾱ_{t−1})/(1−ᾱ_t)·x_t + σ_t z", "official code: dp3_scheduler.step in get_composed_action; "
             "config robot_dp3_ddpm.yaml (DDPMScheduler, 100 steps, squaredcos_cap_v2, fixed_small, clip_sample, "
             "epsilon)", "official-code", "gpc_step",
             note="diffusers' step formula written out; σ_t² = β_t(1−ᾱ_{t−1})/(1−ᾱ_t) (fixed_small)"),
    Equation("composed-velocity", "v̂(x_u, u) = Σ_k w_k v_k(x_u, u);  x_{u+h} = x_u + h v̂", "abstract / project "
             "page (flow-based policies composed the same way)", "reconstructed", "gpc_flow_step",
             note="the flow variant's code was not in the repository we read; Euler integration is our choice"),
    Equation("weight-search", "w_1 ∈ {0.1, …, 0.9}, w_2 = 1 − w_1, keep the best task success",
             "official code policy/3D-Diffusion-Policy/eval_composed_multi.sh", "official-code", "grid_search",
             note="weight_grid adds the parents (0 and 1), which the code evaluates with its single-policy scripts"),
    Equation("prop1-mse", "MSE(w) = w²a + (1−w)²b + 2w(1−w)c;  w* = (b−c)/(a+b−2c);  gain ⇔ c < min(a, b)",
             "Prop. 1 (statement in words on the project page); algebra ours (our notes papers_C §14)",
             "reconstructed", "optimal_weight"),
    Equation("prop2-gronwall", "‖x̂(T) − x(T)‖ ≤ e^{LT} ∫₀ᵀ ‖ŝ_u − s*_u‖ du", "Prop. 2 (Grönwall-type inequality, "
             "project page); constants ours", "reconstructed", "gronwall_bound"),
)

register(Spec(
    name="gpc", kind="tabular", family="classic-rl", paper=GPC_PAPER, status="implemented",
    summary="test-time convex composition of pretrained diffusion / flow policies' noise (score) or velocity "
            "predictions on one shared sampling trajectory, with a grid search over the weight",
    fn=gpc_step, config_cls=GPCConfig, equations=EQUATIONS, outputs=("eps", "x_prev"), make_inputs=make_inputs,
    gradient="no loss and no training: the method composes pretrained predictors at sampling time",
    properties=(
        "properties/test_gpc.py::test_weighted_score_is_geometric_mixture_score: Σ w_k ∇log N(μ_k, Σ_k) = ∇log N(μ_w, Σ_w), "
        "and Σ w_k log N_k − log N_w is constant in x (K = 2, 3; d ≤ 3)",
        "properties/test_gpc.py::test_equal_covariances_compose_exactly_at_every_noise_level: composed ε* = ε* of "
        "N(Σ w μ, Σ) at every t; DDPM and flow trajectories coincide; exact output laws equal",
        "properties/test_gpc.py::test_unequal_covariances_do_not_sample_the_geometric_mixture: (our caveat) exact "
        "composed-sampler law ≠ the geometric mixture's own sampler law; the composed predictor approaches the "
        "mixture's towards the data end",
        "properties/test_gpc.py::test_prop1_mse_is_quadratic_with_optimum_w_star: empirical MSE(w) = w²a + (1−w)²b + "
        "2w(1−w)c; its grid minimiser = w*",
        "properties/test_gpc.py::test_prop1_gain_iff_c_below_min: Prop. 1: min_w MSE < min(a, b) ⇔ c < min(a, b)",
        "properties/test_gpc.py::test_prop2_gronwall_bound_holds: Prop. 2: end-point error of the composed flow ≤ "
        "e^{L}·Σ h‖δ_k‖ (Euler, exact Lipschitz constant)",
        "properties/test_gpc.py::test_weight_search_beats_both_parents_exactly_when_errors_anticorrelate: exact "
        "success P(a ∈ box) on 1-D Gaussian parents: the searched w beats both parents iff the biases have "
        "opposite signs (c < min(a, b))",
        "properties/test_gpc.py::test_gpc_step_matches_the_sampler: the registry step = compose + the env's DDPM step "
        "(no clip), and diffusers' clipped formula",
        "properties/test_gpc.py::test_optimized_matches_reference: torch composition, step and composed sampling "
        "= reference (float64)",
        "properties/test_gpc.py::test_bad_input_raises",
        "untested: Corollary 1 (the optimal-weight gain propagates to whole trajectories) — it compares upper "
        "bounds, not errors; its two ingredients (Prop. 1 exactly, the Grönwall bound) are tested",
        "untested: benchmark gains (Robomimic, PushT, RoboTwin, real robots) — empirical claims",
        "untested: logical AND / OR composition operators mentioned in a third-party summary of the paper — their "
        "form could not be read; not implemented",
    ),
    extras={"compose_eps": compose_eps, "geo_mix_gaussian": geo_mix_gaussian, "gpc_flow_step": gpc_flow_step,
            "composed_ddpm_sample": composed_ddpm_sample, "composed_flow_sample": composed_flow_sample,
            "optimal_weight": optimal_weight, "composition_mse": composition_mse, "composition_gain": composition_gain,
            "score_error_moments": score_error_moments, "weight_grid": weight_grid, "grid_search": grid_search,
            "gronwall_bound": gronwall_bound,
            "figures": (("img/gpc.png", "Left: Proposition 1 on two error populations (anti-correlated: gain at w*; "
                         "positively correlated: none). Right: exact success P(|a − a*| ≤ 0.25) of the composed "
                         "DDPM policy on the weight grid, 1-D Gaussian parents with opposite / same-sign biases "
                         "(properties/test_gpc.py::plot_gpc)"),)},
))

"""GRPO-Guard: regulated clipping for GRPO on flow-matching (SDE) policies — RatioNorm and step reweighting.

Wang, Liang et al. (Kling team, Kuaishou; SYSU), "GRPO-Guard: Mitigating Implicit Over-Optimization in Flow
Matching via Regulated Clipping", arXiv 2510.22319 (Oct 2025; CVPR 2026). No official code is released.
Only the paper's abstract and project page were readable here; the formulas below were read in two peer
implementations that cite the paper and agree with each other — Flow-Factory
(``src/flow_factory/trainers/grpo.py``, ``GRPOGuardTrainer.optimize``) and verl-omni
(``verl_omni/trainer/diffusion/diffusion_algos.py``, ``GRPOGuardLoss``) — and with our notes on the paper.

The setting (one "token" = one denoising step; see :mod:`rlspec.reference.envs.gaussian_sde`): sample b's
step t draws x ~ N(μ_θ, s_t²·I) with s_t = σ_t·√dt_t; logp/old_logp (B, T) are the step log-densities of the
sampled x under the current and the behaviour policy, q = ‖μ_θ − μ_old‖² (B, T) the squared drift of the
step mean (reduced over the latent dimensions the same way as the log-densities: summed in the paper's
notation, averaged over dimensions in Flow-GRPO, Flow-Factory and verl-omni). With Δμ = μ_old − μ_θ, ε the
sampling noise::

    log r_t   = logp − old_logp = −q/(2 s_t²) − Δμ·ε/s_t            E[log r_t] = −q/(2 s_t²) < 0   (left shift)
    log r̂_t  = s_t·(log r_t + q/(2 s_t²)) = s_t·log r_t + q/(2 s_t)   = −Δμ·ε                       (RatioNorm)
    δ_t       = 1/dt_t                                                                          (step reweighting)
    ℓ_t       = −δ_t·min(r̂_t Â_t, clip(r̂_t, 1 − ε_low, 1 + ε_high) Â_t),   r̂_t = exp(log r̂_t)
    J         = (1/G) Σ_i (1/T) Σ_t (−ℓ_it)                                → agg = "seq-mean-token-mean"

Why (abstract, made exact here): the plain ratio r is log-normal with median e^{−q/(2s²)} < 1 and a
log-variance ‖Δμ‖²/s_t² that changes from step to step, so positive-advantage samples rarely reach 1 + ε and
the clip does not restrain them. RatioNorm removes the mean shift and the 1/s_t scale: log r̂ = −Δμ·ε has
mean 0 and variance ‖Δμ‖², the same at every step (sum form). With q carrying gradient (as in both peers),
∂log r̂/∂μ_θ = ε exactly, independent of σ_t and dt; the weight δ = 1/dt then removes the factor dt that the
Flow-GRPO drift puts on ∂μ/∂v (``properties/test_grpo_guard.py``).

Gradient (derived here; checked by central finite differences). With ψ(r̂) = −min(r̂Â, clip(r̂)Â), ψ' = −Â
on the unclipped branch and 0 where the clip binds in the preferred direction (as PPO), c the aggregation
coefficients, and ∂log r̂/∂logp = s_t, ∂log r̂/∂q = 1/(2 s_t)::

    ∂loss/∂logp_t = c_t·δ_t·ψ'(r̂_t)·r̂_t·s_t          ∂loss/∂q_t = c_t·δ_t·ψ'(r̂_t)·r̂_t/(2 s_t)

(``ratio_norm=False``: s_t is replaced by 1 and ∂/∂q = 0 — Flow-GRPO's plain ratio.) The registry entry
returns (loss, dlogp); :func:`grpo_guard_loss_and_grads` also returns ∂loss/∂q, the path by which the
μ-drift term carries gradient in both peers.

Paper vs peers, as options: ``step_weight="inverse_dt"`` (δ = 1/dt: our notes on the paper and verl-omni,
which divides the loss by (√dt)²) or ``"none"`` (Flow-Factory applies no δ). Defaults the paper does not
give us: ε_low = ε_high = 1e-4 (Flow-GRPO's and Flow-Factory's ``clip_range``); both peers also clamp the
advantage to ±5 before the loss (``adv_clip=5.0``; default None = no clamp, as in the formula).

Conventions: sigma (σ_t > 0) and dt (step size > 0, i.e. |dt| of a sampler that counts time down) are
(B, T) arrays like logp (a step's value is repeated over the batch); q ≥ 0. ``log_ratio_clamp`` clamps
log r̂ (the exponent actually used) with zero gradient where it binds. Masked positions are never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, masked_array, policy_batch, positive
from rlspec.reference.envs import gaussian_sde
from rlspec.reference.ppo import clipped_surrogate
from rlspec.reference.registry import Equation, Paper, Spec, register

GRPO_GUARD_PAPER = Paper(arxiv="2510.22319", title="GRPO-Guard: Mitigating Implicit Over-Optimization in Flow "
                         "Matching via Regulated Clipping", year=2025)
STEP_WEIGHTS = ("inverse_dt", "none")


@dataclass(frozen=True)
class GRPOGuardConfig(common.AggregationOptions):
    """eps_low / eps_high: clip range of r̂ (1e-4 each: Flow-GRPO's and Flow-Factory's default; the paper's
    value was not readable). ratio_norm: RatioNorm on (True) or Flow-GRPO's plain ratio (False).
    step_weight: "inverse_dt" (δ = 1/dt, paper / verl-omni) or "none" (Flow-Factory). adv_clip: clamp Â to
    ±adv_clip first (peers: 5.0); None = no clamp. agg: the paper's (1/G)Σ_i (1/T)Σ_t."""

    agg: str = "seq-mean-token-mean"
    eps_low: float = 1e-4
    eps_high: float = 1e-4
    ratio_norm: bool = True
    step_weight: str = "inverse_dt"
    adv_clip: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        if not isinstance(self.ratio_norm, (bool, np.bool_)):
            raise fail("ratio_norm", repr(self.ratio_norm), "True or False")
        choice(self.step_weight, "step_weight", STEP_WEIGHTS)
        if self.adv_clip is not None:
            positive(self.adv_clip, "adv_clip")


# ---------------------------------------------------------------------------- the equations


def step_scale(sigma: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """s_t = σ_t·√dt_t (B, T): the standard deviation of a step of the SDE sampler."""
    return sigma * np.sqrt(dt)


def ratio_mean_shift(mu_diff_sq: np.ndarray, sigma: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """b_t = q_t/(2 σ_t² dt_t) = −E_ε[log r_t] ≥ 0 (B, T): how far the plain log-ratio is shifted left."""
    return mu_diff_sq / (2.0 * step_scale(sigma, dt) ** 2)


def rationorm_log_ratio(log_r: np.ndarray, mu_diff_sq: np.ndarray, sigma: np.ndarray, dt: np.ndarray):
    """log r̂ = s·(log r + q/(2s²)) = s·log r + q/(2s) (B, T), with ∂/∂log r = s and ∂/∂q = 1/(2s).  RatioNorm."""
    s = step_scale(sigma, dt)
    return s * log_r + mu_diff_sq / (2.0 * s), s, 1.0 / (2.0 * s)


def step_weight(dt: np.ndarray, mode: str) -> np.ndarray:
    """δ_t = 1/dt_t (``inverse_dt``, the gradient reweighting) or 1 (``none``), (B, T)."""
    choice(mode, "step_weight", STEP_WEIGHTS)
    return 1.0 / dt if mode == "inverse_dt" else np.ones_like(dt)


def _exp_ratio(u: np.ndarray, clamp: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(r̂ = exp(u), ∂r̂/∂u), u clamped to ±clamp when given (zero derivative where the clamp binds)."""
    inside = np.ones_like(u)
    if clamp is not None:
        inside = ((u >= -clamp) & (u <= clamp)).astype(np.float64)
        u = np.clip(u, -clamp, clamp)
    if np.abs(u).max(initial=0.0) > 700.0:
        raise fail("log r̂", f"a normalised log-ratio of {np.abs(u).max():.3g}",
                   "magnitudes below 700, or log_ratio_clamp set")
    r = np.exp(u)
    return r, r * inside


def _step_inputs(mu_diff_sq, sigma, dt, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated q ≥ 0, σ > 0, dt > 0 (B, T); padding replaced by neutral values (0, 1, 1)."""
    q = masked_array(mu_diff_sq, "mu_diff_sq", mask)
    sg = masked_array(sigma, "sigma", mask, fill=1.0)
    h = masked_array(dt, "dt", mask, fill=1.0)
    for a, name, ok in ((q, "mu_diff_sq", q >= 0), (sg, "sigma", sg > 0), (h, "dt", h > 0)):
        if not ok[mask].all():
            b, t = np.argwhere(~ok & mask)[0]
            raise fail(name, f"{a[b, t]!r} at unmasked position ({b}, {t})",
                       "values ≥ 0" if name == "mu_diff_sq" else "values > 0")
    return q, sg, h


def grpo_guard_loss_and_grads(logp, old_logp, adv, mask, mu_diff_sq, sigma, dt, ref_logp=None,
                              config: GRPOGuardConfig | None = None, group=None):
    """(loss, ∂loss/∂logp (B, T), ∂loss/∂mu_diff_sq (B, T)) of GRPO-Guard; see :func:`grpo_guard_loss`."""
    cfg = config or GRPOGuardConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    q, sg, h = _step_inputs(mu_diff_sq, sigma, dt, mask)
    if cfg.adv_clip is not None:
        adv = np.clip(adv, -cfg.adv_clip, cfg.adv_clip)
    log_r = logp - old_logp                                                   # (B, T)
    if cfg.ratio_norm:
        u, du_dlogp, du_dq = rationorm_log_ratio(log_r, q, sg, h)
    else:
        u, du_dlogp, du_dq = log_r, np.ones_like(log_r), np.zeros_like(log_r)
    r_hat, dr_du = _exp_ratio(u, cfg.log_ratio_clamp)
    psi, dpsi = clipped_surrogate(r_hat, adv, cfg.eps_low, cfg.eps_high)     # PPO's clip on r̂
    delta = step_weight(h, cfg.step_weight)
    c = common.agg_coefficients(mask, cfg, group)
    ell, dell_du = np.where(mask, delta * psi, 0.0), np.where(mask, delta * dpsi * dr_du, 0.0)
    return float((c * ell).sum()), c * dell_du * du_dlogp, c * dell_du * du_dq


def grpo_guard_loss(logp, old_logp, adv, mask, mu_diff_sq, sigma, dt, ref_logp=None,
                    config: GRPOGuardConfig | None = None, group=None):
    """GRPO-Guard loss over denoising steps and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp (B, T) step log-densities of the sampled latents (current / behaviour policy);
    adv (B, T) advantages (a sample's advantage repeated over its steps); mask (B, T) bool, the trained
    steps; mu_diff_sq (B, T) q = ‖μ_θ − μ_old‖² ≥ 0, reduced over dimensions like logp; sigma (B, T) σ_t > 0;
    dt (B, T) step sizes > 0; ``ref_logp`` accepted and unused; ``group`` only for agg='group-token-mean'.
    Returns: (loss, dlogp) with dlogp = c·δ·ψ'(r̂)·r̂·s, zero at masked positions; an all-false mask gives
    (0.0, zeros).
    """
    loss, dlogp, _ = grpo_guard_loss_and_grads(logp, old_logp, adv, mask, mu_diff_sq, sigma, dt, ref_logp,
                                               config, group)
    return loss, dlogp


# ---------------------------------------------------------------------------- conformance inputs


def make_inputs(rng: np.random.Generator) -> dict:
    """A batch of real Gaussian SDE steps (:mod:`rlspec.reference.envs.gaussian_sde`): B samples × T steps,
    D latent dims, Flow-GRPO noise schedule (η = 0.7), step sizes 0.02-0.3, a policy drift |Δμ| = κ·s with
    κ ∈ {1e-3, 0.03, 0.3, 1}, log-densities summed or averaged over D; ragged masks (some samples with no
    trained step) and NaN/inf padding in every float input."""
    B, T, D = int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
    reduce = str(rng.choice(gaussian_sde.REDUCES))
    t = np.sort(rng.uniform(0.05, 0.95, size=T))[::-1]                      # flow time counts down
    sigma = np.broadcast_to(gaussian_sde.flow_grpo_sigma(t, 0.7), (B, T)).copy()
    dt = np.broadcast_to(rng.uniform(0.02, 0.3, size=T), (B, T)).copy()
    s = gaussian_sde.step_std(sigma, dt)                                       # (B, T)
    mu_old = rng.normal(size=(B, T, D))
    kappa = float(rng.choice([1e-3, 0.03, 0.3, 1.0]))
    mu = mu_old - kappa * s[..., None] * rng.normal(size=(B, T, D))
    x, _ = gaussian_sde.sample_step(rng, mu_old, sigma, dt)
    logp = gaussian_sde.gaussian_step_logprob(x, mu, sigma, dt, reduce)
    old_logp = gaussian_sde.gaussian_step_logprob(x, mu_old, sigma, dt, reduce)
    q = gaussian_sde.mean_shift_sq(mu, mu_old, reduce)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    if not mask.any():
        mask[0, 0] = True
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)
    batch = {"logp": logp, "old_logp": old_logp, "adv": adv, "mu_diff_sq": q, "sigma": sigma, "dt": dt}
    garbage = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0])
    out = {k: np.where(mask, v, rng.choice(garbage, size=(B, T))) for k, v in batch.items()}
    return {**out, "mask": mask, "group": np.arange(B) // 2}


# ---------------------------------------------------------------------------- registry

_PEERS = ("read in Flow-Factory src/flow_factory/trainers/grpo.py (GRPOGuardTrainer.optimize) and verl-omni "
          "verl_omni/trainer/diffusion/diffusion_algos.py (GRPOGuardLoss); no official code; the paper body "
          "was not readable here")

EQUATIONS = (
    Equation("sde-step", "x_{t−dt} ~ N(μ_θ(x_t, t), σ_t² dt I);  log p = −‖x − μ_θ‖²/(2σ_t²dt) − D log(σ_t√dt) − "
             "(D/2) log 2π", "arXiv 2510.22319 (Flow-GRPO SDE sampler, arXiv 2505.05470)", "secondary",
             "rlspec.reference.envs.gaussian_sde.gaussian_step_logprob",
             note="Flow-Factory scheduler flow_match_euler_discrete.py (Flow-SDE branch) averages the per-dim "
                  "log-density over D; the paper's notation sums it (both reductions supported)"),
    Equation("ratio-left-shift", "E_ε[log r_t] = −‖Δμ‖²/(2σ_t²dt),  Var_ε[log r_t] = ‖Δμ‖²/(σ_t²dt),  Δμ = μ_old − μ_θ",
             "arXiv 2510.22319 abstract (ratio mean below 1, step-dependent variance); formula derived here",
             "reconstructed", "ratio_mean_shift",
             note="our notes record the same formula from the paper's analysis; checked by Monte Carlo on "
                  "exact Gaussian steps"),
    Equation("rationorm", "log r̂_t = σ_t√dt·(log r_t + ‖Δμ‖²/(2σ_t²dt)) = −Δμ·ε", "arXiv 2510.22319 (RatioNorm)",
             "secondary", "rationorm_log_ratio",
             note=_PEERS + "; both write ratio = exp((logp − old_logp)·s + mse/(2s)), s = σ_t√(−dt), mse the "
                  "dimension-mean of (μ_θ − μ_old)², and let the mse term carry gradient"),
    Equation("guard-objective", "J = (1/G) Σ_i (1/T) Σ_t δ_t·min(r̂ Â, clip(r̂, 1−ε, 1+ε) Â),  δ_t = 1/dt_t",
             "arXiv 2510.22319 (regulated clipping + gradient reweighting)", "secondary", "grpo_guard_loss",
             note="verl-omni divides the loss by (√−dt)² (δ = 1/dt); Flow-Factory applies no δ "
                  "(step_weight='none'); both clamp Â to ±5 first (adv_clip=5.0) and default ε = 1e-4"),
    Equation("guard-gradient", "∂loss/∂logp = c·δ·ψ'(r̂)·r̂·σ√dt,  ∂loss/∂q = c·δ·ψ'(r̂)·r̂/(2σ√dt),  ψ' = −Â or 0",
             "derived here", "reconstructed", "grpo_guard_loss_and_grads",
             note="checked by central finite differences"),
    Equation("normalised-mean-gradient", "∂log r̂/∂μ_θ = ε  (vs ∂log r/∂μ_θ = (Δμ + σ√dt ε)/(σ²dt));  "
             "δ·∂log r̂/∂v = −(1 + σ_t²(1−t)/(2t))·ε for the Flow-GRPO drift",
             "arXiv 2510.22319 (gradient reweighting 'equalizes policy gradients over noise conditions'); "
             "precise form ours", "reconstructed", "rationorm_log_ratio",
             note="our precise statement; tested by finite differences through exact Gaussian steps"),
    Equation("clip-activation", "P(r > 1+ε) = Φ̄((log(1+ε) + b)·s/‖Δμ‖), P(r̂ > 1+ε) = Φ̄(log(1+ε)/‖Δμ‖); "
             "normalising raises it iff ‖Δμ‖² > 2s(1−s)·log(1+ε)", "arXiv 2510.22319 abstract (positive-advantage "
             "samples rarely enter the clipped region); closed form ours", "reconstructed", "ratio_mean_shift",
             note="sum form; checked against Monte Carlo clip rates"),
)

register(Spec(
    name="grpo_guard", kind="policy_loss", family="ratio/clipping", paper=GRPO_GUARD_PAPER, status="implemented",
    summary="flow-matching GRPO with RatioNorm (centred, step-consistent log-ratio) and 1/dt step reweighting",
    fn=grpo_guard_loss, config_cls=GRPOGuardConfig, equations=EQUATIONS, outputs=("loss", "dlogp"),
    make_inputs=make_inputs,
    extras={"loss_and_grads": grpo_guard_loss_and_grads, "rationorm_log_ratio": rationorm_log_ratio,
            "ratio_mean_shift": ratio_mean_shift,
            "conformance_configs": lambda: [("step_weight=none", {"step_weight": "none"}),
                                            ("eps=0.2", {"eps_low": 0.2, "eps_high": 0.2}),
                                            ("adv_clip=0.5", {"adv_clip": 0.5})]},
    gradient="∂loss/∂logp = c·δ·ψ'(r̂)·r̂·σ_t√dt with ψ' = −Â on the unclipped branch and 0 where the clip binds "
             "(PPO's rule on r̂); δ = 1/dt. The drift term q = ‖Δμ‖² carries gradient too: ∂loss/∂q = "
             "c·δ·ψ'·r̂/(2σ_t√dt) (extras['loss_and_grads']); together ∂log r̂/∂μ_θ = ε",
    properties=(
        "properties/test_grpo_guard.py::test_hand_gradient_matches_finite_differences: dlogp = central FD",
        "properties/test_grpo_guard.py::test_drift_gradient_matches_finite_differences: ∂loss/∂q = central FD",
        "properties/test_grpo_guard.py::test_mean_log_ratio_shift_closed_form: E[log r] = −‖Δμ‖²/(2σ²dt), "
        "Var = ‖Δμ‖²/(σ²dt) on Gaussian steps (Monte Carlo, sum and mean reductions)",
        "properties/test_grpo_guard.py::test_plain_ratio_is_unbiased_but_its_median_is_below_one: E[r] = 1, "
        "median r = e^{−b} < 1 (the left shift the abstract reports)",
        "properties/test_grpo_guard.py::test_rationorm_equals_minus_dmu_dot_eps: log r̂ = −Δμ·ε sample by sample",
        "properties/test_grpo_guard.py::test_normalised_ratio_is_centred_and_step_consistent: E[log r̂] = 0, "
        "Var = ‖Δμ‖², the same for every σ_t and dt",
        "properties/test_grpo_guard.py::test_upper_clip_activation_rises_after_normalisation: closed-form clip "
        "rates = Monte Carlo; P(r̂ > 1+ε) > P(r > 1+ε) iff ‖Δμ‖² > 2s(1−s)log(1+ε)",
        "properties/test_grpo_guard.py::test_normalised_log_ratio_gradient_is_the_noise: ∂log r̂/∂μ_θ = ε "
        "(σ, dt-free) while ∂log r/∂μ_θ = (Δμ + sε)/s²",
        "properties/test_grpo_guard.py::test_step_reweighting_removes_dt_from_velocity_gradient: "
        "δ·∂log r̂/∂v = −(1 + σ²(1−t)/(2t))ε for every dt",
        "properties/test_grpo_guard.py::test_plain_variant_is_ppo_on_steps: ratio_norm=False, step_weight='none' "
        "= PPO-clip (rlspec.reference.ppo)",
        "properties/test_grpo_guard.py::test_on_policy_weight: Δμ = 0 ⇒ r̂ = 1, dlogp = −c·Â·σ√dt/dt",
        "properties/test_grpo_guard.py::test_padding_is_never_read: NaN/inf/negative values at untrained steps "
        "change no output",
        "properties/test_grpo_guard.py::test_bad_input_raises: σ ≤ 0, dt ≤ 0, q < 0, NaN at valid steps, config",
        "properties/test_grpo_guard.py::test_optimized_matches_reference_including_drift_gradient: torch autograd "
        "= hand gradients (logp and q)",
        "properties/test_grpo_guard.py::test_trains_a_gaussian_sde_policy: GRPO with this loss (and with Flow-GRPO's "
        "plain ratio) trains a 1-D Gaussian SDE policy to near its optimum reward",
        "untested: implicit over-optimisation (proxy reward up while gold image-quality metrics fall) is mitigated "
        "on SD3.5-M / FLUX.1-dev — needs diffusion models, reward models and gold metrics",
    ),
))

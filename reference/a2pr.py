"""A2PR: adaptive advantage-guided policy regularisation for offline RL.

Liu, Li, Lan, Gao, Pan, Xu, "Adaptive Advantage-Guided Policy Regularization for Offline Reinforcement
Learning", ICML 2024, arXiv 2405.19909. Official code: github.com/ltlhuuu/A2PR (``A2PR.py``: ``class VAE``,
``A2PR.train``; defaults in ``utils/config.py``). Only the paper's abstract and introduction were
readable to us; every equation below was read in the official code (provenance ``official-code``),
except the tabular statements used by the properties, which are ours (``reconstructed``).

A2PR is TD3+BC in which the behaviour-cloning target is replaced by a better action. Notation: batch
of B transitions (s, a, r, s′, d), action dimension d_a, twin critics Q_1, Q_2 (targets Q̄_i), a state
value V, a deterministic actor π (target π̄), a VAE (encoder q(z|s, a), decoder D(s, z)).

Critic and value (``A2PR.train``)::

    ã′  = clip(π̄(s′) + clip(ε, −c, c), −a_max, a_max),   ε ~ N(0, σ_ε²)          target smoothing
    y   = r + γ (1 − d) min_i Q̄_i(s′, ã′)                                       critic target
    t_Q = min(y, r + γ (1 − d) min_i Q_i(s′, ã′))       (Q_i: the critics just updated)   value target
    L_Q = Σ_i mean (Q_i(s, a) − y)²,   L_V = mean (V(s) − t_Q)²

EPBL, "elevating positive behaviour learning" (the VAE fit on positive-advantage data only)::

    A(s, a) = Q_1(s, a) − V(s)
    L_VAE   = mean_{b,j} w·1[A(s_b, a_b) > ε_A]·(D(s_b, z_b) − a_b)_j² + ½·KL(N(μ, σ) ‖ N(0, I))
    KL      = −½ mean_{b,k} (1 + log σ_bk² − μ_bk² − σ_bk²)                 (z_b = μ_b + σ_b ξ)

(the paper writes the threshold ε_A; the code uses ε_A = 0).

Actor, every ``policy_freq`` critic steps. The VAE reconstructs the actor's action, â = D(s, z),
z ~ q(·|s, π(s)), and the augmented behaviour action keeps the better of â and the data action::

    λ   = α / mean_b |Q_1(s_b, π(s_b))|                                (a constant: detached)
    ã   = â  if A(s, â) ≥ A(s, a)  else  a       ⇔  Q_1(s, â) ≥ Q_1(s, a)  (V cancels)
    m   = κ·(1[Q_1(s, â) ≥ V(s)] + 1[Q_1(s, a) > V(s)])  ∈ {0, κ, 2κ}
    L_π = −λ·mean_b Q_1(s_b, π(s_b)) + mean_{b,j} m_b (π(s_b) − ã_b)_j²

The regularisation only pulls π towards actions of non-negative advantage, with double weight when
both candidates are good, and not at all when both are bad (m = 0): where the data are bad, A2PR is
plain Q-maximisation. Comparing Q_1(s, â) with Q_1(s, a) directly (instead of the two differences
with V) is the same test in exact arithmetic and avoids rounding V twice.

Gradient (by hand; ``dpi`` = ∂L_π/∂π(s), shape (B, d_a)), with g_b = ∇_a Q_1(s_b, a)|_{a=π(s_b)}::

    ∂L_π/∂π_b = −(λ/B)·g_b + (2/(B d_a))·m_b·(I − 1[ã_b = â_b]·J_bᵀ)(π_b − ã_b)

where J_b = ∂â_b/∂π_b is the Jacobian of the VAE reconstruction. The official code lets autograd
differentiate through the VAE (its ``recon_pi`` is a function of ``pi``): pass ``dvae_dpi`` (B, d_a, d_a)
for that; without it the target ã is a constant (stop-gradient), the natural reading of "regularise
towards ã". λ, m and the choice of ã are piecewise constant in π (the code detaches λ).

The augmented behaviour policy (tabular statement, ours): with β the behaviour policy, β⁺ what the
EPBL density model generates and A^β its advantage, ã = argmax_{x ∈ {a, â}} A^β(s, x) for a ~ β,
â ~ β⁺ independent. Then A^β(s, ã) ≥ A^β(s, a) surely, so E_{π̃}[A^β(s, ·)] ≥ E_β[A^β(s, ·)] = 0 and
V^{π̃} ≥ V^β at every state (policy improvement theorem): "the improvement of the behaviour policy is
guaranteed" (abstract) in its checkable form. :func:`augmented_behaviour_policy` computes π̃ exactly
for finite actions; :func:`positive_behaviour_fit` is the exact minimiser of the EPBL reconstruction
loss over tabular conditionals (the VAE stand-in), β⁺(a|s) ∝ β(a|s) 1[A^β(s, a) > ε_A].

The density model is pluggable (:class:`DensityModel`): anything with ``fit(actions, weights)`` and
``reconstruct(pi_actions, rng)``; :class:`EmpiricalDensity` (weighted empirical distribution of the
data actions, the exact weighted-MLE) and :class:`GaussianDensity` (a diagonal Gaussian fit by weighted
MLE, the notes' 1-D stand-in) are the stand-ins for the VAE. Both ignore the action they are asked
to reconstruct (J = 0): a VAE whose latent carries no information about its input does the same.

Conventions: ties A(â) = A(a) pick â (the code's ``>=``); an all-zero ``q_pi`` makes λ undefined and
raises (the code would divide by zero). Config defaults are the code's ``utils/config.py`` / class
defaults: α = 2.5, κ = ``mask`` = 0.5, w = ``vae_weight`` = 1, γ = 0.99, σ_ε = 0.2, c = 0.5, τ = 0.005,
policy_freq = 2 (README runs use per-task α ∈ {2.5, 40}, κ ∈ {0.4, 1.0}, w ∈ {1.0, 1.5}, γ = 0.995
for hopper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rlspec.reference._validate import fail, in_range, positive
from rlspec.reference.envs import a2pr_offline_bandit as ob
from rlspec.reference.registry import Equation, Paper, Spec, register

A2PR_PAPER = Paper(arxiv="2405.19909", title="Adaptive Advantage-Guided Policy Regularization for Offline "
                   "Reinforcement Learning", year=2024)


@dataclass(frozen=True)
class A2PRConfig:
    """alpha: Q-term scale α (λ = α/mean|Q|); kappa: regularisation weight κ (code ``mask``); vae_weight: w;
    eps_A: advantage threshold of EPBL (paper ε_A, code 0); kl_weight: the code's ½ on the VAE KL;
    gamma, policy_noise σ_ε, noise_clip c, max_action, tau, policy_freq: the TD3 parts (code defaults)."""

    alpha: float = 2.5
    kappa: float = 0.5
    vae_weight: float = 1.0
    eps_A: float = 0.0
    kl_weight: float = 0.5
    gamma: float = 0.99
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    max_action: float = 1.0
    tau: float = 0.005
    policy_freq: int = 2

    def __post_init__(self) -> None:
        positive(self.alpha, "alpha", allow_zero=True)
        positive(self.kappa, "kappa", allow_zero=True)
        positive(self.vae_weight, "vae_weight", allow_zero=True)
        positive(self.kl_weight, "kl_weight", allow_zero=True)
        if not np.isfinite(float(self.eps_A)):
            raise fail("eps_A", repr(self.eps_A), "a finite threshold")
        in_range(self.gamma, "gamma", 0.0, 1.0)
        positive(self.policy_noise, "policy_noise", allow_zero=True)
        positive(self.noise_clip, "noise_clip", allow_zero=True)
        positive(self.max_action, "max_action")
        in_range(self.tau, "tau", 0.0, 1.0)
        if isinstance(self.policy_freq, bool) or not isinstance(self.policy_freq, (int, np.integer)) or \
                self.policy_freq < 1:
            raise fail("policy_freq", repr(self.policy_freq), "an integer ≥ 1")


# ---------------------------------------------------------------------------- validation


def _actions(x, name: str, B: int | None = None, d: int | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise fail(name, f"an array of shape {a.shape}, dtype {a.dtype}", "a real (B, d_a) array")
    a = a.astype(np.float64)
    if (B is not None and a.shape[0] != B) or (d is not None and a.shape[1] != d) or a.shape[0] == 0 or a.shape[1] == 0:
        raise fail(name, f"shape {a.shape}", f"({B if B is not None else 'B'}, {d if d is not None else 'd_a'}), "
                                             "B, d_a ≥ 1")
    if not np.isfinite(a).all():
        raise fail(name, "non-finite values", "finite values")
    return a


def _values(x, name: str, B: int) -> np.ndarray:
    v = np.asarray(x)
    if v.shape != (B,) or not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise fail(name, f"an array of shape {v.shape}, dtype {v.dtype}", f"a real array of shape ({B},)")
    v = v.astype(np.float64)
    if not np.isfinite(v).all():
        raise fail(name, "non-finite values", "finite values")
    return v


# ---------------------------------------------------------------------------- the actor's equations


def advantage(q, v) -> np.ndarray:
    """A(s, a) = Q_1(s, a) − V(s), elementwise (B,)."""
    return np.asarray(q, dtype=np.float64) - np.asarray(v, dtype=np.float64)


def augmented_action(a_data, a_vae, q_data, q_vae) -> tuple[np.ndarray, np.ndarray]:
    """ã = â where A(s, â) ≥ A(s, a) (⇔ Q_1(s, â) ≥ Q_1(s, a)), else a.  Returns (ã (B, d_a), use_vae (B,) bool)."""
    use_vae = np.asarray(q_vae) >= np.asarray(q_data)
    return np.where(use_vae[:, None], a_vae, a_data), use_vae


def regularization_weight(q_data, q_vae, v, kappa: float) -> np.ndarray:
    """m = κ·(1[Q_1(s, â) ≥ V(s)] + 1[Q_1(s, a) > V(s)]) ∈ {0, κ, 2κ}, shape (B,)."""
    q_data, q_vae, v = (np.asarray(x, dtype=np.float64) for x in (q_data, q_vae, v))
    return kappa * ((q_vae >= v).astype(np.float64) + (q_data > v).astype(np.float64))


def q_scale(q_pi, alpha: float) -> float:
    """λ = α / mean_b |Q_1(s_b, π(s_b))| (treated as a constant)."""
    denom = float(np.abs(np.asarray(q_pi, dtype=np.float64)).mean())
    if denom == 0.0:
        raise fail("q_pi", "all zeros", "at least one non-zero Q_1(s, π(s)) (λ = α/mean|Q| is undefined)")
    return alpha / denom


def a2pr_actor_loss(pi_a, dq_pi, q_pi, a_data, q_data, a_vae, q_vae, v, dvae_dpi=None,
                    config: A2PRConfig | None = None) -> tuple[float, np.ndarray]:
    """The A2PR actor loss L_π and its hand gradient ∂L_π/∂π(s).

    Args (B transitions, action dimension d_a):
        pi_a (B, d_a): actor actions π(s);  dq_pi (B, d_a): ∇_a Q_1(s, a) at a = π(s);  q_pi (B,): Q_1(s, π(s)).
        a_data (B, d_a), q_data (B,): dataset actions and Q_1(s, a).
        a_vae (B, d_a), q_vae (B,): VAE reconstructions â of π(s) and Q_1(s, â).   v (B,): V(s).
        dvae_dpi (B, d_a, d_a) or None: ∂â/∂π(s) (the official code differentiates through the VAE);
            None treats ã as a constant.
    Returns: (loss: float, dpi: (B, d_a)).
    """
    cfg = config or A2PRConfig()
    pi = _actions(pi_a, "pi_a")
    B, d = pi.shape
    g = _actions(dq_pi, "dq_pi", B, d)
    a, a_hat = _actions(a_data, "a_data", B, d), _actions(a_vae, "a_vae", B, d)
    q_pi, q_a, q_hat, vv = (_values(x, n, B) for x, n in ((q_pi, "q_pi"), (q_data, "q_data"),
                                                           (q_vae, "q_vae"), (v, "v")))
    lam = q_scale(q_pi, cfg.alpha)
    a_tilde, use_vae = augmented_action(a, a_hat, q_a, q_hat)
    m = regularization_weight(q_a, q_hat, vv, cfg.kappa)                      # (B,)
    diff = pi - a_tilde                                                        # (B, d_a)
    loss = -lam * q_pi.mean() + (m[:, None] * diff**2).mean()
    dreg = diff
    if dvae_dpi is not None:
        J = np.asarray(dvae_dpi, dtype=np.float64)
        if J.shape != (B, d, d) or not np.isfinite(J).all():
            raise fail("dvae_dpi", f"shape {J.shape}", f"finite ({B}, {d}, {d}) Jacobians ∂â/∂π")
        dreg = diff - use_vae[:, None] * np.einsum("bij,bi->bj", J, diff)      # (I − Jᵀ) (π − ã) where ã = â
    dpi = -(lam / B) * g + (2.0 / (B * d)) * m[:, None] * dreg
    return float(loss), dpi


def td3bc_actor_loss(pi_a, dq_pi, q_pi, a_data, alpha: float = 2.5) -> tuple[float, np.ndarray]:
    """The TD3+BC baseline A2PR modifies: L = −λ·mean Q_1(s, π(s)) + mean (π(s) − a)², and ∂L/∂π(s).
    (Fujimoto & Gu 2021; every data action is a target with weight 1.)  Returns (loss, dpi (B, d_a))."""
    pi = _actions(pi_a, "pi_a")
    B, d = pi.shape
    q = _values(q_pi, "q_pi", B)
    lam = q_scale(q, alpha)
    diff = pi - _actions(a_data, "a_data", B, d)
    return float(-lam * q.mean() + (diff**2).mean()), -(lam / B) * _actions(dq_pi, "dq_pi", B, d) + 2.0 * diff / (B * d)


# ---------------------------------------------------------------------------- critic, value, EPBL


def target_action(pi_next, noise, config: A2PRConfig | None = None) -> np.ndarray:
    """ã′ = clip(π̄(s′) + clip(ε, −c, c), −a_max, a_max); ``noise`` is ε (already scaled by σ_ε)."""
    cfg = config or A2PRConfig()
    eps = np.clip(np.asarray(noise, dtype=np.float64), -cfg.noise_clip, cfg.noise_clip)
    return np.clip(np.asarray(pi_next, dtype=np.float64) + eps, -cfg.max_action, cfg.max_action)


def critic_target(r, not_done, q1_targ_next, q2_targ_next, gamma: float) -> np.ndarray:
    """y = r + γ (1 − d) min(Q̄_1, Q̄_2)(s′, ã′), shape (B,)."""
    return np.asarray(r, float) + gamma * np.asarray(not_done, float) * np.minimum(q1_targ_next, q2_targ_next)


def value_target(r, not_done, y, q1_next, q2_next, gamma: float) -> np.ndarray:
    """t_Q = min(y, r + γ (1 − d) min_i Q_i(s′, ã′)) with the freshly updated critics Q_i, shape (B,)."""
    return np.minimum(y, critic_target(r, not_done, q1_next, q2_next, gamma))


def epbl_vae_loss(recon, a_data, mu, std, q_data, v, config: A2PRConfig | None = None):
    """L_VAE = mean w·1[Q_1 − V > ε_A]·(D − a)² + kl_weight·KL and its gradients.

    Args: recon (B, d_a) decoder outputs D(s, z); a_data (B, d_a); mu, std (B, d_z) encoder outputs;
    q_data, v (B,). Returns (loss, d_recon (B, d_a), d_mu (B, d_z), d_std (B, d_z)).
    KL = −½ mean (1 + log σ² − μ² − σ²): ∂/∂μ = μ/(B d_z), ∂/∂σ = (σ − 1/σ)/(B d_z).
    """
    cfg = config or A2PRConfig()
    x = _actions(recon, "recon")
    B, d = x.shape
    a = _actions(a_data, "a_data", B, d)
    mu_ = _actions(mu, "mu", B)
    sd = _actions(std, "std", B, mu_.shape[1])
    if (sd <= 0).any():
        raise fail("std", "a non-positive value", "encoder standard deviations > 0")
    keep = cfg.vae_weight * (advantage(_values(q_data, "q_data", B), _values(v, "v", B)) > cfg.eps_A)   # (B,)
    recon_loss = (keep[:, None] * (x - a) ** 2).mean()
    kl = -0.5 * (1.0 + np.log(sd**2) - mu_**2 - sd**2).mean()
    dz = mu_.size
    return (float(recon_loss + cfg.kl_weight * kl), 2.0 * keep[:, None] * (x - a) / (B * d),
            cfg.kl_weight * mu_ / dz, cfg.kl_weight * (sd - 1.0 / sd) / dz)


# ---------------------------------------------------------------------------- tabular statements


def positive_behaviour_fit(beta, A, eps_A: float = 0.0) -> np.ndarray:
    """β⁺(a|s) ∝ β(a|s)·1[A(s, a) > ε_A]: the exact minimiser of the EPBL reconstruction loss over
    tabular conditionals (weighted maximum likelihood); rows with no such action keep β(·|s). (S, A)."""
    beta, A = np.asarray(beta, dtype=np.float64), np.asarray(A, dtype=np.float64)
    w = beta * (A > eps_A)
    tot = w.sum(axis=1, keepdims=True)
    return np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), beta)


def augmented_behaviour_policy(beta, beta_plus, Q) -> np.ndarray:
    """π̃(x|s) = P(ã = x) for a ~ β(·|s), â ~ β⁺(·|s) independent, ã = â if Q(s, â) ≥ Q(s, a) else a. (S, A).

    Exact: π̃(x|s) = β⁺(x) Σ_a β(a) 1[Q(x) ≥ Q(a)] + β(x) Σ_â β⁺(â) 1[Q(x) > Q(â)].
    """
    beta, beta_plus, Q = (np.asarray(x, dtype=np.float64) for x in (beta, beta_plus, Q))
    ge = Q[:, :, None] >= Q[:, None, :]                                        # (S, x, y): Q(x) ≥ Q(y)
    gt = Q[:, :, None] > Q[:, None, :]
    return beta_plus * np.einsum("sxy,sy->sx", ge, beta) + beta * np.einsum("sxy,sy->sx", gt, beta_plus)


# ---------------------------------------------------------------------------- pluggable density models


class DensityModel(Protocol):
    """What A2PR needs from its behaviour model (the VAE in the paper)."""

    def fit(self, actions: np.ndarray, weights: np.ndarray) -> DensityModel: ...

    def reconstruct(self, pi_actions: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class EmpiricalDensity:
    """The weighted empirical distribution of the data actions (exact weighted MLE over distributions)."""

    actions: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, actions, weights) -> EmpiricalDensity:
        a = _actions(np.asarray(actions, dtype=np.float64).reshape(len(actions), -1), "actions")
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (a.shape[0],) or (w < 0).any() or not np.isfinite(w).all():
            raise fail("weights", f"shape {w.shape}", f"({a.shape[0]},) finite non-negative weights")
        p = w / w.sum() if w.sum() > 0 else np.full(a.shape[0], 1.0 / a.shape[0])   # no positive data: all data
        return EmpiricalDensity(a, p)

    def reconstruct(self, pi_actions, rng) -> np.ndarray:
        n = np.asarray(pi_actions).shape[0]
        return self.actions[rng.choice(self.actions.shape[0], size=n, p=self.probs)]


@dataclass(frozen=True)
class GaussianDensity:
    """A diagonal Gaussian N(m, s²) fit by weighted maximum likelihood (the notes' 1-D stand-in)."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(1))
    std: np.ndarray = field(default_factory=lambda: np.ones(1))

    def fit(self, actions, weights) -> GaussianDensity:
        a = _actions(np.asarray(actions, dtype=np.float64).reshape(len(actions), -1), "actions")
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum() if w.sum() > 0 else np.full(a.shape[0], 1.0 / a.shape[0])
        m = w @ a
        return GaussianDensity(m, np.sqrt(np.maximum(w @ (a - m) ** 2, 1e-12)))

    def reconstruct(self, pi_actions, rng) -> np.ndarray:
        n = np.asarray(pi_actions).shape[0]
        return self.mean + self.std * rng.standard_normal((n, self.mean.shape[0]))


# ---------------------------------------------------------------------------- the offline-bandit run


def _bc_moments(env: ob.OfflineBandit, data: np.ndarray, density: EmpiricalDensity, kappa: float) -> tuple[float, float]:
    """(E m, E m ã) exactly, over a uniform over the data and â over the fitted empirical density."""
    V = ob.behaviour_value(env)
    qa, qh = ob.reward(env, data), ob.reward(env, density.actions[:, 0])
    use_vae = qh[None, :] >= qa[:, None]                                      # (n_data, n_model)
    m = kappa * ((qh[None, :] >= V).astype(float) + (qa[:, None] > V).astype(float))
    a_t = np.where(use_vae, density.actions[:, 0][None, :], data[:, None])
    P = np.full(data.shape[0], 1.0 / data.shape[0])[:, None] * density.probs[None, :]
    return float((P * m).sum()), float((P * m * a_t).sum())


def bandit_fixed_point(env: ob.OfflineBandit, data, config: A2PRConfig | None = None, *, td3bc: bool = False,
                       lo: float = -2.0, hi: float = 2.0) -> float:
    """The exact limit of A2PR (or TD3+BC) SGD on the offline bandit with the exact critic (Q = r, V = V^β).

    The expected gradient of the actor loss at π = θ is G(θ) = −α r′(θ)/|r(θ)| + 2(θ·E m − E m ã) (d_a = 1;
    the density model is the empirical EPBL fit and ignores θ, so E m and E m ã are constants; TD3+BC:
    m ≡ 1, ã = a). Returns the root of G in [lo, hi] (bisection to 1e−13).
    """
    cfg = config or A2PRConfig()
    data = np.asarray(data, dtype=np.float64).reshape(-1)
    if td3bc:
        M0, M1 = 1.0, float(data.mean())
    else:
        V = ob.behaviour_value(env)
        dens = EmpiricalDensity().fit(data[:, None], cfg.vae_weight * (ob.reward(env, data) - V > cfg.eps_A))
        M0, M1 = _bc_moments(env, data, dens, cfg.kappa)

    def G(t):
        return -cfg.alpha * ob.reward_grad(env, t) / abs(ob.reward(env, t)) + 2.0 * (t * M0 - M1)

    if G(lo) * G(hi) > 0:
        raise fail("lo/hi", f"[{lo}, {hi}] with G of one sign", "a bracket of the stationary point")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if G(lo) * G(mid) <= 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-13:
            break
    return 0.5 * (lo + hi)


def bandit_train(env: ob.OfflineBandit, data, steps: int, lr: float, batch: int = 64,
                 config: A2PRConfig | None = None, *, theta0: float = 0.0, seed: int = 0, td3bc: bool = False,
                 density: DensityModel | None = None, lr_decay: float = 0.5) -> np.ndarray:
    """A2PR (or TD3+BC) actor training on the offline bandit with the exact critic; SGD at rate lr·(1+k)^(−lr_decay).

    The density model (default: :class:`EmpiricalDensity`) is fit once on the data with the EPBL weights
    w·1[Q − V > ε_A]. Each step draws a minibatch of data actions and reconstructions and takes one step
    along −dpi. Returns the trajectory of θ, shape (steps + 1,).
    """
    cfg = config or A2PRConfig()
    data = np.asarray(data, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    V = ob.behaviour_value(env)
    dens = (density or EmpiricalDensity()).fit(data[:, None], cfg.vae_weight * (ob.reward(env, data) - V > cfg.eps_A))
    theta, traj = float(theta0), [float(theta0)]
    for k in range(int(steps)):
        a = data[rng.integers(0, data.size, batch)][:, None]
        pi = np.full((batch, 1), theta)
        if td3bc:
            _, g = td3bc_actor_loss(pi, ob.reward_grad(env, pi), ob.reward(env, pi[:, 0]), a, cfg.alpha)
        else:
            ah = dens.reconstruct(pi, rng)
            _, g = a2pr_actor_loss(pi, ob.reward_grad(env, pi), ob.reward(env, pi[:, 0]), a, ob.reward(env, a[:, 0]),
                                   ah, ob.reward(env, ah[:, 0]), np.full(batch, V), config=cfg)
        theta -= lr * (1.0 + k) ** (-lr_decay) * float(g.sum())
        traj.append(theta)
    return np.asarray(traj)


def make_inputs(rng: np.random.Generator) -> dict:
    """A random actor batch (B ∈ [1, 32], d_a ∈ [1, 4]); a third of the cases carry the VAE Jacobian."""
    B, d = int(rng.integers(1, 33)), int(rng.integers(1, 5))
    v = rng.normal(size=B)
    out = {"pi_a": np.tanh(rng.normal(size=(B, d))), "dq_pi": rng.normal(size=(B, d)),
           "q_pi": rng.normal(size=B) - 2.0, "a_data": np.tanh(rng.normal(size=(B, d))), "q_data": v + rng.normal(size=B),
           "a_vae": np.tanh(rng.normal(size=(B, d))), "q_vae": v + rng.normal(size=B), "v": v}
    if rng.random() < 1 / 3:
        out["dvae_dpi"] = 0.3 * rng.normal(size=(B, d, d))
    return out


EQUATIONS = (
    Equation("critic-target", "y = r + γ(1−d)·min_i Q̄_i(s′, ã′),  ã′ = clip(π̄(s′) + clip(ε, −c, c), ±a_max)",
             "official code A2PR.py, A2PR.train (TD3 critic)", "official-code", "critic_target",
             note="ε ~ N(0, 0.2²), c = 0.5 (policy_noise, noise_clip); twin-critic loss Σ_i mean (Q_i − y)²"),
    Equation("value-target", "t_Q = min(y, r + γ(1−d)·min_i Q_i(s′, ã′)),  L_V = mean (V(s) − t_Q)²",
             "official code A2PR.py, A2PR.train (value update after the critic step)", "official-code",
             "value_target", note="Q_i are the critics just updated; t_Q ≤ y is the overestimation guard we test"),
    Equation("epbl-vae", "L_VAE = mean w·1[Q_1(s,a) − V(s) > ε_A]·‖D(s,z) − a‖² + ½·KL(N(μ,σ) ‖ N(0,I))",
             "official code A2PR.py, A2PR.train (vae_loss) and class VAE; threshold ε_A from the paper via our "
             "notes (papers_C §2)", "official-code", "epbl_vae_loss",
             note="the code uses ε_A = 0, log σ clamped to [−4, 15], decoder a_max·tanh(·), latent 2·d_a; the "
                  "means are over batch × dimension"),
    Equation("advantage", "A(s, a) = Q_1(s, a) − V(s)", "official code A2PR.py, A2PR.train (advantage_action, "
             "advantage_pi)", "official-code", "advantage"),
    Equation("augmented-action", "ã = â if A(s, â) ≥ A(s, a) else a,  â = D(s, z), z ~ q(·|s, π(s))",
             "official code A2PR.py, A2PR.train (embedding_pi / embedding_action)", "official-code",
             "augmented_action",
             note="the comparison is done as Q_1(s, â) ≥ Q_1(s, a) (V cancels); ties pick â as in the code"),
    Equation("mask", "m = κ·(1[Q_1(s, â) ≥ V(s)] + 1[Q_1(s, a) > V(s)]) ∈ {0, κ, 2κ}",
             "official code A2PR.py, A2PR.train (adv_pi, adv_action, adv = self.mask·(...))", "official-code",
             "regularization_weight", note="≥ for â, > for a, as in the code; κ = mask = 0.5 by default"),
    Equation("lambda", "λ = α / mean_b |Q_1(s_b, π(s_b))| (detached)", "official code A2PR.py, A2PR.train (lmbda)",
             "official-code", "q_scale", note="TD3+BC's normalisation; an all-zero Q raises here"),
    Equation("actor-loss", "L_π = −λ·mean Q_1(s, π(s)) + mean_{b,j} m_b (π(s_b) − ã_b)_j²",
             "official code A2PR.py, A2PR.train (actor_loss + bc_loss)", "official-code", "a2pr_actor_loss",
             note="the code's gradient also flows through the VAE reconstruction â = D(s, z(π)); pass dvae_dpi "
                  "for that, omit it for a stop-gradient target"),
    Equation("augmented-behaviour-policy", "π̃(x|s) = β⁺(x)·Σ_a β(a)1[Q(x) ≥ Q(a)] + β(x)·Σ_â β⁺(â)1[Q(x) > Q(â)]",
             "our tabular form of the augmented behaviour policy (abstract: its improvement is guaranteed)",
             "reconstructed", "augmented_behaviour_policy",
             note="the paper's theorem statement could not be read; V^{π̃} ≥ V^β is what we test"),
    Equation("epbl-tabular-fit", "β⁺(a|s) ∝ β(a|s)·1[A^β(s, a) > ε_A]", "derived: minimiser of the EPBL "
             "reconstruction loss over tabular conditionals", "reconstructed", "positive_behaviour_fit"),
)

register(Spec(
    name="a2pr", kind="tabular", family="classic-rl", paper=A2PR_PAPER, status="implemented",
    summary="offline RL (TD3+BC family): regularise the actor towards the better of the data action and a VAE "
            "reconstruction fitted to positive-advantage data, with a mask that drops negative-advantage targets",
    fn=a2pr_actor_loss, config_cls=A2PRConfig, equations=EQUATIONS, outputs=("loss", "dpi"),
    make_inputs=make_inputs,
    gradient="∂L_π/∂π_b = −(λ/B)·∇_aQ_1(s_b, π_b) + (2/(B·d_a))·m_b·(I − 1[ã_b = â_b]·J_bᵀ)(π_b − ã_b), "
             "J_b = ∂â_b/∂π_b (0 for a stop-gradient target); λ, m and the choice of ã are piecewise constant",
    properties=(
        "properties/test_a2pr.py::test_hand_gradient_matches_finite_differences: dpi = central FD of L_π with a "
        "quadratic critic and a linear 'VAE' (with and without the Jacobian path)",
        "properties/test_a2pr.py::test_target_selects_the_higher_advantage_action: A(ã) = max(A(a), A(â)) ≥ A(a)",
        "properties/test_a2pr.py::test_mask_values_and_zero_on_bad_pairs: m ∈ {0, κ, 2κ}; m = 0 iff Q(â) < V and "
        "Q(a) ≤ V (no pull towards bad actions)",
        "properties/test_a2pr.py::test_augmented_behaviour_policy_improves_on_behaviour: V^{π̃} ≥ V^β at every "
        "state, exact on random tabular MDPs, for any density model β⁺; V^{β⁺} ≥ V^β for the EPBL fit",
        "properties/test_a2pr.py::test_augmented_behaviour_policy_is_the_law_of_the_selection: π̃ = law of ã by "
        "enumerating all (a, â) pairs",
        "properties/test_a2pr.py::test_epbl_fit_is_the_weighted_mle_and_improves: β⁺ minimises the weighted NLL; "
        "E_{β⁺} A^β ≥ ε_A",
        "properties/test_a2pr.py::test_value_target_never_exceeds_critic_target: t_Q ≤ y (overestimation guard)",
        "properties/test_a2pr.py::test_vae_loss_gradient_and_positive_only: EPBL gradients = FD; non-positive "
        "advantages carry no reconstruction gradient",
        "properties/test_a2pr.py::test_bandit_training_reaches_the_exact_fixed_point: SGD → exact stationary point "
        "(3 seeds), true reward above TD3+BC's and above the behaviour value",
        "properties/test_a2pr.py::test_optimized_matches_reference: torch autograd = hand gradient; torch training "
        "trajectory = reference trajectory",
        "properties/test_a2pr.py::test_bad_input_raises",
        "untested: the paper's bounded-performance-gap / overestimation theorem — its statement and constants "
        "could not be read (abstract only); we test the code's t_Q ≤ y guard and the exact improvement of π̃",
        "untested: D4RL results (16 of 18 tasks state of the art) — benchmark claims, not checkable on a toy",
    ),
    extras={"augmented_behaviour_policy": augmented_behaviour_policy, "positive_behaviour_fit": positive_behaviour_fit,
            "epbl_vae_loss": epbl_vae_loss, "critic_target": critic_target, "value_target": value_target,
            "target_action": target_action, "bandit_train": bandit_train, "bandit_fixed_point": bandit_fixed_point,
            "figures": (("img/a2pr.png", "Offline bandit with a 50/50 good/bad dataset and the exact critic: the A2PR "
                         "actor (3 seeds) converges to its exact stationary point, close to the good mode and a*, "
                         "while TD3+BC is pulled towards the bad mode (properties/test_a2pr.py::plot_bandit)"),)},
))

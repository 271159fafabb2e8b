"""DPPO: a trust-region mask from a divergence estimate instead of PPO's ratio clip (Binary-TV / Binary-KL).

Qi, Zhou, Liu, Pang, Du, Lin, Lee, "Rethinking the Trust Region in LLM Reinforcement Learning",
arXiv 2602.04879 (2026), §4.3 eq. (12) (the masked objective), §4.4 eqs. (13)-(14) (binary approximations).
verl ships the Binary variants as the policy losses ``dppo_tv`` and ``dppo_kl``
(``core_algos.compute_policy_loss_dppo_tv`` / ``compute_policy_loss_dppo_kl``).

Notation: µ = π_old(y_t) (the rollout policy's probability of the sampled token), π = π_θ(y_t), r = π/µ.
The binary approximations collapse the vocabulary to {y_t, everything else}::

    D_TV  = |µ − π|                                                  (eq. 13)
    D_KL  = µ log(µ/π) + (1 − µ) log((1 − µ)/(1 − π))                (eq. 14)

The mask blocks a token only when the update moves away from the trust region and the divergence is too
large (eq. 12)::

    M_t = 0  if (Â_t > 0 and r_t > 1 and D_t > δ_high) or (Â_t < 0 and r_t < 1 and D_t > δ_low);  else 1
    J   = Σ_t c_t M_t r_t Â_t,     ℓ_t = −M_t r_t Â_t,     ∂ℓ_t/∂logp_t = −M_t r_t Â_t   (M held fixed)

(for D_TV the condition "r > 1 and |µ − π| > δ" is simply π − µ > δ). Both binary divergences are lower
bounds of the full-vocabulary divergences (data-processing inequality; tested by enumeration).

verl's variant (``surrogate="tis"``, options below): the loss is written as a truncated-IS REINFORCE term
ℓ_t = −sg(M_t · min(r_t, c)) Â_t logp_t, whose gradient −M_t min(r_t, c) Â_t equals the paper's when r ≤ c
but whose *value* differs (it depends on logp itself); c = ``is_cap`` (verl reads ``clip_ratio_c``: the
ActorConfig default is 3.0, the function's fallback 20.0; the paper, §5.4, warns that truncation biases
low-probability tokens). verl also adds 1e-8 inside the KL's second logarithm (``kl_eps``) and clamps the
log-ratio used for r to ±20 (``log_ratio_clamp``).

Options (config): ``trust_region`` "tv" | "kl"; ``delta_low`` / ``delta_high`` the thresholds δ (0.2, verl's
clip_ratio default — the paper's value is not in our notes); ``surrogate`` "ratio" (paper) | "tis" (verl);
``is_cap`` None or c > 0 (only with "tis"); ``kl_eps`` ≥ 0. With trust_region="kl", log-probs must be ≤ 0
(they are probabilities of a Bernoulli split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

DPPO_PAPER = Paper(arxiv="2602.04879", title="Rethinking the Trust Region in LLM Reinforcement Learning", year=2026)


@dataclass(frozen=True)
class DPPOConfig(common.AggregationOptions):
    """trust_region: "tv" (Binary-TV) or "kl" (Binary-KL). delta_low/high: thresholds for Â < 0 / Â > 0.
    surrogate: "ratio" (paper, ℓ = −M r Â) or "tis" (verl, ℓ = −sg(M min(r, c)) Â logp). is_cap: c (tis only).
    kl_eps: added to 1 − µ and 1 − π inside the binary KL's second log (verl: 1e-8)."""

    trust_region: str = "tv"
    delta_low: float = 0.2
    delta_high: float = 0.2
    surrogate: str = "ratio"
    is_cap: float | None = None
    kl_eps: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.trust_region, "trust_region", ("tv", "kl"))
        positive(self.delta_low, "delta_low", allow_zero=True)
        positive(self.delta_high, "delta_high", allow_zero=True)
        choice(self.surrogate, "surrogate", ("ratio", "tis"))
        if self.is_cap is not None:
            positive(self.is_cap, "is_cap")
            if self.surrogate != "tis":
                raise fail("is_cap", repr(self.is_cap), "None unless surrogate='tis' (the cap truncates the IS weight)")
        positive(self.kl_eps, "kl_eps", allow_zero=True)


def binary_tv(mu_logp: np.ndarray, pi_logp: np.ndarray) -> np.ndarray:
    """D_TV = |µ − π| of the sampled token (eq. 13), from log-probs (B, T)."""
    return np.abs(np.exp(mu_logp) - np.exp(pi_logp))


def binary_kl(mu_logp: np.ndarray, pi_logp: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """D_KL(Bern(µ) ‖ Bern(π)) = µ log(µ/π) + (1 − µ) log((1 − µ + ε)/(1 − π + ε))  (eq. 14; ε = 0 in the paper)."""
    mu = np.exp(mu_logp)
    one_minus_mu, one_minus_pi = -np.expm1(mu_logp), -np.expm1(pi_logp)  # accurate near µ, π → 1
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = np.log(one_minus_mu + eps) - np.log(one_minus_pi + eps)
    tail = np.where(one_minus_mu + eps == 0, 0.0, one_minus_mu * tail)  # 0·log 0 := 0
    return mu * (mu_logp - pi_logp) + tail


def trust_region_mask(adv: np.ndarray, logp: np.ndarray, old_logp: np.ndarray, cfg: DPPOConfig) -> np.ndarray:
    """M (B, T) ∈ {0, 1}: 0 where the update leaves the trust region in the advantage's direction (eq. 12)."""
    if cfg.trust_region == "tv":
        D = binary_tv(old_logp, logp)
    else:
        D = binary_kl(old_logp, logp, cfg.kl_eps)
    up, down = logp > old_logp, logp < old_logp  # r > 1, r < 1
    blocked = ((adv > 0) & up & (D > cfg.delta_high)) | ((adv < 0) & down & (D > cfg.delta_low))
    return np.where(blocked, 0.0, 1.0)


def dppo_loss(logp, old_logp, adv, mask, ref_logp=None, config: DPPOConfig | None = None, group=None):
    """DPPO loss and its gradient (mask and, for "tis", the IS weight held fixed).

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or DPPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    if cfg.trust_region == "kl":
        for name, x in (("logp", logp), ("old_logp", old_logp)):
            if (x[mask] > 0).any():
                raise fail(name, f"a positive log-prob {x[mask].max():.3g}",
                           "log-probs <= 0 for trust_region='kl' (the binary KL needs probabilities in [0, 1])")
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    M = trust_region_mask(adv, logp, old_logp, cfg)
    if cfg.surrogate == "ratio":
        ell, dell = -M * r * adv, -M * adv * dr
    else:
        w = M * (r if cfg.is_cap is None else np.minimum(r, cfg.is_cap))  # under stop-gradient
        ell, dell = -w * adv * logp, -w * adv
    return common.aggregate_token_loss(ell, dell, mask, cfg, group)


def _conformance_configs():
    return [("kl", {"trust_region": "kl"}, "basic"), ("kl", {"trust_region": "kl"}, "ragged-garbage"),
            ("kl", {"trust_region": "kl"}, "beyond-dual-clip"), ("kl", {"trust_region": "kl"}, "token-level-adv"),
            ("tight", {"delta_low": 0.01, "delta_high": 0.02}, "token-level-adv"),
            ("kl-tight", {"trust_region": "kl", "delta_low": 0.002, "delta_high": 0.001}, "ragged-garbage")]


register(Spec(
    name="dppo", kind="policy_loss", family="framework", paper=DPPO_PAPER, status="implemented",
    summary="importance-weighted PG masked by a binary TV or KL trust region (instead of a ratio clip)",
    fn=dppo_loss, config_cls=DPPOConfig, outputs=("loss", "dlogp"),
    extras={"stop_gradient": "the trust-region mask M (and verl's IS weight) is held fixed: properties/"
                             "test_dppo.py::test_hand_gradient_with_mask_frozen checks FD with them frozen",
            "conformance_configs": _conformance_configs},
    equations=(
        Equation("dppo-objective", "J = Σ_t M_t r_t Â_t; M_t = 0 if (Â>0, r>1, D>δ) or (Â<0, r<1, D>δ)",
                 "arXiv 2602.04879 §4.3 eq. (12)", "paper", "trust_region_mask"),
        Equation("binary-tv", "D_TV = |µ(y_t) − π(y_t)|", "arXiv 2602.04879 §4.4 eq. (13)", "paper", "binary_tv"),
        Equation("binary-kl", "D_KL = µ log(µ/π) + (1−µ) log((1−µ)/(1−π))", "arXiv 2602.04879 §4.4 eq. (14)",
                 "paper", "binary_kl", note="verl adds 1e-8 to 1−µ and 1−π (kl_eps)"),
        Equation("dppo-tis", "ℓ = −sg(M·min(r, c)) Â log π", "verl core_algos.compute_policy_loss_dppo_tv/_kl",
                 "secondary", "dppo_loss", note="verl's variant (surrogate='tis'); same gradient for r ≤ c"),
        Equation("dppo-delta", "δ_low = δ_high = 0.2", "verl ActorConfig.clip_ratio default", "reconstructed",
                 "DPPOConfig", note="the paper's δ values were not read"),
    ),
    gradient="∂ℓ/∂logp = −M·r·Â (paper) or −M·min(r, c)·Â (verl), mask held fixed, times c",
    properties=(
        "properties/test_dppo.py::test_hand_gradient_with_mask_frozen",
        "properties/test_dppo.py::test_binary_divergences_lower_bound_the_full_ones",
        "properties/test_dppo.py::test_mask_never_blocks_moves_towards_the_old_policy",
        "properties/test_dppo.py::test_low_probability_token_kept_where_ppo_clips",
        "properties/test_dppo.py::test_tis_variant_has_the_paper_gradient_below_the_cap",
    ),
))

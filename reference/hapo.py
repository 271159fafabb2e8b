"""HAPO: Heterogeneous Adaptive Policy Optimization — token entropy steers temperature, advantage and clip.

Liu, Liu, Wen, Cai, Cui, He, Zhang, "From Uniform to Heterogeneous: Tailoring Policy Optimization to Every
Token's Nature", arXiv 2509.16591 (Sep 2025). Official code: github.com/starriver030515/HAPO (a verl fork;
``verl/trainer/ppo/core_algos.py``: ``compute_entropy_h``, ``ada_clip``, ``ada_advantage``,
``compute_hapo_outcome_advantage``, ``compute_policy_loss``; ``vllm/v1/sample/sampler.py``:
``compute_entropy_based_temperature``; recipes in ``recipe/*.sh``).

Provenance. The official code was read here. The paper's method section was NOT reachable (only its abstract,
which names the four components and their intent); the paper-side formulas below come from our notes on the
paper (papers_A.md §10, transcribed from the PDF by a colleague), tagged ``secondary``. Where the notes and the
code disagree, the paper is implemented and the code's variant is a named option.

Notation: H_bt the entropy of the policy's next-token distribution at a sampled token (B, T); x = log H;
valid tokens are those of ``mask``. ρ (``pivot``) = 0.8 is a quantile level.

Entropy signal (notes §10; code ``compute_entropy_h``), over the batch's valid tokens::

    x      = log max(H, 10⁻⁸)                                       (the code's floor; H = 0 is allowed)
    q      = Q_ρ(x)           ρ-quantile, "nearest" order statistic: sorted(x)[round(ρ (n − 1))]
    h      = (x − q)/σ        (σ cancels in h̃ below; it matters only for the temperature)
    h̃      = h / h_max                         for h > 0      → (0, 1]
    h̃      = h / |h_min|                       for h ≤ 0      → [−1, 0]      (paper, low_entropy_sign="paper")
    h̃_code = h / h_min = |h| / |h_min|        for h ≤ 0      → [0, 1]       (official code, ="code")

h_max, h_min are the largest and smallest h of the batch's valid tokens. The code divides by h_min < 0, so
a low-entropy token gets a POSITIVE h̃ and is then treated as a high-entropy one by (C) and (D) below (and by
the temperature): ``low_entropy_sign="code"`` reproduces that; the default follows the paper's stated range.

(A) Adaptive temperature (sampling; notes: T_base = 1, τ = 0.1, statistics q̂, σ̂ of the previous step)::

    T_bt = T_base · (1 + τ · (x_bt − q̂)/σ̂)                          (paper form; T > 0 ⇔ τ z > −1)
    T_bt = T_base · (1 + τ · clip(h̃_bt, −1, 1))                     (code form, τ = 0.05 in its recipes)

(B) Token-level group average (notes; code ``compute_hapo_outcome_advantage``): every valid token of rollout i
carries a_it = R_i; within prompt group g with L_i valid tokens per rollout,

    μ_g = Σ_i L_i R_i / Σ_i L_i,   σ_g² = Σ_i L_i (R_i − μ_g)² / Σ_i L_i,   A_i = (R_i − μ_g)/(σ_g + ε)

(population std over the group's tokens; ε = 10⁻⁶ as in the code). The code falls back to verl's GRPO
advantage for the whole group when some |A_i| ≥ 5 (not in the paper): ``fallback_threshold=5.0``.

(C) Differential advantage redistribution (notes; code ``ada_advantage``), r = π_θ/π_old, neutral zone
Z = (1 − ε_L/2, 1 + ε_R/2)::

    Â = A·(1 + β h̃)   if (h̃ > 0 and r ∉ Z) or (h̃ ≤ 0 and r ∈ Z);   Â = A otherwise        (β = 1)

(D) Asymmetric adaptive clipping (notes; code ``ada_clip``), base ranges ε_L^b, ε_R^b, strength α = 1::

    ε_L = ε_L^b (1 − α h̃) if h̃ ≤ 0 else ε_L^b;     ε_R = ε_R^b (1 + α h̃) if h̃ > 0 else ε_R^b

Loss (notes: DAPO settings, token-mean, dual clip c = 3; code ``compute_policy_loss``): PPO's clipped
surrogate with the per-token range [1 − ε_L, 1 + ε_R] on Â, then dual clip for Â < 0::

    ℓ = −min(r Â, clip(r, 1 − ε_L, 1 + ε_R) Â);   ℓ ← min(ℓ, −c Â) for Â < 0

Gradient (derived here; checked by finite differences in ``properties/test_hapo.py``): h̃, ε_L, ε_R depend on
the entropies only, and Â depends on logp only through the indicator r ∈ Z, which is piecewise constant
(the loss jumps where r crosses ∂Z; the code computes Â under ``no_grad``, i.e. takes this a.e. derivative), so

    ∂ℓ/∂logp = −Â·r on the unclipped branch;  0 where the clip binds or the dual-clip cap is active.

Defaults follow the notes' paper settings (ε_L^b = 0.2, ε_R^b = 0.28, c = 3). The official recipes use
ε_L^b = ε_R^b = 0.2 and c = 10 (``HAPOConfig(eps_high=0.2, dual_clip_c=10.0, low_entropy_sign="code")`` is
the code's actor). Conventions of ours: the neutral zone is open (the code's strict inequalities; the notes
write a closed interval: measure zero); the zone uses the adapted ranges ε_L, ε_R (as the code, and as the
notes' symbols read; ``zone_uses_adaptive_clip=False`` takes the base ranges). ``entropy=None`` is a defined
degenerate case: every token sits at the pivot (h̃ = 0), so the loss is the clip-higher PPO loss with dual
clip; pass the entropies to get HAPO.

Batch coupling: q, h_max, h_min are statistics of the whole batch, so a shard computes other values unless
the full batch's statistics are passed (``entropy_stats=entropy_statistics(...)`` of the full batch), after
which shard losses with the global normalizer add up (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import as_mask, choice, fail, in_range, masked_array, policy_batch, positive
from rlspec.reference.grpo import GRPOConfig, grpo_outcome_advantage, validate_outcome
from rlspec.reference.ppo import clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

HAPO_PAPER = Paper(arxiv="2509.16591", title="From Uniform to Heterogeneous: Tailoring Policy Optimization to Every "
                   "Token's Nature (HAPO)", year=2025)
SIGNS = ("paper", "code")
SIGMAS = ("std", "rms-about-pivot")
ENTROPY_FLOOR = 1e-8  # the code clamps H before the log
SIGMA_FLOOR = 1e-4  # the code clamps the variance at 1e-8


# --------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class HAPOConfig(common.AggregationOptions):
    """HAPO policy loss. pivot: ρ of the entropy quantile (0.8). eps_low/eps_high: base clip ranges ε_L^b, ε_R^b
    (notes/paper: 0.2/0.28; code recipes 0.2/0.2). clip_alpha: α (1). adv_beta: β (1). dual_clip_c: c > 1 or None
    (notes/paper 3; code recipes 10). low_entropy_sign: "paper" (h̃ ∈ [−1, 0] for h ≤ 0) or "code" (the official
    code's h/h_min ∈ [0, 1]). adaptive_clip / adaptive_advantage: components (D) / (C) on or off (the code's
    switches). zone_uses_adaptive_clip: the neutral zone from ε_L, ε_R (True) or from the base ranges."""

    agg: str = "token-mean"
    pivot: float = 0.8
    eps_low: float = 0.2
    eps_high: float = 0.28
    clip_alpha: float = 1.0
    adv_beta: float = 1.0
    dual_clip_c: float | None = 3.0
    low_entropy_sign: str = "paper"
    adaptive_clip: bool = True
    adaptive_advantage: bool = True
    zone_uses_adaptive_clip: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        in_range(self.pivot, "pivot", 0.0, 1.0)
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        positive(self.clip_alpha, "clip_alpha", allow_zero=True)
        positive(self.adv_beta, "adv_beta", allow_zero=True)
        if self.dual_clip_c is not None and positive(self.dual_clip_c, "dual_clip_c") <= 1.0:
            raise fail("dual_clip_c", repr(self.dual_clip_c), "a number > 1 (or None for no dual clip)")
        choice(self.low_entropy_sign, "low_entropy_sign", SIGNS)


@dataclass(frozen=True)
class HAPOAdvantageConfig:
    """Token-level group average. eps: added to the token-level std (code 1e-6). fallback_threshold: None (paper)
    or the code's 5.0: a group with some |A_i| ≥ threshold takes verl's GRPO advantage instead."""

    eps: float = 1e-6
    fallback_threshold: float | None = None

    def __post_init__(self) -> None:
        positive(self.eps, "eps", allow_zero=True)
        if self.fallback_threshold is not None:
            positive(self.fallback_threshold, "fallback_threshold")


@dataclass(frozen=True)
class HAPOTemperatureConfig:
    """Adaptive temperature. t_base: T_base (1). tau: τ (notes/paper 0.1; code 0.05). pivot: ρ (0.8).
    form: "paper" (T_base(1 + τ z), z = (x − q̂)/σ̂) or "code" (T_base(1 + τ clip(h̃, −1, 1))).
    sigma: σ̂ as the std of x ("std", paper) or the RMS of x − q̂ ("rms-about-pivot", code).
    low_entropy_sign: h̃'s convention for form="code" (the code's own is "code")."""

    t_base: float = 1.0
    tau: float = 0.1
    pivot: float = 0.8
    form: str = "paper"
    sigma: str = "std"
    low_entropy_sign: str = "paper"

    def __post_init__(self) -> None:
        positive(self.t_base, "t_base")
        positive(self.tau, "tau", allow_zero=True)
        in_range(self.pivot, "pivot", 0.0, 1.0)
        choice(self.form, "form", ("paper", "code"))
        choice(self.sigma, "sigma", SIGMAS)
        choice(self.low_entropy_sign, "low_entropy_sign", SIGNS)


@dataclass(frozen=True)
class EntropyStats:
    """Batch statistics of x = log H over valid tokens: q the ρ-quantile, sigma σ (≥ 0), d_pos = max(x − q) ≥ 0
    and d_neg = max(q − x) ≥ 0 (h_max = d_pos/σ, h_min = −d_neg/σ). n = number of valid tokens (0: no statistics)."""

    q: float
    sigma: float
    d_pos: float
    d_neg: float
    n: int


# --------------------------------------------------------------------------- entropy signal
def _entropy(entropy, mask) -> np.ndarray:
    """Validated entropies (B, T), ≥ 0 at valid positions, 0 at padding."""
    H = masked_array(entropy, "entropy", mask)
    if (H[mask] < 0).any():
        raise fail("entropy", f"a negative value {H[mask].min()!r}", "entropies ≥ 0 at valid positions")
    return H


def log_entropy(H: np.ndarray) -> np.ndarray:
    """x = log max(H, 10⁻⁸), elementwise (the code's floor keeps H = 0 finite)."""
    return np.log(np.maximum(H, ENTROPY_FLOOR))


def quantile_nearest(values: np.ndarray, rho: float) -> float:
    """Q_ρ: the order statistic sorted(values)[round(ρ (n − 1))] (round half to even), values 1-D non-empty."""
    k = int(round(float(rho) * (values.size - 1)))
    return float(np.sort(values)[k])


def entropy_statistics(entropy, mask, pivot: float = 0.8, sigma: str = "std") -> EntropyStats:
    """q = Q_ρ(x), σ, d_pos, d_neg over the valid tokens of (B, T) entropies; all 0 with n = 0 if none is valid."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    in_range(pivot, "pivot", 0.0, 1.0)
    choice(sigma, "sigma", SIGMAS)
    x = log_entropy(_entropy(entropy, M))[M]  # (n,)
    if x.size == 0:
        return EntropyStats(0.0, 0.0, 0.0, 0.0, 0)
    q = quantile_nearest(x, pivot)
    s = float(x.std()) if sigma == "std" else float(np.sqrt(np.mean((x - q) ** 2)))
    return EntropyStats(q, s, float(max((x - q).max(), 0.0)), float(max((q - x).max(), 0.0)), int(x.size))


def entropy_signal(x: np.ndarray, stats: EntropyStats, sign: str = "paper") -> np.ndarray:
    """h̃ (same shape as x): (x − q)/d_pos above the pivot; (x − q)/d_neg at or below it ("paper", in [−1, 0])
    or (q − x)/d_neg ("code", in [0, 1]). A zero d (no token on that side) maps that side to ±1 (its limit)."""
    choice(sign, "low_entropy_sign", SIGNS)
    d = x - stats.q
    up = d / stats.d_pos if stats.d_pos > 0 else np.sign(d)
    down = d / stats.d_neg if stats.d_neg > 0 else np.sign(d)
    low = down if sign == "paper" else -down
    return np.where(d > 0, up, low)


def token_entropy_signal(entropy, mask, config: HAPOConfig | None = None,
                         stats: EntropyStats | None = None) -> np.ndarray:
    """h̃ (B, T) of the batch's valid tokens (0 at padding), from the batch's statistics or the given ones."""
    cfg = config or HAPOConfig()
    M = as_mask(mask, "mask")
    x = log_entropy(_entropy(entropy, M))
    st = stats if stats is not None else entropy_statistics(entropy, M, cfg.pivot)
    if st.n == 0:
        return np.zeros(M.shape)
    return np.where(M, entropy_signal(x, st, cfg.low_entropy_sign), 0.0)


# --------------------------------------------------------------------------- (A) temperature
def adaptive_temperature(entropy, mask, prev_entropy, prev_mask, config: HAPOTemperatureConfig | None = None):
    """T (B, T) for the tokens being sampled, from the previous step's entropy statistics (0 at padding).

    Paper form T = T_base(1 + τ (x − q̂)/σ̂) (σ̂ floored at 10⁻⁴, the code's variance floor); code form
    T = T_base(1 + τ clip(h̃, −1, 1)). No valid previous token: no statistics yet, T = T_base (as the code's
    first step). A non-positive temperature (τ z ≤ −1, paper form) is rejected.
    """
    cfg = config or HAPOTemperatureConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    x = log_entropy(_entropy(entropy, M))
    pM = as_mask(prev_mask, "prev_mask")
    st = entropy_statistics(prev_entropy, pM, cfg.pivot, cfg.sigma)
    if st.n == 0:
        return np.where(M, cfg.t_base, 0.0)
    if cfg.form == "paper":
        signal = (x - st.q) / max(st.sigma, SIGMA_FLOOR)  # z
    else:
        signal = np.clip(entropy_signal(x, st, cfg.low_entropy_sign), -1.0, 1.0)
    T = cfg.t_base * (1.0 + cfg.tau * signal)
    if (T[M] <= 0).any():
        raise fail("entropy", f"a token with τ·z = {float((cfg.tau * signal)[M].min()):.3g} ≤ −1",
                   "τ·(x − q̂)/σ̂ > −1 so that the temperature stays positive")
    return np.where(M, T, 0.0)


# --------------------------------------------------------------------------- (B) token-level group average
def token_group_average(R: np.ndarray, L: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    """A_i = (R_i − μ_g)/(σ_g + ε) (B,) with token-weighted mean and population std over the group's tokens.

    R rewards (B,), L valid-token counts (B,), g group ids (B,). A group without valid tokens gets 0; σ_g = 0
    (singleton group, all-equal rewards) gives 0.
    """
    A = np.zeros_like(R)
    for k in np.unique(g):
        rows = g == k
        N = L[rows].sum()
        if N == 0:
            continue
        counted = R[rows & (L > 0)]
        if (counted == counted[0]).all():  # one distinct reward among the rollouts with tokens: spread exactly 0
            continue
        mu = (L[rows] * R[rows]).sum() / N
        sd = np.sqrt((L[rows] * (R[rows] - mu) ** 2).sum() / N)
        A[rows] = (R[rows] - mu) / (sd + eps)
    return A


def hapo_advantage(rewards, group, mask, config: HAPOAdvantageConfig | None = None) -> np.ndarray:
    """Token-level group-average advantage (B, T), broadcast over each rollout's valid tokens (0 at padding)."""
    cfg = config or HAPOAdvantageConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    L = M.sum(axis=1).astype(np.float64)  # (B,)
    A = token_group_average(R, L, g, cfg.eps)
    if cfg.fallback_threshold is not None:
        grpo = grpo_outcome_advantage(R, g, GRPOConfig(ddof=1, eps=1e-6, singleton="mean0std1"))  # verl's GRPO
        for k in np.unique(g):
            rows = g == k
            if (np.abs(A[rows & (L > 0)]) >= cfg.fallback_threshold).any():
                A[rows] = grpo[rows]
    return np.where(M, A[:, None], 0.0)


# --------------------------------------------------------------------------- (C), (D) and the loss
def adaptive_clip(h: np.ndarray, eps_low: float, eps_high: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(ε_L, ε_R) (same shape as h): ε_L = ε_L^b(1 − α h̃) where h̃ ≤ 0, ε_R = ε_R^b(1 + α h̃) where h̃ > 0."""
    eps_L = np.where(h <= 0, eps_low * (1.0 - alpha * h), eps_low)
    eps_R = np.where(h > 0, eps_high * (1.0 + alpha * h), eps_high)
    return eps_L, eps_R


def neutral_zone(r: np.ndarray, eps_L: np.ndarray, eps_R: np.ndarray) -> np.ndarray:
    """r ∈ Z = (1 − ε_L/2, 1 + ε_R/2), elementwise bool."""
    return (r > 1.0 - eps_L / 2.0) & (r < 1.0 + eps_R / 2.0)


def redistribution_factor(h: np.ndarray, in_zone: np.ndarray, beta: float) -> np.ndarray:
    """1 + β h̃ where (h̃ > 0 and r ∉ Z) or (h̃ ≤ 0 and r ∈ Z), else 1. In [0, 1 + β] for h̃ ∈ [−1, 1], β ≤ 1."""
    active = ((h > 0) & ~in_zone) | ((h <= 0) & in_zone)
    return np.where(active, 1.0 + beta * h, 1.0)


def hapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: HAPOConfig | None = None, group=None,
              entropy=None, entropy_stats: EntropyStats | None = None):
    """HAPO policy loss and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; entropy (B, T) ≥ 0 at valid positions (None: every
    token at the pivot, h̃ = 0); ``ref_logp`` accepted and unused; ``group`` (B,) for agg='group-token-mean';
    ``entropy_stats``: the full batch's statistics when this call sees a shard (None: this batch's).
    Returns: (loss, dlogp (B, T)) with dlogp = −c·Â·r on the unclipped branch, 0 elsewhere and at padding.
    """
    cfg = config or HAPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    h = np.zeros_like(r) if entropy is None else token_entropy_signal(entropy, mask, cfg, entropy_stats)
    if cfg.adaptive_clip:
        eps_L, eps_R = adaptive_clip(h, cfg.eps_low, cfg.eps_high, cfg.clip_alpha)
    else:
        eps_L, eps_R = np.full_like(r, cfg.eps_low), np.full_like(r, cfg.eps_high)
    A = adv
    if cfg.adaptive_advantage:
        zone = neutral_zone(r, eps_L, eps_R) if cfg.zone_uses_adaptive_clip else \
            neutral_zone(r, np.full_like(r, cfg.eps_low), np.full_like(r, cfg.eps_high))
        A = adv * redistribution_factor(h, zone, cfg.adv_beta)
    ell, dell_dr = clipped_surrogate(r, A, eps_L, eps_R)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, A, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


# --------------------------------------------------------------------------- registry
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _entropies(rng: np.random.Generator, shape) -> np.ndarray:
    """Token entropies ≥ 0: a heavy low mode with a tail (as LLM token entropies are), some exact zeros."""
    H = rng.gamma(0.5, 1.0, size=shape)
    return np.where(rng.random(shape) < 0.05, 0.0, H)


def _loss_inputs(rng: np.random.Generator) -> dict:
    """A policy batch with token entropies (B, T); ratios spread so both sides of the neutral zone are hit."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old = logp - rng.normal(scale=float(rng.choice([0.05, 0.2, 0.5])), size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)
    if rng.random() < 0.3:
        adv = adv + rng.normal(scale=0.5, size=(B, T))
    out = {"logp": logp, "old_logp": old, "adv": adv, "entropy": _entropies(rng, (B, T))}
    for k in out:
        out[k] = np.where(mask, out[k], rng.choice(GARBAGE, size=(B, T)))
    return {**out, "mask": mask, "group": np.arange(B) // 2}


def _temperature_inputs(rng: np.random.Generator) -> dict:
    """Entropies of the tokens being sampled and of the previous step's batch (ragged, NaN/inf padding)."""
    out = {}
    for name in ("", "prev_"):
        B, T = int(rng.integers(1, 6)), int(rng.integers(1, 8))
        m = np.arange(T)[None, :] < rng.integers(0 if name else 1, T + 1, size=B)[:, None]
        out[name + "entropy"] = np.where(m, 0.02 + _entropies(rng, (B, T)), rng.choice(GARBAGE, size=(B, T)))
        out[name + "mask"] = m
    return out


_NOTES = "our notes on the paper (papers_A.md §10, transcribed from the PDF); the paper text was not reachable here"
_CODE = "github.com/starriver030515/HAPO verl/trainer/ppo/core_algos.py"

EQUATIONS = (
    Equation("hapo-entropy-signal", "h = (log H − Q_ρ(log H))/σ;  h̃ = h/h_max (h > 0), h/|h_min| (h ≤ 0);  ρ = 0.8",
             "arXiv 2509.16591, method (entropy normalisation)", "secondary", "entropy_signal",
             note=f"from {_NOTES}; read in {_CODE} compute_entropy_h (nearest quantile, log H floored at 1e-8), which "
                  "divides by h_min < 0 and so maps h ≤ 0 to [0, 1]: low_entropy_sign='code'"),
    Equation("hapo-temperature", "T = T_base (1 + τ (log H − q̂)/σ̂), T_base = 1, τ = 0.1, previous step's q̂, σ̂",
             "arXiv 2509.16591, Adaptive Temperature Sampling", "secondary", "adaptive_temperature",
             note=f"from {_NOTES}. Official vllm/v1/sample/sampler.py compute_entropy_based_temperature uses "
                  "T(1 + τ·clip(h̃, −1, 1)) with τ = 0.05 and the code's h̃ sign (form='code')"),
    Equation("hapo-token-group-average", "A_i = (R_i − μ_tok)/(σ_tok + ε), μ, σ over all valid tokens of the group",
             "arXiv 2509.16591, Token Level Group Average", "official-code", "token_group_average",
             note=f"read in {_CODE} compute_hapo_outcome_advantage (population std, ε = 1e-6); the notes agree. The "
                  "code's GRPO fallback when some |A| ≥ 5 is not in the notes: fallback_threshold=5.0"),
    Equation("hapo-redistribution", "Â = A(1 + β h̃) if (h̃ > 0, r ∉ Z) or (h̃ ≤ 0, r ∈ Z), else A; "
             "Z = (1 − ε_L/2, 1 + ε_R/2), β = 1", "arXiv 2509.16591, Differential Advantage Redistribution",
             "official-code", "redistribution_factor",
             note=f"read in {_CODE} ada_advantage (zone from the adapted ranges, strict inequalities); the notes "
                  "give the same rule"),
    Equation("hapo-adaptive-clip", "ε_L = ε_L^b(1 − α h̃) for h̃ ≤ 0; ε_R = ε_R^b(1 + α h̃) for h̃ > 0; α = 1",
             "arXiv 2509.16591, Asymmetric Adaptive Clipping", "official-code", "adaptive_clip",
             note=f"read in {_CODE} ada_clip; base ranges 0.2/0.28 per the notes (DAPO settings), the official "
                  "recipes use 0.2/0.2"),
    Equation("hapo-loss", "ℓ = −min(r Â, clip(r, 1 − ε_L, 1 + ε_R) Â); ℓ ← min(ℓ, −c Â) for Â < 0; token-mean",
             "arXiv 2509.16591 (DAPO-based objective)", "official-code", "hapo_loss",
             note=f"read in {_CODE} compute_policy_loss (h̃, ε and Â under no_grad); c = 3 per the notes, 10 in "
                  "the official recipes"),
)

register(Spec(
    name="hapo", kind="policy_loss", family="ratio/clipping", paper=HAPO_PAPER, status="implemented",
    summary="entropy-adaptive clip range and advantage redistribution on a dual-clip PPO loss (needs entropy)",
    fn=hapo_loss, config_cls=HAPOConfig, equations=EQUATIONS, outputs=("loss", "dlogp"), make_inputs=_loss_inputs,
    extras={"entropy_statistics": entropy_statistics, "token_entropy_signal": token_entropy_signal,
            "adaptive_clip": adaptive_clip, "redistribution_factor": redistribution_factor,
            "conformance_configs": lambda: [
                (f"{name}", ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("code-sign", {"low_entropy_sign": "code"}),
                    ("code-recipe", {"low_entropy_sign": "code", "eps_high": 0.2, "dual_clip_c": 10.0}),
                    ("alpha=2,beta=0.5", {"clip_alpha": 2.0, "adv_beta": 0.5}))],
            "batch_coupled": "the entropy quantile and h_max/h_min are batch statistics: shards add up only with the "
                             "full batch's entropy_stats (properties/test_hapo.py::"
                             "test_sharding_with_full_batch_entropy_stats)"},
    gradient="∂ℓ/∂logp = −Â·r on the unclipped branch (per-token range [1 − ε_L, 1 + ε_R]); 0 where the clip or the "
             "dual-clip cap binds. h̃, ε_L, ε_R depend on entropies only; Â depends on r only through the "
             "piecewise-constant zone indicator (a.e. derivative, as the code's no_grad)",
    properties=(
        "properties/test_hapo.py::test_hand_gradient_matches_finite_differences: dlogp = central FD (float64)",
        "properties/test_hapo.py::test_entropy_signal_range_and_extremes: h̃ ∈ [−1, 1], attains ±1, 0 at the pivot",
        "properties/test_hapo.py::test_entropy_signal_monotone_in_entropy: higher entropy ⇒ higher h̃ (paper sign)",
        "properties/test_hapo.py::test_code_sign_convention_maps_low_entropy_to_positive: code h̃ = |paper h̃| "
        "for h ≤ 0, so low-entropy tokens get the high-entropy treatment (ε_R widened, ε_L never)",
        "properties/test_hapo.py::test_clip_ranges_within_base_and_doubled: ε ∈ [base, (1 + α) base], one side "
        "widened per token",
        "properties/test_hapo.py::test_redistribution_factor_range_and_rule: factor ∈ [0, 1 + β], the stated rule",
        "properties/test_hapo.py::test_low_entropy_tokens_can_be_pushed_down_further: Abstract (D): aggressive "
        "reduction for low-entropy tokens, exploration room for high-entropy ones",
        "properties/test_hapo.py::test_components_off_is_ppo_dual_clip: (C), (D) off ⇒ PPO + dual clip (reference)",
        "properties/test_hapo.py::test_without_entropy_every_token_is_at_the_pivot: entropy=None ⇒ PPO + dual clip",
        "properties/test_hapo.py::test_dual_clip_bounds_the_loss: ℓ ≤ −c Â for Â < 0",
        "properties/test_hapo.py::test_sharding_with_full_batch_entropy_stats: shards add up with global stats",
        "untested: HAPO consistently outperforms DAPO on math, code and logic benchmarks across model scales (abstract) "
        "— an empirical claim about LLM training runs, not reproducible on this project's small problems",
    ),
))

register(Spec(
    name="hapo_advantage", kind="advantage", family="advantage", paper=HAPO_PAPER, status="implemented",
    summary="HAPO's token-level group average: outcome z-score with token-weighted group mean and std",
    fn=hapo_advantage, config_cls=HAPOAdvantageConfig, outputs=("adv",),
    equations=(EQUATIONS[2],),
    extras={"conformance_configs": lambda: [("code-fallback", {"fallback_threshold": 5.0}, None),
                                            ("code-fallback-low", {"fallback_threshold": 1.0}, None)]},
    properties=(
        "properties/test_hapo.py::test_token_level_advantages_sum_to_zero_per_group: Σ_i L_i A_i = 0 "
        "(GRPO's do not, with unequal lengths)",
        "properties/test_hapo.py::test_token_level_std_is_one: population std over the group's tokens = 1 (ε = 0)",
        "properties/test_hapo.py::test_equal_lengths_recover_population_grpo: 'non-biased': equal L ⇒ GRPO (ddof 0)",
        "properties/test_hapo.py::test_affine_invariance_in_rewards",
        "properties/test_hapo.py::test_degenerate_groups_are_zero: singleton / all-equal / empty groups ⇒ 0",
        "properties/test_hapo.py::test_code_fallback_to_grpo: the official code's |A| ≥ 5 fallback (option)",
    ),
))

register(Spec(
    name="hapo_temperature", kind="sampler", family="sampling", paper=HAPO_PAPER, status="implemented",
    summary="HAPO's adaptive sampling temperature from token entropy and the previous step's statistics",
    fn=adaptive_temperature, config_cls=HAPOTemperatureConfig, outputs=("temperature",),
    make_inputs=_temperature_inputs, equations=(EQUATIONS[1], EQUATIONS[0]),
    extras={"conformance_configs": lambda: [
        ("code-form", {"form": "code", "tau": 0.05, "low_entropy_sign": "code", "sigma": "rms-about-pivot"},
         "make-inputs-0"),
        ("code-form-paper-sign", {"form": "code", "tau": 0.05}, "make-inputs-1"),
        ("rms-sigma", {"sigma": "rms-about-pivot"}, "make-inputs-2")]},
    properties=(
        "properties/test_hapo.py::test_temperature_positive_iff_tau_z_above_minus_one: T > 0 ⇔ τ z > −1",
        "properties/test_hapo.py::test_temperature_rises_with_entropy: exploration at high-entropy tokens, "
        "T = T_base at the pivot, below it for low-entropy tokens (paper form)",
        "properties/test_hapo.py::test_code_temperature_bounds_and_sign: code form ∈ [T(1 − τ), T(1 + τ)]; with "
        "the code's sign no token is cooled",
        "properties/test_hapo.py::test_first_step_has_no_statistics: no previous tokens ⇒ T = T_base",
    ),
))

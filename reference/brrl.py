"""BRRL / BPO / GBPO: Bounded Ratio Reinforcement Learning — a bounded-ratio target policy and a loss towards it.

Ao, Chen, Lee, Wahd, Czarnobai, Fürnstahl, Schölkopf, Krause, "Bounded Ratio Reinforcement Learning",
arXiv 2604.18578 (Apr 2026). Official code: github.com/bounded-ratio-rl/bounded_ratio_rl — ``src/sb3/BPO.py``
(MuJoCo/Atari), ``src/rsl_rl/rsl_bpo.py`` (IsaacLab), ``src/verl/trainer/ppo/core_algos.py`` (GBPO,
``compute_gbpo_outcome_advantage_and_target`` and ``compute_policy_loss_gbpo``).

Sources read: the abstract, the authors' project page (bounded-ratio-rl.github.io/brrl: the problem, the
solution of Thm 4.1 "in many cases", the claim of Thm 4.2) and the official code. The paper's body (the
full statements of Thms 4.1/4.2, its regularised problem, the BPO lower bound) was not reachable: what
comes from it below is marked, the rest is the code or our derivation.

Notation: π0 the old policy, r = π/π0, Q and A = Q − V of π0 (one state: arrays over actions, last axis);
c_l = 1 − ε_low, c_h = 1 + ε_high the ratio bounds; Δ = ε_low + ε_high; κ = ε_low/Δ the π0-mass that
gets the top ratio (κ = ½ for ε_low = ε_high); σ the logistic sigmoid.

1. Bounded-ratio problem (page; Thm 4.1): per state, max_r E_{π0}[r·A] s.t. c_l ≤ r ≤ c_h and E_{π0}[r] = 1.
   It is a linear program; its solution gives the top κ of π0-mass (ranked by Q) the ratio c_h and the
   rest c_l, with a fractional ratio on the action(s) at the threshold μ (``bounded_ratio_optimum``):
       r*(a) = c_h  (Q(a) > μ),   c_l  (Q(a) < μ),   c_l + Δ·(κ − π0(Q > μ))/π0(Q = μ)  (Q(a) = μ)
   For ε_low = ε_high = ε and no π0-mass sitting on the median this is the page's Thm 4.1 form
       π*(a) = [1 + ε·sign(Q(a) − μ)]·π0(a),   μ the π0-median of Q.
   The general (tie) case and the asymmetric bounds are ours (the page says both exist, §4.6 links the
   asymmetric case to the cross-entropy method: c_l = 0 keeps the top-κ "elite" of π0, renormalised).
2. Improvement (page, Thm 4.2): η(π*) − η(π0) ≥ ε·B ≥ 0, B > 0 iff the median advantage is non-zero.
   Per state, E_{π0}[(r* − 1)·A] = E_{π0}[(r* − 1)(Q − μ)] = ε·E_{π0}|Q − μ| (``improvement_term``); by the
   performance-difference lemma this gives the bound with B = (1/(1−γ))·… ≥ E_{s∼d0} E_{π0}|Q − μ| (ours).
3. Regularised target (official code, SB3 and rsl_rl):  r*_λ = c_l + Δ·σ((Q − u)/λ)   (``target_ratio``),
   u a learned baseline. We show it maximises E_{π0}[r·Q] + λΔ·E_{π0}[H_b((r − c_l)/Δ)] (H_b the binary
   entropy) under E_{π0}[r] = 1 when u solves E_{π0}σ((Q − u)/λ) = κ (``normalizing_baseline``) — one
   regulariser with the code's optimum (reconstructed, the paper's was not read). λ → 0 gives item 1.
   The code learns u with softplus(Q − u) − ½(Q − u) (``u_loss``, coefficient 0.5); its stationary point is
   E σ(Q − u) = ½, which normalises r*_λ only for λ = 1 (flagged in the properties).
4. BPO loss (official code, "TV" variant; the paper's "advantage-weighted divergence"):
       ℓ = (|Â| + c_tv)·|r − sg(r*)|,    r* = c_l + Δ·σ(z)
   z = ``target_adv`` ((Q − u)/λ) when given, else z = Â/λ (the code's ``use_median=False`` branch, u = V).
   c_tv = 0 as in SB3; rsl_rl's ``adv_TV`` adds ``tv_loss_coef``·|r − r*| (our ``tv_coef``). The code's
   other variants (MSE, log-TV, forward/reverse KL, JS) are not implemented.
5. GBPO (official verl code): for the rollouts of a prompt with scores R, Â_i = (R_i − mean R)/(std R + ε)
   and t_i = (R_i − median R)/(std R + ε)/T, r*_i = c_l + Δ·σ(t_i), ℓ_it = |Â_i|·|r_it − r*_i|, token-mean.
   The median commutes with increasing affine maps, so t_i = (Â_i − median_g Â)/T: ``gbpo_loss`` takes the
   GRPO advantage and the prompt ids and forms the target itself (equal to verl's; tested).

Gradient (derived here, checked by central finite differences): r* does not depend on logp (stop-gradient)
and ∂r/∂logp = r, so
       ∂ℓ/∂logp = (|Â| + c_tv)·sign(r − r*)·r
which pushes r towards r* from either side; at r = r* the subgradient 0 is used (torch's |x|' at 0).

Conventions and numerics: σ is computed from e^{−|z|} (no overflow for any finite z; λ = 1e-3 or T = 1e-4
saturate it to exactly 0 or 1 in float64 once |z| > ~37, giving r* = c_l or c_h). Masked positions are never
read; a row with no valid token contributes nothing and takes no part in a group median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, group_ids, in_range, masked_array, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

BRRL_PAPER = Paper(arxiv="2604.18578", title="Bounded Ratio Reinforcement Learning", year=2026)
SINGLETONS = ("median-self", "median-zero")


def _check_bounds(eps_low: float, eps_high: float) -> tuple[float, float]:
    """ε_low ∈ [0, 1] (a ratio c_l = 1 − ε_low ≥ 0), ε_high ≥ 0, not both 0."""
    el = in_range(eps_low, "eps_low", 0.0, 1.0)
    eh = positive(eps_high, "eps_high", allow_zero=True)
    if el + eh == 0:
        raise fail("eps_low + eps_high", "0", "a ratio interval of positive width")
    return el, eh


@dataclass(frozen=True)
class BRRLConfig(common.AggregationOptions):
    """BPO loss. eps_low/eps_high: ratio bounds 1 − ε_low ≤ r ≤ 1 + ε_high (code: clip_ratio = 0.3 both);
    lam: temperature λ of the target when it is formed from ``adv`` (SB3 default 1e-3); tv_coef: rsl_rl's
    extra unweighted |r − r*| term (0 = SB3/verl). agg: token-mean (the code's mean over samples)."""

    eps_low: float = 0.3
    eps_high: float = 0.3
    lam: float = 1e-3
    tv_coef: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bounds(self.eps_low, self.eps_high)
        positive(self.lam, "lam")
        positive(self.tv_coef, "tv_coef", allow_zero=True)


@dataclass(frozen=True)
class GBPOConfig(common.AggregationOptions):
    """GBPO loss. eps_low/eps_high: ratio bounds (authors' README and scripts: 0.3); temperature: T of the
    target (README/scripts 1e-4; verl's yaml default 1.0); singleton: target of a prompt with one counted
    rollout — "median-self" (its own median: t = 0) or "median-zero" (verl: median taken as 0, t = Â/T).
    agg: token-mean (verl's default loss_agg_mode)."""

    eps_low: float = 0.3
    eps_high: float = 0.3
    temperature: float = 1e-4
    singleton: str = "median-self"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bounds(self.eps_low, self.eps_high)
        positive(self.temperature, "temperature")
        choice(self.singleton, "singleton", SINGLETONS)


# --------------------------------------------------------------------------- the exact per-state problem
def _policy_and_values(pi0, Q) -> tuple[np.ndarray, np.ndarray]:
    """π0 (..., A) a distribution on the last axis (≥ 0, sums to 1) and Q (..., A) finite, same shape."""
    p = np.asarray(pi0, dtype=np.float64)
    q = np.asarray(Q, dtype=np.float64)
    if p.ndim == 0 or p.shape != q.shape:
        raise fail("Q", f"shape {q.shape}", f"the shape of pi0, {p.shape} (actions on the last axis)")
    if not (np.isfinite(p).all() and (p >= 0).all()) or not np.allclose(p.sum(axis=-1), 1.0, atol=1e-9):
        raise fail("pi0", "values that are not a distribution on the last axis", "π0 ≥ 0 summing to 1")
    if not np.isfinite(q).all():
        raise fail("Q", "non-finite values", "finite action values")
    return p, q


def top_mass(eps_low: float, eps_high: float) -> float:
    """κ = ε_low/(ε_low + ε_high): the π0-mass that gets the top ratio c_h, from E_{π0}[r] = 1."""
    el, eh = _check_bounds(eps_low, eps_high)
    return el / (el + eh)


def threshold(pi0, Q, kappa: float) -> np.ndarray:
    """μ (...,): the largest value of Q (over actions with π0 > 0) with π0(Q ≥ μ) ≥ κ — the π0-quantile of
    Q at level 1 − κ; for κ = ½ the (upper) π0-median of Q."""
    p, q = _policy_and_values(pi0, Q)
    k = in_range(kappa, "kappa", 0.0, 1.0)
    P, V = p.reshape(-1, p.shape[-1]), q.reshape(-1, q.shape[-1])
    mu = np.empty(P.shape[0])
    for i in range(P.shape[0]):
        support = P[i] > 0
        for v in np.unique(V[i][support])[::-1]:  # atoms of Q, descending
            mu[i] = v
            if P[i][support & (V[i] >= v)].sum() >= k - 1e-12:
                break
    return mu.reshape(p.shape[:-1])


def bounded_ratio_optimum(pi0, Q, eps_low: float, eps_high: float) -> np.ndarray:
    """r* (..., A): the solution of max E_{π0}[r·Q] s.t. c_l ≤ r ≤ c_h, E_{π0}[r] = 1 (per state, last axis).

    Thm 4.1 of arXiv 2604.18578 (page form: r* = 1 + ε·sign(Q − μ)); ties at the threshold μ share the
    fractional ratio that makes E_{π0}[r*] = 1 exactly. Actions with π0 = 0 get the ratio of their side.
    """
    el, eh = _check_bounds(eps_low, eps_high)
    p, q = _policy_and_values(pi0, Q)
    kappa = el / (el + eh)
    mu = threshold(p, q, kappa)[..., None]  # (..., 1)
    above = np.where(q > mu, p, 0.0).sum(axis=-1, keepdims=True)
    at = np.where(q == mu, p, 0.0).sum(axis=-1, keepdims=True)
    frac = np.clip(np.divide(kappa - above, at, out=np.zeros_like(at), where=at > 0), 0.0, 1.0)
    r_mu = (1.0 - el) + (el + eh) * frac
    return np.where(q > mu, 1.0 + eh, np.where(q < mu, 1.0 - el, r_mu))


def optimal_policy(pi0, Q, eps_low: float, eps_high: float) -> np.ndarray:
    """π* = r*·π0 (..., A), the bounded-ratio optimal policy (Thm 4.1)."""
    p, _ = _policy_and_values(pi0, Q)
    return bounded_ratio_optimum(pi0, Q, eps_low, eps_high) * p


def improvement_term(pi0, Q, r) -> np.ndarray:
    """E_{π0}[(r − 1)·(Q − V)] (...,) with V = E_{π0}[Q]: the surrogate gain of the ratio r over π0 (Thm 4.2's
    per-state term; equals ε·E_{π0}|Q − μ| at r = r* with ε_low = ε_high = ε)."""
    p, q = _policy_and_values(pi0, Q)
    r = np.asarray(r, dtype=np.float64)
    A = q - (p * q).sum(axis=-1, keepdims=True)
    return (p * (r - 1.0) * A).sum(axis=-1)


# --------------------------------------------------------------------------- the regularised (smooth) target
def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) from e^{−|x|} ∈ [0, 1]: no overflow for any x (±inf included)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def target_ratio(z, eps_low: float, eps_high: float) -> np.ndarray:
    """r* = 1 − ε_low + (ε_low + ε_high)·σ(z), elementwise; z = (Q − u)/λ (BPO) or GBPO's t. Official code
    (SB3 ``BPO.train``, verl ``compute_policy_loss_gbpo``). Values in [c_l, c_h]; σ(0) gives 1 + (ε_h − ε_l)/2."""
    el, eh = _check_bounds(eps_low, eps_high)
    return (1.0 - el) + (el + eh) * _sigmoid(z)


def normalizing_baseline(pi0, Q, lam: float, eps_low: float, eps_high: float) -> np.ndarray:
    """u (...,) with E_{π0}[σ((Q − u)/λ)] = κ, i.e. E_{π0}[r*_λ] = 1 (needs ε_low, ε_high > 0).

    The left side decreases strictly in u from 1 to 0, so the root is unique (found by Brent's method)."""
    el, eh = _check_bounds(eps_low, eps_high)
    if el == 0 or eh == 0:
        raise fail("eps_low, eps_high", f"{el}, {eh}", "both > 0 (else no finite baseline normalises r*)")
    lam = positive(lam, "lam")
    p, q = _policy_and_values(pi0, Q)
    kappa = el / (el + eh)
    P, V = p.reshape(-1, p.shape[-1]), q.reshape(-1, q.shape[-1])
    u = np.empty(P.shape[0])
    for i in range(P.shape[0]):
        lo, hi = V[i].min() - 60.0 * lam, V[i].max() + 60.0 * lam  # σ is within e^-60 of 1 / of 0 there

        def f(x, i=i):
            return float((P[i] * _sigmoid((V[i] - x) / lam)).sum()) - kappa

        u[i] = optimize.brentq(f, lo, hi, xtol=1e-12 * lam, maxiter=500)
    return u.reshape(p.shape[:-1])


def regularized_objective(pi0, Q, r, lam: float, eps_low: float, eps_high: float) -> np.ndarray:
    """E_{π0}[r·Q] + λΔ·E_{π0}[H_b(p)], p = (r − c_l)/Δ ∈ [0, 1], H_b the binary entropy (...,).

    Reconstructed (not the paper's text): its maximiser under E_{π0}[r] = 1 is ``target_ratio((Q − u)/λ)``
    with u = ``normalizing_baseline`` (stationarity: Q + λ log((1−p)/p) = u)."""
    el, eh = _check_bounds(eps_low, eps_high)
    p0, q = _policy_and_values(pi0, Q)
    d = el + eh
    x = np.clip((np.asarray(r, dtype=np.float64) - (1.0 - el)) / d, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(x > 0, x * np.log(x), 0.0) + np.where(x < 1, (1 - x) * np.log1p(-x), 0.0))
    return (p0 * (np.asarray(r) * q + positive(lam, "lam") * d * h)).sum(axis=-1)


def u_loss(Q, u) -> tuple[np.ndarray, np.ndarray]:
    """The code's baseline loss softplus(Q − u) − ½(Q − u) and its derivative ½ − σ(Q − u) w.r.t. u
    (elementwise). SB3 ``BPO.train`` (``use_median=True``, u_coef = 0.5); rsl_rl writes the same function as
    softplus(−|x|) + |x|/2. Convex in u; its expectation is stationary where E σ(Q − u) = ½."""
    x = np.asarray(Q, dtype=np.float64) - np.asarray(u, dtype=np.float64)
    if not np.isfinite(x).all():
        raise fail("Q - u", "non-finite values", "finite values and baseline")
    return np.logaddexp(0.0, x) - 0.5 * x, 0.5 - _sigmoid(x)


# --------------------------------------------------------------------------- the losses
def bpo_token_loss(r: np.ndarray, adv: np.ndarray, r_star: np.ndarray, tv_coef: float = 0.0):
    """ℓ = (|Â| + c_tv)·|r − r*| and ∂ℓ/∂r = (|Â| + c_tv)·sign(r − r*), both (B, T)."""
    w = np.abs(adv) + tv_coef
    return w * np.abs(r - r_star), w * np.sign(r - r_star)


def _bpo_core(logp, old_logp, adv, mask, z, eps_low, eps_high, tv_coef, cfg, group):
    """Shared by BPO and GBPO: ratio, target from z (B, T), token loss, aggregation; returns (loss, dlogp)."""
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T) each; dr = r, or 0 where clamped
    r_star = np.where(mask, target_ratio(z, eps_low, eps_high), 1.0)  # (B, T), constant (stop-gradient)
    ell, dell_dr = bpo_token_loss(r, adv, r_star, tv_coef)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


def bpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: BRRLConfig | None = None, target_adv=None,
             group=None):
    """BPO loss (TV variant) and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float, Â the weight; mask (B, T) bool; ``target_adv`` (B, T) optional,
    the sigmoid's argument z = (Q − u)/λ of the target (None: z = Â/λ, the code's u = V branch);
    ``ref_logp`` accepted and unused; ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss, dlogp) with dlogp = c ⊙ (|Â| + c_tv) ⊙ sign(r − r*) ⊙ r, zero at masked positions.
    """
    cfg = config or BRRLConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    if target_adv is None:
        z = adv / cfg.lam  # (B, T); |Â|/λ may exceed float range only for |Â| > 1e305: σ takes ±inf fine
    else:
        z = masked_array(target_adv, "target_adv", mask)
    return _bpo_core(logp, old_logp, adv, mask, z, cfg.eps_low, cfg.eps_high, cfg.tv_coef, cfg, group)


def sequence_advantage(adv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Â_i = masked token-mean of adv over row i (B,) (the outcome advantage when adv is broadcast); 0 for
    a row with no valid token."""
    n = mask.sum(axis=1).astype(np.float64)
    return np.divide(np.where(mask, adv, 0.0).sum(axis=1), n, out=np.zeros(mask.shape[0]), where=n > 0)


def gbpo_target(A: np.ndarray, counted: np.ndarray, group, temperature: float,
                singleton: str = "median-self") -> np.ndarray:
    """t_i = (Â_i − median_{j ∈ g(i)} Â_j)/T (B,), the median over the counted rows of i's prompt.

    ``group`` None: all rows form one group. A prompt with one counted row: t = 0 ("median-self") or Â/T
    ("median-zero", verl). Rows not counted get t = 0. verl ``compute_gbpo_outcome_advantage_and_target``
    (there from the scores: (R_i − median R)/(std + ε)/T — the same number, since the median commutes with
    x ↦ (x − mean)/(std + ε))."""
    T = positive(temperature, "temperature")
    choice(singleton, "singleton", SINGLETONS)
    g = np.zeros(A.shape[0], dtype=np.int64) if group is None else group_ids(group, A.shape[0])
    t = np.zeros_like(A)
    for k in np.unique(g[counted]):
        rows = counted & (g == k)
        if rows.sum() == 1:
            med = 0.0 if singleton == "median-zero" else A[rows][0]
        else:
            med = float(np.median(A[rows]))
        t[rows] = (A[rows] - med) / T
    return t


def gbpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: GBPOConfig | None = None, group=None):
    """GBPO loss (group-relative BPO) and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float — adv the GRPO advantage Â (the weight, and through its group
    median the target); mask (B, T) bool; ``group`` (B,) prompt ids (None: the whole batch is one prompt);
    ``ref_logp`` accepted and unused.
    Per token ℓ_it = |Â_it|·|r_it − r*_i|, r*_i = c_l + Δ·σ(t_i), t_i = (Â_i − median_g Â)/T with Â_i the
    row's masked token-mean advantage. Returns (loss, dlogp), dlogp = c ⊙ |Â| ⊙ sign(r − r*) ⊙ r.
    """
    cfg = config or GBPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    counted = mask.any(axis=1)  # (B,) rows with a valid token
    t = gbpo_target(sequence_advantage(adv, mask), counted, group, cfg.temperature, cfg.singleton)  # (B,)
    z = np.broadcast_to(t[:, None], mask.shape)  # (B, T)
    return _bpo_core(logp, old_logp, adv, mask, z, cfg.eps_low, cfg.eps_high, 0.0, cfg, group)


def gbpo_advantage_and_target(rewards, group, mask, temperature: float = 1e-4, eps: float = 1e-6):
    """verl's ``compute_gbpo_outcome_advantage_and_target`` from outcome scores: (Â, t) both (B, T).

    Â = (R − mean)/(std + ε) per prompt (ddof = 1), t = (R − median)/(std + ε)/T; a prompt with one rollout
    is scored against mean 0, std 1, median 0 (verl's convention). For users who start from rewards:
    ``gbpo_loss`` with this Â and ``singleton='median-zero'`` uses exactly this t."""
    from rlspec.reference.grpo import GRPOConfig, group_stats, grpo_outcome_advantage, validate_outcome

    R, g, M = validate_outcome(rewards, group, mask)
    T = positive(temperature, "temperature")
    cfg = GRPOConfig(eps=positive(eps, "eps", allow_zero=True), singleton="mean0std1")
    A = grpo_outcome_advantage(R, g, cfg)  # (B,) verl's GRPO advantage
    _, std, size = group_stats(R, g, cfg.ddof)
    std = np.where(size == 1, 1.0, std)
    med = np.zeros_like(R)
    for k in np.unique(g):
        rows = g == k
        med[rows] = 0.0 if rows.sum() == 1 else float(np.median(R[rows]))
    denom = std + cfg.eps
    t = np.divide(R - med, denom * T, out=np.zeros_like(R), where=denom > 0)  # all-equal group: R − med = 0
    return np.where(M, A[:, None], 0.0), np.where(M, t[:, None], 0.0)


# --------------------------------------------------------------------------- registry
def make_inputs(rng: np.random.Generator) -> dict:
    """A policy batch plus ``target_adv`` (z of the target, N(0, 2²)), NaN/±inf padding, so that conformance
    also exercises an explicit target."""
    B, T = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    out = {"logp": logp, "old_logp": logp + rng.normal(scale=float(rng.choice([0.05, 0.3, 1.0])), size=(B, T)),
           "adv": np.repeat(rng.normal(size=(B, 1)), T, axis=1), "target_adv": rng.normal(scale=2.0, size=(B, T))}
    for k in out:
        out[k][~mask] = rng.choice(np.array([np.nan, np.inf, -np.inf]), size=int((~mask).sum()))
    return {**out, "mask": mask, "group": np.arange(B) // 2}


_CODE = "github.com/bounded-ratio-rl/bounded_ratio_rl"
_PAGE = "the authors' project page bounded-ratio-rl.github.io/brrl (the paper body was not reachable)"

EQUATIONS_BRRL = (
    Equation("brrl-problem", "max_π E_{a∼π0}[(π/π0)·A]  s.t.  1 − ε ≤ π/π0 ≤ 1 + ε  (π normalised)",
             "arXiv 2604.18578, the problem of Thm 4.1", "paper", "bounded_ratio_optimum",
             note="read on " + _PAGE),
    Equation("brrl-optimum", "π*(a) = [1 + ε·sign(Q(a) − μ)]·π0(a),  μ the π0-median of Q",
             "arXiv 2604.18578 Thm 4.1 ('in many cases')", "paper", "bounded_ratio_optimum",
             note="read on " + _PAGE + "; checked against scipy's LP solver on random categoricals"),
    Equation("brrl-optimum-general",
             "r* = c_h (Q > μ), c_l (Q < μ), c_l + Δ(κ − π0(Q > μ))/π0(Q = μ) (Q = μ); κ = ε_l/(ε_l + ε_h)",
             "arXiv 2604.18578 Thm 4.1 / §4.6 (asymmetric bounds, CEM link)", "reconstructed",
             "bounded_ratio_optimum",
             note="our LP solution for ties and asymmetric bounds c_l ≤ r ≤ c_h (the page states both exist); "
                  "c_l = 0 gives the cross-entropy method's renormalised top-κ elite"),
    Equation("brrl-improvement", "η(π*) − η(π0) ≥ ε·B ≥ 0;  E_{π0}[(r* − 1)A] = ε·E_{π0}|Q − μ| per state",
             "arXiv 2604.18578 Thm 4.2", "reconstructed", "improvement_term",
             note="the page states the bound and that B > 0 iff the median advantage is non-zero; B's exact "
                  "form was not read. We test it with B = E_{s∼d0}E_{π0}|Q − μ| (performance-difference lemma) "
                  "on exact tabular MDPs"),
    Equation("bpo-target", "r*_λ = 1 − ε + 2ε·σ((Q − u)/λ)", "arXiv 2604.18578, BPO (section not read)", "official-code",
             "target_ratio", note=f"{_CODE} src/sb3/BPO.py (train) and src/rsl_rl/rsl_bpo.py; λ = 1e-3 (SB3)"),
    Equation("bpo-regularized-problem",
             "max_r E_{π0}[rQ] + λΔ·E_{π0}[H_b((r − c_l)/Δ)] s.t. E_{π0}[r] = 1 ⇒ r = r*_λ with E σ((Q − u)/λ) = κ",
             "arXiv 2604.18578, regularised problem (not read)", "reconstructed", "regularized_objective",
             note="one regulariser whose optimum has the code's form; the paper's own may differ"),
    Equation("bpo-u-loss", "L_u = E[softplus(Q − u) − ½(Q − u)]  (stationary: E σ(Q − u) = ½)",
             "arXiv 2604.18578, BPO median baseline (section not read)", "official-code", "u_loss",
             note=f"{_CODE} src/sb3/BPO.py (u_coef 0.5) and rsl_rl (softplus(−|x|) + |x|/2, the same function). "
                  "It normalises r*_λ only when λ = 1: flagged, see the properties"),
    Equation("bpo-loss", "L = E[(|Â| + c_tv)·|π/π0 − sg(r*)|],  Â = Q − V",
             "arXiv 2604.18578, BPO loss (abstract: advantage-weighted divergence)", "official-code", "bpo_loss",
             note=f"{_CODE} src/sb3/BPO.py (TV, c_tv = 0) and src/rsl_rl/rsl_bpo.py (adv_TV adds tv_loss_coef·|r − r*|); "
                  "target_adv = (Q − u)/λ, default Â/λ (use_median=False); MSE/log-TV/KL/JS variants not built"),
    Equation("bpo-gradient", "∂ℓ/∂logp = (|Â| + c_tv)·sign(r − r*)·r", "derived", "reconstructed",
             "bpo_token_loss", note="checked by central finite differences"),
)

EQUATIONS_GBPO = (
    Equation("gbpo-advantage", "Â_i = (R_i − mean_g R)/(std_g R + ε)", "arXiv 2604.18578, GBPO (section not read)",
             "official-code", "gbpo_advantage_and_target",
             note=f"{_CODE} src/verl/trainer/ppo/core_algos.py compute_gbpo_outcome_advantage_and_target (GRPO's)"),
    Equation("gbpo-target", "t_i = (R_i − median_g R)/(std_g R + ε)/T = (Â_i − median_g Â)/T",
             "arXiv 2604.18578, GBPO (section not read)", "official-code", "gbpo_target",
             note="verl computes it from the scores; the second form (ours) is the same number and needs only Â; "
                  "T = 1e-4 in the authors' README and TTRL scripts (verl yaml default 1.0)"),
    Equation("gbpo-loss", "ℓ_it = |Â_i|·|r_it − r*_i|,  r*_i = 1 − ε_l + (ε_l + ε_h)·σ(t_i),  token-mean",
             "arXiv 2604.18578, GBPO (section not read)", "official-code", "gbpo_loss",
             note=f"{_CODE} core_algos.py compute_policy_loss_gbpo (clip_ratio_low/high, 0.3 in the README); verl "
                  "clamps log r to ±20 (log_ratio_clamp=20)"),
    Equation("gbpo-gradient", "∂ℓ/∂logp = |Â|·sign(r − r*)·r", "derived", "reconstructed", "bpo_token_loss",
             note="checked by central finite differences"),
)

_T = "properties/test_brrl.py::"

register(Spec(
    name="brrl", kind="policy_loss", family="ratio/clipping", paper=BRRL_PAPER, status="implemented",
    summary="BPO: regress the ratio onto the analytic bounded-ratio optimum 1 − ε + 2ε·σ((Q − u)/λ), weighted by |Â|",
    fn=bpo_loss, config_cls=BRRLConfig, equations=EQUATIONS_BRRL, outputs=("loss", "dlogp"),
    aliases=("bpo",), make_inputs=make_inputs,
    extras={"bounded_ratio_optimum": bounded_ratio_optimum, "optimal_policy": optimal_policy,
            "threshold": threshold, "improvement_term": improvement_term, "target_ratio": target_ratio,
            "normalizing_baseline": normalizing_baseline, "regularized_objective": regularized_objective,
            "u_loss": u_loss},
    gradient="∂ℓ/∂logp = (|Â| + c_tv)·sign(r − r*)·r (r* under stop-gradient): PPO's weight −Â·r inside the "
             "trust region, and a pull back towards r* beyond it where PPO's is 0",
    properties=(
        _T + "test_bpo_hand_gradient_matches_finite_differences: dlogp = central FD (float64)",
        _T + "test_optimum_is_normalized_and_within_bounds: Thm 4.1: E_{π0}[r*] = 1, c_l ≤ r* ≤ c_h (exact)",
        _T + "test_optimum_solves_the_linear_program: Thm 4.1: r* attains scipy's LP optimum",
        _T + "test_optimum_page_form_without_ties: Thm 4.1 page form 1 + ε·sign(Q − μ)",
        _T + "test_improvement_term_is_eps_mean_abs_deviation: E_{π0}[(r* − 1)A] = ε·E|Q − μ| ≥ 0",
        _T + "test_monotonic_improvement_on_tabular_mdps: Thm 4.2: η(π*) − η(π0) ≥ ε·B ≥ 0 (exact MDPs)",
        _T + "test_iterating_the_optimum_improves_monotonically: η non-decreasing under π ← π*",
        _T + "test_cem_limit_keeps_the_elite: §4.6: c_l = 0 gives π0 restricted to its top-κ, renormalised",
        _T + "test_smooth_target_tends_to_the_optimum: λ → 0 with the normalising u gives r*",
        _T + "test_smooth_target_maximizes_regularized_problem: reconstructed regularised problem",
        _T + "test_smooth_target_improvement_nonnegative: E_{π0}[(r*_λ − 1)A] ≥ 0 (Chebyshev)",
        _T + "test_u_loss_normalizes_target_only_at_unit_temperature: code's u-loss vs λ (flag)",
        _T + "test_u_loss_tends_to_median_at_large_scale: the u-loss minimiser → π0-median",
        _T + "test_ppo_is_a_one_sided_hinge_to_the_bang_bang_target: page: PPO drives π towards π*",
        _T + "test_default_target_is_sign_of_advantage: z = Â/λ, λ → 0 gives r* = 1 ± ε·sign(Â)",
        _T + "test_gradient_pushes_ratio_toward_target: −dlogp has the sign of r* − r",
        _T + "test_extreme_log_ratios_are_finite: log r = ±50, no NaN",
        "untested: the BPO performance lower bound in terms of the BPO loss (abstract) — its statement was not "
        "read (paper body unreachable)",
        "untested: BPO/GBPO match or beat PPO/GRPO on MuJoCo, Atari, IsaacLab and LLM tasks — empirical",
    ),
))

register(Spec(
    name="gbpo", kind="policy_loss", family="ratio/clipping", paper=BRRL_PAPER, status="implemented",
    summary="group-relative BPO: regress the ratio onto 1 − ε + 2ε·σ((Â − median_g Â)/T), weighted by |Â|",
    fn=gbpo_loss, config_cls=GBPOConfig, equations=EQUATIONS_GBPO, outputs=("loss", "dlogp"),
    extras={"gbpo_target": gbpo_target, "gbpo_advantage_and_target": gbpo_advantage_and_target,
            "target_ratio": target_ratio,
            "batch_coupled": "the target uses the median advantage of each prompt's rollouts (of the whole batch "
                             "when group=None), so a shard must hold whole prompts and pass their ids",
            "e2e_note": "each minibatch holds a random subset of a prompt's rollouts, so the per-prompt median "
                        "is taken over that subset"},
    gradient="∂ℓ/∂logp = |Â|·sign(r − r*_i)·r (r* under stop-gradient)",
    properties=(
        _T + "test_gbpo_hand_gradient_matches_finite_differences: dlogp = central FD (float64)",
        _T + "test_gbpo_target_matches_verl_reward_formula: (Â − med Â)/T = (R − med R)/(std + ε)/T",
        _T + "test_gbpo_target_within_bounds: r* ∈ [1 − ε_l, 1 + ε_h], open interval for moderate T",
        _T + "test_gbpo_loss_nonnegative_and_zero_at_target: ℓ ≥ 0, = 0 iff r = r* (Â ≠ 0)",
        _T + "test_gbpo_gradient_pushes_ratio_toward_target: −dlogp has the sign of r* − r",
        _T + "test_gbpo_half_above_median_mean_target_is_one: even group, T → 0: mean r* = 1",
        _T + "test_gbpo_group_none_is_one_group: group=None equals all rows in one prompt",
        "untested: GBPO matches or beats GRPO on TTRL math benchmarks — empirical",
    ),
))

"""RiskPO: Risk-based Policy Optimization — a Mixed Value-at-Risk objective over bundles of questions.

Ren, Jiang, Yang, Tian, Zou, Li, Zhang, Wang, Qin, Zhao, Tao, Shao, Peng, "RiskPO: Risk-based Policy Optimization
via Verifiable Reward for LLM Post-Training", arXiv 2510.00911 (Oct 2025). Official code: github.com/RTkenny/RiskPO
(a verl fork): ``verl/trainer/ppo/core_algos.py`` (``compute_grpo_bundle_rvar_outcome_advantage_quantile_tracking``)
and ``verl/trainer/ppo/ray_trainer.py`` (bundle ids, the quantile tracker); README; ``scripts/*.sh``.

Sources read: the abstract and introduction (arXiv HTML), the official code, README and scripts. The method
section (its equations, Theorem 1, Prop. 1, Theorem 2 and Assumption 1) was not reachable; those come from our
notes on the paper (papers_A.md §16) and are marked ``secondary`` unless the code confirms them.

Notation: R a reward (here a bundle score) with CDF F under the policy, F⁻¹(u) = inf{x : F(x) ≥ u} (u = 0: the
smallest value), q_u = F⁻¹(u), 0 ≤ α < β ≤ 1, x⁺ = max(x, 0), L(u) = ∫_0^u F⁻¹(v) dv (``lower_integral``).

    RVaR_{α:β} = (L(β) − L(α))/(β − α)  (= E[R | q_α ≤ R ≤ q_β] for continuous F);  CVaR_β = RVaR_{0:β} = L(β)/β
    MVaR^ω_{α:β} = (1 + ω)·L(α) + (L(β) − L(α)) = ω·α·CVaR_α + β·CVaR_β        the lower tail counted 1 + ω times

Theorem 1 (likelihood-ratio gradient):  ∇RVaR_{α:β} = (1/(β − α))·E[g(R, q_α, q_β)·∇log π],
    g(z, a, b) = (z − a)⁺ − (z − b)⁺ + a − b ∈ [a − b, 0]                                          (``g_rvar``)
and in the same way ∇L(α) = −E[(q_α − R)⁺·∇log π] (``g_cvar``), hence (exact for distributions with no atom
at q_α or q_β, tested by enumeration)
    ∇MVaR^ω = E[w(R)·∇log π],   w(R) = (1 + ω)·g_cvar(R, q_α) + g_rvar(R, q_α, q_β)            (``mvar_weight``)
The official code's advantage is (w_mix·A_CVaR + A_RVaR)/(w_mix + 1) with A_CVaR = g_cvar/α, A_RVaR = g_rvar/(β − α)
and w_mix = 1.5 (``mix='normalized'``, the default: the paper's ω default was not read). It equals
w/((w_mix + 1)(β − α)) for ω = w_mix(β − α)/α − 1 (our identity, tested), so it is an MVaR^ω gradient too.
Mean limit: α = 0, β = 1, ω = 0 gives MVaR = E[R] and w = R − max R (a constant baseline).

Bundling (paper, per our notes; code ``compute_grpo_bundle_...``): the questions of a batch, in order of first
appearance of their prompt ids, form bundles of ``bundle_size`` (B) consecutive questions. In a bundle whose
questions have G_1..G_B responses, paper j = 1..min G_k takes the j-th response (row order) of every question
(without replacement; the responses of a question are i.i.d., so row order is as good as the paper's random
permutation) and scores R_B = Σ of their rewards. Every response of paper j gets paper j's advantage; responses
left over when the G_k differ get 0 (as in the code).

Quantiles q_α, q_β of R_B: ``quantile_scope='batch'`` pools every paper of the batch (the population quantile's
estimate; the code's tracker starts there), ``'bundle'`` uses each bundle's papers (the code's
``use_q_track_mode='batch'``), or pass ``quantiles=(q_α, q_β)`` (e.g. from ``quantile_track``, the code's
stochastic-approximation tracker q ← q + γ(u − mean 1{R_B < q}), lr 0.1 on 19 levels). ``quantile_method``:
``'inverted_cdf'`` F̂⁻¹(u) = R_(⌈uN⌉) (the paper's F⁻¹ of the empirical distribution, default) or ``'linear'``
(``torch.quantile``, the code's).

Code options kept (off by default): ``std_normalize`` divides by the std (ddof 1) of the bundle's paper scores
(code ``norm_adv_by_std_in_grpo``; one paper: std 1; all equal: std 0, the advantage divided by ε as in the code);
``credit='std'`` divides a response's advantage by its question's reward std (ddof 1; < 1e-3 or one response:
1) + ε; ``rvar_offset=False`` drops the constant a − b from g (code ``natural_baseline_adv=False``, the DAPO-math
script). Not kept: the code's trapezoid-integrated baselines (``use_mean_as_baseline``, off in the scripts) and
the 'score'/'sum-mean' credit modes.

Policy loss (paper, per our notes): maximise (1/G) Σ_j (1/B) Σ_{i∈j} min(s_i A^{(j)}, clip(s_i, 1 − ε, 1 + ε) A^{(j)})
with the sequence ratio s_i = (π_θ(y_i)/π_old(y_i))^{1/|y_i|} — GSPO's clipped objective (arXiv 2507.18071 eq. 5)
with the MVaR advantage, ``ratio='sequence'``. The code trains with verl's token-level PPO loss
(``ratio='token'``, token-mean). ε = 0.2 (the code's; the paper's value was not read).

Gradient of the loss (sequence ratio; as GSPO): ∂s_i/∂logp_it = s_i/n_i, so
    ∂loss/∂logp_it = C_i·(∂ℓ_i/∂s_i)·s_i/n_i,   ∂ℓ_i/∂s_i = −Â_i where the clip does not bind, else 0,
C_i = Σ_t c_it the sequence's aggregation weight; token ratio: ∂ℓ/∂logp = −Â·r or 0 (PPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, finite_vector, in_range, policy_batch, positive
from rlspec.reference.grpo import validate_outcome
from rlspec.reference.gspo import sequence_advantage, sequence_ratio
from rlspec.reference.ppo import clipped_surrogate
from rlspec.reference.registry import Equation, Paper, Spec, register

RISKPO_PAPER = Paper(arxiv="2510.00911", title="RiskPO: Risk-based Policy Optimization via Verifiable Reward for LLM "
                     "Post-Training", year=2025)
MIXES = ("normalized", "integral")
QUANTILE_METHODS = ("inverted_cdf", "linear")
QUANTILE_SCOPES = ("batch", "bundle")
CREDITS = ("uniform", "std")
RATIOS = ("sequence", "token")


# --------------------------------------------------------------------------- risk measures of a distribution
def _distribution(values, probs) -> tuple[np.ndarray, np.ndarray]:
    """Sorted support (K,) and probabilities (K,) of a finite distribution."""
    x = finite_vector(values, "values")
    p = finite_vector(probs, "probs", x.size)
    if (p < 0).any() or not np.isclose(p.sum(), 1.0, atol=1e-9):
        raise fail("probs", f"values summing to {p.sum()}", "a probability vector")
    order = np.argsort(x, kind="stable")
    return x[order], p[order]


def quantile(values, probs, u: float) -> float:
    """F⁻¹(u) = inf{x : F(x) ≥ u} of a finite distribution (u = 0: the smallest value with mass)."""
    x, p = _distribution(values, probs)
    u = in_range(u, "u", 0.0, 1.0)
    keep = p > 0
    x, F = x[keep], np.cumsum(p[keep])
    return float(x[min(int(np.searchsorted(F, u - 1e-12, side="left")), x.size - 1)])


def lower_integral(values, probs, u: float) -> float:
    """L(u) = ∫_0^u F⁻¹(v) dv = Σ_k x_k·|[F_{k−1}, F_k] ∩ [0, u]| (exact for a finite distribution)."""
    x, p = _distribution(values, probs)
    u = in_range(u, "u", 0.0, 1.0)
    F = np.cumsum(p)
    lo = np.concatenate([[0.0], F[:-1]])
    return float((x * np.clip(np.minimum(F, u) - lo, 0.0, None)).sum())


def rvar(values, probs, alpha: float, beta: float) -> float:
    """RVaR_{α:β} = (1/(β − α))∫_α^β F⁻¹(u) du (range value-at-risk; CVaR_β when α = 0)."""
    a, b = _levels(alpha, beta)
    return (lower_integral(values, probs, b) - lower_integral(values, probs, a)) / (b - a)


def cvar(values, probs, alpha: float) -> float:
    """CVaR_α = (1/α)∫_0^α F⁻¹(u) du, the mean of the lower α-tail."""
    a = in_range(alpha, "alpha", 0.0, 1.0, lo_open=True)
    return lower_integral(values, probs, a) / a


def mvar(values, probs, alpha: float, beta: float, omega: float) -> float:
    """MVaR^ω_{α:β} = (1 + ω)∫_0^α F⁻¹ + ∫_α^β F⁻¹ (mixed value-at-risk). arXiv 2510.00911 (per our notes)."""
    a, b = _levels(alpha, beta)
    La, Lb = lower_integral(values, probs, a), lower_integral(values, probs, b)
    return (1.0 + _omega(omega)) * La + (Lb - La)


def _levels(alpha: float, beta: float) -> tuple[float, float]:
    a = in_range(alpha, "alpha", 0.0, 1.0, hi_open=True)
    b = in_range(beta, "beta", 0.0, 1.0, lo_open=True)
    if b <= a:
        raise fail("beta", repr(beta), f"a level above alpha = {alpha}")
    return a, b


def _omega(omega: float) -> float:
    return positive(omega, "omega", allow_zero=True)


# --------------------------------------------------------------------------- gradient weights (Theorem 1)
def g_rvar(z, a, b, offset: bool = True) -> np.ndarray:
    """g(z, a, b) = (z − a)⁺ − (z − b)⁺ + (a − b) ∈ [a − b, 0]: Theorem 1's RVaR weight (elementwise).
    ``offset=False`` drops the constant a − b (the code's ``natural_baseline_adv=False``)."""
    z, a, b = (np.asarray(v, dtype=np.float64) for v in (z, a, b))
    g = np.maximum(z - a, 0.0) - np.maximum(z - b, 0.0)
    return g + (a - b) if offset else g


def g_cvar(z, a) -> np.ndarray:
    """−(a − z)⁺: the weight of ∇∫_0^α F⁻¹ = E[−(q_α − R)⁺ ∇log π] (elementwise)."""
    return -np.maximum(np.asarray(a, dtype=np.float64) - np.asarray(z, dtype=np.float64), 0.0)


def mvar_weight(R, q_a, q_b, omega: float, offset: bool = True) -> np.ndarray:
    """w = (1 + ω)·g_cvar(R, q_α) + g_rvar(R, q_α, q_β): E[w ∇log π] = ∇MVaR^ω_{α:β}."""
    return (1.0 + _omega(omega)) * g_cvar(R, q_a) + g_rvar(R, q_a, q_b, offset)


def mvar_weight_normalized(R, q_a, q_b, alpha: float, beta: float, w_mix: float, offset: bool = True) -> np.ndarray:
    """The official code's advantage (w_mix·g_cvar/α + g_rvar/(β − α))/(w_mix + 1) — CVaR_α and RVaR_{α:β} gradients
    mixed with weights w_mix : 1 (code: w_mix = 1.5)."""
    a, b = _levels(alpha, beta)
    w = positive(w_mix, "w_mix", allow_zero=True)
    if a == 0 and w > 0:
        raise fail("alpha", "0", "alpha > 0 when w_mix > 0 (the CVaR_α term divides by α)")
    cv = w * g_cvar(R, q_a) / a if w > 0 else 0.0
    return (cv + g_rvar(R, q_a, q_b, offset) / (b - a)) / (w + 1.0)


# --------------------------------------------------------------------------- bundles and quantiles
def empirical_quantile(x, u: float, method: str = "inverted_cdf") -> float:
    """Quantile of the sample x at level u: 'inverted_cdf' x_(⌈uN⌉) (x_(1) at u = 0), or 'linear' (numpy's
    default, torch.quantile's)."""
    x = finite_vector(x, "x")
    if x.size == 0:
        raise fail("x", "an empty sample", "at least one value")
    u = in_range(u, "u", 0.0, 1.0)
    if choice(method, "quantile_method", QUANTILE_METHODS) == "linear":
        return float(np.quantile(x, u))
    k = min(max(math.ceil(u * x.size - 1e-9), 1), x.size)
    return float(np.sort(x)[k - 1])


def make_bundles(group, bundle_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bundles and papers (B,) each: (bundle id, paper id (−1: left over), index of the row's question).

    Questions = distinct prompt ids in order of first appearance; bundle b = questions bB … bB + B − 1; in a
    bundle, paper j holds the j-th row of each of its questions, j < min over its questions of their row count."""
    g = np.asarray(group)
    _, first, q_of_row = np.unique(g, return_index=True, return_inverse=True)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(first.size)  # question index by first appearance
    q_of_row = rank[q_of_row.reshape(-1)]
    bundle = q_of_row // bundle_size
    j_in_q = np.zeros(g.size, dtype=np.int64)
    for q in range(first.size):
        rows = np.flatnonzero(q_of_row == q)
        j_in_q[rows] = np.arange(rows.size)
    paper = np.full(g.size, -1, dtype=np.int64)
    next_id = 0
    for b in np.unique(bundle):
        qs = np.unique(q_of_row[bundle == b])
        n_papers = min(int((q_of_row == q).sum()) for q in qs)
        rows = (bundle == b) & (j_in_q < n_papers)
        paper[rows] = next_id + j_in_q[rows]
        next_id += n_papers
    return bundle, paper, q_of_row


def paper_scores(R: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """R_B of each paper (P,): the sum of its responses' rewards."""
    P = int(paper.max()) + 1 if paper.size and paper.max() >= 0 else 0
    return np.bincount(paper[paper >= 0], weights=R[paper >= 0], minlength=P).astype(np.float64)


def quantile_track(q, scores, levels, lr: float) -> np.ndarray:
    """One stochastic-approximation step q ← q + γ·(u − mean_j 1{R_j < q}) per level u (the official code's tracker,
    ray_trainer.py: SGD on the pinball loss, lr 0.1, levels 0.05 … 0.95, started at the batch quantiles)."""
    q = finite_vector(q, "q")
    u = finite_vector(levels, "levels", q.size)
    s = finite_vector(scores, "scores")
    if s.size == 0:
        raise fail("scores", "an empty batch", "at least one bundle score")
    return q + positive(lr, "lr") * (u - (s[None, :] < q[:, None]).mean(axis=1))


@dataclass(frozen=True)
class RiskPOAdvConfig:
    """The bundled MVaR advantage. alpha/beta: quantile levels (paper 0.2/0.8; code scripts 0.2/0.9 and 0.2/0.8);
    bundle_size: questions per bundle (paper and code 5); mix: 'normalized' (code, w_mix = 1.5) or 'integral'
    (the paper's MVaR^ω gradient w with omega); quantile_method/quantile_scope/std_normalize/credit/rvar_offset:
    see the module docstring; eps: added to the std divisors (code 1e-6)."""

    alpha: float = 0.2
    beta: float = 0.8
    bundle_size: int = 5
    mix: str = "normalized"
    w_mix: float = 1.5
    omega: float = 0.5
    quantile_method: str = "inverted_cdf"
    quantile_scope: str = "batch"
    std_normalize: bool = False
    credit: str = "uniform"
    rvar_offset: bool = True
    eps: float = 1e-6

    def __post_init__(self) -> None:
        a, _ = _levels(self.alpha, self.beta)
        if not isinstance(self.bundle_size, (int, np.integer)) or isinstance(self.bundle_size, bool) \
                or self.bundle_size < 1:
            raise fail("bundle_size", repr(self.bundle_size), "an integer ≥ 1")
        choice(self.mix, "mix", MIXES)
        positive(self.w_mix, "w_mix", allow_zero=True)
        _omega(self.omega)
        if self.mix == "normalized" and a == 0 and self.w_mix > 0:
            raise fail("alpha", "0", "alpha > 0 for mix='normalized' (the CVaR_α term divides by α)")
        choice(self.quantile_method, "quantile_method", QUANTILE_METHODS)
        choice(self.quantile_scope, "quantile_scope", QUANTILE_SCOPES)
        choice(self.credit, "credit", CREDITS)
        positive(self.eps, "eps", allow_zero=True)


def _std(x: np.ndarray) -> float:
    """Sample std (ddof 1); exactly 0 when all values agree; 1 for a single value (the code's convention)."""
    if x.size == 1:
        return 1.0
    return 0.0 if x.min() == x.max() else float(x.std(ddof=1))


def riskpo_advantage(rewards, group, mask, config: RiskPOAdvConfig | None = None, quantiles=None) -> np.ndarray:
    """RiskPO's bundled MVaR advantage (B, T), broadcast over each response, zero at masked positions.

    Args: rewards (B,) outcome rewards; group (B,) prompt ids (the questions); mask (B, T) bool;
    ``quantiles`` optional (q_α, q_β) replacing the batch estimates (e.g. tracked ones).
    """
    cfg = config or RiskPOAdvConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    bundle, paper, q_of_row = make_bundles(g, cfg.bundle_size)
    S = paper_scores(R, paper)  # (P,)
    if S.size == 0:
        return np.zeros(M.shape)
    paper_bundle = np.zeros(S.size, dtype=np.int64)
    paper_bundle[paper[paper >= 0]] = bundle[paper >= 0]
    if quantiles is not None:
        qa_qb = finite_vector(quantiles, "quantiles", 2)
        q_a, q_b = np.full(S.size, qa_qb[0]), np.full(S.size, qa_qb[1])
    else:
        q_a, q_b = np.empty(S.size), np.empty(S.size)
        scopes = [np.ones(S.size, bool)] if cfg.quantile_scope == "batch" else \
            [paper_bundle == b for b in np.unique(paper_bundle)]
        for sel in scopes:
            q_a[sel] = empirical_quantile(S[sel], cfg.alpha, cfg.quantile_method)
            q_b[sel] = empirical_quantile(S[sel], cfg.beta, cfg.quantile_method)
    if cfg.mix == "normalized":
        A = mvar_weight_normalized(S, q_a, q_b, cfg.alpha, cfg.beta, cfg.w_mix, cfg.rvar_offset)  # (P,)
    else:
        A = mvar_weight(S, q_a, q_b, cfg.omega, cfg.rvar_offset)
    if cfg.std_normalize:
        std = np.array([_std(S[paper_bundle == b]) for b in paper_bundle])
        A = A / (std + cfg.eps)
    adv = np.where(paper >= 0, A[np.maximum(paper, 0)], 0.0)  # (B,) uniform credit
    if cfg.credit == "std":
        sq = np.array([_std(R[q_of_row == q]) if (q_of_row == q).sum() > 1 else 1.0 for q in q_of_row])
        adv = adv / (np.where(sq > 1e-3, sq, 1.0) + cfg.eps)
    return np.where(M, adv[:, None], 0.0)


# --------------------------------------------------------------------------- the policy loss
@dataclass(frozen=True)
class RiskPOConfig(common.AggregationOptions):
    """RiskPO's clipped objective. ratio: 'sequence' (paper: s = (π/π_old)^{1/|y|}, GSPO-style) or 'token' (code:
    verl's token-level PPO loss); eps_low/eps_high: clip range (code 0.2); agg: seq-mean-token-mean (the paper's
    mean over responses; the code's token-level loss uses token-mean)."""

    agg: str = "seq-mean-token-mean"
    eps_low: float = 0.2
    eps_high: float = 0.2
    ratio: str = "sequence"

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        choice(self.ratio, "ratio", RATIOS)


def riskpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: RiskPOConfig | None = None, group=None):
    """RiskPO policy loss (clipped, sequence or token ratio) and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) — adv the bundled MVaR advantage (``riskpo_mvar``); mask (B, T) bool;
    ``ref_logp`` accepted and unused; ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss, dlogp), dlogp zero at masked positions.
    """
    cfg = config or RiskPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    if cfg.ratio == "token":
        r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
        ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
        return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)
    s, inside, n = sequence_ratio(logp, old_logp, mask, cfg.log_ratio_clamp)  # (B,)
    A = sequence_advantage(adv, mask)  # (B,)
    ell, dell_ds = clipped_surrogate(s, A, cfg.eps_low, cfg.eps_high)  # (B,)
    C = common.agg_coefficients(mask, cfg, group).sum(axis=1)  # (B,) each sequence's weight
    ds_dlogp = np.divide(s * inside, n, out=np.zeros_like(s), where=n > 0)  # (B,) = s_i/n_i
    return float((C * ell).sum()), np.where(mask, (C * dell_ds * ds_dlogp)[:, None], 0.0)


# --------------------------------------------------------------------------- registry
_CODE = "github.com/RTkenny/RiskPO"
_NOTES = "from our notes on the paper (papers_A.md §16); the method section was not reachable"


def _conformance_configs():
    return [{"mix": "integral"}, {"quantile_method": "linear"}, {"quantile_scope": "bundle"}, {"credit": "std"},
            {"bundle_size": 1}, {"bundle_size": 2, "beta": 0.9}, {"std_normalize": True, "credit": "std",
                                                                  "quantile_method": "linear", "beta": 0.9}]


EQUATIONS_LOSS = (
    Equation("riskpo-mvar", "MVaR^ω_{α:β} = (1 + ω)∫_0^α F⁻¹(u)du + ∫_α^β F⁻¹(u)du",
             "arXiv 2510.00911, MVaR objective (section not read)",
             "secondary", "mvar", note=_NOTES + "; α = 0.2, β = 0.8 also in a third-party summary"),
    Equation("riskpo-theorem1", "∇RVaR_{α:β} = (1/(β − α))E[g(R, q_α, q_β)∇log π],  g = (z − a)⁺ − (z − b)⁺ + a − b",
             "arXiv 2510.00911 Theorem 1", "official-code", "g_rvar",
             note=f"{_CODE} core_algos.py (paper_advantage, /(quantile_up − quantile_down)) and README; statement "
                  "per our notes; checked exactly by enumeration"),
    Equation("riskpo-mvar-gradient", "∇MVaR^ω = E[((1 + ω)(−(q_α − R)⁺) + g(R, q_α, q_β))∇log π]",
             "arXiv 2510.00911, MVaR gradient", "reconstructed", "mvar_weight",
             note="our combination of Theorem 1 with the CVaR gradient; checked exactly by enumeration"),
    Equation("riskpo-objective",
             "J = E[(1/G)Σ_j (1/B)Σ_{i∈j} min(s_i A^{(j)}, clip(s_i, 1 ± ε)A^{(j)})],  s_i = (π/π_old)^{1/|y_i|}",
             "arXiv 2510.00911, policy objective (section not read)", "secondary", "riskpo_loss",
             note=_NOTES + "; the code trains with verl's token-level PPO loss (ratio='token'), ε = 0.2"),
    Equation("riskpo-gradient", "∂loss/∂logp_it = C_i·(∂ℓ_i/∂s_i)·s_i/n_i (sequence);  −Â·r or 0 (token)", "derived",
             "reconstructed", "riskpo_loss", note="checked by central finite differences"),
)

EQUATIONS_ADV = (
    Equation("riskpo-bundles", "paper j = (j-th response of each of B questions),  R_B = Σ_i R(y_i)",
             "arXiv 2510.00911, bundling (section not read)", "official-code", "make_bundles",
             note=f"{_CODE} core_algos.py (paper combinations without replacement) and ray_trainer.py (bundle_uid: "
                  "bundle_size consecutive prompts); B = 5"),
    Equation("riskpo-code-advantage",
             "A = (w·(−(q_α − R_B)⁺/α) + g(R_B, q_α, q_β)/(β − α))/(w + 1),  w = 1.5",
             "arXiv 2510.00911, MVaR advantage", "official-code", "mvar_weight_normalized",
             note=f"{_CODE} core_algos.py (use_mixing_risk_measure, w_mix); = a positive multiple of the MVaR^ω "
                  "weight with ω = w(β − α)/α − 1 (our identity)"),
    Equation("riskpo-quantile-tracking", "q ← q + γ(u − (1/N)Σ_j 1{R_Bj < q}),  γ = 0.1, u ∈ {0.05, …, 0.95}",
             "arXiv 2510.00911, two-timescale quantile tracking", "official-code", "quantile_track",
             note=f"{_CODE} ray_trainer.py (self.q, SGD lr_q) and README; started at the batch quantiles"),
    Equation("riskpo-empirical-quantile", "q̂_u = R_(⌈uN⌉) (inverted CDF) or linear interpolation (code)",
             "arXiv 2510.00911, q_α = F⁻¹(α)", "reconstructed", "empirical_quantile",
             note="the paper's F⁻¹ applied to the batch's bundle scores; torch.quantile's linear rule as an option"),
)

_T = "properties/test_riskpo.py::"

register(Spec(
    name="riskpo", kind="policy_loss", family="risk", paper=RISKPO_PAPER, status="implemented",
    summary="mixed value-at-risk objective over bundled questions: GSPO-style clipped loss on the MVaR advantage",
    fn=riskpo_loss, config_cls=RiskPOConfig, equations=EQUATIONS_LOSS, outputs=("loss", "dlogp"),
    extras={"g_rvar": g_rvar, "g_cvar": g_cvar, "mvar_weight": mvar_weight, "rvar": rvar, "cvar": cvar,
            "mvar": mvar, "quantile": quantile},
    gradient="sequence ratio: ∂loss/∂logp_it = C_i·(−Â_i or 0 where the clip binds)·s_i/n_i, shared by every token "
             "of the sequence; token ratio: PPO's −Â·r or 0",
    properties=(
        _T + "test_loss_hand_gradient_matches_finite_differences: dlogp = central FD (float64), both ratios",
        _T + "test_sequence_ratio_is_gspo: ratio='sequence' equals GSPO's loss with RiskPO's clip range",
        _T + "test_token_ratio_is_ppo: ratio='token' equals PPO's clipped loss (the code's)",
        _T + "test_g_bounds_and_shape: Theorem 1's g ∈ [a − b, 0], flat outside [a, b], slope 1 inside",
        _T + "test_theorem1_rvar_gradient_exact: Theorem 1 on enumerable softmax distributions (exact)",
        _T + "test_mvar_gradient_exact: ∇MVaR^ω = E[w ∇log π] exactly; the code's mix is its scaled form",
        _T + "test_mean_limit: α → 0, β = 1, ω = 0: MVaR = E[R], weight R − max R, gradient of the mean",
        _T + "test_risk_measure_identities: RVaR_{0:β} = CVaR_β, MVaR = ωαCVaR_α + βCVaR_β, conditional mean",
        _T + "test_code_mix_is_scaled_paper_mvar: normalized(w) = MVaR^ω weight/((w + 1)(β − α))",
        _T + "test_entropy_change_is_minus_covariance: Prop. 1: dH = −η·Cov_π(log π, A) (tabular softmax)",
        "untested: Theorem 2 (under Assumption 1, Cov(log π, A_MVaR) < Cov(log π, A_mean), so MVaR keeps entropy "
        "higher) — Assumption 1 and the advantages' normalisation were not read (method section unreachable)",
        "untested: RiskPO beats GRPO on math, multi-modal and code benchmarks (Pass@1, Pass@k) — empirical",
    ),
))

register(Spec(
    name="riskpo_mvar", kind="advantage", family="risk", paper=RISKPO_PAPER, status="implemented",
    summary="RiskPO's bundled mixed value-at-risk advantage: bundles of B questions scored by their summed reward",
    fn=riskpo_advantage, config_cls=RiskPOAdvConfig, equations=EQUATIONS_ADV, outputs=("adv",),
    extras={"make_bundles": make_bundles, "paper_scores": paper_scores, "empirical_quantile": empirical_quantile,
            "quantile_track": quantile_track, "mvar_weight_normalized": mvar_weight_normalized,
            "conformance_configs": _conformance_configs,
            "batch_coupled": "bundles are formed from the order of the prompts and of each prompt's rows in the "
                             "batch (the official code's rule), so permuting sequences regroups the papers",
            "e2e_note": "with the paper's baseline every advantage is ≤ 0 and bundles of 5 questions split the "
                        "credit of 16 prompts per step: 50 steps are too few here (seed 0: bundle_size=1 reaches "
                        "0.61; the mean limit with the offset dropped, 0.99)"},
    properties=(
        _T + "test_bundles_without_replacement: each response in at most one paper, one per question",
        _T + "test_uniform_credit_shares_paper_advantage: every response of a paper gets its advantage",
        _T + "test_bundling_never_raises_tie_probability: P(all papers equal) ≤ single question's (exact)",
        _T + "test_advantage_estimates_mvar_gradient: the batch advantage is E[w ∇log π]'s plug-in (exact)",
        _T + "test_mean_limit_advantage: α = 0, β = 1, ω = 0, B = 1: A = R − max R",
        _T + "test_quantile_tracker_converges: the SA tracker reaches the α-quantile (seeded)",
        _T + "test_defined_edge_cases: all-equal batch, singletons, ragged groups, empty masks",
        _T + "test_quantiles_argument_overrides_estimates: tracked quantiles replace the batch's",
    ),
))

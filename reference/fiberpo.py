"""FiberPO: Fibration Policy Optimization — a trajectory-level base gate times a token-level fiber gate.

Li, Tsu, Zhang, Xue, He, "Fibration Policy Optimization", arXiv 2603.08239 (Mar 2026). The paper's
method sections could not be read here; the objective below is the one restated in the JoyAI-LLM Flash
technical report (arXiv 2604.03044, §3.3), as transcribed in our paper notes (shared/papers/papers_A.md
§2). No official code was found. Every equation is therefore tagged ``secondary`` (or ``reconstructed``
for the gradient, which is ours), and the entry is ``partial`` (see ``missing``).

Notation (ours ← report): a trajectory τ is one row b of the batch; its T = T_τ valid tokens are the
fiber over τ; x_t = log r_t = logp_t − old_logp_t.

    channel aggregates   log s⁺ = (1/T) Σ_t max(x_t, 0),   log s⁻ = (1/T) Σ_t max(−x_t, 0)    (both ≥ 0)
                         so mean_t x_t = log s⁺ − log s⁻ exactly
    aggregate gate       g(a; C, T) = a                        if |a| ≤ C           (pass-through)
                                    = sign(a)(T+1)C − T·a      if C < |a| < (1+1/T)C  (rollback, slope −T)
                                    = 0                        otherwise            (zeroed)
    base weight          w_base = exp(g(log s⁺; C⁺, T) − g(log s⁻; C⁻, T))                   (one per trajectory)
    sign label           l_t = sign(x_t), with sign(0) = +1
    fiber residuals      u_t = l_t x_t − log s^{(l_t)},   v_t = −log s^{(−l_t)}
    fiber factor         r̃_t = exp(clip(l_t u_t, ±ε) − clip(l_t v_t, ±ε))
    gate                 G_t = w_base · r̃_t
    objective            Ĵ = Σ_τ (1/N_tr)(1/T_τ) Σ_t G_t Â_t    → per-token loss ℓ_t = −G_t Â_t, agg = seq-mean-token-mean

Inside the trust region (log s^± ≤ C^± and |l u|, |l v| ≤ ε) the exponents telescope:
log G_t = (log s⁺ − log s⁻) + (x_t − (log s⁺ − log s⁻)) = x_t, so G_t = r_t exactly and FiberPO is the
unclipped token-IS surrogate with 1/T normalisation. Whatever the ratios, log G_t ∈ [−C⁻ − 2ε, C⁺ + 2ε]:
the gate never overflows (log-ratios of ±50 are harmless).

Gradient (derived here; checked by central finite differences in ``properties/test_fiberpo.py``). Write
z_t = log G_t and κ_t = ∂L/∂z_t = −c_t Â_t G_t (c the aggregation coefficients). With the slopes
g^±' ∈ {1, −T, 0} of the aggregate gate, φ'_t = 1[|l_t u_t| ≤ ε], ψ'_t = 1[|l_t v_t| ≤ ε],
p_s = 1[x_s > 0], q_s = 1[x_s < 0] (so ∂log s⁺/∂x_s = p_s/T, ∂log s⁻/∂x_s = −q_s/T):

    α_t = g⁺' − (φ'_t if l_t = +1 else ψ'_t)          coefficient of log s⁺ in z_t
    β_t = −g⁻' + (ψ'_t if l_t = +1 else φ'_t)         coefficient of log s⁻ in z_t
    ∂L/∂x_s = κ_s φ'_s + (p_s / T) Σ_t κ_t α_t − (q_s / T) Σ_t κ_t β_t

The first term is local (O(1)); the other two are a rank-two coupling inside the trajectory, of size
O(1/T) per entry outside the rollback band, and nothing couples two trajectories: ∂G/∂r is
block-diagonal. Inside the trust region α = β = 0 and φ' = 1, so ∂L/∂x = κ = −c Â r, the vanilla
token-IS policy gradient; at r ≡ 1 it is −c Â (identity Jacobian on-policy). Finally ∂x/∂logp = 1
(0 where ``log_ratio_clamp`` binds).

Conventions (ours, where the report is silent): sign(0) = +1 (the notes' choice); the subgradients at
kinks follow torch (relu'(0) = 0, clip'(±ε) = 1 inclusive, pass-through at |a| = C); T_τ = number of valid
tokens; a trajectory with no valid token contributes nothing; Â may vary per token; gradients flow
through log s^± (the coupling the block-diagonal claim is about). The numeric defaults of C⁺, C⁻, ε
were not found. Ours: ε = 0.2, PPO's token-level clip, for the token-level (fiber) clip; δ = C⁺ + C⁻ = 5ε = 1.0
so that ε ≪ δ; C⁺ : C⁻ = 3 : 2 so that C⁻ < C⁺. (With δ = 0.2 the base gate engages within the first
update of the project's tiny end-to-end task and it does not learn; with δ = 1.0 it does.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import as_mask, fail, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

FIBERPO_PAPER = Paper(arxiv="2603.08239", title="Fibration Policy Optimization", year=2026)


@dataclass(frozen=True)
class FiberPOConfig(common.AggregationOptions):
    """c_pos / c_neg: base-gate budgets C⁺ / C⁻ of the positive and negative log-ratio channels;
    eps: fiber clip ε. The paper's numbers were not recovered: these defaults are ours (ε = PPO's 0.2,
    δ = C⁺ + C⁻ = 5ε) and follow its stated rules C⁺ + C⁻ = δ, C⁻ < C⁺ (log s⁻ ≥ log s⁺ on average), ε ≪ δ.
    agg: seq-mean-token-mean, the objective's 1/N_tr · 1/T_τ normalisation; any mode is accepted."""

    agg: str = "seq-mean-token-mean"
    c_pos: float = 0.6
    c_neg: float = 0.4
    eps: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.c_pos, "c_pos")
        positive(self.c_neg, "c_neg")
        positive(self.eps, "eps")


# --------------------------------------------------------------------------------------------------
# the base (trajectory) level


def _log_ratio_and_mask(log_r, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validated (x, M): x (B, T) float64 with masked positions set to 0, M (B, T) bool."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    x = np.asarray(log_r, dtype=np.float64)
    if x.shape != M.shape:
        raise fail("log_r", f"shape {x.shape}", f"the shape of mask, {M.shape}")
    if not np.isfinite(x[M]).all():
        raise fail("log_r", "non-finite values at unmasked positions", "finite log-ratios wherever mask is True")
    return np.where(M, x, 0.0), M


def channel_aggregates(log_r, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log s⁺, log s⁻, T) (B,) each: log s^± = (1/T) Σ_t max(±x_t, 0) over the T valid tokens of a row.

    A row with no valid token has log s^± = 0 and T = 0.  arXiv 2604.03044 §3.3 (FiberPO's channels).
    """
    x, M = _log_ratio_and_mask(log_r, mask)
    T = M.sum(axis=1).astype(np.float64)  # (B,)
    Tsafe = np.maximum(T, 1.0)
    return np.maximum(x, 0.0).sum(axis=1) / Tsafe, np.maximum(-x, 0.0).sum(axis=1) / Tsafe, T


def _check_gate_args(a, C, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if not np.isfinite(a).all():
        raise fail("a", "non-finite values", "finite aggregates")
    if not (np.isfinite(C).all() and (C > 0).all()):
        raise fail("C", repr(C), "finite budgets > 0")
    if not (np.isfinite(T).all() and (T >= 0).all()):
        raise fail("T", repr(T), "trajectory lengths >= 0")
    return a, C, T


def aggregate_gate(a, C, T) -> np.ndarray:
    """g(a; C, T) (broadcast shape): a if |a| ≤ C; sign(a)(T+1)C − T·a if C < |a| < (1+1/T)C; else 0.

    Continuous at |a| = C and at |a| = (1+1/T)C; the rollback band has width C/T.  arXiv 2604.03044 §3.3.
    """
    a, C, T = _check_gate_args(a, C, T)
    s = np.where(a >= 0, 1.0, -1.0)
    rollback = s * (T + 1.0) * C - T * a
    return np.where(np.abs(a) <= C, a, np.where(np.abs(a) * T < (T + 1.0) * C, rollback, 0.0))


def aggregate_gate_slope(a, C, T) -> np.ndarray:
    """dg/da: 1 (pass-through, |a| ≤ C), −T (rollback, the restorative slope), 0 (zeroed)."""
    a, C, T = _check_gate_args(a, C, T)
    return np.where(np.abs(a) <= C, 1.0, np.where(np.abs(a) * T < (T + 1.0) * C, -T, 0.0))


def base_weight(log_s_pos, log_s_neg, T, c_pos: float, c_neg: float) -> np.ndarray:
    """w_base = exp(g(log s⁺; C⁺, T) − g(log s⁻; C⁻, T)) (B,).  Both channels zeroed ⇒ w_base = 1."""
    return np.exp(aggregate_gate(log_s_pos, c_pos, T) - aggregate_gate(log_s_neg, c_neg, T))


# --------------------------------------------------------------------------------------------------
# the fiber (token) level


def sign_label(log_r) -> np.ndarray:
    """l = sign(x) with sign(0) = +1 (our convention), same shape as x."""
    return np.where(np.asarray(log_r, dtype=np.float64) >= 0, 1.0, -1.0)


def fiber_residuals(log_r, log_s_pos, log_s_neg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(l, l·u, l·v) (B, T): u = l x − log s^{(l)}, v = −log s^{(−l)}; the signed residuals l·u = x − l·log s^{(l)}
    and l·v = −l·log s^{(−l)} are what the fiber gate clips. log s^± are (B,) and broadcast over tokens."""
    x = np.asarray(log_r, dtype=np.float64)
    l = sign_label(x)
    sp, sn = np.asarray(log_s_pos)[:, None], np.asarray(log_s_neg)[:, None]
    own, other = np.where(l > 0, sp, sn), np.where(l > 0, sn, sp)  # log s^{(l)}, log s^{(−l)}
    u = l * x - own
    v = -other
    return l, l * u, l * v


def fiber_factor(lu, lv, eps: float) -> np.ndarray:
    """r̃ = exp(clip(l·u, ±ε) − clip(l·v, ±ε)), elementwise; r̃ ∈ [e^{−2ε}, e^{2ε}]."""
    eps = positive(eps, "eps")
    return np.exp(np.clip(lu, -eps, eps) - np.clip(lv, -eps, eps))


# --------------------------------------------------------------------------------------------------
# the gate and its vector-Jacobian product


def _parts(x: np.ndarray, M: np.ndarray, c_pos: float, c_neg: float, eps: float) -> dict[str, np.ndarray]:
    sp, sn, T = channel_aggregates(x, M)
    l, lu, lv = fiber_residuals(x, sp, sn)
    log_base = aggregate_gate(sp, c_pos, T) - aggregate_gate(sn, c_neg, T)  # (B,)
    log_fiber = np.clip(lu, -eps, eps) - np.clip(lv, -eps, eps)  # (B, T)
    return dict(sp=sp, sn=sn, T=T, l=l, lu=lu, lv=lv, z=np.where(M, log_base[:, None] + log_fiber, 0.0))


def fiberpo_gate(log_r, mask, c_pos: float, c_neg: float, eps: float) -> np.ndarray:
    """G = w_base · r̃ (B, T), 0 at masked positions. ``log_r`` (B, T) = logp − old_logp.

    Row b depends only on row b's log-ratios (block-diagonal Jacobian); G = r inside the trust region.
    """
    x, M = _log_ratio_and_mask(log_r, mask)
    cp, cn, e = positive(c_pos, "c_pos"), positive(c_neg, "c_neg"), positive(eps, "eps")
    return np.where(M, np.exp(_parts(x, M, cp, cn, e)["z"]), 0.0)


def log_gate_vjp(kappa, log_r, mask, c_pos: float, c_neg: float, eps: float) -> np.ndarray:
    """∂L/∂x (B, T) from κ = ∂L/∂log G (B, T): κ_s φ'_s + (p_s/T) Σ_t κ_t α_t − (q_s/T) Σ_t κ_t β_t per row.

    The hand-derived chain rule through both levels (see the module docstring); zero at masked positions.
    """
    x, M = _log_ratio_and_mask(log_r, mask)
    cp, cn, e = positive(c_pos, "c_pos"), positive(c_neg, "c_neg"), positive(eps, "eps")
    P = _parts(x, M, cp, cn, e)
    k = np.where(M, np.asarray(kappa, dtype=np.float64), 0.0)
    gp = aggregate_gate_slope(P["sp"], cp, P["T"])[:, None]  # (B, 1)
    gn = aggregate_gate_slope(P["sn"], cn, P["T"])[:, None]
    dphi = (np.abs(P["lu"]) <= e).astype(np.float64)  # clip' of the own-channel residual
    dpsi = (np.abs(P["lv"]) <= e).astype(np.float64)  # clip' of the other-channel residual
    pos = P["l"] > 0
    alpha = gp - np.where(pos, dphi, dpsi)  # ∂z_t/∂log s⁺
    beta = -gn + np.where(pos, dpsi, dphi)  # ∂z_t/∂log s⁻
    Tsafe = np.maximum(P["T"], 1.0)
    Ka = (k * alpha).sum(axis=1) / Tsafe  # (B,)
    Kb = (k * beta).sum(axis=1) / Tsafe
    p, q = (x > 0) & M, (x < 0) & M
    return np.where(M, k * dphi + p * Ka[:, None] - q * Kb[:, None], 0.0)


def fiberpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: FiberPOConfig | None = None, group=None):
    """FiberPO loss and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused (no KL
    term); ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss, dlogp (B, T)); loss = Σ c ⊙ (−G ⊙ Â). An all-false mask gives (0.0, zeros).
    """
    cfg = config or FiberPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    x, dx = common.log_ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T) each
    G = fiberpo_gate(x, mask, cfg.c_pos, cfg.c_neg, cfg.eps)  # (B, T)
    c = common.agg_coefficients(mask, cfg, group)  # (B, T)
    kappa = -c * adv * G  # ∂loss/∂log G
    dlogp = log_gate_vjp(kappa, x, mask, cfg.c_pos, cfg.c_neg, cfg.eps) * dx
    return float((c * -G * adv).sum()), np.where(mask, dlogp, 0.0)


_REPORT = ("JoyAI-LLM Flash report (arXiv 2604.03044 §3.3) restating arXiv 2603.08239, as transcribed in our notes "
           "(shared/papers/papers_A.md §2); the FiberPO paper's own sections and any code were not reachable")

EQUATIONS = (
    Equation("fiberpo-channels", "log s⁺ = (1/T) Σ_t max(log r_t, 0),  log s⁻ = (1/T) Σ_t max(−log r_t, 0)",
             "arXiv 2603.08239 (restated in arXiv 2604.03044 §3.3)", "secondary", "channel_aggregates",
             note=_REPORT + "; mean_t log r = log s⁺ − log s⁻ checked by a property test"),
    Equation("fiberpo-aggregate-gate",
             "g(a; C, T) = a (∣a∣ ≤ C);  sign(a)(T+1)C − T a (C < ∣a∣ < (1+1/T)C);  0 otherwise",
             "arXiv 2603.08239 (restated in arXiv 2604.03044 §3.3)", "secondary", "aggregate_gate",
             note="regimes pass-through / rollback (slope −T) / zeroed; continuity at both ends checked"),
    Equation("fiberpo-base-weight", "w_base = exp(g(log s⁺; C⁺, T_τ)) / exp(g(log s⁻; C⁻, T_τ))",
             "arXiv 2603.08239 (restated in arXiv 2604.03044 §3.3)", "secondary", "base_weight",
             note="C⁺ + C⁻ = δ, C⁻ < C⁺ recommended; numeric values not recovered (defaults ours)"),
    Equation("fiberpo-fiber-gate",
             "l = sign(log r);  u = l log r − log s^{(l)},  v = −log s^{(−l)};  r̃ = exp(clip(l u, ±ε) − clip(l v, ±ε))",
             "arXiv 2603.08239 (restated in arXiv 2604.03044 §3.3)", "secondary", "fiber_factor",
             note="ε ≪ δ; sign(0) = +1 is our convention (the report does not say)"),
    Equation("fiberpo-objective", "G = w_base · r̃;  Ĵ = Σ_i (1/N_tr)(1/T_τ) G_i Â_i",
             "arXiv 2603.08239 (restated in arXiv 2604.03044 §3.3)", "secondary", "fiberpo_loss",
             note="seq-mean-token-mean; Â per token (the report writes Â_{s,a})"),
    Equation("fiberpo-gradient",
             "∂L/∂x_s = κ_s φ'_s + (p_s/T) Σ_t κ_t α_t − (q_s/T) Σ_t κ_t β_t,  κ = −c Â G",
             "derived from the objective", "reconstructed", "log_gate_vjp",
             note="our chain rule through both levels; checked by central finite differences"),
)

register(Spec(
    name="fiberpo", kind="policy_loss", family="ratio/clipping", paper=FIBERPO_PAPER, status="partial",
    summary="two-scale ratio gating: a trajectory-level base gate on the sign-split mean log-ratio times a "
            "token-level fiber gate on the residuals",
    fn=fiberpo_loss, config_cls=FiberPOConfig, equations=EQUATIONS, outputs=("loss", "dlogp"),
    missing="the paper's APC-Obj (exact unconstrained reformulation of sample-based TV-TRPO) and its TRPO "
            "vanishing theorem; the Fibration Gating Hierarchy above the trajectory level (FiberPO-Domain's "
            "domain and prompt-group levels); the paper's numeric C⁺, C⁻, ε; its named regime taxonomy. "
            "Implemented: the trajectory (base) and token (fiber) levels as restated in arXiv 2604.03044 §3.3",
    extras={"fiberpo_gate": fiberpo_gate, "aggregate_gate": aggregate_gate, "base_weight": base_weight,
            "channel_aggregates": channel_aggregates, "fiber_factor": fiber_factor, "log_gate_vjp": log_gate_vjp,
            "conformance_configs": lambda: [
                ("tight-gates", {"c_pos": 0.02, "c_neg": 0.01, "eps": 0.005}, "ragged-garbage"),
                ("rollback", {"c_pos": 0.3, "c_neg": 0.25, "eps": 0.1}, "beyond-dual-clip"),
                ("wide-gates", {"c_pos": 5.0, "c_neg": 5.0, "eps": 5.0}, "token-level-adv"),
            ]},
    gradient="∂L/∂x_s = κ_s φ'_s + (p_s/T)Σ_t κ_t α_t − (q_s/T)Σ_t κ_t β_t with κ = −c·Â·G, φ'/ψ' the fiber clips' "
             "indicators, α_t = g⁺' − (φ'_t or ψ'_t), β_t = −g⁻' + (ψ'_t or φ'_t) by the token's sign label, "
             "g^±' ∈ {1, −T, 0}, p = 1[x > 0], q = 1[x < 0]: a local term plus a rank-two coupling inside each "
             "trajectory (block-diagonal); inside the trust region it is −c·Â·r, at r ≡ 1 −c·Â",
    properties=(
        "properties/test_fiberpo.py::test_hand_gradient_matches_finite_differences: dlogp = central FD (float64), "
        "every regime",
        "properties/test_fiberpo.py::test_gate_equals_ratio_inside_trust_region: G = r, loss = unclipped token-IS "
        "surrogate",
        "properties/test_fiberpo.py::test_identity_jacobian_on_policy: ∂G/∂r = I at r ≡ 1; dlogp = PPO's there",
        "properties/test_fiberpo.py::test_jacobian_block_diagonal_over_trajectories: no coupling across sequences",
        "properties/test_fiberpo.py::test_scale_separation: off-diagonal |∂log G_t/∂log r_s| ≤ 1/T_τ outside "
        "rollback; diagonal = φ' + O(1/T_τ)",
        "properties/test_fiberpo.py::test_channel_identity: mean_t log r = log s⁺ − log s⁻",
        "properties/test_fiberpo.py::test_aggregate_gate_continuity_and_slopes: continuous at C and (1+1/T)C; "
        "slopes 1, −T, 0; band width C/T",
        "properties/test_fiberpo.py::test_aggregate_gate_tends_to_hard_clip: T → ∞ gives a·1[|a| ≤ C]",
        "properties/test_fiberpo.py::test_both_channels_zeroed_gives_unit_base_weight",
        "properties/test_fiberpo.py::test_rollback_is_restorative: ∂w_base/∂log s⁺ < 0 (∂w_base/∂log s⁻ > 0) in "
        "rollback",
        "properties/test_fiberpo.py::test_uniform_drift_is_carried_by_the_base: uniform drift ⇒ r̃ ≡ 1, G = w_base",
        "properties/test_fiberpo.py::test_gate_bounded_and_finite_at_extreme_ratios: log G ∈ [−C⁻−2ε, C⁺+2ε]",
        "properties/test_fiberpo.py::test_bad_config_rejected",
        "untested: APC-Obj is an exact unconstrained reformulation of sample-based TV-TRPO, and the TRPO "
        "vanishing theorem (γ = 1) — their statements were not recovered",
        "untested: the Fibration Gating Hierarchy composes to any depth (FiberPO-Domain, four levels) — the "
        "composition rule and the domain/group gates were not recovered",
        "untested: the paper's five global and three local regimes — their definitions were not recovered "
        "(the three per-channel regimes of g are tested above)",
        "untested: a better update direction improves token efficiency — an empirical training claim",
    ),
))

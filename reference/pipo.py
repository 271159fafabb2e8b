"""PIRL / PIPO: Policy Improvement Policy Optimization — verify the previous update, then reinforce or undo it.

Wang, Li, Wang, Zhang, Lu, Huang, Chai, Yin, Wang, Zhou, Yang, Li, Ban, "Policy Improvement Reinforcement
Learning", arXiv 2604.00860 (v1 Apr 2026, v4 Jun 2026). Project page jacckma.github.io/pirl.
Official code: JacckMa/pipo_verl (verl 0.6.1; "layback" is PIPO there):
``verl/trainer/ppo/layback_utils.py`` (LaybackHistoryManager, compute_layback_coefficients,
compute_ppo_layback_coefficients), ``verl/trainer/config/algorithm.py`` (LaybackConfig),
``verl/trainer/ppo/ray_trainer.py`` (_should_perform_layback, _perform_layback_update, the fit loop),
``verl/trainer/ppo/core_algos.py`` (compute_policy_loss_grpo_layback).

Place in the pipeline: a SECOND, RETROSPECTIVE UPDATE per iteration. At iteration t the base algorithm
updates on the fresh batch B_t as usual; PIPO then measures whether the previous update helped (the mean
reward μ_t of B_t against a sliding window of earlier means) and takes one more clipped-surrogate step on
the PREVIOUS batch B_{t−1}, with the PI reward r̂ in place of the advantage and the ratio taken against
the policy that sampled B_{t−1}::

    adv_t              = registry.get("grpo")(rewards_t, group_t, mask_t)          # base step on B_t
    r_hat, state       = pipo_step(state, rewards_t, adv_{t−1}, group_{t−1}, mask_{t−1})   # this module
    loss_PI            = registry.get("ppo")(logp_{t−1}, old_logp_{t−1}, r_hat, mask_{t−1})

Equations (μ_t = mean reward of B_t; the window holds the K previous means μ_{t−1}, …, μ_{t−K})::

    PIRL objective   Σ_{t=1}^{T} (J(π_t) − J(π_{t−1})) = J(π_T) − J(π_0)              (telescoping)
    anchor           μ_his = mean(window),  σ_his = std(window)  (ddof 0; σ = 1 if < 2 entries or σ < 1e-8)
    feedback         ξ_t = (μ_t − μ_his) / σ_his                                         (standardised progress)
    rectifier        φ_λ(x) = x for x ≥ 0,  λ·x for x < 0                               (λ = 0.1)
    attribution      a_i = G·Ā_i / Σ_{j∈g} |Ā_j|     (GRPO: Ā = sequence advantage; Σ_g |a| = G)
                     a_{i,t} = A_{i,t}               (PPO: the GAE advantage itself, attribution="none")
    PI reward        r̂_i = a_i · φ_λ(ξ_t)                                             (Definition 2)

ξ_t > 0: the last update raised the reward above its recent level, so it is reinforced (r̂ has the sign of
A); ξ_t < 0: it is partly undone (r̂ has the opposite sign, scaled by λ). The window state is the frozen
:class:`PIPOState`; :func:`update` is pure and returns a new state.

Paper vs official code (the paper is implemented; the code's choices are options):

=====================  ============================  =================================================
quantity               paper (default)               official code (option)
=====================  ============================  =================================================
negative ξ             λ = 0.1 (``lam``)             ``loss_scale_neg = 0.0``: no PI step (lam=0)
ξ clip                 none (``progress_clip=None``)  μ_t − μ_his clipped to ±5 before dividing by σ
r̂ clip                 none (``coef_clip=None``)      a·ξ clamped to ±10 (then scaled by λ if ξ < 0)
attribution ε          0 (``attribution_eps``)        Σ|Ā| + 1e-6
window                 K previous means              μ_t is appended BEFORE the anchor is read and again
                       (``anchor="previous"``)       after the step (``anchor="code"``): the window holds
                                                     each mean twice and includes μ_t itself
min. history           (not stated) 8 (code)         ``min_steps_before_layback = 8`` entries
=====================  ============================  =================================================

σ uses the population std (np.std, ddof = 0) as in the code; the paper's ddof could not be read; a σ below
1e-8 is replaced by 1 (the code's step decision uses 1e-8, its coefficient computation 1e-6). The
code's loss for the PI step is −min(ρ, clip(ρ))·r̂ (the clipped ratio multiplied by r̂), which differs
from the PPO surrogate −min(ρ r̂, clip(ρ) r̂) when r̂ < 0; we feed r̂ to the registry's PPO loss as the
paper describes ("one clipped-surrogate step with r̂ in place of A") and note the difference here.

Provenance. The arXiv HTML's opening and the project page were read (sliding-window anchor over K
iterations, μ_t − μ_his normalised into ξ_t, reinforce for ξ_t > 0 and rectify for ξ_t ≤ 0, Definition 2
as the product of the global verdict and a local attribution; K = 8, λ = 0.1 per our notes); the exact
displayed formulas were not legible there, so every formula was confirmed in the official code.

Defined cases: an empty window (first iteration) or fewer than ``min_history`` entries gives no PI step
(r̂ = 0, the state is still updated); a group whose Ā are all 0 gets a = 0; a row without valid tokens
has Ā = 0; |ξ| ≤ ``threshold`` (when > 0) gives no PI step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

PIPO_PAPER = Paper(arxiv="2604.00860", title="Policy Improvement Reinforcement Learning", year=2026)
ANCHORS = ("previous", "code")
ATTRIBUTIONS = ("group", "none")
_CODE = "JacckMa/pipo_verl"


@dataclass(frozen=True)
class PIPOConfig:
    """window: K, the number of past batch means kept (paper 8). lam: λ of the rectifier (paper 0.1; code 0).
    min_history: entries needed before a PI step (code 8). ddof: of σ_his (code 0). normalize: divide by σ_his.
    sigma_floor: σ_his below it is replaced by 1 (code: 1e-6 where the coefficients are computed).
    progress_clip: clip μ_t − μ_his (code 5; paper none). coef_clip: clamp a·ξ (code 10; paper none).
    attribution_eps: added to Σ|Ā| (code 1e-6; paper 0). threshold: no PI step when |ξ| ≤ threshold (code
    option, 0 = off). anchor: "previous" (paper) or "code". attribution: "group" (GRPO: G·Ā/Σ|Ā|) or "none"
    (PPO: the token advantage itself)."""

    window: int = 8
    lam: float = 0.1
    min_history: int = 8
    ddof: int = 0
    normalize: bool = True
    sigma_floor: float = 1e-8
    progress_clip: float | None = None
    coef_clip: float | None = None
    attribution_eps: float = 0.0
    threshold: float = 0.0
    anchor: str = "previous"
    attribution: str = "group"

    def __post_init__(self) -> None:
        for name in ("window", "min_history"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise fail(name, repr(v), "an integer ≥ 1")
        if self.min_history > self.window:
            raise fail("min_history", repr(self.min_history), f"at most window = {self.window}")
        positive(self.lam, "lam", allow_zero=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std, as the code) or 1")
        if not isinstance(self.normalize, bool):
            raise fail("normalize", repr(self.normalize), "True or False")
        positive(self.sigma_floor, "sigma_floor", allow_zero=True)
        for name in ("progress_clip", "coef_clip"):
            if getattr(self, name) is not None:
                positive(getattr(self, name), name)
        positive(self.attribution_eps, "attribution_eps", allow_zero=True)
        positive(self.threshold, "threshold", allow_zero=True)
        choice(self.anchor, "anchor", ANCHORS)
        choice(self.attribution, "attribution", ATTRIBUTIONS)


def code_config(**overrides: Any) -> PIPOConfig:
    """The official code's defaults (LaybackConfig + layback_utils constants) as a PIPOConfig."""
    base = dict(lam=0.0, progress_clip=5.0, coef_clip=10.0, attribution_eps=1e-6, sigma_floor=1e-6, anchor="code")
    return PIPOConfig(**{**base, **overrides})


@dataclass(frozen=True)
class PIPOState:
    """The sliding window: past batch mean rewards, oldest first, at most ``window`` of them (K,) float64."""

    history: np.ndarray = field(default_factory=lambda: np.zeros(0))


def init_state() -> PIPOState:
    """The state before the first iteration: an empty window."""
    return PIPOState(history=np.zeros(0))


def check_state(state: Any) -> np.ndarray:
    if not isinstance(state, PIPOState):
        raise fail("state", type(state).__name__, "a PIPOState (rlspec.reference.pipo.init_state)")
    return finite_vector(state.history, "state.history")


# ------------------------------------------------------------------------------------------- objective

def cumulative_improvement(J: Any) -> float:
    """PIRL objective Σ_{t=1}^{T} (J_t − J_{t−1}) for a sequence of performances J_0..J_T (T ≥ 0)."""
    J = finite_vector(J, "J")
    return float(np.diff(J).sum())


# ------------------------------------------------------------------------------------- window and ξ

def push(history: np.ndarray, mu: float, window: int) -> np.ndarray:
    """The window after appending μ (a new array; the last ``window`` entries are kept)."""
    return np.append(history, mu)[-window:]


def anchor_window(history: np.ndarray, mu_t: float, cfg: PIPOConfig) -> np.ndarray:
    """The entries μ_his and σ_his are read from: the previous means (paper), or, as in the code, the window
    after μ_t has been appended to it."""
    return history[-cfg.window:] if cfg.anchor == "previous" else push(history, mu_t, cfg.window)


def anchor_stats(w: np.ndarray, cfg: PIPOConfig) -> tuple[float, float]:
    """(μ_his, σ_his): mean and std (ddof) of the window; σ = 1 with < 2 entries, K = 1, or σ < sigma_floor."""
    mu_his = float(w.mean())
    if w.size < 2 or cfg.window == 1:
        return mu_his, 1.0
    sigma = float(w.std(ddof=cfg.ddof))
    return mu_his, (1.0 if sigma < cfg.sigma_floor else sigma)


def feedback(state: PIPOState, mu_t: float, config: PIPOConfig | None = None) -> tuple[float, bool]:
    """(ξ_t, active): the standardised progress of μ_t over the anchor, and whether a PI step is taken
    (enough history, and |ξ| > threshold when a threshold is set)."""
    cfg = config or PIPOConfig()
    w = anchor_window(check_state(state), float(mu_t), cfg)
    if w.size == 0 or w.size < cfg.min_history:
        return 0.0, False
    mu_his, sigma = anchor_stats(w, cfg)
    progress = float(mu_t) - mu_his
    if cfg.progress_clip is not None:
        progress = float(np.clip(progress, -cfg.progress_clip, cfg.progress_clip))
    xi = progress / sigma if cfg.normalize else progress
    return xi, not (cfg.threshold > 0 and abs(xi) <= cfg.threshold)


def update(state: PIPOState, mu_t: float, config: PIPOConfig | None = None) -> PIPOState:
    """The window after iteration t (pure: ``state`` is not modified). Paper: μ_t appended once. Code
    (anchor="code"): appended before the anchor is read and once more after the step, i.e. twice."""
    cfg = config or PIPOConfig()
    h = check_state(state)
    mu = float(finite_vector([mu_t], "mu_t")[0])
    h = push(h, mu, cfg.window)
    if cfg.anchor == "code":
        h = push(h, mu, cfg.window)
    return PIPOState(history=h)


# ------------------------------------------------------------------------------------- PI reward

def rectify(x: float, lam: float) -> float:
    """φ_λ(x) = x for x ≥ 0, λx for x < 0."""
    return x if x >= 0 else lam * x


def sequence_advantage(A: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Ā_i (B,): masked token-mean of the token advantages (= A_i for outcome advantages); 0 for empty rows."""
    n = M.sum(axis=1)
    return np.divide(A.sum(axis=1), n, out=np.zeros(M.shape[0]), where=n > 0)


def group_attribution(A_seq: np.ndarray, g: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """a_i = G·Ā_i / (Σ_{j∈g} |Ā_j| + ε) (B,), G the group's size; 0 in a group whose Ā are all 0."""
    a = np.zeros_like(A_seq)
    for k in np.unique(g):
        rows = g == k
        total = np.abs(A_seq[rows]).sum() + eps
        if total > 0:
            a[rows] = rows.sum() * A_seq[rows] / total
    return a


def pi_reward(a: np.ndarray, xi: float, cfg: PIPOConfig) -> np.ndarray:
    """r̂ = a·φ_λ(ξ) (any shape). With coef_clip (code) a·ξ is clamped first, then scaled by λ when ξ < 0."""
    c = a * xi
    if cfg.coef_clip is not None:
        c = np.clip(c, -cfg.coef_clip, cfg.coef_clip)
    return c if xi >= 0 else cfg.lam * c


def ppo_gate(adv: Any, xi: float, gate_min: float = -2.0, gate_max: float = 2.0) -> np.ndarray:
    """The official code's PPO-native variant (compute_ppo_layback_coefficients): the CURRENT batch's GAE
    advantages multiplied by clip(ξ, gate_min, gate_max), instead of a retrospective step. Not the paper's form."""
    return np.asarray(adv, dtype=np.float64) * float(np.clip(xi, gate_min, gate_max))


# ------------------------------------------------------------------------------------------- step

def pipo_step(state: PIPOState, rewards: Any, prev_adv: Any, prev_group: Any, prev_mask: Any,
              config: PIPOConfig | None = None) -> tuple[np.ndarray, PIPOState]:
    """One PIPO verification at iteration t: ``(r_hat (B′, T′), new_state)``.

    Args: state: the window before iteration t; rewards (B,) outcome rewards of the fresh batch B_t (μ_t is
    their mean); prev_adv (B′, T′) the advantages the base step used on B_{t−1}; prev_group (B′,) its prompt
    ids; prev_mask (B′, T′) its mask.
    Returns: the PI reward r̂ (B′, T′) for the previous batch (0 at masked positions, and everywhere when no PI
    step is taken) and the updated window. Pure: no argument is modified.
    """
    cfg = config or PIPOConfig()
    R = finite_vector(rewards, "rewards")
    if R.size == 0:
        raise fail("rewards", "an empty batch", "at least one reward of the fresh batch (μ_t is their mean)")
    M = as_mask(prev_mask, "prev_mask")
    if M.ndim != 2:
        raise fail("prev_mask", f"shape {M.shape}", "shape (B′, T′)")
    A = masked_array(prev_adv, "prev_adv", M)
    g = group_ids(prev_group, M.shape[0], "prev_group")
    mu_t = float(R.mean())
    xi, active = feedback(state, mu_t, cfg)
    if cfg.attribution == "group":
        a = group_attribution(sequence_advantage(A, M), g, cfg.attribution_eps)[:, None] * np.ones_like(A)
    else:
        a = A
    r_hat = np.where(M, pi_reward(a, xi, cfg), 0.0) if active else np.zeros_like(A)
    return r_hat, update(state, mu_t, cfg)


def make_inputs(rng: np.random.Generator) -> dict:
    """A window of 0..10 past means (so both the inactive and the active case occur), a fresh batch of binary
    rewards, and a previous batch of GRPO-like advantages over small groups with a ragged mask."""
    K = int(rng.integers(0, 11))
    base = rng.uniform(0.2, 0.6)
    history = np.clip(base + np.cumsum(rng.normal(0, 0.03, K)), 0, 1)
    B, Bp, T = int(rng.integers(1, 17)), int(rng.integers(1, 10)), int(rng.integers(1, 6))
    rewards = (rng.random(B) < rng.uniform(0.1, 0.9)).astype(np.float64)
    group = rng.integers(0, max(1, Bp // 3), size=Bp)
    seq = rng.normal(size=Bp) if rng.random() < 0.5 else rng.choice([-1.0, 0.0, 1.0], size=Bp)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=Bp)[:, None]
    adv = np.where(mask, seq[:, None] + (0.0 if rng.random() < 0.7 else rng.normal(0, 0.1, (Bp, T))), np.nan)
    return {"state": PIPOState(history=history), "rewards": rewards, "prev_adv": adv, "prev_group": group,
            "prev_mask": mask}


EQUATIONS = (
    Equation("pirl-objective", "Σ_{t=1}^{T} (J(π_t) − J(π_{t−1})) = J(π_T) − J(π_0)", "arXiv 2604.00860 §PIRL",
             "paper", "cumulative_improvement",
             note="abstract: the temporal objective is aligned with final performance (telescoping; our notes)"),
    Equation("pipo-anchor", "μ_his = mean(μ_{t−1..t−K}), σ_his = std(μ_{t−1..t−K}); K = 8",
             "arXiv 2604.00860 §PIPO (sliding-window anchor)", "official-code", "anchor_stats",
             note=f"{_CODE} layback_utils.py::_compute_progress_scale (np.std, ddof 0; σ = 1 if < 2 entries, K = 1 "
                  "or σ < 1e-8); project page: window of the past K iterations. The fit loop in ray_trainer.py "
                  "appends μ_t before reading the window and again after the step (anchor='code')"),
    Equation("pipo-feedback", "ξ_t = (μ_t − μ_his)/σ_his", "arXiv 2604.00860 §PIPO", "official-code", "feedback",
             note=f"project page: μ_t − μ_his measures the improvement, normalised into ξ_t; {_CODE} clips "
                  "μ_t − μ_his to ±5 first (progress_clip) and can skip |ξ| ≤ threshold"),
    Equation("pipo-rectifier", "φ_λ(x) = x (x ≥ 0), λx (x < 0); λ = 0.1", "arXiv 2604.00860 §PIPO", "secondary",
             "rectify",
             note=f"form and λ = 0.1 from our notes (papers_B.md §3); {_CODE} skips the PI step for negative "
                  "progress (loss_scale_neg = 0.0) or scales its loss by loss_scale_neg, i.e. λ = loss_scale_neg"),
    Equation("pipo-attribution", "a_i = G·A_i / Σ_{j∈g}|A_j|  (GRPO);  a = A^GAE (PPO)",
             "arXiv 2604.00860 §PIPO (local attribution)", "official-code", "group_attribution",
             note=f"{_CODE} compute_layback_coefficients: A = masked token-mean of the stored advantages, "
                  "Σ|A| + 1e-6 (attribution_eps), groups of equal size required there"),
    Equation("pipo-pi-reward", "r̂_i = a_i · φ_λ(ξ_t)", "arXiv 2604.00860 Definition 2", "official-code",
             "pi_reward",
             note=f"{_CODE}: coefficient clamp(a·ξ, ±10), loss scaled by loss_scale_neg when ξ < 0; the PI loss "
                  "there is −min(ρ, clip ρ)·r̂ (core_algos.py compute_policy_loss_grpo_layback), we use ppo's "
                  "surrogate as the paper states"),
    Equation("pipo-ppo-gate", "A ← A^GAE · clip(ξ_t, −2, 2) on the current batch",
             "official code only (PPO-native layback)", "official-code", "ppo_gate",
             note=f"{_CODE} layback_utils.py::compute_ppo_layback_coefficients; differs from the paper's PPO form "
                  "(attribution='none' on the previous batch)"),
)

register(Spec(
    name="pipo", kind="tracker", family="advantage", paper=PIPO_PAPER, status="implemented",
    summary="retrospective second update: a sliding window of batch mean rewards verifies the previous step "
            "(ξ_t), and the previous batch is replayed with r̂ = a·φ_λ(ξ_t) in place of its advantage",
    fn=pipo_step, config_cls=PIPOConfig, outputs=("adv", "state"), make_inputs=make_inputs, equations=EQUATIONS,
    extras={"init_state": init_state, "update": update, "feedback": feedback, "rectify": rectify,
            "group_attribution": group_attribution, "pi_reward": pi_reward, "ppo_gate": ppo_gate,
            "code_config": code_config, "cumulative_improvement": cumulative_improvement,
            "conformance_configs": lambda: [
                ("code", {"lam": 0.0, "progress_clip": 5.0, "coef_clip": 10.0, "attribution_eps": 1e-6,
                          "sigma_floor": 1e-6, "anchor": "code"}),
                ("code-neg-scale", {"lam": 0.5, "progress_clip": 5.0, "coef_clip": 10.0, "anchor": "code"}),
                ("ppo", {"attribution": "none", "min_history": 1}), ("K=1", {"window": 1, "min_history": 1}),
                ("ddof=1,threshold", {"ddof": 1, "threshold": 0.5, "min_history": 2})]},
    gradient="not a loss: r̂ is a constant weight per token of the previous batch; the PI step is the base loss "
             "(ppo) on B_{t−1} with adv = r̂ and the ratio against the policy that sampled B_{t−1}",
    properties=(
        "properties/test_pipo.py::test_telescoping_objective: Σ (J_t − J_{t−1}) = J_T − J_0",
        "properties/test_pipo.py::test_sign_rule: sign(r̂_i) = sign(A_i)·sign(ξ_t) (λ > 0); λ = 0 ⇒ no step when ξ < 0",
        "properties/test_pipo.py::test_group_attribution_identity: Σ_{i∈g}|a_i| = G, invariant to scaling A",
        "properties/test_pipo.py::test_rectifier_properties: φ_λ monotone, continuous at 0, φ_λ(x)·x ≥ 0",
        "properties/test_pipo.py::test_feedback_against_explicit_window: ξ_t from the K previous means",
        "properties/test_pipo.py::test_update_is_pure_and_replayable: replay gives identical states, inputs unchanged",
        "properties/test_pipo.py::test_code_anchor_appends_twice_and_includes_mu_t",
        "properties/test_pipo.py::test_code_config_matches_official_formula: clip ±5, clamp ±10, ε = 1e-6, λ = 0 skip",
        "properties/test_pipo.py::test_pi_step_is_local_ascent_under_sign_consistency: with φ(ξ)ΔJ ≥ 0 the PI "
        "direction (ppo gradient at ratio 1) has ⟨∇J, d⟩ ≥ 0 (first order, one group, exact bandit)",
        "properties/test_pipo.py::test_composition_with_ppo: r̂ as the ppo advantage on the previous batch",
        "properties/test_pipo.py::test_inactive_without_history_and_padding_ignored",
        "properties/test_pipo.py::test_bad_input_raises",
        "untested: PIPO is ascent on the PIRL objective in expectation (Assumption C.2, sign consistency) for "
        "several groups and finite-sample noise — the claim is about expectations over sampling and a first-order "
        "expansion; only its deterministic one-group core is tested",
        "untested: the GRPO scaling factor η(p) ∝ 1/(p(1−p)) cited as motivation — its exact form differs between "
        "paper versions and it is not part of the algorithm",
    ),
))

"""CRAFT-GUI: a difficulty curriculum over GRPO for GUI agents, with a rule + judge composite reward.

Nong, Tang, Xu, Zhou, Chen, Jiang, Xu (Ant Group, Zhejiang University), "CRAFT-GUI: Curriculum-Reinforced Agent
For GUI Tasks", arXiv 2508.11360 (v1 Aug 2025, v2 Mar 2026). No code was found. Only the abstract could be read
here; it fixes the structure and nothing else: (1) a curriculum "based on GRPO that explicitly accounts for the
varying difficulty across trajectories", instead of treating the training data as a uniform set; (2) a reward
"that combines simple rule-based signals with model-judged evaluation". Every formula below beyond GRPO is
therefore OUR reconstruction (tagged ``reconstructed``): the difficulty measure, the stage schedule, the pool
rule, the reward components and their weights. The entry is registered as ``partial``.

Place in the pipeline::

    curriculum  which TASKS ARE SAMPLED this step: the current stage's pool of difficulty tiers   (craft_gui)
    reward      r = w_f·fmt + w_t·1[type] + w_a·arg + w_j·judge, gated by the format             (craft_gui_reward)
    advantage   GRPO z-score of r within the task's group                                       (registry "grpo")
    loss        GRPO's clipped surrogate + β·KL                                 (registry "ppo" + "kl_k3")

Curriculum (reconstructed). A task's difficulty score is its trajectory length in steps (``score``; a model
pass rate can be passed instead, as 1 − pass rate); it is binned into tiers k = #{edges ≤ score} (default
edges (3, 6): ≤ 2 steps easy, 3–5 medium, ≥ 6 hard). Training runs in stages s = 0, …, K−1; stage s samples
uniformly from the pool of tiers ≤ s (``pool="cumulative"``, easy tasks stay in the mix) or = s
(``pool="exclusive"``). The stage is explicit state::

    CraftGUIState(stage, steps_in_stage, ema)          ema ← β·ema + (1 − β)·mean(batch reward)
    advance when steps_in_stage ≥ stage_steps                            (advance="schedule", default)
             or steps_in_stage ≥ stage_steps and ema ≥ threshold         (advance="threshold")

:func:`update` is pure (returns a new state); :func:`craft_gui` = update with this step's rewards, then the
next step's sampling probabilities and draws (inverse CDF of supplied uniforms, so the draw is a pure function).
An empty pool (no task in the stage's tiers) falls back to the easiest tier above the stage, else the hardest
tier below it — the largest eligible tier never decreases from one stage to the next.

Reward (reconstructed). Components in [0, 1] for one predicted action against the ground truth:

    fmt    1 if the action parses, else 0 (then r = 0: nothing else can be scored)     (format_gate)
    type   1[predicted type = ground-truth type]
    arg    click: 1[point ∈ bbox] (``click="bbox"``) or max(0, 1 − dist(point, bbox)/scale) ("distance");
           type: token F1 of the text; scroll: 1[direction matches]; counted only with the right type
    judge  a user-supplied callable (a VLM/LLM judge) returning scores in [0, 1]; tests use a deterministic one

    r = fmt · (w_f + w_t·type + w_a·type·arg + w_j·judge),   w ≥ 0, Σ w = 1   (defaults 0.1, 0.3, 0.4, 0.2)

so r ∈ [0, 1], and with every weight > 0, r = 1 iff the action is fully correct (parses, right type, right
argument, judge 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import choice, fail, finite_vector, in_range, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

CRAFT_GUI_PAPER = Paper(arxiv="2508.11360", title="CRAFT-GUI: Curriculum-Reinforced Agent For GUI Tasks", year=2025)
ACTION_TYPES = ("click", "type", "scroll")
SCROLL_DIRECTIONS = ("up", "down", "left", "right")


# --------------------------------------------------------------------------- curriculum
@dataclass(frozen=True)
class CraftGUIConfig:
    """edges: difficulty-score bin edges, tier = #{edges ≤ score} (ours: (3, 6) steps); pool: "cumulative"
    (tiers ≤ stage) or "exclusive" (tier = stage); advance: "schedule" (after stage_steps steps) or "threshold"
    (also needs the reward EMA ≥ threshold); stage_steps ≥ 1; threshold in [0, 1]; ema_decay β in [0, 1).
    All reconstructed: the paper's difficulty measure and schedule were not recovered."""

    edges: tuple[float, ...] = (3.0, 6.0)
    pool: str = "cumulative"
    advance: str = "schedule"
    stage_steps: int = 100
    threshold: float = 0.8
    ema_decay: float = 0.9

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
            raise fail("edges", repr(self.edges), "a strictly increasing tuple of finite bin edges")
        choice(self.pool, "pool", ("cumulative", "exclusive"))
        choice(self.advance, "advance", ("schedule", "threshold"))
        if not isinstance(self.stage_steps, int) or isinstance(self.stage_steps, bool) or self.stage_steps < 1:
            raise fail("stage_steps", repr(self.stage_steps), "an integer ≥ 1")
        in_range(self.threshold, "threshold", 0.0, 1.0)
        in_range(self.ema_decay, "ema_decay", 0.0, 1.0, hi_open=True)

    @property
    def n_stages(self) -> int:
        return len(self.edges) + 1


@dataclass(frozen=True)
class CraftGUIState:
    """stage s (0-based), steps spent in it, EMA of the mean batch reward since the stage began. Never mutated."""

    stage: int = 0
    steps_in_stage: int = 0
    ema: float = 0.0


def init_state() -> CraftGUIState:
    """Stage 0 (the easiest tier), no steps, EMA 0."""
    return CraftGUIState()


def difficulty_tier(score, edges: Sequence[float]) -> np.ndarray:
    """k (N,) int = #{edges ≤ score}: the tier of each task's difficulty score (e.g. trajectory steps)."""
    s = finite_vector(score, "score")
    return np.searchsorted(np.asarray(edges, dtype=np.float64), s, side="right").astype(np.int64)


def check_state(state: Any, n_stages: int) -> CraftGUIState:
    if not isinstance(state, CraftGUIState):
        raise fail("state", type(state).__name__, "a CraftGUIState (craft_gui.init_state())")
    s, k = state.stage, state.steps_in_stage
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (s, k)) or not 0 <= s < n_stages \
            or k < 0:
        raise fail("state", f"stage {s!r}, steps_in_stage {k!r}", f"a stage in 0..{n_stages - 1} and steps ≥ 0")
    in_range(state.ema, "state.ema", 0.0, 1.0)
    return state


def update(state: CraftGUIState, reward, config: CraftGUIConfig | None = None) -> CraftGUIState:
    """One training step: steps_in_stage + 1, EMA of the batch's mean reward (rewards (B,) in [0, 1], B ≥ 1),
    then advance a stage (resetting steps and EMA) if the rule says so. Pure."""
    cfg = config or CraftGUIConfig()
    st = check_state(state, cfg.n_stages)
    r = finite_vector(reward, "reward")
    if r.size == 0 or (r < 0).any() or (r > 1).any():
        raise fail("reward", f"{r.size} values", "at least one reward, all in [0, 1]")
    steps = int(st.steps_in_stage) + 1
    ema = cfg.ema_decay * st.ema + (1.0 - cfg.ema_decay) * float(r.mean())
    due = steps >= cfg.stage_steps and (cfg.advance == "schedule" or ema >= cfg.threshold)
    if due and st.stage < cfg.n_stages - 1:
        return CraftGUIState(stage=int(st.stage) + 1, steps_in_stage=0, ema=0.0)
    return CraftGUIState(stage=int(st.stage), steps_in_stage=steps, ema=ema)


def stage_pool(tier: np.ndarray, stage: int, pool: str) -> np.ndarray:
    """eligible (N,) bool: tiers ≤ stage ("cumulative") or = stage ("exclusive"); if none, the easiest tier above
    the stage, else the hardest tier below it."""
    eligible = tier <= stage if pool == "cumulative" else tier == stage
    if eligible.any() or tier.size == 0:
        return eligible
    above = tier[tier > stage]
    return tier == (above.min() if above.size else tier.max())


def stage_probs(tier, stage: int, config: CraftGUIConfig | None = None) -> np.ndarray:
    """Sampling probabilities (N,): uniform over the stage's pool, 0 elsewhere."""
    cfg = config or CraftGUIConfig()
    t = np.asarray(tier)
    if t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.integer) or (t < 0).any():
        raise fail("tier", f"{t.dtype} {t.shape}", "a non-empty 1-D array of tiers ≥ 0")
    e = stage_pool(t, int(stage), cfg.pool).astype(np.float64)
    return e / e.sum()


def sample_tasks(probs: np.ndarray, u) -> np.ndarray:
    """idx (n,): task q for each uniform u in [F_{q−1}, F_q) (F the cumulative probabilities); pure."""
    uu = finite_vector(u, "u")
    if ((uu < 0) | (uu >= 1)).any():
        raise fail("u", "values outside [0, 1)", "uniforms in [0, 1)")
    F = np.cumsum(probs)
    F[-1] = 1.0
    idx = np.searchsorted(F, uu, side="right")
    return np.minimum(idx, probs.size - 1).astype(np.int64)


def craft_gui(state: CraftGUIState, tier, reward, u, config: CraftGUIConfig | None = None):
    """One curriculum step after this step's rollouts.

    Args: state; tier (N,) task tiers (from :func:`difficulty_tier`); reward (B,) this step's rewards in [0, 1];
    u (n,) uniforms in [0, 1) for drawing the next n tasks.
    Returns: (probs (N,) after the update, next_idx (n,), new_state).
    """
    cfg = config or CraftGUIConfig()
    new = update(state, reward, cfg)
    probs = stage_probs(tier, new.stage, cfg)
    return probs, sample_tasks(probs, u), new


def make_inputs(rng: np.random.Generator) -> dict:
    """A random state, tiers 0..2 (some tiers possibly empty), rewards in [0, 1], uniforms."""
    N = int(rng.integers(1, 12))
    tier = rng.integers(0, 3, size=N) if rng.random() < 0.7 else np.full(N, int(rng.integers(0, 3)))
    state = CraftGUIState(stage=int(rng.integers(0, 3)), steps_in_stage=int(rng.integers(0, 120)),
                          ema=float(rng.choice([0.0, 0.79, 0.81, rng.random()])))
    reward = rng.choice([0.0, 0.2, 0.5, 0.9, 1.0], size=int(rng.integers(1, 9)))
    return {"state": state, "tier": tier.astype(np.int64), "reward": reward, "u": rng.random(int(rng.integers(1, 8)))}


# --------------------------------------------------------------------------- reward
@dataclass(frozen=True)
class CraftGUIRewardConfig:
    """w_fmt, w_type, w_arg, w_judge ≥ 0 summing to 1 (ours: 0.1, 0.3, 0.4, 0.2); format_gate: an unparseable
    action scores 0; arg_requires_type: the argument counts only with the right action type; click: "bbox"
    (point inside the box) or "distance" (linear decay over ``click_scale`` pixels). All reconstructed."""

    w_fmt: float = 0.1
    w_type: float = 0.3
    w_arg: float = 0.4
    w_judge: float = 0.2
    format_gate: bool = True
    arg_requires_type: bool = True
    click: str = "bbox"
    click_scale: float = 50.0

    def __post_init__(self) -> None:
        w = [positive(getattr(self, k), k, allow_zero=True) for k in ("w_fmt", "w_type", "w_arg", "w_judge")]
        if abs(sum(w) - 1.0) > 1e-12:
            raise fail("w_fmt + w_type + w_arg + w_judge", f"{sum(w)!r}", "weights summing to 1 (so r ∈ [0, 1])")
        for k in ("format_gate", "arg_requires_type"):
            if not isinstance(getattr(self, k), bool):
                raise fail(k, repr(getattr(self, k)), "True or False")
        choice(self.click, "click", ("bbox", "distance"))
        positive(self.click_scale, "click_scale")


def _unit(x, name: str, B: int | None = None, binary: bool = False) -> np.ndarray:
    a = finite_vector(x, name, B)
    if binary and not np.isin(a, (0.0, 1.0)).all():
        raise fail(name, "values other than 0/1", "0/1 (or bool) values")
    if ((a < 0) | (a > 1)).any():
        raise fail(name, f"values in [{a.min()}, {a.max()}]", "values in [0, 1]")
    return a


def composite_reward(fmt: np.ndarray, type_ok: np.ndarray, arg: np.ndarray, judge: np.ndarray,
                     cfg: CraftGUIRewardConfig) -> np.ndarray:
    """r = g·(w_f·fmt + w_t·type + w_a·type^[gate]·arg + w_j·judge), g = fmt with the format gate (else 1)."""
    a = arg * type_ok if cfg.arg_requires_type else arg
    r = cfg.w_fmt * fmt + cfg.w_type * type_ok + cfg.w_arg * a + cfg.w_judge * judge
    return fmt * r if cfg.format_gate else r


def craft_gui_reward(fmt, type_ok, arg, judge, config: CraftGUIRewardConfig | None = None) -> np.ndarray:
    """Composite reward (B,) in [0, 1] from the four components.

    Args: fmt (B,) 0/1 action parses; type_ok (B,) 0/1 type matches; arg (B,) in [0, 1] argument score;
    judge (B,) in [0, 1] the judge's score. Returns r (B,).
    """
    cfg = config or CraftGUIRewardConfig()
    f = _unit(fmt, "fmt", binary=True)
    B = f.shape[0]
    return composite_reward(f, _unit(type_ok, "type_ok", B, binary=True), _unit(arg, "arg", B),
                            _unit(judge, "judge", B), cfg)


def click_score(point, bbox, mode: str = "bbox", scale: float = 50.0) -> float:
    """1[point ∈ bbox] ("bbox"), or max(0, 1 − d/scale) with d the Euclidean distance from the point to the box
    ("distance"; 1 inside). bbox = (x0, y0, x1, y1), x0 ≤ x1, y0 ≤ y1."""
    x, y = (float(v) for v in point)
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x0 <= x1 and y0 <= y1) or not np.isfinite([x, y, x0, y0, x1, y1]).all():
        raise fail("bbox", repr(tuple(bbox)), "finite (x0, y0, x1, y1) with x0 ≤ x1, y0 ≤ y1 (and a finite point)")
    d = float(np.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1)))
    return float(d == 0.0) if mode == "bbox" else max(0.0, 1.0 - d / scale)


def text_f1(pred: str, gt: str) -> float:
    """Token F1 of lower-cased whitespace tokens (1 if both are empty, 0 if only one is)."""
    p, g = str(pred).lower().split(), str(gt).lower().split()
    if not p or not g:
        return float(not p and not g)
    common = sum(min(p.count(t), g.count(t)) for t in set(g))
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def rule_components(pred: dict | None, gt: dict, cfg: CraftGUIRewardConfig) -> tuple[float, float, float]:
    """(fmt, type_ok, arg) of one predicted action dict against the ground truth.

    Actions: {"type": "click", "point": (x, y)} (gt: "bbox"), {"type": "type", "text": str},
    {"type": "scroll", "direction": one of up/down/left/right}. ``pred`` None (or a malformed dict) = unparseable.
    """
    if not isinstance(gt, dict) or gt.get("type") not in ACTION_TYPES:
        raise fail("gt", repr(gt), f"an action dict with 'type' in {ACTION_TYPES}")
    try:
        kind = pred["type"]
        if kind == "click":
            arg_pred = tuple(float(v) for v in pred["point"])
            ok = len(arg_pred) == 2 and np.isfinite(arg_pred).all()
        elif kind == "type":
            arg_pred, ok = pred["text"], isinstance(pred["text"], str)
        elif kind == "scroll":
            arg_pred, ok = pred["direction"], pred["direction"] in SCROLL_DIRECTIONS
        else:
            ok = False
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        return 0.0, 0.0, 0.0
    if kind != gt["type"]:
        return 1.0, 0.0, 0.0
    if kind == "click":
        return 1.0, 1.0, click_score(arg_pred, gt["bbox"], cfg.click, cfg.click_scale)
    if kind == "type":
        return 1.0, 1.0, text_f1(arg_pred, gt["text"])
    return 1.0, 1.0, float(arg_pred == gt["direction"])


def score_actions(preds: Sequence[dict | None], gts: Sequence[dict],
                  judge: Callable[[list, list], Any], config: CraftGUIRewardConfig | None = None) -> dict:
    """Components and reward of a batch of predicted actions.

    ``judge(preds, gts)`` is the user's model judge, called once on the parseable predictions (with their ground
    truths) and returning one score in [0, 1] each; unparseable predictions get judge score 0 without a call.
    Returns {"fmt", "type_ok", "arg", "judge", "reward"} arrays (B,).
    """
    cfg = config or CraftGUIRewardConfig()
    if len(preds) != len(gts):
        raise fail("preds", f"{len(preds)} predictions", f"one per ground truth ({len(gts)})")
    comp = np.array([rule_components(p, g, cfg) for p, g in zip(preds, gts)], dtype=np.float64).reshape(-1, 3)
    fmt, type_ok, arg = comp.T
    j = np.zeros(len(preds))
    ok = np.flatnonzero(fmt == 1)
    if ok.size:
        got = np.asarray(judge([preds[i] for i in ok], [gts[i] for i in ok]), dtype=np.float64)
        if got.shape != (ok.size,) or not np.isfinite(got).all() or (got < 0).any() or (got > 1).any():
            raise fail("judge", f"scores of shape {got.shape}", f"{ok.size} finite scores in [0, 1]")
        j[ok] = got
    return {"fmt": fmt, "type_ok": type_ok, "arg": arg, "judge": j,
            "reward": composite_reward(fmt, type_ok, arg, j, cfg)}


def _reward_inputs(rng: np.random.Generator) -> dict:
    """Component arrays with the structure of real ones (type wrong ⇒ arbitrary arg; format 0 ⇒ zeros)."""
    B = int(rng.integers(1, 12))
    fmt = (rng.random(B) < 0.85).astype(np.float64)
    type_ok = fmt * (rng.random(B) < 0.6)
    arg = np.where(rng.random(B) < 0.5, (rng.random(B) < 0.5).astype(float), np.round(rng.random(B), 3))
    judge = fmt * np.round(rng.random(B), 3)
    return {"fmt": fmt, "type_ok": type_ok, "arg": arg, "judge": judge}


# --------------------------------------------------------------------------- registry
_R = "arXiv 2508.11360 abstract (only text read): "
EQUATIONS = (
    Equation("craft-grpo", "Â_i = (r_i − mean r)/std r; J = E[(1/G)Σ_i (1/|o_i|)Σ_t min(ρÂ, clip(ρ)Â) − β KL]",
             _R + "'a curriculum learning framework based on GRPO'", "paper", "",
             note="the registry's grpo (advantage), ppo (clip) and kl_k3 entries, composed in properties/test_craft_gui.py"),
    Equation("craft-difficulty", "tier = #{edges ≤ score}, score = trajectory steps (edges (3, 6))",
             _R + "'accounts for the varying difficulty across trajectories'", "reconstructed", "difficulty_tier",
             note="difficulty measure and bins ours (step count; a pass rate can be passed as the score)"),
    Equation("craft-curriculum", "stage s samples uniformly from tiers ≤ s (or = s); advance after stage_steps "
             "steps (and EMA reward ≥ threshold)", _R + "curriculum over difficulty", "reconstructed",
             "craft_gui", note="schedule, pool rule and thresholds ours; state + pure update"),
    Equation("craft-reward", "r = fmt·(w_f + w_t·1[type] + w_a·1[type]·arg + w_j·judge), Σw = 1",
             _R + "'combines simple rule-based signals with model-judged evaluation'", "reconstructed",
             "composite_reward", note="components, gating and weights (0.1, 0.3, 0.4, 0.2) ours"),
    Equation("craft-arg", "click 1[p ∈ bbox] (or 1 − d/scale); type token-F1; scroll 1[direction]",
             "common GUI-RL rule rewards (our notes)", "reconstructed", "rule_components"),
)

_UNTESTED = (
    "untested: +5.6 % AndroidControl (v1), +7.1 % AndroidWorld (v2) and +10.3 % on the internal benchmark — "
    "empirical results of training a VLM agent",
    "untested: that the curriculum speeds up learning of hard tasks — on the tabular toy the tasks share no "
    "parameters, so the curriculum can only reorder practice; the figure reports (does not assert) the per-tier "
    "learning curves of curriculum and uniform sampling",
)

register(Spec(
    name="craft_gui", kind="curriculum", family="agentic", paper=CRAFT_GUI_PAPER, status="partial",
    summary="which tasks are sampled: a staged curriculum over trajectory-difficulty tiers (explicit state, pure "
            "update), feeding GRPO; its rule + judge reward is the companion entry craft_gui_reward",
    fn=craft_gui, config_cls=CraftGUIConfig, equations=EQUATIONS, outputs=("probs", "next_idx", "state"),
    make_inputs=make_inputs,
    missing="the paper's difficulty measure, stage schedule and thresholds (only the abstract was readable; no "
            "code): the tiering by trajectory steps and the stage rules here are reconstructed",
    extras={"init_state": init_state, "update": update, "difficulty_tier": difficulty_tier,
            "stage_probs": stage_probs, "stage_pool": stage_pool, "sample_tasks": sample_tasks,
            "conformance_configs": lambda: [("exclusive", {"pool": "exclusive"}),
                                            ("threshold", {"advance": "threshold"}),
                                            ("short-stages", {"stage_steps": 1, "edges": (1.0, 2.0)})],
            "figures": (("img/craft_gui.png", "toy GUI bandit, GRPO: expected reward per difficulty tier under the "
                                              "curriculum (stage changes dotted) and under uniform sampling. The "
                                              "toy's tasks share no parameters, so the curriculum only reorders "
                                              "practice: here it reaches the hard tier later than uniform sampling "
                                              "(reported, not asserted)"),)},
    gradient="not a loss: the curriculum chooses which tasks are rolled out; the update is GRPO's",
    properties=(
        "properties/test_craft_gui.py::test_curriculum_ordering: replayed step by step, the stage never decreases, "
        "every drawn task's tier is ≤ the stage (cumulative), the pool grows with the stage",
        "properties/test_craft_gui.py::test_update_is_pure_and_replays: update returns a new state and never writes "
        "its inputs; a run replayed from the same inputs is identical",
        "properties/test_craft_gui.py::test_schedule_advances_every_stage_steps",
        "properties/test_craft_gui.py::test_threshold_waits_for_the_reward_ema",
        "properties/test_craft_gui.py::test_exclusive_pool_and_empty_tier_fallback",
        "properties/test_craft_gui.py::test_sampling_follows_the_probabilities: inverse-CDF draws have the stage "
        "distribution (exact: each task's share of [0, 1))",
        "properties/test_craft_gui.py::test_difficulty_tiers",
        "properties/test_craft_gui.py::test_grpo_advantages_zero_mean_unit_std: the registry's GRPO on composite "
        "rewards (notes' test 1)",
        "properties/test_craft_gui.py::test_composition_curriculum_reward_grpo_ppo: curriculum draw → rewards → "
        "registry grpo → registry ppo + kl_k3",
        "properties/test_craft_gui.py::test_toy_curriculum_run_reaches_the_optimum: every tier's expected reward "
        "reaches ≥ 0.95 of the optimum 1",
        "properties/test_craft_gui.py::test_bad_input_raises",
        *_UNTESTED,
    ),
))

register(Spec(
    name="craft_gui_reward", kind="reward", family="agentic", paper=CRAFT_GUI_PAPER, status="partial",
    summary="rule + judge composite reward for a GUI action: format gate, action type, argument (bbox / F1 / "
            "direction) and a model judge (user callable), weights summing to 1",
    fn=craft_gui_reward, config_cls=CraftGUIRewardConfig, equations=EQUATIONS[3:], outputs=("reward",),
    make_inputs=_reward_inputs,
    missing="the paper's reward components, weights and judge prompt/model (only the abstract was readable): the "
            "composite here is reconstructed",
    extras={"score_actions": score_actions, "rule_components": rule_components, "click_score": click_score,
            "text_f1": text_f1,
            "conformance_configs": lambda: [("no-gates", {"format_gate": False, "arg_requires_type": False}),
                                            ("judge-heavy", {"w_fmt": 0.0, "w_type": 0.2, "w_arg": 0.2,
                                                             "w_judge": 0.6})]},
    gradient="not a loss: r feeds the GRPO advantage",
    properties=(
        "properties/test_craft_gui.py::test_reward_bounds_and_full_credit: r ∈ [0, 1]; r = 1 iff fmt = type = arg = "
        "judge = 1 (weights > 0)",
        "properties/test_craft_gui.py::test_reward_gates: unparseable ⇒ 0; wrong type ⇒ no argument credit",
        "properties/test_craft_gui.py::test_reward_monotone_in_each_component",
        "properties/test_craft_gui.py::test_rule_components_of_actions: bbox, distance, F1, scroll rules",
        "properties/test_craft_gui.py::test_judge_is_a_user_callable: called once on parseable actions only, "
        "validated",
        "properties/test_craft_gui.py::test_optimized_matches_reference",
        "properties/test_envs_gui_bandit.py::test_reward_table_optimum_is_the_correct_actions",
    ),
))

"""Scaf-GRPO: scaffolded GRPO — tiered in-prompt hints for true-hard problems, one failed rollout replaced.

Zhang, Wu, Zhu, Tan, Yu, He, Jia, "Scaf-GRPO: Scaffolded Group Relative Policy Optimization for Enhancing
LLM Reasoning", arXiv 2510.19807 (ICLR 2026). Official code: github.com/JIA-Lab-research/Scaf-GRPO
(verl 0.4.1), read: ``hint_mix_grpo/trainer/ray_trainer.py`` (``fit``, ``build_new_message``) and the
launch script ``sh/hint_mix_grpo/bs256_6k_mix.sh``.

Place in the pipeline: WHICH ROLLOUTS ARE KEPT, between the reward and the advantage. The loss is
GRPO's, unchanged (the paper: only the data is modified). For a prompt q whose whole group failed,
once guidance is active and q counts as "true-hard", the current policy is sampled on q ⊕ h for hints
h of increasing strength; the first (least) hint h* whose sample o*_h is correct wins, and o*_h
replaces one failed rollout of the group; GRPO advantages are then computed on the new group::

    state  = update(state, rewards, group)                 # plateau / true-hard tracker (pure)
    level  = minimal_hint(sample, verify, ladder, make_hint)   # LLM parts are user callables
    r', hinted, adv = scaf_grpo(rewards, group, mask, hint_level)   # this module (registry entry)
    loss   = registry.get("ppo")(logp, old_logp, adv, mask)  # hinted rows scored on q ⊕ h* (Eq. 4)

Equations (G = group size, R ∈ {0, 1} the verifier's reward):

    Â_i = (R_i − μ_G) / (σ_G + ε)                                   GRPO advantage (paper Eq. 2)
    G_final = (G ∖ {o_j}) ∪ {o*_h},  o*_h ~ π_θ(· | q ⊕ h*),  R(o*_h) = 1   replacement (§3.2)
    r'_t = π_θ(o'_t | q ⊕ h*, o'_<t) / π_θold(o'_t | q ⊕ h*, o'_<t) for the replaced rollout,
           the usual π_θ(o_t | q, o_<t)/π_θold(o_t | q, o_<t) for the others          (Eq. 4)
    h* = the first hint of the ladder (K1..K4, P1..P4, S1..S4) whose sample is correct  (§3.2, App. D.1)

Closed form (our derivation, tested): one success among G rollouts of 0/1 reward, μ = 1/G;
population std (ddof = 0) σ = √(G−1)/G gives, with ε → 0, Â_success = √(G−1) and Â_fail = −1/√(G−1);
sample std (ddof = 1, torch ``.std()``, verl — what the official code runs) σ = 1/√G gives
Â_success = (G−1)/√G and Â_fail = −1/√G. Either way the group sums to 0.

Provenance. The paper's method section was read through a detailed third-party summary (the arXiv
HTML was reachable only in its opening); the procedure was confirmed in the official code, which
differs from the paper in four places, each an option here:

* exemption period: the paper exempts the first 15 % of training steps from guidance (``exempt_frac``);
  the code uses a fixed count, ``warmup_steps = 50`` (``exempt_steps=50``);
* the plateau: the paper marks as true-hard the problems still unsolved when the resolution rate of
  zero-reward problems stops rising; the code has no detector (every all-zero group after the warm-up
  is eligible: ``true_hard="any"``). The detector here (window ``plateau_window``, tolerance
  ``plateau_tol``) is OUR RECONSTRUCTION and off by default (``plateau_window = 0``); ``true_hard=
  "history"`` (default) makes eligible only problems never solved before, our reading of the paper;
* hint tiers: Knowledge → Planning → Solution (paper); the code comments Planning out
  (``tiers=("knowledge", "solution")``, 8 levels). In both, level (tier, k) shows the first k chunks
  of that tier only (earlier tiers are not repeated), as ``build_new_message`` does;
* search: sequential, stop at the first success (paper, ``search="sequential"``); the code samples
  every level once and keeps the least successful level (``search="all-levels"``). Both return the
  same level for the same samples; the sequential search makes fewer LLM calls.

The failed rollout replaced is the first of the group in batch order (code); the paper picks a random
one. The G rollouts are i.i.d. draws, so the first is a uniformly random one in distribution, and all
failed rollouts carry the same reward (0): no advantage depends on the choice. ``replace="random"``
(with an ``rng``) is offered. The code's ``replace_num = 2`` ("6+1+1") variant is not built.

Conventions. ``hint_level`` (B,) int: the level index of h* for the row's group (constant within a
group), −1 when no hint was searched or none worked (the group is kept as it is: zero advantage).
Groups with at least one success are never touched. A singleton group follows ``grpo``'s rule
(advantage 0). Masked token positions of ``adv`` are 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, in_range, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage
from rlspec.reference.registry import Equation, Paper, Spec, register

SCAF_PAPER = Paper(arxiv="2510.19807", title="Scaf-GRPO: Scaffolded Group Relative Policy Optimization for "
                   "Enhancing LLM Reasoning", year=2025)
PAPER_TIERS = ("knowledge", "planning", "solution")
CODE_TIERS = ("knowledge", "solution")


@dataclass(frozen=True)
class ScafConfig:
    """exempt_frac: share of training steps without guidance (paper 0.15); exempt_steps: a fixed count instead
    (code: 50); None uses exempt_frac. plateau_window W ≥ 0 and plateau_tol: guidance also waits until the
    resolution rate rose by ≤ tol over W steps (reconstructed; W = 0 = off). true_hard: "history" (never
    solved before) or "any" (code). tiers, chunks: the hint ladder (paper: K, P, S × 4). search: "sequential"
    (paper) or "all-levels" (code). replace: "first" (code) or "random" (paper). success_reward: R of o*_h.
    ddof, eps: the GRPO std (code/verl: sample std, ε = 1e-6)."""

    exempt_frac: float = 0.15
    exempt_steps: int | None = None
    plateau_window: int = 0
    plateau_tol: float = 0.0
    true_hard: str = "history"
    tiers: tuple[str, ...] = PAPER_TIERS
    chunks: int = 4
    search: str = "sequential"
    replace: str = "first"
    success_reward: float = 1.0
    ddof: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        in_range(self.exempt_frac, "exempt_frac", 0.0, 1.0)
        for name in ("exempt_steps", "plateau_window", "chunks"):
            v = getattr(self, name)
            if v is None and name == "exempt_steps":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if name == "chunks" else 0):
                raise fail(name, repr(v), "an integer ≥ " + ("1" if name == "chunks" else "0"))
        positive(self.plateau_tol, "plateau_tol", allow_zero=True)
        choice(self.true_hard, "true_hard", ("history", "any"))
        if not isinstance(self.tiers, tuple) or not self.tiers or not all(isinstance(t, str) for t in self.tiers):
            raise fail("tiers", repr(self.tiers), "a non-empty tuple of tier names")
        choice(self.search, "search", ("sequential", "all-levels"))
        choice(self.replace, "replace", ("first", "random"))
        positive(self.success_reward, "success_reward")
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)


# ----------------------------------------------------------------------------------------------
# plateau / true-hard tracker: frozen state + pure update
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScafState:
    """What Scaf-GRPO remembers across steps (problem ids are the ``group`` ids of the batches).

    step: number of updates so far (= the 0-based index of the next training step).
    zero_ids: problems that had an all-zero group at some step. solved_ids: problems that had a success.
    resolved_ids: problems of zero_ids solved at a LATER step. rates: resolution rate after each step,
    |resolved| / |zero| (0 while zero_ids is empty). plateau_step: first step at which the reconstructed
    plateau test fired (−1: not yet).
    """

    step: int = 0
    zero_ids: tuple[int, ...] = ()
    solved_ids: tuple[int, ...] = ()
    resolved_ids: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    plateau_step: int = -1


def init_state() -> ScafState:
    return ScafState()


def check_state(state: Any) -> ScafState:
    if not isinstance(state, ScafState):
        raise fail("state", type(state).__name__, "a ScafState (see init_state)")
    return state


def binary_rewards(rewards: Any, name: str = "rewards", length: int | None = None) -> np.ndarray:
    """Verifier rewards (B,) in {0, 1}: Scaf-GRPO is defined for binary outcome rewards."""
    r = finite_vector(rewards, name, length)
    if not np.isin(r, (0.0, 1.0)).all():
        raise fail(name, f"value {r[~np.isin(r, (0.0, 1.0))][0]!r}", "binary verifier rewards 0 or 1")
    return r


def group_outcomes(r: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, all_zero, any_success) per distinct group id, sorted by id."""
    ids = np.unique(g)
    all_zero = np.array([not r[g == k].any() for k in ids], dtype=bool)
    return ids, all_zero, ~all_zero


def resolution_rate(zero_ids: Sequence[int], resolved_ids: Sequence[int]) -> float:
    """ρ = |resolved| / |zero|: share of the problems ever seen all-zero that were solved later (0 if none)."""
    return len(resolved_ids) / len(zero_ids) if zero_ids else 0.0


def plateau_reached(rates: Sequence[float], window: int, tol: float) -> bool:
    """Reconstructed stagnation test: W > 0 steps of history and ρ_t − ρ_{t−W} ≤ tol."""
    return window > 0 and len(rates) > window and rates[-1] - rates[-1 - window] <= tol


def n_exempt(total_steps: int, config: ScafConfig) -> int:
    """Number of leading steps without guidance: exempt_steps, else ⌈exempt_frac · total_steps⌉."""
    if config.exempt_steps is not None:
        return int(config.exempt_steps)
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise fail("total_steps", repr(total_steps), "a positive integer number of training steps")
    return math.ceil(config.exempt_frac * int(total_steps) - 1e-12)


def guidance_active(state: ScafState, total_steps: int, config: ScafConfig | None = None) -> bool:
    """Whether hints may be given at training step ``state.step``: past the exemption period and, when the
    plateau detector is on, after it fired at an earlier step."""
    cfg = config or ScafConfig()
    check_state(state)
    past = state.step >= n_exempt(total_steps, cfg)
    return past and (cfg.plateau_window == 0 or 0 <= state.plateau_step < state.step)


def update(state: ScafState, rewards: Any, group: Any, config: ScafConfig | None = None) -> ScafState:
    """One step of the tracker with the step's ORIGINAL rewards (before any replacement). Pure.

    A problem enters ``zero_ids`` when its group is all zero, ``solved_ids`` when it has a success; it
    enters ``resolved_ids`` when it succeeds at a step after it entered ``zero_ids``. Then ρ is appended
    and the plateau test runs on the rate history (at every step; :func:`guidance_active` adds the
    exemption period). The first step at which it fires is kept (latched).
    """
    cfg = config or ScafConfig()
    check_state(state)
    r = binary_rewards(rewards)
    g = group_ids(group, r.shape[0])
    ids, all_zero, any_success = group_outcomes(r, g)
    zero_before = set(state.zero_ids)
    resolved = set(state.resolved_ids) | {int(k) for k in ids[any_success] if int(k) in zero_before}
    zero = zero_before | {int(k) for k in ids[all_zero]}
    solved = set(state.solved_ids) | {int(k) for k in ids[any_success]}
    rates = state.rates + (resolution_rate(zero, resolved),)
    plateau = state.plateau_step
    if plateau < 0 and plateau_reached(rates, cfg.plateau_window, cfg.plateau_tol):
        plateau = state.step
    return ScafState(step=state.step + 1, zero_ids=tuple(sorted(zero)), solved_ids=tuple(sorted(solved)),
                     resolved_ids=tuple(sorted(resolved)), rates=rates, plateau_step=plateau)


def eligible_groups(state: ScafState, rewards: Any, group: Any, total_steps: int,
                    config: ScafConfig | None = None) -> np.ndarray:
    """Problem ids of this step that get a hint search: guidance active, group all zero, and (with
    true_hard="history") never solved at an earlier step. Sorted int array."""
    cfg = config or ScafConfig()
    r = binary_rewards(rewards)
    g = group_ids(group, r.shape[0])
    if not guidance_active(state, total_steps, cfg):
        return np.zeros(0, dtype=np.int64)
    ids, all_zero, _ = group_outcomes(r, g)
    solved = set(state.solved_ids)
    keep = [int(k) for k, z in zip(ids, all_zero) if z and (cfg.true_hard == "any" or int(k) not in solved)]
    return np.array(keep, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# the hint ladder and the minimal-hint search (LLM parts are user callables)
# ----------------------------------------------------------------------------------------------

def hint_ladder(tiers: Sequence[str] = PAPER_TIERS, chunks: int = 4) -> tuple[tuple[str, int], ...]:
    """Levels (tier, k), tier-major from abstract to concrete, k = 1..chunks chunks within a tier.

    Paper: Knowledge → Planning → Solution, 4 incremental chunks each (12 levels, the code's hint_level
    1..12); the official code's active ladder is Knowledge → Solution (8 levels)."""
    return tuple((t, k) for t in tiers for k in range(1, int(chunks) + 1))


def hints_from_parts(parts: dict[str, Sequence[str]],
                     format_hint: Callable[[str, Sequence[str]], str] | None = None) -> Callable[[str, int], str]:
    """make_hint(tier, k) from pre-written hint chunks per tier (the dataset's knowledge/planning/solution
    parts, written offline by a teacher LLM): the first k chunks of that tier only (code
    ``build_new_message``), formatted by ``format_hint(tier, chunks)`` (default "<Tier> Hints: c1 c2 ...")."""
    fmt = format_hint or (lambda tier, chunks: f"{tier.capitalize()} Hints: " + " ".join(chunks))

    def make_hint(tier: str, k: int) -> str:
        if tier not in parts:
            raise fail("tier", repr(tier), f"one of the tiers with parts: {sorted(parts)}")
        return fmt(tier, list(parts[tier])[:k])

    return make_hint


@dataclass(frozen=True)
class HintResult:
    """level: index into the ladder of h* (−1: no hint worked); hint: its text; response: o*_h;
    calls: how many samples were drawn."""

    level: int = -1
    hint: str = ""
    response: Any = None
    calls: int = 0
    tried: tuple[bool, ...] = field(default=())


def minimal_hint(sample: Callable[[str], Any], verify: Callable[[Any], bool],
                 make_hint: Callable[[str, int], str], config: ScafConfig | None = None) -> HintResult:
    """h*: the first level of the ladder whose hinted sample o ~ π_θ(·|q ⊕ h) is verified correct.

    ``sample(hint) -> response`` runs the CURRENT policy on the question with the hint appended (an LLM
    call, user supplied); ``verify(response) -> bool`` is the verifier; ``make_hint(tier, k) -> str``
    writes the hint text (e.g. :func:`hints_from_parts`). ``search="sequential"`` stops at the first
    success (paper); ``"all-levels"`` samples every level once and keeps the least successful one (code).
    """
    cfg = config or ScafConfig()
    for fn, nm in ((sample, "sample"), (verify, "verify"), (make_hint, "make_hint")):
        if not callable(fn):
            raise fail(nm, type(fn).__name__, "a callable")
    ladder = hint_ladder(cfg.tiers, cfg.chunks)
    best: HintResult | None = None
    tried: list[bool] = []
    for level, (tier, k) in enumerate(ladder):
        hint = make_hint(tier, k)
        response = sample(hint)
        ok = bool(verify(response))
        tried.append(ok)
        if ok and best is None:
            best = HintResult(level=level, hint=hint, response=response)
            if cfg.search == "sequential":
                break
    if best is None:
        return HintResult(calls=len(tried), tried=tuple(tried))
    return HintResult(level=best.level, hint=best.hint, response=best.response, calls=len(tried), tried=tuple(tried))


# ----------------------------------------------------------------------------------------------
# replacement and the advantage (the registry entry)
# ----------------------------------------------------------------------------------------------

def check_hint_level(hint_level: Any, g: np.ndarray, n_levels: int | None = None) -> np.ndarray:
    """hint_level (B,) int ≥ −1, constant within each group."""
    h = np.asarray(hint_level)
    if h.shape != g.shape or not (np.issubdtype(h.dtype, np.integer) or
                                  (np.issubdtype(h.dtype, np.floating) and np.all(h == np.round(h)))):
        raise fail("hint_level", f"{h.dtype} array of shape {h.shape}", f"integer levels of shape {g.shape}")
    h = h.astype(np.int64)
    if (h < -1).any() or (n_levels is not None and (h >= n_levels).any()):
        raise fail("hint_level", f"level {h[(h < -1) | (h >= (n_levels or 1 << 62))][0]}",
                   f"−1 (no hint) or a ladder index < {n_levels}")
    for k in np.unique(g):
        if len(np.unique(h[g == k])) > 1:
            raise fail("hint_level", f"different levels {sorted(set(h[g == k].tolist()))} in group {int(k)}",
                       "one level per group (the level of that prompt's h*)")
    return h


def replace_one_failure(r: np.ndarray, g: np.ndarray, h: np.ndarray, success_reward: float = 1.0,
                        replace: str = "first", rng: np.random.Generator | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """G_final = (G ∖ {o_j}) ∪ {o*_h} for every all-zero group with a hint found (h ≥ 0). Returns
    (r' (B,), hinted (B,) bool): one row per such group gets R(o*_h) and is flagged."""
    r2, hinted = r.copy(), np.zeros(r.shape[0], dtype=bool)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        if r[rows].any() or h[rows[0]] < 0:
            continue                                    # a success already, or no hint worked
        j = rows[0] if replace == "first" else rows[int(rng.integers(rows.shape[0]))]
        r2[j], hinted[j] = success_reward, True
    return r2, hinted


def scaf_grpo(rewards: Any, group: Any, mask: Any, hint_level: Any, config: ScafConfig | None = None,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replacement then GRPO: (rewards' (B,), hinted (B,) bool, adv (B, T)).

    rewards (B,) binary verifier rewards; group (B,) prompt ids; mask (B, T) bool; hint_level (B,) the
    ladder index of each group's h* (−1: none). Groups that are not all-zero, or have level −1, keep
    their rewards. adv = GRPO (config ddof, ε) on rewards', zero at masked positions. Hinted rows hold
    o*_h, to be scored on q ⊕ h* in both terms of the ratio (Eq. 4).
    """
    cfg = config or ScafConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    r = binary_rewards(rewards, "rewards", M.shape[0])
    g = group_ids(group, M.shape[0])
    h = check_hint_level(hint_level, g, len(hint_ladder(cfg.tiers, cfg.chunks)))
    if cfg.replace == "random" and not isinstance(rng, np.random.Generator):
        raise fail("rng", type(rng).__name__, 'a numpy.random.Generator when replace="random"')
    r2, hinted = replace_one_failure(r, g, h, cfg.success_reward, cfg.replace, rng)
    A = grpo_outcome_advantage(r2, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))
    return r2, hinted, broadcast_to_tokens(A, M)


def scaf_step(state: ScafState, rewards: Any, group: Any, mask: Any, total_steps: int,
              search: Callable[[int], int], config: ScafConfig | None = None,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, ScafState, dict[str, np.ndarray]]:
    """One training step end to end: (adv (B, T), new_state, {"rewards", "hinted", "hint_level"}).

    ``search(problem_id) -> level`` runs the hint search for one eligible problem (typically
    ``minimal_hint(...).level`` with the LLM callables bound to that problem; −1 if none worked); it is
    called only for :func:`eligible_groups`. The tracker is updated with the ORIGINAL rewards.
    """
    cfg = config or ScafConfig()
    check_state(state)
    r = binary_rewards(rewards)
    g = group_ids(group, r.shape[0])
    h = np.full(r.shape[0], -1, dtype=np.int64)
    for k in eligible_groups(state, r, g, total_steps, cfg):
        h[g == k] = int(search(int(k)))
    r2, hinted, adv = scaf_grpo(r, g, mask, h, cfg, rng)
    return adv, update(state, r, g, cfg), {"rewards": r2, "hinted": hinted, "hint_level": h}


# ----------------------------------------------------------------------------------------------
# example inputs and registration
# ----------------------------------------------------------------------------------------------

def make_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Groups of 1..8 binary rewards (many all-zero), ragged masks, hint levels in −1..11 per group."""
    P = int(rng.integers(1, 5))
    sizes = rng.integers(1, 9, size=P)
    ids = rng.choice(np.arange(-10, 10), size=P, replace=False)
    group = np.repeat(ids, sizes)
    B, T = int(sizes.sum()), int(rng.integers(1, 6))
    hard = np.repeat(rng.random(P) < 0.6, sizes)
    rewards = np.where(hard, 0.0, (rng.random(B) < 0.5).astype(float))
    level = np.repeat(rng.integers(-1, 12, size=P), sizes)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    return {"rewards": rewards, "group": group, "mask": mask, "hint_level": level}


register(Spec(
    name="scaf_grpo", kind="curriculum", family="sampling", paper=SCAF_PAPER, status="partial",
    summary="between the reward and the advantage: for true-hard prompts whose group all failed, the least hint "
            "(Knowledge → Planning → Solution, 4 chunks each) under which the current policy succeeds supplies one "
            "on-policy success that replaces a failed rollout; GRPO loss unchanged",
    fn=scaf_grpo, config_cls=ScafConfig, outputs=("rewards", "hinted", "adv"), make_inputs=make_inputs,
    extras={"init_state": init_state, "update": update, "guidance_active": guidance_active,
            "eligible_groups": eligible_groups, "hint_ladder": hint_ladder, "hints_from_parts": hints_from_parts,
            "minimal_hint": minimal_hint, "scaf_step": scaf_step, "replace_one_failure": replace_one_failure,
            "conformance_configs": lambda: [("ddof=0,eps=0", {"ddof": 0, "eps": 0.0}),
                                            ("code-ladder", {"tiers": CODE_TIERS})]},
    missing="the paper's plateau criterion (how stagnation of the zero-reward resolution rate is measured) was not "
            "recovered: the detector here is reconstructed and off by default, so guidance starts after the "
            "exemption period; the code's replace_num = 2 ('6+1+1') variant is not built",
    equations=(
        Equation("grpo-adv", "Â_i = (R_i − μ_G) / (σ_G + ε) on G_final", "arXiv 2510.19807 Eq. 2", "official-code",
                 "scaf_grpo", note="verl compute_grpo_outcome_advantage (ddof = 1, ε = 1e-6) in the official "
                 "ray_trainer.py; the paper writes σ_G + ε_std without fixing ddof"),
        Equation("replace", "G_final = (G ∖ {o_j}) ∪ {o*_h}, o*_h ~ π_θ(·∣q ⊕ h*), R(o*_h) = 1, only for all-zero "
                 "groups", "arXiv 2510.19807 §3.2", "official-code", "replace_one_failure",
                 note="code ray_trainer.fit replaces the first failed row of the uid (replace_num = 1); the paper "
                      "says a random failed rollout (replace='random')"),
        Equation("ratio", "r'_t = π_θ(o'_t∣q⊕h*, o'_<t) / π_old(o'_t∣q⊕h*, o'_<t) for the hinted rollout",
                 "arXiv 2510.19807 Eq. 4", "secondary",
                 note="the caller scores hinted rows on the hinted prompt (code default replace_hint_prompt=False "
                      "copies the hinted input_ids); read through a third-party summary of the paper"),
        Equation("ladder", "levels (tier, k): K1..K4, P1..P4, S1..S4; level shows the first k chunks of its tier",
                 "arXiv 2510.19807 §3.2, App. D.1", "official-code", "hint_ladder",
                 note="code build_new_message: Planning is commented out (8 levels); chunks are not accumulated "
                      "across tiers"),
        Equation("min-hint", "h* = first level whose sample is verified correct; none ⇒ group kept",
                 "arXiv 2510.19807 §3.2", "official-code", "minimal_hint",
                 note="code samples all levels once and keeps the least successful level (search='all-levels'); "
                      "the paper's search stops at the first success (default)"),
        Equation("exemption", "no guidance for the first ⌈0.15·T_total⌉ steps", "arXiv 2510.19807 §3.2 (Phase 1)",
                 "secondary", "guidance_active",
                 note="15 % from a third-party summary of the paper; the official script uses warmup_steps = 50 "
                      "(exempt_steps=50)"),
        Equation("plateau", "true-hard: still unsolved when ρ_t = #resolved / #zero stops rising "
                 "(ρ_t − ρ_{t−W} ≤ tol)", "arXiv 2510.19807 §3.2 (Phase 1)", "reconstructed", "update",
                 note="the paper's wording (via a summary) is 'resolution rate of zero-reward problems plateaus'; "
                      "window and tolerance are ours, off by default; the code has no detector"),
    ),
    gradient="not a loss: it changes which rollouts (and rewards) enter the GRPO advantage; the loss is GRPO's "
             "clipped surrogate with hinted rows scored on q ⊕ h*",
    properties=(
        "properties/test_scaf_grpo.py::test_one_success_group_closed_form: population std, ε = 0: √(G−1) and "
        "−1/√(G−1); sample std: (G−1)/√G and −1/√G; the group sums to 0",
        "properties/test_scaf_grpo.py::test_without_hints_it_is_grpo: hint_level ≡ −1 gives registry grpo exactly",
        "properties/test_scaf_grpo.py::test_replaces_exactly_one_failure_only_in_all_zero_groups",
        "properties/test_scaf_grpo.py::test_random_replacement_is_uniform_and_immaterial: advantages do not depend "
        "on which failed rollout is replaced",
        "properties/test_scaf_grpo.py::test_minimal_hint_is_first_success_on_the_ladder: sequential and all-levels "
        "searches agree; sequential stops early",
        "properties/test_scaf_grpo.py::test_hint_ladder_and_hint_text: K→P→S × 4 (code: K→S), first k chunks",
        "properties/test_scaf_grpo.py::test_exemption_period_respected: no hint search during the first "
        "⌈0.15 T⌉ (or exempt_steps) steps, hints afterwards",
        "properties/test_scaf_grpo.py::test_plateau_detector_gates_guidance: guidance waits for the reconstructed "
        "plateau and latches",
        "properties/test_scaf_grpo.py::test_update_is_pure_and_replays_a_run: the tracker matches an independent "
        "tally step by step and never mutates its input",
        "properties/test_scaf_grpo.py::test_true_hard_history_vs_any",
        "properties/test_scaf_grpo.py::test_hinted_rollout_is_on_policy_ratio_one: scored on q ⊕ h* the replaced "
        "rollout's first-step ratio is 1 (Eq. 4)",
        "properties/test_scaf_grpo.py::test_composition_grpo_ppo: the all-zero group has zero PPO gradient under "
        "GRPO and a non-zero one after scaffolding",
        "properties/test_scaf_grpo.py::test_learning_cliff_bandit: seeded run on a softmax bandit whose correct "
        "answer is (almost) never sampled: GRPO stays at the cliff, Scaf-GRPO climbs",
        "properties/test_scaf_grpo.py::test_bad_input_raises",
        "untested: App. F.5 — a mismatched ratio π_θ(·∣q)/π_old(·∣q⊕h*) destabilises training — an empirical "
        "claim about LLM training runs",
        "untested: ablations (exemption 10–40 % robust, incremental chunks beat the full tier, the three tiers "
        "are complementary, 17.4 % of samples guided) — empirical results of LLM training, not properties of the "
        "update",
    ),
))

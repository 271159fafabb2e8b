"""OTC: Optimal Tool Calls — a tool-efficiency factor on the correctness reward (OTC-PPO and OTC-GRPO).

Wang, Qian, Zhong, Chen, Qiu, Huang, Jin, Wang, Wong, Ji, "Acting Less is Reasoning More! Teaching Model
to Act Efficiently", arXiv 2504.14870 (v1, Apr 2025, was titled "OTC: Optimal Tool Calls via
Reinforcement Learning"). No official code was found.

Place in the pipeline: REWARD SHAPING, before the advantage. Each trajectory's outcome reward
r_φ(q, y) ∈ {0, 1} is replaced by α·r_tool·r_φ; the advantage (GRPO's group z-score for OTC-GRPO, the
critic/GAE for OTC-PPO) and the policy loss are the base algorithm's, unchanged::

    rewards = otc_reward(calls, correct, group)            # this module, (B,)
    adv     = registry.get("grpo")(rewards, group, mask)   # unchanged base estimator
    loss    = registry.get("ppo")(logp, old_logp, adv, mask)

Notation: m = number of tool calls of the trajectory, n = the optimal number of calls for its question.

    f(m, n)      = 0 if m = n = 0;   m if n = 0;   2nm/(m + n) otherwise          (mapping)
    r_tool(m, n) = 1 if f = n = 0;   cos(mπ/(2m + c)) if n = 0;   sin(f(m, n)·π/(2n)) otherwise
    r            = α · r_tool(m, n) · r_φ(q, y)                                   (tool-integrated reward)
    OTC-PPO:  no group, n unknown ⇒ the n = 0 branch for every trajectory: r_tool = cos(mπ/(2m + c)),
              1 at m = 0 and decreasing towards 0 (1, ½, 0.309, … for c = 1).
    OTC-GRPO: n = min{ m_j : j in the question's group, r_φ(j) = 1 } (fewest calls among the correct
              rollouts); n = 0 when no rollout of the group is correct (every r is 0 there anyway).

For n > 0, f is the harmonic mean of m and n: f(n, n) = n, f < n for m < n, f → 2n as m → ∞, so
r_tool = sin(fπ/2n) is 0 at m = 0, rises to 1 at m = n and falls back towards 0 (unimodal).

Provenance. The OTC-PPO cosine form is confirmed by a third-party review of v1; the mapping, the
sine branch and the multiplicative combination by two third-party verl-style reimplementations
(module "OTC (Optimal Tool Call) Reward Implementation"), which agree with our notes' reading of the
paper (papers_B.md §9). We could not read the paper's method section ourselves, so every equation
is ``secondary``. The constants α and c are not confirmed: the defaults α = 1, c = 1 are the
reimplementation's. One of the reimplementations instead ADDS the two terms
(0.7·r_φ + 0.3·r_tool); we implement the multiplicative form, which is the one that makes a wrong
answer worth 0 whatever its tool use. Whether the paper's OTC-GRPO also keeps the minimum over a
question's earlier training steps (a per-question history of n) is not confirmed and not built.

Conventions: ``calls`` are non-negative integers; ``correct`` is boolean (r_φ = 1 or 0); rewards are
per sequence (B,), a fully masked row still counts in its group (as in ``grpo``). Validation names the
argument at fault; no NaN is produced (the unused branches are never divided by zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import choice, fail, group_ids, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

OTC_PAPER = Paper(arxiv="2504.14870", title="Acting Less is Reasoning More! Teaching Model to Act Efficiently "
                  "(v1: OTC: Optimal Tool Calls via Reinforcement Learning)", year=2025)
VARIANTS = ("grpo", "ppo")


@dataclass(frozen=True)
class OTCConfig:
    """variant: "grpo" (n = fewest calls among the group's correct rollouts) or "ppo" (n = 0 for all).
    alpha: scale α > 0 of the tool-integrated reward. c: smoothing constant c > 0 of the n = 0 cosine
    (larger c = slower decay). α and c are the third-party reimplementation's values, not confirmed."""

    variant: str = "grpo"
    alpha: float = 1.0
    c: float = 1.0

    def __post_init__(self) -> None:
        choice(self.variant, "variant", VARIANTS)
        positive(self.alpha, "alpha")
        positive(self.c, "c")


def check_calls(calls: Any, name: str = "calls", length: int | None = None) -> np.ndarray:
    """Tool-call counts as float64 (B,): non-negative integers (integral floats accepted)."""
    a = np.asarray(calls)
    if a.ndim != 1 or (length is not None and a.shape[0] != length):
        raise fail(name, f"shape {a.shape}", "a 1-D array of tool-call counts" +
                   (f" of length {length}" if length is not None else ""))
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise fail(name, f"dtype {a.dtype}", "integer counts")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a) | (a < 0) | (a != np.round(a))
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise fail(name, f"{a[i]!r} at index {i}", "non-negative integer counts")
    return a


def check_correct(correct: Any, length: int) -> np.ndarray:
    """r_φ as a boolean vector (B,): True = the answer is correct (0/1 integers accepted)."""
    c = np.asarray(correct)
    if c.ndim != 1 or c.shape[0] != length:
        raise fail("correct", f"shape {c.shape}", f"shape ({length},): one verdict per trajectory")
    if c.dtype != np.bool_:
        if np.issubdtype(c.dtype, np.integer) and np.isin(c, (0, 1)).all():
            c = c.astype(bool)
        else:
            raise fail("correct", f"dtype {c.dtype}", "a boolean array (True = correct answer)")
    return c


def otc_mapping(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """f(m, n) (any shape): 0 if m = n = 0; m if n = 0; the harmonic mean 2nm/(m + n) otherwise."""
    hm = np.divide(2.0 * n * m, m + n, out=np.zeros_like(m, dtype=np.float64), where=(m + n) > 0)
    return np.where(n == 0, m, hm)


def otc_tool_reward(m: np.ndarray, n: np.ndarray, c: float = 1.0) -> np.ndarray:
    """r_tool(m, n) ∈ [0, 1] (any shape): 1 if f = n = 0; cos(mπ/(2m + c)) if n = 0; sin(f π/(2n)) otherwise."""
    m, n = np.asarray(m, dtype=np.float64), np.asarray(n, dtype=np.float64)
    f = otc_mapping(m, n)
    cos_branch = np.cos(m * np.pi / (2.0 * m + c))  # n = 0; equals 1 at m = 0 (the f = n = 0 case)
    sin_branch = np.sin(f * np.pi / (2.0 * np.where(n > 0, n, 1.0)))
    return np.where(n == 0, np.where(m == 0, 1.0, cos_branch), sin_branch)


def otc_optimal_calls(calls: np.ndarray, correct: np.ndarray, g: np.ndarray) -> np.ndarray:
    """n (B,) for OTC-GRPO: the fewest calls among the correct rollouts of each row's group; 0 if none is correct."""
    n = np.zeros_like(calls)
    for k in np.unique(g):
        rows = g == k
        ok = rows & correct
        n[rows] = calls[ok].min() if ok.any() else 0.0
    return n


def otc_reward(calls, correct, group=None, config: OTCConfig | None = None) -> np.ndarray:
    """OTC tool-integrated reward r = α·r_tool(m, n)·r_φ (B,).

    Args: calls (B,) non-negative integer tool-call counts m; correct (B,) bool (r_φ); group (B,) integer
    prompt ids (needed by OTC-GRPO; ignored and optional for OTC-PPO).
    Returns: (B,) float64 in [0, α]; exactly 0 for every wrong answer.
    """
    cfg = config or OTCConfig()
    m = check_calls(calls)
    ok = check_correct(correct, m.shape[0])
    if cfg.variant == "grpo":
        if group is None:
            raise fail("group", "None", "prompt ids (B,): OTC-GRPO estimates n within each group")
        n = otc_optimal_calls(m, ok, group_ids(group, m.shape[0]))
    else:
        n = np.zeros_like(m)
    return cfg.alpha * otc_tool_reward(m, n, cfg.c) * ok


def make_inputs(rng: np.random.Generator) -> dict:
    """Small groups of trajectories: 0..6 calls, about half correct, singleton and all-wrong groups."""
    B = int(rng.integers(1, 14))
    group = rng.integers(0, max(1, B // 3), size=B) + int(rng.integers(-5, 5))
    return {"calls": rng.integers(0, 7, size=B), "correct": rng.random(B) < 0.55, "group": group}


_NOTE_REIMPL = ("third-party verl-style reimplementations (module 'OTC (Optimal Tool Call) Reward "
                "Implementation', two versions read), consistent with papers_B.md §9")

register(Spec(
    name="otc", kind="reward", family="reward", paper=OTC_PAPER, status="partial",
    summary="reward shaping before the advantage: r = α·r_tool(m, n)·r_φ, maximal at the optimal number of tool "
            "calls n (OTC-GRPO: fewest calls among the group's correct rollouts; OTC-PPO: n = 0)",
    fn=otc_reward, config_cls=OTCConfig, outputs=("rewards",), make_inputs=make_inputs,
    extras={"tool_reward": otc_tool_reward, "mapping": otc_mapping, "optimal_calls": otc_optimal_calls,
            "conformance_configs": lambda: [("ppo", {"variant": "ppo"}), ("c=3,alpha=2", {"c": 3.0, "alpha": 2.0})]},
    missing="the paper's method section was not read (equations are secondary); the values of α and c are not "
            "confirmed (defaults 1.0 from a reimplementation); a per-question history of n across training steps "
            "(if the paper keeps one) is not built",
    equations=(
        Equation("otc-mapping", "f(m, n) = 0 if m = n = 0; m if n = 0; 2nm/(m + n) otherwise",
                 "arXiv 2504.14870, §OTC-GRPO", "secondary", "otc_mapping", note=_NOTE_REIMPL),
        Equation("otc-tool-reward", "r_tool = 1 if f = n = 0; cos(mπ/(2m + c)) if n = 0; sin(f(m, n)π/(2n)) otherwise",
                 "arXiv 2504.14870, §OTC-PPO and §OTC-GRPO", "secondary", "otc_tool_reward",
                 note="the OTC-PPO cosine is also stated by a third-party review of v1; " + _NOTE_REIMPL),
        Equation("otc-reward", "r = α · r_tool · r_φ(q, y)", "arXiv 2504.14870, tool-integrated reward",
                 "secondary", "otc_reward",
                 note="multiplicative, so a wrong answer gets 0; one reimplementation adds 0.7·r_φ + 0.3·r_tool "
                      "instead (not offered: it rewards tool use on wrong answers)"),
        Equation("otc-grpo-n", "n = min{ m_j : j ∈ group, r_φ(j) = 1 }, 0 if no rollout is correct",
                 "arXiv 2504.14870, §OTC-GRPO", "secondary", "otc_optimal_calls",
                 note="group minimum as in the reimplementation; a history of n over steps is not built"),
    ),
    gradient="not a loss: rewards are constants w.r.t. the policy; feed them to the base advantage (grpo / GAE) "
             "and policy loss",
    properties=(
        "properties/test_otc.py::test_tool_reward_maximal_at_optimal_calls: r_tool(n, n) = 1 = max over m",
        "properties/test_otc.py::test_tool_reward_unimodal: strictly up on m ≤ n, strictly down on m ≥ n, → 0",
        "properties/test_otc.py::test_ppo_branch_values_and_decay: n = 0 gives 1, ½, cos(2π/5), … decreasing to 0",
        "properties/test_otc.py::test_reward_zero_for_wrong_answers",
        "properties/test_otc.py::test_grpo_n_is_fewest_calls_among_correct: the cheapest correct rollout gets α",
        "properties/test_otc.py::test_mapping_is_harmonic_mean",
        "properties/test_otc.py::test_composition_grpo_ppo: OTC rewards → grpo advantages → ppo loss prefers fewer "
        "calls among correct rollouts",
        "properties/test_otc.py::test_bandit_converges_to_optimal_calls: exact-gradient GRPO on OTC rewards "
        "settles on m* while the plain correctness reward does not prefer it",
        "properties/test_otc.py::test_bad_input_raises",
    ),
))

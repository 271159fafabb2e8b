"""A GUI-action contextual bandit with three difficulty tiers (the CRAFT-GUI toy), solved exactly.

A task n shows a 5×5 screen grid and asks for one action of type τ_n ∈ {click, type, scroll} whose argument
must fall in a target set S_n of cells (for a click: the cells of the element's bounding box; for type / scroll
the cell stands for the choice of text / direction, an abstraction). Harder tiers have smaller targets: 3×3 cells
(tier 0), 2×2 (tier 1), one cell (tier 2); the tier also fixes the task's trajectory length (2, 4, 7 steps), the
difficulty score the curriculum bins.

The policy is a tabular softmax over the 3·25 = 75 actions a = (type, cell) of each task::

    π_θ(a | n) = softmax(θ[n])_a,     J_n(θ) = Σ_a π_θ(a|n) R[n, a],     J*_n = max_a R[n, a] = 1

where R[n, a] is the composite reward of :func:`rlspec.reference.craft_gui.composite_reward` computed for every
action from the rule components (format always valid here, type match, argument in the target set) and a
deterministic judge stand-in (:func:`judge_standin`: type match × max(0, 1 − d/4), d the Chebyshev distance from
the chosen cell to the target). The optimum is any action with the right type and a target cell (R = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail

GRID = 5
N_TYPES = 3
N_ACTIONS = N_TYPES * GRID * GRID
TIER_SIZE = (3, 2, 1)      # side of the square target per tier
TIER_STEPS = (2, 4, 7)     # trajectory length (difficulty score) per tier


@dataclass(frozen=True)
class Task:
    """One task: the required action type, the target cells (top-left corner and side), tier and step count."""

    gt_type: int
    row: int
    col: int
    size: int
    tier: int
    steps: int

    def targets(self) -> np.ndarray:
        """(25,) bool: the cells in the target square."""
        t = np.zeros((GRID, GRID), dtype=bool)
        t[self.row:self.row + self.size, self.col:self.col + self.size] = True
        return t.ravel()


def make_tasks(per_tier: int = 4, seed: int = 0) -> list[Task]:
    """``per_tier`` tasks in each of the three tiers, types cycling, target squares placed at random (seeded)."""
    if per_tier < 1:
        raise fail("per_tier", repr(per_tier), "at least one task per tier")
    rng = np.random.default_rng(seed)
    tasks = []
    for tier, (size, steps) in enumerate(zip(TIER_SIZE, TIER_STEPS)):
        for i in range(per_tier):
            r, c = (int(v) for v in rng.integers(0, GRID - size + 1, size=2))
            tasks.append(Task(gt_type=(i + tier) % N_TYPES, row=r, col=c, size=size, tier=tier, steps=steps))
    return tasks


def action_parts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(type, cell) of action indices a = type·25 + cell."""
    a = np.asarray(a)
    return a // (GRID * GRID), a % (GRID * GRID)


def chebyshev_to_target(task: Task) -> np.ndarray:
    """d (25,): Chebyshev distance of each cell to the task's target square (0 inside)."""
    rr, cc = np.divmod(np.arange(GRID * GRID), GRID)
    dr = np.maximum(0, np.maximum(task.row - rr, rr - (task.row + task.size - 1)))
    dc = np.maximum(0, np.maximum(task.col - cc, cc - (task.col + task.size - 1)))
    return np.maximum(dr, dc).astype(np.float64)


def rule_components(task: Task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fmt, type_ok, arg) each (75,) over all actions: format valid, type match, argument in the target set."""
    typ, cell = action_parts(np.arange(N_ACTIONS))
    return (np.ones(N_ACTIONS), (typ == task.gt_type).astype(np.float64),
            task.targets()[cell].astype(np.float64))


def judge_standin(task: Task) -> np.ndarray:
    """A deterministic stand-in for the model judge, (75,) in [0, 1]: type match × max(0, 1 − d/4)."""
    typ, cell = action_parts(np.arange(N_ACTIONS))
    return (typ == task.gt_type) * np.maximum(0.0, 1.0 - chebyshev_to_target(task)[cell] / 4.0)


def policy(theta) -> np.ndarray:
    """π (N, 75) = row-wise softmax of θ (N, 75)."""
    th = np.asarray(theta, dtype=np.float64)
    z = np.exp(th - th.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_reward(theta, R) -> np.ndarray:
    """J_n(θ) (N,) = Σ_a π(a|n) R[n, a], exactly."""
    return (policy(theta) * np.asarray(R, dtype=np.float64)).sum(axis=1)

"""HGPO: Hierarchy-of-Groups Policy Optimization, step-level advantages for multi-turn agents.

He, Feng, Wei, Cheng, Feng, An, "Hierarchy-of-Groups Policy Optimization for Long-Horizon Agentic Tasks",
arXiv 2602.22817 (Feb 2026, ICLR 2026). Official code: langfengQ/verl-agent ``recipe/hgpo`` (not reachable here).

Where it sits in the pipeline: reward → **advantage** (a step-level estimator for agents whose every turn
is a separate training sample; it replaces GiGPO's anchor-state step advantage). Each row of the batch is
one step (one turn's response tokens) of one trajectory; ``group`` is the environment group (the N
trajectories started from the same initial state); ``rewards`` are the step returns R_t.

Provenance. Only the abstract of the paper was readable here. The equations come from our notes
(papers_B.md §15, from two third-party notes) and agree with a public code file that implements HGPO
inside a verl-agent fork (a function ``HGPO`` that groups steps by anchor observation and by the last
l = 0..history_length observations, drops size-1 groups, skips zero advantages and weights level l by
(l+1)^α with α = 1); the repository of that file is not named by our code index, so it counts as
``secondary``. Every equation below is therefore tagged ``secondary``.

Notation (step t of trajectory i, state s_t^(i), K the memory length)::

    R_t^(i) = Σ_{j ≥ t} γ^{j−t} r_j^(i)                                 step return            (eq. 1)
    C_k(s_t^(i)) = (s_t, s_{t−1}, …, s_{t−k})                           k-step context         (eq. 2)
    G_k(s_t^(i)) = {(j, n) : same env group, C_k(s_n^(j)) = C_k(s_t^(i))}  level-k group, k = 0..K
    ⇒ G_0 ⊇ G_1 ⊇ … ⊇ G_K          (k = 0 is GiGPO's anchor-state group)
    A_k = (R − mean_{G_k} R) / (std_{G_k} R + ε)                         level-k advantage      (eq. 3)
    A^H = Σ_k w_k A_k,   w_k = (k+1)^α / Σ_{l ∈ L} (l+1)^α                 aggregation            (eq. 4)

L is the set of levels that take part for this step: levels whose group has at least two members and,
with ``zero_levels="skip"`` (the code, and our notes: "groups with zero advantage are skipped"), whose
A_k is not zero. The weights are renormalised over L, so they always sum to one; a step with L empty
(its anchor state is visited once in its env group, or every level gives 0) gets A^H = 0.

Conventions (open in the sources; the choices are config fields):
  * ``std_normalize=True`` is the z-score of our notes' eq. 3; the code's default mode ``mean_norm``
    (no std division) is ``std_normalize=False``;
  * ``ddof=0``: the code's ``np.std`` (population std); all-equal groups have std exactly 0 and A_k = 0;
  * a step with fewer than k earlier steps (t < k) has no level-k group (the code skips it), so a first
    step only has level 0;
  * "A_k is zero" is tested as |R − mean_{G_k} R| ≤ 1e-12 · max_{G_k} |R| so that rounding residues of the
    mean (1e-17) count as zero the same way in every implementation;
  * the context is the sequence of state ids the caller gives (encode the observation, and the action if
    the memory module keeps it, into one integer id per step).

Inputs beyond the outcome batch (keyword arguments, each (B,) integers): ``state`` (anchor-state id of
the step), ``traj`` (trajectory id; a trajectory lies in one env group and holds steps 0..n−1, each once),
``step`` (index of the step in its trajectory). Without them every row is a one-step episode from its
group's initial state, every step has only level 0, and HGPO is exactly GRPO with the same
ddof/ε/std convention (the limit the properties check). Rewards are always read; the mask only shapes
the (B, T) broadcast; masked positions of the output are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, in_range, positive
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

HGPO_PAPER = Paper(arxiv="2602.22817", title="Hierarchy-of-Groups Policy Optimization for Long-Horizon Agentic Tasks",
                   year=2026)

ZERO_RTOL = 1e-12  # |R − mean| ≤ ZERO_RTOL · max|R| over the group counts as a zero advantage


@dataclass(frozen=True)
class HGPOConfig:
    """K: memory length (levels 0..K; our notes: K ∈ {2, 4}, the code's default history_length = 2).
    alpha: depth exponent of the weights (k+1)^α (1 main, 0 uniform). eps: added to the std.
    std_normalize: z-score (True) or mean-centring only (False, the code's mean_norm). ddof: 0 or 1.
    zero_levels: "skip" (a level whose A_k is zero leaves the weighted sum) or "keep"."""

    K: int = 2
    alpha: float = 1.0
    eps: float = 1e-6
    std_normalize: bool = True
    ddof: int = 0
    zero_levels: str = "skip"

    def __post_init__(self) -> None:
        if not isinstance(self.K, (int, np.integer)) or isinstance(self.K, bool) or self.K < 0:
            raise fail("K", repr(self.K), "an integer memory length ≥ 0")
        positive(self.alpha, "alpha", allow_zero=True)
        positive(self.eps, "eps", allow_zero=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        choice(self.zero_levels, "zero_levels", ("skip", "keep"))


# --------------------------------------------------------------------------- inputs
def _int_vector(x, name: str, B: int) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != (B,):
        raise fail(name, f"shape {a.shape}", f"shape ({B},): one integer per step")
    if not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == np.round(a)).all():
            a = a.astype(np.int64)
        else:
            raise fail(name, f"dtype {a.dtype}", "integer ids")
    return a.astype(np.int64)


def validate_steps(group: np.ndarray, state=None, traj=None, step=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """state, traj, step (B,) int64 each; defaults: one state per group, one one-step trajectory per row.

    Checks: step ≥ 0; traj and step given together; each (traj, step) once; a trajectory in one env
    group; the steps of a trajectory are 0..n−1 (so every history a context needs is in the batch)."""
    B = group.shape[0]
    if (traj is None) != (step is None):
        raise fail("traj" if traj is None else "step", "None", "traj and step both given (or both None)")
    s = np.zeros(B, np.int64) if state is None else _int_vector(state, "state", B)
    if traj is None:
        return s, np.arange(B, dtype=np.int64), np.zeros(B, np.int64)
    tr, st = _int_vector(traj, "traj", B), _int_vector(step, "step", B)
    if (st < 0).any():
        raise fail("step", f"a negative step index {st.min()}", "step indices ≥ 0")
    for t in np.unique(tr):
        rows = tr == t
        if len(np.unique(group[rows])) > 1:
            raise fail("traj", f"trajectory {t} in env groups {sorted(set(group[rows].tolist()))}",
                       "each trajectory inside one env group")
        if not np.array_equal(np.sort(st[rows]), np.arange(rows.sum())):
            raise fail("step", f"steps {sorted(st[rows].tolist())} for trajectory {t}",
                       "each trajectory's steps 0..n−1, each exactly once")
    return s, tr, st


# --------------------------------------------------------------------------- equations
def discounted_returns(step_rewards, traj, step, gamma: float = 0.95) -> np.ndarray:
    """R_t = Σ_{j ≥ t} γ^{j−t} r_j within each trajectory (B,)  — eq. 1 (γ = 0.95 in the paper's runs)."""
    r = np.asarray(step_rewards, dtype=np.float64)
    in_range(gamma, "gamma", 0.0, 1.0)
    if r.ndim != 1 or not np.isfinite(r).all():
        raise fail("step_rewards", f"shape {r.shape}" if r.ndim != 1 else "non-finite values", "finite rewards (B,)")
    _, tr, st = validate_steps(np.zeros(r.shape[0], np.int64), None, traj, step)
    R = np.zeros_like(r)
    for t in np.unique(tr):
        rows = np.flatnonzero(tr == t)[np.argsort(st[tr == t])]  # this trajectory's rows in step order
        running = 0.0
        for b in rows[::-1]:
            running = r[b] + gamma * running
            R[b] = running
    return R


def context_keys(group: np.ndarray, state: np.ndarray, traj: np.ndarray, step: np.ndarray, k: int) -> list:
    """C_k per row: (env group, s_t, s_{t−1}, …, s_{t−k}) as a tuple, or None where t < k  — eq. 2."""
    where = {(int(t), int(n)): int(s) for t, n, s in zip(traj, step, state)}
    keys: list = []
    for g, t, n in zip(group, traj, step):
        keys.append(None if n < k else (int(g),) + tuple(where[(int(t), int(n) - j)] for j in range(k + 1)))
    return keys


def level_groups(keys: list) -> np.ndarray:
    """Level-k group ids (B,) from the context keys; −1 for rows without a level-k context."""
    ids, seen = np.full(len(keys), -1, np.int64), {}
    for b, key in enumerate(keys):
        if key is not None:
            ids[b] = seen.setdefault(key, len(seen))
    return ids


def level_advantage(R: np.ndarray, ids: np.ndarray, cfg: HGPOConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A_k (B,), ``valid`` (group of ≥ 2 steps) and ``zero`` (A_k is zero, see ZERO_RTOL)  — eq. 3."""
    A, valid, zero = np.zeros_like(R), np.zeros(R.shape, bool), np.ones(R.shape, bool)
    for i in np.unique(ids[ids >= 0]):
        rows = ids == i
        n, Rg = int(rows.sum()), R[rows]
        if n < 2:
            continue
        valid[rows] = True
        if Rg.min() == Rg.max():  # all-equal group: exactly zero, no rounding residue
            continue
        centred = Rg - Rg.mean()
        zero[rows] = np.abs(centred) <= ZERO_RTOL * np.abs(Rg).max()
        sd = Rg.std(ddof=cfg.ddof)
        A[rows] = np.where(zero[rows], 0.0, centred / (sd + cfg.eps) if cfg.std_normalize else centred)
    return A, valid, zero


def level_weights(used: np.ndarray, alpha: float) -> np.ndarray:
    """w (B, K+1): (k+1)^α renormalised over the levels used by each row; a row using none gets 0."""
    raw = np.where(used, (np.arange(used.shape[1], dtype=np.float64) + 1.0)[None, :] ** alpha, 0.0)
    total = raw.sum(axis=1, keepdims=True)
    return np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)


def hierarchy(R: np.ndarray, group: np.ndarray, state, traj, step, cfg: HGPOConfig) -> dict[str, np.ndarray]:
    """Per level k = 0..K: group ids (B, K+1), A_k (B, K+1), levels used (B, K+1) and weights w (B, K+1)."""
    ids = np.stack([level_groups(context_keys(group, state, traj, step, k)) for k in range(cfg.K + 1)], axis=1)
    parts = [level_advantage(R, ids[:, k], cfg) for k in range(cfg.K + 1)]
    A = np.stack([p[0] for p in parts], axis=1)
    used = np.stack([p[1] & (~p[2] if cfg.zero_levels == "skip" else True) for p in parts], axis=1)
    return {"ids": ids, "A": A, "used": used, "w": level_weights(used, cfg.alpha)}


def hgpo_step_advantage(R: np.ndarray, group: np.ndarray, state, traj, step, cfg: HGPOConfig) -> np.ndarray:
    """A^H = Σ_k w_k A_k per step (B,)  — eq. 4."""
    h = hierarchy(R, group, state, traj, step, cfg)
    return (h["w"] * h["A"]).sum(axis=1)


def hgpo_advantage(rewards, group, mask, config: HGPOConfig | None = None, state=None, traj=None,
                   step=None) -> np.ndarray:
    """HGPO advantage (B, T): the hierarchy-of-groups step advantage broadcast over each step's tokens.

    Args: rewards (B,) step returns R_t; group (B,) env group ids; mask (B, T) bool; optional state,
    traj, step (B,) integer ids (see the module docstring; without them HGPO is GRPO).
    Returns: (B, T) float64, zero at masked positions and for steps no level group gives a signal.
    """
    cfg = config or HGPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    s, tr, st = validate_steps(g, state, traj, step)
    return broadcast_to_tokens(hgpo_step_advantage(R, g, s, tr, st, cfg), M)


def hierarchy_of(rewards, group, mask, config: HGPOConfig | None = None, state=None, traj=None, step=None):
    """The per-level pieces (ids, A, used, w) of :func:`hgpo_advantage`, for inspection and tests."""
    cfg = config or HGPOConfig()
    R, g, _ = validate_outcome(rewards, group, mask)
    s, tr, st = validate_steps(g, state, traj, step)
    return hierarchy(R, g, s, tr, st, cfg)


# --------------------------------------------------------------------------- example inputs
def make_inputs(rng: np.random.Generator) -> dict:
    """A multi-turn batch: 1-3 env groups of 2-4 trajectories of 1-5 steps over 2-3 states (so anchor
    states and histories collide), returns on a coarse grid (ties, all-equal levels), ragged mask."""
    state, traj, step, group = [], [], [], []
    n_states = int(rng.integers(2, 4))
    tid = 0
    for g in rng.choice(np.arange(-5, 6), size=int(rng.integers(1, 4)), replace=False):
        for _ in range(int(rng.integers(2, 5))):
            n = int(rng.integers(1, 6))
            state += [0] + list(rng.integers(0, n_states, size=n - 1))  # every trajectory starts in state 0
            traj += [tid] * n
            step += list(range(n))
            group += [int(g)] * n
            tid += 1
    B, T = len(state), int(rng.integers(1, 5))
    order = rng.permutation(B)  # rows in any order
    R = np.round(rng.normal(size=B) * 2) / 2 if rng.random() < 0.5 else rng.normal(size=B)
    lengths = rng.integers(0, T + 1, size=B)
    return {"rewards": R, "group": np.asarray(group)[order], "mask": np.arange(T)[None, :] < lengths[:, None],
            "state": np.asarray(state)[order], "traj": np.asarray(traj)[order], "step": np.asarray(step)[order]}


def conformance_configs():
    return ({"K": 0}, {"K": 4, "alpha": 0.0}, {"zero_levels": "keep"}, {"std_normalize": False, "ddof": 1})


_NOTE = ("papers_B.md §15 (two third-party notes); agrees with a public verl-agent-fork file implementing HGPO "
         "(repository not named by our index), the paper's method section was not readable here")

register(Spec(
    name="hgpo", kind="advantage", family="multi-turn", paper=HGPO_PAPER, status="implemented",
    summary=("step-level advantage for agents (reward → advantage): nested groups of steps sharing the last "
             "0..K states, per-level z-scores, (k+1)^α weights renormalised over the levels with a signal"),
    fn=hgpo_advantage, config_cls=HGPOConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"discounted_returns": discounted_returns, "hierarchy": hierarchy_of, "context_keys": context_keys,
            "level_weights": level_weights, "conformance_configs": conformance_configs},
    equations=(
        Equation("hgpo-return", "R_t = Σ_{j≥t} γ^{j−t} r_j", "arXiv 2602.22817 §3 (as summarised)", "secondary",
                 "discounted_returns", note=_NOTE + "; γ = 0.95 in the runs"),
        Equation("hgpo-context", "C_k(s_t) = (s_t, …, s_{t−k});  G_k = {steps with equal C_k}, G_0 ⊇ … ⊇ G_K",
                 "arXiv 2602.22817 §4 (as summarised)", "secondary", "context_keys",
                 note=_NOTE + "; steps with t < k have no level-k group, as in that code"),
        Equation("hgpo-level-adv", "A_k = (R − mean_{G_k} R)/(std_{G_k} R + ε)", "arXiv 2602.22817 §4 (as summarised)",
                 "secondary", "level_advantage",
                 note=_NOTE + "; the code's default mode is mean-centring only (std_normalize=False) with np.std "
                      "(ddof = 0); size-1 groups are dropped"),
        Equation("hgpo-aggregate", "A^H = Σ_{k∈L} w_k A_k,  w_k = (k+1)^α / Σ_{l∈L} (l+1)^α",
                 "arXiv 2602.22817 §4 (as summarised)", "secondary", "level_weights",
                 note=_NOTE + "; L = levels with ≥ 2 steps and (zero_levels='skip') A_k ≠ 0; α = 1 in the code"),
    ),
    properties=(
        "properties/test_hgpo.py::test_groups_are_nested: G_{k+1}(s) ⊆ G_k(s) for every step and level",
        "properties/test_hgpo.py::test_weights_sum_to_one_and_grow_with_depth: Σ_k w_k = 1 where any level is used; "
        "w increasing in k for α > 0, uniform for α = 0",
        "properties/test_hgpo.py::test_matches_brute_force: A^H equals a pairwise brute-force construction",
        "properties/test_hgpo.py::test_one_step_episodes_are_grpo: one-step episodes (or no state/traj/step) give "
        "GRPO's advantage with the same ddof/ε",
        "properties/test_hgpo.py::test_K0_is_gigpo_anchor_state_advantage: K = 0 gives GiGPO's step-level advantage",
        "properties/test_hgpo.py::test_identical_histories_give_level0: identical histories at all levels ⇒ A^H = A_0",
        "properties/test_hgpo.py::test_aggregate_is_convex_combination: min_k A_k ≤ A^H ≤ max_k A_k over used levels "
        "(the pointwise core of Prop. 4.1's 'bias between level 0 and level K')",
        "properties/test_hgpo.py::test_prop41_bias_between_levels_on_aliased_chain: Prop. 4.1 (bias part) on an "
        "exactly enumerated aliased-state problem: bias(A_K) < bias(A^H) < bias(A_0), decreasing in α",
        "untested: Prop. 4.1's variance bound Var(A^H) ≤ Σ_k w_k² Var_k — it assumes fixed weights and zero covariance "
        "between levels; the levels share the step's own return and the weights depend on which levels are "
        "available, and on the aliased-state problem of the bias test Var(A^H − A) exceeds both Var_0 and Var_1",
        "properties/test_hgpo.py::test_discounted_returns",
        "properties/test_hgpo.py::test_masked_positions_and_permutation",
        "properties/test_hgpo.py::test_feeds_ppo: HGPO advantages into registry.get('ppo') give the PG weight −A^H·c "
        "on-policy",
        "properties/test_hgpo.py::test_bad_input_raises",
    ),
))

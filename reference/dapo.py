"""DAPO: clip-higher token-level surrogate, soft overlong punishment, dynamic sampling.

Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale", arXiv 2503.14476.

Notation: r = π_θ/π_old per token (B, T); Â the advantage (B, T); ε_low, ε_high the decoupled clip
range (§3.1 "Clip-Higher": ε_low = 0.2, ε_high = 0.28).

Policy loss (§3.3 token-level loss; objective of eq. (8), loss = −objective)::

    ℓ_t = −min(r_t Â_t, clip(r_t, 1−ε_low, 1+ε_high) Â_t)        aggregated with token-mean, no KL term

The surrogate is :func:`rlspec.reference.ppo.clipped_surrogate` (reused, not repeated). The paper's eq. (8)
normalizes by Σ_i |o_i| over the G outputs of one prompt (``agg='group-token-mean'``, pass ``group``);
verl and most re-implementations normalize by all valid tokens of the batch (``token-mean``, the
default here). The two agree when the batch holds one prompt, or prompts with equal token counts.

Soft overlong punishment (§3.4, eq. (13)), a reward added to the outcome reward::

    R_len(|y|) = 0                                 if |y| ≤ L_max − L_cache
               = ((L_max − L_cache) − |y|)/L_cache if L_max − L_cache < |y| ≤ L_max
               = −1                                if |y| > L_max

Defaults L_max = 20480, L_cache = 4096 (§4.1: 16384 expected + 4096 buffer). verl's DAPO reward
manager multiplies by ``penalty_factor`` (1.0 in its DAPO recipe) and continues the linear ramp past
L_max instead of flooring at −1 (``beyond_max='linear'``); responses are truncated at L_max there, so
the two agree on every length verl can produce.

Dynamic sampling (§3.2, eq. (11) constraint 0 < |{o_i correct}| < G): keep only groups whose rewards
are not all equal. A group of one rollout is all-equal by definition and is dropped here
(``keep_singletons=False``); verl's DAPO trainer keeps it (``std > 0 or len == 1``), exposed as
``keep_singletons=True``. Re-sampling until the batch is full is the trainer's loop, not this
function: here we return the keep mask of one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, finite_vector, group_ids, policy_batch, positive
from rlspec.reference.ppo import clipped_surrogate
from rlspec.reference.registry import Equation, Paper, Spec, register

DAPO_PAPER = Paper(arxiv="2503.14476", title="DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
                   year=2025)


# --------------------------------------------------------------------------- policy loss
@dataclass(frozen=True)
class DAPOConfig(common.AggregationOptions):
    """eps_low/eps_high: decoupled clip range (paper: 0.2 / 0.28). agg: token-mean (paper §3.3)."""

    eps_low: float = 0.2
    eps_high: float = 0.28

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)


def dapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: DAPOConfig | None = None, group=None):
    """DAPO clip-higher surrogate with token-level aggregation, and its gradient w.r.t. logp.

    ℓ = −min(r Â, clip(r, 1−ε_low, 1+ε_high) Â), loss = Σ c ⊙ ℓ (c from ``config.agg``).
    ∂loss/∂logp = −c Â r on the unclipped branch, exactly 0 where the clip binds in the preferred
    direction (r > 1+ε_high with Â > 0, r < 1−ε_low with Â < 0).

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused (DAPO
    has no KL term); ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or DAPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


# --------------------------------------------------------------------------- overlong punishment
@dataclass(frozen=True)
class OverlongConfig:
    """L_max, L_cache (paper: 20480, 4096); penalty_factor scales R_len (verl; paper: 1);
    beyond_max: 'paper' (−1 past L_max) or 'linear' (verl: the ramp continues)."""

    L_max: int = 20480
    L_cache: int = 4096
    penalty_factor: float = 1.0
    beyond_max: str = "paper"

    def __post_init__(self) -> None:
        positive(self.L_max, "L_max")
        positive(self.L_cache, "L_cache")
        if self.L_cache > self.L_max:
            raise fail("L_cache", repr(self.L_cache), f"a buffer no longer than L_max = {self.L_max}")
        positive(self.penalty_factor, "penalty_factor", allow_zero=True)
        choice(self.beyond_max, "beyond_max", ("paper", "linear"))


def soft_overlong_penalty(length: np.ndarray, L_max: float, L_cache: float, beyond_max: str = "paper") -> np.ndarray:
    """R_len(|y|) of DAPO eq. (13), elementwise over lengths (B,); values in [−1, 0] ('paper')."""
    ramp = ((L_max - L_cache) - length) / L_cache  # (B,), ≥ 0 below the buffer, −1 at L_max
    R = np.minimum(ramp, 0.0)
    if beyond_max == "paper":
        R = np.where(length > L_max, -1.0, R)
    return R


def validate_lengths(lengths) -> np.ndarray:
    """Response lengths (B,): non-negative integers (integral floats accepted)."""
    a = np.asarray(lengths)
    if a.ndim != 1:
        raise fail("lengths", f"shape {a.shape}", "a 1-D array (B,) of response lengths")
    if a.dtype == np.bool_:
        raise fail("lengths", "dtype bool", "non-negative integer lengths")
    L = finite_vector(a, "lengths")
    if (L < 0).any() or (L != np.round(L)).any():
        i = int(np.argwhere((L < 0) | (L != np.round(L)))[0][0])
        raise fail("lengths", f"{L[i]!r} at index {i}", "non-negative integer lengths")
    return L


def dapo_overlong(lengths, config: OverlongConfig | None = None) -> np.ndarray:
    """Soft overlong punishment per response: ``penalty_factor · R_len(|y|)`` (B,) float64.

    Args: lengths (B,) non-negative integers (number of response tokens).
    Returns: penalties (B,), to be added to the outcome reward (0 for short responses).
    """
    cfg = config or OverlongConfig()
    L = validate_lengths(lengths)
    return cfg.penalty_factor * soft_overlong_penalty(L, float(cfg.L_max), float(cfg.L_cache), cfg.beyond_max)


def _overlong_inputs(rng: np.random.Generator) -> dict:
    """Lengths around both breakpoints of the default config, plus exact boundary values."""
    cfg = OverlongConfig()
    edges = np.array([0, cfg.L_max - cfg.L_cache, cfg.L_max - cfg.L_cache + 1, cfg.L_max, cfg.L_max + 1])
    rand = rng.integers(0, cfg.L_max + cfg.L_cache, size=int(rng.integers(1, 12)))
    return {"lengths": np.concatenate([edges, rand]).astype(np.int64)}


# --------------------------------------------------------------------------- dynamic sampling
@dataclass(frozen=True)
class DynamicSamplingConfig:
    """keep_singletons: False (a 1-rollout group is all-equal, dropped) or True (verl's DAPO trainer).
    atol: rewards closer than atol count as equal (paper: exact, 0)."""

    keep_singletons: bool = False
    atol: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.keep_singletons, bool):
            raise fail("keep_singletons", repr(self.keep_singletons), "True or False")
        positive(self.atol, "atol", allow_zero=True)


def informative_groups(R: np.ndarray, g: np.ndarray, atol: float, keep_singletons: bool) -> np.ndarray:
    """keep (B,) bool: True where the sequence's group has max R − min R > atol (DAPO eq. (11))."""
    keep = np.zeros(R.shape, dtype=bool)
    for k in np.unique(g):
        rows = g == k
        spread = R[rows].max() - R[rows].min()
        keep[rows] = spread > atol or (keep_singletons and rows.sum() == 1)
    return keep


def dapo_dynamic_sampling(rewards, group, config: DynamicSamplingConfig | None = None) -> np.ndarray:
    """DAPO dynamic-sampling filter: keep (B,) bool, False for every sequence of an all-equal group.

    Args: rewards (B,) finite; group (B,) integer prompt ids.
    Returns: keep (B,) bool. Singleton groups are dropped unless ``keep_singletons``.
    """
    cfg = config or DynamicSamplingConfig()
    R = finite_vector(rewards, "rewards")
    g = group_ids(group, R.shape[0])
    return informative_groups(R, g, cfg.atol, cfg.keep_singletons)


def _dynamic_sampling_inputs(rng: np.random.Generator) -> dict:
    """Binary rewards in small groups (all-correct, all-wrong, mixed, singletons)."""
    B = int(rng.integers(1, 16))
    group = rng.integers(0, max(1, B // 2), size=B)
    return {"rewards": rng.integers(0, 2, size=B).astype(np.float64), "group": group}


# --------------------------------------------------------------------------- registry
register(Spec(
    name="dapo", kind="policy_loss", family="baseline", paper=DAPO_PAPER, status="implemented",
    summary="PPO clip with clip-higher (ε_low=0.2, ε_high=0.28), token-level loss, no KL",
    fn=dapo_loss, config_cls=DAPOConfig, outputs=("loss", "dlogp"),
    equations=(
        Equation("dapo-objective", "ℓ = −min(r Â, clip(r, 1−ε_low, 1+ε_high) Â), loss = Σ_it ℓ / Σ_i |o_i|",
                 "arXiv 2503.14476 §3.1, §3.3 eq. (8)", "secondary", "dapo_loss",
                 note="from our notes (papers_A.md §B) and third-party renderings of eq. (8); the paper's "
                      "normalizer is per prompt (agg='group-token-mean'); token-mean over the batch is the default"),
        Equation("clip-higher", "ε_low = 0.2, ε_high = 0.28", "arXiv 2503.14476 §3.1", "secondary",
                 note="values as in our notes and in ms-swift/verl DAPO docs"),
    ),
    gradient="∂loss/∂logp = −c·Â·r on the unclipped branch; exactly 0 where r > 1+ε_high (Â>0) or r < 1−ε_low (Â<0)",
    properties=(
        "properties/test_dapo.py::test_hand_gradient_matches_finite_differences: dlogp = central FD",
        "properties/test_dapo.py::test_clip_zeroes_gradient_where_it_binds: dlogp = 0 where clipped, −Â r c elsewhere",
        "properties/test_dapo.py::test_on_policy_equals_vanilla_pg: r ≡ 1 gives −Â c",
        "properties/test_dapo.py::test_token_mean_is_length_weighted_seq_mean",
    ),
))

register(Spec(
    name="dapo_overlong", kind="reward", family="baseline", paper=DAPO_PAPER, status="implemented",
    summary="soft overlong punishment R_len(|y|): 0, then a linear ramp to −1 over the last L_cache tokens",
    fn=dapo_overlong, config_cls=OverlongConfig, outputs=("penalty",), make_inputs=_overlong_inputs,
    equations=(
        Equation("overlong", "R_len = 0 | ((L_max−L_cache)−|y|)/L_cache | −1", "arXiv 2503.14476 §3.4 eq. (13)",
                 "secondary", "soft_overlong_penalty",
                 note="piecewise form from our notes; verl's reward manager (min(−exceed/L_cache·factor, 0), "
                      "no −1 floor) is beyond_max='linear'"),
    ),
    properties=(
        "properties/test_dapo.py::test_overlong_piecewise_values",
        "properties/test_dapo.py::test_overlong_continuous_and_monotone",
    ),
))

register(Spec(
    name="dapo_dynamic_sampling", kind="sampler", family="baseline", paper=DAPO_PAPER, status="implemented",
    summary="keep mask dropping groups whose rewards are all equal (zero-advantage groups)",
    fn=dapo_dynamic_sampling, config_cls=DynamicSamplingConfig, outputs=("keep",),
    make_inputs=_dynamic_sampling_inputs,
    equations=(
        Equation("dynamic-sampling", "keep group iff 0 < |{o_i correct}| < G  (generalized: rewards not all equal)",
                 "arXiv 2503.14476 §3.2 eq. (11)", "secondary", "informative_groups",
                 note="verl's DAPO trainer keeps groups with std > 0 or size 1 (keep_singletons=True)"),
    ),
    properties=("properties/test_dapo.py::test_dynamic_sampling_drops_exactly_all_equal_groups",),
))

"""Stop-properly penalty: the outcome reward of a truncated response is scaled down or replaced.

OpenRLHF, ``--reward.stop_properly_penalty_coef`` (``apply_stop_properly_penalty`` in
``openrlhf/trainer/ppo_utils/length_penalty.py``, OpenRLHF 0.11.2), which attributes the idea to ProRL;
no equation from a paper is implemented here. A response is *truncated* when generation stopped at the
length limit instead of at a stop token (vLLM ``finish_reason == "length"``).

With coefficient c and the truncation flag τ_i of rollout i::

    R'_i = R_i                 if not τ_i
         = c · R_i             if τ_i and 0 ≤ c ≤ 1     (multiplicative scaling)
         = c                   if τ_i and c < 0         (a fixed negative reward replaces R_i)

Default c = 0 (a truncated response earns nothing): OpenRLHF leaves the penalty off unless c is given,
so the default is ours (labelled ``reconstructed``). c > 1 is rejected, as in the framework.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import fail, finite_vector
from rlspec.reference.registry import Equation, Paper, Spec, register

STOP_PROPERLY_SOURCE = Paper(arxiv="", title="OpenRLHF: length_penalty (stop_properly_penalty_coef)", year=2026,
                             url="https://github.com/OpenRLHF/OpenRLHF")


@dataclass(frozen=True)
class StopProperlyConfig:
    """coef: in [0, 1] scales a truncated response's reward; below 0 it replaces that reward."""

    coef: float = 0.0

    def __post_init__(self) -> None:
        try:
            c = float(self.coef)
        except (TypeError, ValueError):
            raise fail("coef", repr(self.coef), "a real number") from None
        if not np.isfinite(c) or c > 1.0:
            raise fail("coef", repr(self.coef), "a number in [0, 1] (scaling) or below 0 (fixed reward)")


def validate_truncated(truncated, length: int) -> np.ndarray:
    """Truncation flags (B,): booleans (0/1 integers accepted)."""
    t = np.asarray(truncated)
    if t.ndim != 1 or t.shape[0] != length:
        raise fail("truncated", f"shape {t.shape}", f"shape ({length},): one flag per response")
    if t.dtype != np.bool_:
        if np.issubdtype(t.dtype, np.integer) and np.isin(t, (0, 1)).all():
            return t.astype(bool)
        raise fail("truncated", f"dtype {t.dtype}", "booleans (True = stopped at the length limit)")
    return t


def penalized_reward(R: np.ndarray, tau: np.ndarray, c: float) -> np.ndarray:
    """R'_i = R_i (not truncated), c·R_i (truncated, c ≥ 0) or c (truncated, c < 0), (B,)."""
    hit = c * R if c >= 0 else np.full_like(R, c)
    return np.where(tau, hit, R)


def stop_properly_penalty(rewards, truncated, config: StopProperlyConfig | None = None) -> np.ndarray:
    """Outcome rewards (B,) after the stop-properly penalty.

    Args: rewards (B,) finite; truncated (B,) bool. Returns: rewards (B,) float64.
    """
    cfg = config or StopProperlyConfig()
    R = finite_vector(rewards, "rewards")
    tau = validate_truncated(truncated, R.shape[0])
    return penalized_reward(R, tau, float(cfg.coef))


def _inputs(rng: np.random.Generator) -> dict:
    """Binary and continuous rewards (negative ones too), about a third of the responses truncated."""
    B = int(rng.integers(1, 12))
    R = np.where(rng.random(B) < 0.5, rng.integers(0, 2, size=B).astype(np.float64), rng.normal(size=B))
    return {"rewards": R, "truncated": rng.random(B) < 0.35}


register(Spec(
    name="stop_properly_penalty", kind="reward", family="framework", paper=STOP_PROPERLY_SOURCE,
    status="implemented", summary="penalty for responses that do not end with a stop token",
    fn=stop_properly_penalty, config_cls=StopProperlyConfig, outputs=("rewards",), make_inputs=_inputs,
    extras={"conformance_configs": lambda: [("coef=0.5", {"coef": 0.5}), ("coef=1", {"coef": 1.0}),
                                            ("coef=-0.5", {"coef": -0.5})]},
    equations=(
        Equation("stop-properly", "R' = R (stopped) | c·R (truncated, 0 ≤ c ≤ 1) | c (truncated, c < 0)",
                 "OpenRLHF 0.11.2 trainer/ppo_utils/length_penalty.py apply_stop_properly_penalty",
                 "official-code", "penalized_reward",
                 note="read in the framework's source; it credits ProRL (not read); the default c = 0 is ours"),
    ),
    properties=(
        "properties/test_stop_properly_penalty.py::test_untruncated_rewards_unchanged",
        "properties/test_stop_properly_penalty.py::test_scaling_and_override_cases",
        "properties/test_stop_properly_penalty.py::test_never_increases_a_nonnegative_reward",
    ),
))

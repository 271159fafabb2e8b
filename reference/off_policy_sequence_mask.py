"""Off-policy sequence masking (OPSM): drop negative-advantage sequences that drifted too far.

DeepSeek-AI, "DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models", arXiv 2512.02556,
§ on scaling GRPO (off-policy sequence masking, eq. (9)); shipped by TRL as
``GRPOConfig.off_policy_mask_threshold`` / ``GRPOTrainer.get_off_policy_mask``.

A sequence i is masked out of the policy loss when its advantage is negative AND the per-token
average of log(π_old/π_θ) over its valid tokens — a sample estimate of KL(π_old ‖ π_θ) — exceeds δ::

    D_i    = (1/|o_i|) Σ_t m_it (log π_old(y_it) − log π_θ(y_it))
    keep_i = (Â_i ≥ 0) ∨ (D_i ≤ δ)                                           (B,) bool

π_old is the policy that sampled the batch: with a separate rollout engine, its log-probs
(``old_logp`` here is whatever the caller takes as the sampling policy; TRL uses the engine's
``sampling_per_token_logps`` when present, else the trainer's ``old_per_token_logps``). Ties: Â_i = 0
counts as non-negative and D_i = δ is kept, as in TRL. A sequence without valid tokens has D_i = 0
(TRL divides by ``clamp(|o_i|, min=1)``), so it is kept for every δ ≥ 0; it contributes nothing to a
loss anyway.

Provenance: eq. (9) as described by TRL's documentation and third-party notes on the report
(``secondary``); the tie and empty-sequence conventions from TRL 1.16.0. δ has no value in what we
read of the report; the default 0.5 is the example of TRL's documentation (``reconstructed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_2d, as_mask, fail, finite_vector, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

DSV32_PAPER = Paper(arxiv="2512.02556", title="DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models",
                    year=2025)


@dataclass(frozen=True)
class OffPolicySequenceMaskConfig:
    """delta: threshold δ ≥ 0 on the sequence's mean log(π_old/π_θ) (TRL docs example: 0.5)."""

    delta: float = 0.5

    def __post_init__(self) -> None:
        positive(self.delta, "delta", allow_zero=True)


def mean_log_drift(logp: np.ndarray, old_logp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """D_i = Σ_t m (old_logp − logp) / max(|o_i|, 1)  (B,)."""
    n = mask.sum(axis=1)
    return np.where(mask, old_logp - logp, 0.0).sum(axis=1) / np.maximum(n, 1)


def off_policy_sequence_mask(logp, old_logp, adv, mask, config: OffPolicySequenceMaskConfig | None = None
                             ) -> np.ndarray:
    """keep (B,) bool: False for sequences with Â_i < 0 and mean log(π_old/π_θ) > δ.

    Args: logp, old_logp (B, T) float (padding never read); adv (B,) one advantage per sequence;
    mask (B, T) bool.
    Returns: keep (B,) bool.
    """
    cfg = config or OffPolicySequenceMaskConfig()
    lp = as_2d(logp, "logp")
    m = as_mask(mask, "mask", lp.shape)
    lp = masked_array(logp, "logp", m)
    olp = masked_array(old_logp, "old_logp", m)
    A = np.asarray(adv)
    if A.ndim != 1:
        raise fail("adv", f"shape {A.shape}", f"shape ({m.shape[0]},): one advantage per sequence")
    A = finite_vector(A, "adv", m.shape[0])
    D = mean_log_drift(lp, olp, m)
    return (A >= 0) | (D <= cfg.delta)


def _inputs(rng: np.random.Generator) -> dict:
    """Policy drifts of mean −1 to 2 per sequence, both advantage signs (and exact zeros), ragged mask
    with garbage padding (δ variants come from ``extras['conformance_configs']``)."""
    B, T = int(rng.integers(1, 8)), int(rng.integers(1, 7))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    drift = rng.choice(np.array([-1.0, 0.0, 0.3, 0.8, 2.0]), size=(B, 1))  # per-sequence mean drift
    old = logp + rng.normal(loc=drift, scale=0.2, size=(B, T))
    adv = rng.normal(size=B)
    adv[rng.random(B) < 0.2] = 0.0
    pad = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30]), size=(B, T))
    return {"logp": np.where(mask, logp, pad), "old_logp": np.where(mask, old, pad), "adv": adv, "mask": mask}


register(Spec(
    name="off_policy_sequence_mask", kind="sampler", family="framework", paper=DSV32_PAPER, status="implemented",
    summary="drop negative-advantage sequences whose mean log(π_old/π_θ) exceeds δ",
    fn=off_policy_sequence_mask, config_cls=OffPolicySequenceMaskConfig, outputs=("keep",), make_inputs=_inputs,
    extras={"conformance_configs": lambda: [("delta=0", {"delta": 0.0}), ("delta=0.1", {"delta": 0.1}),
                                            ("delta=2", {"delta": 2.0})]},
    equations=(
        Equation("opsm", "M_i = 0 if Â_i < 0 and (1/|o_i|) Σ_t log(π_old/π_θ) > δ, else 1",
                 "arXiv 2512.02556, eq. (9)", "secondary", "off_policy_sequence_mask",
                 note="as described by TRL's docs (GRPOConfig.off_policy_mask_threshold) and implemented in "
                      "GRPOTrainer.get_off_policy_mask; ties and empty sequences as in TRL"),
        Equation("opsm-delta", "δ = 0.5", "TRL docs example", "reconstructed", "OffPolicySequenceMaskConfig"),
    ),
    properties=(
        "properties/test_off_policy_sequence_mask.py::test_nonnegative_advantages_always_kept",
        "properties/test_off_policy_sequence_mask.py::test_on_policy_keeps_everything",
        "properties/test_off_policy_sequence_mask.py::test_monotone_in_delta",
        "properties/test_off_policy_sequence_mask.py::test_padding_is_never_read",
    ),
))

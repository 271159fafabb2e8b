"""TIS: truncated importance sampling for the rollout-engine / trainer log-prob mismatch.

Yao, Liu, Zhang, Dong, Shang, Gao, "Your Efficient RL Framework Secretly Brings You Off-Policy RL
Training" (blog post, Aug. 2025, https://fengyao.notion.site/off-policy-rl; no arXiv id).

The rollout engine (vLLM, SGLang) samples with π_rollout; the trainer (FSDP, Megatron) recomputes
π_old with the same weights but different kernels, so the batch is off-policy even with one update
per batch. TIS multiplies each token's PPO loss by a truncated, constant importance weight::

    w_t = min(π_old(y_t) / π_rollout(y_t), C)           (token level, stop-gradient; C = 2 in the post)
    ℓ_t = w_t · ℓ_PPO,t = −w_t · min(r_t Â_t, clip(r_t, 1−ε_low, 1+ε_high) Â_t),   r = π_θ/π_old

w does not depend on π_θ, so ∂ℓ/∂logp = w · ∂ℓ_PPO/∂logp exactly (the stop-gradient changes nothing
here and finite differences of the loss give the gradient).

Options (frameworks' variants, named): ``C_min`` also truncates from below (TRL's
``vllm_importance_sampling_clip_min``); ``mode="mask"`` sets weights outside [C_min, C] to 0 instead
of truncating them (TRL's ``token_mask``, "MIS"). Sequence-level weights (TRL's ``sequence_*``
modes) are not built here. ``rollout_logp=None`` means no mismatch (w ≡ min(1, C)).

Provenance: the token-level truncated weight as described by the blog post, in the summaries we could
read (``secondary``), and as TRL 1.16.0 computes it (``GRPOTrainer._generate_and_score_completions``,
``vllm_importance_sampling_mode="token_truncate"``) and applies it (``_compute_loss``: the per-token
loss times ``importance_sampling_ratio``, before the KL term and the aggregation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, masked_array, policy_batch, positive
from rlspec.reference.ppo import PPOConfig, clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

TIS_POST = Paper(arxiv="", title="Your Efficient RL Framework Secretly Brings You Off-Policy RL Training", year=2025,
                 url="https://fengyao.notion.site/off-policy-rl")
MODES = ("truncate", "mask")


@dataclass(frozen=True)
class TISConfig(PPOConfig):
    """C: upper truncation of w (post: 2). C_min: optional lower bound (None = none).
    mode: 'truncate' (TIS: clip w into [C_min, C]) or 'mask' (w ← 0 outside [C_min, C]).
    PPO fields (eps_low/eps_high 0.2, dual_clip_c, aggregation) as in :class:`rlspec.reference.ppo.PPOConfig`."""

    C: float = 2.0
    C_min: float | None = None
    mode: str = "truncate"

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.C, "C")
        choice(self.mode, "mode", MODES)
        if self.C_min is not None and positive(self.C_min, "C_min", allow_zero=True) >= self.C:
            raise fail("C_min", repr(self.C_min), f"a lower bound below C = {self.C}")


def truncated_is_weight(old_logp: np.ndarray, rollout_logp: np.ndarray, C: float, C_min: float | None = None,
                        mode: str = "truncate") -> np.ndarray:
    """w = min(π_old/π_rollout, C) (B, T), optionally ≥ C_min; 'mask': 0 outside [C_min, C] instead."""
    lo = 0.0 if C_min is None else C_min
    with np.errstate(over="ignore"):
        rho = np.exp(old_logp - rollout_logp)  # may be inf for a huge mismatch: truncation makes it finite
    if mode == "truncate":
        return np.clip(rho, lo, C)
    return np.where((rho >= lo) & (rho <= C), rho, 0.0)


def tis_loss(logp, old_logp, adv, mask, rollout_logp=None, ref_logp=None, config: TISConfig | None = None,
             group=None):
    """PPO loss with each token weighted by the truncated rollout-mismatch weight w, and dlogp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; rollout_logp (B, T) the rollout engine's
    log-probs of the sampled tokens (None = identical to old_logp); ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or TISConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    roll = old_logp if rollout_logp is None else masked_array(rollout_logp, "rollout_logp", mask)
    w = truncated_is_weight(old_logp, roll, cfg.C, cfg.C_min, cfg.mode)  # (B, T), constant in logp
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(w * ell, w * dell_dr * dr, mask, cfg, group)


def _tis_inputs(rng: np.random.Generator) -> dict:
    """A policy batch (ragged mask, NaN/±inf padding) plus rollout log-probs that differ from old_logp by a
    mismatch of scale 0.05-2, so that both the cap C and, for large mismatches, huge raw ratios occur."""
    B, T = int(rng.integers(2, 7)), int(rng.integers(1, 7))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]  # (B, T), some rows empty
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old = logp + rng.normal(scale=0.3, size=(B, T))
    roll = old + rng.normal(scale=float(rng.choice([0.05, 0.5, 2.0])), size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)  # one advantage per sequence
    pad = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30]), size=(B, T))
    out = {"logp": logp, "old_logp": old, "adv": adv, "rollout_logp": roll}
    out = {k: np.where(mask, v, pad) for k, v in out.items()}
    out["mask"] = mask
    return out


register(Spec(
    name="tis", kind="policy_loss", family="framework", paper=TIS_POST, status="implemented",
    summary="PPO loss times a truncated, stop-gradient weight min(π_old/π_rollout, C) for the engine mismatch",
    fn=tis_loss, config_cls=TISConfig, outputs=("loss", "dlogp"), make_inputs=_tis_inputs,
    equations=(
        Equation("tis-weight", "w_t = min(π_old(y_t)/π_rollout(y_t), C)", "blog post, 'truncated importance sampling'",
                 "secondary", "truncated_is_weight",
                 note="TRL token_truncate: clamp(exp(old − rollout), C_min, C_max); C = 2 in the post, TRL default 3"),
        Equation("tis-loss", "ℓ_t = sg(w_t) · ℓ_PPO,t", "blog post, PPO form", "secondary", "tis_loss",
                 note="TRL _compute_loss / Liger ppo_loss_fn multiply the per-token PPO loss by the weight before "
                      "the KL term and the aggregation"),
    ),
    gradient="∂ℓ/∂logp = w · ∂ℓ_PPO/∂logp: the PPO weight (−Â·r or 0) scaled by the constant truncated weight",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences: dlogp = central FD",
        "properties/test_tis.py::test_hand_gradient_matches_finite_differences_with_rollout_logp",
        "properties/test_tis.py::test_weight_never_exceeds_cap",
        "properties/test_tis.py::test_no_mismatch_equals_ppo",
        "properties/test_tis.py::test_untruncated_weight_is_unbiased",
    ),
))

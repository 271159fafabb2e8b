"""KL penalty in the reward: the per-token KL to the reference model subtracted from the reward.

Ziegler et al., "Fine-Tuning Language Models from Human Preferences", arXiv 1909.08593, §2 (the RL
reward R(x, y) = r(x, y) − β log(π(y|x)/ρ(y|x)), ρ the frozen pretrained/reference model).

Per token (the form PPO-based RLHF trainers use, e.g. OpenRLHF ``compute_reward``)::

    r̃_t = −β · k_t + [t = last valid token] · R          k_t = log π(y_t) − log ρ(y_t)   (k1)

so that Σ_t r̃_t = R − β Σ_t (log π − log ρ) = R − β log(π(y)/ρ(y)), the paper's sequence reward. The
token rewards then feed an advantage estimator (GAE, REINFORCE returns, ...).

Conventions exposed as config (the paper has β and k1 only):
  * ``estimator``: "k1" (paper), "k2" = ½(log π − log ρ)², "k3" = ρ/π − 1 − log(ρ/π) (OpenRLHF
    ``--algo.kl.estimator``; Schulman's KL note, see :mod:`rlspec.reference.kl`);
  * ``value_clamp``: clamp k_t to ±value (OpenRLHF ``compute_approx_kl`` clamps to ±10); None = no clamp;
  * ``reward_clip``: clamp the outcome reward R to [lo, hi] before it is placed (OpenRLHF
    ``--reward.clip_range``, default (−10, 10)); None = no clip.

β = 0.1 is our default (the paper adapts β to a KL target; its value is not in our notes: ``reconstructed``).
Defined cases: a sequence with no valid token gets no reward anywhere (its outcome has no token to sit
on); masked positions are 0 and never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import kl as kl_ref
from rlspec.reference._validate import as_mask, choice, fail, finite_vector, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

ZIEGLER_PAPER = Paper(arxiv="1909.08593", title="Fine-Tuning Language Models from Human Preferences", year=2019)


@dataclass(frozen=True)
class KLInRewardConfig:
    """beta: KL coefficient β ≥ 0. estimator: 'k1' (paper) | 'k2' | 'k3'. value_clamp: None or a bound on k_t.
    reward_clip: None or (lo, hi) clamp of the outcome reward."""

    beta: float = 0.1
    estimator: str = "k1"
    value_clamp: float | None = None
    reward_clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        positive(self.beta, "beta", allow_zero=True)
        choice(self.estimator, "estimator", kl_ref.ESTIMATORS)
        if self.value_clamp is not None:
            positive(self.value_clamp, "value_clamp")
        if self.reward_clip is not None:
            rc = tuple(self.reward_clip)
            if len(rc) != 2 or not all(np.isfinite(float(v)) for v in rc) or float(rc[0]) > float(rc[1]):
                raise fail("reward_clip", repr(self.reward_clip), "None or (lo, hi) with finite lo ≤ hi")


def per_token_kl(logp: np.ndarray, ref_logp: np.ndarray, estimator: str, value_clamp: float | None) -> np.ndarray:
    """k_t (B, T) of the chosen estimator, optionally clamped to ±value_clamp (reuses :mod:`rlspec.reference.kl`)."""
    d, _ = kl_ref.log_rho(logp, ref_logp, None)  # δ = log ρ − log π
    k, dk = kl_ref.ESTIMATOR_FNS[estimator](d)
    k, _ = kl_ref.value_clamp(k, dk, value_clamp)
    return k


def last_token(mask: np.ndarray) -> np.ndarray:
    """One-hot (B, T) of each row's last valid token (all False for a row without one)."""
    T = mask.shape[1]
    if T == 0:  # no tokens at all: no last token
        return np.zeros_like(mask)
    idx = T - 1 - np.argmax(mask[:, ::-1], axis=1)  # (B,) last True position (T−1 when none)
    onehot = np.zeros_like(mask)
    onehot[np.arange(mask.shape[0]), idx] = True
    return onehot & mask.any(axis=1, keepdims=True)


def token_rewards(R: np.ndarray, k: np.ndarray, mask: np.ndarray, beta: float) -> np.ndarray:
    """r̃ = −β k + [t = last] R on valid tokens, 0 elsewhere (B, T).  arXiv 1909.08593 §2."""
    r = -beta * k + np.where(last_token(mask), R[:, None], 0.0)
    return np.where(mask, r, 0.0)


def kl_in_reward(rewards, logp, ref_logp, mask, config: KLInRewardConfig | None = None) -> np.ndarray:
    """Token rewards (B, T): the outcome reward on the last valid token, −β·KL_t on every valid token.

    Args: rewards (B,) finite outcome rewards; logp, ref_logp (B, T) log-probs of the sampled tokens under
    the policy and the reference model; mask (B, T) bool. Returns: token_rewards (B, T), 0 at masked positions.
    """
    cfg = config or KLInRewardConfig()
    m = as_mask(mask, "mask")
    if m.ndim != 2:
        raise fail("mask", f"shape {m.shape}", "shape (B, T)")
    R = finite_vector(rewards, "rewards", m.shape[0])
    lp = masked_array(logp, "logp", m)
    rlp = masked_array(ref_logp, "ref_logp", m)
    if cfg.reward_clip is not None:
        R = np.clip(R, float(cfg.reward_clip[0]), float(cfg.reward_clip[1]))
    k = per_token_kl(lp, rlp, cfg.estimator, cfg.value_clamp)
    return token_rewards(R, k, m, float(cfg.beta))


GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _inputs(rng: np.random.Generator) -> dict:
    """Ragged right-padded masks (some rows empty, some interior holes), garbage padding, rewards beyond ±10."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 8))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T) right-padded, rows of length 0 included
    if T > 2 and rng.random() < 0.3:
        mask[:, 1] = False  # an interior hole: the last valid token is still found
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    ref = logp + rng.normal(scale=float(rng.choice([0.1, 0.5, 3.0])), size=(B, T))
    logp[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    ref[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    R = rng.normal(scale=float(rng.choice([1.0, 8.0])), size=B)
    return {"rewards": R, "logp": logp, "ref_logp": ref, "mask": mask}


register(Spec(
    name="kl_in_reward", kind="reward", family="framework", paper=ZIEGLER_PAPER, status="implemented",
    summary="the per-token KL penalty subtracted from the reward before the advantage is estimated",
    fn=kl_in_reward, config_cls=KLInRewardConfig, outputs=("token_rewards",), make_inputs=_inputs,
    extras={"conformance_configs": lambda: [("k2", {"estimator": "k2"}), ("k3", {"estimator": "k3"}),
                                            ("beta=0", {"beta": 0.0})]},
    equations=(
        Equation("kl-reward", "R(x, y) = r(x, y) − β log(π(y|x)/ρ(y|x))", "arXiv 1909.08593 §2", "secondary",
                 "token_rewards",
                 note="the sequence-level form as widely restated (our memory of the paper; the paper text was not "
                      "retrievable here); the per-token split is OpenRLHF compute_reward's (models/utils.py)"),
        Equation("per-token", "r̃_t = −β k_t + [t = last valid] R", "OpenRLHF 0.11.2 models/utils.py compute_reward",
                 "secondary", "token_rewards", note="read in a peer framework's source, not in the paper"),
        Equation("beta-default", "β = 0.1", "ours", "reconstructed", "KLInRewardConfig",
                 note="the paper's β is adaptive; OpenRLHF's --algo.kl.init_coef default is 0.01"),
    ),
    properties=(
        "properties/test_kl_in_reward.py::test_token_rewards_sum_to_the_paper_sequence_reward",
        "properties/test_kl_in_reward.py::test_outcome_only_on_the_last_valid_token",
        "properties/test_kl_in_reward.py::test_on_reference_policy_reward_is_outcome_only",
        "properties/test_kl_in_reward.py::test_k2_k3_penalties_never_raise_the_reward",
        "properties/test_kl_in_reward.py::test_padding_is_never_read",
    ),
))

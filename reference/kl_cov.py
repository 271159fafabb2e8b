"""KL-Cov: a |log-ratio| penalty on the tokens whose advantage–log-prob covariance is largest.

Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
arXiv 2505.22617 (2025), §4 (entropy dynamics driven by the covariance of log π and the advantage; the
Clip-Cov and KL-Cov remedies). Official code: PRIME-RL/Entropy-Mechanism-of-RL,
``verl/trainer/ppo/core_algos.py::compute_policy_loss_kl_cov``; verl ships it as the policy loss
``kl_cov`` (``core_algos.compute_policy_loss_kl_cov``).

Over the N valid tokens of the batch (all sequences together), with Â the advantage and logp the
current log-prob (both held fixed for the selection)::

    Cov_t = (Â_t − mean_valid Â) · (logp_t − mean_valid logp)                 (per-token covariance term)
    S     = the n = max(1, ⌊k·N⌋) valid tokens with the largest Cov_t        (selected set; N = 0: none)
    ℓ_t   = −r_t Â_t + β |log r_t| · [t ∈ S],     r_t = π_θ/π_old            (no ratio clip)

and the per-token ℓ is aggregated like any policy loss. The selection is computed from detached values,
so the gradient holds S fixed::

    ∂ℓ_t/∂logp_t = −r_t Â_t + β sign(log r_t) · [t ∈ S]        (sign(0) = 0, as torch.abs' derivative)

Conventions (config): ``k`` is the selected fraction (official code: ``k_percent = 0.2`` per cent, i.e.
k = 0.002, and β = ``ppo_kl_coef`` = 1 — our defaults; verl's ``PolicyLossConfig`` defaults are
``kl_cov_ratio = 0.0002`` and ``ppo_kl_coef = 0.1``). Ties in Cov_t are broken towards the lower flat index
(row-major over the batch), our rule; ``torch.topk`` does not specify one. The selection depends on the
whole batch, so this loss is not invariant to micro-batch sharding (a shard selects its own top tokens).

Clip-Cov (same paper) detaches a *random* subset of the tokens whose covariance lies in [ω_low, ω_high];
it is not built here (the registry keeps ``clip_cov`` planned): its selection is a ``torch.randperm`` draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import as_mask, in_range, policy_batch, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

ENTROPY_MECHANISM_PAPER = Paper(arxiv="2505.22617", title="The Entropy Mechanism of Reinforcement Learning for "
                                "Reasoning Language Models", year=2025)


@dataclass(frozen=True)
class KLCovConfig(common.AggregationOptions):
    """k: fraction of valid tokens penalised (official code 0.002; verl 0.0002). beta: the |log r| coefficient
    (official code 1.0; verl 0.1). agg: token-mean (official code and verl default)."""

    k: float = 0.002
    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        in_range(self.k, "k", 0.0, 1.0, lo_open=True)
        positive(self.beta, "beta", allow_zero=True)


def covariance_terms(adv: np.ndarray, logp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cov_t = (Â_t − mean Â)(logp_t − mean logp) over the valid tokens (N,), in row-major order."""
    a, lp = adv[mask], logp[mask]  # (N,)
    if a.size == 0:
        return a
    return (a - a.mean()) * (lp - lp.mean())


def n_selected(N: int, k: float) -> int:
    """n = max(1, ⌊k·N⌋) tokens for N > 0 valid tokens; none for N = 0."""
    return max(1, int(N * k)) if N > 0 else 0


def top_covariance_mask(adv: np.ndarray, logp: np.ndarray, mask: np.ndarray, k: float) -> np.ndarray:
    """S as a (B, T) bool array: the n valid tokens of largest Cov_t (ties → lower flat index)."""
    cov = covariance_terms(adv, logp, mask)
    n = n_selected(cov.size, k)
    chosen = np.argsort(-cov, kind="stable")[:n]  # stable: equal values keep row-major order
    S_flat = np.zeros(cov.size, dtype=bool)
    S_flat[chosen] = True
    S = np.zeros(mask.shape, dtype=bool)
    S[mask] = S_flat
    return S


def kl_cov_token_loss(log_r: np.ndarray, dlog_r: np.ndarray, adv: np.ndarray, S: np.ndarray,
                      beta: float) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = −r Â + β |log r|·[S] and ∂ℓ/∂logp (B, T), S held fixed."""
    r = np.exp(log_r)
    ell = -r * adv + beta * np.abs(log_r) * S
    dell = (-r * adv + beta * np.sign(log_r) * S) * dlog_r
    return ell, dell


def kl_cov_loss(logp, old_logp, adv, mask, ref_logp=None, config: KLCovConfig | None = None, group=None,
                selection=None):
    """KL-Cov policy loss and its gradient (selection S held fixed).

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; ``ref_logp`` accepted and unused;
    ``group`` (B,) only for ``agg='group-token-mean'``; ``selection`` (B, T) bool: a precomputed S (e.g. the rows
    of a selection made on the full batch, so that shards with the global normalizer add up); None = this batch's.
    Returns: (loss: float, dlogp: (B, T)), dlogp zero at masked positions.
    """
    cfg = config or KLCovConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # overflow check with a clear message
    log_r, dlog_r = common.log_ratio(logp, old_logp, cfg.log_ratio_clamp)
    if selection is None:
        S = top_covariance_mask(adv, logp, mask, cfg.k)
    else:
        S = as_mask(selection, "selection", mask.shape) & mask
    ell, dell = kl_cov_token_loss(log_r, dlog_r, adv, S, cfg.beta)
    return common.aggregate_token_loss(ell, dell, mask, cfg, group)


def _conformance_configs():
    # a larger fraction selects several tokens per batch, so the top-k order (not only the maximum) is compared
    return [("k=0.3", {"k": 0.3}, "ragged-garbage"), ("k=0.3", {"k": 0.3}, "token-level-adv"),
            ("k=1", {"k": 1.0}, "very-different-lengths")]


register(Spec(
    name="kl_cov", kind="policy_loss", family="framework", paper=ENTROPY_MECHANISM_PAPER, status="implemented",
    summary="REINFORCE-ratio loss plus β|log r| on the top-k tokens by advantage–logp covariance",
    fn=kl_cov_loss, config_cls=KLCovConfig, outputs=("loss", "dlogp"),
    extras={"stop_gradient": "the covariance selection S is computed from detached values: properties/"
                             "test_kl_cov.py::test_hand_gradient_with_selection_frozen checks FD with S fixed",
            "conformance_configs": _conformance_configs,
            "batch_coupled": "the top-k selection is made over the whole batch, so a shard selects its own tokens and "
                             "shard losses do not add up to the full-batch loss unless the full-batch selection is "
                             "passed in (selection=...): properties/test_kl_cov.py::"
                             "test_selection_couples_the_batch_and_a_global_selection_restores_sharding"},
    equations=(
        Equation("cov-term", "Cov_t = (Â_t − mean Â)(log π_t − mean log π) over the batch's valid tokens",
                 "arXiv 2505.22617 §4 (covariance of log-prob and advantage)", "official-code", "covariance_terms",
                 note="read in the official code (PRIME-RL/Entropy-Mechanism-of-RL core_algos.py); the paper text "
                      "itself was not read, only its abstract"),
        Equation("kl-cov", "ℓ_t = −r_t Â_t + β|log r_t|·[t ∈ top-⌊kN⌋ by Cov]", "arXiv 2505.22617 §4 (KL-Cov)",
                 "official-code", "kl_cov_token_loss",
                 note="official code: k_percent = 0.2 (per cent, so k = 0.002), ppo_kl_coef β = 1, no ratio clip, "
                      "n = max(1, int(N·k)); verl: same formula, kl_cov_ratio = 0.0002 as a fraction, β = 0.1"),
    ),
    gradient="∂ℓ/∂logp = −r·Â + β·sign(log r) on the selected tokens (selection held fixed), times c",
    properties=(
        "properties/test_kl_cov.py::test_hand_gradient_with_selection_frozen",
        "properties/test_kl_cov.py::test_selection_is_the_top_covariance_tokens",
        "properties/test_kl_cov.py::test_unselected_tokens_get_the_vanilla_ratio_gradient",
        "properties/test_kl_cov.py::test_penalty_pulls_selected_tokens_towards_the_old_policy",
        "properties/test_kl_cov.py::test_on_policy_equals_vanilla_pg",
        "properties/test_kl_cov.py::test_selection_couples_the_batch_and_a_global_selection_restores_sharding",
    ),
))

"""KL estimators k1, k2, k3 (Schulman), as penalties and as losses.

J. Schulman, "Approximating KL Divergence", blog note, 2020, http://joschu.net/blog/kl-approx.html
(no arXiv id). GRPO (arXiv 2402.03300 §4.1, eq. (4)) uses k3 as its per-token KL term.

Setting: tokens y ~ π_θ (the batch's sampled tokens), ρ = π_ref(y)/π_θ(y), δ = log ρ = ref_logp − logp::

    k1 = −δ                    E_{π_θ}[k1] = KL(π_θ‖π_ref)  (unbiased, high variance, can be < 0)
    k2 = ½ δ²                  biased, low variance
    k3 = (ρ − 1) − δ  ≥ 0      E_{π_θ}[k3] = KL(π_θ‖π_ref)  (unbiased, low variance)

Penalty form (reward shaping, no gradient): :func:`kl_penalty` returns k per token (B, T).

Loss form (``kl`` kind): the estimator evaluated on the fixed samples and differentiated w.r.t. logp,
aggregated like a policy loss. Its per-token gradient is what autograd produces::

    ∂k1/∂logp = 1,   ∂k2/∂logp = logp − ref_logp,   ∂k3/∂logp = 1 − ρ

so that, for a softmax policy with logits θ and dlogp/dθ = onehot(y) − π, in expectation over y ~ π_θ:
E[∇k1] = 0 (no signal), E[∇k2] = ∇KL(π_θ‖π_ref) (reverse KL), E[∇k3] = ∇KL(π_ref‖π_θ) (forward KL).
Tested by exact enumeration in ``properties/test_kl.py``.

Framework conventions exposed as config (defaults: none of them, the plain estimator):

* ``log_ratio_clamp``: clamp δ to ±value before use (verl clamps ref − logp to ±20 for k3);
* ``value_clamp``: clamp k to ±value (verl: ±10 for k3; OpenRLHF: all estimators). Where a clamp binds
  the gradient is zero, as with ``torch.clamp``;
* ``straight_through_k2``: value of the estimator, gradient of k2 (verl's ``"k3+"`` / ``"k1+"`` modes);
* ``is_weight``: multiply the per-token estimator by the importance ratio w = π_θ/π_old (needs
  ``old_logp``): ``"ratio"`` keeps w's gradient (TRL ``use_bias_correction_kl``, whose ``coef_1`` is not
  detached: ∇(w·k3) = w·(logp − ref_logp), an unbiased reverse-KL gradient under π_old sampling);
  ``"ratio-detached"`` multiplies by sg(w) (reweights the estimator's own gradient; not observed in a
  peer framework as such, kept for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import as_2d, as_mask, choice, fail, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

KL_NOTE = Paper(arxiv="", title="Approximating KL Divergence", year=2020, url="http://joschu.net/blog/kl-approx.html")
ESTIMATORS = ("k1", "k2", "k3")
IS_WEIGHTS = (None, "ratio", "ratio-detached")


@dataclass(frozen=True)
class KLConfig(common.AggregationOptions):
    """Aggregation (default token-mean); log_ratio_clamp clamps δ = ref_logp − logp; value_clamp clamps k;
    straight_through_k2: value of k, gradient of k2; is_weight: None | 'ratio' | 'ratio-detached'."""

    value_clamp: float | None = None
    straight_through_k2: bool = False
    is_weight: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_clamp is not None:
            positive(self.value_clamp, "value_clamp")
        if not isinstance(self.straight_through_k2, bool):
            raise fail("straight_through_k2", repr(self.straight_through_k2), "True or False")
        if self.is_weight not in IS_WEIGHTS:
            raise fail("is_weight", repr(self.is_weight), "None, 'ratio' or 'ratio-detached'")


def log_rho(logp: np.ndarray, ref_logp: np.ndarray, clamp: float | None) -> tuple[np.ndarray, np.ndarray]:
    """δ = log(π_ref/π_θ) = ref_logp − logp (optionally clamped); returns (δ, ∂δ/∂logp ∈ {−1, 0})."""
    d, inside = common.log_ratio(ref_logp, logp, clamp)
    return d, -inside


def _exp(d: np.ndarray) -> np.ndarray:
    with np.errstate(over="raise"):
        try:
            return np.exp(d)
        except FloatingPointError:
            raise fail("ref_logp - logp", f"a log-ratio up to {np.abs(d).max():.3g}",
                       "log-ratios below 700 in magnitude, or log_ratio_clamp set") from None


def k1(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k1 = −δ and ∂k1/∂δ = −1."""
    return -d, -np.ones_like(d)


def k2(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k2 = ½ δ² and ∂k2/∂δ = δ."""
    return 0.5 * d * d, d


def k3(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k3 = (e^δ − 1) − δ ≥ 0 (expm1 for accuracy near δ = 0) and ∂k3/∂δ = e^δ − 1."""
    _exp(d)  # overflow check
    em1 = np.expm1(d)
    return em1 - d, em1


ESTIMATOR_FNS = {"k1": k1, "k2": k2, "k3": k3}


def value_clamp(k: np.ndarray, dk: np.ndarray, bound: float | None) -> tuple[np.ndarray, np.ndarray]:
    """k clamped to ±bound; the derivative is zero where the clamp binds."""
    if bound is None:
        return k, dk
    inside = (k >= -bound) & (k <= bound)
    return np.clip(k, -bound, bound), np.where(inside, dk, 0.0)


def estimator_per_token(kind: str, logp: np.ndarray, ref_logp: np.ndarray, cfg: KLConfig,
                        old_logp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-token estimator value k (B, T) and its derivative ∂k/∂logp under ``cfg``'s conventions."""
    d, dd = log_rho(logp, ref_logp, cfg.log_ratio_clamp)
    k, dk_dd = ESTIMATOR_FNS[kind](d)
    k, dk_dd = value_clamp(k, dk_dd, cfg.value_clamp)
    dk = dk_dd * dd
    if cfg.straight_through_k2:
        dk = logp - ref_logp  # ∂(½(logp − ref)²)/∂logp, unclamped as in verl's "+" modes
    if cfg.is_weight is not None:
        w = _exp(logp - old_logp)  # π_θ/π_old
        dk = w * dk + (w * k if cfg.is_weight == "ratio" else 0.0)  # product rule when w keeps its gradient
        k = w * k
    return k, dk


def validate_kl_batch(logp, ref_logp, mask, old_logp=None):
    """logp, ref_logp (B, T) float, mask (B, T) bool; padding zeroed; old_logp optional."""
    lp = as_2d(logp, "logp")
    m = as_mask(mask, "mask", lp.shape)
    lp = masked_array(logp, "logp", m)
    rlp = masked_array(ref_logp, "ref_logp", m)
    olp = None if old_logp is None else masked_array(old_logp, "old_logp", m)
    return lp, rlp, m, olp


def kl_penalty(logp, ref_logp, mask, kind: str = "k3", *, log_ratio_clamp: float | None = None,
               value_clamp: float | None = None) -> np.ndarray:
    """Per-token KL estimate k (B, T) for reward shaping (no gradient); 0 at masked positions.

    kind: 'k1' (logp − ref_logp), 'k2' (½(logp − ref_logp)²) or 'k3' (ρ − 1 − log ρ, ρ = π_ref/π_θ).
    """
    choice(kind, "kind", ESTIMATORS)
    cfg = KLConfig(log_ratio_clamp=log_ratio_clamp, value_clamp=value_clamp)
    lp, rlp, m, _ = validate_kl_batch(logp, ref_logp, mask)
    k, _ = estimator_per_token(kind, lp, rlp, cfg)
    return np.where(m, k, 0.0)


def _kl_loss(kind: str, logp, ref_logp, mask, config: KLConfig | None, old_logp, group):
    cfg = config or KLConfig()
    if cfg.is_weight is not None and old_logp is None:
        raise fail("old_logp", "None", f"the behaviour log-probs (B, T) when is_weight={cfg.is_weight!r}")
    lp, rlp, m, olp = validate_kl_batch(logp, ref_logp, mask, old_logp)
    k, dk = estimator_per_token(kind, lp, rlp, cfg, olp)
    return common.aggregate_token_loss(k, dk, m, cfg, group)


def kl_k1_loss(logp, ref_logp, mask, config: KLConfig | None = None, old_logp=None, group=None):
    """k1 = logp − ref_logp used as a loss: (aggregated value, dlogp = c); E∇ = 0 under y ~ π_θ."""
    return _kl_loss("k1", logp, ref_logp, mask, config, old_logp, group)


def kl_k2_loss(logp, ref_logp, mask, config: KLConfig | None = None, old_logp=None, group=None):
    """k2 = ½(logp − ref_logp)² used as a loss: dlogp = c·(logp − ref_logp); E∇ = ∇KL(π_θ‖π_ref)."""
    return _kl_loss("k2", logp, ref_logp, mask, config, old_logp, group)


def kl_k3_loss(logp, ref_logp, mask, config: KLConfig | None = None, old_logp=None, group=None):
    """k3 = ρ − 1 − log ρ used as a loss: dlogp = c·(1 − ρ); E∇ = ∇KL(π_ref‖π_θ) (forward KL)."""
    return _kl_loss("k3", logp, ref_logp, mask, config, old_logp, group)


_COMMON_NOTE = ("verl kl_penalty: k1='kl', k2='mse', k3='low_var_kl' (k3 clamped: δ to ±20, value to ±10); "
                "OpenRLHF compute_approx_kl; TRL computes k3 inline (peers.md §2.4, §4.2, §3.1)")
_PROPS = (
    "properties/test_kl.py::test_hand_gradient_matches_finite_differences",
    "properties/test_kl.py::test_expected_gradient_by_enumeration: E∇k1 = 0, E∇k2 = ∇KL(π‖π_ref), E∇k3 = ∇KL(π_ref‖π)",
    "properties/test_kl.py::test_k1_k3_unbiased_penalties",
    "properties/test_kl.py::test_k3_nonnegative",
)
for _kind, _fn, _text, _grad in (
    ("k1", kl_k1_loss, "k1 = −log ρ = logp − ref_logp", "∂k1/∂logp = 1"),
    ("k2", kl_k2_loss, "k2 = ½ (log ρ)²", "∂k2/∂logp = logp − ref_logp"),
    ("k3", kl_k3_loss, "k3 = (ρ − 1) − log ρ", "∂k3/∂logp = 1 − π_ref/π_θ"),
):
    register(Spec(
        name=f"kl_{_kind}", kind="kl", family="baseline", paper=KL_NOTE, status="implemented",
        summary=f"Schulman's {_kind} KL estimator of KL(π_θ‖π_ref), used as a loss",
        fn=_fn, config_cls=KLConfig, outputs=("loss", "dlogp"),
        equations=(Equation(f"kl-{_kind}", _text + ",  ρ = π_ref/π_θ, y ~ π_θ", "Schulman 2020 blog note", "secondary",
                            f"{_kind}", note="definitions from our notes (papers_A.md §B); " + _COMMON_NOTE),),
        gradient=_grad + " (times the aggregation coefficient c)", properties=_PROPS,
    ))

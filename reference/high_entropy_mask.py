"""High-entropy token mask: train only on the top-ρ entropy quantile of the batch's tokens.

Wang et al., "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective Reinforcement
Learning for LLM Reasoning", arXiv 2506.01939 (Qwen team): the policy gradient is kept only for
"forking" tokens, those whose entropy H_t of the next-token distribution lies in the top ρ = 20 %
of the batch; the others get no gradient::

    τ_ρ  = the (1 − ρ)-quantile of { H_bt : mask_bt }        (over the valid tokens of the whole batch)
    keep_bt = mask_bt ∧ (H_bt ≥ τ_ρ)                          (B, T) bool; the policy loss is multiplied by it

Ties and the quantile, defined exactly (each a named option):

* the quantile of n valid values at level q = 1 − ρ is NumPy's / torch's default ``"linear"``
  interpolation between order statistics x₍ⱼ₎ at position q·(n − 1) (TRL: ``torch.quantile``);
  ``interpolation`` accepts the other NumPy methods (``lower``, ``higher``, ``nearest``, ``midpoint``);
* a token whose entropy equals the threshold is kept (``inclusive=True``, TRL's ``>=``), so tied
  entropies are all kept or all dropped together and more than ρ·n tokens may be kept; ``False``
  keeps only H > τ;
* ρ = 1 keeps every valid token; ρ = 0 keeps only the tokens of maximal entropy (all of them if tied);
* a batch without valid tokens keeps nothing.

Provenance: the rule "top 20 % highest-entropy tokens of the batch" as stated by the paper's abstract
and summaries (``secondary``); the quantile/tie definitions as implemented by TRL 1.16.0
(``GRPOTrainer.get_high_entropy_mask``, ``top_entropy_quantile = ρ``), which gathers the entropies of
all processes before the quantile (here: the whole batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, in_range, masked_array
from rlspec.reference.registry import Equation, Paper, Spec, register

PAPER_8020 = Paper(arxiv="2506.01939", title="Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective "
                   "Reinforcement Learning for LLM Reasoning", year=2025)
INTERPOLATIONS = ("linear", "lower", "higher", "nearest", "midpoint")


@dataclass(frozen=True)
class HighEntropyMaskConfig:
    """rho: fraction of tokens kept, by entropy (paper: 0.2). interpolation: quantile method (TRL: linear).
    inclusive: keep tokens with H = τ (TRL: True)."""

    rho: float = 0.2
    interpolation: str = "linear"
    inclusive: bool = True

    def __post_init__(self) -> None:
        in_range(self.rho, "rho", 0.0, 1.0)
        choice(self.interpolation, "interpolation", INTERPOLATIONS)
        if not isinstance(self.inclusive, bool):
            raise fail("inclusive", repr(self.inclusive), "True or False")


def entropy_threshold(H_valid: np.ndarray, rho: float, interpolation: str = "linear") -> float:
    """τ_ρ: the (1 − ρ)-quantile of the valid entropies (1-D, non-empty)."""
    return float(np.quantile(H_valid, 1.0 - rho, method=interpolation))


def high_entropy_mask(entropy, mask, config: HighEntropyMaskConfig | None = None) -> np.ndarray:
    """keep (B, T) bool: valid tokens whose entropy is in the top-ρ quantile of the batch.

    Args: entropy (B, T) float, ≥ 0 at valid positions (padding never read); mask (B, T) bool.
    Returns: keep (B, T) bool, False at masked positions and everywhere when no token is valid.
    """
    cfg = config or HighEntropyMaskConfig()
    m = as_mask(mask, "mask")
    if m.ndim != 2:
        raise fail("mask", f"shape {m.shape}", "shape (B, T)")
    H = masked_array(entropy, "entropy", m)
    if (H[m] < 0).any():
        raise fail("entropy", f"a negative value {H[m].min()!r}", "entropies ≥ 0 at valid positions")
    if not m.any():
        return np.zeros(m.shape, dtype=bool)
    tau = entropy_threshold(H[m], cfg.rho, cfg.interpolation)
    above = H >= tau if cfg.inclusive else H > tau
    return above & m


def _inputs(rng: np.random.Generator) -> dict:
    """Entropies (B, T) ≥ 0 on a ragged mask with NaN/inf padding; about half the draws round the
    entropies to one decimal so that ties (also at the threshold) occur."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    H = rng.gamma(0.7, 1.0, size=(B, T))
    if rng.random() < 0.5:
        H = np.round(H, 1)
    pad = rng.choice(np.array([np.nan, np.inf, -1.0, 1e30]), size=(B, T))
    return {"entropy": np.where(mask, H, pad), "mask": mask}


register(Spec(
    name="high_entropy_mask", kind="sampler", family="framework", paper=PAPER_8020, status="implemented",
    summary="keep only the valid tokens whose entropy is in the batch's top-ρ quantile (forking tokens)",
    fn=high_entropy_mask, config_cls=HighEntropyMaskConfig, outputs=("keep",), make_inputs=_inputs,
    extras={"conformance_configs": lambda: [("rho=0.5", {"rho": 0.5}), ("rho=0", {"rho": 0.0}),
                                            ("rho=1", {"rho": 1.0}), ("rho=0.8", {"rho": 0.8})]},
    equations=(
        Equation("top-entropy", "keep = mask ∧ (H ≥ τ_ρ), τ_ρ = Quantile_{1−ρ}{H_bt : mask_bt}",
                 "arXiv 2506.01939 (abstract; §'RLVR on forking tokens'), ρ = 0.2", "secondary", "high_entropy_mask",
                 note="ties and the quantile (linear interpolation, ≥) as in TRL GRPOTrainer.get_high_entropy_mask"),
    ),
    properties=(
        "properties/test_high_entropy_mask.py::test_keeps_about_rho_of_the_tokens",
        "properties/test_high_entropy_mask.py::test_every_kept_token_has_higher_entropy_than_every_dropped_one",
        "properties/test_high_entropy_mask.py::test_ties_are_kept_or_dropped_together",
        "properties/test_high_entropy_mask.py::test_padding_is_never_read",
        "properties/test_high_entropy_mask.py::test_rho_extremes",
    ),
))

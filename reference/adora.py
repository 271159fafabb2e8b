"""ADORA: Advantage Dynamics via Online Rollout Adaptation, a group-constant reweighting of GRPO advantages.

Ren, Huang, Fang, Chen, Chen, Li, Zhao, "ADORA: Training Reasoning Models with Dynamic Advantage Estimation
on Reinforcement Learning", arXiv 2602.10019 (Feb 2026; first released as a blog and code in Mar 2025).
Official code: ShadeCloak/ADORA — LLM: ``ADORA/verl/trainer/ppo/core_algos.py::compute_grpo_outcome_advantage_ADORA``
(script ``ADORA/ADORA.sh``); VLM: ``ADORA_VL/openrlhf/trainer/ppo_utils/experience_maker_vl.py::weight_func``.

Where it sits in the pipeline: reward → **advantage** (a multiplier per prompt group applied after the
GRPO advantage; which rollouts are kept and which prompts are sampled are unchanged).

What was read. The paper's abstract (it classifies training data online into *temporarily advantageous*
(TAS) and *temporarily disadvantageous* (TDS) samples and reweights the advantage) and the official code,
which implements the "Length Advantage" criterion with an attenuation λ of TDS groups. The 2026 paper is
summarised by third parties as a unified TAS/TDS framework with a Length Advantage and a Difficulty
Advantage criterion and modality-specific weights (attenuate TDS for weaker VLMs, amplify TAS for stronger
LLMs); those formulas were not readable here, so this entry is ``partial``: the code's criterion is
implemented in full, the TAS amplification is a config field (``tas_weight``) whose paper value is unknown,
and the Difficulty Advantage criterion is missing.

For one prompt group with rewards r_i, response lengths ℓ_i (valid tokens) and base advantages Â_i::

    C = {i : r_i > τ}                       correct rollouts                              (code)
    W = {i : r_i ≤ τ, ℓ_i < ℓ_max}          incorrect rollouts that were not truncated     (code)
    TAS  ⇔  max_{i∈C} ℓ_i > mean_{i∈W} ℓ_i  (the longest correct answer is longer than the
                                             average non-truncated wrong one: "length advantage")
    A_i = ω_g · Â_i,   ω_g = tas_weight (TAS) or λ (TDS)                                   (code: 1 or λ)

Edge cases, where the two official codes differ (``variant``):
  * ``"llm"`` (the LLM code): no correct rollout ⇒ TDS; correct ones but W empty ⇒ TAS;
  * ``"vl"`` (the VLM code): no correct rollout ⇒ weight 1 (kept, neither class); correct ones but W empty
    ⇒ TDS (the code compares with mean = +∞).
Â is GRPO's advantage (``rlspec.reference.grpo``) with its ddof/ε/singleton conventions; the LLM code uses
torch's std (ddof = 1), ε = 1e-6 and leaves a lone rollout's raw reward in place (≈ ``singleton="mean0std1"``,
which divides by 1 + ε); ``std_normalize=False`` gives the VLM code's mean-centred ("reinforce_baseline") base.

Thresholds. τ = 1.01 in the LLM script, on Logic-RL's reward scale (a correct answer scores above 1);
τ = 0.5 in the VLM code, for 0/1 rewards. The default here is 0.5 (rewards in [0, 1]); pass 1.01 for the
Logic-RL scale. ℓ_max = 4054 (LLM config default; 3900 in the LLM script, 4094 in the VLM code); None turns
the truncation filter off. λ = 0.1 in both codes.

State: none. The utility of a group "evolves" because every step classifies its fresh rollouts again;
nothing is carried between steps, so no state dataclass is needed.

Properties: ω_g > 0 is constant within a group, so per-group zero-sum (the baseline is unchanged) and the
sign of every advantage are preserved; λ = tas_weight = 1 is GRPO exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

ADORA_PAPER = Paper(arxiv="2602.10019", title="ADORA: Training Reasoning Models with Dynamic Advantage Estimation on "
                    "Reinforcement Learning", year=2026)


@dataclass(frozen=True)
class ADORAConfig:
    """lam: weight λ > 0 of TDS groups (0.1). tas_weight: weight > 0 of TAS groups (1 in the code).
    correct_threshold τ: r > τ is correct. max_length ℓ_max: wrong answers with ℓ ≥ ℓ_max are truncated and
    ignored (None: none are). variant: "llm" or "vl" edge cases. std_normalize, ddof, eps, singleton: the
    GRPO base advantage (see rlspec.reference.grpo)."""

    lam: float = 0.1
    tas_weight: float = 1.0
    correct_threshold: float = 0.5
    max_length: int | None = 4054
    variant: str = "llm"
    std_normalize: bool = True
    ddof: int = 1
    eps: float = 1e-6
    singleton: str = "zero"

    def __post_init__(self) -> None:
        positive(self.lam, "lam")
        positive(self.tas_weight, "tas_weight")
        if not np.isfinite(float(self.correct_threshold)):
            raise fail("correct_threshold", repr(self.correct_threshold), "a finite reward threshold")
        if self.max_length is not None and positive(self.max_length, "max_length") != int(self.max_length):
            raise fail("max_length", repr(self.max_length), "a positive integer token count or None")
        choice(self.variant, "variant", ("llm", "vl"))
        self.base()  # validates ddof, eps and singleton

    def base(self) -> GRPOConfig:
        return GRPOConfig(std_normalize=self.std_normalize, ddof=self.ddof, eps=self.eps, singleton=self.singleton)


def response_lengths(mask: np.ndarray, lengths=None) -> np.ndarray:
    """ℓ (B,): the number of valid response tokens (as the code's eos_mask.sum), or the given lengths."""
    if lengths is None:
        return mask.sum(axis=1).astype(np.float64)
    ell = np.asarray(lengths)
    if ell.shape != (mask.shape[0],) or not np.issubdtype(ell.dtype, np.number) or not np.isfinite(ell).all() \
            or (ell < 0).any():
        raise fail("lengths", f"{ell.dtype} {ell.shape}", f"finite response lengths ≥ 0 of shape ({mask.shape[0]},)")
    return ell.astype(np.float64)


def length_advantage(R: np.ndarray, ell: np.ndarray, g: np.ndarray, cfg: ADORAConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (tas, neutral) booleans of its group. TAS ⇔ max_{C} ℓ > mean_{W} ℓ with the variant's edge
    cases; ``neutral`` marks groups the VL code leaves at weight 1 (no correct rollout)."""
    tas, neutral = np.zeros(R.shape, bool), np.zeros(R.shape, bool)
    for k in np.unique(g):
        rows = g == k
        correct = R[rows] > cfg.correct_threshold
        wrong = ~correct & ((ell[rows] < cfg.max_length) if cfg.max_length is not None else True)
        if not correct.any():
            neutral[rows] = cfg.variant == "vl"  # LLM: TDS; VL: kept at weight 1
            continue
        if not wrong.any():
            tas[rows] = cfg.variant == "llm"  # LLM: mean over ∅ = −∞ ⇒ TAS; VL: mean = +∞ ⇒ TDS
            continue
        tas[rows] = ell[rows][correct].max() > ell[rows][wrong].mean()
    return tas, neutral


def group_weight(tas: np.ndarray, neutral: np.ndarray, cfg: ADORAConfig) -> np.ndarray:
    """ω (B,): tas_weight for TAS groups, λ for TDS groups, 1 for neutral groups."""
    return np.where(neutral, 1.0, np.where(tas, cfg.tas_weight, cfg.lam))


def adora_advantage(rewards, group, mask, config: ADORAConfig | None = None, lengths=None) -> np.ndarray:
    """ADORA advantage (B, T): ω_g · Â_GRPO broadcast over each response.

    Args: rewards (B,); group (B,) prompt ids; mask (B, T) bool; optional lengths (B,) (default: mask row sums).
    Returns: (B, T) float64, zero at masked positions, in singleton (with singleton="zero") and all-equal groups.
    """
    cfg = config or ADORAConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    ell = response_lengths(M, lengths)
    w = group_weight(*length_advantage(R, ell, g, cfg), cfg)
    return broadcast_to_tokens(w * grpo_outcome_advantage(R, g, cfg.base()), M)


def adora_weights(rewards, group, mask, config: ADORAConfig | None = None, lengths=None) -> np.ndarray:
    """ω (B,) alone, for inspection and tests."""
    cfg = config or ADORAConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return group_weight(*length_advantage(R, response_lengths(M, lengths), g, cfg), cfg)


def make_inputs(rng: np.random.Generator) -> dict:
    """Binary-ish rewards around τ = 0.5 with ragged lengths (so TAS and TDS groups both occur), groups of 1-6,
    sometimes explicit lengths with truncated rollouts, sometimes a small ℓ_max."""
    B, T = int(rng.integers(2, 14)), int(rng.integers(1, 8))
    R = rng.choice([0.0, 0.25, 0.5, 1.0], size=B) if rng.random() < 0.7 else rng.normal(0.5, 0.5, size=B)
    sizes = rng.integers(1, 7, size=B)
    group = np.repeat(np.arange(B), sizes)[:B] * 3 - 4
    lengths = rng.integers(0, T + 1, size=B)
    out = {"rewards": R, "group": group, "mask": np.arange(T)[None, :] < lengths[:, None]}
    if rng.random() < 0.3:
        out["lengths"] = rng.integers(1, 50, size=B)
        out["config"] = {"max_length": 40}
    elif rng.random() < 0.3:
        out["config"] = {"max_length": max(1, T - 1)}
    return out


def conformance_configs():
    return ({"variant": "vl"}, {"lam": 1.0, "tas_weight": 1.0}, {"tas_weight": 2.0, "lam": 1.0},
            {"singleton": "mean0std1"}, {"max_length": 2}, {"max_length": None, "correct_threshold": 0.0})


_CODE = "ShadeCloak/ADORA ADORA/verl/trainer/ppo/core_algos.py::compute_grpo_outcome_advantage_ADORA"
_VL = "ShadeCloak/ADORA ADORA_VL/openrlhf/trainer/ppo_utils/experience_maker_vl.py::weight_func"

register(Spec(
    name="adora", kind="advantage", family="advantage", paper=ADORA_PAPER, status="partial",
    summary=("group-constant reweighting of GRPO advantages (reward → advantage): groups whose longest correct "
             "answer beats the mean wrong length (TAS) keep weight 1, the others (TDS) get λ = 0.1"),
    missing=("the 2026 paper's Difficulty Advantage criterion and its TAS amplification factor for LLMs (formulas "
             "and values not readable here; tas_weight exposes the amplification, default 1 as in the code)"),
    fn=adora_advantage, config_cls=ADORAConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"weights": adora_weights, "length_advantage": length_advantage,
            "conformance_configs": conformance_configs},
    equations=(
        Equation("adora-sets", "C = {r > τ},  W = {r ≤ τ, ℓ < ℓ_max}", "arXiv 2602.10019 (Length Advantage)",
                 "official-code", "length_advantage",
                 note=_CODE + "; τ = 1.01 there (Logic-RL scale), 0.5 in " + _VL + "; ℓ_max 4054 / 3900 / 4094"),
        Equation("adora-tas", "TAS ⇔ max_{i∈C} ℓ_i > mean_{i∈W} ℓ_i", "arXiv 2602.10019 (Length Advantage)",
                 "official-code", "length_advantage",
                 note=_CODE + "; edge cases differ from the VL code (variant='vl': no correct ⇒ weight 1, "
                      "W empty ⇒ TDS)"),
        Equation("adora-weight", "A_i = ω_g Â_i^GRPO,  ω_g = 1 (TAS) or λ (TDS), λ = 0.1", "arXiv 2602.10019 (abstract)",
                 "official-code", "group_weight",
                 note=_CODE + " (lamda = 0.1, ADORA.sh); the paper's TAS amplification for LLMs is tas_weight, "
                      "value not recovered"),
    ),
    properties=(
        "properties/test_adora.py::test_group_constant_factor_keeps_zero_sum_and_signs: ω_g > 0 constant per group ⇒ "
        "Σ_group A = 0 and sign(A) = sign(Â_GRPO)",
        "properties/test_adora.py::test_neutral_setting_is_grpo: λ = tas_weight = 1 gives GRPO exactly",
        "properties/test_adora.py::test_classification_matches_definition: TAS/TDS from a direct reading of the sets",
        "properties/test_adora.py::test_attenuation_bounds_magnitude: |A| ≤ |Â_GRPO| for λ ≤ 1 = tas_weight",
        "properties/test_adora.py::test_longer_correct_answers_switch_to_tas: lengthening a correct answer never "
        "lowers the group's weight (ADORA promotes long correct reasoning)",
        "properties/test_adora.py::test_truncated_wrong_answers_are_ignored",
        "properties/test_adora.py::test_variants_edge_cases: LLM vs VL code on groups with no correct / no wrong answer",
        "properties/test_adora.py::test_feeds_ppo: ADORA advantages in registry.get('ppo') scale each group's "
        "gradient by ω_g",
        "properties/test_adora.py::test_masked_positions_never_read",
        "properties/test_adora.py::test_bad_input_raises",
    ),
))

"""GCPO (GeometryZero): Group Contrastive Masking of the auxiliary-construction reward, plus a length reward.

Wang, Wang, Wang, Peng, Guo, Tao, Wang, "GeometryZero: Improving Geometry Solving for LLM with Group
Contrastive Policy Optimization", arXiv 2506.07160 (v3 retitled "GeometryZero: Advancing Geometry
Solving via Group Contrastive Policy Optimization"; Findings of ACL 2026). Official code
github.com/ekonwang/GeometryZero (not reachable here). Not the gold-answer "GCPO" of arXiv 2510.07790.

Place in the pipeline: REWARD SHAPING, before the advantage. A rollout's reward gets an auxiliary-
construction term whose sign is decided per group (per prompt), by contrasting the accuracy of the
group's rollouts that construct auxiliary lines with the accuracy of those that do not; the advantage
(GRPO's group z-score) and the clipped policy loss are unchanged::

    rewards = gcpo_reward(correct, uses_aux, group, length)      # this module, (B,)
    adv     = registry.get("grpo")(rewards, group, mask)          # unchanged base estimator
    loss    = registry.get("ppo")(logp, old_logp, adv, mask)

Notation: o_i the i-th rollout of a group, c_i = 1[o_i correct], a_i = R_aux(o_i) = 1[o_i constructs
auxiliary lines] (a tagged span or code, detected by the caller), ℓ_i its length in tokens.

    R_aux(o_i) = 1 if o_i constructs auxiliary lines, else 0                    (paper Eq. 3)
    acc⁺ = mean{c_i : a_i = 1},   acc⁻ = mean{c_i : a_i = 0}                   (per group)
    M    = +1 if acc⁺ > acc⁻ + ε;  −1 if acc⁺ < acc⁻ − ε;  0 otherwise,
           and 0 when the group has no constructing or no non-constructing rollout (no contrast)
    R_len(ℓ) = min(ℓ / ℓ*, 1)                                                   (length reward)
    R(o_i) = R_acc + R_fmt + w_aux · M · a_i + w_len · R_len(ℓ_i)

Provenance. Only the abstract and the definition of R_aux (Eq. 3, through a third-party review of the
paper) were read. The abstract fixes the two mechanisms: the masking "adaptively provides positive or
negative reward signals for auxiliary construction based on contextual utility", and a length reward
"promotes longer reasoning chains". The group split, the accuracy contrast with margin ε, the additive
combination, the weights and the length-reward form are OUR RECONSTRUCTION (papers_B.md §10),
consistent with that wording but not confirmed; every number in :class:`GCPOConfig` is a placeholder.
The entry is therefore ``partial``. Options expose the choices the paper's text may settle otherwise
(``aux_on``: aux term for every constructing rollout or only correct ones; ``len_on``; ``masking=False``
= the unconditional R_aux baseline the paper argues against).

Conventions: ``correct`` and ``uses_aux`` are boolean (B,); ``length`` non-negative (B,); ``fmt``
optional finite (B,) format rewards (default 0). A singleton group has no contrast (M = 0). Rewards
are per sequence; a fully masked row still counts in its group (as in ``grpo``). No NaN is produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import choice, fail, finite_vector, group_ids, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

GCPO_PAPER = Paper(arxiv="2506.07160", title="GeometryZero: Improving Geometry Solving for LLM with Group "
                   "Contrastive Policy Optimization", year=2025)
SCOPES = ("all", "correct")


@dataclass(frozen=True)
class GCPOConfig:
    """All values are placeholders (the paper's numbers were not recovered).

    eps: contrast margin ε ≥ 0 (M = 0 unless |acc⁺ − acc⁻| > ε). w_aux ≥ 0: weight of the masked
    auxiliary term. aux_on: "all" (every constructing rollout gets w_aux·M) or "correct" (only correct
    ones). masking: False gives the unconditional R_aux (M ≡ 1), the GRPO + aux-reward baseline.
    w_len ≥ 0, len_target ℓ* > 0: length reward w_len·min(ℓ/ℓ*, 1); len_on: "all" or "correct"."""

    eps: float = 0.0
    w_aux: float = 1.0
    aux_on: str = "all"
    masking: bool = True
    w_len: float = 1.0
    len_target: float = 1024.0
    len_on: str = "all"

    def __post_init__(self) -> None:
        positive(self.eps, "eps", allow_zero=True)
        positive(self.w_aux, "w_aux", allow_zero=True)
        choice(self.aux_on, "aux_on", SCOPES)
        positive(self.w_len, "w_len", allow_zero=True)
        positive(self.len_target, "len_target")
        choice(self.len_on, "len_on", SCOPES)
        if not isinstance(self.masking, (bool, np.bool_)):
            raise fail("masking", repr(self.masking), "a bool")


def check_flags(x: Any, name: str, length: int | None = None) -> np.ndarray:
    """A boolean vector (B,) (0/1 integers accepted)."""
    a = np.asarray(x)
    if a.ndim != 1 or (length is not None and a.shape[0] != length):
        raise fail(name, f"shape {a.shape}", "a 1-D boolean array" + (f" of length {length}" if length else ""))
    if a.dtype != np.bool_:
        if np.issubdtype(a.dtype, np.integer) and np.isin(a, (0, 1)).all():
            return a.astype(bool)
        raise fail(name, f"dtype {a.dtype}", "a boolean array")
    return a


def aux_reward(uses_aux: np.ndarray) -> np.ndarray:
    """R_aux(o_i) = 1 if o_i constructs auxiliary lines else 0 (B,) — arXiv 2506.07160 Eq. 3."""
    return uses_aux.astype(np.float64)


def group_contrastive_mask(correct: Any, uses_aux: Any, group: Any, eps: float = 0.0) -> np.ndarray:
    """M (B,) ∈ {−1, 0, +1}, one value per group broadcast to its rollouts (reconstructed).

    acc⁺ = accuracy of the group's constructing rollouts, acc⁻ = of its non-constructing ones;
    M = sign(acc⁺ − acc⁻) when |acc⁺ − acc⁻| > ε, else 0; M = 0 when either subset is empty.
    """
    c = check_flags(correct, "correct")
    a = check_flags(uses_aux, "uses_aux", c.shape[0])
    g = group_ids(group, c.shape[0])
    positive(eps, "eps", allow_zero=True)
    M = np.zeros(c.shape[0])
    for k in np.unique(g):
        rows = g == k
        with_aux, without = rows & a, rows & ~a
        if not with_aux.any() or not without.any():
            continue                                        # no contrast in this group
        diff = c[with_aux].mean() - c[without].mean()       # acc⁺ − acc⁻
        M[rows] = np.sign(diff) if abs(diff) > eps else 0.0
    return M


def length_reward(length: Any, len_target: float = 1024.0) -> np.ndarray:
    """R_len(ℓ) = min(ℓ/ℓ*, 1) ∈ [0, 1] (B,), non-decreasing in ℓ (reconstructed form)."""
    L = finite_vector(length, "length")
    if (L < 0).any():
        raise fail("length", f"a negative length {L[L < 0][0]}", "non-negative lengths")
    return np.minimum(L / positive(len_target, "len_target"), 1.0)


def gcpo_reward(correct: Any, uses_aux: Any, group: Any, length: Any, fmt: Any = None,
                config: GCPOConfig | None = None) -> np.ndarray:
    """R (B,) = c + fmt + w_aux·M·R_aux·scope + w_len·R_len·scope (see the module docstring).

    Args: correct (B,) bool; uses_aux (B,) bool (constructs auxiliary lines); group (B,) integer prompt
    ids; length (B,) non-negative response lengths; fmt (B,) format rewards or None (= 0).
    Returns rewards (B,) float64, to be fed to a group-relative advantage (GRPO).
    """
    cfg = config or GCPOConfig()
    c = check_flags(correct, "correct")
    B = c.shape[0]
    a = check_flags(uses_aux, "uses_aux", B)
    g = group_ids(group, B)
    R_len = length_reward(length, cfg.len_target)
    if R_len.shape[0] != B:
        raise fail("length", f"length {R_len.shape[0]}", f"length {B}")
    F = np.zeros(B) if fmt is None else finite_vector(fmt, "fmt", B)
    M = group_contrastive_mask(c, a, g, cfg.eps) if cfg.masking else np.ones(B)
    aux_scope = c if cfg.aux_on == "correct" else np.ones(B, dtype=bool)
    len_scope = c if cfg.len_on == "correct" else np.ones(B, dtype=bool)
    return (c.astype(np.float64) + F + cfg.w_aux * M * aux_reward(a) * aux_scope
            + cfg.w_len * R_len * len_scope)


def make_inputs(rng: np.random.Generator) -> dict:
    """Groups of 1..6 rollouts, mixed aux use, ~half correct, lengths up to 2ℓ*, some singleton groups."""
    B = int(rng.integers(1, 16))
    group = rng.integers(0, max(1, B // 3), size=B) + int(rng.integers(-4, 4))
    return {"correct": rng.random(B) < 0.5, "uses_aux": rng.random(B) < 0.5, "group": group,
            "length": rng.integers(0, 2049, size=B).astype(np.float64),
            "fmt": rng.choice([0.0, 0.5, 1.0], size=B)}


_RECON = ("our reconstruction (papers_B.md §10) of what the abstract describes — a construction reward whose sign "
          "depends on whether constructing helps in the group's context; not confirmed in the paper text")

register(Spec(
    name="gcpo", kind="reward", family="reward", paper=GCPO_PAPER, status="partial",
    summary="reward shaping before the advantage: the auxiliary-construction reward gets the sign of the group's "
            "accuracy contrast (constructing vs not), 0 without contrast; plus a length reward",
    fn=gcpo_reward, config_cls=GCPOConfig, outputs=("rewards",), make_inputs=make_inputs,
    extras={"group_contrastive_mask": group_contrastive_mask, "length_reward": length_reward,
            "aux_reward": aux_reward,
            "conformance_configs": lambda: [("eps=0.2,aux_on=correct", {"eps": 0.2, "aux_on": "correct"}),
                                            ("len_on=correct,w_len=0.3", {"len_on": "correct", "w_len": 0.3})]},
    missing="only the abstract and Eq. 3 (R_aux) were read: the masking rule's exact form (margin ε, how the "
            "accuracy contrast is measured, whether the aux term applies to correct rollouts only), the "
            "length reward's form and every weight are reconstructed placeholders; the official code "
            "(ekonwang/GeometryZero) was not reachable",
    equations=(
        Equation("r-aux", "R_aux(o_i) = 1 if o_i constructs auxiliary lines, else 0", "arXiv 2506.07160 Eq. 3",
                 "secondary", "aux_reward",
                 note="read through a third-party review of the paper (themoonlight.io), which quotes Eq. 3; "
                      "construction is detected by the caller (tagged span or executable code)"),
        Equation("gcm", "M = +1 if acc⁺ > acc⁻ + ε; −1 if acc⁺ < acc⁻ − ε; 0 otherwise or when a side is empty",
                 "arXiv 2506.07160 §Group Contrastive Masking", "reconstructed", "group_contrastive_mask",
                 note=_RECON),
        Equation("len", "R_len(ℓ) = min(ℓ/ℓ*, 1)", "arXiv 2506.07160 §Length Reward", "reconstructed",
                 "length_reward", note="the abstract says only that it 'promotes longer reasoning chains'; the "
                 "capped linear form and ℓ* = 1024 are placeholders"),
        Equation("gcpo-reward", "R = R_acc + R_fmt + w_aux·M·R_aux + w_len·R_len", "arXiv 2506.07160 §GCPO",
                 "reconstructed", "gcpo_reward",
                 note="additive combination with unit weights assumed; aux_on / len_on expose the scope choice"),
    ),
    gradient="not a loss: rewards are constants w.r.t. the policy; feed them to grpo and a clipped policy loss",
    properties=(
        "properties/test_gcpo.py::test_mask_sign_follows_accuracy_contrast: M = sign(acc⁺ − acc⁻) beyond ε",
        "properties/test_gcpo.py::test_no_signal_without_contrast: one-sided, singleton or equal-accuracy groups "
        "get M = 0 and the reward of plain accuracy + length + format",
        "properties/test_gcpo.py::test_aux_term_moves_grpo_advantage_by_the_contrast: an otherwise equal "
        "constructing rollout gets a higher (M = +1) / lower (M = −1) / equal (M = 0) GRPO advantage",
        "properties/test_gcpo.py::test_unconditional_aux_reward_is_invisible_in_one_sided_groups: a group-constant "
        "reward leaves GRPO advantages unchanged",
        "properties/test_gcpo.py::test_length_reward_monotone_and_bounded: promotes longer chains, capped at 1",
        "properties/test_gcpo.py::test_contextual_bandit_learns_when_to_construct: exact-gradient GRPO with GCM "
        "constructs only where it helps; the unconditional aux reward constructs everywhere",
        "properties/test_gcpo.py::test_composition_grpo_ppo: GCPO rewards → grpo advantages → ppo loss",
        "properties/test_gcpo.py::test_bad_input_raises",
    ),
))

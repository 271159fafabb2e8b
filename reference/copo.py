"""COPO: Consistency-Aware Policy Optimization — a prompt-level global advantage blended with GRPO's local one.

Han, Chen, Shao, Ma, Li, Shen, Zheng, Chen, Wei, Zhang, "COPO: Consistency-Aware Policy Optimization",
arXiv 2508.04138 (Aug 2025). Official code: hijih/copo-code (modified verl ``core_algos.py``:
``compute_score_global``, ``compute_grpo_outcome_advantage_with_global``, and an actor loss that mixes a
local and a global clipped loss; run scripts set ``k``, ``b``, ``global_flg``, ``reward_coef_flg``).

Where it sits in the pipeline: reward → **advantage** (a global, batch-normalised advantage per prompt next
to GRPO's local one) → **loss** (the two clipped losses blended per prompt by an entropy gate). Groups whose
rollouts all agree (all correct or all wrong) have zero local advantage; the global advantage still moves them.

Provenance. Only the paper's abstract was readable here (it names the consistency-based global reward, the
global loss built on it and an entropy-based soft blending of local and global terms). The equations come
from our notes (papers_B.md §18), whose author read the official code; the code repository is not reachable
from here to re-read, so every equation is tagged ``secondary``.

For prompt q with G rollouts, rewards r_i and extracted answers a_i (B rows in all, P prompts)::

    A_loc,i  = (r_i − mean_q r) / (std_q r + ε)                                     local (GRPO)      (1)
    H(q)     = −Σ_a p_a log2 p_a,  p_a = #{i : a_i = a}/G     answer entropy in bits, H ∈ [0, log2 G]
    R_glob(q) = mean_q r · c(q),  c = 1 − λ_H H(q) with λ_H = (1 − 1/G)/log2 G  (``entropy_coef``; else c = 1)
                                                            so c ∈ [1/G, 1]                       (2)
    A_glob(q) = (R_glob(q) − mean_P R_glob) / (std_P R_glob + ε)   over the P prompts of the batch,
                broadcast to every token of every rollout of q                                       (3)
    w(q)     = σ(k (H(q) − b)),  k = 20, b = 0.5 bit                  blend weight of the LOCAL loss (4)
    L        = (1 − w) L_clip(A_glob) + w L_clip(A_loc)    per token, same ratio and clip range     (5)

``blend="soft-with-forced"`` (a code mode) sets w_i ← w_i · 1[A_loc,i ≠ 0], so a rollout with no local signal
(every rollout of an all-equal group) learns from the global loss only. High answer entropy (disagreement)
leans on the local, exploratory signal; consistent groups lean on the global one. The code's variable named
``global_loss_weight`` multiplies the local loss; here it is called w and documented as the local weight.

Two registry entries:
  * ``copo`` (advantage): Ã = (1 − w) A_glob + w A_loc. Since L_clip is linear in A whenever the two
    advantages share a sign or the ratio is inside the clip range, PPO with Ã equals loss (5) there — in
    particular exactly on-policy; ``copo_loss`` is loss (5) itself.
  * ``copo_loss`` (policy loss): loss (5), taking A_loc as ``adv`` and A_glob, w as keyword inputs.

Conventions (open in the sources; config fields): ddof = 1 (torch's std) for both the local and the global
std; ε = 1e-6; one prompt in the batch, or all prompts with equal R_glob, give A_glob = 0; a singleton group
has H = 0, c = 1 and A_loc = 0; "A_loc ≠ 0" is tested as |r_i − mean_q r| > 1e-12·max_q |r| (rounding
residues of the mean count as zero). ``answers`` (B,) integer ids of the extracted answers (map each
distinct final answer to an id); when not given, the distinct reward values stand in for answers (our
convention: with 0/1 rewards H is then the binary entropy of the group's accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, group_ids, masked_array, policy_batch, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, group_stats, grpo_outcome_advantage, validate_outcome
from rlspec.reference.ppo import PPOConfig, clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

COPO_PAPER = Paper(arxiv="2508.04138", title="COPO: Consistency-Aware Policy Optimization", year=2025)
ZERO_RTOL = 1e-12
BLENDS = ("soft", "soft-with-forced")


@dataclass(frozen=True)
class COPOConfig:
    """k, b: gate steepness and centre (bits) of w = σ(k(H − b)); blend: "soft" or "soft-with-forced";
    entropy_coef: scale the global reward by c = 1 − λ_H H (code flag reward_coef_flg, off by default);
    ddof, eps: the local and global std conventions."""

    k: float = 20.0
    b: float = 0.5
    blend: str = "soft"
    entropy_coef: bool = False
    ddof: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        positive(self.k, "k", allow_zero=True)
        if not np.isfinite(float(self.b)):
            raise fail("b", repr(self.b), "a finite entropy threshold (bits)")
        choice(self.blend, "blend", BLENDS)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)


# --------------------------------------------------------------------------- equations
def answer_entropy(answers: np.ndarray, g: np.ndarray) -> np.ndarray:
    """H(q) in bits of the answer distribution of each row's group (B,)  — eq. (2)'s H."""
    H = np.zeros(answers.shape[0])
    for k in np.unique(g):
        rows = g == k
        _, counts = np.unique(answers[rows], return_counts=True)
        p = counts / rows.sum()
        H[rows] = max(0.0, float(-(p * np.log2(p)).sum()))  # exactly 0 for a single answer (−0.0 → 0)
    return H


def entropy_coefficient(H: np.ndarray, size: np.ndarray) -> np.ndarray:
    """c = 1 − λ_H H with λ_H = (1 − 1/G)/log2 G (B,); c = 1 for a singleton group  — eq. (2)."""
    lam = np.divide(1.0 - 1.0 / size, np.log2(size), out=np.zeros_like(H), where=size > 1)
    return 1.0 - lam * H


def global_reward(R: np.ndarray, g: np.ndarray, H: np.ndarray, cfg: COPOConfig) -> np.ndarray:
    """R_glob(q) = mean_q r · c(q) on every row of q (B,)  — eq. (2)."""
    mean, _, size = group_stats(R, g, cfg.ddof)
    return mean * (entropy_coefficient(H, size) if cfg.entropy_coef else 1.0)


def global_advantage(Rglob: np.ndarray, g: np.ndarray, cfg: COPOConfig) -> np.ndarray:
    """A_glob = (R_glob − mean_P)/(std_P + ε) with one value per prompt (B,); 0 for P = 1 or equal R_glob  — eq. (3)."""
    _, first = np.unique(g, return_index=True)
    per_prompt = Rglob[first]  # (P,)
    A = np.zeros_like(Rglob)
    if per_prompt.size < 2 or per_prompt.min() == per_prompt.max():
        return A
    sd = per_prompt.std(ddof=cfg.ddof)
    return (Rglob - per_prompt.mean()) / (sd + cfg.eps)


def local_is_zero(R: np.ndarray, g: np.ndarray, cfg: COPOConfig) -> np.ndarray:
    """1[A_loc,i = 0] (B,): all-equal or singleton groups, and rewards equal to their group mean to rounding."""
    mean, _, size = group_stats(R, g, cfg.ddof)
    scale = np.zeros_like(R)
    for k in np.unique(g):
        scale[g == k] = np.abs(R[g == k]).max()
    return (size < 2) | (np.abs(R - mean) <= ZERO_RTOL * scale)


def blend_weight(H: np.ndarray, local_zero: np.ndarray, cfg: COPOConfig) -> np.ndarray:
    """w = σ(k(H − b)) (B,), times 1[A_loc ≠ 0] with blend='soft-with-forced'  — eq. (4)."""
    x = cfg.k * (H - cfg.b)
    w = np.exp(-np.logaddexp(0.0, -x))  # σ(x) without overflow
    return np.where(local_zero, 0.0, w) if cfg.blend == "soft-with-forced" else w


def validate_answers(answers, R: np.ndarray) -> np.ndarray:
    """Answer ids (B,) int; None → the distinct reward values as answer classes."""
    if answers is None:
        return np.unique(R, return_inverse=True)[1].astype(np.int64)
    return group_ids(answers, R.shape[0], name="answers")


def components(R: np.ndarray, g: np.ndarray, answers: np.ndarray, cfg: COPOConfig) -> dict[str, np.ndarray]:
    """H, A_loc, A_glob, w per row (B,) each."""
    H = answer_entropy(answers, g)
    A_loc = grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))
    zero = local_is_zero(R, g, cfg)
    A_loc = np.where(zero, 0.0, A_loc)
    A_glob = global_advantage(global_reward(R, g, H, cfg), g, cfg)
    return {"H": H, "A_loc": A_loc, "A_glob": A_glob, "w": blend_weight(H, zero, cfg)}


def copo_components(rewards, group, mask, config: COPOConfig | None = None, answers=None) -> dict[str, np.ndarray]:
    """The per-row pieces (H, A_loc, A_glob, w) of :func:`copo_advantage`: feed A_loc, A_glob and w to ``copo_loss``."""
    cfg = config or COPOConfig()
    R, g, _ = validate_outcome(rewards, group, mask)
    return components(R, g, validate_answers(answers, R), cfg)


def copo_advantage(rewards, group, mask, config: COPOConfig | None = None, answers=None) -> np.ndarray:
    """COPO blended advantage Ã = (1 − w) A_glob + w A_loc (B, T), broadcast over each response.

    Args: rewards (B,); group (B,) prompt ids; mask (B, T) bool; answers (B,) int answer ids (None: reward values).
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or COPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    c = components(R, g, validate_answers(answers, R), cfg)
    return broadcast_to_tokens((1.0 - c["w"]) * c["A_glob"] + c["w"] * c["A_loc"], M)


# --------------------------------------------------------------------------- the blended loss
@dataclass(frozen=True)
class COPOLossConfig(PPOConfig):
    """PPO's clip fields (ε = 0.2 both sides in the runs) and aggregation; seq-mean-token-mean as in the runs."""

    agg: str = "seq-mean-token-mean"


def blended_token_loss(r: np.ndarray, A_glob: np.ndarray, A_loc: np.ndarray, w: np.ndarray,
                       cfg: COPOLossConfig) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = (1 − w) ℓ_clip(r, A_glob) + w ℓ_clip(r, A_loc) and ∂ℓ/∂r (B, T)  — eq. (5)."""
    out = []
    for A in (A_glob, A_loc):
        ell, dr = clipped_surrogate(r, A, cfg.eps_low, cfg.eps_high)
        if cfg.dual_clip_c is not None:
            ell, dr = dual_clip(ell, dr, A, cfg.dual_clip_c)
        out.append((ell, dr))
    wt = w[:, None]
    return (1.0 - wt) * out[0][0] + wt * out[1][0], (1.0 - wt) * out[0][1] + wt * out[1][1]


def copo_loss(logp, old_logp, adv, mask, ref_logp=None, config: COPOLossConfig | None = None, group=None,
              adv_global=None, blend_weight=None):
    """COPO's blended clipped loss and its gradient w.r.t. logp.

    Args: logp, old_logp (B, T); adv (B, T) the LOCAL advantage A_loc; mask (B, T) bool; adv_global (B, T) the
    global advantage; blend_weight (B,) w ∈ [0, 1], the local loss's weight per rollout. Without adv_global and
    blend_weight (both None) the loss is the local clipped loss alone (w ≡ 1). ``group`` for agg='group-token-mean'.
    Returns: (loss, dlogp) with dlogp = c ⊙ [(1 − w) ∂ℓ_g/∂r + w ∂ℓ_l/∂r] ⊙ r, each ∂ℓ/∂r = −A on its unclipped
    branch and 0 where its clip binds; zero at masked positions.
    """
    cfg = config or COPOLossConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    if (adv_global is None) != (blend_weight is None):
        raise fail("adv_global" if adv_global is None else "blend_weight", "None",
                   "adv_global and blend_weight given together (or both None: local loss only)")
    if adv_global is None:
        A_glob, w = np.zeros_like(adv), np.ones(mask.shape[0])
    else:
        A_glob = masked_array(adv_global, "adv_global", mask)
        w = np.asarray(blend_weight)
        ok = np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)
        w = w.astype(np.float64) if ok else w
        if not ok or w.shape != (mask.shape[0],) or not np.isfinite(w).all() or (w < 0).any() or (w > 1).any():
            raise fail("blend_weight", f"{np.asarray(blend_weight).shape} {np.asarray(blend_weight).dtype}",
                       f"weights in [0, 1] of shape ({mask.shape[0]},)")
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell, dell_dr = blended_token_loss(r, A_glob, adv, w, cfg)
    return common.aggregate_token_loss(ell, dell_dr * dr, mask, cfg, group)


# --------------------------------------------------------------------------- example inputs
def make_inputs(rng: np.random.Generator) -> dict:
    """Prompts with binary or graded rewards, answer ids with agreement and disagreement, all-equal groups."""
    P = int(rng.integers(1, 5))
    sizes = rng.integers(1, 7, size=P)
    group = np.repeat(rng.choice(np.arange(-10, 10), size=P, replace=False), sizes)
    B, T = len(group), int(rng.integers(1, 6))
    answers = rng.integers(0, int(rng.integers(1, 5)), size=B)
    R = (answers == 0).astype(np.float64) if rng.random() < 0.6 else rng.choice([0.0, 0.5, 1.0], size=B)
    lengths = rng.integers(0, T + 1, size=B)
    out = {"rewards": R, "group": group, "mask": np.arange(T)[None, :] < lengths[:, None]}
    if rng.random() < 0.7:
        out["answers"] = answers
    return out


def make_loss_inputs(rng: np.random.Generator) -> dict:
    """A policy batch (ratios near and beyond the clip range, NaN padding) carrying COPO's three advantage
    inputs, computed from a drawn outcome batch."""
    o = make_inputs(rng)
    M = o["mask"]
    c = copo_components(**o, config=COPOConfig(blend=str(rng.choice(BLENDS))))
    old = -rng.random(M.shape)
    logp = old + float(rng.choice([0.05, 0.3, 1.0])) * rng.normal(size=M.shape)
    pad = lambda x: np.where(M, x, np.nan)  # noqa: E731 - padding must never be read
    return {"logp": pad(logp), "old_logp": pad(old), "mask": M, "adv": pad(np.repeat(c["A_loc"][:, None], M.shape[1], 1)),
            "adv_global": pad(np.repeat(c["A_glob"][:, None], M.shape[1], 1)), "blend_weight": c["w"]}


def conformance_configs():
    return ({"blend": "soft-with-forced"}, {"entropy_coef": True}, {"k": 0.0}, {"ddof": 0, "eps": 0.0})


def loss_conformance_configs():
    return ({"agg": "token-mean"}, {"eps_low": 0.1, "eps_high": 0.3}, {"dual_clip_c": 3.0})


_NOTE = "papers_B.md §18, read from hijih/copo-code core_algos.py by our notes' author; not re-read here"

register(Spec(
    name="copo", kind="advantage", family="advantage", paper=COPO_PAPER, status="implemented",
    summary=("global advantage (batch z-score of each prompt's mean reward) blended with GRPO's local one by an "
             "answer-entropy gate w = σ(k(H − b)) (reward → advantage → loss)"),
    fn=copo_advantage, config_cls=COPOConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"components": copo_components, "answer_entropy": answer_entropy, "blend_weight": blend_weight,
            "entropy_coefficient": entropy_coefficient, "conformance_configs": conformance_configs},
    equations=(
        Equation("copo-local", "A_loc = (r − mean_q r)/(std_q r + ε)", "arXiv 2508.04138 (local advantage)", "secondary",
                 "components", note=_NOTE + "; GRPO's advantage, ddof = 1"),
        Equation("copo-entropy", "H(q) = −Σ_a p_a log2 p_a over the G extracted answers", "arXiv 2508.04138",
                 "secondary", "answer_entropy", note=_NOTE + "; bits; answers=None uses reward values (our convention)"),
        Equation("copo-global-reward", "R_glob = mean_q r · (1 − λ_H H),  λ_H = (1 − 1/G)/log2 G ⇒ c ∈ [1/G, 1]",
                 "arXiv 2508.04138", "secondary", "global_reward",
                 note=_NOTE + "; the entropy factor is the code flag reward_coef_flg, off by default (c = 1)"),
        Equation("copo-global-adv", "A_glob = (R_glob − mean_P R_glob)/(std_P R_glob + ε)", "arXiv 2508.04138",
                 "secondary", "global_advantage", note=_NOTE + "; statistics over the batch's prompts"),
        Equation("copo-gate", "w = σ(k(H − b)), k = 20, b = 0.5;  forced: w ← w·1[A_loc ≠ 0]", "arXiv 2508.04138",
                 "secondary", "blend_weight",
                 note=_NOTE + "; w weighs the LOCAL loss (the code calls it global_loss_weight); the forced mode "
                      "is one of the code's global_flg modes"),
        Equation("copo-blend", "Ã = (1 − w) A_glob + w A_loc  (= loss (5) where both clipped losses are linear)",
                 "arXiv 2508.04138", "reconstructed", "copo_advantage",
                 note="our advantage-level form of the loss blend; copo_loss is the loss blend itself"),
    ),
    properties=(
        "properties/test_copo.py::test_global_advantages_zero_sum_across_prompts: Σ_prompts A_glob = 0",
        "properties/test_copo.py::test_local_advantages_zero_sum_per_group: Σ_group A_loc = 0",
        "properties/test_copo.py::test_entropy_range: 0 ≤ H ≤ log2 G, 0 iff one answer, log2 G iff all distinct",
        "properties/test_copo.py::test_entropy_coefficient_range: c ∈ [1/G, 1], c = 1/G iff all answers distinct",
        "properties/test_copo.py::test_blend_weight_formula_and_range: w = σ(k(H − b)) ∈ (0, 1), increasing in H, "
        "w(H = 0) = σ(−10) ≈ 4.5e−5 with the defaults; forced mode zeroes it where A_loc = 0",
        "properties/test_copo.py::test_consistent_groups_still_get_a_signal: an all-correct (all-wrong) group has "
        "A_loc = 0 but a positive (negative) blended advantage when its mean reward is above (below) the batch's",
        "properties/test_copo.py::test_gate_limits: k = 0 gives the even mix; w → 1 is GRPO, w → 0 the global advantage",
        "properties/test_copo.py::test_matches_direct_computation",
        "properties/test_copo.py::test_feeds_ppo: copo advantages in registry.get('ppo') equal copo_loss on-policy and "
        "wherever A_loc and A_glob share a sign",
        "properties/test_copo.py::test_bad_input_raises",
    ),
))

register(Spec(
    name="copo_loss", kind="policy_loss", family="advantage", paper=COPO_PAPER, status="implemented",
    summary="COPO's loss: (1 − w)·clip-loss(A_glob) + w·clip-loss(A_loc) per token, w the entropy gate per rollout",
    fn=copo_loss, config_cls=COPOLossConfig, outputs=("loss", "dlogp"), make_inputs=make_loss_inputs,
    extras={"conformance_configs": loss_conformance_configs},
    gradient=("∂ℓ/∂logp = r·[(1 − w)·g(A_glob) + w·g(A_loc)], g(A) = −A on the unclipped branch and 0 where the clip "
              "binds for that advantage's sign; times the aggregation coefficient"),
    equations=(
        Equation("copo-loss", "L = (1 − w) L_clip(A_glob) + w L_clip(A_loc)", "arXiv 2508.04138", "secondary",
                 "blended_token_loss",
                 note=_NOTE + "; per-token ratios for both terms as in the code (whether the paper's global loss uses "
                      "a group-level likelihood ratio is open); seq-mean-token-mean, ε = 0.2 in the runs"),
    ),
    properties=(
        "properties/test_copo.py::test_loss_gradient_matches_finite_differences: dlogp = central FD",
        "properties/test_copo.py::test_loss_limits: w ≡ 1 is PPO with A_loc, w ≡ 0 PPO with A_glob, no global "
        "inputs is PPO",
        "properties/test_copo.py::test_feeds_ppo",
    ),
))

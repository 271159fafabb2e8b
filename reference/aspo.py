"""ASPO: Advantage Shaping Policy Optimization — a clipped, tool-use term added to the correctness advantage.

Lin & Xu, "Understanding Tool-Integrated Reasoning", arXiv 2508.19201 (NeurIPS 2025), §ASPO (Eq. 1–2).
No official code is public (a blog post accompanies the paper); a third-party verl recipe implements it.

Place in the pipeline: ADVANTAGE SHAPING, after the correctness advantage and before the policy loss.
Rewards are untouched; the advantage of each correct, tool-using response gets a bounded bonus::

    adv  = aspo_advantage(rewards, group, mask, first_call=p, length=L)   # this module, (B, T)
    loss = registry.get("dapo")(logp, old_logp, adv, mask)                 # unchanged base loss

For the G responses of one prompt, with A_c the GRPO advantage of the correctness reward (the paper
trains with DAPO, whose advantage is GRPO's group z-score), p_i the token position of response i's
first tool (code) invocation and L_i its length::

    E      = { i in the group : response i is correct AND invokes the tool }          eligible set
    b_i    = δ · (p_i − mean_{j∈E} p_j) / mean_{j∈E} L_j                              raw shaping term
    A_i    = A_c,i + clip(b_i, −k·|A_c,i|, +k·|A_c,i|)     for i ∈ E                  (Eq. 2)
    A_i    = A_c,i                                         otherwise

δ < 0 rewards an earlier first call; k bounds the change to a fraction of the base advantage, so for
0 ≤ k < 1 the sign of every advantage is kept and a zero base advantage stays zero (an all-correct
group under std normalisation is left alone; DAPO's dynamic sampling drops such groups anyway).
Defaults: the paper's "conservative" setting δ = −2.0, k = 0.7 (its "aggressive" one is δ = −2.5,
k = 0.9; a figure legend prints other numbers, 1.5/2). The paper writes the bound as ±k·A_c, which
for an eligible (correct) response with binary rewards is the same as ±k·|A_c| (A_c ≥ 0); we use
|A_c| so that the bound is well formed for any sign, as the third-party recipe does.

The rejected alternative the paper motivates ASPO with (Eq. 1), kept for comparison as
:func:`reward_shaping_rewards`: R_i = 1 + δ·clip((p_i − mean_E p)/std_E p, −c, c) for correct tool-using
responses. Under GRPO an all-correct group then has A_i = z-score of the shaping term only, so about half
of the correct answers get a negative advantage (a property test demonstrates it).

Conventions (ours, the paper leaves them open):
  * ``correct`` defaults to ``rewards > 0`` (the recipe's rule); ``first_call`` is an integer token
    position ≥ 0, or any negative value for "no tool call"; ``first_call=None`` means no response of
    the batch used the tool, and then ASPO is exactly its base advantage;
  * ``length`` defaults to the number of valid tokens of each row (mask.sum(1)); pass the true
    response length (tool outputs included) when the mask excludes tool tokens;
  * the base advantage is rlspec's ``grpo`` outcome advantage with this config's ``ddof`` and ``eps``
    (defaults as ``grpo``: sample std, ε = 1e-6 outside the std, singleton groups 0);
  * one eligible response in a group gives b = 0 (p equals its own mean);
  * the sequence advantage is broadcast over the valid tokens; masked positions are 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import fail, in_range, positive
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

ASPO_PAPER = Paper(arxiv="2508.19201", title="Understanding Tool-Integrated Reasoning", year=2025)


@dataclass(frozen=True)
class ASPOConfig:
    """delta: δ (paper: −2.0; < 0 favours earlier calls). k: bound on |ΔA|/|A_c| in [0, 1) (paper: 0.7).
    ddof, eps: of the base GRPO advantage (as ``grpo``)."""

    delta: float = -2.0
    k: float = 0.7
    ddof: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        d = float(self.delta)
        if not np.isfinite(d):
            raise fail("delta", repr(self.delta), "a finite number (paper: −2.0)")
        in_range(self.k, "k", 0.0, 1.0, hi_open=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)


def base_advantage(R: np.ndarray, g: np.ndarray, cfg: ASPOConfig) -> np.ndarray:
    """A_c (B,): GRPO's group z-score of the correctness reward (arXiv 2402.03300 §4.1.2)."""
    return grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps))


def eligible_means(p: np.ndarray, L: np.ndarray, eligible: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean_E p, mean_E L) of each row's group (B,), over the group's eligible rows; 0 where a group has none."""
    p_bar, L_bar = np.zeros_like(p), np.zeros_like(L)
    for k in np.unique(g):
        rows = g == k
        e = rows & eligible
        if e.any():
            p_bar[rows], L_bar[rows] = p[e].mean(), L[e].mean()
    return p_bar, L_bar


def shaping_term(p: np.ndarray, p_bar: np.ndarray, L_bar: np.ndarray, delta: float) -> np.ndarray:
    """b = δ·(p − p̄)/L̄ (B,); 0 where L̄ = 0 (no eligible row in the group)."""
    return np.divide(delta * (p - p_bar), L_bar, out=np.zeros_like(p), where=L_bar > 0)


def aspo_shape(A_c: np.ndarray, b: np.ndarray, eligible: np.ndarray, k: float) -> np.ndarray:
    """A = A_c + clip(b, −k|A_c|, k|A_c|) on eligible rows, A_c elsewhere (B,)  — Eq. 2."""
    bound = k * np.abs(A_c)
    return A_c + np.where(eligible, np.clip(b, -bound, bound), 0.0)


def check_tool_inputs(first_call: Any, length: Any, correct: Any, R: np.ndarray, M: np.ndarray):
    """(p, L, correct, has_call) as float64/bool vectors (B,), validated; defaults as in the module docstring."""
    B = M.shape[0]
    if first_call is None:
        p = np.full(B, -1.0)
    else:
        p = np.asarray(first_call)
        if p.shape != (B,) or not (np.issubdtype(p.dtype, np.integer) or np.issubdtype(p.dtype, np.floating)):
            raise fail("first_call", f"{p.dtype} {p.shape}", f"integer token positions of shape ({B},), −1 = no call")
        p = p.astype(np.float64)
        if not np.isfinite(p).all() or (p != np.round(p)).any():
            raise fail("first_call", "non-finite or fractional positions", "integer token positions, −1 = no call")
    if length is None:
        L = M.sum(axis=1).astype(np.float64)
    else:
        L = np.asarray(length)
        if L.shape != (B,) or not (np.issubdtype(L.dtype, np.integer) or np.issubdtype(L.dtype, np.floating)):
            raise fail("length", f"{L.dtype} {L.shape}", f"response lengths of shape ({B},)")
        L = L.astype(np.float64)
        if not np.isfinite(L).all() or (L < 0).any():
            raise fail("length", "negative or non-finite lengths", "finite lengths ≥ 0")
    if correct is None:
        c = R > 0
    else:
        c = np.asarray(correct)
        if c.shape != (B,) or not (c.dtype == np.bool_ or (np.issubdtype(c.dtype, np.integer) and np.isin(c, (0, 1)).all())):
            raise fail("correct", f"{c.dtype} {c.shape}", f"a boolean array of shape ({B},)")
        c = c.astype(bool)
    has_call = p >= 0
    if (has_call & c & (L <= 0)).any():
        i = int(np.argwhere(has_call & c & (L <= 0))[0][0])
        raise fail("length", f"{L[i]} for eligible row {i}", "a positive length for every correct, tool-using response")
    return p, L, c, has_call


def aspo_sequence_advantage(R, g, p, L, correct, has_call, cfg: ASPOConfig) -> np.ndarray:
    """ASPO sequence advantage (B,): the base advantage plus the clipped shaping term on eligible rows."""
    A_c = base_advantage(R, g, cfg)
    eligible = correct & has_call
    p_bar, L_bar = eligible_means(p, L, eligible, g)
    return aspo_shape(A_c, shaping_term(p, p_bar, L_bar, cfg.delta), eligible, cfg.k)


def aspo_advantage(rewards, group, mask, first_call=None, length=None, correct=None,
                   config: ASPOConfig | None = None) -> np.ndarray:
    """ASPO advantage (B, T).

    Args: rewards (B,) correctness rewards; group (B,) prompt ids; mask (B, T) bool; first_call (B,) token
    position of the first tool call, negative = none (None: no call anywhere); length (B,) response
    lengths (None: valid tokens per row); correct (B,) bool (None: rewards > 0).
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or ASPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    p, L, c, has_call = check_tool_inputs(first_call, length, correct, R, M)
    return broadcast_to_tokens(aspo_sequence_advantage(R, g, p, L, c, has_call, cfg), M)


def reward_shaping_rewards(correct, first_call, group, delta: float = -2.0, clip_c: float = 1.0,
                           ddof: int = 0) -> np.ndarray:
    """The rejected reward shaping (Eq. 1), for comparison: R_i = 1 + δ·clip((p_i − mean_E p)/std_E p, −c, c) for
    correct tool-using responses, 1 for other correct ones, 0 for wrong ones (B,). The z-score is over the
    eligible responses of the group (population std by default; 0 when std is 0). The paper's clip constant c
    was not recovered: clip_c = 1 is ours."""
    c = np.asarray(correct, dtype=bool)
    p = np.asarray(first_call, dtype=np.float64)
    g = np.asarray(group)
    elig = c & (p >= 0)
    z = np.zeros_like(p)
    for k in np.unique(g):
        e = (g == k) & elig
        if e.sum() > ddof and p[e].std(ddof=ddof) > 0:
            z[e] = (p[e] - p[e].mean()) / p[e].std(ddof=ddof)
    return np.where(c, 1.0 + np.where(elig, delta * np.clip(z, -clip_c, clip_c), 0.0), 0.0)


def make_inputs(rng: np.random.Generator) -> dict:
    """Groups of binary-reward responses; about 70 % call the tool at a random position inside a ragged length."""
    B, T = int(rng.integers(1, 13)), int(rng.integers(1, 7))
    group = rng.integers(0, max(1, B // 3), size=B)
    rewards = rng.integers(0, 2, size=B).astype(np.float64)
    length = rng.integers(8, 200, size=B)
    first = np.where(rng.random(B) < 0.7, (rng.random(B) * length).astype(np.int64), -1)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    return {"rewards": rewards, "group": group, "mask": mask, "first_call": first, "length": length}


register(Spec(
    name="aspo", kind="advantage", family="advantage", paper=ASPO_PAPER, status="implemented",
    summary="advantage shaping after the correctness advantage, before the loss: correct tool-using responses get "
            "A_c + clip(δ(p − p̄)/L̄, ±k|A_c|), favouring an earlier first tool call without flipping any sign",
    fn=aspo_advantage, config_cls=ASPOConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"reward_shaping_rewards": reward_shaping_rewards, "aspo_shape": aspo_shape,
            "shaping_term": shaping_term, "base_advantage": base_advantage,
            "conformance_configs": lambda: [("aggressive", {"delta": -2.5, "k": 0.9}), ("k=0", {"k": 0.0}),
                                            ("ddof=0", {"ddof": 0, "eps": 0.0})]},
    equations=(
        Equation("aspo-base", "A_c,i = (r_i − mean_g r)/(std_g r + ε)  (correctness reward, GRPO/DAPO)",
                 "arXiv 2508.19201 §ASPO (training with DAPO)", "paper", "base_advantage",
                 note="from our notes, which read the full paper text (papers_B.md §4); ddof/ε are rlspec's grpo "
                      "defaults, the paper does not fix them"),
        Equation("aspo-shaping", "A_i = A_c,i + clip(δ(p_i − mean_E p)/mean_E L, −k·A_c,i, k·A_c,i) for correct, "
                 "tool-using i; A_c,i otherwise; δ = −2.0, k = 0.7", "arXiv 2508.19201 §ASPO, Eq. 2", "paper",
                 "aspo_shape",
                 note="paper text via our notes; the means over the eligible responses of the group and the ±k|A_c| "
                      "bound agree with the third-party recipe masoudhashemi/verl verl/trainer/ppo/aspo.py "
                      "(apply_aspo_shaping, δ = −2.0, k = 0.7); |A_c| = A_c for correct responses under binary rewards"),
        Equation("aspo-rejected-reward-shaping", "R_i = 1 + δ·clip((p_i − mean p)/std p, −c, c)",
                 "arXiv 2508.19201 §ASPO, Eq. 1 (rejected alternative)", "reconstructed", "reward_shaping_rewards",
                 note="form from our notes (paper); the clip constant c and the std convention were not recovered "
                      "(c = 1, population std are ours)"),
    ),
    gradient="not a loss: A is a constant weight per sequence; the base loss (DAPO's clipped token loss in the paper) "
             "gives the gradient",
    properties=(
        "properties/test_aspo.py::test_sign_of_base_advantage_preserved: k < 1 ⇒ sign(A) = sign(A_c)",
        "properties/test_aspo.py::test_change_bounded_by_k_times_base: |A − A_c| ≤ k|A_c|",
        "properties/test_aspo.py::test_inert_when_base_advantage_is_zero: A_c = 0 ⇒ A = 0 (all-correct groups)",
        "properties/test_aspo.py::test_earlier_call_larger_advantage: unclipped, δ < 0, equal A_c ⇒ earlier p, larger A",
        "properties/test_aspo.py::test_matches_explicit_loop_and_ignores_padding",
        "properties/test_aspo.py::test_no_tool_calls_is_base_advantage: ASPO = grpo when nobody calls the tool",
        "properties/test_aspo.py::test_rejected_reward_shaping_flips_correct_answers: Eq. 1 gives about half of an "
        "all-correct group a negative advantage, ASPO none",
        "properties/test_aspo.py::test_composition_with_ppo: ASPO advantages feed registry ppo; gradient order follows p",
        "properties/test_aspo.py::test_bad_input_raises",
        "untested: Thm 3.3 (support preservation under RLVR, cited) — a statement about the support of trained "
        "policies over all trajectories, not about the advantage computed here",
        "untested: Thm 3.4 / Thm 3.7 (tool integration strictly expands empirical and token-budget-feasible support; "
        "Def. 3.5–3.6 equivalence classes) — capability theorems about models and a random-oracle construction, "
        "outside any array function of ASPO",
    ),
))

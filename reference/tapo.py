"""TAPO: Tool-Augmented Policy Optimization — DAPO with the tool-output tokens masked out of the loss.

Wu, Li, Chen, Wang, Chen, "Tool-Augmented Policy Optimization: Synergizing Reasoning and Adaptive Tool Use
with Reinforcement Learning", arXiv 2510.07038 (Oct 2025). Official code: github.com/Goer17/TAPO (a verl
fork). Only the abstract of the paper could be read here; every formula below was confirmed in the official
code (files named per equation in ``EQUATIONS``), and the abstract confirms "a modified version of DAPO
adapted to tool invocation".

Place in the pipeline. A rollout interleaves model text (``<think>``, ``<search>``, ``<code>``, ``<answer>``)
with tool outputs that the environment pastes in as ``<response>…</response>`` (at most 4 tool turns). Then::

    reward   r = score(answer) ∈ [0, 1]  (−1 if the tag sequence is malformed)  + R_len(L_model)
    keep     groups whose accuracy 1[score > 0.9] is not all-equal     (DAPO dynamic sampling, on acc)
    adv      Â = GRPO z-score of r within the prompt's group                (registry "grpo")
    loss     DAPO clip-higher surrogate (+ dual clip c = 10) on the model's own tokens only   (this entry)

Notation: M (B, T) the response mask (prompt and padding excluded), U (B, T) the tool-output mask (True at
tokens the environment inserted), M′ = M ∧ ¬U the tokens the policy generated; r = π_θ/π_old; Â the advantage.

Policy loss (``tapo``; loss = −objective, per token)::

    ℓ_t = −min(r_t Â_t, clip(r_t, 1−ε_low, 1+ε_high) Â_t)            DAPO clip-higher (ε_low 0.2, ε_high 0.28)
    ℓ_t ← min(ℓ_t, −c Â_t)   for Â_t < 0                              dual clip, c = 10 (code: clip_ratio_c)
    loss = Σ_t c_t ℓ_t  over t ∈ M′,   c from token-mean over M′      (tool tokens: no numerator, no denominator)

With ``tool_in_denominator=True`` (what the official code computes) the tool tokens still carry no loss
— verl's GRPO advantage is multiplied by the info mask, so Â = 0 there — but the actor's token-mean divides
by the attention mask, which counts them: loss = Σ_{t∈M′} ℓ_t / |M|. Both variants give an exactly zero
gradient at tool tokens; they differ by the factor |M′|/|M| in the gradient of the model tokens.

Gradient (derived here; the surrogate's derivative is :func:`rlspec.reference.ppo.clipped_surrogate`'s)::

    ∂loss/∂logp_t = −c_t Â_t r_t   on the unclipped branch, t ∈ M′
                  = 0              where the clip binds in the preferred direction or the dual-clip cap is
                                   active, and at every tool-output token (exactly, by construction)

With no tool tokens (U ≡ False) TAPO is PPO with the clip range (0.2, 0.28) and dual clip c = 10; with the
dual clip off too it is exactly the registry's DAPO loss (tested against ``registry.get("dapo")``).

Overlong shaping (code: ``verl/workers/reward_manager/dapo.py``, used by the TAPO scripts)::

    R_len = min(−(L_model − (L_max − L_buf))/L_buf · κ, 0),   L_max = 2048, L_buf = 1024, κ = 1

L_model counts the response tokens the model wrote (the info mask): tool output does not lengthen a
response. This is DAPO's ramp with verl's linear continuation past L_max (``beyond_max='linear'`` of the
registry's ``dapo_overlong``, reused here).

Reward (code: ``verl/utils/reward_score/tool_dapo.py``): −1 if the response is not a sequence of
``<tag>…</tag>`` blocks with tags in {think, search, code, response, answer} ending in ``<answer>``; otherwise
the answer's score: exact match (math), substring-or-(1 − Levenshtein/maxlen if that ratio < 0.5) (NQ),
|Δ| < 1e-3 (calculator), relative error < 5 % (complex). There is no tool-count term: the number of tool
calls never enters the reward. ``acc = score > 0.9``.

Dynamic sampling (code: ``recipe/tapo/src/tcg_ray_trainer.py``, ``filter_groups.metric=acc``): keep a group
iff the population std of its acc values is > 0 or it has one rollout — the registry's
``dapo_dynamic_sampling`` with ``keep_singletons=True`` applied to acc (not to the shaped reward). Up to 10
generation batches are drawn to fill the batch (the trainer's loop, not modelled here).

Defaults (code, ``recipe/tapo/examples/tapo_single_node.sh``): n = 4 responses per prompt, no KL, no
entropy bonus, ``loss_agg_mode=token-mean``, lr 1e-6, grad clip 1.0, max response 2048.

Conventions and defined cases: masked positions and tool-output positions are never read (they may hold
NaN); an all-false M′ gives loss 0 and a zero gradient (with ``tool_in_denominator=True`` the loss is also 0).
Sharding: under token-mean pass ``normalizer`` = the global number of model tokens Σ M′ (Σ M with
``tool_in_denominator=True``), not the registry's ``global_normalizer(mask)``, which counts tool tokens.
``tool_mask`` may be None (no tools). A tool token outside the response mask is simply ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import as_mask, fail, finite_vector, group_ids, policy_batch, positive
from rlspec.reference.dapo import DynamicSamplingConfig, informative_groups, soft_overlong_penalty
from rlspec.reference.ppo import clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

TAPO_PAPER = Paper(arxiv="2510.07038", title="Tool-Augmented Policy Optimization: Synergizing Reasoning and "
                   "Adaptive Tool Use with Reinforcement Learning", year=2025)

TAGS = ("think", "search", "code", "response", "answer")  # code: check_format's allowed tags (both tools on)
SOURCES = ("default", "gsm8k", "dapo_math", "deep_math", "aime", "nq", "calculator", "complex")


# --------------------------------------------------------------------------- policy loss
@dataclass(frozen=True)
class TAPOConfig(common.AggregationOptions):
    """eps_low/eps_high: DAPO's decoupled clip (code: 0.2 / 0.28). dual_clip_c: the dual-clip constant for
    Â < 0 (code: clip_ratio_c = 10.0; None = off). tool_in_denominator: False = tool tokens leave the loss
    entirely (our reading of "masked out"); True = the official code's token-mean, whose denominator counts
    them (they still carry Â = 0). agg: token-mean (code and DAPO)."""

    eps_low: float = 0.2
    eps_high: float = 0.28
    dual_clip_c: float | None = 10.0
    tool_in_denominator: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        if self.dual_clip_c is not None and positive(self.dual_clip_c, "dual_clip_c") <= 1.0:
            raise fail("dual_clip_c", repr(self.dual_clip_c), "a number > 1 (or None for no dual clip)")
        if not isinstance(self.tool_in_denominator, bool):
            raise fail("tool_in_denominator", repr(self.tool_in_denominator), "True or False")


def model_token_mask(mask, tool_mask) -> np.ndarray:
    """M′ = M ∧ ¬U (B, T): the response tokens the policy generated. ``tool_mask`` None means no tools."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    if tool_mask is None:
        return M.copy()
    U = as_mask(tool_mask, "tool_mask", M.shape)
    return M & ~U


def tapo_loss(logp, old_logp, adv, mask, ref_logp=None, config: TAPOConfig | None = None, group=None,
              tool_mask=None):
    """TAPO policy loss and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool, the response mask; tool_mask (B, T) bool, True
    at tool-output tokens (None = no tools); ``ref_logp`` accepted and unused (no KL); ``group`` (B,) only for
    ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)); dlogp is exactly 0 at masked and tool-output positions.
    """
    cfg = config or TAPOConfig()
    Mp = model_token_mask(mask, tool_mask)  # (B, T) tokens the model wrote
    logp, old_logp, adv, Mp, _ = policy_batch(logp, old_logp, adv, Mp, ref_logp)  # tool/pad values never read
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, adv, cfg.dual_clip_c)
    if cfg.tool_in_denominator:  # code: coefficients from the attention mask, tool tokens contribute ℓ = 0
        c = common.agg_coefficients(as_mask(mask, "mask"), cfg, group)
        c = np.where(Mp, c, 0.0)
        return float((c * np.where(Mp, ell, 0.0)).sum()), c * np.where(Mp, dell_dr * dr, 0.0)
    return common.aggregate_token_loss(ell, dell_dr * dr, Mp, cfg, group)


def _tool_batch(rng: np.random.Generator) -> dict:
    """A canonical batch plus a tool mask: contiguous tool-output spans inside each response, NaN there."""
    from rlspec.conformance.inputs import policy_batch as canonical

    B, T = int(rng.integers(1, 7)), int(rng.integers(2, 12))
    batch = canonical(rng, B, T, log_ratio_scale=float(rng.choice([0.05, 0.3, 1.0])), garbage=True)
    U = np.zeros((B, T), dtype=bool)
    for b in range(B):
        for _ in range(int(rng.integers(0, 3))):  # up to two tool turns
            s = int(rng.integers(0, T))
            U[b, s:s + int(rng.integers(1, 4))] = True
    U &= batch["mask"]
    for k in ("logp", "old_logp", "adv"):
        batch[k] = np.where(U, np.nan, batch[k])  # tool positions are never read
    return {"logp": batch["logp"], "old_logp": batch["old_logp"], "adv": batch["adv"], "mask": batch["mask"],
            "group": batch["group"], "tool_mask": U}


# --------------------------------------------------------------------------- overlong shaping
@dataclass(frozen=True)
class TAPOOverlongConfig:
    """L_max: max response length (code: 2048); L_buf: overlong buffer (code: 1024); kappa: penalty factor
    (code: 1.0). The ramp is verl's (linear past L_max, no −1 floor)."""

    L_max: int = 2048
    L_buf: int = 1024
    kappa: float = 1.0

    def __post_init__(self) -> None:
        positive(self.L_max, "L_max")
        positive(self.L_buf, "L_buf")
        if self.L_buf > self.L_max:
            raise fail("L_buf", repr(self.L_buf), f"a buffer no longer than L_max = {self.L_max}")
        positive(self.kappa, "kappa", allow_zero=True)


def model_length(mask, tool_mask=None) -> np.ndarray:
    """L_model (B,): the number of response tokens the model wrote, Σ_t M′ (code: info_mask sum)."""
    return model_token_mask(mask, tool_mask).sum(axis=1).astype(np.float64)


def tapo_overlong(mask, tool_mask=None, config: TAPOOverlongConfig | None = None) -> np.ndarray:
    """R_len (B,) = κ · min(((L_max − L_buf) − L_model)/L_buf, 0), tool output not counted in the length."""
    cfg = config or TAPOOverlongConfig()
    L = model_length(mask, tool_mask)
    return cfg.kappa * soft_overlong_penalty(L, float(cfg.L_max), float(cfg.L_buf), beyond_max="linear")


# --------------------------------------------------------------------------- reward
_BLOCK = re.compile(r"\s*<(\w+)>(.*?)</\1>\s*", re.DOTALL)


def parse_tags(text: str, tools: tuple[str, ...] = ("search", "code"), strict: bool = False) -> dict | None:
    """The tag sequence of a response, or None if it is malformed (code: ``check_format``).

    Well-formed: the (stripped) text is a sequence of ``<tag>…</tag>`` blocks, every tag in
    {think, response, answer} ∪ tools, the last one ``answer``, nothing after it. The code finds each next
    block with an unanchored search, so free text *before* a block is skipped (``strict=False``, default);
    ``strict=True`` also rejects any text between blocks other than whitespace. Returns {"tags": [...],
    "answer": text of the last answer block, "tool_calls": {tool: count}}. An empty text is malformed (the
    code would index an empty list there).
    """
    if not isinstance(text, str):
        raise fail("text", type(text).__name__, "a string")
    s = text.strip()
    allowed = {"think", "response", "answer", *tools}
    tags, answer, pos = [], None, 0
    while pos < len(s):
        m = _BLOCK.search(s, pos)  # code: re.search on the remaining text
        if m is None or (strict and m.start() != pos):
            return None
        tag = m.group(1).lower()
        if tag not in allowed:
            return None
        if tag == "answer":
            answer = m.group(2).strip()
        tags.append(tag)
        pos = m.end()
    if not tags or tags[-1] != "answer":
        return None
    return {"tags": tags, "answer": answer, "tool_calls": {t: tags.count(t) for t in tools}}


def normalize_answer(a: str) -> str:
    """Lower-case, strip, spelled numbers one..twelve → digits, thousands commas removed from integers."""
    words = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
             "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12"}
    a = a.strip().lower()
    a = words.get(a, a)
    if a.replace(",", "").isdigit():
        a = a.replace(",", "")
    return a.strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _number(s: str) -> complex | None:
    try:
        return complex(s)
    except ValueError:
        return None


def answer_score(pred: str, gt: str, source: str = "default") -> float:
    """s ∈ [0, 1] of one predicted answer against one ground truth (code: ``_check_score``).

    default/gsm8k/dapo_math/deep_math/aime*: exact match after normalisation; nq: 1 if gt ⊂ pred, else
    1 − Lev/max(len) when that ratio is < 0.5, else 0; calculator: |pred − gt| < 1e-3; complex: keep digits,
    '+', '-', '.' of pred, then |pred − gt|/|gt| < 0.05. A non-numeric prediction scores 0 where a number is
    expected.
    """
    p, g = normalize_answer(pred), normalize_answer(gt)
    if source in ("default", "gsm8k", "dapo_math", "deep_math") or source.startswith("aime"):
        return float(p == g)
    if source == "nq":
        if g in p:
            return 1.0
        ratio = levenshtein(p, g) / max(len(p), len(g))
        return 1.0 - ratio if ratio < 0.5 else 0.0
    if source in ("calculator", "complex"):
        gv = _number(g)
        if gv is None or (source == "complex" and gv == 0):
            raise fail("gt", repr(gt), "a number (a non-zero one for source='complex')")
        if source == "complex":
            p = "".join(ch for ch in p if ch.isdigit() or ch in "+-.")
        pv = _number(p)
        if pv is None:
            return 0.0
        return float(abs(pv - gv) < 1e-3) if source == "calculator" else float(abs(pv - gv) / abs(gv) < 0.05)
    raise fail("source", repr(source), "one of " + ", ".join(SOURCES) + " (or 'aime…')")


def tapo_score(text: str, gt, source: str = "default") -> tuple[float, bool]:
    """(score, acc) of one response (code: ``compute_score``): score = −1 if malformed, else the best
    :func:`answer_score` over the ground truths (the code scores the last 100 characters of the answer);
    acc = score > 0.9."""
    parsed = parse_tags(text)
    if parsed is None:
        return -1.0, False
    gts = [gt] if isinstance(gt, str) else list(gt)
    if not gts:
        raise fail("gt", "an empty list", "a ground-truth string or a non-empty list of them")
    ans = parsed["answer"][-100:]
    s = max(answer_score(ans, g, source) for g in gts)
    return s, s > 0.9


# --------------------------------------------------------------------------- dynamic sampling
def tapo_dynamic_sampling(acc, group) -> np.ndarray:
    """keep (B,) bool: DAPO's filter on the accuracy metric (code: ``filter_groups.metric=acc``): a group is
    kept iff its acc values are not all equal, or it has a single rollout (verl keeps those)."""
    a = finite_vector(acc, "acc")
    g = group_ids(group, a.shape[0])
    return informative_groups(a, g, DynamicSamplingConfig(keep_singletons=True).atol, True)


# --------------------------------------------------------------------------- registry
_CODE = "github.com/Goer17/TAPO"
EQUATIONS = (
    Equation("tapo-loss", "ℓ = −min(rÂ, clip(r, 1−ε_low, 1+ε_high)Â), ℓ ← min(ℓ, −cÂ) for Â<0; loss = Σ_{M∧¬U} c ℓ",
             "arXiv 2510.07038 (abstract: 'modified DAPO'); code verl/trainer/ppo/core_algos.py::compute_policy_loss",
             "official-code", "tapo_loss",
             note=f"{_CODE}: ε_low 0.2, ε_high 0.28, clip_ratio_c 10.0, token-mean, no KL, no entropy "
                  "(recipe/tapo/examples/tapo_single_node.sh); the surrogate is the registry's DAPO/PPO code"),
    Equation("tool-mask", "M′ = M ∧ ¬U: tool-output tokens carry no loss",
             "code recipe/tapo/src/llm_agent/generation.py (info_mask), verl/trainer/ppo/ray_trainer.py "
             "(response_mask = info_mask)", "official-code", "model_token_mask",
             note="in the code Â = 0 at tool tokens (GRPO advantage × info_mask) while the actor's token-mean "
                  "divides by the attention mask, which counts them: tool_in_denominator=True; the default "
                  "(False) removes them from the denominator as well — a third-party summary of the paper says "
                  "a binary mask zeroes their loss; the paper's normaliser could not be read"),
    Equation("tapo-overlong", "R_len = κ·min(((L_max − L_buf) − L_model)/L_buf, 0), L_model = Σ_t M′",
             "code verl/workers/reward_manager/dapo.py", "official-code", "tapo_overlong",
             note="L_max 2048, L_buf 1024, κ 1.0; the length excludes tool output (info_mask); DAPO's ramp with "
                  "verl's linear continuation (registry dapo_overlong, beyond_max='linear')"),
    Equation("tapo-reward", "r = −1 if malformed else max_gt s(answer, gt); acc = s > 0.9",
             "code verl/utils/reward_score/tool_dapo.py::compute_score, check_format, _check_score",
             "official-code", "tapo_score",
             note="no tool-count term; NQ uses 1 − Levenshtein/maxlen when < 0.5 off; calculator |Δ| < 1e-3; "
                  "complex relative error < 5%"),
    Equation("tapo-dynamic-sampling", "keep group iff std(acc) > 0 or |group| = 1",
             "code recipe/tapo/src/tcg_ray_trainer.py (filter_groups, metric=acc)", "official-code",
             "tapo_dynamic_sampling", note="filters on acc, not on the shaped reward; max_num_gen_batches = 10"),
    Equation("tapo-gradient", "∂loss/∂logp = −c·Â·r on the unclipped branch of M′; 0 where clipped and on U",
             "derived", "reconstructed", "tapo_loss", note="checked by central finite differences"),
)

register(Spec(
    name="tapo", kind="policy_loss", family="agentic", paper=TAPO_PAPER, status="implemented",
    summary="DAPO clip-higher loss (+ dual clip c = 10) on the model's own tokens only: tool-output tokens are "
            "masked out; overlong shaping on the model-token length, dynamic sampling on accuracy",
    fn=tapo_loss, config_cls=TAPOConfig, equations=EQUATIONS, outputs=("loss", "dlogp"), make_inputs=_tool_batch,
    extras={"model_token_mask": model_token_mask, "model_length": model_length, "tapo_overlong": tapo_overlong,
            "parse_tags": parse_tags, "answer_score": answer_score, "tapo_score": tapo_score,
            "tapo_dynamic_sampling": tapo_dynamic_sampling, "levenshtein": levenshtein,
            "conformance_configs": lambda: [("code-denominator", {"tool_in_denominator": True}),
                                            ("no-dual-clip", {"dual_clip_c": None}),
                                            ("dual-clip=3", {"dual_clip_c": 3.0}, "beyond-dual-clip")]},
    gradient="∂loss/∂logp = −c·Â·r on the unclipped branch of the model's tokens M′ = M ∧ ¬U; exactly 0 where the "
             "clip (r > 1+ε_high, Â>0; r < 1−ε_low, Â<0) or the dual-clip cap (Â<0, r > c) binds, and at every "
             "tool-output token; c = 1/|M′| (token-mean) or 1/|M| with tool_in_denominator",
    properties=(
        "properties/test_tapo.py::test_hand_gradient_matches_finite_differences: dlogp = central FD (both "
        "denominators, every aggregation mode, tool spans)",
        "properties/test_tapo.py::test_tool_tokens_have_exactly_zero_gradient_and_are_never_read: dlogp = 0 on U; "
        "NaN/garbage at tool positions changes nothing",
        "properties/test_tapo.py::test_no_tools_reduces_to_dapo: U ≡ ∅ and no dual clip ⇒ registry dapo exactly",
        "properties/test_tapo.py::test_no_tools_with_dual_clip_is_ppo_dual_clip: U ≡ ∅ ⇒ registry ppo with "
        "(0.2, 0.28, c=10)",
        "properties/test_tapo.py::test_tools_equal_dapo_on_the_model_tokens: TAPO(M, U) = DAPO(M ∧ ¬U)",
        "properties/test_tapo.py::test_code_denominator_is_ppo_with_zeroed_tool_advantage: the official pipeline "
        "(Â·info_mask, token-mean over the attention mask) is tool_in_denominator=True",
        "properties/test_tapo.py::test_sharded_losses_sum_to_the_full_batch: with the global |M′| (or |M|) as "
        "normaliser, shard losses and gradients add up to the full batch's",
        "properties/test_tapo.py::test_decoupled_clip_bounds: the effective ratio is capped at 1+ε_high for Â>0 "
        "and floored at 1−ε_low for Â<0; dual clip caps ℓ at −cÂ",
        "properties/test_tapo.py::test_overlong_piecewise_linear_in_model_tokens: R_len is 0, then −1/L_buf per "
        "model token; tool tokens do not count",
        "properties/test_tapo.py::test_dynamic_sampling_keeps_only_informative_groups: every retained group has "
        "acc variance > 0 (or one rollout), hence a non-zero GRPO advantage",
        "properties/test_tapo.py::test_format_checker: −1 on malformed tag sequences, answer extracted otherwise",
        "properties/test_tapo.py::test_answer_scores: exact / NQ Levenshtein / calculator / complex rules",
        "properties/test_tapo.py::test_reward_has_no_tool_count_term: extra tool calls never change the reward",
        "properties/test_tapo.py::test_composition_grpo_advantage_into_tapo_loss: reward → filter → grpo → tapo",
        "properties/test_tapo.py::test_toy_tool_bandit_learns_the_optimal_tool_policy: seeded run reaches the "
        "optimum of a two-question tool bandit",
        "properties/test_tapo.py::test_bad_input_raises",
        "properties/test_tapo.py::test_optimized_matches_reference_with_tools: torch = reference on tool batches",
        "properties/test_envs_tool_bandit.py::test_expected_reward_is_the_policy_average_and_bounded_by_the_optimum: "
        "the toy's exact J and J*",
        "untested: TAPO's benchmark gains, 'more efficient tool utilization' and fewer excessive calls on "
        "Qwen2.5-3B/7B — empirical claims about LLM training runs, not checkable on a CPU toy",
    ),
))

"""IGPO: Inpainting-Guided Policy Optimization for masked diffusion LLMs.

Zhao, Liu, Huang, Liu, Wang, Liu, Tian, Pang, Bell, Grover, Chen, "Inpainting-Guided Policy Optimization for
Diffusion Large Language Models", arXiv 2509.10396 (ICLR 2026). Official code: github.com/facebookresearch/igpo,
read: ``trainer_igpo.py`` (``_generate_and_score_completions``: all-wrong trigger, inpainting ratios,
replacement, entropy filter, advantages; ``compute_loss``), ``utils/generate.py``
(``generate_inpainting``, ``create_spacing_scaled_inpainting_sequence``), ``utils/diffu_grpo_config.py`` and
``run_igpo.sh``. Only the paper's abstract and third-party summaries of its method were readable to us
(Fig. 2 caption; A_i = r_i − mean_j r_j); every formula below was confirmed in the official code.

Place in the pipeline: WHICH ROLLOUTS ARE KEPT (between the reward and the advantage) and WHICH TOKENS
COUNT in the loss. For a prompt whose G sampled responses are all wrong (every A_i = 0, no gradient), the
masked diffusion model is sampled G more times with part of the reference reasoning y* fixed in place
(inpainting: those "hint" tokens are never masked, the model fills the rest); up to ``max_replacements``
correct inpainted responses replace original ones; GRPO then sees a group with reward variance::

    trigger      all G responses of the group wrong (correctness 0)
    ratios       ρ_1 ≤ … ≤ ρ_G: G draws of U[ρ_low, ρ_high], sorted            (code: 0.2 … 0.6, run_igpo.sh)
    hints        y* cut into chunks of U{min_chunk..max_chunk} tokens (a tail shorter than min_chunk is
                 dropped); int(n_chunks·(1 − ρ)) chunks chosen at random are hidden, the others revealed
    replace      k = min(#correct inpainted, max_replacements) (code: 4); the first k rows of the group
                 take k correct inpainted responses (a random subset if more are correct)
    advantage    A_i = r_i − mean_group r  (no std division in the code)        (GRPO on the mixed group)
    entropy      among a row's loss positions that are hint tokens, keep the top max(1, int(n·q)) by the
    filter       policy's entropy (q = 0.2); self-generated tokens always count
    loss         PPO clip (ε = 0.2 both sides, run_igpo.sh), token mean over the kept positions, + β·k3 KL

Entropy filter, exactly: for row b let C_b = mask_b ∧ hint_b, n_b = |C_b|; if n_b > 0 keep the
k_b = max(1, ⌊n_b·q⌋) positions of C_b with the largest entropy, ties broken by position (the earlier
position first — the code's ``torch.topk`` leaves ties unspecified); ⌊n·q⌋ is computed in floating point
as the code's ``int(n * q)``. keep = mask ∧ (¬hint ∨ top-k). Rows without hint tokens are unchanged.

Registry entries:

* ``igpo_inpainting`` (curriculum): (rewards, group, mask, inpaint_rewards) → (rewards', source, adv):
  replacement in all-wrong groups, then the group advantage. ``source[b]`` = −1 if row b keeps its own
  response, else the row index of the inpainted response now in row b (same group). The caller moves
  that response's tokens and hint mask into row b.
* ``igpo_inpainting_loss`` (policy_loss): the clipped loss on the entropy-filtered mask, with extra keyword
  inputs ``hint_mask`` (B, T) bool and ``entropy`` (B, T); without ``hint_mask`` it is PPO's loss.

Paper vs code, and conventions (each an option):

* the code's run script trains with GSPO's sequence ratio, s_b = exp(mean_t (logp − old_logp)) over the
  row's loss positions before filtering (``ratio="sequence"``); the default is GRPO's token ratio, the base
  method the paper names (``ratio="token"``);
* the code's trigger is the whole per-device batch being wrong (one prompt of 8 rollouts per device in
  the run script); here it is per group;
* the code draws the inpainted responses to use at random (``select="random"`` with an rng); the default
  takes the first correct ones in batch order (``select="first"``) — with verifier rewards every choice
  gives the same rewards and advantages (tested);
* the code makes one inpainting attempt (``max_resamples = 0``); no resampling is built;
* β = 0.01 in the run script, 0 in ``train.yaml`` (default 0); ε = 0.15 in ``train.yaml``, 0.2 in the
  run script (default 0.2); G = 8 (run script);
* correctness is binary: ``correct`` defaults to rewards ≥ ``success_reward``; the code's total reward
  adds format rewards, which is why a separate ``correct`` may be passed.

Not built: the masked-diffusion sampler itself (LLaDA's semi-autoregressive low-confidence remasking, the
hint chunks laid out at positions stretched by a factor in [1, 1.5] with the last 30 tokens left free) —
a user callable in :func:`igpo_rollouts`, a factorised toy in :mod:`rlspec.reference.envs.masked_diffusion`;
the Length-Aligned SFT stage on LLM-rewritten traces (data preparation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import (
    as_mask,
    choice,
    fail,
    finite_vector,
    group_ids,
    in_range,
    masked_array,
    policy_batch,
    positive,
)
from rlspec.reference.grpo import GRPOConfig, broadcast_to_tokens, grpo_outcome_advantage
from rlspec.reference.ppo import PPOConfig, clipped_surrogate
from rlspec.reference.registry import Equation, Paper, Spec, register

IGPO_PAPER = Paper(arxiv="2509.10396", title="Inpainting-Guided Policy Optimization for Diffusion Large Language "
                   "Models", year=2025)


def _int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise fail(name, repr(value), f"an integer ≥ {lo}")
    return int(value)


@dataclass(frozen=True)
class IGPOConfig:
    """max_replacements: correct inpainted responses put into an all-wrong group (run_igpo.sh: 4; config
    field default 1). ratio_low/ratio_high: hint fraction ρ ~ U[low, high] (run script 0.2 / 0.6).
    min_chunk/max_chunk: hint chunk sizes in tokens (run script 5 / 10). select: "first" or "random"
    (code) correct inpainted responses. success_reward: a response is correct iff its reward ≥ this (when
    ``correct`` is not passed). std_normalize/ddof/eps: GRPO's z-score instead of the code's r − mean."""

    max_replacements: int = 4
    ratio_low: float = 0.2
    ratio_high: float = 0.6
    min_chunk: int = 5
    max_chunk: int = 10
    select: str = "first"
    success_reward: float = 1.0
    std_normalize: bool = False
    ddof: int = 1
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _int(self.max_replacements, "max_replacements", 0)
        in_range(self.ratio_low, "ratio_low", 0.0, 1.0)
        in_range(self.ratio_high, "ratio_high", 0.0, 1.0)
        if self.ratio_high < self.ratio_low:
            raise fail("ratio_high", repr(self.ratio_high), f"≥ ratio_low = {self.ratio_low}")
        _int(self.min_chunk, "min_chunk", 1)
        if _int(self.max_chunk, "max_chunk", 1) < self.min_chunk:
            raise fail("max_chunk", repr(self.max_chunk), f"≥ min_chunk = {self.min_chunk}")
        choice(self.select, "select", ("first", "random"))
        if not math.isfinite(float(self.success_reward)):
            raise fail("success_reward", repr(self.success_reward), "a finite number")
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 or 1")
        positive(self.eps, "eps", allow_zero=True)


@dataclass(frozen=True)
class IGPOLossConfig(PPOConfig):
    """PPO fields (agg token-mean = the code's sum / count over kept positions; ε = 0.2 both sides, run script)
    plus keep_ratio: fraction q of hint tokens kept by entropy (code 0.2); ratio: "token" (GRPO) or
    "sequence" (the code's GSPO switch, on in run_igpo.sh); beta: k3 KL weight (0 in train.yaml, 0.01 in the
    run script; needs ref_logp)."""

    keep_ratio: float = 0.2
    ratio: str = "token"
    beta: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        in_range(self.keep_ratio, "keep_ratio", 0.0, 1.0)
        choice(self.ratio, "ratio", ("token", "sequence"))
        positive(self.beta, "beta", allow_zero=True)


# ---------------------------------------------------------------------------- inpainting hints


def inpaint_ratios(G: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """ρ_1 ≤ … ≤ ρ_G: G draws of U[low, high], sorted (code: ``torch.rand(G)·(high − low) + low``, sorted)."""
    return np.sort(rng.random(_int(G, "G", 0)) * (high - low) + low)


def chunk_spans(length: int, min_chunk: int, max_chunk: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Cut [0, length) into consecutive chunks of U{min_chunk..max_chunk} tokens; the walk stops at a
    remaining piece shorter than min_chunk (those tokens are in no chunk). Code: ``create_spacing_scaled_...``."""
    spans, i = [], 0
    while i < length:
        size = min(int(rng.integers(min_chunk, max_chunk + 1)), length - i)
        if size < min_chunk:
            break
        spans.append((i, i + size))
        i += size
    return spans


def n_revealed(n_chunks: int, rho: float) -> int:
    """Chunks revealed at hint ratio ρ: n − int(n·(1 − ρ)) (code: ``num_chunks_to_mask = int(total·mask_ratio)``),
    0 for ρ ≤ 0 and n for ρ ≥ 1."""
    if rho <= 0.0:
        return 0
    if rho >= 1.0:
        return n_chunks
    return n_chunks - int(n_chunks * (1.0 - rho))


def hint_positions(length: int, rho: float, min_chunk: int, max_chunk: int, rng: np.random.Generator) -> np.ndarray:
    """(length,) bool over the reference trace y*: the tokens given as hints at ratio ρ (chunks chosen uniformly)."""
    spans = chunk_spans(length, min_chunk, max_chunk, rng)
    hint = np.zeros(length, dtype=bool)
    if not spans:
        return hint
    k = n_revealed(len(spans), rho)
    for c in rng.choice(len(spans), size=k, replace=False):
        hint[spans[c][0]:spans[c][1]] = True
    return hint


# ---------------------------------------------------------------------------- replacement and advantage


def all_wrong_groups(correct: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(B,) bool: the row's group has no correct response (the zero-advantage trigger)."""
    out = np.zeros_like(correct, dtype=bool)
    for k in np.unique(g):
        rows = g == k
        out[rows] = not correct[rows].any()
    return out


def replace_with_inpainted(r: np.ndarray, g: np.ndarray, correct: np.ndarray, r_inp: np.ndarray,
                           correct_inp: np.ndarray, max_replacements: int, select: str = "first",
                           rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(r' (B,), source (B,) int) — in every all-wrong group, the first k rows (batch order) take k correct
    inpainted responses of that group, k = min(#correct inpainted, max_replacements); source = −1 elsewhere."""
    r2 = r.copy()
    source = np.full(r.shape[0], -1, dtype=np.int64)
    wrong = all_wrong_groups(correct, g)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        if not wrong[rows[0]]:
            continue
        good = rows[correct_inp[rows]]
        n = min(good.size, max_replacements)
        if n == 0:
            continue
        use = good[:n] if select == "first" else rng.choice(good, size=n, replace=False)
        r2[rows[:n]] = r_inp[use]
        source[rows[:n]] = use
    return r2, source


def group_advantage(r: np.ndarray, g: np.ndarray, cfg: IGPOConfig) -> np.ndarray:
    """A_i = r_i − mean_group r (code), or GRPO's (r − mean)/(std + ε) with ``std_normalize`` (B,)."""
    return grpo_outcome_advantage(r, g, GRPOConfig(std_normalize=cfg.std_normalize, ddof=cfg.ddof, eps=cfg.eps))


def _correct(correct: Any, r: np.ndarray, cfg: IGPOConfig, name: str) -> np.ndarray:
    if correct is None:
        return r >= cfg.success_reward
    c = np.asarray(correct)
    if c.shape != r.shape or c.dtype != np.bool_:
        raise fail(name, f"{c.dtype} {c.shape}", f"a bool array of shape {r.shape}")
    return c


def igpo_inpainting(rewards, group, mask, inpaint_rewards, correct=None, inpaint_correct=None,
                    config: IGPOConfig | None = None, rng: np.random.Generator | None = None):
    """The registry entry: inpainting replacement in all-wrong groups, then the group advantage.

    Args: rewards (B,), group (B,) int, mask (B, T) bool; inpaint_rewards (B,): reward of the inpainted
    response generated for each row (same group); correct / inpaint_correct (B,) bool, default
    reward ≥ success_reward; rng for ``select="random"``.
    Returns: (rewards' (B,), source (B,) int, adv (B, T) zero at masked positions).
    """
    cfg = config or IGPOConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    B = M.shape[0]
    R = finite_vector(rewards, "rewards", B)
    g = group_ids(group, B)
    R_inp = finite_vector(inpaint_rewards, "inpaint_rewards", B)
    c = _correct(correct, R, cfg, "correct")
    c_inp = _correct(inpaint_correct, R_inp, cfg, "inpaint_correct")
    if cfg.select == "random" and rng is None:
        raise fail("rng", "None", 'a numpy Generator when select="random"')
    R2, source = replace_with_inpainted(R, g, c, R_inp, c_inp, cfg.max_replacements, cfg.select, rng)
    return R2, source, broadcast_to_tokens(group_advantage(R2, g, cfg), M)


def igpo_rollouts(prompt_group: int, G: int, sample: Callable[[np.ndarray | None], Any],
                  verify: Callable[[Any], float], trace_length: int, config: IGPOConfig | None = None,
                  rng: np.random.Generator | None = None) -> dict[str, Any]:
    """One group through IGPO's sampling, with user callables for the LLM parts.

    ``sample(hint)`` draws one response given a (trace_length,) bool hint mask over y* (None: no hint);
    ``verify(response)`` returns its reward. Returns the group's responses, rewards, the inpainted responses
    and rewards (only when all G responses were wrong) and the hint masks used.
    """
    cfg = config or IGPOConfig()
    rng = rng or np.random.default_rng()
    resp = [sample(None) for _ in range(G)]
    rew = np.array([verify(x) for x in resp], dtype=np.float64)
    out = {"group": prompt_group, "responses": resp, "rewards": rew, "inpainted": None,
           "inpaint_rewards": None, "hints": None}
    if (rew >= cfg.success_reward).any():
        return out
    hints = [hint_positions(trace_length, rho, cfg.min_chunk, cfg.max_chunk, rng)
             for rho in inpaint_ratios(G, cfg.ratio_low, cfg.ratio_high, rng)]
    inp = [sample(h) for h in hints]
    out.update(inpainted=inp, inpaint_rewards=np.array([verify(x) for x in inp], dtype=np.float64), hints=hints)
    return out


# ---------------------------------------------------------------------------- entropy filter and loss


def kept_count(n: int, q: float) -> int:
    """max(1, int(n·q)) hint tokens kept out of n > 0 (0 when n = 0) — code ``top_k``."""
    return 0 if n == 0 else max(1, int(n * q))


def entropy_filter(mask: np.ndarray, hint: np.ndarray, H: np.ndarray, q: float) -> np.ndarray:
    """keep (B, T) bool = mask ∧ (¬hint ∨ top-k_b entropy among the row's hint tokens), ties → earlier position."""
    keep = mask & ~hint
    T = mask.shape[1]
    for b in range(mask.shape[0]):
        cand = np.flatnonzero(mask[b] & hint[b])
        k = kept_count(cand.size, q)
        if k:
            order = np.lexsort((cand, -H[b, cand]))            # entropy descending, then position ascending
            keep[b, cand[order[:k]]] = True
    assert keep.shape == (mask.shape[0], T)
    return keep


def _loss_inputs(mask: np.ndarray, hint_mask: Any, entropy: Any) -> tuple[np.ndarray, np.ndarray]:
    if hint_mask is None:
        return np.zeros_like(mask), np.zeros(mask.shape)
    hint = as_mask(hint_mask, "hint_mask", mask.shape)
    cand = mask & hint
    if entropy is None:
        if cand.any():
            raise fail("entropy", "None", "token entropies (B, T) where hint_mask and mask are True")
        return hint, np.zeros(mask.shape)
    H = masked_array(entropy, "entropy", cand)
    if (H[cand] < 0).any():
        raise fail("entropy", f"a negative value {H[cand].min()!r}", "entropies ≥ 0 at hint positions")
    return hint, H


def k3_kl(logp: np.ndarray, ref_logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k3 = e^{ref − logp} − (ref − logp) − 1 per token and ∂k3/∂logp = 1 − e^{ref − logp} (code compute_loss)."""
    d = ref_logp - logp
    e = np.exp(d)
    return e - d - 1.0, 1.0 - e


def igpo_inpainting_loss(logp, old_logp, adv, mask, ref_logp=None, config: IGPOLossConfig | None = None,
                         hint_mask=None, entropy=None, group=None):
    """IGPO's policy loss: PPO clip on the entropy-filtered mask (+ β·k3), with its hand gradient.

    Args: logp, old_logp, adv (B, T); mask (B, T) bool (the row's loss positions before filtering);
    hint_mask (B, T) bool: inpainted hint tokens (None = none); entropy (B, T): the policy's token entropy
    from the no-grad pass that gives old_logp (as in the code), read only at hint positions; ref_logp needed when
    beta > 0; group only for agg='group-token-mean'.
    Returns: (loss, dlogp (B, T)), dlogp zero outside the kept positions (token ratio) or outside mask.
    """
    cfg = config or IGPOLossConfig()
    logp, old_logp, adv, mask, ref = policy_batch(logp, old_logp, adv, mask, ref_logp)
    if cfg.beta > 0 and ref is None:
        raise fail("ref_logp", "None", "reference log-probs when beta > 0")
    hint, H = _loss_inputs(mask, hint_mask, entropy)
    keep = entropy_filter(mask, hint, H, cfg.keep_ratio)                    # (B, T)
    c = common.agg_coefficients(keep, cfg, group)                           # zero off keep
    if cfg.ratio == "token":
        r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
        ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
        loss, dlogp = float((c * np.where(keep, ell, 0.0)).sum()), c * np.where(keep, dell_dr * dr, 0.0)
    else:                                                                   # the code's GSPO switch
        n = mask.sum(axis=1).astype(np.float64)
        mean_lr = np.divide(np.where(mask, logp - old_logp, 0.0).sum(axis=1), n, out=np.zeros(n.shape), where=n > 0)
        lr, inside = common.log_ratio(mean_lr, np.zeros_like(mean_lr), cfg.log_ratio_clamp)
        s, _ = common.ratio(lr, np.zeros_like(lr))                          # (B,)
        ell, dell_ds = clipped_surrogate(np.broadcast_to(s[:, None], adv.shape), adv, cfg.eps_low, cfg.eps_high)
        loss = float((c * np.where(keep, ell, 0.0)).sum())
        per_row = (c * np.where(keep, dell_ds, 0.0)).sum(axis=1)            # Σ_t c ∂ℓ/∂s
        ds = np.divide(s * inside, n, out=np.zeros_like(s), where=n > 0)   # ∂s/∂logp_t = s/n
        dlogp = np.where(mask, (per_row * ds)[:, None], 0.0)
    if cfg.beta > 0:
        kl, dkl = k3_kl(logp, ref)
        loss += cfg.beta * float((c * np.where(keep, kl, 0.0)).sum())
        dlogp = dlogp + cfg.beta * c * np.where(keep, dkl, 0.0)
    return loss, dlogp


# ---------------------------------------------------------------------------- registry


def make_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Groups of binary rewards, often all wrong; inpainted rewards correct with probability 0.4."""
    P = int(rng.integers(1, 5))
    G = int(rng.integers(1, 7))
    B = P * G
    group = np.repeat(rng.permutation(np.arange(-3, 3 * P))[:P], G)
    if rng.random() < 0.5:
        perm = rng.permutation(B)
        group = group[perm]
    T = int(rng.integers(1, 6))
    p = rng.choice([0.0, 0.1, 0.5])
    rewards = (rng.random(B) < p).astype(np.float64)
    inpaint = (rng.random(B) < 0.4).astype(np.float64)
    lengths = rng.integers(0, T + 1, size=B)
    return {"rewards": rewards, "group": group, "mask": np.arange(T)[None, :] < lengths[:, None],
            "inpaint_rewards": inpaint}


def make_loss_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A ragged policy batch with hint tokens (some replaced rows), tied entropies and garbage padding."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    logp = -rng.exponential(1.0, size=(B, T))
    old = logp + rng.normal(scale=rng.choice([0.05, 0.3]), size=(B, T))
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)
    hint = (rng.random((B, T)) < 0.5) & (rng.random((B, 1)) < 0.6)
    H = np.round(rng.uniform(0.0, 2.0, size=(B, T)), 1)        # ties on purpose
    for x in (logp, old, adv, H):
        x[~mask] = np.nan
    return {"logp": logp, "old_logp": old, "adv": adv, "mask": mask, "hint_mask": hint, "entropy": H}


_CODE = "official code trainer_igpo.py"
EQUATIONS = (
    Equation("trigger", "inpaint iff every response of the group is wrong (A ≡ 0)",
             "arXiv 2509.10396 abstract, Fig. 2 (via a summary)", "official-code", "all_wrong_groups",
             note=f"{_CODE} _evaluate_completions: all_wrong = (correctness == 0).all() over the per-device batch "
                  "(one group per device in run_igpo.sh); here per group"),
    Equation("ratios", "ρ_1 ≤ … ≤ ρ_G ~ U[ρ_low, ρ_high] sorted; ρ ∈ [0.2, 0.6]",
             f"{_CODE} _generate_and_score_completions; run_igpo.sh", "official-code", "inpaint_ratios",
             note="config field defaults 0.1 / 0.5; the run script's 0.2 / 0.6 are our defaults"),
    Equation("hints", "y* → chunks of U{5..10} tokens (short tail dropped); reveal n − int(n(1 − ρ)) random chunks",
             "official code utils/generate.py create_spacing_scaled_inpainting_sequence; run_igpo.sh "
             "(min/max_chunk_size 5 / 10)", "official-code", "hint_positions",
             note="the layout of revealed chunks in the generation area (stretch factor in [1, 1.5], last 30 "
                  "tokens free) is a sampler detail, not built"),
    Equation("replace", "k = min(#correct inpainted, 4); rows 1..k of the group ← k correct inpainted responses",
             "arXiv 2509.10396 Fig. 2 ('replace a fraction of the incorrect responses', via a summary)",
             "official-code", "replace_with_inpainted",
             note=f"{_CODE}: max_replacements = 4 (run script; field default 1), a random subset via randperm "
                  "when more are correct (select='random'), max_resamples = 0 (no second attempt)"),
    Equation("advantage", "A_i = r_i − (1/G) Σ_j r_j on the mixed group",
             "arXiv 2509.10396, background (via a third-party summary: "
             "A_i = r(o_i) − mean_j r(o_j))", "official-code", "group_advantage",
             note=f"{_CODE}: advantages = rewards − mean_grouped_rewards, std computed but unused; "
                  "std_normalize=True gives GRPO's z-score"),
    Equation("entropy-filter", "keep = mask ∧ (¬hint ∨ top-k entropy of the row's hint tokens), "
             "k = max(1, int(n·0.2))", "arXiv 2509.10396 abstract (entropy-based filtering)", "official-code",
             "entropy_filter",
             note=f"{_CODE} (after the old log-probs): per iteration and row, torch.topk over masked ∧ inpainted "
                  "positions; ties unspecified in torch, earlier position first here"),
    Equation("loss", "ℓ = −min(r A, clip(r, 1 − ε, 1 + ε) A) + β k3; L = Σ_kept ℓ / #kept;  ε = 0.2",
             f"{_CODE} compute_loss; run_igpo.sh (epsilon_low = epsilon_high = 0.2, beta 0.01)", "official-code",
             "igpo_inpainting_loss",
             note="train.yaml: ε = 0.15, β = 0; run_igpo.sh sets use_gspo=true: the sequence ratio "
                  "exp(mean_t log r) over the row's positions (ratio='sequence'); token ratio by default"),
    Equation("k3", "k3 = e^{ref − logp} − (ref − logp) − 1,  ∂k3/∂logp = 1 − e^{ref − logp}",
             f"{_CODE} compute_loss", "official-code", "k3_kl"),
)

_T = "properties/test_igpo_inpainting.py::"
_ENV_T = "properties/test_envs_masked_diffusion.py::"

register(Spec(
    name="igpo_inpainting", kind="curriculum", family="diffusion-llm", paper=IGPO_PAPER, status="implemented",
    summary="between the reward and the advantage: in groups whose responses are all wrong, up to 4 correct "
            "responses sampled with part of the reference reasoning inpainted replace the first rows; then "
            "A = r − mean over the mixed group",
    fn=igpo_inpainting, config_cls=IGPOConfig, equations=EQUATIONS[:5], outputs=("rewards", "source", "adv"),
    make_inputs=make_inputs,
    extras={"figures": (("img/igpo_inpainting.png", "Toy masked diffusion (L = 4, V = 3, exact-match reward, start "
                                                    "P(correct) = 1e-4): exact success probability under IGPO and "
                                                    "plain GRPO, 3 seeds"),),
            "inpaint_ratios": inpaint_ratios, "chunk_spans": chunk_spans, "hint_positions": hint_positions,
            "n_revealed": n_revealed, "replace_with_inpainted": replace_with_inpainted,
            "igpo_rollouts": igpo_rollouts,
            "conformance_configs": lambda: [("max_replacements=1", {"max_replacements": 1}),
                                            ("std", {"std_normalize": True, "ddof": 0, "eps": 0.0})]},
    gradient="not a loss: it changes which responses (and rewards) enter the group advantage; the loss is "
             "igpo_inpainting_loss (PPO on the entropy-filtered mask)",
    properties=(
        _T + "test_replacement_restores_nonzero_advantage: all-wrong binary group with k correct inpainted → "
             "A_correct = 1 − k'/G, A_wrong = −k'/G, k' = min(k, max_replacements), Σ A = 0",
        _T + "test_only_all_wrong_groups_change_and_first_rows_are_replaced",
        _T + "test_random_selection_gives_the_same_rewards_and_advantages",
        _T + "test_inpaint_ratios_chunks_and_revealed_counts",
        _T + "test_revealed_count_law_matches_the_exact_distribution",
        _T + "test_igpo_restores_gradients_on_the_toy: P(non-zero advantage) = 1 − (1−p)^G − p^G for GRPO and "
             "+ (1−p)^G (1 − (1−q)^G) for IGPO, exact vs 4 000 seeded groups",
        _T + "test_ratio_zero_is_grpo_with_resampling: ρ_high = 0 gives no hint token; the loss is PPO's",
        _T + "test_composition_grpo_ppo: registry grpo (Dr. GRPO) + ppo on the mixed group: zero gradient "
             "before, non-zero after",
        _T + "test_igpo_learns_where_grpo_is_stuck: seeded toy (L = 4, V = 3, p₀ = 1e-4): IGPO reaches success "
             "≥ 0.9, GRPO stays ≤ 0.01",
        _T + "test_igpo_rollouts_with_callables: hints only for an all-wrong group, sizes following the sorted ratios",
        _T + "test_optimized_matches_reference",
        _T + "test_bad_input_raises",
        _ENV_T + "test_random_order_unmasking_samples_the_product_law",
        _ENV_T + "test_success_and_token_quantities",
        _ENV_T + "test_hint_count_law_is_the_integrated_ratio_law",
        _ENV_T + "test_inpaint_success_matches_monte_carlo",
        "untested: GSM8K / Math500 / AMC gains, the ≈60 % fewer all-wrong groups, and the ablations "
        "(partial vs full inpainting, entropy-filter q, Length-Aligned SFT) — empirical results of LLaDA "
        "training runs",
    ),
))

register(Spec(
    name="igpo_inpainting_loss", kind="policy_loss", family="diffusion-llm", paper=IGPO_PAPER, status="implemented",
    summary="IGPO's loss: PPO clip (ε = 0.2) where, among inpainted hint tokens, only the top 20 % by entropy "
            "count (ties → earlier position); self-generated tokens always count; optional GSPO ratio and k3 KL",
    fn=igpo_inpainting_loss, config_cls=IGPOLossConfig, equations=EQUATIONS[5:], outputs=("loss", "dlogp"),
    make_inputs=make_loss_inputs,
    extras={"entropy_filter": entropy_filter, "kept_count": kept_count,
            "conformance_configs": lambda: [("sequence", {"ratio": "sequence"}),
                                            ("keep=0.5,eps=0.15", {"keep_ratio": 0.5, "eps_low": 0.15,
                                                                   "eps_high": 0.15})]},
    gradient="∂ℓ/∂logp = −A·r on the unclipped branch, 0 where the clip binds, times the aggregation coefficient "
             "of the KEPT positions (filtered hint tokens get 0); sequence ratio: ∂L/∂logp_bt = (Σ_t' c ∂ℓ/∂s)·s_b/n_b "
             "at every position of the row; k3: β(1 − e^{ref − logp})",
    properties=(
        _T + "test_entropy_filter_keeps_the_stated_fraction: per row exactly max(1, ⌊n·q⌋) hint tokens, the top "
             "ones by (entropy ↓, position ↑); every self-generated token kept",
        _T + "test_filtered_hint_tokens_get_no_gradient",
        _T + "test_without_hints_the_loss_is_ppo",
        _T + "test_loss_gradient_matches_finite_differences: token and sequence ratio, β > 0, garbage padding",
        _T + "test_optimized_matches_reference",
        _T + "test_bad_input_raises",
    ),
))

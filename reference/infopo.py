"""InfoPO: Information-Driven Policy Optimization for user-centric agents (partial).

Kong, Zhang, Deng, Wu, Luo, Liu, "InfoPO: Information-Driven Policy Optimization for User-Centric Agents",
arXiv 2603.00656 (ICML 2026). Official code: github.com/kfq20/InfoPO — NOT readable here (no snapshot).

Provenance, honestly: the abstract (read) states the mechanism in words — a turn-level information-gain reward
that credits turns whose feedback changes the agent's subsequent action distribution compared with a
masked-feedback counterfactual, fused with the task outcome by an adaptive variance-gated fusion. The exact forms
below come from our notes (papers_B.md §5), which took them from a detailed third-party write-up: ``secondary``.
Public summaries (read) agree on the counterfactual (feedback replaced by a "no information" placeholder, one
extra teacher-forced forward pass per turn, ~1.6× wall clock) and on the gate's behaviour (information weighted
up when outcomes are uninformative). Not recovered (hence ``partial``): the values of β and T, whether μ/σ of the
information advantage are taken over the group's turns or the batch's (option ``info_scope``), which turns are
valid, the std convention, and the paper's precise theorem statements.

Where it sits in the pipeline: REWARD (r^info per turn, from two teacher-forced log-prob streams of the next
action: with the real feedback and with the placeholder) → ADVANTAGE (outcome GRPO advantage + gated, group-
normalized information advantage) → PPO/GRPO clipped loss.

Setting and notation: trajectory i has agent turns k = 0 … n_i − 1 (``turn`` (B, T), −1 outside trainable turns,
n_i = 1 + the largest turn index among valid tokens). After turn k the user/environment returns feedback o_k;
the next action y = a_{k+1} is the tokens of turn k + 1. Two log-prob streams of those tokens are inputs:

    logp_obs[i, t]    = log π_θ(y_t | h_k, o_k, y_<t)       real feedback (the rollout's own log-probs)
    logp_masked[i, t] = log π_θ(y_t | h_k, ∅, y_<t)         o_k replaced by the placeholder ∅ (counterfactual)

both read only at valid tokens of turns k + 1 ≥ 1. Computing them needs the model: ``counterfactual_logps``
takes a user-supplied scorer and builds both streams from text segments.

    r^info_{i,k}  = (1/L) Σ_{t ∈ turn k+1} [logp_obs − logp_masked]      k = 0 … n_i − 2 (valid: both turns have
                                                                         tokens); the last turn has no r^info
    A^ext_i       = (R_i − μ^ext_g)/(σ^ext_g + ε)                         GRPO outcome advantage
    A^info_{i,k}  = (r^info_{i,k} − μ^info)/(σ^info + ε)                  over the valid turns of the group (or batch)
    g(σ)          = sigmoid(−σ/T) ∈ (0, 1/2]                             variance gate, g(0) = 1/2
    Â_{i,t}       = A^ext_i + β g(σ^ext_g) A^info_{i,turn_t}              token advantage (A^info = 0 on the last turn)

Theory (checked in properties/, exact enumeration): E_{o, y ~ π(·|h,o)}[r^info] = I_θ(O; Y | H = h) + KL(p̄ ‖ π(·|h,∅))
with p̄ = E_o π(·|h, o) (per token with the 1/L of a fixed length); so E[r^info] ≥ I ≥ 0, with equality to the
mutual information (the paper's claim) iff the masked policy equals the feedback-marginal policy.

Defined cases: σ^ext = 0 (all outcomes equal, or one rollout) ⇒ A^ext = 0 and g = 1/2, so Â = (β/2) A^info — the
information signal carries the update exactly when the outcome cannot; a group with fewer than two valid turns or
all-equal r^info gets A^info = 0; a row without valid tokens gets 0; masked positions are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import as_2d, as_mask, choice, fail, finite_vector, positive
from rlspec.reference.a2tgpo import turn_broadcast, turn_counts, validate_turn
from rlspec.reference.grpo import GRPOConfig, group_stats, grpo_outcome_advantage, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

INFOPO_PAPER = Paper(arxiv="2603.00656", title="InfoPO: Information-Driven Policy Optimization for User-Centric "
                     "Agents", year=2026)
PLACEHOLDER = "No information found."
INFO_SCOPES = ("group", "batch")


@dataclass(frozen=True)
class InfoPOConfig:
    """InfoPO. beta: β ≥ 0, weight of the gated information advantage (1.0, reconstructed: not recovered).
    temperature: T > 0 of the gate sigmoid(−σ/T) (1.0, reconstructed). ddof / eps / singleton: the std convention,
    ε and lone rollouts of both normalizers (1 / 1e-6 / "zero": verl's GRPO defaults, reconstructed).
    info_scope: "group" (the prompt group's valid turns, our notes) or "batch" (all valid turns)."""

    beta: float = 1.0
    temperature: float = 1.0
    ddof: int = 1
    eps: float = 1e-6
    singleton: str = "zero"
    info_scope: str = "group"

    def __post_init__(self) -> None:
        positive(self.beta, "beta", allow_zero=True)
        positive(self.temperature, "temperature")
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.singleton, "singleton", ("zero", "mean0std1"))
        choice(self.info_scope, "info_scope", INFO_SCOPES)


# --------------------------------------------------------------------------- information reward
def turn_token_counts(turn: np.ndarray, live: np.ndarray, K: int) -> np.ndarray:
    """(B, K) number of live tokens of each turn."""
    c = np.zeros((turn.shape[0], K), dtype=np.int64)
    for k in range(K):
        c[:, k] = (live & (turn == k)).sum(axis=1)
    return c


def valid_turns(counts: np.ndarray) -> np.ndarray:
    """(B, K) bool: turn k has an information reward — it and the next turn k + 1 both have live tokens."""
    v = np.zeros(counts.shape, bool)
    if counts.shape[1] > 1:
        v[:, :-1] = (counts[:, :-1] > 0) & (counts[:, 1:] > 0)
    return v


def _read_positions(turn: np.ndarray, live: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, T) bool: live tokens of a turn k + 1 whose turn k is valid (where the two streams are read)."""
    prev = np.where(live & (turn >= 1), turn - 1, 0)
    return live & (turn >= 1) & np.take_along_axis(valid, prev, axis=1) if valid.shape[1] else np.zeros_like(live)


def info_gain(d: np.ndarray, turn: np.ndarray, read: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """r^info (B, K): r_{i,k} = mean of d = logp_obs − logp_masked over the tokens of turn k + 1, for valid k; 0 else."""
    B, K = valid.shape
    r = np.zeros((B, K))
    for k in range(K - 1):
        sel = read & (turn == k + 1)  # (B, T) tokens of the next action
        cnt = sel.sum(axis=1)
        r[:, k] = np.where(valid[:, k], np.where(sel, d, 0.0).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    return r


def _streams(logp_obs, logp_masked, mask: np.ndarray, turn: np.ndarray):
    """Validated (difference d (B, T) with unread positions 0, read (B, T), valid (B, K), live (B, T))."""
    live = mask & (turn >= 0)
    n = turn_counts(turn, mask)
    K = int(n.max(initial=0))
    valid = valid_turns(turn_token_counts(turn, live, K))
    read = _read_positions(turn, live, valid)
    arrays = []
    for name, x in (("logp_obs", logp_obs), ("logp_masked", logp_masked)):
        a = as_2d(x, name)
        if a.shape != mask.shape:
            raise fail(name, f"shape {a.shape}", f"the shape of mask, {mask.shape}")
        bad = read & ~np.isfinite(a)
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise fail(name, f"a non-finite value {a[b, t]} at ({b}, {t})",
                       "finite log-probs at the valid tokens of every next action (turn ≥ 1)")
        arrays.append(np.where(read, a, 0.0))
    return arrays[0] - arrays[1], read, valid, live


def infopo_info_reward(logp_obs, logp_masked, mask, turn, config: InfoPOConfig | None = None):
    """InfoPO turn-level information reward: (r_info (B, K), valid (B, K)), K = max_i n_i.

    Args: logp_obs, logp_masked (B, T): teacher-forced log-probs of the sampled tokens with the real feedback and
    with the latest feedback replaced by the placeholder (read only at valid tokens of turns ≥ 1); mask (B, T)
    bool; turn (B, T) int (−1 outside trainable turns). ``config`` is accepted for the registry and unused.
    """
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    tr = validate_turn(turn, M)
    d, read, valid, _ = _streams(logp_obs, logp_masked, M, tr)
    return info_gain(d, tr, read, valid), valid


# --------------------------------------------------------------------------- fusion
def gate(sigma, temperature: float = 1.0) -> np.ndarray:
    """g(σ) = sigmoid(−σ/T) = 1/(1 + e^{σ/T}) ∈ (0, 1/2] for σ ≥ 0; g(0) = 1/2, decreasing in σ."""
    x = np.asarray(sigma, dtype=np.float64) / temperature
    e = np.exp(-np.abs(x))  # stable on both sides: no overflow, no 1 − tanh cancellation
    return np.where(x >= 0, e / (1.0 + e), 1.0 / (1.0 + e))


def info_advantage(r: np.ndarray, valid: np.ndarray, g: np.ndarray, cfg: InfoPOConfig) -> np.ndarray:
    """A^info (B, K): z-score of r^info over the valid turns of each prompt group ("group") or of the batch;
    fewer than two cells (or one with ddof = 1), or all equal ⇒ 0; invalid cells 0."""
    out = np.zeros_like(r)
    keys = np.unique(g) if cfg.info_scope == "group" else [None]
    for key in keys:
        sel = valid if key is None else valid & (g == key)[:, None]
        x = r[sel]
        if x.size <= 1 or (x == x[0]).all():
            continue
        out[sel] = (x - x.mean()) / (x.std(ddof=cfg.ddof) + cfg.eps)
    return out


def infopo_signals(rewards, group, mask, config: InfoPOConfig | None = None, *, turn, logp_obs, logp_masked):
    """Everything the fusion computes: dict of adv (B, T), a_ext (B,), sigma_ext (B,), gate (B,), r_info (B, K),
    valid (B, K), a_info (B, K)."""
    cfg = config or InfoPOConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    tr = validate_turn(turn, M)
    d, read, valid, live = _streams(logp_obs, logp_masked, M, tr)
    r = info_gain(d, tr, read, valid)
    a_ext = grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps, singleton=cfg.singleton))  # (B,)
    sigma = group_stats(R, g, cfg.ddof)[1]  # (B,) 0 for all-equal groups and (ddof=1) singletons
    w = gate(sigma, cfg.temperature)
    a_info = info_advantage(r, valid, g, cfg)
    adv = np.where(live, a_ext[:, None], 0.0) + cfg.beta * w[:, None] * turn_broadcast(a_info, tr, live)
    return {"adv": adv, "a_ext": a_ext, "sigma_ext": sigma, "gate": w, "r_info": r, "valid": valid, "a_info": a_info}


def infopo_advantage(rewards, group, mask, config: InfoPOConfig | None = None, *, turn, logp_obs, logp_masked):
    """InfoPO fused token advantages (B, T): Â = A^ext + β g(σ^ext) A^info at live tokens, 0 elsewhere.

    Args: rewards (B,) outcome rewards; group (B,) prompt ids; mask (B, T) bool; turn (B, T) int; logp_obs and
    logp_masked (B, T) the two teacher-forced streams of the next-action tokens (see the module docstring).
    """
    return infopo_signals(rewards, group, mask, config, turn=turn, logp_obs=logp_obs, logp_masked=logp_masked)["adv"]


# --------------------------------------------------------------------------- the model-dependent part
def counterfactual_logps(logprob_fn: Callable[[Sequence[Any], Any], Any], prompt: Any, actions: Sequence[Any],
                         feedbacks: Sequence[Any], placeholder: Any = PLACEHOLDER):
    """Both log-prob streams of ONE trajectory from a user-supplied teacher-forced scorer.

    ``actions`` a_0 … a_{n−1} and ``feedbacks`` o_0 … o_{n−2} (the feedback after each non-final turn);
    ``logprob_fn(context, action)`` returns the per-token log-probs (1-D) of ``action`` after ``context``, a list
    [prompt, a_0, o_0, …, a_k, o_k]. Returns a list over k = 0 … n − 2 of (obs (L,), masked (L,)): the scores of
    a_{k+1} after the real o_k and after ``placeholder`` in its place (earlier feedback kept). No sampling."""
    if len(feedbacks) < len(actions) - 1:
        raise fail("feedbacks", f"{len(feedbacks)} items", f"at least {len(actions) - 1} (one after each non-final turn)")
    out = []
    context: list[Any] = [prompt]
    for k in range(len(actions) - 1):
        context = context + [actions[k]]
        obs = finite_vector(logprob_fn(context + [feedbacks[k]], actions[k + 1]), f"logprob_fn(turn {k + 1})")
        cf = finite_vector(logprob_fn(context + [placeholder], actions[k + 1]), f"logprob_fn(turn {k + 1}, masked)")
        if obs.shape != cf.shape or obs.size == 0:
            raise fail("logprob_fn", f"lengths {obs.size} and {cf.size}", "equal, non-zero per-token log-prob arrays")
        out.append((obs, cf))
        context = context + [feedbacks[k]]
    return out


# --------------------------------------------------------------------------- inputs and registry
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _turn_layout(rng: np.random.Generator, B: int, K: int, T: int):
    """(mask, turn): agent turns of 1–3 tokens (sometimes a turn fully masked), user-feedback tokens (turn −1) in
    between, garbage turn ids on padding."""
    mask = np.zeros((B, T), bool)
    turn = rng.integers(-5, 50, size=(B, T))
    for b in range(B):
        n_b = int(rng.integers(0, K + 1)) if rng.random() < 0.15 else int(rng.integers(1, K + 1))
        t = 0
        for k in range(n_b):
            dropped = rng.random() < 0.08 and k < n_b - 1  # a turn whose tokens are all masked out
            for _ in range(int(rng.integers(1, 4))):
                if t < T:
                    mask[b, t], turn[b, t], t = not dropped, k, t + 1
            for _ in range(int(rng.integers(0, 3)) if k < n_b - 1 else 0):
                if t < T:
                    mask[b, t], turn[b, t], t = bool(rng.random() < 0.3), -1, t + 1
    return mask, turn


def _streams_inputs(rng: np.random.Generator, mask: np.ndarray):
    B, T = mask.shape
    obs = -rng.gamma(2.0, 0.7, size=(B, T))
    masked = obs - rng.normal(0.3, 0.8, size=(B, T))  # feedback usually makes the next action more likely
    pad = lambda a: np.where(mask, a, rng.choice(GARBAGE, size=a.shape))  # noqa: E731
    return pad(obs), pad(masked)


def _group(rng: np.random.Generator, B: int) -> np.ndarray:
    return np.sort(rng.integers(0, max(1, B // 3), size=B)) - 2


def _advantage_inputs(rng: np.random.Generator) -> dict:
    B, K, T = int(rng.integers(1, 10)), int(rng.integers(1, 5)), int(rng.integers(1, 12))
    mask, turn = _turn_layout(rng, B, K, T)
    obs, masked = _streams_inputs(rng, mask)
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.6 else rng.normal(size=B)
    return {"rewards": rewards, "group": _group(rng, B), "mask": mask, "turn": turn, "logp_obs": obs,
            "logp_masked": masked}


def _reward_inputs(rng: np.random.Generator) -> dict:
    B, K, T = int(rng.integers(1, 8)), int(rng.integers(1, 5)), int(rng.integers(1, 12))
    mask, turn = _turn_layout(rng, B, K, T)
    obs, masked = _streams_inputs(rng, mask)
    return {"logp_obs": obs, "logp_masked": masked, "mask": mask, "turn": turn}


_SRC = ("arXiv 2603.00656 abstract (read) states it in words; the formula is from our notes (papers_B.md §5), taken "
        "from a third-party write-up; the official code kfq20/InfoPO could not be read")
MISSING = ("β and T (reconstructed as 1.0, 1.0); the std convention and ε (verl GRPO defaults used); whether the "
           "information advantage is normalized over the group's turns or the batch's (option info_scope); which "
           "turns count (here: a turn and its next turn both have trainable tokens); the exact statements of the "
           "paper's theorems; the official code was not readable")
EQUATIONS = (
    Equation("infopo-info-reward", "r^info_{i,k} = (1/L) Σ_t [log π(y_t | h_k, o_k, y_<t) − log π(y_t | h_k, ∅, y_<t)], "
             "y = a_{k+1}, ∅ = 'No information found.'", "method section (not read); abstract", "secondary",
             "info_gain", note=_SRC + "; teacher-forced, no sampling; only the latest feedback o_k is masked"),
    Equation("infopo-outcome-adv", "A^ext_i = (R_i − μ^ext_g)/(σ^ext_g + ε)", "method section (not read)",
             "secondary", "grpo_outcome_advantage", note=_SRC + "; ddof 1, ε = 1e-6 are ours (verl's GRPO)"),
    Equation("infopo-info-adv", "A^info_{i,k} = (r^info_{i,k} − μ^info_g)/(σ^info_g + ε) over the group's valid turns",
             "method section (not read)", "secondary", "info_advantage",
             note=_SRC + "; group vs batch scope is an option (info_scope)"),
    Equation("infopo-gate", "g(σ) = sigmoid(−σ/T) ∈ (0, 1/2], g(0) = 1/2", "method section (not read); abstract "
             "('adaptive variance-gated fusion')", "secondary", "gate", note=_SRC + "; T not recovered"),
    Equation("infopo-fusion", "Â_{i,t} = A^ext_i + β g(σ^ext_g) A^info_{i,turn_t}", "method section (not read)",
             "secondary", "infopo_signals", note=_SRC + "; β not recovered; the last turn has no A^info (ours)"),
)

register(Spec(
    name="infopo", kind="reward", family="multi-turn", paper=INFOPO_PAPER, status="partial", missing=MISSING,
    summary="turn-level information reward: how much the user's feedback changes the next action's log-probs "
            "against a masked-feedback counterfactual (reward stage of InfoPO)",
    fn=infopo_info_reward, config_cls=InfoPOConfig, equations=EQUATIONS[:1], outputs=("r_info", "valid"),
    make_inputs=_reward_inputs,
    gradient="not a loss: r^info is computed without gradient; fuse with infopo_advantage and a clipped loss",
    extras={"info_gain": info_gain, "counterfactual_logps": counterfactual_logps, "PLACEHOLDER": PLACEHOLDER},
    properties=(
        "properties/test_infopo.py::test_expected_reward_is_mi_plus_kl: E[r^info] = I(O; Y | h) + KL(p̄ ‖ π(·|h,∅)) "
        "exactly on enumerated toy policies (single- and two-token actions)",
        "properties/test_infopo.py::test_reward_equals_mi_iff_masked_is_marginal: the paper's E[r] = I holds exactly "
        "when π(·|h,∅) = E_o π(·|h,o), and E[r] > I otherwise; E[r] ≥ 0 always",
        "properties/test_infopo.py::test_fano_bound_single_feedback: Fano-type necessity with one feedback turn: "
        "success ≥ 1 − δ over M uniform intents ⇒ E[r^info] ≥ log M − h(δ) − δ log(M − 1) (exact enumeration)",
        "properties/test_infopo.py::test_fano_bound_multi_turn_needs_more: as recorded in our notes the multi-turn "
        "bound on E[Σ_t r^info_t] fails when the counterfactual is the feedback-marginal (2 questions, M = 4): the "
        "paper's precise statement must condition differently — recorded, not a claim we could confirm",
        "properties/test_infopo.py::test_reward_is_next_turn_mean_difference: r^info_k = token mean over turn k + 1",
        "properties/test_infopo.py::test_callable_matches_arrays: counterfactual_logps with a stand-in scorer = arrays",
    ),
))

register(Spec(
    name="infopo_advantage", kind="advantage", family="multi-turn", paper=INFOPO_PAPER, status="partial",
    missing=MISSING,
    summary="variance-gated fusion: outcome GRPO advantage + β·sigmoid(−σ_ext/T)·group-normalized information "
            "advantage per turn (advantage stage of InfoPO)",
    fn=infopo_advantage, config_cls=InfoPOConfig, equations=EQUATIONS, outputs=("adv",), make_inputs=_advantage_inputs,
    extras={"infopo_signals": infopo_signals, "gate": gate, "info_advantage": info_advantage,
            "conformance_configs": lambda: [
                (name, ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("beta=0.5,T=0.3", {"beta": 0.5, "temperature": 0.3}), ("batch-scope,ddof=0",
                                                                              {"info_scope": "batch", "ddof": 0}),
                    ("verl-singleton", {"singleton": "mean0std1"}))]},
    properties=(
        "properties/test_infopo.py::test_gate_limits: g(0) = 1/2, g ∈ (0, 1/2], strictly decreasing, → 0 as σ/T → ∞",
        "properties/test_infopo.py::test_zero_outcome_variance_gives_half_beta_info: σ^ext = 0 ⇒ Â = (β/2)·A^info",
        "properties/test_infopo.py::test_beta_zero_is_grpo: β = 0 ⇒ the GRPO outcome advantage on live tokens",
        "properties/test_infopo.py::test_advantage_parts_are_zero_mean: Σ_group A^ext = 0; A^info mean 0 over the "
        "group's valid turns",
        "properties/test_infopo.py::test_gate_weights_info_more_when_outcomes_agree: the information term's weight "
        "falls as the group's outcome spread grows",
        "properties/test_infopo.py::test_padding_never_read: garbage at masked / unread positions changes nothing",
        "properties/test_infopo.py::test_composition_with_ppo: fused advantages into registry ppo",
        "properties/test_infopo.py::test_bad_input_raises",
        "properties/test_infopo.py::test_inputs_not_mutated: pure functions leave the caller's arrays unchanged",
        "untested: InfoPO outperforms prompting and multi-turn RL baselines by ~14–16% on UserGym, ColBench and "
        "τ²-Bench, is robust to user-simulator shift and transfers to Sokoban/WebShop — empirical claims",
    ),
))

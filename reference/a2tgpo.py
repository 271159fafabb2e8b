"""A²TGPO: Agentic Turn-Group Policy Optimization with Adaptive Turn-level Clipping (partial).

Chen, Zong, Ma, Luo, Li, Li, Chen, Jiang, "A²TGPO: Agentic Turn-Group Policy Optimization with Adaptive
Turn-level Clipping", arXiv 2605.06200 (May 2026). Official code: github.com/CuSO4-Chen/A-TGPO (verl), which
could NOT be read here (no snapshot was available).

Provenance, honestly: the abstract (read) states the three mechanisms in words: (i) IG is normalized within
each (prompt, turn-index) group, so a turn is compared only with peers at the same interaction depth;
(ii) cumulative normalized IG is divided by the square root of the number of accumulated terms, so advantage
magnitudes do not drift with turn position; (iii) each turn's clipping range is modulated by its normalized
IG, wider for informative turns and narrower for uninformative ones. The exact forms below come from our notes
(papers_A.md §11, from a third-party reproduction note) and from a third-party write-up that studied the
released code ("normalized IG", a clip factor c = 1 + β(2σ(ÎG) − 1) with β = 0.3 multiplying the PPO
range per turn, a composite group id prompt·max_turns + turn): ``secondary``. What could not be recovered
(hence ``partial``): how the accumulated IG advantage is combined with the trajectory's outcome advantage
(reconstructed here as a sum, a named option), the values of γ, ε and the std convention, and whether the
code's turn-level importance ratio (mentioned by the write-up) replaces the token ratio in the loss.

Setting and notation: trajectory i (row of the batch) has turns k = 0 … n_i − 1 (0-based); ``turn`` (B, T)
gives each token's turn index, −1 outside trainable turns (prompt, tool output); IG_{i,k} is the information
gain of turn k (the change in the policy's probability of the ground-truth answer after that turn, computed
by the caller), an array (B, K) with K ≥ max n_i; entries k ≥ n_i are never read.
n_i = 1 + the largest turn index among row i's valid tokens (mask ∧ turn ≥ 0); 0 if none.

    (i)   ÎG_{i,k} = (IG_{i,k} − mean_{j ∈ G_k} IG_{j,k}) / (std_{j ∈ G_k} IG_{j,k} + ε),
          G_k = {j : group_j = group_i, n_j > k}                         (prompt, turn-index) group
    (ii)  Ã_{i,k} = Σ_{m=k}^{n_i−1} γ^{m−k} ÎG_{i,m} / √(n_i − k)          variance-rescaled accumulation
    (iii) c_{i,k} = 1 + β (2σ(ÎG_{i,k}) − 1) = 1 + β tanh(ÎG_{i,k}/2) ∈ (1 − β, 1 + β)
          token t of turn k of row i is clipped to [1 − ε_low c_{i,k}, 1 + ε_high c_{i,k}]
    (rec) A_{i,k} = Â^out_i + λ Ã_{i,k}        Â^out the GRPO outcome advantage (reconstructed combination)

Why √: for ÎG i.i.d. with unit variance and γ = 1, Var(Σ_{m=k}^{n−1} ÎG_m) = n − k grows with the number of
remaining turns, and dividing by √(n − k) makes it 1 at every depth (with γ < 1 it is
(1 − γ^{2(n−k)})/((1 − γ²)(n − k)), which still shrinks with depth; the paper's words fix only the √ count).

Loss (PPO clipped surrogate with the per-turn range, token ratio r = π_θ/π_old)::

    ℓ_t = −min(r_t A_t, clip(r_t, 1 − ε_low c_t, 1 + ε_high c_t) A_t)          c_t = c_{i, turn_t}

Gradient (derived; checked by finite differences): c depends on IG only, so ∂ℓ/∂logp = −A·r on the unclipped
branch and 0 where the per-turn clip binds (and where an optional dual clip is active), times the
aggregation coefficients. Tokens with turn = −1 are not trained (effective mask = mask ∧ turn ≥ 0): zero
gradient, not counted by the aggregation.
``turn`` and ``ig_hat`` are required keywords; an explicit ``ig_hat=None`` gives c ≡ 1 (plain PPO with ε_low/ε_high).

Defined cases: a (prompt, turn) group with one member gets ÎG = 0 (``singleton="zero"``; verl's GRPO
normalizer scores it against mean 0 and std 1: ``"mean0std1"``); an all-equal group gets 0; a row without
valid tokens has n = 0 and advantage 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import choice, fail, in_range, policy_batch, positive
from rlspec.reference.grpo import GRPOConfig, grpo_outcome_advantage, validate_outcome
from rlspec.reference.ppo import clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

A2TGPO_PAPER = Paper(arxiv="2605.06200", title="A²TGPO: Agentic Turn-Group Policy Optimization with Adaptive "
                     "Turn-level Clipping", year=2026)
RESCALES = ("sqrt-terms", "none")


@dataclass(frozen=True)
class A2TGPOConfig(common.AggregationOptions):
    """A²TGPO policy loss. eps_low/eps_high: base PPO range ε (0.2, reconstructed: not recovered). beta: β of the
    clip factor c = 1 + β(2σ(ÎG) − 1), in [0, 1) (0.3, third-party reading of the code). dual_clip_c: None or > 1."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.3
    dual_clip_c: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.eps_low, "eps_low", allow_zero=True)
        positive(self.eps_high, "eps_high", allow_zero=True)
        in_range(self.beta, "beta", 0.0, 1.0, hi_open=True)
        if self.dual_clip_c is not None and positive(self.dual_clip_c, "dual_clip_c") <= 1.0:
            raise fail("dual_clip_c", repr(self.dual_clip_c), "a number > 1 (or None for no dual clip)")


@dataclass(frozen=True)
class A2TGPOAdvantageConfig:
    """A²TGPO advantage. gamma: γ ∈ [0, 1] (1.0, reconstructed). rescale: "sqrt-terms" (÷√(n − k), the paper) or
    "none" (the plain discounted sum, IGPO-style). ddof / eps / singleton: the (prompt, turn) normalizer
    (1 / 1e-6 / "zero", reconstructed; verl's GRPO normalizer uses "mean0std1" for singletons). ig_coef: λ.
    outcome: add the GRPO outcome advantage Â^out (reconstructed combination)."""

    gamma: float = 1.0
    rescale: str = "sqrt-terms"
    ddof: int = 1
    eps: float = 1e-6
    singleton: str = "zero"
    ig_coef: float = 1.0
    outcome: bool = True

    def __post_init__(self) -> None:
        in_range(self.gamma, "gamma", 0.0, 1.0)
        choice(self.rescale, "rescale", RESCALES)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.singleton, "singleton", ("zero", "mean0std1"))
        positive(self.ig_coef, "ig_coef", allow_zero=True)


# --------------------------------------------------------------------------- turns and IG
def validate_turn(turn, mask: np.ndarray) -> np.ndarray:
    """Integer turn indices (B, T) like ``mask``; at valid positions ≥ −1 (padding never read, returned as −1)."""
    a = np.asarray(turn)
    if a.shape != mask.shape:
        raise fail("turn", f"shape {a.shape}", f"the shape of mask, {mask.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise fail("turn", f"dtype {a.dtype}", "integer turn indices (−1 outside trainable turns)")
    a = np.where(mask, a, -1).astype(np.int64)
    if (a < -1).any():
        raise fail("turn", f"a value {a.min()} at a valid position", "turn indices ≥ −1")
    return a


def turn_counts(turn: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """n_i = 1 + the largest turn index of row i's valid tokens (mask ∧ turn ≥ 0); 0 for a row without any. (B,)"""
    t = np.where(mask & (turn >= 0), turn, -1)
    return (t.max(axis=1) + 1 if t.shape[1] else np.zeros(t.shape[0], np.int64)).astype(np.int64)


def validate_ig(ig, n: np.ndarray, name: str = "ig") -> np.ndarray:
    """Float64 copy of the per-turn array (B, K): finite where k < n_i, 0 elsewhere (never read)."""
    a = np.asarray(ig)
    if a.ndim != 2 or a.shape[0] != n.shape[0]:
        raise fail(name, f"shape {a.shape}", f"shape (B, K) with B = {n.shape[0]}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise fail(name, f"dtype {a.dtype}", "a real-valued array")
    if n.size and n.max() > a.shape[1]:
        raise fail(name, f"K = {a.shape[1]} turn columns", f"at least {int(n.max())} (the largest turn index + 1)")
    live = np.arange(a.shape[1])[None, :] < n[:, None]  # (B, K)
    a = a.astype(np.float64)
    bad = live & ~np.isfinite(a)
    if bad.any():
        b, k = np.argwhere(bad)[0]
        raise fail(name, f"a non-finite value {a[b, k]} at row {b}, turn {k}", "finite values for every turn k < n_i")
    return np.where(live, a, 0.0)


def turn_group_normalize(ig: np.ndarray, n: np.ndarray, g: np.ndarray, ddof: int = 1, eps: float = 1e-6,
                         singleton: str = "zero") -> np.ndarray:
    """ÎG (B, K): z-score of IG_{i,k} within the (prompt, turn-index) group {j : g_j = g_i, n_j > k}; 0 for k ≥ n_i.

    A group of one: 0 ("zero") or IG/(1 + ε) ("mean0std1"); a group with zero spread: 0.
    """
    out = np.zeros_like(ig)
    for key in np.unique(g):
        rows = g == key
        for k in range(int(n[rows].max(initial=0))):
            members = rows & (n > k)  # (B,)
            x = ig[members, k]
            if x.size == 1:
                out[members, k] = 0.0 if singleton == "zero" else x / (1.0 + eps)
                continue
            if (x == x[0]).all():  # zero spread: exactly 0 (no rounding residue of the mean)
                continue
            out[members, k] = (x - x.mean()) / (x.std(ddof=ddof) + eps)
    return out


def accumulate_ig(ig_hat: np.ndarray, n: np.ndarray, gamma: float = 1.0, rescale: str = "sqrt-terms") -> np.ndarray:
    """Ã (B, K): Ã_{i,k} = Σ_{m=k}^{n_i−1} γ^{m−k} ÎG_{i,m} (÷ √(n_i − k) with rescale="sqrt-terms"); 0 for k ≥ n_i."""
    B, K = ig_hat.shape
    S = np.zeros((B, K + 1))
    for k in range(K - 1, -1, -1):  # S_k = ÎG_k + γ S_{k+1}, restarted beyond each row's last turn
        S[:, k] = np.where(k < n, ig_hat[:, k] + gamma * S[:, k + 1], 0.0)
    S = S[:, :K]
    if rescale == "none":
        return S
    terms = np.maximum(n[:, None] - np.arange(K)[None, :], 1)  # n_i − k accumulated terms
    return np.where(np.arange(K)[None, :] < n[:, None], S / np.sqrt(terms), 0.0)


def turn_clip_scale(ig_hat) -> np.ndarray:
    """2σ(ÎG) − 1 = tanh(ÎG/2) ∈ (−1, 1), elementwise; c = 1 + β·this (kept separate so β can vary)."""
    return np.tanh(np.asarray(ig_hat, dtype=np.float64) / 2.0)


def turn_broadcast(per_turn: np.ndarray, turn: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Token array (B, T): per_turn[i, turn[i, t]] where ``live``, 0 elsewhere (per_turn (B, K))."""
    idx = np.where(live, turn, 0)
    vals = np.take_along_axis(per_turn, idx, axis=1) if per_turn.shape[1] else np.zeros(turn.shape)
    return np.where(live, vals, 0.0)


def a2tgpo_signals(rewards, group, mask, turn, ig, config: A2TGPOAdvantageConfig | None = None):
    """(adv (B, T), ig_hat (B, K)): the token advantages and the turn-normalized IG the loss's clip needs."""
    cfg = config or A2TGPOAdvantageConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    tr = validate_turn(turn, M)
    n = turn_counts(tr, M)
    IG = validate_ig(ig, n)
    ig_hat = turn_group_normalize(IG, n, g, cfg.ddof, cfg.eps, cfg.singleton)
    A = cfg.ig_coef * accumulate_ig(ig_hat, n, cfg.gamma, cfg.rescale)  # (B, K)
    if cfg.outcome:
        A = A + grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof, eps=cfg.eps, singleton=cfg.singleton))[:, None]
    return turn_broadcast(A, tr, M & (tr >= 0)), ig_hat


def a2tgpo_advantage(rewards, group, mask, turn, ig, config: A2TGPOAdvantageConfig | None = None) -> np.ndarray:
    """A²TGPO token advantages (B, T): A_{i, turn_t} at valid tokens of trainable turns, 0 elsewhere.

    Args: rewards (B,) outcome rewards; group (B,) prompt ids; mask (B, T) bool; turn (B, T) int (−1 outside
    trainable turns); ig (B, K) per-turn information gains (k ≥ n_i never read).
    """
    return a2tgpo_signals(rewards, group, mask, turn, ig, config)[0]


# --------------------------------------------------------------------------- loss
def a2tgpo_loss(logp, old_logp, adv, mask, ref_logp=None, config: A2TGPOConfig | None = None, group=None, *,
                turn, ig_hat):
    """A²TGPO loss (PPO with adaptive turn-level clipping) and its gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T); mask (B, T) bool; turn (B, T) int, required (−1 outside trainable turns;
    an explicit None makes every valid token trainable); ig_hat (B, K) the turn-group-normalized IG
    (``a2tgpo_signals``), required, read at (i, turn_it) only (an explicit None: c ≡ 1, plain PPO);
    ``ref_logp`` unused; ``group`` for agg='group-token-mean'.
    Returns: (loss, dlogp (B, T)); dlogp = −c·A·r on the unclipped branch, 0 elsewhere, at padding and turn −1.
    """
    cfg = config or A2TGPOConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    if turn is None:
        if ig_hat is not None:
            raise fail("turn", "None", "turn indices (B, T) to read ig_hat per turn")
        live, c = mask, np.ones(mask.shape)
    else:
        tr = validate_turn(turn, mask)
        live = mask & (tr >= 0)
        if ig_hat is None:
            c = np.ones(mask.shape)
        else:
            n = turn_counts(tr, mask)
            c = 1.0 + cfg.beta * turn_broadcast(turn_clip_scale(validate_ig(ig_hat, n, "ig_hat")), tr, live)
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low * c, cfg.eps_high * c)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, adv, cfg.dual_clip_c)
    return common.aggregate_token_loss(ell, dell_dr * dr, live, cfg, group)


# --------------------------------------------------------------------------- inputs and registry
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _turn_layout(rng: np.random.Generator, B: int, K: int, T: int):
    """(mask, turn, n): rows of agent turns (1–3 tokens each) separated by tool-output tokens (turn −1, mostly
    masked out, sometimes left in the mask), right-padded; padding's turn is garbage (never read)."""
    mask = np.zeros((B, T), bool)
    turn = rng.integers(-5, 50, size=(B, T))  # garbage where the mask is False
    for b in range(B):
        n_b = int(rng.integers(0, K + 1)) if rng.random() < 0.15 else int(rng.integers(1, K + 1))
        t = 0
        for k in range(n_b):
            for _ in range(int(rng.integers(1, 4))):
                if t < T:
                    mask[b, t], turn[b, t], t = True, k, t + 1
            if k < n_b - 1:
                for _ in range(int(rng.integers(0, 3))):
                    if t < T:
                        mask[b, t], turn[b, t], t = bool(rng.random() < 0.3), -1, t + 1
    return mask, turn


def _ig_table(rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    """Per-turn values (B, K) with garbage in some columns a row never reaches (validated per row)."""
    return rng.normal(scale=float(rng.choice([0.1, 1.0])), size=(B, K))


def _group(rng: np.random.Generator, B: int) -> np.ndarray:
    return np.sort(rng.integers(0, max(1, B // 2), size=B)) - 3  # prompts with 1–4 rollouts, negative ids


def _with_garbage_beyond(rng, table: np.ndarray, mask: np.ndarray, turn: np.ndarray) -> np.ndarray:
    n = turn_counts(np.where(mask, turn, -1), mask)
    dead = np.arange(table.shape[1])[None, :] >= n[:, None]
    return np.where(dead, rng.choice(GARBAGE, size=table.shape), table)


def _loss_inputs(rng: np.random.Generator) -> dict:
    B, K = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    T = int(rng.integers(1, 12))
    mask, turn = _turn_layout(rng, B, K, T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old = logp - rng.normal(scale=float(rng.choice([0.05, 0.2, 0.5])), size=(B, T))
    adv = rng.normal(size=(B, T))
    out = {k: np.where(mask, v, rng.choice(GARBAGE, size=(B, T))) for k, v in
           (("logp", logp), ("old_logp", old), ("adv", adv))}
    ig_hat = _with_garbage_beyond(rng, 1.5 * _ig_table(rng, B, K), mask, turn)
    return {**out, "mask": mask, "turn": turn, "ig_hat": ig_hat, "group": _group(rng, B)}


def _advantage_inputs(rng: np.random.Generator) -> dict:
    B, K = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    T = int(rng.integers(1, 12))
    mask, turn = _turn_layout(rng, B, K, T)
    binary = rng.random() < 0.5
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if binary else rng.normal(size=B)
    ig = _with_garbage_beyond(rng, _ig_table(rng, B, K), mask, turn)
    return {"rewards": rewards, "group": _group(rng, B), "mask": mask, "turn": turn, "ig": ig}


_SRC = ("arXiv 2605.06200 abstract (read) states it in words; exact form from a third-party reproduction note "
        "(papers_A.md §11) and a third-party write-up of the official code; the code itself was not readable")
MISSING = ("the paper's rule combining the accumulated IG advantage with the outcome advantage (reconstructed as "
           "Â^out + λÃ, options outcome/ig_coef); the values of γ, ε and the std convention (reconstructed: 1, 0.2, "
           "ddof 1); whether the official code's turn-level importance ratio replaces the token ratio (token ratio "
           "here); IG itself is an input (computed by the caller from the policy's gold-answer probability)")

EQUATIONS = (
    Equation("a2tgpo-turn-group-norm", "ÎG_{i,k} = (IG_{i,k} − mean_{G_k} IG_{·,k})/(std_{G_k} IG_{·,k} + ε), "
             "G_k = {j : same prompt, n_j > k}", "arXiv 2605.06200 abstract (i); method section not read",
             "secondary", "turn_group_normalize",
             note=_SRC + "; ddof 1, ε = 1e-6 and singleton = 0 are ours (verl's GRPO normalizer, which the write-up's "
                         "composite group id suggests, uses mean0std1 for singletons: option)"),
    Equation("a2tgpo-accumulation", "Ã_{i,k} = Σ_{m=k}^{n_i−1} γ^{m−k} ÎG_{i,m} / √(n_i − k)",
             "arXiv 2605.06200 abstract (ii)", "secondary", "accumulate_ig",
             note=_SRC + "; γ = 1 reconstructed (the √ keeps the variance at 1 only for γ = 1)"),
    Equation("a2tgpo-clip-factor", "c_{i,k} = 1 + β(2σ(ÎG_{i,k}) − 1) ∈ (1 − β, 1 + β), β = 0.3",
             "arXiv 2605.06200 abstract (iii)", "secondary", "turn_clip_scale",
             note=_SRC + "; the write-up reports normalized IG and β = 0.3"),
    Equation("a2tgpo-loss", "ℓ = −min(r A, clip(r, 1 − ε c, 1 + ε c) A), c shared by the tokens of a turn",
             "arXiv 2605.06200 abstract (iii)", "secondary", "a2tgpo_loss",
             note=_SRC + "; token-level ratio and token-mean aggregation are ours"),
    Equation("a2tgpo-combination", "A_{i,k} = Â^out_i + λ Ã_{i,k} (GRPO outcome advantage plus accumulated IG)",
             "not recovered", "reconstructed", "a2tgpo_signals",
             note="the abstract says only that IG is kept as an intrinsic process signal; the combination is ours"),
)

register(Spec(
    name="a2tgpo", kind="policy_loss", family="multi-turn", paper=A2TGPO_PAPER, status="partial", missing=MISSING,
    summary="PPO whose clip range is scaled per agent turn by its turn-group-normalized information gain",
    fn=a2tgpo_loss, config_cls=A2TGPOConfig, equations=EQUATIONS[2:4], outputs=("loss", "dlogp"),
    make_inputs=_loss_inputs,
    extras={"turn_clip_scale": turn_clip_scale, "a2tgpo_signals": a2tgpo_signals,
            "conformance_configs": lambda: [
                (f"{name}", ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("beta=0.9", {"beta": 0.9}), ("beta=0", {"beta": 0.0}),
                    ("asym,dual", {"eps_high": 0.28, "dual_clip_c": 3.0}))]},
    gradient="∂ℓ/∂logp = −A·r on the unclipped branch of the per-turn range [1 − ε_low c, 1 + ε_high c], 0 where it "
             "binds; c depends on IG only; tokens with turn −1 get 0",
    properties=(
        "properties/test_a2tgpo.py::test_hand_gradient_matches_finite_differences: dlogp = central FD (float64)",
        "properties/test_a2tgpo.py::test_clip_factor_in_open_interval: c ∈ (1 − β, 1 + β), c(0) = 1, monotone, "
        "c(x) + c(−x) = 2",
        "properties/test_a2tgpo.py::test_per_turn_clip_range_and_shared_within_turn: bounds 1 ± εc with "
        "ε(1 − β) < εc < ε(1 + β), equal for the tokens of one turn",
        "properties/test_a2tgpo.py::test_informative_turns_get_a_wider_region: Abstract (iii): higher ÎG ⇒ wider "
        "range, gradient kept where a narrower turn's is clipped",
        "properties/test_a2tgpo.py::test_beta_zero_or_no_ig_is_ppo: β = 0 or ig_hat=None ⇒ PPO (reference)",
        "properties/test_a2tgpo.py::test_untrainable_turn_tokens_get_no_gradient: turn −1 ⇒ dlogp 0, not counted",
        "untested: A²TGPO outperforms strong baselines on seven QA benchmarks (+1.75 multi-hop, +1.69 single-hop "
        "average, abstract) — an empirical claim about search-agent training, not reproducible here",
    ),
))

register(Spec(
    name="a2tgpo_advantage", kind="advantage", family="multi-turn", paper=A2TGPO_PAPER, status="partial",
    missing=MISSING,
    summary="per-turn credit: IG normalized within (prompt, turn) groups, accumulated and rescaled by √terms",
    fn=a2tgpo_advantage, config_cls=A2TGPOAdvantageConfig, outputs=("adv",), make_inputs=_advantage_inputs,
    equations=(EQUATIONS[0], EQUATIONS[1], EQUATIONS[4]),
    extras={"turn_group_normalize": turn_group_normalize, "accumulate_ig": accumulate_ig,
            "a2tgpo_signals": a2tgpo_signals,
            "conformance_configs": lambda: [
                (f"{name}", ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("gamma=0.9", {"gamma": 0.9}), ("no-rescale", {"rescale": "none"}),
                    ("verl-normalizer", {"singleton": "mean0std1"}), ("ddof=0,ig-only", {"ddof": 0, "outcome": False}))]},
    properties=(
        "properties/test_a2tgpo.py::test_turn_groups_are_zero_mean_unit_std: per (prompt, turn) ÎG mean 0, std 1",
        "properties/test_a2tgpo.py::test_turn_compared_only_with_same_depth_peers: Abstract (i): ÎG_k depends only "
        "on column k of the same prompt",
        "properties/test_a2tgpo.py::test_accumulated_variance_does_not_drift_with_depth: Abstract (ii): Var Ã = 1 "
        "at every depth for γ = 1 (exact), the unscaled sum grows as n − k",
        "properties/test_a2tgpo.py::test_accumulation_matches_the_definition: backward recursion = explicit sum",
        "properties/test_a2tgpo.py::test_advantage_is_constant_within_a_turn: tokens of a turn share A; turn −1 ⇒ 0",
        "properties/test_a2tgpo.py::test_degenerate_groups_are_defined: singleton / all-equal (prompt, turn) ⇒ 0",
    ),
))

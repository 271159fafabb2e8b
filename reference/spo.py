"""SPO: Single-stream Policy Optimization — a persistent per-prompt Beta value tracker as baseline.

Xu & Ding, "Single-stream Policy Optimization", arXiv 2509.13232 (ICLR 2026).
Official code: verl-project/verl-recipe, ``spo/spo_ray_trainer.py`` (``fit`` and ``_get_spo_rho``);
defaults from ``recipe/spo/config/spo_trainer.yaml`` (offline_N = 8, rho.type = "kl", clip_lower = 0.875).

One response per prompt, no group. Prompt x keeps a Beta(α, β) belief about its success rate across
training steps; that belief is the baseline. Notation (ours ← paper/code):

    v̂ = α / (α + β)          value estimate (code: p_hat)         N_eff = α + β   effective count
    ρ ∈ (0, 1]                per-prompt discount (forgetting) factor
    D ≥ 0                     how far the policy moved on x since x was last seen

Equations (the paper's section numbers could not be read from the text available to us; every
formula below was confirmed in the official code, see ``EQUATIONS`` for provenance)::

    tracker      α ← ρ α + r,   β ← ρ β + (1 − r)                                  (r ∈ [0, 1])
    EMA form     v̂ ← v̂₋₁ + η (r − v̂₋₁),   η = 1 / (ρ N_eff,₋₁ + 1)              (derived)
    discount     ρ = clip(2^(−D / D_half), ρ_min, ρ_max),   D_half = 0.06, ρ ∈ [0.875, 0.96]
    divergence   D = mean over x's stored response tokens of |log π_prev − log π_cur|   (code; paper: a KL)
    advantage    A = r − v̂₋₁   (baseline from BEFORE this reward),  Ã = (A − μ_B) / (σ_B + ε)
    init         N₀ = 1 / (1 − ρ_min),  α₀ = N₀ v̂₀,  β₀ = N₀ (1 − v̂₀)
    sampling     w ∝ sqrt(v̂ (1 − v̂)) / N_eff^γ + ε_w     (code: γ = 0, ε_w = 0.05)

The state across steps is the frozen dataclass :class:`SPOState`; :func:`update` is pure (returns a
new state, never writes into its argument). Prompts are indexed 0..P−1.

Conventions and defined cases (the paper leaves these open; we state ours):

* **Rewards** must lie in [0, 1]: with binary rewards the tracker is a discounted Beta posterior, with
  fractional ones it is the same discounted average (the EMA form above), still in [0, 1]. The code
  does not check this; a reward outside [0, 1] would drive α or β negative, so we reject it.
* **A prompt repeated within one batch** (the code samples prompts with replacement when the batch is
  larger than the candidate pool): ``duplicates="sequential"`` (default) applies the updates one after
  the other in batch order, each with its own ρ; ``duplicates="last"`` is the code's behaviour — every
  occurrence is computed from the pre-batch state and the last one in batch order is written (the
  earlier rewards of that prompt are lost). Every occurrence's baseline is the PRE-batch v̂ (both modes,
  as in the code), so the baseline never depends on any reward of the current batch.
* **Batch normalisation** uses every sequence of the batch (a fully masked row still counts, as in the
  code), ``ddof=1`` and ``eps=1e-8`` (the code's ``advantages.std() + 1e-8``). When all A are equal
  (including B = 1) the normalised advantage is defined as 0. ``normalize=False`` turns it off.
* **Empty batch** (B = 0): the advantage has shape (0, T) and the state is returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, in_range, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

SPO_PAPER = Paper(arxiv="2509.13232", title="Single-stream Policy Optimization", year=2025)

D_HALF = 0.06  # half-life of ρ in units of D (code: hard-coded in _get_spo_rho)
RHO_MIN = 0.875  # code: trainer.spo.rho.clip_lower
RHO_MAX = 0.96  # code: hard-coded upper clamp
EXPLORE_EPS = 0.05  # code: EXPLORATION_EPSILON of the prompt sampler


@dataclass(frozen=True)
class SPOState:
    """Per-prompt Beta tracker: ``alpha`` (P,), ``beta`` (P,), pseudo-counts of success / failure.

    A plain container: the reference stores float64 NumPy arrays, the optimized path tensors. Fields
    are never written in place; :func:`update` returns a new state.
    """

    alpha: Any
    beta: Any


@dataclass(frozen=True)
class SPOConfig:
    """normalize: global batch normalisation of A (paper and code: on). ddof/eps: σ_B convention
    (code: torch ``.std()`` → ddof = 1, ε = 1e-8). duplicates: "sequential" (ours) or "last" (code)."""

    normalize: bool = True
    ddof: int = 1
    eps: float = 1e-8
    duplicates: str = "sequential"

    def __post_init__(self) -> None:
        if not isinstance(self.normalize, bool):
            raise fail("normalize", repr(self.normalize), "True or False")
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.duplicates, "duplicates", ("sequential", "last"))


# --------------------------------------------------------------------------------------------------
# validation


def check_state(state: Any) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies of (α, β) (P,) each; α, β ≥ 0 finite and α + β > 0 for every prompt."""
    if not isinstance(state, SPOState):
        raise fail("state", type(state).__name__, "an SPOState (build one with init_state)")
    alpha = finite_vector(state.alpha, "state.alpha")
    beta = finite_vector(state.beta, "state.beta", alpha.shape[0])
    if alpha.shape[0] == 0:
        raise fail("state.alpha", "length 0", "at least one prompt")
    bad = (alpha < 0) | (beta < 0) | (alpha + beta <= 0)
    if bad.any():
        p = int(np.argwhere(bad)[0][0])
        raise fail("state", f"alpha={alpha[p]}, beta={beta[p]} for prompt {p}",
                   "alpha, beta >= 0 with alpha + beta > 0")
    return alpha, beta


def check_prompt_ids(prompt_ids: Any, length: int | None, P: int, name: str = "prompt_ids") -> np.ndarray:
    """Integer prompt indices (B,) in 0..P−1 (any length when ``length`` is None)."""
    ids = np.asarray(prompt_ids)
    if ids.ndim != 1 or (length is not None and ids.shape[0] != length):
        raise fail(name, f"shape {ids.shape}", f"shape ({'B' if length is None else length},)")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise fail(name, f"dtype {ids.dtype}", "integer prompt indices")
    ids = ids.astype(np.int64)
    out = (ids < 0) | (ids >= P)
    if out.any():
        i = int(np.argwhere(out)[0][0])
        raise fail(name, f"{ids[i]} at index {i}", f"indices in 0..{P - 1} (the tracker has P={P} prompts)")
    return ids


def check_rewards(rewards: Any, length: int) -> np.ndarray:
    """Finite rewards (B,) in [0, 1] (success indicator or success fraction)."""
    r = finite_vector(rewards, "rewards", length)
    out = (r < 0) | (r > 1)
    if out.any():
        i = int(np.argwhere(out)[0][0])
        raise fail("rewards", f"{r[i]} at index {i}", "rewards in [0, 1] (the tracker counts successes)")
    return r


def check_rho(rho: Any, length: int) -> np.ndarray:
    """Discounts (B,) in (0, 1]; a scalar is broadcast to every sequence."""
    a = np.asarray(rho)
    rho_v = finite_vector(np.full(length, a[()]) if a.ndim == 0 else a, "rho", length)
    out = (rho_v <= 0) | (rho_v > 1)
    if out.any():
        i = int(np.argwhere(out)[0][0])
        raise fail("rho", f"{rho_v[i]} at index {i}", "discounts in (0, 1]")
    return rho_v


# --------------------------------------------------------------------------------------------------
# the tracker


def init_state(v0: Any, *, rho_min: float = RHO_MIN, n0: float | None = None, offline_n: int | None = None,
               jeffreys: bool = False) -> SPOState:
    """Offline initialisation: N₀ = 1/(1 − ρ_min), α₀ = N₀ v̂₀, β₀ = N₀ (1 − v̂₀)  (P,) each.

    v0 (P,) in [0, 1]: success rate of each prompt from ``offline_n`` offline samples (code: 8).
    n0: prior strength N₀; default 1/(1 − ρ_min) (= 8 for ρ_min = 0.875), the fixed point of the
    count at the smallest discount. jeffreys: the code's variant, v̂₀ = (s + ½)/(n + 1) with
    s = v0·n successes (needs ``offline_n``); with ``offline_n = 0`` the code starts at Beta(½, ½).
    """
    v = finite_vector(v0, "v0")
    if v.shape[0] == 0 or ((v < 0) | (v > 1)).any():
        raise fail("v0", f"shape {v.shape}, range [{v.min() if v.size else ''}, {v.max() if v.size else ''}]",
                   "a non-empty vector of success rates in [0, 1]")
    rho_min = in_range(rho_min, "rho_min", 0.0, 1.0, lo_open=True, hi_open=True)
    N0 = 1.0 / (1.0 - rho_min) if n0 is None else positive(n0, "n0")
    if jeffreys:
        if offline_n is None or int(offline_n) != offline_n or offline_n < 0:
            raise fail("offline_n", repr(offline_n), "the number of offline samples (integer >= 0) when jeffreys=True")
        if offline_n == 0:  # the code's branch: no offline data, Beta(1/2, 1/2)
            return SPOState(alpha=np.full_like(v, 0.5), beta=np.full_like(v, 0.5))
        v = (v * offline_n + 0.5) / (offline_n + 1.0)
    return SPOState(alpha=N0 * v, beta=N0 * (1.0 - v))


def value(state: SPOState) -> np.ndarray:
    """v̂ = α / (α + β) (P,): the tracked success probability of every prompt."""
    alpha, beta = check_state(state)
    return alpha / (alpha + beta)


def n_eff(state: SPOState) -> np.ndarray:
    """N_eff = α + β (P,): the discounted number of observations behind v̂."""
    alpha, beta = check_state(state)
    return alpha + beta


def occurrence_rank(prompt_ids: np.ndarray) -> np.ndarray:
    """k for the k-th appearance (0-based, in batch order) of each sequence's prompt (B,)."""
    seen: dict[int, int] = {}
    rank = np.zeros(prompt_ids.shape[0], dtype=np.int64)
    for i, p in enumerate(prompt_ids.tolist()):
        rank[i] = seen.get(p, 0)
        seen[p] = rank[i] + 1
    return rank


def beta_update(alpha: np.ndarray, beta: np.ndarray, ids: np.ndarray, r: np.ndarray, rho: np.ndarray,
                duplicates: str = "sequential") -> tuple[np.ndarray, np.ndarray]:
    """α ← ρ α + r, β ← ρ β + (1 − r) at rows ``ids`` of copies of α, β (P,).

    ``sequential``: round k applies the k-th occurrence of every prompt (no prompt twice per round),
    which is the same as applying the batch one sequence at a time. ``last``: each occurrence reads
    the pre-batch (α, β) and the last occurrence in batch order is kept, as in the official code
    (whose per-prompt dictionary writes let the last one win).
    """
    a, b = alpha.copy(), beta.copy()
    rank = occurrence_rank(ids)
    if duplicates == "last":
        count = np.bincount(ids, minlength=alpha.shape[0])
        keep = rank == count[ids] - 1  # last occurrence of each prompt, read from the pre-batch state
        p = ids[keep]
        a[p] = rho[keep] * alpha[p] + r[keep]
        b[p] = rho[keep] * beta[p] + (1.0 - r[keep])
        return a, b
    for k in range(int(rank.max()) + 1 if ids.size else 0):
        rows = rank == k
        p = ids[rows]  # distinct prompts within one round
        a[p] = rho[rows] * a[p] + r[rows]
        b[p] = rho[rows] * b[p] + (1.0 - r[rows])
    return a, b


def update(state: SPOState, prompt_ids: Any, rewards: Any, rho: Any, duplicates: str = "sequential") -> SPOState:
    """The new tracker after observing ``rewards`` (B,) in [0, 1] for ``prompt_ids`` (B,) with discounts
    ``rho`` (B,) or scalar in (0, 1]. Pure: ``state`` is not modified. Prompts not in the batch keep
    their (α, β) (the code discounts only prompts it samples)."""
    alpha, beta = check_state(state)
    ids = check_prompt_ids(prompt_ids, None, alpha.shape[0])
    r = check_rewards(rewards, ids.shape[0])
    rho_v = check_rho(rho, r.shape[0])
    choice(duplicates, "duplicates", ("sequential", "last"))
    a, b = beta_update(alpha, beta, ids, r, rho_v, duplicates)
    return SPOState(alpha=a, beta=b)


# --------------------------------------------------------------------------------------------------
# the discount ρ


def spo_divergence(logp_prev: Any, logp_cur: Any, mask: Any) -> np.ndarray:
    """D (B,) = masked token-mean of |log π_prev − log π_cur| on each prompt's stored last response.

    The code's stand-in for the paper's KL between the current policy and the one last used on x.
    A row with no valid token has D = 0 (then ρ = ρ_max). Masked positions are never read.
    """
    from rlspec.reference._validate import masked_array

    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    prev = masked_array(logp_prev, "logp_prev", M)
    cur = masked_array(logp_cur, "logp_cur", M)
    n = M.sum(axis=1)
    total = np.abs(prev - cur).sum(axis=1)
    return np.divide(total, n, out=np.zeros_like(total), where=n > 0)


def spo_rho(D: Any, D_half: float = D_HALF, rho_min: float = RHO_MIN, rho_max: float = RHO_MAX) -> np.ndarray:
    """ρ = clip(2^(−D / D_half), ρ_min, ρ_max) for divergences D ≥ 0 (any shape; same shape returned).

    D_half: the divergence at which the unclipped ρ is ½. Code: D_half = 0.06, ρ_min = 0.875
    (``rho.clip_lower``), ρ_max = 0.96. A prompt seen for the first time has D = 0, so ρ = ρ_max.
    """
    d = np.asarray(D)
    if not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
        raise fail("D", f"dtype {d.dtype}", "real divergences")
    d = d.astype(np.float64)
    if not np.isfinite(d).all() or (d < 0).any():
        raise fail("D", f"values in [{np.min(d) if d.size else ''}, {np.max(d) if d.size else ''}] "
                   f"(finite: {bool(np.isfinite(d).all())})", "finite divergences >= 0")
    D_half = positive(D_half, "D_half")
    rho_max = in_range(rho_max, "rho_max", 0.0, 1.0, lo_open=True)
    rho_min = in_range(rho_min, "rho_min", 0.0, rho_max, lo_open=True)
    return np.clip(np.power(2.0, -d / D_half), rho_min, rho_max)


# --------------------------------------------------------------------------------------------------
# the advantage


def centred_advantage(r: np.ndarray, v_prev: np.ndarray) -> np.ndarray:
    """A = r − v̂₋₁ (B,): the baseline is the tracker's value BEFORE it saw r."""
    return r - v_prev


def batch_normalize(A: np.ndarray, ddof: int, eps: float) -> np.ndarray:
    """Ã = (A − μ_B) / (σ_B + ε) over the whole batch (B,); 0 when all A are equal (B = 1 included)."""
    if A.size == 0 or np.all(A == A[0]):
        return np.zeros_like(A)
    centred = A - A.mean()
    sigma = A.std(ddof=ddof)  # A.size >= 2 here, so ddof = 1 is defined
    return centred / (sigma + eps)


def spo_advantage(rewards: Any, v_prev: Any, mask: Any, config: SPOConfig | None = None) -> np.ndarray:
    """Token advantages (B, T): Ã (or A when ``normalize=False``) broadcast over the mask, 0 elsewhere.

    rewards (B,) in [0, 1]; v_prev (B,) the tracker's value of each sequence's prompt before this batch.
    """
    cfg = config or SPOConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    r = check_rewards(rewards, M.shape[0])
    v = finite_vector(v_prev, "v_prev", M.shape[0])
    A = centred_advantage(r, v)
    if cfg.normalize:
        A = batch_normalize(A, cfg.ddof, cfg.eps)
    return np.where(M, A[:, None], 0.0)


def spo_step(state: SPOState, prompt_ids: Any, rewards: Any, rho: Any, mask: Any,
             config: SPOConfig | None = None) -> tuple[np.ndarray, SPOState]:
    """One SPO step on a batch of single responses: ``(adv (B, T), new_state)``.

    state: the tracker before the batch; prompt_ids (B,) in 0..P−1; rewards (B,) in [0, 1];
    rho (B,) or scalar in (0, 1] (from :func:`spo_rho`); mask (B, T) bool.
    The advantage uses the pre-batch value (A = r − v̂₋₁); the state is then updated with the rewards.
    """
    cfg = config or SPOConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    alpha, _ = check_state(state)
    ids = check_prompt_ids(prompt_ids, M.shape[0], alpha.shape[0])
    v_prev = value(state)[ids]  # (B,)
    adv = spo_advantage(rewards, v_prev, M, cfg)
    return adv, update(state, ids, rewards, rho, cfg.duplicates)


# --------------------------------------------------------------------------------------------------
# prioritized prompt sampling


def sampling_weights(state: SPOState, candidates: Any = None, gamma: float = 0.0,
                     explore_eps: float = EXPLORE_EPS) -> np.ndarray:
    """Sampling probabilities over ``candidates`` (default: all P prompts), summing to 1:

        w ∝ sqrt(v̂ (1 − v̂)) / N_eff^γ + ε_w

    sqrt(v̂(1−v̂)) is the std of a Bernoulli(v̂) reward: prompts the policy solves about half the time
    carry the most learning signal. γ (≥ 0) down-weights prompts whose estimate rests on many
    observations; the official code has no such term (γ = 0, our default: the paper's value of γ
    could not be confirmed). ε_w = 0.05 (code) keeps every prompt reachable.
    """
    v = value(state)
    N = n_eff(state)
    gamma = positive(gamma, "gamma", allow_zero=True)
    explore_eps = positive(explore_eps, "explore_eps", allow_zero=True)
    ids = np.arange(v.shape[0]) if candidates is None else check_prompt_ids(candidates, None, v.shape[0], "candidates")
    w = np.sqrt(v[ids] * (1.0 - v[ids])) / N[ids] ** gamma + explore_eps
    total = w.sum()
    if ids.size == 0:
        return w
    return w / total if total > 0 else np.full(ids.shape[0], 1.0 / ids.shape[0])


# --------------------------------------------------------------------------------------------------
# registry


def make_inputs(rng: np.random.Generator) -> dict[str, Any]:
    """A random SPO step: tracker of P prompts, a batch with repeated prompts sometimes, ragged mask."""
    P = int(rng.integers(2, 12))
    B = int(rng.integers(1, 10))
    T = int(rng.integers(1, 7))
    offline_n = 8
    v0 = rng.integers(0, offline_n + 1, size=P) / offline_n
    state = init_state(v0, offline_n=offline_n, jeffreys=bool(rng.random() < 0.5))
    prompt_ids = rng.integers(0, P, size=B)
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.7 else rng.random(B)
    rho = spo_rho(rng.exponential(0.05, size=B))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    return {"state": state, "prompt_ids": prompt_ids, "rewards": rewards, "rho": rho, "mask": mask}


_CODE = "verl-project/verl-recipe spo/spo_ray_trainer.py"

EQUATIONS = (
    Equation("spo-tracker", "α ← ρ α + r,  β ← ρ β + (1 − r)", "arXiv 2509.13232, value-tracker section",
             "official-code", "beta_update",
             note=f"{_CODE}, fit(): update after the actor step; the code does not check r ∈ [0, 1] and, for a "
                  "prompt repeated in the batch, keeps only the last occurrence (our option duplicates='last')"),
    Equation("spo-value", "v̂ = α / (α + β),  N_eff = α + β", "arXiv 2509.13232, value-tracker section",
             "official-code", "value", note=f"{_CODE}: p_hats = alpha / (alpha + beta)"),
    Equation("spo-ema", "v̂ = v̂₋₁ + η (r − v̂₋₁),  η = 1 / (ρ N_eff,₋₁ + 1)", "derived from spo-tracker",
             "reconstructed", "update",
             note="algebra: (ρα + r)/(ρN + 1) = v̂₋₁ + (r − v̂₋₁)/(ρN + 1); checked by a property test"),
    Equation("spo-rho", "ρ = clip(2^(−D / D_half), ρ_min, ρ_max),  D_half = 0.06, [ρ_min, ρ_max] = [0.875, 0.96]",
             "arXiv 2509.13232, KL-adaptive discount", "official-code", "spo_rho",
             note=f"{_CODE}, _get_spo_rho: D_half and ρ_max hard-coded, ρ_min = rho.clip_lower (config 0.875); "
                  "a constant-ρ mode (rho.type='constant', value 0.875) also exists"),
    Equation("spo-divergence", "D = mean_t |log π_prev − log π_cur| over x's stored response",
             "arXiv 2509.13232, KL-adaptive discount", "official-code", "spo_divergence",
             note="the paper speaks of a KL between the current policy and the one last used on x (per our notes, "
                  "secondary); the code uses the masked mean absolute log-ratio on one stored response"),
    Equation("spo-adv", "A = r − v̂₋₁,  Ã = (A − μ_B) / (σ_B + ε)", "arXiv 2509.13232, advantage section",
             "official-code", "spo_advantage",
             note=f"{_CODE}, fit(): baseline read before the update; torch .std() (ddof = 1) and ε = 1e-8; "
                  "fully masked rows still count in μ_B, σ_B"),
    Equation("spo-init", "N₀ = 1 / (1 − ρ_min),  α₀ = N₀ v̂₀,  β₀ = N₀ (1 − v̂₀)", "arXiv 2509.13232, initialisation",
             "secondary", "init_state", note="paper form from our notes (shared/papers/papers_A.md §14)"),
    Equation("spo-init-jeffreys", "v̂₀ = (s + ½) / (n + 1),  n = offline_N = 8; Beta(½, ½) when n = 0",
             "official code", "official-code", "init_state",
             note=f"{_CODE}, fit(): offline scores binarised (score > 0), N_init = 1/(1 − clip_lower)"),
    Equation("spo-sampling", "w ∝ sqrt(v̂ (1 − v̂)) / N_eff^γ + ε,  ε = 0.05",
             "arXiv 2509.13232, prioritized sampling", "secondary", "sampling_weights",
             note="the N_eff^γ term is from our notes (not confirmed in the paper text); the official code uses "
                  "sqrt(p̂(1 − p̂)) + 0.05 with no N_eff term, i.e. γ = 0 (our default)"),
)

register(Spec(
    name="spo", kind="tracker", family="advantage", paper=SPO_PAPER, status="implemented",
    summary="persistent per-prompt Beta value tracker as baseline, one sample per prompt, global batch normalisation",
    fn=spo_step, config_cls=SPOConfig, equations=EQUATIONS, outputs=("adv", "state"),
    make_inputs=make_inputs,
    extras={"init_state": init_state, "update": update, "value": value, "n_eff": n_eff, "rho": spo_rho,
            "divergence": spo_divergence, "sampling_weights": sampling_weights, "advantage": spo_advantage},
    gradient="no loss of its own: Ã is a constant weight per sequence for a policy loss (PPO-clip in the paper)",
    properties=(
        "properties/test_spo.py::test_ema_identity: Beta update = v̂₋₁ + (r − v̂₋₁)/(ρ N_eff,₋₁ + 1)",
        "properties/test_spo.py::test_n_eff_fixed_point: constant ρ ⇒ N_eff → 1/(1 − ρ)",
        "properties/test_spo.py::test_value_in_open_unit_interval: α₀, β₀ > 0 ⇒ v̂ ∈ (0, 1)",
        "properties/test_spo.py::test_baseline_keeps_gradient_unbiased: E[(r − v̂₋₁)∇log π] = E[r ∇log π]",
        "properties/test_spo.py::test_sampling_weight_peaks_at_half_and_is_symmetric",
        "properties/test_spo.py::test_rho_range_monotone_and_rho0: ρ ∈ [ρ_min, ρ_max], non-increasing, ρ(0) = ρ_max",
        "properties/test_spo.py::test_update_is_pure",
        "properties/test_spo.py::test_normalized_advantage_zero_mean_unit_std",
        "properties/test_spo.py::test_tracks_bernoulli_bandit: with ρ = 1 the MSE follows the Beta-posterior formula",
        "properties/test_spo.py::test_discount_follows_a_moving_target: ρ < 1 reaches the EMA error after a jump",
        "properties/test_spo.py::test_repeated_prompt_is_sequential_in_batch_order",
        "properties/test_spo.py::test_repeated_prompt_last_write_matches_code: duplicates='last'",
        "properties/test_spo.py::test_init_state_prior_strength: N₀ = 1/(1 − ρ_min), Jeffreys variant",
        "properties/test_spo.py::test_bad_input_raises",
    ),
))

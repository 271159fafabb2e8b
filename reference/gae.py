"""GAE: generalized advantage estimation, on right-padded (ragged) token batches.

Schulman, Moritz, Levine, Jordan, Abbeel, "High-Dimensional Continuous Control Using Generalized
Advantage Estimation", arXiv 1506.02438, §3 eqs. (11), (16)-(18).

Each response is an episode whose steps are its valid tokens t; r_t is the token reward (outcome
reward on the last token, per-token penalties such as −β·KL elsewhere) and V_t = V(s_t) the critic's
value of the state before token t::

    δ_t = r_t + γ·V_{t+1} − V_t                       TD residual (eq. 11), V after the last valid token = 0
    Â_t = Σ_{l ≥ 0} (γλ)^l δ_{t+l}                     GAE(γ, λ) (eq. 16), computed as Â_t = δ_t + γλ·Â_{t+1}
    R̂_t = Â_t + V_t                                   value target ("returns", as PPO / verl / OpenRLHF use it)

Special cases (eqs. 17-18): λ = 0 gives the one-step TD error δ_t; λ = 1 gives the discounted
Monte-Carlo return minus the value, Σ_l γ^l r_{t+l} − V_t.

Defaults: the paper fixes no universal γ, λ (its experiments tune them; γ = 0.99, λ = 0.95 is the PPO
paper's MuJoCo setting). For LLM responses — finite episodes, reward at the end — the frameworks use
γ = 1 (verl: γ = λ = 1; OpenRLHF: γ = 1, λ = 0.95). We default to γ = 1.0, λ = 0.95.

Conventions exposed as config:
  * ``masked_steps``: interior masked tokens (tool output, observations) are *skipped* by default: the
    step after a valid token is the next valid token, and neither r nor V is read at masked positions
    (verl's multi-turn GAE). ``"zero"``: every position is a step, masked ones with r = 0 and V = 0
    (OpenRLHF). Both agree on right-padded masks.
  * ``whiten``: normalise the advantages over the valid tokens of the batch, (Â − mean)/√(var + ε) with
    ``whiten_ddof`` (verl ``masked_whiten``: unbiased, ε = 1e-8, on by default in verl). Off by default:
    the paper has no whitening. ``returns`` always use the un-whitened Â.

Defined cases: a row with no valid token has Â = R̂ = 0; masked positions are 0 in both outputs and
are never read (they may hold NaN/inf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, in_range, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register
from rlspec.reference.reinforce_pp import batch_normalize

GAE_PAPER = Paper(arxiv="1506.02438", title="High-Dimensional Continuous Control Using Generalized Advantage "
                  "Estimation", year=2015)


@dataclass(frozen=True)
class GAEConfig:
    """gamma γ ∈ [0, 1], lam λ ∈ [0, 1]; masked_steps "skip" (verl) or "zero" (OpenRLHF);
    whiten (off; verl on) with whiten_ddof ∈ {0, 1} and whiten_eps inside the square root."""

    gamma: float = 1.0
    lam: float = 0.95
    masked_steps: str = "skip"
    whiten: bool = False
    whiten_ddof: int = 1
    whiten_eps: float = 1e-8

    def __post_init__(self) -> None:
        in_range(self.gamma, "gamma", 0.0, 1.0)
        in_range(self.lam, "lam", 0.0, 1.0)
        choice(self.masked_steps, "masked_steps", ("skip", "zero"))
        if not isinstance(self.whiten, (bool, np.bool_)):
            raise fail("whiten", repr(self.whiten), "True or False")
        if self.whiten_ddof not in (0, 1):
            raise fail("whiten_ddof", repr(self.whiten_ddof), "0 or 1")
        positive(self.whiten_eps, "whiten_eps", allow_zero=True)


def steps_of_row(m: np.ndarray, masked_steps: str) -> np.ndarray:
    """Positions that are steps of the episode: the valid tokens ("skip") or every position ("zero")."""
    return np.flatnonzero(m) if masked_steps == "skip" else np.arange(m.shape[0])


def td_residuals(r: np.ndarray, V: np.ndarray, steps: np.ndarray, gamma: float) -> np.ndarray:
    """δ_k = r_k + γ·V_{k+1} − V_k along one episode's steps (eq. 11); V after the last step is 0."""
    V_next = np.append(V[steps][1:], 0.0)  # terminal: no value after the last step
    return r[steps] + gamma * V_next - V[steps]


def gae_from_residuals(delta: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Â_k = Σ_l (γλ)^l δ_{k+l} (eq. 16), by the backward recursion Â_k = δ_k + γλ·Â_{k+1}."""
    A = np.zeros_like(delta)
    running = 0.0
    for k in reversed(range(delta.shape[0])):
        running = delta[k] + gamma * lam * running
        A[k] = running
    return A


def gae_advantage(token_rewards, values, mask, config: GAEConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """GAE(γ, λ) advantages and value targets for a (B, T) batch of responses.

    Args: token_rewards (B, T) float; values (B, T) float, V(s_t) before token t; mask (B, T) bool.
    Returns: (adv, returns), both (B, T) float64 and zero at masked positions; returns = Â + V with
    the un-whitened Â.
    """
    cfg = config or GAEConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    r = masked_array(token_rewards, "token_rewards", M)  # masked positions → 0, never read
    V = masked_array(values, "values", M)
    A = np.zeros(M.shape)
    for b in range(M.shape[0]):
        steps = steps_of_row(M[b], cfg.masked_steps)
        A[b, steps] = gae_from_residuals(td_residuals(r[b], V[b], steps, cfg.gamma), cfg.gamma, cfg.lam)
    A = np.where(M, A, 0.0)
    returns = np.where(M, A + V, 0.0)
    if cfg.whiten:
        A = batch_normalize(A, M, cfg.whiten_ddof, cfg.whiten_eps, "inside")
    return A, returns


def make_gae_inputs(rng: np.random.Generator) -> dict:
    """A random GAE batch: ragged right-padded masks (some with interior holes), garbage in padding."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 8))
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    if rng.random() < 0.3:  # interior masked tokens, as in multi-turn tool output
        mask &= rng.random((B, T)) > 0.2
    token_rewards = np.where(rng.random((B, T)) < 0.3, rng.normal(size=(B, T)), 0.0)
    values = rng.normal(size=(B, T))
    garbage = np.array([np.nan, np.inf, -np.inf, 1e30])
    token_rewards[~mask] = rng.choice(garbage, size=int((~mask).sum()))
    values[~mask] = rng.choice(garbage, size=int((~mask).sum()))
    return {"token_rewards": token_rewards, "values": values, "mask": mask}


register(Spec(
    name="gae", kind="advantage", family="baseline", paper=GAE_PAPER, status="implemented",
    summary="generalized advantage estimation on ragged token batches; returns (adv, returns)",
    fn=gae_advantage, config_cls=GAEConfig, outputs=("adv", "returns"), make_inputs=make_gae_inputs,
    equations=(
        Equation("gae-td", "δ_t = r_t + γ V(s_{t+1}) − V(s_t)", "arXiv 1506.02438 §3 eq. (11)", "secondary",
                 "td_residuals", note="standard; matches notes papers_A.md §B and verl/OpenRLHF code; paper text "
                 "beyond the abstract not re-read in this session"),
        Equation("gae-adv", "Â_t = Σ_{l≥0} (γλ)^l δ_{t+l}", "arXiv 1506.02438 §3 eq. (16)", "secondary",
                 "gae_from_residuals", note="λ=0 → δ_t (eq. 17); λ=1 → Σ γ^l r_{t+l} − V_t (eq. 18)"),
        Equation("gae-returns", "R̂_t = Â_t + V(s_t)", "PPO/verl/OpenRLHF value target", "official-code",
                 "gae_advantage", note="not an equation of the GAE paper; the value target every framework uses"),
    ),
    properties=(
        "properties/test_gae.py::test_lambda1_is_monte_carlo_advantage",
        "properties/test_gae.py::test_lambda0_is_td_error",
        "properties/test_gae.py::test_returns_are_adv_plus_values",
        "properties/test_gae.py::test_matches_naive_quadratic_sum",
        "properties/test_gae.py::test_padding_garbage_ignored",
        "properties/test_gae.py::test_whiten_mean0_std1",
    ),
))

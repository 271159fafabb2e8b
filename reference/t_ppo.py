"""T-PPO: Truncated Proximal Policy Optimization — extended GAE over truncated windows, token filtering.

Fan, Liu, Yue, Chen, Wang, Yu, Zhang, Lin, Zhu, Yuan, et al. (ByteDance Seed), "Truncated Proximal Policy
Optimization", arXiv 2506.15050 (Jun 2025). No official code is public.

Provenance (see the registry entry's equations): only the abstract of the paper was readable here. The
abstract names the two parts — Extended GAE (EGAE) "for advantage estimation derived from incomplete
responses", and independent policy / value optimisation that "selectively filters prompt and truncated
tokens". The EGAE formula and the filtering rules come from third-party notes on the paper (reviewers'
summaries, recorded in our notes as [N]); the precise token rule for the policy window is ours.

Setting ("successive batching"). Each training step, every active response is extended by at most a
window of l tokens. A response that emits EOS inside the window is *finished*; one that does not is
*truncated* and keeps generating in the next step. In a batch row, ``mask`` marks every response token
known so far (positions 0..l−1 under right padding; prompt tokens are never in the mask), ``finished``
(B,) says whether the row ended in this step, and ``window_start`` (B,) is the first position generated
in this step (tokens before it were generated, and trained on, in earlier steps).

EGAE (notes [N]; the reviewers quote the assumption V(s_l) = V(s_{l−1})). Steps are the valid tokens
(interior masked tokens are skipped, as in :mod:`rlspec.reference.gae`); V_t = V(s_t) is the critic's value
before token t and r_t the token reward (0 before the end for an outcome reward)::

    δ_t = r_t + γ·V(s_{t+1}) − V(s_t)                       for t < l − 1
    δ_{l−1} = r_{l−1} + γ·V̂(s_l) − V(s_{l−1}),   V̂(s_l) = 0 if finished, V(s_{l−1}) if truncated
    Â_t = Σ_{k=0}^{l−1−t} (γλ)^k δ_{t+k}                    (computed as Â_t = δ_t + γλ·Â_{t+1})

A finished row is exactly GAE (V̂ = 0 after the terminal token). A truncated row has no value for the
state after its last known token — it would need one more critic evaluation — and EGAE replaces it by
the last value it has. Exact identity (ours, algebra): with the true V(s_l) of the continued response,

    Â_t^GAE(full) = Â_t^EGAE + (γλ)^{l−1−t}·γ·(V(s_l) − V(s_{l−1})) + (γλ)^{l−t}·Â_l^GAE(full),

so the truncation error at token t decays like (γλ)^{l−1−t}, and with γ = λ = 1 and no intermediate
reward Â_t^EGAE = V(s_{l−1}) − V(s_t) (the sum telescopes).

Value targets (notes [N]: the critic is trained only on *completed* responses, with Monte-Carlo returns):
R̂_t = Â_t^{(γ, λ_c)} + V_t on finished rows with ``critic_lam`` λ_c = 1 (then R̂_t = Σ_k γ^k r_{t+k}, the
Monte-Carlo return), 0 on truncated rows.

Token filtering (abstract + notes; the exact window rule is ours, ``reconstructed``):
  * policy update: the tokens of the current window of every row, finished or truncated —
    ``policy_mask = mask ∧ t ≥ window_start`` (``window_start=None``: every known token);
  * value update: every token of finished rows only — ``value_mask = mask ∧ finished``.
The policy loss is then PPO-clip (:mod:`rlspec.reference.ppo`) with ``adv`` = EGAE and ``mask =
policy_mask``; the critic loss is :func:`tppo_value_loss` (registry entry ``t_ppo_value``).

Defaults: the paper's window length l, λ values and clip ranges were not recovered (notes: NOT FOUND).
γ = 1, λ = 0.95 follow the same group's VC-PPO decoupled GAE (policy λ = 0.95, critic λ = 1) and are
not the paper's stated values; the critic loss defaults to the unclipped ½(V − R̂)² token mean.

Defined cases: rows without a valid token give 0 everywhere; masked positions are 0 in every output and
are never read (they may hold NaN/inf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import aggregation
from rlspec.reference._validate import as_2d, as_mask, fail, in_range, masked_array
from rlspec.reference.gae import gae_from_residuals
from rlspec.reference.registry import Equation, Paper, Spec, register
from rlspec.reference.value_clip import ValueClipConfig, value_loss_per_token

T_PPO_PAPER = Paper(arxiv="2506.15050", title="Truncated Proximal Policy Optimization", year=2025)


@dataclass(frozen=True)
class TPPOConfig:
    """gamma γ ∈ [0, 1]; lam λ ∈ [0, 1] for the policy's EGAE; critic_lam λ_c ∈ [0, 1] for the value
    targets (1 = Monte-Carlo returns). The paper's own values were not recovered (see module docstring)."""

    gamma: float = 1.0
    lam: float = 0.95
    critic_lam: float = 1.0

    def __post_init__(self) -> None:
        in_range(self.gamma, "gamma", 0.0, 1.0)
        in_range(self.lam, "lam", 0.0, 1.0)
        in_range(self.critic_lam, "critic_lam", 0.0, 1.0)


@dataclass(frozen=True)
class TPPOValueConfig(ValueClipConfig):
    """The critic loss: eps = value clip range (None: unclipped ½(V − R̂)², our default — the paper's
    choice was not recovered); aggregation over the value tokens as in :class:`ValueClipConfig`."""

    eps: float | None = None


# --------------------------------------------------------------------------- validation
def as_row_flags(x, B: int, name: str) -> np.ndarray:
    """A (B,) boolean vector (0/1 integers accepted)."""
    a = np.asarray(x)
    if a.ndim != 1 or a.shape[0] != B:
        raise fail(name, f"shape {a.shape}", f"shape ({B},): one flag per row")
    return as_mask(a, name)


def as_window_start(x, B: int, name: str = "window_start") -> np.ndarray:
    """A (B,) vector of integer positions ≥ 0 (None: every row's window starts at 0)."""
    if x is None:
        return np.zeros(B, dtype=np.int64)
    a = np.asarray(x)
    if a.ndim != 1 or a.shape[0] != B:
        raise fail(name, f"shape {a.shape}", f"shape ({B},): one start position per row")
    if not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == np.round(a)).all():
            a = a.astype(np.int64)
        else:
            raise fail(name, f"dtype {a.dtype}", "integer positions")
    if (a < 0).any():
        raise fail(name, f"a negative position {int(a.min())}", "positions ≥ 0")
    return a.astype(np.int64)


# --------------------------------------------------------------------------- equations
def truncation_bootstrap(V_steps: np.ndarray, finished: bool) -> float:
    """V̂(s_l), the value after the last known step: 0 if the response finished, else V(s_{l−1}) (EGAE)."""
    return 0.0 if finished or V_steps.size == 0 else float(V_steps[-1])


def egae_residuals(r: np.ndarray, V: np.ndarray, gamma: float, bootstrap: float) -> np.ndarray:
    """δ_k = r_k + γ·V_{k+1} − V_k along one row's steps (l,), with V_l := ``bootstrap``."""
    V_next = np.append(V[1:], bootstrap)
    return r + gamma * V_next - V


def egae_row(r: np.ndarray, V: np.ndarray, finished: bool, gamma: float, lam: float) -> np.ndarray:
    """Â (l,) for one row's steps: Â_k = Σ_j (γλ)^j δ_{k+j} with the truncation bootstrap."""
    return gae_from_residuals(egae_residuals(r, V, gamma, truncation_bootstrap(V, finished)), gamma, lam)


def policy_token_mask(mask: np.ndarray, window_start: np.ndarray) -> np.ndarray:
    """Tokens of the policy update (B, T): mask ∧ t ≥ window_start (this step's window, any row)."""
    return mask & (np.arange(mask.shape[1])[None, :] >= window_start[:, None])


def value_token_mask(mask: np.ndarray, finished: np.ndarray) -> np.ndarray:
    """Tokens of the value update (B, T): mask ∧ finished (truncated responses are filtered out)."""
    return mask & finished[:, None]


def tppo_advantage(token_rewards, values, mask, finished, window_start=None, config: TPPOConfig | None = None):
    """EGAE advantages, Monte-Carlo value targets and the two token filters for a T-PPO batch.

    Args: token_rewards, values (B, T) float (V(s_t) before token t); mask (B, T) bool, the response
    tokens known so far; finished (B,) bool; window_start (B,) int ≥ 0 or None (= 0).
    Returns: (adv, returns, policy_mask, value_mask), each (B, T): adv is EGAE at every valid token;
    returns are the λ_c value targets on finished rows (0 on truncated rows and at masked positions);
    policy_mask / value_mask are the tokens of the policy / value update.
    """
    cfg = config or TPPOConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    B = M.shape[0]
    r = masked_array(token_rewards, "token_rewards", M)  # masked positions → 0, never read
    V = masked_array(values, "values", M)
    done = as_row_flags(finished, B, "finished")
    start = as_window_start(window_start, B)
    A, returns = np.zeros(M.shape), np.zeros(M.shape)
    for b in range(B):
        steps = np.flatnonzero(M[b])  # skip interior masked tokens
        if steps.size == 0:
            continue
        A[b, steps] = egae_row(r[b, steps], V[b, steps], bool(done[b]), cfg.gamma, cfg.lam)
        if done[b]:
            A_c = egae_row(r[b, steps], V[b, steps], True, cfg.gamma, cfg.critic_lam)
            returns[b, steps] = A_c + V[b, steps]
    return A, returns, policy_token_mask(M, start), value_token_mask(M, done)


def tppo_value_loss(values, old_values, returns, mask, config: TPPOValueConfig | None = None, finished=None):
    """The critic loss on finished responses only, and its gradient w.r.t. ``values``.

    ℓ_t = ½(V_t − R̂_t)² (or PPO's clipped form with ``eps``), aggregated over value_mask = mask ∧ finished.
    Args: values, old_values, returns (B, T) float; mask (B, T) bool; finished (B,) bool or None (= every
    row finished). Values of truncated rows are never read. Returns: (loss, dvalues (B, T)); dvalues is
    c ⊙ ∂ℓ/∂V with c the aggregation coefficients of value_mask, zero elsewhere.
    """
    cfg = config or TPPOValueConfig()
    V0 = as_2d(values, "values")
    m = as_mask(mask, "mask", V0.shape)
    done = np.ones(m.shape[0], bool) if finished is None else as_row_flags(finished, m.shape[0], "finished")
    vm = value_token_mask(m, done)  # (B, T): the only positions read below
    V = masked_array(values, "values", vm)
    V_old = masked_array(old_values, "old_values", vm)
    R = masked_array(returns, "returns", vm)
    ell, dell = value_loss_per_token(V, V_old, R, cfg.eps)
    c = aggregation.coefficients(vm, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                                 seq_denominator=cfg.seq_denominator)
    return float((c * np.where(vm, ell, 0.0)).sum()), c * np.where(vm, dell, 0.0)


# --------------------------------------------------------------------------- conformance inputs
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _ragged(rng: np.random.Generator, B: int, T: int) -> np.ndarray:
    lengths = rng.integers(0, T + 1, size=B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    if rng.random() < 0.25:  # interior masked tokens (tool output)
        mask &= rng.random((B, T)) > 0.2
    return mask


def make_tppo_inputs(rng: np.random.Generator) -> dict:
    """A T-PPO batch: ragged responses, about half finished (outcome reward on their last token, small
    per-token penalties), windows starting anywhere in the response, garbage padding."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    mask = _ragged(rng, B, T)
    finished = rng.random(B) < 0.5
    r = np.where(rng.random((B, T)) < 0.3, 0.05 * rng.normal(size=(B, T)), 0.0)
    for b in np.flatnonzero(finished):
        pos = np.flatnonzero(mask[b])
        if pos.size:
            r[b, pos[-1]] += float(rng.choice([0.0, 1.0]))
    values = rng.normal(size=(B, T))
    window_start = rng.integers(0, T + 1, size=B)
    for x in (r, values):
        x[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    return {"token_rewards": r, "values": values, "mask": mask, "finished": finished,
            "window_start": window_start}


def make_value_inputs(rng: np.random.Generator) -> dict:
    """A critic batch with ``finished`` flags; the truncated rows hold garbage even at valid positions."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 8))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    finished = rng.random(B) < 0.6
    V_old = rng.normal(size=(B, T))
    V = V_old + rng.normal(scale=float(rng.choice([0.05, 0.3, 1.0])), size=(B, T))
    R = V_old + rng.normal(size=(B, T))
    read = mask & finished[:, None]
    out = {"values": V, "old_values": V_old, "returns": R}
    for x in out.values():
        x[~read] = rng.choice(GARBAGE, size=int((~read).sum()))
    return {**out, "mask": mask, "finished": finished}


# --------------------------------------------------------------------------- registry
_NOTES = "papers_A.md §5 (reviewers' summaries, tagged [N]); the paper's method section was not readable here"

register(Spec(
    name="t_ppo", kind="advantage", family="ratio/clipping", paper=T_PPO_PAPER, status="partial",
    summary="extended GAE (EGAE) on truncated response windows, Monte-Carlo value targets on finished "
            "responses, and the policy / value token filters",
    fn=tppo_advantage, config_cls=TPPOConfig, outputs=("adv", "returns", "policy_mask", "value_mask"),
    make_inputs=make_tppo_inputs,
    missing="the paper's hyperparameters (window length l, policy and critic λ, clip ranges: not recovered; "
            "our defaults γ = 1, λ = 0.95, λ_c = 1 are VC-PPO's) and the successive-batching rollout scheduler "
            "(orchestration, not an equation); the policy window rule is our reading",
    extras={"egae_row": egae_row, "policy_token_mask": policy_token_mask, "value_token_mask": value_token_mask,
            "conformance_configs": lambda: [("gamma=0.9,lam=0.7", {"gamma": 0.9, "lam": 0.7}),
                                            ("critic_lam=0.95", {"critic_lam": 0.95})]},
    equations=(
        Equation("egae-td", "δ_t = r_t + γV(s_{t+1}) − V(s_t);  δ_{l−1} = r_{l−1} + γV̂(s_l) − V(s_{l−1}), "
                 "V̂(s_l) = V(s_{l−1}) if truncated, 0 if finished",
                 "arXiv 2506.15050, EGAE (section not read)", "secondary", "egae_residuals",
                 note="the assumption V(s_l) = V(s_{l−1}) as quoted by reviewers; " + _NOTES),
        Equation("egae-adv", "Â_t = Σ_{k=0}^{l−1−t} (γλ)^k δ_{t+k}", "arXiv 2506.15050, EGAE (section not read)",
                 "secondary", "egae_row", note="GAE over the known tokens; equals GAE on finished rows (tested)"),
        Equation("egae-truncation-identity",
                 "Â_t^GAE = Â_t^EGAE + (γλ)^{l−1−t}γ(V(s_l) − V(s_{l−1})) + (γλ)^{l−t}Â_l^GAE",
                 "derived from the two definitions", "reconstructed", "egae_row",
                 note="exact algebra (ours); tested against reference/gae.py on the continued response"),
        Equation("value-targets", "R̂_t = Σ_k γ^k r_{t+k} on finished rows (λ_c = 1); none on truncated rows",
                 "arXiv 2506.15050, value update (section not read)", "secondary", "tppo_advantage",
                 note="'value model trained only on completed responses with Monte-Carlo returns'; " + _NOTES),
        Equation("token-filter", "policy_mask = mask ∧ t ≥ window_start;  value_mask = mask ∧ finished",
                 "arXiv 2506.15050 abstract ('selectively filtering prompt and truncated tokens')", "reconstructed",
                 "policy_token_mask", note="the abstract names the filtering; the window rule for the policy "
                                           "is our reading (window_start=None trains on every known token)"),
    ),
    properties=(
        "properties/test_t_ppo.py::test_egae_equals_gae_on_complete_windows: finished rows give reference/gae.py",
        "properties/test_t_ppo.py::test_truncation_identity: full GAE = EGAE + bootstrap error + tail",
        "properties/test_t_ppo.py::test_gamma_lambda_one_telescopes: Â_t = V(s_{l−1}) − V(s_t)",
        "properties/test_t_ppo.py::test_last_truncated_token_has_only_its_reward: Â_{l−1} = r_{l−1} + (γ−1)V(s_{l−1})",
        "properties/test_t_ppo.py::test_value_targets_are_monte_carlo_returns: R̂_t = Σγ^k r_{t+k}, finished rows",
        "properties/test_t_ppo.py::test_token_filters: policy = window tokens, value = finished rows",
        "properties/test_t_ppo.py::test_padding_is_never_read: garbage padding changes nothing",
        "properties/test_t_ppo.py::test_optimized_matches_reference: torch EGAE equals the reference",
        "untested: T-PPO improves training efficiency up to 2.5× on AIME 2024 with Qwen2.5-32B — an LLM-scale "
        "experiment",
        "untested: EGAE 'maintains the integrity of policy learning' — qualitative; the truncation identity "
        "states its error exactly",
    ),
))

register(Spec(
    name="t_ppo_value", kind="value_loss", family="ratio/clipping", paper=T_PPO_PAPER, status="partial",
    summary="T-PPO's critic loss: trained on finished responses only (truncated rows filtered out)",
    fn=tppo_value_loss, config_cls=TPPOValueConfig, outputs=("loss", "dvalues"), make_inputs=make_value_inputs,
    missing="the paper's value-loss form and clip range were not recovered; unclipped ½(V − R̂)² token mean is "
            "our default (eps gives PPO's clipped form)",
    extras={"conformance_configs": lambda: [("eps=0.2", {"eps": 0.2})], "grad_input": "values"},
    equations=(
        Equation("value-filter", "L_V = Σ_t c_t ½(V_t − R̂_t)²,  c over value_mask = mask ∧ finished",
                 "arXiv 2506.15050, value update (section not read)", "secondary", "tppo_value_loss",
                 note="filtering of truncated responses from the critic update: abstract + " + _NOTES),
        Equation("value-loss-form", "ℓ = ½(V − R̂)²  (eps: ½ max((V − R̂)², (V_old + clip(V − V_old, ±ε) − R̂)²))",
                 "PPO critic term, not recovered for T-PPO", "reconstructed", "tppo_value_loss",
                 note="reuses reference/value_clip.py's per-token loss"),
    ),
    gradient="∂L/∂V_t = c_t (V_t − R̂_t) on value tokens (clipped form: see value_clip), 0 on truncated rows "
             "and padding",
    properties=(
        "properties/test_t_ppo.py::test_value_loss_hand_gradient_matches_finite_differences: dvalues = central FD",
        "properties/test_t_ppo.py::test_value_loss_ignores_truncated_rows: truncated rows never read; "
        "equals value_clip on value_mask",
    ),
))

"""VAS: Value Augmented Sampling — decode a frozen base model with a value-shifted distribution.

Han, Shenfeld, Srivastava, Kim, Agrawal, "Value Augmented Sampling for Language Model Alignment and
Personalization", arXiv 2405.06639 (2024). Official code: github.com/idanshen/Value-Augmented-Sampling
(``vas_trainer.py``: ``VASTrainer.compute_advantages``, ``VASTrainer.loss``, ``VASTrainer.step``,
``VASTrainer.generate``, ``VASLogitsProcessor.__call__``; ``vas_config.py``; ``tinyllama_hh.py``). Only
the abstract of the paper was readable to us: the decoding shift, the value targets and the critic loss
below are confirmed in the official code; the KL-regularised derivation is restated from our notes.

Where VAS sits: no policy update at all. A value model V_φ is fitted (TD(λ)) on responses sampled from
the frozen base model π₀ and scored by the reward; at decoding time the base model's next-token
logits are shifted by the value of each candidate continuation.

Notation: s a prefix (state), a a next token, ℓ_a the base model's logit, V(s⊕a) the value model's
estimate of the prefix extended by a (≈ Q^{π₀}(s, a) when V fits V^{π₀}), β ≥ 0 the strength::

    KL objective    max_π E_π r − (1/β) KL(π ‖ π₀)  ⇒  π*(a|s) ∝ π₀(a|s) exp(β Q*_β(s, a))     (soft Q*)
    VAS policy      π_β(a|s) ∝ π₀(a|s) exp(β Q^{π₀}(s, a))        (Q of the frozen base: one soft step)
    decoding shift  ℓ'_a = ℓ_a + β (V(s⊕a) − mean_{b ∈ top-k} V(s⊕b))   for a in the k largest ℓ
                    ℓ'_a = ℓ_a                                          otherwise (the code keeps them)
    value targets   r_t = score on the last valid token, 0 elsewhere
                    δ_t = r_t + γ V_{t+1} − V_t,   Â_t = δ_t + γλ Â_{t+1},   R_t = Â_t + V_t
    critic loss     L_V = ½ · mean_{valid t} (V_φ(s_t) − R_t)²       (R computed once, with the values
                                                                       at collection time)
    composition     ℓ' = ℓ + Σ_j β_j (V_j − mean_{top-k} V_j)   (several rewards, each with its own β_j)

Code defaults: γ = 1, λ = 0.95, Adam lr 1.41e-5, 32 samples per step, 2 epochs per batch
(``vas_config.py``); top-k = 20 and β = 1.0 (``VASLogitsProcessor``, ``VASTrainer.generate``); the
repository's example decodes with β = 3.0 (``tinyllama_hh.py``). The TRL port uses k = 10 (our notes).

What the exact token tree shows (``properties/test_vas.py``, :mod:`rlspec.reference.envs.token_tree`):
VAS with the exact Q^{π₀} never does worse than π₀ (performance-difference lemma: every state's
E_{π_β} A^{π₀}(s, ·) ≥ 0), and with the soft Q*_β it is the exact optimum of the KL objective
(π₀(y) e^{βr(y)}/Z). With Q^{π₀} it is one soft improvement step, and its expected reward is NOT
monotone in β in general: a depth-2 counter-example is in the tests (the greedy limit β → ∞ commits
to the branch whose *base-policy* value is higher).

Conventions (ours): top-k ties go to the lower token index (stable sort); k ≥ vocabulary means every
token; ``outside_topk = "drop"`` samples from the top-k renormalised distribution instead of keeping
the other tokens at their base logits (the code keeps them; notes flag the paper's wording as
ambiguous). Values outside the top-k are never read (they may be NaN). On the token tree, a value
table V fits depths 0..d−1; Q(s, a) = V(s⊕a) below depth d and the reward r(y) for a finished response
(:func:`q_from_values`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import aggregation, common
from rlspec.reference._validate import as_2d, as_mask, choice, fail, in_range, masked_array, positive
from rlspec.reference.envs import token_tree as tt
from rlspec.reference.gae import GAEConfig, gae_advantage
from rlspec.reference.registry import Equation, Paper, Spec, register

VAS_PAPER = Paper(arxiv="2405.06639", title="Value Augmented Sampling for Language Model Alignment and "
                  "Personalization", year=2024)


@dataclass(frozen=True)
class VASConfig:
    """beta: value strength β ≥ 0 (code default 1.0; the repository's example uses 3.0); topk: how many
    of the base model's largest logits are shifted (code 20; TRL port 10); outside_topk: "keep" (the
    code: other tokens keep their base logits) or "drop" (sample from the top-k only)."""

    beta: float = 1.0
    topk: int = 20
    outside_topk: str = "keep"

    def __post_init__(self) -> None:
        positive(self.beta, "beta", allow_zero=True)
        if isinstance(self.topk, bool) or not isinstance(self.topk, (int, np.integer)) or self.topk < 1:
            raise fail("topk", repr(self.topk), "an integer ≥ 1")
        choice(self.outside_topk, "outside_topk", ("keep", "drop"))


@dataclass(frozen=True)
class VASValueConfig(common.CriticAggregationOptions):
    """Critic loss aggregation: token-mean (the code's masked_mean) by default; ``normalizer`` (the global
    count when the batch is sharded), ``const`` and ``seq_denominator`` as in :mod:`rlspec.reference.aggregation`."""


# ---------------------------------------------------------------------------- decoding


def topk_indices(logits: np.ndarray, k: int) -> np.ndarray:
    """The k largest logits of each row, (B, min(k, V)) int; ties to the lower index (stable sort)."""
    return np.argsort(-logits, axis=1, kind="stable")[:, :min(k, logits.shape[1])]


def centred_topk_values(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """V(s⊕a) − mean_{b ∈ top-k} V(s⊕b) for the top-k tokens, (B, k). Only ``values[idx]`` is read."""
    v = np.take_along_axis(values, idx, axis=1)              # (B, k)
    return v - v.mean(axis=1, keepdims=True)


def vas_shift(logits: np.ndarray, values: np.ndarray, beta: float, k: int) -> np.ndarray:
    """ℓ' = ℓ + β (V − mean_top-k V) on the top-k tokens, ℓ elsewhere, (B, V). Code: VASLogitsProcessor."""
    idx = topk_indices(logits, k)
    out = logits.copy()
    np.put_along_axis(out, idx, np.take_along_axis(logits, idx, axis=1) + beta * centred_topk_values(values, idx),
                      axis=1)
    return out


def sampling_probs(shifted: np.ndarray, logits: np.ndarray, k: int, outside_topk: str) -> np.ndarray:
    """softmax(ℓ') over all tokens ("keep") or over the top-k of the base logits only ("drop"), (B, V)."""
    z = shifted.copy()
    if outside_topk == "drop":
        keep = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(keep, topk_indices(logits, k), True, axis=1)
        z = np.where(keep, z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _decoding_inputs(logits, values, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 logits (B, V) and candidate values (B, V); NaN/inf allowed outside the top-k."""
    L = as_2d(logits, "logits")
    if L.shape[1] == 0:
        raise fail("logits", f"shape {L.shape}", "at least one token")
    if not np.isfinite(L).all():
        b, a = np.argwhere(~np.isfinite(L))[0]
        raise fail("logits", f"a non-finite value {L[b, a]} at ({b}, {a})", "finite logits")
    V = as_2d(values, "candidate_values")
    if V.shape != L.shape:
        raise fail("candidate_values", f"shape {V.shape}", f"the shape of logits, {L.shape}: V(s⊕a) for every token a")
    read = np.take_along_axis(V, topk_indices(L, k), axis=1)
    if not np.isfinite(read).all():
        raise fail("candidate_values", "a non-finite value at a top-k token", "finite values for the top-k tokens "
                   "(values outside the top-k are never read)")
    V = np.where(np.isfinite(V), V, 0.0)  # outside the top-k: never read, made harmless
    return L, V


def vas_logits(logits, candidate_values, config: VASConfig | None = None) -> dict:
    """The registry entry: VAS's decoding shift of one step of generation.

    Args: logits (B, V) base-model next-token logits; candidate_values (B, V) value-model estimates V(s⊕a)
    for every candidate token a (only the top-k of each row are read; others may be NaN).
    Returns: {"logits": ℓ' (B, V), "probs": the sampling distribution (B, V)}.
    """
    cfg = config or VASConfig()
    L, V = _decoding_inputs(logits, candidate_values, cfg.topk)
    shifted = vas_shift(L, V, cfg.beta, cfg.topk)
    return {"logits": shifted, "probs": sampling_probs(shifted, L, cfg.topk, cfg.outside_topk)}


def composed_values(values, betas) -> np.ndarray:
    """Σ_j β_j V_j for reward composition: values (J, B, V), betas (J,) -> (B, V); decode it with β = 1."""
    V = np.asarray(values, dtype=np.float64)
    b = np.asarray(betas, dtype=np.float64)
    if V.ndim != 3 or b.shape != (V.shape[0],):
        raise fail("betas", f"shape {b.shape} for values of shape {V.shape}", "one β_j per value model (J,)")
    return np.tensordot(b, V, axes=1)


# ---------------------------------------------------------------------------- exact policies on a token tree


def vas_policy(pi0, Q, beta: float) -> np.ndarray:
    """π_β(a|s) ∝ π₀(a|s) exp(β Q(s, a)) row-wise; pi0, Q (..., K) -> (..., K). β = 0 gives π₀."""
    beta = positive(beta, "beta", allow_zero=True)
    p = np.asarray(pi0, dtype=np.float64)
    z = beta * np.asarray(Q, dtype=np.float64)
    z = z - np.where(p > 0, z, -np.inf).max(axis=-1, keepdims=True)
    w = np.where(p > 0, p * np.exp(np.minimum(z, 0.0)), 0.0)
    return w / w.sum(axis=-1, keepdims=True)


def q_from_values(tree: tt.TokenTree, V) -> tuple:
    """Q(s, a) from a value table: V(s⊕a) for |s⊕a| < d, r(s⊕a) for a finished response; V is a tuple
    of d arrays V[t] (K**t,) (depths 0..d−1). Returns d arrays (K**t, K)."""
    if len(V) != tree.d:
        raise fail("V", f"{len(V)} depths", f"d = {tree.d} arrays, V[t] of shape (K**t,)")
    nxt = [np.asarray(V[t], dtype=np.float64) for t in range(1, tree.d)] + [tree.r]
    return tuple(nxt[t].reshape(tree.K**t, tree.K) for t in range(tree.d))


def vas_tree_policy(tree: tt.TokenTree, beta: float, Q=None) -> tuple:
    """π_β at every prefix of the tree; Q defaults to the exact Q^{π₀} (:func:`token_tree.q_values`)."""
    Q = tt.q_values(tree) if Q is None else Q
    return tuple(vas_policy(tree.pi0[t], Q[t], beta) for t in range(tree.d))


# ---------------------------------------------------------------------------- value learning


def terminal_rewards(scores, mask) -> np.ndarray:
    """r_t: each response's score on its last valid token, 0 elsewhere, (B, T). Code: VASTrainer.step."""
    M = as_mask(mask, "mask")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (M.shape[0],) or not np.isfinite(s).all():
        raise fail("scores", f"shape {s.shape}", f"finite scores of shape ({M.shape[0]},)")
    r = np.zeros(M.shape)
    for b in np.flatnonzero(M.any(axis=1)):
        r[b, np.flatnonzero(M[b])[-1]] = s[b]
    return r


def td_lambda_returns(token_rewards, values, mask, gamma: float = 1.0, lam: float = 0.95):
    """(Â, R) of VAS's ``compute_advantages``: GAE with masked positions as zero-reward zero-value steps.

    This is :func:`rlspec.reference.gae.gae_advantage` with ``masked_steps="zero"`` (the code multiplies
    values and rewards by the mask); both are (B, T), zero at masked positions.
    """
    in_range(gamma, "gamma", 0.0, 1.0)
    in_range(lam, "lam", 0.0, 1.0)
    return gae_advantage(token_rewards, values, mask, GAEConfig(gamma=gamma, lam=lam, masked_steps="zero"))


def vas_value_loss(values, old_values, returns, mask, config: VASValueConfig | None = None):
    """The critic loss L_V = ½ mean_valid (V − R)² and ∂L_V/∂V = c ⊙ (V − R) (c: aggregation weights).

    ``old_values`` (the values at collection time) only enter through ``returns``; they are accepted for
    the value-loss signature and validated, never used. Returns (loss: float, dvalues: (B, T)).
    """
    cfg = config or VASValueConfig()
    V = as_2d(values, "values")
    m = as_mask(mask, "mask", V.shape)
    V = masked_array(values, "values", m)
    masked_array(old_values, "old_values", m)
    R = masked_array(returns, "returns", m)
    c = aggregation.coefficients(m, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                                 seq_denominator=cfg.seq_denominator)
    e = np.where(m, V - R, 0.0)
    return float((c * 0.5 * e**2).sum()), c * e


def train_value_td_lambda(tree: tt.TokenTree, iters: int = 300, batch: int = 32, epochs: int = 2, lr: float = 1.0,
                          gamma: float = 1.0, lam: float = 0.95, seed: int = 0,
                          lr_decay: float = 0.0) -> tuple[tuple, np.ndarray]:
    """VAS's value learning on a token tree, tabular: V(s) for every prefix of depth 0..d−1.

    Each iteration samples ``batch`` responses from the frozen π₀, puts the reward on the last token,
    computes (Â, R) with the current values (:func:`td_lambda_returns`), then takes ``epochs`` full-batch
    gradient steps of size lr·(1+k)^(−lr_decay) on :func:`vas_value_loss` (token-mean), scattering ∂L/∂V_t
    into the table (the code uses Adam on a network; a decaying step lets the tabular run reach V^{π₀}
    instead of a noise floor). Starts from V = 0. Returns (V: tuple of d arrays, err: (iters+1,) max |V − V^{π₀}| per iteration).
    """
    positive(lr, "lr")
    positive(lr_decay, "lr_decay", allow_zero=True)
    rng = np.random.default_rng(seed)
    K, d = tree.K, tree.d
    V = [np.zeros(K**t) for t in range(d)]
    exact = tt.values(tree)
    err = [max(np.abs(V[t] - exact[t]).max() for t in range(d))]
    mask = np.ones((batch, d), dtype=bool)
    for k in range(int(iters)):
        step = lr * (1.0 + k) ** (-lr_decay)
        tokens, scores = tt.sample(tree, tree.pi0, batch, rng)
        idx = [tt.prefix_index(tokens[:, :t], K) for t in range(d)]   # state before token t, (B,) each
        old = np.stack([V[t][idx[t]] for t in range(d)], axis=1)       # (B, d)
        _, R = td_lambda_returns(terminal_rewards(scores, mask), old, mask, gamma, lam)
        for _ in range(int(epochs)):
            cur = np.stack([V[t][idx[t]] for t in range(d)], axis=1)
            _, dV = vas_value_loss(cur, old, R, mask)
            for t in range(d):
                V[t] = V[t] - step * np.bincount(idx[t], weights=dV[:, t], minlength=K**t)
        err.append(max(np.abs(V[t] - exact[t]).max() for t in range(d)))
    return tuple(V), np.asarray(err)


# ---------------------------------------------------------------------------- registry


def make_inputs(rng: np.random.Generator) -> dict:
    """A decoding step: distinct logits exactly representable in bfloat16 (so every dtype picks the same
    top-k), values N(0, 1) with NaN outside the top-k in some draws; sometimes a config override."""
    B, Vn = int(rng.integers(1, 6)), int(rng.integers(2, 60))
    logits = np.stack([rng.permutation(np.arange(-Vn, Vn))[:Vn] / 4.0 for _ in range(B)])
    values = rng.normal(size=(B, Vn)) * rng.choice([0.5, 2.0])
    out = {"logits": logits, "candidate_values": values}
    k = int(rng.choice([1, 3, 10, 20, 100]))
    if rng.random() < 0.5:
        keep = np.zeros((B, Vn), dtype=bool)
        np.put_along_axis(keep, topk_indices(logits, k), True, axis=1)
        values[~keep] = np.nan
        out["config"] = {"topk": k, "beta": float(rng.choice([0.0, 1.0, 3.0]))}
    return out


EQUATIONS = (
    Equation("kl-optimum", "max_π E_π r − (1/β) KL(π‖π₀)  ⇒  π*(a|s) ∝ π₀(a|s) exp(β Q*_β(s,a))",
             "arXiv 2405.06639 §3 (as restated in our notes papers_C §8)", "secondary", "vas_tree_policy",
             note="paper body not readable here; the identity π*(y) ∝ π₀(y)e^{βr(y)} with the soft Q* is checked "
                  "exactly on the token tree (soft value iteration)"),
    Equation("vas-policy", "π_β(a|s) ∝ π₀(a|s) exp(β Q^{π₀}(s,a)),  Q^{π₀} fitted on samples of the frozen π₀",
             "arXiv 2405.06639 abstract (value from frozen-model data); notes papers_C §8", "secondary", "vas_policy",
             note="one soft policy-improvement step of π₀: improves on π₀ for every β ≥ 0 (tested), equals the "
                  "KL optimum only with the soft Q*; expected reward is not monotone in β in general (tested)"),
    Equation("decoding-shift", "ℓ'_a = ℓ_a + β (V(s⊕a) − mean_{b∈top-k} V(s⊕b)) for a ∈ top-k(ℓ); ℓ'_a = ℓ_a "
             "otherwise", "official code vas_trainer.py VASLogitsProcessor.__call__", "official-code", "vas_shift",
             note="top-k = 20 and β = 1.0 by default (VASLogitsProcessor, VASTrainer.generate); example β = 3.0 "
                  "(tinyllama_hh.py); the code keeps non-top-k logits (outside_topk='keep'); 'drop' is our option"),
    Equation("terminal-reward", "r_t = score · 1[t = last valid token]", "official code vas_trainer.py VASTrainer.step",
             "official-code", "terminal_rewards"),
    Equation("td-lambda", "δ_t = r_t + γV_{t+1} − V_t;  Â_t = δ_t + γλÂ_{t+1};  R_t = Â_t + V_t",
             "official code vas_trainer.py VASTrainer.compute_advantages; γ = 1, λ = 0.95 in vas_config.py",
             "official-code", "td_lambda_returns",
             note="values and rewards are multiplied by the mask (masked positions are zero steps): gae with "
                  "masked_steps='zero'; whiten_rewards is False by default and not implemented"),
    Equation("value-loss", "L_V = ½ · masked_mean((V_φ(s_t) − R_t)²)", "official code vas_trainer.py VASTrainer.loss",
             "official-code", "vas_value_loss",
             note="no value clipping (unlike PPO's critic); equals value_clip with eps=None (tested)"),
    Equation("composition", "ℓ' = ℓ + Σ_j β_j (V_j − mean_{top-k} V_j)", "arXiv 2405.06639 abstract (composing "
             "rewards at deployment); notes papers_C §8", "secondary", "composed_values",
             note="linear in the β_j, so composing values and decoding with β = 1 is the same shift (tested)"),
    Equation("tree-q", "Q(s,a) = V(s⊕a) for |s⊕a| < d;  Q(s,a) = r(s⊕a) for a finished response",
             "our tabular convention on reference/envs/token_tree.py", "reconstructed", "q_from_values"),
)

register(Spec(
    name="vas", kind="tabular", family="decoding", paper=VAS_PAPER, status="implemented",
    summary="value-augmented decoding: base logits shifted by β·(centred value of each top-k continuation)",
    fn=vas_logits, config_cls=VASConfig, equations=EQUATIONS, outputs=("logits", "probs"),
    make_inputs=make_inputs,
    gradient="no gradient: a decoding rule. The value model is trained with vas_value_loss (∂L_V/∂V = c ⊙ (V − R)).",
    properties=(
        "properties/test_vas.py::test_tilt_maximises_the_kl_objective_on_a_bandit: "
        "π₀e^{βr}/Z maximises E r − KL/β, value (1/β) log E_{π₀} e^{βr}",
        "properties/test_vas.py::test_bandit_reward_derivative_is_the_variance: dE_{π_β}r/dβ = Var_{π_β}(r) ≥ 0, "
        "KL(π_β‖π₀) non-decreasing in β",
        "properties/test_vas.py::test_vas_improves_on_the_base_policy_performance_difference: "
        "J(π_β) − J(π₀) = Σ_s d^{π_β}(s) E_{π_β}A^{π₀}(s,·) (both sides exact), every term ≥ 0, for all β ≥ 0",
        "properties/test_vas.py::test_per_state_surrogate_is_monotone_in_beta: "
        "d/dβ E_{π_β(·|s)} Q^{π₀}(s,·) = Var_{π_β(·|s)} Q^{π₀}(s,·) ≥ 0",
        "properties/test_vas.py::test_expected_reward_is_not_monotone_in_beta_in_general: "
        "a depth-2 tree where J(π_β) rises then falls (claim 'reward grows with β' holds for depth 1 and soft Q* only)",
        "properties/test_vas.py::test_soft_q_recovers_the_kl_optimum: with the soft Q*_β, π_β(y) = π₀(y)e^{βr(y)}/Z "
        "and E r is non-decreasing in β",
        "properties/test_vas.py::test_vas_is_below_the_kl_optimum: F_β(π_β^{VAS}) ≤ max F_β = V*_β(∅); gap 0 at depth 1",
        "properties/test_vas.py::test_td_lambda_returns_match_the_lambda_return_definition: R_t = (1−λ)Σλ^{n−1}G_t^{(n)} "
        "+ λ^{N−1}G_t (forward view); γ = λ = 1 gives the Monte-Carlo return; λ = 0 the one-step target",
        "properties/test_vas.py::test_td_lambda_value_learning_reaches_the_exact_value: tabular TD(λ) from π₀ samples "
        "→ V^{π₀} (3 seeds, max error ≤ 0.1)",
        "properties/test_vas.py::test_topk_centring_leaves_the_topk_distribution_unchanged: "
        "subtracting the top-k mean only moves mass between top-k and the rest",
        "properties/test_vas.py::test_full_topk_decoding_is_the_vas_policy: k ≥ V gives softmax(ℓ + βV) = π₀e^{βV}/Z",
        "properties/test_vas.py::test_composition_is_linear: Σβ_jV_j decoded with β = 1 = each V_j with β_j",
        "properties/test_vas.py::test_values_outside_topk_are_never_read: NaN there changes nothing",
        "properties/test_vas.py::test_optimized_matches_reference: torch decoding = reference (float64)",
        "properties/test_vas.py::test_bad_input_raises: β < 0, topk < 1, shape mismatch, NaN logits",
        "untested: VAS matches Best-of-128 at lower inference cost and beats PPO/DPO on summarisation and chat — "
        "LLM benchmarks, not reproducible on a small exact problem",
        "untested: no co-training of policy and value makes optimisation stable — an empirical claim about "
        "neural training dynamics",
    ),
    extras={"vas_policy": vas_policy, "vas_tree_policy": vas_tree_policy, "q_from_values": q_from_values,
            "td_lambda_returns": td_lambda_returns, "terminal_rewards": terminal_rewards,
            "train_value": train_value_td_lambda, "composed_values": composed_values,
            "conformance_configs": lambda: [("beta=3", {"beta": 3.0}), ("topk=5", {"topk": 5}),
                                            ("drop", {"outside_topk": "drop", "topk": 5}), ("beta=0", {"beta": 0.0})],
            "figures": (("img/vas.png", "Left: tabular TD(λ) value learning from frozen-π₀ samples on a K = 3, d = 3 "
                         "token tree (max |V − V^{π₀}|, 3 seeds). Middle: exact expected reward of VAS decoding (exact "
                         "Q^{π₀}, and the learned values) and of the KL optimum π₀e^{βr}/Z against β. Right: the "
                         "depth-2 counter-example where VAS's reward rises then falls with β."),)},
))

register(Spec(
    name="vas_value_loss", kind="value_loss", family="decoding", paper=VAS_PAPER, status="implemented",
    summary="VAS's critic loss: ½ masked-mean (V − R)² on TD(λ) targets from frozen-π₀ samples (no clipping)",
    fn=vas_value_loss, config_cls=VASValueConfig, outputs=("loss", "dvalues"),
    equations=(EQUATIONS[4], EQUATIONS[5]),
    gradient="∂L_V/∂V = c ⊙ (V − R), c the aggregation weights (1/#valid tokens for token-mean); 0 at masked positions",
    properties=(
        "properties/test_vas.py::test_value_loss_hand_gradient_matches_finite_differences",
        "properties/test_vas.py::test_value_loss_is_unclipped_ppo_value_loss: equals value_clip(eps=None)",
        "properties/test_vas.py::test_td_lambda_value_learning_reaches_the_exact_value",
        "properties/test_vas.py::test_value_loss_padding_is_never_read: NaN at masked positions changes nothing; "
        "an all-false mask gives 0",
        "properties/test_vas.py::test_optimized_matches_reference: torch autograd = hand gradient (float64)",
    ),
))

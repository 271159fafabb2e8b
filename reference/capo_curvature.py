"""CAPO (curvature): Curvature-Aware Policy Optimization — reject the tokens whose update is predicted unstable.

Melo, Abate, Gal, "Stabilizing Policy Gradients for Sample-Efficient Reinforcement Learning in LLM
Reasoning", arXiv 2510.00819 (Oct 2025; ICLR 2026). Official code: github.com/luckeciano/stable-pg-llm,
``src/open_r1/grpo_entropy_trainer.py`` (class ``GRPOEntropyTrainer``) and ``src/open_r1/sparse_optim_models/``.
Provenance: the paper's method section could not be read here (only its abstract, and Theorem 5.1 as the
image ``assets/theorem_capo.png`` in the official repository); the estimators and the masking rule below
were read in the official code, with the paper's CAPO recipe
(``recipes/Qwen2.5-Math-7B/grpo/config_grpo_efficient_grpo_adam_fisher_mask_token_1e-4_hessian_mask_token_0.01*.yaml``).

Model: the last layer only. A token with final hidden state h ∈ R^d is scored by logits z = W h, W ∈ R^{K×d},
policy π = softmax(z), sampled token a, advantage A. With v = e_a − π (the score ∂log π_a/∂z):

    g    = A · v hᵀ                               the token's gradient of A·log π_a w.r.t. W (K × d)
    P(g)                                          the update the optimiser would make from g alone:
                                                  SGD: g;  Adam: m̂/(√v̂ + ε) with prospective moments
                                                  m' = β₁m + (1−β₁)g, v' = β₂v + (1−β₂)g², bias-corrected at t+1
    u    = P(g) h                                 the change of the logits per unit learning rate (K,)
    F    = diag(π) − ππᵀ                          the softmax Fisher in logit space
    m_F  = ½ η² (vᵀu)²                            policy shift: empirical-Fisher estimate of KL(π ‖ π_new)
    m_H  = η ⟨g, P(g)⟩ + ½ η² A [(vᵀu)² − uᵀFu]   objective shift: 2nd-order model of the ratio surrogate

with η the learning rate. Acceptance (code, the paper's CAPO runs): keep the token iff m_F < τ_F and
−τ_H < m_H < τ_H (τ_F = 1e-4, τ_H = 0.01, ``hessian_symmetric_clipping=True``). Rejected tokens are removed
from the mask and the unchanged PPO/GRPO loss is applied to the remaining ones:

    ℓ_t = −min(r_t Â_t, clip(r_t, 1−ε, 1+ε) Â_t),   loss = Σ c(mask ∧ keep) ⊙ ℓ,    c = seq-mean-token-mean.

Why these forms (derived here, checked exactly in ``properties/test_capo_curvature.py``): along ΔW = η P(g),
d/ds log π_a(W + sP) = vᵀu, so (vᵀu)² is the sampled token's (empirical) Fisher quadratic form, whose mean over
a ∼ π is uᵀFu, the second derivative of KL(π ‖ π_s); and the ratio surrogate J(W) = A π_a(W)/π_a^old has
gradient g and second directional derivative A[(vᵀu)² − uᵀFu] on-policy, so m_H = J(W+ηP) − J(W) + O(η³).

Theorem 5.1 (paper; read in the repository's image): if every accepted update satisfies m_H ≥ δ_H = ω + ½Mr²
and m_F ≤ δ_F, the averaged update improves the return by at least ω − C√δ_F, C = 2γε√2/(1−γ)².
The code accepts a two-sided band on m_H instead of the theorem's lower bound; ``hessian_rule`` selects:
"symmetric" (−τ_H < m_H < τ_H, the CAPO recipe, default), "nonnegative" (0 ≤ m_H < τ_H, the code's
other branch) or "lower" (m_H ≥ τ_H, Theorem 5.1's condition with δ_H = τ_H).

Conventions and what is not built:
  * the gradient dlogp is PPO's on the kept tokens (the mask depends on h, W, a, A — never on logp), 0 on
    rejected and masked tokens; ``mask_denominators``: "kept" divides each sequence by its kept tokens (code)
    or "original" keeps the denominators of the full mask;
  * aggregation: per-sequence token mean, then the mean over all B rows (``seq_denominator='all'``, the
    code's ``per_sentence_loss.mean()``); β_KL = 0 in the recipe, so no KL term;
  * the learning rate η is a config field (the code reads the scheduler's current rate; recipe peak 1.5e-5);
  * Adam with no state yet (``adam_m``/``adam_v`` None) returns the raw gradient, as the code does;
  * without ``h``, ``W`` and ``actions`` nothing is known about the curvature and no token is rejected;
  * the code restricts π to the generation's top-k logits (renormalised) to afford a 150k vocabulary; here
    the whole (small) vocabulary is the support. Sentence- and batch-level masks (other recipes) and the
    curvature penalties (``*_lambda``) are not built.
Padding (h, actions, logp, ...) is never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference import common
from rlspec.reference._validate import as_2d, as_mask, choice, fail, in_range, masked_array, policy_batch, positive
from rlspec.reference.ppo import PPOConfig, clipped_surrogate, dual_clip
from rlspec.reference.registry import Equation, Paper, Spec, register

CAPO_CURV_PAPER = Paper(arxiv="2510.00819", title="Stabilizing Policy Gradients for Sample-Efficient Reinforcement "
                        "Learning in LLM Reasoning", year=2025)
HESSIAN_RULES = ("symmetric", "nonnegative", "lower")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class CAPOCurvatureConfig(PPOConfig):
    """lr: learning rate η of the modelled step (recipe 1.5e-5). tau_F: reject if m_F ≥ τ_F (1e-4; None = no
    Fisher test). tau_H: Hessian threshold (0.01; None = no Hessian test). hessian_rule: "symmetric" |
    "nonnegative" | "lower" (see module docstring). optimizer: "adam" (recipe) | "sgd"; adam_beta1/2, adam_eps:
    the modelled Adam's constants (HF defaults 0.9, 0.999, 1e-8). mask_denominators: "kept" | "original".
    PPO fields: eps_low = eps_high = 0.2 (TRL default); agg seq-mean-token-mean over all B rows (code)."""

    agg: str = "seq-mean-token-mean"
    seq_denominator: str | None = "all"
    lr: float = 1.5e-5
    tau_F: float | None = 1e-4
    tau_H: float | None = 0.01
    hessian_rule: str = "symmetric"
    optimizer: str = "adam"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    mask_denominators: str = "kept"

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self.lr, "lr")
        if self.tau_F is not None:
            positive(self.tau_F, "tau_F")
        if self.tau_H is not None:
            positive(self.tau_H, "tau_H")
        choice(self.hessian_rule, "hessian_rule", HESSIAN_RULES)
        choice(self.optimizer, "optimizer", OPTIMIZERS)
        in_range(self.adam_beta1, "adam_beta1", 0.0, 1.0, hi_open=True)
        in_range(self.adam_beta2, "adam_beta2", 0.0, 1.0, hi_open=True)
        positive(self.adam_eps, "adam_eps")
        choice(self.mask_denominators, "mask_denominators", ("kept", "original"))


# --------------------------------------------------------------------------- the softmax-linear head
def softmax_policy(W: np.ndarray, h: np.ndarray) -> np.ndarray:
    """π = softmax(W h) (N, K) for hidden states h (N, d) and head W (K, d); shifted by the max logit."""
    z = h @ W.T  # (N, K)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def score_direction(pi: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """v = e_a − π (N, K): ∂ log π_a / ∂z for the sampled token a."""
    v = -pi.copy()
    v[np.arange(len(actions)), actions] += 1.0
    return v


def token_gradient(adv: np.ndarray, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """g = A · v hᵀ (N, K, d): ∇_W of A·log π_a(W) for each token."""
    return adv[:, None, None] * v[:, :, None] * h[:, None, :]


def adam_direction(g: np.ndarray, m: np.ndarray, v2: np.ndarray, step: int, beta1: float, beta2: float,
                   eps: float) -> np.ndarray:
    """P(g) = m̂/(√v̂ + ε) (N, K, d) with the prospective moments m' = β₁m + (1−β₁)g, v' = β₂v + (1−β₂)g²
    (m, v2 (K, d) the state after ``step`` updates) bias-corrected at t = step + 1. The state is not changed."""
    m1 = beta1 * m[None] + (1.0 - beta1) * g
    v1 = beta2 * v2[None] + (1.0 - beta2) * g**2
    t = step + 1
    return (m1 / (1.0 - beta1**t)) / (np.sqrt(v1 / (1.0 - beta2**t)) + eps)


def logit_shift(P: np.ndarray, h: np.ndarray) -> np.ndarray:
    """u = P h (N, K): the change of the logits per unit learning rate when W moves along P (N, K, d)."""
    return np.einsum("nkd,nd->nk", P, h)


def fisher_quadratic(pi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """uᵀFu = Σ_k π_k (u_k − ū)², ū = Σ_k π_k u_k (N,): the softmax Fisher form, written to be ≥ 0 in floats."""
    ubar = (pi * u).sum(axis=1, keepdims=True)
    return (pi * (u - ubar) ** 2).sum(axis=1)


def fisher_shift(v: np.ndarray, u: np.ndarray, lr: float) -> np.ndarray:
    """m_F = ½ η² (vᵀu)² (N,): the empirical-Fisher (sampled-token) model of the policy shift KL(π ‖ π_new)."""
    return 0.5 * lr**2 * (v * u).sum(axis=1) ** 2


def hessian_shift(adv: np.ndarray, v: np.ndarray, u: np.ndarray, pi: np.ndarray, g: np.ndarray, P: np.ndarray,
                  lr: float) -> np.ndarray:
    """m_H = η⟨g, P⟩ + ½ η² A [(vᵀu)² − uᵀFu] (N,): 2nd-order model of the ratio surrogate's change."""
    first = (g * P).sum(axis=(1, 2))  # ⟨g, P(g)⟩_F
    curv = adv * ((v * u).sum(axis=1) ** 2 - fisher_quadratic(pi, u))
    return lr * first + 0.5 * lr**2 * curv


def accept(m_H: np.ndarray, m_F: np.ndarray, cfg: CAPOCurvatureConfig) -> np.ndarray:
    """keep (N,) bool: m_F < τ_F and the Hessian rule ("symmetric" |m_H| < τ_H; "nonnegative" 0 ≤ m_H < τ_H;
    "lower" m_H ≥ τ_H). A threshold set to None skips its test."""
    keep = np.ones(m_H.shape, dtype=bool)
    if cfg.tau_F is not None:
        keep &= m_F < cfg.tau_F
    if cfg.tau_H is not None:
        if cfg.hessian_rule == "symmetric":
            keep &= (m_H > -cfg.tau_H) & (m_H < cfg.tau_H)
        elif cfg.hessian_rule == "nonnegative":
            keep &= (m_H >= 0.0) & (m_H < cfg.tau_H)
        else:
            keep &= m_H >= cfg.tau_H
    return keep


def token_curvature(h: np.ndarray, W: np.ndarray, actions: np.ndarray, adv: np.ndarray, cfg: CAPOCurvatureConfig,
                    adam_m: np.ndarray | None = None, adam_v: np.ndarray | None = None,
                    adam_step: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(m_H, m_F), each (N,), for N tokens with hidden states h (N, d), sampled ids (N,), advantages (N,)."""
    pi = softmax_policy(W, h)  # (N, K)
    v = score_direction(pi, actions)  # (N, K)
    g = token_gradient(adv, v, h)  # (N, K, d)
    if cfg.optimizer == "adam" and adam_m is not None:
        P = adam_direction(g, adam_m, adam_v, adam_step, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps)
    else:  # SGD, or Adam before its first update (the code returns the raw gradient then)
        P = g
    u = logit_shift(P, h)  # (N, K)
    return hessian_shift(adv, v, u, pi, g, P, cfg.lr), fisher_shift(v, u, cfg.lr)


def adam_moments_update(adam_m: np.ndarray, adam_v: np.ndarray, adam_step: int, G: np.ndarray, beta1: float,
                        beta2: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The modelled optimiser's state after one step with gradient G (K, d): (β₁m + (1−β₁)G, β₂v + (1−β₂)G², t+1).
    The code feeds it G = the mean of g over the kept tokens (``_capo_only_update_adam_moments``)."""
    return beta1 * adam_m + (1.0 - beta1) * G, beta2 * adam_v + (1.0 - beta2) * G**2, adam_step + 1


# --------------------------------------------------------------------------- validation
def _head_inputs(h, W, actions, mask: np.ndarray, adam_m, adam_v, adam_step):
    """Validate the head's inputs; return h (N, d), W (K, d), actions (N,), adam state, for the N valid tokens."""
    W = as_2d(W, "W")
    if not np.isfinite(W).all():
        raise fail("W", "non-finite values", "a finite head weight (K, d)")
    K, d = W.shape
    H = np.asarray(h)
    if H.shape != (*mask.shape, d):
        raise fail("h", f"shape {H.shape}", f"shape {(*mask.shape, d)}: one hidden state per token, d = W.shape[1]")
    if not (np.issubdtype(H.dtype, np.floating) or np.issubdtype(H.dtype, np.integer)):
        raise fail("h", f"dtype {H.dtype}", "a real-valued array")
    Hv = H[mask].astype(np.float64)  # (N, d): only valid tokens are read
    if not np.isfinite(Hv).all():
        raise fail("h", "a non-finite value at an unmasked position", "finite hidden states wherever mask is True")
    a = np.asarray(actions)
    if a.shape != mask.shape:
        raise fail("actions", f"shape {a.shape}", f"the shape of mask, {mask.shape}")
    av = a[mask]
    if not (np.issubdtype(av.dtype, np.integer) or (np.issubdtype(av.dtype, np.floating) and
                                                      np.isfinite(av).all() and (av == np.round(av)).all())):
        raise fail("actions", f"dtype {a.dtype}", "integer token ids at unmasked positions")
    av = av.astype(np.int64)
    if av.size and (av.min() < 0 or av.max() >= K):
        raise fail("actions", f"ids in [{av.min()}, {av.max()}]", f"token ids in [0, {K}) (K = W.shape[0])")
    if (adam_m is None) != (adam_v is None):
        raise fail("adam_m, adam_v", "only one of them", "both optimiser moments or neither")
    if adam_m is not None:
        adam_m, adam_v = as_2d(adam_m, "adam_m"), as_2d(adam_v, "adam_v")
        for name, x in (("adam_m", adam_m), ("adam_v", adam_v)):
            if x.shape != W.shape or not np.isfinite(x).all():
                raise fail(name, f"shape {x.shape}" + ("" if np.isfinite(x).all() else " with non-finite values"),
                           f"finite moments of W's shape {W.shape}")
        if (adam_v < 0).any():
            raise fail("adam_v", f"a negative value {adam_v.min()!r}", "second moments ≥ 0")
    if isinstance(adam_step, bool) or not isinstance(adam_step, (int, np.integer)) or adam_step < 0:
        raise fail("adam_step", repr(adam_step), "an integer ≥ 0 (optimiser updates done so far)")
    return Hv, W, av, adam_m, adam_v, int(adam_step)


def capo_curvature_mask(h, W, actions, adv, mask, adam_m=None, adam_v=None, adam_step=0,
                        config: CAPOCurvatureConfig | None = None) -> dict[str, np.ndarray]:
    """CAPO's token mask and its two estimates on a batch.

    Args: h (B, T, d) final hidden states; W (K, d) head; actions (B, T) sampled token ids; adv (B, T); mask
    (B, T) bool; adam_m, adam_v (K, d) the modelled Adam's moments after ``adam_step`` updates (None = no state).
    Returns: {"keep": (B, T) bool (False at masked positions), "m_H": (B, T), "m_F": (B, T)} (0 at masked positions).
    """
    cfg = config or CAPOCurvatureConfig()
    mask = as_mask(mask, "mask")
    if mask.ndim != 2:
        raise fail("mask", f"shape {mask.shape}", "shape (B, T)")
    A = masked_array(adv, "adv", mask)
    Hv, W, av, m, v2, t = _head_inputs(h, W, actions, mask, adam_m, adam_v, adam_step)
    mH, mF = token_curvature(Hv, W, av, A[mask], cfg, m, v2, t)
    out = {"keep": np.zeros(mask.shape, dtype=bool), "m_H": np.zeros(mask.shape), "m_F": np.zeros(mask.shape)}
    out["keep"][mask], out["m_H"][mask], out["m_F"][mask] = accept(mH, mF, cfg), mH, mF
    return out


def capo_curvature_loss(logp, old_logp, adv, mask, h=None, W=None, actions=None, adam_m=None, adam_v=None,
                        adam_step=0, ref_logp=None, config: CAPOCurvatureConfig | None = None, group=None):
    """CAPO loss: PPO-clip on the tokens the curvature test keeps, and its hand-derived gradient w.r.t. logp.

    Args: logp, old_logp, adv (B, T) float; mask (B, T) bool; h (B, T, d), W (K, d), actions (B, T) int: the
    last layer of the policy that produced logp (all three or none; none = no curvature, nothing rejected);
    adam_m, adam_v (K, d), adam_step: the modelled optimiser state; ``ref_logp`` accepted and unused (β_KL = 0);
    ``group`` (B,) only for ``agg='group-token-mean'``.
    Returns: (loss: float, dlogp: (B, T)); dlogp = c(mask ∧ keep) ⊙ ∂ℓ_PPO/∂logp, zero at rejected and masked
    tokens. An all-false mask, or every token rejected, gives (0.0, zeros).
    """
    cfg = config or CAPOCurvatureConfig()
    logp, old_logp, adv, mask, _ = policy_batch(logp, old_logp, adv, mask, ref_logp)
    given = [x is not None for x in (h, W, actions)]
    if any(given) and not all(given):
        raise fail("h, W, actions", "only some of them", "all three (the policy's last layer) or none")
    keep = mask
    if all(given):
        keep = capo_curvature_mask(h, W, actions, adv, mask, adam_m, adam_v, adam_step, cfg)["keep"]
    r, dr = common.ratio(logp, old_logp, cfg.log_ratio_clamp)  # (B, T)
    ell, dell_dr = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.dual_clip_c is not None:
        ell, dell_dr = dual_clip(ell, dell_dr, adv, cfg.dual_clip_c)
    c = common.agg_coefficients(keep if cfg.mask_denominators == "kept" else mask, cfg, group) * keep  # (B, T)
    ell, dell = np.where(keep, ell, 0.0), np.where(keep, dell_dr * dr, 0.0)
    return float((c * ell).sum()), c * dell


# --------------------------------------------------------------------------- registry
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def make_inputs(rng: np.random.Generator) -> dict:
    """A batch produced by a small softmax-linear head: W (K, d) with logits of order one, hidden states of scale
    30-1000 (LLM-like norms, so that the default thresholds reject some tokens), sampled actions, logp = log π_a
    consistent with the head, old_logp off by N(0, 0.3), Adam moments after 0-50 steps (None one time in three),
    ragged masks (some rows empty) with garbage padding in h, actions, logp, old_logp and adv."""
    B, T, K, d = (int(rng.integers(lo, hi)) for lo, hi in ((1, 7), (1, 7), (3, 9), (2, 6)))
    scale = float(rng.choice([30.0, 300.0, 1000.0]))
    W = rng.normal(size=(K, d)) * 2.0 / (scale * np.sqrt(d))
    h = rng.normal(scale=scale, size=(B, T, d))
    pi = softmax_policy(W, h.reshape(-1, d))  # (B·T, K)
    actions = np.array([rng.choice(K, p=p / p.sum()) for p in pi]).reshape(B, T)
    logp = np.log(pi[np.arange(B * T), actions.ravel()]).reshape(B, T)
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    out = {"logp": logp, "old_logp": logp + rng.normal(scale=0.3, size=(B, T)),
           "adv": np.repeat(rng.normal(size=(B, 1)), T, axis=1)}
    out = {k: np.where(mask, v, rng.choice(GARBAGE, size=(B, T))) for k, v in out.items()}
    out.update(mask=mask, W=W, group=np.arange(B) // 2,
               h=np.where(mask[:, :, None], h, rng.choice(GARBAGE, size=(B, T, d))),
               actions=np.where(mask, actions, rng.choice([-1, K + 3], size=(B, T))))
    if rng.random() < 2 / 3:
        m = rng.normal(scale=1e-3, size=(K, d))
        out.update(adam_m=m, adam_v=m**2 + rng.gamma(1.0, 1e-6, size=(K, d)), adam_step=int(rng.integers(0, 51)))
    return out


def _configs():
    variants = (("sgd", {"optimizer": "sgd"}), ("hessian=nonnegative", {"hessian_rule": "nonnegative"}),
                ("hessian=lower", {"hessian_rule": "lower", "tau_H": 1e-4}),
                ("denominators=original", {"mask_denominators": "original"}),
                ("lr=1e-4", {"lr": 1e-4}), ("fisher-only", {"tau_H": None}), ("hessian-only", {"tau_F": None}))
    return [(name, ov, f"make-inputs-{i}") for i in range(3) for name, ov in variants]


_CODE = "github.com/luckeciano/stable-pg-llm src/open_r1/grpo_entropy_trainer.py"
_T = "properties/test_capo_curvature.py::"

EQUATIONS = (
    Equation("capo-token-gradient", "g = A · (e_a − π) hᵀ,  π = softmax(W h)", "arXiv 2510.00819 (last-layer model)",
             "official-code", "token_gradient", note=f"{_CODE} _compute_token_level_gradients"),
    Equation("capo-effective-gradient", "P(g) = g (SGD) or m̂/(√v̂ + ε) with prospective moments at t+1 (Adam)",
             "arXiv 2510.00819 (optimiser model)", "official-code", "adam_direction",
             note="stable-pg-llm src/open_r1/sparse_optim_models/sparse_adam_model.py "
                  "batch_compute_effective_token_gradients; no state yet → raw gradient (as there)"),
    Equation("capo-fisher", "m_F = ½ η² (vᵀ P(g) h)²,  v = e_a − π", "arXiv 2510.00819 (policy-shift model)",
             "official-code", "fisher_shift", note=f"{_CODE} _compute_and_log_fisher_curvature (token level)"),
    Equation("capo-hessian", "m_H = η ⟨g, P(g)⟩ + ½ η² A [(vᵀu)² − uᵀ(diag π − ππᵀ)u],  u = P(g) h",
             "arXiv 2510.00819 (objective-shift model)", "official-code", "hessian_shift",
             note=f"{_CODE} _compute_and_log_hessian_coefficient + _compute_grad_norm_sq ('token')"),
    Equation("capo-accept", "keep ⇔ m_F < τ_F ∧ −τ_H < m_H < τ_H  (τ_F = 1e-4, τ_H = 0.01)",
             "arXiv 2510.00819 (CAPO recipe)", "official-code", "accept",
             note=f"{_CODE} _compute_{{fisher,hessian}}_token_mask with hessian_symmetric_clipping; thresholds from "
                  "the recipe the README names for CAPO; the code's other branch 0 ≤ m_H < τ_H is "
                  "hessian_rule='nonnegative'"),
    Equation("capo-theorem-5.1", "accept if m_H ≥ δ_H = ω + ½Mr² and m_F ≤ δ_F ⇒ J(π_{θ+Δθ}) − J(π_θ) ≥ ω − C√δ_F",
             "arXiv 2510.00819 Theorem 5.1, eqs. (12)-(13)", "paper", "accept",
             note="read in the image assets/theorem_capo.png of the official repository; the lower bound on m_H is "
                  "hessian_rule='lower' (the code and the recipes use a two-sided band instead)"),
    Equation("capo-loss", "ℓ = −min(r Â, clip(r, 1−ε, 1+ε) Â) on mask ∧ keep; per-sequence mean over kept tokens, "
             "mean over all B rows", "arXiv 2510.00819 (GRPO loss on the kept tokens)", "official-code",
             "capo_curvature_loss", note=f"{_CODE} compute_loss / _compute_final_loss; β_KL = 0 in the recipe"),
    Equation("capo-estimator-identities", "E_{a∼π}[(vᵀu)²] = uᵀFu = ∂²_s KL(π ‖ softmax(z + s u))|₀;  "
             "∂²_s [A π_a(W+sP)/π_a(W)]|₀ = A[(vᵀu)² − uᵀFu]", "derived (why the code's forms are Fisher/Hessian)",
             "reconstructed", "hessian_shift", note="checked exactly by enumeration and finite differences"),
)

register(Spec(
    name="capo_curvature", kind="policy_loss", family="ratio/clipping", paper=CAPO_CURV_PAPER, status="implemented",
    summary="curvature-aware token masking: reject tokens whose last-layer Fisher/Hessian model predicts an "
            "unstable update, then PPO/GRPO on the rest",
    fn=capo_curvature_loss, config_cls=CAPOCurvatureConfig, equations=EQUATIONS, outputs=("loss", "dlogp"),
    make_inputs=make_inputs,
    extras={"capo_curvature_mask": capo_curvature_mask, "token_curvature": token_curvature,
            "adam_moments_update": adam_moments_update, "conformance_configs": _configs},
    gradient="∂loss/∂logp = c(mask ∧ keep) ⊙ ∂ℓ_PPO/∂logp: −c·Â·r on kept unclipped tokens, 0 where the clip binds, "
             "on rejected tokens and on padding; keep depends on (h, W, a, A), not on logp",
    properties=(
        "properties/test_policy_gradients.py::test_hand_gradient_matches_finite_differences: dlogp = central FD "
        "(canonical batches, no head inputs)",
        _T + "test_hand_gradient_matches_finite_differences_with_curvature_inputs: dlogp = central FD, tokens rejected",
        _T + "test_masking_rejects_only_the_flagged_tokens: dlogp = 0 exactly on flagged tokens, PPO's elsewhere "
        "(unchanged with original denominators)",
        _T + "test_without_head_or_with_loose_thresholds_it_is_ppo: no head / τ = ∞ gives PPO; τ unreachable gives 0",
        _T + "test_acceptance_rules: symmetric / nonnegative / lower (Theorem 5.1) bands and m_F < τ_F",
        _T + "test_fisher_rejections_grow_with_the_learning_rate: m_F ∝ η², Fisher rejections monotone in η",
        _T + "test_padding_is_never_read: garbage h, actions, logp, adv at masked positions change nothing",
        "untested: Theorem 5.1 (J(π_θ+Δθ) − J(π_θ) ≥ ω − C√δ_F) — a statement about the return of an MDP under "
        "Assumption E.1 (constants M, r), which we could not read",
        "untested: stability under aggressive updates (GRPO collapses, CAPO does not; < 8 % of tokens rejected; up to "
        "30× sample efficiency) — LLM-scale experiments; a quick contextual-bandit toy with the recipe's thresholds "
        "rescaled either rejected every informative token or did not remove the KL spikes, so nothing is claimed",
    ),
))

register(Spec(
    name="capo_curvature_mask", kind="sampler", family="ratio/clipping", paper=CAPO_CURV_PAPER, status="implemented",
    summary="CAPO's token mask with its two last-layer estimates m_H (objective shift) and m_F (policy shift)",
    fn=capo_curvature_mask, config_cls=CAPOCurvatureConfig, outputs=("keep", "m_H", "m_F"),
    make_inputs=lambda rng: {k: v for k, v in make_inputs(rng).items() if k not in ("logp", "old_logp", "group")},
    equations=EQUATIONS[:6],
    extras={"conformance_configs": lambda: [c for c in _configs() if c[0] != "denominators=original"]},
    properties=(
        _T + "test_token_gradient_is_the_gradient_of_advantage_times_logprob: g = ∇_W A log π_a (FD)",
        _T + "test_hessian_estimate_is_exact_second_order_model_of_ratio_surrogate: m_H = ηJ'(0) + ½η²J''(0) of "
        "J = A π_a/π_a^old along any direction (FD of the exact softmax)",
        _T + "test_hessian_model_error_is_third_order_in_lr: m_H(η) = ΔJ + O(η³)",
        _T + "test_fisher_estimate_is_sampled_fisher_form_and_unbiased: (vᵀu)² = (∂_s log π_a)²; E_a∼π m_F = "
        "½η² uᵀFu = ½η² ∂²KL (enumeration over the vocabulary)",
        _T + "test_fisher_form_is_second_order_kl: E m_F = KL(π_old ‖ π_new) + O(η³)",
        _T + "test_adam_direction_is_torch_adams_next_step: P(g) = torch.optim.Adam's next step / lr",
        _T + "test_batch_estimates_equal_exact_values_on_a_softmax_linear_policy: m_H, m_F per token = exact "
        "values built independently (FD gradient, replayed Adam, FD of the exact policy)",
        _T + "test_sgd_closed_form: SGD gives m_F = ½η²A²‖h‖⁴‖v‖⁴ and the matching m_H",
        _T + "test_acceptance_rules: the three Hessian rules and the Fisher test",
        _T + "test_adam_without_state_uses_the_raw_gradient_and_zero_state_normalises: optimiser-model conventions",
    ),
))

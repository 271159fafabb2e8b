"""INPO (torch). Mirrors :mod:`rlspec.reference.inpo`; gradients by autograd.

``inpo_pairwise_loss`` is the loss a user trains an LLM with: a batch of K sampled responses per prompt
(``group``), token log-probs under the policy being trained (``logp``), the iterate that sampled them
(``old_logp`` = π_t, frozen) and the reference model (``ref_logp``), and a per-response preference score
in ``adv`` (e.g. a preference model's win rate or a reward, broadcast over the tokens); the best and worst
response of each prompt form the pair. ``inpo_game_step`` is the exact game round (tabular entry).
Half-precision inputs are computed in float32.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.inpo import INPOConfig, INPOPairConfig


def h_matrix(logp, logp_t, logp_ref, eta: float, tau: float) -> torch.Tensor:
    """h_t(π, y, y') (n, n)."""
    u = logp - (tau / eta) * logp_ref - (1 - tau / eta) * logp_t
    return u[:, None] - u[None, :]


def population_loss(logp, logp_t, logp_ref, P, eta: float, tau: float) -> torch.Tensor:
    """L_t(π) = Σ π_t(y)π_t(y')[P(h − 1/(2η))² + (1 − P)(h + 1/(2η))²]."""
    h = h_matrix(logp, logp_t, logp_ref, eta, tau)
    pt = logp_t.exp()
    c = 1.0 / (2.0 * eta)
    return (pt[:, None] * pt[None, :] * (P * (h - c) ** 2 + (1 - P) * (h + c) ** 2)).sum()


def omd_target(logp_t, logp_ref, P, eta: float, tau: float) -> torch.Tensor:
    """π_{t+1} ∝ π_t^{1−τ/η} π_ref^{τ/η} exp(P(·≻π_t)/η), computed in log space."""
    return torch.softmax((1 - tau / eta) * logp_t + (tau / eta) * logp_ref + (P @ logp_t.exp()) / eta, dim=0)


def _vec(x, name: str, n: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.shape != (n,) or not bool(torch.isfinite(x).all()):
        raise fail(name, f"{type(x).__name__} {getattr(x, 'shape', '')}", f"a finite ({n},) torch.Tensor")
    return common.upcast(x)


@implements("inpo")
def inpo_game_step(P, ref_logits, t_logits, logits, config: INPOConfig | None = None) -> dict:
    """{"loss", "dlogits" (autograd), "target"} of one exact INPO round, in the dtype of ``logits``."""
    cfg = config or INPOConfig()
    if not isinstance(P, torch.Tensor) or P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 2:
        raise fail("P", f"{type(P).__name__} {getattr(P, 'shape', '')}", "a square (n, n) torch.Tensor, n ≥ 2")
    if not bool(torch.isfinite(P).all()) or bool((P < 0).any()) or bool((P > 1).any()):
        raise fail("P", "entries outside [0, 1]", "probabilities P(y ≻ y') in [0, 1]")
    n = P.shape[0]
    Pf = common.upcast(P)
    lr = torch.log_softmax(_vec(ref_logits, "ref_logits", n), 0)
    lt = torch.log_softmax(_vec(t_logits, "t_logits", n), 0)
    theta = _vec(logits, "logits", n).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = population_loss(torch.log_softmax(theta, 0), lt, lr, Pf, cfg.eta, cfg.tau)
        (g,) = torch.autograd.grad(loss, theta)
    dt = logits.dtype
    return {"loss": loss.detach().to(dt), "dlogits": g.to(dt), "target": omd_target(lt, lr, Pf, cfg.eta, cfg.tau).to(dt)}


def best_worst_pairs(scores: torch.Tensor, mask: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """(N, 2) (chosen, rejected) rows per group: first highest / first lowest score among non-empty rows; ties and
    groups with fewer than two non-empty rows give no pair."""
    nonempty = mask.any(dim=1)
    pairs = []
    for g in torch.unique(group):
        rows = torch.nonzero((group == g) & nonempty).flatten()
        if rows.numel() < 2:
            continue
        s = scores[rows]
        if bool(s.max() > s.min()):
            pairs.append(torch.stack([rows[torch.argmax(s)], rows[torch.argmin(s)]]))
    if not pairs:
        return torch.zeros((0, 2), dtype=torch.long, device=scores.device)
    return torch.stack(pairs)


@implements("inpo_pairwise")
def inpo_pairwise_loss(logp, old_logp, adv, mask, ref_logp=None, config: INPOPairConfig | None = None,
                       group=None) -> torch.Tensor:
    """Scalar (1/N) Σ_pairs (h_t(π, y_w, y_l) − 1/(2η))²; ``loss.backward()`` gives dlogp. No ``ref_logp``: τ = 0;
    no ``group``: one prompt."""
    cfg = config or INPOPairConfig()
    lp, lt, a, mask, lr = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    g = (torch.zeros(lp.shape[0], dtype=torch.long, device=lp.device) if group is None
         else common.group_ids(group, lp.shape[0], device=lp.device))
    n = mask.sum(dim=1)
    scores = torch.where(n > 0, a.sum(dim=1) / n.clamp(min=1), torch.zeros_like(n, dtype=a.dtype))
    pairs = best_worst_pairs(scores, mask, g)
    if pairs.shape[0] == 0:
        return (lp * 0.0).sum()
    S, S_t = lp.sum(dim=1), lt.sum(dim=1)                             # padding is already zero
    S_r = torch.zeros_like(S) if lr is None else lr.sum(dim=1)
    w, l = pairs[:, 0], pairs[:, 1]
    k = 0.0 if lr is None else cfg.tau / cfg.eta
    h = (S[w] - S[l]) - k * (S_r[w] - S_r[l]) - (1 - k) * (S_t[w] - S_t[l])
    N = float(pairs.shape[0]) if cfg.pair_normalizer is None else cfg.pair_normalizer
    return ((h - 1.0 / (2.0 * cfg.eta)) ** 2).sum() / N

"""PDPPO (torch). Mirrors :mod:`rlspec.reference.pdppo`; autograd gives the critics' gradients.

The pieces a training loop uses (official code leokan92/pdppo, ``agents/PDPPO.py``, ``PDPPO.update``)::

    out = pdppo_advantage(rewards, V_old, W_old, mask)            # V_old = V_ψ(s), W_old = V^x_ω(x) at collection
    policy_loss = optimized.get("ppo")(logp, old_logp, out["adv"], mask) - 0.012 * entropy
    critic_loss = pdppo_critic_loss(V_ψ(s), V_old, out["returns"], mask, post_values=V^x_ω(x))
    (policy_loss + critic_loss).backward()                          # both critics get their gradients

Half precision is computed in float32 (returns are sums over the episode, and the standardisation divides
by a std); results come back in float32 for bf16/fp16 inputs.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.pdppo import PDPPOConfig, PDPPOCriticConfig


def _batch(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise fail(name, f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}", "a (B, T) torch.Tensor")
    return x


def discounted_returns(r: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + γ G_{next valid step} within each row, 0 at masked steps, (B, T)."""
    cols = []
    g = torch.zeros(r.shape[0], dtype=r.dtype, device=r.device)
    for t in range(r.shape[1] - 1, -1, -1):
        g = torch.where(mask[:, t], r[:, t] + gamma * g, g)
        cols.append(torch.where(mask[:, t], g, torch.zeros_like(g)))
    return torch.stack(cols[::-1], dim=1) if cols else torch.zeros_like(r)


def normalized_returns(G: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """(G − mean)/(std + eps) over valid steps (Bessel's std; std := 0 for a single step, so G̃ = 0)."""
    n = int(mask.sum())
    if n == 0:
        return torch.zeros_like(G)
    g = G[mask]
    std = g.std() if n > 1 else torch.zeros((), dtype=G.dtype, device=G.device)
    return torch.where(mask, (G - g.mean()) / (std + eps), torch.zeros_like(G))


def combined_advantage(G_tilde: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """A = G̃ − min(V, W) = max(G̃ − V, G̃ − W), (B, T)."""
    return G_tilde - torch.minimum(V, W)


@implements("pdppo")
def pdppo_advantage(rewards, values, post_values, mask, config: PDPPOConfig | None = None) -> dict:
    """dict(adv, returns, raw_returns), each (B, T) and zero at masked steps; no gradient flows (targets)."""
    cfg = config or PDPPOConfig()
    rewards = _batch(rewards, "rewards")
    m = common.check_mask(mask, rewards.shape)
    with torch.no_grad():
        r = common.upcast(common.clean(rewards, m, "rewards"))
        V = common.upcast(common.clean(_batch(values, "values"), m, "values"))
        W = common.upcast(common.clean(_batch(post_values, "post_values"), m, "post_values"))
        G = discounted_returns(r, m, cfg.gamma)
        Gt = normalized_returns(G, m, cfg.norm_eps) if cfg.normalize else G
        A = {"max": lambda: combined_advantage(Gt, V, W), "pre": lambda: Gt - V, "post": lambda: Gt - W}[cfg.combine]()
        A = torch.where(m, A, torch.zeros_like(A))
    return {"adv": A, "returns": Gt, "raw_returns": G}


@implements("pdppo_critic")
def pdppo_critic_loss(values, old_values, returns, mask, config: PDPPOCriticConfig | None = None, *,
                      post_values) -> torch.Tensor:
    """Scalar c_v·agg((min(V, W) − G̃)²); ``backward()`` fills the gradients of ``values`` and ``post_values``.

    ``old_values`` is accepted for the value-loss signature, validated and not used (PDPPO does not clip its critics);
    ``returns`` are the targets G̃ and are detached.
    """
    cfg = config or PDPPOCriticConfig()
    V0 = _batch(values, "values")
    m = common.check_mask(mask, V0.shape)
    V = common.upcast(common.clean(V0, m, "values"))
    common.clean(_batch(old_values, "old_values"), m, "old_values")    # validated, not used (no value clip)
    W = common.upcast(common.clean(_batch(post_values, "post_values"), m, "post_values"))
    R = common.upcast(common.clean(_batch(returns, "returns"), m, "returns")).detach()
    ell = cfg.c_v * (torch.minimum(V, W) - R) ** 2
    return common.aggregate(ell, m, cfg.agg, normalizer=cfg.normalizer, const=cfg.const,
                            seq_denominator=cfg.seq_denominator)

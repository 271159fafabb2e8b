"""DGPO (arXiv 2602.19261) in torch. Mirrors :mod:`rlspec.reference.dgpo_graph`; gradients by autograd.

What a user trains with: :func:`eager_pg_loss` takes the denoiser's logits at the stored noisy states
(the network's output for one timestep slice), the generated graphs and the advantages, and returns the
slice loss; ``(loss / slice_scale(T)).backward()`` is the code's update (``src/train_rlft.py``). The
registry entry returns ``{"loss", "dlogits_X", "dlogits_E"}`` (autograd w.r.t. detached copies of the
logits) so that conformance can compare the gradient with the reference's hand derivation.

:func:`dgpo_advantage` is the EMA-normalised clipped advantage (state: the reference's frozen
``DGPOState``). The exact enumeration on the 64-graph space (:mod:`rlspec.reference.envs.dag_diffusion`)
is a checking tool, not a training path, and stays in the reference.
"""

from __future__ import annotations

from typing import Any

import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.dgpo_graph import DGPOAdvantageConfig, DGPOConfig, DGPOState, check_state, slice_scale, time_budget

__all__ = ["DGPOConfig", "DGPOAdvantageConfig", "DGPOState", "eager_pg_loss_value", "eager_pg_loss",
           "dgpo_advantage", "slice_scale", "time_budget"]


def _mask(node_mask: Any) -> torch.Tensor:
    if not isinstance(node_mask, torch.Tensor) or node_mask.ndim != 2:
        raise fail("node_mask", f"{type(node_mask).__name__} {getattr(node_mask, 'shape', '')}", "a (B, n) bool tensor")
    if node_mask.dtype != torch.bool:
        if node_mask.dtype.is_floating_point or bool(((node_mask != 0) & (node_mask != 1)).any()):
            raise fail("node_mask", f"dtype {node_mask.dtype}", "a boolean tensor")
        node_mask = node_mask.bool()
    return node_mask


def _weighted_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, where: torch.Tensor,
                 name: str) -> torch.Tensor:
    """Σ_where w·CE(logits, target) (scalar); positions off ``where`` never read."""
    K = logits.shape[-1]
    x = logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits
    x = torch.where(where[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
    y = torch.where(where, target.long(), torch.zeros((), dtype=torch.long, device=target.device))
    if bool(where.any()):
        if not bool(torch.isfinite(x).all()):
            raise fail(name, "a non-finite logit at a real node/pair", "finite logits where node_mask is True")
        if bool(((y < 0) | (y >= K)).any()):
            raise fail("targets", f"a class index outside [0, {K})", f"indices in [0, {K}) at real nodes/pairs")
    ce = torch.logsumexp(x, dim=-1) - torch.gather(x, -1, y[..., None])[..., 0]
    w = torch.where(where, weight.to(x.dtype), torch.zeros((), dtype=x.dtype, device=x.device))
    return (w * ce).sum()


def eager_pg_loss_value(logits_X: torch.Tensor, logits_E: torch.Tensor, X0: torch.Tensor, E0: torch.Tensor,
                        node_mask: torch.Tensor, adv: torch.Tensor, config: DGPOConfig | None = None) -> torch.Tensor:
    """The slice loss L_t as a differentiable scalar (code ``ppo_step_slice``); half precision runs in float32."""
    cfg = config or DGPOConfig()
    M = _mask(node_mask)
    B, n = M.shape
    for name, x, shape in (("logits_X", logits_X, (B, n)), ("logits_E", logits_E, (B, n, n))):
        if not isinstance(x, torch.Tensor) or tuple(x.shape[:-1]) != shape or not x.dtype.is_floating_point:
            raise fail(name, f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}", f"a float tensor {shape + ('K',)}")
    if tuple(X0.shape) != (B, n) or tuple(E0.shape) != (B, n, n):
        raise fail("X0/E0", f"shapes {tuple(X0.shape)}, {tuple(E0.shape)}", f"({B}, {n}) and ({B}, {n}, {n})")
    A = torch.as_tensor(adv)
    if tuple(A.shape) != (B,) or not bool(torch.isfinite(A).all()):
        raise fail("adv", f"shape {tuple(A.shape)}", f"finite advantages of shape ({B},)")
    pos_E = M[:, :, None] & M[:, None, :]
    if cfg.edges == "upper":
        pos_E = pos_E & torch.ones(n, n, dtype=torch.bool, device=M.device).triu(1)
    NX, NE = int(M.sum()), int(pos_E.sum())
    zero = logits_X.new_zeros((), dtype=torch.float32 if logits_X.dtype in (torch.bfloat16, torch.float16)
                              else logits_X.dtype)
    loss_X = _weighted_ce(logits_X, X0, A[:, None].expand(B, n), M, "logits_X") / NX if NX else zero
    loss_E = _weighted_ce(logits_E, E0, A[:, None, None].expand(B, n, n), pos_E, "logits_E") / NE if NE else zero
    return loss_X + cfg.lambda_E * loss_E


@implements("dgpo_graph")
def eager_pg_loss(logits_X, logits_E, X0, E0, node_mask, adv, config: DGPOConfig | None = None) -> dict[str, Any]:
    """{"loss", "dlogits_X", "dlogits_E"}: the slice loss and its autograd gradients w.r.t. the logits."""
    LX = logits_X.detach().clone().requires_grad_(True)
    LE = logits_E.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = eager_pg_loss_value(LX, LE, X0, E0, node_mask, adv, config)
        if loss.requires_grad:
            gX, gE = torch.autograd.grad(loss, (LX, LE), allow_unused=True)
        else:
            gX = gE = None
    gX = torch.zeros_like(LX) if gX is None else gX
    gE = torch.zeros_like(LE) if gE is None else gE
    return {"loss": loss.detach(), "dlogits_X": gX, "dlogits_E": gE}


@implements("dgpo_graph_advantage")
def dgpo_advantage(state: DGPOState, rewards: torch.Tensor,
                   config: DGPOAdvantageConfig | None = None) -> tuple[torch.Tensor, DGPOState]:
    """(adv (B,), new_state): statistics updated first (epoch 0: batch stats; then EMA), then
    A = clip((r − μ̄)/σ̄, ±clip), zero for B < 2 or a constant batch."""
    cfg = config or DGPOAdvantageConfig()
    s = check_state(state)
    r = torch.as_tensor(rewards)
    if r.ndim != 1 or not bool(torch.isfinite(r).all()):
        raise fail("rewards", f"shape {tuple(r.shape)}", "a finite 1-D tensor")
    r64 = r.double()
    if r.numel() == 0:
        return torch.zeros_like(r64), DGPOState(s.mean, s.std, s.epoch + 1)
    m, sd = float(r64.mean()), float(r64.std(unbiased=False))
    if s.epoch == 0:
        new = DGPOState(mean=m, std=max(sd, cfg.std_floor), epoch=1)
    else:
        a = cfg.alpha
        new = DGPOState(mean=(1 - a) * s.mean + a * m, std=max((1 - a) * s.std + a * sd, cfg.std_floor),
                        epoch=s.epoch + 1)
    if r.numel() < 2 or float(r64.max() - r64.min()) < cfg.tol:
        return torch.zeros_like(r64), new
    return torch.clamp((r64 - new.mean) / max(new.std, cfg.std_floor), -cfg.clip, cfg.clip), new

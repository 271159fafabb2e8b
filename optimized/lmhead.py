"""Fused, chunked LM head: hidden states → sampled-token log-probs (and entropy) → any registered loss, never
materializing the [B, T, V] logits.

Every rlspec policy loss is a weight per sampled token (``dlogp``), so the LM head and the loss separate cleanly::

    logp, H = fused_logprobs(hidden, weight, ids, bias=, temperature=, mask=)     # (B, T) each, no (B, T, V)
    loss = rlspec.optimized.get("ppo")(logp=logp, old_logp=..., adv=..., mask=...)
    loss.backward()              # dlogp flows into the LM head's backward, which works tile by tile

or in one call, :func:`fused_policy_loss`. Forward: for each chunk of valid tokens and each vocabulary tile,
logits z = (h Wᵀ + b)/τ of shape (n, v) only; a running log-sum-exp (max m, Σ e^{z−m}, Σ e^{z−m} z) gives

    log π(y) = z_y − lse,      H = lse − Σ_k p_k z_k,      p = e^{z − lse}

and nothing of size V is kept: the backward recomputes each tile's logits and applies

    ∂/∂z_k = g_logp·(1[k = y] − p_k) − g_H·p_k·(log p_k + H),      then ×1/τ,

accumulating ∂h = dz W and ∂W = dzᵀ h (and ∂b = Σ dz) tile by tile. Cost: four (n × v × H) matmuls per tile (one
forward, three backward) against three for the materialized path; memory: the tile instead of B·T·V. Padded
positions (``mask`` False) are skipped entirely — not computed, not read (their ids may be anything) — and get
log-prob 0 and zero gradient.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rlspec.reference._validate import fail

__all__ = ["fused_logprobs", "fused_policy_loss", "default_chunks"]


def default_chunks(n_tokens: int, vocab: int, budget: int = 1 << 22) -> tuple[int, int]:
    """(token chunk, vocabulary tile) with chunk·tile ≤ ``budget`` elements (4M: 16 MB of float32 logits).

    Tiles are as wide as the budget allows with every token in one chunk (each weight tile is then read once per
    pass, and ∂W of a tile is written once); only beyond budget/128 tokens are the tokens chunked too."""
    tile = max(128, min(vocab, budget // max(1, n_tokens)))
    chunk = max(1, min(n_tokens, budget // tile))
    return chunk, tile


def _tile_logits(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None, lo: int, hi: int, inv_tau: float):
    z = h @ W[lo:hi].T  # (n, v)
    if b is not None:
        z = z + b[lo:hi]
    return z * inv_tau if inv_tau != 1.0 else z


class _FusedLogProb(torch.autograd.Function):
    """(h (N, H), W (V, H), b (V,) | None, y (N,)) → (log π(y) (N,), H (N,)); see the module docstring."""

    @staticmethod
    def forward(ctx, h, W, b, y, inv_tau: float, chunk: int, tile: int, with_entropy: bool):
        N, V = h.shape[0], W.shape[0]
        acc = torch.float32 if h.dtype in (torch.bfloat16, torch.float16) else h.dtype  # statistics in ≥ fp32
        lse = torch.empty(N, dtype=acc, device=h.device)
        ent = torch.empty(N, dtype=acc, device=h.device) if with_entropy else None
        lse.fill_(-math.inf)
        zy = torch.zeros(N, dtype=acc, device=h.device)
        pz = torch.zeros(N, dtype=acc, device=h.device) if with_entropy else None  # Σ_k p_k z_k over tiles so far
        for lo in range(0, V, tile):  # each weight tile is read once
            hi = min(V, lo + tile)
            for s in range(0, N, chunk):
                hc, yc, e = h[s:s + chunk], y[s:s + chunk], min(N, s + chunk)
                z = _tile_logits(hc, W, b, lo, hi, inv_tau).to(acc)  # (n, v)
                lse_t = torch.logsumexp(z, dim=1)  # one fused pass over the tile
                lse_old = lse[s:e]
                lse_new = torch.logaddexp(lse_old, lse_t)
                if with_entropy:  # Σ p z = Σ_tiles e^{lse_t − lse}·(Σ_k softmax_t(z)_k z_k)
                    s_t = (torch.softmax(z, dim=1) * z).sum(dim=1)
                    pz[s:e] = pz[s:e] * torch.exp(lse_old - lse_new) + s_t * torch.exp(lse_t - lse_new)
                lse[s:e] = lse_new
                inside = (yc >= lo) & (yc < hi)
                if bool(inside.any()):
                    rows = inside.nonzero().squeeze(1)
                    zy[s + rows] = z[rows, yc[rows] - lo]
        logp = zy - lse
        if with_entropy:
            ent = lse - pz
        ctx.save_for_backward(h, W, b if b is not None else torch.empty(0), y, lse,
                              ent if with_entropy else torch.empty(0))
        ctx.cfg = (inv_tau, chunk, tile, with_entropy, b is not None)
        return logp, (ent if with_entropy else torch.zeros_like(logp))

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        h, W, b, y, lse, ent = ctx.saved_tensors
        inv_tau, chunk, tile, with_entropy, has_bias = ctx.cfg
        N, V = h.shape[0], W.shape[0]
        need_h, need_W, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias and ctx.needs_input_grad[2]
        acc = lse.dtype
        dh = torch.zeros(h.shape, dtype=acc, device=h.device) if need_h else None
        dW = torch.zeros(W.shape, dtype=acc, device=W.device) if need_W else None
        db = torch.zeros(V, dtype=acc, device=W.device) if need_b else None
        g_logp = g_logp.to(acc)
        g_ent = g_ent.to(acc) if (with_entropy and g_ent is not None) else None
        h_acc = h.to(acc)
        for lo in range(0, V, tile):  # each weight tile is read once and its ∂W written once
            hi = min(V, lo + tile)
            W_t = W[lo:hi].to(acc)
            for s in range(0, N, chunk):
                yc, e = y[s:s + chunk], min(N, s + chunk)
                gl, lse_c = g_logp[s:e], lse[s:e]
                z = _tile_logits(h[s:e], W, b if has_bias else None, lo, hi, inv_tau).to(acc)  # (n, v) recomputed
                logp_tile = z.sub_(lse_c[:, None])  # log p, in place (z is not needed again)
                if g_ent is not None:  # dz = −p·(g_logp + g_H·(log p + H))
                    dz = logp_tile.exp() * (logp_tile.add_(ent[s:e, None]).mul_(g_ent[s:e, None])
                                            .add_(gl[:, None])).neg_()
                else:  # dz = −g_logp·p, in place
                    dz = logp_tile.exp_().mul_(-gl[:, None])
                inside = (yc >= lo) & (yc < hi)
                if bool(inside.any()):
                    rows = inside.nonzero().squeeze(1)
                    dz[rows, yc[rows] - lo] += gl[rows]
                if inv_tau != 1.0:
                    dz.mul_(inv_tau)
                if need_h:
                    dh[s:e] += dz @ W_t
                if need_W:
                    dW[lo:hi] += dz.T @ h_acc[s:e]
                if need_b:
                    db[lo:hi] += dz.sum(dim=0)
        return (dh.to(h.dtype) if need_h else None, dW.to(W.dtype) if need_W else None,
                db.to(b.dtype) if need_b else None, None, None, None, None, None)


def fused_logprobs(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, *, bias: torch.Tensor | None = None,
                   temperature: float = 1.0, mask: torch.Tensor | None = None, entropy: bool = False,
                   chunk: int | None = None, tile: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(y_bt) (and the token entropy) from hidden states, without the [B, T, V] logits.

    Args: hidden (B, T, H) or (N, H); weight (V, H) (the LM head, ``lm_head.weight``); ids (B, T) / (N,) sampled
    token ids; bias (V,) or None; temperature τ > 0 (logits are divided by it, as at sampling time); mask (B, T) /
    (N,) bool: only these tokens are computed (others get 0 and no gradient; their ids are never read);
    entropy: also return H = −Σ_k p_k log p_k; chunk / tile: tokens per chunk and vocabulary tile (default:
    :func:`default_chunks`). Returns (logp, entropy or None), each shaped like ``ids``, in float32 for half inputs.
    """
    if not isinstance(hidden, torch.Tensor) or hidden.ndim not in (2, 3):
        raise fail("hidden", f"{type(hidden).__name__} of shape {getattr(hidden, 'shape', None)}", "a (B, T, H) or (N, H) tensor")
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        raise fail("weight", f"shape {tuple(getattr(weight, 'shape', ()))}", f"(V, {hidden.shape[-1]}) (the LM-head weight)")
    lead = hidden.shape[:-1]
    if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != tuple(lead) or ids.dtype.is_floating_point:
        raise fail("ids", f"{getattr(ids, 'dtype', None)} {tuple(getattr(ids, 'shape', ()))}",
                   f"integer ids of shape {tuple(lead)}")
    V = weight.shape[0]
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != V):
        raise fail("bias", f"shape {tuple(bias.shape)}", f"({V},) or None")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise fail("temperature", repr(temperature), "a finite number > 0")
    if mask is None:
        mask = torch.ones(lead, dtype=torch.bool, device=hidden.device)
    elif mask.dtype != torch.bool or tuple(mask.shape) != tuple(lead):
        raise fail("mask", f"{mask.dtype} {tuple(mask.shape)}", f"a bool tensor of shape {tuple(lead)}")
    flat_mask = mask.reshape(-1)
    idx = flat_mask.nonzero().squeeze(1)  # valid tokens only
    h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, idx)  # (n, H)
    y = ids.reshape(-1).index_select(0, idx).long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= V):
        raise fail("ids", f"values in [{int(y.min())}, {int(y.max())}] at valid positions", f"ids in [0, {V})")
    c0, t0 = default_chunks(max(1, y.numel()), V)
    logp_v, ent_v = _FusedLogProb.apply(h, weight, bias, y, 1.0 / float(temperature), int(chunk or c0),
                                        int(tile or t0), bool(entropy))
    out_dtype = logp_v.dtype
    logp = torch.zeros(flat_mask.shape[0], dtype=out_dtype, device=hidden.device).index_put((idx,), logp_v)
    ent = torch.zeros(flat_mask.shape[0], dtype=out_dtype, device=hidden.device).index_put((idx,), ent_v) \
        if entropy else None
    return logp.reshape(lead), (ent.reshape(lead) if entropy else None)


def fused_policy_loss(name: str, hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, *,
                      bias: torch.Tensor | None = None, temperature: float = 1.0, config: Any = None,
                      chunk: int | None = None, tile: int | None = None, **inputs: Any) -> torch.Tensor:
    """Any registered policy loss computed straight from hidden states: ``loss.backward()`` gives ∂/∂hidden,
    ∂/∂weight (and ∂/∂bias) without [B, T, V] logits. ``inputs`` are the loss's other arguments (old_logp, adv,
    ref_logp, group, ...); an entry that takes ``entropy`` receives the fused entropy unless one is given."""
    import inspect

    from rlspec import optimized
    from rlspec.reference import registry

    spec = registry.get(name)
    if spec.kind != "policy_loss":
        raise fail("name", f"{name!r} of kind {spec.kind!r}", "a policy_loss entry")
    fn = optimized.get(spec.name)
    wants_entropy = "entropy" in inspect.signature(fn).parameters and "entropy" not in inputs
    logp, ent = fused_logprobs(hidden, weight, ids, bias=bias, temperature=temperature, mask=mask,
                               entropy=wants_entropy, chunk=chunk, tile=tile)
    if wants_entropy:
        inputs["entropy"] = ent
    return fn(logp=logp, mask=mask, config=config, **inputs)

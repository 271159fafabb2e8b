"""Fused, chunked LM head: hidden states → sampled-token log-probs (and entropy) → any registered loss, never
materializing the [B, T, V] logits.

Every rlspec policy loss is a weight per sampled token (``dlogp``), so the LM head and the loss separate cleanly::

    logp, H = fused_logprobs(hidden, weight, ids, bias=, temperature=, mask=)     # (B, T) each, no (B, T, V)
    loss = rlspec.optimized.get("ppo")(logp=logp, old_logp=..., adv=..., mask=...)
    loss.backward()              # dlogp flows into the LM head's backward, which works tile by tile

or in one call, :func:`fused_policy_loss`, which takes one of two routes.

**Two passes** (any loss). Forward: for each chunk of valid tokens and each vocabulary tile, logits
z = (h Wᵀ + b)/τ of shape (n, v) only; a running log-sum-exp (max m, Σ e^{z−m}, Σ e^{z−m} z) gives

    log π(y) = z_y − lse,      H = lse − Σ_k p_k z_k,      p = e^{z − lse}

and nothing of size V is kept: the backward recomputes each tile's logits and applies

    ∂/∂z_k = g_logp·(1[k = y] − p_k) − g_H·p_k·(log p_k + H),      then ×1/τ,

accumulating ∂h = dz W and ∂W = dzᵀ h (and ∂b = Σ dz) tile by tile. Cost: four (n × v × H) matmuls per tile (one
forward, three backward) against three for the materialized path; memory: the tile instead of B·T·V.

**One pass** (a :data:`ROW_LOCAL` loss, the default for those). With the batch's aggregation normalizer fixed
(:func:`chunk_config`), the loss of a chunk of whole rows is that chunk's share of the batch's loss, so g_logp (and
g_H) of a chunk are known as soon as its log-probs are: for each chunk of rows the (n × V) logits are formed once,
give log π and H, the loss of the chunk gives its g_logp, the same buffer becomes ∂z in place, and ∂h = ∂z W,
∂W += ∂zᵀ h follow. Three matmuls per token, the minimum of any exact method; memory: one (n × V) buffer
(:func:`single_pass_chunk`). The backward of the returned loss hands back the gradients computed in the forward.

Either way, padded positions (``mask`` False) are skipped entirely — not computed, not read (their ids and hidden
states may be anything) — and get log-prob 0 and zero gradient.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from rlspec.reference._validate import fail

__all__ = ["fused_logprobs", "fused_policy_loss", "default_chunks", "single_pass_chunk", "ROW_LOCAL"]


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


def _logit_grad_(logp_tile: torch.Tensor, gl: torch.Tensor, ge: torch.Tensor | None,
                 ent: torch.Tensor | None) -> torch.Tensor:
    """∂loss/∂z of a tile, in place over its log-probabilities log p = z − lse (n, v), without the 1[k = y] term:
    −p·g_logp, or −p·(g_logp + g_H·(log p + H)) when the entropy carries a gradient (``ge``, with ``ent`` = H)."""
    if ge is None:
        return logp_tile.exp_().mul_(-gl[:, None])
    p = logp_tile.exp()
    return logp_tile.add_(ent[:, None]).mul_(ge[:, None]).add_(gl[:, None]).mul_(p).neg_()


def _check_ids(y: torch.Tensor, V: int) -> None:
    """The sampled ids at valid positions lie in [0, V) (RLSpecValueError naming ``ids`` otherwise)."""
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= V):
        raise fail("ids", f"values in [{int(y.min())}, {int(y.max())}] at valid positions", f"ids in [0, {V})")


def _lse_step(z: torch.Tensor, lse: torch.Tensor, pz: torch.Tensor | None):
    """Fold one vocabulary tile of logits z (n, v) into the running log-sum-exp ``lse`` (n,) and, when ``pz`` is
    given, into Σ_k p_k z_k over the tiles so far (rescaled to the new lse); returns (lse, pz)."""
    lse_t = torch.logsumexp(z, dim=1)  # one fused pass over the tile
    lse_new = torch.logaddexp(lse, lse_t)
    if pz is not None:  # Σ p z = Σ_tiles e^{lse_t − lse}·(Σ_k softmax_t(z)_k z_k)
        s_t = (torch.softmax(z, dim=1) * z).sum(dim=1)
        pz = pz * torch.exp(lse - lse_new) + s_t * torch.exp(lse_t - lse_new)
    return lse_new, pz


def _target_rows(y: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Rows whose sampled id lies in the vocabulary tile [lo, hi) (their column there is y − lo)."""
    return ((y >= lo) & (y < hi)).nonzero().squeeze(1)


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
                lse[s:e], pz_c = _lse_step(z, lse[s:e], pz[s:e] if with_entropy else None)
                if with_entropy:
                    pz[s:e] = pz_c
                rows = _target_rows(yc, lo, hi)
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
                dz = _logit_grad_(z.sub_(lse_c[:, None]), gl, None if g_ent is None else g_ent[s:e],
                                  None if g_ent is None else ent[s:e])  # in place: z is not needed again
                rows = _target_rows(yc, lo, hi)
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


def _check_head(hidden, weight, ids, bias, temperature, mask) -> torch.Tensor:
    """Validate the LM head's inputs (naming the argument); returns the bool mask (all True when None)."""
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
    return mask


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
    mask = _check_head(hidden, weight, ids, bias, temperature, mask)
    V, lead = weight.shape[0], hidden.shape[:-1]
    flat_mask = mask.reshape(-1)
    idx = flat_mask.nonzero().squeeze(1)  # valid tokens only
    h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, idx)  # (n, H)
    y = ids.reshape(-1).index_select(0, idx).long()
    _check_ids(y, V)
    c0, t0 = default_chunks(max(1, y.numel()), V)
    logp_v, ent_v = _FusedLogProb.apply(h, weight, bias, y, 1.0 / float(temperature), int(chunk or c0),
                                        int(tile or t0), bool(entropy))
    out_dtype = logp_v.dtype
    logp = torch.zeros(flat_mask.shape[0], dtype=out_dtype, device=hidden.device).index_put((idx,), logp_v)
    ent = torch.zeros(flat_mask.shape[0], dtype=out_dtype, device=hidden.device).index_put((idx,), ent_v) \
        if entropy else None
    return logp.reshape(lead), (ent.reshape(lead) if entropy else None)


# --------------------------------------------------------------------------------------------- one pass
# Most losses are *row-local*: with the step's aggregation normalizer fixed (the count of valid tokens, rows or
# groups of the whole batch, :mod:`rlspec.optimized.distributed`), the loss of a set of whole rows (whole groups
# when the loss takes prompt ids) is exactly those rows' share of the full-batch loss, and its gradient their share
# of the gradient. Then the LM head needs no second pass: for each chunk of rows, the chunk's logits (n × V) are
# formed once, give log π and the entropy, the loss of the chunk gives dlogp at once, and the same logits turn into
# ∂z in place, followed by ∂h = ∂z W and ∂W += ∂zᵀ h. Three (n × V × H) matmuls per token, the minimum any exact
# method needs, and one (n × V) buffer instead of (B·T × V) logits and their gradient.

#: Registered policy losses computed in one pass (``passes="auto"``). tests/test_lmhead.py checks, for every
#: policy loss with an optimized implementation, that the entries listed here give the full-batch loss and gradient
#: on random batches split into chunks of one row (one prompt) with :func:`chunk_config`'s normalizer, and that
#: each entry left out differs on some batch (or has no normalizer to fix), with the reason below.
ROW_LOCAL = frozenset({
    "a2tgpo", "brrl", "capo_curvature", "cispo", "copo_loss", "dapo", "decoupled_ppo", "dppo", "dro", "fiberpo",
    "gbpo", "gmpo", "gpg_loss", "grpo_guard", "gspo", "gspo_token", "hapo", "igpo_inpainting_loss", "ppo", "r2vpo",
    "riskpo", "sapo", "tapo", "tis", "two_sided_clip", "vespo",
})
#: Row-local only with these inputs (otherwise two passes): what is needed, and the test of it.
ROW_LOCAL_WHEN = {
    "gbpo": ("prompt ids (group) given (else its targets are medians over the whole batch)",
             lambda inputs: inputs.get("group") is not None),
    "hapo": ("entropy_stats given (else its entropy signal is a quantile over the whole batch's tokens)",
             lambda inputs: inputs.get("entropy_stats") is not None),
}
#: Why the other policy losses take two passes.
NOT_ROW_LOCAL = {
    "inpo_pairwise": "it aggregates over pairs of responses ('pair-mean') and has no normalizer to fix",
    "kl_cov": "it selects tokens by a covariance ranking over the whole batch",
}


def _a2tgpo_live(mask, inputs, cfg):
    turn = inputs.get("turn")
    return mask if turn is None else mask & (turn >= 0)


def _tapo_counted(mask, inputs, cfg):
    from rlspec.optimized.tapo import model_token_mask

    return mask if cfg.tool_in_denominator else model_token_mask(mask, inputs.get("tool_mask"))


def _igpo_kept(mask, inputs, cfg):
    """IGPO keeps a fixed number of each row's hint tokens (the top entropies): the count, all the normalizer
    needs, does not depend on the entropies, so zeros stand in for those the head has not computed yet."""
    from rlspec.optimized.igpo_inpainting import kept_positions

    hint = inputs.get("hint_mask")
    keep = None if hint is None else kept_positions(mask, hint, torch.zeros(mask.shape, dtype=torch.float64),
                                                   cfg.keep_ratio)
    return mask if keep is None else keep


def _capo_kept(mask, inputs, cfg):
    from rlspec.optimized.capo_curvature import capo_curvature_mask

    if cfg.mask_denominators != "kept" or inputs.get("h") is None:
        return mask
    return capo_curvature_mask(inputs["h"], inputs["W"], inputs["actions"], inputs["adv"], mask,
                               inputs.get("adam_m"), inputs.get("adam_v"), inputs.get("adam_step", 0), cfg)["keep"]


#: Entries that aggregate over a mask of their own: the normalizer counts that mask's tokens (rows, prompts).
AGG_MASK = {"a2tgpo": _a2tgpo_live, "tapo": _tapo_counted, "igpo_inpainting_loss": _igpo_kept,
            "capo_curvature": _capo_kept}
#: Inputs shared by every row (never split into chunks), whatever their first dimension.
SHARED_INPUTS = frozenset({"W", "adam_m", "adam_v", "adam_step", "entropy_stats"})


def chunk_config(name: str, cfg, mask: torch.Tensor, inputs: dict):
    """``cfg`` with the whole batch's aggregation normalizer (and, for seq-mean-token-sum-norm, C = T) fixed, so
    that the loss of any chunk of whole rows (whole prompts) is that chunk's share of the batch's loss."""
    from rlspec.optimized import distributed

    if cfg.normalizer is None:
        agg_mask = AGG_MASK[name](mask, inputs, cfg) if name in AGG_MASK else mask
        n = distributed.global_normalizer(agg_mask, cfg.agg, group=inputs.get("group"), local=True,
                                          seq_denominator=getattr(cfg, "seq_denominator", None))
        if n > 0:
            cfg = dataclasses.replace(cfg, normalizer=n)
    if cfg.agg == "seq-mean-token-sum-norm" and getattr(cfg, "const", None) is None:
        cfg = dataclasses.replace(cfg, const=float(mask.shape[1]))
    return cfg


def chunk_inputs(inputs: dict, rows: torch.Tensor, B: int) -> dict:
    """The loss's inputs for the rows ``rows`` of a batch of B rows (per-row tensors sliced, the rest as given)."""
    return {k: (v.index_select(0, rows.to(v.device)) if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == B
                and k not in SHARED_INPUTS else v) for k, v in inputs.items()}


PASSES = ("auto", 1, 2)


def _row_units(B: int, group: torch.Tensor | None) -> list[torch.Tensor]:
    """Rows that must stay together: one row each, or the rows of each prompt id (in order of first appearance)."""
    if group is None:
        return [torch.tensor([i]) for i in range(B)]
    g = group.detach().cpu().reshape(-1)
    order = torch.argsort(g, stable=True)
    gs = g[order]
    cut = (gs[1:] != gs[:-1]).nonzero().squeeze(1) + 1
    return list(torch.tensor_split(order, cut.tolist()))


def _chunks(units: list[torch.Tensor], tokens_per_row: torch.Tensor, budget: int) -> list[torch.Tensor]:
    """Pack units greedily into chunks of at most ``budget`` valid tokens (a larger unit is a chunk of its own)."""
    out, cur, n = [], [], 0
    for u in units:
        k = int(tokens_per_row[u].sum())
        if cur and n + k > budget:
            out.append(torch.cat(cur))
            cur, n = [], 0
        cur.append(u)
        n += k
    if cur:
        out.append(torch.cat(cur))
    return [torch.sort(c).values for c in out]


def single_pass_chunk(n_tokens: int, vocab: int) -> int:
    """Valid tokens per chunk of the one-pass head: an eighth of the batch's tokens, at least 128 and at most 2²⁶
    logits (256 MB in float32).

    The chunk's (n × V) logits are the pass's working memory, an eighth of one (N × V) tensor where the materialized
    path holds about three. Each chunk reads and writes ∂W once (∂W += ∂zᵀ h), which costs about 20 % of the
    matmuls' time at 128 tokens on a CPU and halves with each doubling (measured, 2 threads): fewer, larger chunks are
    faster, smaller ones leaner; ``chunk=`` picks another point."""
    if n_tokens <= 0:
        return 1
    return min(n_tokens, max(128, min(n_tokens // 8, (1 << 26) // max(1, vocab))))


class _Job:
    """Everything one single-pass call needs besides (h, W, b): see :func:`_one_pass`."""

    def __init__(self, fn, cfg, inputs, mask, ids, chunks, inv_tau, entropy, tile):
        self.fn, self.cfg, self.inputs, self.mask, self.ids = fn, cfg, inputs, mask, ids
        self.chunks, self.inv_tau, self.entropy, self.tile = chunks, inv_tau, entropy, tile


def _one_pass(job: _Job, h, W, b, need: tuple[bool, bool, bool]):
    """(loss, ∂h, ∂W, ∂b) of the loss over every chunk of rows; gradients None where not needed.

    The chunk's logits live in one buffer per vocabulary tile, and everything that touches a tile happens while it
    is hot in cache: its matmul, then the running log-sum-exp (and Σ p z) in the forward; in the backward
    ∂z in place, the tile's contributions ∂h += ∂z W_tile and ∂W_tile += ∂zᵀ h, and ∂b."""
    B, T = job.mask.shape
    Hs, V = h.shape[-1], W.shape[0]
    half = W.dtype in (torch.bfloat16, torch.float16) or h.dtype in (torch.bfloat16, torch.float16)
    acc = torch.float32 if half else h.dtype
    dev = h.device
    any_grad = any(need)
    flat_h = h.reshape(B * T, Hs)
    flat_m = job.mask.reshape(-1)
    flat_y = job.ids.reshape(-1)
    dh = torch.zeros(B * T, Hs, dtype=acc, device=dev) if need[0] else None
    dW = torch.zeros(V, Hs, dtype=acc, device=W.device) if need[1] else None
    db = torch.zeros(V, dtype=acc, device=W.device) if need[2] else None
    b_acc = None if b is None else b.to(acc)
    total = torch.zeros((), dtype=acc, device=dev)
    cap = max([int(job.mask.index_select(0, c.to(job.mask.device)).sum()) for c in job.chunks] + [1])
    bounds = [(lo, min(V, lo + job.tile)) for lo in range(0, V, job.tile)]
    bufs = [torch.empty(cap, hi - lo, dtype=acc, device=dev) for lo, hi in bounds]  # the chunk's logits, by tile

    def weight_tile(lo, hi):
        return W[lo:hi] if W.dtype == acc else W[lo:hi].to(acc)

    for rows in job.chunks:
        pos = (rows[:, None] * T + torch.arange(T)[None, :]).reshape(-1).to(dev)
        pos = pos[flat_m.index_select(0, pos)]  # flat positions of the chunk's valid tokens
        n = pos.numel()
        hc = flat_h.index_select(0, pos)
        h_acc = hc if hc.dtype == acc else hc.to(acc)
        yc = flat_y.index_select(0, pos).long()
        lse = torch.full((n,), -math.inf, dtype=acc, device=dev)
        pz = torch.zeros(n, dtype=acc, device=dev) if job.entropy else None
        zy = torch.zeros(n, dtype=acc, device=dev)
        for (lo, hi), buf in zip(bounds, bufs):  # forward: logits tile, running log-sum-exp
            zt = buf[:n]
            if hc.dtype == acc and W.dtype == acc:
                torch.matmul(hc, W[lo:hi].T, out=zt)
            else:
                zt.copy_(hc @ W[lo:hi].T)
            if b_acc is not None:
                zt.add_(b_acc[lo:hi])
            if job.inv_tau != 1.0:
                zt.mul_(job.inv_tau)
            if n == 0:
                continue
            lse, pz = _lse_step(zt, lse, pz)
            rows_t = _target_rows(yc, lo, hi)
            zy[rows_t] = zt[rows_t, yc[rows_t] - lo]
        ent_v = lse - pz if pz is not None else None
        lp_c = _rows_tensor(zy - lse, pos, rows, T)
        ent_c = _rows_tensor(ent_v, pos, rows, T) if ent_v is not None else None
        sub = chunk_inputs(job.inputs, rows, B)
        if ent_c is not None:
            sub["entropy"] = ent_c
        mask_c = job.mask.index_select(0, rows.to(job.mask.device))
        with torch.enable_grad():
            lp_c.requires_grad_(any_grad)
            if ent_c is not None:
                ent_c.requires_grad_(any_grad)
            loss_c = job.fn(logp=lp_c, mask=mask_c, config=job.cfg, **sub)
            if any_grad:
                wrt = [lp_c] + ([ent_c] if ent_c is not None else [])
                g = torch.autograd.grad(loss_c, wrt, allow_unused=True)
        total = total + loss_c.detach().to(acc)
        if not any_grad or n == 0:
            continue
        gl = _at(g[0], pos, rows, T, acc)
        ge = _at(g[1], pos, rows, T, acc) if ent_c is not None and g[1] is not None else None
        dh_c = torch.zeros(n, Hs, dtype=acc, device=dev) if dh is not None else None
        for (lo, hi), buf in zip(bounds, bufs):  # backward: ∂z = g_logp·(1[k=y] − p) − g_H·p·(log p + H), in place
            zt = _logit_grad_(buf[:n].sub_(lse[:, None]), gl, ge, ent_v)
            rows_t = _target_rows(yc, lo, hi)
            zt[rows_t, yc[rows_t] - lo] += gl[rows_t]
            if job.inv_tau != 1.0:
                zt.mul_(job.inv_tau)
            if dh_c is not None:
                dh_c.addmm_(zt, weight_tile(lo, hi))
            if dW is not None:
                dW[lo:hi].addmm_(zt.T, h_acc)
            if db is not None:
                db[lo:hi] += zt.sum(dim=0)
        if dh is not None:
            dh.index_copy_(0, pos, dh_c)
    return (total, None if dh is None else dh.reshape(h.shape).to(h.dtype), None if dW is None else dW.to(W.dtype),
            None if db is None else db.to(b.dtype))


def _local(pos: torch.Tensor, rows: torch.Tensor, T: int) -> torch.Tensor:
    """Flat positions ``pos`` of the batch as flat positions in the chunk made of the (sorted) rows ``rows``."""
    return torch.searchsorted(rows.to(pos.device), pos // T) * T + pos % T


def _rows_tensor(v: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor, T: int) -> torch.Tensor:
    """The (len(rows), T) tensor with ``v`` at the chunk's valid positions ``pos`` (flat, of the batch), 0 elsewhere."""
    out = torch.zeros(rows.numel() * T, dtype=v.dtype, device=v.device)
    return out.index_put_((_local(pos, rows, T),), v).reshape(rows.numel(), T)


def _at(g: torch.Tensor | None, pos: torch.Tensor, rows: torch.Tensor, T: int, acc) -> torch.Tensor:
    """The chunk gradient ``g`` (len(rows), T) at the valid positions ``pos`` (zeros when the loss ignored it)."""
    if g is None:
        return torch.zeros(pos.numel(), dtype=acc, device=pos.device)
    return g.reshape(-1).index_select(0, _local(pos, rows, T)).to(acc)


class _SinglePass(torch.autograd.Function):
    """loss over row chunks with ∂h, ∂W, ∂b computed in the forward; the backward hands them back (scaled)."""

    @staticmethod
    def forward(ctx, h, W, b, job):
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], b is not None and ctx.needs_input_grad[2])
        loss, dh, dW, db = _one_pass(job, h, W, b, need)
        ctx.grads, ctx.job, ctx.need = (dh, dW, db), job, need
        ctx.save_for_backward(h, W, b if b is not None else torch.empty(0))
        return loss

    @staticmethod
    def backward(ctx, g):
        grads, ctx.grads = ctx.grads, None  # released: autograd may take them as .grad without a copy
        if grads is None:  # a second backward (retain_graph): recompute
            h, W, b = ctx.saved_tensors
            grads = _one_pass(ctx.job, h, W, b if ctx.need[2] else None, ctx.need)[1:]
        if not (g.device.type == "cpu" and float(g) == 1.0):
            grads = tuple(None if x is None else x * g.to(x.dtype) for x in grads)
        return (*grads, None)


def _single_pass_blocker(name: str, cfg, inputs: dict, hidden, weight) -> str | None:
    """Why this call cannot take the one-pass path (None: it can)."""
    if name not in ROW_LOCAL:
        return f"{name!r} is not row-local ({NOT_ROW_LOCAL.get(name, 'not in ROW_LOCAL')})"
    if name in ROW_LOCAL_WHEN and not ROW_LOCAL_WHEN[name][1](inputs):
        return f"{name!r} is row-local only with {ROW_LOCAL_WHEN[name][0]}"
    if cfg is None or not hasattr(cfg, "normalizer") or not hasattr(cfg, "agg"):
        return "its config has no aggregation normalizer"
    if hidden.dtype != weight.dtype:
        return f"hidden ({hidden.dtype}) and weight ({weight.dtype}) differ in dtype"
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and k not in SHARED_INPUTS:
            if v.ndim == 0 or v.shape[0] != hidden.shape[0]:
                return f"input {k!r} of shape {tuple(v.shape)} is not per row"
            if v.requires_grad:
                return f"input {k!r} requires a gradient"
        elif v is not None and k not in SHARED_INPUTS and not isinstance(v, (int, float, bool, str)):
            return f"input {k!r} is a {type(v).__name__}, not a tensor"
    return None


def fused_policy_loss(name: str, hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, *,
                      bias: torch.Tensor | None = None, temperature: float = 1.0, config: Any = None,
                      chunk: int | None = None, tile: int | None = None, passes: str | int = "auto",
                      **inputs: Any) -> torch.Tensor:
    """Any registered policy loss computed straight from hidden states: ``loss.backward()`` gives ∂/∂hidden,
    ∂/∂weight (and ∂/∂bias) without [B, T, V] logits. ``inputs`` are the loss's other arguments (old_logp, adv,
    ref_logp, group, ...); an entry that takes ``entropy`` receives the fused entropy unless one is given.

    ``passes``: 1 computes the gradients in the forward, chunk by chunk of rows (a :data:`ROW_LOCAL` loss with
    per-row tensor inputs; three matmuls per token), 2 computes log-probs first and the LM head's backward after
    the loss (any loss; the backward recomputes the logits: four matmuls), ``"auto"`` takes 1 where it applies.
    ``chunk``: valid tokens per chunk (one pass: :func:`single_pass_chunk`; two passes: :func:`default_chunks`);
    ``tile``: vocabulary tile width."""
    import inspect

    from rlspec import optimized
    from rlspec.reference import registry

    spec = registry.get(name)
    if spec.kind != "policy_loss":
        raise fail("name", f"{name!r} of kind {spec.kind!r}", "a policy_loss entry")
    if passes not in PASSES:
        raise fail("passes", repr(passes), "'auto', 1 or 2")
    fn = optimized.get(spec.name)
    wants_entropy = "entropy" in inspect.signature(fn).parameters and "entropy" not in inputs
    if passes != 2 and isinstance(hidden, torch.Tensor) and hidden.ndim == 3 and isinstance(mask, torch.Tensor) \
            and mask.ndim == 2 and tuple(mask.shape) == tuple(hidden.shape[:2]):
        cfg = config if config is not None else spec.config()
        why = _single_pass_blocker(spec.name, cfg, inputs, hidden, weight)
        if why is None:
            return _single_pass(spec.name, fn, cfg, hidden, weight, ids, mask, bias, temperature, chunk, tile,
                                wants_entropy, inputs)
        if passes == 1:
            raise fail("passes", f"1 for this call: {why}", "'auto' or 2")
    elif passes == 1:
        raise fail("passes", "1 with hidden that is not (B, T, H) or a mask that is not (B, T)", "'auto' or 2")
    logp, ent = fused_logprobs(hidden, weight, ids, bias=bias, temperature=temperature, mask=mask,
                               entropy=wants_entropy, chunk=chunk, tile=tile)
    if wants_entropy:
        inputs["entropy"] = ent
    return fn(logp=logp, mask=mask, config=config, **inputs)


def _single_pass(name, fn, cfg, hidden, weight, ids, mask, bias, temperature, chunk, tile, entropy, inputs):
    _check_head(hidden, weight, ids, bias, temperature, mask)
    B, T = mask.shape
    V = weight.shape[0]
    flat_m = mask.reshape(-1)
    _check_ids(ids.reshape(-1)[flat_m], V)
    group = inputs.get("group")
    cfg = chunk_config(name, cfg, mask, inputs)
    gid = None if group is None else (group if isinstance(group, torch.Tensor) else torch.as_tensor(group))
    units = _row_units(B, gid)
    budget = int(chunk) if chunk else single_pass_chunk(int(flat_m.sum()), V)
    chunks = _chunks(units, mask.sum(dim=1).cpu(), budget)
    t = max(1, min(V, int(tile) if tile else 2048))  # vocabulary tiles: each one's matmuls and passes run in cache
    job = _Job(fn, cfg, inputs, mask, ids, chunks, 1.0 / float(temperature), entropy, t)
    return _SinglePass.apply(hidden, weight, bias, job)

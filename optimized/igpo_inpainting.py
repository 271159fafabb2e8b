"""IGPO (arXiv 2509.10396) in torch. Mirrors :mod:`rlspec.reference.igpo_inpainting`. The registered loss forms the
entropy-filtered mask once, then runs its fused core (:mod:`rlspec.optimized.fused`), value and gradient in one pass;
:func:`igpo_inpainting_loss_autograd` is the autograd formulation it falls back to (and validates with).

Vectorised: the per-group "all wrong" test and counts are scatter sums; the rank of a row inside its group
(batch order) and the rank of each correct inpainted response come from one stable sort by group id;
the entropy filter ranks a row's hint tokens by a stable descending sort of the entropies (ties keep
position order, i.e. the earlier position wins, as in the reference). The random choice among correct
inpainted responses (``select="random"``) and the sampling itself (``igpo_rollouts``, LLM callables) stay in
the reference.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.grpo import grpo_outcome_advantage
from rlspec.optimized.ppo import clipped_surrogate
from rlspec.optimized.registry import implements
from rlspec.reference._validate import RLSpecValueError, fail
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.igpo_inpainting import IGPOConfig, IGPOLossConfig

__all__ = ["IGPOConfig", "IGPOLossConfig", "entropy_filter", "replace_with_inpainted", "igpo_inpainting",
           "kept_positions", "igpo_inpainting_loss", "igpo_inpainting_loss_autograd", "igpo_core"]


def _vector(x, name: str, B: int, device) -> torch.Tensor:
    t = torch.as_tensor(x, device=device)
    if t.shape != (B,) or (t.dtype.is_floating_point and not bool(torch.isfinite(t).all())):
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", f"finite values of shape ({B},)")
    return t


def _correct(correct, R: torch.Tensor, cfg: IGPOConfig, name: str) -> torch.Tensor:
    if correct is None:
        return R >= cfg.success_reward
    c = torch.as_tensor(correct, device=R.device)
    if c.shape != R.shape or c.dtype != torch.bool:
        raise fail(name, f"{c.dtype} {tuple(c.shape)}", f"a bool tensor of shape {tuple(R.shape)}")
    return c


def replace_with_inpainted(R: torch.Tensor, inv: torch.Tensor, correct: torch.Tensor, R_inp: torch.Tensor,
                           correct_inp: torch.Tensor, max_replacements: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(r' (B,), source (B,) long): first k rows of every all-wrong group ← its first k correct inpainted rows."""
    B = R.shape[0]
    dev = R.device
    if B == 0:
        return R.clone(), torch.full((0,), -1, dtype=torch.long, device=dev)
    P = int(inv.max()) + 1
    n_correct = torch.zeros(P, dtype=torch.long, device=dev).index_add(0, inv, correct.long())
    n_good = torch.zeros(P, dtype=torch.long, device=dev).index_add(0, inv, correct_inp.long())
    k = torch.where(n_correct == 0, torch.clamp(n_good, max=max_replacements), torch.zeros_like(n_good))
    order = torch.sort(inv, stable=True).indices                       # rows grouped, batch order kept
    pos = torch.arange(B, device=dev)
    start = torch.full((P,), B, dtype=torch.long, device=dev).scatter_reduce(0, inv[order], pos, "amin")
    rank = torch.empty(B, dtype=torch.long, device=dev)
    rank[order] = pos - start[inv[order]]                              # row's index inside its group
    cum = torch.cumsum(correct_inp[order].long(), 0)
    base = torch.zeros(P, dtype=torch.long, device=dev).index_add(0, inv, correct_inp.long())
    before = torch.cumsum(base, 0) - base                              # correct rows in earlier groups
    crank = torch.empty(B, dtype=torch.long, device=dev)
    crank[order] = cum - 1 - before[inv[order]]                        # rank among the group's correct ones
    table = torch.full((P, B), -1, dtype=torch.long, device=dev)
    good = correct_inp.nonzero()[:, 0]
    table[inv[good], crank[good]] = good
    replaced = rank < k[inv]
    source = torch.where(replaced, table[inv, rank.clamp(max=B - 1)], torch.full_like(rank, -1))
    R2 = torch.where(replaced, R_inp[source.clamp(min=0)].to(R.dtype), R)
    return R2, source


@implements("igpo_inpainting")
def igpo_inpainting(rewards, group, mask, inpaint_rewards, correct=None, inpaint_correct=None,
                    config: IGPOConfig | None = None, rng=None):
    """(rewards' (B,), source (B,), adv (B, T)) — replacement in all-wrong groups, then r − mean (or z-score)."""
    cfg = config or IGPOConfig()
    if cfg.select != "first":
        raise fail("config.select", repr(cfg.select), '"first" in optimized (random selection: use the reference)')
    M = common.check_mask(mask)
    if M.ndim != 2:
        raise fail("mask", f"shape {tuple(M.shape)}", "shape (B, T)")
    B = M.shape[0]
    R = _vector(rewards, "rewards", B, M.device).to(torch.float64)
    R_inp = _vector(inpaint_rewards, "inpaint_rewards", B, M.device).to(torch.float64)
    g = common.group_ids(group, B, device=M.device)
    c = _correct(correct, R, cfg, "correct")
    c_inp = _correct(inpaint_correct, R_inp, cfg, "inpaint_correct")
    inv = torch.unique(g, return_inverse=True)[1]
    R2, source = replace_with_inpainted(R, inv, c, R_inp, c_inp, cfg.max_replacements)
    A = grpo_outcome_advantage(R2, g, GRPOConfig(std_normalize=cfg.std_normalize, ddof=cfg.ddof, eps=cfg.eps))
    return R2, source, torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype))


def entropy_filter(mask: torch.Tensor, hint: torch.Tensor, H: torch.Tensor, q: float) -> torch.Tensor:
    """keep (B, T) = mask ∧ (¬hint ∨ the row's top max(1, ⌊n·q⌋) hint tokens by entropy; ties → earlier)."""
    cand = mask & hint
    n = cand.sum(dim=1)                                                # (B,)
    k = torch.where(n > 0, torch.clamp(torch.floor(n.double() * q).long(), min=1), torch.zeros_like(n))
    key = torch.where(cand, H.double(), torch.full_like(H, float("-inf"), dtype=torch.float64))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(mask.shape[1], device=mask.device).expand_as(order).contiguous())
    return mask & (~hint | (cand & (rank < k[:, None])))


def kept_positions(mask: torch.Tensor, hint_mask, entropy, keep_ratio: float) -> torch.Tensor | None:
    """keep (B, T) bool: the entropy-filtered loss positions (:func:`entropy_filter`) for the bool ``mask``, after
    the reference's checks of ``hint_mask`` and ``entropy`` (RLSpecValueError naming them); None when there is no
    ``hint_mask`` (every position of ``mask`` is kept)."""
    if hint_mask is None:
        return None
    hint = common.check_mask(hint_mask, mask.shape, "hint_mask")
    cand = mask & hint
    if entropy is None:
        if bool(cand.any()):
            raise fail("entropy", "None", "token entropies (B, T) where hint_mask and mask are True")
        H = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)
    else:
        if not isinstance(entropy, torch.Tensor) or entropy.shape != mask.shape:
            raise fail("entropy", f"{type(entropy).__name__} {tuple(getattr(entropy, 'shape', ()))}",
                       f"a tensor of shape {tuple(mask.shape)}")
        H = common.clean(entropy, cand, "entropy").detach()
        if bool((H < 0).any()):
            raise fail("entropy", "a negative value", "entropies ≥ 0 at hint positions")
    return entropy_filter(mask, hint, H, keep_ratio)


def igpo_inpainting_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: IGPOLossConfig | None = None,
                                  hint_mask=None, entropy=None, group=None):
    """Scalar IGPO loss (PPO on the entropy-filtered mask, optional sequence ratio and β·k3); ``loss.backward()``
    gives ∂loss/∂logp."""
    cfg = config or IGPOLossConfig()
    logp, old_logp, adv, mask, ref = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    if cfg.beta > 0 and ref is None:
        raise fail("ref_logp", "None", "reference log-probs when beta > 0")
    keep = kept_positions(mask, hint_mask, entropy, cfg.keep_ratio)
    keep = mask if keep is None else keep
    if cfg.ratio == "token":
        r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    else:
        n = mask.sum(dim=1)
        d = torch.where(mask, logp - old_logp, torch.zeros_like(logp)).sum(dim=1) / n.clamp(min=1)
        if cfg.log_ratio_clamp is not None:
            d = torch.clamp(d, -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
        r = torch.exp(d)[:, None].expand_as(logp)
    ell = clipped_surrogate(r, adv, cfg.eps_low, cfg.eps_high)
    if cfg.beta > 0:
        dlt = ref - logp
        ell = ell + cfg.beta * (torch.exp(dlt) - dlt - 1.0)
    return common.aggregate_token_loss(torch.where(keep, ell, torch.zeros_like(ell)), keep, cfg, group)


def igpo_core(lp, old, adv, mask, c, p, extra=None, ref=None, *, agg, clamp=False, seq=False, k3=False, hint=False,
              need_grad=True):
    """IGPO: PPO's clip on the kept positions ``mask`` (coefficients of them), of the token ratio or (``seq``) of
    the row's ratio s_i = exp(mean of log r over the row's valid tokens), + β·k3(ref − logp) (``k3``, ``ref`` the
    reference log-probs). ``extra`` = the row's valid tokens before the entropy filter as 0/1 (``hint``; else the
    kept positions are all of them): the mean of s_i and the finiteness probe run over those. ∂/∂logp_t:
    c ∂ℓ/∂r·r (token), s_i/n_i Σ_kept c ∂ℓ/∂s on every valid token of the row (sequence), + β c (1 − e^{ref−logp}).
    p = (lo, hi, log_ratio_clamp, β, q)."""
    dt = p.dtype
    x, o, a, _, fin = fused._inputs(lp, old, adv, p, None, ref)
    keep = fused._valid(mask, dt)
    full = fused._cast(extra, dt) > 0 if hint else keep
    cf = fused._coef(keep, c, p[-1], agg)
    if seq:  # GSPO's per-row pass over the valid tokens (the probe is added below, over the same tokens)
        r, cut, _, n = fused._seq_stats(x, o, a, 0.0, full, p[2] if clamp else None)
        n1 = n.clamp(min=1)
        ell, binds = fused._clip_branch(r, a, p[0], p[1])
        dl = None
    else:
        r, cut = fused._ratio(x - o, p[2] if clamp else None)
        ell, dl = fused._clip_grad(r, a, p[0], p[1], None, cut)
    dk = None
    if k3:
        e = fused._cast(ref, dt)
        dlt = e - x
        ex = torch.exp(dlt)
        ell = ell + p[3] * (ex - dlt - 1.0)
        dk = p[3] * (1.0 - ex)
    term = cf * ell
    if hint:
        loss = torch.where(keep, term, 0.0).sum() + torch.where(full, fin, 0.0).sum()
    else:
        loss = torch.where(keep, term + fin, 0.0).sum()
    if not need_grad:
        return loss, None
    if seq:
        w = torch.where(keep, cf * torch.where(binds, 0.0, -a), 0.0).sum(dim=1, keepdim=True)  # Σ_kept c ∂ℓ/∂s
        ws = fused._safe_mul(w, r) / n1
        if cut is not None:
            ws = torch.where(cut, 0.0, ws)
        g = torch.where(full, ws, 0.0)
        if dk is not None:
            g = g + torch.where(keep, cf * dk, 0.0)
    else:
        g = torch.where(keep, cf * (dl if dk is None else dl + dk), 0.0)
    return loss, g.to(lp.dtype)


_DEFAULT_LOSS_CONFIG = IGPOLossConfig()  # frozen: one instance serves every call without a config


def _fast_keep(logp, mask, cfg: IGPOLossConfig, hint_mask, entropy) -> tuple | None:
    """(keep, the valid tokens as 0/1 in the compute dtype) for the fused core, or None where the autograd
    formulation must take the call (non-tensors, shapes that differ, a bad mask, hint mask or entropy: it names
    the argument)."""
    if not (isinstance(logp, torch.Tensor) and isinstance(mask, torch.Tensor) and logp.ndim == 2
            and logp.is_floating_point() and mask.shape == logp.shape and mask.device == logp.device):
        return None
    try:
        M = common.check_mask(mask, logp.shape)
        keep = kept_positions(M, hint_mask, entropy, cfg.keep_ratio)
    except RLSpecValueError:
        return None
    dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
    return keep, M.to(dt)


@implements("igpo_inpainting_loss")
def igpo_inpainting_loss(logp, old_logp, adv, mask, ref_logp=None, config: IGPOLossConfig | None = None,
                         hint_mask=None, entropy=None, group=None):
    """Scalar IGPO loss (PPO on the entropy-filtered mask, optional sequence ratio and β·k3) through its fused core
    (:mod:`rlspec.optimized.fused`): the kept positions once, then value and gradient in one pass;
    :func:`igpo_inpainting_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_LOSS_CONFIG
    kw = dict(ref_logp=ref_logp, hint_mask=hint_mask, entropy=entropy)
    if cfg.beta > 0 and ref_logp is None:
        return igpo_inpainting_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)  # raises
    keep, extra = None, None
    if hint_mask is not None and fused.mode() != "off":
        out = _fast_keep(logp, mask, cfg, hint_mask, entropy)
        if out is None:
            return igpo_inpainting_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
        keep, extra = out
    return fused.fused_policy_loss("igpo_inpainting_loss", igpo_inpainting_loss_autograd, logp, old_logp, adv,
                                   mask if keep is None else keep, cfg, group, extra=extra, extra_f32=True,
                                   call_flags={"hint": keep is not None}, slow_mask=mask, **kw)


fused.CORES["igpo_inpainting_loss"] = fused.Core(
    igpo_core, lambda c: (1.0 - c.eps_low, 1.0 + c.eps_high, c.log_ratio_clamp or 0.0, c.beta),
    lambda c: {"clamp": c.log_ratio_clamp is not None, "seq": c.ratio == "sequence", "k3": c.beta > 0})

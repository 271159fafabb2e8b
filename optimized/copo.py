"""COPO global/local advantages and the blended clipped loss (torch). Mirrors :mod:`rlspec.reference.copo`.

Advantages: H (answer entropy, bits), A_loc (GRPO), A_glob (batch z-score of each prompt's mean reward),
w = σ(k(H − b)) (× 1[A_loc ≠ 0] in the forced mode), Ã = (1 − w) A_glob + w A_loc; the statistics are taken
in float64 (whether A_loc is zero decides the forced mode's w) and returned in the rewards' dtype (float32
for bf16/fp16). Loss: (1 − w)·clip-loss(A_glob) + w·clip-loss(A_loc) per token; the registered loss runs its fused core
(:mod:`rlspec.optimized.fused`), :func:`copo_loss_autograd` (autograd gives dlogp) is the formulation it falls back
to.
"""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.copo import ZERO_RTOL, COPOConfig, COPOLossConfig
from rlspec.reference.grpo import GRPOConfig

__all__ = ["COPOConfig", "COPOLossConfig", "answer_entropy", "global_advantage", "blend_weight", "copo_components",
           "copo_advantage", "copo_loss", "copo_loss_autograd"]


def _inverse(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    _, inv = torch.unique(x, return_inverse=True)
    return inv, (int(inv.max()) + 1 if x.numel() else 0)


def answer_entropy(answers: torch.Tensor, inv: torch.Tensor, n_groups: int) -> torch.Tensor:
    """H (B,) bits of each row's group answer distribution."""
    B = answers.shape[0]
    a_inv, n_ans = _inverse(answers)
    counts = torch.zeros(n_groups * max(n_ans, 1), dtype=torch.float64, device=answers.device)
    counts.index_add_(0, inv * max(n_ans, 1) + a_inv, torch.ones(B, dtype=torch.float64, device=answers.device))
    counts = counts.view(n_groups, max(n_ans, 1))
    p = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    H = -(torch.where(p > 0, p * torch.log2(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))).sum(1)
    return H.clamp(min=0.0)[inv]


def global_advantage(Rglob_g: torch.Tensor, cfg: COPOConfig) -> torch.Tensor:
    """A_glob per prompt (P,): z-score over the P prompts; 0 for P = 1 or equal values."""
    P = Rglob_g.shape[0]
    if P < 2 or bool(Rglob_g.min() == Rglob_g.max()):
        return torch.zeros_like(Rglob_g)
    return (Rglob_g - Rglob_g.mean()) / (Rglob_g.std(correction=cfg.ddof) + cfg.eps)


def blend_weight(H: torch.Tensor, local_zero: torch.Tensor, cfg: COPOConfig) -> torch.Tensor:
    """w = σ(k(H − b)) (B,), 0 where A_loc = 0 in the forced mode."""
    w = torch.sigmoid(cfg.k * (H - cfg.b))
    return torch.where(local_zero, torch.zeros_like(w), w) if cfg.blend == "soft-with-forced" else w


def copo_components(rewards, group, mask, config: COPOConfig | None = None, answers=None) -> dict[str, torch.Tensor]:
    """H, A_loc, A_glob, w per row (B,) float64."""
    cfg = config or COPOConfig()
    R, g, _ = validate_outcome(rewards, group, mask)
    R = R.to(torch.float64)
    B = R.shape[0]
    if answers is None:
        answers = _inverse(R)[0]
    elif not isinstance(answers, torch.Tensor) or answers.shape != (B,) or answers.dtype.is_floating_point \
            or answers.dtype == torch.bool:
        raise fail("answers", f"{getattr(answers, 'dtype', type(answers).__name__)} "
                   f"{tuple(getattr(answers, 'shape', ()))}", f"integer answer ids of shape ({B},)")
    inv, P = _inverse(g)
    H = answer_entropy(answers, inv, P)
    z = torch.zeros(P, dtype=torch.float64, device=R.device)
    size = z.clone().index_add_(0, inv, torch.ones_like(R))
    hi = torch.full_like(z, -torch.inf).scatter_reduce(0, inv, R, "amax")
    lo = torch.full_like(z, torch.inf).scatter_reduce(0, inv, R, "amin")
    amax = z.clone().scatter_reduce(0, inv, R.abs(), "amax")
    mean = torch.where(hi == lo, hi, z.clone().index_add_(0, inv, R) / size)  # (P,)
    local_zero = (size[inv] < 2) | ((R - mean[inv]).abs() <= ZERO_RTOL * amax[inv])
    A_loc = torch.where(local_zero, torch.zeros_like(R), grpo_outcome_advantage(R, g, GRPOConfig(ddof=cfg.ddof,
                                                                                                   eps=cfg.eps)))
    c = torch.ones_like(z)
    if cfg.entropy_coef:
        Hg = torch.zeros_like(z).scatter_reduce(0, inv, H, "amax")
        lam = torch.where(size > 1, (1 - 1 / size) / torch.log2(torch.where(size > 1, size, 2 * torch.ones_like(size))),
                          torch.zeros_like(size))
        c = 1 - lam * Hg
    A_glob = global_advantage(mean * c, cfg)[inv]
    return {"H": H, "A_loc": A_loc, "A_glob": A_glob, "w": blend_weight(H, local_zero, cfg)}


@implements("copo")
def copo_advantage(rewards, group, mask, config: COPOConfig | None = None, answers=None) -> torch.Tensor:
    """Ã = (1 − w) A_glob + w A_loc (B, T), zero at masked positions."""
    cfg = config or COPOConfig()
    c = copo_components(rewards, group, mask, cfg, answers)
    M = common.check_mask(mask)
    out_dtype = common.upcast(rewards).dtype if rewards.dtype.is_floating_point else torch.get_default_dtype()
    A = ((1 - c["w"]) * c["A_glob"] + c["w"] * c["A_loc"]).to(out_dtype)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=out_dtype, device=A.device))


def clipped(r: torch.Tensor, A: torch.Tensor, cfg: COPOLossConfig) -> torch.Tensor:
    """ℓ = −min(r A, clip(r) A), then the dual-clip cap for A < 0 if configured."""
    ell = -torch.minimum(r * A, torch.clamp(r, 1 - cfg.eps_low, 1 + cfg.eps_high) * A)
    if cfg.dual_clip_c is not None:
        ell = torch.where(A < 0, torch.minimum(ell, -cfg.dual_clip_c * A), ell)
    return ell


def copo_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: COPOLossConfig | None = None, group=None,
                       adv_global=None, blend_weight=None) -> torch.Tensor:
    """COPO blended loss (scalar): A_loc = ``adv``, A_glob = ``adv_global`` (B, T), w = ``blend_weight`` (B,)."""
    cfg = config or COPOLossConfig()
    logp, old_logp, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    if (adv_global is None) != (blend_weight is None):
        raise fail("adv_global" if adv_global is None else "blend_weight", "None",
                   "adv_global and blend_weight given together (or both None: local loss only)")
    if adv_global is None:
        A_glob, w = torch.zeros_like(adv), torch.ones(mask.shape[0], dtype=adv.dtype, device=adv.device)
    else:
        A_glob = common.upcast(common.clean(adv_global, mask, "adv_global")).detach()
        if not isinstance(blend_weight, torch.Tensor) or blend_weight.shape != (mask.shape[0],) \
                or not bool(torch.isfinite(blend_weight).all()) or bool((blend_weight < 0).any()) \
                or bool((blend_weight > 1).any()):
            raise fail("blend_weight", f"{tuple(getattr(blend_weight, 'shape', ()))}",
                       f"weights in [0, 1] of shape ({mask.shape[0]},)")
        w = common.upcast(blend_weight).detach().to(adv.dtype)
    r = common.ratio(logp, old_logp, cfg.log_ratio_clamp)
    wt = w.unsqueeze(1)
    ell = (1 - wt) * clipped(r, A_glob, cfg) + wt * clipped(r, adv, cfg)
    return common.aggregate_token_loss(ell, mask, cfg, group)


_DEFAULT_LOSS_CONFIG = COPOLossConfig()  # frozen: one instance serves every call without a config


def _blend_inputs(logp, adv_global, blend_weight) -> tuple | None:
    """(A_glob, w broadcast to (B, T) in the compute dtype) for the fused core, or None where the autograd
    formulation must take the call (one of the two missing, a weight outside [0, 1] or not finite, non-tensors:
    it names the argument). One sync, on B weights."""
    if not (isinstance(logp, torch.Tensor) and logp.ndim == 2 and isinstance(adv_global, torch.Tensor)
            and isinstance(blend_weight, torch.Tensor) and blend_weight.shape == (logp.shape[0],)
            and blend_weight.is_floating_point() and blend_weight.device == logp.device):
        return None
    w = blend_weight.detach()
    if not bool((torch.isfinite(w) & (w >= 0) & (w <= 1)).all()):
        return None
    dt = torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype
    return adv_global, common.upcast(w).to(dt).unsqueeze(1).expand(logp.shape)


@implements("copo_loss")
def copo_loss(logp, old_logp, adv, mask, ref_logp=None, config: COPOLossConfig | None = None, group=None,
              adv_global=None, blend_weight=None) -> torch.Tensor:
    """COPO blended loss (scalar) through its fused core (:mod:`rlspec.optimized.fused`): A_loc = ``adv``,
    A_glob = ``adv_global`` (B, T), w = ``blend_weight`` (B,); value and gradient in one pass.
    :func:`copo_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    cfg = config or _DEFAULT_LOSS_CONFIG
    kw = dict(ref_logp=ref_logp, adv_global=adv_global, blend_weight=blend_weight)
    extra = None
    if adv_global is not None or blend_weight is not None:
        extra = _blend_inputs(logp, adv_global, blend_weight)
        if extra is None:
            return copo_loss_autograd(logp, old_logp, adv, mask, config=cfg, group=group, **kw)
    return fused.fused_policy_loss("copo_loss", copo_loss_autograd, logp, old_logp, adv, mask, cfg, group,
                                   extra=extra, extra_f32=True, call_flags={"blend": extra is not None}, **kw)

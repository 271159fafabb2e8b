"""GPG advantage and loss (torch). Mirrors :mod:`rlspec.reference.gpg`; the loss gradient comes from autograd."""

from __future__ import annotations

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.grpo import grpo_outcome_advantage, validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference.gpg import GPGConfig, GPGLossConfig
from rlspec.reference.grpo import GRPOConfig


def group_advantage(R: torch.Tensor, group: torch.Tensor, cfg: GPGConfig) -> torch.Tensor:
    """(R − mean_g R)/F_norm (B,) before α."""
    grpo_cfg = GRPOConfig(std_normalize=cfg.f_norm == "std", ddof=cfg.ddof, eps=cfg.eps, eps_placement="outside",
                          singleton="zero" if cfg.singleton == "zero" else "mean0std1")
    return grpo_outcome_advantage(R, group, grpo_cfg)


def alpha(R: torch.Tensor, A0: torch.Tensor, group: torch.Tensor, mode: str) -> torch.Tensor | float:
    """α = B/(B − M) ("paper"), B/max(#{R ≠ 0}, 1) ("verl") or 1 ("one")."""
    B = R.shape[0]
    if mode == "one" or B == 0:
        return 1.0
    if mode == "verl":
        return B / torch.count_nonzero(R).clamp(min=1).to(R.dtype)
    _, inv = torch.unique(group, return_inverse=True)
    n = int(inv.max()) + 1
    live = torch.zeros(n, dtype=R.dtype, device=R.device).index_add_(0, inv, (A0 != 0).to(R.dtype))[inv] > 0
    valid = live.sum().to(R.dtype)  # B − M
    return torch.where(valid > 0, B / valid.clamp(min=1), torch.ones((), dtype=R.dtype, device=R.device))


@implements("gpg")
def gpg_advantage(rewards, group, mask, config: GPGConfig | None = None) -> torch.Tensor:
    cfg = config or GPGConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    A0 = group_advantage(R, g, cfg)
    A = alpha(R, A0, g, cfg.alpha) * A0
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))


def gpg_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: GPGLossConfig | None = None, group=None):
    """Scalar −Σ c Â logp; ``loss.backward()`` gives −c Â."""
    cfg = config or GPGLossConfig()
    logp, _, adv, mask, _ = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    return common.aggregate_token_loss(-adv * logp, mask, cfg, group)


_DEFAULT_LOSS_CONFIG = GPGLossConfig()  # frozen: one instance serves every call without a config


@implements("gpg_loss")
def gpg_loss(logp, old_logp, adv, mask, ref_logp=None, config: GPGLossConfig | None = None, group=None):
    """Scalar gpg_loss through its fused core (:mod:`rlspec.optimized.fused`): value and gradient in one pass;
    :func:`gpg_loss_autograd` is the autograd formulation it falls back to (and validates with)."""
    return fused.fused_policy_loss("gpg_loss", gpg_loss_autograd, logp, old_logp, adv, mask,
                                   config or _DEFAULT_LOSS_CONFIG, group, ref_logp=ref_logp)

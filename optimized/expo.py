"""EXPO (torch). Mirrors :mod:`rlspec.reference.expo`; the edit policy's gradients are autograd's pathwise ones.

For training, :func:`expo_edit_objective` takes the edit policy's outputs (μ, log σ) for a batch of replay
actions, the noise ξ and a differentiable critic ``q_fn(â) -> (B,)`` (the ensemble mean) and returns L_e and
the entropy estimate; ``L_e.backward()`` differentiates through â = a + β·tanh(μ + σξ) into the critic
(reparameterisation), as ``update_edit_actor`` does with ``jax.grad``. :class:`LinearEditPolicy` and
:func:`edit_train` are the one-step toy of the reference with ``torch.optim.Adam``.

The registry entry (:func:`expo_edit_loss`) takes the reference's arrays; the critic is represented by its
value and action gradient at â (a first-order surrogate, exact in value and gradient at that point).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.expo import EXPOConfig, target_entropy

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def log_one_minus_tanh_sq(x: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh² x) = 2 (log 2 − x − softplus(−2x))."""
    return 2.0 * (math.log(2.0) - x - torch.nn.functional.softplus(-2.0 * x))


def edit_sample(mu: torch.Tensor, log_std: torch.Tensor, xi: torch.Tensor, squash: str = "tanh"):
    """(x, u) with x = μ + σξ, u = tanh x (or x)."""
    x = mu + log_std.exp() * xi
    return x, (torch.tanh(x) if squash == "tanh" else x)


def edit_log_prob(mu: torch.Tensor, log_std: torch.Tensor, xi: torch.Tensor, beta: float, squash: str = "tanh"):
    """log p(â | s, a) = Σ_j [−ξ²/2 − log σ − ½ log 2π − log(1 − tanh² x)] − d log β, shape (B,)."""
    lp = -0.5 * xi**2 - log_std - _HALF_LOG_2PI
    if squash == "tanh":
        x, _ = edit_sample(mu, log_std, xi, squash)
        lp = lp - log_one_minus_tanh_sq(x)
    return lp.sum(-1) - xi.shape[-1] * math.log(beta)


def edited_action(a: torch.Tensor, u: torch.Tensor, beta: float) -> torch.Tensor:
    """â = a + β u."""
    return a + beta * u


def expo_edit_objective(mu: torch.Tensor, log_std: torch.Tensor, xi: torch.Tensor, a: torch.Tensor,
                        q_fn: Callable[[torch.Tensor], torch.Tensor], alpha, config: EXPOConfig | None = None):
    """(L_e, H): L_e = mean[s_H·α·log p(â|s, a) − q_fn(â)] (differentiable), H = −mean log p (detached)."""
    cfg = config or EXPOConfig()
    ls = log_std.clamp(cfg.log_std_min, cfg.log_std_max)
    _, u = edit_sample(mu, ls, xi, cfg.squash)
    logp = edit_log_prob(mu, ls, xi, cfg.beta, cfg.squash)
    al = alpha.detach() if isinstance(alpha, torch.Tensor) else alpha
    loss = (cfg.entropy_scale * al * logp - q_fn(edited_action(a, u, cfg.beta))).mean()
    return loss, -logp.detach().mean()


def _arr(x, name: str, ndim: int, shape: tuple | None = None, like: torch.Tensor | None = None) -> torch.Tensor:
    """The reference's ``_arr`` rule on a tensor: real, ``ndim`` dimensions (and ``shape``), non-empty, finite;
    the same messages. Cast to ``like``'s dtype/device when given (else integers become float64)."""
    t = torch.as_tensor(x)
    if t.ndim != ndim or t.dtype == torch.bool or t.dtype.is_complex:
        raise fail(name, f"an array of shape {tuple(t.shape)}, dtype {t.dtype}", f"a real array with {ndim} dimension(s)"
                   + (f", shape {shape}" if shape else ""))
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise fail(name, f"shape {tuple(t.shape)}", f"shape {tuple(shape)}")
    if t.numel() == 0:
        raise fail(name, f"shape {tuple(t.shape)}", "a non-empty array")
    if not bool(torch.isfinite(t).all()):
        raise fail(name, "non-finite values", "finite values")
    if like is not None:
        return t.to(dtype=like.dtype, device=like.device)
    return t if t.dtype.is_floating_point else t.to(torch.float64)


@implements("expo")
def expo_edit_loss(mu, log_std, xi, a, q, dq, alpha, config: EXPOConfig | None = None):
    """(L_e, ∂L_e/∂μ, ∂L_e/∂log σ, H) by autograd, the critic linearised at â."""
    cfg = config or EXPOConfig()
    mu0 = _arr(mu, "mu", 2)  # every input validated as the reference does, in its order (mu too: finite, non-empty)
    B, d = mu0.shape
    ls0, xi_, a_ = (_arr(x, n, 2, (B, d), mu0) for x, n in ((log_std, "log_std"), (xi, "xi"), (a, "a")))
    q_, dq_ = _arr(q, "q", 1, (B,), mu0), _arr(dq, "dq", 2, (B, d), mu0)
    al = torch.as_tensor(alpha, dtype=mu0.dtype)
    if not bool(torch.isfinite(al)) or float(al) < 0:
        raise fail("alpha", repr(alpha), "a finite number >= 0")
    with torch.no_grad():
        _, u0 = edit_sample(mu0, ls0.clamp(cfg.log_std_min, cfg.log_std_max), xi_, cfg.squash)
        a_hat0 = edited_action(a_, u0, cfg.beta)
    m, s = mu0.detach().clone().requires_grad_(True), ls0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss, H = expo_edit_objective(m, s, xi_, a_, lambda x: q_ + ((x - a_hat0) * dq_).sum(-1), al, cfg)
        dmu, dls = torch.autograd.grad(loss, (m, s))
    return loss.detach(), dmu, dls, H


def otf_candidates(a_base: torch.Tensor, u: torch.Tensor, beta: float) -> torch.Tensor:
    """(B, N + M, d): the base actions, then the edits of the first M."""
    M = u.shape[1]
    return torch.cat([a_base, edited_action(a_base[:, :M], u, beta)], dim=1)


def otf_select(candidates: torch.Tensor, q: torch.Tensor):
    """(index, action, value) of the first maximiser of q (B, K) per row."""
    idx = q.argmax(dim=1)
    rows = torch.arange(candidates.shape[0], device=candidates.device)
    return idx, candidates[rows, idx], q[rows, idx]


def expo_td_target(r: torch.Tensor, mask: torch.Tensor, q_next: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + γ·m·min_i Q̄_i(s′, a*_OTF); q_next (|I|, B)."""
    return r + gamma * mask * q_next.min(dim=0).values


class LinearEditPolicy(torch.nn.Module):
    """μ(a) = W a + b and a state-free log σ (the one-step toy's edit policy)."""

    def __init__(self, d: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(d, d, dtype=dtype))
        self.b = torch.nn.Parameter(torch.zeros(d, dtype=dtype))
        self.log_std = torch.nn.Parameter(torch.zeros(d, dtype=dtype))

    def forward(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a @ self.W.T + self.b, self.log_std.expand(a.shape[0], -1)


def edit_train(base_sample: Callable, a_star, steps: int, lr: float, config: EXPOConfig | None = None, *,
               alpha: float = 0.01, auto_alpha: bool = False, alpha_lr: float = 3e-3, c: float = 1.0, batch: int = 256,
               seed: int = 0, dtype: torch.dtype = torch.float64) -> dict:
    """The reference's one-step edit training with ``torch.optim.Adam`` and autograd (same random stream)."""
    cfg = config or EXPOConfig()
    rng = np.random.default_rng(seed)
    a_star_t = torch.as_tensor(np.asarray(a_star, dtype=np.float64), dtype=dtype)
    d = a_star_t.shape[0]
    pol = LinearEditPolicy(d, dtype)
    log_alpha = torch.tensor(math.log(alpha), dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam(pol.parameters(), lr=lr)
    opt_a = torch.optim.Adam([log_alpha], lr=alpha_lr)
    H_tgt = target_entropy(d, cfg)
    hist = {"W": [pol.W.detach().clone()], "b": [pol.b.detach().clone()], "log_std": [pol.log_std.detach().clone()],
            "log_alpha": [log_alpha.detach().clone().reshape(1)]}
    for _ in range(int(steps)):
        a = torch.as_tensor(base_sample(rng, batch), dtype=dtype)
        xi = torch.as_tensor(rng.standard_normal((batch, d)), dtype=dtype)
        mu, ls = pol(a)
        loss, H = expo_edit_objective(mu, ls, xi, a, lambda x: -c * ((x - a_star_t) ** 2).sum(-1), log_alpha.exp(), cfg)
        opt.zero_grad()
        opt_a.zero_grad()
        loss.backward()
        if auto_alpha:
            (log_alpha.exp() * (H - H_tgt)).backward()
        opt.step()
        if auto_alpha:
            opt_a.step()
        for k, p in (("W", pol.W), ("b", pol.b), ("log_std", pol.log_std), ("log_alpha", log_alpha.reshape(1))):
            hist[k].append(p.detach().clone())
    return {k: torch.stack(v).numpy() for k, v in hist.items()}

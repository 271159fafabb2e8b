"""PARL (torch). Mirrors :mod:`rlspec.reference.parl`; every derivative comes from autograd (torch.func).

The hypergradient by implicit differentiation, written the way one computes it for any differentiable lower
level V_s(ν, θ) and any upper expectation Ḡ(ν, θ) = Σ_τ ρ(τ; θ) U_ν(τ) (exact sums here):

    direct  = ∂Ḡ/∂ν (θ fixed) − κν
    b       = ∂Ḡ/∂θ (ν fixed)  = E_ρ[U ∇_θ log ρ]               (log-derivative trick, done by autograd)
    shift   = (∇_νθ*)ᵀ b,   ∇_νθ* = −[∇²_θθV_s]⁺ ∇²_θνV_s        (torch.func.hessian / jacrev of grad)

The pseudo-inverse is taken on the tangent space 1^⊥ as in the reference (V_s is flat along θ + c·1). For large
policies one would replace the dense solve by conjugate gradients on Hessian-vector products; here K is small.
bfloat16 / float16 inputs are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.parl import PARLConfig


def lower_value(nu: torch.Tensor, theta: torch.Tensor, Phi: torch.Tensor, lam: float) -> torch.Tensor:
    """V_s(ν, θ) = πᵀΦν − λ πᵀ log π."""
    logpi = torch.log_softmax(theta, dim=0)
    pi = logpi.exp()
    return pi @ (Phi @ nu) - lam * (pi * logpi).sum()


def expected_upper(nu: torch.Tensor, theta: torch.Tensor, Phi: torch.Tensor, u: torch.Tensor, upper: str
                   ) -> torch.Tensor:
    """Ḡ(ν, θ) = Σ_τ ρ(τ; θ) U_ν(τ): pairs with Bradley-Terry labels (preference) or single actions (utility)."""
    pi = torch.softmax(theta, dim=0)
    if upper == "utility":
        return pi @ u
    R = Phi @ nu
    D = R[:, None] - R[None, :]
    p = torch.sigmoid(u[:, None] - u[None, :])
    Ubar = p * torch.nn.functional.logsigmoid(D) + (1 - p) * torch.nn.functional.logsigmoid(-D)
    return (torch.outer(pi, pi) * Ubar).sum()


def lower_solution(nu: torch.Tensor, Phi: torch.Tensor, lam: float) -> torch.Tensor:
    """θ*(ν) = (I − 11ᵀ/K)Φν/λ."""
    z = Phi @ nu / lam
    return z - z.mean()


def implicit_jacobian(nu: torch.Tensor, theta: torch.Tensor, Phi: torch.Tensor, lam: float) -> torch.Tensor:
    """−P(PHP − 11ᵀ/K)⁻¹P C with H = ∇²_θθV_s and C = ∇²_θνV_s from torch.func, (K, d)."""
    H = torch.func.hessian(lower_value, argnums=1)(nu, theta, Phi, lam)
    C = torch.func.jacrev(torch.func.grad(lower_value, argnums=1), argnums=0)(nu, theta, Phi, lam)
    K = theta.shape[0]
    P = torch.eye(K, dtype=theta.dtype, device=theta.device) - 1.0 / K
    return -P @ torch.linalg.solve(P @ H @ P - 1.0 / K, P @ C)


@implements("parl")
def parl(nu, Phi, u, config: PARLConfig | None = None):
    """(G, hypergrad, direct, shift, theta_star), as the reference entry."""
    cfg = config or PARLConfig()
    if not isinstance(Phi, torch.Tensor) or Phi.ndim != 2 or Phi.shape[0] < 2 or Phi.shape[1] < 1:
        raise fail("Phi", f"{tuple(getattr(Phi, 'shape', ()))}", "a (K, d) tensor, K ≥ 2, d ≥ 1")
    K, d = Phi.shape
    for name, x, n in (("nu", nu, d), ("u", u, K)):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (n,):
            raise fail(name, f"{tuple(getattr(x, 'shape', ()))}", f"a ({n},) tensor")
    for name, x in (("Phi", Phi), ("nu", nu), ("u", u)):
        if not bool(torch.isfinite(x).all()):
            raise fail(name, "non-finite values", "finite values")
    dt = nu.dtype
    work = torch.float32 if dt in (torch.bfloat16, torch.float16) else dt
    nu_w, Phi_w, u_w = nu.to(work).detach(), Phi.to(work), u.to(work)
    theta = lower_solution(nu_w, Phi_w, cfg.lam)
    Gbar = lambda n, t: expected_upper(n, t, Phi_w, u_w, cfg.upper)  # noqa: E731
    d_nu, b = torch.func.grad(Gbar, argnums=(0, 1))(nu_w, theta)
    direct = d_nu - cfg.kappa * nu_w
    shift = implicit_jacobian(nu_w, theta, Phi_w, cfg.lam).T @ b
    G = Gbar(nu_w, theta) - 0.5 * cfg.kappa * (nu_w @ nu_w)
    return tuple(x.detach().to(dt) for x in (G, direct + shift, direct, shift, theta))

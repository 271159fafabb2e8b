"""POISE (torch). Mirrors :mod:`rlspec.reference.poise`: features ϕ from hidden states and token entropies, the
closed-form ridge value probe (fitted in float64, like the code's scikit-learn probe), and the cross-rollout
advantage Â_i = R_i − mean_{j≠i} g(ϕ_j) with a pairwise same-group matrix (no Python loop over groups)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlspec.optimized.grpo import validate_outcome
from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.poise import POISEConfig, ProbeConfig

__all__ = ["POISEConfig", "ProbeConfig", "Probe", "last_n_mean", "entropy_features", "poise_features", "pca_fit",
           "project", "standardize_fit", "ridge_fit", "probe_fit", "probe_predict", "poise_probe",
           "cross_rollout_advantage", "same_rollout_advantage", "poise_advantage"]


# ---------------------------------------------------------------------------- features ϕ


def last_n_mean(H: torch.Tensor, n: int = 10) -> torch.Tensor:
    """Mean of the last n rows of H (T, d) → (d,); the zero vector if T = 0."""
    return H[-n:].mean(dim=0) if H.shape[0] else H.new_zeros(H.shape[1])


def entropy_features(entropy: torch.Tensor, reasoning: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """u (3,) = mean token entropy over the response, the reasoning span, the answer span (0 if empty)."""
    spans = (torch.ones_like(reasoning), reasoning, answer)
    return torch.stack([entropy[m].mean() if bool(m.any()) else entropy.new_zeros(()) for m in spans])


def poise_features(prompt_hidden, response_hidden, entropy, reasoning_mask=None, answer_mask=None,
                   n: int = 10) -> torch.Tensor:
    """ϕ = [h_prompt ; h_response ; u] (2d + 3,)."""
    P, H = prompt_hidden, response_hidden
    if P.ndim != 2 or H.ndim != 2 or P.shape[0] < 1 or H.shape[1] != P.shape[1]:
        raise fail("response_hidden", f"shape {tuple(H.shape)} with prompt_hidden {tuple(P.shape)}",
                   "the same hidden size d as a non-empty prompt_hidden (T_p ≥ 1, d)")
    if not (bool(torch.isfinite(P).all()) and bool(torch.isfinite(H).all())):
        raise fail("prompt_hidden/response_hidden", "non-finite values", "finite hidden states")
    if entropy.ndim != 1 or not bool(torch.isfinite(entropy).all()):
        raise fail("entropy", f"shape {tuple(entropy.shape)}", "finite token entropies of shape (T_e,)")
    spans = [torch.zeros(entropy.shape[0], dtype=torch.bool, device=entropy.device) if m is None else m.bool()
             for m in (reasoning_mask, answer_mask)]
    return torch.cat([last_n_mean(P, n), last_n_mean(H, n), entropy_features(entropy, *spans).to(P.dtype)])


# ---------------------------------------------------------------------------- the value probe g


@dataclass(frozen=True)
class Probe:
    """Fitted probe (float64 tensors): per-block PCA (mean, components) or None, scaler, ridge, clip range."""

    pca: tuple
    hidden_dims: tuple[int, int] | None
    mean: torch.Tensor
    scale: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor
    clip: tuple[float, float]


def pca_fit(H: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, top-k' principal directions (k', d)), k' = min(k, N, d)."""
    mu = H.mean(dim=0)
    _, _, Vh = torch.linalg.svd(H - mu, full_matrices=False)
    return mu, Vh[:min(k, H.shape[0], H.shape[1])]


def project(X: torch.Tensor, pca, hidden_dims) -> torch.Tensor:
    """ϕ with each hidden block replaced by its PCA scores where a PCA is set."""
    if hidden_dims is None:
        return X
    dp, dr = hidden_dims
    blocks = [X[:, :dp], X[:, dp:dp + dr]]
    return torch.cat([b if p is None else (b - p[0]) @ p[1].T for b, p in zip(blocks, pca)] + [X[:, dp + dr:]], dim=1)


def standardize_fit(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column mean and population std (constant columns: 1)."""
    sd = Z.std(dim=0, correction=0)
    return Z.mean(dim=0), torch.where(sd > 0, sd, torch.ones_like(sd))


def ridge_fit(Zs: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """w = (ZsᵀZs + αI)⁻¹ Zsᵀ(y − ȳ), c = ȳ, for centred columns Zs."""
    ybar = y.mean()
    eye = torch.eye(Zs.shape[1], dtype=Zs.dtype, device=Zs.device)
    return torch.linalg.solve(Zs.T @ Zs + alpha * eye, Zs.T @ (y - ybar)), ybar


def _features(X, name: str, F: int | None = None) -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1 \
            or (F is not None and X.shape[1] != F):
        raise fail(name, f"shape {tuple(getattr(X, 'shape', ()))}", f"(N ≥ 1, {F if F is not None else 'F ≥ 1'}) features")
    X = X.to(torch.float64)
    if not bool(torch.isfinite(X).all()):
        raise fail(name, "non-finite values", "finite features")
    return X


def probe_fit(features, targets, config: ProbeConfig | None = None) -> Probe:
    """[PCA per hidden block] → standardise → closed-form ridge, all in float64."""
    cfg = config or ProbeConfig()
    X = _features(features, "features")
    if not isinstance(targets, torch.Tensor) or targets.shape != (X.shape[0],):
        raise fail("targets", f"shape {tuple(getattr(targets, 'shape', ()))}", f"shape ({X.shape[0]},)")
    y = targets.to(torch.float64)
    if not bool(torch.isfinite(y).all()):
        raise fail("targets", "non-finite values", "finite targets")
    pca = (None, None)
    if cfg.hidden_dims is not None:
        dp, dr = cfg.hidden_dims
        if dp + dr > X.shape[1]:
            raise fail("hidden_dims", repr(cfg.hidden_dims), f"two blocks within the {X.shape[1]} features")
        pca = tuple(pca_fit(X[:, lo:hi], k) if k > 0 else None
                    for (lo, hi), k in (((0, dp), cfg.prompt_pca_dim), ((dp, dp + dr), cfg.response_pca_dim)))
    Z = project(X, pca, cfg.hidden_dims)
    mean, scale = standardize_fit(Z)
    coef, intercept = ridge_fit((Z - mean) / scale, y, cfg.alpha)
    return Probe(pca, cfg.hidden_dims, mean, scale, coef, intercept, (cfg.clip_min, cfg.clip_max))


def probe_predict(probe: Probe, features) -> torch.Tensor:
    """v = clip(standardize(project(ϕ)) · w + c) (M,), float64."""
    X = _features(features, "features", probe.mean.shape[0] if probe.hidden_dims is None else None)
    Z = project(X, probe.pca, probe.hidden_dims)
    if Z.shape[1] != probe.mean.shape[0]:
        raise fail("features", f"shape {tuple(X.shape)}", "the feature layout the probe was fitted on")
    return ((Z - probe.mean) / probe.scale @ probe.coef + probe.intercept).clamp(*probe.clip)


@implements("poise_probe")
def poise_probe(features, targets, query, config: ProbeConfig | None = None) -> torch.Tensor:
    """Fit on (features (N, F), targets (N,)), predict on query (M, F)."""
    probe = probe_fit(features, targets, config)
    return probe_predict(probe, _features(query, "query", features.shape[1]))


# ---------------------------------------------------------------------------- the cross-rollout advantage


def cross_rollout_advantage(R: torch.Tensor, v: torch.Tensor, group: torch.Tensor, cfg: POISEConfig) -> torch.Tensor:
    """Â_i = (1/(G−1)) Σ_{j∈group(i), j≠i} (R_i − v_j) (B,); singletons 0 or R."""
    others = (group.unsqueeze(1) == group.unsqueeze(0)) & ~torch.eye(len(R), dtype=torch.bool, device=R.device)
    cnt = others.sum(dim=1).to(R.dtype)
    diff = torch.where(others, R.unsqueeze(1) - v.unsqueeze(0), torch.zeros((), dtype=R.dtype, device=R.device))
    A = diff.sum(dim=1) / cnt.clamp(min=1)
    return torch.where(cnt > 0, A, R if cfg.singleton == "raw" else torch.zeros_like(R))


def same_rollout_advantage(R: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Â_i = R_i − g(ϕ_i) (biased; for contrast)."""
    return R - v


@implements("poise")
def poise_advantage(rewards, group, mask, config: POISEConfig | None = None, values=None) -> torch.Tensor:
    """POISE advantage (B, T), zero at masked positions; values=None is the bootstrap (RLOO) advantage."""
    cfg = config or POISEConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    if values is None:
        v = R
    else:
        if not isinstance(values, torch.Tensor) or values.shape != R.shape:
            raise fail("values", f"shape {tuple(getattr(values, 'shape', ()))}", f"shape ({R.shape[0]},)")
        v = values.to(R.dtype)
        if not bool(torch.isfinite(v).all()):
            raise fail("values", "non-finite values", "finite probe predictions")
    A = cross_rollout_advantage(R, v, g, cfg)
    return torch.where(M, A.unsqueeze(1), torch.zeros((), dtype=A.dtype, device=A.device))

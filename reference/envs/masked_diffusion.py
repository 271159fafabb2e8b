"""A factorised masked-diffusion "LM" on short sequences: the exact toy behind IGPO (arXiv 2509.10396).

The policy generates a response y ∈ {0..V−1}^L for one prompt whose reference reasoning is y*. Its denoiser
is factorised: whatever is already unmasked, position l is filled from softmax(θ_l) (θ: (L, V) logits).
Unmasking positions one at a time in a random order (LLaDA's ``remasking="random"``) therefore samples
π_θ(y) = Π_l softmax(θ_l)[y_l], and inpainting a hint set H (positions fixed to y*_l, never masked) samples
the other positions from the same factors. (LLaDA's default low-confidence order commits the most
confident sampled tokens first, which would bias this law; it is not modelled.)

Reward: the verifier's exact match, r(y) = 1[y = y*]. Everything below is exact::

    p            = Π_l π_l(y*_l)                                 P(a plain response is correct)
    q_H          = Π_{l ∉ H} π_l(y*_l)                           P(an inpainted response with hints H is correct)
    P(j hints)   = |(max(ρ_low, (j−1)/L), min(ρ_high, j/L)]| / (ρ_high − ρ_low)   one-token chunks:
                   IGPO reveals L − int(L(1 − ρ)) of the L chunks, ρ ~ U[ρ_low, ρ_high]
    q            = Σ_j P(j hints) · mean over |H| = j of q_H
    P(A ≢ 0)     = 1 − (1 − p)^G − p^G                            GRPO, one group of G
                 + (1 − p)^G (1 − (1 − q)^G)                      IGPO adds the rescued all-wrong groups
                                                                  (minus q^G if max_replacements ≥ G)

Token log-probabilities and entropies (the inputs of the loss): logp_l = log π_l(y_l),
H_l = −Σ_v π_l(v) log π_l(v) (the same at position l for every row), ∂logp_l/∂θ_l = e_{y_l} − π_l.
"""

from __future__ import annotations

import itertools

import numpy as np

from rlspec.reference._validate import fail


def probs(theta: np.ndarray) -> np.ndarray:
    """π (L, V): row-wise softmax of θ."""
    th = np.asarray(theta, dtype=np.float64)
    if th.ndim != 2 or not np.isfinite(th).all():
        raise fail("theta", f"shape {th.shape}", "finite logits of shape (L, V)")
    e = np.exp(th - th.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sample(theta: np.ndarray, n: int, rng: np.random.Generator, y_star: np.ndarray | None = None,
           hint: np.ndarray | None = None) -> np.ndarray:
    """n responses (n, L); with ``hint`` (n, L) or (L,) bool the hinted positions are y*."""
    pi = probs(theta)
    L, V = pi.shape
    u = rng.random((n, L, 1))
    y = (u > np.cumsum(pi, axis=1)[None]).sum(axis=2)            # inverse-CDF draw per position
    y = np.minimum(y, V - 1)
    if hint is not None:
        y = np.where(np.broadcast_to(hint, (n, L)), np.asarray(y_star)[None, :], y)
    return y


def reward(y: np.ndarray, y_star: np.ndarray) -> np.ndarray:
    """Exact match 1[y = y*] per response (n,)."""
    return (np.asarray(y) == np.asarray(y_star)[None, :]).all(axis=1).astype(np.float64)


def token_logp(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log π_l(y_l) (n, L)."""
    pi = probs(theta)
    return np.log(np.take_along_axis(pi.T[None], np.asarray(y)[:, None, :], axis=1)[:, 0, :])


def entropy(theta: np.ndarray) -> np.ndarray:
    """H_l (L,)."""
    pi = probs(theta)
    return -(pi * np.log(pi)).sum(axis=1)


def grad_theta(theta: np.ndarray, y: np.ndarray, dlogp: np.ndarray) -> np.ndarray:
    """Σ_n Σ_l dlogp[n, l] ∂logp_nl/∂θ = Σ_n dlogp[n, l] (e_{y_nl} − π_l), shape (L, V)."""
    pi = probs(theta)
    L, V = pi.shape
    onehot = (np.asarray(y)[:, :, None] == np.arange(V)[None, None, :]).astype(np.float64)
    return (dlogp[:, :, None] * (onehot - pi[None])).sum(axis=0)


def success(theta: np.ndarray, y_star: np.ndarray) -> float:
    """p = Π_l π_l(y*_l)."""
    pi = probs(theta)
    return float(np.prod(pi[np.arange(pi.shape[0]), np.asarray(y_star)]))


def hint_count_law(L: int, low: float, high: float) -> np.ndarray:
    """P(j of the L one-token chunks revealed), j = 0..L, for ρ ~ U[low, high] (low < high)."""
    if not 0.0 <= low < high <= 1.0:
        raise fail("low, high", f"{low}, {high}", "0 ≤ low < high ≤ 1")
    p = np.zeros(L + 1)
    for j in range(1, L + 1):
        p[j] = max(0.0, min(high, j / L) - max(low, (j - 1) / L)) / (high - low)
    return p


def inpaint_success(theta: np.ndarray, y_star: np.ndarray, low: float, high: float) -> float:
    """q = P(an inpainted response is correct), one-token chunks, hint sets uniform given their size."""
    pi = probs(theta)
    L = pi.shape[0]
    a = pi[np.arange(L), np.asarray(y_star)]
    law = hint_count_law(L, low, high)
    q = 0.0
    for j in range(L + 1):
        if law[j] == 0:
            continue
        sets = list(itertools.combinations(range(L), j))
        q += law[j] * np.mean([np.prod([a[l] for l in range(L) if l not in H]) for H in sets])
    return float(q)


def nonzero_advantage_probability(p: float, q: float, G: int, max_replacements: int = 4) -> tuple[float, float]:
    """(GRPO, IGPO) probability that a group of G gets a non-zero advantage somewhere. A rescued group stays
    mixed unless every row can be replaced (max_replacements ≥ G) and all G inpainted responses are correct."""
    grpo = 1.0 - (1.0 - p) ** G - p ** G
    rescued = 1.0 - (1.0 - q) ** G - (q ** G if max_replacements >= G else 0.0)
    return grpo, grpo + (1.0 - p) ** G * rescued

"""INPO (torch). Mirrors :mod:`rlspec.reference.inpo`.

``inpo_pairwise_loss`` is the loss a user trains an LLM with: a batch of K sampled responses per prompt
(``group``), token log-probs under the policy being trained (``logp``), the iterate that sampled them
(``old_logp`` = π_t, frozen) and the reference model (``ref_logp``), and a per-response preference score
in ``adv`` (e.g. a preference model's win rate or a reward, broadcast over the tokens); the best and worst
response of each prompt form the pair. ``inpo_game_step`` is the exact game round (tabular entry).
Half-precision inputs are computed in float32.

The registered pairwise loss is fused: one pass over the tokens gives the row sums of logp, old_logp and ref_logp
(and a finiteness probe), the pairs come from the row scores (vectorised over the prompts), and the gradient, a
constant per row (+2(h − 1/(2η))/N on the chosen row, −2(h − 1/(2η))/N on the rejected one), is written in one
more pass. It is not one of :data:`rlspec.optimized.fused.CORES` (those are Σ c ⊙ ℓ over a token aggregation;
this loss is a mean over pairs, ``agg = "pair-mean"``), but follows their contract: the autograd formulation
:func:`inpo_pairwise_loss_autograd` takes the calls the fused path does not (``RLSPEC_FUSED=off``, mixed dtypes,
non-tensors) and every batch whose loss or valid inputs are not finite, and raises the reference's errors.
"""

from __future__ import annotations

import math
import warnings

import torch

from rlspec.optimized import common, fused
from rlspec.optimized.registry import implements
from rlspec.reference._validate import RLSpecValueError, fail
from rlspec.reference.inpo import INPOConfig, INPOPairConfig


def h_matrix(logp, logp_t, logp_ref, eta: float, tau: float) -> torch.Tensor:
    """h_t(π, y, y') (n, n)."""
    u = logp - (tau / eta) * logp_ref - (1 - tau / eta) * logp_t
    return u[:, None] - u[None, :]


def population_loss(logp, logp_t, logp_ref, P, eta: float, tau: float) -> torch.Tensor:
    """L_t(π) = Σ π_t(y)π_t(y')[P(h − 1/(2η))² + (1 − P)(h + 1/(2η))²]."""
    h = h_matrix(logp, logp_t, logp_ref, eta, tau)
    pt = logp_t.exp()
    c = 1.0 / (2.0 * eta)
    return (pt[:, None] * pt[None, :] * (P * (h - c) ** 2 + (1 - P) * (h + c) ** 2)).sum()


def omd_target(logp_t, logp_ref, P, eta: float, tau: float) -> torch.Tensor:
    """π_{t+1} ∝ π_t^{1−τ/η} π_ref^{τ/η} exp(P(·≻π_t)/η), computed in log space."""
    return torch.softmax((1 - tau / eta) * logp_t + (tau / eta) * logp_ref + (P @ logp_t.exp()) / eta, dim=0)


def _vec(x, name: str, n: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.shape != (n,) or not bool(torch.isfinite(x).all()):
        raise fail(name, f"{type(x).__name__} {getattr(x, 'shape', '')}", f"a finite ({n},) torch.Tensor")
    return common.upcast(x)


@implements("inpo")
def inpo_game_step(P, ref_logits, t_logits, logits, config: INPOConfig | None = None) -> dict:
    """{"loss", "dlogits" (autograd), "target"} of one exact INPO round, in the dtype of ``logits``."""
    cfg = config or INPOConfig()
    if not isinstance(P, torch.Tensor) or P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 2:
        raise fail("P", f"{type(P).__name__} {getattr(P, 'shape', '')}", "a square (n, n) torch.Tensor, n ≥ 2")
    if not bool(torch.isfinite(P).all()) or bool((P < 0).any()) or bool((P > 1).any()):
        raise fail("P", "entries outside [0, 1]", "probabilities P(y ≻ y') in [0, 1]")
    n = P.shape[0]
    Pf = common.upcast(P)
    lr = torch.log_softmax(_vec(ref_logits, "ref_logits", n), 0)
    lt = torch.log_softmax(_vec(t_logits, "t_logits", n), 0)
    theta = _vec(logits, "logits", n).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = population_loss(torch.log_softmax(theta, 0), lt, lr, Pf, cfg.eta, cfg.tau)
        (g,) = torch.autograd.grad(loss, theta)
    dt = logits.dtype
    return {"loss": loss.detach().to(dt), "dlogits": g.to(dt), "target": omd_target(lt, lr, Pf, cfg.eta, cfg.tau).to(dt)}


def best_worst_pairs(scores: torch.Tensor, mask: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """(N, 2) (chosen, rejected) rows per group: first highest / first lowest score among non-empty rows; ties and
    groups with fewer than two non-empty rows give no pair."""
    nonempty = mask.any(dim=1)
    pairs = []
    for g in torch.unique(group):
        rows = torch.nonzero((group == g) & nonempty).flatten()
        if rows.numel() < 2:
            continue
        s = scores[rows]
        if bool(s.max() > s.min()):
            pairs.append(torch.stack([rows[torch.argmax(s)], rows[torch.argmin(s)]]))
    if not pairs:
        return torch.zeros((0, 2), dtype=torch.long, device=scores.device)
    return torch.stack(pairs)


def inpo_pairwise_loss_autograd(logp, old_logp, adv, mask, ref_logp=None, config: INPOPairConfig | None = None,
                                group=None) -> torch.Tensor:
    """Scalar (1/N) Σ_pairs (h_t(π, y_w, y_l) − 1/(2η))²; ``loss.backward()`` gives dlogp. No ``ref_logp``: τ = 0;
    no ``group``: one prompt."""
    cfg = config or INPOPairConfig()
    lp, lt, a, mask, lr = common.policy_batch(logp, old_logp, adv, mask, ref_logp)
    g = (torch.zeros(lp.shape[0], dtype=torch.long, device=lp.device) if group is None
         else common.group_ids(group, lp.shape[0], device=lp.device))
    n = mask.sum(dim=1)
    scores = torch.where(n > 0, a.sum(dim=1) / n.clamp(min=1), torch.zeros_like(n, dtype=a.dtype))
    pairs = best_worst_pairs(scores, mask, g)
    if pairs.shape[0] == 0:
        return (lp * 0.0).sum()
    S, S_t = lp.sum(dim=1), lt.sum(dim=1)                             # padding is already zero
    S_r = torch.zeros_like(S) if lr is None else lr.sum(dim=1)
    w, l = pairs[:, 0], pairs[:, 1]
    k = 0.0 if lr is None else cfg.tau / cfg.eta
    h = (S[w] - S[l]) - k * (S_r[w] - S_r[l]) - (1 - k) * (S_t[w] - S_t[l])
    N = float(pairs.shape[0]) if cfg.pair_normalizer is None else cfg.pair_normalizer
    return ((h - 1.0 / (2.0 * cfg.eta)) ** 2).sum() / N


def first_best_worst(scores: torch.Tensor, nonempty: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """(N, 2) (chosen, rejected) rows, vectorised over prompts: the rule of :func:`best_worst_pairs` (first highest /
    first lowest score among non-empty rows; ties and groups with fewer than two non-empty rows give no pair), pairs
    in ascending prompt-id order. ``group`` (B,) int64."""
    B = scores.shape[0]
    if B == 0:
        return torch.zeros((0, 2), dtype=torch.long, device=scores.device)
    _, inv = torch.unique(group, return_inverse=True)
    G = int(inv.max()) + 1
    rows = torch.arange(B, device=scores.device)
    inf = torch.full((G,), torch.inf, dtype=scores.dtype, device=scores.device)
    hi = (-inf).scatter_reduce(0, inv, torch.where(nonempty, scores, -torch.inf), "amax")
    lo = inf.scatter_reduce(0, inv, torch.where(nonempty, scores, torch.inf), "amin")
    count = torch.zeros(G, dtype=torch.long, device=scores.device).index_add_(0, inv, nonempty.long())
    none = torch.full((G,), B, dtype=torch.long, device=scores.device)
    w = none.scatter_reduce(0, inv, torch.where(nonempty & (scores == hi[inv]), rows, B), "amin")
    l = none.scatter_reduce(0, inv, torch.where(nonempty & (scores == lo[inv]), rows, B), "amin")
    ok = (count >= 2) & (hi > lo)
    return torch.stack([w[ok], l[ok]], dim=1)


def _row_sums(lp, old, adv, mask, ref, dt):
    """One pass over the tokens: the row sums of logp, old_logp, ref_logp (None: zeros) and adv over the valid
    tokens, in ``dt`` (B,) each, and the finiteness probe (0, NaN when a valid input is not finite)."""
    if torch.compiler.is_compiling():
        M = mask.to(dt) > 0
    else:
        M = mask.view(torch.bool)
    x, o, a = lp.to(dt), old.to(dt), adv.to(dt)
    e = None if ref is None else ref.to(dt)
    fin = fused._nonfinite(x, o, a, e)
    S, St = torch.where(M, x, 0.0).sum(dim=1), torch.where(M, o, 0.0).sum(dim=1)
    Sr = torch.zeros_like(S) if e is None else torch.where(M, e, 0.0).sum(dim=1)
    return S, St, Sr, torch.where(M, fin, 0.0).sum()


_COMPILED: list = []


def _sums(lp, old, adv, mask, ref, dt):
    """:func:`_row_sums`, compiled (``torch.compile(dynamic=True)``) for batches of at least
    :data:`rlspec.optimized.fused.COMPILE_MIN_TOKENS` tokens in the fused modes that compile, eager otherwise or
    once a compilation failed (with one warning)."""
    m = fused.mode()
    n = lp.numel()
    if n > 0 and (m == "compile" or (m == "auto" and n >= fused.COMPILE_MIN_TOKENS)) and _COMPILED != [None]:
        if not _COMPILED:
            _COMPILED.append(torch.compile(_row_sums, dynamic=True))
        try:
            return _COMPILED[0](lp, old, adv, mask, ref, dt)
        except Exception as e:  # noqa: BLE001 - any compiler failure: keep working, eagerly
            _COMPILED[:] = [None]
            warnings.warn(f"rlspec INPO: torch.compile failed ({type(e).__name__}: {str(e)[:300]}); using the eager "
                          "fused path from now on", RuntimeWarning, stacklevel=3)
    return _row_sums(lp, old, adv, mask, ref, dt)


def inpo_pair_core(lp, old, adv, mask, ref, group, cfg: INPOPairConfig, need_grad=True):
    """(loss, g): the pairwise loss and its gradient (lp's dtype, 0 at masked positions) from the raw inputs;
    the loss is NaN when a valid input is not finite. ``mask`` bool (B, T), ``group`` (B,) int64."""
    dt = torch.float32 if lp.dtype in (torch.bfloat16, torch.float16) else lp.dtype
    S, St, Sr, probe = _sums(lp, old, adv, mask.view(torch.uint8), ref, dt)
    n = torch.count_nonzero(mask, dim=1)
    a = torch.where(mask, adv.to(dt), 0.0)  # the row scores as the autograd formulation forms them
    scores = torch.where(n > 0, a.sum(dim=1) / n.clamp(min=1), torch.zeros((), dtype=dt, device=lp.device))
    pairs = first_best_worst(scores, n > 0, group)
    if pairs.shape[0] == 0:
        return probe, (torch.zeros_like(lp) if need_grad else None)
    w, l = pairs[:, 0], pairs[:, 1]
    k = 0.0 if ref is None else cfg.tau / cfg.eta
    h = (S[w] - S[l]) - k * (Sr[w] - Sr[l]) - (1 - k) * (St[w] - St[l])
    N = float(pairs.shape[0]) if cfg.pair_normalizer is None else cfg.pair_normalizer
    r = h - 1.0 / (2.0 * cfg.eta)
    loss = (r**2).sum() / N + probe
    if not need_grad:
        return loss, None
    coef = torch.zeros_like(S).index_add_(0, w, 2.0 * r / N).index_add_(0, l, -2.0 * r / N)
    return loss, torch.where(mask, coef.to(lp.dtype)[:, None], torch.zeros((), dtype=lp.dtype, device=lp.device))


class _PairLoss(torch.autograd.Function):
    """The pairwise loss with its gradient computed in the forward; the backward hands it back (scaled)."""

    @staticmethod
    def forward(ctx, logp, args):
        loss, g = inpo_pair_core(logp, *args)
        ctx.g = g
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        g = ctx.g
        if grad_out.device.type == "cpu" and grad_out.numel() == 1 and float(grad_out) == 1.0:
            return g, None
        return g * grad_out.to(g.dtype), None


_DEFAULT_PAIR_CONFIG = INPOPairConfig()  # frozen: one instance serves every call without a config
_FLOATS = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def _fast_inputs(logp, old_logp, adv, mask, ref_logp, group) -> tuple | None:
    """(mask as bool, group ids (B,) int64) where the fused path applies: tensors of one float dtype, shape and
    device; else None (the autograd formulation takes the call and names what is wrong)."""
    if fused.mode() == "off" or not isinstance(logp, torch.Tensor) or logp.ndim != 2 or logp.dtype not in _FLOATS:
        return None
    for x in (old_logp, adv, ref_logp):
        if x is not None and not (isinstance(x, torch.Tensor) and x.shape == logp.shape and x.dtype == logp.dtype
                                  and x.device == logp.device):
            return None
    if not isinstance(mask, torch.Tensor) or old_logp is None or adv is None or mask.device != logp.device:
        return None
    try:
        M = common.check_mask(mask, logp.shape)
        g = (torch.zeros(logp.shape[0], dtype=torch.long, device=logp.device) if group is None
             else common.group_ids(group, logp.shape[0], device=logp.device))
    except RLSpecValueError:
        return None
    return M, g


@implements("inpo_pairwise")
def inpo_pairwise_loss(logp, old_logp, adv, mask, ref_logp=None, config: INPOPairConfig | None = None,
                       group=None) -> torch.Tensor:
    """Scalar (1/N) Σ_pairs (h_t(π, y_w, y_l) − 1/(2η))² through the fused pass (see the module docstring): value
    and gradient without autograd's graph; :func:`inpo_pairwise_loss_autograd` is the formulation it falls back to
    (and validates with). No ``ref_logp``: τ = 0; no ``group``: one prompt."""
    cfg = config or _DEFAULT_PAIR_CONFIG

    def slow():
        return inpo_pairwise_loss_autograd(logp, old_logp, adv, mask, ref_logp, config=cfg, group=group)

    fast = _fast_inputs(logp, old_logp, adv, mask, ref_logp, group)
    if fast is None:
        return slow()
    M, g = fast
    args = (old_logp.detach(), adv.detach(), M, None if ref_logp is None else ref_logp.detach(), g, cfg)
    if logp.requires_grad and torch.is_grad_enabled():
        loss = _PairLoss.apply(logp, args)
    else:
        loss, _ = inpo_pair_core(logp.detach(), *args, need_grad=False)
    if not math.isfinite(loss.detach().item()):  # the one sync; the loss carries the inputs' finiteness probe
        return slow()
    return loss

"""INPO: Iterative Nash Policy Optimization — online mirror descent on a preference game, through a loss.

Zhang, Yu, Peng, Song, Tian, Huo, Jiang, Mi, Yu, "Iterative Nash Policy Optimization: Aligning LLMs with
General Preferences via No-Regret Learning", arXiv 2407.00617 (ICLR 2025). The official code was not
located and only the abstract of the paper was readable to us; the equations below are restated from
our notes (papers_C §13) and a third-party specification of the algorithm (``ntlfi/ENPO``
``algos/specs/inpo.md``), which agree up to the naming of the step size. Constants are those of the
third-party specification, which writes η as the OMD parameter (an *inverse* learning rate, step 1/η);
our notes write the same update with step η. We follow the specification's convention.

The game (one prompt; see :mod:`rlspec.reference.envs.preference_matrix`): responses y, preference
P(y ≻ y') with P + Pᵀ = 1, reference policy π_ref, regularisation τ ≥ 0::

    J(π, π')   = E_{y∼π, y'∼π'} P(y ≻ y') − τ KL(π‖π_ref) + τ KL(π'‖π_ref);   π*_τ its symmetric Nash policy

Online mirror descent on the regularised loss, linearised at π_t (self-play: the opponent is π_t)::

    π_{t+1} = argmax_π ⟨π, P(·≻π_t) − τ log(π_t/π_ref)⟩ − η KL(π‖π_t)
            ∝ π_t(y)^{1−τ/η} · π_ref(y)^{τ/η} · exp(P(y ≻ π_t)/η),   P(y ≻ π_t) = Σ_y' P(y ≻ y') π_t(y')   (OMD)

INPO obtains π_{t+1} without the win rates P(y ≻ π_t), by minimising a loss on preference pairs sampled
from π_t (I = 1 if y was preferred)::

    h_t(π, y, y') = log π(y)/π(y') − (τ/η) log π_ref(y)/π_ref(y') − (1 − τ/η) log π_t(y)/π_t(y')
    L_t(π)        = E_{y, y' ∼ π_t, I ∼ Ber(P(y ≻ y'))} [ (h_t(π, y, y') − (I − ½)/η)² ]
                  = Σ_{y,y'} π_t(y) π_t(y') [ P (h − 1/(2η))² + (1 − P) (h + 1/(2η))² ]          (exact)
    argmin_π L_t  = π_{t+1}   (for π_t of full support; the least-squares projection of (P(y≻y') − ½)/η
                               onto functions f(y) − f(y') is f = P(·≻π_t)/η + const)
    ranked pairs  ℓ = (h_t(π, y_w, y_l) − 1/(2η))²     best vs worst of K responses per prompt (LLM practice)

Gradient of the exact loss w.r.t. the logits θ of π = softmax(θ) (derived here, checked by finite
differences): h is linear in θ (h = θ_y − θ_y' + const), so with G_{yy'} = ∂L/∂h_{yy'} =
2 π_t(y) π_t(y') (h_{yy'} − (P_{yy'} − ½)/η)::

    ∂L/∂θ_z = Σ_y' G_{zy'} − Σ_y G_{yz}             (Σ_z ∂L/∂θ_z = 0: the loss ignores a constant shift)

and for the ranked-pair loss over N pairs on sequences (S = Σ_t log π(y_t | ·) over valid tokens)::

    ∂ℓ/∂logp_{b,t} = ± (2/N) (h − 1/(2η))          + on the chosen response's valid tokens, − on the rejected's

Guarantees as restated in our notes (the paper's exact statements and conditions were not readable):
an O(1/√T) duality gap of the average iterate, and last-iterate convergence KL(π*_τ‖π_{t+1}) ≤
(1 − τ/η) KL(π*_τ‖π_t). The exact iteration on the 3-response rock-paper-scissors game
(``properties/test_inpo.py``) shows that per-step rate at moderate steps and a counter-example at large
steps (1/η large against τ); what we can prove in general (our derivation, Hölder + Hoeffding + Pinsker,
using P + Pᵀ = 1) is KL(π*_τ‖π_{t+1}) ≤ (1 − τ/η + 1/(4η(η − τ))) KL(π*_τ‖π_t) for τ < η, a contraction
when 4τ(η − τ) > 1; without regularisation (τ = 0), the iteration is Hedge with step 1/η, and from a
uniform π_1 the average iterate has DualGap ≤ 2(η log n + T/(8η))/T = √(2 log n / T) at η = √(T/(8 log n)).

Conventions: the exact (tabular) entry takes logits (π = softmax), so rounding an input to low precision
cannot leave the simplex; P need not satisfy P + Pᵀ = 1 in the loss (each ordered pair has its own
Bernoulli), but the minimiser equals the OMD target only when it does. The ranked-pair loss reads each
sequence's score as the mean of ``adv`` over its valid tokens; in each group the first row with the
highest score is y_w and the first with the lowest y_l; groups with a tie between them or fewer than
two non-empty rows give no pair; no pair at all gives loss 0. Without ``group`` the batch is one
prompt's responses; without ``ref_logp`` the reference anchor is dropped (τ = 0), as the other losses
drop their KL term when no reference model is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_2d, as_mask, choice, fail, finite_vector, group_ids, masked_array, positive
from rlspec.reference.envs import preference_matrix as pm
from rlspec.reference.registry import Equation, Paper, Spec, register

INPO_PAPER = Paper(arxiv="2407.00617", title="Iterative Nash Policy Optimization", year=2024)


@dataclass(frozen=True)
class INPOConfig:
    """eta: OMD parameter η > 0 (inverse learning rate: step 1/η); tau: KL strength 0 ≤ τ ≤ η.

    Defaults η = 7.5e-3, τ = η/3 = 2.5e-3 are the LLM setting reported by the third-party specification
    (ntlfi/ENPO algos/specs/inpo.md); the paper's own table was not readable.
    """

    eta: float = 7.5e-3
    tau: float = 2.5e-3

    def __post_init__(self) -> None:
        positive(self.eta, "eta")
        positive(self.tau, "tau", allow_zero=True)
        if self.tau > self.eta:
            raise fail("tau", repr(self.tau), f"0 ≤ τ ≤ η = {self.eta} (the exponent 1 − τ/η of π_t must be ≥ 0)")


@dataclass(frozen=True)
class INPOPairConfig(INPOConfig):
    """The ranked-pair loss: η, τ as :class:`INPOConfig`; agg: only "pair-mean" (the mean over pairs — the loss
    is per pair, not per token); pair_normalizer: the global number of pairs when a batch is sharded by prompt."""

    agg: str = "pair-mean"
    pair_normalizer: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.agg, "agg", ("pair-mean",))
        if self.pair_normalizer is not None:
            positive(self.pair_normalizer, "pair_normalizer")


# ---------------------------------------------------------------------------- the exact game (tabular)


def log_softmax(theta: np.ndarray) -> np.ndarray:
    """log π for π = softmax(θ), along the last axis."""
    m = theta.max(axis=-1, keepdims=True)
    return theta - m - np.log(np.exp(theta - m).sum(axis=-1, keepdims=True))


def win_rates(P: np.ndarray, pi_t: np.ndarray) -> np.ndarray:
    """P(y ≻ π_t) = Σ_y' P[y, y'] π_t(y'), (n,)."""
    return P @ pi_t


def omd_target(logp_t: np.ndarray, logp_ref: np.ndarray, P: np.ndarray, eta: float, tau: float) -> np.ndarray:
    """log π_{t+1} = log-normalise((1 − τ/η) log π_t + (τ/η) log π_ref + P(·≻π_t)/η), (n,)."""
    return log_softmax((1 - tau / eta) * logp_t + (tau / eta) * logp_ref + win_rates(P, np.exp(logp_t)) / eta)


def h_matrix(logp: np.ndarray, logp_t: np.ndarray, logp_ref: np.ndarray, eta: float, tau: float) -> np.ndarray:
    """h_t(π, y, y') for every ordered pair, (n, n): row y, column y'."""
    u = logp - (tau / eta) * logp_ref - (1 - tau / eta) * logp_t   # (n,)
    return u[:, None] - u[None, :]


def population_loss(logp: np.ndarray, logp_t: np.ndarray, logp_ref: np.ndarray, P: np.ndarray, eta: float,
                    tau: float) -> tuple[float, np.ndarray]:
    """L_t(π) in closed form and G = ∂L/∂h (n, n) (the expectation over y, y' ∼ π_t and I ∼ Ber(P))."""
    h = h_matrix(logp, logp_t, logp_ref, eta, tau)
    w = np.exp(logp_t)[:, None] * np.exp(logp_t)[None, :]          # π_t(y) π_t(y')
    c = 1.0 / (2.0 * eta)
    L = float((w * (P * (h - c) ** 2 + (1 - P) * (h + c) ** 2)).sum())
    G = 2.0 * w * (h - (P - 0.5) / eta)
    return L, G


def loss_gradient_logits(G: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """∂L/∂θ from G = ∂L/∂h: ∂L/∂log π_z = Σ_y' G[z, y'] − Σ_y G[y, z], then through log-softmax."""
    g = G.sum(axis=1) - G.sum(axis=0)
    return g - pi * g.sum()


def _game_inputs(P, ref_logits, t_logits, logits) -> tuple[np.ndarray, ...]:
    P = pm.check_preference(P, complementary=False)
    n = P.shape[0]
    return (P,) + tuple(finite_vector(x, name, n) for x, name in
                        ((ref_logits, "ref_logits"), (t_logits, "t_logits"), (logits, "logits")))


def inpo_game_step(P, ref_logits, t_logits, logits, config: INPOConfig | None = None) -> dict:
    """The registry entry: one INPO round on an exact preference game.

    Args: P (n, n) preference matrix (entries in [0, 1]); ref_logits, t_logits, logits (n,) logits of
    π_ref, π_t and the candidate π (each π = softmax of its logits).
    Returns: {"loss": L_t(π), "dlogits": ∂L_t/∂θ (n,), "target": π_{t+1} (n,), the OMD target}.
    """
    cfg = config or INPOConfig()
    P, ref, t, th = _game_inputs(P, ref_logits, t_logits, logits)
    lr, lt, lp = log_softmax(ref), log_softmax(t), log_softmax(th)
    L, G = population_loss(lp, lt, lr, P, cfg.eta, cfg.tau)
    return {"loss": L, "dlogits": loss_gradient_logits(G, np.exp(lp)),
            "target": np.exp(omd_target(lt, lr, P, cfg.eta, cfg.tau))}


def minimise_loss(P, pi_ref, pi_t, eta: float, tau: float) -> np.ndarray:
    """argmin_π L_t(π) by Newton's method on the logits (L_t is a convex quadratic in θ): one exact step.

    Hessian ∂²L/∂θ² = Σ_{y,y'} 2 π_t(y) π_t(y') (e_y − e_y')(e_y − e_y')ᵀ (singular along the all-ones
    direction, which the loss ignores: solved by least squares). Returns π = softmax(θ*).
    """
    P = pm.check_preference(P, complementary=False)
    lt, lr = np.log(pi_t), np.log(pi_ref)
    theta = lt.copy()
    _, G = population_loss(theta, lt, lr, P, eta, tau)
    g = loss_gradient_logits(G, pi_t)
    W = 2.0 * np.outer(pi_t, pi_t)
    H = 2.0 * (np.diag(W.sum(axis=1)) - W)                         # Σ_{y,y'} over both orders
    theta = theta - np.linalg.lstsq(H, g, rcond=None)[0]
    return np.exp(log_softmax(theta))


def inpo_iterate(P, pi_ref, eta: float, tau: float, T: int, pi_1=None, via: str = "closed-form") -> np.ndarray:
    """π_1 … π_{T+1} of INPO, (T+1, n); π_1 = π_ref by default (Algorithm 1). ``via``: "closed-form" (the OMD
    target) or "loss" (each round minimises L_t exactly, :func:`minimise_loss`)."""
    INPOConfig(eta=eta, tau=tau)
    P = pm.check_preference(P)
    n = P.shape[0]
    ref = pm.check_simplex(pi_ref, n, "pi_ref")
    pi = ref.copy() if pi_1 is None else pm.check_simplex(pi_1, n, "pi_1")
    if (ref <= 0).any() or (pi <= 0).any():
        raise fail("pi_ref", "a zero probability", "full support for π_ref and π_1")
    out = [pi]
    for _ in range(int(T)):
        if via == "closed-form":
            pi = np.exp(omd_target(np.log(pi), np.log(ref), P, eta, tau))
        elif via == "loss":
            pi = minimise_loss(P, ref, pi, eta, tau)
        else:
            raise fail("via", repr(via), "'closed-form' or 'loss'")
        out.append(pi)
    return np.asarray(out)


def contraction_bound(eta: float, tau: float) -> float:
    """ρ = 1 − τ/η + 1/(4η(η − τ)): KL(π*_τ‖π_{t+1}) ≤ ρ KL(π*_τ‖π_t) for τ < η (our derivation)."""
    if not 0 <= tau < eta:
        raise fail("tau", repr(tau), f"0 ≤ τ < η = {eta}")
    return 1.0 - tau / eta + 1.0 / (4.0 * eta * (eta - tau))


# ---------------------------------------------------------------------------- the LLM loss (ranked pairs)


def sequence_scores(adv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row's preference score: the mean of adv over its valid tokens (0 for an empty row), (B,)."""
    n = mask.sum(axis=1)
    return np.where(n > 0, np.where(mask, adv, 0.0).sum(axis=1) / np.maximum(n, 1), 0.0)


def best_worst_pairs(scores: np.ndarray, mask: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(N, 2) row indices (chosen, rejected): per group the first highest and first lowest score among
    non-empty rows; groups with fewer than two such rows or a tie between best and worst are skipped."""
    pairs = []
    nonempty = mask.any(axis=1)
    for g in np.unique(group):
        rows = np.flatnonzero((group == g) & nonempty)
        if rows.size < 2:
            continue
        s = scores[rows]
        w, l = rows[np.argmax(s)], rows[np.argmin(s)]
        if s.max() > s.min():
            pairs.append((w, l))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def inpo_pairwise_loss(logp, old_logp, adv, mask, ref_logp=None, config: INPOPairConfig | None = None, group=None):
    """INPO's ranked-pair loss on a batch of sampled responses, and its gradient w.r.t. logp.

    Args: logp (B, T) log π of the tokens; old_logp (B, T) log π_t (the iterate that sampled the batch);
    ref_logp (B, T) log π_ref, or None: no reference anchor (τ is taken as 0, h = Δ log π − Δ log π_t, as
    the other losses drop their KL term without a reference model); adv (B, T) preference score per token
    (its mean over a row's valid tokens ranks the row); mask (B, T) bool; group (B,) prompt ids (K ≥ 2
    responses per prompt), None: the whole batch answers one prompt.
    Returns: (loss = (1/N) Σ_pairs (h − 1/(2η))², dlogp (B, T)), N = number of pairs or ``pair_normalizer``.
    """
    cfg = config or INPOPairConfig()
    lp = as_2d(logp, "logp")
    m = as_mask(mask, "mask", lp.shape)
    lp = masked_array(logp, "logp", m)
    lt = masked_array(old_logp, "old_logp", m)
    a = masked_array(adv, "adv", m)
    lr = np.zeros(m.shape) if ref_logp is None else masked_array(ref_logp, "ref_logp", m)
    g = np.zeros(m.shape[0], dtype=np.int64) if group is None else group_ids(group, m.shape[0])
    pairs = best_worst_pairs(sequence_scores(a, m), m, g)
    S, S_t, S_r = (np.where(m, x, 0.0).sum(axis=1) for x in (lp, lt, lr))      # (B,) sequence log-probs
    w, l = pairs[:, 0], pairs[:, 1]
    k = 0.0 if ref_logp is None else cfg.tau / cfg.eta
    h = (S[w] - S[l]) - k * (S_r[w] - S_r[l]) - (1 - k) * (S_t[w] - S_t[l])     # (N,)
    N = float(len(pairs)) if cfg.pair_normalizer is None else cfg.pair_normalizer
    dlogp = np.zeros(m.shape)
    if len(pairs) == 0:
        return 0.0, dlogp
    r = h - 1.0 / (2.0 * cfg.eta)
    coef = np.zeros(m.shape[0])
    np.add.at(coef, w, 2.0 * r / N)
    np.add.at(coef, l, -2.0 * r / N)
    dlogp = np.where(m, coef[:, None], 0.0)
    return float((r**2).sum() / N), dlogp


# ---------------------------------------------------------------------------- registry


def make_game_inputs(rng: np.random.Generator) -> dict:
    """A random game (n ∈ 2..6, complementary P) and logits; half of the draws use a moderate (η, τ)."""
    n = int(rng.integers(2, 7))
    out = {"P": pm.random_preference(rng, n), "ref_logits": rng.normal(size=n), "t_logits": rng.normal(size=n),
           "logits": rng.normal(size=n) * 2}
    if rng.random() < 0.5:
        eta = float(rng.uniform(0.5, 5.0))
        out["config"] = {"eta": eta, "tau": float(rng.uniform(0.0, eta))}
    return out


def make_pair_inputs(rng: np.random.Generator) -> dict:
    """K responses per prompt (K ∈ 2..5, sequence-level scores with ties), ragged masks, garbage padding."""
    from rlspec.conformance.inputs import fill_garbage, ragged_mask

    G, K = int(rng.integers(1, 5)), int(rng.integers(2, 6))
    B, T = G * K, int(rng.integers(1, 8))
    mask = ragged_mask(rng, B, T, p_empty=0.1)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old_logp = logp + rng.normal(scale=0.3, size=(B, T))
    ref_logp = logp + rng.normal(scale=0.3, size=(B, T))
    adv = np.repeat(rng.integers(0, 3, size=(B, 1)).astype(np.float64), T, axis=1)
    group = rng.permutation(np.repeat(rng.choice(np.arange(-20, 20), size=G, replace=False), K))
    batch = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp, "adv": adv, "mask": mask, "group": group}
    for k in ("logp", "old_logp", "ref_logp", "adv"):
        batch[k] = fill_garbage(batch[k], mask, rng)
    if rng.random() < 0.5:
        batch["config"] = {"eta": float(rng.uniform(0.5, 5.0)), "tau": 0.25}
    if rng.random() < 0.2:
        batch["ref_logp"] = None
    return batch


EQUATIONS = (
    Equation("game", "J(π,π') = E P(y≻y') − τKL(π‖π_ref) + τKL(π'‖π_ref); π*_τ = argmax_π min_π' J",
             "arXiv 2407.00617 abstract (two-player game) + notes papers_C §13", "secondary",
             "rlspec.reference.envs.preference_matrix.regularized_nash",
             note="π*_τ is the fixed point π ∝ π_ref e^{Pπ/τ}; solved and checked in envs/preference_matrix.py"),
    Equation("omd-update", "π_{t+1}(y) ∝ π_t(y)^{1−τ/η} π_ref(y)^{τ/η} exp(P(y≻π_t)/η)",
             "notes papers_C §13 (step η: π_t^{1−ητ}π_ref^{ητ}e^{ηP}); ntlfi/ENPO algos/specs/inpo.md (η inverse)",
             "secondary", "omd_target",
             note="the two sources differ only in writing the step as η or 1/η; we use η as the inverse step. The "
                  "update is OMD linearised at π_t on −⟨π, P(·≻π_t)⟩ + τKL(π‖π_ref) with a η·KL(π‖π_t) proximity "
                  "term (tested as an argmax)"),
    Equation("h", "h_t(π,y,y') = log π(y)/π(y') − (τ/η) log π_ref(y)/π_ref(y') − (1−τ/η) log π_t(y)/π_t(y')",
             "ntlfi/ENPO algos/specs/inpo.md; notes papers_C §13", "secondary", "h_matrix"),
    Equation("loss", "L_t(π) = E_{y,y'∼π_t, I∼Ber(P(y≻y'))} (h_t(π,y,y') − (I − ½)/η)²", "notes papers_C §13 "
             "(with η → 1/η)", "secondary", "population_loss",
             note="its unique minimiser is π_{t+1} (tested: scipy minimisation, Newton, and the Pythagorean identity)"),
    Equation("ranked-loss", "ℓ = (h_t(π, y_w, y_l) − 1/(2η))², (y_w, y_l) = best and worst of K samples",
             "ntlfi/ENPO algos/specs/inpo.md (its Algorithm 1 and practical setting: K = 8, best vs worst)", "secondary",
             "inpo_pairwise_loss",
             note="defaults η = 7.5e-3, τ = η/3 from the same specification; the pair loss on sequences "
                  "sums token log-probs over valid tokens"),
    Equation("loss-gradient", "∂L/∂θ_z = Σ_y' G_{zy'} − Σ_y G_{yz},  G = 2π_t(y)π_t(y')(h − (P − ½)/η)",
             "derived here", "reconstructed", "loss_gradient_logits"),
    Equation("contraction", "KL(π*_τ‖π_{t+1}) ≤ (1 − τ/η + 1/(4η(η−τ))) KL(π*_τ‖π_t)", "derived here (Hölder, "
             "Hoeffding's lemma, Pinsker, P + Pᵀ = 1)", "reconstructed", "contraction_bound",
             note="the notes' rate (1 − τ/η) without the second term fails at large steps (counter-example tested)"),
)

_PROPS = (
    "properties/test_inpo.py::test_loss_minimiser_is_the_omd_target: scipy minimisation of the exact L_t over "
    "logits gives π_{t+1} ∝ π_t^{1−τ/η}π_ref^{τ/η}e^{P(·≻π_t)/η} (to 1e-8); so does the Newton step",
    "properties/test_inpo.py::test_loss_is_pythagorean_around_the_target: L_t(π) = L_t(π_{t+1}) + "
    "E_{π_t⊗π_t}(h(π) − h(π_{t+1}))², exactly",
    "properties/test_inpo.py::test_omd_target_is_the_mirror_descent_argmax: π_{t+1} maximises "
    "⟨π, P(·≻π_t) − τ log(π_t/π_ref)⟩ − η KL(π‖π_t)",
    "properties/test_inpo.py::test_hand_gradient_matches_finite_differences: dlogits = central FD (float64)",
    "properties/test_inpo.py::test_sampled_pairs_are_unbiased_for_the_population_loss: the ranked-pair loss "
    "averaged over all (y, y', I) with their probabilities = L_t",
    "properties/test_inpo.py::test_nash_policy_is_a_fixed_point: π*_τ is mapped to itself",
    "properties/test_inpo.py::test_last_iterate_kl_decays_at_the_stated_rate_on_rps: RPS, τ = 0.1, η ∈ {1, 2, 5}: "
    "KL(π*_τ‖π_{t+1}) ≤ (1 − τ/η) KL(π*_τ‖π_t) at every iteration",
    "properties/test_inpo.py::test_stated_rate_fails_at_large_steps: RPS, τ = 0.1, η = 0.5: a step where the KL "
    "grows by more than (1 − τ/η)",
    "properties/test_inpo.py::test_derived_contraction_bound_holds: KL_{t+1} ≤ (1 − τ/η + 1/(4η(η−τ))) KL_t on "
    "random games, policies and steps",
    "properties/test_inpo.py::test_average_iterate_duality_gap_is_order_one_over_sqrt_t: τ = 0, η = √(T/(8 log n)): "
    "DualGap(π̄_T) ≤ √(2 log n / T), for T = 10 … 3000, RPS and random games",
    "properties/test_inpo.py::test_bradley_terry_small_tau_concentrates_on_the_best_response: transitive P, τ → 0: "
    "INPO's limit puts its mass on argmax r",
    "properties/test_inpo.py::test_loss_minimisation_run_reaches_the_nash_policy: INPO by loss minimisation "
    "(exact Newton rounds, and torch L-BFGS rounds on the optimized loss) reaches π*_τ",
    "properties/test_inpo.py::test_pairwise_hand_gradient_matches_finite_differences: ranked-pair dlogp = FD",
    "properties/test_inpo.py::test_pairwise_loss_matches_the_game_loss_on_one_token: one-token responses reduce the "
    "ranked-pair loss to (h_t(π,y_w,y_l) − 1/(2η))² of the game",
    "properties/test_inpo.py::test_pairwise_padding_and_pairs: garbage padding is never read; ties, singletons and "
    "empty rows give no pair; loss 0 without pairs; no group = one prompt; no ref_logp = τ 0",
    "properties/test_inpo.py::test_sharding_with_global_normalizer: sum of shard losses with the global pair count = "
    "full loss",
    "properties/test_inpo.py::test_optimized_matches_reference: torch autograd = hand gradients (float64)",
    "properties/test_inpo.py::test_bad_input_raises: τ > η, η ≤ 0, P outside [0, 1], a token aggregation mode",
    "untested: LLaMA-3-8B results (42.6% LC win rate on AlpacaEval 2, 37.8% on Arena-Hard) and the benefit of "
    "the KL term for response length — LLM experiments",
    "untested: the paper's exact theorem statements and constants (regret / duality-gap and last-iterate) — "
    "the paper body was not readable; tested here are our restatements and our own derived bounds",
)

register(Spec(
    name="inpo", kind="tabular", family="theory", paper=INPO_PAPER, status="implemented",
    summary="one INPO round on an exact preference game: the no-regret loss L_t, its logit gradient, and the "
            "online-mirror-descent target it is minimised by",
    fn=inpo_game_step, config_cls=INPOConfig, equations=EQUATIONS, outputs=("loss", "dlogits", "target"),
    make_inputs=make_game_inputs,
    gradient="∂L/∂θ_z = Σ_y' G_zy' − Σ_y G_yz with G = 2π_t(y)π_t(y')(h_yy' − (P_yy' − ½)/η); h is linear in the "
             "logits, so L_t is a convex quadratic whose minimiser is the OMD target",
    properties=_PROPS,
    extras={"omd_target": omd_target, "population_loss": population_loss, "minimise_loss": minimise_loss,
            "iterate": inpo_iterate, "contraction_bound": contraction_bound,
            "figures": (("img/inpo.png", "Rock-paper-scissors (P = [[.5,1,0],[0,.5,1],[1,0,.5]], π_ref = (.6,.3,.1), "
                         "τ = 0.1): left, exact last-iterate KL(π*_τ‖π_t) for several η with the stated rate "
                         "(1 − τ/η)^t dashed (η = 0.5 violates it); right, a random 5-response game, τ = 0, uniform π_1: "
                         "average-iterate duality gap with η = √(T/(8 log 5)) against the bound √(2 log 5 / T)."),)},
))

register(Spec(
    name="inpo_pairwise", kind="policy_loss", family="theory", paper=INPO_PAPER, status="implemented",
    summary="INPO's LLM loss: (h_t(π, y_w, y_l) − 1/(2η))² on the best/worst of K responses per prompt, h anchored "
            "to both π_ref and the previous iterate π_t (= old_logp)",
    fn=inpo_pairwise_loss, config_cls=INPOPairConfig, equations=EQUATIONS[2:5], outputs=("loss", "dlogp"),
    make_inputs=make_pair_inputs,
    gradient="∂ℓ/∂logp_{b,t} = +2(h − 1/(2η))/N on the chosen response's valid tokens, −2(h − 1/(2η))/N on the "
             "rejected's, 0 elsewhere (N pairs)",
    properties=tuple(p for p in _PROPS if p.split("::")[-1].split(":")[0] in (
        "test_sampled_pairs_are_unbiased_for_the_population_loss", "test_pairwise_hand_gradient_matches_finite_differences",
        "test_pairwise_loss_matches_the_game_loss_on_one_token", "test_pairwise_padding_and_pairs",
        "test_sharding_with_global_normalizer", "test_optimized_matches_reference", "test_bad_input_raises")),
    extras={"best_worst_pairs": best_worst_pairs, "sequence_scores": sequence_scores,
            "e2e_note": "only the best and worst of each prompt's responses in a minibatch carry a gradient and the "
                        "loop has no reference model (τ term dropped)"},
))

"""DGPO: Directed Graph Policy Optimization — RL fine-tuning of a discrete graph diffusion over DAGs.

Liuliakov, Hermes, Hammer, "DGPO: RL-Steered Graph Diffusion for Neural Architecture Generation",
arXiv 2602.19261 (IJCNN 2026). Official code: github.com/AlekseiLiu/DGPO, read: ``src/train_rlft.py``
(``compute_advantages``, ``ppo_step_slice``, ``sample_trajectories``, the epoch loop), ``src/diffusion.py``,
``src/utils.py``, ``src/model.py`` and ``configs/rlft_nb201_cifar10.yaml``. Only the paper's abstract and
opening were readable to us; every formula below was confirmed in the official code (which follows GDPO,
Liu et al., arXiv 2402.16302, "eager policy gradient").

Where it sits: a generative policy over graphs (not tokens). A DiGress discrete diffusion (node types X,
symmetric edge types E) denoises a graph G_T → … → G_0; DGPO makes it generate DAGs by fixing a
topological node order (node i may only feed node j > i) and giving the network the node index
(sinusoidal positional encoding); the architecture read off the sample is A = triu(E, 1)
(:func:`rlspec.reference.envs.dag_diffusion.triu_dag`), acyclic by construction. Fine-tuning:

    reward      r(G_0) (NAS-Bench validation accuracy; invalid graphs −1 are dropped; inverse control: −r)
    statistics  (μ̄, σ̄) ← batch (mean, std) at epoch 0, else (1 − α)(μ̄, σ̄) + α (mean, std),  α = 0.1,
                σ̄ floored at 1e-8                                       (train_rlft.py, epoch loop)
    advantage   A_b = clip((r_b − μ̄) / σ̄, −5, 5);  A ≡ 0 if the batch has < 2 graphs or all r equal
                (within 1e-8)                                            (compute_advantages)
    loss slice  L_t = Σ_{b,i} A_b CE(p̂_θ(x_0^{b,i} | G_t^b), x_0^{b,i}) / N_X
                      + λ_E Σ_{b,i,j} A_b CE(p̂_θ(e_0^{b,ij} | G_t^b), e_0^{b,ij}) / N_E      (ppo_step_slice)
    update      for each of ⌈ppo_sr·T⌉ random timesteps t of the stored trajectory: (L_t / (⌈ppo_sr·T⌉ ·
                step_freq)).backward(); AdamW step every step_freq slices; 'innerloop' passes per epoch

N_X = number of real nodes in the batch, N_E = number of real node pairs (i, j), ordered, diagonal
included — the code's mask keeps every E_0 entry whose one-hot is non-zero, and the model's edge
logits are symmetric with a zero diagonal. ``edges="upper"`` counts each pair i < j once instead.

So the update is −Σ_t A ∇ log p̂_θ(G_0 | G_t): the clean-graph prediction at each stored noisy state
is pushed towards (A > 0) or away from (A < 0) the graph that was finally generated. It is not the
likelihood of the reverse transition p_θ(G_{t−1} | G_t) that REINFORCE needs; with one denoising step
and a clean time 0 (ᾱ_0 = 1) the two coincide, so the eager estimator is then exactly REINFORCE; with
more steps it is biased (our analysis, measured exactly on the tiny space of
:mod:`rlspec.reference.envs.dag_diffusion`).

The registry entry ``dgpo_graph`` is the loss slice with its hand-derived gradient w.r.t. the denoiser's
logits (CE = logsumexp(ℓ) − ℓ_y, so ∂L/∂ℓ_k = A_b (softmax_k − 1[k = y]) / N); ``dgpo_graph_advantage`` is
the EMA-normalised clipped advantage, a tracker with a frozen state and a pure update.

Conventions: node_mask marks real nodes (padding rows of logits and targets are never read); a batch
with no real node (or pair) contributes 0 for that term, as the code does for an empty selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, in_range, positive
from rlspec.reference.envs import dag_diffusion as dd
from rlspec.reference.registry import Equation, Paper, Spec, register

DGPO_PAPER = Paper(arxiv="2602.19261", title="DGPO: RL-Steered Graph Diffusion for Neural Architecture Generation",
                   year=2026)


# ---------------------------------------------------------------------------- configs and state


@dataclass(frozen=True)
class DGPOConfig:
    """lambda_E: edge-term weight (code: ``lambda_train[0]`` = 5.0 in every RL-FT config);
    edges: "all" (code: every ordered pair of real nodes, diagonal included) or "upper" (pairs i < j once);
    ppo_sr, step_freq: timestep fraction and accumulation of the update (code: 0.3 and 2), used by
    :func:`slice_scale` only."""

    lambda_E: float = 5.0
    edges: str = "all"
    ppo_sr: float = 0.3
    step_freq: int = 2

    def __post_init__(self) -> None:
        positive(self.lambda_E, "lambda_E", allow_zero=True)
        choice(self.edges, "edges", ("all", "upper"))
        in_range(self.ppo_sr, "ppo_sr", 0.0, 1.0, lo_open=True)
        if isinstance(self.step_freq, bool) or not isinstance(self.step_freq, (int, np.integer)) or self.step_freq < 1:
            raise fail("step_freq", repr(self.step_freq), "an integer ≥ 1")


@dataclass(frozen=True)
class DGPOAdvantageConfig:
    """alpha: EMA weight of the new batch (code 0.1); clip: |A| bound (code 5); std_floor (code 1e-8);
    tol: a batch whose rewards span less than this gets A ≡ 0 (code 1e-8)."""

    alpha: float = 0.1
    clip: float = 5.0
    std_floor: float = 1e-8
    tol: float = 1e-8

    def __post_init__(self) -> None:
        in_range(self.alpha, "alpha", 0.0, 1.0)
        positive(self.clip, "clip")
        positive(self.std_floor, "std_floor")
        positive(self.tol, "tol", allow_zero=True)


@dataclass(frozen=True)
class DGPOState:
    """Running reward statistics (code: running_mean = 0, running_std = 1 before the first epoch) and the
    epoch counter (statistics are initialised from the batch only at epoch 0, as in the code)."""

    mean: float = 0.0
    std: float = 1.0
    epoch: int = 0


def init_state() -> DGPOState:
    return DGPOState()


def check_state(state: Any) -> DGPOState:
    if not isinstance(state, DGPOState):
        raise fail("state", type(state).__name__, "a DGPOState (see init_state())")
    if not (math.isfinite(state.mean) and math.isfinite(state.std) and state.std > 0):
        raise fail("state", repr(state), "a finite mean and a positive std")
    return state


# ---------------------------------------------------------------------------- advantage


def update(state: DGPOState, rewards: Any, config: DGPOAdvantageConfig | None = None) -> DGPOState:
    """One epoch of the running statistics (pure; the argument is not modified).

    epoch 0: (μ̄, σ̄) = (mean r, max(std r, floor)); later: μ̄ ← (1−α)μ̄ + α mean r, σ̄ ← max((1−α)σ̄ + α std r,
    floor); std is the population std (NumPy default, as in the code). An empty batch leaves the
    statistics as they are (code: ``if epoch_rewards``); the epoch counter always advances.
    """
    cfg = config or DGPOAdvantageConfig()
    s = check_state(state)
    r = finite_vector(rewards, "rewards")
    if r.size == 0:
        return replace(s, epoch=s.epoch + 1)
    m, sd = float(r.mean()), float(r.std())
    if s.epoch == 0:
        return DGPOState(mean=m, std=max(sd, cfg.std_floor), epoch=1)
    a = cfg.alpha
    return DGPOState(mean=(1 - a) * s.mean + a * m, std=max((1 - a) * s.std + a * sd, cfg.std_floor),
                     epoch=s.epoch + 1)


def clipped_advantage(r: np.ndarray, mean: float, std: float, cfg: DGPOAdvantageConfig) -> np.ndarray:
    """A = clip((r − μ̄)/max(σ̄, floor), −clip, clip), or 0 for fewer than 2 graphs / a constant batch (B,)."""
    if r.size < 2 or r.max() - r.min() < cfg.tol:
        return np.zeros_like(r)
    return np.clip((r - mean) / max(std, cfg.std_floor), -cfg.clip, cfg.clip)


def dgpo_advantage(state: DGPOState, rewards: Any,
                   config: DGPOAdvantageConfig | None = None) -> tuple[np.ndarray, DGPOState]:
    """The tracker entry: statistics updated with this epoch's rewards FIRST (as in the code), then
    A = clip((r − μ̄)/σ̄, ±5). rewards (B,) are the valid graphs' (filtered, inverse applied). Returns
    (adv (B,), new_state)."""
    cfg = config or DGPOAdvantageConfig()
    new = update(state, rewards, cfg)
    r = finite_vector(rewards, "rewards")
    return clipped_advantage(r, new.mean, new.std, cfg), new


# ---------------------------------------------------------------------------- the eager loss slice


def _int_array(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != shape:
        raise fail(name, f"shape {a.shape}", f"shape {shape}")
    if not (np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating) and np.isfinite(
            np.where(np.isfinite(a), a, 0)).all())):
        raise fail(name, f"dtype {a.dtype}", "integer class indices")
    return a


def _logits(x: Any, name: str, shape_prefix: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != len(shape_prefix) + 1 or a.shape[:-1] != shape_prefix or a.shape[-1] < 1:
        raise fail(name, f"shape {a.shape}", f"shape {shape_prefix + ('K',)}")
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise fail(name, f"dtype {a.dtype}", "real-valued logits")
    return a.astype(np.float64)


def edge_positions(node_mask: np.ndarray, edges: str) -> np.ndarray:
    """(B, n, n) bool: edge entries that count — both nodes real, and i < j with ``edges="upper"``."""
    pos = node_mask[:, :, None] & node_mask[:, None, :]
    if edges == "upper":
        n = node_mask.shape[1]
        pos = pos & np.triu(np.ones((n, n), dtype=bool), 1)[None]
    return pos


def weighted_ce(logits: np.ndarray, target: np.ndarray, weight: np.ndarray, where: np.ndarray
                ) -> tuple[float, np.ndarray]:
    """Σ_where w·CE(logits, target) and its gradient w.r.t. logits, w·(softmax − onehot); both 0 off ``where``.

    logits (..., K), target/weight/where (...). Positions off ``where`` are never read.
    """
    K = logits.shape[-1]
    lg = np.where(where[..., None], logits, 0.0)
    y = np.where(where, target, 0).astype(np.int64)
    if where.any():
        if not np.isfinite(lg).all():
            raise fail("logits", "a non-finite logit at a real node/pair", "finite logits where node_mask is True")
        if (y < 0).any() or (y >= K).any():
            raise fail("targets", f"a class index outside [0, {K})", f"indices in [0, {K}) at real nodes/pairs")
    mx = lg.max(axis=-1, keepdims=True)
    e = np.exp(lg - mx)
    lse = mx[..., 0] + np.log(e.sum(axis=-1))
    p = e / e.sum(axis=-1, keepdims=True)
    ce = lse - np.take_along_axis(lg, y[..., None], axis=-1)[..., 0]
    w = np.where(where, weight, 0.0)
    onehot = (np.arange(K) == y[..., None]).astype(np.float64)
    return float((w * ce).sum()), w[..., None] * (p - onehot)


def eager_pg_loss(logits_X, logits_E, X0, E0, node_mask, adv, config: DGPOConfig | None = None) -> dict[str, Any]:
    """One DGPO loss slice (code ``ppo_step_slice``) with its hand-derived gradient.

    Args:
        logits_X (B, n, Kx): denoiser logits for the clean node types at the noisy state G_t of each graph;
        logits_E (B, n, n, Ke): denoiser logits for the clean edge types (the code's are symmetric, zero
            diagonal; not required here);
        X0 (B, n), E0 (B, n, n) int: the generated graph G_0 (targets);
        node_mask (B, n) bool: real nodes; adv (B,): A_b.
    Returns: {"loss": L_t, "dlogits_X": ∂L/∂logits_X, "dlogits_E": ∂L/∂logits_E} (zero at padding).
    """
    cfg = config or DGPOConfig()
    M = as_mask(node_mask, "node_mask")
    if M.ndim != 2:
        raise fail("node_mask", f"shape {M.shape}", "shape (B, n)")
    B, n = M.shape
    LX = _logits(logits_X, "logits_X", (B, n))
    LE = _logits(logits_E, "logits_E", (B, n, n))
    x0 = _int_array(X0, "X0", (B, n))
    e0 = _int_array(E0, "E0", (B, n, n))
    A = finite_vector(adv, "adv", B)
    pos_E = edge_positions(M, cfg.edges)
    NX, NE = int(M.sum()), int(pos_E.sum())
    sX, gX = weighted_ce(LX, x0, np.broadcast_to(A[:, None], (B, n)), M)
    sE, gE = weighted_ce(LE, e0, np.broadcast_to(A[:, None, None], (B, n, n)), pos_E)
    loss_X, dX = (sX / NX, gX / NX) if NX else (0.0, np.zeros_like(gX))
    loss_E, dE = (sE / NE, gE / NE) if NE else (0.0, np.zeros_like(gE))
    return {"loss": loss_X + cfg.lambda_E * loss_E, "dlogits_X": dX, "dlogits_E": cfg.lambda_E * dE}


def time_budget(T: int, ppo_sr: float) -> int:
    """⌈ppo_sr·T⌉ clamped to [1, T]: timesteps used per stored trajectory (code: ``time_budget``)."""
    return max(1, min(T, int(math.ceil(T * ppo_sr))))


def slice_scale(T: int, config: DGPOConfig | None = None) -> float:
    """The code divides each slice loss by ⌈ppo_sr·T⌉ · step_freq before ``backward``."""
    cfg = config or DGPOConfig()
    return float(time_budget(T, cfg.ppo_sr) * cfg.step_freq)


# ---------------------------------------------------------------------------- the tiny exact problem


def tabular_logits(space: dd.DagSpace, theta_t: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tabular denoiser as the code's network outputs: logits_X (B, n, Kx) and symmetric logits_E
    (B, n, n, Ke) with a zero diagonal, for states (B,) at one timestep (θ_t: (N, C, Kmax))."""
    th = np.asarray(theta_t)[np.asarray(states)]                 # (B, C, Kmax)
    LX = th[:, :space.n, :space.Kx]
    LE = np.zeros((th.shape[0], space.n, space.n, space.Ke))
    for p, (i, j) in enumerate(dd.pairs(space.n)):
        LE[:, i, j] = LE[:, j, i] = th[:, space.n + p, :space.Ke]
    return LX, LE


def logits_grad_to_theta(space: dd.DagSpace, dX: np.ndarray, dE: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Chain rule back to the table: ∂/∂θ_t (N, C, Kmax); a pair's logit feeds both (i, j) and (j, i)."""
    g = np.zeros((space.N, space.C, space.Kmax))
    rows = np.zeros((dX.shape[0], space.C, space.Kmax))
    rows[:, :space.n, :space.Kx] = dX
    for p, (i, j) in enumerate(dd.pairs(space.n)):
        rows[:, space.n + p, :space.Ke] = dE[:, i, j] + dE[:, j, i]
    np.add.at(g, np.asarray(states), rows)
    return g


def graph_targets(space: dd.DagSpace, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X0 (B, n) and the symmetric E0 (B, n, n) of final states (B,)."""
    S = space.states[np.asarray(states)]
    return S[:, :space.n], dd.symmetric_E(S[:, space.n:], space.n)


def train(space: dd.DagSpace, theta0, alpha_bar, r, epochs: int, lr: float, *, batch_size: int = 15,
          innerloop: int = 1, config: DGPOConfig | None = None, adv_config: DGPOAdvantageConfig | None = None,
          inverse: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """DGPO on the tiny space, the code's epoch loop with the table as the network and plain SGD.

    Per epoch: sample ``batch_size`` trajectories; rewards r(G_0) (−r with ``inverse``); statistics then
    advantages (:func:`dgpo_advantage`); ``innerloop`` passes, each over ⌈ppo_sr·T⌉ random timesteps per
    epoch, accumulating ∂(L_t/scale)/∂θ, then θ ← θ − lr·g. Returns (θ, exact J(θ) after each epoch
    (epochs + 1,), measured with +r).
    """
    cfg = config or DGPOConfig()
    a = dd.check_alpha_bar(alpha_bar)
    T = a.shape[0] - 1
    theta = dd.check_theta(space, theta0, T).copy()
    r = np.asarray(r, dtype=np.float64)
    rng = np.random.default_rng(seed)
    state = init_state()
    J = [dd.expected_reward(space, theta, a, r)]
    tau, scale = time_budget(T, cfg.ppo_sr), slice_scale(T, cfg)
    for _ in range(epochs):
        traj = dd.sample(space, theta, a, batch_size, rng)            # (B, T+1)
        rew = -r[traj[:, 0]] if inverse else r[traj[:, 0]]
        A, state = dgpo_advantage(state, rew, adv_config)
        X0, E0 = graph_targets(space, traj[:, 0])
        mask = np.ones((batch_size, space.n), dtype=bool)
        for _ in range(innerloop):
            if not A.any():
                continue
            g = np.zeros_like(theta)
            for t in rng.permutation(np.arange(1, T + 1))[:tau]:
                LX, LE = tabular_logits(space, theta[t - 1], traj[:, t])
                out = eager_pg_loss(LX, LE, X0, E0, mask, A, cfg)
                g[t - 1] += logits_grad_to_theta(space, out["dlogits_X"], out["dlogits_E"], traj[:, t]) / scale
            theta = theta - lr * g
        J.append(dd.expected_reward(space, theta, a, r))
    return theta, np.asarray(J)


# ---------------------------------------------------------------------------- registry


def make_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A conformance case: ragged graphs (padding nodes hold garbage), random logits, targets and advantages."""
    B, n = int(rng.integers(1, 7)), int(rng.integers(2, 6))
    Kx, Ke = int(rng.integers(2, 6)), int(rng.integers(2, 4))
    sizes = rng.integers(0 if rng.random() < 0.2 else 1, n + 1, size=B)
    mask = np.arange(n)[None, :] < sizes[:, None]
    LX = rng.normal(scale=2.0, size=(B, n, Kx))
    LE = rng.normal(scale=2.0, size=(B, n, n, Ke))
    X0 = rng.integers(0, Kx, size=(B, n))
    E0 = rng.integers(0, Ke, size=(B, n, n))
    LX[~mask] = np.nan
    X0[~mask] = -7
    pair = mask[:, :, None] & mask[:, None, :]
    LE[~pair] = np.inf
    E0[~pair] = 99
    return {"logits_X": LX, "logits_E": LE, "X0": X0, "E0": E0, "node_mask": mask,
            "adv": np.clip(rng.normal(scale=2.0, size=B), -5, 5)}


def make_advantage_inputs(rng: np.random.Generator) -> dict[str, Any]:
    B = int(rng.integers(0, 16))
    state = DGPOState(mean=float(rng.normal()), std=float(rng.uniform(0.05, 2.0)), epoch=int(rng.integers(0, 3)))
    rewards = rng.uniform(0.0, 1.0, size=B) if rng.random() < 0.8 else np.full(B, 0.5)
    return {"state": state, "rewards": rewards}


EQUATIONS = (
    Equation("dag-readout", "A = triu(E, 1): edges i → j only for i < j (topological node order)",
             "arXiv 2602.19261 abstract (topological ordering + positional encoding); official code "
             "src/train_rlft.py sample_trajectories (torch.triu(edge_mat, diagonal=1)), src/model.py "
             "(SinusoidalPositionalEncoding of the node index)", "official-code",
             "rlspec.reference.envs.dag_diffusion.triu_dag",
             note="the diffusion state E stays symmetric (DiGress); the model's edge logits are symmetrised, "
                  "diagonal zero"),
    Equation("reverse-step", "p_θ(z_s ∣ G_t) = Σ_{x0} p̂_θ(x0 ∣ G_t) q(z_s ∣ z_t, x0), per node and pair; "
             "Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1 mᵀ", "official code src/diffusion.py sample_p_zs_given_zt, "
             "MarginalUniformTransition; src/utils.py compute_batched_over0_posterior_distribution",
             "official-code", "rlspec.reference.envs.dag_diffusion.step_kernel",
             note="the toy takes ᾱ_0 = 1 (clean time 0); the code's cosine schedule has ᾱ_0 = 1 − β_0 "
                  "(cosine_alpha_bar(convention='code'))"),
    Equation("ema-stats", "(μ̄, σ̄) = batch (mean, std) at epoch 0; then μ̄ ← 0.9 μ̄ + 0.1 mean, "
             "σ̄ ← max(0.9 σ̄ + 0.1 std, 1e-8)", "official code src/train_rlft.py main (epoch loop, "
             "ema_alpha = 0.1), updated before the advantages", "official-code", "update"),
    Equation("advantage", "A = clip((r − μ̄)/max(σ̄, 1e-8), −5, 5); A ≡ 0 if B < 2 or max r − min r < 1e-8",
             "official code src/train_rlft.py compute_advantages", "official-code", "clipped_advantage"),
    Equation("eager-loss", "L_t = Σ A_b CE_X / N_X + λ_E Σ A_b CE_E / N_E,  λ_E = 5",
             "official code src/train_rlft.py ppo_step_slice; configs/rlft_nb201_cifar10.yaml "
             "(lambda_train [5.0, 0.0])", "official-code", "eager_pg_loss",
             note="N_E counts every ordered pair of real nodes incl. the diagonal (the code's one-hot mask); "
                  "edges='upper' counts each i < j once. Named 'ppo' in the code but REINFORCE-style: no ratio, "
                  "no clip"),
    Equation("update-schedule", "per epoch: innerloop = 4 passes; ⌈0.3 T⌉ random timesteps; slice loss / "
             "(⌈0.3 T⌉ · step_freq); AdamW step every step_freq = 2 slices; K = 15 graphs, T = 800",
             "official code src/train_rlft.py main; configs/rlft_nb201_cifar10.yaml", "official-code",
             "slice_scale", note="lr 5e-7, weight decay 1e-12, grad clip 2.0, 75 % of transformer layers "
                                 "frozen — training details of the network, not built here"),
    Equation("eager-gradient", "∇_θ L = −Σ_t A ∇ log p̂_θ(G_0 ∣ G_t);  −∇_θ L = REINFORCE Σ_t A ∇ log p_θ(G_{t−1} ∣ G_t) when "
             "T = 1 and ᾱ_0 = 1", "GDPO (arXiv 2402.16302) eager policy gradient, which the code follows; the "
             "T = 1 identity and the T > 1 bias are our derivation", "reconstructed",
             "rlspec.reference.envs.dag_diffusion.eager_gradient",
             note="measured exactly on the 64-graph space; the paper's own notation for the objective was not "
                  "readable"),
    Equation("exact-pg", "∇J = Σ_t Σ_{g,g'} P_t(g) K_t[g,g'] V_{t−1}(g') ∇ log K_t[g,g'];  "
             "∂ log k(z)/∂θ_k = p̂_k (q(z∣z_t,k)/k(z) − 1)", "derived here (exact REINFORCE over the "
             "denoising trajectory)", "reconstructed", "rlspec.reference.envs.dag_diffusion.reinforce_gradient"),
)

_ENV = "rlspec.reference.envs.dag_diffusion"
_T = "properties/test_dgpo_graph.py::"
_ENV_T = "properties/test_envs_dag_diffusion.py::"

register(Spec(
    name="dgpo_graph", kind="tabular", family="classic-rl", paper=DGPO_PAPER, status="implemented",
    summary="RL fine-tuning of a DAG graph diffusion: topological node order + triu read-out, and the eager "
            "(GDPO) policy gradient A·∇log p̂_θ(G_0 ∣ G_t) over stored denoising states; one loss slice with "
            "its gradient w.r.t. the denoiser logits",
    fn=eager_pg_loss, config_cls=DGPOConfig, equations=EQUATIONS, outputs=("loss", "dlogits_X", "dlogits_E"),
    make_inputs=make_inputs,
    gradient="CE = logsumexp(ℓ) − ℓ_y, so ∂L_t/∂ℓ_X[b,i,k] = A_b (softmax_k − 1[k = x0_bi]) / N_X and "
             "∂L_t/∂ℓ_E[b,i,j,k] = λ_E A_b (softmax_k − 1[k = e0_bij]) / N_E at real nodes/pairs, 0 at padding; "
             "descending L_t ascends Σ_b A_b log p̂_θ(G_0^b ∣ G_t^b) (the eager policy gradient)",
    properties=(
        _T + "test_every_generated_graph_is_a_dag: triu(E, 1) of every state of the 64-graph space (and of every "
             "symmetric E on 4 nodes, and of sampled trajectories) is acyclic",
        _T + "test_topological_order_reaches_every_dag: {P·U·Pᵀ} over strictly upper-triangular U and permutations P "
             "is exactly the set of acyclic digraphs on 3 and 4 labelled nodes (25 and 543)",
        _T + "test_symmetric_state_read_as_directed_has_cycles: without triu every edge is a 2-cycle",
        _T + "test_one_step_eager_estimator_equals_reinforce: T = 1, ᾱ_0 = 1: exact E[eager] = exact REINFORCE = "
             "central FD of J; a constant baseline has zero expectation",
        _T + "test_multi_step_eager_estimator_is_biased: T = 2, 3 (and the code's ᾱ_0 < 1 at T = 1): "
             "E[eager] ≠ ∇J, still an ascent direction on the drawn instances; a baseline is no longer free",
        _T + "test_sampled_loss_gradient_estimates_the_exact_eager_gradient: the loss slice's per-batch gradient "
             "averages to the enumerated expectation (5 standard errors, 5 random directions)",
        _T + "test_exact_steering_both_directions: exact eager steps raise J for +r and lower it for −r "
             "(T = 1, 2, 3)",
        _T + "test_exact_eager_ascent_reaches_the_optimum: additive reward, T = 2: J → max r (≥ 0.995) and, "
             "inverse, J → min r (≤ 0.005)",
        _T + "test_sampled_dgpo_run_steers_both_ways: the code's loop (K = 15, EMA advantages, CE slices) on the "
             "tiny space: J ≥ 0.9 with +r and ≤ 0.1 with −r after 150 epochs (seeded)",
        _T + "test_loss_gradient_matches_finite_differences: dlogits = central FD (ragged, garbage padding)",
        _T + "test_padding_is_never_read",
        _T + "test_all_edges_versus_upper_on_the_codes_symmetric_logits: N_E·L_E(all) = 2·N_U·L_E(upper) + "
             "Σ_b A_b n_b log Ke",
        _T + "test_table_chain_rule_matches_finite_differences: logits_grad_to_theta = FD of the loss in θ",
        _T + "test_equivariant_denoiser_cannot_orient_edges: without the node index (a permutation-equivariant "
             "denoiser) every relabelling, hence a DAG and its reversal, is equally likely",
        _T + "test_optimized_matches_reference",
        _T + "test_bad_input_raises",
        _ENV_T + "test_posterior_is_bayes_rule: q(x_s∣x_t,x0) from step matrices multiplied out",
        _ENV_T + "test_reverse_kernel_is_a_product_of_component_mixtures",
        _ENV_T + "test_exact_reward_matches_monte_carlo",
        _ENV_T + "test_reinforce_gradient_matches_finite_differences",
        _ENV_T + "test_cosine_schedules",
        _ENV_T + "test_acyclicity_check_agrees_with_closed_walks",
        _ENV_T + "test_state_indexing_and_relabelling",
        "untested: NAS-Bench results (91.61 / 73.49 / 46.77 % on NB201, 7 % pretraining data within 0.32 pp of "
        "full data, inverse control 9.5 %) — need the benchmarks and a pretrained GraphTransformer",
    ),
    extras={"figures": (("img/dgpo_graph.png", "Tiny 64-graph DAG space, T = 2: exact J(θ) during the code's "
                                               "sampled DGPO loop with +r and with the inverse reward −r (3 seeds)"),),
            "conformance_configs": lambda: [("edges=upper", {"edges": "upper"}),
                                            ("lambda_E=1,upper", {"lambda_E": 1.0, "edges": "upper"})],
            "train": train, "time_budget": time_budget, "slice_scale": slice_scale,
            "tabular_logits": tabular_logits, "logits_grad_to_theta": logits_grad_to_theta,
            "exact_reinforce_gradient": dd.reinforce_gradient, "exact_eager_gradient": dd.eager_gradient,
            "expected_reward": dd.expected_reward},
))

register(Spec(
    name="dgpo_graph_advantage", kind="tracker", family="classic-rl", paper=DGPO_PAPER, status="implemented",
    summary="DGPO's advantage: running (EMA α = 0.1) reward mean/std, updated with the batch first, then "
            "clip((r − μ̄)/σ̄, ±5); zero for a constant batch",
    fn=dgpo_advantage, config_cls=DGPOAdvantageConfig, equations=EQUATIONS[2:4], outputs=("adv", "state"),
    make_inputs=make_advantage_inputs,
    extras={"init_state": init_state, "update": update,
            "conformance_configs": lambda: [("alpha=0.5,clip=1", {"alpha": 0.5, "clip": 1.0})]},
    gradient="no loss of its own: A_b weights the eager loss slice (dgpo_graph)",
    properties=(
        _T + "test_advantage_bounded_and_zero_for_constant_batches: |A| ≤ 5; B < 2 or equal rewards give 0",
        _T + "test_update_is_pure_and_replays_the_code_loop: EMA replayed epoch by epoch, epoch-0 initialisation, "
             "empty batches",
        _T + "test_optimized_matches_reference",
    ),
))

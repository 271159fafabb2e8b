"""SPO: Segment Policy Optimization — segment-level Monte-Carlo advantages (SPO-chain and SPO-tree).

Guo, Xu, et al., "Segment Policy Optimization: Effective Segment-Level Credit Assignment in RL for Large
Language Models", arXiv 2505.23564 (May 2025; NeurIPS 2025). Official code: github.com/AIFrameResearch/SPO
(treetune-based). Not to be confused with :mod:`rlspec.reference.spo` (single-stream policy optimization).

Provenance: the paper's abstract and introduction were readable here (three components: segment partition,
segment advantage estimation, policy optimisation with a probability mask; SPO-chain for short CoT with
cutpoint-based partition and chain-based advantages; SPO-tree for long CoT with tree-based advantages). Each
formula below was read in the official code (file named in each equation of the registry entry); the
segment notation seg_k = [y_{t_k}, …, y_{t_{k+1}−1}] and "cutpoint = token with π(y_t|s_t) < ρ" agree with
third-party reviews of the paper.

Notation: a response y_0 … y_{L−1} (the valid tokens of a row; interior masked tokens are skipped),
s_t the state before token t (prompt + y_{<t}), π(y_t) = exp(old_logp_t) the sampling policy's probability
of the sampled token, R the response's final reward, V̂(s) a Monte-Carlo value estimate::

    V̂(s) = (1/N) Σ_j R(x, [y_{<t}, τ^(j)])       N continuations τ^(j) ~ π from s (:func:`mc_value`)

SPO-chain (short CoT):
  * cutpoints U = {t : π(y_t) < ρ} (ρ = 0.9 in the code) — the places where the sampled path could have
    gone elsewhere;
  * partition: segment boundaries t_0 = 0 and every ``interval``-th cutpoint u_0, u_int, u_2·int, … (the
    code keeps ``cutpoints[::cutpoint_interval]``, int5 by default), each boundary just before its
    low-probability token. Every segment after the first starts with a cutpoint and holds exactly
    ``interval`` cutpoints (the last one 1 … interval): the equal-count solution of the paper's
    min Σ_k |U ∩ seg_k|²;
  * values V̂(s_{t_k}) are estimated by MC at the boundaries only (inputs here, see ``values``);
    V̂(s_{t_K}) := R after the last token;
  * segment advantage  Â_k = V̂(s_{t_{k+1}}) − V̂(s_{t_k}), given to every token of seg_k; the sum
    telescopes: Σ_k Â_k = R − V̂(s_0);
  * probability mask  M_t = 1[π(y_t) < ρ]: only cutpoint tokens receive their segment's advantage, and
    the PPO loss is averaged over them (token mean over M; the code's trainer ANDs the mask into the
    action mask). ``loss_mask`` returns M.

SPO-tree (long CoT): responses are grown as a tree of fixed-length segments (code: M = 30 or 100 tokens
per segment, branching 6-6-6). A node is a segment; its value is its leaf reward R if it ended the
response, else the mean of its children's values (so every node's value is an MC estimate from its
descendants). The advantage of a non-root node c with parent p is ``rloo``: v_c − v_p, or ``grpo``:
(v_c − v_p)/(σ_p + ε) with σ_p the population std of p's children's values and ε = 1e-8. Every
non-root node (edge) is a training sample: its segment's tokens get its advantage (probability mask as
in the chain; the official trainer applies it to both instances).

Paper vs code, exposed as options (defaults = our reading of the paper):
  * ``code_first_segment`` (chain): the code estimates V̂(s_0) only when the first token is itself a
    cutpoint; otherwise the tokens before the first kept cutpoint get advantage 0. Those tokens all have
    π ≥ ρ, so under the probability mask both readings give the same loss (tested).
  * ``drop_zero_adv`` (tree): the code's ``only_adv_greater_than_zero=True`` keeps only edges whose
    advantage (plus a best-of-4 "prover" term of the same sign for rewards in [0, 1]) is non-zero.
  * ``whiten``: the official PPO trainer whitens the advantages over the loss-mask tokens by default
    (unbiased variance, ε = 1e-8 inside the square root); our notes of the paper show no whitening.
  * the code zeroes advantages where π > 0.9 and masks the loss where π < 0.9 is false; they differ only
    at π = 0.9 exactly, where we follow the paper's M_t = 1[π < ρ].

Defined cases: a row with no valid token has adv 0; a response with no cutpoint is one segment (adv
R − V̂(s_0), masked out entirely by the probability mask). Masked positions are never read; ``values`` are
read only at the segment starts (:func:`segment_starts`), so they may hold NaN elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_2d, as_mask, choice, fail, finite_vector, masked_array, positive
from rlspec.reference.registry import Equation, Paper, Spec, register
from rlspec.reference.reinforce_pp import batch_normalize

SPO_SEGMENT_PAPER = Paper(arxiv="2505.23564", title="Segment Policy Optimization: Effective Segment-Level Credit "
                          "Assignment in RL for Large Language Models", year=2025)
CODE = "AIFrameResearch/SPO"
CHAIN_FILE = "src/treetune/episode_generators/math_episode_generator_with_mc_advantages.py"
TREE_FILE = "src/treetune/episode_generators/tree_episode_generator.py"
HYBRID_FILE = "src/treetune/inference_strategies/hybrid_inference_strategy.py"
TRAINER_FILE = "src/treetune/trainers/ppo_trainer.py"
WHITEN_EPS = 1e-8  # masked_whiten in the official trainer (src/treetune/trainers/utils.py)


def _flag(value, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise fail(name, repr(value), "True or False")


@dataclass(frozen=True)
class SPOChainConfig:
    """rho ρ ≥ 0: cutpoint threshold π(y_t) < ρ (code: 0.9); interval ≥ 1: cutpoints per segment (int5);
    prob_mask: only cutpoint tokens carry advantage and count in the loss (paper: on);
    code_first_segment / whiten: the official code's variants (see module docstring)."""

    rho: float = 0.9
    interval: int = 5
    prob_mask: bool = True
    code_first_segment: bool = False
    whiten: bool = False

    def __post_init__(self) -> None:
        positive(self.rho, "rho", allow_zero=True)
        if isinstance(self.interval, bool) or not isinstance(self.interval, (int, np.integer)) or self.interval < 1:
            raise fail("interval", repr(self.interval), "an integer ≥ 1 (cutpoints per segment)")
        for k in ("prob_mask", "code_first_segment", "whiten"):
            _flag(getattr(self, k), k)


@dataclass(frozen=True)
class SPOTreeConfig:
    """rho / prob_mask as in the chain; method "rloo" (v_c − v_p, code default) or "grpo" (÷ (σ_p + eps));
    drop_zero_adv: the code's edge filter (only_adv_greater_than_zero); whiten: the trainer's whitening."""

    rho: float = 0.9
    prob_mask: bool = True
    method: str = "rloo"
    eps: float = 1e-8
    drop_zero_adv: bool = False
    whiten: bool = False

    def __post_init__(self) -> None:
        positive(self.rho, "rho", allow_zero=True)
        choice(self.method, "method", ("rloo", "grpo"))
        positive(self.eps, "eps", allow_zero=True)
        for k in ("prob_mask", "drop_zero_adv", "whiten"):
            _flag(getattr(self, k), k)


# --------------------------------------------------------------------------- Monte-Carlo value
def mc_value(rollout_rewards) -> np.ndarray:
    """V̂(s) = (1/N) Σ_j R_j over the last axis (…, N) → (…): the MC value from N continuations of s."""
    a = np.asarray(rollout_rewards, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] < 1:
        raise fail("rollout_rewards", f"shape {a.shape}", "shape (..., N) with N ≥ 1 continuations")
    if not np.isfinite(a).all():
        raise fail("rollout_rewards", "non-finite values", "finite rewards")
    return a.mean(axis=-1)


# --------------------------------------------------------------------------- SPO-chain: partition
def cutpoints(old_logp: np.ndarray, mask: np.ndarray, rho: float) -> np.ndarray:
    """U (B, T) bool: valid tokens with π(y_t) = exp(old_logp_t) < ρ (compared as old_logp < log ρ)."""
    with np.errstate(divide="ignore"):
        log_rho = np.log(rho)  # ρ = 0 → −inf: no cutpoint
    return mask & (old_logp < log_rho)


def segment_starts_row(cut: np.ndarray, interval: int, code_first_segment: bool = False) -> np.ndarray:
    """Step indices (K,) where segments start, for one row's steps (cut (L,) bool).

    Paper: t_0 = 0 and every ``interval``-th cutpoint (u_0, u_int, …). ``code_first_segment``: only the kept
    cutpoints (the code estimates no V̂(s_0) unless the first token is a cutpoint).
    """
    kept = np.flatnonzero(cut)[::interval]
    if code_first_segment or cut.size == 0:
        return kept
    return np.union1d([0], kept).astype(np.int64)


def chain_segment_advantages(V_starts: np.ndarray, R: float) -> np.ndarray:
    """Â_k = V̂(s_{t_{k+1}}) − V̂(s_{t_k}) (K,), with V̂ after the last segment := R."""
    return np.append(V_starts[1:], R) - V_starts


def _rows(old_logp, mask, config: SPOChainConfig):
    """Validated (B, T) mask, cleaned old_logp, cutpoints and per-row (steps, starts)."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    lp = masked_array(old_logp, "old_logp", M)
    U = cutpoints(lp, M, config.rho)
    rows = []
    for b in range(M.shape[0]):
        steps = np.flatnonzero(M[b])
        rows.append((steps, segment_starts_row(U[b, steps], config.interval, config.code_first_segment)))
    return M, U, rows


def segment_starts(old_logp, mask, config: SPOChainConfig | None = None) -> np.ndarray:
    """(B, T) bool: the positions t_k where the MC values V̂(s_{t_k}) are needed (and the only ones read)."""
    cfg = config or SPOChainConfig()
    M, _, rows = _rows(old_logp, mask, cfg)
    out = np.zeros(M.shape, bool)
    for b, (steps, starts) in enumerate(rows):
        out[b, steps[starts]] = True
    return out


def segment_index(old_logp, mask, config: SPOChainConfig | None = None) -> np.ndarray:
    """(B, T) int: the paper's segment k of each valid token (0 = the segment that starts at t_0); −1 at padding."""
    cfg = config or SPOChainConfig()
    M, U, _ = _rows(old_logp, mask, cfg)
    out = np.full(M.shape, -1, dtype=np.int64)
    for b in range(M.shape[0]):
        steps = np.flatnonzero(M[b])
        starts = segment_starts_row(U[b, steps], cfg.interval, False)
        out[b, steps] = np.searchsorted(starts, np.arange(steps.size), side="right") - 1
    return out


# --------------------------------------------------------------------------- SPO-chain: advantages
def spo_segment_advantage(rewards, old_logp, values, mask, config: SPOChainConfig | None = None):
    """SPO-chain token advantages and the probability mask.

    Args: rewards (B,) final rewards R; old_logp (B, T) log π(y_t) of the sampled tokens under the sampling
    policy; values (B, T) MC estimates V̂(s_t), read only where :func:`segment_starts` is True (finite
    there); mask (B, T) bool.
    Returns: (adv, loss_mask), both (B, T): adv = Â_k of the token's segment where loss_mask, 0 elsewhere;
    loss_mask = mask ∧ π < ρ (the probability mask; = mask with ``prob_mask=False``).
    """
    cfg = config or SPOChainConfig()
    M, U, rows = _rows(old_logp, mask, cfg)
    B = M.shape[0]
    R = finite_vector(rewards, "rewards", B)
    V = as_2d(values, "values")
    if V.shape != M.shape:
        raise fail("values", f"shape {V.shape}", f"the shape of mask, {M.shape}")
    A = np.zeros(M.shape)
    for b, (steps, starts) in enumerate(rows):
        if steps.size == 0:
            continue
        V_starts = V[b, steps[starts]]  # the only values read
        if not np.isfinite(V_starts).all():
            t = int(steps[starts][~np.isfinite(V_starts)][0])
            raise fail("values", f"a non-finite value {V[b, t]} at segment start ({b}, {t})",
                       "finite MC values at every segment start (see segment_starts)")
        seg = np.searchsorted(starts, np.arange(steps.size), side="right") - 1  # −1 before the first start (code)
        A_k = chain_segment_advantages(V_starts, R[b]) if starts.size else np.zeros(0)
        A[b, steps] = np.where(seg >= 0, A_k[np.maximum(seg, 0)] if starts.size else 0.0, 0.0)
    loss_mask = U if cfg.prob_mask else M
    A = np.where(loss_mask, A, 0.0)
    if cfg.whiten:
        A = batch_normalize(A, loss_mask, 1, WHITEN_EPS, "inside")
    return A, loss_mask


# --------------------------------------------------------------------------- SPO-tree
def tree_parents(parent, name: str = "parent") -> np.ndarray:
    """Validated parent indices (N,): −1 for a root, else 0 ≤ parent[i] < i (parents listed first)."""
    p = np.asarray(parent)
    if p.ndim != 1 or p.size == 0:
        raise fail(name, f"shape {p.shape}", "a non-empty 1-D array of parent indices (N,)")
    if not np.issubdtype(p.dtype, np.integer):
        raise fail(name, f"dtype {p.dtype}", "integer node indices")
    p = p.astype(np.int64)
    i = np.arange(p.size)
    bad = ~((p == -1) | ((p >= 0) & (p < i)))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise fail(name, f"parent[{j}] = {p[j]}", "−1 (a root) or an index smaller than the node's own")
    return p


def tree_node_values(parent, leaf_reward) -> np.ndarray:
    """v (N,): v = R at a leaf (a node with no child), the mean of its children's values elsewhere.

    ``leaf_reward`` (N,) is read only at leaves. A node whose children all have the same value gets exactly
    that value (no rounding residue, so their advantages are exactly 0).
    """
    p = tree_parents(parent)
    N = p.size
    r = np.asarray(leaf_reward, dtype=np.float64)
    if r.shape != (N,):
        raise fail("leaf_reward", f"shape {r.shape}", f"shape ({N},): one entry per node")
    n_children = np.bincount(p[p >= 0], minlength=N)
    leaf = n_children == 0
    if not np.isfinite(r[leaf]).all():
        j = int(np.flatnonzero(leaf & ~np.isfinite(r))[0])
        raise fail("leaf_reward", f"a non-finite value {r[j]} at leaf {j}", "finite rewards at every leaf")
    v = np.where(leaf, r, 0.0)
    for i in range(N - 1, -1, -1):  # children come after their parent
        if not leaf[i]:
            vc = v[p == i]
            v[i] = vc[0] if (vc == vc[0]).all() else vc.mean()
    return v


def tree_children_std(parent: np.ndarray, v: np.ndarray) -> np.ndarray:
    """σ_p (N,): population std of each node's children's values around its own value (0 at leaves)."""
    p = tree_parents(parent)
    kids = p >= 0
    n = np.bincount(p[kids], minlength=p.size)
    sq = np.bincount(p[kids], weights=(v[kids] - v[p[kids]]) ** 2, minlength=p.size)
    return np.sqrt(np.divide(sq, n, out=np.zeros(p.size), where=n > 0))


def tree_node_advantages(parent: np.ndarray, v: np.ndarray, method: str = "rloo", eps: float = 1e-8) -> np.ndarray:
    """Â_c (N,) = v_c − v_{p(c)} ("rloo") or (v_c − v_{p(c)}) / (σ_{p(c)} + ε) ("grpo"); 0 at roots."""
    p = tree_parents(parent)
    choice(method, "method", ("rloo", "grpo"))
    kids = p >= 0
    A = np.zeros(p.size)
    A[kids] = v[kids] - v[p[kids]]
    if method == "grpo":
        sd = tree_children_std(p, v)
        A[kids] = A[kids] / (sd[p[kids]] + eps)
    return A


def tree_training_nodes(parent: np.ndarray, A: np.ndarray, drop_zero_adv: bool = False) -> np.ndarray:
    """(N,) bool: the nodes that are training samples — every non-root node (code: only those with Â ≠ 0)."""
    keep = tree_parents(parent) >= 0
    return keep & (A != 0) if drop_zero_adv else keep


def spo_tree_advantage(parent, leaf_reward, node, old_logp, mask, config: SPOTreeConfig | None = None):
    """SPO-tree advantages for a batch whose row b is the segment of tree node ``node[b]``.

    Args: parent (N,) int (−1 for roots, parents before children; several trees form a forest);
    leaf_reward (N,) float, read at leaves only; node (B,) int, non-root node of each row; old_logp (B, T);
    mask (B, T) bool.
    Returns: (adv (B, T), loss_mask (B, T), node_values (N,), node_adv (N,)); adv is the row's node advantage
    where loss_mask (= mask ∧ kept node ∧ π < ρ), 0 elsewhere.
    """
    cfg = config or SPOTreeConfig()
    p = tree_parents(parent)
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    lp = masked_array(old_logp, "old_logp", M)
    nd = np.asarray(node)
    if nd.shape != (M.shape[0],) or not np.issubdtype(nd.dtype, np.integer):
        raise fail("node", f"shape {nd.shape}, dtype {nd.dtype}", f"({M.shape[0]},) integer node indices")
    if ((nd < 0) | (nd >= p.size)).any() or (p[np.clip(nd, 0, p.size - 1)] < 0).any():
        raise fail("node", f"indices {nd.tolist()}", f"non-root nodes in [0, {p.size}): a row is the segment of an edge")
    v = tree_node_values(p, leaf_reward)
    A_node = tree_node_advantages(p, v, cfg.method, cfg.eps)
    keep = tree_training_nodes(p, A_node, cfg.drop_zero_adv)
    loss_mask = M & keep[nd][:, None]
    if cfg.prob_mask:
        loss_mask &= cutpoints(lp, M, cfg.rho)
    A = np.where(loss_mask, A_node[nd][:, None], 0.0)
    if cfg.whiten:
        A = batch_normalize(A, loss_mask, 1, WHITEN_EPS, "inside")
    return A, loss_mask, v, A_node


# --------------------------------------------------------------------------- conformance inputs
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _token_logp(rng: np.random.Generator, B: int, T: int) -> np.ndarray:
    """Sampled-token log-probs: most tokens near-certain (π ∈ [0.9, 1]), some uncertain (π ∈ [0.05, 0.9))."""
    confident = rng.random((B, T)) < 0.6
    p = np.where(confident, rng.uniform(0.9, 1.0, size=(B, T)), rng.uniform(0.05, 0.9, size=(B, T)))
    return np.log(p)


def make_chain_inputs(rng: np.random.Generator) -> dict:
    """A chain batch: ragged rows, MC values in [0, 1] (NaN at valid non-start positions in half the draws),
    0/1 rewards, garbage padding; in 40% of the draws a non-default ρ ∈ {0.5, 0.95, 1.5} and interval ∈
    {1, 2, 3}, carried as config overrides (the NaN positions are chosen under that partition)."""
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 13))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    if rng.random() < 0.2:
        mask &= rng.random((B, T)) > 0.2
    overrides = {}
    if rng.random() < 0.4:
        overrides = {"rho": float(rng.choice([0.5, 0.95, 1.5])), "interval": int(rng.choice([1, 2, 3]))}
    logp = _token_logp(rng, B, T)
    values = rng.uniform(0.0, 1.0, size=(B, T))
    if rng.random() < 0.5:
        starts = segment_starts(np.where(mask, logp, 0.0), mask, SPOChainConfig(**overrides))
        values[mask & ~starts] = np.nan
    rewards = rng.integers(0, 2, size=B).astype(np.float64)
    logp[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    values[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    out = {"rewards": rewards, "old_logp": logp, "values": values, "mask": mask}
    return {**out, "config": overrides} if overrides else out


def random_tree(rng: np.random.Generator, max_depth: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A small forest (parent, leaf_reward): 1-2 roots, branching 1-3, early-stopped leaves, 0/1 or real rewards."""
    parent: list[int] = []
    depth: list[int] = []
    for _ in range(int(rng.integers(1, 3))):
        parent.append(-1)
        depth.append(0)
    i = 0
    while i < len(parent):
        stop = depth[i] >= max_depth or (depth[i] > 0 and rng.random() < 0.3)
        if not stop:
            for _ in range(int(rng.integers(1, 4))):
                parent.append(i)
                depth.append(depth[i] + 1)
        i += 1
    p = np.asarray(parent, dtype=np.int64)
    leaf = np.bincount(p[p >= 0], minlength=p.size) == 0
    r = rng.integers(0, 2, size=p.size).astype(np.float64) if rng.random() < 0.6 else rng.normal(size=p.size)
    return p, np.where(leaf, r, np.nan)  # internal entries are never read


def make_tree_inputs(rng: np.random.Generator) -> dict:
    """A forest and a batch of its edges (every non-root node once, shuffled, or a random subset)."""
    parent, leaf_reward = random_tree(rng)
    edges = np.flatnonzero(parent >= 0)
    if edges.size == 0:  # a lone root: add one child leaf
        parent, leaf_reward = np.array([-1, 0]), np.array([np.nan, 1.0])
        edges = np.array([1])
    node = rng.permutation(edges)[: int(rng.integers(1, edges.size + 1))]
    B, T = node.size, int(rng.integers(1, 9))
    mask = np.arange(T)[None, :] < rng.integers(0, T + 1, size=B)[:, None]
    logp = _token_logp(rng, B, T)
    logp[~mask] = rng.choice(GARBAGE, size=int((~mask).sum()))
    return {"parent": parent, "leaf_reward": leaf_reward, "node": node, "old_logp": logp, "mask": mask}


# --------------------------------------------------------------------------- registry
register(Spec(
    name="spo_segment", kind="advantage", family="advantage", paper=SPO_SEGMENT_PAPER, status="implemented",
    summary="SPO-chain: cutpoint-based segments, Monte-Carlo segment advantages V̂(s_{t_{k+1}}) − V̂(s_{t_k}), "
            "probability mask on low-probability tokens",
    fn=spo_segment_advantage, config_cls=SPOChainConfig, outputs=("adv", "loss_mask"),
    make_inputs=make_chain_inputs,
    extras={"segment_starts": segment_starts, "segment_index": segment_index, "mc_value": mc_value},
    equations=(
        Equation("spo-cutpoints", "U = {t : π(y_t ∣ s_t) < ρ},  ρ = 0.9", "arXiv 2505.23564, cutpoint-based "
                 "partition (SPO-chain)", "official-code", "cutpoints",
                 note=f"{CODE} {CHAIN_FILE} (_create_value_estimation_requests: probs < 0.9, boundary one token "
                      "before); threshold definition also in third-party reviews"),
        Equation("spo-partition", "t_0 = 0, t_k = u_{(k−1)·int} (every int-th cutpoint): equal cutpoint counts "
                 "per segment", "arXiv 2505.23564, cutpoint-based partition", "official-code",
                 "segment_starts_row", note=f"{CODE} {CHAIN_FILE}: cutpoints[::cutpoint_interval], int5 default "
                                            "(README 'SPO-chain (int5)'); the paper's min Σ|U ∩ seg_k|² from notes"),
        Equation("spo-mc-value", "V̂(s) = (1/N) Σ_j R(x, [y_{<t}, τ^(j)])", "arXiv 2505.23564, MC segment "
                 "advantage estimation", "official-code", "mc_value",
                 note=f"{CODE} {CHAIN_FILE} (_compute_mc_value: mean of N rollout rewards; N = 9 in the "
                      "configs); here the values are inputs"),
        Equation("spo-chain-adv", "Â_k = V̂(s_{t_{k+1}}) − V̂(s_{t_k}),  V̂(s_{t_K}) = R", "arXiv 2505.23564, "
                 "chain-based advantage estimation", "official-code", "chain_segment_advantages",
                 note=f"{CODE} {CHAIN_FILE} (_compute_token_advantages); code variant for the first segment: "
                      "code_first_segment"),
        Equation("spo-prob-mask", "M_t = 1[π(y_t) < ρ];  L = Σ_t M_t ℓ_t^PPO / Σ_t M_t",
                 "arXiv 2505.23564, probability-mask policy optimisation", "official-code", "spo_segment_advantage",
                 note=f"{CODE} {TRAINER_FILE} (use_prob_mask: action_mask ∧ exp(old_logp) < 0.9, masked_mean); "
                      "the generator also zeroes adv where π > 0.9; whitening (trainer default) = whiten"),
    ),
    properties=(
        "properties/test_spo_segment.py::test_chain_advantages_telescope: Σ_k Â_k = R − V̂(s_0)",
        "properties/test_spo_segment.py::test_partition_has_equal_cutpoint_counts: int cutpoints per segment "
        "(first 0, last 1..int), each segment after the first starts at a cutpoint",
        "properties/test_spo_segment.py::test_probability_mask_keeps_only_cutpoint_tokens: M_t = 1[π < ρ]",
        "properties/test_spo_segment.py::test_no_cutpoint_is_trajectory_level: one segment, Â = R − V̂(s_0)",
        "properties/test_spo_segment.py::test_every_token_a_segment_is_token_level_td: equals GAE(γ=1, λ=0)",
        "properties/test_spo_segment.py::test_code_first_segment_agrees_under_probability_mask: the code's first "
        "segment (no V̂(s_0)) gives the same outputs under the probability mask",
        "properties/test_spo_segment.py::test_values_read_only_at_segment_starts: NaN elsewhere changes nothing",
        "properties/test_spo_segment.py::test_mc_value_is_unbiased: E[V̂(s)] = V^π(s), exact enumeration",
        "properties/test_spo_segment.py::test_padding_is_never_read: garbage padding changes nothing",
        "properties/test_spo_segment.py::test_optimized_matches_reference: torch chain equals the reference",
        "untested: SPO-chain improves GSM8K accuracy by 6-12 points over PPO and GRPO — an LLM-scale experiment",
    ),
))

register(Spec(
    name="spo_segment_tree", kind="advantage", family="advantage", paper=SPO_SEGMENT_PAPER, status="implemented",
    summary="SPO-tree: node value = mean of children (leaf = reward), advantage v(child) − v(parent) per "
            "segment node, probability mask",
    fn=spo_tree_advantage, config_cls=SPOTreeConfig, outputs=("adv", "loss_mask", "node_values", "node_adv"),
    make_inputs=make_tree_inputs,
    extras={"tree_node_values": tree_node_values, "tree_node_advantages": tree_node_advantages,
            "conformance_configs": lambda: [("method=grpo", {"method": "grpo"}),
                                            ("grpo,drop-zero", {"method": "grpo", "drop_zero_adv": True})]},
    equations=(
        Equation("spo-tree-value", "v(leaf) = R;  v(n) = mean_{c ∈ C(n)} v(c)", "arXiv 2505.23564, "
                 "tree-based advantage estimation", "official-code", "tree_node_values",
                 note=f"{CODE} {HYBRID_FILE} (_construct_tree: node reward = np.mean of children)"),
        Equation("spo-tree-adv", "Â_c = v(c) − v(p)  (rloo);  (v(c) − v(p))/(σ_p + 1e-8)  (grpo)",
                 "arXiv 2505.23564, tree-based advantage estimation", "official-code", "tree_node_advantages",
                 note=f"{CODE} {TREE_FILE} (extract_edges_from_tree; σ_p = np.std of the children, population); "
                      "rloo is the code default; only_adv_greater_than_zero (default True) = drop_zero_adv"),
        Equation("spo-prob-mask", "M_t = 1[π(y_t) < ρ] on each edge's segment", "arXiv 2505.23564",
                 "official-code", "spo_tree_advantage",
                 note=f"{CODE} {TRAINER_FILE}: use_prob_mask is on for the tree configs too (they import the chain "
                      "config)"),
    ),
    properties=(
        "properties/test_spo_segment.py::test_tree_parent_value_is_mean_of_children: v(p) = mean_c v(c), v(leaf) = R",
        "properties/test_spo_segment.py::test_tree_root_value_is_path_weighted_leaf_mean: v(n) = Σ_ℓ R_ℓ Π_a 1/#C(a)",
        "properties/test_spo_segment.py::test_tree_sibling_advantages_sum_to_zero: Σ_c (v_c − v_p) = 0",
        "properties/test_spo_segment.py::test_tree_grpo_siblings_are_standardized: grpo siblings have mean 0, std ≈ 1",
        "properties/test_spo_segment.py::test_tree_value_is_unbiased: E[v(n)] = V^π(s_n), exact enumeration",
        "properties/test_spo_segment.py::test_tree_every_edge_is_a_training_sample: every non-root node is a row's "
        "advantage (drop_zero_adv: only Â ≠ 0)",
        "properties/test_spo_segment.py::test_tree_optimized_matches_reference: torch tree equals the reference",
        "untested: SPO-tree improves MATH500 accuracy by 7-11 points over GRPO under 2K/4K context — an "
        "LLM-scale experiment",
        "untested: the tree reduces the cost of MC estimation — a sampling-budget claim, not a property of "
        "the advantage function",
    ),
))

"""IB-TPO: Information-Bottleneck driven Tree-based Policy Optimization (partial).

Zhang, Jiang, Li, Xu, Chen et al., "Long Live The Balance: Information Bottleneck Driven Tree-based Policy
Optimization", arXiv 2605.28109 (ICML 2026). Official code: github.com/alibaba/EfficientRL — read: it holds only
a README ("Code coming soon") and an overview figure (IB-Score from the children's p(s) and p(a*|s) against
p(a*|s_{i−1}); IB-guided branching at the highest-scoring nodes; global A_GL(q → s) and local A_IB(s_p → s)
step advantages).

Provenance, honestly: the abstract (read) fixes the ideas — an IB-Score trading step-level reasoning diversity
against mutual information with the correct answer, an IB-guided tree sampler that reuses the tree for a Monte
Carlo estimate of the score, and step advantages. The exact forms come from our notes (papers_B.md §7), taken
from a detailed third-party note on the paper: ``secondary``. Not recovered (hence ``partial``): how π_θ(s) of
a multi-token step is defined (raw product or length-normalized — an INPUT here, see ``step_probability``), the
Tsallis-entropy derivation of the −(1 + 1/β) offset, the std convention of A_GL, how tokens shared by several
trajectories (prefixes) are weighted in the loss (here: every trajectory is a row, its prefix repeated), and what
happens when p̂(a*|parent) = 0 (here: ratio := ``zero_parent_ratio`` = 1, "no information").

Where it sits in the pipeline: ROLLOUTS (the IB-guided tree sampler decides where to branch, ``ibtree_grow``)
→ ADVANTAGE (step advantages reusing the tree's estimates, ``ib_tpo_advantage``) → GRPO clipped loss + KL.

Setting and notation: one tree per prompt; nodes are reasoning steps (split on blank lines), numbered so that
parent[j] < j; roots (parent −1) are the queries q and carry no tokens. Each trajectory τ (a batch row) is the
path from a root to a leaf (a node without children); leaf[b] names it, R(τ_b) ∈ [0, 1] is its reward.

    p̂(a*|s)   = mean of R(τ) over the trajectories through s             (the tree's MC estimate)
    ρ(s)      = p̂(a*|s)/p̂(a*|s_p)                                        information ratio to the parent
    η1(s)     = ρ(s) − (1 + 1/β),    η2(s) = π_θ(s)
    J_IB(s_i) ≈ (1 + β)/B Σ_{b=1}^{B} η1(s_i^b) η2(s_i^b)                 IB-Score of node s_i over its B children
              = (1 + β)[Cov(η1, η2) + mean(η1)·mean(η2)]                 (population moments over the children)
    IBTree    : B0 independent rollouts from the root, then L − 1 rounds that each branch B new rollouts from
                the K non-leaf nodes of highest IB-Score; G = B0 + (L − 1)·K·B trajectories
    A_GL(s)   = (p̂(a*|s) − p̂(a*|q))/(std{R(τ)} + ε)                     global step advantage (tree's trajectories)
    A_IB(s)   = (ρ(s) − (1 + 1/β))·π_ref(s)                               local step advantage
    A(s)      = A_GL(s) + λ A_IB(s);  every token of step s in trajectory τ gets A(s)

The objective it approximates: J_IB(τ) = (β + 1) H(τ|q) − β H(τ|a*, q) = H(τ|q) + β I(τ; a*|q), decomposed per step
by the chain rule (``ib_objective`` computes the per-step terms on an exact tree; a property test checks that
they add up to the trajectory-level value). Our own note on the offset: with the Tsallis-2 entropy 1 − Σ p² and
the cross form 1 − Σ_b π_b π(s_b|a*) for the a*-conditional one, (β + 1)H₂ − βH₂(·|a*) = 1 + β Σ_b π_b² η1(s_b),
which is the −(1 + 1/β) offset; the notes' (1 + β) factor differs from this β by a positive scale (same
ranking). This is a reconstruction, not the paper's text.

Defaults (secondary): β = 5, λ = 0.1, (B0, L, K, B) = (4, 9, 1, 1) ⇒ G = 12; KL 0.001, lr 1e-6, temperature 0.7.

Defined cases: a tree whose rewards are all equal has A_GL ≡ 0; roots get advantage 0 and ρ = 1; a node with
p̂(a*|s_p) = 0 gets ρ = ``zero_parent_ratio``; nodes without children have IB-Score 0 and are not eligible for
branching; masked tokens and tokens with node −1 get 0 and are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, fail, finite_vector, group_ids, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

IBTPO_PAPER = Paper(arxiv="2605.28109", title="Long Live The Balance: Information Bottleneck Driven Tree-based "
                    "Policy Optimization", year=2026)


@dataclass(frozen=True)
class IBTPOConfig:
    """IB-TPO step advantage. beta: β > 0 of the IB objective (5, secondary). lam: λ ≥ 0 weight of the local
    advantage (0.1, secondary; 0.5 reported to collapse). ddof / eps: std of the tree's rewards in A_GL (0 / 1e-6,
    reconstructed). zero_parent_ratio: ρ when p̂(a*|parent) = 0 (1.0 = no information, reconstructed)."""

    beta: float = 5.0
    lam: float = 0.1
    ddof: int = 0
    eps: float = 1e-6
    zero_parent_ratio: float = 1.0

    def __post_init__(self) -> None:
        positive(self.beta, "beta")
        positive(self.lam, "lam", allow_zero=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)
        positive(self.zero_parent_ratio, "zero_parent_ratio", allow_zero=True)


@dataclass(frozen=True)
class IBTreeConfig:
    """IBTree sampler: B0 root rollouts, L rounds in all, K nodes branched per round, B rollouts per branch
    ((4, 9, 1, 1), secondary); beta and zero_parent_ratio as in :class:`IBTPOConfig` (for the IB-Score)."""

    B0: int = 4
    L: int = 9
    K: int = 1
    B: int = 1
    beta: float = 5.0
    zero_parent_ratio: float = 1.0

    def __post_init__(self) -> None:
        for name in ("B0", "L", "K", "B"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < (1 if name in ("B0", "L") else 0):
                raise fail(name, repr(v), "an integer ≥ 1" if name in ("B0", "L") else "an integer ≥ 0")
        positive(self.beta, "beta")
        positive(self.zero_parent_ratio, "zero_parent_ratio", allow_zero=True)


# --------------------------------------------------------------------------- tree structure
def validate_parent(parent) -> np.ndarray:
    """parent (N,) int: −1 for a root, else an index < the node's own (nodes numbered in creation order)."""
    p = np.asarray(parent)
    if p.ndim != 1 or not np.issubdtype(p.dtype, np.integer):
        raise fail("parent", f"{p.dtype} array of shape {p.shape}", "a 1-D integer array (−1 for roots)")
    bad = (p < -1) | (p >= np.arange(p.size))
    if bad.any():
        j = int(np.argmax(bad))
        raise fail("parent", f"parent[{j}] = {int(p[j])}", "−1 (root) or an index smaller than the node's own")
    return p.astype(np.int64)


def has_children(parent: np.ndarray) -> np.ndarray:
    """(N,) bool: the node is some node's parent (a non-leaf, eligible for branching)."""
    out = np.zeros(parent.size, bool)
    out[parent[parent >= 0]] = True
    return out


def root_of(parent: np.ndarray) -> np.ndarray:
    """(N,) the root (query) above each node (itself for a root)."""
    r = np.arange(parent.size)
    for j in range(parent.size):
        if parent[j] >= 0:
            r[j] = r[parent[j]]
    return r


def validate_leaves(leaf, parent: np.ndarray, n_rows: int) -> np.ndarray:
    """leaf (B,) int: each row's last step, a node without children."""
    lf = np.asarray(leaf)
    if lf.shape != (n_rows,) or not np.issubdtype(lf.dtype, np.integer):
        raise fail("leaf", f"{lf.dtype} array of shape {lf.shape}", f"({n_rows},) integer node ids")
    if ((lf < 0) | (lf >= parent.size)).any():
        raise fail("leaf", f"a node id outside [0, {parent.size})", "node ids of the tree")
    inner = has_children(parent)[lf] | (parent[lf] < 0)
    if inner.any():
        b = int(np.argmax(inner))
        raise fail("leaf", f"leaf[{b}] = {int(lf[b])}, a node with children or a root", "a leaf step of the tree")
    return lf.astype(np.int64)


def through(parent: np.ndarray, leaf: np.ndarray) -> np.ndarray:
    """(B, N) bool: node s lies on trajectory b's path (an ancestor of leaf[b], or the leaf itself)."""
    out = np.zeros((leaf.size, parent.size), bool)
    for b, s in enumerate(leaf):
        while s >= 0:
            out[b, s] = True
            s = parent[s]
    return out


def tree_values(parent: np.ndarray, leaf: np.ndarray, rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p̂ (N,), count (N,)): p̂(a*|s) = mean reward of the trajectories through s; every node needs one."""
    on = through(parent, leaf)  # (B, N)
    count = on.sum(axis=0)
    if (count == 0).any():
        j = int(np.argmax(count == 0))
        raise fail("leaf", f"no trajectory through node {j}", "every node of the tree on some row's path")
    return (on * rewards[:, None]).sum(axis=0) / count, count


def info_ratio(p_hat: np.ndarray, parent: np.ndarray, zero_parent_ratio: float = 1.0) -> np.ndarray:
    """ρ (N,) = p̂(a*|s)/p̂(a*|s_p); roots 1; a parent with p̂ = 0 gives ``zero_parent_ratio``."""
    pp = np.where(parent >= 0, p_hat[np.maximum(parent, 0)], 1.0)
    return np.where(parent < 0, 1.0, np.divide(p_hat, pp, out=np.full(p_hat.shape, float(zero_parent_ratio)),
                                               where=pp > 0))


def eta1(rho: np.ndarray, beta: float) -> np.ndarray:
    """η1(s) = ρ(s) − (1 + 1/β)."""
    return rho - (1.0 + 1.0 / beta)


def ib_score(p_hat: np.ndarray, parent: np.ndarray, pi: np.ndarray, beta: float = 5.0,
             zero_parent_ratio: float = 1.0) -> np.ndarray:
    """J_IB (N,): (1 + β)/B_s Σ_{children c} η1(c) π_θ(c) for nodes with B_s ≥ 1 children; 0 for leaves."""
    e = eta1(info_ratio(p_hat, parent, zero_parent_ratio), beta) * pi  # (N,) η1·η2 per child
    tot = np.zeros(parent.size)
    cnt = np.zeros(parent.size)
    kids = parent >= 0
    np.add.at(tot, parent[kids], e[kids])
    np.add.at(cnt, parent[kids], 1.0)
    return (1.0 + beta) * np.divide(tot, cnt, out=np.zeros_like(tot), where=cnt > 0)


def select_top_k(score: np.ndarray, eligible: np.ndarray, K: int) -> np.ndarray:
    """Indices of the K eligible nodes of highest score (ties: lower index first); fewer if fewer are eligible."""
    idx = np.flatnonzero(eligible)
    order = np.lexsort((idx, -score[idx]))  # primary: −score, secondary: index
    return idx[order[:K]]


def step_probability(token_logp: Sequence[float], mode: str = "geo-mean") -> float:
    """π(s) of a multi-token step from its token log-probs: exp(mean) ("geo-mean", length-normalized, our
    reconstruction) or exp(sum) ("product"); the paper's choice was not recovered."""
    lp = finite_vector(token_logp, "token_logp")
    if lp.size == 0:
        raise fail("token_logp", "an empty step", "at least one token")
    if mode not in ("geo-mean", "product"):
        raise fail("mode", repr(mode), "'geo-mean' or 'product'")
    return float(np.exp(lp.mean() if mode == "geo-mean" else lp.sum()))


# --------------------------------------------------------------------------- advantages
def global_advantage(p_hat: np.ndarray, parent: np.ndarray, leaf: np.ndarray, rewards: np.ndarray,
                     ddof: int = 0, eps: float = 1e-6) -> np.ndarray:
    """A_GL (N,) = (p̂(a*|s) − p̂(a*|q))/(std{R(τ) : τ in s's tree} + ε); roots 0; all-equal rewards ⇒ 0."""
    roots = root_of(parent)
    out = np.zeros(parent.size)
    for q in np.unique(roots):
        nodes = roots == q
        R = rewards[roots[leaf] == q]
        if R.size == 0 or (R == R[0]).all():
            continue
        sd = R.std(ddof=ddof) if R.size > ddof else 0.0
        out[nodes] = np.divide(p_hat[nodes] - p_hat[q], sd + eps) if sd + eps > 0 else 0.0
    return np.where(parent < 0, 0.0, out)


def local_advantage(rho: np.ndarray, pi_ref: np.ndarray, parent: np.ndarray, beta: float = 5.0) -> np.ndarray:
    """A_IB (N,) = (ρ(s) − (1 + 1/β))·π_ref(s); roots 0."""
    return np.where(parent < 0, 0.0, eta1(rho, beta) * pi_ref)


def step_advantage(p_hat, parent, leaf, rewards, pi_ref, cfg: IBTPOConfig) -> np.ndarray:
    """A (N,) = A_GL + λ A_IB (roots 0)."""
    rho = info_ratio(p_hat, parent, cfg.zero_parent_ratio)
    return (global_advantage(p_hat, parent, leaf, rewards, cfg.ddof, cfg.eps)
            + cfg.lam * local_advantage(rho, pi_ref, parent, cfg.beta))


def _validate_probs(x, name: str, N: int) -> np.ndarray:
    a = finite_vector(x, name, N)
    if (a < 0).any():
        raise fail(name, f"a negative value {a.min()}", "step probabilities ≥ 0")
    return a


def _validate_rewards(rewards, n: int) -> np.ndarray:
    R = finite_vector(rewards, "rewards", n)
    if ((R < 0) | (R > 1)).any():
        raise fail("rewards", f"a value outside [0, 1] ({R[(R < 0) | (R > 1)][0]})",
                   "rewards in [0, 1] (p̂(a*|s) is a success probability)")
    return R


def ib_tpo_signals(rewards, group, mask, config: IBTPOConfig | None = None, *, parent, leaf, node, pi_ref):
    """dict: adv (B, T), step_adv (N,), p_hat (N,), a_gl (N,), a_ib (N,)."""
    cfg = config or IBTPOConfig()
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    B = M.shape[0]
    R = _validate_rewards(rewards, B)
    g = group_ids(group, B)
    par = validate_parent(parent)
    lf = validate_leaves(leaf, par, B)
    pr = _validate_probs(pi_ref, "pi_ref", par.size)
    roots = root_of(par)[lf]
    for key in np.unique(g):  # one group = one tree
        if np.unique(roots[g == key]).size > 1:
            raise fail("group", f"prompt id {key} spanning several trees", "one tree (root) per prompt id")
    for q in np.unique(roots):
        if np.unique(g[roots == q]).size > 1:
            raise fail("group", f"tree {q} split over several prompt ids", "one prompt id per tree")
    nd = np.asarray(node)
    if nd.shape != M.shape or not np.issubdtype(nd.dtype, np.integer):
        raise fail("node", f"{nd.dtype} array of shape {nd.shape}", f"integer step ids of shape {M.shape}")
    nd = np.where(M, nd, -1).astype(np.int64)
    live = M & (nd >= 0)
    on = through(par, lf)  # (B, N)
    ok = np.ones(M.shape, bool)
    b_idx, t_idx = np.nonzero(live)
    s = np.minimum(nd[b_idx, t_idx], par.size - 1)  # clipped only to index safely; out-of-range ids fail below
    ok[b_idx, t_idx] = (nd[b_idx, t_idx] < par.size) & on[b_idx, s] & (par[s] >= 0)
    if not ok.all():
        b, t = np.argwhere(~ok)[0]
        raise fail("node", f"node[{b}, {t}] = {int(nd[b, t])}", f"−1 or a (non-root) step on row {b}'s path")
    p_hat, _ = tree_values(par, lf, R)
    rho = info_ratio(p_hat, par, cfg.zero_parent_ratio)
    a_gl = global_advantage(p_hat, par, lf, R, cfg.ddof, cfg.eps)
    a_ib = local_advantage(rho, pr, par, cfg.beta)
    A = a_gl + cfg.lam * a_ib  # (N,)
    adv = np.where(live, A[np.maximum(nd, 0)], 0.0)
    return {"adv": adv, "step_adv": A, "p_hat": p_hat, "a_gl": a_gl, "a_ib": a_ib}


def ib_tpo_advantage(rewards, group, mask, config: IBTPOConfig | None = None, *, parent, leaf, node, pi_ref):
    """IB-TPO token advantages (B, T): A(s) of each token's step, 0 at masked tokens and node −1.

    Args: rewards (B,) trajectory rewards in [0, 1]; group (B,) prompt ids (one tree per id); mask (B, T) bool;
    parent (N,) tree (parent[j] < j, roots −1 are the queries); leaf (B,) each row's last step; node (B, T) the
    step of each token (−1 = not a step token); pi_ref (N,) π_ref of each step (roots ignored).
    """
    return ib_tpo_signals(rewards, group, mask, config, parent=parent, leaf=leaf, node=node, pi_ref=pi_ref)["adv"]


def ib_tpo_score(parent, leaf, rewards, pi, config: IBTreeConfig | None = None):
    """The sampler's view: (p̂ (N,), IB-Score (N,), eligible (N,) bool = non-leaf nodes one may branch from).

    Args: parent (N,); leaf (G,) the leaves of the trajectories sampled so far; rewards (G,) in [0, 1];
    pi (N,) π_θ of each step (roots ignored)."""
    cfg = config or IBTreeConfig()
    par = validate_parent(parent)
    if np.ndim(leaf) != 1:
        raise fail("leaf", f"shape {np.shape(leaf)}", "a 1-D array of leaf node ids")
    lf = validate_leaves(leaf, par, len(leaf))
    R = _validate_rewards(rewards, lf.size)
    p = _validate_probs(pi, "pi", par.size)
    p_hat, _ = tree_values(par, lf, R)
    return p_hat, ib_score(p_hat, par, p, cfg.beta, cfg.zero_parent_ratio), has_children(par)


# --------------------------------------------------------------------------- the sampler (needs the model)
@dataclass(frozen=True)
class Tree:
    """A grown tree: parent (N,), payload (N,) (root: the query), n_tokens (N,), pi (N,), leaf (G,), rewards (G,),
    selected: one array of branched node ids per round after the first."""

    parent: np.ndarray
    payload: tuple
    n_tokens: np.ndarray
    pi: np.ndarray
    leaf: np.ndarray
    rewards: np.ndarray
    selected: tuple


def ibtree_grow(query: Any, sample_fn: Callable[[list, np.random.Generator], tuple], rng: np.random.Generator,
                config: IBTreeConfig | None = None) -> Tree:
    """Grow an IBTree (the rollout stage): B0 rollouts from the root, then L − 1 rounds of B rollouts from each of
    the top-K non-leaf nodes by IB-Score (computed from the tree so far). ``sample_fn(prefix, rng)`` is the
    user's model: given the path's payloads [query, step_1, …, step_d] it returns (steps, reward) with steps a
    non-empty list of (payload, n_tokens, π_θ) for the continuation to the end, reward in [0, 1]. Prefixes are
    shared, never regenerated."""
    cfg = config or IBTreeConfig()
    parent, payload, n_tok, pi = [-1], [query], [0], [1.0]
    leaf, rewards, selected = [], [], []

    def rollout(start: int) -> None:
        prefix, s = [], start
        while s >= 0:
            prefix.append(payload[s])
            s = parent[s]
        steps, reward = sample_fn(prefix[::-1], rng)
        if len(steps) == 0:
            raise fail("sample_fn", "an empty continuation", "at least one step")
        prev = start
        for item, ntok, p in steps:
            parent.append(prev)
            payload.append(item)
            n_tok.append(int(ntok))
            pi.append(float(p))
            prev = len(parent) - 1
        leaf.append(prev)
        rewards.append(float(reward))

    for _ in range(cfg.B0):
        rollout(0)
    for _ in range(cfg.L - 1):
        par = np.asarray(parent)
        _, score, eligible = ib_tpo_score(par, np.asarray(leaf), np.asarray(rewards), np.asarray(pi), cfg)
        pick = select_top_k(score, eligible, cfg.K)
        selected.append(pick)
        for s in pick:
            for _ in range(cfg.B):
                rollout(int(s))
    return Tree(np.asarray(parent), tuple(payload), np.asarray(n_tok), np.asarray(pi), np.asarray(leaf),
                np.asarray(rewards), tuple(selected))


def token_budget(parent: np.ndarray, n_tokens: np.ndarray, leaf: np.ndarray) -> tuple[int, int]:
    """(tokens generated by the tree = Σ_nodes n_tokens, tokens the same G trajectories cost sampled
    independently = Σ_τ path length); the first never exceeds the second (prefix sharing)."""
    on = through(validate_parent(parent), np.asarray(leaf))
    return int(np.asarray(n_tokens).sum()), int((on * np.asarray(n_tokens)[None, :]).sum())


# --------------------------------------------------------------------------- the objective on an exact tree
def ib_objective(parent, cond_prob, p_correct, beta: float = 5.0) -> tuple[float, np.ndarray]:
    """(J_IB, per-node terms (N,)) of J_IB = (β + 1) H(τ|q) − β H(τ|a*, q) on an EXACT single-root tree.

    cond_prob (N,): π(s | parent(s)) (children of each node sum to 1; root ignored); p_correct (N,): p(a*|s) at
    the leaves (inner nodes ignored, recomputed). Per-node term of inner node s: (β + 1) P(s) H(C|s) −
    β P(s|a*) H(C|s, a*) with π(c|s, a*) = π(c|s) p(a*|c)/p(a*|s) (the chain rule over steps)."""
    par = validate_parent(parent)
    if (par < 0).sum() != 1 or par[0] != -1:
        raise fail("parent", "several roots or a root other than node 0", "one tree rooted at node 0")
    pi = finite_vector(cond_prob, "cond_prob", par.size)
    pc = finite_vector(p_correct, "p_correct", par.size)
    inner = has_children(par)
    p = np.where(inner, 0.0, pc)
    for j in range(par.size - 1, 0, -1):  # p(a*|s) = Σ_c π(c|s) p(a*|c), bottom-up (children have larger ids)
        p[par[j]] += pi[j] * p[j] if inner[par[j]] else 0.0
    reach = np.zeros(par.size)
    reach_a = np.zeros(par.size)
    reach[0], reach_a[0] = 1.0, 1.0
    for j in range(1, par.size):
        reach[j] = reach[par[j]] * pi[j]
        reach_a[j] = reach_a[par[j]] * (pi[j] * p[j] / p[par[j]] if p[par[j]] > 0 else 0.0)
    terms = np.zeros(par.size)
    for s in np.flatnonzero(inner):
        c = np.flatnonzero(par == s)
        h = -np.sum(np.where(pi[c] > 0, pi[c] * np.log(np.where(pi[c] > 0, pi[c], 1.0)), 0.0))
        q = pi[c] * p[c] / p[s] if p[s] > 0 else np.zeros(c.size)
        ha = -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0))
        terms[s] = (beta + 1.0) * reach[s] * h - beta * reach_a[s] * ha
    return float(terms.sum()), terms


# --------------------------------------------------------------------------- inputs and registry
GARBAGE = (np.nan, np.inf, -np.inf, 1e30)


def _random_forest(rng: np.random.Generator, n_trees: int):
    """(parent, leaf, rows' tree id): small trees grown by random branching, 2–5 trajectories each."""
    parent: list[int] = []
    leaf, tree_of = [], []
    for q in range(n_trees):
        root = len(parent)
        parent.append(-1)
        for _ in range(int(rng.integers(1, 5))):
            depth_nodes = [root]
            s = root
            while True:  # walk down existing inner nodes, then branch off with a fresh path
                kids = [j for j in range(len(parent)) if parent[j] == s and any(parent[c] == j for c in
                                                                                 range(len(parent)))]
                if kids and rng.random() < 0.6:
                    s = int(rng.choice(kids))
                    depth_nodes.append(s)
                    continue
                break
            for _ in range(int(rng.integers(1, 4))):
                parent.append(s)
                s = len(parent) - 1
            leaf.append(s)
            tree_of.append(q)
    return np.asarray(parent), np.asarray(leaf), np.asarray(tree_of)


def _advantage_inputs(rng: np.random.Generator) -> dict:
    parent, leaf, tree_of = _random_forest(rng, int(rng.integers(1, 4)))
    B, N = leaf.size, parent.size
    on = through(parent, leaf)
    lens = rng.integers(1, 4, size=N)
    T = int(max(((on * lens[None, :]) * (parent >= 0)[None, :]).sum(axis=1).max(), 1)) + int(rng.integers(0, 3))
    mask = np.zeros((B, T), bool)
    node = rng.integers(-5, 90, size=(B, T))
    for b in range(B):
        t = 0
        for s in np.flatnonzero(on[b]):
            if parent[s] < 0:
                continue
            for _ in range(int(lens[s])):
                mask[b, t], node[b, t], t = bool(rng.random() < 0.9), s, t + 1
    rewards = rng.integers(0, 2, size=B).astype(np.float64)
    if rng.random() < 0.3:
        rewards = rng.uniform(0.0, 1.0, size=B)
    return {"rewards": rewards, "group": tree_of * 3 + 1, "mask": mask, "parent": parent, "leaf": leaf,
            "node": node, "pi_ref": rng.uniform(0.05, 1.0, size=N)}


def _score_inputs(rng: np.random.Generator) -> dict:
    parent, leaf, _ = _random_forest(rng, int(rng.integers(1, 3)))
    rewards = rng.integers(0, 2, size=leaf.size).astype(np.float64)
    return {"parent": parent, "leaf": leaf, "rewards": rewards, "pi": rng.uniform(0.05, 1.0, size=parent.size)}


_SRC = ("arXiv 2605.28109 abstract (read) and the official README figure (read: alibaba/EfficientRL, code not "
        "released); the formula is from our notes (papers_B.md §7), taken from a detailed third-party note")
MISSING = ("π_θ(s) of a multi-token step (an input; geo-mean helper is ours); the Tsallis derivation of the "
           "−(1 + 1/β) offset; A_GL's std convention and ε; the weighting of prefix tokens shared by several "
           "trajectories (rows repeat their prefix here); ρ when p̂(a*|parent) = 0; the official code is unreleased")
EQUATIONS = (
    Equation("ibtpo-objective", "J_IB(τ) = (β + 1) H(τ|q) − β H(τ|a*, q), decomposed per step",
             "IB objective (method not read); abstract", "secondary", "ib_objective",
             note=_SRC + "; per-step chain rule is ours"),
    Equation("ibtpo-p-hat", "p̂(a*|s) = fraction of correct trajectories through s", "IB-TPO method (not read)", "secondary",
             "tree_values", note=_SRC),
    Equation("ibtpo-score", "J_IB(s_i) ≈ (1 + β)/B Σ_b η1(s_i^b) η2(s_i^b), η1 = p̂(a*|s)/p̂(a*|s_p) − (1 + 1/β), "
             "η2 = π_θ(s)", "IB-TPO method (not read); README figure", "secondary", "ib_score",
             note=_SRC + "; the figure shows the score built from p(s_i^k) and p(a*|s_i^k) against p(a*|s_{i−1})"),
    Equation("ibtpo-tree", "IBTree: B0 root rollouts, L − 1 rounds of B rollouts from the top-K non-leaf nodes; "
             "G = B0 + (L − 1)KB; (B0, L, K, B) = (4, 9, 1, 1)", "IB-TPO method (not read); README figure", "secondary",
             "ibtree_grow", note=_SRC),
    Equation("ibtpo-advantage", "A(s) = (p̂(a*|s) − p̂(a*|q))/std{R(τ)} + λ (p̂(a*|s)/p̂(a*|s_p) − (1 + 1/β)) π_ref(s), "
             "β = 5, λ = 0.1", "IB-TPO method (not read); README figure (A_GL from q, A_IB from s_p)", "secondary",
             "step_advantage", note=_SRC + "; ε, ddof 0 and the zero-parent ratio are ours"),
)

register(Spec(
    name="ib_tpo", kind="advantage", family="multi-turn", paper=IBTPO_PAPER, status="partial", missing=MISSING,
    summary="step advantages on an IB-guided rollout tree: global (p̂(a*|s) − p̂(a*|q))/std plus λ × local "
            "IB term (ratio to the parent's success rate) × π_ref(step)",
    fn=ib_tpo_advantage, config_cls=IBTPOConfig, equations=EQUATIONS, outputs=("adv",), make_inputs=_advantage_inputs,
    extras={"ib_tpo_signals": ib_tpo_signals, "tree_values": tree_values, "step_advantage": step_advantage,
            "ib_objective": ib_objective,
            "conformance_configs": lambda: [
                (name, ov, f"make-inputs-{i}") for i in range(3) for name, ov in (
                    ("beta=2,lam=0.5", {"beta": 2.0, "lam": 0.5}), ("ddof=1,zero-parent=0",
                                                                    {"ddof": 1, "zero_parent_ratio": 0.0}))]},
    properties=(
        "properties/test_ib_tpo.py::test_root_estimate_is_mean_reward: p̂(a*|q) = mean R(τ) of the tree",
        "properties/test_ib_tpo.py::test_estimates_are_consistent: p̂(s)·n(s) = Σ_children p̂(c)·n(c) (no "
        "trajectory ends at an inner node)",
        "properties/test_ib_tpo.py::test_global_advantage_root_zero_and_sign: A_GL(root) = 0; A_GL(s) = 0 iff "
        "p̂(s) = p̂(q); sign A_GL = sign(p̂(s) − p̂(q))",
        "properties/test_ib_tpo.py::test_advantage_matches_definition: token advantage = A_GL + λ A_IB of its step",
        "properties/test_ib_tpo.py::test_objective_decomposes_per_step: Σ per-step terms = (β + 1)H(τ|q) − "
        "βH(τ|a*, q) on exact trees",
        "properties/test_ib_tpo.py::test_padding_never_read",
        "properties/test_ib_tpo.py::test_composition_with_ppo: step advantages into registry ppo",
        "properties/test_ib_tpo.py::test_bad_input_raises",
        "properties/test_ib_tpo.py::test_inputs_not_mutated: pure functions leave the caller's arrays unchanged",
        "untested: IB-TPO beats GRPO by 2.9–3.6% on math benchmarks (Qwen3-1.7B/8B-Base) and λ = 0.5 collapses; "
        "GRPO with clip-higher or entropy regularisation fails to keep the IB-Score balanced — empirical claims",
    ),
))

register(Spec(
    name="ib_tpo_score", kind="sampler", family="multi-turn", paper=IBTPO_PAPER, status="partial", missing=MISSING,
    summary="IB-Score of each tree node from its children (the IBTree sampler's branching criterion)",
    fn=ib_tpo_score, config_cls=IBTreeConfig, equations=EQUATIONS[1:4], outputs=("p_hat", "score", "eligible"),
    make_inputs=_score_inputs,
    extras={"ibtree_grow": ibtree_grow, "select_top_k": select_top_k, "token_budget": token_budget,
            "step_probability": step_probability},
    properties=(
        "properties/test_ib_tpo.py::test_budget_identity: ibtree_grow yields G = B0 + (L − 1)·K·B trajectories",
        "properties/test_ib_tpo.py::test_token_budget_prefix_sharing: generated tokens = Σ step lengths ≤ Σ path "
        "lengths, equal without branching below the root",
        "properties/test_ib_tpo.py::test_score_decomposition: (1 + β)/B Σ η1η2 = (1 + β)(Cov(η1, η2) + η̄1 η̄2)",
        "properties/test_ib_tpo.py::test_score_estimator_unbiased: with B children drawn i.i.d. from π and exact "
        "p(a*|·), E[score] = (1 + β) Σ_c π(c)² η1(c) (exact enumeration of all draws)",
        "properties/test_ib_tpo.py::test_top_k_selects_highest: the branched nodes are the K eligible nodes of "
        "highest IB-Score",
        "untested: 50% more trajectories than independent sampling under the same token budget — depends on the "
        "model's step lengths; the accounting itself is tested (token_budget)",
    ),
))

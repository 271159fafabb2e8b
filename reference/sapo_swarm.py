"""Swarm sAmpling Policy Optimization (Gensyn SAPO): decentralised sharing of decoded rollouts between nodes.

Gensyn AI Team (Amico, Passamani Andrade, Donaghy, ..., Wright), "Sharing is Caring: Efficient LM Post-Training
with Collective RL Experience Sharing", arXiv 2509.08721 (Sep 2025). Official code: gensyn-ai/genrl, read:
``src/genrl/examples/rgym/data.py`` (``prepare_states``, ``transplant_trees``), ``src/genrl/trainer/
grpo_trainer.py`` (``step``, ``compute_loss``) and ``recipes/rgym/rgym-torch.yaml``. Not to be confused with
``sapo`` (Soft Adaptive Policy Optimization, arXiv 2511.20347) in this registry.

Place in the pipeline: TRAINING-SET CONSTRUCTION (which rollouts enter a node's batch); the advantage and the
loss are the node's own GRPO, unchanged. The unit of sharing is an ITEM: one question with its L decoded
completions (genrl's "tree"). Each node n, each round::

    1. samples its questions, generates L completions per question, and broadcasts the items
       (question, completions, ground truth / verification metadata) to the swarm;
    2. builds its training set T_n = I_n local items ∪ J_n external items chosen from the other nodes';
    3. re-scores every item with its OWN verifier ρ_n, re-tokenises the text and computes log-probs under
       its OWN π_old — external completions are trained on as if they were its own samples;
    4. runs GRPO on T_n (one group per item).

Everything here is a pure function of arrays: rewards (n_items, L) already re-scored by the receiving node,
the sender of each pool item, and random keys for the uniform choice.

    Â_ij = (R_ij − mean_j R_i·) / (std_j R_i· + ε)      per item i, j = 1..L    (GRPO; code: ddof = 1, ε = 1e-8)
    eligible = {pool items from other nodes with Â ≢ 0 (not all L rewards equal)}       (paper)
    external = J items drawn uniformly without replacement from eligible                (paper)

Selection variants (``mode``):

* ``"uniform"`` (paper, default): drop zero-advantage items, then a uniform J-subset — realised as the J
  eligible items with the smallest ``priority`` keys (i.i.d. uniform keys ⇒ a uniform subset);
* ``"top"`` (the official code's intent): drop items whose total reward Σ_j R_ij is 0, keep the J with the
  largest total (ties: pool order). Unlike the paper it KEEPS all-correct items, whose advantage is 0;
* ``"code"`` (the official ``transplant_trees`` exactly): sort all items by (total, pool index) ascending,
  cut the sorted list at the position of the first non-zero total in UNSORTED pool order, keep the last J.
  The cut index is read from the unsorted list, so zero-total items survive whenever J exceeds the number
  of non-zero items and a non-zero item precedes some zero one in pool order (``test_code_mode_quirk``).

Provenance: the paper's method text was read through third-party summaries (the arXiv HTML was reachable only
in its opening): round structure, I/J mixing and the zero-advantage filter with uniform sampling are
``secondary``; the GRPO step and the code's selection are ``official-code``. Defaults: I = J = 4 (the paper's
best configuration, 4 local / 4 external), L = 8 completions, ε_lo = 0.2, ε_hi = 0.28, no KL (rgym recipe).

Conventions. The local items are the I items given (the node's own batch); fewer eligible external items
than J gives J' < J items (no padding). An item with L = 1 has advantage 0 (``grpo``'s singleton rule; the
code skips the std division there, with the same result). Nothing is filtered from the LOCAL items, so with
J = 0 the method is exactly GRPO on the local items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rlspec.reference._validate import choice, fail, finite_vector, positive
from rlspec.reference.grpo import GRPOConfig, grpo_outcome_advantage
from rlspec.reference.registry import Equation, Paper, Spec, register

SWARM_PAPER = Paper(arxiv="2509.08721", title="Sharing is Caring: Efficient LM Post-Training with Collective RL "
                    "Experience Sharing (Swarm sAmpling Policy Optimization)", year=2025)
MODES = ("uniform", "top", "code")


@dataclass(frozen=True)
class SwarmConfig:
    """n_local I ≥ 0 and n_external J ≥ 0: items per round (paper's best: 4 / 4; 8 / 0 = no sharing).
    mode: "uniform" (paper), "top" (code's intent) or "code" (code exactly). ddof, eps: the GRPO std
    (genrl: torch .std(), i.e. ddof = 1, plus 1e-8)."""

    n_local: int = 4
    n_external: int = 4
    mode: str = "uniform"
    ddof: int = 1
    eps: float = 1e-8

    def __post_init__(self) -> None:
        for name in ("n_local", "n_external"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise fail(name, repr(v), "a non-negative integer number of items")
        choice(self.mode, "mode", MODES)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (population std) or 1 (sample std)")
        positive(self.eps, "eps", allow_zero=True)


def check_items(R: Any, name: str, L: int | None = None) -> np.ndarray:
    """Item rewards (n, L), finite float64."""
    a = np.asarray(R)
    if a.ndim != 2 or (L is not None and a.shape[1] != L):
        raise fail(name, f"shape {a.shape}", "shape (n_items, L)" + (f" with L = {L}" if L is not None else ""))
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise fail(name, f"dtype {a.dtype}", "real rewards")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise fail(name, "a non-finite reward", "finite rewards")
    return a


def item_advantage(R: np.ndarray, ddof: int = 1, eps: float = 1e-8) -> np.ndarray:
    """Â (n, L): GRPO within each item (one group per question), genrl ``GRPOLanguageTrainerModule.step``."""
    n, L = R.shape
    g = np.repeat(np.arange(n), L)
    return grpo_outcome_advantage(R.ravel(), g, GRPOConfig(ddof=ddof, eps=eps)).reshape(n, L)


def has_signal(R: np.ndarray) -> np.ndarray:
    """(n,) bool: the item's rewards are not all equal, i.e. its GRPO advantages are not all zero."""
    return R.max(axis=1) > R.min(axis=1) if R.shape[1] else np.zeros(R.shape[0], dtype=bool)


def select_external(pool_rewards: Any, pool_source: Any, node: int, n_external: int, priority: Any = None,
                    mode: str = "uniform") -> np.ndarray:
    """Indices (≤ J,) of the pool items node ``node`` trains on, in selection order.

    Items sent by ``node`` itself are never candidates (genrl takes trees of other agents only).
    """
    R = check_items(pool_rewards, "pool_rewards")
    K = R.shape[0]
    src = np.asarray(pool_source)
    if src.shape != (K,) or not np.issubdtype(src.dtype, np.integer):
        raise fail("pool_source", f"{src.dtype} array of shape {src.shape}", f"integer node ids of shape ({K},)")
    choice(mode, "mode", MODES)
    other = src != int(node)
    total = R.sum(axis=1)                                   # genrl: sum of the L accuracy rewards
    if mode == "uniform":
        u = finite_vector(priority, "priority", K)
        cand = np.flatnonzero(other & has_signal(R))
        return cand[np.argsort(u[cand], kind="stable")][:n_external]
    if mode == "top":
        cand = np.flatnonzero(other & (total != 0))
        return cand[np.argsort(-total[cand], kind="stable")][:n_external]
    cand = np.flatnonzero(other)                            # "code": transplant_trees as written
    if not (total[cand] != 0).any():
        return np.zeros(0, dtype=np.int64)                  # all zero: nothing is transplanted
    order = cand[np.lexsort((cand, total[cand]))]           # ascending by (total, pool index)
    cut = int(np.argmax(total[cand] != 0))                  # first non-zero total in UNSORTED order
    kept = order[cut:]
    return kept[len(kept) - min(n_external, len(kept)):]   # genrl's order: ascending total


def sapo_swarm(local_rewards: Any, pool_rewards: Any, pool_source: Any, priority: Any, node: int = 0,
               config: SwarmConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A node's training set and its GRPO advantages: (rewards (n, L), external (n,) bool, pool_index (n,), adv (n, L)).

    local_rewards (I_avail, L): the node's own items (the first ``n_local`` are used); pool_rewards (K, L):
    the swarm's items re-scored by this node's verifier; pool_source (K,) int: sender of each; priority (K,):
    uniform random keys (mode "uniform"); node: this node's id. Rows: the I local items, then the J' external
    ones in selection order; pool_index is −1 for local rows.
    """
    cfg = config or SwarmConfig()
    loc = check_items(local_rewards, "local_rewards")
    pool = check_items(pool_rewards, "pool_rewards", loc.shape[1] if pool_rewards is not None else None)
    if cfg.n_local > loc.shape[0]:
        raise fail("local_rewards", f"{loc.shape[0]} items", f"at least n_local = {cfg.n_local} local items")
    ext = select_external(pool, pool_source, node, cfg.n_external, priority, cfg.mode) if cfg.n_external else \
        np.zeros(0, dtype=np.int64)
    R = np.concatenate([loc[: cfg.n_local], pool[ext]], axis=0)                  # (I + J', L)
    external = np.arange(R.shape[0]) >= cfg.n_local
    index = np.concatenate([np.full(cfg.n_local, -1), ext]).astype(np.int64)
    return R, external, index, item_advantage(R, cfg.ddof, cfg.eps)


# ----------------------------------------------------------------------------------------------
# a swarm of tabular policies (for properties and experiments)
# ----------------------------------------------------------------------------------------------

def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def swarm_round(logits: np.ndarray, answers: np.ndarray, rng: np.random.Generator, config: SwarmConfig,
                n_completions: int = 8, lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One synchronous round of N tabular nodes on Q verifiable tasks; pure (returns new logits).

    logits (N, Q, A): node n's softmax policy over A answers for task q; answers (Q,): the correct answer
    (reward 1, else 0 — every node's verifier agrees). Each node draws I tasks uniformly, samples L answers
    per task and broadcasts the items; then builds I local + J external items (``config.mode``), and takes
    one on-policy GRPO step on its own logits: ratio 1 for every row (external answers are scored under its
    own π_old, as in genrl), gradient Σ_i Σ_j Â_ij (e_{a_ij} − π_n(·|q_i)) / (n L). Returns (new logits,
    mean local reward per node (N,)).
    """
    N, Q, A = logits.shape
    I, L = config.n_local, n_completions
    tasks = rng.integers(0, Q, size=(N, I))                                      # (N, I)
    acts = np.stack([[rng.choice(A, size=L, p=softmax(logits[n, q])) for q in tasks[n]] for n in range(N)])
    acts = acts.reshape(N, I, L)
    rewards = (acts == answers[tasks][..., None]).astype(float)                 # (N, I, L)
    pool_R, pool_src = rewards.reshape(N * I, L), np.repeat(np.arange(N), I)
    pool_task, pool_act = tasks.reshape(-1), acts.reshape(N * I, L)
    new = logits.copy()
    for n in range(N):
        R, ext, idx, adv = sapo_swarm(rewards[n], pool_R, pool_src, rng.random(N * I), n, config)
        q = np.concatenate([tasks[n], pool_task[idx[ext]]])                     # (I + J',) task of each row
        a = np.concatenate([acts[n], pool_act[idx[ext]]])                       # (I + J', L) answers
        pi = softmax(logits[n, q])                                              # (I + J', A)
        grad = np.zeros((Q, A))
        np.add.at(grad, (np.repeat(q, L), a.ravel()), adv.ravel())              # Σ Â e_a
        np.add.at(grad, q, -adv.sum(axis=1, keepdims=True) * pi)                # − Σ Â π
        new[n] = logits[n] + lr * grad / max(R.size, 1)
    return new, rewards.mean(axis=(1, 2))


def make_inputs(rng: np.random.Generator) -> dict[str, Any]:
    """A pool of items from 1..4 nodes (binary or graded rewards, some all-equal), local items of node 0."""
    L = int(rng.integers(1, 6))
    K = int(rng.integers(0, 10))
    graded = rng.random() < 0.3

    def items(n):
        R = (rng.random((n, L)) < rng.uniform(0, 1, size=(n, 1))).astype(float)
        return R * rng.choice([0.5, 1.0], size=(n, L)) if graded else R

    return {"local_rewards": items(int(rng.integers(4, 7))), "pool_rewards": items(K),
            "pool_source": rng.integers(0, 4, size=K), "priority": rng.random(K), "node": 0}


register(Spec(
    name="sapo_swarm", kind="sampler", family="sampling", paper=SWARM_PAPER, status="implemented",
    summary="training-set construction: each node trains GRPO on I of its own items plus J items decoded by other "
            "nodes (zero-advantage items dropped, uniform choice), re-scored and treated as its own samples",
    fn=sapo_swarm, config_cls=SwarmConfig, outputs=("rewards", "external", "pool_index", "adv"),
    make_inputs=make_inputs,
    extras={"select_external": select_external, "item_advantage": item_advantage, "has_signal": has_signal,
            "swarm_round": swarm_round,
            "conformance_configs": lambda: [("top", {"mode": "top"}), ("code", {"mode": "code"}),
                                            ("silo-8/0", {"n_local": 4, "n_external": 0})]},
    equations=(
        Equation("round", "T_n = I_n local items ∪ J_n items from the other nodes' broadcasts, re-scored by ρ_n",
                 "arXiv 2509.08721, method (SAPO algorithm)", "secondary", "sapo_swarm",
                 note="read through third-party summaries of the paper (emergentmind, paper review); genrl "
                      "prepare_states adds the transplanted trees to the node's own game trees"),
        Equation("filter", "eligible = other nodes' items with non-constant rewards (Â ≢ 0); J drawn uniformly",
                 "arXiv 2509.08721, controlled experiments", "secondary", "select_external",
                 note="the official code instead keeps the top-J trees by total accuracy after dropping all-zero "
                      "ones (mode='top'), and its cut index is taken from the unsorted list (mode='code')"),
        Equation("transplant", "sort by (Σ_j R_ij, key) ascending; cut at the first non-zero total in pool order; "
                 "keep the last J", "genrl examples/rgym/data.py::transplant_trees", "official-code",
                 "select_external", note="num_transplant_trees = 5 in recipes/rgym/rgym-torch.yaml"),
        Equation("grpo", "Â_ij = (R_ij − mean_j R_i·) / (std_j R_i· + 1e-8), std with ddof = 1",
                 "genrl trainer/grpo_trainer.py::step", "official-code", "item_advantage",
                 note="loss: token-mean, clip (1 − 0.2, 1 + 0.28), β = 0, one step (ratio 1: old log-probs are the "
                      "current ones detached)"),
    ),
    gradient="not a loss: it selects the rows of the node's GRPO batch; with the receiver's own π_old an external "
             "completion's first-step ratio is exactly 1 (no correction for the sender's policy)",
    properties=(
        "properties/test_sapo_swarm.py::test_no_external_is_grpo: J = 0 gives registry grpo on the local items",
        "properties/test_sapo_swarm.py::test_zero_advantage_items_are_never_selected: uniform mode drops constant "
        "items and the node's own items",
        "properties/test_sapo_swarm.py::test_uniform_choice_is_a_uniform_subset: exact enumeration of key orders",
        "properties/test_sapo_swarm.py::test_top_mode_keeps_highest_totals_and_all_correct_items",
        "properties/test_sapo_swarm.py::test_code_mode_quirk: genrl's unsorted cut index lets zero-total trees "
        "through only when J exceeds the non-zero ones",
        "properties/test_sapo_swarm.py::test_external_rows_ratio_one_composition: the mixed set's advantages into "
        "registry ppo; external rows get −Â/n like local ones",
        "properties/test_sapo_swarm.py::test_swarm_round_is_pure",
        "properties/test_sapo_swarm.py::test_sharing_beats_training_in_silo: 4 local / 4 external gathers more "
        "cumulative reward than 8 / 0 in a seeded 8-node tabular swarm",
        "properties/test_sapo_swarm.py::test_bad_input_raises",
        "untested: heavy external sharing (2/6) oscillates and forgets — an empirical observation of the paper's "
        "Qwen2.5-0.5B swarm, not a property of the selection rule",
        "untested: the open-source demo's finding that strong models gain little from the swarm — an empirical "
        "observation on thousands of heterogeneous nodes",
    ),
))

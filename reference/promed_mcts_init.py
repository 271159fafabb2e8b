"""ProMed stage 1: the SIG-guided Monte-Carlo tree search that builds supervised warm-start dialogues.

Ding, Huang, Fang et al., "ProMed: Shapley Information Gain Guided Reinforcement Learning for Proactive
Medical LLMs", arXiv 2508.13514 (2025), stage (1) "SIG-Guided Model Initialization": MCTS constructs
high-reward doctor–patient interaction trajectories that supervise the model before RL. Official code
(the identical copy huangbaixiang100/ProMed was read): ``src/mcts_sampling/mcts.py`` (``MCTSNode``,
``MCTS.execute_episode``, ``backpropagate``, ``select``, ``find_best_path``, ``custom_reward``,
``export_paths``) and ``src/mcts_sampling/async_mcts.py``. Stage 2 (the SIG reward, the token baseline)
is :mod:`rlspec.reference.promed`.

Place in the pipeline: DATA for supervised fine-tuning (not an RL loss). A node is a dialogue prefix;
an edge is one doctor turn (a question and the patient's reply, or the final answer). The LLM parts —
the doctor model, the patient model, the doctor-understanding model + fact checker, the answer
matcher — are USER-SUPPLIED CALLABLES (:func:`llm_turn`); the tree, the rewards and the backups are
implemented here in full, as pure functions of a frozen :class:`Tree`.

Notation: facts F = {f_1..f_n} with SIG weights w (Σ w = 1, from ``promed.sig_weights``); U(h) ⊆ F the
facts in the doctor's written understanding after history h; known ⊆ F the facts given up front (the
first ⌊n/2⌋ in the code). N(v) visits, W(v) total reward, Q = W/N.

    s(v)      = Σ_i w_i 1[f_i ∈ U(v)],   s(root) = Σ_{i ∈ known} w_i       state value (SIG state)
    r(v)      = s(v) − s(parent(v))                                       step reward = SIG of the question
    b         = 2 · 1[final answer correct]                               leaf bonus (use_correctness_reward)
    UCT(c)    = W(c)/(N(c) + 1e-5) + 2.2 · √( ln max(N(p), 1) / (N(c) + 1e-5) )   (code; N starts at 0.01)
    selection = from the root, while the node is non-terminal and has max_width = 8 children, go to argmax UCT
    rollout   = from the selected node, expand a new child (one LLM turn) until a terminal (answer) node
    score(τ)  = Σ_{v ∈ τ, v ≠ root} r(v) + b = s(leaf) − s(root) + b        trajectory score (custom_reward)
    SFT data  = the root-to-leaf trajectories of highest score (find_best_path: the argmax)

Backups (``backup``):

* ``"code"`` (default; the official ``execute_episode`` + ``backpropagate``): every node v_i of the rollout
  path v_0 (selected node) .. v_k (leaf) gets N += 1 and W += ρ_i with ρ_0 = 0 + b/k, ρ_i = r(v_i) + b/k
  (0 < i < k), ρ_k = r(v_k) + b (b alone when k = 0); then v_0 and each ancestor u get N += 1 and
  W += R·0.9^{depth(v_0) − depth(u)}, R = Σ_i ρ_i. So v_0 is counted twice per iteration, visits start
  at 0.01, and a parent's visits are NOT the sum of its children's (tested: ``test_code_backup_...``).
* ``"mean-return"`` (textbook single-player MCTS, offered for comparison): every node v_i on the whole
  root-to-leaf path gets N += 1 and W += G_i = Σ_{j ≥ i} r_j (+ b at the leaf), visits start at 0. Then
  N(u) = Σ_children N(c) + (iterations ending at u) and Q(u) is the mean of the returns backed up
  through u, and UCT is the textbook Q/N + c√(ln N(p)/N).

Provenance. Only the paper's abstract was reachable (it names the stage: a Monte-Carlo tree search builds
high-reward dialogue trajectories that then supervise the model); every formula above is from the official code. The
code's runs differ from its defaults: ``mcts.py``'s ``__main__`` uses 5 iterations, softmax weights with
τ = 1 and no correctness bonus; ``async_mcts.py`` (the README's entry point) uses 5 iterations and the
non-incremental LLM-judge score ``get_llm_evalute_score`` instead of SIG. We keep the class defaults
(10 iterations, SIG increments) and the bonus 2.0 used when ``use_correctness_reward=True``
(``bonus=0`` reproduces the scripts). Which trajectories the SFT set keeps is not in the code beyond the
argmax (``find_best_path``) and the full export with scores; ``top_k`` selects.

A terminal child keeps its parent's state (code: the answer turn is not re-scored). Ties in UCT and in
the best path go to the earliest child (Python ``max`` / strict ``>`` in the code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, positive
from rlspec.reference.promed import PROMED_PAPER, mcts_state_value
from rlspec.reference.registry import Equation, Spec, register

BACKUPS = ("code", "mean-return")
ROOT = 0


@dataclass(frozen=True)
class MCTSConfig:
    """iterations (code default 10; its scripts run 5); c_uct = 2.2 (exploration_weight); max_width = 8
    children per node; bonus: leaf bonus for a correct answer (2.0; 0 = the scripts' use_correctness_reward
    = False); backup: "code" or "mean-return"; virtual_visit: initial visits of a node in code mode (0.01);
    decay: discount of the code's ancestor backup (0.9); top_k: trajectories kept for SFT (1 = argmax)."""

    iterations: int = 10
    c_uct: float = 2.2
    max_width: int = 8
    bonus: float = 2.0
    backup: str = "code"
    virtual_visit: float = 0.01
    decay: float = 0.9
    top_k: int = 1

    def __post_init__(self) -> None:
        for name, lo in (("iterations", 0), ("max_width", 1), ("top_k", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise fail(name, repr(v), f"an integer ≥ {lo}")
        positive(self.c_uct, "c_uct", allow_zero=True)
        positive(self.bonus, "bonus", allow_zero=True)
        choice(self.backup, "backup", BACKUPS)
        positive(self.virtual_visit, "virtual_visit", allow_zero=True)
        positive(self.decay, "decay", allow_zero=True)


@dataclass(frozen=True)
class Turn:
    """One doctor turn (an edge of the tree), produced by the user's simulator.

    utterance: the doctor's text. terminal: it is the final answer. reply: the patient's reply (None for
    an answer). understood: tuple of n bools, the facts in the doctor-understanding after this turn
    (non-terminal turns). correct: whether the final answer is right (terminal turns)."""

    utterance: str = ""
    terminal: bool = False
    reply: str | None = None
    understood: Any = None
    correct: bool = False


@dataclass(frozen=True)
class Tree:
    """The search tree, one entry per node (node 0 is the root), all tuples (immutable)."""

    parent: tuple[int, ...] = (-1,)
    depth: tuple[int, ...] = (0,)
    state: tuple[float, ...] = (0.0,)
    terminal: tuple[bool, ...] = (False,)
    correct: tuple[bool, ...] = (False,)
    visits: tuple[float, ...] = (0.0,)
    value: tuple[float, ...] = (0.0,)
    children: tuple[tuple[int, ...], ...] = ((),)
    turn: tuple[Turn | None, ...] = (None,)

    @property
    def size(self) -> int:
        return len(self.parent)


@dataclass(frozen=True)
class Iteration:
    """What one search iteration did: the selection path (root .. start) and the rollout path (start .. leaf)."""

    selection: tuple[int, ...]
    rollout: tuple[int, ...]


# ----------------------------------------------------------------------------------------------
# tree primitives (pure)
# ----------------------------------------------------------------------------------------------

def new_tree(s0: float, config: MCTSConfig | None = None) -> Tree:
    """A root-only tree with state s0 = Σ_{known} w_i (visits 0.01 in code mode, 0 otherwise)."""
    cfg = config or MCTSConfig()
    return Tree(state=(float(s0),), visits=(cfg.virtual_visit if cfg.backup == "code" else 0.0,))


def history(tree: Tree, v: int) -> tuple[Turn, ...]:
    """The turns from the root to node v."""
    out: list[Turn] = []
    while v != ROOT:
        out.append(tree.turn[v])
        v = tree.parent[v]
    return tuple(reversed(out))


def path_to(tree: Tree, v: int) -> tuple[int, ...]:
    """Node ids root .. v."""
    out = [v]
    while tree.parent[out[-1]] >= 0:
        out.append(tree.parent[out[-1]])
    return tuple(reversed(out))


def fully_expanded(tree: Tree, v: int, max_width: int) -> bool:
    """Terminal nodes are fully expanded; others once they have max_width children (code is_fully_expanded)."""
    return tree.terminal[v] or len(tree.children[v]) >= max_width


def uct(tree: Tree, c: int, config: MCTSConfig) -> float:
    """UCT of child c. code: W/(N+1e-5) + c_uct·√(ln max(N_p, 1)/(N+1e-5)); mean-return: W/N + c_uct·√(ln N_p/N)."""
    N, W, Np = tree.visits[c], tree.value[c], tree.visits[tree.parent[c]]
    if config.backup == "code":
        return W / (N + 1e-5) + config.c_uct * math.sqrt(math.log(max(Np, 1.0)) / (N + 1e-5))
    if N == 0:
        return math.inf
    return W / N + config.c_uct * math.sqrt(math.log(Np) / N)


def best_child(tree: Tree, v: int, config: MCTSConfig) -> int:
    """argmax_c UCT(c) over v's children; ties to the earliest child."""
    kids = tree.children[v]
    if not kids:
        raise fail("v", f"node {v} without children", "a node with at least one child")
    scores = [uct(tree, c, config) for c in kids]
    return kids[int(np.argmax(scores))]


def select(tree: Tree, config: MCTSConfig) -> tuple[int, ...]:
    """Selection path from the root: descend by UCT while the node is non-terminal and fully expanded."""
    path = [ROOT]
    while not tree.terminal[path[-1]] and fully_expanded(tree, path[-1], config.max_width):
        path.append(best_child(tree, path[-1], config))
    return tuple(path)


def expand(tree: Tree, v: int, turn: Turn, w: np.ndarray, config: MCTSConfig) -> tuple[Tree, int]:
    """Add the child of v reached by ``turn``; its state is s(U) of the turn's understanding (terminal: v's)."""
    if fully_expanded(tree, v, config.max_width):
        raise fail("v", f"node {v} (terminal or with {len(tree.children[v])} children)", "an expandable node")
    if not isinstance(turn, Turn):
        raise fail("simulate", f"returned {type(turn).__name__}", "a Turn")
    s = tree.state[v] if turn.terminal else mcts_state_value(turn.understood, w)
    c = tree.size
    kids = tree.children[:v] + (tree.children[v] + (c,),) + tree.children[v + 1:]
    return replace(tree, parent=tree.parent + (v,), depth=tree.depth + (tree.depth[v] + 1,), state=tree.state + (s,),
                   terminal=tree.terminal + (bool(turn.terminal),),
                   correct=tree.correct + (bool(turn.terminal and turn.correct),),
                   visits=tree.visits + (config.virtual_visit if config.backup == "code" else 0.0,),
                   value=tree.value + (0.0,), children=kids + ((),), turn=tree.turn + (turn,)), c


def rollout(tree: Tree, start: int, simulate: Callable[[tuple[Turn, ...], int], Turn], w: np.ndarray,
            config: MCTSConfig) -> tuple[Tree, tuple[int, ...]]:
    """From ``start`` to a terminal node: expand a new child when possible (one ``simulate`` call with k = the
    number of existing children), else follow the best child (code ``execute_episode``)."""
    path, v = [start], start
    while not tree.terminal[v]:
        if not fully_expanded(tree, v, config.max_width):
            tree, v = expand(tree, v, simulate(history(tree, v), len(tree.children[v])), w, config)
        else:
            v = best_child(tree, v, config)
        path.append(v)
    return tree, tuple(path)


def step_rewards(tree: Tree, path: tuple[int, ...]) -> np.ndarray:
    """r along a path (len(path),): 0 for its first node, s(v_i) − s(v_{i−1}) after (the SIG of each turn)."""
    s = np.array([tree.state[v] for v in path])
    return np.concatenate([[0.0], np.diff(s)])


def code_node_rewards(tree: Tree, path: tuple[int, ...], bonus: float) -> np.ndarray:
    """ρ_i of the code's execute_episode on the rollout path: r_i + b/k on non-leaf nodes, r_k + b at the leaf."""
    r = step_rewards(tree, path)
    b = bonus if tree.correct[path[-1]] else 0.0
    k = len(path) - 1
    spread = np.full(len(path), b / k if k > 0 else 0.0)
    spread[-1] = b
    return r + spread


def backup(tree: Tree, selection: tuple[int, ...], path: tuple[int, ...], config: MCTSConfig) -> Tree:
    """Visits and values after one iteration (see the module docstring for both modes). Pure."""
    N, W = list(tree.visits), list(tree.value)
    if config.backup == "code":
        rho = code_node_rewards(tree, path, config.bonus)
        for v, x in zip(path, rho):                       # execute_episode
            N[v] += 1.0
            W[v] += float(x)
        R, d0 = float(rho.sum()), tree.depth[path[0]]
        for u in selection[::-1]:                         # backpropagate(start, R): start and its ancestors
            N[u] += 1.0
            W[u] += R * config.decay ** (d0 - tree.depth[u])
    else:
        full = selection + path[1:]
        r = step_rewards(tree, full)
        r[-1] += config.bonus if tree.correct[full[-1]] else 0.0
        G = np.cumsum(r[::-1])[::-1]                      # G_i = Σ_{j ≥ i} r_j
        for v, g in zip(full, G):
            N[v] += 1.0
            W[v] += float(g)
    return replace(tree, visits=tuple(N), value=tuple(W))


def search(simulate: Callable[[tuple[Turn, ...], int], Turn], w: Any, known: Any = None,
           config: MCTSConfig | None = None) -> tuple[Tree, tuple[Iteration, ...]]:
    """Run ``config.iterations`` iterations from a fresh root: select, roll out, back up.

    ``simulate(history, k) -> Turn`` is the dialogue simulator (LLM parts; see :func:`llm_turn`); w (n,) the
    SIG weights; known (n,) bool the facts given up front (None: none), s(root) = Σ_{known} w.
    Returns the tree and the log of what each iteration selected and rolled out.
    """
    cfg = config or MCTSConfig()
    wv = check_weights(w)
    K = np.zeros(wv.shape[0], dtype=bool) if known is None else as_mask(known, "known", wv.shape)
    if not callable(simulate):
        raise fail("simulate", type(simulate).__name__, "a callable (history, k) -> Turn")
    tree = new_tree(mcts_state_value(K, wv), cfg)
    log: list[Iteration] = []
    for _ in range(cfg.iterations):
        sel = select(tree, cfg)
        tree, path = rollout(tree, sel[-1], simulate, wv, cfg)
        tree = backup(tree, sel, path, cfg)
        log.append(Iteration(selection=sel, rollout=path))
    return tree, tuple(log)


# ----------------------------------------------------------------------------------------------
# trajectories for SFT
# ----------------------------------------------------------------------------------------------

def trajectory_score(tree: Tree, path: tuple[int, ...], bonus: float = 2.0) -> float:
    """score(τ) = Σ_{v ≠ root} r(v) + b·1[correct] = s(leaf) − s(root) + b (code custom_reward)."""
    return float(step_rewards(tree, path).sum()) + (bonus if tree.correct[path[-1]] else 0.0)


def export_paths(tree: Tree, bonus: float = 2.0) -> list[tuple[tuple[int, ...], float]]:
    """Every root-to-terminal path with its score, in depth-first child order (code export_paths)."""
    out: list[tuple[tuple[int, ...], float]] = []

    def dfs(v: int, path: tuple[int, ...]) -> None:
        path = path + (v,)
        if tree.terminal[v]:
            out.append((path, trajectory_score(tree, path, bonus)))
        for c in tree.children[v]:
            dfs(c, path)

    dfs(ROOT, ())
    return out


def select_trajectories(tree: Tree, config: MCTSConfig | None = None) -> list[tuple[tuple[int, ...], float]]:
    """The top_k trajectories by score (stable: earlier DFS order first; top_k = 1 is find_best_path)."""
    cfg = config or MCTSConfig()
    paths = export_paths(tree, cfg.bonus)
    order = sorted(range(len(paths)), key=lambda i: -paths[i][1])
    return [paths[i] for i in order[: cfg.top_k]]


# ----------------------------------------------------------------------------------------------
# LLM parts as user callables, and a deterministic stand-in
# ----------------------------------------------------------------------------------------------

def code_is_terminal(utterance: str) -> bool:
    """The code's test for an answer turn: contains 'answer', or lacks 'question', or is empty."""
    return ("answer" in utterance) or ("question" not in utterance) or utterance.strip() == ""


def llm_turn(doctor: Callable[[tuple[Turn, ...]], str], patient: Callable[[tuple[Turn, ...], str], str],
             understand: Callable[[tuple[Turn, ...], str, str], Any], answer_correct: Callable[[str], bool],
             is_terminal: Callable[[str], bool] = code_is_terminal) -> Callable[[tuple[Turn, ...], int], Turn]:
    """Compose the four LLM parts into a ``simulate(history, k) -> Turn`` for :func:`search`.

    doctor(history) -> utterance (the policy being initialised, sampled); patient(history, question) -> reply
    (the patient simulator, which sees all facts); understand(history, question, reply) -> (n,) bool, the
    facts found in the doctor-understanding (an LLM writes the understanding from the known facts and the
    dialogue, a fact checker tests each fact: code ``get_shapley_fact_score``); answer_correct(utterance) ->
    bool (code ``match_choice`` against the gold option). ``k`` is ignored (an LLM samples)."""
    for fn, nm in ((doctor, "doctor"), (patient, "patient"), (understand, "understand"),
                   (answer_correct, "answer_correct"), (is_terminal, "is_terminal")):
        if not callable(fn):
            raise fail(nm, type(fn).__name__, "a callable")

    def simulate(hist: tuple[Turn, ...], k: int) -> Turn:
        q = doctor(hist)
        if is_terminal(q):
            return Turn(utterance=q, terminal=True, correct=bool(answer_correct(q)))
        reply = patient(hist, q)
        U = as_mask(np.asarray(understand(hist, q, reply)), "understand")
        return Turn(utterance=q, reply=reply, understood=tuple(bool(x) for x in U))

    return simulate


def scripted_simulator(script: Any, known: Any, need: Any) -> Callable[[tuple[Turn, ...], int], Turn]:
    """Deterministic stand-in: at depth d the k-th sampled doctor turn asks about fact script[d, k] (the
    patient reveals it; it joins the understanding) or answers (−1); depth D = script.shape[0] forces an
    answer. The answer is correct iff every ``need`` fact is understood."""
    S = np.asarray(script)
    K = as_mask(known, "known")
    nd = as_mask(need, "need", K.shape)
    if S.ndim != 2 or not np.issubdtype(S.dtype, np.integer) or (S < -1).any() or (S >= K.shape[0]).any():
        raise fail("script", f"{S.dtype} array of shape {S.shape}", f"integers in [−1, {K.shape[0]}) of shape (D, width)")

    def simulate(hist: tuple[Turn, ...], k: int) -> Turn:
        d = len(hist)
        U = (np.asarray(hist[-1].understood, dtype=bool) if hist else K).copy()  # history: non-terminal turns only
        f = int(S[d, k % S.shape[1]]) if d < S.shape[0] else -1
        if f < 0:
            return Turn(utterance=f"answer (depth {d}, sample {k})", terminal=True, correct=bool((U | ~nd).all()))
        U[f] = True
        return Turn(utterance=f"question: fact {f}?", reply=f"fact {f}", understood=tuple(bool(x) for x in U))

    return simulate


def check_weights(w: Any) -> np.ndarray:
    """SIG weights (n,): finite, ≥ 0, summing to 1 (n = 0 allowed)."""
    wv = finite_vector(w, "w")
    if (wv < 0).any() or (wv.size and abs(wv.sum() - 1.0) > 1e-9):
        raise fail("w", f"weights {wv} (sum {wv.sum():.6g})", "non-negative SIG weights summing to 1")
    return wv


def promed_mcts_init(w: Any, known: Any, script: Any, need: Any, config: MCTSConfig | None = None) -> dict[str, Any]:
    """The search on the scripted stand-in (array inputs), for the registry, conformance and vectors.

    w (n,) SIG weights; known (n,) bool; script (D, width) int in [−1, n); need (n,) bool. Returns the tree
    as arrays (parent, depth, state, terminal, correct, visits, value; one entry per node) and the selected
    trajectories: ``best_path`` (node ids of the top trajectory, root first) and ``best_score``.
    """
    cfg = config or MCTSConfig()
    wv = check_weights(w)
    K, nd = as_mask(known, "known", wv.shape), as_mask(need, "need", wv.shape)
    tree, _ = search(scripted_simulator(script, K, nd), wv, K, cfg)
    best = select_trajectories(tree, replace(cfg, top_k=1))
    path, score = best[0] if best else ((ROOT,), 0.0)
    return {"parent": np.array(tree.parent, dtype=np.int64), "depth": np.array(tree.depth, dtype=np.int64),
            "state": np.array(tree.state), "terminal": np.array(tree.terminal, dtype=bool),
            "correct": np.array(tree.correct, dtype=bool), "visits": np.array(tree.visits),
            "value": np.array(tree.value), "best_path": np.array(path, dtype=np.int64), "best_score": float(score)}


def make_inputs(rng: np.random.Generator) -> dict[str, Any]:
    """2..6 facts with softmax weights, the first ⌊n/2⌋ known, a script of depth 2..4 and width 1..4."""
    n = int(rng.integers(2, 7))
    phi = rng.normal(size=n)
    w = np.exp(phi / 2.0) / np.exp(phi / 2.0).sum()
    known = np.arange(n) < n // 2
    D, width = int(rng.integers(2, 5)), int(rng.integers(1, 5))
    script = rng.integers(-1, n, size=(D, width))
    need = rng.random(n) < 0.4
    return {"w": w, "known": known, "script": script, "need": need,
            "config": {"iterations": int(rng.integers(1, 13)), "max_width": int(rng.integers(1, 4))}}


register(Spec(
    name="promed_mcts_init", kind="curriculum", family="reward", paper=PROMED_PAPER, status="implemented",
    summary="stage 1 data: SIG-guided MCTS over doctor turns (UCT selection, one LLM turn per expansion, SIG "
            "increments + correctness bonus backed up); the highest-scoring dialogues supervise the model before RL",
    fn=promed_mcts_init, config_cls=MCTSConfig,
    outputs=("parent", "depth", "state", "terminal", "correct", "visits", "value", "best_path", "best_score"),
    make_inputs=make_inputs,
    extras={"search": search, "select": select, "best_child": best_child, "uct": uct, "expand": expand,
            "rollout": rollout, "backup": backup, "export_paths": export_paths,
            "select_trajectories": select_trajectories, "llm_turn": llm_turn, "scripted_simulator": scripted_simulator,
            "conformance_configs": lambda: [("mean-return", {"backup": "mean-return"}), ("no-bonus", {"bonus": 0.0})]},
    equations=(
        Equation("state", "s(v) = Σ_i w_i 1[f_i ∈ U(v)], s(root) = Σ_{i ∈ known} w_i (known = first ⌊n/2⌋ facts)",
                 "code mcts.py::get_shapley_fact_score, MCTS.__init__", "official-code", "new_tree",
                 note="U is the LLM-written doctor understanding checked fact by fact; a terminal child keeps its "
                      "parent's state"),
        Equation("uct", "UCT(c) = W/(N + 1e-5) + 2.2 √(ln max(N_p, 1) / (N + 1e-5)); N starts at 0.01",
                 "code mcts.py::MCTSNode.ucb_score", "official-code", "uct",
                 note="mean-return mode: W/N + c √(ln N_p / N)"),
        Equation("select-expand", "descend by argmax UCT while non-terminal with 8 children; then add one new child "
                 "per step (one doctor turn, patient reply, understanding) until an answer",
                 "code mcts.py::MCTS.select, execute_episode, MCTSNode.expand", "official-code", "rollout"),
        Equation("reward", "ρ_i = s(v_i) − s(v_{i−1}) + b/k on the rollout path (b at the leaf), b = 2·1[correct]",
                 "code mcts.py::MCTS.execute_episode", "official-code", "code_node_rewards",
                 note="b applies with use_correctness_reward=True (class option; the scripts run False: bonus=0)"),
        Equation("backup", "rollout nodes: N += 1, W += ρ_i; start and ancestors u: N += 1, W += (Σρ)·0.9^{Δdepth}",
                 "code mcts.py::execute_episode + backpropagate", "official-code", "backup",
                 note="the start node is counted twice per iteration; backup='mean-return' is the textbook rule"),
        Equation("score", "score(τ) = s(leaf) − s(root) + 2·1[correct]; SFT keeps the argmax (top_k)",
                 "code mcts.py::custom_reward, find_best_path, export_paths", "official-code", "select_trajectories",
                 note="paper abstract: 'MCTS to construct high-reward interaction trajectories to supervise the "
                      "model'; the SFT selection beyond the argmax is not in the code"),
    ),
    gradient="not a loss: it builds SFT targets; SFT on a selected dialogue is the policy-gradient weight Â ≡ 1 "
             "at ratio 1 on its doctor tokens",
    properties=(
        "properties/test_promed_mcts_init.py::test_mean_return_visits_and_values_are_consistent: N(parent) = Σ N(child)"
        " + iterations ending there; Q = mean of the backed-up returns",
        "properties/test_promed_mcts_init.py::test_code_backup_matches_replay_and_double_counts_the_start: the "
        "code's counts by an independent replay; parent ≠ Σ children",
        "properties/test_promed_mcts_init.py::test_uct_picks_the_argmax",
        "properties/test_promed_mcts_init.py::test_selection_and_expansion_rules: width ≤ 8, terminals never "
        "expanded, k = number of existing children, selection descends only through full nodes",
        "properties/test_promed_mcts_init.py::test_step_rewards_are_sig_of_each_question: increments = "
        "promed.sig_per_turn(credit='new', known)",
        "properties/test_promed_mcts_init.py::test_scores_telescope_and_best_path_is_argmax",
        "properties/test_promed_mcts_init.py::test_search_is_pure_and_deterministic",
        "properties/test_promed_mcts_init.py::test_llm_turn_composes_the_callables",
        "properties/test_promed_mcts_init.py::test_more_iterations_find_the_informative_dialogue: the search "
        "recovers the dialogue that asks the needed, heavy facts",
        "properties/test_promed_mcts_init.py::test_composition_sft_as_ppo: SFT on the selected trajectory = registry "
        "ppo with Â ≡ 1 on-policy",
        "properties/test_promed_mcts_init.py::test_bad_input_raises",
        "untested: the paper's claim that MCTS initialisation improves the RL stage — an empirical LLM result",
    ),
))

"""Properties of ProMed's stage-1 MCTS (arXiv 2508.13514, official mcts.py) — reference/promed_mcts_init.py.

The LLM parts are the deterministic scripted stand-in (a doctor whose k-th sampled turn at depth d asks about
fact script[d, k] or answers). Expected counts, values and scores are recomputed here from the search log
(which nodes each iteration selected and rolled out — checked to be valid tree paths) with formulas written
in this file, or by brute-force enumeration of the scripted dialogues; never read back from the code under test.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.strategies import seeds
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.promed import sig_per_turn, sig_weights
from rlspec.reference.promed_mcts_init import (
    MCTSConfig,
    Tree,
    Turn,
    backup,
    best_child,
    code_is_terminal,
    export_paths,
    llm_turn,
    promed_mcts_init,
    scripted_simulator,
    search,
    select_trajectories,
    uct,
)


def draw_problem(rng):
    n = int(rng.integers(2, 6))
    w = sig_weights(rng.normal(size=n), tau=1.0)
    known = np.arange(n) < n // 2
    D, width = int(rng.integers(2, 4)), int(rng.integers(1, 4))
    script = rng.integers(-1, n, size=(D, width))
    need = rng.random(n) < 0.5
    return w, known, script, need


def run(rng, backup_mode, iterations=None):
    w, known, script, need = draw_problem(rng)
    cfg = MCTSConfig(iterations=int(rng.integers(1, 16)) if iterations is None else iterations,
                     max_width=int(rng.integers(1, 4)), backup=backup_mode, bonus=float(rng.choice([0.0, 2.0])))
    tree, log = search(scripted_simulator(script, known, need), w, known, cfg)
    for it in log:  # the log is a set of valid tree paths: root .. start, then start .. terminal
        assert it.selection[0] == 0 and it.rollout[0] == it.selection[-1] and tree.terminal[it.rollout[-1]]
        for a, b in zip(it.selection + it.rollout[1:], (it.selection + it.rollout[1:])[1:]):
            assert tree.parent[b] == a
    return tree, log, cfg


def returns_to_go(tree, path, bonus):
    """G_i = Σ_{j ≥ i} r_j with r_0 = 0, r_j = s_j − s_{j−1}, plus the bonus at a correct leaf."""
    s = [tree.state[v] for v in path]
    r = [0.0] + [s[j] - s[j - 1] for j in range(1, len(s))]
    if tree.correct[path[-1]]:
        r[-1] += bonus
    return [sum(r[i:]) for i in range(len(r))]


@given(seeds())
@settings(max_examples=40)
def test_mean_return_visits_and_values_are_consistent(rng):
    """MCTS bookkeeping (backup='mean-return'): every node's visits equal the sum of its children's visits plus the
    iterations that ended at it (only terminal nodes end one), the root's visits equal the number of iterations,
    and each node's value is the SUM — so Q = W/N the MEAN — of the returns-to-go backed up through it."""
    tree, log, cfg = run(rng, "mean-return")
    ended = [0] * tree.size
    backed = [[] for _ in range(tree.size)]
    for it in log:
        full = it.selection + it.rollout[1:]
        ended[full[-1]] += 1
        for v, g in zip(full, returns_to_go(tree, full, cfg.bonus)):
            backed[v].append(g)
    assert tree.visits[0] == cfg.iterations
    for v in range(tree.size):
        assert tree.visits[v] == sum(tree.visits[c] for c in tree.children[v]) + ended[v]
        assert ended[v] == 0 or tree.terminal[v]
        assert tree.visits[v] == len(backed[v])
        if backed[v]:
            assert tree.value[v] / tree.visits[v] == pytest.approx(float(np.mean(backed[v])), abs=1e-12)


@given(seeds())
@settings(max_examples=40)
def test_code_backup_matches_replay_and_double_counts_the_start(rng):
    """Official mcts.py bookkeeping (backup='code'): execute_episode adds 1 visit and ρ_i to each node of the rollout
    path (ρ_i = SIG increment + bonus/k on non-leaf nodes, + bonus at the leaf), backpropagate then adds 1 visit and
    R·0.9^{Δdepth} to the selected node and its ancestors; visits start at 0.01. Recomputed here from the log.
    Consequence shown: the selected node is counted twice per iteration — after one iteration the root has 2.01
    visits and its only child 1.01 — so the standard invariant of test_mean_return_... does not hold for the code."""
    tree, log, cfg = run(rng, "code")
    N = [0.01] * tree.size
    W = [0.0] * tree.size
    for it in log:
        p = it.rollout
        k = len(p) - 1
        b = cfg.bonus if tree.correct[p[-1]] else 0.0
        rho = []
        for i, v in enumerate(p):
            inc = 0.0 if i == 0 else tree.state[v] - tree.state[p[i - 1]]
            rho.append(inc + (b if i == k else b / k))
        for v, x in zip(p, rho):
            N[v] += 1
            W[v] += x
        for u in it.selection:
            N[u] += 1
            W[u] += sum(rho) * 0.9 ** (tree.depth[p[0]] - tree.depth[u])
    np.testing.assert_allclose(tree.visits, N, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tree.value, W, rtol=1e-12, atol=1e-12)
    one, _ = search(scripted_simulator(np.array([[0], [-1]]), np.zeros(2, bool), np.zeros(2, bool)), np.array([0.5, 0.5]),
                    None, MCTSConfig(iterations=1))
    assert one.visits[:2] == (2.01, 1.01)  # root: execute + backpropagate; its only child: execute


def uct_here(tree, c, mode, c_uct=2.2):
    N, W, Np = tree.visits[c], tree.value[c], tree.visits[tree.parent[c]]
    if mode == "code":
        return W / (N + 1e-5) + c_uct * math.sqrt(math.log(max(Np, 1.0)) / (N + 1e-5))
    return math.inf if N == 0 else W / N + c_uct * math.sqrt(math.log(Np) / N)


@given(seeds(), st.sampled_from(["code", "mean-return"]))
@settings(max_examples=25)
def test_uct_picks_the_argmax(rng, mode):
    """Selection by UCT (code ucb_score: W/(N+1e-5) + 2.2√(ln max(N_p,1)/(N+1e-5))): at every iteration t the
    selection path descends, from the root, to the child of maximal UCT (first on ties) while the node is
    non-terminal and has max_width children — replayed on the tree after t iterations (the search is deterministic,
    so the run with t iterations is the prefix of the run with t + 1)."""
    w, known, script, need = draw_problem(rng)
    T = int(rng.integers(2, 10))
    width = int(rng.integers(1, 4))
    sim = scripted_simulator(script, known, need)
    for t in range(T):
        cfg = MCTSConfig(iterations=t, max_width=width, backup=mode)
        tree, _ = search(sim, w, known, cfg)
        _, log = search(sim, w, known, MCTSConfig(iterations=t + 1, max_width=width, backup=mode))
        v, path = 0, [0]
        while not tree.terminal[v] and len(tree.children[v]) >= width:
            scores = [uct_here(tree, c, mode) for c in tree.children[v]]
            v = tree.children[v][scores.index(max(scores))]
            assert best_child(tree, path[-1], cfg) == v
            path.append(v)
        assert log[-1].selection == tuple(path)
    # the code's guard ln max(N_p, 1): a parent with fewer than one visit contributes no exploration bonus
    tiny = Tree(parent=(-1, 0), depth=(0, 1), state=(0.0, 0.0), terminal=(False, True), correct=(False, False),
                visits=(0.01, 0.01), value=(0.0, 0.3), children=((1,), ()), turn=(None, Turn(terminal=True)))
    assert uct(tiny, 1, MCTSConfig()) == pytest.approx(0.3 / (0.01 + 1e-5), rel=1e-12)


@given(seeds())
@settings(max_examples=30)
def test_selection_and_expansion_rules(rng):
    """Expansion (code MCTSNode.expand / is_fully_expanded): no node has more than max_width children, terminal
    (answer) nodes are never expanded, the k-th child of a node is produced by the simulator's k-th call for that
    node (k = its number of children at that time), a terminal child keeps its parent's state, and a non-terminal
    child's state is s(U) = Σ w_i 1[f_i ∈ U] of its understanding."""
    w, known, script, need = draw_problem(rng)
    calls = []
    base = scripted_simulator(script, known, need)

    def sim(hist, k):
        calls.append((len(hist), k))
        return base(hist, k)

    cfg = MCTSConfig(iterations=int(rng.integers(1, 15)), max_width=int(rng.integers(1, 4)))
    tree, _ = search(sim, w, known, cfg)
    assert len(calls) == tree.size - 1
    assert tree.state[0] == pytest.approx(float(w[known].sum()))
    for v in range(tree.size):
        assert len(tree.children[v]) <= cfg.max_width
        assert not (tree.terminal[v] and tree.children[v])
        for k, c in enumerate(tree.children[v]):
            assert (tree.depth[v], k) in calls
            if tree.terminal[c]:
                assert tree.state[c] == tree.state[v]
            else:
                assert tree.state[c] == pytest.approx(float(w @ np.array(tree.turn[c].understood)))


@given(seeds())
@settings(max_examples=30)
def test_step_rewards_are_sig_of_each_question(rng):
    """Step reward = SIG (stage 1 uses the stage-2 quantity): along every exported dialogue the state increments
    s(v_t) − s(v_{t−1}) equal promed.sig_per_turn(acquired, w, credit='new', known) of the facts the questions
    revealed (newly acquired information weighted by Shapley importance)."""
    w, known, script, need = draw_problem(rng)
    tree, _ = search(scripted_simulator(script, known, need), w, known, MCTSConfig(iterations=8, max_width=3))
    for path, _ in export_paths(tree):
        acquired = np.zeros((len(path) - 1, w.shape[0]), bool)
        for t, v in enumerate(path[1:]):
            u = tree.turn[v].utterance
            if u.startswith("question: fact "):
                acquired[t, int(u.split()[2].rstrip("?"))] = True
        inc = np.diff([tree.state[v] for v in path])
        np.testing.assert_allclose(inc, sig_per_turn(acquired, w, "new", known), atol=1e-12)


def brute_force_dialogues(w, known, script, need, bonus):
    """Every dialogue the scripted doctor can produce (choices per depth), with its score s(end) − s(0) + b."""
    D, width = script.shape
    best = []
    for depth in range(D + 1):
        for choices in itertools.product(range(width), repeat=depth):
            facts = [int(script[d, c]) for d, c in enumerate(choices)]
            if any(f < 0 for f in facts):
                continue                                   # an answer earlier ends the dialogue
            if depth < D and all(script[depth, c] >= 0 for c in range(width)):
                continue                                   # no answer option at this depth
            U = known.copy()
            U[facts] = True
            best.append(float(w @ U - w @ known) + (bonus if (U | ~need).all() else 0.0))
    return max(best)


@given(seeds())
@settings(max_examples=30)
def test_scores_telescope_and_best_path_is_argmax(rng):
    """Trajectory score (code custom_reward / find_best_path): Σ of the SIG increments along a root-to-answer path
    plus the bonus for a correct answer telescopes to s(leaf) − s(root) + b; the selected SFT trajectory is the
    first maximiser over the exported paths (DFS order), and top_k keeps the k best in score order; no found
    dialogue beats the brute-force optimum over all scripted dialogues."""
    w, known, script, need = draw_problem(rng)
    cfg = MCTSConfig(iterations=int(rng.integers(1, 12)), max_width=int(rng.integers(1, 4)), top_k=3)
    tree, _ = search(scripted_simulator(script, known, need), w, known, cfg)
    paths = export_paths(tree, cfg.bonus)
    for path, score in paths:
        want = tree.state[path[-1]] - tree.state[0] + (cfg.bonus if tree.correct[path[-1]] else 0.0)
        assert score == pytest.approx(want, abs=1e-12)
    scores = [s for _, s in paths]
    top = select_trajectories(tree, cfg)
    assert top[0] == paths[scores.index(max(scores))]
    assert [s for _, s in top] == sorted(scores, reverse=True)[:3]
    out = promed_mcts_init(w, known, script, need, cfg)
    assert tuple(out["best_path"]) == top[0][0] and out["best_score"] == top[0][1]
    assert max(scores) <= brute_force_dialogues(w, known, script, need, cfg.bonus) + 1e-12


def test_search_is_pure_and_deterministic():
    """Frozen tree + pure functions: the same inputs give the same tree; a backup returns a new tree and leaves the
    one passed in unchanged."""
    rng = np.random.default_rng(3)
    w, known, script, need = draw_problem(rng)
    sim = scripted_simulator(script, known, need)
    a, la = search(sim, w, known, MCTSConfig(iterations=9))
    b, lb = search(sim, w, known, MCTSConfig(iterations=9))
    assert a == b and la == lb
    before = copy.deepcopy(a)
    c = backup(a, la[-1].selection, la[-1].rollout, MCTSConfig())
    assert a == before and c.visits != a.visits


def test_llm_turn_composes_the_callables():
    """LLM parts are user callables: llm_turn turns a doctor, a patient, an understanding checker and an answer
    matcher into the simulator; the code's terminal test is 'answer' in the text, or no 'question', or empty."""
    seen = []
    sim = llm_turn(doctor=lambda h: "question: fever?" if len(h) < 1 else "answer: B",
                   patient=lambda h, q: "yes, 39 degrees",
                   understand=lambda h, q, r: seen.append((q, r)) or [True, False, True],
                   answer_correct=lambda u: u.endswith("B"))
    t0 = sim((), 0)
    assert not t0.terminal and t0.reply == "yes, 39 degrees" and t0.understood == (True, False, True)
    t1 = sim((t0,), 0)
    assert t1.terminal and t1.correct and t1.reply is None and seen == [("question: fever?", "yes, 39 degrees")]
    assert [code_is_terminal(u) for u in ("question: cough?", "my answer: A", "I think it is A", "  ")] == \
        [False, True, True, True]


def test_more_iterations_find_the_informative_dialogue():
    """Paper's purpose of stage 1 ('construct high-reward interaction trajectories'): facts w = (0.1, 0.1, 0.5, 0.3),
    the answer is right only if fact 2 is known; the doctor can ask fact 0, fact 2 or answer, then answer, ask fact 3
    or fact 1. One iteration finds only the first sampled dialogue (ask 0, answer: score 0.1); 5+ iterations find
    the best one (ask 2, ask 3, answer: 0.5 + 0.3 + 2 = 2.8, the brute-force optimum), in both backup modes."""
    w = np.array([0.1, 0.1, 0.5, 0.3])
    known, need = np.zeros(4, bool), np.array([0, 0, 1, 0], bool)
    script = np.array([[0, 2, -1], [-1, 3, 1]])
    assert brute_force_dialogues(w, known, script, need, 2.0) == pytest.approx(2.8)
    for mode in ("code", "mean-return"):
        one = promed_mcts_init(w, known, script, need, MCTSConfig(iterations=1, max_width=3, backup=mode))
        assert one["best_score"] == pytest.approx(0.1)
        many = promed_mcts_init(w, known, script, need, MCTSConfig(iterations=10, max_width=3, backup=mode))
        assert many["best_score"] == pytest.approx(2.8) and many["correct"][many["best_path"][-1]]


def test_composition_sft_as_ppo():
    """Composition: the selected dialogue supervises the model (SFT, stage 1). The SFT loss −mean log π over its
    doctor tokens has the gradient of registry.get('ppo') with Â ≡ 1 at ratio 1 (−1/n per token); and the exported
    trajectories, taken as one group, get registry grpo advantages ordered like their scores."""
    rng = np.random.default_rng(7)
    w, known, script, need = draw_problem(rng)
    tree, _ = search(scripted_simulator(script, known, need), w, known, MCTSConfig(iterations=12, max_width=3))
    (path, _), = select_trajectories(tree)
    n_turns, T = len(path) - 1, 5
    mask = np.ones((n_turns, T), bool)
    logp = rng.uniform(-3, -0.1, size=(n_turns, T))
    _, dlogp = registry.get("ppo")(logp=logp, old_logp=logp.copy(), adv=np.ones((n_turns, T)), mask=mask)
    np.testing.assert_allclose(dlogp, -np.ones_like(logp) / mask.sum(), atol=1e-15)
    scores = np.array([s for _, s in export_paths(tree)])
    adv = registry.get("grpo")(rewards=scores, group=np.zeros(len(scores), int), mask=np.ones((len(scores), 1), bool))
    assert np.all(np.diff(adv[np.argsort(scores), 0]) >= -1e-12)


def test_bad_input_raises():
    """Bad input names the argument: weights that are negative or do not sum to 1, a script outside [−1, n), a
    known mask of the wrong length, a simulator that is not callable or returns something else, bad config."""
    w, known, need, script = np.array([0.5, 0.5]), np.array([True, False]), np.array([False, True]), np.array([[0, -1]])
    with pytest.raises(RLSpecValueError, match="^w:"):
        promed_mcts_init(np.array([0.6, 0.6]), known, script, need)
    with pytest.raises(RLSpecValueError, match="^w:"):
        promed_mcts_init(np.array([1.5, -0.5]), known, script, need)
    with pytest.raises(RLSpecValueError, match="script"):
        promed_mcts_init(w, known, np.array([[2, -1]]), need)
    with pytest.raises(RLSpecValueError, match="known"):
        promed_mcts_init(w, np.array([True]), script, need)
    with pytest.raises(RLSpecValueError, match="simulate"):
        search("not callable", w, known)
    with pytest.raises(RLSpecValueError, match="simulate"):
        search(lambda h, k: "a string", w, known)
    for field, value in (("iterations", -1), ("max_width", 0), ("backup", "max"), ("c_uct", -1.0), ("top_k", 0)):
        with pytest.raises(RLSpecValueError, match=field):
            MCTSConfig(**{field: value})
    assert isinstance(Turn(), Turn)

"""A²FM / APO: Adaptive Policy Optimization — forced + adaptive rollouts across modes, cost-regularised reward.

Chen, Cao, Zhang, Qin, Li, Zhu, Shi, Zhu, Liu, Liang, Gui, Zhang, Yang, Jiang, Zhou (OPPO), "A²FM: An Adaptive
Agent Foundation Model for Tool-Aware Hybrid Reasoning", arXiv 2510.12838 (ICLR 2026). Official repository
OPPO-PersonalAI/Adaptive_Agent_Foundation_Models: inference only; the APO training code is not released. Its
README carries the authors' APO figure (``assets/rl.jpg``), with a worked example whose numbers we reproduce
exactly (see ``properties/test_a2fm.py``). The paper's method section could not be read here.

One backbone answers in three modes, m ∈ {0: instant, 1: reasoning, 2: agentic}; a routing prefix at the start
of the response names the mode. APO is where the rollouts and the reward come from::

    plan      per query x: ρ FORCED rollouts per mode (the mode prefix is injected, "w/o loss")
              + γ ADAPTIVE rollouts (the policy routes itself)                         (apo_rollout_plan)
    reward    r₀ = acc · fmt                                                            (base_reward)
    estimate  p̂_m(x) = mean r₀ over the forced rollouts of mode m                      (mode_accuracy)
    difficulty x is easy iff p̂_inst(x) ≥ τ                                             (is_easy)
    penalty   r = r₀ · (1 − λ p̂_inst(x)^α)  for ADAPTIVE rollouts in a non-instant mode on an easy x;
              r = r₀ otherwise                                                          (a2fm_reward)
    advantage Â = z-score of r over ALL ρM + γ rollouts of x, population std           (registry "grpo", ddof=0)
    loss      a clipped policy-gradient loss; the injected prefix tokens are masked     (forced_prefix_mask)

Where it sits: reward → advantage. A²FM adds no loss of its own; the base RL loss of the paper could not be
read (the composition test feeds the advantages into the registry's PPO loss).

Provenance, honestly:

* read in the authors' figure (official repository, ``assets/rl.jpg``): the forced/adaptive split with prefix
  injection without loss; the reward acc × fmt; per-mode accuracies 1/2, 0/2, 1/2 marking the
  question as easy; the correct adaptive rollouts of the easy question rewarded 0.8 in the reasoning and agentic
  modes and 1 in the instant mode; the mixed-group advantages 1.06, −1.10, 0.62 — which are exactly the
  population-std z-scores of the nine rewards (1, 0, 0, 0, 0, 1, 0.8, 0.8, 1). The figure prints 0.6 for the
  reasoning adaptive rollout where the z-score is 0.62 (rounding in the figure; its agentic twin shows 0.62).
* README and abstract (in our words): the per-mode accuracy of the group's rollouts measures how hard a query is;
  sampling is spread across the modes on purpose, and the reward is regularized by the mode's cost.
* reconstructed (ours): the form of the penalty. The figure fixes only one point, 1 − 0.2 at p̂_inst = 1/2; we
  implement the family r₀·(1 − λ p̂_inst^α), whose default λ = 0.2, α = 0 (a constant 20 % cut) reproduces it,
  and α > 0 makes the cut grow with how well the instant mode does. The threshold τ = 1/2 is the smallest value
  consistent with the figure; ``easy_rule="best"`` (instant at least as accurate as every other mode) also
  classifies the figure's question as easy. ρ, γ, λ, α, τ and the base loss were not recovered.

Conventions and defined cases:

* modes are integers 0..M−1 (M = 3 by default); an adaptive rollout's mode is the one the policy chose;
* a query with no forced instant rollout cannot be judged easy (no estimate): it gets no penalty;
* easy requires p̂_inst > 0 as well (a query no mode solves is not easy under ``easy_rule="best"``);
* ``penalize="all"`` also cuts forced non-instant rollouts (the figure leaves them unpenalised: default
  ``"adaptive"``);
* rewards outside [0, 1] for acc or fmt are rejected; every output is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_mask, choice, fail, finite_vector, group_ids, in_range, positive
from rlspec.reference.registry import Equation, Paper, Spec, register

A2FM_PAPER = Paper(arxiv="2510.12838", title="A²FM: An Adaptive Agent Foundation Model for Tool-Aware Hybrid "
                   "Reasoning", year=2025)
MODES = ("instant", "reasoning", "agentic")
INSTANT = 0


@dataclass(frozen=True)
class A2FMConfig:
    """lam (λ ∈ [0, 1]): size of the cut for non-instant answers to easy queries (0.2 reproduces the authors'
    figure, 1 → 0.8); alpha (α ≥ 0): exponent on p̂_inst in the cut (0: constant, as in the figure); tau
    (τ ∈ (0, 1]): easy iff p̂_inst ≥ τ (figure: 1/2 is easy); easy_rule: "threshold" or "best" (p̂_inst ≥
    max_m p̂_m); penalize: "adaptive" (figure) or "all" rollouts; n_modes: M (3: instant, reasoning, agentic).
    All reconstructed except the one point the figure fixes (see the module docstring)."""

    lam: float = 0.2
    alpha: float = 0.0
    tau: float = 0.5
    easy_rule: str = "threshold"
    penalize: str = "adaptive"
    n_modes: int = 3

    def __post_init__(self) -> None:
        in_range(self.lam, "lam", 0.0, 1.0)
        positive(self.alpha, "alpha", allow_zero=True)
        in_range(self.tau, "tau", 0.0, 1.0, lo_open=True)
        choice(self.easy_rule, "easy_rule", ("threshold", "best"))
        choice(self.penalize, "penalize", ("adaptive", "all"))
        if not isinstance(self.n_modes, int) or isinstance(self.n_modes, bool) or self.n_modes < 2:
            raise fail("n_modes", repr(self.n_modes), "an integer ≥ 2 (instant is mode 0)")


def apo_rollout_plan(rho: int = 2, gamma: int = 3, n_modes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The rollouts of one query: (mode (ρM + γ,) int, forced (ρM + γ,) bool).

    ρ forced rollouts for each mode m (mode = m, its prefix injected), then γ adaptive ones (mode = −1: the
    policy chooses). Defaults ρ = 2, γ = 3 are the figure's example, not recovered training values.
    """
    for v, name in ((rho, "rho"), (gamma, "gamma"), (n_modes, "n_modes")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise fail(name, repr(v), "a non-negative integer")
    mode = np.concatenate([np.repeat(np.arange(n_modes), rho), np.full(gamma, -1)]).astype(np.int64)
    return mode, mode >= 0


def base_reward(acc: np.ndarray, fmt: np.ndarray) -> np.ndarray:
    """r₀ = acc · fmt (B,) — the figure's "Acc. × Fmt. Reward"."""
    return acc * fmt


def mode_accuracy(r0: np.ndarray, mode: np.ndarray, forced: np.ndarray, group: np.ndarray,
                  n_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """p̂ (B, M): mean r₀ of the forced rollouts of mode m in row b's group (0 where there are none), and the
    counts n (B, M) of those rollouts. Adaptive rollouts never enter the estimate."""
    p_hat = np.zeros((r0.shape[0], n_modes))
    n = np.zeros((r0.shape[0], n_modes))
    for k in np.unique(group):
        rows = group == k
        for m in range(n_modes):
            sel = rows & forced & (mode == m)
            n[rows, m] = sel.sum()
            p_hat[rows, m] = r0[sel].mean() if sel.any() else 0.0
    return p_hat, n


def is_easy(p_hat: np.ndarray, n: np.ndarray, cfg: A2FMConfig) -> np.ndarray:
    """easy (B,) bool: an instant estimate exists, is > 0, and p̂_inst ≥ τ ("threshold") or p̂_inst ≥ p̂_m for
    every mode with an estimate ("best")."""
    p_inst = p_hat[:, INSTANT]
    ok = (n[:, INSTANT] > 0) & (p_inst > 0)
    if cfg.easy_rule == "threshold":
        return ok & (p_inst >= cfg.tau)
    best = np.where(n > 0, p_hat, -np.inf).max(axis=1)
    return ok & (p_inst >= best)


def penalty_factor(p_inst: np.ndarray, easy: np.ndarray, mode: np.ndarray, forced: np.ndarray,
                   cfg: A2FMConfig) -> np.ndarray:
    """f (B,) = 1 − λ p̂_inst^α where the cut applies (easy query, non-instant mode, adaptive rollout unless
    penalize="all"), 1 elsewhere; f ∈ [1 − λ, 1]."""
    applies = easy & (mode != INSTANT)
    if cfg.penalize == "adaptive":
        applies &= ~forced
    return np.where(applies, 1.0 - cfg.lam * np.power(p_inst, cfg.alpha), 1.0)


def validate(acc, fmt, mode, forced, group, n_modes: int):
    """acc, fmt (B,) in [0, 1]; mode (B,) ints in 0..M−1; forced (B,) bool; group (B,) ints."""
    a = finite_vector(acc, "acc")
    B = a.shape[0]
    f = finite_vector(fmt, "fmt", B)
    for x, name in ((a, "acc"), (f, "fmt")):
        if ((x < 0) | (x > 1)).any():
            raise fail(name, f"values in [{x.min()}, {x.max()}]", "values in [0, 1]")
    md = np.asarray(mode)
    if md.shape != (B,) or not (np.issubdtype(md.dtype, np.integer) or (B == 0 and md.size == 0)):
        raise fail("mode", f"{md.dtype} {md.shape}", f"integer modes of shape ({B},)")
    md = md.astype(np.int64)
    if ((md < 0) | (md >= n_modes)).any():
        raise fail("mode", f"values in [{md.min()}, {md.max()}]", f"modes in 0..{n_modes - 1} (the chosen one for "
                   "adaptive rollouts)")
    fo = as_mask(forced, "forced", (B,))
    return a, f, md, fo, group_ids(group, B)


def a2fm_reward(acc, fmt, mode, forced, group, config: A2FMConfig | None = None) -> np.ndarray:
    """APO's cost-regularised reward r (B,) for the rollouts of a batch of queries.

    Args: acc (B,) answer correctness in [0, 1]; fmt (B,) format validity in [0, 1]; mode (B,) the mode of each
    rollout (injected for forced ones, chosen for adaptive ones); forced (B,) bool; group (B,) query ids.
    Returns: r (B,) in [0, 1], r ≤ acc·fmt.
    """
    cfg = config or A2FMConfig()
    a, f, md, fo, g = validate(acc, fmt, mode, forced, group, cfg.n_modes)
    r0 = base_reward(a, f)
    p_hat, n = mode_accuracy(r0, md, fo, g, cfg.n_modes)
    easy = is_easy(p_hat, n, cfg)
    return r0 * penalty_factor(p_hat[:, INSTANT], easy, md, fo, cfg)


def a2fm_advantage(rewards, group, mask, eps: float = 1e-6) -> np.ndarray:
    """Mixed-group advantage (B, T): the registry's GRPO z-score with the population std (ddof = 0) over all
    rollouts (forced and adaptive) of each query — the figure's numbers pin ddof = 0."""
    from rlspec.reference import registry
    from rlspec.reference.grpo import GRPOConfig

    return registry.get("grpo")(rewards=rewards, group=group, mask=mask, config=GRPOConfig(ddof=0, eps=eps))


def forced_prefix_mask(mask, forced, prefix_len) -> np.ndarray:
    """Loss mask (B, T) without the injected mode prefix: the first ``prefix_len[b]`` valid tokens of every forced
    rollout are dropped (figure: "Prefix Injection w/o Loss"); adaptive rollouts keep their routing tokens."""
    M = as_mask(mask, "mask")
    if M.ndim != 2:
        raise fail("mask", f"shape {M.shape}", "shape (B, T)")
    fo = as_mask(forced, "forced", (M.shape[0],))
    L = np.broadcast_to(np.asarray(prefix_len), (M.shape[0],))
    if not np.issubdtype(L.dtype, np.integer) or (L < 0).any():
        raise fail("prefix_len", repr(prefix_len), "non-negative integer prefix lengths")
    rank = np.cumsum(M, axis=1)  # 1-based index of each valid token in its row
    return M & ~(fo[:, None] & (rank <= L[:, None]))


def cost_of_pass(cost, correct) -> float:
    """Σ cost / Σ correct: the cost per correct answer (A²FM's headline metric); inf if nothing is correct."""
    c = finite_vector(cost, "cost")
    k = finite_vector(correct, "correct", c.shape[0])
    if (c < 0).any() or (k < 0).any() or (k > 1).any():
        raise fail("cost/correct", "negative costs or correctness outside [0, 1]", "cost ≥ 0, correct ∈ [0, 1]")
    return float("inf") if k.sum() == 0 else float(c.sum() / k.sum())


def expected_reward_by_mode(p_modes, rho: int, config: A2FMConfig | None = None) -> np.ndarray:
    """E[r | an adaptive rollout of x in mode m] (M,), exactly: P_m · E_forced[f_m], the expectation over the
    success counts of the ρ forced rollouts per mode (independent of the adaptive rollout given x).

    p_modes (M,): success probabilities of x in each mode (acc·fmt ∈ {0, 1})."""
    from rlspec.reference.envs.mode_bandit import forced_outcomes

    cfg = config or A2FMConfig()
    p = np.asarray(p_modes, dtype=np.float64)
    out = np.zeros(p.shape[0])
    for counts, prob in forced_outcomes(p, rho):
        p_hat = (np.asarray(counts, dtype=np.float64) / rho)[None, :] if rho > 0 else np.zeros((1, p.shape[0]))
        n = np.full((1, p.shape[0]), float(rho))
        easy = is_easy(p_hat, n, cfg)
        modes = np.arange(p.shape[0])
        f = penalty_factor(np.full(p.shape[0], p_hat[0, INSTANT]), np.repeat(easy, p.shape[0]), modes,
                           np.zeros(p.shape[0], dtype=bool), cfg)
        out += prob * f
    return p * out


def optimal_router(P, rho: int, config: A2FMConfig | None = None) -> np.ndarray:
    """m*(x) (X,): the mode maximising the expected APO reward of an adaptive rollout, per query type (first
    index on ties, i.e. the cheaper mode)."""
    P = np.asarray(P, dtype=np.float64)
    return np.array([int(np.argmax(expected_reward_by_mode(P[x], rho, config))) for x in range(P.shape[0])])


def make_inputs(rng: np.random.Generator) -> dict:
    """A few queries, each with the APO plan (ρ forced per mode + γ adaptive), binary or partial acc, binary fmt."""
    Q = int(rng.integers(1, 4))
    rho, gamma = int(rng.integers(0, 3)), int(rng.integers(0, 4))
    if 3 * rho + gamma == 0:
        gamma = 1
    mode, forced = apo_rollout_plan(rho, gamma)
    mode = np.tile(mode, Q)
    forced = np.tile(forced, Q)
    mode = np.where(forced, mode, rng.integers(0, 3, size=mode.shape))
    B = mode.shape[0]
    acc = (rng.random(B) < rng.choice([0.2, 0.5, 0.9])).astype(np.float64)
    if rng.random() < 0.4:  # partial-credit answers (e.g. F1) as well
        acc = np.where(rng.random(B) < 0.5, acc, np.round(rng.random(B), 2))
    fmt = (rng.random(B) < 0.9).astype(np.float64)
    return {"acc": acc, "fmt": fmt, "mode": mode, "forced": forced,
            "group": np.repeat(rng.choice(np.arange(-5, 50), size=Q, replace=False), 3 * rho + gamma)}


_FIG = "official repository OPPO-PersonalAI/Adaptive_Agent_Foundation_Models, assets/rl.jpg (the APO figure)"

EQUATIONS = (
    Equation("apo-rollouts", "per query: ρ forced rollouts per mode (prefix injected, no loss) + γ adaptive ones",
             "arXiv 2510.12838 (APO); authors' figure", "official-code", "apo_rollout_plan",
             note=f"{_FIG}: 2 forced per mode and 3 adaptive in the example; ρ, γ of training not recovered"),
    Equation("apo-base-reward", "r₀ = acc · fmt", "authors' figure ('Acc. × Fmt. Reward')", "official-code",
             "base_reward", note=_FIG),
    Equation("apo-mode-accuracy", "p̂_m(x) = mean of r₀ over the forced rollouts of mode m",
             "authors' figure ('the accuracies of three mode are 1/2, 0/2, 1/2'); README ('accuracy rate in "
             "inter-group rollouts')", "official-code", "mode_accuracy", note=_FIG),
    Equation("apo-difficulty", "easy(x) ⇔ p̂_inst(x) ≥ τ (τ = 1/2)  [or p̂_inst ≥ max_m p̂_m]",
             "authors' figure (1/2 ⇒ easy); rule ours", "reconstructed", "is_easy",
             note="the figure's question (instant 1/2, reasoning 0, agentic 1/2) is easy under both rules"),
    Equation("apo-cost-reward", "r = r₀·(1 − λ p̂_inst^α) for adaptive non-instant rollouts of easy queries, else r₀",
             "arXiv 2510.12838 abstract ('cost-regularized reward'); authors' figure (1 → 0.8 for reasoning and "
             "agentic, 1 → 1 for instant)", "reconstructed", "a2fm_reward",
             note="λ = 0.2, α = 0 reproduce the figure's single point; the paper's functional form not read"),
    Equation("apo-mixed-group-advantage", "Â_i = (r_i − mean r)/std r over all ρM + γ rollouts of x, population std",
             "authors' figure ('Mixed-Group Computation': 1.06, −1.10, 0.62)", "official-code", "a2fm_advantage",
             note="reproduced exactly with the registry's grpo (ddof=0); ddof=1 would give 1.00/−1.04/0.59"),
    Equation("cost-of-pass", "cost of pass = Σ cost / Σ correct", "arXiv 2510.12838 abstract ($0.00487 per correct "
             "answer)", "paper", "cost_of_pass", note="the metric; the reported savings are empirical"),
)

register(Spec(
    name="a2fm", kind="reward", family="agentic", paper=A2FM_PAPER, status="partial",
    summary="APO reward: acc·fmt, cut by λ·p̂_inst^α for adaptive non-instant answers to queries the forced instant "
            "rollouts show to be easy; forced rollouts per mode keep the mode estimates unbiased; advantages are "
            "the registry's GRPO z-scores over the mixed group (reward → advantage)",
    fn=a2fm_reward, config_cls=A2FMConfig, equations=EQUATIONS, outputs=("reward",), make_inputs=make_inputs,
    missing="the paper's exact penalty form and constants (λ, α, τ, ρ, γ) and its base RL loss: only the authors' "
            "figure and the abstract were readable; the penalty family r₀(1 − λ p̂_inst^α) and the easy rule are "
            "reconstructed to reproduce the figure's worked example",
    extras={"apo_rollout_plan": apo_rollout_plan, "mode_accuracy": mode_accuracy, "is_easy": is_easy,
            "penalty_factor": penalty_factor, "a2fm_advantage": a2fm_advantage,
            "forced_prefix_mask": forced_prefix_mask, "cost_of_pass": cost_of_pass,
            "expected_reward_by_mode": expected_reward_by_mode, "optimal_router": optimal_router,
            "conformance_configs": lambda: [("best-rule", {"easy_rule": "best"}),
                                            ("alpha=2", {"alpha": 2.0, "lam": 0.5}),
                                            ("penalize-all", {"penalize": "all", "tau": 0.25}),
                                            ("lam=0", {"lam": 0.0})],
            "figures": (("img/a2fm.png", "APO on the mode bandit: the router learns instant for the easy type, "
                                         "reasoning and agentic where they are needed; λ = 0 routes by accuracy "
                                         "alone"),)},
    gradient="no loss of its own: r feeds the GRPO advantage (population std over the mixed group), which weights a "
             "clipped policy-gradient loss; the injected prefix of forced rollouts is masked (no routing gradient "
             "from forced rollouts)",
    properties=(
        "properties/test_a2fm.py::test_authors_figure_is_reproduced: rewards (1, 0.8, 0.8 …) and mixed-group "
        "advantages 1.06 / −1.10 / 0.62 of the authors' APO figure",
        "properties/test_a2fm.py::test_forced_sampling_gives_rho_per_mode_and_unbiased_estimates: E[p̂_m] = P_m "
        "exactly (binomial enumeration), for every ρ ≥ 1",
        "properties/test_a2fm.py::test_adaptive_only_estimates_are_biased: without forced rollouts the estimate "
        "(0 when a mode is never chosen) has mean P_m(1 − (1 − π_m)^γ) < P_m, exactly",
        "properties/test_a2fm.py::test_cost_term_orders_modes_on_easy_queries: easy ⇒ r(instant) = r₀ > r(non-instant) "
        "= r₀(1 − λ p̂^α); not easy ⇒ r = r₀ for every mode",
        "properties/test_a2fm.py::test_reward_bounds_and_monotonicity: 0 ≤ (1 − λ) r₀ ≤ r ≤ r₀ ≤ 1; r non-increasing "
        "in λ and in p̂_inst (α > 0)",
        "properties/test_a2fm.py::test_lambda_zero_is_accuracy_only_routing: λ = 0 ⇒ r = acc·fmt and the optimal "
        "router is argmax_m P_m",
        "properties/test_a2fm.py::test_optimal_router_easy_to_instant_hard_to_cheapest_adequate: exact expectations "
        "on the mode bandit",
        "properties/test_a2fm.py::test_cost_of_pass_falls_against_single_mode_routers: the APO-optimal router's cost "
        "per correct answer is below always-reasoning and always-agentic on the toy",
        "properties/test_a2fm.py::test_prefix_injection_carries_no_loss: the forced prefix tokens get zero gradient "
        "in the registry's PPO loss; adaptive routing tokens do not",
        "properties/test_a2fm.py::test_composition_rewards_into_grpo_and_ppo: reward → registry grpo (ddof=0) → "
        "registry ppo",
        "properties/test_a2fm.py::test_router_training_reaches_the_optimal_router: a seeded APO run on the mode "
        "bandit routes every type to its exact optimum",
        "properties/test_a2fm.py::test_bad_input_raises",
        "properties/test_a2fm.py::test_optimized_matches_reference",
        "properties/test_envs_mode_bandit.py::test_forced_outcomes_are_a_distribution_with_binomial_means",
        "untested: the 32B results (13.4% BrowseComp, 70.4% AIME25, 16.7% HLE) and the cost of pass $0.00487 "
        "(−45.2% vs reasoning, −33.5% vs agentic) — empirical claims about a trained LLM",
        "untested: a cost ordering between the reasoning and agentic modes — the figure cuts both by the same amount "
        "and the paper's cost term could not be read",
    ),
))

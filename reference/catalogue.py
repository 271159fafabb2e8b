"""The mission's catalogue: every seed paper, visible from day one.

Each row is (name, kind, family, arXiv id, year, title, one-line summary). A paper whose module
is not written yet appears in the registry as a ``planned`` entry built from its row; the module
that implements it registers an entry of the same name, which replaces the planned one.
Titles follow the paper's own title as listed in the seed list and our notes in
``shared/papers/`` (A = ratio/clipping/baseline, B = advantage/reward/sampling, C = classic RL).
"""

from __future__ import annotations

from reference.registry import Paper, Spec

PLANNED_MISSING = "not built yet: reference, properties, optimized and conformance are all to do"

# name, kind, family, arxiv, year, title, summary
SEED_PAPERS: tuple[tuple[str, str, str, str, int, str, str], ...] = (
    # --- notes A: ratio / clipping / loss / baseline family
    ("sapo", "policy_loss", "ratio/clipping", "2511.20347", 2025,
     "Soft Adaptive Policy Optimization", "soft sigmoid gate on the token ratio instead of a hard clip"),
    ("fiberpo", "policy_loss", "ratio/clipping", "2603.08239", 2026,
     "Fibration Policy Optimization", "two-scale (sequence and token) ratio gating"),
    ("r2vpo", "policy_loss", "ratio/clipping", "2601.03320", 2026,
     "Ratio-Variance Regularized Policy Optimization", "ratio-variance penalty with a primal-dual multiplier"),
    ("brrl", "policy_loss", "ratio/clipping", "2604.18578", 2026,
     "Bounded Ratio Reinforcement Learning", "analytic bounded-ratio target policy (BPO / GBPO)"),
    ("t_ppo", "advantage", "ratio/clipping", "2506.15050", 2025,
     "Truncated Proximal Policy Optimization", "truncated rollouts with extended GAE"),
    ("capo_curvature", "policy_loss", "ratio/clipping", "2510.00819", 2025,
     "Stabilizing Policy Gradients for Sample-Efficient Reinforcement Learning in LLM Reasoning",
     "curvature-aware token masking"),
    ("capo_calibration", "advantage", "advantage", "2604.12632", 2026,
     "Calibration-Aware Policy Optimization for Reasoning LLMs", "AUC-consistent pairwise advantage"),
    ("grpo_guard", "policy_loss", "ratio/clipping", "2510.22319", 2025,
     "GRPO-Guard: Mitigating Implicit Over-Optimization in Flow Matching via Regulated Clipping",
     "ratio normalisation for flow-matching SDE policies"),
    ("dgpo_distribution", "advantage", "advantage", "2605.03327", 2026,
     "Distribution-Guided Policy Optimization", "Hellinger/entropy token-level credit redistribution"),
    ("hapo", "policy_loss", "ratio/clipping", "2509.16591", 2025,
     "Heterogeneous Adaptive Policy Optimization", "entropy-adaptive temperature, advantage and clip"),
    ("a2tgpo", "policy_loss", "multi-turn", "2605.06200", 2026,
     "Agentic Turn-Group Policy Optimization with Adaptive Turn-level Clipping",
     "turn-level information-gain credit with turn-level clipping"),
    ("oblr_po", "advantage", "advantage", "2511.23310", 2025,
     "Optimal Baseline and Learning-Rate Policy Optimization", "variance-optimal baseline and SNR learning rate"),
    ("poise", "advantage", "advantage", "2605.07579", 2026,
     "Your Language Model is Its Own Critic", "value probe on the actor's hidden states as baseline"),
    ("spo", "tracker", "advantage", "2509.13232", 2025,
     "Single-stream Policy Optimization", "persistent per-prompt Beta value tracker as baseline, one sample per prompt"),
    ("spo_segment", "advantage", "advantage", "2505.23564", 2025,
     "Segment Policy Optimization", "segment-level Monte-Carlo advantages (chain and tree)"),
    ("riskpo", "policy_loss", "risk", "2510.00911", 2025,
     "Risk-based Policy Optimization", "mixed value-at-risk objective with question bundling"),
    ("dvao", "advantage", "advantage", "2605.25604", 2026,
     "Dynamic Variance-adaptive Advantage Optimization", "multi-reward advantage with variance-adaptive weights"),
    # --- notes B: advantage, reward, sampling, curriculum, multi-turn
    ("promed", "reward", "reward", "2508.13514", 2025,
     "ProMed: Shapley Information Gain Guided Reinforcement Learning for Proactive Medical LLMs",
     "Shapley information gain rewards for questions, token-level group baseline"),
    ("d3s", "sampler", "sampling", "2509.22115", 2025,
     "Learning More with Less: Dynamic Dual-Level Down-Sampling", "sample- and token-level down-sampling"),
    ("pipo", "advantage", "advantage", "2604.00860", 2026,
     "Policy Improvement Reinforcement Learning", "retrospective advantage rescaling"),
    ("aspo", "advantage", "advantage", "2508.19201", 2025,
     "Understanding Tool-Integrated Reasoning", "advantage shaping policy optimization for tool use"),
    ("infopo", "reward", "multi-turn", "2603.00656", 2026,
     "Information-Driven Policy Optimization", "turn-level information reward with gated fusion"),
    ("fg_expo", "curriculum", "sampling", "2605.11403", 2026,
     "Frontier-guided Exploration-prioritized Policy Optimization", "adaptive KL schedule and curriculum sampling"),
    ("ib_tpo", "advantage", "multi-turn", "2605.28109", 2026,
     "Long Live The Balance: Information-Bottleneck driven Tree-based Policy Optimization",
     "tree rollouts with step-level advantages"),
    ("dgpo_difficulty", "advantage", "advantage", "2601.20614", 2026,
     "Harder Is Better: Difficulty-aware Group Policy Optimization", "difficulty-aware normalisation and question weights"),
    ("otc", "reward", "reward", "2504.14870", 2025,
     "Acting Less is Reasoning More: Optimal Tool Calls", "tool-call-count reward shaping"),
    ("gcpo", "reward", "reward", "2506.07160", 2025,
     "GeometryZero: Group Contrastive Policy Optimization", "conditional auxiliary reward by group contrast"),
    ("igpo_infogain", "reward", "multi-turn", "2510.14967", 2025,
     "Information Gain-based Policy Optimization", "turn-level information-gain rewards for multi-turn agents"),
    ("xrpo", "sampler", "sampling", "2510.06672", 2025,
     "XRPO: Targeted Exploration and Exploitation for GRPO", "rollout allocation and advantage sharpening"),
    ("mmr1_vas", "sampler", "sampling", "2509.21268", 2025,
     "MMR1: Variance-Aware Sampling", "prompt sampling by variance promotion score"),
    ("sapo_swarm", "sampler", "sampling", "2509.08721", 2025,
     "Sharing is Caring: Swarm Sampling Policy Optimization", "decentralised rollout sharing between agents"),
    ("hgpo", "advantage", "multi-turn", "2602.22817", 2026,
     "Hierarchy-of-Groups Policy Optimization", "nested step-group advantages for agents"),
    ("scaf_grpo", "curriculum", "sampling", "2510.19807", 2025,
     "Scaf-GRPO: Scaffolded Group Relative Policy Optimization", "hint-scaffolded rollouts for zero-success groups"),
    ("adora", "advantage", "advantage", "2602.10019", 2026,
     "ADORA: Advantage Dynamics via Online Rollout Adaptation", "group-level advantage reweighting"),
    ("copo", "advantage", "advantage", "2508.04138", 2025,
     "Consistency-Aware Policy Optimization", "global advantage blended by an entropy gate"),
    # --- notes C: classic RL, theory, other policy classes, agentic
    ("n_harpg", "tabular", "classic-rl", "2302.01734", 2023,
     "Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies",
     "normalised PG with implicit gradient transport / Hessian-aided recursion"),
    ("a2pr", "tabular", "classic-rl", "2405.19909", 2024,
     "Adaptive Advantage-guided Policy Regularization for Offline Reinforcement Learning",
     "advantage-guided behaviour augmentation"),
    ("agnostic_rl", "tabular", "theory", "2506.01884", 2025,
     "Agnostic Reinforcement Learning: Foundations and Algorithms", "trajectory trees and spanning capacity"),
    ("parl", "tabular", "theory", "2308.02585", 2023,
     "PARL: A Unified Framework for Policy Alignment in Reinforcement Learning", "bilevel policy alignment"),
    ("expo", "tabular", "classic-rl", "2507.07986", 2025,
     "EXPO: Stable Reinforcement Learning with Expressive Policies", "base expressive policy with Gaussian edits"),
    ("dr_rpo", "tabular", "theory", "2510.14246", 2025,
     "Policy Regularized Distributionally Robust Markov Decision Processes with Linear Function Approximation",
     "robust MDP with policy regularisation"),
    ("hdpo", "tabular", "classic-rl", "2306.11246", 2023,
     "Deep Reinforcement Learning for Inventory Networks: Toward Reliable Policy Optimization",
     "hindsight differentiable policy optimisation with pathwise gradients"),
    ("vas", "tabular", "decoding", "2405.06639", 2024,
     "Value Augmented Sampling for Language Model Alignment and Personalization", "value-augmented decoding"),
    ("dgpo_graph", "tabular", "classic-rl", "2602.19261", 2026,
     "DGPO: RL-Steered Graph Diffusion for Neural Architecture Generation", "policy gradient through DAG diffusion"),
    ("pdppo", "tabular", "classic-rl", "2504.05150", 2025,
     "Post-Decision Proximal Policy Optimization with Dual Critic Networks", "PPO with post-decision-state critics"),
    ("distributional_dp", "tabular", "theory", "2501.13028", 2025,
     "Optimizing Return Distributions with Distributional Dynamic Programming", "stock-augmented distributional DP"),
    ("igpo_inpainting", "advantage", "diffusion-llm", "2509.10396", 2025,
     "Inpainting-Guided Policy Optimization for Diffusion Large Language Models",
     "inpainting replaces zero-advantage groups"),
    ("inpo", "tabular", "theory", "2407.00617", 2024,
     "Iterative Nash Policy Optimization", "no-regret learning towards the Nash policy of a preference game"),
    ("gpc", "tabular", "classic-rl", "2510.01068", 2025,
     "Compose Your Policies! Test-time Distribution-level Composition", "weighted composition of diffusion scores"),
    ("craft_gui", "curriculum", "agentic", "2508.11360", 2025,
     "CRAFT-GUI: Curriculum-Reinforced Agent For GUI Tasks", "curriculum GRPO for GUI agents"),
    ("a2fm", "reward", "agentic", "2510.12838", 2025,
     "A²FM: An Adaptive Agent Foundation Model for Tool-Aware Hybrid Reasoning", "cost-aware adaptive policy optimisation"),
    ("tapo", "policy_loss", "agentic", "2510.07038", 2025,
     "Tool-Augmented Policy Optimization", "DAPO with tool-call tokens masked out"),
)


def planned_specs() -> list[Spec]:
    """A planned entry per seed paper (replaced by the implementing module when there is one)."""
    return [
        Spec(name=name, kind=kind, family=family, paper=Paper(arxiv=arxiv, title=title, year=year),
             status="planned", summary=summary, missing=PLANNED_MISSING)
        for name, kind, family, arxiv, year, title, summary in SEED_PAPERS
    ]

"""The mission's catalogue: every seed paper, visible from day one.

Each row is (name, kind, family, arXiv id, year, title, one-line summary). A paper whose module
is not written yet appears in the registry as a ``planned`` entry built from its row; the module
that implements it registers an entry of the same name, which replaces the planned one.
Titles follow the paper's own title as listed in the seed list and our notes in
``shared/papers/`` (A = ratio/clipping/baseline, B = advantage/reward/sampling, C = classic RL).
"""

from __future__ import annotations

from rlspec.reference.registry import Paper, Spec

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


# Quantities the peer frameworks ship that the seed papers do not cover (found while writing the
# conformance adapters, issue #3). name, kind, family, arxiv ("" when the framework cites no paper),
# year, title (the paper's, or "<framework>: <function>"), summary, where it lives in the framework.
FRAMEWORK_QUANTITIES: tuple[tuple[str, str, str, str, int, str, str, str], ...] = (
    ("clip_cov", "policy_loss", "framework", "2505.22617", 2025,
     "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
     "PPO with the tokens of highest advantage-logp covariance excluded from the gradient",
     "verl core_algos.compute_policy_loss_clip_cov"),
    ("kl_cov", "policy_loss", "framework", "2505.22617", 2025,
     "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
     "PPO plus a |log-ratio| penalty on the tokens of highest advantage-logp covariance",
     "verl core_algos.compute_policy_loss_kl_cov"),
    ("grpo_passk", "advantage", "framework", "2503.19595", 2025,
     "Optimizing Language Models for Inference Time Objectives using Reinforcement Learning",
     "only the best rollout of a group gets an advantage, r_max − r_second",
     "verl core_algos.compute_grpo_passk_outcome_advantage"),
    ("gdpo", "advantage", "framework", "", 2026, "verl: compute_gdpo_outcome_advantage",
     "per-reward-key GRPO advantages, weighted sum, then batch whitening",
     "verl core_algos.compute_gdpo_outcome_advantage"),
    ("optimal_token_baseline", "advantage", "framework", "", 2026, "verl: optimal_token_baseline",
     "token-level baseline weighted by the squared policy probabilities",
     "verl core_algos.compute_optimal_token_baseline_advantage"),
    ("dppo", "policy_loss", "framework", "2602.04879", 2026, "Rethinking the Trust Region in LLM Reinforcement Learning",
     "REINFORCE with a stop-gradient importance weight capped at c, masked by a TV or KL trust region",
     "verl core_algos (dppo_tv, dppo_kl)"),
    ("dro", "policy_loss", "framework", "", 2026, "verl: compute_policy_loss_dro",
     "−(logp·Â − ½β(logp − old_logp)²): a squared log-ratio penalty instead of a clip",
     "verl core_algos.compute_policy_loss_dro"),
    ("kl_abs", "kl", "framework", "", 2024, "verl: kl_penalty('abs')",
     "|logp − ref_logp| as a KL surrogate", "verl core_algos.kl_penalty"),
    ("kl_in_reward", "reward", "framework", "1909.08593", 2019,
     "Fine-Tuning Language Models from Human Preferences",
     "the per-token KL penalty subtracted from the reward before the advantage is estimated",
     "verl core_algos.apply_kl_penalty / compute_rewards; OpenRLHF compute_reward"),
    ("token_sum", "policy_loss", "framework", "", 2026, "verl: agg_loss(loss_agg_mode='token-sum')",
     "the aggregation mode Σ M ℓ with no normaliser", "verl core_algos.agg_loss"),
    ("two_sided_clip", "policy_loss", "framework", "2505.07291", 2025,
     "INTELLECT-2: A Reasoning Model Trained Through Globally Decentralized Reinforcement Learning",
     "PPO whose ratio is also capped at δ for negative advantages", "TRL GRPOConfig.delta; Liger delta"),
    ("vespo", "policy_loss", "framework", "2602.10693", 2026,
     "VESPO: Variational Sequence-level Soft Policy Optimization",
     "sequence importance weight passed through a gamma-shaped weighting", "TRL grpo_trainer.get_gamma_weights"),
    ("high_entropy_mask", "sampler", "framework", "2506.01939", 2025,
     "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective RL for LLM Reasoning",
     "train only on the top-entropy quantile of tokens", "TRL GRPOConfig.top_entropy_quantile"),
    ("off_policy_sequence_mask", "sampler", "framework", "2512.02556", 2025,
     "DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models",
     "drop negative-advantage sequences whose policy drift exceeds a threshold", "TRL grpo_trainer.get_off_policy_mask"),
    ("tis", "policy_loss", "framework", "", 2025,
     "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training",
     "truncated importance weight π_train/π_rollout correcting the rollout engine's log-prob mismatch",
     "TRL vllm_importance_sampling_*; OpenRLHF PolicyLoss is_correction_*; verl rollout_correction"),
    ("flash_reinforce", "advantage", "framework", "", 2026, "OpenRLHF: advantage_estimator='flash_reinforce'",
     "reward minus the whole-batch mean, no whitening", "OpenRLHF experience_maker.compute_advantages_and_returns"),
    ("value_clip", "policy_loss", "framework", "1707.06347", 2017, "Proximal Policy Optimization Algorithms",
     "clipped value-function loss of the critic", "OpenRLHF ValueLoss; AReaL ppo_critic_loss_fn"),
    ("stop_properly_penalty", "reward", "framework", "", 2026, "OpenRLHF: length_penalty",
     "penalty for responses that do not end with a stop token", "OpenRLHF utils/length_penalty.py"),
    ("bypass_mode", "policy_loss", "framework", "", 2026, "verl: bypass_mode policy loss",
     "REINFORCE or PPO-clip with rollout importance weighting or rejection (rollout_correction)",
     "verl core_algos (bypass_mode)"),
    ("tir_optimal_token_baseline", "advantage", "framework", "", 2026, "verl: tir_optimal_token_baseline",
     "token-level optimal baseline for tool-integrated rollouts", "verl core_algos.compute_tir_optimal_token_baseline"),
    ("tis_sequence", "policy_loss", "framework", "", 2025, "TRL: vllm_importance_sampling_mode='sequence_*'",
     "sequence-level truncated or masked importance weight for the rollout-engine mismatch",
     "TRL grpo_trainer (sequence_truncate, sequence_mask)"),
    ("adaptive_entropy", "tabular", "framework", "", 2025, "TRL: use_adaptive_entropy",
     "entropy coefficient adapted towards a target entropy", "TRL GRPOConfig.use_adaptive_entropy"),
    ("huber_value_loss", "policy_loss", "framework", "", 2025, "AReaL: ppo_critic_loss_fn(loss_fn_type='huber')",
     "Huber variant of the clipped value loss", "AReaL areal.utils.functional.ppo_critic_loss_fn"),
    ("m2po", "sampler", "framework", "", 2025, "AReaL: _apply_m2po_masking",
     "second-moment-constrained token masking for stale rollouts", "AReaL areal.utils.functional"),
    ("a3po", "policy_loss", "framework", "2512.06547", 2025, "A-3PO (approximated proximal policy, as cited by AReaL)",
     "proximal log-probs interpolated log-linearly instead of recomputed", "AReaL prox_logp_method='loglinear'"),
    ("decoupled_ppo", "policy_loss", "framework", "2505.24298", 2025,
     "AReaL: A Large-Scale Asynchronous Reinforcement Learning System for Language Reasoning",
     "PPO clipped against a proximal policy, importance-weighted from the stale behaviour policy",
     "AReaL areal.utils.functional.ppo_actor_loss_fn (proximal_logprobs)"),
)

FRAMEWORK_MISSING = "found in a peer framework ({where}); not built yet: reference, properties, optimized, conformance"


def planned_specs() -> list[Spec]:
    """A planned entry per seed paper and per framework quantity (replaced by the implementing module)."""
    seeds = [
        Spec(name=name, kind=kind, family=family, paper=Paper(arxiv=arxiv, title=title, year=year),
             status="planned", summary=summary, missing=PLANNED_MISSING)
        for name, kind, family, arxiv, year, title, summary in SEED_PAPERS
    ]
    found = [
        Spec(name=name, kind=kind, family=family, status="planned", summary=summary,
             paper=Paper(arxiv=arxiv, title=title, year=year, url="" if arxiv else _framework_url(where)),
             missing=FRAMEWORK_MISSING.format(where=where))
        for name, kind, family, arxiv, year, title, summary, where in FRAMEWORK_QUANTITIES
    ]
    return seeds + found


def _framework_url(where: str) -> str:
    """Where a paper-less quantity is documented: the framework's repository."""
    for key, url in (("verl", "https://github.com/verl-project/verl"), ("TRL", "https://github.com/huggingface/trl"),
                     ("OpenRLHF", "https://github.com/OpenRLHF/OpenRLHF"),
                     ("AReaL", "https://github.com/inclusionAI/AReaL")):
        if where.startswith(key):
            return url
    return ""

"""Small exact problems for the classic-RL and theory entries.

Each module holds one problem family with its exact solver(s), so that properties can compare
learned solutions with true optima instead of noisy estimates:

* :mod:`rlspec.reference.envs.a2pr_offline_bandit`: a one-step offline continuous bandit with a two-mode
  (good / bad) behaviour policy and its exact behaviour value (A2PR).
* :mod:`rlspec.reference.envs.gpc_expo_gmm`: Gaussian mixtures with exact diffusion predictors and flow velocities,
  DDPM schedules and samplers, and the exact output law of a sampler with affine predictors (GPC, EXPO).
* :mod:`rlspec.reference.envs.inventory`: single-store inventory control (newsvendor, backlog or lost
  sales with lead time L), demand distributions with exact CDFs / quantiles, the critical-fractile
  base-stock level, and value iteration for lost sales with a small lead time.
* :mod:`rlspec.reference.envs.softmax_bandit`: a contextual softmax bandit with its exact gradient,
  Hessian and smoothness bound, and exact enumeration of i.i.d. draws (baseline and step-size theory).
* :mod:`rlspec.reference.envs.tabular_mdp`: finite MDPs (P, R, γ, d0) with exact solvers: policy evaluation
  by a linear solve, value iteration, policy iteration, brute force over deterministic policies, and
  finite-horizon evaluation / backward induction (γ = 1 allowed).
* :mod:`rlspec.reference.envs.dag_diffusion`: a DiGress-style discrete diffusion over 3-node DAGs (64 graphs)
  with a tabular denoiser: exact state laws, J(θ), the enumerated REINFORCE and eager (GDPO) gradients (DGPO).
* :mod:`rlspec.reference.envs.masked_diffusion`: a factorised masked-diffusion "LM" on short sequences with an
  exact-match reward: exact success and inpainted-success probabilities (IGPO).
"""

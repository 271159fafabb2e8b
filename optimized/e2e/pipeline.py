"""Registry ``sampler`` / ``curriculum`` entries as hooks of the e2e loop (:func:`rlspec.optimized.e2e.loop.train`).

Each adapter maps one entry's optimized function (and the state functions in its ``Spec.extras``) onto
``train(prompt_sampler=...)`` or ``train(rollout_filter=...)``, using what the tiny task has:

* the prompt POOL is the task's 10 distinct prompts ``<bos> d <sep>`` (d = 0..9); a sampler draws pool
  indices, and a pool item's pass rate at a step is the mean (partial-credit) reward of its G rollouts;
* token entropies come from the trainer model's logits (:meth:`FilterInputs.entropy`);
* difficulty (CRAFT-GUI's tiers) is the target length of ``repeateos`` (d mod k)+1.

Adapters (``ADAPTERS``; build one with :func:`make`):

* ``mmr1_vas`` (prompt sampler): every ``update_every`` steps the pool items seen in this step are scored
  from this step's rollouts (OVS = p(1 − p), TDS = normalised edit distance, VPS = 0.8·OVS + 0.2·TDS) and
  the weights refreshed; each batch draws ⌊λn⌋ prompts ∝ weights and the rest uniformly (λ = 0.5);
* ``fg_expo`` (prompt sampler): Gaussian curriculum sampling on EMA pass rates (GCS); the AKL coefficient
  β_eff is computed and logged, but the loop's losses have no KL-to-reference term to scale;
* ``craft_gui`` (prompt sampler): a stage schedule over difficulty tiers (stage s draws uniformly from tiers
  ≤ s, ``pool="cumulative"``), advancing every ``stage_steps`` steps;
* ``d3s`` (rollout filter): max-variance rollout subset per group and top |A|·H tokens, fractions scheduled
  from aggressive to relaxed over the run's progress;
* ``dapo_dynamic_sampling`` (rollout filter): drops groups whose rewards are all equal (zero GRPO signal);
  the loop does not re-sample to refill the batch (DAPO does);
* ``high_entropy_mask`` (rollout filter): only the top-20 % entropy tokens of the batch get gradient.

Entries that cannot run on the tiny task (``NOT_ADAPTABLE`` gives the reason): they need an LLM callable,
hint text, inpainting spans decoded into the rollout, a tree search, other swarm nodes, per-token sampling
temperatures, a variable number of rollouts per prompt, or the per-minibatch current policy.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch

from rlspec import optimized
from rlspec.optimized.e2e.loop import FilterInputs
from rlspec.optimized.e2e.tasks import BOS, DIGITS, SEP, get_task
from rlspec.reference import registry


def digit_pool() -> torch.Tensor:
    """The tiny tasks' prompt pool: ``<bos> d <sep>`` for d = 0..9, (10, 3) int64; row d is digit d."""
    d = torch.arange(DIGITS)
    return torch.stack([torch.full_like(d, BOS), d, torch.full_like(d, SEP)], dim=1)


def uniforms(n: int, generator: torch.Generator) -> torch.Tensor:
    """n uniforms in [0, 1) (float64) from the loop's seeded prompt generator."""
    return torch.rand(n, generator=generator, dtype=torch.float64).clamp(max=1 - 1e-12)


class PoolSampler(abc.ABC):
    """Base prompt sampler over :func:`digit_pool`: subclasses implement :meth:`choose` (pool indices (n,)) and
    :meth:`observe` (state update after the rewards); ``draws`` logs the pool indices drawn at every step."""

    def __init__(self):
        self.pool = digit_pool()
        self.draws: list[np.ndarray] = []
        self.last_idx: torch.Tensor | None = None

    @abc.abstractmethod
    def choose(self, step: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Pool indices (n,) of this step's prompts."""

    def draw(self, step: int, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.as_tensor(self.choose(step, n, generator), dtype=torch.int64)
        self.last_idx = idx
        self.draws.append(idx.numpy().copy())
        return self.pool[idx]

    def pass_rates(self, rollout, rewards) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool ids (n,), mean reward of each drawn prompt's G rollouts (n,)) for this step's batch."""
        n = self.last_idx.shape[0]
        p = torch.zeros(n, dtype=torch.float64).index_add_(0, rollout.group, rewards.double())
        cnt = torch.zeros(n, dtype=torch.float64).index_add_(0, rollout.group, torch.ones_like(rewards).double())
        return self.last_idx, p / cnt

    def observe(self, step, prompts, rollout, rewards) -> None:  # noqa: B027 - a stateless sampler keeps this no-op
        """Update the sampler's state after the step's rewards (stateless samplers keep this no-op)."""

    def counts(self, skip: int = 0) -> np.ndarray:
        """How often each pool item was drawn (10,), over the steps after the first ``skip``."""
        return np.bincount(np.concatenate(self.draws[skip:]), minlength=len(self.pool))


class MMR1VAS(PoolSampler):
    """MMR1 variance-aware sampling (``mmr1_vas``): VPS-weighted + uniform mixed batches."""

    def __init__(self, update_every: int = 1, **config):
        super().__init__()
        self.cfg = registry.get("mmr1_vas").config(update_every=update_every, **config)
        self.fn = optimized.get("mmr1_vas")
        self.extras = registry.get("mmr1_vas").extras
        self.weights = np.ones(len(self.pool))  # before any scoring: uniform (the paper scores the pool first)
        self.refreshes = 0
        self.vps_log: list[np.ndarray] = []

    def choose(self, step, n, generator):
        pos, _ = self.extras["vas_sample"](self.weights, uniforms(n, generator).numpy(), self.cfg.mix)
        return pos

    def observe(self, step, prompts, rollout, rewards):
        if not self.extras["refresh_due"](step + 1, self.cfg):
            return
        pool_group = self.last_idx[rollout.group]  # duplicates of one pool item share a group
        u = np.full(1, 0.5)  # the draw itself is done by choose(); only the scores are used here
        _, _, vps, w, _ = self.fn(rewards, rollout.responses, pool_group, rollout.mask, torch.as_tensor(u),
                                  config=self.cfg)
        ids = torch.unique(pool_group).numpy()
        new = self.weights.copy()
        new[ids] = np.asarray(w, dtype=np.float64)
        if new.sum() > 0:  # all-zero scores (every seen prompt solved or failed alike): keep the old weights
            self.weights = new
        self.refreshes += 1
        self.vps_log.append(self.weights.copy())


class FGExPO(PoolSampler):
    """FG-ExPO Gaussian curriculum sampling (``fg_expo``) on EMA pass rates; logs the AKL β_eff per step."""

    def __init__(self, **config):
        super().__init__()
        spec = registry.get("fg_expo")
        self.cfg = spec.config(**config)
        self.fn = optimized.get("fg_expo")
        self.state = spec.extras["init_state"](len(self.pool))
        self.probs = np.asarray(spec.extras["gcs_probs"](self.state.p_tilde, self.cfg), dtype=np.float64)
        self.sample = spec.extras["gcs_sample"]
        self.beta_eff: list[float] = []

    def choose(self, step, n, generator):
        u = uniforms(n, generator).numpy()
        return self.sample(self.probs, u)

    def observe(self, step, prompts, rollout, rewards):
        idx, p = self.pass_rates(rollout, rewards)
        u = np.linspace(0.0, 1.0, idx.shape[0], endpoint=False) + 0.5 / idx.shape[0]  # stratified; choose() redraws
        beta, probs, _, self.state = self.fn(self.state, idx, p, torch.as_tensor(u), config=self.cfg)
        self.probs = np.asarray(probs, dtype=np.float64)
        self.beta_eff.append(float(beta))


class CraftGUI(PoolSampler):
    """CRAFT-GUI stage curriculum (``craft_gui``) over difficulty tiers of ``repeateos`` (target length)."""

    def __init__(self, k: int = 3, stage_steps: int = 3, **config):
        super().__init__()
        spec = registry.get("craft_gui")
        self.k = k
        self.cfg = spec.config(stage_steps=stage_steps, edges=(2.0, 3.0), **config)
        self.fn = optimized.get("craft_gui")
        self.extras = spec.extras
        self.tier = self.extras["difficulty_tier"](np.arange(DIGITS) % k + 1.0, self.cfg.edges)  # (10,)
        self.state = self.extras["init_state"]()
        self.probs = self.extras["stage_probs"](self.tier, self.state.stage, self.cfg)
        self.stages: list[int] = []

    def choose(self, step, n, generator):
        self.stages.append(int(self.state.stage))
        return self.extras["sample_tasks"](np.asarray(self.probs), uniforms(n, generator).numpy())

    def observe(self, step, prompts, rollout, rewards):
        u = np.full(1, 0.5)  # choose() draws the next batch; this call updates the stage and probabilities
        probs, _, self.state = self.fn(self.state, self.tier, rewards.double(), torch.as_tensor(u), config=self.cfg)
        self.probs = np.asarray(probs, dtype=np.float64)


class Filter(abc.ABC):
    """Base rollout filter: logs the kept share of valid tokens and of rollouts per step."""

    def __init__(self):
        self.kept_token_frac: list[float] = []
        self.kept_rollout_frac: list[float] = []

    @abc.abstractmethod
    def select(self, x: FilterInputs) -> torch.Tensor:
        """Tokens to keep (B, L) bool."""

    def __call__(self, x: FilterInputs) -> torch.Tensor:
        keep = torch.as_tensor(self.select(x), dtype=torch.bool) & x.mask
        self.kept_token_frac.append(float(keep.sum()) / max(1, int(x.mask.sum())))
        self.kept_rollout_frac.append(float(keep.any(1).float().mean()))
        return keep


class D3S(Filter):
    """D³S dual-level down-sampling (``d3s``): max-variance rollouts per group, then top |A|·H tokens."""

    def __init__(self, **config):
        super().__init__()
        self.cfg = registry.get("d3s").config(**config)
        self.fn = optimized.get("d3s")

    def select(self, x):
        _, keep = self.fn(x.adv.double(), x.entropy().double(), x.rollout.group, x.mask, progress=x.progress,
                          config=self.cfg)
        return keep


class DAPODynamicSampling(Filter):
    """DAPO dynamic sampling (``dapo_dynamic_sampling``): drop groups whose rewards are all equal."""

    def __init__(self, **config):
        super().__init__()
        self.cfg = registry.get("dapo_dynamic_sampling").config(**config)
        self.fn = optimized.get("dapo_dynamic_sampling")

    def select(self, x):
        keep_row = torch.as_tensor(self.fn(x.rewards, x.rollout.group, config=self.cfg), dtype=torch.bool)
        return x.mask & keep_row[:, None]


class HighEntropyMask(Filter):
    """Beyond-80/20 high-entropy token mask (``high_entropy_mask``): gradient on the top-ρ entropy tokens."""

    def __init__(self, **config):
        super().__init__()
        self.cfg = registry.get("high_entropy_mask").config(**config)
        self.fn = optimized.get("high_entropy_mask")

    def select(self, x):
        return self.fn(x.entropy().double(), x.mask, config=self.cfg)


# name -> (hook, adapter class, train() keyword arguments the adapter's run uses, one line on what the hook does)
ADAPTERS: dict[str, tuple[str, type, dict[str, Any], str]] = {
    "mmr1_vas": ("prompt_sampler", MMR1VAS, {},
                 "prompts: half ∝ VPS = 0.8·p(1−p) + 0.2·edit-diversity of the last step's rollouts, half uniform"),
    "fg_expo": ("prompt_sampler", FGExPO, {},
                "prompts ∝ exp(−(p̃ − 0.5)²/2σ²) on EMA pass rates p̃ (GCS); AKL β_eff logged only (no KL term)"),
    "craft_gui": ("prompt_sampler", CraftGUI, dict(task="repeateos", task_kw=dict(k=3)),
                  "prompts from difficulty tiers ≤ stage (tier = target length of repeateos k=3), stage += 1 every 3 steps"),
    "d3s": ("rollout_filter", D3S, {},
            "loss mask = max-variance half of each group, then top-K |A|·H tokens (K 0.2 → 1.0 over the run)"),
    "dapo_dynamic_sampling": ("rollout_filter", DAPODynamicSampling, {},
                              "loss mask drops groups with all-equal rewards (no refill)"),
    "high_entropy_mask": ("rollout_filter", HighEntropyMask, {},
                          "loss mask = top-20 % entropy tokens of the batch"),
}

NOT_ADAPTABLE: dict[str, str] = {
    "xrpo": "allocates a different number of extra rollouts to each prompt; the loop's backend draws a fixed G per "
            "prompt and its losses/advantages assume equal groups (the allocator itself is runnable on the rewards)",
    "sapo_swarm": "mixes in rollouts shared by OTHER swarm nodes (external pool with sources); one loop is one node",
    "scaf_grpo": "replaces a failed rollout by one generated with hint text (knowledge/planning/solution tiers) from "
                 "an LLM-written hint ladder; the tiny task has no hints and the backend no hinted prompt format",
    "igpo_inpainting": "replaces rollouts by ones whose spans are inpainted from a ground-truth reasoning trace "
                       "(diffusion-LM decoding); the autoregressive backend cannot force chosen response positions",
    "hapo_temperature": "sets a per-token sampling temperature from the previous step's token entropies; the "
                        "rollout backend samples at one scalar temperature",
    "capo_curvature_mask": "needs the last hidden states h, the LM-head W and the optimizer's Adam moments per "
                           "sample to mask rollouts by curvature; computable from the tiny model but not wired here",
    "ib_tpo_score": "scores the nodes of a rollout TREE (parent, leaf, π per step); the loop samples flat rollouts",
    "promed_mcts_init": "an MCTS over doctor–patient dialogue turns with an LLM / scripted simulator; no optimized "
                        "implementation and no dialogue in the tiny task",
    "off_policy_sequence_mask": "masks by the CURRENT policy's KL to the behaviour policy per minibatch; the filter "
                                "runs once before the updates, where π_θ = π_old",
    "m2po": "planned (no implementation)",
}


def make(name: str) -> tuple[str, Any, dict[str, Any]]:
    """(hook keyword of train(), a fresh adapter, extra train() keyword arguments) for entry ``name``."""
    if name not in ADAPTERS:
        raise KeyError(f"{name!r} has no adapter: " + NOT_ADAPTABLE.get(name, f"adapters exist for {sorted(ADAPTERS)}"))
    hook, cls, kw, _ = ADAPTERS[name]
    return hook, cls(), dict(kw)


def run(name: str, steps: int = 8, seed: int = 0, threads: int | None = 1, **train_kw):
    """Train with entry ``name`` plugged into its hook; return (History, adapter)."""
    from rlspec.optimized.e2e.loop import train

    hook, adapter, kw = make(name)
    kw.update(train_kw)
    if "task" in kw:
        kw["task"] = get_task(kw["task"], **kw.pop("task_kw", {}))
    h = train(steps=steps, seed=seed, threads=threads, **{hook: adapter}, **kw)
    return h, adapter

"""Registry ``sampler`` / ``curriculum`` entries as hooks of the e2e loop (:func:`rlspec.optimized.e2e.loop.train`).

Each adapter maps one entry's optimized function (and the state functions in its ``Spec.extras``) onto
``train(prompt_sampler=...)``, ``train(rollout_filter=...)``, ``train(rollout_hook=...)`` or
``train(minibatch_filter=...)`` (or, for ProMed stage 1, a stage before ``train``), using what the tiny task has:

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

Adapters that rebuild the rollouts (``rollout_hook``), with the stand-ins they use where the paper needs what the
tiny task lacks (the correct answer of a prompt, :func:`reference_answer`, is what the verifier scores 1):

* ``xrpo``: extra rollouts per prompt from the allocator (unequal groups), ``xrpo_sharpen`` advantages; the
  in-context seeding is not run (a seeded prompt would be longer than the 3-token prompts the loop batches);
* ``sapo_swarm``: the other swarm nodes are simulated by frozen copies of this node's policy, refreshed every
  ``lag`` steps, sampling their own prompts;
* ``scaf_grpo``: the hint of level k is the first k answer tokens, teacher-forced at the start of the response
  and left out of the loss (tier "solution" only); correctness = reward 1;
* ``igpo_inpainting``: answer tokens are teacher-forced at the hint positions of an autoregressive sample (a
  revealed token conditions only later positions, unlike diffusion inpainting);
* ``hapo_temperature``: per-token sampling temperatures through the HF backend's ``temperature_fn``;
* ``ib_tpo_score``: a token-level rollout tree per prompt (shared prefixes teacher-forced), IB-TPO step
  advantages with π_ref from the initial model.

``capo_curvature_mask`` is a rollout filter that reads the trainer's AdamW moments (:attr:`FilterInputs.optimizer`);
``off_policy_sequence_mask`` is a ``minibatch_filter`` (it needs π_θ after some updates); ``promed_mcts_init``
(no optimized implementation) runs the reference's MCTS with the policy as the "doctor", one token per turn,
and fine-tunes on the best trajectories before RL.

``NOT_ADAPTABLE`` names the entries left out and why (only ``m2po``, which has no implementation).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch

from rlspec import optimized
from rlspec.optimized.e2e.loop import FilterInputs, Rework, RolloutHook
from rlspec.optimized.e2e.rollout import HFBackend, Rollout
from rlspec.optimized.e2e.tasks import BOS, DIGITS, EOS, PAD, SEP, get_task
from rlspec.optimized.igpo_inpainting import entropy_filter as igpo_entropy_filter
from rlspec.reference import registry
from rlspec.reference._validate import fail


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


# ---------------------------------------------------------------------------------------------------------------
# helpers for the rollout hooks: the task's answer, batches of rollouts of several lengths, token entropies
# ---------------------------------------------------------------------------------------------------------------

def reference_answer(task, prompts: torch.Tensor) -> torch.Tensor:
    """The correct response of each prompt row (n, max_new_tokens) int64, −1 after its end (the tasks' verifier
    gives it reward 1): ``repeat`` k = max_new_tokens → d × k; ``repeateos`` (k = max_new_tokens − 2) →
    d × ((d mod k) + 1), ``<eos>``."""
    d = prompts[:, 1]
    L = task.max_new_tokens
    pos = torch.arange(L)[None, :]
    if task.name == "repeat":
        return d[:, None].expand(-1, L).clone()
    if task.name == "repeateos":
        reps = (d % (L - 2) + 1)[:, None]
        out = torch.where(pos < reps, d[:, None], torch.full_like(pos, EOS))
        return torch.where(pos <= reps, out, torch.full_like(pos, -1))
    raise KeyError(f"no reference answer for task {task.name!r}")


def pad_to(x: torch.Tensor, L: int, value) -> torch.Tensor:
    """Right-pad (B, L0) to (B, L) with ``value``."""
    if x.shape[1] >= L:
        return x[:, :L]
    return torch.cat([x, torch.full((x.shape[0], L - x.shape[1]), value, dtype=x.dtype)], dim=1)


def concat_rollouts(parts: list[Rollout], groups: list[torch.Tensor] | None = None) -> Rollout:
    """One Rollout from several (responses padded to the longest with PAD / mask False / logp 0); ``groups``
    replaces each part's group ids."""
    L = max(r.responses.shape[1] for r in parts)
    return Rollout(prompts=torch.cat([r.prompts for r in parts]),
                   responses=torch.cat([pad_to(r.responses, L, PAD) for r in parts]),
                   mask=torch.cat([pad_to(r.mask, L, False) for r in parts]),
                   logp=torch.cat([pad_to(r.logp, L, 0.0) for r in parts]),
                   group=torch.cat(groups if groups is not None else [r.group for r in parts]))


def take_rows(ro: Rollout, rows: torch.Tensor) -> Rollout:
    """The rows ``rows`` of a rollout."""
    return Rollout(prompts=ro.prompts[rows], responses=ro.responses[rows], mask=ro.mask[rows], logp=ro.logp[rows],
                   group=ro.group[rows])


def token_entropy(model, ro: Rollout, temperature: float) -> torch.Tensor:
    """H (B, L) of the model's next-token distribution (logits / temperature) at each response position."""
    P = ro.prompts.shape[1]
    with torch.no_grad():
        z = model(input_ids=torch.cat([ro.prompts, ro.responses], 1)).logits[:, P - 1:-1].float() / temperature
        lp = torch.log_softmax(z, -1)
    return -(lp.exp() * lp).sum(-1)


def hf_generate(backend, prompts, G, max_new_tokens, temperature, seed, eos_id, **kw) -> Rollout:
    """``backend.generate`` with the HF backend's extras (forced tokens, per-token temperature)."""
    if not isinstance(backend, HFBackend):
        raise fail("backend", type(backend).__name__, "the 'hf' backend (forced tokens / per-token temperature)")
    return backend.generate(prompts, G, max_new_tokens, temperature, seed=seed, eos_id=eos_id, **kw)


def group_first(group: torch.Tensor) -> torch.Tensor:
    """Index of the first row of each group (n,), for a batch whose groups 0..n−1 are contiguous runs."""
    counts = torch.unique_consecutive(group, return_counts=True)[1]
    return counts.cumsum(0) - counts


def group_mean(x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Per-row mean of x over the row's group (B,)."""
    _, inv = torch.unique(group, return_inverse=True)
    n = int(inv.max()) + 1
    tot = torch.zeros(n, dtype=torch.float64).index_add_(0, inv, x.double())
    cnt = torch.zeros(n, dtype=torch.float64).index_add_(0, inv, torch.ones_like(x, dtype=torch.float64))
    return (tot / cnt)[inv]


# ---------------------------------------------------------------------------------------------------------------
# rollout hooks
# ---------------------------------------------------------------------------------------------------------------

class XRPO(RolloutHook):
    """XRPO (``xrpo``): G first rollouts per prompt, then ``budget`` extra rollouts spread by the uncertainty-
    reduction allocator (unequal groups), advantages from ``xrpo_sharpen`` (GRPO + novelty bonus on correct
    rollouts, s_i from the behaviour log-probs). The state (rollouts so far T, success corpus) is updated per step.
    In-context seeding is not run (a seeded prompt is longer than the task's 3-token prompt and the loop batches
    equal-length prompts); ``seedable`` logs how many zero-reward prompts it would have seeded."""

    def __init__(self, budget_frac: float = 0.5, **config):
        spec = registry.get("xrpo")
        self.cfg = spec.config(**config)
        self.fn = optimized.get("xrpo")
        self.sharpen = optimized.get("xrpo_sharpen")
        self.sharpen_cfg = registry.get("xrpo_sharpen").config()
        self.extras = spec.extras
        self.state = spec.extras["state_cls"]()
        self.budget_frac = budget_frac
        self.extra: list[np.ndarray] = []  # extra rollouts per prompt, per step
        self.group_sizes: list[np.ndarray] = []
        self.seedable: list[int] = []
        self.bonus_rows: list[int] = []  # rows whose advantage the sharpening raised

    def rework(self, x):
        ro, R = x.rollout, x.rewards
        n = int(ro.group.max()) + 1
        budget = int(round(self.budget_frac * ro.group.numel()))
        extra, _ = self.fn(R.double(), ro.group, budget, total_rollouts=self.state.T, config=self.cfg)
        self.extra.append(extra.numpy().copy())
        prompts = ro.prompts[group_first(ro.group)]  # (n, P)
        parts, groups = [ro], [ro.group]
        if budget:
            q = torch.arange(n).repeat_interleave(extra)
            more = x.backend.generate(prompts[q], 1, x.task.max_new_tokens, x.temperature, seed=x.seed + 500_009,
                                      eos_id=x.task.eos_id)
            parts.append(more)
            groups.append(q)
        new = concat_rollouts(parts, groups)
        R2 = torch.cat([R, x.task.reward(new.prompts[R.numel():], new.responses[R.numel():],
                                         new.mask[R.numel():])]) if budget else R
        self.group_sizes.append(torch.bincount(new.group, minlength=n).numpy())
        self.seedable.append(len(self.extras["zero_reward_prompts"](R.numpy(), ro.group.numpy()))
                             if self.state.corpus else 0)
        adv = self.sharpen(R2.double(), new.logp.double(), new.group, new.mask, config=self.sharpen_cfg)
        base = optimized.get("grpo")(rewards=R2.double(), group=new.group, mask=new.mask,
                                     config=registry.get("grpo").config(ddof=1, eps=self.sharpen_cfg.eps))
        self.bonus_rows.append(int(((adv - base).abs().amax(1) > 1e-12).sum()))
        self.state = self.extras["update"](self.state, R2.numpy(), new.group.numpy(),
                                           [tuple(r[m].tolist()) for r, m in zip(new.responses, new.mask)])
        return Rework(new, R2, adv)


class SwarmNodes(RolloutHook):
    """SAPO swarm sampling (``sapo_swarm``): this loop is node 0; ``nodes − 1`` other nodes are SIMULATED by
    frozen copies of this node's policy, refreshed every ``lag`` steps (stale policies; real swarm nodes train
    their own models), each sampling ``items`` prompts of its own with G completions. Node 0 re-scores their
    items with its verifier, drops those with equal rewards, takes up to J uniformly (``sapo_swarm``) and trains
    GRPO (the entry's advantages) on its n local items plus the J' external ones."""

    def __init__(self, nodes: int = 3, items: int = 8, lag: int = 2, seed: int = 0, **config):
        self.cfg_kw = dict(config)
        self.fn = optimized.get("sapo_swarm")
        self.nodes, self.items, self.lag = nodes, items, lag
        self.snapshot = None
        self.gen = torch.Generator().manual_seed(seed + 104_729)
        self.n_external: list[int] = []
        self.external_constant: list[int] = []  # external items with all-equal rewards (must stay 0)

    def rework(self, x):
        import copy

        ro, R = x.rollout, x.rewards
        if self.snapshot is None or x.step % self.lag == 0:
            self.snapshot = copy.deepcopy(x.model).eval()
        n = int(ro.group.max()) + 1
        G = ro.group.numel() // n
        pool = digit_pool()
        other = HFBackend(self.snapshot)
        pool_ro, src = [], []
        for node in range(1, self.nodes):
            idx = torch.randint(0, len(pool), (self.items,), generator=self.gen)
            pool_ro.append(other.generate(pool[idx], G, x.task.max_new_tokens, x.temperature,
                                          seed=x.seed + 7_919 * node, eos_id=x.task.eos_id))
            src += [node] * self.items
        ext_ro = concat_rollouts(pool_ro, [torch.arange(len(src)).repeat_interleave(G)])
        pool_R = x.task.reward(ext_ro.prompts, ext_ro.responses, ext_ro.mask).double().view(-1, G)
        cfg = registry.get("sapo_swarm").config(**{"n_local": n, **self.cfg_kw})
        u = uniforms(len(src), self.gen)
        R2, external, index, adv = self.fn(R.double().view(n, G), pool_R, torch.tensor(src), u, node=0, config=cfg)
        chosen = index[external]
        self.n_external.append(int(chosen.numel()))
        self.external_constant.append(int((pool_R[chosen].amax(1) == pool_R[chosen].amin(1)).sum()))
        rows = (chosen[:, None] * G + torch.arange(G)[None, :]).reshape(-1)
        parts = [ro, take_rows(ext_ro, rows)]
        groups = [ro.group, n + torch.arange(chosen.numel()).repeat_interleave(G)]
        new = concat_rollouts(parts, groups)
        A = adv.reshape(-1)
        return Rework(new, R2.reshape(-1).float(), torch.where(new.mask, A[:, None], torch.zeros(())))


class ScafGRPO(RolloutHook):
    """Scaf-GRPO (``scaf_grpo``) with a stand-in hint ladder: correctness is the task reward = 1 (all positions
    right); the hint of level k reveals the first k answer tokens, written at the start of the response (teacher
    forced, excluded from the loss: the later tokens are then scored on q ⊕ h as Eq. 4 asks), k = 1 .. L−1
    (tier "solution" only: the tiny task has no knowledge / planning text). The plateau / true-hard tracker runs on
    the pool ids (digits); every eligible group's ladder is sampled once per level (batched) and the reference's
    ``minimal_hint`` picks h*; the first failed rollout is replaced by o*_h and GRPO runs on binary rewards."""

    def __init__(self, **config):
        spec = registry.get("scaf_grpo")
        self.base_kw = dict(config)
        self.fn = optimized.get("scaf_grpo")
        self.extras = spec.extras
        self.state = spec.extras["init_state"]()
        self.replaced: list[int] = []  # groups that got o*_h, per step
        self.eligible: list[int] = []
        self.levels: list[list[int]] = []
        self.active: list[bool] = []

    def rework(self, x):
        ro, task = x.rollout, x.task
        L = task.max_new_tokens
        cfg = registry.get("scaf_grpo").config(**{"tiers": ("solution",), "chunks": L - 1, **self.base_kw})
        c = (x.rewards >= 1.0 - 1e-6).double()
        digit = ro.prompts[:, 1]
        self.active.append(self.extras["guidance_active"](self.state, x.steps, cfg))
        ok_ids = set(self.extras["eligible_groups"](self.state, c.numpy(), digit.numpy(), x.steps, cfg).tolist())
        n = int(ro.group.max()) + 1
        first = group_first(ro.group)
        all_zero = group_mean(c, ro.group)[first] == 0
        groups = [q for q in range(n) if all_zero[q] and int(digit[first[q]]) in ok_ids]
        self.eligible.append(len(groups))
        h = torch.full((ro.group.numel(),), -1, dtype=torch.int64)
        new = ro
        levels = []
        if groups:
            ladder = self.extras["hint_ladder"](cfg.tiers, cfg.chunks)
            prompts = ro.prompts[first[groups]]  # (m, P)
            ans = reference_answer(task, prompts)
            rows = torch.arange(len(groups)).repeat_interleave(len(ladder))
            k = torch.tensor([kk for _, kk in ladder]).repeat(len(groups))
            forced = torch.where(torch.arange(L)[None, :] < k[:, None], ans[rows], torch.full((1, L), -1))
            hinted = hf_generate(x.backend, prompts[rows], 1, L, x.temperature, x.seed + 300_007, task.eos_id,
                                 forced=forced)
            ok = task.reward(hinted.prompts, hinted.responses, hinted.mask) >= 1.0 - 1e-6
            picks = []
            for j, q in enumerate(groups):
                lvl_rows = {lv: j * len(ladder) + lv for lv in range(len(ladder))}
                res = self.extras["minimal_hint"](
                    sample=lambda hint, lr=lvl_rows: lr[int(hint)], verify=lambda r: bool(ok[r]),
                    make_hint=lambda tier, kk, ld=ladder: str(ld.index((tier, kk))), config=cfg)
                levels.append(res.level)
                if res.level >= 0:
                    h[ro.group == q] = res.level
                    picks.append((int(first[q]), res.response, int(k[res.response])))
            if picks:
                resp, mask, logp = ro.responses.clone(), ro.mask.clone(), ro.logp.clone()
                Lh = hinted.responses.shape[1]
                resp, mask, logp = pad_to(resp, max(L, Lh), PAD), pad_to(mask, max(L, Lh), False), pad_to(
                    logp, max(L, Lh), 0.0)
                for row, src, kk in picks:
                    resp[row] = pad_to(hinted.responses[src:src + 1], resp.shape[1], PAD)[0]
                    m = pad_to(hinted.mask[src:src + 1], resp.shape[1], False)[0]
                    m[:kk] = False  # hint tokens: context, not the policy's output
                    mask[row] = m
                    logp[row] = torch.where(m, pad_to(hinted.logp[src:src + 1], resp.shape[1], 0.0)[0], 0.0)
                new = Rollout(prompts=ro.prompts, responses=resp, mask=mask, logp=logp, group=ro.group)
        self.levels.append(levels)
        R2, was_hinted, adv = self.fn(c, ro.group, new.mask, h, config=cfg)
        self.replaced.append(int(was_hinted.sum()))
        self.state = self.extras["update"](self.state, c.numpy(), digit.numpy(), cfg)
        return Rework(new, R2.float(), adv)


class IGPOInpaint(RolloutHook):
    """IGPO (``igpo_inpainting``) with autoregressive "inpainting": for a group whose G rollouts are all wrong
    (reward < 1), G more responses are sampled with hint positions of the answer written in place (teacher
    forced at ratios ρ ~ U[0.2, 0.6], every answer token a chunk); up to 4 correct ones replace the first rows,
    advantages r − mean. Loss positions: self-generated tokens, plus each replaced row's highest-entropy hint
    token (the entry's entropy filter, q = 0.2). Unlike diffusion inpainting, a revealed token conditions only
    the positions after it (the model samples left to right)."""

    def __init__(self, seed: int = 0, **config):
        spec = registry.get("igpo_inpainting")
        self.cfg = spec.config(**{"min_chunk": 1, "max_chunk": 1, **config})
        self.fn = optimized.get("igpo_inpainting")
        self.extras = spec.extras
        self.rng = np.random.default_rng(seed + 31_337)
        self.keep_ratio = registry.get("igpo_inpainting_loss").config().keep_ratio
        self.wrong_groups: list[int] = []
        self.replaced: list[int] = []
        self.hint_tokens_kept: list[int] = []

    def rework(self, x):
        ro, task, R = x.rollout, x.task, x.rewards
        L = task.max_new_tokens
        correct = R >= self.cfg.success_reward - 1e-6
        wrong = group_mean(correct.double(), ro.group) == 0  # (B,) the row's group is all wrong
        self.wrong_groups.append(int(torch.unique(ro.group[wrong]).numel()))
        R_inp = torch.zeros_like(R, dtype=torch.float64)
        if not bool(wrong.any()):
            self.replaced.append(0)
            self.hint_tokens_kept.append(0)
            return None
        rows = torch.nonzero(wrong)[:, 0]  # one inpainted response per row of an all-wrong group
        ans = reference_answer(task, ro.prompts[rows])
        alen = (ans >= 0).sum(1)
        hint = torch.zeros(rows.numel(), L, dtype=torch.bool)
        for q in torch.unique(ro.group[rows]).tolist():
            sel = torch.nonzero(ro.group[rows] == q)[:, 0]
            for j, rho in zip(sel.tolist(), self.extras["inpaint_ratios"](sel.numel(), self.cfg.ratio_low,
                                                                         self.cfg.ratio_high, self.rng)):
                hp = self.extras["hint_positions"](int(alen[j]), float(rho), 1, 1, self.rng)
                hint[j, :hp.size] = torch.as_tensor(hp)
        forced = torch.where(hint, ans, torch.full_like(ans, -1))
        inp = hf_generate(x.backend, ro.prompts[rows], 1, L, x.temperature, x.seed + 200_003, task.eos_id,
                          forced=forced)
        R_inp[rows] = x.task.reward(inp.prompts, inp.responses, inp.mask).double()
        Lm = max(ro.responses.shape[1], inp.responses.shape[1])
        full = torch.ones(R.numel(), Lm, dtype=torch.bool)  # adv on every position; the loss mask is set below
        R2, source, adv = self.fn(R.double(), ro.group, full, R_inp, config=self.cfg)
        inp_of = torch.full((R.numel(),), -1, dtype=torch.int64)
        inp_of[rows] = torch.arange(rows.numel())
        resp, mask, logp = pad_to(ro.responses, Lm, PAD), pad_to(ro.mask, Lm, False), pad_to(ro.logp, Lm, 0.0)
        hint_mask = torch.zeros_like(mask)
        rep = torch.nonzero(source >= 0)[:, 0]
        for b in rep.tolist():
            j = int(inp_of[int(source[b])])
            resp[b] = pad_to(inp.responses[j:j + 1], Lm, PAD)[0]
            mask[b] = pad_to(inp.mask[j:j + 1], Lm, False)[0]
            logp[b] = pad_to(inp.logp[j:j + 1], Lm, 0.0)[0]
            hint_mask[b] = pad_to(hint[j:j + 1], Lm, False)[0] & mask[b]
        new = Rollout(prompts=ro.prompts, responses=resp, mask=mask, logp=logp, group=ro.group)
        H = token_entropy(x.model, new, x.temperature)
        keep = igpo_entropy_filter(mask, hint_mask, H, self.keep_ratio)
        self.replaced.append(int(rep.numel()))
        self.hint_tokens_kept.append(int((keep & hint_mask).sum()))
        new = Rollout(prompts=new.prompts, responses=new.responses, mask=keep, logp=torch.where(keep, logp, 0.0),
                      group=new.group)
        return Rework(new, R2.float(), torch.where(keep, adv, torch.zeros((), dtype=adv.dtype)))


class HAPOTemperature(RolloutHook):
    """HAPO adaptive temperature (``hapo_temperature``): every sampled token gets its own temperature from the
    entropy H of the untempered next-token distribution, against the previous step's entropy statistics (the
    first step samples at T_base = the loop's temperature). The trainer's old log-probs stay at the loop's one
    temperature (as verl recomputes them); ``logp_mismatch`` then shows the gap to the behaviour log-probs."""

    def __init__(self, **config):
        self.cfg_kw = {"form": "code", **config}
        self.fn = optimized.get("hapo_temperature")
        self.prev: tuple[torch.Tensor, torch.Tensor] | None = None
        self.t_mean: list[float] = []
        self.t_min: list[float] = []
        self.t_max: list[float] = []

    def generate(self, req):
        cfg = registry.get("hapo_temperature").config(**{"t_base": req.temperature, **self.cfg_kw})
        Hs, Ts = [], []
        prev = self.prev

        def temperature_fn(logits, t):
            lp = torch.log_softmax(logits.double(), -1)
            H = -(lp.exp() * lp).sum(-1)  # (B,)
            ones = torch.ones(H.shape[0], 1, dtype=torch.bool)
            if prev is None:
                T = torch.full_like(H, cfg.t_base)
            else:
                T = self.fn(H[:, None], ones, prev[0], prev[1], config=cfg)[:, 0]
            Hs.append(H)
            Ts.append(T)
            return T

        ro = hf_generate(req.backend, req.prompts, req.G, req.max_new_tokens, req.temperature, req.seed, req.eos_id,
                         temperature_fn=temperature_fn)
        H = torch.stack(Hs, 1)[:, :ro.mask.shape[1]]
        T = torch.stack(Ts, 1)[:, :ro.mask.shape[1]][ro.mask]
        self.prev = (torch.where(ro.mask, H, torch.zeros(())), ro.mask)
        self.t_mean.append(float(T.mean()))
        self.t_min.append(float(T.min()))
        self.t_max.append(float(T.max()))
        return ro


class IBTree(RolloutHook):
    """IB-TPO (``ib_tpo_score`` sampler, ``ib_tpo`` advantage): each prompt's rollouts form an IBTree whose steps
    are single tokens (π_θ(step) = the token's sampling probability). B0 rollouts from the root, then L − 1 rounds
    that branch B rollouts from the K non-leaf nodes of highest IB-Score (``ib_tpo_score`` on the tree so far); a
    branch re-enters the shared prefix as forced tokens and samples the rest. Every trajectory is a batch row,
    advantages are the entry's step advantages with π_ref from the initial (frozen) model. Rounds are batched
    over the n prompts (one backend call per round)."""

    def __init__(self, **config):
        self.cfg = registry.get("ib_tpo_score").config(**config)
        self.score = optimized.get("ib_tpo_score")
        self.adv_fn = optimized.get("ib_tpo")
        self.adv_cfg = registry.get("ib_tpo").config(beta=self.cfg.beta)
        self.select = registry.get("ib_tpo_score").extras["select_top_k"]
        self.ref = None
        self.tree: dict[str, Any] = {}
        self.tokens_tree: list[int] = []
        self.tokens_flat: list[int] = []
        self.branched_depth: list[list[int]] = []

    def generate(self, req):
        import copy

        if self.ref is None:
            self.ref = copy.deepcopy(req.model).eval()
        cfg, L, n = self.cfg, req.max_new_tokens, req.prompts.shape[0]
        parent: list[list[int]] = [[-1] for _ in range(n)]  # per tree: node 0 is the root
        tok: list[list[int]] = [[-1] for _ in range(n)]
        pi: list[list[float]] = [[1.0] for _ in range(n)]
        rows: list[tuple[int, list[int]]] = []  # (tree, path of node ids)
        parts: list[Rollout] = []

        def add(ro: Rollout, trees: list[int], starts: list[int]) -> None:
            for b, (q, s) in enumerate(zip(trees, starts)):
                path, node, d = [], s, 0
                while node > 0:
                    path.append(node)
                    node = parent[q][node]
                path = path[::-1]
                d = len(path)
                for t in range(d, int(ro.mask[b].sum())):
                    parent[q].append(path[-1] if path else 0)
                    tok[q].append(int(ro.responses[b, t]))
                    pi[q].append(float(ro.logp[b, t].exp()))
                    path.append(len(parent[q]) - 1)
                rows.append((q, path))
            parts.append(ro)

        ro = req.backend.generate(req.prompts, cfg.B0, L, req.temperature, seed=req.seed, eos_id=req.eos_id)
        add(ro, [q for q in range(n) for _ in range(cfg.B0)], [0] * (n * cfg.B0))
        depths = []
        for rnd in range(cfg.L - 1):
            trees, starts = [], []
            so_far = concat_rollouts(parts)
            R_all = req.task.reward(so_far.prompts, so_far.responses, so_far.mask).double()
            tree_of = torch.tensor([q for q, _ in rows])
            for q in range(n):
                leaf = [p[-1] for (qq, p) in rows if qq == q]
                R = R_all[tree_of == q]
                par = torch.tensor(parent[q])
                _, score, eligible = self.score(par, torch.tensor(leaf), R, torch.tensor(pi[q]), config=cfg)
                for s in self.select(np.asarray(score), np.asarray(eligible), cfg.K):
                    trees += [q] * cfg.B
                    starts += [int(s)] * cfg.B
            if not trees:
                break
            forced = torch.full((len(trees), L), -1, dtype=torch.int64)
            for b, (q, s) in enumerate(zip(trees, starts)):
                path, node = [], s
                while node > 0:
                    path.append(tok[q][node])
                    node = parent[q][node]
                forced[b, :len(path)] = torch.tensor(path[::-1], dtype=torch.int64)
                depths.append(len(path))
            more = hf_generate(req.backend, req.prompts[torch.tensor(trees)], 1, L, req.temperature,
                               req.seed + 100_003 * (rnd + 1), req.eos_id, forced=forced)
            add(more, trees, starts)
        self.branched_depth.append(depths)
        out = concat_rollouts(parts)
        out = Rollout(prompts=out.prompts, responses=out.responses, mask=out.mask, logp=out.logp,
                      group=torch.tensor([q for q, _ in rows]))
        order = torch.sort(out.group, stable=True).indices  # rows grouped by prompt (the loop's convention)
        out = take_rows(out, order)
        rows = [rows[i] for i in order.tolist()]
        N = [len(p) for p in parent]
        offset = np.cumsum([0] + N[:-1])
        node = torch.full(out.mask.shape, -1, dtype=torch.int64)
        for b, (q, path) in enumerate(rows):
            node[b, :len(path)] = torch.tensor(path, dtype=torch.int64) + int(offset[q])
        self.tree = dict(parent=torch.tensor([(p + int(offset[q])) if p >= 0 else -1 for q in range(n)
                                              for p in parent[q]]),
                         leaf=torch.tensor([int(offset[q]) + path[-1] for q, path in rows]), node=node,
                         tok=[t for q in range(n) for t in tok[q]])
        n_tok = torch.tensor([0 if t < 0 else 1 for t in self.tree["tok"]])
        self.tokens_tree.append(int(n_tok.sum()))
        self.tokens_flat.append(int(out.mask.sum()))
        return out

    def rework(self, x):
        ro, t = x.rollout, self.tree
        from rlspec.optimized.e2e.loop import sequence_logp

        with torch.no_grad():
            ref = sequence_logp(self.ref, ro.prompts, ro.responses, x.temperature).double()
        pi_ref = torch.ones(t["parent"].numel(), dtype=torch.float64)
        live = ro.mask & (t["node"] >= 0)
        pi_ref[t["node"][live]] = ref[live].exp()
        adv = self.adv_fn(x.rewards.double(), ro.group, ro.mask, config=self.adv_cfg, parent=t["parent"],
                          leaf=t["leaf"], node=t["node"], pi_ref=pi_ref)
        return Rework(ro, x.rewards, adv)


# ---------------------------------------------------------------------------------------------------------------
# a filter that needs the optimizer, a per-minibatch mask, a warm-start stage
# ---------------------------------------------------------------------------------------------------------------

class CAPOCurvature(Filter):
    """CAPO curvature mask (``capo_curvature_mask``): per token, the last hidden state h, the LM head W (over the
    sampling temperature), the sampled id, the advantage and the trainer's AdamW moments of W (exp_avg,
    exp_avg_sq, step) give the predicted objective shift m_H and policy shift m_F at the trainer's learning
    rate; tokens outside the thresholds are dropped from the loss."""

    def __init__(self, **config):
        super().__init__()
        self.cfg_kw = dict(config)
        self.fn = optimized.get("capo_curvature_mask")
        self.m_F: list[float] = []
        self.m_H: list[float] = []
        self.adam_step: list[int] = []

    def select(self, x):
        ro, model = x.rollout, x.model
        P = ro.prompts.shape[1]
        head = model.get_output_embeddings().weight
        with torch.no_grad():
            out = model(input_ids=torch.cat([ro.prompts, ro.responses], 1), output_hidden_states=True)
            h = out.hidden_states[-1][:, P - 1:-1].float()  # (B, L, d): the state that predicts y_t
        W = head.detach().float() / x.temperature
        st = x.optimizer.state.get(head, {}) if x.optimizer is not None else {}
        m = v = None
        step = 0
        if "exp_avg" in st:
            m, v, step = st["exp_avg"].float() * (1 / x.temperature), st["exp_avg_sq"].float() / x.temperature ** 2, \
                int(st["step"])
        lr = x.optimizer.param_groups[0]["lr"] if x.optimizer is not None else registry.get(
            "capo_curvature_mask").config().lr
        cfg = registry.get("capo_curvature_mask").config(**{"lr": lr, **self.cfg_kw})
        res = self.fn(h, W, ro.responses, x.adv.float(), x.mask, adam_m=m, adam_v=v, adam_step=step, config=cfg)
        self.m_F.append(float(res["m_F"][x.mask].median()))
        self.m_H.append(float(res["m_H"][x.mask].abs().median()))
        self.adam_step.append(step)
        return res["keep"]


class OffPolicySequenceMask:
    """Off-policy sequence mask (``off_policy_sequence_mask``) as a ``minibatch_filter``: in each minibatch, a
    sequence with negative advantage whose mean log(π_old/π_θ) under the CURRENT parameters exceeds δ is dropped.
    π_θ = π_old in the first minibatch of a step; later minibatches (and epochs) see the drift of the updates."""

    def __init__(self, **config):
        self.cfg = registry.get("off_policy_sequence_mask").config(**config)
        self.fn = optimized.get("off_policy_sequence_mask")
        self.dropped: list[list[int]] = []  # per step, per minibatch: sequences dropped
        self.max_drift: list[float] = []

    def __call__(self, x):
        if x.update == 0:
            self.dropped.append([])
        n = x.mask.sum(1).clamp(min=1)
        a = torch.where(x.mask, x.adv, torch.zeros(())).sum(1) / n  # one advantage per sequence
        keep = self.fn(x.logp, x.old_logp, a.double(), x.mask, config=self.cfg)
        self.dropped[-1].append(int((~keep & x.mask.any(1)).sum()))
        D = torch.where(x.mask, x.old_logp - x.logp, torch.zeros(())).sum(1) / n
        self.max_drift.append(float(D.max()))
        return keep


class PromedMCTSInit:
    """ProMed stage 1 (``promed_mcts_init``) before RL, on a token-level stand-in for the dialogue: the reference's
    ``search`` (no optimized implementation exists) runs per pool prompt with ``llm_turn`` built from stand-ins —
    the doctor's turn at depth i is one token sampled from the CURRENT policy given the prompt and the tokens so
    far, the "patient reply" tells whether it is answer position i, the understood facts are the answer positions
    got right so far (SIG weights uniform), the answer turn after L tokens is correct iff all are. The top
    trajectory of each tree (``select_trajectories``) is the SFT set; the model is trained on it with token
    cross-entropy for ``sft_steps`` Adam steps, then RL starts from it."""

    def __init__(self, sft_steps: int = 30, sft_lr: float = 3e-3, seed: int = 0, **config):
        spec = registry.get("promed_mcts_init")
        self.cfg = spec.config(**config)
        self.extras = spec.extras
        self.sft_steps, self.sft_lr = sft_steps, sft_lr
        self.gen = torch.Generator().manual_seed(seed + 65_537)
        self.best: list[tuple[list[int], float, bool]] = []  # (tokens, score, correct) per prompt
        self.sft_loss: list[float] = []
        self.tree_sizes: list[int] = []

    def __call__(self, model, task) -> None:
        pool = digit_pool()
        ans = reference_answer(task, pool)
        L = int((ans >= 0).sum(1).max())
        for i in range(len(pool)):
            target = ans[i][ans[i] >= 0]
            n = int(target.numel())

            def tokens(hist):
                return [int(t.utterance.split()[-1]) for t in hist]

            def doctor(hist, i=i, n=n):
                if len(hist) >= n:
                    return "answer"
                ids = torch.cat([pool[i], torch.tensor(tokens(hist), dtype=torch.int64)])[None]
                with torch.no_grad():
                    p = torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)
                return f"question: {int(torch.multinomial(p, 1, generator=self.gen))}"

            def understand(hist, q, reply, target=target):
                y = tokens(hist) + [int(q.split()[-1])]
                return np.array([j < len(y) and y[j] == int(target[j]) for j in range(target.numel())])

            sim = self.extras["llm_turn"](doctor, lambda hist, q: "reply", understand,
                                          answer_correct=lambda u: False)
            w = np.full(n, 1.0 / n)

            def simulate(hist, k, sim=sim, n=n, target=target):
                turn = sim(hist, k)
                if turn.terminal:  # correct iff every answer position was right
                    y = tokens(hist)
                    return type(turn)(utterance=turn.utterance, terminal=True,
                                      correct=y == [int(t) for t in target])
                return turn

            tree, _ = self.extras["search"](simulate, w, None, self.cfg)
            self.tree_sizes.append(tree.size)
            path, score = self.extras["select_trajectories"](tree, self.cfg)[0]
            y = [int(tree.turn[v].utterance.split()[-1]) for v in path[1:] if not tree.terminal[v]]
            self.best.append((y, float(score), y == [int(t) for t in target]))
        ids = torch.stack([torch.cat([pool[i], pad_to(torch.tensor([self.best[i][0]]), L, PAD)[0]])
                           for i in range(len(pool))])
        tgt_mask = torch.stack([torch.arange(L) < len(b[0]) for b in self.best])
        P = pool.shape[1]
        opt = torch.optim.Adam(model.parameters(), lr=self.sft_lr)
        for _ in range(self.sft_steps):
            logits = model(input_ids=ids).logits[:, P - 1:-1].float()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, P:].reshape(-1),
                                                    reduction="none").view(len(pool), L)
            loss = nll[tgt_mask].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.sft_loss.append(float(loss.detach()))


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
    "xrpo": ("rollout_hook", XRPO, {},
             "G first rollouts, then 0.5·n·G extra ones given by the allocator (unequal groups); xrpo_sharpen "
             "advantages; ICL seeding not run"),
    "sapo_swarm": ("rollout_hook", SwarmNodes, {},
                   "2 simulated nodes (policy copies refreshed every 2 steps) share 8 items each; up to 4 items "
                   "with unequal rewards are added to the local n"),
    "scaf_grpo": ("rollout_hook", ScafGRPO, {},
                  "all-wrong groups (binary: reward 1) after the 15 % exemption get a hint search (hint k = first k "
                  "answer tokens forced, k = 1..L−1); o*_h replaces one failure; GRPO on binary rewards"),
    "igpo_inpainting": ("rollout_hook", IGPOInpaint, {},
                        "all-wrong groups get G responses with answer tokens forced at ρ ~ U[0.2, 0.6] of positions; "
                        "≤ 4 correct ones replace rollouts; r − mean; one hint token per row in the loss"),
    "hapo_temperature": ("rollout_hook", HAPOTemperature, {},
                         "each token sampled at T = 1 + 0.1·clip(h̃, −1, 1) from its entropy vs the previous "
                         "step's statistics (code form)"),
    "ib_tpo_score": ("rollout_hook", IBTree, dict(prompts_per_step=8),
                     "per prompt a token-level IBTree (B0 = 4, 8 rounds branching the top IB-Score node): 12 "
                     "trajectories with shared prefixes; IB-TPO step advantages"),
    "capo_curvature_mask": ("rollout_filter", CAPOCurvature, dict(policy_loss="capo_curvature"),
                            "loss mask = tokens with m_F < 1e-4 and |m_H| < 0.01 from h, W and AdamW's moments "
                            "at the trainer's lr"),
    "off_policy_sequence_mask": ("minibatch_filter", OffPolicySequenceMask, dict(epochs=4),
                                 "per minibatch: drop sequences with A < 0 and mean log(π_old/π_θ) > δ; 4 epochs "
                                 "× 4 minibatches"),
    "promed_mcts_init": ("init", PromedMCTSInit, {},
                         "before RL: MCTS (reference search, 10 iterations) per pool prompt with the policy as "
                         "doctor (one token per turn), SFT on each tree's top trajectory"),
}

NOT_ADAPTABLE: dict[str, str] = {
    "m2po": "planned in the registry (no reference or optimized implementation to plug in)",
}


def make(name: str, **adapter_kw) -> tuple[str, Any, dict[str, Any]]:
    """(hook keyword of train() — or "init" for a stage before it —, a fresh adapter built with ``adapter_kw``,
    extra train() keyword arguments) for entry ``name``."""
    if name not in ADAPTERS:
        raise KeyError(f"{name!r} has no adapter: " + NOT_ADAPTABLE.get(name, f"adapters exist for {sorted(ADAPTERS)}"))
    hook, cls, kw, _ = ADAPTERS[name]
    return hook, cls(**adapter_kw), dict(kw)


def run(name: str, steps: int = 8, seed: int = 0, threads: int | None = 1, adapter_kw: dict | None = None,
        **train_kw):
    """Train with entry ``name`` plugged into its hook (``adapter_kw`` configures the adapter); return
    (History, adapter). An "init" adapter (ProMed stage 1) first prepares the model, then RL runs unhooked."""
    from rlspec.optimized.e2e.loop import train
    from rlspec.optimized.e2e.models import make_model

    adapter_kw = adapter_kw or {}

    hook, adapter, kw = make(name, **adapter_kw)
    kw.update(train_kw)
    kw["task"] = get_task(kw.get("task", "repeat"), **kw.pop("task_kw", {}))
    if hook == "init":  # a stage before RL: it prepares the model that train() then starts from
        old = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            kw["model"] = kw.get("model") or make_model(kw.get("arch", "llama"), seed=seed)
            adapter(kw["model"], kw["task"])
        finally:
            torch.set_num_threads(old)
        return train(steps=steps, seed=seed, threads=threads, **kw), adapter
    h = train(steps=steps, seed=seed, threads=threads, **{hook: adapter}, **kw)
    return h, adapter

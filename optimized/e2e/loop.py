"""A small, readable RL training loop (CleanRL-style) built on :mod:`optimized`.

One step of :func:`train`, for n = ``prompts_per_step`` prompts and G completions each (B = n·G):

1. draw n prompts from the task (seeded);
2. roll out G completions per prompt with the rollout backend → responses (B, L), ``mask`` (B, L),
   behaviour log-probs (B, L), ``group`` (B,);
3. score them with the task's verifier → ``rewards`` (B,);
4. advantages through the registry BY NAME: ``rlspec.optimized.get(advantage)(rewards=, group=, mask=,
   config=registry.get(advantage).config())`` → ``adv`` (B, L), times ``advantage_sign``
   (−1 is the deliberately broken variant used as a negative control);
5. ``old_logp`` (B, L): the trainer model's log-probs of the sampled tokens before any update
   (``old_logp="trainer"``, as verl recomputes them) or the backend's (``"behaviour"``); the mean
   |behaviour − trainer| is logged as ``logp_mismatch``;
6. ``epochs`` × ``minibatches`` updates: for each shuffled minibatch recompute ``logp`` with the
   trainer model, ``loss = optimized.get(policy_loss)(logp=, old_logp=, adv=, mask=,
   config=registry.get(policy_loss).config(**loss_config))``, backward, clip the gradient norm,
   AdamW step. After the first update the ratios π_θ/π_old move away from 1, so clipping,
   importance weights and soft gates are exercised (with one on-policy update they never are).

Logged per step (:class:`History`): mean reward, mean loss, KL(π_old ‖ π_θ) estimated with k3 =
r − 1 − log r on the minibatch passes, the zero-weight fraction (share of counted tokens with a
non-zero advantage whose gradient weight ∂loss/∂logp is exactly 0: PPO's clip fraction, generalised
to any loss, read from autograd), the behaviour-vs-trainer log-prob mismatch, and wall / CPU time.

A seed fixes the model init, the prompts, the sampling and the minibatch order: on one machine a
run is bit-reproducible (also across 1 or 2 torch threads, as measured in the notes).

Two optional hooks (both ``None`` by default, and then the loop is exactly the one above) let the registry's
``sampler`` / ``curriculum`` entries act on it; :mod:`rlspec.optimized.e2e.pipeline` has one adapter per entry:

* ``prompt_sampler`` replaces step 1: ``prompt_sampler.draw(step, n, generator) -> prompts (n, P)`` chooses
  the prompts (e.g. from the task's pool, by per-prompt weights), and after step 3
  ``prompt_sampler.observe(step, prompts, rollout, rewards)`` updates its state (pass-rate history, EMA,
  curriculum stage), which it carries across steps;
* ``rollout_filter`` acts between steps 5 and 6: ``rollout_filter(FilterInputs) -> keep (B, L) bool`` keeps
  rollouts or tokens (a subset of ``mask``); the updates then use ``keep`` as the loss mask, the advantages
  stay those of the full groups, and a minibatch with no kept token is skipped. :class:`FilterInputs` gives
  the step, the rollout, rewards, advantages, old log-probs and, on demand, the token entropies
  ``entropy()`` (B, L) of the trainer model at the sampling temperature.

Two more optional hooks (also ``None`` by default) let an entry change the rollouts themselves or the mask of
each minibatch:

* ``rollout_hook`` (a :class:`RolloutHook`): ``generate(RolloutRequest) -> Rollout`` replaces step 2 (e.g. per-token
  temperatures, a rollout tree), and after step 5 ``rework(FilterInputs) -> Rework | None`` may return a new
  batch (rows added, replaced or dropped: unequal groups, hinted or inpainted rows, shared external rollouts)
  with its rewards and, optionally, its own advantages (else the registry advantage is computed on the new
  rewards); the loop then recomputes the old log-probs for the new batch. The logged reward stays the mean
  task reward of the rollouts ``generate`` returned;
* ``minibatch_filter(MinibatchInputs) -> keep`` ((b, L) or (b,) bool) runs inside step 6 for each minibatch,
  after the current log-probs are computed and before the loss: the loss mask becomes ``keep ∧ mask``
  (masks that depend on π_θ, which differs from π_old from the second minibatch on); a minibatch left with
  no token is skipped.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlspec import optimized
from rlspec.optimized.e2e.models import make_model
from rlspec.optimized.e2e.rollout import HFBackend, Rollout, RolloutBackend
from rlspec.optimized.e2e.tasks import Task, get_task
from rlspec.reference import registry
from rlspec.reference._validate import fail, positive

OUTCOME_ARGS = ("rewards", "group", "mask")

# Per-algorithm recipes for the matrix and the gate: which loss/advantage pair an algorithm name
# means, and the config fields that the algorithm's paper sets on the partner entry.
RECIPES: dict[str, dict[str, Any]] = {
    # Dr. GRPO (arXiv 2503.20783 §3.1): no std division in the advantage AND a constant-length
    # normaliser in the loss, i.e. the PPO loss with agg seq-mean-token-sum-norm.
    "dr_grpo": dict(policy_loss="ppo", advantage="dr_grpo", loss_config=dict(agg="seq-mean-token-sum-norm")),
    # DVAO (arXiv 2605.25604) combines K reward components: feed it the task's components (B, K).
    "dvao": dict(policy_loss="ppo", advantage="dvao", reward_components=True),
}
# Negative controls: runs that must NOT learn (the matrix reports them next to the algorithms).
CONTROLS: dict[str, dict[str, Any]] = {
    "control:sign-flipped": dict(policy_loss="ppo", advantage="grpo", advantage_sign=-1.0),
    "control:lr=0": dict(policy_loss="ppo", advantage="grpo", lr=0.0),
}


def recipe(algorithm: str) -> dict[str, Any]:
    """Keyword arguments of :func:`train` that run ``algorithm`` (a policy loss or an outcome advantage)."""
    if algorithm in RECIPES or algorithm in CONTROLS:
        return dict(RECIPES.get(algorithm) or CONTROLS[algorithm])
    spec = registry.get(algorithm)
    if spec.kind == "policy_loss":
        return dict(policy_loss=spec.name, advantage="grpo")
    if spec.kind == "advantage":
        return dict(policy_loss="ppo", advantage=spec.name)
    raise fail("algorithm", f"{algorithm!r} of kind {spec.kind!r}", "a policy_loss or advantage entry")


def is_outcome_advantage(name: str) -> bool:
    """True if the registry entry is an advantage estimator with the (rewards, group, mask) signature."""
    spec = registry.get(name)
    if spec.kind != "advantage" or spec.fn is None:
        return False
    params = list(inspect.signature(spec.fn).parameters)
    return tuple(params[:3]) == OUTCOME_ARGS


@dataclass
class History:
    """Per-step logs of one run, and the numbers the gate reads."""

    config: dict[str, Any]
    reward: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    zero_weight_frac: list[float] = field(default_factory=list)
    logp_mismatch: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)  # cumulative wall time at the end of each step
    cpu_s: list[float] = field(default_factory=list)  # cumulative process CPU time

    def first(self, n: int = 10) -> float:
        """Mean reward of the first ``n`` steps."""
        return float(sum(self.reward[:n]) / max(1, len(self.reward[:n])))

    def last(self, n: int = 10) -> float:
        """Mean reward of the last ``n`` steps."""
        tail = self.reward[-n:]
        return float(sum(tail) / max(1, len(tail)))

    def steps_to(self, threshold: float, window: int = 10) -> int | None:
        """First step (1-based) at which the ``window``-step moving-average reward reaches ``threshold``."""
        for i in range(window, len(self.reward) + 1):
            if sum(self.reward[i - window:i]) / window >= threshold:
                return i
        return None

    def passes(self, threshold: float, min_gain: float, window: int = 10) -> bool:
        """The gate: last-``window`` mean ≥ threshold and ≥ first-``window`` mean + min_gain."""
        return self.last(window) >= threshold and self.last(window) - self.first(window) >= min_gain

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sequence_logp(model: torch.nn.Module, prompts: torch.Tensor, responses: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """log π_θ(y_t | x, y_<t) (B, L) of the response tokens, logits divided by the sampling temperature."""
    P = prompts.shape[1]
    ids = torch.cat([prompts, responses], dim=1)  # (B, P+L)
    logits = model(input_ids=ids).logits[:, P - 1:-1].float() / temperature  # (B, L, V): position t predicts y_t
    return torch.log_softmax(logits, dim=-1).gather(2, responses.unsqueeze(2)).squeeze(2)  # (B, L)


@dataclass
class FilterInputs:
    """What a ``rollout_filter`` sees at one step (B = n·G rollouts of length L)."""

    step: int  # 0-based
    steps: int  # total steps of the run (progress = step / max(1, steps - 1))
    rollout: Rollout
    rewards: torch.Tensor  # (B,)
    adv: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, L) bool
    old_logp: torch.Tensor  # (B, L)
    model: torch.nn.Module
    temperature: float
    task: Task | None = None  # the task (verifier) of the run
    backend: RolloutBackend | None = None  # the rollout backend (for hooks that sample more)
    optimizer: torch.optim.Optimizer | None = None  # the trainer's optimizer (its state, e.g. Adam moments)
    seed: int = 0  # the sampling seed of this step's rollouts

    @property
    def progress(self) -> float:
        return self.step / max(1, self.steps - 1)

    def entropy(self) -> torch.Tensor:
        """H_t = −Σ_v π log π (B, L) of the trainer model (logits / temperature), 0 at masked positions."""
        P = self.rollout.prompts.shape[1]
        with torch.no_grad():
            ids = torch.cat([self.rollout.prompts, self.rollout.responses], dim=1)
            z = self.model(input_ids=ids).logits[:, P - 1:-1].float() / self.temperature  # (B, L, V)
            lp = torch.log_softmax(z, dim=-1)
            H = -(lp.exp() * lp).sum(-1)
        return torch.where(self.mask, H, torch.zeros(()))


@dataclass
class RolloutRequest:
    """What a ``rollout_hook.generate`` gets at one step (the arguments the loop would pass to the backend)."""

    step: int
    steps: int
    prompts: torch.Tensor  # (n, P)
    G: int
    max_new_tokens: int
    temperature: float
    seed: int
    eos_id: int | None
    backend: RolloutBackend
    model: torch.nn.Module
    task: Task


@dataclass
class Rework:
    """A new batch from ``rollout_hook.rework``: its rollout (B', L'), rewards (B',) and advantages (B', L') or
    None (then the loop's registry advantage is computed on ``rewards``). ``rollout.mask`` is the loss mask."""

    rollout: Rollout
    rewards: torch.Tensor
    adv: torch.Tensor | None = None


class RolloutHook:
    """Base ``rollout_hook``: ``generate`` samples as the loop would, ``rework`` keeps the batch (returns None)."""

    def generate(self, req: RolloutRequest) -> Rollout:
        return req.backend.generate(req.prompts, req.G, req.max_new_tokens, req.temperature, seed=req.seed,
                                    eos_id=req.eos_id)

    def rework(self, x: FilterInputs) -> Rework | None:
        return None


@dataclass
class MinibatchInputs:
    """What a ``minibatch_filter`` sees for one minibatch of b rows (indices ``idx`` into the step's batch)."""

    step: int
    epoch: int
    update: int  # 0-based index of this update within the step
    idx: torch.Tensor  # (b,)
    logp: torch.Tensor  # (b, L) current log-probs, detached
    old_logp: torch.Tensor  # (b, L)
    adv: torch.Tensor  # (b, L)
    mask: torch.Tensor  # (b, L) bool, the loss mask so far


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    n = int(mask.sum())
    return float(torch.where(mask, x, torch.zeros(())).sum() / n) if n else 0.0


def resolve(policy_loss: str, advantage: str, loss_config: dict | None, adv_config: dict | None):
    """The torch functions and configs of the two registry entries (raises naming what is missing)."""
    ls, ad = registry.get(policy_loss), registry.get(advantage)
    if ls.kind != "policy_loss":
        raise fail("policy_loss", f"{policy_loss!r} of kind {ls.kind!r}", "a registry entry of kind 'policy_loss'")
    if not is_outcome_advantage(advantage):
        raise fail("advantage", f"{advantage!r} (kind {ad.kind!r})",
                   "an advantage entry with the (rewards, group, mask) signature")
    loss_fn, adv_fn = optimized.get(ls.name), optimized.get(ad.name)  # KeyError if not in optimized
    return loss_fn, ls.config(**(loss_config or {})), adv_fn, ad.config(**(adv_config or {}))


def train(task: str | Task = "repeat", policy_loss: str = "ppo", advantage: str = "grpo", steps: int = 50,
          seed: int = 0, epochs: int = 2, minibatches: int = 4, lr: float = 1e-3, G: int = 8,
          prompts_per_step: int = 16, temperature: float = 1.0, grad_clip: float = 1.0, arch: str = "llama",
          loss_config: dict | None = None, adv_config: dict | None = None, advantage_sign: float = 1.0,
          old_logp: str = "trainer", reward_components: bool = False, task_kw: dict | None = None,
          model: torch.nn.Module | None = None,
          backend: RolloutBackend | None = None, threads: int | None = None,
          callback: Callable[[int, History], None] | None = None, prompt_sampler: Any = None,
          rollout_filter: Callable[[FilterInputs], torch.Tensor] | None = None,
          rollout_hook: RolloutHook | None = None,
          minibatch_filter: Callable[[MinibatchInputs], torch.Tensor] | None = None) -> History:
    """Train a tiny LM on ``task`` with the registry's ``policy_loss`` and ``advantage``; return the History.

    ``loss_config`` / ``adv_config`` override fields of the entries' paper-default configs.
    ``reward_components=True`` gives the advantage the task's K reward components (B, K) instead of
    the scalar reward (B,) (multi-reward estimators); the logged reward stays the scalar one.
    ``advantage_sign=-1`` flips the advantages (a broken variant that must not learn).
    ``threads``: torch intra-op threads for this run (restored afterwards); None leaves them alone.
    ``callback(step, history)`` is called after each step (progress bars).
    ``prompt_sampler`` (``draw`` / ``observe``) chooses each step's prompts and ``rollout_filter`` keeps
    rollouts or tokens before the loss, ``rollout_hook`` (``generate`` / ``rework``) samples or rebuilds the
    batch and ``minibatch_filter`` masks each minibatch with the current policy (module docstring); None (the
    default) leaves the loop unchanged.
    """
    if not isinstance(steps, int) or steps < 1:
        raise fail("steps", repr(steps), "a positive int")
    for name, v in (("epochs", epochs), ("minibatches", minibatches), ("G", G), ("prompts_per_step", prompts_per_step)):
        if not isinstance(v, int) or v < 1:
            raise fail(name, repr(v), "a positive int")
    if minibatches > prompts_per_step * G:
        raise fail("minibatches", repr(minibatches), f"at most the batch size {prompts_per_step * G}")
    positive(lr, "lr", allow_zero=True)
    positive(grad_clip, "grad_clip")
    if old_logp not in ("trainer", "behaviour"):
        raise fail("old_logp", repr(old_logp), "'trainer' or 'behaviour'")
    task = get_task(task, **(task_kw or {}))
    loss_fn, loss_cfg, adv_fn, adv_cfg = resolve(policy_loss, advantage, loss_config, adv_config)
    takes_group = "group" in inspect.signature(loss_fn).parameters  # prompt ids go to every loss that takes them
    config = dict(task=task.name, task_description=task.description, policy_loss=policy_loss, advantage=advantage,
                  loss_config=repr(loss_cfg), adv_config=repr(adv_cfg), steps=steps, seed=seed, epochs=epochs,
                  minibatches=minibatches, lr=lr, G=G, prompts_per_step=prompts_per_step, temperature=temperature,
                  grad_clip=grad_clip, arch=arch, advantage_sign=advantage_sign, old_logp=old_logp,
                  reward_components=reward_components)

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        model = model if model is not None else make_model(arch, seed=seed)
        backend = backend if backend is not None else HFBackend(model)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        gen_prompts = torch.Generator().manual_seed(seed)
        gen_shuffle = torch.Generator().manual_seed(seed + 7919)
        hist = History(config=config)
        t0, c0 = time.perf_counter(), time.process_time()
        for step in range(steps):
            # 1-3. prompts, rollouts, rewards
            backend.sync(model)
            if prompt_sampler is None:
                prompts = task.prompts(prompts_per_step, gen_prompts)  # (n, P)
            else:
                prompts = prompt_sampler.draw(step, prompts_per_step, gen_prompts)  # (n, P)
            if rollout_hook is None:
                ro: Rollout = backend.generate(prompts, G, task.max_new_tokens, temperature,
                                               seed=seed * 1_000_003 + step, eos_id=task.eos_id)
            else:
                ro = rollout_hook.generate(RolloutRequest(
                    step=step, steps=steps, prompts=prompts, G=G, max_new_tokens=task.max_new_tokens,
                    temperature=temperature, seed=seed * 1_000_003 + step, eos_id=task.eos_id, backend=backend,
                    model=model, task=task))
            R = task.reward(ro.prompts, ro.responses, ro.mask)  # (B,)
            mask = ro.mask  # (B, L)
            if prompt_sampler is not None:
                prompt_sampler.observe(step, prompts, ro, R)
            # 4. advantages by name
            R_adv = task.reward_components(ro.prompts, ro.responses, mask) if reward_components else R  # (B,) | (B, K)
            adv = advantage_sign * adv_fn(rewards=R_adv, group=ro.group, mask=mask, config=adv_cfg).float()  # (B, L)
            # 5. old log-probs
            with torch.no_grad():
                trainer_old = sequence_logp(model, ro.prompts, ro.responses, temperature)  # (B, L)
            old = trainer_old if old_logp == "trainer" else ro.logp
            mismatch = masked_mean((ro.logp - trainer_old).abs(), mask)
            R_log = R
            if rollout_hook is not None:  # the hook may rebuild the batch (its rewards, its advantages)
                rw = rollout_hook.rework(FilterInputs(
                    step=step, steps=steps, rollout=ro, rewards=R, adv=adv, mask=mask, old_logp=old, model=model,
                    temperature=temperature, task=task, backend=backend, optimizer=opt,
                    seed=seed * 1_000_003 + step))
                if rw is not None:
                    ro, R = rw.rollout, rw.rewards
                    mask = ro.mask
                    if rw.adv is None:
                        adv = advantage_sign * adv_fn(rewards=R, group=ro.group, mask=mask, config=adv_cfg).float()
                    else:
                        adv = torch.as_tensor(rw.adv).float()
                    if adv.shape != mask.shape or R.shape != mask.shape[:1]:
                        raise fail("rollout_hook", f"rework with adv {tuple(adv.shape)}, rewards {tuple(R.shape)}",
                                   f"adv of the mask's shape {tuple(mask.shape)} and one reward per row")
                    with torch.no_grad():
                        trainer_old = sequence_logp(model, ro.prompts, ro.responses, temperature)
                    old = trainer_old if old_logp == "trainer" else ro.logp
            if rollout_filter is not None:  # keep rollouts / tokens: the updates use keep as their loss mask
                keep = rollout_filter(FilterInputs(step=step, steps=steps, rollout=ro, rewards=R, adv=adv, mask=mask,
                                                   old_logp=old, model=model, temperature=temperature, task=task,
                                                   backend=backend, optimizer=opt, seed=seed * 1_000_003 + step))
                keep = torch.as_tensor(keep, dtype=torch.bool)
                if keep.shape != mask.shape:
                    raise fail("rollout_filter", f"keep of shape {tuple(keep.shape)}", f"shape {tuple(mask.shape)}")
                mask = keep & mask
            # 6. epochs × minibatches updates
            losses, kls, zero_w = [], [], []
            B = mask.shape[0]
            n_update = 0
            for epoch in range(epochs):
                perm = torch.randperm(B, generator=gen_shuffle)
                for idx in perm.chunk(minibatches):
                    m = mask[idx]
                    if (rollout_filter is not None or rollout_hook is not None) and not bool(m.any()):
                        continue  # nothing kept in this minibatch
                    logp = sequence_logp(model, ro.prompts[idx], ro.responses[idx], temperature)
                    if minibatch_filter is not None:  # a mask that reads the current policy
                        mk = torch.as_tensor(minibatch_filter(MinibatchInputs(
                            step=step, epoch=epoch, update=n_update, idx=idx, logp=logp.detach(), old_logp=old[idx],
                            adv=adv[idx], mask=m)), dtype=torch.bool)
                        n_update += 1
                        if mk.shape == m.shape[:1]:
                            mk = mk[:, None]
                        if mk.shape not in (m.shape, (m.shape[0], 1)):
                            raise fail("minibatch_filter", f"keep of shape {tuple(mk.shape)}",
                                       f"shape {tuple(m.shape)} or ({m.shape[0]},)")
                        m = m & mk
                        if not bool(m.any()):
                            continue
                    logp.retain_grad()
                    extra = {"group": ro.group[idx]} if takes_group else {}  # prompt ids, for losses that use them
                    loss = loss_fn(logp=logp, old_logp=old[idx], adv=adv[idx], mask=m, config=loss_cfg, **extra)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                    opt.step()
                    with torch.no_grad():
                        log_r = (logp - old[idx]).detach()
                        kls.append(masked_mean(torch.exp(log_r) - 1 - log_r, m))
                        live = m & (adv[idx] != 0)
                        if bool(live.any()):
                            zero_w.append(float((logp.grad[live] == 0).float().mean()))
                    losses.append(float(loss.detach()))
            hist.reward.append(float(R_log.mean()))
            hist.loss.append(sum(losses) / len(losses) if losses else 0.0)
            hist.kl.append(sum(kls) / len(kls) if kls else 0.0)
            hist.zero_weight_frac.append(sum(zero_w) / len(zero_w) if zero_w else 0.0)
            hist.logp_mismatch.append(mismatch)
            hist.wall_s.append(time.perf_counter() - t0)
            hist.cpu_s.append(time.process_time() - c0)
            if callback is not None:
                callback(step, hist)
        return hist
    finally:
        torch.set_num_threads(old_threads)

"""The built-in adapter for OpenRLHF (checked against 0.11.2): its own loss, KL and advantage code.

What is called (never a copy of OpenRLHF's math):

* policy losses ``ppo`` / ``dapo`` / ``gspo``: ``openrlhf.models.loss.PolicyLoss`` (``policy_loss_type``
  "ppo" or "gspo", ``dual_clip``, ``token_level_loss``), with the loss normalisers produced by
  ``openrlhf.utils.loss_utils.get_loss_batch_info`` exactly as ``PPOActor.training_step`` does;
* KL losses ``kl_k1`` / ``kl_k2`` / ``kl_k3``: ``openrlhf.models.utils.compute_approx_kl`` aggregated by
  ``openrlhf.models.loss.aggregate_loss`` with the same batch info (``PPOActor.training_step``: the KL
  loss is always token-level);
* entropy: ``openrlhf.models.utils.compute_entropy`` (its uncompiled function: the module wraps it in
  ``torch.compile``, which on CPU needs a C compiler and tens of seconds) aggregated token-level;
* critic loss ``value_clip``: ``openrlhf.models.loss.ValueLoss`` (``clip_eps``, ``token_level_loss``) with the
  same batch info; its gradient w.r.t. the values is returned as ``dvalues``;
* reward shaping ``kl_in_reward``: ``openrlhf.models.utils.compute_approx_kl`` (the per-token KL, as
  ``RemoteExperienceMaker.make_experience`` computes it) then ``openrlhf.models.utils.compute_reward``;
  ``stop_properly_penalty``: ``openrlhf.trainer.ppo_utils.length_penalty.apply_stop_properly_penalty`` on one
  ``Experience`` holding the rewards and truncation flags;
* advantages ``grpo`` / ``dr_grpo`` / ``rloo`` / ``reinforce_pp`` / ``reinforce_pp_baseline`` / ``gae`` / ``flash_reinforce``:
  the real ``RemoteExperienceMaker.compute_advantages_and_returns`` on one ``Experience``, driven by a
  bare instance (``__new__``, no Ray actors) carrying only the attributes that method reads:
  ``strategy.args`` / ``args`` (``algo.advantage.{estimator,gamma,lambd,no_std_norm}``,
  ``rollout.n_samples_per_prompt``, ``reward.clip_range`` and the length-penalty switches, off),
  ``advantage_estimator`` and ``kl_ctl.value``.

Importing OpenRLHF on a CPU machine. ``import openrlhf.models`` fails without flash-attn (its
``__init__`` imports ``actor`` → ``ring_attn_utils`` → ``flash_attn``), and
``openrlhf.trainer.ppo_utils.experience_maker`` imports ``openrlhf.trainer.ray.launcher`` (vLLM, Ray
actors), used there only as a type annotation. :func:`load` therefore, lazily and once, and only where
``flash_attn`` is not importable:

1. registers a bare package object for ``openrlhf.models`` (its real ``__path__``, so the real leaf
   modules ``openrlhf.models.utils`` and ``openrlhf.models.loss`` import unmodified; its ``__init__``
   is skipped);
2. registers a bare package ``openrlhf.trainer.ray`` and a module ``openrlhf.trainer.ray.launcher``
   holding one placeholder class ``RayActorGroup`` (no math lives there);
3. imports the leaf modules, then REMOVES the three stand-ins from ``sys.modules`` again (restoring
   whatever was there before).

What stays in ``sys.modules`` afterwards: the real modules ``openrlhf``, ``openrlhf.models.utils``,
``openrlhf.models.loss``, ``openrlhf.trainer``, ``openrlhf.trainer.ppo_utils`` (+ ``experience``,
``experience_maker``, ``kl_controller``, ``length_penalty``, ``replay_buffer``), ``openrlhf.utils``
(+ ``logging_utils``, ``loss_utils``, ``math_utils``, ``seqlen_balancing``, ``utils``), and their
third-party imports (``deepspeed``, ``ray``, ``transformers``). No stand-in stays: a later
``import openrlhf.models`` by anyone else fails exactly as it would have without this adapter, while
``from openrlhf.models.loss import PolicyLoss`` finds the already-imported real module.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
import types
from typing import Any

import numpy as np

from rlspec.conformance.adapters.base import (
    Adapter,
    Unsupported,
    array_literal,
    configured_group_size,
    framework_version,
    zero_padding,
)

_TORCH_DTYPES = {"float64": "float64", "float32": "float32", "bfloat16": "bfloat16"}
_STANDINS = ("openrlhf.models", "openrlhf.trainer.ray", "openrlhf.trainer.ray.launcher")
_LOCK = threading.Lock()
_MODS: types.SimpleNamespace | None = None

POLICY = ("ppo", "dapo", "gspo")
KL = ("kl_k1", "kl_k2", "kl_k3")
ADVANTAGE = {  # registry entry -> OpenRLHF --algo.advantage.estimator
    "grpo": "group_norm", "dr_grpo": "dr_grpo", "rloo": "rloo", "reinforce_pp": "reinforce",
    "reinforce_pp_baseline": "reinforce_baseline", "gae": "gae", "flash_reinforce": "flash_reinforce",
}
REWARD = ("kl_in_reward", "stop_properly_penalty")
SUPPORTED = frozenset(POLICY + KL + tuple(ADVANTAGE) + REWARD + ("entropy", "value_clip"))



def load() -> types.SimpleNamespace:
    """Import OpenRLHF's leaf modules (see the module docstring); returns the callables used here."""
    global _MODS
    with _LOCK:
        if _MODS is not None:
            return _MODS
        import openrlhf

        saved = {k: sys.modules[k] for k in _STANDINS if k in sys.modules}
        need_standins = importlib.util.find_spec("flash_attn") is None and "openrlhf.models.loss" not in sys.modules
        try:
            if need_standins:
                models = types.ModuleType("openrlhf.models")
                models.__path__ = [os.path.join(os.path.dirname(openrlhf.__file__), "models")]
                models.__doc__ = "rlspec stand-in: bare package so that the leaf modules import without flash_attn"
                sys.modules["openrlhf.models"] = models
                ray_pkg = types.ModuleType("openrlhf.trainer.ray")
                ray_pkg.__path__ = []
                launcher = types.ModuleType("openrlhf.trainer.ray.launcher")

                class RayActorGroup:  # placeholder: experience_maker uses the name only in annotations
                    pass

                launcher.RayActorGroup = RayActorGroup
                sys.modules["openrlhf.trainer.ray"] = ray_pkg
                sys.modules["openrlhf.trainer.ray.launcher"] = launcher
            loss = importlib.import_module("openrlhf.models.loss")
            utils = importlib.import_module("openrlhf.models.utils")
            em = importlib.import_module("openrlhf.trainer.ppo_utils.experience_maker")
            exp = importlib.import_module("openrlhf.trainer.ppo_utils.experience")
            loss_utils = importlib.import_module("openrlhf.utils.loss_utils")
            length_penalty = importlib.import_module("openrlhf.trainer.ppo_utils.length_penalty")
        finally:
            if need_standins:
                for k in _STANDINS:
                    sys.modules.pop(k, None)
                sys.modules.update(saved)
        import torch

        entropy = utils.compute_entropy
        entropy = getattr(entropy, "_torchdynamo_orig_callable", None) or getattr(entropy, "__wrapped__", entropy)
        _MODS = types.SimpleNamespace(
            torch=torch, loss=loss, utils=utils, em=em, experience=exp, loss_utils=loss_utils,
            PolicyLoss=loss.PolicyLoss, aggregate_loss=loss.aggregate_loss, compute_approx_kl=utils.compute_approx_kl,
            compute_entropy=entropy, get_loss_batch_info=loss_utils.get_loss_batch_info,
            RemoteExperienceMaker=em.RemoteExperienceMaker, Experience=exp.Experience,
            ValueLoss=loss.ValueLoss, compute_reward=utils.compute_reward, length_penalty=length_penalty,
        )
        return _MODS


def _unsupported(why: str) -> Unsupported:
    return Unsupported(why)


def _interior_holes(mask: np.ndarray) -> bool:
    """Whether some row has a masked position before a valid one (not right-padded)."""
    m = np.asarray(mask, bool)
    return bool((m[:, 1:] & ~m[:, :-1]).any())


def group_layout(group: np.ndarray) -> tuple[int, list[int]]:
    """OpenRLHF's view of a batch as its user hands it over: ``n_samples_per_prompt`` and ``Experience.index``.

    OpenRLHF takes no group ids: ``split_rollout_samples`` sets ``index = [i]``, the sample's position in the
    rollout order, and ``compute_advantages_and_returns`` reshapes the rewards to (-1, n_samples_per_prompt),
    so consecutive blocks of n rows are the groups. The rows are passed in the order given, with n the size
    of the batch's largest group (:func:`configured_group_size`, what the user configures); groups of
    different sizes, ids that are not contiguous blocks and a batch that is not a multiple of n then give
    what OpenRLHF gives them (another grouping, or a reshape error), not a refusal.
    """
    g = np.asarray(group)
    return configured_group_size(g), list(range(g.size))


class OpenRLHFAdapter(Adapter):
    """OpenRLHF's PolicyLoss / compute_approx_kl / compute_entropy / RemoteExperienceMaker advantages.

    Padding is passed as given (``scrub_padding = False``, like every built-in adapter): the default cases
    hold finite garbage at masked positions. OpenRLHF masks by multiplication everywhere (``(loss *
    mask).sum()`` in ``aggregate_loss``/``masked_mean``, ``(log_ratio * action_mask)`` for GSPO, ``action_mask
    * values`` in GAE), so the ``padding-nonfinite`` cases (NaN or ±inf at a padded position) turn the loss,
    the gradient and the advantages into NaN (0·NaN = NaN): a robustness finding, listed in the expectation
    file and asserted by tests/test_adapter_openrlhf.py::test_padding_garbage_propagates_nan. A subclass with
    ``scrub_padding = True`` zeroes padding first. Groups: see :func:`group_layout`.
    """

    name = "openrlhf"
    version = framework_version("openrlhf")
    dtypes = ("float64", "float32", "bfloat16")
    #: OpenRLHF reshapes rewards to (n_prompts, n_samples) and takes no group ids: the adapter passes rows as given
    #: (what a user gets), and the cases also come in the framework's own layout (each group side by side,
    #: every group cut to one size), as its rollout buffer has them
    group_layouts = ("any", "contiguous-equal")
    scrub_padding = False
    # The framework's documented/default behaviour, per registry entry (OpenRLHF 0.11.2 sources):
    conventions: dict[str, dict[str, Any]] = {
        # models/loss.py PolicyLoss.forward: ratio = exp(clamp(logp - old, -20, 20)) for policy_loss_type="ppo";
        # cli/train_ppo_ray.py: --actor.eps_clip 0.2 both sides, --actor.dual_clip None, loss_agg_mode token-mean
        "ppo": {"log_ratio_clamp": 20.0},
        "dapo": {"log_ratio_clamp": 20.0},
        # PolicyLoss(policy_loss_type="gspo"): no clamp of the sequence log-ratio; token_level_loss forced False
        # (seq-mean-token-mean, the GSPO entry's default)
        "gspo": {},
        # models/utils.py compute_approx_kl: every estimator's value clamped to [-10, 10]; k3's one-sided
        # pre-clamp (logp - ref >= -10) only changes values the final clamp already caps, so no log_ratio_clamp.
        # The KL loss is aggregated token-level (trainer/ray/ppo_actor.py training_step).
        "kl_k1": {"value_clamp": 10.0},
        "kl_k2": {"value_clamp": 10.0},
        "kl_k3": {"value_clamp": 10.0},
        # experience_maker.py compute_advantages_and_returns, estimator "group_norm":
        # (r - mean) / (std + 1e-9), torch.std (unbiased)
        "grpo": {"ddof": 1, "eps": 1e-9, "eps_placement": "outside"},
        "dr_grpo": {"ddof": 1, "eps": 1e-9, "eps_placement": "outside"},
        # estimators "reinforce" / "reinforce_baseline": returns via get_cumulative_returns (discounts across every
        # position: rewards * action_mask), then whitening over all tokens: biased var, var.clamp(min=1e-8).rsqrt()
        "reinforce_pp": {"ddof": 0, "eps": 1e-8, "eps_placement": "clamp", "discount_masked": True},
        "reinforce_pp_baseline": {"ddof": 0, "eps": 1e-8, "eps_placement": "clamp", "discount_masked": True},
        # estimator "gae": get_advantages_and_returns multiplies values/rewards by the mask (masked positions are
        # steps with r = V = 0), then the same whitening as above; --algo.advantage.lambd/gamma default 1
        "gae": {"masked_steps": "zero", "whiten": True, "whiten_ddof": 0, "whiten_eps": 1e-8},
        # ppo_actor.py: entropy_loss = aggregate_loss(entropy, action_mask, **loss_batch_info) (token-level)
        "entropy": {},
        # estimator "flash_reinforce": rewards - rewards.mean() over the whole batch, no whitening afterwards
        "flash_reinforce": {},
        # models/loss.py ValueLoss(clip_eps) = 0.5 * aggregate_loss(max(...)); cli/train_ppo_ray.py --critic.value_clip
        # default 0.5; trainer/ray/ppo_critic.py builds ValueLoss(value_clip) (token_level_loss=True: token-mean)
        "value_clip": {"eps": 0.5},
        # experience_maker.py: kl = compute_approx_kl(logp, ref, --algo.kl.estimator, default k1), value clamped to
        # [-10, 10] (models/utils.py); compute_reward(r, kl_ctl.value, kl, ...): --algo.kl.init_coef default 0.01,
        # --reward.clip_range default (-10, 10) clamps the outcome reward first
        "kl_in_reward": {"beta": 0.01, "value_clamp": 10.0, "reward_clip": (-10.0, 10.0)},
        # length_penalty.py apply_stop_properly_penalty: off unless --reward.stop_properly_penalty_coef is given; the
        # coefficient is the case's (no framework default to declare)
        "stop_properly_penalty": {},
    }

    def available(self) -> tuple[bool, str]:
        try:
            load()
        except Exception as e:  # noqa: BLE001 - any import failure means "not installed" here
            return False, f"openrlhf not importable: {type(e).__name__}: {e}"
        return True, ""

    def supports(self, spec: Any) -> bool:
        return spec.name in SUPPORTED

    # ------------------------------------------------------------------ dispatch
    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        m = load()
        tdt = getattr(m.torch, _TORCH_DTYPES[dtype])
        if self.scrub_padding:
            inputs = zero_padding(inputs)
        if spec.name in POLICY:
            return self._policy(m, spec.name, inputs, config, tdt)
        if spec.name in KL:
            return self._kl(m, spec.name, inputs, config, tdt)
        if spec.name == "entropy":
            return self._entropy(m, inputs, config, tdt)
        if spec.name == "value_clip":
            return self._value_clip(m, inputs, config, tdt)
        if spec.name == "kl_in_reward":
            return self._kl_in_reward(m, inputs, config, tdt)
        if spec.name == "stop_properly_penalty":
            return self._stop_properly(m, inputs, config, tdt)
        if spec.name in ADVANTAGE:
            return self._advantage(m, spec.name, inputs, config, tdt)
        raise _unsupported(f"openrlhf adapter has no mapping for {spec.name}")

    @staticmethod
    def _batch_info(m, mask, cfg, token_level: bool) -> dict[str, Any]:
        """``get_loss_batch_info`` as PPOActor.training_step calls it (dp_size 1, single process); the
        config's global ``normalizer`` becomes ``batch_num_tokens`` (token-level) or ``global_batch_size``."""
        norm = getattr(cfg, "normalizer", None)
        kw = {}
        if norm is not None:
            kw = {"batch_num_tokens": float(norm)} if token_level else {"global_batch_size": float(norm)}
        return m.get_loss_batch_info(None, mask, **kw)

    @staticmethod
    def _token_level(cfg) -> bool:
        agg = getattr(cfg, "agg", "token-mean")
        if agg == "token-mean":
            return True
        if agg == "seq-mean-token-mean":
            return False
        raise _unsupported(f"agg={agg!r}: OpenRLHF aggregates token-mean or seq-mean-token-mean only "
                           "(--actor.loss_agg_mode)")

    def _policy(self, m, name, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        if name == "gspo":
            kind = "gspo"
            if cfg.log_ratio_clamp is not None:
                raise _unsupported("log_ratio_clamp: OpenRLHF's GSPO ratio is not clamped")
            if cfg.agg != "seq-mean-token-mean":
                raise _unsupported(f"agg={cfg.agg!r}: PolicyLoss forces seq-mean-token-mean for GSPO")
        else:
            kind = "ppo"
            if cfg.log_ratio_clamp != 20.0:
                raise _unsupported(f"log_ratio_clamp={cfg.log_ratio_clamp}: PolicyLoss always clamps log r to ±20")
        token_level = self._token_level(cfg)
        if getattr(cfg, "const", None) is not None:
            raise _unsupported("const: OpenRLHF has no constant-normaliser mode")
        lp = torch.as_tensor(x["logp"]).to(tdt).requires_grad_(True)
        old = torch.as_tensor(x["old_logp"]).to(tdt)
        adv = torch.as_tensor(x["adv"]).to(tdt)
        mask = torch.as_tensor(x["mask"])
        fn = m.PolicyLoss(clip_eps_low=cfg.eps_low, clip_eps_high=cfg.eps_high,
                          dual_clip=getattr(cfg, "dual_clip_c", None), token_level_loss=token_level,
                          policy_loss_type=kind)
        loss = fn(lp, old, adv, action_mask=mask, **self._batch_info(m, mask, cfg, token_level))[0]
        return _loss_and_grad(loss, lp, x["logp"].shape)

    def _kl(self, m, name, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        if cfg.is_weight is not None:
            raise _unsupported(f"is_weight={cfg.is_weight!r}: compute_approx_kl's unbiased_gradient weights only the "
                               "gradient (w·∇k2, w clamped at 10), never the value")
        if cfg.value_clamp != 10.0:
            raise _unsupported(f"value_clamp={cfg.value_clamp}: compute_approx_kl always clamps to [-10, 10]")
        if cfg.log_ratio_clamp is not None:
            raise _unsupported(f"log_ratio_clamp={cfg.log_ratio_clamp}: compute_approx_kl has no symmetric pre-clamp")
        if cfg.agg != "token-mean":
            raise _unsupported(f"agg={cfg.agg!r}: the KL loss is aggregated token-level (ppo_actor.training_step)")
        lp = torch.as_tensor(x["logp"]).to(tdt).requires_grad_(True)
        ref = torch.as_tensor(x["ref_logp"]).to(tdt)
        mask = torch.as_tensor(x["mask"])
        # straight_through_k2 = --algo.kl.unbiased_gradient with no behaviour log-probs (w = 1)
        kl = m.compute_approx_kl(lp, ref, log_probs_old=None, kl_estimator=name[-2:],
                                 unbiased_gradient=bool(cfg.straight_through_k2))
        loss = m.aggregate_loss(kl, mask, **self._batch_info(m, mask, cfg, True))
        return _loss_and_grad(loss, lp, x["logp"].shape)

    def _entropy(self, m, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        if cfg.agg != "token-mean":
            raise _unsupported(f"agg={cfg.agg!r}: the entropy loss is aggregated token-level (ppo_actor.training_step)")
        z = torch.as_tensor(x["logits"]).to(tdt).requires_grad_(True)
        mask = torch.as_tensor(x["mask"])
        value = m.aggregate_loss(m.compute_entropy(z), mask, **self._batch_info(m, mask, cfg, True))
        value.backward()
        g = z.grad if z.grad is not None else torch.zeros_like(z)
        return {"value": float(value.detach().double()), "dlogits": g.detach().double().numpy()}

    def _value_clip(self, m, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        token_level = self._token_level(cfg)
        if cfg.seq_denominator == "all":
            raise _unsupported("seq_denominator='all': aggregate_loss averages over sequences with a valid token")
        V = torch.as_tensor(x["values"]).to(tdt).requires_grad_(True)
        mask = torch.as_tensor(x["mask"])
        fn = m.ValueLoss(clip_eps=cfg.eps, token_level_loss=token_level)
        loss = fn(V, torch.as_tensor(x["old_values"]).to(tdt), torch.as_tensor(x["returns"]).to(tdt), action_mask=mask,
                  **self._batch_info(m, mask, cfg, token_level))
        loss.backward()
        g = V.grad if V.grad is not None else torch.zeros_like(V)
        return {"loss": float(loss.detach().double()), "dvalues": _np(g)}

    def _kl_in_reward(self, m, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        if cfg.value_clamp != 10.0:
            raise _unsupported(f"value_clamp={cfg.value_clamp}: compute_approx_kl always clamps the KL to [-10, 10]")
        lp = torch.as_tensor(x["logp"]).to(tdt)
        ref = torch.as_tensor(x["ref_logp"]).to(tdt)
        mask = torch.as_tensor(x["mask"])
        kl = m.compute_approx_kl(lp, ref, kl_estimator=cfg.estimator)
        clip = None if cfg.reward_clip is None else tuple(float(v) for v in cfg.reward_clip)
        r = m.compute_reward(torch.as_tensor(x["rewards"]).to(tdt), float(cfg.beta), kl, action_mask=mask,
                             reward_clip_range=clip)
        return {"token_rewards": _np(r)}

    def _stop_properly(self, m, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        exp = m.Experience(rewards=torch.as_tensor(x["rewards"]).to(tdt).clone(),
                           truncated=torch.as_tensor(np.asarray(x["truncated"], bool)))
        m.length_penalty.apply_stop_properly_penalty([exp], float(cfg.coef))
        return {"rewards": _np(exp.rewards)}

    # ------------------------------------------------------------------ advantages
    def _advantage(self, m, name, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        estimator = ADVANTAGE[name]
        mask = np.asarray(x["mask"], bool)
        B, T = mask.shape
        gamma, lambd, no_std_norm = 1.0, 1.0, False
        values = None
        kl_coef = 0.0
        n, index = 1, list(range(B))
        # the KL tensor fixes the dtype of the shaped rewards (compute_reward: zeros_like(kl)); in training it is
        # compute_approx_kl's float32 output, here float64 in float64 cases and float32 otherwise
        kdt = torch.promote_types(tdt, torch.float32)
        kl = torch.zeros(B, T, dtype=kdt)
        if name in ("grpo", "dr_grpo"):
            if cfg.std_normalize:
                estimator = "group_norm"
                if cfg.ddof != 1 or cfg.eps_placement != "outside" or cfg.eps != 1e-9:
                    raise _unsupported(f"group_norm divides by torch.std (ddof=1) + 1e-9; config asks ddof={cfg.ddof}, "
                                       f"eps={cfg.eps} {cfg.eps_placement}")
            else:
                estimator = "dr_grpo"
            n, index = group_layout(x["group"])  # n = 1: torch.std of one row is NaN, as a user gets it
            rewards = torch.as_tensor(x["rewards"]).to(tdt)
        elif name == "flash_reinforce":  # one rollout per prompt: n_samples_per_prompt = 1, the batch mean is used
            rewards = torch.as_tensor(x["rewards"]).to(tdt)
        elif name == "rloo":
            n, index = group_layout(x["group"])  # n = 1: the baseline divides by n − 1 = 0, as a user gets it
            rewards = torch.as_tensor(x["rewards"]).to(tdt)
        elif name in ("reinforce_pp", "reinforce_pp_baseline"):
            if (cfg.ddof, cfg.eps, cfg.eps_placement) != (0, 1e-8, "clamp"):
                raise _unsupported("the whitening is biased var with var.clamp(min=1e-8).rsqrt(); config asks "
                                   f"ddof={cfg.ddof}, eps={cfg.eps} {cfg.eps_placement}")
            gamma, no_std_norm = float(cfg.gamma), not cfg.std_normalize
            if not cfg.discount_masked and gamma != 1.0 and _interior_holes(mask):
                raise _unsupported("config discount_masked=False is not expressible (with interior masked tokens "
                                   "it matters): get_cumulative_returns discounts across every position")
            if name == "reinforce_pp_baseline":
                # a gamma other than 1 is accepted: compute_advantages_and_returns logs a warning and sets it to 1
                n, index = group_layout(x["group"])
            rewards = torch.as_tensor(x["rewards"]).to(tdt)
        else:  # gae
            gamma, lambd = float(cfg.gamma), float(cfg.lam)
            if cfg.masked_steps != "zero" and _interior_holes(mask):
                raise _unsupported("config masked_steps='skip' is not expressible (with interior masked tokens it "
                                   "matters): OpenRLHF's GAE treats every position as a step (values and rewards "
                                   "multiplied by the mask)")
            token_rewards = torch.as_tensor(x["token_rewards"]).to(kdt)
            vals = torch.as_tensor(x["values"]).to(kdt)
            if not cfg.whiten:  # the framework's GAE function itself; whitening is a separate step of the trainer
                em = m.RemoteExperienceMaker.__new__(m.RemoteExperienceMaker)
                adv, ret = em.get_advantages_and_returns(vals, token_rewards, torch.as_tensor(mask), gamma, lambd)
                return {"adv": _np(adv), "returns": _np(ret)}
            if (cfg.whiten_ddof, cfg.whiten_eps) != (0, 1e-8):
                raise _unsupported("whitening: OpenRLHF uses the biased variance and var.clamp(min=1e-8)")
            # OpenRLHF's token rewards are the outcome reward on the last action token plus -kl_coef·kl on every
            # token (compute_reward); per-token rewards enter as kl = -token_rewards with kl_coef = 1, outcome 0
            values, kl, kl_coef = vals, -token_rewards, 1.0
            rewards = torch.zeros(B, dtype=kdt)
        adv, ret = run_compute_advantages(m, estimator, rewards, torch.as_tensor(mask), index, n, kl=kl,
                                          values=values, kl_coef=kl_coef, gamma=gamma, lambd=lambd,
                                          no_std_norm=no_std_norm)
        if name == "gae":
            return {"adv": _np(adv), "returns": _np(ret)}
        return {"adv": _np(adv)}

    # ------------------------------------------------------------------ reproduction
    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        if config is None:  # the harness passes None: use the adapter's conventions on the entry's defaults
            try:
                config = spec.config(**self.conventions.get(spec.name, {}))
            except Exception:  # noqa: BLE001
                config = None
        return reproduction_snippet(spec.name, inputs, config, dtype)


class OpenRLHFRawAdapter(OpenRLHFAdapter):
    """OpenRLHF with padding passed as given: the same as :class:`OpenRLHFAdapter` (its default), kept as a name
    for ``rlspec check rlspec.conformance.adapters.openrlhf_adapter:OpenRLHFRawAdapter``."""

    scrub_padding = False


def run_compute_advantages(m, estimator, rewards, action_mask, index, n_samples, *, kl, values=None, kl_coef=0.0,
                           gamma=1.0, lambd=1.0, no_std_norm=False):
    """The real ``RemoteExperienceMaker.compute_advantages_and_returns`` on one ``Experience``.

    The instance is built with ``__new__`` (no Ray actor groups, no tokenizer) and carries only what the
    method reads. Returns (advantages, returns), both (B, T)."""
    N = types.SimpleNamespace
    args = N(algo=N(advantage=N(estimator=estimator, gamma=gamma, lambd=lambd, no_std_norm=no_std_norm)),
             rollout=N(n_samples_per_prompt=n_samples, max_new_tokens=None),
             reward=N(clip_range=None, overlong_buffer_len=None, stop_properly_penalty_coef=None),
             data=N(max_len=None))
    em = m.RemoteExperienceMaker.__new__(m.RemoteExperienceMaker)
    em.strategy, em.args, em.advantage_estimator, em.kl_ctl = N(args=args), args, estimator, N(value=kl_coef)
    exp = m.Experience(action_mask=action_mask.bool(), rewards=rewards.clone(), index=list(index), kl=kl,
                       values=values, info={})
    out = em.compute_advantages_and_returns([exp])[0]
    return out.advantages, out.returns


def _np(t) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _loss_and_grad(loss, lp, shape) -> dict[str, Any]:
    loss.backward()
    g = lp.grad
    return {"loss": float(loss.detach().double()), "dlogp": _np(g) if g is not None else np.zeros(shape)}


# ---------------------------------------------------------------------- reproduction snippets
_SHIM = '''\
import os, sys, types, numpy as np, torch
import openrlhf
# `import openrlhf.models` needs flash_attn: register a bare package so the real leaf modules import
_m = types.ModuleType("openrlhf.models"); _m.__path__ = [os.path.join(os.path.dirname(openrlhf.__file__), "models")]
sys.modules.setdefault("openrlhf.models", _m)
# experience_maker imports openrlhf.trainer.ray.launcher (vLLM/Ray) for a type annotation only
_r = types.ModuleType("openrlhf.trainer.ray"); _r.__path__ = []; sys.modules.setdefault("openrlhf.trainer.ray", _r)
_l = types.ModuleType("openrlhf.trainer.ray.launcher"); _l.RayActorGroup = object
sys.modules.setdefault("openrlhf.trainer.ray.launcher", _l)
from openrlhf.models.loss import PolicyLoss, aggregate_loss
from openrlhf.models.utils import compute_approx_kl, compute_entropy
from openrlhf.utils.loss_utils import get_loss_batch_info
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.experience import Experience
from numpy import nan, inf
'''


def reproduction_snippet(name: str, x: dict[str, np.ndarray], cfg: Any, dtype: str) -> str:
    """Standalone Python (needs only OpenRLHF + numpy/torch) that rebuilds the case and calls OpenRLHF."""
    dt = f"torch.{_TORCH_DTYPES[dtype]}"
    lines = [_SHIM, f"dt = {dt}"]
    for k, v in x.items():
        if isinstance(v, np.ndarray):
            lines.append(f"{k} = {array_literal(v)}")
    c = (lambda f, d=None: getattr(cfg, f, d)) if cfg is not None else (lambda f, d=None: d)
    if name in POLICY:
        kind = "gspo" if name == "gspo" else "ppo"
        tl = c("agg", "seq-mean-token-mean" if name == "gspo" else "token-mean") == "token-mean"
        lines += [
            "lp = torch.tensor(logp, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)",
            f"fn = PolicyLoss(clip_eps_low={c('eps_low', 0.2)!r}, clip_eps_high={c('eps_high', 0.2)!r}, "
            f"dual_clip={c('dual_clip_c')!r}, token_level_loss={tl}, policy_loss_type={kind!r})",
            "loss = fn(lp, torch.tensor(old_logp, dtype=dt), torch.tensor(adv, dtype=dt), action_mask=mask_t,",
            "          **get_loss_batch_info(None, mask_t))[0]",
            "loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)",
        ]
    elif name in KL:
        lines += [
            "lp = torch.tensor(logp, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)",
            f"kl = compute_approx_kl(lp, torch.tensor(ref_logp, dtype=dt), kl_estimator={name[-2:]!r}, "
            f"unbiased_gradient={bool(c('straight_through_k2', False))})",
            "loss = aggregate_loss(kl, mask_t, **get_loss_batch_info(None, mask_t))",
            "loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)",
        ]
    elif name == "value_clip":
        tl = c("agg", "token-mean") == "token-mean"
        lines += [
            "from openrlhf.models.loss import ValueLoss",
            "V = torch.tensor(values, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)",
            f"fn = ValueLoss(clip_eps={c('eps', 0.5)!r}, token_level_loss={tl})",
            "loss = fn(V, torch.tensor(old_values, dtype=dt), torch.tensor(returns, dtype=dt), action_mask=mask_t,",
            "          **get_loss_batch_info(None, mask_t))",
            "loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)",
        ]
    elif name == "kl_in_reward":
        clip = c("reward_clip")
        lines += [
            "from openrlhf.models.utils import compute_reward",
            f"kl = compute_approx_kl(torch.tensor(logp, dtype=dt), torch.tensor(ref_logp, dtype=dt), "
            f"kl_estimator={c('estimator', 'k1')!r})",
            f"r = compute_reward(torch.tensor(rewards, dtype=dt), {c('beta', 0.01)!r}, kl, action_mask=torch.tensor(mask),",
            f"                   reward_clip_range={None if clip is None else tuple(clip)!r})",
            "print('token_rewards (compare at mask only)', r)",
        ]
    elif name == "stop_properly_penalty":
        lines += [
            "from openrlhf.trainer.ppo_utils.length_penalty import apply_stop_properly_penalty",
            "e = Experience(rewards=torch.tensor(rewards, dtype=dt), truncated=torch.tensor(truncated))",
            f"apply_stop_properly_penalty([e], {float(c('coef', 0.0))!r}); print('rewards', e.rewards)",
        ]
    elif name == "entropy":
        lines += [
            "z = torch.tensor(logits, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)",
            "H = getattr(compute_entropy, '_torchdynamo_orig_callable', compute_entropy)(z)",
            "v = aggregate_loss(H, mask_t, **get_loss_batch_info(None, mask_t)); v.backward()",
            "print('value', v.item()); print('dlogits', z.grad)",
        ]
    else:
        est = ADVANTAGE.get(name, name)
        if name in ("grpo", "dr_grpo"):
            est = "group_norm" if c("std_normalize", name == "grpo") else "dr_grpo"
        lines += [
            "N = types.SimpleNamespace",
            "def openrlhf_adv(estimator, rewards, mask, index, n, kl, values=None, kl_coef=0.0, gamma=1.0, lambd=1.0,",
            "                 no_std_norm=False):",
            "    args = N(algo=N(advantage=N(estimator=estimator, gamma=gamma, lambd=lambd, no_std_norm=no_std_norm)),",
            "             rollout=N(n_samples_per_prompt=n, max_new_tokens=None), data=N(max_len=None),",
            "             reward=N(clip_range=None, overlong_buffer_len=None, stop_properly_penalty_coef=None))",
            "    em = RemoteExperienceMaker.__new__(RemoteExperienceMaker)",
            "    em.strategy, em.args, em.advantage_estimator, em.kl_ctl = N(args=args), args, estimator, N(value=kl_coef)",
            "    e = Experience(action_mask=torch.tensor(mask), rewards=rewards, index=list(index), kl=kl, values=values,"
            " info={})",
            "    out = em.compute_advantages_and_returns([e])[0]",
            "    return out.advantages, out.returns",
            "kdt = torch.promote_types(dt, torch.float32)",
        ]
        if name == "gae":
            lines += [
                "adv, ret = openrlhf_adv('gae', torch.zeros(mask.shape[0], dtype=kdt), mask, range(mask.shape[0]), 1,",
                "                        kl=-torch.tensor(token_rewards, dtype=kdt), values=torch.tensor(values, "
                "dtype=kdt),",
                f"                        kl_coef=1.0, gamma={c('gamma', 1.0)!r}, lambd={c('lam', 0.95)!r})",
                "print('adv', adv); print('returns', ret)",
            ]
        else:
            if name in ("reinforce_pp", "flash_reinforce"):
                lines.append("n, index = 1, list(range(len(rewards)))")
            else:
                lines += [
                    "# OpenRLHF takes no group ids: rows in the order given, n_samples_per_prompt = largest group",
                    "n = int(np.unique(group, return_counts=True)[1].max()) if len(group) else 1",
                    "index = list(range(len(group)))",
                ]
            lines += [
                f"adv, _ = openrlhf_adv({est!r}, torch.tensor(rewards, dtype=dt), mask, index, n,",
                "                      kl=torch.zeros(mask.shape, dtype=kdt),"
                f" gamma={c('gamma', 1.0)!r}, no_std_norm={not c('std_normalize', True)})",
                "print('adv', adv)",
            ]
    return "\n".join(lines) + "\n"


__all__ = ["OpenRLHFAdapter", "OpenRLHFRawAdapter", "load", "group_layout", "run_compute_advantages",
           "reproduction_snippet"]

"""Every rlspec policy loss and outcome advantage in verl's registries (checked against verl 0.9.1).

Usage (before verl builds its workers, e.g. at the top of your entry point, in every Ray worker process)::

    from rlspec.optimized.integrations import verl as rlspec_verl
    rlspec_verl.register_all(loss_configs={"r2vpo": {"lam_init": 0.1}})
    # then in verl's config: actor_rollout_ref.actor.policy_loss.loss_mode=rlspec_r2vpo
    #                        algorithm.adv_estimator=rlspec_rloo

Names are ``rlspec_<registry name>`` (aliases resolved). Registered: every entry whose torch function runs on
verl's canonical batch (:func:`policy_loss_names`, :func:`advantage_names`); entries that need more (turn ids,
tree nodes, K reward components, a guard's statistics ...) are left out. Policy losses go through
``verl.trainer.ppo.core_algos.register_policy_loss`` and are found by ``get_policy_loss_fn``; outcome
advantages (the ``(rewards, group, mask)`` signature) through ``register_adv_est`` / ``get_adv_estimator_fn``.

Mapping of verl's call onto rlspec's
------------------------------------
Policy loss ``fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights)
-> (loss, metrics)``: ``rlspec.optimized.get(name)(logp=log_prob, old_logp=old_log_prob, adv=advantages,
mask=response_mask, config=cfg)`` where ``cfg`` is the entry's paper-default config with the overrides given to
:func:`register_all` and the aggregation taken from verl (verl's ``actor.loss_agg_mode`` wins over the rlspec
config's ``agg``; pass ``agg_from="rlspec"`` to keep the rlspec config's; an entry that aggregates its own
way, e.g. INPO's ``pair-mean``, keeps it)::

    verl loss_agg_mode        rlspec agg                  normalizer (from config.global_batch_info)
    token-mean                token-mean                  batch_num_tokens / dp_size
    token-sum                 token-mean                  1 / dp_size
    seq-mean-token-mean       seq-mean-token-mean         global_batch_size / dp_size
    seq-mean-token-sum        seq-mean-token-sum          global_batch_size / dp_size
    seq-mean-token-sum-norm   seq-mean-token-sum-norm     global_batch_size / dp_size, const = loss_scale_factor

(without global info: this micro-batch's own count, as verl's ``agg_loss``). The clip ranges and other
hyper-parameters are the rlspec config's, not ``actor.clip_ratio_*``. ``rollout_is_weights`` (verl's rollout
correction) is refused with a clear error: rlspec losses take no per-token IS weights. Metrics returned:
``actor/ppo_kl`` (mean of old − new log-prob over valid tokens, as verl's losses log it).

Advantage ``fn(token_level_rewards, response_mask, index=None, config=None, **kw) -> (advantages, returns)``:
``rewards = token_level_rewards.sum(-1)``, ``group`` = ``index`` (verl's ``uid`` array, mapped to integer ids;
every sequence its own group when absent), ``mask = response_mask``; returns = advantages (as verl's GRPO).

Dtypes: verl's FSDP engine returns bfloat16 log-probs under its default mixed precision, next to float32
``old_log_probs`` and advantages; the loss is then computed in float32 (the advantages are not rounded to
bfloat16), as verl's own losses do by type promotion.

Training with verl on CPU (what ``tests/test_integrations_verl_train.py`` runs, peers suite)
-----------------------------------------------------------------------------------------
Three PPO steps of verl 0.9.1's own code with ``rlspec_r2vpo`` + ``rlspec_rloo`` (token-mean) and with
``rlspec_fiberpo`` + ``rlspec_grpo`` (seq-mean-token-mean), a random-init 2-layer Llama (hidden 64, 132k
parameters) written to a temp dir, 4 prompts × n=4 responses of 6 tokens, 2 mini-batches per step (6 AdamW
steps), 2 micro-batches each: verl's Hydra config (``ppo_trainer.yaml``), ``ActorRolloutRefWorker(role="actor")``
(``init_model``, ``compute_log_prob``, ``update_actor``: the FSDP2 engine on a gloo group of world size 1, its
micro-batching, ``ppo_loss``, backward and optimizer step), ``RayPPOTrainer._compute_old_log_prob`` /
``_update_actor`` and ``compute_advantage`` for the data path, and ``HFRollout`` sampling from the actor's
module. Each logged mini-batch loss equals the NumPy reference's loss on that mini-batch (to 1e-5), the
advantages equal the reference estimator's, every micro-batch went through the rlspec function; about 20 s
on 2 CPU cores. What it needed, all outside verl's source: a ``cpu`` platform registered through
``verl.plugin.platform.PlatformRegistry``; verl's ``FSDPEngineWithLMHead`` registered for device ``cpu``
through ``EngineRegistry`` (0.9.1 registers it for cuda/npu only: ``No engine registered for device='cpu'``);
the process group initialized first (verl asks for ``cpu:gloo,cpu:gloo``: ``Duplicate device type cpu``);
``uvicorn``, ``fastapi`` and ``cachetools`` installed (imported by verl's worker and trainer modules); verl's
``is_trl_available`` switched off in its model patching (with TRL 1.16 installed, verl 0.9.1 fails on
``from trl import AutoModelForCausalLMWithValueHead``). Note that verl never calls R²VPO's dual step, so λ stays
at the config's ``lam_init`` (pass ``loss_configs={"r2vpo": {"lam_init": ...}}``).

What does not run on CPU: the full trainer (``python -m verl.trainer.main_ppo``). Its default v1 trainer
imports ``transfer_queue`` (not installed: ``No module named 'transfer_queue'``), and both trainers generate
through a rollout server of which verl 0.9.1 registers only vLLM ≥ 0.18, SGLang and TensorRT-LLM
(``get_rollout_replica_class("vllm")``: ``vllm version None not supported and SGLang also not Found``); Ray
then starts the same worker class tested above in its own processes, where the CPU shims above would have to
be loaded too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized.integrations._common import compute_dtype, config_with, drivable, resolve
from rlspec.reference import aggregation
from rlspec.reference._validate import fail

__all__ = ["PREFIX", "policy_loss_names", "advantage_names", "make_policy_loss", "make_adv_estimator",
           "register_all", "verl_to_rlspec_agg"]

PREFIX = "rlspec_"


def policy_loss_names() -> list[str]:
    """Registry names of every policy loss whose torch function runs on (logp, old_logp, adv, mask)."""
    return drivable("policy_loss")


def advantage_names() -> list[str]:
    """Registry names of every outcome advantage whose torch function runs on (rewards (B,), group, mask)."""
    return drivable("advantage")


def _num(x: Any) -> float | None:
    if x is None:
        return None
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def verl_to_rlspec_agg(loss_agg_mode: str, global_batch_info: dict | None = None) -> dict[str, Any]:
    """The rlspec ``agg``/``normalizer``/``const`` fields equal to verl's ``agg_loss(mode, **global_batch_info)``."""
    info = dict(global_batch_info or {})
    dp = _num(info.get("dp_size")) or 1.0
    tokens, seqs, scale = _num(info.get("batch_num_tokens")), _num(info.get("global_batch_size")), _num(
        info.get("loss_scale_factor"))
    if loss_agg_mode == "token-mean":
        if tokens is None and dp > 1:
            raise fail("global_batch_info", "dp_size > 1 without batch_num_tokens", "verl's global batch info")
        return dict(agg="token-mean", normalizer=None if tokens is None else tokens / dp, const=None)
    if loss_agg_mode == "token-sum":
        return dict(agg="token-mean", normalizer=1.0 / dp, const=None)
    if loss_agg_mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        if seqs is None and dp > 1:
            raise fail("global_batch_info", "dp_size > 1 without global_batch_size", "verl's global batch info")
        out = dict(agg=loss_agg_mode, normalizer=None if seqs is None else seqs / dp, const=None)
        if loss_agg_mode == "seq-mean-token-sum-norm":
            out["const"] = scale  # None = T, the padded width (verl's default too)
        return out
    raise fail("loss_agg_mode", repr(loss_agg_mode), "one of verl's token-mean, token-sum, seq-mean-token-mean, "
               "seq-mean-token-sum, seq-mean-token-sum-norm")


def make_policy_loss(name: str, config: dict | Any | None = None, agg_from: str = "verl"):
    """A function with verl's policy-loss signature computing rlspec's ``name`` (see the module doc)."""
    spec, fn, base = resolve(name, "policy_loss", config)
    if agg_from not in ("verl", "rlspec"):
        raise fail("agg_from", repr(agg_from), "'verl' or 'rlspec'")

    def policy_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode: str = "token-mean",
                    config=None, rollout_is_weights=None, **_ignored):
        if rollout_is_weights is not None:
            raise fail("rollout_is_weights", "a tensor (verl rollout correction)",
                       f"None: rlspec's {spec.name!r} takes no per-token importance weights; switch "
                       "algorithm.rollout_correction off")
        cfg = base
        if agg_from == "verl" and getattr(base, "agg", None) in aggregation.MODES:  # else: its own (e.g. pair-mean)
            info = getattr(config, "global_batch_info", None) if config is not None else None
            cfg = config_with(base, **verl_to_rlspec_agg(loss_agg_mode, info))
        mask = response_mask.bool()
        if getattr(cfg, "agg", None) == "group-token-mean":
            raise fail("agg", "'group-token-mean'", "a mode verl can express (no prompt ids reach verl's loss)")
        loss = fn(logp=log_prob, old_logp=old_log_prob, adv=advantages.to(compute_dtype(log_prob)), mask=mask,
                  config=cfg)
        with torch.no_grad():
            m = mask.to(log_prob.dtype)
            ppo_kl = ((old_log_prob - log_prob).detach() * m).sum() / m.sum().clamp(min=1.0)
        return loss, {"actor/ppo_kl": ppo_kl.item()}

    policy_loss.__name__ = policy_loss.__qualname__ = f"{PREFIX}{spec.name}"
    policy_loss.__doc__ = f"rlspec policy loss {spec.name!r} ({spec.paper.title}) with verl's signature."
    policy_loss.rlspec_name, policy_loss.rlspec_config = spec.name, base
    return policy_loss


def _group_ids(index, B: int, device) -> torch.Tensor:
    if index is None:
        return torch.arange(B, device=device)
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    arr = np.asarray(index)
    if arr.shape != (B,):
        raise fail("index", f"shape {arr.shape}", f"({B},): one prompt uid per sequence")
    _, inv = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    return torch.as_tensor(inv.reshape(-1), dtype=torch.int64, device=device)


def make_adv_estimator(name: str, config: dict | Any | None = None):
    """A function with verl's advantage-estimator signature computing rlspec's outcome advantage ``name``."""
    spec, fn, cfg = resolve(name, "advantage", config)

    def adv_estimator(token_level_rewards, response_mask, index=None, config=None, **_ignored):
        mask = response_mask.bool()
        rewards = token_level_rewards.sum(dim=-1)  # (B,): the outcome score, as verl's outcome estimators
        group = _group_ids(index, rewards.shape[0], rewards.device)
        adv = fn(rewards=rewards, group=group, mask=mask, config=cfg).to(token_level_rewards.dtype)
        adv = adv * mask.to(adv.dtype)
        return adv, adv

    adv_estimator.__name__ = adv_estimator.__qualname__ = f"{PREFIX}{spec.name}"
    adv_estimator.__doc__ = f"rlspec advantage {spec.name!r} ({spec.paper.title}) with verl's signature."
    adv_estimator.rlspec_name, adv_estimator.rlspec_config = spec.name, cfg
    return adv_estimator


def register_all(loss_configs: dict[str, dict | Any] | None = None, adv_configs: dict[str, dict | Any] | None = None,
                 agg_from: str = "verl", prefix: str = PREFIX) -> dict[str, list[str]]:
    """Register every rlspec policy loss and outcome advantage into verl; returns the verl names registered.

    ``loss_configs`` / ``adv_configs`` map registry names to config overrides (a dict of fields or a config
    object). Calling it again replaces the earlier registrations (same names)."""
    from verl.trainer.ppo import core_algos as ca

    loss_configs, adv_configs = dict(loss_configs or {}), dict(adv_configs or {})
    out: dict[str, list[str]] = {"policy_loss": [], "advantage": []}
    for n in policy_loss_names():
        ca.register_policy_loss(prefix + n)(make_policy_loss(n, loss_configs.pop(n, None), agg_from))
        out["policy_loss"].append(prefix + n)
    for n in advantage_names():
        key = prefix + n
        ca.ADV_ESTIMATOR_REGISTRY.pop(key, None)  # register_adv_est refuses a different fn under a taken name
        ca.register_adv_est(key)(make_adv_estimator(n, adv_configs.pop(n, None)))
        out["advantage"].append(key)
    if loss_configs or adv_configs:
        raise fail("configs", f"entries {sorted(loss_configs) + sorted(adv_configs)}",
                   "registry names of policy losses / outcome advantages with a torch implementation")
    return out

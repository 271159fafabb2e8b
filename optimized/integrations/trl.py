"""TRL's ``GRPOTrainer`` with any rlspec policy loss and outcome advantage (checked against TRL 1.16.0).

Usage::

    from rlspec.optimized.integrations.trl import RLSpecGRPOTrainer
    trainer = RLSpecGRPOTrainer(model=model, reward_funcs=reward, args=GRPOConfig(...), train_dataset=ds,
                                processing_class=tokenizer,
                                rlspec_loss="r2vpo", rlspec_loss_config={"lam_init": 0.1},
                                rlspec_advantage="grpo")      # optional; None keeps TRL's advantages
    trainer.train()

What is TRL's and what is rlspec's
----------------------------------
Everything but two numbers is TRL's: data loading, generation, reward functions, the buffering of a
generation batch over ``steps_per_generation`` / ``num_iterations``, the forward pass that gives the
per-token log-probs (``_get_per_token_logps_and_entropies``), ``old_per_token_logps`` (TRL computes them
only when it needs them; otherwise ``logp.detach()``, as its own loss does), accelerate, the optimizer.

* **Loss.** ``_compute_loss`` is replaced: ``loss = rlspec.optimized.get(rlspec_loss)(logp=, old_logp=, adv=,
  mask=, config=registry.get(rlspec_loss).config(**rlspec_loss_config))`` on TRL's tensors (``completion_mask``
  times ``tool_mask`` when present, as a bool mask; advantages broadcast from (B,) to (B, T) when TRL's are per
  sequence), plus ``group=`` (prompt ids) for losses that take it and ``ref_logp=`` when TRL computed
  reference log-probs (``beta != 0``; TRL's own k3 term is *not* added — the KL is whatever the rlspec config
  says). The loss is then divided by the gradient-accumulation steps in training, as TRL does for its
  ``grpo``/``bnpo`` losses. With ``token_normalizer="generation"`` and a ``token-mean`` config, the rlspec
  config's ``normalizer`` is set to TRL's ``dapo`` denominator instead (completion tokens of the generation
  batch / processes · accumulation steps / steps per generation), which makes the token mean exact across
  micro-batches and processes. TRL's entropy bonus (``entropy_coef``) and MoE aux loss, the top-entropy mask
  and the vLLM importance-sampling correction are not applied: the constructor raises if they are switched on.
* **Advantages** (optional). With ``rlspec_advantage`` set, the advantages TRL computed inline are replaced by
  ``rlspec.optimized.get(rlspec_advantage)(rewards=, group=, mask=, config=...)`` on the weighted sum of the
  reward functions over the whole (all-process) generation batch (TRL's ``sum_then_normalize`` input; an
  unscorable completion, every reward function ``None``, gets reward 0 and advantage 0), prompt ids
  ``index // num_generations``, and each completion's mask; then sliced to this process, as TRL does.
  Without it TRL's advantages (group z-score, ε = 1e-4 on the std) are used.

The last micro-batch's inputs and loss are kept in ``trainer.rlspec_last`` and the last generation batch's
rewards, prompt ids, masks and rlspec advantages in ``trainer.rlspec_last_advantage`` (detached copies), so
that a test can recompute both with the NumPy reference.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from trl import GRPOTrainer

from rlspec.optimized.integrations._common import compute_dtype, resolve
from rlspec.reference import registry
from rlspec.reference._validate import fail

__all__ = ["RLSpecGRPOTrainer", "resolve_loss", "resolve_advantage"]


def resolve_loss(name: str, config: dict | Any | None = None):
    """(torch loss function, config dataclass) of a registered policy loss; raises on any other kind."""
    _, fn, cfg = resolve(name, "policy_loss", config, argument="rlspec_loss")
    return fn, cfg


def resolve_advantage(name: str, config: dict | Any | None = None):
    """(torch estimator, config) of a registered outcome advantage (the (rewards, group, mask) signature)."""
    _, fn, cfg = resolve(name, "advantage", config, argument="rlspec_advantage")
    return fn, cfg


class RLSpecGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` whose loss (and optionally advantage) is a registered rlspec entry. See the module doc."""

    def __init__(self, *args, rlspec_loss: str = "ppo", rlspec_loss_config: dict | Any | None = None,
                 rlspec_advantage: str | None = None, rlspec_advantage_config: dict | Any | None = None,
                 token_normalizer: str = "local", **kwargs):
        if token_normalizer not in ("local", "generation"):
            raise fail("token_normalizer", repr(token_normalizer), "'local' or 'generation'")
        self.rlspec_loss_fn, self.rlspec_loss_config = resolve_loss(rlspec_loss, rlspec_loss_config)
        self.rlspec_loss_name = registry.get(rlspec_loss).name
        self._rlspec_takes = set(inspect.signature(self.rlspec_loss_fn).parameters)
        self.rlspec_adv_fn = self.rlspec_adv_config = None
        if rlspec_advantage is not None:
            self.rlspec_adv_fn, self.rlspec_adv_config = resolve_advantage(rlspec_advantage, rlspec_advantage_config)
        self.rlspec_token_normalizer = token_normalizer
        self.rlspec_last: dict[str, Any] | None = None
        self.rlspec_last_advantage: dict[str, Any] | None = None
        self._rlspec_rewards_per_func: torch.Tensor | None = None
        super().__init__(*args, **kwargs)
        off = [n for n, on in (("entropy_coef / use_adaptive_entropy", self._entropy_bonus_enabled),
                               ("top_entropy_quantile < 1", self.top_entropy_quantile < 1.0),
                               ("off_policy_mask_threshold", self.off_policy_mask_threshold is not None),
                               ("vllm_importance_sampling_correction",
                                self.use_vllm and self.vllm_importance_sampling_correction),
                               ("MoE aux loss (output_router_logits)", self.aux_loss_enabled)) if on]
        if off:
            raise fail("args", f"TRL loss options {off} switched on", "them off: the loss is rlspec's "
                       f"{self.rlspec_loss_name!r} (put such terms in its config, if it has them)")

    # ---- advantages ---------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        out = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._rlspec_rewards_per_func = out  # (N_all, n_funcs), all processes, NaN = not scored
        return out

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        B = output["completion_ids"].shape[0]
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        start = self.accelerator.process_index * B
        group = torch.div(torch.arange(start, start + B, device=output["completion_ids"].device), G,
                          rounding_mode="floor")
        output["rlspec_group"] = group  # prompt ids of this process's rows (global numbering)
        if self.rlspec_adv_fn is not None:
            rpf = self._rlspec_rewards_per_func
            unscorable = torch.isnan(rpf).all(dim=1)
            rewards = (rpf * self.reward_weights.to(rpf.device).unsqueeze(0)).nansum(dim=1)  # (N_all,)
            mask = output["completion_mask"]
            if "tool_mask" in output:
                mask = mask * output["tool_mask"]
            mask_all = self.accelerator.gather(self.accelerator.pad_across_processes(mask, dim=1, pad_index=0)).bool()
            group_all = torch.div(torch.arange(rewards.shape[0], device=rewards.device), G, rounding_mode="floor")
            adv = self.rlspec_adv_fn(rewards=rewards.double(), group=group_all, mask=mask_all,
                                     config=self.rlspec_adv_config)  # (N_all, T_max)
            adv = torch.where(unscorable.unsqueeze(1), torch.zeros_like(adv), adv)
            output["advantages"] = adv[start:start + B, : mask.shape[1]].to(torch.float32)
            self.rlspec_last_advantage = dict(rewards=rewards.detach().clone(), group=group_all, mask=mask_all,
                                              unscorable=unscorable, adv=adv.detach().clone())
        return output

    # ---- loss ---------------------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        mask = mask.bool()
        mm = {k: inputs.get(k) for k in ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask",
                                         "spatial_shapes", "num_tiles", "image_sizes", "token_type_ids",
                                         "mm_token_type_ids", "image_position_ids")}
        logp, _, _ = self._get_per_token_logps_and_entropies(model, input_ids, attention_mask, completion_ids.size(1),
                                                             compute_entropy=False, compute_aux_loss=False, **mm)
        old = inputs.get("old_per_token_logps")
        old = logp.detach() if old is None else old
        adv = inputs["advantages"]
        if adv.dim() == 1:
            adv = adv.unsqueeze(1).expand_as(logp)
        adv = adv.to(compute_dtype(logp))  # bf16 log-probs: float32 advantages, not rounded to bf16
        mode = "train" if self.model.training else "eval"
        cfg = self.rlspec_loss_config
        scale = 1.0
        if self.rlspec_token_normalizer == "generation" and getattr(cfg, "agg", None) == "token-mean":
            norm = float(inputs["num_items_in_batch"].clamp(min=1.0)) / self.accelerator.num_processes
            if mode == "train":
                norm = norm * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            import dataclasses

            cfg = dataclasses.replace(cfg, normalizer=norm)
        elif mode == "train":
            scale = 1.0 / self.current_gradient_accumulation_steps
        extra: dict[str, Any] = {}
        if "group" in self._rlspec_takes and "rlspec_group" in inputs:
            extra["group"] = inputs["rlspec_group"]
        if inputs.get("ref_per_token_logps") is not None:
            extra["ref_logp"] = inputs["ref_per_token_logps"]
        loss = self.rlspec_loss_fn(logp=logp, old_logp=old, adv=adv, mask=mask, config=cfg, **extra)
        self.rlspec_last = dict(logp=logp.detach().clone(), old_logp=old.detach().clone(), adv=adv.detach().clone(),
                                mask=mask.clone(), config=cfg, loss=loss.detach().clone(), scale=scale,
                                **{k: v.detach().clone() for k, v in extra.items()})
        with torch.no_grad():
            log_r = (logp - old).detach()
            m = mask.to(log_r.dtype)
            k3 = ((torch.exp(log_r) - 1 - log_r) * m).sum() / m.sum().clamp(min=1.0)
        self._metrics[mode]["rlspec/loss"].append(self.accelerator.gather(loss.detach()).mean().item())
        self._metrics[mode]["rlspec/kl_old_k3"].append(self.accelerator.gather(k3).mean().item())
        return loss * scale

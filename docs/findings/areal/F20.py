# F20: areal 1.0.4 · areal.trainer.ppo.actor.grpo_loss_fn (dispatch)
# severity: NaN
# what a user sees: the actor loss (input log-ratio+89-f32) has NaN/inf at valid positions
# source: probe:input; upstream: none found
# cases: c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+89-f32, c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+100-f32, c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+89-bf16, c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+100-bf16, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+89-f32, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+100-f32, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+89-bf16, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+100-bf16, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+89-f32, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+100-f32, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+89-bf16, c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+100-bf16, c_clip=None, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+89-f32, c_clip=None, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+100-f32, c_clip=None, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+89-bf16, c_clip=None, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=True: log-
# ratio+100-bf16, c_clip=3.0, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+89-f32, c_clip=3.0, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+100-f32, c_clip=3.0, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+89-bf16, c_clip=3.0, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=False: log-
# ratio+100-bf16 and 14 more
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# AReaL grpo_loss_fn with PPOActorConfig(m2_threshold=0.04, use_decoupled_loss=True) as PPOActor binds it, input log-ratio+100-bf16

import warnings
warnings.filterwarnings('ignore')
import logging
logging.disable(logging.INFO)
import math
import numpy as np
import torch

import os, sys, types
import areal
_pkg = types.ModuleType("areal.trainer")   # skip areal/trainer/__init__ (it imports swanlab for the SFT/DPO loggers)
_pkg.__path__ = [os.path.join(os.path.dirname(areal.__file__), "trainer")]
sys.modules.setdefault("areal.trainer", _pkg)
from areal.trainer.ppo.actor import PPOActor, grpo_loss_fn
from areal.api.cli_args import NormConfig, PPOActorConfig, RejectionSamplingConfig

from areal.trainer.ppo.actor import _apply_m2po_masking
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
cfg = PPOActorConfig(m2_threshold=0.04, use_decoupled_loss=True, rejection_sampling=None)
DP = 1

def run(b, full=None):
    full = b if full is None else full
    # input_data as PPOActor._compute_advantages leaves it: logprobs = behaviour policy, prox_logp = proximal
    # policy (the behaviour policy itself unless use_decoupled_loss)
    data = {"logprobs": b["old_logp"], "advantages": b["adv"], "loss_mask": b["mask"],
            "prox_logp": b["prox_logp"] if cfg.use_decoupled_loss else b["old_logp"]}
    # grpo_loss_fn's dispatch (areal/trainer/ppo/actor.py), without its float32-only statistics logging
    mask = data["loss_mask"]
    if cfg.m2_threshold is not None:
        mask = _apply_m2po_masking(data["logprobs"], data["prox_logp"], mask, cfg.m2_threshold)
    if cfg.use_sapo_loss:
        loss, _ = sapo_loss_fn(logprobs=b["logp"], old_logprobs=data["logprobs"], advantages=data["advantages"],
                               tau_pos=cfg.sapo_tau_pos, tau_neg=cfg.sapo_tau_neg, loss_mask=mask,
                               importance_sampling_level=cfg.importance_sampling_level)
    else:
        loss, _ = ppo_actor_loss_fn(logprobs=b["logp"], old_logprobs=data["logprobs"], advantages=data["advantages"],
                                    eps_clip=cfg.eps_clip, eps_clip_higher=cfg.eps_clip_higher, loss_mask=mask,
                                    c_clip=cfg.c_clip, proximal_logprobs=data["prox_logp"],
                                    rejection_sampling=cfg.rejection_sampling,
                                    importance_sampling_level=cfg.importance_sampling_level)
    # FSDPEngine._compute_logprobs_and_loss: loss * local_weight / total_weight * dp_size, with
    # loss_weight_fn = loss_mask.count_nonzero() and the total all-reduced over the DP ranks (0 if no local token)
    local, total = b["mask"].count_nonzero(), full["mask"].count_nonzero()
    dp = DP if b is not full else 1
    loss = loss * (local / total) * dp if local > 0 else b["logp"].sum() * 0.0   # loss_multiplier = dp_size
    loss = loss / dp   # DDP averages the ranks' gradients
    return loss

def value_and_grad(b, full=None):
    """(loss, d loss / d logp or None) on a fresh copy of the batch."""
    b = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in b.items()}
    b["logp"].requires_grad_(True)
    loss = run(b, full)
    if not torch.is_tensor(loss) or not loss.requires_grad:
        return float(loss), None
    g = torch.autograd.grad(loss, b["logp"], allow_unused=True)[0]
    return float(loss.detach()), g


def rows(b, idx):
    n = b["mask"].shape[0]
    return {k: (v[idx] if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == n else v) for k, v in b.items()}


def close(got, want, rtol, atol):
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    return bool(torch.isfinite(got).all() and torch.isfinite(want).all()
                and ((got - want).abs() <= atol + rtol * want.abs()).all())

b = {
    'logp': torch.tensor([[100.0, -0.1982421875, -1.0234375, -2.640625, -2.859375, -1.625, -2.359375], [-1.0234375, -2.46875, -2.453125, -0.263671875, -2.890625, -1.0625, -10.6875], [-1.5859375, -1.8828125, -0.98828125, -9.5625, -2.765625, -9.75, -9.0625], [-0.302734375, -2.21875, -1.4609375, -0.91796875, -2.90625, -2.953125, -2.703125], [-2.890625, -0.302734375, -1.046875, -0.474609375, -1.453125, -2.8125, -3.75], [-2.828125, -2.03125, -0.44140625, -2.90625, -1.9765625, -1.703125, -8.125]], dtype=torch.float64).to(torch.bfloat16),
    'old_logp': torch.tensor([[-0.14453125, -0.1982421875, -1.0234375, -2.640625, -2.859375, -1.625, -2.359375], [-1.0234375, -2.46875, -2.453125, -0.263671875, -2.890625, -1.0625, -10.6875], [-1.5859375, -1.8828125, -0.98828125, -9.5625, -2.765625, -9.75, -9.0625], [-0.302734375, -2.21875, -1.4609375, -0.91796875, -2.90625, -2.953125, -2.703125], [-2.890625, -0.302734375, -1.046875, -0.474609375, -1.453125, -2.8125, -3.75], [-2.828125, -2.03125, -0.44140625, -2.90625, -1.9765625, -1.703125, -8.125]], dtype=torch.float64).to(torch.bfloat16),
    'ref_logp': torch.tensor([[-0.171875, 0.1181640625, -1.0078125, -3.109375, -2.84375, -1.5625, -1.8984375], [-101.0, -2.796875, -2.078125, -0.1630859375, -2.5625, -1.0390625, -11.3125], [-1.53125, -1.875, -1.0, -7.96875, -9.0625, -7.3125, -7.46875], [0.30078125, -3.03125, -1.796875, -1.578125, -2.84375, -3.140625, -3.234375], [-2.65625, -0.67578125, -0.384765625, -0.322265625, -1.2578125, -2.890625, -3.9375], [-2.75, -2.4375, -0.5703125, -3.1875, -2.078125, -1.875, -3.25]], dtype=torch.float64).to(torch.bfloat16),
    'adv': torch.tensor([[-0.66796875, -0.66796875, -0.66796875, -0.66796875, -0.66796875, -0.66796875, -0.66796875], [-0.482421875, -0.482421875, -0.482421875, -0.482421875, -0.482421875, -0.482421875, 5.46875], [1.1484375, 1.1484375, -5.40625, -7.5625, -4.5, 2.171875, 7.1875], [0.609375, 0.609375, 0.609375, 0.609375, 0.609375, 0.609375, 0.609375], [-1.15625, -1.15625, -1.15625, -1.15625, -1.15625, -1.15625, 4.5625], [0.54296875, 0.54296875, 0.54296875, 0.54296875, 0.54296875, 0.54296875, -1.3671875]], dtype=torch.float64).to(torch.bfloat16),
    'values': torch.tensor([[-0.953125, 0.3125, 0.2890625, 0.2177734375, 1.1015625, 0.98046875, -0.5859375], [-1.875, -1.390625, 0.6796875, -0.54296875, 0.50390625, -1.6953125, 7.125], [-0.462890625, -0.408203125, -5.78125, -2.984375, -3.78125, 7.125, 2.984375], [0.98828125, 0.6953125, -0.734375, -1.015625, 0.6875, 0.9375, 2.234375], [0.53125, -0.43359375, 0.002960205078125, 1.171875, -0.1484375, 0.146484375, -3.421875], [-1.484375, 2.453125, -0.40625, -0.34765625, -0.5859375, 0.158203125, -7.75]], dtype=torch.float64).to(torch.bfloat16),
    'old_values': torch.tensor([[-1.140625, 0.1845703125, 0.2109375, 0.458984375, 1.15625, 1.0, -0.5234375], [-1.6328125, -1.2109375, 0.76953125, -0.71875, 0.298828125, -1.53125, 1.609375], [-0.06689453125, -0.451171875, -7.3125, 1.234375, -3.703125, -7.28125, 0.275390625], [1.0078125, 0.4375, -0.8359375, -1.0390625, 0.9375, 1.0625, 2.109375], [0.76171875, -0.291015625, -0.16796875, 1.4140625, -0.546875, 0.154296875, 3.296875], [-1.6796875, 2.4375, -0.08837890625, -0.345703125, -0.515625, 0.26953125, 5.53125]], dtype=torch.float64).to(torch.bfloat16),
    'returns': torch.tensor([[-1.0, -1.296875, 1.9140625, 0.267578125, -1.1875, 0.034423828125, 1.046875], [-0.0419921875, 1.1328125, -0.72265625, 0.1943359375, -2.234375, -0.31640625, -0.380859375], [1.7578125, 0.671875, -2.234375, 1.421875, 4.25, 5.1875, -1.4609375], [-0.46484375, -0.423828125, 1.8203125, -0.96875, -0.70703125, -1.15625, 0.63671875], [-0.53125, -1.0390625, 1.9375, 0.1337890625, 0.40625, 0.953125, -7.78125], [-0.0537109375, -0.0279541015625, 0.263671875, 0.1982421875, -0.890625, 0.4765625, 7.875]], dtype=torch.float64).to(torch.bfloat16),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2021484375], [0.0, 0.0, 0.0, 0.0, 0.0, -0.09814453125, -1.015625], [0.0, 0.8203125, 0.91796875, -7.0, -1.875, -6.5, -6.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0546875], [0.0, 0.0, 0.0, 0.0, 0.0, -0.057861328125, 3.875], [0.0, 0.0, 0.0, 0.0, 0.0, 1.015625, 7.15625]], dtype=torch.float64).to(torch.bfloat16),
    'adv_seq': torch.tensor([-0.66796875, -0.482421875, 1.1484375, 0.609375, -1.15625, 0.54296875], dtype=torch.float64).to(torch.bfloat16),
    'rewards': torch.tensor([-0.2021484375, -0.09814453125, 0.8203125, 1.0546875, -0.057861328125, 1.015625], dtype=torch.float64).to(torch.bfloat16),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False], [True, True, True, True, True, True, True], [True, True, True, True, True, True, False], [True, True, True, True, True, True, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 6, 2, 7, 6, 6], dtype=torch.int64),
    'prox_logp': torch.tensor([[0.466796875, -0.96484375, -0.8984375, -2.8125, -3.0, -1.6875, -2.96875], [-1.09375, -2.734375, -1.453125, -0.1962890625, -3.0, -1.1484375, -11.3125], [-1.90625, -2.0, -6.125, -11.6875, -0.96875, -7.28125, -4.53125], [0.1611328125, -2.0625, -1.609375, -0.97265625, -2.75, -2.375, -2.78125], [-2.96875, -0.002044677734375, -1.3125, -0.5625, -1.1875, -2.640625, -9.625], [-2.625, -2.875, -0.134765625, -3.1875, -2.484375, -1.6171875, -2.09375]], dtype=torch.float64).to(torch.bfloat16),
}

try:
    v, g = value_and_grad(b)
    raised = None
except Exception as e:  # the input is one the function accepts: it should return numbers
    raised = e
assert raised is None, f"raises {raised!r}"
print("loss", v, "gradient", g)
assert math.isfinite(v), "non-finite loss"
assert g is None or torch.isfinite(g).all(), "non-finite gradient"

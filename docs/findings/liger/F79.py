# F79: liger 0.8.5 · rlspec entry `dapo`
# severity: NaN
# what a user sees: no log-ratio clamp: coef_1 = exp(log_ratio) overflows float32/bfloat16 at a log-ratio of 89
# (exp overflows at 88.7); the token's true gradient is 0 (clipped, or a saturated SAPO gate) but the backward
# multiplies 0 by inf: NaN in dlogp (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: dapo/bfloat16/log-ratio-89, dapo/float32/log-ratio-89
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# Needs only liger-kernel (checked with 0.8.5) and torch.
import torch
from numpy import nan, inf
DT = torch.bfloat16
mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
old_logp = torch.tensor([[-2.5, -92.5, -2.5, -3.875, -92.0, -3.5625], [-2.0625, -1.0, -2.5, -3.0, -1.375, -2.5], [-92.0, -2.875, -1.375, -2.5, -2.125, -3.6875], [-2.5625, -3.0, -3.125, -3.0, -3.578125, -7.125]], dtype=torch.float64).to(DT)
ref_logp = None
adv = torch.tensor([1.5, -0.75, 2.0, -1.25], dtype=torch.float64).to(DT)  # one advantage per sequence
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction
logp = torch.tensor([[-2.5, -3.5, -3.0, -3.5, -3.0, -3.5], [-2.0, -0.5, -91.5, -3.0, -1.0, -3.5], [-3.0, -2.5, -1.0, -3.5, -2.5, -4.8125], [-2.5, -2.5, -3.5, -92.0, -4.125, -2.375]], dtype=torch.float64).to(DT).requires_grad_(True)
vllm_is_ratio = None  # tis only: the rollout-mismatch weight
loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(per_token_logps=logp, attention_mask=mask, advantages=adv, full_attention_mask=mask, ref_per_token_logps=ref_logp, old_per_token_logps=old_logp, num_items_in_batch=None, vllm_is_ratio=vllm_is_ratio, **{'beta': 0.0, 'loss_type': 'dapo', 'max_completion_length': 6, 'epsilon_low': 0.2, 'epsilon_high': 0.28})
loss.backward()
print('loss:', loss.item()); print('dlogp:', logp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case dapo/bfloat16/log-ratio-89
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('dapo')
config = spec.config(**{'agg': 'token-mean', 'seq_denominator': 'all', 'log_ratio_clamp': None})
inputs = {'logp': np.array([[-2.5, -3.5, -3.0, -3.5, -3.0, -3.5], [-2.0, -0.5, -91.5, -3.0, -1.0, -3.5], [-3.0, -2.5, -1.0, -3.5, -2.5, -4.8125], [-2.5, -2.5, -3.5, -92.0, -4.125, -2.375]], dtype=np.float32), 'old_logp': np.array([[-2.5, -92.5, -2.5, -3.875, -92.0, -3.5625], [-2.0625, -1.0, -2.5, -3.0, -1.375, -2.5], [-92.0, -2.875, -1.375, -2.5, -2.125, -3.6875], [-2.5625, -3.0, -3.125, -3.0, -3.578125, -7.125]], dtype=np.float32), 'ref_logp': np.array([[-2.875, -3.875, 86.0, -3.125, -3.5, -3.5625], [-3.0, -0.125, -90.5, -3.375, -1.375, -92.5], [-2.0, -2.875, -1.0, 85.5, -3.0, -2.90625], [-2.5625, -91.5, -3.875, -91.5, -6.15625, -4.15625]], dtype=np.float32), 'adv': np.array([[1.5, 1.5, 1.5, 1.5, 1.5, 1.5], [-0.75, -0.75, -0.75, -0.75, -0.75, -0.75], [2.0, 2.0, 2.0, 2.0, 2.0, 2.171875], [-1.25, -1.25, -1.25, -1.25, -0.6796875, -2.21875]], dtype=np.float32), 'mask': np.array([[True, True, True, True, True, True], [True, True, True, True, True, True], [True, True, True, True, True, False], [True, True, True, True, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('liger').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

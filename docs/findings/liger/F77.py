# F77: liger 0.8.5 · rlspec entry `cispo`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases):
# LigerFusedLinearGRPOFunction.ppo_loss_fn multiplies by the attention mask ((per_token_loss *
# attention_mask).sum()), so 0·NaN makes the loss NaN (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: cispo/bfloat16/padding-nonfinite-empty-rows, cispo/float64/padding-nonfinite-empty-rows,
# cispo/float32/padding-nonfinite-empty-rows, cispo/bfloat16/padding-nonfinite, cispo/float64/padding-nonfinite,
# cispo/float32/padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# Needs only liger-kernel (checked with 0.8.5) and torch.
import torch
from numpy import nan, inf
DT = torch.bfloat16
mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
old_logp = torch.tensor([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=torch.float64).to(DT)
ref_logp = None
adv = torch.tensor([0.75390625, 0.0, 0.349609375, 0.0, -0.80078125], dtype=torch.float64).to(DT)  # one advantage per sequence
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction
logp = torch.tensor([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=torch.float64).to(DT).requires_grad_(True)
vllm_is_ratio = None  # tis only: the rollout-mismatch weight
loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(per_token_logps=logp, attention_mask=mask, advantages=adv, full_attention_mask=mask, ref_per_token_logps=ref_logp, old_per_token_logps=old_logp, num_items_in_batch=None, vllm_is_ratio=vllm_is_ratio, **{'beta': 0.0, 'loss_type': 'cispo', 'max_completion_length': 4, 'epsilon_high': 5.0})
loss.backward()
print('loss:', loss.item()); print('dlogp:', logp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case cispo/bfloat16/padding-nonfinite-empty-rows
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('cispo')
config = spec.config(**{'agg': 'token-mean', 'seq_denominator': 'all', 'eps_low': None, 'log_ratio_clamp': None})
inputs = {'logp': np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32), 'old_logp': np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32), 'ref_logp': np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32), 'adv': np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32), 'mask': np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('liger').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

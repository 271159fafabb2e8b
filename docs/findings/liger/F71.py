# F71: liger 0.8.5 · rlspec entry `tis`
# severity: wrong value
# what a user sees: Liger luspo at token level sums padded tokens too, scaled by n_i/T (ppo_loss_fn luspo
# branch), not a masked per-sequence sum; token-level luspo skipped in Liger's tests
# (https://github.com/linkedin/Liger-Kernel/pull/1227); no issue found
# source: harness (xfail); upstream: https://github.com/linkedin/Liger-Kernel/pull/1227
# cases: tis/bfloat16/ragged-garbage+agg=seq-mean-token-sum, tis/float32/ragged-garbage+agg=seq-mean-token-sum,
# tis/float64/ragged-garbage+agg=seq-mean-token-sum
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# Needs only liger-kernel (checked with 0.8.5) and torch.
import torch
from numpy import nan, inf
DT = torch.bfloat16
mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0, 0]])
old_logp = torch.tensor([[-2.15625, -1.2265625, -5.5, -1.2265625, -1.71875, -3.53125, -0.84765625], [-2.53125, -2.421875, -2.09375, -3.453125, -5.5, -1.7265625, -10.3125], [-0.486328125, -3.25, -3.953125, -2.03125, -1.3359375, -16.875, -2.78125], [-0.12451171875, -6.65625, -2.53125, -8.9375, -2.828125, -15.5, -6.34375], [-6.90625, -1.921875, -2.375, -1.4921875, -2.9375, 0.134765625, -2.859375], [-4.46875, -1.1015625, -0.2890625, -2.15625, -0.86328125, -4.46875, -7.53125]], dtype=torch.float64).to(DT)
ref_logp = None
adv = torch.tensor([0.66796875, 0.220703125, -1.0, 0.310546875, 0.345703125, -0.88671875], dtype=torch.float64).to(DT)  # one advantage per sequence
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction
logp = torch.tensor([[-1.921875, -1.1875, -5.25, -1.28125, -2.0625, -3.28125, -1.2734375], [-2.328125, -2.46875, -1.8359375, -8.5, -1.2734375, -7.34375, -1.9140625], [-0.283203125, -3.0, -3.484375, -1.953125, -1.453125, -3.4375, -7.03125], [-0.86328125, -6.3125, -5.25, -3.609375, -6.28125, -4.875, -10.8125], [-7.0, -1.328125, -2.65625, -1.4453125, -2.65625, -0.369140625, -6.0], [-4.46875, -0.87890625, -7.9375, -10.0625, -0.70703125, -3.234375, -4.59375]], dtype=torch.float64).to(DT).requires_grad_(True)
vllm_is_ratio = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64).to(DT)  # tis only: the rollout-mismatch weight
loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(per_token_logps=logp, attention_mask=mask, advantages=adv, full_attention_mask=mask, ref_per_token_logps=ref_logp, old_per_token_logps=old_logp, num_items_in_batch=None, vllm_is_ratio=vllm_is_ratio, **{'beta': 0.0, 'loss_type': 'luspo', 'max_completion_length': 7, 'epsilon_low': 0.2, 'epsilon_high': 0.2})
loss.backward()
print('loss:', loss.item()); print('dlogp:', logp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case tis/bfloat16/ragged-garbage+agg=seq-mean-token-sum
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('tis')
config = spec.config(**{'agg': 'seq-mean-token-sum', 'seq_denominator': 'all', 'dual_clip_c': None, 'log_ratio_clamp': None})
inputs = {'logp': np.array([[-1.921875, -1.1875, -5.25, -1.28125, -2.0625, -3.28125, -1.2734375], [-2.328125, -2.46875, -1.8359375, -8.5, -1.2734375, -7.34375, -1.9140625], [-0.283203125, -3.0, -3.484375, -1.953125, -1.453125, -3.4375, -7.03125], [-0.86328125, -6.3125, -5.25, -3.609375, -6.28125, -4.875, -10.8125], [-7.0, -1.328125, -2.65625, -1.4453125, -2.65625, -0.369140625, -6.0], [-4.46875, -0.87890625, -7.9375, -10.0625, -0.70703125, -3.234375, -4.59375]], dtype=np.float32), 'old_logp': np.array([[-2.15625, -1.2265625, -5.5, -1.2265625, -1.71875, -3.53125, -0.84765625], [-2.53125, -2.421875, -2.09375, -3.453125, -5.5, -1.7265625, -10.3125], [-0.486328125, -3.25, -3.953125, -2.03125, -1.3359375, -16.875, -2.78125], [-0.12451171875, -6.65625, -2.53125, -8.9375, -2.828125, -15.5, -6.34375], [-6.90625, -1.921875, -2.375, -1.4921875, -2.9375, 0.134765625, -2.859375], [-4.46875, -1.1015625, -0.2890625, -2.15625, -0.86328125, -4.46875, -7.53125]], dtype=np.float32), 'ref_logp': np.array([[-2.09375, -1.3515625, -5.65625, -1.4609375, -2.078125, -3.0625, -0.8828125], [-2.5625, -2.3125, -1.96875, -1.3125, -3.171875, -3.703125, -1.3984375], [-0.52734375, -2.953125, -3.59375, -1.84375, -1.921875, -2.15625, -13.5], [-0.345703125, -2.15625, -3.984375, -5.75, -3.078125, -2.796875, -0.87109375], [-7.0, -1.421875, -2.578125, -1.21875, -2.453125, -0.39453125, -2.328125], [-4.71875, -0.9375, -4.40625, -7.375, -6.96875, -10.8125, -1.140625]], dtype=np.float32), 'adv': np.array([[0.66796875, 0.66796875, 0.66796875, 0.66796875, 0.66796875, 0.66796875, 0.66796875], [0.220703125, 0.220703125, 0.220703125, 2.453125, -8.0625, -2.25, -1.421875], [-1.0, -1.0, -1.0, -1.0, -1.0, -5.78125, -3.203125], [0.310546875, -2.84375, 1.5234375, 0.90234375, 7.875, -1.1796875, 3.453125], [0.345703125, 0.345703125, 0.345703125, 0.345703125, 0.345703125, 0.345703125, 0.236328125], [-0.88671875, -0.88671875, 0.8125, -3.484375, -5.71875, -2.296875, 2.28125]], dtype=np.float32), 'mask': np.array([[True, True, True, True, True, True, True], [True, True, True, False, False, False, False], [True, True, True, True, True, False, False], [True, False, False, False, False, False, False], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('liger').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

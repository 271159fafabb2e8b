# F87: liger 0.8.5 · rlspec entry `sapo`
# severity: NaN
# what a user sees: an empty batch (B = 0 rows): the grpo/sapo normaliser is the mean over no rows, NaN; the
# reference defines it as 0 (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: sapo/float64/empty-batch, sapo/float32/empty-batch, sapo/bfloat16/empty-batch
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# Needs only liger-kernel (checked with 0.8.5) and torch.
import torch
from numpy import nan, inf
DT = torch.float64
mask = torch.tensor([]).reshape((0, 5))
old_logp = torch.tensor([], dtype=torch.float64).to(DT).reshape((0, 5))
ref_logp = None
adv = torch.tensor([], dtype=torch.float64).to(DT).reshape((0,))  # one advantage per sequence
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction
logp = torch.tensor([], dtype=torch.float64).to(DT).reshape((0, 5)).requires_grad_(True)
vllm_is_ratio = None  # tis only: the rollout-mismatch weight
loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(per_token_logps=logp, attention_mask=mask, advantages=adv, full_attention_mask=mask, ref_per_token_logps=ref_logp, old_per_token_logps=old_logp, num_items_in_batch=None, vllm_is_ratio=vllm_is_ratio, **{'beta': 0.0, 'loss_type': 'sapo', 'max_completion_length': 5, 'sapo_temperature_pos': 1.0, 'sapo_temperature_neg': 1.05})
loss.backward()
print('loss:', loss.item()); print('dlogp:', logp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case sapo/float64/empty-batch
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('sapo')
config = spec.config(**{'agg': 'seq-mean-token-mean', 'seq_denominator': 'all', 'log_ratio_clamp': None})
inputs = {'logp': np.zeros((0, 5), dtype=np.float64), 'old_logp': np.zeros((0, 5), dtype=np.float64), 'ref_logp': np.zeros((0, 5), dtype=np.float64), 'adv': np.zeros((0, 5), dtype=np.float64), 'mask': np.zeros((0, 5), dtype=np.bool), 'group': np.zeros((0,), dtype=np.int64)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('liger').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F247: verl 0.9.1 · rlspec entry `gpg_loss`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: gpg_loss/bfloat16/random-8, gpg_loss/bfloat16/all-false-mask, gpg_loss/float64/random-8,
# gpg_loss/float32/random-8, gpg_loss/float32/all-false-mask, gpg_loss/float64/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gpg_loss computed by verl's own function (gpg), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-2.03125, -2.3125, -9.125, -4.125, -5.84375, -3.203125, -11.5625]])
old_logp = np.array([[-8.3125, -3.953125, -3.21875, -3.828125, -1.5859375, -3.421875, -2.3125]])
ref_logp = np.array([[-0.87890625, -3.59375, -12.9375, -5.15625, -1.6171875, -8.3125, -7.3125]])
adv = np.array([[2.0, -0.828125, -1.0703125, -0.51171875, -2.109375, -0.004791259765625, 1.03125]])
mask = np.array([[False, False, False, False, False, False, False]], dtype=bool)
group = np.array([-45], dtype=np.int64)
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='token-mean', clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.2, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05, global_batch_info={})
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
loss, _ = ca.get_policy_loss_fn('gpg')(old_log_prob=torch.as_tensor(old_logp).to(dt), log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), loss_agg_mode='token-mean', config=cfg)
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gpg_loss/bfloat16/random-8
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gpg_loss')
config = spec.config(**{})
inputs = {'logp': np.array([[-2.03125, -2.3125, -9.125, -4.125, -5.84375, -3.203125, -11.5625]], dtype=np.float32), 'old_logp': np.array([[-8.3125, -3.953125, -3.21875, -3.828125, -1.5859375, -3.421875, -2.3125]], dtype=np.float32), 'ref_logp': np.array([[-0.87890625, -3.59375, -12.9375, -5.15625, -1.6171875, -8.3125, -7.3125]], dtype=np.float32), 'adv': np.array([[2.0, -0.828125, -1.0703125, -0.51171875, -2.109375, -0.004791259765625, 1.03125]], dtype=np.float32), 'mask': np.array([[False, False, False, False, False, False, False]], dtype=np.bool), 'group': np.array([-45], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

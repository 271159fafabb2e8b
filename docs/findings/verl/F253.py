# F253: verl 0.9.1 · rlspec entry `gspo`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: gspo/bfloat16/all-false-mask, gspo/float32/all-false-mask, gspo/float64/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gspo computed by verl's own function (gspo), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-3.09375, -7.1875, -10.375, -9.1875], [-4.75, -6.6875, -4.75, -5.28125], [-9.4375, -1.28125, -3.734375, -13.4375]])
old_logp = np.array([[-8.625, -3.421875, -0.54296875, -3.921875], [-17.875, -8.375, -3.6875, -0.984375], [-1.3828125, -2.28125, -4.6875, -9.0]])
ref_logp = np.array([[-4.0625, -3.78125, -7.25, -7.3125], [-6.03125, -10.1875, -4.78125, -4.125], [-9.3125, -1.8515625, -0.73046875, -3.640625]])
adv = np.array([[6.78125, 6.46875, 0.34765625, 1.875], [3.265625, 5.03125, -0.392578125, 0.40625], [3.671875, 0.80859375, 2.265625, 1.828125]])
mask = np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=bool)
group = np.array([0, 0, 1], dtype=np.int64)
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='seq-mean-token-mean', clip_ratio=0.0004, clip_ratio_low=0.0003, clip_ratio_high=0.0004, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05, global_batch_info={})
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
loss, _ = ca.get_policy_loss_fn('gspo')(old_log_prob=torch.as_tensor(old_logp).to(dt), log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), loss_agg_mode='seq-mean-token-mean', config=cfg)
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gspo/bfloat16/all-false-mask
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gspo')
config = spec.config(**{})
inputs = {'logp': np.array([[-3.09375, -7.1875, -10.375, -9.1875], [-4.75, -6.6875, -4.75, -5.28125], [-9.4375, -1.28125, -3.734375, -13.4375]], dtype=np.float32), 'old_logp': np.array([[-8.625, -3.421875, -0.54296875, -3.921875], [-17.875, -8.375, -3.6875, -0.984375], [-1.3828125, -2.28125, -4.6875, -9.0]], dtype=np.float32), 'ref_logp': np.array([[-4.0625, -3.78125, -7.25, -7.3125], [-6.03125, -10.1875, -4.78125, -4.125], [-9.3125, -1.8515625, -0.73046875, -3.640625]], dtype=np.float32), 'adv': np.array([[6.78125, 6.46875, 0.34765625, 1.875], [3.265625, 5.03125, -0.392578125, 0.40625], [3.671875, 0.80859375, 2.265625, 1.828125]], dtype=np.float32), 'mask': np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

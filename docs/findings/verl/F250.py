# F250: verl 0.9.1 · rlspec entry `gspo_token`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: gspo_token/bfloat16/random-8, gspo_token/float64/random-8, gspo_token/float32/random-8,
# gspo_token/bfloat16/all-false-mask, gspo_token/float32/all-false-mask, gspo_token/float64/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gspo_token computed by verl's own function (gspo), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-3.078125, -0.11572265625, -3.828125]])
old_logp = np.array([[-3.765625, -1.71875, -0.490234375]])
ref_logp = np.array([[-4.0, -5.0, -3.21875]])
adv = np.array([[-1.4375, -0.0301513671875, -0.6953125]])
mask = np.array([[False, False, False]], dtype=bool)
group = np.array([45], dtype=np.int64)
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='seq-mean-token-mean', clip_ratio=0.0004, clip_ratio_low=0.0003, clip_ratio_high=0.0004, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05, global_batch_info={})
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
loss, _ = ca.get_policy_loss_fn('gspo')(old_log_prob=torch.as_tensor(old_logp).to(dt), log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), loss_agg_mode='seq-mean-token-mean', config=cfg)
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gspo_token/bfloat16/random-8
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gspo_token')
config = spec.config(**{})
inputs = {'logp': np.array([[-3.078125, -0.11572265625, -3.828125]], dtype=np.float32), 'old_logp': np.array([[-3.765625, -1.71875, -0.490234375]], dtype=np.float32), 'ref_logp': np.array([[-4.0, -5.0, -3.21875]], dtype=np.float32), 'adv': np.array([[-1.4375, -0.0301513671875, -0.6953125]], dtype=np.float32), 'mask': np.array([[False, False, False]], dtype=np.bool), 'group': np.array([45], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

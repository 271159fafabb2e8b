# F230: verl 0.9.1 · rlspec entry `cispo`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: cispo/bfloat16/random-9, cispo/float64/random-9, cispo/float32/random-9, cispo/bfloat16/all-false-mask,
# cispo/float32/all-false-mask, cispo/float64/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: cispo computed by verl's own function (cispo), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-7.3125, -5.90625, -5.5, -1.0546875, -3.84375]])
old_logp = np.array([[-2.921875, -2.546875, -13.625, -8.125, -4.09375]])
ref_logp = np.array([[-3.78125, -1.1171875, -1.640625, -1.78125, -7.9375]])
adv = np.array([[-2.109375, -5.0, 3.1875, 0.1630859375, -1.1640625]])
mask = np.array([[False, False, False, False, False]], dtype=bool)
group = np.array([-11], dtype=np.int64)
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='token-mean', clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.2, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05, global_batch_info={})
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
loss, _ = ca.get_policy_loss_fn('cispo')(old_log_prob=torch.as_tensor(old_logp).to(dt), log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), loss_agg_mode='token-mean', config=cfg)
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case cispo/bfloat16/random-9
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('cispo')
config = spec.config(**{'log_ratio_clamp': 20.0, 'eps_low': 0.2, 'eps_high': 0.2})
inputs = {'logp': np.array([[-7.3125, -5.90625, -5.5, -1.0546875, -3.84375]], dtype=np.float32), 'old_logp': np.array([[-2.921875, -2.546875, -13.625, -8.125, -4.09375]], dtype=np.float32), 'ref_logp': np.array([[-3.78125, -1.1171875, -1.640625, -1.78125, -7.9375]], dtype=np.float32), 'adv': np.array([[-2.109375, -5.0, 3.1875, 0.1630859375, -1.1640625]], dtype=np.float32), 'mask': np.array([[False, False, False, False, False]], dtype=np.bool), 'group': np.array([-11], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

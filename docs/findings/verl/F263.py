# F263: verl 0.9.1 · rlspec entry `kl_k2`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: kl_k2/bfloat16/all-false-mask, kl_k2/float32/all-false-mask, kl_k2/float64/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: kl_k2 computed by verl's own function (k2), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-3.09375, -7.1875, -10.375, -9.1875], [-4.75, -6.6875, -4.75, -5.28125], [-9.4375, -1.28125, -3.734375, -13.4375]])
old_logp = np.array([[-8.625, -3.421875, -0.54296875, -3.921875], [-17.875, -8.375, -3.6875, -0.984375], [-1.3828125, -2.28125, -4.6875, -9.0]])
ref_logp = np.array([[-4.0625, -3.78125, -7.25, -7.3125], [-6.03125, -10.1875, -4.78125, -4.125], [-9.3125, -1.8515625, -0.73046875, -3.640625]])
mask = np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=bool)
group = np.array([0, 0, 1], dtype=np.int64)
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
kld = ca.kl_penalty(lp, torch.as_tensor(ref_logp).to(dt), 'k2')
loss = ca.agg_loss(kld, torch.as_tensor(mask), 'token-mean', **{})
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case kl_k2/bfloat16/all-false-mask
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('kl_k2')
config = spec.config(**{})
inputs = {'logp': np.array([[-3.09375, -7.1875, -10.375, -9.1875], [-4.75, -6.6875, -4.75, -5.28125], [-9.4375, -1.28125, -3.734375, -13.4375]], dtype=np.float32), 'old_logp': np.array([[-8.625, -3.421875, -0.54296875, -3.921875], [-17.875, -8.375, -3.6875, -0.984375], [-1.3828125, -2.28125, -4.6875, -9.0]], dtype=np.float32), 'ref_logp': np.array([[-4.0625, -3.78125, -7.25, -7.3125], [-6.03125, -10.1875, -4.78125, -4.125], [-9.3125, -1.8515625, -0.73046875, -3.640625]], dtype=np.float32), 'mask': np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

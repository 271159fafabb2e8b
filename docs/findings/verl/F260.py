# F260: verl 0.9.1 · rlspec entry `kl_k1`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: kl_k1/bfloat16/random-6, kl_k1/float64/random-6, kl_k1/float32/random-6, kl_k1/bfloat16/all-false-mask,
# kl_k1/float32/all-false-mask, kl_k1/float64/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: kl_k1 computed by verl's own function (k1), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-1.1328125]])
old_logp = np.array([[-0.7578125]])
ref_logp = np.array([[-5.40625]])
mask = np.array([[False]], dtype=bool)
group = np.array([-11], dtype=np.int64)
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
kld = ca.kl_penalty(lp, torch.as_tensor(ref_logp).to(dt), 'k1')
loss = ca.agg_loss(kld, torch.as_tensor(mask), 'token-mean', **{})
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case kl_k1/bfloat16/random-6
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('kl_k1')
config = spec.config(**{})
inputs = {'logp': np.array([[-1.1328125]], dtype=np.float32), 'old_logp': np.array([[-0.7578125]], dtype=np.float32), 'ref_logp': np.array([[-5.40625]], dtype=np.float32), 'mask': np.array([[False]], dtype=np.bool), 'group': np.array([-11], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

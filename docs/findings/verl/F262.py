# F262: verl 0.9.1 · rlspec entry `kl_k2`
# severity: NaN
# what a user sees: an empty batch (B = 0 rows) gives a NaN loss: agg_loss / the loss's own mean divide a sum
# over no rows by 0 (a batch with rows but no valid token is fine); the reference defines it as 0 (no upstream
# issue found)
# source: harness (xfail); upstream: none found
# cases: kl_k2/float64/empty-batch, kl_k2/float32/empty-batch, kl_k2/bfloat16/empty-batch
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: kl_k2 computed by verl's own function (k2), dtype float64
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float64
logp = np.array([]).reshape((0, 5))
old_logp = np.array([]).reshape((0, 5))
ref_logp = np.array([]).reshape((0, 5))
mask = np.array([], dtype=bool).reshape((0, 5))
group = np.array([], dtype=np.int64).reshape((0,))
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
kld = ca.kl_penalty(lp, torch.as_tensor(ref_logp).to(dt), 'k2')
loss = ca.agg_loss(kld, torch.as_tensor(mask), 'token-mean', **{})
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case kl_k2/float64/empty-batch
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('kl_k2')
config = spec.config(**{})
inputs = {'logp': np.zeros((0, 5), dtype=np.float64), 'old_logp': np.zeros((0, 5), dtype=np.float64), 'ref_logp': np.zeros((0, 5), dtype=np.float64), 'mask': np.zeros((0, 5), dtype=np.bool), 'group': np.zeros((0,), dtype=np.int64)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

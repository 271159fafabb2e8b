# F241: verl 0.9.1 · rlspec entry `entropy`
# severity: NaN
# what a user sees: with no valid token and no global batch info, agg_loss divides 0 by 0 (token-mean:
# masked_sum/loss_mask.sum(); seq-mean: /seq_mask.sum()) and returns NaN; the reference defines 0. The trainer
# path passes global counts, so only an all-empty global batch is affected; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: entropy/bfloat16/make-inputs-2, entropy/bfloat16/random-9, entropy/float64/random-9,
# entropy/float64/make-inputs-2, entropy/float32/make-inputs-2, entropy/float32/random-9,
# entropy/bfloat16/random-3, entropy/float32/random-3, entropy/float64/random-3
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: entropy computed by verl's own function (compute_entropy_loss), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logits = np.array([[[4.5625, -1.75], [-5.84375, -1.765625]]])
mask = np.array([[False, False]], dtype=bool)
z = torch.as_tensor(logits).to(dt).requires_grad_(True)
value = ca.compute_entropy_loss(z, torch.as_tensor(mask), 'token-mean')
value.backward()
print('value', value.item()); print('dlogits', z.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case entropy/bfloat16/make-inputs-2
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('entropy')
config = spec.config(**{})
inputs = {'logits': np.array([[[4.5625, -1.75], [-5.84375, -1.765625]]], dtype=np.float32), 'mask': np.array([[False, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

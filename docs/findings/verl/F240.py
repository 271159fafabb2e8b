# F240: verl 0.9.1 · rlspec entry `entropy`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): verl masks by multiplication
# (agg_loss's seq-mean branches, verl_F.masked_mean, entropy and GAE terms times the mask), so 0·NaN reaches the
# loss value, the advantages or the gradient at masked positions; open upstream fix https://github.com/verl-
# project/verl/pull/6349
# source: harness (xfail); upstream: https://github.com/verl-project/verl/pull/6349
# cases: entropy/bfloat16/make-inputs-0-padding-nonfinite, entropy/float64/make-inputs-0-padding-nonfinite,
# entropy/float32/make-inputs-0-padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: entropy computed by verl's own function (compute_entropy_loss), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logits = np.array([[[1.265625, -0.181640625], [nan, nan], [nan, nan], [nan, nan], [nan, nan]]])
mask = np.array([[True, False, False, False, False]], dtype=bool)
z = torch.as_tensor(logits).to(dt).requires_grad_(True)
value = ca.compute_entropy_loss(z, torch.as_tensor(mask), 'token-mean')
value.backward()
print('value', value.item()); print('dlogits', z.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case entropy/bfloat16/make-inputs-0-padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('entropy')
config = spec.config(**{})
inputs = {'logits': np.array([[[1.265625, -0.181640625], [nan, nan], [nan, nan], [nan, nan], [nan, nan]]], dtype=np.float32), 'mask': np.array([[True, False, False, False, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

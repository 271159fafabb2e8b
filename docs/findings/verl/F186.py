# F186: verl 0.9.1 · rlspec entry `gpg`
# severity: wrong value
# what a user sees: compute_gpg_outcome_advantage computes alpha = bsz / count_nonzero(scores).clamp(min=1) as a
# float32 tensor, so float64 advantages carry a float32-rounded factor (relative error up to 6e-8); no upstream
# issue found
# source: harness (xfail); upstream: none found
# cases: gpg/float64/random-9, gpg/float64/random-1, gpg/float64/random-0, gpg/float64/random-10,
# gpg/float64/random-4
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gpg computed by verl's own function (gpg), dtype float64
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float64
rewards = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
group = np.array([-3, -3, -3, -3, -2, -2, -2], dtype=np.int64)
mask = np.array([[True], [True], [True], [True], [True], [True], [True]], dtype=bool)
m = torch.as_tensor(mask).to(dt)
# outcome reward on the last valid token (verl's reward managers: valid_response_length - 1)
B, T = mask.shape; tlr = np.zeros((B, T))
last = np.where(mask.any(1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)
tlr[np.arange(B), last] = rewards if rewards.ndim == 1 else 0.0; tlr = torch.as_tensor(tlr).to(dt)
adv, _ = ca.get_adv_estimator_fn('gpg')(tlr, m, group)
print('adv (valid tokens):', adv[mask].tolist())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gpg/float64/random-9
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gpg')
config = spec.config(**{'alpha': 'verl', 'singleton': 'raw', 'f_norm': 'one'})
inputs = {'rewards': np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float64), 'group': np.array([-3, -3, -3, -3, -2, -2, -2], dtype=np.int64), 'mask': np.array([[True], [True], [True], [True], [True], [True], [True]], dtype=np.bool)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F30: areal 1.0.4 · rlspec entry `dapo`
# severity: NaN
# what a user sees: no log-ratio clamp: exp(logp − old) overflows float32/bfloat16 at a log-ratio of 89 (exp
# overflows at 88.7); the token's true gradient is 0 (clipped, or a saturated SAPO gate) but the backward
# multiplies 0 by inf: NaN in dlogp (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: dapo/bfloat16/log-ratio-89, dapo/float32/log-ratio-89
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.bfloat16
logp = np.array([[-2.5, -3.5, -3.0, -3.5, -3.0, -3.5], [-2.0, -0.5, -91.5, -3.0, -1.0, -3.5], [-3.0, -2.5, -1.0, -3.5, -2.5, -4.8125], [-2.5, -2.5, -3.5, -92.0, -4.125, -2.375]], dtype=np.float32)
old_logp = np.array([[-2.5, -92.5, -2.5, -3.875, -92.0, -3.5625], [-2.0625, -1.0, -2.5, -3.0, -1.375, -2.5], [-92.0, -2.875, -1.375, -2.5, -2.125, -3.6875], [-2.5625, -3.0, -3.125, -3.0, -3.578125, -7.125]], dtype=np.float32)
ref_logp = np.array([[-2.875, -3.875, 86.0, -3.125, -3.5, -3.5625], [-3.0, -0.125, -90.5, -3.375, -1.375, -92.5], [-2.0, -2.875, -1.0, 85.5, -3.0, -2.90625], [-2.5625, -91.5, -3.875, -91.5, -6.15625, -4.15625]], dtype=np.float32)
adv = np.array([[1.5, 1.5, 1.5, 1.5, 1.5, 1.5], [-0.75, -0.75, -0.75, -0.75, -0.75, -0.75], [2.0, 2.0, 2.0, 2.0, 2.0, 2.171875], [-1.25, -1.25, -1.25, -1.25, -0.6796875, -2.21875]], dtype=np.float32)
mask = np.array([[True, True, True, True, True, True], [True, True, True, True, True, True], [True, True, True, True, True, False], [True, True, True, True, False, False]], dtype=np.bool)
group = np.array([0, 0, 1, 1], dtype=np.int64)
lp = torch.tensor(logp, dtype=dt, requires_grad=True); m = torch.tensor(mask)
o = torch.tensor(old_logp, dtype=dt)
loss, _ = ppo_actor_loss_fn(lp, o, o, torch.tensor(adv, dtype=dt), 0.2, m, eps_clip_higher=0.28, c_clip=None, importance_sampling_level='token')
loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case dapo/bfloat16/log-ratio-89
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('dapo')
config = spec.config(**{})
inputs = {'logp': np.array([[-2.5, -3.5, -3.0, -3.5, -3.0, -3.5], [-2.0, -0.5, -91.5, -3.0, -1.0, -3.5], [-3.0, -2.5, -1.0, -3.5, -2.5, -4.8125], [-2.5, -2.5, -3.5, -92.0, -4.125, -2.375]], dtype=np.float32), 'old_logp': np.array([[-2.5, -92.5, -2.5, -3.875, -92.0, -3.5625], [-2.0625, -1.0, -2.5, -3.0, -1.375, -2.5], [-92.0, -2.875, -1.375, -2.5, -2.125, -3.6875], [-2.5625, -3.0, -3.125, -3.0, -3.578125, -7.125]], dtype=np.float32), 'ref_logp': np.array([[-2.875, -3.875, 86.0, -3.125, -3.5, -3.5625], [-3.0, -0.125, -90.5, -3.375, -1.375, -92.5], [-2.0, -2.875, -1.0, 85.5, -3.0, -2.90625], [-2.5625, -91.5, -3.875, -91.5, -6.15625, -4.15625]], dtype=np.float32), 'adv': np.array([[1.5, 1.5, 1.5, 1.5, 1.5, 1.5], [-0.75, -0.75, -0.75, -0.75, -0.75, -0.75], [2.0, 2.0, 2.0, 2.0, 2.0, 2.171875], [-1.25, -1.25, -1.25, -1.25, -0.6796875, -2.21875]], dtype=np.float32), 'mask': np.array([[True, True, True, True, True, True], [True, True, True, True, True, True], [True, True, True, True, True, False], [True, True, True, True, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F38: areal 1.0.4 · rlspec entry `sapo`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): AReaL selects with torch.where(mask,
# f(x), 0) (ppo_actor_loss_fn, sapo_loss_fn, ppo_critic_loss_fn): the value is right, but the backward
# multiplies the zero gradient of the masked branch by f'(NaN/±inf), writing NaN into the gradient at padded
# positions (inf·0) (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: sapo/bfloat16/padding-nonfinite-empty-rows, sapo/float64/padding-nonfinite-empty-rows,
# sapo/float32/padding-nonfinite-empty-rows, sapo/bfloat16/padding-nonfinite, sapo/float64/padding-nonfinite,
# sapo/float32/padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.bfloat16
logp = np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32)
old_logp = np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32)
ref_logp = np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32)
adv = np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32)
mask = np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool)
group = np.array([0, 0, 1, 1, 2], dtype=np.int64)
lp = torch.tensor(logp, dtype=dt, requires_grad=True); m = torch.tensor(mask)
loss, _ = sapo_loss_fn(lp, torch.tensor(old_logp, dtype=dt), torch.tensor(adv, dtype=dt), 1.0, 1.05, m)
loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case sapo/bfloat16/padding-nonfinite-empty-rows
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('sapo')
config = spec.config(**{'agg': 'token-mean'})
inputs = {'logp': np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32), 'old_logp': np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32), 'ref_logp': np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32), 'adv': np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32), 'mask': np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

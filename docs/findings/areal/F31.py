# F31: areal 1.0.4 · rlspec entry `decoupled_ppo`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): AReaL selects with torch.where(mask,
# f(x), 0) (ppo_actor_loss_fn, sapo_loss_fn, ppo_critic_loss_fn): the value is right, but the backward
# multiplies the zero gradient of the masked branch by f'(NaN/±inf), writing NaN into the gradient at padded
# positions (inf·0) (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: decoupled_ppo/bfloat16/make-inputs-0-padding-nonfinite, decoupled_ppo/float64/make-inputs-0-padding-
# nonfinite, decoupled_ppo/float32/make-inputs-0-padding-nonfinite, decoupled_ppo/bfloat16/padding-nonfinite-
# empty-rows, decoupled_ppo/float64/padding-nonfinite-empty-rows, decoupled_ppo/float32/padding-nonfinite-empty-
# rows, decoupled_ppo/bfloat16/padding-nonfinite, decoupled_ppo/float64/padding-nonfinite,
# decoupled_ppo/float32/padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.bfloat16
logp = np.array([[nan], [-4.0625], [nan], [-1.7265625], [inf], [-5.3125]], dtype=np.float32)
old_logp = np.array([[-inf], [-3.609375], [inf], [-2.0], [1.0002555517425873e+30], [-4.8125]], dtype=np.float32)
prox_logp = np.array([[1.0002555517425873e+30], [-4.09375], [-inf], [-1.5546875], [-inf], [-5.1875]], dtype=np.float32)
adv = np.array([[nan], [-0.318359375], [1.0002555517425873e+30], [-1.0390625], [-inf], [1.65625]], dtype=np.float32)
mask = np.array([[False], [True], [False], [True], [False], [True]], dtype=np.bool)
group = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
lp = torch.tensor(logp, dtype=dt, requires_grad=True); m = torch.tensor(mask)
from areal.api.cli_args import RejectionSamplingConfig
o = torch.tensor(old_logp, dtype=dt)
p = torch.tensor(prox_logp, dtype=dt)
loss, _ = ppo_actor_loss_fn(lp, p, o, torch.tensor(adv, dtype=dt), 0.2, m, eps_clip_higher=0.2, c_clip=None, rejection_sampling=None)
loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case decoupled_ppo/bfloat16/make-inputs-0-padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('decoupled_ppo')
config = spec.config(**{'behave_weight': False})
inputs = {'logp': np.array([[nan], [-4.0625], [nan], [-1.7265625], [inf], [-5.3125]], dtype=np.float32), 'old_logp': np.array([[-inf], [-3.609375], [inf], [-2.0], [1.0002555517425873e+30], [-4.8125]], dtype=np.float32), 'prox_logp': np.array([[1.0002555517425873e+30], [-4.09375], [-inf], [-1.5546875], [-inf], [-5.1875]], dtype=np.float32), 'adv': np.array([[nan], [-0.318359375], [1.0002555517425873e+30], [-1.0390625], [-inf], [1.65625]], dtype=np.float32), 'mask': np.array([[False], [True], [False], [True], [False], [True]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

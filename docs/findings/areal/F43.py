# F43: areal 1.0.4 · rlspec entry `value_clip`
# severity: NaN
# what a user sees: an empty batch (B = 0 rows): ppo_critic_loss_fn divides by loss_mask.count_nonzero() without
# a floor, 0/0 = NaN (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: value_clip/float32/empty-batch
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.float32
values = np.array([], dtype=np.float32).reshape((0, 5))
old_values = np.array([], dtype=np.float32).reshape((0, 5))
returns = np.array([], dtype=np.float32).reshape((0, 5))
mask = np.array([], dtype=np.bool).reshape((0, 5))
from areal.utils.functional import ppo_critic_loss_fn
V = torch.tensor(values, dtype=torch.float32, requires_grad=True)
loss, _ = ppo_critic_loss_fn(V, torch.tensor(old_values, dtype=torch.float32), torch.tensor(returns, dtype=torch.float32), 0.5, loss_mask=torch.tensor(mask))
loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case value_clip/float32/empty-batch
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('value_clip')
config = spec.config(**{'eps': 0.5})
inputs = {'values': np.zeros((0, 5), dtype=np.float32), 'old_values': np.zeros((0, 5), dtype=np.float32), 'returns': np.zeros((0, 5), dtype=np.float32), 'mask': np.zeros((0, 5), dtype=np.bool)}  # already rounded to float32
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'float32')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float32', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F55: areal 1.0.4 · rlspec entry `grpo`
# severity: numerics within dtype
# what a user sees: Normalization stores the float64 group mean/std in buffers made with torch.zeros_like(x)
# (areal/utils/data.py Normalization.__call__), i.e. in the input dtype: with bfloat16 rewards the mean is
# rounded to bf16 before x - mean (catastrophic cancellation for close rewards); no upstream issue found
# source: harness (xfail); upstream: none found
# cases: grpo/bfloat16/extra-padding-columns
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.bfloat16
rewards = np.array([0.70703125, 0.6875, -0.86328125, 0.96484375, -1.6484375, -0.33203125], dtype=np.float32)
group = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
mask = np.array([[True, True, False, False, False, False, False, False], [True, True, True, False, False, False, False, False], [True, False, False, False, False, False, False, False], [True, True, False, False, False, False, False, False], [True, True, True, False, False, False, False, False], [True, True, False, False, False, False, False, False]], dtype=np.bool)
# AReaL takes no group ids: rows in the order given, group_size = the largest group
n = int(np.unique(group, return_counts=True)[1].max()) if len(group) else 1
A = Normalization(NormConfig(mean_level='group', std_level='group', eps=1e-05, group_size=n))(torch.tensor(rewards, dtype=dt))
print('adv per sequence', A.double().numpy())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case grpo/bfloat16/extra-padding-columns
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('grpo')
config = spec.config(**{'ddof': 1, 'eps': 1e-05, 'eps_placement': 'outside'})
inputs = {'rewards': np.array([0.70703125, 0.6875, -0.86328125, 0.96484375, -1.6484375, -0.33203125], dtype=np.float32), 'group': np.array([0, 0, 1, 1, 2, 2], dtype=np.int64), 'mask': np.array([[True, True, False, False, False, False, False, False], [True, True, True, False, False, False, False, False], [True, False, False, False, False, False, False, False], [True, True, False, False, False, False, False, False], [True, True, True, False, False, False, False, False], [True, True, False, False, False, False, False, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

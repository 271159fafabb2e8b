# F18: areal 1.0.4 · rlspec entry `rloo`
# severity: wrong value
# what a user sees: a batch that is not a multiple of group_size: Normalization loops over bs // group_size
# blocks only, so the bs % group_size trailing rows keep mean 0 and std 0 and get R/eps (grpo: 1e5·R) or R
# (dr_grpo, rloo) instead of a group-relative advantage, silently (upstream: https://github.com/areal-
# project/AReaL/issues/1419)
# source: harness (xfail); upstream: https://github.com/areal-project/AReaL/issues/1419
# cases: rloo/bfloat16/random-13, rloo/float64/random-13, rloo/float32/random-13, rloo/bfloat16/random-7,
# rloo/float64/random-7, rloo/float32/random-7, rloo/bfloat16/random-19, rloo/float64/random-4,
# rloo/float32/random-4, rloo/bfloat16/random-4, rloo/float64/random-19, rloo/float32/random-19,
# rloo/bfloat16/random-18, rloo/float64/random-18, rloo/float32/random-18
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.bfloat16
rewards = np.array([-0.447265625, 0.0, 0.0, 1.0, 1.0], dtype=np.float32)
group = np.array([-46, -43, 13, -43, -43], dtype=np.int64)
mask = np.array([[True, False, False, False], [True, False, False, False], [True, True, True, False], [True, True, False, False], [True, True, True, False]], dtype=np.bool)
# AReaL takes no group ids: rows in the order given, group_size = the largest group
n = int(np.unique(group, return_counts=True)[1].max()) if len(group) else 1
A = Normalization(NormConfig(mean_level='group', mean_leave1out=True, std_level=None, group_size=n))(torch.tensor(rewards, dtype=dt))
print('adv per sequence', A.double().numpy())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case rloo/bfloat16/random-13
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('rloo')
config = spec.config(**{'singleton': 'raw'})
inputs = {'rewards': np.array([-0.447265625, 0.0, 0.0, 1.0, 1.0], dtype=np.float32), 'group': np.array([-46, -43, 13, -43, -43], dtype=np.int64), 'mask': np.array([[True, False, False, False], [True, False, False, False], [True, True, True, False], [True, True, False, False], [True, True, True, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

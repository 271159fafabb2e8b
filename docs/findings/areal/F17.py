# F17: areal 1.0.4 · rlspec entry `grpo`
# severity: wrong value
# what a user sees: a batch that is not a multiple of group_size: Normalization loops over bs // group_size
# blocks only, so the bs % group_size trailing rows keep mean 0 and std 0 and get R/eps (grpo: 1e5·R) or R
# (dr_grpo, rloo) instead of a group-relative advantage, silently (upstream: https://github.com/areal-
# project/AReaL/issues/1419) (same batch in the framework's own group layout)
# source: harness (xfail); upstream: https://github.com/areal-project/AReaL/issues/1419
# cases: grpo/float64/random-5+layout=contiguous-equal, grpo/float64/random-0+layout=contiguous-equal,
# grpo/float64/random-14+layout=contiguous-equal, grpo/float64/size-not-multiple+layout=contiguous-equal,
# grpo/float64/random-18+layout=contiguous-equal
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.float64
rewards = np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float64)
group = np.array([-1, -1, 0, 0], dtype=np.int64)
mask = np.array([[True, True, False], [True, False, False], [True, True, False], [True, True, False]], dtype=np.bool)
# AReaL takes no group ids: rows in the order given, group_size = the largest group
n = int(np.unique(group, return_counts=True)[1].max()) if len(group) else 1
A = Normalization(NormConfig(mean_level='group', std_level='group', eps=1e-05, group_size=n))(torch.tensor(rewards, dtype=dt))
print('adv per sequence', A.double().numpy())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case grpo/float64/random-5+layout=contiguous-equal
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('grpo')
config = spec.config(**{'ddof': 1, 'eps': 1e-05, 'eps_placement': 'outside'})
inputs = {'rewards': np.array([0.0, 0.0, 1.0, 0.0], dtype=np.float64), 'group': np.array([-1, -1, 0, 0], dtype=np.int64), 'mask': np.array([[True, True, False], [True, False, False], [True, True, False], [True, True, False]], dtype=np.bool)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

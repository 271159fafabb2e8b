# F242: verl 0.9.1 · rlspec entry `gae`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): verl masks by multiplication
# (agg_loss's seq-mean branches, verl_F.masked_mean, entropy and GAE terms times the mask), so 0·NaN reaches the
# loss value, the advantages or the gradient at masked positions; open upstream fix https://github.com/verl-
# project/verl/pull/6349
# source: harness (xfail); upstream: https://github.com/verl-project/verl/pull/6349
# cases: gae/float64/make-inputs-0-padding-nonfinite, gae/float32/make-inputs-0-padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gae computed by verl's own function (gae), dtype float64
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float64
token_rewards = np.array([[0.0, 1e+30, -inf, inf, inf], [0.6707840636491065, 0.0, 0.0, nan, 1e+30], [0.0, 0.0, nan, 1e+30, -inf], [0.0, 0.0, 0.0, 0.0, 0.5521600040302617], [0.0, inf, nan, 1e+30, -inf]])
values = np.array([[1.3591870605426886, -inf, nan, -inf, 1e+30], [-1.156006337491333, -1.664759878126307, 0.030665684333826666, -inf, 1e+30], [-0.6326646304275, -0.9557900808840426, inf, inf, nan], [1.4431729898950394, 0.17250860454881728, 1.0024308698031559, 1.2703891409907833, -1.3567754018404166], [0.39528126651630113, inf, 1e+30, 1e+30, nan]])
mask = np.array([[True, False, False, False, False], [True, True, True, False, False], [True, True, False, False, False], [True, True, True, True, True], [True, False, False, False, False]], dtype=bool)
m = torch.as_tensor(mask).to(dt)
adv, ret = ca.compute_gae_advantage_return(torch.as_tensor(token_rewards).to(dt), torch.as_tensor(values).to(dt), m, gamma=1.0, lam=0.95)
print('adv', adv[mask]); print('returns', ret[mask])

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gae/float64/make-inputs-0-padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gae')
config = spec.config(**{'masked_steps': 'skip', 'whiten': True, 'whiten_ddof': 1, 'whiten_eps': 1e-08})
inputs = {'token_rewards': np.array([[0.0, 1e+30, -inf, inf, inf], [0.6707840636491065, 0.0, 0.0, nan, 1e+30], [0.0, 0.0, nan, 1e+30, -inf], [0.0, 0.0, 0.0, 0.0, 0.5521600040302617], [0.0, inf, nan, 1e+30, -inf]], dtype=np.float64), 'values': np.array([[1.3591870605426886, -inf, nan, -inf, 1e+30], [-1.156006337491333, -1.664759878126307, 0.030665684333826666, -inf, 1e+30], [-0.6326646304275, -0.9557900808840426, inf, inf, nan], [1.4431729898950394, 0.17250860454881728, 1.0024308698031559, 1.2703891409907833, -1.3567754018404166], [0.39528126651630113, inf, 1e+30, 1e+30, nan]], dtype=np.float64), 'mask': np.array([[True, False, False, False, False], [True, True, True, False, False], [True, True, False, False, False], [True, True, True, True, True], [True, False, False, False, False]], dtype=np.bool)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

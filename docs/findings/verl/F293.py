# F293: verl 0.9.1 · rlspec entry `reinforce_pp_baseline`
# severity: numerics within dtype
# what a user sees: an all-equal group of non-dyadic float32 rewards leaves a rounding residue in R − group mean
# (torch.mean), which masked_whiten scales by rsqrt(var + 1e-8) up to ~1e-3 (reference: exactly 0); same cause
# as https://github.com/verl-project/verl/pull/4598
# source: harness (xfail); upstream: https://github.com/verl-project/verl/pull/4598
# cases: reinforce_pp_baseline/float32/all-equal-non-dyadic
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: reinforce_pp_baseline computed by verl's own function (reinforce_plus_plus_baseline), dtype float32
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float32
rewards = np.array([0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842])
group = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2], dtype=np.int64)
mask = np.array([[True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False]], dtype=bool)
m = torch.as_tensor(mask).to(dt)
# outcome reward on the last valid token (verl's reward managers: valid_response_length - 1)
B, T = mask.shape; tlr = np.zeros((B, T))
last = np.where(mask.any(1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)
tlr[np.arange(B), last] = rewards if rewards.ndim == 1 else 0.0; tlr = torch.as_tensor(tlr).to(dt)
adv, _ = ca.get_adv_estimator_fn('reinforce_plus_plus_baseline')(tlr, m, group)
print('adv (valid tokens):', adv[mask].tolist())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case reinforce_pp_baseline/float32/all-equal-non-dyadic
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('reinforce_pp_baseline')
config = spec.config(**{'ddof': 1, 'eps': 1e-08, 'eps_placement': 'inside', 'discount_masked': False, 'singleton': 'raw'})
inputs = {'rewards': np.array([0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842], dtype=np.float32), 'group': np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2], dtype=np.int64), 'mask': np.array([[True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False]], dtype=np.bool)}  # already rounded to float32
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float32')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float32', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

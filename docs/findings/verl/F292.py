# F292: verl 0.9.1 · rlspec entry `grpo`
# severity: numerics within dtype
# what a user sees: an all-equal group of non-dyadic float32 rewards gets a non-zero advantage: torch.mean
# leaves a rounding residue and torch.std is of the same size, so residue/(std+1e-6) reaches ~0.06 (reference:
# exactly 0); open upstream fix https://github.com/verl-project/verl/pull/4598
# source: harness (xfail); upstream: https://github.com/verl-project/verl/pull/4598
# cases: grpo/float32/random-9, grpo/float32/all-equal-non-dyadic
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: grpo computed by verl's own function (grpo), dtype float32
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float32
rewards = np.array([-0.9226242303848267, -0.3486293852329254, -0.9226242303848267, -0.9226242303848267])
group = np.array([31, 1, 31, 31], dtype=np.int64)
mask = np.array([[True, True, True, True, False], [True, True, True, False, False], [True, True, True, False, False], [False, False, False, False, False]], dtype=bool)
m = torch.as_tensor(mask).to(dt)
# outcome reward on the last valid token (verl's reward managers: valid_response_length - 1)
B, T = mask.shape; tlr = np.zeros((B, T))
last = np.where(mask.any(1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)
tlr[np.arange(B), last] = rewards if rewards.ndim == 1 else 0.0; tlr = torch.as_tensor(tlr).to(dt)
adv, _ = ca.get_adv_estimator_fn('grpo')(tlr, m, group, epsilon=1e-06, norm_adv_by_std_in_grpo=True)
print('adv (valid tokens):', adv[mask].tolist())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case grpo/float32/random-9
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('grpo')
config = spec.config(**{'ddof': 1, 'eps': 1e-06, 'eps_placement': 'outside', 'singleton': 'mean0std1'})
inputs = {'rewards': np.array([-0.9226242303848267, -0.3486293852329254, -0.9226242303848267, -0.9226242303848267], dtype=np.float32), 'group': np.array([31, 1, 31, 31], dtype=np.int64), 'mask': np.array([[True, True, True, True, False], [True, True, True, False, False], [True, True, True, False, False], [False, False, False, False, False]], dtype=np.bool)}  # already rounded to float32
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float32')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float32', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F187: verl 0.9.1 · rlspec entry `grpo`
# severity: wrong value
# what a user sees: compute_grpo_outcome_advantage builds the singleton group's mean/std as
# torch.tensor(0.0)/torch.tensor(1.0) (float32), so std+epsilon = 1+1e-6 is rounded to float32 (relative error
# 4.6e-8) for float64 scores; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: grpo/float64/random-12, grpo/float64/single-rollout, grpo/float64/random-13, grpo/float64/random-6,
# grpo/float64/random-10, grpo/float64/random-8, grpo/float64/random-5, grpo/float64/random-16,
# grpo/float64/random-0, grpo/float64/singletons, grpo/float64/random-9, grpo/float64/random-14,
# grpo/float64/sparse-negative-groups, grpo/float64/random-4, grpo/float64/random-2, grpo/float64/size-not-
# multiple, grpo/float64/random-17, grpo/float64/random-18, grpo/float64/random-7
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: grpo computed by verl's own function (grpo), dtype float64
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float64
rewards = np.array([1.0])
group = np.array([9], dtype=np.int64)
mask = np.array([[True, False, False]], dtype=bool)
m = torch.as_tensor(mask).to(dt)
# outcome reward on the last valid token (verl's reward managers: valid_response_length - 1)
B, T = mask.shape; tlr = np.zeros((B, T))
last = np.where(mask.any(1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)
tlr[np.arange(B), last] = rewards if rewards.ndim == 1 else 0.0; tlr = torch.as_tensor(tlr).to(dt)
adv, _ = ca.get_adv_estimator_fn('grpo')(tlr, m, group, epsilon=1e-06, norm_adv_by_std_in_grpo=True)
print('adv (valid tokens):', adv[mask].tolist())

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case grpo/float64/random-12
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('grpo')
config = spec.config(**{'ddof': 1, 'eps': 1e-06, 'eps_placement': 'outside', 'singleton': 'mean0std1'})
inputs = {'rewards': np.array([1.0], dtype=np.float64), 'group': np.array([9], dtype=np.int64), 'mask': np.array([[True, False, False]], dtype=np.bool)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

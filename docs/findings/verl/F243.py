# F243: verl 0.9.1 · rlspec entry `gmpo`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): verl masks by multiplication
# (agg_loss's seq-mean branches, verl_F.masked_mean, entropy and GAE terms times the mask), so 0·NaN reaches the
# loss value, the advantages or the gradient at masked positions; open upstream fix https://github.com/verl-
# project/verl/pull/6349
# source: harness (xfail); upstream: https://github.com/verl-project/verl/pull/6349
# cases: gmpo/bfloat16/padding-nonfinite-empty-rows, gmpo/float64/padding-nonfinite-empty-rows,
# gmpo/float32/padding-nonfinite-empty-rows, gmpo/bfloat16/padding-nonfinite, gmpo/float64/padding-nonfinite,
# gmpo/float32/padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gmpo computed by verl's own function (geo_mean), dtype bfloat16
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.bfloat16
logp = np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]])
old_logp = np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]])
ref_logp = np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]])
adv = np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]])
mask = np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=bool)
group = np.array([0, 0, 1, 1, 2], dtype=np.int64)
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='seq-mean-token-mean', clip_ratio=0.4, clip_ratio_low=0.4, clip_ratio_high=0.4, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05, global_batch_info={})
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
loss, _ = ca.get_policy_loss_fn('geo_mean')(old_log_prob=torch.as_tensor(old_logp).to(dt), log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), loss_agg_mode='seq-mean-token-mean', config=cfg)
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gmpo/bfloat16/padding-nonfinite-empty-rows
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gmpo')
config = spec.config(**{})
inputs = {'logp': np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32), 'old_logp': np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32), 'ref_logp': np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32), 'adv': np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32), 'mask': np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F115: openrlhf 0.11.2 · rlspec entry `dapo`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): OpenRLHF masks by multiplication
# (aggregate_loss / masked_mean (x * mask).sum(), GAE action_mask * values, compute_entropy over every
# position), so 0·NaN makes the loss, the gradient or the advantages NaN (upstream:
# https://github.com/OpenRLHF/OpenRLHF/pull/1240)
# source: harness (xfail); upstream: https://github.com/OpenRLHF/OpenRLHF/pull/1240
# cases: dapo/bfloat16/padding-nonfinite-empty-rows, dapo/float64/padding-nonfinite-empty-rows,
# dapo/float32/padding-nonfinite-empty-rows, dapo/bfloat16/padding-nonfinite, dapo/float64/padding-nonfinite,
# dapo/float32/padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import os, sys, types, numpy as np, torch
import openrlhf
# `import openrlhf.models` needs flash_attn: register a bare package so the real leaf modules import
_m = types.ModuleType("openrlhf.models"); _m.__path__ = [os.path.join(os.path.dirname(openrlhf.__file__), "models")]
sys.modules.setdefault("openrlhf.models", _m)
# experience_maker imports openrlhf.trainer.ray.launcher (vLLM/Ray) for a type annotation only
_r = types.ModuleType("openrlhf.trainer.ray"); _r.__path__ = []; sys.modules.setdefault("openrlhf.trainer.ray", _r)
_l = types.ModuleType("openrlhf.trainer.ray.launcher"); _l.RayActorGroup = object
sys.modules.setdefault("openrlhf.trainer.ray.launcher", _l)
from openrlhf.models.loss import PolicyLoss, aggregate_loss
from openrlhf.models.utils import compute_approx_kl, compute_entropy
from openrlhf.utils.loss_utils import get_loss_batch_info
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.experience import Experience
from numpy import nan, inf

dt = torch.bfloat16
logp = np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32)
old_logp = np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32)
ref_logp = np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32)
adv = np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32)
mask = np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool)
group = np.array([0, 0, 1, 1, 2], dtype=np.int64)
lp = torch.tensor(logp, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)
fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=None, token_level_loss=True, policy_loss_type='ppo')
loss = fn(lp, torch.tensor(old_logp, dtype=dt), torch.tensor(adv, dtype=dt), action_mask=mask_t,
          **get_loss_batch_info(None, mask_t))[0]
loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case dapo/bfloat16/padding-nonfinite-empty-rows
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('dapo')
config = spec.config(**{'log_ratio_clamp': 20.0})
inputs = {'logp': np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32), 'old_logp': np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32), 'ref_logp': np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32), 'adv': np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32), 'mask': np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

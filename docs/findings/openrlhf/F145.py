# F145: openrlhf 0.11.2 · rlspec entry `value_clip`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): OpenRLHF masks by multiplication
# (aggregate_loss / masked_mean (x * mask).sum(), GAE action_mask * values, compute_entropy over every
# position), so 0·NaN makes the loss, the gradient or the advantages NaN (upstream:
# https://github.com/OpenRLHF/OpenRLHF/pull/1240)
# source: harness (xfail); upstream: https://github.com/OpenRLHF/OpenRLHF/pull/1240
# cases: value_clip/bfloat16/padding-nonfinite, value_clip/float64/padding-nonfinite,
# value_clip/float32/padding-nonfinite
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
values = np.array([[-0.040283203125, -0.84765625, -0.58203125, -2.15625, 1.7265625, 1.5390625, -0.88671875], [1.109375, 0.58984375, -0.98046875, -inf, 1.0002555517425873e+30, -inf, -inf], [1.1640625, -0.0169677734375, 0.4609375, -0.83984375, 0.3203125, -1.0002555517425873e+30, -1.0002555517425873e+30], [0.15625, inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30, -1.0002555517425873e+30, nan], [-1.2734375, -1.5078125, 0.6171875, 0.271484375, 1.0546875, 0.345703125, inf], [0.8125, -0.0634765625, -1.0002555517425873e+30, 1.0002555517425873e+30, -inf, nan, 1.0002555517425873e+30]], dtype=np.float32)
old_values = np.array([[0.189453125, -0.5234375, -0.412109375, -2.4375, 1.796875, 1.140625, -0.326171875], [0.7734375, 0.28125, -0.5546875, 1.0002555517425873e+30, nan, -inf, -inf], [0.455078125, -0.09912109375, 0.546875, -0.60546875, 0.126953125, -inf, inf], [0.1884765625, -inf, nan, -inf, nan, nan, -1.0002555517425873e+30], [-1.7265625, -1.5078125, 0.83984375, 0.12890625, 1.078125, 0.72265625, -1.0002555517425873e+30], [0.283203125, -0.169921875, 1.0002555517425873e+30, -inf, inf, -inf, inf]], dtype=np.float32)
returns = np.array([[-0.5703125, -0.65625, -1.3203125, -2.25, 2.921875, 0.30859375, 1.1015625], [0.10595703125, 0.435546875, -1.390625, nan, -inf, -inf, -1.0002555517425873e+30], [-0.22265625, -0.921875, -1.0234375, -0.87109375, 0.52734375, -inf, nan], [2.640625, nan, -1.0002555517425873e+30, nan, -1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-1.375, -3.46875, 1.7421875, -0.029541015625, 0.11083984375, 2.40625, -inf], [0.330078125, -0.9140625, 1.0002555517425873e+30, 1.0002555517425873e+30, inf, inf, 1.0002555517425873e+30]], dtype=np.float32)
mask = np.array([[True, True, True, True, True, True, True], [True, True, True, False, False, False, False], [True, True, True, True, True, False, False], [True, False, False, False, False, False, False], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False]], dtype=np.bool)
from openrlhf.models.loss import ValueLoss
V = torch.tensor(values, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)
fn = ValueLoss(clip_eps=0.5, token_level_loss=True)
loss = fn(V, torch.tensor(old_values, dtype=dt), torch.tensor(returns, dtype=dt), action_mask=mask_t,
          **get_loss_batch_info(None, mask_t))
loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case value_clip/bfloat16/padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('value_clip')
config = spec.config(**{'eps': 0.5})
inputs = {'values': np.array([[-0.040283203125, -0.84765625, -0.58203125, -2.15625, 1.7265625, 1.5390625, -0.88671875], [1.109375, 0.58984375, -0.98046875, -inf, 1.0002555517425873e+30, -inf, -inf], [1.1640625, -0.0169677734375, 0.4609375, -0.83984375, 0.3203125, -1.0002555517425873e+30, -1.0002555517425873e+30], [0.15625, inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30, -1.0002555517425873e+30, nan], [-1.2734375, -1.5078125, 0.6171875, 0.271484375, 1.0546875, 0.345703125, inf], [0.8125, -0.0634765625, -1.0002555517425873e+30, 1.0002555517425873e+30, -inf, nan, 1.0002555517425873e+30]], dtype=np.float32), 'old_values': np.array([[0.189453125, -0.5234375, -0.412109375, -2.4375, 1.796875, 1.140625, -0.326171875], [0.7734375, 0.28125, -0.5546875, 1.0002555517425873e+30, nan, -inf, -inf], [0.455078125, -0.09912109375, 0.546875, -0.60546875, 0.126953125, -inf, inf], [0.1884765625, -inf, nan, -inf, nan, nan, -1.0002555517425873e+30], [-1.7265625, -1.5078125, 0.83984375, 0.12890625, 1.078125, 0.72265625, -1.0002555517425873e+30], [0.283203125, -0.169921875, 1.0002555517425873e+30, -inf, inf, -inf, inf]], dtype=np.float32), 'returns': np.array([[-0.5703125, -0.65625, -1.3203125, -2.25, 2.921875, 0.30859375, 1.1015625], [0.10595703125, 0.435546875, -1.390625, nan, -inf, -inf, -1.0002555517425873e+30], [-0.22265625, -0.921875, -1.0234375, -0.87109375, 0.52734375, -inf, nan], [2.640625, nan, -1.0002555517425873e+30, nan, -1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-1.375, -3.46875, 1.7421875, -0.029541015625, 0.11083984375, 2.40625, -inf], [0.330078125, -0.9140625, 1.0002555517425873e+30, 1.0002555517425873e+30, inf, inf, 1.0002555517425873e+30]], dtype=np.float32), 'mask': np.array([[True, True, True, True, True, True, True], [True, True, True, False, False, False, False], [True, True, True, True, True, False, False], [True, False, False, False, False, False, False], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

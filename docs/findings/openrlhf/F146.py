# F146: openrlhf 0.11.2 · rlspec entry `value_clip`
# severity: NaN
# what a user sees: all-false mask: aggregate_loss/masked_mean divide 0 by 0 tokens (no epsilon,
# openrlhf/models/utils.py masked_mean; loss_utils.get_loss_batch_info gives batch_num_tokens=0) -> NaN loss; no
# upstream issue found
# source: harness (xfail); upstream: none found
# cases: value_clip/bfloat16/all-false-mask, value_clip/float64/all-false-mask, value_clip/float32/all-false-
# mask
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
values = np.array([[2.875, -2.9375, -2.390625, -0.609375], [2.25, 2.546875, -2.125, -1.8203125], [-2.390625, -1.75, -0.71484375, -0.39453125]], dtype=np.float32)
old_values = np.array([[6.1875, -1.515625, -0.8671875, 1.375], [-2.859375, -1.109375, 0.0400390625, 2.328125], [-3.953125, 4.125, -1.0546875, 0.5078125]], dtype=np.float32)
returns = np.array([[2.546875, 1.984375, 3.171875, 0.51953125], [-0.058837890625, 0.94921875, -2.984375, 3.640625], [-2.328125, -3.78125, 6.15625, -0.41015625]], dtype=np.float32)
mask = np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool)
from openrlhf.models.loss import ValueLoss
V = torch.tensor(values, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)
fn = ValueLoss(clip_eps=0.5, token_level_loss=True)
loss = fn(V, torch.tensor(old_values, dtype=dt), torch.tensor(returns, dtype=dt), action_mask=mask_t,
          **get_loss_batch_info(None, mask_t))
loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case value_clip/bfloat16/all-false-mask
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('value_clip')
config = spec.config(**{'eps': 0.5})
inputs = {'values': np.array([[2.875, -2.9375, -2.390625, -0.609375], [2.25, 2.546875, -2.125, -1.8203125], [-2.390625, -1.75, -0.71484375, -0.39453125]], dtype=np.float32), 'old_values': np.array([[6.1875, -1.515625, -0.8671875, 1.375], [-2.859375, -1.109375, 0.0400390625, 2.328125], [-3.953125, 4.125, -1.0546875, 0.5078125]], dtype=np.float32), 'returns': np.array([[2.546875, 1.984375, 3.171875, 0.51953125], [-0.058837890625, 0.94921875, -2.984375, 3.640625], [-2.328125, -3.78125, 6.15625, -0.41015625]], dtype=np.float32), 'mask': np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

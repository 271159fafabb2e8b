# F134: openrlhf 0.11.2 · rlspec entry `kl_k2`
# severity: NaN
# what a user sees: all-false mask: masked_mean / aggregate_loss divide 0 by 0 tokens (no epsilon,
# openrlhf/models/utils.py masked_mean; loss_utils.get_loss_batch_info gives batch_num_tokens=0) -> NaN loss; no
# upstream issue found
# source: harness (xfail); upstream: none found
# cases: kl_k2/bfloat16/all-false-mask, kl_k2/float32/all-false-mask, kl_k2/float64/all-false-mask
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
logp = np.array([[-3.09375, -7.1875, -10.375, -9.1875], [-4.75, -6.6875, -4.75, -5.28125], [-9.4375, -1.28125, -3.734375, -13.4375]], dtype=np.float32)
old_logp = np.array([[-8.625, -3.421875, -0.54296875, -3.921875], [-17.875, -8.375, -3.6875, -0.984375], [-1.3828125, -2.28125, -4.6875, -9.0]], dtype=np.float32)
ref_logp = np.array([[-4.0625, -3.78125, -7.25, -7.3125], [-6.03125, -10.1875, -4.78125, -4.125], [-9.3125, -1.8515625, -0.73046875, -3.640625]], dtype=np.float32)
mask = np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool)
group = np.array([0, 0, 1], dtype=np.int64)
lp = torch.tensor(logp, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)
kl = compute_approx_kl(lp, torch.tensor(ref_logp, dtype=dt), kl_estimator='k2', unbiased_gradient=False)
loss = aggregate_loss(kl, mask_t, **get_loss_batch_info(None, mask_t))
loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case kl_k2/bfloat16/all-false-mask
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('kl_k2')
config = spec.config(**{'value_clamp': 10.0})
inputs = {'logp': np.array([[-3.09375, -7.1875, -10.375, -9.1875], [-4.75, -6.6875, -4.75, -5.28125], [-9.4375, -1.28125, -3.734375, -13.4375]], dtype=np.float32), 'old_logp': np.array([[-8.625, -3.421875, -0.54296875, -3.921875], [-17.875, -8.375, -3.6875, -0.984375], [-1.3828125, -2.28125, -4.6875, -9.0]], dtype=np.float32), 'ref_logp': np.array([[-4.0625, -3.78125, -7.25, -7.3125], [-6.03125, -10.1875, -4.78125, -4.125], [-9.3125, -1.8515625, -0.73046875, -3.640625]], dtype=np.float32), 'mask': np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F119: openrlhf 0.11.2 · rlspec entry `entropy`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): OpenRLHF masks by multiplication
# (aggregate_loss / masked_mean (x * mask).sum(), GAE action_mask * values, compute_entropy over every
# position), so 0·NaN makes the loss, the gradient or the advantages NaN (upstream:
# https://github.com/OpenRLHF/OpenRLHF/pull/1240)
# source: harness (xfail); upstream: https://github.com/OpenRLHF/OpenRLHF/pull/1240
# cases: entropy/bfloat16/make-inputs-0-padding-nonfinite, entropy/float64/make-inputs-0-padding-nonfinite,
# entropy/float32/make-inputs-0-padding-nonfinite
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
logits = np.array([[[1.265625, -0.181640625], [nan, nan], [nan, nan], [nan, nan], [nan, nan]]], dtype=np.float32)
mask = np.array([[True, False, False, False, False]], dtype=np.bool)
z = torch.tensor(logits, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)
H = getattr(compute_entropy, '_torchdynamo_orig_callable', compute_entropy)(z)
v = aggregate_loss(H, mask_t, **get_loss_batch_info(None, mask_t)); v.backward()
print('value', v.item()); print('dlogits', z.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case entropy/bfloat16/make-inputs-0-padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('entropy')
config = spec.config(**{})
inputs = {'logits': np.array([[[1.265625, -0.181640625], [nan, nan], [nan, nan], [nan, nan], [nan, nan]]], dtype=np.float32), 'mask': np.array([[True, False, False, False, False]], dtype=np.bool)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

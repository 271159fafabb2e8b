# F121: openrlhf 0.11.2 · rlspec entry `gae`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): OpenRLHF masks by multiplication
# (aggregate_loss / masked_mean (x * mask).sum(), GAE action_mask * values, compute_entropy over every
# position), so 0·NaN makes the loss, the gradient or the advantages NaN (upstream:
# https://github.com/OpenRLHF/OpenRLHF/pull/1240)
# source: harness (xfail); upstream: https://github.com/OpenRLHF/OpenRLHF/pull/1240
# cases: gae/float64/make-inputs-0-padding-nonfinite, gae/bfloat16/make-inputs-0-padding-nonfinite,
# gae/float32/make-inputs-0-padding-nonfinite
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

dt = torch.float64
token_rewards = np.array([[0.0, 1e+30, -inf, inf, inf], [0.6707840636491065, 0.0, 0.0, nan, 1e+30], [0.0, 0.0, nan, 1e+30, -inf], [0.0, 0.0, 0.0, 0.0, 0.5521600040302617], [0.0, inf, nan, 1e+30, -inf]], dtype=np.float64)
values = np.array([[1.3591870605426886, -inf, nan, -inf, 1e+30], [-1.156006337491333, -1.664759878126307, 0.030665684333826666, -inf, 1e+30], [-0.6326646304275, -0.9557900808840426, inf, inf, nan], [1.4431729898950394, 0.17250860454881728, 1.0024308698031559, 1.2703891409907833, -1.3567754018404166], [0.39528126651630113, inf, 1e+30, 1e+30, nan]], dtype=np.float64)
mask = np.array([[True, False, False, False, False], [True, True, True, False, False], [True, True, False, False, False], [True, True, True, True, True], [True, False, False, False, False]], dtype=np.bool)
N = types.SimpleNamespace
def openrlhf_adv(estimator, rewards, mask, index, n, kl, values=None, kl_coef=0.0, gamma=1.0, lambd=1.0,
                 no_std_norm=False):
    args = N(algo=N(advantage=N(estimator=estimator, gamma=gamma, lambd=lambd, no_std_norm=no_std_norm)),
             rollout=N(n_samples_per_prompt=n, max_new_tokens=None), data=N(max_len=None),
             reward=N(clip_range=None, overlong_buffer_len=None, stop_properly_penalty_coef=None))
    em = RemoteExperienceMaker.__new__(RemoteExperienceMaker)
    em.strategy, em.args, em.advantage_estimator, em.kl_ctl = N(args=args), args, estimator, N(value=kl_coef)
    e = Experience(action_mask=torch.tensor(mask), rewards=rewards, index=list(index), kl=kl, values=values, info={})
    out = em.compute_advantages_and_returns([e])[0]
    return out.advantages, out.returns
kdt = torch.promote_types(dt, torch.float32)
adv, ret = openrlhf_adv('gae', torch.zeros(mask.shape[0], dtype=kdt), mask, range(mask.shape[0]), 1,
                        kl=-torch.tensor(token_rewards, dtype=kdt), values=torch.tensor(values, dtype=kdt),
                        kl_coef=1.0, gamma=1.0, lambd=0.95)
print('adv', adv); print('returns', ret)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gae/float64/make-inputs-0-padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gae')
config = spec.config(**{'masked_steps': 'zero', 'whiten': True, 'whiten_ddof': 0, 'whiten_eps': 1e-08})
inputs = {'token_rewards': np.array([[0.0, 1e+30, -inf, inf, inf], [0.6707840636491065, 0.0, 0.0, nan, 1e+30], [0.0, 0.0, nan, 1e+30, -inf], [0.0, 0.0, 0.0, 0.0, 0.5521600040302617], [0.0, inf, nan, 1e+30, -inf]], dtype=np.float64), 'values': np.array([[1.3591870605426886, -inf, nan, -inf, 1e+30], [-1.156006337491333, -1.664759878126307, 0.030665684333826666, -inf, 1e+30], [-0.6326646304275, -0.9557900808840426, inf, inf, nan], [1.4431729898950394, 0.17250860454881728, 1.0024308698031559, 1.2703891409907833, -1.3567754018404166], [0.39528126651630113, inf, 1e+30, 1e+30, nan]], dtype=np.float64), 'mask': np.array([[True, False, False, False, False], [True, True, True, False, False], [True, True, False, False, False], [True, True, True, True, True], [True, False, False, False, False]], dtype=np.bool)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

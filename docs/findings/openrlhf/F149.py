# F149: openrlhf 0.11.2 · rlspec entry `reinforce_pp_baseline`
# severity: numerics within dtype
# what a user sees: an all-equal group of non-dyadic float32 rewards leaves a rounding residue in r − group
# mean, which the batch whitening (var.clamp(min=1e-8).rsqrt()) scales up to ~1e-3 (reference: exactly 0) (no
# upstream issue found)
# source: harness (xfail); upstream: none found
# cases: reinforce_pp_baseline/float32/all-equal-non-dyadic
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

dt = torch.float32
rewards = np.array([0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842], dtype=np.float32)
group = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2], dtype=np.int64)
mask = np.array([[True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False]], dtype=np.bool)
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
# OpenRLHF takes no group ids: rows in the order given, n_samples_per_prompt = largest group
n = int(np.unique(group, return_counts=True)[1].max()) if len(group) else 1
index = list(range(len(group)))
adv, _ = openrlhf_adv('reinforce_baseline', torch.tensor(rewards, dtype=dt), mask, index, n,
                      kl=torch.zeros(mask.shape, dtype=kdt), gamma=1.0, no_std_norm=False)
print('adv', adv)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case reinforce_pp_baseline/float32/all-equal-non-dyadic
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('reinforce_pp_baseline')
config = spec.config(**{'ddof': 0, 'eps': 1e-08, 'eps_placement': 'clamp', 'discount_masked': True})
inputs = {'rewards': np.array([0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.699999988079071, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 0.3499999940395355, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842, 1.2999999523162842], dtype=np.float32), 'group': np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2], dtype=np.int64), 'mask': np.array([[True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False], [True, True, True], [True, False, False], [True, True, False], [True, True, True], [True, True, True], [True, True, False], [True, False, False]], dtype=np.bool)}  # already rounded to float32
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('openrlhf').run(spec, inputs, config, 'float32')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float32', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F97: openrlhf 0.11.2 · openrlhf.trainer.ppo_utils.experience_maker.RemoteExperienceMaker.compute_advantages_and_returns
# severity: wrong value
# what a user sees: estimator 'reinforce': rewards all equal to 0.7 in float32 give non-zero advantages
# (rounding residue of the group mean divided by a std of ~1e-8)
# source: probe:input; upstream: none found
# cases: estimator='reinforce' | groups of 3 all-equal rewards 0.7 (float32), estimator='reinforce' | groups of
# 3 all-equal rewards 0.35 (float32)
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# openrlhf openrlhf.trainer.ppo_utils.experience_maker.RemoteExperienceMaker.compute_advantages_and_returns: estimator='reinforce' | groups of 3 all-equal rewards 0.7 (float32)

import math
import numpy as np
import torch

import os, sys, types
import openrlhf
# `import openrlhf.models` needs flash_attn: import the real leaf modules behind a bare package object
_d = os.path.join(os.path.dirname(openrlhf.__file__), "models")
if "openrlhf.models" not in sys.modules:
    _pkg = types.ModuleType("openrlhf.models"); _pkg.__path__ = [_d]; sys.modules["openrlhf.models"] = _pkg
if "openrlhf.trainer.ray.launcher" not in sys.modules:  # experience_maker names it in annotations only
    _rp = types.ModuleType("openrlhf.trainer.ray"); _rp.__path__ = []; sys.modules["openrlhf.trainer.ray"] = _rp
    _l = types.ModuleType("openrlhf.trainer.ray.launcher"); _l.RayActorGroup = object
    sys.modules["openrlhf.trainer.ray.launcher"] = _l
from openrlhf.models.loss import PolicyLoss, aggregate_loss
from openrlhf.models.utils import compute_approx_kl
from openrlhf.utils.loss_utils import get_loss_batch_info, _optimizer_step_loss_norm
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.experience import Experience


def advantages(estimator, rewards, mask, n_samples):
    """The real RemoteExperienceMaker.compute_advantages_and_returns on one Experience (bare instance, CLI
    defaults: gamma = lambd = 1, reward clip (-10, 10), KL in reward with coefficient 0 here)."""
    N = types.SimpleNamespace
    args = N(algo=N(advantage=N(estimator=estimator, gamma=1.0, lambd=1.0, no_std_norm=False)),
             rollout=N(n_samples_per_prompt=n_samples, max_new_tokens=None),
             reward=N(clip_range=(-10.0, 10.0), overlong_buffer_len=None, stop_properly_penalty_coef=None),
             data=N(max_len=None))
    em = RemoteExperienceMaker.__new__(RemoteExperienceMaker)
    em.strategy, em.args, em.advantage_estimator, em.kl_ctl = N(args=args), args, estimator, N(value=0.0)
    B = rewards.shape[0]
    exp = Experience(action_mask=mask, rewards=rewards.clone(), index=list(range(B)),
                     kl=torch.zeros(mask.shape, dtype=rewards.dtype), values=torch.zeros(mask.shape), info={})
    return em.compute_advantages_and_returns([exp])[0].advantages

def value_and_grad(b, full=None):
    """(loss, d loss / d logp or None) on a fresh copy of the batch."""
    b = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in b.items()}
    b["logp"].requires_grad_(True)
    loss = run(b, full)
    if not torch.is_tensor(loss) or not loss.requires_grad:
        return float(loss), None
    g = torch.autograd.grad(loss, b["logp"], allow_unused=True)[0]
    return float(loss.detach()), g


def rows(b, idx):
    n = b["mask"].shape[0]
    return {k: (v[idx] if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == n else v) for k, v in b.items()}


def close(got, want, rtol, atol):
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    return bool(torch.isfinite(got).all() and torch.isfinite(want).all()
                and ((got - want).abs() <= atol + rtol * want.abs()).all())

rewards = torch.full((6,), 0.7, dtype=torch.float32)  # every group all-equal
mask = torch.ones(6, 4, dtype=torch.bool)
adv = advantages('reinforce', rewards, mask, 3)
print('advantages:', adv[:, 0])
assert torch.isfinite(adv).all() and adv.abs().max() <= 1e-6, 'a group whose rewards are all equal must get zero advantage'

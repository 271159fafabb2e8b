# F106: openrlhf 0.11.2 · rlspec entry `ppo`
# severity: crash
# what a user sees: an empty batch (B = 0 rows) raises: get_loss_batch_info / aggregate_loss reshape a tensor of
# 0 elements to (0, -1) (RuntimeError: cannot reshape tensor of 0 elements) (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: ppo/float64/empty-batch, ppo/float32/empty-batch, ppo/bfloat16/empty-batch
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

try:
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
    logp = np.array([], dtype=np.float64).reshape((0, 5))
    old_logp = np.array([], dtype=np.float64).reshape((0, 5))
    ref_logp = np.array([], dtype=np.float64).reshape((0, 5))
    adv = np.array([], dtype=np.float64).reshape((0, 5))
    mask = np.array([], dtype=np.bool).reshape((0, 5))
    group = np.array([], dtype=np.int64).reshape((0,))
    lp = torch.tensor(logp, dtype=dt, requires_grad=True); mask_t = torch.tensor(mask)
    fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=None, token_level_loss=True, policy_loss_type='ppo')
    loss = fn(lp, torch.tensor(old_logp, dtype=dt), torch.tensor(adv, dtype=dt), action_mask=mask_t,
              **get_loss_batch_info(None, mask_t))[0]
    loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)
    _raised = None
except Exception as _e:  # noqa: BLE001
    _raised = _e

# --- the verdict (fails on the pinned version: the call raises on input it accepts) ---
assert _raised is None, f'raises {type(_raised).__name__}: {_raised}'

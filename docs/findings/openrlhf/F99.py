# F99: openrlhf 0.11.2 · rlspec entry `dr_grpo`
# severity: crash
# what a user sees: an empty batch (B = 0 rows) raises in compute_advantages_and_returns: torch.tensor([]) of
# the empty Experience.index is float, not an index tensor (IndexError: tensors used as indices must be long...)
# (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: dr_grpo/float64/empty-batch, dr_grpo/float32/empty-batch, dr_grpo/bfloat16/empty-batch
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
    rewards = np.array([], dtype=np.float64).reshape((0,))
    group = np.array([], dtype=np.int64).reshape((0,))
    mask = np.array([], dtype=np.bool).reshape((0, 4))
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
    adv, _ = openrlhf_adv('dr_grpo', torch.tensor(rewards, dtype=dt), mask, index, n,
                          kl=torch.zeros(mask.shape, dtype=kdt), gamma=1.0, no_std_norm=True)
    print('adv', adv)
    _raised = None
except Exception as _e:  # noqa: BLE001
    _raised = _e

# --- the verdict (fails on the pinned version: the call raises on input it accepts) ---
assert _raised is None, f'raises {type(_raised).__name__}: {_raised}'

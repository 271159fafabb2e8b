# F226: verl 0.9.1 · rlspec entry `reinforce_pp`
# severity: crash
# what a user sees: a batch with no valid token (B = 0) raises in masked_whiten: masked_var raises
# ValueError('At least one element in the mask has to be 1') (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: reinforce_pp/float64/empty-batch, reinforce_pp/float32/empty-batch
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

try:
    # --- 1. the implementation alone (runs with only the library installed) ---
    # verl 0.9.1: reinforce_pp computed by verl's own function (reinforce_plus_plus), dtype float64
    import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
    import numpy as np, torch
    from numpy import nan, inf
    from verl.trainer.ppo import core_algos as ca
    dt = torch.float64
    rewards = np.array([]).reshape((0,))
    group = np.array([], dtype=np.int64).reshape((0,))
    mask = np.array([], dtype=bool).reshape((0, 4))
    m = torch.as_tensor(mask).to(dt)
    # outcome reward on the last valid token (verl's reward managers: valid_response_length - 1)
    B, T = mask.shape; tlr = np.zeros((B, T))
    last = np.where(mask.any(1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)
    tlr[np.arange(B), last] = rewards if rewards.ndim == 1 else 0.0; tlr = torch.as_tensor(tlr).to(dt)
    from omegaconf import OmegaConf
    adv, _ = ca.get_adv_estimator_fn('reinforce_plus_plus')(tlr, m, config=OmegaConf.create({'gamma': 1.0}))
    print('adv (valid tokens):', adv[mask].tolist())
    _raised = None
except Exception as _e:  # noqa: BLE001
    _raised = _e

# --- the verdict (fails on the pinned version: the call raises on input it accepts) ---
assert _raised is None, f'raises {type(_raised).__name__}: {_raised}'

# F249: verl 0.9.1 · rlspec entry `gspo_token`
# severity: NaN
# what a user sees: an empty batch (B = 0 rows) gives a NaN loss: agg_loss / the loss's own mean divide a sum
# over no rows by 0 (a batch with rows but no valid token is fine); the reference defines it as 0 (no upstream
# issue found)
# source: harness (xfail); upstream: none found
# cases: gspo_token/float64/empty-batch, gspo_token/float32/empty-batch, gspo_token/bfloat16/empty-batch
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# verl 0.9.1: gspo_token computed by verl's own function (gspo), dtype float64
import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import numpy as np, torch
from numpy import nan, inf
from verl.trainer.ppo import core_algos as ca
dt = torch.float64
logp = np.array([]).reshape((0, 5))
old_logp = np.array([]).reshape((0, 5))
ref_logp = np.array([]).reshape((0, 5))
adv = np.array([]).reshape((0, 5))
mask = np.array([], dtype=bool).reshape((0, 5))
group = np.array([], dtype=np.int64).reshape((0,))
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='seq-mean-token-mean', clip_ratio=0.0004, clip_ratio_low=0.0003, clip_ratio_high=0.0004, clip_ratio_c=3.0, tau_pos=1.0, tau_neg=1.05, global_batch_info={})
lp = torch.as_tensor(logp).to(dt).requires_grad_(True)
loss, _ = ca.get_policy_loss_fn('gspo')(old_log_prob=torch.as_tensor(old_logp).to(dt), log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), loss_agg_mode='seq-mean-token-mean', config=cfg)
loss.backward()
print('loss', loss.item()); print('dlogp', lp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case gspo_token/float64/empty-batch
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('gspo_token')
config = spec.config(**{})
inputs = {'logp': np.zeros((0, 5), dtype=np.float64), 'old_logp': np.zeros((0, 5), dtype=np.float64), 'ref_logp': np.zeros((0, 5), dtype=np.float64), 'adv': np.zeros((0, 5), dtype=np.float64), 'mask': np.zeros((0, 5), dtype=np.bool), 'group': np.zeros((0,), dtype=np.int64)}  # already rounded to float64
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('verl').run(spec, inputs, config, 'float64')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float64', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F42: areal 1.0.4 · rlspec entry `value_clip`
# severity: NaN
# what a user sees: all-false mask: ppo_critic_loss_fn divides by loss_mask.count_nonzero() without the 'or 1'
# guard ppo_actor_loss_fn has (utils/functional/functional.py) -> NaN loss; no upstream issue found
# source: harness (xfail); upstream: none found
# cases: value_clip/float32/all-false-mask
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.float32
values = np.array([[2.8775546550750732, -2.939563751220703, -2.3933873176574707, -0.6099974513053894], [2.2438790798187256, 2.5529019832611084, -2.129054546356201, -1.8215914964675903], [-2.3934688568115234, -1.7527146339416504, -0.7137701511383057, -0.3954451382160187]], dtype=np.float32)
old_values = np.array([[6.174343585968018, -1.519210934638977, -0.8661730885505676, 1.3757331371307373], [-2.859222173690796, -1.1058814525604248, 0.039955444633960724, 2.3224377632141113], [-3.948044538497925, 4.114408493041992, -1.0573720932006836, 0.5082492828369141]], dtype=np.float32)
returns = np.array([[2.5412650108337402, 1.9823787212371826, 3.1776957511901855, 0.5195934772491455], [-0.058840058743953705, 0.9494355916976929, -2.9871461391448975, 3.6425621509552], [-2.3261587619781494, -3.780731678009033, 6.169226169586182, -0.40933480858802795]], dtype=np.float32)
mask = np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool)
from areal.utils.functional import ppo_critic_loss_fn
V = torch.tensor(values, dtype=torch.float32, requires_grad=True)
loss, _ = ppo_critic_loss_fn(V, torch.tensor(old_values, dtype=torch.float32), torch.tensor(returns, dtype=torch.float32), 0.5, loss_mask=torch.tensor(mask))
loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case value_clip/float32/all-false-mask
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('value_clip')
config = spec.config(**{'eps': 0.5})
inputs = {'values': np.array([[2.8775546550750732, -2.939563751220703, -2.3933873176574707, -0.6099974513053894], [2.2438790798187256, 2.5529019832611084, -2.129054546356201, -1.8215914964675903], [-2.3934688568115234, -1.7527146339416504, -0.7137701511383057, -0.3954451382160187]], dtype=np.float32), 'old_values': np.array([[6.174343585968018, -1.519210934638977, -0.8661730885505676, 1.3757331371307373], [-2.859222173690796, -1.1058814525604248, 0.039955444633960724, 2.3224377632141113], [-3.948044538497925, 4.114408493041992, -1.0573720932006836, 0.5082492828369141]], dtype=np.float32), 'returns': np.array([[2.5412650108337402, 1.9823787212371826, 3.1776957511901855, 0.5195934772491455], [-0.058840058743953705, 0.9494355916976929, -2.9871461391448975, 3.6425621509552], [-2.3261587619781494, -3.780731678009033, 6.169226169586182, -0.40933480858802795]], dtype=np.float32), 'mask': np.array([[False, False, False, False], [False, False, False, False], [False, False, False, False]], dtype=np.bool)}  # already rounded to float32
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'float32')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float32', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

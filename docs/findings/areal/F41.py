# F41: areal 1.0.4 · rlspec entry `value_clip`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): AReaL selects with torch.where(mask,
# f(x), 0) (ppo_actor_loss_fn, sapo_loss_fn, ppo_critic_loss_fn): the value is right, but the backward
# multiplies the zero gradient of the masked branch by f'(NaN/±inf), writing NaN into the gradient at padded
# positions (inf·0) (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: value_clip/float32/padding-nonfinite
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
import numpy as np, torch
from numpy import nan, inf
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
from areal.utils.data import KLEstimator, Normalization
from areal.api.cli_args import NormConfig
dt = torch.float32
values = np.array([[-0.040285851806402206, -0.846466600894928, -0.5820497274398804, -2.1506857872009277, 1.7292057275772095, 1.541469931602478, -0.8871816992759705], [1.112363576889038, 0.5916705131530762, -0.9794225692749023, -inf, 1.0000000150474662e+30, -inf, -inf], [1.167424201965332, -0.017018375918269157, 0.46117401123046875, -0.8385013341903687, 0.3212472200393677, -1.0000000150474662e+30, -1.0000000150474662e+30], [0.15645715594291687, inf, 1.0000000150474662e+30, nan, -1.0000000150474662e+30, -1.0000000150474662e+30, nan], [-1.276375651359558, -1.5075182914733887, 0.6188122630119324, 0.2720944583415985, 1.0553659200668335, 0.34617486596107483, inf], [0.8140719532966614, -0.06345532089471817, -1.0000000150474662e+30, 1.0000000150474662e+30, -inf, nan, 1.0000000150474662e+30]], dtype=np.float32)
old_values = np.array([[0.18905338644981384, -0.5227484703063965, -0.41306355595588684, -2.44146728515625, 1.7997074127197266, 1.1441658735275269, -0.32542282342910767], [0.7738065719604492, 0.28121066093444824, -0.5538228154182434, 1.0000000150474662e+30, nan, -inf, -inf], [0.45495808124542236, -0.09919805079698563, 0.5452887415885925, -0.6071857213973999, 0.12682785093784332, -inf, inf], [0.18803508579730988, -inf, nan, -inf, nan, nan, -1.0000000150474662e+30], [-1.7294114828109741, -1.5048314332962036, 0.8414589166641235, 0.1287156641483307, 1.0783424377441406, 0.7224308848381042, -1.0000000150474662e+30], [0.28403815627098083, -0.16976049542427063, 1.0000000150474662e+30, -inf, inf, -inf, inf]], dtype=np.float32)
returns = np.array([[-0.5700547099113464, -0.6568769812583923, -1.3186695575714111, -2.2514214515686035, 2.9289350509643555, 0.3080807030200958, 1.1031211614608765], [0.1061866357922554, 0.4346228241920471, -1.3902093172073364, nan, -inf, -inf, -1.0000000150474662e+30], [-0.22292812168598175, -0.9203580021858215, -1.0247912406921387, -0.8701553344726562, 0.5279860496520996, -inf, nan], [2.645371675491333, nan, -1.0000000150474662e+30, nan, -1.0000000150474662e+30, 1.0000000150474662e+30, inf], [-1.3752998113632202, -3.4732282161712646, 1.7407325506210327, -0.02953195758163929, 0.11066097021102905, 2.4008498191833496, -inf], [0.32984599471092224, -0.915203869342804, 1.0000000150474662e+30, 1.0000000150474662e+30, inf, inf, 1.0000000150474662e+30]], dtype=np.float32)
mask = np.array([[True, True, True, True, True, True, True], [True, True, True, False, False, False, False], [True, True, True, True, True, False, False], [True, False, False, False, False, False, False], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False]], dtype=np.bool)
from areal.utils.functional import ppo_critic_loss_fn
V = torch.tensor(values, dtype=torch.float32, requires_grad=True)
loss, _ = ppo_critic_loss_fn(V, torch.tensor(old_values, dtype=torch.float32), torch.tensor(returns, dtype=torch.float32), 0.5, loss_mask=torch.tensor(mask))
loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case value_clip/float32/padding-nonfinite
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('value_clip')
config = spec.config(**{'eps': 0.5})
inputs = {'values': np.array([[-0.040285851806402206, -0.846466600894928, -0.5820497274398804, -2.1506857872009277, 1.7292057275772095, 1.541469931602478, -0.8871816992759705], [1.112363576889038, 0.5916705131530762, -0.9794225692749023, -inf, 1.0000000150474662e+30, -inf, -inf], [1.167424201965332, -0.017018375918269157, 0.46117401123046875, -0.8385013341903687, 0.3212472200393677, -1.0000000150474662e+30, -1.0000000150474662e+30], [0.15645715594291687, inf, 1.0000000150474662e+30, nan, -1.0000000150474662e+30, -1.0000000150474662e+30, nan], [-1.276375651359558, -1.5075182914733887, 0.6188122630119324, 0.2720944583415985, 1.0553659200668335, 0.34617486596107483, inf], [0.8140719532966614, -0.06345532089471817, -1.0000000150474662e+30, 1.0000000150474662e+30, -inf, nan, 1.0000000150474662e+30]], dtype=np.float32), 'old_values': np.array([[0.18905338644981384, -0.5227484703063965, -0.41306355595588684, -2.44146728515625, 1.7997074127197266, 1.1441658735275269, -0.32542282342910767], [0.7738065719604492, 0.28121066093444824, -0.5538228154182434, 1.0000000150474662e+30, nan, -inf, -inf], [0.45495808124542236, -0.09919805079698563, 0.5452887415885925, -0.6071857213973999, 0.12682785093784332, -inf, inf], [0.18803508579730988, -inf, nan, -inf, nan, nan, -1.0000000150474662e+30], [-1.7294114828109741, -1.5048314332962036, 0.8414589166641235, 0.1287156641483307, 1.0783424377441406, 0.7224308848381042, -1.0000000150474662e+30], [0.28403815627098083, -0.16976049542427063, 1.0000000150474662e+30, -inf, inf, -inf, inf]], dtype=np.float32), 'returns': np.array([[-0.5700547099113464, -0.6568769812583923, -1.3186695575714111, -2.2514214515686035, 2.9289350509643555, 0.3080807030200958, 1.1031211614608765], [0.1061866357922554, 0.4346228241920471, -1.3902093172073364, nan, -inf, -inf, -1.0000000150474662e+30], [-0.22292812168598175, -0.9203580021858215, -1.0247912406921387, -0.8701553344726562, 0.5279860496520996, -inf, nan], [2.645371675491333, nan, -1.0000000150474662e+30, nan, -1.0000000150474662e+30, 1.0000000150474662e+30, inf], [-1.3752998113632202, -3.4732282161712646, 1.7407325506210327, -0.02953195758163929, 0.11066097021102905, 2.4008498191833496, -inf], [0.32984599471092224, -0.915203869342804, 1.0000000150474662e+30, 1.0000000150474662e+30, inf, inf, 1.0000000150474662e+30]], dtype=np.float32), 'mask': np.array([[True, True, True, True, True, True, True], [True, True, True, False, False, False, False], [True, True, True, True, True, False, False], [True, False, False, False, False, False, False], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False]], dtype=np.bool)}  # already rounded to float32
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('areal').run(spec, inputs, config, 'float32')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'float32', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

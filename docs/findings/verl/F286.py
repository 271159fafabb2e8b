# F286: verl 0.9.1 · verl.trainer.ppo.core_algos.get_policy_loss_fn('gspo')
# severity: NaN
# what a user sees: the loss (input no-valid-token) is nan on this input
# source: probe:input; upstream: none found
# cases: loss_agg_mode='token-mean' [direct]: no-valid-token, loss_agg_mode='token-mean' [direct]: nan-padding,
# loss_agg_mode='token-mean' [trainer]: no-valid-token, loss_agg_mode='token-mean' [trainer]: nan-padding,
# loss_agg_mode='token-sum' [direct]: nan-padding, loss_agg_mode='token-sum' [trainer]: nan-padding,
# loss_agg_mode='seq-mean-token-sum' [direct]: no-valid-token, loss_agg_mode='seq-mean-token-sum' [direct]: nan-
# padding, loss_agg_mode='seq-mean-token-sum' [trainer]: nan-padding, loss_agg_mode='seq-mean-token-mean'
# [direct]: no-valid-token, loss_agg_mode='seq-mean-token-mean' [direct]: nan-padding, loss_agg_mode='seq-mean-
# token-mean' [trainer]: nan-padding, loss_agg_mode='seq-mean-token-sum-norm' [direct]: no-valid-token,
# loss_agg_mode='seq-mean-token-sum-norm' [direct]: nan-padding, loss_agg_mode='seq-mean-token-sum-norm'
# [trainer]: nan-padding
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# verl gspo loss, loss_agg_mode='token-sum', direct call, input nan-padding

import os
os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import warnings
warnings.filterwarnings('ignore')
import math
import numpy as np
import torch

from verl.trainer.ppo import core_algos as ca
from verl.workers.config import ActorConfig, PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='token-sum',
                  policy_loss=PolicyLossConfig(loss_mode='gspo'))

def run(b, full=None):
    full = b if full is None else full
    cfg.global_batch_info.clear()   # a direct call (docs)
    loss, _ = ca.get_policy_loss_fn('gspo')(
        old_log_prob=b["old_logp"], log_prob=b["logp"], advantages=b["adv"], response_mask=b["mask"],
        loss_agg_mode=cfg.loss_agg_mode, config=cfg)
    return loss

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

b = {
    'logp': torch.tensor([[-0.9793290049927225, -0.36186406809090144, -0.5299746546550977, -1.2745727015577795, -0.9534034041652899, -0.26420350465622583, -0.7337985536699484], [-2.044921119184922, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.0779663320988, 0.13075569070463564, -3.237910868157512, -2.5104475893592455, -1.2513626573108194, float('nan'), float('nan')], [-2.1518551531882983, -2.3887289235540625, -1.6858138045488387, -1.8959690423049487, float('nan'), float('nan'), float('nan')], [-2.2714767494722516, -2.370931929362854, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.2267964220952094, -2.1337549521207935, -0.36419096124276296, -1.704747502302582, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'old_logp': torch.tensor([[-0.8323494811147726, -0.43120385231291053, -0.11115654610175449, -1.2117924847247918, -1.1716743755359098, -0.11918326235300443, -0.7527246290034909], [-2.3749138617055117, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.2926968407025061, -0.13379921895683053, -2.859109205754547, -2.8343093333359892, -0.9992192907784214, float('nan'), float('nan')], [-2.29427137695777, -2.916309080329064, -1.8456750741688492, -1.860397951998148, float('nan'), float('nan'), float('nan')], [-1.7281326545917104, -2.2109242283940205, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-0.17755103339657252, -2.389050284554999, -0.5245843140598662, -1.9923694466896733, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'ref_logp': torch.tensor([[-0.7335030613643545, -0.4883620976191266, -0.24546292437628875, -1.0415177592104887, -1.7083456954671283, -0.09918274496617137, -0.10072046172530391], [-2.0665962266505593, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.2925037022627444, -0.48493736338669835, -2.649525587517498, -2.422977235426706, -0.6531083937382323, float('nan'), float('nan')], [-2.1846886110768264, -2.9745538464454007, -1.8982125244364272, -1.732287846319892, float('nan'), float('nan'), float('nan')], [-1.7991083430224664, -2.436188571373026, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.09738986553396839, -2.474450050043749, -0.22477478594381878, -2.6028661064998686, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'adv': torch.tensor([[0.5234999809388662, 0.5234999809388662, 0.5234999809388662, 0.5234999809388662, 0.5234999809388662, 0.5234999809388662, 0.5234999809388662], [0.6295732326026132, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.1530732135414798, -1.1530732135414798, -1.1530732135414798, -1.1530732135414798, -1.1530732135414798, float('nan'), float('nan')], [0.7797724913450021, 0.7797724913450021, 0.7797724913450021, 0.7797724913450021, float('nan'), float('nan'), float('nan')], [0.34765253451806677, 0.34765253451806677, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.1274250258630687, -1.1274250258630687, -1.1274250258630687, -1.1274250258630687, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'values': torch.tensor([[0.30994239215887803, -1.2837554276914696, -1.348109890814717, -0.059724148347244814, 1.329378253797354, -0.8610454249766911, -0.7505748459873494], [-0.23590684287511884, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.6703972795947386, 0.5902490881687265, 0.04229800514213144, 0.6256609015356105, -0.08866562164683132, float('nan'), float('nan')], [0.9024537087194603, -2.2240420422838136, 0.1298546149390933, 0.005818243857414263, float('nan'), float('nan'), float('nan')], [0.9488321862799959, -0.6853435584819704, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.5642942979215435, -0.6137228930089782, -0.8977828116757061, -0.44132941119447616, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'old_values': torch.tensor([[-0.045227060289331045, -1.20601632212296, -1.2633364056770326, -0.290143951908986, 1.607900370422012, -1.057057814022683, -0.7056805748610908], [-0.5752704324760718, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-1.7854244308878309, 0.7402211710167582, 0.1889121683210586, 0.6685652558539958, -0.02124878974965605, float('nan'), float('nan')], [1.1536985467514969, -2.2443161501729887, 0.2988334912939963, 0.1650997286455113, float('nan'), float('nan'), float('nan')], [1.1106632775583742, -0.5304342225740708, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.8481219326981605, -0.6096332018650645, -0.7863056540141091, -0.4494603847927096, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'returns': torch.tensor([[-0.985529823429461, -0.7506902925422764, -0.19037868374320185, 0.5955949905817756, -0.0792540473077412, -1.5753500034371772, 2.6851932470301567], [0.3154488127100096, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.17338010823937894, 1.1292192357385296, -0.9267389767998567, 2.1007650353287364, 0.2893732664300419, float('nan'), float('nan')], [0.30188940511791246, 0.7861295413486484, -0.3266537970484345, -0.20383488510038802, float('nan'), float('nan'), float('nan')], [-1.453516082837155, 0.45979506957104155, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [-2.129777118899729, 0.9952937261143133, -0.017934504651792728, -0.04738915397745302, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9837090575719151], [1.0404405530942349, float('nan'), float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.0, 0.0, 0.0, 0.0, 0.08702206831078811, float('nan'), float('nan')], [0.0, 0.0, 0.0, 1.2344377631429326, float('nan'), float('nan'), float('nan')], [0.0, 0.913638755848064, float('nan'), float('nan'), float('nan'), float('nan'), float('nan')], [0.0, 0.0, 0.0, -0.18143544652839233, float('nan'), float('nan'), float('nan')]], dtype=torch.float64),
    'adv_seq': torch.tensor([0.5234999809388662, 0.6295732326026132, -1.1530732135414798, 0.7797724913450021, 0.34765253451806677, -1.1274250258630687], dtype=torch.float64),
    'rewards': torch.tensor([0.9837090575719151, 1.0404405530942349, 0.08702206831078811, 1.2344377631429326, 0.913638755848064, -0.18143544652839233], dtype=torch.float64),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, False, False, False, False, False, False], [True, True, True, True, True, False, False], [True, True, True, True, False, False, False], [True, True, False, False, False, False, False], [True, True, True, True, False, False, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 1, 5, 4, 2, 4], dtype=torch.int64),
}

try:
    v, g = value_and_grad(b)
    raised = None
except Exception as e:  # the input is one the function accepts: it should return numbers
    raised = e
assert raised is None, f"raises {raised!r}"
print("loss", v, "gradient", g)
assert math.isfinite(v), "non-finite loss"
assert g is None or torch.isfinite(g).all(), "non-finite gradient"

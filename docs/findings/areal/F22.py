# F22: areal 1.0.4 · areal.trainer.ppo.actor.grpo_loss_fn (dispatch)
# severity: NaN
# what a user sees: the actor loss (input nan-padding) has NaN/inf at masked positions
# source: probe:input; upstream: none found
# cases: c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False: nan-padding,
# c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: nan-padding,
# c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False: nan-padding,
# c_clip=3.0, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=True: nan-padding,
# c_clip=None, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=False: nan-padding,
# c_clip=None, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=True: nan-padding,
# c_clip=3.0, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=False: nan-padding,
# c_clip=3.0, eps_clip_higher=0.28, importance_sampling_level='token', use_sapo_loss=True: nan-padding,
# rejection_sampling={'level': 'token', 'action': 'mask', 'metric': 'ratio', 'agg': 'mean', 'upper': 2.0},
# use_decoupled_loss=True: nan-padding, rejection_sampling={'level': 'token', 'action': 'mask', 'metric':
# 'kl_k1', 'agg': 'mean', 'upper': 0.5}, use_decoupled_loss=True: nan-padding, rejection_sampling={'level':
# 'token', 'action': 'mask', 'metric': 'kl_k2', 'agg': 'mean', 'upper': 0.5}, use_decoupled_loss=True: nan-
# padding, rejection_sampling={'level': 'token', 'action': 'mask', 'metric': 'kl_k3', 'agg': 'mean', 'upper':
# 0.5}, use_decoupled_loss=True: nan-padding, rejection_sampling={'level': 'token', 'action': 'clamp', 'metric':
# 'ratio', 'agg': 'mean', 'upper': 2.0}, use_decoupled_loss=True: nan-padding, rejection_sampling={'level':
# 'sequence', 'action': 'mask', 'metric': 'ratio', 'agg': 'sum', 'upper': 2.0}, use_decoupled_loss=True: nan-
# padding, rejection_sampling={'level': 'sequence', 'action': 'mask', 'metric': 'ratio', 'agg': 'mean', 'upper':
# 2.0}, use_decoupled_loss=True: nan-padding, rejection_sampling={'level': 'sequence', 'action': 'mask',
# 'metric': 'ratio', 'agg': 'max', 'upper': 2.0}, use_decoupled_loss=True: nan-padding,
# rejection_sampling={'level': 'sequence', 'action': 'mask', 'metric': 'kl_k1', 'agg': 'sum', 'upper': 0.5},
# use_decoupled_loss=True: nan-padding, rejection_sampling={'level': 'sequence', 'action': 'mask', 'metric':
# 'kl_k1', 'agg': 'mean', 'upper': 0.5}, use_decoupled_loss=True: nan-padding, rejection_sampling={'level':
# 'sequence', 'action': 'mask', 'metric': 'kl_k1', 'agg': 'max', 'upper': 0.5}, use_decoupled_loss=True: nan-
# padding, rejection_sampling={'level': 'sequence', 'action': 'mask', 'metric': 'kl_k2', 'agg': 'sum', 'upper':
# 0.5}, use_decoupled_loss=True: nan-padding and 11 more
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# AReaL grpo_loss_fn with PPOActorConfig(m2_threshold=0.04) as PPOActor binds it, input nan-padding

import warnings
warnings.filterwarnings('ignore')
import logging
logging.disable(logging.INFO)
import math
import numpy as np
import torch

import os, sys, types
import areal
_pkg = types.ModuleType("areal.trainer")   # skip areal/trainer/__init__ (it imports swanlab for the SFT/DPO loggers)
_pkg.__path__ = [os.path.join(os.path.dirname(areal.__file__), "trainer")]
sys.modules.setdefault("areal.trainer", _pkg)
from areal.trainer.ppo.actor import PPOActor, grpo_loss_fn
from areal.api.cli_args import NormConfig, PPOActorConfig, RejectionSamplingConfig

from areal.trainer.ppo.actor import _apply_m2po_masking
from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn
cfg = PPOActorConfig(m2_threshold=0.04, rejection_sampling=None)
DP = 1

def run(b, full=None):
    full = b if full is None else full
    # input_data as PPOActor._compute_advantages leaves it: logprobs = behaviour policy, prox_logp = proximal
    # policy (the behaviour policy itself unless use_decoupled_loss)
    data = {"logprobs": b["old_logp"], "advantages": b["adv"], "loss_mask": b["mask"],
            "prox_logp": b["prox_logp"] if cfg.use_decoupled_loss else b["old_logp"]}
    # grpo_loss_fn's dispatch (areal/trainer/ppo/actor.py), without its float32-only statistics logging
    mask = data["loss_mask"]
    if cfg.m2_threshold is not None:
        mask = _apply_m2po_masking(data["logprobs"], data["prox_logp"], mask, cfg.m2_threshold)
    if cfg.use_sapo_loss:
        loss, _ = sapo_loss_fn(logprobs=b["logp"], old_logprobs=data["logprobs"], advantages=data["advantages"],
                               tau_pos=cfg.sapo_tau_pos, tau_neg=cfg.sapo_tau_neg, loss_mask=mask,
                               importance_sampling_level=cfg.importance_sampling_level)
    else:
        loss, _ = ppo_actor_loss_fn(logprobs=b["logp"], old_logprobs=data["logprobs"], advantages=data["advantages"],
                                    eps_clip=cfg.eps_clip, eps_clip_higher=cfg.eps_clip_higher, loss_mask=mask,
                                    c_clip=cfg.c_clip, proximal_logprobs=data["prox_logp"],
                                    rejection_sampling=cfg.rejection_sampling,
                                    importance_sampling_level=cfg.importance_sampling_level)
    # FSDPEngine._compute_logprobs_and_loss: loss * local_weight / total_weight * dp_size, with
    # loss_weight_fn = loss_mask.count_nonzero() and the total all-reduced over the DP ranks (0 if no local token)
    local, total = b["mask"].count_nonzero(), full["mask"].count_nonzero()
    dp = DP if b is not full else 1
    loss = loss * (local / total) * dp if local > 0 else b["logp"].sum() * 0.0   # loss_multiplier = dp_size
    loss = loss / dp   # DDP averages the ranks' gradients
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
    'prox_logp': torch.tensor([[-0.2200737446992178, -1.197903361707165, 0.01427310791597916, -1.3821233665631707, -1.3074691631690436, -0.1838624112799342, -1.3587204677476663], [-2.4444935749987686, -11.316673266868412, -6.13593063377234, -11.71492446849245, -0.9700322867472262, -7.2882699839403555, -4.51783901252727], [-1.6092420060640424, -0.25103951212722697, -2.7145255892025113, -2.905875415307999, -0.7118916798904922, -9.622814483829687, -2.0943337937283415], [-1.8305251215939264, -2.7527774235227707, -1.9972436948530548, -1.9152496443774685, -10.459623290251876, -6.527296809161978, -10.82658095659186], [-1.8012002583154418, -1.910230148011313, -5.725842286070476, -5.165955332752958, -9.467360610531953, -11.809835999173456, -4.436709511829145], [0.023480273051971284, -3.2374989766081277, -0.21819226880984222, -2.2802628746321156, -11.62719443179482, -11.148316653185034, -2.1323110291437732]], dtype=torch.float64),
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

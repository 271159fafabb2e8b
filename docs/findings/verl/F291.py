# F291: verl 0.9.1 · verl.workers.utils.losses.ppo_loss
# severity: NaN
# what a user sees: the trainer's loss on a mini-batch without valid tokens is nan on this input
# source: probe:input; upstream: none found
# cases: policy_loss.loss_mode='cispo', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='cispo', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='dppo_kl', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='dppo_kl', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='dppo_tv', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='dppo_tv', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='dro', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='dro', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='geo_mean', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='gpg', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='gpg', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='gspo', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='gspo', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='kl_cov', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='kl_cov', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='sapo', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token,
# policy_loss.loss_mode='vanilla', loss_agg_mode='token-mean', use_kl_loss=False: no-valid-token,
# policy_loss.loss_mode='vanilla', loss_agg_mode='token-mean', use_kl_loss=True: no-valid-token
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# verl ppo_loss (the trainer's loss) with policy_loss.loss_mode='gpg', loss_agg_mode='token-mean', use_kl_loss=True, no valid token

import os
os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import warnings
warnings.filterwarnings('ignore')
import math
import numpy as np
import torch

from verl.trainer.ppo import core_algos as ca

from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig, PolicyLossConfig
from verl.workers.utils.losses import ppo_loss
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='token-mean', use_kl_loss=True, policy_loss=PolicyLossConfig(loss_mode='gpg'))
P = 2   # prompt tokens per row

def run(b, full=None):
    full = b if full is None else full
    # the padded TensorDict the engine hands ppo_loss (prompts, responses, attention_mask, response_mask, ...) and
    # the model output as the engine produces it: log-probs packed over prompt + response tokens, shifted left by one
    Bn, Tn = b["mask"].shape
    resp_len = b["mask"].long().cumsum(-1).argmax(-1) + 1   # up to the last valid token (holes stay inside)
    resp_len = torch.where(b["mask"].any(-1), resp_len, torch.zeros_like(resp_len))
    attn = torch.cat([torch.ones(Bn, P, dtype=torch.long), (torch.arange(Tn)[None, :] < resp_len[:, None]).long()], 1)
    packed = []
    for i in range(Bn):
        n = int(resp_len[i])
        packed += [torch.zeros(P - 1, dtype=b["logp"].dtype), b["logp"][i, :n], torch.zeros(1, dtype=b["logp"].dtype)]
    data = TensorDict({"prompts": torch.zeros(Bn, P, dtype=torch.long), "responses": torch.zeros(Bn, Tn, dtype=torch.long),
                       "attention_mask": attn, "response_mask": b["mask"], "old_log_probs": b["old_logp"],
                       "advantages": b["adv"], "ref_log_prob": b["ref_logp"]}, batch_size=[Bn])
    # what the engine assigns: the mini-batch's valid-token count, its rows, the data-parallel size
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(full["mask"].sum()),
                         global_batch_size=int(full["mask"].shape[0]))
    cfg.global_batch_info.clear()
    loss, _ = ppo_loss(cfg, {"log_probs": torch.cat(packed)}, data)
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
    'logp': torch.tensor([[-6.275125699771868, -11.484127042587698, -6.80468669143384, -1.5345197702777065, -6.921708991133433, -6.8239042864153685, -6.141869489517883], [-6.382375399711307, -8.012309057444849, -1.4263444413314916, -10.277874454367492, -3.670620390326632, -8.498934578037485, -5.5648231227475655], [-10.96054305284032, -0.9470628515630723, -10.139067247097165, -11.975761228251617, -2.4382700001141258, -8.346407214059509, -0.1418176382356484], [-0.5473859489762312, -5.944839917514734, -7.974609855176393, -1.6806111522928147, -0.54390532270688, -5.361612450524013, -11.208587636348833], [-8.063912702157825, -2.0409902256226036, -4.3291567458873885, -0.3432212247245161, -7.8128186257163765, -2.4510649885550952, -0.7547372513240935], [-3.204693019020301, -1.4340525324126152, -9.831231258438022, -2.7024626072716, -8.171601674772672, -2.917704896690864, -1.5521814157608294]], dtype=torch.float64),
    'old_logp': torch.tensor([[-4.567879601327176, -6.199835368494455, -7.847132125703636, -11.106486489060085, -5.257607005984037, -4.610757233254583, -9.117291956770915], [-2.4376926052438046, -1.3157765013697214, -3.2665551765620386, -3.609529749652206, -10.249431195701035, -8.105128665805244, -7.98121215941082], [-1.0509579282104946, -2.922350915794422, -3.418920023658791, -0.977149723453385, -0.27974241680928147, -11.527230030244606, -5.219857112107718], [-10.50454939361312, -7.366308660412747, -5.610424030309881, -9.720986497202379, -4.337185315138536, -6.134367916050966, -9.17924978171208], [-0.5207969312996394, -8.809246625887189, -10.209067566216332, -7.109841704966435, -8.271116164034652, -8.220300022636017, -1.1593074035587403], [-3.138205708605348, -5.199940220773128, -7.6767126999421595, -0.9293220103438031, -5.100089889576985, -11.134240350698263, -4.261585426623208]], dtype=torch.float64),
    'ref_logp': torch.tensor([[-8.94573777034131, -11.175627232348685, -9.338157812305434, -5.162123336087446, -8.719791178287014, -9.125558146374939, -2.317733262173594], [-8.637462870920556, -10.984227418265375, -2.5056727227657025, -7.4739478273802105, -8.871426989254015, -0.9800717358234321, -3.9152746036935913], [-0.7159686499981053, -9.007300779930194, -2.223463856662165, -3.4379782163978656, -4.800253786622065, -7.33866623526732, -8.482152520930248], [-1.0597085288375414, -7.697095856262425, -6.243322401289463, -1.8424944892804969, -7.3828276038185585, -3.5582591049174934, -6.713957248710335], [-5.849237459765758, -2.867872334353263, -9.582119847374692, -5.528319567698176, -11.326360430060266, -8.78091407203011, -1.9688923983371764], [-4.005647068599501, -5.0201060015774654, -9.459124857075121, -4.217100256022929, -9.02863362852704, -8.098123531468413, -0.4609214391468264]], dtype=torch.float64),
    'adv': torch.tensor([[7.864350895007307, 6.642658897087562, -1.3005675041155804, 6.713411065020278, 5.811833220612709, -1.3348069940195018, 1.7619746630496866], [-2.7222700645631086, -5.079658040604352, -7.990938929379256, -0.6916637153631697, -0.07200634378554938, 6.754857408245339, -1.075567214438271], [0.36755636447077045, 0.814042847508766, 0.6971474082509346, -5.443590238662413, 1.4800200808899238, 4.887872923939375, 0.5251331821146223], [-3.744326860302076, -1.4588402831294225, -4.100856865300182, -3.7724289736470453, 1.6013260895283974, 3.615244648461797, -2.9139710305943467], [-2.897519526229967, -3.12997511333219, 6.567527075574784, -3.9879945356301523, -2.8686541992675387, 2.4533882357087275, 1.2922997938342675], [-5.73026869895021, -4.224056113671578, -2.0472363600382195, 3.7461999242759862, -0.6380483035657338, -0.6070712576023638, -3.1372969205928936]], dtype=torch.float64),
    'values': torch.tensor([[-6.998778076302889, 7.514273492649972, -4.8514146253587285, -2.8677796404968223, 6.822195156428567, -4.364941545876015, 5.688704037815356], [-1.4792241092205192, -0.4254624687896573, -5.254890179012323, -5.396393190548068, -3.4000989231867393, -3.0564002894539026, 1.6569004826433797], [-0.6077348031290146, -2.6428303707019225, -4.375845846095315, 4.142945802698193, -4.6925198750019845, 7.134928388553245, -1.801280383049745], [-3.0180626719129204, -4.648965445038163, 2.7602901202826438, 0.1305099312438891, -5.497474558046493, 5.554339656118081, 6.633355593093729], [-7.426475053726705, -6.953988080855812, 4.137887490131623, -0.06608110623810681, 2.2437117053497015, 6.3183015097426, -0.9016705376857548], [-3.183723221844616, 3.8149372564158774, 4.812249521743054, -4.059333233023919, 3.812837502178919, 5.386804434764613, -3.6156952123215422]], dtype=torch.float64),
    'old_values': torch.tensor([[5.072622892728457, 3.239036510224471, -2.0707246305842286, -1.8625790128212873, 2.51717453969062, -4.79808299419879, -6.812181869570248], [-7.691437817625465, -7.903801038845778, 2.243405774198294, 2.2781969903141928, -1.5204355983272553, -4.064475789594223, 2.3204535024447637], [0.39179614923643236, -6.473999933923652, -4.924714015471688, -4.420769511131946, 0.4217605023936688, -2.3241664982880543, -1.3494104428807603], [-4.2399404295037915, -7.273195718144587, 0.3742435111481761, 1.7780262552049901, -3.6882972926619058, -0.7091786377641043, 5.62545545745925], [6.447955758905945, 5.835154210639979, -5.458794467937274, -1.1668996735919404, 5.406236352368687, -4.522614657932108, 7.2712879941742035], [3.2765027189074907, -4.393490558069399, -6.7109906658858325, 7.890204216291838, 5.631671243368627, 6.060692239842293, 3.8431402954626837]], dtype=torch.float64),
    'returns': torch.tensor([[-5.3158299462804095, -2.565780126842963, 7.770701729517825, 6.617939332137016, 2.3026018157800863, -1.1122240701465085, -7.1403736123328905], [-7.787221104112486, 5.30577216183165, -1.8377273199786206, 6.666024929011812, -1.3318465704422575, 3.312891002901093, 1.707649833805446], [-0.018620950104963896, -0.4085167993827401, -4.208572764843414, -6.9359740462892265, 2.542290476954191, -6.326092075814875, -0.21834787783132015], [-4.533346291174965, 1.1188635182344413, 5.845424464258015, 5.205089270425338, 2.2080572150939126, -4.318134456615649, 2.8105130472302733], [0.29561609387366516, -1.4959498466747032, 1.5573197348925198, 1.942805466892068, -6.976769642231092, -7.881830237942079, 1.9120044444778905], [4.340821248562261, 6.163516157409923, 3.715554465601347, 6.460731500960305, 4.561708135222396, 2.625748487718507, 3.7223342921056624]], dtype=torch.float64),
    'token_rewards': torch.tensor([[0.7635320036789164, -4.476122923758689, -7.496339520142801, 3.3256351679462206, -1.6096193915065253, -3.8265110292316287, -1.6900157753291634], [4.74035657795214, -3.3557932902019605, 0.26825062530804367, -4.5433212396929346, -4.566871381079521, -0.6984399818977121, 4.0571035255010095], [5.319119642436528, -2.7074961649315625, 6.980399066710769, 2.7727464166915823, 5.447693068999593, 0.6419064941630577, 2.2641212251394816], [-6.740077524257281, -3.27912157215753, -2.51798298099091, 4.555262488788305, -0.6692453248500403, 2.80796762075658, -7.032235444639607], [-1.1101934433454872, -7.9560288535198165, -7.700737379395942, -1.080885556679771, 1.0104700899199042, -7.419543718850873, 1.9569653823070592], [4.751163860504882, 7.698296067009391, -1.5981801241047435, 5.431150096946219, -7.668757918015567, 2.6001565751625577, -0.8097033282337271]], dtype=torch.float64),
    'adv_seq': torch.tensor([1.1365561618302582, -0.39170774587568075, -0.7448484159545777, -1.128081739387206, 0.3505692147999692, 0.7775125245872369], dtype=torch.float64),
    'rewards': torch.tensor([1.0516597890858543, 0.027711277751348563, -0.2088956731788394, 0.02352899972671388, 0.8578630188949247, 1.0987672881567685], dtype=torch.float64),
    'mask': torch.tensor([[False, False, False, False, False, False, False], [False, False, False, False, False, False, False], [False, False, False, False, False, False, False], [False, False, False, False, False, False, False], [False, False, False, False, False, False, False], [False, False, False, False, False, False, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([0, 0, 0, 0, 0, 0], dtype=torch.int64),
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

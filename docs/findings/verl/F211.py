# F211: verl 0.9.1 · verl.trainer.ppo.core_algos.get_policy_loss_fn('kl_cov')
# severity: wrong value
# what a user sees: summed over micro-batches with [8, 20] tokens the loss is 0.0495976, the full batch gives
# 0.049716
# source: probe:self; upstream: none found
# cases: defaults: micro-batches with ppo_loss's global counts, loss_agg_mode='token-mean': uneven micro-batches
# with ppo_loss's global counts, loss_agg_mode='token-mean': 2 data-parallel ranks (DDP gradient mean),
# kl_cov_ratio=0.1, loss_agg_mode='token-mean', ppo_kl_coef=1.0: uneven micro-batches with ppo_loss's global
# counts, kl_cov_ratio=0.1, loss_agg_mode='token-mean', ppo_kl_coef=1.0: 2 data-parallel ranks (DDP gradient
# mean), clip_ratio_c=10.0, clip_ratio_high=0.28, clip_ratio_low=0.2, loss_agg_mode='token-mean': uneven micro-
# batches with ppo_loss's global counts, clip_ratio_c=10.0, clip_ratio_high=0.28, clip_ratio_low=0.2,
# loss_agg_mode='token-mean': 2 data-parallel ranks (DDP gradient mean), clip_ratio_c=10.0,
# clip_ratio_high=0.28, clip_ratio_low=0.2, kl_cov_ratio=0.1, loss_agg_mode='token-mean', ppo_kl_coef=1.0:
# uneven micro-batches with ppo_loss's global counts, clip_ratio_c=10.0, clip_ratio_high=0.28,
# clip_ratio_low=0.2, kl_cov_ratio=0.1, loss_agg_mode='token-mean', ppo_kl_coef=1.0: 2 data-parallel ranks (DDP
# gradient mean), loss_agg_mode='token-sum': uneven micro-batches with ppo_loss's global counts,
# loss_agg_mode='token-sum': 2 data-parallel ranks (DDP gradient mean), kl_cov_ratio=0.1, loss_agg_mode='token-
# sum', ppo_kl_coef=1.0: uneven micro-batches with ppo_loss's global counts, kl_cov_ratio=0.1,
# loss_agg_mode='token-sum', ppo_kl_coef=1.0: 2 data-parallel ranks (DDP gradient mean), clip_ratio_c=10.0,
# clip_ratio_high=0.28, clip_ratio_low=0.2, loss_agg_mode='token-sum': uneven micro-batches with ppo_loss's
# global counts, clip_ratio_c=10.0, clip_ratio_high=0.28, clip_ratio_low=0.2, loss_agg_mode='token-sum': 2 data-
# parallel ranks (DDP gradient mean), clip_ratio_c=10.0, clip_ratio_high=0.28, clip_ratio_low=0.2,
# kl_cov_ratio=0.1, loss_agg_mode='token-sum', ppo_kl_coef=1.0: uneven micro-batches with ppo_loss's global
# counts, clip_ratio_c=10.0, clip_ratio_high=0.28, clip_ratio_low=0.2, kl_cov_ratio=0.1, loss_agg_mode='token-
# sum', ppo_kl_coef=1.0: 2 data-parallel ranks (DDP gradient mean), loss_agg_mode='seq-mean-token-sum': uneven
# micro-batches with ppo_loss's global counts, loss_agg_mode='seq-mean-token-sum': 2 data-parallel ranks (DDP
# gradient mean), kl_cov_ratio=0.1, loss_agg_mode='seq-mean-token-sum', ppo_kl_coef=1.0: uneven micro-batches
# with ppo_loss's global counts and 21 more
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# verl kl_cov with ActorConfig/PolicyLossConfig defaults (trainer counts)

import os
os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import warnings
warnings.filterwarnings('ignore')
import math
import numpy as np
import torch

from verl.trainer.ppo import core_algos as ca
from verl.workers.config import ActorConfig, PolicyLossConfig
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                  policy_loss=PolicyLossConfig(loss_mode='kl_cov'))

def run(b, full=None):
    full = b if full is None else full
    # what verl.workers.utils.losses.ppo_loss writes before calling the loss (the engine counts the mini-batch)
    cfg.global_batch_info.update(dp_size=1, batch_num_tokens=int(full["mask"].sum()),
                                 global_batch_size=int(full["mask"].shape[0]), loss_scale_factor=cfg.loss_scale_factor)
    loss, _ = ca.get_policy_loss_fn('kl_cov')(
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
    'logp': torch.tensor([[-0.38608266291193877, -1.0065864033733505, -2.750292151173991, -0.09939943590622347, -0.654470160170671, -2.4318748148618887, -1.6379792977511989], [-0.9503167713522229, -5.863432943931924, -3.9835921876779183, -2.019843518405474, -7.1292083917024165, -4.787507106248537, -1.5261616253972536], [-1.4574187941590095, -2.5344988901234817, -1.4353152343480682, -3.075413892218352, -0.6587751682183626, -1.5806491152571254, -11.235569233093818], [-0.9125818279742066, -1.8266951032067789, -0.5963938463155899, -2.5730491690475628, -4.794525508529939, -0.49895609236000515, -9.585869651469274], [-0.6779902858463449, 0.08273140508862242, -2.1556830552891877, -1.7904215526731804, -0.22074979140142165, -4.369599446911647, -7.902325070753577], [-3.0112211626232432, -0.31343077534271513, -0.5260917257967859, -0.47218477505517237, -0.6793958287183299, -4.9904424157581815, -9.433383595383413]], dtype=torch.float64),
    'old_logp': torch.tensor([[-0.13463257469723644, -0.486381949503495, -2.78822251773309, -0.25774069965488067, -0.43283315072792905, -2.8475689372107365, -1.8845565987493296], [-1.1385297150028835, -6.765509872542259, -10.651143580330375, -4.388130832096644, -2.209879935743113, -6.93636297333993, -0.025893338153801793], [-1.5615278247753235, -2.459372486110491, -1.669772043166578, -2.943695235927051, -0.6533029109236325, -1.683504570452422, -8.993585613817574], [-1.092160822428322, -1.7952061466496785, -0.7441386334193627, -2.4164979171465264, -2.5805725688361085, -10.671542583407678, -8.950876587787942], [-0.8675774329744279, -0.29519514331896507, -2.6930357093385844, -1.3183486415411145, -0.4856893348881775, -2.3830467536319127, -4.945501131499106], [-2.709221682130122, -0.6905873593846582, -0.14757032776341467, -0.642268414775597, -1.0699562275791368, -8.13960261603933, -0.584743900569296]], dtype=torch.float64),
    'ref_logp': torch.tensor([[-0.5273976199521262, -0.41316571709272487, -2.3339099785306936, 0.34932610909677864, -0.9662674835929835, -3.0200536389270543, -1.6734930707500562], [-0.664717919374917, -2.9672074874228307, -0.2543205808856377, -9.728290175760756, -1.4672380517071302, -11.687640493434657, -2.555804236741204], [-1.4453498979924218, -2.367008598200748, -1.6976672814394829, -3.0102016178372524, -1.0387778820855345, -1.829357270594852, -0.30279527865463063], [-1.1493282994881304, -2.2271153417011162, -0.3438057913339678, -2.25741829460165, -8.151149277322016, -10.594839254985661, -3.5501321297813675], [-1.3018708426070917, 0.10195636770019872, -1.922182255441431, -1.564629122708277, -0.679815626955437, -2.1688238428602897, -9.09543223985918], [-2.790389192227779, -0.795538669217279, -0.08998266157579753, -0.313822881755393, -1.063335950664961, -10.685664823824071, -8.346517551396783]], dtype=torch.float64),
    'adv': torch.tensor([[-1.1477559637019878, -1.1477559637019878, -1.1477559637019878, -1.1477559637019878, -1.1477559637019878, -1.1477559637019878, -1.1477559637019878], [0.4643862344835621, 5.556717343236398, -1.8004730097474457, -2.0403735772342078, 6.829316304815826, -1.6860494514564692, 4.8038237683204486], [0.683369729218426, 0.683369729218426, 0.683369729218426, 0.683369729218426, 0.683369729218426, 0.683369729218426, 1.874493109903483], [-0.8830858371721036, -0.8830858371721036, -0.8830858371721036, -0.8830858371721036, 7.387462635596444, -5.019019458541068, 0.3995216402672668], [1.0858014577255393, 1.0858014577255393, 1.0858014577255393, 1.0858014577255393, 1.0858014577255393, 0.0630928472759642, -2.0439058673985535], [-0.20271562055343573, -0.20271562055343573, -0.20271562055343573, -0.20271562055343573, -0.20271562055343573, 7.262201476401668, -2.9759325263767558]], dtype=torch.float64),
    'values': torch.tensor([[1.0169913501666112, -0.11167133066420938, -0.6982851765628781, -0.731558777725664, -0.4880439402887327, -1.1298291140131056, -0.5474435821203582], [-0.09256905150847415, 3.55897886372723, -0.8258513563954626, 2.151650553939165, -4.343039076313179, -7.658237517720336, 2.824091762733506], [0.5778638956158266, -0.6435606861455095, -0.7237765601247179, 2.0105975223757233, 0.756637954017235, 1.831439822737841, 7.4304887965439725], [-0.818083666605393, 0.38526930227745887, 0.4581670048370468, 0.5596122240618859, -6.153584465319948, -5.5889451052310015, -7.704367564004173], [-1.5024999410944402, -0.1654011831842485, -0.7476197010175331, 0.12608730560642875, -0.46754626006357575, 4.898125754356201, -1.8721650971834922], [0.30869236500853114, 0.31616814431588613, 0.09294668494996648, -0.4477978929622047, -0.16450126423277087, -2.808765282799067, 1.2000715157934128]], dtype=torch.float64),
    'old_values': torch.tensor([[1.0198140325350058, 0.004586909057560679, -0.9640148388824983, -0.5540029920446897, -0.6405831876588821, -1.2766855512671589, -0.5869321790927058], [-0.20524596905552728, 3.6474113471883687, 7.323020168264762, -4.511996727140277, 6.7200025987398675, -4.118394299565425, 0.3018516152178261], [0.3443578386269046, -0.6418852055100254, -1.0349658430657998, 2.368510833970185, 0.4517423219590394, 1.9271903636669547, 7.695482495504846], [-1.108085217373499, 0.44532460596111656, 0.6576014128701988, 0.653127281214257, -2.6903189413602284, 7.68800759633657, -0.8235374461449538], [-1.435214883479029, -0.19074349248103484, -0.6212585558144379, -0.06218952384104448, -0.3091936082887311, -7.336877607068981, 2.22471159635327], [0.381742156162925, 0.6547592546206149, 0.2852823272681138, -0.5509278584827381, -0.024889329833047064, -5.7556407697670995, 6.3286606905200955]], dtype=torch.float64),
    'returns': torch.tensor([[0.08952849321707658, -2.317218216900625, 0.19161476616248335, -1.029609188818006, -0.6973986134552436, -1.4743904107207184, -1.5165582181462036], [-0.9432644007214415, -6.592052994973274, -6.368075533920415, 0.8252849080330922, 7.275041961888014, 2.9836399599165926, -3.0456891657388567], [0.14991661602143025, 0.4456482631425715, -0.42861655475758254, 0.30222423421292294, 0.5725562476093207, -0.8634075676336961, 6.086289982813039], [-0.22125416534201214, -0.21106054027038276, -0.35266321385541605, 0.9872467528013661, -5.449221974289777, -3.556980555233041, 6.825201096682591], [0.9409311129269357, 0.7131564204233815, 1.0474862871297028, -0.38924397003268574, 0.7398063595133139, -5.11093549822381, 3.875895638430995], [-0.6198936689169603, 0.6077124939345443, 1.2623802917054945, 0.3689862863896283, -0.5634006961428569, 0.8444065511883405, -5.686208187856414]], dtype=torch.float64),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.07959134126817742], [0.9409850600959054, 3.990639376831103, 7.315078366108937, 5.0902513668607305, 7.057805128651852, 2.18143415852405, 3.7424132041228138], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0579914923472657, -0.5750941681963564], [0.0, 0.0, 0.0, 0.05423442548146441, -3.8228065998355625, -3.0937029348400884, -2.4691148338913873], [0.0, 0.0, 0.0, 0.0, 0.13222788582368147, -6.160198301455008, -6.73088513981833], [0.0, 0.0, 0.0, 0.0, 0.08118590596762011, -4.426164626985715, -0.32721549885777]], dtype=torch.float64),
    'adv_seq': torch.tensor([-1.1477559637019878, 0.4643862344835621, 0.683369729218426, -0.8830858371721036, 1.0858014577255393, -0.20271562055343573], dtype=torch.float64),
    'rewards': torch.tensor([0.07959134126817742, 0.9409850600959054, 1.0579914923472657, 0.05423442548146441, 0.13222788582368147, 0.08118590596762011], dtype=torch.float64),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, False, False, False, False, False, False], [True, True, True, True, True, True, False], [True, True, True, True, False, False, False], [True, True, True, True, True, False, False], [True, True, True, True, True, False, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 1, 6, 4, 5, 5], dtype=torch.int64),
}

v0, g0 = value_and_grad(b, b)
splits = [[0, 1], [2, 3, 4, 5]]
total, g = 0.0, torch.zeros_like(b["logp"])
for idx in splits:   # each part normalised with the whole batch's counts, as the trainer passes them
    vi, gi = value_and_grad(rows(b, idx), b)
    total += vi
    if gi is not None:
        g[idx] = gi
m = b["mask"]
print("full batch", v0, "sum over parts", total)
assert close(total, v0, 5.291502622129181e-10, 5.291502622129181e-12), "the parts do not add up to the full-batch loss"
assert g0 is None or close(g[m], g0[m], 5.291502622129181e-10, 5.291502622129181e-12), "the accumulated gradient differs from the full batch's"

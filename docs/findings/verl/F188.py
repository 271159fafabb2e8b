# F188: verl 0.9.1 · verl.trainer.ppo.core_algos.compute_policy_loss_bypass_mode
# severity: wrong value
# what a user sees: summed over micro-batches with [9, 17] tokens the loss is 0.298969, the full batch gives
# 0.298936
# source: probe:self; upstream: not searched
# cases: bypass_mode=True, loss_agg_mode='token-mean', loss_type='reinforce', rollout_is='token',
# rollout_is_batch_normalize=True, rollout_is_threshold=2.0: uneven micro-batches with ppo_loss's global counts,
# bypass_mode=True, loss_agg_mode='seq-mean-token-mean', loss_type='reinforce', rollout_is='token',
# rollout_is_batch_normalize=True, rollout_is_threshold=2.0: uneven micro-batches with ppo_loss's global counts,
# bypass_mode=True, loss_agg_mode='token-mean', loss_type='reinforce', rollout_is='token',
# rollout_is_batch_normalize=True, rollout_is_threshold='0.5_5.0': uneven micro-batches with ppo_loss's global
# counts, bypass_mode=True, loss_agg_mode='seq-mean-token-mean', loss_type='reinforce', rollout_is='token',
# rollout_is_batch_normalize=True, rollout_is_threshold='0.5_5.0': uneven micro-batches with ppo_loss's global
# counts, bypass_mode=True, loss_agg_mode='token-mean', loss_type='reinforce', rollout_is='sequence',
# rollout_is_batch_normalize=True, rollout_is_threshold=2.0: uneven micro-batches with ppo_loss's global counts,
# bypass_mode=True, loss_agg_mode='seq-mean-token-mean', loss_type='reinforce', rollout_is='sequence',
# rollout_is_batch_normalize=True, rollout_is_threshold=2.0: uneven micro-batches with ppo_loss's global counts,
# bypass_mode=True, loss_agg_mode='token-mean', loss_type='reinforce', rollout_is='sequence',
# rollout_is_batch_normalize=True, rollout_is_threshold='0.5_5.0': uneven micro-batches with ppo_loss's global
# counts, bypass_mode=True, loss_agg_mode='seq-mean-token-mean', loss_type='reinforce', rollout_is='sequence',
# rollout_is_batch_normalize=True, rollout_is_threshold='0.5_5.0': uneven micro-batches with ppo_loss's global
# counts
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# verl bypass_mode loss with RolloutCorrectionConfig(bypass_mode=True, loss_type='reinforce', rollout_is='token', rollout_is_batch_normalize=True, rollout_is_threshold=2.0), token-mean (trainer counts)

import os
os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import warnings
warnings.filterwarnings('ignore')
import math
import numpy as np
import torch

from verl.trainer.ppo import core_algos as ca
from verl.trainer.config import RolloutCorrectionConfig
from verl.workers.config import ActorConfig, PolicyLossConfig
rc = RolloutCorrectionConfig(bypass_mode=True, loss_type='reinforce', rollout_is='token', rollout_is_batch_normalize=True, rollout_is_threshold=2.0)
cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode='token-mean',
                  policy_loss=PolicyLossConfig(loss_mode="bypass_mode", rollout_correction=rc))

def run(b, full=None):
    full = b if full is None else full
    # what verl.workers.utils.losses.ppo_loss writes before calling the loss (the engine counts the mini-batch)
    cfg.global_batch_info.update(dp_size=1, batch_num_tokens=int(full["mask"].sum()),
                                 global_batch_size=int(full["mask"].shape[0]), loss_scale_factor=cfg.loss_scale_factor)
    # bypass mode: old_log_prob is the rollout policy's log-prob
    loss, _ = ca.get_policy_loss_fn("bypass_mode")(
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
    'logp': torch.tensor([[0.34021148268812773, -1.6687718348994582, -3.6255279237291997, -2.5492953760621275, 0.4376989584351859, -3.264278262228899, -1.923030970472989], [1.4109708125394316, -2.4634952996665733, -8.652024976150612, -8.505452959919342, -5.983016829864175, -3.63319718871006, -6.467789407842996], [0.595634323283365, -0.5345833568339333, -0.6011499975374847, -1.123344940675448, -4.204817852854209, -5.102057229885881, -3.9697494587143414], [0.31899872223930054, -2.1036735574184875, -4.269797166148317, -5.44628530711238, -1.7281038451310335, -0.979285080911944, -2.463062976339987], [-0.9947780194702096, -11.60985842577474, -9.01724691570502, -10.856779353584153, -3.8895846379080394, -5.180625437127536, -7.009461907521309], [0.5484854597735658, -0.7309601584441916, -5.637683232222249, -7.994636504094691, -4.29299912508531, -11.08792546536824, -11.192503346356093]], dtype=torch.float64),
    'old_logp': torch.tensor([[-0.5789096607334174, -1.0821732597580747, -0.7300966774402226, -2.027814941179715, -0.38948417726417006, -2.6941126524288075, -2.5814849427975313], [-0.05833974495052918, -1.6473251770704431, -1.2110642029254852, -10.218523405123161, -10.10309863364989, -6.765767756711371, -3.6514137935791724], [-2.7861742675733625, -0.8133747137953439, -0.604276121814387, -2.0280058984607754, -2.8425251748883342, -2.7722920825590665, -2.646737499774247], [-0.23984930297466361, -2.8132535685409445, -1.9652590887107024, -2.621089744299624, -1.2538904807651536, -0.6972003067995978, -2.3892617268393446], [-2.001821689425762, -11.113426621203038, -3.1203513540962002, -8.720794770009231, -7.77780781539415, -4.649452485739483, -9.34517121021358], [-0.4485091944023333, -1.8203253423123231, -5.929324876258438, -11.576626086470691, -9.152097360194098, -0.6737191101375841, -7.509944901527415]], dtype=torch.float64),
    'ref_logp': torch.tensor([[0.10382995272609086, -0.1871653121575898, -2.9982352916898973, -0.2682228913367355, -1.0477320630338987, -3.0427497764944302, -2.1707569756569924], [1.0661131031221343, -3.7970006671578327, -11.339838919956259, -9.020795079344428, -9.596479667254266, -1.2241077428090383, -4.340788284633605], [-3.7576020544764908, -0.5405102372630658, -1.6678518346433049, -2.5200251908582727, -3.0626687261718826, -2.699720743678272, -1.1157825017459206], [-0.2771929728472593, -3.2032054723996004, -1.157291254623545, 0.49383584646647627, -1.7680119940980683, 0.07210057228551348, -4.755219151856394], [0.01641911614462499, -10.707963505782399, -4.131298143638321, -0.44670164285670744, -2.526479897127542, -1.7313594377466517, -7.675255987281562], [-1.7490675408772445, -4.029728004231575, -3.942878228659798, -9.540259809991898, -3.483885971689032, -2.8495541515499894, -3.458734382705084]], dtype=torch.float64),
    'adv': torch.tensor([[-0.393073803082971, -0.393073803082971, -0.393073803082971, -0.393073803082971, -0.393073803082971, -0.393073803082971, -0.393073803082971], [-0.7437374145540124, -0.7437374145540124, -7.764117663417066, 1.6291424043947984, -3.9335227642232145, 3.1053087609468175, -5.810113474588697], [1.1368112176369833, 1.1368112176369833, 1.1368112176369833, 1.1368112176369833, 1.1368112176369833, 1.1368112176369833, 1.1368112176369833], [0.3928276721370563, 0.3928276721370563, 0.3928276721370563, 0.3928276721370563, 0.3928276721370563, 0.3928276721370563, 0.3928276721370563], [0.7439377067606485, -0.2834728094503767, -3.6943060620832746, -0.18032448769839426, 3.082411051523952, -2.844744100806091, -5.932868838422705], [-1.1367653788977048, -1.1367653788977048, -3.0276207818396887, -7.644349194550692, 1.7826931202217082, -4.187555049298716, 3.960952927929135]], dtype=torch.float64),
    'values': torch.tensor([[0.2564543633825082, -0.3892012882808216, 0.3055380126090034, 0.3815891796943671, -0.6808846602304767, 0.6223325081568306, -2.115356250145397], [-1.2890256932424962, -0.303917194932178, -3.3132695840954387, 7.561026914120717, -6.697972088899077, -0.07047275030197575, 6.482829622281628], [0.22452922152930568, 0.8282381650667704, 0.4044471425934395, -1.1423838707260114, -0.20256344361330747, 1.291327726787049, -1.1374854190104973], [0.06229687307586445, -0.38912384430306196, -0.8980107010202026, -1.0115281582833555, 0.10102117370567086, 0.31534976693696387, 0.30901883114977474], [-1.4460441686770453, -0.4364873396524551, 4.549046312672603, 2.562071849734844, 5.478953527059835, 0.04121243154931875, -7.893249287395278], [0.8239218610858424, -0.8152034083478001, 0.5907338743303576, 6.552430447189295, 5.53719250860998, 2.2781665169717016, 1.4928876733192222]], dtype=torch.float64),
    'old_values': torch.tensor([[0.03299527684213624, -0.8376219926695777, 0.18856803844518, 0.6856475253442054, -0.6898762023916983, 0.7039491685710061, -2.1694196662038183], [-1.3056714983293936, -0.05058762907735159, -5.093415680129581, 2.3699531654470665, -5.2941348206041745, -5.965209802904617, -7.3360759126951205], [0.2785259039176039, 0.8790630590018363, 0.2707879017486309, -0.912207998254992, -0.23597377405811476, 1.167433859590695, -1.4726445855395673], [-0.19078352293990825, -0.08403915114698318, -1.1260233802078459, -0.9256172097582769, 0.027591957088427876, 0.4176153177136604, 0.4294782661126827], [-1.6013011317923584, -5.414016180100576, -5.5619843904819355, -2.721383245176421, -2.115391879426042, -1.5704508927421994, -5.481473566374914], [1.0873422989220796, -0.707102413974303, 5.019786037883286, -5.578112425847781, 7.762345864777551, -3.866582663812439, -1.3160228426615639]], dtype=torch.float64),
    'returns': torch.tensor([[-0.2139533177684692, -0.011501966896377875, -0.8866276382303334, -0.2889486263777388, -0.5691503664761394, 1.5998316211323942, 0.3039744759553269], [-0.5719179697851055, 1.9294691056736495, -4.806005204682082, 7.093852275834118, -0.24023051285994157, -3.599130760450846, 7.682804315766729], [-0.12939496764165498, -0.34345434005173375, 0.7860743028178568, -2.3289226019721982, -0.51124226913659, 0.15194420911846823, -0.5811653801251481], [-1.8175910659663723, -0.24282878289673807, -0.7551668457034071, 0.8002674210882165, 1.397403761828035, 0.06938022345671874, -1.9341265882601102], [-0.19619139402225194, 5.578263221917734, 4.702245581296671, 7.565523009544259, -0.13705150219856854, 4.217132890524411, -6.523232038952509], [0.6965295405850271, -0.8602481953717586, 3.934204002904968, -3.556096792301945, -7.730708528493649, 1.8610892516345103, 4.137575070564152]], dtype=torch.float64),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1644362700905584], [0.0, -0.013137742257009144, 7.387324551258043, -7.784059062388753, -7.26337811619535, 7.923111459845014, -2.044969206851315], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9391611422266533], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8728102008126051], [1.058048312781641, -1.6458287781866225, -2.934933580671604, -1.0154240126651182, -1.8408835947614435, 0.40557156719451903, -6.694769506907042], [0.0, 0.06582976472683512, -6.044419741222393, 7.477003252337619, -5.534654228586163, 6.255518130788632, -3.179012599559254]], dtype=torch.float64),
    'adv_seq': torch.tensor([-0.393073803082971, -0.7437374145540124, 1.1368112176369833, 0.3928276721370563, 0.7439377067606485, -1.1367653788977048], dtype=torch.float64),
    'rewards': torch.tensor([0.1644362700905584, -0.013137742257009144, 0.9391611422266533, 0.8728102008126051, 1.058048312781641, 0.06582976472683512], dtype=torch.float64),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, True, False, False, False, False, False], [True, True, True, True, True, True, True], [True, True, True, True, True, True, True], [True, False, False, False, False, False, False], [True, True, False, False, False, False, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 2, 7, 7, 1, 2], dtype=torch.int64),
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
assert close(total, v0, 5.099019513592785e-10, 5.099019513592784e-12), "the parts do not add up to the full-batch loss"
assert g0 is None or close(g[m], g0[m], 5.099019513592785e-10, 5.099019513592784e-12), "the accumulated gradient differs from the full batch's"

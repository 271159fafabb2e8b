# F153: trl 1.16.0 · trl.trainer.grpo_trainer.GRPOTrainer._compute_loss
# severity: wrong value
# what a user sees: the loss is -0.0590638 where gspo(agg='seq-mean-token-mean', seq_denominator='all') gives
# 0.00557523
# source: probe:defaults; upstream: none found
# cases: GRPOConfig(importance_sampling_level='sequence', loss_type='grpo') | reference, GRPOConfig(beta=0.04,
# importance_sampling_level='sequence', loss_type='grpo', use_bias_correction_kl=True) | reference
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# trl trl.trainer.grpo_trainer.GRPOTrainer._compute_loss: GRPOConfig(importance_sampling_level='sequence', loss_type='grpo') | reference

import math
import numpy as np
import torch

def make_bare_trainer(**cfg):
    """GRPOTrainer without __init__: only what _compute_loss reads, copied from a real GRPOConfig."""
    import collections, torch
    from accelerate import Accelerator
    from trl import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer
    args = GRPOConfig(output_dir="/tmp/rlspec_trl_out", report_to=[], use_cpu=True, bf16=False, **cfg)
    t = GRPOTrainer.__new__(GRPOTrainer)
    t.args = args
    t.loss_type, t.importance_sampling_level, t.beta = args.loss_type, args.importance_sampling_level, args.beta
    t.epsilon_low = args.epsilon
    t.epsilon_high = args.epsilon_high if args.epsilon_high is not None else args.epsilon
    t.max_completion_length = args.max_completion_length
    t.top_entropy_quantile, t.off_policy_mask_threshold = args.top_entropy_quantile, args.off_policy_mask_threshold
    t.use_vllm, t.vllm_importance_sampling_correction = args.use_vllm, args.vllm_importance_sampling_correction
    t.entropy_coef, t.use_adaptive_entropy = args.entropy_coef, args.use_adaptive_entropy
    t._entropy_bonus_enabled = t.entropy_coef != 0.0 or t.use_adaptive_entropy
    t._entropy_window_stats, t._last_world_entropy = None, float("inf")
    t.aux_loss_enabled, t.router_aux_loss_coef = False, 0.0   # no MoE router in a bare instance
    t.current_gradient_accumulation_steps = args.gradient_accumulation_steps  # set by Trainer's loop in training
    t.model = torch.nn.Module().train()                       # only `.training` is read
    t.accelerator = Accelerator(cpu=True)
    t._metrics = {"train": collections.defaultdict(list), "eval": collections.defaultdict(list)}
    return t


def compute_loss(t, logp, old_logp, ref_logp, advantages, mask, num_items_in_batch, entropies=None, is_ratio=None):
    """Call TRL's GRPOTrainer._compute_loss with `logp` standing in for the model forward.
    `is_ratio`: the rollout-mismatch weight TRL's generation step would store as importance_sampling_ratio."""
    import torch
    ent = entropies if entropies is not None else torch.zeros_like(logp)
    t._get_per_token_logps_and_entropies = lambda *a, **k: (logp, ent, None)
    B, T = mask.shape
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": advantages, "num_items_in_batch": num_items_in_batch}
    if old_logp is not None:
        inputs["old_per_token_logps"] = old_logp
    if ref_logp is not None:
        inputs["ref_per_token_logps"] = ref_logp
    if is_ratio is not None:
        inputs["importance_sampling_ratio"] = is_ratio
    return t._compute_loss(t.model, inputs)


CFG = {'max_completion_length': 7, 'importance_sampling_level': 'sequence', 'loss_type': 'grpo'}
TRAINER = make_bare_trainer(**CFG)


def _call(b, n_micro, n_items):
    """One micro-batch of a step of n_micro micro-batches (the trainer sets these two attributes)."""
    TRAINER.current_gradient_accumulation_steps = n_micro
    TRAINER.args.steps_per_generation = n_micro
    mask = b["mask"].long()
    ref = b["ref_logp"] if TRAINER.beta != 0.0 else None
    return compute_loss(TRAINER, b["logp"], b["old_logp"], ref, b["adv_seq"], mask, n_items, None, None)


def run(b, full=None):
    """Alone: the batch as one step, num_items_in_batch = its token count (what the generation step stores).
    A micro-batch of `full` (split into equal row counts): num_items_in_batch spans the generation batch."""
    if full is None:
        return _call(b, 1, b["mask"].sum())
    return _call(b, full["mask"].shape[0] // b["mask"].shape[0], full["mask"].sum())

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
    'logp': torch.tensor([[-0.1929333691700892, -2.011741000579716, -2.1545514580342893, -1.2990850775533431, -1.8074837254824843, -1.5464796016253108, -3.1709592398585675], [-2.458104224594545, 0.13886390502096385, -2.965851055058196, -0.030540829096517397, -2.073524458521666, -9.041358463006862, -10.966052012077954], [-1.8458213713465312, -1.0650806512282516, -1.6478678748649518, 0.3882673332599244, -9.211827239801682, -6.848217430313989, -1.1261418411996749], [-1.3903442152290624, -0.7857404889480046, -5.714003558603947, -5.142475297715086, -5.084849315645368, -7.035604243089413, -1.4722879221128813], [-1.3826903141506366, 0.0980687191823838, -2.5745198945765293, -10.761614787165119, -6.999840563081712, -0.4826186508552084, -8.537841889413096], [-2.748872614317197, -9.911486666044791, -6.38592568169213, -9.75892914437031, -11.9641235168699, -4.206657736414657, -2.052257280248089]], dtype=torch.float64),
    'old_logp': torch.tensor([[-0.09875652480916083, -2.4491472056408035, -2.742628952969279, -1.8395755385131807, -2.2020148549027954, -1.6536937248229977, -2.808463650173916], [-2.4567679846585198, -0.05807857550193688, -2.5793426159333297, -0.14907744715111987, -2.202483566968335, -1.0321492327320314, -8.353853404090714], [-1.6473105997348207, -0.9341500770852852, -1.2969273025330925, -0.13354302987911576, -3.95874998992723, -11.324133182750254, -2.391580088153834], [-1.865386078869699, -1.1818487850725563, -1.960417093643474, -10.601024803602744, -9.470970579032116, -6.682025880647883, -2.6694407518963232], [-1.1973182007383563, -0.4485346898161131, -2.178390603572541, -8.601008166764737, -7.752540282796258, -7.336064211302414, -0.8845971914944504], [-2.8054283720709368, -6.892536577175183, -4.730241192346771, -11.90427874297734, -11.084944288502175, -1.8240948302704445, -7.079527111794368]], dtype=torch.float64),
    'ref_logp': torch.tensor([[0.2896111210231743, -2.675528943018783, -2.235896717236177, -1.9257918508557805, -1.7296923712494192, -1.7835294789777767, -3.0291086378765986], [-2.3818323731909197, 0.2513573499589048, -2.5310397429187264, -0.32473609438812084, -2.6048494811913354, -0.21469705076370316, -6.959642166769138], [-1.3503966897490793, -0.9834384548728724, -1.6192367600016229, 0.1283696159073962, -4.73591756485152, -2.7877377034263717, -8.98506870004722], [-2.5404284309420766, -1.0659379058026646, -0.9937029107579365, -4.232920988356861, -6.237996892010781, -5.120653724762892, -0.4874107424729428], [-1.424829126007879, -0.022240083122538223, -1.9605624668882116, -10.224627989553303, -9.865645908773281, -4.695525084937296, -5.601402238131161], [-2.7827502888480713, -8.16823590684255, -10.043324837148852, -9.091159029985485, -8.295257753287256, -10.955689272082537, -9.873685597135065]], dtype=torch.float64),
    'adv': torch.tensor([[0.4989807278847877, 0.4989807278847877, 0.4989807278847877, 0.4989807278847877, 0.4989807278847877, 0.4989807278847877, 0.4989807278847877], [0.6523192018186412, 0.6523192018186412, 0.6523192018186412, 0.6523192018186412, 0.6523192018186412, 5.291108248283695, -5.230181807672553], [-1.1512999297034285, -1.1512999297034285, -1.1512999297034285, -1.1512999297034285, 1.1929063854246351, 7.733355304854742, 5.392752507520061], [1.154410034637949, 1.154410034637949, 2.103864276185867, -2.298167257974857, 0.45251904091188777, -4.375993669082183, 4.440705982107286], [-0.5548542320810153, -0.5548542320810153, -0.5548542320810153, 2.750444855643048, 4.167785578644001, -6.242753822977457, 1.9990553866877363], [-0.5995558025569336, 1.8272229706872594, 3.1037526903439243, 1.3676733721699499, 3.7261772297394433, 0.32040411527436774, -0.5941150539316524]], dtype=torch.float64),
    'values': torch.tensor([[-2.3653039062769743, 1.228683719203421, 0.33962000824864264, 0.42377135285334727, 0.37122741773625884, 0.3827571602707609, 0.3194142202523809], [-0.35891330853862047, -1.9016352983759945, -0.10891472790742324, -0.8037318485206766, 1.0801634125378852, -5.501832297748923, 3.3859292620946793], [-0.8496059556101431, -0.5106224678981267, -0.011533061686586776, -1.4853751842635452, 1.014599578783839, 6.985057335588703, -1.7972126087089713], [-2.3982328653977714, 0.513052133880305, 6.315655950189894, -7.227750479969675, -4.828415506568282, 2.180538457591357, 4.621522490157407], [0.08661926298854213, -1.487072869675398, 1.6473390663560998, 0.09556214504293692, 5.048166506544183, -4.526925102845981, -6.797876882035462], [0.37094683509441023, -4.930925629835926, -6.921220472251687, 4.372233568660292, 5.139625697246759, -1.626631182428234, -3.2947782373074492]], dtype=torch.float64),
    'old_values': torch.tensor([[-2.4062084039569065, 1.02011169100652, 0.4622446355159586, 0.3837054125714336, 0.2838537526168025, 0.48672550646628915, 0.22409841214069814], [-0.08111731357095875, -1.8313442831385318, -0.2037813252743111, -1.1925848437177855, 0.8186127731576556, -3.148783797372076, 0.7319820643085855], [-0.90623096874605, -0.1819721450495873, -0.2680629105013665, -1.602506744231817, 7.772314163142706, -1.1516076952967733, 5.488235433439849], [-2.520916435120577, 0.19202225450328225, 7.0672984884781815, -3.810175746337004, -7.806377349244917, -0.2718653850592112, -5.076603877403553], [-0.0077433679596383, -1.211482679130894, 1.6744852131695267, 1.6619145238520439, 0.24256587044227373, 5.323485590083694, 2.437583451024338], [0.48411040446002884, 6.948576612125795, -0.9648088005514985, 4.376899652948785, 0.015007311815788071, -5.066300110317959, -3.2651704478493873]], dtype=torch.float64),
    'returns': torch.tensor([[-0.6486006079033346, 0.6780397271239971, -0.5000084331847482, 1.3604462024852575, 1.0023982728439578, -0.1523386358242358, -0.47221594277604334], [-1.0048010070276965, -0.6999665423133247, -1.473143074665625, 1.2043962915330844, 1.5907007871260619, -3.84721750177955, -5.563280594418977], [-1.768511857086917, -0.963854230732174, -3.1063368012832915, -1.1422789566319196, 4.479116335817306, 5.894898470675674, -2.9439202278361467], [-0.4889690638420449, 1.760667296993123, 3.558050782897979, -5.640440728554298, -3.506063017549497, 3.6912959337344446, 1.091077028682026], [0.2019100019601099, -0.03883503855807973, 1.066324553166257, -3.0958845195087648, -4.2980388375240715, 2.4122613562143727, -3.7650239708368716], [0.16324400572267767, -3.6696256695662672, 2.773754099602364, 1.090946270427711, 2.0553407660625336, 6.326668410109409, -5.280184776489396]], dtype=torch.float64),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0358671949170344], [0.0, 0.0, 0.0, 0.0, 1.1322457469766833, -3.4907502986443877, 6.829936971657464], [0.0, 0.0, 0.0, -0.0013914668524093734, 2.5644247188429556, -6.643856524415778, 1.3104412645550276], [0.0, 1.1041839759212821, 1.4165480310296417, -5.910831068247074, -6.660154817651536, -2.831140910306914, 6.840940951455403], [0.0, 0.0, 0.14022648267725224, 4.081889704962032, -0.23796518896575414, 3.3392361829181407, -2.9251315733251264], [0.11501656361496922, -3.7486709002146696, -7.901170739451549, 3.538652577869472, 2.825671411913273, 2.510423198810834, 2.9986400370132245]], dtype=torch.float64),
    'adv_seq': torch.tensor([0.4989807278847877, 0.6523192018186412, -1.1512999297034285, 1.154410034637949, -0.5548542320810153, -0.5995558025569336], dtype=torch.float64),
    'rewards': torch.tensor([1.0358671949170344, 1.1322457469766833, -0.0013914668524093734, 1.1041839759212821, 0.14022648267725224, 0.11501656361496922], dtype=torch.float64),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, True, True, True, True, False, False], [True, True, True, True, False, False, False], [True, True, False, False, False, False, False], [True, True, True, False, False, False, False], [True, False, False, False, False, False, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 5, 4, 2, 3, 1], dtype=torch.int64),
    'is_w': torch.tensor([[1.6725284220369663, 0.7305579061570289, 1.8384074447601026, 0.5131970475614096, 0.8656857579094013, 1.3417568103906965, 1.2567387608173093], [0.7379303248290352, 1.3539152080797747, 1.7472344872466847, 1.254926863064868, 1.9169989665734182, 1.0, 1.0], [1.997799688976973, 1.8374562595241097, 1.358741386589525, 0.7735345696354261, 1.0, 1.0, 1.0], [1.8786034738603683, 1.2112741727635719, 1.0, 1.0, 1.0, 1.0, 1.0], [0.8696480289567965, 0.98380594229427, 1.9641601667397686, 1.0, 1.0, 1.0, 1.0], [0.7342128161031858, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]], dtype=torch.float64),
    'is_w_seq': torch.tensor([[0.8748065458582421], [1.1324437353529335], [1.2534121036013652], [1.4883984117640694], [1.4449340489550608], [2.1449323151649438]], dtype=torch.float64),
    'ent': torch.tensor([[0.5195715957361278, 2.554457743888956, 2.667138882430229, 0.22655710668329287, 0.028171108863547012, 0.8782589184586055, 1.202234303284693], [2.911348220245521, 0.21422579116044838, 2.343915795684904, 1.4262748607631863, 0.3896205743194039, 1.0982409260119756, 1.142704221242732], [0.7307175009064375, 0.8830912725716393, 1.259756493607725, 2.886784184744263, 1.376581706944749, 2.8504050363369524, 0.0915962147506666], [0.19833077571965851, 0.08344771859180777, 1.997833914787063, 0.6606980733413855, 1.7292605438791455, 2.3860984068162736, 0.9954417559755112], [0.7370324781272604, 2.1762257614217244, 1.4276933798987113, 0.4476304381479018, 0.2623353524090659, 2.211502503418262, 2.5812370046367743], [2.671086234850539, 1.5302670224541108, 0.4603636990939415, 0.6769722368354341, 1.3605716670628052, 2.5555721208168407, 1.9505922565058063]], dtype=torch.float64),
}

v, g = value_and_grad(b)
m = b["mask"]
expected_loss = 0.005575232164867119   # gspo(agg='seq-mean-token-mean', seq_denominator='all'), computed from its equations
expected_grad = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.10574022096340141], dtype=torch.float64)   # its d loss / d logp at the valid tokens
print("loss", v, "expected", expected_loss)
assert close(v, expected_loss, 4.69041575982343e-10, 4.6904157598234294e-12), f"loss {v}, the expected objective gives {expected_loss}"
assert expected_grad is None or (g is not None and close(g[m], expected_grad, 4.69041575982343e-10, 4.6904157598234294e-12)), \
    f"gradient {None if g is None else g[m]}, expected {expected_grad}"

# F180: trl 1.16.0 · trl.trainer.grpo_trainer.GRPOTrainer._compute_loss
# severity: NaN
# what a user sees: the loss is inf on this input
# source: probe:input; upstream: none found
# cases: GRPOConfig(beta=0.04, loss_type='cispo', max_completion_length=7) | float32 log-ratio +100, advantage
# +1 | finite, GRPOConfig(beta=0.04, loss_type='cispo', max_completion_length=7) | float32 log-ratio +100,
# advantage -1 | finite, GRPOConfig(beta=0.04, loss_type='sapo', max_completion_length=7) | float32 log-ratio
# +100, advantage +1 | finite, GRPOConfig(beta=0.04, loss_type='sapo', max_completion_length=7) | float32 log-
# ratio +100, advantage -1 | finite, GRPOConfig(beta=0.04, loss_type='vespo', max_completion_length=7) | float32
# log-ratio +100, advantage +1 | finite, GRPOConfig(beta=0.04, loss_type='vespo', max_completion_length=7) |
# float32 log-ratio +100, advantage -1 | finite, GRPOConfig(beta=0.04, loss_type='bnpo',
# max_completion_length=7) | float32 log-ratio +100, advantage +1 | finite, GRPOConfig(beta=0.04,
# loss_type='bnpo', max_completion_length=7) | float32 log-ratio +100, advantage -1 | finite,
# GRPOConfig(beta=0.04, loss_type='dr_grpo', max_completion_length=7) | float32 log-ratio +100, advantage +1 |
# finite, GRPOConfig(beta=0.04, loss_type='dr_grpo', max_completion_length=7) | float32 log-ratio +100,
# advantage -1 | finite, GRPOConfig(beta=0.04, loss_type='luspo', max_completion_length=7) | float32 log-ratio
# +100, advantage +1 | finite, GRPOConfig(beta=0.04, loss_type='luspo', max_completion_length=7) | float32 log-
# ratio +100, advantage -1 | finite, GRPOConfig(beta=0.04, loss_type='grpo', max_completion_length=7) | float32
# log-ratio +100, advantage +1 | finite, GRPOConfig(beta=0.04, loss_type='grpo', max_completion_length=7) |
# float32 log-ratio +100, advantage -1 | finite, GRPOConfig(beta=0.04, loss_type='dapo',
# max_completion_length=7) | float32 log-ratio +100, advantage +1 | finite, GRPOConfig(beta=0.04,
# loss_type='dapo', max_completion_length=7) | float32 log-ratio +100, advantage -1 | finite
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# trl trl.trainer.grpo_trainer.GRPOTrainer._compute_loss: GRPOConfig(beta=0.04, loss_type='sapo', max_completion_length=7) | float32 log-ratio +100, advantage +1 | finite

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


CFG = {'loss_type': 'sapo', 'max_completion_length': 7, 'beta': 0.04}
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
    'logp': torch.tensor([[-1.7673779726028442, -0.32767948508262634, -1.3277244567871094, -1.4632012844085693, -0.5212298035621643, -2.2170026302337646, -0.38533246517181396], [98.7958755493164, -5.367310523986816, -8.133153915405273, -7.539899826049805, -9.676427841186523, -1.8410815000534058, -4.814405918121338], [-1.9632142782211304, -2.103837251663208, -10.027909278869629, -4.994852542877197, -2.952943801879883, -2.6695497035980225, -7.811032295227051], [-2.6805477142333984, -1.7762306928634644, -3.6470072269439697, -3.1019017696380615, -8.767276763916016, -7.109249591827393, -10.847563743591309], [-0.31801551580429077, -1.998475193977356, -3.890817642211914, -1.4789382219314575, -2.9105224609375, -7.255440711975098, -8.771956443786621], [-2.1803860664367676, -0.6952105164527893, -2.49816632270813, -1.9900740385055542, -2.0642566680908203, -2.4692234992980957, -9.110502243041992]], dtype=torch.float64).to(torch.float32),
    'old_logp': torch.tensor([[-1.7673779726028442, -0.32767948508262634, -1.3277244567871094, -1.4632012844085693, -0.5212298035621643, -2.2170026302337646, -0.38533246517181396], [-1.2041231393814087, -5.367310523986816, -8.133153915405273, -7.539899826049805, -9.676427841186523, -1.8410815000534058, -4.814405918121338], [-1.9632142782211304, -2.103837251663208, -10.027909278869629, -4.994852542877197, -2.952943801879883, -2.6695497035980225, -7.811032295227051], [-2.6805477142333984, -1.7762306928634644, -3.6470072269439697, -3.1019017696380615, -8.767276763916016, -7.109249591827393, -10.847563743591309], [-0.31801551580429077, -1.998475193977356, -3.890817642211914, -1.4789382219314575, -2.9105224609375, -7.255440711975098, -8.771956443786621], [-2.1803860664367676, -0.6952105164527893, -2.49816632270813, -1.9900740385055542, -2.0642566680908203, -2.4692234992980957, -9.110502243041992]], dtype=torch.float64).to(torch.float32),
    'ref_logp': torch.tensor([[-1.7673779726028442, -0.32767948508262634, -1.3277244567871094, -1.4632012844085693, -0.5212298035621643, -2.2170026302337646, -0.38533246517181396], [-1.2041231393814087, -5.367310523986816, -8.133153915405273, -7.539899826049805, -9.676427841186523, -1.8410815000534058, -4.814405918121338], [-1.9632142782211304, -2.103837251663208, -10.027909278869629, -4.994852542877197, -2.952943801879883, -2.6695497035980225, -7.811032295227051], [-2.6805477142333984, -1.7762306928634644, -3.6470072269439697, -3.1019017696380615, -8.767276763916016, -7.109249591827393, -10.847563743591309], [-0.31801551580429077, -1.998475193977356, -3.890817642211914, -1.4789382219314575, -2.9105224609375, -7.255440711975098, -8.771956443786621], [-2.1803860664367676, -0.6952105164527893, -2.49816632270813, -1.9900740385055542, -2.0642566680908203, -2.4692234992980957, -9.110502243041992]], dtype=torch.float64).to(torch.float32),
    'adv': torch.tensor([[0.5005971193313599, 0.5005971193313599, 0.5005971193313599, 0.5005971193313599, 0.5005971193313599, 0.5005971193313599, 0.5005971193313599], [0.6508387327194214, -5.634753227233887, -4.673760414123535, 3.4252047538757324, -1.6332597732543945, -2.5396997928619385, 7.591275691986084], [-1.1514358520507812, -1.1514358520507812, -5.514490604400635, -0.12216051667928696, 1.1858017444610596, -2.452366828918457, 1.4629493951797485], [0.6404649019241333, 0.6404649019241333, -4.125307559967041, 2.3217785358428955, -7.070462226867676, -6.963094234466553, -7.114330291748047], [0.5118435621261597, 0.5118435621261597, -2.06608247756958, -0.11487283557653427, -0.7856044769287109, -4.686861515045166, -7.267573833465576], [-1.152308464050293, -1.152308464050293, -1.152308464050293, -1.152308464050293, -1.152308464050293, -1.152308464050293, 3.2378525733947754]], dtype=torch.float64).to(torch.float32),
    'values': torch.tensor([[-0.4524678885936737, 0.4846648871898651, -0.7014955282211304, -0.9305889010429382, 0.48127448558807373, 2.46313214302063, -0.24613355100154877], [-0.5558657646179199, -7.177618980407715, -1.9240391254425049, -7.35443639755249, -2.0050432682037354, 4.849032402038574, 2.8718998432159424], [0.11591657996177673, 0.13865484297275543, 4.9819016456604, 1.7990353107452393, -3.157865524291992, 4.565309047698975, -7.375001907348633], [-0.8191201686859131, -0.33349665999412537, -7.265559196472168, -5.885622501373291, 0.025863878428936005, 3.3619463443756104, 1.4281302690505981], [1.6952075958251953, -2.090485095977783, 3.299316644668579, -2.425736665725708, -4.892507553100586, -7.963592052459717, -3.7966413497924805], [1.0393507480621338, 0.15510669350624084, 1.609662652015686, -0.2829742133617401, -0.14098191261291504, 0.7993512153625488, 2.377333402633667]], dtype=torch.float64).to(torch.float32),
    'old_values': torch.tensor([[-0.02028663456439972, 0.6885061860084534, -0.2663804590702057, -0.935906708240509, 0.4046567678451538, 2.496541738510132, -0.09921825677156448], [-0.6733513474464417, 7.677850723266602, -2.0889198780059814, 0.40312063694000244, -5.401007652282715, -6.266722679138184, 3.5222551822662354], [-0.07621026039123535, -0.003405039431527257, -6.182173252105713, 2.7044425010681152, 4.055271148681641, 7.054437637329102, -1.7615437507629395], [-0.49268534779548645, -0.2794913947582245, 3.292952537536621, 4.603522777557373, -6.148287296295166, -2.8037197589874268, -7.11619234085083], [1.8257428407669067, -2.0933492183685303, 6.988907337188721, 7.6853532791137695, -6.909534454345703, -1.569469690322876, 5.959020137786865], [1.0031592845916748, 0.16348084807395935, 1.5827527046203613, -0.3207346796989441, -0.3074709177017212, 0.7615244388580322, -5.644549369812012]], dtype=torch.float64).to(torch.float32),
    'returns': torch.tensor([[-0.15733209252357483, -1.1980559825897217, 1.120263695716858, 1.2699267864227295, -1.9510257244110107, 0.14491678774356842, -0.12636391818523407], [-1.0467156171798706, -6.937723159790039, 7.985630512237549, -5.051885604858398, -5.899083137512207, -0.3109588027000427, -7.936656475067139], [-1.23123300075531, 0.6156809329986572, -7.367291450500488, 7.456649303436279, 0.26783329248428345, 6.860009670257568, 6.353466033935547], [1.7437546253204346, 0.2083721160888672, 2.3003602027893066, -6.9592084884643555, -7.829251766204834, 5.510388374328613, -3.091146230697632], [0.12747642397880554, 0.5140453577041626, 4.545879364013672, 2.236464262008667, 7.56423282623291, -0.4036972224712372, 5.651176929473877], [0.6211963891983032, -1.1766430139541626, 1.7681126594543457, -0.12152750790119171, 0.03416326269507408, -0.9349762797355652, -0.9729509949684143]], dtype=torch.float64).to(torch.float32),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8922324776649475], [0.9807759523391724, 1.673797845840454, -7.073122501373291, 6.091595649719238, -0.42349979281425476, 2.985031843185425, -6.062908172607422], [0.0, -0.08137724548578262, 7.33429479598999, 3.3703482151031494, 0.4900858700275421, 2.452660083770752, -4.323041915893555], [0.0, 1.1504946947097778, -3.5274500846862793, -3.432374954223633, -5.35787296295166, -1.3423744440078735, -6.988264560699463], [0.0, 1.0657639503479004, 7.862753391265869, 3.632899045944214, -1.1563098430633545, -4.809845924377441, -6.055213928222656], [0.0, 0.0, 0.0, 0.0, 0.0, -0.030514443293213844, 5.594109535217285]], dtype=torch.float64).to(torch.float32),
    'adv_seq': torch.tensor([0.5005971193313599, 1.0, -1.1514358520507812, 0.6404649019241333, 0.5118435621261597, -1.152308464050293], dtype=torch.float64).to(torch.float32),
    'rewards': torch.tensor([0.8922324776649475, 0.9807759523391724, -0.08137724548578262, 1.1504946947097778, 1.0657639503479004, -0.030514443293213844], dtype=torch.float64).to(torch.float32),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, False, False, False, False, False, False], [True, True, False, False, False, False, False], [True, True, False, False, False, False, False], [True, True, False, False, False, False, False], [True, True, True, True, True, True, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 1, 2, 2, 2, 6], dtype=torch.int64),
    'is_w': torch.tensor([[1.1638420820236206, 1.4339873790740967, 0.8205559253692627, 1.6691229343414307, 0.5847370624542236, 1.4390250444412231, 0.8272156715393066], [1.4554098844528198, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.4965389966964722, 1.0993461608886719, 1.0, 1.0, 1.0, 1.0, 1.0], [2.077542304992676, 0.5280334949493408, 1.0, 1.0, 1.0, 1.0, 1.0], [0.6475988626480103, 1.074222207069397, 1.0, 1.0, 1.0, 1.0, 1.0], [0.7712522149085999, 0.5356414318084717, 1.2467155456542969, 1.8369033336639404, 2.3923449516296387, 1.5172902345657349, 1.0]], dtype=torch.float64).to(torch.float32),
    'is_w_seq': torch.tensor([[1.6947369575500488], [0.5336108803749084], [2.1360843181610107], [1.1448534727096558], [0.7036702036857605], [0.7985848784446716]], dtype=torch.float64).to(torch.float32),
    'ent': torch.tensor([[2.485902786254883, 2.7192792892456055, 0.5536408424377441, 2.994245767593384, 2.5809059143066406, 0.9881328344345093, 0.15336734056472778], [0.4537064731121063, 1.3092713356018066, 0.6165457367897034, 0.5458277463912964, 0.8181556463241577, 2.632913112640381, 0.1093468889594078], [2.767374277114868, 1.347782015800476, 2.213991403579712, 1.5358034372329712, 2.8361897468566895, 0.5438737869262695, 0.7658826112747192], [1.5245168209075928, 1.522834300994873, 0.9930789470672607, 0.9159459471702576, 0.2674170732498169, 1.506584882736206, 2.491825819015503], [2.6004533767700195, 1.2441047430038452, 2.9386985301971436, 2.9009156227111816, 0.9585283398628235, 0.3496376574039459, 2.507215738296509], [2.8221797943115234, 1.9474660158157349, 2.89316987991333, 1.4326133728027344, 1.571432113647461, 0.22227180004119873, 1.109944224357605]], dtype=torch.float64).to(torch.float32),
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

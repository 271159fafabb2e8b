# F161: trl 1.16.0 · rlspec entry `dapo`
# severity: NaN
# what a user sees: no log-ratio clamp: coef_1 = exp(logp − old_logp) overflows float32/bfloat16 at a log-ratio
# of 89 (exp overflows at 88.7); the token's true gradient is 0 (clipped) but the backward of the clip/min
# multiplies 0 by inf: NaN in dlogp, which poisons the whole step (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: dapo/bfloat16/log-ratio-89, dapo/float32/log-ratio-89
# needs: part 1: the framework alone; parts 2-3: rlspec too. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# --- 1. the implementation alone (runs with only the library installed) ---
# Needs only trl (checked with 1.16.0) and torch. Runs GRPOTrainer._compute_loss on a bare instance.
import torch
from numpy import nan, inf
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

DT = torch.bfloat16
t = make_bare_trainer(**{'beta': 0.0, 'max_completion_length': 6, 'loss_type': 'dapo', 'epsilon': 0.2, 'epsilon_high': 0.28})
mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
logp = torch.tensor([[-2.5, -3.5, -3.0, -3.5, -3.0, -3.5], [-2.0, -0.5, -91.5, -3.0, -1.0, -3.5], [-3.0, -2.5, -1.0, -3.5, -2.5, -4.8125], [-2.5, -2.5, -3.5, -92.0, -4.125, -2.375]], dtype=torch.float64).to(DT).requires_grad_(True)
entropies = None
old_logp = torch.tensor([[-2.5, -92.5, -2.5, -3.875, -92.0, -3.5625], [-2.0625, -1.0, -2.5, -3.0, -1.375, -2.5], [-92.0, -2.875, -1.375, -2.5, -2.125, -3.6875], [-2.5625, -3.0, -3.125, -3.0, -3.578125, -7.125]], dtype=torch.float64).to(DT)
ref_logp = None
adv = torch.tensor([[1.5, 1.5, 1.5, 1.5, 1.5, 1.5], [-0.75, -0.75, -0.75, -0.75, -0.75, -0.75], [2.0, 2.0, 2.0, 2.0, 2.0, 2.171875], [-1.25, -1.25, -1.25, -1.25, -0.6796875, -2.21875]], dtype=torch.float64).to(DT)
n_items = torch.tensor(21.0)
is_ratio = None  # importance_sampling_ratio (tis only)
loss = compute_loss(t, logp, old_logp, ref_logp, adv, mask, n_items, entropies, is_ratio)
loss.backward()
print('loss:', loss.item()); print('dlogp:', logp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case dapo/bfloat16/log-ratio-89
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('dapo')
config = spec.config(**{'agg': 'token-mean', 'seq_denominator': 'all', 'log_ratio_clamp': None})
inputs = {'logp': np.array([[-2.5, -3.5, -3.0, -3.5, -3.0, -3.5], [-2.0, -0.5, -91.5, -3.0, -1.0, -3.5], [-3.0, -2.5, -1.0, -3.5, -2.5, -4.8125], [-2.5, -2.5, -3.5, -92.0, -4.125, -2.375]], dtype=np.float32), 'old_logp': np.array([[-2.5, -92.5, -2.5, -3.875, -92.0, -3.5625], [-2.0625, -1.0, -2.5, -3.0, -1.375, -2.5], [-92.0, -2.875, -1.375, -2.5, -2.125, -3.6875], [-2.5625, -3.0, -3.125, -3.0, -3.578125, -7.125]], dtype=np.float32), 'ref_logp': np.array([[-2.875, -3.875, 86.0, -3.125, -3.5, -3.5625], [-3.0, -0.125, -90.5, -3.375, -1.375, -92.5], [-2.0, -2.875, -1.0, 85.5, -3.0, -2.90625], [-2.5625, -91.5, -3.875, -91.5, -6.15625, -4.15625]], dtype=np.float32), 'adv': np.array([[1.5, 1.5, 1.5, 1.5, 1.5, 1.5], [-0.75, -0.75, -0.75, -0.75, -0.75, -0.75], [2.0, 2.0, 2.0, 2.0, 2.0, 2.171875], [-1.25, -1.25, -1.25, -1.25, -0.6796875, -2.21875]], dtype=np.float32), 'mask': np.array([[True, True, True, True, True, True], [True, True, True, True, True, True], [True, True, True, True, True, False], [True, True, True, True, False, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('trl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

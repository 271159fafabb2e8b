# F170: trl 1.16.0 · rlspec entry `sapo`
# severity: NaN
# what a user sees: NaN/inf at padded positions (padding-nonfinite cases): GRPOTrainer._compute_loss multiplies
# by the mask ((per_token_loss * mask).sum(), entropies * mask), so 0·NaN makes the loss NaN; a NaN from one
# padded logit poisons the step (no upstream issue found)
# source: harness (xfail); upstream: none found
# cases: sapo/bfloat16/padding-nonfinite-empty-rows, sapo/float64/padding-nonfinite-empty-rows,
# sapo/float32/padding-nonfinite-empty-rows, sapo/bfloat16/padding-nonfinite, sapo/float64/padding-nonfinite,
# sapo/float32/padding-nonfinite
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
t = make_bare_trainer(**{'beta': 0.0, 'max_completion_length': 4, 'loss_type': 'sapo', 'sapo_temperature_pos': 1.0, 'sapo_temperature_neg': 1.05})
mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
logp = torch.tensor([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=torch.float64).to(DT).requires_grad_(True)
entropies = None
old_logp = torch.tensor([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=torch.float64).to(DT)
ref_logp = None
adv = torch.tensor([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=torch.float64).to(DT)
n_items = torch.tensor(9.0)
is_ratio = None  # importance_sampling_ratio (tis only)
loss = compute_loss(t, logp, old_logp, ref_logp, adv, mask, n_items, entropies, is_ratio)
loss.backward()
print('loss:', loss.item()); print('dlogp:', logp.grad)

# --- 2. the same case against the reference (needs rlspec) ---
# rlspec conformance case sapo/bfloat16/padding-nonfinite-empty-rows
import numpy as np
from numpy import nan, inf
from rlspec.reference import registry
from rlspec.conformance import adapters, harness
spec = registry.get('sapo')
config = spec.config(**{'agg': 'seq-mean-token-mean', 'seq_denominator': 'all', 'log_ratio_clamp': None})
inputs = {'logp': np.array([[-5.9375, -2.265625, -1.1484375, -0.1826171875], [inf, 1.0002555517425873e+30, 1.0002555517425873e+30, inf], [-2.375, -3.234375, nan, -inf], [nan, 1.0002555517425873e+30, -1.0002555517425873e+30, 1.0002555517425873e+30], [-3.078125, -1.7890625, -0.7109375, nan]], dtype=np.float32), 'old_logp': np.array([[-6.0625, -2.59375, -1.140625, -0.1982421875], [-inf, inf, -inf, 1.0002555517425873e+30], [-2.4375, -3.515625, nan, nan], [-inf, 1.0002555517425873e+30, nan, -1.0002555517425873e+30], [-2.875, -1.640625, -1.203125, -inf]], dtype=np.float32), 'ref_logp': np.array([[-6.21875, -2.046875, -1.7578125, -0.45703125], [-1.0002555517425873e+30, -inf, 1.0002555517425873e+30, 1.0002555517425873e+30], [-2.265625, -3.421875, -inf, inf], [1.0002555517425873e+30, nan, 1.0002555517425873e+30, -inf], [-3.203125, -2.296875, -0.205078125, nan]], dtype=np.float32), 'adv': np.array([[0.75390625, 0.75390625, 0.75390625, 0.75390625], [inf, nan, 1.0002555517425873e+30, 1.0002555517425873e+30], [0.349609375, 0.349609375, inf, -1.0002555517425873e+30], [inf, inf, -1.0002555517425873e+30, nan], [-0.80078125, -0.80078125, -0.80078125, inf]], dtype=np.float32), 'mask': np.array([[True, True, True, True], [False, False, False, False], [True, True, False, False], [False, False, False, False], [True, True, True, False]], dtype=np.bool), 'group': np.array([0, 0, 1, 1, 2], dtype=np.int64)}  # already rounded to bfloat16
ref = harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(inputs), config=config)))
got = harness.flatten(harness.name_outputs(spec, adapters.load('trl').run(spec, inputs, config, 'bfloat16')))
for k in ref:
    print(k, '\n  ref:', ref[k], '\n  got:', got.get(k))

# --- 3. the verdict (fails on the pinned version) ---
_m = inputs.get('mask')
_status, _abs, _rel, _out, _msg = harness.compare(ref, got, 'bfloat16', _m if isinstance(_m, np.ndarray) else None, harness.n_terms_of(inputs))
assert _status == 'pass', _msg

# F218: verl 0.9.1 · verl.trainer.ppo.core_algos.kl_penalty
# severity: wrong value
# what a user sees: on input log-ratio+89-f32 the KL loss is 0.643135 where kl_k3 gives 5.23215
# source: probe:input; upstream: none found
# cases: kl_loss_type='low_var_kl': log-ratio+89-f32, kl_loss_type='low_var_kl': log-ratio-89-f32,
# kl_loss_type='low_var_kl': log-ratio+100-f32, kl_loss_type='low_var_kl': log-ratio-100-f32,
# kl_loss_type='low_var_kl': log-ratio+89-bf16, kl_loss_type='low_var_kl': log-ratio-89-bf16,
# kl_loss_type='low_var_kl': log-ratio+100-bf16, kl_loss_type='low_var_kl': log-ratio-100-bf16,
# kl_loss_type='k3': log-ratio+89-f32, kl_loss_type='k3': log-ratio-89-f32, kl_loss_type='k3': log-
# ratio+100-f32, kl_loss_type='k3': log-ratio-100-f32, kl_loss_type='k3': log-ratio+89-bf16, kl_loss_type='k3':
# log-ratio-89-bf16, kl_loss_type='k3': log-ratio+100-bf16, kl_loss_type='k3': log-ratio-100-bf16,
# kl_loss_type='low_var_kl+': log-ratio+89-f32, kl_loss_type='low_var_kl+': log-ratio-89-f32,
# kl_loss_type='low_var_kl+': log-ratio+100-f32, kl_loss_type='low_var_kl+': log-ratio-100-f32 and 12 more
# needs: the framework, NumPy and torch. Run it with the pinned version installed: it ends in an assert of the correct
# behaviour and raises AssertionError while the finding stands.

# verl KL loss kl_loss_type='k3' on input log-ratio+89-bf16

import os
os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')
import warnings
warnings.filterwarnings('ignore')
import math
import numpy as np
import torch

from verl.trainer.ppo import core_algos as ca

def run(b, full=None):
    full = b if full is None else full
    info = {}
    # ppo_loss with use_kl_loss: agg_loss(kl_penalty(log_prob, ref_log_prob, kl_loss_type), ...)
    kld = ca.kl_penalty(logprob=b["logp"], ref_logprob=b["ref_logp"], kl_penalty='k3')
    loss = ca.agg_loss(loss_mat=kld, loss_mask=b["mask"], loss_agg_mode='token-mean', **info)
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
    'logp': torch.tensor([[89.0, -0.1982421875, -1.0234375, -2.640625, -2.859375, -1.625, -2.359375], [-1.0234375, -2.46875, -2.453125, -0.263671875, -2.890625, -1.0625, -10.6875], [-1.5859375, -1.8828125, -0.98828125, -9.5625, -2.765625, -9.75, -9.0625], [-0.302734375, -2.21875, -1.4609375, -0.91796875, -2.90625, -2.953125, -2.703125], [-2.890625, -0.302734375, -1.046875, -0.474609375, -1.453125, -2.8125, -3.75], [-2.828125, -2.03125, -0.44140625, -2.90625, -1.9765625, -1.703125, -8.125]], dtype=torch.float64),
    'old_logp': torch.tensor([[-0.14453125, -0.1982421875, -1.0234375, -2.640625, -2.859375, -1.625, -2.359375], [-1.0234375, -2.46875, -2.453125, -0.263671875, -2.890625, -1.0625, -10.6875], [-1.5859375, -1.8828125, -0.98828125, -9.5625, -2.765625, -9.75, -9.0625], [-0.302734375, -2.21875, -1.4609375, -0.91796875, -2.90625, -2.953125, -2.703125], [-2.890625, -0.302734375, -1.046875, -0.474609375, -1.453125, -2.8125, -3.75], [-2.828125, -2.03125, -0.44140625, -2.90625, -1.9765625, -1.703125, -8.125]], dtype=torch.float64),
    'ref_logp': torch.tensor([[-0.171875, 0.1181640625, -1.0078125, -3.109375, -2.84375, -1.5625, -1.8984375], [-90.0, -2.796875, -2.078125, -0.1630859375, -2.5625, -1.0390625, -11.3125], [-1.53125, -1.875, -1.0, -7.96875, -9.0625, -7.3125, -7.46875], [0.30078125, -3.03125, -1.796875, -1.578125, -2.84375, -3.140625, -3.234375], [-2.65625, -0.67578125, -0.384765625, -0.322265625, -1.2578125, -2.890625, -3.9375], [-2.75, -2.4375, -0.5703125, -3.1875, -2.078125, -1.875, -3.25]], dtype=torch.float64),
    'adv': torch.tensor([[-0.66796875, -0.66796875, -0.66796875, -0.66796875, -0.66796875, -0.66796875, -0.66796875], [-0.482421875, -0.482421875, -0.482421875, -0.482421875, -0.482421875, -0.482421875, 5.46875], [1.1484375, 1.1484375, -5.40625, -7.5625, -4.5, 2.171875, 7.1875], [0.609375, 0.609375, 0.609375, 0.609375, 0.609375, 0.609375, 0.609375], [-1.15625, -1.15625, -1.15625, -1.15625, -1.15625, -1.15625, 4.5625], [0.54296875, 0.54296875, 0.54296875, 0.54296875, 0.54296875, 0.54296875, -1.3671875]], dtype=torch.float64),
    'values': torch.tensor([[-0.953125, 0.3125, 0.2890625, 0.2177734375, 1.1015625, 0.98046875, -0.5859375], [-1.875, -1.390625, 0.6796875, -0.54296875, 0.50390625, -1.6953125, 7.125], [-0.462890625, -0.408203125, -5.78125, -2.984375, -3.78125, 7.125, 2.984375], [0.98828125, 0.6953125, -0.734375, -1.015625, 0.6875, 0.9375, 2.234375], [0.53125, -0.43359375, 0.002960205078125, 1.171875, -0.1484375, 0.146484375, -3.421875], [-1.484375, 2.453125, -0.40625, -0.34765625, -0.5859375, 0.158203125, -7.75]], dtype=torch.float64),
    'old_values': torch.tensor([[-1.140625, 0.1845703125, 0.2109375, 0.458984375, 1.15625, 1.0, -0.5234375], [-1.6328125, -1.2109375, 0.76953125, -0.71875, 0.298828125, -1.53125, 1.609375], [-0.06689453125, -0.451171875, -7.3125, 1.234375, -3.703125, -7.28125, 0.275390625], [1.0078125, 0.4375, -0.8359375, -1.0390625, 0.9375, 1.0625, 2.109375], [0.76171875, -0.291015625, -0.16796875, 1.4140625, -0.546875, 0.154296875, 3.296875], [-1.6796875, 2.4375, -0.08837890625, -0.345703125, -0.515625, 0.26953125, 5.53125]], dtype=torch.float64),
    'returns': torch.tensor([[-1.0, -1.296875, 1.9140625, 0.267578125, -1.1875, 0.034423828125, 1.046875], [-0.0419921875, 1.1328125, -0.72265625, 0.1943359375, -2.234375, -0.31640625, -0.380859375], [1.7578125, 0.671875, -2.234375, 1.421875, 4.25, 5.1875, -1.4609375], [-0.46484375, -0.423828125, 1.8203125, -0.96875, -0.70703125, -1.15625, 0.63671875], [-0.53125, -1.0390625, 1.9375, 0.1337890625, 0.40625, 0.953125, -7.78125], [-0.0537109375, -0.0279541015625, 0.263671875, 0.1982421875, -0.890625, 0.4765625, 7.875]], dtype=torch.float64),
    'token_rewards': torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2021484375], [0.0, 0.0, 0.0, 0.0, 0.0, -0.09814453125, -1.015625], [0.0, 0.8203125, 0.91796875, -7.0, -1.875, -6.5, -6.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0546875], [0.0, 0.0, 0.0, 0.0, 0.0, -0.057861328125, 3.875], [0.0, 0.0, 0.0, 0.0, 0.0, 1.015625, 7.15625]], dtype=torch.float64),
    'adv_seq': torch.tensor([-0.66796875, -0.482421875, 1.1484375, 0.609375, -1.15625, 0.54296875], dtype=torch.float64),
    'rewards': torch.tensor([-0.2021484375, -0.09814453125, 0.8203125, 1.0546875, -0.057861328125, 1.015625], dtype=torch.float64),
    'mask': torch.tensor([[True, True, True, True, True, True, True], [True, True, True, True, True, True, False], [True, True, False, False, False, False, False], [True, True, True, True, True, True, True], [True, True, True, True, True, True, False], [True, True, True, True, True, True, False]]),
    'group': torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.int64),
    'lengths': torch.tensor([7, 6, 2, 7, 6, 6], dtype=torch.int64),
}

v, g = value_and_grad(b)
m = b["mask"]
expected_loss = 5.235589233268304   # kl_k3, computed from its equations
expected_grad = torch.tensor([0.029411764705882353, -0.010946693929970748, -0.0004631678996084043, 0.011006352658688497, -0.0004631678996084043, -0.0018968958505252774, -0.017222345608801985, 0.029411764705882353, 0.008227265295428242, -0.013382100429947098, -0.003112313791549362, -0.011422426669312553, -0.0006974799000693504, -0.0016532499210862345, -0.0002306793296014111, -0.02436870471625465, 0.016360373232909415, 0.00839212437776623, 0.014212629918247743, -0.0018968958505252774, 0.005028555347635284, 0.012121480202283926, -0.007768189639807834, 0.009157854340654569, -0.027614054247172958, -0.004840014273594682, -0.006343847956486689, 0.002210329023052799, -0.002389935513207047, 0.009819305567544477, 0.0035571654935984604, 0.007210599941499784, 0.002840449601968038, 0.00464457567225346], dtype=torch.float64)   # its d loss / d logp at the valid tokens
print("loss", v, "expected", expected_loss)
assert close(v, expected_loss, 5.830951894845301e-10, 5.830951894845301e-12), f"loss {v}, the expected objective gives {expected_loss}"
assert expected_grad is None or (g is not None and close(g[m], expected_grad, 5.830951894845301e-10, 5.830951894845301e-12)), \
    f"gradient {None if g is None else g[m]}, expected {expected_grad}"

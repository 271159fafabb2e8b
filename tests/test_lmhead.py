"""The fused chunked LM head (rlspec.optimized.lmhead) against the materialized-logits path: values and gradients
w.r.t. hidden states, weight and bias, with entropy, temperature, padding and any registered policy loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlspec import optimized
from rlspec.optimized.lmhead import fused_logprobs, fused_policy_loss
from rlspec.reference._validate import RLSpecValueError


def materialized(hidden, weight, ids, bias, temperature, mask):
    """The plain path: full logits, log_softmax, gather (the baseline everyone writes)."""
    z = hidden @ weight.T
    if bias is not None:
        z = z + bias
    lp = torch.log_softmax(z / temperature, dim=-1)
    logp = lp.gather(-1, ids.clamp(0, weight.shape[0] - 1).unsqueeze(-1)).squeeze(-1)
    ent = -(lp.exp() * lp).sum(-1)
    return torch.where(mask, logp, torch.zeros_like(logp)), torch.where(mask, ent, torch.zeros_like(ent))


def problem(seed, B=3, T=5, H=6, V=11, dtype=torch.float64, bias=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g, dtype=dtype)
    weight = torch.randn(V, H, generator=g, dtype=dtype)
    b = torch.randn(V, generator=g, dtype=dtype) if bias else None
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) < 0.8
    ids = torch.where(mask, ids, torch.full_like(ids, -100))  # padding ids as trainers have them
    return hidden, weight, b, ids, mask


def grads(out, *xs):
    return torch.autograd.grad(out, [x for x in xs if x is not None], allow_unused=True)


@given(seed=st.integers(0, 10_000), tau=st.sampled_from([1.0, 0.7, 1.3]), chunk=st.sampled_from([1, 2, 7, None]),
       tile=st.sampled_from([1, 3, 4, None]), bias=st.booleans())
@settings(max_examples=30)
def test_logprobs_entropy_and_gradients_match_materialized(seed, tau, chunk, tile, bias):
    """float64: log-probs, entropy and the gradients of an arbitrary weighting of both w.r.t. hidden, weight and bias
    equal the materialized path for every chunk / vocabulary-tile size (tiles of 1 exercise the online log-sum-exp)."""
    hidden, weight, b, ids, mask = problem(seed, bias=bias)
    params = [x.requires_grad_(True) for x in (hidden, weight, b) if x is not None]
    w1, w2 = torch.randn(mask.shape, dtype=torch.float64), torch.randn(mask.shape, dtype=torch.float64)
    lp, ent = fused_logprobs(hidden, weight, ids, bias=b, temperature=tau, mask=mask, entropy=True, chunk=chunk,
                             tile=tile)
    lp0, ent0 = materialized(hidden, weight, ids, b, tau, mask)
    torch.testing.assert_close(lp, lp0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ent, ent0, rtol=1e-12, atol=1e-12)
    got = grads((w1 * lp).sum() + (w2 * ent).sum(), *params)
    want = grads((w1 * lp0).sum() + (w2 * ent0).sum(), *params)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("name", ["ppo", "gspo", "sapo", "cispo", "dapo"])
def test_any_registered_loss_through_the_fused_head(name):
    """fused_policy_loss gives the registered loss and its gradients w.r.t. hidden states and LM-head weight, as
    the loss on materialized log-probs does (sequence-coupled GSPO included)."""
    hidden, weight, b, ids, mask = problem(3, B=4, T=6, H=5, V=9)
    hidden.requires_grad_(True)
    weight.requires_grad_(True)
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(mask.shape, generator=g, dtype=torch.float64) * 2
    adv = torch.randn(4, 1, generator=g, dtype=torch.float64).expand(4, 6).contiguous()
    loss = fused_policy_loss(name, hidden, weight, ids, mask, bias=b, old_logp=old, adv=adv)
    lp0, _ = materialized(hidden, weight, ids, b, 1.0, mask)
    loss0 = optimized.get(name)(logp=lp0, old_logp=old, adv=adv, mask=mask)
    torch.testing.assert_close(loss, loss0, rtol=1e-12, atol=1e-14)
    for a, e in zip(grads(loss, hidden, weight), grads(loss0, hidden, weight)):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_float32_and_bf16_within_tolerance():
    """float32 follows float64 to ~1e-5; bf16 inputs keep their statistics in float32 (≈1e-2 from the float64 path
    evaluated on the same bf16-rounded inputs)."""
    hidden, weight, b, ids, mask = problem(5, B=4, T=8, H=16, V=50)
    ref, _ = fused_logprobs(hidden, weight, ids, bias=b, mask=mask)
    lp32, _ = fused_logprobs(hidden.float(), weight.float(), ids, bias=b.float(), mask=mask)
    torch.testing.assert_close(lp32.double(), ref, rtol=1e-5, atol=1e-5)
    hb, wb, bb = hidden.bfloat16(), weight.bfloat16(), b.bfloat16()
    lp16, _ = fused_logprobs(hb, wb, ids, bias=bb, mask=mask)
    ref16, _ = fused_logprobs(hb.double(), wb.double(), ids, bias=bb.double(), mask=mask)
    assert lp16.dtype == torch.float32
    torch.testing.assert_close(lp16.double(), ref16, rtol=2e-2, atol=2e-2)


def test_padding_is_never_read_and_bad_input_raises():
    """Masked positions: any id (even out of range) and any hidden values (NaN) give log-prob 0 and no gradient;
    an empty mask gives zeros; an out-of-range id at a valid position, a wrong weight shape or τ ≤ 0 raise."""
    hidden, weight, b, ids, mask = problem(7)
    hidden = hidden.clone()
    hidden[~mask] = float("nan")
    hidden.requires_grad_(True)
    lp, _ = fused_logprobs(hidden, weight, ids, bias=b, mask=mask)
    assert torch.isfinite(lp).all() and (lp[~mask] == 0).all()
    (dh,) = grads(lp.sum(), hidden)
    assert (dh[~mask] == 0).all() and torch.isfinite(dh).all()
    empty, _ = fused_logprobs(hidden, weight, ids, mask=torch.zeros_like(mask))
    assert (empty == 0).all()
    bad = ids.clone()
    bad[mask.nonzero()[0].tolist()[0], mask.nonzero()[0].tolist()[1]] = weight.shape[0]
    with pytest.raises(RLSpecValueError, match="ids"):
        fused_logprobs(hidden, weight, bad, mask=mask)
    with pytest.raises(RLSpecValueError, match="weight"):
        fused_logprobs(hidden, weight[:, :-1], ids, mask=mask)
    with pytest.raises(RLSpecValueError, match="temperature"):
        fused_logprobs(hidden, weight, ids, mask=mask, temperature=0.0)


def test_a_training_step_through_a_real_lm_head():
    """One optimizer step of a tiny LM head trained with PPO through the fused path equals the same step through
    materialized logits (parameters after the step agree to float64 rounding)."""
    torch.manual_seed(0)
    B, T, H, V = 3, 4, 8, 13
    heads = [torch.nn.Linear(H, V, dtype=torch.float64) for _ in range(2)]
    heads[1].load_state_dict(heads[0].state_dict())
    hidden = torch.randn(B, T, H, dtype=torch.float64)
    ids = torch.randint(0, V, (B, T))
    mask = torch.ones(B, T, dtype=torch.bool)
    old = -torch.rand(B, T, dtype=torch.float64)
    adv = torch.randn(B, T, dtype=torch.float64)
    opts = [torch.optim.SGD(h.parameters(), lr=0.1) for h in heads]
    fused_policy_loss("ppo", hidden, heads[0].weight, ids, mask, bias=heads[0].bias, old_logp=old, adv=adv).backward()
    lp = torch.log_softmax(heads[1](hidden), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    optimized.get("ppo")(logp=lp, old_logp=old, adv=adv, mask=mask).backward()
    for o in opts:
        o.step()
    for p0, p1 in zip(heads[0].parameters(), heads[1].parameters()):
        np.testing.assert_allclose(p0.detach().numpy(), p1.detach().numpy(), rtol=1e-12, atol=1e-14)

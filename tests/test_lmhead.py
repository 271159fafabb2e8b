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


# --------------------------------------------------------------------------------------------- the one-pass head
from rlspec.conformance.adapters.optimized_adapter import to_torch  # noqa: E402
from rlspec.conformance.harness import random_inputs  # noqa: E402
from rlspec.optimized import lmhead  # noqa: E402
from rlspec.reference import aggregation as ref_aggregation  # noqa: E402
from rlspec.reference import registry  # noqa: E402

POLICY_LOSSES = [s.name for s in registry.specs(kind="policy_loss")
                 if s.status != "planned" and s.name in optimized.names()]


def _draw(name, seed, dtype=torch.float64, generator="random"):
    """The entry's inputs as torch tensors: its kind's random batch (``random``) or its own ``make_inputs``."""
    spec = registry.get(name)
    rng = np.random.default_rng(seed)
    raw = spec.make_inputs(rng) if generator == "make" else random_inputs(spec, rng)
    raw.pop("config", None)
    return {k: to_torch(v, dtype, "cpu") for k, v in raw.items()}


def _full_and_chunked(name, inputs, cfg):
    """(loss, dlogp) on the whole batch, and the same summed over one-unit chunks (a row, or a prompt's rows)
    with :func:`lmhead.chunk_config`'s normalizer."""
    fn = optimized.get(name)
    mask = inputs["mask"]
    B = mask.shape[0]
    lp = inputs["logp"].detach().clone().requires_grad_(True)
    rest = {k: v for k, v in inputs.items() if k not in ("logp", "mask")}
    full = fn(logp=lp, mask=mask, config=cfg, **rest)
    (g_full,) = torch.autograd.grad(full, lp)
    fixed = lmhead.chunk_config(name, cfg, mask, rest)
    total, g_chunks = 0.0, torch.zeros_like(lp)
    for rows in lmhead._row_units(B, rest.get("group")):
        lpc = lp.detach().index_select(0, rows).requires_grad_(True)
        lc = fn(logp=lpc, mask=mask.index_select(0, rows), config=fixed, **lmhead.chunk_inputs(rest, rows, B))
        (gc,) = torch.autograd.grad(lc, lpc)
        total += float(lc.detach())
        g_chunks[rows] = gc
    return (float(full), g_full), (total, g_chunks)


def _agrees(a, b):
    (la, ga), (lb, gb) = a, b
    return abs(la - lb) <= 1e-10 * (1 + abs(la)) and torch.allclose(ga, gb, rtol=1e-9, atol=1e-12)


def _draws(name, seeds):
    """(generator, seed, inputs) for every seed and input generator, each also with every optional input left out
    in turn (a user may omit any of them: GBPO without prompt ids takes the median of the whole batch)."""
    import inspect

    spec = registry.get(name)
    params = inspect.signature(optimized.get(name)).parameters
    optional = {k for k, p in params.items() if p.default is not inspect.Parameter.empty} - {"config"}
    gens = ["random"] + (["make"] if spec.make_inputs is not None else [])
    out = []
    for seed in seeds:
        for g in gens:
            inputs = _draw(name, seed, generator=g)
            out.append((g, seed, inputs))
            out += [(f"{g}-{k}", seed, {j: v for j, v in inputs.items() if j != k})
                    for k in sorted(optional & set(inputs))]
    return out


def _classify(name, draws):
    """(agreeing, differing) (generator, seed, agg) triples of the chunked vs full-batch comparison."""
    spec = registry.get(name)
    agree, differ = [], []
    for gen_name, seed, inputs in draws:
        for agg in ref_aggregation.MODES:
            if agg == "group-token-mean" and inputs.get("group") is None:
                continue
            try:
                cfg = spec.config(agg=agg)
            except ValueError:
                continue
            if not hasattr(cfg, "normalizer"):
                continue
            try:
                a, b = _full_and_chunked(name, inputs, cfg)
            except RLSpecValueError:  # an input left out that another needs: not a batch the loss takes
                continue
            (agree if _agrees(a, b) else differ).append((gen_name, seed, agg, a[0], b[0]))
    return agree, differ


@pytest.mark.parametrize("name", POLICY_LOSSES)
def test_row_local_classification_is_exact(name):
    """Every optimized policy loss is classified, and the classification is right: a ROW_LOCAL loss summed over
    chunks of whole rows (whole prompts) with chunk_config's normalizer equals the full-batch loss and gradient in
    every aggregation mode on fresh draws of both input generators (what makes the one-pass head exact; with the
    inputs ROW_LOCAL_WHEN requires, where it names some); a loss left out differs on some draw or has no
    normalizer, so its second pass is needed (the reason is recorded in NOT_ROW_LOCAL)."""
    assert (name in lmhead.ROW_LOCAL) != (name in lmhead.NOT_ROW_LOCAL), f"{name}: classify it in lmhead"
    fresh = [int(x) for x in np.random.SeedSequence().generate_state(3)]  # "always agrees": fresh draws
    fixed = list(range(8))  # "differs on some batch" is an existence claim: fixed draws show it every run
    draws = _draws(name, fresh if name in lmhead.ROW_LOCAL else fixed)
    when = lmhead.ROW_LOCAL_WHEN.get(name)
    if name in lmhead.ROW_LOCAL:
        ok = [d for d in draws if when is None or when[1](d[2])]
        if when is not None and not ok:  # give the draws what the condition needs (HAPO: the batch's own stats)
            ok = [(g, s, _with_required(name, inp)) for g, s, inp in draws]
        agree, differ = _classify(name, ok)
        assert agree and not differ, f"{name}: chunked differs from full: {differ[:3]}"
        if when is not None:  # and without it, some (fixed) draw shows why it is needed
            without = [d for d in _draws(name, fixed) if not when[1](d[2])]
            assert _classify(name, without)[1], f"{name} agreed chunked without {when[0]}"
    else:
        agree, differ = _classify(name, draws)
        has_norm = hasattr(registry.get(name).config(), "normalizer")
        assert differ or not has_norm, \
            f"{name} agreed chunked on every draw: it may be row-local ({lmhead.NOT_ROW_LOCAL[name]})"


def _with_required(name, inputs):
    if name == "gbpo":
        return inputs  # every generator gives prompt ids
    if name == "hapo":
        from rlspec.optimized import hapo
        stats = hapo.entropy_statistics(inputs["entropy"], inputs["mask"]) if inputs.get("entropy") is not None \
            else None
        return dict(inputs, entropy_stats=stats) if stats is not None else inputs
    raise AssertionError(f"{name}: say how to meet ROW_LOCAL_WHEN")


def _head_problem(inputs, H=5, V=11, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    B, T = inputs["mask"].shape
    hidden = torch.randn(B, T, H, generator=g, dtype=dtype)
    weight = torch.randn(V, H, generator=g, dtype=dtype)
    bias = torch.randn(V, generator=g, dtype=dtype)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = inputs["mask"]
    hidden[~mask] = float("nan")  # padding the head must never read
    ids = torch.where(mask, ids, torch.full_like(ids, -100))
    return hidden, weight, bias, ids, mask


@pytest.mark.parametrize("name", sorted(lmhead.ROW_LOCAL))
def test_one_pass_equals_two_passes(name):
    """The one-pass head (gradients in the forward, chunk by chunk of rows) gives the two-pass head's loss and
    gradients w.r.t. hidden states, weight and bias, in float64, for chunks of any size, a temperature, and
    NaN hidden states and out-of-range ids at padding; the fused entropy reaches entries that take one."""
    inputs = _draw(name, int(np.random.SeedSequence().generate_state(1)[0]))
    inputs.pop("logp")
    if "entropy" in inputs:
        inputs.pop("entropy")  # the head's own entropy, with its gradient
    hidden, weight, bias, ids, mask = _head_problem(inputs)
    rest = {k: v for k, v in inputs.items() if k != "mask"}
    if name == "hapo":  # row-local with the batch's entropy statistics given (ROW_LOCAL_WHEN)
        from rlspec.optimized.hapo import entropy_statistics
        rest["entropy_stats"] = entropy_statistics(torch.rand(mask.shape, dtype=torch.float64) + 0.1, mask)
    results = {}
    for passes, chunk in ((2, None), (1, 1), (1, 4), (1, None)):
        h, w, b = (x.clone().requires_grad_(True) for x in (hidden, weight, bias))
        loss = lmhead.fused_policy_loss(name, h, w, ids, mask, bias=b, temperature=0.8, passes=passes, chunk=chunk,
                                        tile=3, **rest)
        loss.backward()
        results[(passes, chunk)] = (loss.detach(), h.grad, w.grad, b.grad)
    want = results.pop((2, None))
    for key, got in results.items():
        for x, y, what in zip(got, want, ("loss", "d hidden", "d weight", "d bias")):
            assert torch.isfinite(x).all(), (key, what)
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12, msg=lambda m, k=key, w=what: f"{k} {w}: {m}")


def test_one_pass_is_auto_and_refuses_what_it_cannot_do():
    """'auto' takes one pass for a row-local loss (its forward already holds the gradients: the backward does no
    matmul) and two for the others, or where the condition of ROW_LOCAL_WHEN is not met; passes=1 on a loss that
    is not row-local, or with a per-batch input that is not per row, raises naming ``passes``; a bad ``passes``
    value raises."""
    inputs = _draw("ppo", 1)
    hidden, weight, bias, ids, mask = _head_problem(inputs)
    h = hidden.clone().requires_grad_(True)
    loss = lmhead.fused_policy_loss("ppo", h, weight, ids, mask, old_logp=inputs["old_logp"], adv=inputs["adv"])
    assert type(loss.grad_fn).__name__.startswith("_SinglePass")
    gb = _draw("gbpo", 1)
    with_ids = lmhead.fused_policy_loss("gbpo", h, weight, ids, mask, old_logp=gb["old_logp"], adv=gb["adv"],
                                        group=gb["group"])
    without = lmhead.fused_policy_loss("gbpo", h, weight, ids, mask, old_logp=gb["old_logp"], adv=gb["adv"])
    assert type(with_ids.grad_fn).__name__.startswith("_SinglePass")  # GBPO is row-local given prompt ids ...
    assert not type(without.grad_fn).__name__.startswith("_SinglePass")  # ... and takes two passes without them
    with pytest.raises(RLSpecValueError, match="passes"):
        kl = _draw("kl_cov", 1)
        lmhead.fused_policy_loss("kl_cov", h, weight, ids, mask, old_logp=kl["old_logp"], adv=kl["adv"], passes=1)
    with pytest.raises(RLSpecValueError, match="passes"):
        lmhead.fused_policy_loss("ppo", h, weight, ids, mask, old_logp=inputs["old_logp"],
                                 adv=inputs["adv"][:, :1].T, passes=1)
    with pytest.raises(RLSpecValueError, match="passes"):
        lmhead.fused_policy_loss("ppo", h, weight, ids, mask, old_logp=inputs["old_logp"], adv=inputs["adv"], passes=3)


def test_one_pass_float32_bf16_and_empty():
    """float32 one pass follows float64 to ~1e-5 and bf16 inputs to the bf16 two-pass path (statistics in float32);
    a batch without a valid token gives loss 0 and zero gradients; retain_graph's second backward recomputes."""
    inputs = _draw("ppo", 2)
    hidden, weight, bias, ids, mask = _head_problem(inputs, H=16, V=50)
    hidden = torch.where(mask[..., None], hidden, 0.0)
    kw = dict(old_logp=inputs["old_logp"], adv=inputs["adv"])
    ref = lmhead.fused_policy_loss("ppo", hidden, weight, ids, mask, passes=1, **kw)
    lo32 = lmhead.fused_policy_loss("ppo", hidden.float(), weight.float(), ids, mask, passes=1,
                                    **{k: v.float() for k, v in kw.items()})
    torch.testing.assert_close(lo32.double(), ref, rtol=1e-5, atol=1e-6)
    hb, wb = hidden.bfloat16(), weight.bfloat16()
    kb = {k: v.float() for k, v in kw.items()}
    one = lmhead.fused_policy_loss("ppo", hb, wb, ids, mask, passes=1, **kb)
    two = lmhead.fused_policy_loss("ppo", hb, wb, ids, mask, passes=2, **kb)
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-6)
    h = hidden.clone().requires_grad_(True)
    empty = lmhead.fused_policy_loss("ppo", h, weight, ids, torch.zeros_like(mask), passes=1, **kw)
    empty.backward()
    assert float(empty) == 0.0 and (h.grad == 0).all()
    h = hidden.clone().requires_grad_(True)
    loss = lmhead.fused_policy_loss("ppo", h, weight, ids, mask, passes=1, **kw)
    loss.backward(retain_graph=True)
    g1 = h.grad.clone()
    (2 * loss).backward()
    torch.testing.assert_close(h.grad, 3 * g1)

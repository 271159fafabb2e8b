"""Properties of TAPO (Tool-Augmented Policy Optimization, arXiv 2510.07038; official code Goer17/TAPO).

TAPO = DAPO's clip-higher loss (+ dual clip c = 10) on the model's own tokens M′ = M ∧ ¬U (U = tool output),
overlong shaping on the model-token length, dynamic sampling on accuracy. Expected values come from the
registry's DAPO / PPO / GRPO entries, the aggregation coefficients or closed forms written here, never from
the TAPO code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from properties import strategies as S
from rlspec.reference import aggregation, registry
from rlspec.reference._validate import RLSpecValueError
from rlspec.reference.dapo import DAPOConfig, OverlongConfig
from rlspec.reference.envs import tool_bandit as env
from rlspec.reference.grpo import GRPOConfig
from rlspec.reference.ppo import PPOConfig
from rlspec.reference.tapo import (
    TAPOConfig,
    TAPOOverlongConfig,
    answer_score,
    levenshtein,
    model_length,
    parse_tags,
    tapo_dynamic_sampling,
    tapo_loss,
    tapo_overlong,
    tapo_score,
)

MODES = st.sampled_from(aggregation.MODES)


@st.composite
def tool_batches(draw, garbage: bool = True):
    """A ragged canonical batch plus tool-output spans inside the responses (NaN there when ``garbage``)."""
    rng = draw(S.seeds())
    B, T = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    batch = S.policy_batch(rng, B, T, log_ratio_scale=draw(st.sampled_from([0.05, 0.3, 1.0])), garbage=garbage)
    U = np.zeros((B, T), dtype=bool)
    for b in range(B):
        for _ in range(int(rng.integers(0, 3))):
            s = int(rng.integers(0, T))
            U[b, s:s + int(rng.integers(1, 4))] = True
    if rng.random() < 0.5:
        U &= batch["mask"]  # otherwise some tool flags sit on padding (they must be ignored)
    if garbage:
        for k in ("logp", "old_logp", "adv"):
            batch[k] = np.where(U, np.nan, batch[k])
    batch["tool_mask"] = U
    return batch


def call(batch, cfg, logp=None, **kw):
    return tapo_loss(batch["logp"] if logp is None else logp, batch["old_logp"], batch["adv"], batch["mask"],
                     config=cfg, group=batch["group"], tool_mask=batch["tool_mask"], **kw)


def model_mask(batch):
    return batch["mask"] & ~batch["tool_mask"]


def _near_kink(r, cfg, tol=1e-4):
    kinks = [1 - cfg.eps_low, 1 + cfg.eps_high] + ([cfg.dual_clip_c] if cfg.dual_clip_c else [])
    return np.any([np.abs(r - k) < tol for k in kinks], axis=0)


@given(tool_batches(), MODES, st.booleans(), st.sampled_from([None, 3.0, 10.0]))
def test_hand_gradient_matches_finite_differences(batch, mode, in_denominator, c):
    """Gradient claim (derived): dlogp = −c·Â·r on the unclipped model tokens, 0 where clipped and on tool
    tokens, equals the central finite difference of the loss (float64), for both normalisers and every mode."""
    cfg = TAPOConfig(agg=mode, tool_in_denominator=in_denominator, dual_clip_c=c)
    Mp = model_mask(batch)
    x = S.clean(batch["logp"], Mp)
    clean = dict(batch, old_logp=S.clean(batch["old_logp"], Mp), adv=S.clean(batch["adv"], Mp))
    _, d = call(clean, cfg, logp=x)
    fd = S.finite_difference(lambda lp: call(clean, cfg, logp=lp)[0], x, Mp)
    r = np.exp(x - clean["old_logp"])
    ok = Mp & ~_near_kink(r, cfg)
    np.testing.assert_allclose(d[ok], fd[ok], rtol=1e-5, atol=1e-8)
    assert np.all(d[~Mp] == 0.0)


@given(tool_batches(), MODES, st.booleans())
def test_tool_tokens_have_exactly_zero_gradient_and_are_never_read(batch, mode, in_denominator):
    """Tool-output tokens are masked out of the loss (paper; code: info_mask): their gradient is exactly 0, and
    any value there (NaN here, or random finite numbers) changes neither the loss nor the gradient."""
    cfg = TAPOConfig(agg=mode, tool_in_denominator=in_denominator)
    loss, d = call(batch, cfg)
    assert np.all(d[batch["tool_mask"]] == 0.0) and np.all(d[~batch["mask"]] == 0.0)
    rng = np.random.default_rng(0)
    Mp = model_mask(batch)
    other = {k: np.where(Mp, batch[k], rng.normal(size=batch[k].shape) * 5)
             for k in ("logp", "old_logp", "adv")}
    loss2, d2 = call(dict(batch, **other), cfg)
    assert loss2 == loss and np.array_equal(d2, d)


@given(S.policy_batches(), MODES)
def test_no_tools_reduces_to_dapo(batch, mode):
    """With no tool output (U = ∅) and the dual clip off, TAPO is exactly the registry's DAPO loss
    (registry.get('dapo')), value and gradient, for every aggregation mode; tool_mask=None is the same."""
    dapo = registry.get("dapo")
    want = dapo(logp=batch["logp"], old_logp=batch["old_logp"], adv=batch["adv"], mask=batch["mask"],
                config=DAPOConfig(agg=mode), group=batch["group"])
    for U in (None, np.zeros_like(batch["mask"])):
        got = tapo_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"],
                        config=TAPOConfig(agg=mode, dual_clip_c=None), group=batch["group"], tool_mask=U)
        assert got[0] == want[0] and np.array_equal(got[1], want[1])


@given(S.policy_batches(log_ratio_scale=3.0), MODES)
def test_no_tools_with_dual_clip_is_ppo_dual_clip(batch, mode):
    """With U = ∅ the default TAPO (dual clip c = 10, the code's clip_ratio_c) equals registry.get('ppo') with
    ε_low = 0.2, ε_high = 0.28, dual_clip_c = 10 (the log-ratio scale 3 makes the dual clip bind)."""
    ppo = registry.get("ppo")
    want = ppo(logp=batch["logp"], old_logp=batch["old_logp"], adv=batch["adv"], mask=batch["mask"],
               config=PPOConfig(eps_low=0.2, eps_high=0.28, dual_clip_c=10.0, agg=mode), group=batch["group"])
    got = tapo_loss(batch["logp"], batch["old_logp"], batch["adv"], batch["mask"], config=TAPOConfig(agg=mode),
                    group=batch["group"])
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


@given(tool_batches(), MODES)
def test_tools_equal_dapo_on_the_model_tokens(batch, mode):
    """Masking tool output = running DAPO on the mask M ∧ ¬U: same loss, same gradient."""
    dapo = registry.get("dapo")
    Mp = model_mask(batch)
    want = dapo(logp=batch["logp"], old_logp=batch["old_logp"], adv=batch["adv"], mask=Mp,
                config=DAPOConfig(agg=mode), group=batch["group"])
    got = call(batch, TAPOConfig(agg=mode, dual_clip_c=None))
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


@given(tool_batches(garbage=False), st.sampled_from(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]))
def test_code_denominator_is_ppo_with_zeroed_tool_advantage(batch, mode):
    """The official pipeline: verl multiplies the GRPO advantage by the info mask (Â = 0 on tool tokens) and the
    actor aggregates over the attention mask M (tool tokens counted). That is registry.get('ppo') with
    (0.2, 0.28, c = 10) on (Â·[¬U], M) — and TAPO's tool_in_denominator=True gives exactly that."""
    U, M = batch["tool_mask"] & batch["mask"], batch["mask"]
    ppo = registry.get("ppo")
    want = ppo(logp=batch["logp"], old_logp=batch["old_logp"], adv=np.where(U, 0.0, batch["adv"]), mask=M,
               config=PPOConfig(eps_low=0.2, eps_high=0.28, dual_clip_c=10.0, agg=mode), group=batch["group"])
    got = tapo_loss(batch["logp"], batch["old_logp"], batch["adv"], M,
                    config=TAPOConfig(agg=mode, tool_in_denominator=True), group=batch["group"], tool_mask=U)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-13, atol=1e-15)
    # the two normalisers differ exactly by the factor |M′| / |M| under token-mean
    if mode == "token-mean" and (M & ~U).any():
        paper = tapo_loss(batch["logp"], batch["old_logp"], batch["adv"], M, tool_mask=U)
        np.testing.assert_allclose(got[0], paper[0] * (M & ~U).sum() / M.sum(), rtol=1e-12, atol=1e-15)


@given(tool_batches(), st.booleans(), st.integers(1, 5))
def test_sharded_losses_sum_to_the_full_batch(batch, in_denominator, cut):
    """Data-parallel sharding under token-mean: with the global normaliser — the number of model tokens |M′| (or of
    response tokens |M| for tool_in_denominator) over the whole batch — the shard losses sum to the full-batch loss
    and the shard gradients are the rows of the full gradient."""
    B = batch["mask"].shape[0]
    Mp = model_mask(batch)
    norm = float((batch["mask"] if in_denominator else Mp).sum())
    if norm == 0:
        return
    full = call(batch, TAPOConfig(tool_in_denominator=in_denominator))
    cfg = TAPOConfig(tool_in_denominator=in_denominator, normalizer=norm)
    k = min(cut, B)
    parts = [{key: v[rows] for key, v in batch.items()} for rows in (slice(0, k), slice(k, B))]
    outs = [call(p, cfg) for p in parts if p["mask"].shape[0] > 0]
    assert sum(o[0] for o in outs) == pytest.approx(full[0], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(np.concatenate([o[1] for o in outs]), full[1], rtol=1e-12, atol=1e-15)


@given(st.floats(-3.0, 3.0), st.floats(-2.0, 2.0).filter(lambda a: abs(a) > 1e-3))
def test_decoupled_clip_bounds(log_r, A):
    """Clip-higher (DAPO §3.1, code ε_low = 0.2, ε_high = 0.28) and the dual clip (c = 10), on one token:
    for Â > 0 the loss is −min(r, 1.28)·Â (no gain, zero gradient past 1.28); for Â < 0 it is
    −max(r, 0.8)·Â capped at −10Â (zero gradient below 0.8 and above 10)."""
    logp, old = np.array([[log_r - 1.0]]), np.array([[-1.0]])
    m = np.ones((1, 1), dtype=bool)
    loss, d = tapo_loss(logp, old, np.array([[A]]), m)
    r = np.exp(log_r)
    if A > 0:
        want = -min(r, 1.28) * A
        grad = 0.0 if r > 1.28 else -A * r
    else:
        want = min(-max(r, 0.8) * A, -10.0 * A)
        grad = 0.0 if (r < 0.8 or r > 10.0) else -A * r
    assert loss == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert d[0, 0] == pytest.approx(grad, rel=1e-12, abs=1e-15)


@given(st.integers(0, 4096), st.integers(0, 300), st.integers(1, 4))
def test_overlong_piecewise_linear_in_model_tokens(n_model, n_tool, B):
    """Overlong shaping (code: reward_manager/dapo.py with L_max = 2048, L_buf = 1024, κ = 1): 0 up to 1024 model
    tokens, then −1/1024 per model token (−1 at 2048, continuing linearly); tool tokens never count. Agrees with
    the registry's dapo_overlong (beyond_max='linear') on the model-token count."""
    T = n_model + n_tool
    M = np.zeros((B, max(T, 1)), dtype=bool)
    M[:, :T] = True
    U = np.zeros_like(M)
    U[:, n_model:T] = True  # tool output after the model's tokens
    got = tapo_overlong(M, U)
    want = 0.0 if n_model <= 1024 else -(n_model - 1024) / 1024
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)
    ref = registry.get("dapo_overlong")(lengths=np.full(B, n_model),
                                        config=OverlongConfig(L_max=2048, L_cache=1024, beyond_max="linear"))
    np.testing.assert_array_equal(got, ref)
    assert np.array_equal(model_length(M, U), np.full(B, float(n_model)))
    np.testing.assert_allclose(tapo_overlong(M, U, TAPOOverlongConfig(kappa=0.5)), 0.5 * got, rtol=1e-15)


@given(S.seeds(), st.integers(1, 6), st.integers(1, 5))
def test_dynamic_sampling_keeps_only_informative_groups(rng, P, G):
    """Dynamic sampling on acc (code: filter_groups.metric=acc): every retained group of ≥ 2 rollouts has acc
    values that are not all equal, hence a non-zero GRPO advantage on the accuracy; singletons are kept (verl);
    groups whose acc is all-equal are dropped even when their shaped rewards differ (NQ partial scores)."""
    group = np.repeat(np.arange(P), G)
    score = np.where(rng.random(P * G) < 0.5, 1.0, rng.choice([0.0, 0.6, -1.0], size=P * G))
    acc = score > 0.9
    keep = tapo_dynamic_sampling(acc, group)
    grpo = registry.get("grpo")
    for k in range(P):
        rows = group == k
        informative = acc[rows].min() != acc[rows].max()
        assert keep[rows].all() == (informative or G == 1) and keep[rows].all() == keep[rows].any()
        if keep[rows].all() and G > 1:
            adv = grpo(rewards=acc[rows].astype(float), group=group[rows], mask=np.ones((G, 1), bool))
            assert np.abs(adv).max() > 0


def _blocks(draw_tags, answers):
    return "\n".join(f"<{t}>{a}</{t}>" for t, a in zip(draw_tags, answers))


@given(st.lists(st.sampled_from(["think", "search", "code", "response", "answer", "tool", "Think"]), max_size=6),
       st.booleans())
def test_format_checker(tags, junk):
    """Format rule (code check_format): a response scores −1 unless it is a sequence of <tag>…</tag> blocks with
    tags in {think, search, code, response, answer}, the last being <answer>; otherwise the answer is extracted.
    The code skips free text before a block (strict=False); strict=True rejects it. An empty text is malformed."""
    text = _blocks(tags, [f"x{i}" for i in range(len(tags))])
    if junk and tags:
        text = "some words " + text
    allowed = {"think", "search", "code", "response", "answer"}
    lowered = [t.lower() for t in tags]
    ok = bool(tags) and all(t in allowed for t in lowered) and lowered[-1] == "answer"
    parsed = parse_tags(text)
    assert (parsed is not None) == ok
    assert (parse_tags(text, strict=True) is not None) == (ok and not junk)
    score, acc = tapo_score(text, f"x{len(tags) - 1}")
    if ok:
        assert parsed["answer"] == f"x{len(tags) - 1}" and score == 1.0 and acc
        assert parsed["tool_calls"] == {"search": lowered.count("search"), "code": lowered.count("code")}
    else:
        assert score == -1.0 and not acc
    assert tapo_score("", "x")[0] == -1.0
    assert tapo_score("<answer>x</answer> trailing", "x")[0] == -1.0  # text after the last block


def test_answer_scores():
    """Scoring rules (code _check_score): exact match after normalisation; NQ: 1 if gt ⊂ pred, else
    1 − Lev/maxlen when < 0.5, else 0; calculator: |Δ| < 1e-3; complex: relative error < 5 %."""
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3 and levenshtein("ab", "ab") == 0
    assert answer_score(" Seven ", "7") == 1.0 and answer_score("1,000", "1000") == 1.0
    assert answer_score("6", "7") == 0.0 and answer_score("72", "72", "aime2024") == 1.0
    assert answer_score("the usa team", "usa", "nq") == 1.0
    assert answer_score("parls", "paris", "nq") == pytest.approx(1 - 1 / 5)
    assert answer_score("london", "paris", "nq") == 0.0  # ratio 1 ≥ 0.5
    assert answer_score("3.1415", "3.1416", "calculator") == 1.0 and answer_score("3.14", "3.1416", "calculator") == 0.0
    assert answer_score("about 104.9 km", "100", "complex") == 1.0 and answer_score("106", "100", "complex") == 0.0
    assert answer_score("n/a", "5", "calculator") == 0.0
    assert tapo_score("<answer>paris</answer>", ["rome", "paris"], "nq") == (1.0, True)
    assert tapo_score("<answer>parls</answer>", "paris", "nq") == (pytest.approx(0.8), False)  # acc = s > 0.9


@given(st.integers(0, 4), st.sampled_from(["search", "code"]))
def test_reward_has_no_tool_count_term(k, tool):
    """No tool-count reward (code: tool counts are only logged): adding k tool calls with their outputs to a
    response leaves its score unchanged, and the overlong term ignores the tool output tokens."""
    base = "<think>t</think><answer>42</answer>"
    calls = "".join(f"<{tool}>q{i}</{tool}><response>out{i}</response>" for i in range(k))
    with_tools = "<think>t</think>" + calls + "<answer>42</answer>"
    assert tapo_score(with_tools, "42") == tapo_score(base, "42") == (1.0, True)
    assert parse_tags(with_tools)["tool_calls"][tool] == k


def test_composition_grpo_advantage_into_tapo_loss():
    """Pipeline: reward → dynamic sampling on acc → registry GRPO advantage (verl conventions: ddof = 1,
    singleton mean 0 std 1) → TAPO loss on the kept rows. On-policy (r ≡ 1) the gradient of the kept model
    tokens is −Â/|M′| and every dropped or tool token gets 0."""
    rng = np.random.default_rng(7)
    P, G, T = 4, 4, 6
    group = np.repeat(np.arange(P), G)
    acc = np.array([1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    keep = tapo_dynamic_sampling(acc, group)
    assert keep.tolist() == [False] * 4 + [True] * 4 + [False] * 4 + [True] * 4
    rewards = np.where(acc, 1.0, 0.0)
    M = np.ones((P * G, T), dtype=bool)
    U = np.zeros_like(M)
    U[:, 2:4] = rng.random((P * G, 2)) < 0.5
    adv = registry.get("grpo")(rewards=rewards[keep], group=group[keep], mask=M[keep],
                               config=GRPOConfig(singleton="mean0std1"))
    logp = -rng.gamma(2.0, 1.0, size=(keep.sum(), T))
    loss, d = tapo_loss(logp, logp, adv, M[keep], tool_mask=U[keep])
    Mp = M[keep] & ~U[keep]
    np.testing.assert_allclose(d, np.where(Mp, -adv / Mp.sum(), 0.0), rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(float(-(adv * Mp).sum() / Mp.sum()), rel=1e-12, abs=1e-15)


def _run_tool_bandit(seed: int, steps: int = 120, G: int = 8, lr: float = 2.0):
    """GRPO + TAPO on the tool bandit: decision token trained, tool output masked (NaN), answer token fixed."""
    rng = np.random.default_rng(seed)
    theta = np.zeros((2, 3))
    n_tool = 2
    T = 2 + n_tool
    for _ in range(steps):
        pi = env.policy(theta)
        q = np.repeat([0, 1], G)
        a = np.array([rng.choice(3, p=pi[k]) for k in q])
        acc = rng.random(q.size) < env.P_CORRECT[q, a]
        keep = tapo_dynamic_sampling(acc, q)
        if not keep.any():
            continue
        lay = [env.episode_layout(int(x), n_tool) for x in a]
        M = np.array([v for v, _, _ in lay])
        U = np.array([u for _, u, _ in lay])
        logp = np.full((q.size, T), np.nan)
        logp[:, 0] = np.log(pi[q, a])
        logp[:, -1] = 0.0  # the answer token: log-prob 0 under the (fixed) answering head
        adv = registry.get("grpo")(rewards=acc[keep].astype(float), group=q[keep], mask=M[keep])
        _, d = tapo_loss(logp[keep], logp[keep], adv, M[keep], tool_mask=U[keep])
        grad = np.zeros_like(theta)
        for w, qq, aa in zip(d[:, 0], q[keep], a[keep]):
            grad[qq] += w * (np.eye(3)[aa] - pi[qq])  # ∂ log π(a|q)/∂θ[q] = e_a − π(·|q)
        theta -= lr * grad
    return theta


def test_toy_tool_bandit_learns_the_optimal_tool_policy():
    """A small seeded run reaches the known optimum of the tool bandit (reference/envs/tool_bandit.py): search for
    lookup, code for arithmetic, J within 0.03 of J* = (0.9, 0.95), with NaN at every tool-output token."""
    theta = _run_tool_bandit(seed=0)
    pi = env.policy(theta)
    assert (pi.argmax(axis=1) == env.optimal_actions()).all()
    np.testing.assert_allclose(env.expected_reward(theta), env.optimum(), atol=0.03)


def test_bad_input_raises():
    """Bad input raises RLSpecValueError naming the argument."""
    b = S.policy_batch(np.random.default_rng(0), 3, 4, garbage=False)
    args = (b["logp"], b["old_logp"], b["adv"], b["mask"])
    with pytest.raises(RLSpecValueError, match="tool_mask"):
        tapo_loss(*args, tool_mask=np.ones((3, 5), dtype=bool))
    with pytest.raises(RLSpecValueError, match="tool_mask"):
        tapo_loss(*args, tool_mask=np.ones((3, 4)) * 0.5)
    with pytest.raises(RLSpecValueError, match="dual_clip_c"):
        TAPOConfig(dual_clip_c=0.5)
    with pytest.raises(RLSpecValueError, match="tool_in_denominator"):
        TAPOConfig(tool_in_denominator=1)
    with pytest.raises(RLSpecValueError, match="L_buf"):
        TAPOOverlongConfig(L_max=10, L_buf=20)
    with pytest.raises(RLSpecValueError, match="source"):
        answer_score("1", "1", "unknown")
    with pytest.raises(RLSpecValueError, match="gt"):
        answer_score("1", "abc", "calculator")
    with pytest.raises(RLSpecValueError, match="text"):
        parse_tags(None)
    bad = np.array(b["logp"])
    bad[b["mask"]] = np.nan
    if b["mask"].any():
        with pytest.raises(RLSpecValueError, match="logp"):
            tapo_loss(bad, *args[1:])


@settings(max_examples=20)
@given(tool_batches(garbage=False))
def test_optimized_matches_reference_with_tools(batch):
    """The torch implementation (rlspec.optimized.tapo) agrees with the reference in float64 on batches with tool
    spans, value and autograd gradient (the conformance suite draws such batches too)."""
    torch = pytest.importorskip("torch")
    from rlspec import optimized

    fn = optimized.get("tapo")
    for cfg in (TAPOConfig(), TAPOConfig(tool_in_denominator=True)):
        lp = torch.tensor(batch["logp"], requires_grad=True)
        loss = fn(lp, torch.tensor(batch["old_logp"]), torch.tensor(batch["adv"]), torch.tensor(batch["mask"]),
                  config=cfg, group=torch.tensor(batch["group"]), tool_mask=torch.tensor(batch["tool_mask"]))
        loss.backward()
        want = call(batch, cfg)
        assert float(loss) == pytest.approx(want[0], rel=1e-10, abs=1e-12)
        np.testing.assert_allclose(lp.grad.numpy(), want[1], rtol=1e-10, atol=1e-12)

"""Issue #13, "the fast path keeps the reference's input contract": a fuzz over every registered entry.

For every registry entry (status implemented or partial) that has an optimized twin, hypothesis draws
the entry's own inputs (its kind's canonical batch or its ``make_inputs``, through
:func:`rlspec.conformance.harness.random_inputs`), mutates them in every input class below, and calls the
reference (NumPy float64, on the inputs rounded to the dtype under test, as the conformance harness does)
and the optimized path (torch, float64 or float32, gradients by autograd as the optimized adapter takes
them) on the same input. Both layers keep one contract (the design notes, "Bad input" and "Tolerances"):

* both raise :class:`RLSpecValueError` whose message names an argument (the mutated one where the
  class targets one), or
* both return the same finite result, within the dtype tolerance of
  :mod:`rlspec.conformance.tolerances` (the harness's comparison: values, and gradients at valid
  positions, finite everywhere).

Never another exception type, a NaN/inf output, or one layer raising while the other returns. The one
allowed asymmetry: where a log-ratio is beyond float32's range (±89, ±100), the float32 path may raise
RLSpecValueError although the float64 reference returns a finite value, but never return inf/NaN.

Input classes (each example runs every class that applies to the entry's inputs, in a dtype drawn per
class; "agree" is the contract above, "raise" means both layers must raise, naming the input):

==================  ==========================================================  ==============================
class               mutation                                                    expected
==================  ==========================================================  ==============================
as-drawn            none                                                        agree
empty-batch         B = 0 (every input whose first axis is the batch)           agree
empty-T             T = 0 (every input laid out like the mask)                  agree
all-false-mask      mask all False                                              agree
one-row             the first row only                                          agree
int-mask            mask as 0/1 int64                                           agree
nonfinite-masked    NaN/±inf at every masked position of the float inputs       agree, and equal to the
                    laid out like the mask                                      result on the clean input
nonfinite-unmasked  NaN/±inf at one position that counts, in one float input    raise for the batch language's
                                                                                inputs (logp, adv, rewards,
                                                                                values, ...), else agree
extreme-log-ratio   logp − old_logp (or − ref_logp) = ±89 / ±100 at one or      agree; float32 may raise
                    every valid token (float32's exp overflows beyond 88.7)
group-negative      group ids − 1000                                            agree
group-sparse        group ids × 37 + 11                                         agree
group-float         group ids as floats with integral values                    agree
group-str           group ids as strings                                        agree (the reference raises)
wrong-shape         one input laid out like the mask a column short, or one     raise for a required input of
                    batch input a row short                                     the batch language, else agree
float-mask          mask as 0.0/1.0 floats                                      raise
==================  ==========================================================  ==============================

Which inputs are laid out like the batch or the mask is read from several draws of the entry's generator
(:func:`layout`). Examples per entry: the hypothesis profile's ``max_examples`` / 10 (ci: 4, dev: 2,
nightly: 100), without shrinking (a failure names its class, dtype and seed). Entries whose modules
other engineers were writing when this file was added are xfail (not strict), with the reason.
The tests at the end pin the mismatches this fuzz found when it was added.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from rlspec import optimized
from rlspec.conformance import harness
from rlspec.conformance.adapters.optimized_adapter import GRAD_INPUTS, TORCH_DTYPES, outputs_dict, to_numpy, to_torch
from rlspec.reference import registry
from rlspec.reference._validate import RLSpecValueError

ENTRIES = sorted(s.name for s in registry.specs()
                 if s.status in ("implemented", "partial") and s.name in set(optimized.names()))

#: entries whose modules other engineers were writing when this fuzz was added (issue 13's brief): fuzzed,
#: xfail (not strict) until their authors hold them to the contract; remove a name once its module settles
#: entries whose layers are known to disagree, with the reason (none at present: every entry keeps the contract)
IN_PROGRESS: dict[str, str] = {}

DTYPES = ("float64", "float32")
NONFINITE = (np.nan, np.inf, -np.inf)
EXTREME = (89.0, -89.0, 100.0, -100.0)
#: (entry, input) whose positions that count are fewer than the mask's, by the entry's documented convention
READ_SELECTIVELY = {
    ("spo_segment", "values"): "MC values are read only at segment starts (reference/spo_segment.py, 'Defined cases')",
}
N_EXAMPLES = max(2, settings.default.max_examples // 10)


# --------------------------------------------------------------------------- the input's layout
#: the batch language's names (design notes, "The common language"); other inputs are the entry's own
CANONICAL = ("logp", "old_logp", "ref_logp", "adv", "mask", "rewards", "group", "entropy", "turn", "values",
             "old_values", "returns", "token_rewards")
#: inputs that must be finite wherever they count
MUST_BE_FINITE = ("logp", "old_logp", "ref_logp", "adv", "rewards", "values", "old_values", "returns", "entropy",
                  "token_rewards")


def _mask(inputs):
    m = inputs.get("mask")
    return m if isinstance(m, np.ndarray) and m.dtype == np.bool_ and m.ndim == 2 else None


def _batch_size(inputs):
    """B: the mask's rows, else the length of group or rewards; None if the entry has no batch axis."""
    m = _mask(inputs)
    if m is not None:
        return m.shape[0]
    for k in ("group", "rewards"):
        v = inputs.get(k)
        if isinstance(v, np.ndarray) and v.ndim >= 1:
            return v.shape[0]
    return None


def _draw_layout(inputs):
    B, m = _batch_size(inputs), _mask(inputs)
    arrays = {k: v for k, v in inputs.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    rows = {k for k, v in arrays.items() if B is not None and v.shape[0] == B}
    tokens = {k for k, v in arrays.items() if m is not None and v.ndim >= 2 and v.shape[:2] == m.shape}
    return rows, tokens


_LAYOUTS: dict = {}


def layout(spec):
    """(row keys, token keys): inputs whose first axis is the batch / whose first two axes are the mask's.

    Taken from several draws of the entry's generator, so that a size that only happens to equal B or T
    (a (B, K) reward with K = T, a second mask's T) is not taken for the batch layout."""
    if spec.name not in _LAYOUTS:
        rows, tokens = None, None
        for seed in range(6):
            r, t = _draw_layout(harness.random_inputs(spec, np.random.default_rng(10_000 + seed)))
            rows, tokens = (r, t) if rows is None else (rows & r, tokens & t)
        _LAYOUTS[spec.name] = Layout(spec.name, frozenset(rows), frozenset(tokens), frozenset(harness.signature_of(spec)[1]))
    return _LAYOUTS[spec.name]


def _is_float(v):
    return isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)


def _copy(inputs):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}


# --------------------------------------------------------------------------- mutations
class Mutated(NamedTuple):
    """A mutated input, what both layers must do with it, and the argument an error must name (if any)."""

    inputs: dict
    expect: str  # "agree", "garbage" (agree, and equal to the clean result), "extreme", "raise"
    key: str | None = None


class Layout(NamedTuple):
    name: str
    rows: frozenset  # inputs whose first axis is the batch
    tokens: frozenset  # inputs whose first two axes are the mask's
    required: frozenset  # the reference function's required arguments


def as_drawn(x, draw, lay):
    return Mutated(_copy(x), "agree")


def empty_batch(x, draw, lay):
    if not lay.rows:
        return None
    return Mutated({k: (v[:0].copy() if k in lay.rows else v) for k, v in _copy(x).items()}, "agree")


def empty_t(x, draw, lay):
    if not lay.tokens:
        return None
    return Mutated({k: (v[:, :0].copy() if k in lay.tokens else v) for k, v in _copy(x).items()}, "agree")


def all_false_mask(x, draw, lay):
    if _mask(x) is None:
        return None
    return Mutated({**_copy(x), "mask": np.zeros_like(x["mask"])}, "agree")


def one_row(x, draw, lay):
    if not lay.rows or _batch_size(x) < 1:
        return None
    return Mutated({k: (v[:1].copy() if k in lay.rows else v) for k, v in _copy(x).items()}, "agree")


def int_mask(x, draw, lay):
    if _mask(x) is None:
        return None
    return Mutated({**_copy(x), "mask": x["mask"].astype(np.int64)}, "agree")


def nonfinite_masked(x, draw, lay):
    m = _mask(x)
    keys = sorted(k for k in lay.tokens if _is_float(x[k]))
    if m is None or not keys or m.all():
        return None
    y = _copy(x)
    value = draw(st.sampled_from(NONFINITE), label="padding value")
    for k in keys:
        y[k][~m] = value
    return Mutated(y, "garbage")


def nonfinite_unmasked(x, draw, lay):
    m = _mask(x)
    def token_shaped(v):  # laid out like the mask in this draw (a (B, K) reward with K = T too: still safe)
        return m is not None and v.ndim >= 2 and v.shape[:2] == m.shape

    keys = sorted(k for k, v in x.items() if _is_float(v) and v.size and not (token_shaped(v) and not m.any()))
    if not keys:
        return None
    k = draw(st.sampled_from(keys), label="non-finite key")
    y = _copy(x)
    v = y[k]
    if token_shaped(v):
        b, t = np.argwhere(m)[draw(st.integers(0, int(m.sum()) - 1), label="position")]
        pos = (b, t) + tuple(0 for _ in v.shape[2:])
    else:
        pos = np.unravel_index(draw(st.integers(0, v.size - 1), label="position"), v.shape)
    v[pos] = draw(st.sampled_from(NONFINITE), label="value")
    # a canonical input must raise; an entry's own input may hold a legitimate inf (then: agree)
    return Mutated(y, "raise" if k in MUST_BE_FINITE and (lay.name, k) not in READ_SELECTIVELY else "agree", k)


def extreme_log_ratio(x, draw, lay):
    m = _mask(x)
    targets = [k for k in ("old_logp", "ref_logp") if k in lay.tokens and _is_float(x[k])]
    if m is None or "logp" not in lay.tokens or not targets or not m.any():
        return None
    k = draw(st.sampled_from(targets), label="against")
    y = _copy(x)
    valid = np.argwhere(m)
    if draw(st.booleans(), label="every valid token"):
        chosen = valid
    else:
        chosen = valid[[draw(st.integers(0, len(valid) - 1), label="position")]]
    for b, t in chosen:
        y[k][b, t] = x["logp"][b, t] - draw(st.sampled_from(EXTREME), label="log-ratio")
    return Mutated(y, "extreme")


def _group_mutation(fn):
    def mutate(x, draw, lay):
        g = x.get("group")
        if not (isinstance(g, np.ndarray) and g.ndim == 1 and np.issubdtype(g.dtype, np.integer)):
            return None
        return Mutated({**_copy(x), "group": fn(g)}, "agree", "group")

    return mutate


group_negative = _group_mutation(lambda g: g - 1000)
group_sparse = _group_mutation(lambda g: g * 37 + 11)
group_float = _group_mutation(lambda g: g.astype(np.float64))
group_str = _group_mutation(lambda g: np.array([f"prompt-{i}" for i in g]))


def wrong_shape(x, draw, lay):
    """One input a column (token arrays) or a row (batch arrays) short of its partners.

    Must raise when the input is a required one of the batch language; else (an entry's own input, an
    optional argument the entry may ignore) both layers must agree."""
    B, m = _batch_size(x), _mask(x)
    cols = sorted(lay.tokens) if len(lay.tokens) >= 2 and m is not None and m.shape[1] >= 1 else []
    rows = sorted(lay.rows) if len(lay.rows) >= 2 and B else []
    options = [(k, 1) for k in cols] + [(k, 0) for k in rows]
    if not options:
        return None
    k, axis = draw(st.sampled_from(options), label="short input")
    y = _copy(x)
    y[k] = np.delete(y[k], -1, axis=axis)
    return Mutated(y, "raise" if k in CANONICAL and k in lay.required else "agree")


def float_mask(x, draw, lay):
    if _mask(x) is None:
        return None
    return Mutated({**_copy(x), "mask": x["mask"].astype(np.float64)}, "raise", "mask")


MUTATIONS = {
    "as-drawn": as_drawn, "empty-batch": empty_batch, "empty-T": empty_t, "all-false-mask": all_false_mask,
    "one-row": one_row, "int-mask": int_mask, "nonfinite-masked": nonfinite_masked,
    "nonfinite-unmasked": nonfinite_unmasked, "extreme-log-ratio": extreme_log_ratio,
    "group-negative": group_negative, "group-sparse": group_sparse, "group-float": group_float,
    "group-str": group_str, "wrong-shape": wrong_shape, "float-mask": float_mask,
}


# --------------------------------------------------------------------------- the two layers
def _to_torch(v, dtype):
    """The optimized adapter's conversion; arrays torch cannot hold (strings) are passed as they are."""
    if isinstance(v, np.ndarray) and not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_):
        return v
    return to_torch(v, TORCH_DTYPES[dtype], "cpu")


def run_optimized(spec, inputs, cfg, dtype):
    """``optimized.get(name)`` the way the optimized adapter calls it: outputs named, gradients by autograd."""
    kwargs = {k: _to_torch(v, dtype) for k, v in inputs.items()}
    grads = [k for k in GRAD_INPUTS.get(spec.kind, ())
             if isinstance(kwargs.get(k), torch.Tensor) and kwargs[k].dtype.is_floating_point]
    for k in grads:
        kwargs[k] = kwargs[k].detach().requires_grad_(True)
    out = optimized.get(spec.name)(**kwargs, config=cfg)
    if spec.kind not in GRAD_INPUTS:
        return outputs_dict(spec, to_numpy(out))
    if grads:
        out.backward()
    res = {(spec.outputs or ("loss",))[0]: float(out.detach().to(torch.float64))}
    for k in grads:
        g = kwargs[k].grad
        res["d" + k] = to_numpy(g) if g is not None else np.zeros(kwargs[k].shape)
    return res


def run_reference(spec, rounded, cfg):
    return harness.flatten(harness.name_outputs(spec, spec(**harness.as_float64(rounded), config=cfg)))


def _nonfinite(flat):
    for k, v in flat.items():
        a = np.asarray(v)
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            return k
    return None


def _names(err, argument):
    return re.search(rf"\b{re.escape(argument)}\b", str(err)) is not None


def _names_an_argument(err, inputs, cfg):
    return any(_names(err, n) for n in set(inputs) | set(getattr(cfg, "__dataclass_fields__", ())))


def check(spec, inputs, clean, dtype, expect, key):
    """None if both layers keep the contract on ``inputs``, else what went wrong."""
    cfg = spec.config()
    rounded = harness.cast_value(inputs, dtype)
    ref = ref_err = None
    try:
        ref = run_reference(spec, rounded, cfg)
    except RLSpecValueError as e:
        ref_err = e
    except Exception as e:  # noqa: BLE001
        return f"reference raised {type(e).__name__}: {e} (expected RLSpecValueError or a result)"
    if ref is not None and (bad := _nonfinite(ref)):
        return f"reference returned a non-finite {bad}"
    if expect == "raise" and ref_err is None:
        return f"reference accepted the input (expected RLSpecValueError naming {key!r})"
    if ref_err is not None and not _names_an_argument(ref_err, inputs, cfg):
        return f"reference's error names no argument: {ref_err}"
    if expect == "raise" and key is not None and not _names(ref_err, key):
        return f"reference's error does not name {key!r}: {ref_err}"
    if expect == "garbage":  # padding must not matter: the same result as on the clean input
        try:
            ref_clean = run_reference(spec, harness.cast_value(clean, dtype), cfg)
        except RLSpecValueError:
            ref_clean = None
        if (ref_clean is None) != (ref is None):
            return f"reference: padding changed the outcome (clean {'raised' if ref_clean is None else 'returned'})"
        if ref is not None:
            status, *_, msg = harness.compare(ref_clean, ref, "float64", _mask(rounded), harness.n_terms_of(rounded))
            if status != "pass":
                return f"reference: padding changed the result: {msg}"
    try:
        got, opt_err = run_optimized(spec, harness.cast_value(rounded, dtype), cfg, dtype), None
    except RLSpecValueError as e:
        got, opt_err = None, e
    except Exception as e:  # noqa: BLE001
        return (f"optimized raised {type(e).__name__}: {e} "
                f"(reference {'raised RLSpecValueError: ' + str(ref_err) if ref_err else 'returned a result'})")
    if ref_err is not None:
        if opt_err is None:
            return f"reference raised RLSpecValueError ({ref_err}) but optimized returned a result"
        if key is not None and _names(ref_err, key) and not _names(opt_err, key):
            return f"optimized's error does not name {key!r}: {opt_err} (reference: {ref_err})"
        if not _names_an_argument(opt_err, inputs, cfg):
            return f"optimized's error names no argument: {opt_err}"
        return None
    if opt_err is not None:
        if expect == "extreme" and dtype != "float64" and _names_an_argument(opt_err, inputs, cfg):
            return None  # beyond float32's range: refusing is allowed, a silent inf is not
        return f"optimized raised RLSpecValueError ({opt_err}) where the reference returned a result"
    m = _mask(rounded)
    if m is None and isinstance(rounded.get("mask"), np.ndarray) and rounded["mask"].ndim == 2:
        m = rounded["mask"].astype(bool)
    n = harness.n_terms_of(rounded)
    status, *_, msg = harness.compare(ref, harness.flatten(got), dtype, m, n)
    if status == "fail" and "non-finite" not in msg:  # a clip boundary crossed within rounding
        alts = harness.perturbed_references(spec, rounded, cfg, dtype, seed=0)
        status, *_, msg = harness.compare(ref, harness.flatten(got), dtype, m, n, alts)
    return None if status == "pass" else f"results differ: {msg}"


# --------------------------------------------------------------------------- the fuzz
def _param(name):
    marks = [pytest.mark.xfail(strict=False, reason=IN_PROGRESS[name])] if name in IN_PROGRESS else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in ENTRIES])
@settings(max_examples=N_EXAMPLES, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(data=st.data())
def test_reference_and_optimized_keep_one_input_contract(name, data):
    spec = registry.get(name)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    inputs = harness.random_inputs(spec, np.random.default_rng(seed))
    assert inputs is not None, f"{name}: no input generator"
    lay = layout(spec)
    failures = []
    for label, mutate in MUTATIONS.items():
        mutated = mutate(inputs, data.draw, lay)
        if mutated is None:
            continue
        x, expect, key = mutated
        dtype = data.draw(st.sampled_from(DTYPES), label=f"{label} dtype")
        why = check(spec, x, inputs, dtype, expect, key)
        if why is not None:
            failures.append(f"[{label}, {dtype}] {why}")
    assert not failures, f"{name} (seed {seed}):\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------- the mismatches the fuzz found, pinned
def _ppo_batch(log_ratio: float, adv: float):
    mask = np.array([[True, True, False]])
    logp = np.array([[-1.0, -2.0, np.nan]])
    old_logp = logp - np.array([[log_ratio, 0.1, 0.0]])
    return dict(logp=logp, old_logp=old_logp, adv=np.full((1, 3), adv), mask=mask)


def test_float32_ratio_beyond_range_clipped_is_finite_with_zero_gradient():
    """PPO at a float32 log-ratio of 100 with Â > 0: clipped, so the loss is finite and ∂/∂logp is 0 there
    (the reference's value), not NaN from autograd's 0 · exp(100) = 0 · inf."""
    spec, x = registry.get("ppo"), _ppo_batch(100.0, 1.5)
    ref = run_reference(spec, harness.cast_value(x, "float32"), spec.config())
    got = run_optimized(spec, harness.cast_value(x, "float32"), spec.config(), "float32")
    assert np.isfinite(got["loss"]) and abs(got["loss"] - ref["loss"]) < 1e-5
    assert np.isfinite(got["dlogp"]).all() and got["dlogp"][0, 0] == 0.0 == ref["dlogp"][0, 0]


@pytest.mark.parametrize("ratio", ["sequence", "token"])
def test_riskpo_float32_sequence_ratio_beyond_range_clipped_has_zero_gradient(ratio):
    """RiskPO at a float32 log-ratio of 100 at every valid token with Â > 0: the (sequence or token) ratio
    overflows and is clipped off; its exp goes through common.exp, so ∂/∂logp is 0 (the reference's), not NaN."""
    import dataclasses
    spec, x = registry.get("riskpo"), _ppo_batch(100.0, 1.5)
    x["old_logp"][0, 1] = x["logp"][0, 1] - 100.0
    cfg = dataclasses.replace(spec.config(), ratio=ratio)
    ref = run_reference(spec, harness.cast_value(x, "float32"), cfg)
    got = run_optimized(spec, harness.cast_value(x, "float32"), cfg, "float32")
    assert np.isfinite(got["loss"]) and abs(got["loss"] - ref["loss"]) < 1e-5
    assert np.isfinite(got["dlogp"]).all() and (got["dlogp"][0, :2] == 0.0).all() and (ref["dlogp"][0, :2] == 0.0).all()


@pytest.mark.parametrize("log_ratio", [89.0, 100.0])
def test_float32_overflow_gives_the_reference_or_raises(log_ratio):
    """PPO at a float32 log-ratio of 89/100 with Â < 0: exp overflows float32 (at 88.7) while the float64 reference
    is finite. Where float32 can hold the reference's loss (89) the torch path returns it (recomputed in float64,
    returned in float32, with a finite gradient); where it cannot (100: ~1e43) it raises RLSpecValueError naming
    logp instead of returning inf."""
    spec, x = registry.get("ppo"), _ppo_batch(log_ratio, -1.5)
    ref = run_reference(spec, harness.cast_value(x, "float32"), spec.config())
    assert np.isfinite(ref["loss"])
    if abs(ref["loss"]) <= np.finfo(np.float32).max:
        got = run_optimized(spec, harness.cast_value(x, "float32"), spec.config(), "float32")
        assert abs(got["loss"] - ref["loss"]) <= 1e-5 * abs(ref["loss"])
        assert np.isfinite(got["dlogp"]).all()
    else:
        with pytest.raises(RLSpecValueError, match="logp"):
            run_optimized(spec, harness.cast_value(x, "float32"), spec.config(), "float32")
    got = run_optimized(spec, x, spec.config(), "float64")  # in float64 it is representable
    assert np.isfinite(got["loss"])


@pytest.mark.parametrize("name", ["grpo", "rloo", "dvao", "remax", "xrpo_sharpen", "promed_token_baseline", "gbpo"])
def test_optimized_group_ids_follow_the_reference(name):
    """Integral float ids are ids (as in the reference's group_ids); string ids raise RLSpecValueError naming group."""
    spec = registry.get(name)
    x = harness.random_inputs(spec, np.random.default_rng(3))
    ints = run_optimized(spec, x, spec.config(), "float64")
    floats = run_optimized(spec, {**x, "group": x["group"].astype(np.float64)}, spec.config(), "float64")
    for k in ints:
        np.testing.assert_array_equal(harness.flatten(ints)[k], harness.flatten(floats)[k])
    strings = {**x, "group": np.array([f"p{g}" for g in x["group"]])}
    for call in (lambda: spec(**strings), lambda: run_optimized(spec, strings, spec.config(), "float64")):
        with pytest.raises(RLSpecValueError, match="group"):
            call()


@pytest.mark.parametrize("key", ["pi_a", "dq_pi", "a_data", "a_vae", "q_pi", "q_data", "q_vae", "v"])
def test_a2pr_nonfinite_input_is_named_alike(key):
    """A2PR: a NaN in any input raises RLSpecValueError naming that input in both layers (torch used to name
    q_pi or a_vae for a NaN in pi_a, through the linearised critic)."""
    spec = registry.get("a2pr")
    x = harness.random_inputs(spec, np.random.default_rng(0))
    x[key] = x[key].copy()
    x[key].flat[0] = np.nan
    for call in (lambda: spec(**x), lambda: run_optimized(spec, x, spec.config(), "float64")):
        with pytest.raises(RLSpecValueError, match=rf"^{key}\b"):
            call()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_expo_nonfinite_mu_raises_in_both_layers(value):
    """EXPO: a non-finite edit-policy mean mu raises RLSpecValueError naming mu in both layers (torch took it)."""
    spec = registry.get("expo")
    x = harness.random_inputs(spec, np.random.default_rng(0))
    x["mu"] = x["mu"].copy()
    x["mu"][0, 0] = value
    for call in (lambda: spec(**x), lambda: run_optimized(spec, x, spec.config(), "float64")):
        with pytest.raises(RLSpecValueError, match=r"^mu\b"):
            call()


@pytest.mark.parametrize("key", ["eps", "x", "z"])
def test_gpc_nonfinite_input_raises_in_both_layers(key):
    """GPC: a non-finite prediction, trajectory or noise raises RLSpecValueError naming it in both layers
    (torch composed them into a non-finite step)."""
    spec = registry.get("gpc")
    x = harness.random_inputs(spec, np.random.default_rng(0))
    x[key] = x[key].copy()
    x[key].flat[0] = np.inf
    for call in (lambda: spec(**x), lambda: run_optimized(spec, x, spec.config(), "float64")):
        with pytest.raises(RLSpecValueError, match=rf"^{key}\b"):
            call()


@pytest.mark.parametrize("name", ["ppo", "brrl", "gbpo", "riskpo", "igpo_inpainting_loss"])
def test_group_token_mean_group_ids_follow_the_reference(name):
    """agg='group-token-mean' reads the ids through group_ids in both layers: integral floats give the int
    result, strings raise RLSpecValueError naming group (torch's aggregation raised a TypeError from unique)."""
    import dataclasses
    spec = registry.get(name)
    x = harness.random_inputs(spec, np.random.default_rng(3))
    cfg = dataclasses.replace(spec.config(), agg="group-token-mean")
    g = np.arange(x["mask"].shape[0]) // 2
    ints = run_optimized(spec, {**x, "group": g}, cfg, "float64")
    floats = run_optimized(spec, {**x, "group": g.astype(np.float64)}, cfg, "float64")
    assert ints["loss"] == floats["loss"] and abs(ints["loss"] - run_reference(spec, {**x, "group": g}, cfg)["loss"]) < 1e-9
    strings = {**x, "group": np.array([f"p{i}" for i in g])}
    for call in (lambda: run_reference(spec, strings, cfg), lambda: run_optimized(spec, strings, cfg, "float64")):
        with pytest.raises(RLSpecValueError, match="group"):
            call()


@pytest.mark.parametrize("name", ["reinforce_pp", "reinforce_pp_baseline", "kl_in_reward"])
def test_empty_time_axis_is_defined(name):
    """T = 0 gives an empty (B, 0) result in both layers (it used to raise from an argmax over nothing)."""
    spec = registry.get(name)
    x = harness.random_inputs(spec, np.random.default_rng(0))
    lay = layout(spec)
    x = {k: (v[:, :0] if k in lay.tokens else v) for k, v in x.items()}
    ref = run_reference(spec, x, spec.config())
    got = run_optimized(spec, x, spec.config(), "float64")
    assert all(np.asarray(v).shape[1:] == (0,) for v in ref.values()) and ref.keys() == harness.flatten(got).keys()

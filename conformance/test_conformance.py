"""Conformance of the implementation chosen by ``--impl`` (default ``optimized``) with the reference.

* ``test_fixed_case``: every named fixed case of the harness (ids = case ids), every entry the
  implementation supports, every dtype it computes in; entries of the implementation's expectation
  file are marked xfail with their reason.
* ``test_differential``: hypothesis draws fresh batches (ragged masks, garbage padding, random
  groups) and compares loss AND dlogp (policy losses, KL terms) or every output (advantages and other
  kinds) with the reference, in float64 and float32.
* invariance tests of the implementation itself: data-parallel / micro-batch sharding with the
  global normalizer (shard losses and gradients sum to the full-batch ones), permutation of the
  sequences in a batch, and values at masked positions not mattering.

Cases, configurations and verdicts are the CLI's: fixed cases come from ``harness.cases_for`` with the
adapter's conventions and group layouts (``harness.case_options``), the invariance tests run the entry under
the adapter's conventions, and a case the adapter raises ``Unsupported`` for is a skip ("unsupported" in
``rlspec check``), never a failure.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rlspec.conformance import adapters, expectations, harness, tolerances
from rlspec.conformance import inputs as gen

_CACHE: dict[str, dict] = {}


def _setup(config) -> dict:
    """Adapter, supported entries and expectation entries for ``--impl`` (computed once per session)."""
    impl = config.getoption("--impl")
    if impl in _CACHE:
        return _CACHE[impl]
    info: dict = {"impl": impl, "adapter": None, "why": "", "specs": [], "unsupported": [], "entries": []}
    try:
        a = adapters.load(impl)
        ok, why = a.available()
    except ImportError as e:
        a, ok, why = None, False, str(e)
    if not ok:
        info["why"] = why or "not installed"
    else:
        info["adapter"] = a
        wanted = config.getoption("--algorithms")
        specs, _ = harness.checkable_specs([n.strip() for n in wanted.split(",") if n.strip()] if wanted else None)
        info["specs"] = [s for s in specs if a.supports(s)]
        info["unsupported"] = [s.name for s in specs if not a.supports(s)]
        path = config.getoption("--expectations")
        info["entries"] = expectations.load(path) if path else expectations.for_adapter(a)
    _CACHE[impl] = info
    return info


def _marks(entries, case_id: str, exact_only: bool = True):
    """An xfail mark for an exact case-id entry; a glob applies only to a case that differs (test_fixed_case
    applies it then). A hypothesis test (many drawn cases) is marked by globs too (``exact_only=False``)."""
    e = expectations.match(entries, case_id, differs=not exact_only)
    return [pytest.mark.xfail(reason=f"{e.status}: {e.reason}", strict=False)] if e else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    if not {"fixed_case", "diff_target", "unsupported_name", "invariance_target", "sharding_target"} & set(names):
        return
    info = _setup(metafunc.config)
    skip = [pytest.param(None, marks=pytest.mark.skip(reason=f"{info['impl']}: {info['why']}"), id="not-installed")]
    a = info["adapter"]
    if "fixed_case" in names:
        params = []
        if a is not None:
            for spec in info["specs"]:
                cases, _, _ = harness.cases_for(spec, tuple(a.dtypes), n_random=0, **harness.case_options(a, spec))
                params += [pytest.param(c, id=c.id, marks=_marks(info["entries"], c.id)) for c in cases]
        metafunc.parametrize("fixed_case", params or skip)
    if "diff_target" in names:
        params = []
        if a is not None:
            for spec in info["specs"]:
                if spec.kind not in gen.DEFAULT_KINDS and spec.make_inputs is None:
                    continue
                for dt in ("float64", "float32"):
                    if dt in a.dtypes:
                        cid = f"{spec.name}/{dt}/hypothesis"
                        params.append(pytest.param((spec.name, dt), id=cid, marks=_marks(info["entries"], cid, False)))
        metafunc.parametrize("diff_target", params or skip)
    if "unsupported_name" in names:
        params = [pytest.param(n, id=n) for n in info["unsupported"]]
        metafunc.parametrize("unsupported_name", params or [pytest.param(None, id="none")])
    if "invariance_target" in names:
        params = []
        if a is not None and "float64" in a.dtypes:
            params = [pytest.param(s.name, id=s.name) for s in info["specs"] if harness.uses_default_generator(s)]
        metafunc.parametrize("invariance_target", params or skip)
    if "sharding_target" in names:
        params = []
        if a is not None and "float64" in a.dtypes:
            params = [pytest.param(s.name, id=s.name) for s in info["specs"]
                      if s.kind in ("policy_loss", "value_loss", "kl") and harness.uses_default_generator(s)
                      and "batch_coupled" not in s.extras]  # selection over the whole batch: cannot be sharded
        metafunc.parametrize("sharding_target", params or skip)


@pytest.fixture(scope="session")
def info(request: pytest.FixtureRequest) -> dict:
    return _setup(request.config)


# --------------------------------------------------------------------------- fixed cases
def test_fixed_case(fixed_case: harness.Case, info: dict) -> None:
    """Each named fixed case (ragged masks, garbage padding, extreme log-ratios, ...) matches the reference."""
    res = harness.run_case(info["adapter"], fixed_case)
    if res.status == "unsupported":
        pytest.skip(res.message)
    e = expectations.match(info["entries"], res.case_id) if res.status in harness.UNEXPECTED else None
    if e is not None:  # a glob entry classifies it (exact ids are marked at collection)
        pytest.xfail(f"{e.status}: {e.reason}")
    assert res.status == "pass", f"{res.case_id}: {res.status}: {res.message}\n\nreproduction:\n{res.reproduction}"


def test_unsupported_entries_are_reported(unsupported_name: str | None, info: dict) -> None:
    """Entries the implementation does not support show up as skips with a reason (never silently)."""
    if unsupported_name is None:
        return
    res = harness.run(info["adapter"], algorithms=[unsupported_name], n_random=0)
    assert [r.status for r in res] == ["unsupported"]
    pytest.skip(f"{info['impl']} does not implement {unsupported_name}")


# --------------------------------------------------------------------------- differential (hypothesis)
@given(data=st.data())
def test_differential(diff_target: tuple[str, str], info: dict, data) -> None:
    """Random batches: loss and dlogp (or every output) agree with the reference within the dtype's tolerance."""
    from rlspec.reference import registry

    name, dtype = diff_target
    spec = registry.get(name)
    rng = data.draw(gen.seeds(), label="rng")
    inputs = harness.random_inputs(spec, rng)
    assume(inputs is not None and harness.accepts(spec, inputs, {})[0])
    case = harness.Case(id=f"{name}/{dtype}/hypothesis", algorithm=name, name="hypothesis", inputs=inputs,
                        dtype=dtype, tags=("random",))
    res = harness.run_case(info["adapter"], case, spec)
    assume(res.status != "unsupported")
    assert res.status == "pass", f"{res.message}\n\nreproduction:\n{res.reproduction}"


# --------------------------------------------------------------------------- invariances
def _config(adapter, spec, **overrides):
    """The entry's config as ``rlspec check`` builds it for this adapter: paper defaults, the adapter's
    conventions, then the test's own overrides."""
    conv = harness.case_options(adapter, spec)["conventions"]
    return spec.config(**{**conv, **overrides})


def _run64(adapter, spec, inputs: dict, cfg) -> dict:
    """The adapter's float64 outputs; a case the adapter cannot express (``Unsupported``) is skipped, as the CLI
    reports it "unsupported"."""
    try:
        out = adapter.run(spec, harness.cast_value(inputs, "float64"), cfg, "float64")
    except NotImplementedError as e:
        pytest.skip(f"unsupported: {e}")
    return harness.flatten(harness.name_outputs(spec, harness.to_numpy(out)))


def _assert_same(want: dict, got: dict, inputs: dict, what: str) -> None:
    m = inputs.get("mask")
    status, a, r, out, msg = harness.compare(want, got, "float64", m if isinstance(m, np.ndarray) else None,
                                             harness.n_terms_of(inputs))
    assert status == "pass", f"{what}: {msg}"


def _rows(inputs: dict, idx: np.ndarray) -> dict:
    B = inputs["mask"].shape[0]
    return {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == B else v)
            for k, v in inputs.items()}


@given(data=st.data())
def test_sharding_with_global_normalizer(sharding_target: str, info: dict, data) -> None:
    """Sum over shards (micro-batches / ranks) of loss and gradient, each computed with the global
    normalizer, equals the full-batch loss and gradient (design: aggregation is linear)."""
    from rlspec.reference import aggregation, registry
    from rlspec.reference.aggregation import MODES

    spec = registry.get(sharding_target)
    if spec.config_cls is None or \
            "normalizer" not in {f for f in spec.config().__dataclass_fields__}:
        pytest.skip(f"{spec.name}: no global-normalizer option to shard with")
    rng = data.draw(gen.seeds(), label="rng")
    inputs = harness.random_inputs(spec, rng)
    params, _, var_kw = harness.signature_of(spec)
    modes = [m for m in MODES if m != "group-token-mean" or "group" in inputs]
    mode = data.draw(st.sampled_from(modes), label="agg")
    B = inputs["mask"].shape[0]
    assume(B >= 2)
    adapter = info["adapter"]
    norm = aggregation.global_normalizer(inputs["mask"], mode, group=inputs.get("group"),
                                         seq_denominator=getattr(_config(adapter, spec), "seq_denominator", None))
    assume(norm > 0)
    cfg_full = _config(adapter, spec, agg=mode)
    assume(harness.accepts(spec, inputs, {"agg": mode})[0])
    if mode == "group-token-mean":  # groups must not be split: shard by group id
        keys = np.unique(inputs["group"])
        cut = data.draw(st.integers(1, max(len(keys) - 1, 1)), label="cut")
        first = np.isin(inputs["group"], keys[:cut])
        shards = [np.flatnonzero(first), np.flatnonzero(~first)]
    else:
        cut = data.draw(st.integers(1, B - 1), label="cut")
        shards = [np.arange(cut), np.arange(cut, B)]
    shards = [s for s in shards if s.size]
    full = _run64(adapter, spec, inputs, cfg_full)
    loss_name, grad_name = harness.output_names(spec)[:2]  # ("loss", "dlogp") or, for a critic, ("loss", "dvalues")
    total, grad = 0.0, np.zeros(inputs["mask"].shape)
    for idx in shards:
        out = _run64(adapter, spec, _rows(inputs, idx), _config(adapter, spec, agg=mode, normalizer=norm,
                                                                 const=float(inputs["mask"].shape[1])
                                                                 if mode == "seq-mean-token-sum-norm" else None))
        total += float(out[loss_name])
        grad[idx] = np.asarray(out[grad_name])
    _assert_same(full, {loss_name: total, grad_name: grad}, inputs, f"{spec.name} sharded with agg={mode}")


@given(data=st.data())
def test_permutation_of_sequences(invariance_target: str, info: dict, data) -> None:
    """Permuting the sequences of a batch (with their groups) permutes per-token outputs and leaves scalars."""
    from rlspec.reference import registry

    spec = registry.get(invariance_target)
    if "batch_coupled" in spec.extras:
        pytest.skip(f"{spec.name}: {spec.extras['batch_coupled']}")
    rng = data.draw(gen.seeds(), label="rng")
    inputs = harness.random_inputs(spec, rng)
    assume(harness.accepts(spec, inputs, {})[0])
    perm = rng.permutation(inputs["mask"].shape[0])
    adapter = info["adapter"]
    base = _run64(adapter, spec, inputs, _config(adapter, spec))
    permuted = _rows(inputs, perm)
    got = _run64(adapter, spec, permuted, _config(adapter, spec))
    want = {k: (np.asarray(v)[perm] if np.ndim(v) >= 1 and np.shape(v)[0] == len(perm) else v) for k, v in base.items()}
    _assert_same(want, got, permuted, f"{spec.name} with sequences permuted")


@given(data=st.data())
def test_masked_values_do_not_matter(invariance_target: str, info: dict, data) -> None:
    """Replacing the values at masked positions (NaN, ±inf, huge, or zeros) changes no output."""
    from rlspec.reference import registry

    spec = registry.get(invariance_target)
    rng = data.draw(gen.seeds(), label="rng")
    inputs = harness.random_inputs(spec, rng)
    assume(harness.accepts(spec, inputs, {})[0])
    M = inputs["mask"]
    other = dict(inputs)
    zeros = data.draw(st.booleans(), label="zeros")
    for k, v in inputs.items():
        if isinstance(v, np.ndarray) and v.shape == M.shape and np.issubdtype(v.dtype, np.floating):
            other[k] = np.where(M, v, 0.0) if zeros else gen.fill_garbage(v, M, rng)
    adapter = info["adapter"]
    _assert_same(_run64(adapter, spec, inputs, _config(adapter, spec)), _run64(adapter, spec, other,
                 _config(adapter, spec)), inputs,
                 f"{spec.name} with other values at masked positions")


def test_tolerance_table_is_the_one_in_tolerances() -> None:
    """The suite uses the tolerances module (float64 tighter than float32 tighter than bfloat16)."""
    r64, r32, r16 = (tolerances.tolerance(d)[0] for d in ("float64", "float32", "bfloat16"))
    assert r64 < r32 < r16

"""Probes whose framework call is one piece of source code: run by the check, printed as the reproduction.

Used by every framework module (verl, TRL, OpenRLHF, Liger, AReaL). A :class:`SourceCall` is Python that needs
only the framework, NumPy and torch: ``setup`` (run once: imports, configs, helper functions) and a function
``run(b, full=None)`` that returns the framework's result for ``b``, a dict of torch tensors as
:func:`rlspec.conformance.probes.core.torch_batch` makes them (a scalar loss differentiable through
``b["logp"]``, or a (B, T) tensor for estimators). ``full`` is the whole mini-batch when ``b`` is one part of a
split (a micro-batch, a rank), for the global normalisers a trainer passes. ``run`` is either written by the
framework module in ``setup`` or built from ``body``: statements computing ``loss`` from ``b`` and ``full``.

The checks below decide with the framework-agnostic checks of :mod:`rlspec.conformance.probes.core` and, for a
finding, build the reproduction from the same text: the call's source, the batches as exact literals, and an
``assert`` of the property that failed. Before a finding is reported its reproduction is executed here
(:func:`run_script`); one that does not fail with ``AssertionError`` turns the verdict into ``error`` (a probe
bug), never a finding. :func:`run_reproductions` runs the same :func:`run_script` in a fresh interpreter without
rlspec on the path (what the tests check).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rlspec.conformance import tolerances
from rlspec.conformance.probes import core
from rlspec.conformance.probes.core import Probe, Verdict, finding, ok, unsupported

PREAMBLE = "import math\nimport numpy as np\nimport torch\n"
"""What every call's source starts with unless a framework module gives its own preamble."""

#: what a framework raises when it refuses an input or configuration (a check wrapped by :func:`safe` reports it
#: as ``unsupported``)
REFUSALS = (ValueError, AssertionError, TypeError, NotImplementedError, KeyError)


# =========================================================================== the call as source
class SourceCall:
    """A framework call written once as Python source (see the module docstring).

    ``body`` (optional) computes ``out`` (default ``loss``) from the dict ``b`` of batch tensors and may read
    ``full`` (``b`` itself when the call is not part of a split); without ``body``, ``setup`` defines
    ``run(b, full=None)`` itself. The same text runs in the check and in the reproduction.
    """

    def __init__(self, setup: str, body: str | None = None, *, out: str = "loss", preamble: str = PREAMBLE) -> None:
        self.setup = textwrap.dedent(setup).strip("\n")
        self.body = None if body is None else textwrap.dedent(body).strip("\n")
        self.out = out
        self.preamble = preamble

    def function_source(self) -> str:
        """``def run(b, full=None): ...`` built from ``body`` ("" when ``setup`` defines ``run``)."""
        if self.body is None:
            return ""
        return ("def run(b, full=None):\n    full = b if full is None else full\n"
                + textwrap.indent(self.body, "    ") + f"\n    return {self.out}\n")

    @property
    def source(self) -> str:
        """Preamble, setup and ``run``: what the check executes and the reproduction prints."""
        parts = (self.preamble.rstrip("\n"), self.setup, self.function_source().rstrip("\n"))
        return "\n\n".join(p for p in parts if p) + "\n"

    def namespace(self) -> dict[str, Any]:
        return _exec_cached(self.source)

    def __call__(self, b: Mapping[str, Any], full: Mapping[str, Any] | None = None) -> Any:
        return self.namespace()["run"](b, full)


_NS_CACHE: dict[str, dict[str, Any]] = {}


def _exec_cached(src: str) -> dict[str, Any]:
    """The namespace of ``src`` executed once (calls with the same source share it)."""
    ns = _NS_CACHE.get(src)
    if ns is None:
        ns = {"__name__": "rlspec_probe_call"}
        exec(compile(src, "<probe call>", "exec"), ns)  # noqa: S102 - our own generated source
        if len(_NS_CACHE) > 512:
            _NS_CACHE.clear()
        _NS_CACHE[src] = ns
    return ns


def kwargs_source(d: Mapping[str, Any]) -> str:
    """``, k=v, ...`` (sorted) for keyword arguments written into a call's source."""
    return "".join(f", {k}={v!r}" for k, v in sorted(d.items()))


def strings_in(src: str, pattern: str) -> list[str]:
    """The quoted strings inside every match of ``pattern`` in ``src`` (an if-chain's accepted options)."""
    out: list[str] = []
    for m in re.finditer(pattern, src):
        for s in re.findall(r"[\"']([^\"']+)[\"']", m.group(0)):
            if s not in out:
                out.append(s)
    return out


# =========================================================================== reproductions
HELPERS = '''
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
'''


def literal(x: Any) -> str:
    """A tensor as exact source (float64 values round-trip through repr; other dtypes cast back)."""
    torch = core._torch()
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.dtype == torch.bool:
        return f"torch.tensor({t.tolist()!r})"
    if not t.is_floating_point():
        return f"torch.tensor({t.tolist()!r}, dtype={t.dtype})"
    s = repr(t.double().tolist()).replace("nan", "float('nan')").replace("inf", "float('inf')")
    cast = "" if t.dtype == torch.float64 else f".to({t.dtype})"
    return f"torch.tensor({s}, dtype=torch.float64){cast}"


def batch_source(name: str, batch: Mapping[str, Any]) -> str:
    """``name = {...}`` with every tensor of the batch as an exact literal."""
    torch = core._torch()
    items = ",\n".join(f"    {k!r}: {literal(v)}" for k, v in batch.items() if isinstance(v, torch.Tensor))
    return f"{name} = {{\n{items},\n}}"


def script(call: SourceCall, batches: Mapping[str, Mapping[str, Any]], tail: str, *, header: str = "") -> str:
    """A standalone reproduction: the call's source, the batches as literals, then ``tail`` (the assert)."""
    parts = [f"# {header}" if header else "", call.source.rstrip("\n"), HELPERS.strip("\n"),
             *[batch_source(n, b) for n, b in batches.items()], textwrap.dedent(tail).strip("\n")]
    return "\n\n".join(p for p in parts if p) + "\n"


def run_script(src: str) -> tuple[str, str]:
    """Run one reproduction in a fresh namespace, its output captured: ``("AssertionError", message)`` when it
    fails as a reproduction must, ``("passed", "")`` when it runs through, else (the exception's name,
    ``"<name>: <message>"`` then the tail of the traceback after a line ``--- traceback``)."""
    import contextlib
    import io
    import traceback

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(src, "<reproduction>", "exec"), {"__name__": "__main__"})  # noqa: S102 - generated here
    except AssertionError as e:
        return "AssertionError", str(e)[:200]
    except Exception as e:  # noqa: BLE001 - any other failure is reported by name
        return type(e).__name__, f"{type(e).__name__}: {str(e)[:200]}\n--- traceback\n{traceback.format_exc()[-600:]}"
    return "passed", ""


def _message(detail: str) -> str:
    """The ``"<name>: <message>"`` part of :func:`run_script`'s detail."""
    return detail.split("\n--- traceback\n")[0]


def run_reproductions(scripts: Sequence[str], python: str, *, timeout: float = 900.0) -> list[tuple[str, str]]:
    """:func:`run_script` on each reproduction in one fresh interpreter ``python`` without rlspec on the path
    (only the framework, NumPy and torch); ``(outcome, detail)`` per script."""
    import inspect
    import json
    import os
    import subprocess
    import tempfile

    runner = "import json, sys\n\n\n" + inspect.getsource(run_script) + (
        "\n\nscripts = json.load(open(sys.argv[1]))\n"
        "json.dump([run_script(src) for src in scripts], open(sys.argv[2], 'w'))\n")
    with tempfile.TemporaryDirectory() as d:
        src, res, path = (os.path.join(d, n) for n in ("in.json", "out.json", "runner.py"))
        with open(src, "w") as f:
            json.dump(list(scripts), f)
        with open(path, "w") as f:
            f.write(runner)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the framework, no rlspec
        subprocess.run([python, path, src, res], check=True, timeout=timeout, env=env, cwd=d, capture_output=True)
        with open(res) as f:
            return [tuple(x) for x in json.load(f)]


def _reproduced(v: Verdict, call: SourceCall, batches: Mapping[str, Mapping[str, Any]], tail: str,
                header: str) -> Verdict:
    """Attach the reproduction to a finding and run it: one that does not fail with AssertionError here makes
    the verdict an ``error`` (a probe bug), never a finding."""
    v.reproduction = script(call, batches, tail, header=header)
    outcome, detail = run_script(v.reproduction)
    if outcome == "AssertionError":
        return v
    why = "it ran without failing" if outcome == "passed" else f"it raised {_message(detail)}"
    return Verdict("error", summary=f"probe bug: the finding ({v.summary}) did not reproduce: {why}",
                   measured=v.measured)


# =========================================================================== grading
def _n(batch: Mapping[str, Any]) -> int:
    return int(batch["mask"].sum())


def _tol(dtype: str, n: int) -> tuple[float, float]:
    """(rtol, atol) a reproduction asserts with: the tolerance the check compared with."""
    return tolerances.tolerance(core.compared_as(dtype), n)


def _severity(ref: Any, got: Any, default: str = "wrong value") -> str:
    """``numerics within dtype`` when the difference is a rounding-size relative error (< 1e-5), else
    ``default`` (NaN when the framework's numbers are not finite)."""
    r, g = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if not np.isfinite(g).all():
        return "NaN"
    if not np.isfinite(r).all():
        return default
    scale = max(float(np.max(np.abs(r), initial=0.0)), 1e-6)   # errors relative to the output's scale
    return "numerics within dtype" if float(np.max(np.abs(r - g), initial=0.0)) / scale < 1e-5 else default


def _grade(v: Verdict, scale: Callable[[], float]) -> Verdict:
    """A metamorphic finding whose difference is rounding-size (relative to ``scale()``, < 1e-5) is numerics
    within the dtype (e.g. a float32 cast inside the framework reordered by padding or a split), not a wrong
    value."""
    err = v.measured.get("max_abs_err")
    if v.status == "finding" and v.severity in ("wrong value", "wrong gradient") and err is not None \
            and math.isfinite(err) and err / max(abs(scale()), 1e-6) < 1e-5:
        v.severity = "numerics within dtype"
        v.key = (v.key or "") + ":rounding"
    return v


# =========================================================================== checks of a loss
def float_fields(batch: Mapping[str, Any]) -> list[str]:
    """The batch's float (B, T) fields: what a trainer's tensors hold at padded positions."""
    torch = core._torch()
    shape = tuple(batch["mask"].shape)
    return [k for k, v in batch.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and tuple(v.shape) == shape]


def check_padding_width(call: SourceCall, batch: Mapping[str, Any], header: str) -> Verdict:
    """Appending 3 padded columns changes neither the loss nor the valid gradient."""
    v = _grade(core.check_padding_width(call, batch, extra=3, seed=0), lambda: core.evaluate(call, batch)[0])
    if v.status != "finding":
        return v
    wide = core.pad_columns(batch, 3, np.random.default_rng(0))
    rt, at = _tol("float64", _n(batch))
    return _reproduced(v, call, {"b": batch, "b_wide": wide}, f"""
        v0, g0 = value_and_grad(b)
        v1, g1 = value_and_grad(b_wide)
        m, T = b["mask"], b["mask"].shape[1]
        print("loss", v0, "with 3 more padded columns", v1)
        assert close(v1, v0, {rt!r}, {at!r}), "the loss depends on the padding width"
        assert g0 is None or close(g1[:, :T][m], g0[m], {rt!r}, {at!r}), "the gradient depends on the padding width"
        """, header)


def check_padding_values(call: SourceCall, batch: Mapping[str, Any], header: str) -> Verdict:
    """Other garbage at the masked positions of every float (B, T) field changes neither the loss nor the
    valid gradient."""
    other = core.redraw_padding(batch, seed=1, keys=float_fields(batch))
    v = _grade(core.check_padding_values(call, batch, other=other), lambda: core.evaluate(call, batch)[0])
    if v.status != "finding":
        return v
    rt, at = _tol("float64", _n(batch))
    return _reproduced(v, call, {"b": batch, "b_other": other}, f"""
        v0, g0 = value_and_grad(b)
        v1, g1 = value_and_grad(b_other)   # same valid entries, other values at masked positions
        m = b["mask"]
        print("loss", v0, "with other padding values", v1)
        assert close(v1, v0, {rt!r}, {at!r}), "the loss reads padded positions"
        assert g0 is None or close(g1[m], g0[m], {rt!r}, {at!r}), "the gradient reads padded positions"
        """, header)


def check_permutation(call: SourceCall, batch: Mapping[str, Any], header: str) -> Verdict:
    """Permuting the rows changes neither the loss nor the per-row gradient."""
    v = _grade(core.check_permutation(call, batch, seed=2), lambda: core.evaluate(call, batch)[0])
    if v.status != "finding":
        return v
    perm = np.random.default_rng(2).permutation(batch["mask"].shape[0]).tolist()   # core's permutation
    rt, at = _tol("float64", _n(batch))
    return _reproduced(v, call, {"b": batch}, f"""
        perm = {perm!r}
        v0, g0 = value_and_grad(b)
        v1, g1 = value_and_grad(rows(b, perm))
        m = b["mask"]
        print("loss", v0, "rows permuted", v1)
        assert close(v1, v0, {rt!r}, {at!r}), "the loss depends on the order of the rows"
        assert g0 is None or close(g1[m[perm]], g0[perm][m[perm]], {rt!r}, {at!r}), "the gradient depends on row order"
        """, header)


def check_split(call: SourceCall, batch: Mapping[str, Any], header: str, *, what: str = "micro-batches",
                splits: Sequence[Sequence[int]] | None = None, parts: int = 2) -> Verdict:
    """The parts (``call(part, full)``; default: :func:`core.uneven_splits` into ``parts``) add up to the full
    batch (``call(b, b)``), loss and gradient."""
    splits = [list(s) for s in (splits or core.uneven_splits(batch, parts))]
    v = core.check_split(lambda sub, full: call(sub, full), batch, splits=splits, what=what)
    v = _grade(v, lambda: core.evaluate(lambda b: call(b, b), batch)[0])
    if v.status != "finding":
        return v
    rt, at = _tol("float64", _n(batch))
    return _reproduced(v, call, {"b": batch}, f"""
        v0, g0 = value_and_grad(b, b)
        splits = {splits!r}
        total, g = 0.0, torch.zeros_like(b["logp"])
        for idx in splits:   # each part normalised with the whole batch's counts, as the trainer passes them
            vi, gi = value_and_grad(rows(b, idx), b)
            total += vi
            if gi is not None:
                g[idx] = gi
        m = b["mask"]
        print("full batch", v0, "sum over parts", total)
        assert close(total, v0, {rt!r}, {at!r}), "the parts do not add up to the full-batch loss"
        assert g0 is None or close(g[m], g0[m], {rt!r}, {at!r}), "the accumulated gradient differs from the full batch's"
        """, header)


def check_dtype(call: SourceCall, batch: Mapping[str, Any], dtype: Any, header: str) -> Verdict:
    """The loss and gradient in ``dtype`` match float64 on the same rounded inputs (:func:`core.check_dtype`)."""
    v = core.check_dtype(call, batch, dtype)
    if v.status != "finding":
        return v
    name = str(dtype).replace("torch.", "")
    exact = core.round_to(batch, dtype)
    rt, at = _tol(name, _n(batch))
    return _reproduced(v, call, {"b": exact}, f"""
        v0, g0 = value_and_grad(b)   # float64 on inputs already rounded to {name}
        low = {{k: (x.to(torch.{name}) if x.is_floating_point() else x) for k, x in b.items()}}
        v1, g1 = value_and_grad(low)
        m = b["mask"]
        print("float64", v0, "{name}", v1)
        assert math.isfinite(v1) and close(v1, v0, {rt!r}, {at!r}), "the {name} loss is off"
        assert g0 is None or g1 is None or close(g1[m], g0[m], {rt!r}, {at!r}), "the {name} gradient is off"
        """, header)


def check_gradient(call: SourceCall, batch: Mapping[str, Any], header: str) -> Verdict:
    """Autograd's d loss / d logp equals central finite differences of the loss (step and tolerance coarser
    when the comparisons are held to a lower internal precision)."""
    eps, rtol = (1e-6, 1e-4) if core.compared_as("float64") == "float64" else (1e-3, 1e-2)
    v = core.check_gradient(call, batch, eps=eps, rtol=rtol)
    if v.status != "finding":
        return v
    return _reproduced(v, call, {"b": batch}, f"""
        v, g = value_and_grad(b)
        m = b["mask"]
        fd = torch.zeros_like(b["logp"], dtype=torch.float64)
        for i, t in zip(*torch.nonzero(m, as_tuple=True)):
            vals = []
            for s in ({eps!r}, {-eps!r}):
                bb = {{k: (x.detach().clone() if torch.is_tensor(x) else x) for k, x in b.items()}}
                bb["logp"][i, t] += s
                with torch.no_grad():
                    vals.append(float(run(bb)))
            fd[i, t] = (vals[0] - vals[1]) / {2 * eps!r}
        print("autograd", None if g is None else g[m], "finite differences", fd[m])
        assert g is not None and torch.isfinite(g).all(), "no (finite) gradient"
        scale = max(float(fd[m].abs().max()), 1e-8)
        assert float((g[m].double() - fd[m]).abs().max()) <= {rtol!r} * scale + 1e-7, "autograd != d loss / d logp"
        """, header)


def check_finite(call: SourceCall, batch: Mapping[str, Any], header: str, what: str = "") -> Verdict:
    """The loss and gradient are finite on an input the framework accepts (:func:`core.check_finite`)."""
    v = core.check_finite(call, batch, what=what)
    if v.status != "finding":
        return v
    return _reproduced(v, call, {"b": batch}, """
        try:
            v, g = value_and_grad(b)
            raised = None
        except Exception as e:  # the input is one the function accepts: it should return numbers
            raised = e
        assert raised is None, f"raises {raised!r}"
        print("loss", v, "gradient", g)
        assert math.isfinite(v), "non-finite loss"
        assert g is None or torch.isfinite(g).all(), "non-finite gradient"
        """, header)


def check_expected(call: SourceCall, batch: Mapping[str, Any], ref_v: float, ref_g: np.ndarray | None, label: str,
                   header: str, *, key: str = "", grad_only: bool = False, dtype: str = "float64",
                   what: str = "") -> Verdict:
    """The loss (unless ``grad_only``: a stop-gradient surrogate whose value is not the objective) and dlogp
    equal the expected ones (``label`` says where they come from; keys ``ref-value:<key>`` and the like)."""
    key = key or label
    try:
        v, g = core.evaluate(call, batch)
    except Exception:  # noqa: BLE001 - refused (unsupported) or crashed (finding): check_finite says which
        return check_finite(call, batch, header)
    m = core._valid(batch)
    n = int(m.sum())
    ref_g = None if ref_g is None else np.asarray(ref_g, dtype=np.float64)
    bad = None
    if not grad_only and not core._cmp(ref_v, v, dtype, n)[0]:
        bad = (_severity(ref_v, v), f"ref-value:{key}", f"{what or 'the loss'} is {v:.6g} where {label} gives "
               f"{ref_v:.6g}")
    elif ref_g is not None:
        if g is None or (not np.any(g[m]) and np.any(ref_g[m])):
            bad = ("no gradient", f"ref-nograd:{key}", f"{what or 'the loss'} carries no gradient where {label}'s "
                   "is non-zero")
        elif not core._cmp(ref_g[m], g[m], dtype, n)[0]:
            err = float(np.nanmax(np.abs(ref_g[m] - g[m])))
            bad = (_severity(ref_g[m], g[m], "wrong gradient"), f"ref-grad:{key}",
                   f"{what or 'the loss'}: its gradient differs from {label}'s by up to {err:.3g}")
    if bad is None:
        return ok(max_abs_err=abs(v - ref_v))
    rt, at = _tol(dtype, n)
    want_g = "None" if ref_g is None else literal(ref_g[m])
    value_assert = "" if grad_only else \
        f'assert close(v, expected_loss, {rt!r}, {at!r}), f"loss {{v}}, the expected objective gives {{expected_loss}}"\n'
    tail = f"""
v, g = value_and_grad(b)
m = b["mask"]
expected_loss = {ref_v!r}   # {label}, computed from its equations
expected_grad = {want_g}   # its d loss / d logp at the valid tokens
print("loss", v, "expected", expected_loss)
{value_assert}assert expected_grad is None or (g is not None and close(g[m], expected_grad, {rt!r}, {at!r})), \\
    f"gradient {{None if g is None else g[m]}}, expected {{expected_grad}}"
"""
    severity, k, summary = bad
    return _reproduced(finding(severity, summary, key=k, got=v, expected=ref_v), call, {"b": batch}, tail, header)


def check_reference(call: SourceCall, batch: Mapping[str, Any], entry: str, config: Mapping[str, Any],
                    header: str, *, grad_only: bool = False, names: Mapping[str, str] | None = None,
                    dtype: str = "float64", what: str = "",
                    extra_terms: Sequence[tuple[str, Mapping[str, Any], float]] = ()) -> Verdict:
    """:func:`check_expected` against the reference entry under ``config`` (the paper's defaults overridden by
    what the call claims), plus ``extra_terms``: a stated composition ``entry + Σ w · other entry``."""
    try:
        ref_v, ref_g = core.reference_value(batch, entry, config, names)
        for e2, c2, w in extra_terms:
            v2, g2 = core.reference_value(batch, e2, c2, names)
            ref_v += w * v2
            ref_g = None if ref_g is None or g2 is None else ref_g + w * g2
    except Exception as e:  # noqa: BLE001 - the reference refuses this configuration: nothing to compare
        return unsupported(f"reference {entry} refuses {core.describe(config)}: {type(e).__name__}: {e}")
    label = entry + (f" ({core.describe(config)})" if config else "")
    label += "".join(f" + {w:g}·{e2}" + (f" ({core.describe(c2)})" if c2 else "") for e2, c2, w in extra_terms)
    return check_expected(call, batch, ref_v, ref_g, label, header, key=entry, grad_only=grad_only, dtype=dtype,
                          what=what)


def _as_run_b(call_a: SourceCall, call_b: SourceCall) -> str:
    """Source defining ``run_b``, ``call_b``'s function, in a reproduction that starts with ``call_a``'s source:
    renamed when both share their setup, else built with its own setup inside a function (so that its names,
    e.g. another config object, do not replace ``call_a``'s)."""
    if call_b.source == call_a.source:
        return "run_b = run\n"
    if (call_b.preamble, call_b.setup) == (call_a.preamble, call_a.setup):
        return call_b.function_source().replace("def run(", "def run_b(")
    own = call_b.source.rstrip("\n")
    return ("def _run_b_with_its_own_setup():\n" + textwrap.indent(own, "    ") + "\n    return run\n\n\n"
            "run_b = _run_b_with_its_own_setup()\n")


def check_differs(call_a: SourceCall, call_b: SourceCall, batch: Mapping[str, Any], header: str, summary: str,
                  key: str, severity: str = "wrong value") -> Verdict:
    """Two calls that should give different results (a knob that must matter) give the same: a finding."""
    va, _ = core.evaluate(call_a, batch)
    vb, _ = core.evaluate(call_b, batch)
    if abs(va - vb) > 1e-9 * max(1.0, abs(va)):
        return ok(a=va, b=vb)
    tail = _as_run_b(call_a, call_b) + """
v_a, _ = value_and_grad(b)
_run_a = run
run = run_b
v_b, _ = value_and_grad(b)
run = _run_a
print("setting a", v_a, "setting b", v_b)
assert abs(v_a - v_b) > 1e-9 * max(1.0, abs(v_a)), "the knob changes nothing"
"""
    return _reproduced(finding(severity, summary, key=key, a=va, b=vb), call_a, {"b": batch}, tail, header)


def check_agree(call_a: SourceCall, call_b: SourceCall, batch: Mapping[str, Any], header: str, what: str,
                key: str, *, dtype: str = "float64") -> Verdict:
    """Two paths for one quantity (loss and gradient) agree."""
    va, ga = core.evaluate(call_a, batch)
    vb, gb = core.evaluate(call_b, batch)
    m = core._valid(batch)
    n = int(m.sum())
    okv = core._cmp(va, vb, dtype, n)[0]
    okg = ga is None or gb is None or core._cmp(ga[m], gb[m], dtype, n)[0]
    if okv and okg:
        return ok(a=va, b=vb)
    rt, at = _tol(dtype, n)
    tail = _as_run_b(call_a, call_b) + f"""
v_a, g_a = value_and_grad(b)
_run_a = run
run = run_b
v_b, g_b = value_and_grad(b)
run = _run_a
m = b["mask"]
print("path a", v_a, "path b", v_b)
assert close(v_b, v_a, {rt!r}, {at!r}), "the two paths give different losses"
assert g_a is None or g_b is None or close(g_b[m], g_a[m], {rt!r}, {at!r}), "the two paths give different gradients"
"""
    v = finding("wrong value" if not okv else "wrong gradient",
                f"{what}: {va:.6g} vs {vb:.6g}" if not okv else f"{what}: gradients differ", key=key, a=va, b=vb)
    return _reproduced(v, call_a, {"b": batch}, tail, header)


def check_script(call: SourceCall, tail: str, header: str, *, key: str,
                 summary: Callable[[str], str], severity: Callable[[str], str]) -> Verdict:
    """A check that is its own reproduction: ``tail`` (after the call's source) asserts the correct behaviour.
    AssertionError: a finding (``summary`` / ``severity`` of the assertion message); runs through: ok; any
    other exception: the framework refuses (unsupported)."""
    src = script(call, {}, tail, header=header)
    outcome, detail = run_script(src)
    if outcome == "AssertionError":
        return finding(severity(detail), summary(detail), src, key=key)
    if outcome == "passed":
        return ok()
    return unsupported(f"refused: raised {_message(detail)}")


# =========================================================================== checks of an array (estimators)
def crash_finding(call: SourceCall, batch: Mapping[str, Any], header: str, error: BaseException,
                  key: str) -> Verdict:
    """A crash on an input the function accepts (it raised something other than a validation error)."""
    tail = """
try:
    out = run(b)
    raised = None
except Exception as e:  # an input the function accepts: it should return numbers
    raised = e
assert raised is None, f"raises {raised!r}"
"""
    return _reproduced(finding("crash", f"raises {type(error).__name__}: {str(error)[:120]}", key=key), call,
                       {"b": batch}, tail, header)


def check_array_finite(call: SourceCall, batch: Mapping[str, Any], header: str) -> Verdict:
    """``call`` returns a (B, T) tensor that is finite at valid tokens."""
    try:
        out = call(core.clone(batch))
    except REFUSALS as e:
        return unsupported(f"refused with {type(e).__name__}: {str(e)[:160]}")
    except Exception as e:  # noqa: BLE001
        return crash_finding(call, batch, header, e, f"crash:{type(e).__name__}")
    if bool(core._torch().isfinite(out.detach()[batch["mask"]]).all()):
        return ok()
    tail = """
out = run(b)
print(out)
assert torch.isfinite(out[b["mask"]]).all(), "NaN/inf advantages at valid tokens"
"""
    return _reproduced(finding("NaN", "the advantages are NaN/inf at valid tokens", key="adv-nonfinite"), call,
                       {"b": batch}, tail, header)


def check_array_reference(call: SourceCall, batch: Mapping[str, Any], expected: np.ndarray, header: str,
                          summary: str, key: str, *, dtype: str = "float64",
                          severity: str = "wrong value") -> Verdict:
    """``call`` returns a (B, T) tensor; its valid entries equal ``expected``'s."""
    try:
        got = call(core.clone(batch))
    except Exception as e:  # noqa: BLE001
        if isinstance(e, REFUSALS):
            return unsupported(f"refused with {type(e).__name__}: {str(e)[:160]}")
        return crash_finding(call, batch, header, e, f"crash:{key}")
    got = got.detach().double().numpy()
    m = core._valid(batch)
    n = max(int(m.sum()), 1)
    okv, err = core._cmp(expected[m], got[m], dtype, n)
    if okv:
        return ok(max_abs_err=err)
    rt, at = _tol(dtype, n)
    sev = _severity(expected[m], got[m], severity)
    if sev == "numerics within dtype":
        key += ":rounding"
        summary += f" by a rounding-size relative error (max abs {err:.2g})"
    tail = f"""
out = run(b)
m = b["mask"]
expected = {literal(expected[m])}
print("got", out[m].tolist())
print("expected", expected.tolist())
assert close(out[m], expected, {rt!r}, {at!r}), "wrong values at valid tokens"
"""
    return _reproduced(finding(sev, summary, key=key, max_abs_err=err), call, {"b": batch}, tail, header)


def check_array_agree(call_a: SourceCall, call_b: SourceCall, batch: Mapping[str, Any], header: str,
                      summary: str, key: str, *, transform: str = "", dtype: str = "float64",
                      b_batch: Mapping[str, Any] | None = None) -> Verdict:
    """Two array-valued paths agree at valid tokens. ``b_batch`` (default ``batch``) is the second call's
    input; ``transform`` maps the first call's output onto the second's layout (source using ``out_a``)."""
    b_batch = batch if b_batch is None else b_batch
    try:
        a = call_a(core.clone(batch)).detach().double()
        bb = call_b(core.clone(b_batch)).detach().double()
    except Exception as e:  # noqa: BLE001
        return unsupported(f"refused with {type(e).__name__}: {str(e)[:160]}")
    a = np.asarray(eval(transform, {"out_a": a, "np": np}) if transform else a,  # noqa: S307 - our own source
                   dtype=np.float64)
    m = core._valid(b_batch)
    n = max(int(m.sum()), 1)
    okv, err = core._cmp(a[m], bb.numpy()[m], dtype, n)
    if okv:
        return ok(max_abs_err=err)
    rt, at = _tol(dtype, n)
    sev = _severity(a[m], bb.numpy()[m])
    if sev == "numerics within dtype":
        key += ":rounding"
        summary += f" (rounding-size relative error, max abs {err:.2g})"
    tail = _as_run_b(call_a, call_b) + f"""
out_a = run(b)
{('out_a = ' + transform) if transform else ''}
out_b = run_b(b2)
m = b2["mask"]
print("path a", out_a[m].tolist())
print("path b", out_b[m].tolist())
assert close(out_b[m], out_a[m], {rt!r}, {at!r}), "the two paths disagree"
"""
    return _reproduced(finding(sev, summary, key=key, max_abs_err=err), call_a, {"b": batch, "b2": b_batch},
                       tail, header)


def check_array_padding(call: SourceCall, batch: Mapping[str, Any], header: str, *, summary: str,
                        key: str) -> Verdict:
    """Appending 3 padded columns does not change the (B, T) output at valid tokens."""
    wide = core.pad_columns(batch, 3, np.random.default_rng(0))
    return check_array_agree(call, call, batch, header, summary, key=key,
                             transform="np.pad(out_a.numpy(), ((0, 0), (0, 3)))", b_batch=wide)


def check_array_permutation(call: SourceCall, batch: Mapping[str, Any], header: str, *, summary: str,
                            key: str) -> Verdict:
    """Permuting the rows permutes the (B, T) output's rows and changes nothing else."""
    perm = np.random.default_rng(2).permutation(batch["mask"].shape[0]).tolist()
    return check_array_agree(call, call, batch, header, summary, key=key, transform=f"out_a[{perm!r}]",
                             b_batch=core.rows(batch, perm))


# =========================================================================== probes
def upstream_for(table: Iterable[tuple[str, str, str, str]], path: str, case: str, key: str = "") -> str:
    """The upstream thread of a probe: the URL (or "none found") of the first row ``(path fragment, case
    fragment, key fragment, url)`` whose fragments occur in the probe's path, case and key (a fragment may be
    several parts joined by ``&``, all of which must occur); "" when no row matches (not searched)."""
    def has(text: str, frag: str) -> bool:
        return all(part in text for part in frag.split("&"))

    for path_frag, case_frag, key_frag, url in table:
        if has(path, path_frag) and has(case, case_frag) and has(key, key_frag):
            return url
    return ""


def guarded(check: Callable[[], Verdict], accepts: Callable[[], Any] | None = None, *,
            refusals: tuple[type[BaseException], ...] = ()) -> Callable[[], Verdict]:
    """Wrap a check: an exception raised by ``accepts`` (the framework's own validation of the configuration),
    or one of ``refusals`` raised by the check, means the framework refuses -> ``unsupported``."""

    def run() -> Verdict:
        if accepts is not None:
            try:
                accepts()
            except Exception as e:  # noqa: BLE001 - any refusal the user would see
                return unsupported(f"refused: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        try:
            return check()
        except refusals as e:
            return unsupported(f"refused with {type(e).__name__}: {str(e)[:160]}")

    return run


def safe(check: Callable[[], Verdict]) -> Callable[[], Verdict]:
    """A check that reports a refusal of the framework (:data:`REFUSALS`) as ``unsupported``, not an error."""
    return guarded(check, refusals=REFUSALS)


def script_probe(framework: str, run: str, path: str, case: str, call: SourceCall, tail: str, *, key: str,
                 summary: Callable[[str], str], severity: Callable[[str], str],
                 table: Iterable[tuple[str, str, str, str]] = ()) -> Probe:
    """A probe whose check is its own reproduction (:func:`check_script`)."""
    header = f"{framework} {path}: {case}"
    return Probe(framework, run, path, case,
                 lambda: check_script(call, tail, header, key=key, summary=summary, severity=severity),
                 upstream=upstream_for(table, path, case, key))


def _kind_check(kind: str, call: SourceCall, batch: Mapping[str, Any], header: str,
                reference: Callable[[Mapping[str, Any]], tuple[float, Any]] | None, ref_label: str) -> Verdict:
    if kind == "finite":
        return check_finite(call, batch, header)
    if kind == "gradient":
        return check_gradient(call, batch, header)
    if kind == "padding_width":
        return check_padding_width(call, batch, header)
    if kind == "padding_values":
        return check_padding_values(call, batch, header)
    if kind == "permutation":
        return check_permutation(call, batch, header)
    if kind == "split":
        return check_split(call, batch, header, what="gradient-accumulation micro-batches", parts=3)
    if kind in ("float32", "bfloat16"):
        return check_dtype(call, batch, getattr(core._torch(), kind), header)
    if kind == "reference":
        if reference is None:
            raise ValueError("reference: required for the 'reference' check")
        ref_v, ref_g = reference(batch)
        return check_expected(call, batch, float(ref_v), ref_g, ref_label, header)
    raise ValueError(f"kind: got {kind!r}; expected one of {KINDS}")


KINDS = ("finite", "gradient", "padding_width", "padding_values", "permutation", "split", "float32", "bfloat16",
         "reference")
"""The checks :func:`probes_for` runs by name."""
METAMORPHIC = ("finite", "gradient", "padding_width", "padding_values", "permutation", "split", "float32")
"""The checks of a loss against itself (no reference) that the framework modules run on every configuration."""


def probes_for(framework: str, path: str, call: SourceCall, run: str, case: str,
               batch_fn: Callable[[], dict[str, Any]], kinds: Sequence[str], *,
               table: Iterable[tuple[str, str, str, str]] = (), accepts: Callable[[], Any] | None = None,
               reference: Callable[[Mapping[str, Any]], tuple[float, Any]] | None = None, ref_label: str = "",
               key: str = "", internal: str = "float64") -> list[Probe]:
    """One probe per check kind (:data:`KINDS`) of ``call`` on ``batch_fn()`` (built lazily, inside the check);
    ``key`` (plus ``|kind``) groups the findings; ``internal``: the precision the framework documents for its
    own arithmetic (float64 comparisons are held to it, :func:`core.internal_precision`)."""
    table = tuple(table)
    out = []
    for kind in kinds:
        k = f"{key}|{kind}" if key else ""

        def check(kind: str = kind, k: str = k) -> Verdict:
            with core.internal_precision(internal):
                v = _kind_check(kind, call, batch_fn(), f"{framework} {path}: {case} | {kind}", reference, ref_label)
            if v.status == "finding":
                v.key = k or v.key
                v.measured = {**v.measured, "check": kind}
            return v

        # padding as trainers have it (issue part 4) is its own run kind, whatever the configuration's origin
        kind_run = "padding" if kind.startswith("padding") and run in ("defaults", "combination") else run
        out.append(Probe(framework, kind_run, path, f"{case} | {kind}", guarded(check, accepts),
                         upstream=upstream_for(table, path, f"{case} | {kind}", k)))
    return out


# =========================================================================== batches
def torch_dtype(name: str) -> Any:
    """``torch.<name>``."""
    return getattr(core._torch(), name)


def dtype_name(batch: Mapping[str, Any]) -> str:
    """The tolerance class of a batch: the dtype of its log-probs ("float64", "float32" or "bfloat16")."""
    return str(batch["logp"].dtype).replace("torch.", "")


def as_float64(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch's (already rounded) values in float64: what the call computes without low-precision rounding."""
    return core.clone(batch, dtype=torch_dtype("float64"))


__all__ = ["PREAMBLE", "REFUSALS", "KINDS", "METAMORPHIC", "SourceCall", "kwargs_source", "strings_in", "literal",
           "batch_source", "script", "run_script", "run_reproductions", "float_fields", "check_padding_width",
           "check_padding_values", "check_permutation", "check_split", "check_dtype", "check_gradient",
           "check_finite", "check_expected", "check_reference", "check_differs", "check_agree", "check_script",
           "crash_finding", "check_array_finite", "check_array_reference", "check_array_agree",
           "check_array_padding", "check_array_permutation", "upstream_for", "guarded", "safe", "script_probe",
           "probes_for", "torch_dtype", "dtype_name", "as_float64"]

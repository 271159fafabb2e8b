"""Probes whose framework call is one piece of source code, run by the check and printed in the reproduction.

Used by the TRL, OpenRLHF and Liger probe modules. A :class:`Subject` is a string of Python that needs only the
framework, NumPy and torch and defines ``loss_fn(b) -> scalar tensor`` (``b``: a dict of torch tensors as
:func:`rlspec.conformance.probes.core.torch_batch` makes them; the loss is differentiable through
``b["logp"]``) and, where the framework splits a step into micro-batches, ``loss_micro(sub, full)`` (one
micro-batch with the global normalisers the framework's trainer passes). The check executes that source and
decides with the checks of :mod:`rlspec.conformance.probes.core`; for a finding, the reproduction is the same
source, the batch as exact literals, and an ``assert`` of the property that failed. Before it is reported the
reproduction is executed here: a finding whose script does not raise ``AssertionError`` is reported as an
``error`` (a probe bug), never as a finding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlspec.conformance import tolerances
from rlspec.conformance.probes import core
from rlspec.conformance.probes.core import Probe, Verdict

#: helpers every reproduction starts with (plain torch)
HEAD = '''import math
import torch
nan, inf = float("nan"), float("inf")


def value_and_grad(fn, b):
    """(loss, d loss / d logp) on a fresh copy of the batch."""
    b = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in b.items()}
    b["logp"].requires_grad_(True)
    loss = fn(b)
    g = torch.autograd.grad(loss, b["logp"], allow_unused=True)[0] if loss.requires_grad else None
    return float(loss.detach().double()), (torch.zeros_like(b["logp"]) if g is None else g).double()


def rows(b, idx):
    """The micro-batch of the given rows."""
    B = b["mask"].shape[0]
    i = torch.tensor(idx)
    return {k: (v.detach()[i].clone() if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == B else v)
            for k, v in b.items()}


def close(a, b, rtol, atol):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return bool(torch.isfinite(a).all() and torch.isfinite(b).all() and ((a - b).abs() <= atol + rtol * a.abs()).all())
'''


@dataclasses.dataclass
class Subject:
    """One framework call pattern as source (see the module docstring)."""

    framework: str
    path: str
    source: str
    micro: bool = False  # the source defines loss_micro(sub, full)

    def namespace(self) -> dict[str, Any]:
        return _exec_cached(HEAD + "\n" + self.source)


_NS_CACHE: dict[str, dict[str, Any]] = {}


def _exec_cached(src: str) -> dict[str, Any]:
    ns = _NS_CACHE.get(src)
    if ns is None:
        ns = {"__name__": "rlspec_probe_subject"}
        exec(compile(src, "<probe subject>", "exec"), ns)  # noqa: S102 - our own generated source
        if len(_NS_CACHE) > 512:
            _NS_CACHE.clear()
        _NS_CACHE[src] = ns
    return ns


# --------------------------------------------------------------------------- literals
def _tensor_src(x: Any) -> str:
    import torch

    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    vals = t.tolist()  # exact: float64 repr round-trips
    return f"torch.tensor({vals!r}, dtype={t.dtype})"


def batch_src(name: str, batch: Mapping[str, Any]) -> str:
    """``name = {...}`` with every tensor of the batch as an exact literal."""
    import torch

    items = [f"    {k!r}: {_tensor_src(v)}," for k, v in batch.items() if isinstance(v, torch.Tensor)]
    return f"{name} = {{\n" + "\n".join(items) + "\n}"


#: the precision comparisons of a float64 run are held to (a framework that documents float32 internals, e.g.
#: OpenRLHF's "Use at least FP32" statistics and float32 KL, is compared at float32 tolerance)
_INTERNAL = {"dtype": "float64"}


def _tol(dtype: str, n: int) -> tuple[float, float]:
    if dtype == "float64":
        dtype = _INTERNAL["dtype"]
    return tolerances.tolerance(dtype, n)


@contextlib.contextmanager
def internal_precision(dtype: str):
    """Compare float64 runs at ``dtype`` tolerance (core's checks and the reproductions alike)."""
    old_cmp, old = core._cmp, _INTERNAL["dtype"]
    _INTERNAL["dtype"] = dtype
    core._cmp = lambda ref, got, dt, n: old_cmp(ref, got, dtype if dt == "float64" else dt, n)
    try:
        yield
    finally:
        core._cmp, _INTERNAL["dtype"] = old_cmp, old


# --------------------------------------------------------------------------- assertion templates
def _assert_padding(batch, other, slice_cols: bool) -> str:
    n = int(batch["mask"].sum())
    rtol, atol = _tol("float64", n)
    cut = "[:, :T]" if slice_cols else ""
    return "\n".join([
        batch_src("b", batch), batch_src("b2", other),
        "m = b['mask']; T = m.shape[1]",
        "l1, g1 = value_and_grad(loss_fn, b)",
        "l2, g2 = value_and_grad(loss_fn, b2)",
        "print('loss:', l1, 'with other padding:', l2)",
        f"assert close(l1, l2, {rtol!r}, {atol!r}), 'the loss depends on the padded positions'",
        f"assert close(g1[m], g2{cut}[m], {rtol!r}, {atol!r}), 'the gradient depends on the padded positions'",
    ])


def _assert_permutation(batch, perm) -> str:
    n = int(batch["mask"].sum())
    rtol, atol = _tol("float64", n)
    return "\n".join([
        batch_src("b", batch), f"perm = {list(map(int, perm))!r}",
        "m = b['mask']",
        "l1, g1 = value_and_grad(loss_fn, b)",
        "l2, g2 = value_and_grad(loss_fn, rows(b, perm))",
        "print('loss:', l1, 'rows permuted:', l2)",
        f"assert close(l1, l2, {rtol!r}, {atol!r}), 'the loss depends on the order of the rows'",
        f"assert close(g1[perm][m[perm]], g2[m[perm]], {rtol!r}, {atol!r}), 'the gradient depends on the row order'",
    ])


def _assert_split(batch, splits) -> str:
    n = int(batch["mask"].sum())
    rtol, atol = _tol("float64", n)
    return "\n".join([
        batch_src("b", batch), f"splits = {[list(map(int, s)) for s in splits]!r}",
        "m = b['mask']",
        "l_full, g_full = value_and_grad(lambda x: loss_micro(x, b), b) if 'loss_full' not in globals() "
        "else value_and_grad(loss_full, b)",
        "total, g_acc = 0.0, torch.zeros_like(g_full)",
        "for idx in splits:",
        "    l, g = value_and_grad(lambda s: loss_micro(s, b), rows(b, idx))",
        "    total += l",
        "    g_acc[idx] = g",
        "print('full batch:', l_full, 'sum over micro-batches:', total)",
        f"assert close(l_full, total, {rtol!r}, {atol!r}), 'micro-batches do not add up to the full-batch loss'",
        f"assert close(g_full[m], g_acc[m], {rtol!r}, {atol!r}), 'accumulated gradient differs from the full batch'",
    ])


def _assert_dtype(batch, dtype_name: str) -> str:
    n = int(batch["mask"].sum())
    rtol, atol = _tol(dtype_name, n)
    exact = core.round_to(batch, getattr(__import__("torch"), dtype_name))
    return "\n".join([
        batch_src("b", exact),
        "m = b['mask']",
        f"low = {{k: (v.to(torch.{dtype_name}) if v.is_floating_point() else v) for k, v in b.items()}}",
        "l64, g64 = value_and_grad(loss_fn, b)",
        "l_low, g_low = value_and_grad(loss_fn, low)",
        f"print('float64:', l64, '{dtype_name}:', l_low)",
        f"assert close(l64, l_low, {rtol!r}, {atol!r}), 'the {dtype_name} loss is off by more than rounding'",
        f"assert close(g64[m], g_low[m], {rtol!r}, {atol!r}), 'the {dtype_name} gradient is off by more than rounding'",
    ])


def _assert_gradient(batch, eps: float = 1e-6, rtol: float = 1e-4) -> str:
    return "\n".join([
        batch_src("b", batch), f"RTOL = {rtol!r}",
        "m = b['mask']",
        "l0, g = value_and_grad(loss_fn, b)",
        "fd = torch.zeros_like(g)",
        "for i, j in m.nonzero().tolist():",
        "    vals = []",
        f"    for s in ({eps!r}, {-eps!r}):",
        "        bb = dict(b); bb['logp'] = b['logp'].detach().clone(); bb['logp'][i, j] += s",
        "        with torch.no_grad():",
        "            vals.append(float(loss_fn(bb)))",
        f"    fd[i, j] = (vals[0] - vals[1]) / {2 * eps!r}",
        "scale = max(float(fd[m].abs().max()) if m.any() else 0.0, 1e-8)",
        "print('autograd:', g[m]); print('finite differences:', fd[m])",
        "assert torch.isfinite(g).all(), 'the gradient has NaN/inf'",
        "assert not m.any() or (g[m] - fd[m]).abs().max() <= RTOL * scale + 1e-7, "
        "'the gradient is not the gradient of the loss value'",
    ])


def _assert_finite(batch) -> str:
    return "\n".join([
        batch_src("b", batch),
        "l, g = value_and_grad(loss_fn, b)",
        "print('loss:', l); print('gradient:', g)",
        "assert math.isfinite(l), 'the loss is not finite on an input the framework accepts'",
        "assert torch.isfinite(g).all(), 'the gradient is not finite on an input the framework accepts'",
    ])


def _assert_reference(batch, ref_loss: float, ref_grad: np.ndarray | None, label: str, dtype: str = "float64"
                      ) -> str:
    n = int(batch["mask"].sum())
    rtol, atol = _tol(dtype, n)
    lines = [batch_src("b", batch), "m = b['mask']", "l, g = value_and_grad(loss_fn, b)",
             f"expected_loss = {float(ref_loss)!r}  # {label} (rlspec reference, float64)",
             "print('loss:', l, 'expected:', expected_loss)"]
    if ref_grad is not None:
        lines += [f"expected_grad = {_tensor_src(np.asarray(ref_grad, dtype=np.float64))}",
                  "print('max |grad - expected| at valid tokens:', float((g[m] - expected_grad[m]).abs().max()))"]
    lines.append(f"assert close(expected_loss, l, {rtol!r}, {atol!r}), {'the loss differs from ' + label!r}")
    if ref_grad is not None:
        lines.append(f"assert close(expected_grad[m], g[m], {rtol!r}, {atol!r}), "
                     f"{'the gradient differs from ' + label!r}")
    return "\n".join(lines)


def _assert_custom(batch, body: str) -> str:
    return batch_src("b", batch) + "\n" + body


# --------------------------------------------------------------------------- running a check
def reproduction(subject: Subject, assertion: str, note: str = "") -> str:
    header = (f"# Reproduction ({subject.framework}, {subject.path}){': ' + note if note else ''}\n"
              "# Needs only the framework, NumPy and torch. Ends in an assert of the correct behaviour.\n")
    return header + HEAD + "\n" + subject.source.rstrip() + "\n\n" + assertion.rstrip() + "\n"


def verify_reproduction(src: str) -> tuple[bool, str]:
    """Execute a reproduction here; (True, message) when it fails with AssertionError as it must."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(src, "<reproduction>", "exec"), ns)  # noqa: S102 - generated here
    except AssertionError as e:
        return True, str(e)
    except Exception as e:  # noqa: BLE001
        return False, f"raised {type(e).__name__}: {str(e)[:200]}"
    return False, "ran without failing"


CHECKS = ("finite", "gradient", "padding_width", "padding_values", "permutation", "split", "float32",
          "bfloat16", "reference")


def run_check(subject: Subject, kind: str, batch: Mapping[str, Any], *, reference: Callable[[Mapping], Any] | None
              = None, ref_label: str = "", key: str = "", custom: Callable[[dict], tuple[Verdict, str]] | None = None,
              internal: str = "float64") -> Verdict:
    """Run one check of ``subject`` on ``batch``; attach a verified reproduction to a finding. ``internal``: the
    precision the framework documents for its own arithmetic (float64 comparisons are held to it)."""
    with internal_precision(internal):
        return _run_check(subject, kind, batch, reference=reference, ref_label=ref_label, key=key, custom=custom,
                          internal=internal)


def _run_check(subject, kind, batch, *, reference, ref_label, key, custom, internal) -> Verdict:
    import torch

    ns = subject.namespace()
    fn = ns["loss_fn"]
    extra: dict[str, Any] = {}
    if kind == "finite":
        v = core.check_finite(fn, batch)
        make = lambda: _assert_finite(batch)  # noqa: E731
    elif kind == "gradient":
        eps, rtol = (1e-6, 1e-4) if internal == "float64" else (1e-3, 1e-2)
        v = core.check_gradient(fn, batch, eps=eps, rtol=rtol)
        make = lambda: _assert_gradient(batch, eps, rtol)  # noqa: E731
    elif kind == "padding_width":
        v = core.check_padding_width(fn, batch, extra=3, seed=0)
        make = lambda: _assert_padding(batch, core.pad_columns(batch, 3, np.random.default_rng(0)), True)  # noqa
    elif kind == "padding_values":
        other = redraw_padding(batch, seed=1)
        v = _padding_values(fn, batch, other)
        make = lambda: _assert_padding(batch, other, False)  # noqa: E731
    elif kind == "permutation":
        perm = np.random.default_rng(2).permutation(batch["mask"].shape[0])
        v = core.check_permutation(fn, batch, seed=2)
        make = lambda: _assert_permutation(batch, perm)  # noqa: E731
    elif kind == "split":
        splits = core.uneven_splits(batch, parts=3)
        micro = ns["loss_micro"]
        full = ns.get("loss_full")
        v = core.check_split(micro, batch, splits=splits, full_fn=full, what="gradient-accumulation micro-batches")
        make = lambda: _assert_split(batch, splits)  # noqa: E731
    elif kind in ("float32", "bfloat16"):
        v = core.check_dtype(fn, batch, getattr(torch, kind))
        make = lambda: _assert_dtype(batch, kind)  # noqa: E731
    elif kind == "reference":
        assert reference is not None
        ref_loss, ref_grad = reference(batch)
        v = _compare(fn, batch, ref_loss, ref_grad, ref_label)
        make = lambda: _assert_reference(batch, ref_loss, ref_grad, ref_label)  # noqa: E731
    elif kind == "custom":
        assert custom is not None
        v, body = custom(ns)
        make = lambda: _assert_custom(batch, body)  # noqa: E731
    else:
        raise ValueError(f"kind: got {kind!r}; expected one of {CHECKS + ('custom',)}")
    if v.status != "finding":
        return v
    src = reproduction(subject, make())
    good, msg = verify_reproduction(src)
    if not good:
        return Verdict("error", summary=f"probe bug: the {kind} finding ({v.summary}) did not reproduce: {msg}",
                       measured=v.measured)
    v.reproduction = src
    v.key = key or v.key
    v.measured = {**v.measured, **extra, "check": kind}
    return v


def redraw_padding(batch: Mapping[str, Any], seed: int = 1) -> dict[str, Any]:
    """The batch with different finite garbage at masked positions of every float (B, T) field."""
    import torch

    rng = np.random.default_rng(seed)
    m = batch["mask"].detach().numpy().astype(bool)
    out = core.clone(batch)
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() == 2 and tuple(v.shape) == m.shape:
            x = v.detach().double().numpy().copy()
            x[~m] = -rng.uniform(0.0, 12.0, size=int((~m).sum()))
            out[k] = torch.tensor(x, dtype=v.dtype)
    return core.clone(out)


def _padding_values(fn, batch, other) -> Verdict:
    m = batch["mask"].detach().numpy().astype(bool)
    n = int(m.sum())
    v0, g0 = core.evaluate(fn, batch)
    v1, g1 = core.evaluate(fn, other)
    okv, err, _ = tolerances.close(v0, v1, _INTERNAL["dtype"], n)
    if not okv:
        return core.finding("wrong value", "the loss depends on the values at padded (masked) positions "
                            f"({v0:.6g} vs {v1:.6g})", key="reads-padding-value", max_abs_err=err)
    if g0 is not None and g1 is not None and not tolerances.close(g0[m], g1[m], _INTERNAL["dtype"], n)[0]:
        return core.finding("wrong gradient", "the gradient depends on the values at padded positions",
                            key="reads-padding-grad")
    return core.ok(max_abs_err=err)


def _compare(fn, batch, ref_loss, ref_grad, label) -> Verdict:
    m = batch["mask"].detach().numpy().astype(bool)
    n = int(m.sum())
    v, g = core.evaluate(fn, batch)
    okv, err, _ = tolerances.close(float(ref_loss), v, _INTERNAL["dtype"], n)
    if not okv:
        return core.finding("wrong value", f"the loss is {v:.6g} where {label} gives {float(ref_loss):.6g}",
                            key=f"ref-value:{label}", max_abs_err=err, expected=float(ref_loss), got=v)
    if ref_grad is not None:
        rg = np.asarray(ref_grad, dtype=np.float64)
        if g is None or (not np.any(g[m]) and np.any(rg[m])):
            return core.finding("no gradient", f"the loss carries no gradient where {label}'s is non-zero",
                                key=f"ref-nograd:{label}")
        okg, errg, _ = tolerances.close(rg[m], g[m], _INTERNAL["dtype"], n)
        if not okg:
            return core.finding("wrong gradient", f"the gradient differs from {label}'s by {errg:.3g}",
                                key=f"ref-grad:{label}", max_abs_err=errg)
    return core.ok(max_abs_err=err)


def guarded(fn: Callable[[], Verdict], accepts: Callable[[], None] | None = None) -> Callable[[], Verdict]:
    """Wrap a check: an exception raised by ``accepts`` (the framework's own validation of the configuration)
    means the framework refuses the combination -> ``unsupported``."""

    def run() -> Verdict:
        if accepts is not None:
            try:
                accepts()
            except Exception as e:  # noqa: BLE001 - any refusal the user would see
                return core.unsupported(f"refused: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        return fn()

    return run


def probes_for(subject: Subject, run: str, case: str, batch_fn: Callable[[], dict], kinds: Sequence[str], *,
               upstream: Callable[[str], str] | None = None, accepts: Callable[[], None] | None = None,
               reference: Callable[[Mapping], Any] | None = None, ref_label: str = "", key: str = "",
               internal: str = "float64") -> list[Probe]:
    """One probe per check kind for a subject (the batch is built lazily, inside the check)."""
    out = []
    for kind in kinds:
        def check(kind=kind) -> Verdict:
            b = batch_fn()
            return run_check(subject, kind, b, reference=reference, ref_label=ref_label,
                             key=f"{key}|{kind}" if key else "", internal=internal)
        # padding as trainers have it (issue part 4) is its own run kind, whatever the configuration's origin
        kind_run = "padding" if kind.startswith("padding") and run in ("defaults", "combination") else run
        out.append(Probe(subject.framework, kind_run, subject.path, f"{case} | {kind}", guarded(check, accepts),
                         upstream=(upstream(f"{key}|{kind}") if upstream else "")))
    return out


def upstream_lookup(table: Mapping[str, str]) -> Callable[[str], str]:
    """``f(probe key) -> URL / "none found"``: the first table entry whose pattern (all of its ``&``-separated
    parts) occurs in the key, else "" (not searched)."""

    def find(key: str) -> str:
        for pat, url in table.items():
            if all(part in key for part in pat.split("&")):
                return url
        return ""

    return find


def describe_exc() -> str:
    return traceback.format_exc(limit=2)


def finite_or(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)

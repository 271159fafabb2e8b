"""Expectation files: known bugs and deliberate deviations of one implementation (and version).

Where the file is looked up (:func:`locate`; ``--expectations PATH`` overrides it):

* a built-in adapter (``rlspec check verl``): ``conformance/expectations/<name>[-<version>].txt``;
* your own adapter (``rlspec check mymod:MyAdapter``): beside the adapter's module, the first that
  exists of ``<name>-<version>.txt``, ``<module>.txt`` and ``<name>.txt``, where ``<name>`` and
  ``<version>`` are the adapter's ``name`` and ``version`` attributes and ``<module>`` the last
  part of the module's name (``rlspec adapter new mylib`` writes ``mylib.py`` and ``mylib.txt``).

One entry per line; blank lines, ``#`` lines and trailing `` # comments`` are ignored::

    # case id or glob          status     reason / upstream link
    grpo/bfloat16/*            xfail      computes group std in bf16 (https://github.com/org/lib/issues/123)
    ppo/*/log-ratio-50         deviation  clamps log-ratios at ±20 by design

Globs use :mod:`fnmatch` (``*`` also matches ``/``). The first matching entry wins.

Applied to results (:func:`apply`):

* ``fail``/``error`` on an entry (exact id or glob) → the entry's status (``xfail`` = known bug,
  ``deviation`` = differs from the paper by design), with the reason attached;
* ``pass`` on an *exact case id* entry → ``xpass`` (the expectation may be obsolete; reported).
  Glob entries apply only to cases that differ: a passing case that a glob covers stays ``pass``
  (a glob classifies a family of findings; it does not claim every member fails);
* entries that classify no case of the run → *stale* (reported): an exact id that matches no case,
  a glob that matches no failing case. Only entries whose algorithm part
  (the text before the first ``/``) could match an algorithm of the run are judged, so checking a
  subset of algorithms does not call the others' entries stale.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXPECTATION_STATUSES = ("xfail", "deviation")
#: the status :func:`draft` writes for the user to replace (a file still holding it does not load)
PLACEHOLDER = "xfail|deviation"
DIRECTORY = Path(__file__).parent / "expectations"


class ExpectationFileError(ValueError):
    """A malformed line in an expectation file."""


@dataclass(frozen=True)
class Entry:
    pattern: str
    status: str
    reason: str
    line: int = 0
    source: str = ""

    def matches(self, case_id: str) -> bool:
        return fnmatch.fnmatchcase(case_id, self.pattern)


def parse(text: str, source: str = "<string>") -> list[Entry]:
    """Entries of an expectation file's text; raises :class:`ExpectationFileError` naming the line."""
    entries = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].strip()  # '#' in URLs is kept
        if not line:
            continue
        parts = re.split(r"\s+", line, maxsplit=2)
        if len(parts) < 2:
            raise ExpectationFileError(f"{source}:{i}: expected 'CASE-ID-OR-GLOB  xfail|deviation  reason', got {raw!r}")
        pattern, status = parts[0], parts[1].lower()
        if status == PLACEHOLDER:
            raise ExpectationFileError(f"{source}:{i}: classify {pattern!r}: replace {PLACEHOLDER!r} by xfail (a bug: "
                                       "link the issue) or deviation (by design: say where it is documented)")
        if status not in EXPECTATION_STATUSES:
            raise ExpectationFileError(f"{source}:{i}: status {parts[1]!r}; expected one of {EXPECTATION_STATUSES}")
        reason = parts[2].strip() if len(parts) > 2 else ""
        if not reason:
            raise ExpectationFileError(f"{source}:{i}: entry {pattern!r} needs a reason or an upstream link")
        entries.append(Entry(pattern, status, reason, i, source))
    return entries


def load(path: str | os.PathLike) -> list[Entry]:
    p = Path(path)
    return parse(p.read_text(encoding="utf-8"), str(p))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def find(impl: str, version: str = "", directory: str | os.PathLike | None = None) -> Path | None:
    """The expectation file of ``impl`` (``<impl>-<version>.txt`` first, then ``<impl>.txt``), or None."""
    d = Path(directory) if directory is not None else DIRECTORY
    base = _safe(impl)
    candidates = ([f"{base}-{version}.txt"] if version else []) + [f"{base}.txt"]
    for name in candidates:
        if (d / name).is_file():
            return d / name
    return None


def _adapter_module(adapter) -> tuple[Path | None, str]:
    """(folder, last name part) of the module that defines the adapter: the ``module`` of the
    ``module:attr`` it was loaded by (``adapters.load`` records it as ``target``), else its class's."""
    target = str(getattr(adapter, "target", "") or "")
    modname = target.split(":", 1)[0] if ":" in target else type(adapter).__module__
    mod = sys.modules.get(modname)
    f = getattr(mod, "__file__", None)
    if not f:
        return None, modname.rsplit(".", 1)[-1]
    return Path(f).resolve().parent, modname.rsplit(".", 1)[-1]


def candidates(adapter) -> list[Path]:
    """Where :func:`locate` looks for ``adapter``'s expectation file, in order (see the module docstring)."""
    name = _safe(str(getattr(adapter, "name", "") or ""))
    version = str(getattr(adapter, "version", "") or "")
    folder, module = _adapter_module(adapter)
    builtin = DIRECTORY.parent / "adapters"
    if folder is None or folder == builtin.resolve():
        return ([DIRECTORY / f"{name}-{version}.txt"] if version and name else []) + \
            ([DIRECTORY / f"{name}.txt"] if name else [])
    out = ([folder / f"{name}-{version}.txt"] if version and name else []) + [folder / f"{_safe(module)}.txt"]
    if name and folder / f"{name}.txt" not in out:
        out.append(folder / f"{name}.txt")
    return out


def locate(adapter) -> Path | None:
    """The expectation file that applies to ``adapter`` by default, or None (see the module docstring)."""
    return next((p for p in candidates(adapter) if p.is_file()), None)


def for_adapter(adapter, directory: str | os.PathLike | None = None) -> list[Entry]:
    """The entries that apply to ``adapter``: its file by :func:`locate` (or, with ``directory``, by
    name and version in that folder); empty if there is none."""
    if directory is not None:
        p = find(str(getattr(adapter, "name", "")), str(getattr(adapter, "version", "")), directory)
    else:
        p = locate(adapter)
    return load(p) if p is not None else []


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def match(entries: Iterable[Entry], case_id: str, differs: bool = True) -> Entry | None:
    """The first entry that classifies ``case_id``; for a case that passes (``differs=False``) only an
    exact case-id entry (a glob applies only to cases that differ)."""
    for e in entries:
        if (differs or not is_glob(e.pattern)) and e.matches(case_id):
            return e
    return None


def apply(results, entries: list[Entry]):
    """Rewrite statuses of ``results`` in place by ``entries``; set and return ``results.stale`` (patterns)."""
    used: set[int] = set()
    for r in results:
        if r.status not in ("pass", "fail", "error"):
            continue
        e = match(entries, r.case_id, differs=r.status != "pass")
        if e is None:
            continue
        used.add(id(e))
        r.reason = e.reason
        if r.status == "pass":
            r.status = "xpass"
            r.message = f"passes, but {e.source}:{e.line} expects {e.status}: {e.reason}"
        else:
            r.message = f"[{e.status}: {e.reason}] {r.message}"
            r.status = e.status
    algorithms = {r.algorithm for r in results}
    stale = []
    for e in entries:
        if id(e) in used:
            continue
        head = e.pattern.split("/", 1)[0]
        if any(fnmatch.fnmatchcase(a, head) for a in algorithms):
            stale.append(f"{e.source}:{e.line}: {e.pattern}  {e.status}  {e.reason}")
    if hasattr(results, "stale"):
        results.stale = stale
    return stale


def draft(results, source: str = "") -> str:
    """An expectation file to edit: one line per unexpected case (``fail``/``error``) of ``results``,
    ``CASE-ID  xfail|deviation  MESSAGE``, grouped by algorithm. Every line needs classifying (the
    placeholder status does not load) and its reason rewriting into a cause or an upstream link."""
    bad = [r for r in results if r.status in ("fail", "error")]
    impl = getattr(results, "impl", "") or "?"
    version = getattr(results, "version", "")
    lines = [f"# Expectations for {impl}{' ' + version if version else ''}: {len(bad)} unexpected case(s)"
             + (f" of {source}" if source else "") + ".",
             "# Format: CASE-ID  xfail|deviation  reason (docs/adapters.md, section 8). For each line: keep xfail "
             "(a bug: link the issue)",
             "# or deviation (a documented design choice: say where), delete the other, and replace the message by "
             "the cause.",
             "# Lines are exact case ids: a glob (e.g. ppo/*/log-ratio-50) may replace several, and applies only "
             "to cases that differ."]
    width = max([len(r.case_id) for r in bad] + [0]) + 2
    algo = None
    for r in sorted(bad, key=lambda r: (r.algorithm, r.case_id)):
        if r.algorithm != algo:
            algo = r.algorithm
            lines += ["", f"# --- {algo}"]
        msg = " ".join(str(r.message).split()).replace(" #", " ") or r.status
        lines.append(f"{r.case_id.ljust(width)}{PLACEHOLDER}  {r.status}: {msg}")
    return "\n".join(lines) + "\n"

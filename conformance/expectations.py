"""Expectation files: known bugs and deliberate deviations of one implementation (and version).

File: ``conformance/expectations/<impl>[-<version>].txt`` (or any path given with ``--expectations``).
One entry per line; blank lines, ``#`` lines and trailing `` # comments`` are ignored::

    # case id or glob          status     reason / upstream link
    grpo/bfloat16/*            xfail      computes group std in bf16 (https://github.com/org/lib/issues/123)
    ppo/*/log-ratio-50         deviation  clamps log-ratios at ±20 by design

Globs use :mod:`fnmatch` (``*`` also matches ``/``). The first matching entry wins.

Applied to results (:func:`apply`):

* ``fail``/``error`` on an entry → the entry's status (``xfail`` = known bug, ``deviation`` =
  differs from the paper by design), with the reason attached;
* ``pass`` on an entry → ``xpass`` (the expectation may be obsolete; reported);
* entries that match no case of the run → *stale* (reported). Only entries whose algorithm part
  (the text before the first ``/``) could match an algorithm of the run are judged, so checking a
  subset of algorithms does not call the others' entries stale.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXPECTATION_STATUSES = ("xfail", "deviation")
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


def find(impl: str, version: str = "", directory: str | os.PathLike | None = None) -> Path | None:
    """The expectation file of ``impl`` (``<impl>-<version>.txt`` first, then ``<impl>.txt``), or None."""
    d = Path(directory) if directory is not None else DIRECTORY
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", impl)
    candidates = ([f"{base}-{version}.txt"] if version else []) + [f"{base}.txt"]
    for name in candidates:
        if (d / name).is_file():
            return d / name
    return None


def for_adapter(adapter, directory: str | os.PathLike | None = None) -> list[Entry]:
    """The entries that apply to ``adapter`` (by its name and version); empty if there is no file."""
    p = find(str(getattr(adapter, "name", "")), str(getattr(adapter, "version", "")), directory)
    return load(p) if p is not None else []


def match(entries: Iterable[Entry], case_id: str) -> Entry | None:
    for e in entries:
        if e.matches(case_id):
            return e
    return None


def apply(results, entries: list[Entry]):
    """Rewrite statuses of ``results`` in place by ``entries``; set and return ``results.stale`` (patterns)."""
    used: set[int] = set()
    for r in results:
        if r.status not in ("pass", "fail", "error"):
            continue
        e = match(entries, r.case_id)
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

"""Which registry entries have an optimized (torch) implementation.

Modules in this package decorate their public functions with ``@implements("name")``; the name is
the reference registry's. Nothing else keeps the list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

_IMPLS: dict[str, Callable[..., Any]] = {}
_LOADED = False


def implements(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated torch function as the optimized implementation of ``name``.

    The function is wrapped by :func:`rlspec.optimized.common.float64_on_overflow`: when a float32/bfloat16 call
    overflows an intermediate (exp of a log-ratio beyond 88.7) it is recomputed in float64 and returned in the
    input dtype if the result fits, as the float64 reference computes it."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        from rlspec.optimized.common import float64_on_overflow

        if name in _IMPLS and getattr(_IMPLS[name], "__wrapped__", None) is not fn:
            raise ValueError(f"optimized: {name!r} is implemented twice")
        wrapped = float64_on_overflow(fn)  # a float32 overflow of an intermediate: recompute in float64
        _IMPLS[name] = wrapped
        return wrapped

    return deco


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from rlspec import optimized

    for info in pkgutil.iter_modules(optimized.__path__):
        if not info.name.startswith("_") and info.name not in ("registry", "e2e", "lmhead", "distributed", "integrations"):
            importlib.import_module(f"rlspec.optimized.{info.name}")


def names() -> list[str]:
    """Registry names that have a torch implementation."""
    _load()
    return sorted(_IMPLS)


def get(name: str) -> Callable[..., Any]:
    """The torch implementation of registry entry ``name`` (KeyError if there is none)."""
    _load()
    from rlspec.reference import registry

    key = registry.get(name).name  # resolves aliases, raises KeyError with suggestions
    if key not in _IMPLS:
        raise KeyError(f"{key!r} has no optimized implementation (optimized has: {', '.join(sorted(_IMPLS))})")
    return _IMPLS[key]

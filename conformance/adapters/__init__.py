"""Adapters: built-in ones by name, or a user's own as ``module:attr``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from rlspec.conformance.adapters.base import Adapter, Unsupported

BUILTIN = {
    "optimized": "rlspec.conformance.adapters.optimized_adapter:OptimizedAdapter",
    "verl": "rlspec.conformance.adapters.verl_adapter:VerlAdapter",
    "trl": "rlspec.conformance.adapters.trl_adapter:TRLAdapter",
    "openrlhf": "rlspec.conformance.adapters.openrlhf_adapter:OpenRLHFAdapter",
    "liger": "rlspec.conformance.adapters.liger_adapter:LigerAdapter",
    "areal": "rlspec.conformance.adapters.areal_adapter:ArealAdapter",
}
#: the third-party frameworks `rlspec check all` runs (with optimized)
PEERS = ("verl", "trl", "openrlhf", "liger", "areal")


def load(name: str) -> Adapter:
    """An adapter instance for ``name``: a built-in name or ``package.module:attr``."""
    target = BUILTIN.get(name, name)
    if ":" not in target:
        raise KeyError(f"unknown implementation {name!r}: built-in ones are {', '.join(sorted(BUILTIN))}, "
                       "or give module:attr for your own adapter")
    module, attr = target.split(":", 1)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        # a user's module in the current folder: the console script does not put it on sys.path
        if e.name != module.split(".")[0] or os.getcwd() in sys.path:
            raise
        sys.path.insert(0, os.getcwd())
        mod = importlib.import_module(module)
    obj: Any = getattr(mod, attr)
    inst = obj() if isinstance(obj, type) else obj
    if not isinstance(inst, Adapter):
        missing = [m for m in ("supports", "run") if not callable(getattr(inst, m, None))]
        if missing:
            raise TypeError(f"{target}: not an adapter (missing {missing}); subclass rlspec.conformance.adapters.base.Adapter")
    try:  # remembered so that reports and reproductions can load the same adapter again
        inst.target = name
    except Exception:  # noqa: BLE001 - an adapter that forbids new attributes is still usable
        pass
    return inst


__all__ = ["Adapter", "BUILTIN", "PEERS", "Unsupported", "load"]

"""The adapter protocol: how an implementation under test is called.

An adapter maps rlspec's canonical inputs (NumPy arrays named as in the registry's call signature
for the entry's kind) onto the library's own call, and maps the results back to NumPy::

    class MyAdapter(Adapter):
        name = "mylib"
        version = mylib.__version__

        def supports(self, spec) -> bool:             # which registry entries it implements
            return spec.name in {"grpo", "ppo"}

        def run(self, spec, inputs, config, dtype):   # -> {output name: ndarray or float}
            ...

``run`` returns a dict keyed by ``spec.outputs``: for a ``policy_loss`` (and ``kl``) entry
``{"loss": float, "dlogp": (B, T) array}`` where ``dlogp`` is the gradient of the library's loss
w.r.t. the log-probs it was given (autograd); for an ``advantage`` entry ``{"adv": (B, T)}``; other
kinds return the names their registry entry lists. ``dtype`` is "float64", "float32" or "bfloat16":
the precision to compute in. ``config`` is the entry's config dataclass (the paper's defaults or a
convention the adapter declared in ``conventions``).

A case the library cannot express (a config field, dtype or input it lacks) makes ``run`` raise
:class:`Unsupported` with the reason: the harness reports it as "unsupported", never as a pass.

``conventions`` maps an entry name to config overrides that state the library's documented
conventions (e.g. ``{"grpo": {"ddof": 1, "eps": 1e-6}}``): the reference is run with the same
conventions, so that any remaining difference is a finding.

A user's adapter is loaded with ``--impl module:attr`` (``attr`` an Adapter subclass or instance).
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Unsupported(NotImplementedError):
    """Raised by ``Adapter.run`` for a case the library cannot express (a config, dtype or input it lacks).

    The harness reports the case as "unsupported" with this message; it is not a failure and not a stub.
    """


class Adapter(ABC):
    """Base class for adapters; subclasses set ``name``/``version`` and implement ``supports``/``run``."""

    name: str = "unnamed"
    version: str = "unknown"
    conventions: dict[str, dict[str, Any]] = {}
    dtypes: tuple[str, ...] = ("float64", "float32")

    def available(self) -> tuple[bool, str]:
        """(True, "") if the library can be imported; else (False, why)."""
        return True, ""

    @abstractmethod
    def supports(self, spec: Any) -> bool:
        """Whether this implementation has the registry entry ``spec``."""

    @abstractmethod
    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        """Compute ``spec`` on ``inputs`` in ``dtype``; return ``{output name: value}``."""

    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        """A copy-pasteable Python snippet that reproduces one case against this library."""
        return ""


def framework_version(dist: str) -> str:
    """The installed version of distribution ``dist`` (recorded in reports), or "not-installed"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


def zero_padding(inputs: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``inputs`` with every float array's masked positions set to 0.

    In a real trainer every (B, T, ...) tensor is a model output, finite at padded positions; the
    built-in adapters apply this by default so that the NaN/inf the harness writes into padding does
    not hide a framework's semantics (each keeps a raw-padding variant that shows what NaN does).
    """
    m = inputs.get("mask")
    if not isinstance(m, np.ndarray) or m.dtype != np.bool_:
        return inputs
    out = dict(inputs)
    for k, v in inputs.items():
        if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating) and v.shape[:2] == m.shape:
            v = v.copy()
            v[~m] = 0.0
            out[k] = v
    return out


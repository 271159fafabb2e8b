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

A case the library's API cannot express (a config field, dtype or input it has no way to take) makes
``run`` raise :class:`Unsupported` with a reason that says so: the harness reports it as "unsupported",
never as a pass. An input the library accepts and computes on (groups of unequal size, a batch that is not
a multiple of the group size, empty rows, no valid token at all, negative or sparse group ids, holes in a
mask, finite or non-finite padding) is passed as given, as a user would pass it, and the report shows what
the library returns; a built-in adapter never refuses or repairs such an input.

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
    """Raised by ``Adapter.run`` for a case the library's API cannot express (a config, dtype or input it has no
    way to take); never for an input it would accept.

    The harness reports the case as "unsupported" with this message; it is not a failure and not a stub.
    """


class Adapter(ABC):
    """Base class for adapters; subclasses set ``name``/``version`` and implement ``supports``/``run``."""

    name: str = "unnamed"
    version: str = "unknown"
    conventions: dict[str, dict[str, Any]] = {}
    dtypes: tuple[str, ...] = ("float64", "float32")
    #: group layouts the library accepts (rlspec.conformance.harness.GROUP_LAYOUTS): "any" (group ids in any order
    #: and sizes), "contiguous" (a group's rows side by side), "equal" (every group the same size), or
    #: "contiguous-equal" (``view(-1, K)`` code). Besides the ragged cases, which stay (a library that accepts them
    #: silently should be seen doing so), the harness adds each group-taking case rearranged into these layouts.
    group_layouts: tuple[str, ...] = ("any",)

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

    Not used by the built-in adapters: they pass padding to the framework as given, because a model's
    outputs at padded positions are finite, arbitrary and not zero (the harness's default cases hold finite
    garbage there, and NaN/inf padding is a separate ``padding-nonfinite`` case). Zeroing hides code that
    reads padded positions; use it only to separate such a finding from the rest, knowingly.
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


def configured_group_size(group: np.ndarray) -> int:
    """The rollouts-per-prompt setting (``n_samples_per_prompt``, ``group_size``) a user of a framework that
    groups rows by position would configure for this batch: the size of its largest group (smaller groups
    arise from filtering, or from a last prompt cut short). 1 for an empty batch.

    Such frameworks take no group ids: they get the rows in the order given and this group size, and group
    consecutive blocks of rows, which is what a user of them gets."""
    g = np.asarray(group)
    if g.size == 0:
        return 1
    _, counts = np.unique(g, return_counts=True)
    return int(counts.max())


def position_groups_match(group: np.ndarray) -> bool:
    """Whether consecutive blocks of :func:`configured_group_size` rows are exactly the batch's groups (so a
    framework that groups by position sees the same groups as the ids say)."""
    g = np.asarray(group)
    K = configured_group_size(g)
    if g.size % K:
        return False
    blocks = g.reshape(-1, K)
    return bool((blocks == blocks[:, :1]).all()) and len(np.unique(blocks[:, 0])) == blocks.shape[0]


def array_literal(a: Any) -> str:
    """Python source that rebuilds array ``a`` with its dtype and shape (an empty array keeps its shape)."""
    a = np.asarray(a)
    return shaped(f"np.array({a.tolist()!r}, dtype=np.{a.dtype.name})", a)


def shaped(src: str, a: np.ndarray) -> str:
    """``src`` (a literal built from ``a.tolist()``) with ``.reshape(shape)`` when ``a`` is empty, whose list
    ``[]`` would lose the shape (an empty batch is (0, T), a row with no tokens (B, 0))."""
    return src + (f".reshape({tuple(a.shape)!r})" if np.asarray(a).size == 0 else "")

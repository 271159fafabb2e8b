"""rlspec: the executable specification of RL policy optimization for LLMs.

One import namespace for the four layers (the repository keeps them as top-level folders)::

    import rlspec
    rlspec.__version__
    from rlspec import registry          # the one list of algorithms (rlspec.reference.registry)
    spec = rlspec.get("grpo")            # a registry entry: call it like the reference function
    from rlspec import optimized         # the same entries in PyTorch
    loss = optimized.get("ppo")(logp=..., old_logp=..., adv=..., mask=...)

``rlspec.reference``, ``rlspec.optimized`` and ``rlspec.conformance`` are the folders ``reference/``,
``optimized/`` and ``conformance/`` of the repository; an installed wheel carries them inside this
package. Nothing is installed under the bare names ``reference``, ``optimized`` or ``conformance``.
"""

from __future__ import annotations

import os as _os
from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("rlspec")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# From a source checkout (PYTHONPATH=<repo>, no install) the layers sit beside this folder, not in it:
# let the package's search path reach them. An installed wheel has them inside and skips this.
_here = _os.path.dirname(__file__)
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "reference")) and _os.path.isfile(
        _os.path.join(_root, "reference", "registry.py")):
    __path__.append(_root)  # noqa: F821  (the package's own __path__)

__all__ = ["__version__", "registry", "get", "reference", "optimized", "conformance"]


def get(name: str) -> Any:
    """The registry entry ``name`` (reference implementation): ``rlspec.get("ppo")(logp=..., ...)``."""
    from rlspec.reference import registry as _registry

    return _registry.get(name)


def __getattr__(name: str) -> Any:
    # Sub-packages load on first use, so ``import rlspec`` stays light (no torch until rlspec.optimized).
    if name == "registry":
        from rlspec.reference import registry as _registry

        return _registry
    if name in ("reference", "optimized", "conformance"):
        import importlib

        return importlib.import_module(f"rlspec.{name}")
    raise AttributeError(f"module 'rlspec' has no attribute {name!r}")

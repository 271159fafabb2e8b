"""rlspec's production path in PyTorch: the same names as ``reference/``, differentiable by autograd.

``rlspec.optimized.get(name)`` returns the torch function registered for a registry entry; it takes the
same keyword arguments as the reference function (tensors instead of arrays, the same config
dataclass) and returns tensors. Policy losses return the scalar loss; its gradient w.r.t. ``logp``
is what autograd gives, and that is what ``conformance/`` compares with the reference's ``dlogp``.
"""

from rlspec.optimized.registry import get, implements, names

__all__ = ["get", "implements", "names"]

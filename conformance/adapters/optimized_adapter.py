"""The built-in adapter for rlspec's own ``optimized`` (PyTorch) implementations."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from rlspec import optimized
from rlspec.conformance.adapters.base import Adapter

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}
# inputs whose gradient is reported, per kind (autograd w.r.t. these)
GRAD_INPUTS = {"policy_loss": ("logp",), "value_loss": ("values",), "kl": ("logp",), "entropy": ("logits",)}


def to_torch(x: Any, dtype: torch.dtype, device: str) -> Any:
    """NumPy → torch: floats to ``dtype``, bools and ints kept; other values unchanged."""
    if isinstance(x, np.ndarray):
        if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
            return torch.as_tensor(x, device=device)
        return torch.as_tensor(x, device=device).to(dtype)
    return x


def to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.to(torch.float64).numpy() if x.dtype.is_floating_point else x.numpy()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_numpy(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy(v) for v in x)
    return x


class OptimizedAdapter(Adapter):
    """Calls ``rlspec.optimized.get(name)`` with torch tensors; gradients by autograd."""

    name = "optimized"
    version = "rlspec"
    dtypes = ("float64", "float32", "bfloat16")

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def supports(self, spec: Any) -> bool:
        return spec.name in optimized.names()

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        fn = optimized.get(spec.name)
        tdtype = TORCH_DTYPES[dtype]
        kwargs = {k: to_torch(v, tdtype, self.device) for k, v in inputs.items()}
        grads = [k for k in GRAD_INPUTS.get(spec.kind, ()) if k in kwargs]
        for k in grads:
            kwargs[k] = kwargs[k].detach().requires_grad_(True)
        out = fn(**kwargs, config=config)
        if grads:
            loss = out
            loss.backward()
            value_name = (spec.outputs or ("loss",))[0]  # "loss" for losses and KL, "value" for entropy
            res = {value_name: float(loss.detach().to(torch.float64))}
            for k in grads:
                g = kwargs[k].grad
                res["d" + k] = to_numpy(g) if g is not None else np.zeros(kwargs[k].shape)
            return res
        return outputs_dict(spec, to_numpy(out))

    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        return (
            "import torch\nfrom rlspec import optimized\n"
            f"fn = optimized.get({spec.name!r})  # called with torch tensors of dtype {dtype}; "
            "gradients by autograd w.r.t. " + (", ".join(GRAD_INPUTS.get(spec.kind, ())) or "nothing") + "\n"
        )


def outputs_dict(spec: Any, out: Any) -> dict[str, Any]:
    """Name the values a non-loss entry returned, using ``spec.outputs``."""
    names = spec.outputs or ("out",)
    if isinstance(out, tuple):
        if len(out) != len(names):
            raise ValueError(f"{spec.name}: returned {len(out)} values; registry lists outputs {names}")
        return dict(zip(names, out))
    if isinstance(out, dict) and set(out) >= set(names) and len(names) > 1:
        return {k: out[k] for k in names}
    return {names[0]: out}

"""What both integrations share: which registry entries a trainer's canonical batch can drive, and how a name and
a config become the torch function and its config dataclass."""

from __future__ import annotations

from rlspec import optimized
from rlspec.reference import registry


def missing_inputs(name: str) -> list[str]:
    """Inputs the torch function of ``name`` requires beyond the canonical batch of its kind ([] = drivable).

    An advantage whose e2e recipe feeds K reward components (B, K) counts as needing ``reward_components``."""
    from rlspec.optimized.e2e.loop import RECIPES, is_outcome_advantage
    from rlspec.optimized.e2e.matrix import LOOP_INPUTS, unsupplied_inputs  # what a trainer hands each kind

    spec = registry.get(name)
    if spec.kind not in LOOP_INPUTS or spec.name not in optimized.names():
        return [f"a torch implementation of kind policy_loss/advantage (got kind {spec.kind!r})"]
    if spec.kind == "advantage" and not is_outcome_advantage(spec.name):
        return ["the (rewards, group, mask) signature"]
    need, _ = unsupplied_inputs(spec.name)  # required inputs beyond the canonical batch (the e2e loop's rule)
    if RECIPES.get(spec.name, {}).get("reward_components"):
        need.append("reward_components (B, K)")
    return need


def drivable(kind: str) -> list[str]:
    """Registry names of ``kind`` whose torch function runs on a trainer's canonical batch."""
    return [n for n in registry.names(kind=kind) if n in set(optimized.names()) and not missing_inputs(n)]


#: what each kind an integration drives must run on (the error's "expected" text)
DRIVES = {"policy_loss": "a policy loss that runs on (logp, old_logp, adv, mask)",
          "advantage": "an outcome advantage that runs on (rewards (B,), group, mask)"}


def resolve(name: str, kind: str, config=None, argument: str = "name"):
    """(spec, torch function, config dataclass) of registry entry ``name`` of ``kind`` that a trainer can drive;
    ``config`` is a config dataclass or a dict of overrides of the paper defaults. Raises RLSpecValueError naming
    ``argument`` for another kind or an entry that needs more than the canonical batch."""
    from rlspec.reference._validate import fail

    spec = registry.get(name)
    if spec.kind != kind or missing_inputs(spec.name):
        raise fail(argument, f"{name!r} (kind {spec.kind!r}, needs {missing_inputs(spec.name)})", DRIVES[kind])
    cfg = config if config is not None and not isinstance(config, dict) else spec.config(**(config or {}))
    return spec, optimized.get(spec.name), cfg


def config_with(base, **fields):
    """``dataclasses.replace(base, **fields)`` for the fields the config has; a needed field it lacks raises."""
    import dataclasses

    from rlspec.reference._validate import fail

    have = {f.name for f in dataclasses.fields(base)}
    lacking = [k for k, v in fields.items() if k not in have and v is not None]
    if lacking:
        raise fail("config", f"{type(base).__name__} without {lacking}", "a config that carries the trainer's "
                   "aggregation (this entry aggregates its own way)")
    return dataclasses.replace(base, **{k: v for k, v in fields.items() if k in have})


def compute_dtype(logp):
    """The dtype a trainer's loss is computed in for these log-probs: float32 for half-precision ones (verl's FSDP
    engine and TRL under ``bf16=True`` return bfloat16 log-probs next to float32 advantages), else their own.
    Casting the advantages down to bfloat16 would round them to about 3 significant digits."""
    import torch

    return torch.float32 if logp.dtype in (torch.bfloat16, torch.float16) else logp.dtype

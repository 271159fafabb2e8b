"""CRAFT-GUI curriculum and composite reward (torch). Mirrors :mod:`rlspec.reference.craft_gui` (arXiv 2508.11360).

The curriculum state is the reference's :class:`rlspec.reference.craft_gui.CraftGUIState` (plain Python numbers:
it is a handful of scalars); the pool, the probabilities and the inverse-CDF draw are tensors, the cumulative
probabilities in float64 so that the draw agrees with the reference on the same uniforms. The reward is a
weighted sum of component tensors (float64 for half-precision inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlspec.optimized.registry import implements
from rlspec.reference._validate import fail
from rlspec.reference.craft_gui import (
    CraftGUIConfig,
    CraftGUIRewardConfig,
    CraftGUIState,
    check_state,
)

__all__ = ["CraftGUIConfig", "CraftGUIRewardConfig", "CraftGUIState", "update", "stage_probs", "sample_tasks",
           "craft_gui", "craft_gui_reward"]


def _vec(x: Any, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 1 or t.dtype.is_complex:
        raise fail(name, f"{t.dtype} {tuple(t.shape)}", "a real 1-D array")
    return t


def update(state: CraftGUIState, reward: Any, config: CraftGUIConfig | None = None) -> CraftGUIState:
    """Steps + 1, EMA of the mean batch reward, stage advance by the config's rule. Pure."""
    cfg = config or CraftGUIConfig()
    st = check_state(state, cfg.n_stages)
    r = _vec(reward, "reward").to(torch.float64)
    if r.numel() == 0 or not bool(torch.isfinite(r).all()) or bool(((r < 0) | (r > 1)).any()):
        raise fail("reward", f"{r.numel()} values", "at least one finite reward, all in [0, 1]")
    steps = int(st.steps_in_stage) + 1
    ema = cfg.ema_decay * float(st.ema) + (1.0 - cfg.ema_decay) * float(r.mean())
    due = steps >= cfg.stage_steps and (cfg.advance == "schedule" or ema >= cfg.threshold)
    if due and st.stage < cfg.n_stages - 1:
        return CraftGUIState(stage=int(st.stage) + 1, steps_in_stage=0, ema=0.0)
    return CraftGUIState(stage=int(st.stage), steps_in_stage=steps, ema=ema)


def stage_probs(tier: Any, stage: int, config: CraftGUIConfig | None = None) -> torch.Tensor:
    """Uniform probabilities (N,) float64 over the stage's pool (fallback: nearest non-empty tier, see reference)."""
    cfg = config or CraftGUIConfig()
    t = _vec(tier, "tier")
    if t.numel() == 0 or t.dtype.is_floating_point or t.dtype == torch.bool or bool((t < 0).any()):
        raise fail("tier", f"{t.dtype} {tuple(t.shape)}", "a non-empty 1-D array of tiers ≥ 0")
    t = t.long()
    eligible = t <= stage if cfg.pool == "cumulative" else t == stage
    if not bool(eligible.any()):
        above = t[t > stage]
        eligible = t == (above.min() if above.numel() else t.max())
    e = eligible.to(torch.float64)
    return e / e.sum()


def sample_tasks(probs: torch.Tensor, u: Any) -> torch.Tensor:
    """Inverse-CDF draws: the task q with u ∈ [F_{q−1}, F_q)."""
    uu = _vec(u, "u").to(torch.float64)
    if bool(((uu < 0) | (uu >= 1)).any()) or not bool(torch.isfinite(uu).all()):
        raise fail("u", "values outside [0, 1)", "uniforms in [0, 1)")
    F = torch.cumsum(probs.to(torch.float64), dim=0)
    F[-1] = 1.0
    return torch.searchsorted(F, uu, right=True).clamp(max=probs.numel() - 1)


@implements("craft_gui")
def craft_gui(state: CraftGUIState, tier: Any, reward: Any, u: Any, config: CraftGUIConfig | None = None):
    """(probs (N,), next_idx (n,), new_state) after this step's rewards."""
    cfg = config or CraftGUIConfig()
    new = update(state, reward, cfg)
    probs = stage_probs(tier, new.stage, cfg)
    return probs, sample_tasks(probs, u), new


def _unit(x: Any, name: str, B: int | None, binary: bool = False) -> torch.Tensor:
    t = _vec(x, name)
    t = t.to(torch.float64) if t.dtype in (torch.bfloat16, torch.float16, torch.bool) or not t.dtype.is_floating_point \
        else t
    if (B is not None and t.shape[0] != B) or not bool(torch.isfinite(t).all()) or bool(((t < 0) | (t > 1)).any()):
        raise fail(name, f"shape {tuple(t.shape)}", f"({B if B is not None else 'B'},) values in [0, 1]")
    if binary and bool(((t != 0) & (t != 1)).any()):
        raise fail(name, "values other than 0/1", "0/1 (or bool) values")
    return t


@implements("craft_gui_reward")
def craft_gui_reward(fmt, type_ok, arg, judge, config: CraftGUIRewardConfig | None = None) -> torch.Tensor:
    """r = fmt·(w_f + w_t·type + w_a·type·arg + w_j·judge) with the config's gates."""
    cfg = config or CraftGUIRewardConfig()
    f = _unit(fmt, "fmt", None, binary=True)
    B = f.shape[0]
    t = _unit(type_ok, "type_ok", B, binary=True)
    a = _unit(arg, "arg", B)
    j = _unit(judge, "judge", B)
    a = a * t if cfg.arg_requires_type else a
    r = cfg.w_fmt * f + cfg.w_type * t + cfg.w_arg * a + cfg.w_judge * j
    return f * r if cfg.format_gate else r

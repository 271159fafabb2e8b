"""The built-in adapter for AReaL (checked against 1.0.4): its own loss, KL and normalisation code.

What is called (never a copy of AReaL's math):

* ``ppo`` / ``dapo``: ``areal.utils.functional.ppo_actor_loss_fn`` with ``proximal_logprobs =
  old_logprobs = old_logp`` (plain, non-decoupled PPO), ``eps_clip`` / ``eps_clip_higher`` / ``c_clip``;
* ``gspo``: the same function with ``importance_sampling_level="sequence"`` (sequence geometric-mean
  ratio and per-sequence mean advantage);
* ``sapo``: ``areal.utils.functional.sapo_loss_fn``;
* ``decoupled_ppo``: ``ppo_actor_loss_fn`` with ``proximal_logprobs = prox_logp`` (``old_logp`` when absent),
  ``old_logprobs = old_logp`` (behaviour) and the behaviour weight expressed through ``rejection_sampling``:
  ``behave_weight=False`` → ``None`` (AReaL's default: no weight), otherwise
  ``RejectionSamplingConfig(level="token", metric="ratio", action=behave_cap_mode, upper=behave_cap or inf)``;
* ``value_clip`` (critic): ``areal.utils.functional.ppo_critic_loss_fn`` (float32 only: it asserts float32
  inputs), ``value_eps_clip = eps`` (``inf`` for no clip); its gradient w.r.t. the values is ``dvalues``;
* ``kl_k1`` / ``kl_k2`` / ``kl_k3``: ``areal.utils.data.KLEstimator`` (AReaL uses it per token as a
  reward penalty, ``trainer/ppo/actor.py``; it has no KL *loss* aggregation, so the adapter forms the
  masked token-mean of AReaL's per-token values — a sum and a count, the only arithmetic done here —
  to compare value and gradient with the ``kl`` entries);
* ``grpo`` / ``dr_grpo`` / ``rloo``: ``areal.utils.data.Normalization(NormConfig(...))`` with
  ``mean_level="group"`` (``mean_leave1out=True`` for RLOO) and ``std_level="group"`` or ``None``.
  AReaL takes no group ids: it finds groups by a fixed stride of ``group_size`` consecutive rows. The rows
  are passed in the order given with ``group_size`` = the batch's largest group (what a user configures,
  :func:`rlspec.conformance.adapters.base.configured_group_size`), so interleaved or unequal groups and a
  batch that is not a multiple of ``group_size`` give what AReaL gives them (its loop leaves trailing rows
  with mean 0 and std 0).

``import areal`` runs ``areal/__init__`` (aiohttp, uvloop, flask, numba, openai, ...); everything is
imported lazily in :func:`load`, so this module imports without AReaL. Nothing is stubbed.

Padding is passed as given (``scrub_padding = False``, like every built-in adapter); the default cases hold
finite garbage there. AReaL masks with ``torch.where`` (values are right), but ``ppo_actor_loss_fn`` computes
``torch.where(mask, exp(logp − prox), 0)``, whose backward multiplies the zero upstream gradient by
``exp(NaN or ±inf)`` at padded positions and so writes NaN into ``dlogp`` there: the ``padding-nonfinite``
cases show it (expectation file; tests/test_adapter_areal.py). A subclass with ``scrub_padding = True`` zeroes
padding first; :class:`ArealRawAdapter` is kept as a name for the default.
"""

from __future__ import annotations

import threading
import types
from typing import Any

import numpy as np

from rlspec.conformance.adapters.base import (
    Adapter,
    Unsupported,
    array_literal,
    configured_group_size,
    framework_version,
    zero_padding,
)

_LOCK = threading.Lock()
_MODS: types.SimpleNamespace | None = None

POLICY = ("ppo", "dapo", "gspo", "sapo", "decoupled_ppo")
KL = ("kl_k1", "kl_k2", "kl_k3")
ADVANTAGE = ("grpo", "dr_grpo", "rloo")
SUPPORTED = frozenset(POLICY + KL + ADVANTAGE + ("value_clip",))



def load() -> types.SimpleNamespace:
    """Import AReaL's functions (lazily, once)."""
    global _MODS
    with _LOCK:
        if _MODS is None:
            import torch
            from areal.api.cli_args import NormConfig, RejectionSamplingConfig
            from areal.utils import functional
            from areal.utils.data import KLEstimator, Normalization

            _MODS = types.SimpleNamespace(torch=torch, functional=functional, NormConfig=NormConfig,
                                          Normalization=Normalization, KLEstimator=KLEstimator,
                                          RejectionSamplingConfig=RejectionSamplingConfig)
        return _MODS


def group_major(group: np.ndarray) -> tuple[int, np.ndarray]:
    """(group_size, order) as a user hands the batch to AReaL: the largest group's size and the rows in the
    order given (AReaL has no group ids; its Normalization groups a fixed stride of consecutive rows)."""
    g = np.asarray(group)
    return configured_group_size(g), np.arange(g.size)


class ArealAdapter(Adapter):
    """AReaL's ppo_actor_loss_fn / sapo_loss_fn / KLEstimator / Normalization."""

    name = "areal"
    version = framework_version("areal")
    dtypes = ("float64", "float32", "bfloat16")
    #: AReaL's Normalization takes a fixed stride of group_size rows and takes no group ids: the adapter passes rows as given
    #: (what a user gets), and the cases also come in the framework's own layout (each group side by side,
    #: every group cut to one size), as its rollout buffer has them
    group_layouts = ("any", "contiguous-equal")
    scrub_padding = False
    conventions: dict[str, dict[str, Any]] = {
        # utils/functional.py ppo_actor_loss_fn: ratio = exp(logp - prox), no log-ratio clamp; aggregation
        # Σ_masked / loss_mask.count_nonzero() (or 1): token-mean of this call. c_clip opt-in (default None).
        "ppo": {},
        "dapo": {},
        # importance_sampling_level="sequence": then the same token-mean aggregation over tokens
        "gspo": {"agg": "token-mean"},
        # sapo_loss_fn: token-mean (count_nonzero), no clamp; tau_pos/tau_neg passed explicitly
        "sapo": {"agg": "token-mean"},
        # KLEstimator(apply_clamp=True): value clamped to [-10, 10] after the estimator, no pre-clamp
        "kl_k1": {"value_clamp": 10.0},
        "kl_k2": {"value_clamp": 10.0},
        "kl_k3": {"value_clamp": 10.0},
        # api/cli_args.py NormConfig defaults: std_unbiased=True, eps=1e-5 added to the std; group_size=1 with an
        # unbiased std uses std := 1 (utils/data.py Normalization), so a lone rollout gets x - x = 0
        "grpo": {"ddof": 1, "eps": 1e-5, "eps_placement": "outside"},
        "dr_grpo": {"ddof": 1, "eps": 1e-5, "eps_placement": "outside"},
        # mean_leave1out=True with group_size=1: "mean should be 0" (utils/data.py) -> the raw reward
        "rloo": {"singleton": "raw"},
        # api/cli_args.py PPOActorConfig: rejection_sampling defaults to None, and ppo_actor_loss_fn multiplies by
        # the behaviour weight pi_prox/pi_behave only when rejection_sampling is set (utils/functional/functional.py):
        # by default the decoupled loss drops the paper's importance weight (behave_weight=False). The flipped case
        # config (behave_weight=True) checks the paper's form through an unbounded token-level ratio filter.
        "decoupled_ppo": {"behave_weight": False},
        # api/cli_args.py PPOCriticConfig.eps_clip default 0.5; ppo_critic_loss_fn: 0.5*(x-y)^2 (_mse_loss), masked
        # token-mean (count_nonzero)
        "value_clip": {"eps": 0.5},
    }

    def available(self) -> tuple[bool, str]:
        try:
            load()
        except Exception as e:  # noqa: BLE001
            return False, f"areal not importable: {type(e).__name__}: {e}"
        return True, ""

    def supports(self, spec: Any) -> bool:
        return spec.name in SUPPORTED

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        m = load()
        tdt = getattr(m.torch, dtype)
        if self.scrub_padding:
            inputs = zero_padding(inputs)
        if spec.name == "value_clip":
            return self._value_clip(m, inputs, config, tdt, dtype)
        if spec.name in POLICY:
            return self._policy(m, spec.name, inputs, config, tdt)
        if spec.name in KL:
            return self._kl(m, spec.name, inputs, config, tdt)
        if spec.name in ADVANTAGE:
            return self._advantage(m, spec.name, inputs, config, tdt)
        raise Unsupported(f"areal adapter has no mapping for {spec.name}")

    @staticmethod
    def _common_checks(cfg) -> None:
        if cfg.agg != "token-mean":
            raise Unsupported(f"agg={cfg.agg!r}: AReaL's loss functions return the token-mean of the call "
                                      "(loss_mask.count_nonzero())")
        if cfg.normalizer is not None:
            raise Unsupported("normalizer: AReaL applies the global token weighting in its train engine "
                                      "(loss_weight_fn), outside the loss functions")
        if cfg.log_ratio_clamp is not None:
            raise Unsupported("log_ratio_clamp: AReaL does not clamp log-ratios")

    def _policy(self, m, name, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        self._common_checks(cfg)
        lp = torch.as_tensor(x["logp"]).to(tdt).requires_grad_(True)
        old = torch.as_tensor(x["old_logp"]).to(tdt)
        adv = torch.as_tensor(x["adv"]).to(tdt)
        mask = torch.as_tensor(x["mask"]).bool()
        if name == "sapo":
            loss, _ = m.functional.sapo_loss_fn(lp, old, adv, cfg.tau_pos, cfg.tau_neg, mask)
        elif name == "decoupled_ppo":
            prox = old if x.get("prox_logp") is None else torch.as_tensor(x["prox_logp"]).to(tdt)
            loss, _ = m.functional.ppo_actor_loss_fn(
                lp, prox, old, adv, cfg.eps_low, mask, eps_clip_higher=cfg.eps_high, c_clip=cfg.dual_clip_c,
                rejection_sampling=self._rejection(m, cfg))
        else:
            loss, _ = m.functional.ppo_actor_loss_fn(
                lp, old, old, adv, cfg.eps_low, mask, eps_clip_higher=cfg.eps_high,
                c_clip=getattr(cfg, "dual_clip_c", None),
                importance_sampling_level="sequence" if name == "gspo" else "token")
        return _loss_and_grad(torch, loss, lp)

    @staticmethod
    def _rejection(m, cfg):
        """The behaviour-weight options of decoupled_ppo as AReaL's RejectionSamplingConfig (None = no weight)."""
        if not cfg.behave_weight:
            return None
        if cfg.behave_cap is not None and cfg.behave_cap <= 1.0:
            raise Unsupported("behave_cap <= 1: RejectionSamplingConfig requires upper > 1 for the ratio metric")
        upper = float("inf") if cfg.behave_cap is None else float(cfg.behave_cap)
        return m.RejectionSamplingConfig(level="token", action=cfg.behave_cap_mode, metric="ratio", upper=upper)

    def _value_clip(self, m, x, cfg, tdt, dtype) -> dict[str, Any]:
        torch = m.torch
        if dtype != "float32":
            raise Unsupported(f"{dtype}: ppo_critic_loss_fn asserts float32 values, old values and returns")
        if cfg.agg != "token-mean" or cfg.normalizer is not None:
            raise Unsupported("ppo_critic_loss_fn returns the masked token-mean of the call (count_nonzero)")
        V = torch.as_tensor(x["values"]).to(tdt).requires_grad_(True)
        eps = float("inf") if cfg.eps is None else float(cfg.eps)
        loss, _ = m.functional.ppo_critic_loss_fn(V, torch.as_tensor(x["old_values"]).to(tdt),
                                                   torch.as_tensor(x["returns"]).to(tdt), eps,
                                                   loss_mask=torch.as_tensor(x["mask"]).bool())
        loss.backward()
        g = V.grad if V.grad is not None else torch.zeros_like(V)
        return {"loss": float(loss.detach().double()), "dvalues": g.detach().double().numpy()}

    def _kl(self, m, name, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        if cfg.is_weight is not None or cfg.straight_through_k2:
            raise Unsupported("KLEstimator has no importance weight or straight-through gradient")
        if cfg.value_clamp != 10.0 or cfg.log_ratio_clamp is not None:
            raise Unsupported("KLEstimator(apply_clamp=True) clamps the value to [-10, 10] only")
        self._common_checks(cfg)
        lp = torch.as_tensor(x["logp"]).to(tdt).requires_grad_(True)
        ref = torch.as_tensor(x["ref_logp"]).to(tdt)
        mask = torch.as_tensor(x["mask"]).bool()
        k = m.KLEstimator(name[-2:], apply_clamp=True)(lp, ref)
        # masked token-mean (AReaL has no KL-loss aggregation; see the module docstring)
        loss = torch.where(mask, k, 0.0).sum() / max(int(mask.sum()), 1)
        return _loss_and_grad(torch, loss, lp)

    def _advantage(self, m, name, x, cfg, tdt) -> dict[str, Any]:
        torch = m.torch
        n, order = group_major(x["group"])
        if name in ("grpo", "dr_grpo"):
            std_level = "group" if cfg.std_normalize else None
            if cfg.std_normalize and (cfg.ddof != 1 or cfg.eps_placement != "outside"):
                raise Unsupported(f"NormConfig divides by std (unbiased here) + eps; config asks ddof={cfg.ddof} "
                                          f"eps_placement={cfg.eps_placement}")
            norm = m.NormConfig(mean_level="group", std_level=std_level, std_unbiased=True, eps=float(cfg.eps),
                                group_size=n)
        else:  # rloo
            norm = m.NormConfig(mean_level="group", mean_leave1out=True, std_level=None, group_size=n)
        R = torch.as_tensor(np.asarray(x["rewards"])[order]).to(tdt)
        A_sorted = m.Normalization(norm)(R)
        A = torch.empty_like(A_sorted)
        A[torch.as_tensor(order)] = A_sorted  # back to the caller's row order
        mask = np.asarray(x["mask"], bool)
        adv = np.where(mask, A.detach().double().numpy()[:, None], 0.0)  # a sequence advantage on its tokens
        return {"adv": adv}

    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        if config is None:
            try:
                config = spec.config(**self.conventions.get(spec.name, {}))
            except Exception:  # noqa: BLE001
                config = None
        return reproduction_snippet(spec.name, inputs, config, dtype)


class ArealRawAdapter(ArealAdapter):
    """AReaL with padding passed as given: the same as :class:`ArealAdapter` (its default), kept as a name for
    ``rlspec check rlspec.conformance.adapters.areal_adapter:ArealRawAdapter``."""

    scrub_padding = False


def _loss_and_grad(torch, loss, lp) -> dict[str, Any]:
    loss.backward()
    g = lp.grad if lp.grad is not None else torch.zeros_like(lp)
    return {"loss": float(loss.detach().double()), "dlogp": g.detach().double().numpy()}


def reproduction_snippet(name: str, x: dict[str, np.ndarray], cfg: Any, dtype: str) -> str:
    """Standalone Python (AReaL + numpy/torch only) that rebuilds the case and calls AReaL."""
    c = (lambda f, d=None: getattr(cfg, f, d)) if cfg is not None else (lambda f, d=None: d)
    lines = ["import numpy as np, torch", "from numpy import nan, inf",
             "from areal.utils.functional import ppo_actor_loss_fn, sapo_loss_fn",
             "from areal.utils.data import KLEstimator, Normalization", "from areal.api.cli_args import NormConfig",
             f"dt = torch.{dtype}"]
    for k, v in x.items():
        if isinstance(v, np.ndarray):
            lines.append(f"{k} = {array_literal(v)}")
    if name in POLICY or name in KL:
        lines.append("lp = torch.tensor(logp, dtype=dt, requires_grad=True); m = torch.tensor(mask)")
    if name == "value_clip":
        eps = c("eps", 0.5)
        lines += ["from areal.utils.functional import ppo_critic_loss_fn",
                  "V = torch.tensor(values, dtype=torch.float32, requires_grad=True)",
                  "loss, _ = ppo_critic_loss_fn(V, torch.tensor(old_values, dtype=torch.float32), "
                  f"torch.tensor(returns, dtype=torch.float32), {float('inf') if eps is None else eps!r}, "
                  "loss_mask=torch.tensor(mask))",
                  "loss.backward(); print('loss', loss.item()); print('dvalues', V.grad)"]
        return "\n".join(lines) + "\n"
    if name == "decoupled_ppo":
        cap = c("behave_cap")
        rs = "None" if not c("behave_weight", True) else (
            "RejectionSamplingConfig(level='token', action=" + repr(c("behave_cap_mode", "mask")) +
            ", metric='ratio', upper=" + ("float('inf')" if cap is None else repr(float(cap))) + ")")
        lines += ["from areal.api.cli_args import RejectionSamplingConfig",
                  "o = torch.tensor(old_logp, dtype=dt)",
                  "p = torch.tensor(prox_logp, dtype=dt)" if "prox_logp" in x else "p = o",
                  f"loss, _ = ppo_actor_loss_fn(lp, p, o, torch.tensor(adv, dtype=dt), {c('eps_low', 0.2)!r}, m, "
                  f"eps_clip_higher={c('eps_high', 0.2)!r}, c_clip={c('dual_clip_c')!r}, rejection_sampling={rs})",
                  "loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)"]
        return "\n".join(lines) + "\n"
    if name == "sapo":
        lines.append(f"loss, _ = sapo_loss_fn(lp, torch.tensor(old_logp, dtype=dt), torch.tensor(adv, dtype=dt), "
                     f"{c('tau_pos', 1.0)!r}, {c('tau_neg', 1.05)!r}, m)")
    elif name in POLICY:
        lvl = "sequence" if name == "gspo" else "token"
        lines.append("o = torch.tensor(old_logp, dtype=dt)")
        lines.append(f"loss, _ = ppo_actor_loss_fn(lp, o, o, torch.tensor(adv, dtype=dt), {c('eps_low', 0.2)!r}, m, "
                     f"eps_clip_higher={c('eps_high', 0.2)!r}, c_clip={c('dual_clip_c')!r}, "
                     f"importance_sampling_level={lvl!r})")
    elif name in KL:
        lines.append(f"k = KLEstimator({name[-2:]!r})(lp, torch.tensor(ref_logp, dtype=dt))")
        lines.append("loss = torch.where(m, k, 0.0).sum() / max(int(m.sum()), 1)  # masked token-mean")
    if name in POLICY or name in KL:
        lines.append("loss.backward(); print('loss', loss.item()); print('dlogp', lp.grad)")
    else:
        if name == "rloo":
            kw = "mean_level='group', mean_leave1out=True, std_level=None"
        else:
            kw = f"mean_level='group', std_level={'group' if c('std_normalize', name == 'grpo') else None!r}, " \
                 f"eps={c('eps', 1e-5)!r}"
        lines += [
            "# AReaL takes no group ids: rows in the order given, group_size = the largest group",
            "n = int(np.unique(group, return_counts=True)[1].max()) if len(group) else 1",
            f"A = Normalization(NormConfig({kw}, group_size=n))(torch.tensor(rewards, dtype=dt))",
            "print('adv per sequence', A.double().numpy())",
        ]
    return "\n".join(lines) + "\n"


__all__ = ["ArealAdapter", "ArealRawAdapter", "load", "group_major", "reproduction_snippet"]

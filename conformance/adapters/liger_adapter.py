"""Built-in adapter for Liger-Kernel (checked against 0.8.5): its GRPO loss, three ways.

Liger ships one GRPO loss (a port of TRL's, same ``loss_type`` names) behind three entry points:

1. ``liger_kernel.chunked_loss.grpo_loss.LigerFusedLinearGRPOFunction.ppo_loss_fn`` — the loss math on
   per-token log-probs, a staticmethod in plain torch. The fused op calls it on each chunk (through
   ``LigerFusedLinearPPOBase._compute_loss_from_logps``). :class:`LigerAdapter` (the built-in ``liger``)
   calls it directly with the case's ``logp`` as a leaf tensor, so ``dlogp`` is exact autograd, in
   float64, float32 and bfloat16.
2. ``liger_kernel.chunked_loss.LigerFusedLinearGRPOLoss(compiled=False)`` — the fused LM-head + loss,
   pure-torch chunked path with a hand-written backward. It takes hidden states ``h`` (B, T, H), an
   LM-head weight ``W`` (V, H) and the selected token ids, computes ``logp = log_softmax(h Wᵀ)[y]``
   itself (always in float32) and returns ∂loss/∂h, ∂loss/∂W — never ∂loss/∂logp. :class:`LigerFusedAdapter`
   recovers ∂loss/∂logp exactly, with this construction:

   * V = 2 tokens, H = 1, ``W = [[1], [0]]`` and every selected token id 0, so the logits of token
     (b, t) are ``[z_bt, 0]`` and Liger's ``logp_bt = z_bt − log(e^{z_bt} + 1) = log σ(z_bt)``;
   * ``z_bt = logp_bt − log(−expm1(logp_bt))`` (the logit of p = e^{logp}) makes that equal to the
     case's ``logp`` (needs logp < 0 at valid positions; padded positions get z = 0);
   * the chain rule through that one-token softmax is exact and local:
     ``∂loss/∂z_bt = ∂loss/∂logp_bt · (1 − p_bt)``, so ``dlogp = h.grad / (1 − σ(z))`` with
     ``1 − σ(z) = −expm1(logp)`` evaluated in float64 on the z Liger actually saw.

   The loss value is Liger's own. The comparison is only as good as float32 ``log_softmax`` near
   ``logp → 0`` (Liger computes ``log Z`` as ``max + log(Σ e^{…})`` without ``log1p``: for logp in
   (−log 2, 0) the relative error of logp grows like u/(1 − p)), so this path runs in float32 only and
   ``tests/test_adapter_liger.py`` checks it on logp ≤ −0.7 against the reference and against path 1.
3. ``liger_kernel.transformers.grpo_loss.triton_grpo_loss`` — the Triton kernel. It needs CUDA and
   triton: on a CPU machine :class:`LigerTritonAdapter.available` returns False with the reason. On a
   GPU it feeds logits (B, T+1, 2) built as above (``temperature=1``) and converts ∂loss/∂logits of
   the selected token by the same factor (1 − p). That path is written but was not run here.

Mapping (all paths): ppo/dapo → ``loss_type`` from ``agg`` (token-mean → ``dapo`` with
``num_items_in_batch = normalizer``; seq-mean-token-mean → ``grpo``; seq-mean-token-sum-norm →
``dr_grpo``; seq-mean-token-sum → ``luspo``), ``epsilon_low/high = eps_low/high``; gspo → the same
with ``importance_sampling_level="sequence"``; sapo → ``loss_type="sapo"`` (grpo normaliser only);
cispo → ``loss_type="cispo"``, ``epsilon_high = 1 + eps_high`` (absolute, one-sided cap); kl_k3 →
``beta = 1`` with zero advantages, ``use_bias_correction_kl = (is_weight == "ratio")`` (Liger's
default is False). Liger takes ONE advantage per sequence (``advantages`` (B,)): a case whose ``adv``
varies along a sequence is not expressible (NotImplementedError → unsupported), except for gspo,
whose reference uses the sequence mean Â_i anyway. No advantage estimator, no entropy entry, no
dual clip, no log-ratio or KL clamps in Liger.

Padding is passed to Liger as given, as in every built-in adapter (the default cases hold finite garbage at
padded positions, the ``padding-nonfinite`` cases NaN/inf: Liger multiplies by the mask, so NaN there
poisons the loss). A subclass with ``raw_padding = False`` zeroes padding first; :class:`LigerRawPaddingAdapter`
is kept as a name for the default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rlspec.conformance.adapters.base import Adapter, Unsupported, framework_version, shaped
from rlspec.conformance.adapters.trl_adapter import loss_type_for, sanitize, sequence_advantage

DIST = "liger-kernel"
SUPPORTED = ("ppo", "dapo", "gspo", "sapo", "cispo", "kl_k3", "two_sided_clip", "tis", "vespo")


def _torch_dtype(dtype: str):
    import torch

    return {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


@dataclasses.dataclass
class Plan:
    kwargs: dict[str, Any]  # loss settings (ppo_loss_fn / LigerFusedLinearGRPOLoss keyword arguments)
    logp: np.ndarray
    old_logp: np.ndarray | None
    ref_logp: np.ndarray | None
    adv: np.ndarray  # (B,)
    mask: np.ndarray  # (B, T) bool
    num_items_in_batch: float | None
    vllm_is_ratio: np.ndarray | None = None  # tis: the rollout-mismatch weight (B, T), an input of Liger's API


def per_sequence_advantage(adv: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """(B,) advantages; NotImplementedError when adv varies along a sequence (Liger takes (B,))."""
    if name == "gspo":
        return sequence_advantage(adv, mask)  # the reference's Â_i (masked token-mean)
    hi = np.where(mask, adv, -np.inf).max(axis=1)
    lo = np.where(mask, adv, np.inf).min(axis=1)
    has = mask.any(axis=1)
    if (hi[has] != lo[has]).any():
        raise Unsupported("Liger's API takes one advantage per sequence (advantages (B,), documented; "
                          "ppo_loss_fn always unsqueezes it to (B, 1)): token-level advantages cannot be expressed")
    return np.where(has, hi, 0.0)  # the (exact) common value of each sequence


class LigerAdapter(Adapter):
    """``LigerFusedLinearGRPOFunction.ppo_loss_fn`` (Liger's GRPO loss math) on the case's log-probs."""

    name = "liger"
    dtypes = ("float64", "float32", "bfloat16")
    raw_padding = True
    path = "loss_fn"
    # Liger's documented defaults (liger_kernel/chunked_loss/grpo_loss.py, LigerFusedLinearGRPOLoss.__init__
    # and LigerFusedLinearGRPOFunction.ppo_loss_fn):
    conventions = {
        # every per-sequence mean divides by all B rows of the micro-batch, empty rows included
        # (seq_denominator='all'; the reference's default for seq-mean is B′, the non-empty rows)
        # loss_type="dapo" (token-mean, normaliser num_items_in_batch or the mask's token count);
        # coef_1 = torch.exp(log_ratio), no clamp; clip_coef_fn: clamp(coef, 1-ε_low, 1+ε_high), no dual clip.
        "ppo": {"agg": "token-mean", "seq_denominator": "all", "dual_clip_c": None, "log_ratio_clamp": None},
        "dapo": {"agg": "token-mean", "seq_denominator": "all", "log_ratio_clamp": None},
        # importance_sampling_level="sequence": exp(Σ m·log_ratio / clamp(Σ m, 1)), the ratio of GSPO
        "gspo": {"agg": "seq-mean-token-mean", "seq_denominator": "all", "log_ratio_clamp": None},
        # loss_type="sapo" uses the grpo normaliser ("SAPO uses same normalization as GRPO")
        "sapo": {"agg": "seq-mean-token-mean", "seq_denominator": "all", "log_ratio_clamp": None},
        # clip_coef_fn for cispo: torch.clamp(coef, None, epsilon_high).detach() — upper bound only, absolute
        "cispo": {"agg": "token-mean", "seq_denominator": "all", "eps_low": None, "log_ratio_clamp": None},
        # k3_loss_fn(ref, logp) = exp(ref − logp) − (ref − logp) − 1, no clamp; use_bias_correction_kl=False
        "kl_k3": {"agg": "token-mean", "seq_denominator": "all", "is_weight": None, "value_clamp": None, "log_ratio_clamp": None,
                  "straight_through_k2": False},
        # ppo_loss_fn(delta=): `coef_1 = torch.clamp(coef_1, max=delta)` in the non-cispo/sapo/vespo branch, after
        # coef_2 is clipped; Liger's default delta=None (off), so the entry's δ = 4 is passed.
        "two_sided_clip": {"agg": "token-mean", "seq_denominator": "all", "dual_clip_c": None, "log_ratio_clamp": None},
        # ppo_loss_fn(vllm_is_ratio=): `per_token_loss = per_token_loss * vllm_is_ratio` before the KL term; the
        # weight is the caller's (Liger never computes it), so C/C_min/mode stay the reference's.
        "tis": {"agg": "token-mean", "seq_denominator": "all", "dual_clip_c": None, "log_ratio_clamp": None},
        # loss_type="vespo": get_gamma_weights (±20 per token, sum clamped to [log 1e-8, 20]), dapo normaliser
        "vespo": {"agg": "token-mean", "seq_denominator": "all"},
    }

    def __init__(self) -> None:
        self.version = framework_version(DIST)

    def available(self) -> tuple[bool, str]:
        try:
            from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction  # noqa: F401
        except Exception as e:  # noqa: BLE001
            return False, f"liger-kernel is not importable: {type(e).__name__}: {e}"
        return True, ""

    def supports(self, spec: Any) -> bool:
        return spec.name in SUPPORTED

    def plan(self, spec: Any, inputs: dict[str, np.ndarray], config: Any) -> Plan:
        name = spec.name
        if name not in SUPPORTED:
            raise Unsupported(f"liger has no {name}")
        cfg = config if config is not None else spec.config(**self.conventions.get(name, {}))
        mask = np.asarray(inputs["mask"], dtype=bool)
        B, T = mask.shape
        clean = (lambda x: np.asarray(x, dtype=np.float64)) if self.raw_padding else \
            (lambda x: sanitize(np.asarray(x, dtype=np.float64), mask))
        if name == "vespo":
            return self._plan_vespo(cfg, inputs, mask, clean)
        if cfg.log_ratio_clamp is not None:
            raise Unsupported("Liger does not clamp log-ratios (coef_1 = exp(log_ratio))")
        lt, extra = loss_type_for(cfg.agg, cfg.normalizer, cfg.const, T, who="Liger")
        kw: dict[str, Any] = {"beta": 0.0, "loss_type": lt, "max_completion_length": extra.get("max_completion_length", T)}
        n_items = extra.get("num_items_in_batch")
        logp = clean(inputs["logp"])
        if name == "kl_k3":
            if cfg.value_clamp is not None or cfg.straight_through_k2:
                raise Unsupported("Liger's k3 has no value clamp and no straight-through k2 gradient")
            if cfg.is_weight == "ratio-detached":
                raise Unsupported("Liger multiplies k3 by exp(log_importance_weights) with its gradient "
                                          "(is_weight='ratio') or not at all")
            kw.update(beta=1.0, use_bias_correction_kl=cfg.is_weight == "ratio")
            old = clean(inputs["old_logp"]) if cfg.is_weight == "ratio" else None  # None → logp.detach()
            return Plan(kw, logp, old, clean(inputs["ref_logp"]), np.zeros(B), mask, n_items)
        old = clean(inputs["old_logp"])
        adv = per_sequence_advantage(clean(inputs["adv"]), mask, name)
        is_ratio = None
        if name in ("ppo", "dapo", "gspo", "two_sided_clip", "tis"):
            if getattr(cfg, "dual_clip_c", None) is not None:
                raise Unsupported("Liger has no dual clip")
            kw.update(epsilon_low=cfg.eps_low, epsilon_high=cfg.eps_high)
            if name == "gspo":
                kw["importance_sampling_level"] = "sequence"
            if name == "two_sided_clip":
                kw["delta"] = cfg.delta
            if name == "tis":
                from rlspec.reference.tis import truncated_is_weight  # the weight is an input of Liger's API

                roll = clean(inputs["rollout_logp"]) if inputs.get("rollout_logp") is not None else old
                is_ratio = np.where(mask, truncated_is_weight(old, roll, cfg.C, cfg.C_min, cfg.mode), 0.0)
        elif name == "sapo":
            if lt != "grpo":
                raise Unsupported(f"Liger's sapo loss always uses the grpo normaliser; agg={cfg.agg!r}")
            kw.update(loss_type="sapo", sapo_temperature_pos=cfg.tau_pos, sapo_temperature_neg=cfg.tau_neg)
        elif name == "cispo":
            if cfg.eps_low is not None:
                raise Unsupported("Liger's CISPO clips the IS weight from above only (absolute cap "
                                          "epsilon_high); a lower bound eps_low is not expressible")
            if lt != "dapo":
                raise Unsupported(f"Liger's cispo loss always uses the dapo normaliser; agg={cfg.agg!r}")
            kw.update(loss_type="cispo", epsilon_high=1.0 + cfg.eps_high)
        return Plan(kw, logp, old, None, adv, mask, n_items, vllm_is_ratio=is_ratio)

    @staticmethod
    def _plan_vespo(cfg: Any, inputs: dict[str, np.ndarray], mask: np.ndarray, clean) -> Plan:
        """loss_type='vespo' (token level, dapo normaliser); Liger's clamps are fixed like TRL's."""
        import math

        if (cfg.log_ratio_clamp, cfg.log_w_max) != (20.0, 20.0) or cfg.log_w_min is None or \
                abs(cfg.log_w_min - math.log(1e-8)) > 1e-12:
            raise Unsupported("Liger's get_gamma_weights clamps token log-ratios to ±20 and the sequence sum "
                                      f"to [log 1e-8, 20]; got log_ratio_clamp={cfg.log_ratio_clamp}, "
                                      f"log_w_min={cfg.log_w_min}, log_w_max={cfg.log_w_max}")
        if cfg.agg != "token-mean":
            raise Unsupported(f"Liger's vespo loss always uses the dapo normaliser; agg={cfg.agg!r}")
        B, T = mask.shape
        kw = {"beta": 0.0, "loss_type": "vespo", "max_completion_length": T, "vespo_k_pos": cfg.k_pos,
              "vespo_lambda_pos": cfg.lambda_pos, "vespo_k_neg": cfg.k_neg, "vespo_lambda_neg": cfg.lambda_neg}
        adv = per_sequence_advantage(clean(inputs["adv"]), mask, "vespo")
        return Plan(kw, clean(inputs["logp"]), clean(inputs["old_logp"]), None, adv, mask, cfg.normalizer)

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        import torch
        from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction

        p = self.plan(spec, inputs, config)
        td = _torch_dtype(dtype)
        t = lambda x: None if x is None else torch.as_tensor(x).to(td)  # noqa: E731
        logp = torch.as_tensor(p.logp).to(td).requires_grad_(True)
        mask = torch.as_tensor(p.mask).long()
        loss, _metrics = LigerFusedLinearGRPOFunction.ppo_loss_fn(
            per_token_logps=logp, attention_mask=mask, advantages=t(p.adv), full_attention_mask=mask,
            ref_per_token_logps=t(p.ref_logp), old_per_token_logps=t(p.old_logp),
            num_items_in_batch=p.num_items_in_batch, vllm_is_ratio=t(p.vllm_is_ratio), **p.kwargs)
        loss.backward()
        g = logp.grad if logp.grad is not None else torch.zeros_like(logp)
        return {"loss": float(loss.detach().double()), "dlogp": g.detach().double().numpy()}

    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        try:
            p = self.plan(spec, inputs, config)
        except NotImplementedError as e:
            return f"# not expressible in Liger: {e}"
        return reproduction_script(p, dtype, self.path, config_note=config is None)


class LigerRawPaddingAdapter(LigerAdapter):
    """The case's padded positions passed to Liger unchanged: the same as :class:`LigerAdapter` (its default)."""

    raw_padding = True


# ---------------------------------------------------------------------- fused paths: logp ↔ logits
def logits_for_logp(logp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """z (B, T) with log σ(z) = logp at valid positions (z = 0 elsewhere). Needs logp < 0 there."""
    lp = np.where(mask, logp, np.log(0.5))
    if (lp >= 0).any() or not np.isfinite(lp).all():
        raise Unsupported("the fused path reconstructs logp through a softmax: it needs finite logp < 0 "
                                  "at valid positions")
    return lp - np.log(-np.expm1(lp))  # logit of p = e^{logp}


def one_minus_p(z: np.ndarray) -> np.ndarray:
    """1 − σ(z) = σ(−z), the exact factor ∂logp/∂z of the two-token construction (float64)."""
    return 1.0 / (1.0 + np.exp(z))


class LigerFusedAdapter(LigerAdapter):
    """``LigerFusedLinearGRPOLoss(compiled=False)``: the fused LM-head + GRPO loss (pure-torch chunked path).

    float32 only (Liger's log-probs are float32 buffers). dlogp = ∂loss/∂h / (1 − σ(h)) — see the module
    docstring for the construction. ``chunk_size`` rows per chunk (Liger's default 1)."""

    name = "liger"
    path = "fused"
    dtypes = ("float32",)
    chunk_size = 1

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        import torch
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

        if dtype != "float32":
            raise Unsupported("Liger's fused path computes log-probs in float32 only")
        p = self.plan(spec, inputs, config)
        z = logits_for_logp(p.logp, p.mask)
        h = torch.as_tensor(z, dtype=torch.float32).unsqueeze(-1).requires_grad_(True)  # (B, T, 1)
        W = torch.tensor([[1.0], [0.0]], dtype=torch.float32)  # (V=2, H=1): logits [z, 0]
        ids = torch.zeros(p.mask.shape, dtype=torch.long)
        t = lambda x: None if x is None else torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
        kw = dict(p.kwargs)
        beta = kw.pop("beta")
        fn = LigerFusedLinearGRPOLoss(beta=beta, compiled=False, use_ref_model=beta != 0.0,
                                      chunk_size=self.chunk_size, **kw)
        loss, _metrics = fn(h, W, ids, torch.as_tensor(p.mask).long(), t(p.adv),
                            ref_per_token_logps=t(p.ref_logp), old_per_token_logps=t(p.old_logp),
                            num_items_in_batch=p.num_items_in_batch, vllm_is_ratio=t(p.vllm_is_ratio))
        loss.backward()
        z_seen = h.detach().double().squeeze(-1).numpy()  # the logits Liger actually used
        dlogp = h.grad.detach().double().squeeze(-1).numpy() / one_minus_p(z_seen)
        return {"loss": float(loss.detach().double()), "dlogp": np.where(p.mask, dlogp, 0.0)}


class LigerTritonAdapter(LigerAdapter):
    """``triton_grpo_loss`` (Liger's Triton kernel); needs CUDA + triton. Untested on CPU machines."""

    name = "liger"
    path = "triton"
    dtypes = ("float32", "bfloat16")

    def available(self) -> tuple[bool, str]:
        try:
            import torch
        except Exception as e:  # noqa: BLE001
            return False, f"torch is not importable: {e}"
        if not torch.cuda.is_available():
            return False, ("Liger's Triton GRPO kernel (liger_kernel.transformers.grpo_loss.triton_grpo_loss) "
                           "needs a CUDA device; torch.cuda.is_available() is False here (on CPU triton fails "
                           "with 'RuntimeError: 0 active drivers')")
        try:
            import triton  # noqa: F401
            from liger_kernel.transformers.grpo_loss import triton_grpo_loss  # noqa: F401
        except Exception as e:  # noqa: BLE001
            return False, f"triton / liger_kernel.transformers.grpo_loss not importable: {type(e).__name__}: {e}"
        return True, ""

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        import torch
        from liger_kernel.transformers.grpo_loss import triton_grpo_loss

        p = self.plan(spec, inputs, config)
        td, dev = _torch_dtype(dtype), "cuda"
        B, T = p.mask.shape
        z = logits_for_logp(p.logp, p.mask)
        logits = torch.zeros(B, T + 1, 2, dtype=torch.float64)
        logits[:, :T, 0] = torch.as_tensor(z)  # logits[:, t] predicts completion token t; token 0 selected
        logits = logits.to(dev, td).requires_grad_(True)
        t = lambda x: None if x is None else torch.as_tensor(x, dtype=torch.float32, device=dev)  # noqa: E731
        kw = dict(p.kwargs)
        loss, _metrics = triton_grpo_loss(
            logits, t(p.old_logp), t(p.ref_logp), torch.zeros(B, T, dtype=torch.long, device=dev), t(p.adv),
            completion_mask=torch.as_tensor(p.mask, device=dev).long(), temperature=1.0, beta=kw.pop("beta"),
            eps_low=kw.pop("epsilon_low", 0.2), eps_high=kw.pop("epsilon_high", 0.2), inplace=False, reduce=True,
            num_items_in_batch=p.num_items_in_batch, vllm_is_ratio=t(p.vllm_is_ratio), **kw)
        loss.backward()
        z_seen = logits.detach()[:, :T, 0].double().cpu().numpy()
        dz = logits.grad[:, :T, 0].double().cpu().numpy()
        return {"loss": float(loss.detach().double().cpu()), "dlogp": np.where(p.mask, dz / one_minus_p(z_seen), 0.0)}


# ---------------------------------------------------------------------- reproduction
def _lit(x: np.ndarray | None, dt: str = "DT") -> str:
    if x is None:
        return "None"
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return shaped(f"torch.tensor({a.astype(int).tolist()!r})", a)
    return shaped(f"torch.tensor({a.astype(np.float64).tolist()!r}, dtype=torch.float64).to({dt})", a)


def reproduction_script(p: Plan, dtype: str, path: str, config_note: bool = False) -> str:
    """Stand-alone script (needs only liger-kernel and torch) calling Liger's GRPO loss on this case."""
    lines = ["# Needs only liger-kernel (checked with 0.8.5) and torch.", "import torch", "from numpy import nan, inf"]
    if config_note:
        lines.append("# (built with the entry's config under the adapter's conventions; the harness's script above "
                     "holds the case's own config overrides)")
    lines += [f"DT = torch.{dtype}", f"mask = {_lit(p.mask)}", f"old_logp = {_lit(p.old_logp)}",
              f"ref_logp = {_lit(p.ref_logp)}", f"adv = {_lit(p.adv)}  # one advantage per sequence"]
    if path == "fused":
        kw = dict(p.kwargs)
        beta = kw.pop("beta")
        lines += ["from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss",
                  f"logp_target = {_lit(p.logp, 'torch.float64')}",
                  "# logits [z, 0] over a 2-token vocabulary with log softmax(.)[0] = logp_target",
                  "z = torch.where(mask.bool(), logp_target, torch.tensor(0.5).log().double())",
                  "z = z - torch.log(-torch.expm1(z))",
                  "h = z.float().unsqueeze(-1).requires_grad_(True); W = torch.tensor([[1.0], [0.0]])",
                  f"fn = LigerFusedLinearGRPOLoss(beta={beta!r}, compiled=False, use_ref_model={beta != 0.0!r}, "
                  f"**{kw!r})",
                  "f32 = lambda x: None if x is None else x.float()",
                  "loss, _ = fn(h, W, torch.zeros(mask.shape, dtype=torch.long), mask, f32(adv), "
                  f"ref_per_token_logps=f32(ref_logp), old_per_token_logps=f32(old_logp), "
                  f"num_items_in_batch={p.num_items_in_batch!r})",
                  "loss.backward()",
                  "dlogp = h.grad.squeeze(-1).double() * (1 + h.detach().squeeze(-1).double().exp())  # / (1 - p)",
                  "print('loss:', loss.item()); print('dlogp:', dlogp)"]
    else:
        lines += ["from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction",
                  f"logp = {_lit(p.logp)}.requires_grad_(True)",
                  f"vllm_is_ratio = {_lit(p.vllm_is_ratio)}  # tis only: the rollout-mismatch weight",
                  "loss, _ = LigerFusedLinearGRPOFunction.ppo_loss_fn(per_token_logps=logp, attention_mask=mask, "
                  "advantages=adv, full_attention_mask=mask, ref_per_token_logps=ref_logp, "
                  f"old_per_token_logps=old_logp, num_items_in_batch={p.num_items_in_batch!r}, "
                  f"vllm_is_ratio=vllm_is_ratio, **{p.kwargs!r})",
                  "loss.backward()", "print('loss:', loss.item()); print('dlogp:', logp.grad)"]
    return "\n".join(lines) + "\n"

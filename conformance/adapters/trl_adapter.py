"""Built-in adapter for Hugging Face TRL (checked against 1.16.0): the GRPO trainer's own loss code.

Where TRL keeps the math
------------------------
TRL has no importable loss function: the GRPO objective, its KL term and its entropy bonus are
computed inside the trainer method ``trl.trainer.grpo_trainer.GRPOTrainer._compute_loss(model,
inputs)``. This adapter drives that method on the smallest honest object:

* ``GRPOTrainer.__new__`` (``__init__`` is skipped: no model, no dataset, no reward functions);
* a real ``trl.GRPOConfig`` built from the case's config, whose fields are copied onto the instance
  exactly as ``GRPOTrainer.__init__`` copies them (``loss_type``, ``beta``, ``epsilon_low/high``,
  ``importance_sampling_level``, ``max_completion_length``, ``entropy_coef`` ...);
* an instance attribute ``_get_per_token_logps_and_entropies`` that returns the case's ``logp`` leaf
  tensor (and, for the entropy entry, TRL's own ``entropy_from_logits`` of the case's logits) in
  place of the model forward. Everything after that line of ``_compute_loss`` is TRL's code.

``tests/test_adapter_trl.py`` checks that the adapter still reaches ``_compute_loss`` (a sentinel
raised from a monkeypatched method propagates) and that the set of ``self.*`` attributes the method
reads is the one this adapter provides, so a TRL upgrade fails loudly instead of silently.

Mapping of registry entries (``supports``) and configs
------------------------------------------------------
=============  ==============================================================================
registry       TRL (``GRPOConfig``)
=============  ==============================================================================
ppo, dapo      ``loss_type`` from ``agg`` (below), ``epsilon = eps_low``, ``epsilon_high = eps_high``
gspo           same with ``importance_sampling_level="sequence"``; advantages (B,) = the masked
               token-mean of ``adv`` per sequence (the reference's Â_i; TRL's trainer passes (B,))
sapo           ``loss_type="sapo"``, ``sapo_temperature_pos/neg = tau_pos/neg``
cispo          ``loss_type="cispo"``, ``epsilon_high = 1 + eps_high`` (TRL's cap is absolute)
kl_k3          ``beta = 1`` with zero advantages (the clipped policy term is then exactly 0 with zero
               gradient), ``use_bias_correction_kl = (is_weight == "ratio")``
entropy        ``entropy_coef = 1`` with zero advantages: ``loss = −H̄`` (TRL: ``loss −= coef·H̄``),
               H from ``trl.trainer.utils.entropy_from_logits``; value = −loss, dlogits = −∇loss
=============  ==============================================================================

``agg`` → ``loss_type``: ``token-mean`` → ``dapo`` (TRL's default; normaliser
``num_items_in_batch``, set to ``normalizer`` when given, else the local token count),
``seq-mean-token-mean`` → ``grpo``, ``seq-mean-token-sum-norm`` → ``dr_grpo``
(``max_completion_length = const`` or T), ``seq-mean-token-sum`` → ``luspo``;
``group-token-mean`` and a global ``normalizer`` for the seq-mean modes are not expressible
(TRL divides those by this micro-batch's rows and the gradient-accumulation steps) →
``NotImplementedError`` (reported "unsupported"). gspo_token (a stop-gradient token form),
kl_k1/kl_k2 (TRL's GRPO has only k3), dual clip, log-ratio and KL clamps are not in TRL.

Advantages: TRL computes them inline in ``GRPOTrainer._generate_and_score_completions``, a method
that also generates completions, calls reward functions and logs (≈700 lines); they cannot be reached
without copying the math, so every ``advantage`` entry is unsupported here (the semantics are in
our notes on TRL: ddof=1, ε = 1e-4 on the std, group of one → 0).

Padding: passed to TRL as given (``raw_padding = True``, like every built-in adapter). In TRL's trainer
every (B, T) tensor is a model output, finite at padded positions, and the loss multiplies by the mask
(``x * mask``) rather than selecting: the harness's default cases hold finite garbage there, and the
``padding-nonfinite`` cases NaN/inf, which turns a TRL loss into NaN (a finding, see the expectation file).
A subclass with ``raw_padding = False`` zeroes padding first; :class:`TRLRawPaddingAdapter` is kept as a
name for the default. Masks: the canonical ``mask`` is TRL's ``completion_mask`` (no ``tool_mask``: a
multi-turn case states tool positions as holes in ``mask``, which is what ``completion_mask * tool_mask``
is).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rlspec.conformance.adapters.base import Adapter, Unsupported, framework_version, shaped

FRAMEWORK = "trl"
#: registry entries this adapter maps onto TRL's GRPOTrainer._compute_loss
SUPPORTED = ("ppo", "dapo", "gspo", "sapo", "cispo", "kl_k3", "entropy", "two_sided_clip", "tis", "vespo",
             "high_entropy_mask", "off_policy_sequence_mask")
#: sampler entries: TRL's own GRPOTrainer methods, called directly (not through _compute_loss)
SAMPLERS = ("high_entropy_mask", "off_policy_sequence_mask")
#: aggregation mode → TRL loss_type for the PPO-clip family (GRPOTrainer._compute_loss normalisers)
AGG_TO_LOSS_TYPE = {
    "token-mean": "dapo",
    "seq-mean-token-mean": "grpo",
    "seq-mean-token-sum-norm": "dr_grpo",
    "seq-mean-token-sum": "luspo",
}
_TORCH_DTYPES = ("float64", "float32", "bfloat16")



def _torch_dtype(dtype: str):
    import torch

    return {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def sanitize(x: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Copy of ``x`` with padded positions (mask False along the leading (B, T) axes) set to ``fill``."""
    x = np.array(x, copy=True)
    x[~mask] = fill
    return x


def sequence_advantage(adv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Â_i = masked token-mean of adv over sequence i (B,), 0 for a sequence with no valid token.

    The reference's (and TRL's trainer's) one-advantage-per-sequence input; not loss math."""
    n = mask.sum(axis=1)
    tot = np.where(mask, adv, 0.0).sum(axis=1)
    return np.divide(tot, n, out=np.zeros_like(tot, dtype=np.float64), where=n > 0)


def constant_sequence_advantage(adv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """TRL's trainer format, (B,) advantages, when ``adv`` is constant along each sequence; otherwise ``adv``
    (B, T) as given, which ``_compute_loss`` also takes ("subclasses that provide advantages with shape
    (B, T)": it unsqueezes only a 1-D tensor)."""
    hi = np.where(mask, adv, -np.inf).max(axis=1)
    lo = np.where(mask, adv, np.inf).min(axis=1)
    has = mask.any(axis=1)
    if (hi[has] != lo[has]).any():
        return adv
    return np.where(has, hi, 0.0)


def loss_type_for(agg: str, normalizer: float | None, const: float | None, T: int, who: str = "TRL"
                  ) -> tuple[str, dict[str, Any]]:
    """(loss_type, extra settings) for an aggregation mode; NotImplementedError if not expressible."""
    if agg not in AGG_TO_LOSS_TYPE:
        raise Unsupported(f"{who} has no per-prompt ({agg}) normaliser: its loss types normalise by "
                                  "tokens, sequences or a constant of the micro-batch")
    lt = AGG_TO_LOSS_TYPE[agg]
    extra: dict[str, Any] = {}
    if lt == "dapo":
        extra["num_items_in_batch"] = normalizer  # None → the local token count
    elif normalizer is not None:
        raise Unsupported(f"{who} loss_type={lt!r} divides by this micro-batch's number of sequences "
                                  "(and gradient-accumulation steps); it takes no global sequence count")
    if lt == "dr_grpo":
        C = float(T) if const is None else float(const)
        if C != round(C) or C < 1:
            raise Unsupported(f"{who} dr_grpo takes an integer max_completion_length; const={const!r}")
        extra["max_completion_length"] = int(round(C))
    return lt, extra


@dataclasses.dataclass
class Plan:
    """Everything one TRL call needs, derived from (entry, inputs, config): shared by run() and reproduction()."""

    grpo_config: dict[str, Any]  # GRPOConfig keyword arguments
    logp: np.ndarray  # (B, T) the leaf the gradient is taken w.r.t. (zeros for entropy)
    old_logp: np.ndarray | None
    ref_logp: np.ndarray | None
    adv: np.ndarray  # (B,) or (B, T)
    mask: np.ndarray  # (B, T) bool
    num_items_in_batch: float
    logits: np.ndarray | None = None  # entropy entry only
    negate: bool = False  # entropy: value = −loss
    grad_of: str = "logp"
    is_ratio: np.ndarray | None = None  # tis: inputs["importance_sampling_ratio"] (B, T)


class TRLAdapter(Adapter):
    """TRL's ``GRPOTrainer._compute_loss`` on a bare trainer instance (see the module docstring)."""

    name = "trl"
    dtypes = _TORCH_DTYPES
    raw_padding = True
    # The framework's documented defaults, per registry entry (GRPOConfig in trl/trainer/grpo_config.py;
    # the loss in GRPOTrainer._compute_loss, trl/trainer/grpo_trainer.py).
    conventions = {
        # every per-sequence mean divides by all B rows of the micro-batch, empty rows included
        # (seq_denominator='all'; the reference's default for seq-mean is B′, the non-empty rows)
        # GRPOConfig.loss_type default "dapo" → token-mean (num_items_in_batch); no dual clip and no
        # log-ratio clamp anywhere in _compute_loss (coef_1 = torch.exp(log_ratio)).
        "ppo": {"agg": "token-mean", "seq_denominator": "all", "dual_clip_c": None, "log_ratio_clamp": None},
        "dapo": {"agg": "token-mean", "seq_denominator": "all", "log_ratio_clamp": None},
        # importance_sampling_level="sequence": exp(masked mean of log-ratios), no clamp; GSPO is used with
        # loss_type="grpo" in TRL's docs (paper_index "GSPO"), i.e. seq-mean-token-mean.
        "gspo": {"agg": "seq-mean-token-mean", "seq_denominator": "all", "log_ratio_clamp": None},
        # loss_type="sapo" is aggregated with the grpo normaliser (`if self.loss_type in ["grpo", "sapo"]`).
        "sapo": {"agg": "seq-mean-token-mean", "seq_denominator": "all", "log_ratio_clamp": None},
        # loss_type="cispo": torch.clamp(coef_1, max=epsilon_high).detach() (one-sided, absolute cap), dapo normaliser.
        "cispo": {"agg": "token-mean", "seq_denominator": "all", "eps_low": None, "log_ratio_clamp": None},
        # beta != 0: per_token_kl = exp(ref − logp) − (ref − logp) − 1 (no clamp), multiplied by coef_1 when
        # GRPOConfig.use_bias_correction_kl (default True); added per token before the loss_type's normaliser.
        "kl_k3": {"agg": "token-mean", "seq_denominator": "all", "is_weight": "ratio", "value_clamp": None,
                  "log_ratio_clamp": None, "straight_through_k2": False},
        # entropy bonus: (entropies * mask).sum() / mask.sum().clamp(min=1) / gas, whatever the loss_type.
        "entropy": {"agg": "token-mean", "seq_denominator": "all"},
        # GRPOConfig.delta: `coef_1 = torch.clamp(coef_1, max=self.args.delta)` after coef_2 is clipped, in the
        # grpo/bnpo/dr_grpo/dapo/luspo branch of _compute_loss; TRL has no default δ (None = off), so the
        # entry's δ = 4 (INTELLECT-2 §4.1, TRL's paper index) is passed as `delta`.
        "two_sided_clip": {"agg": "token-mean", "seq_denominator": "all", "dual_clip_c": None, "log_ratio_clamp": None},
        # use_vllm + vllm_importance_sampling_correction, vllm_importance_sampling_mode="token_truncate":
        # clamp(exp(old − sampling), clip_min, clip_max) with GRPOConfig defaults clip_max=3.0, clip_min=None
        # (_generate_and_score_completions); _compute_loss multiplies the per-token loss by it before the KL.
        "tis": {"agg": "token-mean", "seq_denominator": "all", "dual_clip_c": None, "log_ratio_clamp": None,
                "C": 3.0, "C_min": None, "mode": "truncate"},
        # loss_type="vespo": get_gamma_weights clamps token log-ratios to ±20 and the sum to [log 1e-8, 20];
        # -phi_seq * advantages * per_token_logps with the dapo normaliser (token-mean).
        "vespo": {"agg": "token-mean", "seq_denominator": "all"},
        # get_high_entropy_mask(entropies, mask, 1 - top_entropy_quantile): torch.quantile (linear) over the
        # gathered valid entropies, `masked_entropies >= threshold`, & mask.
        "high_entropy_mask": {"interpolation": "linear", "inclusive": True},
        # get_off_policy_mask: keep if advantages >= 0 or mean(sampling − logp) <= off_policy_mask_threshold.
        "off_policy_sequence_mask": {},
    }

    def __init__(self) -> None:
        self.version = framework_version(FRAMEWORK)
        self._args_cache: dict[tuple, Any] = {}

    # ------------------------------------------------------------------ protocol
    def available(self) -> tuple[bool, str]:
        try:
            import trl.trainer.grpo_trainer  # noqa: F401
            from trl import GRPOConfig  # noqa: F401
        except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
            return False, f"trl is not importable: {type(e).__name__}: {e}"
        return True, ""

    def supports(self, spec: Any) -> bool:
        return spec.name in SUPPORTED

    def plan(self, spec: Any, inputs: dict[str, np.ndarray], config: Any) -> Plan:
        """Map one case onto TRL's call; raises NotImplementedError for what TRL cannot express."""
        name = spec.name
        if name not in SUPPORTED:
            raise Unsupported(f"trl has no {name}")
        cfg = config if config is not None else spec.config(**self.conventions.get(name, {}))
        mask = np.asarray(inputs["mask"], dtype=bool)
        B, T = mask.shape
        clean = (lambda x: np.asarray(x, dtype=np.float64)) if self.raw_padding else \
            (lambda x: sanitize(np.asarray(x, dtype=np.float64), mask))
        gc: dict[str, Any] = {"beta": 0.0}
        if name == "entropy":
            if cfg.agg != "token-mean" or cfg.normalizer is not None:
                raise Unsupported("TRL's entropy bonus is always a local token-mean over the mask "
                                          f"(divided by gradient-accumulation steps); agg={cfg.agg!r}, "
                                          f"normalizer={cfg.normalizer!r}")
            logits = np.asarray(inputs["logits"], dtype=np.float64)
            logits = logits if self.raw_padding else sanitize(logits, mask)
            gc.update(loss_type="dapo", entropy_coef=1.0)
            z = np.zeros((B, T))
            return Plan(gc, z, z, None, np.zeros(B), mask, float(mask.sum()), logits=logits, negate=True,
                        grad_of="logits")
        if name == "vespo":
            return self._plan_vespo(cfg, inputs, mask, clean)
        if getattr(cfg, "log_ratio_clamp", None) is not None:
            raise Unsupported("TRL does not clamp log-ratios (coef_1 = exp(logp − old_logp))")
        lt, extra = loss_type_for(cfg.agg, cfg.normalizer, cfg.const, T)
        gc["max_completion_length"] = extra.get("max_completion_length", T)
        n_items = extra.get("num_items_in_batch") or float(mask.sum())
        logp = clean(inputs["logp"])
        if name == "kl_k3":
            if cfg.value_clamp is not None or cfg.straight_through_k2:
                raise Unsupported("TRL's k3 has no value clamp and no straight-through k2 gradient")
            if cfg.is_weight == "ratio-detached":
                raise Unsupported("TRL multiplies k3 by the ratio coef_1 with its gradient (is_weight='ratio') "
                                          "or not at all; no detached weight")
            gc.update(loss_type=lt, beta=1.0, use_bias_correction_kl=cfg.is_weight == "ratio")
            old = clean(inputs["old_logp"]) if cfg.is_weight == "ratio" else None  # None → TRL uses logp.detach()
            return Plan(gc, logp, old, clean(inputs["ref_logp"]), np.zeros(B), mask, n_items)
        old = clean(inputs["old_logp"])
        adv = clean(inputs["adv"])
        is_ratio = None
        if name in ("ppo", "dapo", "gspo", "two_sided_clip", "tis"):
            if getattr(cfg, "dual_clip_c", None) is not None:
                raise Unsupported("TRL has no dual clip (its `delta` caps the ratio for every advantage sign)")
            gc.update(loss_type=lt, epsilon=cfg.eps_low, epsilon_high=cfg.eps_high)
            if name == "gspo":
                gc["importance_sampling_level"] = "sequence"
                adv = sequence_advantage(adv, mask)
            if name == "two_sided_clip":
                gc["delta"] = cfg.delta
            if name == "tis":
                is_ratio, extra_cfg = self._tis_weight(cfg, inputs, mask, clean)
                gc.update(extra_cfg)
        elif name == "sapo":
            if lt != "grpo":
                raise Unsupported("TRL's sapo loss always uses the grpo normaliser (seq-mean-token-mean); "
                                          f"agg={cfg.agg!r}")
            gc.update(loss_type="sapo", sapo_temperature_pos=cfg.tau_pos, sapo_temperature_neg=cfg.tau_neg)
        elif name == "cispo":
            if cfg.eps_low is not None:
                raise Unsupported("TRL's CISPO clips the IS weight from above only (clamp(coef_1, "
                                          "max=epsilon_high)); a lower bound eps_low is not expressible")
            if lt != "dapo":
                raise Unsupported("TRL's cispo loss always uses the dapo normaliser (token-mean); "
                                          f"agg={cfg.agg!r}")
            gc.update(loss_type="cispo", epsilon_high=1.0 + cfg.eps_high)
        return Plan(gc, logp, old, None, adv, mask, n_items, is_ratio=is_ratio)

    @staticmethod
    def _tis_weight(cfg: Any, inputs: dict[str, np.ndarray], mask: np.ndarray, clean) -> tuple[np.ndarray, dict]:
        """The truncated weight that TRL's generation step would store as ``importance_sampling_ratio``.

        TRL computes it inside ``_generate_and_score_completions`` (vLLM generation, reward calls, ~700 lines),
        which cannot be driven without a model and an engine; so the weight given to TRL's ``_compute_loss`` is
        the rlspec reference's ``truncated_is_weight`` (an INPUT here, like Liger's ``vllm_is_ratio``), and the
        check covers how TRL applies it (after the clip, before the KL and the normaliser), not how it computes
        it. The GRPOConfig fields are set to the matching mode so that the snippet documents the setting."""
        from rlspec.reference.tis import truncated_is_weight

        old = clean(inputs["old_logp"])
        roll = clean(inputs["rollout_logp"]) if inputs.get("rollout_logp") is not None else old
        w = np.where(mask, truncated_is_weight(old, roll, cfg.C, cfg.C_min, cfg.mode), 0.0)
        return w, {"use_vllm": True, "vllm_importance_sampling_correction": True,
                   "vllm_importance_sampling_mode": "token_" + cfg.mode,
                   "vllm_importance_sampling_clip_max": cfg.C, "vllm_importance_sampling_clip_min": cfg.C_min}

    def _plan_vespo(self, cfg: Any, inputs: dict[str, np.ndarray], mask: np.ndarray, clean) -> Plan:
        """loss_type='vespo' (token-level, dapo normaliser); TRL's clamps are fixed (±20 per token, sum in
        [log 1e-8, 20]) and it takes one advantage per sequence."""
        import math

        if (cfg.log_ratio_clamp, cfg.log_w_max) != (20.0, 20.0) or cfg.log_w_min is None or \
                abs(cfg.log_w_min - math.log(1e-8)) > 1e-12:
            raise Unsupported("TRL's get_gamma_weights clamps token log-ratios to ±20 and the sequence sum to "
                                      f"[log 1e-8, 20]; got log_ratio_clamp={cfg.log_ratio_clamp}, "
                                      f"log_w_min={cfg.log_w_min}, log_w_max={cfg.log_w_max}")
        if cfg.agg != "token-mean":
            raise Unsupported(f"TRL's vespo loss always uses the dapo normaliser (token-mean); agg={cfg.agg!r}")
        B, T = mask.shape
        adv = constant_sequence_advantage(clean(inputs["adv"]), mask)
        gc = {"beta": 0.0, "loss_type": "vespo", "max_completion_length": T, "vespo_k_pos": cfg.k_pos,
              "vespo_lambda_pos": cfg.lambda_pos, "vespo_k_neg": cfg.k_neg, "vespo_lambda_neg": cfg.lambda_neg}
        n_items = cfg.normalizer if cfg.normalizer is not None else float(mask.sum())
        return Plan(gc, clean(inputs["logp"]), clean(inputs["old_logp"]), None, adv, mask, n_items)

    # ------------------------------------------------------------------ samplers
    def run_sampler(self, spec: Any, inputs: dict[str, np.ndarray], cfg: Any, dtype: str) -> dict[str, Any]:
        """TRL's own ``GRPOTrainer.get_high_entropy_mask`` / ``get_off_policy_mask`` on the case."""
        import torch
        from trl.trainer.grpo_trainer import GRPOTrainer

        td = _torch_dtype(dtype)
        mask = np.asarray(inputs["mask"], dtype=bool)
        clean = (lambda x: np.asarray(x, dtype=np.float64)) if self.raw_padding else \
            (lambda x: sanitize(np.asarray(x, dtype=np.float64), mask))
        m = torch.as_tensor(mask).long()
        if spec.name == "high_entropy_mask":
            if cfg.interpolation != "linear" or not cfg.inclusive:
                raise Unsupported("TRL's get_high_entropy_mask uses torch.quantile (linear interpolation) and "
                                          f"`>=`; interpolation={cfg.interpolation!r}, inclusive={cfg.inclusive}")
            trainer = self.make_trainer({"beta": 0.0, "top_entropy_quantile": cfg.rho})
            H = torch.as_tensor(clean(inputs["entropy"])).to(td)
            keep = trainer.get_high_entropy_mask(H, m, 1.0 - trainer.top_entropy_quantile)
            return {"keep": keep.bool().numpy()}
        adv = torch.as_tensor(np.asarray(inputs["adv"], dtype=np.float64)).to(td).unsqueeze(1)  # (B, 1) as in TRL
        keep = GRPOTrainer.get_off_policy_mask(
            advantages=adv, per_token_logps=torch.as_tensor(clean(inputs["logp"])).to(td),
            sampling_per_token_logps=torch.as_tensor(clean(inputs["old_logp"])).to(td), mask=m,
            off_policy_threshold=cfg.delta)
        return {"keep": keep.squeeze(1).bool().numpy()}

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        import torch

        if spec.name in SAMPLERS:
            cfg = config if config is not None else spec.config(**self.conventions.get(spec.name, {}))
            return self.run_sampler(spec, inputs, cfg, dtype)
        p = self.plan(spec, inputs, config)
        td = _torch_dtype(dtype)
        trainer = self.make_trainer(p.grpo_config)
        logp = torch.as_tensor(p.logp).to(td).requires_grad_(p.grad_of == "logp")
        entropies, logits = None, None
        if p.logits is not None:
            from trl.trainer.utils import entropy_from_logits

            logits = torch.as_tensor(p.logits).to(td).requires_grad_(True)
            entropies = entropy_from_logits(logits)
        loss = call_compute_loss(trainer, logp, p, dtype, entropies)
        loss.backward()
        sign = -1.0 if p.negate else 1.0
        leaf = logits if p.grad_of == "logits" else logp
        g = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        out_value = "value" if spec.kind == "entropy" else "loss"
        return {out_value: sign * float(loss.detach().double()), "d" + p.grad_of: sign * g.detach().double().numpy()}

    # ------------------------------------------------------------------ the bare trainer
    def make_trainer(self, grpo_config: dict[str, Any]):
        """A ``GRPOTrainer`` without ``__init__``: the attributes ``_compute_loss`` reads, copied from a real
        ``GRPOConfig`` as ``GRPOTrainer.__init__`` does (trl 1.16.0 grpo_trainer.py, __init__)."""
        return make_bare_trainer(**grpo_config)

    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        if spec.name in SAMPLERS:
            cfg = config if config is not None else spec.config(**self.conventions.get(spec.name, {}))
            return sampler_reproduction(spec.name, inputs, cfg, dtype, self.raw_padding)
        try:
            p = self.plan(spec, inputs, config)
        except NotImplementedError as e:
            return f"# not expressible in TRL: {e}"
        return reproduction_script(p, dtype, spec.kind, config_note=config is None)


class TRLRawPaddingAdapter(TRLAdapter):
    """The case's padded positions passed to TRL unchanged: the same as :class:`TRLAdapter` (its default)."""

    raw_padding = True


# ---------------------------------------------------------------------- helpers shared with the snippet
_BARE_TRAINER_SRC = '''
def make_bare_trainer(**cfg):
    """GRPOTrainer without __init__: only what _compute_loss reads, copied from a real GRPOConfig."""
    import collections, torch
    from accelerate import Accelerator
    from trl import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer
    args = GRPOConfig(output_dir="/tmp/rlspec_trl_out", report_to=[], use_cpu=True, bf16=False, **cfg)
    t = GRPOTrainer.__new__(GRPOTrainer)
    t.args = args
    t.loss_type, t.importance_sampling_level, t.beta = args.loss_type, args.importance_sampling_level, args.beta
    t.epsilon_low = args.epsilon
    t.epsilon_high = args.epsilon_high if args.epsilon_high is not None else args.epsilon
    t.max_completion_length = args.max_completion_length
    t.top_entropy_quantile, t.off_policy_mask_threshold = args.top_entropy_quantile, args.off_policy_mask_threshold
    t.use_vllm, t.vllm_importance_sampling_correction = args.use_vllm, args.vllm_importance_sampling_correction
    t.entropy_coef, t.use_adaptive_entropy = args.entropy_coef, args.use_adaptive_entropy
    t._entropy_bonus_enabled = t.entropy_coef != 0.0 or t.use_adaptive_entropy
    t._entropy_window_stats, t._last_world_entropy = None, float("inf")
    t.aux_loss_enabled, t.router_aux_loss_coef = False, 0.0   # no MoE router in a bare instance
    t.current_gradient_accumulation_steps = args.gradient_accumulation_steps  # set by Trainer's loop in training
    t.model = torch.nn.Module().train()                       # only `.training` is read
    t.accelerator = Accelerator(cpu=True)
    t._metrics = {"train": collections.defaultdict(list), "eval": collections.defaultdict(list)}
    return t


def compute_loss(t, logp, old_logp, ref_logp, advantages, mask, num_items_in_batch, entropies=None, is_ratio=None):
    """Call TRL's GRPOTrainer._compute_loss with `logp` standing in for the model forward.
    `is_ratio`: the rollout-mismatch weight TRL's generation step would store as importance_sampling_ratio."""
    import torch
    ent = entropies if entropies is not None else torch.zeros_like(logp)
    t._get_per_token_logps_and_entropies = lambda *a, **k: (logp, ent, None)
    B, T = mask.shape
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": advantages, "num_items_in_batch": num_items_in_batch}
    if old_logp is not None:
        inputs["old_per_token_logps"] = old_logp
    if ref_logp is not None:
        inputs["ref_per_token_logps"] = ref_logp
    if is_ratio is not None:
        inputs["importance_sampling_ratio"] = is_ratio
    return t._compute_loss(t.model, inputs)
'''
_ns: dict[str, Any] = {}
exec(compile(_BARE_TRAINER_SRC, "<trl_adapter bare trainer>", "exec"), _ns)  # one source for run() and snippets
make_bare_trainer = _ns["make_bare_trainer"]
compute_loss = _ns["compute_loss"]


def _n_items(value: float, torch):
    return torch.tensor(int(value)) if float(value) == int(value) else torch.tensor(float(value), dtype=torch.float64)


def call_compute_loss(trainer, logp, p: Plan, dtype: str, entropies=None):
    import torch

    td = _torch_dtype(dtype)
    t = lambda x: None if x is None else torch.as_tensor(x).to(td)  # noqa: E731
    return compute_loss(trainer, logp, t(p.old_logp), t(p.ref_logp), t(p.adv), torch.as_tensor(p.mask).long(),
                        _n_items(p.num_items_in_batch, torch), entropies, t(p.is_ratio))


def _lit(x: np.ndarray | None) -> str:
    if x is None:
        return "None"
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return shaped(f"torch.tensor({a.astype(int).tolist()!r})", a)
    return shaped(f"torch.tensor({a.astype(np.float64).tolist()!r}, dtype=torch.float64).to(DT)", a)


def reproduction_script(p: Plan, dtype: str, kind: str, config_note: bool = False) -> str:
    """Stand-alone script (needs only trl + torch): TRL's _compute_loss on this case, printed."""
    lines = ["# Needs only trl (checked with 1.16.0) and torch. Runs GRPOTrainer._compute_loss on a bare instance.",
             "import torch", "from numpy import nan, inf", _BARE_TRAINER_SRC.strip(), "",
             f"DT = torch.{dtype}",
             f"t = make_bare_trainer(**{p.grpo_config!r})"]
    if config_note:
        lines.insert(1, "# (built with the entry's config under the adapter's conventions; the harness's script "
                        "above holds the case's own config overrides)")
    lines.append(f"mask = {_lit(p.mask)}")
    if p.logits is not None:
        lines += ["from trl.trainer.utils import entropy_from_logits",
                  f"logits = {_lit(p.logits)}.requires_grad_(True)",
                  "logp = torch.zeros(mask.shape, dtype=DT)",
                  "entropies = entropy_from_logits(logits)"]
    else:
        lines += [f"logp = {_lit(p.logp)}.requires_grad_(True)", "entropies = None"]
    lines += [f"old_logp = {_lit(p.old_logp)}", f"ref_logp = {_lit(p.ref_logp)}", f"adv = {_lit(p.adv)}",
              f"n_items = torch.tensor({float(p.num_items_in_batch)!r})",
              f"is_ratio = {_lit(p.is_ratio)}  # importance_sampling_ratio (tis only)",
              "loss = compute_loss(t, logp, old_logp, ref_logp, adv, mask, n_items, entropies, is_ratio)",
              "loss.backward()"]
    if p.logits is not None:
        lines.append("print('entropy value (= -loss):', -loss.item()); print('dlogits:', -logits.grad)")
    else:
        lines.append("print('loss:', loss.item()); print('dlogp:', logp.grad)")
    return "\n".join(lines) + "\n"


def sampler_reproduction(name: str, inputs: dict[str, np.ndarray], cfg: Any, dtype: str, raw_padding: bool) -> str:
    """Stand-alone script (needs only trl + torch) calling TRL's own mask method on this case."""
    mask = np.asarray(inputs["mask"], dtype=bool)
    clean = (lambda x: np.asarray(x, dtype=np.float64)) if raw_padding else \
        (lambda x: sanitize(np.asarray(x, dtype=np.float64), mask))
    lines = ["# Needs only trl (checked with 1.16.0) and torch.", "import torch", "from numpy import nan, inf",
             f"DT = torch.{dtype}", f"mask = {_lit(mask)}"]
    if name == "high_entropy_mask":
        lines = lines[:3] + [_BARE_TRAINER_SRC.strip(), ""] + lines[3:]
        lines += [f"t = make_bare_trainer(beta=0.0, top_entropy_quantile={cfg.rho!r})",
                  f"entropy = {_lit(clean(inputs['entropy']))}",
                  "keep = t.get_high_entropy_mask(entropy, mask, 1.0 - t.top_entropy_quantile)",
                  "print('keep:', keep)"]
    else:
        lines += ["from trl.trainer.grpo_trainer import GRPOTrainer",
                  f"logp = {_lit(clean(inputs['logp']))}", f"sampling_logp = {_lit(clean(inputs['old_logp']))}",
                  f"adv = {_lit(np.asarray(inputs['adv'], dtype=np.float64))}.unsqueeze(1)",
                  "keep = GRPOTrainer.get_off_policy_mask(advantages=adv, per_token_logps=logp, "
                  f"sampling_per_token_logps=sampling_logp, mask=mask, off_policy_threshold={cfg.delta!r})",
                  "print('keep:', keep.squeeze(1).bool())"]
    return "\n".join(lines) + "\n"

"""Probes of Liger-Kernel's GRPO loss (``liger_kernel.chunked_loss``), as a user runs it.

Liger ships the loss math as ``LigerFusedLinearGRPOFunction.ppo_loss_fn`` (plain torch, what the fused op calls
on every chunk) behind the fused LM-head module ``LigerFusedLinearGRPOLoss`` (pure-torch chunked path with
``compiled=False``; the Triton kernel needs CUDA). Enumerated, nothing named:

* ``defaults``: the module's own defaults (``LigerFusedLinearGRPOLoss.__init__``: beta, epsilons, loss_type,
  use_bias_correction_kl ...) and each accepted ``loss_type`` / ``importance_sampling_level`` (parsed from
  ``ppo_loss_fn``'s source) with everything else at its default, against the reference entry and through the
  metamorphic checks;
* ``combination``: loss_type × importance_sampling_level × beta (0 / default) × use_bias_correction_kl ×
  vllm_is_ratio (none / per token / per sequence), plus ``delta`` and ``epsilon_high`` one at a time;
  what ``ppo_loss_fn`` raises on is ``unsupported``;
* ``input``: empty rows, no valid token, interior holes, float32 log-ratios of ±89 / ±100;
* ``self``: gradient accumulation as a caller does it (``num_items_in_batch`` for the token-level types,
  division by the number of micro-batches otherwise); the fused chunked module against the unfused
  ``log_softmax`` + ``ppo_loss_fn`` graph, and chunk_size 1 against the whole batch, for every loss type;
  Liger's loss against TRL's ``GRPOTrainer._compute_loss`` with the same configuration (Liger documents
  itself as a port of TRL's loss).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping
from typing import Any

from rlspec.conformance.probes import core, sourced
from rlspec.conformance.probes import trl as trl_probes
from rlspec.conformance.probes.core import Probe
from rlspec.conformance.probes.sourced import METAMORPHIC, SourceCall

FRAMEWORK = "liger"
DIST = "liger-kernel"
PATH = "liger_kernel.chunked_loss.grpo_loss.LigerFusedLinearGRPOFunction.ppo_loss_fn"
FUSED_PATH = "liger_kernel.chunked_loss.LigerFusedLinearGRPOLoss"
B, T = trl_probes.B, trl_probes.T
TOKEN_NORMALISED = ("dapo", "cispo", "vespo")  # divide by num_items_in_batch (global), no 1/GAS by the caller

# searched linkedin/Liger-Kernel issues with the `search` tool (corpus "issues"): (path, case, key fragment, URL),
# matched against the probe key (sourced.upstream_for)
UPSTREAM: tuple[tuple[str, str, str, str], ...] = (
    ("", "", "luspo/token&padding", "https://github.com/linkedin/Liger-Kernel/pull/1227"),
    ("", "", "luspo/token&ref", "https://github.com/linkedin/Liger-Kernel/pull/1227"),
    ("", "", "luspo", "none found"),
    ("", "", "bnpo&split", "none found"),
    ("", "", "sequence&ref", "none found"),
    ("", "", "float32 log-ratio", "none found"),
)


probes_for = functools.partial(sourced.probes_for, FRAMEWORK, PATH, table=UPSTREAM)
"""``probes_for(call, run, case, batch_fn, kinds, ...)``: :func:`sourced.probes_for` for Liger's ppo_loss_fn."""


@functools.lru_cache(maxsize=1)
def accepted_strings() -> dict[str, tuple[str, ...]]:
    """loss_type / importance_sampling_level values ``ppo_loss_fn`` branches on (parsed from its source)."""
    from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction

    src = inspect.getsource(LigerFusedLinearGRPOFunction.ppo_loss_fn)
    lts = re.findall(r"loss_type\s*==\s*\"(\w+)\"", src)
    for m in re.finditer(r"loss_type\s+in\s+\(([^)]*)\)", src):
        lts += re.findall(r"\"(\w+)\"", m.group(1))
    levels = re.findall(r"importance_sampling_level\s*==\s*\"(\w+)\"", src)
    return {"loss_type": tuple(dict.fromkeys(lts)), "importance_sampling_level": tuple(dict.fromkeys(levels))}


@functools.lru_cache(maxsize=1)
def module_defaults() -> dict[str, Any]:
    """``LigerFusedLinearGRPOLoss.__init__``'s keyword defaults (the loss settings a user gets)."""
    from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

    sig = inspect.signature(LigerFusedLinearGRPOLoss.__init__)
    skip = {"self", "compiled", "use_ref_model", "chunk_size", "temperature"}
    return {k: p.default for k, p in sig.parameters.items() if k not in skip}


def subject_source(kw: Mapping[str, Any], *, is_ratio: str | None = None) -> str:
    isr = {None: "None", "token": "torch.where(b['mask'], b['is_w'], torch.ones_like(b['is_w']))",
           "sequence": "b['is_w_seq']"}[is_ratio]
    return f'''from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction

KW = {dict(kw)!r}


def _call(b, full, n_micro):
    m = b["mask"].to(b["logp"].dtype)
    kw = dict(KW)
    if n_micro > 1 and kw.get("loss_type", "dapo") in {TOKEN_NORMALISED!r}:
        kw["num_items_in_batch"] = full["mask"].sum()  # the step's token count, as TRL passes it
    loss, metrics = LigerFusedLinearGRPOFunction.ppo_loss_fn(
        b["logp"], m, b["adv_seq"], m, ref_per_token_logps=b["ref_logp"], old_per_token_logps=b["old_logp"],
        vllm_is_ratio={isr}, **kw)
    if kw.get("loss_type", "dapo") not in {TOKEN_NORMALISED!r}:
        loss = loss / n_micro  # Liger leaves the 1/gradient-accumulation-steps to the caller
    return loss


def run(b, full=None):
    """Alone: one step. A micro-batch of `full`: one of full's equal row splits."""
    if full is None:
        return _call(b, b, 1)
    return _call(b, full, full["mask"].shape[0] // b["mask"].shape[0])
'''


def _accepts(kw: Mapping[str, Any], is_ratio: str | None):
    def run() -> None:
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

        init = {k: v for k, v in kw.items() if k in inspect.signature(LigerFusedLinearGRPOLoss.__init__).parameters}
        LigerFusedLinearGRPOLoss(compiled=False, **init)  # the module's own validation
        SourceCall(subject_source(kw, is_ratio=is_ratio))(trl_probes.batch(seed=9))  # ppo_loss_fn's own refusals

    return run


def _trl_cfg(kw: Mapping[str, Any]) -> dict[str, Any]:
    """The GRPOConfig fields with the same meaning (Liger documents its loss as TRL's)."""
    m = {"beta": "beta", "epsilon_low": "epsilon", "epsilon_high": "epsilon_high", "loss_type": "loss_type",
         "importance_sampling_level": "importance_sampling_level", "delta": "delta",
         "use_bias_correction_kl": "use_bias_correction_kl", "sapo_temperature_pos": "sapo_temperature_pos",
         "sapo_temperature_neg": "sapo_temperature_neg", "max_completion_length": "max_completion_length"}
    out = {m[k]: v for k, v in kw.items() if k in m}
    for k in ("vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg"):
        if k in kw:
            out[k] = kw[k]
    return out


def _probes_for_kw(run: str, kw: dict[str, Any], *, is_ratio: str | None = None, key: str = "",
                   kinds=METAMORPHIC, reference: bool = True) -> list[Probe]:
    full = {**module_defaults(), "max_completion_length": T, **kw}
    lt, level = full["loss_type"], full["importance_sampling_level"]
    if trl_probes.surrogate(lt):
        kinds = tuple(k for k in kinds if k != "gradient")
    subject = SourceCall(subject_source(full, is_ratio=is_ratio))
    case = f"{core.describe(kw)}" + (f" + vllm_is_ratio per {is_ratio}" if is_ratio else "")
    key = key or f"{lt}/{level}"
    acc = _accepts(full, is_ratio)
    out = probes_for(subject, run, case, trl_probes.batch, [k for k in kinds if k != "split"], accepts=acc, key=key)
    if "split" in kinds:
        out += probes_for(subject, "self", case + " | gradient accumulation vs full batch", trl_probes.batch,
                          ("split",), accepts=acc, key=lt)
    if reference and not is_ratio:
        claim = trl_probes.reference_for({**_trl_cfg(full)}, paper_defaults=(run == "defaults"))
        if claim is not None:
            label, ref = claim
            out += probes_for(subject, run, case, trl_probes.batch, ("reference",), accepts=acc, reference=ref,
                              ref_label=label, key=f"{key}|ref")
    if run != "defaults":
        out.append(_vs_trl_probe(full, subject, case, is_ratio))
    return out


def _vs_trl_probe(full: Mapping[str, Any], subject: SourceCall, case: str, is_ratio: str | None) -> Probe:
    """Liger's loss against TRL's _compute_loss with the same settings (both on the same batch)."""
    tcfg = {**_trl_cfg(full)}

    def check():
        b = trl_probes.batch()
        trl_call = SourceCall(trl_probes.subject_source(tcfg, is_ratio=None))
        if is_ratio:
            return core.unsupported("TRL computes the vLLM weight itself (not an input of _compute_loss)")
        value, grad = core.evaluate(trl_call, b)
        label = f"TRL GRPOTrainer._compute_loss({core.describe(tcfg)})"
        v = sourced.check_expected(subject, b, value, grad, label, f"{FRAMEWORK} {PATH}: {case} vs {label}")
        if v.status == "finding":
            v.key = f"{full['loss_type']}|vs TRL"
        return v

    return Probe(FRAMEWORK, "self", PATH, case + " | Liger vs TRL with the same settings",
                 sourced.guarded(check, _accepts(full, is_ratio)))


def default_probes() -> list[Probe]:
    out = _probes_for_kw("defaults", {})
    for lt in accepted_strings()["loss_type"]:
        out += _probes_for_kw("defaults", {"loss_type": lt})
    for level in accepted_strings()["importance_sampling_level"]:
        if level != module_defaults()["importance_sampling_level"]:
            out += _probes_for_kw("defaults", {"importance_sampling_level": level})
    return out


def combination_probes() -> list[Probe]:
    out: list[Probe] = []
    s = accepted_strings()
    for lt in s["loss_type"]:
        for level in s["importance_sampling_level"]:
            for beta, corr in ((0.0, False), (module_defaults()["beta"], False), (module_defaults()["beta"], True)):
                for isr in (None, "token", "sequence"):
                    out += _probes_for_kw("combination", {"loss_type": lt, "importance_sampling_level": level,
                                                          "beta": beta, "use_bias_correction_kl": corr},
                                          is_ratio=isr)
        for extra in ({"delta": 1.5}, {"epsilon_high": 0.28}):
            out += _probes_for_kw("combination", {"loss_type": lt, "beta": 0.0, **extra})
    return out


def input_probes() -> list[Probe]:
    out: list[Probe] = []
    cases = trl_probes.input_cases(trl_probes.batch)
    for lt in accepted_strings()["loss_type"]:
        kw = {**module_defaults(), "loss_type": lt, "max_completion_length": T}
        subject = SourceCall(subject_source(kw))
        kinds = ("finite", "permutation") if trl_probes.surrogate(lt) else ("finite", "gradient", "permutation")
        for name, make in cases.items():
            out += probes_for(subject, "input", f"loss_type={lt!r} (defaults) | {name}", make, kinds,
                              accepts=_accepts(kw, None), key=f"{lt}|{name}")
        for lr in (89.0, -89.0, 100.0, -100.0):
            for sign in (1.0, -1.0):
                out += probes_for(subject, "input", f"loss_type={lt!r} (defaults) | float32 log-ratio {lr:+g}, "
                                  f"advantage {sign:+g}", trl_probes._extreme_batch(lr, "float32", sign), ("finite",),
                                  accepts=_accepts(kw, None), key=f"float32 log-ratio {lr:+g}")
    return out


# --------------------------------------------------------------------------- fused vs unfused, chunking
FUSED_SRC = '''from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss
from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOFunction

KW = {kw!r}
g = torch.Generator().manual_seed(0)
B, T, H, V = {B}, {T}, 4, 5
h0 = torch.randn(B, T, H, generator=g)
W = 0.5 * torch.randn(V, H, generator=g)
ids = torch.randint(0, V, (B, T), generator=g)
mask = torch.arange(T)[None, :] < torch.tensor({lengths!r})[:, None]
adv = torch.randn(B, generator=g)
with torch.no_grad():
    lp0 = torch.log_softmax(h0 @ W.t(), -1).gather(-1, ids[..., None])[..., 0]
old = lp0 + 0.3 * torch.randn(B, T, generator=g)
ref = lp0 + 0.3 * torch.randn(B, T, generator=g)


def fused(chunk_size):
    h = h0.clone().requires_grad_(True)
    mod = LigerFusedLinearGRPOLoss(compiled=False, chunk_size=chunk_size, **KW)
    loss = mod(h, W, ids, mask.float(), adv, ref_per_token_logps=ref, old_per_token_logps=old)[0]
    loss.backward()
    return float(loss.detach()), h.grad


def unfused():
    h = h0.clone().requires_grad_(True)
    lp = torch.log_softmax(h @ W.t(), -1).gather(-1, ids[..., None])[..., 0]
    kw = {{k: v for k, v in KW.items() if k != "use_ref_model"}}
    loss = LigerFusedLinearGRPOFunction.ppo_loss_fn(lp, mask.float(), adv, mask.float(), ref_per_token_logps=ref,
                                                    old_per_token_logps=old, **kw)[0]
    loss.backward()
    return float(loss.detach()), h.grad
'''


def _fused_probe(kw: dict[str, Any], pair: str) -> Probe:
    full = {**module_defaults(), "max_completion_length": T, **kw}
    src = FUSED_SRC.format(kw=full, B=B, T=T, lengths=[T, 3, 5, 1, 6, 4])
    if pair == "fused vs unfused":
        body = ("l1, g1 = fused(1)\nl2, g2 = unfused()\nprint('fused:', l1, 'unfused:', l2)\n"
                "assert abs(l1 - l2) <= 1e-5 * max(1.0, abs(l2)), 'the fused loss differs from the unfused graph'\n"
                "assert (g1 - g2).abs().max() <= 1e-4 * max(1.0, float(g2.abs().max())), "
                "'the fused gradient differs from the unfused graph'\n")
    else:
        body = ("l1, g1 = fused(1)\nl2, g2 = fused(B)\nprint('chunk_size=1:', l1, 'one chunk:', l2)\n"
                "assert abs(l1 - l2) <= 1e-5 * max(1.0, abs(l2)), 'the loss depends on chunk_size'\n"
                "assert (g1 - g2).abs().max() <= 1e-4 * max(1.0, float(g2.abs().max())), "
                "'the gradient depends on chunk_size'\n")

    return sourced.script_probe(
        FRAMEWORK, "self", FUSED_PATH, f"{core.describe(kw)} | {pair}", SourceCall(src), body,
        key=f"{full['loss_type']}|{pair}", severity=lambda msg: "wrong value" if "loss" in msg else "wrong gradient",
        summary=lambda msg: f"{pair}: {msg} (loss_type={full['loss_type']!r})")


def self_probes() -> list[Probe]:
    out = []
    for lt in accepted_strings()["loss_type"]:
        for level in accepted_strings()["importance_sampling_level"]:
            kw = {"loss_type": lt, "importance_sampling_level": level}
            out += [_fused_probe(kw, "fused vs unfused"), _fused_probe(kw, "chunk_size 1 vs one chunk")]
    return out


def probes() -> list[Probe]:
    return default_probes() + combination_probes() + input_probes() + self_probes()

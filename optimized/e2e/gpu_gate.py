"""The GPU release gate: conformance of ``optimized`` on CUDA in fp32 and bf16, then an RL run that must learn.

    python -m rlspec.optimized.e2e.gpu_gate                         # on a CUDA machine (tox -e gpu); ~10 min budget
    python -m rlspec.optimized.e2e.gpu_gate --device cpu --quick    # the same logic, scaled down, on a CPU (tests)

Parts, each a row of the printed pass/fail table:

1. **conformance float32** and 2. **conformance bfloat16**: :func:`rlspec.conformance.harness.run` with
   ``OptimizedAdapter(device=...)`` (every checkable registry entry; with ``--quick`` a few), the
   expectation file of ``optimized`` applied; passes when no case fails or errors unexpectedly.
3. **end-to-end RL**: GRPO (``ppo`` loss, ``grpo`` advantages) through :func:`rlspec.optimized.e2e.loop.train`,
   the weights on the device (:class:`rlspec.optimized.e2e.rollout.DeviceBridge`), with

   * rollouts from **vLLM** where ``vllm`` is importable (weights pushed every step), else from the
     ``hf`` sampler; a row says which, and why;
   * **SmolLM2-135M-Instruct** on one-digit addition (:mod:`rlspec.optimized.e2e.smollm`) where its GGUF and
     ``gguf`` + ``accelerate`` are installed, else a **locally built Llama** (about 4M parameters on
     CUDA, head dim 64 as vLLM's kernels want) on the ``repeat`` task, given a short supervised
     warm-start (teacher-forced cross-entropy on correct answers until its sampled reward reaches
     :data:`SFT_TARGET`) so that RL starts from a non-trivial reward, as from a pretrained model.
     (Two-operand addition was tried for this and dropped: on the CPU a 0.5M-parameter Llama got
     neither SFT nor RL past ~0.45-0.65 within the budget; docs/e2e.md.)

   Pass: the mean reward of the last steps exceeds the first steps' by a stated margin (and, for
   the tiny model, reaches a stated level); the row prints the numbers.

Nothing is installed: a part whose packages are missing is skipped with a message saying what to
install. Exit status: 0 every part that ran passed, 1 a part failed, 2 usage error, 3 no CUDA device
(``--device cuda`` on a machine where ``torch.cuda.is_available()`` is False). ``--out DIR`` writes
``gpu_gate.json`` (rows, device, versions, date, curves).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NO_CUDA = 0, 1, 2, 3
QUICK_ALGORITHMS = ("ppo", "grpo", "gspo")  # conformance subset in --quick mode
SFT_TARGET = 0.35  # warm-start until the sampled (T=1) reward reaches this

# Settings of the tiny-model run. "cuda": the GPU gate (not yet measured on a GPU; sized from the CPU
# measurements in docs/e2e.md). "quick": the CPU test of the gate's logic (measured, docs/e2e.md).
TINY = {
    "cuda": dict(model=dict(hidden=256, layers=4, heads=4, intermediate=1024), sft_max_steps=600, sft_batch=256,
                 sft_lr=1e-3, rl=dict(steps=150, prompts_per_step=64, G=16, lr=3e-4, epochs=2, minibatches=4),
                 threshold=0.8, min_gain=0.2),
    "quick": dict(model=dict(hidden=128, layers=2, heads=2, intermediate=512), sft_max_steps=300, sft_batch=64,
                  sft_lr=1e-3, rl=dict(steps=40, prompts_per_step=16, G=8, lr=1e-3, epochs=2, minibatches=4),
                  threshold=0.7, min_gain=0.2),
}
SMOLLM_STEPS = {"cuda": 20, "quick": 2}
# The tiny run's verdict: mean reward of the last END_STEPS RL steps against the first START_STEPS
# (the first RL steps, right after the warm-start: RL gains most there, so a 10-step window hides it).
START_STEPS, END_STEPS = 3, 10


@dataclass
class Row:
    """One line of the gate's table."""

    part: str
    status: str  # "PASS", "FAIL" or "SKIP"
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the tiny model's warm-start
def demonstrations(prompts: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct answers of the ``repeat`` task for ``prompts`` (n, 3): targets (n, k) and lengths (n,)."""
    return prompts[:, 1:2].expand(-1, k), torch.full((prompts.shape[0],), k)


def sft_warmstart(model: torch.nn.Module, task, max_steps: int, batch: int, lr: float, seed: int,
                  target: float = SFT_TARGET, check_every: int = 2) -> dict[str, Any]:
    """Teacher-forced cross-entropy on correct answers (:func:`demonstrations`) until the sampled
    reward (T=1) reaches ``target``: a stand-in for pretraining, so that RL starts from a reward
    that is not chance level.

    Returns ``dict(steps, reward)``: the SFT steps taken and the last probe reward (256 prompts, one
    sample each, from the :class:`~rlspec.optimized.e2e.rollout.HFBackend` sampler).
    """
    from rlspec.optimized.e2e.rollout import HFBackend

    gen = torch.Generator().manual_seed(seed + 101)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    probe_prompts = task.prompts(256, torch.Generator().manual_seed(seed + 202))
    sampler = HFBackend(model)

    def probe() -> float:
        ro = sampler.generate(probe_prompts, 1, task.max_new_tokens, 1.0, seed=seed + 303, eos_id=task.eos_id)
        return float(task.reward(ro.prompts, ro.responses, ro.mask).mean())

    reward, step = probe(), 0
    while reward < target and step < max_steps:
        for _ in range(check_every):
            prompts = task.prompts(batch, gen)  # (n, P)
            tgt, n = demonstrations(prompts, task.max_new_tokens)  # (n, L), (n,)
            ids = torch.cat([prompts, tgt], dim=1)  # (n, P+L)
            logits = model(input_ids=ids).logits[:, prompts.shape[1] - 1:-1].float()  # (n, L, V)
            m = torch.arange(tgt.shape[1]).unsqueeze(0) < n.unsqueeze(1)  # (n, L)
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                   reduction="none").reshape(tgt.shape)
            loss = (ce * m).sum() / m.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        reward = probe()
    return dict(steps=step, reward=reward)


# --------------------------------------------------------------------------- parts
def conformance_part(device: str, dtype: str, quick: bool) -> Row:
    """Conformance of ``optimized`` on ``device`` in ``dtype``; PASS if nothing fails unexpectedly."""
    part = f"conformance {dtype} ({device})"
    try:
        from rlspec.conformance import expectations, harness
        from rlspec.conformance.adapters.optimized_adapter import OptimizedAdapter
    except ImportError as e:  # e.g. numpy missing from a bare image
        return Row(part, "SKIP", f"cannot import the conformance harness ({e}); pip install -e . to get its deps")
    t0 = time.perf_counter()
    adapter = OptimizedAdapter(device=device)
    try:
        res = harness.run(adapter, algorithms=QUICK_ALGORITHMS if quick else None, dtypes=(dtype,),
                          n_random=1 if quick else 8)
    except Exception as e:  # noqa: BLE001 - the harness itself broke: a FAIL row, the table still prints
        return Row(part, "FAIL", f"harness raised {type(e).__name__}: {str(e)[:300]}", time.perf_counter() - t0)
    expectations.apply(res, expectations.for_adapter(adapter))
    counts = res.counts()
    bad = res.unexpected()
    detail = ", ".join(f"{v} {k}" for k, v in counts.items())
    if bad:
        detail += "; first failures: " + "; ".join(f"{r.case_id}: {r.message[:120]}" for r in bad[:3])
    ok = not bad and counts.get("pass", 0) > 0
    return Row(part, "PASS" if ok else "FAIL", detail, time.perf_counter() - t0,
               dict(counts=counts, failures=[r.to_dict() for r in bad[:50]]))


def vllm_available() -> tuple[bool, str]:
    """(importable, why not) for vLLM, without importing it."""
    if importlib.util.find_spec("vllm") is None:
        return False, "vllm is not installed: rollouts use the hf sampler (pip install vllm to test the vLLM path)"
    return True, ""


def smollm_available() -> tuple[bool, str]:
    from rlspec.optimized.e2e import smollm

    lack = smollm.missing()
    return (not lack), ("SmolLM2 not available (" + "; ".join(lack) + "): the tiny warm-started model is used"
                        if lack else "")


def e2e_part(device: str, quick: bool, backend: str, model_choice: str, seed: int = 0) -> list[Row]:
    """The end-to-end RL rows: info rows for what was skipped, then the run's PASS/FAIL row."""
    rows: list[Row] = []
    if importlib.util.find_spec("transformers") is None:
        return [Row("end-to-end RL", "SKIP", "transformers is not installed (pip install transformers)")]
    use_vllm, why = vllm_available() if backend in ("auto", "vllm") else (False, "hf sampler requested")
    if backend == "vllm" and not use_vllm:
        return [Row("end-to-end RL (vllm)", "SKIP", why)]
    if not use_vllm and backend == "auto":
        rows.append(Row("vLLM rollouts", "SKIP", why))
    use_smollm, why = smollm_available() if model_choice in ("auto", "smollm") else (False, "tiny model requested")
    if model_choice == "smollm" and not use_smollm:
        return rows + [Row("end-to-end RL (SmolLM2)", "SKIP", why)]
    if not use_smollm and model_choice == "auto":
        rows.append(Row("SmolLM2", "SKIP", why))
    be = "vllm" if use_vllm else "hf"
    t0 = time.perf_counter()
    run = smollm_run if use_smollm else tiny_run
    try:
        row = run(device, quick, be, seed)
    except Exception as e:  # noqa: BLE001 - a crash is a FAIL row, the table still prints
        row = Row(f"end-to-end RL ({be})", "FAIL", f"raised {type(e).__name__}: {str(e)[:300]}")
    row.seconds = time.perf_counter() - t0
    return rows + [row]


def tiny_run(device: str, quick: bool, backend: str, seed: int) -> Row:
    """SFT warm-start of a locally built Llama on ``repeat``, then GRPO; PASS if the reward rises enough."""
    from rlspec.optimized.e2e.loop import train
    from rlspec.optimized.e2e.models import make_model, n_params
    from rlspec.optimized.e2e.rollout import DeviceBridge, HFBackend, VLLMBackend
    from rlspec.optimized.e2e.tasks import get_task

    cfg = TINY["quick" if quick else "cuda"]
    task = get_task("repeat", k=3)
    model = make_model("llama", seed=seed, **cfg["model"])
    params = n_params(model)
    if device != "cpu":
        model = DeviceBridge(model, device)
    t0 = time.perf_counter()
    sft = sft_warmstart(model, task, cfg["sft_max_steps"], cfg["sft_batch"], cfg["sft_lr"], seed)
    sft_s = time.perf_counter() - t0
    threads = torch.get_num_threads()
    be = (VLLMBackend.from_model(model, device=device, max_model_len=16) if backend == "vllm" else HFBackend(model))
    torch.set_num_threads(threads)  # vLLM's CPU build drops the process to 1 thread
    h = train(task, policy_loss="ppo", advantage="grpo", seed=seed, model=model, backend=be, **cfg["rl"])
    first, last = h.first(START_STEPS), h.last(END_STEPS)
    ok = last >= cfg["threshold"] and last - first >= cfg["min_gain"]
    detail = (f"Llama {params / 1e6:.2f}M params, {backend} rollouts; SFT {sft['steps']} steps ({sft_s:.0f} s) -> "
              f"sampled reward {sft['reward']:.2f}; GRPO {len(h.reward)} steps: first{START_STEPS} {first:.2f} -> "
              f"last{END_STEPS} {last:.2f} (need >= {cfg['threshold']} and gain >= {cfg['min_gain']}); "
              f"logp mismatch <= {max(h.logp_mismatch):.1e}")
    return Row(f"end-to-end RL: tiny Llama + SFT, {backend}", "PASS" if ok else "FAIL", detail,
               data=dict(params=params, sft=sft, sft_s=sft_s, history=h.to_dict()))


def smollm_run(device: str, quick: bool, backend: str, seed: int) -> Row:
    """GRPO on SmolLM2-135M-Instruct (one-digit addition); PASS if the reward gain meets SMOLLM_GATE."""
    from rlspec.optimized.e2e import smollm

    steps = SMOLLM_STEPS["quick" if quick else "cuda"]
    h = smollm.run_smollm(steps, seed=smollm.SMOLLM_DEFAULTS["seed"], device=device, backend=backend)
    v = smollm.verdict(h)
    if quick:  # a 2-step smoke run cannot show learning: it checks the path runs and rewards are sane
        ok = all(0.0 <= r <= 1.0 for r in h.reward)
        rule = "quick: path runs, rewards in [0, 1]"
    else:
        ok = v["passes"]
        rule = f"need gain >= {v['min_gain']}"
    detail = (f"SmolLM2-135M, {backend} rollouts; {steps} steps: reward {v['start']:.2f} -> {v['end']:.2f} "
              f"({rule}); load {h.config['setup_s']:.0f} s")
    return Row(f"end-to-end RL: SmolLM2, {backend}", "PASS" if ok else "FAIL", detail, data=dict(history=h.to_dict()))


# --------------------------------------------------------------------------- driver
def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(torch.device(device))
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def print_table(rows: list[Row], header: str, out: Callable[[str], None] = print) -> None:
    w = max(len(r.part) for r in rows) if rows else 10
    out(header)
    out(f"{'part':<{w}}  status  {'s':>6}  detail")
    for r in rows:
        out(f"{r.part:<{w}}  {r.status:<6}  {r.seconds:6.1f}  {r.detail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlspec.optimized.e2e.gpu_gate", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--quick", action="store_true", help="a scaled-down run (what the CPU test uses)")
    p.add_argument("--backend", default="auto", choices=["auto", "vllm", "hf"],
                   help="rollouts: vllm if importable (auto), or force one")
    p.add_argument("--model", default="auto", choices=["auto", "smollm", "tiny"],
                   help="SmolLM2 if available (auto), or force one")
    p.add_argument("--skip-conformance", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: leave as is)")
    p.add_argument("--out", default=None, help="write gpu_gate.json into this folder")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device: torch {torch.__version__} (CUDA build: {torch.version.cuda}) sees no GPU, so the "
              "GPU gate cannot run here. On a CPU, `--device cpu --quick` exercises the gate's logic.", file=sys.stderr)
        return EXIT_NO_CUDA
    if a.device != "cpu" and not a.device.startswith("cuda"):
        print(f"--device: got {a.device!r}; expected cuda, cuda:N or cpu", file=sys.stderr)
        return EXIT_USAGE
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    rows: list[Row] = []
    if not a.skip_conformance:
        for dtype in ("float32", "bfloat16"):
            rows.append(conformance_part(a.device, dtype, a.quick))
    if not a.skip_e2e:
        rows += e2e_part(a.device, a.quick, a.backend, a.model, a.seed)
    total = time.perf_counter() - t0
    overall = "FAIL" if any(r.status == "FAIL" for r in rows) else "PASS"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"rlspec GPU gate{' (quick)' if a.quick else ''} on {a.device}: {describe_device(a.device)}; "
              f"torch {torch.__version__}; {date}")
    print_table(rows, header)
    print(f"overall: {overall} in {total:.0f} s")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "gpu_gate.json"), "w") as f:
            json.dump(dict(overall=overall, total_s=total, device=a.device, device_name=describe_device(a.device),
                           torch=torch.__version__, date=date, quick=a.quick, rows=[asdict(r) for r in rows]),
                      f, indent=1, default=str)
    return EXIT_OK if overall == "PASS" else EXIT_FAIL


if __name__ == "__main__":
    raise SystemExit(main())

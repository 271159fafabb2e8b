"""``rlspec bench``: policy-loss and LM-head benchmarks against naive torch, torch.compile, verl, Liger and the
machine's own limits, measured in one run; writes ``bench.md``, ``bench.json`` and ``bench.png`` to ``--out``.

Elementwise losses (loss + backward w.r.t. logp, one call each, (B, T) with T = 1024):

* **rlspec**: ``rlspec.optimized.get(name)`` as a user calls it (fused; compiled from 4096 tokens on when it can);
* **rlspec-eager**: the same fused core without compilation (``RLSPEC_FUSED=eager``);
* **rlspec-autograd**: the loss's autograd formulation, the fused path's fallback (``RLSPEC_FUSED=off``);
* **naive**: the loss in a few lines of torch, autograd for the gradient (no validation, NaN padding leaks);
* **naive-compiled**: ``torch.compile(naive, dynamic=True)``;
* **verl**: verl's own loss for the entry (``vanilla`` for ppo) when verl imports, else skipped;
* **limit**: a copy moving the same bytes (the inputs read once, the gradient written once) — the
  memory-bandwidth floor of any implementation on this machine at this size.

LM head (hidden states + weight → log-probs → PPO loss → gradients): the fused path of
:mod:`rlspec.optimized.lmhead` (``fused``: one pass for a row-local loss such as PPO; ``fused-2pass``: the
loss-agnostic two passes), materialized logits, Liger's chunked GRPO loss (if installed) and the three-matmul
limit; peak memory of one step in a fresh process. Figures are reported as ratios to the limit and to the peers;
absolute times only next to the machine that produced them. Heavy imports happen inside the functions, so the
registry (which imports this module) stays cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_TOKENS = (4096, 16384, 65536, 262144, 1048576)
DEFAULT_LOSSES = ("ppo", "sapo", "gspo")
DEFAULT_DTYPES = ("float32", "bfloat16")
SEQ_LEN = 1024


# ------------------------------------------------------------------------------------------------ machine
def machine() -> dict:
    """CPU model, cores, torch threads, torch version, GPU (if any): what every absolute figure depends on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": gpu, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "load": load}


# ------------------------------------------------------------------------------------------------ elementwise
def policy_batch(n_tokens: int, dtype, seed: int = 0, T: int = SEQ_LEN):
    """(logp, old_logp, adv, mask) with B·T = n_tokens: log-ratios ~ N(0, 0.1²) (both sides of the clips),
    one advantage per row, ~10 % of the tokens padding."""
    import torch

    T = min(T, n_tokens)
    B = max(1, n_tokens // T)
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g) * 3
    old = logp + torch.randn(B, T, generator=g) * 0.1
    adv = torch.randn(B, 1, generator=g).expand(B, T).contiguous()
    mask = torch.arange(T)[None, :] < torch.randint(int(0.8 * T), T + 1, (B, 1), generator=g)
    return tuple(x.to(device=_DEVICE, dtype=dtype if x.dtype.is_floating_point else x.dtype)
                 for x in (logp, old, adv, mask))


def naive_loss(name: str) -> Callable:
    """The loss ``name`` as a few lines of torch with the entry's default config (what a user would write)."""
    import torch

    def ppo(lp, old, adv, mask):
        r = torch.exp(lp - old)
        ell = -torch.minimum(r * adv, torch.clamp(r, 0.8, 1.2) * adv)
        return (ell * mask).sum() / mask.sum()

    def sapo(lp, old, adv, mask):
        r = torch.exp(lp - old)
        tau = torch.where(adv > 0, 1.0, 1.05)
        ell = -(4.0 / tau) * torch.sigmoid(tau * (r - 1.0)) * adv
        return ((ell * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()

    def gspo(lp, old, adv, mask):
        n = mask.sum(1).clamp(min=1)
        s = torch.exp(((lp - old) * mask).sum(1) / n)
        a = (adv * mask).sum(1) / n
        return (-torch.minimum(s * a, torch.clamp(s, 1 - 3e-4, 1 + 4e-4) * a)).mean()

    def cispo(lp, old, adv, mask):
        w = torch.clamp(torch.exp(lp - old), max=5.0).detach()
        return ((-w * adv * lp) * mask).sum() / mask.sum()

    def gmpo(lp, old, adv, mask):
        n = mask.sum(1).clamp(min=1)
        a = (adv * mask).sum(1) / n
        d = lp - old
        dt = torch.where((a >= 0)[:, None], torch.clamp(d, max=0.4), torch.clamp(d, min=-0.4))
        return (-a * torch.exp((dt * mask).sum(1) / n)).mean()

    def dro(lp, old, adv, mask):
        return (-(adv * lp - 0.05 * (lp - old) ** 2) * mask).sum() / mask.sum()

    def gpg_loss(lp, old, adv, mask):
        return ((-adv * lp) * mask).sum() / mask.sum()

    fns = {"ppo": ppo, "dapo": ppo, "sapo": sapo, "gspo": gspo, "cispo": cispo, "gmpo": gmpo, "dro": dro,
           "gpg_loss": gpg_loss}
    if name not in fns:
        raise KeyError(name)
    return fns[name]


def verl_loss(name: str) -> Callable | None:
    """verl's own policy loss for ``name`` (ppo: ``vanilla``) with the entry's default config, or None."""
    try:
        from rlspec.conformance.adapters import verl_adapter
        from rlspec.reference import registry

        loss_mode = verl_adapter.POLICY_LOSSES[name]
        ca, _, _ = verl_adapter._verl()
        cfg = registry.get(name).config()
        mode = verl_adapter.VerlAdapter._agg_mode(cfg, name)
        actor = verl_adapter.VerlAdapter().actor_config(name, cfg, mode)
        fn = ca.get_policy_loss_fn(loss_mode)
    except Exception:  # noqa: BLE001 - verl absent or incompatible: the column is skipped
        return None

    def run(lp, old, adv, mask):
        return fn(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask, loss_agg_mode=mode,
                  config=actor)[0]

    return run


def elementwise_variants(name: str, with_verl: bool = True) -> dict[str, Callable]:
    """variant → fn(logp, old, adv, mask) returning the scalar loss."""
    import torch

    from rlspec import optimized
    from rlspec.optimized import fused

    fn = optimized.get(name)

    def in_mode(m: str) -> Callable:
        """The loss run with the fused mode ``m`` (eager: the core uncompiled; off: the autograd formulation)."""
        def run(lp, old, adv, mask):
            prev = fused.mode()
            fused.set_mode(m)
            try:
                return fn(lp, old, adv, mask)
            finally:
                fused.set_mode(prev)
        return run

    out = {"rlspec": lambda lp, old, adv, mask: fn(lp, old, adv, mask), "rlspec-eager": in_mode("eager"),
           "rlspec-autograd": in_mode("off")}
    try:
        naive = naive_loss(name)
        out["naive"] = naive
        out["naive-compiled"] = torch.compile(naive, dynamic=True)  # compiled lazily, on the warm-up call
    except KeyError:
        pass
    v = verl_loss(name) if with_verl else None
    if v is not None:
        out["verl"] = v
    return out


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
_clock = time.perf_counter
_DEVICE = "cpu"


def set_device(device: str) -> None:
    """Where the benchmark's tensors live: ``cpu`` (default) or ``cuda`` (timings then wait for the device)."""
    global _DEVICE
    _DEVICE = device


def _now() -> float:
    """The clock, after the device has finished what was queued (CUDA runs asynchronously)."""
    if _DEVICE.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return _clock()


def set_clock(name: str) -> None:
    """``wall`` (default) or ``process``: CPU seconds of this process, all threads (on a machine shared with other
    jobs it leaves out the time spent waiting for a core; with one thread it is the wall time of a quiet machine)."""
    global _clock
    _clock = CLOCKS[name]


def _step(fn: Callable, batch) -> float:
    """Seconds for one loss + backward (a fresh leaf logp each time, outside the timing)."""
    logp, old, adv, mask = batch
    lp = logp.detach().clone().requires_grad_(True)
    t0 = _now()
    loss = fn(lp, old, adv, mask)
    loss.backward()
    return _now() - t0


def _limit_step(batch) -> Callable[[], float]:
    """A copy that moves the bytes every implementation must: inputs read once, the gradient written once."""
    import torch

    logp, old, adv, mask = batch
    moved = sum(x.numel() * x.element_size() for x in (logp, old, adv, mask)) + logp.numel() * logp.element_size()
    src = torch.ones(moved // 2, dtype=torch.uint8, device=logp.device)
    dst = torch.empty_like(src)

    def run() -> float:
        t0 = _now()
        dst.copy_(src)
        return _now() - t0

    return run


def bench_elementwise(losses, dtypes, tokens, rounds: int, with_verl: bool = True, log=print,
                      variants: list[str] | None = None) -> list[dict]:
    """One row per (loss, dtype, tokens, variant): median seconds over ``rounds`` interleaved rounds (after one
    warm-up round, whose time is reported as ``first_s``: it includes compilation). Below 64k tokens a round is the
    mean of 65536 / tokens calls, so that the clock's resolution does not dominate."""
    import torch

    rows = []
    for name in losses:
        fns = {k: f for k, f in elementwise_variants(name, with_verl).items()
               if variants is None or k in variants}
        for dt in dtypes:
            for n in tokens:
                batch = policy_batch(n, getattr(torch, dt))
                reps = max(1, (1 << 16) // n)  # small batches: each round is the mean of several calls
                lim = _limit_step(batch)
                runs = {"limit": lambda lim=lim, r=reps: sum(lim() for _ in range(r)) / r}
                runs.update({k: (lambda f=f, b=batch, r=reps: sum(_step(f, b) for _ in range(r)) / r)
                             for k, f in fns.items()})
                first, times = {}, {k: [] for k in runs}
                for k, run in runs.items():
                    try:
                        first[k] = run()
                    except Exception as e:  # noqa: BLE001 - a peer that cannot run this case is reported, not fatal
                        first[k] = None
                        log(f"  {name} {dt} {n}: {k} failed: {type(e).__name__}: {str(e)[:200]}")
                for _ in range(rounds):
                    for k, run in runs.items():
                        if first[k] is not None:
                            times[k].append(run())
                ntok = batch[0].numel()
                for k in runs:
                    if first[k] is None:
                        continue
                    med = statistics.median(times[k])
                    rows.append({"loss": name, "dtype": dt, "tokens": ntok, "variant": k, "median_s": med,
                                 "ns_per_token": med * 1e9 / ntok, "first_s": first[k], "rounds": rounds})
                log(f"  {name} {dt} {ntok} tokens: " + ", ".join(
                    f"{r['variant']} {r['ns_per_token']:.2f}" for r in rows[-len(runs):]
                    if r["tokens"] == ntok) + " ns/token")
    return rows


# ------------------------------------------------------------------------------------------------ LM head
def lmhead_inputs(N: int, H: int, V: int):
    """(hidden (B, N/B, H), W (V, H), ids, mask, old_logp, adv): one LM-head step's inputs, seeded."""
    import torch

    g = torch.Generator().manual_seed(0)
    B = 8 if N % 8 == 0 else 1
    hidden = torch.randn(B, N // B, H, generator=g)
    W = torch.randn(V, H, generator=g) * 0.02
    ids = torch.randint(0, V, (B, N // B), generator=g)
    mask = torch.ones(B, N // B, dtype=torch.bool)
    old = -torch.rand(B, N // B, generator=g) * 3
    adv = torch.randn(B, 1, generator=g).expand(B, N // B).contiguous()
    return tuple(x.to(_DEVICE) for x in (hidden, W, ids, mask, old, adv))


def _lm_fused(hidden, W, ids, mask, old, adv, passes="auto"):
    from rlspec.optimized.lmhead import fused_policy_loss

    h, w = hidden.detach().requires_grad_(True), W.detach().requires_grad_(True)  # no copy: views
    loss = fused_policy_loss("ppo", h, w, ids, mask, old_logp=old, adv=adv, passes=passes)
    loss.backward()
    return float(loss.detach()) + float(w.grad.sum())


def _lm_fused_two_pass(hidden, W, ids, mask, old, adv):
    return _lm_fused(hidden, W, ids, mask, old, adv, passes=2)


def _lm_materialized(hidden, W, ids, mask, old, adv):
    import torch

    from rlspec import optimized

    h, w = hidden.detach().requires_grad_(True), W.detach().requires_grad_(True)  # no copy: views
    lp = torch.log_softmax(h @ w.T, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    loss = optimized.get("ppo")(logp=lp, old_logp=old, adv=adv, mask=mask)
    loss.backward()
    return float(loss.detach()) + float(w.grad.sum())


def _lm_liger(hidden, W, ids, mask, old, adv):
    from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

    h, w = hidden.detach().requires_grad_(True), W.detach().requires_grad_(True)  # no copy: views
    compiled = hidden.device.type == "cuda"  # its Triton kernels (torch.compile) on a GPU; pure torch on a CPU
    out = LigerFusedLinearGRPOLoss(beta=0.0, compiled=compiled, use_ref_model=False, loss_type="bnpo")(
        h, w, ids, mask.long(), adv[:, 0], old_per_token_logps=old)
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    return float(loss.detach()) + float(w.grad.sum())


def _lm_limit(hidden, W, ids, mask, old, adv):
    h = hidden.reshape(-1, hidden.shape[-1])
    z = h @ W.T
    return float((z @ W).sum() + (z.T @ h).sum())


LMHEAD = {"limit": _lm_limit, "materialized": _lm_materialized, "fused": _lm_fused, "fused-2pass": _lm_fused_two_pass,
          "liger": _lm_liger}


def _have_liger() -> bool:
    try:
        import liger_kernel.chunked_loss  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def peak_rss_mb(variant: str, size: tuple[int, int, int], threads: int) -> float | None:
    """Peak RSS (MB) of one ``variant`` step in a fresh process, above the resident memory once the inputs exist.

    The peak is the child's own high-water mark (``VmHWM`` of /proc/self/status on Linux), reset after the inputs
    are built (writing 5 to /proc/self/clear_refs) so that the temporaries of building them do not hide part of
    the step's memory; the base is then ``VmRSS``. (``getrusage``'s ``ru_maxrss`` survives ``exec`` on Linux, so a
    child of a large benchmark process would start at its parent's peak and every step would read 0.) Where the
    reset is not available the base is the high-water mark after building the inputs, which can only undercount.
    The variant first runs once on a tiny problem, so that imports (the loss registry, a peer framework) and lazy
    initialization are not counted as the step's memory."""
    code = (
        "import resource, json, torch\n"
        "def status(key):\n"
        "    try:\n"
        "        for line in open('/proc/self/status'):\n"
        "            if line.startswith(key + ':'):\n"
        "                return int(line.split()[1]) / 1024\n"
        "    except OSError:\n"
        "        pass\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "def hwm():\n"
        "    return status('VmHWM')\n"
        "def reset():\n"
        "    try:\n"
        "        with open('/proc/self/clear_refs', 'w') as f:\n"
        "            f.write('5')\n"
        "        return status('VmRSS')\n"
        "    except OSError:\n"
        "        return hwm()\n"
        "from rlspec.optimized.bench import lmhead_inputs, LMHEAD\n"
        f"torch.set_num_threads({threads})\n"
        f"LMHEAD[{variant!r}](*lmhead_inputs(64, 32, 256))\n"  # imports and lazy initialization, not the step's
        f"x = lmhead_inputs(*{size!r})\n"
        "base = reset()\n"
        f"LMHEAD[{variant!r}](*x)\n"
        "print(json.dumps(hwm() - base))\n")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
        return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def peak_cuda_mb(variant: str, x) -> float:
    """Peak CUDA memory (MB) of one ``variant`` step above what was allocated before it (the allocator's peak,
    reset first; in this process: CUDA's allocator statistics are exact, unlike a CPU process's resident set)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    LMHEAD[variant](*x)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def bench_lmhead(sizes, rounds: int, memory: bool = True, log=print) -> list[dict]:
    """One row per (size, variant): median seconds of interleaved rounds, peak RSS above inputs (MB)."""
    import torch

    rows = []
    variants = [v for v in LMHEAD if v != "liger" or _have_liger()]
    for N, H, V in sizes:
        x = lmhead_inputs(N, H, V)
        times = {v: [] for v in variants}
        for v in variants:
            LMHEAD[v](*x)  # warm-up
        for _ in range(rounds):
            for v in variants:
                t0 = _now()
                LMHEAD[v](*x)
                times[v].append(_now() - t0)
        for v in variants:
            mem = (peak_cuda_mb(v, x) if _DEVICE.startswith("cuda") else
                   peak_rss_mb(v, (N, H, V), torch.get_num_threads())) if memory else None
            rows.append({"N": N, "H": H, "V": V, "variant": v, "median_s": statistics.median(times[v]),
                         "peak_mb": mem, "gflop": 6 * N * H * V / 1e9, "rounds": rounds})
        log(f"  lmhead N={N} H={H} V={V}: " + ", ".join(f"{r['variant']} {r['median_s']:.3f}s"
                                                         for r in rows[-len(variants):]))
    return rows


# ------------------------------------------------------------------------------------------------ report
def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def elementwise_table(rows: list[dict]) -> str:
    """Markdown: per (loss, dtype, tokens) the ns/token of each variant and the ratios the targets are about."""
    order = ["limit", "rlspec", "rlspec-eager", "rlspec-autograd", "naive", "naive-compiled", "verl"]
    keys = sorted({(r["loss"], r["dtype"], r["tokens"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    present = [v for v in order if any(r["variant"] == v for r in rows)]
    head = ("| loss | dtype | tokens | " + " | ".join(f"{v} ns/tok" for v in present)
            + " | rlspec / limit | autograd / rlspec | naive / rlspec | naive-compiled / rlspec | verl / rlspec |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for k in keys:
        t = {r["variant"]: r["ns_per_token"] for r in rows if (r["loss"], r["dtype"], r["tokens"]) == k}
        cells = [f"{t[v]:.2f}" if v in t else "—" for v in present]
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + " | "
                     + " | ".join([_ratio(t.get("rlspec"), t.get("limit")),
                                   _ratio(t.get("rlspec-autograd"), t.get("rlspec")), _ratio(t.get("naive"), t.get("rlspec")),
                                   _ratio(t.get("naive-compiled"), t.get("rlspec")),
                                   _ratio(t.get("verl"), t.get("rlspec"))]) + " |")
    return "\n".join(lines)


def lmhead_table(rows: list[dict]) -> str:
    order = [v for v in LMHEAD if any(r["variant"] == v for r in rows)]
    head = ("| N, H, V | " + " | ".join(f"{v} s (÷ limit)" for v in order) + " | peak MB above inputs: "
            + " / ".join(v for v in order if v != "limit") + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for size in sorted({(r["N"], r["H"], r["V"]) for r in rows}):
        t = {r["variant"]: r for r in rows if (r["N"], r["H"], r["V"]) == size}
        lim = t["limit"]["median_s"] if "limit" in t else None
        cells = [f"{t[v]['median_s']:.3f} ({_ratio(t[v]['median_s'], lim)})" if v in t else "—" for v in order]
        mem = " / ".join("—" if t.get(v, {}).get("peak_mb") is None else f"{t[v]['peak_mb']:.0f}"
                         for v in order if v != "limit")
        lines.append(f"| {size[0]}, {size[1]}, {size[2]} | " + " | ".join(cells) + f" | {mem} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    m = result["machine"]
    out = ["# rlspec bench", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['threads']} threads"
           + (f", GPU {m['gpu']}" if m["gpu"] else ", no GPU")
           + f", {m['date']}; tensors on {result.get('device', 'cpu')}; {result['clock']} clock"
           + (f"; load average {m['load']:.2f} at the start" if m.get("load") is not None else "")
           + f". Medians of {result['rounds']} "
           "interleaved rounds after one warm-up (which includes compilation). Command: `" + result["command"] + "`.",
           ""]
    if result["elementwise"]:
        out += ["## Policy loss + backward (ns per token; ratios > 1 mean rlspec is faster, except rlspec / limit)", "",
                "limit = a copy moving the same bytes (inputs read once, gradient written once) on this machine in "
                "this run.", "", elementwise_table(result["elementwise"]), ""]
    if result["lmhead"]:
        mem = ("peak memory: the CUDA allocator's peak during one step above what was allocated before it"
               if str(result.get("device", "cpu")).startswith("cuda") else
               "peak memory: the resident high-water mark of one step in a fresh process, above the inputs")
        out += ["## LM head log-probs + PPO loss + backward (seconds; limit = the three N×V×H matmuls)", "",
                mem + ".", "", lmhead_table(result["lmhead"]), ""]
    return "\n".join(out)


def plot(result: dict, path: str) -> str | None:
    """bench.png: elementwise ns/token vs tokens; LM-head time and peak memory vs V (and vs N)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ew, lm = result["elementwise"], result["lmhead"]
    panels = (1 if ew else 0) + (2 if lm else 0)
    if not panels:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    ax_i = 0
    if ew:
        ax = axes[0][ax_i]
        ax_i += 1
        for (loss, dt, var) in sorted({(r["loss"], r["dtype"], r["variant"]) for r in ew}):
            pts = sorted((r["tokens"], r["ns_per_token"]) for r in ew
                         if (r["loss"], r["dtype"], r["variant"]) == (loss, dt, var))
            first = loss == ew[0]["loss"]
            if var in ("rlspec", "naive", "naive-compiled", "verl", "limit") and (first or var == "rlspec"):
                ax.plot(*zip(*pts), marker="o", label=f"{loss} {dt} {var}", linestyle="--" if dt != "float32" else "-")
        ax.set(xscale="log", yscale="log", xlabel="tokens (B·T)", ylabel="ns per token (loss + backward)",
               title="policy loss + backward")
        ax.legend(fontsize=6)
    if lm:
        by_v = sorted({r["V"] for r in lm})
        n0 = min(r["N"] for r in lm)
        for j, (key, label) in enumerate((("median_s", "seconds"), ("peak_mb", "peak MB above inputs"))):
            ax = axes[0][ax_i + j]
            for var in LMHEAD:
                pts = [(r["V"], r[key]) for r in lm if r["variant"] == var and r["N"] == n0 and r[key] is not None]
                if pts and not (key == "peak_mb" and var == "limit"):
                    ax.plot(*zip(*sorted(pts)), marker="o", label=var)
            ax.set(xscale="log", xlabel=f"vocabulary V (N = {n0} tokens)", ylabel=label,
                   title=f"LM head + loss + backward: {label}", xticks=by_v)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ CLI
def _ints(s: str) -> list[int]:
    try:
        out = [int(float(x)) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not out or min(out) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return out


def _names(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``bench`` subcommand (registered by :mod:`rlspec.conformance.cli`)."""
    p = sub.add_parser("bench", help="benchmark losses and the fused LM head against naive torch, verl, Liger and "
                       "the machine's limits", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join("reports", "bench"), help="output folder (default reports/bench)")
    p.add_argument("--losses", type=_names, default=list(DEFAULT_LOSSES),
                   help="policy losses (default ppo,sapo,gspo; any with an optimized implementation)")
    p.add_argument("--dtypes", type=_names, default=list(DEFAULT_DTYPES), help="float32,bfloat16,float64")
    p.add_argument("--tokens", type=_ints, default=list(DEFAULT_TOKENS),
                   help="token counts B·T for the losses (default 65536,262144,1048576; e.g. up to 4194304)")
    p.add_argument("--vocab", type=_ints, default=[32768], help="LM-head vocabulary sizes (default 32768; e.g. "
                   "32768,65536,151936)")
    p.add_argument("--lmhead-tokens", type=_ints, default=[1024], help="LM-head token counts N (default 1024); "
                   "the first is used for the V sweep, the others at the first V")
    p.add_argument("--hidden", type=int, default=512, help="LM-head hidden size H (default 512)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per variant (default 5; medians)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the tensors live; on cuda the timings "
                   "wait for the device, peak memory is the CUDA allocator's and Liger runs its compiled (Triton) path")
    p.add_argument("--no-lmhead", action="store_true", help="skip the LM-head part")
    p.add_argument("--no-elementwise", action="store_true", help="skip the policy-loss part (LM head only)")
    p.add_argument("--no-memory", action="store_true", help="skip the LM-head peak-memory subprocesses")
    p.add_argument("--no-verl", action="store_true", help="do not try to import verl")
    p.add_argument("--variants", type=_names, default=None,
                   help="elementwise variants to run (default all: rlspec,rlspec-eager,rlspec-autograd,naive,"
                   "naive-compiled,verl)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall (default) or process (CPU seconds of this process: for a machine shared with other jobs)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress on stderr)")
    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args) -> int:
    """Run the benchmark table; 0 on success, 2 for bad arguments, 1 if a variant of rlspec itself failed."""
    import torch

    from rlspec import optimized

    unknown = [n for n in args.losses if n not in optimized.names()]
    bad_dt = [d for d in args.dtypes if d not in ("float32", "bfloat16", "float64", "float16")]
    if unknown or bad_dt or args.rounds < 1 or args.hidden < 1:
        print(f"rlspec bench: error: unknown losses {unknown}, dtypes {bad_dt}, or rounds/hidden < 1",
              file=sys.stderr)
        return EXIT_USAGE
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("rlspec bench: error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return EXIT_USAGE
    if args.threads:
        torch.set_num_threads(args.threads)
    set_clock(args.clock)
    set_device(args.device)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    result = {"machine": machine(), "device": args.device, "rounds": args.rounds, "clock": args.clock,
              "command": "rlspec " + " ".join(getattr(args, "argv", [])),
              "elementwise": [], "lmhead": []}
    log(f"machine: {result['machine']}")
    if not args.no_elementwise:
        result["elementwise"] = bench_elementwise(args.losses, args.dtypes, args.tokens, args.rounds,
                                                  with_verl=not args.no_verl, log=log, variants=args.variants)
    if not args.no_lmhead:
        n0, v0 = args.lmhead_tokens[0], args.vocab[0]
        sizes = [(n0, args.hidden, v) for v in args.vocab] + [(n, args.hidden, v0) for n in args.lmhead_tokens[1:]]
        result["lmhead"] = bench_lmhead(sizes, args.rounds, memory=not args.no_memory, log=log)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(markdown(result))
    png = plot(result, os.path.join(args.out, "bench.png"))
    if args.json:
        print(json.dumps(result))
    else:
        print(markdown(result))
        print(f"written: {args.out}/bench.md, bench.json" + (", bench.png" if png else ""))
    have = {(r["loss"], r["dtype"]) for r in result["elementwise"] if r["variant"] == "rlspec"}
    missing = [] if args.no_elementwise else [(n, d) for n in args.losses for d in args.dtypes if (n, d) not in have]
    return EXIT_FAIL if missing else EXIT_OK

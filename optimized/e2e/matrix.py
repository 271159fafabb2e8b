"""Run every registered policy loss and outcome advantage estimator on the tiny task: table + curves.

    python -m rlspec.optimized.e2e.matrix --out reports/e2e            # all algorithms, seeds 0 and 1
    python -m rlspec.optimized.e2e.matrix --out /tmp/m --algorithms ppo,grpo,dr_grpo --steps 30

Algorithms (from the registry, status "implemented"):

* every ``policy_loss`` entry, trained with GRPO advantages (its paper-default config);
* every ``advantage`` entry with the outcome signature (rewards, group, mask), trained with the PPO
  loss; Dr. GRPO uses its paper's aggregation (see :data:`rlspec.optimized.e2e.loop.RECIPES`).

Writes ``table.md`` and ``table.json`` (algorithm × first/last reward × steps to 0.8 × wall time ×
verdict), ``curves.png`` (seed-mean learning curves of all algorithms) and ``curves_grid.png``
(one panel per algorithm, one line per seed). An algorithm that does not learn, has no optimized
implementation or raises is a row in the table with its verdict, never dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from rlspec.reference import registry

# The learning gate (tests/test_e2e_gate.py reads these): over `window`-step means of the reward,
# last ≥ threshold and last − first ≥ min_gain. Budget: DEFAULTS below (docs/e2e.md has the numbers).
GATE = dict(threshold=0.6, min_gain=0.4, window=10)
DEFAULTS = dict(task="repeat", steps=50, lr=1e-3, epochs=2, minibatches=4, G=8, prompts_per_step=16,
                temperature=1.0, grad_clip=1.0, arch="llama")
HIT = 0.8  # "steps to threshold" column: first step whose 10-step moving-average reward ≥ 0.8


def algorithms() -> list[str]:
    """Every implemented policy loss and outcome advantage estimator, policy losses first.

    Critic losses (kind ``value_loss``, gradient ``dvalues``) train no policy and have no place in this loop."""
    from rlspec.optimized.e2e.loop import is_outcome_advantage

    built = [s.name for s in registry.specs() if s.status in ("implemented", "partial")]
    losses = [n for n in built if registry.get(n).kind == "policy_loss"]
    advs = [n for n in built if registry.get(n).kind == "advantage" and is_outcome_advantage(n)]
    return losses + advs


#: what the loop gives each kind; anything else a function takes is an input the tiny task does not have
LOOP_INPUTS = {"policy_loss": {"logp", "old_logp", "adv", "mask", "config", "group"},
               "advantage": {"rewards", "group", "mask", "config"}}


def unsupplied_inputs(algorithm: str) -> tuple[list[str], list[str]]:
    """(required, optional) inputs of the algorithm's torch function that the loop does not provide (``ref_logp``
    counts as provided-as-None: the loop has no reference model)."""
    import inspect

    from rlspec import optimized

    spec = registry.get(algorithm)
    if spec.kind not in LOOP_INPUTS or spec.name not in optimized.names():
        return [], []
    params = inspect.signature(optimized.get(spec.name)).parameters.values()
    extra = [p for p in params if p.name not in LOOP_INPUTS[spec.kind] and p.name != "ref_logp"
             and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return ([p.name for p in extra if p.default is inspect.Parameter.empty],
            [p.name for p in extra if p.default is not inspect.Parameter.empty])


def run_one(algorithm: str, seeds: Sequence[int], settings: dict[str, Any], bar=None) -> dict[str, Any]:
    """Train ``algorithm`` once per seed; return its table row (errors are caught into the row)."""
    from rlspec.optimized.e2e.loop import recipe, train

    row: dict[str, Any] = dict(algorithm=algorithm, seeds=list(seeds), runs=[])
    if not algorithm.startswith("control:"):
        required, optional = unsupplied_inputs(algorithm)
        notes = [registry.get(algorithm).extras.get("e2e_note", "")]  # the entry's own word on this task
        if optional:  # the run measures the entry with these at their defaults: say so in the row
            notes.append(f"ran without {', '.join(optional)} (the tiny task has none; defaults used)")
        row["note"] = "; ".join(n for n in notes if n)
        if required:
            row.update(verdict="not run", note=f"needs {', '.join(required)}, which the tiny single-turn task "
                                               "does not produce" + (f"; {row['note']}" if row["note"] else ""))
            if bar is not None:
                bar.update(len(seeds))
            return row
    try:
        kw = recipe(algorithm)
    except Exception as e:  # noqa: BLE001 - reported in the table
        row.update(verdict="error", error=f"{type(e).__name__}: {e}")
        return row
    row.update(policy_loss=kw["policy_loss"], advantage=kw["advantage"], loss_config=kw.get("loss_config", {}))
    for seed in seeds:
        def cb(step, hist, _seed=seed):
            if bar is not None:
                bar.set_postfix_str(f"{algorithm} seed {_seed} step {step + 1} reward {hist.reward[-1]:.2f}",
                                    refresh=False)

        try:
            h = train(seed=seed, callback=cb, **{**settings, **kw})
        except Exception as e:  # noqa: BLE001 - an algorithm that raises is a result, not a crash
            row.update(verdict="error", error=f"{type(e).__name__}: {str(e)[:300]}")
            return row
        finally:
            if bar is not None:
                bar.update(1)
        w = GATE["window"]
        row["runs"].append(dict(seed=seed, first=h.first(w), last=h.last(w), steps_to_hit=h.steps_to(HIT, w),
                                passes=h.passes(GATE["threshold"], GATE["min_gain"], w), wall_s=h.wall_s[-1],
                                cpu_s=h.cpu_s[-1], reward=h.reward, loss=h.loss, kl=h.kl,
                                zero_weight_frac=h.zero_weight_frac, logp_mismatch=h.logp_mismatch))
    runs = row["runs"]
    row["verdict"] = "learns" if all(r["passes"] for r in runs) else (
        "does not learn" if not any(r["passes"] for r in runs) else "learns on some seeds")
    return row


def write_table(rows: list[dict[str, Any]], out_dir: str, settings: dict[str, Any]) -> None:
    meta = dict(settings=settings, gate=GATE, hit=HIT)
    with open(os.path.join(out_dir, "table.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    lines = [
        "# End-to-end learning matrix", "",
        f"Task `{settings['task']}`, {settings['steps']} steps, {settings['prompts_per_step']} prompts × "
        f"G={settings['G']}, {settings['epochs']} epochs × {settings['minibatches']} minibatches, "
        f"AdamW lr {settings['lr']}, model {settings['arch']}. Gate: mean reward of the last {GATE['window']} steps "
        f"≥ {GATE['threshold']} and ≥ first {GATE['window']} + {GATE['min_gain']}.", "",
        "| algorithm | loss | advantage | reward first10 → last10 (per seed) | steps to 0.8 | wall s | verdict | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = r.get("note", "").replace("|", "/")
        if r.get("verdict") == "error":
            lines.append(f"| {r['algorithm']} | {r.get('policy_loss', '')} | {r.get('advantage', '')} | - | - | - | "
                         f"**error**: {r['error'].replace('|', '/')} | {note} |")
            continue
        if r.get("verdict") == "not run":
            lines.append(f"| {r['algorithm']} | | | - | - | - | not run | {note} |")
            continue
        rew = ", ".join(f"{x['first']:.2f} → {x['last']:.2f}" for x in r["runs"])
        hit = ", ".join("-" if x["steps_to_hit"] is None else str(x["steps_to_hit"]) for x in r["runs"])
        wall = ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"])
        verdict = r["verdict"] if r["verdict"] == "learns" else f"**{r['verdict']}**"
        if r["algorithm"].startswith("control:"):
            verdict += " (control: expected not to learn)"
        lines.append(f"| {r['algorithm']} | {r['policy_loss']} | {r['advantage']} | {rew} | {hit} | {wall} | {verdict} "
                     f"| {note} |")
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_curves(rows: list[dict[str, Any]], out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("runs")]
    if not ok:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in ok:
        curves = [x["reward"] for x in r["runs"]]
        n = min(len(c) for c in curves)
        ax.plot(range(1, n + 1), [sum(c[i] for c in curves) / len(curves) for i in range(n)], label=r["algorithm"])
    ax.axhline(GATE["threshold"], color="k", ls="--", lw=0.8)
    ax.set(xlabel="step", ylabel="mean reward (seed mean)", ylim=(0, 1.02), title="learning curves")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)
    plt.close(fig)
    cols = min(4, len(ok))
    nrows = (len(ok) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False, sharey=True)
    for a, r in zip(axes.flat, ok):
        for x in r["runs"]:
            a.plot(range(1, len(x["reward"]) + 1), x["reward"], lw=1, label=f"seed {x['seed']}")
        a.axhline(GATE["threshold"], color="k", ls="--", lw=0.6)
        a.set_title(f"{r['algorithm']} ({r['verdict']})", fontsize=8)
        a.set_ylim(0, 1.02)
    for a in list(axes.flat)[len(ok):]:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves_grid.png"), dpi=100)
    plt.close(fig)


def run_matrix(out_dir: str, algorithms: Sequence[str] | None = None, steps: int | None = None,
               seeds: Sequence[int] = (0, 1), progress: bool = True, threads: int | None = 1,
               controls: bool = True, **settings: Any) -> list[dict[str, Any]]:
    """Train each algorithm for each seed; write table.md, table.json and PNG curves into ``out_dir``.

    ``algorithms``: registry names (default: :func:`algorithms`); ``controls`` appends the negative
    controls of :data:`rlspec.optimized.e2e.loop.CONTROLS` (expected NOT to learn). ``steps`` and
    ``settings`` override :data:`DEFAULTS` (task, lr, epochs, ...). Returns the table rows.
    """
    from tqdm.auto import tqdm

    from rlspec.optimized.e2e.loop import CONTROLS

    names = list(algorithms) if algorithms is not None else globals()["algorithms"]()
    if controls:
        names += [c for c in CONTROLS if c not in names]
    cfg = {**DEFAULTS, **settings}
    if steps is not None:
        cfg["steps"] = steps
    cfg["threads"] = threads
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    with tqdm(total=len(names) * len(seeds), desc="e2e matrix", unit="run", disable=not progress) as bar:
        for name in names:
            rows.append(run_one(name, seeds, cfg, bar))
    write_table(rows, out_dir, {**cfg, "seeds": list(seeds), "total_wall_s": time.perf_counter() - t0})
    plot_curves(rows, out_dir)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rlspec e2e", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder (table.md, table.json, curves.png)")
    p.add_argument("--algorithms", default=None, help="comma-separated registry names (default: all)")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    p.add_argument("--task", default=DEFAULTS["task"], choices=["repeat", "repeateos"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--arch", default=DEFAULTS["arch"], choices=["llama", "qwen2"])
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-controls", action="store_true", help="leave out the negative-control runs")
    p.add_argument("--strict", action="store_true", help="exit 1 if any algorithm does not pass the gate")
    a = p.parse_args(argv)
    algos = [s for s in a.algorithms.split(",") if s] if a.algorithms else None
    seeds = [int(s) for s in a.seeds.split(",") if s]
    rows = run_matrix(a.out, algos, a.steps, seeds, progress=not a.no_progress, threads=a.threads,
                      controls=not a.no_controls, task=a.task,
                      lr=a.lr, arch=a.arch)
    with open(os.path.join(a.out, "table.md")) as f:
        print(f.read())
    bad = [r["algorithm"] for r in rows if r["verdict"] != "not run"
           and (r["verdict"] != "learns") != r["algorithm"].startswith("control:")]
    if bad:
        print(f"unexpected verdicts (algorithms not learning, or controls learning): {', '.join(bad)}",
              file=sys.stderr)
    return 1 if (a.strict and bad) else 0


if __name__ == "__main__":
    raise SystemExit(main())

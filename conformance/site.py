"""``rlspec site``: the documentation site (mkdocs-material), built from the registry.

:func:`build_site` stages ``docs/`` into ``build/site-src/docs/``, regenerates every algorithm page from the
registry (:func:`rlspec.conformance.cli.algorithm_page`), adds figures computed from the reference itself,

* policy losses that run on the canonical batch: the per-token gradient weight ∂ℓ/∂logp as a function of the
  ratio r (one token, Â = +1 and Â = −1, the entry's default config);
* advantage estimators with the outcome signature ``(rewards, group, mask)``: a worked example group
  (fixed rewards → advantages) as a table and a bar chart;
* the "ratio family" page, overlaying PPO, dual-clip PPO, DAPO, CISPO, SAPO, GSPO, DPPO and the seed papers'
  gates (family ``ratio/clipping``) on one set of axes,

* tabular entries without a figure of their own: the problem, its exact optimum and the method on it
  (:mod:`rlspec.conformance.site_tabular`);
* the aggregation-modes and group-advantage family pages (:mod:`rlspec.conformance.site_families`);
* provenance badges on every equation (paper / official-code / secondary / reconstructed) and links from each
  tested property to a page showing its test file (``source/...``; the site cannot link outside docs/);
* per entry, its conformance status in each framework (cases per verdict per dtype, the reasons of every known
  difference and unchecked case) from ``docs/compatibility/summary.json``, and its e2e learning curve (or why it
  has none) from ``docs/e2e/curves.json`` (:mod:`rlspec.conformance.site_data`);
* API pages (``docs/api/``) from the docstrings with mkdocstrings, read from a staged copy of the package layout,

writes the navigation from the registry into ``build/site-src/mkdocs.yml`` (which inherits the repository's
``mkdocs.yml``) and runs ``mkdocs build --strict``. mkdocs, mkdocs-material, pymdown-extensions and mkdocstrings
are not dependencies of rlspec: ``tox -e docs`` installs them. KaTeX is shipped from ``conformance/site_assets/katex``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlspec.conformance import site_data, site_families, site_tabular

ASSETS = Path(__file__).resolve().parent / "site_assets"
#: the ratio grid of the gradient-weight figures (log-spaced 0.2..5)
RATIOS = np.geomspace(0.2, 5.0, 161)
#: the old policy's log-prob of the token in the ratio figures (logp = OLD_LOGP + log r)
OLD_LOGP = float(np.log(0.3))
#: the ratio family page's named members: (label, registry name, config overrides)
RATIO_FAMILY = (("PPO (ε = 0.2)", "ppo", {}), ("PPO dual clip (c = 3)", "ppo", {"dual_clip_c": 3.0}),
                ("DAPO clip-higher", "dapo", {}), ("CISPO", "cispo", {}), ("SAPO", "sapo", {}),
                ("GSPO", "gspo", {}), ("DPPO", "dppo", {}))
#: the worked example of the advantage pages: two groups, binary and graded rewards, ragged lengths
EXAMPLE_REWARDS = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.9, 0.5, 0.2, 0.0])
EXAMPLE_GROUP = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
EXAMPLE_LENGTHS = np.array([3, 5, 2, 6, 4, 5, 6, 2, 4, 3])


def repo_root() -> Path:
    """The repository (the folder holding mkdocs.yml and docs/): this checkout, else the current folder."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "mkdocs.yml").is_file() else Path.cwd()


# --------------------------------------------------------------------------- figures: data
def gradient_weight(spec: Any, adv_sign: float, *, ratios: np.ndarray = RATIOS, config: Any = None) -> np.ndarray:
    """∂ℓ/∂logp of one token (B = T = 1) at each ratio r = exp(logp − old_logp), advantage ``adv_sign``.

    The batch is the canonical policy batch restricted to one valid token (ref_logp = old_logp, group 0), so the
    weight is the entry's own per-token gate with its default config (aggregation over one token is the identity)."""
    from rlspec.conformance import harness

    cfg = spec.config() if config is None and spec.config_cls is not None else config
    key = (spec.name, id(spec.fn), adv_sign, repr(cfg), ratios.tobytes())
    if key in _WEIGHTS:
        return _WEIGHTS[key]
    out = _WEIGHTS[key] = np.full(len(ratios), np.nan)
    for i, r in enumerate(ratios):
        logp = np.array([[OLD_LOGP + np.log(r)]])
        batch = {"logp": logp, "old_logp": np.array([[OLD_LOGP]]), "ref_logp": np.array([[OLD_LOGP]]),
                 "adv": np.array([[adv_sign]]), "mask": np.ones((1, 1), bool), "group": np.zeros(1, np.int64)}
        inputs = harness.select_inputs(spec, batch)
        if inputs is None:
            return out
        try:
            res = spec.fn(**inputs, config=cfg) if cfg is not None else spec.fn(**inputs)
        except Exception:  # noqa: BLE001 — a gate undefined at this point is left as a gap in the curve
            continue
        out[i] = float(np.asarray(res[1])[0, 0])
    return out


_WEIGHTS: dict[tuple, np.ndarray] = {}


def ratio_figure_specs() -> list[Any]:
    """Implemented/partial policy losses that run on the canonical batch."""
    from rlspec.conformance import harness
    from rlspec.reference import registry

    return [s for s in registry.specs() if s.kind == "policy_loss" and s.status != "planned"
            and harness.uses_default_generator(s)]


def outcome_advantage_specs() -> list[Any]:
    """Implemented/partial advantage estimators with the outcome signature (rewards, group, mask)."""
    from rlspec.conformance import harness
    from rlspec.reference import registry

    return [s for s in registry.specs() if s.kind == "advantage" and s.status != "planned"
            and harness.uses_default_generator(s)]


def example_advantages(spec: Any) -> np.ndarray:
    """The entry's advantages (B, T) on the worked example group, default config."""
    T = int(EXAMPLE_LENGTHS.max())
    mask = np.arange(T)[None, :] < EXAMPLE_LENGTHS[:, None]
    out = spec(rewards=EXAMPLE_REWARDS.copy(), group=EXAMPLE_GROUP.copy(), mask=mask)
    out = out[0] if isinstance(out, tuple) else out
    return np.where(mask, np.asarray(out, dtype=np.float64), np.nan)


# --------------------------------------------------------------------------- figures: drawing
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ratio_axes(plt, title: str):
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharex=True)
    for ax, sign in zip(axes, ("+1", "−1")):
        ax.set_xscale("log")
        ax.axvline(1.0, color="0.8", lw=0.8, zorder=0)
        ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel("ratio r = π/π_old")
        ax.set_title(f"Â = {sign}")
        ax.set_xticks([0.2, 0.5, 0.8, 1, 1.25, 2, 5], minor=False)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xticklabels(["0.2", "0.5", "0.8", "1", "1.25", "2", "5"])
    axes[0].set_ylabel("∂ℓ/∂logp")
    fig.suptitle(title, fontsize=10)
    return fig, axes


def draw_ratio_figure(spec: Any, path: Path) -> None:
    """One entry's gradient weight against the ratio, Â = ±1, default config."""
    plt = _plt()
    fig, axes = _ratio_axes(plt, f"{spec.name}: per-token gradient weight (default config)")
    for ax, sign in zip(axes, (1.0, -1.0)):
        ax.plot(RATIOS, gradient_weight(spec, sign), color="C0" if sign > 0 else "C3", lw=1.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_ratio_family(path: Path) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """The ratio family on one set of axes; returns (label, name, weight at Â=+1, weight at Â=−1) per curve."""
    from rlspec.reference import registry

    curves = []
    for label, name, over in RATIO_FAMILY:
        if name in registry.names():
            spec = registry.get(name)
            cfg = spec.config(**over) if over else None
            curves.append((label, name, gradient_weight(spec, 1.0, config=cfg), gradient_weight(spec, -1.0, config=cfg)))
    named = {n for _, n, _ in RATIO_FAMILY}
    for spec in ratio_figure_specs():
        if spec.family == "ratio/clipping" and spec.name not in named:
            curves.append((spec.name, spec.name, gradient_weight(spec, 1.0), gradient_weight(spec, -1.0)))
    plt = _plt()
    fig, axes = _ratio_axes(plt, "The ratio family: per-token gradient weight ∂ℓ/∂logp (default configs)")
    fig.set_size_inches(12, 4.8)
    n_named = sum(1 for _, n, _ in RATIO_FAMILY if n in registry.names())
    styles = ["-", "--", "-.", ":"]
    for k, (label, _name, wp, wn) in enumerate(curves):
        kw = dict(lw=2.0 if k < n_named else 1.1, ls=styles[(k // 10) % len(styles)], color=f"C{k % 10}",
                  alpha=1.0 if k < n_named else 0.8)
        axes[0].plot(RATIOS, wp, label=label, **kw)
        axes[1].plot(RATIOS, wn, **kw)
    for ax in axes:  # a few regression-type losses grow like r²: keep the gates readable
        ax.set_ylim(-2.5, 2.5)
    fig.legend(loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return curves


def draw_advantage_figure(spec: Any, adv: np.ndarray, path: Path) -> None:
    """Bar chart of the worked example: reward and advantage per rollout (first token; mean if token-varying)."""
    plt = _plt()
    first = adv[:, 0]
    x = np.arange(len(EXAMPLE_REWARDS))
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.bar(x - 0.2, EXAMPLE_REWARDS, width=0.4, color="0.7", label="reward")
    ax.bar(x + 0.2, first, width=0.4, color=["C0" if v >= 0 else "C3" for v in np.nan_to_num(first)],
           label="advantage (first token)")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(5.5, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{i}\ng{g}" for i, g in zip(x, EXAMPLE_GROUP)], fontsize=8)
    ax.set_xlabel("rollout / group")
    ax.set_title(f"{spec.name}: worked example (default config)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- page text
def _fmt(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:+.4g}"


def ratio_section(spec: Any, img: str) -> list[str]:
    probe = [0.5, 0.8, 1.0, 1.25, 2.0]
    idx = [int(np.argmin(np.abs(RATIOS - r))) for r in probe]
    wp, wn = gradient_weight(spec, 1.0), gradient_weight(spec, -1.0)
    return ["## Gradient weight against the ratio", "",
            "Computed from the reference: one token with old log-prob log 0.3, logp = log 0.3 + log r, the entry's "
            "default config; the update moves logp by −η·∂ℓ/∂logp, so a negative weight pushes the token up and "
            "0 means the token gets no gradient (clipped or masked). Other inputs the entry reads: ref_logp = old_logp, "
            "one group. [All the ratio-based losses side by side](../families/ratio.md).", "",
            f"![{spec.name}: ∂ℓ/∂logp against r for Â = +1 and Â = −1]({img})", "",
            "| r | " + " | ".join(f"{RATIOS[i]:.3g}" for i in idx) + " |",
            "|---|" + "---|" * len(idx),
            "| Â = +1 | " + " | ".join(_fmt(wp[i]) for i in idx) + " |",
            "| Â = −1 | " + " | ".join(_fmt(wn[i]) for i in idx) + " |", ""]


def advantage_section(spec: Any, adv: np.ndarray, img: str) -> list[str]:
    varies = bool(np.any(np.nanmax(adv, axis=1) - np.nanmin(adv, axis=1) > 1e-12))
    lines = ["## Worked example", "",
             "Two prompts: group 0 has six rollouts with binary rewards (two correct), group 1 four rollouts with "
             "graded rewards; response lengths differ. Advantages are the reference's output with the default "
             "config" + (" (token-varying: first token, mean over the response's tokens)." if varies else "."), "",
             "| rollout | group | reward | length | advantage" + (" (first token) | mean over tokens |" if varies else " |"),
             "|---|---|---|---|---|" + ("---|" if varies else "")]
    for i in range(len(EXAMPLE_REWARDS)):
        row = f"| {i} | {EXAMPLE_GROUP[i]} | {EXAMPLE_REWARDS[i]:g} | {EXAMPLE_LENGTHS[i]} | {_fmt(adv[i, 0])} |"
        lines.append(row + (f" {_fmt(float(np.nanmean(adv[i])))} |" if varies else ""))
    return lines + ["", f"![{spec.name}: rewards and advantages of the worked example]({img})", ""]


def _insert_section(page: str, section: list[str]) -> str:
    """Put a generated section before the configuration (or conformance) section of an algorithm page."""
    for head in ("## Configuration", "## Inputs and outputs", "## Conformance"):
        k = page.find("\n" + head)
        if k >= 0:
            return page[:k + 1] + "\n".join(section) + "\n" + page[k + 1:]
    return page.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"


# --------------------------------------------------------------------------- conformance and e2e sections
#: what each verdict of a conformance cell means (the legend under an entry's status table)
VERDICTS = {"pass": "agrees with the reference within the dtype's tolerance",
            "xfail": "differs, classified as a bug of that implementation",
            "deviation": "differs, classified as a documented design choice",
            "xpass": "classified as a difference but agrees (the classification is out of date)",
            "fail": "differs, not classified", "error": "raised, not classified",
            "unsupported": "not checked: the adapter cannot express the case (reason below)",
            "not-installed": "not checked: the framework was not installed"}


def _cell_md(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "—"
    errs = cell.get("max_rel_err", {})
    return " · ".join(f"{st} {n}" + (f" ({errs[st]})" if st in errs else "") for st, n in cell["counts"].items())


def _judged(e: dict[str, Any]) -> int:
    return sum(n for c in e["cells"].values() for st, n in c["counts"].items() if st not in ("unsupported", "not-installed"))


def _inline(text: str) -> str:
    """A reason as markdown text: no TeX delimiters, no table pipes."""
    return text.replace("$", r"\$").replace("|", "/")


def conformance_section(spec: Any, summary: dict[str, Any] | None) -> list[str]:
    """The entry's conformance status in each framework, from docs/compatibility/summary.json: cases per verdict
    per dtype, which frameworks compute it, and the reasons of every difference and every case not checked."""
    head = ["## Conformance", "", f"Golden vectors: `conformance/vectors/{spec.name}/`."]
    per = (summary or {}).get("entries", {}).get(spec.name)
    if not per:
        when = f" ({summary['date']})" if summary else ""
        return head + ["", f"**Not in the committed compatibility run{when}**: the entry was added after it. "
                       "`rlspec check all --page docs/compatibility.md` (the peers environment) adds it; "
                       "`rlspec check optimized --algorithms " + spec.name + "` checks the torch version.", ""]
    impls = summary["implementations"]
    dtypes = [d for d in ("float64", "float32", "bfloat16")
              if any(d in e["cells"] for e in per.values())]
    dtypes += sorted({d for e in per.values() for d in e["cells"]} - set(dtypes))
    lines = head + ["", f"Checked against the reference in each framework by `{summary['source'].split(' --page')[0]}` "
                    f"on {summary['date']} (all entries: the [compatibility page](../compatibility.md)). A cell "
                    "counts this entry's cases per verdict in one dtype; in parentheses, the largest relative error "
                    "|got − ref| / max(|ref|, atol/rtol) among the cases of a compared verdict.", "",
                    "| implementation | version | " + " | ".join(dtypes) + " |", "|---|---|" + "---|" * len(dtypes)]
    computed, absent, unchecked = [], [], []
    for impl, info in impls.items():
        e = per.get(impl)
        report = f"[{impl}](../compatibility/{impl}.md)"
        if e is None:
            lines.append(f"| {report} | {info['version']} | " + " | ".join("not in this run" for _ in dtypes) + " |")
            continue
        lines.append(f"| {report} | {info['version']} | " + " | ".join(_cell_md(e["cells"].get(d)) for d in dtypes) + " |")
        if _judged(e):
            computed.append(impl)
        elif e["not_checked"] and all(site_data.NOT_IMPLEMENTED.match(r["reason"]) for r in e["not_checked"]):
            absent.append(impl)
        else:
            unchecked.append(impl)
    used = sorted({st for e in per.values() for c in e["cells"].values() for st in c["counts"]},
                  key=list(VERDICTS).index)
    lines += ["", "Verdicts: " + "; ".join(f"*{st}* = {VERDICTS[st]}" for st in used) + ".", ""]
    say = []
    if computed:
        say.append("**compared with the reference** in " + ", ".join(computed))
    if absent:
        say.append("**not implemented** by " + ", ".join(absent))
    if unchecked:
        say.append("**present but not checkable** in " + ", ".join(unchecked) + " (reasons below)")
    lines += ["Summary: " + "; ".join(say) + ".", ""]
    known = [(impl, it) for impl, e in per.items() for it in e["known"]]
    if known:
        lines += ["Known differences (each framework's report has a reproduction):", ""]
        lines += [f"- **{impl} {impls[impl]['version']}**, *{it['status']}* ({it['cases']} case"
                  f"{'s' if it['cases'] != 1 else ''}): {_inline(it['reason'])}" for impl, it in known] + [""]
    skipped = [(impl, it) for impl, e in per.items() for it in e["not_checked"]
               if not site_data.NOT_IMPLEMENTED.match(it["reason"])]
    if skipped:
        lines += ["Cases not checked:", ""]
        lines += [f"- **{impl}**, *{it['status']}* ({it['cases']} case{'s' if it['cases'] != 1 else ''}): "
                  f"{_inline(it['reason'].removeprefix('adapter: '))}" for impl, it in skipped] + [""]
    return lines


#: docs/e2e.md's heading "Samplers and curricula in the loop (`optimized/e2e/pipeline.py`)" as mkdocs slugs it
E2E_PIPELINE_ANCHOR = "samplers-and-curricula-in-the-loop-optimizede2epipelinepy"
#: the run every e2e figure shows in grey for comparison (the plain PPO loss with GRPO advantages)
E2E_BASELINE = "ppo"


def e2e_no_run_reason(spec: Any) -> str:
    """Why an entry has no learning curve of its own (it is not in the committed e2e runs)."""
    import inspect

    loop = ("The e2e loop ([end-to-end](../e2e.md)) plugs in a policy loss and an outcome advantage estimator by "
            "name, plus sampler/curriculum hooks")
    if spec.kind == "tabular":
        return ("A method on a small exact problem (`reference/envs/`), not a loss for the LLM training loop: "
                "the figure above shows it on such a problem.")
    if spec.kind == "value_loss":
        return f"{loop}; it trains no critic (outcome advantages need none), so a critic loss has no slot in it."
    if spec.kind == "advantage" and spec.fn is not None:
        params = [p.name for p in inspect.signature(spec.fn).parameters.values()
                  if p.default is inspect.Parameter.empty and p.name not in ("rewards", "group", "mask", "config")]
        if params:
            return (f"{loop}; an advantage estimator must take the outcome signature (rewards, group, mask), and "
                    f"this one also needs {', '.join(params)}, which the tiny task does not produce.")
    return f"{loop}; a `{spec.kind}` entry is none of these, so it has no learning curve of its own."


def e2e_data(curves: dict[str, Any] | None, name: str) -> tuple[str, dict[str, Any]] | None:
    """("matrix" | "pipeline" | "not adaptable", row) for an entry in the committed e2e runs, else None."""
    if not curves:
        return None
    if name in curves.get("matrix", {}).get("rows", {}):
        return "matrix", curves["matrix"]["rows"][name]
    pipe = curves.get("pipeline", {})
    if name in pipe.get("rows", {}):
        return "pipeline", pipe["rows"][name]
    if name in pipe.get("not_adaptable", {}):
        return "not adaptable", {"note": pipe["not_adaptable"][name]}
    return None


def draw_e2e_figure(name: str, row: dict[str, Any], baseline: dict[str, Any] | None, threshold: float | None,
                    path: Path) -> None:
    """Reward per step of each seed's run; the baseline's seed mean in grey; the gate's threshold dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.5, 3.2))
    if baseline is not None and baseline.get("runs"):
        rs = [np.array([np.nan if v is None else v for v in r["reward"]]) for r in baseline["runs"]]
        n = min(len(r) for r in rs)
        ax.plot(np.arange(1, n + 1), np.nanmean([r[:n] for r in rs], axis=0), color="0.65", lw=1.4,
                label=f"{E2E_BASELINE} + grpo (seed mean, for comparison)")
    for k, r in enumerate(row["runs"]):
        y = [np.nan if v is None else v for v in r["reward"]]
        ax.plot(np.arange(1, len(y) + 1), y, color=f"C{k}", lw=1.6, label=f"{name}, seed {r['seed']}")
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"gate threshold {threshold:g}")
    ax.set(xlabel="training step", ylabel="mean reward of the batch", ylim=(0, 1.02))
    ax.set_title(f"{name}: reward per step on the tiny task", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def e2e_section(spec: Any, curves: dict[str, Any] | None, fig_dir: Path | None) -> list[str]:
    """The entry's e2e learning curve (figure + per-seed numbers), or why it has none; draws into ``fig_dir``."""
    head = ["## End-to-end learning curve", ""]
    found = e2e_data(curves, spec.name)
    if found is None:
        why = e2e_no_run_reason(spec)
        if curves is None:
            why = "No e2e data is committed (`docs/e2e/curves.json`). " + why
        return head + [f"**No run.** {why}", ""]
    where, row = found
    if where == "not adaptable":
        return head + [f"**Not run**: {_inline(row['note'])} (`rlspec.optimized.e2e.pipeline.NOT_ADAPTABLE`).", ""]
    img = f"fig/{spec.name}-e2e.png"
    when = f"Run on {curves['date']}" + (f" ({curves['machine']})" if curves.get("machine") else "")
    if where == "pipeline":
        st = curves["pipeline"]["settings"]
        lines = head + [f"{when}: the entry as the loop's `{row['hook']}` hook ({_inline(row['what'])}), task "
                        f"`{row['task']}`, seed {st['seed']}, {st['steps']} steps. Eight steps show that the loop runs "
                        "with the entry, not that it learns faster (the gate's runs need about 30 steps to reach a "
                        "reward of 0.8). Settings and the other hooks: "
                        f"[samplers and curricula in the loop](../e2e.md#{E2E_PIPELINE_ANCHOR}).", ""]
        if fig_dir is not None:
            draw_e2e_figure(spec.name, row, None, None, fig_dir / f"{spec.name}-e2e.png")
            lines += [f"![{spec.name}: reward per step with the hook in the loop]({img})", ""]
        r = row["runs"][0]["reward"]
        return lines + [f"Reward at step 1 → step {len(r)}: {_fmt_plain(r[0])} → {_fmt_plain(r[-1])}.", ""]
    m = curves["matrix"]
    st, gate = m["settings"], m["gate"]
    if row.get("verdict") == "not run":
        return head + [f"**Not run** in the e2e matrix ({curves['date']}): {_inline(row.get('note', ''))}.", ""]
    if row.get("verdict") == "error":
        return head + [f"**The run raised** ({curves['date']}): `{row.get('error', '')}`.", ""]
    cfg = row.get("loss_config") or {}
    lines = head + [
        f"{when}: `{row['policy_loss']}` loss with `{row['advantage']}` advantages"
        + (f" ({', '.join(f'{k}={v}' for k, v in cfg.items())})" if cfg else "")
        + f" on the tiny `{st['task']}` task (a tiny random-init {st['arch']} model): {st['steps']} steps "
        f"of {st['prompts_per_step']} prompts × G={st['G']}, {st['epochs']} epochs × {st['minibatches']} "
        f"minibatches, AdamW lr {st['lr']:g}, seeds {', '.join(str(r['seed']) for r in row['runs'])}. "
        f"Gate: mean reward of the last {gate['window']} steps ≥ {gate['threshold']:g} and ≥ the first "
        f"{gate['window']} + {gate['min_gain']:g}. Verdict: **{row['verdict']}**."
        + (f" Note: {_inline(row['note'])}." if row.get("note") else ""), ""]
    if fig_dir is not None:
        base = m["rows"].get(E2E_BASELINE)
        if base is not None and (row.get("policy_loss"), row.get("advantage")) == (base.get("policy_loss"),
                                                                                    base.get("advantage")):
            base = None  # the entry's run is the baseline run
        draw_e2e_figure(spec.name, row, base, gate["threshold"], fig_dir / f"{spec.name}-e2e.png")
        lines += [f"![{spec.name}: reward per step, each seed]({img})", ""]
    lines += [f"| seed | first {gate['window']} → last {gate['window']} steps (mean reward) | first step whose "
              f"{gate['window']}-step mean ≥ {m['hit']:g} | passes the gate |", "|---|---|---|---|"]
    for r in row["runs"]:
        hit = "—" if r["steps_to_hit"] is None else str(r["steps_to_hit"])
        lines.append(f"| {r['seed']} | {r['first']:.2f} → {r['last']:.2f} | {hit} | {'yes' if r['passes'] else 'no'} |")
    return lines + ["", "All runs side by side: [end-to-end](../e2e.md).", ""]


def _fmt_plain(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _replace_conformance(page: str, section: list[str]) -> str:
    k = page.find("\n## Conformance\n")
    if k < 0:
        return page.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    nxt = page.find("\n## ", k + 1)
    return page[:k + 1] + "\n".join(section) + ("\n" + page[nxt + 1:] if nxt >= 0 else "\n")




_REPO_LINK = re.compile(r"\[`([^`\]]+)`\]\(\.\./\.\./([^)\s]+)\)")


_LINK = re.compile(r"(?<!!)\[([^\[\]\n]*)\]\(([^()\n]*)\)")


def _site_page(text: str, page: Path, dead: list[str]) -> str:
    """An algorithm page for the site: repository paths outside docs/ (``[`reference/x.py`](../../reference/x.py)``)
    become code spans; a link to a missing page (appended to ``dead``) becomes its text; equation text that
    markdown would read as a link (``1[S>IP](1−İP)``) keeps its brackets."""
    text = _REPO_LINK.sub(lambda m: f"`{m.group(1)}`", text)

    def fix(m: re.Match) -> str:
        label, target = m.group(1), m.group(2).strip()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)  # external link or anchor
        if re.search(r"\.(md|png|svg|html)(#.*)?$", target):
            if (page.parent / target.split("#")[0]).exists():
                return m.group(0)
            dead.append(f"{page.name} -> {target}")
            return label
        return f"[{label}\\]({m.group(2)})"  # not a link: equation text

    return _LINK.sub(fix, text)


#: provenance badges of the equations table: (css class suffix, tooltip)
PROVENANCE = {"paper": "confirmed in the paper's text",
              "official-code": "confirmed in the authors' released code",
              "secondary": "from a secondary source (a framework or a later paper), not confirmed in the paper",
              "reconstructed": "reconstructed by rlspec where the paper and code leave it open"}


def _md_text(text: str) -> str:
    """Plain text for a markdown heading: no markup characters."""
    return re.sub(r"([\\`*_\[\]{}<>#|])", r"\\\1", text)


def provenance_badge(source: str) -> str:
    return f'<span class="rl-prov rl-prov-{source}" title="{PROVENANCE.get(source, source)}">{source}</span>'


def badge_equations(page: str, spec: Any) -> str:
    """The equations table with a provenance badge in place of the plain provenance word, and a legend."""
    for e in spec.equations:
        row = f"| {e.label} | {e.text} | {e.where} | {e.source} |"
        page = page.replace(row, f"| {e.label} | {e.text} | {e.where} | {provenance_badge(e.source)} |", 1)
    if spec.equations:
        counts = {src: sum(1 for e in spec.equations if e.source == src) for src in PROVENANCE}
        legend = ("Provenance: " + ", ".join(f"{provenance_badge(k)} {v}" for k, v in counts.items() if v)
                  + (" equation" if len(spec.equations) == 1 else " equations") + " (hover a badge for what it means).")
        page = page.replace("## Key equations\n\n", f"## Key equations\n\n{legend}\n\n", 1)
    return page


_PROPERTY = re.compile(r"^- `((?:properties|tests)/[^`:]+\.py)::([^`]+)`", re.M)
_REFERENCE = re.compile(r"^Reference: `((?:reference|optimized|conformance)/[^`]+\.py)`", re.M)


def source_page_path(repo_path: str) -> str:
    """The site page (relative to docs/) that shows a repository file."""
    return "source/" + repo_path.removesuffix(".py") + ".md"


def link_sources(page: str, root: Path, refs: dict[str, set[str]]) -> str:
    """Property test ids and the reference module become links to the site's source pages (``source/...``):
    the site cannot link outside docs/, so the files are shown there. ``refs`` collects path -> anchors wanted."""
    def prop(m: re.Match) -> str:
        path, test = m.group(1), m.group(2)
        if not (root / path).is_file():
            return m.group(0)
        top = re.match(r"[A-Za-z_]\w*", test)
        if top is None:
            return m.group(0)
        top = top.group(0)
        refs.setdefault(path, set()).add(top)
        return f"- [`{path}::{test}`](../{source_page_path(path)}#{top})"

    def ref(m: re.Match) -> str:
        path = m.group(1)
        if not (root / path).is_file():
            return m.group(0)
        refs.setdefault(path, set())
        return f"Reference: [`{path}`](../{source_page_path(path)})"

    return _REFERENCE.sub(ref, _PROPERTY.sub(prop, page))


def source_page(repo_path: str, text: str, wanted: set[str]) -> str:
    """A repository Python file as a site page: the module head, then one section per top-level function or
    class (heading id = its name, so ``#test_name`` links land on the test), each with its line numbers."""
    import ast

    lines = text.splitlines()
    try:
        nodes = [n for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    except SyntaxError:
        nodes = []
    starts = [min([n.lineno] + [d.lineno for d in n.decorator_list]) - 1 for n in nodes]
    fence = "`" * max(4, 1 + max((len(r) for r in re.findall(r"`{3,}", text)), default=0))
    out = ["---", "search:", "  exclude: true", "---", "", f"# `{repo_path}`", "",
           "The file as it is in this checkout of the repository, shown on the site so that the algorithm pages "
           "can link to it.", ""]

    def block(a: int, b: int) -> list[str]:
        body = "\n".join(lines[a:b]).strip("\n")
        return [f"{fence}python", body, fence, ""] if body else []

    out += block(0, starts[0] if starts else len(lines))
    bounds = starts + [len(lines)]
    for k, n in enumerate(nodes):
        a, b = bounds[k], bounds[k + 1]
        out += [f"## `{n.name}` {{#{n.name}}}", "", f"*lines {a + 1}–{b}*", ""] + block(a, b)
    missing = wanted - {n.name for n in nodes}
    if missing:  # a property names a test that is not a top-level definition: keep the link target valid
        out += ["## Other tests", ""] + [f'<a id="{m}"></a>`{m}` is not a top-level definition of this file.\n'
                                         for m in sorted(missing)]
    return "\n".join(out) + "\n"


def write_source_pages(docs: Path, root: Path, refs: dict[str, set[str]]) -> list[str]:
    """Write ``docs/source/...md`` for every referenced repository file; returns the pages (relative to docs/)."""
    pages = []
    for path in sorted(refs):
        dest = docs / source_page_path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(source_page(path, (root / path).read_text(encoding="utf-8"), refs[path]), encoding="utf-8")
        pages.append(source_page_path(path))
    return pages


def ratio_family_page(curves: list[tuple[str, str, np.ndarray, np.ndarray]]) -> str:
    probe = [0.5, 0.8, 1.0, 1.25, 2.0, 4.0]
    idx = [int(np.argmin(np.abs(RATIOS - r))) for r in probe]
    lines = ["# The ratio family", "",
             "Every policy loss below is a weight per sampled token: the update is "
             r"$\sum_{b,t} \frac{\partial \ell}{\partial \log\pi(y_{bt})}\,\nabla_\theta \log\pi_\theta(y_{bt})$, "
             r"and the weight depends on the token's ratio $r = \pi_\theta / \pi_{\text{old}}$ and its advantage $\hat A$. "
             "PPO's clipped surrogate", "",
             r"$$\ell = -\min\bigl(r\hat A,\ \operatorname{clip}(r, 1-\varepsilon, 1+\varepsilon)\hat A\bigr)$$", "",
             r"has the weight $-r\hat A$ inside the trust region and $0$ where the clip binds ($r > 1+\varepsilon$ for "
             r"$\hat A > 0$, $r < 1-\varepsilon$ for $\hat A < 0$). The other members change that picture: a higher "
             "upper clip (DAPO), a capped but never-zero weight (CISPO), a soft gate (SAPO), a sequence-level ratio "
             "(GSPO; on one token it equals the token ratio), a trust region on the probability difference instead "
             "of the ratio (DPPO), and the seed papers' gates (family *ratio/clipping*). Each curve is computed from "
             "the reference with the entry's default config, for one token whose old probability is 0.3; the axes stop "
             "at ±2.5 (losses that regress the ratio, such as r2vpo and gbpo, grow beyond it; the table has the values).",
             "",
             "![the ratio family: ∂ℓ/∂logp against r for Â = +1 and Â = −1](ratio.png)", "",
             "| loss | Â | " + " | ".join(f"r = {RATIOS[i]:.3g}" for i in idx) + " |",
             "|---|---|" + "---|" * len(idx)]
    for label, name, wp, wn in curves:
        link = f"[{label}](../algorithms/{name}.md)"
        lines.append(f"| {link} | +1 | " + " | ".join(_fmt(wp[i]) for i in idx) + " |")
        lines.append(f"| {link} | −1 | " + " | ".join(_fmt(wn[i]) for i in idx) + " |")
    return "\n".join(lines) + "\n"


def index_page(specs: list[Any]) -> str:
    n = {st: sum(1 for s in specs if s.status == st) for st in ("implemented", "partial", "planned")}
    return "\n".join([
        "# rlspec", "",
        "The executable specification of reinforcement-learning policy optimization for large language models. "
        "Each paper is written down four ways: a readable NumPy reference with hand-derived gradients, property "
        "tests of its theorems, a PyTorch implementation, and a conformance suite that checks any implementation "
        "(yours, verl, TRL, OpenRLHF, Liger-Kernel, AReaL) against the reference.", "",
        f"{n['implemented']} implemented, {n['partial']} partial and {n['planned']} planned entries: "
        "[the catalogue](catalogue.md).", "",
        "- Every policy loss is a weight per sampled token: [the ratio family](families/ratio.md) draws them side by "
        "side; each algorithm's page draws its own, computed from the reference.",
        "- How the aggregation modes weight short and long responses, and what micro-batching does to them: "
        "[aggregation modes](families/aggregation.md).",
        "- Every outcome advantage estimator on one example group: [the group-advantage family](families/advantages.md).",
        "- Small calculations to check by hand, executed by the test suite: [worked examples](examples.md).",
        "- Symbols: [notation](notation.md).",
        "- Which framework computes what the paper says: [compatibility](compatibility.md).",
        "- Every algorithm trains a tiny model: [end-to-end](e2e.md).",
        "- The Python API, from the docstrings: [API](api/index.md).", ""])


# --------------------------------------------------------------------------- staging and build
def stage(src_dir: Path, *, figures: bool = True, log: Callable[[str], None] = print) -> list[Any]:
    """Write the site's sources into ``src_dir`` (docs/, mkdocs.yml); returns the navigation."""
    from rlspec.conformance.cli import algorithm_page, markdown_catalogue
    from rlspec.reference import registry
    from rlspec.reference.registry import KINDS

    root = repo_root()
    docs = src_dir / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    shutil.copytree(root / "docs", docs)
    shutil.copytree(ASSETS / "katex", docs / "assets" / "katex")
    shutil.copy2(ASSETS / "katex-init.js", docs / "assets" / "katex-init.js")
    shutil.copy2(ASSETS / "extra.css", docs / "assets" / "extra.css")
    specs = registry.specs()
    (docs / "catalogue.md").write_text(markdown_catalogue(specs) + "\n", encoding="utf-8")
    (docs / "index.md").write_text(index_page(specs), encoding="utf-8")

    pages_dir, fig_dir = docs / "algorithms", docs / "algorithms" / "fig"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in pages_dir.glob("*.md"):
        old.unlink()
    built = [s for s in specs if s.status != "planned"]
    ratio_names = {s.name for s in ratio_figure_specs()} if figures else set()
    adv_names = {s.name for s in outcome_advantage_specs()} if figures else set()
    dead: list[str] = []
    source_refs: dict[str, set[str]] = {}
    compat = site_data.load_summary(root / "docs" / "compatibility" / "summary.json")
    curves = site_data.load_curves(root / "docs" / "e2e" / "curves.json")
    for spec in built:
        page = _site_page(badge_equations(algorithm_page(spec), spec), pages_dir / f"{spec.name}.md", dead)
        page = link_sources(page, root, source_refs)
        page = page.replace("\n## Background\n", f"\n## Background: {_md_text(spec.paper.title)} {{#background}}\n", 1)
        if spec.name in ratio_names:
            draw_ratio_figure(spec, fig_dir / f"{spec.name}-ratio.png")
            page = _insert_section(page, ratio_section(spec, f"fig/{spec.name}-ratio.png"))
        if spec.name in adv_names:
            adv = example_advantages(spec)
            draw_advantage_figure(spec, adv, fig_dir / f"{spec.name}-example.png")
            page = _insert_section(page, advantage_section(spec, adv, f"fig/{spec.name}-example.png"))
        if figures and site_tabular.needs_figure(spec):
            drawn = site_tabular.draw(spec, fig_dir)
            page = _insert_section(page, ["## The problem, its optimum and the method", ""] + (
                [f"![{spec.name}: the problem, the exact optimum and the method]({drawn[0]})", "", f"*{drawn[1]}*", ""]
                if drawn else [site_tabular.no_figure_reason(spec), ""]))
        page = _replace_conformance(page, conformance_section(spec, compat)
                                    + e2e_section(spec, curves, fig_dir if figures else None))
        (pages_dir / f"{spec.name}.md").write_text(page + "\n", encoding="utf-8")
    log(f"staged {len(built)} algorithm pages ({len(ratio_names)} ratio figures, {len(adv_names)} worked examples)")
    if dead:
        targets = sorted({d.split(" -> ")[1] for d in dead})
        log(f"{len(dead)} links to missing pages made plain text (targets: {', '.join(targets)})")

    (docs / "families").mkdir(exist_ok=True)
    curves = draw_ratio_family(docs / "families" / "ratio.png") if figures else []
    (docs / "families" / "ratio.md").write_text(ratio_family_page(curves), encoding="utf-8")
    agg_rows = site_families.aggregation_data()
    if figures:
        site_families.draw_aggregation(agg_rows, docs / "families" / "aggregation.png")
    (docs / "families" / "aggregation.md").write_text(
        site_families.aggregation_page(agg_rows, "aggregation.png" if figures else None), encoding="utf-8")
    series = site_families.advantage_family_data()
    if figures:
        site_families.draw_advantage_family(series, docs / "families" / "advantages.png")
    (docs / "families" / "advantages.md").write_text(
        site_families.advantage_family_page(series, "advantages.png" if figures else None), encoding="utf-8")
    sources = write_source_pages(docs, root, source_refs)
    log(f"{len(sources)} source pages (property tests and reference modules)")

    by_kind = [{k.replace("_", " "): [f"algorithms/{s.name}.md" for s in built if s.kind == k]} for k in KINDS
               if any(s.kind == k for s in built)]
    compat = ["compatibility.md"] + [f"compatibility/{p.name}" for p in sorted((docs / "compatibility").glob("*.md"))]
    families = [{"The ratio family": "families/ratio.md"}, {"Aggregation modes": "families/aggregation.md"},
                {"The group-advantage family": "families/advantages.md"}]
    api = [f"api/{p.name}" for p in sorted((docs / "api").glob("*.md"), key=lambda p: (p.name != "index.md", p.name))]
    nav = [{"Home": "index.md"}, {"Catalogue": "catalogue.md"}, {"Families": families},
           {"Algorithms": by_kind}, {"Compatibility": compat}, {"End-to-end": "e2e.md"}, {"Notation": "notation.md"}]
    if (docs / "examples.md").is_file():
        nav.insert(2, {"Worked examples": "examples.md"})
    if api:
        nav.append({"API": api})
    listed = {"index.md", "catalogue.md", "e2e.md", "notation.md", "examples.md", *compat, *sources, *api,
              *(next(iter(f.values())) for f in families), *(f"algorithms/{s.name}.md" for s in built)}
    extra = sorted(str(p.relative_to(docs)) for p in docs.rglob("*.md") if str(p.relative_to(docs)) not in listed)
    if extra:  # hand-written pages under docs/ that the registry does not know: listed at the end
        nav.append({"More": extra})
    config = {"INHERIT": str(root / "mkdocs.yml"), "docs_dir": "docs", "nav": nav,
              "not_in_nav": "/source/"}  # the source pages are reached from the algorithm pages' links
    api_source_tree(src_dir / "api-src", root)
    # JSON is YAML: no PyYAML needed to write the config
    (src_dir / "mkdocs.yml").write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return nav


def api_source_tree(dest: Path, root: Path) -> Path:
    """``dest/rlspec/`` laid out as the installed package (``rlspec/{reference,optimized,conformance}``), made of
    links into the checkout, where the layers are folders beside ``rlspec/``: mkdocstrings reads the API pages'
    modules from it by their ``rlspec.*`` names (mkdocs.yml: ``paths: [api-src]``) without importing them."""
    pkg = dest / "rlspec"
    if dest.exists():
        shutil.rmtree(dest)
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").symlink_to(root / "rlspec" / "__init__.py")
    for layer in ("reference", "optimized", "conformance"):
        (pkg / layer).symlink_to(root / layer, target_is_directory=True)
    return dest


def build_site(out: Path | str | None = None, *, src_dir: Path | str | None = None, strict: bool = True,
               figures: bool = True, log: Callable[[str], None] = print) -> Path:
    """Stage the sources and run ``mkdocs build`` (``--strict`` by default) into ``out`` (default build/site)."""
    root = repo_root()
    out = Path(out) if out is not None else root / "build" / "site"
    src_dir = Path(src_dir) if src_dir is not None else root / "build" / "site-src"
    src_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stage(src_dir, figures=figures, log=log)
    t1 = time.perf_counter()
    cmd = [sys.executable, "-m", "mkdocs", "build", "-f", str(src_dir / "mkdocs.yml"), "-d", str(out.resolve())]
    if strict:
        cmd.append("--strict")
    res = subprocess.run(cmd, cwd=src_dir, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"mkdocs build failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    log(f"site in {out} (staging {t1 - t0:.1f} s, mkdocs {time.perf_counter() - t1:.1f} s); open {out / 'index.html'}")
    return out


def cmd_site(args: Any) -> int:
    """``rlspec site [--out DIR]``."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
        import pymdownx  # noqa: F401
    except ImportError as e:
        print(f"rlspec site: {e}; install with: pip install mkdocs mkdocs-material pymdown-extensions "
              "'mkdocstrings[python]' (or run tox -e docs)", file=sys.stderr)
        return 2
    try:
        build_site(args.out, strict=not args.no_strict)
    except RuntimeError as e:
        print(f"rlspec site: {e}", file=sys.stderr)
        return 1
    return 0

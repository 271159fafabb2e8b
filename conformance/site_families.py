"""Family pages of the documentation site (``rlspec site``), computed from the reference at build time.

* :func:`aggregation_page`: how the five aggregation modes of :mod:`rlspec.reference.aggregation` weight the
  tokens of a short and a long sequence (the coefficients ``c`` with ``loss = Σ c ⊙ ℓ``), and what two
  micro-batches of one sequence each give with and without the global normalizer;
* :func:`advantage_family_page`: every outcome advantage estimator (signature ``(rewards, group, mask)``) on the
  worked example group of the algorithm pages, as a table and a grouped bar chart; estimators whose advantages are
  identical on the example share one series.

Nothing here is asserted by hand: every number on these pages is an output of the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the 2-sequence example: a short (2 tokens) and a long (6 tokens) response, padded to T = 6
AGG_LENGTHS = (2, 6)
AGG_T = 6


def agg_mask() -> np.ndarray:
    return np.arange(AGG_T)[None, :] < np.array(AGG_LENGTHS)[:, None]


def agg_rows() -> list[tuple[str, str, dict]]:
    """(label, mode, kwargs) per row of the aggregation table: group-token-mean under both groupings."""
    from rlspec.reference.aggregation import MODES

    rows = []
    for mode in MODES:
        if mode == "group-token-mean":
            rows.append(("group-token-mean (both from one prompt)", mode, {"group": np.array([0, 0])}))
            rows.append(("group-token-mean (two prompts)", mode, {"group": np.array([0, 1])}))
        else:
            rows.append((mode, mode, {}))
    return rows


def micro_batched(mode: str, mask: np.ndarray, kw: dict, *, global_norm: bool) -> np.ndarray:
    """Effective coefficients when each sequence is its own micro-batch (rows kept at the batch's T).

    Without the global normalizer each micro-batch aggregates with its own denominator and the micro-batch losses
    are averaged (gradient accumulation divides by the number of micro-batches); with it, every micro-batch
    divides by :func:`~rlspec.reference.aggregation.global_normalizer` of the full batch and the losses are summed."""
    from rlspec.reference import aggregation as agg

    B = mask.shape[0]
    group = kw.get("group")
    norm = agg.global_normalizer(mask, mode, group=group) if global_norm else None
    c = np.zeros(mask.shape)
    for b in range(B):
        sub = {"group": group[b:b + 1]} if group is not None else {}
        cb = agg.coefficients(mask[b:b + 1], mode, normalizer=norm, **sub)
        c[b:b + 1] = cb if global_norm else cb / B
    return c


def aggregation_data() -> list[dict[str, Any]]:
    """Per row: label, mode, full-batch coefficients, micro-batched without / with the global normalizer."""
    from rlspec.reference import aggregation as agg

    mask = agg_mask()
    out = []
    for label, mode, kw in agg_rows():
        full = agg.coefficients(mask, mode, **kw)
        local = micro_batched(mode, mask, kw, global_norm=False)
        glob = micro_batched(mode, mask, kw, global_norm=True)
        out.append({"label": label, "mode": mode, "kw": kw, "full": full, "local": local, "global": glob})
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_aggregation(rows: list[dict[str, Any]], path: Path) -> None:
    """One panel per row: the coefficient of each valid token, short sequence then long sequence."""
    plt = _plt()
    mask = agg_mask()
    n = len(rows)
    fig, axes = plt.subplots(n, 1, figsize=(8.0, 1.35 * n + 0.6), sharex=True)
    xs, colors, ticks = [], [], []
    x = 0
    for b, L in enumerate(AGG_LENGTHS):
        for t in range(L):
            xs.append(x)
            colors.append("C1" if b == 0 else "C0")
            ticks.append(f"s{b}t{t}")
            x += 1
        x += 1  # gap between the sequences
    top = max(float(r["full"].max()) for r in rows) * 1.25
    for ax, r in zip(axes, rows):
        vals = r["full"][mask]
        ax.bar(xs, vals, color=colors, width=0.8)
        ax.set_ylim(0, top)
        ax.set_ylabel("c", rotation=0, labelpad=8)
        tot = [r["full"][b].sum() for b in range(len(AGG_LENGTHS))]
        ax.set_title(f"{r['label']}: sequence weights {tot[0]:.3g} (short), {tot[1]:.3g} (long)", fontsize=9,
                     loc="left")
        for xi, v in zip(xs, vals):
            ax.text(xi, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    axes[-1].set_xticks(xs)
    axes[-1].set_xticklabels(ticks, fontsize=7)
    axes[-1].set_xlabel("token (s0 = short sequence, 2 tokens; s1 = long sequence, 6 tokens; T = 6)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _g(v: float) -> str:
    return f"{v:.4g}"


def aggregation_page(rows: list[dict[str, Any]], img: str | None) -> str:
    lines = ["# Aggregation modes", "",
             "A policy loss gives one value per token, ℓ (B, T); the aggregation mode turns that into one number. "
             "Every mode in `reference/aggregation.py` is linear in ℓ:", "",
             r"$$\mathcal{L} = \sum_{b,t} c_{bt}\,\ell_{bt},\qquad "
             r"\frac{\partial \mathcal{L}}{\partial \log\pi(y_{bt})} "
             r"= c_{bt}\,\frac{\partial \ell_{bt}}{\partial \log\pi(y_{bt})},$$",
             "",
             "so the coefficient $c_{bt}$ is the weight a token's own gradient gets in the update, and two modes differ "
             "only in how they share that weight between short and long responses. Below: two responses, a short "
             f"one ({AGG_LENGTHS[0]} tokens) and a long one ({AGG_LENGTHS[1]} tokens), padded to T = {AGG_T}; every "
             "number is `aggregation.coefficients` of the reference (seq-mean-token-sum-norm with its default "
             "constant C = T).", ""]
    if img:
        lines += [f"![per-token coefficients of each aggregation mode on a short and a long sequence]({img})", ""]
    lines += ["| mode | weight per token, short | weight per token, long | total, short | total, long | Σ c |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        c = r["full"]
        lines.append(f"| `{r['label']}` | {_g(c[0, 0])} | {_g(c[1, 0])} | {_g(c[0].sum())} | {_g(c[1].sum())} | "
                     f"{_g(c.sum())} |")
    # what the table shows, derived from the numbers above
    by = {r["label"]: r["full"] for r in rows}
    same = [(a, b) for i, a in enumerate(by) for b in list(by)[i + 1:] if np.allclose(by[a], by[b])]
    lines += ["", "Read off the table:", "",
              "- *token-mean* gives every token the same weight, so the long response carries "
              f"{_g(by['token-mean'][1].sum() / by['token-mean'][0].sum())}× the short one's total weight.",
              "- *seq-mean-token-mean* gives each response the same total, so a token of the short response weighs "
              f"{_g(by['seq-mean-token-mean'][0, 0] / by['seq-mean-token-mean'][1, 0])}× a token of the long one "
              "(the length bias Dr. GRPO points out: long wrong answers are penalized less per token).",
              "- *seq-mean-token-sum* and *seq-mean-token-sum-norm* weight tokens equally again, by a constant "
              "that does not depend on the batch's token count.",
              ]
    for a, b in same:
        lines.append(f"- On this example `{a}` and `{b}` give identical coefficients.")
    lines += ["", "## Micro-batching", "",
              "Split the batch into two micro-batches of one response each (each keeps the batch's T). Without the "
              "global normalizer each micro-batch divides by its own count and the accumulated loss is the mean of "
              "the micro-batch losses; with it (`normalizer=aggregation.global_normalizer(full mask, mode)`) every "
              "micro-batch divides by the full batch's count and the micro-batch losses are summed. "
              "Coefficients of one token of each response:", "",
              "| mode | full batch (short, long) | micro-batches, local normalizer | micro-batches, global normalizer "
              "| local = full? | global = full? |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        f, lo, gl = r["full"], r["local"], r["global"]
        ok_l = np.allclose(lo, f)
        ok_g = np.allclose(gl, f)
        lines.append(f"| `{r['label']}` | {_g(f[0, 0])}, {_g(f[1, 0])} | {_g(lo[0, 0])}, {_g(lo[1, 0])} | "
                     f"{_g(gl[0, 0])}, {_g(gl[1, 0])} | {'yes' if ok_l else '**no**'} | {'yes' if ok_g else '**no**'} |")
    wrong = []
    for r in rows:
        if np.allclose(r["local"], r["full"]):
            continue
        like = [o["label"] for o in rows if o is not r and np.allclose(r["local"], o["full"])]
        wrong.append(f"`{r['label']}`" + (f" (it becomes `{like[0]}`)" if like else ""))
    exact = all(np.allclose(r["global"], r["full"]) for r in rows)
    lines.append("")
    if wrong:
        lines.append("Without the global normalizer these modes no longer compute the full-batch loss: "
                     + ", ".join(wrong) + ". ")
    split = [r["label"] for r in rows if r["mode"] == "group-token-mean" and len(set(r["kw"]["group"].tolist())) == 1]
    still = [r["label"] for r in rows if not np.allclose(r["global"], r["full"])]
    if exact:
        lines.append("With the global normalizer every mode matches the full batch exactly.")
    else:
        rest = [w for w in still if w not in split]
        lines.append("With the global normalizer every mode matches the full batch exactly"
                     + (f" except {', '.join(f'`{w}`' for w in rest)}" if rest else "")
                     + (f"; {', '.join(f'`{w}`' for w in split)} splits one prompt across the two micro-batches, "
                        "which no normalizer repairs (the per-prompt denominator is the prompt's token count, and "
                        "neither micro-batch sees all of it): group-token-mean needs whole prompts per micro-batch."
                        if split else "."))
    lines += ["", "The property tests check this for any split: `properties/test_aggregation.py`. "
              "Data-parallel ranks are micro-batches too: the normalizer is then the all-reduced count.", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the group-advantage family
def advantage_family_data() -> list[tuple[list[str], np.ndarray]]:
    """(names, advantages of the first token (B,)) per distinct result, in registry order."""
    from rlspec.conformance import site

    series: list[tuple[list[str], np.ndarray, np.ndarray]] = []
    for spec in site.outcome_advantage_specs():
        adv = site.example_advantages(spec)
        for names, full, _first in series:
            if full.shape == adv.shape and np.allclose(full, adv, equal_nan=True, atol=1e-9):
                names.append(spec.name)
                break
        else:
            series.append(([spec.name], adv, adv[:, 0]))
    return [(names, first) for names, _full, first in series]


def draw_advantage_family(series: list[tuple[list[str], np.ndarray]], path: Path) -> None:
    from rlspec.conformance import site

    plt = _plt()
    n = len(series)
    fig, ax = plt.subplots(figsize=(13, 5.2))
    x = np.arange(len(site.EXAMPLE_REWARDS))
    width = 0.9 / (n + 1)
    cmap = plt.get_cmap("tab20")
    ax.bar(x - 0.45 + width / 2, site.EXAMPLE_REWARDS, width=width, color="0.25", label="reward")
    for k, (names, first) in enumerate(series):
        label = " = ".join(names) if len(names) <= 3 else f"{names[0]} = … ({len(names)} entries)"
        ax.bar(x - 0.45 + width * (k + 1.5), np.nan_to_num(first), width=width, color=cmap(k % 20), label=label)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(5.5, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{i}\ng{g}\nR={r:g}" for i, (g, r) in
                        enumerate(zip(site.EXAMPLE_GROUP, site.EXAMPLE_REWARDS))], fontsize=8)
    ax.set_xlabel("rollout / group / reward")
    ax.set_ylabel("advantage (first token)")
    ax.set_title("Outcome advantage estimators on one example (default configs)", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def advantage_family_page(series: list[tuple[list[str], np.ndarray]], img: str | None) -> str:
    from rlspec.conformance import site

    R, G, L = site.EXAMPLE_REWARDS, site.EXAMPLE_GROUP, site.EXAMPLE_LENGTHS
    n_entries = sum(len(s[0]) for s in series)
    lines = ["# The group-advantage family", "",
             "An outcome advantage estimator turns one scalar reward per rollout into an advantage per token, using "
             "the other rollouts of the same prompt as the baseline. Every implemented estimator with the outcome "
             f"signature `(rewards, group, mask)` ({n_entries} entries) on one example: two prompts, group 0 with six "
             "rollouts and binary rewards (two correct), group 1 with four rollouts and graded rewards, response "
             f"lengths {', '.join(str(int(v)) for v in L)}. Each number is the reference's output with the entry's "
             f"default config (first token of the response); entries that agree on every token share a row "
             f"({len(series)} distinct results).", ""]
    if img:
        lines += [f"![every outcome advantage estimator on the example group]({img})", ""]
    head = " | ".join(f"{i} (g{g}, R={r:g})" for i, (g, r) in enumerate(zip(G, R)))
    lines += [f"| estimator | {head} | Σ group 0 | Σ group 1 |", "|---|" + "---|" * (len(R) + 2)]
    for names, first in series:
        who = ", ".join(f"[{n}](../algorithms/{n}.md)" for n in names)
        cells = " | ".join(site._fmt(v) for v in first)
        s0, s1 = (float(np.nansum(first[G == g])) for g in (0, 1))
        s0, s1 = (0.0 if abs(v) < 1e-9 else v for v in (s0, s1))
        lines.append(f"| {who} | {cells} | {site._fmt(s0)} | {site._fmt(s1)} |")
    zero = [" = ".join(n) for n, f in series if all(abs(float(np.nansum(f[G == g]))) < 1e-9 for g in (0, 1))]
    lines += ["", "The two Σ columns say which estimators are centred per prompt (advantages sum to zero in each "
              f"group): {', '.join(zero) if zero else 'none'}. Each estimator's own page has the same example with "
              "its full table.", ""]
    return "\n".join(lines) + "\n"

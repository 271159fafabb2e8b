"""Figures of the classic / tabular entries that carry none of their own (``Spec.extras["figures"]``).

Each figure shows the problem, its exact optimum and what the method computes on it, from the reference
alone (no torch); :data:`FIGURES` maps an entry to its drawing function, :func:`no_figure_reason` says why an
entry has none. The site (:mod:`rlspec.conformance.site`) calls :func:`draw` for every tabular entry without
its own figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


# --------------------------------------------------------------------------- hdpo
def hdpo_newsvendor() -> dict[str, Any]:
    """HDPO (SGD, rate 0.5/√(k+1), 1000 fresh paths a step) on the newsvendor with Normal(5, 1.6) demand,
    h = 1, p = 9, L = 0, backlog: the simulated cost J(S) on 20 000 common paths, the critical fractile
    S* = F⁻¹(p/(p+h)) and the base-stock iterates from S = 2."""
    from rlspec.reference import registry
    from rlspec.reference.envs import inventory

    spec = registry.get("hdpo")
    cfg = spec.config(L=0, h=1.0, p=9.0, lost_sales=False)
    demand = inventory.Demand("normal", mean=5.0, std=1.6)
    paths = demand.sample(np.random.default_rng(1), (20000, 1))
    grid = np.linspace(2.0, 10.0, 81)
    cost = np.array([spec.extras["simulate_costs"](S, paths, L=0, h=1.0, p=9.0).mean() for S in grid])
    s_star = float(spec.extras["critical_fractile"](demand, h=1.0, p=9.0, L=0))
    iters = spec.extras["train"](2.0, lambda r: demand.sample(r, (1000, 1)), 120, 0.5, cfg, seed=0, lr_decay=0.5)
    it_cost = np.array([spec.extras["simulate_costs"](S, paths, L=0, h=1.0, p=9.0).mean() for S in iters])
    return {"grid": grid, "cost": cost, "s_star": s_star, "iterates": np.asarray(iters), "iterate_cost": it_cost}


def draw_hdpo(path: Path) -> str:
    d = hdpo_newsvendor()
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    a.plot(d["grid"], d["cost"], color="0.3", lw=1.6, label="J(S): simulated cost")
    a.axvline(d["s_star"], color="C2", ls="--", lw=1.2, label=f"critical fractile S* = {d['s_star']:.2f}")
    a.plot(d["iterates"][:12], d["iterate_cost"][:12], "o-", color="C0", ms=4, lw=0.8, zorder=3,
           label="HDPO iterates S_0 … S_11")
    a.set(xlabel="base-stock level S", ylabel="average cost per period")
    a.legend(fontsize=7, frameon=False)
    b.plot(np.arange(len(d["iterates"])), d["iterates"], color="C0", lw=1.4, label="HDPO's S_k")
    b.axhline(d["s_star"], color="C2", ls="--", lw=1.2, label="S*")
    b.set(xlabel="SGD step k", ylabel="S_k")
    b.legend(fontsize=7, frameon=False)
    fig.suptitle("HDPO on the newsvendor (Normal(5, 1.6) demand, h = 1, p = 9, L = 0, backlog)", fontsize=10)
    _save(fig, path)
    last = d["iterates"][-30:].mean()
    return (f"HDPO on the newsvendor, where the optimum is exact: the pathwise-gradient iterates of the base-stock "
            f"level start at S = 2 and settle at {last:.2f} (mean of the last 30 of {len(d['iterates'])} steps) "
            f"against the critical fractile S* = F⁻¹(0.9) = {d['s_star']:.2f}. The page's default config (lost "
            "sales, lead time 4) has no closed-form optimum; the property tests check it against dynamic "
            "programming.")


# --------------------------------------------------------------------------- oblr_po_lr
def oblr_problem(n_samples: int = 8, seeds: int = 200) -> dict[str, Any]:
    """An L-smooth quadratic (L = 1) whose gradient ∇J = (1, 0.5) is seen through N noisy per-sample estimates
    (noise scale σ per coordinate). For each σ: the exact best step η* = argmax_η of the improvement lower bound
    (from the true ‖∇J‖² and tr Cov ĝ) and the entry's step from sampled estimates (median, 10–90 %)."""
    from rlspec.reference import registry

    spec = registry.get("oblr_po_lr")
    g = np.array([1.0, 0.5])
    sigmas = np.geomspace(0.1, 10.0, 25)
    exact, med, lo, hi = [], [], [], []
    for sigma in sigmas:
        trace_cov = 2 * sigma**2 / n_samples  # the covariance of the mean of N samples
        snr = float(g @ g) / trace_cov
        exact.append(snr / (1 + snr))  # η* = (1/L)·SNR/(1+SNR), L = 1
        rng = np.random.default_rng(0)
        lrs = [spec(g_samples=g + sigma * rng.normal(size=(n_samples, 2)))[1] for _ in range(seeds)]  # (snr, lr)
        q = np.quantile(lrs, [0.1, 0.5, 0.9])
        lo.append(q[0]); med.append(q[1]); hi.append(q[2])  # noqa: E702
    return {"sigmas": sigmas, "exact": np.array(exact), "median": np.array(med), "lo": np.array(lo),
            "hi": np.array(hi), "n": n_samples, "bound": spec.extras["improvement_lower_bound"], "g": g}


def draw_oblr(path: Path) -> str:
    d = oblr_problem()
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    g2 = float(d["g"] @ d["g"])
    etas = np.linspace(0.0, 1.6, 161)
    for k, sigma in enumerate((0.5, 1.5, 4.0)):
        tc = 2 * sigma**2 / d["n"]
        bound = np.array([d["bound"](e, g2, tc, 1.0) for e in etas])
        a.plot(etas, bound, color=f"C{k}", lw=1.4, label=f"σ = {sigma:g}")
        best = (g2 / tc) / (1 + g2 / tc)
        a.plot([best], [d["bound"](best, g2, tc, 1.0)], "o", color=f"C{k}", ms=5)
    a.axhline(0, color="0.8", lw=0.8)
    a.set(xlabel="step size η", ylabel="lower bound on E J(θ+ηĝ) − J(θ)", ylim=(-1.0, 0.8))
    a.set_title("the problem: improvement bound, its maximiser η* (dots)", fontsize=9)
    a.legend(fontsize=7, frameon=False)
    b.set_xscale("log")
    b.plot(d["sigmas"], d["exact"], color="C2", ls="--", lw=1.4, label="exact η* (true SNR)")
    b.plot(d["sigmas"], d["median"], color="C0", lw=1.6, label=f"oblr_po_lr from N = {d['n']} samples (median)")
    b.fill_between(d["sigmas"], d["lo"], d["hi"], color="C0", alpha=0.2, label="10–90 % over 200 draws")
    b.set(xlabel="per-sample gradient noise σ", ylabel="step size", ylim=(0, 1.05))
    b.set_title("the method: SNR-governed step against η*", fontsize=9)
    b.legend(fontsize=7, frameon=False)
    fig.suptitle("OBLR-PO's step size on an L-smooth quadratic (L = 1 = 1/lr_max, ∇J = (1, 0.5))", fontsize=10)
    _save(fig, path)
    return ("The problem is the improvement lower bound η‖∇J‖² − (Lη²/2)(‖∇J‖² + tr Cov ĝ) of an L-smooth objective; "
            "its maximiser is η* = (1/L)·SNR/(1+SNR). The entry estimates the SNR from N = 8 per-sample gradients: "
            "its median step follows η* from clean gradients (σ small, η → 1/L) towards noisy ones; at high noise it "
            "falls below η* (the debiased signal ‖ḡ‖² − noise is clipped at 0) and an 8-sample estimate spreads "
            "widely (shaded).")


# --------------------------------------------------------------------------- agnostic_rl_psdp
def psdp_problem(ns: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128), seeds: int = 12) -> dict[str, Any]:
    """The entry's own conformance generator (``make_inputs``, seed 3) draws a layered MDP and a product policy
    class; PSDP's value J(π̂) for n samples per layer (median and range over seeds), against the best policy of
    the class, the exact PSDP (expectations instead of samples) and the unrestricted optimum J*."""
    from rlspec.reference import registry

    spec = registry.get("agnostic_rl_psdp")
    inp = spec.make_inputs(np.random.default_rng(3))
    base = {k: v for k, v in inp.items() if k != "config"}
    exact = spec(**base, config=spec.config(exact=True))
    vals = np.array([[spec(**base, config=spec.config(n=n, seed=s))["value"] for s in range(seeds)] for n in ns])
    return {"ns": np.array(ns), "values": vals, "best": exact["best_in_class"], "exact": exact["value"],
            "optimum": exact["optimum"], "H": int(np.asarray(inp["q"]).shape[0]),
            "K": int(np.asarray(inp["layer_classes"]).shape[1])}


def draw_psdp(path: Path) -> str:
    d = psdp_problem()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    ax.set_xscale("log", base=2)
    ax.axhline(d["optimum"], color="k", lw=1.0, label=f"J* (every policy) = {d['optimum']:.3f}")
    ax.axhline(d["best"], color="C2", ls="--", lw=1.2, label=f"best in the class = {d['best']:.3f}")
    ax.axhline(d["exact"], color="C1", ls=":", lw=1.4, label=f"exact PSDP (expectations) = {d['exact']:.3f}")
    ax.plot(d["ns"], np.median(d["values"], axis=1), "o-", color="C0", lw=1.4, label="sampled PSDP J(π̂), median")
    ax.fill_between(d["ns"], d["values"].min(axis=1), d["values"].max(axis=1), color="C0", alpha=0.2,
                    label=f"range over {d['values'].shape[1]} seeds")
    ax.set(xlabel="samples per layer n", ylabel="value J(π̂)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_title(f"PSDP with μ-resets on a layered MDP (H = {d['H']}, S = 3, A = 2, {d['K']} candidates per layer)",
                 fontsize=10)
    _save(fig, path)
    return ("The problem is the entry's own conformance case (`make_inputs`, seed 3): a random layered MDP and a "
            "product policy class. PSDP's policy from n reset samples per layer approaches what it computes from "
            "exact expectations; that exact PSDP policy need not be the best of the class (its guarantee adds "
            "the concentrability-weighted per-layer errors), and the class's best can sit below J* (the "
            "agnostic gap).")


# --------------------------------------------------------------------------- poise_probe
def probe_problem(n: int = 400, f: int = 4, seed: int = 0) -> dict[str, Any]:
    """The entry's generator at a larger size: features ϕ = z·W + noise from a latent difficulty z, binary targets
    with P(success | z) = σ(2z); the probe is fitted on n rows and predicts 300 held-out rows, whose exact
    success probability σ(2z) is known."""
    from rlspec.reference import registry

    spec = registry.get("poise_probe")
    rng = np.random.default_rng(seed)
    W, m = rng.normal(size=f), 300
    z = rng.normal(size=n + m)
    X = z[:, None] * W[None, :] + rng.normal(scale=0.5, size=(n + m, f)) + rng.normal(scale=3.0, size=f)
    p = 1 / (1 + np.exp(-2 * z))
    y = (rng.random(n) < p[:n]).astype(np.float64)
    pred = spec(features=X[:n], targets=y, query=X[n:])
    return {"z": z[n:], "p": p[n:], "pred": np.asarray(pred), "z_train": z[:n], "y": y}


def draw_probe(path: Path) -> str:
    d = probe_problem()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    order = np.argsort(d["z"])
    ax.scatter(d["z_train"], d["y"], s=6, color="0.6", alpha=0.5, label="training targets (0/1 outcomes)")
    ax.plot(d["z"][order], d["p"][order], color="k", lw=1.4, label="exact success probability σ(2z)")
    ax.scatter(d["z"], d["pred"], s=8, color="C0", label="probe's prediction (held-out rows)")
    ax.set(xlabel="latent difficulty z (the features are noisy linear views of it)", ylabel="value", ylim=(-0.05, 1.05))
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title("POISE's value probe: a clipped ridge regression from features to success", fontsize=10)
    _save(fig, path)
    rmse = float(np.sqrt(np.mean((d["pred"] - d["p"]) ** 2)))
    return ("The probe is a closed-form fit (no iterates): trained on 400 binary outcomes, its held-out predictions "
            f"track the exact success probability with RMSE {rmse:.3f}; being linear and clipped to [0, 1], it "
            "cannot follow the sigmoid's curvature at the ends.")


#: entry -> drawing function (path) -> caption
FIGURES: dict[str, Callable[[Path], str]] = {"hdpo": draw_hdpo, "oblr_po_lr": draw_oblr,
                                              "agnostic_rl_psdp": draw_psdp, "poise_probe": draw_probe}


def needs_figure(spec: Any) -> bool:
    """A built tabular entry whose registry record carries no figure of its own."""
    return spec.kind == "tabular" and spec.status != "planned" and not spec.extras.get("figures")


def draw(spec: Any, fig_dir: Path) -> tuple[str, str] | None:
    """(image path relative to the algorithm page, caption), or None when :data:`FIGURES` has no drawing."""
    fn = FIGURES.get(spec.name)
    if fn is None:
        return None
    path = fig_dir / f"{spec.name}-problem.png"
    caption = fn(path)
    return f"fig/{path.name}", caption


def no_figure_reason(spec: Any) -> str:
    return (f"No figure: `{spec.name}` is a tabular entry without a drawing in "
            "`rlspec.conformance.site_tabular.FIGURES`; add one there.")

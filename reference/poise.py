"""POISE: policy optimisation with a value probe on the actor's own internal states.

Choi, Lim, Ahn, Oh, Shim, Jo, "Your Language Model is Its Own Critic: Reinforcement Learning with Value
Estimation from Actor's Internal States", arXiv 2605.07579 (May 2026). Official code:
github.com/holi-lab/POISE (``src/poise/core.py``, ``estimator.py``, ``trainer.py``,
``domain_estimator_bank.py``, ``config/*.json``, ``config/poise_fsdp.yaml``), read for every formula below.
The paper's abstract was read; its body only through our notes (papers_A.md §13, from a full-text copy).

The method, per prompt x with G ≥ 2 rollouts y_1..y_G (the paper uses G = 2)::

    ϕ_i   = [h_prompt ; h_response,i ; u_i]          features of rollout i (dim 2d + 3)
            h_prompt     mean of the last n = 10 prompt hidden states at layer ℓ (ℓ = 19 for Qwen3-4B)
            h_response,i mean of the last n = 10 hidden states of rollout i's response span, same layer
            u_i          mean token entropy over the whole response, its reasoning span, its answer span
    v_i   = g(ϕ_i) = clip(w·standardize(ϕ_i) + c, 0, 1)      the value probe (ridge regression)
    b_i   = (1/(G−1)) Σ_{j≠i} v_j                   cross-rollout baseline (G = 2: b_1 = v_2, b_2 = v_1)
    Â_i   = R_i − b_i                               no std normalisation; broadcast over the response

The probe is fitted to the leave-one-out target V_{−i} = (1/(G−1)) Σ_{j≠i} R_j (G = 2: the partner's
reward) by closed-form ridge regression on standardised features (scikit-learn ``StandardScaler`` +
``Ridge``: unpenalised intercept = mean target, population std, constant columns scaled by 1), and refitted
online *after* each policy step on the new rows plus a buffer of the newest complete prompt groups (math
4096 rows, code and other 3072 in ``poise_fsdp.yaml``); the advantages of a step are fixed before the refit.

Why the cross-rollout baseline: ϕ_i depends on y_i, so b_i = g(ϕ_i) would bias the gradient; b_i built
from the other rollouts, which are independent of y_i given x, keeps E[(R_i − b_i) ∇log π(y_i|x)] = ∇J
(abstract). The same-rollout baseline's bias is (our derivation, the probe held fixed)

    E[(R − g(ϕ(x, y))) ∇θ log π(y|x)] − ∇J = −E[g(ϕ(x, y)) ∇θ log π(y|x)] = −∇θ E_{y∼π_θ}[g(ϕ(x, y))],

the gradient of the probe's expected prediction, which pulls the policy towards responses the probe
scores low; with a perfect per-rollout probe (g(ϕ_i) = R_i) the update is exactly zero.

Allocation (Prop. 1 and Corollary 1, from our notes): with n prompts × m rollouts each, B = n·m,
per-rollout gradient terms Z conditionally i.i.d. given the prompt, Cov ĝ = Σ_w/B + (m/B) Σ_b with
Σ_w = E_x Cov(Z|x) and Σ_b = Cov_x E(Z|x); at fixed B it is non-decreasing in m (Loewner order) and
smallest at m = 1 — the reason for a single-rollout value estimate.

Paper and code disagree on the probe's settings; the paper's are the defaults here, the code's are options:
``alpha`` 0.01 (paper, and the code's ``EstimatorFitConfig`` default) vs 100 with PCA of the prompt and
response hidden blocks to 32 and 64 dims (``estimator_fit_config_qwen3_4b.json``): set ``alpha=100,
prompt_pca_dim=32, response_pca_dim=64, hidden_dims=(d, d)``. PCA here is exact (SVD); scikit-learn's
randomised solver approximates it. Code-only parts not reproduced as functions: one probe per data domain
(math / code / other) and a from-scratch bootstrap whose first 16 steps use RLOO while rows are collected
— ``poise_advantage(values=None)`` is that bootstrap advantage (the sibling rewards stand in for the
sibling predictions).

Defined cases: a group of one rollout has no sibling (the code refuses such groups): advantage 0
(``singleton="zero"``) or its raw reward (``"raw"``). An empty span pools to the zero vector and its
entropy mean is 0 (as the code). Rewards are always read; masked output positions are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import as_2d, as_mask, choice, fail, finite_vector, group_ids, positive
from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

POISE_PAPER = Paper(arxiv="2605.07579", title="Your Language Model is Its Own Critic: Reinforcement Learning with "
                    "Value Estimation from Actor's Internal States", year=2026)


@dataclass(frozen=True)
class POISEConfig:
    """singleton: advantage of a rollout without siblings — "zero" (default) or "raw" (Â = R)."""

    singleton: str = "zero"

    def __post_init__(self) -> None:
        choice(self.singleton, "singleton", ("zero", "raw"))


@dataclass(frozen=True)
class ProbeConfig:
    """alpha: ridge penalty (> 0; paper 0.01, code's Qwen3-4B config 100); clip_min/clip_max: prediction range
    ([0, 1] for verifiable rewards); prompt_pca_dim/response_pca_dim: PCA of the two hidden blocks (0 = none,
    the paper; code: 32 and 64), which then need hidden_dims = (d_prompt, d_response), the lengths of the two
    blocks at the head of ϕ. The training targets come from :func:`probe_targets`."""

    alpha: float = 0.01
    clip_min: float = 0.0
    clip_max: float = 1.0
    prompt_pca_dim: int = 0
    response_pca_dim: int = 0
    hidden_dims: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        positive(self.alpha, "alpha")
        if not (np.isfinite(self.clip_min) and np.isfinite(self.clip_max) and self.clip_min <= self.clip_max):
            raise fail("clip_min/clip_max", f"({self.clip_min}, {self.clip_max})", "finite bounds with min ≤ max")
        for name in ("prompt_pca_dim", "response_pca_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise fail(name, repr(v), "an integer ≥ 0 (0 = no PCA)")
        if self.hidden_dims is not None:
            hd = tuple(self.hidden_dims)
            if len(hd) != 2 or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in hd):
                raise fail("hidden_dims", repr(self.hidden_dims), "None or (d_prompt, d_response), integers ≥ 1")
            object.__setattr__(self, "hidden_dims", (int(hd[0]), int(hd[1])))
        if (self.prompt_pca_dim or self.response_pca_dim) and self.hidden_dims is None:
            raise fail("hidden_dims", "None", "(d_prompt, d_response) when a PCA dimension is set")


# ---------------------------------------------------------------------------- features ϕ


def last_n_mean(H: np.ndarray, n: int = 10) -> np.ndarray:
    """Mean of the last n rows of H (T, d) → (d,); all rows if T < n; the zero vector if T = 0."""
    return H[-n:].mean(axis=0) if H.shape[0] else np.zeros(H.shape[1])


def entropy_features(entropy: np.ndarray, reasoning: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """u (3,) = mean token entropy over the response, its reasoning span and its answer span (0 if empty)."""
    return np.array([entropy[m].mean() if m.any() else 0.0
                     for m in (np.ones_like(reasoning), reasoning, answer)])


def poise_features(prompt_hidden, response_hidden, entropy, reasoning_mask=None, answer_mask=None,
                   n: int = 10) -> np.ndarray:
    """ϕ = [h_prompt ; h_response ; u] (2d + 3,).

    Args: prompt_hidden (T_p, d) layer-ℓ states of the prompt; response_hidden (T_r, d) the same layer's states of
    the response span to pool (the official trainer pools the reasoning span's last tokens); entropy (T_e,)
    token entropies of the response; reasoning_mask / answer_mask (T_e,) bool spans (None = empty span, as the
    code when the response has no think/answer tags); n tokens pooled (10).
    """
    P = as_2d(prompt_hidden, "prompt_hidden")
    H = as_2d(response_hidden, "response_hidden")
    if P.shape[0] < 1 or H.shape[1] != P.shape[1]:
        raise fail("response_hidden", f"shape {H.shape} with prompt_hidden {P.shape}",
                   "the same hidden size d as a non-empty prompt_hidden (T_p ≥ 1, d)")
    if not (np.isfinite(P).all() and np.isfinite(H).all()):
        raise fail("prompt_hidden/response_hidden", "non-finite values", "finite hidden states")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise fail("n", repr(n), "an integer ≥ 1 (tokens pooled)")
    e = np.asarray(entropy, dtype=np.float64)
    if e.ndim != 1 or not np.isfinite(e).all():
        raise fail("entropy", f"shape {e.shape}", "finite token entropies of shape (T_e,)")
    spans = [np.zeros(e.shape[0], bool) if m is None else as_mask(m, name, (e.shape[0],))
             for m, name in ((reasoning_mask, "reasoning_mask"), (answer_mask, "answer_mask"))]
    return np.concatenate([last_n_mean(P, n), last_n_mean(H, n), entropy_features(e, *spans)])


# ---------------------------------------------------------------------------- the value probe g


@dataclass(frozen=True)
class Probe:
    """A fitted probe: optional PCA per hidden block (mean, components (k, d)), scaler (mean, scale), ridge
    (coef, intercept), clip range. Predict with :func:`probe_predict`."""

    pca: tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray] | None]
    hidden_dims: tuple[int, int] | None
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    clip: tuple[float, float]


def pca_fit(H: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), components (k', d)) of H (N, d): the top k' = min(k, N, d) right singular vectors of H − mean."""
    mu = H.mean(axis=0)
    _, _, Vt = np.linalg.svd(H - mu, full_matrices=False)
    return mu, Vt[:min(k, H.shape[0], H.shape[1])]


def project(X: np.ndarray, pca, hidden_dims) -> np.ndarray:
    """ϕ with each hidden block replaced by its PCA scores (H − mean) Cᵀ where a PCA is set (N, F')."""
    if hidden_dims is None:
        return X
    dp, dr = hidden_dims
    blocks = [X[:, :dp], X[:, dp:dp + dr]]
    out = [b if p is None else (b - p[0]) @ p[1].T for b, p in zip(blocks, pca)]
    return np.concatenate(out + [X[:, dp + dr:]], axis=1)


def standardize_fit(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population std of Z (N, F); a constant column gets scale 1 (scikit-learn's rule)."""
    sd = Z.std(axis=0)
    return Z.mean(axis=0), np.where(sd > 0, sd, 1.0)


def ridge_fit(Zs: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """argmin_{w,c} ‖y − Zs w − c‖² + α‖w‖² for centred columns Zs: w = (ZsᵀZs + αI)⁻¹ Zsᵀ(y − ȳ), c = ȳ."""
    ybar = float(y.mean())
    w = np.linalg.solve(Zs.T @ Zs + alpha * np.eye(Zs.shape[1]), Zs.T @ (y - ybar))
    return w, ybar


def _check_features(X, name: str, F: int | None = None) -> np.ndarray:
    X = as_2d(X, name)
    if X.shape[0] < 1 or X.shape[1] < 1 or (F is not None and X.shape[1] != F):
        raise fail(name, f"shape {X.shape}", f"(N ≥ 1, {F if F is not None else 'F ≥ 1'}) features")
    if not np.isfinite(X).all():
        raise fail(name, "non-finite values", "finite features")
    return X


def probe_fit(features, targets, config: ProbeConfig | None = None) -> Probe:
    """Fit g on rows ϕ (N, F) and targets (N,): [PCA per hidden block] → standardise → ridge; predictions clipped."""
    cfg = config or ProbeConfig()
    X = _check_features(features, "features")
    y = finite_vector(targets, "targets", X.shape[0])
    pca = (None, None)
    if cfg.hidden_dims is not None:
        dp, dr = cfg.hidden_dims
        if dp + dr > X.shape[1]:
            raise fail("hidden_dims", repr(cfg.hidden_dims), f"two blocks within the {X.shape[1]} features")
        pca = tuple(pca_fit(X[:, lo:hi], k) if k > 0 else None
                    for (lo, hi), k in (((0, dp), cfg.prompt_pca_dim), ((dp, dp + dr), cfg.response_pca_dim)))
    Z = project(X, pca, cfg.hidden_dims)
    mean, scale = standardize_fit(Z)
    coef, intercept = ridge_fit((Z - mean) / scale, y, cfg.alpha)
    return Probe(pca, cfg.hidden_dims, mean, scale, coef, intercept, (cfg.clip_min, cfg.clip_max))


def probe_predict(probe: Probe, features) -> np.ndarray:
    """v = clip(standardize(project(ϕ)) · w + c, clip_min, clip_max)  (M,)."""
    F = probe.mean.shape[0] if probe.hidden_dims is None else None
    X = _check_features(features, "features", F)
    Z = project(X, probe.pca, probe.hidden_dims)
    if Z.shape[1] != probe.mean.shape[0]:
        raise fail("features", f"shape {X.shape}", "the feature layout the probe was fitted on")
    return np.clip((Z - probe.mean) / probe.scale @ probe.coef + probe.intercept, *probe.clip)


def probe_targets(R: np.ndarray, g: np.ndarray, target: str = "leave_one_out") -> np.ndarray:
    """Training targets (B,): V_{−i} = mean of the other rollouts' rewards (``"leave_one_out"``, the code's
    "other_rollout_correctness"), or the group mean (``"group_mean"``, the code's "pair_average").
    A singleton has no leave-one-out target: its own reward is used (its row carries no sibling information)."""
    choice(target, "target", ("leave_one_out", "group_mean"))
    out = np.empty_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        for i in rows:
            others = rows[rows != i]
            out[i] = R[rows].mean() if target == "group_mean" or not len(others) else R[others].mean()
    return out


def poise_probe(features, targets, query, config: ProbeConfig | None = None) -> np.ndarray:
    """The registry entry ``poise_probe``: fit g on (features (N, F), targets (N,)), predict on query (M, F)."""
    probe = probe_fit(features, targets, config)
    return probe_predict(probe, _check_features(query, "query", as_2d(features, "features").shape[1]))


# ---------------------------------------------------------------------------- the cross-rollout advantage


def cross_rollout_baseline(v: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b_i = (1/(G−1)) Σ_{j∈group(i), j≠i} v_j and the group size G_i, both (B,); b = 0 for a singleton."""
    b, size = np.zeros_like(v), np.zeros_like(v)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        size[rows] = len(rows)
        for i in rows:
            others = rows[rows != i]
            b[i] = v[others].mean() if len(others) else 0.0
    return b, size


def cross_rollout_advantage(R: np.ndarray, v: np.ndarray, g: np.ndarray, cfg: POISEConfig) -> np.ndarray:
    """Â_i = R_i − b_i = (1/(G−1)) Σ_{j≠i} (R_i − v_j)  (B,); singletons per ``cfg.singleton``."""
    A = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        for i in rows:
            others = rows[rows != i]
            A[i] = (R[i] - v[others]).mean() if len(others) else (R[i] if cfg.singleton == "raw" else 0.0)
    return A


def same_rollout_advantage(R: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Â_i = R_i − g(ϕ_i): the rollout's own prediction as baseline — biased (module docstring); for contrast."""
    return R - v


def poise_advantage(rewards, group, mask, config: POISEConfig | None = None, values=None) -> np.ndarray:
    """POISE advantage (B, T): reward minus the mean probe prediction of the prompt's other rollouts.

    Args: rewards (B,) float; group (B,) int prompt ids; mask (B, T) bool; values (B,) the probe's prediction
    g(ϕ_i) for each rollout (finite). values=None: the code's bootstrap phase, where the other rollouts' rewards
    stand in for their predictions (RLOO).
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or POISEConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    v = R if values is None else finite_vector(values, "values", R.shape[0])
    return broadcast_to_tokens(cross_rollout_advantage(R, v, g, cfg), M)


# ---------------------------------------------------------------------------- online buffer and allocation


@dataclass(frozen=True)
class ProbeBuffer:
    """Training rows of the probe: features (N, F), targets (N,), group ids (N,), oldest first."""

    features: np.ndarray
    targets: np.ndarray
    group: np.ndarray


def buffer_update(buf: ProbeBuffer | None, features, targets, group, max_rows: int) -> ProbeBuffer:
    """Append one step's rows, then drop the oldest complete prompt groups while more than max_rows remain
    (``RecentDomainBuffer`` / ``_trim_buffer_rows`` in the code). A prompt group is a run of consecutive rows with
    the same id (pass each step's rows grouped). Returns a new buffer; ``buf`` is unchanged."""
    X = _check_features(features, "features", None if buf is None else buf.features.shape[1])
    y = finite_vector(targets, "targets", X.shape[0])
    g = group_ids(group, X.shape[0])
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise fail("max_rows", repr(max_rows), "an integer ≥ 1")
    if buf is not None:
        X, y = np.concatenate([buf.features, X]), np.concatenate([buf.targets, y])
        g = np.concatenate([buf.group, g])
    # a group's rows are contiguous in arrival order per step; drop whole groups from the front
    starts = [0] + [i for i in range(1, len(g)) if g[i] != g[i - 1]]
    cut = 0
    for s in starts:
        if len(g) - s <= max_rows:
            cut = s
            break
    else:
        cut = len(g)
    return ProbeBuffer(X[cut:], y[cut:], g[cut:])


def allocation_covariance(Sigma_w: np.ndarray, Sigma_b: np.ndarray, n: int, m: int) -> np.ndarray:
    """Prop. 1: Cov ĝ = Σ_w / B + (m/B) Σ_b, B = n·m (n prompts × m rollouts; Z i.i.d. given the prompt)."""
    B = n * m
    return Sigma_w / B + (m / B) * Sigma_b


# ---------------------------------------------------------------------------- conformance inputs


def make_inputs(rng: np.random.Generator) -> dict:
    """Mostly pairs (the paper's G = 2), some larger groups and singletons; binary rewards, probe values in [0, 1]."""
    sizes = rng.choice([1, 2, 2, 2, 3, 4], size=int(rng.integers(1, 7)))
    group = np.repeat(rng.permutation(40)[:len(sizes)] - 20, sizes)
    B, T = len(group), int(rng.integers(1, 6))
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if rng.random() < 0.7 else rng.random(B)
    lengths = rng.integers(0, T + 1, size=B)
    return {"rewards": rewards, "group": group, "mask": np.arange(T)[None, :] < lengths[:, None],
            "values": rng.random(B)}


def make_probe_inputs(rng: np.random.Generator) -> dict:
    """Features from a latent difficulty plus noise (N in 6..40, F in 1..8), targets in [0, 1], query rows."""
    N, F, Mq = int(rng.integers(6, 41)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
    W = rng.normal(size=F)
    z = rng.normal(size=N + Mq)
    X = z[:, None] * W[None, :] + rng.normal(scale=0.5, size=(N + Mq, F)) + rng.normal(scale=3.0, size=F)
    y = (rng.random(N) < 1 / (1 + np.exp(-2 * z[:N]))).astype(np.float64)
    out = {"features": X[:N], "targets": y, "query": X[N:]}
    if F >= 4 and rng.random() < 0.5:  # the code's variant: PCA of the two hidden blocks, a larger α
        out["config"] = {"prompt_pca_dim": 1, "response_pca_dim": 2, "hidden_dims": (2, 2), "alpha": 100.0}
    return out


_CODE = "holi-lab/POISE"

register(Spec(
    name="poise", kind="advantage", family="baseline", paper=POISE_PAPER, status="implemented",
    summary="reward minus the value probe's mean prediction for the prompt's OTHER rollouts (cross-rollout baseline)",
    fn=poise_advantage, config_cls=POISEConfig, outputs=("adv",), make_inputs=make_inputs,
    extras={"probe_fit": probe_fit, "probe_predict": probe_predict, "poise_features": poise_features,
            "probe_targets": probe_targets, "cross_rollout_baseline": cross_rollout_baseline,
            "same_rollout_advantage": same_rollout_advantage, "buffer_update": buffer_update,
            "allocation_covariance": allocation_covariance,
            "conformance_configs": lambda: [("singleton=raw", {"singleton": "raw"}, None)]},
    equations=(
        Equation("cross-baseline", "b_i = (1/(G−1)) Σ_{j≠i} g(ϕ_j)  (G = 2: b_1 = g(ϕ_2), b_2 = g(ϕ_1))",
                 "arXiv 2605.07579 abstract (cross-rollout construction); official code "
                 f"{_CODE} src/poise/core.py compute_group_targets_and_cross_baselines", "official-code",
                 "cross_rollout_baseline", note="the code generalises the pair swap to the mean of the G−1 siblings"),
        Equation("poise-adv", "Â_i = R_i − b_i, no std normalisation, broadcast over the response",
                 f"official code {_CODE} src/poise/trainer.py _compute_poise_advantages; config/poise_fsdp.yaml "
                 "(norm_adv_by_std_in_grpo: false)", "official-code", "cross_rollout_advantage",
                 note="the code refuses groups of one rollout; here singleton='zero' (default) or 'raw'"),
        Equation("loo-target", "V_{−i} = (1/(G−1)) Σ_{j≠i} R_j  (G = 2: the partner's reward)",
                 f"official code {_CODE} core.py (target_mode other_rollout_correctness); our notes papers_A §13",
                 "official-code", "probe_targets", note="the code's alternative pair_average is target='group_mean'"),
        Equation("probe", "g(ϕ) = clip(w·(ϕ − μ)/σ + ȳ, 0, 1), w = (ZᵀZ + αI)⁻¹Zᵀ(y − ȳ), α = 0.01",
                 f"official code {_CODE} src/poise/estimator.py fit_estimator (StandardScaler + Ridge, clip) ; "
                 "α = 0.01 per the paper (our notes) and the code's EstimatorFitConfig default", "official-code",
                 "probe_fit", note="the Qwen3-4B config uses α = 100 with PCA 32/64 of the hidden blocks "
                                   "(options alpha, prompt_pca_dim, response_pca_dim, hidden_dims)"),
        Equation("features", "ϕ = [mean last-10 prompt states; mean last-10 response states; 3 mean token entropies]",
                 f"official code {_CODE} config/feature_builder_config_qwen3_4b.json (layer 19, last_n_mean n = 10; "
                 "output/reasoning/answer mean token entropy), trainer.py _rollout_entropy_features", "official-code",
                 "poise_features", note="input dim 2d + 3 as in our notes of the paper"),
        Equation("online-refit", "advantages fixed first; then refit g on the newest complete groups (≤ max_rows)",
                 f"official code {_CODE} trainer.py (poise_raw_advantages before _poise_bank.update), "
                 "domain_estimator_bank.py RecentDomainBuffer/_trim_buffer_rows", "official-code", "buffer_update",
                 note="the code keeps one probe per domain (math 4096, code 3072, other 3072 rows)"),
        Equation("unbiased", "E[(R_1 − g(ϕ_2)) ∇log π(y_1 ∣ x)] = ∇J;  same-rollout bias = −∇θ E[g(ϕ(x, y))]",
                 "arXiv 2605.07579 abstract ('preserve gradient unbiasedness'); the bias amount is our derivation",
                 "reconstructed", "same_rollout_advantage",
                 note="both checked by exact enumeration on a contextual softmax bandit"),
        Equation("prop1", "Cov ĝ = Σ_w/B + (m/B) Σ_b;  Corollary 1: non-decreasing in m at fixed B, min at m = 1",
                 "arXiv 2605.07579 Prop. 1, Corollary 1", "secondary", "allocation_covariance",
                 note="from our notes of the full text (papers_A §13 [V-text]); checked by exact enumeration"),
    ),
    properties=(
        "properties/test_poise.py::test_cross_rollout_baseline_is_unbiased: E ĝ = ∇J exactly (G = 2, 3; fitted "
        "probe; enumeration of prompts and rollouts)",
        "properties/test_poise.py::test_same_rollout_baseline_bias: E ĝ − ∇J = −∇θ E[g(ϕ)] (finite differences), "
        "non-zero",
        "properties/test_poise.py::test_perfect_same_rollout_probe_zeroes_the_update",
        "properties/test_poise.py::test_refit_before_advantages_biases: a probe refitted on the current batch "
        "breaks unbiasedness; the code's order (advantages first) keeps it",
        "properties/test_poise.py::test_prop1_variance_decomposition: Cov ĝ = Σ_w/B + (m/B)Σ_b (exact)",
        "properties/test_poise.py::test_corollary1_monotone_in_rollouts_per_prompt: Loewner order at fixed B",
        "properties/test_poise.py::test_advantage_cases: pair swap, values=None is RLOO, constant probe",
        "properties/test_poise.py::test_targets_are_leave_one_out_means",
        "properties/test_poise.py::test_features_pool_last_tokens_and_entropy_spans",
        "properties/test_poise.py::test_buffer_keeps_newest_complete_groups",
        "properties/test_poise.py::test_singletons_and_masks_defined",
        "properties/test_poise.py::test_bad_input_raises",
        "untested: the paper's empirical claims (matches DAPO with less compute; probe ≈ an LLM-scale value "
        "model) — need LLM training runs",
    ),
))

register(Spec(
    name="poise_probe", kind="tabular", family="baseline", paper=POISE_PAPER, status="implemented",
    summary="POISE's value probe: standardised closed-form ridge regression (optional PCA), predictions clipped",
    fn=poise_probe, config_cls=ProbeConfig, outputs=("values",), make_inputs=make_probe_inputs,
    extras={"probe_fit": probe_fit, "probe_predict": probe_predict, "pca_fit": pca_fit},
    equations=(
        Equation("probe", "g(ϕ) = clip(w·(ϕ − μ)/σ + ȳ, 0, 1), w = (ZᵀZ + αI)⁻¹Zᵀ(y − ȳ)",
                 f"official code {_CODE} src/poise/estimator.py fit_estimator", "official-code", "probe_fit",
                 note="σ = population std, constant columns scaled by 1 (scikit-learn); α = 0.01 paper default"),
        Equation("pca", "optional: hidden blocks → top-k principal components before standardising",
                 f"official code {_CODE} estimator.py fit_pca; config/estimator_fit_config_qwen3_4b.json (32, 64)",
                 "official-code", "pca_fit", note="exact SVD here; the code uses scikit-learn's randomised solver"),
    ),
    properties=(
        "properties/test_poise.py::test_probe_is_closed_form_ridge: = augmented least squares, zero gradient of "
        "the ridge objective, intercept = mean target",
        "properties/test_poise.py::test_probe_invariances: affine feature rescaling; α → ∞ gives the mean; full PCA "
        "with α → 0 gives the same predictions as no PCA",
        "properties/test_poise.py::test_bad_input_raises",
    ),
))

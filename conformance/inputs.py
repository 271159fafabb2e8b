"""Input generators for conformance cases (NumPy), shared with ``properties/strategies.py``.

Two families, per kind of registry entry (see :mod:`rlspec.reference.registry`):

* **named fixed cases** — deterministic batches that each exercise one hazard: ragged masks,
  fully-masked rows, an all-false mask, an empty batch (B = 0), masks with interior holes, singleton
  and negative/sparse group ids, extra all-padding columns, log-ratios of ±19.75 and ±50 and at the
  float32/bfloat16 overflow point of exp (±89, ±100), ratios beyond the dual-clip bound with both
  advantage signs, sequences of very different lengths; advantage batches with all-equal groups
  (also of non-dyadic rewards, whose float32 mean leaves a rounding residue), singletons, batch sizes
  that are not a multiple of the group size;
* **random cases** — seeded draws (:func:`random_batch`), and hypothesis strategies around the
  same generators (:func:`batches`), so a failing example can be replayed from its seed.

Batches hold every canonical input of the kind (``logp``, ``old_logp``, ``ref_logp``, ``adv``,
``mask``, ``group`` for policy losses and KL terms; ``rewards``, ``group``, ``mask`` for
advantages; ``values``, ``old_values``, ``returns``, ``mask`` for critic (value) losses); the harness passes
each entry only the arguments its reference function accepts.
Kinds without a default generator use the registry entry's ``make_inputs(rng)``.

Padding: a model's outputs at padded positions are finite and arbitrary, so by default every float
input holds finite, non-zero garbage of a plausible magnitude at masked positions
(:func:`fill_padding`: log-probabilities of a pad token, advantages, values, entropies drawn from the
case's generator). A framework that reads padding (a GAE that bootstraps from a padded critic value,
a normaliser that averages over padding) therefore shows. NaN/±inf/1e30 padding
(:func:`fill_garbage`) is its own named case, tagged ``"padding-nonfinite"``.

Tags: ``"extreme"`` marks batches whose log-ratios are ±20/±50 (not run in bfloat16, where a
log-ratio of 50 cannot even be represented to within 0.1); ``"overflow"`` marks the batches at the
overflow point of exp (±89, ±100; exactly representable in bfloat16, so run in every dtype);
``"garbage"`` marks batches with padded positions (finite garbage there); ``"padding-nonfinite"``
marks NaN/±inf/1e30 padding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

GARBAGE = (np.nan, np.inf, -np.inf, 1e30, -1e30)
#: kinds with a default generator here; other kinds need ``Spec.make_inputs``
DEFAULT_KINDS = ("policy_loss", "kl", "advantage", "value_loss")


class Named(NamedTuple):
    """A named fixed batch: ``name`` is part of the case id, ``tags`` feed reports and filters."""

    name: str
    inputs: dict[str, Any]
    tags: tuple[str, ...] = ()


# --------------------------------------------------------------------------- primitives
def fill_garbage(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``x`` with masked positions overwritten by NaN / ±inf / huge values."""
    out = np.array(x, dtype=np.float64, copy=True)
    pad = ~mask
    out[pad] = rng.choice(GARBAGE, size=int(pad.sum()))
    return out


def padding_values(field: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` finite garbage values of a plausible magnitude for padded positions of input ``field``.

    Log-probabilities (``*logp*``): negative, mostly −1…−15 (a pad token's log-probability under the model);
    entropies: 0…6 nats; anything else (advantages, values, returns, rewards, logits): normal with scale 3."""
    if "logp" in field or "logprob" in field:
        return -rng.gamma(2.0, 2.5, size=n)
    if "entrop" in field:
        return rng.uniform(0.0, 6.0, size=n)
    return rng.normal(scale=3.0, size=n)


def fill_padding(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, field: str = "") -> np.ndarray:
    """Copy of ``x`` with masked positions overwritten by finite garbage (:func:`padding_values`), as a
    model's outputs at padded positions are: finite, arbitrary, not zero."""
    out = np.array(x, dtype=np.float64, copy=True)
    pad = np.broadcast_to(~np.asarray(mask, bool).reshape(mask.shape + (1,) * (out.ndim - mask.ndim)), out.shape)
    out[pad] = padding_values(field, int(pad.sum()), rng)
    return out


def _pad(batch: dict[str, np.ndarray], keys, mask: np.ndarray, rng: np.random.Generator,
         garbage: bool | str) -> dict[str, np.ndarray]:
    """Padding of ``batch[keys]``: ``"finite"`` garbage, NaN/inf (``True`` or ``"nonfinite"``), or none (False)."""
    if garbage is False or garbage is None:
        return batch
    if garbage not in (True, "finite", "nonfinite"):
        raise ValueError(f"garbage: got {garbage!r}; expected 'finite', 'nonfinite', True (= 'nonfinite') or False")
    for k in keys:
        batch[k] = fill_padding(batch[k], mask, rng, k) if garbage == "finite" else fill_garbage(batch[k], mask, rng)
    return batch


def ragged_mask(rng: np.random.Generator, B: int, T: int, p_empty: float = 0.1) -> np.ndarray:
    """Right-padded response masks with random lengths; some rows fully masked (p_empty)."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.random(B) < p_empty] = 0
    return np.arange(T)[None, :] < lengths[:, None]


def lengths_mask(lengths, T: int) -> np.ndarray:
    """Right-padded mask (B, T) with the given per-row lengths."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def groups(rng: np.random.Generator, B: int) -> np.ndarray:
    """Arbitrary prompt ids: negative, sparse, with singleton groups; not necessarily contiguous."""
    n = int(rng.integers(1, B + 1))
    pool = rng.choice(np.arange(-50, 50), size=n, replace=False)
    return rng.choice(pool, size=B)


def contiguous_groups(B: int, G: int, start: int = 0) -> np.ndarray:
    """Rollouts of a prompt side by side in groups of ``G``; the last group is short if G ∤ B."""
    return start + np.arange(B) // G


def policy_batch(rng: np.random.Generator, B: int, T: int, *, log_ratio_scale: float = 0.3,
                 garbage: bool | str = True) -> dict[str, np.ndarray]:
    """A canonical policy-loss batch (logp, old_logp, ref_logp, adv, mask, group).

    ``garbage``: what padded positions hold — True / ``"nonfinite"`` NaN/±inf/1e30, ``"finite"`` finite
    garbage (:func:`fill_padding`, what the conformance cases use), False the drawn values."""
    mask = ragged_mask(rng, B, T)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    old_logp = logp + rng.normal(scale=log_ratio_scale, size=(B, T))
    ref_logp = logp + rng.normal(scale=log_ratio_scale, size=(B, T))
    g = groups(rng, B)
    adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)  # sequence advantage broadcast over tokens
    if rng.random() < 0.3:  # token-level advantages too
        adv = adv + rng.normal(scale=0.5, size=(B, T))
    batch = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp, "adv": adv, "mask": mask, "group": g}
    return _pad(batch, ("logp", "old_logp", "ref_logp", "adv"), mask, rng, garbage)


def outcome_batch(rng: np.random.Generator, B: int, T: int, *, binary: bool | None = None) -> dict[str, np.ndarray]:
    """An advantage-estimator batch: rewards (B,), group (B,), mask (B, T)."""
    binary = bool(rng.random() < 0.5) if binary is None else binary
    rewards = rng.integers(0, 2, size=B).astype(np.float64) if binary else rng.normal(size=B)
    return {"rewards": rewards, "group": groups(rng, B), "mask": ragged_mask(rng, B, T)}


# --------------------------------------------------------------------------- fixed policy / kl batches
def _policy(seed: int, B: int, T: int, *, mask: np.ndarray | None = None, log_ratio: np.ndarray | None = None,
            adv: np.ndarray | None = None, group: np.ndarray | None = None, garbage: bool | str = "finite",
            token_adv: bool = False) -> dict[str, np.ndarray]:
    """Deterministic policy batch; ``log_ratio`` (B, T) sets logp − old_logp and logp − ref_logp exactly."""
    rng = np.random.default_rng(seed)
    m = ragged_mask(rng, B, T, p_empty=0.0) if mask is None else np.asarray(mask, dtype=bool)
    logp = -rng.gamma(2.0, 1.0, size=(B, T))
    if log_ratio is None:
        old_logp = logp + rng.normal(scale=0.3, size=(B, T))
        ref_logp = logp + rng.normal(scale=0.3, size=(B, T))
    else:
        old_logp = logp - log_ratio
        ref_logp = logp - log_ratio[::-1, ::-1] if B * T > 1 else logp - log_ratio
    if adv is None:
        adv = np.repeat(rng.normal(size=(B, 1)), T, axis=1)
        if token_adv:
            adv = adv + rng.normal(scale=0.5, size=(B, T))
    g = np.arange(B) // 2 if group is None else np.asarray(group)
    batch = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp, "adv": np.asarray(adv, dtype=np.float64),
             "mask": m, "group": g.astype(np.int64)}
    return _pad(batch, ("logp", "old_logp", "ref_logp", "adv"), m, rng, garbage)


def _alternating(B: int, T: int, value: float) -> np.ndarray:
    """±value in a checkerboard, so both signs meet both advantage signs."""
    return value * np.where((np.arange(B)[:, None] + np.arange(T)[None, :]) % 2 == 0, 1.0, -1.0)


def fixed_policy_batches() -> list[Named]:
    """Named deterministic batches for ``policy_loss`` and ``kl`` entries."""
    out = [
        Named("basic", _policy(1, 4, 5, mask=np.ones((4, 5), bool), garbage=False)),
        Named("ragged-garbage", _policy(2, 6, 7, mask=lengths_mask([7, 3, 5, 1, 6, 2], 7)), ("garbage",)),
        Named("fully-masked-rows", _policy(3, 5, 4, mask=lengths_mask([4, 0, 2, 0, 3], 4)), ("garbage",)),
        Named("all-false-mask", _policy(4, 3, 4, mask=np.zeros((3, 4), bool)), ("garbage",)),
        Named("singleton-groups", _policy(5, 5, 4, group=np.array([3, 9, -2, 40, 7])), ("garbage",)),
        Named("sparse-negative-groups", _policy(6, 6, 5, group=np.array([-7, -7, 1000, 1000, 3, -7])),
              ("garbage",)),
        Named("extra-padding-columns", _policy(7, 4, 9, mask=lengths_mask([5, 2, 4, 3], 9)), ("garbage",)),
        # ±19.75, not ±20: a log-ratio exactly on a ±20 clamp (verl's, VESPO's, R2VPO's) is a tie (see _beyond_dual_clip)
        Named("log-ratio-20", _policy(8, 4, 6, mask=lengths_mask([6, 4, 5, 2], 6), log_ratio=_alternating(4, 6, 19.75)),
              ("extreme", "garbage")),
        Named("log-ratio-50", _policy(9, 4, 6, mask=lengths_mask([6, 3, 5, 6], 6), log_ratio=_alternating(4, 6, 50.0)),
              ("extreme", "garbage")),
        Named("beyond-dual-clip", _beyond_dual_clip(), ("garbage",)),
        Named("very-different-lengths", _policy(11, 3, 48, mask=lengths_mask([1, 48, 9], 48), token_adv=True),
              ("garbage",)),
        Named("token-level-adv", _policy(12, 5, 6, mask=lengths_mask([6, 5, 4, 6, 1], 6), token_adv=True),
              ("garbage",)),
        Named("on-policy", _policy(13, 4, 5, mask=lengths_mask([5, 3, 4, 2], 5), log_ratio=np.zeros((4, 5))),
              ("garbage",)),
        Named("single-token", _policy(14, 1, 1, mask=np.ones((1, 1), bool), garbage=False)),
        Named("zero-adv", _policy(15, 3, 4, mask=lengths_mask([4, 2, 3], 4), adv=np.zeros((3, 4))), ("garbage",)),
        Named("interior-holes", _policy(16, 4, 7, mask=INTERIOR_HOLES), ("garbage",)),
        Named("empty-batch", _policy(17, 0, 5, mask=np.zeros((0, 5), bool))),
        # the same batches as ragged-garbage / fully-masked-rows, with NaN/±inf/1e30 at padded positions
        Named("padding-nonfinite", _policy(2, 6, 7, mask=lengths_mask([7, 3, 5, 1, 6, 2], 7), garbage="nonfinite"),
              ("garbage", "padding-nonfinite")),
        Named("padding-nonfinite-empty-rows", _policy(3, 5, 4, mask=lengths_mask([4, 0, 2, 0, 3], 4),
                                                      garbage="nonfinite"), ("garbage", "padding-nonfinite")),
        Named("log-ratio-89", _overflow_batch(18, 89.0, both_sides=False), ("overflow", "garbage")),
        Named("log-ratio-100", _overflow_batch(19, 100.0, both_sides=True), ("overflow", "garbage")),
    ]
    return out


#: a multi-turn layout: tool output (masked) between response segments, and a row that starts masked
INTERIOR_HOLES = np.array([[1, 1, 0, 0, 1, 1, 0],
                           [1, 0, 1, 0, 1, 0, 0],
                           [0, 0, 1, 1, 1, 0, 1],
                           [1, 1, 1, 1, 1, 1, 1]], dtype=bool)


def _overflow_batch(seed: int, big: float, *, both_sides: bool) -> dict[str, np.ndarray]:
    """A 4×6 batch whose log-ratios sit at the overflow point of exp (e^88.7 > float32/bfloat16 max) on a few
    tokens and at mild values elsewhere; every log-prob is a multiple of 1/2 below 128 in magnitude, so it is
    exact in bfloat16 and the case means the same in every dtype.

    ``both_sides=False``: +big only where Â > 0 and −big only where Â < 0, i.e. only on the clipped side of
    PPO-type losses: the true loss is finite and small and the true gradient there is 0, so an inf or a NaN
    (exp overflow, then inf·0 in the backward of a clip/min) is the implementation's own.
    ``both_sides=True``: ±big against both advantage signs (the unclipped side too: the true loss is about
    |Â|·e^big, beyond float32 range for big = 100, where the harness then calls the case not applicable)."""
    rng = np.random.default_rng(seed)
    mild = np.array([0.5, -0.5, 0.0625, 1.0, -1.0, 0.375, -0.375, 0.0])  # off every clip bound (ratios 0.37…2.7)
    B, T = 4, 6
    lr = rng.choice(mild, size=(B, T))
    adv_rows = np.array([1.5, -0.75, 2.0, -1.25])
    if both_sides:
        hot = {(0, 1): big, (0, 4): -big, (1, 2): big, (1, 5): -big, (2, 0): -big, (3, 3): big}
    else:
        hot = {(0, 1): big, (0, 4): big, (1, 2): -big, (2, 0): big, (3, 3): -big}
    for (b, t), v in hot.items():
        lr[b, t] = v
    mask = lengths_mask([6, 6, 5, 4], T)
    base = -0.5 * rng.integers(1, 8, size=(B, T))  # logp of the lower-probability side: −0.5 … −3.5
    logp = np.where(lr >= 0, base, base - 0.5 * np.round(2 * np.abs(lr)))
    old_logp = logp - lr
    ref_lr = lr[::-1, ::-1]
    ref_logp = logp - ref_lr
    batch = {"logp": logp, "old_logp": old_logp, "ref_logp": ref_logp,
             "adv": np.repeat(adv_rows[:, None], T, axis=1), "mask": mask, "group": np.arange(B) // 2}
    return _pad(batch, ("logp", "old_logp", "ref_logp", "adv"), mask, rng, "finite")


def _beyond_dual_clip() -> dict[str, np.ndarray]:
    """Ratios 0.05 … 12 (beyond 1±ε, between and beyond the dual-clip bounds c = 3 and c = 10) against Â > 0 and Â < 0.

    Ties: no ratio of a fixed case sits on a clip boundary of a default config (1 ± 0.2, 1 + 0.28, c = 3 or 10,
    TRL's δ = 4, ...; tests/test_user_expectations_and_cells.py checks it), so that an implementation is never
    judged on a sub-gradient choice (torch splits a tie of min/max/clamp 50/50 or to one side, the paper does
    not say). Where rounding to float32/bfloat16 moves a value across a boundary, the perturbation rule of
    :mod:`rlspec.conformance.tolerances` accepts either branch."""
    r = np.array([0.05, 0.5, 0.9, 1.1, 1.5, 4.5, 12.0])  # 4.5 and 12, not 4 and 10: off δ = 4 and c = 10
    B, T = 4, r.size
    log_ratio = np.tile(np.log(r), (B, 1))
    adv = np.repeat(np.array([[1.3], [-0.7], [-2.0], [0.4]]), T, axis=1)
    return _policy(10, B, T, mask=lengths_mask([7, 7, 6, 5], T), log_ratio=log_ratio, adv=adv)


# --------------------------------------------------------------------------- fixed advantage batches
def _outcome(seed: int, rewards, group, lengths, T: int) -> dict[str, np.ndarray]:
    return {"rewards": np.asarray(rewards, dtype=np.float64), "group": np.asarray(group, dtype=np.int64),
            "mask": lengths_mask(lengths, T)}


def fixed_outcome_batches() -> list[Named]:
    """Named deterministic batches for ``advantage`` entries (rewards (B,), group (B,), mask (B, T))."""
    rng = np.random.default_rng(101)
    n = rng.normal(size=16)
    return [
        Named("basic", _outcome(1, n[:8], contiguous_groups(8, 4), [5, 3, 4, 5, 1, 2, 5, 4], 5)),
        Named("binary", _outcome(2, [1, 0, 0, 1, 1, 1, 0, 0], contiguous_groups(8, 4), [4] * 8, 4)),
        Named("all-equal-groups", _outcome(3, [1, 1, 1, 0, 0, 0, 0.5, 0.5, 0.5], contiguous_groups(9, 3),
                                           [3, 2, 3, 1, 3, 3, 2, 2, 3], 3)),
        Named("singletons", _outcome(4, n[:5], [10, 20, 30, 40, 50], [3, 3, 2, 3, 1], 3)),
        Named("size-not-multiple", _outcome(5, n[:7], contiguous_groups(7, 3), [4, 4, 2, 3, 4, 1, 4], 4)),
        Named("sparse-negative-groups", _outcome(6, n[3:9], [-7, 1000, -7, 3, 1000, -7], [2, 3, 3, 1, 2, 3], 3)),
        Named("fully-masked-rows", _outcome(7, n[:6], contiguous_groups(6, 3), [3, 0, 2, 0, 3, 1], 3)),
        Named("all-false-mask", _outcome(8, n[:4], contiguous_groups(4, 2), [0, 0, 0, 0], 3)),
        Named("single-rollout", _outcome(9, [0.7], [0], [2], 3)),
        Named("extra-padding-columns", _outcome(10, n[8:14], contiguous_groups(6, 2), [2, 3, 1, 2, 3, 2], 8)),
        Named("interleaved-groups", _outcome(11, n[:8], [0, 1, 0, 1, 0, 1, 0, 1], [2, 2, 2, 2, 2, 2, 2, 2], 2)),
        Named("large-group", _outcome(12, np.round(n[:16] * 4) / 4, np.zeros(16, int), [3] * 16, 3)),
        # groups of 7 identical non-dyadic rewards: a float32 mean of 7 copies of 0.7 / 0.35 / 1.3 is not exact, so
        # an implementation that divides the residue by a std of the same size gets a non-zero advantage
        Named("all-equal-non-dyadic", _outcome(13, np.repeat([0.7, 0.35, 1.3], 7), contiguous_groups(21, 7),
                                               [3, 1, 2, 3, 3, 2, 1] * 3, 3)),
        Named("interior-holes", {"rewards": n[:4].copy(), "group": contiguous_groups(4, 2),
                                 "mask": INTERIOR_HOLES.copy()}),
        Named("empty-batch", _outcome(14, np.zeros(0), np.zeros(0, int), np.zeros(0, int), 4)),
    ]


# --------------------------------------------------------------------------- fixed critic (value-loss) batches
def value_batch(rng: np.random.Generator, B: int, T: int, *, step: float = 0.3, mask: np.ndarray | None = None,
                garbage: bool | str = True) -> dict[str, np.ndarray]:
    """Critic batch: old predictions V_old, current V = V_old + step·noise, returns R near V_old; (B, T) each.
    ``garbage`` as in :func:`policy_batch`."""
    m = ragged_mask(rng, B, T) if mask is None else mask
    V_old = rng.normal(size=(B, T))
    V = V_old + step * rng.normal(size=(B, T))
    R = V_old + rng.normal(size=(B, T))
    out = _pad({"values": V, "old_values": V_old, "returns": R}, ("values", "old_values", "returns"), m, rng, garbage)
    return {**out, "mask": m}


def fixed_value_batches() -> list[Named]:
    """Named deterministic batches for ``value_loss`` entries (values, old_values, returns, mask)."""
    def vb(seed, B, T, lengths=None, mask=None, garbage="finite", **kw):
        m = np.ones((B, T), bool) if lengths is None else lengths_mask(lengths, T)
        m = m if mask is None else mask
        return value_batch(np.random.default_rng(seed), B, T, mask=m, garbage=garbage, **kw)

    return [
        Named("basic", vb(1, 4, 5, garbage=False)),
        Named("ragged-garbage", vb(2, 6, 7, [7, 3, 5, 1, 6, 2]), ("garbage",)),
        Named("fully-masked-rows", vb(3, 5, 4, [4, 0, 2, 0, 3]), ("garbage",)),
        Named("all-false-mask", vb(4, 3, 4, [0, 0, 0]), ("garbage",)),
        Named("large-steps", vb(5, 4, 6, [6, 4, 5, 2], step=2.0), ("garbage",)),
        Named("unchanged-values", vb(6, 3, 5, [5, 3, 4], step=0.0), ("garbage",)),
        Named("very-different-lengths", vb(7, 3, 48, [1, 48, 9]), ("garbage",)),
        Named("single-token", vb(8, 1, 1, garbage=False)),
        Named("interior-holes", vb(9, 4, 7, mask=INTERIOR_HOLES.copy()), ("garbage",)),
        Named("empty-batch", vb(10, 0, 5, mask=np.zeros((0, 5), bool))),
        Named("padding-nonfinite", vb(2, 6, 7, [7, 3, 5, 1, 6, 2], garbage="nonfinite"),
              ("garbage", "padding-nonfinite")),
    ]


def fixed_batches(kind: str) -> list[Named]:
    """Named deterministic batches for a kind with a default generator (empty list otherwise)."""
    if kind in ("policy_loss", "kl"):
        return fixed_policy_batches()
    if kind == "advantage":
        return fixed_outcome_batches()
    if kind == "value_loss":
        return fixed_value_batches()
    return []


# --------------------------------------------------------------------------- random batches
def random_batch(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """One random batch of a kind with a default generator (sizes and scales drawn from ``rng``)."""
    if kind in ("policy_loss", "kl"):
        B, T = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        scale = float(rng.choice([0.05, 0.3, 1.0, 3.0]))
        return policy_batch(rng, B, T, log_ratio_scale=scale, garbage="finite")
    if kind == "advantage":
        B, T = int(rng.integers(1, 13)), int(rng.integers(1, 6))
        batch = outcome_batch(rng, B, T)
        if rng.random() < 0.5:  # prompt-major groups of G with a short last group
            batch["group"] = contiguous_groups(B, int(rng.integers(1, 6)), start=int(rng.integers(-5, 5)))
        if rng.random() < 0.2:  # one all-equal group
            g0 = batch["group"][0]
            batch["rewards"][batch["group"] == g0] = float(rng.normal())
        return batch
    if kind == "value_loss":
        B, T = int(rng.integers(1, 7)), int(rng.integers(1, 8))
        return value_batch(rng, B, T, step=float(rng.choice([0.05, 0.3, 1.0])), garbage="finite")
    raise ValueError(f"kind: got {kind!r}; expected one of {DEFAULT_KINDS} (other kinds use Spec.make_inputs)")


# --------------------------------------------------------------------------- hypothesis strategies
def _st():
    from hypothesis import strategies as st

    return st


def seeds():
    """Strategy: a NumPy generator seeded by hypothesis (examples shrink and replay by seed)."""
    st = _st()
    return st.integers(0, 2**32 - 1).map(np.random.default_rng)


def batches(kind: str, make_inputs=None):
    """Strategy: random batches of ``kind`` (via :func:`random_batch`), or ``make_inputs(rng)`` if given."""
    gen = (lambda rng: make_inputs(rng)) if make_inputs is not None else (lambda rng: random_batch(kind, rng))
    return seeds().map(gen)


# --------------------------------------------------------------------------- padding of drawn inputs
def _nonfinite_padding_at(x: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Boolean (x.shape) where ``x`` holds NaN/±inf/|x| > 1e6 at a masked position, or None if ``x`` is not a
    float array shaped like the mask along its leading axes."""
    if not (isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating) and x.ndim >= mask.ndim
            and x.shape[:mask.ndim] == mask.shape):
        return None
    pad = np.broadcast_to(~mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)), x.shape)
    with np.errstate(invalid="ignore"):
        return pad & ~(np.abs(x) <= 1e6)


def finite_padding(inputs: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], bool]:
    """(copy of ``inputs`` with NaN/±inf/huge values at positions the ``mask`` excludes replaced by finite
    garbage (:func:`padding_values`), whether anything was replaced). Inputs without a boolean ``mask`` are
    returned as they are."""
    mask = inputs.get("mask") if isinstance(inputs, dict) else None
    if not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_):
        return inputs, False
    out, changed = dict(inputs), False
    for k, v in inputs.items():
        bad = _nonfinite_padding_at(v, mask)
        if bad is None or not bad.any():
            continue
        v = np.array(v, copy=True)
        v[bad] = padding_values(k, int(bad.sum()), rng)
        out[k], changed = v, True
    return out, changed

"""The probes' framework-agnostic checks (conformance/probes/core.py) on toy losses with known behaviour.

Each check must pass a correct PPO-clip written in torch and flag a loss built with one defect: reading
padding, normalising per micro-batch, a detached term, depending on row order, float32 overflow.
"""

import numpy as np
import pytest
import torch

from rlspec.conformance.probes import core


def ppo(b, eps=0.2, normalizer=None):
    """PPO-clip, token-mean over the batch (or over ``normalizer`` tokens)."""
    m = b["mask"]
    lr = torch.where(m, b["logp"] - b["old_logp"], torch.zeros_like(b["logp"]))
    r = torch.exp(lr)
    a = torch.where(m, b["adv"], torch.zeros_like(b["adv"]))
    per = -torch.minimum(r * a, r.clamp(1 - eps, 1 + eps) * a)
    n = m.sum() if normalizer is None else normalizer
    return (per * m).sum() / torch.clamp(torch.as_tensor(n, dtype=per.dtype), min=1)


def ppo_reads_padding(b):
    r = torch.exp(b["logp"] - b["old_logp"])  # ratio at padding too
    return -(r * b["adv"]).mean()  # mean over every position, padding included


def ppo_detached(b):
    return ppo({**b, "logp": b["logp"].detach()})


def ppo_order_dependent(b):
    return ppo(b) + 1e-3 * b["adv"][0, 0]


@pytest.fixture
def batch():
    return core.torch_batch(np.random.default_rng(0), B=6, T=7)


def test_batch_padding_is_finite_garbage(batch):
    """Masked positions carry finite non-zero values (what a trainer's tensors hold), not zeros."""
    m = batch["mask"]
    assert (~m).any()
    for k in ("logp", "old_logp", "adv", "values"):
        pad = batch[k].detach()[~m]
        assert torch.isfinite(pad).all() and (pad != 0).all()


def test_correct_loss_passes_every_check(batch):
    """Claim: a correct token-mean PPO passes padding width/values, permutation, FD gradient, dtype, and the
    micro-batch split with the global token count as normaliser, and matches the reference ppo entry."""
    for v in (core.check_padding_width(ppo, batch), core.check_padding_values(ppo, batch),
              core.check_permutation(ppo, batch), core.check_gradient(ppo, batch),
              core.check_dtype(ppo, batch, torch.float32), core.check_finite(ppo, batch),
              core.check_split(lambda sub, full: ppo(sub, normalizer=full["mask"].sum()), batch),
              core.compare_reference(ppo, batch, "ppo")):
        assert v.status == "ok", v


def test_reading_padding_is_flagged(batch):
    """A loss that averages over padded positions is flagged by the padding-width and padding-value checks."""
    assert core.check_padding_width(ppo_reads_padding, batch).status == "finding"
    assert core.check_padding_values(ppo_reads_padding, batch).status == "finding"


def test_local_normaliser_is_flagged_by_split(batch):
    """Token-mean per micro-batch (each micro-batch divides by its own token count) is not the full-batch mean."""
    v = core.check_split(lambda sub, full: ppo(sub), batch)
    assert v.status == "finding" and v.severity == "wrong value"


def test_detached_loss_is_no_gradient(batch):
    """A loss evaluated on detached log-probs changes with them but carries no gradient."""

    def half_detached(b):
        return ppo_detached(b) + 0.0 * b["logp"].sum()

    v = core.check_gradient(half_detached, batch)
    assert v.status == "finding" and v.severity == "no gradient"
    v = core.compare_reference(half_detached, batch, "ppo")
    assert v.status == "finding" and v.severity == "no gradient"


def test_row_order_dependence_is_flagged(batch):
    assert core.check_permutation(ppo_order_dependent, batch).status == "finding"


def test_float32_overflow_is_nan(batch):
    """At a log-ratio of 100 in float32 the unclamped exp overflows: check_finite reports NaN/inf."""
    b = core.clone(batch)
    lp = b["old_logp"].detach().clone()
    lp[0, 0] += 100.0
    b = core.clone(b, dtype=torch.float32, logp=lp.float())

    def unguarded(bb):
        r = torch.exp(bb["logp"] - bb["old_logp"])
        return -(r * bb["adv"] * bb["mask"]).sum() / bb["mask"].sum()

    v = core.check_finite(unguarded, b)
    assert v.status == "finding" and v.severity == "NaN"


def test_knob_space_and_combos():
    """Literal values, booleans and the default are enumerated; combos is the full product."""
    import dataclasses
    from typing import Literal

    @dataclasses.dataclass
    class Cfg:
        mode: Literal["a", "b", "c"] = "a"
        flag: bool = False
        level: Literal["token", "seq"] | None = None
        eps: float = 0.2

    space = core.knob_space(Cfg, extra={"eps": (0.1,)})
    assert space["mode"] == ("a", "b", "c") and space["flag"] == (False, True)
    assert set(space["level"]) == {None, "token", "seq"} and space["eps"] == (0.2, 0.1)
    assert len(core.combos(space)) == 3 * 2 * 3 * 2


def test_runner_reports_raise_nan_and_hang(monkeypatch):
    """A probe that raises, hangs or returns garbage is reported as an error and the run goes on."""
    import time
    import types

    def hang():
        time.sleep(5)
        return core.ok()

    mod = types.SimpleNamespace(DIST="numpy", probes=lambda: [
        core.Probe("toy", "defaults", "p", "raises", lambda: 1 / 0),
        core.Probe("toy", "defaults", "p", "hangs", hang),
        core.Probe("toy", "defaults", "p", "not a verdict", lambda: 3),
        core.Probe("toy", "defaults", "p", "fine", lambda: core.ok()),
    ])
    monkeypatch.setattr(core, "discover", lambda fws: {"toy": mod})
    out = core.run_probes(["toy"], timeout=0.5)
    assert [o.status for o in out] == ["error", "error", "error", "ok"]
    assert "ZeroDivisionError" in out[0].summary and "timed out" in out[1].summary


def test_findings_page_groups_probes_and_harness(tmp_path):
    """docs/findings.md: probe outcomes with the same framework/path/key are one row with their count; harness
    xfail cases with the same algorithm and reason are one row; deviations and passes are not findings."""
    from rlspec.conformance.probes import findings

    outs = [core.Outcome("fw", "1.0", "combination", "fw.loss", f"mode={m!r}", "finding", "wrong value",
                         "the loss depends on padding width", {}, "assert False" * (i + 1), "", "pad", 0.1)
            for i, m in enumerate("abc")]
    outs.append(core.Outcome("fw", "1.0", "defaults", "fw.loss", "defaults", "ok", "", "", {}, "", "", "", 0.1))
    core.save(outs, str(tmp_path / "probes.json"))
    rep = {"implementation": "fw", "version": "1.0", "results": [
        {"case_id": f"ppo/float32/c{i}", "algorithm": "ppo", "dtype": "float32", "status": "xfail", "output": "dlogp",
         "max_abs_err": 0.5, "reason": "clamps the ratio; https://example.org/issue/1", "reproduction": "x = 1"}
        for i in range(2)] + [
        {"case_id": "ppo/float64/d", "algorithm": "ppo", "dtype": "float64", "status": "deviation", "output": "loss",
         "max_abs_err": 0.1, "reason": "design"},
        {"case_id": "ppo/float64/p", "algorithm": "ppo", "dtype": "float64", "status": "pass", "output": "loss",
         "max_abs_err": 0.0, "reason": ""}]}
    (tmp_path / "all" / "fw").mkdir(parents=True)
    (tmp_path / "all" / "fw" / "report.json").write_text(__import__("json").dumps(rep))
    fs = findings.write(tmp_path / "findings.md", tmp_path / "probes.json", tmp_path / "all")
    assert len(fs) == 2
    probe = next(f for f in fs if f.source.startswith("probe"))
    harness = next(f for f in fs if f.source.startswith("harness"))
    assert probe.count == 3 and probe.reproduction == "assert False"
    assert harness.count == 2 and harness.severity == "wrong gradient"
    assert harness.upstream == "https://example.org/issue/1"
    text = (tmp_path / "findings.md").read_text()
    assert "| fw | 1.0 | 2 |" in text and "1 / 3 / 0 / 0" in text

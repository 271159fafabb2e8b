"""The source-call machinery of the probes (conformance/probes/sourced.py) on toy torch losses, no framework.

Claims checked: a finding's reproduction is the call's own source and fails with AssertionError on its own (fresh
interpreter, no rlspec); a finding whose reproduction does not fail is reported as a probe error, never as a
finding; two calls with different setups are compared with each one's own setup in the reproduction; comparisons
follow the internal precision in force; the upstream table matches on path, case and key fragments.
"""

import sys

import numpy as np
import pytest

from rlspec.conformance.probes import core, sourced

torch = pytest.importorskip("torch")

TOKEN_MEAN = """\
m = b["mask"].to(b["logp"].dtype)
loss = (SCALE * (b["logp"] - b["old_logp"]) * b["adv"] * m).sum() / m.sum()
"""
READS_PADDING = """\
loss = (SCALE * (b["logp"] - b["old_logp"]) * b["adv"]).mean()   # every position, padding included
"""


@pytest.fixture
def batch():
    return core.torch_batch(np.random.default_rng(0), B=6, T=7)


def test_correct_call_passes_every_kind(batch):
    """Claim: a correct token-mean loss passes every check probes_for runs (reference: its own closed form)."""
    call = sourced.SourceCall("SCALE = 1.0", TOKEN_MEAN)

    def reference(b):
        a = core.to_numpy(b)
        m = a["mask"].astype(float)
        return float(((a["logp"] - a["old_logp"]) * a["adv"] * m).sum() / m.sum()), a["adv"] * m / m.sum()

    kinds = [k for k in sourced.KINDS if k not in ("split", "bfloat16")]
    probes = sourced.probes_for("toy", "toy.loss", call, "defaults", "token-mean", lambda: core.clone(batch), kinds,
                                reference=reference, ref_label="closed form")
    assert [p.check().status for p in probes] == ["ok"] * len(kinds)


def test_finding_reproduction_fails_alone(batch):
    """Claim: a loss that reads padding is flagged, and its reproduction (call source + literals + assert) fails
    with AssertionError in a fresh interpreter without rlspec on the path."""
    v = sourced.check_padding_values(sourced.SourceCall("SCALE = 1.0", READS_PADDING), batch, "toy: reads padding")
    assert v.status == "finding" and v.key == "reads-padding-value", v
    assert "SCALE = 1.0" in v.reproduction and "rlspec" not in v.reproduction
    assert sourced.run_reproductions([v.reproduction], sys.executable)[0][0] == "AssertionError"


def test_unreproducible_finding_is_an_error(batch):
    """Claim: when the reproduction does not fail (here the loss reads padding only inside the probe's own
    namespace, not when run as a script), the verdict is an error, not a finding."""
    call = sourced.SourceCall("SCALE = 1.0 if __name__ != '__main__' else 0.0", READS_PADDING)
    v = sourced.check_padding_values(call, batch, "toy: reads padding only under the probe")
    assert v.status == "error" and "did not reproduce" in v.summary, v


def test_second_call_keeps_its_own_setup(batch):
    """Claim: two calls that differ only in their setup (a config value) disagree, and the reproduction builds
    the second one from its own setup (with the first one's it would agree and not fail: an error)."""
    a = sourced.SourceCall("SCALE = 1.0", TOKEN_MEAN)
    b = sourced.SourceCall("SCALE = 2.0", TOKEN_MEAN)
    v = sourced.check_agree(a, b, batch, "toy: SCALE 1 vs 2", "the two settings differ", key="toy-agree")
    assert v.status == "finding" and v.severity == "wrong value", v
    same = sourced.check_differs(a, sourced.SourceCall("SCALE = 1.0\nUNUSED = 5", TOKEN_MEAN), batch, "toy",
                                 "UNUSED changes nothing", key="toy-knob")
    assert same.status == "finding", same


def test_internal_precision_sets_the_tolerance(batch):
    """Claim: a float32-size relative error (1e-6) in a float64 loss is a finding at float64 tolerance and passes
    when the framework's documented internal precision is float32."""
    exact = sourced.SourceCall("SCALE = 1.0", TOKEN_MEAN)
    off = sourced.SourceCall("SCALE = 1.0 + 1e-6", TOKEN_MEAN)
    assert sourced.check_agree(exact, off, batch, "toy", "scaled", key="k").status == "finding"
    with core.internal_precision("float32"):
        assert sourced.check_agree(exact, off, batch, "toy", "scaled", key="k").status == "ok"
    assert core.compared_as("float64") == "float64"


def test_upstream_lookup_matches_every_fragment():
    """Claim: a row matches when each of its path/case/key fragments (parts joined by &) occurs; first row wins;
    no match is "" (not searched)."""
    table = (("loss('a')", "", "", "url-a"), ("", "split", "bnpo&grad", "url-b"), ("", "", "bnpo", "none found"))
    assert sourced.upstream_for(table, "x.loss('a')", "anything") == "url-a"
    assert sourced.upstream_for(table, "x", "micro split", "bnpo/token|grad") == "url-b"
    assert sourced.upstream_for(table, "x", "micro split", "bnpo/token|value") == "none found"
    assert sourced.upstream_for(table, "x", "case", "dapo") == ""

"""Probes of trl (rlspec.conformance.probes.trl): enumeration covers every run kind, every finding carries a
reproduction that fails on the installed version with AssertionError (executed in a subprocess), and the
enumeration re-finds behaviours already documented in conformance/expectations/ (without naming them)."""

import sys

import pytest

pytestmark = pytest.mark.peers

probes_mod = pytest.importorskip("rlspec.conformance.probes.trl")
core = pytest.importorskip("rlspec.conformance.probes.core")


@pytest.fixture(scope="module")
def outcomes():
    pytest.importorskip({"trl": "trl", "openrlhf": "openrlhf", "liger": "liger_kernel"}[probes_mod.FRAMEWORK])
    return core.run_probes([probes_mod.FRAMEWORK], timeout=120)


def test_every_run_kind_is_enumerated(outcomes):
    """Claim: the module enumerates defaults, combinations, inputs, padding and self probes."""
    runs = {o.run for o in outcomes}
    assert {"defaults", "combination", "input", "padding", "self"} <= runs, runs
    assert not [o for o in outcomes if o.status == "error"], [o.summary for o in outcomes if o.status == "error"][:5]


def test_findings_reproduce_in_a_subprocess(outcomes):
    """Claim: every finding's reproduction, run alone (framework + numpy/torch), fails with AssertionError."""
    found = [o for o in outcomes if o.status == "finding"]
    assert found
    assert all(o.reproduction and o.severity in core.SEVERITIES and o.summary for o in found)
    from rlspec.conformance.probes.sourced import run_reproductions

    verdicts = run_reproductions([o.reproduction for o in found], sys.executable, timeout=1200)
    bad = [(o.case, v) for o, v in zip(found, verdicts) if v[0] != "AssertionError"]
    assert not bad, bad[:5]


def test_refinds_documented_behaviours(outcomes):
    """Claim: the enumeration re-finds the SAPO float32-temperature difference documented in
    conformance/expectations/trl-1.16.0.txt (it is not named anywhere in the probe module)."""
    keys = {o.key for o in outcomes if o.status == "finding"}
    assert any(k.startswith("sapo/") and "ref" in k for k in keys), sorted(keys)

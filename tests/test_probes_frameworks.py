"""Probes of TRL, OpenRLHF and Liger-Kernel (rlspec.conformance.probes.<framework>): the enumeration covers every
run kind without a broken probe, every finding carries a reproduction that fails on the installed version with
AssertionError (run alone in a fresh interpreter), and the enumeration re-finds behaviours already documented in
conformance/expectations/ (without naming them in the probe modules). verl and AReaL have their own files."""

import importlib.util
import sys

import pytest

from rlspec.conformance.probes import core

pytestmark = pytest.mark.peers

DIST_MODULE = {"trl": "trl", "openrlhf": "openrlhf", "liger": "liger_kernel"}


def _sapo_ref(keys):  # conformance/expectations/trl-1.16.0.txt: SAPO's float32 temperatures
    return any(k.startswith("sapo/") and "ref" in k for k in keys)


def _luspo_padding(keys):  # conformance/expectations/liger-0.8.5.txt: token-level luspo reads padding
    return any(k.startswith("luspo/token") and "padding" in k for k in keys)


def _openrlhf_known(keys):  # openrlhf-0.11.2.txt: NaN on a batch without valid tokens; whitened constant batch
    return any("no valid token" in k and "finite" in k for k in keys) and \
        any("all-equal float32 group" in k for k in keys)


DOCUMENTED = {"trl": _sapo_ref, "liger": _luspo_padding, "openrlhf": _openrlhf_known}
_CACHE: dict = {}


def outcomes(framework):
    if importlib.util.find_spec(DIST_MODULE[framework]) is None:
        pytest.skip(f"{framework} is not installed")
    if framework not in _CACHE:
        _CACHE[framework] = core.run_probes([framework], timeout=120)
    return _CACHE[framework]


@pytest.mark.parametrize("framework", sorted(DIST_MODULE))
def test_every_run_kind_is_enumerated(framework):
    """Claim: the module enumerates defaults, combinations, inputs, padding and self probes, none of them broken."""
    outs = outcomes(framework)
    assert set(core.RUNS) <= {o.run for o in outs}
    assert not [o for o in outs if o.status == "error"], [o.summary for o in outs if o.status == "error"][:5]


@pytest.mark.parametrize("framework", sorted(DIST_MODULE))
def test_findings_reproduce_in_a_subprocess(framework):
    """Claim: every finding's reproduction, run alone (framework + numpy/torch), fails with AssertionError."""
    from rlspec.conformance.probes.sourced import run_reproductions

    found = [o for o in outcomes(framework) if o.status == "finding"]
    assert found
    assert all(o.reproduction and o.severity in core.SEVERITIES and o.summary for o in found)
    verdicts = run_reproductions([o.reproduction for o in found], sys.executable, timeout=1200)
    bad = [(o.case, v) for o, v in zip(found, verdicts) if v[0] != "AssertionError"]
    assert not bad, bad[:5]


@pytest.mark.parametrize("framework", sorted(DIST_MODULE))
def test_refinds_documented_behaviours(framework):
    """Claim: the enumeration re-finds what the framework's expectation file records by hand."""
    keys = {o.key for o in outcomes(framework) if o.status == "finding"}
    assert DOCUMENTED[framework](keys), sorted(keys)

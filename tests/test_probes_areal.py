"""Probes of AReaL 1.0.4 (conformance/probes/areal.py), run as ``rlspec probe`` runs them.

Claims checked: the enumeration produces all five run kinds and reaches every PPOActorConfig loss switch,
RejectionSamplingConfig choice, NormConfig level and KL estimator; no probe breaks; behaviours recorded in
conformance/expectations/areal-1.0.4.txt and upstream are found again (the enumeration is not told them); a
correct default call passes; and every finding's reproduction, run alone in a fresh interpreter with only
AReaL, NumPy and torch, fails with AssertionError on the installed version.
"""

from __future__ import annotations

import collections
import importlib.util
import sys

import pytest

pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(importlib.util.find_spec("areal") is None, reason="areal is not installed")]


@pytest.fixture(scope="module")
def outcomes():
    from rlspec.conformance.probes import core

    return core.run_probes(["areal"], timeout=120)


def _findings(outcomes, path_part="", key_part="", case_part=""):
    return [o for o in outcomes if o.status == "finding" and path_part in o.path and key_part in o.key
            and case_part in o.case]


def test_every_run_kind_is_produced(outcomes):
    """Claim: the AReaL module yields defaults, combination, input, padding and self probes."""
    from rlspec.conformance.probes import core

    assert set(collections.Counter(o.run for o in outcomes)) == set(core.RUNS)


def test_no_probe_breaks(outcomes):
    """Claim: every probe returns a verdict (a refusal of AReaL is "unsupported", never a probe error)."""
    errors = [(o.path, o.case, o.summary) for o in outcomes if o.status == "error"]
    assert not errors, errors[:5]


def test_enumeration_reaches_every_choice(outcomes):
    """Claim: the loss switches, every RejectionSamplingConfig level/action/metric, both importance-sampling
    levels, every NormConfig mean/std level and every KL estimator have probes (read from AReaL's config
    metadata and source, not listed by hand)."""
    cases = " ".join(o.case for o in outcomes)
    for s in ("use_sapo_loss=True", "use_decoupled_loss=True", "m2_threshold=0.04",
              "importance_sampling_level='sequence'", "'level': 'sequence'", "'action': 'clamp'",
              "'metric': 'kl_k3'", "mean_level='batch'", "std_level=None", "mean_leave1out=True",
              "KLEstimator('k3'"):
        assert s in cases, s


def test_hand_recorded_behaviours_are_found_again(outcomes):
    """Claim: the enumeration re-finds an empty mask giving a NaN critic loss (areal-1.0.4.txt) and, recorded
    upstream, group normalisation of a batch that is not a multiple of the group size (the trailing rows are
    divided by eps) and M2PO's dependence on the micro-batch split."""
    assert _findings(outcomes, "ppo_critic_loss_fn", "nonfinite-loss", "no-valid-token")
    bad_tail = _findings(outcomes, "Normalization", "", "not-multiple-of-group")
    assert any(o.severity == "wrong value" and o.measured.get("max_abs_err", 0) > 100 for o in bad_tail)
    assert _findings(outcomes, "grpo_loss_fn", "split-value", "m2_threshold")


def test_correct_calls_pass(outcomes):
    """Claim: the checks do not flag what is right: AReaL's PPO loss with PPOActorConfig defaults equals the PPO
    paper's objective, the engine's token-weighted micro-batches add up to the full batch, and the trainer's
    advantages with no normalisation and no KL are the outcome reward."""
    ok = {(o.path, o.case): o.status for o in outcomes}
    path = "areal.trainer.ppo.actor.grpo_loss_fn (dispatch)"
    assert ok[(path, "defaults vs paper ppo [random]")] == "ok"
    base = "c_clip=None, eps_clip_higher=None, importance_sampling_level='token', use_sapo_loss=False"
    assert ok[(path, f"{base}: uneven micro-batches with the engine's token weights")] == "ok"
    assert ok[("areal.trainer.ppo.actor.PPOActor._compute_advantages", "no normalisation, no KL")] == "ok"


def test_findings_are_complete(outcomes):
    """Claim: every finding carries a severity from the list, a one-sentence summary and a reproduction that
    ends in an assert and does not need rlspec."""
    from rlspec.conformance.probes import core

    found = _findings(outcomes)
    assert found
    for o in found:
        assert o.severity in core.SEVERITIES, o
        assert o.summary and "\n" not in o.summary, o.summary
        assert "assert " in o.reproduction and "rlspec" not in o.reproduction, (o.path, o.case)


def test_reproductions_fail_on_the_pinned_version(outcomes):
    """Claim: each finding's reproduction, run on its own (fresh interpreter, no rlspec on the path), fails with
    AssertionError on the installed AReaL."""
    from rlspec.conformance.probes.sourced import run_reproductions

    scripts = sorted({o.reproduction for o in _findings(outcomes)})
    results = run_reproductions(scripts, sys.executable)
    bad = [(r, s[:300]) for s, r in zip(scripts, results) if r[0] != "AssertionError"]
    assert not bad, bad[:3]

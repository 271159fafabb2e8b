"""Probes of verl 0.9.1 (conformance/probes/verl.py), run as ``rlspec probe`` runs them.

Claims checked: the enumeration reaches every registered policy loss, advantage estimator, aggregation mode and
KL estimator and produces all five run kinds; no probe breaks (status "error"); behaviours recorded by hand in
conformance/expectations/verl-0.9.1.txt are found again by the enumeration (it is not told them); a correct
default call passes; and every finding's reproduction, run alone in a fresh interpreter with only verl, NumPy
and torch, fails with AssertionError on the installed version.
"""

from __future__ import annotations

import collections
import importlib.util
import sys

import pytest

pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="verl is not installed")]


@pytest.fixture(scope="module")
def outcomes():
    from rlspec.conformance.probes import core

    return core.run_probes(["verl"], timeout=120)


def _findings(outcomes, path_part="", key_part="", case_part=""):
    return [o for o in outcomes if o.status == "finding" and path_part in o.path and key_part in o.key
            and case_part in o.case]


def test_every_run_kind_is_produced(outcomes):
    """Claim: the verl module yields defaults, combination, input, padding and self probes, each with outcomes."""
    from rlspec.conformance.probes import core

    runs = collections.Counter(o.run for o in outcomes)
    assert set(runs) == set(core.RUNS), runs


def test_no_probe_breaks(outcomes):
    """Claim: every probe returns a verdict (a refusal of verl is "unsupported", never a probe error)."""
    errors = [(o.path, o.case, o.summary) for o in outcomes if o.status == "error"]
    assert not errors, errors[:5]


def test_enumeration_reaches_every_registered_knob(outcomes):
    """Claim: every policy loss and advantage estimator in verl's registries, every loss_agg_mode ActorConfig
    accepts and every kl_penalty estimator string has probes (introspected, not listed by hand)."""
    from verl.trainer.ppo import core_algos as ca

    paths = {o.path for o in outcomes}
    own = [k for k in ca.POLICY_LOSS_REGISTRY if not k.startswith("rlspec_")]  # not rlspec's own integration's
    assert len(own) >= 10, own
    for name in own:
        assert any(f"({name!r})" in p for p in paths) or (name == "bypass_mode" and any(
            "bypass_mode" in p for p in paths)), name
    for name in [k for k in ca.ADV_ESTIMATOR_REGISTRY if not k.startswith("rlspec_")]:
        assert any(f"get_adv_estimator_fn({name!r})" in p for p in paths), name
    cases = " ".join(o.case for o in outcomes)
    for mode in ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        assert f"loss_agg_mode={mode!r}" in cases, mode
    for kind in ("k1", "k2", "k3", "low_var_kl", "abs", "mse", "k3+"):
        assert f"kl_loss_type={kind!r}" in cases, kind


def test_hand_recorded_behaviours_are_found_again(outcomes):
    """Claim: the enumeration re-finds behaviours recorded by hand (verl-0.9.1.txt): SAPO ignores loss_agg_mode,
    an all-equal float32 group gets a non-zero GRPO advantage, an empty batch gives a NaN loss, RLOO's loop and
    vectorised estimators disagree on a group of one; and ones recorded upstream: geo_mean's loss grows with the
    number of micro-batches, grpo_vectorized ignores norm_adv_by_std_in_grpo under the trainer's dispatch."""
    assert _findings(outcomes, "('sapo')", "ref-value:sapo", "loss_agg_mode='token-mean'")
    assert _findings(outcomes, "('grpo')", "", "all-equal-groups-f32")
    assert _findings(outcomes, "('vanilla')", "nonfinite-loss", "no-valid-token")
    assert _findings(outcomes, "('rloo_vectorized')", "loop-vs-vec:rloo")
    assert _findings(outcomes, "('geo_mean')", "split-value")
    assert _findings(outcomes, "('grpo_vectorized')", "loop-vs-vec:grpo:norm_adv_by_std_in_grpo=False")


def test_correct_calls_pass(outcomes):
    """Claim: the checks do not flag what is right: verl's vanilla PPO loss with ActorConfig defaults equals the
    PPO paper's objective on ordinary ratios, and token-mean with the trainer's global counts adds up over
    micro-batches."""
    ok = {(o.path, o.case): o.status for o in outcomes}
    assert ok[("verl.trainer.ppo.core_algos.get_policy_loss_fn('vanilla')", "defaults vs paper ppo [random]")] == "ok"
    assert ok[("verl.trainer.ppo.core_algos.get_policy_loss_fn('vanilla')",
               "loss_agg_mode='token-mean': uneven micro-batches with ppo_loss's global counts")] == "ok"
    # seq-mean-token-sum-norm through ppo_loss: the default loss_scale_factor=None (padded width) is flagged, the
    # documented constant makes the loss independent of the padding width
    base = "policy_loss.loss_mode='vanilla', loss_agg_mode='seq-mean-token-sum-norm', "
    assert ok[("verl.workers.utils.losses.ppo_loss", base + "use_kl_loss=False: padding width")] == "finding"
    assert ok[("verl.workers.utils.losses.ppo_loss",
               base + "loss_scale_factor=16, use_kl_loss=False: padding width")] == "ok"


def test_findings_are_complete(outcomes):
    """Claim: every finding carries a severity from the list, a one-sentence summary and a reproduction that
    ends in an assert."""
    from rlspec.conformance.probes import core

    found = _findings(outcomes)
    assert found
    for o in found:
        assert o.severity in core.SEVERITIES, o
        assert o.summary and "\n" not in o.summary, o.summary
        assert "assert " in o.reproduction, (o.path, o.case)
        assert "rlspec" not in o.reproduction, (o.path, o.case)


def test_reproductions_fail_on_the_pinned_version(outcomes):
    """Claim: each finding's reproduction, run on its own (fresh interpreter, no rlspec on the path), fails with
    AssertionError: the assert of the correct behaviour does not hold on the installed verl."""
    from rlspec.conformance.probes.sourced import run_reproductions

    scripts = sorted({o.reproduction for o in _findings(outcomes)})
    results = run_reproductions(scripts, sys.executable)
    bad = [(r, s[:300]) for s, r in zip(scripts, results) if r[0] != "AssertionError"]
    assert not bad, bad[:3]

"""Registry sampler / curriculum entries plugged into the e2e loop (``rlspec.optimized.e2e.pipeline``).

Each adaptable entry runs 8 steps of the tiny ``repeat`` loop (``craft_gui``: ``repeateos`` k=3, whose target
length gives difficulty tiers) at 1 thread; the test checks that the run finishes with finite rewards and that
the hook acted: the sampled prompt distribution is not uniform where the entry says it should not be, or rollouts
/ tokens were filtered. Every sampler / curriculum entry of the registry is either adapted or has a stated reason.
About 10 s in all on the 2-core dev VM.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from rlspec.optimized.e2e import pipeline as P  # noqa: E402
from rlspec.optimized.e2e.loop import train  # noqa: E402
from rlspec.reference import registry  # noqa: E402

pytestmark = pytest.mark.e2e
STEPS = 8


def test_every_sampler_and_curriculum_entry_is_adapted_or_explained():
    names = set(registry.names(kind="sampler")) | set(registry.names(kind="curriculum"))
    assert names <= set(P.ADAPTERS) | set(P.NOT_ADAPTABLE), sorted(names - set(P.ADAPTERS) - set(P.NOT_ADAPTABLE))
    assert not set(P.ADAPTERS) & set(P.NOT_ADAPTABLE)
    with pytest.raises(KeyError, match="hint"):
        P.make("scaf_grpo")


def test_identity_filter_leaves_the_run_unchanged():
    base = train(steps=2, threads=1)
    same = train(steps=2, threads=1, rollout_filter=lambda x: x.mask.clone())
    assert base.reward == same.reward and base.loss == same.loss and base.kl == same.kl


@pytest.mark.parametrize("name", sorted(P.ADAPTERS))
def test_entry_runs_in_the_loop(name):
    h, a = P.run(name, steps=STEPS)
    assert len(h.reward) == STEPS and all(math.isfinite(r) for r in h.reward + h.loss + h.kl)
    if name == "mmr1_vas":
        assert a.refreshes == STEPS
        assert a.weights.max() - a.weights.min() > 1e-3  # VPS weights are not uniform
        assert len(np.unique(a.counts())) > 1
    elif name == "fg_expo":
        assert a.probs.max() - a.probs.min() > 1e-3  # the Gaussian weights moved away from uniform
        beta = registry.get("fg_expo").config().beta
        assert all(beta / 2 - 1e-12 <= b <= 0.881 * beta for b in a.beta_eff) and len(a.beta_eff) == STEPS
    elif name == "craft_gui":
        assert a.stages[0] == 0 and a.stages[-1] == 2  # the stage advanced every 3 steps
        early = np.concatenate(a.draws[:3])
        assert set(early.tolist()) <= {d for d in range(10) if a.tier[d] == 0}  # stage 0: easiest tier only
        assert (a.counts() > 0).all() or set(np.concatenate(a.draws[6:]).tolist()) & {2, 5, 8}
    else:  # rollout filters
        assert min(a.kept_token_frac) < 1.0, "the filter never dropped a token"
        assert len(a.kept_token_frac) == STEPS
        if name == "d3s":  # schedule: aggressive at the start, relaxed (everything) at the end
            assert a.kept_token_frac[0] < 0.5 and a.kept_token_frac[-1] == pytest.approx(1.0)
        if name == "high_entropy_mask":
            assert max(a.kept_token_frac) < 0.4
        if name == "dapo_dynamic_sampling":
            assert min(a.kept_rollout_frac) < 1.0


def test_filter_with_wrong_shape_is_rejected():
    with pytest.raises(Exception, match="rollout_filter"):
        train(steps=1, threads=1, rollout_filter=lambda x: torch.ones(1, 1, dtype=torch.bool))

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
from rlspec.optimized.e2e.loop import RolloutHook, sequence_logp, train  # noqa: E402
from rlspec.optimized.e2e.models import make_model  # noqa: E402
from rlspec.optimized.e2e.rollout import HFBackend  # noqa: E402
from rlspec.optimized.e2e.tasks import get_task  # noqa: E402
from rlspec.reference import registry  # noqa: E402

pytestmark = pytest.mark.e2e
STEPS = 8


def test_every_sampler_and_curriculum_entry_is_adapted_or_explained():
    names = set(registry.names(kind="sampler")) | set(registry.names(kind="curriculum"))
    assert names <= set(P.ADAPTERS) | set(P.NOT_ADAPTABLE), sorted(names - set(P.ADAPTERS) - set(P.NOT_ADAPTABLE))
    assert not set(P.ADAPTERS) & set(P.NOT_ADAPTABLE)
    for name in P.NOT_ADAPTABLE:  # only entries without an implementation are left out
        assert registry.get(name).status == "planned", name
    with pytest.raises(KeyError, match="planned"):
        P.make("m2po")


def test_identity_filter_leaves_the_run_unchanged():
    base = train(steps=2, threads=1)
    same = train(steps=2, threads=1, rollout_filter=lambda x: x.mask.clone())
    assert base.reward == same.reward and base.loss == same.loss and base.kl == same.kl


@pytest.mark.parametrize("name", sorted(n for n, a in P.ADAPTERS.items() if a[0] in ("prompt_sampler",
                                                                                     "rollout_filter")
                                       and n != "capo_curvature_mask"))
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


# ---------------------------------------------------------------------------------------------------------------
# rollout hooks, the minibatch filter, the warm-start stage (3-4 steps each, n = 8 prompts where it suffices)
# ---------------------------------------------------------------------------------------------------------------

def finite(h) -> bool:
    return all(math.isfinite(v) for v in h.reward + h.loss + h.kl)


def test_base_hooks_leave_the_run_unchanged():
    """Claim: a RolloutHook that keeps the batch and a minibatch filter keeping every token change nothing."""
    base = train(steps=2, threads=1)
    same = train(steps=2, threads=1, rollout_hook=RolloutHook(), minibatch_filter=lambda x: x.mask.clone())
    assert base.reward == same.reward and base.loss == same.loss and base.kl == same.kl


def test_backend_forced_tokens_and_per_token_temperature():
    """Claim: forced positions hold the forced ids with the log-prob the sampling distribution gives them, other
    positions are sampled with the same draws; a constant temperature_fn equals the scalar temperature."""
    model = make_model(seed=0)
    be = HFBackend(model)
    prompts = P.digit_pool()[:4]
    plain = be.generate(prompts, 2, 3, 1.0, seed=3)
    forced = torch.full((8, 3), -1, dtype=torch.int64)
    forced[:, 1] = 7
    ro = be.generate(prompts, 2, 3, 1.0, seed=3, forced=forced)
    assert (ro.responses[:, 1] == 7).all() and torch.equal(ro.responses[:, 0], plain.responses[:, 0])
    with torch.no_grad():
        lp = sequence_logp(model, ro.prompts, ro.responses, 1.0)
    assert torch.allclose(lp, ro.logp, atol=1e-5)
    const = be.generate(prompts, 2, 3, 0.7, seed=3, temperature_fn=lambda z, t: torch.full((z.shape[0],), 0.7))
    scalar = be.generate(prompts, 2, 3, 0.7, seed=3)
    assert torch.equal(const.responses, scalar.responses) and torch.allclose(const.logp, scalar.logp)
    with pytest.raises(Exception, match="forced"):
        be.generate(prompts, 2, 3, 1.0, forced=torch.zeros(1, 3, dtype=torch.int64))


def test_reference_answer_is_what_the_verifier_rewards():
    """Claim: the stand-in hints / inpainting spans come from responses the task's verifier scores 1."""
    for task in (get_task("repeat"), get_task("repeateos", k=3)):
        ans = P.reference_answer(task, P.digit_pool())
        m = ans >= 0
        assert (task.reward(P.digit_pool(), torch.where(m, ans, P.PAD), m) == 1).all()


def test_xrpo_allocates_the_budget_to_unequal_groups():
    """Claim: each step adds exactly the budget (0.5·n·G) of extra rollouts, groups become unequal, and the
    sharpened advantages differ from GRPO's on some rows; the run differs from the plain one."""
    n, G = 8, 8
    h, a = P.run("xrpo", steps=3, prompts_per_step=n)
    base = train(steps=3, threads=1, prompts_per_step=n)
    assert finite(h) and h.loss != base.loss
    assert all(e.sum() == n * G // 2 for e in a.extra)
    assert all(s.sum() == n * G * 3 // 2 for s in a.group_sizes) and any(len(set(s)) > 1 for s in a.group_sizes)
    assert sum(a.bonus_rows) > 0


def test_sapo_swarm_trains_on_filtered_external_items():
    """Claim: external items from the simulated nodes join the batch, none with all-equal rewards (the paper's
    zero-advantage filter)."""
    h, a = P.run("sapo_swarm", steps=3, prompts_per_step=8)
    assert finite(h) and sum(a.n_external) > 0 and max(a.n_external) <= 4
    assert sum(a.external_constant) == 0


def test_scaf_grpo_hints_after_the_exemption_and_replaces_failures():
    """Claim: no hint search during the exemption (⌈0.15·steps⌉ steps), then all-wrong groups are searched and a
    verified hinted rollout replaces one failure (replacements = groups whose search found a level)."""
    steps = 6
    h, a = P.run("scaf_grpo", steps=steps)
    exempt = math.ceil(0.15 * steps)
    assert finite(h) and a.active == [s >= exempt for s in range(steps)]
    assert all(e == 0 for e in a.eligible[:exempt]) and sum(a.eligible[exempt:]) > 0
    assert sum(a.replaced) > 0
    assert a.replaced == [sum(lv >= 0 for lv in levels) for levels in a.levels]


def test_igpo_inpainting_replaces_rollouts_of_all_wrong_groups():
    """Claim: correct inpainted responses replace rows of all-wrong groups (≤ 4 per group) and each replaced row
    keeps exactly one hint token in the loss (max(1, ⌊n·0.2⌋) with n ≤ 2 hint tokens)."""
    h, a = P.run("igpo_inpainting", steps=3, prompts_per_step=8)
    assert finite(h) and sum(a.replaced) > 0
    assert all(r <= 4 * w for r, w in zip(a.replaced, a.wrong_groups))
    assert a.hint_tokens_kept == a.replaced


def test_hapo_temperature_varies_per_token():
    """Claim: step 1 samples at T_base; later steps give tokens different temperatures within [0.9, 1.1] (code form,
    τ = 0.1), and the behaviour log-probs then differ from the trainer's one-temperature ones."""
    h, a = P.run("hapo_temperature", steps=3, prompts_per_step=8)
    base = train(steps=3, threads=1, prompts_per_step=8)
    assert finite(h) and a.t_min[0] == a.t_max[0] == 1.0
    assert all(0.9 - 1e-9 <= lo < hi <= 1.1 + 1e-9 for lo, hi in zip(a.t_min[1:], a.t_max[1:]))
    assert min(h.logp_mismatch[1:]) > 1e-3 > 1e-4 > max(base.logp_mismatch)


def test_ib_tpo_tree_shares_prefixes():
    """Claim: each prompt gets G = B0 + (L − 1)·K·B = 12 trajectories; the tree generates fewer tokens than the same
    trajectories sampled independently (budget identity)."""
    n = 4
    h, a = P.run("ib_tpo_score", steps=2, prompts_per_step=n)
    assert finite(h)
    assert all(flat == n * 12 * 3 for flat in a.tokens_flat)  # repeat: 3 tokens per trajectory
    assert all(tree < flat for tree, flat in zip(a.tokens_tree, a.tokens_flat))
    assert all(len(d) == n * 8 for d in a.branched_depth)  # 8 rounds × K = 1 × B = 1 per prompt


def test_capo_curvature_mask_reads_the_optimizer_and_depends_on_the_step_size():
    """Claim: the filter reads AdamW's moments of the LM head (its step count grows); at the trainer's lr = 1e-3 the
    recipe thresholds drop tokens; at the recipe's η = 1.5e-5 they drop none."""
    h, a = P.run("capo_curvature_mask", steps=3, prompts_per_step=8)
    assert finite(h) and a.adam_step[0] == 0 and a.adam_step[1] > 0
    assert max(a.kept_token_frac) < 1.0
    _, small = P.run("capo_curvature_mask", steps=2, prompts_per_step=8, adapter_kw=dict(lr=1.5e-5))
    assert min(small.kept_token_frac) == 1.0


def test_off_policy_sequence_mask_acts_only_after_updates():
    """Claim: nothing is dropped in a step's first minibatch (π_θ = π_old there); later minibatches drop sequences
    whose drift exceeds δ = 0.5."""
    h, a = P.run("off_policy_sequence_mask", steps=4)
    assert finite(h) and all(d[0] == 0 for d in a.dropped)
    assert sum(sum(d) for d in a.dropped) > 0 and max(a.max_drift) > 0.5


def test_promed_mcts_init_warm_starts_the_policy():
    """Claim: the MCTS + SFT stage changes the model RL starts from: the first step's reward is above the plain
    run's (same seed), and the SFT loss fell."""
    h, a = P.run("promed_mcts_init", steps=1)
    base = train(steps=1, threads=1)
    assert finite(h) and len(a.best) == 10 and all(len(y) == 3 for y, _, _ in a.best)
    assert a.sft_loss[-1] < a.sft_loss[0] and h.reward[0] > base.reward[0] + 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n, a in P.ADAPTERS.items() if a[0] in ("rollout_hook", "minibatch_filter",
                                                                                      "init")
                                       or n == "capo_curvature_mask"))
def test_new_adapters_complete_a_longer_run(name):
    """Claim: each adapter of a rollout hook, the minibatch filter, the curvature filter and the warm-start stage
    completes 20 steps with finite logs (state carried over many steps: trackers, EMA statistics, snapshots)."""
    h, _ = P.run(name, steps=20)
    assert len(h.reward) == 20 and finite(h)

"""FlashREINFORCE advantage: the outcome reward minus the mean reward of the whole rollout batch.

OpenRLHF, ``--algo.advantage.estimator flash_reinforce`` (``RemoteExperienceMaker.
compute_advantages_and_returns`` in ``openrlhf/trainer/ppo_utils/experience_maker.py``, OpenRLHF 0.11.2).
The framework cites no paper; it documents the estimator as the one for a single rollout per prompt
(``n_samples_per_prompt = 1``), where no prompt group exists to take a baseline from.

For B rollouts with scalar rewards R_1..R_B::

    Â_i = R_i − (1/B) Σ_j R_j                 broadcast over the response tokens of rollout i

No division by a standard deviation and no whitening afterwards (unlike ``reinforce_pp``). With the
KL penalty in the reward off (``kl_coef = 0``) and γ = 1, the framework's reward-to-go of the
outcome reward placed on the last valid token equals Â_i at every valid token, which is what this
function returns; a KL penalty folded into the rewards is :mod:`rlspec.reference.kl_in_reward`'s business.

Conventions: the mean runs over every rollout of the batch, also over rollouts whose mask is empty
(each still has a reward; OpenRLHF averages the whole reward tensor). Prompt ids (``group``) are
accepted for the ``advantage`` signature and not used. Defined cases: B = 1 gives Â = 0 (the batch
mean is the reward itself); masked positions are 0; an empty batch gives an empty (0, T) array.
"""

from __future__ import annotations

import numpy as np

from rlspec.reference.grpo import broadcast_to_tokens, validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

FLASH_REINFORCE_SOURCE = Paper(arxiv="", title="OpenRLHF: advantage_estimator='flash_reinforce'", year=2026,
                               url="https://github.com/OpenRLHF/OpenRLHF")


def batch_mean_baseline(R: np.ndarray) -> np.ndarray:
    """Â_i = R_i − mean_j R_j over the whole batch (B,); an empty batch gives an empty array."""
    if R.size == 0:
        return R.copy()
    return R - R.mean()


def flash_reinforce_advantage(rewards, group, mask, config=None) -> np.ndarray:
    """FlashREINFORCE advantage (B, T): R_i minus the batch-mean reward, on the valid tokens of rollout i.

    Args: rewards (B,) finite; group (B,) integer prompt ids (unused: the baseline ignores prompts);
    mask (B, T) bool. Returns: adv (B, T) float64, zero at masked positions.
    """
    R, _, M = validate_outcome(rewards, group, mask)
    return broadcast_to_tokens(batch_mean_baseline(R), M)


register(Spec(
    name="flash_reinforce", kind="advantage", family="framework", paper=FLASH_REINFORCE_SOURCE,
    status="implemented", summary="reward minus the whole-batch mean, no whitening",
    fn=flash_reinforce_advantage, outputs=("adv",),
    equations=(
        Equation("flash-reinforce", "Â_i = R_i − (1/B) Σ_j R_j, broadcast over the tokens of rollout i",
                 "OpenRLHF 0.11.2 experience_maker.py compute_advantages_and_returns (estimator 'flash_reinforce')",
                 "official-code", "batch_mean_baseline",
                 note="read in the framework that introduced it; the mean includes rollouts with an empty mask; "
                      "no std division and no advantage whitening follow"),
    ),
    properties=(
        "properties/test_flash_reinforce.py::test_advantages_sum_to_zero_over_the_batch",
        "properties/test_flash_reinforce.py::test_invariant_to_a_constant_reward_shift",
        "properties/test_flash_reinforce.py::test_prompt_ids_do_not_matter",
        "properties/test_flash_reinforce.py::test_equals_leave_one_out_scaled",
        "properties/test_flash_reinforce.py::test_baseline_keeps_the_policy_gradient_unbiased_up_to_1_over_B",
    ),
))

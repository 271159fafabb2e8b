"""REINFORCE++ and REINFORCE++-baseline: critic-free advantages with global batch normalisation.

Hu et al., "REINFORCE++: Stabilizing Critic-Free Policy Optimization with Global Normalization"
(earlier versions: "REINFORCE++: A Simple and Efficient Approach for Aligning Large Language Models"),
arXiv 2501.03262. Official code: OpenRLHF (``RemoteExperienceMaker.compute_advantages_and_returns``,
``openrlhf.models.utils.compute_reward``), estimators ``reinforce`` and ``reinforce_baseline``.

REINFORCE++ (one or more rollouts per prompt). For rollout i with outcome reward R_i, valid tokens
t = 0..L_i−1 and an optional per-token KL estimate KL_t (k1: log π_old − log π_ref)::

    r_t = 1[t = L_i − 1]·R_i − β·KL_t                         token reward (paper eq. 8-9 context)
    A_t = Σ_{s ≥ t} γ^{s−t} r_s                                return-to-go; γ = 1 gives R_i − β Σ_{s≥t} KL_s
    Â_t = (A_t − mean_𝒟 A) / std_𝒟 A                           global normalisation (paper eq. 10)

where mean_𝒟 and std_𝒟 run over every valid token of the whole batch 𝒟 (not per prompt).

REINFORCE++-baseline (G > 1 rollouts per prompt): the reward is first centred on its group,
R̃_i = R_i − mean_{j∈group(i)} R_j, then the same token rewards, returns and global normalisation.

Conventions exposed as config (paper silent; OpenRLHF / verl differ — see notes/peers.md):
  * ``ddof``: 0 (OpenRLHF, biased variance over tokens) or 1 (verl ``masked_whiten``, unbiased);
  * ``eps`` / ``eps_placement``: ``"clamp"`` 1/√max(var, ε) (OpenRLHF, ε = 1e-8, the default),
    ``"inside"`` 1/√(var + ε) (verl), ``"outside"`` 1/(std + ε);
  * ``std_normalize=False``: centre only (OpenRLHF ``--no_advantage_std_norm``);
  * ``gamma``: discount of the return (paper: γ = 1; OpenRLHF forces γ = 1 for the baseline variant);
  * ``discount_masked``: interior masked tokens (tool output) are skipped by default — the next step
    of a valid token is the next *valid* token (verl). ``True`` discounts across every position, as
    OpenRLHF does; both agree on right-padded masks;
  * ``kl_coef`` β, used only when a ``kl`` array is passed (default 0.01: OpenRLHF's ``--init_kl_coef`` in the
    versions we saw; some versions use 0.02 — the paper's value was not checked);
  * baseline ``singleton``: a group of one has R̃ = 0 (``"zero"``) or keeps R (``"raw"``, verl: mean := 0).

Defined cases: a batch with no valid token, or whose valid returns are all equal, has advantage 0
(never NaN); a row with no valid token gets no reward and advantage 0; masked positions are 0 and
never read (``kl`` may hold NaN there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlspec.reference._validate import choice, fail, in_range, masked_array, positive
from rlspec.reference.grpo import validate_outcome
from rlspec.reference.registry import Equation, Paper, Spec, register

RFPP_PAPER = Paper(arxiv="2501.03262", title="REINFORCE++: Stabilizing Critic-Free Policy Optimization with Global "
                   "Normalization", year=2025)

EPS_PLACEMENTS = ("clamp", "inside", "outside")


@dataclass(frozen=True)
class ReinforcePPConfig:
    """gamma: discount of the return-to-go. kl_coef: β of the per-token KL penalty (used when ``kl`` is given).
    ddof, eps, eps_placement, std_normalize: the global normalisation (see the module docstring).
    discount_masked: discount across interior masked positions too (OpenRLHF) instead of skipping them."""

    gamma: float = 1.0
    kl_coef: float = 0.01
    ddof: int = 0
    eps: float = 1e-8
    eps_placement: str = "clamp"
    std_normalize: bool = True
    discount_masked: bool = False

    def __post_init__(self) -> None:
        in_range(self.gamma, "gamma", 0.0, 1.0)
        positive(self.kl_coef, "kl_coef", allow_zero=True)
        if self.ddof not in (0, 1):
            raise fail("ddof", repr(self.ddof), "0 (biased variance) or 1 (unbiased variance)")
        positive(self.eps, "eps", allow_zero=True)
        choice(self.eps_placement, "eps_placement", EPS_PLACEMENTS)
        if not isinstance(self.std_normalize, (bool, np.bool_)):
            raise fail("std_normalize", repr(self.std_normalize), "True or False")
        if not isinstance(self.discount_masked, (bool, np.bool_)):
            raise fail("discount_masked", repr(self.discount_masked), "True or False")


@dataclass(frozen=True)
class ReinforcePPBaselineConfig(ReinforcePPConfig):
    """REINFORCE++-baseline; singleton: "zero" (R̃ = 0 for a group of one) or "raw" (R̃ = R, verl)."""

    singleton: str = "zero"

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.singleton, "singleton", ("zero", "raw"))


def last_valid_index(M: np.ndarray) -> np.ndarray:
    """Index of the last True of each row of M (B,); −1 for a row with no valid token."""
    T = M.shape[1]
    if T == 0:  # no tokens at all
        return np.full(M.shape[0], -1)
    has = M.any(axis=1)
    last = T - 1 - np.argmax(M[:, ::-1], axis=1)
    return np.where(has, last, -1)


def outcome_token_rewards(R: np.ndarray, M: np.ndarray, kl: np.ndarray | None, beta: float) -> np.ndarray:
    """r_t = 1[t = last valid token]·R − β·KL_t at valid tokens, 0 elsewhere; (B, T)."""
    r = np.zeros(M.shape)
    last = last_valid_index(M)
    rows = np.flatnonzero(last >= 0)
    r[rows, last[rows]] = R[rows]  # the outcome reward lands on the final response token
    if kl is not None:
        r = r - beta * np.where(M, kl, 0.0)
    return np.where(M, r, 0.0)


def discounted_returns(r: np.ndarray, M: np.ndarray, gamma: float, discount_masked: bool = False) -> np.ndarray:
    """A_t = Σ_{s ≥ t} γ^{(steps from t to s)} r_s at valid tokens, 0 at masked ones; (B, T).

    Steps count valid tokens only (masked positions are not actions), unless ``discount_masked``.
    """
    B, T = M.shape
    A = np.zeros((B, T))
    for b in range(B):
        G = 0.0  # return-to-go from the step after t
        for t in reversed(range(T)):
            if M[b, t]:
                G = r[b, t] + gamma * G
                A[b, t] = G
            elif discount_masked:
                G = gamma * G  # a masked position still counts as one discount step
    return A


def batch_normalize(A: np.ndarray, M: np.ndarray, ddof: int, eps: float, eps_placement: str,
                    std_normalize: bool = True) -> np.ndarray:
    """Â = (A − mean_𝒟 A) / std_𝒟 A over the valid tokens of the whole batch (paper eq. 10); (B, T).

    ``eps`` enters as ``eps_placement`` says. If there is no valid token, or all valid values are
    equal, the result is 0 (the numerator vanishes; no division by zero).
    """
    vals = A[M]
    N = vals.size
    if N == 0 or np.ptp(vals) == 0.0:
        return np.zeros(A.shape)
    mean = vals.mean()
    centred = np.where(M, A - mean, 0.0)
    if not std_normalize:
        return centred
    if N <= ddof:  # unreachable for ddof ≤ 1 (one value is all-equal), kept for clarity
        return np.zeros(A.shape)
    var = ((vals - mean) ** 2).sum() / (N - ddof)
    if eps_placement == "clamp":
        scale = 1.0 / np.sqrt(max(var, eps))
    elif eps_placement == "inside":
        scale = 1.0 / np.sqrt(var + eps)
    else:
        scale = 1.0 / (np.sqrt(var) + eps)
    return centred * scale


def group_centred_reward(R: np.ndarray, g: np.ndarray, singleton: str = "zero") -> np.ndarray:
    """R̃_i = R_i − mean_{j∈group(i)} R_j (B,); a group of one gets 0 (``"zero"``) or R (``"raw"``).

    Written as (1/G) Σ_j (R_i − R_j) so that an all-equal group is exactly 0 (forming the mean first
    leaves rounding residue of order 1e-17, which the global normalisation would blow up to ±1).
    """
    Rt = np.zeros_like(R)
    for k in np.unique(g):
        rows = np.flatnonzero(g == k)
        if len(rows) == 1 and singleton == "raw":
            Rt[rows] = R[rows]
        else:
            Rt[rows] = [(R[i] - R[rows]).mean() for i in rows]
    return Rt


def _validate_kl(kl, M: np.ndarray) -> np.ndarray | None:
    return None if kl is None else masked_array(kl, "kl", M)


def _advantage(R: np.ndarray, M: np.ndarray, kl: np.ndarray | None, cfg: ReinforcePPConfig) -> np.ndarray:
    r = outcome_token_rewards(R, M, kl, cfg.kl_coef)
    A = discounted_returns(r, M, cfg.gamma, cfg.discount_masked)
    return batch_normalize(A, M, cfg.ddof, cfg.eps, cfg.eps_placement, cfg.std_normalize)


def reinforce_pp_advantage(rewards, group, mask, config: ReinforcePPConfig | None = None, kl=None) -> np.ndarray:
    """REINFORCE++ advantage (B, T): globally normalised return-to-go of the outcome reward.

    Args: rewards (B,); group (B,) prompt ids (accepted for the common signature, not used);
    mask (B, T) bool; kl (B, T) optional per-token KL estimate, never read at masked positions.
    Returns: (B, T) float64, zero at masked positions.
    """
    cfg = config or ReinforcePPConfig()
    R, _, M = validate_outcome(rewards, group, mask)
    return _advantage(R, M, _validate_kl(kl, M), cfg)


def reinforce_pp_baseline_advantage(rewards, group, mask, config: ReinforcePPBaselineConfig | None = None,
                                    kl=None) -> np.ndarray:
    """REINFORCE++-baseline advantage (B, T): group-centred reward, then REINFORCE++'s returns and
    global normalisation. Args and return as :func:`reinforce_pp_advantage`; ``group`` is used."""
    cfg = config or ReinforcePPBaselineConfig()
    R, g, M = validate_outcome(rewards, group, mask)
    return _advantage(group_centred_reward(R, g, cfg.singleton), M, _validate_kl(kl, M), cfg)


_NORM_EQ = Equation(
    "rfpp-global-norm", "Â_t = (A_t − mean_𝒟 A) / std_𝒟 A, over all valid tokens of the batch",
    "arXiv 2501.03262 eq. (10)", "official-code", "batch_normalize",
    note="eq. number from a third-party restatement (RLinf docs); the paper gives no ε or ddof. OpenRLHF (official): "
         "biased variance, 1/√max(var, 1e-8) — our default; verl: unbiased, 1/√(var + 1e-8) (ddof=1, 'inside').")

register(Spec(
    name="reinforce_pp", kind="advantage", family="baseline", paper=RFPP_PAPER, status="implemented",
    aliases=("reinforce_plus_plus", "reinforce++"),
    summary="REINFORCE++: return-to-go of the outcome reward (with optional per-token KL penalty), "
            "normalised over all valid tokens of the batch",
    fn=reinforce_pp_advantage, config_cls=ReinforcePPConfig, outputs=("adv",),
    equations=(
        Equation("rfpp-token-reward", "r_t = 1[t = last]·R − β·KL_t,  KL_t = log π_old(y_t) − log π_ref(y_t)",
                 "arXiv 2501.03262 eqs. (8)-(9) context", "official-code", "outcome_token_rewards",
                 note="OpenRLHF compute_reward: reward on the last action token, −β·kl on every token."),
        Equation("rfpp-return", "A_t = Σ_{s≥t} γ^{s−t} r_s  (γ = 1: A_t = R − β Σ_{s≥t} KL_s)",
                 "arXiv 2501.03262 eq. (8)", "official-code", "discounted_returns",
                 note="OpenRLHF get_cumulative_returns discounts across masked positions too (our "
                      "discount_masked=True); verl skips them (our default). Same on right-padded masks."),
        _NORM_EQ,
    ),
    properties=(
        "properties/test_reinforce_pp.py::test_normalised_mean0_std1",
        "properties/test_reinforce_pp.py::test_affine_reward_invariance (γ = 1; scale invariance for any γ)",
        "properties/test_reinforce_pp.py::test_closed_form_outcome_gamma1: length-weighted batch z-score",
        "properties/test_reinforce_pp.py::test_returns_match_naive_sum",
    ),
))

register(Spec(
    name="reinforce_pp_baseline", kind="advantage", family="baseline", paper=RFPP_PAPER, status="implemented",
    aliases=("reinforce_plus_plus_baseline",),
    summary="REINFORCE++-baseline: subtract the group mean reward, then REINFORCE++'s global normalisation",
    fn=reinforce_pp_baseline_advantage, config_cls=ReinforcePPBaselineConfig, outputs=("adv",),
    equations=(
        Equation("rfpp-baseline-centre", "R̃_i = R_i − mean_{j∈group(i)} R_j", "arXiv 2501.03262 (REINFORCE++ w/ "
                 "baseline)", "official-code", "group_centred_reward",
                 note="OpenRLHF 'reinforce_baseline': rewards − group mean, then the token reward/return/"
                      "normalisation path (γ forced to 1). verl: singleton group keeps its raw score."),
        _NORM_EQ,
    ),
    properties=(
        "properties/test_reinforce_pp.py::test_baseline_zero_sum_per_group",
        "properties/test_reinforce_pp.py::test_baseline_invariant_to_per_group_shift",
        "properties/test_reinforce_pp.py::test_normalised_mean0_std1",
    ),
))

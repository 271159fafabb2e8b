"""The built-in adapter for verl (``pip install verl==0.9.1``): verl's own estimators, losses and KL terms.

Every number comes from verl's functions in ``verl.trainer.ppo.core_algos`` (the registries
``ADV_ESTIMATOR_REGISTRY`` / ``POLICY_LOSS_REGISTRY``, ``agg_loss``, ``kl_penalty``,
``compute_entropy_loss``); this module only converts rlspec's canonical inputs into the tensors verl's
trainer hands those functions, and the results back:

* advantages: the outcome reward R_i is written on the last valid token of ``token_level_rewards``
  (the position verl's reward managers use, ``valid_response_length - 1``; a row with no valid token
  gets it on the last column, which is where ``-1`` lands), ``index`` is the group-id array (verl
  groups by uid with a Python dict), and the ``(advantages, returns)`` pair is returned as ``adv``
  (and ``returns`` for GAE);
* policy losses: ``get_policy_loss_fn(mode)(old_log_prob, log_prob, advantages, response_mask,
  loss_agg_mode, config=ActorConfig(...))`` with ``log_prob`` a leaf tensor; the rlspec
  ``normalizer`` / ``const`` options become ``ActorConfig.global_batch_info`` (``batch_num_tokens``
  for token-mean, ``global_batch_size`` for the seq-mean modes, ``loss_scale_factor`` for
  seq-mean-token-sum-norm), exactly what ``verl.workers.utils.losses.ppo_loss`` sets in training;
* KL as a loss: ``agg_loss(kl_penalty(log_prob, ref_log_prob, type), response_mask, mode, **info)``,
  the composition of ``ppo_loss`` when ``use_kl_loss`` is on;
* entropy: ``compute_entropy_loss(logits, response_mask, mode)`` (or, with a global normalizer,
  ``agg_loss(entropy_from_logits(logits), ...)`` as ``ppo_loss`` does).

verl is imported lazily (this module imports without it); ``VERL_FORCE_DEVICE=cpu`` is set before the
import because verl's device fallback is ``"cuda"`` even on a CPU-only torch (notes/peers.md §2.6).

Padding: passed to verl as given, like every built-in adapter does. The harness's default cases hold finite,
non-zero garbage at masked positions (what a model outputs there), so a verl function that reads padding
shows; the ``padding-nonfinite`` cases hold NaN/inf/1e30 there and show the NaN-at-padding finding (agg_loss's
seq-mean branches mask by multiplication, open upstream fix https://github.com/verl-project/verl/pull/6349; NaN
gradients reach masked positions; tests/test_adapter_verl.py asserts it). ``VerlAdapter(raw_padding=False)``
zeroes padding first (:func:`zero_padding`), to separate a padding finding from the rest;
:class:`VerlRawPaddingAdapter` is kept as a name for the default.

Variants: verl ships loop and vectorised versions of GRPO and RLOO. ``VerlAdapter()`` checks the loop
versions (``grpo``, ``rloo``: the names verl's trainer configs use); ``VerlAdapter(vectorized=True)``
(or :class:`VerlVectorizedAdapter`) checks ``grpo_vectorized`` / ``rloo_vectorized`` instead, whose
singleton-group convention differs for RLOO (advantage 0 instead of the raw reward).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rlspec.conformance.adapters.base import Adapter, Unsupported, framework_version, shaped, zero_padding

TORCH_DTYPES = ("float64", "float32", "bfloat16")
VERL_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")

#: registry entry -> the verl function that computes it (for reports and ``supports``)
ADVANTAGE_ESTIMATORS = {
    "grpo": "grpo",  # core_algos.compute_grpo_outcome_advantage
    "dr_grpo": "grpo",  # same, norm_adv_by_std_in_grpo=False
    "rloo": "rloo",  # core_algos.compute_rloo_outcome_advantage
    "reinforce_pp": "reinforce_plus_plus",
    "reinforce_pp_baseline": "reinforce_plus_plus_baseline",
    "gae": "gae",  # core_algos.compute_gae_advantage_return
    "remax": "remax",
    "opo": "opo",
    "gpg": "gpg",
    "grpo_passk": "grpo_passk",  # core_algos.compute_grpo_passk_outcome_advantage
}
VECTORIZED = {"grpo": "grpo_vectorized", "dr_grpo": "grpo_vectorized", "rloo": "rloo_vectorized"}
POLICY_LOSSES = {
    "ppo": "vanilla",  # PPO clip + dual clip (always on in verl)
    "dapo": "vanilla",  # verl's DAPO recipe: vanilla loss with clip_ratio_high = 0.28, token-mean
    "gspo": "gspo",  # GSPO-token form (sg trick); equals sequence GSPO for per-sequence advantages
    "gspo_token": "gspo",
    "sapo": "sapo",
    "cispo": "cispo",
    "gpg_loss": "gpg",
    "gmpo": "geo_mean",
    "kl_cov": "kl_cov",  # core_algos.compute_policy_loss_kl_cov
    "dro": "dro",  # core_algos.compute_policy_loss_dro
    "dppo": "dppo_tv",  # compute_policy_loss_dppo_tv, or dppo_kl when trust_region="kl"
}
KL_TYPES = {"kl_k1": "k1", "kl_k2": "k2", "kl_k3": "k3", "kl_abs": "abs"}
ENTROPY = {"entropy": "compute_entropy_loss"}

# The framework's documented conventions, stated per registry entry (merged into the reference config).
CONVENTIONS: dict[str, dict[str, Any]] = {
    # compute_grpo_outcome_advantage: torch.std (unbiased, ddof=1), epsilon=1e-6 added to the std, and a
    # group of one gets id2mean=0, id2std=1 (so Â = R/(1+ε)).
    "grpo": {"ddof": 1, "eps": 1e-6, "eps_placement": "outside", "singleton": "mean0std1"},
    # same function with norm_adv_by_std_in_grpo=False: Â = R − mean, a group of one keeps R (mean := 0)
    "dr_grpo": {"ddof": 1, "eps": 1e-6, "eps_placement": "outside", "singleton": "mean0std1"},
    # compute_rloo_outcome_advantage: a group of one keeps its raw score (the n/(n−1) rescale is skipped)
    "rloo": {"singleton": "raw"},
    # compute_reinforce_plus_plus_outcome_advantage: return-to-go that skips mask-0 tokens, then
    # verl_F.masked_whiten = (v − mean)·rsqrt(var + 1e-8) with masked_var(unbiased=True)
    "reinforce_pp": {"ddof": 1, "eps": 1e-8, "eps_placement": "inside", "discount_masked": False},
    # compute_reinforce_plus_plus_baseline_outcome_advantage: R − group mean (a group of one keeps R),
    # tiled over the tokens, then masked_whiten as above
    "reinforce_pp_baseline": {"ddof": 1, "eps": 1e-8, "eps_placement": "inside", "discount_masked": False,
                              "singleton": "raw"},
    # compute_gae_advantage_return: carries nextvalues/lastgaelam through mask-0 tokens (multi-turn),
    # returns = un-whitened Â + V, Â then masked_whiten (unbiased, +1e-8 inside the rsqrt)
    "gae": {"masked_steps": "skip", "whiten": True, "whiten_ddof": 1, "whiten_eps": 1e-8},
    # compute_policy_loss_vanilla: log-ratio clamped to ±20; dual clip always on, clip_ratio_c = 3.0
    # (ActorConfig default; asserted > 1); clip range from ActorConfig.clip_ratio_low/high
    "ppo": {"log_ratio_clamp": 20.0, "dual_clip_c": 3.0},
    # the same vanilla loss (DAPOConfig has no dual-clip field: verl's cap −3Â for Â < 0 shows as a deviation)
    "dapo": {"log_ratio_clamp": 20.0},
    # compute_policy_loss_sapo: log-ratio clamped to ±20, always aggregates seq-mean-token-mean
    "sapo": {"log_ratio_clamp": 20.0, "agg": "seq-mean-token-mean"},
    # compute_policy_loss_cispo: ratio from the ±20-clamped log-ratio, clamp(r, 1−clip_ratio_low,
    # 1+clip_ratio_high) two-sided with ActorConfig's defaults 0.2 / 0.2
    "cispo": {"log_ratio_clamp": 20.0, "eps_low": 0.2, "eps_high": 0.2},
    # compute_remax_outcome_advantage: returns = reverse cumsum of the masked token rewards, Â = returns − b
    "remax": {"reward_to_go": True},
    # compute_opo_outcome_advantage: length-weighted mean baseline; a group of one gets baseline 0
    "opo": {"singleton": "raw"},
    # compute_gpg_outcome_advantage: α = B / max(count_nonzero(scores), 1) (its alpha argument is
    # overwritten), f_norm = 1, a group of one gets mean 0
    "gpg": {"alpha": "verl", "singleton": "raw", "f_norm": "one"},
    # kl_penalty("low_var_kl"/"k3"): kl = clamp(ref − logp, ±20), k3 clamped to [−10, 10]
    "kl_k3": {"log_ratio_clamp": 20.0, "value_clamp": 10.0},
    # compute_grpo_passk_outcome_advantage: config.norm_adv_by_std_in_grpo defaults to True (divide by
    # torch.std (ddof=1) + epsilon=1e-6); a group of one raises ValueError ("Pass@k requires at least 2 samples")
    "grpo_passk": {"std_normalize": True, "eps": 1e-6, "singleton": "raise"},
    # compute_policy_loss_kl_cov with verl.workers.config.actor.PolicyLossConfig defaults kl_cov_ratio=0.0002,
    # ppo_kl_coef=0.1; no log-ratio clamp, no ratio clip
    "kl_cov": {"k": 0.0002, "beta": 0.1},
    # compute_policy_loss_dppo_tv/_kl: loss −Â·sg(min(r, clip_ratio_c))·logp·sg(mask) (the TIS form) with
    # clip_ratio_c = ActorConfig default 3.0, log-ratio clamped to ±20 for r, +1e-8 inside the binary KL's log
    "dppo": {"surrogate": "tis", "is_cap": 3.0, "log_ratio_clamp": 20.0, "kl_eps": 1e-8},
}


def _torch():
    import torch

    return torch


def _verl():
    """(core_algos, ActorConfig, verl_F), importing verl on first use (CPU device forced)."""
    os.environ.setdefault("VERL_FORCE_DEVICE", "cpu")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from verl.trainer.ppo import core_algos
        from verl.utils import torch_functional as verl_F
        from verl.workers.config import ActorConfig
    return core_algos, ActorConfig, verl_F



def _field(config: Any, name: str, default: Any = None) -> Any:
    return getattr(config, name, default) if config is not None else default


class VerlAdapter(Adapter):
    """verl 0.9.1's advantage estimators, policy losses, KL terms and entropy, called directly."""

    name = "verl"
    dtypes = TORCH_DTYPES
    conventions = CONVENTIONS

    def __init__(self, vectorized: bool = False, raw_padding: bool = True) -> None:
        self.vectorized = bool(vectorized)
        self.raw_padding = bool(raw_padding)
        self.version = framework_version("verl")
        if self.vectorized:  # rloo_vectorized: ``(c > 1)`` zeroes a group of one
            self.conventions = {**CONVENTIONS, "rloo": {"singleton": "zero"}}

    # ------------------------------------------------------------------ protocol
    def available(self) -> tuple[bool, str]:
        try:
            _verl()
        except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
            return False, f"verl cannot be imported ({type(e).__name__}: {e}); pip install verl==0.9.1 (see " \
                          "conformance/peers/install.sh)"
        return True, ""

    def supports(self, spec: Any) -> bool:
        return spec.name in ADVANTAGE_ESTIMATORS or spec.name in POLICY_LOSSES or spec.name in KL_TYPES \
            or spec.name in ENTROPY

    def verl_function(self, spec: Any) -> str:
        """The verl registry name (or function) an entry is computed with."""
        n = spec.name if hasattr(spec, "name") else str(spec)
        if self.vectorized and n in VECTORIZED:
            return VECTORIZED[n]
        return {**ADVANTAGE_ESTIMATORS, **POLICY_LOSSES, **KL_TYPES, **ENTROPY}[n]

    def run(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> dict[str, Any]:
        torch = _torch()
        tdt = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        if not self.raw_padding:  # opt-in: padding zeroed (hides code that reads it)
            inputs = zero_padding(inputs)
        if spec.name in ADVANTAGE_ESTIMATORS:
            return self._advantage(spec, inputs, config, tdt)
        if spec.name in POLICY_LOSSES:
            return self._policy_loss(spec, inputs, config, tdt)
        if spec.name in KL_TYPES:
            return self._kl(spec, inputs, config, tdt)
        if spec.name in ENTROPY:
            return self._entropy(inputs, config, tdt)
        raise Unsupported(f"verl has no function for {spec.name}")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _tensor(x: Any, tdt: Any) -> Any:
        torch = _torch()
        return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(tdt)

    @staticmethod
    def outcome_token_rewards(rewards: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, T) token-level rewards: R_i at the last valid token (``valid_response_length − 1``), column
        −1 for a row with no valid token (where verl's reward managers' index −1 lands)."""
        B, T = mask.shape
        out = np.zeros((B, T))
        last = np.where(mask.any(axis=1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)
        if T:
            out[np.arange(B), last] = rewards
        return out

    @staticmethod
    def _agg_mode(config: Any, entry: str) -> str:
        mode = _field(config, "agg", "token-mean")
        if mode not in VERL_AGG_MODES:
            raise Unsupported(f"verl agg_loss has no aggregation mode {mode!r} (it has "
                                      f"{', '.join(VERL_AGG_MODES)} and token-sum) [{entry}]")
        return mode

    @staticmethod
    def global_batch_info(config: Any, mode: str) -> dict[str, Any]:
        """rlspec normalizer/const -> the keys ``verl.workers.utils.losses.ppo_loss`` puts in
        ``ActorConfig.global_batch_info`` (dp_size 1: the sum over shards is the full-batch loss)."""
        info: dict[str, Any] = {}
        norm = _field(config, "normalizer")
        const = _field(config, "const")
        if norm is not None:
            info["dp_size"] = 1
            if mode == "token-mean":
                info["batch_num_tokens"] = float(norm)
            else:
                info["global_batch_size"] = float(norm)
        if const is not None and mode == "seq-mean-token-sum-norm":  # const only enters this mode (both sides)
            info["loss_scale_factor"] = float(const)
        return info

    def actor_config(self, entry: str, config: Any, mode: str) -> Any:
        """The smallest ActorConfig verl's losses accept, carrying the entry's clip range / temperatures."""
        _, ActorConfig, _ = _verl()
        kw: dict[str, Any] = dict(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode=mode)
        eps_low, eps_high = _field(config, "eps_low"), _field(config, "eps_high")
        if eps_high is not None:
            kw["clip_ratio"] = float(eps_high)
            kw["clip_ratio_high"] = float(eps_high)
        if entry == "cispo" and eps_low is None:
            # one-sided CISPO: a lower bound 1 − 1 = 0 never binds because r = exp(·) > 0
            kw["clip_ratio_low"] = 1.0
        elif eps_low is not None:
            kw["clip_ratio_low"] = float(eps_low)
        c = _field(config, "dual_clip_c")
        if c is not None:
            kw["clip_ratio_c"] = float(c)
        if _field(config, "tau_pos") is not None:
            kw["tau_pos"] = float(config.tau_pos)
            kw["tau_neg"] = float(config.tau_neg)
        if entry == "dppo":  # the divergence thresholds δ ride in the clip-ratio fields; c in clip_ratio_c
            kw.update(clip_ratio=float(config.delta_high), clip_ratio_low=float(config.delta_low),
                      clip_ratio_high=float(config.delta_high), clip_ratio_c=float(config.is_cap))
        if entry in ("kl_cov", "dro"):
            from verl.workers.config.actor import PolicyLossConfig

            if entry == "kl_cov":
                kw["policy_loss"] = PolicyLossConfig(loss_mode="kl_cov", kl_cov_ratio=float(config.k),
                                                     ppo_kl_coef=float(config.beta))
            else:
                kw["policy_loss"] = PolicyLossConfig(loss_mode="dro", dro_beta=float(config.beta))
        return ActorConfig(**kw, global_batch_info=self.global_batch_info(config, mode))

    # ------------------------------------------------------------------ advantages
    def _advantage(self, spec: Any, inputs: dict[str, Any], config: Any, tdt: Any) -> dict[str, Any]:
        torch = _torch()
        ca, _, _ = _verl()
        name = spec.name
        if tdt == torch.bfloat16:
            raise Unsupported("verl's reward/value tensors are float32 (reward managers allocate "
                                      "torch.float32); its estimators are not run on bfloat16 inputs")
        fn_name = self.verl_function(spec)
        fn = ca.get_adv_estimator_fn(fn_name)
        mask_np = np.asarray(inputs["mask"], dtype=bool)
        mask = torch.as_tensor(mask_np).to(tdt)
        if name == "gae":
            gamma, lam = float(config.gamma), float(config.lam)
            if config.masked_steps != "skip":
                raise Unsupported("verl's GAE always skips mask-0 tokens (masked_steps='skip')")
            if not config.whiten or config.whiten_ddof != 1 or config.whiten_eps != 1e-8:
                raise Unsupported("verl's GAE always whitens (masked_whiten: unbiased, +1e-8)")
            adv, ret = fn(token_level_rewards=self._tensor(inputs["token_rewards"], tdt),
                          values=self._tensor(inputs["values"], tdt), response_mask=mask, gamma=gamma, lam=lam)
            return {"adv": adv, "returns": ret}
        rewards = np.asarray(inputs["rewards"], dtype=np.float64)
        tlr = self._tensor(self.outcome_token_rewards(rewards, mask_np), tdt) if rewards.ndim == 1 else None
        index = np.asarray(inputs["group"]) if "group" in inputs else None
        if name in ("grpo", "dr_grpo"):
            self._check(config, name, ddof=1, eps_placement="outside", singleton="mean0std1")
            adv, _ = fn(tlr, mask, index, epsilon=float(config.eps),
                        norm_adv_by_std_in_grpo=bool(config.std_normalize))
        elif name == "rloo":
            self._check(config, name, singleton="zero" if fn_name == "rloo_vectorized" else "raw")
            adv, _ = fn(tlr, mask, index)
        elif name in ("reinforce_pp", "reinforce_pp_baseline"):
            self._check(config, name, ddof=1, eps=1e-8, eps_placement="inside", std_normalize=True,
                        discount_masked=False)
            if inputs.get("kl") is not None:
                # algorithm.use_kl_in_reward: ray_trainer.apply_kl_penalty subtracts β·(kld · mask)
                kld = self._tensor(inputs["kl"], tdt) * mask
                tlr = ca.compute_rewards(tlr, kld, torch.zeros_like(kld), float(config.kl_coef))
            if name == "reinforce_pp":
                from omegaconf import OmegaConf

                adv, _ = fn(tlr, mask, config=OmegaConf.create({"gamma": float(config.gamma)}))
            else:
                self._check(config, name, singleton="raw")
                if float(config.gamma) != 1.0:
                    raise Unsupported("verl's REINFORCE++-baseline tiles R − mean over the tokens (γ = 1)")
                adv, _ = fn(tlr, mask, index)
        elif name == "remax":
            self._check(config, name, reward_to_go=True)
            r = np.asarray(inputs["rewards"], dtype=np.float64)
            if r.ndim == 2:  # token-level rewards are verl's own input layout
                tlr = self._tensor(r, tdt)
            adv, _ = fn(tlr, self._tensor(inputs["baseline_rewards"], tdt), mask)
        elif name == "opo":
            self._check(config, name, singleton="raw")
            adv, _ = fn(tlr, mask, index)
        elif name == "gpg":
            self._check(config, name, alpha="verl", singleton="raw", f_norm="one")
            adv, _ = fn(tlr, mask, index)
        elif name == "grpo_passk":
            from verl.trainer.config import AlgoConfig

            self._check(config, name, singleton="raise")
            adv, _ = fn(tlr, mask, index, epsilon=float(config.eps),
                        config=AlgoConfig(norm_adv_by_std_in_grpo=bool(config.std_normalize)))
        else:  # pragma: no cover - guarded by supports()
            raise Unsupported(name)
        return {"adv": adv}

    @staticmethod
    def _check(config: Any, entry: str, **expected: Any) -> None:
        """Raise NotImplementedError if a config field differs from what verl's function hard-codes."""
        for k, v in expected.items():
            if not hasattr(config, k):
                continue
            got = getattr(config, k)
            if (isinstance(v, float) and not np.isclose(float(got), v, rtol=0, atol=0)) or \
                    (not isinstance(v, float) and got != v):
                raise Unsupported(f"verl's {entry} hard-codes {k}={v!r}; the case asks for {k}={got!r}")

    # ------------------------------------------------------------------ policy losses
    def _policy_loss(self, spec: Any, inputs: dict[str, Any], config: Any, tdt: Any) -> dict[str, Any]:
        torch = _torch()
        ca, _, _ = _verl()
        name = spec.name
        mode = self._agg_mode(config, name)
        clamp = _field(config, "log_ratio_clamp")
        if name in ("ppo", "dapo", "sapo", "cispo") and clamp != 20.0:
            raise Unsupported(f"verl clamps the log-ratio to ±20 in {POLICY_LOSSES[name]} "
                                      f"(log_ratio_clamp={clamp!r} cannot be expressed)")
        if name in ("gspo", "gspo_token") and clamp is not None:
            raise Unsupported("verl clamps the GSPO sequence log-ratio one-sided (at most +10); a "
                                      f"symmetric log_ratio_clamp={clamp!r} cannot be expressed")
        if name == "ppo" and _field(config, "dual_clip_c") is None:
            raise Unsupported("verl's vanilla PPO loss always applies the dual clip (clip_ratio_c > 1 is "
                                      "asserted); dual_clip_c=None cannot be expressed")
        if name == "gmpo" and clamp is not None:
            raise Unsupported("verl's geo_mean loss does not clamp the log-ratio")
        if name in ("kl_cov", "dro") and clamp is not None:
            raise Unsupported(f"verl's {POLICY_LOSSES[name]} loss does not clamp the log-ratio")
        loss_mode = POLICY_LOSSES[name]
        if name == "dppo":
            if clamp != 20.0:
                raise Unsupported(f"verl clamps the DPPO log-ratio to ±20 (log_ratio_clamp={clamp!r})")
            if config.surrogate != "tis" or config.is_cap is None or config.is_cap <= 1.0:
                raise Unsupported("verl's DPPO is the truncated-IS form −Â·sg(min(r, c))·logp with "
                                          "clip_ratio_c = c > 1 (surrogate='tis', is_cap > 1)")
            if config.trust_region == "kl" and config.kl_eps != 1e-8:
                raise Unsupported("verl's dppo_kl adds 1e-8 inside the binary KL (kl_eps=1e-8)")
            loss_mode = "dppo_kl" if config.trust_region == "kl" else "dppo_tv"
        cfg = self.actor_config(name, config, mode)
        fn = ca.get_policy_loss_fn(loss_mode)
        logp = self._tensor(inputs["logp"], tdt).requires_grad_(True)
        old = self._tensor(inputs["old_logp"], tdt)
        adv = self._tensor(inputs["adv"], tdt)
        mask = torch.as_tensor(np.asarray(inputs["mask"], dtype=bool))
        loss, _ = fn(old_log_prob=old, log_prob=logp, advantages=adv, response_mask=mask, loss_agg_mode=mode,
                     config=cfg)
        return self._loss_and_grad(loss, logp)

    @staticmethod
    def _loss_and_grad(loss: Any, leaf: Any, grad_name: str = "dlogp", value_name: str = "loss") -> dict[str, Any]:
        torch = _torch()
        loss.backward()
        g = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        return {value_name: float(loss.detach().to(torch.float64)), grad_name: g.detach().to(torch.float64).numpy()}

    # ------------------------------------------------------------------ KL
    def _kl(self, spec: Any, inputs: dict[str, Any], config: Any, tdt: Any) -> dict[str, Any]:
        torch = _torch()
        ca, _, _ = _verl()
        name = spec.name
        mode = self._agg_mode(config, name)
        if _field(config, "is_weight") is not None:
            raise Unsupported("verl's kl_penalty has no importance-ratio weighting (is_weight)")
        kind = KL_TYPES[name]
        want = CONVENTIONS.get(name, {})  # kl_abs: no clamps in kl_penalty_forward("abs")
        for k in ("log_ratio_clamp", "value_clamp"):
            if _field(config, k) != want.get(k):
                raise Unsupported(f"verl's kl_penalty({kind!r}) hard-codes {k}={want.get(k)!r}; "
                                          f"the case asks for {_field(config, k)!r}")
        if _field(config, "straight_through_k2"):
            kind = kind + "+"  # value of the estimator, gradient of k2 (kl_penalty's "+" suffix)
        logp = self._tensor(inputs["logp"], tdt).requires_grad_(True)
        ref = self._tensor(inputs["ref_logp"], tdt)
        mask = torch.as_tensor(np.asarray(inputs["mask"], dtype=bool))
        kld = ca.kl_penalty(logprob=logp, ref_logprob=ref, kl_penalty=kind)
        loss = ca.agg_loss(loss_mat=kld, loss_mask=mask, loss_agg_mode=mode,
                           **self.global_batch_info(config, mode))
        return self._loss_and_grad(loss, logp)

    # ------------------------------------------------------------------ entropy
    def _entropy(self, inputs: dict[str, Any], config: Any, tdt: Any) -> dict[str, Any]:
        torch = _torch()
        ca, _, verl_F = _verl()
        mode = self._agg_mode(config, "entropy")
        logits = self._tensor(inputs["logits"], tdt).requires_grad_(True)
        mask = torch.as_tensor(np.asarray(inputs["mask"], dtype=bool))
        info = self.global_batch_info(config, mode)
        if info:  # the trainer's composition (verl.workers.utils.losses.ppo_loss)
            loss = ca.agg_loss(loss_mat=verl_F.entropy_from_logits(logits), loss_mask=mask, loss_agg_mode=mode,
                               **info)
        else:
            loss = ca.compute_entropy_loss(logits, response_mask=mask, loss_agg_mode=mode)
        return self._loss_and_grad(loss, logits, grad_name="dlogits", value_name="value")

    # ------------------------------------------------------------------ reproduction
    def reproduction(self, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
        """A standalone script (verl + torch + numpy only) that rebuilds the case and prints verl's result."""
        try:
            return _reproduction(self, spec, inputs, config, dtype)
        except Exception as e:  # noqa: BLE001 - a reproduction must never break a report
            return f"# (could not build a verl reproduction: {type(e).__name__}: {e})\n"


# ---------------------------------------------------------------------- reproduction snippets
def _lit(x: Any) -> str:
    if isinstance(x, np.ndarray):
        if x.dtype == np.bool_:
            return shaped(f"np.array({x.tolist()!r}, dtype=bool)", x)
        if np.issubdtype(x.dtype, np.integer):
            return shaped(f"np.array({x.tolist()!r}, dtype=np.int64)", x)
        return shaped(f"np.array({x.astype(np.float64).tolist()!r})", x)
    return repr(x)


def _reproduction(adapter: VerlAdapter, spec: Any, inputs: dict[str, np.ndarray], config: Any, dtype: str) -> str:
    if config is None:
        conv = dict(adapter.conventions.get(spec.name, {}))
        try:
            config = spec.config(**conv)
        except Exception:  # noqa: BLE001
            config = None
    name = spec.name
    head = [
        f"# verl {adapter.version}: {name} computed by verl's own function ({adapter.verl_function(spec)}), "
        f"dtype {dtype}",
        "import os; os.environ.setdefault('VERL_FORCE_DEVICE', 'cpu')",
        "import numpy as np, torch",
        "from numpy import nan, inf",
        "from verl.trainer.ppo import core_algos as ca",
        f"dt = torch.{dtype}",
    ]
    body: list[str] = []
    if not getattr(adapter, "raw_padding", True):  # the inputs verl was given: padding zeroed (opt-in)
        inputs = zero_padding(inputs)
        head.append("# masked positions hold 0 (VerlAdapter(raw_padding=False) zeroes padding)")
    arrays = {k: v for k, v in inputs.items() if isinstance(v, np.ndarray)}
    for k, v in arrays.items():
        body.append(f"{k} = {_lit(v)}")
    if name in ADVANTAGE_ESTIMATORS:
        body.append("m = torch.as_tensor(mask).to(dt)")
        fn_name = adapter.verl_function(spec)
        if name == "gae":
            body.append(f"adv, ret = ca.compute_gae_advantage_return(torch.as_tensor(token_rewards).to(dt), "
                        f"torch.as_tensor(values).to(dt), m, gamma={float(config.gamma)!r}, lam={float(config.lam)!r})")
            body.append("print('adv', adv[mask]); print('returns', ret[mask])")
            return "\n".join(head + body) + "\n"
        body += [
            "# outcome reward on the last valid token (verl's reward managers: valid_response_length - 1)",
            "B, T = mask.shape; tlr = np.zeros((B, T))",
            "last = np.where(mask.any(1), T - 1 - np.argmax(mask[:, ::-1], axis=1), T - 1)",
            "tlr[np.arange(B), last] = rewards if rewards.ndim == 1 else 0.0; tlr = torch.as_tensor(tlr).to(dt)",
        ]
        if name in ("grpo", "dr_grpo"):
            call = (f"ca.get_adv_estimator_fn({fn_name!r})(tlr, m, group, epsilon={float(config.eps)!r}, "
                    f"norm_adv_by_std_in_grpo={bool(config.std_normalize)!r})")
        elif name == "reinforce_pp":
            body.append("from omegaconf import OmegaConf")
            call = (f"ca.get_adv_estimator_fn({fn_name!r})(tlr, m, "
                    f"config=OmegaConf.create({{'gamma': {float(config.gamma)!r}}}))")
        elif name == "grpo_passk":
            body.append("from verl.trainer.config import AlgoConfig")
            call = (f"ca.get_adv_estimator_fn('grpo_passk')(tlr, m, group, epsilon={float(config.eps)!r}, "
                    f"config=AlgoConfig(norm_adv_by_std_in_grpo={bool(config.std_normalize)!r}))")
        elif name == "remax":
            if np.ndim(inputs["rewards"]) == 2:
                body.append("tlr = torch.as_tensor(rewards).to(dt)  # token-level rewards as given")
            call = "ca.get_adv_estimator_fn('remax')(tlr, torch.as_tensor(baseline_rewards).to(dt), m)"
        else:
            call = f"ca.get_adv_estimator_fn({fn_name!r})(tlr, m, group)"
        body.append(f"adv, _ = {call}")
        body.append("print('adv (valid tokens):', adv[mask].tolist())")
        return "\n".join(head + body) + "\n"
    mode = _field(config, "agg", "token-mean")
    info = VerlAdapter.global_batch_info(config, mode) if mode in VERL_AGG_MODES else {}
    if name in POLICY_LOSSES:
        kw = {}
        try:
            cfg = adapter.actor_config(name, config, mode)
            kw = {k: getattr(cfg, k) for k in ("clip_ratio", "clip_ratio_low", "clip_ratio_high", "clip_ratio_c",
                                               "tau_pos", "tau_neg")}
        except Exception:  # noqa: BLE001
            pass
        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        loss_mode = POLICY_LOSSES[name]
        if name == "dppo" and _field(config, "trust_region") == "kl":
            loss_mode = "dppo_kl"
        if name == "kl_cov":
            args += (f", policy_loss=PolicyLossConfig(loss_mode='kl_cov', kl_cov_ratio={float(config.k)!r}, "
                     f"ppo_kl_coef={float(config.beta)!r})")
        elif name == "dro":
            args += f", policy_loss=PolicyLossConfig(loss_mode='dro', dro_beta={float(config.beta)!r})"
        body += [
            "from verl.workers.config import ActorConfig",
            "from verl.workers.config.actor import PolicyLossConfig",
            f"cfg = ActorConfig(strategy='fsdp', rollout_n=1, ppo_micro_batch_size_per_gpu=1, loss_agg_mode={mode!r}, "
            f"{args}, global_batch_info={info!r})",
            "lp = torch.as_tensor(logp).to(dt).requires_grad_(True)",
            f"loss, _ = ca.get_policy_loss_fn({loss_mode!r})(old_log_prob=torch.as_tensor(old_logp).to(dt), "
            "log_prob=lp, advantages=torch.as_tensor(adv).to(dt), response_mask=torch.as_tensor(mask), "
            f"loss_agg_mode={mode!r}, config=cfg)",
            "loss.backward()",
            "print('loss', loss.item()); print('dlogp', lp.grad)",
        ]
    elif name in KL_TYPES:
        kind = KL_TYPES[name] + ("+" if _field(config, "straight_through_k2") else "")
        body += [
            "lp = torch.as_tensor(logp).to(dt).requires_grad_(True)",
            f"kld = ca.kl_penalty(lp, torch.as_tensor(ref_logp).to(dt), {kind!r})",
            f"loss = ca.agg_loss(kld, torch.as_tensor(mask), {mode!r}, **{info!r})",
            "loss.backward()",
            "print('loss', loss.item()); print('dlogp', lp.grad)",
        ]
    elif name in ENTROPY:
        body += [
            "z = torch.as_tensor(logits).to(dt).requires_grad_(True)",
            f"value = ca.compute_entropy_loss(z, torch.as_tensor(mask), {mode!r})",
            "value.backward()",
            "print('value', value.item()); print('dlogits', z.grad)",
        ]
    return "\n".join(head + body) + "\n"


class VerlRawPaddingAdapter(VerlAdapter):
    """verl with the case's padding passed through as given: the same as :class:`VerlAdapter` (whose default
    this is); kept as a name for ``rlspec check rlspec.conformance.adapters.verl_adapter:VerlRawPaddingAdapter``."""

    def __init__(self, vectorized: bool = False) -> None:
        super().__init__(vectorized=vectorized, raw_padding=True)


class VerlVectorizedAdapter(VerlAdapter):
    """verl with ``grpo_vectorized`` / ``rloo_vectorized`` in place of the loop estimators."""

    def __init__(self, raw_padding: bool = True) -> None:
        super().__init__(vectorized=True, raw_padding=raw_padding)


__all__ = ["VerlAdapter", "VerlRawPaddingAdapter", "VerlVectorizedAdapter", "zero_padding", "CONVENTIONS"]

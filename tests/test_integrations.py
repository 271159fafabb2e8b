"""rlspec losses inside TRL's GRPOTrainer and verl's registries (peers suite: ``tox -e peers``).

TRL: a few real training steps of TRL's own trainer on CPU (tiny random-init Llama, a character tokenizer
built in code, nothing downloaded) with R²VPO / FiberPO, losses TRL does not ship; the logged loss is checked
against the NumPy reference on the same tensors. verl: every registered entry is found by verl's own lookup
and gives the reference's value."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

pytestmark = pytest.mark.peers
torch = pytest.importorskip("torch")

from rlspec.reference import registry  # noqa: E402


# ---------------------------------------------------------------------------------------------- TRL
def _char_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("abcd ")}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")
    tok.padding_side = "left"
    return tok


def _count_a(completions, **_):
    return [float(c.count("a")) for c in completions]


def _trl_trainer(tmp_path, loss, advantage=None, steps=3, **loss_cfg):
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig

    from rlspec.optimized.e2e.models import make_model
    from rlspec.optimized.integrations.trl import RLSpecGRPOTrainer

    tok = _char_tokenizer()
    model = make_model("llama", seed=0, vocab_size=len(tok), max_positions=32)
    ds = Dataset.from_dict({"prompt": ["ab", "cd", "ba", "dc"] * 4})
    args = GRPOConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, bf16=False,
                      per_device_train_batch_size=4, num_generations=4, max_completion_length=6, max_steps=steps,
                      learning_rate=1e-2, logging_steps=1, save_strategy="no", num_iterations=2, seed=0,
                      dataloader_num_workers=0)
    trainer = RLSpecGRPOTrainer(model=model, reward_funcs=_count_a, args=args, train_dataset=ds, processing_class=tok,
                                rlspec_loss=loss, rlspec_loss_config=loss_cfg or None, rlspec_advantage=advantage)
    return trainer, model


def _reference_loss(name, last):
    extra = {k: last[k].numpy() for k in ("group", "ref_logp") if k in last}
    loss, _ = registry.get(name)(logp=last["logp"].double().numpy(), old_logp=last["old_logp"].double().numpy(),
                                 adv=last["adv"].double().numpy(), mask=last["mask"].numpy(), config=last["config"],
                                 **extra)
    return float(loss)


@pytest.mark.parametrize("loss,advantage", [("r2vpo", "rloo"), ("fiberpo", None)])
def test_trl_grpo_trainer_trains_with_rlspec_loss(tmp_path, loss, advantage):
    trainer, model = _trl_trainer(tmp_path, loss, advantage)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 3 and all(np.isfinite(logged))
    changed = sum(float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters())
    assert changed > 0
    last = trainer.rlspec_last
    assert last["scale"] == 1.0  # no gradient accumulation here: TRL logged exactly the rlspec loss
    # step 2 is the second iteration (num_iterations=2) on one generation batch: old != new log-probs there
    kls = [h["rlspec/kl_old_k3"] for h in trainer.state.log_history if "rlspec/kl_old_k3" in h]
    assert kls[1] > 0
    ref = _reference_loss(loss, last)
    assert abs(float(last["loss"]) - ref) <= 1e-5 * max(1.0, abs(ref))
    assert abs(logged[-1] - float(last["loss"])) <= 1e-6 * max(1.0, abs(ref))
    if advantage is not None:
        la = trainer.rlspec_last_advantage
        ref_adv = registry.get(advantage)(rewards=la["rewards"].numpy(), group=la["group"].numpy(),
                                          mask=la["mask"].numpy(), config=trainer.rlspec_adv_config)
        np.testing.assert_allclose(la["adv"].numpy(), np.asarray(ref_adv), rtol=1e-9, atol=1e-12)


def test_trl_refuses_what_it_cannot_drive(tmp_path):
    pytest.importorskip("trl")
    from rlspec.optimized.integrations.trl import resolve_advantage, resolve_loss
    from rlspec.reference._validate import RLSpecValueError

    with pytest.raises(RLSpecValueError):
        resolve_loss("grpo")  # an advantage, not a loss
    with pytest.raises(RLSpecValueError):
        resolve_loss("a2tgpo")  # needs turn ids the trainer does not have
    with pytest.raises(RLSpecValueError):
        resolve_advantage("dvao")  # needs K reward components


# ---------------------------------------------------------------------------------------------- verl
@pytest.fixture(scope="module")
def verl_registered():
    os.environ.setdefault("VERL_FORCE_DEVICE", "cpu")
    pytest.importorskip("verl")
    from rlspec.optimized.integrations import verl as rv

    return rv.register_all()


def _batch(dtype=torch.float64, B=8, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[5, 2:] = False
    old = -torch.rand(B, T, generator=g, dtype=dtype) * 2
    cur = old + 0.3 * torch.randn(B, T, generator=g, dtype=dtype)
    adv = torch.randn(B, T, generator=g, dtype=dtype)
    return cur, old, adv, mask


def test_verl_registers_every_drivable_entry(verl_registered):
    from verl.trainer.ppo import core_algos as ca

    from rlspec.optimized.integrations import verl as rv

    assert {"rlspec_r2vpo", "rlspec_fiberpo", "rlspec_ppo"} <= set(verl_registered["policy_loss"])
    assert {"rlspec_grpo", "rlspec_rloo"} <= set(verl_registered["advantage"])
    assert verl_registered["policy_loss"] == ["rlspec_" + n for n in rv.policy_loss_names()]
    for n in verl_registered["policy_loss"]:
        assert ca.get_policy_loss_fn(n).__name__ == n
    for n in verl_registered["advantage"]:
        assert ca.get_adv_estimator_fn(n).__name__ == n
    assert "vanilla" in ca.POLICY_LOSS_REGISTRY and "grpo" in ca.ADV_ESTIMATOR_REGISTRY  # verl's own untouched


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_verl_policy_losses_equal_reference(verl_registered, mode):
    from verl.trainer.ppo import core_algos as ca
    from verl.workers.config import ActorConfig

    cur, old, adv, mask = _batch()
    cfg = ActorConfig(strategy="fsdp", rollout_n=4, ppo_micro_batch_size_per_gpu=1, loss_agg_mode=mode)
    bad = []
    for n in verl_registered["policy_loss"]:
        fn = ca.get_policy_loss_fn(n)
        lp = cur.clone().requires_grad_(True)
        loss, metrics = fn(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask.float(),
                           loss_agg_mode=mode, config=cfg)
        loss.backward()
        rc = fn.rlspec_config
        if getattr(rc, "agg", None) in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                                        "seq-mean-token-sum-norm", "group-token-mean"):
            rc = dataclasses.replace(rc, agg=mode, normalizer=None, const=None)
        ref, dref = registry.get(n[len("rlspec_"):])(logp=cur.numpy(), old_logp=old.numpy(), adv=adv.numpy(),
                                                    mask=mask.numpy(), config=rc)
        if not (abs(float(loss.detach()) - float(ref)) <= 1e-9 * max(1.0, abs(float(ref)))
                and np.allclose(lp.grad.numpy(), dref, rtol=1e-7, atol=1e-10)):
            bad.append((n, float(loss), float(ref)))
        assert "actor/ppo_kl" in metrics
    assert not bad


def test_verl_global_batch_info_sums_to_full_batch(verl_registered):
    """Two micro-batches with verl's global batch info add up to the full-batch loss (token-mean, seq-mean)."""
    from verl.trainer.ppo import core_algos as ca
    from verl.workers.config import ActorConfig

    cur, old, adv, mask = _batch()
    fn = ca.get_policy_loss_fn("rlspec_r2vpo")
    for mode in ("token-mean", "seq-mean-token-mean"):
        cfg = ActorConfig(strategy="fsdp", rollout_n=4, ppo_micro_batch_size_per_gpu=1, loss_agg_mode=mode)
        full, _ = fn(old, cur, adv, mask.float(), mode, cfg)
        cfg.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=mask.shape[0])
        parts = sum(float(fn(old[s], cur[s], adv[s], mask[s].float(), mode, cfg)[0]) for s in (slice(0, 3), slice(3, 8)))
        assert abs(parts - float(full)) <= 1e-12


def test_verl_advantages_equal_reference(verl_registered):
    from verl.trainer.ppo import core_algos as ca

    _, _, _, mask = _batch()
    B, T = mask.shape
    rew = torch.zeros(B, T, dtype=torch.float64)
    rew[torch.arange(B), mask.sum(1) - 1] = torch.tensor([1.0, 0, 1, 1, 0, 0, 0, 1], dtype=torch.float64)
    uid = np.array(["u7"] * 4 + ["u3"] * 4, dtype=object)  # verl's uids are strings
    bad = []
    for n in verl_registered["advantage"]:
        fn = ca.get_adv_estimator_fn(n)
        a, r = fn(token_level_rewards=rew, response_mask=mask.float(), index=uid, config=None)
        ref = registry.get(n[len("rlspec_"):])(rewards=rew.sum(-1).numpy(), group=np.array([1] * 4 + [0] * 4),
                                               mask=mask.numpy(), config=fn.rlspec_config)
        if not (np.allclose(a.numpy(), ref, rtol=1e-9, atol=1e-12) and torch.equal(a, r)):
            bad.append(n)
    assert not bad


def test_verl_refuses_rollout_is_weights(verl_registered):
    from verl.trainer.ppo import core_algos as ca

    from rlspec.reference._validate import RLSpecValueError

    cur, old, adv, mask = _batch()
    with pytest.raises(RLSpecValueError, match="rollout_is_weights"):
        ca.get_policy_loss_fn("rlspec_ppo")(old, cur, adv, mask.float(), "token-mean", None,
                                            rollout_is_weights=torch.ones_like(cur))

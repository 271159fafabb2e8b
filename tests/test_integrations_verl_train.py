"""A few real verl training steps with rlspec losses verl does not ship, on CPU (peers suite: ``tox -e peers``).

Claim checked: after ``rlspec.optimized.integrations.verl.register_all()``, verl 0.9.1's own PPO training code
trains a model with ``actor.policy_loss.loss_mode=rlspec_r2vpo`` / ``rlspec_fiberpo`` (losses verl does not
have) and ``algorithm.adv_estimator=rlspec_rloo`` / ``rlspec_grpo``, and what it optimizes is the paper's loss.

What runs is verl's, in one process (``_drive``, started in a subprocess so that its process group, its
platform plugin and its environment do not leak into the test session):

* the config: verl's ``ppo_trainer.yaml`` composed by Hydra with overrides, as ``verl.trainer.main_ppo`` does;
* the worker: ``verl.workers.engine_workers.ActorRolloutRefWorker(role="actor")``, the class the Ray trainer
  starts on every GPU, here called directly: ``init_model`` builds verl's FSDP2 engine (``fully_shard`` over a
  gloo process group of world size 1) around a tiny random Llama written to a temp dir (no download),
  ``compute_log_prob`` / ``update_actor`` run its micro-batching, ``ppo_loss``, backward and AdamW step;
* the trainer's data path: ``RayPPOTrainer._compute_old_log_prob`` and ``RayPPOTrainer._update_actor``
  (padding → no-padding conversion, mini-batch sizes, global batch info), ``ray_trainer.compute_advantage``
  with the rlspec estimator on verl's ``uid`` groups, ``compute_response_mask``;
* the rollout: verl's ``HFRollout._generate_minibatch`` sampling from the actor's own FSDP module.

Not verl's (the full trainer does not run on CPU; why: ``optimized/integrations/verl.py``): Ray dispatch (methods
are called directly), the vLLM/SGLang rollout server, the reward manager (the reward, the number of ``a``
in the response, is put on the last response token as verl's reward loop does), and three CPU shims that
use verl's own extension points: a ``cpu`` platform (``PlatformRegistry``), the FSDP engine registered for
device ``cpu`` (``EngineRegistry``), and the process group initialized before verl tries
``cpu:gloo,cpu:gloo``. ``is_trl_available`` is switched off inside verl's model patching: verl 0.9.1 imports
``AutoModelForCausalLMWithValueHead`` from TRL, which TRL 1.16 no longer has.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.peers

# loss, advantage, verl's actor.loss_agg_mode
CASES = {"r2vpo": ("r2vpo", "rloo", "token-mean"), "fiberpo": ("fiberpo", "grpo", "seq-mean-token-mean")}
STEPS, PROMPTS, N, MINI, MICRO = 3, ("ab", "cd", "ba", "dc"), 4, 2, 4  # MINI prompts per mini-batch
RESPONSE_LEN, PROMPT_LEN = 6, 4


# ----------------------------------------------------------------------------------------- the driver
def _cpu_platform():
    """verl 0.9.1 knows CUDA/NPU/ROCm only; this registers a ``cpu`` platform through its plugin registry."""
    import contextlib
    import types

    import torch
    from verl.plugin.platform.platform_base import PlatformBase
    from verl.plugin.platform.platform_manager import PlatformRegistry, set_platform

    def none(*_a, **_k):
        return None

    def zero(*_a, **_k):
        return 0

    mod = types.SimpleNamespace(
        is_available=lambda: True, current_device=lambda: "cpu", device_count=lambda: 1,
        get_device_name=lambda *_: "cpu", get_rng_state=torch.get_rng_state, set_rng_state=torch.set_rng_state,
        mem_get_info=lambda *_: (0, 0), current_stream=lambda *_: torch.cpu.current_stream(),
        stream=lambda *_: contextlib.nullcontext(), empty_cache=none, synchronize=none, set_device=none,
        set_per_process_memory_fraction=none, manual_seed=torch.manual_seed, manual_seed_all=torch.manual_seed,
        max_memory_allocated=zero, max_memory_reserved=zero, memory_allocated=zero, memory_reserved=zero)

    class PlatformCPU(PlatformBase):
        device_name, vendor_name, device_module = "cpu", "cpu", mod

        def is_available(self):
            return True

        def current_device(self):
            return "cpu"  # verl only passes it to .to(...) / torch.device(...)

        def device_count(self):
            return 1

        def set_device(self, device_index):
            return None

        def synchronize(self, device_index=None):
            return None

        def manual_seed(self, seed):
            torch.manual_seed(seed)

        def manual_seed_all(self, seed):
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings):
            return None

        def empty_cache(self):
            return None

        def get_device_capability(self, device_index=0):
            return None, None

        def communication_backend_name(self):
            return "gloo"

        def visible_devices_envvar(self):
            return "CUDA_VISIBLE_DEVICES"

        @contextlib.contextmanager
        def nvtx_range(self, msg):
            yield

        def profiler_start(self):
            return None

        def profiler_stop(self):
            return None

        def ray_resource_name(self):
            return "CPU"

        def ray_noset_envvars(self):
            return []

        def is_ipc_supported(self):
            return False

        def cudart(self):
            return None

    PlatformRegistry.register(platform="cpu")(PlatformCPU)
    set_platform(PlatformCPU())


def _write_tiny_model(path):
    """A character tokenizer and a random-init 2-layer Llama (hidden 64, 132k parameters), saved where verl loads them."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from rlspec.optimized.e2e.models import make_model

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("abcd ")}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")
    tok.padding_side = "left"
    tok.save_pretrained(path)
    make_model("llama", seed=0, vocab_size=len(tok), max_positions=32).save_pretrained(path)
    return tok


def _config(model_path, loss, advantage, agg):
    """verl's own ppo_trainer.yaml, composed by Hydra as main_ppo does, with CPU-sized overrides."""
    import verl.trainer.config as verl_config
    from hydra import compose, initialize_config_dir

    overrides = [
        f"actor_rollout_ref.model.path={model_path}",
        "actor_rollout_ref.model.use_remove_padding=false",
        "actor_rollout_ref.model.enable_gradient_checkpointing=false",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.actor.strategy=fsdp2",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={MINI}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={MICRO}",
        "actor_rollout_ref.actor.use_torch_compile=false",
        "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
        "actor_rollout_ref.actor.optim.lr=1e-2",
        f"actor_rollout_ref.actor.loss_agg_mode={agg}",
        f"actor_rollout_ref.actor.policy_loss.loss_mode=rlspec_{loss}",
        f"actor_rollout_ref.rollout.n={N}",
        f"actor_rollout_ref.rollout.response_length={RESPONSE_LEN}",
        f"actor_rollout_ref.rollout.prompt_length={PROMPT_LEN}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={len(PROMPTS) * N}",
        f"algorithm.adv_estimator=rlspec_{advantage}",
        "trainer.device=cpu",
    ]
    with initialize_config_dir(config_dir=os.path.dirname(verl_config.__file__), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _full_params(module):
    return {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for n, p in module.named_parameters()}


def _drive(out_dir):
    """Run STEPS PPO steps of verl's own code per case; write what the tests check to out_dir."""
    import uuid
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    _cpu_platform()
    import verl.models.transformers.monkey_patch as verl_patch
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    EngineRegistry.register(model_type="language_model", backend=["fsdp2"], device="cpu")(FSDPEngineWithLMHead)
    verl_patch.is_trl_available = lambda: False  # verl 0.9.1 vs TRL 1.16: AutoModelForCausalLMWithValueHead is gone
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)

    from verl import DataProto
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage, compute_response_mask
    from verl.workers.engine_workers import ActorRolloutRefWorker
    from verl.workers.rollout.hf_rollout import HFRollout

    from rlspec.optimized.integrations import verl as rlspec_verl

    class ColocatedHFRollout(HFRollout):
        """verl's HF rollout on the actor's module (0.9.1 left it abstract; weights are shared, nothing to sync)."""

        def __init__(self, module, config):
            self.module, self.config = module, config

        async def resume(self, tags):
            return None

        async def release(self):
            return None

        async def update_weights(self, weights, **kwargs):
            return None

    tok = _write_tiny_model(os.path.join(out_dir, "model"))
    rlspec_verl.register_all()
    summary = {}
    for case, (loss, advantage, agg) in CASES.items():
        t0 = time.perf_counter()
        torch.manual_seed(0)
        cfg = _config(os.path.join(out_dir, "model"), loss, advantage, agg)
        calls = []
        registered = core_algos.get_policy_loss_fn(f"rlspec_{loss}")

        def counted(*, config, registered=registered, calls=calls, **kw):
            out = registered(config=config, **kw)
            calls.append({**{k: v.detach().clone() for k, v in kw.items() if isinstance(v, torch.Tensor)},
                          "loss": out[0].detach().clone(), "loss_agg_mode": kw["loss_agg_mode"],
                          "global_batch_info": {k: (None if v is None else float(v))
                                                for k, v in config.global_batch_info.items()}})
            return out

        core_algos.POLICY_LOSS_REGISTRY[f"rlspec_{loss}"] = counted
        worker = ActorRolloutRefWorker(cfg.actor_rollout_ref, role="actor")
        worker.init_model()
        trainer = type("Trainer", (), {"config": cfg, "actor_rollout_wg": worker, "ref_in_actor": False})()
        module = worker.actor.engine.module
        rollout = ColocatedHFRollout(module, cfg.actor_rollout_ref.rollout)
        before = _full_params(module)
        steps, first_adv = [], None
        for _ in range(STEPS):
            uid = np.array([str(uuid.uuid4()) for _ in PROMPTS], dtype=object)
            batch = DataProto.from_dict(non_tensors={"uid": uid}).repeat(repeat_times=N, interleave=True)
            enc = tok(list(PROMPTS), return_tensors="pt", padding="max_length", max_length=PROMPT_LEN)
            pos = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            gen_in = DataProto.from_dict(
                tensors={"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "position_ids": pos},
                meta_info={"eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
            ).repeat(repeat_times=N, interleave=True)
            gen = rollout.generate_sequences(gen_in)
            gen.non_tensor_batch.update(batch.non_tensor_batch)
            batch = gen
            batch.batch["response_mask"] = compute_response_mask(batch)
            batch.meta_info["global_token_num"] = batch.batch["attention_mask"].sum(-1).tolist()
            batch.meta_info["temperature"] = cfg.actor_rollout_ref.rollout.temperature
            mask = batch.batch["response_mask"]
            score = ((batch.batch["responses"] == tok.convert_tokens_to_ids("a")) & mask.bool()).sum(-1).float()
            rewards = torch.zeros(mask.shape, dtype=torch.float32)
            rewards[torch.arange(len(score)), (mask.sum(-1) - 1).clamp(min=0).long()] = score
            batch.batch["token_level_scores"] = batch.batch["token_level_rewards"] = rewards
            old_log_prob, _ = RayPPOTrainer._compute_old_log_prob(trainer, batch)
            old_log_prob.batch.pop("entropys")
            batch = batch.union(old_log_prob)
            batch = compute_advantage(batch, adv_estimator=cfg.algorithm.adv_estimator, gamma=cfg.algorithm.gamma,
                                      lam=cfg.algorithm.lam, num_repeat=N, config=cfg.algorithm)
            if first_adv is None:
                first_adv = {"rewards": score.clone(), "uid": list(batch.non_tensor_batch["uid"]),
                             "mask": mask.clone(), "advantages": batch.batch["advantages"].clone()}
            metrics = RayPPOTrainer._update_actor(trainer, batch).meta_info["metrics"]
            steps.append({"mean_reward": float(score.mean()),
                          "pg_loss": [float(x) for x in metrics["actor/pg_loss"]],
                          "grad_norm": [float(x) for x in metrics["actor/grad_norm"]]})
        after = _full_params(module)
        change = max(float((after[n] - before[n]).abs().max()) for n in before)
        torch.save({"calls": calls, "first_adv": first_adv}, os.path.join(out_dir, f"{case}.pt"))
        summary[case] = {"steps": steps, "max_param_change": change, "n_calls": len(calls),
                         "seconds": time.perf_counter() - t0}
    summary["total_seconds"] = time.perf_counter() - t_start
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    _drive(sys.argv[1])


# ------------------------------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def verl_run(tmp_path_factory):
    for mod in ("verl", "hydra", "transformers", "tokenizers", "uvicorn", "fastapi", "cachetools"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (peers env)")
    out = tmp_path_factory.mktemp("verl_train")
    env = {**os.environ, "VERL_FORCE_DEVICE": "cpu", "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0",
           "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(out / "summary.json") as f:
        summary = json.load(f)
    import torch

    return summary, {case: torch.load(out / f"{case}.pt", weights_only=False) for case in CASES}


def _reference_loss(name, logp, old_logp, adv, mask, agg):
    """The NumPy reference's loss (float64) with the paper-default config and aggregation ``agg`` over this batch."""
    from rlspec.reference import registry

    spec = registry.get(name)
    loss, _ = spec(logp=logp, old_logp=old_logp, adv=adv, mask=mask, config=spec.config(agg=agg))
    return float(loss)


def _concat(calls, key, width):
    """Stack micro-batches of (possibly different) padded widths into one (B, width) array, zero-padded."""
    rows = []
    for c in calls:
        x = c[key].double().numpy() if key != "response_mask" else c[key].numpy().astype(bool)
        rows.append(np.pad(x, ((0, 0), (0, width - x.shape[1]))))
    return np.concatenate(rows)


@pytest.mark.parametrize("case", list(CASES))
def test_verl_trainer_steps_run_the_rlspec_loss(verl_run, case):
    """verl's actor update runs STEPS steps (2 mini-batches of 2 micro-batches each): finite losses, the model
    changes, and every micro-batch loss went through the registered rlspec function."""
    summary, _ = verl_run
    s = summary[case]
    n_mini = len(PROMPTS) // MINI
    assert len(s["steps"]) == STEPS
    assert all(len(st["pg_loss"]) == n_mini for st in s["steps"])
    assert all(np.isfinite(st["pg_loss"]).all() and np.isfinite(st["grad_norm"]).all() for st in s["steps"])
    assert s["n_calls"] == STEPS * n_mini * (MINI * N // MICRO)
    assert s["max_param_change"] > 1e-4


@pytest.mark.parametrize("case", list(CASES))
def test_verl_optimizes_the_reference_loss(verl_run, case):
    """Every mini-batch loss verl logs and backpropagates (the sum of its micro-batch losses, each divided by the
    mini-batch's global token / sequence count) equals the NumPy reference's loss on the whole mini-batch."""
    summary, records = verl_run
    loss, _, agg = CASES[case]
    calls = records[case]["calls"]
    per_mini = MINI * N // MICRO
    logged = [x for st in summary[case]["steps"] for x in st["pg_loss"]]
    assert len(logged) * per_mini == len(calls)
    for i, value in enumerate(logged):
        group = calls[i * per_mini:(i + 1) * per_mini]
        assert {c["loss_agg_mode"] for c in group} == {agg}
        width = max(c["log_prob"].shape[1] for c in group)
        ref = _reference_loss(loss, *(_concat(group, k, width) for k in
                                      ("log_prob", "old_log_prob", "advantages", "response_mask")), agg)
        micro_sum = sum(float(c["loss"]) for c in group)
        assert abs(micro_sum - ref) <= 1e-5 * max(1.0, abs(ref)), (i, micro_sum, ref)
        assert abs(value - micro_sum) <= 1e-6 * max(1.0, abs(ref))
    # off-policy mini-batches were there: the second mini-batch of a step sees updated weights
    drift = [float((c["log_prob"] - c["old_log_prob"]).abs().max()) for c in calls[per_mini:2 * per_mini]]
    assert max(drift) > 1e-4


@pytest.mark.parametrize("case", list(CASES))
def test_verl_compute_advantage_is_the_reference_estimator(verl_run, case):
    """verl's compute_advantage with the rlspec estimator, on verl's uid groups, gives the reference advantage
    broadcast over response tokens (0 on padding)."""
    from rlspec.reference import registry

    _, records = verl_run
    _, advantage, _ = CASES[case]
    a = records[case]["first_adv"]
    _, group = np.unique(np.asarray(a["uid"], dtype=str), return_inverse=True)
    mask = a["mask"].numpy().astype(bool)
    spec = registry.get(advantage)
    ref = np.asarray(spec(rewards=a["rewards"].double().numpy(), group=group, mask=mask, config=spec.config()))
    ref = np.broadcast_to(ref if ref.ndim == 2 else ref[:, None], mask.shape) * mask
    np.testing.assert_allclose(a["advantages"].double().numpy(), ref, rtol=1e-5, atol=1e-6)
    assert np.abs(ref).max() > 0  # the groups had different rewards: a non-trivial check


@pytest.mark.parametrize("loss,agg", [("r2vpo", "token-mean"), ("fiberpo", "seq-mean-token-mean")])
def test_bfloat16_log_probs_keep_float32_advantages(loss, agg):
    """verl's FSDP engine hands the loss bfloat16 log-probs next to float32 advantages: the registered loss keeps
    the advantages' float32 values (rounding them to bfloat16 moved R²VPO's loss by 2e-3 relative and broke the
    zero-sum of GRPO advantages that FiberPO's on-policy loss relies on)."""
    import torch

    from rlspec.optimized.integrations import verl as rlspec_verl

    g = torch.Generator().manual_seed(0)
    B, T = 8, 6
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[5, 1:] = False
    old = (-torch.rand(B, T, generator=g) * 2).to(torch.bfloat16)
    logp = (old.float() + 0.05 * torch.randn(B, T, generator=g)).to(torch.bfloat16)
    adv = (torch.randn(B, 1, generator=g) * 1.3 + 0.0123).expand(B, T).contiguous()  # not bf16-representable
    got, _ = rlspec_verl.make_policy_loss(loss)(old_log_prob=old.float(), log_prob=logp, advantages=adv,
                                                response_mask=mask, loss_agg_mode=agg)
    ref = _reference_loss(loss, logp.double().numpy(), old.double().numpy(), adv.double().numpy(), mask.numpy(), agg)
    assert got.dtype == torch.float32
    assert abs(float(got) - ref) <= 1e-5 * max(1.0, abs(ref)), (float(got), ref)

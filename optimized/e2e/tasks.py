"""Synthetic verifiable tasks on a 16-token vocabulary, small enough to learn from scratch on a CPU.

Vocabulary (ids): 0-9 digits, 10 ``<bos>``, 11 ``<sep>``, 12 ``<eos>``, 13 ``+``, 14 ``<pad>``, 15 ``<unk>``.
The policy samples over all 16 ids, so a random policy is right with probability 1/16 per position.

Every task has the same three parts:

* ``prompts(n, generator) -> (n, P) int64``: seeded prompt generator (all prompts of a task share
  one length P, so the rollout needs no left padding);
* ``reward(prompts, responses, mask) -> (n,) float32``: the verifier, with partial credit;
  ``responses`` (n, L) are the sampled ids, ``mask`` (n, L) marks the tokens that count (up to and
  including the first ``<eos>`` for tasks that stop); ids at masked positions are never read;
* ``description``: one line for reports;
* ``reward_components(prompts, responses, mask) -> (n, K)``: the same verdict split into K
  components, for multi-reward advantage estimators (``repeat``: one per position; ``repeateos``:
  digits right, ``<eos>`` in the right place).

Tasks (why these: content-based tasks learn fast on RoPE models; positional ones such as
"reverse" learn slowly on a random-init Llama, as measured in our feasibility runs):

* ``repeat`` (k=3): ``<bos> d <sep>`` → ``d d d``. Fixed length, no ``<eos>``. Reward: fraction of
  the k positions that equal d.
* ``repeateos`` (k=1): ``<bos> d <sep>`` → ``d … d <eos>`` with d repeated n(d) = (d mod k) + 1
  times; the rollout stops at ``<eos>``, tokens after it are masked, so responses have variable
  length. Reward: fraction of the n(d)+1 target positions matched; a response that ends early
  scores the positions it did not produce as wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlspec.reference._validate import fail

VOCAB_SIZE = 16
DIGITS = 10
BOS, SEP, EOS, PLUS, PAD, UNK = 10, 11, 12, 13, 14, 15
TOKENS = [str(d) for d in range(DIGITS)] + ["<bos>", "<sep>", "<eos>", "+", "<pad>", "<unk>"]


@dataclass(frozen=True)
class Task:
    """A synthetic verifiable task: prompt generator, verifier with partial credit, lengths."""

    name: str
    description: str
    prompt_len: int
    max_new_tokens: int
    eos_id: int | None  # None: fixed-length responses (no stop token)
    make_prompts: Callable[[int, torch.Generator], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    score_components: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def prompts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` prompts (n, P) int64, drawn with ``generator`` (seeded by the caller)."""
        if not isinstance(n, int) or n < 1:
            raise fail("n", repr(n), "a positive int")
        return self.make_prompts(n, generator)

    def reward(self, prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reward (n,) float32 in [0, 1] of each response; padding (mask False) is never read."""
        if prompts.ndim != 2 or prompts.shape[1] != self.prompt_len:
            raise fail("prompts", f"shape {tuple(prompts.shape)}", f"shape (n, {self.prompt_len})")
        if responses.ndim != 2 or responses.shape[0] != prompts.shape[0]:
            raise fail("responses", f"shape {tuple(responses.shape)}", f"shape ({prompts.shape[0]}, L)")
        if mask.shape != responses.shape or mask.dtype != torch.bool:
            raise fail("mask", f"{mask.dtype} {tuple(mask.shape)}", f"bool of shape {tuple(responses.shape)}")
        return self.score(prompts, torch.where(mask, responses, torch.full_like(responses, PAD)), mask)

    def reward_components(self, prompts: torch.Tensor, responses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """K reward components (n, K) float32 in [0, 1], for multi-reward advantage estimators (e.g. DVAO)."""
        if self.score_components is None:
            raise fail("task", repr(self.name), "a task with reward components")
        self.reward(prompts, responses, mask)  # validates the arguments
        return self.score_components(prompts, torch.where(mask, responses, torch.full_like(responses, PAD)), mask)


def digit_prompts(n: int, generator: torch.Generator) -> torch.Tensor:
    """``<bos> d <sep>`` with d uniform in 0-9: (n, 3) int64."""
    d = torch.randint(0, DIGITS, (n,), generator=generator)
    return torch.stack([torch.full_like(d, BOS), d, torch.full_like(d, SEP)], dim=1)  # (n, 3)


def position_hits(responses: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor) -> torch.Tensor:
    """[y_i = target_i] for i < len (n, Lt) bool; positions the response did not produce count as wrong."""
    n, L = responses.shape
    Lt = target.shape[1]
    y = torch.full((n, max(L, Lt)), PAD, dtype=responses.dtype)
    y[:, :L] = responses
    return (y[:, :Lt] == target) & (torch.arange(Lt).unsqueeze(0) < target_len.unsqueeze(1))  # (n, Lt)


def fraction_matched(responses: torch.Tensor, target: torch.Tensor, target_len: torch.Tensor) -> torch.Tensor:
    """Σ_{i < len} [y_i = target_i] / len per row (n,): the partial-credit reward."""
    hit = position_hits(responses, target, target_len)
    return (hit.sum(dim=1).float() / target_len.float()).to(torch.float32)


def make_repeat(k: int = 3) -> Task:
    """``<bos> d <sep>`` → d repeated k times (fixed length)."""

    def score(prompts, responses, mask):
        target = prompts[:, 1:2].expand(-1, k)  # (n, k)
        return fraction_matched(responses, target, torch.full((prompts.shape[0],), k))

    def components(prompts, responses, mask):  # one component per position: (n, k)
        target = prompts[:, 1:2].expand(-1, k)
        return position_hits(responses, target, torch.full((prompts.shape[0],), k)).float()

    return Task(name="repeat", description=f"<bos> d <sep> -> d repeated {k} times (fixed length, no <eos>)",
                prompt_len=3, max_new_tokens=k, eos_id=None, make_prompts=digit_prompts, score=score,
                score_components=components)


def make_repeateos(k: int = 1) -> Task:
    """``<bos> d <sep>`` → d repeated (d mod k)+1 times, then ``<eos>`` (variable length)."""

    def target(prompts):
        d = prompts[:, 1]
        reps = d % k + 1  # (n,)
        pos = torch.arange(k + 1).unsqueeze(0)  # (1, k+1)
        return torch.where(pos < reps.unsqueeze(1), d.unsqueeze(1), torch.full_like(pos, EOS)), reps  # (n, k+1)

    def score(prompts, responses, mask):
        tgt, reps = target(prompts)
        return fraction_matched(responses, tgt, reps + 1)

    def components(prompts, responses, mask):  # (n, 2): digits right (fraction), <eos> in the right place
        tgt, reps = target(prompts)
        hit = position_hits(responses, tgt, reps + 1).float()  # (n, k+1)
        is_digit = torch.arange(k + 1).unsqueeze(0) < reps.unsqueeze(1)
        digits = (hit * is_digit).sum(1) / reps.float()
        eos = hit.gather(1, reps.unsqueeze(1))[:, 0]
        return torch.stack([digits, eos], dim=1).to(torch.float32)

    return Task(name="repeateos",
                description=f"<bos> d <sep> -> d repeated (d mod {k})+1 times then <eos>; variable length, "
                            "tokens after <eos> masked",
                prompt_len=3, max_new_tokens=k + 2, eos_id=EOS, make_prompts=digit_prompts, score=score,
                score_components=components)


TASKS: dict[str, Callable[..., Task]] = {"repeat": make_repeat, "repeateos": make_repeateos}


def get_task(name: str, **kw) -> Task:
    """The task called ``name`` (``repeat`` or ``repeateos``), with its parameters (e.g. ``k=3``)."""
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise fail("task", repr(name), f"one of {sorted(TASKS)}")
    return TASKS[name](**kw)

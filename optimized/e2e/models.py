"""Tiny random-init causal LMs from a transformers config (offline: nothing is downloaded).

Shape used for the CPU gate (from our feasibility measurements): vocab 16, width 64, MLP 256,
2 layers, 4 heads (head dim 16), 4 KV heads, 32 positions, untied embeddings: 133k parameters for
Llama, 134k for Qwen2. Initialisation is transformers' own (normal, std ``initializer_range``),
drawn after ``torch.manual_seed(seed)``, so a seed gives the same weights every time on one machine.
"""

from __future__ import annotations

import torch

from rlspec.reference._validate import fail

ARCHS = ("llama", "qwen2")


def tiny_config(arch: str = "llama", vocab_size: int = 16, hidden: int = 64, layers: int = 2, heads: int = 4,
                intermediate: int | None = None, max_positions: int = 32):
    """The transformers config of a tiny model of architecture ``arch`` ("llama" or "qwen2")."""
    if arch not in ARCHS:
        raise fail("arch", repr(arch), f"one of {ARCHS}")
    if hidden % heads:
        raise fail("hidden", repr(hidden), f"a multiple of heads={heads}")
    kw = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
              num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
              max_position_embeddings=max_positions, tie_word_embeddings=False,
              bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**kw)
    from transformers import Qwen2Config

    return Qwen2Config(**kw, use_sliding_window=False)


def make_model(arch: str = "llama", seed: int = 0, **config_kw) -> torch.nn.Module:
    """A random-init ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` (float32, CPU, train mode), seeded."""
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(arch, **config_kw)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    finally:
        torch.random.set_rng_state(state)  # the caller's global RNG is left as it was
    return model.float().train()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

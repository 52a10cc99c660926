"""Causal LMs: load a `save_pretrained` folder or hub id (safetensors, no remote code), or build a small
randomly initialised model of a named architecture (XGLM, BLOOM, Llama, GPT-2, Qwen2) for the `mini`
world and for tests."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, BloomConfig, GPT2Config,
                          LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase, Qwen2Config, XGLMConfig)

ARCHS = ("xglm", "bloom", "llama", "gpt2", "qwen2")


@dataclass(frozen=True)
class ModelShape:
    d_model: int = 256        # hidden size
    n_layers: int = 4         # transformer blocks
    n_heads: int = 4
    ffn_dim: int = 1024       # 4 x d_model, as in XGLM/BLOOM
    max_positions: int = 512  # longest sequence the position table covers
    dropout: float = 0.0      # tiny models on little data: dropout only slows learning here


def build_config(arch: str, shape: ModelShape, tokenizer: PreTrainedTokenizerBase):
    """A transformers config of `arch` with the given shape and the tokenizer's special ids."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is not supported; use one of {', '.join(ARCHS)}")
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    s = shape
    if arch == "xglm":
        return XGLMConfig(d_model=s.d_model, num_layers=s.n_layers, attention_heads=s.n_heads, ffn_dim=s.ffn_dim,
                          max_position_embeddings=s.max_positions, dropout=s.dropout, attention_dropout=s.dropout,
                          activation_dropout=s.dropout, layerdrop=0.0, decoder_start_token_id=tokenizer.eos_token_id,
                          **ids)
    if arch == "bloom":
        return BloomConfig(hidden_size=s.d_model, n_layer=s.n_layers, n_head=s.n_heads,
                           hidden_dropout=s.dropout, attention_dropout=s.dropout, **ids)
    if arch == "llama":
        return LlamaConfig(hidden_size=s.d_model, num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads,
                           num_key_value_heads=s.n_heads, intermediate_size=s.ffn_dim,
                           max_position_embeddings=s.max_positions, attention_dropout=s.dropout, **ids)
    if arch == "qwen2":
        return Qwen2Config(hidden_size=s.d_model, num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads,
                           num_key_value_heads=s.n_heads, intermediate_size=s.ffn_dim,
                           max_position_embeddings=s.max_positions, attention_dropout=s.dropout, **ids)
    return GPT2Config(n_embd=s.d_model, n_layer=s.n_layers, n_head=s.n_heads, n_inner=s.ffn_dim,
                      n_positions=s.max_positions, resid_pdrop=s.dropout, embd_pdrop=s.dropout,
                      attn_pdrop=s.dropout, **ids)


def build_model(arch: str, shape: ModelShape, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM (seeded, so two builds are identical)."""
    config = build_config(arch, shape, tokenizer)
    torch.manual_seed(seed)
    # XGLM has no SDPA kernel in transformers; eager keeps every architecture on one code path.
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager")


def load_model(name_or_path: str, dtype: torch.dtype | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a `save_pretrained` folder or hub id; safetensors only."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:  # Llama ships none; padding positions are masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    config = AutoConfig.from_pretrained(name_or_path)
    kwargs = {"attn_implementation": "eager"} if config.model_type == "xglm" else {}
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, use_safetensors=True, **kwargs)
    return model, tokenizer


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Causal LMs: load a `save_pretrained` folder or hub id (no remote code), or build a small randomly
initialised model of a registered family (`afp_lib.families`: XGLM, BLOOM, Llama, GPT-2, Qwen2) for the
`mini` world and tests.

Loading policy (`load_model`):
- weights: safetensors when the folder/repo has them, else `pytorch_model.bin` read with weights-only
  unpickling (the XGLM repos publish only .bin on their main branch); nothing else is ever unpickled.
- dtype: float32 unless asked otherwise. transformers 5 would load the checkpoint's own dtype (fp16 for XGLM
  and Llama-7B), where AdamW's 1e-5 updates round away. So the torch backend trains fp32 master weights under
  bf16 autocast, DeepSpeed's bf16 mode casts the module to bf16 itself (fp32 master copies in its optimizer),
  and evaluation runs fp32 weights under bf16 autocast when `eval.precision` is bf16.
- attention: SDPA where the architecture has it in transformers (Llama, GPT-2, Qwen2; XGLM and BLOOM have
  eager attention only): PyTorch's fused attention kernels on GPUs, the same values as eager (tested).
- device: where `afp_lib.devices.resolve_device` says (callers pass it; None leaves the model on the CPU)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .families import FAMILIES

ARCHS = tuple(FAMILIES)  # the families a random model can be built of (every registered one)


@dataclass(frozen=True)
class ModelShape:
    d_model: int = 256        # hidden size
    n_layers: int = 4         # transformer blocks
    n_heads: int = 4
    ffn_dim: int = 1024       # 4 x d_model, as in XGLM/BLOOM
    max_positions: int = 512  # longest sequence the position table covers
    dropout: float = 0.0      # tiny models on little data: dropout only slows learning here


def build_config(arch: str, shape: ModelShape, tokenizer: PreTrainedTokenizerBase):
    """A transformers config of `arch` (a family of `afp_lib.families`) with the given shape and the
    tokenizer's special ids."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is not supported; use one of {', '.join(ARCHS)}")
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return FAMILIES[arch].tiny_config(shape, ids)


def build_model(arch: str, shape: ModelShape, tokenizer: PreTrainedTokenizerBase, seed: int = 0,
                attn_implementation: str = "eager") -> PreTrainedModel:
    """A randomly initialised causal LM (seeded, so two builds are identical). Eager attention by default:
    the mini world's models were pretrained with it (XGLM and BLOOM have no other in transformers)."""
    config = build_config(arch, shape, tokenizer)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)


def attention_for(config) -> str:
    """"sdpa" when transformers has an SDPA path for this architecture, else "eager"."""
    try:
        cls = AutoModelForCausalLM._model_mapping[type(config)]
    except (KeyError, AttributeError):  # an architecture the auto class does not map: the safe choice
        return "eager"
    return "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"


def load_model(name_or_path: str, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
               attn_implementation: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a `save_pretrained` folder or hub id (see the module doc for the
    weights, dtype, attention and device policy)."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:  # Llama ships none; padding positions are masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    config = AutoConfig.from_pretrained(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=dtype, use_safetensors=None, weights_only=True,
        attn_implementation=attn_implementation or attention_for(config))
    if device is not None:
        from .devices import resolve_device
        model = model.to(resolve_device(device))
    return model, tokenizer


def set_gradient_checkpointing(model: PreTrainedModel, on: bool) -> None:
    """Activation checkpointing of every block (transformers' own; it wraps each block's `forward`, so the
    early exit's pre-hook and the shared step's capture hook run once, outside the recomputation).
    Non-reentrant: the gradient reaches the embeddings whether or not their inputs need one."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        elif model.is_activation_checkpointing:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif model.is_gradient_checkpointing:
        model.gradient_checkpointing_disable()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Sentence representations from the hidden states after block `l`, with early exit.

`hidden_at_layer(model, ids, mask, l)` runs only the embeddings and blocks `< l` (it stops the forward
pass at the input of block `l` with a pre-hook), so MCL on layer 1 costs one block, not the whole model.
The result equals `model(..., output_hidden_states=True).hidden_states[l]` for every `l` (tested per
architecture). One generic mechanism, no per-model subclass: it only needs the model's block list."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from tqdm import tqdm

from .config import bar_disable
from .families import text_config

logger = logging.getLogger(__name__)

Pooling = Literal["mean", "max", "last", "mean_skip_bos"]
POOLINGS = ("mean", "max", "last", "mean_skip_bos")
# mean_skip_bos: the mean over the tokens that are not the model's BOS (config.bos_token_id). Under causal
# attention the BOS state is the same vector for every sentence; in Gemma 3 its norm is massive, so it pulls
# every mean together (off-diagonal cosine 0.99 at layer 1) and InfoNCE barely moves (docs/budgets-real.md).
# A tokenizer that prepends no BOS (SmolLM2) gets the plain mean.


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer block list of a causal LM of a registered family (`afp_lib.families`: its `blocks`
    path under `model.base_model`, e.g. XGLM `layers`, BLOOM `h`)."""
    from .families import family
    blocks = model.base_model.get_submodule(family(model.config.model_type).blocks)
    n = n_layers(model)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) != n:
        raise ValueError(f"{type(model).__name__}.base_model.{family(model.config.model_type).blocks} is not the "
                         f"{n} transformer blocks (fix its `blocks` entry in afp_lib/families.py)")
    return blocks


def n_layers(model: nn.Module) -> int:
    """The number of transformer blocks, from the language model's config (a multimodal config keeps it
    in `text_config`; its top level may have no `num_hidden_layers`, or another tower's)."""
    return text_config(model.config).num_hidden_layers


class _StopForward(Exception):
    pass


def check_layer(model: nn.Module, layer: int) -> None:
    n = n_layers(model)
    if not isinstance(layer, int) or not 0 <= layer <= n:
        raise ValueError(f"layer={layer!r} is out of range for a {n}-block model; use 0 (embeddings) .. {n}")


def hidden_at_layer(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
    """Hidden states (B, T, H) after block `layer` (0 = embeddings), computing no block past it."""
    check_layer(model, layer)
    blocks = decoder_layers(model)
    base = model.base_model
    if layer == len(blocks):  # the last entry of hidden_states comes after the final norm: run everything
        return base(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                    use_cache=False).hidden_states[layer]
    captured = {}

    def grab(_module, args, kwargs):
        captured["h"] = args[0] if args else kwargs["hidden_states"]
        raise _StopForward

    handle = blocks[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["h"]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: Pooling = "mean") -> torch.Tensor:
    """(B, T, H) -> (B, H) float32 over non-pad tokens; correct for left and right padding. Float32 so that a
    bf16 model's mean is summed, and its vectors compared, at full precision."""
    hidden = hidden.float()
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if how == "mean_skip_bos":   # the caller's mask already leaves the BOS out (pooling_mask)
        how = "mean"
    if how == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if how == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values
    if how == "last":
        positions = torch.arange(hidden.size(1), device=hidden.device)
        last = (attention_mask.long() * positions).argmax(-1)  # index of the last real token, (B,)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ValueError(f"pooling={how!r} is not supported; use one of {', '.join(POOLINGS)}")


def pooling_mask(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """The positions `pool` averages: the attention mask, less the BOS tokens under mean_skip_bos. The model
    still attends to the BOS; only the pooling leaves it out."""
    bos = text_config(model.config).bos_token_id
    if how != "mean_skip_bos" or bos is None:
        return attention_mask
    return attention_mask * (input_ids != bos).to(attention_mask.dtype)


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Every row is its real tokens first, then padding."""
    lengths = attention_mask.sum(1, keepdim=True)
    return bool((attention_mask.bool() == (torch.arange(attention_mask.size(1), device=attention_mask.device) < lengths)).all())


def sentence_embeddings(model, input_ids, attention_mask, layer: int = 1, pooling: Pooling = "mean",
                        length_groups: int = 1) -> torch.Tensor:
    """(B, H) sentence vectors: pool(hidden_at_layer(...)). Keeps the graph when grad is enabled.

    `length_groups` > 1 sorts right-padded rows by length and runs them in that many early-exit calls, each
    cut to its own longest row: short sentences stop paying for the longest one's padding. Under causal
    attention a right-padded row's states do not depend on its padding, so the vectors are the same."""
    if length_groups > 1 and input_ids.size(0) >= 2 * length_groups and right_padded(attention_mask):
        lengths = attention_mask.sum(1)
        order = torch.argsort(lengths)
        parts = []
        for rows in torch.tensor_split(order, length_groups):
            width = int(lengths[rows].max())
            ids, mask = input_ids[rows, :width], attention_mask[rows, :width]
            parts.append(pool(hidden_at_layer(model, ids, mask, layer), pooling_mask(model, ids, mask, pooling), pooling))
        return torch.cat(parts)[torch.argsort(order)]  # back to the input order
    return pool(hidden_at_layer(model, input_ids, attention_mask, layer),
                pooling_mask(model, input_ids, attention_mask, pooling), pooling)


@torch.no_grad()
def embed(model, tokenizer, sentences: Sequence[str], layer: int = 1, pooling: str = "mean",
          batch_size: int = 32, max_length: int = 256, desc: str = "embed") -> torch.Tensor:
    """(N, H) float32 CPU sentence vectors: `pooling` over the hidden states after block `layer`."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not supported; use one of {', '.join(POOLINGS)}")
    check_layer(model, layer)
    if not sentences:
        return torch.empty(0, text_config(model.config).hidden_size)  # a multimodal config keeps it there
    ids = tokenizer(list(sentences), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    if any(len(x) == 0 for x in ids):
        raise ValueError(f"sentence {next(i for i, x in enumerate(ids) if not x)} encodes to no tokens")
    n_cut = sum(len(x) == max_length for x in ids)
    if n_cut:
        logger.warning("%d of %d sentences truncated to %d tokens", n_cut, len(ids), max_length)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked out: any id works
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # no dropout in a measurement
    out = torch.empty(len(ids), text_config(model.config).hidden_size)
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=bar_disable(len(order) <= batch_size)):
            idx = order[start:start + batch_size]
            width = len(ids[idx[0]])  # longest of the batch: the list is sorted
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding; pool() is padding-side safe
                input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
            h = sentence_embeddings(model, input_ids.to(device), mask.to(device), layer, pooling)  # (B, H)
            out[idx] = h.float().cpu()
    finally:
        model.train(was_training)
    return out

"""Activation bytes per token per transformer block, measured on the CPU: what autograd keeps for the backward
pass of one block of XGLM-7.5B, BLOOM-7b1 and Llama-7B, in bf16 (DeepSpeed casts the model), training mode
(the checkpoint's own dropout), at 256 and 512 tokens per row, written as  bytes per token per block =
per_hidden x hidden + per_score x heads x seq_len  (the second term: attention scores, probabilities and
dropout masks that eager attention keeps). These are the `ACT_BYTES` constants of afp_lib/plan/memory.py.

How: every tensor autograd saves (torch.autograd.graph.saved_tensors_hooks) is counted once per storage,
parameters excluded, for a 2-block and a 1-block model; the difference is one block. The model is the real
one scaled down 16x in width and heads (head size, ffn ratio, dropout and sequence length as in the
checkpoint): every per-token term of a block is proportional to the width (hidden, ffn) or to heads x
sequence (attention scores), so the real block keeps 16x the measured bytes.

    python bench/activation_memory.py            # ~1 minute on 2 CPU cores
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from afp_lib.families import hub_checkpoint  # noqa: E402
from afp_lib.models import ModelShape, attention_for, build_config  # noqa: E402

SCALE = 16
SEQS, ROWS = (256, 512), 2


def spec(hub_id: str) -> dict:
    """Hidden size, heads, ffn width and dropouts of the checkpoint's published config (afp_lib/families.py),
    and the attention the trainer loads it with."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    fam, ckpt = hub_checkpoint(hub_id)
    c = CONFIG_MAPPING[fam.name](**dict(ckpt.config))
    ffn = getattr(c, "ffn_dim", None) or getattr(c, "intermediate_size", None) or 4 * c.hidden_size  # BLOOM: 4 x hidden
    dropout = {k: getattr(c, k) for k in ("dropout", "attention_dropout", "activation_dropout", "hidden_dropout")
               if hasattr(c, k)}
    return dict(arch=fam.name, d=c.hidden_size, heads=c.num_attention_heads, ffn=ffn, attn=attention_for(c), dropout=dropout)


MODELS = {hub: spec(hub) for hub in ("facebook/xglm-7.5B", "bigscience/bloom-7b1", "huggyllama/llama-7b")}


def saved_bytes(model, ids) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = max(seen.get(s.data_ptr(), 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, use_cache=False).logits.sum()
    return sum(seen.values())


def block_bytes_per_token(spec: dict, tokenizer, seq: int) -> float:
    """Bytes autograd keeps per token for one block of the real model (16x the scaled one)."""
    from transformers import AutoModelForCausalLM
    out = []
    for layers in (1, 2):
        shape = ModelShape(d_model=spec["d"] // SCALE, n_layers=layers, n_heads=spec["heads"] // SCALE,
                           ffn_dim=spec["ffn"] // SCALE, max_positions=seq + 2)
        config = build_config(spec["arch"], shape, tokenizer)
        for k, v in spec["dropout"].items():
            setattr(config, k, v)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=spec["attn"]).to(torch.bfloat16).train()
        ids = torch.randint(5, config.vocab_size, (ROWS, seq))
        out.append(saved_bytes(model, ids))
    return (out[1] - out[0]) * SCALE / (ROWS * seq)


def main() -> None:
    from afp_lib.tokenizer import train_bpe
    torch.set_num_threads(2)
    tokenizer = train_bpe(["a b c d e f g h i j k l m n o p"] * 20, vocab_size=300, min_frequency=1)
    result = {}
    for hub, spec in MODELS.items():
        (s0, s1), (b0, b1) = SEQS, [block_bytes_per_token(spec, tokenizer, s) for s in SEQS]
        per_score = (b1 - b0) / (spec["heads"] * (s1 - s0))
        per_hidden = (b1 - per_score * spec["heads"] * s1) / spec["d"]
        result[hub] = {"bytes_per_token_per_block": {s0: round(b0), s1: round(b1)}, "per_hidden": round(per_hidden, 2),
                       "per_score": round(per_score, 2), "attention": spec["attn"]}
        print(f"{hub}: {b1 / 1024:.0f} KiB per token per block at {s1} tokens per row ({b0 / 1024:.0f} KiB at {s0}) "
              f"= {per_hidden:.2f} x hidden + {per_score:.2f} x heads x seq_len ({spec['attn']} attention, bf16, "
              "train mode)", flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""MCL vectors read from the CIT forward, when a step's CIT rows are built from its own pairs.

In translation mode CIT sample i is `<s> sentence Answer in X: response`, where `sentence` is one side of
pair i (also when b = a and the response repeats it). Under causal attention the hidden states of that
prefix do not depend on what follows, so after block l they equal a standalone early-exit forward of the
sentence (right padding keeps the positions too). A pre-hook on block l during the CIT forward therefore
gives that side's MCL vector for free, and only the other side needs the early-exit call: MCL's extra
forward is halved, and the MCL gradient of the shared side flows back through the CIT graph.

The plan is checked on token ids, not assumed: a row whose sentence is not an exact token prefix of its
CIT row (context cut from the left, a tokenizer that merges across the boundary) keeps both sides in the
early-exit batch. Runs whose CIT samples are not the pairs' own (alpaca/bactrian, packing, other
objectives) get no plan and use the two independent batches of `collate`."""
from __future__ import annotations

import contextlib

import torch

from ..hidden import decoder_layers, pool, pooling_mask, sentence_embeddings
from ..losses import cit_loss
from . import collate

NONE = -1  # plan value of a pair with no side shared


def share_plan(cfg, pairs: list, cit: list, cit_samples: list[dict]) -> list[int] | None:
    """Per encoded pair: the side (0 src, 1 tgt) that is an exact token prefix of encoded CIT row i, or NONE.
    None when the CIT rows are not one translation sample per pair in pair order (see the module doc)."""
    if not (cfg.objective == "afp" and not cfg.cit.pack and cfg.cit_batch_size <= cfg.batch_size
            and len(cit_samples) == len(pairs) == len(cit) and all("context_side" in s for s in cit_samples)):
        return None
    plan = []
    for sides, (ids, _), sample in zip(pairs, cit, cit_samples):
        side = 0 if sample["context_side"] == "src" else 1
        sent = sides[side]
        plan.append(side if len(sent) < len(ids) and ids[:len(sent)] == sent else NONE)
    return plan if any(s != NONE for s in plan) else None


def shared_batches(pairs: list, cit: list, plan: list[int], indices: list[int], n_cit: int,
                   pad_id: int) -> tuple[dict, dict]:
    """(pairs batch, CIT batch) of one micro-step. The CIT batch holds the rows of the first n_cit pairs.
    The pairs batch holds the early-exit rows (every side not read from a CIT row) and says where each
    side's vector lies in cat([early-exit vectors, CIT-prefix vectors]): src_index, tgt_index (B,);
    cit_prefix (n_cit,) is the shared sentence's length in each CIT row (0: nothing shared)."""
    lm = collate.lm_batch(cit, indices[:n_cit], pad_id)
    seqs, where, prefix = [], [], [0] * n_cit
    for r, i in enumerate(indices):
        side = plan[i] if r < n_cit else NONE
        at = []
        for s in (0, 1):
            if s == side:
                at.append(("cit", r))
                prefix[r] = len(pairs[i][s])
            else:
                at.append(("exit", len(seqs)))
                seqs.append(pairs[i][s])
        where.append(at)
    n_exit = len(seqs)
    index = [[k if kind == "exit" else n_exit + k for kind, k in at] for at in where]
    batch = {"input_ids": collate.pad(seqs, pad_id), "attention_mask": collate.pad([[1] * len(s) for s in seqs], 0),
             "src_index": torch.tensor([a for a, _ in index]), "tgt_index": torch.tensor([b for _, b in index]),
             "cit_prefix": torch.tensor(prefix)}
    return batch, lm


@contextlib.contextmanager
def capture_hidden(model, layer: int):
    """Record `hidden_states[layer]` of the next forward of `model` without changing it: the input of block
    `layer`, or for the last layer the base model's output (after the final norm, as in hidden_states)."""
    blocks = decoder_layers(model)
    box: dict = {}
    if layer < len(blocks):
        def grab(_module, args, kwargs):
            box["h"] = args[0] if args else kwargs["hidden_states"]
        handle = blocks[layer].register_forward_pre_hook(grab, with_kwargs=True)
    else:
        def grab(_module, _args, output):
            box["h"] = output[0]
        handle = model.base_model.register_forward_hook(grab)
    try:
        yield box
    finally:
        handle.remove()


def prefix_vectors(model, hidden: torch.Tensor, input_ids: torch.Tensor, prefix: torch.Tensor,
                   pooling: str) -> torch.Tensor:
    """(B, T, H) hidden states of CIT rows -> (B, H) pooled over each row's first prefix[b] tokens only, so
    "last" is the sentence's last token, not the row's (rows with prefix 0 give unused vectors)."""
    positions = torch.arange(hidden.size(1), device=hidden.device)
    mask = (positions < prefix.unsqueeze(1)).long()  # (B, T)
    return pool(hidden, pooling_mask(model, input_ids, mask, pooling), pooling)


def shared_forward(model, layer: int, pooling: str, pairs: dict, lm: dict, length_groups: int = 1,
                   across_ranks: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(src vectors (B, H), tgt vectors (B, H), CIT loss) of one micro-step from `shared_batches`: the CIT
    forward yields hidden_states[layer] of its rows, one early-exit call the sides not found there.
    `across_ranks`: see `losses.cit_loss`."""
    with capture_hidden(model, layer) as captured:
        cit = cit_loss(model, **lm, across_ranks=across_ranks)
    z = prefix_vectors(model, captured["h"], lm["input_ids"], pairs["cit_prefix"], pooling)  # (B_cit, H)
    if pairs["input_ids"].size(0):  # the other sides: (E, T) -> (E, H)
        exit_z = sentence_embeddings(model, pairs["input_ids"], pairs["attention_mask"], layer, pooling, length_groups)
        z = torch.cat([exit_z, z])  # (E + B_cit, H)
    return z[pairs["src_index"]], z[pairs["tgt_index"]], cit

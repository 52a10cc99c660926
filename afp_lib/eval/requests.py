"""Log-likelihood requests at the token level.

A prompt is `start + demo_1 + EOS + ... + demo_k + EOS + filled item` (Appendix C joins demonstrations
with `</s>`). Token ids are built segment by segment, each segment encoded as a text of its own, as a document
starts in pretraining. For XGLM's tokenizer and byte-level BPE this equals tokenizing the joined text (EOS
is a special token never merged with its neighbours; tested); Llama's would not put its "▁" before a text
that follows `</s>` inside one string, the segments have it.

Each candidate-filled item is tokenized whole (no context/continuation split at a string boundary, so no
whitespace contract to get wrong); scoring starts at the first token where the item's candidates differ:

    candidate A   w0 w1 w2 | Yes , w5 w6       <- scored from `start` = 3 (first differing token)
    candidate B   w0 w1 w2 | No  , w5 w6          the shared suffix is scored too (it depends on the label)
"""
from __future__ import annotations

from dataclasses import dataclass

from .prompts import Example


@dataclass(frozen=True)
class Request:
    prefix: tuple[int, ...]   # start token + demonstrations, each followed by EOS; shared -> cached once
    tokens: tuple[int, ...]   # the candidate-filled item, no special tokens
    start: int                # index into `tokens` of the first scored token
    item: int                 # which test item
    choice: int               # which candidate


def start_ids(tokenizer) -> list[int]:
    """What the tokenizer puts in front of every text (XGLM `</s>`, Llama/our BPE `<s>`); a tokenizer that
    adds nothing (GPT-2) gets its BOS or EOS, so the first item token is always conditioned on something."""
    ids = tokenizer("", add_special_tokens=True)["input_ids"]
    if ids:
        return list(ids)
    tok = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [tok]


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Batch-tokenize without special tokens (one Rust call for all texts)."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def build_prefix(tokenizer, demo_texts: list[str]) -> tuple[int, ...]:
    ids = list(start_ids(tokenizer))
    for seg in encode(tokenizer, demo_texts):
        ids += seg + [tokenizer.eos_token_id]
    return tuple(ids)


def common_prefix_len(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = seqs[0][i]
        if any(s[i] != t for s in seqs[1:]):
            return i
    return n


@dataclass(frozen=True)
class EncodedItem:
    candidates: tuple[tuple[int, ...], ...]
    start: int
    gold: int


def encode_examples(tokenizer, examples: list[Example]) -> list[EncodedItem]:
    """Token ids of every candidate and the first scored index of each item (one tokenizer call)."""
    flat = [c for ex in examples for c in ex.candidates]
    ids = encode(tokenizer, flat)
    out, i = [], 0
    for ex in examples:
        cands = ids[i:i + len(ex.candidates)]
        i += len(ex.candidates)
        start = common_prefix_len(cands)
        # a candidate that is a prefix of another would have nothing to score: score its last token at least
        start = min(start, min(len(c) for c in cands) - 1)
        if start < 0:
            raise ValueError(f"empty candidate in {ex.candidates!r}")
        out.append(EncodedItem(tuple(tuple(c) for c in cands), start, ex.gold))
    return out


def build_requests(items: list[EncodedItem], prefixes: list[tuple[int, ...]] | tuple[int, ...]) -> list[Request]:
    """One request per (item, candidate). `prefixes` is one prefix for all items (random demonstrations of a
    seed) or one per item (semantically aligned demonstrations)."""
    per_item = isinstance(prefixes, list)
    return [Request(prefixes[i] if per_item else prefixes, cand, it.start, i, j)
            for i, it in enumerate(items) for j, cand in enumerate(it.candidates)]

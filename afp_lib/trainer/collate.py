"""Token ids for the three kinds of training data, encoded once before the loop, and padded batches.

- pairs: each side encoded alone (BOS as the tokenizer adds it); a batch stacks the B source and the
  B target sentences into one (2B, T) tensor so MCL needs one early-exit call for both sides.
- CIT: context ids (labels -100) + response ids + EOS (labelled, so the model learns to stop).
- CLM: documents joined with EOS and cut into seq_len blocks; the remainder is a shorter last block.
Nothing is dropped silently: every truncation is counted and logged with numbers."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..losses import IGNORE

logger = logging.getLogger(__name__)

Example = tuple[list[int], list[int]]  # (input ids, labels)


def _ids(tokenizer, texts: list[str], special: bool) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=special)["input_ids"] if texts else []


def encode_pairs(tokenizer, pairs: list[dict], seq_len: int) -> list[tuple[list[int], list[int]]]:
    src = _ids(tokenizer, [p["src"] for p in pairs], True)
    tgt = _ids(tokenizer, [p["tgt"] for p in pairs], True)
    cut = sum(len(s) > seq_len for s in src) + sum(len(t) > seq_len for t in tgt)
    if cut:
        logger.warning("pairs: truncated %d of %d sentences to seq_len=%d tokens", cut, 2 * len(pairs), seq_len)
    return [(s[:seq_len], t[:seq_len]) for s, t in zip(src, tgt)]


def split_response(tokenizer, contexts: list[str], responses: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """(context ids, response ids) such that their concatenation is the tokenization of the joined text
    `context + " " + response`, as the model reads it at inference. The response's ids are what follows the
    context's own ids in the joined encoding; encoding " " + response alone would differ with SentencePiece
    tokenizers (a lone "▁" piece before a response that the joined text never shows). Where the joined
    encoding does not start with the context's ids (a merge across the boundary), the response is encoded
    alone and the row counted in the log."""
    ctx = _ids(tokenizer, contexts, True)
    full = _ids(tokenizer, [c + " " + r for c, r in zip(contexts, responses)], True)
    resp, alone = [], []
    for i, (c, f) in enumerate(zip(ctx, full)):
        if len(f) > len(c) and f[:len(c)] == c:
            resp.append(f[len(c):])
        else:
            resp.append(None)
            alone.append(i)
    if alone:
        logger.warning("CIT: %d of %d samples tokenize across the context/response boundary; their responses "
                       "are encoded alone", len(alone), len(contexts))
        for i, ids in zip(alone, _ids(tokenizer, [" " + responses[i] for i in alone], False)):
            resp[i] = ids
    return ctx, resp


def encode_cit(tokenizer, samples: list[dict], seq_len: int) -> list[Example]:
    """Context + " " + response + EOS (`split_response`), labels only on the response and EOS. Too long:
    the context is cut from the left (its first token, BOS where there is one, kept); a response that alone
    does not fit is cut at the end. Both are counted."""
    ctx, resp = split_response(tokenizer, [s["context"] for s in samples], [s["response"] for s in samples])
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out, cut_ctx, cut_resp = [], 0, 0
    for c, r in zip(ctx, resp):
        r = r + eos
        keep_ctx = max(seq_len - len(r), min(len(c), 8))  # keep at least a little context
        if len(c) > keep_ctx:
            c = c[:1] + c[len(c) - keep_ctx + 1:]
            cut_ctx += 1
        if len(c) + len(r) > seq_len:
            r = r[:seq_len - len(c)]
            cut_resp += 1
        out.append((c + r, [IGNORE] * len(c) + r))
    if cut_ctx or cut_resp:
        logger.warning("CIT: %d of %d samples longer than seq_len=%d: %d contexts cut from the left, "
                       "%d responses cut at the end", max(cut_ctx, cut_resp), len(samples), seq_len, cut_ctx, cut_resp)
    return out


def pack_plan(lengths, seq_len: int) -> list[list[int]]:
    """Which examples share a row: lists of example indices, each row's examples in packing order. Whole
    examples, longest first (ties in index order), each into the open row it fills best (rows indexed by
    free space; 167k samples of 20-500 tokens into 512-token rows: 16 s, 99.9% full, measured on this
    2-core CPU). Needs only the lengths, so the on-disk path (trainer.tokenized) packs without the ids."""
    rows: list[list[int]] = []
    used: list[int] = []
    by_free: dict[int, list[int]] = {}  # free tokens -> indices of rows with that much space left
    lengths = np.asarray(lengths, dtype=np.int64)
    for k in np.argsort(-lengths, kind="stable"):  # longest first, ties in index order (as Python's sorted)
        k, n = int(k), int(lengths[k])
        free = next((f for f in range(n, seq_len + 1) if by_free.get(f)), None) if n <= seq_len else None
        if free is None:
            rows.append([k])
            used.append(n)
            i = len(rows) - 1
        else:
            i = by_free[free].pop()
            rows[i].append(k)
            used[i] += n
        left = seq_len - used[i]
        if left > 0:
            by_free.setdefault(left, []).append(i)
    return rows


def pack(examples: list[Example], seq_len: int) -> list[Example]:
    """Whole examples packed into rows of <= seq_len tokens by `pack_plan`. No example is split or
    dropped, so every response token keeps its label. As in the authors' packing there is no attention mask
    between packed samples; the first token of a packed sample is context (label -100), so no loss term
    predicts one sample from the end of another."""
    return [join([examples[k] for k in members]) for members in pack_plan([len(e[0]) for e in examples], seq_len)]


def join(examples: list[Example]) -> Example:
    """One packed row: the examples' ids and labels one after the other."""
    return [x for e in examples for x in e[0]], [x for e in examples for x in e[1]]


def clm_blocks(tokenizer, texts: list[str], seq_len: int) -> list[Example]:
    """Documents -> one stream `doc EOS doc EOS ...` -> blocks of seq_len; the last block may be shorter."""
    return [(b, list(b)) for b in iter_clm_blocks(tokenizer, texts, seq_len)]


def iter_clm_blocks(tokenizer, texts, seq_len: int, chunk: int = 1000):
    """The blocks of `clm_blocks` (ids only) from an iterable of documents, tokenized `chunk` at a time:
    memory bounded by one chunk and one block, whatever the corpus size."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    batch: list[str] = []

    def blocks(final: bool):
        nonlocal stream
        while len(stream) >= seq_len:
            block, stream = stream[:seq_len], stream[seq_len:]
            if len(block) > 1:
                yield block
        if final and len(stream) > 1:
            yield stream

    for text in texts:
        batch.append(text)
        if len(batch) == chunk:
            for ids in _ids(tokenizer, batch, True):
                stream += ids + eos
            batch = []
            yield from blocks(False)
    for ids in _ids(tokenizer, batch, True):
        stream += ids + eos
    yield from blocks(True)


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def pair_batch(encoded: list[tuple[list[int], list[int]]], indices: list[int], pad_id: int) -> dict:
    """input_ids/attention_mask (2B, T): rows 0..B-1 the sources, rows B..2B-1 their targets."""
    seqs = [encoded[i][0] for i in indices] + [encoded[i][1] for i in indices]
    return {"input_ids": pad(seqs, pad_id),
            "attention_mask": pad([[1] * len(s) for s in seqs], 0)}


def lm_batch(examples: list[Example], indices: list[int], pad_id: int) -> dict:
    """input_ids/attention_mask/labels (B, T), right-padded; padding carries no loss."""
    ids = [examples[i][0] for i in indices]
    return {"input_ids": pad(ids, pad_id),
            "attention_mask": pad([[1] * len(s) for s in ids], 0),
            "labels": pad([examples[i][1] for i in indices], IGNORE)}


def n_tokens(batch: dict) -> int:
    """Tokens of the batch's sentences; a shared pairs batch (trainer.shared) adds the sides read from CIT rows."""
    return int(batch["attention_mask"].sum()) + (int(batch["cit_prefix"].sum()) if "cit_prefix" in batch else 0)


"""Token ids on disk, built once: the training pairs and CIT samples of a run as memory-mapped Arrow files.

In-memory lists of token ids cost about 42 bytes per id per process (a Python int in a list); at the paper's
52-language scale that is tens of GB on every rank, and every rank repeats the tokenization. Here rank 0
tokenizes with `datasets.Dataset.map` (batched, written to Arrow as it goes: bounded memory) into
`<folder>/{pairs,cit}.arrow` while the other ranks wait at a barrier; then every rank opens the files
memory-mapped (the page cache is shared by the ranks of a node); `build_once` does the waiting. `TokenRows` gives the rows back in the
shapes `collate` uses, so batches stream from the files through the same padding code.

The ids are those of `collate.encode_pairs` / `collate.encode_cit` (the same functions run on each batch),
stored as int32; a CIT row stores its ids and the number of context tokens (labels = -100 there, ids after).
A folder is complete only once its `done.json` exists (written last, atomically): an interrupted build is
redone, never read."""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterable, Iterator

import datasets
import torch.distributed as dist

from ..losses import IGNORE
from . import collate

DONE = "done.json"
INT_SEQ = datasets.Sequence(datasets.Value("int32"))
PAIR_FEATURES = datasets.Features({"src": INT_SEQ, "tgt": INT_SEQ})
CIT_FEATURES = datasets.Features({"ids": INT_SEQ, "n_ctx": datasets.Value("int32")})


class TokenRows(Sequence):
    """Rows of a memory-mapped Arrow file as collate expects them: (src ids, tgt ids) for pairs,
    (ids, labels) for CIT. Indexing reads only the rows asked for."""

    def __init__(self, ds: datasets.Dataset, kind: str):
        self.ds, self.kind = ds, kind

    def __len__(self) -> int:
        return self.ds.num_rows

    def _row(self, rec: dict) -> tuple[list[int], list[int]]:
        if self.kind == "pairs":
            return rec["src"], rec["tgt"]
        ids, n = rec["ids"], rec["n_ctx"]
        return ids, [IGNORE] * n + ids[n:]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._row(self.ds[int(i)])

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        for batch in self.ds.iter(batch_size=1024):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys)):
                yield self._row(dict(zip(keys, values)))


def _chunks(items: Iterable[dict], keys: tuple[str, ...], size: int) -> Iterator[dict]:
    batch = {k: [] for k in keys}
    for item in items:
        for k in keys:
            batch[k].append(item[k])
        if len(batch[keys[0]]) == size:
            yield batch
            batch = {k: [] for k in keys}
    if batch[keys[0]]:
        yield batch


def _write(out: Path, name: str, items: Iterable[dict], keys: tuple[str, ...], encode: Callable,
           features: datasets.Features, batch_size: int) -> int:
    """Text rows -> an Arrow text file, chunk by chunk (bounded memory) -> token ids by `Dataset.map`
    (batched, written as it goes) at out/<name>.arrow."""
    import pyarrow as pa
    text_path = out / "cache" / f"{name}-text.arrow"
    text_path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(k, pa.string()) for k in keys])
    with pa.OSFile(str(text_path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for chunk in _chunks(items, keys, batch_size):
            writer.write_batch(pa.record_batch([pa.array(chunk[k], pa.string()) for k in keys], schema=schema))
    text = datasets.Dataset.from_file(str(text_path))
    ids = text.map(encode, batched=True, batch_size=batch_size, remove_columns=list(keys), features=features,
                   cache_file_name=str(out / f"{name}.arrow"), writer_batch_size=batch_size,
                   load_from_cache_file=False, desc=f"tokenize {name}")
    return ids.num_rows


def build(out: Path, tokenizer, pairs: Iterable[dict] | None, cit: Iterable[dict] | None, seq_len: int,
          batch_size: int = 1000) -> dict:
    """Tokenize pairs (src, tgt) and CIT samples (context, response) into `out`; returns the done record."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)  # a half-built folder from an interrupted build
    out.mkdir(parents=True)
    record = {"seq_len": seq_len, "tokenizer": getattr(tokenizer, "name_or_path", ""), "rows": {}}
    if pairs is not None:
        def enc_pairs(b):
            sides = collate.encode_pairs(tokenizer, [{"src": s, "tgt": t} for s, t in zip(b["src"], b["tgt"])],
                                         seq_len)
            return {"src": [s for s, _ in sides], "tgt": [t for _, t in sides]}
        record["rows"]["pairs"] = _write(out, "pairs", pairs, ("src", "tgt"), enc_pairs, PAIR_FEATURES, batch_size)
    if cit is not None:
        def enc_cit(b):
            rows = collate.encode_cit(tokenizer, [{"context": c, "response": r}
                                                  for c, r in zip(b["context"], b["response"])], seq_len)
            return {"ids": [ids for ids, _ in rows],
                    "n_ctx": [sum(1 for x in labels if x == IGNORE) for _, labels in rows]}
        record["rows"]["cit"] = _write(out, "cit", cit, ("context", "response"), enc_cit, CIT_FEATURES, batch_size)
    shutil.rmtree(out / "cache", ignore_errors=True)  # the text: only the ids are read later
    tmp = out / (DONE + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / DONE)
    return record


def load(out: Path) -> dict[str, TokenRows]:
    """The finished files of `out`, memory-mapped: {"pairs": TokenRows, "cit": TokenRows} (those built)."""
    out = Path(out)
    if not (out / DONE).is_file():
        raise FileNotFoundError(f"{out}: no finished tokenized data ({DONE} missing: the build did not complete)")
    rows = json.loads((out / DONE).read_text(encoding="utf-8"))["rows"]
    return {name: TokenRows(datasets.Dataset.from_file(str(out / f"{name}.arrow")), name) for name in rows}


def build_once(out: Path, make: Callable[[], dict], rank: int | None = None, poll_s: float = 2.0,
               timeout_s: float = 6 * 3600) -> dict[str, TokenRows]:
    """Rank 0 runs `make()` (which calls `build`) unless `out` is already finished; the other ranks wait for
    its `done.json` (polling the file: a long tokenization must not hit a collective's timeout) and then
    every rank loads the files. A failure of rank 0 is written to `failed.txt`, which the waiting ranks
    raise instead of waiting forever."""
    out = Path(out)
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    failed = out.with_name(out.name + ".failed.txt")
    if rank == 0:
        if not (out / DONE).is_file():
            failed.unlink(missing_ok=True)
            try:
                make()
            except BaseException as e:
                failed.parent.mkdir(parents=True, exist_ok=True)
                failed.write_text(f"{type(e).__name__}: {e}\n", encoding="utf-8")
                raise
    else:
        waited = 0.0
        while not (out / DONE).is_file():
            if failed.is_file():
                raise RuntimeError(f"rank 0 failed to build {out}: {failed.read_text(encoding='utf-8').strip()}")
            if waited > timeout_s:
                raise TimeoutError(f"rank {rank}: {out} not built after {timeout_s:.0f} s")
            time.sleep(poll_s)
            waited += poll_s
    return load(out)

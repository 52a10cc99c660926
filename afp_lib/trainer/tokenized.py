"""Token ids on disk, built once: the training data of a run as memory-mapped Arrow files (`train.tokenized: arrow`).

In-memory lists of token ids cost about 42 bytes per id per process (a Python int in a list); at the paper's
52-language scale that is tens of GB on every rank, and every rank repeats the tokenization. Here rank 0
tokenizes in batches written to Arrow as they come (datasets' ArrowWriter: bounded memory) into a folder
named by a key of tokenizer + data + config (`prepare`), while the other ranks wait; then every rank opens
the files memory-mapped (the page cache is shared by the ranks of a node) and batches read only their rows.

Files: pairs.arrow (src, tgt ids), cit.arrow (ids, n_ctx: labels -100 on the first n_ctx ids; side: which
side of its pair a translation sample's context is), packed.arrow (members: the CIT rows of each packed row,
`collate.pack_plan`), dev.arrow (held-out pairs), clm.arrow (CLM blocks). The ids are those of
`collate.encode_pairs` / `encode_cit` / `iter_clm_blocks`, stored as int32, and `TokenRows` / `PackedRows`
give them back in the shapes collate uses, so batches are those of the in-memory path, id for id.
Rank 0 never holds the run's text: `build` appends the rows of `data.emit_rows` (the one builder of the
training rows, which the in-memory path also reads) to text files as they come, then tokenizes the files.
A build writes into a temporary folder renamed into place once complete (`done.json` written last): an
interrupted build is redone, never read. Rank 0 builds while the other ranks wait (`build_once`)."""
from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterable, Iterator

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from .. import atomic
from ..losses import IGNORE
from . import collate, distributed
from .data import TrainData, emit_rows

logger = logging.getLogger(__name__)

DONE = "done.json"
FORMAT = 3  # bump when the files' layout or the encoding changes: old folders are then not reused
INT_SEQ = datasets.Sequence(datasets.Value("int32"))
PAIR_FEATURES = datasets.Features({"src": INT_SEQ, "tgt": INT_SEQ})
CIT_FEATURES = datasets.Features({"ids": INT_SEQ, "n_ctx": datasets.Value("int32"), "side": datasets.Value("int8")})
SIDES = {"src": 0, "tgt": 1}  # a CIT sample's context_side; -1: not a translation sample of its pair


class TokenRows(Sequence):
    """Rows of an Arrow file as collate expects them: (src ids, tgt ids) for pairs and dev, (ids, labels) for
    CIT and CLM. Indexing reads only the rows asked for, from the file memory-mapped. Pages of a map stay in
    the process's RSS once touched, and a rank's rows are spread over the whole file (at paper scale several
    GiB over a run), so after every `release_rows` rows read the map's pages are dropped from this process
    (madvise MADV_DONTNEED: they stay in the shared page cache and fault back in when read again). Dropping the
    map object instead does not bound it: the datasets/pyarrow objects keep old maps alive (bench/mapped_pages.py)."""

    RELEASE_ROWS = 1000

    def __init__(self, path: Path, kind: str, release_rows: int = RELEASE_ROWS):
        self.path, self.kind, self.release_rows = Path(path), kind, release_rows
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        table = pa.ipc.open_stream(pa.py_buffer(self._map)).read_all()  # zero-copy: buffers point into the map
        self.ds = datasets.Dataset(table, fingerprint=hashlib.sha256(str(self.path).encode()).hexdigest()[:16])
        self.n, self._read, self.releases = self.ds.num_rows, 0, 0

    def read(self, i: int | list[int]) -> dict:
        """Row i (a dict) or rows i (a dict of columns) of the file (copied out of the map)."""
        if self._read >= self.release_rows:
            self._map.madvise(mmap.MADV_DONTNEED)
            self._read, self.releases = 0, self.releases + 1
        self._read += 1 if isinstance(i, int) else len(i)
        return self.ds[i]

    def __len__(self) -> int:
        return self.n

    def _row(self, rec: dict) -> tuple[list[int], list[int]]:
        if self.kind in ("pairs", "dev"):
            return rec["src"], rec["tgt"]
        if self.kind == "clm":
            return rec["ids"], list(rec["ids"])
        ids, n = rec["ids"], rec["n_ctx"]
        return ids, [IGNORE] * n + ids[n:]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._row(self.read(int(i)))

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        return (self._row(rec) for rec in _records(self.path))  # read through a plain file, not the map


class PackedRows(Sequence):
    """Packed CIT rows: row i is the CIT rows listed in packed.arrow's `members` joined (`collate.join`),
    as `collate.pack` builds them in memory."""

    def __init__(self, packed: TokenRows, cit: TokenRows):
        self.packed, self.cit = packed, cit

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        members = self.packed.read(int(i))["members"]
        recs = self.cit.read(members)  # one read for the row's samples, in packing order
        return collate.join([self.cit._row({"ids": a, "n_ctx": n}) for a, n in zip(recs["ids"], recs["n_ctx"])])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class Sides(Sequence):
    """The `context_side` of each CIT row as the dicts `shared.share_plan` reads ({} where there is none)."""

    def __init__(self, cit: TokenRows):
        self.values = np.array(cit.ds.data.column("side").to_numpy())  # a copy: holds no pages of the map

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i):
        v = int(self.values[i])
        return {"context_side": ("src", "tgt")[v]} if v >= 0 else {}


class _TextSink:
    """Text rows appended one at a time to an Arrow stream file, `size` rows per record batch (bounded memory)."""

    def __init__(self, path: Path, keys: tuple[str, ...], size: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.keys, self.size, self.rows = path, keys, size, 0
        self.schema = pa.schema([(k, pa.string()) for k in keys])
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.batch = {k: [] for k in keys}

    def add(self, item: dict) -> None:
        for k in self.keys:
            self.batch[k].append(item.get(k, ""))
        self.rows += 1
        if len(self.batch[self.keys[0]]) == self.size:
            self._flush()

    def _flush(self) -> None:
        if self.batch[self.keys[0]]:
            self.writer.write_batch(pa.record_batch([pa.array(self.batch[k], pa.string()) for k in self.keys],
                                                    schema=self.schema))
            self.batch = {k: [] for k in self.keys}

    def close(self) -> int:
        if not self.sink.closed:
            self._flush()
            self.writer.close()
            self.sink.close()
        return self.rows


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow stream file, read through a plain file: unlike a memory map (which
    `Dataset.from_file` gives), the pages read are not kept in the process's RSS, so reading a file of any
    size holds one batch at a time."""
    with pa.OSFile(str(path), "rb") as f:
        yield from pa.ipc.open_stream(f)


def _records(path: Path) -> Iterator[dict]:
    """The rows of an Arrow stream file as dicts, one record batch in memory at a time (`_batches`)."""
    for batch in _batches(path):
        yield from batch.to_pylist()


def _tokenize(out: Path, name: str, text_path: Path, encode: Callable, features: datasets.Features,
              batch_size: int) -> int:
    """An Arrow text file -> token ids at out/<name>.arrow, batch by batch: the text is read through a plain
    file (`_batches`) and the ids written by datasets' ArrowWriter (the writer `Dataset.map` uses), so rank 0's
    RSS does not grow with the text files it reads. The text file's batches are `batch_size` rows (_TextSink)."""
    from datasets.arrow_writer import ArrowWriter
    with ArrowWriter(features=features, path=str(out / f"{name}.arrow"), writer_batch_size=batch_size) as writer:
        for batch in _batches(text_path):
            writer.write_batch(encode(batch.to_pydict()))
        rows, _ = writer.finalize()
    return rows


def _write(out: Path, name: str, items: Iterable[dict], keys: tuple[str, ...], encode: Callable,
           features: datasets.Features, batch_size: int) -> int:
    """Text rows -> an Arrow text file, chunk by chunk (bounded memory) -> token ids at out/<name>.arrow."""
    sink = _TextSink(out / "cache" / f"{name}-text.arrow", keys, batch_size)
    for item in items:
        sink.add(item)
    sink.close()
    return _tokenize(out, name, sink.path, encode, features, batch_size)


def _write_lists(path: Path, column: str, rows: Iterable[list[int]], chunk: int = 10000) -> int:
    """An Arrow stream file with one list<int32> column, written `chunk` rows at a time."""
    schema = pa.schema([(column, pa.list_(pa.int32()))])
    n, buf = 0, []
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for row in rows:
            buf.append(row)
            if len(buf) == chunk:
                writer.write_batch(pa.record_batch([pa.array(buf, pa.list_(pa.int32()))], schema=schema))
                n, buf = n + len(buf), []
        if buf:
            writer.write_batch(pa.record_batch([pa.array(buf, pa.list_(pa.int32()))], schema=schema))
            n += len(buf)
    return n


def _pairs_encoder(tokenizer, seq_len: int) -> Callable:
    def enc(b):
        sides = collate.encode_pairs(tokenizer, [{"src": s, "tgt": t} for s, t in zip(b["src"], b["tgt"])], seq_len)
        return {"src": [s for s, _ in sides], "tgt": [t for _, t in sides]}
    return enc


def _begin(out: Path, tokenizer, seq_len: int, extra: dict | None) -> tuple[Path, dict]:
    tmp = atomic.fresh_dir(out, f"-{os.getpid()}")  # a half-built folder from an interrupted build: removed
    record = {"format": FORMAT, "seq_len": seq_len, "tokenizer": getattr(tokenizer, "name_or_path", ""),
              "rows": {}, **(extra or {})}
    return tmp, record


def _finish(tmp: Path, out: Path, record: dict) -> dict:
    shutil.rmtree(tmp / "cache", ignore_errors=True)  # the text: only the ids are read later
    (tmp / DONE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")  # last: the folder is complete
    atomic.commit_dir(tmp, out)  # replaces an unfinished folder of the same name (never a finished one: build_once)
    return record


def _cit_encoder(tokenizer, seq_len: int) -> Callable:
    def enc(b):
        encoded = collate.encode_cit(tokenizer, [{"context": c, "response": r}
                                                 for c, r in zip(b["context"], b["response"])], seq_len)
        return {"ids": [ids for ids, _ in encoded],
                "n_ctx": [sum(1 for x in labels if x == IGNORE) for _, labels in encoded],
                "side": [SIDES.get(side, -1) for side in b["context_side"]]}
    return enc


def _pack(tmp: Path, seq_len: int) -> int:
    """The packing of cit.arrow's rows, from their lengths alone: one list of row numbers per packed row."""
    ids = datasets.Dataset.from_file(str(tmp / "cit.arrow")).data.column("ids")
    lengths = pa.compute.list_value_length(ids).to_numpy(zero_copy_only=False)
    return _write_lists(tmp / "packed.arrow", "members", collate.pack_plan(lengths, seq_len))


CIT_KEYS = ("context", "response", "context_side")
PAIR_KEYS = ("src", "tgt", "src_lang", "tgt_lang")


class _ArrowText:
    """`data.emit_rows`' sink on disk: text rows appended to Arrow files as they come (bounded memory)."""

    def __init__(self, tmp: Path, batch_size: int):
        self.pairs = _TextSink(tmp / "cache" / "pairs-text.arrow", PAIR_KEYS, batch_size)
        self.samples = _TextSink(tmp / "cache" / "cit-text.arrow", CIT_KEYS, batch_size)
        self.dev_pairs, self.examples = [], []

    def dev(self, pairs: list[dict]) -> None:
        self.dev_pairs = list(pairs)

    def pair(self, p: dict) -> None:
        self.pairs.add(p)
        if len(self.examples) < 2:
            self.examples.append({k: p.get(k) for k in PAIR_KEYS})

    def cit(self, sample: dict) -> None:
        self.samples.add(sample)

    def pairs_again(self) -> Iterator[dict]:
        self.pairs.close()
        return _records(self.pairs.path)


def build(out: Path, cfg, tokenizer, data=None, batch_size: int = 1000) -> dict:
    """The run's rows (`data.emit_rows`: from its config, or a caller's TrainData) tokenized into `out`, with the
    text never all in memory: appended to text files as the rows come, then tokenized batch by batch; the CIT
    rows packed when `cit.pack`; BPre's CLM blocks from the caller's texts or `clm_documents`' order read from
    the files (`_shuffled_texts`). Built in a temporary folder renamed to `out` when complete. Returns the done
    record."""
    out, seq_len = Path(out), cfg.seq_len
    tmp, record = _begin(out, tokenizer, seq_len, None)
    text = _ArrowText(tmp, batch_size)
    n = emit_rows(cfg, text, data)
    n_pairs, n_cit = text.pairs.close(), text.samples.close()
    record["summary"] = TrainData.describe(n)
    record["examples"] = text.examples
    logger.info("training data (to Arrow files): %s", record["summary"])
    rows, enc_pairs = record["rows"], _pairs_encoder(tokenizer, seq_len)
    if cfg.uses_mcl:
        rows["pairs"] = _tokenize(tmp, "pairs", text.pairs.path, enc_pairs, PAIR_FEATURES, batch_size)
    rows["dev"] = _write(tmp, "dev", text.dev_pairs, ("src", "tgt"), enc_pairs, PAIR_FEATURES, batch_size)
    if cfg.uses_cit:
        rows["cit"] = _tokenize(tmp, "cit", text.samples.path, _cit_encoder(tokenizer, seq_len), CIT_FEATURES,
                                batch_size)
        if cfg.cit.pack:
            rows["packed"] = _pack(tmp, seq_len)
    if cfg.objective == "clm":
        given = data is not None and data.clm_texts
        texts = iter(data.clm_texts) if given else _shuffled_texts(text.pairs.path, n_pairs, text.samples.path,
                                                                    n_cit, cfg.seed)
        rows["clm"] = _write_lists(tmp / "clm.arrow", "ids", collate.iter_clm_blocks(tokenizer, texts, seq_len))
    return _finish(tmp, out, record)


def _shuffled_texts(pairs_text: Path, n_pairs: int, cit_text: Path, n_cit: int, seed: int,
                    chunk: int = 10000) -> Iterator[str]:
    """`data.clm_documents` read from the text files: text i < 2 n_pairs is side i % 2 of pair i // 2, text
    2 n_pairs + k is CIT sample k (`cit.sample_text`). The shuffle runs on an int64 array of text numbers
    (the same draws as on the list of texts). The files are memory-mapped afresh for each chunk, so the
    pages its random reads touch leave the RSS."""
    import random
    from array import array

    from ..cit import sample_text
    order = array("q", range(2 * n_pairs + n_cit))
    random.Random(seed).shuffle(order)
    order = np.frombuffer(order, dtype=np.int64)
    for start in range(0, len(order), chunk):
        idx = order[start:start + chunk]
        texts = np.empty(len(idx), dtype=object)
        side = idx < 2 * n_pairs
        with pa.memory_map(str(pairs_text)) as source:
            table = pa.ipc.open_stream(source).read_all()
            rows = idx[side] // 2
            s, t = table.column("src").take(rows).to_pylist(), table.column("tgt").take(rows).to_pylist()
            texts[side] = [b if i % 2 else a for i, a, b in zip(idx[side].tolist(), s, t)]
            del table
        if not side.all():
            with pa.memory_map(str(cit_text)) as source:
                table = pa.ipc.open_stream(source).read_all().take(idx[~side] - 2 * n_pairs)
                texts[~side] = [sample_text(r) for r in table.select(["context", "response"]).to_pylist()]
                del table
        yield from texts.tolist()


def load(out: Path) -> dict:
    """The finished files of `out`, memory-mapped: {"pairs", "dev", "clm": TokenRows, "cit": TokenRows or,
    when packed, PackedRows, "cit_rows": the unpacked TokenRows} (those built)."""
    out = Path(out)
    if not (out / DONE).is_file():
        raise FileNotFoundError(f"{out}: no finished tokenized data ({DONE} missing: the build did not complete)")
    names = json.loads((out / DONE).read_text(encoding="utf-8"))["rows"]
    rows = {name: TokenRows(out / f"{name}.arrow", name) for name in names if name != "packed"}
    if "cit" in rows:
        rows["cit_rows"] = rows["cit"]
    if "packed" in names:
        rows["cit"] = PackedRows(TokenRows(out / "packed.arrow", "packed"), rows["cit_rows"])
    return rows


def build_once(out: Path, make: Callable[[], dict], wait_s: float = 6 * 3600) -> dict:
    """Rank 0 runs `make()` (which calls `build`) unless `out` is already finished, while the other ranks wait
    on a flag file (`distributed.on_main`: no collective held, so a long tokenization cannot trip the group's
    timeout; rank 0's error is raised on them); then every rank loads the files."""
    out = Path(out)

    def work():
        if (out / DONE).is_file():
            logger.info("tokenized data: reusing %s", out)
        else:
            make()
    distributed.on_main(work, out.parent, f"tokenizing {out.name}", wait_s, poll_s=2.0, name=f".{out.name}.json")
    return load(out)


def tokenizer_fingerprint(tokenizer) -> str:
    """What the ids depend on: the tokenizer's model, normalizer, pre-tokenizer and post-processor (a fast
    tokenizer's JSON without its truncation/padding state) or vocabulary, and the special tokens."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None), spec.pop("padding", None)
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    special = {"map": tokenizer.special_tokens_map, "eos": tokenizer.eos_token_id, "bos": tokenizer.bos_token_id,
               "add_bos": getattr(tokenizer, "add_bos_token", None), "add_eos": getattr(tokenizer, "add_eos_token", None)}
    h.update(json.dumps(special, sort_keys=True, default=str).encode())
    return h.hexdigest()


def data_fingerprint(data) -> str:
    """sha256 of a caller's TrainData, streamed item by item (no second copy of the text)."""
    h = hashlib.sha256()
    for name in ("pairs", "cit", "clm_texts", "dev_pairs"):
        h.update(f"\n{name}\n".encode())
        for item in getattr(data, name):
            h.update(json.dumps(item, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def cache_root() -> Path:
    """Where tokenized folders live: $AFP_TOKENIZED, else <runs>/_tokenized (must be one folder all ranks see)."""
    from ..paths import runs_dir
    return Path(os.environ.get("AFP_TOKENIZED") or runs_dir() / "_tokenized")


def cache_key(cfg, tokenizer, data=None) -> str:
    """Names the folder: tokenizer + the data (its config and the store's manifest hash, or a caller's data
    itself) + what shapes the ids (seq_len, objective, packing)."""
    from ..data.store import manifest_hash
    from ..paths import mirror_root
    from ..config import to_dict
    payload = {"format": FORMAT, "tokenizer": tokenizer_fingerprint(tokenizer), "seq_len": cfg.seq_len,
               "objective": cfg.objective, "seed": cfg.seed, "p_src": cfg.p_src, "data": to_dict(cfg.data),
               "cit": to_dict(cfg.cit)}
    if data is not None:
        payload["given"] = data_fingerprint(data)
    else:
        root = mirror_root()
        payload["store"] = manifest_hash(root) if root is not None else "hub (revisions not pinned)"
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare(cfg, tokenizer, data=None, root: Path | None = None) -> tuple[dict, dict]:
    """The run's token rows from disk, built once: (rows as `load` gives them, the done record). Rank 0 builds
    them (`build`) only when their folder is missing; the other ranks never hold the text."""
    out = Path(root or cache_root()) / f"{cfg.name}-{cache_key(cfg, tokenizer, data)}"
    rows = build_once(out, lambda: build(out, cfg, tokenizer, data))
    return rows, json.loads((out / DONE).read_text(encoding="utf-8"))

"""`load_split(hub_id, config, split)` -> `datasets.Dataset`, from the hub or the offline mirror.

The mirror keeps the hub's schemas at `hub/<hub_id>/<config>/<split>.jsonl` (the shared offline mirror) or
`.parquet` (a store written by `data fetch`), so every path returns the same field names. Every record read
from a JSON-lines file is checked against the schema declared below (a bad line raises `DataError` naming
file, line and field); a Parquet file's columns and types are checked against it. Schema-valid rows whose
values a task cannot use (a label outside its label set, an empty text, ...: `validate.RULES`) are dropped,
each logged as `file:line: field: what is wrong`, on every path (JSON lines, Parquet, the hub).

Only a missing dataset/config/split is `DatasetNotFound` (callers may skip a source for it). Network, auth
and rate-limit errors are `HubUnavailable`: they stop the run on every rank, naming the dataset and how to
retry, instead of leaving ranks with different data."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets

from ..paths import MIRROR_ENV, mirror_root
from . import store, validate
from .validate import DataError

# Field -> Python type(s), as on the hub. Declared, not inferred, so a broken mirror fails loudly.
STR, INT, BOOL = (str,), (int,), (bool,)
FLORES = {"id": INT, "URL": STR, "domain": STR, "topic": STR, "has_image": INT, "has_hyperlink": INT, "sentence": STR}
SCHEMAS: dict[str, dict[str, tuple]] = {
    "facebook/xnli": {"premise": STR, "hypothesis": STR, "label": INT},
    "google-research-datasets/paws-x": {"id": INT, "sentence1": STR, "sentence2": STR, "label": INT},
    "cambridgeltl/xcopa": {"premise": STR, "choice1": STR, "choice2": STR, "question": STR, "label": INT,
                           "idx": INT, "changed": BOOL},
    "juletxara/xstory_cloze": {"story_id": STR, "input_sentence_1": STR, "input_sentence_2": STR,
                               "input_sentence_3": STR, "input_sentence_4": STR, "sentence_quiz1": STR,
                               "sentence_quiz2": STR, "answer_right_ending": INT},
    "Muennighoff/xwinograd": {"sentence": STR, "option1": STR, "option2": STR, "answer": STR},
    "tatsu-lab/alpaca": {"instruction": STR, "input": STR, "output": STR, "text": STR},
    "gsarti/flores_101": FLORES,
    "facebook/flores": FLORES,
    "MBZUAI/Bactrian-X": {"instruction": STR, "input": STR, "id": STR, "output": STR},
    "Helsinki-NLP/opus-100": {"translation": (dict,)},
}


class DatasetNotFound(FileNotFoundError):
    """The (hub id, config, split) asked for does not exist where we looked."""


class HubUnavailable(RuntimeError):
    """The hub could not be read (network, auth, rate limit): not the same as a dataset that does not exist."""


def hub_error(e: Exception, what: str) -> Exception:
    """Classify an exception of the hub client: DatasetNotFound only for a repo/revision/file/config that does
    not exist; everything else HubUnavailable with what to do about it."""
    from huggingface_hub import errors as hf

    retry = (f"Retry, or fetch once on a machine with internet (`python -m afp_lib data fetch`) and point "
             f"${MIRROR_ENV} at the store.")
    from datasets.exceptions import DatasetNotFoundError

    if isinstance(e, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled)):  # subclasses of EntryNotFoundError
        return HubUnavailable(f"{what}: not in the local cache and the hub is not reachable or offline mode is "
                              f"on ({type(e).__name__}: {e}). {retry}")
    if isinstance(e, (hf.RepositoryNotFoundError, hf.RevisionNotFoundError, hf.EntryNotFoundError,
                      DatasetNotFoundError)):
        return DatasetNotFound(f"{what}: not on the hub ({type(e).__name__}: {e})")
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, hf.GatedRepoError) or status in (401, 403):
        return HubUnavailable(f"{what}: access refused (HTTP {status}). Log in (`hf auth login` or $HF_TOKEN) "
                              f"and accept the dataset's terms on its hub page. {retry}")
    if status == 429:
        return HubUnavailable(f"{what}: rate-limited by the hub (HTTP 429). Wait a few minutes; with a token "
                              f"($HF_TOKEN) the limit is higher. {retry}")
    if isinstance(e, (ConnectionError, TimeoutError, OSError)):
        return HubUnavailable(f"{what}: the hub could not be reached ({type(e).__name__}: {e}). {retry}")
    if isinstance(e, ValueError) and "config" in str(e).lower() and ("not found" in str(e).lower()
                                                                     or "available" in str(e).lower()):
        return DatasetNotFound(f"{what}: {e}")
    return HubUnavailable(f"{what}: {type(e).__name__}: {e}. {retry}")


def schema_problems(rec, schema: dict, where: str) -> list[validate.Problem]:
    """Every way `rec` breaks `schema` (missing field, wrong type), as `where: field: what` problems."""
    if not isinstance(rec, dict):
        return [validate.Problem(where, "record", f"expected a JSON object, got {type(rec).__name__}")]
    out = []
    for field, types_ in schema.items():
        if field not in rec:
            out.append(validate.Problem(where, field, "missing"))
            continue
        value = rec[field]
        if not isinstance(value, types_) or (bool not in types_ and isinstance(value, bool)):
            want = " or ".join(t.__name__ for t in types_)
            out.append(validate.Problem(where, field, f"should be {want}, got {type(value).__name__} {value!r:.60}"))
    return out


def _check_record(rec, schema: dict, where: str) -> None:
    problems = schema_problems(rec, schema, where)
    if problems:
        raise DataError(str(problems[0]))


def parse_line(line: str, where: str):
    try:
        return json.loads(line.rstrip("\r\n"))  # columns of the line itself, not of the newline after it
    except json.JSONDecodeError as e:
        raise DataError(str(validate.Problem(where, "json", f"not valid JSON ({e.msg} at column {e.colno})"))) from None


def read_records(path: Path, schema: dict | None = None) -> list[tuple[str, dict]]:
    """("file:line", record) of a JSON-lines file, each checked against `schema`; blank lines skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            rec = parse_line(line, where)
            if schema:
                _check_record(rec, schema, where)
            rows.append((where, rec))
    return rows


def read_jsonl(path: Path, schema: dict | None = None) -> list[dict]:
    """Read a JSON-lines file, checking each record against `schema`; errors name file:line and field."""
    return [rec for _, rec in read_records(path, schema)]


def row_check(hub_id: str, config: str):
    """The value check the loaders apply to a record of (hub_id, config): `check(record, where) -> problems`."""
    return lambda rec, where: validate.row_problems(hub_id, config, rec, where)


def usable(ds: datasets.Dataset, hub_id: str, config: str, name: str) -> datasets.Dataset:
    """`ds` without the rows `validate` rejects (streamed: a million-row split is not held as dicts)."""
    bad, _ = validate.reject(((f"{name} row {i}", rec) for i, rec in enumerate(ds)), row_check(hub_id, config), name)
    return ds.select([i for i in range(len(ds)) if i not in bad]) if bad else ds


def _arrow_ok(arrow_type, types_: tuple) -> bool:
    import pyarrow as pa
    checks = {str: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
              int: pa.types.is_integer, bool: pa.types.is_boolean, dict: pa.types.is_struct}
    return any(checks[t](arrow_type) for t in types_)


def read_parquet(path: Path, schema: dict | None = None):
    """A Parquet file of the store as an Arrow table (memory-mapped); its columns must be exactly `schema`'s
    fields (in any order) with matching types, else DataError naming the file and column."""
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path, memory_map=True)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for truncated or non-Parquet files
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    if schema:
        have, want = set(table.column_names), set(schema)
        if have != want:
            raise DataError(f"{path}: columns {sorted(have)}, expected {sorted(want)} "
                            f"(extra {sorted(have - want)}, missing {sorted(want - have)})")
        for field, types_ in schema.items():
            t = table.schema.field(field).type
            if not _arrow_ok(t, types_):
                want_t = " or ".join(x.__name__ for x in types_)
                raise DataError(f"{path}: column {field!r} has Arrow type {t}, expected {want_t}")
    return table


def _listing(folder: Path) -> str:
    if not folder.is_dir():
        return "nothing"
    names = sorted(p.stem if p.is_file() else p.name for p in folder.iterdir())
    return ", ".join(names) or "nothing"


def mirror_path(root: Path, hub_id: str, config: str, split: str) -> Path:
    """The mirror file for (hub_id, config, split), or DatasetNotFound naming what exists instead."""
    base = root / "hub" / hub_id
    path = base / config / f"{split}.jsonl"
    for candidate in (path, path.with_suffix(".parquet")):
        if candidate.is_file():
            return candidate
    if not base.is_dir():
        raise DatasetNotFound(f"dataset {hub_id!r} is not in the mirror {root} (looked for {base}); "
                              f"it has: {_listing(root / 'hub')}")
    if not (base / config).is_dir():
        raise DatasetNotFound(f"config {config!r} of {hub_id!r} is not in the mirror (looked for {base / config}); "
                              f"configs there: {_listing(base)}")
    raise DatasetNotFound(f"split {split!r} of {hub_id}/{config} is not in the mirror (looked for {path}); "
                          f"splits there: {_listing(base / config)}")


def parquet_dataset(path: Path, schema: dict | None = None) -> datasets.Dataset:
    """A store's Parquet file as a Dataset (`read_parquet`), fingerprinted by the file's path, size and mtime:
    without a fingerprint `datasets.Dataset(table)` hashes the whole table, which peaked at 1.8 GiB of private
    memory for a 0.33 GB table of 1M pairs (0.56 GiB with it; `bench/data_memory.py --dedup`)."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32]
    return datasets.Dataset(read_parquet(path, schema), fingerprint=key)


def load_split(hub_id: str, config: str, split: str) -> datasets.Dataset:
    """One split of a hub dataset: from $AFP_DATA_MIRROR when set, else `datasets.load_dataset`."""
    schema = SCHEMAS.get(hub_id)
    root = mirror_root()
    if root is not None:
        store.check_complete(root)
        path = mirror_path(root, hub_id, config, split)
        if path.suffix == ".parquet":
            store.check_file(root, path)
            return usable(parquet_dataset(path, schema), hub_id, config, str(path))
        rows = read_records(path, schema)
        bad, _ = validate.reject(rows, row_check(hub_id, config), str(path))
        return datasets.Dataset.from_list([rec for i, (_, rec) in enumerate(rows) if i not in bad])
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # the hub raises many types: classify, keep the cause, add what was asked for
        raise hub_error(e, f"{hub_id!r} config {config!r} split {split!r}") from e
    if schema:
        missing = [f for f in schema if f not in ds.column_names]
        if missing:
            raise DataError(f"{hub_id}/{config}/{split} from the hub lacks fields {missing}; has {ds.column_names}")
    return usable(ds, hub_id, config, f"{hub_id}/{config}/{split}")

"""`load_split(hub_id, config, split)` -> `datasets.Dataset`, from the hub or the offline mirror.

The mirror keeps the hub's schemas at `hub/<hub_id>/<config>/<split>.jsonl`, so both paths return the same
field names. Every record read from the mirror is checked against the schema declared below; a bad line
raises `DataError` naming file, line and field."""
from __future__ import annotations

import json
from pathlib import Path

import datasets

from ..paths import MIRROR_ENV, mirror_root

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


class DataError(ValueError):
    """A record that does not match its declared schema (message names file, line and field)."""


class DatasetNotFound(FileNotFoundError):
    """The (hub id, config, split) asked for does not exist where we looked."""


def _check_record(rec, schema: dict, where: str) -> None:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for field, types_ in schema.items():
        if field not in rec:
            raise DataError(f"{where}: missing field {field!r}")
        value = rec[field]
        ok = isinstance(value, types_) and not (bool not in types_ and isinstance(value, bool))
        if not ok:
            want = " or ".join(t.__name__ for t in types_)
            raise DataError(f"{where}: field {field!r} should be {want}, got {type(value).__name__} {value!r:.60}")


def read_jsonl(path: Path, schema: dict | None = None) -> list[dict]:
    """Read a JSON-lines file, checking each record against `schema`; errors name file:line and field."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if schema:
                _check_record(rec, schema, f"{path}:{lineno}")
            rows.append(rec)
    return rows


def _listing(folder: Path) -> str:
    if not folder.is_dir():
        return "nothing"
    names = sorted(p.stem if p.is_file() else p.name for p in folder.iterdir())
    return ", ".join(names) or "nothing"


def mirror_path(root: Path, hub_id: str, config: str, split: str) -> Path:
    """The mirror file for (hub_id, config, split), or DatasetNotFound naming what exists instead."""
    base = root / "hub" / hub_id
    path = base / config / f"{split}.jsonl"
    if path.is_file():
        return path
    if not base.is_dir():
        raise DatasetNotFound(f"dataset {hub_id!r} is not in the mirror {root} (looked for {base}); "
                              f"it has: {_listing(root / 'hub')}")
    if not (base / config).is_dir():
        raise DatasetNotFound(f"config {config!r} of {hub_id!r} is not in the mirror (looked for {base / config}); "
                              f"configs there: {_listing(base)}")
    raise DatasetNotFound(f"split {split!r} of {hub_id}/{config} is not in the mirror (looked for {path}); "
                          f"splits there: {_listing(base / config)}")


def load_split(hub_id: str, config: str, split: str) -> datasets.Dataset:
    """One split of a hub dataset: from $AFP_DATA_MIRROR when set, else `datasets.load_dataset`."""
    schema = SCHEMAS.get(hub_id)
    root = mirror_root()
    if root is not None:
        rows = read_jsonl(mirror_path(root, hub_id, config, split), schema)
        return datasets.Dataset.from_list(rows)
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # the hub raises many types; keep the cause, add what was asked for
        raise DatasetNotFound(f"could not load {hub_id!r} config {config!r} split {split!r} from the Hugging Face "
                              f"hub ({type(e).__name__}: {e}). Offline? Set ${MIRROR_ENV} to a mirror directory.") from e
    if schema:
        missing = [f for f in schema if f not in ds.column_names]
        if missing:
            raise DataError(f"{hub_id}/{config}/{split} from the hub lacks fields {missing}; has {ds.column_names}")
    return ds

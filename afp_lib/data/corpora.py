"""Parallel and monolingual text. Parallel pairs use the OPUS-100 schema (`{"translation": {"en": .., "xx": ..}}`):
from the mirror's `parallel/<source>/en-<xx>.jsonl`, from `Helsinki-NLP/opus-100` on the hub, or sentence by
sentence from the train split of a dataset translated item by item (`STORY_SOURCES`)."""
from __future__ import annotations

from pathlib import Path

import datasets

from ..paths import MIRROR_ENV, mirror_root
from . import store
from . import validate
from .hub import DataError, DatasetNotFound, _listing, load_split, read_records

# Sources that are evaluation data: training on them contaminates the reported numbers.
EVAL_SOURCES = {"tatoeba": "LASER Tatoeba test sets (our retrieval probe)",
                "xnli_test": "the XNLI test set"}


# Sources read from the train split of a multi-way translated dataset: field f of item i in English and field f of
# item i in `lang` translate each other, so each listed field gives one sentence pair. XStoryCloze's stories were
# translated sentence by sentence; its train split is the demonstration pool of the ICL task, never its test set.
STORY_SOURCES = {
    "xstorycloze_train": {"hub_id": "juletxara/xstory_cloze", "split": "train", "key": "story_id",
                          "fields": ["input_sentence_1", "input_sentence_2", "input_sentence_3",
                                     "input_sentence_4", "sentence_quiz1", "sentence_quiz2"]},
}


def parallel_sources() -> list[str]:
    root = mirror_root()
    files = sorted(p.name for p in (root / "parallel").iterdir()) if root else ["opus100"]
    return files + sorted(STORY_SOURCES)


def story_pairs(lang: str, source: str, pivot: str = "en") -> datasets.Dataset:
    """Sentence pairs of a `STORY_SOURCES` dataset: items matched on their key, one pair per listed field."""
    spec = STORY_SOURCES[source]
    by_key = {rec[spec["key"]]: rec for rec in load_split(spec["hub_id"], lang, spec["split"])}
    rows = [{"translation": {pivot: rec[f], lang: by_key[rec[spec["key"]]][f]}}
            for rec in load_split(spec["hub_id"], pivot, spec["split"]) if rec[spec["key"]] in by_key
            for f in spec["fields"]]
    if not rows:
        raise DatasetNotFound(f"{spec['hub_id']} ({spec['split']}): no {spec['key']} shared by {pivot} and {lang}")
    return datasets.Dataset.from_list(rows)


def load_parallel(lang: str, source: str = "opus100", pivot: str = "en") -> datasets.Dataset:
    """Pairs (pivot, lang) as a Dataset with one `translation` dict column (keys `pivot` and `lang`)."""
    if source in STORY_SOURCES:
        return story_pairs(lang, source, pivot)
    root = mirror_root()
    if source == "opus100":
        pair = "-".join(sorted([pivot, lang]))
        return load_split("Helsinki-NLP/opus-100", pair, "train")
    if root is None:  # never a silent stand-in: a probe read from OPUS-100 would be training data
        raise DatasetNotFound(f"parallel source {source!r} is read from an offline mirror or a data store only; "
                              f"fetch one (`python -m afp_lib data fetch`) and set ${MIRROR_ENV}")
    store.check_complete(root)
    path = root / "parallel" / source / f"{pivot}-{lang}.jsonl"
    if not path.is_file():
        folder = root / "parallel" / source
        if not folder.is_dir():
            raise DatasetNotFound(f"parallel source {source!r} is not in the mirror (looked for {folder}); "
                                  f"sources: {_listing(root / 'parallel')}")
        raise DatasetNotFound(f"no {pivot}-{lang} pairs in parallel/{source} (looked for {path}); "
                              f"files there: {_listing(folder)}")
    store.check_file(root, path)
    rows = read_records(path, {"translation": (dict,)})
    bad, _ = validate.reject(rows, parallel_check(pivot, lang), str(path))
    return datasets.Dataset.from_list([{"translation": rec["translation"]} for i, (_, rec) in enumerate(rows)
                                       if i not in bad])


def parallel_check(pivot: str, lang: str):
    """The value check load_parallel applies to a row of a `<pivot>-<lang>` file."""
    return lambda rec, where: validate.parallel_problems(rec["translation"], pivot, lang, where)


def load_mono(lang: str, source: str = "leipzig") -> datasets.Dataset:
    """Monolingual lines `mono/<source>/<lang>.txt` of the mirror as a Dataset with a `text` column."""
    root = mirror_root()
    if root is None:
        raise DatasetNotFound("monolingual corpora are read from the offline mirror only; set $AFP_DATA_MIRROR")
    path = root / "mono" / source / f"{lang}.txt"
    if not path.is_file():
        raise DatasetNotFound(f"no monolingual text for {lang!r} in mono/{source} (looked for {path}); "
                              f"files there: {_listing(root / 'mono' / source)}")
    return datasets.Dataset.from_dict({"text": read_lines(path)})


def read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None

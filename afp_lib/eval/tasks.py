"""Benchmarks as data: `tasks/<name>.yaml` declares the dataset, its per-language configs, which split is
scored and which one gives demonstrations, the prompt function (by name) and the verbalizer words.

`TASKS["xnli"]` is a `Task`; `load_task_data(task, "zh", max_items)` returns the items to score and the
demonstration pool, which never overlap. Unknown tasks, languages or YAML keys fail with the known names."""
from __future__ import annotations

import difflib
import functools
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..data import load_split
from ..paths import mirror_root
from .prompts import PROMPTS, Example

logger = logging.getLogger(__name__)

TASK_DIR = Path(__file__).resolve().parent / "tasks"
HOLDOUT_SEED = 1234   # fixes which items form a holdout demonstration pool (same for every eval seed)
SUBSET_SEED = 1234    # fixes the `max_items` subset: every model, shot count and seed scores the same items
UNLABELLED = -1       # label value of rows without a gold label (the mirror's XNLI test)
KINDS = ("multiple_choice", "translation")


def unknown(kind: str, name, known, where: str = "") -> str:
    known = sorted(map(str, known))
    msg = f"unknown {kind} {name!r}" + (f" in {where}" if where else "")
    close = difflib.get_close_matches(str(name), known, n=3)
    if close:
        msg += f"; did you mean {', '.join(map(repr, close))}?"
    return msg + f" (known: {', '.join(known)})"


@dataclass(frozen=True)
class Language:
    code: str                   # ISO 639-1, as everywhere in afp
    config: str                 # the dataset config holding it (e.g. XWinograd `jp` for ja)
    native: dict = field(default_factory=dict)  # native-language words (optional connectors)
    name: str | None = None     # language name used inside prompts (translation)
    demos_from: str | None = None  # fallback pool: used only when the language has too few rows to hold out its own
    note: str = ""


@dataclass(frozen=True)
class Splits:
    test: str                   # the split that is scored
    demos: str                  # the split demonstrations come from, or "holdout" (a fixed part of `test`)
    holdout: int = 0            # size of the holdout pool when demos == "holdout"
    when_test_unlabelled: dict | None = None  # {test, demos, holdout} used when every test label is -1


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    kind: str                   # "multiple_choice" or "translation"
    dataset: str                # hub id (the mirror uses the same)
    prompt: str                 # name of a function in prompts.py
    label_field: str | None
    splits: Splits
    words: dict
    languages: dict             # code -> Language
    embed: tuple = ()           # fields whose text retrieves semantically aligned demonstrations
    bleu_tokenize: dict = field(default_factory=dict)
    source: str = ""            # the YAML file, for messages
    title: str = ""             # its name in tables ("PAWS-X")
    metrics: tuple = ()         # the metrics its records carry
    order: int = 0              # its place in task lists and tables

    def lang(self, code: str) -> Language:
        if code not in self.languages:
            raise KeyError(unknown("language", code, self.languages, f"task {self.name!r} ({self.source})"))
        return self.languages[code]

    def words_for(self, code: str, connectors: str = "english") -> dict:
        """English words for every language (the paper), or the language's native words where declared."""
        if connectors not in ("english", "native"):
            raise ValueError(f"connectors={connectors!r}; use 'english' (the paper) or 'native'")
        words = dict(self.words)
        if connectors == "native":
            words.update(self.lang(code).native)
        return words

    def example(self, doc: dict, code: str, connectors: str = "english") -> Example:
        return PROMPTS[self.prompt](doc, self.words_for(code, connectors))


class Registry(dict):
    """A dict whose missing keys raise a KeyError listing what exists (with a suggestion)."""

    def __missing__(self, key):
        raise KeyError(unknown("task", key, self.keys()))


_TASK_KEYS = {"task", "version", "title", "order", "metrics", "kind", "dataset", "prompt", "embed", "label_field",
              "splits", "words", "languages", "bleu_tokenize"}
_LANG_KEYS = {"config", "native", "name", "demos_from", "note"}
_SPLIT_KEYS = {"test", "demos", "holdout", "when_test_unlabelled"}


def _check_keys(data: dict, allowed: set, where: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping, got {data!r:.80}")
    for key in data:
        if key not in allowed:
            raise KeyError(unknown("key", key, allowed, where))


def parse_task(data: dict, source: str) -> Task:
    """A `Task` from one YAML document; errors name the file and the bad key or value."""
    _check_keys(data, _TASK_KEYS, source)
    for key in ("task", "title", "order", "metrics", "dataset", "splits", "languages"):
        if key not in data:
            raise KeyError(f"{source}: missing key {key!r}")
    kind = data.get("kind", "multiple_choice")
    if kind not in KINDS:
        raise ValueError(f"{source}: kind={kind!r}; use one of {', '.join(KINDS)}")
    metrics = data["metrics"]
    if not (isinstance(metrics, list) and metrics and all(isinstance(m, str) for m in metrics)):
        raise ValueError(f"{source}: metrics={metrics!r} must be a non-empty list of metric names")
    if not isinstance(data["order"], int) or isinstance(data["order"], bool):
        raise ValueError(f"{source}: order={data['order']!r} must be an integer (the task's place in lists)")
    prompt = data.get("prompt", data["task"])
    if kind == "multiple_choice" and prompt not in PROMPTS:
        raise KeyError(unknown("prompt", prompt, PROMPTS, source))
    _check_keys(data["splits"], _SPLIT_KEYS, f"{source}:splits")
    splits = Splits(**data["splits"])
    if splits.demos == "holdout" and splits.holdout <= 0:
        raise ValueError(f"{source}:splits: demos 'holdout' needs holdout > 0")
    languages = {}
    for code, spec in data["languages"].items():
        _check_keys(spec, _LANG_KEYS, f"{source}:languages.{code}")
        if "config" not in spec:
            raise KeyError(f"{source}:languages.{code}: missing key 'config'")
        languages[code] = Language(code=code, **spec)
    for lang in languages.values():
        if lang.demos_from and lang.demos_from not in languages:
            raise KeyError(unknown("language", lang.demos_from, languages, f"{source}:languages.{lang.code}.demos_from"))
    return Task(name=data["task"], version=int(data.get("version", 1)), kind=kind, dataset=data["dataset"],
                prompt=prompt, label_field=data.get("label_field"), splits=splits, words=dict(data.get("words") or {}),
                languages=languages, embed=tuple(data.get("embed") or ()),
                bleu_tokenize=dict(data.get("bleu_tokenize") or {}), source=source, title=str(data["title"]),
                metrics=tuple(metrics), order=data["order"])


def load_tasks(folder: Path = TASK_DIR) -> Registry:
    """Every `*.yaml` task of `folder`, in their declared `order` (then by name)."""
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            task = parse_task(yaml.safe_load(f), path.name)
        if task.name in found:
            raise ValueError(f"{path.name}: task {task.name!r} is declared twice")
        found[task.name] = task
    return Registry(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


TASKS = load_tasks()
# Every task list of afp is read from the YAMLs: the scored tasks, the multiple-choice ones (the paper's
# "5 datasets" and the default evaluation grid) and every metric a record may carry.
ICL_TASKS = tuple(name for name, t in TASKS.items() if t.kind == "multiple_choice")
METRICS = tuple(dict.fromkeys(m for t in TASKS.values() for m in t.metrics))
TITLES = {name: t.title for name, t in TASKS.items()}


# ---------------------------------------------------------------- data: scored items and demonstration pool

def _rows(dataset: str, config: str, split: str) -> tuple[dict, ...]:
    """A split's rows, read once per data source: the mirror in force is part of the key, so pointing
    $AFP_DATA_MIRROR elsewhere (another store, a test's fake mirror) never returns the other source's rows."""
    return _rows_from(mirror_root(), dataset, config, split)


@functools.lru_cache(maxsize=64)
def _rows_from(source, dataset: str, config: str, split: str) -> tuple[dict, ...]:
    return tuple(load_split(dataset, config, split).to_list())


_rows.cache_clear = _rows_from.cache_clear  # callers that drop scratch rows (the dry run, tests)


def _holdout_positions(n: int, size: int) -> set[int]:
    """A fixed set of `size` positions out of n; the same for every language of the same size (XNLI is
    parallel), so a language's pool items are translations of other languages' pool items, never of scored ones."""
    if size >= n:
        raise ValueError(f"holdout of {size} items leaves nothing to score out of {n}")
    return set(random.Random(HOLDOUT_SEED).sample(range(n), size))


@dataclass(frozen=True)
class TaskData:
    test: tuple[dict, ...]   # the items scored
    pool: tuple[dict, ...]   # where demonstrations are sampled (disjoint from `test`)
    split: str               # name of the scored split
    pool_split: str          # e.g. "validation" or "validation[holdout 200]" or "en:test[holdout 20]"


_RESOLVED: dict[tuple, tuple] = {}


def _resolve(task: Task, code: str) -> tuple[str, list[dict], str, list[dict]]:
    """(scored split, scored rows, pool split, pool rows) of one language, before subsetting (memoised)."""
    key = (task.name, task.dataset, repr(task.splits), code, task.lang(code).config)
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve_uncached(task, code)
    return _RESOLVED[key]


def _resolve_uncached(task: Task, code: str) -> tuple[str, list[dict], str, list[dict]]:
    lang = task.lang(code)
    s = task.splits
    rows = list(_rows(task.dataset, lang.config, s.test))
    test_split, demos, holdout = s.test, s.demos, s.holdout
    lf = task.label_field
    if lf and rows and all(r[lf] == UNLABELLED for r in rows):
        if not s.when_test_unlabelled:
            raise ValueError(f"{task.name}/{code}: every {s.test!r} row is unlabelled ({lf}=-1) and "
                             f"{task.source} declares no splits.when_test_unlabelled")
        alt = s.when_test_unlabelled
        test_split, demos, holdout = alt["test"], alt.get("demos", s.demos), alt.get("holdout", 0)
        logger.warning("%s/%s: %r is unlabelled; scoring %r instead, demonstrations from %s (declared in %s)",
                       task.name, code, s.test, test_split, demos if demos != "holdout" else f"a holdout of {holdout}",
                       task.source)
        rows = list(_rows(task.dataset, lang.config, test_split))
    if lf:
        n_bad = sum(r[lf] == UNLABELLED for r in rows)
        if n_bad:
            logger.warning("%s/%s: dropping %d of %d %r rows without a label", task.name, code, n_bad, len(rows), test_split)
            rows = [r for r in rows if r[lf] != UNLABELLED]
    if demos == "holdout":
        # `demos_from` is a fallback: a language keeps its own holdout when at least as many rows stay scored
        own = not lang.demos_from or len(rows) >= 2 * holdout
        if not own:
            logger.warning("%s/%s: %d %r rows are too few to hold out %d demonstrations; all are scored, with "
                           "demonstrations from %s (declared in %s)", task.name, code, len(rows), test_split,
                           holdout, lang.demos_from, task.source)
        held = _holdout_positions(len(rows), holdout) if own else set()
        pool = [r for i, r in enumerate(rows) if i in held]
        test = [r for i, r in enumerate(rows) if i not in held]
        return test_split, test, f"{test_split}[holdout {holdout}]", pool
    return test_split, rows, demos, list(_rows(task.dataset, lang.config, demos))


def demo_pool(task: Task, code: str) -> tuple[str, list[dict]]:
    """(description, rows) of the demonstrations available for language `code` (its own or `demos_from`)."""
    lang = task.lang(code)
    _, _, pool_split, pool = _resolve(task, code)
    if lang.demos_from and not pool:   # too few rows for a pool of its own (see _resolve_uncached)
        return demo_pool(task, lang.demos_from)
    if not pool:
        raise ValueError(f"{task.name}/{code}: the demonstration pool ({pool_split}) is empty")
    return f"{code}:{pool_split}", pool


def load_task_data(task: Task, code: str, max_items: int | None = None, demo_lang: str | None = None) -> TaskData:
    """Items of `task` in language `code` to score (a fixed subset of `max_items`), and the demonstration
    pool: the language's own (or its YAML `demos_from`), or `demo_lang`'s for cross-lingual ICL."""
    split, test, _, _ = _resolve(task, code)
    if max_items is not None and len(test) > max_items:
        keep = sorted(random.Random(SUBSET_SEED).sample(range(len(test)), max_items))
        test = [test[i] for i in keep]
    pool_split, pool = demo_pool(task, demo_lang or code)
    return TaskData(tuple(test), tuple(pool), split, pool_split)


def check_langs(tasks: list[str], langs: list[str] | None) -> dict[str, list[str]]:
    """task -> languages to run. None means all of each task's languages; a language that no requested task
    has is an error, one that only some tasks have is skipped for the others (logged)."""
    plan = {}
    for name in tasks:
        task = TASKS[name]
        plan[name] = list(task.languages) if langs is None else [c for c in langs if c in task.languages]
    if langs is not None:
        known = {c for name in tasks for c in TASKS[name].languages}
        for code in langs:
            if code not in known:
                raise KeyError(unknown("language", code, known, f"tasks {', '.join(tasks)}"))
        for name in tasks:
            missing = [c for c in langs if c not in TASKS[name].languages]
            if missing:
                logger.info("%s has no %s; skipped there", name, ", ".join(missing))
    return plan

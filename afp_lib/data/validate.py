"""Row checks beyond the schema, shared by the loaders and `python -m afp_lib data check`.

The schema (hub.SCHEMAS) says which fields exist and their types; a record that breaks it makes the whole
file unusable (`DataError`). The rules here say which *values* a task can use: a label outside the task's
label set (XNLI `label: 3` would otherwise be scored as a wrong answer), an empty required text, an XCOPA
`question` other than cause/effect, a parallel row with an empty side or a language key other than the
file's two, a field longer than `MAX_CHARS`. Such a row is dropped by the loader, which logs each one as
`file:line: field: what is wrong` and the count; `data check` prints the same lines."""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# Longest text field accepted, in characters. The longest field in the offline mirror is 2,823 (an Alpaca
# output); a benchmark item or a training sentence 7x longer than that is a broken line join, not data.
MAX_CHARS = 20_000
LOG_FIRST = 5  # problems logged one by one before the loader only counts them


class DataError(ValueError):
    """A record that does not match its declared schema (message names file, line and field)."""


@dataclass(frozen=True)
class Problem:
    where: str   # "file:line" (mirror files) or "hub_id/config/split row i" (the hub)
    field: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.what}"


@dataclass(frozen=True)
class Rule:
    text: tuple[str, ...] = ()                           # text fields that must not be empty
    choices: dict = field(default_factory=dict)          # field -> the values a task can use


UNLABELLED = -1  # XNLI test rows without a gold label (the mirror's); the task loader skips them, counted
RULES: dict[str, Rule] = {
    "facebook/xnli": Rule(("premise", "hypothesis"), {"label": (0, 1, 2, UNLABELLED)}),
    "google-research-datasets/paws-x": Rule(("sentence1", "sentence2"), {"label": (0, 1)}),
    "cambridgeltl/xcopa": Rule(("premise", "choice1", "choice2"), {"question": ("cause", "effect"), "label": (0, 1)}),
    "juletxara/xstory_cloze": Rule(("story_id", "input_sentence_1", "input_sentence_2", "input_sentence_3",
                                    "input_sentence_4", "sentence_quiz1", "sentence_quiz2"),
                                   {"answer_right_ending": (1, 2)}),
    "Muennighoff/xwinograd": Rule(("sentence", "option1", "option2"), {"answer": ("1", "2")}),
    "tatsu-lab/alpaca": Rule(("instruction",)),          # an empty output is skipped (and counted) by cit
    "gsarti/flores_101": Rule(("sentence",)),
    "facebook/flores": Rule(("sentence",)),
    "MBZUAI/Bactrian-X": Rule(("id", "instruction")),    # an empty output is skipped (trainer.data.streamed_bactrian)
}


def _too_long(value) -> bool:
    return isinstance(value, str) and len(value) > MAX_CHARS


def row_problems(hub_id: str, config: str, rec: dict, where: str) -> list[Problem]:
    """What makes a schema-valid record of (hub_id, config) unusable; [] when it is fine."""
    if hub_id == "Helsinki-NLP/opus-100":
        pivot, _, lang = config.partition("-")
        return parallel_problems(rec["translation"], pivot, lang, where)
    rule = RULES.get(hub_id, Rule())
    out = [Problem(where, f, "empty") for f in rule.text if isinstance(rec.get(f), str) and not rec[f].strip()]
    for f, allowed in rule.choices.items():
        if f in rec and rec[f] not in allowed:
            out.append(Problem(where, f, f"{rec[f]!r} is not one of {', '.join(map(repr, allowed))}"))
    if hub_id == "Muennighoff/xwinograd" and isinstance(rec.get("sentence"), str) and "_" not in rec["sentence"]:
        out.append(Problem(where, "sentence", "has no '_' blank for the option"))
    out += [Problem(where, f, f"{len(v)} characters, more than the {MAX_CHARS} allowed")
            for f, v in rec.items() if _too_long(v)]
    return out


def parallel_problems(translation, pivot: str, lang: str, where: str) -> list[Problem]:
    """A `translation` dict of an `<pivot>-<lang>` file: exactly those two keys, both non-empty text."""
    if not isinstance(translation, dict):
        return [Problem(where, "translation", f"should be an object, got {type(translation).__name__}")]
    absent = [k for k in (pivot, lang) if k not in translation]
    out = []
    for k in translation:
        if k not in (pivot, lang):
            close = difflib.get_close_matches(k, absent, n=1, cutoff=0.5)   # `vn` for `vi`
            out.append(Problem(where, f"translation.{k}", f"unexpected language key (this file holds {pivot} and "
                                                          f"{lang}{f'; did you mean {close[0]!r}?' if close else ''})"))
    for k in (pivot, lang):
        v = translation.get(k)
        if v is None:
            out.append(Problem(where, f"translation.{k}", "missing"))
        elif not isinstance(v, str):
            out.append(Problem(where, f"translation.{k}", f"should be str, got {type(v).__name__}"))
        elif not v.strip():
            out.append(Problem(where, f"translation.{k}", "empty"))
        elif _too_long(v):
            out.append(Problem(where, f"translation.{k}", f"{len(v)} characters, more than the {MAX_CHARS} allowed"))
    return out


def reject(rows, check, source: str) -> tuple[set[int], list[Problem]]:
    """Positions of the rows ((where, record) pairs, any iterable) that `check(record, where)` rejects, and
    the first LOG_FIRST problems; those are logged one by one, then the count. No row usable: DataError."""
    bad, first, n, n_problems = set(), [], 0, 0
    for i, (where, rec) in enumerate(rows):
        n += 1
        found = check(rec, where)
        if found:
            bad.add(i)
            n_problems += len(found)
            first += found[:LOG_FIRST - len(first)]
    if bad:
        for p in first:
            logger.warning("%s", p)
        logger.warning("%s: dropped %d of %d rows (%d problems, the first shown above; `python -m afp_lib data "
                       "check` lists them all)", source, len(bad), n, n_problems)
        if len(bad) == n:
            raise DataError(f"{source}: every one of its {n} rows is unusable; first: {first[0]}")
    return bad, first

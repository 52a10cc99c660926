"""Named prompt functions, one per benchmark, referenced from `tasks/*.yaml` by plain string.

Each takes one dataset record and the task's words (English connectors by default, native ones as an
option) and returns an `Example`: the candidate-filled sequences and the index of the gold one. Forms follow
the AFP paper's Appendix C, Tables 15-20, exactly; where the authors' code and lm-evaluation-harness differ,
REFERENCE.md says how. Whole filled sequences are returned, not (context, continuation) pairs: the label may
sit mid-sentence ("{premise}, right? {label}, {hypothesis}"), and the scorer finds where candidates differ."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Example:
    candidates: tuple[str, ...]   # one filled sequence per verbalized label, in label order
    gold: int                     # index of the correct candidate


# name -> prompt function of a multiple-choice task; a task YAML's `prompt:` names one (`@prompt` registers it)
PROMPTS: dict[str, Callable[[dict, dict], Example]] = {}


def prompt(fn: Callable[[dict, dict], Example]) -> Callable[[dict, dict], Example]:
    """Register `fn` under its own name as a multiple-choice prompt."""
    if fn.__name__ in PROMPTS:
        raise ValueError(f"prompt {fn.__name__!r} is registered twice")
    PROMPTS[fn.__name__] = fn
    return fn


def _right(first: str, second: str, words: dict, label: int) -> Example:
    # "{sentence1}, right? {Label}, {sentence2}" (Tables 15 and 16)
    cands = tuple(f"{first}, {words['question']} {w}, {second}" for w in words["labels"])
    return Example(cands, label)


@prompt
def xnli(doc: dict, words: dict) -> Example:
    """Table 15: entailment -> Yes, neutral -> Also, contradiction -> No."""
    return _right(doc["premise"], doc["hypothesis"], words, doc["label"])


@prompt
def pawsx(doc: dict, words: dict) -> Example:
    """Table 16: paraphrase (label 1) -> Yes, not (0) -> No."""
    return _right(doc["sentence1"], doc["sentence2"], words, doc["label"])


@prompt
def xcopa(doc: dict, words: dict) -> Example:
    """Table 17: "cause: {premise} because {choice}" / "effect: {premise} so {choice}"; choices as written."""
    question = doc["question"]
    if question not in ("cause", "effect"):
        raise ValueError(f"XCOPA question={question!r}; expected 'cause' or 'effect'")
    tag = words[question]
    connector = words["because"] if question == "cause" else words["so"]
    cands = tuple(f"{tag} {doc['premise']} {connector} {c}" for c in (doc["choice1"], doc["choice2"]))
    return Example(cands, doc["label"])


@prompt
def xstorycloze(doc: dict, words: dict) -> Example:
    """Table 18: the four sentences and the ending joined by single spaces."""
    story = " ".join(doc[f"input_sentence_{i}"] for i in range(1, 5))
    cands = (f"{story} {doc['sentence_quiz1']}", f"{story} {doc['sentence_quiz2']}")
    return Example(cands, doc["answer_right_ending"] - 1)


@prompt
def xwinograd(doc: dict, words: dict) -> Example:
    """Table 19: `_` replaced by each option as written; the shared suffix is scored too."""
    sentence = doc["sentence"]
    if sentence.count("_") != 1:
        raise ValueError(f"XWinograd sentence must hold exactly one '_': {sentence!r}")
    cands = tuple(sentence.replace("_", doc[k]) for k in ("option1", "option2"))
    return Example(cands, int(doc["answer"]) - 1)


def flores(src: str, src_name: str, tgt_name: str, tgt: str | None = None) -> str:
    """Table 20: "{Src. Lang.}: {src} = {Tgt. Lang.}: {tgt}"; without `tgt` it is the query to complete."""
    query = f"{src_name}: {src} = {tgt_name}:"
    return query if tgt is None else f"{query} {tgt}"


def join_demonstrations(demos: list[str], query: str, eos: str = "</s>") -> str:
    """The prompt as text, demonstrations joined by the EOS token (Appendix C). For display and for
    string-based tools; the scorer builds the same token ids segment by segment."""
    return "".join(d + eos for d in demos) + query

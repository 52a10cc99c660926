"""Cross-lingual instruction tuning samples (Eq. 3) and the parallel pairs they and MCL are built from.

A CIT sample is `(context, response)`: the context is in language a and ends with a prompt naming the
answer language b ("Answer in Chinese:"); the response is in b. One rule for every source with more than
one language (docs/cit-data.md): with probability `p_src`, b = a (monolingual), else b is the pair's other
language. The model is trained on the response tokens only (see `collate.encode_cit`); BPre trains on the
same samples as plain text (`sample_text`).

Sources:
- `translation_samples`: parallel pairs in translation mode (source sentence + prompt -> target sentence),
  direction swapped with probability 0.5 as in the authors' translation mode; b = a means the response
  repeats the source sentence (the monolingual form of a translation sample).
- Bactrian-X (instruction/input/output in each language, matched by `id`), the paper's data: each id gets a
  language pair that `data.policy` allows (`language_pairs`) and a direction, drawn as for a translation pair,
  then p_src (`bactrian_plan`); the context is language a's instruction, the response b's output
  (read one language at a time by `trainer.data.streamed_bactrian`).
- `alpaca_samples`: the English Alpaca subset, b = a = en (p_src has nothing to act on).

Pairs: `bridge_pairs` keeps EN-XX pairs; `pairwise_pairs` adds every XX-YY pair whose sides share the
same English sentence (§3.3.1)."""
from __future__ import annotations

import itertools
import logging
import random
from typing import Iterable, Iterator

logger = logging.getLogger(__name__)

# ISO 639-1 -> English name, for "Answer in <Language>" (paper Table 21, plus the mirror's other codes).
LANGUAGE_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "az": "Azerbaijani", "bg": "Bulgarian", "bn": "Bengali", "cs": "Czech",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque",
    "fa": "Persian", "fi": "Finnish", "fr": "French", "gl": "Galician", "gu": "Gujarati", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole", "id": "Indonesian", "it": "Italian",
    "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "ko": "Korean", "lt": "Lithuanian",
    "lv": "Latvian", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "my": "Burmese",
    "ne": "Nepali", "nl": "Dutch", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua",
    "ro": "Romanian", "ru": "Russian", "si": "Sinhala", "sl": "Slovene", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "xh": "Xhosa", "zh": "Chinese",
}


def language_name(code: str) -> str:
    try:
        return LANGUAGE_NAMES[code]
    except KeyError:
        raise KeyError(f"no language name for code {code!r}; add it to afp_lib.cit.LANGUAGE_NAMES "
                       f"(known: {', '.join(sorted(LANGUAGE_NAMES))})") from None


def answer_prompt(lang: str) -> str:
    return f"Answer in {language_name(lang)}:"


def translate_prompt(lang: str) -> str:
    return f"Translate into {language_name(lang)}:"


PROMPTS = {"answer": answer_prompt, "translate": translate_prompt}


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


def _direction(rng: random.Random, p_src: float) -> tuple[str, str]:
    """(context side, answer side): a random direction (0.5, as the authors' translation mode), then with
    probability p_src the answer stays in the context's language (a copy). Both draws are always made."""
    a, b = ("src", "tgt") if rng.random() < 0.5 else ("tgt", "src")
    return a, a if rng.random() < p_src else b


def translation_plan(pairs: list[dict], p_src: float, seed: int = 0) -> list[tuple[str, str]]:
    """(context side, answer side) per pair, each "src" or "tgt" (`_direction`); both draws are made for every
    pair whatever p_src, so p_src = 0 gives the same directions as any other."""
    rng = random.Random(seed)
    return [_direction(rng, p_src) for _ in pairs]


def iter_translation_samples(pairs: Iterable[dict], p_src: float, prompt: str = "answer",
                             seed: int = 0) -> Iterator[dict]:
    """One CIT sample per pair, following `translation_plan`'s draws, one pair at a time (the streamed Arrow
    build reads pairs as they come); b = a means the response repeats the source."""
    make_prompt = PROMPTS[prompt]
    rng = random.Random(seed)
    for p in pairs:
        a, b = _direction(rng, p_src)
        yield {"context": _join(p[a], make_prompt(p[f"{b}_lang"])), "response": p[b],
               "src_lang": p[f"{a}_lang"], "tgt_lang": p[f"{b}_lang"], "context_side": a}


def translation_samples(pairs: list[dict], p_src: float, prompt: str = "answer", seed: int = 0) -> list[dict]:
    """`iter_translation_samples` as a list (the in-memory data path)."""
    return list(iter_translation_samples(pairs, p_src, prompt, seed))


def alpaca_samples(rows: Iterable[dict], limit: int = 0) -> list[dict]:
    """English instruction samples (b = a = en); rows with an empty output are skipped and counted."""
    out, empty = [], 0
    for row in rows:
        if not row["output"].strip():
            empty += 1
            continue
        out.append({"context": _join(row["instruction"], row["input"], answer_prompt("en")),
                    "response": row["output"].strip(), "src_lang": "en", "tgt_lang": "en"})
        if limit and len(out) >= limit:
            break
    if empty:
        logger.info("alpaca: skipped %d rows with an empty output", empty)
    return out


def language_pairs(langs: Iterable[str], policy: str, pivot: str = "en") -> list[tuple[str, str]]:
    """The language pairs a policy aligns (§3.3.1): "bridge", (pivot, xx) for every other language;
    "pairwise", those and every (xx, yy). The translation pairs of `bridge_pairs` / `pairwise_pairs` and the
    Bactrian-X samples and pairs all follow it."""
    others = sorted(set(langs) - {pivot})
    if policy not in ("bridge", "pairwise"):
        raise ValueError(f"data.policy={policy!r} is invalid; use 'bridge' or 'pairwise'")
    return [(pivot, x) for x in others] + (list(itertools.combinations(others, 2)) if policy == "pairwise" else [])


def bactrian_plan(n: int, langs: list[str], p_src: float, seed: int = 0, policy: str = "bridge",
                  pivot: str = "en") -> list[tuple[str, str]]:
    """(context language a, answer language b) for each of n Bactrian-X ids, drawn as a translation pair's
    sample: a language pair of the policy at random, a random direction and p_src (`_direction`). Under
    "bridge" the pivot is on one side of every sample. A single language: every sample is monolingual."""
    pairs = language_pairs(langs, policy, pivot) if pivot in langs else []
    if not pairs:
        if len(set(langs)) > 1:
            raise ValueError(f"Bactrian-X languages {sorted(langs)} lack the pivot {pivot!r}")
        return [(langs[0], langs[0])] * n
    rng = random.Random(seed)
    plan = []
    for _ in range(n):
        pair = dict(zip(("src", "tgt"), rng.choice(pairs)))
        a, b = _direction(rng, p_src)
        plan.append((pair[a], pair[b]))
    return plan


def sample_text(sample: dict) -> str:
    """A CIT sample as one plain document (BPre's CLM text): context and response joined, as `encode_cit`
    joins them, but every token a target."""
    return _join(sample["context"], sample["response"])


def bridge_pairs(pivot_pairs: dict[str, list[tuple[str, str]]], pivot: str = "en") -> list[dict]:
    """EN-XX pairs: `pivot_pairs[xx]` is a list of (pivot sentence, xx sentence)."""
    return [{"src": e, "tgt": x, "src_lang": pivot, "tgt_lang": lang}
            for lang in sorted(pivot_pairs) for e, x in pivot_pairs[lang]]


def pairwise_pairs(pivot_pairs: dict[str, list[tuple[str, str]]], pivot: str = "en") -> list[dict]:
    """EN-XX pairs plus every XX-YY pair whose two sentences translate the same English sentence."""
    pairs = bridge_pairs(pivot_pairs, pivot)
    by_pivot = {lang: {} for lang in pivot_pairs}
    for lang, rows in pivot_pairs.items():
        for e, x in rows:
            by_pivot[lang].setdefault(e, x)  # first translation of a repeated English sentence
    for xx, yy in itertools.combinations(sorted(pivot_pairs), 2):
        shared = [e for e in by_pivot[xx] if e in by_pivot[yy]]
        pairs += [{"src": by_pivot[xx][e], "tgt": by_pivot[yy][e], "src_lang": xx, "tgt_lang": yy} for e in shared]
        logger.info("pairwise: %d %s-%s pairs through %s", len(shared), xx, yy, pivot)
    return pairs

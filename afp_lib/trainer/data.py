"""The training data of a run, built from its config through afp_lib.data (hub or offline mirror).

`TrainData` is plain lists, so notebooks and the world's pretraining can pass their own:
pairs (src, tgt, src_lang, tgt_lang), CIT samples (context, response), CLM texts, and dev pairs.
Dev pairs are held out before any pair is built, so no training pair (pairwise ones included) shares
an English sentence with them, and a dev pair sharing either side, normalised, with a training pair is dropped
(`drop_seen_dev`). What each objective trains on, and why: docs/cit-data.md."""
from __future__ import annotations

import hashlib
import logging
import random
import re
import unicodedata
from array import array
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .. import cit as cit_lib
from ..data import DatasetNotFound, load_parallel, load_split
from .config import EVAL_SOURCES, TrainConfig

logger = logging.getLogger(__name__)
_NON_WORD = re.compile(r"[\W_]+")


@dataclass
class TrainData:
    pairs: list[dict] = field(default_factory=list)      # MCL (and BPre) pairs: src, tgt, src_lang, tgt_lang
    cit: list[dict] = field(default_factory=list)        # CIT samples: context, response (+ languages)
    clm_texts: list[str] = field(default_factory=list)   # monolingual documents for objective "clm"
    dev_pairs: list[dict] = field(default_factory=list)  # held-out pairs for the alignment logs

    def summary(self) -> str:
        return self.describe({"pairs": len(self.pairs), "cit": len(self.cit), "clm": len(self.clm_texts),
                              "dev": len(self.dev_pairs)})

    @staticmethod
    def describe(n: dict[str, int]) -> str:
        """Counts as the logs and the tokenized folder's record give them (`emit_rows` returns them)."""
        return f"{n['pairs']} pairs, {n['cit']} CIT samples, {n['clm']} CLM texts, {n['dev']} dev pairs"


def pivot_pairs(cfg: TrainConfig) -> dict[str, list[tuple[str, str]]]:
    """lang -> deduplicated (pivot sentence, lang sentence) from every configured source, capped per language."""
    return {lang: lang_pivot_pairs(cfg, lang) for lang in cfg.data.langs}


def lang_pivot_pairs(cfg: TrainConfig, lang: str) -> list[tuple[str, str]]:
    """One language's pairs of `pivot_pairs`: read, deduplicated, shuffled (seeded per language) and capped.
    A source has up to 1M pairs per language, so the dedup holds a 16-byte digest per distinct pair and the
    kept rows' numbers, not their text; the text of the rows left after the cap is read at the end (the
    shuffle's draws depend only on the number of rows, so the order is that of shuffling the text)."""
    d = cfg.data
    seen, where, sets, too_long = set(), array("q"), [], 0  # where: source index << 40 | row number of kept rows
    for source in d.sources:
        if source in EVAL_SOURCES:  # also refused at config load; data may be built from a hand-made config
            raise ValueError(f"refusing to train on evaluation source {source!r}")
        try:
            records = load_parallel(lang, source, pivot=d.pivot)["translation"]
        except DatasetNotFound:
            logger.info("no %s-%s pairs in %s; skipped", d.pivot, lang, source)
            continue
        sets.append(records)
        for j, rec in enumerate(records):
            e, x = rec[d.pivot].strip(), rec[lang].strip()
            if min(len(e), len(x)) < d.min_chars:
                continue
            key = hashlib.blake2b(f"{len(e)}:{e}{x}".encode(), digest_size=16).digest()
            if key in seen:
                continue
            if d.max_chars and max(len(e), len(x)) > d.max_chars:
                too_long += 1
                continue
            seen.add(key)
            where.append((len(sets) - 1) << 40 | j)
    del seen
    if not where:
        if d.bactrian_pairs:  # OPUS-100 has no en-sw / en-tl: Bactrian-X supplies those languages' pairs
            logger.warning("no %s-%s pairs in %s; Bactrian-X pairs only", d.pivot, lang, d.sources)
            return []
        raise ValueError(f"no {d.pivot}-{lang} pairs in any of train.data.sources={d.sources}")
    random.Random(f"{cfg.seed}-{lang}").shuffle(where)
    where = where[: d.max_pairs_per_lang] if d.max_pairs_per_lang else where
    rows = []
    for start in range(0, len(where), 10000):  # the kept rows' text, read back by row number
        chunk = where[start:start + 10000]
        got = {}
        for s, records in enumerate(sets):
            js = [w & (1 << 40) - 1 for w in chunk if w >> 40 == s]
            if js:  # one read from a Dataset's column; a plain list (a caller's stand-in) item by item
                got.update(zip((s << 40 | j for j in js),
                               [records[j] for j in js] if isinstance(records, (list, tuple)) else records[js]))
        rows += [(got[w][d.pivot].strip(), got[w][lang].strip()) for w in chunk]
    logger.info("pairs %s-%s: %d from %s (%d longer than max_chars=%d left out)", d.pivot, lang,
                len(rows), ", ".join(d.sources), too_long, d.max_chars)
    return rows


def dev_per_lang(n_dev: int, n_langs: int) -> int:
    """Dev pairs held out per language: about n_dev spread over the languages, at least one each."""
    return max(1, n_dev // max(1, n_langs)) if n_dev else 0


def split_dev(by_lang: dict[str, list[tuple[str, str]]], n_dev: int) -> tuple[dict, dict]:
    """Hold out about n_dev pairs spread over the languages; drop training pairs sharing their English side,
    then drop the dev pairs a training pair still shares a side with (drop_seen_dev): the training pairs are
    those of the English-side rule alone, so a run's training data does not depend on the second step."""
    per_lang = dev_per_lang(n_dev, len(by_lang))
    dev = {lang: rows[:per_lang] for lang, rows in by_lang.items()}
    dev_en = {e for rows in dev.values() for e, _ in rows}
    train = {lang: [r for r in rows[per_lang:] if r[0] not in dev_en] for lang, rows in by_lang.items()}
    return train, drop_seen_dev(dev, lambda lang: train[lang])


def side_key(text: str) -> bytes:
    """A sentence as the dev split compares it: NFKC, without spaces or punctuation, case folded, hashed (8
    bytes): "Row break." and "row Break" are one sentence."""
    return hashlib.blake2b(_NON_WORD.sub("", unicodedata.normalize("NFKC", text)).casefold().encode(),
                           digest_size=8).digest()


def drop_seen_dev(dev: dict[str, list[tuple[str, str]]], train_rows) -> dict[str, list[tuple[str, str]]]:
    """The dev pairs none of whose sides, normalised (side_key), is a side of a training pair: the English side
    against every language's training pairs, the other side against its own language's. `train_rows(lang)`
    iterates a language's training (en, xx) rows, so the streamed build can read them again instead of holding
    them. Without it, dev pairs whose sentence the model was trained on (same text up to spacing or case, or
    the same translation of another English sentence) inflate the in-domain retrieval probe."""
    en, xx = set(), {}
    for lang in dev:
        xx[lang] = set()
        for e, x in train_rows(lang):
            en.add(side_key(e))
            xx[lang].add(side_key(x))
    kept = {lang: [(e, x) for e, x in rows if side_key(e) not in en and side_key(x) not in xx[lang]]
            for lang, rows in dev.items()}
    dropped = sum(len(rows) for rows in dev.values()) - sum(len(rows) for rows in kept.values())
    if dropped:
        logger.info("dev pairs: %d of %d dropped, a side of each is also a training side (normalised)", dropped,
                    sum(len(rows) for rows in dev.values()))
    return kept


def text_sources(cfg: TrainConfig) -> list[str]:
    """The CIT sources whose samples the run's text includes: as CIT rows (afp, cit, bit) or, for BPre, as
    plain text (`clm_documents`: Table 8 compares the methods on the same data); none for MCL alone."""
    return list(cfg.cit.sources) if cfg.uses_cit or cfg.objective == "clm" else []


def translation_cit(cfg: TrainConfig, pairs: Iterable[dict]) -> Iterator[dict]:
    """The run's translation-mode CIT samples of `pairs`, one per pair: every builder makes them here, so
    p_src acts on them as on every multilingual sample (b = a: the answer repeats the source)."""
    return cit_lib.iter_translation_samples(pairs, cfg.p_src, cfg.cit.prompt, seed=cfg.seed)


def clm_documents(cfg: TrainConfig, pairs: list[dict], cit: list[dict]) -> list[str]:
    """BPre's documents: each pair's two sentences, then each CIT sample's text (`cit.sample_text`),
    shuffled by random.Random(seed) (the streamed build shuffles their numbers with the same draws)."""
    texts = [p[k] for p in pairs for k in ("src", "tgt")] + [cit_lib.sample_text(s) for s in cit]
    random.Random(cfg.seed).shuffle(texts)
    return texts


def config_pairs(cfg: TrainConfig) -> tuple[list[dict], Iterator[dict]]:
    """(dev pairs, training pairs) of the run's config. Policy "bridge" reads one language at a time, each twice
    (once to hold out its dev rows, whose English side is dropped from every language's training pairs, then to
    yield its training pairs), so the text is never all held: the same pairs as `split_dev` + `bridge_pairs`.
    "pairwise" builds them in memory (its XX-YY pairs join all languages). Then Bactrian-X pairs, if asked for."""
    d = cfg.data
    if d.policy == "pairwise":
        train_by_lang, dev_by_lang = split_dev(pivot_pairs(cfg), d.dev_pairs)
        train = iter(cit_lib.pairwise_pairs(train_by_lang, d.pivot))
    else:
        langs = list(dict.fromkeys(d.langs))  # pivot_pairs is a dict over them
        per_lang = dev_per_lang(d.dev_pairs, len(langs))  # as split_dev over pivot_pairs' languages
        dev_by_lang = {lang: lang_pivot_pairs(cfg, lang)[:per_lang] for lang in langs}
        dev_en = {e for rows in dev_by_lang.values() for e, _ in rows}
        dev_by_lang = drop_seen_dev(dev_by_lang, lambda lang: ((e, x) for e, x in lang_pivot_pairs(cfg, lang)[per_lang:]
                                                               if e not in dev_en))

        def bridge() -> Iterator[dict]:
            for lang in sorted(langs):  # bridge_pairs' order
                for e, x in lang_pivot_pairs(cfg, lang)[per_lang:]:
                    if e not in dev_en:
                        yield {"src": e, "tgt": x, "src_lang": d.pivot, "tgt_lang": lang}
        train = bridge()

    def with_bactrian() -> Iterator[dict]:
        yield from train
        if d.bactrian_pairs:
            yield from streamed_bactrian(cfg).pairs()

    return cit_lib.bridge_pairs(dev_by_lang, d.pivot), with_bactrian()


def emit_rows(cfg: TrainConfig, sink, data: TrainData | None = None) -> dict[str, int]:
    """The one builder of a run's text rows, from its config or a caller's TrainData, fed to a sink (`TrainData`
    lists: `build_train_data`; Arrow text files: `trainer.tokenized.build`) in the order both keep: the dev
    pairs, each training pair (with its translation CIT sample when the sources have translation), the other
    sources' CIT samples, and, for a run that needs CIT text but has only pairs, the pairs' translation samples.
    A sink has dev(pairs), pair(p), cit(sample) and pairs_again() (the pairs it kept, read again). Returns the
    counts of what the run keeps (BPre without CLM texts of its own keeps its CIT text as CLM texts only:
    `clm_documents`), checked against the objective (`check_counts`)."""
    clm = cfg.objective == "clm"
    if data is None:
        warn_inert_p_src(cfg)
        sources = text_sources(cfg)
        dev, pairs = config_pairs(cfg)
        given_clm = 0
        cit_sources = []
        if "alpaca" in sources:
            cit_sources.append(lambda: cit_lib.alpaca_samples(load_split("tatsu-lab/alpaca", "default", "train"),
                                                              cfg.cit.alpaca))
        if "bactrian" in sources:
            cit_sources.append(lambda: streamed_bactrian(cfg).samples())
    else:
        sources, dev, pairs, given_clm = [], data.dev_pairs, iter(data.pairs), len(data.clm_texts)
        cit_sources = [lambda: data.cit]
    sink.dev(dev)
    n = {"pairs": 0, "cit": 0}

    def kept(items: Iterator[dict]) -> Iterator[dict]:
        for p in items:
            sink.pair(p)
            n["pairs"] += 1
            yield p

    def add(samples: Iterable[dict]) -> None:
        for s in samples:
            sink.cit(s)
            n["cit"] += 1

    if "translation" in sources:
        add(translation_cit(cfg, kept(pairs)))
    else:
        for _ in kept(pairs):
            pass
    for source in cit_sources:
        add(source())
    if (cfg.uses_cit or (clm and not given_clm)) and not n["cit"] and n["pairs"]:  # pairs only
        add(translation_cit(cfg, sink.pairs_again()))
    n_clm = (given_clm or 2 * n["pairs"] + n["cit"]) if clm else given_clm
    check_counts(cfg, n["pairs"], n["cit"], n_clm)
    return {"pairs": n["pairs"], "cit": 0 if clm and not given_clm else n["cit"], "clm": n_clm, "dev": len(dev)}


class _Lists:
    """`emit_rows`' in-memory sink."""

    def __init__(self):
        self.data = TrainData()

    def dev(self, pairs: list[dict]) -> None:
        self.data.dev_pairs = list(pairs)

    def pair(self, p: dict) -> None:
        self.data.pairs.append(p)

    def cit(self, sample: dict) -> None:
        self.data.cit.append(sample)

    def pairs_again(self) -> list[dict]:
        return self.data.pairs


def build_train_data(cfg: TrainConfig, data: TrainData | None = None) -> TrainData:
    """What the run trains on, as lists (`emit_rows`): from its config, or a caller's TrainData completed (a new
    TrainData; the caller's is left as it was, since the run cache hashes it; completing twice changes nothing)."""
    sink = _Lists()
    emit_rows(cfg, sink, data)
    out = sink.data
    out.clm_texts = list(data.clm_texts) if data is not None else []
    if cfg.objective == "clm" and not out.clm_texts:
        out.cit, out.clm_texts = [], clm_documents(cfg, out.pairs, out.cit)
    logger.info("training data: %s", out.summary())
    return out


class streamed_bactrian:
    """Bactrian-X for [pivot, *langs], read one language at a time, its rows matched by `id` (the ids present in
    every language, sorted; the last row of a repeated id): `pairs`, the authors' bilingual mode (per id, one
    instruction pair per language pair of the policy, `cit.language_pairs`), and `samples`, Eq. 3 (context:
    instruction + input in language a, answer in b, per `cit.bactrian_plan`; an empty answer is skipped)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.langs = [cfg.data.pivot, *cfg.data.langs]
        common = None
        for lang in self.langs:
            ids = set(self._load(lang).data.column("id").to_pylist())
            common = ids if common is None else common & ids
        self.ids = sorted(common)

    @staticmethod
    def _load(lang: str):
        return load_split("MBZUAI/Bactrian-X", lang, "train")

    def _rows(self, lang: str) -> tuple[dict, list[int]]:
        """The language's columns and, per common id, its row (the last row of that id)."""
        ds = self._load(lang)
        pos = {i: k for k, i in enumerate(self.ids)}
        last = [0] * len(self.ids)
        for j, i in enumerate(ds.data.column("id").to_pylist()):
            k = pos.get(i)
            if k is not None:
                last[k] = j
        return ds, last

    def pairs(self) -> Iterator[dict]:
        pivot = self.cfg.data.pivot
        instr = {}
        for lang in sorted(set(self.langs)):
            ds, last = self._rows(lang)
            instr[lang] = ds.data.column("instruction").take(last).combine_chunks()  # compact Arrow strings
        lang_pairs = cit_lib.language_pairs(instr, self.cfg.data.policy, pivot)
        for k in range(len(self.ids)):
            for x, y in lang_pairs:
                yield {"src": instr[x][k].as_py(), "tgt": instr[y][k].as_py(), "src_lang": x, "tgt_lang": y}

    def samples(self) -> Iterator[dict]:
        d = self.cfg.data
        langs = sorted(set(self.langs))
        plan = cit_lib.bactrian_plan(len(self.ids), langs, self.cfg.p_src, self.cfg.seed, d.policy, d.pivot)
        context, response = [None] * len(self.ids), [None] * len(self.ids)
        for lang in langs:
            ds, last = self._rows(lang)
            want = [k for k, (a, b) in enumerate(plan) if lang in (a, b)]
            if not want:
                continue
            recs = ds.select([last[k] for k in want]).to_dict()
            for n, k in enumerate(want):
                a, b = plan[k]
                if a == lang:
                    context[k] = cit_lib._join(recs["instruction"][n], recs["input"][n], cit_lib.answer_prompt(b))
                if b == lang:
                    response[k] = recs["output"][n].strip()
        for k, (a, b) in enumerate(plan):
            if response[k]:
                yield {"context": context[k], "response": response[k], "src_lang": a, "tgt_lang": b}


def warn_inert_p_src(cfg: TrainConfig) -> None:
    """Say so when p_src cannot act: it applies to every sample of a multilingual source (translation,
    bactrian), and English Alpaca alone has no other language to answer in."""
    sources = text_sources(cfg)
    if sources and not {"translation", "bactrian"} & set(sources) and cfg.p_src > 0:
        logger.warning("p_src=%s has no effect: cit.sources=%s has no multilingual samples "
                       "(add 'translation' or 'bactrian')", cfg.p_src, sources)


def check_counts(cfg: TrainConfig, n_pairs: int, n_cit: int, n_clm: int) -> None:
    """The objective's data must be there (counts: the Arrow build never holds the text); say which field is missing."""
    if cfg.uses_mcl and n_pairs < 2:
        raise ValueError(f"objective {cfg.objective!r} needs >= 2 pairs in TrainData.pairs, got {n_pairs}")
    if cfg.uses_cit and not n_cit:
        raise ValueError(f"objective {cfg.objective!r} needs CIT samples in TrainData.cit (cit.sources={cfg.cit.sources})")
    if cfg.objective == "clm" and not n_clm:
        raise ValueError("objective 'clm' needs TrainData.clm_texts (or pairs, whose text is used)")

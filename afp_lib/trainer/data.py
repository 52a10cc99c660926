"""The training data of a run, built from its config through afp_lib.data (hub or offline mirror).

`TrainData` is plain lists, so notebooks and the world's pretraining can pass their own:
pairs (src, tgt, src_lang, tgt_lang), CIT samples (context, response), CLM texts, and dev pairs.
Dev pairs are held out before any pair is built, so no training pair (pairwise ones included) shares
an English sentence with them."""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from .. import cit as cit_lib
from ..data import DatasetNotFound, load_parallel, load_split
from .config import EVAL_SOURCES, TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    pairs: list[dict] = field(default_factory=list)      # MCL (and BPre) pairs: src, tgt, src_lang, tgt_lang
    cit: list[dict] = field(default_factory=list)        # CIT samples: context, response (+ languages)
    clm_texts: list[str] = field(default_factory=list)   # monolingual documents for objective "clm"
    dev_pairs: list[dict] = field(default_factory=list)  # held-out pairs for the alignment logs

    def summary(self) -> str:
        return (f"{len(self.pairs)} pairs, {len(self.cit)} CIT samples, {len(self.clm_texts)} CLM texts, "
                f"{len(self.dev_pairs)} dev pairs")


def pivot_pairs(cfg: TrainConfig) -> dict[str, list[tuple[str, str]]]:
    """lang -> deduplicated (pivot sentence, lang sentence) from every configured source, capped per language."""
    d = cfg.data
    out = {}
    for lang in d.langs:
        seen, rows, too_long = set(), [], 0
        for source in d.sources:
            if source in EVAL_SOURCES:  # also refused at config load; data may be built from a hand-made config
                raise ValueError(f"refusing to train on evaluation source {source!r}")
            try:
                records = load_parallel(lang, source, pivot=d.pivot)["translation"]
            except DatasetNotFound:
                logger.info("no %s-%s pairs in %s; skipped", d.pivot, lang, source)
                continue
            for rec in records:
                e, x = rec[d.pivot].strip(), rec[lang].strip()
                if min(len(e), len(x)) < d.min_chars or (e, x) in seen:
                    continue
                if d.max_chars and max(len(e), len(x)) > d.max_chars:
                    too_long += 1
                    continue
                seen.add((e, x))
                rows.append((e, x))
        if not rows:
            if d.bactrian_pairs:  # OPUS-100 has no en-sw / en-tl: Bactrian-X supplies those languages' pairs
                logger.warning("no %s-%s pairs in %s; Bactrian-X pairs only", d.pivot, lang, d.sources)
                out[lang] = []
                continue
            raise ValueError(f"no {d.pivot}-{lang} pairs in any of train.data.sources={d.sources}")
        random.Random(f"{cfg.seed}-{lang}").shuffle(rows)
        out[lang] = rows[: d.max_pairs_per_lang] if d.max_pairs_per_lang else rows
        logger.info("pairs %s-%s: %d from %s (%d longer than max_chars=%d left out)", d.pivot, lang,
                    len(out[lang]), ", ".join(d.sources), too_long, d.max_chars)
    return out


def split_dev(by_lang: dict[str, list[tuple[str, str]]], n_dev: int) -> tuple[dict, dict]:
    """Hold out about n_dev pairs spread over the languages; drop training pairs sharing their English side."""
    per_lang = max(1, n_dev // max(1, len(by_lang))) if n_dev else 0
    dev = {lang: rows[:per_lang] for lang, rows in by_lang.items()}
    dev_en = {e for rows in dev.values() for e, _ in rows}
    train = {lang: [r for r in rows[per_lang:] if r[0] not in dev_en] for lang, rows in by_lang.items()}
    return train, dev


def bactrian_by_lang(langs: list[str]) -> dict[str, list[dict]]:
    return {lang: list(load_split("MBZUAI/Bactrian-X", lang, "train")) for lang in langs}


def build_train_data(cfg: TrainConfig) -> TrainData:
    d = cfg.data
    train_by_lang, dev_by_lang = split_dev(pivot_pairs(cfg), d.dev_pairs)
    build = cit_lib.pairwise_pairs if d.policy == "pairwise" else cit_lib.bridge_pairs
    pairs = build(train_by_lang, d.pivot)
    dev_pairs = cit_lib.bridge_pairs(dev_by_lang, d.pivot)
    bactrian = None
    if d.bactrian_pairs or (cfg.uses_cit and "bactrian" in cfg.cit.sources):
        bactrian = bactrian_by_lang([d.pivot, *d.langs])
    if d.bactrian_pairs:
        pairs += cit_lib.bactrian_pairs(bactrian, d.pivot)
    data = TrainData(pairs=pairs, dev_pairs=dev_pairs)
    if cfg.uses_cit:
        if not cfg.cit.p_src_on_translation and "bactrian" not in cfg.cit.sources and cfg.p_src > 0:
            logger.warning("p_src=%s has no effect: it applies to multilingual instruction data (cit.sources "
                           "'bactrian'), and cit.sources=%s has none (cit.p_src_on_translation is off)",
                           cfg.p_src, cfg.cit.sources)
        if "translation" in cfg.cit.sources:
            data.cit += cit_lib.translation_samples(pairs, cfg.translation_p_src, cfg.cit.prompt, seed=cfg.seed)
        if "alpaca" in cfg.cit.sources:
            data.cit += cit_lib.alpaca_samples(load_split("tatsu-lab/alpaca", "default", "train"), cfg.cit.alpaca)
        if "bactrian" in cfg.cit.sources:
            data.cit += cit_lib.bactrian_samples(bactrian, cfg.p_src, seed=cfg.seed)
    if cfg.objective == "clm":  # BPre: language modelling on the text of the pairs, each side its own document
        texts = [p[k] for p in pairs for k in ("src", "tgt")]
        random.Random(cfg.seed).shuffle(texts)
        data.clm_texts = texts
    logger.info("training data: %s", data.summary())
    return data


def check_data(cfg: TrainConfig, data: TrainData) -> None:
    """The objective's data must be there; say which field is missing."""
    if cfg.uses_mcl and len(data.pairs) < 2:
        raise ValueError(f"objective {cfg.objective!r} needs >= 2 pairs in TrainData.pairs, got {len(data.pairs)}")
    if cfg.uses_cit and not data.cit:
        raise ValueError(f"objective {cfg.objective!r} needs CIT samples in TrainData.cit (cit.sources={cfg.cit.sources})")
    if cfg.objective == "clm" and not (data.clm_texts or data.pairs):
        raise ValueError("objective 'clm' needs TrainData.clm_texts (or pairs, whose text is used)")

"""The world's tokenizer: byte-level BPE trained on a flatter language mix than pretraining uses (like
XGLM's and BLOOM's tokenizers), so that Thai and Swahili get merges of their own instead of falling
apart into bytes."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..atomic import building_dir, write_text
from ..tokenizer import train_bpe
from .config import WorldConfig
from .corpus import read_corpus

logger = logging.getLogger(__name__)


def tokenizer_texts(cfg: WorldConfig, train: dict[str, list[str]]) -> list[str]:
    """Up to `tokenizer_bytes` of each language's (already shuffled) training text."""
    texts = []
    for lang, lines in train.items():
        budget = cfg.tier(lang).tokenizer_bytes
        for line in lines:
            budget -= len(line.encode("utf-8")) + 1
            if budget < 0:
                break
            texts.append(line)
    return texts


def token_counts(tokenizer: PreTrainedTokenizerBase, texts: dict[str, list[str]]) -> dict[str, dict]:
    """Tokens per language (BOS and EOS excluded) and how many bytes/characters one token covers."""
    out = {}
    for lang, lines in texts.items():
        ids = tokenizer(lines, add_special_tokens=False, verbose=False)["input_ids"]
        n_tok = sum(map(len, ids))
        n_bytes = sum(len(x.encode("utf-8")) for x in lines)
        n_chars = sum(len(x) for x in lines)
        out[lang] = {"tokens": n_tok, "bytes_per_token": round(n_bytes / max(n_tok, 1), 3),
                     "chars_per_token": round(n_chars / max(n_tok, 1), 3)}
    return out


def build_tokenizer(cfg: WorldConfig, corpus_dir: Path, out_dir: Path) -> dict:
    """Train, save (`AutoTokenizer.from_pretrained(out_dir)` loads it) and report tokens per language."""
    train = read_corpus(corpus_dir, "train", cfg.languages)
    heldout = read_corpus(corpus_dir, "heldout", cfg.languages)
    texts = tokenizer_texts(cfg, train)
    logger.info("training BPE (vocab %d) on %d lines, %.2f MB", cfg.tokenizer.vocab_size, len(texts),
                sum(len(t.encode()) for t in texts) / 1e6)
    tokenizer = train_bpe(texts, vocab_size=cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency)
    tokenizer.model_max_length = cfg.shape.max_positions
    stats = {"vocab_size": len(tokenizer), "train": token_counts(tokenizer, train),
             "heldout": token_counts(tokenizer, heldout)}
    with building_dir(out_dir) as tmp:
        tokenizer.save_pretrained(tmp)
        write_text(tmp / "token_stats.json", json.dumps(stats, indent=1))
    for lang, s in stats["train"].items():
        logger.info("%s: %d training tokens, %.2f bytes/token", lang, s["tokens"], s["bytes_per_token"])
    return stats

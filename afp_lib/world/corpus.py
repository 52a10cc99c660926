"""The pretraining corpus of the vanilla models: the mirror's monolingual text per language, cut to the
resource tier of the language, with a held-out slice for the perplexity diagnostic.

Nothing the later stages train on or evaluate may leak into pretraining. Every mono line is checked, as a
whole and sentence by sentence, for an exact match against (a) every evaluation set (hub/ except Alpaca,
parallel/tatoeba, parallel/xnli_test), (b) both sides of the alignment pairs the trainer uses and (c)
Alpaca (the CIT data). Matching lines are dropped, the counts are reported, and the finished corpus is
re-checked: the build fails if a single segment still matches."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .. import atomic
from ..atomic import write_text
from ..data.hub import DataError
from ..paths import mirror_root
from .config import WorldConfig

logger = logging.getLogger(__name__)

EVAL_PARALLEL = ("tatoeba", "xnli_test")
TRAIN_PARALLEL = ("libreoffice_help", "django", "qalign", "ntrex128", "udhr", "libreoffice_ui")
ALPACA = "tatsu-lab/alpaca"

# Sentence ends: Latin/Cyrillic/Arabic punctuation followed by a space, CJK full stops without one.
_SENT = re.compile(r"(?<=[.!?;؟।])\s+|(?<=[。！？；])")
_PUNCT = re.compile(r"[.!?;؟।。！？；]")


def normalise(text: str) -> str:
    """The form in which strings are compared: whitespace runs collapsed, stripped (as the mirror stores them)."""
    return " ".join(text.split())


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENT.split(text)) if s]


def segments(line: str, chunk_chars: int) -> list[str]:
    """Cut a long paragraph into pieces of about `chunk_chars` characters at sentence ends (or spaces,
    for Thai, which ends sentences with a space). Short lines come back whole."""
    if len(line) <= chunk_chars:
        return [line]
    pieces = sentences(line)
    if len(pieces) == 1:
        pieces = line.split(" ")
    out, cur = [], ""
    for p in pieces:
        if cur and len(cur) + 1 + len(p) > chunk_chars:
            out.append(cur)
            cur = p
        else:
            cur = f"{cur} {p}" if cur else p
    if cur:
        out.append(cur)
    return out


# --- the protected strings: evaluation sets, alignment pairs, Alpaca --------------------------------------

GROUPS = ("eval", "pairs", "alpaca")
_CACHE_VERSION = 2  # bump when the way protected strings are collected changes


def stable_hash(text: str) -> int:
    """64-bit hash that is the same in every process (Python's hash() is salted), so it can be cached.
    Two C checksums are enough: a collision can only drop an innocent line, never let a protected one in."""
    b = text.encode("utf-8")
    return zlib.crc32(b) | (zlib.adler32(b) << 32)


def protected_files(root: Path) -> dict[str, list[Path]]:
    """Mirror files whose text must stay out of pretraining, by group."""
    hub = sorted((root / "hub").rglob("*.jsonl"))
    groups = {"eval": [p for p in hub if ALPACA not in p.as_posix()],
              "pairs": [],
              "alpaca": [p for p in hub if ALPACA in p.as_posix()]}
    for source in EVAL_PARALLEL:
        groups["eval"] += sorted((root / "parallel" / source).glob("*.jsonl"))
    for source in TRAIN_PARALLEL:
        groups["pairs"] += sorted((root / "parallel" / source).glob("*.jsonl"))
    return groups


def _record_strings(rec: dict) -> list[str]:
    if "translation" in rec:
        return [v for v in rec["translation"].values() if isinstance(v, str)]
    return [v for k, v in rec.items() if isinstance(v, str) and k != "URL"]


class ProtectedIndex:
    """Sorted 64-bit hashes of every protected string, and of each of its sentences with at least
    `min_match_chars` characters, with the group each came from."""

    def __init__(self, hashes: np.ndarray, groups: np.ndarray, counts: dict, min_match_chars: int):
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.groups = hashes[order], groups[order]
        self.counts, self.min_match_chars = counts, min_match_chars

    @classmethod
    def build(cls, root: Path, min_match_chars: int, workers: int | None = None) -> "ProtectedIndex":
        jobs = [(g, path) for g, files in enumerate(protected_files(root).values()) for path in files]
        workers = workers or min(4, os.cpu_count() or 1)
        with ProcessPoolExecutor(workers) as pool:  # JSON parsing and sentence splitting are CPU-bound
            parts = list(pool.map(_file_hashes, jobs, [min_match_chars] * len(jobs), chunksize=8))
        counts = {group: {"files": 0, "strings": 0} for group in GROUPS}
        for (g, _), (_, n) in zip(jobs, parts):
            counts[GROUPS[g]]["files"] += 1
            counts[GROUPS[g]]["strings"] += n
        hashes = np.concatenate([h for h, _ in parts])
        groups = np.concatenate([np.full(len(h), g, dtype=np.uint8) for (g, _), (h, _) in zip(jobs, parts)])
        return cls(hashes, groups, counts, min_match_chars)

    @classmethod
    def cached(cls, root: Path, min_match_chars: int, cache_dir: Path) -> "ProtectedIndex":
        """Build once per mirror version (manifest.json) and reuse: parsing ~200 MB of JSON takes ~30 s."""
        manifest = root / "manifest.json"
        key = hashlib.sha256(manifest.read_bytes() if manifest.is_file() else str(root).encode()).hexdigest()[:16]
        path = cache_dir / f"protected-{key}-m{min_match_chars}-v{_CACHE_VERSION}.npz"
        if path.is_file():
            z = np.load(path, allow_pickle=False)
            return cls(z["hashes"], z["groups"], json.loads(str(z["counts"])), min_match_chars)
        index = cls.build(root, min_match_chars)
        with atomic.replacing(path) as tmp:
            np.savez(tmp, hashes=index.hashes, groups=index.groups, counts=np.array(json.dumps(index.counts)))
        return index

    def __len__(self) -> int:
        return len(self.hashes)

    def matches(self, texts: list[str]) -> list[str | None]:
        """For each text, the group of a protected string it equals, as a whole or by one sentence."""
        owner, keys = [], []
        for i, text in enumerate(texts):
            k = _keys(text, self.min_match_chars)
            keys += map(stable_hash, k)
            owner += [i] * len(k)
        out: list[str | None] = [None] * len(texts)
        if not keys:
            return out
        q = np.array(keys, dtype=np.uint64)
        pos = np.searchsorted(self.hashes, q).clip(0, len(self.hashes) - 1)
        hit = self.hashes[pos] == q
        for i, p in zip(np.asarray(owner)[hit], pos[hit]):
            out[i] = out[i] or GROUPS[self.groups[p]]
        return out


def _file_hashes(job: tuple[int, Path], min_match_chars: int) -> tuple[np.ndarray, int]:
    """Hashes of every string (and long-enough sentence) of one protected JSON-lines file."""
    _, path = job
    hashes, n = [], 0
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            for s in _record_strings(rec):
                for part in s.split("\n"):  # Alpaca keeps newlines in outputs
                    keys = _keys(normalise(part), min_match_chars)
                    hashes += map(stable_hash, keys)
                    n += bool(keys)
    return np.array(hashes, dtype=np.uint64), n


def _keys(text: str, min_match_chars: int) -> list[str]:
    """The strings compared: the text itself and its sentences that are long enough to mean something."""
    if not text:
        return []
    sents = sentences(text) if _PUNCT.search(text) else [text]
    return [text] + [s for s in sents if s != text and len(s) >= min_match_chars]


# --- the build ---------------------------------------------------------------------------------------------

def read_mono(root: Path, lang: str, sources: list[str]) -> dict[str, list[str]]:
    out = {}
    for source in sources:
        path = root / "mono" / source / f"{lang}.txt"
        if path.is_file():
            try:
                out[source] = [normalise(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not out:
        raise DataError(f"no monolingual text for {lang!r} in mono/{{{','.join(sources)}}} of {root}")
    return out


def build_corpus(cfg: WorldConfig, out_dir: Path, cache_dir: Path | None = None) -> dict:
    """Write `train/<lang>.txt`, `heldout/<lang>.txt` and `stats.json` under `out_dir`; return the stats."""
    root = mirror_root()
    if root is None:
        raise FileNotFoundError("the world corpus is built from the offline mirror: set $AFP_DATA_MIRROR "
                                "(e.g. export AFP_DATA_MIRROR=../shared/afp-data)")
    if not cfg.languages:
        raise ValueError("world.languages is empty for this profile: name the languages and their tiers in params.yaml")
    index = ProtectedIndex.cached(root, cfg.min_match_chars, cache_dir or out_dir)
    logger.info("protected strings: %s (%d hashes)", index.counts, len(index))
    rng = random.Random(cfg.seed)
    # the mirror by content, not by path: the corpus folder is a DVC dependency of the committed mini models,
    # and a path would make every other checkout look changed and pretrain again
    manifest = root / "manifest.json"
    mirror = ("manifest sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]) if manifest.is_file() else "unversioned"
    stats = {"mirror": mirror, "protected": index.counts, "languages": {}}
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "heldout": {}}
    for lang, tier_name in cfg.languages.items():
        tier = cfg.tier(lang)
        by_source = read_mono(root, lang, cfg.sources)
        dropped = dict.fromkeys(GROUPS, 0)
        pool, seen = [], set()
        for source, lines in by_source.items():
            for line, group in zip(lines, index.matches(lines)):
                if group:
                    dropped[group] += 1
                    continue
                for seg in segments(line, cfg.chunk_chars):
                    if seg not in seen:  # Leipzig and help text repeat short lines
                        seen.add(seg)
                        pool.append((source, seg))
        rng.shuffle(pool)
        heldout = [seg for _, seg in pool[:cfg.heldout_lines]]
        train, size, used = [], 0, {}
        for source, seg in pool[cfg.heldout_lines:]:
            n = len(seg.encode("utf-8")) + 1
            if size + n > tier.max_bytes:
                break
            train.append(seg)
            size += n
            used[source] = used.get(source, 0) + n
        splits["train"][lang], splits["heldout"][lang] = train, heldout
        stats["languages"][lang] = {
            "tier": tier_name, "weight": tier.weight,
            "available_bytes": {s: sum(len(x.encode()) + 1 for x in ls) for s, ls in by_source.items()},
            "train_bytes": size, "train_chars": sum(len(x) + 1 for x in train), "train_segments": len(train),
            "train_bytes_by_source": used,
            "heldout_bytes": sum(len(x.encode()) + 1 for x in heldout), "heldout_segments": len(heldout),
            "dropped_lines": dropped}
        logger.info("%s (%s): %d train segments, %.2f MB, %d held out; dropped %s", lang, tier_name,
                    len(train), size / 1e6, len(heldout), dropped)
    stats["overlap_check"] = recheck(splits, index)
    if stats["overlap_check"]["matches"]:
        raise RuntimeError(f"overlap check failed after filtering: {stats['overlap_check']}")
    for split, langs in splits.items():
        for lang, lines in langs.items():
            write_text(out_dir / split / f"{lang}.txt", "\n".join(lines) + "\n")
    write_text(out_dir / "stats.json", json.dumps(stats, indent=1, ensure_ascii=False))
    return stats


def recheck(splits: dict, index: ProtectedIndex) -> dict:
    """Re-run the exact-match check on every finished segment: the proof that nothing leaked."""
    checked, matches = 0, []
    for split, langs in splits.items():
        for lang, lines in langs.items():
            checked += len(lines)
            matches += [f"{split}/{lang} ({g}): {line[:80]}" for line, g in zip(lines, index.matches(lines)) if g]
    return {"segments_checked": checked, "protected_hashes": len(index), "matches": len(matches),
            "examples": matches[:5]}


def read_corpus(corpus_dir: Path, split: str, langs) -> dict[str, list[str]]:
    out = {}
    for lang in langs:
        path = corpus_dir / split / f"{lang}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: build the corpus first "
                                    "(python -m afp_lib world corpus --profile <profile>)")
        out[lang] = [x for x in path.read_text(encoding="utf-8").splitlines() if x]
    return out

"""Benchmark (not a test): host memory of the training data per process, in-memory token lists against the
memory-mapped Arrow files of afp_lib.trainer.tokenized, on a synthetic corpus shaped like the paper's
52-language mix (scaled down), extrapolated to the paper's scale.

Corpus: the 52 Bactrian-X languages, `--pairs` EN-XX pairs per language (random words in each language's
script, sentence lengths drawn around the paper's ~60 tokens per sentence) and one CIT sample per pair
("<sentence> Answer in <Language>:" -> the other side, as translation-mode CIT). Each measurement runs in
a fresh interpreter (peak RSS = ru_maxrss; RssAnon = private memory, not the shared page cache):
  text    the TrainData text (pair and CIT dicts), as build_train_data holds it
  lists   + the token ids as collate's lists, as `loop.prepare` holds them on every rank today
  build   rank 0 of the tokenized path: text streamed through datasets.map into Arrow
  read    another rank: open the Arrow files, read every row once in batches of 16 (collate.pair_batch)
  stream  the trainer's sample order (loop.Stream) over the paper's 8.3M pairs and 8.4M CIT samples
Paper scale (issue 14): about 8.3M pairs + 8.4M CIT samples, about 2B token ids.

    python bench/data_memory.py [--pairs 2000] [--out /tmp/afp-data-memory]
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER_PAIRS, PAPER_CIT = 8_300_000, 8_400_000
# Unicode ranges of each script (letters only), by language: enough to give each its own BPE merges.
SCRIPTS = {"latin": (0x61, 0x7A), "cjk": (0x4E00, 0x4FFF), "thai": (0x0E01, 0x0E30), "cyrillic": (0x0430, 0x044F),
           "arabic": (0x0627, 0x064A), "devanagari": (0x0915, 0x0939), "hangul": (0xAC00, 0xAD00),
           "kana": (0x30A2, 0x30F3), "georgian": (0x10D0, 0x10F0), "greek": (0x03B1, 0x03C9),
           "hebrew": (0x05D0, 0x05EA), "bengali": (0x0995, 0x09B9), "tamil": (0x0B95, 0x0BB9),
           "khmer": (0x1780, 0x17A2), "myanmar": (0x1000, 0x1021), "sinhala": (0x0D9A, 0x0DC6),
           "gujarati": (0x0A95, 0x0AB9), "malayalam": (0x0D15, 0x0D39), "telugu": (0x0C15, 0x0C39)}
LANG_SCRIPT = {"zh": "cjk", "th": "thai", "ru": "cyrillic", "uk": "cyrillic", "mk": "cyrillic", "kk": "cyrillic",
               "mn": "cyrillic", "ar": "arabic", "fa": "arabic", "ur": "arabic", "ps": "arabic", "hi": "devanagari",
               "mr": "devanagari", "ne": "devanagari", "ko": "hangul", "ja": "kana", "ka": "georgian",
               "he": "hebrew", "bn": "bengali", "ta": "tamil", "km": "khmer", "my": "myanmar", "si": "sinhala",
               "gu": "gujarati", "ml": "malayalam", "te": "telugu"}


def words(lang: str, rng: random.Random, n: int) -> list[str]:
    lo, hi = SCRIPTS[LANG_SCRIPT.get(lang, "latin")]
    vocab_rng = random.Random(f"vocab-{lang}")
    vocab = ["".join(chr(vocab_rng.randint(lo, hi)) for _ in range(vocab_rng.randint(2, 7))) for _ in range(3000)]
    return [" ".join(rng.choices(vocab, k=max(3, int(rng.lognormvariate(3.0, 0.5))))) for _ in range(n)]


def corpus(pairs_per_lang: int):
    """(pairs, CIT samples) as the trainer's TrainData holds them, generated lazily."""
    from afp_lib.cit import answer_prompt
    from afp_lib.plan.facts import BACTRIAN_X_LANGS
    for lang in BACTRIAN_X_LANGS:
        if lang == "en":
            continue
        rng = random.Random(lang)
        for e, x in zip(words("en", rng, pairs_per_lang), words(lang, rng, pairs_per_lang)):
            pair = {"src": e, "tgt": x, "src_lang": "en", "tgt_lang": lang}
            cit = {"context": f"{e} {answer_prompt(lang)}", "response": x, "src_lang": "en", "tgt_lang": lang}
            yield pair, cit


def tokenizer(folder: Path):
    from transformers import PreTrainedTokenizerFast
    if not (folder / "tokenizer.json").is_file():
        from afp_lib.tokenizer import train_bpe
        sample = [t for i, (p, _) in enumerate(corpus(200)) for t in (p["src"], p["tgt"])]
        train_bpe(sample, vocab_size=8192, min_frequency=2).save_pretrained(folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def rss() -> dict:
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    kb = lambda k: int(status[k].split()[0]) * 1024  # noqa: E731
    return {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss_anon": kb("RssAnon"),
            "rss_file": kb("RssFile")}


def measure(mode: str, n: int, out: Path, seq_len: int) -> dict:
    from afp_lib.trainer import collate, tokenized
    tok = tokenizer(out / "tokenizer")
    base = rss()
    res = {"mode": mode, "base_anon": base["rss_anon"]}
    t0 = time.perf_counter()
    if mode in ("text", "lists"):
        pairs, cit = map(list, zip(*corpus(n)))
        res["after_text_anon"] = rss()["rss_anon"]
        if mode == "lists":
            enc_p = collate.encode_pairs(tok, pairs, seq_len)
            enc_c = collate.encode_cit(tok, cit, seq_len)
            res["tokens"] = sum(len(s) + len(t) for s, t in enc_p) + sum(len(i) for i, _ in enc_c)
            res["pair_tokens"] = sum(len(s) + len(t) for s, t in enc_p)
    elif mode == "build":
        rec = tokenized.build(out / "tok", tok, (p for p, _ in corpus(n)), (c for _, c in corpus(n)), seq_len)
        res["rows"] = rec["rows"]
        res["disk_bytes"] = sum(f.stat().st_size for f in (out / "tok").iterdir())
    elif mode == "read":
        rows = tokenized.load(out / "tok")
        tokens = 0
        for name, batch_fn in (("pairs", collate.pair_batch), ("cit", collate.lm_batch)):
            order = list(range(len(rows[name])))
            random.Random(0).shuffle(order)
            for i in range(0, len(order), 16):
                tokens += int(batch_fn(rows[name], order[i:i + 16], 0)["attention_mask"].sum())
        res["tokens_read"] = tokens
    elif mode == "stream":
        from afp_lib.trainer.loop import Stream
        s1, s2 = Stream(PAPER_PAIRS, 0), Stream(PAPER_CIT, 1)
        s1.take(0, 16), s2.take(0, 16)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res.update(rss())
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2000, help="pairs per language (51 languages besides English)")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--out", default="/tmp/afp-data-memory")
    ap.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.mode:
        print(json.dumps(measure(args.mode, args.pairs, out, args.seq_len)))
        return
    shutil.rmtree(out / "tok", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    r = {}
    for mode in ("text", "lists", "build", "read", "stream"):
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--pairs", str(args.pairs), "--out",
                               str(out), "--seq-len", str(args.seq_len)], capture_output=True, text=True, check=True)
        r[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(mode, r[mode], flush=True)
    n_pairs = 51 * args.pairs
    tokens = r["lists"]["tokens"]
    gib = 2 ** 30
    text_b = (r["text"]["after_text_anon"] - r["text"]["base_anon"]) / (2 * n_pairs)   # per sample (pair or CIT)
    list_b = (r["lists"]["rss_anon"] - r["lists"]["after_text_anon"]) / tokens          # per token id
    disk_b = r["build"]["disk_bytes"] / tokens
    paper_tokens = tokens / (2 * n_pairs) * (PAPER_PAIRS + PAPER_CIT)
    print(f"corpus: {n_pairs} pairs + {n_pairs} CIT samples, {tokens} token ids "
          f"({r['lists']['pair_tokens'] / (2 * n_pairs):.1f} per sentence, "
          f"{(tokens - r['lists']['pair_tokens']) / n_pairs:.1f} per CIT sample)")
    print(f"text (TrainData dicts): {text_b:.0f} B per sample; token lists: {list_b:.1f} B per id in memory; "
          f"Arrow: {disk_b:.2f} B per id on disk")
    print(f"build (rank 0): peak RSS {r['build']['peak_rss'] / gib:.2f} GiB in {r['build']['seconds']} s; "
          f"read (other ranks): peak RSS {r['read']['peak_rss'] / gib:.2f} GiB, private (RssAnon) "
          f"{r['read']['rss_anon'] / gib:.2f} GiB, file-backed {r['read']['rss_file'] / gib:.2f} GiB")
    print(f"sample order (loop.Stream) at paper scale: private {r['stream']['rss_anon'] / gib:.2f} GiB "
          f"(interpreter + torch included: {r['stream']['base_anon'] / gib:.2f} GiB before)")
    print(f"paper scale ({PAPER_PAIRS / 1e6:.1f}M pairs + {PAPER_CIT / 1e6:.1f}M CIT, ~{paper_tokens / 1e9:.2f}B ids "
          f"at this corpus's lengths): token lists {list_b * paper_tokens / gib:.1f} GiB per rank, "
          f"text {text_b * (PAPER_PAIRS + PAPER_CIT) / gib:.1f} GiB (rank 0 only with Arrow), "
          f"Arrow files {disk_b * paper_tokens / gib:.1f} GiB on disk (shared page cache)")
    print(f"RATIO in-memory lists / Arrow on disk, bytes per token id: {list_b / disk_b:.1f}")


if __name__ == "__main__":
    main()

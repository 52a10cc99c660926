"""Benchmark (not a test): host memory of the training data per process, in-memory token lists against the
trainer's on-disk path (`train.tokenized: arrow`, afp_lib.trainer.tokenized), on a synthetic corpus shaped like
the paper's 52-language mix (scaled down), extrapolated to the paper's scale.

Corpus: the 52 Bactrian-X languages, `--pairs` EN-XX pairs per language (random words in each language's
script, sentence lengths drawn around the paper's ~60 tokens per sentence) and one CIT sample per pair
("<sentence> Answer in <Language>:" -> the other side, as translation-mode CIT). The config is the paper
profile's (AFP, seq_len 512, packed CIT, tokenized: arrow) over the 51 languages, with translation CIT only
and 200 dev pairs; each language's pairs come from the synthetic corpus instead of its sources
(`data.lang_pivot_pairs`), everything else is the trainer's own `loop.prepare`. Each measurement runs in a
fresh interpreter (peak RSS = ru_maxrss; RssAnon = private memory; RssFile = mapped file pages, the shared
page cache):
  text    the TrainData text (pair and CIT dicts), as build_train_data holds it
  lists   + the token ids as collate's lists, as `train.tokenized: memory` holds them on every rank
  build   rank 0 of the arrow path: loop.prepare on the corpus, streamed (one language's pairs at a time,
          text appended to files, ids written as they are made, packing planned from the lengths); at two
          corpus sizes, so the growth per sample is measured
  build-text  the same from a TrainData held in memory (a caller's own data; rank 0's build before the
          streamed one), at the two sizes
  read    every other rank: loop.prepare finds the folder built (build_train_data would raise: no text is
          read), then every pair and packed CIT row is read once in training batches (loop.micro_batches)
  stream  the trainer's sample order (loop.Stream) over the paper's 8.3M pairs and 8.4M CIT samples
  dedup   (with --dedup N) one language's N en-ru source pairs read from a Parquet file as a store holds them
          and deduplicated (data.lang_pivot_pairs, which holds them while it does): OPUS-100 has up to 1M pairs
          per language pair
Paper scale (issue 14): about 8.3M pairs + 8.4M CIT samples, about 2B token ids.

    python bench/data_memory.py [--pairs 2000] [--out /tmp/afp-data-memory] [--dedup 1000000]
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


def langs() -> list[str]:
    from afp_lib.plan.facts import BACTRIAN_X_LANGS
    return [lang for lang in BACTRIAN_X_LANGS if lang != "en"]


def lang_pairs(lang: str, pairs_per_lang: int) -> list[tuple[str, str]]:
    """One language's (English, XX) sentences, as the trainer's `data.lang_pivot_pairs` gives them."""
    rng = random.Random(lang)
    return list(zip(words("en", rng, pairs_per_lang), words(lang, rng, pairs_per_lang)))


def corpus(pairs_per_lang: int):
    """(pairs, CIT samples) as the trainer's TrainData holds them, generated lazily."""
    from afp_lib.cit import answer_prompt
    for lang in langs():
        for e, x in lang_pairs(lang, pairs_per_lang):
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


class PeakAnon:
    """The highest RssAnon (private memory) and RssFile (mapped file pages) seen, sampled every 20 ms by a
    thread: ru_maxrss counts both, and says neither which nor when."""

    def __init__(self):
        import threading
        self.peak, self.peak_file, self.stop = 0, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            now = rss()
            self.peak, self.peak_file = max(self.peak, now["rss_anon"]), max(self.peak_file, now["rss_file"])
            time.sleep(0.02)

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        self.peak_file = max(self.peak_file, rss()["rss_file"])
        return max(self.peak, rss()["rss_anon"])


def paper_cfg():
    from afp_lib.trainer.config import load_train_config, replace
    cfg = load_train_config("paper")
    return replace(cfg, tokenized="arrow", seq_len=512, objective="afp",
                   cit=replace(cfg.cit, pack=True, sources=["translation"]),
                   data=replace(cfg.data, langs=langs(), bactrian_pairs=False, dev_pairs=200))


def arrow_ids(folder: Path) -> int:
    """Token ids in a built folder's pairs and CIT rows."""
    import datasets
    import pyarrow.compute as pc
    n = 0
    for name, cols in (("pairs", ("src", "tgt")), ("cit", ("ids",))):
        table = datasets.Dataset.from_file(str(folder / f"{name}.arrow")).data
        n += sum(int(pc.sum(pc.list_value_length(table.column(c))).as_py()) for c in cols)
    return n


def synthetic_data(n: int):
    from afp_lib.trainer.data import TrainData
    data = TrainData()
    for pair, cit in corpus(n):
        data.pairs.append(pair)
        data.cit.append(cit)
    data.dev_pairs = data.pairs[:200]
    return data


DEDUP_LANG = "ru"  # Cyrillic: 2 bytes a character in UTF-8 and in a Python str, as most of the 51 languages


def dedup_parquet(out: Path, n: int) -> Path:
    """n synthetic en-ru pairs of sentence lengths around the paper's, as a store's OPUS-100 Parquet file
    (one `translation` struct column), written in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = out / f"dedup-{n}.parquet"
    if path.is_file():
        return path
    rng, schema = random.Random(0), pa.schema([("translation", pa.struct([("en", pa.string()), (DEDUP_LANG, pa.string())]))])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n, 100_000):
            k = min(100_000, n - start)
            rows = [{"en": e, DEDUP_LANG: x} for e, x in zip(words("en", rng, k), words(DEDUP_LANG, rng, k))]
            writer.write_table(pa.table({"translation": rows}, schema=schema))
    tmp.rename(path)
    return path


def measure(mode: str, n: int, out: Path, seq_len: int) -> dict:
    import os
    from afp_lib.trainer import collate, data as data_mod, loop
    tok = tokenizer(out / "tokenizer")
    os.environ["AFP_TOKENIZED"] = str(out / f"tok-{n}")
    base = rss()
    res = {"mode": mode, "pairs_per_lang": n, "base_anon": base["rss_anon"]}
    t0, peak_anon = time.perf_counter(), PeakAnon()
    if mode in ("text", "lists"):
        pairs, cit = map(list, zip(*corpus(n)))
        res["after_text_anon"] = rss()["rss_anon"]
        if mode == "lists":
            enc_p = collate.encode_pairs(tok, pairs, seq_len)
            enc_c = collate.encode_cit(tok, cit, seq_len)
            res["tokens"] = sum(len(s) + len(t) for s, t in enc_p) + sum(len(i) for i, _ in enc_c)
            res["pair_tokens"] = sum(len(s) + len(t) for s, t in enc_p)
    elif mode in ("build", "build-text"):
        if mode == "build":  # the streamed build: the trainer reads each language's pairs from its sources
            data_mod.lang_pivot_pairs = lambda cfg, lang: lang_pairs(lang, n)  # noqa: E731
            prep = loop.prepare(paper_cfg(), tok)
        else:  # the build from a TrainData held in memory (before the streamed build; a caller's own data)
            os.environ["AFP_TOKENIZED"] = str(out / f"tok-text-{n}")
            prep = loop.prepare(paper_cfg(), tok, synthetic_data(n))
        res["rows"] = {"pairs": len(prep.pairs), "cit_packed": len(prep.cit)}
        (folder,) = [f for f in Path(os.environ["AFP_TOKENIZED"]).iterdir() if f.is_dir()]
        res["disk_bytes"] = sum(f.stat().st_size for f in folder.iterdir())
        res["tokens"] = arrow_ids(folder)
        res["folder"] = str(folder)
    elif mode == "read":
        def no_text(cfg):
            raise AssertionError("a reading rank must not build the training data")
        data_mod.build_train_data = data_mod.lang_pivot_pairs = no_text
        cfg = paper_cfg()
        prep = loop.prepare(cfg, tok)
        res["after_open_anon"] = rss()["rss_anon"]
        tokens = 0
        pair_stream, lm_stream = loop.Stream(len(prep.pairs), cfg.seed), loop.Stream(len(prep.cit), cfg.seed + 1)
        for i in range(0, max(len(prep.pairs), len(prep.cit)), 16):  # one epoch of each, in training order
            p_idx = pair_stream.take(i, min(16, len(prep.pairs) - i)) if i < len(prep.pairs) else None
            l_idx = lm_stream.take(i, min(16, len(prep.cit) - i)) if i < len(prep.cit) else None
            pairs, lm = loop.micro_batches(cfg, prep, p_idx, l_idx, 0)
            tokens += sum(int(b["attention_mask"].sum()) for b in (pairs, lm) if b is not None)
        res["tokens_read"] = tokens
    elif mode == "dedup":  # one language's source rows read and deduplicated (data.lang_pivot_pairs)
        from afp_lib.data.hub import parquet_dataset
        from afp_lib.trainer.config import replace
        path = dedup_parquet(out, n)
        # as data.hub.load_split reads a store's Parquet file (the whole table; its row checks stream)
        data_mod.load_parallel = lambda lang, source, pivot: parquet_dataset(path)  # noqa: E731
        cfg = paper_cfg()
        cfg = replace(cfg, data=replace(cfg.data, sources=["opus100"]))  # the paper cap: rows are held before it
        rows = data_mod.lang_pivot_pairs(cfg, DEDUP_LANG)
        res["rows"] = len(rows)
        res["chars"] = sum(len(e) + len(x) for e, x in rows)
    elif mode == "stream":
        from afp_lib.trainer.loop import Stream
        s1, s2 = Stream(PAPER_PAIRS, 0), Stream(PAPER_CIT, 1)
        s1.take(0, 16), s2.take(0, 16)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["peak_anon"] = peak_anon.close()
    res["peak_file"] = peak_anon.peak_file
    res.update(rss())
    return res


def run(mode: str, pairs: int, out: Path, seq_len: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--pairs", str(pairs), "--out", str(out),
                           "--seq-len", str(seq_len)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(mode, res, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2000, help="pairs per language (51 languages besides English)")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--out", default="/tmp/afp-data-memory")
    ap.add_argument("--dedup", type=int, default=0, help="only measure one language's dedup of this many pairs")
    ap.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.mode:
        print(json.dumps(measure(args.mode, args.pairs, out, args.seq_len)))
        return
    if args.dedup:
        out.mkdir(parents=True, exist_ok=True)
        dedup_parquet(out, args.dedup)
        r = run("dedup", args.dedup, out, args.seq_len)
        print(f"RESULT dedup of {args.dedup} en-{DEDUP_LANG} pairs ({r['rows']} kept, {r['chars']} characters): peak "
              f"RSS {r['peak_rss'] / 2 ** 30:.2f} GiB, private {r['peak_anon'] / 2 ** 30:.2f} GiB (before reading: "
              f"{r['base_anon'] / 2 ** 30:.2f} GiB), {r['seconds']} s")
        return
    half = args.pairs // 2
    for n in (half, args.pairs):
        shutil.rmtree(out / f"tok-{n}", ignore_errors=True)
        shutil.rmtree(out / f"tok-text-{n}", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    r = {mode: run(mode, args.pairs, out, args.seq_len)
         for mode in ("text", "lists", "build-text", "build", "read", "stream")}
    small = run("build", half, out, args.seq_len)
    small_text = run("build-text", half, out, args.seq_len)
    n_pairs, gib = 51 * args.pairs, 2 ** 30
    samples, paper_samples = 2 * n_pairs, PAPER_PAIRS + PAPER_CIT
    tokens = r["lists"]["tokens"]
    text_b = (r["text"]["after_text_anon"] - r["text"]["base_anon"]) / samples   # per sample (pair or CIT)
    list_b = (r["lists"]["rss_anon"] - r["lists"]["after_text_anon"]) / tokens     # per token id
    disk_b = r["build"]["disk_bytes"] / r["build"]["tokens"]                      # ids + offsets + packing plan
    paper_tokens = tokens / samples * paper_samples
    # rank 0's peak grows with the corpus (its text, the packing plan): the slope between the two sizes
    slope = (r["build"]["peak_rss"] - small["peak_rss"]) / (samples - 2 * 51 * half)
    build_paper = r["build"]["peak_rss"] + slope * (paper_samples - samples)
    slope_text = (r["build-text"]["peak_rss"] - small_text["peak_rss"]) / (samples - 2 * 51 * half)
    build_text_paper = r["build-text"]["peak_rss"] + slope_text * (paper_samples - samples)
    slope_anon = (r["build"]["peak_anon"] - small["peak_anon"]) / (samples - 2 * 51 * half)
    anon_paper = r["build"]["peak_anon"] + slope_anon * (paper_samples - samples)
    stream_b = r["stream"]["rss_anon"] - r["stream"]["base_anon"]                   # both orders at paper scale
    read_paper = r["read"]["rss_anon"] + stream_b
    print(f"corpus: {n_pairs} pairs + {n_pairs} CIT samples, {tokens} token ids "
          f"({r['lists']['pair_tokens'] / (2 * n_pairs):.1f} per sentence, "
          f"{(tokens - r['lists']['pair_tokens']) / n_pairs:.1f} per CIT sample); "
          f"{r['build']['rows']['cit_packed']} packed CIT rows of <= {args.seq_len}")
    print(f"text (TrainData dicts): {text_b:.0f} B per sample; token lists: {list_b:.1f} B per id in memory; "
          f"Arrow: {disk_b:.2f} B per id on disk (packing plan included)")
    print(f"build from TrainData in memory (before; a caller's own data): peak RSS "
          f"{r['build-text']['peak_rss'] / gib:.2f} GiB in {r['build-text']['seconds']} s "
          f"({small_text['peak_rss'] / gib:.2f} GiB at half the corpus: {slope_text:.0f} B per sample)")
    print(f"build streamed (rank 0, loop.prepare): peak RSS {r['build']['peak_rss'] / gib:.2f} GiB in "
          f"{r['build']['seconds']} s ({small['peak_rss'] / gib:.2f} GiB at half the corpus: "
          f"{slope:.0f} B per sample)")
    print(f"build streamed, private memory (RssAnon sampled every 20 ms): peak "
          f"{r['build']['peak_anon'] / gib:.2f} GiB ({small['peak_anon'] / gib:.2f} GiB at half the corpus: "
          f"{slope_anon:.0f} B per sample; from TrainData in memory {r['build-text']['peak_anon'] / gib:.2f} GiB)")
    print(f"read (other ranks, loop.prepare + every row once in batches of 16): peak RSS "
          f"{r['read']['peak_rss'] / gib:.2f} GiB, private (RssAnon) {r['read']['rss_anon'] / gib:.2f} GiB, "
          f"file-backed {r['read']['rss_file'] / gib:.2f} GiB, {r['read']['seconds']} s; "
          f"{r['read']['tokens_read']} ids read (every id once: {r['read']['tokens_read'] == r['build']['tokens']})")
    print(f"sample order (loop.Stream, both streams) at paper scale: {stream_b / gib:.2f} GiB private")
    print(f"paper scale ({PAPER_PAIRS / 1e6:.1f}M pairs + {PAPER_CIT / 1e6:.1f}M CIT, ~{paper_tokens / 1e9:.2f}B ids "
          f"at this corpus's lengths): token lists {list_b * paper_tokens / gib:.1f} GiB per rank (memory path); "
          f"arrow path: rank 0 build peak {build_paper / gib:.1f} GiB streamed ({anon_paper / gib:.1f} GiB of it private; {build_text_paper / gib:.1f} GiB "
          f"from TrainData in memory, whose text is {text_b * paper_samples / gib:.1f} GiB), other ranks {read_paper / gib:.2f} GiB private, Arrow files "
          f"{disk_b * paper_tokens / gib:.1f} GiB on disk (page cache shared by the ranks of a node)")
    print(f"RESULT bytes/id: lists {list_b:.1f}, arrow {disk_b:.2f}; paper-scale RSS per rank: other ranks "
          f"{read_paper / gib:.2f} GiB private (+ shared page cache), rank 0 build peak {build_paper / gib:.1f} GiB "
          f"({anon_paper / gib:.1f} GiB private; from TrainData in memory {build_text_paper / gib:.1f} GiB); "
          f"memory path {list_b * paper_tokens / gib + text_b * paper_samples / gib:.1f} GiB")


if __name__ == "__main__":
    main()

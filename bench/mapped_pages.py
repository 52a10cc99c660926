"""Benchmark (not a test): the mapped file pages a reading rank holds while it reads its training rows, with and
without `TokenRows` releasing them (afp_lib.trainer.tokenized), on one pairs-shaped Arrow file larger than a window.

A reading rank reads its rows at random from files it memory-maps; pages of a map stay in the process's RSS
(RssFile) once touched. At paper scale a rank reads 10k steps x 16 pairs = 160k pair rows spread over a 3.5 GB
pairs file, so without a bound its RssFile grows towards the size of the file. `TokenRows` drops its map's pages
from the process (madvise) every `release_rows` rows read. This script writes `--rows` pair rows (src and tgt of about 53 token ids each, as
bench/data_memory.py's corpus; the file written by datasets' ArrowWriter, as rank 0 writes it), then, each in a
fresh interpreter, reads `--reads` random rows through TokenRows with release_rows = never and its default, and prints
the peak and final RssFile (sampled every 2,000 rows) and the ratio of the peaks.

    python bench/mapped_pages.py [--rows 2000000] [--reads 160000] [--out /tmp/afp-mapped-pages]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NEVER = 1 << 62


def rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_file(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` pair rows in batches of 100k: lengths around 53 ids, ids below 250k (int32, as the trainer's)."""
    import numpy as np
    import pyarrow as pa
    from datasets.arrow_writer import ArrowWriter

    rng = np.random.default_rng(seed)
    writer = ArrowWriter(path=str(path))
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        cols = {}
        for name in ("src", "tgt"):
            lengths = rng.integers(20, 87, size=n)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            values = rng.integers(3, 250_000, size=int(offsets[-1]), dtype=np.int32)
            cols[name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
        writer.write_table(pa.table(cols))
    writer.finalize()


def read(path: Path, reads: int, release_rows: int, seed: int = 1) -> dict:
    """Read `reads` random rows one at a time, as a rank's batches do; RssFile before, at its peak and at the end."""
    import random

    from afp_lib.trainer.tokenized import TokenRows

    rows = TokenRows(path, "pairs", release_rows=release_rows)
    rng = random.Random(seed)
    before = rss_file_mb()
    peak, t0, ids = before, time.perf_counter(), 0
    for k in range(reads):
        src, tgt = rows[rng.randrange(len(rows))]
        ids += len(src) + len(tgt)
        if k % 2000 == 0:
            peak = max(peak, rss_file_mb())
    end = rss_file_mb()
    return {"release_rows": None if release_rows == NEVER else release_rows, "releases": rows.releases, "reads": reads, "ids": ids,
            "rss_file_before_mb": round(before, 1), "rss_file_peak_mb": round(max(peak, end), 1),
            "rss_file_end_mb": round(end, 1), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--reads", type=int, default=160_000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/afp-mapped-pages"))
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    path = args.out / "pairs.arrow"
    if args.child is not None:
        print(json.dumps(read(path, args.reads, args.child)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_file(path, args.rows)
    print(f"wrote {args.rows:,} pair rows: {path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s")
    results = []
    from afp_lib.trainer.tokenized import TokenRows
    for release in (NEVER, TokenRows.RELEASE_ROWS):
        out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--reads", str(args.reads),
                              "--out", str(args.out), "--child", str(release)], check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    never, release = results
    grow = lambda r: r["rss_file_peak_mb"] - r["rss_file_before_mb"]  # noqa: E731
    print(f"RATIO mapped_pages_never_vs_release={grow(never) / max(grow(release), 1e-9):.2f} "
          f"never_mb={grow(never):.0f} release_mb={grow(release):.0f} file_mb={path.stat().st_size / 2**20:.0f}")


if __name__ == "__main__":
    main()

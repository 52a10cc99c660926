"""Benchmark (not a test): peak host memory and time of the held-out perplexity probe on a real model, one
forward of all 32 lines (as before 7 Dec 2026) against the logits budget (`diagnose.LOGITS_BYTES`), each in a
fresh interpreter (peak RSS = ru_maxrss), with the perplexities side by side. The lines are what the probe
scores (`probes.perplexity`): the mini world's held-out monolingual text, 120 English lines (`--lang`).

    python bench/perplexity_memory.py [--model runs/models/gemma3-270m] [--lang en]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(model_dir: str, lang: str, logits_bytes: int) -> dict:
    import torch
    from afp_lib.analysis.probes import _heldout
    from afp_lib.models import load_model
    from afp_lib.world.diagnose import heldout_perplexity
    torch.set_num_threads(2)
    model, tok = load_model(model_dir)
    text = _heldout("mini", [lang])[lang]
    t0 = time.perf_counter()
    r = heldout_perplexity(model, tok, text, max_tokens=128, batch_size=32, logits_bytes=logits_bytes)
    return {"logits_bytes": logits_bytes, "seconds": round(time.perf_counter() - t0, 1), "perplexity": r["perplexity"],
            "tokens": r["tokens"], "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/models/gemma3-270m")
    ap.add_argument("--lang", default="en")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)   # child: measure one logits budget
    a = ap.parse_args()
    if a.one is not None:
        print(json.dumps(measure(a.model, a.lang, a.one)))
        return
    from afp_lib.world.diagnose import LOGITS_BYTES
    rows = []
    for budget in (2 ** 40, LOGITS_BYTES):   # 2**40: 32 lines per forward, whatever the vocabulary
        out = subprocess.run([sys.executable, __file__, "--model", a.model, "--lang", a.lang, "--one",
                              str(budget)], check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    old, new = rows
    print(f"peak RSS {old['peak_rss_gb']} GB -> {new['peak_rss_gb']} GB ({new['peak_rss_gb'] / old['peak_rss_gb']:.2f}x), "
          f"time {old['seconds']} s -> {new['seconds']} s ({new['seconds'] / old['seconds']:.2f}x), "
          f"perplexity {old['perplexity']:.4f} vs {new['perplexity']:.4f} (rel. diff "
          f"{abs(new['perplexity'] / old['perplexity'] - 1):.1e})")


if __name__ == "__main__":
    main()

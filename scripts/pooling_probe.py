"""How parallel a model's pooled sentence vectors are, with and without the BOS, layer by layer.

    python scripts/pooling_probe.py runs/models/gemma3-270m [--pairs 300] [--layers 1 2 4 6 9 12]

On the first --pairs dev pairs of the bilingual mini training data (EN-ZH, never trained on), per layer and
pooling (`mean`, `mean_skip_bos`): the mean cosine between unrelated sentences (off-diagonal), bitext retrieval,
alignment and uniformity. A cosine near 1 for unrelated sentences means InfoNCE starts saturated
(docs/budgets-real.md)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4, 6, 9, 12])
    args = ap.parse_args(argv)
    import torch

    from afp_lib.hidden import embed
    from afp_lib.metrics import alignment, retrieval_hits, uniformity
    from afp_lib.models import load_model
    from afp_lib.trainer import build_train_data, load_train_config
    torch.set_num_threads(2)
    dev = build_train_data(load_train_config("mini", ["data.langs=[zh]", "data.max_pairs_per_lang=8000"])).dev_pairs
    dev = dev[:args.pairs]
    model, tok = load_model(args.model)
    print("| layer | pooling | off-diagonal cosine | retrieval % | alignment | uniformity |\n|---|---|---|---|---|---|")
    for layer in args.layers:
        for pooling in ("mean", "mean_skip_bos"):
            kw = dict(layer=layer, pooling=pooling, max_length=96)
            s, t = embed(model, tok, [p["src"] for p in dev], **kw), embed(model, tok, [p["tgt"] for p in dev], **kw)
            cos = torch.nn.functional.normalize(s, dim=-1) @ torch.nn.functional.normalize(t, dim=-1).T
            off = cos[~torch.eye(len(s), dtype=torch.bool)].mean().item()
            print(f"| {layer} | {pooling} | {off:.3f} | {100 * retrieval_hits(s, t).float().mean():.1f} | "
                  f"{alignment(s, t):.3f} | {uniformity(torch.cat([s, t])):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

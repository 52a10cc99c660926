"""0-shot ICL on the development splits, for choosing a training budget without touching reported items.

    python scripts/dev_icl.py --out results/mini/budget/dev_icl.jsonl LABEL=MODEL_FOLDER [LABEL=FOLDER ...]

Scores XCOPA and PAWS-X `validation` and XStoryCloze `train` (each task YAML's demonstration split, never the
`test`/`eval` split Table 1 reports), EN and ZH, a fixed subset of --items per language, with the per-item
outcomes; a model already in --out is not scored again. Prints each model's accuracy per cell and the paired
difference (analysis.intervals.paired_difference) of every model from the first. docs/budgets-real.md
reports the search this was written for."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

DEV_TASKS = ("xcopa", "pawsx", "xstorycloze")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="LABEL=FOLDER; the first is the reference of the differences")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--items", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import pandas as pd
    import torch

    from afp_lib.analysis.tables import paired_table
    from afp_lib.eval import icl
    from afp_lib.eval.tasks import TASKS, Splits
    from afp_lib.models import load_model
    torch.set_num_threads(args.threads)
    for name in DEV_TASKS:   # score the demonstration split; 0-shot draws no demonstrations from the pool
        s = TASKS[name].splits
        TASKS[name] = dataclasses.replace(TASKS[name], splits=Splits(test=s.demos, demos=s.test))
    done = [json.loads(x) for x in args.out.read_text().splitlines()] if args.out.is_file() else []
    for spec in args.models:
        label, folder = spec.split("=", 1)
        if any(r["label"] == label for r in done):
            continue
        model, tok = load_model(folder)
        recs = icl.evaluate(model.eval(), tok, DEV_TASKS, ["en", "zh"], shots=[0], seeds=[0], max_items=args.items,
                            model_name=folder, progress=False, batch_size=16)
        new = [{**r, "label": label, "arch": "-", "train_seed": 0} for r in recs]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in new)
        done += new
    labels = [m.split("=", 1)[0] for m in args.models]
    df = pd.DataFrame([r for r in done if r["label"] in labels])
    df["model"] = df["label"]
    acc = df[df.metric == "acc"].pivot_table(index="label", columns=["task", "language"], values="value")
    print(acc.reindex(labels).round(1).to_markdown())
    df["label"] = df["label"].where(df["label"] != labels[0], "vanilla")
    print(paired_table(df, tasks=DEV_TASKS).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m afp_lib analyse <command>`: the analysis layer for shells and DVC stages.

  paper [N ...]                      print the paper's transcribed tables (markdown)
  tables RECORDS... --out DIR        our eval records in the paper's layouts: DIR/tableN.{csv,md,tex}
  represent MODEL [MODEL_AFTER]      alignment/uniformity/retrieval per pair (+ t-SNE before/after)
  trajectories NAME=LOG... --out STEM    Fig. 3(c) from the trainer's train_log.jsonl files
Notebooks call the library directly; this only parses arguments and picks output paths."""
from __future__ import annotations

import logging
from pathlib import Path

from ..cli import model_ref, require_model
from ..config import Parser
from ..config import default_profile

logger = logging.getLogger(__name__)


def _paper(args) -> int:
    from . import tables
    for n in args.tables or sorted(tables.BUILDERS):
        print(tables.to_markdown(tables.BUILDERS[n]([])) + "\n")  # no records: the paper block alone
    return 0


def _tables(args) -> int:
    from . import tables
    from .records import load_records
    records = load_records(args.records)
    out = Path(args.out)
    for n in args.tables or sorted(tables.BUILDERS):
        kw = {"metric": args.metric} if n not in (2, 4) else {}
        if n == 4:
            kw["shots"] = args.flores_shots
        try:
            df = tables.BUILDERS[n](records, **kw)
        except ValueError as e:
            logger.warning("table %d skipped: %s", n, e)
            continue
        paths = tables.save(df, out / f"table{n}")
        logger.info("table %d -> %s", n, paths["md"])
    return 0


def _represent(args) -> int:
    from ..models import load_model
    from ..paths import figures_dir, results_dir
    from . import plots
    from .config import analysis_config
    from .representations import embed, pair_report, sample_pairs
    cfg = analysis_config(args.profile)
    pairs = {f"{cfg.pivot}-{lang}": sample_pairs(lang, cfg.source, cfg.pivot, cfg.n_pairs, cfg.tsne.seed)
             for lang in cfg.languages}
    reports, spaces = [], {}
    for path in filter(None, (args.model, args.model_after)):
        model, tok = load_model(require_model(path), device="auto")  # a GPU when there is one ($AFP_DEVICE overrides)
        reports.append(pair_report(model, tok, pairs, cfg.layer, cfg.pooling, cfg.batch_size,
                                   cfg.max_length).assign(model=path))
        sents, langs = [], []
        for name, (src, tgt) in pairs.items():
            k = min(cfg.tsne.n_sentences, len(src))
            sents += list(src[:k]) + list(tgt[:k])
            langs += [cfg.pivot] * k + [name.split("-")[1]] * k
        spaces[Path(path).name] = embed(model, tok, sents, cfg.layer, cfg.pooling, cfg.batch_size, cfg.max_length)
    import pandas as pd
    report = pd.concat(reports, ignore_index=True)
    out = Path(args.out) if args.out else results_dir("analysis")
    out.mkdir(parents=True, exist_ok=True)
    report.to_csv(out / "representations.csv", index=False)
    print(report.to_markdown(index=False, floatfmt=".3f"))
    fig = plots.tsne_grid(spaces, langs, perplexity=cfg.tsne.perplexity, seed=cfg.tsne.seed)
    logger.info("t-SNE -> %s", plots.save(fig, (Path(args.fig) if args.fig else figures_dir("analysis") / "tsne"))["png"])
    return 0


def _trajectories(args) -> int:
    from . import plots
    logs = {}
    for item in args.logs:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"expected NAME=PATH, got {item!r} (e.g. AFP=runs/afp/train_log.jsonl)")
        logs[name] = plots.read_train_log(path)
    paths = plots.save(plots.align_uniform_trajectories(logs), args.out)
    logger.info("Fig. 3(c) -> %s", paths["png"])
    return 0


def _scorecard(args) -> int:
    from . import scorecard
    logger.info("scorecard -> %s", scorecard.gather(args.profile or default_profile()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m afp_lib analyse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, help="the analysis to run")
    p = sub.add_parser("paper", help="print the paper's tables")
    p.add_argument("tables", nargs="*", type=int, help="table numbers (default: all)")
    p.set_defaults(run=_paper)
    p = sub.add_parser("tables", help="render eval records in the paper's layouts")
    p.add_argument("records", nargs="+", help=".jsonl/.csv files of eval records")
    p.add_argument("--out", required=True, help="folder for tableN.{csv,md,tex}")
    p.add_argument("--tables", nargs="*", type=int, help="table numbers (default: all)")
    p.add_argument("--metric", default="acc", choices=["acc", "acc_norm", "acc_tok"], help="the ICL tables' metric")
    p.add_argument("--flores-shots", type=int, default=None, help="Table 4's shot count (default: the one in the records; required when they hold several)")
    p.set_defaults(run=_tables)
    p = sub.add_parser("represent", help="alignment/uniformity/retrieval and t-SNE of one or two models")
    p.add_argument("model", type=model_ref, help="save_pretrained folder or hub id (org/name)")
    p.add_argument("model_after", nargs="?", type=model_ref, help="a second model, e.g. after alignment")
    p.add_argument("--profile", default=None, help="params.yaml analysis profile (default: params.yaml `profile`)")
    p.add_argument("--out", default=None, help="folder for representations.csv (default results/analysis)")
    p.add_argument("--fig", default=None, help="figure stem (default figures/analysis/tsne)")
    p.set_defaults(run=_represent)
    p = sub.add_parser("trajectories", help="Fig. 3(c) from training logs")
    p.add_argument("logs", nargs="+", metavar="NAME=PATH")
    p.add_argument("--out", required=True, help="figure stem, e.g. figures/bilingual/fig3c")
    p.set_defaults(run=_trajectories)
    p = sub.add_parser("scorecard", help="gather every section's scorecard.csv into results/<profile>/scorecard.md")
    p.add_argument("--profile", default=None, help="params.yaml profile (default: params.yaml `profile`)")
    p.set_defaults(run=_scorecard)
    args = parser.parse_args(argv)
    return args.run(args)

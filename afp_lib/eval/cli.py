"""`python -m afp_lib evaluate --model PATH --tasks xnli,xcopa --langs en,zh --shots 0,5 --seeds 0,1,2
[--max-items N] [--out FILE] [--profile mini] [--demo-lang en] [--demos semantic] [--connectors native]`

Defaults come from the `eval:` section of params.yaml for `--profile`; flags override them. `flores` in
`--tasks` runs translation in every direction among `--langs` (with the profile's translation shots)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from ..models import load_model
from ..paths import results_dir
from .config import load_eval_config
from .icl import evaluate
from .runner import summarize
from .translation import translate_eval

logger = logging.getLogger(__name__)


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} must be comma-separated integers, e.g. 0,5") from None


def _names(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m afp_lib evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="save_pretrained folder (or hub id when online)")
    p.add_argument("--name", help="model name in the records (default: the folder name)")
    p.add_argument("--profile", help="params.yaml eval profile for the defaults (default: params.yaml `profile`)")
    p.add_argument("--tasks", type=_names, help="comma-separated: xnli,pawsx,xcopa,xstorycloze,xwinograd,flores")
    p.add_argument("--langs", type=_names, help="comma-separated ISO 639-1 codes, or 'all'")
    p.add_argument("--shots", type=_ints)
    p.add_argument("--seeds", type=_ints)
    p.add_argument("--max-items", type=int, help="items per language (a fixed subset); 0 = all")
    p.add_argument("--demo-lang", help="language of the demonstrations (cross-lingual ICL), e.g. en")
    p.add_argument("--demos", choices=["random", "semantic"])
    p.add_argument("--connectors", choices=["english", "native"])
    p.add_argument("--batch-size", type=int)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK when present, else cpu; $AFP_DEVICE "
                   "overrides), cpu, cuda, cuda:N")
    p.add_argument("--out", type=Path, help="results JSON-lines file (default results/eval/<name>.jsonl)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    over = {k: v for k, v in dict(tasks=args.tasks, shots=args.shots, seeds=args.seeds, demo_lang=args.demo_lang,
                                   demos=args.demos, connectors=args.connectors, batch_size=args.batch_size).items()
            if v is not None}
    if args.langs is not None:
        over["langs"] = None if args.langs == ["all"] else args.langs
    if args.max_items is not None:
        over["max_items"] = args.max_items or None
    if args.bf16:
        over["bf16"] = True
    tasks = over.get("tasks")
    with_flores = tasks is not None and "flores" in tasks
    if tasks is not None:
        over["tasks"] = [t for t in tasks if t != "flores"]
    cfg = load_eval_config(args.profile, overrides=over)
    name = args.name or Path(args.model).name
    out = args.out or results_dir("eval") / f"{name}.jsonl"
    from ..config import default_profile
    from ..devices import require_gpu
    require_gpu(args.profile or default_profile(), args.device)  # the paper profile without CUDA stops here
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, tokenizer = load_model(args.model, device=args.device)
    logger.info("evaluate %s: tasks %s, langs %s, shots %s, seeds %s, max_items %s -> %s", name, cfg.tasks,
                cfg.langs or "all", cfg.shots, cfg.seeds, cfg.max_items, out)
    recs = evaluate(model, tokenizer, model_name=name, out_file=out, **cfg.icl_kwargs()) if cfg.tasks else []
    if with_flores:
        langs = cfg.langs or cfg.translation.langs
        pairs = [(a, b) for a in langs for b in langs if a != b]
        t = cfg.translation
        recs += translate_eval(model, tokenizer, pairs, cfg.shots if args.shots else t.shots, cfg.seeds,
                               cfg.max_items if args.max_items is not None else t.max_items, name, out,
                               t.max_new_tokens, t.batch_size, cfg.bf16)
    table = summarize(recs)
    if not table.empty:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0

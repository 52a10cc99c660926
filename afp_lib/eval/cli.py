"""`python -m afp_lib evaluate --model PATH --tasks xnli,xcopa --langs en,zh --shots 0,5 --seeds 0,1,2
[--max-items N] [--out FILE] [--profile mini] [--demo-lang en] [--demos semantic] [--connectors native]`

Defaults come from the `eval:` section of params.yaml for `--profile`; flags override them. `flores` in
`--tasks` runs translation in every direction among `--langs` (with the profile's translation shots).

`torchrun --nproc_per_node 8 -m afp_lib evaluate --plan results/paper_plan.json` evaluates the plan's
whole grid instead: rank 0 lists the cells not in runs/eval yet, the groups of cells (a model's task and
language under one setting) go to the ranks largest first, and each rank writes each cell's file once,
atomically. A relaunch after a kill evaluates only what is still missing."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import require_model
from ..cli import model_ref as model_path   # (run_plan has a loop variable `model_ref`)
from ..config import Parser
from ..paths import results_dir

logger = logging.getLogger(__name__)


def load_model(name_or_path: str, device="auto", dtype=None):
    """afp_lib.models.load_model, imported when called (torch, transformers): `--help` parses without them."""
    from ..models import load_model as load
    return load(name_or_path, device=device, **({"dtype": dtype} if dtype is not None else {}))


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} must be comma-separated integers, e.g. 0,5") from None


def _names(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _profile_defaults() -> tuple[str, dict]:
    """(profile, its `eval` block) of params.yaml, for the defaults shown in --help (yaml only: no torch)."""
    from ..config import default_profile, load_section
    try:
        profile = default_profile()
        return profile, load_section("eval", profile)
    except Exception:   # a broken params.yaml is reported by the command itself, not by --help
        return "?", {}


def parser() -> argparse.ArgumentParser:
    profile, d = _profile_defaults()

    def default(key: str, fmt=lambda v: ",".join(map(str, v)) if isinstance(v, list) else str(v)) -> str:
        return f"(default: {fmt(d[key]) if key in d else '?'}; from eval.{profile} in params.yaml)"

    p = Parser(prog="python -m afp_lib evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=model_path, help="save_pretrained folder, or hub id org/name (with HF_HUB_OFFLINE=1: "
                   "one in the local hub cache)")
    p.add_argument("--plan", type=Path, help="evaluate the grid of a `paper-plan --out` JSON file, sharded over ranks")
    p.add_argument("--max-cells", type=int, help="--plan: stop each rank after writing this many cells (default: no limit)")
    p.add_argument("--name", help="model name in the records (default: the folder name)")
    p.add_argument("--profile", help=f"params.yaml eval profile for the defaults (default: params.yaml `profile`, {profile})")
    p.add_argument("--tasks", type=_names, help="comma-separated: xnli,pawsx,xcopa,xstorycloze,xwinograd,flores "
                   + default("tasks"))
    p.add_argument("--langs", type=_names, help="comma-separated ISO 639-1 codes, or 'all'; flores needs two or more "
                   + default("langs", lambda v: "all" if v is None else ",".join(v)))
    p.add_argument("--shots", type=_ints, help="comma-separated numbers of demonstrations " + default("shots"))
    p.add_argument("--seeds", type=_ints, help="comma-separated demonstration-sampling seeds " + default("seeds"))
    p.add_argument("--max-items", type=int, help="items per language (a fixed subset); 0 = all "
                   + default("max_items", lambda v: "all" if v is None else str(v)))
    p.add_argument("--demo-lang", help="language of the demonstrations (cross-lingual ICL), e.g. en "
                   + default("demo_lang", lambda v: "the test language" if v is None else v))
    p.add_argument("--demos", choices=["random", "semantic"],
                   help="random demonstrations (the paper) or the nearest ones (Table 6) " + default("demos"))
    p.add_argument("--connectors", choices=["english", "native"],
                   help="template connector words in English (the paper) or the test language " + default("connectors"))
    p.add_argument("--batch-size", type=int, help="candidate sequences per forward " + default("batch_size"))
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="as eval.precision (bf16 = autocast) " + default("precision"))
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK when present, else cpu; $AFP_DEVICE "
                   "overrides), cpu, cuda, cuda:N")
    p.add_argument("--out", type=Path, help="results JSON-lines file (default results/eval/<name>-<model identity>.jsonl: "
                   "12 hex digits of the weights' and config's sha256, or of the hub id)")
    return p


def _with_chance(table):
    """The summary with the chance score beside each accuracy (a mini model's ICL is at chance: Table 1)."""
    from ..analysis.intervals import CHANCE
    from .icl import METRICS
    if "metric" in table.columns:
        is_acc = table["metric"].isin(METRICS)
        table.insert(list(table.columns).index("mean") + 1, "chance",
                     table["task"].map(CHANCE).where(is_acc))
    return table


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.plan is not None:
        return run_plan(args.plan, args.max_cells, args.device)
    if args.model is None:
        ap.error("give --model PATH (one model) or --plan FILE (a plan's whole grid)")
    from ..config import UserError, user_input   # after parsing: `--help` imports no torch
    from .config import load_eval_config
    from .tasks import TASKS, check_langs
    over = {k: v for k, v in dict(tasks=args.tasks, shots=args.shots, seeds=args.seeds, demo_lang=args.demo_lang,
                                   demos=args.demos, connectors=args.connectors, batch_size=args.batch_size).items()
            if v is not None}
    if args.langs is not None:
        over["langs"] = None if args.langs == ["all"] else args.langs
    if args.max_items is not None:
        over["max_items"] = args.max_items or None
    if args.precision is not None:
        over["precision"] = args.precision
    tasks = over.get("tasks")
    with_flores = tasks is not None and "flores" in tasks
    if tasks is not None:
        over["tasks"] = [t for t in tasks if t != "flores"]
    with user_input():   # unknown task, language or key; a bad value: one line, before the model is loaded
        for t in tasks or []:
            TASKS[t]
        cfg = load_eval_config(args.profile, overrides=over)
        if cfg.tasks:
            check_langs(cfg.tasks, cfg.langs)
        flores_langs = list(dict.fromkeys(cfg.langs or cfg.translation.langs)) if with_flores else []
        if with_flores:
            check_langs(["flores"], flores_langs)
    if with_flores and len(flores_langs) < 2:
        raise UserError(f"flores translates between the --langs languages; it needs two or more, got "
                        f"{','.join(flores_langs) or 'none'} (e.g. --langs en,zh)")
    import torch

    from .icl import evaluate
    from .runner import eval_dtype, summarize
    from .translation import translate_eval
    name = args.name or Path(args.model).name
    from ..trainer.runs import identity_tag  # the model's identity, not its folder's name: every run's is `final`
    out = args.out or results_dir("eval") / f"{name}-{identity_tag(args.model)}.jsonl"
    from ..config import default_profile
    from ..devices import require_gpu
    require_gpu(args.profile or default_profile(), args.device)  # the paper profile without CUDA stops here
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, tokenizer = load_model(require_model(args.model), device=args.device, dtype=eval_dtype(cfg.bf16, args.device))
    logger.info("evaluate %s: tasks %s, langs %s, shots %s, seeds %s, max_items %s -> %s", name, cfg.tasks,
                cfg.langs or "all", cfg.shots, cfg.seeds, cfg.max_items, out)
    recs = evaluate(model, tokenizer, model_name=name, out_file=out, **cfg.icl_kwargs()) if cfg.tasks else []
    if with_flores:
        pairs = [(a, b) for a in flores_langs for b in flores_langs if a != b]
        t = cfg.translation
        recs += translate_eval(model, tokenizer, pairs, cfg.shots if args.shots else t.shots, cfg.seeds,
                               cfg.max_items if args.max_items is not None else t.max_items, name, out,
                               t.max_new_tokens, t.batch_size, cfg.bf16, batch_tokens=t.batch_tokens)
    table = summarize(recs)
    if not table.empty:
        print(_with_chance(table).to_string(index=False, float_format=lambda v: f"{v:.1f}", na_rep="-"))
    return 0


def _join_group() -> tuple[int, int, str]:
    """(rank, world size, a token for ranks_done) after joining torchrun's process group (gloo: the group
    only exchanges lists); imported when called, so that `--help` needs no torch."""
    import torch

    from ..trainer import distributed
    distributed.init_from_env(torch.device("cpu"))
    return (*distributed.rank_world(), distributed.new_token())


def run_plan(plan_file: Path, max_cells: int | None = None, device: str = "auto") -> int:
    """This rank's share of the plan's grid; returns 0 when every cell of the grid is in the cache."""
    import json
    import time

    import torch

    from ..config import default_profile
    from ..devices import require_gpu
    from ..plan.grid import cells_of_plan
    from ..trainer import distributed
    from .config import load_eval_config
    from .runner import CellStore, assign, eval_dtype, read_cell, work_units
    try:
        data = json.loads(Path(plan_file).read_text(encoding="utf-8"))
        profile = data["profile"] if isinstance(data, dict) and data.get("profile") else default_profile()
    except (OSError, ValueError) as e:
        raise SystemExit(f"{plan_file}: {e}") from None
    require_gpu(profile, device)   # before anything is read or joined; each rank on cuda:LOCAL_RANK (afp_lib.devices)
    # the group only exchanges lists (the models never communicate); ranks may finish hours apart (ranks_done)
    rank, world, token = _join_group()
    try:
        cells = cells_of_plan(data)
    except (ValueError, KeyError) as e:
        raise SystemExit(f"{plan_file}: {e}") from None
    cfg = load_eval_config(data.get("profile"))   # batch sizes only: they change no number
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    todo = None
    if rank == 0:   # one view of what is done, so that no cell is assigned twice or never
        todo = [(c, s) for c, s in cells if read_cell(c) is None]
        logger.info("%s: %d cells, %d to evaluate on %d ranks", plan_file, len(cells), len(todo), world)
    mine = assign(work_units(distributed.broadcast(todo)), world)[rank]
    written, t0 = [], time.time()

    class Enough(Exception):
        pass

    def count(cell):
        written.append(cell)
        if max_cells is not None and len(written) >= max_cells:
            raise Enough

    try:
        for model_ref in dict.fromkeys(group[0] for group, _, _ in mine):   # one model at a time
            model = None   # free the previous model before loading the next one
            try:
                model, tokenizer = load_model(model_ref, device=device, dtype=eval_dtype(cfg.bf16, device))
                model.eval()
                for group, group_cells, _ in (u for u in mine if u[0][0] == model_ref):
                    _score_group(model, tokenizer, group_cells, CellStore(model_ref, dict(group_cells[0].scoring),
                                                                          on_write=count), cfg)
            except Enough:
                raise
            except Exception:   # e.g. a model not trained yet: the other models' cells still get done
                logger.exception("rank %d: evaluating %s failed; its remaining cells stay missing", rank, model_ref)
    except Enough:
        logger.info("rank %d: stopped after %d cells (--max-cells)", rank, len(written))
    logger.info("rank %d: %d cells written in %.0fs", rank, len(written), time.time() - t0)
    distributed.ranks_done(Path(plan_file).with_name(f".{Path(plan_file).name}.ranks"), token,
                           f"its cells of {plan_file}", wait_s=7 * 24 * 3600)
    if rank:   # its share is done; rank 0, which waited for every share, reports the grid
        return 0
    left = sum(read_cell(c) is None for c, _ in cells)
    if rank == 0:
        print(f"{len(cells) - left}/{len(cells)} cells of {plan_file} in the cache" + (f"; {left} missing" if left else ""))
    return 0 if left == 0 else 1


def _score_group(model, tokenizer, cells, store, cfg) -> None:
    """The cells of one (model, task, language, setting), one call per shot count (its seeds together, so a
    seed-free 0-shot score is computed once)."""
    from .icl import evaluate
    from .translation import translate_eval
    c0, scoring = cells[0], dict(cells[0].scoring)
    bf16 = bool(scoring.get("bf16", False))
    for k in sorted({c.shots for c in cells}):
        seeds = [c.seed for c in cells if c.shots == k]
        if c0.task == "flores":
            src, tgt = c0.language.split("-")
            translate_eval(model, tokenizer, [(src, tgt)], [k], seeds, c0.max_items, c0.model, store,
                           scoring.get("max_new_tokens", 128), cfg.translation.batch_size, bf16, progress=False,
                           batch_tokens=cfg.translation.batch_tokens)
        else:
            evaluate(model, tokenizer, [c0.task], [c0.language], shots=[k], seeds=seeds, max_items=c0.max_items,
                     model_name=c0.model, out_file=store, demo_lang=c0.demo_lang if c0.demo_lang != c0.language else None,
                     demos=c0.demos, connectors=c0.connectors, bf16=bf16, progress=False,
                     batch_size=cfg.batch_size, batch_tokens=cfg.batch_tokens,
                     **{k2: scoring[k2] for k2 in ("semantic_layer", "semantic_pooling") if k2 in scoring})

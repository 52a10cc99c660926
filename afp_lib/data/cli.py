"""`python -m afp_lib data <subcommand>`: the data layer's commands.

    fetch   materialise a profile's hub datasets into a pinned local store (afp_lib.data.fetch)
    verify  check every file of a store against its manifest (size and sha256)
    check   validate one data file exactly as the loaders will (afp_lib.data.validate):
              data check FILE --as <hub_id>/<config>/<split>   e.g. --as facebook/xnli/zh/validation
              data check FILE --parallel <xx>-<yy>             a pair file ({"translation": {xx: .., yy: ..}})
            prints every problem as `file:line: field: what is wrong`; exit 0: every row usable, 1: the
            loaders would drop the rows listed (the rest load), 2: the file cannot be loaded at all"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import validate
from .corpora import parallel_check
from .hub import DataError, SCHEMAS, parse_line, row_check, schema_problems


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


USABLE, DROPS_ROWS, UNUSABLE = 0, 1, 2


def check_file(path: Path, schema: dict | None, check) -> tuple[int, list[validate.Problem], list[validate.Problem]]:
    """(rows, fatal problems, row problems) of a JSON-lines file: every line is read, nothing stops early."""
    n, fatal, rows = 0, [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            n += 1
            where = f"{path}:{lineno}"
            try:
                rec = parse_line(line, where)
            except DataError as e:
                fatal.append(validate.Problem(where, "json", str(e).split(": json: ", 1)[-1]))
                continue
            found = schema_problems(rec, schema, where) if schema else []
            if found:
                fatal += found
                continue
            rows += check(rec, where)
    return n, fatal, rows


def split_spec(spec: str) -> tuple[str, str, str]:
    """`owner/name/config/split` -> (hub id, config, split); the hub id is everything before the last two parts."""
    parts = spec.strip("/").split("/")
    if len(parts) < 3:
        raise argparse.ArgumentTypeError(f"--as {spec!r}: use <hub_id>/<config>/<split>, e.g. facebook/xnli/zh/validation")
    return "/".join(parts[:-2]), parts[-2], parts[-1]


def pair_spec(spec: str) -> tuple[str, str]:
    a, sep, b = spec.partition("-")
    if not (sep and a and b):
        raise argparse.ArgumentTypeError(f"--parallel {spec!r}: use <xx>-<yy>, e.g. en-zh (the file's two language keys)")
    return a, b


def _run_check(args) -> int:
    path = args.file
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return UNUSABLE
    if args.parallel:
        pivot, lang = args.parallel
        schema, check, what = {"translation": (dict,)}, parallel_check(pivot, lang), f"{pivot}-{lang} pairs"
    else:
        hub_id, config, split = args.as_
        if hub_id not in SCHEMAS:
            print(f"--as {hub_id}: no declared schema; known datasets: {', '.join(sorted(SCHEMAS))}", file=sys.stderr)
            return UNUSABLE
        schema, check, what = SCHEMAS[hub_id], row_check(hub_id, config), f"{hub_id}/{config}/{split}"
    n, fatal, problems = check_file(path, schema, check)
    for p in fatal + problems:
        print(p)
    bad_rows = len({p.where for p in problems})
    if fatal or n == 0 or bad_rows == n:
        why = f"{len(fatal)} schema/JSON errors" if fatal else ("no rows" if n == 0 else "no usable row")
        print(f"{path}: NOT USABLE as {what} ({why}; the loaders raise on it)", file=sys.stderr)
        return UNUSABLE
    if problems:
        print(f"{path}: the loaders would drop {bad_rows} of {n} rows as {what} (listed above)", file=sys.stderr)
        return DROPS_ROWS
    print(f"{path}: OK, {n} rows usable as {what}", file=sys.stderr)
    return USABLE


def _check(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m afp_lib data check",
                                 description="validate a data file exactly as the loaders will")
    ap.add_argument("file", type=Path)
    kind = ap.add_mutually_exclusive_group(required=True)
    kind.add_argument("--as", dest="as_", type=split_spec, metavar="HUB_ID/CONFIG/SPLIT",
                      help="validate as this split of a hub dataset, e.g. facebook/xnli/zh/validation")
    kind.add_argument("--parallel", type=pair_spec, metavar="XX-YY", help="validate as a pair file, e.g. en-zh")
    return _run_check(ap.parse_args(argv))


SUBCOMMANDS = {"fetch": ("afp_lib.data.fetch", "main"), "verify": (__name__, "_verify"), "check": (__name__, "_check")}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUBCOMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib
    module, func = SUBCOMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)

"""`python -m afp_lib data <subcommand>`: the data layer's commands.

    fetch   materialise a profile's hub datasets into a pinned local store (afp_lib.data.fetch)
    verify  check every file of a store against its manifest (size and sha256)
    check   validate one data file exactly as the loaders will (afp_lib.data.validate):
              data check FILE --as <hub_id>/<config>/<split>   e.g. --as facebook/xnli/zh/validation
              data check FILE --parallel <xx>-<yy>             a pair file ({"translation": {xx: .., yy: ..}})
            prints every problem as `file:line: field: what is wrong` (a problem repeated on many rows: the
            first few, then "and N more rows like it"); exit 0: every row usable, 1: the loaders would drop
            the rows listed (the rest load), 2: the file cannot be loaded at all, or the command is wrong (an
            unknown dataset, config, split or language: one line `afp data: error: ...`)"""
from __future__ import annotations

import argparse
import difflib
import sys
from collections import defaultdict
from pathlib import Path

from ..config import Parser
from ..config import UserError
from . import validate

FOLD_AFTER = 3   # a problem repeated on more rows is printed this many times, then "and N more rows like it"


def _verify(argv: list[str]) -> int:
    from . import store
    ap = Parser(prog="python -m afp_lib data verify")
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
    """(rows, fatal problems, row problems) of a JSON-lines file: every line is read, nothing stops early. A
    byte-order mark and a truncated last line are named as such (the JSON error alone does not say why)."""
    from .hub import DataError, parse_line, schema_problems
    n, fatal, rows = 0, [], []
    with open(path, encoding="utf-8") as f:
        lines = list(enumerate(f, 1))
    for lineno, line in lines:
        if not line.strip():
            continue
        n += 1
        where = f"{path}:{lineno}"
        if lineno == 1 and line.startswith("\ufeff"):
            fatal.append(validate.Problem(where, "bom", "the file starts with a UTF-8 byte-order mark (BOM), which "
                                          "the loaders do not accept: save it as UTF-8 without BOM"))
            line = line[1:]
        try:
            rec = parse_line(line, where)
        except DataError as e:
            what = str(e).split(": json: ", 1)[-1]
            if lineno == lines[-1][0] and not line.endswith("\n"):
                what = f"truncated last line (the file ends mid-record, without a newline): {what}"
            fatal.append(validate.Problem(where, "json", what))
            continue
        found = schema_problems(rec, schema, where) if schema else []
        if found:
            fatal += found
            continue
        rows += check(rec, where)
    return n, fatal, rows


def folded(problems: list[validate.Problem], first: int = FOLD_AFTER) -> list[str]:
    """The problems as lines; a (field, what) seen on more than `first` rows is shown `first` times, then counted."""
    groups: dict[tuple[str, str], list[validate.Problem]] = defaultdict(list)
    for p in problems:
        groups[(p.field, p.what)].append(p)
    out = []
    for (field, what), ps in groups.items():
        out += [str(p) for p in ps[:first]]
        if len(ps) > first:
            out.append(f"  ... and {len(ps) - first} more rows like it ({field}: {what})")
    return out


def split_spec(spec: str) -> tuple[str, str, str]:
    """`owner/name/config/split` -> (hub id, config, split). The hub id is the declared dataset the spec starts
    with, so a forgotten split (`facebook/xnli/zh`) is named as such instead of read as hub id `facebook`."""
    from .hub import SCHEMAS
    clean = spec.strip("/")
    for hub_id in sorted(SCHEMAS, key=len, reverse=True):
        if clean == hub_id or clean.startswith(hub_id + "/"):
            rest = clean[len(hub_id):].strip("/").split("/") if clean != hub_id else []
            if len(rest) == 2:
                return hub_id, rest[0], rest[1]
            what = {0: "a config and a split", 1: "the split"}.get(len(rest), "only a config and a split")
            example = f"{hub_id}/{rest[0] if rest else '<config>'}/<split>"
            raise argparse.ArgumentTypeError(f"--as {spec!r}: give {what} after the dataset, {example}"
                                             f"{_listing_hint(hub_id, rest[:1])}")
    parts = clean.split("/")
    if len(parts) < 3:
        raise argparse.ArgumentTypeError(f"--as {spec!r}: use <hub_id>/<config>/<split>, e.g. facebook/xnli/zh/validation")
    hub_id = "/".join(parts[:-2])
    close = difflib.get_close_matches(hub_id, list(SCHEMAS), n=1)
    raise argparse.ArgumentTypeError(f"--as {spec!r}: no declared schema for {hub_id!r}"
                                     + (f"; did you mean {close[0]!r}?" if close else "")
                                     + f" (known datasets: {', '.join(sorted(SCHEMAS))})")


def known_configs(hub_id: str) -> dict[str, set[str]] | None:
    """config -> splits of `hub_id`: the mirror's files when it has the dataset, else the task files' configs
    and splits; None when neither knows the dataset (the hub itself is not asked)."""
    from ..paths import mirror_root
    root = mirror_root()
    base = root / "hub" / hub_id if root else None
    if base is not None and base.is_dir():
        return {c.name: {f.name.split(".")[0] for f in c.iterdir() if f.suffix in (".jsonl", ".parquet")}
                for c in base.iterdir() if c.is_dir()}
    from ..eval.tasks import TASKS
    out: dict[str, set[str]] = {}
    for task in TASKS.values():
        if task.dataset == hub_id:
            for lang in task.languages.values():
                out.setdefault(lang.config, set()).update({task.splits.test, task.splits.demos} - {"holdout"})
    return out or None


def _listing_hint(hub_id: str, config: list[str]) -> str:
    try:
        known = known_configs(hub_id)
    except Exception:   # a hint only: a broken mirror is reported by the check itself
        return ""
    if not known:
        return ""
    if config and config[0] in known:
        return f" (splits of {config[0]}: {', '.join(sorted(known[config[0]]))})"
    return f" (configs: {', '.join(sorted(known))})"


def check_spec(hub_id: str, config: str, split: str) -> str | None:
    """UserError for a config (language) or split that `hub_id` does not have, with the closest names; a
    note when neither the mirror nor a task file lists the dataset's configs (then they are not checked)."""
    known = known_configs(hub_id)
    if known is None:
        return f"note: {hub_id}'s configs and splits are not checked (not in the mirror, no task file names them)"
    if config not in known:
        close = difflib.get_close_matches(config, list(known), n=3, cutoff=0.5)
        raise UserError(f"--as {hub_id}/{config}/{split}: {hub_id} has no config {config!r}"
                        + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                        + f" (configs: {', '.join(sorted(known))})")
    if split not in known[config]:
        close = difflib.get_close_matches(split, list(known[config]), n=1, cutoff=0.5)
        raise UserError(f"--as {hub_id}/{config}/{split}: {hub_id}/{config} has no split {split!r}"
                        + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" (splits: {', '.join(sorted(known[config]))})")
    return None


def known_languages() -> set[str]:
    """Every language code afp loads: the tasks' languages and those of the mirror's pair files (`en-xx`)."""
    from ..eval.tasks import TASKS
    from ..paths import mirror_root
    codes = {c for t in TASKS.values() for c in t.languages}
    root = mirror_root()
    if root is not None:
        for f in (root / "parallel").glob("*/*.jsonl"):
            codes.update(f.stem.split("-"))
    return codes


def pair_spec(spec: str) -> tuple[str, str]:
    a, sep, b = spec.partition("-")
    if not (sep and a and b):
        raise argparse.ArgumentTypeError(f"--parallel {spec!r}: use <xx>-<yy>, e.g. en-zh (the file's two language keys)")
    return a, b


def check_pair(pivot: str, lang: str) -> None:
    """UserError for a language code afp does not know (e.g. `vn`), with the closest codes (`vi`)."""
    known = known_languages()
    for code in (pivot, lang):
        if code not in known:
            close = difflib.get_close_matches(code, sorted(known), n=3, cutoff=0.5)
            raise UserError(f"--parallel {pivot}-{lang}: unknown language {code!r}"
                            + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                            + (f" (known: {', '.join(sorted(known))})" if len(known) <= 20 else
                               f" ({len(known)} known: the tasks' languages and the mirror's pair files')"))


def _run_check(args) -> int:
    path = args.file
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if args.parallel:
        from .corpora import parallel_check
        pivot, lang = args.parallel
        check_pair(pivot, lang)
        schema, check, what = {"translation": (dict,)}, parallel_check(pivot, lang), f"{pivot}-{lang} pairs"
    else:
        from .hub import SCHEMAS, row_check
        hub_id, config, split = args.as_
        note = check_spec(hub_id, config, split)
        if note:
            print(note, file=sys.stderr)
        schema, check, what = SCHEMAS[hub_id], row_check(hub_id, config), f"{hub_id}/{config}/{split}"
    n, fatal, problems = check_file(path, schema, check)
    for line in folded(fatal) + folded(problems):
        print(line)
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
    ap = Parser(prog="python -m afp_lib data check", description="validate a data file exactly as the loaders will")
    ap.add_argument("file", type=Path, help="a JSON-lines file")
    kind = ap.add_mutually_exclusive_group(required=True)
    kind.add_argument("--as", dest="as_", type=split_spec, metavar="HUB_ID/CONFIG/SPLIT",
                      help="validate as this split of a hub dataset, e.g. facebook/xnli/zh/validation")
    kind.add_argument("--parallel", type=pair_spec, metavar="XX-YY", help="validate as a pair file, e.g. en-zh")
    return _run_check(ap.parse_args(argv))


SUBCOMMANDS = {"fetch": ("afp_lib.data.fetch", "main"), "verify": (__name__, "_verify"), "check": (__name__, "_check")}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        close = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1)
        raise UserError(f"unknown subcommand {argv[0]!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" (subcommands: {', '.join(SUBCOMMANDS)})")
    import importlib
    module, func = SUBCOMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)

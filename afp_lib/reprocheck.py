"""`python -m afp_lib repro-check [--profile mini] [--ref HEAD]`: does a fresh `make repro` give the committed
headline numbers?

It compares the DVC metrics files of the working tree (`results/<profile>/metrics/*.json` and, where the
profile's world has toy models, `results/world/<profile>/diagnostic.json`, just regenerated) with the same
files as committed at `--ref` (read with `git show`), key by key, within the tolerances of `TOLERANCES`.
`--fresh DIR --committed DIR` compare two folders of metrics files instead. Exit 0: every committed number
reproduced; 1: a number is outside its tolerance, or a committed file or key is missing from the fresh run (new keys are listed only);
3: nothing was regenerated (below).

Regenerated or not: on a fresh clone `dvc repro` finds every stage unchanged and writes nothing, and the
comparison would be of the committed files with themselves ("310 of 310 reproduced"). A working-tree file
counts as regenerated when its content differs from the committed one, or when it was written more than
`CHECKOUT_SLACK_S` after params.yaml and dvc.yaml (which a repro never writes, and a checkout writes
together with the results). Files not regenerated are left out of the comparison and listed; when none was
regenerated, repro-check says so and exits 3 (`dvc repro --force` reruns the stages).

The mini profile pins fp32 and 2 threads, so on the pinned software stack a repro is expected to be exact;
the tolerances absorb CPU-kernel differences between machines (one flipped item among the 160 of an ICL
cell moves it by 0.6 points)."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import Parser
from .paths import repo_root

# (regex on the flattened key, absolute tolerance, relative tolerance): the first match wins.
TOLERANCES: list[tuple[str, float, float]] = [
    (r"best_layer", 0.0, 0.0),                      # a choice, not a measurement: exact
    (r"\bppl\b", 0.0, 0.02),                        # perplexity: 2% relative
    (r"bits_per_byte", 0.01, 0.0),                  # 0.01 bits per byte
    (r"\b(align|uniform)\b", 0.02, 0.0),            # Wang & Isola alignment / uniformity (a word: not acc_aligned)
    (r"retrieval_xx2en", 0.01, 0.0),                # the world diagnostic's retrieval, a fraction: 1 point
    (r"", 1.0, 0.0),                                # everything else is in percent (accuracy, retrieval,
]                                                   # answer shares, BLEU) and their s.e.: 1 point


def tolerance(key: str) -> tuple[float, float]:
    for pattern, atol, rtol in TOLERANCES:
        if re.search(pattern, key):
            return atol, rtol
    raise AssertionError("the last pattern matches every key")


def flatten(obj, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become "a[0]" keys."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((f"[{i}]", v) for i, v in enumerate(obj))
    else:
        return {prefix: obj}
    out = {}
    for k, v in items:
        key = f"{prefix}{k}" if not prefix or str(k).startswith("[") else f"{prefix}.{k}"
        out.update(flatten(v, key))
    return out


@dataclass(frozen=True)
class Diff:
    file: str
    key: str
    committed: object
    fresh: object
    ok: bool
    note: str = ""

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.file}: {self.key}: committed {self.committed!r}, fresh {self.fresh!r}{self.note}"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare_values(file: str, key: str, committed, fresh) -> Diff:
    if _number(committed) and _number(fresh):
        atol, rtol = tolerance(key)
        if math.isnan(committed) and math.isnan(fresh):
            return Diff(file, key, committed, fresh, True)
        limit = atol + rtol * abs(committed)
        ok = abs(fresh - committed) <= limit
        return Diff(file, key, committed, fresh, ok, f" (|diff| {abs(fresh - committed):.4g}, allowed {limit:.4g})")
    return Diff(file, key, committed, fresh, committed == fresh, "" if committed == fresh else " (differs)")


def compare(committed: dict[str, dict], fresh: dict[str, dict]) -> tuple[list[Diff], list[str]]:
    """(one Diff per committed key, notes on new keys/files). A committed file or key absent from the fresh
    run is a failing Diff with `fresh` None."""
    diffs, new = [], []
    for name in sorted(committed):
        old = flatten(committed[name])
        if name not in fresh:
            diffs.append(Diff(name, "*", "file", None, False, " (the fresh run wrote no such file)"))
            continue
        cur = flatten(fresh[name])
        for key in sorted(old):
            if key not in cur:
                diffs.append(Diff(name, key, old[key], None, False, " (missing from the fresh run)"))
            else:
                diffs.append(compare_values(name, key, old[key], cur[key]))
        new += [f"{name}: {key}: new key (not committed)" for key in sorted(set(cur) - set(old))]
    new += [f"{name}: new file (not committed)" for name in sorted(set(fresh) - set(committed))]
    return diffs, new


def metric_paths(profile: str) -> list[str]:
    """Repo-relative paths of a profile's metrics files (those present in the working tree or committed)."""
    root = repo_root()
    paths = {str(p.relative_to(root)) for p in (root / "results" / profile / "metrics").glob("*.json")}
    world = f"results/world/{profile}/diagnostic.json"   # smoke's toy models; mini's world is a corpus alone
    if (root / world).is_file():
        paths.add(world)
    listed = subprocess.run(["git", "ls-files", f"results/{profile}/metrics"], cwd=root, capture_output=True, text=True)
    paths |= {p for p in listed.stdout.split() if p.endswith(".json")}
    return sorted(paths)


def read_committed(paths: list[str], ref: str) -> dict[str, dict]:
    out = {}
    for path in paths:
        shown = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=repo_root(), capture_output=True, text=True)
        if shown.returncode == 0:
            out[path] = json.loads(shown.stdout)
    return out


CHECKOUT_SLACK_S = 60.0   # a checkout writes params.yaml and results/ within seconds; a repro takes minutes
CONFIG_FILES = ("params.yaml", "dvc.yaml")


def unregenerated(paths: list[str], committed: dict[str, dict], fresh: dict[str, dict], root: Path) -> list[str]:
    """The compared files no repro has written since the checkout: the committed content, and an mtime no later
    than CHECKOUT_SLACK_S after the newest of CONFIG_FILES (see the module doc)."""
    since = max(((root / f).stat().st_mtime for f in CONFIG_FILES if (root / f).is_file()), default=0.0)
    return [p for p in paths if p in committed and p in fresh and fresh[p] == committed[p]
            and (root / p).stat().st_mtime <= since + CHECKOUT_SLACK_S]


def read_folder(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder)): json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(Path(folder).rglob("*.json"))}


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m afp_lib repro-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="mini", help="the profile whose metrics files are compared")
    p.add_argument("--ref", default="HEAD", help="git revision holding the committed metrics")
    p.add_argument("--fresh", type=Path, help="a folder of fresh metrics files (instead of the working tree)")
    p.add_argument("--committed", type=Path, help="a folder of reference metrics files (instead of git --ref)")
    p.add_argument("-v", "--verbose", action="store_true", help="list every key, not only the failures")
    args = p.parse_args(argv)
    if (args.fresh is None) != (args.committed is None):
        p.error("--fresh and --committed go together")
    if args.fresh is not None:
        committed, fresh = read_folder(args.committed), read_folder(args.fresh)
    else:
        paths = metric_paths(args.profile)
        committed = read_committed(paths, args.ref)
        fresh = {path: json.loads((repo_root() / path).read_text(encoding="utf-8"))
                 for path in paths if (repo_root() / path).is_file()}
    if not committed:
        print(f"no committed metrics to compare with (profile {args.profile!r}, ref {args.ref})", file=sys.stderr)
        return 1
    if args.fresh is None:
        stale = unregenerated(paths, committed, fresh, repo_root())
        if stale and len(stale) == len([p for p in committed if p in fresh]):
            print(f"repro-check: nothing was regenerated: the {len(stale)} metrics files of profile {args.profile!r} "
                  f"are as committed at {args.ref} and were not written since the checkout (params.yaml, dvc.yaml); "
                  "comparing them would compare the committed numbers with themselves. Run `make repro` first "
                  "(`dvc repro --force` when DVC finds every stage unchanged)", file=sys.stderr)
            return 3
        for path in stale:
            print(f"note {path}: not regenerated since the checkout; left out of the comparison")
            committed.pop(path)
            fresh.pop(path)
    diffs, new = compare(committed, fresh)
    failed = [d for d in diffs if not d.ok]
    for d in diffs if args.verbose else failed:
        print(d)
    for line in new:
        print("note", line)
    print(f"repro-check: {len(diffs) - len(failed)} of {len(diffs)} committed numbers reproduced within tolerance"
          f" ({len(committed)} files); {len(failed)} failed")
    return 1 if failed else 0

"""`python -m afp_lib data fetch`: every dataset a profile uses, fetched once into a local store that compute
nodes then read offline ($AFP_DATA_MIRROR=<store>).

Each source is a recipe in recipes.yaml (hub id, pinned revision, file patterns, configs, splits, columns).
A fetch downloads the matching files with `huggingface_hub.snapshot_download` at the recipe's revision
(from its cache when HF_HUB_OFFLINE=1), concatenates them with pyarrow, checks the columns, and writes
`hub/<id>/<config>/<split>.parquet` atomically, recording rows, bytes and sha256 in the manifest
(afp_lib.data.store). An interrupted fetch leaves a marker that readers refuse; rerunning it resumes."""
from __future__ import annotations

import fnmatch
import logging
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import atomic
from ..config import Parser, load_section
from ..paths import repo_root
from . import store

# Bactrian-X: 52 languages (paper Table 21 without the evaluation-only ones), ~67k rows each (paper §3.1).
BACTRIAN_X_LANGS = tuple("af ar az bn cs de en es et fa fi fr gl gu he hi hr id it ja ka kk km ko lt lv mk ml mn mr "
                         "my ne nl pl ps pt ro ru si sl sv sw ta te th tl tr uk ur vi xh zh".split())
# .hub (DataError, hub_error, ...) imports `datasets` (seconds): imported where used, so `data fetch --help`
# parses without it

logger = logging.getLogger(__name__)
RECIPES = Path(__file__).with_name("recipes.yaml")
TASKS = Path(__file__).resolve().parent.parent / "eval" / "tasks"
TASK_RECIPES = {"xnli": "xnli", "pawsx": "pawsx", "xcopa": "xcopa", "xstorycloze": "xstorycloze",
                "xwinograd": "xwinograd", "flores": "flores"}


class FetchError(RuntimeError):
    """A fetch that cannot complete as asked (a language a source lacks, a file of the wrong shape)."""


@dataclass(frozen=True)
class Item:
    """One (dataset, config, split) of the store."""
    source: str
    hub_id: str
    revision: str
    config: str
    split: str
    patterns: tuple[str, ...]
    columns: tuple[str, ...]
    rename: tuple[tuple[str, str], ...] = ()
    rows: str = "?"
    absent: bool = False                            # the recipe lists this language as absent upstream
    dest: str = ""                                  # path in the store (set by `plan`)
    sides: tuple[tuple[str, str], ...] = ()         # parallel recipes: (language, column) of each side

    def filled(self) -> list[str]:
        return [p.format(config=self.config, split=self.split) for p in self.patterns]


def load_recipes(path: Path = RECIPES) -> dict:
    with open(path, encoding="utf-8") as f:
        recipes = yaml.safe_load(f)["sources"]
    for name, r in recipes.items():
        for key in ("id", "revision", "files", "configs", "splits", "columns"):
            if key not in r:
                raise KeyError(f"{path}: recipe {name!r} lacks {key!r}")
        if "missing" in r:  # the old `missing: optional` turned a language the pin lacks into a warning
            raise KeyError(f"{path}: recipe {name!r}: field 'missing' is no longer read; list the languages "
                           f"known not to exist upstream under `absent: [..]` (anything else missing fails)")
        if r.get("absent") and r["configs"] != "langs":
            raise KeyError(f"{path}: recipe {name!r}: field 'absent' applies to `configs: langs` recipes only")
    return recipes


def task_configs(task: str) -> list[str]:
    with open(TASKS / f"{task}.yaml", encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    return sorted({lang["config"] for lang in spec["languages"].values()})


def profile_needs(profile: str) -> tuple[dict[str, list[str] | None], str]:
    """({recipe name: its languages (None: every config the recipe lists)}, pivot) of a profile."""
    train = load_section("train", profile)
    data, cit = train.get("data", {}), train.get("cit", {})
    pivot = data.get("pivot", "en")
    langs = set(data.get("langs", []))
    for section in ("multilingual", "all_languages"):
        value = load_section(section, profile).get("langs", [])
        langs |= set(BACTRIAN_X_LANGS) if value == "all" else set(value or [])
    langs = sorted(langs - {pivot})
    names: dict[str, list[str] | None] = {}
    if "opus100" in data.get("sources", []):
        names["opus100"] = langs
    if data.get("bactrian_pairs") or "bactrian" in cit.get("sources", []):
        names["bactrian"] = langs
    if "alpaca" in cit.get("sources", []):
        names["alpaca"] = None
    for task in load_section("eval", profile).get("tasks", []) + ["flores"]:
        if task in TASK_RECIPES:
            names[TASK_RECIPES[task]] = None
    analysis = load_section("analysis", profile)
    if analysis.get("source") == "tatoeba":  # the held-out probe pairs (never trained on)
        probe = set(analysis.get("languages", [])) | set(load_section("multilingual", profile).get("langs", []))
        names["tatoeba"] = sorted(probe - {pivot})
    return names, pivot


def plan(needs: dict[str, list[str] | None], pivot: str = "en", recipes: dict | None = None) -> list[Item]:
    """The items of a fetch, in order: {recipe: languages} picks the configs of per-language recipes."""
    recipes = recipes if recipes is not None else load_recipes()
    items = []
    for name, langs in needs.items():
        r = recipes[name]
        langs = list(langs or [])
        absent = set(r.get("absent") or [])
        if r["configs"] == "langs":
            wanted = ([pivot] if r.get("with_pivot") else []) + [x for x in langs if x != pivot]
            configs = [(x, r["config"].format(lang=x, pair="-".join(sorted([pivot, x])))) for x in wanted]
        elif r["configs"] == "pairs":
            unknown = sorted(set(langs) - set(r["pairs"]))
            if unknown:
                raise FetchError(f"recipe {name!r} in {RECIPES} has no config for {unknown}; it lists "
                                 f"{sorted(r['pairs'])}")
            configs = [(x, r["pairs"][x]) for x in langs]
        elif isinstance(r["configs"], dict):
            configs = [("", c) for c in task_configs(r["configs"]["task"])]
        else:
            configs = [("", c) for c in r["configs"]]
        for lang, config in configs:
            for split in r["splits"]:
                if r.get("kind") == "parallel":
                    dest = f"parallel/{name}/{pivot}-{lang}.jsonl"
                    sides = ((pivot, r["sides"]["pivot"]), (lang, r["sides"]["lang"]))
                else:
                    dest, sides = f"hub/{r['id']}/{config}/{split}.parquet", ()
                items.append(Item(name, r["id"], str(r["revision"]), config, split, tuple(r["files"]),
                                  tuple(r["columns"]), tuple(sorted((r.get("rename") or {}).items())),
                                  str((r.get("rows") or {}).get(split, "?")), lang in absent, dest, sides))
    return items


def plan_lines(items: list[Item]) -> list[str]:
    lines = [f"{it.hub_id}@{it.revision} {it.config} {it.split}: "
             + ("absent upstream (the recipe's `absent`): not fetched" if it.absent else
                f"rows {it.rows} <- {' | '.join(it.filled())}") for it in items]
    lines.append(f"{len({it.source for it in items})} sources, {len(items)} files")
    return lines


def _download(item: Item, cache_dir: str | None) -> Path:
    """The local snapshot folder of the item's repository at its revision, holding the files it needs."""
    from huggingface_hub import snapshot_download

    from .hub import hub_error
    try:
        return Path(snapshot_download(item.hub_id, repo_type="dataset", revision=item.revision,
                                      allow_patterns=item.filled(), cache_dir=cache_dir))
    except Exception as e:
        raise hub_error(e, f"data fetch {item.hub_id}@{item.revision} ({item.config}/{item.split})") from e


def _match(snapshot: Path, patterns: list[str]) -> list[Path]:
    """Files of the first pattern that matches anything, sorted (shards in order)."""
    every = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    for pattern in patterns:
        hits = [f for f in every if fnmatch.fnmatchcase(f, pattern)]
        if hits:
            return [snapshot / f for f in hits]
    return []


def convert(item: Item, files: list[Path], dest: Path):
    """Concatenate the hub's Parquet files of one split, check and rename columns, write `dest` atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .hub import DataError
    tables = []
    want = set(item.columns)
    renames = dict(item.rename)
    for f in files:
        t = pq.read_table(f)
        t = t.rename_columns([renames.get(c, c) for c in t.column_names])
        if set(t.column_names) != want:
            have = set(t.column_names)
            raise DataError(f"{f} ({item.hub_id}@{item.revision}): columns {sorted(have)}, the recipe "
                            f"'{item.source}' in {RECIPES} expects {sorted(want)} (extra {sorted(have - want)}, "
                            f"missing {sorted(want - have)})")
        tables.append(t.select(list(item.columns)))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    with atomic.replacing(dest) as tmp:
        if item.sides:
            rows = _write_pairs(item, table, files, tmp)
        else:
            pq.write_table(table, tmp)
            rows = table.num_rows
    return rows


def _ascii_share(texts: list[str]) -> float:
    chars = "".join(texts)
    return sum(c.isascii() for c in chars) / max(1, len(chars))


def _write_pairs(item: Item, table, files: list[Path], tmp: Path) -> int:
    """A bitext table as the mirror's parallel JSON lines ({"translation": {pivot: .., lang: ..}, "id": i}).
    Which column is English is declared in the recipe; a sanity check refuses an English side with fewer
    ASCII letters than the other (the recipe's sides swapped)."""
    import json

    from .hub import DataError
    (pivot, pcol), (lang, lcol) = item.sides
    p, x = table.column(pcol).to_pylist(), table.column(lcol).to_pylist()
    if _ascii_share(p) < _ascii_share(x):
        raise DataError(f"{files[0]}: column {pcol!r} (declared {pivot}) has fewer ASCII characters than {lcol!r} "
                        f"(declared {lang}): the recipe '{item.source}' in {RECIPES} has its sides swapped")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for i, (a, b) in enumerate(zip(p, x)):
            if a and b and a.strip() and b.strip():
                f.write(json.dumps({"translation": {pivot: a.strip(), lang: b.strip()}, "id": str(i)},
                                   ensure_ascii=False) + "\n")
                n += 1
    return n


def _available(snapshot: Path, item: Item) -> str:
    """Configs of the repository, for the error of a missing one (the hub's listing when online)."""
    try:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
            from huggingface_hub import list_repo_files
            names = list_repo_files(item.hub_id, repo_type="dataset", revision=item.revision)
            return ", ".join(sorted({n.split("/")[0] for n in names if "/" in n})) or "nothing"
    except Exception:  # the listing only decorates the error
        pass
    return ", ".join(sorted(p.name for p in snapshot.iterdir() if p.is_dir() and not p.name.startswith("."))) \
        or "nothing cached"


def check_revisions(state: dict, items: list[Item], where: Path) -> None:
    """A store holds each dataset at one revision: refuse to mix in files of another pin (or to resume a
    fetch whose recipe has since moved), naming both revisions."""
    for item in items:
        have = state.get("sources", {}).get(item.hub_id, {}).get("revision")
        if have is not None and have != item.revision:
            raise FetchError(f"{where}: the store holds {item.hub_id} at revision {have}, the recipe "
                             f"'{item.source}' in {RECIPES} pins {item.revision}: fetch into a new --out (a store "
                             f"is one snapshot of each dataset; files of two revisions are never mixed)")


def fetch(items: list[Item], out: Path, cache_dir: str | None = None, command: str = "") -> dict:
    """Materialise `items` into the store `out`, resuming a previous interrupted fetch; returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial_path = out / store.PARTIAL
    if partial_path.is_file():
        state, where = _read(partial_path), partial_path
        logger.info("resuming an interrupted fetch into %s (%d files done)", out, len(state["files"]))
    else:
        state, where = store.read_manifest(out), out / store.MANIFEST
        state = state or {"format": store.FORMAT, "sources": {}, "files": {}, "skipped": []}
    check_revisions(state, items, where)  # before the marker: a refused fetch leaves the store readable
    marker = out / store.INCOMPLETE
    marker.write_text(command + "\n", encoding="utf-8")
    skipped = set(state.get("skipped", []))
    for n, item in enumerate(items, 1):
        dest = out / item.dest
        if item.absent:
            logger.info("[%d/%d] %s/%s: absent upstream (recipe '%s'), not fetched", n, len(items),
                        item.hub_id, item.config, item.source)
            skipped.add(f"{item.hub_id}/{item.config}/{item.split}")
            continue
        done = state["files"].get(item.dest)
        if done and done.get("revision") == item.revision and dest.is_file() \
                and dest.stat().st_size == done["bytes"] and store.sha256_file(dest) == done["sha256"]:
            logger.info("[%d/%d] %s: already in the store", n, len(items), item.dest)
            continue
        snapshot = _download(item, cache_dir)
        commit = state["sources"].get(item.hub_id, {}).get("commit")
        if commit and commit != snapshot.name:  # a branch pin (`main`) that moved since the store was made
            raise FetchError(f"{where}: the store holds {item.hub_id}@{item.revision} at commit {commit}, the hub "
                             f"now resolves it to {snapshot.name}: fetch into a new --out, or pin the recipe "
                             f"'{item.source}' in {RECIPES} to {commit}")
        files = _match(snapshot, item.filled())
        if not files:
            what = f"{item.hub_id}@{item.revision} has no {item.config}/{item.split} (patterns {item.filled()})"
            raise FetchError(f"{what}; configs there: {_available(snapshot, item)}. Pin a revision that has it, "
                             f"drop the language (--langs), or, if it does not exist upstream at all, list it "
                             f"under `absent` of the recipe '{item.source}' in {RECIPES}")
        rows = convert(item, files, dest)
        if item.rows.isdigit() and int(item.rows) != rows:
            logger.warning("%s: %d rows, the recipe expects %s (the dataset card's count): check the revision",
                           item.dest, rows, item.rows)
        state["files"][item.dest] = {
            "rows": rows, "bytes": dest.stat().st_size, "sha256": store.sha256_file(dest),
            "revision": item.revision, "source": f"{item.hub_id}@{snapshot.name}: "
                                                 + ", ".join(f.relative_to(snapshot).as_posix() for f in files)}
        state["sources"][item.hub_id] = {"revision": item.revision, "commit": snapshot.name, "recipe": item.source}
        state["skipped"] = sorted(skipped)
        store.write_json_atomic(partial_path, state)
        logger.info("[%d/%d] %s: %d rows from %s", n, len(items), item.dest, rows, state["files"][item.dest]["source"])
    state["skipped"] = sorted(skipped)
    store.write_json_atomic(out / store.MANIFEST, state)
    partial_path.unlink(missing_ok=True)
    marker.unlink()
    return state


def _read(path: Path) -> dict:
    import json
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str]) -> int:
    ap = Parser(prog="python -m afp_lib data fetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", help="whose datasets (params.yaml profile; default paper)")
    ap.add_argument("--langs", default=None, help="training languages, comma-separated (default: the profile's)")
    ap.add_argument("--sources", default=None, help="only these recipes, comma-separated (default: all needed)")
    ap.add_argument("--out", default=str(repo_root() / "data-store"), help="the store folder")
    ap.add_argument("--cache-dir", default=None, help="huggingface_hub cache (default: $HF_HUB_CACHE)")
    ap.add_argument("--plan", action="store_true", help="print what would be fetched; no network")
    args = ap.parse_args(argv)
    needs, pivot = profile_needs(args.profile)
    if args.langs:  # the training languages: the per-language training recipes follow them
        langs = [x.strip() for x in args.langs.split(",") if x.strip()]
        needs = {k: (langs if k in ("opus100", "bactrian") else v) for k, v in needs.items()}
    if args.sources:
        wanted = [x.strip() for x in args.sources.split(",")]
        unknown = sorted(set(wanted) - set(load_recipes()))
        if unknown:
            ap.error(f"unknown --sources {unknown}; recipes: {', '.join(load_recipes())}")
        needs = {k: needs.get(k) for k in wanted}
    items = plan(needs, pivot)
    if args.plan:
        print("\n".join(plan_lines(items)))
        return 0
    command = "python -m afp_lib data fetch " + " ".join(shlex.quote(a) for a in argv)
    from .hub import DataError, DatasetNotFound, HubUnavailable
    try:
        manifest = fetch(items, Path(args.out), args.cache_dir, command)
    except (FetchError, DataError, DatasetNotFound, HubUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(manifest['files'])} files, manifest sha256 {store.manifest_hash(Path(args.out))}; "
          f"compute nodes: export AFP_DATA_MIRROR={Path(args.out).resolve()}")
    return 0

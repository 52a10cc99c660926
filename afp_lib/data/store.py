"""The data store: a folder in the mirror's layout (`hub/<id>/<config>/<split>.parquet`) written by
`data fetch`, with a manifest saying where every file came from.

    manifest.json   {"format": "afp-store/1", "sources": {id: {revision, files read, ...}},
                     "files": {relative path: {rows, bytes, sha256, source}}, "skipped": [...]}
    .fetch-incomplete   present while a fetch runs: an interrupted fetch leaves it, and readers refuse the
                        store until a rerun of the same fetch has resumed and finished it.
    .manifest.partial.json  what the running fetch has finished so far (the resume point).

The shared offline mirror has a manifest too (a flat {path: entry}); both are hashed the same way, and
runs record that hash (`manifest_hash`), so every result names the exact data it came from."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import atomic

FORMAT = "afp-store/1"
MANIFEST = "manifest.json"
PARTIAL = ".manifest.partial.json"
INCOMPLETE = ".fetch-incomplete"


class StoreError(ValueError):
    """A store that cannot be trusted: half-written, or its files do not match its manifest."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: Path, obj) -> None:
    atomic.write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def check_complete(root: Path) -> None:
    """Refuse a store an interrupted fetch left behind (never read half of a dataset)."""
    marker = Path(root) / INCOMPLETE
    if marker.exists():
        cmd = marker.read_text(encoding="utf-8").strip() or "python -m afp_lib data fetch ... --out " + str(root)
        raise StoreError(f"{root}: the data store is half-written (an interrupted fetch left {marker}); "
                         f"rerun the fetch to resume it: {cmd}")


def read_manifest(root: Path) -> dict | None:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise StoreError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def manifest_files(manifest: dict) -> dict:
    """{relative path: entry} for a store manifest and for the shared mirror's flat one."""
    return manifest["files"] if manifest.get("format") == FORMAT else manifest


def manifest_hash(root: Path | None) -> str | None:
    """sha256 of the manifest's bytes (None without a store or without a manifest)."""
    if root is None or not (Path(root) / MANIFEST).is_file():
        return None
    return sha256_file(Path(root) / MANIFEST)


def check_file(root: Path, path: Path, full: bool = False) -> None:
    """A store file must be in the manifest with the same size (and sha256 when `full`)."""
    manifest = read_manifest(root)
    if manifest is None or manifest.get("format") != FORMAT:
        return  # the shared mirror: checked record by record instead
    rel = path.relative_to(root).as_posix()
    entry = manifest["files"].get(rel)
    if entry is None:
        raise StoreError(f"{path}: not listed in {root / MANIFEST} (a file the fetch did not write); "
                         f"refetch, or remove it")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise StoreError(f"{path}: {size} bytes, but {root / MANIFEST} says {entry['bytes']}: the store does not "
                         f"match its manifest; rerun the fetch")
    if full and sha256_file(path) != entry["sha256"]:
        raise StoreError(f"{path}: sha256 differs from {root / MANIFEST}: the store does not match its manifest")


def verify(root: Path) -> list[str]:
    """Every manifest file present with its size and sha256; returns the problems (empty = good)."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        return [f"{root}: no {MANIFEST}"]
    problems = []
    if (root / INCOMPLETE).exists():
        problems.append(f"{root}: half-written ({INCOMPLETE} present)")
    for rel, entry in sorted(manifest_files(manifest).items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: listed in the manifest, missing")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: size or sha256 differs from the manifest")
    return problems


def data_revisions(root: Path | None) -> dict:
    """What a result came from: the store's manifest hash and each dataset's revision (for results tables)."""
    if root is None:
        return {"store": None, "note": "read from the Hugging Face hub at run time: revisions not pinned"}
    manifest = read_manifest(root) or {}
    out = {"store": Path(root).name, "manifest_sha256": manifest_hash(root)}  # the hash names it, not the path
    if manifest.get("format") == FORMAT:
        out["datasets"] = {k: v["revision"] for k, v in sorted(manifest["sources"].items())}
    else:  # the shared mirror: per-file provenance strings, deduplicated
        out["datasets"] = sorted({v.get("source", "?") for v in manifest.values() if isinstance(v, dict)})
    return out

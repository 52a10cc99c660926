"""All-or-nothing writes: whoever reads what afp wrote (a resumed run, the next notebook, DVC, another rank)
finds the old content or the new, never half. A file is written under a temporary name in its own folder,
fsynced and `os.replace`d onto its name (atomic on POSIX). A folder is built under a temporary name, then
swapped in: the old one renamed aside, the new one renamed in, the old one deleted (docs/architecture.md)."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write (same suffix: np.savez, savefig and parquet keep their format);
    at the end of the block it is fsynced and replaces `path`; after an error it is removed, `path` untouched.
    The folder of `path` is made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fresh_dir(path: str | Path, tag: str = "") -> Path:
    """An empty folder `.tmp-<name><tag>` beside `path` to build it in (what an interrupted build left there is
    removed); `commit_dir` puts it in place."""
    tmp = Path(path).with_name(f".tmp-{Path(path).name}{tag}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: Path, final: Path) -> None:
    """The finished folder `tmp` becomes `final`: an older `final` is renamed to `<final>.old` first and deleted
    after, so a crash leaves the old folder or the new one (between the two renames: the old one, aside)."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def building_dir(final: str | Path, tag: str = "") -> Iterator[Path]:
    """`fresh_dir`, filled by the block, then `commit_dir`; after an error the half-built folder is removed."""
    tmp = fresh_dir(final, tag)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit_dir(tmp, Path(final))

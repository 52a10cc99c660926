"""Where things live. Every path is resolved from the repository root, never the current directory:
papermill, nbval and DVC start kernels and commands in different folders."""
from __future__ import annotations

import os
from pathlib import Path

MIRROR_ENV = "AFP_DATA_MIRROR"  # names an offline mirror laid out like ../shared/afp-data


def repo_root() -> Path:
    """The folder holding params.yaml (AFP_ROOT overrides, e.g. for an installed package)."""
    if os.environ.get("AFP_ROOT"):
        return Path(os.environ["AFP_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "params.yaml").exists():
        return here
    cwd = Path.cwd().resolve()
    for p in (cwd, *cwd.parents):
        if (p / "params.yaml").exists() and (p / "afp_lib").is_dir():
            return p
    return here


def mirror_root() -> Path | None:
    """The offline mirror named by $AFP_DATA_MIRROR, or None to read the Hugging Face hub."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_absolute():
        root = repo_root() / root
    if not root.is_dir():
        raise FileNotFoundError(f"${MIRROR_ENV}={value!r} is not a directory (resolved to {root})")
    return root.resolve()


def runs_dir() -> Path:
    """Trained models and their logs (the run cache); AFP_RUNS overrides."""
    return Path(os.environ.get("AFP_RUNS") or repo_root() / "runs")


def results_dir(section: str = "") -> Path:
    return repo_root() / "results" / section


def figures_dir(section: str = "") -> Path:
    return repo_root() / "figures" / section

"""Where things live. Every path is resolved from the repository root, never the current directory:
papermill, nbval and DVC start kernels and commands in different folders."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MIRROR_ENV = "AFP_DATA_MIRROR"  # names an offline mirror laid out like ../shared/afp-data
# section (results/<profile>/<section>/) -> its notebook (notebooks/), in the paper's order; one line per section
NOTEBOOKS = {"bilingual": "01_bilingual.ipynb", "mcl_layer": "02_mcl_layer.ipynb", "p_src": "03_p_src.ipynb",
             "multilingual": "04_multilingual.ipynb", "all_languages": "05_all_languages.ipynb",
             "ablation": "06_ablation.ipynb", "appendix": "07_appendix.ipynb"}
SECTIONS = tuple(NOTEBOOKS)


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


def digest(obj, n: int = 16) -> str:
    """A short stable hash of a JSON-able value (cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def model_key(model: str) -> str:
    """A model's identity in the cache: its folder relative to the runs folder (so a moved checkout keeps
    its cache), else the folder or hub id as given."""
    try:
        return "runs:" + Path(model).resolve().relative_to(runs_dir().resolve()).as_posix()
    except ValueError:
        return model

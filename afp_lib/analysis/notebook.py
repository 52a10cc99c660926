"""What a section notebook prints, and nothing else: figures inline (and saved), log lines without absolute
paths or cache chatter, no progress bars, no library warnings, the config as a few lines of YAML.

`configure()` is called once by `afp_lib.experiment.setup` (the first cell of every notebook); `show(fig)`
displays a figure as a PNG output under any kernel (papermill, nbclient, Jupyter) and closes it, so the
inline backend does not draw it a second time; outside IPython it only closes it."""
from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# afp_lib loggers whose INFO lines repeat for every cached run (WARNING and up still show), and libraries
# whose notes are not the notebook's (ERROR and up still show): font substitution, DeepSpeed's accelerator,
# the tokenizer's "longer than the maximum length" (the evaluation truncates from the left on purpose)
QUIET = ("afp_lib.trainer.runs", "afp_lib.trainer.data")
LIBRARIES = ("openTSNE", "matplotlib", "PIL", "numba", "datasets", "huggingface_hub", "fsspec", "urllib3",
             "transformers", "DeepSpeed", "deepspeed", "torch")


def in_ipython() -> bool:
    """True inside an IPython shell or kernel (papermill and nbclient start one)."""
    ip = sys.modules.get("IPython")
    return ip is not None and getattr(ip, "get_ipython", lambda: None)() is not None


class RelativePaths(logging.Formatter):
    """Log lines with paths relative to the repository root (runs/..., results/...); the data mirror as
    $AFP_DATA_MIRROR and the home folder as ~: an executed notebook names no machine's folders."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        from ..paths import MIRROR_ENV, mirror_root, repo_root, runs_dir
        subs = [(str(repo_root()) + os.sep, ""), (str(repo_root()), ".")]
        runs = runs_dir().resolve()
        if not str(runs).startswith(str(repo_root())):
            subs.insert(0, (str(runs), "runs"))
        try:
            mirror = mirror_root()
        except FileNotFoundError:
            mirror = None
        if mirror is not None:
            subs.insert(0, (str(mirror), f"${MIRROR_ENV}"))
        subs.append((str(Path.home()), "~"))
        self.subs = subs

    def format(self, record):
        return relative(super().format(record), self.subs)


def relative(text: str, subs: Iterable[tuple[str, str]]) -> str:
    for old, new in subs:
        text = text.replace(old, new)
    return text


def configure(level: int = logging.INFO) -> None:
    """Logging for a notebook: INFO from afp_lib with paths made relative; inside a kernel also WARNING from the
    loggers in QUIET, ERROR from the LIBRARIES, no Hugging Face progress bars, narrower pandas output. Figures
    are inline there by themselves: `plots` forces Agg only outside IPython."""
    import warnings
    handler = logging.StreamHandler()
    handler.setFormatter(RelativePaths("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    warnings.filterwarnings("ignore", message="IProgress not found")
    if not in_ipython():   # a script or test harness running notebook code keeps every logger as it is
        return
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets
    import huggingface_hub
    import transformers
    transformers.utils.logging.set_verbosity_error()   # its own handler: "[transformers] Token indices ..."
    transformers.utils.logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
    huggingface_hub.utils.disable_progress_bars()
    datasets.disable_progress_bars()
    import pandas as pd
    pd.set_option("display.max_columns", 12)
    pd.set_option("display.width", 120)
    pd.set_option("display.max_colwidth", 60)


def show(fig, dpi: int = 100) -> None:
    """Display `fig` as a PNG output (under any backend, so a papermill run keeps the image) and close it."""
    import matplotlib.pyplot as plt
    if in_ipython():
        from IPython.core.pylabtools import print_figure
        from IPython.display import Image, display
        display(Image(data=print_figure(fig, "png", bbox_inches="tight", dpi=dpi)))
    plt.close(fig)


def short_config(block: Mapping, keys: Iterable[str] | None = None) -> str:
    """The params block's fields that matter (`keys`; default every one but `runs`, which the notebooks'
    model tables show), one line of YAML each, as a Markdown code block: a reader sees what ran, not a dict."""
    import yaml
    keys = list(keys) if keys is not None else [k for k in block if k != "runs"]
    missing = [k for k in keys if k not in block]
    if missing:
        raise KeyError(f"short_config: {missing} not in the params block (keys: {sorted(block)})")
    lines = [yaml.safe_dump({k: block[k]}, default_flow_style=True, allow_unicode=True, sort_keys=False,
                                   width=10**6).strip()[1:-1]
             for k in keys]
    return "```yaml\n" + "\n".join(lines) + "\n```"


ABSOLUTE = re.compile(r"(?<![\w.~$])/(?:home|work|tmp|Users|root|usr|opt|mnt|var|private)/")
TRACEBACK = ("Traceback (most recent call last)", "Error:", "Exception:")
PROGRESS = re.compile(r"\d+%\|[█▉▊▋▌▍▎▏ #]*\||it/s\]|s/it\]")


def output_problems(nb) -> list[str]:
    """What an executed notebook's outputs should not hold: an error or traceback, an absolute path, a
    progress bar, a library warning; one line per problem, naming the cell (tests and the integrator's check)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: error {out.get('ename')}: {out.get('evalue')}")
                continue
            texts = [out.get("text", "")] if out.get("output_type") == "stream" else \
                [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for what, bad in (("traceback", any(t in text for t in TRACEBACK[:1])),
                                  ("absolute path", ABSOLUTE.search(text)),
                                  ("progress bar", PROGRESS.search(text)),
                                  ("warning", "Warning:" in text or "Substituting symbol" in text)):
                    if bad:
                        problems.append(f"cell {i}: {what}: {text.strip()[:160]!r}")
    return problems


def images(nb) -> int:
    """How many outputs of an executed notebook are PNG images (a figure cell that printed '<Figure size …>'
    instead has none)."""
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def main(argv: list[str] | None = None) -> int:
    """`python -m afp_lib.analysis.notebook results/mini/*/*.ipynb`: each executed notebook's output problems
    and its image count; exit status 1 when any notebook has a problem."""
    import nbformat
    bad = 0
    for path in argv if argv is not None else sys.argv[1:]:
        nb = nbformat.read(path, as_version=4)
        problems = output_problems(nb)
        bad += bool(problems)
        print(f"{path}: {images(nb)} images, {len(problems)} problems")
        for p in problems:
            print(f"  {p}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""An executed notebook shows its figures and nothing a reader should not see.

`make test` runs the notebooks through nbval (which keeps no executed copy), then this file: it executes one
section notebook with a figure (02, Fig. 4a; its runs and evaluations are cached by then) on the smoke profile
through papermill, as DVC does for results/<profile>/, and checks the executed copy: at least one PNG image
output, and no error, traceback, absolute path, progress bar or library warning in any output
(afp_lib.analysis.notebook.output_problems). The same check over the committed executed notebooks:
`python -m afp_lib.analysis.notebook results/mini/*/*.ipynb`."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from afp_lib.analysis.notebook import images, output_problems

HERE = Path(__file__).resolve().parent
KERNEL = "afp"


def _kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager
    return KERNEL in KernelSpecManager().find_kernel_specs()


@pytest.mark.skipif(not _kernel_available(), reason=f"no Jupyter kernel {KERNEL!r} (`make setup` installs it)")
def test_smoke_notebook_shows_figures_and_no_noise(tmp_path):
    import papermill
    out = tmp_path / "02_mcl_layer.ipynb"
    papermill.execute_notebook(str(HERE / "02_mcl_layer.ipynb"), str(out), parameters={"profile": "smoke"},
                               kernel_name=KERNEL, progress_bar=False, cwd=str(HERE))
    nb = nbformat.read(out, as_version=4)
    assert images(nb) >= 1, "no image/png output: the figure cell printed '<Figure size …>' instead"
    problems = output_problems(nb)
    assert not problems, "\n".join(problems)
    card = [c for c in nb.cells if c.cell_type == "code" and "scorecard.section_scorecard" in c.source]
    assert card and any("Verdict rule" in str(o.get("data", {})) for o in card[0].outputs)

"""Shared fixtures: a toy tokenizer trained on a few mirror-like lines and tiny random models of each
architecture. No download ever happens in tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from afp_lib.families import FAMILIES

torch.set_num_threads(1)  # 2-core machines; tests are tiny and deterministic

ROOT = Path(__file__).resolve().parent.parent
SHARED_MIRROR = ROOT.parent / "shared" / "afp-data"
# the families the paper aligns (a registered family with a paper row): tests of the paper's code paths run on these
PAPER_ARCHS = tuple(name for name, f in FAMILIES.items() if f.paper_model)

TOY_TEXT = [
    "The cat sat on the mat.", "A dog runs in the park.", "We need at least ten countries to join us.",
    "猫坐在垫子上。", "一只狗在公园里跑。", "我们需要至少十个国家加入我们。",
    "Kedi paspasın üzerine oturdu.", "Bir köpek parkta koşuyor.",
    "แมวนั่งบนเสื่อ", "สุนัขวิ่งในสวน", "Paka alikaa juu ya mkeka.", "Mbwa anakimbia bustanini.",
] * 20


@pytest.fixture(scope="session")
def toy_tokenizer():
    from afp_lib.tokenizer import train_bpe
    return train_bpe(TOY_TEXT, vocab_size=400, min_frequency=1)


@pytest.fixture(scope="session")
def tiny_shape():
    from afp_lib.models import ModelShape
    return ModelShape(d_model=32, n_layers=3, n_heads=2, ffn_dim=64, max_positions=128)


@pytest.fixture(scope="session")
def tiny_models(toy_tokenizer, tiny_shape):
    """One tiny random model per supported architecture, in eval mode."""
    from afp_lib.models import ARCHS, build_model
    return {arch: build_model(arch, tiny_shape, toy_tokenizer, seed=0).eval() for arch in ARCHS}


@pytest.fixture()
def mirror(monkeypatch):
    """Point $AFP_DATA_MIRROR at ../shared/afp-data (skip where it is absent)."""
    if not SHARED_MIRROR.is_dir():
        pytest.skip("../shared/afp-data is not beside the checkout")
    monkeypatch.setenv("AFP_DATA_MIRROR", str(SHARED_MIRROR))
    return SHARED_MIRROR


@pytest.fixture()
def fake_mirror(tmp_path, monkeypatch):
    """An empty mirror directory that a test fills with the files it needs."""
    monkeypatch.setenv("AFP_DATA_MIRROR", str(tmp_path))
    return tmp_path


# what a section notebook calls with a model (a Variant): recorded, never run (no model loads, nothing trains)
VARIANT_CALLS = ("evaluate", "probe", "dev_probe", "perplexity", "restored_perplexity", "output_language",
                 "stacked_representations",
                 "representations", "train_log", "step0", "load", "run_dir", "model_path")
# pure helpers whose inputs are recorded mocks, or that write files: mocks too
MOCKED = ("write_json", "save_frame", "findings_table", "describe_findings", "restored_table", "describe_restored",
          "five_task_scores", "headline")


# what analysing empty recorded results (evaluate returns [], other calls MagicMocks) raises: an empty frame's
# missing column, "no records", a mock where a number or frame was expected
RESULT_ERRORS = (LookupError, ValueError, TypeError, AttributeError, ZeroDivisionError)


def _on_recorded_results(error: Exception, unbound: set[str]) -> bool:
    """Whether a cell's error comes from the recorded results rather than from the cell's code: a
    NameError only for a name an earlier such cell did not get to bind, never a SyntaxError or ImportError."""
    if isinstance(error, NameError):
        return error.name in unbound
    return isinstance(error, RESULT_ERRORS) and not isinstance(error, ImportError)


def _bound_names(src: str) -> set[str]:
    """The names a cell's code binds at its top level (assignments, loops, defs, imports)."""
    import ast
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.fixture()
def run_notebook(monkeypatch, tmp_path):
    """run_notebook(section, profile) executes the section notebook's own code cells with every model call
    (`VARIANT_CALLS`) recorded instead of run, and returns (evaluate calls as (variant, overrides,
    translation), every Variant the notebook asked any call for). Plots, tables and files are mocks. A cell
    that calls the model functions must run to its end; any other cell may stop only on the recorded results
    (`_on_recorded_results`): a syntax error, a failed import or an undefined name in it fails the test, naming
    the notebook and the cell."""
    import json
    import logging
    import re
    from unittest import mock

    import afp_lib.paths
    import afp_lib.world
    from afp_lib import experiment as ex
    from afp_lib.sections import NOTEBOOKS

    def run(name: str, profile: str):
        evaluate_calls, used = [], []

        def recorder(fn):
            def call(*args, **kw):
                used.extend(a for a in (*args, *kw.values()) if isinstance(a, ex.Variant))
                if fn == "evaluate":
                    v, overrides = args[0], kw.get("overrides", args[2] if len(args) > 2 else None)
                    evaluate_calls.append((v, overrides, kw.get("translation", args[3] if len(args) > 3 else True)))
                    return []
                if fn == "stacked_representations":
                    return mock.MagicMock(name=fn), []   # (vectors, languages)
                return mock.MagicMock(name=fn)
            return call

        monkeypatch.setattr(ex, "EVALUATE_MISSING", None)   # the setup call sets it
        for fn in VARIANT_CALLS:
            monkeypatch.setattr(ex, fn, recorder(fn))
        for fn in MOCKED:
            monkeypatch.setattr(ex, fn, mock.MagicMock(name=fn))
        monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)
        monkeypatch.setattr(afp_lib.world, "ensure_world", mock.MagicMock())
        monkeypatch.setattr(afp_lib.paths, "results_dir", lambda s="": tmp_path / "results" / s)
        monkeypatch.setattr(afp_lib.paths, "figures_dir", lambda s="": tmp_path / "figures" / s)
        nb = json.loads((ROOT / "notebooks" / NOTEBOOKS[name]).read_text())
        ns = {"profile": profile}
        mocks = {k: mock.MagicMock(name=k) for k in ("pd", "tables", "plots", "display", "Markdown")}
        mocks["plots"].neighbour_mix.return_value = {}
        must_finish = re.compile(r"\bex\.(%s)\(" % "|".join(VARIANT_CALLS))
        unbound = set()   # names that a cell stopped by the recorded results did not get to bind
        for i, cell in enumerate(nb["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] != "code":
                continue
            try:
                exec(compile(src, f"{name}.ipynb", "exec"), ns)
            except Exception as e:
                if must_finish.search(src) or not _on_recorded_results(e, unbound):
                    raise AssertionError(f"{NOTEBOOKS[name]} cell {i} raised {type(e).__name__}: {e}\n{src}") from e
                unbound |= _bound_names(src) - ns.keys()
            ns["profile"] = profile   # the parameters cell's default is smoke; papermill would inject this
            ns.update(mocks)   # after the setup cell's imports
        return evaluate_calls, used

    return run

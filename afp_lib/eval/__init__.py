"""Evaluation: in-context learning on XNLI, PAWS-X, XCOPA, XStoryCloze, XWinograd and few-shot FLORES
translation, with the AFP paper's Appendix C templates (tasks declared in `tasks/*.yaml`).

The names below are imported on first use (PEP 562), so that `python -m afp_lib evaluate --help` parses its
arguments without importing torch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import EvalConfig

_EXPORTS = {
    "config": ("EvalConfig", "TranslationConfig", "load_eval_config"),
    "icl": ("METRICS", "evaluate"),
    "runner": ("read_records", "summarize"),
    "tasks": ("TASKS", "load_task_data"),
    "translation": ("translate_eval",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_WHERE, "run_suite"])


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def run_suite(model, tokenizer, cfg: EvalConfig, model_name: str, out_file, progress: bool = True) -> list[dict]:
    """Everything `cfg` asks for: ICL records, then translation records when `cfg.translation.langs` is set."""
    import torch

    from .icl import evaluate
    from .translation import translate_eval
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recs = evaluate(model, tokenizer, model_name=model_name, out_file=out_file, progress=progress, **cfg.icl_kwargs())
    t = cfg.translation
    if t.langs:
        recs += translate_eval(model, tokenizer, t.pairs, t.shots, t.seeds, t.max_items, model_name, out_file,
                               t.max_new_tokens, t.batch_size, cfg.bf16, progress, t.batch_tokens)
    return recs

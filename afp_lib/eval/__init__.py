"""Evaluation: in-context learning on XNLI, PAWS-X, XCOPA, XStoryCloze, XWinograd and few-shot FLORES
translation, with the AFP paper's Appendix C templates (tasks declared in `tasks/*.yaml`).

The names below are imported on first use (PEP 562), so that `python -m afp_lib evaluate --help` parses its
arguments without importing torch."""
from __future__ import annotations

from ..config import lazy_exports
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
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted([*__all__, "run_suite"])


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

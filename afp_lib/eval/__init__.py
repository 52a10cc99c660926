"""Evaluation: in-context learning on XNLI, PAWS-X, XCOPA, XStoryCloze, XWinograd and few-shot FLORES
translation, with the AFP paper's Appendix C templates (tasks declared in `tasks/*.yaml`)."""
import torch

from .config import EvalConfig, TranslationConfig, load_eval_config  # noqa: F401
from .icl import METRICS, evaluate  # noqa: F401
from .runner import read_records, summarize  # noqa: F401
from .tasks import TASKS, load_task_data  # noqa: F401
from .translation import translate_eval  # noqa: F401


def run_suite(model, tokenizer, cfg: EvalConfig, model_name: str, out_file, progress: bool = True) -> list[dict]:
    """Everything `cfg` asks for: ICL records, then translation records when `cfg.translation.langs` is set."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recs = evaluate(model, tokenizer, model_name=model_name, out_file=out_file, progress=progress, **cfg.icl_kwargs())
    t = cfg.translation
    if t.langs:
        recs += translate_eval(model, tokenizer, t.pairs, t.shots, t.seeds, t.max_items, model_name, out_file,
                               t.max_new_tokens, t.batch_size, cfg.bf16, progress, t.batch_tokens)
    return recs

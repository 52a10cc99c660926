"""Alignment training (AFP = MCL + alpha * CIT, and the paper's baselines) for any HF causal LM.

    cfg = load_train_config(profile="mini", overrides=["objective=afp"])
    res = train(cfg, model, tokenizer, out_dir)          # or: run = get_or_train(cfg, base_model)

The names below are imported on first use (PEP 562), so that `python -m afp_lib train --help` parses its
arguments without importing torch."""
from ..config import lazy_exports

_EXPORTS = {
    "config": ("CITConfig", "DataConfig", "MCLConfig", "OBJECTIVES", "OptimConfig", "TrainConfig", "load_train_config"),
    "data": ("TrainData", "build_train_data"),
    "loop": ("TrainResult", "TrainingDiverged", "evaluate_alignment", "train"),
    "runs": ("get_or_train", "is_finished", "run_dir"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)

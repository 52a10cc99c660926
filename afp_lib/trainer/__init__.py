"""Alignment training (AFP = MCL + alpha * CIT, and the paper's baselines) for any HF causal LM.

    cfg = load_train_config(profile="mini", overrides=["objective=afp"])
    res = train(cfg, model, tokenizer, out_dir)          # or: run = get_or_train(cfg, base_model)
"""
from .config import CITConfig, DataConfig, MCLConfig, OBJECTIVES, OptimConfig, TrainConfig, load_train_config  # noqa: F401
from .data import TrainData, build_train_data  # noqa: F401
from .loop import TrainResult, TrainingDiverged, evaluate_alignment, train  # noqa: F401
from .runs import get_or_train, is_finished, run_dir  # noqa: F401

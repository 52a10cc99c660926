"""Train-or-load and evaluate-or-load: the few calls a section notebook makes, as `ex.<name>`.

A `Variant` (afp_lib.sections, where each section's models are declared) names one model: an architecture
of the profile's world and, unless it is the vanilla model, the `train` overrides that align it. Training
goes through the run cache (`afp_lib.trainer.get_or_train`) and evaluation through a per-cell records cache
that resumes, so notebooks that share a model share its training and its scores.

This module keeps those two caches; the rest a notebook calls lives with its job and is re-exported here:
the probes of a model (`analysis.probes`), the findings tables and headline metrics (`analysis.findings`),
the file writers (`analysis.render`) and the paper-name maps (`analysis.paper`, beside the paper's tables)."""
from __future__ import annotations

import logging
import time

from . import paths, world
from .analysis.findings import (ORDER, describe_findings, describe_restored, findings_table,  # noqa: F401
                                findings_views, five_task_scores, headline, restored_table)
from .analysis.notebook import configure
from .analysis.paper import ablation_match, paper_match, policy_match, semantic_match  # noqa: F401
from .analysis.probes import (SCRIPTS, dev_probe, greedy_answers, output_language, perplexity, probe,  # noqa: F401
                              representations, restored_perplexity, script_share, stacked_representations, step0)
from .analysis.render import save_frame, start_figure_index, write_json  # noqa: F401
from .analysis.variants import (_load_path, load, model_path, model_ref, run_dir, train_config,  # noqa: F401
                                train_log)
from .paths import NOTEBOOKS, runs_dir
from .sections import (Setup, Variant, section, section_langs, section_runs, section_variants,  # noqa: F401
                       trainable_languages, variants)

logger = logging.getLogger(__name__)


def eval_cells(v: Variant, profile: str, overrides: dict | None = None, translation: bool = True) -> list:
    """The evaluation cells (`afp_lib.eval.runner.Cell`) that `evaluate(v, profile, overrides, translation)`
    returns the records of; the paper plan's grid is made of these."""
    from .eval import load_eval_config
    from .eval.runner import config_cells
    return config_cells(load_eval_config(profile, overrides=overrides), model_ref(v, profile), translation)


# None: the profile decides (smoke/mini evaluate missing cells in place, paper only reads the cache);
# a notebook's `evaluate_missing` parameter sets it.
EVALUATE_MISSING: bool | None = None
FILL_COMMAND = ("python -m afp_lib paper-plan --out results/paper_plan.json && "
                "torchrun --nproc_per_node 8 -m afp_lib evaluate --plan results/paper_plan.json")


def setup(name: str, profile: str, evaluate_missing: bool | None = None) -> Setup:
    """What every section notebook does first: logging, the evaluation policy, the profile's world (built if
    missing, except for `paper`, whose models come from the hub), its params block, its models and its
    output folders."""
    global EVALUATE_MISSING
    configure()   # logging without absolute paths or cache chatter, no progress bars, figures inline
    EVALUATE_MISSING = evaluate_missing
    if profile != "paper":
        world.ensure_world(profile)
    out, figs = paths.results_dir(f"{profile}/{name}"), paths.figures_dir(f"{profile}/{name}")
    out.mkdir(parents=True, exist_ok=True)
    start_figure_index(figs, f"Figures of notebooks/{NOTEBOOKS[name]}, profile {profile}")
    return Setup(section(name, profile), section_runs(name, profile), out, figs)


class MissingEvaluation(RuntimeError):
    """Cells a read-only (paper) notebook needs that are not in the evaluation cache yet."""


def evaluate(v: Variant, profile: str, overrides: dict | None = None, translation: bool = True,
             evaluate_missing: bool | None = None) -> list[dict]:
    """ICL (and translation) records of `v` under the profile's `eval` section plus `overrides`, one cache
    file per cell under runs/eval/ (`afp_lib.eval.runner.cell_file`), so every section, the sharded
    `evaluate --plan` run and a resumed run share each score. Cells not in the cache are evaluated here
    (training the model first if needed) unless the profile is `paper` and `evaluate_missing` (or
    `EVALUATE_MISSING`) is not True: then `MissingEvaluation` names the command that fills them."""
    from .eval import evaluate as icl_evaluate
    from .eval import load_eval_config
    from .eval.runner import CellStore, config_cells, icl_scoring, read_cell, translation_scoring
    from .eval.translation import translate_eval
    cfg = load_eval_config(profile, overrides=overrides)
    ref = model_ref(v, profile)
    cells = config_cells(cfg, ref, translation)
    missing = [c for c in cells if read_cell(c) is None]
    if missing:
        allowed = next((x for x in (evaluate_missing, EVALUATE_MISSING) if x is not None), profile != "paper")
        if not allowed:
            shown = ", ".join(f"{c.task}/{c.language} {c.shots}-shot seed {c.seed}" for c in missing[:4])
            raise MissingEvaluation(
                f"{v.name(profile)} ({ref}): {len(missing)} of its {len(cells)} evaluation cells are not in "
                f"{runs_dir() / 'eval'} ({shown}{', ...' if len(missing) > 4 else ''}). Fill the whole grid with\n"
                f"  {FILL_COMMAND}\nor run the notebook with evaluate_missing=True to evaluate them here.")
        model, tokenizer = load(v, profile)
        if cfg.threads:   # pinned in the CPU profiles, as run_suite does: a near-tie's argmax stays put
            import torch
            torch.set_num_threads(cfg.threads)
        t0 = time.time()
        if any(c.task != "flores" for c in missing):
            icl_evaluate(model, tokenizer, model_name=ref, out_file=CellStore(ref, icl_scoring(cfg)), progress=False,
                         **cfg.icl_kwargs())
        t = cfg.translation
        if translation and t.langs and any(c.task == "flores" for c in missing):
            translate_eval(model, tokenizer, t.pairs, t.shots, t.seeds, t.max_items, ref,
                           CellStore(ref, translation_scoring(cfg)), t.max_new_tokens, t.batch_size, cfg.bf16,
                           progress=False, batch_tokens=t.batch_tokens)
        logger.info("%s: %d cells evaluated in %.0fs", v.name(profile), len(missing), time.time() - t0)
    records = [(c, read_cell(c)) for c in cells]
    if any(recs is None for _, recs in records):
        raise RuntimeError(f"{v.name(profile)}: cells still missing after evaluation: "
                           f"{[c.key() for c, recs in records if recs is None][:4]}")
    records = [r for _, recs in records for r in recs]
    return [{**r, "model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
             "train_seed": v.seed, **v.meta} for r in records]

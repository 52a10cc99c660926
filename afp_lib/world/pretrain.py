"""Pretrain a vanilla causal LM on the world corpus: a plain, resumable loop (nanoGPT-style).

The language bias is made on purpose, as XGLM's and BLOOM's corpora make it: every training row is a
block of `block_size` tokens from one language, the language drawn with probability ∝ its tier weight
(English most, Chinese/Turkish some, Thai/Swahili little). The whole schedule of (language, block) is
drawn up front from the seed, so a resumed run sees exactly the batches an uninterrupted one would.

Only the data is the world's own: the optimizer, learning-rate schedule, precision and checkpoints are the
alignment trainer's (`trainer.optim`, `devices.resolve_precision`, `trainer.checkpoint`), so both loops
warm up, decay, clip, resume and pick bf16 by one set of rules."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..atomic import building_dir, commit_dir, fresh_dir, write_text
from ..config import semantic as config_semantic
from ..devices import autocast, resolve_precision
from ..models import build_model, n_params
from ..trainer import checkpoint as ckpt
from ..trainer.config import OptimConfig
from ..trainer.optim import decay_groups, make_optimizer, make_scheduler
from .config import PretrainConfig, WorldConfig
from .corpus import read_corpus

logger = logging.getLogger(__name__)


# --- data --------------------------------------------------------------------------------------------------

def token_blocks(tokenizer: PreTrainedTokenizerBase, lines: list[str], block_size: int) -> np.ndarray:
    """(N, block_size) int64: lines as `<s> text </s>`, concatenated and cut; the remainder is dropped."""
    ids = tokenizer(lines, verbose=False)["input_ids"]  # BOS is prepended by the tokenizer's post-processor
    stream = np.fromiter((t for seq in ids for t in (*seq, tokenizer.eos_token_id)), dtype=np.int64)
    n = len(stream) // block_size
    if n == 0:
        raise ValueError(f"{len(stream)} tokens cannot fill one block of {block_size}; give this language more text")
    return stream[: n * block_size].reshape(n, block_size)


def schedule(n_blocks: dict[str, int], weights: dict[str, float], steps: int, batch_size: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, batch_size) language index and block index of every training row. Languages are drawn
    ∝ weight; each language walks through a fresh permutation of its blocks per epoch."""
    rng = np.random.default_rng(seed)
    langs = list(n_blocks)
    p = np.array([weights[l] for l in langs], dtype=np.float64)
    lang_idx = rng.choice(len(langs), size=(steps, batch_size), p=p / p.sum())
    block_idx = np.empty_like(lang_idx)
    for i, lang in enumerate(langs):
        where = lang_idx == i
        need = int(where.sum())
        epochs = -(-need // n_blocks[lang]) if need else 0
        order = np.concatenate([rng.permutation(n_blocks[lang]) for _ in range(epochs)] or [np.empty(0, int)])
        block_idx[where] = order[:need]
    return lang_idx, block_idx


def data_fingerprint(corpus_dir: Path, tokenizer_dir: Path, langs: list[str]) -> str:
    """sha256 of the training text and the tokenizer: a checkpoint only resumes on the data it started on."""
    h = hashlib.sha256((Path(tokenizer_dir) / "tokenizer.json").read_bytes())
    for lang in langs:
        h.update((Path(corpus_dir) / "train" / f"{lang}.txt").read_bytes())
    return h.hexdigest()[:16]


# --- optimisation: the trainer's AdamW and schedule -------------------------------------------------------

def optim_config(pc: PretrainConfig) -> OptimConfig:
    """The world's optimisation in the trainer's terms: AdamW with GPT-style betas (0.9, 0.95), a cosine
    decay to lr * min_lr_ratio; warm-up is counted in steps (`pc.warmup_steps`), not as a ratio."""
    return OptimConfig(lr=pc.lr, betas=[0.9, 0.95], weight_decay=pc.weight_decay, schedule="cosine",
                       min_lr_ratio=pc.min_lr_ratio, grad_clip=pc.grad_clip)


# settings that change how a run is carried out, not what it computes. Not `threads`: the thread count
# changes the order of float sums and so the final weights, which is why the smoke and mini profiles pin it
# (and `precision: fp32`) in params.yaml
OPERATIONAL = ("log_every", "checkpoint_every")


def semantic(pc: PretrainConfig) -> dict:
    """The pretraining settings that determine the weights (a resume or a cache hit must match these)."""
    return config_semantic(pc, OPERATIONAL)


# --- the run -----------------------------------------------------------------------------------------------

def pretrain(cfg: WorldConfig, arch: str, corpus_dir: Path, tokenizer_dir: Path, out_dir: Path,
             ckpt_dir: Path) -> dict:
    """Train `arch` from scratch for the fixed token budget and `save_pretrained` it (with the tokenizer)
    into `out_dir`. Resumes from the newest complete checkpoint in `ckpt_dir/checkpoints` (the trainer's
    layout) when it was written by the same configuration; the checkpoints go once the model is saved."""
    pc = cfg.pretrain
    if pc.threads:
        torch.set_num_threads(pc.threads)
    device = torch.device("cpu")  # the world's models are small; GPU profiles align hub checkpoints instead
    precision = resolve_precision(pc.precision, device, "world.pretrain.precision")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = read_corpus(corpus_dir, "train", cfg.languages)
    blocks = {lang: torch.from_numpy(token_blocks(tokenizer, lines, pc.block_size)) for lang, lines in texts.items()}
    langs = list(blocks)
    weights = {lang: cfg.tier(lang).weight for lang in langs}
    lang_idx, block_idx = schedule({l: len(b) for l, b in blocks.items()}, weights, pc.steps, pc.batch_size, cfg.seed)
    rows_per_lang = {l: int((lang_idx == i).sum()) for i, l in enumerate(langs)}
    run_config = {"arch": arch, "seed": cfg.seed, "languages": cfg.languages, "weights": weights,
                  "shape": asdict(cfg.shape), "pretrain": semantic(pc), "tokenizer_size": len(tokenizer),
                  "data": data_fingerprint(corpus_dir, tokenizer_dir, langs)}
    run_config = json.loads(json.dumps(run_config))  # as a checkpoint's state.json gives it back

    model = build_model(arch, cfg.shape, tokenizer, seed=cfg.seed)
    oc = optim_config(pc)
    optimizer = make_optimizer(decay_groups(model, pc.weight_decay), oc)
    scheduler = make_scheduler(optimizer, oc, pc.warmup_steps, pc.steps)
    start, history, elapsed = _resume(ckpt_dir, run_config, model, optimizer, scheduler)

    tokens_per_step = pc.batch_size * pc.block_size
    logger.info("***** pretraining %s: %.2fM parameters, %d steps x %d tokens = %.2fM tokens, %s (%s), "
                "%d threads *****", arch, n_params(model) / 1e6, pc.steps, tokens_per_step,
                pc.steps * tokens_per_step / 1e6, precision, pc.precision, torch.get_num_threads())
    logger.info("rows per language: %s; blocks available: %s", rows_per_lang, {l: len(b) for l, b in blocks.items()})
    model.train()
    t0, window_t, window_loss = time.perf_counter(), time.perf_counter(), []
    for step in range(start, pc.steps):
        lr = scheduler.get_last_lr()[0]
        x = torch.stack([blocks[langs[li]][bi] for li, bi in zip(lang_idx[step], block_idx[step])])  # (B, T)
        with autocast(precision, device):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), oc.grad_clip or float("inf"))  # 0 = off
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window_loss.append(loss.item())  # .item() syncs; on CPU it costs nothing extra
        done = step + 1
        if done % pc.log_every == 0 or done == pc.steps:
            dt = time.perf_counter() - window_t
            history.append({"step": done, "loss": float(np.mean(window_loss)), "lr": lr,
                            "tokens_per_s": len(window_loss) * tokens_per_step / dt})
            logger.info("%s step %d/%d loss %.3f lr %.2e %.0f tok/s", arch, done, pc.steps, history[-1]["loss"],
                        history[-1]["lr"], history[-1]["tokens_per_s"])
            window_t, window_loss = time.perf_counter(), []
        if done % pc.checkpoint_every == 0 and done < pc.steps:
            _save_checkpoint(ckpt_dir, done, model, tokenizer, optimizer, scheduler,
                             {"history": history, "elapsed": elapsed + time.perf_counter() - t0,
                              "run_config": run_config})
    elapsed += time.perf_counter() - t0

    report = {"run_config": run_config, "n_params": n_params(model), "steps": pc.steps,
              "tokens": pc.steps * tokens_per_step, "rows_per_language": rows_per_lang,
              "blocks_per_language": {l: len(b) for l, b in blocks.items()},
              "train_seconds": round(elapsed, 1), "tokens_per_s": round((pc.steps - start) * tokens_per_step /
                                                                        max(time.perf_counter() - t0, 1e-9), 1),
              "precision": precision, "threads": torch.get_num_threads(), "resumed_from": start, "history": history}
    model.eval()
    with building_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_text(tmp / "pretrain.json", json.dumps(report, indent=1))
    shutil.rmtree(ckpt_dir / "checkpoints", ignore_errors=True)  # they only served resuming
    logger.info("%s: %.0f s, final loss %.3f -> %s", arch, elapsed, history[-1]["loss"] if history else float("nan"),
                out_dir)
    return report


def _resume(ckpt_dir: Path, run_config: dict, model, optimizer, scheduler) -> tuple[int, list, float]:
    """(step, history, elapsed seconds) of the newest complete checkpoint of this configuration, its weights
    and optimizer state loaded; (0, [], 0.0) when there is none. Checkpoints of another configuration (other
    data, budget or shape) cannot be continued and are removed."""
    last = ckpt.latest_checkpoint(ckpt_dir)
    if last is None:
        return 0, [], 0.0
    state = json.loads((last / ckpt.STATE).read_text(encoding="utf-8"))
    if state.get("run_config") != run_config:
        logger.warning("removing %s: it was written by another configuration", last.parent)
        shutil.rmtree(last.parent, ignore_errors=True)
        return 0, [], 0.0
    ckpt.load_weights(model, last)
    ckpt.load_optimizer(last, optimizer, scheduler)
    logger.info("resuming %s from step %d (%s)", run_config["arch"], state["step"], last)
    return state["step"], state["history"], state["elapsed"]


def _save_checkpoint(ckpt_dir: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict) -> Path:
    """ckpt_dir/checkpoints/step-N, written as the trainer writes its checkpoints (atomic, with a manifest);
    only the newest is kept."""
    final = Path(ckpt_dir) / "checkpoints" / f"step-{step:07d}"
    tmp = fresh_dir(final)
    ckpt.save_model_folder(tmp, model, tokenizer, state["run_config"])
    ckpt.save_optimizer(tmp, optimizer, scheduler)
    ckpt.write_json(tmp / ckpt.STATE, {"step": step, **state})
    ckpt.write_manifest(tmp)
    commit_dir(tmp, final)
    ckpt.prune(ckpt_dir, keep=1)
    return final

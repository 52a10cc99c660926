"""Pretrain a vanilla causal LM on the world corpus: a plain, resumable loop (nanoGPT-style).

The language bias is made on purpose, as XGLM's and BLOOM's corpora make it: every training row is a
block of `block_size` tokens from one language, the language drawn with probability ∝ its tier weight
(English most, Chinese/Turkish some, Thai/Swahili little). The whole schedule of (language, block) is
drawn up front from the seed, so a resumed run sees exactly the batches an uninterrupted one would."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..models import build_model, n_params
from .bpe import _replace_dir
from .config import PretrainConfig, WorldConfig
from .corpus import read_corpus, write_text

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


# --- optimisation ------------------------------------------------------------------------------------------

def lr_at(step: int, cfg: PretrainConfig) -> float:
    # 1) linear warm-up, 2) cosine decay to lr * min_lr_ratio at the last step
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings' 1-D parameters."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def resolve_autocast(setting: str) -> str:
    """'auto' -> 'bf16' where bf16 matmuls are native (CUDA, AVX512-BF16 or AMX CPUs), else 'none'."""
    if setting not in ("auto", "bf16", "none"):
        raise ValueError(f"pretrain.autocast={setting!r} is not supported; use 'auto', 'bf16' or 'none'")
    if setting != "auto":
        return setting
    fast = torch.cuda.is_available() or torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if fast else "none"


def autocast(setting: str):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16, enabled=setting == "bf16")


# settings that change how a run is carried out, not what it computes. Not `threads`: the thread count
# changes the order of float sums and so the final weights, which is why the smoke and mini profiles pin it (and `autocast: none`) in params.yaml
OPERATIONAL = ("log_every", "checkpoint_every")


def semantic(pc: PretrainConfig) -> dict:
    """The pretraining settings that determine the weights (a resume or a cache hit must match these)."""
    return {k: v for k, v in asdict(pc).items() if k not in OPERATIONAL}


# --- the run -----------------------------------------------------------------------------------------------

def pretrain(cfg: WorldConfig, arch: str, corpus_dir: Path, tokenizer_dir: Path, out_dir: Path,
             ckpt_dir: Path) -> dict:
    """Train `arch` from scratch for the fixed token budget and `save_pretrained` it (with the tokenizer)
    into `out_dir`. Resumes from `ckpt_dir/state.pt` when it was written by the same configuration."""
    pc = cfg.pretrain
    if pc.threads:
        torch.set_num_threads(pc.threads)
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

    model = build_model(arch, cfg.shape, tokenizer, seed=cfg.seed)
    optimizer = make_optimizer(model, pc)
    state_path = ckpt_dir / "state.pt"
    start, history, elapsed = 0, [], 0.0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["run_config"] == run_config:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, history, elapsed = state["step"], state["history"], state["elapsed"]
            logger.info("resuming %s from step %d (%s)", arch, start, state_path)
        else:
            logger.warning("ignoring %s: it was written by another configuration", state_path)

    tokens_per_step = pc.batch_size * pc.block_size
    precision = resolve_autocast(pc.autocast)
    logger.info("***** pretraining %s: %.2fM parameters, %d steps x %d tokens = %.2fM tokens, autocast %s (%s), "
                "%d threads *****", arch, n_params(model) / 1e6, pc.steps, tokens_per_step,
                pc.steps * tokens_per_step / 1e6, precision, pc.autocast, torch.get_num_threads())
    logger.info("rows per language: %s; blocks available: %s", rows_per_lang, {l: len(b) for l, b in blocks.items()})
    model.train()
    t0, window_t, window_loss = time.perf_counter(), time.perf_counter(), []
    for step in range(start, pc.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, pc)
        x = torch.stack([blocks[langs[li]][bi] for li, bi in zip(lang_idx[step], block_idx[step])])  # (B, T)
        with autocast(precision):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), pc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window_loss.append(loss.item())  # .item() syncs; on CPU it costs nothing extra
        done = step + 1
        if done % pc.log_every == 0 or done == pc.steps:
            dt = time.perf_counter() - window_t
            history.append({"step": done, "loss": float(np.mean(window_loss)), "lr": lr_at(step, pc),
                            "tokens_per_s": len(window_loss) * tokens_per_step / dt})
            logger.info("%s step %d/%d loss %.3f lr %.2e %.0f tok/s", arch, done, pc.steps, history[-1]["loss"],
                        history[-1]["lr"], history[-1]["tokens_per_s"])
            window_t, window_loss = time.perf_counter(), []
        if done % pc.checkpoint_every == 0 and done < pc.steps:
            _save_state(state_path, model, optimizer, done, history, elapsed + time.perf_counter() - t0, run_config)
    elapsed += time.perf_counter() - t0

    report = {"run_config": run_config, "n_params": n_params(model), "steps": pc.steps,
              "tokens": pc.steps * tokens_per_step, "rows_per_language": rows_per_lang,
              "blocks_per_language": {l: len(b) for l, b in blocks.items()},
              "train_seconds": round(elapsed, 1), "tokens_per_s": round((pc.steps - start) * tokens_per_step /
                                                                        max(time.perf_counter() - t0, 1e-9), 1),
              "precision": precision, "threads": torch.get_num_threads(), "resumed_from": start, "history": history}
    model.eval()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_text(tmp / "pretrain.json", json.dumps(report, indent=1))
    _replace_dir(tmp, out_dir)
    _save_state(state_path, model, optimizer, pc.steps, history, elapsed, run_config)
    logger.info("%s: %.0f s, final loss %.3f -> %s", arch, elapsed, history[-1]["loss"] if history else float("nan"),
                out_dir)
    return report


def _save_state(path: Path, model, optimizer, step: int, history: list, elapsed: float, run_config: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "history": history, "elapsed": elapsed, "run_config": run_config}, tmp)
    os.replace(tmp, path)

"""The one training loop: AFP (MCL + alpha * CIT) and every baseline, on torch or DeepSpeed.

    for each step:  maybe resume -> accumulate (MCL early exit | CIT | CLM) -> clip -> update
                    -> log loss parts -> maybe evaluate alignment on dev pairs -> maybe checkpoint

Data order is a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted run would, and its final weights are identical."""
from __future__ import annotations

from array import array
import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from .. import atomic
from ..config import bar_disable
from ..devices import autocast, resolve_device, resolve_precision
from ..hidden import check_layer, sentence_embeddings
from ..losses import cit_loss, mcl_loss
from ..metrics import alignment, retrieval_accuracy, uniformity
from ..models import set_gradient_checkpointing
from . import checkpoint as ckpt
from . import collate, distributed, tokenized
from .shared import share_plan, shared_batches, shared_forward
from .config import OBJECTIVE_LOSSES, TrainConfig, config_dict
from .data import TrainData, build_train_data
from .memory import resolve_checkpointing

logger = logging.getLogger(__name__)
LOG_NAME = "train_log.jsonl"


class TrainingDiverged(RuntimeError):
    """A NaN/inf loss or gradient: the run stops; the last good checkpoint stays on disk."""


@dataclass
class TrainResult:
    out_dir: Path
    final_dir: Path
    log_path: Path
    steps: int
    resumed_from: int | None = None
    last: dict = field(default_factory=dict)  # the last log record (loss parts, alignment metrics)


class Stream:
    """Endless sample order: epoch e is a seeded permutation of range(n); position i -> sample."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self._perms = n, seed, {}

    def take(self, start: int, count: int) -> list[int]:
        out = []
        for i in range(start, start + count):
            epoch, pos = divmod(i, self.n)
            if epoch not in self._perms:
                perm = array("q", range(self.n))  # 8 B per sample, not a list's ~36: 0.13 GB at 16.7M samples
                random.Random(f"{self.seed}-{epoch}").shuffle(perm)  # the same swaps as on a list: same order
                self._perms = {epoch: perm}
            out.append(self._perms[epoch][pos])
        return out


@dataclass
class Prepared:
    pairs: Sequence = field(default_factory=list)     # encoded (src ids, tgt ids)
    cit: Sequence = field(default_factory=list)       # (ids, labels)
    clm: Sequence = field(default_factory=list)       # (ids, labels)
    dev: Sequence = field(default_factory=list)
    share: list | None = None                     # per pair: side read from its CIT row (shared.share_plan)
    summary: str = ""                             # what the data is (TrainData.summary)
    examples: list = field(default_factory=list)  # the first pairs' text, for the log


def prepare(cfg: TrainConfig, tokenizer, data: TrainData | None = None) -> Prepared:
    """Token ids of the run's data (built from its config when `data` is None): as lists in every process
    (`train.tokenized: memory`), or memory-mapped Arrow files built once by rank 0 (`arrow`, trainer.tokenized);
    both give the same rows in the same order."""
    if cfg.tokenized == "arrow":
        return _prepare_arrow(cfg, tokenizer, data)
    data = build_train_data(cfg, data)
    p = Prepared(dev=collate.encode_pairs(tokenizer, data.dev_pairs, cfg.seq_len), summary=data.summary(),
                 examples=data.pairs[:2])
    if cfg.uses_mcl:
        p.pairs = collate.encode_pairs(tokenizer, data.pairs, cfg.seq_len)
    if cfg.uses_cit:
        p.cit = collate.encode_cit(tokenizer, data.cit, cfg.seq_len)
        p.cit = collate.pack(p.cit, cfg.seq_len) if cfg.cit.pack else p.cit
    if cfg.uses_mcl and cfg.uses_cit:
        p.share = share_plan(cfg, p.pairs, p.cit, data.cit)
        _log_share(p.share)
    if cfg.objective == "clm":
        p.clm = collate.clm_blocks(tokenizer, data.clm_texts, cfg.seq_len)
    return p


def _log_share(share: list | None) -> None:
    if share is not None:
        logger.info("MCL reads %d of %d pairs' context side from the CIT forward (one early-exit side each)",
                    sum(s >= 0 for s in share), len(share))


def _prepare_arrow(cfg: TrainConfig, tokenizer, data: TrainData | None) -> Prepared:
    rows, record = tokenized.prepare(cfg, tokenizer, data)
    p = Prepared(pairs=rows.get("pairs", []), cit=rows.get("cit", []), clm=rows.get("clm", []),
                 dev=rows.get("dev", []), summary=record.get("summary", ""), examples=record.get("examples", []))
    if cfg.uses_mcl and cfg.uses_cit and not cfg.cit.pack and len(p.pairs) == len(rows["cit_rows"]):
        p.share = share_plan(cfg, p.pairs, p.cit, tokenized.Sides(rows["cit_rows"]))
        _log_share(p.share)
    logger.info("tokenized data (memory-mapped Arrow): %s", p.summary)
    return p


def micro_batches(cfg: TrainConfig, prep: Prepared, pair_idx: list[int] | None, lm_idx: list[int] | None,
                  pad_id: int) -> tuple[dict | None, dict | None]:
    """(pairs, lm) batches of one micro-step. With a share plan the CIT rows are those of the step's own
    pairs (lm_idx is not used) and the pairs batch holds only the sides not read from the CIT forward."""
    if prep.share is not None and pair_idx is not None:
        return shared_batches(prep.pairs, prep.cit, prep.share, pair_idx, cfg.cit_batch_size, pad_id)
    lm_items = prep.cit if cfg.uses_cit else prep.clm
    pairs = collate.pair_batch(prep.pairs, pair_idx, pad_id) if pair_idx is not None else None
    lm = collate.lm_batch(lm_items, lm_idx, pad_id) if lm_idx is not None else None
    return pairs, lm


def mcl_part(model, cfg: TrainConfig, pairs: dict) -> torch.Tensor:
    """Eq. 2 on the pooled hidden states after block l of both sides of each pair. The pairs batch stacks
    the sources over the targets, (2B, T), so both sides go through one early-exit call (rows are independent)."""
    h = sentence_embeddings(model, pairs["input_ids"], pairs["attention_mask"], cfg.mcl.layer, cfg.mcl.pooling,
                            cfg.mcl.length_groups)  # (2B, H)
    h_src, h_tgt = h.chunk(2)  # (B, H) each
    return mcl_loss(h_src, h_tgt, cfg.mcl.temperature, cfg.mcl.symmetric, cfg.mcl.gather)


def lm_part(model, lm: dict) -> torch.Tensor:
    """Eq. 3: next-token loss on the labelled tokens (a CIT row's response, every token of a CLM row)."""
    return cit_loss(model, **lm, across_ranks=True)


def afp_step(model, cfg: TrainConfig, pairs: dict, lm: dict) -> dict[str, torch.Tensor]:
    """Eq. 4 as the paper writes it, the reference AFP step: L = L_MCL + alpha * L_CIT, with L_MCL over the
    step's translation pairs and L_CIT over its instruction rows (two independent batches)."""
    mcl = mcl_part(model, cfg, pairs)
    cit = lm_part(model, lm)
    return {"mcl": mcl, "cit": cit, "loss": mcl + cfg.alpha * cit}


def shared_afp_step(model, cfg: TrainConfig, pairs: dict, lm: dict) -> dict[str, torch.Tensor]:
    """An optimisation of `afp_step` (tested equal to it): when each CIT row starts with one side of its own
    pair (translation mode, see shared.py), that side's vector after block l is read from the CIT forward,
    so the early-exit call runs on the other sides only. Takes the batches of `shared.shared_batches`."""
    h_src, h_tgt, cit = shared_forward(model, cfg.mcl.layer, cfg.mcl.pooling, pairs, lm, cfg.mcl.length_groups,
                                       across_ranks=True)
    mcl = mcl_loss(h_src, h_tgt, cfg.mcl.temperature, cfg.mcl.symmetric, cfg.mcl.gather)
    return {"mcl": mcl, "cit": cit, "loss": mcl + cfg.alpha * cit}


def step_losses(model, cfg: TrainConfig, pairs: dict | None, lm: dict | None,
                shared: bool = False) -> dict[str, torch.Tensor]:
    """The loss parts of one micro-batch (config.OBJECTIVE_LOSSES) and `loss`, the objective to minimise.
    `shared`: the batches come from `shared.shared_batches` (the run has a share plan, `Prepared.share`)."""
    if cfg.objective == "afp":
        return (shared_afp_step if shared else afp_step)(model, cfg, pairs, lm)
    (part,) = OBJECTIVE_LOSSES[cfg.objective]
    loss = mcl_part(model, cfg, pairs) if part == "mcl" else lm_part(model, lm)
    return {part: loss, "loss": loss}


@torch.no_grad()
def evaluate_alignment(model, cfg: TrainConfig, dev: list, pad_id: int, device, batch_size: int = 64) -> dict:
    """Alignment/uniformity (Wang & Isola) and retrieval on the dev pairs at the MCL layer and pooling."""
    if len(dev) < 2:
        return {}
    was_training = model.training
    model.eval()
    zs = []
    for i in range(0, len(dev), batch_size):
        batch = collate.pair_batch(dev, list(range(i, min(i + batch_size, len(dev)))), pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        z = sentence_embeddings(model, batch["input_ids"], batch["attention_mask"], cfg.mcl.layer, cfg.mcl.pooling,
                                cfg.mcl.length_groups)  # float32 (hidden.pool)
        b = z.size(0) // 2
        zs.append((z[:b].cpu(), z[b:].cpu()))
    model.train(was_training)
    src, tgt = torch.cat([a for a, _ in zs]), torch.cat([b for _, b in zs])
    r = retrieval_accuracy(src, tgt)
    return {"align": alignment(src, tgt), "uniform": uniformity(torch.cat([src, tgt])),
            "retrieval": 0.5 * (r["x2y"] + r["y2x"])}


def micro_index(step: int, micro: int, grad_accum: int, rank: int, world: int) -> int:
    """The global number of a rank's micro-batch: consecutive ranks take consecutive slices of the sample
    stream, so the W ranks of a step see disjoint rows, together those of one W-times larger batch."""
    return (step * grad_accum + micro) * world + rank


def _device(cfg: TrainConfig) -> torch.device:
    return resolve_device(cfg.device)


def _make_backend(cfg, model, device):
    if cfg.backend == "deepspeed":
        from .ds_backend import DeepSpeedBackend
        return DeepSpeedBackend(cfg, model, device)
    from .backends import TorchBackend
    return TorchBackend(cfg, model, device)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records written after the checkpoint we resume from (they will be written again)."""
    if path.is_file():
        keep = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        atomic.write_text(path, "".join(line + "\n" for line in keep))


def _log_examples(tokenizer, prep: Prepared) -> None:
    for p in prep.examples:
        logger.info("pair %s-%s: %r | %r", p["src_lang"], p["tgt_lang"], p["src"][:120], p["tgt"][:120])
    for ids, labels in prep.cit[:2]:
        n_ctx = sum(1 for x in labels if x == -100)
        logger.info("CIT sample: context %r -> response %r", tokenizer.decode(ids[:n_ctx])[-160:],
                    tokenizer.decode(ids[n_ctx:])[:160])


def _check_resume(state: dict, cfg: TrainConfig, world: int, where: Path) -> None:
    """A checkpoint continues only the data order it was written with: the same world size and global batch."""
    was_world = state.get("world_size", 1)
    was_batch = state.get("global_batch", cfg.batch_size * cfg.grad_accum * was_world)
    now_batch = cfg.batch_size * cfg.grad_accum * world
    if (was_world, was_batch) != (world, now_batch):
        raise RuntimeError(f"cannot resume {where}: it was written by {was_world} rank(s) with a global batch of "
                           f"{was_batch}, this launch has {world} rank(s) and a global batch of {now_batch} "
                           f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x ranks). Relaunch with "
                           f"{was_world} processes, or delete {where.parent} to start the run afresh.")


def _rng_file(folder: Path, rank: int) -> Path:
    return folder / f"rng-rank{rank}.pt"


def _restore_rng(folder: Path, rank: int) -> None:
    path = _rng_file(folder, rank)
    if path.is_file():
        ckpt.set_rng_state(torch.load(path, weights_only=False))
        return
    old = folder / "trainer_state.pt"  # checkpoints written before the RNG state was saved per rank
    state = torch.load(old, weights_only=False) if old.is_file() else {}
    if "rng" in state:
        ckpt.set_rng_state(state["rng"])


def train(cfg: TrainConfig, model, tokenizer, out_dir, data: TrainData | None = None,
          callbacks: list[Callable[[int, dict], None]] = ()) -> TrainResult:
    """Train `model` in place by `cfg` into `out_dir`, resuming from its last checkpoint if there is one.
    Returns where the final `save_pretrained` folder and the JSON-lines log are.
    Under a multi-process launcher every rank calls this; rank 0 takes the decisions and writes the files."""
    out_dir = Path(out_dir)
    final_dir, log_path = out_dir / "final", out_dir / LOG_NAME
    device = _device(cfg)
    distributed.init_from_env(device, required=cfg.backend == "deepspeed", timeout_minutes=cfg.dist_timeout_minutes)
    rank, world = distributed.rank_world()
    main = rank == 0
    if distributed.broadcast((final_dir / ckpt.RESULT).is_file() if main else None):  # finished before: load it
        ckpt.load_weights(model, final_dir)
        result = json.loads((final_dir / ckpt.RESULT).read_text(encoding="utf-8"))
        logger.info("run %s already finished (%d steps); loaded its final weights", out_dir, result["steps"])
        return TrainResult(out_dir, final_dir, log_path, result["steps"], None, result.get("last", {}))
    if cfg.uses_mcl:
        check_layer(model, cfg.mcl.layer)
    if cfg.threads:  # the thread count changes float summation order, hence the final weights
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)  # per-rank dropout streams (rank 0: the one-process seed)
    prep = prepare(cfg, tokenizer, data)  # builds the data from cfg when None (under arrow: on rank 0 only)
    checkpointing = resolve_checkpointing(cfg, model, device, world)
    if cfg.gradient_checkpointing == "auto" and main:
        logger.info("gradient checkpointing: auto -> %s (afp_lib.trainer.memory)", "on" if checkpointing else "off")
    set_gradient_checkpointing(model, checkpointing)
    backend = _make_backend(cfg, model, device)
    model = backend.model
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    start, resumed = 0, None
    last = distributed.broadcast(ckpt.latest_checkpoint(out_dir) if main else None)
    if last is not None:
        _check_resume(json.loads((last / ckpt.STATE).read_text()), cfg, world, last)
        if backend.name == "torch":  # DeepSpeed's load_checkpoint restores the module itself
            ckpt.load_weights(model, last)
        backend.load(last)
        _restore_rng(last, rank)
        start = resumed = json.loads((last / ckpt.STATE).read_text())["step"]
        logger.info("resuming %s from step %d", out_dir, start)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out_dir / "train_config.json", config_dict(cfg))
        _truncate_log(log_path, start)
    lm_items = prep.cit if cfg.uses_cit else prep.clm
    pair_stream = Stream(len(prep.pairs), cfg.seed) if prep.pairs else None
    lm_stream = Stream(len(lm_items), cfg.seed + 1) if lm_items else None
    lm_bs = cfg.cit_batch_size if cfg.uses_cit else cfg.batch_size
    precision = resolve_precision(cfg.precision, device, "train.precision")
    logger.info("***** %s training: %s, %d steps x %d pairs x %d accum x %d ranks, seq %d, %s/%s, %s, data: %s *****",
                cfg.objective.upper(), type(model).__name__, cfg.steps, cfg.batch_size, cfg.grad_accum, world,
                cfg.seq_len, cfg.backend, precision, getattr(backend, "optimizer_name", "AdamW"), prep.summary)
    if main:
        _log_examples(tokenizer, prep)

    model.train()
    sums, n_sum, t0, tokens, record = {}, 0, time.perf_counter(), 0, {}
    bar = tqdm(total=cfg.steps, initial=start, desc=f"{cfg.objective.upper()} train", disable=bar_disable(not main))
    for step in range(start, cfg.steps):
        for micro in range(cfg.grad_accum):
            m = micro_index(step, micro, cfg.grad_accum, rank, world)
            pair_idx = pair_stream.take(m * cfg.batch_size, cfg.batch_size) if pair_stream else None
            lm_idx = lm_stream.take(m * lm_bs, lm_bs) if lm_stream and prep.share is None else None
            pairs, lm = micro_batches(cfg, prep, pair_idx, lm_idx, pad_id)
            pairs = {k: v.to(device) for k, v in pairs.items()} if pairs else None
            lm = {k: v.to(device) for k, v in lm.items()} if lm else None
            with autocast(precision, device):
                parts = step_losses(model, cfg, pairs, lm, shared=prep.share is not None)
            # a sync point, needed for the NaN check anyway; the mean over ranks, so all ranks stop together
            values = distributed.mean_over_ranks({k: v.item() for k, v in parts.items()})
            if not all(math.isfinite(v) for v in values.values()):
                raise TrainingDiverged(f"non-finite loss at step {step + 1}: {values}; stopped before the update. "
                                       f"Last good checkpoint: {ckpt.latest_checkpoint(out_dir) or 'none'}. "
                                       "Lower optim.lr or check the data.")
            backend.backward(parts["loss"])
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sum += 1
            tokens += sum(collate.n_tokens(b) for b in (pairs, lm) if b is not None)
        lr = backend.lr()
        grad_norm = backend.step()
        if not math.isfinite(grad_norm):
            raise TrainingDiverged(f"non-finite gradient norm at step {step + 1}; stopped before the update. "
                                   f"Last good checkpoint: {ckpt.latest_checkpoint(out_dir) or 'none'}.")
        done = step + 1
        bar.update(1)
        is_last = done == cfg.steps
        if done % cfg.log_every == 0 or is_last or (cfg.eval_every and done % cfg.eval_every == 0):
            all_tokens = distributed.sum_over_ranks(tokens)  # throughput of the whole job
            record = {"step": done, "lr": lr, **{k: v / n_sum for k, v in sums.items()}, "grad_norm": grad_norm,
                      "tokens_per_s": all_tokens / (time.perf_counter() - t0)}
            if (cfg.eval_every and done % cfg.eval_every == 0) or is_last:
                record.update(evaluate_alignment(model, cfg, prep.dev, pad_id, device))
            bar.set_postfix({k: f"{record[k]:.3f}" for k in ("loss", "mcl", "cit", "clm", "retrieval") if k in record})
            if main:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            sums, n_sum, t0, tokens = {}, 0, time.perf_counter(), 0
        if cfg.save_every and done % cfg.save_every == 0 and not is_last:
            save_checkpoint(cfg, out_dir, done, model, tokenizer, backend)
        for cb in callbacks:
            cb(done, record)
    bar.close()
    result = {"steps": cfg.steps, "last": record}
    if world > 1 and backend.replicated:  # data parallelism is only correct if every replica ends alike
        digests = distributed.gather_objects(distributed.weights_digest(model))
        if len(set(digests)) != 1:
            raise RuntimeError(f"the {world} ranks ended with different weights (digests {digests}); not saved")
        result.update(ranks=world, weights_digests=digests)
        logger.info("weights identical on all %d ranks (digest %s)", world, digests[0])
    state = backend.full_state_dict()  # collective under ZeRO-3, None otherwise

    def write_final():
        tmp = atomic.fresh_dir(final_dir)
        ckpt.save_model_folder(tmp, model, tokenizer, config_dict(cfg), state_dict=state)
        ckpt.write_json(tmp / ckpt.RESULT, result)
        atomic.commit_dir(tmp, final_dir)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # they only served resuming
    distributed.on_main(write_final, out_dir, "writing final/", cfg.save_wait_minutes * 60)  # no collective held
    return TrainResult(out_dir, final_dir, log_path, cfg.steps, resumed, record)


def save_checkpoint(cfg, out_dir: Path, step: int, model, tokenizer, backend) -> Path:
    """Write checkpoints/step-N atomically: weights + tokenizer + config + optimizer/scheduler + each rank's
    RNG state; state.json (written last) records the world size and global batch the data order assumes."""
    final = out_dir / "checkpoints" / f"step-{step:07d}"
    tmp = final.with_name(f".tmp-{final.name}")
    # rank 0's slow parts (removing a stale tmp, writing weights and optimizer state, deleting old checkpoints)
    # run inside `on_main`: the other ranks poll a flag file meanwhile instead of holding a collective
    wait_s = cfg.save_wait_minutes * 60
    distributed.on_main(lambda: atomic.fresh_dir(final), out_dir, f"preparing {tmp.name}", wait_s)
    rank, world = distributed.rank_world()
    torch.save(ckpt.rng_state(), _rng_file(tmp, rank))
    collective_save = backend.name != "torch"  # DeepSpeed: every rank writes its optimizer partition
    if collective_save:
        backend.save(tmp)
    state = backend.full_state_dict()  # collective under ZeRO-3, None otherwise
    distributed.barrier()  # every rank's files are in tmp (nothing slow runs before it on one rank alone)

    def write():
        if not collective_save:
            backend.save(tmp)  # torch: rank 0 writes the optimizer and scheduler state
        ckpt.save_model_folder(tmp, model, tokenizer, config_dict(cfg), state_dict=state)
        ckpt.write_json(tmp / ckpt.STATE, {"step": step, "world_size": world,
                                           "global_batch": cfg.batch_size * cfg.grad_accum * world})
        ckpt.write_manifest(tmp)  # last: its sizes tell a complete checkpoint from a damaged one
        atomic.commit_dir(tmp, final)
        ckpt.prune(out_dir, cfg.keep_checkpoints)
    distributed.on_main(write, out_dir, f"writing {final.name}", wait_s)
    return final

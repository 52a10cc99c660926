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
    if not {"step", "world_size", "global_batch"} <= state.keys():
        raise RuntimeError(f"cannot resume {where}: its {ckpt.STATE} lacks step/world_size/global_batch (written by "
                           f"an older afp); delete {where.parent} to start the run afresh")
    now_batch = cfg.batch_size * cfg.grad_accum * world
    if (state["world_size"], state["global_batch"]) != (world, now_batch):
        raise RuntimeError(f"cannot resume {where}: it was written by {state['world_size']} rank(s) with a global "
                           f"batch of {state['global_batch']}, this launch has {world} rank(s) and a global batch of "
                           f"{now_batch} (batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x ranks). "
                           f"Relaunch with {state['world_size']} processes, or delete {where.parent} to start afresh.")


def _rng_file(folder: Path, rank: int) -> Path:
    return folder / f"rng-rank{rank}.pt"


@dataclass
class _Run:
    """What one launch of `train` holds: its rank, data, backend and the sample streams (`_setup`)."""
    cfg: TrainConfig
    out_dir: Path
    device: torch.device
    rank: int
    world: int
    prep: Prepared
    backend: object
    model: torch.nn.Module
    pad_id: int
    precision: str
    pair_stream: Stream | None
    lm_stream: Stream | None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_NAME


def _finished_before(model, out_dir: Path) -> TrainResult | None:
    """A run whose final/ is complete is not trained again: its weights are loaded into `model`."""
    final_dir = out_dir / "final"
    if not distributed.broadcast((final_dir / ckpt.RESULT).is_file() if distributed.is_main() else None):
        return None
    ckpt.load_weights(model, final_dir)
    result = json.loads((final_dir / ckpt.RESULT).read_text(encoding="utf-8"))
    logger.info("run %s already finished (%d steps); loaded its final weights", out_dir, result["steps"])
    return TrainResult(out_dir, final_dir, out_dir / LOG_NAME, result["steps"], None, result.get("last", {}))


def _setup(cfg: TrainConfig, model, tokenizer, out_dir: Path, data: TrainData | None, device) -> _Run:
    """Pins (threads, seeds), the data, gradient checkpointing and the backend, then the run's header in the log."""
    rank, world = distributed.rank_world()
    if cfg.uses_mcl:
        check_layer(model, cfg.mcl.layer)
    if cfg.threads:  # the thread count changes float summation order, hence the final weights
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)  # per-rank dropout streams (rank 0: the one-process seed)
    prep = prepare(cfg, tokenizer, data)  # builds the data from cfg when None (under arrow: on rank 0 only)
    checkpointing = resolve_checkpointing(cfg, model, device, world)
    if cfg.gradient_checkpointing == "auto" and rank == 0:
        logger.info("gradient checkpointing: auto -> %s (afp_lib.trainer.memory)", "on" if checkpointing else "off")
    set_gradient_checkpointing(model, checkpointing)
    backend = _make_backend(cfg, model, device)
    lm_items = prep.cit if cfg.uses_cit else prep.clm
    run = _Run(cfg, out_dir, device, rank, world, prep, backend, backend.model,
               tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
               resolve_precision(cfg.precision, device, "train.precision"),
               Stream(len(prep.pairs), cfg.seed) if prep.pairs else None,
               Stream(len(lm_items), cfg.seed + 1) if lm_items else None)
    logger.info("***** %s training: %s, %d steps x %d pairs x %d accum x %d ranks, seq %d, %s/%s, %s, data: %s *****",
                cfg.objective.upper(), type(run.model).__name__, cfg.steps, cfg.batch_size, cfg.grad_accum, world,
                cfg.seq_len, cfg.backend, run.precision, getattr(backend, "optimizer_name", "AdamW"), prep.summary)
    if run.main:
        _log_examples(tokenizer, prep)
    return run


def _resume(run: _Run) -> int | None:
    """Continue from the newest complete checkpoint, if any: weights, optimizer, schedule and this rank's RNG.
    Returns its step. Rank 0 writes the run's config and drops log records written after that step."""
    last = distributed.broadcast(ckpt.latest_checkpoint(run.out_dir) if run.main else None)
    step = None
    if last is not None:
        state = json.loads((last / ckpt.STATE).read_text())
        _check_resume(state, run.cfg, run.world, last)
        run.backend.load(last)
        ckpt.set_rng_state(torch.load(_rng_file(last, run.rank), weights_only=False))
        step = state["step"]
        logger.info("resuming %s from step %d", run.out_dir, step)
    if run.main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(run.out_dir / "train_config.json", config_dict(run.cfg))
        _truncate_log(run.log_path, step or 0)
    return step


def _accumulate(run: _Run, step: int, sums: dict[str, float]) -> int:
    """The step's grad_accum micro-batches: forward, NaN check, backward; each loss part (its mean over ranks)
    is added to `sums`. Returns the number of tokens this rank read."""
    cfg, tokens = run.cfg, 0
    lm_bs = cfg.cit_batch_size if cfg.uses_cit else cfg.batch_size
    for micro in range(cfg.grad_accum):
        m = micro_index(step, micro, cfg.grad_accum, run.rank, run.world)
        pair_idx = run.pair_stream.take(m * cfg.batch_size, cfg.batch_size) if run.pair_stream else None
        lm_idx = run.lm_stream.take(m * lm_bs, lm_bs) if run.lm_stream and run.prep.share is None else None
        pairs, lm = micro_batches(cfg, run.prep, pair_idx, lm_idx, run.pad_id)
        pairs = {k: v.to(run.device) for k, v in pairs.items()} if pairs else None
        lm = {k: v.to(run.device) for k, v in lm.items()} if lm else None
        with autocast(run.precision, run.device):
            parts = step_losses(run.model, cfg, pairs, lm, shared=run.prep.share is not None)
        # a sync point, needed for the NaN check anyway; the mean over ranks, so all ranks stop together
        values = distributed.mean_over_ranks({k: v.item() for k, v in parts.items()})
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingDiverged(f"non-finite loss at step {step + 1}: {values}; stopped before the update. "
                                   f"Last good checkpoint: {ckpt.latest_checkpoint(run.out_dir) or 'none'}. "
                                   "Lower optim.lr or check the data.")
        run.backend.backward(parts["loss"])
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        tokens += sum(collate.n_tokens(b) for b in (pairs, lm) if b is not None)
    return tokens


def _update(run: _Run, step: int) -> tuple[float, float]:
    """Clip and apply the accumulated gradients. Returns (the lr used, the pre-clip gradient norm)."""
    lr = run.backend.lr()
    grad_norm = run.backend.step()
    if not math.isfinite(grad_norm):
        raise TrainingDiverged(f"non-finite gradient norm at step {step + 1}; stopped before the update. "
                               f"Last good checkpoint: {ckpt.latest_checkpoint(run.out_dir) or 'none'}.")
    return lr, grad_norm


def _log_record(run: _Run, done: int, lr: float, grad_norm: float, sums: dict, n_sum: int, tokens: int,
                seconds: float) -> dict:
    """One line of train_log.jsonl: the mean loss parts since the last line, throughput of the whole job and, at
    eval_every and the end, the alignment metrics on the dev pairs. Rank 0 appends it."""
    record = {"step": done, "lr": lr, **{k: v / n_sum for k, v in sums.items()}, "grad_norm": grad_norm,
              "tokens_per_s": distributed.sum_over_ranks(tokens) / seconds}
    if (run.cfg.eval_every and done % run.cfg.eval_every == 0) or done == run.cfg.steps:
        record.update(evaluate_alignment(run.model, run.cfg, run.prep.dev, run.pad_id, run.device))
    if run.main:
        with open(run.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return record


def _finish(run: _Run, tokenizer, record: dict, resumed: int | None) -> TrainResult:
    """Check that data-parallel replicas ended alike, then rank 0 writes final/ (a save_pretrained folder with
    result.json) atomically and removes the checkpoints, which only served resuming."""
    cfg, final_dir = run.cfg, run.out_dir / "final"
    result = {"steps": cfg.steps, "last": record}
    if run.world > 1 and run.backend.replicated:  # data parallelism is only correct if every replica ends alike
        digests = distributed.gather_objects(distributed.weights_digest(run.model))
        if len(set(digests)) != 1:
            raise RuntimeError(f"the {run.world} ranks ended with different weights (digests {digests}); not saved")
        result.update(ranks=run.world, weights_digests=digests)
        logger.info("weights identical on all %d ranks (digest %s)", run.world, digests[0])
    state = run.backend.full_state_dict()  # collective under ZeRO-3, None otherwise

    def write_final():
        tmp = atomic.fresh_dir(final_dir)
        ckpt.save_model_folder(tmp, run.model, tokenizer, config_dict(cfg), state_dict=state)
        ckpt.write_json(tmp / ckpt.RESULT, result)
        atomic.commit_dir(tmp, final_dir)
        shutil.rmtree(run.out_dir / "checkpoints", ignore_errors=True)
    distributed.on_main(write_final, run.out_dir, "writing final/", cfg.save_wait_minutes * 60)  # no collective held
    return TrainResult(run.out_dir, final_dir, run.log_path, cfg.steps, resumed, record)


def train(cfg: TrainConfig, model, tokenizer, out_dir, data: TrainData | None = None,
          callbacks: list[Callable[[int, dict], None]] = ()) -> TrainResult:
    """Train `model` in place by `cfg` into `out_dir`, resuming from its last checkpoint if there is one.
    Returns where the final `save_pretrained` folder and the JSON-lines log are.
    Under a multi-process launcher every rank calls this; rank 0 takes the decisions and writes the files."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    distributed.init_from_env(device, required=cfg.backend == "deepspeed", timeout_minutes=cfg.dist_timeout_minutes)
    finished = _finished_before(model, out_dir)
    if finished is not None:
        return finished
    run = _setup(cfg, model, tokenizer, out_dir, data, device)
    resumed = _resume(run)
    run.model.train()
    record, sums, n_sum, tokens, t0 = {}, {}, 0, 0, time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=resumed or 0, desc=f"{cfg.objective.upper()} train",
               disable=bar_disable(not run.main))
    for step in range(resumed or 0, cfg.steps):
        step_tokens = _accumulate(run, step, sums)
        lr, grad_norm = _update(run, step)
        n_sum, tokens, done = n_sum + cfg.grad_accum, tokens + step_tokens, step + 1
        bar.update(1)
        if done % cfg.log_every == 0 or done == cfg.steps or (cfg.eval_every and done % cfg.eval_every == 0):
            record = _log_record(run, done, lr, grad_norm, sums, n_sum, tokens, time.perf_counter() - t0)
            bar.set_postfix({k: f"{record[k]:.3f}" for k in ("loss", "mcl", "cit", "clm", "retrieval") if k in record})
            sums, n_sum, tokens, t0 = {}, 0, 0, time.perf_counter()
        if cfg.save_every and done % cfg.save_every == 0 and done != cfg.steps:
            save_checkpoint(cfg, out_dir, done, run.model, tokenizer, run.backend)
        for cb in callbacks:
            cb(done, record)
    bar.close()
    return _finish(run, tokenizer, record, resumed)


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
    backend.save_shards(tmp)  # DeepSpeed: every rank writes its optimizer partition (collective)
    state = backend.full_state_dict()  # collective under ZeRO-3, None otherwise
    distributed.barrier()  # every rank's files are in tmp (nothing slow runs before it on one rank alone)

    def write():
        backend.save_on_main(tmp)  # torch: the optimizer and scheduler state, the same on every rank
        ckpt.save_model_folder(tmp, model, tokenizer, config_dict(cfg), state_dict=state)
        ckpt.write_json(tmp / ckpt.STATE, {"step": step, "world_size": world,
                                           "global_batch": cfg.batch_size * cfg.grad_accum * world})
        ckpt.write_manifest(tmp)  # last: its sizes tell a complete checkpoint from a damaged one
        atomic.commit_dir(tmp, final)
        ckpt.prune(out_dir, cfg.keep_checkpoints)
    distributed.on_main(write, out_dir, f"writing {final.name}", wait_s)
    return final

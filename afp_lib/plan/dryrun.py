"""`paper-plan --dry-run`: exercise the whole paper plan on tiny random models, offline, in about a minute.

The hub is unreachable here, so the dry run writes a scratch mirror in the hub's own schemas: a few
synthetic Bactrian-X rows and OPUS-100 pairs (only for the `en-xx` configs OPUS-100 really has), and a
handful of items for every evaluation task. `$AFP_DATA_MIRROR` points at it, so the trainer builds each
run's data through its real code path (OPUS-100 + Bactrian-X pairs, Bactrian-X and translation CIT).
Each distinct run configuration of the plan (objective, layer, pooling, p_src, alpha, policy, languages,
architecture and depth) trains 1 step on a random model of the hub model's architecture and depth with a
tiny width; one run goes through DeepSpeed ZeRO-2 (one CPU rank: torch AdamW + torch bf16 autocast, the
CPU path of the trainer); the paper's 8-GPU bf16 ZeRO-2 config is validated by DeepSpeed's own parser;
then one tiny ICL call over all five tasks and one translation call run on a trained model.

DeepSpeed keeps process-global communication state, so run the dry run in a process of its own (the CLI
`python -m afp_lib paper-plan --dry-run` does): a later `init_process_group` in the same process fails."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import from_dict, to_dict, with_overrides
from ..trainer.config import OBJECTIVE_LOSSES, TrainConfig
from .facts import BACTRIAN_X, HUB_MODELS, OPUS100, OPUS100_LANGS, PAPER_GPUS
from .resolve import Plan, PlanRun

logger = logging.getLogger(__name__)

# Small everything; the configuration's meaning (objective, layer, pooling, p_src, alpha, policy, langs) is kept.
DRY_OVERRIDES = ["steps=1", "batch_size=4", "grad_accum=1", "seq_len=64", "backend=torch", "device=cpu",
                 "precision=fp32", "log_every=1", "eval_every=0", "save_every=0", "data.max_pairs_per_lang=8",
                 "data.dev_pairs=4"]
DS_OVERRIDES = ["steps=2", "backend=deepspeed", "precision=bf16"]
TINY = dict(d_model=16, n_heads=2, ffn_dim=32, max_positions=128)
SENTENCES = {  # a few real sentences where we have them; other languages get tagged placeholders
    "en": ["The cat sat on the mat.", "A dog runs in the park.", "We need at least ten countries to join us.",
           "The weather is nice today.", "She reads a book every week.", "Water boils at one hundred degrees."],
    "zh": ["猫坐在垫子上。", "一只狗在公园里跑。", "我们需要至少十个国家加入我们。", "今天天气很好。", "她每周读一本书。", "水在一百度沸腾。"],
    "tr": ["Kedi paspasın üzerine oturdu.", "Bir köpek parkta koşuyor.", "En az on ülkenin katılması gerekiyor.",
           "Bugün hava güzel.", "Her hafta bir kitap okur.", "Su yüz derecede kaynar."],
    "th": ["แมวนั่งบนเสื่อ", "สุนัขวิ่งในสวน", "เราต้องการอย่างน้อยสิบประเทศ", "วันนี้อากาศดี", "เธออ่านหนังสือทุกสัปดาห์", "น้ำเดือดที่หนึ่งร้อยองศา"],
    "sw": ["Paka alikaa juu ya mkeka.", "Mbwa anakimbia bustanini.", "Tunahitaji angalau nchi kumi.",
           "Hali ya hewa ni nzuri leo.", "Anasoma kitabu kila wiki.", "Maji huchemka kwa nyuzi mia moja."],
}


def sentence(lang: str, i: int) -> str:
    bank = SENTENCES.get(lang)
    return f"{bank[i % len(bank)]} ({i})" if bank else f"[{lang}] sentence number {i} in {lang}."


# ------------------------------------------------------------------------------------------ scratch mirror

def _write(root: Path, rel: str, rows: list[dict]) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# One synthetic item of each task in its dataset's schema (data/hub.py SCHEMAS), from a sentence maker `s`
# and an index: the dry run writes a few for English and Chinese where the task's YAML says its files are.
SYNTHETIC_ITEMS = {
    "xnli": lambda s, i: {"premise": s(i), "hypothesis": s(i + 1), "label": i % 3},
    "pawsx": lambda s, i: {"id": i, "sentence1": s(i), "sentence2": s(i + 2), "label": i % 2},
    "xcopa": lambda s, i: {"premise": s(i), "choice1": s(i + 1), "choice2": s(i + 2), "label": i % 2,
                           "question": ("cause", "effect")[i % 2], "idx": i, "changed": False},
    "xstorycloze": lambda s, i: {"story_id": f"s{i}", **{f"input_sentence_{k}": s(i + k) for k in range(1, 5)},
                                 "sentence_quiz1": s(i + 5), "sentence_quiz2": s(i + 6),
                                 "answer_right_ending": 1 + i % 2},
    "xwinograd": lambda s, i: {"sentence": f"{s(i)} _ {s(i + 1)}", "option1": s(i + 2), "option2": s(i + 3),
                               "answer": str(1 + i % 2)},
    "flores": lambda s, i: {"id": i + 1, "URL": "", "domain": "", "topic": "", "has_image": 0, "has_hyperlink": 0,
                            "sentence": s(i)},
}


def synthetic_mirror(root: Path, langs: list[str], n_pairs: int = 10, n_bactrian: int = 6) -> Path:
    """Training data (Bactrian-X for en + langs, OPUS-100 where the hub has the pair) and tiny eval sets of
    every registered task."""
    for lang in ["en", *langs]:
        _write(root, f"hub/{BACTRIAN_X}/{lang}/train.jsonl",
               [{"instruction": f"Q{i}: {sentence(lang, i)}", "input": "", "id": f"b{i}",
                 "output": sentence(lang, i + 3)} for i in range(n_bactrian)])
        if lang != "en" and lang in OPUS100_LANGS:
            _write(root, f"hub/{OPUS100}/{'-'.join(sorted(['en', lang]))}/train.jsonl",
                   [{"translation": {"en": sentence("en", i), lang: sentence(lang, i)}} for i in range(n_pairs)])
    from ..eval.tasks import TASKS
    missing = sorted(set(TASKS) - set(SYNTHETIC_ITEMS))
    if missing:
        raise KeyError(f"afp_lib/plan/dryrun.py: SYNTHETIC_ITEMS has no item for task(s) {missing}")
    for name, task in TASKS.items():
        holdout = task.splits.demos == "holdout"
        splits = [task.splits.test] if holdout else [task.splits.demos, task.splits.test]
        for code in ("en", "zh"):
            lang = task.lang(code)
            n = 6 if task.kind == "translation" else 8
            if holdout:  # a holdout pool needs its items plus 4 to score, unless the language borrows another's
                n = 4 if lang.demos_from else task.splits.holdout + 4
            rows = [SYNTHETIC_ITEMS[name](lambda i: sentence(code, i), i) for i in range(n)]  # noqa: B023
            for split in splits:
                _write(root, f"hub/{task.dataset}/{lang.config}/{split}.jsonl", rows)
    return root


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _clear_eval_caches() -> None:
    """The eval task loader memoises rows per (dataset, config, split): keep the scratch rows out of them."""
    from ..eval import tasks
    tasks._rows.cache_clear()
    tasks._RESOLVED.clear()


# ------------------------------------------------------------------------------------------ runs

@dataclass
class DryRun:
    runs: list[dict] = field(default_factory=list)
    deepspeed: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def blocked(self) -> list[str]:
        """Failed runs the plan predicted (languages without pairs in train.data.sources: see PROBLEMS)."""
        return [r["name"] for r in self.runs if r.get("error") and r["uncovered"]]

    @property
    def failures(self) -> list[str]:
        out = [f"run {r['name']}: {r['error']}" for r in self.runs if r.get("error")]
        out += [f"run {r['name']} without {', '.join(r['uncovered'])}: {r['without_uncovered']}"
                for r in self.runs if r.get("without_uncovered", "ok") != "ok"]
        out += [f"{k}: {v['error']}" for k, v in (("deepspeed", self.deepspeed), ("eval", self.eval)) if v.get("error")]
        return out


def distinct_runs(plan: Plan) -> list[PlanRun]:
    """One run per configuration that exercises different code: sizes of one family and seeds collapse,
    everything else (objective, layer, pooling, p_src, alpha, policy, languages) stays."""
    seen, out = set(), []
    for r in plan.runs:
        cfg = to_dict(r.cfg)
        cfg.pop("seed")
        sig = json.dumps([r.family, cfg], sort_keys=True)
        if sig not in seen:
            seen.add(sig)
            out.append(r)
    return out


def tiny_model(run: PlanRun, tokenizer):
    """The run's architecture, 16 wide, one block deeper than the MCL layer (capped at the hub model's depth,
    so MCL on the last block is exercised as such); the layer is checked against the real depth in the plan."""
    from ..models import ModelShape, build_model
    real = HUB_MODELS[run.hub_id].n_layers if run.hub_id in HUB_MODELS else run.layer + 1
    return build_model(run.family, ModelShape(n_layers=max(2, min(run.layer + 1, real)), **TINY), tokenizer, seed=0)


def dry_config(cfg: TrainConfig, extra: list[str] = ()) -> TrainConfig:
    return from_dict(TrainConfig, with_overrides(to_dict(cfg), DRY_OVERRIDES + list(extra)), "dry-run")


def _train_one(run: PlanRun, cfg: TrainConfig, tokenizer, out: Path) -> dict:
    from ..trainer import train
    t0 = time.perf_counter()
    res = train(cfg, tiny_model(run, tokenizer), tokenizer, out)
    parts = {k: round(v, 4) for k, v in res.last.items() if k in ("loss", "mcl", "cit", "clm")}
    want = set(OBJECTIVE_LOSSES[cfg.objective])
    if not want <= set(parts) or not all(math.isfinite(v) for v in parts.values()):
        raise RuntimeError(f"expected finite {sorted(want)} in the last log record, got {res.last}")
    if not (res.final_dir / "model.safetensors").is_file():
        raise RuntimeError(f"no model.safetensors in {res.final_dir}")
    return {**parts, "seconds": round(time.perf_counter() - t0, 2), "final_dir": str(res.final_dir)}


class _DataParallel:
    """What DeepSpeedConfig asks an `mpu` for: lets one CPU process check the 8-GPU batch arithmetic."""

    def __init__(self, world: int):
        self.world = world

    def get_data_parallel_world_size(self) -> int:
        return self.world


def check_paper_ds_config(cfg: TrainConfig, gpus: int = PAPER_GPUS, committed: Path | None = None) -> dict:
    """The trainer's DeepSpeed config for `gpus` CUDA ranks, parsed by DeepSpeed (batch arithmetic, ZeRO, bf16)."""
    import deepspeed
    from deepspeed.runtime.config import DeepSpeedConfig

    from ..trainer.ds_backend import ds_config
    conf = ds_config(cfg, gpus, cuda=True)
    deepspeed.init_distributed(dist_backend="gloo")   # DeepSpeed's own comm layer over the one-rank group
    parsed = DeepSpeedConfig(conf, mpu=_DataParallel(gpus))
    checks = {"train_batch_size": parsed.train_batch_size, "micro_batch_per_gpu": parsed.train_micro_batch_size_per_gpu,
              "zero_stage": parsed.zero_optimization_stage, "bf16": parsed.bfloat16_config.enabled}
    want = {"train_batch_size": cfg.batch_size * cfg.grad_accum * gpus, "micro_batch_per_gpu": cfg.batch_size,
            "zero_stage": cfg.zero_stage, "bf16": cfg.precision in ("bf16", "auto")}
    if checks != want:
        raise RuntimeError(f"DeepSpeed parsed {checks}, expected {want}")
    if committed is not None and committed.is_file() and json.loads(committed.read_text()) != conf:
        raise RuntimeError(f"{committed} differs from the trainer's ds_config for {gpus} GPUs; regenerate it with "
                           f"`python -m afp_lib paper-plan --ds-config {committed}`")
    return checks


@contextlib.contextmanager
def one_rank():
    """A one-process gloo group (what `deepspeed`/`torchrun` would set up), unless one exists already."""
    import torch.distributed as dist
    if dist.is_initialized():
        yield
        return
    port = str(29500 + random.Random(os.getpid()).randrange(2000))
    with _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"):
        dist.init_process_group("gloo", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


def _tiny_eval(model, tokenizer, profile: str, out: Path) -> dict:
    from ..eval import evaluate, load_eval_config, translate_eval
    cfg = load_eval_config(profile)
    icl = evaluate(model, tokenizer, tasks=cfg.tasks, langs=["en", "zh"], shots=[0, 1], seeds=[0], max_items=4,
                   model_name="dry-run", out_file=out, batch_size=8, progress=False)
    mt = translate_eval(model, tokenizer, [("en", "zh"), ("zh", "en")], shots=[1], seeds=[0], max_items=2,
                        model_name="dry-run", out_file=out, max_new_tokens=4, progress=False)
    tasks = sorted({r["task"] for r in icl + mt})
    if set(tasks) != set(cfg.tasks) | {"flores"}:
        raise RuntimeError(f"evaluation records cover {tasks}, expected {sorted(cfg.tasks)} and flores")
    return {"records": len(icl) + len(mt), "tasks": tasks}


def dry_run(plan: Plan, workdir: Path, committed_ds_config: Path | None = None) -> DryRun:
    """Train every distinct configuration of `plan` for one step on tiny models, DeepSpeed once, evaluate once."""
    from ..tokenizer import train_bpe
    t_start = time.perf_counter()
    workdir = Path(workdir)
    langs = sorted({lang for r in plan.runs for lang in r.langs})
    mirror = synthetic_mirror(workdir / "mirror", langs)
    texts = [sentence(lang, i) for lang in ["en", *langs] for i in range(12)]
    tokenizer = train_bpe(texts * 3, vocab_size=600, min_frequency=1)
    report = DryRun()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: more threads only contend (a 24-block step takes 0.6 s on one, 30 s on two busy cores)
    quiet = {name: logging.getLogger(name) for name in ("afp_lib.trainer", "afp_lib.eval", "afp_lib.cit")}
    levels = {name: lg.level for name, lg in quiet.items()}
    for lg in quiet.values():
        lg.setLevel(logging.WARNING)
    _clear_eval_caches()
    trained = None
    try:
        with _env(AFP_DATA_MIRROR=str(mirror), AFP_TOKENIZED=str(workdir / "tokenized"), TQDM_DISABLE="1",
                  HF_HUB_DISABLE_PROGRESS_BARS="1"):  # token ids of the paper profile (tokenized: arrow) stay in workdir
            for i, run in enumerate(distinct_runs(plan)):
                name = f"{i:02d}-{run.arch}-{run.objective}-l{run.layer}-{run.pooling}-p{run.p_src}-a{run.alpha}-{run.policy}-{len(run.langs)}langs"
                row = {"name": name, "key": run.key, "used_by": run.used_by, "uncovered": run.uncovered}
                try:
                    row.update(_train_one(run, dry_config(run.cfg), tokenizer, workdir / "runs" / name))
                    if trained is None and run.family == "xglm" and run.objective == "afp":
                        trained = row["final_dir"]
                except Exception as e:  # keep going: the report lists every configuration that fails
                    row["error"] = f"{type(e).__name__}: {e}"
                    if run.uncovered:  # a predicted PROBLEM: still exercise the rest (policy, many languages)
                        rest = [lang for lang in run.langs if lang not in run.uncovered]
                        try:
                            _train_one(run, dry_config(run.cfg, [f"data.langs=[{', '.join(rest)}]"]), tokenizer,
                                       workdir / "runs" / f"{name}-without-{'-'.join(run.uncovered)}")
                            row["without_uncovered"] = "ok"
                        except Exception as e2:
                            row["without_uncovered"] = f"{type(e2).__name__}: {e2}"
                report.runs.append(row)
                logger.info("dry run %s: %s", name, row.get("error") or f"ok ({row['seconds']}s)")
            first = plan.runs[0]
            try:
                with one_rank():
                    report.deepspeed = {"paper_config": check_paper_ds_config(first.cfg, plan.gpus, committed_ds_config),
                                        **_train_one(first, dry_config(first.cfg, DS_OVERRIDES + [f"zero_stage={first.cfg.zero_stage}"]),
                                                     tokenizer, workdir / "runs" / "deepspeed")}
            except Exception as e:
                report.deepspeed = {"error": f"{type(e).__name__}: {e}"}
            try:
                from ..models import load_model
                model, tok = load_model(trained) if trained else (tiny_model(first, tokenizer).eval(), tokenizer)
                report.eval = _tiny_eval(model.eval(), tok, plan.profile, workdir / "eval.jsonl")
            except Exception as e:
                report.eval = {"error": f"{type(e).__name__}: {e}"}
    finally:
        torch.set_num_threads(threads)
        _clear_eval_caches()
        for name, lg in quiet.items():
            lg.setLevel(levels[name])
    report.seconds = round(time.perf_counter() - t_start, 1)
    return report

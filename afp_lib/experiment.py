"""Train-or-load and evaluate-or-load: the few calls a section notebook makes.

A `Variant` names one model of a section: an architecture of the profile's world and, unless it is the
vanilla model, the `train` overrides that align it (objective, layer, p_src, ...). Training goes through
the run cache (`afp_lib.trainer.get_or_train`) and evaluation through a per-model records file that
resumes, so notebooks that share a model share its training and its scores."""
from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .analysis.paper import ablation_match, paper_match, policy_match, semantic_match  # noqa: F401 (notebooks)
from .config import load_section
from .paths import runs_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One model of a section. `train=None` is the vanilla (unaligned) model."""
    label: str                              # shown in tables and plots: "vanilla", "AFP", "layer 2", ...
    arch: str = "xglm"
    train: tuple[str, ...] | None = None    # `train` section overrides, e.g. ("objective=cit",)
    seed: int = 0                           # training seed (vanilla models have none)
    meta: dict = field(default_factory=dict, compare=False, hash=False)  # sweep coordinates for plots

    @property
    def vanilla(self) -> bool:
        return self.train is None

    def display(self, profile: str) -> str:
        """The name tables use: seeds of one variant are averaged under it."""
        base = f"{self.arch}-{profile}"
        return base if self.vanilla else f"{base}+{self.label}"

    def name(self, profile: str) -> str:
        """Unique per trained model (the training seed included)."""
        return self.display(profile) if self.vanilla else f"{self.display(profile)}#s{self.seed}"


def section(name: str, profile: str) -> dict:
    """The notebook's own block of params.yaml (base + profile)."""
    return load_section(name, profile)


def variants(spec: dict, archs: list[str], seeds: list[int], common: list[str] = ()) -> list[Variant]:
    """Variants from a params block `{label: overrides-or-null}` for each arch and (aligned) seed;
    `common` overrides (e.g. the section's languages) come first."""
    out = []
    for arch in archs:
        for label, overrides in spec.items():
            if overrides is None:
                out.append(Variant(label, arch))
            else:
                out += [Variant(label, arch, (*common, *overrides), seed) for seed in seeds]
    return out


def train_config(v: Variant, profile: str):
    from .trainer import load_train_config
    return load_train_config(profile, list(v.train or ()) + [f"seed={v.seed}"])


def run_dir(v: Variant, profile: str) -> Path | None:
    """The alignment run folder (train_log.jsonl, final/), training it first if needed; None if vanilla."""
    if v.vanilla:
        return None
    from .devices import require_gpu
    from .trainer import get_or_train
    from .world import base_model
    require_gpu(profile, train_config(v, profile).device)
    t0 = time.time()
    path = get_or_train(train_config(v, profile), base_model(profile, v.arch))
    logger.info("%s ready in %.0fs: %s", v.name(profile), time.time() - t0, path)
    return path


def model_path(v: Variant, profile: str) -> str:
    """A folder (or hub id) that `afp_lib.models.load_model` loads."""
    from .world import base_model
    return base_model(profile, v.arch) if v.vanilla else str(run_dir(v, profile) / "final")


def load(v: Variant, profile: str):
    """(model, tokenizer) of `v` in eval mode on the device `afp_lib.devices.resolve_device` picks (a GPU when
    there is one; $AFP_DEVICE overrides); the last few are kept, since a notebook asks for the same model for
    several probes in a row."""
    from .devices import require_gpu, resolve_device
    require_gpu(profile)
    return _load_path(model_path(v, profile), str(resolve_device()))


@functools.lru_cache(maxsize=2)
def _load_path(path: str, device: str = "cpu"):
    from .models import load_model
    model, tokenizer = load_model(path, device=device)
    return model.eval(), tokenizer


def model_ref(v: Variant, profile: str) -> str:
    """What `model_path` returns, without training: the folder the run cache puts the model in."""
    from .trainer.runs import run_dir as run_folder
    from .world import base_model, world_dir
    try:
        base = base_model(profile, v.arch)
    except FileNotFoundError:   # the smoke/mini world is not built yet: the folder it will be (plans, tests)
        base = str(world_dir(profile) / v.arch)
    return base if v.vanilla else str(run_folder(train_config(v, profile), base) / "final")


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
                           progress=False)
        logger.info("%s: %d cells evaluated in %.0fs", v.name(profile), len(missing), time.time() - t0)
    records = [(c, read_cell(c)) for c in cells]
    if any(recs is None for _, recs in records):
        raise RuntimeError(f"{v.name(profile)}: cells still missing after evaluation: "
                           f"{[c.key() for c, recs in records if recs is None][:4]}")
    records = [r for _, recs in records for r in recs]
    return [{**r, "model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
             "train_seed": v.seed, **v.meta} for r in records]


def representations(v: Variant, profile: str, langs: list[str] | None = None, pivot: str = "en",
                    layer: int | None = None, n: int | None = None):
    """Sentence representations of held-out bitext (analysis section: layer, pooling, source, n_pairs, or
    `n` pairs): returns {lang: (pivot_vectors, lang_vectors)} for the languages asked for."""
    from .analysis.config import analysis_config
    from .analysis.representations import embed, sample_pairs
    cfg = analysis_config(profile, overrides=None if layer is None else {"layer": layer})
    model, tokenizer = load(v, profile)
    out = {}
    for lang in langs or cfg.languages:
        src, tgt = sample_pairs(lang, source=cfg.source, pivot=pivot, n=n or cfg.n_pairs, seed=cfg.tsne.seed)
        kw = dict(layer=cfg.layer, pooling=cfg.pooling, batch_size=cfg.batch_size, max_length=cfg.max_length)
        out[lang] = (embed(model, tokenizer, src, **kw), embed(model, tokenizer, tgt, **kw))
    return out


def stacked_representations(v: Variant, profile: str, langs: list[str]):
    """For t-SNE: (N, H) vectors of the English side (of the first pair) and every language, with each
    row's language; `analysis.tsne.n_sentences` pairs per language."""
    import torch

    from .analysis.config import analysis_config
    reps = representations(v, profile, langs, n=analysis_config(profile).tsne.n_sentences)
    first = reps[langs[0]][0]
    parts, names = [first], ["en"] * len(first)
    for lang in langs:
        parts.append(reps[lang][1])
        names += [lang] * len(reps[lang][1])
    return torch.cat(parts), names


def probe(v: Variant, profile: str, langs: list[str] | None = None, layer: int | None = None) -> list[dict]:
    """Alignment probes of `v`: alignment, uniformity and bitext retrieval (%) per language pair."""
    from .analysis.metrics import alignment, retrieval_hits, uniformity
    import torch
    rows = []
    base = {"model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
            "train_seed": v.seed, **v.meta}
    for lang, (h_en, h_xx) in representations(v, profile, langs, layer=layer).items():
        hits = retrieval_hits(h_en, h_xx).numpy()
        rows.append({**base, "pair": f"en-{lang}", "align": alignment(h_en, h_xx),
                     "uniform": uniformity(torch.cat([h_en, h_xx])), "retrieval": 100 * float(hits.mean()),
                     "retrieval items": hits})
    return rows


def dev_probe(v: Variant, profile: str, reference: Variant) -> dict:
    """Alignment probes on in-domain held-out pairs: the trainer's dev pairs (never trained on), at the MCL
    layer and pooling. Aligned runs report their last training-log evaluation; a vanilla model is measured
    on the dev pairs of `reference` (an aligned variant with the same data and seed). `dev retrieval items`
    are the 0/1 outcomes of the 2N queries (both directions; rebuilt from the log's rate for aligned runs)."""
    import numpy as np

    from .analysis.intervals import bernoulli
    from .trainer import build_train_data
    base = {"model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
            "train_seed": v.seed if not v.vanilla else reference.seed}
    cfg = train_config(reference if v.vanilla else v, profile)
    dev = build_train_data(cfg).dev_pairs
    if not v.vanilla:
        last = [r for r in train_log(v, profile) if "retrieval" in r][-1]
        return {**base, "dev retrieval": 100 * last["retrieval"], "dev align": last["align"], "dev uniform": last["uniform"],
                "dev retrieval items": bernoulli(100 * last["retrieval"], 2 * len(dev))}
    m = _dev_metrics(v, profile, cfg, dev)
    return {**base, "dev retrieval": 100 * float(np.mean(m["hits"])), "dev align": m["align"],
            "dev uniform": m["uniform"], "dev retrieval items": m["hits"]}


def _dev_metrics(v: Variant, profile: str, cfg, dev: list[dict]) -> dict:
    """Alignment, uniformity and per-query retrieval hits of `v` on dev pairs, at cfg's MCL layer and pooling."""
    import torch
    from .analysis.metrics import alignment, retrieval_hits, uniformity
    from .analysis.representations import embed
    model, tokenizer = load(v, profile)
    kw = dict(layer=cfg.mcl.layer, pooling=cfg.mcl.pooling, max_length=cfg.seq_len)
    src = embed(model, tokenizer, [p["src"] for p in dev], **kw)
    tgt = embed(model, tokenizer, [p["tgt"] for p in dev], **kw)
    return {"align": alignment(src, tgt), "uniform": uniformity(torch.cat([src, tgt])),
            "hits": retrieval_hits(src, tgt).numpy()}


def step0(v: Variant, profile: str, run: Variant) -> dict:
    """Fig. 3c's common origin: the vanilla model `v` on the dev pairs of aligned `run`, as a training-log
    point at step 0 (retrieval as a rate, like the trainer logs it)."""
    from .trainer import build_train_data
    cfg = train_config(run, profile)
    m = _dev_metrics(v, profile, cfg, build_train_data(cfg).dev_pairs)
    return {"step": 0, "align": m["align"], "uniform": m["uniform"], "retrieval": float(m["hits"].mean())}


def perplexity(v: Variant, profile: str, langs: list[str]) -> list[dict]:
    """Held-out perplexity and bits per byte of the world's held-out monolingual text (what MCL alone harms)."""
    from .world import world_dir
    from .world.corpus import read_corpus
    from .world.diagnose import heldout_perplexity
    model, tokenizer = load(v, profile)
    heldout = read_corpus(world_dir(profile) / "corpus", "heldout", langs)
    return [{"model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
             "train_seed": v.seed, "language": lang, **heldout_perplexity(model, tokenizer, lines)}
            for lang, lines in heldout.items()]


SCRIPTS = {"zh": ("\u4e00", "\u9fff"), "th": ("\u0e00", "\u0e7f"), "en": ("a", "z")}


def script_share(text: str, lang: str) -> float:
    """Share of the letters of `text` written in `lang`'s script (CJK, Thai, or Latin for en)."""
    lo, hi = SCRIPTS[lang]
    letters = [c for c in text.lower() if c.isalpha()]
    return sum(lo <= c <= hi for c in letters) / len(letters) if letters else 0.0


def output_language(v: Variant, profile: str, src: str = "en", tgt: str = "zh", n: int = 50,
                    max_new_tokens: int = 24) -> dict:
    """Does the model answer in the language the CIT prompt asks for? Greedy continuations of
    "<held-out src sentence> Answer in <Tgt>:", first line only. An answer without a single letter (the
    model stops at once, or writes only punctuation) is counted apart: `answered` is the share of answers
    with letters, and `target_script_share` the mean share of tgt-script letters among those answers
    (NaN when none answered), so a model that says nothing is not scored as answering in another language."""
    from .analysis.representations import sample_pairs
    from .cit import answer_prompt
    model, tokenizer = load(v, profile)
    other = tgt if src == "en" else src  # tatoeba pairs are en-xx
    en_side, xx_side = sample_pairs(other, source="tatoeba", n=n, seed=1)
    prompts = [f"{sent} {answer_prompt(tgt)}" for sent in (en_side if src == "en" else xx_side)]
    texts = greedy_answers(model, tokenizer, prompts, max_new_tokens)
    lines = [t.split("\n")[0] for t in texts]
    shares = [script_share(line, tgt) for line in lines if any(c.isalpha() for c in line)]
    return {"model": v.display(profile), "run": v.name(profile), "label": v.label, "direction": f"{src}->{tgt}",
            "answered": 100 * len(shares) / max(len(lines), 1),
            "target_script_share": 100 * sum(shares) / len(shares) if shares else float("nan"),
            "n": len(lines), "n answered": len(shares)}


def greedy_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
    """Greedy continuations of `prompts` in one left-padded batch (generation continues every row from its
    last real token), no bigram twice: tiny models otherwise loop on one token (e.g. "「「「「") and the share
    of letters would miss the language they did switch to."""
    import torch
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True).to(next(model.parameters()).device)
    finally:
        tokenizer.padding_side = side
    with torch.no_grad():
        gen = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, no_repeat_ngram_size=2,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.batch_decode(gen[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def train_log(v: Variant, profile: str) -> list[dict]:
    """The JSON-lines training log of an aligned variant (Fig. 3c)."""
    from .analysis.plots import read_train_log
    return read_train_log(run_dir(v, profile) / "train_log.jsonl")


def save_frame(df, stem: Path) -> None:
    """A plain (single-level) DataFrame as `stem.csv` and `stem.md`, written atomically."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".csv", df.to_csv()), (".md", df.to_markdown(floatfmt=".3f") + "\n")):
        tmp = stem.with_suffix(suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(stem.with_suffix(suffix))


def write_json(path: Path, data) -> None:
    """Atomic JSON write (metrics files that DVC reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)


# --- summaries the notebooks print: every number comes from the records, none is typed by hand

ORDER = ["vanilla", "BPre", "BIT", "CIT", "MCL", "AFP"]


def _mean_se(df, by: str, col: str):
    import pandas as pd
    g = df.groupby(by)[col]
    n = g.count()
    se = g.std(ddof=1) / n.pow(0.5)
    return pd.DataFrame({col: g.mean(), f"{col} se": se.fillna(0.0)})


def findings_table(probes, ppl, answers):
    """One row per method: retrieval/alignment/uniformity, perplexity per language, answer language; mean
    and standard error over training seeds, and for retrieval the 95% interval (`… lo`, `… hi`) over
    training seeds and pairs (afp_lib.analysis.intervals)."""
    import numpy as np
    import pandas as pd

    from .analysis.intervals import interval
    parts = [_mean_se(probes, "label", c) for c in probes.columns
             if c in ("retrieval", "align", "uniform", "dev retrieval", "dev align", "dev uniform")]
    for col in ("retrieval", "dev retrieval"):
        if f"{col} items" in probes.columns:
            # a vanilla model has one Tatoeba probe but a dev probe per findings seed: rows without items skip
            seeds = {lab: [[x] for x in d[f"{col} items"] if isinstance(x, np.ndarray) and x.size]
                     for lab, d in probes.groupby("label")}
            ivs = {lab: interval(s, scale=100.0) for lab, s in seeds.items() if s}
            parts.append(pd.DataFrame({f"{col} lo": {k: v[1] for k, v in ivs.items()},
                                       f"{col} hi": {k: v[2] for k, v in ivs.items()}}))
    for lang, d in ppl.groupby("language"):
        parts.append(_mean_se(d.rename(columns={"perplexity": f"ppl {lang}"}), "label", f"ppl {lang}"))
    for direction, d in answers.groupby("direction"):
        col = f"answers in {direction.split('->')[1]} (%)"
        parts.append(_mean_se(d.rename(columns={"answered": f"answered {direction} (%)"}), "label",
                              f"answered {direction} (%)"))
        parts.append(_mean_se(d.rename(columns={"target_script_share": col}), "label", col))
    out = pd.concat(parts, axis=1)
    out["n seeds"] = probes.groupby("label")["retrieval"].count()
    return out.reindex([x for x in ORDER if x in out.index] + [x for x in out.index if x not in ORDER])


def describe_findings(f) -> str:
    """Sentences that state the comparisons the paper makes, with our numbers: retrieval as mean [95%
    interval over training seeds and pairs], the rest as mean ± standard error over training seeds. A word
    of order ("above") only where the two intervals exclude each other, else "indistinguishable from"."""
    import math

    from .analysis.intervals import compare

    def has(label, col):
        return label in f.index and col in f.columns and not math.isnan(f.loc[label, col])

    def iv(label, col):
        return (f.loc[label, col], f.loc[label, col + " lo"], f.loc[label, col + " hi"])

    def val(label, col, digits=1):
        if not has(label, col):
            return "n/a"
        if col + " lo" in f.columns:
            m, lo, hi = iv(label, col)
            return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
        return f"{f.loc[label, col]:.{digits}f} ± {f.loc[label, col + ' se']:.{digits}f}"

    def above(a, b, col):
        if not (has(a, col) and has(b, col)) or col + " lo" not in f.columns:
            return "not measured"
        return f"{a} is {compare(iv(a, col), iv(b, col))} {b}"

    def uniformity(col):
        """Each aligned method's uniformity against the vanilla model's, in words computed from the numbers."""
        if not has("vanilla", col):
            return ""
        moved = [(lab, f.loc[lab, col] - f.loc["vanilla", col]) for lab in ("MCL", "AFP") if has(lab, col)]
        if not moved:
            return ""
        words = ", ".join(f"{lab} {'worsens' if d > 0 else 'improves'} it ({d:+.2f})" for lab, d in moved)
        worse = [lab for lab, d in moved if d > 0]
        note = (": the sentences crowd together, the opposite of the paper's Fig. 3c, where AFP lowers both "
                "alignment and uniformity") if worse else ", as in the paper's Fig. 3c"
        return f" **Uniformity** (lower is better): vanilla {val('vanilla', col, 2)}; {words}{note}."

    lines = [] if "dev retrieval" not in f.columns else [
        f"- **In-domain held-out pairs** (the trainer's dev pairs): retrieval (%, 95% interval) AFP "
        f"{val('AFP', 'dev retrieval')}, CIT {val('CIT', 'dev retrieval')}, MCL {val('MCL', 'dev retrieval')}, "
        f"vanilla {val('vanilla', 'dev retrieval')}: {above('AFP', 'CIT', 'dev retrieval')}; "
        f"{above('AFP', 'vanilla', 'dev retrieval')}; alignment AFP {val('AFP', 'dev align', 3)}, CIT "
        f"{val('CIT', 'dev align', 3)}, vanilla {val('vanilla', 'dev align', 3)}.{uniformity('dev uniform')}",
    ]
    lines += [
        f"- **Bitext retrieval EN–ZH, Tatoeba** (out of domain, %, 95% interval): AFP {val('AFP', 'retrieval')}, "
        f"CIT {val('CIT', 'retrieval')}, MCL {val('MCL', 'retrieval')}, vanilla {val('vanilla', 'retrieval')}: "
        f"{above('AFP', 'CIT', 'retrieval')}; {above('AFP', 'vanilla', 'retrieval')}.",
        f"- **Alignment** (Tatoeba, lower is better): AFP {val('AFP', 'align', 3)}, CIT {val('CIT', 'align', 3)}, "
        f"vanilla {val('vanilla', 'align', 3)}.{uniformity('uniform')}",
    ]
    for lang in ("en", "zh"):
        col = f"ppl {lang}"
        if col in f.columns:
            lines.append(f"- **Held-out perplexity ({lang})**: vanilla {val('vanilla', col)}, MCL only {val('MCL', col)}, "
                         f"CIT {val('CIT', col)}, AFP {val('AFP', col)}: MCL alone "
                         f"{'raises' if f.loc['MCL', col] > f.loc['vanilla', col] else 'does not raise'} it."
                         if "MCL" in f.index and "vanilla" in f.index else f"- perplexity ({lang}): {val('AFP', col)}")
    for direction, name in (("en->zh", "Chinese"), ("zh->en", "English")):
        answered, share = f"answered {direction} (%)", f"answers in {direction.split('->')[1]} (%)"
        if answered not in f.columns:
            continue
        parts = [f"{lab} answers {val(lab, answered, 0)}%, of which {val(lab, share, 0)}% in {name}"
                 if has(lab, share) else f"{lab} answers {val(lab, answered, 0)}% (no answer to score)"
                 for lab in ("vanilla", "CIT", "MCL", "AFP") if lab in f.index]
        lines.append(f"- **Answer language, {direction.upper().replace('->', '→')}** (`Answer in {name}:` after a "
                     f"held-out sentence; an answer without letters counts as no answer): " + "; ".join(parts) + ".")
    return "\n".join(lines)


def five_task_scores(records, by=("model",)):
    """The paper's "average over the 5 EN-ZH datasets" per (by..., training seed, eval seed)."""
    from .analysis.records import seed_scores
    icl = records[records["task"] != "flores"]
    return seed_scores(icl, by=(*by, "train_seed"), tasks=sorted(icl["task"].unique()),
                       languages=("en", "zh"), shots=tuple(sorted(icl["shots"].unique())))


def headline(records, findings=None) -> dict:
    """Metrics for DVC: mean ICL accuracy per model and shot count, BLEU per model, probe results."""
    icl = records[(records["task"] != "flores") & (records["metric"] == "acc")]
    out = {"icl_accuracy": {f"{m} {s}-shot": round(float(v), 3)
                            for (m, s), v in icl.groupby(["model", "shots"])["value"].mean().items()}}
    bleu = records[(records["task"] == "flores") & (records["metric"] == "bleu")]
    if len(bleu):
        out["bleu"] = {m: round(float(v), 3) for m, v in bleu.groupby("model")["value"].mean().items()}
    if findings is not None:
        out["probes"] = {lab: {k: None if v != v else round(float(v), 4) for k, v in row.items()}  # NaN: not measured
                         for lab, row in findings.iterrows()}
    return out


def trainable_languages(profile: str) -> list[str]:
    """Languages with training pairs in the profile's parallel sources (and a name for CIT prompts)."""
    from .cit import LANGUAGE_NAMES
    from .paths import mirror_root
    from .trainer import load_train_config
    cfg = load_train_config(profile)
    root = mirror_root()
    if root is None or "opus100" in cfg.data.sources:  # the hub recipe: Bactrian-X's languages (paper Table 21)
        from .plan.facts import BACTRIAN_X_LANGS
        return sorted(set(BACTRIAN_X_LANGS) - {cfg.data.pivot})
    found = set()
    for source in cfg.data.sources:
        found |= {p.stem.split("-", 1)[1] for p in (root / "parallel" / source).glob(f"{cfg.data.pivot}-*.jsonl")}
    return sorted(found & set(LANGUAGE_NAMES) - {cfg.data.pivot})

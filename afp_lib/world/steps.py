"""The four steps of the world, each reading and writing the fixed places under `world_dir(profile)`, and
stamping its output with the fingerprint of the configuration that made it (see `ensure_world`)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..atomic import write_text
from ..paths import figures_dir, results_dir, runs_dir
from .layout import base_model, fingerprints, world_dir
from .config import WorldConfig

logger = logging.getLogger(__name__)


def _stamp(path: Path, fingerprint: str, seconds: float, timed: bool = True) -> dict:
    """Add the configuration's fingerprint (and the wall time, unless `timed` is False) to a step's json.
    The corpus and tokenizer folders are DVC dependencies of the committed mini models: a time in them would
    make every rebuild look changed and pretrain the models again, so their time goes to the log only."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(fingerprint=fingerprint)
    if timed:
        data.update(wall_seconds=round(seconds, 1))
    else:
        logger.info("%s: %.1f s", path.parent.name, seconds)
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False))
    return data


def corpus(profile: str, cfg: WorldConfig) -> dict:
    from .corpus import build_corpus
    t0, out = time.perf_counter(), world_dir(profile) / "corpus"
    build_corpus(cfg, out, cache_dir=runs_dir() / "world" / "_cache")
    return _stamp(out / "stats.json", fingerprints(cfg)["corpus"], time.perf_counter() - t0, timed=False)


def tokenizer(profile: str, cfg: WorldConfig) -> dict:
    from .bpe import build_tokenizer
    t0, root = time.perf_counter(), world_dir(profile)
    build_tokenizer(cfg, root / "corpus", root / "tokenizer")
    return _stamp(root / "tokenizer" / "token_stats.json", fingerprints(cfg)["tokenizer"], time.perf_counter() - t0,
                  timed=False)


def pretrain(profile: str, cfg: WorldConfig, arch: str) -> dict:
    from .pretrain import pretrain as run
    t0, root = time.perf_counter(), world_dir(profile)
    run(cfg, arch, root / "corpus", root / "tokenizer", root / arch, root / "ckpt" / arch)
    return _stamp(root / arch / "pretrain.json", fingerprints(cfg)["model"], time.perf_counter() - t0)


def diagnose(profile: str, cfg: WorldConfig) -> dict:
    """results/world/<profile>/diagnostic.json (summary, the DVC metric) and diagnostic_detail.json (every
    number), plus figures/world/<profile>/diagnostic.png."""
    import torch

    from ..models import load_model
    from .corpus import read_corpus
    from .diagnose import diagnose_model, figure, random_twin, tatoeba_pairs

    t0, d = time.perf_counter(), cfg.diagnose
    heldout = read_corpus(world_dir(profile) / "corpus", "heldout", cfg.languages) if cfg.languages else {}
    pairs = {lang: tatoeba_pairs(lang, d.pairs) for lang in d.langs}
    results = {"profile": profile, "layer": d.layer, "pooling": d.pooling, "models": {}}
    for arch in cfg.archs:
        model, tok = load_model(base_model(profile, arch))
        with torch.no_grad():
            r = diagnose_model(model.eval(), tok, cfg, heldout, pairs)
            r["random_init"] = diagnose_model(random_twin(model, tok, cfg, arch), tok, cfg, {}, pairs)
        results["models"][arch] = r
        _log(arch, r)
    results["wall_seconds"] = round(time.perf_counter() - t0, 1)
    out = results_dir("world") / profile
    write_text(out / "diagnostic_detail.json", json.dumps(results, indent=1))
    # the DVC metric: a handful of numbers per model (the detail file has everything else)
    write_text(out / "diagnostic.json", json.dumps({"profile": profile, "layer": d.layer, "pooling": d.pooling,
                                                    **summary(results)}, indent=1))
    figure(results, figures_dir("world") / profile / "diagnostic.png")
    return results


def summary(results: dict) -> dict:
    """The few numbers DVC shows: per model, per language perplexity and bits/byte, retrieval per script
    (vanilla and untrained), alignment per language."""
    out = {}
    for arch, r in results["models"].items():
        out[arch] = {
            "ppl": {l: round(v["perplexity"], 2) for l, v in r["heldout"].items()},
            "bits_per_byte": {l: round(v["bits_per_byte"], 3) for l, v in r["heldout"].items()},
            "retrieval_xx2en": {s: round(v["retrieval_xx2en"], 4) for s, v in r["tatoeba_by_script"].items()},
            "retrieval_xx2en_untrained": {s: round(v["retrieval_xx2en"], 4)
                                          for s, v in r["random_init"]["tatoeba_by_script"].items()},
            "alignment": {l: round(v["alignment"], 4) for l, v in r["tatoeba"].items()}}
    return out


def _log(arch: str, r: dict) -> None:
    for lang, v in r["heldout"].items():
        logger.info("%s %s: ppl %.1f, %.3f bits/byte, %.3f bits/char", arch, lang, v["perplexity"],
                    v["bits_per_byte"], v["bits_per_char"])
    for lang, v in r["tatoeba"].items():
        logger.info("%s tatoeba %s: xx->en %.3f en->xx %.3f (untrained %.3f), alignment %.3f, cos gap %.3f", arch,
                    lang, v["retrieval_xx2en"], v["retrieval_en2xx"],
                    r["random_init"]["tatoeba"][lang]["retrieval_xx2en"], v["alignment"], v["cos_gap"])

"""Probes of one section model (`Variant`): sentence representations of held-out bitext, alignment,
uniformity and retrieval (Tatoeba and the trainer's dev pairs), held-out perplexity, and the language a
model answers in. Each returns plain rows (dicts) that the findings tables (`analysis.findings`) summarise;
models come from `analysis.variants.load` (re-exported as `afp_lib.experiment.load`)."""
from __future__ import annotations

from .variants import load, train_config, train_log


def representations(v: Variant, profile: str, langs: list[str] | None = None, pivot: str = "en",
                    layer: int | None = None, n: int | None = None, overrides: dict | None = None):
    """Sentence representations of held-out bitext (analysis section: layer, pooling, source, n_pairs, or
    `n` pairs; `overrides`: a section's own `analysis` keys): {lang: (pivot_vectors, lang_vectors)}."""
    from .config import analysis_config
    from .representations import embed, sample_pairs
    cfg = analysis_config(profile, overrides={**(overrides or {}), **({} if layer is None else {"layer": layer})})
    model, tokenizer = load(v, profile)
    out = {}
    for lang in langs or cfg.languages:
        src, tgt = sample_pairs(lang, source=cfg.source, pivot=pivot, n=n or cfg.n_pairs, seed=cfg.tsne.seed)
        kw = dict(layer=cfg.layer, pooling=cfg.pooling, batch_size=cfg.batch_size, max_length=cfg.max_length)
        out[lang] = (embed(model, tokenizer, src, **kw), embed(model, tokenizer, tgt, **kw))
    return out


def stacked_representations(v: Variant, profile: str, langs: list[str], overrides: dict | None = None):
    """For t-SNE: (N, H) vectors of the English side (of the first pair) and every language, with each
    row's language; `analysis.tsne.n_sentences` pairs per language."""
    import torch

    from .config import analysis_config
    reps = representations(v, profile, langs, n=analysis_config(profile, overrides).tsne.n_sentences,
                           overrides=overrides)
    first = reps[langs[0]][0]
    parts, names = [first], ["en"] * len(first)
    for lang in langs:
        parts.append(reps[lang][1])
        names += [lang] * len(reps[lang][1])
    return torch.cat(parts), names


def probe(v: Variant, profile: str, langs: list[str] | None = None, layer: int | None = None,
          overrides: dict | None = None) -> list[dict]:
    """Alignment probes of `v`: alignment, uniformity and bitext retrieval (%) per language pair."""
    from ..metrics import alignment, retrieval_hits, uniformity
    import torch
    rows = []
    base = {"model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
            "train_seed": v.seed, **v.meta}
    for lang, (h_en, h_xx) in representations(v, profile, langs, layer=layer, overrides=overrides).items():
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

    from .intervals import bernoulli
    from ..trainer import build_train_data
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
    from ..metrics import alignment, retrieval_hits, uniformity
    from .representations import embed
    model, tokenizer = load(v, profile)
    kw = dict(layer=cfg.mcl.layer, pooling=cfg.mcl.pooling, max_length=cfg.seq_len)
    src = embed(model, tokenizer, [p["src"] for p in dev], **kw)
    tgt = embed(model, tokenizer, [p["tgt"] for p in dev], **kw)
    return {"align": alignment(src, tgt), "uniform": uniformity(torch.cat([src, tgt])),
            "hits": retrieval_hits(src, tgt).numpy()}


def step0(v: Variant, profile: str, run: Variant) -> dict:
    """Fig. 3c's common origin: the vanilla model `v` on the dev pairs of aligned `run`, as a training-log
    point at step 0 (retrieval as a rate, like the trainer logs it)."""
    from ..trainer import build_train_data
    cfg = train_config(run, profile)
    m = _dev_metrics(v, profile, cfg, build_train_data(cfg).dev_pairs)
    return {"step": 0, "align": m["align"], "uniform": m["uniform"], "retrieval": float(m["hits"].mean())}


def _heldout(profile: str, langs: list[str]) -> dict[str, list[str]]:
    """The world's held-out monolingual text per language (never trained on: not in pretraining, not in pairs)."""
    from ..world import world_dir
    from ..world.corpus import read_corpus
    return read_corpus(world_dir(profile) / "corpus", "heldout", langs)


def perplexity(v: Variant, profile: str, langs: list[str]) -> list[dict]:
    """Held-out perplexity and bits per byte of the world's held-out monolingual text (what MCL alone harms)."""
    from ..world.diagnose import heldout_perplexity
    model, tokenizer = load(v, profile)
    return [{"model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
             "train_seed": v.seed, "language": lang, **heldout_perplexity(model, tokenizer, lines)}
            for lang, lines in _heldout(profile, langs).items()]


def model_parts(model) -> list[str]:
    """The parts `restore_part` can put back: "embeddings", then "block 1" .. "block n" (block k's output is
    hidden_states[k], so "block 1" is the block MCL aligns at its default layer)."""
    from ..hidden import decoder_layers
    return ["embeddings"] + [f"block {k}" for k in range(1, len(decoder_layers(model)) + 1)]


def restore_part(model, vanilla, part: str):
    """A copy of `model` with one part's weights put back from `vanilla` (the same architecture); `model` is
    not changed. "embeddings" is the token embedding matrix: XGLM and BLOOM tie it to the output layer, so
    both come back together (a model with an untied output layer keeps its own)."""
    import copy

    from ..hidden import decoder_layers
    if part not in model_parts(model):
        raise ValueError(f"part={part!r} is not one of {model_parts(model)}")
    out = copy.deepcopy(model)
    if part == "embeddings":
        out.get_input_embeddings().load_state_dict(vanilla.get_input_embeddings().state_dict())
    else:
        k = int(part.split()[1]) - 1
        decoder_layers(out)[k].load_state_dict(decoder_layers(vanilla)[k].state_dict())
    return out


def restored_perplexity(v: Variant, vanilla: Variant, profile: str, langs: list[str],
                        bottom: int | None = None) -> list[dict]:
    """Where an aligned model's perplexity cost lives: held-out perplexity of `v` as trained ("(none)") and
    with each part in turn put back from `vanilla` (`restore_part`). The paper (Table 8) explains MCL's harm
    to in-context learning by the bottom layer it aligns changing what the top layers predict from: if so,
    restoring the aligned block brings the perplexity back towards the vanilla model's, and the others do not.
    `bottom`: only the embeddings, the first `bottom` blocks and the top block (a deep model's 18 copies cost
    minutes each on a CPU); None: every part."""
    from ..world.diagnose import heldout_perplexity
    model, tokenizer = load(v, profile)
    base, _ = load(vanilla, profile)
    heldout = _heldout(profile, langs)
    rows = []
    parts = model_parts(model)
    if bottom is not None:
        parts = list(dict.fromkeys(parts[:bottom + 1] + parts[-1:]))
    for part in ["(none)", *parts]:
        m = model if part == "(none)" else restore_part(model, base, part)
        rows += [{"model": v.display(profile), "run": v.name(profile), "label": v.label, "arch": v.arch,
                  "train_seed": v.seed, "restored": part, "language": lang,
                  "perplexity": heldout_perplexity(m, tokenizer, lines)["perplexity"]}
                 for lang, lines in heldout.items()]
    return rows


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
    from .representations import sample_pairs
    from ..cit import answer_prompt
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

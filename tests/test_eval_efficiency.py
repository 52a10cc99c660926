"""Evaluation that uses the GPUs (issue 25, item 7): generation batched by cached positions, finished rows
leaving their batch, gives exactly the greedy outputs of one prompt at a time and of the old fixed batches
of 16; 0-shot FLORES and 0-shot ICL are computed once for all seeds (in one call and across calls through
the cell cache); bf16 weights are chosen for CUDA evaluation only."""
import copy
import functools

import pytest
import torch

import afp_lib.eval.icl as icl
import afp_lib.eval.translation as translation
from afp_lib.eval import evaluate, translate_eval
from afp_lib.eval.requests import build_prefix, encode
from afp_lib.eval.runner import CellStore, eval_dtype, read_cell
from afp_lib.eval.scorer import batches
from afp_lib.eval.translation import greedy_generate, greedy_reference
from conftest import PAPER_ARCHS
from test_eval_runner import small_mirror  # noqa: F401  (fixture)

TEXTS = ["English: The cat sat. = Chinese:", "English: A dog runs in the park, we need ten more = Chinese:", "Kedi:",
         "English: We need at least ten countries to join us before the end of the year. = Chinese:",
         "English: Hi. = Chinese:", "Paka alikaa juu ya mkeka.", "English: It rains. = Turkish:"]
NEW = 8


def _lively(model):
    """A copy with larger random weights: the tiny models' greedy output is one token repeated, which would
    make any two decoders agree; these continuations vary from step to step and from prompt to prompt."""
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:   # matrices and embeddings; norms keep their ones
                p.copy_(torch.randn(p.shape, generator=g))
    return model.eval()


def _stop_token(free: list[list[int]]) -> frozenset[int]:
    """A token that ends some rows early, at different steps, while another row runs to max_new_tokens."""
    for t in sorted({x for row in free for x in row}):
        first = [row.index(t) if t in row else NEW for row in free]
        if min(first) < NEW and NEW in first and len(set(first)) > 2:
            return frozenset({t})
    pytest.fail(f"no token of {free} stops the rows at different steps")


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_token_batched_generation_equals_one_prompt_at_a_time(tiny_models, toy_tokenizer, arch):
    tok, model = toy_tokenizer, _lively(tiny_models[arch])
    prompts = encode(tok, TEXTS)
    prefix = build_prefix(tok, ["English: We need at least ten countries. = Chinese: 我们需要至少十个国家。"])
    # stop tokens that end some rows early and at different steps, so finished rows really leave a batch
    free = [greedy_reference(model, list(prefix) + p, frozenset(), NEW) for p in prompts]
    stop = _stop_token(free)
    ref = [greedy_reference(model, list(prefix) + p, stop, NEW) for p in prompts]
    lengths = sorted(map(len, ref))
    assert lengths[0] < NEW and lengths[-1] == NEW and len(set(lengths)) > 1, "the rows should stop at different steps"
    one = greedy_generate(model, prefix, prompts, stop, NEW, batch_size=1)
    old = greedy_generate(model, prefix, prompts, stop, NEW, batch_size=16, drop_finished=False)   # today's path
    assert one == ref and old == ref
    row = len(prefix) + max(map(len, prompts)) + NEW
    for budget in (2 * row, 4 * row, 10**6):
        cut = batches(sorted(map(len, prompts), reverse=True), len(prefix) + NEW, 64, budget)
        assert sorted(sum(cut, [])) == list(range(len(prompts))) and max(map(len, cut)) == min(budget // row, 7)
        for drop in (True, False):
            assert greedy_generate(model, prefix, prompts, stop, NEW, 64, max_tokens=budget, drop_finished=drop) == ref


def test_finished_rows_leave_the_batch(tiny_models, toy_tokenizer, monkeypatch):
    """The forward of a step runs only the rows that have not stopped."""
    tok, model = toy_tokenizer, _lively(tiny_models["xglm"])
    prompts, prefix = encode(tok, TEXTS), build_prefix(tok, [])
    free = [greedy_reference(model, list(prefix) + p, frozenset(), NEW) for p in prompts]
    stop = _stop_token(free)
    ref = [greedy_reference(model, list(prefix) + p, stop, NEW) for p in prompts]
    rows, real = [], type(model).forward

    @functools.wraps(real)   # keeps the signature: greedy_generate passes position_ids by it
    def counting(self, *a, **k):
        rows.append(k["input_ids"].shape[0])
        return real(self, *a, **k)
    monkeypatch.setattr(type(model), "forward", counting)
    assert greedy_generate(model, prefix, prompts, stop, NEW, batch_size=64) == ref
    # the prefix, then step 0 with every row, then step s with the rows that generated >= s tokens
    live = [sum(len(r) >= s for r in ref) for s in range(1, NEW)]
    assert rows == [1, len(prompts)] + [n for n in live if n]
    assert any(n < len(prompts) for n in rows[2:])


def test_flores_zero_shot_is_generated_once_for_every_seed(small_mirror, tiny_models, toy_tokenizer, tmp_path,  # noqa: F811
                                                           monkeypatch):
    calls = []
    real = translation.greedy_generate
    monkeypatch.setattr(translation, "greedy_generate", lambda m, prefix, *a, **k: calls.append(len(prefix))
                        or real(m, prefix, *a, **k))
    kw = dict(max_items=3, model_name="tiny", max_new_tokens=4, progress=False)
    recs = translate_eval(tiny_models["bloom"], toy_tokenizer, ["en-zh"], shots=[0, 1], seeds=[0, 1, 2], **kw)
    assert len(calls) == 1 + 3                                   # 0-shot once, 1-shot per seed
    zero = {r["seed"]: (r["metric"], r["value"], r.get("bleu_stats")) for r in recs if r["shots"] == 0 and r["metric"] == "bleu"}
    assert sorted(zero) == [0, 1, 2] and zero[0] == zero[1] == zero[2]
    assert len(recs) == 2 * 3 * 2                                # shots x seeds x metrics

    # through the cell cache (what `evaluate --plan` and the notebooks use): seed 0 on file serves seeds 1, 2
    store = CellStore("tiny", {"bf16": False, "max_new_tokens": 4}, root=tmp_path)
    first = translate_eval(tiny_models["bloom"], toy_tokenizer, ["en-zh"], shots=[0], seeds=[0], out_file=store, **kw)
    calls.clear()
    more = translate_eval(tiny_models["bloom"], toy_tokenizer, ["en-zh"], shots=[0], seeds=[0, 1, 2], out_file=store, **kw)
    assert calls == [] and [r["value"] for r in more] == [r["value"] for r in first] * 3
    assert all(read_cell(store.cell({**first[0], "seed": s}), tmp_path) for s in (1, 2))


def test_icl_zero_shot_is_scored_once_for_every_seed(small_mirror, tiny_models, toy_tokenizer, tmp_path,  # noqa: F811
                                                     monkeypatch):
    calls = []
    real = icl.loglikelihood
    monkeypatch.setattr(icl, "loglikelihood", lambda m, reqs, **k: calls.append(len(reqs)) or real(m, reqs, **k))
    kw = dict(max_items=4, model_name="tiny", progress=False)
    recs = evaluate(tiny_models["xglm"], toy_tokenizer, ["xcopa"], ["zh"], shots=[0], seeds=[0, 1, 2], **kw)
    assert len(calls) == 1 and {r["seed"] for r in recs} == {0, 1, 2}
    store = CellStore("tiny", {"bf16": False}, root=tmp_path)
    evaluate(tiny_models["xglm"], toy_tokenizer, ["xcopa"], ["zh"], shots=[0], seeds=[1], out_file=store, **kw)
    calls.clear()
    again = evaluate(tiny_models["xglm"], toy_tokenizer, ["xcopa"], ["zh"], shots=[0], seeds=[0, 1, 2],
                     out_file=store, **kw)
    assert calls == [] and {r["seed"] for r in again} == {0, 1, 2}
    assert [r["value"] for r in again if r["seed"] == 2] == [r["value"] for r in recs if r["seed"] == 2]


def test_bf16_weights_only_for_cuda_evaluation(monkeypatch):
    import afp_lib.devices as devices
    assert eval_dtype(True, "cpu") == eval_dtype(False, "cpu") == torch.float32   # the CPU keeps today's weights
    monkeypatch.setattr(devices, "resolve_device", lambda spec="auto": torch.device("cuda", 0))
    assert eval_dtype(True, "auto") == torch.bfloat16 and eval_dtype(False, "auto") == torch.float32

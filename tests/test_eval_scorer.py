"""The cached scorer equals brute force (one full forward per filled sequence), with and without a
demonstration prefix; greedy generation with the cached prefix equals uncached greedy decoding."""
import pytest
import torch

from afp_lib.eval.prompts import Example, join_demonstrations
from afp_lib.eval.requests import build_prefix, build_requests, encode, encode_examples, start_ids
from afp_lib.eval.scorer import loglikelihood, loglikelihood_reference
from afp_lib.eval.translation import greedy_generate, greedy_reference
from conftest import PAPER_ARCHS

EXAMPLES = [
    Example(tuple(f"We need at least ten countries, right? {w}, The cat sat on the mat." for w in ("Yes", "Also", "No")), 0),
    Example(("猫坐在垫子上。", "一只狗在公园里跑。"), 1),                  # differ at the first token
    Example(("A dog runs", "A dog runs in the park."), 1),                # one candidate is a prefix of the other
    Example(tuple("Kedi paspasın üzerine _ oturdu.".replace("_", w) for w in ("Bir", "köpek")), 0),
]
DEMOS = ["We need at least ten countries to join us., right? Yes, A dog runs in the park.", "猫坐在垫子上。 Mbwa anakimbia."]


@pytest.mark.parametrize("arch", PAPER_ARCHS)
@pytest.mark.parametrize("demos", [[], DEMOS], ids=["0-shot", "2-shot"])
def test_cached_scorer_equals_brute_force(tiny_models, toy_tokenizer, arch, demos):
    model = tiny_models[arch]
    items = encode_examples(toy_tokenizer, EXAMPLES)
    reqs = build_requests(items, build_prefix(toy_tokenizer, demos))
    got = loglikelihood(model, reqs, batch_size=3)
    ref = loglikelihood_reference(model, reqs)
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-4
    assert got == pytest.approx(loglikelihood(model, reqs, batch_size=1), abs=1e-4)   # batching changes nothing


def test_per_item_prefixes_equal_brute_force(tiny_models, toy_tokenizer):
    items = encode_examples(toy_tokenizer, EXAMPLES)
    prefixes = [build_prefix(toy_tokenizer, DEMOS[:i % 3]) for i in range(len(items))]   # semantic demos: one each
    reqs = build_requests(items, prefixes)
    got, ref = loglikelihood(tiny_models["xglm"], reqs), loglikelihood_reference(tiny_models["xglm"], reqs)
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-4


def test_scoring_starts_where_candidates_differ(toy_tokenizer):
    items = encode_examples(toy_tokenizer, EXAMPLES)
    first = items[0]
    # everything before the label is context; the label is the first scored token
    assert toy_tokenizer.decode(first.candidates[0][:first.start]).rstrip() == "We need at least ten countries, right?"
    assert len({c[first.start] for c in first.candidates}) == 3
    assert first.candidates[0][-3:] == first.candidates[2][-3:]         # the shared suffix is scored too
    assert items[1].start == 0
    assert items[2].start == len(items[2].candidates[0]) - 1            # never an empty scored span


def test_token_prefix_equals_tokenizing_the_joined_text(toy_tokenizer):
    tok = toy_tokenizer
    query = EXAMPLES[0].candidates[0]
    joined = join_demonstrations(DEMOS, query, tok.eos_token)
    ids = list(build_prefix(tok, DEMOS)) + encode(tok, [query])[0]
    assert ids == tok(joined)["input_ids"]
    assert start_ids(tok) == [tok.bos_token_id]
    assert build_prefix(tok, DEMOS).count(tok.eos_token_id) == len(DEMOS)


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_greedy_generation_with_cached_prefix_equals_brute_force(tiny_models, toy_tokenizer, arch):
    tok, model = toy_tokenizer, tiny_models[arch]
    torch.manual_seed(0)
    prompts = encode(tok, ["English: The cat sat. = Chinese:", "English: A dog runs in the park, we need ten = Chinese:",
                           "Kedi:"])
    stop = frozenset({tok.eos_token_id})
    for demos in ([], ["English: We need at least ten countries. = Chinese: 我们需要至少十个国家。"]):
        prefix = build_prefix(tok, demos)
        got = greedy_generate(model, prefix, prompts, stop, max_new_tokens=6, batch_size=3)
        assert got == [greedy_reference(model, list(prefix) + p, stop, 6) for p in prompts]


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_token_bounded_batches_and_prefix_reuse_equal_unbatched_scoring(tiny_models, toy_tokenizer, arch):
    """Batches cut by attended tokens (1 to 4 rows here) and one prefix cache shared by every row give the
    log-likelihoods of brute-force unbatched scoring, within 1e-5 in fp32."""
    from afp_lib.eval.scorer import batches
    model = tiny_models[arch]
    items = encode_examples(toy_tokenizer, EXAMPLES * 3)
    prefix = build_prefix(toy_tokenizer, DEMOS)
    reqs = build_requests(items, prefix)
    lengths = sorted((len(r.tokens) for r in reqs), reverse=True)
    cut = batches(lengths, len(prefix), 32, 4 * (len(prefix) + lengths[-1]))
    assert len(cut) > 1 and 1 < max(map(len, cut)) <= 4 and sorted(sum(cut, [])) == list(range(len(reqs)))
    assert all(len(b) * (len(prefix) + lengths[b[0]]) <= 4 * (len(prefix) + lengths[-1]) or len(b) == 1 for b in cut)
    got = loglikelihood(model, reqs, batch_size=32, max_tokens=4 * (len(prefix) + lengths[-1]))
    ref = loglikelihood_reference(model, reqs)
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-5
    assert got == pytest.approx(loglikelihood(model, reqs, batch_size=len(reqs)), abs=1e-5)

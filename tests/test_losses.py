"""MCL (Eq. 2) and the response-only LM loss (Eq. 3) against values computed by hand."""
import math
import os

import pytest
import torch

from afp_lib.losses import IGNORE, gather_rows, lm_loss, mcl_loss
from afp_lib.families import FAMILIES
from conftest import PAPER_ARCHS


def _ce(logits, label):  # -log softmax(logits)[label], by hand
    return -(logits[label] - math.log(sum(math.exp(v) for v in logits)))


def test_mcl_two_by_two_by_hand():
    h_src = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h_tgt = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # cosines: [[1, 1/sqrt2], [0, 1/sqrt2]]
    r = 1 / math.sqrt(2)
    one_way = 0.5 * (_ce([1, r], 0) + _ce([0, r], 1))
    other_way = 0.5 * (_ce([1, 0], 0) + _ce([r, r], 1))  # columns of the cosine matrix
    assert mcl_loss(h_src, h_tgt, temperature=1.0, symmetric=False).item() == pytest.approx(one_way, abs=1e-6)
    assert mcl_loss(h_src, h_tgt, temperature=1.0, symmetric=True).item() == pytest.approx(
        0.5 * (one_way + other_way), abs=1e-6)
    tau = 0.05
    scaled = 0.5 * (_ce([1 / tau, r / tau], 0) + _ce([0, r / tau], 1))
    assert mcl_loss(h_src, h_tgt, temperature=tau, symmetric=False).item() == pytest.approx(scaled, rel=1e-5)


def test_mcl_limits_and_invariances():
    eye = torch.eye(4)
    assert mcl_loss(eye, 3 * eye, temperature=0.05).item() < 1e-6  # identical, orthogonal pairs
    x = torch.randn(8, 16)
    assert mcl_loss(x, torch.randn(8, 16), temperature=1e6).item() == pytest.approx(math.log(8), rel=1e-4)
    y = torch.randn(8, 16)
    perm = torch.randperm(8)
    assert mcl_loss(x[perm], y[perm]).item() == pytest.approx(mcl_loss(x, y).item(), rel=1e-5)


def test_mcl_gradient_reaches_both_sides():
    x, y = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    mcl_loss(x, y).backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


def test_mcl_shape_error():
    with pytest.raises(ValueError, match="one shape"):
        mcl_loss(torch.randn(4, 8), torch.randn(3, 8))


def test_lm_loss_only_on_labelled_tokens_by_hand():
    logits = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [0.5, 0.5]]])  # (1, 3, V=2)
    labels = torch.tensor([[IGNORE, 1, 0]])  # position 0 is prompt: predicted labels at t=1, 2
    want = 0.5 * (_ce([0.0, 1.0], 1) + _ce([2.0, 0.0], 0))
    assert lm_loss(logits, labels).item() == pytest.approx(want, abs=1e-6)
    masked = torch.tensor([[IGNORE, IGNORE, 0]])
    assert lm_loss(logits, masked).item() == pytest.approx(_ce([2.0, 0.0], 0), abs=1e-6)
    with pytest.raises(ValueError, match="no labelled token"):
        lm_loss(logits, torch.full((1, 3), IGNORE))


def test_gather_is_identity_without_process_group():
    x = torch.randn(3, 4)
    for mode in ("grad", "local_grad", "off"):
        out, offset = gather_rows(x, mode)
        assert out is x and offset == 0


def _rank_loss(rank, world, port, x, y, queue):
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    b = x.size(0) // world
    xs = x[rank * b:(rank + 1) * b].clone().requires_grad_(True)
    loss = mcl_loss(xs, y[rank * b:(rank + 1) * b], temperature=0.1, gather="local_grad")
    loss.backward()
    queue.put((rank, loss.item(), xs.grad.tolist()))
    dist.barrier()  # keep both processes alive until both results are sent
    dist.destroy_process_group()


def _local_reference(x, y, rank, b, tau):
    """Rank `rank`'s loss by hand: its anchors against every row, only its own rows carrying gradient."""
    import torch.nn.functional as F
    xs = x[rank * b:(rank + 1) * b].clone().requires_grad_(True)
    x_all = torch.cat([xs if r == rank else x[r * b:(r + 1) * b] for r in range(x.size(0) // b)])
    nx, ny = F.normalize(x_all, dim=-1), F.normalize(y, dim=-1)
    rows = slice(rank * b, (rank + 1) * b)
    labels = torch.arange(b) + rank * b
    loss = 0.5 * (F.cross_entropy(nx[rows] @ ny.T / tau, labels) + F.cross_entropy(ny[rows] @ nx.T / tau, labels))
    loss.backward()
    return loss.item(), xs.grad


@pytest.mark.multiprocess
def test_mcl_local_grad_variant_across_two_ranks():
    """The authors' variant (`gather="local_grad"`): each rank's anchors see the other rank's rows as
    negatives; the mean of the rank losses is the whole-batch loss, and each rank's gradient flows through
    its own rows only (SimCSE-style). The exact variant is tested in test_trainer_dist.py."""
    import torch.multiprocessing as mp
    x, y = torch.randn(6, 8), torch.randn(6, 8)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29000 + os.getpid() % 1000
    procs = [ctx.Process(target=_rank_loss, args=(r, 2, port, x, y, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert sum(r[1] for r in results) / 2 == pytest.approx(mcl_loss(x, y, temperature=0.1).item(), rel=1e-5)
    for rank, loss, grad in results:
        ref_loss, ref_grad = _local_reference(x, y, rank, 3, 0.1)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert torch.allclose(torch.tensor(grad), ref_grad, atol=1e-5)


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_cit_loss_equals_full_logits_loss(arch, tiny_models, toy_tokenizer):
    """The response-only LM head gives the loss of the model's own full logits."""
    from afp_lib.losses import cit_loss
    model = tiny_models[arch]
    ids = torch.tensor(toy_tokenizer(["The cat sat on the mat.", "猫坐在垫子上。 Answer in English: The cat"],
                                     padding=True)["input_ids"])
    mask = (ids != toy_tokenizer.pad_token_id).long()
    labels = ids.masked_fill(mask == 0, IGNORE)
    labels[:, :4] = IGNORE  # a prompt
    with torch.no_grad():
        want = lm_loss(model(input_ids=ids, attention_mask=mask).logits, labels)
        assert cit_loss(model, ids, mask, labels).item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_chunked_lm_head_equals_one_shot_loss_and_gradients(arch, toy_tokenizer, tiny_shape):
    """The chunked LM head + CE (chunk logits recomputed in backward) gives the one-shot loss and the same
    gradient on every parameter, the tied/untied head included, for chunks that divide the token count, that
    do not, of one token and larger than it (fp32, dropout 0)."""
    from afp_lib.losses import cit_loss
    from afp_lib.models import build_model
    model = build_model(arch, tiny_shape, toy_tokenizer, seed=0).train()
    ids = torch.tensor(toy_tokenizer(["The cat sat on the mat. A dog runs in the park.", "猫坐在垫子上。 Answer in English: The cat",
                                      "Kedi paspasın üzerine oturdu."], padding=True)["input_ids"])
    mask = (ids != toy_tokenizer.pad_token_id).long()
    labels = ids.masked_fill(mask == 0, IGNORE)
    labels[:, :3] = IGNORE  # a prompt
    n = int((labels[:, 1:] != IGNORE).sum())

    def loss_and_grads(chunk):
        model.zero_grad(set_to_none=True)
        loss = cit_loss(model, ids, mask, labels, chunk=chunk)
        loss.backward()
        return loss.item(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    want, want_grads = loss_and_grads(0)
    assert n > 8 and want_grads
    for chunk in (1, 4, n // 2, n - 1, 7 if n % 7 else 5, n + 3):
        got, grads = loss_and_grads(chunk)
        assert got == pytest.approx(want, rel=1e-6), chunk
        assert grads.keys() == want_grads.keys()
        for k, g in grads.items():
            assert torch.allclose(g, want_grads[k], rtol=1e-5, atol=1e-7), (chunk, k)


def test_chunked_lm_head_keeps_one_chunk_of_logits_for_backward(tiny_models, toy_tokenizer):
    """What autograd keeps for the backward pass: the one-shot head keeps (N, V) fp32 log-probabilities, the
    chunked head none of that size (only the chunk inputs); counted with saved-tensor hooks."""
    from afp_lib.losses import response_logits_loss
    model = tiny_models["xglm"]
    vocab = model.get_output_embeddings().weight.size(0)
    hidden = torch.randn(2, 40, model.config.hidden_size, requires_grad=True)
    labels = torch.randint(0, vocab, (2, 40))

    def largest_saved(chunk):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            response_logits_loss(model, hidden, labels, chunk)
        return max(sizes)

    n = 2 * 39
    assert largest_saved(0) >= n * vocab
    assert largest_saved(8) < 8 * vocab + n * model.config.hidden_size

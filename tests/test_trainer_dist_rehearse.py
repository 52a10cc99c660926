"""The rehearsal's architectures are the published ones (parameter counts on the meta device, no memory),
and its synthetic rows have the layout the shared AFP step relies on."""
import pytest
import torch

from afp_lib.trainer.rehearse import build, synthetic_rows


@pytest.mark.parametrize("arch, millions", [("xglm-564M", 564), ("bloom-560m", 559), ("llama-7b", 6738)])
def test_real_shapes(arch, millions):
    with torch.device("meta"):
        model = build(arch)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == millions


def test_synthetic_rows_put_the_source_first():
    pairs, cit = synthetic_rows(5, vocab=1000, seq_len=64)
    for (src, tgt), (ids, labels) in zip(pairs, cit):
        assert ids[:len(src)] == src and len(ids) == len(labels) <= 64
        assert all(x == -100 for x in labels[:len(src)]) and labels[-1] != -100
        assert 16 <= len(src) <= 32 and 16 <= len(tgt) <= 32


def test_cut_vocabulary_and_build_device():
    with torch.device("meta"):
        full = build("xglm-564M", layers=1)
    cut = build("xglm-564M", layers=1, vocab=512, device=torch.device("meta"))
    assert cut.config.vocab_size == 512 and next(cut.parameters()).device.type == "meta"
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(full) - n(cut) == (256008 - 512) * 1024  # tied embedding and LM head


@pytest.mark.slow
def test_rehearse_writes_its_numbers_and_honours_gradient_checkpointing(tmp_path, monkeypatch):
    """The command the GPU script runs, on a cut-down model in one CPU process: the JSON it leaves holds what
    the README's plan needs, and train.gradient_checkpointing reaches the model as in the trainer."""
    import json

    from afp_lib import models
    from afp_lib.trainer import rehearse
    seen = []
    real = models.set_gradient_checkpointing
    monkeypatch.setattr(models, "set_gradient_checkpointing", lambda m, on: (seen.append(on), real(m, on)))
    out = tmp_path / "r.json"
    assert rehearse.main(["--arch", "xglm-564M", "--layers", "1", "--vocab", "512", "--steps", "2", "backend=torch",
                          "--json", str(out), "device=cpu", "precision=fp32", "batch_size=2", "seq_len=16",
                          "gradient_checkpointing=true"]) == 0
    r = json.loads(out.read_text())
    (run,) = r["runs"]
    assert seen == [True] and run["gradient_checkpointing"] is True
    assert (r["arch"], run["layers"], r["vocab_cut_to"], r["batch_size_per_rank"], r["seq_len"]) == \
        ("xglm-564M", 1, 512, 2, 16)
    assert r["backend"] == "torch" and run["optimizer"] == "torch AdamW" and run["precision"] == "fp32"
    assert run["packed"] is True                                   # the paper profile's CIT path
    assert len(run["step_seconds"]) == 2 and run["tokens_per_s"] > 0 and run["peak_allocated_gib"] > 0
    assert run["embedding_params"] == 512 * 1024                   # tied embedding and LM head, counted once
    assert run["mfu_nonembedding"] is None  # no GPU: no utilisation claimed

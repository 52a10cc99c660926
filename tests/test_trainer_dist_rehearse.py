"""The rehearsal's architectures are the published ones (parameter counts on the meta device, no memory),
and its synthetic rows have the layout the shared AFP step relies on."""
import pytest
import torch

from afp_lib.trainer.rehearse import build, synthetic_rows


@pytest.mark.parametrize("arch, millions", [("xglm-564M", 564), ("bloom-560m", 559), ("llama-7B", 6738)])
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

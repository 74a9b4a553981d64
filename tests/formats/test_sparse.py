"""Sparse storage of pruned matrices: bitwise-exact round trip, the size the formula says, clear errors."""

from __future__ import annotations

import math

import pytest
import safetensors
import torch
from torch import nn

import lstmkit
from lstmkit.compress.prune import apply_masks, magnitude_masks
from lstmkit.formats import file_format, integrity, load_weights, sparse
from lstmkit.models import SequenceModel
from lstmkit.train import ModelConfig


def pruned_model(sparsity: float, *, tie: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=40, hidden_size=24, num_layers=2, embedding_dim=24 if tie else 12,
                      tie_weights=tie, dropout=0.0)  # fmt: skip
    model = SequenceModel(cfg)
    apply_masks(model, magnitude_masks(model, sparsity))
    return model


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def tensor_bytes(path) -> int:
    with safetensors.safe_open(str(path), framework="pt") as f:
        return sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys())  # noqa: SIM118


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_is_bitwise_exact(tmp_path, sparsity, tie):
    model = pruned_model(sparsity, tie=tie)
    with torch.no_grad():  # a kept -0.0 and a subnormal must come back with the same bits
        model.rnn.weight_hh_l0[0, 0] = -0.0
        model.rnn.weight_hh_l0[0, 1] = 1e-40
    path = tmp_path / "m.safetensors"
    sparse.save_sparse(model, path)
    assert file_format(path) == sparse.FORMAT
    fresh = SequenceModel(model.config)
    load_weights(fresh, path)
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(bits(a), bits(b)), name
    assert bits(fresh.rnn.weight_hh_l0)[0, 0] == bits(torch.tensor(-0.0))
    if tie:
        assert fresh.head.weight is fresh.embedding.weight  # still one tensor after loading


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_file_shrinks_by_the_formula(tmp_path, sparsity):
    model = pruned_model(sparsity)
    sparse_path, dense_path = tmp_path / "s.safetensors", tmp_path / "d.safetensors"
    chosen = sparse.save_sparse(model, sparse_path)
    integrity.save_model_file(model, dense_path)
    state = model.state_dict()
    # Each sparse matrix: 4 nnz + ceil(n / 8) bytes; nnz = n - round(s n) (layer scope prunes exactly).
    for name, size in chosen.items():
        n = state[name].numel()
        assert size == 4 * (n - round(sparsity * n)) + math.ceil(n / 8)
    dense_tensors = sum(t.numel() * 4 for t in state.values())
    want = dense_tensors - sum(4 * state[n].numel() for n in chosen) + sum(chosen.values())
    assert tensor_bytes(sparse_path) == want
    ratio = tensor_bytes(dense_path) / tensor_bytes(sparse_path)
    matrices = sum(state[n].numel() for n in chosen) / sum(t.numel() for t in state.values())
    # the matrices shrink 1 / ((1 - s) + 1/32); vectors (biases) stay
    expected = 1 / (matrices * ((1 - sparsity) + 1 / 32) + (1 - matrices))
    assert ratio == pytest.approx(expected, rel=0.01)
    assert sparse_path.stat().st_size < dense_path.stat().st_size


def test_only_matrices_that_shrink_are_stored_sparse(tmp_path):
    model = pruned_model(0.5)
    with torch.no_grad():
        model.head.weight.normal_()  # no zeros: dense is smaller
    chosen = sparse.save_sparse(model, tmp_path / "m.safetensors")
    assert "head.weight" not in chosen and "rnn.weight_hh_l0" in chosen
    with pytest.raises(ValueError, match="no weight matrix of the model is sparse enough"):
        sparse.save_sparse(SequenceModel(model.config), tmp_path / "dense.safetensors")


def test_a_flipped_byte_or_a_mismatched_model_is_refused(tmp_path):
    model = pruned_model(0.9)
    path = tmp_path / "m.safetensors"
    sparse.save_sparse(model, path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(integrity.WeightsError, match="SHA-256 does not match"):
        load_weights(SequenceModel(model.config), bad)
    other = SequenceModel(ModelConfig(vocab_size=40, hidden_size=16, num_layers=2, embedding_dim=12))
    with pytest.raises(ValueError, match=r"does not match the model: .*rnn.weight_hh_l0 \[96, 24\] \(the model: "):
        load_weights(other, path)


def test_parts_that_do_not_fit_each_other_are_named(tmp_path):
    w = torch.zeros(6, 5)
    w[0, 1], w[3, 4] = 1.5, -2.0
    values, mask = sparse.encode(w)
    overfull = mask.clone()
    overfull[3] |= 0xC0  # bits 30 and 31: past the 30 entries
    assert values.tolist() == [1.5, -2.0] and mask.numel() == 4  # 30 bits in 4 bytes
    cases = {
        "the mask marks 2 kept entries, the file holds 1 values": (values[:1], mask),
        "the mask must be 4 bytes of uint8": (values, mask[:3]),
        "the mask has bits set past the tensor's 30 entries": (values, overfull),
    }
    for i, (message, (v, m)) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.safetensors"
        meta = {"format": sparse.FORMAT, "tensors": '{"w": [6, 5]}', "aliases": "{}"}
        integrity.save_tensors_file({"w.__values": v, "w.__mask": m}, path, metadata=meta)
        with pytest.raises(integrity.WeightsError, match=f"corrupt: w: {message}"):
            sparse.read_sparse(path)
    path = tmp_path / "missing.safetensors"
    integrity.save_tensors_file({"w.__values": values}, path, metadata={"format": sparse.FORMAT,
                                                                         "tensors": '{"w": [6, 5]}'})  # fmt: skip
    with pytest.raises(integrity.WeightsError, match="the sparse tensor 'w' is incomplete"):
        sparse.read_sparse(path)
    torch.testing.assert_close(sparse.decode(values, mask, (6, 5)), w, rtol=0, atol=0)


def test_any_lstmkit_layer_round_trips(tmp_path):
    layer = lstmkit.LSTM(8, 16, 2, bidirectional=True, proj_size=8, peephole=True)
    apply_masks(layer, magnitude_masks(layer, 0.7))
    sparse.save_sparse(layer, tmp_path / "l.safetensors")
    fresh = lstmkit.LSTM(8, 16, 2, bidirectional=True, proj_size=8, peephole=True)
    load_weights(fresh, tmp_path / "l.safetensors")
    for a, b in zip(layer.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(bits(a), bits(b))

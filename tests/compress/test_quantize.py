"""Quantisation: the formula, the Delta/2 bound, packed integer storage, every layer type, save/load."""

from __future__ import annotations

import math

import pytest
import safetensors.torch
import torch
from torch import nn

import lstmkit
from lstmkit.formats.quantized import (
    Dequantize,
    load_quantized,
    pack,
    quantize_model,
    quantize_tensor,
    quantized_tensors,
    save_quantized,
    unpack,
)
from lstmkit.models import SequenceModel
from lstmkit.nn.int8 import rebuilt_weights
from lstmkit.train import ModelConfig


def _bound(qt):
    return (qt.scale[:, None] if qt.per_channel else qt.scale) / 2


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("per_channel", [True, False])
def test_round_trip_error_is_at_most_half_a_step(bits, per_channel):
    w = torch.randn(24, 13) * torch.linspace(0.01, 3, 24)[:, None]  # rows of very different ranges
    w[3] = 0.5  # a constant row
    w[4] = torch.rand(13) + 1  # an all-positive row: z is negative
    qt = quantize_tensor(w, bits, per_channel=per_channel)
    err = (qt.dequantize() - w).abs().view(24, -1) if per_channel else (qt.dequantize() - w).abs()
    assert (err <= _bound(qt) * (1 + 1e-6) + 1e-7).all()
    assert int(qt.integers().max()) <= 2**bits - 1


def test_integers_follow_the_formula():
    w = torch.tensor([[-1.0, -0.2, 0.3, 2.0], [0.0, 0.1, 0.2, 0.35]])
    qt = quantize_tensor(w, 4, per_channel=True)
    for r in range(2):
        lo, hi = w[r].min(), w[r].max()
        delta = (hi - lo) / 15
        z = torch.round(-lo / delta)
        expected = torch.clamp(torch.round(w[r] / delta) + z, 0, 15)
        assert torch.equal(qt.integers()[r].float(), expected)
        assert qt.scale[r] == pytest.approx(float(delta)) and int(qt.zero[r]) == int(z)
    per_tensor = quantize_tensor(w, 8, per_channel=False)
    delta = (w.max() - w.min()) / 255
    assert per_tensor.scale.ndim == 0 and float(per_tensor.scale) == pytest.approx(float(delta))


@pytest.mark.parametrize("bits", range(2, 9))
def test_packing_round_trip_and_size(bits):
    q = torch.randint(0, 2**bits, (1001,), dtype=torch.uint8)
    packed = pack(q, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(1001 * bits / 8)
    assert torch.equal(unpack(packed, bits, 1001), q)


def test_four_bits_are_two_a_byte_low_nibble_first():
    assert pack(torch.tensor([1, 2, 15, 0], dtype=torch.uint8), 4).tolist() == [1 | 2 << 4, 15]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_bad_bit_widths_are_refused(bits):
    for bad in (1, 9, 0, 4.0, True):
        with pytest.raises(ValueError, match="bits must be an integer from 2 to 8"):
            quantize_tensor(torch.randn(3, 3), bad)
    quantize_tensor(torch.randn(3, 3), bits)


LAYERS = {
    "lstm": lambda: lstmkit.LSTM(5, 8, 2),
    "peephole": lambda: lstmkit.LSTM(5, 8, 2, peephole=True),
    "coupled": lambda: lstmkit.LSTM(5, 8, 1, coupled=True, peephole=True),
    "layer_norm": lambda: lstmkit.LSTM(5, 8, 2, layer_norm=True),
    "proj_bidir": lambda: lstmkit.LSTM(5, 8, 2, proj_size=3, bidirectional=True),
    "gru": lambda: lstmkit.GRU(5, 8, 2, bidirectional=True),
    "rnn": lambda: lstmkit.RNN(5, 8, 2),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("bits", [8, 4])
def test_every_layer_runs_from_its_integers(name, bits):
    layer = LAYERS[name]().eval()
    x = torch.randn(6, 3, 5)
    reference = LAYERS[name]().eval()
    tensors = quantize_model(layer, bits)
    assert set(tensors) == {n for n, p in reference.named_parameters() if p.ndim >= 2}
    # The float originals are gone: only the integers (and biases, gains) are held.
    assert all(p.numel() == 0 or p.ndim == 1 for p in layer.parameters())
    state = dict(reference.state_dict())
    state.update({n: t.dequantize() for n, t in tensors.items()})
    state.update({n: getattr(layer, n) for n in state if n not in tensors})
    reference.load_state_dict(state)
    # Exactly the dequantised model when the layers multiply by the rebuilt matrices (8-bit LSTMs
    # otherwise multiply in int8: tests/nn/test_int8.py holds that path to its own reference).
    with torch.no_grad(), rebuilt_weights():
        assert torch.equal(layer(x)[0], reference(x)[0])


def test_linear_and_embedding_and_tied_weights_are_quantised_once(tmp_path):
    model = SequenceModel(ModelConfig(vocab_size=30, hidden_size=16, num_layers=1, tie_weights=True)).eval()
    x = torch.randint(0, 30, (7, 2))
    quantize_model(model, 8)
    assert model.head.weight.data_ptr() != 0 and torch.equal(model.head.weight, model.embedding.weight)
    assert sorted(quantized_tensors(model)) == ["embedding.weight", "rnn.weight_hh_l0", "rnn.weight_ih_l0"]
    plain = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    assert sorted(quantize_model(plain, 4)) == ["0.weight", "1.weight"]
    path = tmp_path / "m.safetensors"
    save_quantized(model, path)
    again = load_quantized(SequenceModel(model.config).eval(), path)
    with torch.no_grad():
        assert torch.equal(model(x)[0], again(x)[0])


@pytest.mark.parametrize("bits", [8, 4, 3])
def test_storage_is_packed_uint8(tmp_path, bits):
    model = lstmkit.LSTM(32, 64, 1)
    quantize_model(model, bits)
    path = tmp_path / "q.safetensors"
    save_quantized(model, path)
    stored = safetensors.torch.load_file(path)
    for name, shape in (("weight_ih_l0", (256, 32)), ("weight_hh_l0", (256, 64))):
        q = stored[f"{name}.__q"]
        assert q.dtype == torch.uint8 and q.numel() == math.ceil(math.prod(shape) * bits / 8)
        assert stored[f"{name}.__scale"].shape == (256,) and stored[f"{name}.__zero"].dtype == torch.uint8
    assert stored["bias_ih_l0"].dtype == torch.float32
    matrices = sum(t.numel() * t.element_size() for n, t in stored.items() if ".__" in n)  # integers, Delta, z
    assert 256 * 96 * 4 / matrices > 0.75 * 32 / bits  # the per-row Delta and z: 5 bytes a row
    loaded = load_quantized(lstmkit.LSTM(32, 64, 1), path)
    assert all(isinstance(d, Dequantize) for d in (loaded.parametrizations.weight_ih_l0[0],))
    x = torch.randn(4, 2, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def test_loading_checks_the_file_against_the_model(tmp_path):
    model = lstmkit.LSTM(4, 8)
    quantize_model(model, 8)
    path = tmp_path / "q.safetensors"
    save_quantized(model, path)
    with pytest.raises(ValueError, match="does not match"):
        load_quantized(lstmkit.LSTM(4, 9), path)
    safetensors.torch.save_file({"a": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a quantised lstmkit model"):
        load_quantized(lstmkit.LSTM(4, 8), tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="quantised already"):
        quantize_model(model, 8)

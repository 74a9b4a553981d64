"""Weights files carry their SHA-256; flipped bytes, truncation and non-finite weights are refused by name."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch
from torch import nn

from lstmkit.formats import integrity, load_weights


@pytest.fixture
def weights(tmp_path):
    model = nn.Linear(8, 4)
    path = tmp_path / "model.safetensors"
    integrity.save_model_file(model, path)
    return model, path


def test_sealed_file_is_plain_safetensors_and_loads(weights):
    model, path = weights
    fresh = nn.Linear(8, 4)
    safetensors.torch.load_model(fresh, str(path))  # any safetensors reader still reads it
    load_weights(fresh, path)
    assert torch.equal(fresh.weight, model.weight)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert len(f.metadata()[integrity.KEY]) == 64


@pytest.mark.parametrize("where", ["data", "last", "header"])
def test_any_flipped_byte_is_caught(weights, where):
    _, path = weights
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    if where == "data":
        i = 8 + n + 5
    elif where == "last":
        i = len(data) - 1
    else:  # a digit of a shape or offset in the header, which still parses
        i = 8 + data[8 : 8 + n].index(b'"shape":[') + len(b'"shape":[')
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(integrity.WeightsError, match=rf"{path.name}: corrupt"):
        load_weights(nn.Linear(8, 4), path)


def test_truncated_file_is_named_as_truncated(weights):
    _, path = weights
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(integrity.WeightsError, match=rf"{path.name}: truncated: it holds"):
        load_weights(nn.Linear(8, 4), path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(integrity.WeightsError, match="truncated"):
        load_weights(nn.Linear(8, 4), path)


def test_non_finite_weights_are_refused_by_name(tmp_path):
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.bias[1] = float("nan")
    path = tmp_path / "w.safetensors"
    integrity.save_model_file(model, path)  # written sealed: the checksum is right, the values are not
    with pytest.raises(integrity.WeightsError, match=r"tensor 'bias' holds 1 non-finite"):
        load_weights(nn.Linear(3, 2), path)
    safetensors.torch.save_model(model, str(path))  # an unsealed file is checked for finite values too
    with pytest.raises(integrity.WeightsError, match="non-finite"):
        load_weights(nn.Linear(3, 2), path)


def test_files_without_a_checksum_still_load(tmp_path):
    model = nn.Linear(3, 2)
    path = tmp_path / "old.safetensors"
    safetensors.torch.save_model(model, str(path))
    fresh = nn.Linear(3, 2)
    load_weights(fresh, path)
    assert torch.equal(fresh.weight, model.weight)

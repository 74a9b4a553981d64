"""Whole-model torch.save / torch.load with torch's default weights_only=True: lstmkit.safe_globals()
is the one allowlist line lstmkit needs; the loaded model computes what the saved one did."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import lstmkit


class WordLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.rnn = lstmkit.LSTM(4, 6, 2, peephole=True, layer_norm=True, proj_size=3, dropout=0.2)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(3, 11)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x))
        return self.out(self.drop(y))


TORCH_CLASSES = [WordLM, nn.Embedding, nn.Dropout, nn.Linear]  # what any whole-model load of it needs


def test_whole_model_round_trip_with_the_allowlist(tmp_path):
    model = WordLM().eval()
    torch.save(model, tmp_path / "model.pt")
    with pytest.raises(pickle.UnpicklingError, match="lstmkit"), torch.serialization.safe_globals(TORCH_CLASSES):
        torch.load(tmp_path / "model.pt")  # without lstmkit's classes: refused, naming them
    with torch.serialization.safe_globals(TORCH_CLASSES + lstmkit.safe_globals()):
        loaded = torch.load(tmp_path / "model.pt")  # weights_only=True, torch's default
    x = torch.randint(0, 11, (5, 2))
    assert torch.equal(loaded(x), model(x))
    assert type(loaded.rnn) is lstmkit.LSTM and loaded.rnn._options == model.rnn._options


@pytest.mark.parametrize(
    "layer",
    [
        lstmkit.LSTM(4, 6, bidirectional=True, coupled=True, recurrent_dropout=0.1),
        lstmkit.LSTMCell(4, 6, peephole=True),
        lstmkit.LSTMStepCell(4, 6, layer_norm=True),
        lstmkit.GRU(4, 6),
        lstmkit.RNN(4, 6, nonlinearity="relu"),
        lstmkit.GRUCell(4, 6, zoneout=0.1),
        lstmkit.RNNCell(4, 6, nonlinearity="relu", weight_dropout=0.2),
        lstmkit.ConvLSTM(1, 4, 3, 2, peephole=True, layer_norm=True),
        lstmkit.ConvLSTMCell(1, 4, 3),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_layer_loads_with_the_allowlist_alone(tmp_path, layer):
    torch.save(layer, tmp_path / "layer.pt")
    with torch.serialization.safe_globals(lstmkit.safe_globals()):
        loaded = torch.load(tmp_path / "layer.pt")
    assert type(loaded) is type(layer)
    saved, back = layer.state_dict(), loaded.state_dict()
    assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)

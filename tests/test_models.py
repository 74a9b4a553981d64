from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmkit.models import SequenceModel, _make_rnn, last_valid
from lstmkit.nn import GRU, LSTM, RNN
from lstmkit.train import ModelConfig


def _tokens(T=7, B=3, V=11, seed=0):
    return torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(seed))


def test_token_model_matches_embedding_torch_lstm_linear():
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=11, embedding_dim=5, hidden_size=8, num_layers=2)).eval()
    assert isinstance(model.rnn, LSTM)
    ref = nn.LSTM(5, 8, 2)
    ref.load_state_dict(model.rnn.state_dict())  # same parameter names and shapes as torch.nn.LSTM
    x = _tokens()
    logits, (h, c) = model(x)
    ref_out, (ref_h, ref_c) = ref(model.embedding(x))
    assert logits.shape == (7, 3, 11) and h.shape == c.shape == (2, 3, 8)
    assert torch.allclose(logits, model.head(ref_out), atol=1e-6)
    assert torch.allclose(h, ref_h, atol=1e-6) and torch.allclose(c, ref_c, atol=1e-6)


def test_state_carries_over_between_chunks():
    model = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, num_layers=1, dropout=0.0)).eval()
    x = _tokens(T=10)
    whole, _ = model(x)
    first, state = model(x[:4])
    second, _ = model(x[4:], state)
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-6)


def test_feature_input_and_lengths():
    model = SequenceModel(ModelConfig(input_size=3, output_size=2, hidden_size=8, num_layers=1)).eval()
    x = torch.randn(6, 2, 3)
    lengths = torch.tensor([6, 4])
    logits, (h, _) = model(x, lengths=lengths)
    assert logits.shape == (6, 2, 2)
    # The short sequence's final state and last output equal running it alone on its 4 steps.
    alone, (h_alone, _) = model(x[:4, 1:2])
    assert torch.allclose(h[:, 1], h_alone[:, 0], atol=1e-6)
    assert torch.allclose(last_valid(logits, lengths)[1], alone[-1, 0], atol=1e-6)


@pytest.mark.parametrize(("cell", "cls"), [("lstm", LSTM), ("gru", GRU), ("rnn", RNN)])
def test_cells(cell, cls):
    model = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, num_layers=2, cell=cell))
    assert type(model.rnn) is cls and model.rnn.dropout == 0.2
    logits, state = model(_tokens())
    assert logits.shape == (7, 3, 11)
    assert isinstance(state, tuple) == (cell == "lstm")
    assert _make_rnn(cell, 4, 5, 1, 0.5).dropout == 0.0  # no inter-layer dropout with one layer
    with pytest.raises(ValueError, match="cell must be one of"):
        _make_rnn("lstmx", 4, 5, 1, 0.0)


def test_tied_weights_with_and_without_projection():
    same = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, tie_weights=True))
    assert same.proj is None and same.head.weight is same.embedding.weight
    proj = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, embedding_dim=5, tie_weights=True))
    assert proj.proj.weight.shape == (5, 8) and proj.head.weight is proj.embedding.weight
    logits, _ = proj(_tokens())
    assert logits.shape == (7, 3, 11)
    logits.sum().backward()
    assert (proj.embedding.weight.grad.abs().sum(dim=1) > 0).all()  # every row gets the head's gradient
    untied = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, embedding_dim=5))
    # Tying drops the head's own (V, H) matrix and adds the (E, H) projection.
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(proj) == n_params(untied) - 11 * 8 + 5 * 8


def test_config_errors():
    with pytest.raises(ValueError, match=r"set exactly one of model.vocab_size"):
        SequenceModel(ModelConfig())
    with pytest.raises(ValueError, match=r"set exactly one of model.vocab_size"):
        SequenceModel(ModelConfig(vocab_size=3, input_size=3))
    with pytest.raises(ValueError, match=r"model.output_size is required"):
        SequenceModel(ModelConfig(input_size=3))
    with pytest.raises(ValueError, match="tie_weights needs token input with output_size == vocab_size"):
        SequenceModel(ModelConfig(vocab_size=11, output_size=3, tie_weights=True))
    with pytest.raises(TypeError, match="config must be a ModelConfig"):
        SequenceModel({"vocab_size": 3})


def test_input_errors():
    tokens = SequenceModel(ModelConfig(vocab_size=11, hidden_size=4, num_layers=1))
    with pytest.raises(ValueError, match=r"x must be token ids \(T, B\) of int64"):
        tokens(torch.randn(3, 2, 4))
    features = SequenceModel(ModelConfig(input_size=3, output_size=2, hidden_size=4, num_layers=1))
    with pytest.raises(ValueError, match=r"x must be float features \(T, B, 3\)"):
        features(torch.randn(3, 2, 4))


def test_last_valid():
    out = torch.arange(12.0).reshape(4, 3, 1)  # (T=4, B=3, 1)
    assert last_valid(out, torch.tensor([4, 1, 2])).flatten().tolist() == [9.0, 1.0, 5.0]
    assert last_valid(out).flatten().tolist() == [9.0, 10.0, 11.0]
    with pytest.raises(ValueError, match=r"lengths must be shape \(3,\) with values in \[1, 4\]"):
        last_valid(out, torch.tensor([0, 1, 2]))

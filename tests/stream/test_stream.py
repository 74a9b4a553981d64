"""Streaming: chunks of any size give the whole-sequence forward, for every variant and model kind."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.models import SequenceModel
from lstmkit.stream import Stream
from lstmkit.train import ModelConfig

I, H, B, T = 5, 8, 3, 17
CHUNKS = [1, 3, 1, 1, 5, 2, 4]  # sums to T; single steps between chunks of several sizes

LSTM_VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "coupled_peephole": {"coupled": True, "peephole": True},
    "layer_norm": {"layer_norm": True},
    "proj": {"proj_size": 4},
    "no_bias": {"bias": False},
    "layer_norm_peephole_proj": {"layer_norm": True, "peephole": True, "proj_size": 4},
    "everything": {"layer_norm": True, "peephole": True, "coupled": True, "proj_size": 4, "recurrent_dropout": 0.3},
    "zoneout": {"zoneout": (0.1, 0.4)},  # eval mode: the expectation after every step, as the layer's loop
    "zoneout_peephole_proj": {"zoneout": 0.3, "peephole": True, "proj_size": 4, "weight_dropout": 0.5},
}
MODELS = {
    **{f"lstm_{k}": (lambda kw=kw: lstmkit.LSTM(I, H, 2, dropout=0.2, **kw)) for k, kw in LSTM_VARIANTS.items()},
    "gru": lambda: lstmkit.GRU(I, H, 2),
    "rnn_tanh": lambda: lstmkit.RNN(I, H, 2),
    "rnn_relu": lambda: lstmkit.RNN(I, H, 2, nonlinearity="relu"),
}
TOL = {"atol": 1e-5, "rtol": 1e-5}


def random_state(model, batch: int = B):
    """A random initial state in the model's hx format, so that the state setter is exercised too."""
    core = model.rnn if isinstance(model, SequenceModel) else model
    h = 0.5 * torch.randn(core.num_layers, batch, core.output_size)
    if isinstance(core, lstmkit.LSTM):
        return h, torch.randn(core.num_layers, batch, core.hidden_size)
    return h


def assert_state_close(a, b):
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
        torch.testing.assert_close(x, y, **TOL)


def stream_in_chunks(stream: Stream, x: torch.Tensor, chunks=CHUNKS, time_axis: int = 0) -> torch.Tensor:
    outs, t = [], 0
    for n in chunks:
        part = x.narrow(time_axis, t, n)
        if n == 1 and t % 2:  # single steps alternate between step() and a T = 1 feed()
            outs.append(stream.step(part.select(time_axis, 0)).unsqueeze(time_axis))
        else:
            outs.append(stream.feed(part))
        t += n
    assert t == x.shape[time_axis]
    return torch.cat(outs, time_axis)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunks_equal_whole_sequence(name):
    model = MODELS[name]().eval()
    x = torch.randn(T, B, I)
    hx = random_state(model)
    with torch.no_grad():
        want, want_state = model(x, hx)
    stream = Stream(model, batch_size=B)
    stream.state = hx
    got = stream_in_chunks(stream, x)
    torch.testing.assert_close(got, want, **TOL)
    assert_state_close(stream.state, want_state)
    assert stream.feed(x[:2]).is_inference() and stream.step(x[0]).is_inference()  # under torch.inference_mode


def test_batch_first_layer_streams_in_its_own_layout():
    model = lstmkit.LSTM(I, H, 2, batch_first=True, peephole=True).eval()
    x = torch.randn(B, T, I)
    with torch.no_grad():
        want, (h, c) = model(x)
    stream = Stream(model, B)
    torch.testing.assert_close(stream_in_chunks(stream, x, time_axis=1), want, **TOL)
    assert_state_close(stream.state, (h, c))


def test_float64_model_streams_in_float64():
    model = lstmkit.LSTM(I, H, 2, layer_norm=True, dtype=torch.float64).eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.no_grad():
        want, _ = model(x)
    got = stream_in_chunks(Stream(model, B), x)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


SEQ_CONFIGS = {
    "tokens_lstm": ModelConfig(vocab_size=20, hidden_size=H, num_layers=2, embedding_dim=6, dropout=0.3),
    "tokens_tied_proj": ModelConfig(vocab_size=20, hidden_size=H, num_layers=2, embedding_dim=6, tie_weights=True),
    "tokens_gru": ModelConfig(vocab_size=20, hidden_size=H, num_layers=1, cell="gru"),
    "features_rnn": ModelConfig(input_size=I, output_size=3, hidden_size=H, num_layers=2, cell="rnn"),
}


def seq_input(model: SequenceModel, steps: int = T, batch: int = B) -> torch.Tensor:
    if model.embedding is not None:
        return torch.randint(0, model.embedding.num_embeddings, (steps, batch))
    return torch.randn(steps, batch, model.config.input_size)


@pytest.mark.parametrize("name", sorted(SEQ_CONFIGS))
def test_sequence_model_chunks_equal_whole_sequence(name):
    model = SequenceModel(SEQ_CONFIGS[name]).eval()
    x = seq_input(model)
    with torch.no_grad():
        want, want_state = model(x)
    stream = Stream(model, B)
    got = stream_in_chunks(stream, x)
    torch.testing.assert_close(got, want, **TOL)
    assert_state_close(stream.state, want_state)


def test_sequence_model_with_a_variant_core():
    model = SequenceModel(ModelConfig(vocab_size=20, hidden_size=H, num_layers=2))
    model.rnn = lstmkit.LSTM(H, H, 2, layer_norm=True, coupled=True, peephole=True, proj_size=4)
    model.head = torch.nn.Linear(4, 20)
    model.eval()
    x = seq_input(model)
    with torch.no_grad():
        want, _ = model(x)
    torch.testing.assert_close(stream_in_chunks(Stream(model, B), x), want, **TOL)


@pytest.mark.parametrize("indices", [[1], 1, -2, torch.tensor([1]), torch.tensor([False, True, False])])
def test_reset_restarts_only_the_chosen_streams(indices):
    model = lstmkit.LSTM(I, H, 2, peephole=True).eval()
    x = torch.randn(T, B, I)
    with torch.no_grad():
        whole, _ = model(x)
        fresh, _ = model(x[7:])  # stream 1 restarts at step 7
    stream = Stream(model, B)
    first = stream.feed(x[:7])
    stream.reset(indices)
    rest = torch.cat([stream.step(x[7]).unsqueeze(0), stream.feed(x[8:])])
    torch.testing.assert_close(first, whole[:7], **TOL)
    torch.testing.assert_close(rest[:, [0, 2]], whole[7:, [0, 2]], **TOL)
    torch.testing.assert_close(rest[:, 1], fresh[:, 1], **TOL)


def test_reset_all_and_state_layout():
    model = lstmkit.LSTM(I, H, 3, proj_size=4).eval()
    stream = Stream(model, B)
    stream.feed(torch.randn(4, B, I))
    h, c = stream.state
    assert h.shape == (3, B, 4) and c.shape == (3, B, H) and h.abs().sum() > 0
    stream.reset()
    h, c = stream.state
    assert h.abs().sum() == 0 and c.abs().sum() == 0


def test_feed_with_lengths_stops_each_stream_at_its_end():
    model = SequenceModel(SEQ_CONFIGS["tokens_lstm"]).eval()
    x = seq_input(model, 6)
    lengths = torch.tensor([6, 2, 0])
    with torch.no_grad():
        want, (h, c) = model(x, None, lengths)
    stream = Stream(model, B)
    torch.testing.assert_close(stream.feed(x, lengths=lengths), want, **TOL)
    assert_state_close(stream.state, (h, c))
    # The streams go on from their own last real step.
    nxt = seq_input(model, 1)
    with torch.no_grad():
        want_next, _ = model(nxt, (h, c))
    torch.testing.assert_close(stream.step(nxt[0]), want_next[0], **TOL)


@pytest.mark.parametrize("variant", ["plain", "peephole", "layer_norm"])
def test_stream_sees_weights_changed_in_place(variant):
    """The step keeps [W_ih | W_hh] as one matrix; an in-place change (load_state_dict, an optimizer
    step) between calls must rebuild it."""
    kwargs = LSTM_VARIANTS[variant]
    model = lstmkit.LSTM(I, H, 2, **kwargs).eval()
    stream = Stream(model, 1)
    x = torch.randn(1, I)
    stream.step(x)
    other = lstmkit.LSTM(I, H, 2, **kwargs).eval()
    model.load_state_dict(other.state_dict())  # copies into the same parameter tensors
    stream.reset()
    with torch.no_grad():
        want, _ = other(x.unsqueeze(0))
    torch.testing.assert_close(stream.step(x), want[0], **TOL)
    with torch.no_grad():
        model.bias_hh_l1.add_(0.5)  # as an optimizer step would
        want, _ = model(x.unsqueeze(0))
    stream.reset()
    torch.testing.assert_close(stream.step(x), want[0], **TOL)


def test_model_built_under_inference_mode_streams():
    """Such parameters have no version counter; the step then reads them directly."""
    with torch.inference_mode():
        model = lstmkit.LSTM(I, H, 2, peephole=True).eval()
        x = torch.randn(T, B, I)
        want, _ = model(x)
    torch.testing.assert_close(stream_in_chunks(Stream(model, B), x), want, **TOL)


# -- errors --------------------------------------------------------------------------------------------
def test_bidirectional_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="bidirectional model cannot stream"):
        Stream(lstmkit.LSTM(I, H, bidirectional=True).eval())
    model = SequenceModel(SEQ_CONFIGS["tokens_lstm"])
    model.rnn = lstmkit.GRU(6, H, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        Stream(model.eval())


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        (torch.nn.LSTM(I, H), TypeError, "model must be an lstmkit LSTM"),
        (lstmkit.LSTMCell(I, H), TypeError, "model must be"),
        ("lstm", TypeError, "model must be"),
    ],
)
def test_unsupported_models_are_refused(model, error, match):
    with pytest.raises(error, match=match):
        Stream(model)


def test_bad_arguments_name_themselves():
    model = lstmkit.LSTM(I, H).eval()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            Stream(model, bad)
    stream = Stream(model, B)
    with pytest.raises(ValueError, match=r"x must have shape \(3, 5\)"):
        stream.step(torch.randn(2, I))
    with pytest.raises(TypeError, match=r"x must be torch\.float32"):
        stream.step(torch.randn(B, I, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a Tensor"):
        stream.step([0.0] * I)
    with pytest.raises(ValueError, match="chunk must have shape"):
        stream.feed(torch.randn(4, B + 1, I))
    with pytest.raises(ValueError, match="chunk must have at least one time step"):
        stream.feed(torch.randn(0, B, I))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 3\)"):
        stream.reset([3])
    with pytest.raises(ValueError, match="boolean mask must have shape"):
        stream.reset(torch.tensor([True, False]))
    with pytest.raises(TypeError, match="indices must be integers"):
        stream.reset([0.5])
    with pytest.raises(ValueError, match=r"state h must have shape \(1, 3, 8\)"):
        stream.state = (torch.zeros(1, 2, H), torch.zeros(1, 2, H))
    with pytest.raises(TypeError, match=r"state must be a tuple \(h, c\)"):
        stream.state = torch.zeros(1, B, H)
    tokens = Stream(SequenceModel(SEQ_CONFIGS["tokens_lstm"]).eval(), B)
    with pytest.raises(ValueError, match=r"x must be token ids of shape \(3,\)"):
        tokens.step(torch.randn(B, I))
    with pytest.raises(ValueError, match=r"chunk must be token ids of shape \(T, 3\)"):
        tokens.feed(torch.zeros(4, 2, dtype=torch.long))


def test_training_mode_is_refused_at_every_call():
    model = lstmkit.LSTM(I, H, 2, dropout=0.5)
    with pytest.raises(ValueError, match=r"call model.eval\(\)"):
        Stream(model).step(torch.randn(1, I))
    stream = Stream(model.eval())
    stream.step(torch.randn(1, I))
    model.train()
    with pytest.raises(ValueError, match="training mode"):
        stream.feed(torch.randn(2, 1, I))

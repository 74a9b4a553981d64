"""Bad arguments and shapes fail early, with a message naming the argument and what was expected."""

from __future__ import annotations

import pytest
import torch

import lstmkit

I, H = 3, 4


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(dropout=1.5), ValueError, r"dropout should be a number in range \[0, 1\] .*, got 1.5"),
        (dict(dropout=-0.1), ValueError, r"dropout should be a number in range \[0, 1\]"),
        (dict(recurrent_dropout=1.5), ValueError, r"recurrent_dropout must be a number in \[0, 1\)"),
        (dict(proj_size=4), ValueError, r"proj_size must be smaller than hidden_size \(4\), got 4"),
        (dict(proj_size=-1), ValueError, r"proj_size must be a non-negative integer"),
        (dict(num_layers=0), ValueError, r"num_layers must be a positive integer, got 0"),
        (dict(impl="cuda-magic"), ValueError, r"impl must be one of"),
        (dict(coupled=True, forget_bias=1.0), ValueError, r"forget_bias cannot be used with coupled=True"),
        (dict(bias=False, forget_bias=1.0), ValueError, r"forget_bias needs bias=True"),
        (dict(layer_norm_eps=0.0), ValueError, r"layer_norm_eps must be a positive number"),
        (dict(dtype=torch.int64), TypeError, r"dtype must be a floating-point dtype"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        lstmkit.LSTM(I, H, **kwargs)


def test_size_errors():
    with pytest.raises(ValueError, match="input_size must be a positive integer, got 0"):
        lstmkit.LSTM(0, H)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        lstmkit.GRU(I, 2.5)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        lstmkit.RNN(I, H, nonlinearity="sigmoid")


def test_forward_errors():
    m = lstmkit.LSTM(I, H, num_layers=2)
    with pytest.raises(ValueError, match=r"input must be 3-D \(T, B, I\) or 2-D \(T, I\) unbatched, got shape \(5,\)"):
        m(torch.randn(5))
    with pytest.raises(ValueError, match=r"input must have 3 features \(input_size\), got 7"):
        m(torch.randn(5, 2, 7))
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor, got dtype torch\.int64"):
        m(torch.ones(5, 2, I, dtype=torch.long))
    with pytest.raises(TypeError, match="does not match the parameters' dtype"):
        m(torch.randn(5, 2, I, dtype=torch.float64))
    with pytest.raises(TypeError, match="input must be a Tensor or PackedSequence, got list"):
        m([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="at least one time step"):
        m(torch.randn(0, 2, I))


def test_device_errors():
    """An input or a state on another device than the module is refused before any product (``meta``
    stands in for a GPU here); ``lengths`` may be on either device."""
    m = lstmkit.LSTM(I, H)
    with pytest.raises(RuntimeError) as info:
        m(torch.randn(5, 2, I, device="meta"))
    assert str(info.value) == ("input is on meta but the parameters on cpu: move it with .to('cpu') or the module "
                               "with .to('meta')")
    with pytest.raises(RuntimeError) as info:
        m(torch.randn(5, 2, I), (torch.zeros(1, 2, H), torch.zeros(1, 2, H, device="meta")))
    assert str(info.value) == "c_0 is on meta but the input on cpu: move it with .to('cpu')"
    with pytest.raises(RuntimeError) as info:
        lstmkit.GRU(I, H)(torch.randn(5, 2, I), torch.zeros(1, 2, H, device="meta"))
    assert str(info.value) == "h_0 is on meta but the input on cpu: move it with .to('cpu')"


def test_hx_errors():
    m = lstmkit.LSTM(I, H, num_layers=2, proj_size=2)
    x = torch.randn(5, 3, I)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 3, 2\), got \(2, 3, 4\)"):
        m(x, (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 3, 4\), got \(1, 3, 4\)"):
        m(x, (torch.zeros(2, 3, 2), torch.zeros(1, 3, 4)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        m(x, torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2\)"):
        m(torch.randn(5, I), (torch.zeros(2, 3, 2), torch.zeros(2, 3, 4)))  # unbatched wants 2-D hx
    with pytest.raises(TypeError, match=r"hx must be a Tensor \(h_0\), got tuple"):
        lstmkit.GRU(I, H)(x, (torch.zeros(1, 3, H),))


def test_lengths_errors():
    m = lstmkit.LSTM(I, H)
    x = torch.randn(5, 3, I)
    with pytest.raises(ValueError, match="lengths must not exceed the input's 5 time steps, got max 6"):
        m(x, lengths=torch.tensor([6, 2, 1]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        m(x, lengths=torch.tensor([5, 2]))
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        m(x, lengths=torch.tensor([5.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        m(x, lengths=torch.tensor([5, -1, 1]))
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 2, 1]))
    with pytest.raises(ValueError, match="lengths must not be given with a PackedSequence"):
        m(packed, lengths=torch.tensor([5, 2, 1]))


def test_cell_errors():
    cell = lstmkit.LSTMCell(I, H, proj_size=2)
    with pytest.raises(ValueError, match=r"input must have shape \(B, 3\) or \(3,\), got \(2, 5\)"):
        cell(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"state c must have shape \(2, 4\), got \(2, 3\)"):
        cell(torch.randn(2, I), (torch.zeros(2, 2), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match=r"proj_size must be an integer in \[0, hidden_size=4\)"):
        lstmkit.LSTMCell(I, H, proj_size=4)

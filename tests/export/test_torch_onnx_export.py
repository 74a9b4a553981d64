"""torch.onnx.export on lstmkit's recurrent layers: a right file or a clear refusal, never a file fixed to the
example's length.

- The TorchScript exporter (``dynamo=False``) writes a layer without variants through torch's own operator:
  the file holds the ONNX LSTM/GRU/RNN operators of the same ``torch.nn`` layer and runs in onnxruntime at
  other lengths and batch sizes as lstmkit does (within the float32 rounding bound).
- It refuses, by name, what that operator does not compute (peepholes, coupled gates, LayerNorm, projection,
  recurrent dropout in training, lengths, a PackedSequence), and the dynamo exporter refuses every layer: in
  torch 2.13 it keeps the example's length in recurrent layers (torch.nn's own too: the NATIVE_FAULTS tests).
Every refusal names ``lstmkit.export.to_onnx`` and leaves no file behind. The cells (one step, no loop) export
with either exporter, variants included. torch.jit.trace of a GRU or RNN records torch's operator the same way.
"""

from __future__ import annotations

from collections import Counter

import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.export.onnx_model import random_inputs, run_torch, verification_tolerance
from lstmkit.nn._exporting import DYNAMO_REASON, export_error, trace_error
from onnx_checks import check_in_onnxruntime
from tolerances import baseline_step_tolerance, module_tolerance

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # the TorchScript exporter's notes on batch sizes
]

I, H = 5, 8

# name -> (lstmkit class name, keyword arguments shared with the torch.nn twin, lstmkit-only ones, ONNX operator)
PLAIN = {
    "lstm": ("LSTM", {"num_layers": 2}, {}, "LSTM"),
    "lstm_fused": ("LSTM", {"num_layers": 2}, {"impl": "fused"}, "LSTM"),
    "lstm_reference": ("LSTM", {}, {"impl": "reference"}, "LSTM"),
    "lstm_bidirectional_batch_first": ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}, {},
                                       "LSTM"),
    "lstm_no_bias": ("LSTM", {"bias": False}, {}, "LSTM"),
    "gru_bidirectional": ("GRU", {"num_layers": 2, "bidirectional": True}, {}, "GRU"),
    "rnn_tanh": ("RNN", {"num_layers": 2}, {}, "RNN"),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}, {}, "RNN"),
}  # fmt: skip


def legacy_export(model: nn.Module, path, inputs: dict[str, torch.Tensor]) -> None:
    """The layer itself through torch.onnx.export(dynamo=False) with example ``inputs`` (``random_inputs``),
    inputs and outputs named as lstmkit's own files name them, time and batch symbolic."""
    states = (inputs["h0"], inputs["c0"]) if "c0" in inputs else inputs["h0"]
    outputs = ["output", "hn", "cn"][: len(inputs)]
    batch_first = getattr(model, "batch_first", False)
    axes = {"input": {1 - batch_first: "B", int(batch_first): "T"}, "output": {1 - batch_first: "B"}}
    axes.update({name: {1: "B"} for name in [*inputs, *outputs] if name not in axes})
    torch.onnx.export(model, (inputs["input"], states), str(path), dynamo=False, input_names=list(inputs),
                      output_names=outputs, dynamic_axes=axes)  # fmt: skip


def ops(path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_torchscript_exporter_writes_torchs_operator_and_the_file_runs_at_other_shapes(tmp_path, name):
    cls, shared, ours, op = PLAIN[name]
    torch.manual_seed(0)
    model = getattr(lstmkit, cls)(I, H, **shared, **ours).eval()
    example = random_inputs(model, 5, 3, lengths=False)
    legacy_export(model, tmp_path / "ours.onnx", example)
    # The same graph as the torch.nn layer's (same weights, exported the same way) ...
    native = getattr(nn, cls)(I, H, **shared).eval()
    native.load_state_dict(model.state_dict())
    legacy_export(native, tmp_path / "native.onnx", example)
    got = ops(tmp_path / "ours.onnx")
    assert got == ops(tmp_path / "native.onnx")
    assert got[op] == shared.get("num_layers", 1)  # one ONNX recurrent operator per layer, no unrolled steps
    # ... and it runs at other (T, B) as lstmkit does
    check_in_onnxruntime(model, tmp_path / "ours.onnx", lengths=False)
    session = ort.InferenceSession(str(tmp_path / "ours.onnx"), providers=["CPUExecutionProvider"])
    time_axis = 1 if shared.get("batch_first") else 0
    assert session.get_inputs()[0].shape[time_axis] == "T"


class WithLengths(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        return self.layer(x, lengths=lengths)[0]


class Packed(WithLengths):
    def forward(self, x, lengths):
        return self.layer(pack_padded_sequence(x, lengths, enforce_sorted=False))[0].data


REFUSED = {
    "peephole": (lambda: lstmkit.LSTM(I, H, peephole=True), "has peephole=True, which torch's LSTM operator (what "
                 "the exporter writes) lacks"),
    "coupled_layer_norm": (lambda: lstmkit.LSTM(I, H, coupled=True, layer_norm=True), "has coupled=True and "
                           "layer_norm=True, which torch's LSTM operator (what the exporter writes) lacks"),
    "proj": (lambda: lstmkit.LSTM(I, H, proj_size=3), "has proj_size=3, which torch's TorchScript exporter does "
             "not write"),
    "recurrent_dropout_training": (lambda: lstmkit.GRU(I, H, recurrent_dropout=0.25),
                                   "has recurrent_dropout=0.25 in training mode"),
    "weight_dropout_training": (lambda: lstmkit.LSTM(I, H, weight_dropout=0.5), "has weight_dropout=0.5 in training "
                                "mode"),
    "zoneout": (lambda: lstmkit.LSTM(I, H, zoneout=0.1), "has zoneout=(0.1, 0.1), which torch's LSTM operator lacks"),
    "zoneout_gru": (lambda: lstmkit.GRU(I, H, zoneout=0.1).eval(), "has zoneout=0.1, which torch's GRU operator lacks"),
    "lengths": (lambda: WithLengths(lstmkit.LSTM(I, H)), "is given lengths"),
    "packed": (lambda: Packed(lstmkit.RNN(I, H)), "reads a PackedSequence"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_torchscript_exporter_refuses_what_torchs_operator_does_not_compute(tmp_path, name):
    make, reason = REFUSED[name]
    model = make()
    model.train(name.endswith("_training"))
    layer = getattr(model, "layer", model)
    path = tmp_path / "model.onnx"
    x, lengths = torch.randn(5, 3, I), torch.tensor([5, 4, 2])
    args = (x, lengths) if layer is not model else (x,)
    # The exporter puts the model in eval mode unless told to keep training mode.
    mode = torch.onnx.TrainingMode.TRAINING if model.training else torch.onnx.TrainingMode.EVAL
    with pytest.raises(RuntimeError) as caught:
        torch.onnx.export(model, args, str(path), dynamo=False, training=mode)
    assert export_error(type(layer).__name__, reason) in str(caught.value)
    assert not path.exists()


class WordLM(nn.Module):
    """PyTorch's word-language-model example with an lstmkit layer: Embedding -> recurrent layer -> Linear."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.rnn = layer
        self.out = nn.Linear(6, 11)

    def forward(self, x):
        y, hidden = self.rnn(self.emb(x))
        return self.out(y), hidden


DYNAMO_LAYERS = {
    "lstm_auto": lambda: lstmkit.LSTM(4, 6, 2),
    "lstm_fused": lambda: lstmkit.LSTM(4, 6, 2, impl="fused"),
    "lstm_reference": lambda: lstmkit.LSTM(4, 6, 2, impl="reference"),
    "lstm_peephole": lambda: lstmkit.LSTM(4, 6, peephole=True),
    "gru": lambda: lstmkit.GRU(4, 6, 2),
    "rnn": lambda: lstmkit.RNN(4, 6),
}


@pytest.mark.parametrize("name", sorted(DYNAMO_LAYERS))
def test_dynamo_exporter_refuses_every_layer_and_points_to_to_onnx(tmp_path, name):
    pytest.importorskip("onnxscript")  # the dynamo exporter's own dependency
    layer = DYNAMO_LAYERS[name]()
    model = WordLM(layer).eval()
    path = tmp_path / "model.onnx"
    with pytest.raises(Exception, match=r"lstmkit\.export\.to_onnx") as caught:
        torch.onnx.export(model, (torch.randint(0, 11, (5, 2)),), str(path), dynamo=True)
    assert export_error(type(layer).__name__, DYNAMO_REASON) in str(caught.value)
    assert not path.exists()
    # the layer works again afterwards (the exporters' flags are reset)
    model(torch.randint(0, 11, (3, 2)))


NATIVE_FAULTS = {  # torch.nn layer -> what torch 2.13's dynamo exporter makes of it at (T, B) = (5, 3)
    "lstm_fails_at_another_length": lambda: nn.LSTM(I, H, 2),
    "rnn_unrolled_for_the_length": lambda: nn.RNN(I, H, 2),
    "gru_bidirectional_keeps_the_batch": lambda: nn.GRU(I, H, 2, bidirectional=True),
    "lstm_projected_bidirectional_does_not_load": lambda: nn.LSTM(I, H, 2, proj_size=3, bidirectional=True),
}


@pytest.mark.parametrize("name", sorted(NATIVE_FAULTS))
def test_the_dynamo_exporter_mis_writes_torchs_own_recurrent_layers(tmp_path, name):
    """Why the dynamo exporter is refused rather than given torch's operator: asked for symbolic T and B, it writes
    torch.nn's own layers wrongly (torch 2.13; the cases docs/deployment.md lists). If a later torch fixes one, its
    case fails here and the refusal can be reconsidered."""
    pytest.importorskip("onnxscript")
    path = tmp_path / "native.onnx"
    T, B = torch.export.Dim("T"), torch.export.Dim("B")
    torch.onnx.export(NATIVE_FAULTS[name]().eval(), (torch.randn(5, 3, I),), str(path), dynamo=True,
                      dynamic_shapes=({0: T, 1: B},))  # fmt: skip
    if name == "lstm_projected_bidirectional_does_not_load":
        with pytest.raises(Exception, match="Concat"):
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0].shape
    if name == "rnn_unrolled_for_the_length":
        assert declared[0] == 5  # the time axis fixed to the example's
    elif name == "gru_bidirectional_keeps_the_batch":
        assert declared[1] == 3  # the batch axis fixed to the example's
    else:  # declares a symbolic length, runs at the example's, fails at another
        assert declared[0] == "T"
        session.run(None, {session.get_inputs()[0].name: torch.randn(5, 2, I).numpy()})
        with pytest.raises(Exception, match=r"(?i)reshape"):
            session.run(None, {session.get_inputs()[0].name: torch.randn(9, 2, I).numpy()})


CELLS = {
    "plain": {},
    "peephole_layer_norm_proj": {"peephole": True, "layer_norm": True, "proj_size": 3},
    "coupled": {"coupled": True},
}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_export_with_either_exporter_and_run_at_other_batch_sizes(tmp_path, name, dynamo):
    """A cell is one step (no time loop to keep a length), so both exporters write its own operations, variants
    included; the file runs at other batch sizes as the cell does, within the float32 bound of one step."""
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(I, H, **CELLS[name]).eval()
    P = cell.output_size
    x, h, c = torch.randn(3, I), torch.rand(3, P) * 2 - 1, torch.zeros(3, H)
    path = tmp_path / "cell.onnx"
    if dynamo:
        B = torch.export.Dim("B")
        torch.onnx.export(cell, (x, (h, c)), str(path), dynamo=True, dynamic_shapes=({0: B}, ({0: B}, {0: B})))
    else:
        torch.onnx.export(cell, (x, (h, c)), str(path), dynamo=False, input_names=["x", "h", "c"],
                          dynamic_axes={"x": {0: "B"}, "h": {0: "B"}, "c": {0: "B"}})  # fmt: skip
    # The bound of the same step as a one-layer LSTM over T = 1 from a zero cell and |h| <= 1.
    twin = lstmkit.LSTM(I, H, **CELLS[name])
    twin.load_state_dict({f"{key}_l0": value for key, value in cell.state_dict().items()})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for B in (5, 1):
        x, h, c = torch.randn(B, I), torch.rand(B, P) * 2 - 1, torch.zeros(B, H)
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, dict(zip(names, (x.numpy(), h.numpy(), c.numpy()), strict=True)))
        with torch.no_grad():
            want = cell(x, (h, c))
        atol = module_tolerance(twin, x[None])
        for out, ref in zip(got, want, strict=True):
            torch.testing.assert_close(torch.from_numpy(out), ref, atol=atol, rtol=0)


BASELINE_CELLS = {"gru": ("GRUCell", {}), "gru_zoneout": ("GRUCell", {"zoneout": 0.3}),
                  "rnn_relu": ("RNNCell", {"nonlinearity": "relu"}), "rnn_no_bias": ("RNNCell", {"bias": False})}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", sorted(BASELINE_CELLS))
def test_gru_and_rnn_cells_export_with_either_exporter(tmp_path, name, dynamo):
    """GRUCell and RNNCell (torch's cell operators; zoneout's eval-mode mix after it) export with either exporter
    and run at other batch sizes, within the float32 bound of one step."""
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    cls, kw = BASELINE_CELLS[name]
    cell = getattr(lstmkit, cls)(I, H, **kw).eval()
    x, h = torch.randn(3, I), torch.rand(3, H) * 2 - 1
    path = tmp_path / "cell.onnx"
    if dynamo:
        B = torch.export.Dim("B")
        torch.onnx.export(cell, (x, h), str(path), dynamo=True, dynamic_shapes=({0: B}, {0: B}))
    else:
        torch.onnx.export(cell, (x, h), str(path), dynamo=False, input_names=["x", "h"],
                          dynamic_axes={"x": {0: "B"}, "h": {0: "B"}})  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for B in (5, 1):
        x, h = torch.randn(B, I), torch.rand(B, H) * 2 - 1
        (got,) = session.run(None, dict(zip(names, (x.numpy(), h.numpy()), strict=True)))
        with torch.no_grad():
            want = cell(x, h)
        torch.testing.assert_close(torch.from_numpy(got), want, atol=baseline_step_tolerance(cell, x, h), rtol=0)


TRACED_OPS = {"gru_bidirectional": "aten::gru", "rnn_tanh": "aten::rnn_tanh", "rnn_relu": "aten::rnn_relu"}


@pytest.mark.parametrize("name", sorted(TRACED_OPS))
def test_jit_trace_of_gru_and_rnn_records_torchs_operator_and_runs_at_other_lengths(name):
    """GRU and RNN loop in Python; a trace records torch's operator instead of the example's steps."""
    cls, shared, ours, _ = PLAIN[name]
    torch.manual_seed(0)
    model = getattr(lstmkit, cls)(I, H, **shared, **ours).eval()
    example = random_inputs(model, 5, 3, lengths=False)
    traced = torch.jit.trace(model, (example["input"], example["h0"]))
    assert traced.graph.findNode(TRACED_OPS[name]) is not None
    for seed, (T, B) in enumerate(((9, 2), (1, 4)), start=10):
        inputs = random_inputs(model, T, B, lengths=False, seed=seed)
        want = run_torch(model, inputs)
        got = traced(inputs["input"], inputs["h0"])
        atol, rtol = verification_tolerance(model, inputs)
        for out, ref in zip(got, want.values(), strict=True):
            torch.testing.assert_close(out, ref, atol=atol, rtol=rtol)


def test_jit_trace_of_a_gru_given_lengths_is_refused_by_name():
    model = WithLengths(lstmkit.GRU(I, H)).eval()
    with pytest.raises(RuntimeError) as caught:
        torch.jit.trace(model, (torch.randn(5, 3, I), torch.tensor([5, 4, 2])))
    assert trace_error("GRU", "is given lengths") in str(caught.value)

"""ONNX export: every variant, GRU/RNN and task models run in onnxruntime as they do in PyTorch."""

from __future__ import annotations

import copy
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import lstmkit
from lstmkit.export import ExportVerificationError, MissingDependency, to_onnx, verify_onnx
from lstmkit.export.onnx_model import random_inputs, run_torch, verification_tolerance
from lstmkit.models import SequenceModel
from lstmkit.train import ModelConfig
from onnx_checks import check_in_onnxruntime

I, H = 5, 8

# Variant -> (LSTM keyword arguments, the ONNX operator its layers become with recurrence="auto").
LSTM_VARIANTS = {
    "plain": ({}, "LSTM"),
    "peephole": ({"peephole": True}, "LSTM"),
    "coupled": ({"coupled": True}, "LSTM"),
    "coupled_peephole": ({"coupled": True, "peephole": True}, "LSTM"),
    "bidirectional": ({"bidirectional": True, "peephole": True}, "LSTM"),
    "bidirectional_coupled": ({"bidirectional": True, "coupled": True, "peephole": True}, "LSTM"),
    "no_bias": ({"bias": False}, "LSTM"),
    "batch_first": ({"batch_first": True, "bidirectional": True}, "LSTM"),
    "layer_norm": ({"layer_norm": True}, "Scan"),
    "proj": ({"proj_size": 4}, "Scan"),
    "layer_norm_peephole": ({"layer_norm": True, "peephole": True}, "Scan"),
    "proj_no_bias": ({"proj_size": 4, "bias": False}, "Scan"),
    "everything_bidirectional": (
        {"layer_norm": True, "peephole": True, "coupled": True, "proj_size": 4, "bidirectional": True},
        "Scan",
    ),
    "zoneout": ({"zoneout": (0.1, 0.3)}, "Scan"),  # eval mode's update, (1 - p) new + p old, in the Scan body
    "zoneout_c_peephole_proj_bidirectional": (
        {"zoneout": (0.0, 0.5), "peephole": True, "proj_size": 4, "bidirectional": True},
        "Scan",
    ),
}


@pytest.mark.parametrize("lengths", [False, True], ids=["no_lengths", "lengths"])
@pytest.mark.parametrize("name", sorted(LSTM_VARIANTS))
def test_every_lstm_variant_exports_and_matches(tmp_path, name, lengths):
    kwargs, op = LSTM_VARIANTS[name]
    model = lstmkit.LSTM(I, H, 2, **kwargs)
    path = tmp_path / f"{name}.onnx"
    result = to_onnx(model, path, lengths=lengths)
    assert result.layers == (op, op)
    assert result.max_abs_error is not None  # verified: within the bound at every shape
    assert result.inputs == ("input", "h0", "c0", *(("lengths",) if lengths else ()))
    assert result.outputs == ("output", "hn", "cn")
    check_in_onnxruntime(model, path, lengths=lengths)


@pytest.mark.parametrize("lengths", [False, True], ids=["no_lengths", "lengths"])
@pytest.mark.parametrize("name", ["plain", "coupled_peephole", "bidirectional_coupled", "batch_first"])
def test_scan_path_matches_for_operator_variants_too(tmp_path, name, lengths):
    """recurrence="scan" writes lstmkit's own step for layers the LSTM operator could take: the two
    paths agree, so the Scan body is checked on the simple variants as well."""
    model = lstmkit.LSTM(I, H, 2, **LSTM_VARIANTS[name][0])
    result = to_onnx(model, tmp_path / "m.onnx", lengths=lengths, recurrence="scan")
    assert result.layers == ("Scan", "Scan")
    check_in_onnxruntime(model, tmp_path / "m.onnx", lengths=lengths)


@pytest.mark.parametrize(
    ("make", "op"),
    [
        (lambda: lstmkit.GRU(I, H, 2), "GRU"),
        (lambda: lstmkit.GRU(I, H, 2, bidirectional=True, batch_first=True), "GRU"),
        (lambda: lstmkit.RNN(I, H, 2), "RNN"),
        (lambda: lstmkit.RNN(I, H, 2, nonlinearity="relu", bidirectional=True), "RNN"),
    ],
    ids=["gru", "gru_bidirectional_batch_first", "rnn_tanh", "rnn_relu_bidirectional"],
)
def test_gru_and_rnn_export(tmp_path, make, op):
    model = make()
    result = to_onnx(model, tmp_path / "m.onnx", lengths=True)
    assert result.layers == (op, op) and result.inputs == ("input", "h0", "lengths")
    assert result.outputs == ("output", "hn")
    check_in_onnxruntime(model, tmp_path / "m.onnx", lengths=True)


SEQ_CONFIGS = {
    "tokens_lstm": ModelConfig(vocab_size=20, hidden_size=H, num_layers=2, embedding_dim=6, dropout=0.3),
    "tokens_tied_proj": ModelConfig(vocab_size=20, hidden_size=H, num_layers=2, embedding_dim=6, tie_weights=True),
    "tokens_gru": ModelConfig(vocab_size=20, hidden_size=H, num_layers=1, cell="gru"),
    "features_rnn": ModelConfig(input_size=I, output_size=3, hidden_size=H, num_layers=2, cell="rnn"),
}


@pytest.mark.parametrize("lengths", [False, True], ids=["no_lengths", "lengths"])
@pytest.mark.parametrize("name", sorted(SEQ_CONFIGS))
def test_sequence_models_export(tmp_path, name, lengths):
    model = SequenceModel(SEQ_CONFIGS[name])  # in training mode: the export and its check use eval mode
    result = to_onnx(model, tmp_path / "m.onnx", lengths=lengths)
    assert model.training  # restored
    first = "tokens" if model.embedding is not None else "features"
    assert result.inputs[0] == first and result.outputs[0] == "logits"
    check_in_onnxruntime(model, tmp_path / "m.onnx", lengths=lengths)


def test_sequence_model_with_a_layer_norm_projection_core(tmp_path):
    model = SequenceModel(ModelConfig(vocab_size=20, hidden_size=H, num_layers=2, embedding_dim=6, tie_weights=True))
    model.rnn = lstmkit.LSTM(6, H, 2, layer_norm=True, coupled=True, peephole=True)
    result = to_onnx(model, tmp_path / "m.onnx", lengths=True)
    assert result.layers == ("Scan", "Scan")
    check_in_onnxruntime(model, tmp_path / "m.onnx", lengths=True)


def test_streaming_in_onnxruntime_step_by_step(tmp_path):
    """Feeding the exported model one step at a time, state in and out, gives the whole-sequence forward."""
    model = lstmkit.LSTM(I, H, 2, peephole=True, coupled=True).eval()
    to_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(11, 2, I)
    with torch.no_grad():
        want, _ = model(x)
    h, c = np.zeros((2, 2, H), np.float32), np.zeros((2, 2, H), np.float32)
    outs = []
    for t in range(11):
        y, h, c = session.run(None, {"input": x[t : t + 1].numpy(), "h0": h, "c0": c})
        outs.append(y)
    atol, rtol = verification_tolerance(model, {"input": x, "h0": torch.zeros(2, 2, H), "c0": torch.zeros(2, 2, H)})
    np.testing.assert_allclose(np.concatenate(outs), want.numpy(), atol=atol, rtol=rtol)


def test_file_is_valid_onnx_with_symbolic_axes_and_metadata(tmp_path):
    model = lstmkit.LSTM(I, H, 2, proj_size=4)
    to_onnx(model, tmp_path / "m.onnx", lengths=True, metadata={"who": "test"})
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {"input": ["T", "B", I], "h0": [2, "B", 4], "c0": [2, "B", H], "lengths": ["B"]}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["who"] == "test" and meta["lstmkit.version"] == lstmkit.__version__
    assert proto.opset_import[0].version == 17


@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "layer_norm"])
def test_verification_catches_a_wrong_file(tmp_path, layer_norm):
    model = lstmkit.LSTM(I, H, 1, layer_norm=layer_norm)
    to_onnx(model, tmp_path / "m.onnx", verify=False)
    with torch.no_grad():
        model.weight_hh_l0[0, 0] += 0.05  # the file no longer matches the model
    with pytest.raises(ExportVerificationError, match="'output' differs from the PyTorch model"):
        verify_onnx(model, tmp_path / "m.onnx")


def test_verification_tolerance_grows_with_the_sizes():
    """The derived bound (lstmkit/_rounding.py) rises with T, H, layers and LayerNorm, and stays far
    below the difference a wrong weight makes (test_verification_catches_a_wrong_file)."""
    def tol(T=9, **kw):
        torch.manual_seed(0)
        model = lstmkit.LSTM(kw.pop("I", I), kw.pop("H", H), kw.pop("layers", 1), **kw)
        return verification_tolerance(model, random_inputs(model, T, 3, lengths=False))[0]

    assert tol(T=1) < tol(T=9) < tol(T=100)
    assert tol(H=8) < tol(H=64)
    assert tol() < tol(layers=2)
    assert tol() < tol(layer_norm=True)
    assert tol() < 1e-3 and tol(layer_norm=True) < 1e-2
    assert verification_tolerance(lstmkit.GRU(I, H), random_inputs(lstmkit.GRU(I, H), 9, 3, lengths=False))[0] < 1e-3


def test_layer_norm_float32_rounding_is_within_the_derived_bound(tmp_path):
    """lstmkit's float32 outputs and onnxruntime's are each within the rounding bound of the float64
    result, and so within twice it of each other, for random LayerNorm models with every variant."""
    for seed in range(12):
        torch.manual_seed(seed)
        m = lstmkit.LSTM(3, 8, 2, layer_norm=True, peephole=True, coupled=True, proj_size=4, bidirectional=True)
        to_onnx(m, tmp_path / "m.onnx", verify=False)
        session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
        inputs = random_inputs(m, 13, 5, lengths=False, seed=0)
        bound = verification_tolerance(m, inputs)[0] / 2  # one implementation against the exact result
        w32 = run_torch(m, inputs)
        w64 = run_torch(copy.deepcopy(m).double(), {k: v.double() for k, v in inputs.items()})
        got = dict(zip(w32, session.run(list(w32), {k: v.numpy() for k, v in inputs.items()}), strict=True))
        for k in w32:
            assert (w32[k].double() - w64[k]).abs().max().item() <= bound, (seed, k)
            assert float(np.abs(got[k] - w64[k].numpy()).max()) <= bound, (seed, k)
            assert float(np.abs(got[k] - w32[k].numpy()).max()) <= 2 * bound, (seed, k)


# -- what cannot be exported ----------------------------------------------------------------------------
def test_unsupported_models_are_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match=r"load its state_dict into lstmkit.LSTM"):
        to_onnx(torch.nn.LSTM(I, H), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="model must be an lstmkit LSTM, GRU or RNN, a SequenceModel, or a classify"):
        to_onnx(lstmkit.LSTMCell(I, H), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="float32 parameters"):
        to_onnx(lstmkit.LSTM(I, H, dtype=torch.float64), tmp_path / "m.onnx")
    seq = SequenceModel(SEQ_CONFIGS["tokens_lstm"])
    seq.rnn = torch.nn.LSTM(6, H, 2)
    with pytest.raises(TypeError, match=r"model\.rnn must be an lstmkit LSTM"):
        to_onnx(seq, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments_name_themselves(tmp_path):
    model = lstmkit.LSTM(I, H)
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="recurrence must be one of"):
        to_onnx(model, path, recurrence="loop")
    with pytest.raises(ValueError, match="recurrence='scan' applies to LSTM layers"):
        to_onnx(lstmkit.GRU(I, H), path, recurrence="scan")
    with pytest.raises(ValueError, match=r"opset must be an integer in \[17"):
        to_onnx(model, path, opset=13)
    with pytest.raises(ValueError, match="path's directory"):
        to_onnx(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError, match="path must be a file name"):
        to_onnx(model, tmp_path)
    with pytest.raises(TypeError, match="path must be a str"):
        to_onnx(model, 3)
    with pytest.raises(TypeError, match="lengths must be True or False"):
        to_onnx(model, path, lengths="yes")
    with pytest.raises(TypeError, match="metadata must be a mapping of str to str"):
        to_onnx(model, path, metadata={"a": 1})
    assert not path.exists()


def test_missing_packages_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(MissingDependency, match=r'pip install "lstmkit\[onnx\]"'):
        to_onnx(lstmkit.LSTM(I, H), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()  # refused before writing
    to_onnx(lstmkit.LSTM(I, H), tmp_path / "m.onnx", verify=False)  # the runtime is only for the check
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependency, match="ONNX export needs the package 'onnx'"):
        to_onnx(lstmkit.LSTM(I, H), tmp_path / "m.onnx", verify=False)

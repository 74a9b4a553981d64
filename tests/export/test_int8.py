"""int8 ONNX files (onnxruntime.quantization.quantize_dynamic of the float export): written, smaller,
verified against the float model within the bound derived from the int8 steps, wrong files caught,
and models onnxruntime cannot quantise usefully either written with a note or refused with the reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

import lstmkit
from lstmkit.cli import app
from lstmkit.export import ExportVerificationError
from lstmkit.export.int8 import int8_tolerance, to_int8_onnx, verify_int8
from lstmkit.export.onnx_model import random_inputs, run_torch
from lstmkit.export.rundir import export_run
from lstmkit.models import SequenceModel
from lstmkit.tasks import TaskError, runner
from lstmkit.train import ModelConfig

TINY = ["model.hidden_size=16", "model.num_layers=2", "model.embedding_dim=8", "data.batch_size=4", "data.bptt=16",
        "train.max_steps=6", "train.warmup_steps=1", "train.progress=false", "train.tensorboard=false"]  # fmt: skip


def models():
    torch.manual_seed(0)
    yield "lm", SequenceModel(ModelConfig(vocab_size=40, hidden_size=32, num_layers=2, embedding_dim=16))
    yield "bidirectional-peephole", lstmkit.LSTM(8, 16, 2, bidirectional=True, peephole=True)
    yield "coupled", lstmkit.LSTM(8, 16, coupled=True)
    yield "projection", lstmkit.LSTM(8, 16, proj_size=8)


@pytest.mark.parametrize(("name", "model"), list(models()), ids=[n for n, _ in models()])
@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_file_is_smaller_and_within_the_derived_bound(name, model, per_channel, tmp_path):
    model.eval()
    result = to_int8_onnx(model, tmp_path / "m.int8.onnx", float_path=tmp_path / "m.onnx", per_channel=per_channel)
    assert result.int8_bytes < result.float_bytes
    assert 0 < result.bound_share < 1 and result.max_abs_error > 0  # int8 really differs, within the bound
    graph_ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    if name == "projection":  # the Scan path: W_ih x is int8, the recurrent MatMul inside the Scan stays float
        assert "MatMulInteger" in graph_ops and result.float_layers
    else:
        assert "DynamicQuantizeLSTM" in graph_ops and not result.float_layers
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert "quantize_dynamic" in meta["lstmkit.int8"] and "lstmkit.layers" in meta


def test_the_bound_follows_the_int8_steps_onnxruntime_used(tmp_path):
    model = lstmkit.LSTM(8, 16).eval()
    result = to_int8_onnx(model, tmp_path / "m.int8.onnx", float_path=tmp_path / "m.onnx")
    scales = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(result.path)).graph.initializer}
    w = numpy_helper.to_array({i.name: i for i in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}["W_l0"])
    # onnxruntime's symmetric step per gate row is max |w_r| / 64 with 7-bit weights, which int8_tolerance assumes
    np.testing.assert_allclose(scales["W_l0_scale"].reshape(-1), np.abs(w).max(-1).reshape(-1) / 64, rtol=1e-6)
    inputs = random_inputs(model, 1, 2, lengths=False)
    small, large = model.weight_hh_l0.detach().clone(), None
    with torch.no_grad():  # doubling the recurrent weights doubles their step: the bound grows
        before = int8_tolerance(model, inputs, ("LSTM",))
        model.weight_hh_l0.mul_(2)
        large = int8_tolerance(model, inputs, ("LSTM",))
        model.weight_hh_l0.copy_(small)
    assert large > before
    with pytest.raises(ValueError, match="bounds one step"):
        int8_tolerance(model, random_inputs(model, 3, 2, lengths=False), ("LSTM",))


def test_full_range_weights_saturate_on_this_cpu_or_pass(tmp_path):
    """Full-range int8 weights: onnxruntime's int16 pair sums saturate on CPUs without VNNI, which the
    bound catches (docs/deployment.md); with VNNI the file verifies. Either way no wrong file passes."""
    model = lstmkit.LSTM(8, 16).eval()
    try:
        result = to_int8_onnx(model, tmp_path / "f.int8.onnx", float_path=tmp_path / "f.onnx", reduce_range=False)
    except ExportVerificationError as e:
        assert "more than the bound" in str(e)
    else:
        assert result.bound_share < 1


def test_a_wrong_int8_file_is_caught(tmp_path):
    model = lstmkit.LSTM(16, 32).eval()
    result = to_int8_onnx(model, tmp_path / "m.int8.onnx", float_path=tmp_path / "m.onnx")
    proto = onnx.load(str(result.path))
    for init in proto.graph.initializer:  # the input and forget gate blocks swapped in the int8 weights
        if init.name == "W_l0_quantized":
            w = numpy_helper.to_array(init).copy()  # (D, I, 4H): ONNX gate order i, o, f, c along the last axis
            w[..., :32], w[..., 64:96] = w[..., 64:96].copy(), w[..., :32].copy()
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(proto, str(tmp_path / "wrong.onnx"))
    with pytest.raises(ExportVerificationError, match="more than the bound"):
        verify_int8(model, tmp_path / "wrong.onnx", ("LSTM",))


def test_a_gru_stays_float_with_a_note(tmp_path):
    model = lstmkit.GRU(8, 16).eval()
    result = to_int8_onnx(model, tmp_path / "g.int8.onnx", float_path=tmp_path / "g.onnx")
    assert result.quantized_ops == {} and "no int8 GRU kernel" in result.float_layers[0]
    assert any("stays float" in line for line in result.describe())
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    inputs = random_inputs(model, 5, 2, lengths=False)
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    np.testing.assert_allclose(got[0], run_torch(model, inputs)["output"].numpy(), atol=1e-5)


def test_layer_norm_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="--int8 does not cover LayerNorm LSTMs: LayerNorm divides W_ih x"):
        to_int8_onnx(lstmkit.LSTM(8, 16, layer_norm=True), tmp_path / "x.int8.onnx", float_path=tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_lstm_fcn_is_refused_with_the_reason(tmp_path):
    """Its conv branch stays float (no smaller file) and its LSTM reads C channels as steps; it used to fail on a
    two-channel case with "int8_tolerance bounds one step (T = 1), got T = 2", after the float file was written."""
    from lstmkit.models import ClassifyModel, FCNClassifier

    model = FCNClassifier(ClassifyModel(input_size=2, output_size=3, hidden_size=4, num_layers=1, dropout=0.0,
                                        arch="lstm-fcn", max_length=6, fcn_filters=(4, 4, 4))).eval()  # fmt: skip
    with pytest.raises(ValueError, match=r"^--int8 does not cover this model \(FCNClassifier\): its conv branch holds "
                                         r"most of the weights and stays float"):  # fmt: skip
        to_int8_onnx(model, tmp_path / "x.int8.onnx", float_path=tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8_run")
    text = root / "text.txt"
    text.write_text("But soft, what light through yonder window breaks?\n" * 80, encoding="utf-8")
    return runner.train("charlm", runner.build_config("charlm", overrides=[*TINY, f"data.text={text}"], seed=1),
                        root / "run").run_dir  # fmt: skip


def test_cli_export_int8_writes_both_files(char_run):
    r = CliRunner().invoke(app, ["export", str(char_run), "--int8"])
    assert r.exit_code == 0, r.output
    assert (char_run / "model.onnx").is_file() and (char_run / "model.int8.onnx").is_file()
    assert "int8 file verified in onnxruntime against the float model" in r.stdout
    assert (char_run / "model.int8.onnx").stat().st_size < (char_run / "model.onnx").stat().st_size
    meta = {p.key: p.value for p in onnx.load(str(char_run / "model.int8.onnx")).metadata_props}
    assert "lstmkit.tokenizer" in meta  # still servable from the file alone
    r = CliRunner().invoke(app, ["export", str(char_run), "--per-tensor"])
    assert r.exit_code == 2 and "--per-tensor applies to --int8 only" in r.stderr
    with pytest.raises(ValueError, match="--lengths does not apply with --int8"):
        export_run(char_run, int8=True, lengths=True)


def test_unsupported_task_models_say_why(tmp_path):
    task = "forecast"
    from lstmkit.tasks.registry import get_task

    run = runner.train(task, get_task(task).smoke_config(tmp_path), tmp_path / "run").run_dir
    r = CliRunner().invoke(app, ["export", str(run), "--int8"])
    assert r.exit_code == 2 and "--int8 does not cover this model" in r.stderr and "AR skip" in r.stderr
    assert not (run / "model.int8.onnx").exists() and not (run / "model.onnx").exists()
    assert TaskError  # the other failures (missing onnxruntime, verification) are TaskErrors, as for float

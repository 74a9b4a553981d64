"""Whole task models in ONNX: classify's SequenceClassifier and forecast's ForecastNet, from a model
and from a trained run, served by onnxruntime alone."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import lstmkit
from lstmkit.cli import app
from lstmkit.data.ts_format import read_ts
from lstmkit.export import _spots, to_onnx
from lstmkit.export.onnx_model import (
    ExportVerificationError,
    random_inputs,
    run_torch,
    verification_tolerance,
    verify_onnx,
)
from lstmkit.export.rundir import export_run
from lstmkit.models import EnsembleClassifier, EnsembleForecaster, FCNClassifier
from lstmkit.tasks import get_task, runner
from lstmkit.tasks.classify import ClassifyModel, SequenceClassifier, predict, predict_proba, prepare_data
from lstmkit.tasks.ctc import CTCModel, CTCRecognizer
from lstmkit.tasks.forecast import ForecastModel, ForecastNet
from lstmkit.tasks.rundir import open_run
from lstmkit.train import apply_overrides

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_classify.py"


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _to_double(inputs: dict) -> dict:
    return {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn at random, so that a head or skip initialised to zero still counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_classifier_matches_torch_in_onnxruntime(pooling, bidirectional, num_layers, tmp_path):
    config = ClassifyModel(input_size=3, output_size=4, hidden_size=6, num_layers=num_layers, dropout=0.0,
                           bidirectional=bidirectional, pooling=pooling)  # fmt: skip
    model = _randomize(SequenceClassifier(config), seed=num_layers)
    result = to_onnx(model, tmp_path / "c.onnx")  # verified inside at three (T, B) with random lengths >= 1
    assert result.inputs == ("features", "lengths") and result.outputs == ("logits", "probabilities")
    assert result.max_abs_error <= 1e-5
    # Once more here, independently of the export's own check: cases of lengths 1 .. T in one batch.
    x = torch.randn(7, 5, 3)
    lengths = torch.tensor([7, 1, 4, 6, 2])
    (logits,) = _session(result.path).run(["logits"], {"features": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        want = model(x, lengths)
    np.testing.assert_allclose(logits, want.numpy(), atol=1e-5, rtol=1e-5)


def _randomize_statistics(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """BatchNorm's running statistics drawn too (mean around 0, variance in [0.5, 1.5]), so that eval differs from
    a plain affine map of the conv output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(0.5 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


@pytest.mark.parametrize("pooling", ["attention", "last", "mean"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("arch", ["lstm", "lstm-fcn"])
def test_attention_and_lstm_fcn_classifiers_match_torch_in_onnxruntime(arch, bidirectional, pooling, tmp_path):
    config = ClassifyModel(input_size=3, output_size=4, hidden_size=6, num_layers=2, dropout=0.0,
                           bidirectional=bidirectional, pooling=pooling, arch=arch, max_length=7,
                           fcn_filters=(4, 5, 3))  # fmt: skip
    model = _randomize_statistics(_randomize((FCNClassifier if arch == "lstm-fcn" else SequenceClassifier)(config),
                                             seed=7), seed=8)  # fmt: skip
    result = to_onnx(model, tmp_path / "c.onnx")  # verified inside at three (T, B) with random lengths >= 1
    assert result.inputs == ("features", "lengths") and result.outputs == ("logits", "probabilities")
    session = _session(result.path)
    # Once more here: cases of lengths 1 .. T in one batch, T above and below the LSTM-FCN's max_length (7).
    for T, lengths in ((9, [9, 1, 4, 7, 2]), (5, [5, 3, 1])):
        x = torch.randn(T, len(lengths), 3)
        inputs = {"features": x, "lengths": torch.tensor(lengths)}
        logits, probs = session.run(["logits", "probabilities"], {k: v.numpy() for k, v in inputs.items()})
        want = run_torch(model, inputs)
        atol, rtol = verification_tolerance(model, inputs)  # the derived float32 bound (lstmkit/_rounding.py)
        np.testing.assert_allclose(logits, want["logits"].numpy(), atol=atol, rtol=rtol)
        np.testing.assert_allclose(probs, want["probabilities"].numpy(), atol=atol, rtol=rtol)


def test_lstm_fcn_verification_catches_a_wrong_batchnorm_statistic(tmp_path):
    config = ClassifyModel(input_size=2, output_size=3, hidden_size=5, num_layers=1, dropout=0.0, arch="lstm-fcn",
                           max_length=6, fcn_filters=(4, 4, 4))  # fmt: skip
    model = _randomize_statistics(_randomize(FCNClassifier(config), seed=1), seed=2)
    path = to_onnx(model, tmp_path / "c.onnx").path
    with torch.no_grad():
        # The file keeps the old statistics: as if the exporter had dropped a BatchNorm's running mean.
        model.fcn[10].running_mean.add_(5.0)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        verify_onnx(model, path)


def _karim_sized(seed: int, pooling: str = "last") -> FCNClassifier:
    """An LSTM-FCN of the task's sizes (Karim et al.: 128-256-128 filters, kernels 8-5-3; an 8-cell LSTM)."""
    config = ClassifyModel(input_size=2, output_size=4, hidden_size=8, num_layers=1, dropout=0.0, arch="lstm-fcn",
                           bidirectional=False, pooling=pooling, max_length=150)  # fmt: skip
    model = FCNClassifier(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # default initialisation; BatchNorm's affine and statistics drawn, as training leaves them
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.2 + torch.rand(m.num_features, generator=g))
    return model.eval()


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_lstm_fcn_bound_holds_against_float64_and_is_tight_enough_to_check(pooling):
    """The conv branch's componentwise bound (task_models._conv_branch_error) at the task's sizes: float32 torch is
    within half the verification tolerance (one evaluation's bound) of the same model in float64, and that
    tolerance is a small share of the logits."""
    model = _karim_sized(seed=3, pooling=pooling)
    for seed, (T, B) in enumerate([(150, 3), (97, 4), (12, 2)]):
        inputs = random_inputs(model, T, B, lengths=True, seed=seed)
        atol, _ = verification_tolerance(model, inputs)
        got = run_torch(model, inputs)
        exact = run_torch(model.double(), _to_double(inputs))
        model.float()
        for name in ("logits", "probabilities"):
            err = float((got[name].double() - exact[name]).abs().max())
            assert err <= atol / 2, (name, err, atol)
        # a tenth of the logits at most (the LSTM branch's worst-case bound is most of what is left, the attention
        # readout's above all); the norm-based conv bound this replaced was above the logits themselves
        assert atol < 0.1 * float(got["logits"].abs().max()), (atol, float(got["logits"].abs().max()))


def test_lstm_fcn_verification_catches_a_kernel_written_backwards(tmp_path):
    """Torch's Conv1d and ONNX's Conv are both cross-correlations; an exporter that flipped one block's kernels
    (writing a convolution) moves these logits by about 0.01, which the norm-based bound (~0.05 here) let through."""
    model = _karim_sized(seed=4)
    result = to_onnx(model, tmp_path / "c.onnx")
    assert result.loose == () and result.describe()[-1].startswith("verified in onnxruntime against PyTorch")
    with torch.no_grad():  # the file keeps the right kernels; the model now holds what a flipping exporter wrote
        model.fcn[1].weight.copy_(model.fcn[1].weight.flip(-1))
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        verify_onnx(model, result.path)


@pytest.mark.parametrize(("arch", "pooling", "bidirectional", "num_layers"), [
    ("lstm", "last", True, 2), ("lstm", "mean", False, 2), ("lstm", "attention", True, 1),
    ("lstm-fcn", "last", False, 1), ("lstm-fcn", "attention", True, 1)])
def test_spotted_bound_holds_against_float64(arch, pooling, bidirectional, num_layers):
    """The logits' bound carried by autograd (lstmkit.export._spots): float32 torch within half the verification
    tolerance of the same model in float64, for random weights of the size a trained model has (0.3 N(0, 1))."""
    config = ClassifyModel(input_size=3, output_size=4, hidden_size=6, num_layers=num_layers, dropout=0.0,
                           bidirectional=bidirectional, pooling=pooling, arch=arch, max_length=7,
                           fcn_filters=(4, 5, 3))  # fmt: skip
    cls = FCNClassifier if arch == "lstm-fcn" else SequenceClassifier
    model = _randomize_statistics(_randomize(cls(config), seed=11), seed=12)
    assert _spots.plain_lstm(model.rnn)
    for seed, (T, B) in enumerate([(13, 4), (5, 3), (1, 2)]):
        inputs = random_inputs(model, T, B, lengths=True, seed=seed)
        atol, _ = verification_tolerance(model, inputs)
        got = run_torch(model, inputs)
        exact = run_torch(copy.deepcopy(model).double(), _to_double(inputs))
        for name in ("logits", "probabilities"):
            assert float((got[name].double() - exact[name]).abs().max()) <= atol / 2


def test_task_sized_bilstm_verification_catches_a_recurrent_matrix_off_by_a_percent(tmp_path):
    """The task's biLSTM (2 x 64 units each way, frames of 9 features; trained-size weights): the worst-case bound
    was 76 here, logits up to 0.6; the spotted one is a small share of them and catches one recurrent
    matrix written 1% off (0.7-3e-3 on the logits, against a bound of 2-3e-4)."""
    config = ClassifyModel(input_size=9, output_size=3, hidden_size=64, num_layers=2, dropout=0.0,
                           bidirectional=True)  # fmt: skip
    model = _randomize(SequenceClassifier(config), seed=5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)  # 0.15 N(0, 1): a trained layer's scale, so that the gates do not all saturate
    inputs = random_inputs(model, 28, 3, lengths=True, seed=0)
    atol, _ = verification_tolerance(model, inputs)
    assert atol < 0.01 * float(run_torch(model, inputs)["logits"].abs().max())
    result = to_onnx(model, tmp_path / "c.onnx")
    assert result.loose == ()
    with torch.no_grad():
        model.rnn.weight_hh_l1_reverse.mul_(1.01)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        verify_onnx(model, result.path)


def test_cores_the_spots_do_not_cover_keep_the_worst_case_bound():
    for core in (lstmkit.LSTM(3, 4, peephole=True), lstmkit.LSTM(3, 4, layer_norm=True),
                 lstmkit.LSTM(3, 4, proj_size=2), lstmkit.LSTM(3, 4, coupled=True), lstmkit.GRU(3, 4)):  # fmt: skip
        assert not _spots.plain_lstm(core)
    # classify's cores are plain LSTMs; a peephole core put in place checks the fallback (the core's worst case)
    config = ClassifyModel(input_size=3, output_size=4, hidden_size=6, num_layers=1, dropout=0.0)
    model = SequenceClassifier(config)
    model.rnn = lstmkit.LSTM(3, 6, bidirectional=True, peephole=True)
    model = _randomize(model, seed=2)
    inputs = random_inputs(model, 9, 3, lengths=True, seed=0)
    assert _spots.logit_error(model, inputs)[1] is False  # the head is spotted, the core is not
    atol, _ = verification_tolerance(model, inputs)
    exact = run_torch(copy.deepcopy(model).double(), _to_double(inputs))
    assert float((run_torch(model, inputs)["logits"].double() - exact["logits"]).abs().max()) <= atol / 2


def test_attention_with_large_weights_gets_a_finite_bound_and_a_note_not_an_overflow(tmp_path):
    # A trained ALSTM-FCN on PLAID (1,344-step LSTM input) made math.expm1 overflow in the derived bound: its
    # attention scores' error bound came to ~1.8, so the softmax factor exp(2 e_s) - 1 fed e^2000 into the
    # probabilities' bound. Scaled-up attention weights do the same here.
    config = ClassifyModel(input_size=2, output_size=3, hidden_size=5, num_layers=1, dropout=0.0, arch="lstm-fcn",
                           pooling="attention", max_length=6, fcn_filters=(4, 4, 4))  # fmt: skip
    model = _randomize_statistics(_randomize(FCNClassifier(config), seed=1), seed=2)
    with torch.no_grad():
        model.attention.score.weight.mul_(3000.0)
        model.head.weight.mul_(100.0)
    inputs = random_inputs(model, 9, 3, lengths=True)
    atol, rtol = verification_tolerance(model, inputs)
    assert np.isfinite(atol) and atol == rtol
    # the attention weights differ by at most 2 in sum, the probabilities by at most 1: a finite bound, too loose
    # to check these outputs, which the export says instead of overflowing or passing silently
    result = to_onnx(model, tmp_path / "c.onnx")
    assert result.loose == ("logits", "probabilities")
    assert result.describe()[-1].endswith("; for logits and probabilities the derived float32 bound is as large as "
                                          "the values themselves, so that check cannot tell a wrong graph from "
                                          "rounding for this model")  # fmt: skip


def _ensemble(seed: int) -> EnsembleClassifier:
    """A biLSTM with attention pooling, an LSTM-FCN and a plain last-step LSTM, on 3 features and 4 classes."""
    base = dict(input_size=3, output_size=4, hidden_size=6, num_layers=1, dropout=0.0, max_length=7,
                fcn_filters=(4, 5, 3))  # fmt: skip
    members = [SequenceClassifier(ClassifyModel(**base, bidirectional=True, pooling="attention")),
               FCNClassifier(ClassifyModel(**base, arch="lstm-fcn")),
               SequenceClassifier(ClassifyModel(**base))]  # fmt: skip
    return _randomize_statistics(_randomize(EnsembleClassifier(members), seed=seed), seed=seed + 1)


def test_ensemble_forward_is_the_log_of_the_mean_probability_without_its_underflow():
    """Reference twin in float64: log(mean_i softmax(z_i)); in float32 where every member gives a class less than
    float32's smallest probability the log of the mean would be -inf, the logsumexp form stays finite and right."""
    model = _ensemble(seed=3).double()
    x, lengths = torch.randn(6, 4, 3, dtype=torch.float64), torch.tensor([6, 2, 5, 1])
    with torch.no_grad():
        want = torch.stack([m(x, lengths).softmax(-1) for m in model.members]).mean(0).log()
        torch.testing.assert_close(model(x, lengths), want, rtol=1e-12, atol=1e-12)
    confident = _ensemble(seed=3)
    with torch.no_grad():
        for m in confident.members:
            m.head.weight.zero_()
            m.head.bias.copy_(torch.tensor([0.0, 200.0, 0.0, 0.0]))  # classes 0, 2, 3 at about e^-200 each
        got = confident(x.float(), lengths)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[:, 0], torch.full((4,), -200.0), rtol=0, atol=1e-3)


def test_ensemble_matches_torch_in_onnxruntime(tmp_path):
    """One graph, the members side by side on the same inputs, verified inside within the derived bound
    (task_models.ensemble_error); and here again at lengths 1 .. T, T above and below the LSTM-FCN's max_length."""
    model = _ensemble(seed=5)
    result = to_onnx(model, tmp_path / "e.onnx")
    assert result.inputs == ("features", "lengths") and result.outputs == ("logits", "probabilities")
    assert len(result.layers) == 3 and not result.loose
    session = _session(result.path)
    for T, lengths in ((9, [9, 1, 4, 7, 2]), (5, [5, 3, 1])):
        inputs = {"features": torch.randn(T, len(lengths), 3), "lengths": torch.tensor(lengths)}
        logits, probs = session.run(["logits", "probabilities"], {k: v.numpy() for k, v in inputs.items()})
        want = run_torch(model, inputs)
        atol, rtol = verification_tolerance(model, inputs)
        # Not vacuous: below the probabilities' size (the attention member's own bound, 0.012 here, is loose and
        # enters about four times: log-softmax, then softmax); the next test shows a wrong average caught.
        assert atol < 0.1 * float(want["probabilities"].max())
        np.testing.assert_allclose(logits, want["logits"].numpy(), atol=atol, rtol=rtol)
        np.testing.assert_allclose(probs, want["probabilities"].numpy(), atol=atol, rtol=rtol)


def test_ensemble_verification_catches_an_average_of_logits(tmp_path, monkeypatch):
    """A graph that averaged the members' logits (not their probabilities) is a different classifier: the
    verification must say so."""
    from lstmkit.export import task_models

    def mean_of_logits(gb, model, recurrence):
        outs, kinds = [], []
        for m in model.members:
            (logits, _), k = task_models._emit_classifier(gb, m, task_models.core_of(m), recurrence)
            outs.append(logits)
            kinds += k
        mean = gb.op("Mean", outs, "mean_logits")
        return [mean, gb.op("Softmax", [mean], "probs", axis=-1)], kinds

    monkeypatch.setattr(task_models, "_emit_ensemble", mean_of_logits)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        to_onnx(_ensemble(seed=5), tmp_path / "e.onnx")


def test_ensemble_members_must_agree(tmp_path):
    a = SequenceClassifier(ClassifyModel(input_size=3, output_size=4, hidden_size=5))
    b = SequenceClassifier(ClassifyModel(input_size=3, output_size=2, hidden_size=5))
    with pytest.raises(ValueError, match=r"^the ensemble's members read and give different sizes \(features, "
                                         r"classes\): \[\(3, 2\), \(3, 4\)\]$"):  # fmt: skip
        to_onnx(EnsembleClassifier([a, b]), tmp_path / "e.onnx")


def test_classifier_scan_recurrence_matches_too(tmp_path):
    model = _randomize(SequenceClassifier(ClassifyModel(input_size=2, output_size=3, hidden_size=5)), seed=3)
    result = to_onnx(model, tmp_path / "c.onnx", recurrence="scan")
    assert set(result.layers) == {"Scan"} and result.max_abs_error <= 1e-5


@pytest.mark.parametrize("bidirectional", [True, False])
def test_ctc_recognizer_matches_torch_in_onnxruntime(bidirectional, tmp_path):
    config = CTCModel(input_size=4, output_size=6, hidden_size=5, num_layers=2, dropout=0.0,
                      bidirectional=bidirectional)  # fmt: skip
    model = _randomize(CTCRecognizer(config), seed=5)
    result = to_onnx(model, tmp_path / "r.onnx")
    assert result.inputs == ("features", "lengths") and result.outputs == ("log_probs",)
    x = torch.randn(8, 3, 4)
    lengths = torch.tensor([8, 2, 5])
    (got,) = _session(result.path).run(None, {"features": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        want = model(x, lengths)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)
    assert np.allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)  # log-probabilities over blank + symbols


@pytest.mark.parametrize("kind", ["classifier", "lstm-fcn", "forecaster", "recognizer"])
def test_task_models_with_zoneout_export_its_eval_update(kind, tmp_path):
    """model.zoneout reaches these models' LSTMs; the export writes each layer as a Scan with the eval-mode update
    and verifies it (inside ``to_onnx``, against the bound the spots carry: the mixes are spotted too), and the spots'
    bound holds against float64."""
    z = (0.2, 0.5)
    if kind in ("classifier", "lstm-fcn"):
        config = ClassifyModel(input_size=3, output_size=4, hidden_size=6, num_layers=2, dropout=0.0,
                               bidirectional=True, pooling="last", arch="lstm" if kind == "classifier" else kind,
                               max_length=7, fcn_filters=(4, 5, 3), zoneout=z)  # fmt: skip
        model = (FCNClassifier if kind == "lstm-fcn" else SequenceClassifier)(config)
        out = "logits"
    elif kind == "forecaster":
        model = ForecastNet(ForecastModel(input_size=1, output_size=1, hidden_size=16, dropout=0.0, zoneout=z), 4)
        out = "forecast"
    else:
        model = CTCRecognizer(CTCModel(input_size=4, output_size=6, hidden_size=5, num_layers=2, dropout=0.0,
                                       bidirectional=True, zoneout=z))  # fmt: skip
        out = "log_probs"
    model = _randomize_statistics(_randomize(model, seed=13), seed=14)
    assert model.rnn.zoneout == z and _spots.plain_lstm(model.rnn)
    result = to_onnx(model, tmp_path / "m.onnx")
    assert set(result.layers) == {"Scan"} and result.max_abs_error is not None
    for seed, (T, B) in enumerate([(9, 4), (5, 2)]):  # (the forecaster's AR skip reads 4 steps)
        inputs = random_inputs(model, T, B, lengths=kind != "forecaster", seed=seed)
        atol, _ = verification_tolerance(model, inputs)
        exact = run_torch(copy.deepcopy(model).double(), _to_double(inputs))[out]
        assert float((run_torch(model, inputs)[out].double() - exact).abs().max()) <= atol / 2


def test_ctc_ocr_run_exports_with_its_alphabet(tmp_path):
    config = get_task("ctc-ocr").smoke_config(tmp_path)
    run_dir = runner.train("ctc-ocr", config, tmp_path / "run").run_dir
    result = export_run(run_dir, out=tmp_path / "ocr.onnx")
    assert result.outputs == ("log_probs",) and result.max_abs_error <= 1e-5
    meta = _session(result.path).get_modelmeta().custom_metadata_map
    classes = json.loads(meta["lstmkit.classes"])
    assert classes[0] == "<blank>" and "A" in classes and "7" in classes
    assert set(json.loads(meta["lstmkit.preprocess"])) == {"input_mean", "input_std"}


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("ar_order", [0, 4])
def test_forecaster_matches_torch_in_onnxruntime(cell, ar_order, relative, tmp_path):
    """Also with model.relative: the graph subtracts the last target value from the target column only (the
    second feature is a covariate), so the LSTM reads what ForecastNet.lstm_input gives it."""
    config = ForecastModel(input_size=2, output_size=3, hidden_size=6, num_layers=2, dropout=0.0, cell=cell,
                           relative=relative)  # fmt: skip
    model = _randomize(ForecastNet(config, ar_order), seed=ar_order)
    assert (model.ar is not None) == (ar_order > 0)
    result = to_onnx(model, tmp_path / "f.onnx")
    assert result.inputs == ("features",) and result.outputs == ("forecast",)
    x = torch.randn(9, 4, 2)
    (got,) = _session(result.path).run(None, {"features": x.numpy()})
    with torch.no_grad():
        want = model(x)
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("relative", [False, True])
def test_forecaster_on_a_base_matches_torch_in_onnxruntime(relative, tmp_path):
    """model.base: the last H columns of the last step (the base model's change) are added to the output."""
    config = ForecastModel(input_size=1 + 1 + 3, output_size=3, hidden_size=6, dropout=0.0, ar_skip=False,
                           base="arima", relative=relative)  # fmt: skip
    model = _randomize(ForecastNet(config, 0), seed=3)
    assert model.ar is None and model.base_columns == 3
    result = to_onnx(model, tmp_path / "f.onnx")
    x = torch.randn(7, 4, 5)
    (got,) = _session(result.path).run(None, {"features": x.numpy()})
    with torch.no_grad():
        want = model(x)
        torch.nn.init.zeros_(model.core.head.weight)
        torch.nn.init.zeros_(model.core.head.bias)
        torch.testing.assert_close(model(x), x[-1, :, :1] + x[-1, :, 2:])  # no LSTM: last value + base change
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("extra", "ar_order"), [
    ({}, 4), ({"relative": True, "ar_skip": False}, 0), ({"output_size": 3, "num_layers": 2}, 6),
    ({"input_size": 5, "output_size": 3, "ar_skip": False, "base": "arima", "relative": True}, 0)])
def test_forecaster_spotted_bound_holds_against_float64(extra, ar_order):
    """A plain-LSTM forecaster's bound carried by autograd (lstmkit.export._spots.forecast_error): float32 torch
    within half the verification tolerance of float64, with the AR skip, level-free inputs, several horizons and
    layers, and a base's columns."""
    config = ForecastModel(**{"input_size": 1, "output_size": 1, "hidden_size": 16, "dropout": 0.0, **extra})
    model = _randomize(ForecastNet(config, ar_order), seed=4)
    for seed, (T, B) in enumerate([(30, 3), (8, 2)]):
        inputs = random_inputs(model, T, B, lengths=False, seed=seed)
        atol, _ = verification_tolerance(model, inputs)
        err = float((run_torch(model, inputs)["forecast"].double()
                     - run_torch(copy.deepcopy(model).double(), _to_double(inputs))["forecast"]).abs().max())
        assert err <= atol / 2, (err, atol)


def test_forecaster_verification_catches_a_recurrent_matrix_off_by_a_percent(tmp_path):
    """2 x 32 units at a trained model's weight scale: the worst-case bound was 9.2 against forecasts of 0.9 (no
    check); the spotted one is about 1e-5 and catches one recurrent matrix written 1% off. A GRU core keeps the
    worst case (not spotted)."""
    config = ForecastModel(input_size=1, output_size=1, hidden_size=32, num_layers=2, dropout=0.0)
    model = _randomize(ForecastNet(config, 4), seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    inputs = random_inputs(model, 50, 3, lengths=False, seed=0)
    assert verification_tolerance(model, inputs)[0] < 1e-3 * float(run_torch(model, inputs)["forecast"].abs().max())
    result = to_onnx(model, tmp_path / "f.onnx")
    with torch.no_grad():
        model.rnn.weight_hh_l1.mul_(1.01)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        verify_onnx(model, result.path)
    gru = _randomize(ForecastNet(ForecastModel(input_size=1, output_size=1, hidden_size=4, dropout=0.0, cell="gru"),
                                 2), seed=1)  # fmt: skip
    assert _spots.forecast_error(gru, random_inputs(gru, 6, 2, lengths=False, seed=0)) is None


@pytest.mark.parametrize("bidirectional", [True, False])
def test_recognizer_spotted_bound_holds_against_float64_and_catches_a_wrong_file(bidirectional, tmp_path):
    """A CTC recognizer's bound carried by autograd (_spots.recognizer_error, one backward pass per step and
    symbol): float32 torch within half of it of float64; a 2 x 32 model at a trained weight scale (the worst case was
    0.33-1.05 here against log-probabilities up to 2.9; spotted 3-4e-5) catches one recurrent matrix written 1% off;
    beyond MAX_WORK (T^2 x symbols) the worst case is kept."""
    config = CTCModel(input_size=6, output_size=12, hidden_size=32, num_layers=2, dropout=0.0,
                      bidirectional=bidirectional)  # fmt: skip
    model = _randomize(CTCRecognizer(config), seed=6)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    for seed, (T, B) in enumerate([(9, 3), (4, 2)]):
        inputs = random_inputs(model, T, B, lengths=True, seed=seed)
        atol, _ = verification_tolerance(model, inputs)
        got = run_torch(model, inputs)["log_probs"].double()
        err = float((got - run_torch(copy.deepcopy(model).double(), _to_double(inputs))["log_probs"]).abs().max())
        assert err <= atol / 2 and atol < 1e-3 * float(got.abs().max()), (err, atol)
    result = to_onnx(model, tmp_path / "r.onnx")
    with torch.no_grad():
        model.rnn.weight_hh_l1.mul_(1.01)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        verify_onnx(model, result.path)
    T = math.isqrt(_spots.MAX_WORK // model.head.out_features) + 1
    assert _spots.recognizer_error(model, random_inputs(model, T, 1, lengths=True, seed=0)) is None


def _forecast_ensemble(seed: int) -> EnsembleForecaster:
    """Three forecasters of 2 features and horizon 3: with an AR skip of order 4, level-free, and plain."""
    base = dict(input_size=2, output_size=3, hidden_size=5, dropout=0.0)
    nets = [ForecastNet(ForecastModel(**base), 4), ForecastNet(ForecastModel(**base, relative=True, ar_skip=False), 0),
            ForecastNet(ForecastModel(**base, ar_skip=False), 0)]  # fmt: skip
    return _randomize(EnsembleForecaster(nets), seed=seed)


def test_forecast_ensemble_matches_torch_in_onnxruntime(tmp_path):
    """One graph, the members' forecasts and their mean, verified inside (at window lengths from the largest AR
    order up) and here against the PyTorch ensemble; a graph with one member's forecast alone is caught."""
    model = _forecast_ensemble(seed=2)
    result = to_onnx(model, tmp_path / "f.onnx")
    assert result.inputs == ("features",) and result.outputs == ("forecast",)
    assert len(result.layers) == sum(m.rnn.num_layers for m in model.members)  # every member's layers
    x = torch.randn(8, 4, 2)
    (got,) = _session(result.path).run(None, {"features": x.numpy()})
    atol, rtol = verification_tolerance(model, {"features": x})
    with torch.no_grad():
        want = model(x)
        assert float((want - model.members[0](x)).abs().max()) > 10 * (atol + rtol * float(want.abs().max()))
    np.testing.assert_allclose(got, want.numpy(), atol=atol, rtol=rtol)
    with pytest.raises(ValueError, match="lengths=True does not apply to a forecaster"):
        to_onnx(model, tmp_path / "g.onnx", lengths=True)


def test_forecast_ensemble_verification_catches_one_member_alone(tmp_path, monkeypatch):
    from lstmkit.export import task_models

    emit = task_models.emit

    def first_only(gb, model, recurrence):
        if task_models.kind(model) == task_models.FORECAST_ENSEMBLE:
            return emit(gb, model.members[0], recurrence)
        return emit(gb, model, recurrence)

    monkeypatch.setattr(task_models, "emit", first_only)
    with pytest.raises(ExportVerificationError, match="differs from the PyTorch model"):
        to_onnx(_forecast_ensemble(seed=2), tmp_path / "f.onnx")


def test_task_model_inputs_and_errors(tmp_path):
    model = ForecastNet(ForecastModel(input_size=1, output_size=1, hidden_size=4), 3)
    with pytest.raises(ValueError, match="lengths=True does not apply to a forecaster"):
        to_onnx(model, tmp_path / "f.onnx", lengths=True)
    classifier = SequenceClassifier(ClassifyModel(input_size=2, output_size=2, hidden_size=4))
    inputs = random_inputs(classifier, 6, 4, lengths=False)
    assert set(inputs) == {"features", "lengths"} and inputs["lengths"].min() >= 1  # a case has at least one step
    assert set(run_torch(classifier, inputs)) == {"logits", "probabilities"}


# -- from trained runs --------------------------------------------------------------------------------------
CLASSIFY_RUNS = {
    # frames, differences and pooling, so that the served preprocessing counts
    "bilstm": ["data.frame=3", "data.differences=true", "data.pool=2"],
    # the ALSTM-FCN: conv branch, dimension shuffle and attention pooling (every step: frame 1), every case
    # resampled to 9 steps (the toy cases have 6-12)
    "alstm-fcn": ["model.arch=lstm-fcn", "model.pooling=attention", "model.fcn_filters=[4,8,4]",
                  "data.differences=true", "data.length=9"],
    # each case scaled on its own, its levels as constant channels: the served preprocessing must do the same
    "bilstm-case-level": ["data.frame=3", "data.differences=true", "data.normalize=case+level"],
}


@pytest.fixture(scope="module", params=list(CLASSIFY_RUNS))
def classify_run(request, tmp_path_factory) -> Path:
    """A tiny classify run of each exported architecture."""
    root = tmp_path_factory.mktemp("classify_export")
    task = get_task("classify")
    config = apply_overrides(task.smoke_config(root), CLASSIFY_RUNS[request.param])
    return runner.train("classify", config, root / "run").run_dir


def test_classify_run_exports_and_serves_without_lstmkit(classify_run, tmp_path):
    r = CliRunner().invoke(app, ["export", str(classify_run)])
    assert r.exit_code == 0, r.output
    assert "inputs: features, lengths; outputs: logits, probabilities" in r.output
    meta = _session(classify_run / "model.onnx").get_modelmeta().custom_metadata_map
    assert json.loads(meta["lstmkit.classes"]) == ["up", "down"]
    spec = json.loads(meta["lstmkit.preprocess"])
    run = open_run(classify_run)
    assert spec["frame"] == (1 if run.config.model.arch == "lstm-fcn" else 3)
    assert spec["differences"] is True and spec["normalize"] == run.config.data.normalize
    bilstm = run.config.model.arch == "lstm" and run.config.data.normalize == "global"  # the "bilstm" run
    assert spec["pool"] == run.config.data.pool == (2 if bilstm else 1)
    assert spec["length"] == run.config.data.length == (9 if run.config.model.arch == "lstm-fcn" else 0)
    # 2 channels + differences; with case+level, each again as its case mean and log std
    assert len(spec["mean"]) == {"global": 4, "case+level": 12}[spec["normalize"]]

    # The raw test cases as CSV files, classified by the example with torch and lstmkit unimportable.
    raw = read_ts(run.config.data.test)
    files = []
    for i, case in enumerate(raw.series):
        f = tmp_path / f"case{i}.csv"
        np.savetxt(f, case, delimiter=",")
        files.append(str(f))
    code = (
        "import sys, runpy; sys.modules['torch'] = None; sys.modules['lstmkit'] = None; "
        f"sys.argv = {[str(EXAMPLE), str(classify_run), *files]!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    served = [line.split("\t")[1] for line in out.stdout.splitlines()]
    served_p = np.array([float(line.split("\t")[2]) for line in out.stdout.splitlines()])  # printed to 3 decimals

    prepared = prepare_data(run.config)
    model = run.load_weights(run.task.build_model(run.config))
    ours = [prepared.classes[k] for k in predict(model, prepared.cases["test"])]
    assert served == ours and len(ours) == len(raw.series)
    # The probabilities too, so that a preprocessing step the example skipped cannot hide behind an argmax: the
    # printed rounding (5e-4) plus 1e-4 for onnxruntime's float32 against torch's (`lstmkit export` checks the two
    # within its derived bound, far below that on these 4-unit nets).
    ours_p = predict_proba(model, prepared.cases["test"]).max(axis=1)
    assert np.abs(served_p - ours_p).max() <= 5e-4 + 1e-4


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("forecast_export")
    return runner.train("forecast", get_task("forecast").smoke_config(root), root / "run").run_dir


def test_forecast_run_exports_and_forecasts_in_series_units(forecast_run, tmp_path):
    result = export_run(forecast_run, out=tmp_path / "f.onnx")
    assert result.outputs == ("forecast",) and result.max_abs_error <= 1e-5
    session = _session(result.path)
    spec = json.loads(session.get_modelmeta().custom_metadata_map["lstmkit.preprocess"])
    assert spec["columns"] == ["y"] and spec["window"] == 6 and spec["horizon"] == 2 and spec["log"] is False

    # The last window of the CSV, scaled with the metadata, forecast in onnxruntime, back in the series' units,
    # equals lstmkit's own forecast from the same origin.
    run = open_run(forecast_run)
    values = np.loadtxt(run.config.data.csv, delimiter=",", skiprows=1)[:, 1]
    mean, std = np.asarray(spec["mean"]), np.asarray(spec["std"])
    window = ((values[-6:, None] - mean) / std).astype(np.float32)[:, None, :]  # (T, 1, F)
    (z,) = session.run(None, {"features": window})
    served = z[0] * std[0] + mean[0]
    model, _ = run.task.load(run)
    with torch.no_grad():
        ours = model(torch.from_numpy(window)).numpy()[0] * std[0] + mean[0]
    np.testing.assert_allclose(served, ours, rtol=1e-5, atol=1e-4)

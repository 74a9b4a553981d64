"""Whole task models as ONNX graphs: ``classify``'s ``SequenceClassifier``, ``forecast``'s ``ForecastNet``
and the CTC tasks' ``CTCRecognizer``.

Both read a case or a window from scratch, so their graphs take no state: the initial states are
zeros made inside the graph at the input's batch size. The recurrent core is ``recurrent.emit_core``
(the ONNX ``LSTM`` operator or a ``Scan``, as for a layer); the readouts are written here:

- classifier: inputs ``features`` (T, B, C) and ``lengths`` (B,) int64 (every length at least 1);
  outputs ``logits`` (B, K) and ``probabilities`` (B, K). The readout is the masked mean over the
  real steps, each direction's state after the whole case (the forward direction's output at
  step ``lengths - 1``, a ``GatherND``, and the backward direction's final state), or attention
  pooling (a softmax over the real steps' scores, padded steps at -inf).
- lstm-fcn (LSTM-FCN / ALSTM-FCN): the same inputs and outputs; the LSTM reads the dimension-
  shuffled case (zero-padded or cut to ``max_length`` steps, then C steps of ``max_length``
  features), beside the conv blocks (``Conv`` with the zero padding, ``BatchNormalization`` with
  the running statistics, ``Relu``, padded steps set back to zero) and their mean over the real steps.
- recognizer (``ctc-speech``, ``ctc-ocr``): inputs ``features`` (T, B, I) and ``lengths`` (B,)
  int64; output ``log_probs`` (T, B, C), class 0 the CTC blank, for a greedy or beam decoder.
- forecaster: input ``features`` (T, B, F), a window of scaled values with the target in column 0
  (T at least the AR skip's order); output ``forecast`` (B, horizon) in scaled units: the last
  target value, plus the LSTM head at the last step, plus the fixed AR skip over the last p values
  (or, with ``model.base``, the base model's change in the last H columns of the last step).

The preprocessing the tasks apply before the network (scaling, framing, the log of the target) is
not in the graph; ``lstmkit export`` stores it in the file's metadata (``lstmkit.preprocess``) and
``examples/onnx_classify.py`` applies it with numpy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lstmkit import _rounding
from lstmkit.export import _spots
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.recurrent import CoreInputs, emit_core
from lstmkit.nn import GRU, LSTM, RNN

INT64_MAX = 2**63 - 1


# SequenceClassifier; FCNClassifier (LSTM-FCN / ALSTM-FCN); EnsembleClassifier (members of those, probabilities
# averaged); EnsembleForecaster (ForecastNets, forecasts averaged)
CLASSIFIER_ENSEMBLE, FORECAST_ENSEMBLE = "classifier-ensemble", "forecaster-ensemble"
CLASSIFIER_KINDS = ("classifier", "lstm-fcn", CLASSIFIER_ENSEMBLE)
FORECASTER_KINDS = ("forecaster", FORECAST_ENSEMBLE)
TASK_MODEL_KINDS = (*CLASSIFIER_KINDS, "recognizer", *FORECASTER_KINDS)
_MEMBER_KINDS = {CLASSIFIER_ENSEMBLE: ("classifier", "lstm-fcn"), FORECAST_ENSEMBLE: ("forecaster",)}


def export_kind(model: nn.Module) -> str | None:
    """What the model says it is for export (its class's ``export_kind``, see ``lstmkit.models``), or None."""
    return getattr(type(model), "export_kind", None)


def check_export_model(model: nn.Module, kind: str, name: str) -> None:
    """Raise ``TypeError`` unless ``model`` has ``export_kind`` ``kind`` (an lstmkit ``name``) and float32
    parameters: the first check of the graph writers beside ``to_onnx``."""
    if not isinstance(model, nn.Module) or export_kind(model) != kind:
        raise TypeError(f"model must be an lstmkit {name} (export_kind {kind!r}), got {type(model).__name__}")
    bad = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
    if bad:
        raise TypeError(f"model must have float32 parameters to export, got {bad}; call model.float() first")


def kind(model: nn.Module) -> str | None:
    """``"classifier"``, ``"lstm-fcn"``, ``"classifier-ensemble"``, ``"recognizer"``, ``"forecaster"``,
    ``"forecaster-ensemble"``, or None for a model that is not a task model."""
    k = export_kind(model)
    return k if k in TASK_MODEL_KINDS else None


def is_classifier(model: nn.Module) -> bool:
    return kind(model) in CLASSIFIER_KINDS


def members(model: nn.Module) -> list[nn.Module]:
    """An ensemble's members (classifiers, or forecasters), checked to read and give the same sizes; [] for any
    other model."""
    want = _MEMBER_KINDS.get(kind(model))
    if want is None:
        return []
    out = list(model.members)
    for m in out:
        if kind(m) not in want:
            raise TypeError(f"an ensemble's members must be lstmkit {' or '.join(want)} models, got {type(m).__name__}")
    if kind(model) == CLASSIFIER_ENSEMBLE:
        shapes = {(feature_size(m), m.head.out_features) for m in out}
        what = "(features, classes)"
    else:
        shapes = {(core_of(m).input_size, m.core.head.out_features) for m in out}
        what = "(features, horizon)"
    if len(shapes) > 1:
        raise ValueError(f"the ensemble's members read and give different sizes {what}: {sorted(shapes)}")
    return out


def _first(model: nn.Module) -> nn.Module:
    """The model itself, or an ensemble's first member (``members`` checks that all read and give the same sizes)."""
    return model.members[0] if kind(model) in _MEMBER_KINDS else model


def feature_size(model: nn.Module) -> int:
    """F of the graph's ``features`` (T, B, F): the core's input size, or an LSTM-FCN's channels (its LSTM reads
    the dimension-shuffled case, max_length features a step)."""
    if kind(model) == CLASSIFIER_ENSEMBLE:
        return feature_size(model.members[0])
    return model.config.input_size if kind(model) == "lstm-fcn" else core_of(model).input_size


def core_of(model: nn.Module) -> LSTM | GRU | RNN:
    """The recurrent core (an ensemble's: its first member's; ``members`` checks the others)."""
    model = _first(model)
    core = model.rnn  # every model of lstmkit.models names its recurrent core rnn
    if not isinstance(core, (LSTM, GRU, RNN)):
        raise TypeError(f"the model's recurrent core must be an lstmkit LSTM, GRU or RNN, got {type(core).__name__}")
    if kind(model) == "forecaster" and model.core.proj is not None:
        raise ValueError("a forecaster with an output projection (model.tie_weights) cannot be exported")
    return core


def signature(model: nn.Module) -> tuple[list, list]:
    """(name, elem type, shape) of the graph's inputs and outputs."""
    core = core_of(model)
    if is_classifier(model):
        K = _first(model).head.out_features
        return ([("features", "float32", ["T", "B", feature_size(model)]), ("lengths", "int64", ["B"])],
                [("logits", "float32", ["B", K]), ("probabilities", "float32", ["B", K])])  # fmt: skip
    if kind(model) == "recognizer":
        return ([("features", "float32", ["T", "B", core.input_size]), ("lengths", "int64", ["B"])],
                [("log_probs", "float32", ["T", "B", model.head.out_features])])  # fmt: skip
    return ([("features", "float32", ["T", "B", core.input_size])],
            [("forecast", "float32", ["B", _first(model).core.head.out_features])])  # fmt: skip


def _zero_state(gb: GraphBuilder, x: str, rows: int, size: int, hint: str) -> str:
    """Zeros (rows, B, size), B read from x (T, B, *) at run time."""
    onnx = gb.onnx
    i64 = "int64"
    B = gb.op("Gather", [gb.op("Shape", [x], "x_shape"), gb.const([1], "idx1_vec", i64)], "B", axis=0)  # (1,)
    shape = gb.op("Concat", [gb.const([rows], f"{hint}_rows", i64), B, gb.const([size], f"{hint}_size", i64)],
                  f"{hint}_shape", axis=0)  # fmt: skip
    zero = onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [0.0])
    return gb.op("ConstantOfShape", [shape], hint, value=zero)


def _linear(gb: GraphBuilder, x: str, layer: nn.Linear, hint: str) -> str:
    y = gb.op("MatMul", [x, gb.const(layer.weight.t(), f"{hint}_wt")], f"{hint}_mm")
    if layer.bias is not None:
        y = gb.op("Add", [y, gb.const(layer.bias, f"{hint}_b")], hint)
    return y


def emit(gb: GraphBuilder, model: nn.Module, recurrence: str) -> tuple[list[str], list[str]]:
    """Add the whole model; return (its output values in ``signature`` order, the operator of each layer)."""
    core = core_of(model)
    LD, P, H = core.num_layers * core.num_directions, core.output_size, core.hidden_size
    i64 = "int64"
    if kind(model) == CLASSIFIER_ENSEMBLE:
        return _emit_ensemble(gb, model, recurrence)
    if kind(model) == FORECAST_ENSEMBLE:  # the members' forecasts side by side, then their mean
        outs, kinds = [], []
        for m in members(model):
            (out,), k = emit(gb, m, recurrence)
            outs.append(out)
            kinds += k
        return [gb.op("Mean", outs, "forecast_mean")], kinds
    if is_classifier(model):
        return _emit_classifier(gb, model, core, recurrence)
    x = "features"
    if kind(model) == "forecaster" and model.core.config.relative:  # ForecastNet.lstm_input: the target minus its last
        last = gb.op("Slice", ["features", gb.const([-1], "minus_one_vec", i64), gb.const([INT64_MAX], "end", i64),
                               gb.const([0], "axes_0", i64)], "features_last")  # (1, B, F)  # fmt: skip
        F_ = core.input_size
        mask = gb.const(torch.eye(1, F_)[0], "target_mask")  # (F,): 1 on the target column, 0 on the covariates
        x = gb.op("Sub", ["features", gb.op("Mul", [last, mask], "target_last_only")], "features_relative")
    io = CoreInputs(x=x, h0=_zero_state(gb, "features", LD, P, "h0"),
                    c0=_zero_state(gb, "features", LD, H, "c0") if isinstance(core, LSTM) else None,
                    lengths=None if kind(model) == "forecaster" else "lengths")  # fmt: skip
    y, _, _, kinds = emit_core(gb, core, io, recurrence)  # y (T, B, D*P)
    if kind(model) == "recognizer":
        # Padded steps: zero outputs, so log_softmax(head bias), as in torch; decoders read only real steps.
        logits = _linear(gb, y, model.head, "head")  # (T, B, C)
        return [gb.op("LogSoftmax", [logits], "log_probs", axis=-1)], kinds
    last = gb.op("Gather", [y, gb.const(-1, "minus_one", i64)], "y_last", axis=0)  # (B, H)
    out = _linear(gb, last, model.core.head, "head")  # (B, horizon): the change from the last value
    features_last = gb.op("Gather", ["features", gb.const(-1, "minus_one", i64)], "x_last", axis=0)  # (B, F)
    x_last = gb.op("Slice", [features_last, gb.const([0], "zero_vec", i64), gb.const([1], "one_vec", i64),
                             gb.const([1], "axes_1", i64)], "target_last")  # (B, 1)  # fmt: skip
    out = gb.op("Add", [x_last, out], "forecast_lstm")
    if model.ar is not None:
        p = model.ar_order
        lags = gb.op("Slice", ["features", gb.const([-p], "minus_p", i64), gb.const([INT64_MAX], "end", i64),
                               gb.const([0], "axes_0", i64)], "lag_window")  # (p, B, F)  # fmt: skip
        lags = gb.op("Gather", [lags, gb.const(0, "idx0", i64)], "lags_pb", axis=2)  # (p, B)
        lags = gb.op("Transpose", [lags], "lags", perm=[1, 0])  # (B, p)
        out = gb.op("Add", [out, _linear(gb, lags, model.ar, "ar")], "forecast_ar")
    if model.base_columns:  # ForecastNet with model.base: the last H columns at the last step, the base's change
        base = gb.op("Slice", [features_last, gb.const([-model.base_columns], "minus_h", i64),
                               gb.const([INT64_MAX], "end", i64), gb.const([1], "axes_1", i64)], "base_change")
        out = gb.op("Add", [out, base], "forecast_base")  # (B, horizon)
    return [out], kinds


def _real_steps(gb: GraphBuilder, x: str, lengths: str) -> str:
    """(T, B) bool: step t is a real step of case b (t < lengths[b]); T read from x (T, B, *)."""
    i64 = "int64"
    T = gb.op("Gather", [gb.op("Shape", [x], "x_shape_t"), gb.const(0, "idx0", i64)], "T", axis=0)  # scalar
    steps = gb.op("Range", [gb.const(0, "zero_i64", i64), T, gb.const(1, "one_i64", i64)], "steps")  # (T,)
    steps = gb.op("Unsqueeze", [steps, gb.const([1], "axes_1", i64)], "steps_col")  # (T, 1)
    n = gb.op("Unsqueeze", [lengths, gb.const([0], "axes_0", i64)], "lengths_row")  # (1, B)
    return gb.op("Less", [steps, n], "real_tb")  # (T, B)


def _attention(gb: GraphBuilder, pool: nn.Module, y: str, real: str | None) -> str:
    """``AttentionPool``: softmax over the real steps of ``v . tanh(W y_t + b)``, then the weighted sum of y_t.
    y (T, B, F); real (T, B) bool or None (every step real) -> (B, F)."""
    i64 = "int64"
    u = gb.op("Tanh", [_linear(gb, y, pool.proj, "att_proj")], "att_tanh")  # (T, B, F)
    scores = gb.op("MatMul", [u, gb.const(pool.score.weight.t(), "att_v")], "att_scores_tb1")  # (T, B, 1)
    scores = gb.op("Squeeze", [scores, gb.const([2], "axes_2", i64)], "att_scores")  # (T, B)
    if real is not None:
        scores = gb.op("Where", [real, scores, gb.const(float("-inf"), "minus_inf")], "att_masked")
    weights = gb.op("Softmax", [scores], "att_weights", axis=0)  # (T, B), zero on padded steps
    weights = gb.op("Unsqueeze", [weights, gb.const([2], "axes_2", i64)], "att_weights_tb1")  # (T, B, 1)
    weighted = gb.op("Mul", [weights, y], "att_weighted")
    return gb.op("ReduceSum", [weighted, gb.const([0], "axes_0", i64)], "att_pooled", keepdims=0)  # (B, F)


def _pool(gb: GraphBuilder, model: nn.Module, core, y: str, hn: str, lengths: str | None) -> str:
    """The classifier's readout of ``model.config.pooling`` from y (T, B, D*P) and h_n; ``lengths`` None when
    every case has all T steps (the LSTM-FCN's dimension-shuffled branch)."""
    i64 = "int64"
    LD, P = core.num_layers * core.num_directions, core.output_size
    pooling = model.config.pooling
    if pooling == "attention":
        return _attention(gb, model.attention, y, None if lengths is None else _real_steps(gb, y, lengths))
    if pooling == "mean":
        total = gb.op("ReduceSum", [y, gb.const([0], "axes_0", i64)], "y_sum", keepdims=0)  # (B, D*P)
        if lengths is None:  # every one of the C steps: torch divides the sum by C
            steps = gb.op("Gather", [gb.op("Shape", [y], "y_shape"), gb.const(0, "idx0", i64)], "n_steps", axis=0)
            return gb.op("Div", [total, gb.op("Cast", [steps], "n_steps_f", to=gb.onnx.TensorProto.FLOAT)], "pooled")
        n = gb.op("Cast", [lengths], "lengths_f", to=gb.onnx.TensorProto.FLOAT)
        n = gb.op("Unsqueeze", [n, gb.const([1], "axes_1", i64)], "lengths_col")  # (B, 1)
        return gb.op("Div", [total, n], "pooled")
    if lengths is None:
        pooled = gb.op("Gather", [y, gb.const(-1, "minus_one", i64)], "y_last", axis=0)  # (B, D*P)
    else:
        yb = gb.op("Transpose", [y], "y_btf", perm=[1, 0, 2])  # (T, B, D*P) -> (B, T, D*P)
        last = gb.op("Sub", [lengths, gb.const(1, "one_i64", i64)], "last_step")
        last = gb.op("Unsqueeze", [last, gb.const([1], "axes_1", i64)], "last_step_col")  # (B, 1)
        pooled = gb.op("GatherND", [yb, last], "y_last", batch_dims=1)  # (B, D*P)
    if core.bidirectional:
        # torch's readout: the forward half at the last valid step, the backward direction's final state.
        fwd = gb.op("Slice", [pooled, gb.const([0], "zero_vec", i64), gb.const([P], "p_vec", i64),
                              gb.const([1], "axes_1", i64)], "fwd_last")  # fmt: skip
        bwd = gb.op("Gather", [hn, gb.const(LD - 1, "last_layer", i64)], "bwd_final", axis=0)  # (B, P)
        pooled = gb.op("Concat", [fwd, bwd], "pooled", axis=1)
    return pooled


def _conv_branch(gb: GraphBuilder, model: nn.Module) -> str:
    """The LSTM-FCN's conv blocks (Conv1d with its zero padding, BatchNorm in eval, ReLU, padded steps back to
    zero) and the global average over the real steps: features (T, B, C), lengths -> (B, F)."""
    i64 = "int64"
    real = gb.op("Transpose", [_real_steps(gb, "features", "lengths")], "real_bt", perm=[1, 0])  # (B, T)
    real = gb.op("Cast", [real], "real_f", to=gb.onnx.TensorProto.FLOAT)
    real = gb.op("Unsqueeze", [real, gb.const([1], "axes_1", i64)], "real_b1t")  # (B, 1, T)
    x = gb.op("Transpose", ["features"], "conv_in", perm=[1, 2, 0])  # (T, B, C) -> (B, C, T)
    pad = None
    for k, layer in enumerate(model.fcn):
        if isinstance(layer, nn.ConstantPad1d):
            pad = list(layer.padding)  # (left, right), zeros: the next Conv's own padding
        elif isinstance(layer, nn.Conv1d):
            inputs = [x, gb.const(layer.weight, f"conv{k}_w")] + ([gb.const(layer.bias, f"conv{k}_b")]
                                                                   if layer.bias is not None else [])  # fmt: skip
            x = gb.op("Conv", inputs, f"conv{k}", pads=pad or [0, 0], kernel_shape=[layer.kernel_size[0]])
            pad = None
        elif isinstance(layer, nn.BatchNorm1d):  # eval: the running statistics
            x = gb.op("BatchNormalization", [x, gb.const(layer.weight, f"bn{k}_g"), gb.const(layer.bias, f"bn{k}_b"),
                                             gb.const(layer.running_mean, f"bn{k}_mean"),
                                             gb.const(layer.running_var, f"bn{k}_var")],
                      f"bn{k}", epsilon=float(layer.eps))  # fmt: skip
        elif isinstance(layer, nn.ReLU):
            x = gb.op("Mul", [gb.op("Relu", [x], f"relu{k}"), real], f"block{k}")  # padded steps back to zero
        else:
            raise TypeError(f"an LSTM-FCN conv block layer {type(layer).__name__} has no ONNX form here")
    total = gb.op("ReduceSum", [x, gb.const([-1], "axes_last", i64)], "gap_sum", keepdims=0)  # (B, F)
    n = gb.op("Cast", ["lengths"], "lengths_f", to=gb.onnx.TensorProto.FLOAT)
    n = gb.op("Unsqueeze", [n, gb.const([1], "axes_1", i64)], "lengths_col")  # (B, 1)
    return gb.op("Div", [total, n], "gap")


def _emit_classifier(gb: GraphBuilder, model: nn.Module, core, recurrence: str) -> tuple[list[str], list[str]]:
    """A SequenceClassifier (last, mean or attention readout) or an LSTM-FCN / ALSTM-FCN: logits, probabilities."""
    i64 = "int64"
    LD, P, H = core.num_layers * core.num_directions, core.output_size, core.hidden_size
    if kind(model) == "lstm-fcn":
        # The dimension shuffle: the case zero-padded (or cut) to max_length steps, read as C steps of max_length
        # features; every case has all C steps.
        L = model.config.max_length
        T = gb.op("Gather", [gb.op("Shape", ["features"], "x_shape_t"), gb.const([0], "zero_vec", i64)], "T_vec",
                  axis=0)  # (1,)  # fmt: skip
        short = gb.op("Max", [gb.op("Sub", [gb.const([L], "max_length", i64), T], "to_pad"),
                              gb.const([0], "zero_vec", i64)], "pad_end")  # (1,): max(L - T, 0)  # fmt: skip
        pads = gb.op("Concat", [gb.const([0, 0, 0], "pads_begin", i64), short, gb.const([0, 0], "pads_rest", i64)],
                     "pads", axis=0)  # fmt: skip
        fixed = gb.op("Pad", ["features", pads], "padded")  # zeros after the last step
        fixed = gb.op("Slice", [fixed, gb.const([0], "zero_vec", i64), gb.const([L], "max_length", i64),
                                gb.const([0], "axes_0", i64)], "fixed")  # (L, B, C)  # fmt: skip
        shuffled = gb.op("Transpose", [fixed], "shuffled", perm=[2, 1, 0])  # (C, B, L)
        io = CoreInputs(x=shuffled, h0=_zero_state(gb, "features", LD, P, "h0"),
                        c0=_zero_state(gb, "features", LD, H, "c0"), lengths=None)  # fmt: skip
        y, hn, _, kinds = emit_core(gb, core, io, recurrence)  # y (C, B, D*P)
        pooled = gb.op("Concat", [_pool(gb, model, core, y, hn, None), _conv_branch(gb, model)], "joined", axis=1)
    else:
        io = CoreInputs(x="features", h0=_zero_state(gb, "features", LD, P, "h0"),
                        c0=_zero_state(gb, "features", LD, H, "c0"), lengths="lengths")  # fmt: skip
        y, hn, _, kinds = emit_core(gb, core, io, recurrence)  # y (T, B, D*P); padded steps zero
        pooled = _pool(gb, model, core, y, hn, "lengths")
    logits = _linear(gb, pooled, model.head, "head")  # (B, K)
    return [logits, gb.op("Softmax", [logits], "probs", axis=-1)], kinds


def _emit_ensemble(gb: GraphBuilder, model: nn.Module, recurrence: str) -> tuple[list[str], list[str]]:
    """Every member's graph beside the others' on the same inputs; logits = logsumexp over the members of their
    log-softmax, minus log N (``EnsembleClassifier.forward``), probabilities their softmax (the members' mean)."""
    i64 = "int64"
    logps, kinds = [], []
    for i, m in enumerate(members(model)):
        (logits, _), k = _emit_classifier(gb, m, core_of(m), recurrence)
        logp = gb.op("LogSoftmax", [logits], f"m{i}_logp", axis=-1)  # (B, K)
        logps.append(gb.op("Unsqueeze", [logp, gb.const([0], "axes_0", i64)], f"m{i}_logp_1bk"))  # (1, B, K)
        kinds += k
    stacked = gb.op("Concat", logps, "members_logp", axis=0)  # (N, B, K)
    lse = gb.op("ReduceLogSumExp", [stacked], "members_lse", axes=[0], keepdims=0)  # (B, K); axes: opset 17's attribute
    logits = gb.op("Sub", [lse, gb.const(math.log(len(logps)), "log_members")], "ensemble_logits")
    return [logits, gb.op("Softmax", [logits], "probs", axis=-1)], kinds


def ensemble_error(model: nn.Module, inputs: dict[str, Tensor], member_errors: list[float]) -> float:
    """A bound on the rounding error of an ensemble's outputs at ``inputs``, given each member's, e_i.

    Forecasters: the mean of N forecasts each off by at most e_i is off by their mean plus the mean's own rounding,
    gamma(N + 1) times the largest forecast (a sum of N terms and a division).
    Classifiers (e_i from ``readout_error``: a member's logits err by at most that), logits and probabilities:

    Propagated: with every member's logits off by at most e_i, each member's softmax is off by a factor within
    exp(2 e_i) (its log by 2 e_i), and so is their mean, whose log the logits are; the probabilities, the softmax
    of those logits, are that mean exactly (a mean of distributions is one), so off by a factor within
    exp(2 max e_i) too. Local rounding, in the log domain: each log-softmax z - LSE(z) and the logsumexp over the N
    members round their shifted exponentials, a sum of K (or N) terms and a log, gamma(n + 2) + F u, plus u (|z| +
    log n) for the subtraction, and minus log N adds u |value|; the final softmax's relative error from logits off
    by r is exp(2 r) - 1 plus gamma(K + 2), as in ``readout_error``.
    """
    u = _rounding.unit_roundoff(torch.float32)
    ms = members(model)
    if kind(model) == FORECAST_ENSEMBLE:
        f_max = max(float(run_torch(m, inputs)["forecast"].abs().max()) for m in ms)
        return sum(member_errors) / len(ms) + _rounding.gamma(len(ms) + 1, u) * f_max
    K = ms[0].head.out_features
    with torch.no_grad():
        z_max = max(float(run_torch(m, inputs)["logits"].abs().max()) for m in ms)
        out_max = float(run_torch(model, inputs)["logits"].abs().max())

    e = max(member_errors)
    logp_max = 2 * z_max + math.log(K)  # |z - LSE(z)| <= 2 max|z| + log K
    r = (_rounding.log_softmax_error(K, z_max, u) + _rounding.log_softmax_error(len(ms), logp_max, u)
         + u * (out_max + math.log(len(ms))))  # fmt: skip
    e_logits = 2 * e + r
    propagated = _exp_factor(e, 1.0)  # exp(2 e) - 1, at most 1
    local = min(_exp_factor(r, 1.0) + _rounding.gamma(K + 2, u), 1.0)
    return max(e_logits, min((1 + propagated) * (1 + local) - 1, 1.0))


def _seen(model: nn.Module, inputs: dict[str, Tensor]) -> dict[int, tuple[float, float]]:
    """Max |input| and max |output| of the core and the head at ``inputs`` in torch."""
    seen: dict[int, tuple[float, float]] = {}

    def largest(t) -> float:
        t = t[0] if isinstance(t, (tuple, list)) else t
        return float(t.detach().abs().max()) if isinstance(t, Tensor) and t.numel() else 0.0

    def hook(module, args, output):
        seen[id(module)] = (largest(args), largest(output))

    watched = [model.rnn, model.head]
    handles = [m.register_forward_hook(hook) for m in watched]
    try:
        run_torch(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def readout_error(model: nn.Module, inputs: dict[str, Tensor], core_error: float) -> float | None:
    """A bound on the rounding error of a classifier's outputs (logits and probabilities) at ``inputs``, given
    ``core_error``, the bound on its recurrent core's outputs (``onnx_model.verification_tolerance``); None for
    the other task models, whose linear heads the generic rule covers.

    Standard forward error analysis (``lstmkit/_rounding.py``), with the magnitudes the torch model reaches at
    these inputs: a sum of n terms errs by gamma(n) times the sum of |terms|; a linear layer passes its input's
    error on through ||W||_inf. Readouts: the last state passes the core's error on; the mean over T steps adds
    gamma(T + 1) max|y|; attention pooling adds the error of its softmax weights (scores err by e_s, so each
    weight by at most a factor exp(2 e_s) - 1, at most 2 in sum, plus gamma(T + 2) for exp and the normalisation)
    times max|y|.
    The roundings of a plain LSTM core, of the LSTM-FCN's conv branch and of the head are carried to each logit
    by autograd (``lstmkit.export._spots``: a bound per logit, far below the worst case above); what the spots do
    not cover (the pooling's own roundings, and the core of another kind: ``core_error``) reaches logit k through
    the sum of |W_kj| over the LSTM readout's columns. Probabilities from logits erring by e: at most
    exp(2 e) - 1, plus gamma(K + 2), and at most 1.
    """
    if not is_classifier(model):
        return None
    u = _rounding.unit_roundoff(torch.float32)
    row = _rounding.row_abs_sum

    def gamma(n: int) -> float:
        return _rounding.gamma(n, u)

    seen = _seen(model, inputs)
    y_max = max(seen[id(model.rnn)][1], u)
    shuffled = kind(model) == "lstm-fcn"
    T = model.config.input_size if shuffled else int(inputs["features"].shape[0])  # steps the readout pools
    pooling = model.config.pooling
    spotted, core_spotted = _spots.logit_error(model, inputs)  # (B, K): the core (if plain), conv branch, head
    if core_spotted:
        core_error = 0.0  # already in ``spotted``: what is left below is the pooling's own rounding
    err = core_error
    if pooling == "mean":
        err = core_error + gamma(T + 1) * y_max
    elif pooling == "attention":
        pool = model.attention
        w_p, w_v = row(pool.proj.weight), row(pool.score.weight)
        e_u = w_p * core_error + gamma(pool.proj.in_features + 1) * (w_p * y_max + _largest(pool.proj.bias))
        e_s = w_v * (e_u + _rounding.F_POINTWISE * u) + gamma(pool.score.in_features) * w_v  # |tanh| <= 1
        # the weights sum to 1 in both evaluations, so they differ by at most 2 in sum whatever e_s is
        err = core_error + (_exp_factor(e_s, 2.0) + gamma(T + 2)) * y_max + gamma(T + 1) * y_max
    w = model.head.weight.detach().double().abs()  # (K, n): the LSTM readout's columns first
    conv = [m.out_channels for m in getattr(model, "fcn", []) if isinstance(m, nn.Conv1d)]
    readout = model.head.in_features - (conv[-1] if conv else 0)  # D*H: the LSTM readout's width
    e_logits = float((spotted + w[:, :readout].sum(1) * err).max())
    return max(e_logits, min(_exp_factor(e_logits, 1.0) + gamma(model.head.out_features + 2), 1.0))


def _exp_factor(e: float, cap: float) -> float:
    """exp(2 e) - 1, the relative error of softmax weights whose scores err by e, or ``cap`` where that is
    larger (the weights lie in [0, 1] and sum to 1, which bounds their error whatever e is; no overflow)."""
    return cap if 2 * e >= math.log1p(cap) else min(math.expm1(2 * e), cap)


def _largest(t: Tensor | None) -> float:
    return float(t.detach().abs().max()) if t is not None and t.numel() else 0.0


def verify_shapes(model: nn.Module, default: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """(T, B) pairs to verify at: a forecaster needs at least its AR order of steps."""
    forecasters = members(model) if kind(model) == FORECAST_ENSEMBLE else [model]
    p = max((m.ar_order for m in forecasters if kind(m) == "forecaster" and m.ar is not None), default=0)
    if p:
        return ((p + 3, 3), (p, 2), (p + 1, 1))
    return default


def random_inputs(model: nn.Module, T: int, B: int, seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"features": torch.randn(T, B, feature_size(model), generator=g)}
    if is_classifier(model) or kind(model) == "recognizer":
        n = torch.randint(1, T + 1, (B,), generator=g)
        n[0] = T  # the longest case fills the batch
        out["lengths"] = n
    return out


@torch.no_grad()
def run_torch(model: nn.Module, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    device = next(model.parameters()).device
    x = {k: v.to(device) for k, v in inputs.items()}
    was_training = model.training
    model.eval()
    try:
        if is_classifier(model):
            logits = model(x["features"], x["lengths"])
            return {"logits": logits.cpu(), "probabilities": logits.softmax(-1).cpu()}
        if kind(model) == "recognizer":
            return {"log_probs": model(x["features"], x["lengths"]).cpu()}
        return {"forecast": model(x["features"]).cpu()}
    finally:
        model.train(was_training)

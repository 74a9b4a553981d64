"""Whole task models as ONNX graphs: ``classify``'s ``SequenceClassifier``, ``forecast``'s ``ForecastNet``
and the CTC tasks' ``CTCRecognizer``.

Both read a case or a window from scratch, so their graphs take no state: the initial states are
zeros made inside the graph at the input's batch size. The recurrent core is ``recurrent.emit_core``
(the ONNX ``LSTM`` operator or a ``Scan``, as for a layer); the readouts are written here:

- classifier: inputs ``features`` (T, B, C) and ``lengths`` (B,) int64 (every length at least 1);
  outputs ``logits`` (B, K) and ``probabilities`` (B, K). The readout is the masked mean over the
  real steps, or each direction's state after the whole case: the forward direction's output at
  step ``lengths - 1`` (a ``GatherND``) and the backward direction's final state.
- recognizer (``ctc-speech``, ``ctc-ocr``): inputs ``features`` (T, B, I) and ``lengths`` (B,)
  int64; output ``log_probs`` (T, B, C), class 0 the CTC blank, for a greedy or beam decoder.
- forecaster: input ``features`` (T, B, F), a window of scaled values with the target in column 0
  (T at least the AR skip's order); output ``forecast`` (B, horizon) in scaled units: the last
  target value, plus the LSTM head at the last step, plus the fixed AR skip over the last p values.

The preprocessing the tasks apply before the network (scaling, framing, the log of the target) is
not in the graph; ``lstmkit export`` stores it in the file's metadata (``lstmkit.preprocess``) and
``examples/onnx_classify.py`` applies it with numpy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.export.graph import GraphBuilder
from lstmkit.export.recurrent import CoreInputs, emit_core
from lstmkit.nn import GRU, LSTM, RNN

INT64_MAX = 2**63 - 1


TASK_MODEL_KINDS = ("classifier", "recognizer", "forecaster")


def export_kind(model: nn.Module) -> str | None:
    """What the model says it is for export (its class's ``export_kind``, see ``lstmkit.models``), or None."""
    return getattr(type(model), "export_kind", None)


def kind(model: nn.Module) -> str | None:
    """``"classifier"``, ``"recognizer"``, ``"forecaster"``, or None for a model that is not a task model."""
    k = export_kind(model)
    return k if k in TASK_MODEL_KINDS else None


def core_of(model: nn.Module) -> LSTM | GRU | RNN:
    core = model.rnn  # every model of lstmkit.models names its recurrent core rnn
    if not isinstance(core, (LSTM, GRU, RNN)):
        raise TypeError(f"the model's recurrent core must be an lstmkit LSTM, GRU or RNN, got {type(core).__name__}")
    if kind(model) == "forecaster" and model.core.proj is not None:
        raise ValueError("a forecaster with an output projection (model.tie_weights) cannot be exported")
    return core


def signature(model: nn.Module) -> tuple[list, list]:
    """(name, elem type, shape) of the graph's inputs and outputs."""
    core = core_of(model)
    if kind(model) == "classifier":
        K = model.head.out_features
        return ([("features", "float32", ["T", "B", core.input_size]), ("lengths", "int64", ["B"])],
                [("logits", "float32", ["B", K]), ("probabilities", "float32", ["B", K])])  # fmt: skip
    if kind(model) == "recognizer":
        return ([("features", "float32", ["T", "B", core.input_size]), ("lengths", "int64", ["B"])],
                [("log_probs", "float32", ["T", "B", model.head.out_features])])  # fmt: skip
    return ([("features", "float32", ["T", "B", core.input_size])],
            [("forecast", "float32", ["B", model.core.head.out_features])])  # fmt: skip


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
    classifier = kind(model) == "classifier"
    io = CoreInputs(x="features", h0=_zero_state(gb, "features", LD, P, "h0"),
                    c0=_zero_state(gb, "features", LD, H, "c0") if isinstance(core, LSTM) else None,
                    lengths=None if kind(model) == "forecaster" else "lengths")  # fmt: skip
    y, hn, _, kinds = emit_core(gb, core, io, recurrence)  # y (T, B, D*P)
    if kind(model) == "recognizer":
        # Padded steps: zero outputs, so log_softmax(head bias), as in torch; decoders read only real steps.
        logits = _linear(gb, y, model.head, "head")  # (T, B, C)
        return [gb.op("LogSoftmax", [logits], "log_probs", axis=-1)], kinds
    if classifier:
        if model.config.pooling == "mean":
            total = gb.op("ReduceSum", [y, gb.const([0], "axes_0", i64)], "y_sum", keepdims=0)  # (B, D*P)
            n = gb.op("Cast", ["lengths"], "lengths_f", to=gb.onnx.TensorProto.FLOAT)
            n = gb.op("Unsqueeze", [n, gb.const([1], "axes_1", i64)], "lengths_col")  # (B, 1)
            pooled = gb.op("Div", [total, n], "pooled")
        else:
            yb = gb.op("Transpose", [y], "y_btf", perm=[1, 0, 2])  # (T, B, D*P) -> (B, T, D*P)
            last = gb.op("Sub", ["lengths", gb.const(1, "one_i64", i64)], "last_step")
            last = gb.op("Unsqueeze", [last, gb.const([1], "axes_1", i64)], "last_step_col")  # (B, 1)
            pooled = gb.op("GatherND", [yb, last], "y_last", batch_dims=1)  # (B, D*P)
            if core.bidirectional:
                # torch's readout: the forward half at the last valid step, the backward direction's final state.
                fwd = gb.op("Slice", [pooled, gb.const([0], "zero_vec", i64), gb.const([P], "p_vec", i64),
                                      gb.const([1], "axes_1", i64)], "fwd_last")  # fmt: skip
                bwd = gb.op("Gather", [hn, gb.const(LD - 1, "last_layer", i64)], "bwd_final", axis=0)  # (B, P)
                pooled = gb.op("Concat", [fwd, bwd], "pooled", axis=1)
        logits = _linear(gb, pooled, model.head, "head")  # (B, K)
        return [logits, gb.op("Softmax", [logits], "probs", axis=-1)], kinds
    last = gb.op("Gather", [y, gb.const(-1, "minus_one", i64)], "y_last", axis=0)  # (B, H)
    out = _linear(gb, last, model.core.head, "head")  # (B, horizon): the change from the last value
    x_last = gb.op("Gather", ["features", gb.const(-1, "minus_one", i64)], "x_last", axis=0)  # (B, F)
    x_last = gb.op("Slice", [x_last, gb.const([0], "zero_vec", i64), gb.const([1], "one_vec", i64),
                             gb.const([1], "axes_1", i64)], "target_last")  # (B, 1)  # fmt: skip
    out = gb.op("Add", [x_last, out], "forecast_lstm")
    if model.ar is not None:
        p = model.ar_order
        lags = gb.op("Slice", ["features", gb.const([-p], "minus_p", i64), gb.const([INT64_MAX], "end", i64),
                               gb.const([0], "axes_0", i64)], "lag_window")  # (p, B, F)  # fmt: skip
        lags = gb.op("Gather", [lags, gb.const(0, "idx0", i64)], "lags_pb", axis=2)  # (p, B)
        lags = gb.op("Transpose", [lags], "lags", perm=[1, 0])  # (B, p)
        out = gb.op("Add", [out, _linear(gb, lags, model.ar, "ar")], "forecast_ar")
    return [out], kinds


def verify_shapes(model: nn.Module, default: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """(T, B) pairs to verify at: a forecaster needs at least its AR order of steps."""
    if kind(model) == "forecaster" and model.ar is not None:
        p = model.ar_order
        return ((p + 3, 3), (p, 2), (p + 1, 1))
    return default


def random_inputs(model: nn.Module, T: int, B: int, seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"features": torch.randn(T, B, core_of(model).input_size, generator=g)}
    if kind(model) in ("classifier", "recognizer"):
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
        if kind(model) == "classifier":
            logits = model(x["features"], x["lengths"])
            return {"logits": logits.cpu(), "probabilities": logits.softmax(-1).cpu()}
        if kind(model) == "recognizer":
            return {"log_probs": model(x["features"], x["lengths"]).cpu()}
        return {"forecast": model(x["features"]).cpu()}
    finally:
        model.train(was_training)

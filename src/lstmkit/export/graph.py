"""A small ONNX graph builder on ``onnx.helper``: unique names, initializers from tensors, nodes.

The export writes its graphs with this instead of tracing the model, so every node is chosen by
hand (the ONNX ``LSTM`` operator with the gate order converted, or a ``Scan`` body with exactly
lstmkit's equations) and the time and batch axes stay symbolic.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

import lstmkit


class GraphBuilder:
    """Collects the nodes of one graph; a ``sub()`` builder collects a subgraph (a ``Scan`` body).

    Initializers always go to the main graph: a subgraph reads them from the outer scope, so the
    weights are stored once however many bodies use them. Names are unique across all of them.
    """

    def __init__(self, onnx: ModuleType, *, _parent: GraphBuilder | None = None) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self._root = self if _parent is None else _parent._root
        if _parent is None:
            self.initializers: list[Any] = []
            self._used: dict[str, int] = {}
            self._small: dict[tuple, str] = {}  # small constants (axes, indices) are stored once

    def sub(self) -> GraphBuilder:
        """A builder for a subgraph sharing this graph's names and initializers."""
        return GraphBuilder(self.onnx, _parent=self)

    def name(self, hint: str) -> str:
        """A fresh name starting with ``hint``."""
        used = self._root._used
        n = used.get(hint, 0)
        name = hint if n == 0 else f"{hint}_{n}"
        while name in used:  # another hint may have produced this name already
            n += 1
            name = f"{hint}_{n}"
        used[hint] = n + 1
        used[name] = max(used.get(name, 0), 1)
        return name

    def const(self, value: Tensor | np.ndarray | float | int | list, hint: str, dtype: Any = None) -> str:
        """Store ``value`` as an initializer (float tensors as float32 unless ``dtype``); return its name."""
        if isinstance(value, Tensor):
            value = value.detach().to("cpu", torch.float32 if value.is_floating_point() else None).numpy()
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 16 else None
        if key is not None and key in self._root._small:
            return self._root._small[key]
        name = self.name(hint)
        if key is not None:
            self._root._small[key] = name
        self._root.initializers.append(self.onnx.numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1, **attrs: Any):
        """Add a node; return its output name, or a list of ``n_out`` names."""
        base = hint or op_type.lower()
        outs = [self.name(base if n_out == 1 else f"{base}_{k}") for k in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, name=self.name(f"n_{base}"), **attrs))
        return outs[0] if n_out == 1 else outs

    def value_info(self, name: str, elem_type: int, shape: list[int | str]) -> Any:
        return self.onnx.helper.make_tensor_value_info(name, elem_type, shape)

    def finish(self, name: str, inputs: list[tuple[str, str, list]], outputs: list[tuple[str, str, list]],
               values: Mapping[str, str] | None, *, opset: int, props: Mapping[str, str]) -> Any:
        """The checked ``onnx.ModelProto`` of this (main) graph: ``inputs`` and ``outputs`` as (name, "float32" |
        "int64" | "bool", shape); ``values`` maps each output name to the value it shows (an ``Identity`` node each;
        None: nodes already write the outputs); the oldest IR version that reads ``opset``; ``props`` its metadata."""
        onnx = self.onnx
        TP = onnx.TensorProto
        elem = {"float32": TP.FLOAT, "int64": TP.INT64, "bool": TP.BOOL}
        for out, _, _ in outputs if values is not None else ():
            self.nodes.append(onnx.helper.make_node("Identity", [values[out]], [out], name=self.name(f"n_{out}")))
        info = onnx.helper.make_tensor_value_info
        graph = onnx.helper.make_graph(self.nodes, name, [info(n, elem[t], s) for n, t, s in inputs],
                                       [info(n, elem[t], s) for n, t, s in outputs], self.initializers)  # fmt: skip
        opsets = [onnx.helper.make_opsetid("", opset)]
        proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="lstmkit",
                                       producer_version=lstmkit.__version__)  # fmt: skip
        proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)  # the oldest runtime that can read it
        onnx.helper.set_model_props(proto, dict(props))
        onnx.checker.check_model(proto, full_check=True)
        return proto

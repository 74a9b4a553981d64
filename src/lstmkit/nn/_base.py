"""The shared base of the multi-layer recurrent layers: arguments, parameters, layouts, lengths.

One class owns what LSTM, GRU and RNN have in common with ``torch.nn``: argument checks, the
parameter names (``weight_ih_l{k}{_reverse}`` ...), the default initialisation, input layouts
(batch-first, unbatched, ``PackedSequence``, ``lengths``), stacking layers and directions, and
inter-layer, recurrent and weight (DropConnect) dropout. Subclasses say how one layer and direction runs over time.

Shapes: T time, B batch, I input features, H hidden, P recurrent output (proj_size or H), D
directions, L layers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ._exporting import DYNAMO, DYNAMO_REASON, JIT_TRACE, NATIVE_NAMES, export_error, onnx_exporter, trace_error
from .weights import GRUWeights, LSTMWeights, layer_weights

_IMPLS = ("auto", "cpp", "fused", "reference")


def _check_prob(name: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)


def _check_dropout(p: float, num_layers: int) -> float:
    """torch.nn.RNNBase's check and warning for the inter-layer ``dropout``, with its words.

    Any p in [0, 1] is valid (1 zeroes the input of every layer but the first, in training). On a
    single layer it has no effect, which torch.nn warns about; so do we.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an element being "
            f"zeroed, got {p!r}"
        )
    if p > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
            f"num_layers greater than 1, but got dropout={p} and num_layers={num_layers}",
            stacklevel=4,  # the user's call: user -> LSTM.__init__ -> RecurrentBase.__init__ -> here
        )
    return float(p)


def _check_positive_int(name: str, v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, F) within its own length; padding stays where it is.

    Applying it twice gives x back, so the same call maps the reverse direction's outputs back.
    """
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    n = lengths.unsqueeze(0)  # (1, B)
    idx = torch.where(t < n, n - 1 - t, t)  # (T, B)
    return x.gather(0, idx.unsqueeze(-1).expand_as(x))


def check_device(name: str, t: Tensor, ref: Tensor) -> None:
    """Refuse ``t`` (the input, or a state) on another device than ``ref`` (the parameters, or the input),
    before torch's own error from deep inside a product."""
    if t.device != ref.device:
        what = "the parameters" if name == "input" else "the input"
        raise RuntimeError(f"{name} is on {t.device} but {what} on {ref.device}: move it with .to({str(ref.device)!r})"
                           + (f" or the module with .to({str(t.device)!r})" if name == "input" else ""))


def autocast_off(x: Tensor) -> contextlib.AbstractContextManager:
    """torch.autocast turned off for x's device where it is on (else nothing): for the recurrences, which run in the
    parameters' dtype. Devices autocast does not know (meta) get nothing."""
    device = x.device.type
    on = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    return torch.autocast(device, enabled=False) if on else contextlib.nullcontext()


def weight_drop_mask(w: Tensor, p: float) -> Tensor:
    """DropConnect's mask for W_hh (G, P) (Wan et al. 2013; Merity et al. 2017's weight drop): 1/(1 - p) where an
    entry is kept, with probability 1 - p, else 0; one per call, shared by every step and sequence, so every kernel
    path reads the masked copy and autograd carries dW_hh back through it. Drawn as ``torch.rand(...) < 1 - p``
    rather than by ``F.dropout``, whose ``bernoulli_`` is the slower draw on the CPU: masking W_hh forward and
    backward this way takes 0.24-0.28 of ``F.dropout``'s time (``benchmarks/weight_dropout.py --masks``)."""
    keep = 1.0 - p
    return torch.rand(w.shape, dtype=w.dtype, device=w.device).lt_(keep).mul_(1.0 / keep)


def cell_input(cell, input) -> Tensor:
    """A cell step's input checked (a Tensor, 1-D or 2-D as torch.nn's cells say, I features, the parameters'
    dtype) and returned as (B, I)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    if input.dim() not in (1, 2):  # torch.nn's cells' check and words
        raise ValueError(f"{type(cell).__name__}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    if input.shape[-1] != cell.input_size:
        raise ValueError(f"input must have shape (B, {cell.input_size}) or ({cell.input_size},), got "
                         f"{tuple(input.shape)}")  # fmt: skip
    if not input.is_floating_point() or input.dtype != cell.weight_ih.dtype:
        raise TypeError(f"input dtype must be the parameters' {cell.weight_ih.dtype}, got {input.dtype}")
    return input if input.dim() == 2 else input.unsqueeze(0)  # (I,) -> (1, I)


def cell_masks(cell, B: int, P: int, drop_mask) -> tuple[Tensor | None, Tensor]:
    """A cell step's dropout, checked: (its recurrent-dropout mask (B, P), or None outside training or at rate 0;
    ``cell.weight_hh``, or in training with ``weight_dropout`` its DropConnect copy W_hh * M / (1 - p)). Inside
    ``cell.holding_masks()`` the block's first step draws the masks the caller does not pass (recurrent dropout's,
    then W_hh's, the order of a layer's call) and every later step reuses them: one masked W_hh a block, however many
    steps read it."""
    held = cell._held_masks
    drop = None
    if cell.training and cell.recurrent_dropout > 0:
        if drop_mask is None and held is not None:
            drop_mask = held.get("drop")
            if drop_mask is None:
                drop_mask = held["drop"] = cell.dropout_mask(B)
            elif drop_mask.shape[0] != B:
                raise ValueError(f"inside holding_masks() every step must have the first step's batch size "
                                 f"{drop_mask.shape[0]} (its recurrent-dropout mask is held), got {B}")
        if drop_mask is None:
            raise ValueError("recurrent_dropout > 0 in training needs drop_mask=cell.dropout_mask(B), drawn once per "
                             "sequence, or the sequence's steps inside `with cell.holding_masks():`")  # fmt: skip
        if not isinstance(drop_mask, Tensor) or tuple(drop_mask.shape) != (B, P):
            got = tuple(drop_mask.shape) if isinstance(drop_mask, Tensor) else type(drop_mask).__name__
            raise ValueError(f"drop_mask must have shape {(B, P)}, got {got}")
        drop = drop_mask
    w_hh = cell.weight_hh
    if cell.training and cell.weight_dropout > 0:
        if held is None:
            raise ValueError("weight_dropout > 0 in training needs the sequence's steps inside `with "
                             "cell.holding_masks():`, which draws W_hh's mask once for them")  # fmt: skip
        if "w_hh" not in held:  # the masked copy, made once: every step's product reads it, autograd sums dW_hh
            held["w_hh"] = w_hh * weight_drop_mask(w_hh, cell.weight_dropout)
        w_hh = held["w_hh"]
    return drop, w_hh


class HoldsMasks:
    """A cell's ``holding_masks()``, the one-step form of a layer's (``RecurrentBase.holding_masks``)."""

    # the masks the block's first step drew; None outside a block (and for a cell pickled before blocks existed)
    _held_masks: dict[str, Tensor] | None = None

    @contextlib.contextmanager
    def holding_masks(self) -> Iterator[None]:
        """Within the block the steps share one set of masks, drawn by the first training step: recurrent dropout's
        (B, P) unless ``drop_mask`` is passed, and DropConnect's on W_hh, whose masked copy is made once and read by
        every step, as one call of a layer over the sequence draws them (in that order). One block a sequence (or
        batch of them), backward after the block; with ``weight_dropout`` in training the steps must run in one."""
        self._held_masks = {}
        try:
            yield
        finally:
            self._held_masks = None


class NotScriptable:
    """``torch.jit.script`` of an lstmkit module (or of a model holding one) stops with what to use instead.

    Without this TorchScript fails deep in its compiler ("Unknown type annotation"). Scripting cannot be offered:
    the kernels are Python autograd Functions and C++ extension calls, which TorchScript does not read, and
    torch.jit.script swaps a module's ``__prepare_scriptable__`` result into the caller's own model, so a
    substitute torch.nn.LSTM would silently replace the user's eager layer too."""

    def __prepare_scriptable__(self):
        raise RuntimeError(
            f"torch.jit.script cannot compile lstmkit.{type(self).__name__}: lstmkit's modules are Python that "
            "TorchScript does not read (autograd Functions, C++ extension calls, keyword-only arguments), and torch "
            "deprecates torch.jit.script. Use torch.compile or torch.export.export, which torch recommends instead"
        )


class RecurrentBase(NotScriptable, nn.Module, metaclass=ABCMeta):
    """Base of ``LSTM``, ``GRU`` and ``RNN``; not used directly."""

    _gates_per_unit: int = 1  # rows of weight_ih per hidden unit
    _n_states: int = 1  # (h,) for GRU/RNN, (h, c) for LSTM
    _weights_type: type[LSTMWeights] | type[GRUWeights] = GRUWeights  # what layer_weights returns
    # GRU, RNN: the time loop is always Python (no kernel a trace records as one operator), so torch.jit.trace
    # records torch's own operator instead (``_native_forward``).
    _python_loop_only: bool = False
    # A layer pickled before weight_dropout existed (torch.save of the whole module) loads without the attribute:
    # the class's 0 stands in for it. Set per instance by __init__.
    weight_dropout: float = 0.0
    # Inside ``holding_masks()``: (layer, direction) -> (recurrent-dropout mask or None, DropConnect mask or None),
    # drawn by the block's first training call and read by the rest; None outside such a block.
    _held_masks: dict | None = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        weight_dropout: float = 0.0,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = _check_dropout(dropout, self.num_layers)
        self.bidirectional = bool(bidirectional)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(f"proj_size must be a non-negative integer, got {proj_size!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
        self.proj_size = proj_size
        self.recurrent_dropout = _check_prob("recurrent_dropout", recurrent_dropout)
        self.weight_dropout = _check_prob("weight_dropout", weight_dropout)
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
        self.impl = impl
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        factory = {"device": device, "dtype": dtype}

        self._param_names: list[list[str]] = []  # per (layer, direction), in registration order
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = f"_l{layer}{'_reverse' if direction else ''}"
                names = []
                for name, shape in self._parameter_shapes(self._layer_input_size(layer)):
                    full = f"{name}{sfx}"
                    self.register_parameter(full, nn.Parameter(torch.empty(shape, **factory)))
                    names.append(full)
                self._param_names.append(names)
        self.reset_parameters()

    # --- sizes -------------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size when projecting, else hidden_size)."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.output_size * self.num_directions

    def _state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state tensor, in hx order."""
        return (self.output_size,) if self._n_states == 1 else (self.output_size, self.hidden_size)

    def _parameter_shapes(self, in_size: int) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of one layer and direction's parameters, torch.nn's names first."""
        G, P = self._gates_per_unit * self.hidden_size, self.output_size
        shapes = [("weight_ih", (G, in_size)), ("weight_hh", (G, P))]
        if self.bias:
            shapes += [("bias_ih", (G,)), ("bias_hh", (G,))]
        if self.proj_size > 0:
            shapes.append(("weight_hr", (self.proj_size, self.hidden_size)))
        return shapes

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every parameter uniform in +-1/sqrt(hidden_size)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """torch.nn's ``all_weights``: per layer and direction (l0, l0_reverse, l1, ...), that layer's
        Parameters themselves, in torch.nn's order (weight_ih, weight_hh, bias_ih, bias_hh, weight_hr),
        followed by the variants' (weight_ch, weight_ln_ih, weight_ln_hh, weight_ln_c, bias_ln_c)."""
        return [[getattr(self, n) for n in names] for names in self._param_names]

    def flatten_parameters(self) -> None:
        """No-op, kept so code written for torch.nn's cuDNN layers runs unchanged."""

    # --- the per-layer computation, supplied by subclasses ------------------------------------
    @abstractmethod
    def _run_direction(
        self,
        x: Tensor,
        state: tuple[Tensor, ...],
        w: LSTMWeights | GRUWeights,
        mask: Tensor | None,
        drop: Tensor | None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Run one layer and direction over x (T, B, in); return y (T, B, P) and the final state."""

    def _inference_plan(self, layer: int, direction: int, x: Tensor):
        """A function ``(x, state, mask) -> (y, state)`` running this layer and direction on a faster
        inference path for its compressed weights (int8, low rank), or None. Layers without one keep
        this default."""
        return None

    # --- input checks ------------------------------------------------------------------------
    def _check_input(self, input: Tensor | PackedSequence, lengths: Tensor | None):
        """Return (x (T, B, I) time-major, lengths or None, batched, packed)."""
        ref = next(self.parameters())
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths must not be given with a PackedSequence input (it carries its own)")
            x, lengths = pad_packed_sequence(input)  # original batch order
            batched, packed = True, True
        elif isinstance(input, Tensor):
            if input.dim() not in (2, 3):
                raise ValueError(
                    f"input must be 3-D ({'B, T' if self.batch_first else 'T, B'}, I) or 2-D (T, I) "
                    f"unbatched, got shape {tuple(input.shape)}"
                )
            batched, packed = input.dim() == 3, False
            x = input if batched else input.unsqueeze(1)  # unbatched (T, I) -> (T, 1, I)
            if batched and self.batch_first:
                x = x.transpose(0, 1)  # (B, T, I) -> (T, B, I)
        else:
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        if x.dtype != ref.dtype:
            raise TypeError(f"input dtype {x.dtype} does not match the parameters' dtype {ref.dtype}")
        check_device("input", x, ref)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input must have {self.input_size} features (input_size), got {x.shape[-1]}")
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError("input must have at least one time step, got T = 0")
        if lengths is not None and not packed:
            lengths = self._check_lengths(lengths, T, B, batched, x.device)
        elif packed:
            lengths = lengths.to(x.device)
        return x, lengths, batched, packed

    @staticmethod
    def _check_lengths(lengths: Tensor, T: int, B: int, batched: bool, device: torch.device) -> Tensor:
        """Return ``lengths`` as int64 on the input's ``device`` (given on the CPU or there) after the checks."""
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
        if not batched and lengths.dim() == 0:
            lengths = lengths.reshape(1)
        if lengths.dim() != 1 or lengths.shape[0] != B:
            raise ValueError(f"lengths must have shape ({B},) (one per sequence), got {tuple(lengths.shape)}")
        if torch.compiler.is_compiling():
            # Reading the values would be data-dependent control flow (a graph break); a compiled
            # model's lengths are not range-checked.
            return lengths.to(device=device, dtype=torch.long)
        if (lengths < 0).any():
            raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")
        if (lengths > T).any():
            raise ValueError(f"lengths must not exceed the input's {T} time steps, got max {int(lengths.max())}")
        return lengths.to(device=device, dtype=torch.long)

    def _check_hx(self, hx, B: int, batched: bool, ref: Tensor) -> tuple[Tensor, ...]:
        """Return the initial state as a tuple of (L*D, B, size) tensors (zeros when hx is None)."""
        LD = self.num_layers * self.num_directions
        sizes = self._state_sizes()
        if hx is None:
            return tuple(ref.new_zeros(LD, B, s) for s in sizes)
        names = ("h_0",) if self._n_states == 1 else ("h_0", "c_0")
        if self._n_states == 1:
            if not isinstance(hx, Tensor):
                raise TypeError(f"hx must be a Tensor (h_0), got {type(hx).__name__}")
            hx = (hx,)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(h, Tensor) for h in hx)):
            raise TypeError("hx must be a tuple (h_0, c_0) of two Tensors")
        out = []
        for name, h, s in zip(names, hx, sizes, strict=True):
            want = (LD, B, s) if batched else (LD, s)
            if tuple(h.shape) != want:
                raise ValueError(f"{name} must have shape {want}, got {tuple(h.shape)}")
            if h.dtype != ref.dtype:
                raise TypeError(f"{name} dtype {h.dtype} does not match the input's dtype {ref.dtype}")
            check_device(name, h, ref)
            out.append(h if batched else h.unsqueeze(1))  # unbatched (LD, s) -> (LD, 1, s)
        return tuple(out)

    # --- forward -------------------------------------------------------------------------------
    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ):
        """Run all layers and directions.

        input: (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a PackedSequence.
        lengths: optional (B,) valid lengths; outputs past a sequence's end are zero and its final
        state is the state at its last valid step.
        Returns output (same layout as input, last dim D*P) and the final state(s) (L*D, B, P).
        """
        x, lengths, batched, packed = self._check_input(input, lengths)
        init = self._check_hx(hx, x.shape[1], batched, x)
        tracer = onnx_exporter() or (JIT_TRACE if self._python_loop_only and torch.jit.is_tracing() else 0)
        if tracer:
            output, states = self._native_forward(x, init, lengths, packed, tracer)
        else:
            output, states = self._layers_forward(x, init, lengths)
        if packed:
            output = self._repack(output, lengths, input)
        elif not batched:
            output = output.squeeze(1)
            states = tuple(s.squeeze(1) for s in states)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (states[0] if self._n_states == 1 else states)

    def _dropout_masks(self, layer: int, d: int, B: int, w_hh: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """This call's masks for one layer and direction in training: recurrent dropout's (B, P), one per sequence
        (variational dropout), and DropConnect's on W_hh (G, P), each None when off; inside ``holding_masks()`` the
        block's first call draws them and the later calls reuse them."""
        held = self._held_masks
        if held is not None and (layer, d) in held:
            drop, weight_mask = held[layer, d]
            if drop is not None and drop.shape[0] != B:
                raise ValueError(f"inside holding_masks() every call must have the first call's batch size "
                                 f"{drop.shape[0]} (its recurrent-dropout masks are held), got {B}")
            return drop, weight_mask
        drop = weight_mask = None
        if self.training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            drop = w_hh.new_empty(B, self.output_size).bernoulli_(keep).div_(keep)
        if self.training and self.weight_dropout > 0:
            weight_mask = weight_drop_mask(w_hh, self.weight_dropout)
        if held is not None:
            held[layer, d] = (drop, weight_mask)
        return drop, weight_mask

    @contextlib.contextmanager
    def holding_masks(self) -> Iterator[None]:
        """Within the block every training call reuses the masks of the block's first call: for a model that calls
        the layer once per step (a decoder fed its own outputs), so that recurrent dropout stays one mask per
        sequence and DropConnect one W_hh mask per batch, as in a call over the whole sequence (each call's batch
        must then be the first's). Zoneout draws anew at every step either way."""
        self._held_masks = {}
        try:
            yield
        finally:
            self._held_masks = None

    def _layers_forward(
        self, x: Tensor, init: tuple[Tensor, ...], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Every layer and direction over x (T, B, I): output (T, B, D*P) and the final states (L*D, B, size)."""
        T, B = x.shape[0], x.shape[1]
        mask = None
        # Compiled: always mask when lengths are given (a mask that is all True changes no value), as
        # whether one is needed depends on the values.
        if lengths is not None and (torch.compiler.is_compiling() or bool((lengths < T).any())):
            mask = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)

        D = self.num_directions
        finals: list[list[Tensor]] = [[] for _ in init]
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                state = tuple(s[k] for s in init)
                seq = layer_in if d == 0 else reverse_padded(layer_in, lengths)
                w = layer_weights(self, layer, d)
                drop, weight_mask = self._dropout_masks(layer, d, B, w.w_hh)
                weight_drop = weight_mask is not None
                if weight_drop:
                    w = dataclasses.replace(w, w_hh=w.w_hh * weight_mask)
                run = self._inference_plan(layer, d, seq) if drop is None and not weight_drop else None
                if run is not None:
                    y, state = run(seq, state, mask)
                else:
                    y, state = self._run_direction(seq, state, w, mask, drop)
                outs.append(y if d == 0 else reverse_padded(y, lengths))
                for acc, s in zip(finals, state, strict=True):
                    acc.append(s)
            layer_in = outs[0] if D == 1 else torch.cat(outs, -1)  # (T, B, D*P)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)

        return layer_in, tuple(torch.stack(acc) for acc in finals)  # (T, B, D*P), each (L*D, B, size)

    # --- torch.onnx.export -------------------------------------------------------------------
    @abstractmethod
    def _native_op(self):
        """torch's own operator for this layer (``torch._VF.lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu``)."""

    def _native_blocker(self) -> str | None:
        """What this layer computes that torch's operator does not (a phrase for the export error), or None."""
        if self.training and self.recurrent_dropout > 0:
            return f"has recurrent_dropout={self.recurrent_dropout} in training mode"
        if self.training and self.weight_dropout > 0:
            return f"has weight_dropout={self.weight_dropout} in training mode"
        return None

    def _native_forward(
        self, x: Tensor, init: tuple[Tensor, ...], lengths: Tensor | None, packed: bool, tracer: int
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Under torch.onnx.export's TorchScript exporter (and torch.jit.trace of a GRU or RNN): torch's operator on
        torch.nn's flat weight list, called as torch.nn.LSTM calls it, so that the file holds the ONNX
        LSTM/GRU/RNN operator (the trace, torch's) with symbolic T and B; x (T, B, I) -> output (T, B, D*P), final
        states (L*D, B, size). Refuses the dynamo exporter and what the operator cannot compute (``_exporting``)."""
        reason = (DYNAMO_REASON if tracer == DYNAMO else "reads a PackedSequence" if packed
                  else "is given lengths" if lengths is not None else self._native_blocker())  # fmt: skip
        if reason is not None:
            error = trace_error if tracer == JIT_TRACE else export_error
            raise RuntimeError(error(type(self).__name__, reason))
        weights = [getattr(self, name) for names in self._param_names for name in names
                   if name.rsplit("_l", 1)[0] in NATIVE_NAMES]  # fmt: skip
        hx = init[0] if self._n_states == 1 else init
        result = self._native_op()(x, hx, weights, self.bias, self.num_layers, float(self.dropout), self.training,
                                   self.bidirectional, False)  # fmt: skip
        return result[0], tuple(result[1:])

    @staticmethod
    def _repack(output: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
        """Pack padded output (T, B, F) in original batch order with ``like``'s batch layout."""
        lengths = lengths.cpu()
        if like.sorted_indices is not None:
            idx = like.sorted_indices.to(output.device)
            output = output.index_select(1, idx)
            lengths = lengths[like.sorted_indices.cpu()]
        packed = pack_padded_sequence(output, lengths, enforce_sorted=True)
        return PackedSequence(packed.data, packed.batch_sizes, like.sorted_indices, like.unsorted_indices)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = {
            "proj_size": 0,
            "num_layers": 1,
            "bias": True,
            "batch_first": False,
            "dropout": 0.0,
            "bidirectional": False,
            "recurrent_dropout": 0.0,
            "weight_dropout": 0.0,
            "impl": "auto",
        }
        defaults.update(self._extra_defaults())
        for key, default in defaults.items():
            value = getattr(self, key)
            if value != default:
                s += f", {key}={value}"
        return s

    def _extra_defaults(self) -> dict[str, object]:
        return {}

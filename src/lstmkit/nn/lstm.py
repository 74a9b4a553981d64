"""``LSTM`` (a drop-in ``torch.nn.LSTM`` with variants), ``LSTMCell`` (a drop-in ``torch.nn.LSTMCell``
with the same variants) and ``LSTMStepCell`` (one step under the ``(x_t, state) -> (y_t, state)`` contract).

Where each variant acts, for one layer and direction (gate order i, f, g, o as in torch.nn)::

    a   = LN_ih(W_ih x_t) + LN_hh(W_hh (h_{t-1} * m)) + b_ih + b_hh       # (B, G) pre-activations
    i   = sigmoid(a_i + p_i * c_{t-1})
    f   = sigmoid(a_f + p_f * c_{t-1})        coupled: f = 1 - i, and a has no f block (G = 3H)
    g   = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    o   = sigmoid(a_o + p_o * c_t)             the output gate's peephole sees the new cell
    h_t = W_hr (o * tanh(LN_c(c_t)))           W_hr only with proj_size > 0

- ``layer_norm``: LN_ih and LN_hh normalise W_ih x_t and W_hh h_{t-1} separately over all G
  pre-activations (gain only: the biases b_ih + b_hh are added after them); LN_c normalises the
  cell over its H units (gain and bias) before the output tanh. The carried state c_t itself is
  not normalised. Without ``layer_norm`` every LN is the identity.
- ``peephole``: diagonal weights p (``weight_ch``, rows i, f, o; rows i, o when coupled).
- ``recurrent_dropout``: m is one Bernoulli mask per sequence (scaled by 1/(1-p)), on the
  recurrent input only, in training only.
- ``weight_dropout``: W_hh above is W_hh * M / (1-p), M one Bernoulli mask of its entries (DropConnect), in training
  only: a layer draws one per call; a cell one per ``with cell.holding_masks():`` block, its steps reading one masked
  copy.
- ``zoneout``: after the step, h_t = h_{t-1} and c_t = c_{t-1} unit by unit with probability p_h, p_c (a new draw
  every step) in training, and h_t = p_h h_{t-1} + (1 - p_h) h_t (likewise c) in eval mode; the output y_t is the
  zoned h_t. The layer draws every step's units at once (``_reference.zone_weights``) and every kernel applies
  them inside its loop, backward included.

Extra parameter names: ``weight_ch_l{k}`` (peepholes), ``weight_ln_ih_l{k}``, ``weight_ln_hh_l{k}``,
``weight_ln_c_l{k}``, ``bias_ln_c_l{k}`` (LayerNorm), each with ``_reverse`` for the reverse
direction; every torch.nn name and shape is unchanged.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _cpp
from ._base import (
    HoldsMasks,
    NotScriptable,
    RecurrentBase,
    _check_positive_int,
    _check_prob,
    autocast_off,
    cell_input,
    cell_masks,
)
from ._fused import input_gates, lstm_scan, zone_rows
from ._reference import lstm_input_side, lstm_recurrent_step, lstm_step, scan, zone_out, zone_step, zone_weights
from .int8 import factors, inference_runnable, int8_matrix, int8_runnable
from .weights import LSTMOptions, LSTMState, LSTMWeights, layer_weights


def _lstm_extra_shapes(hidden: int, coupled: bool, peephole: bool, layer_norm: bool):
    G = (3 if coupled else 4) * hidden
    shapes: list[tuple[str, tuple[int, ...]]] = []
    if peephole:
        shapes.append(("weight_ch", (2 if coupled else 3, hidden)))
    if layer_norm:
        shapes += [
            ("weight_ln_ih", (G,)),
            ("weight_ln_hh", (G,)),
            ("weight_ln_c", (hidden,)),
            ("bias_ln_c", (hidden,)),
        ]
    return shapes


def _check_lstm_options(bias: bool, coupled: bool, forget_bias: float | None, eps: float) -> None:
    if forget_bias is not None:
        if coupled:
            raise ValueError("forget_bias cannot be used with coupled=True: the coupled cell has no forget gate")
        if not bias:
            raise ValueError("forget_bias needs bias=True")
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)):
            raise TypeError(f"forget_bias must be a number, got {forget_bias!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"layer_norm_eps must be a positive number, got {eps!r}")


def _check_zoneout(zoneout: float | tuple[float, float]) -> tuple[float, float]:
    """(p_h, p_c) from a rate for both or a pair, each in [0, 1)."""
    pair = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
    ok = len(pair) == 2 and all(not isinstance(p, bool) and isinstance(p, (int, float)) and 0 <= p < 1 for p in pair)
    if not ok:
        raise ValueError(f"zoneout must be a number in [0, 1) or a pair (h, c) of them, got {zoneout!r}")
    return float(pair[0]), float(pair[1])


def _init_lstm_params(params: dict[str, Tensor], hidden: int, forget_bias: float | None) -> None:
    """Init the non-torch.nn parameters of one layer/direction; the rest is uniform already."""
    with torch.no_grad():
        for name, p in params.items():
            if name.startswith(("weight_ln_ih", "weight_ln_hh", "weight_ln_c")):
                p.fill_(1.0)  # LayerNorm starts as a pure normalisation
            elif name.startswith("bias_ln_c"):
                p.zero_()
        if forget_bias is not None:
            # The two bias vectors add up, so put the whole forget bias in bias_ih.
            params["bias_ih"][hidden : 2 * hidden].fill_(float(forget_bias))
            params["bias_hh"][hidden : 2 * hidden].zero_()


def scan_kernel(impl: str, x: Tensor):
    """The recurrence kernel for ``impl``: "cpp" (C++ time loops), "fused" (the same in PyTorch), or
    None for the reference loop.

    "auto" takes the C++ kernel where it can run (CPU, float32/float64, extension built) and the
    PyTorch one otherwise (other devices and dtypes, no compiler, ``LSTMKIT_NO_CPP=1``), except under
    torch.compile, where it takes the reference loop: the fused kernel's hand-written backward writes
    with ``out=`` into views, which Dynamo refuses (a graph break), while the reference loop is plain
    torch code that Dynamo unrolls and Inductor fuses (on a GPU: Triton kernels, autograd's backward).

    Under a torch.func transform (``_cpp.transformed``) every impl takes the reference loop.
    """
    if _cpp.transformed():
        return None
    if impl == "fused":
        return lstm_scan
    if impl == "cpp":
        return _cpp.lstm_scan_cpp  # raises with the reason when the extension is unavailable
    if x.device.type == "cpu" and x.dtype in _cpp.SUPPORTED_DTYPES and _cpp.available():
        return _cpp.lstm_scan_cpp
    if torch.compiler.is_compiling():
        return None
    return lstm_scan


def plain_cell(x_t: Tensor, state: tuple[Tensor, Tensor], w: LSTMWeights) -> tuple[Tensor, Tensor]:
    """One plain step (B, I) -> (h_t, c_t) by torch's own cell operator (what ``torch.nn.LSTMCell`` calls): the
    reference loop's step for a plain layer with zoneout. A module-level name, so that the export's rounding bounds
    (``lstmkit.export._spots.spotted_cells``) can put their spotted step in its place."""
    return torch._VF.lstm_cell(x_t, state, w.w_ih, w.w_hh, w.b_ih, w.b_hh)


def refuse_untraceable(kernel) -> None:
    """Raise where torch.jit.trace would record this layer wrongly: a Python time loop (fused or reference:
    the trace holds one length's steps, and the fused kernel's in-place buffers come out as constants). The
    C++ kernel traces as one operator, right at any length and batch size. (torch.onnx.export never gets
    here: ``RecurrentBase.forward`` takes torch's own operator or refuses, ``_exporting``.)"""
    if torch.jit.is_tracing() and kernel is not _cpp.lstm_scan_cpp:
        raise RuntimeError(
            "torch.jit.trace records lstmkit.LSTM only through its C++ kernel (impl='auto' or 'cpp', one "
            "operator at any length and batch size); this layer runs a Python time loop here (impl="
            f"{'reference' if kernel is None else 'fused'}), which a trace would fix to one length. Use "
            "torch.compile or torch.export.export instead, which trace every impl correctly."
        )


def _needs_grad(x: Tensor, state: tuple[Tensor, Tensor], w: LSTMWeights) -> bool:
    """Whether autograd will record this layer's forward (grad mode on and some input requiring grad)."""
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *state, *w.tensors())
    )


class LSTM(RecurrentBase):
    r"""Multi-layer LSTM: ``torch.nn.LSTM``'s arguments, shapes and parameters, plus variants.

    .. math::
        c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)

    The variants (keyword-only, all composable, see the module docstring for where each acts):
    ``peephole``, ``coupled`` (f = 1 - i), ``layer_norm``, ``recurrent_dropout``, ``weight_dropout``
    (DropConnect on W_hh: one mask a call, shared by every step; AWD-LSTM's weight drop, haste's ``dropout``),
    ``zoneout`` (p, or (p_h, p_c): Krueger et al. 2017, as on the cells; in every kernel), ``forget_bias``
    (initial forget-gate bias), ``layer_norm_eps``; ``impl`` forces the ``"cpp"`` kernel, the ``"fused"`` PyTorch
    kernel or the ``"reference"`` loop (``"auto"``: the C++ kernel where it can run, else the fused PyTorch one).

    Shapes: input (T, B, I) [(B, T, I) with batch_first, (T, I) unbatched, or PackedSequence];
    h_0/h_n (L*D, B, P), c_0/c_n (L*D, B, H); output (T, B, D*P). ``forward(..., lengths=...)``
    masks padded steps: their outputs are zero and the final state is the last valid step's.
    """

    _n_states = 2
    _weights_type = LSTMWeights
    zoneout: tuple[float, float] = (0.0, 0.0)  # the class's stands in for a layer pickled before the key existed

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
        peephole: bool = False,
        coupled: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        weight_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        forget_bias: float | None = None,
        layer_norm_eps: float = 1e-5,
        impl: str = "auto",
    ) -> None:
        _check_lstm_options(bias, coupled, forget_bias, layer_norm_eps)
        self.zoneout = _check_zoneout(zoneout)
        self.peephole = bool(peephole)
        self.coupled = bool(coupled)
        self.layer_norm = bool(layer_norm)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self.layer_norm_eps = float(layer_norm_eps)
        self._gates_per_unit = 3 if self.coupled else 4
        self._options = LSTMOptions(self.peephole, self.coupled, self.layer_norm, self.layer_norm_eps)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
            recurrent_dropout=recurrent_dropout,
            weight_dropout=weight_dropout,
            impl=impl,
        )

    def _parameter_shapes(self, in_size: int):
        extra = _lstm_extra_shapes(self.hidden_size, self.coupled, self.peephole, self.layer_norm)
        return super()._parameter_shapes(in_size) + extra

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                _init_lstm_params(layer_weights(self, layer, d).named(), self.hidden_size, self.forget_bias)

    def _extra_defaults(self) -> dict[str, object]:
        return {"peephole": False, "coupled": False, "layer_norm": False, "forget_bias": None,
                "layer_norm_eps": 1e-5, "zoneout": (0.0, 0.0)}

    def _native_op(self):
        return torch._VF.lstm

    def _native_blocker(self) -> str | None:
        variants = [f"{name}=True" for name in ("peephole", "coupled", "layer_norm") if getattr(self, name)]
        if variants:
            return f"has {' and '.join(variants)}, which torch's LSTM operator (what the exporter writes) lacks"
        if self._zoned:
            return f"has zoneout={self.zoneout}, which torch's LSTM operator lacks"
        if self.proj_size:  # torch's LSTM operator has it; its TorchScript exporter refuses to write it
            return f"has proj_size={self.proj_size}, which torch's TorchScript exporter does not write"
        return super()._native_blocker()

    def _int8_plan(self, layer: int, direction: int, x: Tensor):
        """(q_ih, q_hh, q_hr, the other weights) when W_ih, W_hh (and W_hr) are int8-capable (see
        lstmkit.nn.int8) and this call is eager CPU float32 inference; else None."""
        if not int8_runnable(x, self.impl):
            return None
        sfx = f"_l{layer}{'_reverse' if direction else ''}"
        q_ih, q_hh = int8_matrix(self, "weight_ih" + sfx), int8_matrix(self, "weight_hh" + sfx)
        q_hr = int8_matrix(self, "weight_hr" + sfx) if self.proj_size else None
        if q_ih is None or q_hh is None or (self.proj_size and q_hr is None):
            return None
        skip = {"w_ih", "w_hh", "w_hr"}  # read only as integers: never dequantised here
        rest = LSTMWeights(**{f: None if f in skip else getattr(self, n + sfx, None)
                              for f, n in LSTMWeights.PARAMETER_NAMES.items()})  # fmt: skip
        return q_ih, q_hh, q_hr, rest

    def _lowrank_plan(self, layer: int, direction: int, x: Tensor):
        """(W_ih's factors or None, W_hh's factors, the other weights) when W_hh is low rank
        (lstmkit.formats.lowrank) and this call is eager CPU inference; else None."""
        if not inference_runnable(x, self.impl):
            return None
        sfx = f"_l{layer}{'_reverse' if direction else ''}"
        f_hh = factors(self, "weight_hh" + sfx)
        if f_hh is None:
            return None
        f_ih = factors(self, "weight_ih" + sfx)
        skip = {"w_hh"} | ({"w_ih"} if f_ih is not None else set())  # never rebuilt here
        rest = LSTMWeights(**{f: None if f in skip else getattr(self, n + sfx, None)
                              for f, n in LSTMWeights.PARAMETER_NAMES.items()})  # fmt: skip
        return f_ih, f_hh, rest

    @property
    def _zoned(self) -> bool:
        """Whether zoneout acts (either rate above 0)."""
        return self.zoneout != (0.0, 0.0)

    def _inference_plan(self, layer: int, direction: int, x: Tensor):
        plan = self._int8_plan(layer, direction, x)
        if plan is not None:
            return lambda x, state, mask: self._run_int8(x, state, plan, mask)
        plan = self._lowrank_plan(layer, direction, x)
        if plan is not None:
            return lambda x, state, mask: self._run_lowrank(x, state, plan, mask)
        return None

    def _run_lowrank(self, x, state, plan, mask):
        f_ih, (left, right), w = plan
        # (T, B, G) = W_ih x: through the factors (x right^T) left^T when W_ih is low rank too.
        xg = F.linear(x, w.w_ih) if f_ih is None else F.linear(F.linear(x, f_ih[1]), f_ih[0])
        return self._scan_compressed(_cpp.lstm_scan_lowrank, xg, state, (left, right), w, mask)

    def _run_int8(self, x, state, plan, mask):
        q_ih, q_hh, q_hr, w = plan
        xg = q_ih.apply(x)  # (T, B, G) = W_ih x in int8, for all steps at once
        return self._scan_compressed(_cpp.lstm_scan_int8, xg, state, (q_hh, q_hr), w, mask)

    def _scan_compressed(self, scan_fn, xg, state, recurrent, w, mask):
        """Run ``scan_fn`` with the compressed recurrent weights ``recurrent`` on xg = W_ih x (T, B, G), a
        buffer of our own without the biases: the kernel finishes it step by step (LN_ih, the biases)."""
        zone = zone_weights(self.zoneout, self.training, xg.shape[0], state) if self._zoned else (None, None)
        y, h, c = scan_fn(xg, state, *recurrent, w, self._options, mask, zone=zone, finish_input=True)
        return y, (h, c)

    def _run_direction(self, x, state, w, mask, drop):
        kernel = None if self.impl == "reference" else scan_kernel(self.impl, x)
        refuse_untraceable(kernel)
        opt = self._options
        # Zoneout's weights for every step at once (the draws in training), read by the kernels and the loop alike.
        zone = zone_weights(self.zoneout, self.training, x.shape[0], state) if self._zoned else (None, None)
        if kernel is None and self._zoned:  # the reference loop, the step followed by zoneout (autograd's backward)
            if drop is None and not (opt.peephole or opt.coupled or opt.layer_norm or w.w_hr is not None):
                # A plain layer steps torch's own cell operator on x_t, as LSTMCell does (one dispatch for the
                # step's products and gates where the reference step makes some fifteen).
                def step(inputs, s):
                    x_t, *z = inputs
                    h, c = zone_step(plain_cell(x_t, s, w), s, z)
                    return h, (h, c)

                return scan(step, (x, *(zone_rows(z, x.shape[0]) for z in zone)), state, mask)

            def step(inputs, s):
                a_t, *z = inputs
                _, new = lstm_recurrent_step(a_t, s, w, opt, drop)
                h, c = zone_step(new, s, z)
                return h, (h, c)

            return scan(step, (lstm_input_side(x, w, opt), *(zone_rows(z, x.shape[0]) for z in zone)), state, mask)
        if kernel is _cpp.lstm_scan_cpp and not _needs_grad(x, state, w) and not _cpp.tracing(x):
            # Inference: the kernel computes W_ih x a chunk of steps at a time into a buffer its steps read from
            # cache, and finishes each row there (LN_ih with LayerNorm, the biases): no (T, B, G) tensor and no
            # pass over one; the result is input_gates' to rounding.
            y, h, c = _cpp.lstm_scan_cpp_input(x, state, w, opt, drop, mask, zone=zone)
            return y, (h, c)
        # The input side of every step at once, (T, B, I) -> (T, B, G): the fused ops, or the reference's op by op.
        # Under torch.autocast it runs in autocast's lower precision; the recurrence in the parameters' dtype.
        if kernel is None:
            xg = lstm_input_side(x, w, opt)
        else:  # the C++ kernel's layers run the product on its panels where MKL is slow (_cpp.whole_linear)
            xg = input_gates(x, w, opt, _cpp.whole_linear if kernel is _cpp.lstm_scan_cpp else F.linear)
        xg = xg.to(w.w_hh.dtype)
        with autocast_off(x):
            if kernel is None:  # (zoneout took the loop above)
                y, (h, c) = scan(lambda a_t, s: lstm_recurrent_step(a_t, s, w, opt, drop), xg, state, mask)
            else:
                y, h, c = kernel(xg, state, w, opt, drop, mask, zone=zone, source=x)
        return y, (h, c)


class _LSTMCellBase(HoldsMasks, NotScriptable, nn.Module):
    """What both cells share: arguments, parameters (``torch.nn.LSTMCell``'s names), state checks, one step."""

    _weights_type = LSTMWeights
    # (p_h, p_c); a cell pickled before zoneout existed loads without the attribute and runs without it.
    zoneout: tuple[float, float] = (0.0, 0.0)
    weight_dropout: float = 0.0  # likewise for a cell pickled before the cells took DropConnect

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        proj_size: int = 0,
        peephole: bool = False,
        coupled: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        forget_bias: float | None = None,
        layer_norm_eps: float = 1e-5,
        weight_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
            raise ValueError(f"proj_size must be an integer in [0, hidden_size={hidden_size}), got {proj_size!r}")
        _check_lstm_options(bias, coupled, forget_bias, layer_norm_eps)
        self.bias = bool(bias)
        self.proj_size = proj_size
        self.recurrent_dropout = _check_prob("recurrent_dropout", recurrent_dropout)
        self.weight_dropout = _check_prob("weight_dropout", weight_dropout)
        self.zoneout = _check_zoneout(zoneout)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self._options = LSTMOptions(bool(peephole), bool(coupled), bool(layer_norm), float(layer_norm_eps))
        factory = {"device": device, "dtype": dtype}
        G = (3 if coupled else 4) * hidden_size
        P = proj_size or hidden_size
        shapes = [("weight_ih", (G, input_size)), ("weight_hh", (G, P))]
        if bias:
            shapes += [("bias_ih", (G,)), ("bias_hh", (G,))]
        if proj_size:
            shapes.append(("weight_hr", (proj_size, hidden_size)))
        shapes += _lstm_extra_shapes(hidden_size, coupled, peephole, layer_norm)
        for name, shape in shapes:
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        if not bias:
            # As torch.nn.LSTMCell: the attributes exist and are None, and the state dict has no such keys.
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size when projecting, else hidden_size)."""
        return self.proj_size or self.hidden_size

    @property
    def _zoned(self) -> bool:
        """Whether zoneout acts (either rate above 0)."""
        return self.zoneout != (0.0, 0.0)

    @property
    def _plain(self) -> bool:
        """No variant: a step is torch's own cell operator (``_step``). A property, so that a cell pickled before
        it existed still loads."""
        o = self._options
        return not (o.peephole or o.coupled or o.layer_norm or self.proj_size)

    def reset_parameters(self) -> None:
        """torch.nn's initialisation (uniform in +-1/sqrt(hidden_size)), then the variants' own."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)
        _init_lstm_params(dict(self.named_parameters()), self.hidden_size, self.forget_bias)

    def dropout_mask(self, batch_size: int) -> Tensor:
        """A (B, P) recurrent-dropout mask, scaled by 1/(1-p); draw one per sequence."""
        keep = 1.0 - self.recurrent_dropout
        return self.weight_hh.new_empty(batch_size, self.output_size).bernoulli_(keep).div_(keep)

    def initial_state(self, batch_size: int) -> LSTMState:
        """Zero state (h (B, P), c (B, H))."""
        w = self.weight_hh
        return LSTMState(w.new_zeros(batch_size, self.output_size), w.new_zeros(batch_size, self.hidden_size))

    def _step(
        self, input: Tensor, state: tuple[Tensor, Tensor] | None, drop_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Check the arguments, run one step; return (h_t, c_t) in the input's layout (batched or not)."""
        dropping = self.training and (self.recurrent_dropout > 0 or self.weight_dropout > 0)
        if self._plain and not dropping and isinstance(state, tuple):
            # The common call, checked in a few comparisons (at batch 1 the full checks below cost a tenth of the
            # step): a plain cell, batched input and a state (h, c) of the right shapes, the input's dtype the
            # weights'. Anything else takes the full checks, which name what is wrong.
            h0, c0 = state if len(state) == 2 else (None, None)
            w_ih = self.weight_ih
            if (isinstance(input, Tensor) and isinstance(h0, Tensor) and isinstance(c0, Tensor) and input.dim() == 2
                    and input.dtype == w_ih.dtype and input.is_floating_point()
                    and input.shape[1] == self.input_size and h0.shape == (input.shape[0], self.hidden_size)
                    and c0.shape == h0.shape and h0.dtype == c0.dtype == input.dtype
                    and not _cpp.transformed()):  # fmt: skip
                h, c = torch._VF.lstm_cell(input, (h0, c0), w_ih, self.weight_hh, self.bias_ih, self.bias_hh)
                return zone_out((h, c), (h0, c0), self.zoneout, self.training) if self._zoned else (h, c)
        name = type(self).__name__
        x = cell_input(self, input)  # (B, I)
        batched = input.dim() == 2
        B = x.shape[0]
        if state is None:
            state = self.initial_state(B)
        else:
            if not (isinstance(state, (tuple, list)) and len(state) == 2 and all(isinstance(s, Tensor) for s in state)):
                raise TypeError("state must be a tuple (h, c) of two Tensors")
            for idx, s in enumerate(state):
                if s.dim() not in (1, 2):
                    raise ValueError(f"{name}: Expected hx[{idx}] to be 1D or 2D, got {s.dim()}D instead")
            want = ((B, self.output_size), (B, self.hidden_size))
            state = tuple(s if batched else s.unsqueeze(0) for s in state)
            for sname, s, w in zip(("h", "c"), state, want, strict=True):
                if tuple(s.shape) != w:
                    raise ValueError(f"state {sname} must have shape {w if batched else w[1:]}, got "
                                     f"{tuple(s.shape) if batched else tuple(s.shape[1:])}")
                if s.dtype != x.dtype:
                    raise TypeError(f"state {sname} dtype must be the parameters' {x.dtype}, got {s.dtype}")
        drop_mask, w_hh = cell_masks(self, B, self.output_size, drop_mask)
        o = self._options
        if drop_mask is None and self._plain and not _cpp.transformed():  # torch.func: no vmap rule for lstm_cell
            # torch's own cell (what torch.nn.LSTMCell calls): lstm_step's plain step as one operator, W x + b and
            # W h + b by addmm and the gates in place (tests/nn/test_cells.py holds the two equal). The weights
            # read as attributes (a parametrized one computed, as layer_weights would): building layer_weights'
            # record costs a fifth of a small step.
            h, c = torch._VF.lstm_cell(x, tuple(state), self.weight_ih, w_hh, self.bias_ih, self.bias_hh)
        else:
            w = layer_weights(self)
            w = w if w_hh is self.weight_hh else dataclasses.replace(w, w_hh=w_hh)
            h, (h, c) = lstm_step(x, tuple(state), w, o, drop_mask)
        if self._zoned:
            h, c = zone_out((h, c), tuple(state), self.zoneout, self.training)
        if not batched:
            h, c = h.squeeze(0), c.squeeze(0)
        return h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        o = self._options
        for key, value, default in (
            ("bias", self.bias, True),
            ("proj_size", self.proj_size, 0),
            ("peephole", o.peephole, False),
            ("coupled", o.coupled, False),
            ("layer_norm", o.layer_norm, False),
            ("recurrent_dropout", self.recurrent_dropout, 0.0),
            ("zoneout", self.zoneout, (0.0, 0.0)),
            ("forget_bias", self.forget_bias, None),
            ("layer_norm_eps", o.eps, 1e-5),
            ("weight_dropout", self.weight_dropout, 0.0),
        ):
            if value != default:
                s += f", {key}={value}"
        return s


class LSTMCell(_LSTMCellBase):
    r"""Drop-in ``torch.nn.LSTMCell``: ``(input, (h_0, c_0)) -> (h_1, c_1)``, plus ``LSTM``'s variants.

    .. math::
        c_1 = f \odot c_0 + i \odot g, \qquad h_1 = o \odot \tanh(c_1)

    ``torch.nn.LSTMCell``'s arguments (``input_size, hidden_size, bias=True, device=None,
    dtype=None``), parameter names (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``; the biases
    are None with ``bias=False``), initialisation, return value and unbatched handling, so either
    loads the other's state dict. The variants are keyword-only (``proj_size``, ``peephole``,
    ``coupled``, ``layer_norm``, ``recurrent_dropout``, ``zoneout``, ``forget_bias``, ``layer_norm_eps``,
    ``weight_dropout``) and add parameters named as in ``LSTM`` without the layer suffix (``weight_hr``,
    ``weight_ch``, ...). ``zoneout``:
    a rate p for h and c, or (p_h, p_c) (Krueger et al. 2017 used 0.05 and 0.5): each unit of the new state keeps
    its previous value with that probability, drawn anew every step, in training; the expectation in eval mode.

    Shapes: input (B, I) or (I,); h (B, P), c (B, H) (or (P,), (H,) unbatched); hx None means zeros.
    With ``recurrent_dropout`` in training, pass ``drop_mask=cell.dropout_mask(B)``, drawn once per
    sequence, to every step of that sequence, or step the sequence inside ``with cell.holding_masks():``, which
    draws it at the first step; with ``weight_dropout`` (DropConnect on ``weight_hh``) the steps must run inside
    such a block (one masked W_hh for all of them). ``LSTMStepCell`` is the same cell under the
    ``(x_t, state) -> (y_t, state)`` contract.
    """

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None, drop_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self._step(input, hx, drop_mask)


class LSTMStepCell(_LSTMCellBase):
    r"""One LSTM step with every variant of ``LSTM``: ``(x_t, (h, c)) -> (h_t, LSTMState(h_t, c_t))``.

    The cell contract of STYLE.md (every cell maps ``(x_t, state)`` to ``(y_t, state)``, so the
    state feeds straight back in); arguments, parameters and shapes are ``LSTMCell``'s, and the two
    load each other's state dicts. ``state`` None means zeros.
    """

    def forward(
        self, input: Tensor, state: tuple[Tensor, Tensor] | None = None, drop_mask: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        h, c = self._step(input, state, drop_mask)
        return h, LSTMState(h, c)

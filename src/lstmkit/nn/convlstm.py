r"""``ConvLSTM`` (a multi-layer convolutional LSTM over frame sequences) and ``ConvLSTMCell`` (one step).

The ConvLSTM of Shi et al. 2015 replaces the LSTM's matrix products by convolutions, so that the
state is a stack of maps, one per hidden channel, the size of the input frame. For one layer
(gate order i, f, g, o as in torch.nn; * is convolution with same padding, ∘ the Hadamard product)::

    a   = LN_ih(W_ih * x_t) + LN_hh(W_hh * h_{t-1}) + b        (B, G, H, W) pre-activations
    i   = sigmoid(a_i + p_i ∘ c_{t-1})
    f   = sigmoid(a_f + p_f ∘ c_{t-1})
    g   = tanh(a_g)
    c_t = f ∘ c_{t-1} + i ∘ g
    o   = sigmoid(a_o + p_o ∘ c_t)                 the output gate's peephole sees the new cell
    h_t = o ∘ tanh(LN_c(c_t))

- ``layer_norm``: LN_ih and LN_hh normalise W_ih * x_t and W_hh * h_{t-1} separately, each over
  a sample's whole (G, H, W) map (``F.group_norm`` with one group), with one gain per channel and
  no bias (b is added after them); LN_c normalises c_t over its whole (Hc, H, W) map, gain and
  bias per channel, on the way into the output tanh only: the carried c_t is not normalised. This
  is where the 1-D ``LSTM(layer_norm=True)`` normalises, with the frame added to the normalised
  axes; the affine parameters are per channel, not per position, so that the layer keeps working
  on any frame size. Without ``layer_norm`` every LN is the identity.
- ``peephole``: p are elementwise weights over the cell map (``weight_ch``, rows i, f, o). By
  default one weight per hidden channel, (3, Hc, 1, 1), broadcast over the frame: the layer then
  runs on frames of any size, like its convolutions. Shi et al. use a full map per channel, a
  weight per position; ``peephole_frame=(H, W)`` gives exactly that, (3, Hc, H, W), and ties the
  layer to frames of that size (any other size is an error).

Parameter names, per layer k: ``weight_ih_l{k}`` (G, C_k, kh, kw), ``weight_hh_l{k}``
(G, Hc_k, kh, kw), ``bias_l{k}`` (G,) (one bias: there is no torch.nn layer whose two bias vectors
need matching), ``weight_ch_l{k}``, ``weight_ln_ih_l{k}`` (G,), ``weight_ln_hh_l{k}`` (G,),
``weight_ln_c_l{k}`` (Hc,), ``bias_ln_c_l{k}`` (Hc,). ``ConvLSTMCell`` uses the same names without
the suffix, so it loads a one-layer ``ConvLSTM``'s state dict with ``_l0`` stripped.

Shapes: T time, B batch, C input channels, Hc hidden channels (``hidden_channels``), G = 4 Hc,
H and W the frame's height and width, kh and kw the kernel. (H is the frame height here, not the
hidden size as in ``lstm.py``.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _cpp, _winograd
from ._base import NotScriptable, RecurrentBase, _check_positive_int, _check_prob, check_device
from ._convlstm_bptt import convlstm_layer_bptt
from ._convlstm_reference import ConvLSTMOptions, ConvLSTMWeights, convlstm_step, same_padding
from ._reference import scan

_IMPLS = ("auto", "bptt", "winograd", "fused", "concat", "reference")
ConvState = tuple[Tensor, Tensor]


# --- argument checks -----------------------------------------------------------------------------
def _check_kernel_size(kernel_size: int | Sequence[int]) -> tuple[int, int]:
    one = isinstance(kernel_size, int) and not isinstance(kernel_size, bool)
    k = (kernel_size, kernel_size) if one else kernel_size
    if not (
        isinstance(k, (tuple, list))
        and len(k) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in k)
    ):
        raise ValueError(f"kernel_size must be a positive integer or a pair of them, got {kernel_size!r}")
    if k[0] % 2 == 0 or k[1] % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd: same padding keeps the frame size only for odd kernels, got {kernel_size!r}"
        )
    return int(k[0]), int(k[1])


def _check_frame(frame: Sequence[int] | None) -> tuple[int, int] | None:
    if frame is None:
        return None
    if not (
        isinstance(frame, (tuple, list))
        and len(frame) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in frame)
    ):
        raise ValueError(f"peephole_frame must be a pair (H, W) of positive integers, got {frame!r}")
    return int(frame[0]), int(frame[1])


def _check_options(bias: bool, peephole: bool, peephole_frame, forget_bias: float | None, eps: float) -> None:
    if peephole_frame is not None and not peephole:
        raise ValueError("peephole_frame needs peephole=True")
    if forget_bias is not None:
        if not bias:
            raise ValueError("forget_bias needs bias=True")
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)):
            raise TypeError(f"forget_bias must be a number, got {forget_bias!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"layer_norm_eps must be a positive number, got {eps!r}")


# --- parameters, shared by the layer and the cell -------------------------------------------------
def _param_shapes(
    c_in: int,
    hidden: int,
    kernel: tuple[int, int],
    bias: bool,
    peephole: bool,
    peephole_frame: tuple[int, int] | None,
    layer_norm: bool,
) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of one layer's parameters, without the layer suffix."""
    G = 4 * hidden
    shapes: list[tuple[str, tuple[int, ...]]] = [("weight_ih", (G, c_in, *kernel)), ("weight_hh", (G, hidden, *kernel))]
    if bias:
        shapes.append(("bias", (G,)))
    if peephole:
        shapes.append(("weight_ch", (3, hidden, *(peephole_frame or (1, 1)))))
    if layer_norm:
        shapes += [("weight_ln_ih", (G,)), ("weight_ln_hh", (G,)), ("weight_ln_c", (hidden,)), ("bias_ln_c", (hidden,))]
    return shapes


def _init_params(params: dict[str, Tensor], c_in: int, hidden: int, forget_bias: float | None) -> None:
    """Uniform in ±1/sqrt(fan_in), fan_in = (C + Hc) kh kw: the fan-in of the textbook convolution over
    [x_t, h_{t-1}] (nn.Conv2d's default bound); LayerNorm gains 1 and bias 0; the forget bias if given."""
    kh, kw = params["weight_ih"].shape[-2:]
    stdv = 1.0 / math.sqrt((c_in + hidden) * kh * kw)
    with torch.no_grad():
        for name, p in params.items():
            if name in ("weight_ln_ih", "weight_ln_hh", "weight_ln_c"):
                p.fill_(1.0)  # LayerNorm starts as a pure normalisation
            elif name == "bias_ln_c":
                p.zero_()
            else:
                p.uniform_(-stdv, stdv)
        if forget_bias is not None:
            params["bias"][hidden : 2 * hidden].fill_(float(forget_bias))


def _weights(p: dict[str, Tensor]) -> ConvLSTMWeights:
    return ConvLSTMWeights(
        p["weight_ih"],
        p["weight_hh"],
        p.get("bias"),
        p.get("weight_ch"),
        p.get("weight_ln_ih"),
        p.get("weight_ln_hh"),
        p.get("weight_ln_c"),
        p.get("bias_ln_c"),
    )


# --- the fused layer -------------------------------------------------------------------------------
def _gate_update(a: Tensor, c: Tensor, w: ConvLSTMWeights, opt: ConvLSTMOptions) -> ConvState:
    """The pointwise part of a step, from pre-activations a (B, G, H, W) and c_{t-1} (B, Hc, H, W)."""
    hidden = c.shape[1]
    if opt.peephole:
        a_i, a_f, a_g, a_o = a.split(hidden, dim=1)  # each (B, Hc, H, W)
        i = torch.sigmoid(torch.addcmul(a_i, w.peep[0], c))
        f = torch.sigmoid(torch.addcmul(a_f, w.peep[1], c))
    else:
        # One split node (its backward is one cat): slicing a[:, :2Hc] would make autograd fill a
        # zero (B, G, H, W) gradient per slice and add into it.
        a_if, a_g, a_o = a.split([2 * hidden, hidden, hidden], dim=1)
        i, f = torch.sigmoid(a_if).split(hidden, dim=1)  # i and f in one call
    c_new = torch.addcmul(f * c, i, torch.tanh(a_g))
    o = torch.sigmoid(torch.addcmul(a_o, w.peep[2], c_new) if opt.peephole else a_o)
    c_out = F.group_norm(c_new, 1, w.g_c, w.b_c, opt.eps) if opt.layer_norm else c_new
    return o * torch.tanh(c_out), c_new


def convlstm_layer(
    x: Tensor,
    state: ConvState,
    w: ConvLSTMWeights,
    opt: ConvLSTMOptions,
    mask: Tensor | None = None,
    hoist_input: bool = True,
    zero_state: bool = False,
) -> tuple[Tensor, ConvState]:
    """Run one layer over x (T, B, C, H, W); return y (T, B, Hc, H, W) and the final (h, c).

    Two arrangements of the same convolutions (same FLOPs), chosen by ``hoist_input``:

    - True (``impl="fused"``): the input side of every step is one convolution over all T B frames
      (with LN_ih and the bias) before the loop; per step one convolution over h_{t-1} for all four
      gates, plus the input side's (B, G, H, W) slice.
    - False (``impl="concat"``, what ``"auto"`` runs without layer_norm): per step one convolution
      over [x_t, h_{t-1}] with W_ih and W_hh concatenated once, before the loop. On the CPU a
      convolution over B H W output positions is already a large matrix product, so hoisting gains
      little efficiency, while the hoisted input side writes T B G maps and adds one back per step;
      with few input channels (C = 1: 4 Hc output maps per input map) that costs more than it saves
      (docs/benchmarks.md). LayerNorm normalises the two sides separately, so it needs True.

    mask (T, B) bool, if given, is False past each sequence's end: there the state is carried
    and the output is zero, as in ``_reference.scan``. Autograd records the steps; the plain cell has
    a hand-written backward instead (``_convlstm_bptt``, ``impl="bptt"``).

    ``zero_state``: the caller promises h_0 = 0 (the module's default state, made by it and needing no
    gradient): the first step then skips W_hh * h_0, which is exactly zero (and so is LN_hh of it),
    and with it that step's recurrent weight and data gradients: 1/T of the recurrent convolutions.
    """
    T, B, C, H, W = x.shape
    G = w.w_ih.shape[0]
    if hoist_input:
        xg = F.conv2d(
            x.reshape(T * B, C, H, W), w.w_ih, None if opt.layer_norm else w.b, padding=same_padding(w.w_ih)
        )  # (T*B, G, H, W)
        if opt.layer_norm:
            xg = F.group_norm(xg, 1, w.g_ih, w.b, opt.eps)  # LN_ih, with the gate bias in its bias slot
        # unbind, not xg[t]: the backward of indexing would fill a zero (T, B, G, H, W) gradient at
        # every step (quadratic in T); unbind's backward stacks the T step gradients once.
        xgs = xg.view(T, B, G, H, W).unbind(0)  # T x (B, G, H, W)
    else:
        assert not opt.layer_norm, "layer_norm normalises W_ih * x and W_hh * h separately: hoist_input"
        weight = torch.cat([w.w_ih, w.w_hh], dim=1)  # (G, C + Hc, kh, kw), once for all steps
        xs = x.unbind(0)  # T x (B, C, H, W); unbind for the same reason as above
    h, c = state
    pad = same_padding(w.w_hh)
    ys = []
    for t in range(T):
        if zero_state and t == 0:  # W_hh * h_0 = 0 (and LN_hh(0) = 0): the input side alone
            a = xgs[0] if hoist_input else F.conv2d(xs[0], w.w_ih, w.b, padding=pad)  # (B, G, H, W)
        elif hoist_input:
            r = F.conv2d(h, w.w_hh, padding=pad)  # (B, G, H, W), all four gates in one convolution
            if opt.layer_norm:
                r = F.group_norm(r, 1, w.g_hh, None, opt.eps)
            a = r.add_(xgs[t])  # in place: neither conv2d's nor group_norm's backward needs its output
        else:
            a = F.conv2d(torch.cat([xs[t], h], dim=1), weight, w.b, padding=pad)  # (B, G, H, W)
        h_new, c_new = _gate_update(a, c, w, opt)
        if mask is not None:
            m = mask[t].view(B, 1, 1, 1)
            h_new = torch.where(m, h_new, h)
            c_new = torch.where(m, c_new, c)
            ys.append(h_new * m)
        else:
            ys.append(h_new)
        h, c = h_new, c_new
    return torch.stack(ys), (h, c)  # (T, B, Hc, H, W)


# --- the modules -----------------------------------------------------------------------------------
class ConvLSTM(NotScriptable, nn.Module):
    r"""Multi-layer convolutional LSTM (Shi et al. 2015) over sequences of frames.

    .. math::
        c_t = f_t \circ c_{t-1} + i_t \circ g_t, \qquad h_t = o_t \circ \tanh(c_t),
        \qquad [i, f, g, o]_t = \text{act}(W_{ih} * x_t + W_{hh} * h_{t-1} + b)

    Arguments: ``input_channels`` (C), ``hidden_channels`` (Hc: one int, or one per layer),
    ``kernel_size`` (an odd int or pair; same padding, so every map keeps the frame size H x W),
    ``num_layers``, ``bias``, ``batch_first``, ``dropout`` (elementwise, on each layer's output but
    the last, in training, as ``torch.nn.LSTM``); keyword-only variants ``peephole`` (one weight per
    channel, or full (H, W) maps with ``peephole_frame``), ``layer_norm``, ``forget_bias`` (initial
    forget-gate bias), ``layer_norm_eps``. See the module docstring for where each variant acts.

    ``impl``: ``"bptt"`` (the plain cell only: one ``autograd.Function`` with a hand-written backward
    through time, see ``_convlstm_bptt``), ``"winograd"`` (``"bptt"`` with its 3x3 convolutions by
    Winograd's F(4x4, 3x3), ``_winograd``: 4x fewer multiplications, float32 rounding a few times a
    direct convolution's; where it cannot run, off the CPU or without the C++ extension, the direct
    convolutions of ``"bptt"``), ``"fused"`` (the input convolution for all steps at once,
    then one recurrent convolution per step), ``"concat"`` (per step one convolution over
    [x_t, h_{t-1}], the weights concatenated once; not with ``layer_norm``), ``"auto"`` (``"concat"``,
    or ``"fused"`` with ``layer_norm``: the faster on the CPU, see docs/benchmarks.md) or
    ``"reference"`` (the readable textbook step under the reference time loop). With ``hx=None``
    (zeros) every impl but the reference skips the first step's W_hh * h_0, which is exactly zero:
    1/T of the recurrent convolutions and of their gradients.

    ``forward(input, hx=None, *, lengths=None)``: input (T, B, C, H, W), or (B, T, C, H, W) with
    ``batch_first``; hx a list of one (h_0, c_0) pair per layer, each (B, Hc_k, H, W), or None for
    zeros; lengths (B,) masks padded steps (their outputs are zero and the final state is the last
    valid step's). Returns the last layer's output (T, B, Hc_last, H, W) (batch-first if the input
    was) and a list of the final (h_n, c_n) per layer. A list, not one stacked tensor as in
    ``torch.nn.LSTM``: the layers may have different hidden channel counts, and a list of per-layer
    pairs is what ``hx`` takes back.
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int | Sequence[int],
        kernel_size: int | Sequence[int] = 3,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        peephole: bool = False,
        peephole_frame: Sequence[int] | None = None,
        layer_norm: bool = False,
        forget_bias: float | None = None,
        layer_norm_eps: float = 1e-5,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        self.input_channels = _check_positive_int("input_channels", input_channels)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        if isinstance(hidden_channels, int) and not isinstance(hidden_channels, bool):
            hidden = [_check_positive_int("hidden_channels", hidden_channels)] * self.num_layers
        elif isinstance(hidden_channels, (tuple, list)):
            if len(hidden_channels) != self.num_layers:
                raise ValueError(
                    f"hidden_channels must be one integer or one per layer (num_layers={self.num_layers}), "
                    f"got {len(hidden_channels)} values"
                )
            hidden = [_check_positive_int("hidden_channels", h) for h in hidden_channels]
        else:
            raise ValueError(f"hidden_channels must be a positive integer or a list of them, got {hidden_channels!r}")
        self.hidden_channels = hidden
        self.kernel_size = _check_kernel_size(kernel_size)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = _check_prob("dropout", dropout)
        self.peephole_frame = _check_frame(peephole_frame)
        _check_options(bias, peephole, self.peephole_frame, forget_bias, layer_norm_eps)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self.layer_norm_eps = float(layer_norm_eps)
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
        if impl == "concat" and layer_norm:
            raise ValueError(
                "impl='concat' cannot be used with layer_norm=True: LayerNorm normalises W_ih * x and W_hh * h "
                "separately, so they cannot share one convolution; use impl='fused' or 'auto'"
            )
        if impl in ("bptt", "winograd") and (peephole or layer_norm):
            raise ValueError(
                f"impl={impl!r} (the hand-written backward) runs the plain cell only, not peephole or layer_norm; "
                "use impl='fused' or 'auto'"
            )
        if impl == "winograd" and self.kernel_size != (3, 3):
            raise ValueError(
                f"impl='winograd' (F(4x4, 3x3)) runs 3x3 kernels only, got kernel_size {self.kernel_size}; "
                "use impl='bptt' or 'auto'"
            )
        self.impl = impl
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self._options = ConvLSTMOptions(self.peephole, self.layer_norm, self.layer_norm_eps)
        factory = {"device": device, "dtype": dtype}
        for layer in range(self.num_layers):
            for name, shape in _param_shapes(
                self._layer_input_channels(layer), hidden[layer], self.kernel_size, self.bias, self.peephole,
                self.peephole_frame, self.layer_norm,
            ):
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    def _runs_bptt(self) -> bool:
        """Whether forward runs the hand-written backward (``_convlstm_bptt``): only when asked for
        (``"bptt"``, ``"winograd"``). ``"auto"`` runs ``"concat"`` for the plain cell: the tasks' figures were
        measured with it (``"bptt"`` has measured 1-9% faster since session 19, docs/layers.md)."""
        return self.impl in ("bptt", "winograd")

    def _layer_input_channels(self, layer: int) -> int:
        return self.input_channels if layer == 0 else self.hidden_channels[layer - 1]

    def _layer_params(self, layer: int) -> dict[str, Tensor]:
        """This layer's parameters, keyed by name without the suffix. Read as attributes, not through
        ``named_parameters``: a parametrized weight (``lstmkit compress quantize``'s ``Dequantize``) is
        the attribute, while its parameter is the stored original."""
        names = [name for name, _ in _param_shapes(1, 1, (1, 1), self.bias, self.peephole, None, self.layer_norm)]
        return {name: getattr(self, f"{name}_l{layer}") for name in names}

    def reset_parameters(self) -> None:
        for layer in range(self.num_layers):
            _init_params(self._layer_params(layer), self._layer_input_channels(layer), self.hidden_channels[layer],
                         self.forget_bias)

    # --- input checks --------------------------------------------------------------------------
    def _check_input(self, input: Tensor) -> Tensor:
        """Return x (T, B, C, H, W), time-major."""
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
        layout = "B, T" if self.batch_first else "T, B"
        if input.dim() != 5:
            raise ValueError(f"input must be 5-D ({layout}, C, H, W), got shape {tuple(input.shape)}")
        if not input.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
        ref = self.weight_ih_l0
        if input.dtype != ref.dtype:
            raise TypeError(f"input dtype {input.dtype} does not match the parameters' dtype {ref.dtype}")
        check_device("input", input, ref)
        if input.shape[2] != self.input_channels:
            raise ValueError(
                f"input must have {self.input_channels} channels (input_channels) in dimension 2 "
                f"({layout}, C, H, W), got {input.shape[2]}"
            )
        x = input.transpose(0, 1) if self.batch_first else input  # (B, T, C, H, W) -> (T, B, C, H, W)
        if x.shape[0] == 0:
            raise ValueError("input must have at least one time step, got T = 0")
        frame = tuple(x.shape[-2:])
        if self.peephole_frame is not None and frame != self.peephole_frame:
            raise ValueError(
                f"input frames must be {self.peephole_frame[0]}x{self.peephole_frame[1]} (peephole_frame: the "
                f"peephole maps have that size), got {frame[0]}x{frame[1]}"
            )
        return x

    def _check_hx(self, hx, B: int, frame: tuple[int, int], ref: Tensor) -> list[ConvState]:
        """Return one (h_0, c_0) pair per layer, each (B, Hc_k, H, W); zeros where hx is None."""
        if hx is None:
            return [(ref.new_zeros(B, hc, *frame), ref.new_zeros(B, hc, *frame)) for hc in self.hidden_channels]
        if not (isinstance(hx, (tuple, list)) and len(hx) == self.num_layers):
            raise TypeError(f"hx must be a list of one (h_0, c_0) pair per layer ({self.num_layers}), got "
                            f"{type(hx).__name__}{f' of length {len(hx)}' if isinstance(hx, (tuple, list)) else ''}")
        out = []
        for layer, pair in enumerate(hx):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, Tensor) for s in pair)):
                raise TypeError(f"hx[{layer}] must be a pair (h_0, c_0) of Tensors")
            want = (B, self.hidden_channels[layer], *frame)
            for name, s in zip(("h_0", "c_0"), pair, strict=True):
                if tuple(s.shape) != want:
                    raise ValueError(
                        f"hx[{layer}] {name} must have shape (B, Hc, H, W) = {want} (the input's batch and "
                        f"{frame[0]}x{frame[1]} frames), got {tuple(s.shape)}"
                    )
                if s.dtype != ref.dtype:
                    raise TypeError(f"hx[{layer}] {name} dtype {s.dtype} does not match the input's dtype {ref.dtype}")
                check_device(f"hx[{layer}] {name}", s, ref)
            out.append((pair[0], pair[1]))
        return out

    # --- forward -------------------------------------------------------------------------------
    def forward(
        self, input: Tensor, hx: Sequence[ConvState] | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, list[ConvState]]:
        """Run all layers; see the class docstring for shapes."""
        x = self._check_input(input)
        T, B = x.shape[0], x.shape[1]
        frame = (x.shape[-2], x.shape[-1])
        init = self._check_hx(hx, B, frame, x)
        mask = None
        if lengths is not None:
            lengths = RecurrentBase._check_lengths(lengths, T, B, True, x.device)
            if bool((lengths < T).any()):
                mask = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        finals: list[ConvState] = []
        layer_in = x
        for layer in range(self.num_layers):
            w = _weights(self._layer_params(layer))
            if self.impl == "reference":
                step = partial(convlstm_step, w=w, opt=self._options)  # (x_t, state) -> (h_t, state)
                y, state = scan(step, layer_in, init[layer], mask)
            elif self._runs_bptt() and not _cpp.transformed():  # torch.func: torch operations below
                wino = self.impl == "winograd" and _winograd.usable(layer_in, w.w_hh)
                y, state = convlstm_layer_bptt(layer_in, init[layer], w.w_ih, w.w_hh, w.b, mask, zero_state=hx is None,
                                               winograd=wino)  # fmt: skip
            else:
                hoist = self.impl == "fused" or (self.impl == "auto" and self.layer_norm)
                y, state = convlstm_layer(layer_in, init[layer], w, self._options, mask, hoist_input=hoist,
                                          zero_state=hx is None)  # fmt: skip
            finals.append((state[0], state[1]))
            layer_in = y  # (T, B, Hc, H, W)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
        output = layer_in.transpose(0, 1) if self.batch_first else layer_in
        return output, finals

    def extra_repr(self) -> str:
        hidden = self.hidden_channels[0] if len(set(self.hidden_channels)) == 1 else self.hidden_channels
        s = f"{self.input_channels}, {hidden}"
        for key, value, default in (
            ("kernel_size", self.kernel_size, (3, 3)),
            ("num_layers", self.num_layers, 1),
            ("bias", self.bias, True),
            ("batch_first", self.batch_first, False),
            ("dropout", self.dropout, 0.0),
            ("peephole", self.peephole, False),
            ("peephole_frame", self.peephole_frame, None),
            ("layer_norm", self.layer_norm, False),
            ("forget_bias", self.forget_bias, None),
            ("layer_norm_eps", self.layer_norm_eps, 1e-5),
            ("impl", self.impl, "auto"),
        ):
            if value != default:
                s += f", {key}={value}"
        return s


class ConvLSTMCell(NotScriptable, nn.Module):
    r"""One ConvLSTM step with every variant of ``ConvLSTM``: ``(x_t, (h, c)) -> (h_t, (h_t, c_t))``.

    It runs the readable reference step (``_convlstm_reference.convlstm_step``: one convolution
    over [x_t, h_{t-1}]). Parameter names are ``ConvLSTM``'s without the ``_l{k}`` suffix.
    Shapes: x_t (B, C, H, W); h and c (B, Hc, H, W) (zeros when state is None).
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int] = 3,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        peephole: bool = False,
        peephole_frame: Sequence[int] | None = None,
        layer_norm: bool = False,
        forget_bias: float | None = None,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.input_channels = _check_positive_int("input_channels", input_channels)
        self.hidden_channels = _check_positive_int("hidden_channels", hidden_channels)
        self.kernel_size = _check_kernel_size(kernel_size)
        self.peephole_frame = _check_frame(peephole_frame)
        _check_options(bias, peephole, self.peephole_frame, forget_bias, layer_norm_eps)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self._options = ConvLSTMOptions(bool(peephole), bool(layer_norm), float(layer_norm_eps))
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        factory = {"device": device, "dtype": dtype}
        for name, shape in _param_shapes(input_channels, hidden_channels, self.kernel_size, bool(bias),
                                         self._options.peephole, self.peephole_frame, self._options.layer_norm):
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        if not bias:
            self.register_parameter("bias", None)  # as nn.Conv2d: ``cell.bias`` is the bias or None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_params(dict(self.named_parameters()), self.input_channels, self.hidden_channels, self.forget_bias)

    def initial_state(self, batch_size: int, frame: Sequence[int]) -> ConvState:
        """Zero state (h, c), each (B, Hc, H, W) for frames of size frame = (H, W)."""
        w = self.weight_hh
        return (w.new_zeros(batch_size, self.hidden_channels, *frame),
                w.new_zeros(batch_size, self.hidden_channels, *frame))

    def forward(self, input: Tensor, state: ConvState | None = None) -> tuple[Tensor, ConvState]:
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
        if input.dim() != 4:
            raise ValueError(f"input must be 4-D (B, C, H, W), got shape {tuple(input.shape)}")
        if input.shape[1] != self.input_channels:
            raise ValueError(
                f"input must have {self.input_channels} channels (input_channels) in dimension 1 (B, C, H, W), "
                f"got {input.shape[1]}"
            )
        if not input.is_floating_point() or input.dtype != self.weight_ih.dtype:
            raise TypeError(f"input dtype must be the parameters' {self.weight_ih.dtype}, got {input.dtype}")
        B, frame = input.shape[0], tuple(input.shape[-2:])
        if self.peephole_frame is not None and frame != self.peephole_frame:
            raise ValueError(
                f"input frames must be {self.peephole_frame[0]}x{self.peephole_frame[1]} (peephole_frame: the "
                f"peephole maps have that size), got {frame[0]}x{frame[1]}"
            )
        if state is None:
            state = self.initial_state(B, frame)
        else:
            if not (isinstance(state, (tuple, list)) and len(state) == 2):
                raise TypeError("state must be a pair (h, c)")
            want = (B, self.hidden_channels, *frame)
            for name, s in zip(("h", "c"), state, strict=True):
                if tuple(s.shape) != want:
                    raise ValueError(f"state {name} must have shape (B, Hc, H, W) = {want}, got {tuple(s.shape)}")
        names = [n for n, _ in _param_shapes(1, 1, (1, 1), self.bias is not None, self._options.peephole, None,
                                             self._options.layer_norm)]  # fmt: skip
        weights = _weights({n: getattr(self, n) for n in names})  # attributes: parametrized weights too
        return convlstm_step(input, tuple(state), weights, self._options)

    def extra_repr(self) -> str:
        s = f"{self.input_channels}, {self.hidden_channels}"
        o = self._options
        for key, value, default in (
            ("kernel_size", self.kernel_size, (3, 3)),
            ("bias", self.bias is not None, True),
            ("peephole", o.peephole, False),
            ("peephole_frame", self.peephole_frame, None),
            ("layer_norm", o.layer_norm, False),
            ("forget_bias", self.forget_bias, None),
            ("layer_norm_eps", o.eps, 1e-5),
        ):
            if value != default:
                s += f", {key}={value}"
        return s

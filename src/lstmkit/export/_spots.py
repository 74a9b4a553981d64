"""Rounding bounds for task models' outputs (classifiers' logits, forecasts, CTC log-probabilities), carried by
autograd ("spots"), for the export's verification.

The worst-case analysis of ``lstmkit._rounding`` passes each layer's error on through norms (||W||_inf, the cell's
largest derivatives at every step), which is sound but, for a trained biLSTM or LSTM-FCN, comes out above the
logits themselves, so that a wrong graph could not be told from rounding. Here every value the float32 model
computes gets its own local rounding bound eps, at the values this case reaches (the model run again in float64):

- an LSTM gate pre-activation, a sum of K = I + P + 2 terms: gamma(K) (|W_ih| |x| + |W_hh| |h| + |b_ih| + |b_hh|);
- sigmoid and tanh: ``F_POINTWISE`` u, absolute: onnxruntime's vectorised sigmoid is 0.5 plus a rational function
  of the clamped input, so near 0 its error is about u whatever the value (a gate of 1e-8 comes out as 0.0, which
  a bound relative to the value missed on a trained charlm); the products of the cell: F u times the value;
  c = f c + i g: F u (|f c| + |i g|);
- a Conv1d output, n = C k + 1 terms: gamma(n + 2) (|W| * |v| + |b|) (2 more for onnxruntime folding BatchNorm in);
- a BatchNorm output (z - mean) s + beta: gamma(5) (|s| (|z| + |mean|) + |beta|); the conv branch's average over
  L real steps: gamma(L + 1) times the mean |value|; the head, n inputs: gamma(n + 1) (|W| |v| + |b|).

A zero ("spot") is added to each such value, and the derivative g of every logit with respect to it (first order:
autograd through the float64 twin) says how far that rounding moves the logit. Roundings of distinct values are
independent, mean-zero and bounded (the model ``_rounding`` takes, Higham and Mary 2019), so by Hoeffding's
inequality a logit's error is within LAMBDA sqrt(sum g^2 eps^2), except with probability 2 exp(-LAMBDA^2 / 2).
Covered: plain LSTM cores (any layers, bidirectional, masked lengths), the LSTM-FCN's conv branch, the heads, the
forecaster's AR skip and additions, the recognizer's log-softmax (``forecast_error``, ``recognizer_error``). A core
with peepholes, coupled gates, LayerNorm or a projection, or a GRU/RNN core, is not spotted: the caller bounds it by
the worst-case analysis, as before; zoneout's eval-mode update is spotted (each state's mix, within 4 u of its
terms). Pooling's own roundings (mean, attention) are bounded by the caller too.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit import _rounding
from lstmkit.nn import LSTM

_U = _rounding.unit_roundoff(torch.float32)
# A recognizer's bound takes T x C backward passes of T steps each, 32 at a time: beyond this T^2 C, the worst case
# instead (a 2 x 32 biLSTM, 30 symbols, batch 3, one thread: 9 steps, 2,430, 0.4 s; 50 steps, 75,000, 18 s; one
# pass at a time took 2.2 s and about 160 s)
MAX_WORK = 160_000
_FU = _rounding.F_POINTWISE * _U


def _gamma(n: int) -> float:
    return _rounding.gamma(n, _U)


class Spots:
    """The zeros added where values are rounded, with each one's local bound."""

    def __init__(self) -> None:
        self.items: list[tuple[Tensor, Tensor, int]] = []  # (spot, its bound with the batch first, batch dim)

    def add(self, value: Tensor, bound: Tensor, batch_dim: int = 0) -> Tensor:
        spot = torch.zeros_like(value, requires_grad=True)
        self.items.append((spot, bound.detach().movedim(batch_dim, 0), batch_dim))
        return value + spot

    def variance(self, outputs: Tensor, batch_dim: int = 0) -> Tensor:
        """Per output: the sum over the spots of (d output / d spot)^2 bound^2, shaped as ``outputs``. Each case's
        outputs depend on its own values only, so one backward pass per output position (every dimension but the
        batch) gives every case's derivatives."""
        flat = outputs.movedim(batch_dim, 0).flatten(1)  # (B, M)
        var = torch.zeros_like(flat)
        for k in range(flat.shape[1]):
            grads = torch.autograd.grad(flat[:, k].sum(), [s for s, _, _ in self.items], retain_graph=True,
                                        allow_unused=True)  # fmt: skip
            for g, (_, bound, dim) in zip(grads, self.items, strict=True):
                if g is not None:
                    var[:, k] += (g.movedim(dim, 0) * bound).pow(2).flatten(1).sum(1)
        shape = outputs.movedim(batch_dim, 0).shape
        return var.detach().reshape(shape).movedim(0, batch_dim)

    def variance_batched(self, outputs: Tensor, chunk: int = 32) -> Tensor:
        """``variance`` of a (B, N) ``outputs`` (the batch first), ``chunk`` output positions per backward pass
        (``torch.autograd.grad`` with ``is_grads_batched``: the passes run as one vectorised pass)."""
        spots = [s for s, _, _ in self.items]
        B, N = outputs.shape
        var = torch.zeros(B, N, dtype=outputs.dtype)
        for k0 in range(0, N, chunk):
            n = min(chunk, N - k0)
            seeds = torch.zeros(n, B, N, dtype=outputs.dtype)
            seeds[torch.arange(n), :, k0 + torch.arange(n)] = 1.0  # position k0 + i of every case
            grads = torch.autograd.grad(outputs, spots, seeds, retain_graph=True, allow_unused=True,
                                        is_grads_batched=True)  # fmt: skip
            for g, (_, bound, dim) in zip(grads, self.items, strict=True):
                if g is not None:  # (n, *spot shape) -> (n, B, rest)
                    var[:, k0 : k0 + n] += (g.movedim(dim + 1, 1) * bound).pow(2).flatten(2).sum(2).T
        return var.detach()


def _linear_hook(spots: Spots, parts: dict[str, Tensor] | None = None, name: str = ""):
    """A forward hook spotting a Linear's outputs: n inputs and a bias, gamma(n + 1) (|W| |v| + |b|); the batch
    is dimension 1 of time-major (T, B, n) inputs. ``parts[name]`` keeps the output for the caller."""

    def hook(module: nn.Linear, args, output: Tensor) -> Tensor:
        bias = module.bias.abs() if module.bias is not None else 0.0
        mags = args[0].detach().abs() @ module.weight.abs().T + bias
        if parts is not None:
            parts[name] = output.detach()
        return spots.add(output, _gamma(module.in_features + 1) * mags, batch_dim=1 if output.dim() == 3 else 0)

    return hook


def plain_lstm(core: nn.Module) -> bool:
    """Whether ``core`` is an LSTM whose cell the spots cover (no peepholes, coupled gates, LayerNorm, projection;
    zoneout's eval-mode update is covered)."""
    if not isinstance(core, LSTM):
        return False
    opt = core._options
    return not (opt.peephole or opt.coupled or opt.layer_norm or core.proj_size)


def lstm_cell(spots: Spots, a: Tensor, mags: Tensor, c: Tensor, K: int) -> tuple[Tensor, Tensor]:
    """A plain LSTM cell, spotted: from the gate sums a (B, 4H, torch's order i, f, g, o) of K terms whose |terms| sum
    to mags, and c_{t-1} (B, H): (h_t, c_t)."""
    hidden = c.shape[-1]
    a = spots.add(a, _gamma(K) * mags)
    a_i, a_f, a_g, a_o = a.split(hidden, -1)
    # sigmoid and tanh: F u absolute, not relative (module docstring)
    i, f, o = (spots.add(torch.sigmoid(z), torch.full_like(z, _FU)) for z in (a_i, a_f, a_o))
    g = spots.add(torch.tanh(a_g), torch.full_like(a_g, _FU))
    c_new = spots.add(f * c + i * g, _FU * ((f * c).abs() + (i * g).abs()))
    t = torch.tanh(c_new)
    t = spots.add(t, torch.full_like(t, _FU))
    return spots.add(o * t, _FU * (o * t).abs()), c_new


def zone_mix(spots: Spots, new: Tensor, prev: Tensor, z: Tensor | float) -> Tensor:
    """Zoneout's (1 - z) new + z prev, spotted: the constant 1 - z, two products and a sum, each within u of its
    size, so within 4 u (|new| + |prev|)."""
    return spots.add((1.0 - z) * new + z * prev, 4 * _U * (new.abs() + prev.abs()))


@contextlib.contextmanager
def spotted_cells(spots: Spots) -> Iterator[None]:
    """The reference LSTM loop (the layer's ``impl="reference"``: ``lstm_input_side`` for all steps, then
    ``lstm_recurrent_step`` at each; and ``lstm_step``, one whole step) with a spot on every rounded value; plain
    cells only (``plain_lstm``). The input side hands each step its |terms| beside its values (a (T, B, 2G) tensor the
    time loop slices as it slices the gates), so the gate sum of I + P + 2 terms is spotted as one sum, as the
    kernels and onnxruntime compute it. ``test_spotted_cells_spot_the_layer_loop`` fails if the layer stops
    calling these."""
    import lstmkit.nn.lstm as layer_module

    def cell(a: Tensor, mags: Tensor, c: Tensor, K: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h_new, c_new = lstm_cell(spots, a, mags, c, K)
        return h_new, (h_new, c_new)

    def input_side(x: Tensor, w, opt) -> Tensor:
        a = F.linear(x, w.w_ih)  # (..., G)
        mags = F.linear(x.detach().abs(), w.w_ih.detach().abs())
        if w.b_ih is not None:
            a = a + w.b_ih + w.b_hh
            mags = mags + w.b_ih.detach().abs() + w.b_hh.detach().abs()
        return torch.cat([a, mags], dim=-1)  # (..., 2G): the values, then their |terms|

    def recurrent_step(a_x: Tensor, state: tuple[Tensor, Tensor], w, opt, drop=None):
        h, c = state  # (B, H) each
        G = a_x.shape[-1] // 2
        a = a_x[:, :G] + F.linear(h, w.w_hh)  # (B, G)
        mags = a_x[:, G:].detach() + F.linear(h.detach().abs(), w.w_hh.detach().abs())
        return cell(a, mags, c, w.w_ih.shape[1] + w.w_hh.shape[1] + 2)

    def step(x: Tensor, state: tuple[Tensor, Tensor], w, opt, drop=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        return recurrent_step(input_side(x, w, opt), state, w, opt, drop)

    def plain(x: Tensor, state: tuple[Tensor, Tensor], w) -> tuple[Tensor, Tensor]:
        return step(x, state, w, None)[1]

    def zone(new: tuple[Tensor, ...], prev: tuple[Tensor, ...], weights) -> tuple[Tensor, ...]:
        return tuple(n if z is None else zone_mix(spots, n, q, z) for n, q, z in zip(new, prev, weights, strict=True))

    names = {"lstm_input_side": input_side, "lstm_recurrent_step": recurrent_step, "lstm_step": step,
             "plain_cell": plain, "zone_step": zone}  # fmt: skip
    originals = {name: getattr(layer_module, name) for name in names}
    for name, fn in names.items():
        setattr(layer_module, name, fn)
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(layer_module, name, fn)


def logit_error(model: nn.Module, inputs: dict[str, Tensor]) -> tuple[Tensor, bool]:
    """(B, K) bounds on the logits' rounding error from every spotted value (module docstring) at ``inputs``
    (``features`` (T, B, C), ``lengths`` (B,)), and whether the recurrent core was among them (False: the caller
    adds the core's worst-case bound)."""
    twin = copy.deepcopy(model).double().eval()
    spots = Spots()
    core = plain_lstm(twin.rnn)
    x, lengths = inputs["features"].detach().double(), inputs["lengths"].detach()
    real = (torch.arange(x.shape[0])[None, :] < lengths[:, None]).double()[:, None, :]  # (B, 1, T)
    last_relu: list[Tensor] = []

    def conv_hook(module: nn.Conv1d, args, output: Tensor) -> Tensor:
        n = module.in_channels * module.kernel_size[0] + 1
        mags = F.conv1d(args[0].detach().abs(), module.weight.abs()) + module.bias.abs()[None, :, None]
        return spots.add(output, _gamma(n + 2) * mags)

    def norm_hook(module: nn.BatchNorm1d, args, output: Tensor) -> Tensor:
        scale = (module.weight / (module.running_var + module.eps).sqrt()).abs()[None, :, None]
        mean, beta = module.running_mean.abs()[None, :, None], module.bias.abs()[None, :, None]
        mags = scale * (args[0].detach().abs() + mean) + beta
        return spots.add(output, _gamma(5) * mags)

    def head_pre_hook(module: nn.Linear, args) -> tuple[Tensor]:
        v = args[0]  # (B, n): the LSTM readout, then (LSTM-FCN) the conv branch's average over the real steps
        if not last_relu:
            return (v,)
        width = last_relu[-1].shape[1]
        average = last_relu[-1].detach().abs() * real  # (B, F, T): what the average sums
        bound = _gamma(x.shape[0] + 1) * average.sum(-1) / lengths.double()[:, None]  # (B, F)
        return (torch.cat([v[:, :-width], spots.add(v[:, -width:], bound)], dim=1),)

    handles = [twin.head.register_forward_pre_hook(head_pre_hook),
               twin.head.register_forward_hook(_linear_hook(spots))]  # fmt: skip
    for m in getattr(twin, "fcn", []):
        if isinstance(m, nn.Conv1d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm1d):
            handles.append(m.register_forward_hook(norm_hook))
        elif isinstance(m, nn.ReLU):
            handles.append(m.register_forward_hook(lambda module, args, output: last_relu.append(output)))
    if core:
        twin.rnn.impl = "reference"  # the layer's own time loop, which calls the spotted step (twin is a copy)
    try:
        with torch.enable_grad(), (spotted_cells(spots) if core else contextlib.nullcontext()):
            var = spots.variance(twin(x, lengths))  # (B, K)
    finally:
        for h in handles:
            h.remove()
    return _rounding.LAMBDA * var.sqrt(), core


def forecast_error(model: nn.Module, inputs: dict[str, Tensor]) -> Tensor | None:
    """(B, H) bounds on a forecaster's (``ForecastNet``'s) forecasts' rounding error at ``inputs`` (``features``
    (T, B, F)), or None when its core is not a plain LSTM (the caller keeps the worst case). Spotted as in the
    module docstring, plus: with ``model.relative`` the LSTM's target column (the target minus its last value,
    one subtraction: u times the value), the head's and the AR skip's sums, and the forecast itself (the last value
    plus the head's change plus the AR's or the base's: at most 3 additions, 3 u times the sum of their sizes)."""
    if not plain_lstm(model.rnn):
        return None
    twin = copy.deepcopy(model).double().eval()
    spots = Spots()
    x = inputs["features"].detach().double()  # (T, B, F)
    parts: dict[str, Tensor] = {}

    def input_hook(module: nn.Module, args):
        if not twin.core.config.relative:
            return None
        v = args[0]  # (T, B, F): column 0 is x_t - x_T, one rounding
        bound = torch.zeros_like(v)
        bound[..., 0] = _U * v[..., 0].detach().abs()
        return (spots.add(v, bound, batch_dim=1), *args[1:])

    def output_hook(module: nn.Module, args, output: Tensor) -> Tensor:
        sizes = x[-1, :, :1].abs() + parts["head"][-1].abs()  # (B, H)
        if "ar" in parts:
            sizes = sizes + parts["ar"].abs()
        if twin.base_columns:
            sizes = sizes + x[-1, :, -twin.base_columns :].abs()
        return spots.add(output, 3 * _U * sizes)

    handles = [twin.core.head.register_forward_hook(_linear_hook(spots, parts, "head")),
               twin.core.rnn.register_forward_pre_hook(input_hook),
               twin.register_forward_hook(output_hook)]  # fmt: skip
    if twin.ar is not None:
        handles.append(twin.ar.register_forward_hook(_linear_hook(spots, parts, "ar")))
    twin.core.rnn.impl = "reference"  # the layer's own time loop, which calls the spotted step (twin is a copy)
    try:
        with torch.enable_grad(), spotted_cells(spots):
            var = spots.variance(twin(x))  # (B, H)
    finally:
        for h in handles:
            h.remove()
    return _rounding.LAMBDA * var.sqrt()


def recognizer_error(model: nn.Module, inputs: dict[str, Tensor]) -> Tensor | None:
    """(T, B, C) bounds on a CTC recognizer's log-probabilities' rounding error at ``inputs`` (``features``
    (T, B, I), ``lengths`` (B,)), or None when its core is not a plain LSTM. Spotted: the cells, the head's sums,
    and each step's log-softmax (``_rounding.log_softmax_error`` at that step's largest |logit|). One backward pass
    per output position, T x C of them, run 32 at a time (``Spots.variance_batched``): fine at the verification's
    few steps; None beyond ``MAX_WORK`` as well (the caller keeps the worst case there)."""
    x, lengths = inputs["features"].detach().double(), inputs["lengths"].detach()
    if not plain_lstm(model.rnn) or x.shape[0] ** 2 * model.head.out_features > MAX_WORK:
        return None
    twin = copy.deepcopy(model).double().eval()
    spots = Spots()
    parts: dict[str, Tensor] = {}
    handles = [twin.head.register_forward_hook(_linear_hook(spots, parts, "head"))]
    twin.rnn.impl = "reference"  # the layer's own time loop, which calls the spotted step (twin is a copy)
    try:
        with torch.enable_grad(), spotted_cells(spots):
            log_probs = twin(x, lengths)  # (T, B, C)
            z_max = parts["head"].abs().amax(-1, keepdim=True)  # (T, B, 1): each step's largest |logit|
            bound = _rounding.log_softmax_error(log_probs.shape[-1], z_max, _U).expand_as(log_probs)
            spotted = spots.add(log_probs, bound, batch_dim=1).movedim(1, 0)  # (B, T, C)
            var = spots.variance_batched(spotted.flatten(1)).reshape(spotted.shape).movedim(0, 1)  # (T, B, C)
    finally:
        for h in handles:
            h.remove()
    return _rounding.LAMBDA * var.sqrt()

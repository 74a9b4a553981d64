"""Uniform-affine weight quantisation, stored as packed integers and dequantised on the fly.

For a tensor (``per_channel=False``) or each output row (``per_channel=True``: one row of a gate
matrix is one gate of one unit, one row of an ``Embedding`` one token) with b bits:

.. math::
    \\Delta = \\frac{\\max w - \\min w}{2^b - 1}, \\quad z = \\mathrm{round}(-\\min w / \\Delta), \\quad
    \\hat w = \\mathrm{clip}(\\mathrm{round}(w / \\Delta) + z, 0, 2^b - 1), \\quad w' = (\\hat w - z)\\,\\Delta

so |w - w'| <= Delta / 2 element-wise. A constant row (Delta would be 0) gets Delta = |w| (or 1
for zeros) and stores it exactly. The integers are packed into ``uint8``: one a byte at b = 8,
two a byte at b = 4 (low nibble first), and as a little-endian bit stream for other widths.

Which tensors: every parameter with two or more dimensions (``weight_ih``, ``weight_hh``,
``weight_hr``, peepholes ``weight_ch`` of every ``lstmkit.nn`` layer, ``Linear`` and
``Embedding`` weights). Biases and LayerNorm gains (vectors, under 2% of an LSTM's parameters)
stay float32.

Inference runs from the integers: :func:`quantize_model` replaces each weight by a
``torch.nn.utils.parametrize`` parametrization that holds only the packed integers, scales and
zero-points, so no float copy of the weights is kept between calls. 8-bit per-channel LSTM weights
offer ``int8_parts()``: in inference ``lstmkit.LSTM`` and ``Stream`` then multiply in int8
(``lstmkit.nn.int8``). Everything else rebuilds the float matrix every time the weight is read
(once per forward call); ``parametrize.cached()`` around a loop of calls dequantises once for all.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from lstmkit.formats.integrity import copy_matching, save_tensors_file

MIN_BITS, MAX_BITS = 2, 8
FORMAT = "lstmkit.quantized"  # the safetensors metadata marking a quantised model file
_Q, _SCALE, _ZERO = ".__q", ".__scale", ".__zero"  # suffixes of a quantised tensor's parts in the file


def check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


# -- packing ------------------------------------------------------------------------------------------
def pack(q: Tensor, bits: int) -> Tensor:
    """Pack integers in [0, 2^bits) (any shape) into a flat ``uint8`` tensor of ceil(n * bits / 8) bytes."""
    q = q.reshape(-1).to(torch.uint8)
    if bits == 8:
        return q.clone()
    if bits == 4:
        if q.numel() % 2:
            q = torch.cat([q, q.new_zeros(1)])
        pairs = q.view(-1, 2)  # (n/2, 2): low nibble first
        return pairs[:, 0] | (pairs[:, 1] << 4)
    shifts = torch.arange(bits, dtype=torch.uint8)
    stream = ((q.unsqueeze(1) >> shifts) & 1).reshape(-1)  # (n * bits,) little-endian bits
    pad = (-stream.numel()) % 8
    stream = torch.cat([stream, stream.new_zeros(pad)]).view(-1, 8)  # (bytes, 8)
    return (stream << torch.arange(8, dtype=torch.uint8)).sum(1, dtype=torch.uint8)


def unpack(packed: Tensor, bits: int, n: int) -> Tensor:
    """The first ``n`` integers of a :func:`pack`-ed tensor, as ``uint8`` (n,)."""
    if bits == 8:
        return packed[:n]
    if bits == 4:
        return torch.stack([packed & 0x0F, packed >> 4], 1).reshape(-1)[:n]
    stream = ((packed.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1)[: n * bits]
    weights = (1 << torch.arange(bits, dtype=torch.int32)).to(torch.uint8)
    return (stream.view(n, bits) * weights).sum(1, dtype=torch.uint8)


def packed_bytes(n: int, bits: int) -> int:
    return math.ceil(n * bits / 8)


# -- one tensor ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class QuantizedTensor:
    """A weight as b-bit integers: ``data`` packed uint8, ``scale`` (Delta) and ``zero`` (z), each
    (R,) per row or () per tensor."""

    data: Tensor  # (ceil(n * bits / 8),) uint8
    scale: Tensor  # float32, (R,) or ()
    zero: Tensor  # uint8 (int32 when a z falls outside [0, 2^b - 1]), (R,) or ()
    bits: int
    shape: tuple[int, ...]

    @property
    def per_channel(self) -> bool:
        return self.scale.ndim == 1

    def integers(self) -> Tensor:
        """The unpacked integers w_hat, uint8 of ``shape``."""
        return unpack(self.data, self.bits, math.prod(self.shape)).view(self.shape)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """w' = (w_hat - z) * Delta, of ``shape``."""
        q = self.integers().to(dtype).view(self.shape[0], -1) if self.per_channel else self.integers().to(dtype)
        scale, zero = self.scale.to(dtype), self.zero.to(dtype)
        if self.per_channel:
            return ((q - zero[:, None]) * scale[:, None]).view(self.shape)
        return (q - zero) * scale

    @property
    def nbytes(self) -> int:
        """Bytes of the integers, scales and zero-points."""
        return sum(t.numel() * t.element_size() for t in (self.data, self.scale, self.zero))


def quantize_tensor(w: Tensor, bits: int = 8, *, per_channel: bool = True) -> QuantizedTensor:
    """Uniform-affine quantisation of ``w`` (see the module docstring); per row of ``w`` (the output
    channels of a weight matrix) with ``per_channel``, else one Delta and z for the whole tensor."""
    check_bits(bits)
    if w.ndim < 1 or w.numel() == 0:
        raise ValueError(f"cannot quantise an empty or 0-d tensor of shape {tuple(w.shape)}")
    if per_channel and w.ndim < 2:
        raise ValueError(f"per-channel quantisation needs a matrix (rows are channels), got shape {tuple(w.shape)}")
    levels = 2**bits - 1
    w32 = w.detach().to(torch.float32)
    rows = w32.reshape(w32.shape[0], -1) if per_channel else w32.reshape(1, -1)  # (R, n/R)
    lo, hi = rows.min(1).values, rows.max(1).values  # (R,)
    scale = (hi - lo) / levels
    zero = torch.round(-lo / torch.where(scale > 0, scale, torch.ones_like(scale)))
    # A constant row: Delta = |w| and z = 0 (w > 0) or 1 (w < 0) store it exactly; zeros take Delta = 1, z = 0.
    const = scale == 0
    scale = torch.where(const, torch.where(lo != 0, lo.abs(), torch.ones_like(lo)), scale)
    zero = torch.where(const, (lo < 0).to(zero.dtype), zero)
    q = torch.clamp(torch.round(rows / scale[:, None]) + zero[:, None], 0, levels)  # (R, n/R)
    if not per_channel:
        scale, zero = scale[0], zero[0]
    # z is in [0, 2^b - 1] whenever min w <= 0 <= max w (nearly always): one byte then, else int32.
    zero = zero.to(torch.uint8 if bool(((zero >= 0) & (zero <= levels)).all()) else torch.int32)
    return QuantizedTensor(pack(q, bits), scale.contiguous(), zero.contiguous(), bits, tuple(w.shape))


# -- a model ----------------------------------------------------------------------------------------------
class Dequantize(nn.Module):
    """A parametrization that holds a weight's integers and rebuilds the float weight when read.

    It ignores the (emptied) original parameter: the weight exists only as integers between calls.
    """

    def __init__(self, qt: QuantizedTensor, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.bits, self.shape, self.dtype = qt.bits, qt.shape, dtype
        self.register_buffer("data", qt.data)
        self.register_buffer("scale", qt.scale)
        self.register_buffer("zero", qt.zero)

    def quantized(self) -> QuantizedTensor:
        return QuantizedTensor(self.data, self.scale, self.zero, self.bits, self.shape)

    def forward(self, original: Tensor) -> Tensor:
        return self.quantized().dequantize(self.dtype)

    def int8_parts(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """(q (N, K) uint8, scale (N,), zero (N,)) for int8 compute (lstmkit.nn.int8): 8 bits, per
        channel, a matrix, float32, zero points in [0, 255]; else None (then the layer dequantises)."""
        if (self.bits != 8 or self.scale.ndim != 1 or len(self.shape) != 2 or self.zero.dtype != torch.uint8
                or self.dtype != torch.float32):
            return None
        return self.data.view(self.shape), self.scale, self.zero

    def extra_repr(self) -> str:
        kind = "per-channel" if self.scale.ndim else "per-tensor"
        return f"bits={self.bits}, shape={self.shape}, {kind}"


def quantizable(model: nn.Module) -> list[str]:
    """Names (as in ``named_parameters``, shared weights once) of the parameters to quantise: those
    with two or more dimensions."""
    return [name for name, p in model.named_parameters() if p.ndim >= 2]


def _owners(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """Every (module, attribute) holding each parameter, by id: tied weights have several."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False, remove_duplicate=False):
            owners.setdefault(id(p), []).append((module, attr))
    return owners


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, Dequantize) for m in model.modules())


def _attach(model: nn.Module, tensors: dict[str, QuantizedTensor]) -> None:
    """Replace each named parameter (and its tied copies) by a :class:`Dequantize` of ``tensors``."""
    params = dict(model.named_parameters())
    owners = _owners(model)
    for name, qt in tensors.items():
        p = params[name]
        if tuple(p.shape) != qt.shape:
            raise ValueError(f"{name}: quantised shape {qt.shape} does not match the model's {tuple(p.shape)}")
        deq = Dequantize(qt, p.dtype)
        for module, attr in owners[id(p)]:
            parametrize.register_parametrization(module, attr, deq, unsafe=True)
            # The float original is never read again: keep an empty placeholder, not a copy.
            module.parametrizations[attr].original = nn.Parameter(p.new_empty(0), requires_grad=False)


def quantize_model(model: nn.Module, bits: int = 8, *, per_channel: bool = True) -> dict[str, QuantizedTensor]:
    """Quantise every weight matrix of ``model`` in place (see the module docstring); returns the
    quantised tensors by parameter name. The model then runs from the integers."""
    check_bits(bits)
    if is_quantized(model):
        raise ValueError("the model is quantised already")
    params = dict(model.named_parameters())
    tensors = {name: quantize_tensor(params[name], bits, per_channel=per_channel) for name in quantizable(model)}
    _attach(model, tensors)
    return tensors


def quantized_tensors(model: nn.Module) -> dict[str, QuantizedTensor]:
    """The quantised weights of a model returned by :func:`quantize_model` or :func:`load_quantized`,
    named as in the float model."""
    out: dict[str, QuantizedTensor] = {}
    seen: set[int] = set()
    for mname, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr, plist in module.parametrizations.items():
            deq = plist[0]
            if isinstance(deq, Dequantize) and id(deq) not in seen:
                seen.add(id(deq))
                out[f"{mname}.{attr}" if mname else attr] = deq.quantized()
    return out


def _float_tensors(model: nn.Module) -> dict[str, Tensor]:
    """The parameters and buffers left in float (biases, gains), named as in the float model."""
    return {
        name: t.detach()
        for name, t in model.state_dict().items()
        if ".parametrizations." not in f".{name}" and not name.startswith("parametrizations.")
    }


def save_quantized(model: nn.Module, path: str | Path) -> int:
    """Write a quantised model: the packed integers as ``uint8``, Delta and z, and the float tensors.
    Tied weights are stored once. Returns the file's size in bytes."""
    tensors = quantized_tensors(model)
    if not tensors:
        raise ValueError("the model is not quantised (quantize_model first)")
    out: dict[str, Tensor] = {}
    layout = {}
    for name, qt in tensors.items():
        out[name + _Q], out[name + _SCALE], out[name + _ZERO] = qt.data, qt.scale, qt.zero
        layout[name] = {"bits": qt.bits, "shape": list(qt.shape)}
    out.update({n: t.contiguous() for n, t in _float_tensors(model).items()})
    save_tensors_file(out, path, metadata={"format": FORMAT, "tensors": json.dumps(layout)})  # sealed, atomic
    return Path(path).stat().st_size


def is_quantized_file(path: str | Path) -> bool:
    with safetensors.safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("format") == FORMAT


def load_quantized(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a file written by :func:`save_quantized` into ``model`` (built float from the same config):
    quantised weights become :class:`Dequantize` parametrizations, the rest is copied. Every tensor
    of the model must be in the file and every tensor of the file in the model."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a quantised lstmkit model (metadata format {meta.get('format')!r})")
        layout = json.loads(meta["tensors"])
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    tensors = {}
    for name, spec in layout.items():
        parts = [stored.pop(name + s, None) for s in (_Q, _SCALE, _ZERO)]
        if any(p is None for p in parts):
            raise ValueError(f"{path}: the quantised tensor {name} is incomplete")
        data, scale, zero = parts
        bits, shape = check_bits(spec["bits"]), tuple(spec["shape"])
        if data.dtype != torch.uint8 or data.numel() != packed_bytes(math.prod(shape), bits):
            raise ValueError(f"{path}: {name} must be {packed_bytes(math.prod(shape), bits)} bytes of uint8, got "
                             f"{data.numel()} of {data.dtype}")
        tensors[name] = QuantizedTensor(data, scale, zero, bits, shape)
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise ValueError(f"{path} holds quantised tensors the model does not have: {missing}")
    _attach(model, tensors)
    copy_matching(_float_tensors(model), stored, path)
    return model


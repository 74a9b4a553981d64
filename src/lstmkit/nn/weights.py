"""Typed weights and state of one recurrent layer and direction, by the names the kernels use.

``layer_weights(module, layer_index, direction)`` returns the parameters of one layer and direction
of a recurrent module as one object: ``LSTMWeights`` for an LSTM (``lstmkit.LSTM``, the lstmkit
cells, ``torch.nn.LSTM``, ``torch.nn.LSTMCell``), ``GRUWeights`` for a GRU or plain RNN (lstmkit's or
torch.nn's). The fields are the module's own ``Parameter`` objects (not copies), so in-place
changes are seen both ways, and absent ones (no bias, no projection, no variant) are None.
Every kernel (the reference step, the fused and the C++ scans), the streaming step, the ONNX
export, pruning and the diagnostics read a layer's weights through these objects.

Shapes: I input features (of this layer), H hidden, P recurrent output (proj_size or H),
G = gates * H (4H, or 3H when coupled; 3H for a GRU, H for an RNN).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["GRUWeights", "LSTMOptions", "LSTMState", "LSTMWeights", "layer_weights"]


@dataclass(frozen=True)
class LSTMOptions:
    """The switches that change the LSTM's equations (not its sizes)."""

    peephole: bool = False
    coupled: bool = False
    layer_norm: bool = False
    eps: float = 1e-5  # LayerNorm epsilon, torch.nn.LayerNorm's default


class LSTMState(NamedTuple):
    """The state carried from step to step: h (B, P), c (B, H) (no B when unbatched)."""

    h: Tensor
    c: Tensor


class _Weights:
    """What both weight classes share: the field <-> parameter-name mapping."""

    # field -> parameter name without the layer suffix (``weight_ih`` for ``weight_ih_l0_reverse``)
    PARAMETER_NAMES: ClassVar[dict[str, str]]

    def tensors(self) -> tuple[Tensor | None, ...]:
        """Every field, in field order (None where absent)."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def named(self) -> dict[str, Tensor]:
        """The present tensors by parameter name (``weight_ih``, ...), in field order, which is the
        order a layer registers its parameters and the order of ``module.all_weights``."""
        return {name: t for field, name in self.PARAMETER_NAMES.items() if (t := getattr(self, field)) is not None}

    @classmethod
    def from_named(cls, params: Mapping[str, Tensor | None]):
        """Build from tensors keyed by parameter name (``weight_ih``, ...); missing names are None."""
        return cls(**{field: params.get(name) for field, name in cls.PARAMETER_NAMES.items()})


@dataclass(frozen=True, eq=False)
class LSTMWeights(_Weights):
    """The tensors of one LSTM layer and direction; absent ones are None.

    Field order is the parameter order: torch.nn.LSTM's (weight_ih, weight_hh, bias_ih, bias_hh,
    weight_hr), then lstmkit's variants (weight_ch, weight_ln_ih, weight_ln_hh, weight_ln_c, bias_ln_c).
    """

    w_ih: Tensor  # (G, I)      weight_ih
    w_hh: Tensor  # (G, P)      weight_hh
    b_ih: Tensor | None = None  # (G,)  bias_ih
    b_hh: Tensor | None = None  # (G,)  bias_hh
    w_hr: Tensor | None = None  # (P, H)  weight_hr, with proj_size > 0
    peep: Tensor | None = None  # (3, H) rows i, f, o; (2, H) rows i, o when coupled  weight_ch
    g_ih: Tensor | None = None  # (G,)  weight_ln_ih: LayerNorm gain on W_ih x
    g_hh: Tensor | None = None  # (G,)  weight_ln_hh: LayerNorm gain on W_hh h
    g_c: Tensor | None = None  # (H,)  weight_ln_c: LayerNorm gain on c
    b_c: Tensor | None = None  # (H,)  bias_ln_c: LayerNorm bias on c

    PARAMETER_NAMES: ClassVar[dict[str, str]] = {
        "w_ih": "weight_ih",
        "w_hh": "weight_hh",
        "b_ih": "bias_ih",
        "b_hh": "bias_hh",
        "w_hr": "weight_hr",
        "peep": "weight_ch",
        "g_ih": "weight_ln_ih",
        "g_hh": "weight_ln_hh",
        "g_c": "weight_ln_c",
        "b_c": "bias_ln_c",
    }


@dataclass(frozen=True, eq=False)
class GRUWeights(_Weights):
    """The tensors of one GRU or plain-RNN layer and direction (gate order r, z, n for the GRU)."""

    w_ih: Tensor  # (G, I)  weight_ih
    w_hh: Tensor  # (G, H)  weight_hh
    b_ih: Tensor | None = None  # (G,)  bias_ih
    b_hh: Tensor | None = None  # (G,)  bias_hh

    PARAMETER_NAMES: ClassVar[dict[str, str]] = {
        "w_ih": "weight_ih",
        "w_hh": "weight_hh",
        "b_ih": "bias_ih",
        "b_hh": "bias_hh",
    }


def _weights_type(module: nn.Module) -> type[LSTMWeights] | type[GRUWeights]:
    own = getattr(type(module), "_weights_type", None)  # lstmkit's layers and cells say which
    if own is not None:
        return own
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        return LSTMWeights
    if isinstance(module, (nn.GRU, nn.RNN, nn.GRUCell, nn.RNNCell)):
        return GRUWeights
    raise TypeError(f"layer_weights reads LSTM, GRU and RNN layers and cells, got {type(module).__name__}")


def layer_weights(layer: nn.Module, layer_index: int = 0, direction: int = 0) -> LSTMWeights | GRUWeights:
    """The weights of layer ``layer_index`` and ``direction`` (0 forward, 1 reverse) of ``layer``.

    ``layer`` is an lstmkit or torch.nn LSTM, GRU or RNN layer, or a cell (which has one layer and
    direction). The fields are the module's own Parameters: ``layer_weights(m, 1, 1).w_ih is
    m.weight_ih_l1_reverse``; a parametrized weight (quantised or factorised by ``lstmkit.formats``)
    is the tensor its parametrization computes at this call, and a weight that ``torch.nn.utils.prune`` or the old
    ``torch.nn.utils.weight_norm`` computes (a plain tensor attribute) is that tensor.
    """
    cls = _weights_type(layer)
    is_cell = not hasattr(layer, "num_layers")
    n_layers = 1 if is_cell else layer.num_layers
    n_directions = 2 if getattr(layer, "bidirectional", False) else 1
    if isinstance(layer_index, bool) or not isinstance(layer_index, int) or not 0 <= layer_index < n_layers:
        raise IndexError(f"layer_index must be in [0, {n_layers}), got {layer_index!r}")
    if isinstance(direction, bool) or not isinstance(direction, int) or not 0 <= direction < n_directions:
        raise IndexError(f"direction must be in [0, {n_directions}) for this layer, got {direction!r}")
    sfx = "" if is_cell else f"_l{layer_index}{'_reverse' if direction else ''}"
    params = layer._parameters  # the Parameter objects themselves, None where registered as None

    def get(name: str) -> Tensor | None:
        if parametrize.is_parametrized(layer, name):  # quantised or factorised: the weight it computes now
            return getattr(layer, name)
        if name in params:
            return params[name]
        # torch.nn.utils.prune and the old torch.nn.utils.weight_norm move the Parameter to NAME_orig (NAME_g,
        # NAME_v) and set NAME as a plain tensor attribute, recomputed by a forward pre-hook before each call.
        derived = layer.__dict__.get(name)
        return derived if isinstance(derived, Tensor) else None

    return cls(**{field: get(name + sfx) for field, name in cls.PARAMETER_NAMES.items()})

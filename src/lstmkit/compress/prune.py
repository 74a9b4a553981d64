"""Magnitude pruning: unstructured (masks on single weights) and structured (whole hidden units).

**Unstructured.** M = 1(|w| > tau) on every weight matrix (parameters with two or more
dimensions; biases and LayerNorm gains are kept). ``scope="layer"`` picks tau per tensor so that
each loses the same share; ``scope="global"`` picks one tau over all of them, so tensors with many
small weights lose more. Exactly k = round(s * n) weights are pruned: the k smallest magnitudes,
ties broken by position (the same as 1(|w| > tau) with tau the k-th smallest |w| whenever the
magnitudes are distinct). The pruned weights are zeros (+0.0) in the ordinary dense layout, so
time and memory stay those of the dense model; on disk ``lstmkit compress prune`` stores them as
kept values and a bitmask (``lstmkit.formats.sparse``), and ``sparse_bytes`` says what CSR would
take. :func:`iterative_prune` raises the sparsity in steps (prune, fine-tune with the masks
re-applied after every optimiser step, repeat) to the target.

**Structured.** :func:`shrink_hidden` removes whole hidden units of a recurrent core
(``lstmkit.nn.LSTM`` with any variant, ``GRU``, ``RNN``), so H really shrinks: for each layer and
direction the unit's rows in every gate block of ``weight_ih``/``weight_hh``/biases (and of the
LayerNorm gains over the gates), its column of ``weight_hh`` (without projection), ``weight_hr``
and the peepholes, its entries of ``weight_ln_c``/``bias_ln_c``, the next layer's ``weight_ih``
columns that read it and the head's input columns. A unit's importance is the L2 norm of its
incoming weights (all its gate rows) times that of its outgoing weights; the least important go.
The kept units compute exactly what they computed before with the removed units' outgoing weights
set to zero (tested), except with ``layer_norm``, whose statistics over all gates change.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lstmkit.nn import GRU, LSTM, RNN, layer_weights
from lstmkit.nn._base import RecurrentBase

SCOPES = ("layer", "global")


def check_sparsity(sparsity: float) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    return float(sparsity)


def prunable(model: nn.Module) -> list[str]:
    """Names of the weight matrices pruning acts on (parameters with two or more dimensions)."""
    return [name for name, p in model.named_parameters() if p.ndim >= 2]


def _smallest(values: Tensor, k: int) -> Tensor:
    """Bool mask (same shape) of the k smallest entries; ties broken by position."""
    flat = values.reshape(-1)
    pruned = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, stable=True).indices  # ascending, equal values keep their order
        pruned[order[:k]] = True
    return pruned.view(values.shape)


def magnitude_masks(
    model: nn.Module, sparsity: float, *, scope: str = "layer", names: list[str] | None = None
) -> dict[str, Tensor]:
    """Keep-masks (bool, True = kept) for the weight matrices of ``model`` at ``sparsity``.

    ``scope`` "layer": round(s * n) weights of each tensor; "global": round(s * N) of all N together.
    """
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    params = dict(model.named_parameters())
    names = prunable(model) if names is None else names
    if not names:
        raise ValueError("the model has no weight matrices to prune")
    mags = {n: params[n].detach().abs().float() for n in names}
    if scope == "layer":
        return {n: ~_smallest(m, round(sparsity * m.numel())) for n, m in mags.items()}
    flat = torch.cat([m.reshape(-1) for m in mags.values()])
    pruned = _smallest(flat, round(sparsity * flat.numel())).split([m.numel() for m in mags.values()])
    return {n: ~p.view(mags[n].shape) for n, p in zip(mags, pruned, strict=True)}


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Zero the pruned weights in place, as +0.0 (a product by the mask would leave -0.0 where a
    weight was negative, which sparse storage, keeping every bit, would have to store)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].masked_fill_(~mask, 0.0)


def sparsity_of(model: nn.Module, names: list[str] | None = None) -> float:
    """The share of exact zeros over the weight matrices (or ``names``)."""
    params = dict(model.named_parameters())
    names = prunable(model) if names is None else names
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    return zeros / sum(params[n].numel() for n in names)


def sparse_bytes(model: nn.Module, index_bytes: int = 2) -> int:
    """Bytes of the model with its weight matrices in CSR (values float32, ``index_bytes`` column
    indices, int32 row pointers) and everything else dense float32: what a sparse format would save."""
    total = 0
    for p in model.parameters():
        if p.ndim >= 2:
            rows = p.shape[0]
            total += int((p != 0).sum()) * (4 + index_bytes) + (rows + 1) * 4
        else:
            total += p.numel() * 4
    return total


def prune_schedule(target: float, steps: int) -> list[float]:
    """Sparsities of an iterative schedule: the cubic ramp of Zhu & Gupta (2017), which prunes
    most while many redundant weights remain and little near the target."""
    check_sparsity(target)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return [target * (1 - (1 - (i + 1) / steps) ** 3) for i in range(steps)]


def iterative_prune(
    model: nn.Module,
    target: float,
    *,
    steps: int = 3,
    scope: str = "layer",
    finetune: Callable[[nn.Module, Callable[[], None]], None] | None = None,
) -> dict[str, Tensor]:
    """Prune to ``target`` in ``steps`` rounds; after each round call ``finetune(model, reapply)``,
    where ``reapply()`` zeroes the pruned weights again (call it after every optimiser step).
    Weights pruned in a round stay pruned. Returns the final masks."""
    masks: dict[str, Tensor] = {}
    for s in prune_schedule(target, steps):
        new = magnitude_masks(model, s, scope=scope)
        masks = {n: m & masks[n] for n, m in new.items()} if masks else new
        apply_masks(model, masks)
        if finetune is not None:
            finetune(model, lambda m=masks: apply_masks(model, m))
            apply_masks(model, masks)
    return masks


# -- structured ------------------------------------------------------------------------------------------
def _core_settings(rnn: RecurrentBase) -> dict:
    kw = dict(num_layers=rnn.num_layers, bias=rnn.bias, batch_first=rnn.batch_first, dropout=rnn.dropout,
              bidirectional=rnn.bidirectional, recurrent_dropout=rnn.recurrent_dropout,
              weight_dropout=rnn.weight_dropout)  # fmt: skip
    if isinstance(rnn, LSTM):
        kw.update(proj_size=rnn.proj_size, peephole=rnn.peephole, coupled=rnn.coupled, layer_norm=rnn.layer_norm,
                  forget_bias=rnn.forget_bias, layer_norm_eps=rnn.layer_norm_eps, impl=rnn.impl,
                  zoneout=rnn.zoneout)  # fmt: skip
    elif isinstance(rnn, RNN):
        kw.update(nonlinearity=rnn.nonlinearity)
    elif not isinstance(rnn, GRU):
        raise TypeError(f"structured pruning handles lstmkit LSTM, GRU and RNN cores, got {type(rnn).__name__}")
    return kw


def _out_columns(rnn: RecurrentBase, keep: list[Tensor], layer: int) -> Tensor | None:
    """Indices of layer ``layer``'s output features (D*P) that survive; None when P is not H (a
    projection keeps the output size)."""
    if getattr(rnn, "proj_size", 0):
        return None
    H, D = rnn.hidden_size, rnn.num_directions
    return torch.cat([d * H + keep[layer * D + d] for d in range(D)])


def unit_importance(rnn: RecurrentBase, next_weights: Tensor | None = None) -> list[Tensor]:
    """Per (layer, direction), (H,) scores: ||incoming weights||_2 * ||outgoing weights||_2 of each unit.

    Incoming: the unit's rows in every gate block of ``weight_ih`` and ``weight_hh``. Outgoing:
    its column in ``weight_hh`` (or ``weight_hr`` with projection) and in the next layer's
    ``weight_ih`` (or ``next_weights``, the head's weight, after the last layer).
    """
    H, D, L = rnn.hidden_size, rnn.num_directions, rnn.num_layers
    g = rnn._gates_per_unit
    scores = []
    for layer in range(L):
        for d in range(D):
            p = layer_weights(rnn, layer, d).named()
            w_in = torch.cat([p["weight_ih"], p["weight_hh"]], 1).detach().view(g, H, -1)  # (g, H, I + P)
            incoming = w_in.pow(2).sum((0, 2)).sqrt()  # (H,)
            own = p["weight_hr"] if "weight_hr" in p else p["weight_hh"]  # columns read this unit's output
            outgoing = own.detach().pow(2).sum(0)  # (H,)
            if "weight_hr" not in p:
                if layer + 1 < L:
                    readers = [layer_weights(rnn, layer + 1, e).w_ih for e in range(D)]
                else:
                    readers = [] if next_weights is None else [next_weights]
                for w in readers:
                    outgoing = outgoing + w.detach()[:, d * H : (d + 1) * H].pow(2).sum(0)
            scores.append(incoming * outgoing.sqrt())
    return scores


def keep_units(scores: list[Tensor], hidden_size: int) -> list[Tensor]:
    """The ``hidden_size`` highest-scoring units of each (layer, direction), in their original order."""
    return [torch.sort(torch.topk(s, hidden_size).indices).values for s in scores]


def shrink_rnn(rnn: RecurrentBase, keep: list[Tensor]) -> RecurrentBase:
    """A copy of ``rnn`` with the hidden units ``keep[layer * D + d]`` only (the same number in each)."""
    H, D, L = rnn.hidden_size, rnn.num_directions, rnn.num_layers
    sizes = {len(k) for k in keep}
    if len(keep) != L * D or len(sizes) != 1:
        raise ValueError(f"keep must hold {L * D} index sets of one size, got sizes {[len(k) for k in keep]}")
    (H2,) = sizes
    if not 1 <= H2 <= H:
        raise ValueError(f"the new hidden size must be in [1, {H}], got {H2}")
    g = rnn._gates_per_unit
    ref = next(rnn.parameters())
    new = type(rnn)(rnn.input_size, H2, device=ref.device, dtype=ref.dtype, **_core_settings(rnn))
    new.train(rnn.training)
    with torch.no_grad():
        for layer in range(L):
            in_cols = None if layer == 0 else _out_columns(rnn, keep, layer - 1)
            for d in range(D):
                k = keep[layer * D + d]
                rows = torch.cat([j * H + k for j in range(g)])  # the unit's row in every gate block
                old, dst = layer_weights(rnn, layer, d).named(), layer_weights(new, layer, d).named()
                for name, p in old.items():
                    if name == "weight_ih":
                        v = p[rows] if in_cols is None else p[rows][:, in_cols]
                    elif name == "weight_hh":
                        v = p[rows] if "weight_hr" in old else p[rows][:, k]
                    elif name in ("bias_ih", "bias_hh", "weight_ln_ih", "weight_ln_hh"):
                        v = p[rows]
                    elif name in ("weight_hr", "weight_ch"):
                        v = p[:, k]
                    elif name in ("weight_ln_c", "bias_ln_c"):
                        v = p[k]
                    else:  # pragma: no cover - internal: every parameter name of lstmkit's layers is handled above
                        raise AssertionError(f"structured pruning does not handle the parameter {name}")
                    dst[name].copy_(v)
    return new


def output_columns(rnn: RecurrentBase, keep: list[Tensor]) -> Tensor | None:
    """Indices of the core's output features (D*P) that survive; what the head keeps."""
    return _out_columns(rnn, keep, rnn.num_layers - 1)


def silence_units(rnn: RecurrentBase, keep: list[Tensor], head: nn.Linear | None = None) -> None:
    """Zero, in place, every weight that reads a unit not in ``keep`` (recurrent columns, the next
    layer's and the head's input columns): the full model then computes what the shrunk one does
    on the kept units. For tests and explanation."""
    H, D, L = rnn.hidden_size, rnn.num_directions, rnn.num_layers
    with torch.no_grad():
        for layer in range(L):
            for d in range(D):
                drop = torch.ones(H, dtype=torch.bool)
                drop[keep[layer * D + d]] = False
                p = layer_weights(rnn, layer, d).named()
                (p["weight_hr"] if "weight_hr" in p else p["weight_hh"])[:, drop] = 0
                if "weight_hr" in p:
                    continue
                readers = [layer_weights(rnn, layer + 1, e).w_ih for e in range(D)] if layer + 1 < L else []
                if layer + 1 == L and head is not None:
                    readers = [head.weight]
                for w in readers:
                    w[:, d * H : (d + 1) * H][:, drop] = 0


def hidden_units_to_keep(hidden_size: int | None, fraction: float | None, current: int) -> int:
    """The new H from an explicit size or a fraction of units to remove."""
    if (hidden_size is None) == (fraction is None):
        raise ValueError("give exactly one of hidden_size and fraction")
    if fraction is not None:
        check_sparsity(fraction)
        hidden_size = max(1, math.ceil(current * (1 - fraction)))
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or not 1 <= hidden_size < current:
        raise ValueError(f"the new hidden size must be an integer in [1, {current}), got {hidden_size!r}")
    return hidden_size

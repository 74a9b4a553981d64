"""Compression of trained lstmkit models: quantisation, pruning, distillation, low-rank, block-circulant.

Each method works on modules (``quantize_model``, ``magnitude_masks``, ``shrink_rnn``,
``lowrank_model``, ``circulant_model``, the distillation steps) and on run directories (``quantize_run``,
``prune_run``, ``distill_run``, ``lowrank_run``, ``circulant_run``, behind ``lstmkit compress``), which write a new
run directory that every other command accepts, with ``compression.json`` (see
``lstmkit.compress.rundir`` and docs/compression.md).
"""

from __future__ import annotations

from lstmkit.compress.distill import check_smaller, classify_distill_step, lm_distill_step
from lstmkit.compress.prune import (
    apply_masks,
    iterative_prune,
    keep_units,
    magnitude_masks,
    prune_schedule,
    shrink_rnn,
    sparsity_of,
    unit_importance,
)
from lstmkit.compress.rundir import (
    COMPRESSION,
    METHODS,
    circulant_run,
    distill_run,
    load_model,
    lowrank_run,
    prune_run,
    quantize_run,
    shrink_model,
)
from lstmkit.formats.circulant import BlockCirculant, circulant_model, load_circulant, save_circulant
from lstmkit.formats.lowrank import LowRank, factorize, load_lowrank, lowrank_model, save_lowrank
from lstmkit.formats.quantized import (
    Dequantize,
    QuantizedTensor,
    load_quantized,
    quantize_model,
    quantize_tensor,
    save_quantized,
)

__all__ = [
    "COMPRESSION",
    "METHODS",
    "BlockCirculant",
    "Dequantize",
    "LowRank",
    "QuantizedTensor",
    "apply_masks",
    "check_smaller",
    "circulant_model",
    "circulant_run",
    "classify_distill_step",
    "distill_run",
    "factorize",
    "iterative_prune",
    "keep_units",
    "lm_distill_step",
    "load_circulant",
    "load_lowrank",
    "load_model",
    "load_quantized",
    "lowrank_model",
    "lowrank_run",
    "magnitude_masks",
    "prune_run",
    "prune_schedule",
    "quantize_model",
    "quantize_run",
    "quantize_tensor",
    "save_circulant",
    "save_lowrank",
    "save_quantized",
    "shrink_model",
    "shrink_rnn",
    "sparsity_of",
    "unit_importance",
]

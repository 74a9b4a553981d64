"""Compressed run directories: ``lstmkit compress METHOD RUN_DIR --out DIR`` and loading them back.

A compressed run directory is a run directory (``run.json``, ``config.toml``, the task's state
files, ``model.safetensors``, ``summary.json``) that ``evaluate``, ``generate``, ``forecast`` and
``export`` accept, plus ``compression.json``: the method and its options, and before and after it
the stored numbers, bytes on disk, the task metric on each split scored and the latency of one
forward call (both models timed in turn in one process). ``config.toml`` describes the
compressed model's shape, so the model is built from it as for any run:

- ``quantize``: the same config; ``model.safetensors`` holds the packed integers (``uint8``), the
  scales and zero-points of every weight matrix and the float biases and gains. It is loaded into
  ``Dequantize`` parametrizations, so every command runs the model from the integers.
- ``lowrank``: the same config; ``model.safetensors`` holds the two factors of each factorised
  gate matrix (loaded into ``LowRank`` parametrizations) and the other tensors.
- ``prune``: unstructured, the same config and an ordinary ``model.safetensors`` with zeros;
  structured, ``model.hidden_size`` is the new H (and ``model.embedding_dim`` is written out when it
  followed H), so the model is simply a smaller one.
- ``distill``: the student's config (its ``hidden_size``, ``num_layers``) and weights.

``Run.load_weights`` (``lstmkit.tasks.rundir``) reads every one of these through
``lstmkit.formats.load_weights``, which tells the format from the file's metadata. Everything a
method needs from the run's task comes through the ``Task`` interface (``build_model``,
``training_data``, ``example_input``, ``distill_step``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lstmkit._fileio import write_json_atomic
from lstmkit.compress import prune as pr
from lstmkit.compress.distill import check_distill_args, check_smaller
from lstmkit.compress.report import (
    count_parameters,
    latency_ms,
    primary_metric,
    relative_change,
    tensor_bytes,
)
from lstmkit.compress.training import finetune_config, recurrent_core, train_model, training
from lstmkit.formats import circulant as cc
from lstmkit.formats import lowrank as lr
from lstmkit.formats import quantized as qz
from lstmkit.formats import sparse as sp
from lstmkit.formats.integrity import save_model_file
from lstmkit.tasks.base import Task, TaskError
from lstmkit.tasks.rundir import CONFIG, MODEL, Run, open_run, write_stamp, write_summary
from lstmkit.tasks.runner import set_threads
from lstmkit.train import Config, apply_overrides, dump_config, seed_everything, set_values

COMPRESSION = "compression.json"
METHODS = ("quantize", "prune", "distill", "lowrank", "circulant")
STORAGES = ("sparse", "dense")  # how unstructured pruning stores its matrices (see lstmkit.formats.sparse)


# -- loading ----------------------------------------------------------------------------------------------
def load_model(run_dir: str | os.PathLike[str]) -> tuple[Run, nn.Module]:
    """A run directory (compressed or not) and its model, in eval mode."""
    run = open_run(run_dir)
    return run, run.load_weights(run.task.build_model(run.config))


def compression_of(run: Run) -> dict[str, Any] | None:
    path = run.file(COMPRESSION)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# -- writing ----------------------------------------------------------------------------------------------
def _check_out(out: Path, source: Path) -> None:
    if out.resolve() == source.resolve():
        raise ValueError("--out must be a new directory, not the run directory itself")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty directory; choose a new one")


def _write_run(src: Run, out: Path, config: Config, save: Callable[[Path], Any], method: str) -> Run:
    """A new run directory: stamp, config, the task's state files, the model and a first
    ``compression.json`` (completed by the report); returns it opened."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / COMPRESSION, {"method": method, "source": str(src.path.resolve()), "complete": False})
    write_stamp(out, src.task)
    dump_config(config, out / CONFIG)
    for name in src.task.state_files:
        shutil.copy2(src.file(name), out / name)
    save(out / MODEL)
    write_summary(out, {"split": "val", "note": "written by lstmkit compress; see compression.json"})
    return open_run(out)


def _side(run: Run, model: nn.Module, splits: Sequence[str]) -> dict[str, Any]:
    metrics = {s: run.task.evaluate(run, s) for s in splits}
    side: dict[str, Any] = {
        "parameters": count_parameters(model),
        "model_bytes": run.file(MODEL).stat().st_size,
        "tensor_bytes": tensor_bytes(run.file(MODEL)),
        "metrics": {s: _json_safe(m) for s, m in metrics.items()},
    }
    side["metric"] = {}
    for s, m in metrics.items():
        p = primary_metric(m)
        if p is not None:
            side["metric"][s] = {"name": p[0], "value": p[1], "higher_is_better": p[2]}
    return side


def _json_safe(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k not in ("confusion",)}


def _report(
    method: str,
    src: Run,
    src_model: nn.Module,
    out: Run,
    out_model: nn.Module,
    options: dict[str, Any],
    splits: Sequence[str],
    extra: dict[str, Any],
    repeats: int,
    before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``before``: the source's side, where the method scored it already (before training, so that a split the
    run lacks fails first)."""
    before = _side(src, src_model, splits) if before is None else before
    after = _side(out, out_model, splits)
    inputs = src.task.example_input(src_model, src.config)
    before["latency_ms"], after["latency_ms"] = latency_ms([src_model, out_model], inputs, repeats=repeats)
    shape = tuple(t.shape for t in inputs)
    change = {
        "size_ratio": before["model_bytes"] / after["model_bytes"],
        "tensor_size_ratio": before["tensor_bytes"] / after["tensor_bytes"],
        "parameter_ratio": before["parameters"] / after["parameters"],
        "speedup": before["latency_ms"]["min"] / after["latency_ms"]["min"],  # fastest calls: least load noise
        "speedup_median": before["latency_ms"]["median"] / after["latency_ms"]["median"],
        "metric_relative_change": {
            s: relative_change(before["metric"][s]["value"], after["metric"][s]["value"])
            for s in splits if s in before["metric"] and s in after["metric"]
        },
    }  # fmt: skip
    report = {
        "method": method,
        "complete": True,
        "source": str(src.path.resolve()),
        "task": src.task.name,
        "options": options,
        "latency_input": [list(s) for s in shape],
        "before": before,
        "after": after,
        "change": change,
        **extra,
    }
    write_json_atomic(out.file(COMPRESSION), report)
    main = splits[0]
    write_summary(out.path, {**after["metrics"][main], "compression": method})
    return report


def _open_source(run_dir: str | os.PathLike[str], method: str) -> tuple[Run, nn.Module]:
    """The run and its model; sets the run's ``train.threads`` as ``evaluate`` does (1 by default:
    two threads on a busy 2-core machine run many times slower). A method the task declares its model
    cannot take (``Task.compression_limits``, or the model class's own ``compression_limits`` where one config
    choice of a task builds another model) is refused here, before any work."""
    src, model = load_model(run_dir)
    _check_supported(src.task, method, model)
    set_threads(src.config)
    prior = compression_of(src)
    if prior is not None and prior.get("method") in ("quantize", "lowrank", "circulant"):
        done = {"quantize": "quantized", "lowrank": "factorised", "circulant": "block-circulant"}[prior["method"]]
        raise TaskError(f"{src.path} is {done} already; compress the float run it came from "
                        f"({prior.get('source')}), or prune/distill first and quantise last")  # fmt: skip
    return src, model


def _check_supported(task: Task, method: str, model: nn.Module) -> None:
    why = task.compression_limits.get(method) or getattr(type(model), "compression_limits", {}).get(method)
    if why is not None:
        raise TaskError(f"lstmkit compress {method} does not handle the {task.name} task's model: {why}")


def _fresh_copy(src: Run) -> nn.Module:
    """Another copy of the run's model, to compress (the first stays as the reference)."""
    return src.load_weights(src.task.build_model(src.config))


def _clean_up_on_error(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Leave no half-written run directory behind: on an error, ``out`` goes back to how it was
    (absent or empty). A non-empty ``out`` is refused before anything is written, so it is never touched."""

    @functools.wraps(fn)
    def wrapper(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
        out = Path(out)
        existed = out.is_dir() and not any(out.iterdir())
        fresh = not out.exists() or existed
        try:
            return fn(run_dir, out, **options)
        except BaseException:
            if fresh and out.is_dir():
                shutil.rmtree(out)
                if existed:
                    out.mkdir()
            raise

    return wrapper


# -- the four methods ---------------------------------------------------------------------------------------
@_clean_up_on_error
def quantize_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    bits: int = 8,
    per_channel: bool = True,
    splits: Sequence[str] = ("val",),
    compare_torch: bool = False,
    repeats: int = 20,
) -> dict[str, Any]:
    """Quantise every weight matrix of a run's model to ``bits`` (see ``lstmkit.formats.quantized``)."""
    qz.check_bits(bits)
    out = Path(out)
    _check_out(out, Path(run_dir))
    src, model = _open_source(run_dir, "quantize")
    if compare_torch:
        from lstmkit.compress.torch_dynamic import check_comparable

        check_comparable(src, model)  # before any work is done or written
    qmodel = _fresh_copy(src)
    tensors = qz.quantize_model(qmodel, bits, per_channel=per_channel)
    dst = _write_run(src, out, src.config, lambda p: qz.save_quantized(qmodel, p), "quantize")
    _, qmodel = load_model(out)  # what every command will run: the integers read back
    extra: dict[str, Any] = {
        "quantized_tensors": len(tensors),
        "quantized_values": sum(math.prod(t.shape) for t in tensors.values()),
        # The weight matrices alone: float32 against their integers, Delta and z (biases and gains stay float).
        "weight_matrices": {
            "float_bytes": 4 * sum(math.prod(t.shape) for t in tensors.values()),
            "stored_bytes": sum(t.nbytes for t in tensors.values()),
        },
        "inference": "dequantised on the fly: each forward call rebuilds the float weights from the integers",
    }
    matrices = extra["weight_matrices"]
    matrices["ratio"] = matrices["float_bytes"] / matrices["stored_bytes"]
    if compare_torch:
        from lstmkit.compress.torch_dynamic import compare_torch_dynamic

        extra["torch_ao"] = compare_torch_dynamic(src, model, qmodel, split=splits[0], repeats=repeats)
    options = {"bits": bits, "per_channel": per_channel}
    return _report("quantize", src, model, dst, qmodel, options, splits, extra, repeats)


@_clean_up_on_error
def prune_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    sparsity: float,
    structured: bool = False,
    scope: str = "layer",
    steps: int = 1,
    finetune_steps: int = 0,
    lr_: float | None = None,
    storage: str = "sparse",
    splits: Sequence[str] = ("val",),
    repeats: int = 20,
    progress: bool = True,
) -> dict[str, Any]:
    """Magnitude pruning of a run's model. Unstructured: ``sparsity`` of the weight matrices, in
    ``steps`` rounds each followed by ``finetune_steps`` of fine-tuning. ``structured``: remove
    the ``sparsity`` share of hidden units of every layer (H -> ceil(H (1 - sparsity))), then
    fine-tune ``finetune_steps``.

    ``storage`` "sparse" (the default) writes every pruned matrix that is smaller so as its kept
    values and a bitmask (``lstmkit.formats.sparse``; read back bitwise equal), and an ordinary
    file when none is; "dense" always writes the ordinary layout with zeros."""
    pr.check_sparsity(sparsity)
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if scope not in pr.SCOPES:
        raise ValueError(f"scope must be one of {pr.SCOPES}, got {scope!r}")
    if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or finetune_steps < 0:
        raise ValueError(f"finetune_steps must be a non-negative integer, got {finetune_steps!r}")
    out = Path(out)
    _check_out(out, Path(run_dir))
    src, model = _open_source(run_dir, "prune --structured" if structured else "prune")
    task, config = src.task, src.config
    data = training(task, config) if finetune_steps else None
    ft = finetune_config(config, finetune_steps, lr_, progress=progress) if finetune_steps else None
    log = out / "finetune"
    extra: dict[str, Any] = {}
    if structured:
        if not hasattr(getattr(model, "core", model), "rnn"):
            # Structured pruning shrinks one recurrent core and the layer that reads it; an encoder-decoder
            # (export_kind "seq2seq") has two cores, a bridge and attention that all share H.
            raise TaskError(f"structured pruning needs a model with one recurrent core; the {task.name} task's "
                            f"{type(model).__name__} has none (prune it unstructured, or distill it)")
        H = recurrent_core(model).hidden_size
        H2 = pr.hidden_units_to_keep(None, sparsity, H)
        pruned, config = shrink_model(task, config, model, H2)
        if data is not None:
            ft = dataclasses.replace(ft, model=config.model)
            extra["finetune"] = train_model(pruned, data, ft, log_dir=log)
        extra.update(hidden_size={"before": H, "after": H2})
    else:
        pruned = _fresh_copy(src)

        def finetune(m: nn.Module, reapply: Callable[[], None]) -> None:
            if data is not None:
                extra.setdefault("finetune", []).append(train_model(m, data, ft, after_step=reapply, log_dir=log))

        masks = pr.iterative_prune(pruned, sparsity, steps=steps, scope=scope, finetune=finetune)
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        extra.update(sparsity=pr.sparsity_of(pruned, list(masks)), pruned_weights=total - kept, weights=total,
                     schedule=pr.prune_schedule(sparsity, steps), sparse_bytes_csr=pr.sparse_bytes(pruned),
                     dense_bytes=sum(p.numel() * p.element_size() for p in pruned.parameters()))  # fmt: skip
    sparse = sp.sparse_candidates(pruned) if storage == "sparse" and not structured else {}
    if sparse:
        matrices = dict(pruned.named_parameters())
        extra["storage"] = {"format": sp.FORMAT, "sparse_tensors": len(sparse),
                            "sparse_bytes": sum(sparse.values()),
                            "dense_bytes": sum(matrices[n].numel() * matrices[n].element_size() for n in sparse),
                            "layout": "kept values (float32) + a bitmask of ceil(n/8) bytes per matrix"}  # fmt: skip
        save: Callable[[Path], Any] = lambda p: sp.save_sparse(pruned, p)  # noqa: E731
    else:
        extra["storage"] = {"format": "float", "layout": "dense" if storage == "dense" or structured else
                            "dense: no matrix is smaller stored sparse"}  # fmt: skip
        save = lambda p: save_model_file(pruned, p)  # noqa: E731
    dst = _write_run(src, out, config, save, "prune")
    _, pruned = load_model(out)
    options = {"sparsity": sparsity, "structured": structured, "scope": scope, "steps": steps,
               "finetune_steps": finetune_steps, "lr": ft.train.lr if ft else None, "storage": storage}  # fmt: skip
    return _report("prune", src, model, dst, pruned, options, splits, extra, repeats)


@_clean_up_on_error
def lowrank_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rank: int | None = None,
    energy: float | None = None,
    finetune_steps: int = 0,
    lr_: float | None = None,
    splits: Sequence[str] = ("val",),
    repeats: int = 20,
    progress: bool = True,
) -> dict[str, Any]:
    """Truncated-SVD factorisation of the gate matrices (``rank`` or retained ``energy``), then
    ``finetune_steps`` of fine-tuning of the factors and everything else."""
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of --rank and --energy")
    lr.choose_rank(torch.ones(1), rank=rank, energy=energy)  # checks the value before any work
    out = Path(out)
    _check_out(out, Path(run_dir))
    src, model = _open_source(run_dir, "lowrank")
    small = _fresh_copy(src)
    ranks = lr.lowrank_model(small, rank=rank, energy=energy)
    extra: dict[str, Any] = {"ranks": ranks}
    if finetune_steps:
        ft = finetune_config(src.config, finetune_steps, lr_, progress=progress)
        extra["finetune"] = train_model(small, training(src.task, src.config), ft, log_dir=out / "finetune")
    save = (lambda p: lr.save_lowrank(small, p)) if ranks else (lambda p: save_model_file(small, p))
    dst = _write_run(src, out, src.config, save, "lowrank")
    _, small = load_model(out)
    options = {"rank": rank, "energy": energy, "finetune_steps": finetune_steps, "lr": lr_}
    return _report("lowrank", src, model, dst, small, options, splits, extra, repeats)


@_clean_up_on_error
def circulant_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    block: int,
    others: bool = True,
    product: str = "dense",
    finetune_steps: int = 0,
    lr_: float | None = None,
    splits: Sequence[str] = ("val",),
    repeats: int = 20,
    progress: bool = True,
) -> dict[str, Any]:
    """Block-circulant weights (``lstmkit.formats.circulant``): every gate matrix, and with
    ``others`` every other product matrix whose sizes ``block`` divides, projected onto the nearest
    block-circulant matrix with ``block`` x ``block`` blocks, then ``finetune_steps`` of fine-tuning
    of the vectors and everything else. ``product`` is how the written model multiplies ("dense":
    the expanded matrix and the layers' own kernels; "fft": the FFT product). Both are timed."""
    cc.check_block(block)
    cc.check_product(product)
    out = Path(out)
    _check_out(out, Path(run_dir))
    src, model = _open_source(run_dir, "circulant")
    cc.check_fits(model, block)  # a block that does not divide the sizes is refused before any work
    small = _fresh_copy(src)
    layout = cc.circulant_model(small, block, others=others)
    extra: dict[str, Any] = {"block": block, **layout}
    if finetune_steps:
        ft = finetune_config(src.config, finetune_steps, lr_, progress=progress)
        extra["finetune"] = train_model(small, training(src.task, src.config), ft, log_dir=out / "finetune")
    cc.set_product(small, product)
    dst = _write_run(src, out, src.config, lambda p: cc.save_circulant(small, p), "circulant")
    _, small = load_model(out)
    extra["latency_by_product"] = _circulant_latency(src, model, dst.path, repeats)
    options = {"block": block, "others": others, "product": product, "finetune_steps": finetune_steps, "lr": lr_}
    return _report("circulant", src, model, dst, small, options, splits, extra, repeats)


def _circulant_latency(src: Run, model: nn.Module, written: Path, repeats: int) -> dict[str, Any]:
    """One forward call (``Task.example_input``) of the float model and of the written circulant
    model, each with dense products in the layers' own kernels and through the reference time loop
    (where the FFT product runs), timed in turn: the FFT product against the dense one in the same loop."""
    reference = _fresh_copy(src)
    for m in reference.modules():
        if isinstance(m, cc.LSTM):
            m.impl = "reference"
    _, dense = load_model(written)
    _, fft = load_model(written)
    cc.set_product(dense, "dense")
    cc.set_product(fft, "fft")
    names = ["float, layers' kernels", "circulant dense product, layers' kernels", "float, reference loop",
             "circulant FFT product, reference loop"]  # fmt: skip
    inputs = src.task.example_input(model, src.config)
    times = latency_ms([model, dense, reference, fft], inputs, repeats=repeats)
    return {"input": [list(t.shape) for t in inputs], **dict(zip(names, times, strict=True))}


@_clean_up_on_error
def distill_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    hidden_size: int,
    num_layers: int | None = None,
    alpha: float = 0.5,
    temperature: float = 2.0,
    steps: int | None = None,
    overrides: Sequence[str] = (),
    splits: Sequence[str] = ("val",),
    repeats: int = 20,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a student with ``hidden_size`` (and ``num_layers``) from the run's model as teacher,
    for ``steps`` optimiser steps (default: the teacher's ``train.max_steps``) with the teacher's
    training settings and ``overrides`` (``train.lr=...``). ``alpha = 1`` ignores the teacher."""
    check_distill_args(alpha, temperature)
    out = Path(out)
    _check_out(out, Path(run_dir))
    src, teacher = _open_source(run_dir, "distill")
    task = src.task
    model_cfg = _resized(src.config.model, hidden_size)
    if num_layers is not None:
        model_cfg = dataclasses.replace(model_cfg, num_layers=num_layers)
    config = task.distill_config(dataclasses.replace(src.config, model=model_cfg))  # one network
    try:
        config = apply_overrides(config, list(overrides))
    except ValueError as e:
        raise ValueError(f"--set: {e}") from e
    seed_everything(config.train.seed)
    student = task.build_model(config)
    sizes = check_smaller(student, teacher)
    before = _side(src, teacher, splits)  # the teacher scored first: a split the run lacks fails before training
    data = training(task, config)
    budget = steps if steps is not None else config.train.max_steps
    fixed = {"train.max_minutes": None, "train.tensorboard": False, "train.progress": progress}
    if budget is not None:
        fixed["train.max_steps"] = budget
    config = set_values(config, fixed)
    teacher.eval()
    if alpha == 1:  # the control: the same student and budget, the task's own loss, no teacher to run
        step = data.step
    else:
        step = task.distill_step(teacher, data.step, alpha=alpha, temperature=temperature, config=config)
    result = train_model(student, data, config, step=step, log_dir=out / "finetune")
    dst = _write_run(src, out, config, lambda p: save_model_file(student, p), "distill")
    _, student = load_model(out)
    options = {"hidden_size": hidden_size, "num_layers": config.model.num_layers, "alpha": alpha,
               "temperature": temperature, "steps": result["steps"], "overrides": list(overrides)}  # fmt: skip
    extra = {"training": result, "student_parameters": sizes[0], "teacher_parameters": sizes[1],
             "teacher_used": alpha < 1}  # fmt: skip
    return _report("distill", src, teacher, dst, student, options, splits, extra, repeats, before)


# -- structured pruning of a task's model ------------------------------------------------------------------
def _resized(model_cfg: Any, hidden_size: int) -> Any:
    """The model config with a new H; an embedding size that followed H is written out, and a GRU/RNN
    size resolved from a parameter budget is replaced by the explicit one."""
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
        raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
    changes: dict[str, Any] = {"hidden_size": hidden_size}
    if model_cfg.vocab_size is not None and model_cfg.embedding_dim is None:
        changes["embedding_dim"] = model_cfg.hidden_size
    if getattr(model_cfg, "equal_params", False):
        changes["equal_params"] = False
    return dataclasses.replace(model_cfg, **changes)


def shrink_model(task: Task, config: Config, model: nn.Module, hidden_size: int) -> tuple[nn.Module, Config]:
    """The task's model with ``hidden_size`` hidden units per layer and direction (the most important
    ones, see ``lstmkit.compress.prune``), and its config. Layers and directions keep the same number.

    Every model of ``lstmkit.models`` reads its core's output with ``proj`` (when it has one) or
    ``head``, either on itself or on the ``SequenceModel`` it wraps as ``core``."""
    core = getattr(model, "core", model)
    rnn = core.rnn
    prefix = "core." if core is not model else ""
    proj = getattr(core, "proj", None)
    tied_without_proj = core.config.tie_weights and proj is None
    consumer, key = (proj, "proj.weight") if proj is not None else (core.head, "head.weight")
    keep = pr.keep_units(pr.unit_importance(rnn, None if tied_without_proj else consumer.weight), hidden_size)
    small_rnn = pr.shrink_rnn(rnn, keep)
    cols = pr.output_columns(rnn, keep)
    new_config = dataclasses.replace(config, model=_resized(config.model, hidden_size))
    new = task.build_model(new_config)
    state = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(f"{prefix}rnn.")}
    state.update({f"{prefix}rnn.{k}": v for k, v in small_rnn.state_dict().items()})
    if cols is not None:
        if tied_without_proj:  # the head read h directly; a selection matrix now maps the kept units back to E = H
            state[f"{prefix}proj.weight"] = torch.eye(rnn.hidden_size)[:, cols]  # (E, H')
        else:
            state[prefix + key] = state[prefix + key][:, cols]
    new.load_state_dict(state, strict=True)
    return new.train(model.training), new_config

r"""Gradient flow through time: how much of a loss at the last step reaches each earlier state.

:func:`gradient_flow` returns, for every layer and time step t, :math:`\partial L/\partial h_t` and,
for an LSTM, :math:`\partial L/\partial c_t`, where L is a loss on the model's output at the last
step T. These are the quantities backpropagation through time carries backwards:

.. math::
    \text{plain RNN:}\quad \frac{\partial L}{\partial h_t} &= W_{hh}^\top \operatorname{diag}(1 - h_{t+1}^2)
        \frac{\partial L}{\partial h_{t+1}} \\
    \text{LSTM:}\quad \frac{\partial L}{\partial c_t} &= \frac{\partial L}{\partial h_t}\, o_t (1 - \tanh^2 c_t)
        + \frac{\partial L}{\partial c_{t+1}}\, f_{t+1}

(plus, in a stack, what comes down from the layer above). The RNN's product of Jacobians shrinks
geometrically with the distance T - t unless its weights make it explode; the LSTM's cell path
multiplies only by the forget gates, so where they stay near 1 the gradient reaches far back (the
"constant error carousel" of Hochreiter & Schmidhuber 1997).

How it is measured. The fused kernels return only the outputs and the final states: the per-step
states are not nodes of their autograd graph, and the LSTM's c_t never leaves the kernel. So the
model is replayed one step at a time with the reference cell steps of ``lstmkit.nn._reference`` on
the model's own parameters (every LSTM variant: peepholes, coupled gates, LayerNorm, projection),
in eval mode, keeping every h_t and c_t; ``torch.autograd.grad`` then gives the loss's gradient
with respect to all of them at once (parameter ``.grad`` fields are left alone). Each h_t is a
single node feeding both the next step and the layer above, so its gradient is the total one. The
replay's last output is checked against the model's own forward pass before anything is returned.

:func:`diagnose_runs` (``lstmkit diagnose``) applies it to trained runs of the long-range tasks
and plots the curves.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit._fileio import save_figure, write_text_atomic
from lstmkit.nn import GRU, LSTM, RNN, LSTMOptions, layer_weights
from lstmkit.nn._reference import gru_step, lstm_step, rnn_step

Step = Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...]]]


@dataclasses.dataclass
class GradientFlow:
    """Gradients of a loss at the last step with respect to every state of a model.

    ``dh`` is (L, T, B, P): :math:`\\partial L/\\partial h_t` for each layer, step and sequence;
    ``dc`` is (L, T, B, H): :math:`\\partial L/\\partial c_t`, for an LSTM only (None otherwise).
    """

    cell: str  # "lstm", "gru" or "rnn"
    dh: Tensor
    dc: Tensor | None

    def norms(self, state: str = "h", layer: int = -1) -> Tensor:
        """(T, B): the norm over units of the gradient of ``state`` ("h" or "c") in ``layer``."""
        if state not in ("h", "c"):
            raise ValueError(f"state must be 'h' or 'c', got {state!r}")
        grads = self.dh if state == "h" else self.dc
        if grads is None:
            raise ValueError(f"a {self.cell.upper()} has no cell state c; only an LSTM has")
        return grads[layer].norm(dim=-1)

    def profile(self, state: str = "h", layer: int = -1, relative: bool = True) -> Tensor:
        """(T,): the mean over sequences of the norms; ``relative`` divides by its value at the last step."""
        p = self.norms(state, layer).mean(-1)
        return p / p[-1] if relative else p


def _layer_steps(rnn: nn.Module) -> list[Step]:
    """One step function per layer, on the layer's own parameters (names as in torch.nn)."""
    steps: list[Step] = []
    for k in range(rnn.num_layers):
        w = layer_weights(rnn, k)  # LSTMWeights or GRUWeights: the layer's own parameters
        if isinstance(rnn, LSTM):
            opt = LSTMOptions(rnn.peephole, rnn.coupled, rnn.layer_norm, rnn.layer_norm_eps)
            steps.append(functools.partial(lstm_step, w=w, opt=opt))
        elif isinstance(rnn, GRU):
            steps.append(functools.partial(gru_step, w=w))
        else:
            steps.append(functools.partial(rnn_step, w=w, nonlinearity=rnn.nonlinearity))
    return steps


def _cell_name(rnn: nn.Module) -> str:
    return "lstm" if isinstance(rnn, LSTM) else "gru" if isinstance(rnn, GRU) else "rnn"


def gradient_flow(
    model: nn.Module,
    batch: Tensor,
    loss: Callable[[Tensor], Tensor] | None = None,
) -> GradientFlow:
    """Per-step gradients of a loss at the last step with respect to every h_t and c_t.

    Args:
        model: a ``SequenceModel`` or an ``lstmkit`` ``LSTM``/``GRU``/``RNN`` layer, unidirectional
            (a loss at the last step says nothing about a reverse direction). Run in eval mode
            (no dropout); its training mode is restored afterwards.
        batch: the input, (T, B, I) features or (T, B) token ids for a ``SequenceModel``; (T, B, I)
            (or (B, T, I) with ``batch_first``) for a layer. Every sequence has T steps.
        loss: maps the model's output at the last step (B, O) to a scalar. The default, the sum
            of that output, is a linear read-out: each sequence's gradients are then those of its
            own last output, whatever its error.

    Returns:
        a :class:`GradientFlow` with ``dh`` (L, T, B, P) and, for an LSTM, ``dc`` (L, T, B, H).
    """
    if callable(getattr(model, "stream_parts", None)):  # a whole model (SequenceModel): embedding, core, head
        parts = model.stream_parts()
        if parts.block is not None:
            raise TypeError(
                f"gradient_flow follows one recurrent core from input to head; this {type(model).__name__} has a "
                "block with a memory between its LSTM layers (model.attention = true): pass one of its LSTMs "
                "(e.g. model.lstm_below) with its own input instead"
            )
        rnn = parts.core
        if parts.embedding is not None:
            if batch.dtype not in (torch.int64, torch.int32) or batch.ndim != 2:
                raise ValueError(f"batch must be token ids (T, B) for this model, got {batch.dtype} "
                                 f"{tuple(batch.shape)}")  # fmt: skip
            xs = F.embedding(batch, parts.embedding)  # (T, B, E)
        else:
            xs = batch

        def head(h: Tensor) -> Tensor:
            return F.linear(h if parts.proj is None else F.linear(h, parts.proj), parts.head_weight, parts.head_bias)

        def forward_last() -> Tensor:
            return model(batch)[0][-1]  # (B, O)

    elif isinstance(model, (LSTM, GRU, RNN)):
        rnn = model
        if batch.ndim != 3:
            raise ValueError(f"batch must be 3-D input for a layer, got shape {tuple(batch.shape)}")
        xs = batch.transpose(0, 1) if model.batch_first else batch  # (T, B, I)

        def head(h: Tensor) -> Tensor:
            return h

        def forward_last() -> Tensor:
            out = model(batch)[0]
            return out[:, -1] if model.batch_first else out[-1]  # (B, P)

    else:
        raise TypeError(f"model must be a SequenceModel or an lstmkit LSTM, GRU or RNN, got {type(model).__name__}")
    if rnn.bidirectional:
        raise ValueError("gradient_flow needs a unidirectional model: a loss at the last step does not probe a "
                         "reverse direction")  # fmt: skip
    if not xs.is_floating_point() or xs.ndim != 3 or xs.shape[-1] != rnn.input_size:
        raise ValueError(f"batch must be float features (T, B, {rnn.input_size}), got {xs.dtype} {tuple(xs.shape)}")

    cell = _cell_name(rnn)
    steps = _layer_steps(rnn)
    ref = rnn.weight_hh_l0
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # A leaf that requires grad: every state is then a graph node, even with frozen parameters.
            xs = xs.detach().requires_grad_(True)
            T, B = xs.shape[:2]
            states: list[tuple[Tensor, ...]] = []
            for _ in steps:
                h0 = ref.new_zeros(B, rnn.proj_size or rnn.hidden_size)
                states.append((h0, ref.new_zeros(B, rnn.hidden_size)) if cell == "lstm" else (h0,))
            kept: list[list[tuple[Tensor, ...]]] = [[] for _ in steps]  # per layer, per step: (h_t, c_t) or (h_t,)
            for t in range(T):
                inp = xs[t]  # (B, I)
                for k, step in enumerate(steps):
                    inp, states[k] = step(inp, states[k])  # inp is h_t: the same node as states[k][0]
                    kept[k].append(states[k])
            last = head(inp)
            value = last.sum() if loss is None else loss(last)
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise ValueError("loss must return a scalar tensor")
            nodes = [s for layer in kept for step_states in layer for s in step_states]
            grads = torch.autograd.grad(value, nodes, allow_unused=True, materialize_grads=True)
        with torch.no_grad():
            expected = forward_last()
        scale = 1.0 + float(expected.abs().max())
        if not torch.allclose(last.detach(), expected, rtol=1e-3, atol=1e-4 * scale):
            raise RuntimeError(
                "the step-by-step replay of the model differs from its forward pass (max difference "
                f"{float((last.detach() - expected).abs().max()):.3g}); gradient_flow does not support this model"
            )
    finally:
        model.train(was_training)

    # nodes run layer by layer, then step by step, then (h_t, c_t): every n-th one is an h_t.
    n = 2 if cell == "lstm" else 1
    dh = torch.stack(grads[0::n]).unflatten(0, (len(steps), T))  # (L, T, B, P)
    dc = torch.stack(grads[1::n]).unflatten(0, (len(steps), T)) if cell == "lstm" else None  # (L, T, B, H)
    return GradientFlow(cell=cell, dh=dh, dc=dc)


# -- plots and run directories ---------------------------------------------------------------------
def plot_gradient_flow(flows: Mapping[str, GradientFlow], path: str | os.PathLike[str], *, title: str = "") -> None:
    """Plot each flow's mean ||dL/dh_t|| (and ||dL/dc_t|| for LSTMs) relative to the last step,
    against the distance from the loss, on a log scale: a straight falling line is an
    exponentially vanishing gradient. Writes a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    with_c = any(f.dc is not None for f in flows.values())
    fig, axes = plt.subplots(1, 2 if with_c else 1, figsize=(9 if with_c else 5, 3.6), sharey=True, squeeze=False)
    for state, ax in zip(("h", "c"), axes[0], strict=False):
        for label, flow in flows.items():
            if state == "c" and flow.dc is None:
                continue
            profile = flow.profile(state).flip(0)  # index k = steps before the last step
            ax.semilogy(range(len(profile)), profile.numpy(), label=label, lw=1.5)
        ax.set_xlabel("steps before the loss step (T - t)")
        ax.set_title(f"mean ‖∂L/∂{state}_t‖, relative to t = T")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)


@dataclasses.dataclass
class Diagnosis:
    """What :func:`diagnose_runs` wrote and its summary lines."""

    png: Path
    json: Path
    lines: list[str]


def _as_double(batch: Any) -> Any:
    return type(batch)(*(t.double() if isinstance(t, Tensor) and t.is_floating_point() else t for t in batch))


def diagnose_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    *,
    length: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    init: bool = False,
    out: str | os.PathLike[str] | None = None,
) -> Diagnosis:
    """Gradient flow of trained long-range runs (``lstmkit diagnose``), all on the same input.

    The input is ``batch_size`` sequences of ``length`` steps (default: the first run's
    ``data.length``) from the runs' task generator with ``seed``, and the loss is the task's loss
    at the last step. The models run in float64, so that gradients far below float32's range are
    still measured. ``init`` diagnoses each run's model as initialised (its config and
    ``train.seed``) instead of its trained weights. Writes ``out`` (default
    ``RUN_DIR/gradient_flow.png``, required with several runs) and the numbers beside it as JSON.
    """
    from lstmkit.tasks.base import TaskError
    from lstmkit.tasks.rundir import open_run
    from lstmkit.train import seed_everything
    from lstmkit.train.seed import generator_for

    if not run_dirs:
        raise ValueError("give at least one run directory")
    if len(run_dirs) > 1 and out is None:
        raise ValueError("--out is required with several run directories (the plot compares them in one file)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    runs = [open_run(d) for d in run_dirs]
    task = runs[0].task
    if not task.diagnosable:
        raise TaskError(f"diagnose runs the long-range tasks (adding, temporal-order, copy); {runs[0].path} is a "
                        f"{task.name!r} run")  # fmt: skip
    for run in runs[1:]:
        sizes = (run.config.model.input_size, run.config.model.output_size)
        if run.task.name != task.name or sizes != (runs[0].config.model.input_size, runs[0].config.model.output_size):
            raise TaskError(f"{run.path} is not a {task.name!r} run with the inputs and outputs of {runs[0].path}; "
                            "the runs must take one input")  # fmt: skip
    if length is not None and length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    T = length if length is not None else getattr(runs[0].config.data, "length", None)
    if T is None:
        raise TaskError(f"task {task.name!r} has no fixed-length input for the gradient-flow diagnostic")
    batch = _as_double(task.diagnostic_batch(runs[0].config, T, batch_size, generator_for(seed, "diagnose")))

    flows: dict[str, GradientFlow] = {}
    records = []
    for run in runs:
        if init:
            seed_everything(run.config.train.seed)  # the run's own first draws: its initial weights
            model = task.build_model(run.config)
        else:
            model = run.load_weights(task.build_model(run.config))
        H = model.rnn.hidden_size
        label = f"{run.config.model.cell.upper()}, {H} units"
        forget_bias = getattr(run.config.model, "forget_bias", None)
        if run.config.model.cell != "rnn":
            label += f", forget bias {forget_bias:g}" if forget_bias is not None else ", torch init"
        if label in flows:
            label += f" ({run.path.name})"
        flow = gradient_flow(model.double(), batch.x, loss=lambda out: task.last_step_loss(out, batch))
        flows[label] = flow
        records.append({
            "run_dir": str(run.path), "cell": run.config.model.cell, "hidden_size": H, "label": label,
            "h": flow.profile("h").tolist(), "c": flow.profile("c").tolist() if flow.dc is not None else None,
            "h_at_loss_step": float(flow.profile("h", relative=False)[-1]),
        })  # fmt: skip

    png = Path(out) if out is not None else runs[0].path / ("gradient_flow_init.png" if init else "gradient_flow.png")
    png.parent.mkdir(parents=True, exist_ok=True)
    trained_at = {getattr(run.config.data, "length", None) for run in runs}
    what = "as initialised" if init else "trained" + (f" at T = {trained_at.pop()}" if len(trained_at) == 1 else "")
    plot_gradient_flow(flows, png, title=f"{task.name}, T = {T}, {batch_size} sequences, models {what}")
    json_path = png.with_suffix(".json")
    write_text_atomic(json_path, json.dumps({
        "task": task.name, "length": T, "batch_size": batch_size, "seed": seed, "init": init,
        "relative_to": "mean norm at the last step", "runs": records,
    }, indent=1) + "\n")  # fmt: skip

    lines = [f"gradient flow of the {task.name} loss at step T = {T} ({batch_size} sequences, models {what}):"]
    for label, flow in flows.items():
        parts = [f"‖∂L/∂h‖ {T - 1} steps back / at T = {float(flow.profile('h')[0]):.1e}"]
        if flow.dc is not None:
            parts.append(f"‖∂L/∂c‖ {float(flow.profile('c')[0]):.1e}")
        lines.append(f"  {label}: " + ", ".join(parts))
    lines.append(f"plot: {png}; numbers: {json_path}")
    return Diagnosis(png=png, json=json_path, lines=lines)

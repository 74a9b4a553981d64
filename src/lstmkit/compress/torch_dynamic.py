"""lstmkit's int8 against PyTorch's dynamic quantisation (``torch.ao.quantization.quantize_dynamic``).

PyTorch's dynamic quantisation covers only ``torch.nn.LSTM`` and ``torch.nn.Linear`` (per-tensor
int8 weights, activations quantised per call, int8 matrix products through fbgemm), so the
comparison runs on a plain-LSTM language model: the run's weights are copied into an
``Embedding`` + ``torch.nn.LSTM`` + ``Linear`` twin (same names and gate order), which is scored
on the same split the same way (stateful streams, ``lstmkit.train.evaluate``) in float and
quantised. Its embedding stays float: ``quantize_dynamic`` has no dynamic embedding module.
``torch.ao.quantization`` is deprecated in this torch; its warnings are silenced here only.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from lstmkit.compress.report import latency_ms
from lstmkit.formats.quantized import quantized_tensors
from lstmkit.tasks.base import TaskError
from lstmkit.tasks.rundir import Run
from lstmkit.train import evaluate


class TorchLM(nn.Module):
    """``SequenceModel``'s language model on ``torch.nn`` layers: ids (T, B) -> logits (T, B, V)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if getattr(model, "export_kind", None) != "sequence" or model.embedding is None:
            raise TaskError("the torch.ao comparison needs a language model (token ids in, logits out)")
        c, rnn = model.config, model.rnn
        if model.proj is not None or c.cell != "lstm" or rnn.proj_size or rnn.peephole or rnn.coupled or rnn.layer_norm:
            raise TaskError("the torch.ao comparison needs a plain LSTM language model (no projection or variants)")
        self.embedding = nn.Embedding(c.vocab_size, model.embedding.embedding_dim)
        self.rnn = nn.LSTM(rnn.input_size, rnn.hidden_size, rnn.num_layers)
        self.head = nn.Linear(model.head.in_features, model.head.out_features)
        self.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()})
        self.eval()

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        out, state = self.rnn(self.embedding(x), state)  # (T, B, H)
        return self.head(out), state  # (T, B, V)


def _size(model: nn.Module) -> int:
    """Bytes of the model's ``torch.save``-d state dict (packed int8 weights cannot go to safetensors)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def dynamic_int8(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated (DeprecationWarning) and so are quantised tensor creators (UserWarning).
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation.*", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)


def check_comparable(run: Run, model: nn.Module) -> None:
    """Raise ``TaskError`` unless the run is a plain-LSTM language model (what torch.ao can quantise)
    whose task gives evaluation batches. A model class may refuse by its ``compression_limits`` (as ``_open_source``
    reads them), under the key "quantize --compare-torch"."""
    why = getattr(type(model), "compression_limits", {}).get("quantize --compare-torch")
    if why is not None:
        raise TaskError(f"lstmkit compress quantize --compare-torch does not handle the {run.task.name} task's "
                        f"model: {why}")  # fmt: skip
    if getattr(model, "export_kind", None) != "sequence" or model.embedding is None:
        raise TaskError(f"--compare-torch needs a language-model run (charlm, wordlm), not {run.task.name!r}")
    TorchLM(model)  # raises for projections and variants
    run.task.evaluation_data(run, "val")  # raises for a task without evaluation batches


def compare_torch_dynamic(
    run: Run, model: nn.Module, ours: nn.Module, *, split: str = "val", repeats: int = 20
) -> dict[str, Any]:
    """Size, cross-entropy on ``split`` and latency of: our float model, our int8 model (``ours``),
    the torch.nn twin in float and after ``quantize_dynamic``."""
    check_comparable(run, model)
    twin = TorchLM(model)
    twin_q = dynamic_int8(TorchLM(model))
    data = run.task.evaluation_data(run, split)
    models = {"lstmkit_float": model, "lstmkit_int8": ours, "torch_float": twin, "torch_ao_dynamic_int8": twin_q}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation.*", category=UserWarning)
        ce = {name: evaluate(m, data.batches, data.step, stateful=data.stateful) for name, m in models.items()}
        ms = latency_ms(list(models.values()), run.task.example_input(model, run.config), repeats=repeats)

    size = {"lstmkit_float": sum(p.numel() * 4 for p in model.parameters()),
            "lstmkit_int8": sum(t.nbytes for t in quantized_tensors(ours).values())
            + sum(p.numel() * p.element_size() for p in ours.parameters()),
            "torch_float": _size(twin), "torch_ao_dynamic_int8": _size(twin_q)}  # fmt: skip
    return {
        "split": split,
        "unit": f"nats per {run.task.unit}",
        "models": {
            n: {"cross_entropy": ce[n], "bytes": size[n], "latency_ms": t} for n, t in zip(models, ms, strict=True)
        },
        "note": "bytes: lstmkit models count their tensors; torch models their torch.save-d state dict. "
        "torch.ao quantises LSTM and Linear weights per tensor and leaves the embedding float.",
    }

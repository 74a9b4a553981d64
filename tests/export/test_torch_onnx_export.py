"""torch.onnx.export on a model holding lstmkit.LSTM: never a wrong file. Both of torch's exporters
(the TorchScript one, ``dynamo=False``, and the default dynamo one) stop with an error that points to
``lstmkit.export.to_onnx``, for every impl, and write nothing. (Before, the TorchScript exporter
wrote a graph with the LSTM baked in as constants, and the dynamo one failed inside the C++ kernel.)
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lstmkit

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


class WordLM(nn.Module):
    """PyTorch's word-language-model example with lstmkit.LSTM: Embedding -> LSTM -> Linear."""

    def __init__(self, impl: str) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.rnn = lstmkit.LSTM(4, 6, 2, impl=impl)
        self.out = nn.Linear(6, 11)

    def forward(self, x):
        y, hidden = self.rnn(self.emb(x))
        return self.out(y), hidden


@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_onnx_export_refuses_and_points_to_to_onnx(tmp_path, impl, dynamo):
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")  # the dynamo exporter's own dependency
    model = WordLM(impl).eval()
    path = tmp_path / "model.onnx"
    with pytest.raises(Exception, match=r"lstmkit\.export\.to_onnx") as caught:
        torch.onnx.export(model, (torch.randint(0, 11, (5, 2)),), str(path), dynamo=dynamo)
    assert "torch.onnx.export cannot write lstmkit.LSTM correctly" in str(caught.value)
    assert not path.exists()
    # the layer works again afterwards (the exporters' flags are reset)
    model(torch.randint(0, 11, (3, 2)))

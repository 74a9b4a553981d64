"""Deployment export: lstmkit models as ONNX files, checked in onnxruntime.

``to_onnx(model, path)`` writes an ``lstmkit.LSTM`` (every variant), ``GRU``, ``RNN`` or a whole
``SequenceModel`` and, by default, verifies it in onnxruntime against the PyTorch model
(``export_attention_lm`` an ``AttentionLM``, its attention block's keys and values carried as state;
``export_memory`` a ``MemoryLSTM``, the NTM, its reads, head weightings and memory carried as state;
``export_handwriting`` a ``HandwritingNet``, Graves's handwriting network, its window carried as state);
``export_run(run_dir)`` does that for a trained run directory (``lstmkit export RUN_DIR``).
onnx and onnxruntime are optional: ``pip install "lstmkit[onnx]"``. See docs/deployment.md.
"""

from __future__ import annotations

from lstmkit.export._deps import MissingDependency
from lstmkit.export.attention_lm import export_attention_lm
from lstmkit.export.handwriting import export_handwriting
from lstmkit.export.memory import export_memory
from lstmkit.export.onnx_model import ExportVerificationError, OnnxExport, to_onnx, verify_onnx

__all__ = ["ExportVerificationError", "MissingDependency", "OnnxExport", "export_attention_lm", "export_handwriting",
           "export_memory", "to_onnx", "verify_onnx"]

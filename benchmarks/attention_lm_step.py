"""One generation step at batch 1 of a language model with SHA-RNN's attention block, in onnxruntime and PyTorch,
against the plain LSTM language model it extends.

Candidates (the default ``charlm`` sizes: 1 x 256 LSTM, embedding 64, 86 symbols; with the block, a memory of
``--memory`` steps held full, as in a long generation):

- ``plain, onnxruntime``: the plain model's ``lstmkit export`` graph (the baseline of every ratio);
- ``attention, onnxruntime (cached keys/values)``: the attention model's graph (``lstmkit.export.attention_lm``),
  which carries the block's keys and values and projects only the new step's;
- ``attention, onnxruntime (memory recomputed)``: the same graph, the memory's keys and values recomputed
  before each step (LayerNorm and the two projections of its M rows, in PyTorch), which is what carrying the raw
  memory instead of the cache costs (the graph's first form, session 38);
- ``attention, PyTorch forward``: ``AttentionLM.forward`` on one token with the carried state ``(h, c, memory)``
  (it recomputes the memory's keys and values every call);
- ``attention, lstmkit Stream.step`` and ``plain, lstmkit Stream.step``: ``lstmkit.Stream`` on each model, one
  token a call (the attention model's stream keeps its memory's keys and values cached, each stream its own).

Random weights at a trained scale (the timing does not depend on the values). One thread everywhere; the
candidates are interleaved (``_timing.interleaved``) and each is reported as the median over rounds of its time
over the baseline's in the same round.

    python benchmarks/attention_lm_step.py                   # about a minute
    python benchmarks/attention_lm_step.py --memory 256 --rounds 30
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from _timing import interleaved, ratio_table

from lstmkit.export import export_attention_lm, to_onnx
from lstmkit.models import AttentionLM, LMModel, SequenceModel
from lstmkit.stream import Stream
from lstmkit.train import ModelConfig

BASELINE = "plain, onnxruntime"


def models(memory: int) -> tuple[SequenceModel, AttentionLM]:
    torch.manual_seed(0)
    sizes = {"vocab_size": 86, "hidden_size": 256, "embedding_dim": 64, "num_layers": 1, "dropout": 0.0,
             "tie_weights": False}  # fmt: skip
    plain = SequenceModel(ModelConfig(**sizes)).eval()
    attention = AttentionLM(LMModel(**sizes, attention=True, attention_memory=memory)).eval()
    with torch.no_grad():
        for p in attention.block.parameters():
            p.add_(0.05 * torch.randn_like(p))  # the value and Boom branches start at zero
    return plain, attention


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, default=64, help="attention_memory, held full (charlm's default 64)")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain, attention = models(args.memory)
    M, H = args.memory, 256
    tmp = Path(tempfile.mkdtemp())
    to_onnx(plain, tmp / "plain.onnx")
    export_attention_lm(attention, tmp / "attention.onnx", verify=False)
    s_plain, s_att = session(tmp / "plain.onnx"), session(tmp / "attention.onnx")
    rng = np.random.default_rng(0)
    token = np.zeros((1, 1), np.int64)
    plain_feed = {"tokens": token, "h0": np.zeros((1, 1, H), np.float32), "c0": np.zeros((1, 1, H), np.float32)}
    memory = torch.tanh(torch.from_numpy(rng.standard_normal((M, 1, H)).astype(np.float32)))
    with torch.inference_mode():
        keys, values = attention.block.key(attention.block.norm_kv(memory)), attention.block.value(
            attention.block.norm_kv(memory))  # fmt: skip
    att_feed = {**plain_feed, "keys": keys.numpy(), "values": values.numpy()}
    state = (torch.zeros(1, 1, H), torch.zeros(1, 1, H), memory)
    token_t = torch.zeros(1, 1, dtype=torch.int64)

    def recomputed() -> None:
        with torch.inference_mode():
            normed = attention.block.norm_kv(memory)
            feed = {**plain_feed, "keys": attention.block.key(normed).numpy(),
                    "values": attention.block.value(normed).numpy()}  # fmt: skip
        s_att.run(None, feed)

    def torch_forward() -> None:
        with torch.inference_mode():
            attention(token_t, state)

    stream_att, stream_plain = Stream(attention), Stream(plain)
    stream_att.state = state  # the memory full, as in a long generation
    token_1 = torch.zeros(1, dtype=torch.int64)
    candidates = {
        BASELINE: lambda: s_plain.run(None, plain_feed),
        "attention, onnxruntime (cached keys/values)": lambda: s_att.run(None, att_feed),
        "attention, onnxruntime (memory recomputed)": recomputed,
        "attention, PyTorch forward": torch_forward,
        "attention, lstmkit Stream.step": lambda: stream_att.step(token_1),
        "plain, lstmkit Stream.step": lambda: stream_plain.step(token_1),
    }
    times = interleaved(candidates, repeats=args.rounds)
    note = f"charlm sizes (1 x 256, embedding 64, 86 symbols), memory {M} steps held full, batch 1, one thread"
    print("\n".join(ratio_table(times, BASELINE, note)))

if __name__ == "__main__":
    main()

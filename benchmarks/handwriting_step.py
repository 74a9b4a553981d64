"""One writing step of Graves's handwriting network at batch 1 (one pen point in, the next point's mixture out, the
state carried): the exported graph in onnxruntime against the PyTorch model as ``HandwritingNet.sample`` steps it.

Candidates (``handwriting-gen``'s default sizes: 3 layers of 200, a window of 10 Gaussians over a text of
``--text`` symbols of 75, 20 mixtures; random weights, the timing does not depend on the values):

- ``PyTorch forward``: ``HandwritingNet.forward`` on one point with the carried ``HandwritingState`` (what
  ``sample`` and ``lstmkit write`` call per point; the baseline of every ratio);
- (synthesis only) ``PyTorch, reference window``: the same with ``model.window_impl = "reference"``, the first
  layer stepped through torch operations (the only path before session 41), and ``PyTorch, fused window``: the
  first layer as one Function at any number of points (``HandwritingNet`` itself runs it from
  ``WINDOW_FUSED_MIN_STEPS`` points a call, the reference step below that);
- ``onnxruntime``: the ``lstmkit.export.export_handwriting`` graph on one point with its state inputs.

One thread everywhere; the candidates interleaved (``_timing.interleaved``), each reported as the median over rounds
of its time over the baseline's in the same round.

    python benchmarks/handwriting_step.py                   # under a minute
    python benchmarks/handwriting_step.py --unconditional
    python benchmarks/handwriting_step.py --points 4        # calls of 4 points (T = 4) instead of one
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from _timing import interleaved, ratio_table

from lstmkit.export import export_handwriting
from lstmkit.export.handwriting import random_inputs
from lstmkit.models import handwriting
from lstmkit.models.handwriting import HandwritingModel, HandwritingNet, HandwritingState

BASELINE = "PyTorch forward"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", type=int, default=40, help="symbols of the text the window reads (U)")
    parser.add_argument("--unconditional", action="store_true", help="the prediction network (no window)")
    parser.add_argument("--points", type=int, default=1, help="points a call reads (T; sampling reads one)")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    conditional = not args.unconditional
    model = HandwritingNet(HandwritingModel(hidden_size=200, num_layers=3, conditional=conditional,
                                            alphabet_size=75 if conditional else None)).eval()  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "handwriting.onnx"
    export_handwriting(model, path, verify=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = random_inputs(model, args.points, 1, args.text, before=20, seed=0)  # T points, a state 20 points in
    feeds = {k: v.numpy() for k, v in inputs.items()}
    h0, c0 = inputs["h0"], inputs["c0"]
    state = HandwritingState([(h0[k], c0[k]) for k in range(h0.shape[0])], inputs.get("kappa0"), inputs.get("w0"))
    text, lengths = inputs.get("text"), inputs.get("text_lengths")

    def torch_step() -> None:
        with torch.no_grad():
            model(inputs["points"], text, lengths, state)

    def ort_step() -> None:
        session.run(None, feeds)

    candidates = {BASELINE: torch_step, "onnxruntime": ort_step}
    if conditional:
        reference = copy.deepcopy(model)
        reference.config = dataclasses.replace(reference.config, window_impl="reference")

        def reference_step() -> None:
            with torch.no_grad():
                reference(inputs["points"], text, lengths, state)

        def fused_step() -> None:
            fused_from = handwriting.WINDOW_FUSED_MIN_STEPS
            handwriting.WINDOW_FUSED_MIN_STEPS = 1
            try:
                with torch.no_grad():
                    model(inputs["points"], text, lengths, state)
            finally:
                handwriting.WINDOW_FUSED_MIN_STEPS = fused_from

        candidates["PyTorch, reference window"] = reference_step
        candidates["PyTorch, fused window"] = fused_step
    times = interleaved(candidates, args.rounds)
    kind = f"synthesis, a text of {args.text} symbols" if conditional else "prediction (unconditional)"
    note = f"a call of {args.points} point(s) at batch 1, {kind}; 3 x 200 LSTM, one thread"
    for line in ratio_table(times, BASELINE, note, digits=3):
        print(line)


if __name__ == "__main__":
    main()

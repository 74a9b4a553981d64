"""The float32 bound the ONNX export verifies task models against, beside the outputs it must tell apart.

For each model: the verification tolerance (``lstmkit.export.onnx_model.verification_tolerance``, twice one
evaluation's bound), the largest |output|, and how far float32 PyTorch is from the same model in float64, at the
export's verification shapes. A tolerance near the outputs' size checks nothing. Models: the runs given (one
member of an ensemble or committee, and the whole), and random models of the tests' trained-weight scale.

    python benchmarks/export_bounds.py --synthetic
    python benchmarks/export_bounds.py runs/select/ArrowHead-0/candidates/bilstm ...

Only functions that predate the autograd bound (lstmkit.export._spots) are used, so the same command at an
older commit prints the old bound (``git checkout 0f46dbc -- src && python benchmarks/export_bounds.py ...``).
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from lstmkit.export.onnx_model import random_inputs, run_torch, verification_tolerance
from lstmkit.models import ClassifyModel, FCNClassifier, SequenceClassifier
from lstmkit.tasks.ctc import CTCModel, CTCRecognizer
from lstmkit.tasks.forecast import ForecastModel, ForecastNet
from lstmkit.tasks.rundir import open_run

SHAPES = ((28, 3), (9, 3))  # (T, B): a framed UCR case's length, and the export's own longest verification shape


def trained_scale(model: nn.Module, seed: int, scale: float = 0.15) -> nn.Module:
    """Every parameter drawn from N(0, scale^2): a trained layer's size, so that the gates do not all saturate."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def synthetic() -> dict[str, nn.Module]:
    torch.manual_seed(0)  # the LSTM-FCN keeps torch's own initialisation
    lstm_fcn = FCNClassifier(ClassifyModel(input_size=2, output_size=4, hidden_size=8, num_layers=1, dropout=0.0,
                                           arch="lstm-fcn", bidirectional=False, max_length=150)).eval()
    return {
        "classify biLSTM 2 x 64, 9 features": trained_scale(SequenceClassifier(ClassifyModel(
            input_size=9, output_size=3, hidden_size=64, num_layers=2, dropout=0.0, bidirectional=True)), 5),
        "classify LSTM-FCN 128-256-128 (default init)": lstm_fcn,
        "forecast 2 x 32, AR(4)": trained_scale(ForecastNet(ForecastModel(
            input_size=1, output_size=1, hidden_size=32, num_layers=2, dropout=0.0), 4), 1),
        "ctc biLSTM 2 x 32, 13 symbols": trained_scale(CTCRecognizer(CTCModel(
            input_size=6, output_size=12, hidden_size=32, num_layers=2, dropout=0.0, bidirectional=True)), 6),
    }  # fmt: skip


def report(name: str, model: nn.Module) -> None:
    for T, B in SHAPES:
        inputs = random_inputs(model, T, B, lengths=True, seed=0)  # task models: lengths where they take them
        tol, _ = verification_tolerance(model, inputs)
        got = run_torch(model, inputs)
        exact = run_torch(copy.deepcopy(model).double(),
                          {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})  # fmt: skip
        out = next(iter(got))  # logits, forecast or log_probs
        size = float(got[out].abs().max())
        err = float((got[out].double() - exact[out]).abs().max())
        print(f"| {name} | {T} x {B} | {tol:.3g} | {out} {size:.3g} | {tol / size:.2g} | {err:.2g} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run directories (lstmkit train or select's candidates)")
    parser.add_argument("--synthetic", action="store_true", help="also the random models of the tests' sizes")
    args = parser.parse_args(argv)
    print("| model | T x B | tolerance | largest output | tolerance / output | float32 - float64 |")
    print("|---|---|---:|---|---:|---:|")
    for path in args.runs:
        run = open_run(path)
        model = run.load_weights(run.task.build_model(run.config)).eval()
        members = getattr(model, "members", None)
        if members is not None:
            report(f"{path}, member 0", members[0])
        report(str(path), model)
    if args.synthetic:
        for name, model in synthetic().items():
            report(name, model)


if __name__ == "__main__":
    main()

"""The exported NTM against its PyTorch model on the run's own test split, and the time of a whole sequence.

For an ``ntm-copy`` or ``ntm-recall`` run (``model.kind = "ntm"``): exports the model (``lstmkit.export.memory``,
its verification included) to a temporary file, then runs onnxruntime, from the start the file's metadata gives
(``start_inputs``: numpy only, as a server would), and PyTorch over every test sequence. Per test size: the mean
bits wrong and the share of sequences all right by each, the largest logit difference and the largest logit
(PyTorch's, at the answered steps); for the first
``--cases`` sequences of each size also the largest share of its derived float32 bound (``bounds``, one
evaluation's; the export's check allows twice it) that the difference takes. Then one whole test sequence of each
size at batch 1, one thread each, interleaved (``_timing.interleaved``): onnxruntime against PyTorch's eager model.

    python benchmarks/ntm_onnx.py runs/ntm-copy-0              # a minute or two
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from _timing import interleaved, machine_description, median, paired_ratios, quartiles

from lstmkit.export import memory as X
from lstmkit.tasks.rundir import open_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an ntm-copy or ntm-recall run directory with model.kind = 'ntm'")
    parser.add_argument("--cases", type=int, default=2, help="sequences of each size whose bound is derived")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = open_run(args.run)
    model = run.load_weights(run.task.build_model(run.config)).eval()
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    result = X.export_memory(model, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    start = json.loads(session.get_modelmeta().custom_metadata_map[X.START_KEY])
    print(f"# python benchmarks/ntm_onnx.py {args.run}")
    print(f"# {machine_description()}")
    print(f"# export verified: largest difference {result.max_abs_error:.2g}")
    batches = run.task.eval_batches(run.config, "test")
    by_size: dict[int, list] = {}
    for batch in batches:
        got = session.run(["logits"], {"features": batch.x.numpy(), **X.start_inputs(start, batch.x.shape[1])})[0]
        with torch.no_grad():
            want = model(batch.x)[0]
        scores = [run.task.per_sequence(out, batch) for out in (torch.from_numpy(got), want)]
        mask = batch.mask.unsqueeze(-1).numpy()
        diff = np.abs(got - want.numpy()) * mask  # (T, B, O): the answered steps
        for i, size in enumerate(batch.sizes.tolist()):
            largest = float((want.abs().numpy() * mask)[:, i].max())
            by_size.setdefault(size, []).append((scores[0]["bit_errors"][i], scores[0]["success"][i],
                                                 scores[1]["bit_errors"][i], scores[1]["success"][i],
                                                 float(diff[:, i].max()), batch, i, largest))  # fmt: skip
    print("| size | sequences | bits wrong, onnxruntime (all right) | bits wrong, PyTorch (all right) | largest "
          "logit difference | largest difference / bound (first cases) | largest answered logit |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    firsts = {}
    for size, rows in sorted(by_size.items()):
        n = len(rows)
        ort_bits, ort_ok, pt_bits, pt_ok = (sum(float(r[k]) for r in rows) / n for k in range(4))
        share = 0.0
        for _, _, _, _, _, batch, i, _ in rows[: args.cases]:
            x = batch.x[:, i : i + 1]
            inputs = {"features": x, **{k: torch.from_numpy(v) for k, v in X.start_inputs(start, 1).items()}}
            bound = X.bounds(model, inputs, outputs=("logits",))["logits"].numpy()
            got = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})[0]
            with torch.no_grad():
                want = model(x)[0].numpy()
            share = max(share, float((np.abs(got - want) / bound).max()))
            firsts.setdefault(size, x)
        print(f"| {size} | {n} | {ort_bits:.2f} ({100 * ort_ok:.1f}%) | {pt_bits:.2f} ({100 * pt_ok:.1f}%) | "
              f"{max(r[4] for r in rows):.2g} | {share:.3f} | {max(r[7] for r in rows):.1f} |")
    print("| size (T steps) | PyTorch, eager (ms) | onnxruntime (ms) | onnxruntime / PyTorch [IQR] |")
    print("|---|---:|---:|---|")
    for size, x in firsts.items():
        feeds = {"features": x.numpy(), **X.start_inputs(start, 1)}

        def torch_run(x=x) -> None:
            with torch.no_grad():
                model(x)

        def ort_run(feeds=feeds) -> None:
            session.run(["logits"], feeds)

        times = interleaved({"torch": torch_run, "ort": ort_run}, args.rounds)
        ratios = paired_ratios(times["ort"], times["torch"])
        lo, hi = quartiles(ratios)
        print(f"| {size} ({x.shape[0]}) | {1e3 * median(times['torch']):.2f} | {1e3 * median(times['ort']):.2f} | "
              f"{median(ratios):.2f} [{lo:.2f}, {hi:.2f}] |")


if __name__ == "__main__":
    main()

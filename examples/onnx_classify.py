"""Classify time series with an exported `classify` run, using onnxruntime and numpy only.

No lstmkit and no torch: the ONNX file holds the weights, and its metadata the class names and the
preprocessing the task applied before the network.

    lstmkit train --task classify --set data.dataset=JapaneseVowels --out runs/jv
    lstmkit export runs/jv                          # writes runs/jv/model.onnx, checked in onnxruntime
    python examples/onnx_classify.py runs/jv case1.csv case2.csv

Each CSV file is one case: a row per time step, a column per channel, no header. All cases go
through the model in one padded batch with their lengths.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort


def preprocess(case: np.ndarray, spec: dict) -> np.ndarray:
    """A raw (T, C) case -> the network's (T', C') input, as the classify task prepares its cases."""
    if spec["differences"]:  # the channels, then their first differences (0 at the first step)
        case = np.concatenate([case, np.diff(case, axis=0, prepend=case[:1])], axis=1)
    length = spec.get("length", 0)  # files exported before data.length existed read each case as long as it is
    if length and len(case) != length:  # linear interpolation along time, the first and last steps kept
        src = np.linspace(0.0, 1.0, len(case)) if len(case) > 1 else np.zeros(1)
        dst = np.linspace(0.0, 1.0, length)
        case = np.stack([np.interp(dst, src, case[:, c]) for c in range(case.shape[1])], axis=1)
    pool = spec.get("pool", 1)  # files exported before data.pool existed read every step
    if pool > 1:  # each run of pool steps averaged into one, the last run over the steps left
        starts = np.arange(0, len(case), pool)
        case = np.add.reduceat(case, starts, axis=0) / np.minimum(pool, len(case) - starts)[:, None]
    mode = spec.get("normalize", "global")  # files exported before data.normalize existed scale globally
    if mode != "global":  # each channel z-scored over the case's own steps (a constant channel: 0)
        mean, std = case.mean(axis=0), case.std(axis=0)
        shape = (case - mean) / np.where(std > 0, std, 1.0)
        if mode == "case+level":  # then per channel the case's mean and log(std + 1e-8), constant over the steps
            levels = np.concatenate([mean, np.log(std + 1e-8)])[None, :]
            shape = np.concatenate([shape, np.repeat(levels, len(case), axis=0)], axis=1)
        case = shape
    case = (case - np.asarray(spec["mean"])) / np.asarray(spec["std"])
    frame = spec["frame"]
    if frame > 1:  # frame consecutive steps side by side; the last frame repeats the last step
        n = -(-len(case) // frame)
        case = np.concatenate([case, np.repeat(case[-1:], n * frame - len(case), axis=0)])
        case = case.reshape(n, frame * case.shape[1])
    return case.astype(np.float32)


def classify(model: str | Path, cases: list[np.ndarray]) -> list[tuple[str, float]]:
    """The likeliest class of each raw (T, C) case and its probability."""
    path = Path(model)
    if path.is_dir():
        path = path / "model.onnx"  # a run directory: `lstmkit export`'s default file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "lstmkit.classes" not in meta:
        raise SystemExit(f"{path} has no class names in its metadata: export a classify run with `lstmkit export`")
    classes, spec = json.loads(meta["lstmkit.classes"]), json.loads(meta["lstmkit.preprocess"])
    xs = [preprocess(c, spec) for c in cases]
    lengths = np.array([len(x) for x in xs], np.int64)
    batch = np.zeros((lengths.max(), len(xs), xs[0].shape[1]), np.float32)  # (T, B, C), zero padding
    for b, x in enumerate(xs):
        batch[: len(x), b] = x
    (probs,) = session.run(["probabilities"], {"features": batch, "lengths": lengths})  # (B, K)
    return [(classes[k], float(p[k])) for p, k in zip(probs, probs.argmax(axis=1), strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an exported classify run directory, or its .onnx file")
    parser.add_argument("cases", nargs="+", help="CSV files, one case each: rows are steps, columns channels")
    args = parser.parse_args()
    cases = [np.loadtxt(f, delimiter=",", ndmin=2) for f in args.cases]
    for f, (label, p) in zip(args.cases, classify(args.model, cases), strict=True):
        print(f"{f}\t{label}\t{p:.3f}")


if __name__ == "__main__":
    main()

"""PyTorch's own examples, unchanged, with lstmkit's layers swapped in: the drop-in claim checked on code we did
not write.

Two examples of https://github.com/pytorch/examples use torch.nn's LSTM layers:

- ``word_language_model`` (``nn.LSTM``: a 2-layer word LM trained with SGD, gradient clipping, dropout between the
  layers, the whole model saved with ``torch.save`` and loaded back with ``torch.load``'s allowlist; then its
  ``generate.py`` loads the saved model again and samples words);
- ``time_sequence_prediction`` (two ``nn.LSTMCell``, float64, LBFGS on sine waves).

Each runs twice from a copy of its folder (its files are written there, never into the checkout): as it is, and
with ``torch.nn.LSTM`` / ``torch.nn.LSTMCell`` replaced by ``lstmkit.LSTM`` / ``lstmkit.LSTMCell`` before its code
runs, plus lstmkit's classes added to ``torch.load``'s allowlist (the one line docs/deployment.md asks of any
whole-model load). Both runs start from the same seed (the examples seed themselves), so they see the same
weights, batches and dropout masks: their printed losses must agree to float rounding at first and drift apart only
as the rounding differences grow. The report puts them side by side, with the examples' own timings.

Run (``--examples``: a checkout of pytorch/examples; ``--data``: a folder with train.txt, valid.txt and test.txt,
by default the checkout's ``word_language_model/data/wikitext-2``):

    git clone https://github.com/pytorch/examples /tmp/pytorch-examples
    python benchmarks/torch_examples.py --examples /tmp/pytorch-examples --out runs/torch-examples

Both examples need torch only (and matplotlib for the sine plots). The sine example's ``torch.load`` of its own
NumPy data fails under torch >= 2.6's ``weights_only`` default; both of its runs allow NumPy's array
reconstruction for it (the data file is the one the example's generator has just written).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

LAYERS = ("torch.nn", "lstmkit")
TIMES = ("ms/batch",)  # figures compared as a ratio, not a difference

# Run first in the example's process: the swap (for "lstmkit"), the NumPy allowlist the sine example's data needs
# under torch >= 2.6 (for both), then the example's script as __main__ with its own arguments.
BOOT = """
import runpy, sys
import numpy as np
import torch
layer, script, *args = sys.argv[1:]
if layer == "lstmkit":
    import lstmkit
    torch.nn.LSTM, torch.nn.LSTMCell = lstmkit.LSTM, lstmkit.LSTMCell
    torch.serialization.add_safe_globals(lstmkit.safe_globals())
core = np._core if hasattr(np, "_core") else np.core  # NumPy 2 renamed numpy.core, where pickles point
torch.serialization.add_safe_globals([core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.float64))])
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""

NUMBER = r"([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)"


def run_example(folder: Path, work: Path, layer: str, script: str, args: list[str], threads: int) -> tuple[str, float]:
    """Copy the example's Python files into ``work`` and run ``script`` there with ``layer``'s LSTM; return its
    output and wall time. A failed run raises with its output's end."""
    work.mkdir(parents=True, exist_ok=True)
    for source in folder.glob("*.py"):
        shutil.copy2(source, work / source.name)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BOOT, layer, script, *args], cwd=work, env=env,
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    (work / f"{Path(script).stem}.log").write_text(output)
    if done.returncode != 0:
        raise RuntimeError(f"{folder.name}/{script} with {layer} failed (exit {done.returncode}):\n{output[-3000:]}")
    return done.stdout, seconds


def word_lm_numbers(output: str) -> dict[str, list[float]]:
    """The word LM's printed training losses (one per log interval), ms per batch, validation and test losses."""
    return {
        "train": [float(x) for x in re.findall(rf"batches \|.*?\| loss\s+{NUMBER}", output)],
        "ms/batch": [float(x) for x in re.findall(rf"ms/batch\s+{NUMBER}", output)],
        "valid": [float(x) for x in re.findall(rf"valid loss\s+{NUMBER}", output)],
        "test": [float(x) for x in re.findall(rf"test loss\s+{NUMBER}", output)],
    }


def sine_numbers(output: str) -> dict[str, list[float]]:
    """The sine example's losses: every LBFGS closure evaluation's, and the test loss after each step."""
    return {
        "train": [float(x) for x in re.findall(rf"^loss: {NUMBER}$", output, flags=re.M)],
        "test": [float(x) for x in re.findall(rf"^test loss: {NUMBER}$", output, flags=re.M)],
    }


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def side_by_side(name: str, runs: dict[str, dict[str, list[float]]], keys: list[str], seconds: dict[str, float],
                 digits: int) -> list[str]:  # fmt: skip
    """A Markdown table per example: each printed figure of both runs and their relative difference (for times,
    lstmkit's over torch.nn's)."""
    lines = [f"### {name}", "", "| figure | torch.nn | lstmkit | relative difference |", "|---|---:|---:|---:|"]
    for key in keys:
        ours, theirs = runs["lstmkit"][key], runs["torch.nn"][key]
        if len(ours) != len(theirs):
            raise RuntimeError(f"{name}: the runs printed {len(theirs)} and {len(ours)} '{key}' figures")
        for i, (t, o) in enumerate(zip(theirs, ours, strict=True)):
            last = f"ratio {o / t:.2f}" if key in TIMES else f"{relative(t, o):.1e}"
            lines.append(f"| {key} {i + 1} | {t:.{digits}g} | {o:.{digits}g} | {last} |")
    lines.append(f"| wall time (s) | {seconds['torch.nn']:.1f} | {seconds['lstmkit']:.1f} | "
                 f"ratio {seconds['lstmkit'] / seconds['torch.nn']:.2f} |")  # fmt: skip
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, required=True, help="a checkout of github.com/pytorch/examples")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="train.txt, valid.txt, test.txt for the word LM (default: the "
                        "checkout's word_language_model/data/wikitext-2)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=1, help="word LM epochs")
    parser.add_argument("--steps", type=int, default=3, help="LBFGS steps of the sine example")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of each run")
    args = parser.parse_args()
    if args.epochs < 1 or args.steps < 1 or args.threads < 1:
        parser.error("--epochs, --steps and --threads must be >= 1")
    word_lm, sine = args.examples / "word_language_model", args.examples / "time_sequence_prediction"
    data = (args.data or word_lm / "data" / "wikitext-2").resolve()
    for path in (word_lm / "main.py", sine / "train.py", sine / "generate_sine_wave.py",
                 *(data / f"{split}.txt" for split in ("train", "valid", "test"))):  # fmt: skip
        if not path.is_file():
            sys.exit(f"{path} is missing: --examples must be a checkout of github.com/pytorch/examples, and --data a "
                     "folder with train.txt, valid.txt and test.txt")  # fmt: skip

    report = [f"# PyTorch's examples with lstmkit swapped in ({args.examples.resolve()})", ""]
    numbers, seconds = {}, {}
    for layer in LAYERS:
        out, seconds[layer] = run_example(word_lm, args.out / layer / "word_language_model", layer, "main.py",
                                          ["--data", str(data), "--epochs", str(args.epochs), "--log-interval", "50"],
                                          args.threads)  # fmt: skip
        numbers[layer] = word_lm_numbers(out)
        print(f"word_language_model, {layer}: {seconds[layer]:.1f} s", flush=True)
        # generate.py loads the saved model (the whole module, through torch.load's allowlist) and samples from it
        run_example(word_lm, args.out / layer / "word_language_model", layer, "generate.py",
                    ["--data", str(data), "--words", "100", "--outf", "generated.txt"], args.threads)  # fmt: skip
    report += side_by_side(f"word_language_model ({data}, {args.epochs} epoch(s))", numbers,
                           ["train", "valid", "test", "ms/batch"], seconds, 6)  # fmt: skip
    report += ["generate.py (the saved model loaded back, 100 words sampled) ran with both layers.", ""]
    for layer in LAYERS:
        work = args.out / layer / "time_sequence_prediction"
        run_example(sine, work, layer, "generate_sine_wave.py", [], args.threads)
        out, seconds[layer] = run_example(sine, work, layer, "train.py", ["--steps", str(args.steps)], args.threads)
        numbers[layer] = sine_numbers(out)
        print(f"time_sequence_prediction, {layer}: {seconds[layer]:.1f} s", flush=True)
    report += side_by_side(f"time_sequence_prediction ({args.steps} LBFGS steps, float64)", numbers,
                           ["train", "test"], seconds, 12)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()

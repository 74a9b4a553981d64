"""Decoding speed of a trained sequence-to-sequence run: sequences per second, greedy and beam 5.

Candidates, on the first B sources of the run's test split (B = 1 and 64 by default):

- ``greedy``: ``lstmkit.models.greedy`` (PyTorch);
- ``beam 5``: ``lstmkit.models.beam_search`` with width 5 (PyTorch, all B x 5 beams in one call per step);
- ``beam 5, onnxruntime``: ``examples/onnx_translate.py``'s numpy beam search over the exported graphs
  (only when ``lstmkit export RUN_DIR`` has written them).

Every candidate runs one thread (``--threads``). The machine is shared, so the candidates are
interleaved (``_timing.interleaved``: one sample of each per round, the order rotating) and each
speed is B / the median time per call; the report also gives each candidate's median ratio to
greedy in the same rounds, which load that comes and goes affects least. Run with the load of the
moment stated (the report prints ``os.getloadavg``).

    python benchmarks/seq2seq_decode.py runs/g2p                 # about a minute
    python benchmarks/seq2seq_decode.py runs/dates --batch 1 64 256 --rounds 7 --out decode.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved, machine_description, median, paired_ratios

from lstmkit.models import beam_search, greedy
from lstmkit.tasks.rundir import open_run
from lstmkit.tasks.seq2seq.data import source_batches

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_translate.py"


def _translator(run_dir: Path):
    if not (run_dir / "model.encoder.onnx").is_file():
        return None
    spec = importlib.util.spec_from_file_location("onnx_translate", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Translator(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per batch size, at most")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = open_run(args.run_dir)
    model, source, _ = run.task.load_run(run)
    texts = [p.source for p in run.task.prepare(run.config).pairs["test"]]
    translator = _translator(args.run_dir)
    lines = [f"# seq2seq decoding: {args.run_dir} ({run.task.name}, attention {run.config.model.attention}, "
             f"H={run.config.model.hidden_size}, L={run.config.model.num_layers})", "",
             f"machine: {machine_description()}; threads {args.threads}; load average before: "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", "",
             "| B | candidate | sequences/s | time per call (ms) | ratio to greedy (median of rounds) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for B in args.batch:
        batch = texts[:B]
        src, lengths, _ = source_batches(batch, source)
        candidates = {
            "greedy": lambda src=src, lengths=lengths: greedy(model, src, lengths),
            "beam 5": lambda src=src, lengths=lengths: beam_search(model, src, lengths, beam_size=5),
        }
        if translator is not None:
            ids = [translator.encode_text(t) for t in batch]
            candidates["beam 5, onnxruntime"] = lambda ids=ids: translator.beam_search(ids, beam_size=5)
        with torch.inference_mode():
            times = interleaved(candidates, args.rounds, time_limit=args.time_limit)
        for name, ts in times.items():
            t = median(ts)
            ratio = median(paired_ratios(ts, times["greedy"]))
            lines.append(f"| {len(batch)} | {name} | {len(batch) / t:.1f} | {1000 * t:.1f} | {ratio:.2f} |")
    lines += ["", f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

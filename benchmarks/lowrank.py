"""Low-rank scan benchmark: where two thin products per step beat the dense recurrent product.

For each hidden size H (I = H, T = 100, one layer, one thread) and batch size B, a float
lstmkit.LSTM is timed in inference against copies factorised by ``lstmkit.formats.lowrank`` at
several ranks R (W_ih and W_hh; each factorised matrix costs R (4H + H) multiply-adds a step
instead of 4H * H, so the FLOPs break even at R = 0.8 H). Interleaved rounds; each cell is the
median over rounds of (dense time) / (low-rank time): above 1 the factors are faster.

    python benchmarks/lowrank.py                          # H = 256, 512; B = 1, 16
    python benchmarks/lowrank.py --hidden 512 --batch 1 --ranks 32,64,128,256,384
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

import torch
from _timing import emit_report, interleaved, machine_description, median, paired_ratios

import lstmkit
from lstmkit.formats.lowrank import lowrank_model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", default="256,512")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--ranks", default="16,32,64,128,192,256", help="ranks R (those >= the matrix's size skipped)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        sizes, batches, ranks = ([int(v) for v in a.split(",")] for a in (args.hidden, args.batch, args.ranks))
    except ValueError:
        ap.error("--hidden, --batch and --ranks take comma lists of integers")
    torch.set_num_threads(1)
    lines = [
        "# Low-rank scan benchmark", "",
        f"Command: `python {shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])}`", "",
        f"Machine: {machine_description()}. One thread, T = 100, inference; {args.rounds} interleaved rounds. "
        "Cells: dense time / low-rank time (above 1: the factors are faster); dense ms in the second column.", "",
        "| H | B | dense ms | " + " | ".join(f"R={r}" for r in ranks) + " |",
        "|---:|---:|---:|" + "---:|" * len(ranks),
    ]  # fmt: skip
    for H in sizes:
        for B in batches:
            torch.manual_seed(0)
            dense = lstmkit.LSTM(H, H).eval()
            x = torch.randn(100, B, H)  # (T, B, I)
            fns = {}

            def run(m, x=x):
                def go() -> None:
                    with torch.inference_mode():
                        m(x)

                return go

            fns["dense"] = run(dense)
            for r in ranks:
                if r >= H:
                    continue
                m = copy.deepcopy(dense)
                lowrank_model(m, rank=r)
                fns[f"R={r}"] = run(m)
            t = interleaved(fns, args.rounds, warmup=1, min_time=0.05)
            cells = [f"{median(paired_ratios(t['dense'], t[f'R={r}'])):.2f}" if f"R={r}" in t else "–" for r in ranks]
            lines.append(f"| {H} | {B} | {1e3 * median(t['dense']):.2f} | " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr, flush=True)
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()

"""One NTM training step (forward, backward, Adam) at the copy task's sizes: the eager cell against
``model.compile`` (``torch.compile`` of the step), and the plain LSTM of the same parameter count as context.

Sizes: ``ntm-copy``'s defaults (a 100-unit controller, 128 slots of 20, one read and one write head; 10 inputs,
8 outputs), batch 32, T = 42 steps (a copy of 20 vectors: 20 shown, a delimiter, 20 answered, and one more).
One thread; the candidates interleaved (``_timing.interleaved``), each reported as the median over rounds of its
time over the eager NTM's in the same round. The compilation (tens of seconds) happens before the timing.

    python benchmarks/ntm_step.py             # about two minutes
"""

from __future__ import annotations

import argparse
import time

import torch
from _timing import interleaved, ratio_table

from lstmkit.models.memory import MemoryLSTM, MemoryModel
from lstmkit.nn import LSTM

BASELINE = "NTM, eager"


def trainer(model: torch.nn.Module, x: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        y = model(x)[0]
        loss = y.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sizes = {"input_size": 10, "output_size": 8, "hidden_size": 100}
    x = torch.randn(42, 32, 10)
    eager, compiled = MemoryLSTM(MemoryModel(**sizes)), MemoryLSTM(MemoryModel(**sizes, compile=True))
    lstm = LSTM(10, 119)  # ntm-copy's baseline: 119 units, about the NTM's 63k parameters
    steps = {BASELINE: trainer(eager, x), "NTM, model.compile": trainer(compiled, x),
             "LSTM, 119 units": trainer(lstm, x)}  # fmt: skip
    t0 = time.perf_counter()
    for _ in range(3):
        steps["NTM, model.compile"]()  # the compilation: the first steps' graphs
    compile_s = time.perf_counter() - t0
    times = interleaved(steps, repeats=args.rounds)
    note = f"ntm-copy sizes, batch 32, T = 42, one thread; the compiled step's first 3 calls took {compile_s:.0f} s"
    print("\n".join(ratio_table(times, BASELINE, note, digits=1)))

if __name__ == "__main__":
    main()

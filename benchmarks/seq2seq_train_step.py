"""Cost of one training step of a sequence-to-sequence task: CPU seconds per step on one thread.

Builds the task's model and training batches from its default config with ``--set`` overrides, runs
2 warm-up steps, then ``--rounds`` rounds of the same ``--steps`` batches (forward with the task's
step, backward, AdamW) and reports the fastest round's CPU time per step (``time.process_time``:
the process's own CPU time, which other jobs on a shared machine change less than wall time), items
(target sequences) per second, and the epoch that makes at that rate.

Run it under another checkout's ``src`` to compare code versions on the same batches:

    python benchmarks/seq2seq_train_step.py --task g2p                                  # the defaults
    python benchmarks/seq2seq_train_step.py --task g2p --set model.hidden_size=256 --set model.num_layers=2 \\
        --set data.batch_size=64
    PYTHONPATH=/path/to/older/src python benchmarks/seq2seq_train_step.py --task g2p    # the same, older code
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from lstmkit.tasks.registry import get_task
from lstmkit.tasks.runner import build_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="g2p")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE, as lstmkit train")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    prepared = task.prepare(build_config(args.task, overrides=args.overrides))
    config = prepared.config
    torch.manual_seed(config.train.seed)
    model = task.build_model(config).train()
    data = task.training_data(prepared)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    batches = iter(data.train)
    warmup, timed = [next(batches) for _ in range(2)], [next(batches) for _ in range(args.steps)]

    def run(group) -> None:
        for batch in group:
            optimizer.zero_grad()
            data.step(model, batch, None)[0].backward()
            optimizer.step()

    run(warmup)
    rounds = []
    for _ in range(args.rounds):
        start = time.process_time()
        run(timed)
        rounds.append((time.process_time() - start) / args.steps)
    step_s = min(rounds)
    items = sum(int(b[1].numel()) for b in timed) / args.steps  # sequences per batch (src_lengths is (B,))
    m = config.model
    print(f"{args.task} H={m.hidden_size} L={m.num_layers} B={config.data.batch_size} attention={m.attention} "
          f"({sum(p.numel() for p in model.parameters()):,} parameters), {args.threads} thread(s): "
          f"{1000 * step_s:.0f} ms CPU per step (fastest of {args.rounds} rounds of {args.steps}), "
          f"{items / step_s:.0f} sequences/s, {len(data.train)} steps per epoch = {len(data.train) * step_s:.0f} s; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip


if __name__ == "__main__":
    main()

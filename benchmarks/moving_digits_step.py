"""One training step of `moving-digits`' ConvLSTM forecaster at its default sizes, by state-to-state kernel size.

What a step of the task's model costs (zero grads, forward over the 10 given and 10 predicted frames, binary
cross-entropy, backward, AdamW), timed interleaved in the same rounds for each ``--kernels`` value, and optionally
where the time goes (``--profile``: the operators of 3 steps at the first kernel size). The batch is random
near-binary frames of the task's shape (B = 8, 20 frames of 64 x 64); the data pipeline is not timed.

    OMP_NUM_THREADS=1 python benchmarks/moving_digits_step.py --threads 1 --kernels 5 3
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        OMP_NUM_THREADS=1 python benchmarks/moving_digits_step.py --threads 1 --kernels 5 3    # AVX2 kernels forced
    python benchmarks/moving_digits_step.py --kernels 5 --profile                               # 2 threads
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch
from _timing import interleaved, machine_description

from lstmkit.models import ConvForecaster, frame_loss
from lstmkit.tasks.registry import get_task


def step_fn(kernel: int, batch: torch.Tensor):
    config = get_task("moving-digits").default_config()
    torch.manual_seed(0)
    model = ConvForecaster(dataclasses.replace(config.model, kernel_size=kernel))
    opt = torch.optim.AdamW(model.parameters(), config.train.lr)
    given = config.data.input_frames

    def step() -> None:
        opt.zero_grad()
        frame_loss(model(batch[:given]), batch[given:], config.model.loss).backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--kernels", type=int, nargs="+", default=[5, 3])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import lstmkit.tasks  # noqa: F401  registers the tasks

    data = get_task("moving-digits").default_config().data
    g = torch.Generator().manual_seed(0)
    batch = (torch.rand(data.frames, data.batch_size, 1, data.canvas, data.canvas, generator=g) > 0.9).float()
    steps = {k: step_fn(k, batch) for k in a.kernels}
    times = interleaved({f"kernel {k}": fn for k, (fn, _) in steps.items()}, a.repeats)
    print(f"{machine_description()}; {a.threads} thread(s)")
    first = f"kernel {a.kernels[0]}"
    print(f"| kernel | parameters | step ms | x {first} (median of the rounds' ratios) |")
    print("|---:|---:|---:|---:|")
    for k, (_, n) in steps.items():
        t = times[f"kernel {k}"]
        ratio = statistics.median(b / c for b, c in zip(t, times[first], strict=True))
        print(f"| {k} | {n:,} | {1e3 * statistics.median(t):.0f} | {ratio:.2f} |")
    if a.profile:
        from torch.profiler import profile

        fn = steps[a.kernels[0]][0]
        with profile() as prof:
            for _ in range(3):
                fn()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()

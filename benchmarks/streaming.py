"""Streaming benchmark: the latency of one step at batch 1, lstmkit's Stream against native PyTorch and onnxruntime.

For each hidden size H (input size I = H, one layer, batch 1) it times one step of:

- ``lstmkit Stream.step``: ``lstmkit.stream.Stream`` over an ``lstmkit.LSTM``;
- ``lstmkit LSTM, T=1``: the layer's own forward on a one-step chunk (what the stream avoids);
- ``nn.LSTM, T=1``: native ``torch.nn.LSTM`` called one step at a time, state carried;
- ``nn.LSTMCell``: native ``torch.nn.LSTMCell`` (the baseline of every ratio);
- ``onnxruntime, run``: the model written by ``lstmkit.export.to_onnx`` (the ONNX LSTM operator),
  run by ``InferenceSession.run`` with numpy arrays, state carried;
- ``onnxruntime, IOBinding``: the same session with inputs and outputs bound once to preallocated
  numpy buffers (``run_with_iobinding``), the state ping-ponging between two buffer pairs, as a
  streaming server would run it.

All hold the same weights. The torch candidates run under ``torch.inference_mode``, and
every candidate uses the same number of threads (``--threads``, default 1: at batch 1 a step is a
matrix-vector product too small to share well, and our machines are shared).

The machine is noisy, so the candidates are interleaved: each round times ``--calls`` consecutive
single steps of every candidate (the order rotating from round to round), and each candidate's
ratio to ``nn.LSTMCell`` is the median over rounds of (its median step in the round) / (the
baseline's in the same round). Medians and 99th percentiles are over every timed step.

    python benchmarks/streaming.py                       # H = 128, 256, 512; about a minute
    python benchmarks/streaming.py --hidden 256 --rounds 50 --out stream.md
"""

from __future__ import annotations

import argparse
import gc
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _timing import machine_description

import lstmkit
from lstmkit.export import to_onnx
from lstmkit.stream import Stream

BASELINE = "nn.LSTMCell"


# --variant: lstmkit's model (Stream, forward and ONNX) gets these options; the native baselines stay
# plain LSTMs of the same size, so the ratios say what the variant costs against a plain native cell.
VARIANTS: dict[str, Callable[[int], dict[str, object]]] = {
    "plain": lambda H: {},
    "peephole": lambda H: {"peephole": True},
    "coupled": lambda H: {"coupled": True},
    "layer_norm": lambda H: {"layer_norm": True},
    "proj": lambda H: {"proj_size": H // 2},
}


def candidates(H: int, threads: int, workdir: Path, variant: str = "plain") -> dict[str, Callable[[], object]]:
    """One-step callables for every candidate at hidden size H, all with the same weights (plain variant)."""
    import onnxruntime as ort

    torch.manual_seed(0)
    native = torch.nn.LSTM(H, H).eval()
    ours = lstmkit.LSTM(H, H, **VARIANTS[variant](H)).eval()
    if variant == "plain":
        ours.load_state_dict(native.state_dict())
    P = ours.output_size
    cell = torch.nn.LSTMCell(H, H).eval()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in native.state_dict().items()})
    x = torch.randn(1, H)  # (B, I)

    stream = Stream(ours, batch_size=1)

    lstm_state: list = [None]
    ours_state: list = [None]
    cell_state = [(torch.zeros(1, H), torch.zeros(1, H))]
    x3 = x.unsqueeze(0)  # (T=1, B, I)

    def native_lstm() -> None:
        _, lstm_state[0] = native(x3, lstm_state[0])

    def ours_forward() -> None:
        _, ours_state[0] = ours(x3, ours_state[0])

    def native_cell() -> None:
        cell_state[0] = cell(x, cell_state[0])

    path = workdir / f"lstm_h{H}.onnx"
    to_onnx(ours, path)  # verified against the PyTorch model in onnxruntime
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"input": x3.numpy(), "h0": np.zeros((1, 1, P), np.float32), "c0": np.zeros((1, 1, H), np.float32)}

    def onnxruntime_step() -> None:
        _, feed["h0"], feed["c0"] = session.run(None, feed)

    # The same session with every input and output bound to preallocated numpy buffers: the state
    # ping-pongs between two pairs, so a step converts and allocates nothing.
    x_buf, y_buf = x3.numpy().copy(), np.zeros((1, 1, P), np.float32)
    states = [(np.zeros((1, 1, P), np.float32), np.zeros((1, 1, H), np.float32)) for _ in range(2)]
    bindings = []
    for k in range(2):
        io = session.io_binding()
        io.bind_cpu_input("input", x_buf)  # a new step's input is written into x_buf
        io.bind_cpu_input("h0", states[k][0])
        io.bind_cpu_input("c0", states[k][1])
        for name, buf in (("output", y_buf), ("hn", states[1 - k][0]), ("cn", states[1 - k][1])):
            io.bind_output(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
        bindings.append(io)
    turn = [0]
    buffers = (x_buf, y_buf, states)  # the bindings hold raw pointers: these must outlive them

    def onnxruntime_bound_step() -> None:
        assert buffers
        session.run_with_iobinding(bindings[turn[0]])
        turn[0] ^= 1

    return {
        "lstmkit Stream.step": lambda: stream.step(x),
        "lstmkit LSTM, T=1": ours_forward,
        "nn.LSTM, T=1": native_lstm,
        BASELINE: native_cell,
        "onnxruntime, run": onnxruntime_step,
        "onnxruntime, IOBinding": onnxruntime_bound_step,
    }


def measure(
    cands: dict[str, Callable[[], object]], rounds: int, calls: int, warmup: int
) -> dict[str, list[list[float]]]:
    """Per candidate, per round, the seconds of each of ``calls`` consecutive single steps."""
    names = list(cands)
    for name in names:
        for _ in range(warmup):
            cands[name]()
    out: dict[str, list[list[float]]] = {n: [] for n in names}
    clock = time.perf_counter_ns
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = cands[name]
            ts = []
            gc.disable()
            try:
                for _ in range(calls):
                    t0 = clock()
                    fn()
                    ts.append(clock() - t0)
            finally:
                gc.enable()
            out[name].append([t * 1e-9 for t in ts])
    return out


def summarize(times: dict[str, list[list[float]]]) -> dict[str, tuple[float, float, float, float, float]]:
    """Per candidate: (median s, p99 s, median ratio to the baseline, its first and third quartiles)."""
    base = [statistics.median(r) for r in times[BASELINE]]
    rows = {}
    for name, per_round in times.items():
        flat = np.concatenate([np.asarray(r) for r in per_round])
        ratios = [statistics.median(r) / b for r, b in zip(per_round, base, strict=True)]
        q1, q3 = np.percentile(ratios, [25, 75])
        rows[name] = (float(np.median(flat)), float(np.percentile(flat, 99)), statistics.median(ratios), q1, q3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", default="128,256,512", help="comma-separated hidden sizes (input size = H)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and onnxruntime")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="plain",
                        help="lstmkit's model variant (the native baselines stay plain)")
    parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=50, help="single steps timed per candidate per round")
    parser.add_argument("--warmup", type=int, default=200, help="untimed steps per candidate first")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args()
    sizes = [int(h) for h in args.hidden.split(",")]
    torch.set_num_threads(args.threads)

    lines = [
        "| H | candidate | median (µs) | p99 (µs) | time / nn.LSTMCell (median [IQR] over rounds) |",
        "|---|---|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for H in sizes:
            print(f"H = {H} ...", file=sys.stderr, flush=True)
            # Models are built as after training, outside inference mode.
            cands = candidates(H, args.threads, Path(tmp), args.variant)
            with torch.inference_mode():
                rows = summarize(measure(cands, args.rounds, args.calls, args.warmup))
            for name, (med, p99, ratio, q1, q3) in rows.items():
                lines.append(f"| {H} | {name} | {med * 1e6:.1f} | {p99 * 1e6:.1f} | {ratio:.2f} [{q1:.2f}, {q3:.2f}] |")
    command = "python benchmarks/streaming.py " + shlex.join(sys.argv[1:])
    report = "\n".join(
        [
            f"Batch 1, one layer, I = H, lstmkit variant {args.variant}, {args.threads} thread(s); "
            f"{args.rounds} rounds x {args.calls} steps per "
            "candidate, interleaved.",
            "",
            *lines,
            "",
            f"Machine: {machine_description()}.",
            f"onnxruntime {__import__('onnxruntime').__version__}. Command: `{command.strip()}`",
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

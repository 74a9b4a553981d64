"""int8 compute benchmark: an 8-bit quantised lstmkit.LSTM against the float layer and torch.ao.

For each hidden size H (I = H, one layer, batch 1, one thread) it times, interleaved:

- ``Stream.step``: one step of ``lstmkit.stream.Stream`` over the float layer, over the same layer
  quantised by ``lstmkit.formats.quantized.quantize_model(bits=8)`` (int8 compute, lstmkit.nn.int8),
  and ``torch.ao`` dynamic int8 (``quantize_dynamic`` of a ``torch.nn.LSTM`` holding the same float
  weights) called one step at a time with its state carried;
- ``sequence``: one forward over T = 256 steps of each of the three.

Each ratio is the median over rounds of (float time) / (other time) from the same round: above 1
means faster than lstmkit's float layer. Issue 19's targets: Stream.step >= 1.5x float and faster
than torch.ao at H = 256 and 512; the sequence >= 1.3x float.

    python benchmarks/int8.py                      # H = 256, 512; about a minute
    python benchmarks/int8.py --hidden 128,256,512,1024 --out int8.md
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import warnings
from pathlib import Path

import torch
from _timing import emit_report, interleaved, machine_description, median, paired_ratios

import lstmkit
from lstmkit.formats.quantized import quantize_model
from lstmkit.stream import Stream

T_SEQ = 256


def torch_ao_twin(layer: lstmkit.LSTM) -> torch.nn.Module:
    """torch.ao dynamic int8 of a torch.nn.LSTM holding ``layer``'s float weights."""
    twin = torch.nn.LSTM(layer.input_size, layer.hidden_size)
    twin.load_state_dict(layer.state_dict())
    with warnings.catch_warnings():  # torch.ao's note that it moves to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(twin), {torch.nn.LSTM},
                                                      dtype=torch.qint8)[0]  # fmt: skip


def bench(H: int, rounds: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    f = lstmkit.LSTM(H, H).eval()
    q = copy.deepcopy(f)
    quantize_model(q, 8)
    ao = torch_ao_twin(f)
    sf, sq = Stream(f), Stream(q)
    xs = torch.randn(T_SEQ, 1, H)  # (T, B, I)
    # Steps cycle through the sequence's inputs: one input repeated drives gates into saturation and
    # the state into subnormal floats, which slow every float product down several times.
    pos = {"float": 0, "int8": 0, "ao": 0}

    def nxt(who: str) -> torch.Tensor:
        pos[who] = (pos[who] + 1) % T_SEQ
        return xs[pos[who]]  # (B, I)

    ao_state: list = [None]

    def ao_step() -> None:
        with torch.inference_mode():
            _, ao_state[0] = ao(nxt("ao").unsqueeze(0), ao_state[0])

    def seq(m: torch.nn.Module):
        def run() -> None:
            with torch.inference_mode():
                m(xs)

        return run

    fns = {
        "step float": lambda: sf.step(nxt("float")), "step int8": lambda: sq.step(nxt("int8")),
        "step torch.ao": ao_step,
        "seq float": seq(f), "seq int8": seq(q), "seq torch.ao": seq(ao),
    }  # fmt: skip
    t = interleaved(fns, rounds, warmup=1, min_time=0.05)
    out = {}
    for kind in ("step", "seq"):
        base = t[f"{kind} float"]
        out[kind] = {name: median(t[f"{kind} {name}"]) for name in ("float", "int8", "torch.ao")}
        out[kind]["int8 x"] = median(paired_ratios(base, t[f"{kind} int8"]))
        out[kind]["torch.ao x"] = median(paired_ratios(base, t[f"{kind} torch.ao"]))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", default="256,512", help="comma list of H (default 256,512)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    args = ap.parse_args(argv)
    try:
        sizes = [int(h) for h in args.hidden.split(",")]
    except ValueError:
        ap.error(f"--hidden must be a comma list of integers, got {args.hidden!r}")
    torch.set_num_threads(1)
    lines = [
        "# int8 compute benchmark", "",
        f"Command: `python {shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])}`", "",
        f"Machine: {machine_description()}. One thread, batch 1; {args.rounds} interleaved rounds.", "",
        "| H | Stream.step float µs | int8 µs (x float) | torch.ao µs (x float) "
        f"| T={T_SEQ} float ms | int8 ms (x float) | torch.ao ms (x float) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for H in sizes:
        r = bench(H, args.rounds)
        s, q = r["step"], r["seq"]
        lines.append(
            f"| {H} | {1e6 * s['float']:.1f} | {1e6 * s['int8']:.1f} ({s['int8 x']:.2f}) "
            f"| {1e6 * s['torch.ao']:.1f} ({s['torch.ao x']:.2f}) | {1e3 * q['float']:.2f} "
            f"| {1e3 * q['int8']:.2f} ({q['int8 x']:.2f}) | {1e3 * q['torch.ao']:.2f} ({q['torch.ao x']:.2f}) |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()

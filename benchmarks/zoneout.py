"""What zoneout costs on the whole-sequence layer: ``lstmkit.LSTM(..., zoneout=p)`` on its default kernel (C++,
zoneout inside the time loops, forward and hand-written backward) and on its reference loop (the cell's step under
the one time loop, autograd's backward: how every impl ran zoneout before session 43), against the same layer
without zoneout, native ``torch.nn.LSTM``, and the loop users write today: ``torch.nn.LSTMCell`` stepped over the
sequence inside the zoneout wrapper of fairseq's and ESPnet's code (``cells.ZoneoutWrapper``). A training step
(forward, a loss on every output, backward) of one layer, or with ``--inference`` a forward in eval mode without
autograd; one thread, the candidates interleaved, each the median over rounds of its time over native
``torch.nn.LSTM``'s in the same round [IQR].

    python benchmarks/zoneout.py                # training step, about a minute
    python benchmarks/zoneout.py --inference    # eval-mode forward (the expectation update)
    python benchmarks/zoneout.py --draws        # the training draws alone against a bare torch.rand of their size
    python benchmarks/zoneout.py --kernel       # the kernel alone, zoneout's weights given, against without them
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved, ratio_table
from cells import ZoneoutWrapper

import lstmkit
from lstmkit.nn import LSTMOptions, LSTMWeights
from lstmkit.nn._reference import zone_weights
from lstmkit.nn.lstm import scan_kernel

SHAPES = {"T=100, B=16, I=H=128": (100, 16, 128, 128), "T=100, B=32, I=128, H=256": (100, 32, 128, 256)}
P = 0.1  # Tacotron 2's rate


def layer_step(layer: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor | None):
    """A training step (dy given) or an inference forward (dy None, no autograd)."""
    def run() -> None:
        if dy is None:
            with torch.inference_mode():
                layer(x)
            return
        layer.zero_grad(set_to_none=True)
        layer(x)[0].backward(dy)

    return run


def cell_step(cell: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor | None, hidden: int):
    def loop() -> torch.Tensor:
        state = (x.new_zeros(x.shape[1], hidden), x.new_zeros(x.shape[1], hidden))
        hs = []
        for x_t in x:
            state = cell(x_t, state)
            hs.append(state[0])
        return torch.stack(hs)

    def run() -> None:
        if dy is None:
            with torch.inference_mode():
                loop()
            return
        cell.zero_grad(set_to_none=True)
        loop().backward(dy)

    return run


def draws(rounds: int, shapes: dict) -> None:
    """The layer's training draws (``zone_weights``) against a bare ``torch.rand`` of their size."""
    for name, (T, B, _, H) in shapes.items():
        state = (torch.zeros(B, H), torch.zeros(B, H))
        candidates = {f"torch.rand({T}, {2 * B * H})": lambda T=T, n=2 * B * H: torch.rand(T, n),
                      f"zone_weights(({P}, {P}), training)": lambda T=T, s=state: zone_weights((P, P), True, T, s)}
        times = interleaved(candidates, rounds)
        for line in ratio_table(times, next(iter(candidates)), f"{name}: one layer and direction's draws", 2):
            print(line)
        print()


def kernel(rounds: int, shapes: dict) -> None:
    """The recurrence kernel alone (``impl="auto"``'s: C++ where it builds), forward and backward over fixed input
    gates, with zoneout's weights drawn once beforehand against without them: what zoneout's passes in the kernel
    cost, the draws left out."""
    for name, (T, B, _, H) in shapes.items():
        torch.manual_seed(0)
        xg = torch.randn(T, B, 4 * H).requires_grad_()  # (T, B, G)
        state = (torch.zeros(B, H), torch.zeros(B, H))
        w = LSTMWeights(None, (0.1 * torch.randn(4 * H, H)).requires_grad_())
        zone = zone_weights((P, P), True, T, state)
        scan = scan_kernel("auto", xg)

        def step(zone=zone, xg=xg, w=w, state=state, scan=scan) -> None:
            y, _, _ = scan(xg, state, w, LSTMOptions(), zone=zone)
            y.sum().backward()

        candidates = {"kernel, no zoneout": lambda step=step: step((None, None)), "kernel, zoneout weights": step}
        times = interleaved(candidates, rounds)
        note = f"{name}: the kernel's forward and backward, the draws made beforehand"
        for line in ratio_table(times, "kernel, no zoneout", note, 2):
            print(line)
        print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tiny", action="store_true", help="one tiny shape (the test's smoke run)")
    parser.add_argument("--inference", action="store_true", help="eval-mode forward without autograd")
    parser.add_argument("--draws", action="store_true", help="the layer's draws (zone_weights) against torch.rand")
    parser.add_argument("--kernel", action="store_true", help="the kernel alone with zoneout's weights, and without")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = {"T=5, B=2, I=3, H=4": (5, 2, 3, 4)} if args.tiny else SHAPES
    if args.draws:
        draws(args.rounds, shapes)
        return
    if args.kernel:
        kernel(args.rounds, shapes)
        return
    for name, (T, B, I, H) in shapes.items():
        torch.manual_seed(0)
        native = torch.nn.LSTM(I, H)
        fused = lstmkit.LSTM(I, H)
        zoned = lstmkit.LSTM(I, H, zoneout=P)
        looped = lstmkit.LSTM(I, H, zoneout=P, impl="reference")
        for m in (fused, zoned, looped):
            m.load_state_dict(native.state_dict())
        wrapped = ZoneoutWrapper(torch.nn.LSTMCell(I, H), P)
        wrapped.cell.load_state_dict({k[:-3]: v for k, v in native.state_dict().items()})
        for m in (native, fused, zoned, looped, wrapped):
            m.train(not args.inference)
        x = torch.randn(T, B, I).requires_grad_(not args.inference)
        dy = None if args.inference else torch.randn(T, B, H)
        candidates = {"torch.nn.LSTM (no zoneout)": layer_step(native, x, dy),
                      "lstmkit.LSTM (no zoneout)": layer_step(fused, x, dy),
                      f"lstmkit.LSTM zoneout={P} (kernel)": layer_step(zoned, x, dy),
                      f"lstmkit.LSTM zoneout={P} (reference loop)": layer_step(looped, x, dy),
                      f"torch.nn.LSTMCell loop + zoneout wrapper, {P}": cell_step(wrapped, x, dy, H)}  # fmt: skip
        times = interleaved(candidates, args.rounds)
        what = "an eval-mode forward without autograd" if args.inference else "a training step"
        for line in ratio_table(times, "torch.nn.LSTM (no zoneout)", f"{name}: {what}, one thread", 2):
            print(line)
        print()


if __name__ == "__main__":
    main()

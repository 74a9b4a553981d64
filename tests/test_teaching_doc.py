"""docs/teaching.md runs as written: its code blocks, in order, in one namespace (the hand-written forward and
backward equal lstmkit.LSTM and autograd: the blocks assert it), and its printed gradient-flow table and the claims
the text makes about it hold on this machine, to an order of magnitude."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "teaching.md"


@pytest.fixture(scope="module")
def ran():
    text = DOC.read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 6
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/teaching.md, block {i + 1}", "exec"), namespace)
    return text, namespace


def test_the_hand_written_passes_are_the_layers(ran):
    _, ns = ran
    # the blocks' own assert_close calls compared them (a failure raises in the fixture); here, that they ran
    assert ns["dx"].shape == (6, 3, 4) and ns["dW_hh"].shape == (20, 5) and ns["dc0"].shape == (3, 5)


def test_the_printed_gradient_flow_and_the_texts_claims(ran):
    text, ns = ran
    flow = ns["flow"]
    table = re.findall(r"^    (\S.*?\S)\s+t=99: (\S+)  t=90: (\S+)  t=50: (\S+)  t=0: (\S+)$", text, re.M)
    assert [row[0] for row in table] == list(flow)
    for name, *printed in table:
        for t, value in zip((99, 90, 50, 0), map(float, printed), strict=True):
            got = float(flow[name][t])
            if value == 0.0:
                assert got < 1e-30, (name, t, got)
            else:  # the digits move with the CPU; the order of magnitude must not
                assert abs(math.log10(got / value)) < 1.0, (name, t, got, value)
    at = {name: [float(g[t]) for t in (99, 50, 0)] for name, g in flow.items()}
    assert at["RNN"][1] < 1e-12 and at["LSTM"][1] < 1e-8  # "15 orders of magnitude down"; torch's init halves
    assert at["RNN"][1] < at["LSTM"][1] / 100
    assert at["LSTM, forget bias 1"][1] > 1e3 * at["LSTM"][1]
    assert at["LSTM, forget bias 3"][2] > 0.1 * at["LSTM, forget bias 3"][0]  # 100 steps back: the same size

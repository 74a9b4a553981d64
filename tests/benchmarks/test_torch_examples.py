"""benchmarks/torch_examples.py on a stand-in for a pytorch/examples checkout: the swap happens before the example's
code runs (its nn.LSTM and nn.LSTMCell are lstmkit's in the second run and torch's in the first), the whole-model
torch.load passes with torch's allowlist plus lstmkit's, the report holds both runs' figures, and a missing
checkout is refused by name. The real examples' figures are in docs/layers.md."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from scripts import BENCHMARKS
from scripts import load_benchmark as _load

# A word-LM "main.py" in the example's shape: nn.LSTM built from torch.nn at run time, a seeded loss printed in
# the example's format, the whole model saved and loaded back with torch's own allowlist (as the example does).
WORD_LM = '''
import argparse, torch
from torch import nn
parser = argparse.ArgumentParser()
for flag in ("--data", "--epochs", "--log-interval"):
    parser.add_argument(flag)
args = parser.parse_args()
torch.manual_seed(1111)
rnn = getattr(nn, "LSTM")(3, 4, 2)
print("layer", type(rnn).__module__)
loss = rnn(torch.randn(5, 2, 3))[0].pow(2).mean().item()
print(f"| epoch   1 |    50/  100 batches | lr 20.00 | ms/batch 10.00 | loss {loss:5.2f} | ppl {2.0:8.2f}")
print(f"| end of epoch   1 | time:  1.00s | valid loss {loss:5.2f} | valid ppl {2.0:8.2f}")
torch.save(rnn, "model.pt")
with torch.serialization.safe_globals([torch.nn.modules.rnn.LSTM]):
    torch.load("model.pt")
print(f"| End of training | test loss {loss:5.2f} | test ppl {2.0:8.2f}")
'''
GENERATE = '''
import argparse, torch
parser = argparse.ArgumentParser()
for flag in ("--data", "--words", "--outf"):
    parser.add_argument(flag)
args = parser.parse_args()
with torch.serialization.safe_globals([torch.nn.modules.rnn.LSTM]):
    rnn = torch.load("model.pt")
open(args.outf, "w").write(type(rnn).__module__)
'''
SINE_DATA = '''
import numpy as np, torch
torch.save(np.linspace(0, 1, 12).reshape(3, 4), open("traindata.pt", "wb"))
'''
SINE_TRAIN = '''
import argparse, torch
from torch import nn
parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int)
steps = parser.parse_args().steps
data = torch.from_numpy(torch.load("traindata.pt"))
torch.manual_seed(0)
cell = nn.LSTMCell(4, 3).double()
print("cell", type(cell).__module__)
for _ in range(steps):
    print("loss:", cell(data)[0].sum().item())
print("test loss:", cell(data)[1].sum().item())
'''


def write_examples(root):
    (root / "word_language_model").mkdir(parents=True)
    (root / "time_sequence_prediction").mkdir()
    (root / "word_language_model" / "main.py").write_text(textwrap.dedent(WORD_LM))
    (root / "word_language_model" / "generate.py").write_text(textwrap.dedent(GENERATE))
    (root / "time_sequence_prediction" / "generate_sine_wave.py").write_text(textwrap.dedent(SINE_DATA))
    (root / "time_sequence_prediction" / "train.py").write_text(textwrap.dedent(SINE_TRAIN))
    data = root / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("a b c\n")
    return data


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "torch_examples.py"), *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip


def test_each_example_runs_with_torchs_layers_then_with_lstmkits(tmp_path):
    data = write_examples(tmp_path / "examples")
    out = tmp_path / "out"
    done = run_script("--examples", tmp_path / "examples", "--data", data, "--out", out, "--steps", 2)
    assert done.returncode == 0, done.stderr
    logs = {layer: (out / layer / "word_language_model" / "main.log").read_text() for layer in ("torch.nn", "lstmkit")}
    assert "layer torch.nn.modules.rnn" in logs["torch.nn"] and "layer lstmkit.nn.lstm" in logs["lstmkit"]
    for layer, module in (("torch.nn", "torch.nn.modules.rnn"), ("lstmkit", "lstmkit.nn.lstm")):  # generate.py's load
        assert (out / layer / "word_language_model" / "generated.txt").read_text() == module
    cells = {layer: (out / layer / "time_sequence_prediction" / "train.log").read_text()
             for layer in ("torch.nn", "lstmkit")}  # fmt: skip
    assert "cell torch.nn.modules.rnn" in cells["torch.nn"] and "cell lstmkit.nn.lstm" in cells["lstmkit"]
    report = (out / "report.md").read_text()
    # Same seed, same weights: every figure of the two runs agrees (float64 cells to rounding, printed losses exactly)
    assert "| train 1 |" in report and "| test 1 |" in report and "| train 2 |" in report
    rows = [line.split("|") for line in report.splitlines() if line.startswith(("| train", "| valid", "| test"))]
    assert rows and all(float(r[4]) < 1e-12 for r in rows), report
    assert "| ms/batch 1 | 10 | 10 | ratio 1.00 |" in report


def test_parsers_read_the_examples_own_lines():
    te = _load("torch_examples")
    out = ("| epoch   1 |   200/ 2983 batches | lr 20.00 | ms/batch 45.67 | loss  7.12 | ppl  1234.56\n"
           "| end of epoch   1 | time: 99.00s | valid loss  5.50 | valid ppl   245.00\n"
           "| End of training | test loss  5.40 | test ppl   221.00\n")  # fmt: skip
    assert te.word_lm_numbers(out) == {"train": [7.12], "ms/batch": [45.67], "valid": [5.5], "test": [5.4]}
    assert te.sine_numbers("STEP:  0\nloss: 0.5023\nloss: 1e-05\ntest loss: 0.0013\n") == {
        "train": [0.5023, 1e-05], "test": [0.0013]}


def test_a_missing_checkout_is_refused_by_name(tmp_path):
    done = run_script("--examples", tmp_path, "--out", tmp_path / "out")
    assert done.returncode != 0
    assert f"{tmp_path / 'word_language_model' / 'main.py'} is missing: --examples must be a checkout" in done.stderr


def test_a_failing_example_stops_with_its_output(tmp_path):
    data = write_examples(tmp_path / "examples")
    (tmp_path / "examples" / "word_language_model" / "main.py").write_text("raise SystemExit('broken example')\n")
    done = run_script("--examples", tmp_path / "examples", "--data", data, "--out", tmp_path / "out")
    assert done.returncode != 0
    assert "word_language_model/main.py with torch.nn failed (exit 1)" in done.stderr
    assert "broken example" in done.stderr


@pytest.mark.parametrize("flag", ["--epochs", "--steps", "--threads"])
def test_counts_below_one_are_refused(tmp_path, flag):
    done = run_script("--examples", tmp_path, "--out", tmp_path / "o", flag, 0)
    assert done.returncode == 2 and "--epochs, --steps and --threads must be >= 1" in done.stderr

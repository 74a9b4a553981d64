"""Exporting a trained run: ``export_run``, ``lstmkit export``, and serving it with onnxruntime alone."""

from __future__ import annotations

import json
import random
import runpy
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.export.rundir import export_run
from lstmkit.tasks import TaskError, runner
from onnx_checks import GENERATE_EXAMPLE, generate_with_the_example

TEXT = """\
ROMEO.
But soft, what light through yonder window breaks?
It is the east, and Juliet is the sun.
"""
TINY = [
    "model.hidden_size=16", "model.num_layers=2", "model.embedding_dim=8", "data.batch_size=4", "data.bptt=16",
    "train.max_steps=6", "train.warmup_steps=1", "train.progress=false", "train.tensorboard=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def char_run(tmp_path_factory) -> Path:
    """A finished tiny charlm run directory (about a second of training)."""
    root = tmp_path_factory.mktemp("export_run")
    text = root / "text.txt"
    text.write_text(TEXT * 40, encoding="utf-8")
    config = runner.build_config("charlm", overrides=[*TINY, f"data.text={text}"], seed=1)
    return runner.train("charlm", config, root / "run").run_dir


def test_export_run_writes_a_verified_self_contained_file(char_run, tmp_path):
    result = export_run(char_run, out=tmp_path / "charlm.onnx")
    assert result.layers == ("LSTM", "LSTM") and result.max_abs_error <= 1e-5
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    tok = json.loads(meta["lstmkit.tokenizer"])
    assert tok["kind"] == "char" and tok["tokens"][:2] == ["<pad>", "<unk>"] and "R" in tok["tokens"]
    assert meta["lstmkit.task"] == "charlm" and meta["lstmkit.start_symbol"] == "\n"
    assert json.loads(meta["lstmkit.model_config"])["hidden_size"] == 16


def test_cli_export_then_generate_with_onnxruntime_only(char_run):
    r = CliRunner().invoke(app, ["export", str(char_run)])
    assert r.exit_code == 0, r.output
    assert f"wrote {char_run / 'model.onnx'}" in r.output
    assert "recurrent layers as ONNX operators: LSTM, LSTM" in r.output and "verified in onnxruntime" in r.output

    # The example runs with torch and lstmkit made unimportable: onnxruntime and numpy only.
    text = generate_with_the_example(char_run, "ROMEO.", 30)
    greedy = runner.generate(char_run, prompt="ROMEO.", length=30, temperature=0.0, top_k=0)
    assert text == greedy.text + "\n"  # the same text as lstmkit's own greedy generation


def test_cli_export_errors(char_run, tmp_path):
    r = CliRunner().invoke(app, ["export", str(char_run), "--format", "tflite"])
    assert r.exit_code == 2 and "--format" in r.output
    r = CliRunner().invoke(app, ["export", str(tmp_path / "nothing")])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = CliRunner().invoke(app, ["export", str(char_run), "--out", str(tmp_path / "no" / "m.onnx")])
    assert r.exit_code == 2 and "path's directory" in r.output


def test_export_run_argument_and_dependency_errors(char_run, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="format must be one of"):
        export_run(char_run, format="tflite")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TaskError, match=r"pip install"):
        export_run(char_run, out=tmp_path / "m.onnx")


def _example_module() -> dict:
    return runpy.run_path(str(GENERATE_EXAMPLE))  # its functions; the __main__ block does not run


WORD_PROMPTS = [
    "", "to be", "To be, or not to be?", "ROMEO.\nBut soft", "line one\n\nline (two) [three]\n", "  o'er the  hills ",
    "what?!", "a\n", "Ünïcode wörds—and dashes", "(", "end.",
]  # fmt: skip


def test_the_example_cuts_and_joins_text_as_lstmkit_generates_it():
    """examples/onnx_generate.py follows the exported ``lstmkit.text`` rules: for words, the prompt's symbols are
    wordlm's tokens (lower case, punctuation apart, <nl> after each non-empty line) and generated symbols join
    into the text ``generate`` writes (wordlm's detokenize and join), over prompts and random symbol sequences
    rich in punctuation, brackets and line ends; for characters, the characters as they are."""
    from lstmkit.tasks.charlm import CharLM
    from lstmkit.tasks.wordlm import NL, WordLM, detokenize, words

    example = _example_module()
    split, join = example["split"], example["join"]
    word_rules, char_rules = json.loads(json.dumps(WordLM().text_rules())), CharLM().text_rules()
    task = WordLM()
    for prompt in WORD_PROMPTS:
        assert split(prompt, word_rules) == words(prompt)
        assert split(prompt, char_rules) == list(prompt)
    vocab = ["the", "king", "o'er", ".", ",", "?", "!", ")", "(", "[", "]", "'", ";", "-", NL]
    rng = random.Random(0)
    for _ in range(400):
        symbols = rng.choices(vocab, k=rng.randrange(0, 12))
        prompt = rng.choice(WORD_PROMPTS)
        assert join(prompt, symbols, word_rules) == task.join(prompt, detokenize(symbols))
        assert join(prompt, list("ab\nc"), char_rules) == prompt + "ab\nc"


@pytest.fixture(scope="module")
def word_run(tmp_path_factory) -> Path:
    """A finished small wordlm run, trained long enough (150 steps) to emit words and punctuation greedily."""
    root = tmp_path_factory.mktemp("export_word_run")
    text = root / "text.txt"
    text.write_text(TEXT * 40, encoding="utf-8")
    overrides = [*TINY, "train.max_steps=150", "train.lr=0.02", "data.max_vocab=40", f"data.text={text}"]
    return runner.train("wordlm", runner.build_config("wordlm", overrides=overrides, seed=1), root / "run").run_dir


def test_a_word_model_generates_in_the_example_what_lstmkit_generates(word_run):
    r = CliRunner().invoke(app, ["export", str(word_run)])
    assert r.exit_code == 0, r.output
    prompt = "But soft, what light\nIt is the"
    greedy = runner.generate(word_run, prompt=prompt, length=40, temperature=0.0, top_k=0)
    assert generate_with_the_example(word_run, prompt, 40) == greedy.text + "\n"
    continuation = greedy.text[len(prompt):]
    assert any(c in continuation for c in ",.?") and len(set(continuation.split())) > 3  # words, not only <nl>


def test_the_example_asks_for_a_new_export_when_the_text_rules_are_missing(char_run, tmp_path):
    import onnx

    model = onnx.load(str(export_run(char_run, out=tmp_path / "m.onnx").path))
    kept = [p for p in model.metadata_props if p.key != "lstmkit.text"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(SystemExit) as e:
        _example_module()["generate"](tmp_path / "old.onnx", "ROMEO.", 5)
    assert str(e.value) == (
        f"{tmp_path / 'old.onnx'} has no text rules in its metadata (lstmkit.text; older exports lack it): "
        "export the run again with `lstmkit export RUN_DIR`"
    )

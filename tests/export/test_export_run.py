"""Exporting a trained run: ``export_run``, ``lstmkit export``, and serving it with onnxruntime alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.export.rundir import export_run
from lstmkit.tasks import TaskError, runner

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_generate.py"
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
    code = (
        "import sys, runpy; sys.modules['torch'] = None; sys.modules['lstmkit'] = None; "
        f"sys.argv = [{str(EXAMPLE)!r}, {str(char_run)!r}, "
        "'--prompt', 'ROMEO.', '--length', '30', '--temperature', '0']; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    greedy = runner.generate(char_run, prompt="ROMEO.", length=30, temperature=0.0, top_k=0)
    assert out.stdout.rstrip("\n") == greedy.text  # the same text as lstmkit's own greedy generation


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

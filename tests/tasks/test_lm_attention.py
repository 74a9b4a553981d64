"""``model.attention`` in the language-model tasks: off, the task builds the plain ``SequenceModel`` as before; on,
``AttentionLM`` trains, evaluates from its run directory and generates through the runner, and the run-level
commands that need a plain ``SequenceModel`` refuse it by name (or, where they can, compress it)."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import shutil

import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.compress import prune_run, quantize_run
from lstmkit.export.rundir import export_run
from lstmkit.models import AttentionLM, LMModel, SequenceModel
from lstmkit.tasks import TaskError, get_task, runner
from lstmkit.tasks.rundir import open_run
from lstmkit.train import ModelConfig, set_values
from onnx_checks import generate_with_the_example
from smoke import train_smoke

LM_TASKS = ["charlm", "wordlm"]
# Two layers with the block between them, a memory of one smoke chunk (charlm's bptt 16; two of wordlm's 8), and a
# learning rate at which 6 steps lower the training loss clearly.
ATTENTION = {"model.attention": True, "model.num_layers": 2, "model.attention_layer": 1,
             "model.attention_memory": 16, "train.lr": 1e-2}  # fmt: skip


@pytest.fixture(scope="module")
def attention_runs(tmp_path_factory):
    """A finished smoke run with model.attention = true, per LM task (about a second each)."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = train_smoke(name, tmp_path_factory.mktemp(f"attention-{name}"), ATTENTION)
        return runs[name]

    return get


# -- off: exactly the old model --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LM_TASKS)
def test_attention_off_builds_the_plain_sequence_model(name):
    task = get_task(name)
    config = task.default_config()
    assert type(config.model) is LMModel and config.model.attention is False
    config = set_values(config, {"model.vocab_size": 50})
    model = task.build_model(config)
    assert type(model) is SequenceModel
    fields = {k: getattr(config.model, k) for k in ModelConfig.__dataclass_fields__}
    old = SequenceModel(ModelConfig(**fields))
    assert list(model.state_dict()) == list(old.state_dict())
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in old.state_dict().items()}
    # a plain ModelConfig (code written before LMModel) still builds it too
    assert type(task.build_model(dataclasses.replace(config, model=ModelConfig(**fields)))) is SequenceModel


def test_show_config_lists_the_keys_with_their_reasons():
    lines = runner.describe_config("charlm", None, [], None)
    for key, value, reason in [("attention", "false", "off: the plain LSTM stack"),
                               ("attention_layer", "none", "None means the last, as in SHA-RNN"),
                               ("attention_memory", "64", "charlm's data.bptt")]:  # fmt: skip
        (line,) = [ln for ln in lines if ln.startswith(f"model.{key} = ")]
        assert line.startswith(f"model.{key} = {value}  (") and reason in line


def test_config_errors_name_the_key():
    cases = {
        "model.attention_layer must be in [1, model.num_layers = 1] (the LSTM layer the attention block follows), "
        "got 2": ["model.attention=true", "model.attention_layer=2"],
        "model.attention_memory must be >= 1, got 0": ["model.attention_memory=0"],
        "model.attention_layer must be >= 1, got 0": ["model.attention_layer=0"],
    }
    for message, overrides in cases.items():
        with pytest.raises(ValueError) as e:
            runner.build_config("charlm", overrides=overrides)
        assert str(e.value) == message


def test_an_older_run_without_the_keys_reopens_as_the_plain_model(char_run, tmp_path):
    """A config.toml written before LMModel had these keys: they take their defaults (attention off)."""
    run_dir = tmp_path / "old"
    shutil.copytree(char_run.run_dir, run_dir)
    config_file = run_dir / "config.toml"
    text = config_file.read_text(encoding="utf-8")
    assert "attention" in text  # new runs write the keys
    config_file.write_text(re.sub(r"(?m)^attention\w* = .*\n", "", text), encoding="utf-8")
    assert "attention" not in config_file.read_text(encoding="utf-8")
    run = open_run(run_dir)
    assert type(run.config.model) is LMModel and not run.config.model.attention
    assert type(run.task.build_model(run.config)) is SequenceModel
    metrics, _ = runner.evaluate(run_dir, "val")
    assert metrics["nats_per_char"] == pytest.approx(char_run.metrics["nats_per_char"], rel=1e-6)


# -- on: train, evaluate from the run directory, generate ----------------------------------------------------
@pytest.mark.parametrize("name", LM_TASKS)
def test_attention_trains_evaluates_and_generates_through_the_runner(name, attention_runs):
    result = attention_runs(name)
    run = open_run(result.run_dir)
    assert run.config.model.attention and run.config.model.attention_layer == 1
    model = run.load_weights(run.task.build_model(run.config))
    assert type(model) is AttentionLM and model.lstm_above is not None
    unit = "char" if name == "charlm" else "word"
    trained = result.metrics[f"nats_per_{unit}"]
    with open(result.run_dir / "metrics.csv", encoding="utf-8") as f:
        train_losses = [float(row["loss"]) for row in csv.DictReader(f) if row["split"] == "train"]
    assert result.metrics["steps"] == 6 and train_losses[-1] < train_losses[0] < 1.05 * math.log(
        result.metrics["vocab_size"])  # it learns, from about the uniform guess  # fmt: skip
    assert result.metrics["sample"]  # the sample printed after training, by lstmkit.tasks.sampling.sample
    metrics, lines = runner.evaluate(result.run_dir, "val")  # stateful, from the run directory alone
    assert metrics[f"nats_per_{unit}"] == pytest.approx(trained, rel=1e-6)  # the best weights, scored alike
    assert lines[0].startswith("val loss: ")
    prompt = "First" if name == "charlm" else "to be"
    a = runner.generate(result.run_dir, prompt=prompt, length=30, temperature=0.8, top_k=5, seed=3)
    b = runner.generate(result.run_dir, prompt=prompt, length=30, temperature=0.8, top_k=5, seed=3)
    assert a.text == b.text and a.text.startswith(prompt) and len(a.text) > len(prompt)


# -- export: one ONNX graph carrying the memory; int8 and --lengths refused by name -----------------------------
INT8_REFUSED = (
    "--int8 does not cover this model (AttentionLM): the int8 check "
    "bounds LSTM stacks and linear heads, not the attention block between them (its scores, softmax and "
    "LayerNorms); export it in float, or quantise it for PyTorch with lstmkit compress quantize"
)
LENGTHS_REFUSED = (
    "--lengths does not apply to a model with an attention block (model.attention = true): it does not mask "
    "padding, so every chunk is whole"
)


@pytest.mark.parametrize("name", LM_TASKS)
def test_export_writes_a_verified_graph_that_generates_without_lstmkit(name, attention_runs):
    """``lstmkit export`` on an attention run: one graph (tokens, h0, c0, keys, values -> logits, hn, cn, keys_out,
    values_out), verified; examples/onnx_generate.py, with torch and lstmkit unimportable, feeds every state back
    and writes the greedy text lstmkit's own generation writes."""
    run_dir = attention_runs(name).run_dir
    r = CliRunner().invoke(app, ["export", str(run_dir)])
    assert r.exit_code == 0, r.output
    assert f"wrote {run_dir / 'model.onnx'}" in r.output and "verified in onnxruntime" in r.output
    assert "inputs: tokens, h0, c0, keys, values; outputs: logits, hn, cn, keys_out, values_out" in r.output
    assert "recurrent layers as ONNX operators: LSTM, LSTM" in r.output
    prompt = "First" if name == "charlm" else "to be"
    greedy = runner.generate(run_dir, prompt=prompt, length=40, temperature=0.0, top_k=0)
    assert generate_with_the_example(run_dir, prompt, 40) == greedy.text + "\n"


def test_export_refuses_int8_and_lengths_by_name(attention_runs, tmp_path):
    run_dir = attention_runs("charlm").run_dir
    with pytest.raises(ValueError) as e:
        export_run(run_dir, out=tmp_path / "m.onnx", int8=True)
    assert str(e.value) == INT8_REFUSED
    with pytest.raises(ValueError) as e:
        export_run(run_dir, out=tmp_path / "m.onnx", lengths=True)
    assert str(e.value) == LENGTHS_REFUSED
    assert not any(tmp_path.iterdir())


def test_compress_refuses_what_it_cannot_do_by_name(attention_runs, tmp_path):
    run_dir = attention_runs("charlm").run_dir
    with pytest.raises(TaskError) as e:
        prune_run(run_dir, tmp_path / "s", sparsity=0.5, structured=True, repeats=1)
    assert str(e.value) == (
        "lstmkit compress prune --structured does not handle the charlm task's model: an LSTM with an attention block "
        "(model.attention = true): the block's queries, keys, values and Boom all read the H units of the residual "
        "stream, which structured pruning does not shrink; prune it unstructured, or distill it"
    )
    with pytest.raises(TaskError) as e:
        quantize_run(run_dir, tmp_path / "c", compare_torch=True, repeats=1)
    assert str(e.value) == (
        "lstmkit compress quantize --compare-torch does not handle the charlm task's model: an LSTM with an "
        "attention block (model.attention = true) has no torch.nn twin for torch.ao to quantise; quantise it "
        "without --compare-torch"
    )
    assert not (tmp_path / "s").exists() and not (tmp_path / "c").exists()


def test_compress_quantizes_it(attention_runs, tmp_path):
    """What compress can do it does: the int8 weights of every matrix, the block's included, scored from the run."""
    run_dir = attention_runs("charlm").run_dir
    report = quantize_run(run_dir, tmp_path / "q", bits=8, repeats=1)
    assert report["change"]["tensor_size_ratio"] > 1.5
    assert abs(report["change"]["metric_relative_change"]["val"]) < 0.01
    metrics, _ = runner.evaluate(tmp_path / "q", "val")
    assert metrics["split"] == "val"


@pytest.mark.parametrize("layers", [1, 2])
def test_the_memory_guard_counts_the_attention_block(layers):
    """runner.memory_estimate's parameter count is exact for the LSTM language model, with or without the block."""
    needs = []
    for attention in ("false", "true"):
        config = runner.build_config("charlm", overrides=[f"model.num_layers={layers}", f"model.attention={attention}",
                                                          "model.vocab_size=84"])  # fmt: skip
        model = get_task("charlm").build_model(config)
        params, need = runner.memory_estimate(config)
        assert params == sum(p.numel() for p in model.parameters())
        needs.append(need)
    assert needs[1] > needs[0]  # and its activations

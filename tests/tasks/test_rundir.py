"""Loading a run directory: what evaluate and generate need, and clear refusals when it is broken."""

from __future__ import annotations

import json
import shutil

import pytest

from lstmkit.tasks import TaskError, runner
from lstmkit.tasks.rundir import open_run


@pytest.fixture
def copy_of_run(char_run, tmp_path):
    return shutil.copytree(char_run.run_dir, tmp_path / "run")


def test_run_directory_reads_back_the_resolved_config(char_run, small_text):
    run = open_run(char_run.run_dir)
    assert run.task.name == "charlm"
    assert run.config.data.text == str(small_text.resolve())  # the absolute path was recorded
    tokens = json.loads((char_run.run_dir / "tokenizer.json").read_text())["tokens"]
    assert run.config.model.vocab_size == len(tokens) == 2 + len(set(small_text.read_text()))  # <pad>, <unk>
    assert run.stamp["lstmkit_version"] and run.stamp["torch_version"]
    data = json.loads((char_run.run_dir / "data.json").read_text())
    assert set(data["sha256"]) == {"train", "val", "test"}
    n = len(small_text.read_text())
    assert data["parts"]["train"] == [f"characters 0:{n - 2 * round(0.1 * n)}"]


@pytest.mark.parametrize("name", ["model.safetensors", "summary.json", "tokenizer.json", "config.toml"])
def test_missing_file_is_named(copy_of_run, name):
    (copy_of_run / name).unlink()
    with pytest.raises(TaskError, match=rf"is missing \['{name}'\]"):
        runner.evaluate(copy_of_run, "val")


def test_missing_weights_say_the_run_did_not_finish(copy_of_run):
    (copy_of_run / "model.safetensors").unlink()
    with pytest.raises(TaskError, match="did not finish"):
        runner.generate(copy_of_run, prompt="a", length=3, temperature=1.0, top_k=0)


def test_incompatible_version_is_refused(copy_of_run):
    stamp = json.loads((copy_of_run / "run.json").read_text())
    stamp.update(version=99, lstmkit_version="9.0.0")
    (copy_of_run / "run.json").write_text(json.dumps(stamp))
    with pytest.raises(TaskError, match=r"cannot be read by this lstmkit .*unsupported lstmkit.run version 99"):
        runner.evaluate(copy_of_run, "val")


def test_not_a_run_directory(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        runner.evaluate(tmp_path / "nothing", "val")
    with pytest.raises(TaskError, match=r"is not a run directory: it has no run\.json"):
        runner.evaluate(tmp_path, "val")


def test_unknown_task_in_stamp(copy_of_run):
    stamp = json.loads((copy_of_run / "run.json").read_text())
    stamp["task"] = "retired_task"
    (copy_of_run / "run.json").write_text(json.dumps(stamp))
    with pytest.raises(TaskError, match="unknown task 'retired_task'"):
        runner.evaluate(copy_of_run, "val")


def test_weights_that_do_not_match_the_config(copy_of_run):
    text = (copy_of_run / "config.toml").read_text().replace("hidden_size = 16", "hidden_size = 17")
    (copy_of_run / "config.toml").write_text(text)
    with pytest.raises(TaskError, match=r"model\.safetensors does not match"):
        runner.evaluate(copy_of_run, "val")


def test_changed_data_is_detected(tmp_path, small_text, tiny):
    text = tmp_path / "t.txt"
    shutil.copy(small_text, text)
    config = runner.build_config("charlm", overrides=[*tiny, f"data.text={text}"])
    result = runner.train("charlm", config, tmp_path / "r")
    text.write_text(small_text.read_text().replace("Romeo", "Tybalt"))
    with pytest.raises(TaskError, match="SHA-256 differs"):
        runner.evaluate(result.run_dir, "test")


def test_same_out_and_config_resumes_a_different_config_is_refused(char_run, small_text, tiny):
    config = runner.build_config("charlm", overrides=[*tiny, f"data.text={small_text}"])
    again = runner.train("charlm", config, char_run.run_dir)
    assert again.resumed and again.metrics["nats_per_char"] == char_run.metrics["nats_per_char"]
    other = runner.build_config("charlm", overrides=[*tiny, f"data.text={small_text}", "train.lr=0.01"])
    with pytest.raises(TaskError, match=r"different config \(changed: \['train.lr'\]\)"):
        runner.train("charlm", other, char_run.run_dir)

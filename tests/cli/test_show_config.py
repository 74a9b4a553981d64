"""``lstmkit config TASK`` and ``lstmkit train --show-config``: every key of every task, with its value, type
and a reason, and nothing trained."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.tasks import runner
from lstmkit.tasks.registry import TASKS
from lstmkit.train import Config, DataConfig, describe_keys


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_key_of_every_task_is_printed_with_a_reason(task, tmp_path):
    config = runner.build_config(task)
    sections = [(s.name, getattr(config, s.name)) for s in dataclasses.fields(config)]
    keys = [f"{name}.{f.name}" for name, section in sections for f in dataclasses.fields(section)]
    r = invoke("config", task)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()[1:]
    assert [line.split(" = ")[0] for line in lines] == keys  # every key, in order, once
    for line in lines:
        value_and_type, _, reason = line.partition("  # ")
        assert "(" in value_and_type and len(reason.strip()) > 3, line  # a type and a reason on every line
    assert not any(tmp_path.iterdir())  # nothing written


def test_show_config_reports_overrides_defaults_and_the_task_reason(tmp_path):
    r = invoke("train", "--task", "adding", "--show-config", "--set", "train.lr=0.01", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("train.lr = "))
    assert line.startswith("train.lr = 0.01  (float) [class default 0.001]  # ")
    assert "plateau" in line  # adding's own reason for its lr (the comment in its default_config) comes first
    assert "data.length = 100  (int)  # T: the classic setting" in r.output
    assert not (tmp_path / "run").exists()  # --show-config trains nothing
    bad = invoke("train", "--task", "adding", "--show-config", "--set", "train.nope=1")
    assert bad.exit_code == 2 and "unknown key 'nope'" in bad.output


def test_a_key_without_a_reason_is_named():
    @dataclass(frozen=True)
    class Bare(DataConfig):
        _name = "data"
        documented: int = 1  # this one says why
        undocumented: int = 2

    with pytest.raises(ValueError, match=r"data\.undocumented \(.*Bare\)"):
        describe_keys(Config(data=Bare()))
    meta = dataclasses.make_dataclass(
        "Meta", [("k", int, dataclasses.field(default=3, metadata={"doc": "from metadata"}))], bases=(DataConfig,),
        frozen=True,
    )
    doc = next(d for d in describe_keys(Config(data=meta())) if d.key == "data.k")
    assert (doc.reason, doc.type, doc.value) == ("from metadata", "int", 3)

"""Task configs: extended sections take the task's keys, reject everyone else's, and read back exactly."""

from __future__ import annotations

import pytest

from lstmkit.tasks import TaskError, runner
from lstmkit.tasks.lm import LMData
from lstmkit.tasks.wordlm import WordLMData
from lstmkit.train import Config, apply_overrides, config_from_dict, dump_config, load_config, section_defaults


def test_task_keys_are_accepted_only_where_the_task_defines_them():
    c = runner.build_config("charlm", overrides=["data.text=my.txt", "data.val_fraction=0.2"])
    assert isinstance(c.data, LMData) and c.data.text == "my.txt" and c.data.val_fraction == 0.2
    with pytest.raises(ValueError, match=r"unknown key 'max_vocab' in \[data\]; known keys: .*'text'"):
        runner.build_config("charlm", overrides=["data.max_vocab=5000"])
    assert runner.build_config("wordlm", overrides=["data.max_vocab=5000"]).data.max_vocab == 5000
    with pytest.raises(ValueError, match=r"unknown key 'text' in \[data\]"):
        apply_overrides(Config(), ["data.text=x"])  # the plain workflow config has no such key
    with pytest.raises(ValueError, match=r"data.val_fraction must be in \(0, 0.5\), got 0.7"):
        runner.build_config("charlm", overrides=["data.val_fraction=0.7"])
    with pytest.raises(ValueError, match=r"data.max_vocab must be >= 3"):
        WordLMData(max_vocab=2)


def test_config_file_is_laid_over_the_task_defaults_then_overrides_and_seed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nhidden_size = 64\n[data]\ntext = "a.txt"\n[train]\nlr = 0.01\n')
    c = runner.build_config("charlm", path, ["train.lr=0.02"], seed=7)
    defaults = runner.build_config("charlm")
    assert (c.model.hidden_size, c.data.text, c.train.lr, c.train.seed) == (64, "a.txt", 0.02, 7)
    assert c.model.embedding_dim == defaults.model.embedding_dim  # untouched keys keep the task's defaults
    path.write_text("[data]\nvocab = 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['vocab'\] in \[data\]"):
        runner.build_config("charlm", path)
    with pytest.raises(ValueError, match=r"config file .* does not exist"):
        runner.build_config("charlm", tmp_path / "nope.toml")
    with pytest.raises(TaskError, match="unknown task"):
        runner.build_config("nope")


def test_a_task_config_reads_back_exactly_even_with_none_values(tmp_path):
    c = runner.build_config("charlm", overrides=["data.text=x.txt", "train.max_steps=none", "train.max_minutes=none"])
    dump_config(c, tmp_path / "c.toml")
    back = load_config(tmp_path / "c.toml", section_defaults(c))
    assert back == c and back.train.max_steps is None
    assert config_from_dict({"data": {"text": "y"}}, section_defaults(c)).data.text == "y"

"""Issue 16, item 4: every cross-key check runs before the first file is written, and a failed start
leaves no half-made run directory, so the corrected command can use the same --out."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.tasks import runner


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_warmup_longer_than_the_run_fails_before_any_file_and_the_retry_works(tmp_path, small_text, tiny):
    out = tmp_path / "run"
    base = [o for o in tiny if not o.startswith("train.warmup_steps")]
    r = invoke("train", *sets(*base, f"data.text={small_text}", "train.max_steps=5", "train.warmup_steps=100"),
               "--out", out)  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "train.warmup_steps (100) must be below the run's 5 steps; lower train.warmup_steps" in r.output
    assert "Traceback" not in r.output and not out.exists()
    r = invoke("train", *sets(*base, f"data.text={small_text}", "train.max_steps=5", "train.warmup_steps=1"),
               "--out", out)  # fmt: skip
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("lr", ["inf", "1e400", "nan", "-inf"])
def test_non_finite_learning_rates_are_refused_by_name(tmp_path, small_text, tiny, lr):
    out = tmp_path / "run"
    r = invoke("train", *sets(*tiny, f"data.text={small_text}", f"train.lr={lr}"), "--out", out)
    assert r.exit_code == 2 and "train.lr must be a finite number > 0" in r.output, r.output
    assert not out.exists()


def test_a_start_that_fails_while_writing_leaves_no_run_directory(tmp_path, small_text, tiny, monkeypatch):
    from lstmkit.tasks import lm

    def broken_save(self, run_dir):
        (run_dir / "tokenizer.json").write_text("half")
        raise OSError(28, "No space left on device", str(run_dir / "tokenizer.json"))

    monkeypatch.setattr(lm.LMPrepared, "save", broken_save)
    config = runner.build_config("charlm", overrides=[*tiny, f"data.text={small_text}"])
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        with pytest.raises(OSError, match="No space left"):
            runner.train("charlm", config, out)
        assert (not out.exists()) if out.name == "new" else list(out.iterdir()) == []
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_run_that_fails_before_its_first_checkpoint_is_removed(tmp_path, small_text, tiny, monkeypatch):
    from lstmkit.tasks import lm

    def diverges(self, prepared, run_dir):
        raise FloatingPointError("5 consecutive steps had a non-finite loss or gradient")

    monkeypatch.setattr(lm.LanguageModelTask, "train", diverges)
    out = tmp_path / "run"
    r = invoke("train", *sets(*tiny, f"data.text={small_text}"), "--out", out)
    assert r.exit_code == 1 and "non-finite loss" in r.output and "Traceback" not in r.output, r.output
    assert not out.exists()

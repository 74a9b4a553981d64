"""``ctc-speech`` end to end on a tiny espeak-ng set, the data cache, ``lstmkit recognize`` and its errors.

These tests need espeak-ng (``.ci/run`` installs it); without it they fail with the install command.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.tasks import DataUnavailable, get_task, runner
from lstmkit.tasks import ctc_speech as speech
from lstmkit.tasks.rundir import open_run


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """A finished tiny ctc-speech run (20 utterances of up to 3 digits, a few steps)."""
    work = tmp_path_factory.mktemp("speech")
    config = get_task("ctc-speech").smoke_config(work)
    return runner.train("ctc-speech", config, work / "run")


def _espeak_wav(path, text="three one four", voice="en-us+m3"):
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return path


def test_trains_scores_and_records_its_data(speech_run):
    summary = json.loads((speech_run.run_dir / "summary.json").read_text())
    assert summary["samples"] == {"train": 12, "val": 4, "test": 4}
    for split in ("val", "test"):
        for how in ("greedy", "beam"):
            scores = summary[split][how]
            assert set(scores) == {"wer", "string_accuracy"} and 0 <= scores["string_accuracy"] <= 1
    record = json.loads((speech_run.run_dir / "data.json").read_text())
    variants = {s: {v.split("+")[1] for v in record["voices"][s]} for s in ("train", "val", "test")}
    assert not variants["train"] & variants["test"] and not variants["train"] & variants["val"]
    assert not variants["val"] & variants["test"]
    assert record["params"]["features"] == {"rate": 22050, "n_mels": 40, "win_ms": 25.0, "hop_ms": 10.0}
    metrics, lines = runner.evaluate(speech_run.run_dir, "test")
    assert metrics["beam"] == summary["test"]["beam"] and any("wer" in line for line in lines)


def test_second_run_reuses_the_cached_data(speech_run, monkeypatch):
    config = open_run(speech_run.run_dir).config

    def no_espeak(*args, **kwargs):
        raise AssertionError("espeak-ng must not run when the data is cached")

    monkeypatch.setattr(speech, "speak", no_espeak)
    prepared = get_task("ctc-speech").prepare(config)
    assert prepared.record["generation_seconds"] is None  # read, not generated
    cache = json.loads((speech_run.run_dir / "data.json").read_text())["cache"]
    assert prepared.record["cache"] == cache and (open_run(speech_run.run_dir).config.data.dir in cache)


def test_generated_utterances_are_deterministic_per_seed():
    data = speech.SpeechData(train_size=3, val_size=1, test_size=1)
    a = speech.draw_utterances(data, "test", 5, np.random.default_rng(1))
    assert a == speech.draw_utterances(data, "test", 5, np.random.default_rng(1))
    assert all(1 <= len(u["digits"]) <= 8 and u["voice"].split("+")[1] in speech.VARIANTS["test"] for u in a)
    wav = speech.speak("one two", "en-us+m1", 160, 50)
    f1, f2 = speech.features(wav, data), speech.features(wav, data)
    assert f1.shape[1] == 40 and np.array_equal(f1, f2)
    x = speech.model_input(f1, data)
    assert x.shape == (-(-len(f1) // data.stack), 40 * data.stack) and x.dtype == np.float32


def test_recognize_transcribes_wav_files(speech_run, tmp_path):
    wav = _espeak_wav(tmp_path / "digits.wav")
    result = CliRunner().invoke(app, ["recognize", str(speech_run.run_dir), str(wav), str(wav)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{wav}\t") for line in lines)
    assert set(lines[0].split("\t")[1]) <= set("0123456789")  # a tiny model: digits, not necessarily 314


def test_recognize_refuses_other_rates_channels_and_runs(speech_run, tmp_path):
    rate, samples = wavfile.read(_espeak_wav(tmp_path / "mono.wav"))
    wavfile.write(tmp_path / "stereo.wav", rate, np.stack([samples, samples], axis=1))
    wavfile.write(tmp_path / "rate.wav", 16000, samples)
    for name, message in (("stereo.wav", "has 2 channels; a mono WAV is needed"),
                          ("rate.wav", "is sampled at 16000 Hz; this model was trained at 22050 Hz"),
                          ("missing.wav", "no such file")):  # fmt: skip
        result = CliRunner().invoke(app, ["recognize", str(speech_run.run_dir), str(tmp_path / name)])
        assert result.exit_code == 1 and message in result.output, result.output
    other = tmp_path / "notctc"
    other.mkdir()
    (other / "run.json").write_text('{"format": "lstmkit.run", "version": 1, "task": "charlm"}')
    result = CliRunner().invoke(app, ["recognize", str(other), str(tmp_path / "mono.wav")])
    assert result.exit_code == 1 and "Error:" in result.output


def test_without_espeak_the_task_says_how_to_install_it_and_stops(monkeypatch, tmp_path):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    task = get_task("ctc-speech")
    config = task.smoke_config(tmp_path)
    with pytest.raises(DataUnavailable, match=r"(?s)espeak-ng is not installed.*apt-get install -y espeak-ng"):
        runner.train("ctc-speech", config, tmp_path / "run")
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()  # nothing written
    info = {i.name: i for i in runner.list_tasks()}["ctc-speech"]
    assert not info.available and "apt-get install -y espeak-ng" in info.note


@pytest.mark.slow
def test_default_run_reaches_wer_2_percent_on_unseen_voices(tmp_path):
    """The issue's target, with the defaults (about 7 minutes on 2 cores; the data is cached after the first run)."""
    result = runner.train("ctc-speech", runner.build_config("ctc-speech"), tmp_path / "run")
    assert result.metrics["test"]["beam"]["wer"] <= 0.02

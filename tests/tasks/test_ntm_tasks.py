"""``ntm-copy`` and ``ntm-recall``: their sequences, the scores, the LSTM baseline's budget, runs from the command
line."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.models.memory import MemoryLSTM, memory_param_count
from lstmkit.tasks import TaskError, get_task, runner
from lstmkit.tasks.longrange.common import model_param_count
from lstmkit.tasks.longrange.ntm_copy import copy_bits_batch
from lstmkit.tasks.longrange.ntm_recall import recall_batch
from lstmkit.tasks.rundir import open_run
from smoke import train_smoke

TASK = "ntm-copy"
RECALL = "ntm-recall"
ONE_LAYER = "model.kind='ntm' has one LSTM controller layer: set model.cell='lstm' and model.num_layers=1"


def test_a_copy_sequence_shows_the_vectors_then_the_delimiter_then_asks_for_them_back():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([3, 1, 5])
    b = copy_bits_batch(lengths, 4, g)
    assert b.x.shape == (11, 3, 5) and b.y.shape == (11, 3, 4) and b.mask.shape == (11, 3)
    assert b.lengths.tolist() == [7, 3, 11] and b.sizes.tolist() == [3, 1, 5]
    for j, L in enumerate(lengths.tolist()):
        shown = b.x[:L, j, :4]
        assert set(shown.unique().tolist()) <= {0.0, 1.0} and not b.x[:L, j, 4].any()
        assert b.x[L, j].tolist() == [0, 0, 0, 0, 1]  # the delimiter, on its own channel
        assert not b.x[L + 1 :, j].any()  # nothing shown while recalling, nor in the padding
        assert b.mask[:, j].nonzero().flatten().tolist() == list(range(L + 1, 2 * L + 1))
        assert torch.equal(b.y[L + 1 : 2 * L + 1, j], shown)  # the same vectors, in order
        assert not b.y[~b.mask[:, j], j].any()
    again = copy_bits_batch(lengths, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(u, v) for u, v in zip(b, again, strict=True))


def test_a_recall_sequence_shows_the_items_then_a_query_and_asks_for_the_next_item():
    g = torch.Generator().manual_seed(0)
    items = torch.tensor([2, 5, 3])
    n, W = 3, 6
    b = recall_batch(items, W, n, g)
    assert b.lengths.tolist() == [4 * k + 8 for k in (2, 5, 3)] and b.x.shape == (28, 3, W + 2)
    for j, k in enumerate(items.tolist()):
        x = b.x[:, j]
        listed = [x[4 * i + 1 : 4 * i + 4, :W] for i in range(k)]
        for i in range(k):
            assert x[4 * i].tolist() == [0] * W + [1, 0]  # an item delimiter before each item
            assert not x[4 * i + 1 : 4 * i + 4, W:].any()
        start = 4 * k
        assert x[start].tolist() == x[start + 4].tolist() == [0] * W + [0, 1]  # the query between two delimiters
        query = x[start + 1 : start + 4, :W]
        q = next(i for i in range(k) if torch.equal(listed[i], query))
        assert q <= k - 2  # an item that has a next one
        assert b.mask[:, j].nonzero().flatten().tolist() == [start + 5, start + 6, start + 7]
        assert torch.equal(b.y[start + 5 : start + 8, j], listed[q + 1])
        assert not x[start + 5 :].any()  # nothing shown while answering, nor in the padding
    many = recall_batch(torch.full((300,), 4), 16, 1, torch.Generator().manual_seed(1))  # 16 bits: no ties
    asked = [next(i for i in range(4) if torch.equal(many.x[2 * i + 1, j, :16], many.x[9, j, :16])) for j in range(300)]
    counts = torch.bincount(torch.tensor(asked), minlength=4).tolist()
    assert counts[3] == 0 and min(counts[:3]) > 70  # queries uniform over the items that have a next one


def test_the_scores_of_a_guess_and_of_a_perfect_copy():
    task = get_task(TASK)
    config = task.prepare(runner.build_config(TASK)).config
    b = copy_bits_batch(torch.tensor([2, 6, 4]), 8, torch.Generator().manual_seed(1))
    guess = torch.zeros(b.y.shape)  # logit 0: every bit at 1/2
    loss, items = task.loss(guess, b)
    assert items == (2 + 6 + 4) * 8
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6) == task.baselines(config.data)["baseline_nats_per_bit"]
    cost = task.per_sequence(guess, b)["cost_bits"]
    torch.testing.assert_close(cost, torch.tensor([16.0, 48.0, 32.0], dtype=torch.float64))  # 1 bit per target bit
    perfect = 30.0 * (2 * b.y - 1)  # confident and right
    scores = task.per_sequence(perfect, b)
    assert scores["bit_errors"].tolist() == [0, 0, 0] and scores["success"].tolist() == [1, 1, 1]
    wrong = perfect.clone()
    wrong[3, 0, 5] *= -1  # one bit of the first sequence (L = 2: recall steps 3, 4)
    wrong[0, 1, 0] *= -1  # a step that is not scored
    scores = task.per_sequence(wrong, b)
    assert scores["bit_errors"].tolist() == [1, 0, 0] and scores["success"].tolist() == [0, 1, 1]


def test_the_lstm_baseline_gets_the_ntm_parameter_budget():
    task = get_task(TASK)
    config = task.prepare(runner.build_config(TASK)).config
    ntm = task.build_model(config)
    assert isinstance(ntm, MemoryLSTM)
    budget = sum(p.numel() for p in ntm.parameters())
    assert budget == memory_param_count(config.model)
    c = dataclasses.replace(config, model=dataclasses.replace(config.model, kind="lstm"))
    lstm = task.build_model(c)
    H = task.hidden_size(c.model)
    assert lstm.rnn.hidden_size == H and sum(p.numel() for p in lstm.parameters()) == model_param_count(c.model, H)
    assert model_param_count(c.model, H) <= budget < model_param_count(c.model, H + 1)
    same = dataclasses.replace(c.model, equal_params=False)
    assert task.hidden_size(same) == config.model.hidden_size


def test_the_test_split_scores_each_length_on_its_own():
    task = get_task(TASK)
    config = runner.build_config(TASK, overrides=["data.test_lengths=[3, 40]", "data.test_size=300"])
    chunks = task.eval_batches(config, "test")
    assert [(b.x.shape[1], int(b.sizes.unique())) for b in chunks] == [(250, 3), (50, 3), (250, 40), (50, 40)]
    val = task.eval_batches(config, "val")[0]
    assert val.sizes.min() == 1 and val.sizes.max() == 20  # every trained length
    other = runner.build_config(TASK, overrides=["data.test_lengths=[3, 40]", "data.test_size=300", "train.seed=5",
                                                 "model.kind=lstm"])  # fmt: skip
    assert torch.equal(task.eval_batches(other, "test")[2].x, chunks[2].x)  # fixed by data.seed alone


@pytest.mark.parametrize(("task", "sizes", "name"), [(TASK, ("2", "5"), "L"), (RECALL, ("2", "4"), "items")])
def test_smoke_runs_of_both_kinds_score_every_test_size_and_reopen(tmp_path, task, sizes, name):
    for kind in ("ntm", "lstm"):
        result = train_smoke(task, tmp_path / kind, {"model.kind": kind})
        m = result.metrics
        assert set(m["test"]["by_size"]) == set(sizes)
        per = m["test"]["by_size"]
        assert per[sizes[0]]["sequences"] == per[sizes[1]]["sequences"] == 8
        mean = (per[sizes[0]]["bit_errors"] + per[sizes[1]]["bit_errors"]) / 2
        assert m["test"]["bit_errors"] == pytest.approx(mean)
        assert f"by size: {name}={sizes[0]}:" in "\n".join(result.lines)
        run = open_run(tmp_path / kind / "run")
        again = run.task.evaluate(run, "test")
        assert again["by_size"] == per and again["nats_per_bit"] == pytest.approx(m["test"]["nats_per_bit"])
        summary = json.loads((tmp_path / kind / "run" / "summary.json").read_text())
        assert summary["cell"] == ("NTM (LSTM controller)" if kind == "ntm" else "lstm")


def test_the_ntm_exports_and_serves_a_copy_sequence_with_onnxruntime_alone(tmp_path):
    """``lstmkit export`` writes the NTM's graph (verified); onnxruntime, from the start the file's metadata gives,
    reads a test copy sequence as the run's model does; ``--int8`` and ``--lengths`` are refused by name."""
    import numpy as np
    import onnxruntime as ort

    from lstmkit.export.memory import START_KEY, bounds, start_inputs

    train_smoke(TASK, tmp_path)
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "recurrent layers as ONNX operators: Scan" in result.output and "verified in onnxruntime" in result.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["lstmkit.task"] == TASK
    run = open_run(tmp_path / "run")
    model = run.load_weights(run.task.build_model(run.config)).eval()
    batch = run.task.eval_batches(run.config, "test")[0]  # (T, B, I) copy sequences of the test split
    start = start_inputs(json.loads(meta[START_KEY]), batch.x.shape[1])
    got = session.run(["logits"], {"features": batch.x.numpy(), **start})[0]
    with torch.no_grad():
        want = model(batch.x)[0].numpy()
    allowed = 2 * bounds(model, {"features": batch.x, **{k: torch.from_numpy(v) for k, v in start.items()}})["logits"]
    assert (np.abs(got - want) <= allowed.numpy()).all()
    for options, message in ((["--int8"], "--int8 does not cover this model (MemoryLSTM): the int8 check bounds"),
                             (["--lengths"], "--lengths does not apply to a model with an external memory")):
        result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "n.onnx"),
                                          *options])  # fmt: skip
        assert result.exit_code in (1, 2) and message in result.output, result.output
        assert not (tmp_path / "n.onnx").exists()


@pytest.mark.parametrize(
    ("task", "overrides", "message"),
    [
        (TASK, ["model.kind=ntm", "model.cell=gru"], f"{ONE_LAYER}, got 'gru' and 1"),
        (TASK, ["model.num_layers=2"], f"{ONE_LAYER}, got 'lstm' and 2"),
        (TASK, ["model.forget_bias=3.0"], "model.forget_bias and model.chrono_tmax apply to model.kind='lstm' only"),
        (TASK, ["data.min_length=5", "data.max_length=4"], "need 1 <= data.min_length <= data.max_length, got 5 and 4"),
        (TASK, ["data.test_lengths=[]"], r"data.test_lengths must be lengths >= 1, got \[\]"),
        (TASK, ["data.test_lengths=[10, 0]"], r"data.test_lengths must be lengths >= 1, got \[10, 0\]"),
        (TASK, ["data.test_lengths=5"], "data.test_lengths: expected a list, got 5"),
        (TASK, ["data.curriculum_start=2"], "data.curriculum_start needs a task with data.length; 'ntm-copy' has none"),
        (RECALL, ["data.min_items=1"], "need 2 <= data.min_items <= data.max_items, got 1 and 6"),
        (RECALL, ["data.test_items=[3, 1]"], r"data.test_items must be item counts >= 2, got \[3, 1\]"),
        (RECALL, ["data.item_length=0"], "data.item_length must be >= 1, got 0"),
        (RECALL, ["model.kind=dnc"], "model.kind must be 'ntm' or 'lstm', got 'dnc'"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_by_name(task, overrides, message):
    with pytest.raises((ValueError, TaskError), match=f"^{message}$"):
        config = runner.build_config(task, overrides=overrides)
        get_task(task).prepare(config)

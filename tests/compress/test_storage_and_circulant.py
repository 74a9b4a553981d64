"""`lstmkit compress prune` stores pruned matrices sparse (bitwise the same weights, a smaller file);
`lstmkit compress circulant` writes a K-times-smaller run that evaluate, generate and export read."""

from __future__ import annotations

import json

import pytest
import safetensors
import torch
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.compress import circulant_run, load_model
from lstmkit.formats import circulant as cc
from lstmkit.formats import file_format, sparse
from lstmkit.tasks import runner


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def report(out):
    return json.loads((out / "compression.json").read_text(encoding="utf-8"))


def test_pruned_runs_are_stored_sparse_and_load_bitwise_equal(char_run, tmp_path):
    s, d = tmp_path / "sparse", tmp_path / "dense"
    for out, flag in ((s, "--sparse"), (d, "--dense")):
        r = invoke("compress", "prune", char_run, "--out", out, "--sparsity", 0.9, flag, "--repeats", 2)
        assert r.exit_code == 0, r.output
    assert file_format(s / "model.safetensors") == sparse.FORMAT and file_format(d / "model.safetensors") == "float"
    rep = report(s)
    assert rep["options"]["storage"] == "sparse" and rep["storage"]["format"] == sparse.FORMAT
    assert "stored sparse (values + bitmask)" in invoke("compress", "prune", char_run, "--out", tmp_path / "again",
                                                        "--sparsity", 0.9, "--repeats", 1).stdout  # fmt: skip
    # at 90%: each stored matrix takes 4 * 0.1 n + n / 8 bytes instead of 4 n
    assert rep["storage"]["sparse_bytes"] < 0.15 * rep["storage"]["dense_bytes"]
    assert rep["after"]["model_bytes"] < report(d)["after"]["model_bytes"] / 2
    (_, a), (_, b) = load_model(s), load_model(d)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x.view(torch.int32), y.view(torch.int32)), name
    assert invoke("evaluate", s).exit_code == 0 and invoke("generate", s, "--length", 5).exit_code == 0
    metrics, _ = runner.evaluate(s, "val")
    assert metrics == runner.evaluate(d, "val")[0]


def test_structured_pruning_stays_an_ordinary_file(classify_run, tmp_path):
    out = tmp_path / "s"
    assert invoke("compress", "prune", classify_run, "--out", out, "--sparsity", 0.5, "--structured",
                  "--repeats", 1).exit_code == 0  # fmt: skip
    assert file_format(out / "model.safetensors") == "float" and report(out)["storage"]["format"] == "float"


def test_circulant_run_is_k_times_smaller_and_evaluates(char_run, tmp_path):
    out = tmp_path / "c4"
    r = invoke("compress", "circulant", char_run, "--out", out, "--block", 4, "--finetune-steps", 2, "--repeats", 2,
               "--split", "val", "--split", "test")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "circulant FFT product, reference loop" in r.stdout
    rep = report(out)
    assert rep["method"] == "circulant" and rep["complete"] and rep["finetune"]["steps"] == 2
    assert set(rep["circulant"]) >= {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1"}
    with safetensors.safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["format"] == cc.FORMAT
        assert f.get_tensor("rnn.weight_hh_l0.__circulant").shape == (16, 4, 4)  # (4H/K, H/K, K): H = 16
    _, model = load_model(out)
    assert isinstance(model.rnn.parametrizations.weight_hh_l0[0], cc.BlockCirculant)
    assert rep["after"]["parameters"] < rep["before"]["parameters"]
    assert set(rep["latency_by_product"]) >= {"float, layers' kernels", "circulant FFT product, reference loop"}
    assert invoke("evaluate", out, "--split", "test").exit_code == 0
    assert invoke("generate", out, "--length", 5).exit_code == 0
    metrics, _ = runner.evaluate(out, "test")
    assert metrics["bits_per_char"] == pytest.approx(rep["after"]["metrics"]["test"]["bits_per_char"])


def test_circulant_fft_product_run_scores_as_the_dense_one(classify_run, tmp_path):
    dense = circulant_run(classify_run, tmp_path / "d", block=2, repeats=1)
    fft = circulant_run(classify_run, tmp_path / "f", block=2, product="fft", repeats=1)
    _, model = load_model(tmp_path / "f")
    assert {p.product for p in cc.circulant_parts(model).values()} == {"fft"}
    a, b = dense["after"]["metrics"]["val"], fft["after"]["metrics"]["val"]
    assert a["accuracy"] == b["accuracy"]
    assert a["nats_per_sequence"] == pytest.approx(b["nats_per_sequence"], abs=1e-4)


def test_circulant_errors_are_named_before_any_work(char_run, tmp_path):
    r = invoke("compress", "circulant", char_run, "--out", tmp_path / "c3", "--block", 3)
    assert r.exit_code == 2 and "block=3 (--block) must divide both sizes of every gate matrix" in r.stderr
    assert "rnn.weight_ih_l0 is (64, 8): 64 is not a multiple of 3. Block sizes that fit this model: 2, 4, 8" \
        in r.stderr  # fmt: skip
    assert not (tmp_path / "c3").exists()
    r = invoke("compress", "circulant", char_run, "--out", tmp_path / "c1", "--block", 1)
    assert r.exit_code == 2 and "block must be an integer >= 2" in r.stderr
    assert invoke("compress", "circulant", char_run, "--out", tmp_path / "ok", "--block", 2, "--repeats", 1,
                  "--product", "fft").exit_code == 0  # fmt: skip
    r = invoke("compress", "quantize", tmp_path / "ok", "--out", tmp_path / "q")
    assert r.exit_code == 1 and "is block-circulant already" in r.stderr

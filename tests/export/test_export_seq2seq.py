"""``lstmkit export`` of a seq2seq run: an encoder graph and a one-step decoder graph, verified in onnxruntime;
``examples/onnx_translate.py``'s numpy beam search over them gives PyTorch's outputs and scores on the test split."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx
import pytest

from lstmkit.export.rundir import export_run
from lstmkit.models import beam_search
from lstmkit.tasks import runner
from lstmkit.tasks.rundir import open_run
from lstmkit.tasks.seq2seq.data import source_batches

pytest.importorskip("onnxruntime")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_translate.py"
FAST = ["data.dates=[96, 8, 12]", "data.batch_size=16", "model.hidden_size=16", "model.embedding_dim=8",
        "model.beam_size=3", "train.max_steps=6", "train.warmup_steps=1", "train.progress=false",
        "train.tensorboard=false", "train.log_every=2", "train.max_minutes=none", "train.lr=0.01"]  # fmt: skip


def _example():
    spec = importlib.util.spec_from_file_location("onnx_translate", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", [
    ["model.attention=general", "model.num_layers=2"],
    ["model.attention=additive", "model.bidirectional=false"],
    ["model.attention=none", "model.layer_norm=true"],  # LayerNorm: both stacks as Scan graphs
    ["model.attention=general", "model.zoneout=[0.1, 0.3]"],  # zoneout: Scan graphs with its eval-mode update
    ["model.attention=dot", "model.peephole=true", "model.coupled=true", "model.embedding_dim=16",
     "model.tie_weights=true"],
])  # fmt: skip
def test_export_verifies_and_numpy_beam_search_matches_pytorch(tmp_path, variant):
    config = runner.build_config("seq2seq", overrides=[*FAST, *variant])
    run_dir = runner.train("seq2seq", config, tmp_path / "run").run_dir
    result = export_run(run_dir)
    assert result.max_abs_error is not None and result.path.name == "model.encoder.onnx"
    meta = {p.key: p.value for p in onnx.load(str(result.decoder_path)).metadata_props}
    assert meta["lstmkit.task"] == "seq2seq" and "lstmkit.target_tokenizer" in meta
    if "model.layer_norm=true" in variant or "model.zoneout=[0.1, 0.3]" in variant:
        assert set(result.layers) == {"Scan"}

    run = open_run(run_dir)
    model, source, target = run.task.load_run(run)
    pairs = run.task.prepare(run.config).pairs["test"]
    texts = [p.source for p in pairs]
    src, lengths, _ = source_batches(texts, source)
    want = beam_search(model, src, lengths, n_best=2)
    translator = _example().Translator(run_dir)
    got = translator.beam_search([translator.encode_text(t) for t in texts], n_best=2)
    for w, g in zip(want, got, strict=True):
        assert [h.tokens for h in w] == [h["tokens"] for h in g]
        assert [h.finished for h in w] == [h["finished"] for h in g]
        assert [h["score"] for h in g] == pytest.approx([h.score for h in w], abs=1e-4)
    assert translator.translate(texts[:1])[0][0][0] == target.decode(want[0][0].tokens)


@pytest.mark.parametrize("attention", ["general", "additive", "none"])
def test_verification_allows_rounding_and_catches_a_changed_weight(tmp_path, attention):
    import torch

    from lstmkit.export.onnx_model import ExportVerificationError
    from lstmkit.export.seq2seq import _random_source, decoder_tolerance, encoder_tolerance, export_seq2seq, verify
    from lstmkit.models import Seq2Seq, Seq2SeqModel

    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqModel(vocab_size=11, output_size=13, hidden_size=12, num_layers=2, dropout=0.0,
                                 attention=attention)).eval()  # fmt: skip
    result = export_seq2seq(model, tmp_path / "m.onnx")
    with torch.no_grad():
        tokens, lengths = _random_source(model, 7, 3, 0)
        enc = model.encode(tokens, lengths)
        tols = [encoder_tolerance(model, tokens, lengths),
                decoder_tolerance(model, torch.full((3,), 2), *enc.state, enc.feed, enc.memory)]  # fmt: skip
    assert 0 <= result.max_abs_error < min(tols) < 1.0  # derived for these sizes: above rounding, below a real change
    with torch.no_grad():
        model.out.bias[5] += 1.0  # the graphs keep the old bias: the log-probabilities move by about 1
    with pytest.raises(ExportVerificationError, match="log_probs"):
        verify(model, result.path, result.decoder_path)

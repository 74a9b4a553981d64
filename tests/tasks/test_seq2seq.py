"""The sequence-to-sequence tasks: the TSV reader and its named errors, vocabularies and batches, the g2p
dictionary reading and split, the dates demo, the scores, the teacher-forcing schedule, and seconds-long
end-to-end runs of the user-TSV path (word symbols) and the dates demo (g2p's runs in test_registry)."""

from __future__ import annotations

import pytest
import torch

from lstmkit.models.seq2seq import BOS_ID, EOS_ID, PAD_ID
from lstmkit.tasks import runner
from lstmkit.tasks.seq2seq import (
    EmptySide,
    MissingTab,
    NotUTF8,
    Pair,
    Seq2SeqTrain,
    TSVError,
    collate,
    g2p_scores,
    read_tsv,
    split_of,
    text_scores,
    vocabulary,
)
from lstmkit.tasks.seq2seq.dates import date_pairs
from lstmkit.tasks.seq2seq.g2p import read_cmudict

FAST = ["model.hidden_size=16", "model.embedding_dim=8", "model.num_layers=1", "model.beam_size=2",
        "train.max_steps=4", "train.warmup_steps=1", "train.progress=false", "train.tensorboard=false",
        "train.log_every=2", "train.max_minutes=none"]  # fmt: skip


def test_tsv_reader_reads_pairs_and_skips_blank_lines(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_bytes("\ufeffa b\tx y\r\n\n  \nc\td\te\n".encode())
    assert read_tsv(path) == [Pair("a b", ("x y",)), Pair("c", ("d\te",))]


@pytest.mark.parametrize(("content", "error", "message"), [
    (b"a\tb\nno tab here\n", MissingTab, r"line 2: no TAB between source and target"),
    (b"a\tb\nc\td\n\t e\n", EmptySide, r"line 3: the source is empty"),
    (b"a\t \n", EmptySide, r"line 1: the target is empty"),
    (b"a\tb\nc\td\n\xe9t\xe9\tsummer\n", NotUTF8, r"line 3: not UTF-8 \(byte 0xe9 at column 1\)"),
])  # fmt: skip
def test_tsv_reader_errors_are_named_and_give_the_line(tmp_path, content, error, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(error, match=message) as info:
        read_tsv(path)
    assert isinstance(info.value, TSVError) and str(path) in str(info.value)


def test_vocabulary_puts_the_special_symbols_first_and_batches_are_shifted():
    tok = vocabulary("char", ["abca", "b"])
    assert tok.tokens[:6] == ["<pad>", "<unk>", "<s>", "</s>", "a", "b"]
    items = [(torch.tensor([4, 5, 6]), torch.tensor([4, 5, EOS_ID])), (torch.tensor([5]), torch.tensor([EOS_ID]))]
    src, lengths, tgt_in, tgt_out, mask = collate(items)
    assert src.t().tolist() == [[4, 5, 6], [5, PAD_ID, PAD_ID]] and lengths.tolist() == [3, 1]
    assert tgt_in.t().tolist() == [[BOS_ID, 4, 5], [BOS_ID, PAD_ID, PAD_ID]]
    assert tgt_out.t().tolist() == [[4, 5, EOS_ID], [EOS_ID, PAD_ID, PAD_ID]]
    assert mask.t().tolist() == [[True, True, True], [True, False, False]]


def test_cmudict_reading_groups_alternatives_strips_stress_and_splits_by_word(tmp_path):
    path = tmp_path / "mini.dict"
    path.write_text("read R EH1 D\nread(2) R IY1 D\nrecord R EH1 K ER0 D # noun\nrecord(2) R EH0 K ER1 D\n"
                    "tomato T AH0 M EY1 T OW2\n", encoding="utf-8")  # fmt: skip
    pairs = read_cmudict(path)
    assert pairs == [Pair("read", ("R EH D", "R IY D"), "read"), Pair("record", ("R EH K ER D",), "record"),
                     Pair("tomato", ("T AH M EY T OW",), "tomato")]  # fmt: skip
    assert read_cmudict(path, stress=True)[1].targets == ("R EH1 K ER0 D", "R EH0 K ER1 D")
    words = [f"w{i}" for i in range(2000)]
    splits = [split_of(w, 0.05, 0.05, 0) for w in words]
    assert splits == [split_of(w, 0.05, 0.05, 0) for w in words]  # fixed: a word's split never changes
    share = {s: splits.count(s) / len(words) for s in ("train", "val", "test")}
    assert 0.03 < share["val"] < 0.07 and 0.03 < share["test"] < 0.07


def test_dates_demo_holds_out_whole_dates():
    pairs = date_pairs((300, 40, 40), seed=0)
    dates = {s: {p.targets[0] for p in v} for s, v in pairs.items()}
    assert not (dates["train"] & dates["test"]) and not (dates["train"] & dates["val"])
    assert all(len(p.targets[0]) == 10 and p.targets[0][4] == "-" for p in pairs["test"])
    assert len({p.source for p in pairs["train"]}) > 250  # many formats and locales
    assert date_pairs((300, 40, 40), seed=0) == pairs


def test_g2p_scores_accept_any_pronunciation_and_count_phoneme_edits():
    pairs = [Pair("read", ("R EH D", "R IY D")), Pair("cat", ("K AE T",)), Pair("dog", ("D AO G",))]
    scores = g2p_scores(pairs, ["R IY D", "K AE", "D AO G"])
    assert scores["wer"] == pytest.approx(1 / 3)
    assert scores["per"] == pytest.approx(1 / 9)  # one deletion over 3 + 3 + 3 reference phonemes


def test_text_scores_use_sacrebleu():
    pairs = [Pair("a", ("2021-01-05",)), Pair("b", ("1999-12-31",))]
    perfect = text_scores(pairs, ["2021-01-05", "1999-12-31"])
    assert perfect["exact_match"] == 1.0 and perfect["bleu"] == pytest.approx(100.0)
    assert perfect["chrf"] == pytest.approx(100.0)
    assert text_scores(pairs, ["2021-01-05", "1999-12-30"])["exact_match"] == 0.5


def test_teacher_forcing_schedules():
    constant = Seq2SeqTrain(teacher_forcing=0.5)
    assert constant.teacher_forcing_at(0) == constant.teacher_forcing_at(10**6) == 0.5
    linear = Seq2SeqTrain(teacher_forcing=0.2, sampling_schedule="linear", sampling_steps=100)
    assert [linear.teacher_forcing_at(i) for i in (0, 50, 100, 500)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    sigmoid = Seq2SeqTrain(teacher_forcing=0.0, sampling_schedule="inverse_sigmoid", sampling_steps=1000)
    values = [sigmoid.teacher_forcing_at(i) for i in (0, 500, 2000, 10**6)]
    assert values[0] == pytest.approx(100 / 101) and values == sorted(values, reverse=True) and values[-1] < 1e-6
    with pytest.raises(ValueError, match=r"train\.teacher_forcing must be in \[0, 1\]"):
        Seq2SeqTrain(teacher_forcing=1.2)


class _Interrupted(Exception):
    pass


def test_a_resumed_run_continues_the_teacher_forcing_schedule(tmp_path, monkeypatch):
    from lstmkit.models import Seq2Seq

    ratios: list[float] = []
    stop_after = [None]
    forward = Seq2Seq.forward

    def recording(self, src, src_lengths, tgt_in, teacher_forcing=1.0, generator=None):
        if self.training:
            if stop_after[0] is not None and len(ratios) == stop_after[0]:
                raise _Interrupted  # a kill between two steps, after the checkpoint of the last
            ratios.append(teacher_forcing)
        return forward(self, src, src_lengths, tgt_in, teacher_forcing, generator)

    monkeypatch.setattr(Seq2Seq, "forward", recording)
    config = runner.build_config("seq2seq", overrides=[
        "data.dates=[64, 8, 8]", "data.batch_size=8", *FAST, "train.max_steps=6", "train.epochs=3",
        "train.checkpoint_every=1", "train.teacher_forcing=0.0", "train.sampling_schedule=linear",
        "train.sampling_steps=6"])  # fmt: skip
    runner.train("seq2seq", config, tmp_path / "whole")
    whole = list(ratios)
    assert whole == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])  # falls by 1/6 per batch
    ratios.clear()
    stop_after[0] = 3
    with pytest.raises(_Interrupted):
        runner.train("seq2seq", config, tmp_path / "cut")
    stop_after[0] = None
    runner.train("seq2seq", config, tmp_path / "cut")  # resumes from the checkpoint of step 3
    assert ratios == whole  # not [1, 5/6, 4/6] + [1, 5/6, 4/6] as when the count restarted


def test_user_tsv_with_word_symbols_trains_and_evaluates(tmp_path):
    path = tmp_path / "words.tsv"
    lines = [f"the {c} sat\tle {c} assis" for c in ("cat", "dog", "bird", "cow", "fox", "owl", "rat", "bee")] * 5
    path.write_text("\n".join(f"{i} {line}" for i, line in enumerate(lines)) + "\n", encoding="utf-8")
    data = [f"data.tsv={path}", "data.source_tokens=word", "data.target_tokens=word", "data.val_fraction=0.2",
            "data.test_fraction=0.2", "data.batch_size=8"]
    config = runner.build_config("seq2seq", overrides=[*data, *FAST])
    result = runner.train("seq2seq", config, tmp_path / "run")
    assert {"exact_match", "bleu", "chrf"} <= set(result.metrics["test"])
    metrics, lines = runner.evaluate(result.run_dir, "test")
    assert metrics["pairs"] == result.metrics["pairs"]["test"] and lines[0].startswith("test (")


def test_dates_demo_trains_and_evaluates(tmp_path):
    config = runner.build_config("seq2seq", overrides=["data.dates=[64, 8, 8]", "data.batch_size=16", *FAST])
    result = runner.train("seq2seq", config, tmp_path / "run")
    assert result.metrics["pairs"] == {"train": 64, "val": 8, "test": 8}
    assert "dates written by babel" in result.metrics["data"]
    metrics, _ = runner.evaluate(result.run_dir, "val")
    assert metrics["nats_per_token"] == pytest.approx(result.metrics["nats_per_token"], rel=1e-6)


def test_translate_prints_the_n_best_with_scores_and_draws_the_attention(tmp_path):
    from typer.testing import CliRunner

    from lstmkit.cli import app
    from lstmkit.tasks.seq2seq.translate import translate_run

    config = runner.build_config("seq2seq", overrides=["data.dates=[64, 8, 8]", "data.batch_size=16", *FAST])
    run_dir = runner.train("seq2seq", config, tmp_path / "run").run_dir
    png = tmp_path / "att.png"
    result = CliRunner().invoke(app, ["translate", str(run_dir), "5 Jan 2021", "--n-best", "2", "--attention",
                                      str(png)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[:2] for r in rows] == [["5 Jan 2021", "1"], ["5 Jan 2021", "2"]]
    assert float(rows[0][3]) <= 0 and png.read_bytes()[:4] == b"\x89PNG"
    (t,) = translate_run(run_dir, ["5 Jan 2021"], n_best=2)
    assert [o.text for o in t.outputs] == [r[2] for r in rows]  # the same as the library gives
    assert t.outputs[0].normalized >= t.outputs[1].normalized or not t.outputs[1].finished
    piped = CliRunner().invoke(app, ["translate", str(run_dir), "--n-best", "1"], input="5 Jan 2021\n\n1 mars 1990\n")
    assert piped.exit_code == 0 and [r.split("\t")[0] for r in piped.stdout.splitlines()] == ["5 Jan 2021",
                                                                                               "1 mars 1990"]
    bad = CliRunner().invoke(app, ["translate", str(tmp_path / "nope"), "x"])
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_distill_and_lowrank_a_seq2seq_run(tmp_path):
    from lstmkit.compress import distill_run, lowrank_run

    config = runner.build_config("seq2seq", overrides=["data.dates=[64, 8, 8]", "data.batch_size=16", *FAST])
    run_dir = runner.train("seq2seq", config, tmp_path / "run").run_dir
    report = distill_run(run_dir, tmp_path / "student", hidden_size=8, steps=2, progress=False, repeats=1)
    assert report["complete"] and report["teacher_used"] and report["training"]["steps"] == 2
    assert report["latency_input"] == [[256, 1], [1], [128, 1]]  # Task.example_input: source, length, target
    low = lowrank_run(run_dir, tmp_path / "low", rank=4, finetune_steps=2, progress=False, repeats=1)
    assert low["complete"]
    for out in ("student", "low"):
        metrics, _ = runner.evaluate(tmp_path / out, "val")
        assert "exact_match" in metrics


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_decode_passes_the_length_penalty_to_the_beam_search(alpha):
    from lstmkit.models import Seq2Seq, Seq2SeqModel, beam_search
    from lstmkit.tasks.seq2seq.data import source_batches
    from lstmkit.tasks.seq2seq.scoring import decode

    source = vocabulary("char", ["abcdefgh"])
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqModel(vocab_size=len(source), output_size=9, hidden_size=8, embedding_dim=4,
                                 num_layers=1, dropout=0.0, length_penalty=1.0)).eval()  # fmt: skip
    texts = ["dd", "abc", "hgfedcba"]  # in length order: decode's one batch is this one, padded alike
    got = decode(model, texts, source, beam_size=3, n_best=3, length_penalty=alpha)
    src, lengths, _ = source_batches(texts, source)
    want = beam_search(model, src, lengths, beam_size=3, n_best=3, length_penalty=alpha)
    for g, w in zip(got, want, strict=True):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        assert [h.normalized for h in g] == [h.normalized for h in w]  # the same batch: bit for bit
    default = decode(model, texts, source, beam_size=3, n_best=3)  # the config's 1.0
    assert [h.normalized for h in default[2]] != [h.normalized for h in got[2]]

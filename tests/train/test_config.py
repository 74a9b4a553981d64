from __future__ import annotations

import dataclasses

import pytest

from lstmkit.train import (
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
    set_values,
)


def test_defaults_are_the_documented_best_practice():
    c = Config()
    assert (c.model.hidden_size, c.model.num_layers, c.model.dropout, c.model.cell) == (256, 2, 0.2, "lstm")
    assert (c.train.lr, c.train.weight_decay, c.train.clip_norm) == (1e-3, 1e-2, 5.0)
    assert 100 <= c.data.bptt <= 200


def test_toml_round_trip(tmp_path):
    c = apply_overrides(Config(), ["model.vocab_size=80", "train.betas=[0.9, 0.98]", "train.max_steps=500"])
    path = tmp_path / "run.toml"
    text = dump_config(c, path)
    assert "[model]" in text and "vocab_size = 80" in text
    assert "input_size" not in text  # None values are left out: TOML has no null
    assert load_config(path) == c


def test_load_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\ncell = "gru"\n[train]\nlr = 3e-4\nepochs = 3\n')
    c = load_config(path)
    assert c.model.cell == "gru" and c.train.lr == 3e-4 and c.train.epochs == 3
    assert c.train.clip_norm == 5.0 and c.data == Config().data


def test_overrides_parse_types():
    c = apply_overrides(
        Config(),
        ["train.lr=3e-4", "model.cell=gru", "train.stateful=false", "train.weight_decay=0", "train.max_steps=none"],
    )
    assert c.train.lr == 3e-4 and c.model.cell == "gru" and c.train.stateful is False
    assert c.train.weight_decay == 0.0 and isinstance(c.train.weight_decay, float)  # int widened to float
    assert c.train.max_steps is None
    assert Config().train.lr == 1e-3  # the original is untouched (frozen dataclasses + replace)


def test_overrides_reject_unknown_and_ill_typed_by_name():
    with pytest.raises(ValueError, match=r"unknown key 'lrr' in \[train\]"):
        apply_overrides(Config(), ["train.lrr=1"])
    with pytest.raises(ValueError, match=r"unknown section 'optim'"):
        apply_overrides(Config(), ["optim.lr=1"])
    with pytest.raises(ValueError, match=r"train.lr: expected float, got str 'fast'"):
        apply_overrides(Config(), ["train.lr=fast"])
    with pytest.raises(ValueError, match=r"model.num_layers: expected int, got float 2.5"):
        apply_overrides(Config(), ["model.num_layers=2.5"])
    with pytest.raises(ValueError, match=r"train.stateful: expected bool, got int 1"):
        apply_overrides(Config(), ["train.stateful=1"])
    with pytest.raises(ValueError, match=r"must look like 'section.key=value'"):
        apply_overrides(Config(), ["lr=1"])
    with pytest.raises(TypeError, match="not one string"):
        apply_overrides(Config(), "train.lr=1")


def test_value_checks_name_the_field():
    with pytest.raises(ValueError, match=r"model.dropout must be in \[0, 1\), got 1.0"):
        apply_overrides(Config(), ["model.dropout=1.0"])
    with pytest.raises(ValueError, match=r"model.cell must be one of \('lstm', 'gru', 'rnn'\), got 'transformer'"):
        ModelConfig(cell="transformer")
    with pytest.raises(ValueError, match=r"train.epochs must be >= 1, got 0"):
        dataclasses.replace(TrainConfig(), epochs=0)
    with pytest.raises(ValueError, match=r"train.betas: expected a list of 2 values"):
        TrainConfig(betas=(0.9,))
    with pytest.raises(ValueError, match=r"^model.weight_dropout must be in \[0, 1\), got 1.0$"):
        ModelConfig(weight_dropout=1.0)


def test_weight_dropout_reaches_the_recurrent_layers_or_is_refused_with_the_reason():
    """Every task model that runs whole recurrent layers passes model.weight_dropout to them (seq2seq's decoder too,
    which holds one mask a batch over its one-step calls); the ones that step a cell (or whose recurrent weights are
    kernels) refuse it by name instead of ignoring it."""
    from lstmkit.models import ForecastModel, HandwritingModel, LMModel, SequenceModel
    from lstmkit.models.classifier import ClassifyModel, FCNClassifier, SequenceClassifier
    from lstmkit.models.forecaster import ForecastNet
    from lstmkit.models.frames import FramesModel
    from lstmkit.models.hybrid import AttentionLM
    from lstmkit.models.memory import MemoryLSTM, MemoryModel
    from lstmkit.models.recognizer import CTCModel, CTCRecognizer
    from lstmkit.models.seq2seq import Seq2SeqModel

    lm = LMModel(vocab_size=11, hidden_size=8, num_layers=2, weight_dropout=0.3)
    assert SequenceModel(lm).rnn.weight_dropout == 0.3
    hybrid = AttentionLM(dataclasses.replace(lm, attention=True, attention_layer=1))
    assert {hybrid.lstm_below.weight_dropout, hybrid.lstm_above.weight_dropout} == {0.3}
    classify = ClassifyModel(input_size=2, output_size=3, max_length=9, hidden_size=8, weight_dropout=0.3)
    assert SequenceClassifier(classify).rnn.weight_dropout == 0.3
    assert FCNClassifier(dataclasses.replace(classify, arch="lstm-fcn")).rnn.weight_dropout == 0.3
    assert CTCRecognizer(CTCModel(input_size=4, output_size=5, hidden_size=8, weight_dropout=0.3)).rnn.weight_dropout \
        == 0.3
    forecast = ForecastModel(input_size=1, output_size=1, hidden_size=8, weight_dropout=0.3)
    assert ForecastNet(forecast, ar_order=2).core.rnn.weight_dropout == 0.3
    from lstmkit.models.seq2seq import Seq2Seq

    s2s = Seq2Seq(Seq2SeqModel(vocab_size=7, output_size=9, hidden_size=8, weight_dropout=0.3))
    assert s2s.encoder.weight_dropout == s2s.decoder.weight_dropout == 0.3  # the decoder holds one mask a batch
    ntm = MemoryLSTM(MemoryModel(input_size=3, output_size=2, hidden_size=8, weight_dropout=0.3))
    assert ntm.cell.controller.weight_dropout == 0.3  # the NTM's controller cell: one mask a call
    refused = {HandwritingModel: "its first layer steps a cell and the soft window one point at a time",
               FramesModel: "the ConvLSTM's recurrent weights are convolution kernels"}  # fmt: skip
    for cls, reason in refused.items():
        with pytest.raises(ValueError) as caught:
            cls(weight_dropout=0.3)
        assert str(caught.value) == (f"model.weight_dropout=0.3 is not available for this task's model: {reason}; "
                                     "leave it at 0")
        assert cls().weight_dropout == 0.0


def test_zoneout_reaches_the_lstm_layers_or_is_refused_with_the_reason():
    """model.zoneout (a pair [h, c]) reaches every LSTM layer of the models that run whole layers and seq2seq's two
    stacks; the others refuse it by name; a GRU or RNN core takes the h rate and refuses a c rate."""
    from lstmkit.models import ForecastModel, HandwritingModel, LMModel, SequenceModel
    from lstmkit.models.classifier import ClassifyModel, FCNClassifier, SequenceClassifier
    from lstmkit.models.forecaster import ForecastNet
    from lstmkit.models.frames import FramesModel
    from lstmkit.models.hybrid import AttentionLM
    from lstmkit.models.memory import MemoryLSTM, MemoryModel
    from lstmkit.models.recognizer import CTCModel, CTCRecognizer
    from lstmkit.models.seq2seq import Seq2SeqModel

    z = (0.05, 0.5)
    lm = LMModel(vocab_size=11, hidden_size=8, num_layers=2, zoneout=z)
    assert SequenceModel(lm).rnn.zoneout == z
    assert SequenceModel(LMModel(vocab_size=11, hidden_size=8)).rnn.zoneout == (0.0, 0.0)
    hybrid = AttentionLM(dataclasses.replace(lm, attention=True, attention_layer=1))
    assert {hybrid.lstm_below.zoneout, hybrid.lstm_above.zoneout} == {z}
    classify = ClassifyModel(input_size=2, output_size=3, max_length=9, hidden_size=8, zoneout=z)
    assert SequenceClassifier(classify).rnn.zoneout == z
    assert FCNClassifier(dataclasses.replace(classify, arch="lstm-fcn")).rnn.zoneout == z
    assert CTCRecognizer(CTCModel(input_size=4, output_size=5, hidden_size=8, zoneout=z)).rnn.zoneout == z
    assert ForecastNet(ForecastModel(input_size=1, output_size=1, hidden_size=8, zoneout=z), ar_order=2
                       ).core.rnn.zoneout == z  # fmt: skip
    assert config_from_dict({"model": {"zoneout": [0.1, 0.3]}}).model.zoneout == (0.1, 0.3)
    from lstmkit.models.seq2seq import Seq2Seq

    s2s = Seq2Seq(Seq2SeqModel(vocab_size=7, output_size=9, hidden_size=8, zoneout=z))
    assert s2s.encoder.zoneout == s2s.decoder.zoneout == z  # the decoder steps one call a step: a draw a step
    ntm = MemoryLSTM(MemoryModel(input_size=3, output_size=2, hidden_size=8, zoneout=z))
    assert ntm.cell.controller.zoneout == z  # the NTM's controller cell: a draw a step
    refused = {HandwritingModel: "its first layer steps a cell and the soft window one point at a time",
               FramesModel: "the ConvLSTM has no zoneout"}  # fmt: skip
    for cls, reason in refused.items():
        with pytest.raises(ValueError) as caught:
            cls(zoneout=z)
        assert str(caught.value) == (f"model.zoneout=[0.05, 0.5] is not available for this task's model: {reason}; "
                                     "leave it at [0, 0]")
        assert cls().zoneout == (0.0, 0.0)
    with pytest.raises(ValueError, match=r"^model.zoneout's second rate is the LSTM cell state's; model.cell = "
                                         r"'gru' has no c: set it to 0, got \[0.05, 0.5\]$"):
        LMModel(cell="gru", zoneout=z)
    for cell in ("gru", "rnn"):  # h's rate alone
        assert SequenceModel(LMModel(vocab_size=11, hidden_size=8, cell=cell, zoneout=(0.1, 0.0))).rnn.zoneout == 0.1
    for bad in ((1.0, 0.0), (0.1, -0.1)):
        with pytest.raises(ValueError, match=r"^model.zoneout must be two rates \[h, c\] in \[0, 1\), got "):
            ModelConfig(zoneout=bad)
    with pytest.raises(ValueError, match=r"^model.zoneout: expected a list of 2 values, got 0.1$"):
        config_from_dict({"model": {"zoneout": 0.1}})


def test_from_dict_rejects_unknown_sections_and_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['optimizer'\]"):
        config_from_dict({"optimizer": {}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hidden'\] in \[model\]"):
        config_from_dict({"model": {"hidden": 3}})
    path = tmp_path / "bad.toml"
    path.write_text("[model\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(path)


def test_set_values_takes_typed_values_like_the_string_overrides():
    values = {"train.lr": 3e-4, "model.cell": "gru", "train.stateful": False, "train.weight_decay": 0,
              "train.betas": [0.9, 0.98], "train.max_steps": None}  # fmt: skip
    strings = ["train.lr=3e-4", "model.cell=gru", "train.stateful=false", "train.weight_decay=0",
               "train.betas=[0.9, 0.98]", "train.max_steps=none"]  # fmt: skip
    c = set_values(Config(), values)
    assert c == apply_overrides(Config(), strings)
    assert c.train.weight_decay == 0.0 and isinstance(c.train.weight_decay, float)  # int widened to float
    assert c.train.betas == (0.9, 0.98) and c.train.max_steps is None
    assert set_values(Config(), {"train.betas": (0.9, 0.98)}).train.betas == (0.9, 0.98)
    assert Config().train.lr == 1e-3  # the original is untouched
    assert set_values(c, {}) is c


def test_set_values_names_unknown_keys():
    with pytest.raises(ValueError, match=r"train.lrr: unknown key 'lrr' in \[train\]; known keys: \[.*'lr'"):
        set_values(Config(), {"train.lrr": 1.0})
    with pytest.raises(ValueError, match=r"optim.lr: unknown section 'optim'; known sections"):
        set_values(Config(), {"optim.lr": 1.0})
    with pytest.raises(ValueError, match=r"key 'lr' must look like 'section.key'"):
        set_values(Config(), {"lr": 1.0})
    with pytest.raises(TypeError, match="mapping"):
        set_values(Config(), ["train.lr=1"])  # type: ignore[arg-type]
    for key in ("train.lrr", "optim.lr"):  # --set goes through set_values: the same message
        with pytest.raises(ValueError) as typed:
            set_values(Config(), {key: 1})
        with pytest.raises(ValueError) as parsed:
            apply_overrides(Config(), [f"{key}=1"])
        assert str(typed.value) == str(parsed.value)


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("train.lr", "fast", "fast"),  # a bare word is a string on the CLI too
        ("model.num_layers", 2.5, "2.5"),
        ("train.stateful", 1, "1"),
        ("train.epochs", None, "none"),
        ("train.betas", [0.9], "[0.9]"),
        ("model.dropout", 1.0, "1.0"),  # the right type, a value out of range
        ("model.cell", "transformer", "transformer"),
        ("train.lr", 0, "0"),
    ],
)
def test_set_values_rejects_bad_values_with_the_string_paths_message(key, value, text):
    with pytest.raises(ValueError) as typed:
        set_values(Config(), {key: value})
    with pytest.raises(ValueError) as parsed:
        apply_overrides(Config(), [f"{key}={text}"])
    assert str(typed.value) == str(parsed.value)
    assert key in str(typed.value)


@dataclasses.dataclass(frozen=True)
class _PathData(DataConfig):
    """A task's extended section (as ``LMData`` adds ``text``)."""

    text: str = ""


@pytest.mark.parametrize(
    "path", ['C:\\data\\new "run"\\text.txt', "/tmp/it's a \\ path/\"q\".txt", "\\\\server\\share\\x.txt"]
)
def test_set_values_keeps_quotes_and_backslashes_in_paths(path, tmp_path):
    """The reason tasks no longer format TOML strings to set a path: nothing to escape."""
    config = dataclasses.replace(Config(), data=_PathData())
    c = set_values(config, {"data.text": path})
    assert c.data.text == path
    toml_file = tmp_path / "run.toml"
    dump_config(c, toml_file)
    assert load_config(toml_file, config).data.text == path  # and it survives the run directory's TOML


def test_keys_checked_against_each_other_are_set_together_whatever_their_order():
    from lstmkit.models.hybrid import LMModel

    base = Config(model=LMModel(num_layers=1))
    for overrides in (["model.attention_layer=2", "model.num_layers=2"],
                      ["model.num_layers=2", "model.attention_layer=2"]):  # fmt: skip
        c = apply_overrides(base, overrides)
        assert (c.model.num_layers, c.model.attention_layer) == (2, 2)
    with pytest.raises(ValueError, match=r"model.attention_layer must be in \[1, model.num_layers = 1\]"):
        apply_overrides(base, ["model.attention_layer=2"])  # the final combination is still checked
    c = apply_overrides(base, ["train.lr=0.1", "model.num_layers=3", "train.lr=0.2"])
    assert c.train.lr == 0.2 and c.model.num_layers == 3  # a key given twice keeps its last value
    with pytest.raises(ValueError, match=r"^model.num_layers must be >= 1, got 0$"):
        apply_overrides(base, ["model.num_layers=0", "model.num_layers=2", "model.num_layers=0"])

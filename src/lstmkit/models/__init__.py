"""Models built on the ``lstmkit.nn`` layers, one module each, each saying its ``export_kind``:

- ``SequenceModel`` (``sequence``): embedding or features, recurrent core, linear head; language
  models and the long-range tasks;
- ``SequenceClassifier`` (``classifier``): a (bi)LSTM read out once per case; ``FCNClassifier``, the
  LSTM-FCN hybrid (an LSTM branch beside a 1-D conv branch);
- ``CTCRecognizer`` (``recognizer``): a (bi)LSTM emitting log-probabilities per step for CTC;
- ``ForecastNet`` (``forecaster``): a ``SequenceModel`` over a window plus a fixed AR skip;
- ``Seq2Seq`` (``seq2seq``): an attentional encoder-decoder; ``decoding`` holds its greedy and
  batched beam search.
- ``HandwritingNet`` (``handwriting``): Graves's mixture-density LSTM for pen offsets, unconditional or reading a
  text through a soft window (``mixture_nll``, ``sample_offsets``);
- ``AttentionLM`` (``hybrid``): an LSTM language model with Merity's single-head attention block over the
  chunk and a carried memory (SHA-RNN); ``LMModel``, the language-model tasks' config that chooses it;
- ``ConvForecaster`` (``frames``): an encoder-forecaster ConvLSTM stack predicting video frames, and
  ``FCForecaster``, its fully connected LSTM baseline.

Each model's config section (a ``ModelConfig`` subclass) lives beside it. ``lstmkit.export``
reads ``export_kind`` to know the graph's inputs and outputs; nothing dispatches on the classes.
"""

from __future__ import annotations

from lstmkit.models.classifier import (
    ARCHS,
    POOLINGS,
    AttentionPool,
    ClassifyModel,
    EnsembleClassifier,
    FCNClassifier,
    SequenceClassifier,
)
from lstmkit.models.decoding import Hypothesis, beam_search, greedy
from lstmkit.models.forecaster import EnsembleForecaster, ForecastModel, ForecastNet, least_squares
from lstmkit.models.frames import LOSSES, ConvForecaster, FCForecaster, FramesModel, fc_hidden_for, floored, frame_loss
from lstmkit.models.handwriting import HandwritingModel, HandwritingNet, MixtureParams, mixture_nll, sample_offsets
from lstmkit.models.hybrid import AttentionBlock, AttentionLM, AttentionState, LMModel, causal_mask
from lstmkit.models.recognizer import CTCModel, CTCRecognizer
from lstmkit.models.seq2seq import ATTENTIONS, Seq2Seq, Seq2SeqModel
from lstmkit.models.sequence import LSTMReader, SequenceModel, State, _make_rnn, last_valid

__all__ = [
    "ARCHS",
    "ATTENTIONS",
    "LOSSES",
    "POOLINGS",
    "AttentionBlock",
    "AttentionLM",
    "AttentionPool",
    "AttentionState",
    "CTCModel",
    "CTCRecognizer",
    "ClassifyModel",
    "ConvForecaster",
    "EnsembleClassifier",
    "EnsembleForecaster",
    "FCForecaster",
    "FCNClassifier",
    "ForecastModel",
    "ForecastNet",
    "FramesModel",
    "HandwritingModel",
    "HandwritingNet",
    "Hypothesis",
    "LMModel",
    "LSTMReader",
    "MixtureParams",
    "Seq2Seq",
    "Seq2SeqModel",
    "SequenceClassifier",
    "SequenceModel",
    "State",
    "_make_rnn",
    "beam_search",
    "causal_mask",
    "fc_hidden_for",
    "floored",
    "frame_loss",
    "greedy",
    "last_valid",
    "least_squares",
    "mixture_nll",
    "sample_offsets",
]

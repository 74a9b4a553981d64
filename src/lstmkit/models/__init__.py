"""Models built on the ``lstmkit.nn`` layers, one module each, each saying its ``export_kind``:

- ``SequenceModel`` (``sequence``): embedding or features, recurrent core, linear head; language
  models and the long-range tasks;
- ``SequenceClassifier`` (``classifier``): a (bi)LSTM read out once per case;
- ``CTCRecognizer`` (``recognizer``): a (bi)LSTM emitting log-probabilities per step for CTC;
- ``ForecastNet`` (``forecaster``): a ``SequenceModel`` over a window plus a fixed AR skip;
- ``Seq2Seq`` (``seq2seq``): an attentional encoder-decoder; ``decoding`` holds its greedy and
  batched beam search.

Each model's config section (a ``ModelConfig`` subclass) lives beside it. ``lstmkit.export``
reads ``export_kind`` to know the graph's inputs and outputs; nothing dispatches on the classes.
"""

from __future__ import annotations

from lstmkit.models.classifier import POOLINGS, ClassifyModel, SequenceClassifier
from lstmkit.models.decoding import Hypothesis, beam_search, greedy
from lstmkit.models.forecaster import ForecastModel, ForecastNet, least_squares
from lstmkit.models.recognizer import CTCModel, CTCRecognizer
from lstmkit.models.seq2seq import ATTENTIONS, Seq2Seq, Seq2SeqModel
from lstmkit.models.sequence import LSTMReader, SequenceModel, State, _make_rnn, last_valid

__all__ = [
    "ATTENTIONS",
    "POOLINGS",
    "CTCModel",
    "CTCRecognizer",
    "ClassifyModel",
    "ForecastModel",
    "ForecastNet",
    "Hypothesis",
    "LSTMReader",
    "Seq2Seq",
    "Seq2SeqModel",
    "SequenceClassifier",
    "SequenceModel",
    "State",
    "_make_rnn",
    "beam_search",
    "greedy",
    "last_valid",
    "least_squares",
]

"""``SequenceModel``: token embedding or feature input, an ``lstmkit.nn`` recurrent core, a linear head;
``LSTMReader``, the body the classifier and the recognizer share; ``last_valid``."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lstmkit.nn import GRU, LSTM, RNN, Linear
from lstmkit.stream import StreamParts
from lstmkit.train.config import ModelConfig

State = Tensor | tuple[Tensor, Tensor]  # (L, B, H) for GRU/RNN; (h, c) each (L, B, H) for LSTM

_CELLS: dict[str, type[nn.Module]] = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def _make_rnn(
    cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, weight_dropout: float = 0.0,
    zoneout: tuple[float, float] = (0.0, 0.0),
) -> nn.Module:
    """The recurrent core: an ``lstmkit.nn`` layer with ``torch.nn``'s constructor, time-major."""
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
    extra = {}
    if zoneout != (0.0, 0.0):  # an LSTM's h and c rates; a GRU's or RNN's h rate (ModelConfig checks c's is 0)
        extra["zoneout"] = zoneout if cell == "lstm" else zoneout[0]
    # torch.nn warns when dropout is set on a single layer; ours follow suit, so pass 0 there.
    return _CELLS[cell](input_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0,
                        weight_dropout=weight_dropout, **extra)


class SequenceModel(nn.Module):
    r"""Input layer, recurrent core, dropout and a linear head, time-major throughout.

    - Token input (``config.vocab_size``): ids (T, B) go through a trainable ``Embedding`` of size
      E = ``embedding_dim`` (default H). With ``tie_weights`` the head reuses the embedding matrix
      (Press & Wolf 2017); when H differs from E a bias-free ``Linear(H, E)`` projection maps the
      core's output to E first, so the tied matrix has the right shape.
    - Feature input (``config.input_size``): real values (T, B, I) go straight into the core.

    Dropout (``config.dropout``) acts on the embedding output, between recurrent layers and before
    the head (Zaremba et al. 2014); ``config.weight_dropout`` drops entries of the core's W_hh (DropConnect),
    ``config.zoneout`` zones out its LSTM's units.

    ``forward(x, state=None, lengths=None) -> (logits, state)`` with logits (T, B, O), O =
    ``output_size`` (default V for a language model). ``lengths`` (B,) masks padded steps: their
    outputs are zero before the head, and ``state`` is the one at each sequence's last valid step.
    """

    export_kind: ClassVar[str] = "sequence"  # lstmkit.export: ids or features (T, B, ...) -> logits, state

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        if (config.vocab_size is None) == (config.input_size is None):
            raise ValueError(
                "set exactly one of model.vocab_size (token ids) and model.input_size (real features), "
                f"got vocab_size={config.vocab_size}, input_size={config.input_size}"
            )
        output_size = config.output_size or config.vocab_size
        if output_size is None:
            raise ValueError("model.output_size is required with feature input (model.input_size)")
        if config.tie_weights and (config.vocab_size is None or output_size != config.vocab_size):
            raise ValueError(
                "model.tie_weights needs token input with output_size == vocab_size, got "
                f"vocab_size={config.vocab_size}, output_size={output_size}"
            )
        self.config = config
        H = config.hidden_size
        self.embedding: nn.Embedding | None = None
        if config.vocab_size is not None:
            E = config.embedding_dim or H
            self.embedding = nn.Embedding(config.vocab_size, E)
            # Small uniform init as in Zaremba et al. / AWD-LSTM: N(0, 1) rows saturate the first gates.
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
            core_in = E
        else:
            core_in = config.input_size
        self.rnn = _make_rnn(config.cell, core_in, H, config.num_layers, config.dropout, config.weight_dropout,
                             config.zoneout)
        self.drop = nn.Dropout(config.dropout)
        head_in = H
        self.proj: nn.Linear | None = None
        if config.tie_weights and self.embedding.embedding_dim != H:
            self.proj = Linear(H, self.embedding.embedding_dim, bias=False)
            head_in = self.embedding.embedding_dim
        self.head = Linear(head_in, output_size)  # over every step: on lstmkit's panels where MKL is the slower
        if config.tie_weights:
            self.head.weight = self.embedding.weight  # (V, E) shared

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """x: ids (T, B) or features (T, B, I); state: the core's (h, c) or h; lengths: (B,)."""
        if self.embedding is not None:
            if x.dtype not in (torch.int64, torch.int32) or x.ndim != 2:
                raise ValueError(f"x must be token ids (T, B) of int64, got {x.dtype} {tuple(x.shape)}")
            inputs = self.drop(self.embedding(x))  # (T, B, E)
        else:
            if not x.is_floating_point() or x.ndim != 3 or x.shape[-1] != self.config.input_size:
                raise ValueError(
                    f"x must be float features (T, B, {self.config.input_size}), got {x.dtype} {tuple(x.shape)}"
                )
            inputs = x
        out, state = self.rnn(inputs, state, lengths=lengths)  # (T, B, H)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (T, B, E)
        return self.head(out), state  # (T, B, O)

    def stream_parts(self) -> StreamParts:
        """What ``lstmkit.Stream`` runs step by step: the core and the weights around it."""
        return StreamParts(
            core=self.rnn,
            embedding=None if self.embedding is None else self.embedding.weight,  # (V, E)
            proj=None if self.proj is None else self.proj.weight,  # (E, H)
            head_weight=self.head.weight,  # (O, H or E)
            head_bias=self.head.bias,  # (O,)
        )


class LSTMReader(nn.Module):
    """A (bi)LSTM over padded sequences, dropout, and a linear layer of ``config.output_size`` outputs
    reading D*H features: the body that the classify and CTC task models share; each subclass's
    ``forward`` decides what the linear layer reads (a pooled state, or every step)."""

    def __init__(self, config: ModelConfig, bidirectional: bool) -> None:
        super().__init__()
        self.config = config
        self.rnn = LSTM(
            config.input_size,
            config.hidden_size,
            config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            weight_dropout=config.weight_dropout,
            zoneout=config.zoneout,
        )
        self.drop = nn.Dropout(config.dropout)
        # Over every step for the CTC readers (T B rows): lstmkit's panels where MKL is the slower.
        self.head = Linear(config.hidden_size * (2 if bidirectional else 1), config.output_size)


def last_valid(outputs: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Each sequence's output at its last valid step: (T, B, *) -> (B, *).

    ``lengths`` None takes step T - 1 for every sequence.
    """
    if outputs.ndim < 2:
        raise ValueError(f"outputs must be (T, B, *), got shape {tuple(outputs.shape)}")
    T, B = outputs.shape[:2]
    if lengths is None:
        return outputs[-1]
    lengths = torch.as_tensor(lengths, device=outputs.device)
    if lengths.shape != (B,) or (lengths < 1).any() or (lengths > T).any():
        raise ValueError(f"lengths must be shape ({B},) with values in [1, {T}], got {lengths.tolist()}")
    return outputs[lengths.long() - 1, torch.arange(B, device=outputs.device)]  # (B, *)

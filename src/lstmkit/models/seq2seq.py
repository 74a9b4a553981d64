r"""``Seq2Seq``: an attentional encoder-decoder (Luong et al. 2015, with input feeding) on ``lstmkit.LSTM``.

Encoder: embedding and a stacked bidirectional ``lstmkit.LSTM`` (any variant of the layer) over the
padded source, masked by ``lengths``. Its outputs (S, B, D*H) are projected to the memory
M = W_m out (S, B, H), which every attention reads.

Decoder, one step t (the ``lstmkit.LSTM`` of L layers called with one time step and explicit (h, c)):

.. math::
    x_t &= [E_{tgt}(y_{t-1});\ \tilde h_{t-1}]              \quad\text{input feeding} \\
    h_t, c_t &= \mathrm{LSTM}(x_t, (h_{t-1}, c_{t-1})) \\
    \alpha_t &= \mathrm{softmax}_s(\mathrm{score}(h_t, M_s)),\quad \alpha_{t,s} = 0 \text{ at padding} \\
    \tilde h_t &= \tanh(W_c [\textstyle\sum_s \alpha_{t,s} M_s;\ h_t]) \\
    p(y_t) &= \mathrm{softmax}(W_o\,\mathrm{dropout}(\tilde h_t) + b_o)

with ``score`` ``dot`` h·M_s, ``general`` (W_a h)·M_s, or ``additive`` (Bahdanau) v·tanh(W_q h + W_k M_s)
(the query is h_t, Luong's placement). ``none`` is the classic fixed-vector seq2seq: the context is the
memory projection of the encoder's final states, the same vector at every step, with exactly the
parameters of ``dot``. The decoder's initial state is a bridge from the encoder's final states of each
layer: h_0 = tanh(W_h [h_fwd; h_bwd]), c_0 = W_c0 [c_fwd; c_bwd].

Target ids follow the task tokenizers' layout: 0 ``<pad>``, 1 ``<unk>``, 2 ``<s>`` (BOS), 3 ``</s>`` (EOS).

Shapes: S source steps, T target steps, B batch, E embedding, H hidden, D directions, L layers,
V_s / V_t the vocabularies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from lstmkit.nn import LSTM, Linear
from lstmkit.train.config import ModelConfig

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
ATTENTIONS = ("dot", "general", "additive", "none")


@dataclass(frozen=True)
class Seq2SeqModel(ModelConfig):
    """``ModelConfig`` for ``Seq2Seq``: ``vocab_size`` is the source vocabulary, ``output_size`` the
    target vocabulary (both set from the tokenizers); ``embedding_dim`` (default H) both embeddings;
    ``num_layers`` both stacks; ``tie_weights`` ties the decoder's input embedding to its output
    layer (needs embedding_dim == hidden_size: the output layer reads the H-wide attentional vector)."""


    hidden_size: int = 256
    # Luong et al. 2015: general beat dot and concat for global attention. `--set model.attention=none` reads
    # as None (the CLI's word for "unset"), which means "none" here.
    attention: str | None = "general"
    bidirectional: bool = True  # the encoder sees each source symbol's right context too
    peephole: bool = False  # the lstmkit.LSTM variants, for both encoder and decoder
    coupled: bool = False  # coupled input-forget gates (f = 1 - i): fewer parameters, no gain measured here
    layer_norm: bool = False  # LayerNorm on the gates; off: the short sequences train stably without it
    # Both stacks: the decoder, called once per step, holds each batch's masks over its steps (holding_masks), so
    # the mask stays one per sequence as the variant means (weight_dropout's likewise, one per batch).
    recurrent_dropout: float = 0.0
    # Decoding: at most ceil(max_length_a * source length + max_length_b) output symbols, so a model
    # that never emits </s> still stops. 2x + 10 covers g2p (phonemes <= letters + 2) and dates.
    max_length_a: float = 2.0
    max_length_b: int = 10  # the + 10 of the bound above
    beam_size: int = 5  # Sutskever et al. 2014: a small beam gains most of what beams give
    length_penalty: float = 1.0  # GNMT's alpha in ((5 + |y|) / 6)^alpha; 0 ranks by the raw sum

    def _validate(self) -> None:
        super()._validate()
        if self.attention is None:
            object.__setattr__(self, "attention", "none")  # frozen: the documented way to set in __post_init__
        if self.cell != "lstm":
            raise ValueError(f"seq2seq uses lstmkit.LSTM; model.cell must be 'lstm', got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"model.attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if not 0.0 <= self.recurrent_dropout < 1.0:
            raise ValueError(f"model.recurrent_dropout must be in [0, 1), got {self.recurrent_dropout}")
        if self.max_length_a < 0 or self.max_length_b < 1:
            raise ValueError(f"model.max_length_a must be >= 0 and model.max_length_b >= 1, got "
                             f"{self.max_length_a} and {self.max_length_b}")  # fmt: skip
        if self.beam_size < 1:
            raise ValueError(f"model.beam_size must be >= 1, got {self.beam_size}")
        if self.length_penalty < 0:
            raise ValueError(f"model.length_penalty must be >= 0, got {self.length_penalty}")
        if self.tie_weights and (self.embedding_dim or self.hidden_size) != self.hidden_size:
            raise ValueError(f"model.tie_weights needs model.embedding_dim == model.hidden_size (the output layer "
                             f"reads H = {self.hidden_size} values), got embedding_dim={self.embedding_dim}")


class Encoded(NamedTuple):
    """What the decoder reads: the memory and its mask, and the decoder's first state.

    ``values``, ``keys`` and ``mask_bs`` are the same memory batch-first, made once per source, so that
    each decoder step's attention is two batched products without a copy of the memory per step."""

    memory: Tensor  # (S, B, H)
    mask: Tensor  # (S, B) bool, True at real source steps
    state: tuple[Tensor, Tensor]  # (h, c), each (L, B, H)
    feed: Tensor  # (B, H) the previous attentional vector; zeros before the first step
    context: Tensor | None  # (B, H) the fixed context of attention "none"; None otherwise
    values: Tensor | None = None  # (B, S, H) the memory batch-first; None for attention "none"
    keys: Tensor | None = None  # (B, S, H) additive: W_k M_s + b, else the memory itself
    mask_bs: Tensor | None = None  # (B, S) the mask batch-first


class DecoderState(NamedTuple):
    state: tuple[Tensor, Tensor]  # (h, c), each (L, B, H)
    feed: Tensor  # (B, H)


def max_output_lengths(src_lengths: Tensor, a: float, b: int) -> Tensor:
    """The output cap per sequence, ceil(a * S_i + b), symbols counted without </s>: (B,) int64."""
    return torch.ceil(src_lengths.double() * a + b).long()


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention; see the module docstring for the equations.

    ``forward(src, src_lengths, tgt_in, teacher_forcing=1.0) -> (logits (T, B, V_t), attention (T, B, S))``
    with ``tgt_in`` (T, B) starting with ``<s>``. ``encode`` and ``decode_step`` are the two halves that
    ``lstmkit.models.decoding`` (greedy and beam search) and the ONNX export use.
    """

    export_kind: ClassVar[str] = "seq2seq"  # lstmkit.export: an encoder graph and a one-step decoder graph

    def __init__(self, config: Seq2SeqModel) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqModel):
            raise TypeError(f"config must be a Seq2SeqModel, got {type(config).__name__}")
        if config.vocab_size is None or config.output_size is None:
            raise ValueError("model.vocab_size (source) and model.output_size (target) must be set (from the data)")
        self.config = config
        H, L, E = config.hidden_size, config.num_layers, config.embedding_dim or config.hidden_size
        D = 2 if config.bidirectional else 1
        # Both stacks take every variant and regulariser. The decoder is called one step at a time: zoneout draws anew
        # at every step, as it means; recurrent dropout's and DropConnect's masks are held over a batch's steps
        # (``forward``: holding_masks), as one call over the whole sequence would draw them.
        variants = {"peephole": config.peephole, "coupled": config.coupled, "layer_norm": config.layer_norm,
                    "zoneout": config.zoneout, "recurrent_dropout": config.recurrent_dropout,
                    "weight_dropout": config.weight_dropout}
        drop_between = config.dropout if L > 1 else 0.0
        self.src_embedding = nn.Embedding(config.vocab_size, E, padding_idx=PAD_ID)
        self.tgt_embedding = nn.Embedding(config.output_size, E, padding_idx=PAD_ID)
        for emb in (self.src_embedding, self.tgt_embedding):
            nn.init.uniform_(emb.weight, -0.1, 0.1)  # small rows: N(0, 1) rows saturate the first gates
            with torch.no_grad():
                emb.weight[PAD_ID].zero_()
        self.encoder = LSTM(E, H, L, dropout=drop_between, bidirectional=config.bidirectional, **variants)
        self.memory = Linear(D * H, H, bias=False)  # M = W_m out: keys and values of every attention (S B rows)
        self.bridge_h = nn.Linear(D * H, H)
        self.bridge_c = nn.Linear(D * H, H)
        self.decoder = LSTM(E + H, H, L, dropout=drop_between, **variants)  # input feeding: [E(y); h~]
        if config.attention == "general":
            self.score_w = nn.Linear(H, H, bias=False)
        elif config.attention == "additive":
            self.score_q = nn.Linear(H, H, bias=False)
            self.score_k = nn.Linear(H, H)
            self.score_v = nn.Linear(H, 1, bias=False)
        self.combine = nn.Linear(2 * H, H, bias=False)  # W_c [context; h]
        self.drop = nn.Dropout(config.dropout)
        self.out = Linear(H, config.output_size)  # over every target step: lstmkit's panels where MKL is slower
        if config.tie_weights:
            self.out.weight = self.tgt_embedding.weight  # (V_t, H) shared

    # -- the encoder ------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor) -> Encoded:
        """src (S, B) ids padded with 0, src_lengths (B,) each >= 1 -> :class:`Encoded`."""
        if src.ndim != 2 or src.dtype != torch.int64:
            raise ValueError(f"src must be token ids (S, B) of int64, got {src.dtype} {tuple(src.shape)}")
        S, B = src.shape
        src_lengths = torch.as_tensor(src_lengths, dtype=torch.int64, device=src.device)
        if src_lengths.shape != (B,) or (src_lengths < 1).any() or (src_lengths > S).any():
            raise ValueError(f"src_lengths must be ({B},) with values in [1, {S}], got {src_lengths.tolist()}")
        L, H = self.config.num_layers, self.config.hidden_size
        D = 2 if self.config.bidirectional else 1
        out, (h_n, c_n) = self.encoder(self.drop(self.src_embedding(src)), lengths=src_lengths)  # (S, B, D*H)
        memory = self.memory(out)  # (S, B, H); padded steps: W_m 0 = 0
        mask = torch.arange(S, device=src.device)[:, None] < src_lengths[None, :]  # (S, B)
        # (L*D, B, H) -> (L, B, D*H): each layer's final states of both directions side by side
        h_last = h_n.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)
        c_last = c_n.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)
        state = (torch.tanh(self.bridge_h(h_last)).contiguous(), self.bridge_c(c_last).contiguous())
        if self.config.attention == "none":
            context = self.memory(h_last[-1])  # (B, H)
            return Encoded(memory, mask, state, memory.new_zeros(B, H), context)
        values = memory.transpose(0, 1).contiguous()  # (B, S, H)
        keys = self.score_k(values) if self.config.attention == "additive" else values  # (B, S, H)
        return Encoded(memory, mask, state, memory.new_zeros(B, H), None, values, keys, mask.t().contiguous())

    # -- one decoder step -------------------------------------------------------------------------
    def attend(self, query: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """Attention weights (B, S) of queries (B, H) over memory (S, B, H); exactly 0 where mask is False."""
        values = memory.transpose(0, 1).contiguous()  # (B, S, H)
        keys = self.score_k(values) if self.config.attention == "additive" else values
        return self._attend(query, keys, mask.t())

    def _attend(self, query: Tensor, keys: Tensor, mask_bs: Tensor) -> Tensor:
        """``attend`` over the batch-first keys (B, S, H) of ``encode`` (additive: W_k M_s + b) and mask (B, S)."""
        if self.config.attention == "additive":
            hidden = torch.tanh(self.score_q(query)[:, None] + keys)  # (B, S, H)
            scores = self.score_v(hidden).squeeze(-1)  # (B, S)
        else:
            q = self.score_w(query) if self.config.attention == "general" else query  # (B, H)
            # A product and a sum, not bmm: torch's bmm of B tiny (S, H) @ (H, 1) matrices is many times slower.
            scores = (keys * q[:, None]).sum(-1)  # (B, S, H) * (B, 1, H) -> (B, S)
        scores = scores.masked_fill(~mask_bs, float("-inf"))  # exp(-inf) = 0: padding gets no weight
        return scores.softmax(dim=-1)

    def _step(self, embedded: Tensor, dec: DecoderState, enc: Encoded) -> tuple[Tensor, DecoderState, Tensor]:
        """One step up to the attentional vector: the previous symbols' (dropped-out) embeddings (B, E)
        -> (h~ (B, H), the next state, attention (B, S)). The output layer is the caller's, so that
        teacher forcing runs it once over all steps."""
        x = torch.cat([embedded, dec.feed], dim=-1)  # (B, E + H)
        y, state = self.decoder(x[None], dec.state)  # (1, B, H); one time step, explicit (h, c)
        h = y[0]  # (B, H), the top layer
        if enc.context is not None:
            context, weights = enc.context, enc.memory.new_zeros(h.shape[0], enc.memory.shape[0])
        else:
            assert enc.keys is not None and enc.values is not None and enc.mask_bs is not None
            weights = self._attend(h, enc.keys, enc.mask_bs)  # (B, S)
            context = (weights[:, :, None] * enc.values).sum(1)  # (B, S, 1) * (B, S, H) -> (B, H)
        feed = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))  # (B, H), the attentional vector
        return feed, DecoderState(state, feed), weights

    def decode_step(self, tokens: Tensor, dec: DecoderState, enc: Encoded) -> tuple[Tensor, DecoderState, Tensor]:
        """One step: previous tokens (B,) -> (logits (B, V_t), the next state, attention (B, S)).

        Attention ``none`` returns zeros for the attention weights (it attends to nothing)."""
        feed, dec, weights = self._step(self.drop(self.tgt_embedding(tokens)), dec, enc)
        return self.out(self.drop(feed)), dec, weights

    def start(self, enc: Encoded) -> DecoderState:
        return DecoderState(enc.state, enc.feed)

    # -- teacher forcing ---------------------------------------------------------------------------
    def forward(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Logits (T, B, V_t) and attention (T, B, S) for the target inputs ``tgt_in`` (T, B) (``<s>`` first).

        ``teacher_forcing`` is the chance that step t > 0 reads the true previous symbol; otherwise it
        reads the model's own previous prediction (its argmax, detached), drawn per sequence and step
        (scheduled sampling, Bengio et al. 2015). 1 is plain teacher forcing, 0 feeds back every prediction.
        """
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        enc = self.encode(src, src_lengths)
        with self.decoder.holding_masks():  # one dropout / DropConnect mask per batch across the decoder's steps
            return self._decode_all(enc, tgt_in, teacher_forcing, generator)

    def _decode_all(
        self, enc: Encoded, tgt_in: Tensor, teacher_forcing: float, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """``forward``'s steps over the target inputs, from the encoder's result."""
        dec = self.start(enc)
        if teacher_forcing >= 1.0:
            # Every input is known: embed all steps at once, and run the output layer once over every
            # step's h~ (one (T*B, H) product instead of T small ones).
            embedded = self.drop(self.tgt_embedding(tgt_in))  # (T, B, E)
            feeds, weights = [], []
            for t in range(tgt_in.shape[0]):
                feed, dec, w = self._step(embedded[t], dec, enc)
                feeds.append(feed)
                weights.append(w)
            return self.out(self.drop(torch.stack(feeds))), torch.stack(weights)  # (T, B, V_t), (T, B, S)
        logits, weights = [], []
        tokens = tgt_in[0]
        for t in range(tgt_in.shape[0]):
            if t > 0:
                own = logits[-1].argmax(dim=-1)  # (B,), no gradient flows through a choice
                if teacher_forcing <= 0.0:
                    tokens = own
                else:
                    keep = torch.rand(own.shape, generator=generator, device=own.device) < teacher_forcing
                    tokens = torch.where(keep, tgt_in[t], own)
            step_logits, dec, w = self.decode_step(tokens, dec, enc)
            logits.append(step_logits)
            weights.append(w)
        return torch.stack(logits), torch.stack(weights)

    @torch.no_grad()
    def score(self, src: Tensor, src_lengths: Tensor, tgt: list[list[int]]) -> Tensor:
        """The summed log-probability (B,) of each target sequence (ids without ``<s>``, ending in ``</s>``
        if it ended), teacher-forced: what beam search's scores must equal."""
        T = max(len(t) for t in tgt)
        B = len(tgt)
        tgt_in = torch.full((T, B), PAD_ID, dtype=torch.int64)
        tgt_out = torch.full((T, B), PAD_ID, dtype=torch.int64)
        for b, seq in enumerate(tgt):
            tgt_in[: len(seq), b] = torch.tensor([BOS_ID, *seq[:-1]], dtype=torch.int64)
            tgt_out[: len(seq), b] = torch.tensor(seq, dtype=torch.int64)
        logits, _ = self(src, src_lengths, tgt_in)
        logp = logits.log_softmax(-1).gather(-1, tgt_out[..., None]).squeeze(-1)  # (T, B)
        mask = torch.arange(T)[:, None] < torch.tensor([len(s) for s in tgt])[None, :]
        return (logp * mask).sum(0)


def gnmt_length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """((5 + |y|) / 6)^alpha (Wu et al. 2016): scores are divided by this to rank hypotheses."""
    if isinstance(length, Tensor):
        return ((5.0 + length.double()) / 6.0) ** alpha
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


__all__ = ["ATTENTIONS", "BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "DecoderState", "Encoded", "Seq2Seq", "Seq2SeqModel",
           "gnmt_length_penalty", "max_output_lengths"]

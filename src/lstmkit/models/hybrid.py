r"""``AttentionLM``: an LSTM language model with one single-head attention block inside its stack, after
Merity's SHA-RNN (2019, "Single Headed Attention RNN: Stop Thinking With Your Head", arXiv 1911.11423);
``LMModel``, the language-model tasks' ``[model]`` section that chooses it (``attention = true``) over
``SequenceModel``.

Network: token ids (T, B) -> ``Embedding`` (E) -> LSTM layers 1..a -> the block -> LSTM layers a+1..L -> dropout
-> (bias-free ``Linear(H, E)`` when tied and E != H) -> linear head (V). a = ``attention_layer`` (default L: the
block reads the top layer, as in SHA-RNN). The block, on the layer-a outputs x (T, B, H) and the memory m (M', B, H)
of the M' <= M steps before this chunk (M = ``attention_memory``):

.. math::
    s = [m; x] \in \mathbb R^{(M'+T) \times B \times H}, \quad
    q_t = W_q \mathrm{LN}_q(x_t) + b_q, \quad k_j = W_k \mathrm{LN}_{kv}(s_j) + b_k, \quad
    v_j = W_v \mathrm{LN}_{kv}(s_j) + b_v \\
    \alpha_{tj} = \mathrm{softmax}_{j \le M' + t}\big(q_t \cdot k_j / \sqrt H\big), \quad
    y_t = x_t + \sum_j \alpha_{tj} v_j \\
    z_t = \mathrm{LN}_{ff}\big(y_t + W_2\, \mathrm{GELU}(W_1 y_t + b_1) + b_2\big)
    \quad (W_1: 4H \times H \text{, the "Boom"})

Query t sees the whole memory and the current steps up to and including t (causal). There is no output
projection: as in SHA-RNN the values add straight onto the residual stream, and the Boom that follows mixes
channels. Dropout (``model.dropout``) acts where ``SequenceModel``'s does (the embedding output, between LSTM
layers, before the head) and on each residual branch (attention, Boom).

State: the plain tuple ``(h, c, memory)``: h, c (L, B, H) for the L layers (those below the block first), memory
(M', B, H) the block's last M inputs (undetached here; ``lstmkit.train.fit`` cuts the graph at chunk boundaries as
for h and c). ``state=None`` starts with zero h, c and an empty memory. Running a text as chunks with the carried
state gives the logits of one pass over the whole text whenever the memory holds every earlier step (M at least
the text's length before the last chunk); with a shorter memory, each query sees at least M and at most M + T - 1
steps back (Transformer-XL's segment recurrence without positional encodings: the LSTM below supplies order).

Shapes: T time, B batch, E embedding, H hidden, M memory steps (M' those held so far), V vocabulary, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import LSTM, Linear
from lstmkit.stream import StreamParts
from lstmkit.train.config import ModelConfig, require_at_least

AttentionState = tuple[Tensor, Tensor, Tensor]  # (h (L, B, H), c (L, B, H), memory (M', B, H))


@dataclass(frozen=True)
class LMModel(ModelConfig):
    """``ModelConfig`` for the language-model tasks (``charlm``, ``wordlm``), plus the attention block's keys:
    ``attention`` false builds ``SequenceModel`` exactly, true ``AttentionLM`` (needs ``cell`` "lstm")."""

    attention: bool = False  # off: the plain LSTM stack that every tuned default and figure was measured with
    # The LSTM layer (1-based) whose outputs the block reads; None means the last, as in SHA-RNN (its block sits
    # near the top, so it attends over the most processed features; layers above it, if any, read its output).
    attention_layer: int | None = None
    # Steps of earlier chunks the block attends over: charlm's data.bptt, so each query sees the whole previous
    # chunk and 64 to 127 steps back, at T x (M + T) scores per chunk, small beside the LSTM's cost on the CPU.
    attention_memory: int = 64

    def extra_training_size(self, batch_size: int, steps: int) -> tuple[int, int]:
        """The block's 11 H^2 + 14 H parameters (queries, keys, values, the 4H Boom, three LayerNorms) and per batch
        its T x (M + T) scores and weights and about 12 H normalised and Boom values a step; nothing when off."""
        if not self.attention:
            return 0, 0
        H = self.hidden_size
        return 11 * H * H + 14 * H, batch_size * steps * (2 * (self.attention_memory + steps) + 12 * H)

    def _validate(self) -> None:
        super()._validate()
        require_at_least(self, "model", 1, "attention_layer", "attention_memory")
        if self.attention_layer is not None and self.attention_layer > self.num_layers:
            raise ValueError(
                f"model.attention_layer must be in [1, model.num_layers = {self.num_layers}] (the LSTM layer the "
                f"attention block follows), got {self.attention_layer}"
            )
        if self.attention and self.cell != "lstm":
            raise ValueError(f"model.attention needs model.cell = 'lstm' (an LSTM stack), got {self.cell!r}")


def causal_mask(T: int, M: int, device: torch.device | None = None) -> Tensor:
    """(T, M + T) bool, True where query t (of the current T steps) may read key j of [memory (M); current (T)]:
    every memory step and the current steps up to and including t, j <= M + t."""
    t = torch.arange(T, device=device)[:, None]  # (T, 1)
    j = torch.arange(M + T, device=device)[None, :]  # (1, M + T)
    return j <= M + t


class AttentionBlock(nn.Module):
    """SHA-RNN's block: single-head causal attention over [memory; current] with a residual add, then the
    feed-forward "Boom" (H -> 4H -> H, GELU) with a residual add and LayerNorm. See the module docstring.

    ``forward(x, memory) -> y``: x (T, B, H), memory (M', B, H) (M' may be 0) -> y (T, B, H).
    """

    def __init__(self, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        H = hidden_size
        self.norm_q = nn.LayerNorm(H)
        self.norm_kv = nn.LayerNorm(H)
        # Each over every step (T B rows): lstmkit's panels where MKL is the slower.
        self.query = Linear(H, H)
        self.key = Linear(H, H)
        self.value = Linear(H, H)
        self.boom_up = Linear(H, 4 * H)  # SHA-RNN's Boom: 4H wide
        self.boom_down = Linear(4 * H, H)
        self.norm_ff = nn.LayerNorm(H)
        self.drop = nn.Dropout(dropout)
        # The residual branches start at zero (the values and the Boom's output layer), so the untrained block is
        # LayerNorm(x): the model starts as the plain LSTM stack and learns how much to attend. With torch's init
        # the branches added noise about 5 times the LSTM's outputs, and charlm learnt far slower per step.
        for layer in (self.value, self.boom_down):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def attention_weights(self, x: Tensor, memory: Tensor) -> Tensor:
        """alpha (B, T, M' + T): each query's softmax over the keys it may read (zero on the others)."""
        return self._weights(x, self.norm_kv(torch.cat([memory, x], dim=0)), memory.shape[0])

    def _weights(self, x: Tensor, keys_in: Tensor, M: int) -> Tensor:
        """alpha (B, T, M + T) from x (T, B, H) and the normalised [memory; x] (M + T, B, H)."""
        q = self.query(self.norm_q(x))  # (T, B, H)
        k = self.key(keys_in)  # (M + T, B, H)
        scores = torch.einsum("tbh,sbh->bts", q, k) / math.sqrt(x.shape[-1])  # (B, T, M + T)
        scores = scores.masked_fill(~causal_mask(x.shape[0], M, x.device), -math.inf)
        return scores.softmax(dim=-1)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        if x.ndim != 3 or memory.ndim != 3 or memory.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"x must be (T, B, H) and memory (M, B, H) with the same B and H, got {tuple(x.shape)} and "
                f"{tuple(memory.shape)}"
            )
        keys_in = self.norm_kv(torch.cat([memory, x], dim=0))  # (M' + T, B, H)
        alpha = self._weights(x, keys_in, memory.shape[0])  # (B, T, M' + T)
        y = x + self.drop(torch.einsum("bts,sbh->tbh", alpha, self.value(keys_in)))  # (T, B, H)
        return self._boom(y)

    def _boom(self, y: Tensor) -> Tensor:
        """LN_ff(y + W_2 GELU(W_1 y + b_1) + b_2), y (..., H) -> (..., H)."""
        return self.norm_ff(y + self.drop(self.boom_down(F.gelu(self.boom_up(y)))))

    # -- one step at a time, for lstmkit.Stream: each stream its own memory ----------------------------------------
    def stream_state(self, memory: Tensor, memory_size: int) -> list[Tensor]:
        """The block's carried state for ``lstmkit.Stream``: ``[rows, keys, values, held]``, rows, keys and values
        (B, M, H) (the memory's rows, i.e. the block's inputs, and their keys and values, newest last), held (B, M)
        1.0 where a stream holds a row, from ``memory`` (M', B, H), M' <= M = ``memory_size`` (the model's state's
        memory; M' = 0: empty). All zero is an empty memory, so zeroing a stream's entries starts it afresh."""
        n, B, H = memory.shape
        rows = memory.new_zeros(B, memory_size, H)
        rows[:, memory_size - n :] = memory.transpose(0, 1)  # (B, M', H), right-aligned
        kv_in = self.norm_kv(rows)
        held = memory.new_zeros(B, memory_size)
        held[:, memory_size - n :] = 1.0
        return [rows, self.key(kv_in) * held[..., None], self.value(kv_in) * held[..., None], held]

    @staticmethod
    def stream_memory(carried: list[Tensor]) -> Tensor:
        """The memory (M', B, H) of ``stream_state``'s list, when every stream holds the same number M' of rows."""
        rows, held = carried[0], carried[3]
        counts = held.sum(1).long()  # (B,)
        if (counts != counts[0]).any():
            raise ValueError(
                f"the streams' memories hold different numbers of rows, {counts.tolist()} (some streams were reset "
                "alone), which the model's state (h, c, memory (M', B, H)) cannot express; read it before such a "
                "reset, once every memory is full again, or after reset()"
            )
        return rows[:, rows.shape[1] - int(counts[0]) :].transpose(0, 1)  # (M', B, H)

    def stream_step(self, x: Tensor, carried: list[Tensor]) -> Tensor:
        """One step of every stream: x (B, H) -> (B, H), attending over that stream's held rows and itself;
        ``carried`` (``stream_state``'s list) is replaced in place, x becoming each memory's newest row. The same
        as ``forward(x[None], memory)`` with that stream's held rows as ``memory`` (eval mode)."""
        rows, keys, values, held = carried
        H = x.shape[-1]
        kv_in = self.norm_kv(x)  # (B, H)
        k_new, v_new = self.key(kv_in), self.value(kv_in)  # (B, H) each
        q = self.query(self.norm_q(x))  # (B, H)
        scores = torch.cat([torch.einsum("bh,bmh->bm", q, keys), (q * k_new).sum(-1, keepdim=True)], 1)  # (B, M + 1)
        scores = (scores / math.sqrt(H)).masked_fill(F.pad(held, (0, 1), value=1.0) == 0, -math.inf)
        alpha = scores.softmax(dim=-1)  # (B, M + 1): the held rows and the step itself
        context = torch.einsum("bm,bmh->bh", alpha[:, :-1], values) + alpha[:, -1:] * v_new  # (B, H)
        carried[:] = [torch.cat([t[:, 1:], new[:, None]], 1) for t, new in ((rows, x), (keys, k_new), (values, v_new))]
        carried.append(F.pad(held[:, 1:], (0, 1), value=1.0))  # (B, M): the new row is held
        return self._boom(x + context)  # (B, H)


class AttentionLM(nn.Module):
    """An LSTM language model with SHA-RNN's single-head attention block after LSTM layer ``attention_layer``,
    attending over the current chunk and a carried memory of the previous ``attention_memory`` steps.

    Built from an ``LMModel`` (token input: ``vocab_size``; ``embedding_dim``, ``tie_weights`` and the head as in
    ``SequenceModel``). ``forward(x, state=None, lengths=None) -> (logits (T, B, V), state)`` with x ids (T, B) and
    state ``(h, c, memory)`` (see the module docstring), the contract of ``SequenceModel`` for token input, so that
    ``lstmkit.train.lm_step``, stateful ``evaluate`` and ``lstmkit.tasks.sampling.sample`` run it unchanged.
    ``lengths`` is accepted only when every sequence fills all T steps: the block does not mask padding.
    """

    export_kind: ClassVar[str] = "attention-lm"  # lstmkit.export.attention_lm writes its graph
    # ``lstmkit compress`` methods this model cannot take, each with the reason (read with the task's own limits);
    # quantize, unstructured prune, lowrank, circulant and distill act on its weight matrices and work.
    compression_limits: ClassVar[dict[str, str]] = {
        "prune --structured": "an LSTM with an attention block (model.attention = true): the block's queries, keys, "
        "values and Boom all read the H units of the residual stream, which structured pruning does not shrink; "
        "prune it unstructured, or distill it",
        "quantize --compare-torch": "an LSTM with an attention block (model.attention = true) has no torch.nn twin "
        "for torch.ao to quantise; quantise it without --compare-torch",
    }

    def __init__(self, config: LMModel) -> None:
        super().__init__()
        if not isinstance(config, LMModel):
            raise TypeError(f"config must be an LMModel, got {type(config).__name__}")
        if config.vocab_size is None or config.input_size is not None:
            raise ValueError(
                "AttentionLM reads token ids: set model.vocab_size and leave model.input_size unset, got "
                f"vocab_size={config.vocab_size}, input_size={config.input_size}"
            )
        if config.cell != "lstm":
            raise ValueError(f"model.attention needs model.cell = 'lstm' (an LSTM stack), got {config.cell!r}")
        V = config.vocab_size
        output_size = config.output_size or V
        if config.tie_weights and output_size != V:
            raise ValueError(
                f"model.tie_weights needs output_size == vocab_size, got vocab_size={V}, output_size={output_size}"
            )
        self.config = config
        H, L = config.hidden_size, config.num_layers
        E = config.embedding_dim or H
        self.attention_layer = config.attention_layer or L  # a, 1-based
        self.memory_size = config.attention_memory  # M
        self.embedding = nn.Embedding(V, E)
        # Small uniform init as in SequenceModel (Zaremba et al. / AWD-LSTM): N(0, 1) rows saturate the first gates.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        a = self.attention_layer
        # Two lstmkit LSTMs, split where the block sits; each passes dropout between its own layers only when it
        # has several (torch.nn warns otherwise), and the block's output takes the dropout between layers a, a+1.
        regs = {"weight_dropout": config.weight_dropout, "zoneout": config.zoneout}
        self.lstm_below = LSTM(E, H, a, dropout=config.dropout if a > 1 else 0.0, **regs)
        self.block = AttentionBlock(H, config.dropout)
        self.lstm_above = (LSTM(H, H, L - a, dropout=config.dropout if L - a > 1 else 0.0, **regs)
                           if a < L else None)
        self.drop = nn.Dropout(config.dropout)
        self.proj: nn.Linear | None = None
        head_in = H
        if config.tie_weights and E != H:
            self.proj = Linear(H, E, bias=False)
            head_in = E
        self.head = Linear(head_in, output_size)  # over every step: on lstmkit's panels where MKL is the slower
        if config.tie_weights:
            self.head.weight = self.embedding.weight  # (V, E) shared

    def _check_state(self, state: tuple, B: int) -> None:
        L, H = self.config.num_layers, self.config.hidden_size
        if isinstance(state, tuple) and len(state) == 3 and all(isinstance(s, Tensor) for s in state):
            h, c, m = state
            if (h.shape == c.shape == (L, B, H) and m.ndim == 3 and m.shape[1:] == (B, H)
                    and m.shape[0] <= self.memory_size):  # fmt: skip
                return
        if isinstance(state, tuple):
            got = str([tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state])
        else:
            got = type(state).__name__
        raise ValueError(
            f"state must be (h, c, memory) with h and c ({L}, {B}, {H}) and memory (M, {B}, {H}), "
            f"M <= {self.memory_size}, got {got}"
        )

    def forward(
        self, x: Tensor, state: AttentionState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, AttentionState]:
        """x: ids (T, B) int64; state: ``(h, c, memory)`` or None; lengths: None or (B,) all equal to T."""
        if x.dtype not in (torch.int64, torch.int32) or x.ndim != 2:
            raise ValueError(f"x must be token ids (T, B) of int64, got {x.dtype} {tuple(x.shape)}")
        T, B = x.shape
        if lengths is not None and (torch.as_tensor(lengths).reshape(-1) != T).any():
            raise ValueError(
                f"AttentionLM does not mask padding: lengths must all equal T = {T} (or be None), got "
                f"{torch.as_tensor(lengths).tolist()}"
            )
        a = self.attention_layer
        if state is None:
            below, above = None, None
            memory = self.embedding.weight.new_zeros(0, B, self.config.hidden_size)  # (0, B, H): empty
        else:
            self._check_state(state, B)
            h, c, memory = state
            below = (h[:a], c[:a])  # (a, B, H) each
            above = (h[a:], c[a:]) if self.lstm_above is not None else None  # (L - a, B, H) each
        out, (h_below, c_below) = self.lstm_below(self.drop(self.embedding(x)), below)  # (T, B, H)
        new_memory = torch.cat([memory, out], dim=0)[-self.memory_size:]  # (min(M, M' + T), B, H)
        out = self.block(out, memory)  # (T, B, H)
        hs, cs = [h_below], [c_below]
        if self.lstm_above is not None:
            out, (h_above, c_above) = self.lstm_above(self.drop(out), above)  # (T, B, H)
            hs.append(h_above)
            cs.append(c_above)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (T, B, E)
        return self.head(out), (torch.cat(hs), torch.cat(cs), new_memory)  # (T, B, V); (L, B, H) x 2, (M', B, H)

    def stream_parts(self) -> StreamParts:
        """What ``lstmkit.Stream`` runs step by step: the LSTM layers below the block, the block with its memory of
        ``attention_memory`` steps, the layers above, the weights around them. Fed one token at a time, each query
        reads exactly the last M steps and itself (``forward`` on chunks of one token)."""
        return StreamParts(
            core=self.lstm_below,
            embedding=self.embedding.weight,  # (V, E)
            proj=None if self.proj is None else self.proj.weight,  # (E, H)
            head_weight=self.head.weight,  # (V, H or E)
            head_bias=self.head.bias,  # (V,)
            block=self.block,
            core_above=self.lstm_above,
            memory_size=self.memory_size,
        )


__all__ = ["AttentionBlock", "AttentionLM", "AttentionState", "LMModel", "causal_mask"]

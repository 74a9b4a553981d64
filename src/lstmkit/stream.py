"""Stateful streaming inference: feed a trained model one step or one chunk at a time.

``Stream(model, batch_size)`` wraps an ``lstmkit.LSTM`` (any variant, any number of layers), a
``GRU``, an ``RNN`` or a whole model that says how it streams (``stream_parts()``, e.g.
``lstmkit.models.SequenceModel``, or ``AttentionLM``, whose attention block between LSTM layers keeps a memory
of each stream's last M steps) and keeps the recurrent state between calls::

    stream = Stream(model.eval(), batch_size=4)       # 4 independent streams
    y_t = stream.step(x_t)                            # one step: (B, I) -> (B, P)   [ids (B,) -> (B, V)]
    ys = stream.feed(chunk)                           # a chunk:  (T, B, I) -> (T, B, P)
    stream.reset([2])                                 # stream 2 starts a new sequence; the others go on

Feeding a sequence in chunks of any sizes gives the outputs of one whole-sequence forward (to
float32 rounding; for an ``AttentionLM``, those of its forward fed one token at a time, where each query reads
exactly the last M steps and itself): a chunk runs the model's own forward from the carried state, and a single step
runs the cell math of docs/layers.md directly, with none of the layer's per-call set-up (see
``_LSTMStep``). Everything runs under ``torch.inference_mode``, so outputs are inference tensors
(read them, or ``.clone()`` them outside inference mode to use them in autograd). The model runs as
in eval mode (no dropout) and must be in eval mode; bidirectional models cannot stream, because
their reverse direction needs the end of the sequence first.

Weights changed in place (an optimizer step, ``load_state_dict``) are used from the next call on.
Replacing a parameter or submodule object (``model.head = nn.Linear(...)``) is not seen: make a new
``Stream`` then.

Shapes: T time, B batch (the stream's ``batch_size``), I input features, H hidden, P recurrent
output (proj_size or H), V the head's outputs, L layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import GRU, LSTM, RNN, LSTMWeights, layer_weights
from lstmkit.nn._reference import zone_out, zone_step
from lstmkit.nn.int8 import lstm_step_int8

StepFn = Callable[[Tensor, list[Tensor]], Tensor]

_MODELS = "an lstmkit LSTM, GRU or RNN, or a model with stream_parts() (a SequenceModel)"


class StreamParts(NamedTuple):
    """A whole model as ``Stream`` runs it: optional embedding, the recurrent core, optional
    projection, a linear head. A model that streams returns this from ``stream_parts()``; its
    ``forward(x, state, lengths)`` must compute the same (time-major, ``(T, B, ...)``)."""

    core: nn.Module  # an lstmkit LSTM, GRU or RNN
    embedding: Tensor | None  # (V, E): token ids in; None: features in
    proj: Tensor | None  # (E, H): bias-free projection before the head
    head_weight: Tensor  # (O, H or E)
    head_bias: Tensor | None  # (O,)
    # A block with a memory after ``core`` (AttentionLM's attention block), and the LSTM layers after it (or None).
    # The block gives ``stream_state(memory (M', B, H), memory_size) -> list`` (batch first; all zero: empty),
    # ``stream_step(x (B, H), list) -> (B, H)`` (the list replaced in place) and ``stream_memory(list)``.
    block: nn.Module | None = None
    core_above: nn.Module | None = None
    memory_size: int = 0  # M, the block's memory


class _LSTMStep:
    """One step of every layer of an ``lstmkit.LSTM``: docs/layers.md's equations, as few calls as possible.

    Without LayerNorm, W_ih x_t and W_hh h_{t-1} are simply added, so each layer keeps them as one
    matrix [W_ih | W_hh] (G, I + P) with the two biases summed: one matrix product per step
    instead of two (at batch 1 a step is memory-bound, and one product over the same bytes is the
    faster). For the plain LSTM the rows are also reordered to i, f, o, g, so that one ``sigmoid``
    covers three gates. This copy is rebuilt whenever a parameter of the layer changes in place
    (tracked by the tensors' version counters), so training or ``load_state_dict`` between calls
    is seen. Parameters created under ``torch.inference_mode`` have no version counter: then the
    step reads them directly, two products per step. With LayerNorm the two products are
    normalised separately and stay apart.
    """

    def __init__(self, core: LSTM) -> None:
        self.core = core
        self._int8_plans: dict[int, tuple[list[int], object]] = {}
        self._int8_tensors: dict[int, list[Tensor]] = {}  # what each layer's plan reads, found once
        self.L, self.H, self.eps = core.num_layers, core.hidden_size, core.layer_norm_eps
        self.coupled, self.peephole, self.layer_norm = core.coupled, core.peephole, core.layer_norm
        self.plain = not (core.peephole or core.coupled or core.layer_norm or core.proj_size)
        # Zoneout in eval mode (streams run in eval mode): each state moves by the expectation, old * p + new * (1 - p).
        self.zoneout = core.zoneout if core.zoneout != (0.0, 0.0) else None
        self.params = [layer_weights(core, k) for k in range(self.L)]  # the parameter objects themselves
        self._watched = [[t for t in (w.w_ih, w.w_hh, w.b_ih, w.b_hh) if t is not None]
                         for w in self.params]  # fmt: skip
        self._merged: list[tuple[list[int], Tensor, Tensor | None] | None] = [None] * self.L
        self.merge = not self.layer_norm and not any(t.is_inference() for w in self._watched for t in w)

    def _int8(self, k: int, x: Tensor):
        """Layer k's int8 plan (the layer's ``_int8_plan``), rebuilt only when a tensor it reads changed."""
        if k not in self._int8_tensors:
            self._int8_tensors[k] = self._int8_watched(k)
        versions = [t._version for t in self._int8_tensors[k]]
        entry = self._int8_plans.get(k)
        if entry is None or entry[0] != versions:
            plan = self.core._int8_plan(k, 0, x)
            if plan is not None:  # the summed biases, once (LayerNorm adds them inside the kernel)
                w = plan[3]
                b = None if self.layer_norm or w.b_ih is None else w.b_ih + w.b_hh
                plan = (*plan, b)
            entry = self._int8_plans[k] = (versions, plan)
        return entry[1]

    def _int8_watched(self, k: int) -> list[Tensor]:
        """The tensors layer k's int8 plan depends on: the quantised weights' buffers, and the rest."""
        sfx = f"_l{k}"
        out = [t for t in self.core.buffers() if not t.is_inference()]  # quantised integers, scales, zeros
        out += [t for name, t in self.core.named_parameters() if name.endswith(sfx) and not t.is_inference()]
        return out

    def _merged_weights(self, k: int) -> tuple[Tensor, Tensor | None]:
        """Layer k's [W_ih | W_hh]^T (I + P, G) and b_ih + b_hh, rebuilt when a parameter changed."""
        versions = [t._version for t in self._watched[k]]
        entry = self._merged[k]
        if entry is None or entry[0] != versions:
            p, H = self.params[k], self.H
            w = torch.cat([p.w_ih, p.w_hh], 1)  # (G, I + P)
            b = p.b_ih + p.b_hh if p.b_ih is not None else None  # (G,)
            if self.plain:
                order = torch.cat([torch.arange(2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
                w, b = w[order], (None if b is None else b[order])  # rows i, f, o, g
            entry = self._merged[k] = (versions, w.t().contiguous(), b)
        return entry[1], entry[2]

    def __call__(self, x: Tensor, state: list[Tensor]) -> Tensor:
        """x (B, I) -> the last layer's h (B, P); ``state`` [h_0, c_0, h_1, c_1, ...] is replaced in place."""
        for k in range(self.L):
            h, c = state[2 * k], state[2 * k + 1]
            plan = self._int8(k, x)  # quantised weights: multiply in int8 (lstmkit.nn.int8)
            if plan is not None:
                q_ih, q_hh, q_hr, w, b = plan
                x, h_new, c_new = lstm_step_int8(x, (h, c), q_ih, q_hh, q_hr, b, w, self.core._options)
            elif self.merge:
                w, b = self._merged_weights(k)
                xh = torch.cat((x, h), 1)  # (B, I + P)
                a = torch.mm(xh, w) if b is None else torch.addmm(b, xh, w)  # (B, G)
                x, c_new = self._plain(a, c) if self.plain else self._variant(a, c, self.params[k])
                h_new = x
            else:
                a = self._separate_gates(x, h, self.params[k])  # (B, G) in torch's order i, f, g, o
                x, c_new = self._variant(a, c, self.params[k])
                h_new = x
            if self.zoneout is not None:
                h_new, c_new = zone_out((h_new, c_new), (h, c), self.zoneout, training=False)
                x = h_new
            state[2 * k], state[2 * k + 1] = h_new, c_new
        return x

    def _plain(self, a: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Gate pre-activations a (B, 4H), rows i, f, o, g, and c_{t-1} -> (h_t, c_t)."""
        H = self.H
        s = a[:, : 3 * H].sigmoid_()  # i, f, o
        g = a[:, 3 * H :].tanh_()
        c_new = torch.addcmul(s[:, H : 2 * H] * c, s[:, :H], g)
        return s[:, 2 * H :] * torch.tanh(c_new), c_new

    def _separate_gates(self, x: Tensor, h: Tensor, p: LSTMWeights) -> Tensor:
        """LN_ih(W_ih x) + LN_hh(W_hh h) + b_ih + b_hh (B, G) from the parameters themselves (LN if layer_norm)."""
        if not self.layer_norm:
            a = F.linear(x, p.w_ih, p.b_ih)  # (B, G)
            a += F.linear(h, p.w_hh, p.b_hh)
            return a
        G = p.w_ih.shape[0]
        a = F.layer_norm(F.linear(x, p.w_ih), (G,), p.g_ih, None, self.eps)  # (B, G)
        a += F.layer_norm(F.linear(h, p.w_hh), (G,), p.g_hh, None, self.eps)
        if p.b_ih is not None:
            a += p.b_ih
            a += p.b_hh
        return a

    def _variant(self, a: Tensor, c: Tensor, p: LSTMWeights) -> tuple[Tensor, Tensor]:
        """Peepholes, coupled gates, LayerNorm of the cell and projection, on a (B, G) in torch's order."""
        H, coupled = self.H, self.coupled
        n_front = H if coupled else 2 * H  # i (and f) come before g
        if self.peephole:
            peep = p.peep  # rows i, f, o (i, o when coupled)
            a[:, :H].addcmul_(c, peep[0])
            if not coupled:
                a[:, H : 2 * H].addcmul_(c, peep[1])
        front = a[:, :n_front].sigmoid_()  # i (and f)
        i = front[:, :H]
        g = a[:, n_front : n_front + H].tanh_()
        # c_t = f c + i g; coupled (f = 1 - i) as c + i (g - c), as the fused kernel computes it
        c_new = torch.addcmul(c, i, g - c) if coupled else torch.addcmul(front[:, H:] * c, i, g)
        a_o = a[:, n_front + H :]
        if self.peephole:
            a_o.addcmul_(c_new, peep[-1])  # the output gate's peephole sees the new cell
        o = a_o.sigmoid_()
        c_out = F.layer_norm(c_new, (H,), p.g_c, p.b_c, self.eps) if self.layer_norm else c_new
        h_new = o * torch.tanh(c_out)
        if p.w_hr is not None:
            h_new = F.linear(h_new, p.w_hr)  # (B, P)
        return h_new, c_new


def _core_step(core: nn.Module) -> StepFn:
    """A function ``(x (B, I), state list) -> y (B, P)`` that runs one step of every layer.

    The state list holds one tensor per layer (GRU/RNN: h) or two (LSTM: h then c, at 2k and
    2k + 1) and its entries are replaced, so the stream keeps no stacked copies.
    """
    if isinstance(core, LSTM):
        return _LSTMStep(core)
    L = core.num_layers
    params = [layer_weights(core, k) for k in range(L)]
    if isinstance(core, GRU):
        fn = torch.gru_cell  # torch.nn.GRU's equations, which lstmkit.GRU has
    else:
        fn = torch.rnn_tanh_cell if core.nonlinearity == "tanh" else torch.rnn_relu_cell

    z = core.zoneout  # eval mode's update: the expectation (1 - z) new + z old

    def step(x: Tensor, state: list[Tensor]) -> Tensor:
        for k in range(L):
            p = params[k]
            x = fn(x, state[k], p.w_ih, p.w_hh, p.b_ih, p.b_hh)
            if z:
                (x,) = zone_step((x,), (state[k],), (z,))
            state[k] = x
        return x

    return step


class Stream:
    """Streams of a recurrent model, each carrying its state from call to call.

    Args:
        model: an ``lstmkit.LSTM`` (any variant and layer count), ``GRU``, ``RNN`` or a
            ``SequenceModel``, in eval mode and not bidirectional.
        batch_size: B, the number of independent streams run side by side.

    ``step(x_t)`` runs one step, ``feed(chunk)`` a chunk of steps, ``reset(indices)`` starts
    some or all streams afresh, and ``state`` reads or sets the carried state in the model's own
    ``hx`` format ((h, c), each (L, B, size), for an LSTM; h for GRU/RNN).
    """

    def __init__(self, model: nn.Module, batch_size: int = 1) -> None:
        parts: StreamParts | None = None
        if callable(getattr(model, "stream_parts", None)):
            parts = model.stream_parts()
            core, self._seq = parts.core, model
        elif isinstance(model, (LSTM, GRU, RNN)):
            core, self._seq = model, None
        else:
            raise TypeError(f"model must be {_MODELS}, got {type(model).__name__}")
        if not isinstance(core, (LSTM, GRU, RNN)):
            raise TypeError(f"model.rnn must be an lstmkit LSTM, GRU or RNN, got {type(core).__name__}")
        self._block = parts.block if parts is not None else None
        self._above = parts.core_above if parts is not None else None
        if self._block is not None and not (isinstance(core, LSTM) and isinstance(self._above, (LSTM, type(None)))):
            raise TypeError("a model with a block between recurrent layers streams with lstmkit LSTMs on both sides")
        if core.bidirectional or (self._above is not None and self._above.bidirectional):
            raise ValueError(
                "a bidirectional model cannot stream: its reverse direction reads the sequence from the end, "
                "which a stream has not seen yet; run it on whole sequences instead"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.core = core
        self.batch_size = batch_size
        self._n_states = 2 if isinstance(core, LSTM) else 1
        self._L = core.num_layers + (self._above.num_layers if self._above is not None else 0)
        ref = core.weight_hh_l0
        self._sizes = (core.output_size, core.hidden_size)[: self._n_states]  # h (P), c (H)
        self._factory = {"dtype": ref.dtype, "device": ref.device}
        self._step_core = _core_step(core) if self._block is None else self._block_step(core, parts)
        self._memory_size = parts.memory_size if self._block is not None else 0
        self._block_state: list[Tensor] = []  # the block's carried state (stream_state's list); [] without one
        self._batch_first = self._seq is None and core.batch_first  # whole models are time-major
        self._tokens = parts is not None and parts.embedding is not None
        if parts is not None:
            self._emb, self._proj = parts.embedding, parts.proj  # (V, E), (E, H)
            self._head_w, self._head_b = parts.head_weight, parts.head_bias  # (O, H or E), (O,)
        self._state: list[Tensor] = []
        self.reset()

    def _block_step(self, core: LSTM, parts: StreamParts) -> StepFn:
        """The layers below the block, the block (its own state in ``self._block_state``), the layers above."""
        below, above = _LSTMStep(core), (None if parts.core_above is None else _LSTMStep(parts.core_above))
        n_below = 2 * core.num_layers

        def step(x: Tensor, state: list[Tensor]) -> Tensor:
            lower, upper = state[:n_below], state[n_below:]
            y = parts.block.stream_step(below(x, lower), self._block_state)  # (B, H)
            if above is not None:
                y = above(y, upper)
            state[:] = lower + upper
            return y

        return step

    # -- state ------------------------------------------------------------------------------------
    def reset(self, indices: int | Sequence[int] | Tensor | None = None) -> None:
        """Zero the state of the streams ``indices`` (all when None): they start new sequences.

        ``indices``: an int, a sequence of ints, an integer tensor, or a (B,) boolean mask.
        """
        B = self.batch_size
        with torch.inference_mode():
            if indices is None:
                self._state = [
                    torch.zeros(B, self._sizes[j], **self._factory) for _ in range(self._L)
                    for j in range(self._n_states)
                ]  # fmt: skip
                if self._block is not None:
                    empty = torch.zeros(0, B, self.core.hidden_size, **self._factory)  # (0, B, H)
                    self._block_state = self._block.stream_state(empty, self._memory_size)
                return
            idx = self._check_indices(indices)
            if idx.numel():
                self._state = [s.index_fill(0, idx, 0.0) for s in self._state]
                self._block_state = [s.index_fill(0, idx, 0.0) for s in self._block_state]  # empty memories

    def _check_indices(self, indices) -> Tensor:
        B = self.batch_size
        if isinstance(indices, bool):
            raise TypeError(f"indices must be ints or a boolean mask of shape ({B},), got {indices!r}")
        try:
            idx = torch.as_tensor(indices)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"indices must be an int, a sequence of ints or a tensor, got {indices!r}") from e
        if idx.dtype == torch.bool:
            if tuple(idx.shape) != (B,):
                raise ValueError(f"indices as a boolean mask must have shape ({B},), got {tuple(idx.shape)}")
            return idx.nonzero().flatten().to(self._factory["device"])
        if idx.is_floating_point() or idx.is_complex() or idx.dim() > 1:
            raise TypeError(f"indices must be integers (a scalar or 1-D), got {idx.dtype} of shape {tuple(idx.shape)}")
        idx = idx.reshape(-1).long()
        bad = idx[(idx < -B) | (idx >= B)]
        if bad.numel():
            raise ValueError(f"indices must be in [0, {B}) (batch_size), got {bad.tolist()}")
        return (idx % B).to(self._factory["device"])

    @property
    def state(self) -> Tensor | tuple[Tensor, ...]:
        """The carried state in the model's hx format: (h (L, B, P), c (L, B, H)), or h for GRU/RNN; with a block
        (an ``AttentionLM``) (h, c, memory (M', B, H)), which needs every stream to hold M' rows (none reset
        alone since)."""
        n = self._n_states
        stacked = tuple(torch.stack(self._state[j::n]) for j in range(n))
        if self._block is not None:
            return (*stacked, self._block.stream_memory(self._block_state))
        return stacked if n == 2 else stacked[0]

    @state.setter
    def state(self, value: Tensor | tuple[Tensor, ...]) -> None:
        n, L, B = self._n_states, self._L, self.batch_size
        parts = (value,) if (n == 1 and isinstance(value, Tensor)) else value
        n_parts = n + (self._block is not None)
        if not (isinstance(parts, (tuple, list)) and len(parts) == n_parts
                and all(isinstance(p, Tensor) for p in parts)):  # fmt: skip
            want = {1: "a tensor h", 2: "a tuple (h, c) of two tensors", 3: "a tuple (h, c, memory) of three tensors"}
            raise TypeError(f"state must be {want[n_parts]}, got {type(value).__name__}")
        if self._block is not None:
            memory, H, M = parts[2], self.core.hidden_size, self._memory_size
            if memory.ndim != 3 or memory.shape[1:] != (B, H) or memory.shape[0] > M:
                raise ValueError(f"state memory must have shape (M', {B}, {H}) with M' <= {M}, got "
                                 f"{tuple(memory.shape)}")  # fmt: skip
            if memory.dtype != self._factory["dtype"]:
                raise TypeError(f"state memory must be {self._factory['dtype']}, got {memory.dtype}")
        for name, p, size in zip(("h", "c"), parts, self._sizes, strict=False):
            if tuple(p.shape) != (L, B, size):
                raise ValueError(f"state {name} must have shape {(L, B, size)}, got {tuple(p.shape)}")
            if p.dtype != self._factory["dtype"]:
                raise TypeError(f"state {name} must be {self._factory['dtype']}, got {p.dtype}")
        with torch.inference_mode():
            dev = self._factory["device"]
            self._state = [parts[j][k].to(dev, copy=True) for k in range(L) for j in range(n)]
            if self._block is not None:
                self._block_state = self._block.stream_state(parts[2].to(dev), self._memory_size)

    # -- running ----------------------------------------------------------------------------------
    def _check_running(self) -> None:
        if self.model.training:
            raise ValueError(
                "the model is in training mode (dropout would act); call model.eval() before streaming"
            )

    def step(self, x: Tensor) -> Tensor:
        """Run one step of every stream and return its output.

        x: (B, I) features, or (B,) token ids for a ``SequenceModel`` with an embedding.
        Returns (B, P) for a bare layer (the last layer's h), (B, O) logits for a ``SequenceModel``.
        """
        self._check_running()
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        with torch.inference_mode():
            if self._tokens:
                if x.dim() != 1 or x.shape[0] != self.batch_size or x.dtype not in (torch.int64, torch.int32):
                    raise ValueError(
                        f"x must be token ids of shape ({self.batch_size},) (int64), got {x.dtype} {tuple(x.shape)}"
                    )
                inp = F.embedding(x, self._emb)  # (B, E)
            else:
                self._check_features(x, "x", (self.batch_size, self.core.input_size))
                inp = x
            y = self._step_core(inp, self._state)  # (B, P)
            if self._seq is None:
                return y
            if self._proj is not None:
                y = F.linear(y, self._proj)  # (B, E)
            return F.linear(y, self._head_w, self._head_b)  # (B, O)

    def feed(self, chunk: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """Run a chunk of steps of every stream; the state carries on from the last call.

        chunk: (T, B, I) features ((B, T, I) for a ``batch_first`` layer), or (T, B) token ids for
        a ``SequenceModel`` with an embedding. ``lengths`` (B,): how many of the chunk's steps are
        real for each stream; the state of a stream stops at its last real step and its outputs
        after it are zero (a ``SequenceModel`` gives the head's bias there), as in the model's forward.
        Returns the outputs for every step, in the chunk's layout.
        """
        self._check_running()
        if not isinstance(chunk, Tensor):
            raise TypeError(f"chunk must be a Tensor, got {type(chunk).__name__}")
        B, I = self.batch_size, self.core.input_size
        if self._tokens:
            if chunk.dim() != 2 or chunk.shape[1] != B or chunk.dtype not in (torch.int64, torch.int32):
                raise ValueError(
                    f"chunk must be token ids of shape (T, {B}) (int64), got {chunk.dtype} {tuple(chunk.shape)}"
                )
        else:
            want = (B, "T", I) if self._batch_first else ("T", B, I)
            if chunk.dim() != 3 or chunk.shape[1 - self._batch_first] != B:
                raise ValueError(f"chunk must have shape {want}, got {tuple(chunk.shape)}")
            self._check_features(chunk, "chunk", (*chunk.shape[:2], I))
        time_axis = 1 if self._batch_first else 0
        if chunk.shape[time_axis] == 0:
            raise ValueError("chunk must have at least one time step, got T = 0")
        if self._block is not None and lengths is not None:
            raise ValueError(
                "lengths must be None for a model with an attention block (model.attention = true): it does not "
                "mask padding; feed each stream's real steps only"
            )
        with torch.inference_mode():
            if lengths is None and chunk.shape[time_axis] == 1:
                # The per-step path: no stacking of the state, no per-call set-up of the layer.
                return self.step(chunk.select(time_axis, 0)).unsqueeze(time_axis)
            if self._block is not None:  # step by step: each stream's memory is its own (the forward's is shared)
                return torch.stack([self.step(x) for x in chunk])  # (T, B, V)
            if lengths is not None and not isinstance(lengths, Tensor):
                lengths = torch.as_tensor(lengths)
            hx = self.state
            if self._seq is not None:
                y, hx = self._seq(chunk, hx, lengths)
            else:
                y, hx = self.core(chunk, hx, lengths=lengths)
            parts = hx if self._n_states == 2 else (hx,)
            self._state = [parts[j][k] for k in range(self._L) for j in range(self._n_states)]
            return y

    def _check_features(self, x: Tensor, name: str, want: tuple) -> None:
        if tuple(x.shape) != want:
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
        if x.dtype != self._factory["dtype"]:
            raise TypeError(f"{name} must be {self._factory['dtype']} (the model's dtype), got {x.dtype}")

    def __repr__(self) -> str:
        return f"Stream({type(self.model).__name__}, batch_size={self.batch_size})"


__all__ = ["Stream"]

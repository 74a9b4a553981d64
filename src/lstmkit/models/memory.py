"""An LSTM controller with an external memory: the Neural Turing Machine (Graves, Wayne & Danihelka 2014).

The controller, an ``lstmkit.nn.LSTMCell`` of H units, reads the input x_t and the R vectors it read at the
previous step. From its output h_t each head emits how to address the memory, a matrix of N slots of W
numbers; write heads also emit what to erase and add. Addressing (the paper's section 3.3, eqs 5-9):

- content: w^c_i = softmax_i(beta * cos(k, M_i)), a key k (W) and a sharpness beta >= 0;
- interpolation with the head's previous weighting: w^g = g w^c + (1 - g) w_{t-1}, a gate g in (0, 1);
- rotation by a shift distribution s over the 2S + 1 offsets -S..S: w^s_i = sum_j w^g_j s_{i - j mod N};
- sharpening: w_i = (w^s_i)^gamma / sum_j (w^s_j)^gamma, gamma >= 1.

Reading (eq 2): r = sum_i w_i M_i. Writing (eqs 3-4): M_i <- M_i (1 - w_i e) + w_i a, erase e in (0, 1)^W,
add a (W). Every head addresses the memory the step started with; reads use it too, then the writes apply
(Collier & Beel 2018's order, whose implementation trains reliably). The output reads [h_t, r_t].

Collier & Beel (2018, "Implementing Neural Turing Machines") found the initial state decisive: the memory
starts at a small constant (1e-6 everywhere, not learned: a learned memory start converged half as fast),
the read vectors and the head weightings at learned values (the weightings through a softmax). Here the
weightings' logits start peaked on slot 0, so that the rotation has a place to start from.

``NTMCell`` is one step under the house's cell contract ``(x_t, state) -> (y_t, state)``; ``MemoryLSTM``
runs it over time with ``lstmkit.nn.scan`` and puts the output layer on top. The controller takes the config's
``zoneout`` (the cell draws every step) and ``weight_dropout`` (one W_hh mask per ``MemoryLSTM`` call: its steps
run inside the controller's ``holding_masks()``, as a layer's call draws one). Shapes: T steps, B sequences,
I inputs, H controller units, N slots of width W, R read heads, V write heads, K = R + V heads, O outputs.
"""

from __future__ import annotations

import os
import shutil
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import LSTMCell, scan
from lstmkit.train.config import ModelConfig

MEMORY_INIT = 1e-6  # Collier & Beel 2018: a small constant start, not learned
COSINE_EPS = 1e-8  # keeps cos(k, M_i) finite while a slot (or the key) is all zeros
SHARPEN_EPS = 1e-12  # w^s may underflow to 0 in float32, where the gradient of 0 ** gamma in gamma is 0 * log 0 = NaN
_START_LOGIT = 5.0  # the initial weighting: softmax of +5 on slot 0 and 0 elsewhere (about 0.54 on slot 0 at N = 128)


@dataclass(frozen=True)
class MemoryModel(ModelConfig):
    """``ModelConfig`` (``hidden_size``: the controller's units) and the memory's sizes."""

    # "ntm": the LSTM controller with its memory; "lstm": the same task on a plain LSTM (the baseline). Graves et
    # al. 2014 compare the two on copy and associative recall: the NTM generalises to longer sequences.
    kind: str = "ntm"
    memory_slots: int = 128  # N: Graves et al.'s 128; a copy needs one slot per vector it holds
    memory_width: int = 20  # W: Graves et al.'s 20; wider than the 8-bit vectors written, so a slot holds one
    read_heads: int = 1  # R: one read head, as Graves et al. use for copy and recall
    write_heads: int = 1  # one write head (Graves et al.); several erase, then add, in one step
    shift_range: int = 1  # S: rotations by -S..S slots a step; 1 moves the head to a neighbour (Graves et al.)
    # torch.compile the NTM step (inductor, which builds C++ on the CPU): a training step about twice as fast
    # (benchmarks/ntm_step.py), but the first steps wait for the compilation (half a minute on a fresh machine),
    # and it needs a C++ compiler
    compile: bool = False

    def _validate(self) -> None:
        super()._validate()
        if self.kind not in ("ntm", "lstm"):
            raise ValueError(f"model.kind must be 'ntm' or 'lstm', got {self.kind!r}")
        for name in ("memory_slots", "memory_width", "read_heads", "write_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.compile and self.kind != "ntm":
            raise ValueError("model.compile applies to model.kind='ntm' (the NTM's Python-stepped cell); the LSTM "
                             "baseline already runs lstmkit's C++ kernel")  # fmt: skip
        if self.compile and shutil.which(os.environ.get("CXX", "c++")) is None:
            raise ValueError(f"model.compile needs a C++ compiler (torch.compile builds C++ on the CPU), and "
                             f"{os.environ.get('CXX', 'c++')!r} is not on the PATH: install one (e.g. g++) or set "
                             f"model.compile = false")  # fmt: skip
        if self.shift_range < 0 or 2 * self.shift_range + 1 > self.memory_slots:
            raise ValueError(f"model.shift_range must be in [0, (memory_slots - 1) / 2] = [0, "
                             f"{(self.memory_slots - 1) // 2}], got {self.shift_range}")  # fmt: skip


class NTMState(NamedTuple):
    """What the cell carries from step to step."""

    h: Tensor  # (B, H) controller output
    c: Tensor  # (B, H) controller cell
    read: Tensor  # (B, R * W) the vectors read at the last step
    weights: Tensor  # (B, K, N) every head's last weighting: the R readers first, then the writers
    memory: Tensor  # (B, N, W)


class Addressing(NamedTuple):
    """One step's head parameters, every head side by side (K heads)."""

    key: Tensor  # (B, K, W)
    beta: Tensor  # (B, K, 1) >= 0
    gate: Tensor  # (B, K, 1) in (0, 1)
    shift: Tensor  # (B, K, 2S + 1) a distribution over offsets -S..S
    gamma: Tensor  # (B, K, 1) >= 1


def address(memory: Tensor, previous: Tensor, a: Addressing) -> Tensor:
    """Graves et al.'s eqs 5-9 for K heads at once: memory (B, N, W), previous (B, K, N) -> weights (B, K, N)."""
    # content: cosine similarity of each head's key with every slot, (B, K, W) x (B, N, W) -> (B, K, N)
    dots = a.key @ memory.transpose(1, 2)  # (B, K, N)
    norms = a.key.norm(dim=-1, keepdim=True) * memory.norm(dim=-1).unsqueeze(1)  # (B, K, 1) * (B, 1, N)
    content = torch.softmax(a.beta * dots / (norms + COSINE_EPS), dim=-1)  # (B, K, N)
    gated = a.gate * content + (1.0 - a.gate) * previous  # (B, K, N)
    S = (a.shift.shape[-1] - 1) // 2
    # rotation: offset d moves weight from slot j to slot j + d (mod N); torch.roll(w, d)[i] = w[i - d]
    shifted = sum(a.shift[..., d + S : d + S + 1] * torch.roll(gated, d, dims=-1) for d in range(-S, S + 1))
    sharp = (shifted + SHARPEN_EPS) ** a.gamma  # (B, K, N)
    return sharp / sharp.sum(dim=-1, keepdim=True)


class NTMCell(nn.Module):
    """One NTM step, ``(x_t (B, I), state) -> (y_t (B, H + R * W), state)``: the controller's output and the
    vectors read, for a head on top to read. ``state`` None is the initial state (see the module docstring)."""

    def __init__(self, input_size: int, config: MemoryModel) -> None:
        super().__init__()
        H, N, W = config.hidden_size, config.memory_slots, config.memory_width
        R, V, S = config.read_heads, config.write_heads, config.shift_range
        self.sizes = (N, W, R, V, S)
        self.controller = LSTMCell(input_size + R * W, H, zoneout=config.zoneout, weight_dropout=config.weight_dropout)
        # per head: key W, beta 1, gate 1, shift 2S + 1, gamma 1; the writers also erase W and add W
        self.per_head = W + 2 * S + 4
        self.heads = nn.Linear(H, (R + V) * self.per_head + V * 2 * W)
        self.read_start = nn.Parameter(torch.randn(R * W) * 0.01)  # (R * W,) learned (Collier & Beel 2018)
        start = torch.zeros(R + V, N)
        start[:, 0] = _START_LOGIT
        self.weight_start = nn.Parameter(start)  # (K, N) logits, learned
        self.output_size = H + R * W

    def initial_state(self, batch: int, like: Tensor) -> NTMState:
        N, W = self.sizes[:2]
        H = self.controller.hidden_size
        zeros = like.new_zeros(batch, H)
        return NTMState(
            h=zeros,
            c=zeros,
            read=self.read_start.expand(batch, -1),  # (B, R * W)
            weights=torch.softmax(self.weight_start, dim=-1).expand(batch, -1, -1),  # (B, K, N)
            memory=like.new_full((batch, N, W), MEMORY_INIT),
        )

    def addressing(self, h: Tensor) -> tuple[Addressing, Tensor, Tensor]:
        """The heads' parameters from the controller output h (B, H): (addressing, erase (B, V, W), add (B, V, W))."""
        _, W, R, V, S = self.sizes
        B, K = h.shape[0], R + V
        out = self.heads(h)  # (B, K * per_head + V * 2W)
        p = out[:, : K * self.per_head].view(B, K, self.per_head)  # (B, K, W + 2S + 4)
        key, beta, gate, shift, gamma = p.split([W, 1, 1, 2 * S + 1, 1], dim=-1)
        a = Addressing(
            key=key,
            beta=F.softplus(beta),
            gate=torch.sigmoid(gate),
            shift=torch.softmax(shift, dim=-1),
            gamma=1.0 + F.softplus(gamma),
        )
        ea = out[:, K * self.per_head :].view(B, V, 2 * W)  # (B, V, 2W)
        erase, add = ea.split([W, W], dim=-1)
        return a, torch.sigmoid(erase), torch.tanh(add)

    def forward(self, x: Tensor, state: NTMState | None = None) -> tuple[Tensor, NTMState]:
        if state is None:
            state = self.initial_state(x.shape[0], x)
        R, V = self.sizes[2], self.sizes[3]
        h, c = self.controller(torch.cat([x, state.read], dim=-1), (state.h, state.c))  # (B, H) each
        a, erase, add = self.addressing(h)
        weights = address(state.memory, state.weights, a)  # (B, K, N)
        read = (weights[:, :R] @ state.memory).flatten(1)  # (B, R, N) @ (B, N, W) -> (B, R * W)
        w = weights[:, R:]  # (B, V, N) the writers
        # Graves et al.'s eqs 3-4 with V writers: every erase applies, then every add (their order does not matter)
        erased = 1.0 - w.unsqueeze(-1) * erase.unsqueeze(2)  # (B, V, N, W)
        keep = erased[:, 0]
        for v in range(1, V):  # a product over the writers (torch.prod's backward costs several times more)
            keep = keep * erased[:, v]  # (B, N, W)
        memory = state.memory * keep + w.transpose(1, 2) @ add  # (B, N, V) @ (B, V, W) -> (B, N, W)
        return torch.cat([h, read], dim=-1), NTMState(h, c, read, weights, memory)


class MemoryLSTM(nn.Module):
    """``NTMCell`` over time and a linear output layer: ``forward(x (T, B, I), state=None, lengths=None) ->
    (outputs (T, B, O), state)``, the long-range tasks' model contract. ``lengths`` is checked but changes
    nothing: every step depends on earlier steps only, so a padded sequence's outputs up to its length are those
    of the sequence alone (the state returned is the one after all T steps)."""

    export_kind: ClassVar[str] = "memory"  # lstmkit.export.memory writes its graph
    # ``lstmkit compress`` methods this model cannot take, with the reason (read beside the task's own limits)
    compression_limits: ClassVar[dict[str, str]] = {
        "prune --structured": "the NTM's controller units feed its heads and its output layer beside the vectors "
        "read from memory, which structured pruning does not shrink; prune it unstructured",
    }

    def __init__(self, config: MemoryModel) -> None:
        super().__init__()
        if not isinstance(config, MemoryModel):
            raise TypeError(f"config must be a MemoryModel, got {type(config).__name__}")
        if config.input_size is None or config.output_size is None:
            raise ValueError("model.input_size and model.output_size are required (the task sets them)")
        self.config = config
        self.cell = NTMCell(config.input_size, config)
        self.head = nn.Linear(self.cell.output_size, config.output_size)

    def forward(
        self, x: Tensor, state: NTMState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, NTMState]:
        I = self.config.input_size
        if not x.is_floating_point() or x.ndim != 3 or x.shape[-1] != I:
            raise ValueError(f"x must be float features (T, B, {I}), got {x.dtype} {tuple(x.shape)}")
        T, B = x.shape[:2]
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
                raise ValueError(f"lengths must be shape ({B},) with values in [1, {T}], got {lengths.tolist()}")
        if state is None:
            state = self.cell.initial_state(B, x)
        with self.cell.controller.holding_masks():  # DropConnect: one masked W_hh a call, as a layer draws it
            y, state = scan(self._step(), x, state)  # (T, B, H + R * W)
        return self.head(y), NTMState(*state)  # (T, B, O)

    def _step(self) -> Callable[[Tensor, NTMState], tuple[Tensor, NTMState]]:
        """The cell, or with ``model.compile`` its ``torch.compile``d forward, made once per cell. The compiled
        function is kept outside the module (a weak-keyed table), so that the state dict, copies and pickles of the
        model are those of the plain one."""
        if not self.config.compile:
            return self.cell
        step = _COMPILED.get(self.cell)
        if step is None:
            compiled = torch.compile(self.cell.forward)

            def step(x: Tensor, state: NTMState) -> tuple[Tensor, NTMState]:
                with warnings.catch_warnings():
                    # Dynamo reads .grad of every input while it traces; the state's tensors are not leaves, and
                    # torch warns about that read, which is Dynamo's and not the user's
                    warnings.filterwarnings("ignore", "The .grad attribute of a Tensor that is not a leaf",
                                            UserWarning)  # fmt: skip
                    return compiled(x, state)

            _COMPILED[self.cell] = step
        return step


_COMPILED: weakref.WeakKeyDictionary[NTMCell, Callable] = weakref.WeakKeyDictionary()


def memory_param_count(config: MemoryModel) -> int:
    """Parameters of ``MemoryLSTM(config)`` without building it."""
    H, N, W = config.hidden_size, config.memory_slots, config.memory_width
    R, V, S = config.read_heads, config.write_heads, config.shift_range
    n_in = config.input_size + R * W
    controller = 4 * H * (n_in + H) + 8 * H
    heads = (H + 1) * ((R + V) * (W + 2 * S + 4) + 2 * V * W)
    starts = R * W + (R + V) * N
    out = (H + R * W + 1) * config.output_size
    return controller + heads + starts + out


__all__ = ["MEMORY_INIT", "Addressing", "MemoryLSTM", "MemoryModel", "NTMCell", "NTMState", "address",
           "memory_param_count"]  # fmt: skip

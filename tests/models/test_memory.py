"""The Neural Turing Machine (lstmkit.models.memory) against a loop over Graves et al.'s (2014) equations."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import lstmkit.models.memory as memory_module
from lstmkit.models.memory import (
    MEMORY_INIT,
    Addressing,
    MemoryLSTM,
    MemoryModel,
    NTMCell,
    address,
    memory_param_count,
)


def _config(**kw) -> MemoryModel:
    base = dict(hidden_size=6, num_layers=1, dropout=0.0, input_size=4, output_size=3, memory_slots=7,
                memory_width=5, read_heads=2, write_heads=2, shift_range=1)  # fmt: skip
    base.update(kw)
    return MemoryModel(**base)


# -- an independent reference: Graves et al.'s equations, one number at a time ---------------------------
def _address_loop(memory, previous, key, beta, gate, shift, gamma):
    """Eqs 5-9 for one sequence and one head: memory (N, W), previous (N,), key (W,), shift (2S+1,)."""
    N = memory.shape[0]
    S = (shift.shape[0] - 1) // 2
    sims = []
    for i in range(N):
        dot = sum(float(key[j] * memory[i, j]) for j in range(memory.shape[1]))
        norm = math.sqrt(sum(float(v) ** 2 for v in key)) * math.sqrt(sum(float(v) ** 2 for v in memory[i]))
        sims.append(float(beta) * dot / (norm + 1e-8))
    top = max(sims)
    exps = [math.exp(s - top) for s in sims]
    content = [e / sum(exps) for e in exps]
    gated = [float(gate) * content[i] + (1 - float(gate)) * float(previous[i]) for i in range(N)]
    shifted = []
    for i in range(N):  # w^s_i = sum_j w^g_j s(i - j), offsets taken mod N
        total = 0.0
        for j in range(N):
            d = (i - j) % N
            d = d - N if d > N // 2 else d  # the offset in -S..S, if it is one
            if -S <= d <= S:
                total += gated[j] * float(shift[d + S])
        shifted.append(total)
    powered = [(v + 1e-12) ** float(gamma) for v in shifted]
    return torch.tensor([p / sum(powered) for p in powered], dtype=torch.float64)


def _step_loop(cell: NTMCell, x, state):
    """One NTM step for every sequence by the loop reference, reusing only the cell's parameters."""
    N, W, R, V, S = cell.sizes
    h, _ = cell.controller(torch.cat([x, state.read], dim=-1), (state.h, state.c))
    out = cell.heads(h)
    B = x.shape[0]
    reads, weights, memories = [], [], []
    for b in range(B):
        per = out[b, : (R + V) * cell.per_head].view(R + V, cell.per_head)
        ea = out[b, (R + V) * cell.per_head :].view(V, 2 * W)
        ws = []
        for k in range(R + V):
            p = per[k]
            ws.append(_address_loop(state.memory[b], state.weights[b, k], p[:W], F.softplus(p[W]),
                                    torch.sigmoid(p[W + 1]), torch.softmax(p[W + 2 : W + 3 + 2 * S], 0),
                                    1 + F.softplus(p[W + 3 + 2 * S])))  # fmt: skip
        M = state.memory[b].double()
        read = torch.cat([sum(ws[r][i] * M[i] for i in range(N)) for r in range(R)])  # eq 2 per read head
        new = M.clone()
        for i in range(N):  # eq 3: every erase, then eq 4: every add
            for v in range(V):
                new[i] = new[i] * (1 - ws[R + v][i] * torch.sigmoid(ea[v, :W]).double())
        for i in range(N):
            for v in range(V):
                new[i] = new[i] + ws[R + v][i] * torch.tanh(ea[v, W:]).double()
        reads.append(read)
        weights.append(torch.stack(ws))
        memories.append(new)
    return torch.cat([h.double(), torch.stack(reads)], -1), torch.stack(weights), torch.stack(memories)


def test_addressing_matches_the_equations_one_number_at_a_time():
    g = torch.Generator().manual_seed(0)
    B, K, N, W, S = 2, 3, 9, 4, 2
    memory = torch.randn(B, N, W, generator=g, dtype=torch.float64)
    memory[0, 3] = 0.0  # an all-zero slot: the cosine's epsilon keeps it finite
    previous = torch.softmax(torch.randn(B, K, N, generator=g, dtype=torch.float64), -1)
    a = Addressing(
        key=torch.randn(B, K, W, generator=g, dtype=torch.float64),
        beta=torch.rand(B, K, 1, generator=g, dtype=torch.float64) * 5,
        gate=torch.rand(B, K, 1, generator=g, dtype=torch.float64),
        shift=torch.softmax(torch.randn(B, K, 2 * S + 1, generator=g, dtype=torch.float64), -1),
        gamma=1 + torch.rand(B, K, 1, generator=g, dtype=torch.float64) * 3,
    )
    got = address(memory, previous, a)
    for b in range(B):
        for k in range(K):
            want = _address_loop(memory[b], previous[b, k], a.key[b, k], a.beta[b, k, 0], a.gate[b, k, 0],
                                 a.shift[b, k], a.gamma[b, k, 0])  # fmt: skip
            torch.testing.assert_close(got[b, k], want, rtol=1e-10, atol=1e-12)


def test_a_shift_of_plus_one_moves_the_focus_to_the_next_slot_wrapping_around():
    N = 6
    previous = torch.zeros(1, 1, N, dtype=torch.float64)
    previous[0, 0, N - 1] = 1.0  # focus on the last slot
    a = Addressing(key=torch.ones(1, 1, 3, dtype=torch.float64), beta=torch.zeros(1, 1, 1, dtype=torch.float64),
                   gate=torch.zeros(1, 1, 1, dtype=torch.float64),  # keep the previous weighting
                   shift=torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64),  # all on offset +1
                   gamma=torch.ones(1, 1, 1, dtype=torch.float64))  # fmt: skip
    w = address(torch.ones(1, N, 3, dtype=torch.float64), previous, a)
    assert int(w.argmax()) == 0 and float(w[0, 0, 0]) > 1 - 1e-9  # N - 1 -> 0


def test_content_addressing_finds_the_slot_that_matches_the_key():
    g = torch.Generator().manual_seed(1)
    memory = torch.randn(1, 10, 8, generator=g, dtype=torch.float64)
    a = Addressing(key=3.0 * memory[:, 6:7], beta=torch.full((1, 1, 1), 50.0, dtype=torch.float64),
                   gate=torch.ones(1, 1, 1, dtype=torch.float64),
                   shift=torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64),
                   gamma=torch.ones(1, 1, 1, dtype=torch.float64))  # fmt: skip
    w = address(memory, torch.full((1, 1, 10), 0.1, dtype=torch.float64), a)
    assert int(w.argmax()) == 6 and float(w[0, 0, 6]) > 0.99  # cosine ignores the key's scale


def test_the_cell_matches_the_loop_reference_over_several_steps():
    torch.manual_seed(0)
    cell = NTMCell(4, _config(shift_range=2)).double()
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    state = cell.initial_state(3, x)
    for t in range(5):
        with torch.no_grad():
            y, new = cell(x[t], state)
            y_ref, w_ref, m_ref = _step_loop(cell, x[t], state)
        torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(new.weights, w_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(new.memory, m_ref, rtol=1e-9, atol=1e-11)
        state = new


def test_initial_state_small_constant_memory_and_learned_starts():
    cell = NTMCell(4, _config())
    s = cell.initial_state(2, torch.zeros(1))
    assert torch.equal(s.memory, torch.full((2, 7, 5), MEMORY_INIT))
    assert torch.equal(s.read, cell.read_start.expand(2, -1))
    torch.testing.assert_close(s.weights.sum(-1), torch.ones(2, 4))
    assert (s.weights.argmax(-1) == 0).all()  # every head starts on slot 0
    assert torch.equal(s.h, torch.zeros(2, 6)) and torch.equal(s.c, torch.zeros(2, 6))


def test_gradcheck_through_several_steps_in_float64():
    torch.manual_seed(0)
    model = MemoryLSTM(_config(hidden_size=3, memory_slots=5, memory_width=2, read_heads=1, write_heads=1)).double()
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    params = [p for p in model.parameters()]

    def f(x, *ps):
        with torch.nn.utils.stateless._reparametrize_module(model, dict(zip([n for n, _ in model.named_parameters()],
                                                                                ps, strict=True))):  # fmt: skip
            return model(x)[0]

    inputs = (x, *[p.detach().clone().requires_grad_(True) for p in params])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_two_calls_with_the_state_equal_one_call():
    torch.manual_seed(0)
    model = MemoryLSTM(_config()).double()
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    whole, s_whole = model(x)
    a, s = model(x[:3])
    b, s2 = model(x[3:], s)
    torch.testing.assert_close(torch.cat([a, b]), whole, rtol=0, atol=0)
    for u, v in zip(s2, s_whole, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_outputs_do_not_depend_on_later_steps_or_other_sequences():
    torch.manual_seed(0)
    model = MemoryLSTM(_config()).double()
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    out, _ = model(x)
    y = x.clone()
    y[4:] = torch.randn(2, 3, 4, dtype=torch.float64)  # later steps changed
    y[:, 1] = 7.0  # another sequence changed
    out2, _ = model(y)
    torch.testing.assert_close(out2[:4, [0, 2]], out[:4, [0, 2]], rtol=0, atol=0)
    assert not torch.allclose(out2[4:, 0], out[4:, 0])


def test_the_controllers_zoneout_and_dropconnect():
    """model.zoneout and model.weight_dropout reach the controller: in training one W_hh mask a call (the call's steps
    inside the controller's holding_masks(), as a layer's call draws one) and zoneout's draws every step, so a loop of
    the cell in such a block from one seed is the model's call; in eval mode zoneout's mix and no mask; the state
    dict is the plain model's."""
    torch.manual_seed(0)
    model = MemoryLSTM(_config(zoneout=(0.2, 0.4), weight_dropout=0.3)).double()
    plain = MemoryLSTM(_config()).double()
    plain.load_state_dict(model.state_dict())
    ctl = model.cell.controller
    assert (ctl.zoneout, ctl.weight_dropout) == ((0.2, 0.4), 0.3)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.manual_seed(9)
    got, _ = model(x)
    torch.manual_seed(9)
    state, ys = None, []
    with ctl.holding_masks():
        for t in range(5):
            y, state = model.cell(x[t], state)
            ys.append(y)
    torch.testing.assert_close(got, model.head(torch.stack(ys)), rtol=0, atol=0)
    assert not torch.allclose(got, plain(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0], rtol=0, atol=0)  # no draws
    state = model.cell.initial_state(3, x)
    for t in range(5):  # eval: the plain step, then each of h and c mixed with its previous value by the rate
        _, new = plain.cell(x[t], state)
        h, c = 0.8 * new.h + 0.2 * state.h, 0.6 * new.c + 0.4 * state.c
        _, state = model.cell(x[t], state)
        torch.testing.assert_close((state.h, state.c), (h, c))


def test_parameter_count_without_building():
    for kw in ({}, {"read_heads": 1, "write_heads": 3, "shift_range": 2}, {"memory_slots": 128, "memory_width": 20}):
        c = _config(**kw)
        assert memory_param_count(c) == sum(p.numel() for p in MemoryLSTM(c).parameters())


def test_a_small_ntm_learns_to_copy_two_vectors():
    """Training works end to end: 150 Adam steps copy two 3-bit vectors (chance: 3 bits wrong of 6; seeds 0-2 reach
    0 by step 150 in a probe)."""
    torch.manual_seed(0)
    model = MemoryLSTM(_config(hidden_size=24, input_size=4, output_size=3, memory_slots=8, memory_width=6,
                               read_heads=1, write_heads=1))  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)

    def batch(n):
        bits = torch.randint(0, 2, (2, n, 3), generator=g).float()
        x = torch.zeros(5, n, 4)
        x[:2, :, :3] = bits
        x[2, :, 3] = 1.0
        return x, bits

    for _ in range(150):
        x, bits = batch(32)
        loss = F.binary_cross_entropy_with_logits(model(x)[0][3:], bits)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    x, bits = batch(500)
    with torch.no_grad():
        wrong = ((model(x)[0][3:] > 0).float() != bits).float().sum((0, 2)).mean()
    assert wrong < 0.3, f"{float(wrong):.2f} bits wrong a sequence after training (chance: 3)"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": "dnc"}, "model.kind must be 'ntm' or 'lstm', got 'dnc'"),
        ({"memory_slots": 0}, "model.memory_slots must be >= 1, got 0"),
        ({"read_heads": 0}, "model.read_heads must be >= 1, got 0"),
        ({"shift_range": 4}, r"model.shift_range must be in \[0, \(memory_slots - 1\) / 2\] = \[0, 3\], got 4"),
        ({"shift_range": -1}, r"model.shift_range must be in \[0, \(memory_slots - 1\) / 2\] = \[0, 3\], got -1"),
        ({"kind": "lstm", "compile": True}, "model.compile applies to model.kind='ntm' \\(the NTM's Python-stepped "
         "cell\\); the LSTM baseline already runs lstmkit's C\\+\\+ kernel"),
    ],
)
def test_bad_config_is_refused_by_name(kw, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        _config(**kw)


def test_bad_inputs_are_refused_by_name():
    model = MemoryLSTM(_config())
    with pytest.raises(ValueError, match=r"^x must be float features \(T, B, 4\), got torch.float32 \(3, 2, 5\)$"):
        model(torch.zeros(3, 2, 5))
    with pytest.raises(ValueError, match=r"^lengths must be shape \(2,\) with values in \[1, 3\], got \[1, 4\]$"):
        model(torch.zeros(3, 2, 4), lengths=torch.tensor([1, 4]))
    with pytest.raises(TypeError, match=r"^config must be a MemoryModel, got ModelConfig$"):
        from lstmkit.train import ModelConfig

        MemoryLSTM(ModelConfig(input_size=2, output_size=2))


def test_compile_needs_a_cpp_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++")
    with pytest.raises(ValueError, match=r"^model.compile needs a C\+\+ compiler \(torch.compile builds C\+\+ on the "
                                         r"CPU\), and 'no-such-c\+\+' is not on the PATH: install one \(e.g. g\+\+\) "
                                         r"or set model.compile = false$"):  # fmt: skip
        _config(compile=True)


def test_the_compiled_step_is_the_cell():
    """``model.compile`` runs ``torch.compile`` of the cell's forward: in float64 the outputs and the state are the
    eager cell's to rounding of a few units in the 16th digit (a wrong graph would be off in the first digits), the
    state dict and a copy are the plain model's, and gradients reach every parameter."""
    torch.manual_seed(0)
    compiled = MemoryLSTM(_config(compile=True)).double()
    eager = MemoryLSTM(_config()).double()
    eager.load_state_dict(compiled.state_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    x = torch.randn(4, 3, 4, dtype=torch.float64)
    y, state = compiled(x)
    assert compiled.cell in memory_module._COMPILED  # the compiled step ran, not the cell
    y_eager, state_eager = eager(x)
    torch.testing.assert_close(y, y_eager, rtol=1e-12, atol=1e-12)
    for a, b in zip(state, state_eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    y.sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in compiled.parameters())
    torch.testing.assert_close(copy.deepcopy(compiled)(x)[0], y_eager, rtol=1e-12, atol=1e-12)

"""``AttentionLM`` and its ``AttentionBlock`` (Merity's SHA-RNN block): the block against a per-query loop, causality,
chunks with the carried memory against one pass, gradients (gradcheck, float64), and the checks at the boundary."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from checks import one_thread
from lstmkit.diagnostics import gradient_flow
from lstmkit.models import AttentionBlock, AttentionLM, LMModel, causal_mask
from lstmkit.nn import LSTM
from lstmkit.stream import Stream
from lstmkit.train import ModelConfig

_one_thread = pytest.fixture(autouse=True)(one_thread)
D = torch.float64
# Float64 tolerance for two evaluations of the same logits that group the same sums differently (a chunk of T
# against a pass over 2T: other matrix shapes, so other blockings). Each logit is at most a dozen nested
# operations deep (embedding, LSTM gates over E + H + 2 terms, LayerNorm over H, scores over H, a softmax over
# <= 30 keys, a Boom over 4H, head over H): with n <= 4H + 2 = 34 terms a sum errs by n u |terms| (u = 2^-53 =
# 1.1e-16), magnitudes here are below 10, so the logits differ by at most ~12 * 34 * 1.1e-16 * 10 ~ 5e-13.
TIGHT = 1e-11


def _config(**kw) -> LMModel:
    base = dict(vocab_size=11, embedding_dim=6, hidden_size=8, num_layers=2, dropout=0.0, attention=True,
                attention_layer=1, attention_memory=8)  # fmt: skip
    return LMModel(**{**base, **kw})


def _model(**kw) -> AttentionLM:
    torch.manual_seed(0)
    model = AttentionLM(_config(**kw)).to(D).eval()
    _randomise(model.block)
    return model


def test_an_untrained_block_passes_its_input_through_layer_norm():
    """The residual branches start at zero: the fresh block is LayerNorm(x), so the model starts as the LSTM stack."""
    torch.manual_seed(0)
    block = AttentionBlock(6).to(D)
    x, memory = torch.randn(5, 2, 6, dtype=D), torch.randn(3, 2, 6, dtype=D)
    with torch.no_grad():
        torch.testing.assert_close(block(x, memory), block.norm_ff(x), rtol=0, atol=0)
        assert float(block.attention_weights(x, memory).std()) > 0  # the queries and keys are not zero


def _tokens(T: int, B: int = 3, V: int = 11, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(seed))  # (T, B)


def _randomise(block: AttentionBlock) -> AttentionBlock:
    """Non-trivial LayerNorm gains and biases (their defaults, 1 and 0, would hide a swapped norm), and random
    values and Boom output layer (they start at zero, which would hide the attention and the Boom)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for norm in (block.norm_q, block.norm_kv, block.norm_ff):
            norm.weight.copy_(1 + 0.3 * torch.randn(norm.weight.shape, generator=g, dtype=D))
            norm.bias.copy_(0.3 * torch.randn(norm.bias.shape, generator=g, dtype=D))
        for layer in (block.value, block.boom_down):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=D) / math.sqrt(layer.in_features))
            layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=g, dtype=D))
    return block


# -- the block against an independent reference ------------------------------------------------------------
def _layer_norm(v: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """(H,) -> (H,): (v - mean) / sqrt(var + eps) * gain + bias, biased variance."""
    mean = sum(v.tolist()) / v.numel()
    var = sum((a - mean) ** 2 for a in v.tolist()) / v.numel()
    return (v - mean) / math.sqrt(var + norm.eps) * norm.weight + norm.bias


def _reference_block(block: AttentionBlock, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """The block's math one query at a time: softmax over the keys j <= M + t written out with exp and a sum."""
    T, B, H = x.shape
    M = memory.shape[0]
    seq = torch.cat([memory, x])  # (M + T, B, H)
    out = torch.empty_like(x)
    for b in range(B):
        keys = [block.key.weight @ _layer_norm(seq[j, b], block.norm_kv) + block.key.bias for j in range(M + T)]
        values = [block.value.weight @ _layer_norm(seq[j, b], block.norm_kv) + block.value.bias for j in range(M + T)]
        for t in range(T):
            q = block.query.weight @ _layer_norm(x[t, b], block.norm_q) + block.query.bias  # (H,)
            visible = range(M + t + 1)  # the whole memory, the current steps up to and including t
            scores = [float(q @ keys[j]) / math.sqrt(H) for j in visible]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            attended = sum((w / total) * values[j] for j, w in zip(visible, weights, strict=True))
            y = x[t, b] + attended
            hidden = block.boom_up.weight @ y + block.boom_up.bias  # (4H,)
            gelu = torch.tensor([0.5 * a * (1 + math.erf(a / math.sqrt(2))) for a in hidden.tolist()], dtype=D)
            out[t, b] = _layer_norm(y + block.boom_down.weight @ gelu + block.boom_down.bias, block.norm_ff)
    return out


@pytest.mark.parametrize("M", [0, 3])
def test_block_matches_a_per_query_loop(M):
    torch.manual_seed(0)
    block = _randomise(AttentionBlock(4).to(D).eval())
    x, memory = torch.randn(5, 2, 4, dtype=D), torch.randn(M, 2, 4, dtype=D)
    with torch.no_grad():
        got = block(x, memory)
        want = _reference_block(block, x, memory)
    torch.testing.assert_close(got, want, rtol=0, atol=TIGHT)


def test_attention_weights_are_causal_and_sum_to_one():
    torch.manual_seed(0)
    block = AttentionBlock(4).to(D)
    alpha = block.attention_weights(torch.randn(5, 2, 4, dtype=D), torch.randn(3, 2, 4, dtype=D))  # (B, T, M + T)
    assert alpha.shape == (2, 5, 8)
    assert (alpha[:, ~causal_mask(5, 3)] == 0).all() and (alpha[:, causal_mask(5, 3)] > 0).all()
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 5, dtype=D), rtol=0, atol=TIGHT)
    assert causal_mask(2, 1).tolist() == [[True, True, False], [True, True, True]]


# -- the whole model -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention_layer", [1, 2])
def test_logits_at_t_do_not_see_later_tokens(attention_layer):
    model = _model(attention_layer=attention_layer)
    x = _tokens(9)
    with torch.no_grad():
        _, state = model(_tokens(4, seed=2))  # a memory of 4 earlier steps
        for fresh in (None, state):
            base, _ = model(x, fresh)
            for t in (0, 4, 7):
                changed = x.clone()
                changed[t + 1:] = (changed[t + 1:] + 1 + torch.arange(9 - t - 1)[:, None]) % 11  # every later token
                logits, _ = model(changed, fresh)
                torch.testing.assert_close(logits[: t + 1], base[: t + 1], rtol=0, atol=TIGHT)
                assert (logits[t + 1:] - base[t + 1:]).abs().max() > 1e-3  # later steps do read them


@pytest.mark.parametrize(("attention_layer", "tie"), [(1, True), (2, False)])
def test_chunks_with_the_carried_state_give_one_pass(attention_layer, tie):
    """M = 8 holds all of the first chunk (5) and, for three chunks, both earlier ones (5 + 3): the chunks then see
    exactly the keys of one pass. E = 6 != H = 8: the tied head reads through the projection."""
    model = _model(attention_layer=attention_layer, tie_weights=tie)
    x = _tokens(12)
    with torch.no_grad():
        whole, (h, c, memory) = model(x)
        a, state = model(x[:5])
        b, state = model(x[5:8], state)
        last, state = model(x[8:], state)
    torch.testing.assert_close(torch.cat([a, b, last]), whole, rtol=0, atol=TIGHT)
    for got, want in zip(state, (h, c, memory), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=TIGHT)
    assert memory.shape == (8, 3, 8)  # the last M = 8 steps' inputs to the block
    with torch.no_grad():
        below, _ = model.lstm_below(model.embedding(x))  # (T, B, H): layer a's outputs, what the block reads
    torch.testing.assert_close(memory, below[-8:], rtol=0, atol=TIGHT)


def test_a_short_memory_forgets_what_one_pass_sees():
    """M = 2 < the first chunk's 5 steps: the second chunk's queries no longer see steps 0-2, so its logits differ
    from one pass (the memory is what carries the attention across chunks), while the first chunk's do not."""
    model = _model(attention_memory=2)
    x = _tokens(10)
    with torch.no_grad():
        whole, _ = model(x)
        a, state = model(x[:5])
        b, _ = model(x[5:], state)
    assert state[2].shape == (2, 3, 8)
    torch.testing.assert_close(a, whole[:5], rtol=0, atol=TIGHT)
    assert (b - whole[5:]).abs().max() > 1e-4


def test_the_state_is_a_plain_tuple_that_starts_empty():
    model = _model(num_layers=3, attention_layer=2)
    logits, state = model(_tokens(4))
    assert logits.shape == (4, 3, 11) and type(state) is tuple
    assert [tuple(s.shape) for s in state] == [(3, 3, 8), (3, 3, 8), (4, 3, 8)]
    assert isinstance(model.lstm_below, LSTM) and model.lstm_below.num_layers == 2
    assert model.lstm_above.num_layers == 1
    assert _model(num_layers=2, attention_layer=None).lstm_above is None  # None: after the last layer


def test_gradcheck_through_the_block():
    torch.manual_seed(0)
    block = _randomise(AttentionBlock(3).to(D))
    names, params = zip(*block.named_parameters(), strict=True)
    x = torch.randn(4, 2, 3, dtype=D, requires_grad=True)
    memory = torch.randn(2, 2, 3, dtype=D, requires_grad=True)

    def f(x, memory, *p):
        return functional_call(block, dict(zip(names, p, strict=True)), (x, memory))

    assert torch.autograd.gradcheck(f, (x, memory, *[p.detach().clone().requires_grad_() for p in params]))


def test_gradcheck_through_the_whole_model():
    """Every parameter (the tied embedding included) and the carried state (h, c, memory)."""
    torch.manual_seed(0)
    model = AttentionLM(_config(vocab_size=5, embedding_dim=3, hidden_size=3, attention_memory=3,
                                tie_weights=True)).to(D)  # fmt: skip
    _randomise(model.block)
    names, params = zip(*model.named_parameters(), strict=True)
    x = _tokens(4, B=2, V=5)
    g = torch.Generator().manual_seed(3)
    state = [torch.randn(2, 2, 3, generator=g, dtype=D), torch.randn(2, 2, 3, generator=g, dtype=D),
             torch.randn(3, 2, 3, generator=g, dtype=D)]  # fmt: skip

    def f(h, c, memory, *p):
        logits, (h2, c2, m2) = functional_call(model, dict(zip(names, p, strict=True)), (x, (h, c, memory)))
        return logits, h2, c2, m2

    inputs = [s.requires_grad_() for s in state] + [p.detach().clone().requires_grad_() for p in params]
    assert torch.autograd.gradcheck(f, tuple(inputs))


# -- the boundary ----------------------------------------------------------------------------------------------
def test_lengths_must_fill_the_chunk():
    model = _model()
    x = _tokens(4)
    torch.testing.assert_close(model(x, lengths=torch.tensor([4, 4, 4]))[0], model(x)[0])
    with pytest.raises(ValueError) as e:
        model(x, lengths=torch.tensor([4, 2, 4]))
    assert str(e.value) == "AttentionLM does not mask padding: lengths must all equal T = 4 (or be None), got [4, 2, 4]"


def test_bad_inputs_and_states():
    model = _model()
    with pytest.raises(ValueError, match=r"^x must be token ids \(T, B\) of int64, got torch.float32 \(4, 3\)$"):
        model(torch.zeros(4, 3))
    _, (h, c, memory) = model(_tokens(4))
    with pytest.raises(ValueError) as e:
        model(_tokens(4, B=2), (h, c, memory))
    assert str(e.value) == ("state must be (h, c, memory) with h and c (2, 2, 8) and memory (M, 2, 8), M <= 8, got "
                            "[(2, 3, 8), (2, 3, 8), (4, 3, 8)]")  # fmt: skip
    with pytest.raises(ValueError, match=r"^state must be \(h, c, memory\)"):
        model(_tokens(4), (h, c))


def test_config_checks_name_the_key():
    cases = {
        "model.attention_layer must be >= 1, got 0": dict(attention_layer=0),
        "model.attention_layer must be in [1, model.num_layers = 2] (the LSTM layer the attention block follows), "
        "got 3": dict(attention_layer=3),
        "model.attention_memory must be >= 1, got 0": dict(attention_memory=0),
        "model.attention needs model.cell = 'lstm' (an LSTM stack), got 'gru'": dict(cell="gru"),
    }
    for message, kw in cases.items():
        with pytest.raises(ValueError) as e:
            _config(**kw)
        assert str(e.value) == message
    LMModel(cell="gru")  # attention off: the plain model takes any cell, as before
    with pytest.raises(ValueError, match=r"^AttentionLM reads token ids: set model.vocab_size"):
        AttentionLM(_config(vocab_size=None, input_size=3))
    with pytest.raises(TypeError, match=r"^config must be an LMModel, got ModelConfig$"):
        AttentionLM(ModelConfig(vocab_size=11))


def _one_token_at_a_time(model: AttentionLM, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
    """The model's forward fed chunks of one token (each query reads exactly the last M steps and itself)."""
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = model(x[t : t + 1], state)
            outs.append(y[0])
    return torch.stack(outs), state  # (T, B, V)


@pytest.mark.parametrize(("attention_layer", "num_layers", "tie", "E"), [(1, 2, True, 6), (2, 2, False, 8),
                                                                          (2, 3, True, 5)])  # fmt: skip
def test_a_stream_gives_the_forward_fed_one_token_at_a_time(attention_layer, num_layers, tie, E):
    """``lstmkit.Stream`` on an AttentionLM: the block between, on top of and inside the stack, tied through a
    projection; steps and chunks of 4, 1 and 9 tokens past the memory of 5 (so rows leave it) give the logits and
    the state (h, c, memory) of the forward run one token at a time."""
    model = _model(attention_layer=attention_layer, num_layers=num_layers, tie_weights=tie, embedding_dim=E,
                   attention_memory=5)  # fmt: skip
    x = _tokens(14)
    want, state = _one_token_at_a_time(model, x)
    stream = Stream(model, batch_size=3)
    got = torch.cat([stream.feed(x[:4]), stream.step(x[4])[None], stream.feed(x[5:])])
    torch.testing.assert_close(got, want, rtol=0, atol=TIGHT)
    for g, w in zip(stream.state, state, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=TIGHT)


def test_a_reset_stream_starts_with_an_empty_memory_while_the_others_go_on():
    """reset([1]) empties stream 1's memory and zeroes its h and c: it then reads as a fresh stream fed only the
    new tokens, while streams 0 and 2 give what they give without the reset. The state, which holds one memory
    length for all, is refused by name until the lengths agree again (reset(None))."""
    model = _model(attention_memory=5)
    x, later = _tokens(7), _tokens(6, seed=2)
    stream = Stream(model, batch_size=3)
    stream.feed(x)
    stream.reset([1])
    first = stream.feed(later[:3])
    with pytest.raises(ValueError) as e:
        _ = stream.state  # stream 1 holds 3 rows, the others 5
    assert str(e.value) == (
        "the streams' memories hold different numbers of rows, [5, 3, 5] (some streams were reset alone), which "
        "the model's state (h, c, memory (M', B, H)) cannot express; read it before such a reset, once every "
        "memory is full again, or after reset()"
    )
    got = torch.cat([first, stream.feed(later[3:])])  # (6, 3, V)
    want_on, state_on = _one_token_at_a_time(model, torch.cat([x, later]))
    want_fresh, state_fresh = _one_token_at_a_time(model, later[:, 1:2])
    torch.testing.assert_close(got[:, [0, 2]], want_on[7:, [0, 2]], rtol=0, atol=TIGHT)
    torch.testing.assert_close(got[:, 1:2], want_fresh, rtol=0, atol=TIGHT)
    assert (got[:, 1] - want_on[7:, 1]).abs().max() > 1e-3  # the reset mattered
    for g, on, fresh in zip(stream.state, state_on, state_fresh, strict=True):  # every memory full again: 5 rows
        torch.testing.assert_close(g[:, [0, 2]], on[:, [0, 2]], rtol=0, atol=TIGHT)
        torch.testing.assert_close(g[:, 1:2], fresh, rtol=0, atol=TIGHT)
    stream.reset()
    h, c, memory = stream.state
    assert memory.shape == (0, 3, 8) and not h.any() and not c.any()


def test_a_stream_takes_the_models_state_and_refuses_what_it_cannot_do():
    model = _model(attention_memory=5)
    x = _tokens(9)
    with torch.no_grad():
        _, state = model(x[:3])  # memory of 3 rows
    want, _ = _one_token_at_a_time(model, x[3:], state)
    stream = Stream(model, batch_size=3)
    stream.state = state
    torch.testing.assert_close(stream.feed(x[3:]), want, rtol=0, atol=TIGHT)
    with pytest.raises(TypeError) as e:
        stream.state = state[:2]
    assert str(e.value) == "state must be a tuple (h, c, memory) of three tensors, got tuple"
    with pytest.raises(ValueError) as e:
        stream.state = (*state[:2], torch.zeros(6, 3, 8, dtype=D))
    assert str(e.value) == "state memory must have shape (M', 3, 8) with M' <= 5, got (6, 3, 8)"
    with pytest.raises(ValueError) as e:
        stream.feed(x[:2], lengths=[2, 2, 2])
    assert str(e.value) == (
        "lengths must be None for a model with an attention block (model.attention = true): it does not mask "
        "padding; feed each stream's real steps only"
    )
    with pytest.raises(TypeError) as e:
        gradient_flow(model, x)
    assert str(e.value) == (
        "gradient_flow follows one recurrent core from input to head; this AttentionLM has a block with a memory "
        "between its LSTM layers (model.attention = true): pass one of its LSTMs (e.g. model.lstm_below) with its "
        "own input instead"
    )

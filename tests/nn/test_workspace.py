"""The pool of work buffers (lstmkit/nn/_workspace.py) of the ConvLSTM layer: a buffer is handed out again only when
nothing else references its storage, the layer's results are bit-equal with the pool on and off (two graphs alive, a
graph differentiated twice, threads), the size limit, release, and the environment variable's errors; and the LSTM's
inference, which needs no pooled buffer."""

from __future__ import annotations

import threading

import pytest
import torch

import lstmkit
from lstmkit.nn import _cpp, _workspace


@pytest.fixture
def pool(monkeypatch):
    """Every buffer pooled (the tests' tensors are far below the 32 MB of real use), an empty pool before and after."""
    monkeypatch.setattr(_workspace, "MIN_BYTES", 0)
    monkeypatch.delenv("LSTMKIT_BUFFER_CACHE_MB", raising=False)
    _workspace._pool.clear()
    yield
    _workspace._pool.clear()


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def test_a_buffer_is_reused_only_once_nothing_references_it(pool):
    like = torch.empty(0)
    a = _workspace.take(like, 4, 5)
    assert a.shape == (4, 5) and a.dtype == like.dtype and a.is_contiguous()
    b = _workspace.take(like, 4, 5)
    assert _storage(b) != _storage(a)  # a is in use
    view = a[1:]
    ptr = _storage(a)
    del a
    c = _workspace.take(like, 4, 5)
    assert _storage(c) not in (ptr, _storage(b))  # a view of a's buffer keeps it in use
    del view
    assert _storage(_workspace.take(like, 4, 5)) == ptr  # now free: handed out again
    assert _storage(_workspace.take(like.double(), 4, 5)) not in (ptr, _storage(b), _storage(c))  # dtype differs
    assert len(_workspace._pool) == 4


def test_small_buffers_and_tracers_are_left_to_the_allocator(monkeypatch):
    monkeypatch.delenv("LSTMKIT_BUFFER_CACHE_MB", raising=False)
    _workspace._pool.clear()
    _workspace.take(torch.empty(0), 8, 8)  # 256 bytes: below MIN_BYTES
    assert not _workspace._pool
    monkeypatch.setattr(_workspace, "MIN_BYTES", 0)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        t = _workspace.take(mode.from_tensor(torch.empty(0)), 8, 8)
    assert type(t) is not torch.Tensor and not _workspace._pool


_WEIGHTS = lstmkit.ConvLSTM(2, 3, 3, num_layers=2).state_dict()  # made once: threads share the global generator


def _layer_run(impl: str, steps: list[tuple[torch.Tensor, torch.Tensor]], retain: bool = False) -> list[torch.Tensor]:
    """Forward every (x, dy) first (all graphs alive at once), then backward each: outputs and gradients."""
    m = lstmkit.ConvLSTM(2, 3, 3, num_layers=2, impl=impl)
    m.load_state_dict(_WEIGHTS)
    outs, graphs = [], []
    for x, dy in steps:
        y, (h, c) = m(x)
        outs += [y.detach().clone(), h[-1].detach().clone(), c[-1].detach().clone()]
        graphs.append((y * dy).sum())
    for loss in graphs:
        m.zero_grad()
        loss.backward(retain_graph=retain)
        if retain:
            loss.backward()  # a graph kept with retain_graph, differentiated again: the grads add up
        outs += [p.grad.clone() for p in m.parameters()]
    return outs


@pytest.mark.parametrize("impl", ["winograd", "bptt"])
def test_layer_results_bit_equal_with_the_pool_on_and_off(pool, monkeypatch, impl):
    g = torch.Generator().manual_seed(1)
    steps = [(torch.randn(4, 2, 2, 9, 11, generator=g), torch.randn(4, 2, 3, 9, 11, generator=g)) for _ in range(2)]
    for retain in (False, True):
        _workspace._pool.clear()
        monkeypatch.setenv("LSTMKIT_BUFFER_CACHE_MB", "0")
        want = _layer_run(impl, steps, retain)
        assert not _workspace._pool
        monkeypatch.delenv("LSTMKIT_BUFFER_CACHE_MB")
        got = _layer_run(impl, steps, retain)  # two graphs alive at once: the second call cannot reuse the first's
        held = _workspace.held_bytes()
        assert held > 0
        again = _layer_run(impl, steps, retain)  # the first run's graphs are gone: its buffers come back
        assert _workspace.held_bytes() == held
        for a, b, c in zip(want, got, again, strict=True):
            assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("kwargs", [{}, {"layer_norm": True}, {"bias": False}, {"proj_size": 3, "peephole": True},
                                    {"num_layers": 2, "bidirectional": True, "batch_first": True}])
def test_lstm_inference_needs_no_pooled_buffer(pool, kwargs):
    """The LSTM's inference forward computes W_ih x inside the C++ kernel, a chunk of steps at a time
    (``_cpp.lstm_scan_cpp_input``): no (T, B, G) buffer is made, so nothing is pooled even with every size
    pooled, and outputs kept from one call are left as they were by the next."""
    if not _cpp.available():
        pytest.skip("the C++ kernel is not built here")
    torch.manual_seed(3)
    m = lstmkit.LSTM(5, 4, **kwargs).eval()
    xs = [torch.randn(7, 3, 5) for _ in range(2)]

    def run() -> list[torch.Tensor]:
        with torch.inference_mode():
            return [t for x in xs for t in (m(x)[0], *m(x)[1])]

    first = run()
    kept = [t.clone() for t in first]
    again = run()
    assert not _workspace._pool
    for a, b, c in zip(first, kept, again, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_layers_in_threads_match_the_sequential_run(pool):
    g = torch.Generator().manual_seed(2)
    steps = [[(torch.randn(3, 2, 2, 7, 6, generator=g), torch.randn(3, 2, 3, 7, 6, generator=g))] for _ in range(4)]
    want = [_layer_run("winograd", s) for s in steps]
    got: list[list[torch.Tensor] | None] = [None] * 4

    def work(i: int) -> None:
        torch.set_num_threads(1)
        for _ in range(3):
            got[i] = _layer_run("winograd", steps[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, r in zip(want, got, strict=True):
        assert r is not None and all(torch.equal(a, b) for a, b in zip(w, r, strict=True))


def test_the_limit_evicts_free_buffers_oldest_first_and_skips_what_does_not_fit(pool, monkeypatch):
    like = torch.empty(0)
    mb = 1 << 20
    monkeypatch.setenv("LSTMKIT_BUFFER_CACHE_MB", "3")
    a = _workspace.take(like, mb // 4)  # 1 MB each
    b = _workspace.take(like, mb // 4)
    ptr_a, ptr_b = _storage(a), _storage(b)
    del a, b
    c = _workspace.take(like, 2 * mb // 4)  # 2 MB: the older free buffer (a) goes to make room
    assert _workspace.held_bytes() == 3 * mb
    assert [_storage(t) for t, _ in _workspace._pool.values()] == [ptr_b, _storage(c)] and ptr_a != _storage(c)
    d = _workspace.take(like, 2 * mb // 4)  # b goes, then c is in use: the pool is full, d is not kept
    assert _workspace.held_bytes() == 2 * mb and _storage(d) not in [_storage(t) for t, _ in _workspace._pool.values()]
    big = _workspace.take(like, 4 * mb // 4)  # larger than the whole limit
    assert big.numel() == mb and _workspace.held_bytes() == 2 * mb
    del c
    _workspace.release()
    assert _workspace.held_bytes() == 0


def test_release_keeps_buffers_in_use(pool):
    like = torch.empty(0)
    a = _workspace.take(like, 10)
    _workspace.take(like, 20)  # dropped at once: free
    lstmkit.nn.release_buffers()
    assert [t.shape for t, _ in _workspace._pool.values()] == [torch.Size([10])]
    del a
    _workspace.release()
    assert not _workspace._pool


@pytest.mark.parametrize(("value", "message"), [
    ("lots", "LSTMKIT_BUFFER_CACHE_MB must be a number of megabytes, got 'lots'"),
    ("-1", "LSTMKIT_BUFFER_CACHE_MB must be >= 0, got '-1'"),
])  # fmt: skip
def test_the_environment_variable_is_checked(pool, monkeypatch, value, message):
    monkeypatch.setenv("LSTMKIT_BUFFER_CACHE_MB", value)
    with pytest.raises(ValueError, match=f"^{message}$"):
        _workspace.take(torch.empty(0), 4)

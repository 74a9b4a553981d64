"""One helper that checks forward values and every gradient of two modules against each other, and the one-thread
setting the tests of tiny layers share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


def _flat(out) -> list[Tensor]:
    if isinstance(out, PackedSequence):
        return [out.data]
    if isinstance(out, Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def _clone_inputs(inputs):
    def one(v):
        if isinstance(v, Tensor):
            return v.detach().clone().requires_grad_(v.is_floating_point())
        if isinstance(v, PackedSequence):
            return PackedSequence(one(v.data), v.batch_sizes, v.sorted_indices, v.unsorted_indices)
        if isinstance(v, tuple):
            return tuple(one(x) for x in v)
        return v

    return [one(v) for v in inputs]


def _leaves(inputs) -> list[Tensor]:
    out = []
    for v in inputs:
        if isinstance(v, PackedSequence):
            out.append(v.data)
        elif isinstance(v, tuple):
            out += _leaves(v)
        elif isinstance(v, Tensor) and v.requires_grad:
            out.append(v)
    return out


def check_same(a: nn.Module, b: nn.Module, *inputs, atol: float = 1e-5, rtol: float = 1e-5, seed: int = 0, **kw):
    """Run a(*inputs) and b(*inputs); assert equal outputs, input gradients and parameter gradients.

    The loss weights every output element differently (fixed random weights) so that each
    output, h_n and c_n all feed the gradients.
    """
    results = []
    for m in (a, b):
        m.zero_grad(set_to_none=True)
        ins = _clone_inputs(inputs)
        torch.manual_seed(seed)  # same dropout masks in both
        outs = _flat(m(*ins, **kw))
        gen = torch.Generator().manual_seed(1234)
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device)).sum() for o in outs)
        loss.backward()
        grads = {n: p.grad for n, p in m.named_parameters()}
        results.append((outs, [x.grad for x in _leaves(ins)], grads))
    (oa, ia, ga), (ob, ib, gb) = results
    assert len(oa) == len(ob)
    for x, y in zip(oa, ob, strict=True):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)
    for x, y in zip(ia, ib, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)
    assert ga.keys() == gb.keys()
    for name in ga:
        assert ga[name] is not None and gb[name] is not None, name
        torch.testing.assert_close(ga[name], gb[name], atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")
    return oa


def one_thread() -> Iterator[None]:
    """A fixture body: one intra-op thread for the test, restored after. Tiny matrices gain nothing from a second
    thread, and on a busy 2-core machine waiting for it costs many times the work (40x slower gradchecks).
    Use as ``_one_thread = pytest.fixture(autouse=True)(one_thread)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ISAS = ("generic", "avx2", "avx512")  # the float32 kernels' instruction-set paths, slowest first


def on_isa(request) -> Iterator[str]:
    """A fixture body parametrised by ``ISAS``: the test runs on that instruction-set path of the C++ extension's
    float32 kernels, restored after; skipped where the CPU lacks it. Use as
    ``isa = pytest.fixture(params=ISAS, name="isa")(on_isa)``."""
    from lstmkit.nn import _cpp

    if request.param not in _cpp.supported_isas():
        pytest.skip(f"this CPU lacks {request.param} (it runs {', '.join(_cpp.supported_isas())})")
    ext = _cpp._ext()
    before = ext.isa()
    ext.set_isa(request.param)
    yield request.param
    ext.set_isa(before)

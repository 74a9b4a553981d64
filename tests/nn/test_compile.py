"""lstmkit.LSTM under torch's tracers: the custom ops (``torch.library.opcheck``), torch.compile with
``fullgraph=True`` (no graph break; forward and every gradient equal to eager), torch.export and
torch.jit.trace. The ONNX exporters are tested in tests/export/test_torch_onnx_export.py.

torch.compile is slow to start, so sizes are tiny and the sweep over variants uses the
``aot_eager`` backend (Dynamo and AOTAutograd, the parts that see the op; no code generation);
one test compiles with the default Inductor backend (slow).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.nn import _cpp
from tolerances import head_tolerance

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

T, B, I, H = 5, 3, 4, 6
VARIANTS = {
    "plain": {},
    "peephole-coupled-bidirectional-lengths": {"peephole": True, "coupled": True, "bidirectional": True},
    "layer_norm-proj-recurrent_dropout": {"layer_norm": True, "proj_size": 4, "recurrent_dropout": 0.3},
    "all": {"peephole": True, "coupled": True, "layer_norm": True, "proj_size": 4, "recurrent_dropout": 0.3,
            "weight_dropout": 0.4, "bidirectional": True},
    "zoneout-peephole-proj": {"zoneout": (0.3, 0.5), "peephole": True, "proj_size": 4},
    "zoneout-cpp-layer_norm-bidirectional": {"zoneout": (0.2, 0.6), "layer_norm": True, "bidirectional": True,
                                             "impl": "cpp"},
}  # fmt: skip
LENGTHS = torch.tensor([5, 3, 1])


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds waiting on a shared machine
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cpp():
    if not _cpp.available():
        pytest.skip(f"C++ kernel unavailable: {_cpp._failure}")


class WordLM(nn.Module):
    """PyTorch's word-language-model example with lstmkit.LSTM: Embedding -> LSTM -> Linear. In float64 by default:
    compiled and eager are compared within the derived rounding bound (tests/tolerances.py), which at float32 and
    these sizes is too loose to see a small fault (above 0.4 with LayerNorm) and in float64 is 2**29 times tighter;
    one float32 run checks the float32 kernel under the compiler."""

    def __init__(self, vocab: int = 11, dtype: torch.dtype = torch.float64, **lstm) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, I, dtype=dtype)
        self.rnn = lstmkit.LSTM(I, H, 2, dtype=dtype, **lstm)
        self.out = nn.Linear(self.rnn.output_size * self.rnn.num_directions, vocab, dtype=dtype)

    def forward(self, x, lengths=None):
        y, (h, c) = self.rnn(self.emb(x), lengths=lengths)
        return self.out(y), h, c


def run(model, x, lengths=None, seed=0):
    """Outputs and every gradient of one forward and backward (recurrent dropout drawn from ``seed``)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    logits, h, c = model(x, lengths) if lengths is not None else model(x)
    (logits.square().sum() + h.sum() + 0.5 * c.sum()).backward()
    named = getattr(model, "_orig_mod", model).named_parameters()  # a compiled model's are its module's
    return [logits.detach(), h.detach(), c.detach()], {n: p.grad for n, p in named}


def tolerances(model: WordLM, x) -> tuple[float, float]:
    """The derived bounds (tests/tolerances.py) for two evaluations of ``model`` on token ids ``x``: absolute for
    the outputs, relative for the gradients. Eager training may run the input side on the C++ panels (AMD's
    AVX-512 CPUs) where the compiled graph runs ``F.linear``: the two sum in different orders."""
    with torch.no_grad():
        logits = model(x)[0]
        return head_tolerance(model.rnn, model.out, model.emb(x), logits)


def assert_same_run(got, want, model, x):
    tol, gtol = tolerances(model, x)
    (out_g, grad_g), (out_w, grad_w) = got, want
    for g, w in zip(out_g, out_w, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=tol)
    assert grad_g.keys() == grad_w.keys()
    for name in grad_w:
        atol = gtol * max(1.0, float(grad_w[name].abs().max()))
        torch.testing.assert_close(grad_g[name], grad_w[name], rtol=0, atol=atol, msg=name)


# --- the custom ops -----------------------------------------------------------------------------
def scan_inputs(peephole=False, coupled=False, layer_norm=False, proj=False, drop=False, mask=False, zoneout=None,
                train=True):
    """The op's arguments for one small layer, float64, differentiable ones requiring grad; ``zoneout`` "train"
    (0/1 weights, T rows) or "eval" (the rates, one row)."""
    gen = torch.Generator().manual_seed(0)
    G, P = (3 if coupled else 4) * H, 4 if proj else H

    def rand(*shape, offset=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.5 + offset).requires_grad_(train)

    return (
        rand(T, B, G), rand(B, P), rand(B, H), rand(G, P),
        rand(P, H) if proj else None,
        rand(2 if coupled else 3, H) if peephole else None,
        rand(G, offset=1.0) if layer_norm else None,
        rand(H, offset=1.0) if layer_norm else None,
        rand(H) if layer_norm else None,
        (torch.rand(B, P, generator=gen, dtype=torch.float64) > 0.3).double() / 0.7 if drop else None,
        torch.arange(T).unsqueeze(1) < LENGTHS.unsqueeze(0) if mask else None,
        coupled, 1e-5, *_zone(zoneout, gen, P), train,
    )  # fmt: skip


def _zone(kind, gen, P):
    if kind is None:
        return None, None
    if kind == "eval":
        return torch.full((1, B, P), 0.3, dtype=torch.float64), torch.full((1, B, H), 0.6, dtype=torch.float64)
    return tuple((torch.rand(T, B, n, generator=gen) < 0.5).double() for n in (P, H))


OP_CASES = {
    "plain": {},
    "peephole-coupled-mask": {"peephole": True, "coupled": True, "mask": True},
    "layer_norm-proj-drop": {"layer_norm": True, "proj": True, "drop": True},
    "peephole-proj-mask-zoneout": {"peephole": True, "proj": True, "mask": True, "zoneout": "train"},
    "inference": {"peephole": True, "layer_norm": True, "mask": True, "train": False},
    "inference-zoneout": {"peephole": True, "mask": True, "zoneout": "eval", "train": False},
}


@pytest.mark.parametrize("case", OP_CASES.values(), ids=OP_CASES.keys())
def test_opcheck_scan(cpp, case):
    """Schema, fake tensors (shapes of every output), autograd registration, AOT dispatch."""
    torch.library.opcheck(_cpp.lstm_scan_op, scan_inputs(**case))


@pytest.mark.parametrize("zoneout", [None, "train"])
def test_opcheck_scan_backward(cpp, zoneout):
    args = scan_inputs(peephole=True, layer_norm=True, proj=True, mask=True, zoneout=zoneout, train=False)
    with torch.no_grad():
        out = _cpp.lstm_scan_op(*args[:-1], True)
    ys, hn, cn, saved = out[0], out[1], out[2], list(out[3:])
    w_hh, w_hr, peep, g_hh, g_c, _b_c, drop, mask, coupled, _eps, zone_h, zone_c = args[3:15]
    grads = (torch.randn_like(ys), torch.randn_like(hn), torch.randn_like(cn))
    for need_w, need_extra in ((True, True), (False, False)):
        torch.library.opcheck(
            _cpp.lstm_scan_backward_op, (*grads, saved, w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c,
                                         coupled, need_w, need_extra)
        )  # fmt: skip


@pytest.mark.parametrize("zoneout", [None, "train"])
def test_op_gradients_equal_the_eager_kernel(cpp, zoneout):
    """The op's autograd formula gives the eager autograd.Function's gradients, bit for bit."""
    args = scan_inputs(peephole=True, layer_norm=True, proj=True, drop=True, mask=True, zoneout=zoneout)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    outs_op = _cpp.lstm_scan_op(*args)[:3]
    grads_op = torch.autograd.grad([o.sum() for o in outs_op], leaves)
    outs_fn = _cpp.LSTMScanCpp.apply(*args[:-1])
    grads_fn = torch.autograd.grad([o.sum() for o in outs_fn], leaves)
    for a, b in zip((*outs_op, *grads_op), (*outs_fn, *grads_fn), strict=True):
        assert torch.equal(a, b)


# --- torch.compile --------------------------------------------------------------------------------
# every variant in float64; float32 once, for the plain layer (its bound is loose at float32: see WordLM)
COMPILE_CASES = {**{f"{k}-float64": (v, torch.float64) for k, v in VARIANTS.items()},
                 "plain-float32": (VARIANTS["plain"], torch.float32)}  # fmt: skip


@pytest.mark.parametrize(("variant", "dtype"), COMPILE_CASES.values(), ids=COMPILE_CASES.keys())
def test_compile_fullgraph_every_variant(cpp, variant, dtype):
    model = WordLM(dtype=dtype, **variant).train()
    x = torch.randint(0, 11, (T, B))
    lengths = LENGTHS if variant.get("bidirectional") else None
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    assert_same_run(run(compiled, x, lengths), run(model, x, lengths), model, x)
    with torch.no_grad():  # inference: a second graph, with the op's train=False
        model.eval()
        tol = tolerances(model, x)[0]
        torch.testing.assert_close(compiled(x, lengths)[0], model(x, lengths)[0], rtol=0, atol=tol)


FIRST_USE_COMPILED = """
import warnings, torch, lstmkit
GUARDS_NOTE = "Guards may run slower on Python 3.13.0"  # torch's note on that one release (pyproject.toml)
warnings.simplefilter("error")
warnings.filterwarnings("ignore", GUARDS_NOTE, RuntimeWarning)
m = lstmkit.LSTM(4, 6, layer_norm=True)
x = torch.randn(5, 3, 4, requires_grad=True)
y = torch.compile(m, backend="aot_eager", fullgraph=True)(x)[0]
y.sum().backward()
print(torch.equal(y, m(x)[0]), lstmkit.nn._cpp._module is not None)
"""


def test_compiled_model_can_be_the_first_to_use_the_kernel(cpp):
    """In a fresh process the first call loads the extension; Dynamo must not trace that (a break)."""
    src = os.path.join(os.path.dirname(lstmkit.__file__), os.pardir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", FIRST_USE_COMPILED], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True", "True"]


def test_compile_reference_loop():
    """The reference loop is plain torch code: Dynamo unrolls it over T without a break."""
    model = WordLM(peephole=True, impl="reference").train()
    x = torch.randint(0, 11, (T, B))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    assert_same_run(run(compiled, x), run(model, x), model, x)


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")  # Dynamo's, at the break
def test_compile_fused_python_kernel_breaks_the_graph_but_is_right():
    """impl="fused" is not fullgraph-compilable (its hand-written backward writes with ``out=`` into
    views, which Dynamo refuses); without fullgraph, Dynamo runs that part eagerly and stays right."""
    model = WordLM(peephole=True, impl="fused").train()
    x = torch.randint(0, 11, (T, B))
    with pytest.raises(torch._dynamo.exc.Unsupported, match="out="):
        run(torch.compile(model, backend="aot_eager", fullgraph=True), x)
    torch._dynamo.reset()
    assert_same_run(run(torch.compile(model, backend="aot_eager"), x), run(model, x), model, x)


@pytest.mark.slow
def test_compile_inductor(cpp):
    """The default backend (Inductor, C++ code generation): about a minute on a shared 2-core machine."""
    model = WordLM(layer_norm=True, proj_size=4).train()
    x = torch.randint(0, 11, (T, B))
    compiled = torch.compile(model, fullgraph=True)
    assert_same_run(run(compiled, x), run(model, x), model, x)


# --- torch.export ---------------------------------------------------------------------------------
def test_export_runs_and_matches_eager_at_other_shapes(cpp):
    model = WordLM(peephole=True, layer_norm=True, proj_size=4).eval()
    x = torch.randint(0, 11, (T, B))
    time, batch = torch.export.Dim("T", min=2, max=64), torch.export.Dim("B", min=2, max=64)
    with torch.no_grad():
        program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: time, 1: batch}})
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "lstmkit.lstm_scan.default" in ops
    for shape in ((T, B), (9, 2), (3, 7)):
        x2 = torch.randint(0, 11, shape)
        tol = tolerances(model, x2)[0]
        with torch.no_grad():
            for got, want in zip(program.module()(x2), model(x2), strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=tol)


def test_program_exported_without_grad_refuses_to_train(cpp):
    model = WordLM().eval()
    x = torch.randint(0, 11, (T, B))
    with torch.no_grad():
        program = torch.export.export(model, (x,))
    logits = program.module()(x)[0]
    with pytest.raises(RuntimeError, match="traced without gradients"):
        logits.sum().backward()


# --- torch.jit.trace ------------------------------------------------------------------------------
def test_jit_trace_of_the_cpp_kernel_is_right_at_any_shape(cpp):
    model = WordLM(peephole=True, proj_size=4).eval()
    traced = torch.jit.trace(model, (torch.randint(0, 11, (T, B)),))
    for shape in ((9, 2), (1, 5)):
        x = torch.randint(0, 11, shape)
        tol = tolerances(model, x)[0]
        with torch.no_grad():
            for got, want in zip(traced(x), model(x), strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=tol)
    # and it trains: the op keeps what the backward needs whatever grad mode it was traced under
    model.train()
    traced.train()
    x = torch.randint(0, 11, (4, 2))
    assert_same_run(run(traced, x), run(model, x), model, x)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_jit_trace_refuses_a_python_time_loop(impl):
    model = WordLM(impl=impl).eval()
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace records lstmkit\.LSTM only through its C"):
        torch.jit.trace(model, (torch.randint(0, 11, (T, B)),))

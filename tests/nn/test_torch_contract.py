"""The torch.nn contract, held against torch.nn itself: dropout range and warning, LSTMCell's return and
state dict, ``all_weights``; and ``layer_weights``' typed view of the same Parameters."""

from __future__ import annotations

import copy
import io
import itertools
import warnings

import pytest
import torch
from torch import nn

import lstmkit
from checks import check_same
from lstmkit.nn import GRUWeights, LSTMState, LSTMWeights, layer_weights

I, H, B, T = 5, 7, 4, 6
PAIRS = [(nn.LSTM, lstmkit.LSTM), (nn.GRU, lstmkit.GRU), (nn.RNN, lstmkit.RNN)]
PAIR_IDS = ["LSTM", "GRU", "RNN"]


def _message(make) -> str:
    """The ValueError message of ``make()``."""
    with pytest.raises(ValueError) as info:
        make()
    return str(info.value)


# -- dropout -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("native_cls", "ours_cls"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("p", [1, 1.0, 0, 0.0, 0.5], ids=repr)
def test_dropout_accepts_what_torch_accepts(native_cls, ours_cls, p):
    native = native_cls(I, H, num_layers=2, dropout=p)
    ours = ours_cls(I, H, num_layers=2, dropout=p)
    assert ours.dropout == native.dropout
    assert isinstance(ours.dropout, float)


@pytest.mark.parametrize(("native_cls", "ours_cls"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("p", [1.5, -0.1, True, "0.5"], ids=repr)
def test_dropout_out_of_range_is_refused_in_torch_words(native_cls, ours_cls, p):
    want = _message(lambda: native_cls(I, H, num_layers=2, dropout=p))
    got = _message(lambda: ours_cls(I, H, num_layers=2, dropout=p))
    assert got.startswith(want)  # torch's sentence, then the value we were given
    assert got.endswith(f"got {p!r}")


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_dropout_one_zeroes_the_input_of_every_layer_but_the_first(impl):
    """dropout=1 in training: layers 2 and 3 see zeros, exactly as torch.nn.LSTM computes."""
    native = nn.LSTM(I, H, num_layers=3, dropout=1)
    ours = lstmkit.LSTM(I, H, num_layers=3, dropout=1, impl=impl)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, B, I)
    check_same(native.train(), ours.train(), x)
    zero_in = lstmkit.LSTM(H, H, impl=impl)  # what the last layer computes from an all-zero input
    zero_in.load_state_dict({k.replace("_l2", "_l0"): v for k, v in ours.state_dict().items() if "_l2" in k})
    with torch.no_grad():
        y, _ = ours(x)
        torch.testing.assert_close(y, zero_in(torch.zeros(T, B, H))[0], rtol=0, atol=0)
    check_same(native.eval(), ours.eval(), x)  # no dropout in eval


@pytest.mark.parametrize(("native_cls", "ours_cls"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("p", [0.3, 1])
def test_dropout_on_one_layer_warns_as_torch(native_cls, ours_cls, p):
    with pytest.warns(UserWarning) as native_record:
        native_cls(I, H, num_layers=1, dropout=p)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1") as ours_record:
        ours_cls(I, H, num_layers=1, dropout=p)
    assert [str(w.message) for w in ours_record] == [str(w.message) for w in native_record]
    assert ours_record[0].filename == __file__  # it points at the caller's line, not at lstmkit


@pytest.mark.parametrize(("native_cls", "ours_cls"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize(("layers", "p"), [(2, 0.3), (3, 1.0), (1, 0.0), (1, 0)])
def test_no_warning_where_dropout_acts_or_is_off(native_cls, ours_cls, layers, p):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        native_cls(I, H, num_layers=layers, dropout=p)
        ours_cls(I, H, num_layers=layers, dropout=p)


# -- LSTMCell --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_hx", [True, False])
def test_lstmcell_is_torch_lstmcell(bias, batched, with_hx):
    native = nn.LSTMCell(I, H, bias=bias)
    ours = lstmkit.LSTMCell(I, H, bias=bias)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(B, I) if batched else torch.randn(I)
    state = (torch.randn(B, H), torch.randn(B, H)) if batched else (torch.randn(H), torch.randn(H))
    args = (x, state) if with_hx else (x,)
    out = ours(*args)
    want = native(*args)
    assert type(out) is tuple and len(out) == 2
    for a, b in zip(out, want, strict=True):
        assert a.shape == b.shape == ((B, H) if batched else (H,))
    check_same(native, ours, *args)


@pytest.mark.parametrize("bias", [True, False])
def test_lstmcell_parameters_and_state_dict_both_ways(bias):
    native = nn.LSTMCell(I, H, bias=bias)
    ours = lstmkit.LSTMCell(I, H, bias=bias)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in native.named_parameters()]
    assert list(ours.state_dict()) == list(native.state_dict())
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        a, b = getattr(ours, name), getattr(native, name)
        assert (a is None) == (b is None), name  # without bias both have the attributes, as None
        if a is not None:
            assert a.shape == b.shape, name
    ours.load_state_dict(native.state_dict())
    back = nn.LSTMCell(I, H, bias=bias)
    back.load_state_dict(ours.state_dict())  # strict both ways
    for (n, a), (_, b) in zip(back.named_parameters(), native.named_parameters(), strict=True):
        assert torch.equal(a, b), n
    step = lstmkit.LSTMStepCell(I, H, bias=bias)
    step.load_state_dict(ours.state_dict())
    ours.load_state_dict(step.state_dict())


def test_lstmcell_same_initialisation_and_repr_as_torch():
    torch.manual_seed(3)
    native = nn.LSTMCell(I, H, bias=False)
    torch.manual_seed(3)
    ours = lstmkit.LSTMCell(I, H, bias=False)
    for a, b in zip(ours.parameters(), native.parameters(), strict=True):
        assert torch.equal(a, b)
    assert repr(ours) == repr(native)


def test_lstmcell_errors_in_torch_words():
    ours, native = lstmkit.LSTMCell(I, H), nn.LSTMCell(I, H)
    x3 = torch.randn(2, B, I)
    assert _message(lambda: ours(x3)) == _message(lambda: native(x3))
    hx = (torch.zeros(1, B, H), torch.zeros(B, H))
    assert _message(lambda: ours(torch.randn(B, I), hx)) == _message(lambda: native(torch.randn(B, I), hx))


@pytest.mark.parametrize("cls", [lstmkit.LSTMCell, lstmkit.LSTMStepCell])
def test_cells_deepcopy_pickle_float64(cls):
    cell = cls(I, H, peephole=True, layer_norm=True)
    x = torch.randn(B, I)
    want = cell(x)
    twin = copy.deepcopy(cell)
    buf = io.BytesIO()
    torch.save(cell, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for other in (twin, loaded):
        torch.testing.assert_close(other(x), want, rtol=0, atol=0)
    wide = copy.deepcopy(cell).double()
    out = wide(x.double())
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6, check_dtype=False)
    assert out[0].dtype == torch.float64


def test_step_cell_keeps_the_state_contract():
    cell = lstmkit.LSTMStepCell(I, H, proj_size=3)
    h, state = cell(torch.randn(B, I))
    assert isinstance(state, LSTMState) and state.h is h
    assert h.shape == (B, 3) and state.c.shape == (B, H)
    h2, c2 = lstmkit.LSTMCell(I, H, proj_size=3)(torch.randn(B, I), state)
    assert h2.shape == (B, 3) and c2.shape == (B, H)


# -- all_weights -------------------------------------------------------------------------------------------
ALL_WEIGHTS_GRID = [
    dict(num_layers=L, bidirectional=bi, bias=bias)
    for L, bi, bias in itertools.product([1, 3], [False, True], [True, False])
]


WITH_PROJ = [(*pair, 0) for pair in PAIRS] + [(nn.LSTM, lstmkit.LSTM, 3)]  # only LSTM has proj_size


@pytest.mark.parametrize("kw", ALL_WEIGHTS_GRID, ids=str)
@pytest.mark.parametrize(("native_cls", "ours_cls", "proj_size"), WITH_PROJ, ids=[*PAIR_IDS, "LSTM-proj"])
def test_all_weights_is_torchs(native_cls, ours_cls, proj_size, kw):
    extra = {"proj_size": proj_size} if proj_size else {}
    native = native_cls(I, H, **kw, **extra)
    ours = ours_cls(I, H, **kw, **extra)
    ours.load_state_dict(native.state_dict())
    names = native._all_weights  # torch's own per-layer name lists
    assert len(ours.all_weights) == len(native.all_weights) == len(names)
    for ours_layer, native_layer, layer_names in zip(ours.all_weights, native.all_weights, names, strict=True):
        assert len(ours_layer) == len(native_layer)
        for p, q, name in zip(ours_layer, native_layer, layer_names, strict=True):
            assert p is getattr(ours, name), name  # the Parameter itself, not a copy
            assert isinstance(p, nn.Parameter)
            assert torch.equal(p, q), name


def test_all_weights_appends_the_variants_in_documented_order():
    m = lstmkit.LSTM(I, H, 2, bidirectional=True, proj_size=3, peephole=True, layer_norm=True)
    order = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_ch", "weight_ln_ih", "weight_ln_hh",
             "weight_ln_c", "bias_ln_c"]  # fmt: skip
    for idx, layer in enumerate(m.all_weights):
        k, d = divmod(idx, 2)
        sfx = f"_l{k}{'_reverse' if d else ''}"
        assert [p is getattr(m, n + sfx) for p, n in zip(layer, order, strict=True)] == [True] * len(order)
        assert list(layer_weights(m, k, d).named()) == order
    coupled = lstmkit.LSTM(I, H, coupled=True, bias=False, peephole=True)
    assert [p is getattr(coupled, n) for p, n in zip(coupled.all_weights[0], ["weight_ih_l0", "weight_hh_l0",
            "weight_ch_l0"], strict=True)] == [True] * 3  # fmt: skip
    assert len(coupled.all_weights[0]) == 3


# -- layer_weights -----------------------------------------------------------------------------------------
def test_layer_weights_are_the_parameters_themselves():
    m = lstmkit.LSTM(I, H, 2, bidirectional=True, proj_size=3, peephole=True, layer_norm=True)
    w = layer_weights(m, 1, 1)
    assert isinstance(w, LSTMWeights)
    for field, name in LSTMWeights.PARAMETER_NAMES.items():
        assert getattr(w, field) is getattr(m, f"{name}_l1_reverse"), field
    plain = layer_weights(lstmkit.LSTM(I, H, bias=False))
    assert plain.b_ih is None and plain.peep is None and plain.w_hr is None
    native = nn.LSTM(I, H, 2, proj_size=3)
    assert layer_weights(native, 1).w_hr is native.weight_hr_l1
    gru = layer_weights(lstmkit.GRU(I, H), 0)
    assert isinstance(gru, GRUWeights) and gru.tensors()[2] is not None
    for cell in (lstmkit.LSTMCell(I, H, peephole=True), lstmkit.LSTMStepCell(I, H), nn.LSTMCell(I, H)):
        cw = layer_weights(cell)
        assert cw.w_ih is cell.weight_ih and cw.b_hh is cell.bias_hh
    assert layer_weights(lstmkit.LSTMCell(I, H, bias=False)).b_ih is None


def test_layer_weights_round_trip_and_errors():
    m = lstmkit.LSTM(I, H, 2, layer_norm=True)
    w = layer_weights(m, 1)
    again = LSTMWeights.from_named(w.named())
    assert all(a is b for a, b in zip(again.tensors(), w.tensors(), strict=True))
    with pytest.raises(IndexError, match=r"layer_index must be in \[0, 2\), got 2"):
        layer_weights(m, 2)
    with pytest.raises(IndexError, match=r"direction must be in \[0, 1\)"):
        layer_weights(m, 0, 1)
    with pytest.raises(IndexError, match="layer_index"):
        layer_weights(lstmkit.LSTMCell(I, H), 1)
    with pytest.raises(TypeError, match="reads LSTM, GRU and RNN layers and cells, got Linear"):
        layer_weights(nn.Linear(2, 2))


SCRIPTED = {
    "LSTM": lambda: lstmkit.LSTM(I, H),
    "GRU": lambda: lstmkit.GRU(I, H),
    "RNN": lambda: lstmkit.RNN(I, H),
    "GRUCell": lambda: lstmkit.GRUCell(I, H),
    "RNNCell": lambda: lstmkit.RNNCell(I, H),
    "LSTMCell": lambda: lstmkit.LSTMCell(I, H),
    "LSTMStepCell": lambda: lstmkit.LSTMStepCell(I, H),
    "ConvLSTM": lambda: lstmkit.ConvLSTM(2, 3, (3, 3)),
    "ConvLSTMCell": lambda: lstmkit.ConvLSTMCell(2, 3, (3, 3)),
}


@pytest.mark.parametrize("name", SCRIPTED)
def test_torch_jit_script_is_refused_with_what_to_use(name):
    """torch.nn's layers script; ours stop at once with a message (not "Unknown type annotation" from deep inside
    TorchScript's compiler), alone or inside a model, which is left as it was."""
    layer = SCRIPTED[name]()
    model = nn.Sequential(nn.Identity(), layer)
    for target in (layer, model):
        with pytest.raises(RuntimeError) as err:
            torch.jit.script(target)
        assert str(err.value) == (
            f"torch.jit.script cannot compile lstmkit.{name}: lstmkit's modules are Python that TorchScript does "
            "not read (autograd Functions, C++ extension calls, keyword-only arguments), and torch deprecates "
            "torch.jit.script. Use torch.compile or torch.export.export, which torch recommends instead"
        )
    assert model[1] is layer


IMPLS = ["auto", "fused", "reference"]


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
@pytest.mark.parametrize(("native_cls", "ours_cls", "kw"),
                         [(nn.LSTM, lstmkit.LSTM, {"impl": i}) for i in IMPLS] + [(nn.GRU, lstmkit.GRU, {})],
                         ids=[f"LSTM-{i}" for i in IMPLS] + ["GRU"])  # fmt: skip
def test_torch_prune_and_weight_norm_as_torch(native_cls, ours_cls, kw):
    """torch.nn.utils.prune and the old torch.nn.utils.weight_norm replace a weight by a plain tensor attribute
    (NAME_orig * NAME_mask; NAME_g, NAME_v) that a forward pre-hook recomputes: lstmkit reads it as torch.nn does
    (it failed with "'NoneType' object has no attribute 'dtype'"), training and inference."""
    import torch.nn.utils.prune as prune

    torch.manual_seed(0)
    native = native_cls(I, H, 2, bidirectional=True)
    ours = ours_cls(I, H, 2, bidirectional=True, **kw)
    ours.load_state_dict(native.state_dict())
    for m in (native, ours):
        prune.l1_unstructured(m, "weight_hh_l0", 0.5)
        torch.nn.utils.weight_norm(m, "weight_ih_l1_reverse")
    assert ours.state_dict().keys() == native.state_dict().keys()
    check_same(native, ours, torch.randn(T, B, I))  # outputs and the gradients of weight_hh_l0_orig, ..._g, ..._v
    with torch.no_grad():
        x = torch.randn(T, B, I)
        torch.testing.assert_close(ours(x)[0], native(x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: lstmkit.LSTM(I, H, 2, bidirectional=True, device="meta"),
                                  lambda: lstmkit.LSTM(I, H, impl="reference", device="meta"),
                                  lambda: lstmkit.GRU(I, H, device="meta")], ids=["LSTM", "LSTM-reference", "GRU"])
def test_meta_device_gives_torch_shapes(make):
    """Shape inference on the meta device (as model builders and FSDP's deferred init use it)."""
    ours = make()
    native = getattr(nn, type(ours).__name__)(I, H, ours.num_layers, bidirectional=ours.bidirectional, device="meta")
    x = torch.randn(T, B, I, device="meta")
    got, want = ours(x), native(x)
    assert got[0].shape == want[0].shape and got[0].device.type == "meta"


class WeightDrop(nn.Module):
    """AWD-LSTM's DropConnect on W_hh (Merity et al. 2017), as its reference code writes it: the Parameter moved to
    NAME_raw, and NAME set before each call as a plain tensor, dropped out in training."""

    def __init__(self, module: nn.Module, names: list[str], p: float) -> None:
        super().__init__()
        self.module, self.names, self.p = module, names, p
        for name in names:
            w = getattr(module, name)
            del module._parameters[name]
            module.register_parameter(name + "_raw", nn.Parameter(w.data))

    def forward(self, x):
        for name in self.names:
            raw = getattr(self.module, name + "_raw")
            setattr(self.module, name, nn.functional.dropout(raw, self.p, self.training))
        return self.module(x)


@pytest.mark.parametrize("impl", IMPLS)
def test_awd_lstm_weight_drop_as_torch(impl):
    torch.manual_seed(0)
    native = nn.LSTM(I, H, 2)
    ours = lstmkit.LSTM(I, H, 2, impl=impl)
    ours.load_state_dict(native.state_dict())
    check_same(WeightDrop(native, ["weight_hh_l0", "weight_hh_l1"], 0.5),
               WeightDrop(ours, ["weight_hh_l0", "weight_hh_l1"], 0.5), torch.randn(T, B, I))  # fmt: skip


def test_fake_tensor_mode_gives_torch_shapes():
    """Under FakeTensorMode (tensors without data, as torch's tracers make them) the layer gives torch.nn's shapes."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        ours, native = lstmkit.LSTM(I, H, 2, bidirectional=True), nn.LSTM(I, H, 2, bidirectional=True)
        x = torch.randn(T, B, I)
        got, want = ours(x), native(x)
        assert got[0].shape == want[0].shape and got[1][0].shape == want[1][0].shape

"""``lstmkit.diagnostics.gradient_flow`` on cases with a known answer, against autograd through the
models' own (fused) forward passes, and ``lstmkit diagnose`` end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from lstmkit import GRU, LSTM, RNN
from lstmkit.cli import app
from lstmkit.diagnostics import gradient_flow
from lstmkit.models import SequenceModel
from lstmkit.tasks import get_task, runner
from lstmkit.train import ModelConfig

D = torch.float64


def test_rnn_with_zero_recurrent_weights_has_no_gradient_beyond_one_step():
    rnn = RNN(3, 5, dtype=D)
    with torch.no_grad():
        rnn.weight_hh_l0.zero_()
    flow = gradient_flow(rnn, torch.randn(12, 4, 3, dtype=D))  # loss: the sum of h_T
    assert flow.dh.shape == (1, 12, 4, 5) and flow.dc is None
    assert torch.equal(flow.dh[0, :-1], torch.zeros(11, 4, 5))  # h_t reaches h_T only through W_hh = 0
    assert torch.equal(flow.dh[0, -1], torch.ones(4, 5))  # d(sum h_T)/dh_T


def test_rnn_gradient_vanishes_at_the_rate_of_its_recurrent_matrix():
    # Zero input weights and biases keep every h_t at 0, where tanh' = 1: then exactly
    # dL/dh_t = (W_hh^T)^(T-1-t) dL/dh_T, and with W_hh = a Q (Q orthogonal) its norm is a^(T-1-t) sqrt(H).
    H, T, a = 6, 40, 0.7
    rnn = RNN(2, H, dtype=D)
    Q, _ = torch.linalg.qr(torch.randn(H, H, dtype=D))
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
        rnn.weight_hh_l0.copy_(a * Q)
    flow = gradient_flow(rnn, torch.randn(T, 3, 2, dtype=D))
    distance = torch.arange(T - 1, -1, -1, dtype=D)  # T - 1 - t
    expected = a**distance * math.sqrt(H)
    torch.testing.assert_close(flow.norms("h"), expected.unsqueeze(1).expand(T, 3), rtol=1e-12, atol=0)
    vector = torch.ones(H, dtype=D)
    for t in range(T - 1, T - 6, -1):  # and the vectors themselves, a few steps back
        torch.testing.assert_close(flow.dh[0, t, 0], vector, rtol=1e-12, atol=1e-15)
        vector = a * Q.T @ vector  # dL/dh_{t-1} = W_hh^T dL/dh_t
    torch.testing.assert_close(flow.profile("h"), expected / expected[-1], rtol=1e-12, atol=0)


def test_lstm_cell_gradient_is_the_product_of_the_forget_gates():
    # With W_hh = W_ih = 0 every gate is set by its bias alone: h_t feeds nothing after step t, so
    # dL/dh_t = 0 before T, and dL/dc_t = f^(T-1-t) * dL/dc_{T-1} exactly, unit by unit.
    H, T = 4, 30
    lstm = LSTM(2, H, dtype=D)
    b_i, b_f, b_g, b_o = (torch.randn(H, dtype=D) for _ in range(4))
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.bias_ih_l0.copy_(torch.cat([b_i, b_f, b_g, b_o]))
    flow = gradient_flow(lstm, torch.randn(T, 3, 2, dtype=D))
    i, f, g, o = torch.sigmoid(b_i), torch.sigmoid(b_f), torch.tanh(b_g), torch.sigmoid(b_o)
    c = torch.zeros(H, dtype=D)
    for _ in range(T):
        c = f * c + i * g
    dc_last = o * (1 - torch.tanh(c) ** 2)  # dL/dh_T = 1 for the loss sum(h_T)
    distance = torch.arange(T - 1, -1, -1, dtype=D).unsqueeze(1)  # (T, 1)
    expected = f**distance * dc_last  # (T, H)
    torch.testing.assert_close(flow.dc[0], expected.unsqueeze(1).expand(T, 3, H), rtol=1e-12, atol=1e-300)
    assert torch.equal(flow.dh[0, :-1], torch.zeros(T - 1, 3, H))


def test_lstm_with_forget_gates_at_one_carries_the_gradient_unchanged():
    # The constant error carousel: f = 1 (a forget bias of 40 is 1.0 in float64) and i = 0 keep the
    # gradient on c exactly constant over 300 steps, where the plain RNN's vanishes.
    lstm = LSTM(1, 3, dtype=D)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.bias_ih_l0[3:6] = 40.0  # f
        lstm.bias_ih_l0[0:3] = -40.0  # i
    flow = gradient_flow(lstm, torch.randn(300, 2, 1, dtype=D))
    torch.testing.assert_close(flow.profile("c"), torch.ones(300, dtype=D), rtol=1e-12, atol=0)


def _hand_lstm(lstm: LSTM, x: torch.Tensor):
    """The LSTM equations written out: h, c, and the gates i, f, g, o at every step (T, B, H)."""
    H = lstm.hidden_size
    h = c = torch.zeros(x.shape[1], H, dtype=x.dtype)
    out = {k: [] for k in "hcifgo"}
    for x_t in x:
        a = x_t @ lstm.weight_ih_l0.T + h @ lstm.weight_hh_l0.T + lstm.bias_ih_l0 + lstm.bias_hh_l0
        i, f, g, o = a[:, :H].sigmoid(), a[:, H : 2 * H].sigmoid(), a[:, 2 * H : 3 * H].tanh(), a[:, 3 * H :].sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        for k, v in zip("hcifgo", (h, c, i, f, g, o), strict=True):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


def test_lstm_state_gradients_give_the_input_gradient_of_the_fused_forward():
    # dL/dx_t = W_ih^T [dL/dc_t g i(1-i), dL/dc_t c_{t-1} f(1-f), dL/dc_t i (1-g^2), dL/dh_t tanh(c_t) o(1-o)]
    # holds only if dL/dh_t and dL/dc_t are the total gradients; autograd through the layer's own
    # kernel (C++ or fused, not the replay) gives the left side.
    torch.manual_seed(1)
    lstm = LSTM(3, 5, dtype=D)
    x = torch.randn(25, 4, 3, dtype=D, requires_grad=True)
    lstm(x)[0][-1].sum().backward()
    flow = gradient_flow(lstm, x.detach())
    s = _hand_lstm(lstm, x.detach())
    torch.testing.assert_close(s["h"], lstm(x.detach())[0])
    dh, dc = flow.dh[0], flow.dc[0]
    c_prev = torch.cat([torch.zeros_like(s["c"][:1]), s["c"][:-1]])
    i, f, g, o = s["i"], s["f"], s["g"], s["o"]
    d_gates = torch.cat([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
                         dh * s["c"].tanh() * o * (1 - o)], -1)  # fmt: skip
    torch.testing.assert_close(d_gates @ lstm.weight_ih_l0, x.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_stacked_layers_pass_the_gradient_from_the_layer_above(cell):
    # The last step's loss reaches layer 0's h_t through layer 1 as well: for the RNN, the input
    # gradient of the real forward is W_ih0^T (dL/dh0_t * (1 - h0_t^2)). For every cell the top
    # layer's gradient at T is the head's weights, and the replay check passes.
    torch.manual_seed(2)
    model = SequenceModel(ModelConfig(input_size=3, output_size=2, hidden_size=6, num_layers=2, dropout=0.3,
                                      cell=cell)).double()  # fmt: skip
    model.train()
    x = torch.randn(15, 4, 3, dtype=D)
    flow = gradient_flow(model, x)
    assert model.training  # restored
    assert flow.dh.shape == (2, 15, 4, 6)
    torch.testing.assert_close(flow.dh[1, -1], model.head.weight.sum(0).expand(4, 6))
    if cell == "rnn":
        layer0 = RNN(3, 6, dtype=D)
        layer0.load_state_dict({k: v for k, v in model.rnn.state_dict().items() if k.endswith("_l0")})
        h0 = layer0(x)[0]
        xg = x.clone().requires_grad_(True)
        model.eval()
        model(xg)[0][-1].sum().backward()
        torch.testing.assert_close((flow.dh[0] * (1 - h0**2)) @ model.rnn.weight_ih_l0, xg.grad)


@pytest.mark.parametrize(
    "kwargs",
    [dict(peephole=True), dict(coupled=True), dict(layer_norm=True), dict(proj_size=3), dict(num_layers=2,
     peephole=True, proj_size=2, recurrent_dropout=0.5)],
)  # fmt: skip
def test_every_lstm_variant_replays_exactly(kwargs):
    num_layers = kwargs.pop("num_layers", 1)
    lstm = LSTM(3, 5, num_layers, **kwargs)
    flow = gradient_flow(lstm, torch.randn(10, 2, 3))  # raises if the replay differs from the forward pass
    P = kwargs.get("proj_size", 0) or 5
    assert flow.dh.shape == (num_layers, 10, 2, P) and flow.dc.shape == (num_layers, 10, 2, 5)
    assert torch.isfinite(flow.dh).all() and flow.norms("c").shape == (10, 2)


def test_token_models_relu_rnns_and_batch_first_layers():
    model = SequenceModel(ModelConfig(vocab_size=9, hidden_size=6, num_layers=1, dropout=0.0, tie_weights=True,
                                      embedding_dim=4))  # fmt: skip
    assert gradient_flow(model, torch.randint(0, 9, (7, 3))).dh.shape == (1, 7, 3, 6)
    relu = RNN(2, 4, nonlinearity="relu", batch_first=True)
    x = torch.randn(3, 8, 2)  # (B, T, I)
    flow = gradient_flow(relu, x, loss=lambda h: (h**2).sum())
    assert flow.dh.shape == (1, 8, 3, 4)
    torch.testing.assert_close(flow.dh[0, -1], 2 * relu(x)[0][:, -1])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_flow(GRU(2, 3, bidirectional=True), torch.randn(4, 1, 2))
    with pytest.raises(ValueError, match=r"float features \(T, B, 2\)"):
        gradient_flow(GRU(2, 3), torch.randn(4, 1, 5))
    with pytest.raises(ValueError, match="loss must return a scalar"):
        gradient_flow(GRU(2, 3), torch.randn(4, 2, 2), loss=lambda h: h)
    with pytest.raises(TypeError, match="SequenceModel or an lstmkit LSTM, GRU or RNN"):
        gradient_flow(torch.nn.LSTM(2, 3), torch.randn(4, 1, 2))
    with pytest.raises(ValueError, match="only an LSTM has"):
        gradient_flow(RNN(2, 3), torch.randn(4, 1, 2)).norms("c")


# -- lstmkit diagnose --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adding_runs(tmp_path_factory):
    """Two tiny adding runs (LSTM and RNN), trained for a few steps."""
    root = tmp_path_factory.mktemp("diag")
    smoke = get_task("adding").smoke_config(root)
    dirs = []
    for cell in ("lstm", "rnn"):
        config = dataclasses.replace(smoke, model=dataclasses.replace(smoke.model, cell=cell))
        dirs.append(runner.train("adding", config, root / cell).run_dir)
    return dirs


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_diagnose_plots_and_writes_the_numbers(adding_runs, tmp_path):
    lstm_dir, rnn_dir = adding_runs
    r = invoke("diagnose", lstm_dir, "--length", "30", "--batch", "4")
    assert r.exit_code == 0, r.output
    assert "LSTM, 8 units, torch init: ‖∂L/∂h‖ 29 steps back" in r.output and "‖∂L/∂c‖" in r.output
    png = lstm_dir / "gradient_flow.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((lstm_dir / "gradient_flow.json").read_text())
    assert numbers["length"] == 30 and len(numbers["runs"][0]["h"]) == 30 and numbers["runs"][0]["h"][-1] == 1.0

    out = tmp_path / "both.png"
    r = invoke("diagnose", lstm_dir, rnn_dir, "--init", "--out", out)
    assert r.exit_code == 0, r.output
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert [x["cell"] for x in runs] == ["lstm", "rnn"] and runs[1]["c"] is None and runs[1]["hidden_size"] > 8
    assert len(runs[0]["h"]) == 12  # the runs' data.length


def test_diagnose_refuses_what_it_cannot_do(adding_runs, tmp_path):
    r = invoke("diagnose", *adding_runs)
    assert r.exit_code == 2 and "--out is required" in r.stderr
    r = invoke("diagnose", adding_runs[0], "--length", "1")
    assert r.exit_code == 2 and "--length" in r.stderr
    for name, message in (("charlm", "'charlm' run"), ("reber", "no fixed-length input")):
        run_dir = runner.train(name, get_task(name).smoke_config(tmp_path), tmp_path / name).run_dir
        r = invoke("diagnose", run_dir)
        assert r.exit_code == 1 and message in r.stderr, r.output
    r = invoke("diagnose", tmp_path / "none")
    assert r.exit_code == 1 and "does not exist" in r.stderr


def test_diagnose_help_lists_every_option():
    r = invoke("diagnose", "--help")
    assert r.exit_code == 0
    for word in ("RUN_DIR", "--length", "--batch", "--seed", "--init", "--out"):
        assert word in r.output, word

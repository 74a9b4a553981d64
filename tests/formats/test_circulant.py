"""Block-circulant weights: the FFT product equals the dense matrix within a derived float32 bound,
projection is the nearest block-circulant matrix (and the identity on one), models compute the same
either way, files round-trip, and a block that does not fit is refused by name."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.formats import circulant as cc
from lstmkit.formats import file_format, load_weights
from lstmkit.models import SequenceModel
from lstmkit.train import ModelConfig

SIZES = [(2, 8, 5), (4, 4, 3), (8, 2, 1), (16, 3, 2), (64, 1, 4), (3, 4, 2), (12, 2, 3)]  # (K, p, q)


@pytest.mark.parametrize(("K", "p", "q"), SIZES)
def test_fft_product_equals_the_dense_matrix(K, p, q):
    g = torch.Generator().manual_seed(K)
    v = torch.randn(p, q, K, generator=g, dtype=torch.float64)
    x = torch.randn(7, 3, q * K, generator=g, dtype=torch.float64)  # (T, B, qK)
    exact = x @ cc.expand(v).T  # (T, B, pK)
    torch.testing.assert_close(cc.circulant_matmul(x, v), exact, rtol=0, atol=1e-12 * exact.abs().max())
    v32, x32 = v.float(), x.float()
    fft_err = (cc.circulant_matmul(x32, v32).double() - exact).abs()
    dense_err = (x32 @ cc.expand(v32).T).double() - exact
    assert (fft_err <= cc.product_error_bound(v32, x32)).all()
    assert (dense_err.abs() <= cc.dense_error_bound(cc.expand(v32), x32)).all()
    # float32 FFT and dense products are within the sum of the two bounds of each other
    both = cc.product_error_bound(v32, x32) + cc.dense_error_bound(cc.expand(v32), x32)
    assert ((cc.circulant_matmul(x32, v32) - x32 @ cc.expand(v32).T).abs().double() <= both).all()


def test_the_bound_catches_a_wrong_product():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(8, 8, 16, generator=g)
    x = torch.randn(5, 8 * 16, generator=g)
    wrong = v.clone()
    wrong[3, 2, 5] += 1e-3 * v.abs().max()  # one number off by 0.1% of the largest
    diff = (cc.circulant_matmul(x, wrong) - x @ cc.expand(v).T).abs().double()
    assert (diff > cc.product_error_bound(v, x) + cc.dense_error_bound(cc.expand(v), x)).any()


def test_bound_grows_with_log_k():
    assert [cc.fft_terms(k) for k in (2, 4, 64, 1024)] == [1, 2, 6, 10]
    assert cc.fft_terms(12) > cc.fft_terms(16)  # not a power of two: Bluestein's three FFTs


@pytest.mark.parametrize("K", [2, 3, 4, 8])
def test_projection_of_a_block_circulant_matrix_is_the_identity(K):
    v = torch.randn(3, 5, K, dtype=torch.float64)
    if K & (K - 1) == 0:  # the mean of K equal numbers is exact when K is a power of two
        assert torch.equal(cc.project(cc.expand(v), K), v)
    else:  # otherwise within the rounding of that mean: gamma_K |v|
        torch.testing.assert_close(cc.project(cc.expand(v), K), v, rtol=K * 2**-52, atol=0)


def test_projection_is_the_nearest_block_circulant_matrix():
    w = torch.randn(12, 8, dtype=torch.float64)
    v = cc.project(w, 4)
    residual = w - cc.expand(v)
    for _ in range(5):  # orthogonal to the whole subspace, so expand(v) is the nearest point of it
        other = cc.expand(torch.randn(3, 2, 4, dtype=torch.float64))
        assert abs(float((residual * other).sum())) < 1e-12
    # each block: entry (r, c) is the mean of its wrapped diagonal (r - c) mod K
    block = w[:4, :4]
    assert float(v[0, 0, 1]) == pytest.approx(float(sum(block[r, (r - 1) % 4] for r in range(4)) / 4))


def test_gradients_through_the_fft_equal_the_dense_ones():
    v = torch.randn(4, 3, 8, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 24, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cc.circulant_matmul, (x, v))
    gv_fft, gx_fft = torch.autograd.grad(cc.circulant_matmul(x, v).pow(2).sum(), (v, x))
    gv, gx = torch.autograd.grad((x @ cc.expand(v).T).pow(2).sum(), (v, x))
    torch.testing.assert_close(gv_fft, gv)
    torch.testing.assert_close(gx_fft, gx)


def models():
    yield SequenceModel(ModelConfig(vocab_size=30, hidden_size=16, num_layers=2, embedding_dim=8))
    yield SequenceModel(ModelConfig(vocab_size=30, hidden_size=16, num_layers=1, embedding_dim=16, tie_weights=True))
    yield lstmkit.LSTM(8, 16, 2, bidirectional=True, peephole=True)
    yield lstmkit.LSTM(8, 16, 1, proj_size=8)
    yield lstmkit.GRU(8, 16, 2)
    yield lstmkit.RNN(8, 16)


@pytest.mark.parametrize("model", list(models()), ids=lambda m: type(m).__name__)
def test_a_circulant_model_computes_the_same_with_either_product(model, tmp_path):
    model.eval()
    before = sum(p.numel() for p in model.parameters())
    layout = cc.circulant_model(model, 4)
    inputs = torch.randint(0, 30, (11, 3)) if isinstance(model, SequenceModel) else torch.randn(11, 3, 8)
    with torch.no_grad():
        dense, _ = model(inputs)
        cc.set_product(model, "fft")
        fft, _ = model(inputs)
    # The FFT product's rounding (product_error_bound, well under 1e-5 here) passes through the
    # recurrence like any other float32 rounding (docs/deployment.md's bound is 2e-4 at these sizes).
    torch.testing.assert_close(fft, dense, rtol=0, atol=1e-4)
    saved = sum(p * q * K * (K - 1) for p, q, K in layout["circulant"].values())  # each matrix: K times fewer
    assert sum(p.numel() for p in model.parameters()) == before - saved
    cc.save_circulant(model, tmp_path / "c.safetensors")
    assert file_format(tmp_path / "c.safetensors") == cc.FORMAT
    fresh = type(model)(model.config) if isinstance(model, SequenceModel) else None
    if fresh is not None:
        load_weights(fresh.eval(), tmp_path / "c.safetensors")
        assert {p.product for p in cc.circulant_parts(fresh).values()} == {"fft"}  # the product is kept
        with torch.no_grad():
            assert torch.equal(fresh(inputs)[0], fft)


def test_fft_mode_runs_the_reference_loop_and_no_dense_matrix():
    model = lstmkit.LSTM(8, 16)
    cc.circulant_model(model, 8)
    assert model.impl == "auto"
    cc.set_product(model, "fft")
    assert model.impl == "reference"
    w = model.weight_hh_l0
    assert isinstance(w, cc.CirculantMatrix) and w.shape == (64, 16) and w._dense is None
    model(torch.randn(4, 2, 8))[0].sum().backward()  # trains through the FFT
    assert model.parametrizations.weight_hh_l0[0].vectors.grad is not None
    cc.set_product(model, "dense")
    assert model.impl == "auto" and not isinstance(model.weight_hh_l0, cc.CirculantMatrix)


def test_heads_whose_sizes_the_block_does_not_divide_stay_dense():
    model = SequenceModel(ModelConfig(vocab_size=30, hidden_size=16, num_layers=1, embedding_dim=8))
    layout = cc.circulant_model(model, 8)
    assert "head.weight" in layout["dense"] and "not a multiple of 8" in layout["dense"]["head.weight"]
    assert set(layout["circulant"]) == {"rnn.weight_ih_l0", "rnn.weight_hh_l0"}


def test_a_block_that_does_not_divide_the_sizes_is_refused_by_name():
    model = SequenceModel(ModelConfig(vocab_size=30, hidden_size=16, num_layers=1, embedding_dim=12))
    with pytest.raises(ValueError, match=r"block=8 \(--block\) must divide both sizes of every gate matrix .*"
                       r"rnn.weight_ih_l0 is \(64, 12\): 12 is not a multiple of 8. Block sizes that fit this "
                       r"model: 2, 4$"):  # fmt: skip
        cc.circulant_model(model, 8)
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ValueError, match="block must be an integer >= 2"):
            cc.circulant_model(model, bad)
    with pytest.raises(ValueError, match="product must be one of"):
        cc.circulant_model(model, 4, product="fast")
    assert not cc.is_circulant(model)  # nothing was changed

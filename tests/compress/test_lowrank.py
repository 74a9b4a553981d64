"""Low-rank factorisation: exact at the matrix's rank, Eckart-Young error, energy, the model, save/load."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.formats.lowrank import (
    choose_rank,
    factorize,
    gate_matrices,
    is_lowrank,
    load_lowrank,
    lowrank_model,
    save_lowrank,
)


def test_a_rank_r_matrix_is_reconstructed_at_rank_r():
    w = torch.randn(40, 5, dtype=torch.float64) @ torch.randn(5, 30, dtype=torch.float64)
    a, b = factorize(w, rank=5)
    assert a.shape == (40, 5) and b.shape == (5, 30)
    torch.testing.assert_close(a @ b, w)


def test_truncation_error_is_the_dropped_singular_values():
    w = torch.randn(32, 24, dtype=torch.float64)
    s = torch.linalg.svdvals(w)
    for r in (1, 6, 20):
        a, b = factorize(w, rank=r)
        assert torch.linalg.norm(w - a @ b) == pytest.approx(float(s[r:].pow(2).sum().sqrt()), rel=1e-9)


def test_energy_picks_the_smallest_rank_that_keeps_it():
    s = torch.tensor([3.0, 2.0, 1.0, 0.5])
    share = (s**2).cumsum(0) / (s**2).sum()  # 0.632, 0.913, 0.983, 1
    assert choose_rank(s, energy=0.9) == 2 and choose_rank(s, energy=float(share[1])) == 2
    assert choose_rank(s, energy=0.95) == 3 and choose_rank(s, energy=1.0) == 4
    assert choose_rank(s, rank=10) == 4
    for bad in (0, -1.0, 1.5):
        with pytest.raises(ValueError, match="energy"):
            choose_rank(s, energy=bad)
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        choose_rank(s, rank=0)


def test_model_factorised_saved_loaded_and_trainable(tmp_path):
    m = lstmkit.LSTM(16, 32, 2, bidirectional=True, peephole=True).eval()
    before = sum(p.numel() for p in m.parameters())
    assert len(gate_matrices(m)) == 8
    ranks = lowrank_model(m, rank=4)
    assert ranks and set(ranks.values()) == {4} and is_lowrank(m)
    assert sum(p.numel() for p in m.parameters()) < before
    x = torch.randn(5, 2, 16)
    y, _ = m(x)
    y.sum().backward()  # gradients reach the factors
    assert m.parametrizations.weight_hh_l0[0].left.grad is not None
    path = tmp_path / "f.safetensors"
    save_lowrank(m, path)
    again = load_lowrank(lstmkit.LSTM(16, 32, 2, bidirectional=True, peephole=True).eval(), path)
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], m(x)[0], rtol=0, atol=0)


def test_a_full_rank_matrix_stays_dense():
    m = lstmkit.LSTM(4, 8)
    ranks = lowrank_model(m, energy=1.0)
    assert "weight_ih_l0" not in ranks  # rank 4 of (32, 4): factors would be larger

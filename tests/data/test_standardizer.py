from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmkit.data import Standardizer


def test_fit_transform_hand_computed():
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])
    s = Standardizer().fit(x)
    # feature 0: mean 3, population std sqrt(8/3); feature 1: mean 20, std sqrt(200).
    assert torch.allclose(s.mean, torch.tensor([3.0, 20.0], dtype=torch.float64))
    assert torch.allclose(s.std, torch.tensor([(8 / 3) ** 0.5, 200**0.5], dtype=torch.float64))
    z = s.transform(x)
    assert z.dtype == torch.float32
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(z.std(0, correction=0), torch.ones(2), atol=1e-6)
    assert torch.allclose(s.inverse_transform(z), x, atol=1e-5)


def test_fit_on_train_only_applies_train_statistics():
    train, test = np.array([[0.0], [2.0]]), np.array([[4.0]])
    s = Standardizer().fit(train)
    assert s.transform(test).tolist() == [[3.0]]  # (4 - 1) / 1, not test's own statistics


def test_fit_on_variable_length_sequences_and_batches():
    seqs = [torch.randn(5, 3, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)]
    s = Standardizer().fit(seqs)
    stacked = torch.cat(seqs)
    assert torch.allclose(s.mean, stacked.mean(0))
    batch = torch.randn(7, 4, 3)  # (T, B, F)
    assert s.transform(batch).shape == (7, 4, 3)


def test_refuses_nan_inf_and_constant_features_by_index():
    x = torch.randn(10, 4)
    bad = x.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf in feature index\(es\) \[2\]"):
        Standardizer().fit(bad)
    bad = x.clone()
    bad[0, 1] = float("inf")
    with pytest.raises(ValueError, match=r"\[1\]"):
        Standardizer().fit(bad)
    const = x.clone()
    const[:, 3] = 7.0
    with pytest.raises(ValueError, match=r"feature index\(es\) \[3\] are constant"):
        Standardizer().fit(const)


def test_transform_checks():
    with pytest.raises(RuntimeError, match="not fitted"):
        Standardizer().transform(torch.zeros(2, 2))
    s = Standardizer().fit(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"must have 2 features last"):
        s.transform(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="tensor or numpy array"):
        s.transform([[1.0, 2.0]])


def test_save_load_exact(tmp_path):
    s = Standardizer().fit(np.random.default_rng(0).normal(size=(50, 3)))
    s.save(tmp_path / "std.json")
    back = Standardizer.load(tmp_path / "std.json")
    assert torch.equal(back.mean, s.mean) and torch.equal(back.std, s.std)

    obj = json.loads((tmp_path / "std.json").read_text())
    (tmp_path / "v2.json").write_text(json.dumps({**obj, "version": 2}))
    with pytest.raises(ValueError, match=r"unsupported lstmkit.standardizer version 2"):
        Standardizer.load(tmp_path / "v2.json")
    (tmp_path / "bad.json").write_text(json.dumps({**obj, "std": [1.0, 0.0, 1.0]}))
    with pytest.raises(ValueError, match="std > 0"):
        Standardizer.load(tmp_path / "bad.json")

"""Weighted DTW barycentre averaging (``lstmkit.data.dba``): its alignments against a DTW written here from the
recurrence, the DBA property (no step raises the weighted cost), the "average selected" weights by hand, and
synthesize's counts, lengths, determinism and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lstmkit.data import dba


def _dtw_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cumulative cost table of DTW with squared point costs, from the recurrence (independent of
    dtaidistance): D[i, j] = ||a_i - b_j||^2 + min(D[i-1, j], D[i, j-1], D[i-1, j-1])."""
    n, m = len(a), len(b)
    D = np.full((n + 1, m + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i, j] = np.sum((a[i - 1] - b[j - 1]) ** 2) + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return D


def _path(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """The optimal path, traced back through the table (random inputs: no ties)."""
    D = _dtw_table(a, b)
    i, j, path = len(a), len(b), []
    while (i, j) != (0, 0):
        path.append((i - 1, j - 1))
        i, j = min([(i - 1, j - 1), (i - 1, j), (i, j - 1)], key=lambda p: D[p])
    return path[::-1]


def _dba_step(average: np.ndarray, cases: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    total, mass = np.zeros_like(average), np.zeros(len(average))
    for case, w in zip(cases, weights, strict=True):
        for i, j in _path(average, case):
            total[i] += w * case[j]
            mass[i] += w
    return total / mass[:, None]


@pytest.mark.parametrize("channels", [1, 3])
def test_cost_and_step_agree_with_the_recurrence(channels):
    rng = np.random.default_rng(channels)
    cases = [rng.normal(size=(t, channels)) for t in (9, 12, 7, 10)]
    for a in cases:
        for b in cases:
            assert dba.dtw_cost(a, b) == pytest.approx(_dtw_table(a, b)[-1, -1], rel=1e-12)
    weights = np.array([0.5, 0.2, 0.2, 0.1])
    np.testing.assert_allclose(dba.dba_step(cases[0], cases, weights), _dba_step(cases[0], cases, weights),
                               rtol=1e-12, atol=1e-12)  # fmt: skip


def _weighted_cost(average: np.ndarray, cases: list[np.ndarray], weights: np.ndarray) -> float:
    return sum(w * dba.dtw_cost(average, c) for c, w in zip(cases, weights, strict=True))


@pytest.mark.parametrize("channels", [1, 2])
def test_no_refinement_raises_the_weighted_cost(channels):
    rng = np.random.default_rng(10 + channels)
    t = np.linspace(0, 1, 40)
    cases = [np.stack([np.sin(2 * np.pi * (t - rng.uniform(0, 0.2))) * (c + 1) for c in range(channels)], 1)
             + 0.1 * rng.normal(size=(40, channels)) for _ in range(6)]  # fmt: skip
    weights = rng.dirichlet(np.ones(6))
    average, costs = cases[0], [_weighted_cost(cases[0], cases, weights)]
    for _ in range(4):
        average = dba.dba_step(average, cases, weights)
        costs.append(_weighted_cost(average, cases, weights))
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(costs)), costs
    assert costs[-1] < costs[0]


def test_a_shifted_peak_is_kept_where_the_pointwise_mean_would_halve_it():
    bump = lambda centre: np.exp(-(((np.arange(50) - centre) / 3.0) ** 2))[:, None]  # noqa: E731
    a, b = bump(20), bump(30)
    average = dba.weighted_average([a, b], np.array([0.5, 0.5]), start=0)
    assert average.max() == pytest.approx(1.0, abs=0.02)
    assert (a + b).max() / 2 < 0.6
    # one case with all the weight: the average is that case, whatever the start
    np.testing.assert_allclose(dba.weighted_average([a, b], np.array([0.0, 1.0]), start=0)[:, 0].max(), 1.0)


def test_average_selected_weights_by_hand():
    rng = np.random.default_rng(0)
    costs = np.array([[0, 1, 2, 3, 4, 5, 6, 7], [1, 0, 1, 1, 1, 1, 1, 1]] + [[1] * 8] * 6, dtype=float)
    w = dba.average_selected_weights(costs, 0, rng)
    assert w[0] == 0.5 and w.sum() == pytest.approx(1.0)
    drawn = np.flatnonzero(np.isclose(w, 0.15))
    assert len(drawn) == 2 and set(drawn) <= {1, 2, 3, 4, 5}  # two of the five nearest
    rest = [i for i in range(1, 8) if i not in drawn]
    np.testing.assert_allclose(w[rest], 0.2 / 5)
    np.testing.assert_allclose(dba.average_selected_weights(np.zeros((1, 1)), 0, rng), [1.0])
    np.testing.assert_allclose(dba.average_selected_weights(np.array([[0.0, 1.0], [1.0, 0.0]]), 1, rng),
                               [0.3 / 0.8, 0.5 / 0.8])  # fmt: skip


def test_synthesize_counts_lengths_classes_and_determinism():
    rng = np.random.default_rng(3)
    cases = [rng.normal(size=(t, 2)) for t in (8, 9, 10, 11, 12)]
    labels = np.array([1, 0, 1, 1, 0])
    made, made_labels = dba.synthesize(cases, labels, 2, seed=5)
    assert len(made) == 10 and made_labels.tolist() == [0] * 4 + [1] * 6
    assert [len(x) for x in made] == [9, 12, 9, 12, 8, 10, 11, 8, 10, 11]  # each its centre's length, class by class
    assert all(x.dtype == np.float32 and x.shape[1] == 2 for x in made)
    again, _ = dba.synthesize(cases, labels, 2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(made, again, strict=True))
    big = [rng.normal(size=(10, 1)) for _ in range(8)]  # 7 others: the two drawn differ with the seed
    a, _ = dba.synthesize(big, np.zeros(8, dtype=int), 1, seed=5)
    b, _ = dba.synthesize(big, np.zeros(8, dtype=int), 1, seed=6)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert dba.synthesize(cases, labels, 0, seed=0)[0] == []
    # the averages stay within each class's values: a class of constant cases gives that constant back
    flat, flat_labels = dba.synthesize([np.full((5, 1), 2.0), np.full((7, 1), 2.0)], np.array([0, 0]), 1, seed=0)
    assert all(np.all(x == 2.0) for x in flat) and flat_labels.tolist() == [0, 0]


def test_cells_by_hand():
    # class 0: two cases of 10 steps, 1 pair + 1 x 2 synthetic x 5 iterations x 2 alignments; class 1: one of 20
    assert dba.cells([10, 10, 20], np.array([0, 0, 1]), 1) == (1 + 20) * 100 + (0 + 5) * 400


def test_synthesize_errors_are_named():
    case = np.zeros((4, 1))
    with pytest.raises(ValueError, match=r"^cases and labels differ in number: 2 and 1$"):
        dba.synthesize([case, case], np.array([0]), 1, seed=0)
    with pytest.raises(ValueError, match=r"^per_case must be >= 0, got -1$"):
        dba.synthesize([case], np.array([0]), -1, seed=0)
    with pytest.raises(ValueError, match=r"^every case must have the same number of channels C"):
        dba.synthesize([case, np.zeros((4, 2))], np.array([0, 0]), 1, seed=0)

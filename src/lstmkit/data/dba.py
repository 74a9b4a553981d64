"""Synthetic training cases by weighted DTW barycentre averaging (DBA), for classifiers with a few dozen cases.

Forestier, Petitjean, Dau, Webb and Keogh (2017) make new cases of a class as weighted DTW averages of its real
cases; Ismail Fawaz et al. (2018) doubled small UCR training sets this way and found large gains for a deep
network on some of them. Each synthetic case here follows their "average selected" weights: a case of the class
is the centre (weight ``CENTRE``; every case in turn rather than one drawn at random, so each is used alike), two
drawn from its ``NEIGHBOURS`` nearest cases of the class by DTW share ``NEAR``, and every other case of the class
shares the rest. The average starts at the centre (so it has the centre's length T) and is refined by
``ITERATIONS`` DBA steps (Petitjean et al. 2011): align every weighted case to the average by DTW, then set each
step of the average to the weighted mean of the steps aligned to it. No step raises the weighted sum of squared
DTW costs to the average.

DTW alignments and distances come from dtaidistance's C implementation (squared point costs, full warping,
the multivariate "dependent" form for C > 1 channels, as the ``classify`` 1-NN DTW baseline).
"""

from __future__ import annotations

import numpy as np

CENTRE = 0.5  # weight of the centre case
NEAR = 0.3  # shared by the two neighbours drawn from the centre's NEIGHBOURS nearest
NEIGHBOURS = 5
DRAWN = 2
ITERATIONS = 5


def _pair(a: np.ndarray, b: np.ndarray):
    """dtaidistance's module for (T, C) cases and the cases as it takes them: the univariate routine for C = 1
    (its multivariate one takes only C >= 2), the "dependent" multivariate one otherwise."""
    from dtaidistance import dtw, dtw_ndim  # C DTW; imported where used (not by `import lstmkit`)

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[1] == 1:
        return dtw, np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(b[:, 0])
    return dtw_ndim, np.ascontiguousarray(a), np.ascontiguousarray(b)


def _path(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """The DTW warping path between (Ta, C) and (Tb, C): pairs (i, j) from (0, 0) to (Ta - 1, Tb - 1)."""
    module, x, y = _pair(a, b)
    return module.warping_path(x, y, use_c=True, use_pruning=False)


def dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """The DTW cost between (Ta, C) and (Tb, C): the least sum of squared point differences along a path.
    (dtaidistance returns its square root; without pruning, which can return inf at the bound, 2.5.1.)"""
    module, x, y = _pair(a, b)
    return float(module.distance(x, y, use_c=True, use_pruning=False)) ** 2


def dba_step(average: np.ndarray, cases: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """One DBA refinement of ``average`` (T, C): each step becomes the weighted mean of the cases' steps that
    DTW aligns to it (every step of the average has at least one, so no step is left without a value)."""
    total = np.zeros_like(average, dtype=np.float64)  # (T, C)
    mass = np.zeros(len(average), dtype=np.float64)  # (T,)
    for case, w in zip(cases, weights, strict=True):
        if w <= 0:
            continue
        path = np.asarray(_path(average, case))  # (P, 2): average step, case step
        np.add.at(total, path[:, 0], w * case[path[:, 1]])
        np.add.at(mass, path[:, 0], w)
    return total / mass[:, None]


def weighted_average(cases: list[np.ndarray], weights: np.ndarray, start: int, iterations: int = ITERATIONS
                     ) -> np.ndarray:  # fmt: skip
    """The weighted DTW average of ``cases`` (each (T_i, C)), started at ``cases[start]`` and refined
    ``iterations`` times."""
    average = np.asarray(cases[start], dtype=np.float64)
    for _ in range(iterations):
        average = dba_step(average, cases, weights)
    return average


def average_selected_weights(costs: np.ndarray, centre: int, rng: np.random.Generator) -> np.ndarray:
    """Weights over a class's n cases for one synthetic case around ``centre`` ("average selected"):
    ``CENTRE`` on it, ``NEAR`` shared by ``DRAWN`` cases drawn from its ``NEIGHBOURS`` nearest (by ``costs``,
    the class's (n, n) DTW costs), the rest shared by the others; renormalised when the class is too small to
    fill a share (a class of one case gives that case weight 1)."""
    n = len(costs)
    weights = np.zeros(n)
    weights[centre] = CENTRE
    others = np.array([i for i in np.argsort(costs[centre], kind="stable") if i != centre], dtype=int)
    if len(others):
        near = others[:NEIGHBOURS]
        drawn = rng.choice(near, size=min(DRAWN, len(near)), replace=False)
        weights[drawn] = NEAR / len(drawn)
        rest = np.setdiff1d(others, drawn)
        if len(rest):
            weights[rest] = (1.0 - CENTRE - NEAR) / len(rest)
    return weights / weights.sum()


def cells(lengths: list[int], labels: np.ndarray, per_case: int) -> int:
    """The DTW cells ``synthesize`` fills for cases of these ``lengths`` and ``labels``: per class of n cases, the
    n (n - 1) / 2 pairs' costs and, per synthetic case, ``ITERATIONS`` alignments of each of the n cases to it
    (every path about T_i T_j cells; taken at the class's mean T^2)."""
    labels, lengths = np.asarray(labels), np.asarray(lengths, dtype=np.float64)
    total = 0.0
    for label in np.unique(labels):
        sq = float(np.mean(lengths[labels == label] ** 2))
        n = int(np.sum(labels == label))
        total += (n * (n - 1) / 2 + per_case * n * ITERATIONS * n) * sq
    return int(total)


def synthesize(cases: list[np.ndarray], labels: np.ndarray, per_case: int, seed: int
               ) -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """``per_case`` synthetic cases for every real one, class by class, as weighted DTW averages of the
    class's cases (module docstring). ``cases``: each (T_i, C) float; ``labels``: (N,) class indices.
    Returns the synthetic cases (float32, each of its centre's length) and their labels, in class order.
    The same cases, labels, ``per_case`` and ``seed`` give the same result."""
    labels = np.asarray(labels)
    if len(cases) != len(labels):
        raise ValueError(f"cases and labels differ in number: {len(cases)} and {len(labels)}")
    if per_case < 0:
        raise ValueError(f"per_case must be >= 0, got {per_case}")
    if cases and len({np.shape(c)[1] for c in cases}) != 1:
        raise ValueError("every case must have the same number of channels C (each case (T_i, C))")
    rng = np.random.default_rng(seed)
    out, out_labels = [], []
    for label in np.unique(labels):
        members = [np.asarray(cases[i], dtype=np.float64) for i in np.flatnonzero(labels == label)]
        n = len(members)
        costs = np.zeros((n, n))  # (n, n) DTW costs within the class
        for i in range(n):
            for j in range(i + 1, n):
                costs[i, j] = costs[j, i] = dtw_cost(members[i], members[j])
        for centre in np.tile(np.arange(n), per_case):  # every case the centre of per_case synthetic ones
            weights = average_selected_weights(costs, int(centre), rng)
            out.append(weighted_average(members, weights, int(centre)).astype(np.float32))
            out_labels.append(label)
    return out, np.asarray(out_labels, dtype=labels.dtype)

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
import torch

from lstmkit.metrics import ctc_greedy_decode, ctc_prefix_beam_search


def _collapse(path, blank=0):
    out = [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]
    return tuple(out)


def _brute_force(log_probs, blank=0):
    """Total log-probability of every label sequence, summing all C^T alignments."""
    T, C = log_probs.shape
    totals = defaultdict(float)
    for path in itertools.product(range(C), repeat=T):
        totals[_collapse(path, blank)] += math.exp(sum(log_probs[t, c].item() for t, c in enumerate(path)))
    return {labels: math.log(p) for labels, p in totals.items()}


def _ctc_log_prob(log_probs, labels, blank=0):
    """log P(labels) from torch's CTC forward algorithm: an independent reference."""
    if not labels:  # torch needs a non-empty target; the empty sequence is the all-blank path
        return log_probs[:, blank].sum().item()
    loss = torch.nn.functional.ctc_loss(
        log_probs[:, None], torch.tensor([labels]), torch.tensor([log_probs.shape[0]]),
        torch.tensor([len(labels)]), blank=blank, reduction="sum",
    )  # fmt: skip
    return -loss.item()


def _random_log_probs(seed, T, C, peaky=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, C, generator=g, dtype=torch.float64) * peaky).log_softmax(-1)


def test_greedy_hand_computed():
    # argmax path: a a - a b b - -> "a", then "a" again after the blank, then "b"
    path = [1, 1, 0, 1, 2, 2, 0]
    log_probs = torch.nn.functional.one_hot(torch.tensor(path), 3).double().clamp(min=1e-3).log()
    assert ctc_greedy_decode(log_probs) == [1, 1, 2]
    assert ctc_greedy_decode(log_probs, blank=2) == [1, 0, 1, 0]


def test_greedy_batch_with_lengths():
    paths = torch.tensor([[1, 2], [1, 0], [2, 2], [2, 1]])  # (T=4, B=2) argmax ids
    log_probs = torch.nn.functional.one_hot(paths, 3).double()  # (T, B, C)
    assert ctc_greedy_decode(log_probs) == [[1, 2], [2, 2, 1]]  # the blank separates the two 2s
    assert ctc_greedy_decode(log_probs, torch.tensor([2, 1])) == [[1], [2]]


@pytest.mark.parametrize("seed", range(12))
def test_prefix_beam_search_equals_brute_force(seed):
    T, C = 2 + seed % 4, 2 + seed % 3  # up to 5 steps, up to 4 classes (blank included)
    log_probs = _random_log_probs(seed, T, C, peaky=2.0)
    exact = _brute_force(log_probs)
    # A beam wider than the number of label sequences keeps every prefix: the search is exact.
    beams = ctc_prefix_beam_search(log_probs, beam_width=len(exact) + 1)
    assert len(beams) == len(exact)
    for labels, lp in beams:
        assert lp == pytest.approx(exact[labels], abs=1e-9)
        assert lp == pytest.approx(_ctc_log_prob(log_probs, list(labels)), abs=1e-9)
    best = max(exact, key=exact.get)
    assert beams[0][0] == best
    # The best label sequence is at least as likely as greedy's (which may differ from it).
    greedy = tuple(ctc_greedy_decode(log_probs))
    assert beams[0][1] >= exact[greedy] - 1e-12


def test_beam_beats_greedy_where_the_best_path_misleads():
    # Hand-made case: the best single path is all blank (0.6 * 0.6 = 0.36), but the label "a"
    # collects the paths "a a", "a -", "- a": 0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64.
    log_probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert ctc_greedy_decode(log_probs) == []
    (labels, lp), (labels2, lp2) = ctc_prefix_beam_search(log_probs, beam_width=2)
    assert labels == (1,) and lp == pytest.approx(math.log(0.64))
    assert labels2 == () and lp2 == pytest.approx(math.log(0.36))


@pytest.mark.parametrize("seed", range(5))
def test_longer_sequences_beam_scores_bound_and_beat_greedy(seed):
    log_probs = _random_log_probs(100 + seed, T=12, C=5, peaky=1.5)
    greedy = ctc_greedy_decode(log_probs)
    for beam_width in (1, 4, 64):
        labels, lp = ctc_prefix_beam_search(log_probs, beam_width=beam_width)[0]
        # A beam prunes alignments, so its score is a lower bound of the true probability.
        assert lp <= _ctc_log_prob(log_probs, list(labels)) + 1e-9
    # A wide beam finds a sequence at least as probable as greedy's. (A narrow one need not:
    # pruning by prefix probability can drop greedy's prefix, e.g. seed 1 with beam_width=4.)
    assert _ctc_log_prob(log_probs, list(labels)) >= _ctc_log_prob(log_probs, greedy) - 1e-12


def test_errors():
    with pytest.raises(ValueError, match=r"shape \(T, C\); decode a batch one sequence at a time"):
        ctc_prefix_beam_search(torch.zeros(3, 2, 4))
    with pytest.raises(ValueError, match="beam_width must be an int >= 1"):
        ctc_prefix_beam_search(torch.zeros(3, 4), beam_width=0)
    with pytest.raises(ValueError, match=r"blank must be in \[0, 4\)"):
        ctc_greedy_decode(torch.zeros(3, 4), blank=4)
    with pytest.raises(ValueError, match=r"lengths must be shape \(2,\)"):
        ctc_greedy_decode(torch.zeros(3, 2, 4), torch.tensor([4, 1]))

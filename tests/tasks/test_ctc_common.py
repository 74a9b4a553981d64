"""What the CTC tasks share: lengths under CTC, decoding hand-built posteriors, the model and its step, the cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmkit.metrics import ctc_greedy_decode, ctc_prefix_beam_search
from lstmkit.tasks.base import DataUnavailable
from lstmkit.tasks.ctc import (
    CTCModel,
    CTCRecognizer,
    beam_decode,
    cached_arrays,
    check_lengths,
    ctc_step,
    decode,
    loader,
    min_input_length,
)


def _posteriors(path: list[int], classes: int, p: float = 0.9) -> torch.Tensor:
    """(T, C) log-probabilities whose likeliest class at step t is path[t] (probability p)."""
    probs = torch.full((len(path), classes), (1 - p) / (classes - 1), dtype=torch.float64)
    probs[torch.arange(len(path)), torch.tensor(path)] = p
    return probs.log()


def test_min_input_length_counts_blanks_between_repeats():
    assert min_input_length([]) == 0
    assert min_input_length([1, 2, 3]) == 3
    assert min_input_length([1, 1]) == 3  # a, blank, a
    assert min_input_length([1, 1, 1, 2, 2]) == 5 + 3


def test_check_lengths_names_the_sample_too_short_for_its_label():
    inputs = [np.zeros((3, 2)), np.zeros((2, 2))]
    check_lengths(inputs, [[1, 2, 3], [1, 2]], ["a", "b"])  # exactly long enough
    with pytest.raises(DataUnavailable, match=r"b: its input has 2 steps but its label of 2 symbols needs at least 3"):
        check_lengths(inputs, [[1, 2, 3], [4, 4]], ["a", "b"])


def test_ctc_step_refuses_an_input_shorter_than_its_label():
    torch.manual_seed(0)
    model = CTCRecognizer(CTCModel(input_size=4, output_size=5, hidden_size=8, num_layers=1, dropout=0.0))
    x = torch.randn(3, 2, 4)
    batch = ((x, torch.tensor([3, 2]), None), torch.tensor([1, 2, 3, 3]), torch.tensor([2, 2]))
    with pytest.raises(ValueError, match=r"sample 1: input length 2 is too short for its target of 2 labels, which "
                                         r"needs 3 steps"):  # fmt: skip
        ctc_step(model, batch, None)
    loss, state, items = ctc_step(model, ((x, torch.tensor([3, 3]), None), batch[1], batch[2]), None)
    assert state is None and items == 4 and torch.isfinite(loss) and loss > 0


def test_greedy_and_beam_on_hand_built_posteriors():
    # Path a a - a b b - : repeats merge, a blank separates two a's.
    lp = _posteriors([1, 1, 0, 1, 2, 2, 0], 3)
    assert ctc_greedy_decode(lp) == [1, 1, 2]
    assert beam_decode(lp, 4) == [1, 1, 2]
    # Without the blank the two a's are one.
    assert beam_decode(_posteriors([1, 1, 1, 2], 3), 4) == [1, 2]
    # All blank: nothing.
    assert beam_decode(_posteriors([0, 0, 0], 3), 4) == []


def test_beam_finds_the_label_the_best_path_misses():
    # Step probabilities (blank, a): the likeliest path is all blank (0.36), but "a" collects
    # a-a, a-blank and blank-a: 0.16 + 0.24 + 0.24 = 0.64.
    lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64).log()
    assert ctc_greedy_decode(lp) == []
    assert beam_decode(lp, 4) == [1]
    assert beam_decode(lp, 1) == []  # a beam of one keeps only the empty prefix after step 1, and misses it


@pytest.mark.parametrize("seed", range(6))
def test_beam_decode_equals_the_reference_prefix_search(seed):
    g = torch.Generator().manual_seed(seed)
    # Flat posteriors: without pruning the search is the reference one, prefix for prefix.
    flat = torch.randn(8, 5, generator=g, dtype=torch.float64).log_softmax(-1)
    for width in (1, 3, 16):
        assert beam_decode(flat, width, prune=0.0) == list(ctc_prefix_beam_search(flat, beam_width=width)[0][0])
    # Peaky posteriors over 12 classes, as a trained model gives: pruning the unlikely symbols changes nothing.
    peaky = (torch.randn(20, 12, generator=g, dtype=torch.float64) * 6).log_softmax(-1)
    assert beam_decode(peaky, 8) == list(ctc_prefix_beam_search(peaky, beam_width=8)[0][0])


def test_decode_a_batch_matches_one_by_one():
    torch.manual_seed(0)
    model = CTCRecognizer(CTCModel(input_size=3, output_size=4, hidden_size=6, num_layers=2, dropout=0.0)).eval()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 9, 2)]
    greedy, beam = decode(model, inputs, beam_width=4)
    for x, g, b in zip(inputs, greedy, beam, strict=True):
        with torch.no_grad():
            lp = model(torch.from_numpy(x)[:, None], torch.tensor([len(x)]))[:, 0]  # (T, C)
        assert g == ctc_greedy_decode(lp) and b == beam_decode(lp, 4)
        assert math.isclose(lp.exp().sum(-1).mean().item(), 1.0, rel_tol=1e-5)


def test_loader_batches_concatenated_targets():
    inputs = [np.zeros((n, 2), dtype=np.float32) for n in (4, 6, 5)]
    labels = [[1], [2, 3], [4, 4]]
    batches = list(loader(inputs, labels, 3, shuffle=False))
    assert len(batches) == 1
    (x, lengths, mask), targets, target_lengths = batches[0]
    assert sorted(lengths.tolist()) == [4, 5, 6] and x.shape[1:] == (3, 2) and mask.shape == x.shape[:2]
    assert sorted(target_lengths.tolist()) == [1, 2, 2] and targets.numel() == 5


def test_cache_generates_once_and_reuses(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5), "text": np.array(["x", "yz"])}

    first = cached_arrays(tmp_path, "toy", {"n": 5}, build)
    second = cached_arrays(tmp_path, "toy", {"n": 5}, build)
    assert len(calls) == 1 and first.generated_seconds is not None and second.generated_seconds is None
    assert first.path == second.path and first.sha256 == second.sha256
    assert np.array_equal(second.arrays["a"], np.arange(5))
    assert (first.path.parent / "params.json").is_file()
    elsewhere = cached_arrays(tmp_path / "elsewhere", "toy", {"n": 5}, build)
    assert elsewhere.sha256 == first.sha256  # generated again: the same bytes, so runs can check their data
    other = cached_arrays(tmp_path, "toy", {"n": 6}, build)  # other parameters, another folder
    assert len(calls) == 3 and other.path != first.path
    first.path.write_bytes(b"damaged")  # a damaged file is generated again
    again = cached_arrays(tmp_path, "toy", {"n": 5}, build)
    assert len(calls) == 4 and np.array_equal(again.arrays["a"], np.arange(5))


def test_input_scale_standardises_with_one_deviation():
    from lstmkit.tasks.ctc import input_scale, scale

    rng = np.random.default_rng(0)
    inputs = [rng.normal([1.0, -2.0, 0.0], [2.0, 2.0, 0.0], size=(n, 3)).astype(np.float32) for n in (50, 80, 70)]
    mean, std = input_scale(inputs)
    flat = np.concatenate(inputs)
    assert np.allclose(mean, flat.mean(axis=0), atol=1e-5)
    assert std == pytest.approx(np.sqrt(((flat - flat.mean(axis=0)) ** 2).mean()), rel=1e-5)
    scaled = np.concatenate([scale(x, mean, std) for x in inputs])
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-5) and np.isfinite(scaled).all()
    assert scaled[:, 2].std() == 0  # a constant feature stays constant, not blown up

"""The long-range tasks' generators: markers, symbols, grammar and labels right by construction."""

from __future__ import annotations

import collections
import math
import random
import re

import pytest
import torch

from lstmkit.tasks import get_task
from lstmkit.tasks.longrange.adding import adding_batch
from lstmkit.tasks.longrange.common import generator_for
from lstmkit.tasks.longrange.copy_memory import BLANK, copy_batch
from lstmkit.tasks.longrange.reber import SYMBOLS, embedded_reber_string, reber_batch, steps_right
from lstmkit.tasks.longrange.temporal_order import DISTRACTORS, B, E, X, Y, temporal_order_batch


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- adding --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [2, 11, 100])
def test_adding_marks_one_value_in_each_half_and_targets_their_sum(T):
    batch = adding_batch(T, 400, g())
    values, markers = batch.x[..., 0], batch.x[..., 1]  # (T, B)
    assert batch.x.shape == (T, 400, 2) and batch.lengths is None
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) <= {0.0, 1.0} and (markers.sum(0) == 2).all()
    assert (markers[: T // 2].sum(0) == 1).all() and (markers[T // 2 :].sum(0) == 1).all()
    torch.testing.assert_close(batch.y, (values * markers).sum(0), rtol=0, atol=1e-6)


def test_adding_is_reproducible_and_its_baseline_is_the_variance_of_the_sum():
    assert torch.equal(adding_batch(20, 5, g(3)).x, adding_batch(20, 5, g(3)).x)
    assert not torch.equal(adding_batch(20, 5, g(3)).x, adding_batch(20, 5, g(4)).x)
    y = adding_batch(10, 50_000, g()).y
    assert ((y - 1) ** 2).mean().item() == pytest.approx(1 / 6, abs=0.005)  # Var(U + U') = 2/12
    with pytest.raises(ValueError, match="length must be >= 2"):
        adding_batch(1, 3, g())


# -- temporal order ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("T", "first", "second"), [(10, (1, 2), (5, 6)), (20, (2, 4), (10, 12)), (100, (10, 20), (50, 60))]
)
def test_temporal_order_places_two_relevant_symbols_among_distractors(T, first, second):
    batch = temporal_order_batch(T, T + T // 10, 600, g())
    s, lengths = batch.symbols, batch.lengths
    assert lengths.min() >= T and lengths.max() <= T + T // 10
    assert batch.x.shape == (T + T // 10, 600, 8)
    seen_positions = set()
    for b in range(600):
        n = int(lengths[b])
        seq = s[:n, b].tolist()
        assert seq[0] == E and seq[-1] == B and (s[n:, b] == -1).all()
        relevant = [t for t, v in enumerate(seq) if v in (X, Y)]
        assert len(relevant) == 2
        t1, t2 = relevant
        assert first[0] <= t1 <= first[1] and second[0] <= t2 <= second[1]
        assert all(v in DISTRACTORS for t, v in enumerate(seq[1:-1], 1) if t not in relevant)
        assert int(batch.y[b]) == 2 * (seq[t1] == Y) + (seq[t2] == Y)  # XX, XY, YX, YY
        assert torch.equal(batch.x[:n, b].argmax(-1), s[:n, b]) and (batch.x[n:, b] == 0).all()
        seen_positions |= {("first", t1), ("second", t2)}
    assert {t for k, t in seen_positions if k == "first"} == set(range(first[0], first[1] + 1))
    assert sorted(batch.y.bincount().tolist())[0] > 100  # the four classes are about equally frequent


def test_temporal_order_rejects_short_sequences():
    with pytest.raises(ValueError, match="10 <= min_length"):
        temporal_order_batch(9, 9, 2, g())


# -- Reber ---------------------------------------------------------------------------------------------
# An independent description of the grammar: the regular expression of the Reber graph's paths.
_LOOP = "(?:XT*VP)*"  # from node 3 back to node 3
_FROM3 = f"{_LOOP}(?:S|XT*VV)"
_REBER = f"B(?:TS*X{_FROM3}|PT*V(?:V|P{_FROM3}))E"
EMBEDDED = re.compile(f"B(?:T{_REBER}T|P{_REBER}P)E")


def test_reber_strings_are_in_the_grammar():
    rng = random.Random(1)
    strings = [embedded_reber_string(rng)[0] for _ in range(3000)]
    assert all(EMBEDDED.fullmatch(s) for s in strings)
    for known in ("BTBTXSETE", "BPBPVVEPE", "BTBTSSXXTVVETE", "BPBPVPXVPXVPXVVEPE", "BTBPTVPXTTVVETE"):
        assert EMBEDDED.fullmatch(known)
    assert {"BTBTXSETE", "BPBPVVEPE", "BTBPVVETE"} <= set(strings)  # the shortest, each 1/32 likely
    for bad in ("BTBTXSEPE", "BTBPVVEPE", "BTBTXSE", "BTBTXETE", "BTBTSXXSETE"):  # outer pair, end, inner path
        assert not EMBEDDED.fullmatch(bad)
    assert len(set(strings)) > 100 and max(map(len, strings)) > 20


def test_reber_possible_next_symbols_by_hand():
    s, legal = embedded_reber_string(random.Random(0))
    assert s == "BPBPTVVEPE"
    #          B     P    B     P     T     V     V    E    P    E
    assert legal == ["TP", "B", "TP", "TV", "TV", "PV", "E", "P", "E", ""]


def test_reber_possible_next_symbols_are_those_that_occur():
    # Sound: every symbol that follows a prefix is in its set. Complete: a prefix seen 40+ times has
    # been followed by every symbol of its set (each has probability 1/2 or 1: a miss is a 2^-40 event).
    rng = random.Random(2)
    declared, observed, count = {}, collections.defaultdict(set), collections.Counter()
    for _ in range(5000):
        s, legal = embedded_reber_string(rng)
        assert len(legal) == len(s)
        for t in range(len(s) - 1):
            prefix = s[: t + 1]
            assert declared.setdefault(prefix, legal[t]) == legal[t]
            observed[prefix].add(s[t + 1])
            count[prefix] += 1
        assert legal[-1] == ""
    assert all(observed[p] <= set(declared[p]) for p in declared)
    frequent = [p for p in declared if count[p] >= 40]
    assert len(frequent) > 30 and all(observed[p] == set(declared[p]) for p in frequent)


def test_reber_batch_holds_inputs_targets_and_possible_symbols():
    batch = reber_batch(50, g(5))
    rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=g(5))))
    strings = [embedded_reber_string(rng) for _ in range(50)]
    for b, (s, legal) in enumerate(strings):
        n = len(s) - 1
        assert int(batch.lengths[b]) == n
        ids = [SYMBOLS.index(c) for c in s]
        assert batch.x[:n, b].argmax(-1).tolist() == ids[:-1] and (batch.x[n:, b] == 0).all()
        assert batch.y[:n, b].tolist() == ids[1:] and (batch.y[n:, b] == -1).all()
        for t in range(n):
            assert {SYMBOLS[i] for i in batch.legal[t, b].nonzero().flatten().tolist()} == set(legal[t])


def test_steps_right_needs_the_possible_symbols_on_top():
    legal = torch.tensor([[[False, True, True, False, False, False, False]]]).expand(3, 1, 7)  # T or P
    logits = torch.tensor([[0.0, 2.0, 1.0, 0.5, 0.0, 0.0, 0.0],  # both on top: right
                           [0.0, 2.0, 0.5, 1.0, 0.0, 0.0, 0.0],  # S above P: wrong
                           [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]).unsqueeze(1)  # a tie with S: wrong  # fmt: skip
    assert steps_right(logits, legal).flatten().tolist() == [True, False, False]


# -- copy ------------------------------------------------------------------------------------------------
def test_copy_layout_symbols_delay_delimiter_and_targets():
    T, K, n = 5, 3, 4
    batch = copy_batch(T, K, n, 200, g())
    ids = batch.x.argmax(-1)  # (T + 2K, B)
    assert batch.x.shape == (T + 2 * K, 200, n + 2) and (batch.x.sum(-1) == 1).all()
    data = ids[:K]
    assert ((data >= 1) & (data <= n)).all() and set(data.unique().tolist()) == {1, 2, 3, 4}
    assert (ids[K : K + T - 1] == BLANK).all() and (ids[K + T - 1] == n + 1).all() and (ids[K + T :] == BLANK).all()
    assert (batch.y[: T + K] == BLANK).all() and torch.equal(batch.y[T + K :], data)
    with pytest.raises(ValueError, match="delay >= 1"):
        copy_batch(0, K, n, 2, g())


def test_copy_baseline_is_what_a_memoryless_predictor_scores():
    task = get_task("copy")
    data = task.smoke_config(None).data  # T = 5, K = 3, 4 symbols
    T, K, n = data.length, data.copy_length, data.n_symbols
    batch = task.generate(data, 64, generator_for(0))
    # Blank, surely, until the delimiter; then every data symbol equally likely.
    output = torch.full((T + 2 * K, 64, n + 1), -1e9)
    output[: T + K, :, BLANK] = 0.0
    output[T + K :, :, 1:] = 0.0
    loss, items = task.loss(output, batch)
    assert items == (T + 2 * K) * 64
    assert loss.item() == pytest.approx(task.baselines(data)["baseline_nats_per_symbol"], rel=1e-6)
    assert loss.item() == pytest.approx(K * math.log(n) / (T + 2 * K), rel=1e-6)
    perfect = torch.nn.functional.one_hot(batch.y, n + 1).float() * 10
    scores = task.per_sequence(perfect, batch)
    assert scores["success"].all() and (scores["symbols_recalled"] == 1).all()

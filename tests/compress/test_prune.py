"""Pruning: exact masks and sparsity, the iterative schedule, structured pruning that shrinks H."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.compress.prune import (
    apply_masks,
    iterative_prune,
    keep_units,
    magnitude_masks,
    output_columns,
    prunable,
    prune_schedule,
    shrink_rnn,
    silence_units,
    sparsity_of,
    unit_importance,
)
from lstmkit.compress.rundir import shrink_model
from lstmkit.models import SequenceModel
from lstmkit.tasks.registry import get_task
from lstmkit.train import Config, ModelConfig


def model():
    return torch.nn.Sequential(lstmkit.LSTM(6, 10, 2), torch.nn.Linear(10, 4))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_layer_masks_prune_exactly_the_smallest_of_each_tensor(sparsity):
    m = model()
    params = dict(m.named_parameters())
    masks = magnitude_masks(m, sparsity, scope="layer")
    assert sorted(masks) == sorted(prunable(m))
    for name, mask in masks.items():
        w = params[name].detach().abs()
        assert int((~mask).sum()) == round(sparsity * w.numel())
        if sparsity > 0:
            assert w[mask].min() >= w[~mask].max()  # M = 1(|w| > tau)
    apply_masks(m, masks)
    total = sum(params[n].numel() for n in masks)
    assert sparsity_of(m) == pytest.approx(sum(round(sparsity * params[n].numel()) for n in masks) / total)


def test_global_masks_share_one_threshold():
    m = model()
    with torch.no_grad():
        m[1].weight.mul_(0.01)  # the head's weights are all small: a global threshold takes most of them
    params = dict(m.named_parameters())
    masks = magnitude_masks(m, 0.5, scope="global")
    n = sum(mask.numel() for mask in masks.values())
    assert sum(int((~mask).sum()) for mask in masks.values()) == round(0.5 * n)
    kept = torch.cat([params[k].detach().abs()[v] for k, v in masks.items()])
    pruned = torch.cat([params[k].detach().abs()[~v] for k, v in masks.items()])
    assert kept.min() >= pruned.max()
    assert (~masks["1.weight"]).float().mean() > 0.9


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.5"])
def test_sparsity_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
        magnitude_masks(model(), bad)


def test_iterative_schedule_keeps_pruned_weights_at_zero_through_fine_tuning():
    assert prune_schedule(0.8, 3)[-1] == pytest.approx(0.8)
    assert prune_schedule(0.8, 3) == sorted(prune_schedule(0.8, 3))
    m = model()
    rounds = []

    def finetune(mod, reapply):
        for _ in range(3):  # a stand-in for optimiser steps that would move every weight
            with torch.no_grad():
                for p in mod.parameters():
                    p.add_(0.01 * torch.randn_like(p))
            reapply()
        rounds.append(sparsity_of(mod))

    masks = iterative_prune(m, 0.8, steps=3, finetune=finetune)
    assert len(rounds) == 3 and rounds == sorted(rounds)
    params = dict(m.named_parameters())
    for name, mask in masks.items():
        assert (params[name][~mask] == 0).all()
        assert int((~mask).sum()) >= round(0.8 * mask.numel())


CORES = {
    "lstm": lambda: lstmkit.LSTM(5, 8, 2, bidirectional=True, dtype=torch.float64),
    "peephole_coupled": lambda: lstmkit.LSTM(5, 8, 2, peephole=True, coupled=True, dtype=torch.float64),
    "projection": lambda: lstmkit.LSTM(5, 8, 2, proj_size=3, bidirectional=True, dtype=torch.float64),
    "gru": lambda: lstmkit.GRU(5, 8, 2, bidirectional=True, dtype=torch.float64),
    "rnn": lambda: lstmkit.RNN(5, 8, 2, dtype=torch.float64),
}


@pytest.mark.parametrize("name", sorted(CORES))
def test_structured_pruning_keeps_the_kept_units_outputs(name):
    rnn = CORES[name]().eval()
    head = torch.nn.Linear(rnn.output_size * rnn.num_directions, 3, dtype=torch.float64)
    keep = keep_units(unit_importance(rnn, head.weight), 5)
    small = shrink_rnn(rnn, keep)
    assert small.hidden_size == 5 and small.weight_hh_l1.shape[0] == rnn._gates_per_unit * 5
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in rnn.parameters())
    silence_units(rnn, keep, head)  # the full model with the removed units' outgoing weights at zero
    x = torch.randn(7, 2, 5, dtype=torch.float64)
    (y, state), (y_small, state_small) = rnn(x), small(x)
    cols = output_columns(rnn, keep)
    torch.testing.assert_close(y_small, y if cols is None else y[..., cols], rtol=0, atol=1e-12)
    if isinstance(rnn, lstmkit.LSTM):  # the kept cells too
        for k, idx in enumerate(keep):
            torch.testing.assert_close(state_small[1][k], state[1][k][:, idx], rtol=0, atol=1e-12)


def test_structured_pruning_with_layer_norm_only_approximates():
    rnn = lstmkit.LSTM(5, 8, 1, layer_norm=True).eval()
    small = shrink_rnn(rnn, keep_units(unit_importance(rnn), 6))
    assert small.weight_ln_ih_l0.shape == (24,) and small.weight_ln_c_l0.shape == (6,)
    small(torch.randn(3, 2, 5))


def test_keep_must_be_consistent():
    rnn = lstmkit.LSTM(5, 8, 2)
    with pytest.raises(ValueError, match="index sets of one size"):
        shrink_rnn(rnn, [torch.arange(4), torch.arange(3)])


@pytest.mark.parametrize("tie", [False, True])
def test_shrinking_a_language_model_keeps_its_logits(tie):
    task = get_task("charlm")
    cfg = ModelConfig(vocab_size=20, hidden_size=12, num_layers=2, dropout=0.0, tie_weights=tie)
    config = Config(model=cfg)
    big = task.build_model(config).double().eval()
    small, new_config = shrink_model(task, config, big, 7)
    assert new_config.model.hidden_size == 7 and new_config.model.embedding_dim == 12
    assert isinstance(small, SequenceModel) and (small.proj is not None) == tie
    rnn = big.rnn
    keep = keep_units(unit_importance(rnn, None if tie else big.head.weight), 7)
    if tie:  # the head reads h through the tied matrix: silence by zeroing the removed units' outputs
        drop = torch.ones(12, dtype=torch.bool)
        drop[keep[-1]] = False
        silence_units(rnn, keep)
        with torch.no_grad():
            rnn.weight_hh_l1[:, drop] = 0
        hook = rnn.register_forward_hook(lambda m, i, o: (o[0].masked_fill(drop, 0), o[1]))
    else:
        silence_units(rnn, keep, big.head)
    x = torch.randint(0, 20, (6, 2))
    torch.testing.assert_close(small.double()(x)[0], big(x)[0], rtol=0, atol=1e-10)
    if tie:
        hook.remove()

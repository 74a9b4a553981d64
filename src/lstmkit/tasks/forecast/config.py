"""``forecast``'s ``[data]`` section and the bundled series it can name (``data.dataset``)."""

from __future__ import annotations

from dataclasses import dataclass

from lstmkit.data.series import GAPS
from lstmkit.train import DataConfig, require_at_least


@dataclass(frozen=True)
class Preset:
    """What a bundled series needs; a CSV takes the generic values."""

    window: int
    ar_order: int
    log: bool
    season: int
    test_start: str
    test_size: int
    val_size: int


PRESETS = {
    # Train 1700-1920, one-step forecasts of 1921-1987 (Zhang 2003, and many papers since). AR(9) is the
    # order of the literature's ARIMA on this split; 35 validation years hold three solar cycles.
    "sunspots": Preset(window=9, ar_order=9, log=False, season=0, test_start="1921", test_size=67, val_size=35),
    # The last 24 months held out. Log: the seasonal swing grows with the level. Two years of input,
    # and the last two years of the training part for early stopping.
    "airline": Preset(window=24, ar_order=24, log=True, season=12, test_start="", test_size=24, val_size=24),
}


DATASETS = (*PRESETS, "")
DESEASON = ("off", "stl", "auto")  # data.deseason


@dataclass(frozen=True)
class ForecastData(DataConfig):
    """The series, the split and the windows (``forecast``'s ``[data]``); None takes the dataset's preset."""

    dataset: str = "sunspots"  # "sunspots" or "airline"; ignored (set to "") when data.csv is given
    csv: str = ""  # a CSV file with a header row, read instead of the dataset
    column: str = ""  # the target column of data.csv
    date_column: str = ""  # optional: its dates must be evenly spaced (a missing step is an error)
    covariates: str = ""  # optional extra input columns of data.csv, comma-separated
    window: int | None = None  # input steps per forecast; sunspots 9, airline 24, CSV 12
    horizon: int = 1  # steps predicted at once from each origin (direct strategy)
    ar_order: int | None = None  # p of the AR baseline and of the skip; sunspots 9, airline 24, CSV: the window
    log: bool | None = None  # model log(target); airline yes (its seasonal swing grows with the level)
    season: int | None = None  # steps per season for the seasonal baselines and MASE; 0: none; airline 12
    test_start: str = ""  # the label (date) of the first test step; "" = the last data.test_size steps
    test_size: int | None = None  # test steps; sunspots 67 (1921-1987), airline 24, CSV 20% of the rows
    val_size: int | None = None  # validation steps before the test; sunspots 35, airline 24, CSV 20% of the rest
    # Also score ETS and ARIMA with automatic form/order selection (statsmodels; lstmkit.tasks.baselines): the
    # classical benchmarks a forecaster must beat. Fitting takes seconds (up to a minute on a long seasonal series).
    auto_baselines: bool = True
    # A gap in data.csv (an empty cell, or a date missing from an evenly spaced date column): "refuse" stops with
    # the line and date named, because filling silently shifts what the model learns; "linear" fills it by
    # linear interpolation in time (a missing date becomes a step); "previous" repeats the last value.
    gaps: str = "refuse"
    # Seasonal adjustment of the LSTM's series: "off"; "stl": the (log) target minus an STL seasonal component
    # (robust, period data.season) fitted on the steps the model trains on, its last cycle repeated after them,
    # added back to the forecasts; "auto": "stl" only where the training part's STL seasonal strength exceeds 0.64
    # (the ARIMA baseline's rule for a seasonal difference). The baselines always read the series as it is.
    deseason: str = "off"
    # Train on every window before the test (training and validation parts) for train.epochs, with no early
    # stopping: the final fit once the validation window has chosen the setting and the epoch count (the panel's
    # refit). The AR skip is then fitted on those windows too; `evaluate --split val` becomes in-sample.
    full_train: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.test_start, int) and not isinstance(self.test_start, bool):
            object.__setattr__(self, "test_start", str(self.test_start))  # `--set data.test_start=1921` is a year
        super().__post_init__()

    def _validate(self) -> None:
        super()._validate()
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        require_at_least(self, "data", 1, "window", "horizon", "test_size", "val_size")
        require_at_least(self, "data", 0, "ar_order", "season")
        if self.gaps not in GAPS:
            raise ValueError(f"data.gaps must be one of {GAPS}, got {self.gaps!r}")
        if self.deseason not in DESEASON:
            raise ValueError(f"data.deseason must be one of {DESEASON}, got {self.deseason!r}")
        if self.season == 1:
            raise ValueError("data.season must be 0 (none) or >= 2, got 1")

    def covariate_list(self) -> list[str]:
        return [c.strip() for c in self.covariates.split(",") if c.strip()]

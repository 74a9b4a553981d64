"""``ForecastNet``: a ``SequenceModel`` over a window, read at its last step, plus a fixed linear AR skip or a
statistical model's forecast as its base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from lstmkit.models.sequence import SequenceModel
from lstmkit.train.config import ModelConfig


@dataclass(frozen=True)
class ForecastModel(ModelConfig):
    """``ModelConfig`` plus the linear autoregressive skip."""

    ar_skip: bool = True  # add a fixed least-squares AR(data.ar_order) to the output; the LSTM learns the residual
    # The LSTM reads the target channel minus the window's last target value (covariates as they are), so what
    # it sees is level-free: shifting a window's target by c shifts the LSTM's forecast by exactly c. On trending
    # series the test windows lie above every training level; a level-free reader extrapolates the trend as a
    # change. Off by default; the forecasting panel offers it as a candidate chosen on validation (docs/results.md).
    relative: bool = False
    # A statistical forecast as the base the LSTM corrects, instead of the AR skip: "ets" or "arima" (the task's
    # automatic ETS / ARIMA, fitted on the training part and kept fixed), "" for none. The task appends to each
    # step of the window that model's one-step residual and its forecast of the next `horizon` values as changes
    # from the step's value; the head starts at zero, so training starts from the statistical forecast and the
    # LSTM learns what it misses (Zhang 2003's ARIMA + network hybrid). Needs model.ar_skip=false.
    base: str = ""
    # Members of a seed ensemble: this many networks, trained one after another with seeds train.seed + i on the
    # same windows, their forecasts averaged (the forecasting panel's 3-seed mean, docs/results.md); 1: one network.
    ensemble: int = 1

    def _validate(self) -> None:
        super()._validate()
        if self.ensemble < 1:  # its type is checked by ModelConfig
            raise ValueError(f"model.ensemble must be >= 1 (members; 1: one network), got {self.ensemble}")
        if self.base not in BASES:
            raise ValueError(f"model.base must be one of {list(BASES)}, got {self.base!r}")
        # model.base with model.ar_skip is refused by the forecast task when it prepares the data: overrides are
        # applied one key at a time, so a check here would depend on their order.


BASES = ("", "ets", "arima")


def least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``y ≈ x @ w + b`` by least squares: x (N, P), y (N, H) -> w (P, H), b (H,)."""
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be (N, P) and y (N, H), got {x.shape} and {y.shape}")
    if len(x) <= x.shape[1]:
        raise ValueError(f"{len(x)} examples cannot fit {x.shape[1]} coefficients and an intercept")
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (N, P + 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)  # (P + 1, H)
    return coef[:-1], coef[-1]


class ForecastNet(nn.Module):
    """``SequenceModel`` over a window, read at its last step, plus an optional fixed linear AR skip.

    ``forward(x)``: x (T, B, F) scaled features, the target in column 0 -> (B, H) scaled forecasts of
    the next H target values: the last value, plus the LSTM's change, plus the AR skip's change. With
    ``model.relative`` the LSTM reads the target column minus its value at the last step. With
    ``model.base`` the last H columns are the base model's forecast of the next H values as changes from
    each step's value; the last step's are added to the output in place of the AR skip's.
    """

    export_kind: ClassVar[str] = "forecaster"  # lstmkit.export: a window of features -> forecast

    def __init__(self, model: ForecastModel, ar_order: int) -> None:
        super().__init__()
        self.core = SequenceModel(model)
        self.ar_order = ar_order if model.ar_skip else 0
        self.ar: nn.Linear | None = None
        if model.base and model.ar_skip:
            raise ValueError(f"model.base={model.base} replaces the AR skip: set model.ar_skip=false as well")
        self.base_columns = model.output_size if model.base else 0  # the last H input columns
        if self.ar_order or self.base_columns:
            # The head starts at zero, so the untrained model is exactly the AR (or the base) forecast.
            nn.init.zeros_(self.core.head.weight)
            nn.init.zeros_(self.core.head.bias)
        if self.ar_order:
            self.ar = nn.Linear(self.ar_order, model.output_size)
            self.ar.requires_grad_(False)  # fitted by least squares, then fixed

    @property
    def rnn(self) -> nn.Module:
        """The recurrent core (an ``lstmkit`` LSTM, GRU or RNN), as on the other task models."""
        return self.core.rnn

    def fit_ar(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Least squares of the targets' change on the last ``ar_order`` values: x (B, W, F), y (B, H)."""
        lags = x[:, -self.ar_order :, 0].double().numpy()  # (B, p)
        change = (y - x[:, -1:, 0]).double().numpy()  # (B, H)
        weight, bias = least_squares(lags, change)
        with torch.no_grad():
            self.ar.weight.copy_(torch.from_numpy(weight.T))  # (H, p)
            self.ar.bias.copy_(torch.from_numpy(bias))

    def lstm_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the LSTM reads from x (T, B, F): x itself, or with ``relative`` the target minus its last value."""
        if not self.core.config.relative:
            return x
        return torch.cat([x[..., :1] - x[-1:, :, :1], x[..., 1:]], dim=-1)  # (T, B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.core(self.lstm_input(x))  # (T, B, H)
        y = x[-1, :, :1] + out[-1]  # (B, H): a change from the last value
        if self.ar is not None:
            y = y + self.ar(x[-self.ar_order :, :, 0].T)  # (p, B) -> (B, p) -> (B, H)
        if self.base_columns:
            y = y + x[-1, :, -self.base_columns :]  # (B, H): the base's change from the last value
        return y


class EnsembleForecaster(nn.Module):
    """``model.ensemble`` forecasters of one config whose forecasts are averaged.

    ``forward(x)``: x (T, B, F) -> (B, H), the mean of the members' forecasts (each a ``ForecastNet``).
    """

    export_kind: ClassVar[str] = "forecaster-ensemble"  # lstmkit.export: the members' graphs, then their mean

    def __init__(self, members: list[ForecastNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)  # (N, B, H) -> (B, H)

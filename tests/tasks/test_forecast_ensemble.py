"""``forecast``'s seed ensemble (``model.ensemble``): member i trained with seed train.seed + i, the forecasts
averaged; the ensemble's validation loss is its averaged forecasts'; refusals by exact message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.export.rundir import export_run
from lstmkit.models import EnsembleForecaster, ForecastModel
from lstmkit.tasks import ConfigError, get_task, runner
from lstmkit.tasks.forecast.scoring import model_forecasts
from lstmkit.tasks.rundir import open_run
from lstmkit.train import set_values


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast-ensemble")
    base = get_task("forecast").smoke_config(root)
    single = runner.train("forecast", base, root / "single")
    ensemble = runner.train("forecast", set_values(base, {"model.ensemble": 3}), root / "ensemble")
    return single, ensemble


def test_members_are_seeds_and_the_forecasts_their_mean(runs):
    single, ensemble = runs
    model, prepared = get_task("forecast").load(open_run(ensemble.run_dir))
    assert isinstance(model, EnsembleForecaster) and len(model.members) == 3
    assert [m["seed"] for m in ensemble.metrics["members"]] == [0, 1, 2]
    assert all((ensemble.run_dir / "members" / str(i) / "model.safetensors").is_file() for i in range(3))
    one, _ = get_task("forecast").load(open_run(single.run_dir))  # member 0 is the single run of the same seed
    for a, b in zip(model.members[0].state_dict().values(), one.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    members = [model_forecasts(m, prepared, "test") for m in model.members]
    np.testing.assert_allclose(model_forecasts(model, prepared, "test"), np.mean(members, axis=0), rtol=1e-6)
    # The validation loss is the averaged forecasts' MSE on the z-scored validation targets, not the members' mean.
    data = get_task("forecast").training_data(prepared)
    x, y = next(iter(data.val))  # one batch: every validation window
    with torch.no_grad():
        want = float(((model(x.transpose(0, 1)) - y[..., 0]) ** 2).mean())  # x (B, W, F), y (B, H, 1)
    assert ensemble.metrics["mse"] == pytest.approx(want, rel=1e-5)
    assert ensemble.lines[1].startswith(f"val loss: {want:.4f} (MSE of the z-scored series) of the 3 members' "
                                        "averaged forecasts (members' best epochs ")  # fmt: skip
    assert ensemble.metrics["test"]["model"].endswith(", 3-seed mean")


def test_export_and_refusals(runs, tmp_path):
    """lstmkit export writes the ensemble as one verified graph (its forecast the members' mean); --int8 and a bad
    ensemble size are refused by name."""
    _, ensemble = runs
    result = export_run(ensemble.run_dir, out=tmp_path / "m.onnx")
    assert result.outputs == ("forecast",) and len(result.layers) == 3 and result.max_abs_error is not None
    with pytest.raises(ValueError, match=r"^--int8 does not cover this model \(EnsembleForecaster\): the int8 check "
                                         r"does not bound a forecaster's graph yet; export it in float$"):  # fmt: skip
        export_run(ensemble.run_dir, out=tmp_path / "q.onnx", int8=True)
    with pytest.raises(ValueError, match=r"^model\.ensemble must be >= 1 \(members; 1: one network\), got 0$"):
        ForecastModel(ensemble=0)
    many = set_values(get_task("forecast-many").smoke_config(tmp_path), {"model.ensemble": 2})
    with pytest.raises(ConfigError, match=r"^forecast-many trains one network: model\.ensemble must be 1, got 2$"):
        get_task("forecast-many").prepare(many)

"""The training-curve PNG (``lstmkit.tasks.plots.plot_curves``)."""

from __future__ import annotations

import warnings

from lstmkit.tasks.plots import plot_curves, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def test_curves_of_a_run_that_logged_nothing_are_drawn_without_a_warning(tmp_path):
    """A short refit (fewer steps than train.log_every, no validation) leaves a header-only metrics.csv: the plot
    says so instead of matplotlib's "No artists with labels" warning (an error under the test settings)."""
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,epoch,split,loss,lr,grad_norm,items_per_s\n")  # the header alone
    assert read_metrics(metrics) == {"train": [], "val": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_curves(metrics, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG


def test_curves_of_a_logged_run(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,epoch,split,loss,lr,grad_norm,items_per_s\n1,0,train,2.0,0.1,1.0,9.0\n"
                       "2,0,train,1.5,0.1,1.0,9.0\n2,0,val,1.7,0.1,,\n")
    assert read_metrics(metrics) == {"train": [(1, 2.0, 0.1), (2, 1.5, 0.1)], "val": [(2, 1.7, 0.1)]}
    plot_curves(metrics, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG

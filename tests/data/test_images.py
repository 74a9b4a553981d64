from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from lstmkit.data.images import ink, line_columns, read_image, render_line, stack_columns

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _render(text="Hello, World 42!", size=20, seed=0, **kw):
    return render_line(text, FONT, size, rng=np.random.default_rng(seed), **kw)


def test_render_line_is_deterministic_per_seed_and_grey():
    a, b = _render(seed=3, noise=0.05, blur=0.7), _render(seed=3, noise=0.05, blur=0.7)
    assert a.dtype == np.uint8 and a.ndim == 2 and np.array_equal(a, b)
    assert not np.array_equal(a, _render(seed=4, noise=0.05, blur=0.7))
    # Dark text on a light background: most pixels are light, some are dark.
    assert np.median(a) > 190 and a.min() < 100


def test_line_columns_shape_and_scale_invariance():
    for size in (14, 28):
        cols = line_columns(_render(size=size), 32)
        assert cols.dtype == np.float32 and cols.shape[1] == 32
        assert cols.min() >= 0 and cols.max() <= 1
    # The same line at twice the pixel size reads in about the same number of columns.
    w14, w28 = (line_columns(_render(size=s), 32).shape[0] for s in (14, 28))
    assert abs(w14 - w28) / w28 < 0.15
    # Longer text, more columns; the margins are cut off.
    assert line_columns(_render("Hello, World 42! And more"), 32).shape[0] > w28
    cols = line_columns(_render(), 32)
    assert cols[:1].max() < 0.5 and cols[-1:].max() < 0.5 and cols.max(axis=1)[2:-2].max() > 0.9


def test_ink_reads_light_on_dark_like_dark_on_light():
    dark_on_light = _render()
    assert np.allclose(line_columns(255 - dark_on_light, 32), line_columns(dark_on_light, 32), atol=1e-5)
    amount = ink(dark_on_light)
    assert amount.shape == dark_on_light.shape and amount.max() == pytest.approx(1.0)


def test_stack_columns():
    cols = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    out = stack_columns(cols, 2)
    assert out.shape == (3, 6)
    assert np.array_equal(out[0], cols[:2].ravel()) and np.array_equal(out[2], np.r_[cols[4], np.zeros(3)])
    assert stack_columns(cols, 1) is cols


def test_read_image_errors(tmp_path):
    Image.fromarray(_render()).convert("RGB").save(tmp_path / "line.png")
    assert np.array_equal(read_image(tmp_path / "line.png"), _render())  # colour files become grey
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png is not a readable image"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match=r"text\.png is not a readable image"):
        read_image(tmp_path / "text.png")
    Image.new("L", (120, 30), 255).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match=r"blank\.png is blank: no text stands out"):
        line_columns(read_image(tmp_path / "blank.png"), 32, where=str(tmp_path / "blank.png"))
    with pytest.raises(ValueError, match="is empty"):
        ink(np.zeros((0, 5), dtype=np.uint8))

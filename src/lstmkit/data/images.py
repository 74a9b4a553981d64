"""Text-line images for OCR models: rendering lines with Pillow, and turning any line image into
the column sequence a recurrent net reads left to right.

Shapes: an image is (Hpx, Wpx) float32 "ink" in [0, 1] (1 = ink, 0 = background); a line's
features are (W, H): W columns of H pixels after scaling the line to a height of H.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, UnidentifiedImageError

# The line box around the baseline, in font sizes: DejaVu's ascent and descent (0.93 and 0.24 em).
ASCENT, DESCENT = 0.93, 0.24
MIN_CONTRAST = 0.15  # an image whose ink and background differ by less than this (on 0-1) is blank


def render_line(
    text: str,
    font_path: str | os.PathLike[str],
    size: int,
    *,
    rng: np.random.Generator,
    noise: float = 0.0,
    blur: float = 0.0,
) -> np.ndarray:
    """``text`` drawn in ``font_path`` at ``size`` pixels as an 8-bit grey image (Hpx, Wpx), dark on light.

    The line box reaches ``ASCENT`` x size above the baseline and ``DESCENT`` x size below it (further
    only where a glyph does), whatever the font's own metrics: fonts such as STIX declare a line box
    half as tall again as DejaVu's for their mathematical glyphs, and a line scaled by that box would
    set their letters smaller. A few pixels of random margin go on each side; the background and ink
    greys, the Gaussian blur radius (up to ``blur``) and the Gaussian pixel noise (std up to ``noise``,
    on 0-1) are drawn from ``rng``.
    """
    font = _font(str(font_path), size)
    left, top, right, bottom = font.getbbox(text, anchor="ls")  # relative to the baseline's left end
    ascent, descent = max(round(ASCENT * size), -top), max(round(DESCENT * size), bottom)
    m = rng.integers(1, 5, size=4)  # left, right, top, bottom margins in pixels
    width, height = int(right - min(left, 0) + m[0] + m[1]), int(ascent + descent + m[2] + m[3])
    background, ink = int(rng.integers(200, 256)), int(rng.integers(0, 70))
    image = Image.new("L", (width, height), background)
    ImageDraw.Draw(image).text((m[0] - min(left, 0), m[2] + ascent), text, font=font, fill=ink, anchor="ls")
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, blur))))
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (Hpx, Wpx)
    if noise > 0:
        pixels = pixels + rng.normal(0.0, rng.uniform(0, noise), size=pixels.shape)
    return np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=128)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)  # loading a face costs more than drawing a line with it


MAX_PIXELS = 16_000_000  # one line of text needs far fewer; refused before decoding (a 23 kB PNG can hold 400 MP)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A PNG (or any image Pillow reads) as an 8-bit grey array (Hpx, Wpx); ``ValueError`` names the
    file when it cannot be read, is empty, or has more than :data:`MAX_PIXELS` pixels (checked from
    its header, before any pixel is decoded)."""
    path = Path(path)
    unreadable = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as e:  # Pillow's own limit, far above ours
        raise ValueError(f"{path} is too large ({e}); lstmkit reads images of at most {MAX_PIXELS / 1e6:.0f} "
                         "megapixels: crop it to the line of text") from e  # fmt: skip
    except unreadable as e:
        raise ValueError(f"{path} is not a readable image: {e}") from e
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(
                f"{path} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); lstmkit reads "
                f"images of at most {MAX_PIXELS / 1e6:.0f} megapixels: crop it to the line of text"
            )
        try:
            image.load()
            grey = image.convert("L")
        except unreadable as e:
            raise ValueError(f"{path} is not a readable image: {e}") from e
    pixels = np.asarray(grey, dtype=np.uint8)
    if pixels.size == 0:
        raise ValueError(f"{path} is an empty image ({grey.width} x {grey.height} pixels)")
    return pixels


def ink(pixels: np.ndarray, *, where: str = "the image") -> np.ndarray:
    """Grey pixels (Hpx, Wpx) -> ink in [0, 1], 1 where the text is, for dark-on-light and
    light-on-dark lines alike: the background is the median grey (most of a line is background),
    and the contrast is stretched so that the strongest ink is 1.

    Raises ``ValueError`` for an empty or blank image (no ink to read).
    """
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"{where} is empty (shape {pixels.shape})")
    grey = pixels.astype(np.float32) / (255.0 if pixels.dtype == np.uint8 else 1.0)
    background = float(np.median(grey))
    darker, lighter = background - float(grey.min()), float(grey.max()) - background
    contrast = max(darker, lighter)
    if contrast < MIN_CONTRAST:
        raise ValueError(f"{where} is blank: no text stands out from its background")
    signed = (background - grey) if darker >= lighter else (grey - background)  # ink positive
    return np.clip(signed / contrast, 0.0, 1.0)


def line_columns(pixels: np.ndarray, height: int, *, where: str = "the image") -> np.ndarray:
    """A text-line image (Hpx, Wpx) -> its column sequence (W, height) float32 in [0, 1].

    The image is turned into ink, cut to the columns that hold ink (plus two pixels each side:
    margins carry nothing), and scaled to ``height`` rows keeping its aspect ratio, so that lines of
    any pixel size give the same features. Its rows are kept whole: the line box sets the scale.
    """
    amount = ink(pixels, where=where)  # (Hpx, Wpx)
    columns = np.flatnonzero(amount.max(axis=0) > 0.5)
    if len(columns) == 0:
        raise ValueError(f"{where} is blank: no text stands out from its background")
    lo, hi = max(columns[0] - 2, 0), min(columns[-1] + 3, amount.shape[1])
    amount = amount[:, lo:hi]
    width = max(1, round(amount.shape[1] * height / amount.shape[0]))
    scaled = Image.fromarray(amount).resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(scaled, dtype=np.float32), 0.0, 1.0).T.copy()  # (W, height): time-major


def stack_columns(columns: np.ndarray, stride: int) -> np.ndarray:
    """(W, H) -> (ceil(W / stride), stride * H): ``stride`` neighbouring columns in one step; the last
    step is completed with empty (zero-ink) columns."""
    if stride == 1:
        return columns
    W, H = columns.shape
    n = -(-W // stride)
    padded = np.concatenate([columns, np.zeros((n * stride - W, H), dtype=columns.dtype)])  # (n * stride, H)
    return padded.reshape(n, stride * H)


__all__ = ["ink", "line_columns", "read_image", "render_line", "stack_columns"]

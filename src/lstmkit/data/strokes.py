"""Online handwriting: pen trajectories, synthetic writers drawing them, and the files users bring.

A line of handwriting is an (N, 3) float32 array of *points*: x, y (y up), and an end-of-stroke flag that is
1.0 at the last point of each pen-down stroke and 0.0 elsewhere. The models read *offsets* instead
(:func:`to_offsets`): the same rows with x and y replaced by the step from the previous point.

Synthetic lines (:func:`write_line`) come from the Hershey vector fonts (PyPI ``hershey-fonts``, imported only
when a line is written). Their glyphs are ordered plotter pen paths, so a stroke has a real start, direction
and end, as a pen's does. Each :class:`Writer` styles them: per-glyph size jitter, slant (shear), width,
letter spacing, a slow baseline wobble and a smooth tremor, then samples the path at equal arc length
(:func:`resample`), its ``step`` standing for the writer's speed and the tablet's sampling rate. In the
script faces, letters whose pen paths meet are written without lifting the pen, as in joined-up writing.

Users' pen data (:func:`read_strokes`): CSV (x, y, stroke id), W3C InkML, and the IAM On-Line Handwriting
Database's XML. XML is parsed only with ``defusedxml``, which refuses entity expansion and external entities.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
import os
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lstmkit._fileio import read_utf8, write_text_atomic

# The Hershey faces used: every one draws every ALPHABET symbol (tests/data/test_strokes.py checks it).
FACES: tuple[str, ...] = (
    "futural",
    "futuram",
    "rowmans",
    "rowmand",
    "rowmant",
    "scripts",
    "scriptc",
    "cursive",
    "timesr",
    "timesi",
    "timesrb",
    "timesib",
)
ALPHABET: str = " " + string.ascii_letters + string.digits + ".,;:!?'\"()-&"

# Faces whose lowercase letters are designed to connect: a letter's last stroke ends where the next begins.
CURSIVE_FACES = frozenset({"scripts", "scriptc", "cursive"})
# Letters of a word are joined (pen kept down) when the pen paths' ends are closer than this, in cap heights,
# in the font's own layout. In scriptc 42% of lowercase pairs meet within it, in scripts and cursive 71%;
# in the non-script faces only 4% would (those are never joined).
JOIN_DISTANCE = 0.35

# The ranges random_writer draws each style field from (uniformly). Writer itself accepts any value that makes
# sense geometrically (a positive width and step, non-negative noise), so a caller can go outside them.
STYLE_RANGES: dict[str, tuple[float, float]] = {
    "slant": (-0.1, 0.45),  # handwriting mostly leans right; a few writers lean back a little
    "width": (0.8, 1.25),
    "spacing": (-0.05, 0.15),
    "wobble": (0.0, 0.08),
    "tremor": (0.0, 0.02),
    "size_jitter": (0.0, 0.08),
    "step": (0.04, 0.09),
}
# The baseline wobble is one sine along the line: its wavelength (cap heights) is drawn from this range per line,
# long against a letter (about 0.6 to 1 cap heights wide) so that it bends the line rather than the letters.
WOBBLE_WAVELENGTH = (8.0, 16.0)
# Tremor: white noise along the path at TREMOR_GRID spacing, smoothed by a Gaussian of TREMOR_SIGMA (both in cap
# heights), so that it bends strokes over a few tenths of a letter instead of making them jagged.
TREMOR_GRID = 0.02
TREMOR_SIGMA = 0.1

Y_STD = 0.5  # normalize's target: the standard deviation of y (a Hershey line's is 0.28 to 0.32 cap heights)
# normalize leaves out of its spread the points this many median absolute deviations (MAD) of y from the median
# y: 10 standard deviations of a normal distribution (a MAD is 0.6745 of one). On Hershey lines of every face
# no point lies beyond 5 of these; a tablet's glitch (a stray point at y = 0 of the screen) lies far beyond.
OUTLIER_MADS = 10.0 / 0.6745
MAX_POINTS = 10_000_000  # resample refuses to make more points than this (a step far too small for the units)


# ---------------------------------------------------------------------------------------------- writers


@dataclass(frozen=True)
class Writer:
    """One writer's style. Units: the face's capital height is 1 before styling.

    Fields (random_writer's ranges in brackets):

    - ``face``: one of :data:`FACES`.
    - ``slant``: shear, x += slant * y [-0.1, 0.45]; handwriting leans right.
    - ``width``: horizontal scale of every glyph and its advance [0.8, 1.25].
    - ``spacing``: extra advance after each glyph (spaces included), in cap heights [-0.05, 0.15].
    - ``wobble``: amplitude of a slow sine drift of the baseline along the line, in cap heights [0, 0.08].
    - ``tremor``: standard deviation of smooth (low-pass) noise added to the pen path, in cap heights [0, 0.02].
    - ``size_jitter``: standard deviation of each glyph's log-scale [0, 0.08].
    - ``step``: pen sampling distance along the path, in cap heights [0.04, 0.09]: the writer's speed over
      the tablet's sampling rate.

    Raises:
        ValueError: naming the field, for an unknown face, a non-finite number, width or step <= 0, or
            negative wobble, tremor or size_jitter.
    """

    face: str
    slant: float
    width: float
    spacing: float
    wobble: float
    tremor: float
    size_jitter: float
    step: float

    def __post_init__(self) -> None:
        if not isinstance(self.face, str) or self.face not in FACES:
            raise ValueError(f"writer face must be one of {', '.join(FACES)}; got {self.face!r}")
        for f in fields(self):
            if f.name == "face":
                continue
            value = getattr(self, f.name)
            # bool is an int to Python, but True as a slant is surely a mistake
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise ValueError(f"writer {f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"writer {f.name} must be finite, got {value!r}")
            object.__setattr__(self, f.name, float(value))  # plain floats: to_dict gives JSON-ready values
        for key in ("width", "step"):
            if getattr(self, key) <= 0:
                raise ValueError(f"writer {key} must be > 0, got {getattr(self, key)!r}")
        for key in ("wobble", "tremor", "size_jitter"):
            if getattr(self, key) < 0:
                raise ValueError(f"writer {key} must be >= 0, got {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready: a str and floats)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Writer:
        """The writer of ``d`` (as :meth:`to_dict` gives it).

        Raises:
            ValueError: naming a missing or unknown key, or a field with a bad value.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"writer must be a mapping of its fields, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        for key in names:
            if key not in d:
                raise ValueError(f"writer: missing key {key!r} (expected the keys {', '.join(names)})")
        for key in d:
            if key not in names:
                raise ValueError(f"writer: unknown key {key!r} (expected the keys {', '.join(names)})")
        return cls(**{key: d[key] for key in names})


def random_writer(rng: np.random.Generator, face: str) -> Writer:
    """A writer of ``face`` whose style fields are drawn uniformly from :data:`STYLE_RANGES`.

    Raises:
        ValueError: ``face`` is not one of :data:`FACES`.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    if face not in FACES:
        raise ValueError(f"face must be one of {', '.join(FACES)}; got {face!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return Writer(face=face, **{key: float(rng.uniform(lo, hi)) for key, (lo, hi) in STYLE_RANGES.items()})


# ---------------------------------------------------------------------------------------------- the font


class _Glyph(NamedTuple):
    """A glyph in cap heights, y up, baseline at 0, x from the glyph's left edge."""

    strokes: tuple[np.ndarray, ...]  # each (K, 2) float64, in pen order
    advance: float  # the distance to the next glyph's left edge


@functools.lru_cache(maxsize=len(FACES))
def _glyphs(face: str) -> dict[str, _Glyph]:
    """The ALPHABET glyphs of ``face``, converted once: loading a face costs more than writing a line."""
    try:
        from HersheyFonts import HersheyFonts
    except ImportError as e:
        raise ImportError("writing lines needs the Hershey fonts: pip install hershey-fonts==2.1.0") from e
    font = HersheyFonts()
    font.load_default_font(face)
    table = font.all_glyphs  # {character: glyph}, the face's glyphs keyed from ASCII 32 (" ") up
    # Hershey coordinates are screen-like: integers, y down, the cap line at -12 and the baseline at 9 in every
    # face used (cap height 21 units). The font's own lines, not each glyph's, so that all glyphs share a scale.
    base, cap = float(font.render_options["base_line"]), float(font.render_options["cap_line"])
    unit = base - cap
    glyphs = {}
    for ch in ALPHABET:
        g = table[ch]
        strokes = []
        for stroke in g.strokes:
            s = np.array(stroke, dtype=np.float64)  # (K, 2) integer font units
            strokes.append(np.column_stack([(s[:, 0] - g.left_offset) / unit, (base - s[:, 1]) / unit]))
        glyphs[ch] = _Glyph(tuple(strokes), g.char_width / unit)
    return glyphs


# ---------------------------------------------------------------------------------------------- writing


def write_line(text: str, writer: Writer, rng: np.random.Generator) -> np.ndarray:
    """``text`` as ``writer`` writes it: (N, 3) float32 points (x, y, end-of-stroke flag).

    y is up with the baseline near 0 and the line starts near x = 0, in cap heights of the face (before the
    writer's size jitter). Each glyph's pen path is placed at the pen position and styled: scaled by its own
    size jitter, stretched by ``width``, sheared by ``slant``, lifted by the baseline wobble; the pen then
    advances by the glyph's width plus ``spacing``. In the script faces (:data:`CURSIVE_FACES`), a glyph's
    last stroke and the next glyph's first stroke in the same word become one stroke when their ends are
    closer than :data:`JOIN_DISTANCE` in the font's own layout (decided before styling, so a face joins the
    same letters for every writer). Each stroke then gets the tremor and is sampled at equal arc length
    ``writer.step`` by the rule of :func:`resample`. Spaces advance the pen and add no points.

    Raises:
        ValueError: ``text`` is not a str, is empty or blank, or holds a character outside :data:`ALPHABET`
            (named with its position).
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text must hold at least one symbol other than a space, got {text!r}")
    for i, ch in enumerate(text):
        if ch not in ALPHABET:
            raise ValueError(f"text: the character {ch!r} at position {i} is not in ALPHABET (no face draws it)")
    glyphs = _glyphs(writer.face)
    joins = writer.face in CURSIVE_FACES
    wavelength = float(rng.uniform(*WOBBLE_WAVELENGTH))
    phase = float(rng.uniform(0.0, 2.0 * math.pi))

    strokes: list[np.ndarray] = []  # styled pen paths, (K, 2) each
    pen = 0.0  # where the next glyph's left edge goes, styled
    plain_pen = 0.0  # the same in the font's own layout, where joins are decided
    last_end: np.ndarray | None = None  # the previous glyph's pen-up point in this word, font layout
    for ch in text:
        glyph = glyphs[ch]
        scale = math.exp(writer.size_jitter * float(rng.standard_normal()))  # drawn for spaces too: word gaps vary
        if glyph.strokes and ch != " ":
            for k, stroke in enumerate(glyph.strokes):
                styled = _styled(stroke, pen, scale, writer, wavelength, phase)
                start = stroke[0] + (plain_pen, 0.0)
                if k == 0 and joins and last_end is not None and np.hypot(*(start - last_end)) < JOIN_DISTANCE:
                    strokes[-1] = _joined(strokes[-1], styled)
                else:
                    strokes.append(styled)
            last_end = glyph.strokes[-1][-1] + (plain_pen, 0.0)
        else:
            last_end = None  # a space ends the word: the pen lifts
        pen += scale * writer.width * glyph.advance + writer.spacing
        plain_pen += glyph.advance

    pieces = []
    for stroke in strokes:
        path = _with_tremor(stroke, writer.tremor, rng) if writer.tremor > 0 else stroke
        pieces.append(_resample_stroke(path, writer.step))
    return _stack(pieces)


def _styled(
    stroke: np.ndarray, pen: float, scale: float, writer: Writer, wavelength: float, phase: float
) -> np.ndarray:
    """A glyph's stroke (K, 2) in cap heights placed at ``pen`` and styled (no tremor): (K, 2)."""
    x = pen + writer.width * scale * stroke[:, 0]  # scaled about the glyph's baseline-left corner
    y = scale * stroke[:, 1]
    sheared = x + writer.slant * y  # about the baseline, so the line stays where it is
    lifted = y + writer.wobble * np.sin(2.0 * math.pi * x / wavelength + phase)
    return np.column_stack([sheared, lifted])


def _joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stroke ``a`` (K, 2) continued by ``b`` (L, 2): (K + L, 2), the pen moving straight from one to the other.
    Where they meet exactly, the repeated point is dropped when the stroke is resampled."""
    return np.concatenate([a, b])


def _with_tremor(stroke: np.ndarray, tremor: float, rng: np.random.Generator) -> np.ndarray:
    """``stroke`` (K, 2) made dense (points at most TREMOR_GRID apart) plus smooth noise of std ``tremor``:
    (K', 2). The noise is white noise filtered by a unit-energy Gaussian, so its std is ``tremor`` at every
    point; filtering a longer draw ('valid' part only) keeps the ends as noisy as the middle."""
    dense = _densified(stroke, TREMOR_GRID)
    sigma = TREMOR_SIGMA / TREMOR_GRID  # in samples
    radius = math.ceil(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))
    white = rng.standard_normal((len(dense) + 2 * radius, 2))
    noise = np.column_stack([np.convolve(white[:, j], kernel, mode="valid") for j in range(2)])
    return dense + tremor * noise


def _densified(path: np.ndarray, spacing: float) -> np.ndarray:
    """``path`` (K, 2) with each segment cut into equal parts at most ``spacing`` long: (K', 2), on the same
    polyline, every original point kept."""
    if len(path) < 2:
        return path
    segments = np.diff(path, axis=0)
    parts = np.maximum(1, np.ceil(np.hypot(segments[:, 0], segments[:, 1]) / spacing)).astype(np.int64)
    which = np.repeat(np.arange(len(segments)), parts)
    fraction = (np.arange(len(which)) - np.repeat(np.cumsum(parts) - parts, parts)) / np.repeat(parts, parts)
    return np.concatenate([path[which] + segments[which] * fraction[:, None], path[-1:]])


# ---------------------------------------------------------------------------------------------- resampling


def _resample_stroke(path: np.ndarray, step: float) -> np.ndarray:
    """One stroke (K, 2) sampled at arc lengths 0, step, 2 step, ... and its end: (M, 2), float64.

    The first and last points are kept exactly, so the last gap is ``step`` or shorter. A stroke shorter than
    ``step`` gives its two end points; a stroke of one point (or of one point repeated) gives one point.
    """
    # Repeated points add no arc length and would give np.interp a flat stretch of its abscissa.
    moved = np.ones(len(path), dtype=bool)
    moved[1:] = np.any(np.diff(path, axis=0) != 0, axis=1)
    path = path[moved]
    if len(path) == 1:
        return path
    gaps = np.diff(path, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(gaps[:, 0], gaps[:, 1]))])
    length = arc[-1]
    # The number of gaps: the tolerance keeps a length that is a whole number of steps (up to rounding) from
    # ending in a gap of almost nothing.
    count = max(1, math.ceil(length / step - 1e-9))
    at = np.append(np.arange(count) * step, length)
    return np.column_stack([np.interp(at, arc, path[:, 0]), np.interp(at, arc, path[:, 1])])


def _stack(strokes: list[np.ndarray]) -> np.ndarray:
    """Strokes (K_i, 2) -> (N, 3) float32 points, the flag 1.0 at the last point of each."""
    out = np.zeros((sum(len(s) for s in strokes), 3), dtype=np.float32)
    start = 0
    for s in strokes:
        out[start : start + len(s), :2] = s
        start += len(s)
        out[start - 1, 2] = 1.0
    return out


def _strokes(points: np.ndarray) -> list[np.ndarray]:
    """(N, 3) points -> their strokes' (K_i, 2) float64 paths. A stroke ends at a flag > 0.5 and at the last
    point, flagged or not (a user's file may leave the last stroke open)."""
    ends = np.flatnonzero(points[:, 2] > 0.5) + 1
    bounds = [0, *ends.tolist()]
    if bounds[-1] != len(points):
        bounds.append(len(points))
    return [points[a:b, :2] for a, b in itertools.pairwise(bounds)]


def _checked(points: Any, name: str = "points", *, at_least: int = 1) -> np.ndarray:
    """``points`` as an (N, 3) float64 array of finite values, N >= ``at_least``.

    Raises:
        ValueError: naming ``name``, for another shape, non-numbers, too few rows or a non-finite value.
    """
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must be an (N, 3) array of x, y, end-of-stroke flag; got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if len(arr) < at_least:
        raise ValueError(f"{name} must have at least {at_least} row(s), got {len(arr)}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if len(bad):
        raise ValueError(f"{name} holds a non-finite value at row {bad[0]}: {arr[bad[0]].tolist()}")
    return arr


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """Each stroke of ``points`` (N, 3) sampled at equal arc length ``step``: (M, 3) float32.

    Points fall at arc lengths 0, step, 2 step, ... along each stroke's polyline, and at its end: every gap
    along the path is ``step`` except each stroke's last, which is at most ``step`` (so the straight-line
    distance between neighbours is at most ``step``; at a sharp corner it can be shorter). A stroke shorter
    than ``step`` gives its two end points, a single-point stroke one point. The flag is 1.0 at each stroke's
    last point (a stroke ends at a flag > 0.5 and at the last row). :func:`write_line` samples with this rule.

    Raises:
        ValueError: ``step`` is not a positive finite number, ``points`` is not a non-empty (N, 3) array of
            finite numbers, or the result would exceed :data:`MAX_POINTS` points.
    """
    if isinstance(step, bool) or not isinstance(step, int | float | np.integer | np.floating):
        raise ValueError(f"step must be a number, got {step!r}")
    if not math.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    paths = _strokes(_checked(points))
    length = sum(float(np.sum(np.hypot(*np.diff(p, axis=0).T))) for p in paths)
    if length / step + 2 * len(paths) > MAX_POINTS:
        raise ValueError(f"step {step!r} would give about {int(length / step):,} points for a pen path "
                         f"{length:.4g} long (at most {MAX_POINTS:,}); is step in the points' units?")  # fmt: skip
    return _stack([_resample_stroke(p, float(step)) for p in paths])


# ---------------------------------------------------------------------------------------------- normalising


def normalize(points: np.ndarray) -> np.ndarray:
    """``points`` (N, 3) moved so that the first point is at (0, 0) and scaled (x and y by one factor) so that
    the standard deviation of y over the points is 0.5 (:data:`Y_STD`): (N, 3) float32, flags unchanged.

    The scale rule: the standard deviation of y is taken over the points whose y lies within
    :data:`OUTLIER_MADS` median absolute deviations of the median y (10 standard deviations, were y normal).
    For any real line of writing that is every point, so y's standard deviation comes out 0.5 exactly; a
    stray point far off the line (a tablet's glitch) then does not shrink the writing. Everything in the rule
    scales with the data, so pixels, millimetres or tablet units (y up) give the same result, wherever the
    line lies. A trace with no spread in y at all (a single horizontal dash) is scaled by x's standard
    deviation instead. A line of Hershey writing then has a capital about 1.7 high and a lowercase letter's
    body (x-height) about 1.15.

    Raises:
        ValueError: fewer than 2 points, non-finite values, or all points at one place (zero extent).
    """
    p = _checked(points, at_least=2)
    xy = p[:, :2] - p[0, :2]
    extent = float(np.max(np.ptp(xy, axis=0)))
    if extent == 0:
        raise ValueError("points all lie at one place (zero extent): there is no size to normalise")
    y = xy[:, 1]
    centre = np.median(y)
    mad = np.median(np.abs(y - centre))
    inliers = np.abs(y - centre) <= OUTLIER_MADS * mad if mad > 0 else np.ones(len(y), dtype=bool)
    spread = float(np.std(y[inliers]))
    if spread <= 1e-12 * extent:  # flat in y (up to rounding): x is all there is to measure
        spread = float(np.std(xy[:, 0]))
    out = np.empty(p.shape, dtype=np.float32)
    out[:, :2] = xy * (Y_STD / spread)
    out[:, 2] = p[:, 2]
    return out


def to_offsets(points: np.ndarray) -> np.ndarray:
    """Points (N, 3) -> offsets (N, 3): row t is (x_t - x_{t-1}, y_t - y_{t-1}, flag_t) with (x_{-1}, y_{-1}) =
    (0, 0), so the first row holds the first point itself. Float64 input gives float64, any other float32;
    the differences are taken in float64."""
    p = _checked(points)
    out = p.copy()
    out[1:, :2] = np.diff(p[:, :2], axis=0)
    return out.astype(_dtype_of(points))


def from_offsets(offsets: np.ndarray) -> np.ndarray:
    """Offsets (N, 3) -> points (N, 3), the inverse of :func:`to_offsets`: x and y are the cumulative sums
    (in float64), the flag is copied. Float64 input gives float64, any other float32."""
    d = _checked(offsets, "offsets")
    out = d.copy()
    out[:, :2] = np.cumsum(d[:, :2], axis=0)
    return out.astype(_dtype_of(offsets))


def _dtype_of(arr: Any) -> type[np.floating]:
    return np.float64 if np.asarray(arr).dtype == np.float64 else np.float32


# ---------------------------------------------------------------------------------------------- files

SUFFIXES = (".csv", ".inkml", ".xml")


def read_strokes(path: str | os.PathLike[str]) -> np.ndarray:
    """A user's pen data as (N, 3) float32 points (x, y up, end-of-stroke flag), the format by the suffix:

    - ``.csv``: a header line naming the columns ``x``, ``y`` and ``stroke`` (any order, any case; other
      columns are ignored), then one row per point. ``stroke`` is an integer id: where it changes, a stroke
      ends. y is taken as it is (up).
    - ``.inkml``: W3C InkML: each ``<trace>`` (in any namespace, at any depth) is one stroke, its text
      ``"x y [more channels], x y, ..."``; the first two channels are x and y. Only absolute values are read
      (not InkML's ``'`` and ``"`` difference encodings).
    - ``.xml``: the IAM On-Line Handwriting Database: ``<StrokeSet><Stroke><Point x=".." y=".."/>...``.

    InkML and IAM coordinates are screen coordinates (y down): y is negated so that it is up.

    Raises:
        ValueError: naming the file: an unknown suffix, no points, a value that is not a finite number (with
            its line, or trace or stroke and point number), a missing column, malformed XML, or XML with
            entity declarations or external references (refused by defusedxml).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".inkml":
        return _read_inkml(path)
    if suffix == ".xml":
        return _read_iam(path)
    raise ValueError(f"{path}: unknown pen-data format {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")


def _number(text: str | None, path: Path, where: str, what: str) -> float:
    """``text`` as a finite float, or a ValueError naming the file, ``where`` and ``what``."""
    if text is None:  # an IAM <Point> without the attribute
        raise ValueError(f"{path}: {where}: {what} is missing")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{path}: {where}: {what} is {text!r}, expected a finite number")
    return value


def _read_csv(path: Path) -> np.ndarray:
    text = read_utf8(path, bom=True)  # spreadsheets save CSV with a byte-order mark
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    while header is not None and not any(cell.strip() for cell in header):
        header = next(rows, None)  # blank lines before the header
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header line with the columns x, y, stroke")
    names = [cell.strip().lower() for cell in header]
    column = {}
    for name in ("x", "y", "stroke"):
        if name not in names:
            raise ValueError(f"{path}: the header has no column {name!r} (expected the columns x, y, stroke; "
                             f"found {', '.join(map(repr, names))})")  # fmt: skip
        column[name] = names.index(name)
    xs, ys, ids = [], [], []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {rows.line_num}"
        if len(row) < len(names):
            raise ValueError(f"{path}: {where} has {len(row)} values, the header {len(names)}")
        xs.append(_number(row[column["x"]], path, where, "x"))
        ys.append(_number(row[column["y"]], path, where, "y"))
        try:
            ids.append(int(row[column["stroke"]].strip()))
        except ValueError:
            raise ValueError(f"{path}: {where}: stroke is {row[column['stroke']]!r}, expected an integer id") from None
    if not xs:
        raise ValueError(f"{path}: no pen points (a header but no rows)")
    points = np.zeros((len(xs), 3), dtype=np.float32)
    points[:, 0], points[:, 1] = xs, ys
    stroke = np.array(ids)
    points[:-1, 2] = stroke[1:] != stroke[:-1]
    points[-1, 2] = 1.0
    return points


def _xml_root(path: Path) -> Any:
    """The root element of the XML file ``path``, parsed by defusedxml (entities and external references
    refused, so that a crafted file can neither expand to gigabytes nor read other files)."""
    import defusedxml
    import defusedxml.ElementTree as SafeET

    try:
        return SafeET.fromstring(path.read_bytes())  # bytes: the XML declaration says its own encoding
    except defusedxml.DefusedXmlException as e:
        raise ValueError(f"{path}: refused: the XML declares entities or refers to external resources "
                         f"({type(e).__name__}); pen-data files need neither") from None  # fmt: skip
    except SafeET.ParseError as e:
        raise ValueError(f"{path}: not well-formed XML: {e}") from None


def _local(tag: Any) -> str:
    """An element's name without its namespace ('{http://www.w3.org/2003/InkML}trace' -> 'trace'); comments
    and processing instructions (whose tags are functions) give ''."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _read_inkml(path: Path) -> np.ndarray:
    strokes = []
    traces = [el for el in _xml_root(path).iter() if _local(el.tag) == "trace"]
    for k, trace in enumerate(traces, start=1):
        stroke = []
        for chunk in (trace.text or "").split(","):
            channels = chunk.split()
            if not channels:
                continue  # a trailing comma
            if len(channels) < 2:
                raise ValueError(f"{path}: trace {k}: the point {chunk.strip()!r} has one channel, expected x y")
            x = _number(channels[0], path, f"trace {k}", "x")
            y = _number(channels[1], path, f"trace {k}", "y")
            stroke.append((x, -y))  # screen y (down) -> y up
        if stroke:
            strokes.append(np.array(stroke))
    if not strokes:
        raise ValueError(f"{path}: no pen points (no <trace> element with coordinates)")
    return _stack(strokes)


def _read_iam(path: Path) -> np.ndarray:
    strokes = []
    elements = [el for el in _xml_root(path).iter() if _local(el.tag) == "Stroke"]
    for k, element in enumerate(elements, start=1):
        stroke = []
        for j, point in enumerate((el for el in element if _local(el.tag) == "Point"), start=1):
            where = f"stroke {k}, point {j}"
            stroke.append((_number(point.get("x"), path, where, "x"), -_number(point.get("y"), path, where, "y")))
        if stroke:
            strokes.append(np.array(stroke))
    if not strokes:
        raise ValueError(f"{path}: no pen points (no <Stroke> element with <Point> children)")
    return _stack(strokes)


def write_csv(points: np.ndarray, path: str | os.PathLike[str]) -> None:
    """``points`` (N, 3) to ``path`` as the CSV :func:`read_strokes` reads (columns x, y, stroke), atomically.

    Values are written as the shortest decimals that read back to the same float32, so a round trip through
    :func:`read_strokes` is exact for float32 points. Stroke ids count from 0.

    Raises:
        ValueError: ``points`` is not a non-empty (N, 3) array of finite numbers.
    """
    p = _checked(points).astype(np.float32)
    ids = np.concatenate([[0], np.cumsum(p[:-1, 2] > 0.5)])
    lines = ["x,y,stroke"]
    for (x, y, _), sid in zip(p, ids, strict=True):
        lines.append(f"{_decimal(x)},{_decimal(y)},{sid}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def _decimal(v: np.float32) -> str:
    return np.format_float_positional(v, unique=True, trim="-")


def write_svg(points: np.ndarray, path: str | os.PathLike[str], *, height_px: int = 80) -> None:
    """The pen-down strokes of ``points`` (N, 3) as an SVG picture, written atomically to ``path``.

    One black ``<polyline>`` per stroke (round caps and joins; a one-point stroke draws a dot), y flipped for
    SVG's downward axis, scaled so that the writing's height fills ``height_px`` less a margin on each side
    (the width follows the writing), on a white background.

    Raises:
        ValueError: ``points`` is not a non-empty (N, 3) array of finite numbers, or ``height_px`` < 8.
    """
    p = _checked(points)
    if isinstance(height_px, bool) or not isinstance(height_px, int | np.integer) or height_px < 8:
        raise ValueError(f"height_px must be an integer >= 8, got {height_px!r}")
    margin = max(2.0, 0.1 * height_px)
    pen = max(1.0, height_px / 40)  # the pen's width in pixels
    inner = height_px - 2 * margin
    low, high = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
    tall = high[1] - low[1]
    # A flat trace (a dash) has no height: scale it as if as tall as it is wide, or 1 for a single point.
    scale = inner / (tall if tall > 0 else (high[0] - low[0]) or 1.0)
    width_px = math.ceil((high[0] - low[0]) * scale + 2 * margin)
    polylines = []
    for stroke in _strokes(p):
        if len(stroke) == 1:
            stroke = np.repeat(stroke, 2, axis=0)  # a polyline needs two points; round caps make it a dot
        xs = margin + (stroke[:, 0] - low[0]) * scale
        ys = margin + (high[1] - stroke[:, 1]) * scale  # SVG's y grows downwards
        coords = " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys, strict=True))
        polylines.append(f'  <polyline points="{coords}"/>')
    svg = "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{height_px}" '
        f'viewBox="0 0 {width_px} {height_px}">',
        '  <rect width="100%" height="100%" fill="white"/>',
        f'  <g fill="none" stroke="black" stroke-width="{pen:.2f}" stroke-linecap="round" stroke-linejoin="round">',
        *polylines,
        "  </g>",
        "</svg>",
    ])  # fmt: skip
    write_text_atomic(path, svg + "\n")


__all__ = [
    "ALPHABET",
    "CURSIVE_FACES",
    "FACES",
    "JOIN_DISTANCE",
    "STYLE_RANGES",
    "Writer",
    "from_offsets",
    "normalize",
    "random_writer",
    "read_strokes",
    "resample",
    "to_offsets",
    "write_csv",
    "write_line",
    "write_svg",
]

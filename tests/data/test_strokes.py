"""Pen strokes (``lstmkit.data.strokes``): synthetic lines checked against a direct reading of the Hershey
fonts (points on the font's own polylines, one flag per stroke, the cursive joins recounted here), resampling
by arc length, offsets, normalisation, the three file formats with their errors, and the SVG picture."""

from __future__ import annotations

import itertools
import math
import re
import string
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from lstmkit.data import strokes
from lstmkit.data.strokes import (
    ALPHABET,
    FACES,
    JOIN_DISTANCE,
    STYLE_RANGES,
    Writer,
    from_offsets,
    normalize,
    random_writer,
    read_strokes,
    resample,
    to_offsets,
    write_csv,
    write_line,
    write_svg,
)

STEP = 0.065  # the middle of the writers' range


def exactly(message: str) -> str:
    """A pytest.raises pattern matching ``message`` and nothing more."""
    return "^" + re.escape(message) + "$"


def plain(face: str, step: float = STEP) -> Writer:
    """A writer with no style at all: the font's own glyphs, only sampled."""
    return Writer(face=face, slant=0.0, width=1.0, spacing=0.0, wobble=0.0, tremor=0.0, size_jitter=0.0, step=step)


@pytest.fixture(scope="module")
def hershey():
    """The fonts' package, read directly (the reference the module is checked against)."""
    return pytest.importorskip("HersheyFonts").HersheyFonts


def font_strokes(hershey, face: str, text: str) -> list[np.ndarray]:
    """The strokes of ``text`` as the package lays them out (its strokes_for_text), in cap heights, y up."""
    font = hershey()
    font.load_default_font(face)
    base, cap = font.render_options["base_line"], font.render_options["cap_line"]
    out = []
    for stroke in font.strokes_for_text(text):
        s = np.array(stroke, dtype=np.float64)
        out.append(np.column_stack([s[:, 0] / (base - cap), (base - s[:, 1]) / (base - cap)]))
    return out


def split(points: np.ndarray) -> list[np.ndarray]:
    ends = np.flatnonzero(points[:, 2] == 1.0) + 1
    assert ends[-1] == len(points)
    return [points[a:b, :2].astype(np.float64) for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def distance_to_polyline(p: np.ndarray, line: np.ndarray) -> np.ndarray:
    """(M,) distances of the points p (M, 2) to the polyline (K, 2)."""
    a, b = line[:-1][None], line[1:][None]
    ab = b - a
    t = np.clip(np.sum((p[:, None] - a) * ab, axis=2) / np.maximum(np.sum(ab * ab, axis=2), 1e-300), 0, 1)
    nearest = a + t[..., None] * ab
    return np.min(np.hypot(*(p[:, None] - nearest).transpose(2, 0, 1)), axis=1)


# ---------------------------------------------------------------------------------------------- writers


def test_alphabet_is_the_documented_one():
    expected = " " + string.ascii_letters + string.digits + ".,;:!?'\"()-&"
    assert expected == ALPHABET
    assert len(set(ALPHABET)) == len(ALPHABET) == 75


def test_every_face_draws_every_symbol(hershey):
    for face in FACES:
        for ch in ALPHABET[1:]:
            p = write_line(ch, plain(face), np.random.default_rng(0))
            assert len(p) >= 1, (face, ch)
            assert p.dtype == np.float32 and p[-1, 2] == 1.0, (face, ch)


def test_writer_dict_round_trip_and_validation():
    w = random_writer(np.random.default_rng(3), "timesi")
    assert Writer.from_dict(w.to_dict()) == w
    assert all(type(v) is float for k, v in w.to_dict().items() if k != "face")
    d = w.to_dict()
    names = "face, slant, width, spacing, wobble, tremor, size_jitter, step"
    with pytest.raises(ValueError, match=exactly(f"writer: missing key 'step' (expected the keys {names})")):
        Writer.from_dict({k: v for k, v in d.items() if k != "step"})
    with pytest.raises(ValueError, match=exactly(f"writer: unknown key 'speed' (expected the keys {names})")):
        Writer.from_dict({**d, "speed": 1.0})
    with pytest.raises(ValueError, match=exactly(f"writer face must be one of {', '.join(FACES)}; got 'arial'")):
        Writer.from_dict({**d, "face": "arial"})
    with pytest.raises(ValueError, match=exactly("writer width must be > 0, got 0.0")):
        Writer.from_dict({**d, "width": 0})
    with pytest.raises(ValueError, match=exactly("writer tremor must be >= 0, got -0.01")):
        Writer.from_dict({**d, "tremor": -0.01})
    with pytest.raises(ValueError, match=exactly("writer slant must be finite, got nan")):
        Writer.from_dict({**d, "slant": math.nan})
    with pytest.raises(ValueError, match=exactly("writer step must be a number, got '0.05'")):
        Writer.from_dict({**d, "step": "0.05"})


def test_random_writer_draws_within_the_ranges():
    rng = np.random.default_rng(1)
    drawn = [random_writer(rng, face) for face in FACES for _ in range(20)]
    for key, (lo, hi) in STYLE_RANGES.items():
        values = np.array([getattr(w, key) for w in drawn])
        assert lo <= values.min() and values.max() <= hi, key
        assert values.max() - values.min() > 0.8 * (hi - lo), key  # uniform over the range, not a corner of it
    with pytest.raises(ValueError, match=exactly(f"face must be one of {', '.join(FACES)}; got 'Futural'")):
        random_writer(rng, "Futural")


# ---------------------------------------------------------------------------------------------- writing


def test_write_line_is_deterministic_and_depends_on_writer_and_seed():
    rng = np.random.default_rng(7)
    a, b = random_writer(rng, "scriptc"), random_writer(rng, "scriptc")
    text = "Hello, world!"
    first = write_line(text, a, np.random.default_rng(11))
    assert first.shape[1] == 3 and first.dtype == np.float32
    np.testing.assert_array_equal(first, write_line(text, a, np.random.default_rng(11)))
    other_writer = write_line(text, b, np.random.default_rng(11))
    other_seed = write_line(text, a, np.random.default_rng(12))
    for p in (other_writer, other_seed):
        assert p.shape != first.shape or not np.allclose(p, first, atol=1e-3)
    # y up, baseline near 0, the line starting near x = 0 (a capital's swash and the slant move its first ink)
    assert abs(first[:, 0].min()) < 1 and 0 < np.median(first[:, 1]) < 0.7 and first[:, 1].max() > 0.8


@pytest.mark.parametrize("face", ["futural", "rowmant", "timesi"])
def test_plain_writer_samples_the_fonts_own_polylines(hershey, face):
    text = "Quill & ink: 42 (yes)!"
    points = write_line(text, plain(face), np.random.default_rng(0))
    reference = font_strokes(hershey, face, text)
    assert int(points[:, 2].sum()) == len(reference)  # one flag per stroke, the last point of each
    assert set(np.unique(points[:, 2])) <= {0.0, 1.0}
    tol = 8 * np.finfo(np.float32).eps * max(1.0, float(np.abs(points[:, :2]).max()))
    for sampled, line in zip(split(points), reference, strict=True):
        assert distance_to_polyline(sampled, line).max() <= tol
        np.testing.assert_allclose(sampled[0], line[0], atol=tol)  # each stroke keeps its end points
        np.testing.assert_allclose(sampled[-1], line[-1], atol=tol)
        gaps = np.hypot(*np.diff(sampled, axis=0).T)
        assert np.all(gaps <= STEP + tol)
        # one sample per step of the stroke's arc length, and its end
        length = np.sum(np.hypot(*np.diff(line, axis=0).T))
        assert len(sampled) == max(2, math.ceil(length / STEP - 1e-9) + 1)


def _joins(hershey, face: str, word: str) -> int:
    """The letter pairs of ``word`` whose pen paths meet within JOIN_DISTANCE, from the package's glyphs."""
    font = hershey()
    font.load_default_font(face)
    unit = font.render_options["base_line"] - font.render_options["cap_line"]
    glyphs = list(font.glyphs_for_text(word))
    joins = 0
    for g, h in itertools.pairwise(glyphs):
        end = np.array(g.strokes[-1][-1], dtype=float) - (g.left_offset, 0)
        start = np.array(h.strokes[0][0], dtype=float) - (h.left_offset - g.char_width, 0)
        joins += bool(np.hypot(*(end - start)) < JOIN_DISTANCE * unit)
    return joins


@pytest.mark.parametrize("face", ["scripts", "scriptc", "cursive"])
def test_cursive_faces_join_letters_within_a_word(hershey, face):
    word = "minimum"
    total = len(font_strokes(hershey, face, word))
    joins = _joins(hershey, face, word)
    assert joins >= 3  # the word is worth testing: most of its letters meet
    joined = write_line(word, plain(face), np.random.default_rng(0))
    assert int(joined[:, 2].sum()) == total - joins
    # spaces end words: no letter joins the next
    spaced = write_line(" ".join(word), plain(face), np.random.default_rng(0))
    assert int(spaced[:, 2].sum()) == total
    # a styled writer joins the same letters (decided in the font's layout)
    styled = write_line(word, random_writer(np.random.default_rng(5), face), np.random.default_rng(0))
    assert int(styled[:, 2].sum()) == total - joins


def test_printed_faces_never_join(hershey):
    word = "minimum"
    points = write_line(word, plain("futural"), np.random.default_rng(0))
    assert int(points[:, 2].sum()) == len(font_strokes(hershey, "futural", word))


def test_styled_lines_keep_gaps_within_step(hershey):
    rng = np.random.default_rng(2)
    for face in FACES:
        w = random_writer(rng, face)
        points = write_line("Joined-up, isn't it?", w, rng)
        tol = 4 * np.finfo(np.float32).eps * float(np.abs(points[:, :2]).max())  # float32 rounding of x and y
        gaps = np.concatenate([np.hypot(*np.diff(stroke, axis=0).T) for stroke in split(points)])
        assert np.all(gaps <= w.step + tol)
        assert np.median(gaps) > 0.9 * w.step  # equal arc length: most gaps are a whole step


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "text must hold at least one symbol other than a space, got ''"),
        ("   ", "text must hold at least one symbol other than a space, got '   '"),
        ("café", "text: the character 'é' at position 3 is not in ALPHABET (no face draws it)"),
        ("a\tb", "text: the character '\\t' at position 1 is not in ALPHABET (no face draws it)"),
    ],
)
def test_write_line_refuses_bad_text(text, message):
    with pytest.raises(ValueError, match=exactly(message)):
        write_line(text, plain("futural"), np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------- resampling


def test_resample_straight_line_has_equal_steps_and_keeps_ends():
    line = np.array([[0, 0, 0], [0.3, 0, 0], [1.0, 0, 0], [2.05, 0, 1]], dtype=np.float32)
    out = resample(line, 0.25)
    np.testing.assert_allclose(out[:, 0], [*np.arange(9) * 0.25, 2.05], atol=1e-6)
    np.testing.assert_array_equal(out[:, 2], [0] * 9 + [1])


def test_resample_curves_spacing_and_flags():
    theta = np.linspace(0, 1.5 * np.pi, 400)
    arc = np.column_stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)])
    arc[-1, 2] = 1
    shorter = arc[:150].copy()
    shorter[-1, 2] = 1
    dot = np.array([[3.0, 3.0, 1.0]])
    tiny = np.array([[5.0, 0.0, 0.0], [5.01, 0.0, 1.0]])  # shorter than the step: its two ends
    still = np.array([[6.0, 1.0, 0.0], [6.0, 1.0, 0.0], [6.0, 1.0, 1.0]])  # one point held: one point
    step = 0.1
    points = np.concatenate([arc, dot, shorter, tiny, still])
    out = resample(points, step)
    pieces = split(out)
    assert len(pieces) == 5
    for piece, original in zip(pieces, [arc, dot, shorter, tiny, still[:1]], strict=True):
        np.testing.assert_allclose(piece[0], original[0, :2], atol=1e-6)
        np.testing.assert_allclose(piece[-1], original[-1, :2], atol=1e-6)
        gaps = np.hypot(*np.diff(piece, axis=0).T)
        assert np.all(gaps <= step + 1e-6)
        assert np.all(gaps[:-1] >= step / 2)
    assert [len(p) for p in pieces[1:]] == [1, len(pieces[2]), 2, 1]
    assert len(pieces[0]) == math.ceil(1.5 * np.pi / step) + 1  # arc length 1.5 pi, up to the polygon's chords
    # the last row ends a stroke even without its flag
    open_end = points[:10].copy()
    assert resample(open_end, step)[-1, 2] == 1.0


@pytest.mark.parametrize("step", [0, -0.1, math.nan, math.inf])
def test_resample_refuses_bad_step(step):
    with pytest.raises(ValueError, match=exactly(f"step must be a positive finite number, got {step!r}")):
        resample(np.array([[0, 0, 0], [1, 1, 1]], dtype=np.float32), step)


def test_resample_refuses_bad_points():
    with pytest.raises(ValueError, match=exactly("points holds a non-finite value at row 1: [nan, 1.0, 1.0]")):
        resample(np.array([[0, 0, 0], [math.nan, 1, 1]]), 0.1)
    with pytest.raises(ValueError, match=re.escape("points must be an (N, 3) array of x, y, end-of-stroke flag")):
        resample(np.zeros((4, 2)), 0.1)
    with pytest.raises(ValueError, match=re.escape("step 1e-06 would give about 1,000,000,000 points")):
        resample(np.array([[0, 0, 0], [1000, 0, 1]]), 1e-6)


# ---------------------------------------------------------------------------------------------- offsets


def test_offsets_round_trip():
    rng = np.random.default_rng(4)
    grid = np.column_stack([rng.integers(-500, 500, (200, 2)), rng.integers(0, 2, 200)]).astype(np.float64)
    offsets = to_offsets(grid)
    np.testing.assert_array_equal(offsets[0], grid[0])  # relative to (0, 0)
    np.testing.assert_array_equal(offsets[1:, :2], np.diff(grid[:, :2], axis=0))
    np.testing.assert_array_equal(offsets[:, 2], grid[:, 2])
    np.testing.assert_array_equal(from_offsets(offsets), grid)  # exact where the sums are
    assert offsets.dtype == np.float64
    line = write_line("round trip", random_writer(rng, "timesr"), rng)
    back = from_offsets(to_offsets(line))
    assert to_offsets(line).dtype == back.dtype == np.float32
    np.testing.assert_allclose(back, line, atol=2e-5)
    np.testing.assert_allclose(to_offsets(from_offsets(offsets)), offsets)


# ---------------------------------------------------------------------------------------------- normalize


def test_normalize_first_point_scale_and_invariance():
    rng = np.random.default_rng(6)
    line = write_line("The quick brown fox", random_writer(rng, "scriptc"), rng)
    out = normalize(line)
    assert out.dtype == np.float32 and out.shape == line.shape
    np.testing.assert_array_equal(out[0, :2], [0, 0])
    assert np.std(out[:, 1].astype(np.float64)) == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_array_equal(out[:, 2], line[:, 2])
    # a user's units and position: pixels of a tablet, far from the origin
    moved = line.astype(np.float64) * [37.5, 37.5, 1] + [1200.0, -640.0, 0]
    np.testing.assert_allclose(normalize(moved), out, atol=1e-4)
    # a glitch point far off the line does not change the scale
    glitch = np.concatenate([line, [[line[-1, 0], -60.0, 1.0]]])
    np.testing.assert_allclose(normalize(glitch)[:-1], out, atol=1e-5)


def test_normalize_flat_trace_and_errors():
    dash = np.array([[10, 5, 0], [12, 5, 0], [14, 5, 1]], dtype=np.float32)
    out = normalize(dash)
    np.testing.assert_allclose(out[:, :2], [[0, 0], [0.5 * 2 / np.std([0, 2, 4]), 0], [1.0 / np.std([0, 1, 2]), 0]])
    with pytest.raises(ValueError, match=exactly("points must have at least 2 row(s), got 1")):
        normalize(dash[:1])
    with pytest.raises(ValueError, match=re.escape("points all lie at one place (zero extent)")):
        normalize(np.array([[3, 4, 0], [3, 4, 1]]))


# ---------------------------------------------------------------------------------------------- files


def test_csv_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(8)
    line = write_line("Pen & paper", random_writer(rng, "cursive"), rng)
    write_csv(line, tmp_path / "line.csv")
    back = read_strokes(tmp_path / "line.csv")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, line)


def test_csv_columns_in_any_order_with_extra_columns(tmp_path):
    path = tmp_path / "pen.csv"
    path.write_text("\ufefftime, Stroke ,Y,x\n0,5,1.5,10\n1,5,2.5,11\n\n2,7,3,12\n3,7,4,13\n4,7,5,14\n5,2,6,15\n")
    points = read_strokes(path)
    np.testing.assert_array_equal(points[:, 0], [10, 11, 12, 13, 14, 15])
    np.testing.assert_array_equal(points[:, 1], [1.5, 2.5, 3, 4, 5, 6])  # y as written: already up
    np.testing.assert_array_equal(points[:, 2], [0, 1, 0, 0, 1, 1])


INKML = """<?xml version="1.0" encoding="UTF-8"?>
<ink xmlns="http://www.w3.org/2003/InkML">
  <traceFormat><channel name="X" type="decimal"/><channel name="Y" type="decimal"/>
    <channel name="T" type="integer"/></traceFormat>
  <trace id="t1">10 20 0, 11 22 5, 13.5 25 10</trace>
  <traceGroup>
    <trace>
      30 40 15,
      31 38 20,
    </trace>
  </traceGroup>
</ink>
"""

IAM = """<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession>
  <WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>
  <StrokeSet>
    <Stroke colour="black" start_time="769.05" end_time="769.64">
      <Point x="1073" y="1058" time="769.05"/><Point x="1072" y="1085" time="769.07"/>
    </Stroke>
    <Stroke colour="black" start_time="770.00" end_time="770.20">
      <Point x="1100" y="1000" time="770.00"/>
    </Stroke>
    <Stroke colour="black" start_time="771.00" end_time="771.20">
      <Point x="1200" y="990" time="771.00"/><Point x="1210" y="995" time="771.01"/>
      <Point x="1220" y="1001" time="771.02"/>
    </Stroke>
  </StrokeSet>
</WhiteboardCaptureSession>
"""


def test_inkml_traces_are_strokes_with_y_flipped(tmp_path):
    path = tmp_path / "sample.inkml"
    path.write_text(INKML)
    points = read_strokes(path)
    expected = [[10, -20, 0], [11, -22, 0], [13.5, -25, 1], [30, -40, 0], [31, -38, 1]]
    np.testing.assert_array_equal(points, np.array(expected, dtype=np.float32))


def test_iam_strokes_with_y_flipped(tmp_path):
    path = tmp_path / "a01-000u-01.xml"
    path.write_text(IAM, encoding="latin-1")
    points = read_strokes(path)
    expected = [[1073, -1058, 0], [1072, -1085, 1], [1100, -1000, 1], [1200, -990, 0], [1210, -995, 0],
                [1220, -1001, 1]]  # fmt: skip
    np.testing.assert_array_equal(points, np.array(expected, dtype=np.float32))


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ink><trace>&lol4;</trace></ink>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE ink [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<StrokeSet><Stroke><Point x="1" y="&secret;"/></Stroke></StrokeSet>
"""


@pytest.mark.parametrize(("name", "text"), [("bomb.inkml", BILLION_LAUGHS), ("xxe.xml", EXTERNAL)])
def test_xml_entities_are_refused(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    message = (f"{path}: refused: the XML declares entities or refers to external resources (EntitiesForbidden); "
               "pen-data files need neither")  # fmt: skip
    with pytest.raises(ValueError, match=exactly(message)):
        read_strokes(path)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.txt", "x,y,stroke\n", "unknown pen-data format '.txt'; expected one of .csv, .inkml, .xml"),
        ("a", "x,y,stroke\n", "unknown pen-data format ''; expected one of .csv, .inkml, .xml"),
        ("a.csv", "", "empty file; expected a header line with the columns x, y, stroke"),
        ("a.csv", "x,y,stroke\n", "no pen points (a header but no rows)"),
        (
            "a.csv",
            "x,stroke\n1,0\n",
            "the header has no column 'y' (expected the columns x, y, stroke; found 'x', 'stroke')",
        ),
        ("a.csv", "x,y,stroke\n1,2,0\n1,abc,0\n", "line 3: y is 'abc', expected a finite number"),
        ("a.csv", "x,y,stroke\nnan,2,0\n", "line 2: x is 'nan', expected a finite number"),
        ("a.csv", "x,y,stroke\n1,2,1.5\n", "line 2: stroke is '1.5', expected an integer id"),
        ("a.csv", "x,y,stroke\n1,2\n", "line 2 has 2 values, the header 3"),
        (
            "a.inkml",
            "<ink><trace>1 2, 3 q</trace><trace>4 5</trace></ink>",
            "trace 1: y is 'q', expected a finite number",
        ),
        (
            "a.inkml",
            "<ink><trace>1 2</trace><trace>3</trace></ink>",
            "trace 2: the point '3' has one channel, expected x y",
        ),
        (
            "a.inkml",
            "<ink><annotation>none</annotation><trace> </trace></ink>",
            "no pen points (no <trace> element with coordinates)",
        ),
        (
            "a.xml",
            "<StrokeSet><Stroke><Point x='1' y='2'/><Point y='3'/></Stroke></StrokeSet>",
            "stroke 1, point 2: x is missing",
        ),
        (
            "a.xml",
            "<StrokeSet><Stroke><Point x='1' y='2e'/></Stroke></StrokeSet>",
            "stroke 1, point 1: y is '2e', expected a finite number",
        ),
        ("a.xml", "<StrokeSet><Stroke/></StrokeSet>", "no pen points (no <Stroke> element with <Point> children)"),
    ],
)
def test_read_strokes_errors(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=exactly(f"{path}: {problem}")):
        read_strokes(path)


@pytest.mark.parametrize("name", ["broken.xml", "broken.inkml"])
def test_malformed_xml_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_text("<StrokeSet><Stroke></StrokeSet>")
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: not well-formed XML: mismatched tag: line 1")):
        read_strokes(path)


def test_csv_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("x,y,stroke,note\n1,2,0,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=re.escape(f"{path}: not UTF-8 text: line 2")):
        read_strokes(path)


# ---------------------------------------------------------------------------------------------- svg


def test_write_svg_one_polyline_per_stroke(tmp_path):
    rng = np.random.default_rng(9)
    line = write_line("Svg, too.", random_writer(rng, "futuram"), rng)
    line = np.concatenate([line, [[line[-1, 0] + 1, 0.5, 1.0]]]).astype(np.float32)  # a one-point stroke: a dot
    path = tmp_path / "line.svg"
    write_svg(line, path, height_px=60)
    root = ET.fromstring(path.read_text())  # our own output: the standard parser is fine
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("height") == "60"
    polylines = root.findall(".//svg:polyline", ns)
    assert len(polylines) == int(line[:, 2].sum())
    width = float(root.get("width"))
    coords = [np.array([[float(v) for v in pair.split(",")] for pair in p.get("points").split()]) for p in polylines]
    every = np.concatenate(coords)
    assert every[:, 0].min() >= 0 and every[:, 0].max() <= width
    assert every[:, 1].min() >= 0 and every[:, 1].max() <= 60
    assert len(coords[-1]) == 2 and np.array_equal(coords[-1][0], coords[-1][1])
    # y flipped: the highest pen point is nearest the top of the picture
    top = int(np.argmax(line[:, 1]))
    assert every[top, 1] == pytest.approx(every[:, 1].min(), abs=0.01)
    with pytest.raises(ValueError, match=exactly("height_px must be an integer >= 8, got 4")):
        write_svg(line, path, height_px=4)


def test_public_names():
    assert {"FACES", "ALPHABET", "Writer", "random_writer", "write_line", "normalize", "resample", "to_offsets",
            "from_offsets", "read_strokes", "write_csv", "write_svg"} <= set(strokes.__all__)  # fmt: skip

"""Issue 16, items 5-8: file-system errors, bad recognize inputs, resource limits and messages, each a
named error (one line, no traceback) or the safe behaviour."""

from __future__ import annotations

import errno
import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.data.audio import read_wav
from lstmkit.data.images import MAX_PIXELS, read_image


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


def one_line_error(r, code=1):
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and r.output.startswith("Error: ")
    return r.output.splitlines()[0]


# -- 5. file-system errors -------------------------------------------------------------------------
def test_out_under_a_regular_file(tmp_path, small_text, tiny):
    (tmp_path / "file").write_text("x")
    line = one_line_error(invoke("train", *sets(*tiny, f"data.text={small_text}"), "--out", tmp_path / "file" / "run"))
    assert f"--out {tmp_path / 'file' / 'run'}: cannot create the run directory: {tmp_path / 'file'} is a file" in line


def test_out_on_a_read_only_file_system(tmp_path, small_text, tiny, monkeypatch):
    from lstmkit.tasks import runner

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(runner.tempfile, "mkdtemp", read_only)
    line = one_line_error(invoke("train", *sets(*tiny, f"data.text={small_text}"), "--out", tmp_path / "run"))
    assert f"--out {tmp_path / 'run'}: cannot create the run directory: Read-only file system" in line


def test_full_disk_while_training_leaves_no_temporary_folder(tmp_path, small_text, tiny, monkeypatch):
    import safetensors.torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[1]))

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    line = one_line_error(invoke("train", *sets(*tiny, f"data.text={small_text}"), "--out", tmp_path / "run"))
    assert f"{tmp_path / 'run' / 'checkpoints'}: No space left on device (writing the checkpoint of step" in line
    assert not list(tmp_path.rglob(".tmp-*")) and not (tmp_path / "run").exists()  # nothing to resume: removed


def test_unreadable_data_text(tmp_path, small_text, tiny, monkeypatch):
    from lstmkit.tasks import corpus

    def denied(path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(corpus, "read_utf8", denied)
    line = one_line_error(invoke("train", *sets(*tiny, f"data.text={small_text}"), "--out", tmp_path / "run"))
    assert line == f"Error: {small_text}: Permission denied"


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_config_at_resume(char_run, small_text, tiny, tmp_path, damage):
    run = shutil.copytree(char_run.run_dir, tmp_path / "run")
    if damage == "missing":
        (run / "config.toml").unlink()
    else:
        (run / "config.toml").write_bytes(b"[model\nhidden = ")
    line = one_line_error(invoke("train", *sets(*tiny, f"data.text={small_text}"), "--out", run))
    assert f"{run / 'config.toml'}" in line and "cannot be resumed" in line


# -- 6. recognize's inputs ---------------------------------------------------------------------------
def _wav(samples, rate=16000):
    buf = io.BytesIO()
    wavfile.write(buf, rate, samples)
    return buf.getvalue()


def test_truncated_wav_is_named(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav(np.zeros(1000, np.int16))[:30])
    with pytest.raises(ValueError, match=rf"{path} is not a readable WAV file"):
        read_wav(path)


def test_wav_of_nan_samples_is_named(tmp_path):
    path = tmp_path / "nan.wav"
    samples = np.zeros(1000, np.float32)
    samples[10:20] = np.nan
    path.write_bytes(_wav(samples))
    with pytest.raises(ValueError, match=rf"{path} holds 10 non-finite \(NaN or infinite\) samples"):
        read_wav(path)


def test_huge_image_is_refused_from_its_header(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (4, 4), 255).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    # IHDR: 8-byte signature, length, "IHDR", width, height, ...; rewrite the size and its CRC.
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path} is too large .* at most 16 megapixels"):
        read_image(path)
    data[16:24] = struct.pack(">II", 10000, 2000)  # under Pillow's limit, over ours: refused before decoding
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path} is 10000 x 2000 pixels \(20 megapixels\); .* at most 16"):
        read_image(path)
    assert MAX_PIXELS == 16_000_000


# -- 7. resources ------------------------------------------------------------------------------------
@pytest.mark.parametrize("override", ["model.hidden_size=1000000000", "model.hidden_size=256,model.num_layers=100000"])
def test_a_model_that_cannot_fit_is_refused_before_it_is_built(tmp_path, small_text, tiny, override):
    out = tmp_path / "run"
    line = one_line_error(
        invoke("train", *sets(*tiny, f"data.text={small_text}", *override.split(",")), "--out", out), code=2
    )
    assert "parameters that needs about" in line and "GiB to train" in line and "this machine has" in line
    assert not out.exists()


def test_generate_length_is_bounded_and_a_tiny_temperature_is_greedy(char_run):
    r = invoke("generate", char_run.run_dir, "--length", str(10**20))
    assert r.exit_code == 2 and "Traceback" not in r.output
    greedy = invoke("generate", char_run.run_dir, "--length", "20", "--temperature", "0")
    tiny_t = invoke("generate", char_run.run_dir, "--length", "20", "--temperature", "1e-320")
    assert tiny_t.exit_code == 0 and tiny_t.stdout == greedy.stdout, tiny_t.output


# -- 8. messages -------------------------------------------------------------------------------------
def test_non_utf8_config_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"[train]\nlr = 1e-3\n# caf\xe9\n")
    line = one_line_error(invoke("train", "--config", path), code=2)
    assert f"{path}: not UTF-8 text: line 3, column 6" in line


def test_config_that_is_a_directory(tmp_path):
    line = one_line_error(invoke("train", "--config", tmp_path), code=2)
    assert f"--config {tmp_path} is a directory" in line


def test_non_utf8_csv_names_the_file_and_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"y\n1\n2\n\xff3\n")
    r = invoke("train", "--task", "forecast", *sets(f"data.csv={path}", "data.column=y"), "--out", tmp_path / "r")
    assert f"{path}: not UTF-8 text: line 4, column 1" in one_line_error(r)


def test_a_data_path_with_a_line_break_survives_the_config_round_trip(tmp_path, small_text, tiny):
    text = tmp_path / "odd\nname.txt"
    shutil.copy(small_text, text)
    out = tmp_path / "run"
    r = invoke("train", *sets(*tiny, f"data.text={text}"), "--out", out)
    assert r.exit_code == 0, r.output
    r = invoke("train", *sets(*tiny, f"data.text={text}"), "--out", out)  # the same settings resume
    assert r.exit_code == 0 and "(resumed)" in r.output, r.output

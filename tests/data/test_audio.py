from __future__ import annotations

import numpy as np
import pytest
from scipy.io import wavfile

from lstmkit.data.audio import (
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    normalize_utterance,
    read_wav,
    stack_frames,
)

RATE = 22050


def _tone(freq: float, seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("n", [551, 552, 1000, 22050])
def test_log_mel_shape_follows_the_frame_count(n):
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    feats = log_mel(x, RATE, n_mels=40, win_ms=25, hop_ms=10)
    win, hop = round(RATE * 0.025), round(RATE * 0.010)  # 551 and 220 samples
    assert feats.shape == (1 + (n - win) // hop, 40)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()


def test_log_mel_is_deterministic_and_finite_on_silence():
    x = _tone(1000.0)
    assert np.array_equal(log_mel(x, RATE), log_mel(x.copy(), RATE))
    silence = log_mel(np.zeros(RATE // 4, dtype=np.float32), RATE)
    assert np.isfinite(silence).all() and np.allclose(silence, np.log(1e-10))
    short = log_mel(np.ones(10, dtype=np.float32), RATE)  # shorter than a window: padded to one frame
    assert short.shape == (1, 40)


def test_log_mel_puts_a_tone_in_the_band_of_its_frequency():
    for freq in (300.0, 1000.0, 4000.0):
        feats = log_mel(_tone(freq), RATE, n_mels=40)
        band = int(np.median(feats.argmax(axis=1)))
        edges = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(RATE / 2), 42))
        assert edges[band] <= freq <= edges[band + 2]  # inside the band's triangle


def test_mel_filterbank_triangles():
    bank = mel_filterbank(40, 1024, RATE)
    assert bank.shape == (40, 513)
    assert (bank >= 0).all() and (bank.max(axis=1) <= 1).all() and (bank.max(axis=1) > 0.5).all()
    centres = bank.argmax(axis=1)
    assert (np.diff(centres) > 0).all()  # band centres rise with the band index
    assert np.allclose(mel_to_hz(hz_to_mel([0.0, 700.0, 8000.0])), [0.0, 700.0, 8000.0])
    with pytest.raises(ValueError, match="cover no FFT bin"):
        mel_filterbank(200, 256, RATE)
    with pytest.raises(ValueError, match="fmin < fmax"):
        mel_filterbank(40, 1024, RATE, fmin=5000, fmax=4000)


def test_stack_frames_and_normalisation():
    feats = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    stacked = stack_frames(feats, 3)
    assert stacked.shape == (3, 6)
    assert np.array_equal(stacked[0], feats[:3].ravel())
    assert np.array_equal(stacked[2], np.r_[feats[6], feats[6], feats[6]])  # the last frame repeated
    assert stack_frames(feats, 1) is feats
    normal = normalize_utterance(np.random.default_rng(1).normal(3.0, 2.0, size=(50, 4)))
    assert np.allclose(normal.mean(axis=0), 0, atol=1e-5) and np.allclose(normal.std(axis=0), 1, atol=1e-4)


def test_read_wav_formats(tmp_path):
    x = _tone(440.0, 0.1)
    wavfile.write(tmp_path / "f32.wav", RATE, x)
    wavfile.write(tmp_path / "i16.wav", RATE, (x * 32767).astype(np.int16))
    wavfile.write(tmp_path / "u8.wav", RATE, (x * 127 + 128).astype(np.uint8))
    wavfile.write(tmp_path / "mono2d.wav", RATE, x[:, None])
    for name, tol in (("f32", 0), ("i16", 1e-4), ("u8", 2 / 128), ("mono2d", 0)):
        y, rate = read_wav(tmp_path / f"{name}.wav", expected_rate=RATE)
        assert rate == RATE and y.dtype == np.float32 and y.shape == x.shape
        assert np.abs(y - x).max() <= tol + 1e-7, name
    data = (tmp_path / "i16.wav").read_bytes()
    assert np.array_equal(read_wav(data)[0], read_wav(tmp_path / "i16.wav")[0])  # bytes read like the file


def test_read_wav_refuses_stereo_other_rates_and_junk(tmp_path):
    x = _tone(440.0, 0.1)
    wavfile.write(tmp_path / "stereo.wav", RATE, np.stack([x, x], axis=1))
    with pytest.raises(ValueError, match=r"stereo.wav has 2 channels; a mono WAV is needed \(convert it with: sox"):
        read_wav(tmp_path / "stereo.wav", expected_rate=RATE)
    wavfile.write(tmp_path / "16k.wav", 16000, x)
    with pytest.raises(ValueError, match=r"16k.wav is sampled at 16000 Hz; this model was trained at 22050 Hz"):
        read_wav(tmp_path / "16k.wav", expected_rate=RATE)
    assert read_wav(tmp_path / "16k.wav")[1] == 16000  # without an expected rate any rate is read
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=r"junk\.wav is not a readable WAV file"):
        read_wav(tmp_path / "junk.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.wav is not a readable WAV file"):
        read_wav(tmp_path / "empty.wav")
    wavfile.write(tmp_path / "nothing.wav", RATE, np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match=r"nothing\.wav holds no samples"):
        read_wav(tmp_path / "nothing.wav")

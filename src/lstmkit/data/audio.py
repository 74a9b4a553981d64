"""Audio for speech models: reading WAV files and log-mel features, in numpy and scipy only.

No torchaudio (it has no CPU build on our machines) and no librosa: a log-mel spectrogram is
a short-time Fourier transform, a bank of triangular filters on the mel scale and a log, and
each step is written out below so that its shapes can be checked.

Shapes: a signal is (N,) samples; features are (T, M): T frames of M mel bands.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from scipy.io import wavfile

LOG_FLOOR = 1e-10  # power added before the log, so that digital silence gives a finite feature


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float PCM -> float32 in [-1, 1]."""
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
    return samples.astype(np.float32)


def read_wav(
    source: str | os.PathLike[str] | bytes, *, expected_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """A mono WAV file (or its bytes) as float32 samples in [-1, 1] and its sample rate.

    Raises ``ValueError`` naming the file and saying how to convert it when it cannot be read, has
    more than one channel, or its rate is not ``expected_rate``: the features of a model are those
    of one sample rate, and silently resampling or mixing channels would hide a mismatch.
    """
    name = "the WAV data" if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            # espeak-ng --stdout writes a streaming header whose sizes are placeholders; the samples are fine.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, samples = wavfile.read(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
    except (OSError, ValueError, EOFError, struct.error) as e:  # struct.error: a truncated header or chunk
        raise ValueError(f"{name} is not a readable WAV file (truncated or damaged?): {e}") from e
    if samples.ndim == 2 and samples.shape[1] != 1:
        raise ValueError(
            f"{name} has {samples.shape[1]} channels; a mono WAV is needed "
            f"(convert it with: sox IN.wav -c 1 OUT.wav, or ffmpeg -i IN.wav -ac 1 OUT.wav)"
        )
    samples = samples.reshape(-1)
    if expected_rate is not None and rate != expected_rate:
        raise ValueError(
            f"{name} is sampled at {rate} Hz; this model was trained at {expected_rate} Hz "
            f"(convert it with: sox IN.wav -r {expected_rate} OUT.wav, or ffmpeg -i IN.wav -ar {expected_rate} OUT.wav)"
        )
    if len(samples) == 0:
        raise ValueError(f"{name} holds no samples")
    samples = _to_float(samples)
    if not np.isfinite(samples).all():  # a float WAV may hold NaN or infinity; no model can read them
        bad = int((~np.isfinite(samples)).sum())
        raise ValueError(f"{name} holds {bad} non-finite (NaN or infinite) samples of {len(samples)}")
    return samples, int(rate)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, rate: int, *, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """(M, n_fft // 2 + 1) triangular filters, centres evenly spaced on the mel scale, peak 1.

    Raises ``ValueError`` when a filter covers no FFT bin (too many bands for ``n_fft``).
    """
    fmax = rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= rate / 2 = {rate / 2}, got fmin={fmin}, fmax={fmax}")
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (M + 2,) Hz
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)  # (F,) centre frequency of every FFT bin
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    rising = (bins[None] - lo) / (mid - lo)
    falling = (hi - bins[None]) / (hi - mid)
    bank = np.clip(np.minimum(rising, falling), 0.0, None)  # (M, F)
    empty = np.flatnonzero(bank.sum(axis=1) == 0)
    if len(empty):
        raise ValueError(f"mel bands {empty.tolist()} cover no FFT bin: use fewer bands or a longer window")
    return bank


def log_mel(
    samples: np.ndarray,
    rate: int,
    *,
    n_mels: int = 40,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    fmin: float = 20.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Log mel-band power of ``samples`` (N,): (T, n_mels) float32, one frame every ``hop_ms``.

    Frames of ``win_ms`` are Hann-windowed and zero-padded to the next power of two for the FFT;
    T = 1 + (N - win) // hop (a signal shorter than one window is padded to one frame).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"samples must be 1-D (N,), got shape {samples.shape}")
    win = round(rate * win_ms / 1000)
    hop = round(rate * hop_ms / 1000)
    if win < 2 or hop < 1:
        raise ValueError(f"win_ms={win_ms} and hop_ms={hop_ms} give a window of {win} and a hop of {hop} samples")
    if len(samples) < win:
        samples = np.pad(samples, (0, win - len(samples)))
    n_fft = 1 << (win - 1).bit_length()
    frames = np.lib.stride_tricks.sliding_window_view(samples, win)[::hop]  # (T, win), a view
    window = np.hanning(win + 1)[:-1]  # periodic Hann: overlapping frames sum to a constant
    power = np.abs(np.fft.rfft(frames * window, n=n_fft, axis=1)) ** 2  # (T, n_fft // 2 + 1)
    bank = mel_filterbank(n_mels, n_fft, rate, fmin=fmin, fmax=fmax)  # (M, F)
    return np.log(power @ bank.T + LOG_FLOOR).astype(np.float32)  # (T, M)


def stack_frames(features: np.ndarray, stack: int) -> np.ndarray:
    """(T, M) -> (ceil(T / stack), stack * M): ``stack`` consecutive frames side by side, so that the
    recurrent net takes fewer, wider steps; the last group is completed by repeating the last frame."""
    if stack == 1:
        return features
    T, M = features.shape
    n = -(-T // stack)
    full = np.concatenate([features, np.repeat(features[-1:], n * stack - T, axis=0)])  # (n * stack, M)
    return full.reshape(n, stack * M)


def normalize_utterance(features: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalisation of each band over time: (T, M) -> (T, M).

    Removes a voice's or a channel's constant spectral tilt and loudness, which differ between
    speakers far more than between digits.
    """
    mean = features.mean(axis=0, keepdims=True)
    std = features.std(axis=0, keepdims=True)
    return ((features - mean) / np.maximum(std, 1e-3)).astype(np.float32)


__all__ = ["hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz", "normalize_utterance", "read_wav", "stack_frames"]

"""``ctc-speech``: spoken digit strings, recognised by a stacked biLSTM trained with CTC.

Data: random strings of ``data.min_digits``-``data.max_digits`` digits, spoken by espeak-ng (a
Debian package: ``apt-get install espeak-ng``) in eight English accents and many voice variants,
each utterance at a random speed and pitch. A speaker is an (accent, variant) pair; the training,
validation and test splits use disjoint sets of variants, so the test measures recognition of voices
never heard in training. The waveforms become log-mel features (:mod:`lstmkit.data.audio`), which
are generated once and cached under ``data.dir`` with their generation parameters.

Model input: each utterance's log-mel bands normalised over its own frames (mean and variance per
band), ``data.stack`` frames side by side per step. Reports the word error rate over digit tokens
and the share of strings recognised whole, for greedy and prefix-beam decoding.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.data.audio import log_mel, normalize_utterance, read_wav, stack_frames
from lstmkit.metrics import wer
from lstmkit.tasks.base import DataUnavailable
from lstmkit.tasks.ctc import SPLITS, CTCData, CTCModel, CTCTask, cached_arrays, ragged, resolved_dir, unragged
from lstmkit.tasks.registry import register_task
from lstmkit.train import Config, TrainConfig

DIGITS = "0123456789"
ESPEAK_RATE = 22050  # Hz: what espeak-ng's own voices synthesise at
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
INSTALL = (
    "espeak-ng is not installed; ctc-speech synthesises its data with it. Install it with:\n"
    "    sudo apt-get update && sudo apt-get install -y espeak-ng    (Debian, Ubuntu; as root without sudo)\n"
    "then run the command again."
)
# espeak-ng's English accents; every split hears all of them.
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# Voice variants (pitch, formants, glottal source and synthesiser), checked to sound different from
# each other and from the plain voice; the three splits share none.
VARIANTS = {
    "train": ("m1", "m2", "m4", "m5", "m7", "f1", "f3", "f5", "klatt", "klatt3",
              "adam", "boris", "david", "ed", "linda", "norbert", "paul", "grandma", "aunty", "iven"),
    "val": ("m6", "f4", "klatt5", "john", "steph"),
    "test": ("m3", "m8", "f2", "klatt2", "klatt4", "benjamin", "edward", "grandpa", "michel", "max", "gustave"),
}  # fmt: skip


@dataclass(frozen=True)
class SpeechData(CTCData):
    """The generated utterances and their features (``ctc-speech``'s ``[data]``)."""

    train_size: int = 4000  # utterances; about 40 s of espeak-ng and features, once (then cached)
    val_size: int = 400  # from the validation voices, for early stopping
    test_size: int = 1000  # from the test voices: about 4500 digits, so WER is resolved to about 0.02%
    min_digits: int = 1  # single digits too, so isolated words are learnt
    max_digits: int = 8  # a phone-number length: long enough that CTC must align, short enough to synthesise fast
    speed: tuple[int, int] = (130, 210)  # espeak-ng words per minute, drawn uniformly per utterance
    pitch: tuple[int, int] = (30, 70)  # espeak-ng pitch (0-99), drawn uniformly per utterance
    sample_rate: int = ESPEAK_RATE  # recorded for `lstmkit recognize`: the rate its WAV files must have
    n_mels: int = 40  # the usual 40 bands for small-vocabulary recognition
    win_ms: float = 25.0  # analysis window
    hop_ms: float = 10.0  # one frame every 10 ms, the standard
    stack: int = 4  # frames per LSTM step: 40 ms steps, still several per spoken digit, 4x fewer steps
    batch_size: int = 16

    def _validate(self) -> None:
        super()._validate()
        for key in ("train_size", "val_size", "test_size", "min_digits", "n_mels", "stack"):
            if getattr(self, key) < 1:
                raise ValueError(f"data.{key} must be >= 1, got {getattr(self, key)}")
        if not self.min_digits <= self.max_digits:
            raise ValueError(f"data.max_digits must be >= data.min_digits, got {self.max_digits} < {self.min_digits}")
        for key, lo, hi in (("speed", 80, 450), ("pitch", 0, 99)):
            a, b = getattr(self, key)
            if not lo <= a <= b <= hi:
                raise ValueError(f"data.{key} must be [low, high] within [{lo}, {hi}], got {[a, b]}")
        if self.sample_rate != ESPEAK_RATE:
            raise ValueError(f"data.sample_rate must be {ESPEAK_RATE}, the rate espeak-ng synthesises at, "
                             f"got {self.sample_rate}")  # fmt: skip
        if self.hop_ms <= 0 or self.win_ms < self.hop_ms:
            raise ValueError(f"need 0 < data.hop_ms <= data.win_ms, got {self.hop_ms} and {self.win_ms}")


def espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataUnavailable(INSTALL)
    return path


def espeak_version() -> str:
    out = subprocess.run([espeak(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def speak(text: str, voice: str, speed: int, pitch: int) -> bytes:
    """espeak-ng's WAV of ``text`` (bytes)."""
    out = subprocess.run([espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         capture_output=True, check=False)  # fmt: skip
    if out.returncode != 0 or not out.stdout:
        raise DataUnavailable(f"espeak-ng failed for voice {voice}: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout


def draw_utterances(data: SpeechData, split: str, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` utterance specifications (digits, voice, speed, pitch) for ``split``'s voices."""
    out = []
    for _ in range(n):
        k = int(rng.integers(data.min_digits, data.max_digits + 1))
        digits = "".join(DIGITS[i] for i in rng.integers(0, 10, size=k))
        voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[split][rng.integers(len(VARIANTS[split]))]}"
        out.append({"digits": digits, "voice": voice, "speed": int(rng.integers(data.speed[0], data.speed[1] + 1)),
                    "pitch": int(rng.integers(data.pitch[0], data.pitch[1] + 1))})  # fmt: skip
    return out


def features(wav: bytes | Path, data: SpeechData) -> np.ndarray:
    """A WAV's log-mel features (T, n_mels), as cached (before normalisation and stacking)."""
    samples, rate = read_wav(wav, expected_rate=data.sample_rate)
    return log_mel(samples, rate, n_mels=data.n_mels, win_ms=data.win_ms, hop_ms=data.hop_ms)


def model_input(mel: np.ndarray, data: SpeechData) -> np.ndarray:
    """Cached log-mel (T, M) -> the model's input (ceil(T / stack), stack * M) float32."""
    return stack_frames(normalize_utterance(mel.astype(np.float32)), data.stack)


def generation_params(data: SpeechData) -> dict[str, Any]:
    return {
        "task": "ctc-speech",
        "espeak": espeak_version(),
        "seed": data.seed,
        "sizes": [data.train_size, data.val_size, data.test_size],
        "digits": [data.min_digits, data.max_digits],
        "speed": list(data.speed),
        "pitch": list(data.pitch),
        "accents": list(ACCENTS),
        "variants": {s: list(v) for s, v in VARIANTS.items()},
        "features": {"rate": data.sample_rate, "n_mels": data.n_mels, "win_ms": data.win_ms, "hop_ms": data.hop_ms},
    }


def generate(data: SpeechData) -> dict[str, np.ndarray]:
    """Synthesise every split's utterances and their log-mel features, as flat arrays for the cache."""
    rng = np.random.default_rng(data.seed)
    specs = {s: draw_utterances(data, s, n, rng)
             for s, n in zip(SPLITS, (data.train_size, data.val_size, data.test_size), strict=True)}  # fmt: skip
    flat = [(s, u) for s in SPLITS for u in specs[s]]

    def one(item: tuple[str, dict[str, Any]]) -> np.ndarray:
        u = item[1]
        text = " ".join(WORDS[int(d)] for d in u["digits"])
        return features(speak(text, u["voice"], u["speed"], u["pitch"]), data).astype(np.float16)

    with ThreadPoolExecutor(max_workers=4) as pool:  # overlaps espeak-ng's process start-ups
        mels = list(pool.map(one, flat))
    mel, offsets = ragged(mels)
    return {
        "mel": mel,  # (sum T_i, n_mels) float16: log power, well within float16's precision
        "offsets": offsets,
        "split": np.array([SPLITS.index(s) for s, _ in flat], dtype=np.int8),
        "digits": np.array([u["digits"] for _, u in flat]),
        "voice": np.array([u["voice"] for _, u in flat]),
        "speed": np.array([u["speed"] for _, u in flat], dtype=np.int16),
        "pitch": np.array([u["pitch"] for _, u in flat], dtype=np.int16),
    }


@register_task("ctc-speech")
class SpeechTask(CTCTask):
    """Spoken digit strings (espeak-ng), stacked biLSTM + CTC; WER over digits on unseen voices."""

    summary = ("spoken digit strings synthesised by espeak-ng, stacked biLSTM + CTC; WER and string accuracy on "
               "unseen voices")

    def default_config(self) -> Config:
        # Chosen on the validation voices (docs/results.md): two layers learn faster than three within the
        # budget (a three-layer net was still on CTC's all-blank plateau after 3 minutes, the two-layer one
        # past 0.05 nats/label); batches of 16 give twice the updates of 32 for the same time.
        return Config(
            model=CTCModel(hidden_size=128, num_layers=2, dropout=0.1),
            data=SpeechData(),
            train=TrainConfig(
                epochs=10,  # about 5 minutes on a busy 2-core machine
                lr=3e-3,
                schedule="cosine",
                warmup_steps=50,
                patience=4,
                stateful=False,  # utterances are independent
                log_every=20,
                # A guard for the 10-minute budget on a slower machine: generation (first run only) takes
                # one to two minutes and scoring half a minute around this cap.
                max_minutes=7.0,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            model=CTCModel(hidden_size=8, num_layers=1, dropout=0.0, beam_width=2),
            data=SpeechData(dir=str(workdir / "data"), train_size=12, val_size=4, test_size=4, max_digits=3,
                            batch_size=4),
            train=TrainConfig(epochs=2, max_steps=4, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        d = config.data
        return (f"{d.train_size}/{d.val_size}/{d.test_size} digit strings spoken by espeak-ng (disjoint voices "
                f"per split), cached under {resolved_dir(d)}")  # fmt: skip

    def check_data(self, config: Config) -> None:
        espeak()

    def alphabet(self, config: Config) -> str:
        return DIGITS

    def load(self, config: Config):
        data = config.data
        cached = cached_arrays(resolved_dir(data), "ctc-speech", generation_params(data), lambda: generate(data))
        a = cached.arrays
        mels = unragged(a["mel"], a["offsets"])
        inputs = {s: [] for s in SPLITS}
        texts = {s: [] for s in SPLITS}
        for mel, split, digits in zip(mels, a["split"].tolist(), a["digits"].tolist(), strict=True):
            inputs[SPLITS[split]].append(model_input(mel, data))
            texts[SPLITS[split]].append(digits)
        record = {"cache": str(cached.path), "sha256": cached.sha256, "params": generation_params(data),
                  "generation_seconds": cached.generated_seconds,
                  "voices": {s: sorted({v for v, k in zip(a["voice"].tolist(), a["split"].tolist(), strict=True)
                                        if SPLITS[k] == s}) for s in SPLITS}}  # fmt: skip
        return inputs, texts, record

    def read_file(self, path: Path, config: Config) -> np.ndarray:
        return model_input(features(path, config.data), config.data)

    def score(self, references: list[str], hypotheses: list[str]) -> dict[str, float]:
        def tokens(digits: str) -> str:
            return " ".join(digits)

        return {
            "wer": wer([tokens(r) for r in references], [tokens(h) for h in hypotheses]),
            "string_accuracy": float(np.mean([r == h for r, h in zip(references, hypotheses, strict=True)])),
        }


__all__ = ["SpeechData", "SpeechTask", "generate", "speak"]

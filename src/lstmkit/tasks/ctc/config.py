"""The CTC tasks' ``[data]`` section and where their generated data is cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lstmkit.train import DataConfig


@dataclass(frozen=True)
class CTCData(DataConfig):
    """Where the generated data is cached, and what draws it (each task adds its generation keys)."""

    # The data directory: the generated set is cached in a subfolder named by a hash of its generation
    # parameters, beside a params.json of them, so a second run with the same parameters reuses it.
    # "" means $LSTMKIT_DATA_DIR, else $LSTMKIT_CACHE_DIR/data, else ~/.cache/lstmkit/data; the resolved
    # absolute path is written into the run's config.toml.
    dir: str = ""
    seed: int = 0  # draws the generated set; apart from train.seed so that training seeds share one data set

    def _validate(self) -> None:
        super()._validate()
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"data.seed must be in [0, 2**32), got {self.seed}")


def default_data_dir() -> Path:
    if os.environ.get("LSTMKIT_DATA_DIR"):
        return Path(os.environ["LSTMKIT_DATA_DIR"])
    if os.environ.get("LSTMKIT_CACHE_DIR"):
        return Path(os.environ["LSTMKIT_CACHE_DIR"]) / "data"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lstmkit" / "data"


def resolved_dir(data: CTCData) -> Path:
    return (Path(data.dir).expanduser() if data.dir else default_data_dir()).resolve()

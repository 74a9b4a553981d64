"""The issue's targets, end to end on the real corpus: minutes each, so marked slow.

    python -m pytest -m slow tests/tasks/test_targets.py
"""

from __future__ import annotations

import time

import pytest

from lstmkit.tasks import runner


@pytest.mark.slow
def test_charlm_default_reaches_1_55_nats_per_char_within_10_minutes(tmp_path):
    started = time.perf_counter()
    result = runner.train("charlm", runner.build_config("charlm", overrides=["train.progress=false"]), tmp_path)
    assert time.perf_counter() - started < 600
    assert result.metrics["nats_per_char"] <= 1.55


@pytest.mark.slow
def test_wordlm_default_beats_90_and_the_bigram_by_20_percent_within_10_minutes(tmp_path):
    started = time.perf_counter()
    result = runner.train("wordlm", runner.build_config("wordlm", overrides=["train.progress=false"]), tmp_path)
    assert time.perf_counter() - started < 600
    ppl = result.metrics["test_perplexity"]
    assert ppl <= 90 and ppl <= 0.8 * result.metrics["bigram_test_perplexity"]

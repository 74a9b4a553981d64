"""One intra-op thread: these tests run tiny matrices, where a second thread only adds
synchronisation, and on a busy 2-core machine waiting for it costs many times the work."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

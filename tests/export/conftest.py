"""One intra-op thread: these tests run tiny matrices, where a second thread only adds
synchronisation, and on a busy 2-core machine waiting for it costs many times the work."""

from __future__ import annotations

import pytest

from checks import one_thread

_one_thread = pytest.fixture(autouse=True)(one_thread)

"""Fixtures for the storage tests; shared helpers live in storage_testlib.py."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from kafkito.storage import LogConfig, ManualClock  # noqa: E402


@pytest.fixture
def clock():
    return ManualClock(1_700_000_000_000)


@pytest.fixture
def small_config():
    # Small segments and a dense index so a few KB exercise rolls and index lookups.
    return LogConfig(segment_bytes=4096, index_interval_bytes=256, file_delete_delay_ms=0)

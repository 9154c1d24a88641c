"""Lets the group tests import their shared harness (group_harness.py) by name, and
gives them a real LogManager in tmp_path."""

import os
import sys

import pytest

from kafkito.broker.config import load_config, log_config_from
from kafkito.storage import LogManager

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def logs(tmp_path):
    config = load_config(environ={}, overrides=[("log.dirs", str(tmp_path))])
    manager = LogManager(str(tmp_path), log_config_from(config))
    manager.startup()
    yield manager, config
    manager.shutdown()

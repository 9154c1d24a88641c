"""The embedding API users put in their own test suites."""

from __future__ import annotations

import os

import pytest
from e2e.clients import CONSUMERS, PRODUCERS, Msg

import kafkito.testing

pytestmark = pytest.mark.e2e


def test_pytest_plugin_fixture_is_registered_by_installing_kafkito(kafkito_broker):
    """`kafkito_broker` comes from the pytest11 entry point, not from a conftest here."""
    assert PRODUCERS["aiokafka"](kafkito_broker.bootstrap_servers, "plugin", [Msg(b"k", b"v")]) == [0]


def test_context_manager_with_settings_and_temporary_directory():
    with kafkito.testing.broker(settings={"num.partitions": 3}) as b:
        data_dir = b.data_dir
        assert os.path.isdir(data_dir)
        PRODUCERS["confluent"](b.bootstrap_servers, "auto", [Msg(b"k", b"v", partition=2)])
        assert [s.value for s in CONSUMERS["confluent"](b.bootstrap_servers, "auto", 2, 0, 1)] == [b"v"]
    assert not os.path.exists(data_dir)  # a directory it made itself is removed


def test_bad_setting_raises_before_starting():
    from kafkito.broker.config import ConfigError

    with pytest.raises(ConfigError, match="num.partitions"):
        with kafkito.testing.broker(settings={"num.partitions": "many"}):
            pass

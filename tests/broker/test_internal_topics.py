"""The rule internal topics keep (broker/internal_topics.py), as a pure function."""

from __future__ import annotations

import pytest

from kafkito.broker.internal_topics import INTERNAL_RETENTION_MS_MIN, config_error, repaired_overrides
from kafkito.storage import LogConfig

CREATION = {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)}
BROKER_DEFAULTS = LogConfig(retention_bytes=10_000, segment_bytes=4096)  # a test broker's


def _error(overrides):
    return config_error("__consumer_offsets", overrides, LogConfig.from_kafka(overrides, BROKER_DEFAULTS))


@pytest.mark.parametrize("changes, rule", [
    ({"cleanup.policy": "delete"}, "cleanup.policy must be exactly 'compact'"),
    ({"cleanup.policy": "compact,delete"}, "cleanup.policy must be exactly 'compact'"),
    ({"retention.ms": "1"}, f"retention.ms must be -1 or at least {INTERNAL_RETENTION_MS_MIN}"),
    ({"retention.ms": str(INTERNAL_RETENTION_MS_MIN - 1)}, "retention.ms must be -1"),
    ({"retention.bytes": "0"}, "retention.bytes must be -1"),
    ({"segment.bytes": "1048575"}, "segment.bytes must be at least 1048576"),
])
def test_refused_with_the_rule_named(changes, rule):
    reason = _error({**CREATION, **changes})
    assert reason is not None and rule in reason and "__consumer_offsets is an internal topic" in reason


@pytest.mark.parametrize("changes", [
    {}, {"retention.ms": "-1"}, {"retention.ms": str(INTERNAL_RETENTION_MS_MIN)},
    {"retention.bytes": "-1"}, {"segment.bytes": "1048576"}, {"max.message.bytes": "2000000"},
])
def test_accepted(changes):
    # The broker's own small defaults (retention.bytes, segment.bytes) do not lock it out.
    assert _error({**CREATION, **changes}) is None


def test_whole_set_replacement_without_the_policy_is_refused():
    """The legacy AlterConfigs of finding 8: {retention.ms: 1} replaced the whole set."""
    assert "cleanup.policy" in _error({"retention.ms": "1"})


def test_repair_restores_only_the_protected_configs():
    stored = {"retention.ms": "1", "max.message.bytes": "2000000"}
    repaired = repaired_overrides(stored, CREATION)
    assert repaired == {"max.message.bytes": "2000000", **CREATION}
    assert _error(repaired) is None

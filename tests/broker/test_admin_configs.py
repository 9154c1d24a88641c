"""How the admin APIs describe configs: checked against the code that defines them.

The topic-config -> broker-setting synonym table in broker/handlers/_admin.py must say
exactly what broker/config.py's ``log_config_from`` does; here each broker setting is
changed in turn and the topic configs that move are compared with the table. Broker
setting descriptions must round-trip through the settings' own parsers.
"""

from __future__ import annotations

import pytest

from kafkito.broker.config import SETTINGS, ConfigError, load_config, log_config_from
from kafkito.broker.handlers._admin import (
    TOPIC_CONFIG_SYNONYMS,
    ConfigSource,
    ConfigType,
    broker_config_entries,
    topic_name_error,
)
from kafkito.storage import TOPIC_CONFIGS


def _other_value(setting):
    """A valid value different from the default, or None when there is none to try."""
    if setting.choices:
        return next((c for c in setting.choices if c != setting.default), None)
    if setting.kind is bool:
        return str(not setting.default).lower()
    if setting.kind is int:
        for candidate in (setting.default + 1000, setting.default + 1, setting.default - 1):
            if (setting.minimum is None or candidate >= setting.minimum) and (
                    setting.maximum is None or candidate <= setting.maximum):
                return str(candidate)
    if setting.kind is float:
        candidate = setting.default / 2
        if setting.minimum is None or candidate >= setting.minimum:
            return str(candidate)
    return None


def test_synonym_table_matches_log_config_from():
    base = log_config_from(load_config(environ={})).to_kafka()
    observed: dict[str, str] = {}
    for setting in SETTINGS:
        value = _other_value(setting)
        if value is None:
            continue
        try:
            config = load_config(environ={}, overrides=[(setting.name, value)])
        except ConfigError:
            continue  # e.g. a cross-setting check refuses this lone change
        changed = {name for name, v in log_config_from(config).to_kafka().items() if base[name] != v}
        for topic_config in changed:
            assert topic_config not in observed, f"{topic_config} moves with two settings"
            observed[topic_config] = setting.name
    assert observed == TOPIC_CONFIG_SYNONYMS


def test_synonym_table_names_real_configs():
    names = {s.name for s in SETTINGS}
    assert set(TOPIC_CONFIG_SYNONYMS) <= set(TOPIC_CONFIGS)
    assert set(TOPIC_CONFIG_SYNONYMS.values()) <= names


def test_broker_entries_round_trip_through_the_settings_parsers():
    config = load_config(environ={}, overrides=[("num.partitions", "5"), ("auto.create.topics.enable", "false")])
    entries = {e.name: e for e in broker_config_entries(config)}
    assert list(entries) == [s.name for s in SETTINGS]
    for setting in SETTINGS:
        entry = entries[setting.name]
        assert setting.parse(entry.value, "test") == getattr(config, setting.attr)
        assert entry.read_only and not entry.is_sensitive and entry.documentation
        expected = ConfigSource.DEFAULT_CONFIG if getattr(config, setting.attr) == setting.default \
            else ConfigSource.STATIC_BROKER_CONFIG
        assert entry.source == expected, setting.name
    assert entries["num.partitions"].source == ConfigSource.STATIC_BROKER_CONFIG
    assert entries["auto.create.topics.enable"].value == "false"
    assert entries["auto.create.topics.enable"].config_type == ConfigType.BOOLEAN
    assert entries["message.max.bytes"].config_type == ConfigType.INT
    assert entries["log.retention.ms"].config_type == ConfigType.LONG
    assert entries["listeners"].config_type == ConfigType.STRING


@pytest.mark.parametrize("name,ok", [("orders", True), ("a.b_c-D9", True), ("x" * 249, True),
                                     ("x" * 250, False), ("", False), (".", False), ("a/b", False)])
def test_topic_name_rule(name, ok):
    assert (topic_name_error(name) is None) == ok

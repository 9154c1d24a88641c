"""Broker settings: Kafka names, four sources in order, clear errors."""

from __future__ import annotations

import pytest

from kafkito.broker.config import ConfigError, load_config, parse_set_flags


def test_defaults_follow_kafka_except_listed_differences():
    c = load_config(environ={})
    assert c.num_partitions == 1
    assert c.auto_create_topics_enable is True
    assert c.message_max_bytes == 1_048_588
    assert c.socket_request_max_bytes == 104_857_600
    assert c.group_initial_rebalance_delay_ms == 300
    assert c.listeners == "127.0.0.1:9092"
    assert c.log_dirs == "./kafkito-data"


def test_sources_in_order(tmp_path):
    toml = tmp_path / "k.toml"
    toml.write_text('"num.partitions" = 3\n[log]\n"retention.ms" = 1000\n"segment.bytes" = 2048\n')
    c = load_config(config_file=toml, environ={"KAFKITO_LOG_RETENTION_MS": "2000"},
                    overrides=parse_set_flags(["log.segment.bytes=4096"]))
    assert c.num_partitions == 3          # file
    assert c.log_retention_ms == 2000     # environment beats file
    assert c.log_segment_bytes == 4096    # --set beats both


@pytest.mark.parametrize("flag, message", [
    ("num.partitions=zero", "num.partitions: 'zero' is not a valid int"),
    ("num.partitions=0", "num.partitions: 0 is below the minimum 1"),
    ("no.such.setting=1", "unknown setting 'no.such.setting'"),
    ("log.cleanup.policy=shred", "log.cleanup.policy: 'shred' is not one of"),
    ("auto.create.topics.enable=maybe", "auto.create.topics.enable: 'maybe' is not a valid bool"),
    ("listeners=nowhere", "listeners: expected HOST:PORT"),
    ("justaname", "--set expects name=value"),
])
def test_bad_values_name_the_setting(flag, message):
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides=parse_set_flags([flag]))
    assert message in str(info.value)


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="KAFKITO_NUM_PARTITONS"):
        load_config(environ={"KAFKITO_NUM_PARTITONS": "3"})


def test_bad_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("num.partitions = = 3")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(config_file=bad, environ={})

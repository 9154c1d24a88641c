"""Internal topics keep what they hold (issue 10, finding 8).

AlterConfigs ``retention.ms=1`` on ``__consumer_offsets`` used to be accepted (and, the
legacy API replacing the whole override set, it dropped ``cleanup.policy=compact``); the
next retention pass deleted the committed offsets, which a restart then showed gone. Every
config path now refuses such configs with INVALID_CONFIG and a message naming the rule, and
a data directory an older kafkito let through is repaired at start-up.
"""

from __future__ import annotations

import time

import pytest
from e2e.raw import RawClient, commit_offset, committed_offset

from kafkito.broker.internal_topics import INTERNAL_RETENTION_MS_MIN
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages import alter_configs as ac
from kafkito.protocol.messages import create_topics as ct
from kafkito.protocol.messages import incremental_alter_configs as iac
from kafkito.storage import LogConfig, LogManager
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

OFFSETS = "__consumer_offsets"
TOPIC_RESOURCE = 2
SET, DELETE = 0, 1
# Retention runs often, so a config that would delete offsets does so within the test.
SETTINGS = {"log.retention.check.interval.ms": "50"}


def _alter(raw, configs: dict, validate_only=False):
    request = ac.AlterConfigsRequest(validate_only=validate_only, resources=[ac.AlterConfigsResource(
        resource_type=TOPIC_RESOURCE, resource_name=OFFSETS,
        configs=[ac.AlterableConfig(name=k, value=v) for k, v in configs.items()])])
    r = raw.call(ApiKey.ALTER_CONFIGS, 1, request).responses[0]
    return r.error_code, r.error_message


def _incremental(raw, ops: list[tuple[str, int, str | None]], validate_only=False):
    request = iac.IncrementalAlterConfigsRequest(validate_only=validate_only, resources=[
        iac.AlterConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=OFFSETS, configs=[
            iac.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in ops])])
    r = raw.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, request).responses[0]
    return r.error_code, r.error_message


def _commit_and_check(b, group: str, offset: int) -> None:
    b.create_topic("data")
    raw = RawClient(b.host, b.port)
    assert commit_offset(raw, group, "data", 0, offset) == ErrorCode.NONE
    raw.close()


def _committed(b, group: str) -> int:
    raw = RawClient(b.host, b.port)
    try:
        error, offset = committed_offset(raw, group, "data", 0)
        assert error == ErrorCode.NONE
        return offset
    finally:
        raw.close()


def test_raw_alter_configs_on_consumer_offsets_refused_with_the_rule_finding_8(tmp_path):
    with embedded_broker(tmp_path, settings=SETTINGS) as b:
        _commit_and_check(b, "g", 5)
        raw = RawClient(b.host, b.port)
        for validate_only in (True, False):
            code, message = _alter(raw, {"retention.ms": "1"}, validate_only)
            # The legacy API replaces the whole set: without cleanup.policy it would be delete.
            assert code == ErrorCode.INVALID_CONFIG and "cleanup.policy must be exactly 'compact'" in message
            code, message = _alter(raw, {"cleanup.policy": "compact", "retention.ms": "1"}, validate_only)
            assert code == ErrorCode.INVALID_CONFIG
            assert "retention.ms" in message and str(INTERNAL_RETENTION_MS_MIN) in message, message
            assert OFFSETS in message and "internal topic" in message
        assert _incremental(raw, [("cleanup.policy", SET, "delete")])[0] == ErrorCode.INVALID_CONFIG
        assert _incremental(raw, [("cleanup.policy", SET, "compact,delete")])[0] == ErrorCode.INVALID_CONFIG
        assert _incremental(raw, [("cleanup.policy", DELETE, None)])[0] == ErrorCode.INVALID_CONFIG
        code, message = _incremental(raw, [("retention.bytes", SET, "1048576")])
        assert code == ErrorCode.INVALID_CONFIG and "retention.bytes must be -1" in message
        code, message = _incremental(raw, [("segment.bytes", SET, "1024")])
        assert code == ErrorCode.INVALID_CONFIG and "segment.bytes must be at least 1048576" in message
        # What keeps the offsets is still allowed.
        assert _incremental(raw, [("retention.ms", SET, "-1")]) == (ErrorCode.NONE, None)
        assert _incremental(raw, [("retention.ms", SET, str(INTERNAL_RETENTION_MS_MIN))]) == (ErrorCode.NONE, None)
        # An ordinary topic is not constrained.
        request = iac.IncrementalAlterConfigsRequest(validate_only=True, resources=[iac.AlterConfigsResource(
            resource_type=TOPIC_RESOURCE, resource_name="data",
            configs=[iac.AlterableConfig(name="retention.ms", config_operation=SET, value="1")])])
        assert raw.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, request).responses[0].error_code == ErrorCode.NONE
        # CreateTopics naming an internal topic is refused outright (__transaction_state
        # exists from the start now, so a name the broker has not created: Kafka's metadata topic).
        request = ct.CreateTopicsRequest(timeout_ms=5000, validate_only=True, topics=[ct.CreatableTopic(
            name="__cluster_metadata", num_partitions=1, replication_factor=1, assignments=[],
            configs=[ct.CreatableTopicConfig(name="cleanup.policy", value="delete")])])
        assert raw.call(ApiKey.CREATE_TOPICS, 5, request).topics[0].error_code == ErrorCode.INVALID_REQUEST
        raw.close()
        assert b.broker.state.logs.topic_config(OFFSETS).cleanup_policy == ("compact",)
        time.sleep(0.3)  # several retention passes
        assert _committed(b, "g") == 5
    with embedded_broker(tmp_path) as b:
        assert _committed(b, "g") == 5


def test_real_admin_clients_get_invalid_config(tmp_path):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KPConfigResource
    from kafka.admin import ConfigResourceType

    with embedded_broker(tmp_path, settings=SETTINGS) as b:
        _commit_and_check(b, "g", 7)
        kp = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers)
        try:
            result = kp.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, OFFSETS,
                                                        configs={"retention.ms": "1"})],
                                      raise_on_unknown=False)["topic"][OFFSETS]
        finally:
            kp.close()
        assert result != "OK" and f"[Error {ErrorCode.INVALID_CONFIG.value}]" in result, result

        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        resource = ConfigResource(ResourceType.TOPIC, OFFSETS, incremental_configs=[
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
        [future] = admin.incremental_alter_configs([resource]).values()
        with pytest.raises(KafkaException) as info:
            future.result(timeout=15)
        error = info.value.args[0]
        assert error.code() == ErrorCode.INVALID_CONFIG
        assert "cleanup.policy" in error.str()
        time.sleep(0.3)
        assert _committed(b, "g") == 7
    with embedded_broker(tmp_path) as b:
        assert _committed(b, "g") == 7


def test_offsets_topic_altered_by_an_older_kafkito_is_repaired_at_start(tmp_path):
    with embedded_broker(tmp_path) as b:
        _commit_and_check(b, "g", 9)
    # What the old AlterConfigs stored: the whole override set replaced by retention.ms=1.
    with LogManager(tmp_path, LogConfig()) as logs:
        logs.alter_topic_configs(OFFSETS, {"retention.ms": "1"})
    for _ in range(2):  # the repair is persisted: a second restart still finds the offsets
        with embedded_broker(tmp_path, settings=SETTINGS) as b:
            config = b.broker.state.logs.topic_config(OFFSETS)
            assert config.cleanup_policy == ("compact",) and config.retention_ms != 1
            time.sleep(0.3)
            assert _committed(b, "g") == 9

"""The admin APIs through the three real admin clients, against a running kafkito.

confluent_kafka.admin.AdminClient (librdkafka), kafka.admin.KafkaAdminClient and
aiokafka.admin.AIOKafkaAdminClient each drive the same checks through a small adapter
that reduces their answers to plain values and Kafka error names. Every test asserts on
what comes back (partition counts, config values and sources, low watermarks, error
names) and, where the API promises an effect, on the effect (the log's live config,
what a consumer reads).

The module's broker runs retention every 200 ms (``log.retention.check.interval.ms``)
so that an altered ``retention.ms`` visibly deletes data within a test.
"""

from __future__ import annotations

import asyncio
import time
import types

import pytest
from e2e.clients import CLIENTS, CONSUMERS, PRODUCERS, Msg

from kafkito.protocol import ErrorCode
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

TOPIC_CONFIG_SOURCE = 1  # Kafka's DYNAMIC_TOPIC_CONFIG
STATIC_BROKER_CONFIG_SOURCE = 4
DEFAULT_CONFIG_SOURCE = 5
TIMEOUT_S = 15


# -- one adapter per client: plain values in, plain values and error names out ---------
class ConfluentAdmin:
    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    @staticmethod
    def _outcome(future):
        from confluent_kafka import KafkaException

        try:
            return None, future.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0]  # librdkafka's names differ (UNKNOWN_TOPIC_OR_PART): use the code
            return (ErrorCode(error.code()).name if error.code() > 0 else error.name()), None

    def create(self, name, partitions=1, rf=1, configs=None):
        from confluent_kafka.admin import NewTopic

        topic = NewTopic(name, num_partitions=partitions, replication_factor=rf, config=configs or {})
        return self._outcome(self.admin.create_topics([topic], request_timeout=TIMEOUT_S)[name])[0]

    def delete(self, name):
        return self._outcome(self.admin.delete_topics([name], request_timeout=TIMEOUT_S)[name])[0]

    def partitions(self, name):
        from confluent_kafka import TopicCollection

        error, description = self._outcome(self.admin.describe_topics(TopicCollection([name]))[name])
        return error if error else [len(p.replicas) for p in description.partitions]

    def listed(self, name):
        # DescribeTopics never auto-creates; the error is how librdkafka says "absent".
        return isinstance(self.partitions(name), list)

    def grow(self, name, count):
        from confluent_kafka.admin import NewPartitions

        return self._outcome(self.admin.create_partitions([NewPartitions(name, count)])[name])[0]

    def configs(self, name, kind="TOPIC"):
        from confluent_kafka.admin import ConfigResource, ResourceType

        [future] = self.admin.describe_configs([ConfigResource(ResourceType[kind], name)]).values()
        error, entries = self._outcome(future)
        return error if error else {k: (e.value, e.source) for k, e in entries.items()}

    def alter(self, name, configs, kind="TOPIC"):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
        resource = ConfigResource(ResourceType[kind], name, incremental_configs=entries)
        [future] = self.admin.incremental_alter_configs([resource]).values()
        return self._outcome(future)[0]

    def delete_records(self, name, partition, offset):
        from confluent_kafka import TopicPartition

        [future] = self.admin.delete_records([TopicPartition(name, partition, offset)]).values()
        error, deleted = self._outcome(future)
        return error if error else deleted.low_watermark

    def close(self):
        pass


class KafkaPythonAdmin:
    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaAdminClient

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)

    @staticmethod
    def _name(code: int):
        return None if code == 0 else ErrorCode(code).name

    def create(self, name, partitions=1, rf=1, configs=None):
        spec = {"num_partitions": partitions, "replication_factor": rf, "configs": configs or {}}
        [topic] = self.admin.create_topics({name: spec}, raise_errors=False)["topics"]
        return self._name(topic["error_code"])

    def delete(self, name):
        [topic] = self.admin.delete_topics([name], raise_errors=False)["topics"]
        return self._name(topic["error_code"])

    def partitions(self, name):
        [topic] = self.admin.describe_topics([name])
        if topic["error_code"]:
            return self._name(topic["error_code"])
        return [len(p["replica_nodes"]) for p in topic["partitions"]]

    def listed(self, name):
        return name in self.admin.list_topics()

    def grow(self, name, count):
        [result] = self.admin.create_partitions({name: count}, raise_errors=False).results
        return self._name(result.error_code)

    def configs(self, name, kind="TOPIC"):
        from kafka.admin import ConfigResource, ConfigResourceType

        described = self.admin.describe_configs([ConfigResource(ConfigResourceType[kind], name)],
                                                config_filter="all")
        entries = described.get(kind.lower(), {}).get(name, {})
        sources = {"DYNAMIC_TOPIC_CONFIG": 1, "STATIC_BROKER_CONFIG": 4, "DEFAULT_CONFIG": 5}
        return {k: (e["value"], sources.get(e["config_source"], e["config_source"])) for k, e in entries.items()}

    def alter(self, name, configs, kind="TOPIC"):
        from kafka.admin import ConfigResource, ConfigResourceType

        result = self.admin.alter_configs([ConfigResource(ConfigResourceType[kind], name, configs=dict(configs))],
                                          raise_on_unknown=False)[kind.lower()][name]
        if result == "OK":
            return None
        return next(code.name for code in ErrorCode if f"[Error {code.value}]" in result)

    def delete_records(self, name, partition, offset):
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        tp = TopicPartition(name, partition)
        try:
            return self.admin.delete_records({tp: offset})[tp]["low_watermark"]
        except KafkaError as exc:
            return ErrorCode(exc.errno).name

    def close(self):
        self.admin.close()


class AiokafkaAdmin:
    """aiokafka is asyncio-only: one private event loop per adapter runs its calls."""

    def __init__(self, bootstrap: str) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        self.loop = asyncio.new_event_loop()

        async def start():
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
            await admin.start()
            return admin

        self.admin = self.run(start())

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT_S))

    @staticmethod
    def _name(code: int):
        return None if code == 0 else ErrorCode(code).name

    def create(self, name, partitions=1, rf=1, configs=None):
        from aiokafka.admin import NewTopic

        response = self.run(self.admin.create_topics([NewTopic(name, partitions, rf, topic_configs=configs or {})]))
        [(_, code, *_)] = response.topic_errors
        return self._name(code)

    def delete(self, name):
        [(_, code, *_)] = self.run(self.admin.delete_topics([name])).topic_error_codes
        return self._name(code)

    def partitions(self, name):
        [topic] = self.run(self.admin.describe_topics([name]))
        if topic["error_code"]:
            return self._name(topic["error_code"])
        return [len(p["replicas"]) for p in topic["partitions"]]

    def listed(self, name):
        # Not describe_topics: its Metadata request auto-creates a missing topic.
        return name in self.run(self.admin.list_topics())

    def grow(self, name, count):
        from aiokafka.admin import NewPartitions
        from aiokafka.errors import KafkaError

        try:
            self.run(self.admin.create_partitions({name: NewPartitions(count)}))
        except KafkaError as exc:
            return ErrorCode(exc.errno).name
        return None

    def configs(self, name, kind="TOPIC"):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        [response] = self.run(self.admin.describe_configs([ConfigResource(ConfigResourceType[kind], name)]))
        [(code, _, _, _, entries)] = response.resources
        if code:
            return self._name(code)
        # DescribeConfigs v1+ entries: (name, value, read_only, config_source, is_sensitive, synonyms)
        return {e[0]: (e[1], e[3]) for e in entries}

    def alter(self, name, configs, kind="TOPIC"):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        responses = self.run(self.admin.alter_configs(
            [ConfigResource(ConfigResourceType[kind], name, configs=dict(configs))]))
        [(code, *_)] = [r for response in responses for r in response.resources]
        return self._name(code)

    def delete_records(self, name, partition, offset):
        from aiokafka import TopicPartition
        from aiokafka.admin import RecordsToDelete
        from aiokafka.errors import KafkaError

        tp = TopicPartition(name, partition)
        try:
            return self.run(self.admin.delete_records({tp: RecordsToDelete(offset)}))[tp]
        except KafkaError as exc:
            return ErrorCode(exc.errno).name

    def close(self):
        self.run(self.admin.close())
        self.loop.close()


ADMINS = {"confluent": ConfluentAdmin, "kafka-python": KafkaPythonAdmin, "aiokafka": AiokafkaAdmin}
assert set(ADMINS) == set(CLIENTS)


@pytest.fixture(scope="module")
def kbroker(tmp_path_factory):
    settings = {"log.retention.check.interval.ms": 200}
    with embedded_broker(tmp_path_factory.mktemp("kafkito-admin"), settings=settings) as running:
        yield running


@pytest.fixture(params=CLIENTS)
def admin(request, kbroker):
    adapter = ADMINS[request.param](kbroker.bootstrap_servers)
    adapter.client = request.param
    yield adapter
    adapter.close()


def produce(client, kbroker, topic, msgs):
    # kafka-python 3 turns idempotence on by default, which needs InitProducerId; these
    # tests are about admin effects, not idempotence, so ask for plain acks=all produce.
    extra = {"enable_idempotence": False} if client == "kafka-python" else None
    return PRODUCERS[client](kbroker.bootstrap_servers, topic, msgs, extra=extra)


def broker_logs(kbroker):
    return kbroker.broker.state.logs


# ------------------------------------------------------------------------------- tests
def test_topic_lifecycle(kbroker, admin, topic_name):
    assert admin.create(topic_name, 3, configs={"retention.ms": "3600000"}) is None
    assert admin.listed(topic_name)
    assert admin.partitions(topic_name) == [1, 1, 1]
    value, source = admin.configs(topic_name)["retention.ms"]
    assert (value, source) == ("3600000", TOPIC_CONFIG_SOURCE)
    assert admin.create(topic_name, 3) == "TOPIC_ALREADY_EXISTS"
    assert admin.delete(topic_name) is None
    assert broker_logs(kbroker).topic(topic_name) is None
    assert not admin.listed(topic_name)
    assert admin.delete(topic_name) == "UNKNOWN_TOPIC_OR_PARTITION"


def test_create_partitions(kbroker, admin, topic_name):
    assert admin.create(topic_name, 1) is None
    assert admin.grow(topic_name, 3) is None
    assert admin.partitions(topic_name) == [1, 1, 1]
    assert admin.grow(topic_name, 2) == "INVALID_PARTITIONS"
    assert broker_logs(kbroker).topic(topic_name).num_partitions == 3


def test_alter_configs_round_trip_and_take_effect(kbroker, admin, topic_name):
    assert admin.create(topic_name, 1) is None
    before = admin.configs(topic_name)
    assert before["retention.ms"][0] == "604800000" and before["cleanup.policy"][0] == "delete"
    assert admin.alter(topic_name, {"retention.ms": "3600000", "cleanup.policy": "compact"}) is None
    after = admin.configs(topic_name)
    assert after["retention.ms"] == ("3600000", TOPIC_CONFIG_SOURCE)
    assert after["cleanup.policy"] == ("compact", TOPIC_CONFIG_SOURCE)
    live = broker_logs(kbroker).log(topic_name, 0).config
    assert live.retention_ms == 3600000 and live.cleanup_policy == ("compact",)
    assert admin.alter(topic_name, {"retention.ms": "soon"}) == "INVALID_CONFIG"
    assert admin.configs(topic_name)["retention.ms"][0] == "3600000"


def test_broker_configs_are_described_and_static(kbroker, admin):
    configs = admin.configs("0", "BROKER")
    assert configs["log.retention.check.interval.ms"] == ("200", STATIC_BROKER_CONFIG_SOURCE)
    assert configs["num.partitions"] == ("1", DEFAULT_CONFIG_SOURCE)
    assert admin.alter("0", {"num.partitions": "3"}, "BROKER") == "INVALID_REQUEST"
    assert admin.configs("0", "BROKER")["num.partitions"][0] == "1"


def test_invalid_config_on_create_is_invalid_config(kbroker, admin, topic_name):
    assert admin.create(topic_name, 1, configs={"cleanup.policy": "shred"}) == "INVALID_CONFIG"
    assert admin.create(topic_name, 1, configs={"no.such.config": "1"}) == "INVALID_CONFIG"
    assert broker_logs(kbroker).topic(topic_name) is None


def test_replication_factor_three_is_accepted_as_one_replica(kbroker, admin, topic_name):
    assert admin.create(topic_name, 2, rf=3) is None
    assert admin.partitions(topic_name) == [1, 1]


@pytest.mark.parametrize("client", CLIENTS)
def test_strict_replication_factor_rejects_three(tmp_path, client):
    with embedded_broker(tmp_path, settings={"strict.replication.factor": "true"}) as strict:
        admin = ADMINS[client](strict.bootstrap_servers)
        try:
            assert admin.create("rf3", 1, rf=3) == "INVALID_REPLICATION_FACTOR"
            assert strict.broker.state.logs.topic("rf3") is None
            assert admin.create("rf1", 1, rf=1) is None
        finally:
            admin.close()


def test_delete_records_moves_the_start_consumers_see(kbroker, admin, topic_name):
    assert admin.create(topic_name, 1) is None
    msgs = [Msg(b"k%d" % i, b"v%d" % i) for i in range(10)]
    assert produce(admin.client, kbroker, topic_name, msgs) == list(range(10))
    assert admin.delete_records(topic_name, 0, 4) == 4
    assert broker_logs(kbroker).log(topic_name, 0).log_start_offset == 4
    assert admin.delete_records(topic_name, 0, 11) == "OFFSET_OUT_OF_RANGE"
    # Reading from 0 is now out of range: the consumer resets to the new start (earliest).
    seen = CONSUMERS[admin.client](kbroker.bootstrap_servers, topic_name, 0, 0, 6)
    assert [(s.offset, s.value) for s in seen] == [(i, b"v%d" % i) for i in range(4, 10)]


def test_altered_retention_deletes_old_segments(kbroker, topic_name):
    admin = AiokafkaAdmin(kbroker.bootstrap_servers)  # the legacy AlterConfigs path
    try:
        assert admin.create(topic_name, 1, configs={"segment.bytes": "1024"}) is None
        for i in range(5):  # one batch each: every batch rolls a new ~700-byte segment
            produce("confluent", kbroker, topic_name, [Msg(b"k", b"x" * 640 + bytes([i]))])
        plog = broker_logs(kbroker).log(topic_name, 0)
        assert plog.log_start_offset == 0
        assert admin.alter(topic_name, {"segment.bytes": "1024", "retention.ms": "1"}) is None
        deadline = time.monotonic() + 10
        while plog.log_start_offset == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert plog.log_start_offset > 0  # the next retention pass used the new retention.ms
    finally:
        admin.close()


def test_describe_cluster_kafka_python(kbroker):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kbroker.bootstrap_servers)
    try:
        cluster = admin.describe_cluster()  # DescribeCluster (key 60), advertised by kafkito
    finally:
        admin.close()
    assert cluster["cluster_id"] == kbroker.broker.state.cluster_id
    assert cluster["controller_id"] == 0
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
        (0, kbroker.host, kbroker.port)]


def test_offset_for_leader_epoch_validates_a_librdkafka_position(kbroker, topic_name):
    """librdkafka validates a position that carries a leader epoch (KIP-320) before fetching."""
    from confluent_kafka import Consumer, TopicPartition

    state = kbroker.broker.state
    real = state.handlers[23]
    answers = []

    async def recording(ctx, request):
        response = await real.handle(ctx, request)
        answers.append([(p.error_code, p.leader_epoch, p.end_offset) for t in response.topics for p in t.partitions])
        return response

    ConfluentAdmin(kbroker.bootstrap_servers).create(topic_name, 1)
    produce("confluent", kbroker, topic_name, [Msg(None, b"v%d" % i) for i in range(10)])
    state.handlers[23] = types.SimpleNamespace(MIN_VERSION=real.MIN_VERSION, MAX_VERSION=real.MAX_VERSION,
                                               handle=recording)
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap_servers, "group.id": "ole",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 3, leader_epoch=0)])
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 7 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                seen.append(m.offset())
    finally:
        consumer.close()
        state.handlers[23] = real
    assert answers and answers[0] == [(ErrorCode.NONE, 0, 10)]
    assert seen == list(range(3, 10))

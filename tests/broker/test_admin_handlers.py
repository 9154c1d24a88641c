"""The admin API handlers against a real LogManager, through the real codec.

Each call encodes the request at the version under test, decodes it as the broker does,
runs the handler in trio and decodes the encoded response, so version-dependent fields
(v5+ CreateTopics configs, v6 DeleteTopics ids, v3 config types) are checked as a client
would see them. Assertions read both the response and the broker's state afterwards.
"""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing

from kafkito.broker.context import RequestContext
from kafkito.protocol import (
    ApiKey,
    ErrorCode,
    decode_request,
    decode_response,
    encode_request,
    encode_response_bytes,
)
from kafkito.protocol.messages import alter_configs as AC
from kafkito.protocol.messages import create_partitions as CP
from kafkito.protocol.messages import create_topics as CT
from kafkito.protocol.messages import delete_records as DR
from kafkito.protocol.messages import delete_topics as DT
from kafkito.protocol.messages import describe_cluster as DC
from kafkito.protocol.messages import describe_configs as DCF
from kafkito.protocol.messages import incremental_alter_configs as IAC
from kafkito.protocol.messages import offset_for_leader_epoch as OLE
from kafkito.records import build_batch

ZERO = uuid.UUID(int=0)
TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def call(state, api_key: ApiKey, version: int, request):
    """Request -> wire -> handler -> wire -> response, as a client at ``version`` sees it."""
    handler = state.handlers[api_key]
    assert handler.MIN_VERSION <= version <= handler.MAX_VERSION
    frame = encode_request(api_key, version, 7, "test", request)
    header, decoded = decode_request(frame[4:])
    response = trio.run(handler.handle, RequestContext(header, state), decoded)
    correlation_id, body = decode_response(api_key, version, encode_response_bytes(api_key, version, 7, response)[4:])
    assert correlation_id == 7
    return body


def create(state, name, partitions=1, rf=1, configs=None, *, version=7, validate_only=False,
           assignments=None):
    topic = CT.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=rf,
        assignments=[CT.CreatableReplicaAssignment(partition_index=i, broker_ids=ids)
                     for i, ids in (assignments or [])],
        configs=[CT.CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])
    body = call(state, ApiKey.CREATE_TOPICS, version,
                CT.CreateTopicsRequest(topics=[topic], timeout_ms=1000, validate_only=validate_only))
    assert len(body.topics) == 1
    return body.topics[0]


def produce(state, topic, partition, count):
    records = [(b"k%d" % i, b"v%d" % i, [], 1_700_000_000_000 + i) for i in range(count)]

    async def append_durably():
        st, info = state.partitions.append_nowait(topic, partition, build_batch(records), schedule_flush=False)
        await state.partitions.flush_to(st, info.last_offset + 1)

    trio.run(append_durably)


# ------------------------------------------------------------------------ CreateTopics
def test_create_topics_v7_reports_id_partitions_factor_and_configs(state):
    result = create(state, "orders", 3, configs={"retention.ms": "3600000"})
    assert result.error_code == ErrorCode.NONE and result.error_message is None
    meta = state.logs.topic("orders")
    assert meta.num_partitions == 3 and meta.configs == {"retention.ms": "3600000"}
    assert result.topic_id == meta.topic_id != ZERO
    assert (result.num_partitions, result.replication_factor) == (3, 1)
    configs = {c.name: c for c in result.configs}
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].config_source == TOPIC_CONFIG
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].config_source == DEFAULT_CONFIG
    assert not any(c.read_only or c.is_sensitive for c in result.configs)
    assert [state.logs.log("orders", p) is not None for p in range(3)] == [True] * 3


def test_create_topics_v4_has_no_v5_fields(state):
    result = create(state, "old-client", 2, version=4)
    assert result.error_code == ErrorCode.NONE
    assert state.logs.topic("old-client").num_partitions == 2
    assert result.num_partitions == -1 and result.configs is None  # not on the wire before v5


def test_create_topics_minus_one_uses_broker_defaults(make_state):
    state = make_state(num_partitions=4)
    result = create(state, "defaults", -1, -1)
    assert result.error_code == ErrorCode.NONE
    assert result.num_partitions == 4 == state.logs.topic("defaults").num_partitions


def test_replication_factor_above_one_is_stored_as_one_replica(state, caplog):
    result = create(state, "three-replicas", 2, rf=3)
    assert result.error_code == ErrorCode.NONE
    assert result.replication_factor == 1
    assert state.logs.topic("three-replicas").num_partitions == 2
    assert "replication factor 3" in caplog.text


@pytest.mark.parametrize("rf,default_rf", [(3, 1), (-1, 3)])
def test_strict_replication_factor_rejects_as_one_broker_kafka(make_state, rf, default_rf):
    state = make_state(strict_replication_factor="true", default_replication_factor=default_rf)
    result = create(state, "strict", 1, rf=rf)
    assert result.error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert "only 1 broker" in result.error_message
    assert state.logs.topic("strict") is None
    assert create(state, "strict-ok", 1, rf=1).error_code == ErrorCode.NONE


@pytest.mark.parametrize("partitions,rf,code", [
    (0, 1, ErrorCode.INVALID_PARTITIONS),
    (-2, 1, ErrorCode.INVALID_PARTITIONS),
    (1, 0, ErrorCode.INVALID_REPLICATION_FACTOR),
    (1, -2, ErrorCode.INVALID_REPLICATION_FACTOR),
    (200_000, 1, ErrorCode.POLICY_VIOLATION),  # max.partitions.per.request, Kafka's 10,000
])
def test_create_topics_rejects_bad_counts(state, partitions, rf, code):
    assert create(state, "bad-counts", partitions, rf).error_code == code
    assert state.logs.topic("bad-counts") is None


def test_create_topics_above_the_per_topic_cap_is_invalid_partitions(make_state):
    state = make_state(max_partitions_per_request=1_000_000)
    result = create(state, "too-big", 200_000)
    assert result.error_code == ErrorCode.INVALID_PARTITIONS
    assert "100000" in result.error_message
    assert state.logs.topic("too-big") is None


@pytest.mark.parametrize("name", ["", ".", "..", "has space", "slash/name", "x" * 250, "ünïcode"])
def test_create_topics_rejects_illegal_names(state, name):
    result = create(state, name)
    assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert result.error_message
    assert state.logs.topics() == []


def test_create_topics_rejects_names_colliding_on_dot_and_underscore(state):
    assert create(state, "a_b").error_code == ErrorCode.NONE
    result = create(state, "a.b")
    assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION and "a_b" in result.error_message
    assert create(state, "a.b", validate_only=True).error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_create_existing_topic_is_topic_already_exists(state):
    assert create(state, "twice").error_code == ErrorCode.NONE
    topic_id = state.logs.topic("twice").topic_id
    result = create(state, "twice", 5)
    assert result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    assert state.logs.topic("twice").num_partitions == 1 and state.logs.topic("twice").topic_id == topic_id


def test_create_internal_name_is_refused(state):
    result = create(state, "__my_internal")
    assert result.error_code == ErrorCode.INVALID_REQUEST
    assert state.logs.topic("__my_internal") is None


def test_create_topics_duplicate_name_in_one_request(state):
    topics = [CT.CreatableTopic(name=n, num_partitions=1, replication_factor=1) for n in ("dup", "dup", "single")]
    body = call(state, ApiKey.CREATE_TOPICS, 7, CT.CreateTopicsRequest(topics=topics))
    assert [(t.name, t.error_code) for t in body.topics] == [
        ("dup", ErrorCode.INVALID_REQUEST), ("single", ErrorCode.NONE)]
    assert state.logs.topic("dup") is None


@pytest.mark.parametrize("configs,needle", [
    ({"retention.ms": "soon"}, "retention.ms"),
    ({"cleanup.policy": "shred"}, "cleanup.policy"),
    ({"min.cleanable.dirty.ratio": "1.5"}, "min.cleanable.dirty.ratio"),
    ({"no.such.config": "1"}, "no.such.config"),
    ({"retention.ms": None}, "retention.ms"),
])
def test_create_topics_invalid_config_is_invalid_config_with_message(state, configs, needle):
    for validate_only in (True, False):
        result = create(state, "bad-config", configs=configs, validate_only=validate_only)
        assert result.error_code == ErrorCode.INVALID_CONFIG
        assert needle in result.error_message
    assert state.logs.topic("bad-config") is None


def test_create_topics_validate_only_creates_nothing(state):
    result = create(state, "dry-run", 4, rf=3, configs={"cleanup.policy": "compact"}, validate_only=True)
    assert result.error_code == ErrorCode.NONE
    assert result.topic_id == ZERO and result.num_partitions == 4
    assert {c.name: c.value for c in result.configs}["cleanup.policy"] == "compact"
    assert state.logs.topic("dry-run") is None


def test_create_topics_manual_assignment_for_this_node(state):
    result = create(state, "manual", -1, -1, assignments=[(0, [0]), (1, [0])])
    assert result.error_code == ErrorCode.NONE
    assert state.logs.topic("manual").num_partitions == 2


@pytest.mark.parametrize("partitions,rf,assignments,code", [
    (-1, -1, [(0, [0, 1])], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (-1, -1, [(0, [5])], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (-1, -1, [(0, [])], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (-1, -1, [(0, [0]), (2, [0])], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (-1, -1, [(0, [0]), (0, [0])], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (2, -1, [(0, [0]), (1, [0])], ErrorCode.INVALID_REQUEST),
    (-1, 1, [(0, [0])], ErrorCode.INVALID_REQUEST),
])
def test_create_topics_rejects_bad_assignments(state, partitions, rf, assignments, code):
    assert create(state, "manual-bad", partitions, rf, assignments=assignments).error_code == code
    assert state.logs.topic("manual-bad") is None


def test_create_topics_reports_broker_supplied_defaults(make_state):
    state = make_state(log_retention_ms=1234)
    configs = {c.name: c for c in create(state, "broker-default").configs}
    assert configs["retention.ms"].value == "1234"
    assert configs["retention.ms"].config_source == STATIC_BROKER_CONFIG
    assert state.logs.log("broker-default", 0).config.retention_ms == 1234


# ------------------------------------------------------------------------ DeleteTopics
def test_delete_topics_v1_by_name(state):
    create(state, "gone", 2)
    body = call(state, ApiKey.DELETE_TOPICS, 1, DT.DeleteTopicsRequest(topic_names=["gone", "never"]))
    assert [(r.name, r.error_code) for r in body.responses] == [
        ("gone", ErrorCode.NONE), ("never", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert state.logs.topic("gone") is None and state.logs.log("gone", 0) is None


def test_delete_topics_v6_by_id_and_name(state):
    create(state, "by-id")
    create(state, "by-name")
    topic_id = state.logs.topic("by-id").topic_id
    unknown = uuid.uuid4()
    body = call(state, ApiKey.DELETE_TOPICS, 6, DT.DeleteTopicsRequest(topics=[
        DT.DeleteTopicState(name=None, topic_id=topic_id),
        DT.DeleteTopicState(name="by-name"),
        DT.DeleteTopicState(name=None, topic_id=unknown),
        DT.DeleteTopicState(name="x", topic_id=unknown),
    ]))
    got = [(r.name, r.topic_id, r.error_code) for r in body.responses]
    assert got[0] == ("by-id", topic_id, ErrorCode.NONE)
    assert got[1][0] == "by-name" and got[1][2] == ErrorCode.NONE and got[1][1] != ZERO
    assert got[2] == (None, unknown, ErrorCode.UNKNOWN_TOPIC_ID)
    assert got[3][2] == ErrorCode.INVALID_REQUEST
    assert state.logs.topics() == []


def test_delete_topics_duplicates_are_invalid_request(state):
    create(state, "dup-del")
    body = call(state, ApiKey.DELETE_TOPICS, 5, DT.DeleteTopicsRequest(topic_names=["dup-del", "dup-del"]))
    assert [(r.name, r.error_code) for r in body.responses] == [("dup-del", ErrorCode.INVALID_REQUEST)]
    assert state.logs.topic("dup-del") is not None


def test_internal_topic_cannot_be_deleted(state):
    state.partitions.ensure_internal_topic("__consumer_offsets", 1, {"cleanup.policy": "compact"})
    body = call(state, ApiKey.DELETE_TOPICS, 6,
                DT.DeleteTopicsRequest(topics=[DT.DeleteTopicState(name="__consumer_offsets")]))
    assert body.responses[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert state.logs.topic("__consumer_offsets") is not None


@pytest.mark.parametrize("version,code", [(2, ErrorCode.INVALID_REQUEST), (3, ErrorCode.TOPIC_DELETION_DISABLED)])
def test_delete_topic_disabled(make_state, version, code):
    state = make_state(delete_topic_enable="false")
    create(state, "kept")
    body = call(state, ApiKey.DELETE_TOPICS, version, DT.DeleteTopicsRequest(topic_names=["kept"]))
    assert body.responses[0].error_code == code
    assert state.logs.topic("kept") is not None


def test_delete_topics_wakes_waiting_fetches(state):
    create(state, "watched")
    handler = state.handlers[ApiKey.DELETE_TOPICS]
    header = decode_request(encode_request(ApiKey.DELETE_TOPICS, 5, 1, "t", DT.DeleteTopicsRequest())[4:])[0]
    woke_at = []

    async def main():
        st = state.partitions.state("watched", 0)

        async def fetch_waiting():
            await state.partitions.wait_for_change([st], trio.current_time() + 500)
            woke_at.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch_waiting)
            await trio.sleep(10)
            await handler.handle(RequestContext(header, state), DT.DeleteTopicsRequest(topic_names=["watched"]))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert woke_at and woke_at[0] < 11  # woken by the delete, not by its 500 s deadline


# -------------------------------------------------------------------- CreatePartitions
def grow(state, name, count, *, assignments=None, validate_only=False, version=3):
    topic = CP.CreatePartitionsTopic(
        name=name, count=count,
        assignments=None if assignments is None else [CP.CreatePartitionsAssignment(broker_ids=a) for a in assignments])
    body = call(state, ApiKey.CREATE_PARTITIONS, version,
                CP.CreatePartitionsRequest(topics=[topic], timeout_ms=1000, validate_only=validate_only))
    return body.results[0]


def test_create_partitions_grows_the_topic(state):
    create(state, "growing", 1)
    result = grow(state, "growing", 3, version=0)
    assert result.error_code == ErrorCode.NONE
    assert state.logs.topic("growing").num_partitions == 3
    assert state.logs.log("growing", 2) is not None


@pytest.mark.parametrize("count,needle", [(2, "already has 2"), (1, "higher than the requested 1")])
def test_create_partitions_must_increase(state, count, needle):
    create(state, "fixed", 2)
    result = grow(state, "fixed", count)
    assert result.error_code == ErrorCode.INVALID_PARTITIONS and needle in result.error_message
    assert state.logs.topic("fixed").num_partitions == 2


def test_create_partitions_validate_only_and_unknown(state):
    create(state, "dry", 1)
    assert grow(state, "dry", 5, validate_only=True).error_code == ErrorCode.NONE
    assert state.logs.topic("dry").num_partitions == 1
    assert grow(state, "missing", 5).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_create_partitions_assignments(state):
    create(state, "assigned", 1)
    assert grow(state, "assigned", 3, assignments=[[1], [0]]).error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert grow(state, "assigned", 3, assignments=[[0]]).error_code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert grow(state, "assigned", 3, assignments=[[0], [0]]).error_code == ErrorCode.NONE
    assert state.logs.topic("assigned").num_partitions == 3


def test_create_partitions_internal_and_duplicates(state):
    state.partitions.ensure_internal_topic("__consumer_offsets", 1, {})
    assert grow(state, "__consumer_offsets", 4).error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    create(state, "twice-grown")
    body = call(state, ApiKey.CREATE_PARTITIONS, 3, CP.CreatePartitionsRequest(topics=[
        CP.CreatePartitionsTopic(name="twice-grown", count=2), CP.CreatePartitionsTopic(name="twice-grown", count=3)]))
    assert [(r.name, r.error_code) for r in body.results] == [("twice-grown", ErrorCode.INVALID_REQUEST)]
    assert state.logs.topic("twice-grown").num_partitions == 1


# ------------------------------------------------------------------ partition limits
def test_create_topics_over_max_partitions_per_request_fails_every_topic(make_state):
    state = make_state(max_partitions_per_request=10)
    topics = [CT.CreatableTopic(name=n, num_partitions=6, replication_factor=1) for n in ("p", "q")]
    body = call(state, ApiKey.CREATE_TOPICS, 7, CT.CreateTopicsRequest(topics=topics, timeout_ms=1000))
    assert [(t.name, t.error_code) for t in body.topics] == [
        ("p", ErrorCode.POLICY_VIOLATION), ("q", ErrorCode.POLICY_VIOLATION)]
    assert "12 requested" in body.topics[0].error_message
    assert state.logs.topics() == []
    assert create(state, "p", 10).error_code == ErrorCode.NONE  # at the limit is fine


def test_create_topics_past_max_partitions_is_policy_violation(make_state):
    state = make_state(max_partitions=5)
    assert create(state, "first", 4).error_code == ErrorCode.NONE
    result = create(state, "second", 2)
    assert result.error_code == ErrorCode.POLICY_VIOLATION
    assert "max.partitions=5" in result.error_message
    assert state.logs.topic("second") is None
    assert grow(state, "first", 6).error_code == ErrorCode.POLICY_VIOLATION
    assert grow(state, "first", 5).error_code == ErrorCode.NONE


def test_create_partitions_over_max_partitions_per_request(make_state):
    state = make_state(max_partitions_per_request=10)
    create(state, "g", 1)
    result = grow(state, "g", 12)
    assert result.error_code == ErrorCode.POLICY_VIOLATION
    assert "max.partitions.per.request" in result.error_message
    assert state.logs.topic("g").num_partitions == 1
    assert grow(state, "g", 11).error_code == ErrorCode.NONE


def test_metadata_auto_creates_at_most_the_bound_and_answers_the_rest_retriably(make_state):
    from kafkito.protocol.messages import metadata as MD

    state = make_state(auto_create_topics_max_per_request=3)
    names = ["m1", "m2", "m2", "m3", "m4", "m5"]
    request = MD.MetadataRequest(topics=[MD.MetadataRequestTopic(name=n) for n in names],
                                 allow_auto_topic_creation=True)
    body = call(state, ApiKey.METADATA, 12, request)
    assert [(t.name, t.error_code) for t in body.topics] == [
        ("m1", ErrorCode.NONE), ("m2", ErrorCode.NONE), ("m2", ErrorCode.NONE),
        ("m3", ErrorCode.NONE), ("m4", ErrorCode.LEADER_NOT_AVAILABLE),
        ("m5", ErrorCode.LEADER_NOT_AVAILABLE)]
    assert sorted(t.name for t in state.logs.topics()) == ["m1", "m2", "m3"]
    body = call(state, ApiKey.METADATA, 12, request)  # the client's retry
    assert all(t.error_code == ErrorCode.NONE for t in body.topics)


# ----------------------------------------------------------------------- DeleteRecords
def delete_records(state, name, offsets: dict[int, int], version=2):
    body = call(state, ApiKey.DELETE_RECORDS, version, DR.DeleteRecordsRequest(topics=[DR.DeleteRecordsTopic(
        name=name, partitions=[DR.DeleteRecordsPartition(partition_index=p, offset=o) for p, o in offsets.items()])]))
    return {r.partition_index: (r.error_code, r.low_watermark) for r in body.topics[0].partitions}


def test_delete_records_moves_the_log_start_offset(state):
    create(state, "trim", 2)
    produce(state, "trim", 0, 10)
    produce(state, "trim", 1, 3)
    assert delete_records(state, "trim", {0: 4, 1: -1}, version=0) == {0: (ErrorCode.NONE, 4), 1: (ErrorCode.NONE, 3)}
    assert state.logs.log("trim", 0).log_start_offset == 4
    assert state.logs.log("trim", 1).log_start_offset == 3
    # Below the current start: nothing changes, the current start is the answer.
    assert delete_records(state, "trim", {0: 2}) == {0: (ErrorCode.NONE, 4)}
    assert delete_records(state, "trim", {0: -1}) == {0: (ErrorCode.NONE, 10)}


def test_delete_records_errors(state):
    create(state, "trim-errors", 1)
    produce(state, "trim-errors", 0, 5)
    assert delete_records(state, "trim-errors", {0: 6, 1: 0}) == {
        0: (ErrorCode.OFFSET_OUT_OF_RANGE, -1), 1: (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)}
    assert delete_records(state, "trim-errors", {0: -2}) == {0: (ErrorCode.OFFSET_OUT_OF_RANGE, -1)}
    assert delete_records(state, "nope", {0: 0}) == {0: (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1)}
    assert state.logs.log("trim-errors", 0).log_start_offset == 0


def test_delete_records_on_compacted_topic_is_policy_violation(state):
    create(state, "compacted", configs={"cleanup.policy": "compact"})
    produce(state, "compacted", 0, 3)
    assert delete_records(state, "compacted", {0: 1}) == {0: (ErrorCode.POLICY_VIOLATION, -1)}
    create(state, "both", configs={"cleanup.policy": "compact,delete"})
    produce(state, "both", 0, 3)
    assert delete_records(state, "both", {0: 1}) == {0: (ErrorCode.NONE, 1)}


# --------------------------------------------------------------------- DescribeConfigs
def describe(state, resources, version=4, synonyms=False, docs=False):
    body = call(state, ApiKey.DESCRIBE_CONFIGS, version, DCF.DescribeConfigsRequest(
        resources=[DCF.DescribeConfigsResource(resource_type=t, resource_name=n, configuration_keys=k)
                   for t, n, k in resources],
        include_synonyms=synonyms, include_documentation=docs))
    return body.results


def test_describe_topic_configs_sources_and_synonyms(make_state):
    state = make_state(log_retention_ms=7200000)
    create(state, "described", configs={"retention.bytes": "1000000"})
    [result] = describe(state, [(TOPIC, "described", None)], synonyms=True, docs=True)
    assert result.error_code == ErrorCode.NONE and result.resource_name == "described"
    configs = {c.name: c for c in result.configs}
    assert set(configs) >= {"retention.ms", "retention.bytes", "cleanup.policy", "segment.bytes",
                            "max.message.bytes", "min.insync.replicas"}
    rb = configs["retention.bytes"]
    assert (rb.value, rb.config_source) == ("1000000", TOPIC_CONFIG)
    assert [(s.name, s.value, s.source) for s in rb.synonyms] == [
        ("retention.bytes", "1000000", TOPIC_CONFIG), ("log.retention.bytes", "-1", DEFAULT_CONFIG)]
    rm = configs["retention.ms"]
    assert (rm.value, rm.config_source) == ("7200000", STATIC_BROKER_CONFIG)
    assert [(s.name, s.value, s.source) for s in rm.synonyms] == [
        ("log.retention.ms", "7200000", STATIC_BROKER_CONFIG), ("log.retention.ms", "604800000", DEFAULT_CONFIG)]
    assert configs["delete.retention.ms"].config_source == DEFAULT_CONFIG
    assert configs["cleanup.policy"].config_type == 7  # LIST
    assert configs["retention.ms"].config_type == 5  # LONG
    assert configs["retention.ms"].documentation
    assert not any(c.read_only for c in result.configs)


def test_describe_configs_v1_v2_carry_no_v3_fields(state):
    create(state, "v1-described")
    for version in (1, 2):
        [result] = describe(state, [(TOPIC, "v1-described", None)], version=version)
        assert result.error_code == ErrorCode.NONE
        assert all(c.config_type == 0 and c.documentation is None and c.synonyms == [] for c in result.configs)
        assert {c.config_source for c in result.configs} == {DEFAULT_CONFIG}


def test_describe_configs_keys_filter(state):
    create(state, "filtered")
    [some] = describe(state, [(TOPIC, "filtered", ["retention.ms", "cleanup.policy", "not.a.config"])])
    assert sorted(c.name for c in some.configs) == ["cleanup.policy", "retention.ms"]
    [none] = describe(state, [(TOPIC, "filtered", [])])
    assert none.error_code == ErrorCode.NONE and none.configs == []
    [docs_off] = describe(state, [(TOPIC, "filtered", ["retention.ms"])])
    assert docs_off.configs[0].documentation is None


def test_describe_configs_topic_errors(state):
    unknown, illegal = describe(state, [(TOPIC, "missing", None), (TOPIC, "bad name", None)])
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and unknown.configs == []
    assert illegal.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_describe_broker_configs(make_state):
    state = make_state(num_partitions=6)
    by_id, default, other, bad, logger = describe(state, [
        (BROKER, "0", None), (BROKER, "", ["num.partitions", "auto.create.topics.enable"]),
        (BROKER, "3", None), (BROKER, "zero", None), (BROKER_LOGGER, "0", None)], synonyms=True)
    configs = {c.name: c for c in by_id.configs}
    assert configs["num.partitions"].value == "6"
    assert configs["num.partitions"].config_source == STATIC_BROKER_CONFIG
    assert configs["auto.create.topics.enable"].value == "true"
    assert configs["auto.create.topics.enable"].config_source == DEFAULT_CONFIG
    assert configs["auto.create.topics.enable"].config_type == 1  # BOOLEAN
    assert configs["log.retention.ms"].config_type == 5  # LONG
    assert all(c.read_only for c in by_id.configs)
    assert [(s.name, s.value, s.source) for s in configs["num.partitions"].synonyms] == [
        ("num.partitions", "6", STATIC_BROKER_CONFIG), ("num.partitions", "1", DEFAULT_CONFIG)]
    assert sorted(c.name for c in default.configs) == ["auto.create.topics.enable", "num.partitions"]
    assert other.error_code == bad.error_code == logger.error_code == ErrorCode.INVALID_REQUEST
    assert "expected 0" in other.error_message


# ------------------------------------------------------------------------ AlterConfigs
def alter(state, resources, version=2, validate_only=False):
    body = call(state, ApiKey.ALTER_CONFIGS, version, AC.AlterConfigsRequest(
        resources=[AC.AlterConfigsResource(resource_type=t, resource_name=n,
                                           configs=[AC.AlterableConfig(name=k, value=v) for k, v in c.items()])
                   for t, n, c in resources],
        validate_only=validate_only))
    return [(r.error_code, r.error_message) for r in body.responses]


def test_alter_configs_replaces_the_whole_set_and_applies_live(state):
    create(state, "altered", configs={"cleanup.policy": "compact"})
    assert alter(state, [(TOPIC, "altered", {"retention.ms": "60000", "segment.bytes": None})], version=0) == [
        (ErrorCode.NONE, None)]
    assert state.logs.topic("altered").configs == {"retention.ms": "60000"}
    plog = state.logs.log("altered", 0)
    assert plog.config.retention_ms == 60000 and plog.config.cleanup_policy == ("delete",)
    [result] = describe(state, [(TOPIC, "altered", ["retention.ms"])])
    assert (result.configs[0].value, result.configs[0].config_source) == ("60000", TOPIC_CONFIG)


def test_alter_configs_validation(state):
    create(state, "guarded", configs={"retention.ms": "1000"})
    [(code, message)] = alter(state, [(TOPIC, "guarded", {"retention.ms": "-7"})])
    assert code == ErrorCode.INVALID_CONFIG and "retention.ms" in message
    [(code, message)] = alter(state, [(TOPIC, "guarded", {"retention.mss": "5"})])
    assert code == ErrorCode.INVALID_CONFIG and "retention.mss" in message
    assert alter(state, [(TOPIC, "guarded", {"retention.ms": "5"})], validate_only=True) == [(ErrorCode.NONE, None)]
    assert state.logs.topic("guarded").configs == {"retention.ms": "1000"}
    results = alter(state, [(TOPIC, "missing", {}), (TOPIC, "in valid", {}), (BROKER, "0", {"num.partitions": "3"}),
                            (BROKER_LOGGER, "0", {}), (16, "x", {})])
    assert [code for code, _ in results] == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_TOPIC_EXCEPTION,
                                             ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST,
                                             ErrorCode.INVALID_REQUEST]
    assert "static" in results[2][1]
    dup = alter(state, [(TOPIC, "guarded", {"retention.ms": "5"}), (TOPIC, "guarded", {"retention.ms": "6"})])
    assert [code for code, _ in dup] == [ErrorCode.INVALID_REQUEST] * 2
    assert state.logs.topic("guarded").configs == {"retention.ms": "1000"}


# ------------------------------------------------------------- IncrementalAlterConfigs
def inc_alter(state, name, ops, version=1, validate_only=False, resource_type=TOPIC):
    body = call(state, ApiKey.INCREMENTAL_ALTER_CONFIGS, version, IAC.IncrementalAlterConfigsRequest(
        resources=[IAC.AlterConfigsResource(resource_type=resource_type, resource_name=name, configs=[
            IAC.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in ops])],
        validate_only=validate_only))
    [r] = body.responses
    return r.error_code, r.error_message


def test_incremental_set_and_delete_keep_other_overrides(state):
    create(state, "inc", configs={"retention.ms": "1000", "segment.bytes": "1048576"})
    assert inc_alter(state, "inc", [("retention.ms", SET, "2000"), ("max.message.bytes", SET, "5000")], version=0) == (
        ErrorCode.NONE, None)
    assert state.logs.topic("inc").configs == {"retention.ms": "2000", "segment.bytes": "1048576",
                                               "max.message.bytes": "5000"}
    assert inc_alter(state, "inc", [("segment.bytes", DELETE, None), ("preallocate", DELETE, None)])[0] == ErrorCode.NONE
    assert state.logs.topic("inc").configs == {"retention.ms": "2000", "max.message.bytes": "5000"}
    assert state.logs.log("inc", 0).config.max_message_bytes == 5000


def test_incremental_append_and_subtract_lists(state):
    create(state, "policy")
    assert inc_alter(state, "policy", [("cleanup.policy", APPEND, "compact")])[0] == ErrorCode.NONE
    assert state.logs.topic("policy").configs == {"cleanup.policy": "delete,compact"}
    assert inc_alter(state, "policy", [("cleanup.policy", APPEND, "compact")])[0] == ErrorCode.NONE
    assert state.logs.topic("policy").configs == {"cleanup.policy": "delete,compact"}
    assert inc_alter(state, "policy", [("cleanup.policy", SUBTRACT, "delete")])[0] == ErrorCode.NONE
    assert state.logs.log("policy", 0).config.cleanup_policy == ("compact",)
    code, message = inc_alter(state, "policy", [("cleanup.policy", SUBTRACT, "compact")])
    assert code == ErrorCode.INVALID_CONFIG and "cleanup.policy" in message
    code, message = inc_alter(state, "policy", [("retention.ms", APPEND, "5")])
    assert code == ErrorCode.INVALID_CONFIG and "not LIST" in message
    assert state.logs.topic("policy").configs == {"cleanup.policy": "compact"}


@pytest.mark.parametrize("ops,code", [
    ([("retention.ms", 9, "5")], ErrorCode.INVALID_REQUEST),
    ([("retention.ms", SET, None)], ErrorCode.INVALID_REQUEST),
    ([("retention.ms", SET, "5"), ("retention.ms", SET, "6")], ErrorCode.INVALID_REQUEST),
    ([("retention.nope", SET, "5")], ErrorCode.INVALID_CONFIG),
    ([("retention.nope", DELETE, None)], ErrorCode.INVALID_CONFIG),
    ([("segment.bytes", SET, "1")], ErrorCode.INVALID_CONFIG),
])
def test_incremental_rejections_change_nothing(state, ops, code):
    create(state, "steady", configs={"retention.ms": "1000"})
    assert inc_alter(state, "steady", ops)[0] == code
    assert state.logs.topic("steady").configs == {"retention.ms": "1000"}


def test_incremental_validate_only_and_broker(state):
    create(state, "inc-dry")
    assert inc_alter(state, "inc-dry", [("retention.ms", SET, "5")], validate_only=True) == (ErrorCode.NONE, None)
    assert state.logs.topic("inc-dry").configs == {}
    code, message = inc_alter(state, "0", [("num.partitions", SET, "3")], resource_type=BROKER)
    assert code == ErrorCode.INVALID_REQUEST and "static" in message


# --------------------------------------------------------------------- DescribeCluster
@pytest.mark.parametrize("version", [0, 1, 2])
def test_describe_cluster(make_state, version):
    state = make_state(node_id=3)
    body = call(state, ApiKey.DESCRIBE_CLUSTER, version,
                DC.DescribeClusterRequest(include_cluster_authorized_operations=True, include_fenced_brokers=True))
    assert body.error_code == ErrorCode.NONE
    assert body.cluster_id == state.cluster_id and len(body.cluster_id) == 22
    assert body.controller_id == 3
    assert [(b.broker_id, b.host, b.port, b.rack, b.is_fenced) for b in body.brokers] == [
        (3, "127.0.0.1", 9092, None, False)]
    assert body.cluster_authorized_operations == -(2**31)


def test_describe_cluster_endpoint_types(state):
    controllers = call(state, ApiKey.DESCRIBE_CLUSTER, 1, DC.DescribeClusterRequest(endpoint_type=2))
    assert controllers.error_code == ErrorCode.NONE and controllers.endpoint_type == 2
    assert [b.broker_id for b in controllers.brokers] == [0]
    odd = call(state, ApiKey.DESCRIBE_CLUSTER, 1, DC.DescribeClusterRequest(endpoint_type=9))
    assert odd.error_code == ErrorCode.UNSUPPORTED_ENDPOINT_TYPE and odd.brokers == []


# ---------------------------------------------------------------- OffsetForLeaderEpoch
def epochs(state, name, parts, version=4):
    body = call(state, ApiKey.OFFSET_FOR_LEADER_EPOCH, version, OLE.OffsetForLeaderEpochRequest(
        replica_id=-1, topics=[OLE.OffsetForLeaderTopic(topic=name, partitions=[
            OLE.OffsetForLeaderPartition(partition=p, current_leader_epoch=cur, leader_epoch=ep)
            for p, cur, ep in parts])]))
    return [(r.partition, r.error_code, r.leader_epoch, r.end_offset) for r in body.topics[0].partitions]


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch_single_epoch(state, version):
    create(state, "epochs", 2)
    produce(state, "epochs", 0, 5)
    assert epochs(state, "epochs", [(0, 0, 0), (0, -1, 3), (1, 0, 0), (0, -1, -1), (0, 1, 0), (2, -1, 0)],
                  version) == [
        (0, ErrorCode.NONE, 0, 5),
        (0, ErrorCode.NONE, 0, 5),
        (1, ErrorCode.NONE, 0, 0),
        (0, ErrorCode.NONE, -1, -1),
        (0, ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1),
        (2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
    ]
    assert epochs(state, "missing", [(0, -1, 0)], version) == [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1)]


# ------------------------------------------------------------------------ version table
ADMIN_RANGES = {
    ApiKey.CREATE_TOPICS: (2, 7), ApiKey.DELETE_TOPICS: (1, 6), ApiKey.DELETE_RECORDS: (0, 2),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (2, 4), ApiKey.DESCRIBE_CONFIGS: (1, 4), ApiKey.ALTER_CONFIGS: (0, 2),
    ApiKey.CREATE_PARTITIONS: (0, 3), ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 1), ApiKey.DESCRIBE_CLUSTER: (0, 2),
}


def test_served_ranges_are_the_tested_ones(state):
    """What ApiVersions advertises for the admin APIs: the ranges this file exercises."""
    for key, (low, high) in ADMIN_RANGES.items():
        handler = state.handlers[key]
        assert (handler.MIN_VERSION, handler.MAX_VERSION) == (low, high), key.name


@pytest.mark.parametrize("key,version", [(k, v) for k, (lo, hi) in ADMIN_RANGES.items() for v in range(lo, hi + 1)])
def test_every_served_version_round_trips_an_empty_request(state, key, version):
    from kafkito.protocol import SPECS

    body = call(state, key, version, SPECS[key].request())
    assert body is not None

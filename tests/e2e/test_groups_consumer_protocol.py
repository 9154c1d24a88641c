"""KIP-848 consumer groups with a real client: librdkafka with ``group.protocol=consumer``.

The broker assigns (ConsumerGroupHeartbeat); members only heartbeat. On a 4-partition topic:
two members get disjoint assignments covering every partition; a third joins and the
partitions are spread over all three; one closes and its partitions move to the others;
committed offsets are where a later member of the group starts. The admin client sees the
group as a consumer group (ConsumerGroupDescribe) while classic groups keep being
described through DescribeGroups, side by side.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.e2e

PARTITIONS = 4


def produce(bootstrap: str, topic: str, tag: str, per_partition: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for p_i in range(PARTITIONS):
        for i in range(per_partition):
            p.produce(topic, value=f"{tag}-{p_i}-{i}".encode(), partition=p_i)
    assert p.flush(10) == 0


class Members:
    """Consumers polled round-robin from the test's thread; each remembers what it read."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.consumers: list[Consumer] = []
        self.read: list[list[tuple[int, int]]] = []

    def add(self, **conf) -> Consumer:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                      "group.protocol": "consumer", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, **conf})
        c.subscribe([self.topic])
        self.consumers.append(c)
        self.read.append([])
        return c

    def poll_round(self) -> None:
        for c, read in zip(self.consumers, self.read):
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                read.append((m.partition(), m.offset()))

    def assignments(self) -> list[list[int]]:
        return [sorted(tp.partition for tp in c.assignment()) for c in self.consumers]

    def wait_spread(self, timeout_s: float = 30) -> list[list[int]]:
        """Until every member has partitions and together they have each exactly once."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll_round()
            a = self.assignments()
            flat = sorted(p for ps in a for p in ps)
            assert len(flat) == len(set(flat)), f"a partition assigned twice: {a}"
            if flat == list(range(PARTITIONS)) and all(a):
                return a
        raise AssertionError(f"assignments never settled: {self.assignments()}")

    def close(self, i: int) -> None:
        self.consumers.pop(i).close()
        self.read.pop(i)


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:8]
    return f"kip848-t-{tag}", f"kip848-g-{tag}"


def test_consumer_protocol_rebalances_and_resumes_at_committed_offsets(kbroker, names):
    topic, group = names
    bootstrap = kbroker.bootstrap_servers
    kbroker.create_topic(topic, PARTITIONS)
    produce(bootstrap, topic, "a", 3)
    members = Members(bootstrap, group, topic)
    members.add()
    members.add()
    try:
        assert sorted(map(len, members.wait_spread())) == [2, 2]
        members.add()
        assert sorted(map(len, members.wait_spread())) == [1, 1, 2]

        admin = AdminClient({"bootstrap.servers": bootstrap})
        d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
        assert d.type == ConsumerGroupType.CONSUMER and d.partition_assignor == "uniform"
        assert len(d.members) == 3
        assert sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions) == \
            list(range(PARTITIONS))
        listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}, request_timeout=10).result(10)
        assert group in {g.group_id for g in listed.valid}

        # Read everything (a partition that moved before any commit is read again from
        # the start by its new owner: at least once), commit, and let the first member go.
        everything = {(p, o) for p in range(PARTITIONS) for o in range(3)}
        deadline = time.monotonic() + 30
        while {r for rs in members.read for r in rs} != everything and time.monotonic() < deadline:
            members.poll_round()
        assert {r for rs in members.read for r in rs} == everything
        # Each member commits what it owns (OffsetCommit v9 with its member epoch).
        for c in members.consumers:
            owned = [TopicPartition(topic, tp.partition, 3) for tp in c.assignment()]
            assert all(tp.error is None for tp in c.commit(offsets=owned, asynchronous=False))
        members.close(0)
        assert sorted(map(len, members.wait_spread())) == [2, 2]
    finally:
        for c in members.consumers:
            c.close()

    # A later member of the group starts at the committed offsets: only the new records.
    produce(bootstrap, topic, "b", 2)
    later = Members(bootstrap, group, topic)
    later.add()
    try:
        deadline = time.monotonic() + 30
        while len(later.read[0]) < 2 * PARTITIONS and time.monotonic() < deadline:
            later.poll_round()
        for _ in range(10):
            later.poll_round()
        assert sorted(later.read[0]) == sorted((p, o) for p in range(PARTITIONS) for o in (3, 4))
    finally:
        later.consumers[0].close()


def test_range_assignor_on_request(kbroker, names):
    topic, group = names
    kbroker.create_topic(topic, PARTITIONS)
    members = Members(kbroker.bootstrap_servers, group, topic)
    members.add(**{"group.remote.assignor": "range"})
    members.add(**{"group.remote.assignor": "range"})
    try:
        assert sorted(members.wait_spread()) == [[0, 1], [2, 3]]
        admin = AdminClient({"bootstrap.servers": kbroker.bootstrap_servers})
        d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
        assert d.partition_assignor == "range"
    finally:
        for c in members.consumers:
            c.close()


def test_classic_and_consumer_groups_side_by_side(kbroker, names):
    topic, group = names
    classic = group + "-classic"
    kbroker.create_topic(topic, PARTITIONS)
    produce(kbroker.bootstrap_servers, topic, "a", 1)
    new = Members(kbroker.bootstrap_servers, group, topic)
    new.add()
    old = Consumer({"bootstrap.servers": kbroker.bootstrap_servers, "group.id": classic,
                    "auto.offset.reset": "earliest", "enable.auto.commit": False})
    old.subscribe([topic])
    try:
        new.wait_spread()
        deadline = time.monotonic() + 30
        while len(old.assignment()) < PARTITIONS and time.monotonic() < deadline:
            old.poll(0.1)
            new.poll_round()
        admin = AdminClient({"bootstrap.servers": kbroker.bootstrap_servers})
        ds = admin.describe_consumer_groups([group, classic], request_timeout=10)
        d_new, d_old = ds[group].result(10), ds[classic].result(10)
        assert d_new.type == ConsumerGroupType.CONSUMER
        assert d_old.type == ConsumerGroupType.CLASSIC and d_old.partition_assignor == "range"
        assert sorted(tp.partition for tp in d_old.members[0].assignment.topic_partitions) == \
            list(range(PARTITIONS))
        by_type = {t: {g.group_id for g in admin.list_consumer_groups(types={t}, request_timeout=10).result(10).valid}
                   for t in (ConsumerGroupType.CONSUMER, ConsumerGroupType.CLASSIC)}
        assert group in by_type[ConsumerGroupType.CONSUMER] and group not in by_type[ConsumerGroupType.CLASSIC]
        assert classic in by_type[ConsumerGroupType.CLASSIC] and classic not in by_type[ConsumerGroupType.CONSUMER]
    finally:
        old.close()
        for c in new.consumers:
            c.close()

"""Exactly once through broker crashes: consume-transform-produce with
``send_offsets_to_transaction`` while the broker is ``kill -9``ed mid-stream, several times.

A real ``kafkito serve`` process (tests/e2e/serve.py) holds an input topic of N records.
A confluent-kafka worker (read_committed consumer in a group, transactional producer)
copies each input record to the output topic inside a transaction that also commits the
consumer's offsets. The broker is killed with SIGKILL at random moments (mid-transaction,
mid-commit, between transactions) and restarted on the same data directory; each time a
new worker with the same transactional id takes over, as a restarted application would.
At the end the output, read committed, must hold every input record exactly once.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from e2e.serve import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

N = 1000
KILLS = 4
# A restarted broker still holds the dead worker's group member: let its session end soon.
SETTINGS = {"group.min.session.timeout.ms": 500, "group.initial.rebalance.delay.ms": 0}


def _admin_create(bootstrap: str, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(10)


def _fill_input(bootstrap: str, topic: str) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(N):
        p.produce(topic, str(i).encode())
    assert p.flush(30) == 0


class Worker(threading.Thread):
    """One application incarnation: runs until its broker dies (or all input is copied)."""

    def __init__(self, bootstrap: str, src: str, dst: str, group: str, tid: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.src, self.dst, self.group, self.tid = bootstrap, src, dst, group, tid
        self.stop = threading.Event()
        self.commits = 0
        self.done = False
        self.error: Exception | None = None

    def run(self) -> None:
        from confluent_kafka import Consumer, KafkaException, Producer

        consumer = None
        try:
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                                 "isolation.level": "read_committed", "enable.auto.commit": False,
                                 "auto.offset.reset": "earliest", "session.timeout.ms": 1500,
                                 "heartbeat.interval.ms": 300})
            producer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": self.tid,
                                 "transaction.timeout.ms": 10_000, "linger.ms": 2})
            producer.init_transactions(15)
            consumer.subscribe([self.src])
            while not self.stop.is_set():
                msgs = consumer.consume(random.randint(1, 10), timeout=0.5)
                msgs = [m for m in msgs if not m.error()]
                if not msgs:
                    if consumer.assignment() and self._all_copied(consumer):
                        self.done = True
                        return
                    continue
                producer.begin_transaction()
                for m in msgs:
                    producer.produce(self.dst, b"out-" + m.value())
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                     consumer.consumer_group_metadata(), 5)
                producer.commit_transaction(5)
                self.commits += 1
        except KafkaException as exc:
            self.error = exc  # the broker died under us: this incarnation is over
        finally:
            # After a kill, close() would try to leave the group on a dead broker and can
            # hang; the killed incarnation's client is dropped instead (it is fenced anyway).
            if consumer is not None and not self.stop.is_set():
                consumer.close()

    def _all_copied(self, consumer) -> bool:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            (tp,) = consumer.committed([TopicPartition(self.src, 0)], 5)
        except KafkaException:  # e.g. still UNSTABLE_OFFSET_COMMIT: a transaction is completing
            return False
        return tp.offset == N


def _read_output(bootstrap: str, topic: str) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "verifier", "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[bytes] = []
    quiet_until = time.monotonic() + 3
    while time.monotonic() < quiet_until:
        m = c.poll(0.1)
        if m is not None and not m.error():
            out.append(m.value())
            quiet_until = time.monotonic() + 3
    c.close()
    return out


def test_consume_transform_produce_survives_kill_9(tmp_path):
    rng = random.Random(12)
    data = tmp_path / "data"
    data.mkdir()
    src, dst, group, tid = "input", "output", "copier", "copier-tx"
    broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
    try:
        _admin_create(broker.bootstrap, [src, dst])
        _fill_input(broker.bootstrap, src)
        kills = 0
        deadline = time.monotonic() + 240
        while True:
            assert time.monotonic() < deadline, "the copy did not finish"
            worker = Worker(broker.bootstrap, src, dst, group, tid)
            worker.start()
            if kills < KILLS:
                # let it commit a few transactions, then kill at a random moment
                start = time.monotonic()
                while worker.commits < 2 and worker.is_alive() and time.monotonic() - start < 30:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.2))
                assert broker.stop(signal.SIGKILL) == -signal.SIGKILL
                kills += 1
                worker.stop.set()
                # A librdkafka call caught by the kill may block well past its timeout; the
                # incarnation is fenced by the next one anyway, so it is left behind.
                worker.join(10)
                assert not worker.done, "killed after the copy ended: not mid-stream"
                broker = ServeProcess(data, SETTINGS, log_dir=tmp_path)
                continue
            worker.join(120)
            assert worker.done, "the last worker did not copy everything"
            break
        out = _read_output(broker.bootstrap, dst)
        assert sorted(out) == sorted(b"out-%d" % i for i in range(N)), \
            f"{len(out)} records, {len(set(out))} distinct"
        assert kills == KILLS
    finally:
        broker.__exit__(None, None, None)

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

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

N = 400
KILLS = 4


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

    def run(self) -> None:
        from confluent_kafka import Consumer, KafkaException, Producer

        consumer = producer = None
        try:
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                                 "isolation.level": "read_committed", "enable.auto.commit": False,
                                 "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
            producer = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": self.tid,
                                 "transaction.timeout.ms": 10_000, "linger.ms": 2})
            producer.init_transactions(15)
            consumer.subscribe([self.src])
            while not self.stop.is_set():
                msgs = consumer.consume(random.randint(1, 25), timeout=0.5)
                msgs = [m for m in msgs if not m.error()]
                if not msgs:
                    if self._all_copied(consumer):
                        self.done = True
                        return
                    continue
                producer.begin_transaction()
                for m in msgs:
                    producer.produce(self.dst, b"out-" + m.value())
                producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                     consumer.consumer_group_metadata(), 10)
                producer.commit_transaction(10)
                self.commits += 1
        except KafkaException:
            pass  # the broker died under us: this incarnation is over
        finally:
            for c in (consumer,):
                if c is not None:
                    try:
                        c.close()
                    except Exception:
                        pass

    def _all_copied(self, consumer) -> bool:
        from confluent_kafka import TopicPartition

        (tp,) = consumer.committed([TopicPartition(self.src, 0)], 5)
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
    broker = ServeProcess(data, log_dir=tmp_path)
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
                while worker.commits < 3 and worker.is_alive() and time.monotonic() - start < 30:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.3))
                assert broker.stop(signal.SIGKILL) == -signal.SIGKILL
                kills += 1
                worker.stop.set()
                worker.join(60)
                broker = ServeProcess(data, log_dir=tmp_path)
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

"""Regenerate the golden frames: run each real client against the capture listener.

    .venv/bin/python -m tests.protocol.capture_clients [confluent-kafka|kafka-python|aiokafka]

Each scenario (produce, idempotent and transactional produce, consumer group, admin
calls) runs in its own subprocess with a deadline, so a client that waits forever on an
answer the toy broker cannot give only ends its own scenario. The parent keeps the
listener and writes tests/protocol/data/golden_<client>.json: the client's name and
version and, per (api key, version), up to ``PER_VERSION`` distinct request frames as
sent (hex, without the size prefix).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from kafkito.protocol import SPECS

from .capture import CaptureBroker

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
PER_VERSION = 3
SCENARIO_TIMEOUT_S = 25
TOPIC = "golden"


# -- confluent-kafka (librdkafka) ----------------------------------------------------------


def ck_version() -> str:
    import confluent_kafka

    version = confluent_kafka.version()
    if isinstance(version, tuple):
        version = version[0]
    return f"confluent-kafka {version} (librdkafka {confluent_kafka.libversion()[0]})"


def ck_producer(bootstrap: str, extra: dict | None = None) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, **(extra or {})})
    p.produce(TOPIC, key=b"k", value=b"v" * 40, headers=[("h", b"1")])
    p.flush(8)


def ck_idempotent(bootstrap: str) -> None:
    ck_producer(bootstrap, {"enable.idempotence": True, "compression.type": "zstd"})


def ck_transactional(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "golden-txn"})
    p.init_transactions(8)
    p.begin_transaction()
    p.produce(TOPIC, value=b"in-txn")
    meta = Consumer({"bootstrap.servers": bootstrap, "group.id": "golden-group"}).consumer_group_metadata()
    p.send_offsets_to_transaction([TopicPartition(TOPIC, 0, 5)], meta, 8)
    p.commit_transaction(8)


def ck_consumer(bootstrap: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "golden-group",
            "auto.offset.reset": "earliest",
            "heartbeat.interval.ms": 300,
            "session.timeout.ms": 6000,
            "enable.auto.commit": False,
        }
    )
    c.subscribe([TOPIC])
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        c.poll(0.2)
    try:
        c.commit(offsets=[TopicPartition(TOPIC, 0, 1)], asynchronous=False)
    except Exception:
        pass
    c.close()


def ck_admin(bootstrap: str) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        OffsetSpec,
    )

    a = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(TOPIC, 0, 1)
    calls = [
        lambda: a.create_topics([NewTopic("golden-new", 2, 1, config={"retention.ms": "60000"})]),
        lambda: a.delete_topics(["golden-new"]),
        lambda: a.describe_configs([ConfigResource("topic", TOPIC)]),
        lambda: a.alter_configs([ConfigResource("topic", TOPIC, set_config={"retention.ms": "1000"})]),
        lambda: a.incremental_alter_configs(
            [
                ConfigResource(
                    "topic",
                    TOPIC,
                    incremental_configs=[
                        ConfigEntry("retention.ms", "2000", incremental_operation=AlterConfigOpType.SET)
                    ],
                )
            ]
        ),
        lambda: a.create_partitions([NewPartitions(TOPIC, 3)]),
        lambda: a.list_consumer_groups(),
        lambda: a.describe_consumer_groups(["golden-group"]),
        lambda: a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("golden-group", [tp])]),
        lambda: a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("golden-group", [tp])]),
        lambda: a.delete_consumer_groups(["golden-group"]),
        lambda: a.delete_records([TopicPartition(TOPIC, 0, 1)]),
        lambda: a.list_offsets({TopicPartition(TOPIC, 0): OffsetSpec.earliest()}),
        lambda: a.describe_cluster(),
        lambda: a.describe_topics(__import__("confluent_kafka").TopicCollection([TOPIC])),
    ]
    for call in calls:
        _ck_wait(call)


def _ck_wait(call) -> None:
    try:
        futures = call()
    except Exception:
        return
    if not isinstance(futures, dict):
        futures = {0: futures}
    for f in futures.values():
        try:
            f.result(timeout=3)
        except Exception:
            pass


# -- kafka-python --------------------------------------------------------------------------


def kp_version() -> str:
    import kafka

    return f"kafka-python {kafka.__version__}"


def kp_producer(bootstrap: str, extra: dict | None = None) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, **(extra or {}))
    p.send(TOPIC, key=b"k", value=b"v" * 40, headers=[("h", b"1")]).get(timeout=8)
    p.close(timeout=2)


def kp_idempotent(bootstrap: str) -> None:
    kp_producer(bootstrap, {"enable_idempotence": True, "compression_type": "gzip"})


def kp_transactional(bootstrap: str) -> None:
    from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition

    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="golden-txn")
    p.init_transactions()
    p.begin_transaction()
    p.send(TOPIC, value=b"in-txn")
    p.send_offsets_to_transaction({TopicPartition(TOPIC, 0): OffsetAndMetadata(5, "", -1)}, "golden-group")
    p.commit_transaction()
    p.close(timeout=2)


def kp_consumer(bootstrap: str) -> None:
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="golden-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        heartbeat_interval_ms=300,
    )
    c.subscribe([TOPIC])
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        c.poll(timeout_ms=200)
    try:
        c.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(1, "meta", -1)})
    except Exception:
        pass
    c.close()


def kp_admin(bootstrap: str) -> None:
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    tp = TopicPartition(TOPIC, 0)
    calls = [
        lambda: a.create_topics([NewTopic("golden-new", 2, 1, topic_configs={"retention.ms": "60000"})]),
        lambda: a.delete_topics(["golden-new"]),
        lambda: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)]),
        lambda: a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC, configs={"retention.ms": "1000"})]),
        lambda: a.create_partitions({TOPIC: NewPartitions(3)}),
        lambda: a.list_groups(),
        lambda: a.describe_groups(["golden-group"], include_authorized_operations=True),
        lambda: a.list_group_offsets({"golden-group": [tp]}),
        lambda: a.delete_group_offsets("golden-group", [tp]),
        lambda: a.delete_groups(["golden-group"]),
        lambda: a.delete_records({tp: 1}),
        lambda: a.describe_cluster(),
        lambda: a.describe_producers([tp]),
        lambda: a.describe_transactions(["golden-txn"]),
        lambda: a.list_transactions(),
    ]
    for call in calls:
        try:
            call()
        except Exception:
            pass
    a.close()


# -- aiokafka ------------------------------------------------------------------------------


def aio_version() -> str:
    import aiokafka

    return f"aiokafka {aiokafka.__version__}"


def _aio(coro_fn):
    import asyncio

    def run(bootstrap: str) -> None:
        asyncio.run(coro_fn(bootstrap))

    return run


async def _aio_producer(bootstrap: str, **extra) -> None:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **extra)
    await p.start()
    try:
        await p.send_and_wait(TOPIC, key=b"k", value=b"v" * 40, headers=[("h", b"1")])
    finally:
        await p.stop()


async def _aio_plain(bootstrap: str) -> None:
    await _aio_producer(bootstrap)


async def _aio_idempotent(bootstrap: str) -> None:
    await _aio_producer(bootstrap, enable_idempotence=True, compression_type="gzip")


async def _aio_transactional(bootstrap: str) -> None:
    from aiokafka import AIOKafkaProducer, TopicPartition

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="golden-txn")
    await p.start()
    try:
        async with p.transaction():
            await p.send_and_wait(TOPIC, value=b"in-txn")
            await p.send_offsets_to_transaction({TopicPartition(TOPIC, 0): 5}, "golden-group")
    finally:
        await p.stop()


async def _aio_consumer(bootstrap: str) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    c = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="golden-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        heartbeat_interval_ms=300,
    )
    await c.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            await c.getmany(timeout_ms=200)
        try:
            await asyncio.wait_for(c.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(1, "")}), 3)
        except Exception:
            pass
    finally:
        await c.stop()


async def _aio_admin(bootstrap: str) -> None:
    import asyncio

    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await a.start()
    tp = TopicPartition(TOPIC, 0)
    calls = [
        lambda: a.create_topics([NewTopic("golden-new", 2, 1, topic_configs={"retention.ms": "60000"})]),
        lambda: a.delete_topics(["golden-new"]),
        lambda: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)]),
        lambda: a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC, configs={"retention.ms": "1000"})]),
        lambda: a.create_partitions({TOPIC: NewPartitions(3)}),
        lambda: a.list_consumer_groups(),
        lambda: a.describe_consumer_groups(["golden-group"]),
        lambda: a.list_consumer_group_offsets("golden-group"),
        lambda: a.delete_records({tp: RecordsToDelete(1)}),
        lambda: a.describe_cluster(),
    ]
    try:
        for call in calls:
            try:
                await asyncio.wait_for(call(), 4)
            except Exception:
                pass
    finally:
        await a.close()


CLIENTS = {
    "confluent-kafka": (
        ck_version,
        {"producer": ck_producer, "idempotent": ck_idempotent, "transactional": ck_transactional,
         "consumer": ck_consumer, "admin": ck_admin},
    ),
    "kafka-python": (
        kp_version,
        {"producer": kp_producer, "idempotent": kp_idempotent, "transactional": kp_transactional,
         "consumer": kp_consumer, "admin": kp_admin},
    ),
    "aiokafka": (
        aio_version,
        {"producer": _aio(_aio_plain), "idempotent": _aio(_aio_idempotent),
         "transactional": _aio(_aio_transactional), "consumer": _aio(_aio_consumer),
         "admin": _aio(_aio_admin)},
    ),
}


def capture(client: str) -> dict:
    version_fn, scenarios = CLIENTS[client]
    kept: dict[tuple[int, int], list[tuple[str, bytes]]] = {}
    errors = []
    for name in scenarios:
        with CaptureBroker() as broker:
            cmd = [sys.executable, "-m", "tests.protocol.capture_clients", "--run", client, name, broker.bootstrap]
            try:
                subprocess.run(cmd, timeout=SCENARIO_TIMEOUT_S, cwd=_repo_root(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                pass
            frames = list(broker.frames)
            errors += [f"{name}: {e}" for e in broker.errors]
        for api_key, api_version, frame in frames:
            slot = kept.setdefault((api_key, api_version), [])
            if len(slot) < PER_VERSION and all(frame != f for _, f in slot):
                slot.append((name, frame))
    return {
        "client": client,
        "client_version": version_fn(),
        "decode_errors": errors,
        "frames": [
            {
                "scenario": scenario,
                "api_key": k,
                "api_name": SPECS[k].name if k in SPECS else None,
                "api_version": v,
                "hex": frame.hex(),
            }
            for (k, v), slot in sorted(kept.items())
            for scenario, frame in slot
        ],
    }


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data_path(client: str) -> str:
    return os.path.join(DATA_DIR, f"golden_{client.replace('-', '_')}.json")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--run"]:
        client, scenario, bootstrap = argv[1:4]
        CLIENTS[client][1][scenario](bootstrap)
        return
    for client in argv or list(CLIENTS):
        result = capture(client)
        with open(data_path(client), "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        pairs = sorted({(fr["api_name"], fr["api_version"]) for fr in result["frames"]})
        print(client, result["client_version"], len(result["frames"]), "frames", pairs, result["decode_errors"])


if __name__ == "__main__":
    main(sys.argv[1:])

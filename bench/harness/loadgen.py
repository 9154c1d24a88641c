"""Load generator worker: one process, one job, one JSON line on stdout.

    python -m bench.harness.loadgen '{"mode": "produce", ...}'

Theory of operation
-------------------
Every load comes from confluent-kafka (librdkafka, C), so the per-byte work of the
client happens outside Python; the Python loop only hands messages over. The harness
starts one or more of these workers per measurement; each sets up (interpreter, client,
connection, metadata), prints ``ready`` and waits for a ``go`` line on stdin, so set-up
is not measured and all workers start together. Each worker then prints exactly one
JSON object on its last stdout line; anything else it has to say goes to stderr.

Modes: ``produce`` (as fast as it can for a duration, or until a byte budget is
sent), ``latency`` (one message at a time, waiting for each acknowledgement; ``latency_raw``
the same on a bare socket with kafkito's own codec),
``consume`` (from the start of the topic up to the end offsets seen at start),
``e2e_consume`` (stamps carried in the message values, consumer with default settings),
``e2e_produce`` (a fixed rate), ``group_join`` (subscribe, time to first assignment).

Payloads are drawn from an 8 MiB pool of 16-symbol random text (4 bits of entropy per
byte): zstd halves it, as it would many real payloads, and no message repeats within a
batch so compression figures are not flattered.
"""

from __future__ import annotations

import json
import os
import sys
import time

POOL_BYTES = 8 * 1024 * 1024


def payload_pool() -> bytes:
    raw = os.urandom(POOL_BYTES)
    alphabet = b"abcdefghijklmnop"
    table = bytes(alphabet[i % 16] for i in range(256))
    pool = raw.translate(table)
    return pool + pool[: 2 * 1024 * 1024]  # a tail so that a slice never wraps


def _barrier() -> None:
    """Say "ready" and wait for the harness's "go", so that all workers start together."""
    print("ready", flush=True)
    sys.stdin.readline()


def _base_config(job: dict) -> dict:
    return {"bootstrap.servers": job["bootstrap"], "client.id": job.get("client_id", "kafkito-bench")}


def _percentiles(samples_ms: list[float]) -> dict:
    if not samples_ms:
        return {"count": 0}
    s = sorted(samples_ms)
    n = len(s)

    def q(p: float) -> float:
        return s[min(n - 1, int(p * n))]

    return {"count": n, "p50_ms": q(0.50), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": s[-1],
            "mean_ms": sum(s) / n}


def _producer_config(job: dict) -> dict:
    conf = _base_config(job)
    conf.update({
        "acks": str(job.get("acks", 1)),
        "compression.type": job.get("compression", "none"),
        "message.max.bytes": 2_000_000,
        # A bounded local queue keeps the flush tail after the deadline short; the pipeline to
        # the broker (5 in-flight requests of up to batch.size) stays full.
        "queue.buffering.max.kbytes": int(job.get("queue_kbytes", 65536)),
        "delivery.report.only.error": True,
    })
    conf.update(job.get("producer_config", {}))
    return conf


def run_produce(job: dict) -> dict:
    """Produce as fast as possible for ``duration_s`` (or until ``total_bytes``), then flush."""
    from confluent_kafka import KafkaException, Producer

    size = int(job["size"])
    topic = job["topic"]
    instances = int(job.get("instances", 1))
    errors = [0]
    first_error: list[str] = []

    def on_delivery(err, _msg):
        if err is not None:
            errors[0] += 1
            if not first_error:
                first_error.append(str(err))

    producers = []
    for i in range(instances):
        conf = _producer_config(job)
        conf["client.id"] = f"bench-{os.getpid()}-{i}"
        if instances > 1:
            conf["queue.buffering.max.kbytes"] = max(1024, int(job.get("queue_kbytes", 65536)) // instances)
        conf["on_delivery"] = on_delivery
        producers.append(Producer(conf))
    for p in producers:  # connect and learn the topic before the clock starts
        p.list_topics(topic, timeout=30)
    pool = payload_pool()
    span = POOL_BYTES - size if size < POOL_BYTES else 1
    total_bytes = job.get("total_bytes")
    duration_s = float(job.get("duration_s", 3.0))
    _barrier()
    cpu0 = time.process_time()  # this process, all threads: the Python loop and librdkafka's
    start = time.perf_counter()
    deadline = start + duration_s
    sent = 0
    count = 0
    pos = 0
    n = len(producers)
    check_every = max(1, min(1000, 1_000_000 // max(size, 1)))
    while True:
        p = producers[count % n]
        value = pool[pos:pos + size]
        try:
            p.produce(topic, value)
        except BufferError:
            p.poll(0.002)
            continue
        except KafkaException as exc:  # e.g. message too large: fatal for the measurement
            return {"error": str(exc)}
        count += 1
        sent += size
        pos += size + 7
        if pos >= span:
            pos = (pos * 31) % max(span, 1)
        if count % check_every == 0:
            p.poll(0)
            if total_bytes is not None:
                if sent >= total_bytes:
                    break
            elif time.perf_counter() >= deadline:
                break
        elif total_bytes is not None and sent >= total_bytes:
            break
    produced_s = time.perf_counter() - start
    left = 0
    for p in producers:
        left += p.flush(120)
    elapsed = time.perf_counter() - start
    cpu_s = time.process_time() - cpu0
    delivered = count - errors[0] - left
    return {"messages": count, "delivered": delivered, "errors": errors[0], "undelivered": left,
            "bytes": delivered * size, "elapsed_s": elapsed, "produce_s": produced_s, "client_cpu_s": cpu_s,
            "first_error": first_error[0] if first_error else None}


def run_latency(job: dict) -> dict:
    """One message at a time: produce, wait for its acknowledgement, repeat."""
    from confluent_kafka import Producer

    conf = _producer_config(job)
    conf["linger.ms"] = 0
    conf["delivery.report.only.error"] = False
    errors = [0]
    acked = [0]

    def on_delivery(err, _msg):
        acked[0] += 1
        if err is not None:
            errors[0] += 1

    conf["on_delivery"] = on_delivery
    p = Producer(conf)
    topic = job["topic"]
    p.list_topics(topic, timeout=30)
    value = payload_pool()[: int(job.get("size", 100))]

    def one() -> None:
        before = acked[0]
        p.produce(topic, value)
        limit = time.perf_counter() + 10
        while acked[0] == before and time.perf_counter() < limit:
            p.poll(0.1)  # returns as soon as the delivery report is served

    out = _time_each(one, job)
    out["errors"] = errors[0]
    return out


def _time_each(one, job: dict) -> dict:
    """Percentiles of ``one()``'s wall time, after ``warmup`` untimed calls."""
    for _ in range(int(job.get("warmup", 200))):
        one()
    samples = []
    deadline = time.perf_counter() + float(job.get("max_s", 30))
    for _ in range(int(job["count"])):
        t0 = time.perf_counter()
        one()
        t1 = time.perf_counter()
        samples.append((t1 - t0) * 1000)
        if t1 > deadline:
            break
    return _percentiles(samples)


def run_latency_raw(job: dict) -> dict:
    """``latency`` without a client library: one Produce v9 frame on a blocking socket,
    encoded with kafkito's own codec, then its response. librdkafka hands every message
    through its own threads, so its round trip holds client time; this one holds little
    beyond the broker's own work and the loopback, which is what the acks=all-versus-fsync
    figure is about."""
    import socket
    import struct

    from kafkito.protocol import ApiKey, decode_response, encode_request
    from kafkito.protocol.messages.produce import (PartitionProduceData, ProduceRequest,
                                                   TopicProduceData)
    from kafkito.records import build_batch

    host, port = job["bootstrap"].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    acks = -1 if job["acks"] in (-1, "all") else int(job["acks"])
    value = payload_pool()[: int(job.get("size", 100))]
    failures = [0]
    correlation = [0]

    def receive_exactly(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the broker")
            buf += chunk
        return bytes(buf)

    def one() -> None:
        batch = build_batch([(None, value, [], int(time.time() * 1000))])
        request = ProduceRequest(acks=acks, timeout_ms=10_000, topic_data=[TopicProduceData(
            name=job["topic"], partition_data=[PartitionProduceData(index=0, records=batch)])])
        correlation[0] += 1
        sock.sendall(encode_request(ApiKey.PRODUCE, 9, correlation[0], "bench-raw", request))
        (size,) = struct.unpack(">i", receive_exactly(4))
        _, response = decode_response(ApiKey.PRODUCE, 9, receive_exactly(size))
        if response.responses[0].partition_responses[0].error_code:
            failures[0] += 1

    try:
        out = _time_each(one, job)
    finally:
        sock.close()
    out["errors"] = failures[0]
    return out


def _consumer(job: dict, extra: dict | None = None):
    from confluent_kafka import Consumer

    conf = _base_config(job)
    conf.update({"group.id": job.get("group_id", f"bench-{os.getpid()}"), "enable.auto.commit": False})
    conf.update(extra or {})
    conf.update(job.get("consumer_config", {}))
    return Consumer(conf)


def run_consume(job: dict) -> dict:
    """Read the whole topic from its start, up to the end offsets seen before starting."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c = _consumer(job, {"enable.partition.eof": False})
    topic = job["topic"]
    md = c.list_topics(topic, timeout=30)
    parts = sorted(md.topics[topic].partitions)
    if job.get("partitions") is not None:  # several consumer processes share the partitions
        parts = [p for p in parts if p in set(job["partitions"])]
    ends = {}
    for p in parts:
        _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        ends[p] = high
    want = {p for p in parts if ends[p] > 0}
    _barrier()
    start = time.perf_counter()
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    total = 0
    count = 0
    deadline = start + float(job.get("max_s", 120))
    errors = 0
    while want and time.perf_counter() < deadline:
        for m in c.consume(num_messages=10000, timeout=0.5):
            if m.error():
                errors += 1
                continue
            total += len(m)
            count += 1
            p = m.partition()
            if m.offset() >= ends[p] - 1:
                want.discard(p)
    elapsed = time.perf_counter() - start
    c.close()
    return {"bytes": total, "messages": count, "elapsed_s": elapsed, "complete": not want, "errors": errors,
            "end_offsets": ends}


def run_e2e_consume(job: dict) -> dict:
    """Consumer with default fetch settings; latency = receive time - stamp in the value."""
    from confluent_kafka import OFFSET_END, TopicPartition

    c = _consumer(job)
    topic = job["topic"]
    c.list_topics(topic, timeout=30)
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    c.poll(1.0)  # positioned at the end before the producer starts
    _barrier()
    expect = int(job["count"])
    skip = int(job.get("warmup", 0))
    samples = []
    got = 0
    deadline = time.time() + float(job.get("max_s", 60))
    while got < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        now_ns = time.time_ns()
        stamp_ns = int(m.value()[:19])
        got += 1
        if got > skip:
            samples.append((now_ns - stamp_ns) / 1e6)
    c.close()
    out = _percentiles(samples)
    out["received"] = got
    return out


def run_e2e_produce(job: dict) -> dict:
    """A fixed message rate; each value starts with time.time_ns() when it is handed over."""
    from confluent_kafka import Producer

    conf = _producer_config(job)
    conf["linger.ms"] = int(job.get("linger_ms", 0))
    p = Producer(conf)
    topic = job["topic"]
    p.list_topics(topic, timeout=30)
    rate = float(job["rate"])
    count = int(job["count"])
    pad = b"x" * max(0, int(job.get("size", 100)) - 19)
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            p.poll(min(due - now, 0.001))
        p.produce(topic, b"%019d" % time.time_ns() + pad)
        p.poll(0)
    left = p.flush(30)
    return {"sent": count, "undelivered": left, "elapsed_s": time.perf_counter() - start}


def run_group_join(job: dict) -> dict:
    """Default consumer settings; time from subscribe() to the first assignment."""
    assigned: list[float] = []

    def on_assign(_consumer, partitions):
        if not assigned:
            assigned.append(time.perf_counter())

    c = _consumer(job, {"group.id": job["group_id"]})
    topic = job["topic"]
    c.list_topics(topic, timeout=30)
    start = time.perf_counter()
    c.subscribe([topic], on_assign=on_assign)
    deadline = start + float(job.get("max_s", 60))
    last_error = None
    while not assigned and time.perf_counter() < deadline:
        m = c.poll(0.05)
        if m is not None and m.error():
            last_error = str(m.error())
    result = {"join_s": assigned[0] - start if assigned else None, "error": last_error}
    if not assigned:
        result["error"] = last_error or f"no assignment within {job.get('max_s', 60)} s"
    c.close()
    return result


def run_topic(job: dict) -> dict:
    """Create the topic (CreateTopics, else auto-creation through metadata) and report its
    partitions and end offsets. Run as a worker so that no client lingers in the harness."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = job["topic"]
    partitions = int(job.get("partitions", 1))
    timeout_s = float(job.get("timeout_s", 60))
    created_error = None
    if job.get("create", True):
        admin = AdminClient(_base_config(job))
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)],
                                operation_timeout=timeout_s)[topic].result(timeout_s)
        except Exception as exc:  # not served, or exists: auto-creation below tells what we got
            created_error = str(exc)
        p = Producer(_base_config(job))
        deadline = time.monotonic() + timeout_s
        while True:
            md = p.list_topics(topic, timeout=10).topics.get(topic)
            ok = md is not None and md.error is None and md.partitions
            if ok and len(md.partitions) >= partitions:
                break
            if ok:  # exists with fewer partitions (e.g. a broker with one partition per topic)
                deadline = min(deadline, time.monotonic() + 2)
            if time.monotonic() > deadline:
                if ok:
                    break
                return {"error": f"topic {topic} not available: {md.error if md else 'missing'} "
                                 f"(CreateTopics: {created_error})"}
            time.sleep(0.1)
    c = Consumer({**_base_config(job), "group.id": "bench-offsets"})
    md = c.list_topics(topic, timeout=30).topics[topic]
    ends = {}
    for part in sorted(md.partitions):
        ends[part] = c.get_watermark_offsets(TopicPartition(topic, part), timeout=30)[1]
    c.close()
    return {"partitions": len(md.partitions), "end_offsets": ends, "messages": sum(ends.values()),
            "create_topics_error": created_error}


MODES = {"topic": run_topic, "produce": run_produce, "latency": run_latency,
         "latency_raw": run_latency_raw, "consume": run_consume,
         "e2e_consume": run_e2e_consume, "e2e_produce": run_e2e_produce, "group_join": run_group_join}


def main(argv: list[str]) -> int:
    job = json.loads(argv[1])
    try:
        result = MODES[job["mode"]](job)
    except Exception as exc:  # reported to the harness, which records it and goes on
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

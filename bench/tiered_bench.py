"""Tiered storage throughput, each figure a ratio to a baseline measured in the same run.

    .venv/bin/python bench/tiered_bench.py [--dir PATH] [--mb 128] [--repeat 3] [--moto-mb 32]
                                           [--consume-mb 128] [--produce-s 5]
                                           [--json bench/results/tiered.json]

- offload to file://: ``RemoteLogManager.run_partition`` uploading ``--mb`` MB of closed
  8 MiB segments (16 KiB batches) into a directory on the same disk, every object fsynced
  (LocalDirStore), against ``dd``-like sequential writes of the same bytes with one
  fdatasync per segment-sized file;
- remote consume: the whole log read through ``PartitionLog.read`` (1 MiB max_bytes, the
  bytes copied out, as a Fetch of a remote batch does) once every local copy is gone,
  against the same reads of the local log (FileSlice + pread) before; both cold (page
  cache dropped for the segment files, a fresh chunk cache: every byte comes from the
  disk or the store), for file:// and for moto's
  S3 server over HTTP (``--moto-mb``; moto is a Python server, so this figure measures moto
  as much as us);
- consume through the broker: a real ``kafkito serve --remote-storage file://...`` and a
  confluent-kafka consumer reading ``--consume-mb`` MB (16 KiB records) from offset 0, once with every
  segment local (offloaded, local copies kept), then after ``local.retention.ms=0`` removed
  them and a restart emptied the chunk cache (page cache dropped for both reads);
- produce while offloading: a real ``kafkito serve --remote-storage file://...`` and a
  confluent-kafka producer (acks=1, 16 KiB batches) for ``--produce-s`` seconds into a
  topic with 1 MiB segments and ``local.retention.ms=0`` (so uploads and local deletions
  run all the time), against the same producer into a topic without remote storage, on the
  same broker, alternated twice.

A benchmark, not a test: numbers depend on the machine and on whoever else uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from storage_bench import drop_cache  # noqa: E402  (bench/ is sys.path[0] when run as a script)

from kafkito.records import build_batch  # noqa: E402
from kafkito.storage import LogManager, ManualClock  # noqa: E402
from kafkito.storage.remote import RemoteLogManager  # noqa: E402

MB = 1024 * 1024
SEGMENT_BYTES = 8 * MB
T0 = 1_700_000_000_000


def batch_16k() -> bytes:
    value = os.urandom(1000)
    return build_batch([(b"key-%06d" % i, value, [], T0 + i) for i in range(16)])


def raw_sequential_write(directory: str, total: int) -> float:
    chunk = os.urandom(1 * MB)
    t0 = time.perf_counter()
    written = 0
    n = 0
    while written < total:
        path = os.path.join(directory, f"raw-{n}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for _ in range(SEGMENT_BYTES // MB):
                os.write(fd, chunk)
                written += len(chunk)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        n += 1
    return written / (time.perf_counter() - t0) / MB


def tiered_manager(root: str, url: str, clock) -> LogManager:
    mgr = LogManager(os.path.join(root, "data"), clock=clock, remote=RemoteLogManager(url))
    mgr.startup()
    mgr.create_topic("bench", 1, {"remote.storage.enable": "true",
                                  "segment.bytes": str(SEGMENT_BYTES), "retention.ms": "-1",
                                  "local.retention.ms": "-1", "file.delete.delay.ms": "0"})
    return mgr


def fill(plog, total: int, clock) -> int:
    b = batch_16k()
    written = 0
    while written < total:
        plog.append(b, clock.now_ms())
        written += len(b)
    plog.roll()
    plog.flush()
    return written


def read_through(plog) -> tuple[int, float]:
    offset, nbytes = 0, 0
    t0 = time.perf_counter()
    while offset < plog.log_end_offset:
        s = plog.read(offset, MB)
        data = s.tobytes()
        nbytes += len(data)
        offset = s.next_offset
        s.close()
    return nbytes, time.perf_counter() - t0


def offload_and_consume(root: str, url: str, total: int) -> dict:
    clock = ManualClock(T0 + 10_000_000)
    mgr = tiered_manager(root, url, clock)
    try:
        plog = mgr.log("bench", 0)
        fill(plog, total, clock)
        drop_cache(plog.directory)  # cold, as the remote read below
        local_bytes, local_s = read_through(plog)
        t0 = time.perf_counter()
        uploaded = mgr.remote.run_partition(plog, clock.now_ms())
        offload_s = time.perf_counter() - t0
        offloaded = plog.tier.manifest.size_bytes
        mgr.alter_topic_configs("bench", {"remote.storage.enable": "true",
                                          "segment.bytes": str(SEGMENT_BYTES),
                                          "retention.ms": "-1", "local.retention.ms": "0",
                                          "file.delete.delay.ms": "0"})
        plog.apply_retention(clock.now_ms())
        assert plog.local_log_start_offset == plog.tier.manifest.end_offset
        # a cold cache: a fresh reader for the remote pass
        fresh = RemoteLogManager(url)
        plog.tier.reader = fresh.reader
        if url.startswith("file://"):
            drop_cache(url[len("file://"):])
        remote_bytes, remote_s = read_through(plog)
        assert remote_bytes == local_bytes, (remote_bytes, local_bytes)
        return {"segments": uploaded, "offload_mb_s": offloaded / offload_s / MB,
                "local_read_mb_s": local_bytes / local_s / MB,
                "remote_read_mb_s": remote_bytes / remote_s / MB,
                "remote_gets": fresh.reader.cache.gets}
    finally:
        mgr.shutdown()


def produce_rate(bootstrap: str, topic: str, seconds: float) -> float:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                  "batch.size": 16384, "queue.buffering.max.kbytes": 65536})
    value = os.urandom(1000)
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            p.produce(topic, value)
            sent += len(value)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(30)
    return sent / (time.perf_counter() - t0) / MB


def consume_rate(bootstrap: str, topic: str, count: int) -> float:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 8 * MB, "max.partition.fetch.bytes": 4 * MB})
    c.assign([TopicPartition(topic, 0, 0)])
    seen, nbytes = 0, 0
    t0 = time.perf_counter()
    while seen < count:
        for m in c.consume(10_000, 1.0):
            assert m.error() is None, m.error()
            seen += 1
            nbytes += len(m.value())
    elapsed = time.perf_counter() - t0
    c.close()
    return nbytes / elapsed / MB


def consume_through_broker(root: str, total_mb: int) -> dict:
    from confluent_kafka import Producer
    from e2e.serve import ServeProcess
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    bucket = os.path.join(root, "consume-bucket")
    data = Path(root) / "consume-data"
    settings = {"remote.log.storage.system.enable": "true",
                "remote.log.storage.url": f"file://{bucket}",
                "remote.log.manager.task.interval.ms": "200"}
    configs = {"remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
               "retention.ms": "-1", "local.retention.ms": "-1", "file.delete.delay.ms": "0"}
    value = os.urandom(16 * 1024)  # large records: the client's per-record cost stays small
    count = total_mb * MB // len(value)
    with ServeProcess(data, settings) as srv:
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
        admin.create_topics([NewTopic("consume", 1, 1, topic_configs=configs)])
        p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "1", "linger.ms": 5})
        for _ in range(count):
            while True:
                try:
                    p.produce("consume", value, timestamp=T0)
                    break
                except BufferError:
                    p.poll(0.01)
        p.flush(60)
        del p
        drop_cache(str(data))
        local = consume_rate(srv.bootstrap, "consume", count)
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "consume",
                                            configs=dict(configs, **{"local.retention.ms": "0"}))])
        admin.close()
        deadline = time.monotonic() + 120
        while len(list(data.glob("consume-0/*.log"))) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        srv.stop()
    drop_cache(bucket)
    with ServeProcess(data, settings) as srv:  # a fresh chunk cache
        remote = consume_rate(srv.bootstrap, "consume", count)
        srv.stop()
    return {"local_mb_s": local, "remote_mb_s": remote}


def produce_while_offloading(root: str, seconds: float) -> dict:
    from e2e.serve import ServeProcess
    from kafka.admin import KafkaAdminClient, NewTopic

    bucket = os.path.join(root, "produce-bucket")
    settings = {"remote.log.storage.system.enable": "true",
                "remote.log.storage.url": f"file://{bucket}",
                "remote.log.manager.task.interval.ms": "200", "log.flush.interval.ms": "100"}
    with ServeProcess(Path(root) / "produce-data", settings) as srv:
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
        common = {"segment.bytes": str(MB), "retention.ms": "-1", "file.delete.delay.ms": "0"}
        admin.create_topics([NewTopic("alone", 1, 1, topic_configs=common),
                             NewTopic("tiered", 1, 1, topic_configs=dict(
                                 common, **{"remote.storage.enable": "true",
                                            "local.retention.ms": "0"}))])
        admin.close()
        alone, tiered = [], []
        for _ in range(2):
            alone.append(produce_rate(srv.bootstrap, "alone", seconds))
            tiered.append(produce_rate(srv.bootstrap, "tiered", seconds))
        uploaded = sum(1 for p in Path(bucket).rglob("*.log"))
        srv.stop()
    return {"alone_mb_s": sum(alone) / 2, "offloading_mb_s": sum(tiered) / 2,
            "segments_offloaded": uploaded}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--mb", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3, help="file:// runs (medians reported)")
    ap.add_argument("--moto-mb", type=int, default=32)
    ap.add_argument("--produce-s", type=float, default=5)
    ap.add_argument("--consume-mb", type=int, default=128)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="kafkito-tiered-bench-", dir=args.dir)
    results: dict = {}
    try:
        # The disk is shared: the raw write and the file:// run alternate, --repeat times,
        # and each figure is the median.
        disk, runs = [], []
        raw_dir = os.path.join(root, "raw")
        for i in range(args.repeat):
            os.makedirs(raw_dir)
            disk.append(raw_sequential_write(raw_dir, args.mb * MB))
            shutil.rmtree(raw_dir)
            runs.append(offload_and_consume(os.path.join(root, f"f{i}"),
                                            f"file://{root}/bucket{i}", args.mb * MB))
            shutil.rmtree(os.path.join(root, f"f{i}"), ignore_errors=True)
            shutil.rmtree(os.path.join(root, f"bucket{i}"), ignore_errors=True)
        results["disk_seq_write_mb_s"] = statistics.median(disk)
        results["file"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results["file"]["consume_ratio"] = statistics.median(
            r["remote_read_mb_s"] / r["local_read_mb_s"] for r in runs)
        results["file"]["offload_ratio"] = statistics.median(
            r["offload_mb_s"] / d for r, d in zip(runs, disk))
        if args.moto_mb:
            from moto.server import ThreadedMotoServer
            import boto3
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="x",
                              AWS_SECRET_ACCESS_KEY="x", AWS_REGION="us-east-1")
            boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                         aws_access_key_id="x", aws_secret_access_key="x").create_bucket(
                             Bucket="kafkito-bench")
            try:
                results["moto"] = offload_and_consume(os.path.join(root, "m"),
                                                      "s3://kafkito-bench/b", args.moto_mb * MB)
            finally:
                server.stop()
        if args.consume_mb:
            results["consume"] = consume_through_broker(root, args.consume_mb)
        if args.produce_s:
            results["produce"] = produce_while_offloading(root, args.produce_s)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    disk = results["disk_seq_write_mb_s"]
    print(f"disk sequential write (8 MiB files, fdatasync each; median of {args.repeat}): "
          f"{disk:8.1f} MB/s")
    for name in ("file", "moto"):
        r = results.get(name)
        if r:
            offload = r.get("offload_ratio", r["offload_mb_s"] / disk)
            consume = r.get("consume_ratio", r["remote_read_mb_s"] / r["local_read_mb_s"])
            print(f"{name:5} offload {r['offload_mb_s']:8.1f} MB/s  ({offload:.2f}x disk"
                  f" write){'' if name == 'file' else ' (moto: a Python server)'}")
            print(f"{name:5} consume remote {r['remote_read_mb_s']:8.1f} MB/s vs local "
                  f"{r['local_read_mb_s']:8.1f} MB/s = {consume:.2f}x  ({r['remote_gets']:.0f} ranged GETs)")
    c = results.get("consume")
    if c:
        print(f"consume through the broker: remote (file://) {c['remote_mb_s']:6.1f} MB/s vs local "
              f"{c['local_mb_s']:6.1f} MB/s = {c['remote_mb_s'] / c['local_mb_s']:.2f}x")
    p = results.get("produce")
    if p:
        print(f"produce while offloading {p['offloading_mb_s']:6.1f} MB/s vs alone "
              f"{p['alone_mb_s']:6.1f} MB/s = {p['offloading_mb_s'] / p['alone_mb_s']:.2f}x "
              f"({p['segments_offloaded']} segments offloaded)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

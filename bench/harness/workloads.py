"""The workloads: what is measured, with which load, and what "better" means.

Theory of operation
-------------------
A ``Case`` is one measurement (``produce/1KB/acks=1/none``, ``e2e/1000msg/s``, ...). Its
``run(ctx, broker)`` starts the broker fresh (``ctx.session``), sets up the topic, runs
the load generator and returns one sample: a dict of named figures. The broker's CPU
seconds and peak RSS over the measured part come from ``ctx.watch``. The runner calls
every case for every broker, alternating the order between repetitions, so slow drift
on a shared machine (teammates' test suites) hits all brokers alike, and it reports the
median sample per broker.

Each figure has a ``Metric``: a unit and a direction (``higher`` or ``lower`` is
better), which is all the report needs to turn two figures into a ratio.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .brokers import REPO, BrokerUnderTest, ResourceWatch, Tansu, rss_mb, wait_port, free_port
from .workers import Worker, first_error, run_together

KB = 1000
MB = 1000 * 1000
GB = 1000 * 1000 * 1000


class NotSupported(Exception):
    """The broker lacks what the case needs; recorded as "not supported", not as a failure."""


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower" is better; "info": shown, never compared


MB_S = Metric("mb_s", "throughput", "MB/s", "higher")
CLIENT = Metric("client_cores", "load-generator CPU", "cores", "info")
# Broker CPU per MB moved: unlike MB/s it hardly depends on what else the shared machine runs.
CPU_PER_MB = Metric("broker_cpu_ms_per_mb", "broker CPU per MB", "ms", "lower")


def add_cpu_per_mb(sample: dict) -> dict:
    if sample.get("broker_cpu_s") is not None and sample.get("bytes"):
        sample["broker_cpu_ms_per_mb"] = sample["broker_cpu_s"] * 1000 / (sample["bytes"] / MB)
    return sample
CPU = Metric("broker_cpu_s", "broker CPU", "s", "lower")
RSS = Metric("broker_peak_rss_mb", "broker peak RSS", "MB", "lower")


@dataclass
class Case:
    id: str
    group: str
    run: Callable[["Context", BrokerUnderTest], dict]
    metrics: list[Metric]
    reps: int = 1
    only_persistent: bool = False  # e.g. restart with retained data: meaningless for memory storage
    note: str = ""


@dataclass
class Context:
    workdir: Path
    quick: bool = False
    big: bool = False
    produce_s: float = 4.0
    producers: int = 2
    log: Callable[[str], None] = print
    consume_max_s: float = 60.0
    consumers: int = 1
    profile: bool = False          # py-spy record kafkito during each measured part
    out_dir: Path | None = None
    case_id: str = ""              # set by the runner: names profile files

    @contextlib.contextmanager
    def session(self, broker: BrokerUnderTest, *, partitions: int = 1):
        broker.start(partitions=partitions)
        try:
            yield broker
        finally:
            broker.stop()

    def watch(self, broker: BrokerUnderTest) -> ResourceWatch:
        profile_to = None
        if self.profile and broker.name == "kafkito" and self.out_dir is not None:
            safe = self.case_id.replace("/", "_").replace("=", "")
            profile_to = self.out_dir / "profiles" / f"{safe}.txt"
        return ResourceWatch(broker.pid, profile_to=profile_to)


def create_topic(bootstrap: str, topic: str, partitions: int) -> int:
    """Create the topic (a worker process does it); returns the partition count the broker reports."""
    r = Worker({"mode": "topic", "bootstrap": bootstrap, "topic": topic, "partitions": partitions}).result(120)
    if r.get("error"):
        raise RuntimeError(r["error"])
    return r["partitions"]


def stored_messages(bootstrap: str, topic: str) -> int:
    """Sum of the end offsets: what the broker says it keeps, to check delivery reports."""
    r = Worker({"mode": "topic", "bootstrap": bootstrap, "topic": topic, "create": False}).result(120)
    if r.get("error"):
        raise RuntimeError(r["error"])
    return r["messages"]


def _label_size(size: int) -> str:
    if size >= MB:
        return f"{size // MB}MB"
    if size >= KB:
        return f"{size // KB}KB"
    return f"{size}B"


# -- produce throughput -------------------------------------------------------------------

def produce_jobs(bootstrap: str, topic: str, size: int, acks, compression: str, *, processes: int,
                 duration_s: float | None = None, total_bytes: int | None = None, instances: int = 1) -> list[dict]:
    jobs = []
    for _ in range(processes):
        job = {"mode": "produce", "bootstrap": bootstrap, "topic": topic, "size": size, "acks": acks,
               "compression": compression, "instances": instances}
        if total_bytes is not None:
            job["total_bytes"] = total_bytes // processes
        else:
            job["duration_s"] = duration_s
        jobs.append(job)
    return jobs


def summarize_produce(results: list[dict]) -> dict:
    err = first_error(results)
    if err:
        raise RuntimeError(err)
    total = sum(r["bytes"] for r in results)
    msgs = sum(r["delivered"] for r in results)
    elapsed = max(r["elapsed_s"] for r in results)
    out = {"mb_s": total / elapsed / MB, "msgs_s": msgs / elapsed, "bytes": total, "elapsed_s": elapsed,
           # Load generator CPU in cores: near the core count means the client, not the broker, is the limit.
           "client_cores": sum(r.get("client_cpu_s", 0) for r in results) / elapsed}
    failed = sum(r["errors"] + r["undelivered"] for r in results)
    if failed:
        first = next((r["first_error"] for r in results if r.get("first_error")), None)
        out["delivery_failures"] = failed
        if failed > 0.01 * max(1, sum(r["messages"] for r in results)):
            raise RuntimeError(f"{failed} messages not delivered: {first}")
    return out


def produce_case(size: int, acks, compression: str, *, partitions: int = 1, connections: int | None = None,
                 reps: int = 1, case_id: str | None = None, group: str = "produce") -> Case:
    acks_label = "all" if acks in (-1, "all") else str(acks)

    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        if compression not in broker.compression_types:
            raise NotSupported(f"does not negotiate {compression}: librdkafka would send uncompressed batches")
        with ctx.session(broker, partitions=partitions):
            topic = f"produce-{size}-{acks_label}-{compression}-{partitions}"
            got = create_topic(broker.bootstrap, topic, partitions)
            if connections is None:
                processes, instances = ctx.producers, 1
            else:
                processes = 1 if connections == 1 else min(ctx.producers, connections)
                instances = max(1, connections // processes)
            jobs = produce_jobs(broker.bootstrap, topic, size, acks, compression, processes=processes,
                                duration_s=ctx.produce_s, instances=instances)
            watch = ctx.watch(broker)
            results, _ = run_together(jobs, during=watch)
            out = summarize_produce(results)
            out.update(watch.result())
            add_cpu_per_mb(out)
            out["partitions"] = got
            if partitions > 1 and got != partitions:
                raise RuntimeError(f"asked for {partitions} partitions, the broker made {got}")
            # The delivery reports are the client's word; the end offsets are the broker's. Tansu's
            # "latest" offset is the start of the last batch + 1: allow one batch short per partition.
            delivered = sum(r["delivered"] for r in results)
            batch_messages_max = min(10_000, 1_000_000 // size + 1)  # librdkafka's batch.num.messages, batch.size
            short_max = got * batch_messages_max
            for _ in range(10):  # kafkito's high watermark is the flushed offset: give a flush time
                out["stored_messages"] = stored_messages(broker.bootstrap, topic)
                if delivered - out["stored_messages"] <= short_max:
                    break
                time.sleep(0.3)
            else:
                raise RuntimeError(f"{delivered} messages acknowledged but end offsets add up to "
                                   f"{out['stored_messages']}")
            return out

    cid = case_id or f"produce/{_label_size(size)}/acks={acks_label}/{compression}"
    return Case(cid, group, run, [MB_S, CPU_PER_MB, CPU, RSS, CLIENT], reps=reps)


# -- one-at-a-time produce latency ----------------------------------------------------------

def latency_case(acks, count: int, reps: int = 1, raw: bool = False) -> Case:
    """One message at a time through librdkafka, or (``raw``) through a bare socket: the
    raw figures minus the machine's fsync say what one acks=all round costs the broker."""
    acks_label = "all" if acks in (-1, "all") else str(acks)

    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        with ctx.session(broker):
            topic = "latency"
            create_topic(broker.bootstrap, topic, 1)
            w = Worker({"mode": "latency_raw" if raw else "latency", "bootstrap": broker.bootstrap, "topic": topic, "acks": acks,
                        "size": 100, "count": count, "warmup": 200, "max_s": 60})
            with ctx.watch(broker) as watch:
                r = w.result()
            if r.get("error"):
                raise RuntimeError(r["error"])
            r.update(watch.result())
            return r

    metrics = [Metric("p50_ms", "p50", "ms", "lower"), Metric("p99_ms", "p99", "ms", "lower"),
               Metric("p999_ms", "p99.9", "ms", "lower"), CPU]
    if raw:
        return Case(f"latency/100B/acks={acks_label}/raw", "latency", run, metrics, reps=reps,
                    note="one Produce at a time on a bare socket (kafkito's codec, no client library)")
    return Case(f"latency/100B/acks={acks_label}", "latency", run, metrics, reps=reps,
                note="one message at a time, linger.ms=0, wait for each acknowledgement")


# -- consume throughput from the start of a 1 GB topic, and what retaining it costs --------

def fill(bootstrap: str, topic: str, total_bytes: int, size: int, processes: int) -> dict:
    results, _ = run_together(produce_jobs(bootstrap, topic, size, 1, "none", processes=processes,
                                           total_bytes=total_bytes), timeout_s=1800)
    return summarize_produce(results)


def wait_idle_rss(broker: BrokerUnderTest, settle_s: float = 1.0) -> float | None:
    time.sleep(settle_s)
    return rss_mb(broker.pid)


def consume_all(ctx: Context, broker: BrokerUnderTest, topic: str, partitions: int,
                config: dict | None = None) -> dict:
    """Read ``topic`` from offset 0 to the end offsets seen at start; one sample."""
    # A time cap keeps a slow broker from taking the run: MB/s is then over what was read.
    # With --consumers N, N processes split the partitions (on 2 cores one is fastest).
    jobs = [{"mode": "consume", "bootstrap": broker.bootstrap, "topic": topic,
             "max_s": ctx.consume_max_s, "partitions": list(range(i, partitions, ctx.consumers)),
             "consumer_config": {"fetch.queue.backoff.ms": 10, **(config or {})}}
            for i in range(min(ctx.consumers, partitions))]
    watch = ctx.watch(broker)
    results, _ = run_together(jobs, during=watch)
    err = first_error(results)
    if err:
        raise RuntimeError(err)
    total = sum(r["bytes"] for r in results)
    elapsed = max(r["elapsed_s"] for r in results)
    if not total:
        raise RuntimeError(f"consumers read nothing in {elapsed:.1f} s")
    sample = {"complete": all(r["complete"] for r in results), "mb_s": total / elapsed / MB,
              "msgs_s": sum(r["messages"] for r in results) / elapsed, "bytes": total,
              "consumers": len(jobs)}
    sample.update(watch.result())
    return add_cpu_per_mb(sample)


def consume_case(total_bytes: int, reps: int, partitions: int = 4) -> Case:
    def run(ctx: Context, broker: BrokerUnderTest) -> list[dict]:
        samples = []
        with ctx.session(broker, partitions=partitions):
            topic = "consume"
            got = create_topic(broker.bootstrap, topic, partitions)
            filled = fill(broker.bootstrap, topic, total_bytes, 1000, ctx.producers)
            ctx.log(f"    filled {filled['bytes'] / MB:.0f} MB at {filled['mb_s']:.0f} MB/s")
            time.sleep(1.0)  # let a background flush settle: kafkito serves only flushed data
            rss_after_fill = wait_idle_rss(broker)
            for _ in range(reps):
                sample = consume_all(ctx, broker, topic, got)
                sample.update({"fill_mb_s": filled["mb_s"], "rss_after_fill_mb": rss_after_fill})
                samples.append(sample)
                if not sample["complete"]:
                    break  # it hit the time cap: one such sample says enough, repeating costs minutes
            if broker.persistent:
                broker.stop(keep_data=True)
                t = broker.start(partitions=partitions, keep_data=True)
                after = wait_idle_rss(broker)
                for s in samples:
                    s["restart_s"] = t
                    s["rss_after_restart_mb"] = after
        return samples

    gb = total_bytes / GB
    metrics = [MB_S, CPU_PER_MB, CPU, RSS, Metric("rss_after_fill_mb", f"idle RSS holding {gb:g} GB", "MB", "lower"),
               Metric("restart_s", f"restart with {gb:g} GB", "s", "lower"),
               Metric("rss_after_restart_mb", f"idle RSS after restart with {gb:g} GB", "MB", "lower")]
    return Case(f"consume/{gb:g}GB", "consume", run, metrics, note=f"{partitions} partitions of 1 KB messages, "
                "read from offset 0 to the end offsets seen at start by one consumer process (two contend for the "
                "2 cores and are slower); default consumer settings except fetch.queue.backoff.ms=10 (librdkafka's 1000 ms default pauses fetching for a second whenever its "
                "local queue is full, which measures the Python consumer loop instead of the broker)")


def read_committed_case(total_bytes: int, reps: int, partitions: int = 4) -> Case:
    """isolation.level=read_committed against read_uncommitted over the same topic, the
    two alternating in one session: what the LSO bound and the aborted-transaction lookup
    cost a consumer. The topic holds plain 1 KB records (filling it transactionally needs
    the transaction coordinator's bench mode; the read path is the same)."""

    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        with ctx.session(broker, partitions=partitions):
            topic = "read-committed"
            got = create_topic(broker.bootstrap, topic, partitions)
            fill(broker.bootstrap, topic, total_bytes, 1000, ctx.producers)
            time.sleep(1.0)  # let a background flush settle: kafkito serves only flushed data
            best: dict[str, dict] = {}
            for _ in range(reps):
                for level in ("read_uncommitted", "read_committed"):
                    sample = consume_all(ctx, broker, topic, got, {"isolation.level": level})
                    if level not in best or sample["mb_s"] > best[level]["mb_s"]:
                        best[level] = sample
            committed, uncommitted = best["read_committed"], best["read_uncommitted"]
            out = dict(committed)
            out["read_uncommitted_mb_s"] = uncommitted["mb_s"]
            out["read_committed_ratio"] = committed["mb_s"] / uncommitted["mb_s"]
            return out

    mb = total_bytes / MB
    metrics = [MB_S, Metric("read_committed_ratio", "read_committed / read_uncommitted", "x", "higher"),
               CPU_PER_MB]
    return Case(f"consume/read_committed/{mb:g}MB", "consume", run, metrics,
                note=f"{partitions} partitions of 1 KB records; best of each isolation level, "
                     "alternating, in one session")


def retained_case(total_bytes: int, partitions: int = 4) -> Case:
    """Fill, then restart: RSS and restart time must not grow with the data kept."""

    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        with ctx.session(broker, partitions=partitions):
            topic = "retained"
            create_topic(broker.bootstrap, topic, partitions)
            filled = fill(broker.bootstrap, topic, total_bytes, 10 * KB, ctx.producers)
            ctx.log(f"    filled {filled['bytes'] / MB:.0f} MB at {filled['mb_s']:.0f} MB/s")
            out = {"fill_mb_s": filled["mb_s"], "rss_after_fill_mb": wait_idle_rss(broker)}
            broker.stop(keep_data=True)
            out["restart_s"] = broker.start(partitions=partitions, keep_data=True)
            out["rss_after_restart_mb"] = wait_idle_rss(broker)
            return out

    gb = total_bytes / GB
    metrics = [Metric("restart_s", f"restart with {gb:g} GB", "s", "lower"),
               Metric("rss_after_restart_mb", f"idle RSS after restart with {gb:g} GB", "MB", "lower"),
               Metric("rss_after_fill_mb", f"idle RSS holding {gb:g} GB", "MB", "lower")]
    return Case(f"retained/{gb:g}GB", "scaling", run, metrics, only_persistent=True)


# -- end-to-end latency at a fixed rate ------------------------------------------------------

def e2e_case(rate: int, duration_s: float) -> Case:
    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        count = int(rate * duration_s)
        with ctx.session(broker):
            topic = "e2e"
            create_topic(broker.bootstrap, topic, 1)
            consumer = Worker({"mode": "e2e_consume", "bootstrap": broker.bootstrap, "topic": topic,
                               "count": count, "warmup": min(100, count // 10), "max_s": duration_s + 60})
            try:
                consumer.wait_ready()
                with ctx.watch(broker) as watch:
                    consumer.go()
                    producer = Worker({"mode": "e2e_produce", "bootstrap": broker.bootstrap, "topic": topic,
                                       "rate": rate, "count": count, "size": 100})
                    pr = producer.result()
                    r = consumer.result()
            finally:
                consumer.kill()
            err = pr.get("error") or r.get("error")
            if err:
                raise RuntimeError(err)
            if r["received"] < count:
                r["lost"] = count - r["received"]
            r.update(watch.result())
            return r

    metrics = [Metric("p50_ms", "p50", "ms", "lower"), Metric("p99_ms", "p99", "ms", "lower"),
               Metric("p999_ms", "p99.9", "ms", "lower"), CPU]
    return Case(f"e2e/{rate}msg/s", "latency", run, metrics,
                note="producer linger.ms=0 acks=all; consumer with default settings (fetch.wait.max.ms=500)")


# -- consumer-group join ---------------------------------------------------------------------

def group_join_case() -> Case:
    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        with ctx.session(broker):
            topic = "join"
            create_topic(broker.bootstrap, topic, 1)
            w = Worker({"mode": "group_join", "bootstrap": broker.bootstrap, "topic": topic,
                        "group_id": f"bench-join-{time.time_ns()}", "max_s": 60})
            r = w.result(120)
            if r.get("join_s") is None:
                raise RuntimeError(r.get("error") or "no assignment")
            return r

    return Case("group/join", "group", run, [Metric("join_s", "first assignment", "s", "lower")],
                note="default consumer settings (session.timeout.ms=45000), subscribe to first assignment")


# -- start-up --------------------------------------------------------------------------------

def startup_case(runs: int) -> Case:
    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        out: dict = {}
        if broker.name == "kafkito":
            sys.path.insert(0, str(REPO))
            from bench import startup_bench

            serve = [startup_bench.serve_once() for _ in range(runs)]
            out["startup_serve_ms"] = statistics.median(serve)
            code = ("import json; from bench import startup_bench as s; s.embedded_once(); "
                    f"print(json.dumps([s.embedded_once() for _ in range({runs})]))")
            r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                out["startup_embedded_ms"] = statistics.median(json.loads(r.stdout.strip().splitlines()[-1]))
            else:
                out["embedded_error"] = r.stderr.strip()[-300:]
        elif isinstance(broker, Tansu):
            times = []
            for _ in range(runs):
                port = free_port()
                t0 = time.perf_counter()
                proc = broker.spawn_direct(port)
                try:
                    wait_port(port, proc, 30)
                    times.append((time.perf_counter() - t0) * 1000)
                finally:
                    proc.terminate()
                    proc.wait(10)
            out["startup_serve_ms"] = statistics.median(times)
        elif broker.managed:
            times = []
            for _ in range(runs):
                times.append(broker.start() * 1000)
                broker.stop()
            out["startup_serve_ms"] = statistics.median(times)
        if broker.managed:
            with ctx.session(broker):
                out["idle_rss_mb"] = wait_idle_rss(broker, 1.0)
        return out

    metrics = [Metric("startup_serve_ms", "start-up to first connection (serve)", "ms", "lower"),
               Metric("startup_embedded_ms", "start-up (embedded)", "ms", "lower"),
               Metric("idle_rss_mb", "idle RSS", "MB", "lower")]
    return Case("startup", "startup", run, metrics, note=f"median of {runs} starts on an empty data directory")


def idle_connections_case(count: int) -> Case:
    """What ``count`` idle client connections cost the broker (issue 10: 77 KB each once)."""
    def run(ctx: Context, broker: BrokerUnderTest) -> dict:
        sys.path.insert(0, str(REPO))
        from bench.idle_connections import open_idle_connections

        with ctx.session(broker):
            host, _, port = broker.bootstrap.rpartition(":")
            before = wait_idle_rss(broker, 2.0)
            socks = open_idle_connections(host, int(port), count)
            try:
                after = wait_idle_rss(broker, 3.0)  # past kafkito's idle sweep, which trims buffers
            finally:
                for s in socks:
                    s.close()
        if before is None or after is None:
            return {}
        return {"idle_connections_rss_mb": after, "rss_per_idle_connection_kb": (after - before) * 1024 / count}

    metrics = [Metric("idle_connections_rss_mb", f"RSS with {count:,} idle connections", "MB", "lower"),
               Metric("rss_per_idle_connection_kb", "RSS per idle connection", "KB", "lower")]
    return Case(f"connections/{count}-idle", "scaling", run, metrics,
                note="each connection did one ApiVersions, then sits idle; RSS 3 s later")


# -- the plan --------------------------------------------------------------------------------

TARGET_PRODUCE = {(1 * KB, 1), (10 * KB, 1), (1 * KB, "all"), (10 * KB, "all")}


def plan(ctx: Context) -> list[Case]:
    quick = ctx.quick
    cases: list[Case] = [startup_case(3 if quick else 5)]
    for size in (100, 1 * KB, 10 * KB, 1 * MB):
        for acks in (1, "all"):
            for compression in ("none", "zstd"):
                target = (size, acks) in TARGET_PRODUCE and compression == "none"
                if quick and not target and not (acks == 1 and (compression == "none" or size == 1 * KB)):
                    continue
                cases.append(produce_case(size, acks, compression, reps=3 if target and not quick else 1))
    cases.append(latency_case(1, 1000 if quick else 3000, reps=1 if quick else 3))
    cases.append(latency_case("all", 500 if quick else 2000))
    cases.append(latency_case(1, 1000 if quick else 3000, raw=True))
    cases.append(latency_case("all", 1000 if quick else 3000, raw=True))
    cases.append(read_committed_case(256 * MB, reps=1 if quick else 3))
    cases.append(e2e_case(1000, 3 if quick else 10))
    cases.append(consume_case(1 * GB, reps=1 if quick else 3))
    cases.append(group_join_case())
    # partitions/1 is produce/1KB/acks=1/none again: quick runs skip it, with the 1,000 case.
    for partitions in (100,) if quick else (1, 100, 1000):
        cases.append(produce_case(1 * KB, 1, "none", partitions=partitions, group="scaling",
                                  case_id=f"partitions/{partitions}"))
    for connections in (1, 50, 200):
        cases.append(produce_case(1 * KB, 1, "none", connections=connections, group="scaling",
                                  case_id=f"connections/{connections}"))
    cases.append(idle_connections_case(2000))
    if ctx.big:
        cases.append(retained_case(10 * GB))
    return cases

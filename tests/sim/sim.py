"""The seeded whole-broker simulation (TigerBeetle's VOPR is the model).

Theory of operation. One seed decides everything: the broker's settings, the clients, every
think time, which faults are switched on and when each strikes, how each run ends, what a
power loss keeps. The real ``Broker`` runs under trio's ``MockClock(autojump_threshold=0)``
with trio's scheduler made deterministic (tasks of one batch ordered by creation, then
shuffled by a PRNG seeded from the seed) and the few sources of randomness the broker uses
(uuid4 for member and topic ids) seeded too, so a seed replays exactly: the run prints a
fingerprint of its trace to prove it.

The broker serves no sockets (``Broker._listen`` is overridden); clients call the handlers
through ``Wire``, the connection's request path without the socket. Its files go through
``SimIO``. Worker threads are replaced by calls in the trio thread (fsyncs take simulated
time instead), so nothing but the PRNG decides interleavings.

A run is a sequence of *lives* of the broker on one data directory. Each life starts the
broker, checks what recovery kept against the model, lets the clients run for a while, and
ends in one of three ways: a clean stop, a kill (the process is gone, the page cache stays)
or a power loss (the disk goes back to what was fsynced, torn as the seed says). Between
lives, old closed segments may have bytes flipped (``flip_old_segment_bytes``).

A failure raises ``Violation``; ``run_seed`` returns it with the seed and the step so that
``python tests/sim --seed N`` replays it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import shutil
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field, fields

import trio
import trio.testing

from kafkito.broker.config import load_config
from kafkito.broker.server import Broker, BrokerShutdownError
from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages import fetch as F
from kafkito.protocol.messages import offset_fetch as OF
from kafkito.records.batch import iter_batches
from kafkito.storage.errors import KafkaStorageError

from . import planted
from .clients import GROUP, Admin, Consumer, GroupMember, IdempotentProducer, Producer, check_batches
from .model import Model, Violation
from .simio import Faults, ProcessDead, SimIO
from .wire import HandlerCrashed, Wire

E = ErrorCode
BASE_MS = 1_700_000_000_000
TOPICS = ("t0", "t1")


@dataclass
class Knobs:
    """Which faults a scenario may use (each still fires only when its seed says so)."""

    power_loss: bool = True
    kill: bool = True
    fsync_errors: bool = True
    fsync_delays: bool = True
    torn_writes: bool = True
    disk_full: bool = False  # on in CI for odd seeds (see test_sim.py); with flips it fails today
    flip_old_segment_bytes: bool = True  # damaged old segments (issue 10 item 1)
    # Hold the group coordinator to membership surviving a power loss. Off: its membership
    # records are written without an fsync by design, so a power loss may forget a synced
    # generation (seed 168 shows it: a new member then gets generation 1 and every partition).
    group_membership_fsynced: bool = False
    crash_anywhere: bool = True  # crashes at a random system call, not only between requests
    lives: int = 3
    plant: str | None = None  # a planted bug (planted.py), for the test that the sim finds bugs

    @classmethod
    def parse(cls, text: str) -> "Knobs":
        """``flip_old_segment_bytes=1,lives=5``"""
        knobs = cls()
        for item in filter(None, text.split(",")):
            name, _, value = item.partition("=")
            kind = {f.name: f.type for f in fields(cls)}[name]
            setattr(knobs, name, value if "str" in str(kind) else
                    (value.lower() in ("1", "true", "yes", "") if "bool" in str(kind) else int(value)))
        return knobs


@dataclass
class Result:
    seed: int
    steps: int = 0
    lives: int = 0
    violation: str | None = None
    violation_step: int | None = None
    fingerprint: str = ""
    trace_tail: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list, repr=False)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.violation is None

    def report(self, knobs: Knobs) -> str:
        if self.ok:
            return (f"seed {self.seed}: ok ({self.steps} steps, {self.lives} lives, "
                    f"fingerprint {self.fingerprint}, {self.stats})")
        replay = f"python tests/sim --seed {self.seed}"
        if knobs != Knobs():
            replay += " --knobs " + ",".join(
                f"{f.name}={getattr(knobs, f.name)}" for f in fields(knobs)
                if getattr(knobs, f.name) != getattr(Knobs(), f.name))
        tail = "\n    ".join(self.trace_tail)
        return (f"seed {self.seed}: VIOLATION at step {self.violation_step}: {self.violation}\n"
                f"  replay: {replay}\n  fingerprint {self.fingerprint}\n  last steps:\n    {tail}")


class SimClock:
    """Storage's and the coordinator's clock, read from trio's (mock) clock."""

    def now_ms(self) -> int:
        return BASE_MS + int(trio.current_time() * 1000)


class _NoListener(trio.abc.Listener):
    async def accept(self):
        await trio.sleep_forever()

    async def aclose(self) -> None:
        pass


class SimBroker(Broker):
    async def _listen(self, host: str, port: int):
        return [_NoListener()], port or 9092


class Simulation:
    def __init__(self, seed: int, knobs: Knobs, directory: str) -> None:
        self.seed = seed
        self.knobs = knobs
        self.rng = random.Random(seed)
        self.directory = directory
        self.clock = SimClock()
        self.faults = Faults(torn_writes=knobs.torn_writes)
        self.io = SimIO(directory, random.Random(self.rng.getrandbits(64)), self.faults)
        self.model = Model()
        self.topics_created = False
        self.warned: set[str] = set()  # partitions storage logged a recovery warning for
        self.steps = 0
        self.trace_lines: list[str] = []
        self.digest = hashlib.sha256()
        self.state = None
        self.alive = False
        self.stats = {"acked_all": 0, "served": 0, "kills": 0, "power_losses": 0, "clean_stops": 0,
                      "flips": 0, "fsync_failures": 0, "enospc": 0}
        self.partitions = [(t, p) for t in TOPICS for p in range(2)]
        seg = self.rng.choice([1024, 2048, 4096])
        self.settings = {
            "log.dirs": directory, "listeners": "127.0.0.1:9092", "http.listeners": "off",
            "log.segment.bytes": seg, "log.index.interval.bytes": self.rng.choice([128, 4096]),
            "log.retention.ms": -1, "log.flush.interval.ms": self.rng.choice([0, 50, 1000]),
            "group.initial.rebalance.delay.ms": self.rng.choice([0, 300]),
            "auto.create.topics.enable": False,
            # The cleaner in trio's worker threads, which run inline here (a thread of its
            # own at a lower priority would run outside the simulation).
            "log.cleaner.thread.nice": 0,
        }
        n = self.rng
        self.clients = ([Producer(self, f"p{i}") for i in range(n.randint(1, 3))]
                        + [IdempotentProducer(self, f"i{i}") for i in range(n.randint(0, 2))]
                        + [Consumer(self, f"c{i}") for i in range(n.randint(1, 2))])
        self.members = [GroupMember(self, f"m{i}") for i in range(n.randint(0, 3))]
        self.clients += self.members
        admin_rng = random.Random(f"admin/{seed}")  # its own stream: other seeds' draws unchanged
        if admin_rng.random() < 0.5:
            self.clients.append(Admin(self, "a0", admin_rng))

    # -- tracing ---------------------------------------------------------------------------
    def trace(self, line: str) -> None:
        self.steps += 1
        line = f"{self.steps} t={trio.current_time():.3f} {line}"
        self.trace_lines.append(line)
        self.digest.update(line.encode())

    async def call(self, client: str, api_key, version, body):
        if not self.alive:
            raise _Dropped()
        wire = Wire(self.state, client)
        try:
            response = await wire.call(api_key, version, body)
        except ProcessDead:
            raise _Dropped() from None
        except HandlerCrashed as exc:
            if self.io.dead:
                raise _Dropped() from None
            # The connection would log it and close: the client gets no answer, ever (a
            # consumer retrying the same offset is stuck). A handler must answer with an
            # error code instead.
            raise Violation(f"{client}: the {ApiKey(api_key).name} handler raised {exc}") from None
        if self.io.dead or not self.alive:
            raise _Dropped()  # computed by a process that is gone: never delivered
        return response

    # -- the run ---------------------------------------------------------------------------
    async def main(self) -> None:
        for life in range(self.knobs.lives):
            self.stats["lives"] = life + 1
            await self.life(clients=True)
        await self.life(clients=False)  # a last start: recovery checked, no load

    async def life(self, clients: bool) -> None:
        """One start of the broker, a while of client traffic, and its end (see the module
        docstring). A crash may strike at a random system call: during start-up and
        recovery, in the middle of a request, or during a clean stop."""
        config = load_config(environ={}, overrides=list(self.settings.items()), origin="sim")
        broker = SimBroker(config, clock=self.clock, io=self.io, shutdown_grace_s=1.0)
        crash = self.rng.choice(["kill"] * self.knobs.kill + ["power"] * self.knobs.power_loss or [None])
        ending = "clean" if not clients or crash is None else self.rng.choice(["clean", crash, crash])
        death = trio.Event()
        self.io.on_death = death.set
        if clients and crash and self.knobs.crash_anywhere and self.rng.random() < 0.1:
            self.io.die_after(self.rng.randint(1, 80))  # during start-up or recovery
        fsync_failures_before = self.io.fsync_failures
        try:
            async with trio.open_nursery() as outer:
                try:
                    await outer.start(broker.run)
                except Exception as exc:
                    if not self.io.dead:
                        raise Violation(f"the broker did not start: {exc!r}") from exc
                if not self.io.dead:
                    await self._serve(broker, clients, ending, crash, death)
                if self.io.dead:
                    self.alive = False
                    outer.cancel_scope.cancel()
        except* Exception as group:
            violation = _first_violation(group)
            if violation is not None:
                raise violation from None
            leaf = _leaf(group)
            if self.io.dead:
                pass  # the dead process's clean-up failing is expected
            elif (isinstance(leaf, (KafkaStorageError, BrokerShutdownError))
                  and self.io.fsync_failures > fsync_failures_before):
                # A log taken offline by an injected fsync failure makes the clean stop report
                # an incomplete shutdown: no clean-shutdown marker, the next start recovers.
                self.trace(f"clean stop failed after an fsync failure: {leaf}")
            else:
                raise Violation(f"the broker failed: {leaf!r}") from group
        self.alive = False
        crashed = self.io.dead
        if crashed and broker.state is not None:
            broker.state.logs._release_lock()  # the kernel drops a dead process's flock
        if crashed and crash == "kill":
            self.stats["kills"] += 1
            self.trace("kill -9")
        elif crashed:
            self.stats["power_losses"] += 1
            changes = self.io.power_loss()
            self.trace(f"power loss ({len(changes)} files changed)")
            if not self.knobs.group_membership_fsynced:
                for m in self.members:
                    m.forgotten = True
                self.model.generation_synced = 0
        if clients and self.knobs.flip_old_segment_bytes and self.rng.random() < 0.5:
            self.flip_old_segment()
        self.io.revive()

    async def _serve(self, broker, clients: bool, ending: str, crash, death) -> None:
        self.state = broker.state
        self.alive = True
        self.io.syscalls_until_death = None  # a crash armed for start-up missed it
        self.trace(f"broker started (life ending {ending})")
        if not self.topics_created:
            for t in TOPICS:
                self.state.logs.create_topic(t, 2, {})
            self.topics_created = True
        self.model.generation_max = 0  # generations formed but not synced may be forgotten
        await self.check_recovery()
        self.faults.space_left_bytes = None  # a disk full across the restart is freed now
        self.arm_faults()
        if ending != "clean" and self.knobs.crash_anywhere and self.rng.random() < 0.5:
            self.io.die_after(self.rng.randint(1, 400))  # mid-request, wherever it falls
        async with trio.open_nursery() as nursery:
            for c in self.clients if clients else ():
                nursery.start_soon(self._client_loop, c)
            with trio.move_on_after(self.rng.uniform(0.5, 8.0) if clients else 0):
                await death.wait()
            self.disarm_faults()
            if ending != "clean":
                self.io.kill()  # first: nothing the process does from here on happens
            self.alive = False
            nursery.cancel_scope.cancel()
        if self.io.dead:
            return
        self.trace("clean stop")
        self.stats["clean_stops"] += 1
        if clients and crash and self.knobs.crash_anywhere and self.rng.random() < 0.2:
            self.io.die_after(self.rng.randint(1, 40))  # the stop is cut short
        broker.stop()

    async def _client_loop(self, client) -> None:
        while True:
            try:
                await client.run()
            except _Dropped:
                await trio.sleep(0.01)  # as a client reconnecting

    def arm_faults(self) -> None:
        k = self.knobs
        if k.fsync_errors and self.rng.random() < 0.3:
            self.faults.fsync_eio_rate = self.rng.choice([0.01, 0.05])
        if k.disk_full and self.rng.random() < 0.3:
            self.faults.space_left_bytes = self.rng.randint(0, 20_000)
        if k.fsync_delays:
            self.fsync_delay_s = self.rng.choice([0.0, 0.001, 0.05, 0.5])
        else:
            self.fsync_delay_s = 0.0

    def disarm_faults(self) -> None:
        self.stats["fsync_failures"] = self.io.fsync_failures
        self.stats["enospc"] = self.io.enospc_failures
        self.faults.fsync_eio_rate = 0.0
        if self.rng.random() < 0.5:  # else the disk stays full through the stop and the start
            self.faults.space_left_bytes = None

    # -- damage ----------------------------------------------------------------------------
    def flip_old_segment(self) -> None:
        """Flip bytes inside one batch of a closed (not the last) segment, and note which
        offsets it may cost: from that batch to the segment's end."""
        candidates = []
        for tp in self.partitions:
            d = os.path.join(self.directory, f"{tp[0]}-{tp[1]}")
            if not os.path.isdir(d):  # the first start crashed before creating the topics
                continue
            logs = sorted(n for n in os.listdir(d) if n.endswith(".log"))
            for a, b in zip(logs, logs[1:]):
                if os.path.getsize(os.path.join(d, a)):
                    candidates.append((tp, os.path.join(d, a), int(b[:20])))
        if not candidates:
            return
        tp, path, next_base = self.rng.choice(candidates)
        with open(path, "rb") as f:
            data = f.read()
        position = self.rng.randrange(len(data))
        nbytes = self.rng.randint(1, 16)
        first_hit = None
        at = 0
        for b in iter_batches(data):
            if at + b.size_bytes > position:
                first_hit = b.base_offset
                break
            at += b.size_bytes
        if first_hit is None:
            return
        self.io.flip(path, position, nbytes)
        self.model.part(tp).may_lose_from[first_hit] = next_base
        self.stats["flips"] += 1
        self.trace(f"flipped {nbytes} bytes at {position} of {os.path.basename(path)} in {tp} "
                   f"(offsets {first_hit}..{next_base - 1} may be lost)")

    # -- recovery checks -------------------------------------------------------------------
    async def check_recovery(self) -> None:
        """Right after a start: everything promised is still served, unchanged."""
        for tp in self.partitions:
            pm = self.model.part(tp)
            served = await self.read_all(tp)
            report = self.state.logs.recovery_reports.get(tp)
            # Reported by this start, or logged by a start since the damage that crashed
            # before the simulation could look.
            reported = (report is not None and report.changed) or f"{tp[0]}-{tp[1]}" in self.warned
            hw = self.state.partitions.state(*tp).high_watermark
            start = self.state.logs.log(*tp).log_start_offset
            if start < pm.log_start_acked:
                raise Violation(f"{tp}: log start offset {start} after the restart is below "
                                f"{pm.log_start_acked}, which DeleteRecords acknowledged")
            if start > pm.delete_attempted and not reported:
                raise Violation(f"{tp}: log start offset {start} after the restart, but DeleteRecords "
                                f"never asked past {pm.delete_attempted}")
            lost = [o for o in sorted(set(pm.acked_all) | set(pm.served))
                    if o not in served and o >= start]
            for o in lost:
                if not (pm.allowed_loss(o) and reported):
                    what = "acknowledged (acks=all)" if o in pm.acked_all else "served"
                    raise Violation(
                        f"{tp}: offset {o} {what} as {pm.acked_all.get(o, pm.served.get(o))!r} is gone "
                        f"after the restart (high watermark {hw}; damage allowed losing "
                        f"{sorted(pm.may_lose_from.items())}; this start's recovery reported "
                        f"{_summary(report)}; an earlier start since the damage logged a "
                        f"recovery warning: {f'{tp[0]}-{tp[1]}' in self.warned})")
            if hw < pm.hw_max and not reported:
                raise Violation(f"{tp}: high watermark {hw} after the restart is below {pm.hw_max} "
                                f"served before, and recovery reported nothing")
            if lost or hw < pm.hw_max:
                # A reported, allowed loss: those offsets may be written again from here.
                for table in (pm.acked_all, pm.acked_one, pm.served):
                    for o in [o for o in table if o >= min(lost + [hw])]:
                        value = table.pop(o)
                        if table is pm.served:
                            pm.where.pop(value, None)
                pm.hw_max = hw
            if reported:
                # A reported cut of damaged data at the front moved the log start: it stays
                # there at later starts, as if DeleteRecords had asked for it.
                pm.delete_attempted = max(pm.delete_attempted, start)
            pm.may_lose_from.clear()
            self.warned.discard(f"{tp[0]}-{tp[1]}")
            for o in list(pm.acked_one):  # acks=1 promised nothing past a crash
                if o not in served:
                    del pm.acked_one[o]
        for c in self.clients:
            if isinstance(c, Consumer):
                c.reset()
                for tp in self.partitions:
                    c.position[tp] = min(c.position.get(tp, 0), self.model.part(tp).hw_max)
        await self.check_commits()

    async def read_all(self, tp) -> dict[int, bytes]:
        """Every record of a partition, through Fetch, checked as a consumer checks."""
        offset, got = 0, {}
        while True:
            r = await self.call("checker", ApiKey.FETCH, 11, F.FetchRequest(
                max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
                session_epoch=-1, topics=[F.FetchTopic(topic=tp[0], partitions=[F.FetchPartition(
                    partition=tp[1], fetch_offset=offset, log_start_offset=-1, partition_max_bytes=1 << 20)])],
                forgotten_topics_data=[], rack_id=""))
            p = r.responses[0].partitions[0]
            if p.error_code == E.OFFSET_OUT_OF_RANGE and offset < p.log_start_offset:
                offset = p.log_start_offset
                continue
            if p.error_code != E.NONE:
                raise Violation(f"{tp}: reading back at {offset} after the restart: {E(p.error_code).name}")
            data = bytes(p.records or b"")
            if not data:
                return got
            offset = check_batches(self.model, tp, data, p.high_watermark, offset)
            for b in iter_batches(data):
                for rec in b.records():
                    got[rec.offset] = rec.value

    async def check_commits(self) -> None:
        if not self.model.commits:
            return
        r = await self.call("checker", ApiKey.OFFSET_FETCH, 7, OF.OffsetFetchRequest(
            group_id=GROUP, topics=None, require_stable=False))
        if r.error_code != E.NONE:
            raise Violation(f"OffsetFetch after the restart: {E(r.error_code).name}")
        fetched = {(t.name, p.partition_index): p.committed_offset for t in r.topics for p in t.partitions}
        for tp in sorted(self.model.commits):
            key = (tp[0], int(tp[1]))
            self.model.check_committed(tp, fetched.get(key, -1))
        self.trace(f"committed offsets after restart: {sorted(fetched.items())}")


class _Dropped(Exception):
    """The request's connection is gone (crash, handler failure): no answer."""


def _first_violation(exc: BaseException) -> Violation | None:
    if isinstance(exc, Violation):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _first_violation(inner)
        if found is not None:
            return found
    return None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _summary(report) -> str:
    if report is None:
        return "nothing"
    return (f"truncated {report.truncated_bytes} bytes, deleted segments {report.deleted_segments}, "
            f"clean={report.clean_shutdown}")


class _WarningsOf(logging.Handler):
    """Collects the partitions storage warned about (recovery cutting damage, a damaged batch
    not served on read): what an operator is told."""

    def __init__(self, sim: "Simulation") -> None:
        super().__init__(logging.WARNING)
        self.sim = sim

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for topic, partition in self.sim.partitions:
            name = f"{topic}-{partition}"
            if message.startswith(name + ":") or f"/{name}/" in message:
                self.sim.warned.add(name)


@contextlib.contextmanager
def _recovery_warnings(sim: "Simulation"):
    logger = logging.getLogger("kafkito.storage")
    handler = _WarningsOf(sim)
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


# -- determinism -----------------------------------------------------------------------------
@contextlib.contextmanager
def deterministic(sim: Simulation):
    """Seed trio's scheduler and uuid4; run worker-thread calls inline, taking the
    simulated fsync delay instead of real time."""
    from trio._core import _run

    id_rng = random.Random(sim.rng.getrandbits(64))
    saved = (_run._ALLOW_DETERMINISTIC_SCHEDULING, _run._r.getstate(), uuid.uuid4, trio.to_thread.run_sync)

    async def run_sync(fn, *args, **_kw):
        delay = getattr(sim, "fsync_delay_s", 0.0)
        await trio.sleep(sim.rng.uniform(0, delay) if delay else 0)
        return fn(*args)

    _run._ALLOW_DETERMINISTIC_SCHEDULING = True
    _run._r.seed(sim.seed)
    uuid.uuid4 = lambda: uuid.UUID(int=id_rng.getrandbits(128), version=4)
    trio.to_thread.run_sync = run_sync
    try:
        yield
    finally:
        _run._ALLOW_DETERMINISTIC_SCHEDULING, state, uuid.uuid4, trio.to_thread.run_sync = saved
        _run._r.setstate(state)


def run_seed(seed: int, knobs: Knobs | None = None, *, keep_dir: bool = False) -> Result:
    knobs = knobs or Knobs()
    directory = tempfile.mkdtemp(prefix=f"kafkito-sim-{seed}-")
    sim = Simulation(seed, knobs, os.path.join(directory, "data"))
    result = Result(seed)
    quiet = logging.getLogger("kafkito")
    level = quiet.level
    if not logging.getLogger().handlers or quiet.level == logging.NOTSET:
        quiet.setLevel(logging.CRITICAL)
    try:
        with deterministic(sim), planted.planted(knobs.plant), _recovery_warnings(sim):
            trio.run(sim.main, clock=trio.testing.MockClock(autojump_threshold=0))
    except Violation as v:
        result.violation = str(v)
        result.violation_step = sim.steps
    except Exception:  # a bug of the simulation itself: still a failing, replayable seed
        result.violation = "the simulation itself failed:\n" + traceback.format_exc()
        result.violation_step = sim.steps
    finally:
        quiet.setLevel(level)
        if not keep_dir:
            shutil.rmtree(directory, ignore_errors=True)
    result.steps = sim.steps
    result.lives = sim.stats.get("lives", 0)
    result.fingerprint = sim.digest.hexdigest()[:16]
    result.trace_tail = sim.trace_lines[-12:]
    result.trace = sim.trace_lines
    sim.stats["acked_all"] = sum(len(p.acked_all) for p in sim.model.partitions.values())
    sim.stats["served"] = sum(len(p.served) for p in sim.model.partitions.values())
    result.stats = {k: v for k, v in sim.stats.items() if v}
    return result


def soak(start: int, duration_s: float, knobs: Knobs, report=print) -> tuple[int, list[Result]]:
    """Seeds from ``start`` until ``duration_s`` has passed; returns (seeds run, failures)."""
    deadline = time.monotonic() + duration_s
    seed, failures = start, []
    while time.monotonic() < deadline:
        result = run_seed(seed, knobs)
        if not result.ok:
            failures.append(result)
            report(result.report(knobs))
        seed += 1
    return seed - start, failures

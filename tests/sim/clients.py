"""Simulated clients: plain and idempotent producers, consumers, consumer-group members.

Each is a trio task looping over random operations with random think times; the driver
cancels them at a crash and starts them again (same objects, same state) after the restart.
Every completed operation is one *step*: it is traced, and the model's invariants are
checked against its answer before the next step.
"""

from __future__ import annotations

import random

import trio

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages import delete_records as DR
from kafkito.protocol.messages import fetch as F
from kafkito.protocol.messages import heartbeat as HB
from kafkito.protocol.messages import init_producer_id as IP
from kafkito.protocol.messages import join_group as JG
from kafkito.protocol.messages import leave_group as LG
from kafkito.protocol.messages import offset_commit as OC
from kafkito.protocol.messages import produce as P
from kafkito.protocol.messages import sync_group as SG
from kafkito.records.batch import build_batch, iter_batches

from .model import Violation

E = ErrorCode
GROUP = "sim-group"
RETRIABLE_PRODUCE = {E.REQUEST_TIMED_OUT, E.KAFKA_STORAGE_ERROR, E.NOT_LEADER_OR_FOLLOWER,
                     E.UNKNOWN_TOPIC_OR_PARTITION, E.CORRUPT_MESSAGE}


class Client:
    kind = "client"

    def __init__(self, sim, name: str, rng: random.Random | None = None) -> None:
        self.sim = sim
        self.name = name
        self.rng = rng or random.Random(sim.rng.getrandbits(64))
        self.sent = 0

    async def think(self, scale_s: float = 0.05) -> None:
        await trio.sleep(self.rng.expovariate(1 / scale_s))

    async def call(self, api_key, version, body):
        return await self.sim.call(self.name, api_key, version, body)

    async def run(self) -> None:
        while True:
            await self.think()
            await self.step()

    async def step(self) -> None:
        raise NotImplementedError


def _records(values: list[bytes], now_ms: int):
    return [(None, v, [], now_ms) for v in values]


class Producer(Client):
    """Plain producer: acks=all mostly, some acks=1; never retries (every send is new)."""

    kind = "producer"

    async def step(self) -> None:
        sim = self.sim
        tp = self.rng.choice(sim.partitions)
        self.sent += 1
        values = [f"{self.name}/{self.sent}/{i}".encode() for i in range(self.rng.randint(1, 4))]
        sim.model.attempted.update(values)
        acks = -1 if self.rng.random() < 0.8 else 1
        blob = build_batch(_records(values, sim.clock.now_ms()))
        timeout_ms = self.rng.choice([200, 2000, 30_000])
        r = await self.call(ApiKey.PRODUCE, 9, P.ProduceRequest(acks=acks, timeout_ms=timeout_ms, topic_data=[
            P.TopicProduceData(name=tp[0], partition_data=[P.PartitionProduceData(index=tp[1], records=blob)])]))
        part = r.responses[0].partition_responses[0]
        sim.trace(f"{self.name} produce {tp} acks={acks} n={len(values)} -> {E(part.error_code).name} "
                  f"@{part.base_offset}")
        if part.error_code == E.NONE:
            sim.model.acked(tp, part.base_offset, values, acks)


class IdempotentProducer(Client):
    """acks=all with producer id, epoch and sequences; retries the same batch until it is
    answered, bumps its epoch (KIP-360) on a sequence error."""

    kind = "idempotent"

    def __init__(self, sim, name: str) -> None:
        super().__init__(sim, name)
        self.pid = -1
        self.epoch = -1
        self.seq: dict = {}
        self.inflight = None  # (tp, values, base_sequence)

    async def init(self) -> None:
        bump = (self.pid, self.epoch) if self.pid >= 0 else None
        r = await self.call(ApiKey.INIT_PRODUCER_ID, 3, IP.InitProducerIdRequest(
            transactional_id=None, transaction_timeout_ms=60_000, producer_id=self.pid,
            producer_epoch=self.epoch))
        self.sim.trace(f"{self.name} init_producer_id bump={bump} -> {E(r.error_code).name} "
                       f"{r.producer_id}/{r.producer_epoch}")
        if r.error_code != E.NONE:
            return
        self.sim.model.producer_id(r.producer_id, r.producer_epoch, bump)
        self.pid, self.epoch = r.producer_id, r.producer_epoch
        self.seq = {}
        self.inflight = None

    async def step(self) -> None:
        if self.pid < 0:
            await self.init()
            return
        sim = self.sim
        if self.inflight is None:
            tp = self.rng.choice(sim.partitions)
            self.sent += 1
            values = [f"{self.name}/{self.sent}/{i}".encode() for i in range(self.rng.randint(1, 4))]
            sim.model.attempted.update(values)
            self.inflight = (tp, values, self.seq.get(tp, 0), sim.clock.now_ms())
        tp, values, base_seq, ts = self.inflight
        blob = build_batch(_records(values, ts), producer_id=self.pid, producer_epoch=self.epoch,
                           base_sequence=base_seq)
        r = await self.call(ApiKey.PRODUCE, 9, P.ProduceRequest(acks=-1, timeout_ms=self.rng.choice([200, 30_000]),
                            topic_data=[P.TopicProduceData(name=tp[0], partition_data=[
                                P.PartitionProduceData(index=tp[1], records=blob)])]))
        part = r.responses[0].partition_responses[0]
        code = E(part.error_code)
        sim.trace(f"{self.name} produce {tp} pid={self.pid}/{self.epoch} seq={base_seq} n={len(values)} "
                  f"-> {code.name} @{part.base_offset}")
        if code == E.NONE:
            sim.model.acked(tp, part.base_offset, values, -1)
            self.seq[tp] = base_seq + len(values)
            self.inflight = None
        elif code not in RETRIABLE_PRODUCE:  # sequence or epoch trouble: start a new epoch
            await self.init()


class Consumer(Client):
    """Fetches every partition from its own positions and checks what it is served."""

    kind = "consumer"

    def __init__(self, sim, name: str) -> None:
        super().__init__(sim, name)
        self.position: dict = {}
        self.hw_seen: dict = {}
        self.start_seen: dict = {}

    def reset(self) -> None:
        """After a restart: high watermarks may legitimately restart from a reported loss."""
        self.hw_seen = {}
        self.start_seen = {}

    async def step(self) -> None:
        sim = self.sim
        tp = self.rng.choice(sim.partitions)
        offset = self.position.get(tp, 0)
        r = await self.call(ApiKey.FETCH, 11, F.FetchRequest(
            max_wait_ms=self.rng.choice([0, 100, 500]), min_bytes=1, max_bytes=self.rng.choice([1, 4096, 1 << 20]),
            isolation_level=0, session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=tp[0], partitions=[
                F.FetchPartition(partition=tp[1], fetch_offset=offset, log_start_offset=-1,
                                 partition_max_bytes=self.rng.choice([1, 2048, 1 << 20]))])],
            forgotten_topics_data=[], rack_id=""))
        p = r.responses[0].partitions[0]
        code = E(p.error_code)
        data = bytes(p.records or b"")
        sim.trace(f"{self.name} fetch {tp}@{offset} -> {code.name} hw={p.high_watermark} "
                  f"start={p.log_start_offset} bytes={len(data)}")
        if code == E.OFFSET_OUT_OF_RANGE:
            self.position[tp] = max(p.log_start_offset, 0) if offset < p.log_start_offset else 0
            return
        if code != E.NONE:
            return
        if p.high_watermark < self.hw_seen.get(tp, 0):
            raise Violation(f"{tp}: high watermark moved back from {self.hw_seen[tp]} to {p.high_watermark}")
        if p.log_start_offset < self.start_seen.get(tp, 0):
            raise Violation(f"{tp}: log start offset moved back from {self.start_seen[tp]} to "
                            f"{p.log_start_offset}")
        self.hw_seen[tp] = p.high_watermark
        self.start_seen[tp] = p.log_start_offset
        pm = sim.model.part(tp)
        pm.hw_max = max(pm.hw_max, p.high_watermark)
        nxt = check_batches(sim.model, tp, data, p.high_watermark, offset)
        if nxt is not None:
            self.position[tp] = nxt


def check_batches(model, tp, data: bytes, hw: int, fetch_offset: int) -> int | None:
    """Check every batch of a fetch answer; return the next offset to fetch (None: none)."""
    nxt = None
    try:
        batches = list(iter_batches(data))
    except Exception as exc:
        raise Violation(f"{tp}: fetch at {fetch_offset} served unparseable records: {exc}") from None
    for b in batches:
        if not b.is_valid():
            raise Violation(f"{tp}: fetch at {fetch_offset} served batch {b.base_offset} with a bad CRC")
        for rec in b.records():
            model.served_record(tp, rec.offset, rec.value, hw)
        nxt = b.last_offset + 1
    if batches and batches[0].last_offset < fetch_offset:
        raise Violation(f"{tp}: fetch at {fetch_offset} began with a batch ending at {batches[0].last_offset}")
    return nxt


class GroupMember(Client):
    """A classic-protocol member: JoinGroup/SyncGroup, heartbeats, commits; the leader
    assigns partitions round-robin. Sometimes it stalls past its session or leaves."""

    kind = "member"
    SESSION_MS = 6000
    REBALANCE_MS = 3000

    def __init__(self, sim, name: str) -> None:
        super().__init__(sim, name)
        self.member_id = ""
        self.generation = -1
        self.owned: frozenset = frozenset()
        self.last_ok_s = 0.0
        self.commit_counter = 0
        # After a power loss the broker may have forgotten the group (membership records are
        # not fsynced, by design: see Write.durable in broker/group/coordinator.py); until
        # the broker confirms this member again, what it owns does not count.
        self.forgotten = False

    def lapsed(self, now_s: float) -> bool:
        """Whether the group may already have moved on without this member: it has not been
        answered for a rebalance timeout (shorter than the session), so a rebalance may have
        started and evicted it without its knowing. Until then what it owns is its own."""
        if self.forgotten:
            return True
        return not self.owned or now_s - self.last_ok_s >= self.REBALANCE_MS / 1000 - 1e-6  # float times

    def drop(self) -> None:
        self.owned = frozenset()

    async def step(self) -> None:
        if self.generation < 0 or not self.owned and self.rng.random() < 0.3:
            await self.join()
            return
        roll = self.rng.random()
        if roll < 0.05:
            await trio.sleep(self.SESSION_MS / 1000 * 1.5)  # stalls: the group moves on
            return
        if roll < 0.08:
            await self.leave()
            return
        if roll < 0.5:
            await self.commit()
            return
        await self.heartbeat()

    async def join(self) -> None:
        sim = self.sim
        self.drop()
        r = await self.call(ApiKey.JOIN_GROUP, 3, JG.JoinGroupRequest(
            group_id=GROUP, session_timeout_ms=self.SESSION_MS, rebalance_timeout_ms=self.REBALANCE_MS,
            member_id=self.member_id, protocol_type="consumer",
            protocols=[JG.JoinGroupRequestProtocol(name="range", metadata=b"")]))
        code = E(r.error_code)
        sim.trace(f"{self.name} join -> {code.name} gen={r.generation_id} member={r.member_id[-6:]} "
                  f"leader={r.leader == r.member_id} members={len(r.members)}")
        if code == E.UNKNOWN_MEMBER_ID:
            self.member_id = ""
        if code != E.NONE:
            self.generation = -1
            return
        sim.model.joined(r.generation_id)
        self.member_id, self.generation = r.member_id, r.generation_id
        assignments = []
        if r.leader == r.member_id:
            members = sorted(m.member_id for m in r.members)
            plan: dict[str, list] = {m: [] for m in members}
            for i, tp in enumerate(sim.partitions):
                plan[members[i % len(members)]].append(f"{tp[0]}:{tp[1]}")
            encoded = {m: ",".join(v).encode() for m, v in plan.items()}
            sim.model.leader_assignment[r.generation_id] = encoded
            assignments = [SG.SyncGroupRequestAssignment(member_id=m, assignment=a) for m, a in encoded.items()]
        s = await self.call(ApiKey.SYNC_GROUP, 3, SG.SyncGroupRequest(
            group_id=GROUP, generation_id=self.generation, member_id=self.member_id, assignments=assignments))
        code = E(s.error_code)
        sim.trace(f"{self.name} sync gen={self.generation} -> {code.name} {bytes(s.assignment or b'')!r}")
        if code != E.NONE:
            self.generation = -1 if code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION) else self.generation
            return
        got = bytes(s.assignment or b"")
        plan = sim.model.leader_assignment.get(self.generation)
        if plan is not None and plan.get(self.member_id, b"") != got:
            raise Violation(f"generation {self.generation}: SyncGroup gave {self.member_id} {got!r}, "
                            f"the leader assigned {plan.get(self.member_id)!r}")
        self.claim(frozenset(tuple(x.split(":")) for x in got.decode().split(",") if x))
        sim.model.synced(self.generation)

    def claim(self, owned: frozenset) -> None:
        """The broker just confirmed ``owned`` as this member's: no live member may own any."""
        now = trio.current_time()
        for other in self.sim.members:
            if other is not self and not other.lapsed(now) and other.owned & owned:
                raise Violation(f"partitions {sorted(other.owned & owned)} owned by {other.name} "
                                f"(generation {other.generation}) and {self.name} (generation "
                                f"{self.generation}) at once")
        self.owned, self.last_ok_s, self.forgotten = owned, now, False

    async def heartbeat(self) -> None:
        r = await self.call(ApiKey.HEARTBEAT, 3, HB.HeartbeatRequest(
            group_id=GROUP, generation_id=self.generation, member_id=self.member_id))
        code = E(r.error_code)
        self.sim.trace(f"{self.name} heartbeat gen={self.generation} -> {code.name}")
        if code == E.NONE:
            if self.forgotten:  # the group survived the power loss after all
                self.claim(self.owned)
            self.last_ok_s = trio.current_time()
        else:
            self.drop()
            if code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION):
                self.generation = -1
                if code == E.UNKNOWN_MEMBER_ID:
                    self.member_id = ""

    async def commit(self) -> None:
        sim = self.sim
        if not self.owned:
            await self.heartbeat()
            return
        tps = sorted(self.owned)
        self.commit_counter += 1
        offsets = {(t, int(p)): self.commit_counter * 10 + self.rng.randrange(10) for t, p in tps}
        newest_generation = sim.model.generation_max
        for tp, off in offsets.items():
            sim.model.commit_sent(tp, off)
        r = await self.call(ApiKey.OFFSET_COMMIT, 7, OC.OffsetCommitRequest(
            group_id=GROUP, generation_id_or_member_epoch=self.generation, member_id=self.member_id,
            group_instance_id=None, topics=[OC.OffsetCommitRequestTopic(name=t, partitions=[
                OC.OffsetCommitRequestPartition(partition_index=p, committed_offset=off, committed_metadata="")
                for (t2, p), off in offsets.items() if t2 == t]) for t in sorted({t for t, _ in offsets})]))
        codes = {(t.name, p.partition_index): E(p.error_code) for t in r.topics for p in t.partitions}
        sim.trace(f"{self.name} commit gen={self.generation} {sorted(offsets.items())} -> "
                  f"{sorted(set(c.name for c in codes.values()))}")
        for tp, off in offsets.items():
            if codes.get(tp) == E.NONE:
                if self.generation < newest_generation:
                    raise Violation(f"commit of {tp} from generation {self.generation} accepted after "
                                    f"generation {newest_generation} was formed")
                sim.model.commit_acked(tp, off)
        # A commit is accepted while a rebalance is under way, so unlike a heartbeat it says
        # nothing about how long this member still owns its partitions.
        if any(c != E.NONE for c in codes.values()):
            self.drop()
            if any(c in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION) for c in codes.values()):
                self.generation = -1

    async def leave(self) -> None:
        r = await self.call(ApiKey.LEAVE_GROUP, 0, LG.LeaveGroupRequest(group_id=GROUP, member_id=self.member_id))
        self.sim.trace(f"{self.name} leave -> {E(r.error_code).name}")
        self.drop()
        self.member_id, self.generation = "", -1


class Admin(Client):
    """Now and then DeleteRecords up to a random offset below the high watermark: the log
    start offset it acknowledges must hold across every crash."""

    kind = "admin"

    async def run(self) -> None:
        while True:
            await self.think(1.5)
            await self.step()

    async def step(self) -> None:
        sim = self.sim
        tp = self.rng.choice(sim.partitions)
        pm = sim.model.part(tp)
        if pm.hw_max <= pm.log_start_acked:
            return
        target = self.rng.randint(pm.log_start_acked, pm.hw_max)
        pm.delete_attempted = max(pm.delete_attempted, target)
        r = await self.call(ApiKey.DELETE_RECORDS, 2, DR.DeleteRecordsRequest(timeout_ms=5000, topics=[
            DR.DeleteRecordsTopic(name=tp[0], partitions=[DR.DeleteRecordsPartition(partition_index=tp[1],
                                                                                   offset=target)])]))
        p = r.topics[0].partitions[0]
        code = E(p.error_code)
        sim.trace(f"{self.name} delete_records {tp} before {target} -> {code.name} low={p.low_watermark}")
        if code == E.NONE:
            if p.low_watermark < target:
                raise Violation(f"{tp}: DeleteRecords before {target} answered low watermark {p.low_watermark}")
            pm.log_start_acked = max(pm.log_start_acked, p.low_watermark)

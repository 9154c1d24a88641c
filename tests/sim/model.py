"""What the simulated clients know, and the invariants checked against it.

Each record value is unique to one send (``<client>/<n>/<i>``; an idempotent producer's
retry resends the same batch), so a value names the send it came from. Per partition the
model keeps what was acknowledged (acks=all and acks=1, at which offsets), what a consumer
was served (only data below the high watermark is served, and that is fsynced, so it must
survive every crash), and which offsets simulated damage was allowed to take.

Invariants (a ``Violation`` names the first one broken):

* a fetched batch passes its CRC; each record sits at the offset it was acknowledged or
  served at before, and no value is ever served at two offsets;
* after a restart, every offset acknowledged with acks=all and every offset ever served is
  still served with the same value, unless a flipped byte hit its segment *and* recovery
  reported a change for that partition;
* high watermarks and log start offsets only move forward (per consumer; across restarts
  unless damage was reported); an acknowledged DeleteRecords holds across crashes, and the
  log start never passes an offset no DeleteRecords asked for;
* producer ids are never handed out twice and a producer's epoch only grows;
* group generations only grow, a SyncGroup answer is what the leader assigned, no
  partition is owned by two live members at once, a commit from a superseded generation is
  refused, and an acknowledged commit survives restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Violation(AssertionError):
    pass


@dataclass
class PartitionModel:
    acked_all: dict[int, bytes] = field(default_factory=dict)
    acked_one: dict[int, bytes] = field(default_factory=dict)
    served: dict[int, bytes] = field(default_factory=dict)
    where: dict[bytes, int] = field(default_factory=dict)  # value -> offset it was served at
    hw_max: int = 0  # the highest high watermark any fetch reported
    may_lose_from: dict[int, int] = field(default_factory=dict)  # damaged range [from, to)
    log_start_acked: int = 0  # the highest low watermark DeleteRecords acknowledged
    delete_attempted: int = 0  # the highest offset DeleteRecords was asked to delete before

    def allowed_loss(self, offset: int) -> bool:
        return any(lo <= offset < hi for lo, hi in self.may_lose_from.items())


@dataclass
class Model:
    partitions: dict[tuple[str, int], PartitionModel] = field(default_factory=dict)
    attempted: set[bytes] = field(default_factory=set)
    producer_epochs: dict[int, int] = field(default_factory=dict)  # pid -> highest epoch seen
    generation_max: int = 0  # newest generation formed in this life of the broker
    generation_synced: int = 0  # newest generation a SyncGroup answered without error
    leader_assignment: dict[int, dict[str, bytes]] = field(default_factory=dict)
    commits: dict[tuple[str, int], tuple[int | None, set[int]]] = field(default_factory=dict)

    def part(self, tp: tuple[str, int]) -> PartitionModel:
        return self.partitions.setdefault(tp, PartitionModel())

    # -- records ---------------------------------------------------------------------------
    def acked(self, tp, base_offset: int, values: list[bytes], acks: int) -> None:
        pm = self.part(tp)
        for i, value in enumerate(values):
            o = base_offset + i
            for name, table in (("acks=all", pm.acked_all), ("acks=1", pm.acked_one), ("served", pm.served)):
                if table.get(o, value) != value:
                    raise Violation(f"{tp}: offset {o} acknowledged for {value!r} but {name} holds "
                                    f"{table[o]!r}")
            (pm.acked_all if acks == -1 else pm.acked_one)[o] = value

    def served_record(self, tp, offset: int, value: bytes, hw: int) -> None:
        pm = self.part(tp)
        if offset >= hw:
            raise Violation(f"{tp}: offset {offset} served at or above the high watermark {hw}")
        if value not in self.attempted:
            raise Violation(f"{tp}: offset {offset} served {value!r}, which no client produced")
        for name, table in (("served", pm.served), ("acks=all", pm.acked_all), ("acks=1", pm.acked_one)):
            if table.get(offset, value) != value:
                raise Violation(f"{tp}: offset {offset} served {value!r} but was {name} as "
                                f"{table[offset]!r}")
        seen_at = pm.where.get(value, offset)
        if seen_at != offset:
            raise Violation(f"{tp}: {value!r} served at offsets {seen_at} and {offset} (a duplicate)")
        pm.served[offset] = value
        pm.where[value] = offset

    # -- producers -------------------------------------------------------------------------
    def producer_id(self, pid: int, epoch: int, bumped_from: tuple[int, int] | None) -> None:
        if bumped_from is None:
            if pid in self.producer_epochs:
                raise Violation(f"producer id {pid} handed out twice")
        else:
            old_pid, old_epoch = bumped_from
            if pid == old_pid and epoch <= old_epoch:
                raise Violation(f"producer {pid}: epoch bump from {old_epoch} answered {epoch}")
            if pid != old_pid and pid in self.producer_epochs:
                raise Violation(f"producer id {pid} handed out twice (on an epoch bump)")
        if epoch < self.producer_epochs.get(pid, -1):
            raise Violation(f"producer {pid}: epoch went back to {epoch}")
        self.producer_epochs[pid] = epoch

    # -- groups ----------------------------------------------------------------------------
    def joined(self, generation: int) -> None:
        """A JoinGroup answer. Generations formed but never synced may be forgotten by a
        restart (Kafka persists a group at SyncGroup), so the floor is the newest synced one."""
        if generation < self.generation_synced:
            raise Violation(f"group generation {generation} formed after generation "
                            f"{self.generation_synced} was synced (it went backwards)")
        self.generation_max = max(self.generation_max, generation)

    def synced(self, generation: int) -> None:
        self.generation_synced = max(self.generation_synced, generation)

    def commit_sent(self, tp, offset: int) -> None:
        last, pending = self.commits.get(tp, (None, set()))
        self.commits[tp] = (last, pending | {offset})

    def commit_acked(self, tp, offset: int) -> None:
        self.commits[tp] = (offset, set())

    def check_committed(self, tp, offset: int) -> None:
        if tp not in self.commits:
            return
        last, pending = self.commits[tp]
        allowed = pending | {last if last is not None else -1}
        if offset not in allowed:
            raise Violation(f"group commit of {tp}: after a restart OffsetFetch answers {offset}, "
                            f"the last acknowledged commit was {last} (unacknowledged since: "
                            f"{sorted(pending)})")
        self.commits[tp] = (offset, set())

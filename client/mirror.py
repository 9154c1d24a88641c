"""``kafkito mirror``: replicate topics from one cluster to another and translate group offsets.

Theory of operation
-------------------
The mirror reads every partition of the source topics matching ``--topics`` and writes
each record to the *same partition* of the same topic on the target, with its key, value,
headers and timestamp. Missing target topics are created with the source's partition
count and its topic-level configs (a source that grew partitions grows the target too).

Progress lives on the target, in the topic ``<name>.offset-syncs``: after a chunk of
records is acknowledged by the target, one *offset sync* per partition says "source
offset S is target offset T" (MirrorMaker 2 keeps the same kind of record). The target
partition is written only by the mirror, in source order, by an idempotent producer, so
its offsets are contiguous: on a restart the mirror reads the last sync ``(S, T)`` and the
target's end offset ``E``; the ``E - T`` records written after that sync are already
there, so it resumes reading the source at S and skips exactly that many records.
Nothing is lost (the source is re-read from a point known to be copied) and nothing is
written twice (the skipped records are the ones already on the target).

Group offsets (``--groups``): for each matching group, every committed source offset of a
mirrored partition is translated with the syncs: at a sync point exactly; between two syncs
by counting, when the source range between them had no gaps (same distance on both
sides); otherwise down to the earlier sync, so a group may re-read a few records but never
skips one. The translation is committed to the same group on the target (only while that
group has no active members there, as MM2's ``sync.group.offsets`` does), so consumers
switched to the target resume where they left off.

A lag report (records behind the source's end offsets, per topic) goes to stderr every
few seconds, as text or JSON lines.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field

import anyio

from .admin import Admin
from .consumer import Consumer
from .errors import KafkaError, TopicAlreadyExistsError
from .producer import Producer
from .types import OffsetAndMetadata, TopicPartition

__all__ = ["Mirror", "translate_offset"]

log = logging.getLogger("kafkito.mirror")

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs source: set on the topic itself
REFRESH_TOPICS_S = 5.0
CHECKPOINT_INTERVAL_S = 2.0
REPORT_INTERVAL_S = 5.0
SYNCS_KEPT = 1000  # per partition, in memory, for offset translation


@dataclass
class _Partition:
    syncs: list = field(default_factory=list)  # [(source, target)] ascending
    skip: int = 0  # records already on the target past the last sync
    position: int = 0  # next source offset to copy


def translate_offset(syncs: list[tuple[int, int]], source_offset: int) -> int | None:
    """The target offset for a committed source offset, by the offset syncs (ascending).
    None when the offset precedes every sync (nothing mirrored there yet)."""
    best = None
    for i, (s, t) in enumerate(syncs):
        if s > source_offset:
            break
        best = i
    if best is None:
        return None
    s, t = syncs[best]
    if s == source_offset:
        return t
    if best + 1 < len(syncs):
        s2, t2 = syncs[best + 1]
        if s2 - s == t2 - t:  # no gaps in between: count records
            return t + (source_offset - s)
        return t  # gaps: never skip, maybe re-read
    return t  # past the last sync: not mirrored yet, so no further than what is


class Mirror:
    def __init__(self, source: str, target: str, topics: re.Pattern, groups: re.Pattern | None = None, *,
                 name: str = "kafkito-mirror", client_kwargs: dict | None = None, report=None,
                 report_json: bool = False, chunk_records: int = 5000) -> None:
        self.source = source
        self.target = target
        self.topics = topics
        self.groups = groups
        self.name = name
        self.sync_topic = f"{name}.offset-syncs"
        self.kw = client_kwargs or {}
        self.report = report
        self.report_json = report_json
        self.chunk_records = chunk_records
        self.parts: dict[TopicPartition, _Partition] = {}
        self.mirrored = 0

    # -- entry -------------------------------------------------------------------------------
    async def run(self, once: bool = False) -> None:
        async with Admin(self.source, **self.kw) as src_admin, Admin(self.target, **self.kw) as dst_admin, \
                Producer(self.target, acks="all", linger_ms=5, compression="none", **self.kw) as producer, \
                Consumer(self.source, auto_offset_reset="earliest", max_poll_records=self.chunk_records,
                         **self.kw) as consumer:
            self.src_admin, self.dst_admin, self.producer, self.consumer = src_admin, dst_admin, producer, consumer
            await self._ensure_sync_topic()
            syncs = await self._load_syncs()
            last_topics = last_checkpoint = last_report = 0.0
            while True:
                now = time.monotonic()
                if now - last_topics > REFRESH_TOPICS_S:
                    await self._discover(syncs)
                    last_topics = now
                copied = await self._copy_once()
                now = time.monotonic()
                if self.groups is not None and now - last_checkpoint > CHECKPOINT_INTERVAL_S:
                    await self.checkpoint()
                    last_checkpoint = now
                if now - last_report > REPORT_INTERVAL_S:
                    await self._report()
                    last_report = now
                if once and not copied and await self._caught_up():
                    if self.groups is not None:
                        await self.checkpoint()
                    await self._report()
                    return

    # -- setup -------------------------------------------------------------------------------
    async def _ensure_sync_topic(self) -> None:
        try:
            await self.dst_admin.create_topics({self.sync_topic: {"num_partitions": 1, "configs": {
                "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}}})
        except TopicAlreadyExistsError:
            pass

    async def _load_syncs(self) -> dict[TopicPartition, list]:
        """Every offset sync on the target, by partition, in order."""
        out: dict[TopicPartition, list] = {}
        tp = TopicPartition(self.sync_topic, 0)
        end = (await self.consumer_for_target_end([tp]))[tp]
        if end == 0:
            return out
        async with Consumer(self.target, **self.kw) as reader:
            reader.assign([tp])
            reader.seek(tp, 0)
            seen = 0
            while seen < end:
                for rec in await reader.poll(timeout=1.0):
                    seen = rec.offset + 1
                    if rec.key is None or rec.value is None:
                        continue
                    topic, _, part = rec.key.decode().rpartition(":")
                    v = json.loads(rec.value)
                    out.setdefault(TopicPartition(topic, int(part)), []).append((v["source"], v["target"]))
        return out

    async def consumer_for_target_end(self, tps) -> dict[TopicPartition, int]:
        got = await self.dst_admin.list_offsets({tp: "latest" for tp in tps})
        return {tp: v.offset for tp, v in got.items()}

    async def _discover(self, syncs: dict[TopicPartition, list]) -> None:
        names = [t for t in await self.src_admin.list_topics() if self.topics.fullmatch(t)
                 and not t.endswith(".offset-syncs")]
        if not names:
            return
        described = await self.src_admin.describe_topics(names)
        target_topics = set(await self.dst_admin.list_topics())
        new: list[TopicPartition] = []
        for name, d in described.items():
            count = len(d.partitions)
            if name not in target_topics:
                cfg = await self.src_admin.describe_configs([name], include_defaults=False)
                configs = {k: v["value"] for k, v in cfg.get(("topic", name), {}).items()
                           if v["source"] == DYNAMIC_TOPIC_CONFIG and not v["read_only"] and not v["sensitive"]}
                try:
                    await self.dst_admin.create_topics({name: {"num_partitions": count, "configs": configs}})
                except TopicAlreadyExistsError:
                    pass
            else:
                have = len((await self.dst_admin.describe_topics([name]))[name].partitions)
                if have < count:
                    await self.dst_admin.create_partitions({name: count})
            for p in d.partitions:
                tp = TopicPartition(name, p.partition)
                if tp not in self.parts:
                    new.append(tp)
        if not new:
            return
        ends = await self.consumer_for_target_end(new)
        starts = await self.src_admin.list_offsets({tp: "earliest" for tp in new})
        initial = []
        for tp in new:
            st = _Partition(syncs=list(syncs.get(tp, []))[-SYNCS_KEPT:])
            if st.syncs:
                s, t = st.syncs[-1]
            else:
                s, t = starts[tp].offset, ends[tp]
                st.syncs.append((s, t))
                initial.append((tp, s, t))
            st.skip = ends[tp] - t
            st.position = s
            self.parts[tp] = st
        if initial:  # where copying starts, before the first record is copied
            await self._write_syncs(initial)
        assigned = list(self.parts)
        self.consumer.assign(assigned)
        for tp in new:
            self.consumer.seek(tp, self.parts[tp].position)

    # -- copying -----------------------------------------------------------------------------
    async def _copy_once(self) -> int:
        if not self.parts:
            await anyio.sleep(0.5)
            return 0
        recs = await self.consumer.poll(timeout=0.5)
        if not recs:
            return 0
        handles: dict[TopicPartition, tuple] = {}
        copied = 0
        for rec in recs:
            tp = TopicPartition(rec.topic, rec.partition)
            st = self.parts[tp]
            if st.skip > 0:
                st.skip -= 1  # already on the target (written after the last sync, before a crash)
                st.position = rec.offset + 1
                continue
            d = await self.producer.produce(rec.topic, value=rec.value, key=rec.key, headers=rec.headers or None,
                                            partition=rec.partition, timestamp_ms=rec.timestamp_ms)
            handles[tp] = (rec.offset, d)
            copied += 1
        syncs = []
        for tp, (source_offset, d) in handles.items():
            md = await d  # in order per partition: the last one acknowledged means all are
            st = self.parts[tp]
            st.position = source_offset + 1
            st.syncs.append((source_offset + 1, md.offset + 1))
            del st.syncs[:-SYNCS_KEPT]
            syncs.append((tp, source_offset + 1, md.offset + 1))
        if syncs:
            await self._write_syncs(syncs)
        self.mirrored += copied
        return copied

    async def _write_syncs(self, syncs) -> None:
        ds = [await self.producer.produce(self.sync_topic, key=f"{tp.topic}:{tp.partition}".encode(),
                                          value=json.dumps({"source": s, "target": t}).encode(), partition=0)
              for tp, s, t in syncs]
        for d in ds:
            await d

    async def _caught_up(self) -> bool:
        if not self.parts:
            return True
        ends = await self.src_admin.list_offsets({tp: "latest" for tp in self.parts})
        return all(self.parts[tp].position >= ends[tp].offset and self.parts[tp].skip == 0 for tp in self.parts)

    # -- group offsets -----------------------------------------------------------------------
    async def checkpoint(self) -> dict[str, dict[TopicPartition, int]]:
        """Translate and commit the matching groups' offsets on the target; returns them."""
        done = {}
        for group, _ptype, _state in await self.src_admin.list_groups():
            if not self.groups.fullmatch(group):
                continue
            committed = await self.src_admin.list_group_offsets(group)
            translated = {}
            for tp, om in committed.items():
                st = self.parts.get(tp)
                if st is None:
                    continue
                t = translate_offset(st.syncs, om.offset)
                if t is not None:
                    translated[tp] = OffsetAndMetadata(t, om.metadata)
            if not translated:
                continue
            try:
                desc = (await self.dst_admin.describe_groups([group]))[group]
                if desc.members:
                    log.info("group %s is active on the target: its offsets are not overwritten", group)
                    continue
            except KafkaError:
                pass
            await self.dst_admin.alter_group_offsets(group, translated)
            done[group] = {tp: om.offset for tp, om in translated.items()}
        return done

    # -- reporting ---------------------------------------------------------------------------
    async def lag(self) -> dict[str, int]:
        if not self.parts:
            return {}
        ends = await self.src_admin.list_offsets({tp: "latest" for tp in self.parts})
        out: dict[str, int] = {}
        for tp, st in self.parts.items():
            out[tp.topic] = out.get(tp.topic, 0) + max(0, ends[tp].offset - st.position)
        return out

    async def _report(self) -> None:
        if self.report is None:
            return
        lag = await self.lag()
        if self.report_json:
            self.report.write(json.dumps({"mirrored": self.mirrored, "lag": lag}) + "\n")
        else:
            per = ", ".join(f"{t} {n}" for t, n in sorted(lag.items()))
            self.report.write(f"mirror: {self.mirrored} records copied, lag {sum(lag.values())}"
                              + (f" ({per})" if per else "") + "\n")
        self.report.flush()

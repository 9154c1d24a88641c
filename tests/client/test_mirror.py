"""``kafkito mirror`` from one embedded broker to another: every record identical (partition,
offset, key, value, headers, timestamp), target topics created with the source's partitions
and configs, group offsets translated so a group switched to the target resumes with no
record skipped, and a mirror killed mid-stream and restarted loses and duplicates nothing."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from kafkito.client import Admin, Consumer, Producer, TopicPartition
from kafkito.client.mirror import Mirror, translate_offset
from kafkito.testing import broker as embedded_broker

KAFKITO = shutil.which("kafkito", path=str(Path(sys.executable).parent)) or "kafkito"

PARTITIONS = 3


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    settings = {"group.initial.rebalance.delay.ms": "0"}
    with embedded_broker(tmp_path_factory.mktemp("src"), settings=settings) as src, \
            embedded_broker(tmp_path_factory.mktemp("dst"), settings=settings) as dst:
        yield src.bootstrap_servers, dst.bootstrap_servers


async def _setup(src, topic, n, group=None, consumed=0):
    async with Admin(src) as a:
        await a.create_topics({topic: {"num_partitions": PARTITIONS, "configs": {"retention.ms": "86400001"}}})
    await _produce(src, topic, 0, n)
    if group:
        async with Consumer(src, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False) as c:
            c.subscribe([topic])
            got = 0
            with anyio.fail_after(30):
                while got < consumed:
                    got += len(await c.poll(timeout=0.5, max_records=consumed - got))
            await c.commit()


async def _produce(src, topic, start, n):
    async with Producer(src, linger_ms=5) as p:
        for i in range(start, start + n):
            await p.produce(topic, value=b"value-%d" % i, key=b"key-%d" % i,
                            headers=[("n", b"%d" % i), ("null", None)], timestamp_ms=1_600_000_000_000 + i)
        await p.flush()


async def _read_all(bootstrap, topic):
    out = {}
    async with Consumer(bootstrap) as c:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await c.end_offsets(tps)
        c.assign(tps)
        c.seek_to_beginning()
        recs = []
        with anyio.fail_after(60):
            while len(recs) < sum(ends.values()):
                recs += await c.poll(timeout=0.5)
    for r in recs:
        out.setdefault(r.partition, []).append((r.offset, r.key, r.value, r.headers, r.timestamp_ms))
    return out


async def _target_total(dst, topic) -> int:
    async with Admin(dst) as a:
        try:
            got = await a.list_offsets({(topic, p): "latest" for p in range(PARTITIONS)})
        except Exception:
            return 0
        return sum(v.offset for v in got.values())


def test_translate_offset_is_exact_on_gapless_ranges_and_never_skips_over_gaps():
    syncs = [(0, 0), (100, 100), (250, 180)]  # 100..250 on the source holds gaps (150 records in 70)
    assert translate_offset(syncs, 0) == 0
    assert translate_offset(syncs, 40) == 40
    assert translate_offset(syncs, 100) == 100
    assert translate_offset(syncs, 200) == 100  # gaps: back to the sync, re-read rather than skip
    assert translate_offset(syncs, 250) == 180
    assert translate_offset(syncs, 400) == 180  # not mirrored that far yet
    assert translate_offset([(10, 0)], 5) is None


def test_a_mirror_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(brokers):
    src, dst = brokers
    topic, group = "mirrored-kill", "mirror-group"
    anyio.run(_setup, src, topic, 30000, group, 1000)
    cmd = [KAFKITO, "mirror", "--from", src, "--to", dst, "--topics", "mirrored-.*", "--groups", "mirror-gr.*",
           "--name", "m1"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while anyio.run(_target_total, dst, topic) < 2000 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    copied_before = anyio.run(_target_total, dst, topic)
    assert 0 < copied_before < 30000, "the kill did not land mid-stream"
    anyio.run(_produce, src, topic, 30000, 1000)  # more arrives while the mirror is down
    done = subprocess.run(cmd + ["--once"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert b"lag 0" in done.stderr
    source, target = anyio.run(_read_all, src, topic), anyio.run(_read_all, dst, topic)
    assert sum(map(len, target.values())) == 31000
    assert target == source  # same partitions, offsets, keys, values, headers, timestamps

    async def check_target():
        async with Admin(dst) as a:
            configs = await a.describe_configs([topic], include_defaults=False)
            assert configs[("topic", topic)]["retention.ms"]["value"] == "86400001"
            assert len((await a.describe_topics([topic]))[topic].partitions) == PARTITIONS
            src_committed = await _committed(src, group)
            dst_committed = await a.list_group_offsets(group)
        assert dst_committed == src_committed and sum(o.offset for o in dst_committed.values()) == 1000
        # A consumer switched to the target resumes exactly after what it processed on the source.
        async with Consumer(dst, group_id=group, enable_auto_commit=False, auto_offset_reset="none") as c:
            c.subscribe([topic])
            got = []
            with anyio.fail_after(60):
                while len(got) < 30000:
                    got += await c.poll(timeout=0.5)
            got += await c.poll(timeout=1.0)
        assert len(got) == 30000
        for p in range(PARTITIONS):
            offsets = [r.offset for r in got if r.partition == p]
            assert offsets == list(range(dst_committed[TopicPartition(topic, p)].offset, len(target[p])))

    anyio.run(check_target)


async def _committed(bootstrap, group):
    async with Admin(bootstrap) as a:
        return await a.list_group_offsets(group)


def test_a_crash_between_copying_and_recording_progress_skips_what_is_already_there(brokers):
    """The crash window the syncs cover: records acknowledged by the target, the sync not
    yet written. The restarted mirror must not write those records again."""
    src, dst = brokers
    topic = "crashwindow-t"

    class Crash(Exception):
        pass

    class CrashingMirror(Mirror):
        crashed = False

        async def _write_syncs(self, syncs):
            if self.mirrored > 0 and not CrashingMirror.crashed:
                CrashingMirror.crashed = True
                raise Crash  # the data of this chunk is on the target; its sync is not
            await super()._write_syncs(syncs)

    async def main():
        await _setup(src, topic, 3000)
        m = CrashingMirror(src, dst, re.compile("crashwindow-.*"), name="m2", chunk_records=500)
        with pytest.raises(Crash):
            await m.run(once=True)
        before = await _target_total(dst, topic)
        assert 0 < before < 3000
        await Mirror(src, dst, re.compile("crashwindow-.*"), name="m2").run(once=True)
        return await _read_all(src, topic), await _read_all(dst, topic)

    source, target = anyio.run(main)
    assert target == source

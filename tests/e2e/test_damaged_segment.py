"""Issue 10 finding 2 against a real broker and a real client (confluent-kafka).

Before: 16 random bytes in the middle of an old closed segment, then an unclean restart, lost
1,584 of 2,400 acknowledged records (every later segment was deleted); after a clean restart
the damaged batch was served and the consumer looped on OFFSET_OUT_OF_RANGE resets. Now every
record outside the damaged batch is consumed exactly once, in order, to the end."""

from __future__ import annotations

import itertools
import os
import random
import shutil

import pytest
from e2e.clients import Msg, confluent_consume, confluent_produce

from kafkito.records import iter_batches
from kafkito.testing import broker as embedded_broker

pytestmark = pytest.mark.e2e

TOPIC = "damaged"
RECORDS = 2400


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    data = tmp_path_factory.mktemp("damaged-src")
    msgs = [Msg(f"k{i}".encode(), f"value-{i:05d}-".encode() * 6) for i in range(RECORDS)]
    with embedded_broker(data) as b:
        b.create_topic(TOPIC, 1, {"segment.bytes": "16384"})
        offsets = confluent_produce(b.bootstrap_servers, TOPIC, msgs, acks="all",
                                    extra={"batch.num.messages": 20, "linger.ms": 1})
        assert offsets == list(range(RECORDS))
    return data, msgs


@pytest.mark.parametrize("restart", ["clean", "unclean", "unclean-without-checkpoint"])
def test_random_bytes_in_an_old_segment_cost_only_that_batch(written, tmp_path, restart):
    src, msgs = written
    data = tmp_path / "data"
    shutil.copytree(src, data)
    part = data / f"{TOPIC}-0"
    segments = sorted(n for n in os.listdir(part) if n.endswith(".log"))
    assert len(segments) >= 8
    victim = part / segments[len(segments) // 3]
    batches = list(iter_batches(victim.read_bytes()))
    positions = list(itertools.accumulate((b.size_bytes for b in batches), initial=0))
    k = len(batches) // 2
    pos, size, first, last = positions[k], batches[k].size_bytes, batches[k].base_offset, batches[k].last_offset
    with open(victim, "r+b") as f:
        f.seek(pos + size // 2)
        f.write(random.Random(10).randbytes(16))
    if restart != "clean":
        os.unlink(data / ".kafka_cleanshutdown")
    if restart == "unclean-without-checkpoint":
        os.unlink(part / "recovery-point")
    expected = [i for i in range(RECORDS) if not first <= i <= last]
    with embedded_broker(data) as b:
        seen = confluent_consume(b.bootstrap_servers, TOPIC, 0, 0, len(expected), timeout_s=30)
        assert [s.offset for s in seen] == expected
        assert [s.value for s in seen] == [msgs[i].value for i in expected]
        plog = b.broker.state.logs.log(TOPIC, 0)
        [damage] = plog.damaged_ranges
        assert (damage.segment, damage.position, damage.size) == (int(victim.name[:20]), pos, size)
        assert (damage.first_offset, damage.last_offset) == (first, last)
        assert bool(plog.recovery.damage) == (restart == "unclean-without-checkpoint")
        # Appends continue after the log's end.
        assert confluent_produce(b.bootstrap_servers, TOPIC, [Msg(b"k", b"after")]) == [RECORDS]


def test_broker_checkpoints_the_recovery_point_while_running(tmp_path):
    """log.flush.offset.checkpoint.interval.ms: the flushed offset reaches the checkpoint
    file without a shutdown, so a kill -9 later rescans only what came after it."""
    import time

    from kafkito.storage import metafile

    settings = {"log.flush.offset.checkpoint.interval.ms": "100"}
    with embedded_broker(tmp_path, settings=settings) as b:
        b.create_topic("rp", 1)
        confluent_produce(b.bootstrap_servers, "rp", [Msg(b"k", b"v")] * 10, acks="all")
        path = tmp_path / "rp-0" / "recovery-point"
        deadline = time.monotonic() + 10
        point = None
        while time.monotonic() < deadline and point != 10:
            if path.exists():
                point = metafile.read(str(path), "recovery-point")["recovery_point"]
            time.sleep(0.05)
        assert point == 10

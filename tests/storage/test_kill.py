"""Kill a real writer process with SIGKILL in the middle of appending, again and again.

The writer appends batches whose content is a function of their base offset (so any batch
can be checked on its own), flushes now and then and reports each flushed offset on stdout
only after flush() returned. After every kill the parent reopens the log as after an
unclean shutdown and checks: offsets are contiguous from 0, every batch is byte-for-byte
what the writer meant for that offset, and nothing reported as flushed is missing. The
next writer continues the same log, so recovery of recovered logs is exercised too."""

import os
import random
import signal
import subprocess
import sys
import time

from kafkito.records import RecordBatch
from kafkito.storage import LogConfig, ManualClock, PartitionLog

KILLS = 12

WRITER = r"""
import sys
from kafkito.storage import LogConfig, PartitionLog, SystemClock, build_batch

def batch_for(offset):
    n = 1 + offset % 4
    size = 200_000 if offset % 11 == 0 else 50 + (offset * 7919) % 3000
    value = (str(offset).encode() * (size // 4 + 1))[:size]
    return build_batch([(b"k%d" % (offset + i), value, [("o", str(offset).encode())], offset)
                        for i in range(n)], compression=["none", "zstd", "lz4"][offset % 3])

config = LogConfig(segment_bytes=256 * 1024, index_interval_bytes=1024)
plog = PartitionLog.open(sys.argv[1], "t", 0, config, clock=SystemClock(), clean_shutdown=False)
print("R", plog.log_end_offset, flush=True)
i = 0
while True:
    plog.append(batch_for(plog.log_end_offset), 0)
    i += 1
    if i % 5 == 0:
        print("F", plog.flush(), flush=True)
"""


def _expected(offset: int) -> bytes:
    # Same generator as the writer's (kept in one string so both sides agree).
    ns = {}
    exec(WRITER.split("config =")[0], ns)
    return ns["batch_for"](offset)


def test_sigkill_mid_append_loses_nothing_flushed_and_serves_nothing_torn(tmp_path):
    path = str(tmp_path / "t-0")
    rng = random.Random(1234)
    flushed_reported = 0
    env = dict(os.environ)
    total_batches = 0
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE,
                                text=True, env=env)
        try:
            first = proc.stdout.readline().split()
            assert first[0] == "R", first
            assert int(first[1]) >= flushed_reported
            # Let it run through a random number of flushes, then kill it at a random moment.
            for _ in range(rng.randint(1, 8)):
                line = proc.stdout.readline().split()
                assert line and line[0] == "F"
                flushed_reported = max(flushed_reported, int(line[1]))
            time.sleep(rng.random() * 0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Anything printed before the kill counts as acknowledged; a line the kill cut short
        # (no newline yet) was never a complete report.
        tail = proc.stdout.read()
        complete = tail.split("\n")[:-1]
        for line in complete:
            parts = line.split()
            if parts and parts[0] == "F":
                flushed_reported = max(flushed_reported, int(parts[1]))
        proc.stdout.close()

        plog = PartitionLog.open(path, "t", 0, LogConfig(segment_bytes=256 * 1024,
                                                         index_interval_bytes=1024),
                                 clock=ManualClock(), clean_shutdown=False)
        try:
            expect = 0
            count = 0
            for batch in plog.batches():
                assert batch.base_offset == expect
                raw = batch.tobytes()
                want = RecordBatch(_expected(expect))
                assert RecordBatch(raw).is_valid()
                assert raw[61:] == want.buf[61:].tobytes(), f"batch at {expect} is not what was written"
                expect = batch.next_offset
                count += 1
            assert expect == plog.log_end_offset
            assert plog.log_end_offset >= flushed_reported, "a flushed batch was lost"
            total_batches = count
        finally:
            plog.close()
    assert total_batches > KILLS * 5

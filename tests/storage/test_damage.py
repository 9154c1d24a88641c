"""Issue 10 finding 2: one damaged old segment must cost only the damaged batch.

Before: 16 random bytes in the middle of a closed segment, then an unclean restart, made
recovery truncate that segment and delete every later one (1,584 of 2,400 acknowledged
records lost); after a clean restart the damaged batch was served as is. Now the batch is
isolated (recovery) or stepped over (reads of bytes not CRC-checked in this process), every
other batch stays readable, and the damage is reported. Also: the recovery-point checkpoint
(an unclean start scans only the segments reaching it) and ``kafkito verify``."""

import os
import random
import struct

import pytest
from storage_testlib import crash, open_log, payload, read_all

from kafkito.broker.cli import main as cli_main
from kafkito.records import RecordBatch
from kafkito.storage import LogConfig
from kafkito.storage.log import RECOVERY_POINT_FILE
from kafkito.storage.segment import BatchScan, VerifyingScan

CONFIG = LogConfig(segment_bytes=4000, index_interval_bytes=300, file_delete_delay_ms=0)


def _write(path, clock, n=60, flush_every=1):
    plog = open_log(path, clock, CONFIG)
    for i in range(n):
        plog.append(payload(i, n=1 + i % 4, size=30 + (i * 53) % 200), clock.now_ms())
        if i % flush_every == 0:
            plog.flush()
    plog.flush()
    stored = [b.tobytes() for b in read_all(plog)]
    return plog, stored


def _batches_in(log_path):
    """(position, size, base offset, last offset) of each batch of a segment file."""
    data = open(log_path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        last_delta = struct.unpack_from(">i", data, pos + 23)[0]
        out.append((pos, length + 12, base, base + last_delta))
        pos += length + 12
    return out


def _logs(path):
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".log"))


def _damage_middle(log_path, rng, nbytes=16):
    """Overwrite ``nbytes`` random bytes in the middle of a batch body; returns that batch."""
    batches = _batches_in(log_path)
    victim = batches[len(batches) // 2]
    pos, size = victim[0], victim[1]
    at = pos + 61 + (size - 61 - nbytes) // 2
    with open(log_path, "r+b") as f:
        f.seek(at)
        f.write(rng.randbytes(nbytes))
    return victim


def _without(stored, first, last):
    return [b for b in stored if not first <= RecordBatch(b).base_offset <= last]


@pytest.mark.parametrize("restart", ["unclean", "clean", "unclean-below-recovery-point"])
def test_random_bytes_in_an_old_segment_lose_only_that_batch(tmp_path, clock, restart):
    """Was: every later segment deleted (unclean), or the damaged batch served (clean)."""
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock)
    if restart == "unclean-below-recovery-point":
        plog.checkpoint_recovery_point()
    crash(plog) if restart != "clean" else plog.close()
    segments = _logs(path)
    assert len(segments) >= 5
    victim_file = segments[1]
    pos, size, first, last = _damage_middle(victim_file, random.Random(7))
    plog = open_log(path, clock, CONFIG, clean_shutdown=(restart == "clean"))
    expected = _without(stored, first, last)
    got = [b.tobytes() for b in read_all(plog)]
    assert got == expected, "a batch other than the damaged one was lost, or the damaged one served"
    assert all(RecordBatch(b).is_valid() for b in got)
    [damage] = plog.damaged_ranges
    assert (damage.segment, damage.position, damage.size) == (int(os.path.basename(victim_file)[:20]), pos, size)
    assert (damage.first_offset, damage.last_offset) == (first, last)
    assert "CRC-32C mismatch" in damage.reason
    assert not plog.recovery.deleted_segments
    if restart == "unclean":  # recovery found it: isolated on disk, bytes quarantined
        assert plog.recovery.damage == [damage]
        assert os.path.getsize(os.path.join(path, damage.quarantine)) == size
    else:  # the segment was trusted at start: the first read found it and stepped over it
        assert not plog.recovery.damage
        again = [b.tobytes() for b in read_all(plog)]  # found once, remembered
        assert again == expected and len(plog.damaged_ranges) == 1
    # A fetch of an offset inside the damaged batch gets the next batch.
    assert plog.read(first, 1).first_offset == last + 1
    plog.close()


def test_segment_cut_in_half_keeps_the_later_segments(tmp_path, clock):
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock)
    crash(plog)
    victim = _logs(path)[2]
    batches = _batches_in(victim)
    half = os.path.getsize(victim) // 2
    with open(victim, "r+b") as f:
        f.truncate(half)
    kept = [b for b in batches if b[0] + b[1] <= half]
    lost_first = batches[len(kept)][2]
    lost_last = batches[-1][3]
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert [b.tobytes() for b in read_all(plog)] == _without(stored, lost_first, lost_last)
    [damage] = plog.recovery.damage
    assert damage.position == batches[len(kept)][0]
    assert (damage.first_offset, damage.last_offset) == (lost_first, lost_last)
    assert plog.recovery.offset_gaps == [(lost_first, lost_last)]
    plog.close()


def test_unclean_start_scans_only_segments_reaching_the_recovery_point(tmp_path, clock):
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock, n=40)
    assert plog.checkpoint_recovery_point()
    assert not plog.checkpoint_recovery_point()  # unchanged: no second write
    point = plog.flushed_offset
    for i in range(40, 70):
        plog.append(payload(i, size=150), clock.now_ms())
    plog.flush()
    crash(plog)
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert plog.recovery.recovery_point == point
    bases = sorted(plog.recovery.modes())
    modes = plog.recovery.modes()
    for i, base in enumerate(bases):
        upper = bases[i + 1] if i + 1 < len(bases) else None
        want = "walk" if upper is not None and upper <= point else "full"
        assert modes[base] == want, (base, modes)
    assert list(modes.values()).count("walk") >= 3 and "full" in modes.values()
    plog.close()
    # Without a checkpoint every segment is scanned in full.
    os.unlink(path / RECOVERY_POINT_FILE)
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert set(plog.recovery.modes().values()) == {"full"}
    plog.close()


def test_recovery_point_is_lowered_when_recovery_cuts_below_it(tmp_path, clock):
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock, n=20)
    plog.close()  # writes the recovery point at the end
    last = _logs(path)[-1]
    batches = _batches_in(last)
    with open(last, "r+b") as f:
        f.truncate(batches[-1][0] + 10)
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    end = plog.log_end_offset
    assert end == batches[-1][2]
    plog.append(payload(1000), clock.now_ms())  # offsets the old checkpoint covered: not flushed
    crash(plog)
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert plog.recovery.recovery_point == end
    plog.close()


def test_reads_of_data_checked_in_this_process_take_the_plain_path(tmp_path, clock):
    """The hot path pays nothing: freshly appended (or fully scanned) bytes are read with
    BatchScan; bytes of a walked segment use VerifyingScan until read once."""
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock, n=30)
    plog.close()
    plog = open_log(path, clock, CONFIG, clean_shutdown=True)
    closed = plog.segments[0]
    assert isinstance(closed.headers_from(0, closed.size), VerifyingScan)
    info = plog.append(payload(500), clock.now_ms())
    active = plog.active_segment
    pos = active.find_batch(info.base_offset, active.size)
    assert isinstance(active.headers_from(pos, active.size), BatchScan)
    read_all(plog)
    assert not closed.unverified  # verified once, by that read
    assert isinstance(closed.headers_from(0, closed.size), BatchScan)
    plog.close()


def test_damaged_header_in_a_trusted_segment_is_stepped_over(tmp_path, clock):
    """Damage in a header field the CRC does not cover (baseOffset): the batch is never
    served under a wrong offset; the read continues with the next batch."""
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock)
    plog.close()
    victim = _logs(path)[1]
    pos, size, first, last = _batches_in(victim)[1]
    with open(victim, "r+b") as f:
        f.seek(pos)
        f.write(struct.pack(">q", first + 1))
    plog = open_log(path, clock, CONFIG, clean_shutdown=True)
    assert [b.tobytes() for b in read_all(plog)] == _without(stored, first, last)
    [damage] = plog.damaged_ranges
    assert "gap" in damage.reason and damage.position == pos
    plog.close()


def test_kafkito_verify_finds_a_flipped_byte_and_changes_nothing(tmp_path, clock, capsys):
    data = tmp_path / "data"
    path = data / "t-0"
    data.mkdir()
    plog, stored = _write(path, clock)
    plog.close()
    assert cli_main(["verify", str(data)]) == 0
    out = capsys.readouterr().out
    assert "t-0:" in out and "ok" in out and "0 damaged" in out
    victim = _logs(path)[3]
    pos, size, first, last = _batches_in(victim)[2]
    with open(victim, "r+b") as f:
        f.seek(pos + size - 3)
        byte = f.read(1)
        f.seek(pos + size - 3)
        f.write(bytes([byte[0] ^ 0x01]))
    before = {n: open(path / n, "rb").read() for n in os.listdir(path)}
    assert cli_main(["verify", str(data)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and os.path.basename(victim)[:20] in out
    assert f"position {pos}:" in out and f"offsets {first}..{last}" in out
    assert {n: open(path / n, "rb").read() for n in os.listdir(path)} == before


def test_a_segment_overlapping_the_one_before_is_moved_aside_not_deleted(tmp_path, clock):
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock)
    crash(plog)
    logs = _logs(path)
    stray_base = int(os.path.basename(logs[3])[:20]) - 1  # claims the last offset of logs[2]
    stray = path / f"{stray_base:020d}.log"
    stray.write_bytes(open(logs[3], "rb").read())
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert [b.tobytes() for b in read_all(plog)] == stored
    assert plog.recovery.modes()[stray_base] == "quarantined"
    assert not stray.exists() and (path / (stray.name + ".quarantine")).exists()
    plog.close()


def test_kafkito_verify_calls_an_unflushed_torn_tail_a_note_not_damage(tmp_path, clock, capsys):
    """A crash (or a broker writing right now) leaves half a batch at the end of the last
    segment; recovery cuts it. It is damage only when it was known flushed."""
    data = tmp_path / "data"
    data.mkdir()
    plog, stored = _write(data / "t-0", clock, n=20)
    crash(plog)
    last = _logs(data / "t-0")[-1]
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) - 5)
    assert cli_main(["verify", str(data)]) == 0
    assert "note: incomplete tail" in capsys.readouterr().out
    (data / ".kafka_cleanshutdown").write_bytes(b"")  # everything was flushed: damage
    assert cli_main(["verify", str(data)]) == 1
    assert "DAMAGED" in capsys.readouterr().out


def test_a_split_interrupted_before_its_cut_loses_and_duplicates_nothing(tmp_path, clock):
    """Recovery copies the valid tail to a new segment before it cuts the damaged one; a
    crash between the two leaves both files whole. The next start must serve each batch
    once (the copy bounds the resync) and lose only the damaged batch."""
    path = tmp_path / "t-0"
    plog, stored = _write(path, clock)
    crash(plog)
    victim = _logs(path)[1]
    pos, size, first, last = _damage_middle(victim, random.Random(3))
    damaged_file = open(victim, "rb").read()
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert plog.recovery.segments[1].split_base == last + 1
    crash(plog)
    with open(victim, "wb") as f:  # the cut never happened
        f.write(damaged_file)
    assert not (path / RECOVERY_POINT_FILE).exists()  # so both files are scanned in full
    plog = open_log(path, clock, CONFIG, clean_shutdown=False)
    assert [b.tobytes() for b in read_all(plog)] == _without(stored, first, last)
    assert plog.recovery.segments[1].split_base is None
    plog.close()

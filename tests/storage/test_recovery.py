"""Crash tests: a log is written, then its files are cut or damaged at many byte positions
(inside headers, inside records, inside the index files), and reopened.

The oracle for every case: the reopened log serves exactly the batches written (byte-identical)
except those the damage hit, every batch flushed before a cut that only loses unflushed bytes
is there, nothing damaged is served, and the log is appendable at its new end. Damage inside
the log loses only the damaged batch: later batches and later segments are kept (the log
then has an offset gap)."""

import os
import shutil
import struct

import pytest
from storage_testlib import CODECS, crash, open_log, payload, read_all

from kafkito.records import RecordBatch
from kafkito.storage import LogConfig

CONFIG = LogConfig(segment_bytes=2500, index_interval_bytes=200, file_delete_delay_ms=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A log of ~45 batches over several segments; the last ~8 batches are not flushed.
    Returns (directory, batches as stored, flushed offset, clock time)."""
    from kafkito.storage import ManualClock

    clock = ManualClock(1_700_000_000_000)
    path = tmp_path_factory.mktemp("crash") / "t-0"
    plog = open_log(path, clock, CONFIG)
    for i in range(45):
        if i == 37:
            plog.flush()
        plog.append(payload(i, n=1 + i % 3, size=20 + (i * 37) % 150, compression=CODECS[i % 5],
                            ts=clock.now_ms() + i * 10), clock.now_ms())
    flushed = plog.flushed_offset
    stored = [b.tobytes() for b in read_all(plog)]
    crash(plog)  # the unflushed tail is still in the files, as after kill -9
    return path, stored, flushed, clock


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def _segment_files(path, suffix):
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(suffix))


def _batch_positions(log_path):
    """(position, size) of each batch in a segment file."""
    data = open(log_path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        size = struct.unpack_from(">i", data, pos + 8)[0] + 12
        out.append((pos, size))
        pos += size
    return out


def _interesting_positions(log_path):
    """Byte positions inside every part of every batch: header fields and records."""
    positions = set()
    for pos, size in _batch_positions(log_path):
        for off in (0, 5, 8, 11, 12, 15, 16, 17, 20, 21, 23, 27, 35, 43, 51, 53, 57, 60, 61,
                    61 + (size - 61) // 2, size - 1):
            if off < size:
                positions.add(pos + off)
    return sorted(positions)


def _check_prefix(plog, stored, must_have_offset=0):
    got = [b.tobytes() for b in read_all(plog)]
    assert got == stored[: len(got)], "served batches differ from what was written"
    end = RecordBatch(got[-1]).next_offset if got else 0
    assert end >= must_have_offset, f"flushed data lost: end {end} < {must_have_offset}"
    _check_served(plog, got)
    return len(got)


def _check_served(plog, expected):
    """The log serves exactly ``expected`` (offset gaps allowed), every offset resolves to
    its batch (one inside a gap to the next batch), and it appends at its end."""
    got = [b.tobytes() for b in read_all(plog)]
    assert got == expected, "served batches differ from what was expected"
    end = RecordBatch(got[-1]).next_offset if got else plog.log_end_offset
    assert plog.log_end_offset == end
    prev_next = plog.log_start_offset
    for b in got:
        rb = RecordBatch(b)
        assert plog.read(rb.last_offset, 1).first_offset == rb.base_offset
        if rb.base_offset > prev_next:  # a gap: its offsets lead to the next batch
            assert plog.read(prev_next, 1).first_offset == rb.base_offset
        prev_next = rb.next_offset
    info = plog.append(payload(999), plog.clock.now_ms())
    assert info.base_offset == end
    assert [b.tobytes() for b in read_all(plog)][: len(got)] == got


def _reopen(path, clock, clean=False):
    return open_log(path, clock, CONFIG, clean_shutdown=clean)


def test_unclean_reopen_of_an_intact_log_keeps_everything(written, tmp_path):
    src, stored, flushed, clock = written
    plog = _reopen(_copy(src, tmp_path), clock)
    assert _check_prefix(plog, stored) == len(stored)
    plog.close()


def test_cut_anywhere_in_the_unflushed_tail(written, tmp_path):
    """A crash loses unflushed bytes: cut the last segment at positions in every field."""
    src, stored, flushed, clock = written
    last_log = _segment_files(src, ".log")[-1]
    flushed_bytes = 0
    base = int(os.path.basename(last_log)[:20])
    for pos, size in _batch_positions(last_log):
        with open(last_log, "rb") as f:
            f.seek(pos)
            rb = RecordBatch(f.read(size))
        if rb.last_offset < flushed:
            flushed_bytes = pos + size
    assert base < flushed  # the flush point is inside the last segment
    cuts = [p for p in _interesting_positions(last_log) if p >= flushed_bytes][::2]
    assert len(cuts) > 30
    for cut in cuts:
        path = _copy(src, tmp_path)
        with open(os.path.join(path, os.path.basename(last_log)), "r+b") as f:
            f.truncate(cut)
        plog = _reopen(path, clock)
        n = _check_prefix(plog, stored, must_have_offset=flushed)
        kept_in_last = sum(len(b) for b in stored[:n] if RecordBatch(b).base_offset >= base)
        assert plog.recovery.truncated_bytes == cut - kept_in_last
        plog.close()


@pytest.mark.parametrize("clean", [False, True])
def test_zero_filled_or_garbage_tail_is_cut(written, tmp_path, clean):
    """After a power loss a file may end in zeros or stale blocks past the written data."""
    src, stored, flushed, clock = written
    for junk in (b"\0" * 4096, os.urandom(1000), stored[0][:70]):
        path = _copy(src, tmp_path)
        last_log = _segment_files(path, ".log")[-1]
        with open(last_log, "ab") as f:
            f.write(junk)
        plog = _reopen(path, clock, clean)
        assert _check_prefix(plog, stored) == len(stored)
        assert plog.recovery.truncated_bytes == len(junk)
        plog.close()


def test_damaged_byte_anywhere_in_any_segment_is_never_served(written, tmp_path):
    """Flip one byte (header fields, CRC, records) in every segment: the reopened log serves
    every batch but the damaged one (later batches and later segments are kept), never the
    damaged one, and the report names the segment and position of the cut."""
    src, stored, flushed, clock = written
    logs = _segment_files(src, ".log")
    tried = 0
    for log_path in logs:
        name = os.path.basename(log_path)
        first_offset = int(name[:20])
        before = sum(1 for b in stored if RecordBatch(b).base_offset < first_offset)
        positions = _batch_positions(log_path)
        for pos in _interesting_positions(log_path)[::3]:
            path = _copy(src, tmp_path)
            with open(os.path.join(path, name), "r+b") as f:
                f.seek(pos)
                byte = f.read(1)
                f.seek(pos)
                f.write(bytes([byte[0] ^ 0x5A]))
            plog = _reopen(path, clock)
            k = sum(1 for p, _ in positions if p <= pos) - 1  # the damaged batch
            _check_served(plog, stored[: before + k] + stored[before + k + 1 :])
            [damage] = plog.recovery.damage
            assert (damage.segment, damage.position, damage.size) == (first_offset, *positions[k]), (name, pos)
            assert damage.first_offset == RecordBatch(stored[before + k]).base_offset
            if k + 1 < len(positions):  # the batches after it went to a new segment
                assert damage.last_offset == RecordBatch(stored[before + k]).last_offset
            plog.close()
            tried += 1
    assert tried > 100


@pytest.mark.parametrize("clean", [False, True])
def test_cut_inside_an_earlier_segment_keeps_later_segments(written, tmp_path, clean):
    """Was: ..._drops_everything_after_it. A segment cut short (half a batch left) loses only
    what was cut, after a clean or an unclean shutdown; the later segments are kept and the
    log has an offset gap."""
    src, stored, flushed, clock = written
    logs = _segment_files(src, ".log")
    victim = logs[1]
    positions = _batch_positions(victim)
    cut = positions[2][0] + 30
    path = _copy(src, tmp_path)
    with open(os.path.join(path, os.path.basename(victim)), "r+b") as f:
        f.truncate(cut)
    plog = _reopen(path, clock, clean)
    base = int(os.path.basename(victim)[:20])
    before = sum(1 for b in stored if RecordBatch(b).base_offset < base)
    lost = len(positions) - 2
    _check_served(plog, stored[: before + 2] + stored[before + 2 + lost :])
    assert not plog.recovery.deleted_segments
    assert all(os.path.exists(os.path.join(path, os.path.basename(n))) for n in logs)
    [damage] = plog.recovery.damage
    assert (damage.segment, damage.position, damage.size) == (base, positions[2][0], 30)
    assert os.path.getsize(os.path.join(path, damage.quarantine)) == 30
    next_base = int(os.path.basename(logs[2])[:20])
    first_lost = RecordBatch(stored[before + 2]).base_offset
    assert (damage.first_offset, damage.last_offset) == (first_lost, next_base - 1)
    assert plog.recovery.offset_gaps == [(first_lost, next_base - 1)]
    plog.close()
    plog = _reopen(path, clock, clean)  # nothing left to cut the second time
    assert not plog.recovery.damage and not plog.recovery.truncated_bytes
    plog.close()


def _damage_variants(data: bytes, entry: int):
    """Cuts at entry boundaries and inside entries, flipped bytes, garbage, empty."""
    out = [b"", os.urandom(len(data) or 8), data + b"\x00" * entry, data + os.urandom(5)]
    for pos in range(0, len(data), max(1, len(data) // 12)):
        out.append(data[:pos])
        out.append(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
    return out


@pytest.mark.parametrize("suffix,entry", [(".index", 8), (".timeindex", 12)])
@pytest.mark.parametrize("clean", [False, True])
def test_damaged_or_missing_index_files_are_rebuilt(written, tmp_path, suffix, entry, clean):
    src, stored, flushed, clock = written
    for idx_path in _segment_files(src, suffix)[:3] + _segment_files(src, suffix)[-1:]:
        name = os.path.basename(idx_path)
        data = open(idx_path, "rb").read()
        assert data  # the dense index has entries in every segment
        variants = _damage_variants(data, entry) + [None]  # None: the file is missing
        for variant in variants:
            path = _copy(src, tmp_path)
            if variant is None:
                os.unlink(os.path.join(path, name))
            else:
                with open(os.path.join(path, name), "wb") as f:
                    f.write(variant)
            plog = _reopen(path, clock, clean)
            assert _check_prefix(plog, stored) == len(stored)  # indexes never cost data
            if suffix == ".timeindex" and not clean:
                # After a full scan the time index is exact again.
                for b in stored[::5]:
                    rb = RecordBatch(b)
                    first = next(iter(rb.records()))
                    found = plog.offset_for_timestamp(first.timestamp)
                    assert found is not None and found[0] <= first.offset
            plog.close()


def test_rebuilt_indexes_equal_the_originals(written, tmp_path):
    """Recovery's indexing rule is the append path's: a full rebuild reproduces the files
    byte for byte (for closed segments, which are sealed identically)."""
    src, stored, flushed, clock = written
    path = _copy(src, tmp_path)
    originals = {n: open(os.path.join(path, n), "rb").read() for n in os.listdir(path)
                 if n.endswith((".index", ".timeindex"))}
    for n in originals:
        os.unlink(os.path.join(path, n))
    plog = _reopen(path, clock)
    plog.close()
    last = sorted(originals)[-1][:20]
    for n, data in originals.items():
        if n.startswith(last):
            continue  # the active segment gains its seal entry on close
        assert open(os.path.join(path, n), "rb").read() == data, n


def test_index_damaged_while_running_is_detected_at_lookup(written, tmp_path):
    """A clean shutdown trusts structurally sound indexes; an entry that points at the
    wrong batch is caught when a read uses it, and the index is rebuilt."""
    src, stored, flushed, clock = written
    path = _copy(src, tmp_path)
    plog = _reopen(path, clock, clean=False)
    plog.close()
    seg_index = _segment_files(path, ".index")[1]
    data = bytearray(open(seg_index, "rb").read())
    assert len(data) >= 16
    # Swap in a plausible but wrong position: still increasing, inside the file.
    rel0, pos0 = struct.unpack_from(">ii", data, 0)
    struct.pack_into(">ii", data, 0, rel0, pos0 - 1)
    open(seg_index, "wb").write(bytes(data))
    plog = _reopen(path, clock, clean=True)
    assert _check_prefix(plog, stored) == len(stored)
    plog.close()


def test_segment_created_by_a_roll_just_before_the_crash(written, tmp_path):
    src, stored, flushed, clock = written
    path = _copy(src, tmp_path)
    end = RecordBatch(stored[-1]).next_offset
    for suffix in (".log", ".index", ".timeindex"):
        open(os.path.join(path, f"{end:020d}{suffix}"), "wb").close()
    plog = _reopen(path, clock)
    assert _check_prefix(plog, stored) == len(stored)
    plog.close()
    # An orphan index without its log is removed.
    open(os.path.join(path, f"{end + 1000:020d}.index"), "wb").close()
    plog = _reopen(path, clock)
    assert not os.path.exists(os.path.join(path, f"{end + 1000:020d}.index"))
    plog.close()

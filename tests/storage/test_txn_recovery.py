"""Recovery of transaction state: a partition holding committed, aborted and open
transactions is crashed at each step of ending one more (its data written, its marker
appended but not flushed, its marker flushed) and reopened. A power loss (SimIO: unsynced
writes lost, the last one maybe torn) must give back exactly what the log served before the
crash: the last stable offset, the aborted transactions a read_committed fetch is told
about, and the records read_committed serves. A kill -9 (the page cache survives) must give
what a flush at the crash point would have made durable. A lost or torn ``.txnindex`` is
rebuilt from the markers in the log, byte for byte."""

from __future__ import annotations

import os
import random

import pytest
from sim.simio import Faults, SimIO
from storage_testlib import open_log
from test_transactions import committed_view, plain, txn

from kafkito.storage import LogConfig, ManualClock
from kafkito.storage.handles import OpenFiles
from kafkito.storage.txn_index import TXN_INDEX_SUFFIX

CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=128)
STEPS = ["after_data", "after_marker_append", "after_flush"]
T0 = 1_700_000_000_000


def observe(plog) -> dict:
    """What a read_committed consumer can learn from the log."""
    lso = plog.last_stable_offset
    return {
        "hw": plog.high_watermark,
        "lso": lso,
        "aborted": plog.aborted_transactions(plog.log_start_offset, lso),
        "committed": committed_view(plog),
        "open": sorted((p.producer_id, p.current_txn_start_offset) for p in plog.active_producers()
                       if p.current_txn_start_offset >= 0),
        "index": [e for e in plog.txn_indexes.entries() if e.last_offset < plog.high_watermark],
    }


def history(plog, now: int) -> None:
    """Committed and aborted transactions over several segments, a plain producer between
    them, and producer 3's transaction left open from the middle on."""
    seqs = {1: 0, 2: 0, 3: 0}

    def data(pid):
        plog.append(txn(pid, seqs[pid], tag=b"h"), now)
        seqs[pid] += 2

    for round_ in range(4):
        if round_ == 2:
            data(3)
        data(1)
        plog.append(plain(b"p%d" % round_), now)
        data(2)
        plog.append_control(1, 0, round_ % 2 == 0, 0, now)
        data(1)
        plog.append_control(2, 0, round_ % 2 == 1, 0, now)
        plog.append_control(1, 0, False, 0, now)
        if round_ == 1:
            plog.flush()
    data(3)
    plog.flush()


def run_to(plog, step: str, commit: bool, now: int) -> None:
    """End producer 4's transaction up to ``step``."""
    plog.append(txn(4, 0, n=3, tag=b"last"), now)
    plog.append(plain(b"after"), now)
    plog.flush()
    if step == "after_data":
        return
    plog.append_control(4, 0, commit, 0, now)
    if step == "after_flush":
        plog.flush()


def sim_log(tmp_path, name: str, seed: int = 7):
    io = SimIO(str(tmp_path / name), random.Random(seed), Faults(torn_writes=True))
    clock = ManualClock(T0)
    return io, clock


def reopen(io, clock, path, clean: bool = False):
    return open_log(path, clock, CONFIG, io=io, files=OpenFiles(64), clean_shutdown=clean)


def played_to(tmp_path, name: str, step: str, commit: bool):
    """A log on a SimIO disk with the history, producer 4's transaction run to ``step``."""
    io, clock = sim_log(tmp_path, name)
    path = tmp_path / name / "t-0"
    plog = reopen(io, clock, path, clean=True)
    history(plog, clock.now_ms())
    run_to(plog, step, commit, clock.now_ms())
    return io, clock, path, plog


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
@pytest.mark.parametrize("step", STEPS)
def test_power_loss_at_each_step_serves_what_it_served(tmp_path, step, commit):
    io, clock, path, plog = played_to(tmp_path, "d", step, commit)
    now = clock.now_ms()
    before = observe(plog)
    assert before["lso"] < before["hw"]  # producer 3 is open: read_committed is held back
    assert before["aborted"] and before["committed"]
    io.power_loss()
    io.revive()
    plog = reopen(io, clock, path)
    after = observe(plog)
    if step == "after_marker_append":
        # The lost marker's transaction is open again (its coordinator writes the marker
        # again); until then it holds the LSO exactly as its unflushed marker did.
        assert (4, 44) in after.pop("open") and (4, 44) not in before.pop("open")
    assert after == before
    # The coordinator then (re)writes the markers: the outcome is the one it decided.
    if step != "after_flush":
        plog.append_control(4, 0, commit, 0, now)
    plog.append_control(3, 0, True, 0, now)
    plog.flush()
    after = observe(plog)
    assert after["lso"] == after["hw"] == plog.log_end_offset
    last_values = [v for _, v in after["committed"] if v.endswith(b"/last")]
    assert len(last_values) == (3 if commit else 0)
    assert any(pid == 4 for pid, _first in after["aborted"]) == (not commit)
    plog.close()


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_serves_what_a_flush_made_durable(tmp_path, step):
    io, clock, path, plog = played_to(tmp_path, "d", step, False)
    io.kill()  # the page cache keeps every write: the unflushed marker survives
    io.revive()
    # The reference: the same history in a log that flushed at the crash point.
    ref = played_to(tmp_path, "ref", step, False)[3]
    ref.flush()
    expected = observe(ref)
    plog = reopen(io, clock, path)
    assert observe(plog) == expected
    plog.close()
    ref.close()


def _txn_index_files(path) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(TXN_INDEX_SUFFIX):
            with open(os.path.join(path, name), "rb") as f:
                out[name] = f.read()
    return out


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "crash"])
@pytest.mark.parametrize("damage", ["deleted", "torn", "all_deleted"])
def test_lost_or_damaged_txn_index_is_rebuilt(tmp_path, clean, damage):
    clock = ManualClock(T0)
    path = tmp_path / "t-0"
    plog = open_log(path, clock, CONFIG)
    history(plog, clock.now_ms())
    run_to(plog, "after_flush", False, clock.now_ms())
    before = observe(plog)
    if clean:
        plog.close()
    else:
        plog.flush()
        plog.checkpoint_recovery_point()
        for seg in plog.segments:
            seg.close()
    files = _txn_index_files(path)
    assert len(files) >= 2  # aborts in several segments
    victims = sorted(files)
    if damage == "deleted":
        os.unlink(path / victims[0])
    elif damage == "all_deleted":
        for name in victims:
            os.unlink(path / name)
    else:
        with open(path / victims[0], "r+b") as f:
            f.truncate(len(files[victims[0]]) - 5)
    plog = open_log(path, clock, CONFIG, clean_shutdown=clean, files=OpenFiles(64))
    assert observe(plog) == before
    assert _txn_index_files(path) == files
    plog.close()
    # And the rebuilt files are trusted by the next start as they are.
    plog = open_log(path, clock, CONFIG, files=OpenFiles(64))
    assert observe(plog) == before
    assert plog.recovery.producer_batches_replayed == 0
    plog.close()

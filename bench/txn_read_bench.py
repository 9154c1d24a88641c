"""What read_committed costs the broker's read path, next to read_uncommitted, in one run.

    .venv/bin/python bench/txn_read_bench.py [--transactions 20000] [--records 10] [--aborted 0.5]

Builds one partition log of transactions (each ``--records`` 1 KB records in one batch,
the given fraction aborted, a plain batch and the marker between them: a worst case for
the aborted-transaction index, every other transaction aborted), then reads it all, warm,
as the Fetch handler does: ``read`` in 1 MiB slices up to the high watermark
(read_uncommitted), or up to the last stable offset plus ``aborted_transactions`` of each
slice (read_committed). Prints MB/s of each and their ratio (best of 5, alternating).
Consumer-side filtering is the client's cost and is not measured. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from kafkito.records import build_batch
from kafkito.storage import LogConfig, ManualClock, PartitionLog

MB = 1024 * 1024
TS = 1_700_000_000_000


def build(directory: str, transactions: int, records: int, aborted: float) -> PartitionLog:
    plog = PartitionLog.open(directory, "bench", 0, LogConfig(), clock=ManualClock(TS))
    value = b"v" * 1000
    plain = build_batch([(None, value, [], TS)])
    every = max(1, round(1 / aborted)) if aborted > 0 else 0
    for i in range(transactions):
        pid = 1000 + i % 16
        batch = build_batch([(b"k", value, [], TS)] * records, producer_id=pid, producer_epoch=0,
                            base_sequence=(i // 16) * records, is_transactional=True)
        plog.append(batch, TS)
        plog.append(plain, TS)
        plog.append_control(pid, 0, not (every and i % every == 0), 0, TS)
    plog.flush()
    return plog


def read_all(plog: PartitionLog, committed: bool) -> tuple[float, int, int]:
    bound = plog.last_stable_offset if committed else plog.high_watermark
    offset, nbytes, aborted = plog.log_start_offset, 0, 0
    start = time.perf_counter()
    while offset < bound:
        s = plog.read(offset, MB, max_offset=bound)
        if s.size == 0:
            break
        if committed:
            aborted += len(plog.aborted_transactions(offset, s.next_offset))
        nbytes += s.size
        offset = s.next_offset
        s.close()
    return time.perf_counter() - start, nbytes, aborted


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--aborted", type=float, default=0.5)
    args = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="txn-read-bench-")
    try:
        plog = build(directory + "/bench-0", args.transactions, args.records, args.aborted)
        best = {False: None, True: None}
        for _ in range(5):
            for committed in (False, True):
                elapsed, nbytes, aborted = read_all(plog, committed)
                if best[committed] is None or elapsed < best[committed][0]:
                    best[committed] = (elapsed, nbytes, aborted)
        u, c = best[False], best[True]
        print(f"log: {u[1] / MB:.0f} MB, {args.transactions} transactions, "
              f"{args.aborted:.0%} aborted ({c[2]} aborted-list entries served)")
        print(f"read_uncommitted {u[1] / MB / u[0]:8.0f} MB/s")
        print(f"read_committed   {c[1] / MB / c[0]:8.0f} MB/s   ratio {u[0] / c[0]:.2f}x")
        plog.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

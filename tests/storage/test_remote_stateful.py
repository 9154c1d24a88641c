"""A stateful model of a tiered log: appends, rolls, offload passes, local and total
retention, DeleteRecords and restarts in any order; after every step the log over both
tiers reads exactly the model's records from its start, and the bucket's manifest names
only objects that exist."""

import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kafkito.records.batch import iter_batches
from kafkito.storage import LogManager, ManualClock, build_batch
from kafkito.storage.remote import RemoteLogManager
from kafkito.storage.remote.manifest import segment_key

T0 = 1_600_000_000_000
CONFIGS = {"remote.storage.enable": "true", "segment.bytes": "1024", "retention.ms": "-1",
           "local.retention.ms": "0", "file.delete.delay.ms": "0", "index.interval.bytes": "100"}


class TieredLog(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="kafkito-tiered-model-")
        self.url = f"file://{self.root}/bucket"
        self.clock = ManualClock(T0 + 10_000_000)
        self.model: dict[int, bytes] = {}  # offset -> value of every record still readable
        self.start = 0
        self.next = 0
        self.open()
        self.mgr.create_topic("t", 1, CONFIGS)

    def open(self):
        self.mgr = LogManager(f"{self.root}/data", clock=self.clock,
                              remote=RemoteLogManager(self.url, chunk_bytes=256, readahead_chunks=1))
        self.mgr.startup()

    @property
    def plog(self):
        return self.mgr.log("t", 0)

    @rule(n=st.integers(1, 4), size=st.integers(1, 120))
    def append(self, n, size):
        values = [b"%d:" % (self.next + i) + b"v" * size for i in range(n)]
        self.plog.append(build_batch([(None, v, [], T0 + self.next + i) for i, v in enumerate(values)]),
                         self.clock.now_ms())
        for v in values:
            self.model[self.next] = v
            self.next += 1
        self.plog.flush()

    @rule()
    def roll(self):
        self.plog.roll()
        self.plog.flush()

    @rule()
    def offload(self):
        self.mgr.remote.run_partition(self.plog, self.clock.now_ms())

    @rule(keep=st.integers(0, 5000))
    def total_retention_bytes(self, keep):
        configs = dict(CONFIGS, **{"retention.bytes": str(keep)})
        self.mgr.alter_topic_configs("t", configs)
        self.mgr.remote.run_partition(self.plog, self.clock.now_ms())
        self.mgr.alter_topic_configs("t", CONFIGS)
        self.sync_start()

    @precondition(lambda self: self.next > self.start)
    @rule(data=st.data())
    def delete_records(self, data):
        cut = data.draw(st.integers(self.start, self.next))
        assert self.plog.delete_records_before(cut) == max(cut, self.start)
        self.sync_start()

    @rule()
    def restart(self):
        self.mgr.shutdown()
        self.open()

    def sync_start(self):
        """Retention moved the start to a segment boundary: the model follows."""
        self.start = self.plog.log_start_offset
        self.model = {o: v for o, v in self.model.items() if o >= self.start}

    @invariant()
    def reads_the_model_over_both_tiers(self):
        plog = self.plog
        assert plog.log_start_offset == self.start
        assert plog.log_end_offset == self.next
        seen, offset = {}, self.start
        while offset < plog.log_end_offset:
            region = plog.read(offset, 1 << 16)
            for batch in iter_batches(region.tobytes()):
                for rec in batch.records():
                    if rec.offset >= self.start:
                        seen[rec.offset] = rec.value
            assert region.next_offset > offset
            offset = region.next_offset
        assert seen == self.model

    @invariant()
    def manifest_names_only_existing_objects(self):
        tier = self.plog.tier
        m = tier.manifest
        for seg in m.segments:
            for suffix in seg.files:
                tier.store.get(segment_key("t", m.topic_id, 0, seg.base_offset, suffix))
        if m.segments:
            assert self.plog.local_log_start_offset <= m.end_offset

    def teardown(self):
        self.mgr.shutdown()
        shutil.rmtree(self.root, ignore_errors=True)


TestTieredLog = TieredLog.TestCase
TestTieredLog.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)

"""The C record codec (records/_reccodec.c) against its Python reference, on random records
and on damaged sections."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from kafkito.client.types import ConsumerRecord
from kafkito.records import reccodec
from kafkito.records.errors import CorruptRecordError

pytestmark = pytest.mark.skipif(not reccodec.ACCELERATED, reason="the C codec is not built")

nullable = st.none() | st.binary(max_size=64)
header = st.tuples(st.text(max_size=8), nullable)
record = st.tuples(nullable, nullable, st.none() | st.lists(header, max_size=4),
                   st.integers(min_value=0, max_value=2**41))


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=20), st.integers(min_value=0, max_value=2**41), st.integers(0, 25))
def test_c_and_python_agree(records, base_ts, min_offset):
    raw = reccodec.encode_records(records, base_ts)
    assert raw == reccodec.encode_records_py(records, base_ts)
    args = (raw, len(records), 100, base_ts, -1, 100 + min_offset, ConsumerRecord, "t", 3, 0, 7)
    c = reccodec.decode_records(*args)
    assert c == reccodec.decode_records_py(*args)
    assert [(r.key, r.value, r.headers, r.timestamp_ms) for r in c] == [
        (k, v, list(h or []), ts) for k, v, h, ts in records][min_offset:]


@settings(max_examples=300, deadline=None)
@given(st.lists(record, min_size=1, max_size=5), st.data())
def test_damaged_sections_raise_in_both(records, data):
    raw = bytearray(reccodec.encode_records(records, 0))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    damaged = bytes(raw[:cut])
    args = (damaged, len(records), 0, 0, -1, 0, ConsumerRecord, "t", 0, 0, -1)
    outcomes = []
    for fn in (reccodec.decode_records, reccodec.decode_records_py):
        try:
            outcomes.append(("ok", fn(*args)))
        except CorruptRecordError:
            outcomes.append(("corrupt", None))
    assert outcomes[0][0] == outcomes[1][0]
    if outcomes[0][0] == "ok":
        assert outcomes[0][1] == outcomes[1][1]


def test_log_append_time_replaces_every_timestamp():
    raw = reccodec.encode_records([(b"k", b"v", None, 5), (b"k", b"v", None, 9)], 5)
    recs = reccodec.decode_records(raw, 2, 0, 5, 1234, 0, ConsumerRecord, "t", 0, 1, -1)
    assert [r.timestamp_ms for r in recs] == [1234, 1234] and recs[0].timestamp_type == 1

"""storage/validator.py and records/recordscan.py: one test per LogValidator rule, the C walk
against its Python reference, and hypothesis over valid and single-byte-mutated batches."""

import struct

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkito.records import batch as B
from kafkito.records import recordscan
from kafkito.storage.config import LogConfig
from kafkito.storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    StorageError,
    UnsupportedCompressionTypeError,
    UnsupportedMessageFormatError,
)
from kafkito.storage.validator import (
    InconsistentBatchError,
    InvalidTimestampError,
    RecordValidationError,
    validate_batches,
)

NOW = 1_700_000_000_000
CONFIG = LogConfig()
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _batch(n=3, ts=NOW, key=b"k", **kw):
    return B.build_batch([(key, b"v" * 10, [], ts + i) for i in range(n)], **kw)


def _recrc(raw) -> bytes:
    raw = bytearray(raw)
    struct.pack_into(">I", raw, B.CRC_AT, crc32c(bytes(raw[B.ATTRIBUTES_AT:])))
    return bytes(raw)


def _set(raw, at, fmt, value) -> bytes:
    raw = bytearray(raw)
    struct.pack_into(fmt, raw, at, value)
    return _recrc(raw)


def _body(raw, body) -> bytes:
    out = bytearray(raw[: B.HEADER_BYTES]) + body
    struct.pack_into(">i", out, B.BATCH_LENGTH_AT, len(out) - B.LOG_OVERHEAD)
    return _recrc(out)


def _validate(raw, config=CONFIG, now=NOW, **kw):
    return validate_batches(raw, config, now, **kw)


# ----------------------------------------------------------------------- header and bytes

def test_header_rules_magic_truncation_length_crc_size():
    raw = _batch()
    with pytest.raises(UnsupportedMessageFormatError):
        _validate(_set(raw, B.MAGIC_AT, ">b", 1))
    for cut in (1, 17, 60, len(raw) - 1):
        with pytest.raises(CorruptRecordError):
            _validate(raw[:cut])
    for length in (0, 48, len(raw)):
        with pytest.raises(CorruptRecordError):
            _validate(_set(raw, B.BATCH_LENGTH_AT, ">i", length))
    with pytest.raises(CorruptRecordError):
        _validate(b"")
    for pos in range(B.ATTRIBUTES_AT, len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        with pytest.raises(CorruptRecordError):
            _validate(bad)
    assert _validate(raw, LogConfig(max_message_bytes=len(raw)))
    with pytest.raises(RecordTooLargeError):
        _validate(raw, LogConfig(max_message_bytes=len(raw) - 1))


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec_ids_are_unsupported_compression(codec):
    with pytest.raises(UnsupportedCompressionTypeError):
        _validate(_set(_batch(), B.ATTRIBUTES_AT, ">h", codec))


# ------------------------------------------------------------------------------ batch rules

def test_count_and_last_offset_delta_must_agree_and_be_positive():
    raw = _batch(3)
    with pytest.raises(InconsistentBatchError) as e:
        _validate(_set(raw, B.LAST_OFFSET_DELTA_AT, ">i", 5))
    assert e.value.error_name == "INVALID_RECORD"
    with pytest.raises(InconsistentBatchError):
        _validate(_set(raw, B.RECORDS_COUNT_AT, ">i", 0))


def test_count_must_match_the_records_actually_there():
    raw = _batch(2)
    more = _set(_set(raw, B.RECORDS_COUNT_AT, ">i", 3), B.LAST_OFFSET_DELTA_AT, ">i", 2)
    with pytest.raises(InvalidRecordError, match="premature EOF"):
        _validate(more)
    fewer = _set(_set(raw, B.RECORDS_COUNT_AT, ">i", 1), B.LAST_OFFSET_DELTA_AT, ">i", 0)
    with pytest.raises(InvalidRecordError, match="still remaining"):
        _validate(fewer)


def test_client_rules_one_batch_base_offset_control_sequence_transactional():
    with pytest.raises(InvalidRecordError, match="exactly one record batch"):
        _validate(_batch(1) + _batch(1))
    assert len(_validate(_batch(1) + _batch(2), from_client=False)) == 2
    with pytest.raises(InvalidRecordError, match="baseOffset"):
        _validate(_batch(base_offset=7))
    with pytest.raises(InvalidRecordError, match="control"):
        _validate(_batch(is_control=True))
    assert _validate(_batch(is_control=True), from_client=False)
    with pytest.raises(InvalidRecordError, match="sequence"):
        _validate(_batch(producer_id=5, producer_epoch=0))
    with pytest.raises(InvalidRecordError, match="Transactional"):
        _validate(_batch(is_transactional=True))
    assert _validate(_batch(is_transactional=True, producer_id=5, producer_epoch=0, base_sequence=0))


# ---------------------------------------------------------------------------- the records

def test_records_walk_rejects_lying_lengths_and_offset_deltas():
    raw = bytearray(_batch(2))
    raw[B.HEADER_BYTES] += 2  # first record claims one more byte
    with pytest.raises(InvalidRecordError):
        _validate(_recrc(raw))
    # Record 1 claims offset delta 0 (Kafka would rebuild such a compressed batch).
    section = bytearray()
    B.encode_record(section, 0, 0, b"k", b"v", [])
    B.encode_record(section, 0, 0, b"k", b"v", [])
    with pytest.raises(InvalidRecordError, match="offset delta"):
        _validate(_body(_batch(2), bytes(section)))


def test_decompressed_size_is_capped_on_every_topic():
    raw = B.build_batch([(b"k", b"\0" * 100_000, [], NOW)], compression="zstd")
    assert len(raw) < 1000
    size = len(B.RecordBatch(raw).records_section())
    assert _validate(raw, decompressed_bytes_max=size)  # at the limit
    with pytest.raises(RecordTooLargeError):
        _validate(raw, decompressed_bytes_max=size - 1)
    plain = _batch(100)
    assert _validate(plain, decompressed_bytes_max=len(plain) - B.HEADER_BYTES)
    with pytest.raises(RecordTooLargeError):  # uncompressed too
        _validate(plain, decompressed_bytes_max=len(plain) - B.HEADER_BYTES - 1)


@pytest.mark.parametrize("codec", CODECS[1:])
def test_undecodable_compressed_records_are_corrupt(codec):
    raw = _batch(5, compression=codec)
    with pytest.raises(CorruptRecordError):
        _validate(_body(raw, b"\x01\x02\x03garbage" * 3))


def test_timestamps_after_and_before_max_ms_name_each_record():
    hour = 3_600_000
    ok = B.build_batch([(b"k", b"v", [], NOW), (b"k", b"v", [], NOW + hour)])
    assert _validate(ok)  # Kafka 4's default: one hour into the future, inclusive
    late = B.build_batch([(b"k", b"v", [], NOW), (b"k", b"v", [], NOW + hour + 1), (b"k", b"v", [], -1)])
    with pytest.raises(InvalidTimestampError) as e:
        _validate(late)
    assert [r.batch_index for r in e.value.record_errors] == [1]  # -1 (no timestamp) passes
    assert e.value.error_name == "INVALID_TIMESTAMP"
    old = B.build_batch([(b"k", b"v", [], NOW - 5000), (b"k", b"v", [], NOW - 10)])
    strict = LogConfig(message_timestamp_before_max_ms=1000)
    with pytest.raises(InvalidTimestampError) as e:
        _validate(old, strict)
    assert [r.batch_index for r in e.value.record_errors] == [0]
    # LogAppendTime topics do not look at the producer's timestamps ...
    assert _validate(late, LogConfig(message_timestamp_type="LogAppendTime"))
    # ... and no client may claim LogAppendTime itself.
    with pytest.raises(InvalidTimestampError):
        _validate(_batch(2, timestamp_type=B.LOG_APPEND_TIME))


def test_keyless_records_on_compacted_topics_are_named_and_keys_win_over_timestamps():
    compact = LogConfig(cleanup_policy=("compact",))
    records = [(b"k", b"v", [], NOW), (None, b"v", [], NOW), (None, b"v", [], NOW + 10**9)]
    raw = B.build_batch(records, compression="gzip")
    with pytest.raises(RecordValidationError) as e:
        _validate(raw, compact)
    assert type(e.value) is RecordValidationError and e.value.error_name == "INVALID_RECORD"
    assert [r.batch_index for r in e.value.record_errors] == [1, 2]
    assert _validate(raw, from_client=False) and _validate(B.build_batch(records[1:2]))


def test_true_max_timestamp_is_reported_and_a_lie_is_flagged_for_stamping():
    raw = _batch(3, ts=NOW)
    [h] = _validate(raw)
    assert (h.max_timestamp, h.stamp_max_timestamp) == (NOW + 2, False)
    lie = _set(raw, B.MAX_TIMESTAMP_AT, ">q", NOW + 999)
    [h] = _validate(lie)
    assert (h.max_timestamp, h.stamp_max_timestamp) == (NOW + 2, True)
    stamped = B.RecordBatch(bytes(B.stamp_header(memoryview(lie), h, 40, 0, None)) + lie[B.HEADER_BYTES:])
    assert stamped.is_valid() and stamped.max_timestamp == NOW + 2


# ----------------------------------------------------------------- hypothesis: all records

records_st = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=20)),
        st.one_of(st.none(), st.binary(max_size=300)),
        st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))), max_size=3),
        st.integers(min_value=NOW - 10**9, max_value=NOW + 3_600_000),
    ),
    min_size=1, max_size=30,
)


@given(records=records_st, codec=st.sampled_from(CODECS))
@settings(max_examples=150, deadline=None)
def test_valid_batches_always_pass_and_both_walks_agree(records, codec):
    raw = B.build_batch(records, compression=codec)
    [h] = _validate(raw)
    assert h.records_count == len(records)
    assert h.max_timestamp == max(r[3] for r in records)
    section = B.RecordBatch(raw).records_section()
    assert recordscan.scan(section, len(records)) == recordscan.scan_py(section, len(records))


@given(records=records_st, codec=st.sampled_from(CODECS), data=st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_single_byte_mutations_are_refused_or_decode_consistently(records, codec, data):
    """Mutate one byte of the records section (compressed or not) and fix the CRC: the
    validator either refuses the batch, or what it accepts decodes to exactly ``count``
    records at offsets 0..n-1 whose maximum timestamp is what it reports; on the
    decompressed section the C and Python walks agree."""
    raw = bytearray(B.build_batch(records, compression=codec))
    pos = data.draw(st.integers(B.HEADER_BYTES, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    raw = _recrc(raw)
    count = len(records)
    try:
        section = B.RecordBatch(raw).records_section()
    except StorageError:
        section = None  # the compressed stream no longer decodes
    if section is not None:
        outcomes = []
        for walk in (recordscan.scan, recordscan.scan_py):
            try:
                outcomes.append(walk(section, count))
            except recordscan.RecordScanError as e:
                outcomes.append(("error", e.record_index))
        assert outcomes[0] == outcomes[1]
    loose = LogConfig(message_timestamp_after_max_ms=2**63 - 1)
    try:
        [h] = _validate(raw, loose)
    except StorageError:
        return
    assert section is not None
    decoded = list(B.RecordBatch(raw).records())
    assert [r.offset for r in decoded] == list(range(count))
    assert h.max_timestamp == max(-1, max(r.timestamp for r in decoded))


# ----------------------------------------------------------------------- the walk's contract

def test_scan_reports_timestamp_range_and_keyless_count():
    raw = B.build_batch([(b"k", b"v", [], NOW + 5), (None, None, [("h", None)], NOW - 7), (None, b"", [], NOW)])
    section = raw[B.HEADER_BYTES:]
    expected = (-7 - 5, 0, 2)  # deltas from the first record's timestamp
    assert recordscan.scan_py(section, 3) == expected
    assert recordscan.scan(section, 3) == expected


@pytest.mark.skipif(not recordscan.ACCELERATED, reason="the C walk is not built here")
def test_the_c_walk_is_the_one_in_use_when_built():
    assert recordscan.scan is not recordscan.scan_py


@pytest.mark.parametrize("content_size", [True, False], ids=["declared-size", "streamed"])
def test_zstd_frames_concatenated_truncated_and_bombs(content_size):
    import zstandard

    from kafkito.records import codecs

    zc = zstandard.ZstdCompressor(write_content_size=content_size)
    data = bytes(range(256)) * 400
    frame = zc.compress(data)
    assert codecs.decompress(codecs.ZSTD, frame + frame, 1 << 20) == data + data
    for bad in (frame[:-3], frame + frame[:-3], b"\x28\xb5\x2f\xfd" + b"\0" * 40):
        with pytest.raises(CorruptRecordError):
            codecs.decompress(codecs.ZSTD, bad, 1 << 20)
    bomb = zc.compress(b"\0" * (8 << 20))
    with pytest.raises(RecordTooLargeError):
        codecs.decompress(codecs.ZSTD, bomb, 1 << 20)
    with pytest.raises(RecordTooLargeError):  # the cap counts every frame
        codecs.decompress(codecs.ZSTD, frame + frame, len(data) + 10)


def test_record_errors_are_bounded_and_the_message_gives_the_total():
    from kafkito.storage.validator import RECORD_ERRORS_MAX

    compact = LogConfig(cleanup_policy=("compact",))
    n = RECORD_ERRORS_MAX + 500
    raw = B.build_batch([(None, b"", [], NOW)] * n)
    with pytest.raises(RecordValidationError) as e:
        _validate(raw, compact)
    assert len(e.value.record_errors) == RECORD_ERRORS_MAX
    assert e.value.record_errors[-1].batch_index == RECORD_ERRORS_MAX - 1
    assert f"{n} record errors in total" in str(e.value)


@given(chunks=st.lists(st.tuples(st.binary(max_size=3000), st.integers(1, 200), st.booleans(),
                                 st.integers(1, 19)), min_size=1, max_size=4))
@settings(max_examples=100, deadline=None)
def test_zstd_frames_decode_as_zstd_itself_decodes_them(chunks):
    """Concatenated frames (repetitive or random data, with and without a declared size and
    a checksum) decode to what was compressed; the cap holds at its exact limit."""
    import zstandard

    from kafkito.records import codecs

    blob, expected = b"", b""
    for data, repeat, declared, level in chunks:
        zc = zstandard.ZstdCompressor(level=level, write_content_size=declared, write_checksum=not declared)
        blob += zc.compress(data * repeat)
        expected += data * repeat
    assert codecs.decompress(codecs.ZSTD, blob, len(expected)) == expected
    if expected:
        with pytest.raises(RecordTooLargeError):
            codecs.decompress(codecs.ZSTD, blob, len(expected) - 1)


def test_zstd_skippable_frames_are_skipped_and_bombs_refused_before_decoding():
    import time

    import zstandard

    from kafkito.records import codecs

    frame = zstandard.ZstdCompressor().compress(b"payload")
    skippable = struct.pack("<II", 0x184D2A53, 5) + b"12345"
    assert codecs.decompress(codecs.ZSTD, skippable + frame + skippable, 100) == b"payload"
    bomb = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (256 << 20))
    started = time.monotonic()
    with pytest.raises(RecordTooLargeError):
        codecs.decompress(codecs.ZSTD, bomb, 64 << 20)
    assert time.monotonic() - started < 0.05  # its RLE blocks add up past the cap unread

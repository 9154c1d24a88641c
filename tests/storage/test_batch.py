"""Record batch v2: our builder and parser against kafka-python's independent codec, header
validation, stamping, and the decompression cap."""

import struct

import pytest
from crc32c import crc32c
from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkito.records import batch as B
from kafkito.records import codecs
from kafkito.storage.config import LogConfig
from kafkito.storage.validator import validate_batches
from kafkito.storage.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordTooLargeError,
    UnsupportedMessageFormatError,
)

# No timestamp bounds: these batches carry small fixed timestamps.
LOOSE = LogConfig(message_timestamp_after_max_ms=2**63 - 1)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KP_CODEC = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

records_st = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=20)),
        st.one_of(st.none(), st.binary(max_size=200)),
        st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))),
                 max_size=3),
        st.integers(min_value=0, max_value=2**42),
    ),
    min_size=1,
    max_size=8,
)


@given(records_st, st.sampled_from(CODECS), st.integers(0, 2**40))
def test_build_roundtrip_and_kafka_python_reads_our_batches(records, codec, base):
    raw = B.build_batch(records, base_offset=base, compression=codec, producer_id=7,
                        producer_epoch=1, base_sequence=3)
    ours = B.RecordBatch(raw)
    assert ours.is_valid() and ours.size_bytes == len(raw)
    assert ours.base_offset == base and ours.last_offset == base + len(records) - 1
    assert ours.compression == codec
    assert ours.max_timestamp == max(r[3] for r in records)
    got = list(ours.records())
    assert [(r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (k, v, list(h), ts) for k, v, h, ts in records]
    assert [r.offset for r in got] == list(range(base, base + len(records)))

    theirs = DefaultRecordBatch(bytearray(raw))
    assert theirs.validate_crc()
    assert theirs.base_offset == base and theirs.producer_id == 7 and theirs.base_sequence == 3
    assert [(r.key, r.value, [tuple(h) for h in r.headers], r.timestamp) for r in theirs] == [
        (k, v, list(h), ts) for k, v, h, ts in records]


@pytest.mark.parametrize("codec", CODECS)
def test_we_read_batches_kafka_python_builds(codec):
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=KP_CODEC[codec],
                                        is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    expected = []
    for i in range(20):
        key, value, headers = f"k{i}".encode(), (f"v{i}" * 50).encode(), [("h", b"x")]
        builder.append(i, timestamp=1000 + i, key=key, value=value, headers=headers)
        expected.append((key, value, headers, 1000 + i))
    raw = bytes(builder.build())
    batch = B.RecordBatch(raw)
    assert batch.is_valid() and batch.records_count == 20 and batch.compression == codec
    assert [(r.key, r.value, r.headers, r.timestamp) for r in batch.records()] == expected
    assert validate_batches(raw, LOOSE, 0)[0].records_count == 20


def _client_batch(n=3, **kw):
    return B.build_batch([(b"k", b"v" * 10, [], 1000 + i) for i in range(n)], **kw)


def _client_batch(n=3, **kw):
    return B.build_batch([(b"k", b"v" * 10, [], 1000 + i) for i in range(n)], **kw)


def _recrc(raw: bytearray) -> bytearray:
    struct.pack_into(">I", raw, B.CRC_AT, crc32c(bytes(raw[B.ATTRIBUTES_AT:])))
    return raw


@pytest.mark.parametrize("codec", CODECS)
def test_stamping_keeps_crc_valid_and_log_append_time_recomputes_it(codec):
    raw = _client_batch(4, compression=codec)
    mv = memoryview(raw)
    [h] = validate_batches(raw, LOOSE, 0)
    hdr = B.stamp_header(mv, h, 12345, 7, None)
    stamped = B.RecordBatch(bytes(hdr) + raw[B.HEADER_BYTES:])
    assert stamped.base_offset == 12345 and stamped.partition_leader_epoch == 7
    assert stamped.is_valid() and stamped.crc == B.RecordBatch(raw).crc
    hdr = B.stamp_header(mv, h, 12345, 7, 99_999)
    stamped = B.RecordBatch(bytes(hdr) + raw[B.HEADER_BYTES:])
    assert stamped.is_valid() and stamped.timestamp_type == B.LOG_APPEND_TIME
    assert stamped.max_timestamp == 99_999
    assert [r.timestamp for r in stamped.records()] == [99_999] * 4
    assert [r.offset for r in stamped.records()] == [12345, 12346, 12347, 12348]
    assert DefaultRecordBatch(bytearray(bytes(hdr) + raw[B.HEADER_BYTES:])).validate_crc()


@pytest.mark.parametrize("codec", CODECS[1:])
def test_decompression_is_capped(codec):
    raw = B.build_batch([(None, b"\0" * 100_000, [], 1)] * 10, compression=codec)
    batch = B.RecordBatch(raw)
    assert len(batch.records_section()) > 1_000_000
    with pytest.raises(RecordTooLargeError):
        list(batch.records(max_decompressed_bytes=100_000))


def test_corrupt_compressed_payload_is_a_corrupt_record():
    for codec in CODECS[1:]:
        comp = codecs.compress(codecs.CODEC_IDS[codec], b"hello world" * 100)
        with pytest.raises(CorruptRecordError):
            codecs.decompress(codecs.CODEC_IDS[codec], comp[: len(comp) // 2] + b"\xff" * 7)


def test_record_decoder_rejects_overruns():
    raw = bytearray(_client_batch(2))
    raw[B.HEADER_BYTES] = 0x7E  # first record claims 63 bytes, more than the batch holds
    with pytest.raises(CorruptRecordError):
        list(B.RecordBatch(_recrc(raw)).records())


def test_varint_roundtrip_extremes():
    for n in (0, -1, 1, 63, -64, 64, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)):
        out = bytearray()
        B.write_varint(out, n)
        assert B.read_varint(out, 0, len(out)) == (n, len(out))


def test_lz4_frames_we_write_have_independent_blocks_and_valid_descriptor_checksum():
    import lz4.frame

    data = bytes(range(256)) * 1000  # several 64 KiB blocks
    frame = codecs.compress(codecs.LZ4, data)
    assert frame[4] & 0x20  # block independence, required by Kafka's Java decoder
    assert lz4.frame.decompress(frame) == data  # python-lz4 verifies the HC byte

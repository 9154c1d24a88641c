"""The connection's framing under any split of the byte stream (property test).

The reader keeps one 64 KB receive buffer per connection, copies small frames out of it,
reads larger ones into a buffer of their own and moves a size prefix cut by the buffer's
end to the front. Whatever the frame sizes and however TCP cuts the stream, every request
must be answered, once, in order.
"""

from __future__ import annotations

import time

import pytest
from e2e.raw import RawClient
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol import ApiKey, encode_request
from kafkito.protocol.messages.api_versions import ApiVersionsRequest

pytestmark = pytest.mark.e2e

# Frame sizes around the interesting edges: tiny, around the 4 KB bytes/bytearray switch,
# just under and over the 64 KB buffer, and a few hundred KB.
_NAME_LENGTHS = st.one_of(
    st.integers(0, 300),
    st.integers(4000, 4200),
    st.integers(65_400, 65_600),
    st.integers(100_000, 300_000),
)


def _frame(correlation_id: int, name_len: int) -> bytes:
    body = ApiVersionsRequest(client_software_name="x" * name_len, client_software_version="1")
    return encode_request(ApiKey.API_VERSIONS, 3, correlation_id, "raw", body)


@settings(max_examples=25)
@given(name_lengths=st.lists(_NAME_LENGTHS, min_size=1, max_size=12),
       cuts=st.lists(st.integers(1, 200_000), max_size=8))
def test_any_split_of_pipelined_frames_is_answered_in_order(kbroker, name_lengths, cuts):
    raw = RawClient(kbroker.host, kbroker.port)
    stream = b"".join(_frame(i + 1, n) for i, n in enumerate(name_lengths))
    points = sorted({c % len(stream) for c in cuts} - {0})
    for start, end in zip([0, *points], [*points, len(stream)]):
        raw.sock.sendall(stream[start:end])
        time.sleep(0.002)  # let the broker read this piece on its own
    raw.correlation_id = len(name_lengths)
    answered = [raw.receive(ApiKey.API_VERSIONS, 3) for _ in name_lengths]
    assert [c for c, _ in answered] == list(range(1, len(name_lengths) + 1))
    assert all(r.error_code == 0 for _, r in answered)
    raw.close()

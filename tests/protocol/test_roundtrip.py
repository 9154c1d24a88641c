"""Round trips for every declared API, version, request and response.

A value drawn from the declaration (every field random, including fields the version
lacks, plus unknown tagged fields) must decode back to its projection on that version,
and re-encoding the decoded value must give the same bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol import SPECS
from kafkito.protocol.codec import decode_body, encode_body

from .strategies import message, project

_EXAMPLES = max(8, settings.default.max_examples // 6)

CASES = [
    pytest.param(spec, v, kind, id=f"{spec.name}-v{v}-{kind}")
    for spec in SPECS.values()
    for v in range(spec.min_version, spec.max_version + 1)
    for kind in ("request", "response")
]


def _encode(cls, v, flex, obj) -> bytes:
    b = bytearray()
    encode_body(cls, v, flex, obj, b, [])
    return bytes(b)


@pytest.mark.parametrize("spec,version,kind", CASES)
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_round_trip(spec, version, kind, data):
    cls = getattr(spec, kind)
    flex = spec.is_flexible(version)
    value = data.draw(message(cls, version, flex))
    wire = _encode(cls, version, flex, value)
    decoded = decode_body(cls, version, flex, memoryview(wire))
    assert decoded == project(value, version, flex)
    assert _encode(cls, version, flex, decoded) == wire

"""Cross-check against kio, an independent codec generated from Kafka's own schemas.

For every API, version and direction that both codecs know: bytes we encode must decode
in kio to the same values (compared field by field, in declaration order, after
normalising kio's richer types), and kio must encode its decoded object back to exactly
our bytes, which also shows that what kio writes decodes correctly here. kio is only a
test oracle; nothing in protocol/ imports it.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import io
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol import SPECS, ErrorCode
from kafkito.protocol.codec import decode_body, encode_body
from kafkito.protocol.types import ArrayOf, Primitive

from .strategies import message, project

kio_schema = pytest.importorskip("kio.schema")
from kio.schema.errors import ErrorCode as KioErrorCode  # noqa: E402
from kio.schema.index import api_key_map  # noqa: E402
from kio.serial import entity_reader, entity_writer  # noqa: E402

_EXAMPLES = max(4, settings.default.max_examples // 12)
_KIO_DIR = os.path.dirname(kio_schema.__file__)
_KIO_CODES = sorted(int(c) for c in KioErrorCode)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _kio_versions(api_key: int) -> list[int]:
    d = os.path.join(_KIO_DIR, api_key_map[api_key])
    return sorted(int(n[1:]) for n in os.listdir(d) if n[0] == "v" and n[1:].isdigit())


CASES = [
    pytest.param(spec, v, kind, id=f"{spec.name}-v{v}-{kind}")
    for spec in SPECS.values()
    for v in _kio_versions(spec.api_key)
    if spec.has_version(v)
    for kind in ("request", "response")
]


def _kio_class(spec, version: int, kind: str):
    module = importlib.import_module(f"kio.schema.{api_key_map[spec.api_key]}.v{version}.{kind}")
    return getattr(module, getattr(spec, kind).__name__)


def _norm_kio(v):
    """kio values to plain ones comparable with ours."""
    if dataclasses.is_dataclass(v):
        return [_norm_kio(getattr(v, f.name)) for f in dataclasses.fields(v)]
    if isinstance(v, tuple):
        return [_norm_kio(e) for e in v]
    if isinstance(v, datetime.timedelta):
        return int(v / datetime.timedelta(milliseconds=1))
    if isinstance(v, datetime.datetime):
        return int((v - _EPOCH) / datetime.timedelta(milliseconds=1))
    if isinstance(v, KioErrorCode):
        return int(v)
    if isinstance(v, bytes):
        return bytes(v)
    return v


def _norm_ours(obj, version: int, flexible: bool):
    out = []
    for f in type(obj).__kafka_fields__:
        if version in f.versions:
            out.append(_norm_value(f.type, getattr(obj, f.name), version, flexible))
    return out


def _norm_value(t, v, version, flexible):
    if v is None:
        return None
    if isinstance(t, ArrayOf):
        return [_norm_value(t.elem, e, version, flexible) for e in v]
    if isinstance(t, Primitive):
        return bytes(v) if isinstance(v, memoryview) else v
    return _norm_ours(v, version, flexible)


def _same(ours, theirs) -> bool:
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs))
    if theirs is None and ours in (uuid.UUID(int=0), -1):
        return True  # kio maps the zero uuid and a -1 timestamp to None
    return ours == theirs


def _kio_friendly(cls, version, flexible):
    """Our strategy, minus what kio models differently: unknown tags (kio drops them),
    error codes kio's enum lacks, and times outside Python's datetime/timedelta range."""
    return message(cls, version, flexible).map(lambda o: _strip(project(o, version, flexible), version))


def _strip(obj, version):
    obj.unknown_tagged_fields = None
    for f in type(obj).__kafka_fields__:
        if version not in f.versions:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, list):
            for e in v:
                if hasattr(e, "__kafka_fields__"):
                    _strip(e, version)
        elif hasattr(v, "__kafka_fields__"):
            _strip(v, version)
        elif f.name.endswith("error_code") and isinstance(v, int):
            setattr(obj, f.name, _KIO_CODES[abs(v) % len(_KIO_CODES)])
        elif f.name.endswith(("_time_ms", "timestamp_ms")) and isinstance(v, int) and f.type.size == 8:
            setattr(obj, f.name, abs(v) % 2**40)
        elif f.name.endswith("_ms") and isinstance(v, int):
            setattr(obj, f.name, abs(v) % 2**30)
    return obj


@pytest.mark.parametrize("spec,version,kind", CASES)
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_kio_agrees(spec, version, kind, data):
    cls = getattr(spec, kind)
    flex = spec.is_flexible(version)
    value = data.draw(_kio_friendly(cls, version, flex))
    b = bytearray()
    encode_body(cls, version, flex, value, b, [])
    ours = bytes(b)

    kio_cls = _kio_class(spec, version, kind)
    theirs, size = entity_reader(kio_cls)(ours, 0)
    assert size == len(ours)
    assert _same(_norm_ours(value, version, flex), _norm_kio(theirs))

    out = io.BytesIO()
    entity_writer(kio_cls)(out, theirs)
    assert out.getvalue() == ours
    assert decode_body(cls, version, flex, memoryview(out.getvalue())) == value


def test_error_codes_match_kio():
    for theirs in KioErrorCode:
        ours = ErrorCode(int(theirs))
        assert ours.name == theirs.name.upper()
        assert ours.retriable == theirs.retriable, ours

"""Second oracle for the old, non-flexible versions kio does not model.

kio starts at Kafka 4's KIP-896 baseline; the versions below it (Produce v0-2, Fetch
v0-3, OffsetCommit v0-1, ...) are checked against kafka-python's hand-written "old"
protocol classes, which it still uses to talk to old brokers. Our value is flattened to
kafka-python's positional tuples; both codecs must produce the same bytes, and each must
read the other's bytes back to the same value.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import pkgutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.protocol import SPECS
from kafkito.protocol.codec import decode_body, encode_body
from kafkito.protocol.types import ArrayOf, Primitive

from .strategies import message, project

old = pytest.importorskip("kafka.protocol.old")
kio_schema = pytest.importorskip("kio.schema")
from kio.schema.index import api_key_map  # noqa: E402

_EXAMPLES = max(5, settings.default.max_examples // 10)


def _kio_has(api_key: int, version: int) -> bool:
    return os.path.isdir(os.path.join(os.path.dirname(kio_schema.__file__), api_key_map[api_key], f"v{version}"))


def _old_classes() -> dict[tuple[int, int, str], type]:
    found = {}
    for info in pkgutil.iter_modules(old.__path__):
        module = importlib.import_module(f"{old.__name__}.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            version = getattr(cls, "API_VERSION", None)
            key = getattr(cls, "API_KEY", None)
            if version is None or key is None or not name.endswith(f"_v{version}"):
                continue
            kind = "request" if "Request" in name else "response"
            found[(key, version, kind)] = cls
    return found


CASES = [
    pytest.param(spec, v, kind, cls, id=f"{spec.name}-v{v}-{kind}")
    for (key, v, kind), cls in sorted(_old_classes().items(), key=lambda kv: kv[0])
    for spec in [SPECS.get(key)]
    if spec is not None and spec.has_version(v) and not spec.is_flexible(v) and not _kio_has(key, v)
]


def _to_tuple(obj, version: int):
    out = []
    for f in type(obj).__kafka_fields__:
        if version in f.versions:
            out.append(_value(f.type, getattr(obj, f.name), version))
    return tuple(out)


def _value(t, v, version):
    if v is None:
        return None
    if isinstance(t, ArrayOf):
        return [_value(t.elem, e, version) for e in v]
    if isinstance(t, Primitive):
        return bytes(v) if isinstance(v, memoryview) else v
    return _to_tuple(v, version)


def _normalise(v):
    if isinstance(v, (list, tuple)):
        return [_normalise(e) for e in v]
    return v


def test_oracle_covers_the_old_versions():
    covered = {(p.values[0].name, p.values[1]) for p in CASES}
    assert ("Produce", 0) in covered and ("Fetch", 0) in covered and ("OffsetCommit", 1) in covered


@pytest.mark.parametrize("spec,version,kind,old_cls", CASES)
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_kafka_python_agrees(spec, version, kind, old_cls, data):
    cls = getattr(spec, kind)
    value = project(data.draw(message(cls, version, False)), version, False)
    b = bytearray()
    encode_body(cls, version, False, value, b, [])
    theirs = old_cls.SCHEMA.encode(list(_to_tuple(value, version)))
    assert bytes(theirs) == bytes(b)
    decoded = old_cls.SCHEMA.decode(io.BytesIO(bytes(b)))
    assert _normalise(decoded) == _normalise(_to_tuple(value, version))
    assert decode_body(cls, version, False, memoryview(bytes(theirs))) == value

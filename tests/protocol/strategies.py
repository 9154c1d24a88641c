"""Hypothesis strategies derived from the message declarations.

``message(cls, version, flexible)`` draws an instance in which EVERY field has a random
value, including fields absent from ``version``; ``project(obj, version, flexible)`` gives
what must survive a round trip at that version: present fields as drawn (recursively
projected), absent fields and unknown tags of non-flexible versions back at their
defaults. A round trip test then checks decode(encode(x)) == project(x), which also shows
that absent fields are not written.
"""

from __future__ import annotations

import uuid

from hypothesis import strategies as st

from kafkito.protocol.schema import Field
from kafkito.protocol.types import (
    BOOL,
    BYTES,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    RECORDS,
    STRING,
    UINT16,
    UINT32,
    UUID,
    ArrayOf,
    Primitive,
)

_INTS = {
    INT8: (-(2**7), 2**7 - 1),
    INT16: (-(2**15), 2**15 - 1),
    INT32: (-(2**31), 2**31 - 1),
    INT64: (-(2**63), 2**63 - 1),
    UINT16: (0, 2**16 - 1),
    UINT32: (0, 2**32 - 1),
}


def primitive(t: Primitive) -> st.SearchStrategy:
    if t in _INTS:
        lo, hi = _INTS[t]
        return st.one_of(st.sampled_from([lo, hi, 0, -1 if lo < 0 else 1]), st.integers(lo, hi))
    if t is BOOL:
        return st.booleans()
    if t is FLOAT64:
        return st.floats(allow_nan=False)
    if t is UUID:
        return st.one_of(st.just(uuid.UUID(int=0)), st.uuids())
    if t is STRING:
        return st.text(max_size=12)
    if t in (BYTES, RECORDS):
        return st.binary(max_size=24)
    raise TypeError(t)


def _value(t, nullable: bool, version: int, flexible: bool) -> st.SearchStrategy:
    if isinstance(t, ArrayOf):
        s = st.lists(_value(t.elem, False, version, flexible), max_size=3)
    elif isinstance(t, Primitive):
        s = primitive(t)
    else:
        s = message(t, version, flexible)
    return st.one_of(st.none(), s) if nullable else s


def _field_value(f: Field, version: int, flexible: bool) -> st.SearchStrategy:
    if version not in f.versions:
        # Absent here: draw it as in a version where it exists; it must not be written.
        version = f.versions.lo
    return _value(f.type, version in f.nullable, version, flexible)


def _unknown_tags(cls, version: int) -> st.SearchStrategy:
    known = {f.tag for f in cls.__kafka_fields__ if f.tag is not None}
    tags = st.integers(0, 40).filter(lambda t: t not in known)
    pairs = st.lists(st.tuples(tags, st.binary(max_size=6)), max_size=2, unique_by=lambda p: p[0])
    return st.one_of(st.none(), pairs.map(lambda ps: sorted(ps) or None))


def message(cls, version: int, flexible: bool) -> st.SearchStrategy:
    fields = {f.name: _field_value(f, version, flexible) for f in cls.__kafka_fields__}
    fields["unknown_tagged_fields"] = _unknown_tags(cls, version)
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def _project_value(t, v, version: int, flexible: bool):
    if v is None:
        return None
    if isinstance(t, ArrayOf):
        return [_project_value(t.elem, e, version, flexible) for e in v]
    if isinstance(t, Primitive):
        return v
    return project(v, version, flexible)


def project(obj, version: int, flexible: bool):
    cls = type(obj)
    kw = {}
    for f in cls.__kafka_fields__:
        if version in f.versions:
            kw[f.name] = _project_value(f.type, getattr(obj, f.name), version, flexible)
    if flexible:
        kw["unknown_tagged_fields"] = obj.unknown_tagged_fields
    return cls(**kw)

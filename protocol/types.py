"""The wire types a field can be declared with.

A field's type is one of the primitive descriptors below, a message struct class (a
nested struct, as Kafka's schemas allow), or ``array(element)`` of either. Fixed-width
primitives carry their ``struct`` format character so the codec generator can read and
write runs of them with one precompiled ``struct.Struct``. Whether a string, bytes,
records or array value is written in the classic or the compact encoding is not a
property of the type: it follows from the API version (flexible or not).
"""

from __future__ import annotations

import uuid
from typing import Any


class Primitive:
    __slots__ = ("name", "fmt", "size", "zero", "py_type")

    def __init__(self, name: str, fmt: str | None, size: int | None, zero: Any, py_type: Any):
        self.name = name
        self.fmt = fmt  # struct format character, None for variable-size types
        self.size = size  # bytes on the wire when fixed, else None
        self.zero = zero  # the implicit default (Kafka's, for a field without one)
        self.py_type = py_type

    def __repr__(self) -> str:
        return self.name.upper()


class ArrayOf:
    __slots__ = ("elem",)

    def __init__(self, elem: Any) -> None:
        self.elem = elem

    def __repr__(self) -> str:
        return f"array({self.elem!r})"


def array(elem: Any) -> ArrayOf:
    """An array of a primitive or of a message struct class."""
    return ArrayOf(elem)


INT8 = Primitive("int8", "b", 1, 0, int)
INT16 = Primitive("int16", "h", 2, 0, int)
INT32 = Primitive("int32", "i", 4, 0, int)
INT64 = Primitive("int64", "q", 8, 0, int)
UINT16 = Primitive("uint16", "H", 2, 0, int)
UINT32 = Primitive("uint32", "I", 4, 0, int)
FLOAT64 = Primitive("float64", "d", 8, 0.0, float)
BOOL = Primitive("bool", "?", 1, False, bool)
UUID = Primitive("uuid", None, 16, uuid.UUID(int=0), uuid.UUID)
STRING = Primitive("string", None, None, "", str)
BYTES = Primitive("bytes", None, None, b"", bytes)
# Record batches stay opaque here; storage/ owns their format. Decoded as memoryview.
RECORDS = Primitive("records", None, None, b"", Any)

PRIMITIVES = (INT8, INT16, INT32, INT64, UINT16, UINT32, FLOAT64, BOOL, UUID, STRING, BYTES, RECORDS)

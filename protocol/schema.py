"""The declaration language for Kafka messages.

Each API module declares its structs bottom-up, the way Kafka's JSON schemas describe
them::

    PartitionProduceData = struct(
        "PartitionProduceData",
        field("index", INT32),
        field("records", RECORDS, nullable="0+"),
    )

``struct`` returns a msgspec Struct class (fast to build, compare and read) whose fields
are the union over all versions, every one with a default, plus a keyword-only
``unknown_tagged_fields`` that keeps tagged fields this code does not know so they can
be written back. The declaration travels with the class as ``__kafka_fields__``; the
codec (codec.py) derives a decoder and an encoder per (struct, version) from it.

Version ranges are strings as in Kafka: ``"3+"``, ``"0-12"``, ``"5"``, or ``"none"``.
A field exists in ``versions``; it may be null in ``nullable``; it is a tagged field
(in the trailing tagged-field section, written only when it differs from its default)
with number ``tag`` in the ``tagged`` versions, which are always flexible ones.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from .types import ArrayOf, Primitive, RECORDS

VERSION_MAX = 0x7FFF


class Versions:
    """An inclusive version range parsed from Kafka's notation."""

    __slots__ = ("lo", "hi")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo = lo
        self.hi = hi

    @classmethod
    def parse(cls, text: str | None) -> Versions:
        if text is None or text == "none":
            return NO_VERSIONS
        if text.endswith("+"):
            return cls(int(text[:-1]), VERSION_MAX)
        if "-" in text:
            lo, hi = text.split("-")
            return cls(int(lo), int(hi))
        return cls(int(text), int(text))

    def __contains__(self, version: int) -> bool:
        return self.lo <= version <= self.hi

    def __bool__(self) -> bool:
        return self.lo <= self.hi

    def __repr__(self) -> str:
        if not self:
            return "none"
        if self.hi == VERSION_MAX:
            return f"{self.lo}+"
        return f"{self.lo}-{self.hi}" if self.lo != self.hi else str(self.lo)


NO_VERSIONS = Versions(1, 0)
_MISSING: Any = object()


class Field:
    __slots__ = ("name", "type", "versions", "nullable", "default", "tag", "tagged")

    def __init__(self, name, type, versions, nullable, default, tag, tagged) -> None:
        self.name = name
        self.type = type
        self.versions = versions
        self.nullable = nullable
        self.default = default
        self.tag = tag
        self.tagged = tagged

    def is_tagged(self, version: int) -> bool:
        return self.tag is not None and version in self.tagged

    def default_factory(self):
        """A callable giving a fresh default (lists and structs are never shared)."""
        d = self.default
        if isinstance(d, list):
            return list
        if isinstance(d, Message):
            return type(d)
        return lambda: d

    def __repr__(self) -> str:
        return f"field({self.name!r}, {self.type!r}, {self.versions!r})"


def field(
    name: str,
    type: Any,
    versions: str = "0+",
    *,
    nullable: str | None = None,
    default: Any = _MISSING,
    tag: int | None = None,
    tagged: str | None = None,
) -> Field:
    """Declare one field. ``tagged`` defaults to ``versions`` when ``tag`` is given."""
    vers = Versions.parse(versions)
    nul = Versions.parse(nullable)
    if tag is not None and tagged is None:
        tagged = versions
    if default is _MISSING:
        default = _implicit_default(type, vers, nul)
    return Field(name, type, vers, nul, default, tag, Versions.parse(tagged))


def _nullable_everywhere(vers: Versions, nul: Versions) -> bool:
    return bool(nul) and nul.lo <= vers.lo and nul.hi >= vers.hi


def _implicit_default(type: Any, vers: Versions, nul: Versions) -> Any:
    # A field that may be null in every version it exists in defaults to None; one that
    # is nullable only in some versions gets the non-null zero, so the default can be
    # written at every version.
    if _nullable_everywhere(vers, nul):
        return None
    if isinstance(type, ArrayOf):
        return []
    if isinstance(type, Primitive):
        return type.zero
    return type()  # a nested struct: an instance with its own defaults


def _py_type(f: Field) -> Any:
    t = f.type
    if isinstance(t, ArrayOf):
        e = t.elem
        ann: Any = list[e.py_type if isinstance(e, Primitive) else e]
    elif isinstance(t, Primitive):
        ann = t.py_type
    else:
        ann = t
    if f.nullable or t is RECORDS:
        ann = ann | None if ann is not Any else Any
    return ann


class Message(msgspec.Struct, kw_only=True, gc=False, repr_omit_defaults=True):
    """Base of every declared struct. ``unknown_tagged_fields`` holds (tag, raw bytes)
    pairs read from the wire for tags this declaration does not know."""

    unknown_tagged_fields: list | None = None

    __kafka_fields__ = ()


def struct(name: str, *fields: Field, module: str | None = None) -> type[Message]:
    """Create the message class ``name`` from its field declarations."""
    seen = set()
    spec = []
    for f in fields:
        if f.name in seen:
            raise ValueError(f"{name}: duplicate field {f.name}")
        seen.add(f.name)
        d = f.default
        if isinstance(d, (list, Message)):
            default = msgspec.field(default_factory=f.default_factory())
        else:
            default = d
        spec.append((f.name, _py_type(f), default))
    if module is None:
        module = sys._getframe(1).f_globals.get("__name__", __name__)
    cls = msgspec.defstruct(
        name,
        spec,
        bases=(Message,),
        module=module,
        namespace={"__kafka_fields__": tuple(fields)},
        gc=False,
        repr_omit_defaults=True,
    )
    return cls


class ApiSpec:
    """One API: its key, name, declared version range, flexible versions, and the
    request and response classes."""

    __slots__ = (
        "api_key",
        "name",
        "min_version",
        "max_version",
        "flexible_min_version",
        "request",
        "response",
    )

    def __init__(self, api_key: int, name: str, versions: str, flexible: str, request, response):
        v = Versions.parse(versions)
        fl = Versions.parse(flexible)
        self.api_key = api_key
        self.name = name
        self.min_version = v.lo
        self.max_version = v.hi
        self.flexible_min_version = fl.lo if fl else None
        self.request = request
        self.response = response

    def has_version(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version

    def is_flexible(self, version: int) -> bool:
        fl = self.flexible_min_version
        return fl is not None and version >= fl

    def __repr__(self) -> str:
        return f"<ApiSpec {self.api_key} {self.name} v{self.min_version}-{self.max_version}>"


__all__ = ["ApiSpec", "Field", "Message", "Versions", "field", "struct"]
